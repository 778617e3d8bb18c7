#!/usr/bin/env python3
"""scepd's processes, from outside (docs/internals/privsep.md).

scepd, started as root here, shows a supervisor and three processes: the
vault, the agent and the network process. The one with the listening
sockets is not root; none that has the store open has a TCP or UDP socket;
each runs under a seccomp filter with no_new_privs. A binding's command,
which the agent starts, cannot open an internet socket. No private key of
an enrolled pair and not the key-encryption key are in the memory of the
agent or of the network process (read through /proc/PID/mem). A child
killed with SIGKILL brings the set back on the same ports with nothing lost;
the supervisor killed takes its children with it; SIGTERM stops them all.

Prints TAP. Environment: SCEPD, SCEPCA, SCEPD_SOURCE_ROOT; KEEP_TMP=1 keeps
the work directory.
"""
import glob
import os
import re
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scepd_e2e as e2e  # noqa: E402  (TAP, processes, scepca and scepd drivers)
from scepd_e2e import ok, eq, diag  # noqa: E402
import scepd_sealed as sealed  # noqa: E402  (opening sealed keys with the KEK)

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

ROLES = ('scepd-vault', 'scepd-agent', 'scepd-net')
MEM_REGION_MAX = 64 << 20   # larger mappings are the sanitizers' reserves
MEM_TOTAL_MAX = 1536 << 20  # bounded scan per process


def children(pid):
    """comm -> pid of the direct children of pid."""
    out = {}
    for stat in glob.glob('/proc/[0-9]*/stat'):
        try:
            with open(stat) as fp:
                text = fp.read()
        except OSError:
            continue
        comm = text[text.index('(') + 1:text.rindex(')')]
        ppid = int(text[text.rindex(')') + 2:].split()[1])
        if ppid == pid:
            out[comm] = int(stat.split('/')[2])
    return out


def status(pid, field):
    try:
        with open(f'/proc/{pid}/status') as fp:
            for line in fp:
                if line.startswith(field + ':'):
                    return line.split(':', 1)[1].split()
    except OSError:
        pass
    return None


def socket_inodes(pid):
    inodes = set()
    for fd in glob.glob(f'/proc/{pid}/fd/*'):
        try:
            m = re.match(r'socket:\[(\d+)\]', os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    return inodes


def open_files(pid):
    files = set()
    for fd in glob.glob(f'/proc/{pid}/fd/*'):
        try:
            files.add(os.readlink(fd))
        except OSError:
            pass
    return files


def inet_sockets():
    """inode -> (table, listening) for every TCP and UDP socket."""
    out = {}
    for table in ('tcp', 'tcp6', 'udp', 'udp6'):
        try:
            with open(f'/proc/net/{table}') as fp:
                next(fp)
                for line in fp:
                    f = line.split()
                    out[f[9]] = (table, f[3] == '0A')
        except OSError:
            pass
    return out


def memory_holds(pid, needles):
    """Which of needles (bytes) occur in the readable, writable memory of pid."""
    found = set()
    total = 0
    with open(f'/proc/{pid}/maps') as maps, open(f'/proc/{pid}/mem', 'rb', 0) as mem:
        for line in maps:
            f = line.split()
            start, end = (int(x, 16) for x in f[0].split('-'))
            if 'r' not in f[1] or 'w' not in f[1] or end - start > MEM_REGION_MAX:
                continue
            if total + (end - start) > MEM_TOTAL_MAX:
                break
            total += end - start
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            for n in needles:
                if n in chunk:
                    found.add(n)
    return found


def private_needles(pem):
    """Distinctive byte strings of a private key: the EC scalar, or RSA's
    private exponent and primes (big-endian)."""
    key = serialization.load_pem_private_key(pem.encode(), None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        v = key.private_numbers().private_value
        return [v.to_bytes(32, 'big')[:24]]
    n = key.private_numbers()
    return [x.to_bytes((x.bit_length() + 7) // 8, 'big')[:32] for x in (n.d, n.p, n.q)]


def wait_children(pid, timeout=20):
    return e2e.wait_for(lambda: (lambda c: c if all(r in c for r in ROLES) else None)(children(pid)), timeout,
                        0.1)


def main():
    work = tempfile.mkdtemp(prefix='scepd_privsep.')
    if os.geteuid() != 0:
        print('Bail out! this suite starts scepd as root (the network process drops to an unprivileged user)')
        return 1
    ca = e2e.CA(work, 'ca')
    url = ca.serve()
    # the command runs as the agent's unprivileged user: a place it may write
    os.chmod(work, 0o711)
    os.makedirs(os.path.join(work, 'probe'), mode=0o777)
    os.chmod(os.path.join(work, 'probe'), 0o777)
    probe = os.path.join(work, 'probe', 'probe.out')
    conf = os.path.join(work, 'scepd.conf')
    state = os.path.join(work, 'd')
    # a binding whose command tries an internet socket: the agent starts it,
    # under the agent's seccomp filter
    script = os.path.join(work, 'probe.py')
    with open(script, 'w') as fp:
        fp.write('import errno, socket\n'
                 'try:\n'
                 '    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\n'
                 '    r = "opened"\n'
                 'except OSError as e:\n'
                 '    r = "refused " + errno.errorcode.get(e.errno, str(e.errno))\n'
                 'open(%r, "w").write(r)\n' % probe)
    with open(conf, 'w') as fp:
        fp.write('[scepd]\nstate_dir = %s\nlisten = 127.0.0.1:0\nlisten_tls = 127.0.0.1:0\nuser = nobody\n\n'
                 '[function probe]\nexport_cert = %s/probe.crt\ncommand = %s %s\n' % (
                     state, work, '/usr/bin/python3', script))
    kek = state + '.kek'
    d = None
    try:
        d = e2e.Scepd(work, 'd', scep_url=url, config=conf)
        kids = wait_children(d.proc.pid)
        ok(kids is not None, 'scepd started as root shows its supervisor and three processes',
           'children: %r' % (children(d.proc.pid),))
        kids = kids or {}
        eq(status(d.proc.pid, 'Uid')[0], '0', 'the supervisor runs as root (it holds nothing)')
        socks = inet_sockets()
        holders = {r: open_files(p) for r, p in kids.items()}
        inet = {r: [socks[i] for i in socket_inodes(p) if i in socks] for r, p in kids.items()}
        listening = [r for r in kids if any(listen for _, listen in inet[r])]
        eq(listening, ['scepd-net'], 'only the network process has listening sockets')
        uid = status(kids.get('scepd-net', 0), 'Uid')
        ok(uid is not None and uid[0] != '0', 'the network process does not run as root', 'uid %r' % (uid,))
        uid = status(kids.get('scepd-agent', 0), 'Uid')
        ok(uid is not None and uid[0] != '0',
           'the agent (JSON, SCEP replies, the store) does not run as root either', 'uid %r' % (uid,))
        uid = status(kids.get('scepd-vault', 0), 'Uid')
        ok(uid is not None and uid[0] == '0', 'the vault keeps root (it reads the KEK file, writes the exports)',
           'uid %r' % (uid,))
        store = [r for r in kids if any(f.endswith('/scepd.db') for f in holders[r])]
        eq(store, ['scepd-agent'], 'the agent alone has the store open')
        ok(all(not inet[r] for r in store), 'no process with the store open has a TCP or UDP socket',
           repr({r: inet[r] for r in store}))
        eq(inet.get('scepd-vault'), [], 'the vault has no TCP or UDP socket')
        ok(all(kek not in holders[r] for r in ('scepd-agent', 'scepd-net')),
           'neither the agent nor the network process has the KEK file open')
        ok(all(status(p, 'Seccomp') == ['2'] and status(p, 'NoNewPrivs') == ['1'] for p in kids.values()),
           'every process runs under a seccomp filter with no_new_privs',
           repr({r: (status(p, 'Seccomp'), status(p, 'NoNewPrivs')) for r, p in kids.items()}))

        # an enrollment through the processes: transfers by the network
        # process, messages signed and opened in the vault
        st, _, doc, rid = d.request('k1', 'device1.example')
        eq(st, 202, 'a request is accepted')
        r = d.wait_request(rid, timeout=60)
        eq((r or {}).get('state'), 'acquired', 'the key is acquired through the vault and the network process')
        st, _, res = d.api('POST', '/api/v1/restart')
        eq(st, 200, 'registration')
        st, _, _ = d.api('PUT', '/api/v1/bindings/probe', {'key_name': 'k1'})
        eq(st, 200, 'k1 is bound to the probe function')
        got = e2e.wait_for(lambda: os.path.exists(probe) and open(probe).read(), 20)
        ok(got and got.startswith('refused'), "a binding's command cannot open an internet socket", repr(got))
        k1 = sealed.pair_key(state, kek, 'k1')
        tls = sealed.pair_key(state, kek, 'DefaultTLS')
        ok(k1 is not None and tls is not None, 'the pairs open with the KEK (sealed in the store)')
        with open(kek, 'rb') as fp:
            kek_bytes = fp.read()
        needles = private_needles(k1) if k1 else []
        kids = children(d.proc.pid)
        for role in ('scepd-agent', 'scepd-net'):
            hits = memory_holds(kids[role], needles + [kek_bytes])
            ok(not hits, f'the {role} process holds neither k1\'s private key nor the KEK',
               '%d of %d needles found' % (len(hits), len(needles) + 1))
        # the control: the scan finds a key that is there (the listener's,
        # which the network process holds by design)
        tls_needles = private_needles(tls) if tls else [b'-']
        ok(memory_holds(kids['scepd-net'], tls_needles),
           'control: the network process does hold the HTTPS listener\'s key, and the scan finds it')
        served = e2e.served_sha256(d.tls_port)
        ok(bool(served), 'HTTPS is served with the bound key, handed to the network process by the vault')

        # a child killed: the set comes back on the same ports, nothing lost
        before = sorted(d.keys())
        for role in ROLES:
            old = children(d.proc.pid).get(role)
            os.kill(old, signal.SIGKILL)
            back = e2e.wait_for(lambda: (lambda c: c if all(r in c for r in ROLES) and c.get(role) != old and
                                         d.api('GET', '/api/v1/status')[0] == 200 else None)(children(d.proc.pid)),
                                30, 0.2)
            ok(back is not None and d.proc.poll() is None,
               f'{role} killed with SIGKILL: scepd restarts its processes on the same ports',
               d.log()[-600:])
        eq(sorted(d.keys()), before, 'the keys are all there after the restarts')
        eq(e2e.served_sha256(d.tls_port), served, 'HTTPS presents the same certificate after the restarts')

        # the supervisor killed: its children go with it
        kids = children(d.proc.pid)
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(timeout=10)
        gone = e2e.wait_for(lambda: not any(os.path.exists(f'/proc/{p}') and status(p, 'State') and
                                            status(p, 'State')[0] != 'Z' for p in kids.values()), 10)
        ok(gone, 'the supervisor killed with SIGKILL: its processes end too')
        d.start(config=conf)
        kids = wait_children(d.proc.pid) or {}
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout=20)
        eq(rc, 0, 'SIGTERM stops scepd cleanly (exit 0)')
        ok(not any(os.path.exists(f'/proc/{p}') and status(p, 'State') and status(p, 'State')[0] != 'Z'
                   for p in kids.values()), 'and its processes with it')
    except Exception:
        import traceback
        ok(False, 'the test ran to its end', traceback.format_exc())
    finally:
        e2e.finish(work, 'privsep-')
    print(f'1..{e2e._n}')
    return 1 if e2e._failed else 0


if __name__ == '__main__':
    sys.exit(main())
