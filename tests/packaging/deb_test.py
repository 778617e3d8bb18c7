#!/usr/bin/env python3
"""The Debian package, end to end, printing TAP: `make deb` builds it, lintian
finds no error and no warning, it holds what the issue lists, `meson install`
installs the same set, and it installs, runs and purges cleanly in a
throw-away Debian root made with debootstrap. Nothing is installed into the
machine's own root: every dpkg and apt call runs chrooted into the throw-away
root, and scepd runs there in a network namespace of its own.

The debootstrap result and the .debs apt fetched are cached in the build
directory (pkgtest/), so only the first run needs the Debian mirror
(SCEPD_DEBIAN_MIRROR, default http://deb.debian.org/debian)."""
import os, re, shutil, signal, subprocess, sys, tempfile

from tap import bail, done, ok, read

ROOT = os.environ.get('SCEPD_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get('SCEPD_BUILD') or os.environ.get('SCEPD_BUILD_ROOT') or 'build-test')
CACHE = os.path.join(BUILD, 'pkgtest')
MIRROR = os.environ.get('SCEPD_DEBIAN_MIRROR', 'http://deb.debian.org/debian')
SUITE = 'bookworm'
CHROOT_ENV = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8', 'DEBIAN_FRONTEND': 'noninteractive',
              'HOME': '/root'}

def run(cmd, timeout=600, **kw):
    """Runs cmd in a process group of its own; on timeout the whole group
    (a scepd started in the background included) is killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f'\n{cmd[0]}: killed after {timeout} s'
        proc.returncode = 124
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def in_root(root, script, net=True, timeout=600, writable=None):
    """Runs a shell script chrooted into root, in a mount namespace of its own
    with /proc mounted, optionally without network (only a loopback), and
    optionally with the whole root read-only but the directories in writable
    (as ProtectSystem=strict does)."""
    outer = 'set -e; '
    if not net:
        outer += 'ip link set lo up; '
    if writable is not None:
        for d in writable:
            outer += f'mount --bind "$1{d}" "$1{d}"; '
        outer += 'mount --rbind "$1" "$1"; mount -o remount,bind,ro "$1"; '
    outer += 'mount -t proc proc "$1/proc"; exec chroot "$1" /bin/sh -c "$2"'
    cmd = ['unshare', '--mount', '--propagation', 'private'] + ([] if net else ['--net'])
    cmd += ['sh', '-c', outer, 'sh', root, script]
    return run(cmd, timeout=timeout, env=CHROOT_ENV)


def snapshot(root):
    """Paths and owners in the root, without the trees that only record
    dpkg's and apt's own bookkeeping."""
    skip_top = {'proc', 'sys', 'dev', 'run', 'tmp'}
    noise = ('var/lib/dpkg', 'var/lib/apt', 'var/cache', 'var/log')
    seen = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == '.':
            dirs[:] = [x for x in dirs if x not in skip_top]
        elif rel.startswith(noise):
            dirs[:] = []
            continue
        for n in dirs + files:
            p = os.path.join(d, n)
            r = os.path.relpath(p, root)
            if r.startswith(noise) or r in ('etc/ld.so.cache',) or re.match(r'etc/(passwd|group|shadow|gshadow)-$', r):
                continue
            st = os.lstat(p)
            seen['/' + r] = (st.st_uid, st.st_gid)
    return seen


def host_state():
    q = run(['dpkg-query', '-W', '-f', '${Status}', 'scepd'])
    return (q.stdout, run(['getent', 'passwd', 'scepd']).stdout)


def main():
    host_before = host_state()
    out = os.path.join(CACHE, 'deb')
    os.makedirs(CACHE, exist_ok=True)

    # -- make deb
    p = run(['make', '-C', ROOT, 'deb', 'DEBBUILD=' + out], timeout=1200)
    debs = sorted(f for f in os.listdir(out) if re.match(r'scepd_[^_]+_[a-z0-9]+\.deb$', f)) if os.path.isdir(out) else []
    if not ok(p.returncode == 0 and len(debs) == 1, 'make deb builds scepd_VERSION_ARCH.deb',
              p.stdout + p.stderr + '\nInstall the build dependencies with `make deps` (tools/deps.sh).'):
        bail('no package to test')
    deb = os.path.join(out, debs[0])
    changes = deb[:-4] + '.changes'

    # -- lintian: no error, no warning (overrides, if any, are in debian/)
    p = run(['lintian', '--fail-on', 'error,warning', '--display-level', '>=warning', '--no-tag-display-limit',
             changes], timeout=900)
    tags = [l for l in p.stdout.splitlines() if re.match(r'^[EW]: ', l)]
    ok(p.returncode == 0 and not tags, 'lintian reports no error and no warning on the .changes and the .deb',
       p.stdout + p.stderr + '\nFix the packaging, or add an override with its reason to debian/.')

    # -- what the package holds
    p = run(['dpkg-deb', '-c', deb])
    files = {l.split()[-1].lstrip('.') for l in p.stdout.splitlines() if not l.startswith('d')}
    want = ['/usr/bin/scepctl', '/usr/bin/scepca', '/usr/sbin/scepd', '/etc/scepd/scepd.conf',
            '/lib/systemd/system/scepd.service', '/usr/lib/sysusers.d/scepd.conf', '/usr/lib/tmpfiles.d/scepd.conf',
            '/usr/share/man/man1/scepctl.1.gz', '/usr/share/man/man1/scepca.1.gz',
            '/usr/share/man/man5/scepd.conf.5.gz', '/usr/share/man/man8/scepd.8.gz',
            '/usr/share/doc/scepd/README.md', '/usr/share/doc/scepd/copyright', '/usr/share/doc/scepd/packaging.md']
    # dh_compress compresses documents above 4 kB, whatever their name
    missing = [w for w in want if w not in files and w + '.gz' not in files]
    ok(not missing, 'the package holds the programs, man pages, unit, sysusers.d, tmpfiles.d, conffile and docs',
       'missing: ' + ' '.join(missing) + '\npackage: ' + ' '.join(sorted(files)))
    with tempfile.TemporaryDirectory(prefix='scepd-ctl-') as ctl:
        run(['dpkg-deb', '-e', deb, ctl])
        conffiles = read(os.path.join(ctl, 'conffiles')).split()
    ok(conffiles == ['/etc/scepd/scepd.conf'], '/etc/scepd/scepd.conf is the conffile', 'conffiles: ' + ' '.join(conffiles))

    # -- meson install with DESTDIR installs the same set
    with tempfile.TemporaryDirectory(prefix='scepd-meson-') as tmp:
        b, dest = os.path.join(tmp, 'b'), os.path.join(tmp, 'dest')
        p = run(['meson', 'setup', b, ROOT, '--prefix=/usr', '-Dtests=false'], timeout=300)
        if p.returncode == 0:
            p = run(['ninja', '-C', b], timeout=900)
        if p.returncode == 0:
            p = run(['meson', 'install', '-C', b, '--no-rebuild', '--destdir', dest], timeout=300)
        installed = set()
        for d, _, names in os.walk(dest):
            installed |= {'/' + os.path.relpath(os.path.join(d, n), dest) for n in names}
    packaged = {re.sub(r'\.gz$', '', f) for f in files} - {'/usr/share/doc/scepd/copyright', '/usr/share/doc/scepd/changelog'}
    ok(p.returncode == 0 and installed == packaged, '`meson install` with DESTDIR installs the same set as the package',
       p.stdout[-2000:] + p.stderr[-2000:] + '\nonly meson: ' + ' '.join(sorted(installed - packaged)) +
       '\nonly package: ' + ' '.join(sorted(packaged - installed)))

    # -- a throw-away Debian root
    base = os.path.join(CACHE, f'{SUITE}-minbase.tar')
    if not os.path.exists(base):
        with tempfile.TemporaryDirectory(prefix='scepd-debootstrap-') as tmp:
            r = os.path.join(tmp, 'root')
            p = run(['debootstrap', '--variant=minbase', SUITE, r, MIRROR], timeout=1200)
            if p.returncode == 0:
                p = run(['tar', '-C', r, '--numeric-owner', '-cf', base + '.part', '.'], timeout=600)
                os.replace(base + '.part', base)
            if p.returncode != 0:
                bail(f'debootstrap {SUITE} from {MIRROR} into a throw-away root',
                     p.stdout[-3000:] + p.stderr[-3000:] + '\nThe first run needs the Debian mirror '
                     '(set SCEPD_DEBIAN_MIRROR to another one); later runs use ' + base)
    tmp = tempfile.mkdtemp(prefix='scepd-root-')
    root = os.path.join(tmp, 'root')
    try:
        os.mkdir(root)
        p = run(['tar', '-C', root, '--numeric-owner', '-xf', base], timeout=600)
        if p.returncode != 0:
            bail('unpack the cached Debian root', p.stderr + f'\nRemove {base} to build it again.')
        shutil.copy('/etc/resolv.conf', os.path.join(root, 'etc', 'resolv.conf'))
        archives = os.path.join(CACHE, 'archives')
        os.makedirs(archives, exist_ok=True)
        for f in os.listdir(archives):
            shutil.copy(os.path.join(archives, f), os.path.join(root, 'var/cache/apt/archives', f))
        shutil.copy(deb, os.path.join(root, 'tmp', 'scepd.deb'))
        test_root(root, archives)
    finally:
        subprocess.run(['rm', '-rf', '--one-file-system', tmp])
    ok(host_state() == host_before, 'the machine\'s own root is untouched (no scepd package, no scepd user)',
       f'before: {host_before}\nafter: {host_state()}')
    return done()


def install(root):
    cmd = 'apt-get install -y -q --no-install-recommends /tmp/scepd.deb'
    p = in_root(root, cmd, timeout=900)
    if p.returncode != 0:
        # the cached root's package lists may name versions the mirror no
        # longer has: refresh them once
        in_root(root, 'apt-get update -q', timeout=600)
        p = in_root(root, cmd, timeout=900)
    return p


def purge(root):
    return in_root(root, 'apt-get purge -y -q scepd')


def test_root(root, archives):
    p = install(root)
    if not ok(p.returncode == 0, 'apt installs the package and its dependencies into the throw-away root',
              p.stdout[-3000:] + p.stderr[-3000:] + f'\nThe first run needs the Debian mirror ({MIRROR}).'):
        return
    cache = os.path.join(root, 'var/cache/apt/archives')
    for f in os.listdir(cache):
        if f.endswith('.deb') and not os.path.exists(os.path.join(archives, f)):
            shutil.copy(os.path.join(cache, f), os.path.join(archives, f))
    # a first purge leaves the dependencies, so that the second cycle shows
    # exactly what the package itself adds and removes
    p = purge(root)
    ok(p.returncode == 0 and 'scepd:' not in read(os.path.join(root, 'etc/passwd')),
       'a purge right after the first install removes the user again', p.stdout + p.stderr)
    before = snapshot(root)
    accounts = {n: read(os.path.join(root, 'etc', n)) for n in ('passwd', 'group', 'shadow', 'gshadow')}

    p = install(root)
    ok(p.returncode == 0, 'the package installs again', p.stdout[-3000:] + p.stderr[-3000:])
    pw = [l.split(':') for l in read(os.path.join(root, 'etc/passwd')).splitlines() if l.startswith('scepd:')]
    user_ok = len(pw) == 1 and int(pw[0][2]) < 1000 and pw[0][6] == '/usr/sbin/nologin'
    ok(user_ok, 'installing creates the system user scepd without a login shell', repr(pw))
    uid = int(pw[0][2]) if pw else -1
    gid = int(pw[0][3]) if pw else -1
    for path, mode in (('var/lib/scepd', 0o700), ('etc/scepd/exports', 0o750)):
        full = os.path.join(root, path)
        st = os.stat(full) if os.path.isdir(full) else None
        ok(st is not None and st.st_uid == uid and st.st_gid == gid and (st.st_mode & 0o7777) == mode,
           f'/{path} exists, belongs to scepd and has mode {mode:o} (tmpfiles.d)',
           f'stat: {st}')
    for path, mode in (('usr/sbin/scepd', 0o755), ('usr/bin/scepctl', 0o755), ('usr/bin/scepca', 0o755)):
        full = os.path.join(root, path)
        ok(os.path.isfile(full) and (os.stat(full).st_mode & 0o777) == mode, f'/{path} is installed, mode {mode:o}')
    ok(os.path.islink(os.path.join(root, 'etc/systemd/system/multi-user.target.wants/scepd.service')),
       'the unit is enabled (multi-user.target.wants)')
    q = in_root(root, 'dpkg-query -W -f "\\${Conffiles}" scepd')
    ok('/etc/scepd/scepd.conf' in q.stdout, 'dpkg records /etc/scepd/scepd.conf as a conffile', q.stdout + q.stderr)
    q = in_root(root, 'scepctl --help && scepca --help && scepd --help')
    ok(q.returncode == 0 and 'scepctl enroll' in q.stdout and 'scepca COMMAND' in q.stdout and 'usage: scepd' in q.stdout,
       'the installed programs find their libraries and run', q.stdout + q.stderr)

    p = run(['systemd-analyze', 'verify', '--man=no', '--root=' + root, '/lib/systemd/system/scepd.service'],
            timeout=120)
    ok(p.returncode == 0 and not p.stderr.strip(), 'systemd-analyze verify accepts the installed unit',
       p.stdout + p.stderr)

    it_runs(root, uid)

    # an administrator's own file in /etc/scepd, and a file scepd exported
    with open(os.path.join(root, 'etc/scepd/admin-notes'), 'w') as f:
        f.write('kept\n')
    exported = os.path.join(root, 'etc/scepd/exports/web.crt')
    with open(exported, 'w') as f:
        f.write('exported\n')
    os.chown(exported, uid, gid)
    p = purge(root)
    ok(p.returncode == 0, 'apt purges the package', p.stdout + p.stderr)
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    ok(added == ['/etc/scepd', '/etc/scepd/admin-notes'] and not removed and not changed,
       'purging removes what the package and scepd created and nothing else (the administrator\'s file stays)',
       f'added: {added}\nremoved: {removed}\nchanged owner: {changed}')
    now = {n: read(os.path.join(root, 'etc', n)) for n in accounts}
    ok(now == accounts, 'purging removes the user and group scepd, and no other account',
       '\n'.join(f'{n} differs' for n in accounts if now[n] != accounts[n]))


def it_runs(root, uid):
    """Starts scepd from the unit's own ExecStart line as the unit's User and
    Group, in the throw-away root and a network namespace of its own, with
    only the paths the unit leaves writable writable, and fetches the Remote
    UI over loopback."""
    unit = read(os.path.join(root, 'lib/systemd/system/scepd.service'))
    exec_start = re.search(r'^ExecStart=(.+)$', unit, re.M)
    user = re.search(r'^User=(\S+)$', unit, re.M)
    group = re.search(r'^Group=(\S+)$', unit, re.M)
    exec_reload = re.search(r'^ExecReload=(.+)$', unit, re.M)
    if not ok(exec_start and exec_reload and user and group, 'the unit names ExecStart, ExecReload, User and Group',
              unit):
        return
    # what setpriv can apply of the unit's confinement: the user, the group,
    # no new privileges, an empty capability bounding set
    priv = f'setpriv --reuid={user.group(1)} --regid={group.group(1)} --init-groups'
    if re.search(r'^NoNewPrivileges=yes$', unit, re.M):
        priv += ' --no-new-privs'
    if re.search(r'^CapabilityBoundingSet=$', unit, re.M):
        priv += ' --bounding-set=-all --inh-caps=-all'
    # systemd's "$$" is a literal "$"; its quoting of this line is the shell's
    reload = exec_reload.group(1).replace('$$', '$')
    conf = read(os.path.join(root, 'etc/scepd/scepd.conf'))
    listen = re.search(r'^listen\s*=\s*(\S+)', conf, re.M)
    addr = listen.group(1) if listen else '127.0.0.1:8080'
    # the shell inside the root starts scepd, waits for the UI (bounded: 100
    # tries, 0.2 s apart, each at most 2 s), reports who runs it, reloads it,
    # then stops it
    script = f'''
cd /
if touch /usr/.scepd-probe 2>/dev/null; then echo "rootfs: writable"; rm -f /usr/.scepd-probe; else echo "rootfs: read-only"; fi
{priv} -- {exec_start.group(1)} >/tmp/scepd.out 2>&1 &
pid=$!
i=0
while [ $i -lt 100 ]; do
    if perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "{addr}", Timeout => 2) or exit 1;
        print $s "GET /ui/ HTTP/1.0\\r\\nHost: {addr}\\r\\n\\r\\n"; local $/; my $r = <$s>;
        open(my $f, ">", "/tmp/ui.html") or exit 1; print $f $r; exit 0' 2>/dev/null; then break; fi
    kill -0 $pid 2>/dev/null || break
    i=$((i + 1)); sleep 0.2
done
echo "uid: $(awk '/^Uid:/ {{print $2, $3}}' /proc/$pid/status)"
echo "confined: $(awk '/^(NoNewPrivs|CapBnd|CapEff):/ {{printf "%s %s ", $1, $2}}' /proc/$pid/status)"
MAINPID=$pid {priv} -- {reload}
echo "reload: $?"
i=0
while [ $i -lt 100 ] && ! grep -q 'restart (SIGHUP)' /tmp/scepd.out; do i=$((i + 1)); sleep 0.1; done
echo "state: $(stat -c '%u %a' /var/lib/scepd/* 2>/dev/null | sort -u | tr '\\n' ' ')"
kill -TERM $pid 2>/dev/null; wait $pid; echo "exit: $?"
echo "--- ui"; head -c 2000 /tmp/ui.html; echo; echo "--- scepd"; cat /tmp/scepd.out
'''
    # what the unit leaves writable: StateDirectory, ReadWritePaths, PrivateTmp
    writable = ['/var/lib/' + d for d in re.findall(r'^StateDirectory=(\S+)$', unit, re.M)]
    writable += [w for line in re.findall(r'^ReadWritePaths=(.+)$', unit, re.M) for w in line.split()]
    if re.search(r'^PrivateTmp=yes$', unit, re.M):
        writable.append('/tmp')
    p = in_root(root, script, net=False, timeout=300, writable=writable)
    out = p.stdout
    ui = out.split('--- ui', 1)[1].split('--- scepd', 1)[0] if '--- ui' in out else ''
    ok(re.match(r'\s*HTTP/1\.[01] 200', ui) and '<title>scepd Remote UI</title>' in ui,
       f'scepd started from the unit\'s ExecStart, on a root read-only but for {" ".join(writable)}, serves '
       f'its Remote UI at http://{addr}/ui/', out + p.stderr)
    ok(re.search(r'^rootfs: read-only$', out, re.M), 'the root is read-only around scepd, as under ProtectSystem=strict',
       out)
    conf_line = re.search(r'^confined: (.*)$', out, re.M)
    ok(conf_line and 'NoNewPrivs: 1' in conf_line.group(1) and 'CapBnd: 0000000000000000' in conf_line.group(1) and
       'CapEff: 0000000000000000' in conf_line.group(1),
       'scepd runs without capabilities and with no_new_privs, as the unit asks', out)
    m = re.search(r'^uid: (\d+) (\d+)$', out, re.M)
    ok(m and int(m.group(1)) == uid and int(m.group(2)) == uid, f'scepd runs as the user {user.group(1)} (uid {uid})',
       out)
    st = re.search(r'^state: (.*)$', out, re.M)
    owners = {x.split()[0] for x in re.findall(r'\d+ \d+', st.group(1))} if st else set()
    ok(owners == {str(uid)}, 'the files scepd made in /var/lib/scepd belong to scepd', out)
    ok(re.search(r'^reload: 0$', out, re.M) and re.search(r'restart \(SIGHUP\)', out),
       'the unit\'s ExecReload, run as scepd with MAINPID set, makes scepd register acquired keys (SIGHUP)', out)
    ok(re.search(r'^exit: 0$', out, re.M), 'scepd stops cleanly on SIGTERM', out)


if __name__ == '__main__':
    if os.geteuid() != 0:
        print('not ok 1 - the packaging test runs as root (debootstrap, chroot, namespaces); run `make test` as root')
        print('1..1')
        sys.exit(1)
    sys.exit(main())
