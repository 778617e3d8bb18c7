#!/usr/bin/env python3
"""The shipped unit confines scepd: `systemd-analyze security --offline=true`
scores it 2.0 or lower ("OK"), it runs scepd as the user its sysusers.d file
creates, raises LimitNOFILE, and keeps the state and export paths that the
tmpfiles.d file creates writable. Prints TAP; SCEPD_UNIT is the unit as meson
installs it."""
import os, re, shutil, subprocess, sys, tempfile

from tap import done, ok, read

ROOT = os.environ.get('SCEPD_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.environ['SCEPD_UNIT']
unit = read(UNIT)
with tempfile.TemporaryDirectory(prefix='scepd-unit-') as tmp:
    # the file name gives the unit its name
    path = os.path.join(tmp, 'scepd.service')
    shutil.copy(UNIT, path)
    p = subprocess.run(['systemd-analyze', 'security', '--offline=true', '--no-pager', path],
                       capture_output=True, text=True, timeout=120)
m = re.search(r'Overall exposure level for scepd\.service: (\d+\.\d+)', p.stdout)
score = float(m.group(1)) if m else 99.0
ok(m is not None and score <= 2.0, f'systemd-analyze security scores the unit {score} (2.0 or lower is "OK")',
   p.stdout[-3000:] + p.stderr[-2000:] + '\nTighten contrib/scepd.service; the lines marked with a cross add exposure.')


def setting(name):
    return re.findall(rf'^{name}=(.*)$', unit, re.M)


sysusers = read(os.path.join(ROOT, 'contrib', 'scepd.sysusers'))
user = re.search(r'^u\s+(\S+)', sysusers, re.M)
ok(user and setting('User') == [user.group(1)] and setting('Group') == [user.group(1)],
   'the unit runs scepd as the user and group that contrib/scepd.sysusers creates',
   f'User={setting("User")} Group={setting("Group")} sysusers: {sysusers}')
nofile = setting('LimitNOFILE')
ok(len(nofile) == 1 and nofile[0].isdigit() and int(nofile[0]) > 1024, 'LimitNOFILE is raised above 1024',
   f'LimitNOFILE={nofile}')
ok(setting('ExecStart') and re.match(r'/\S*/scepd --config /etc/scepd/scepd\.conf$', setting('ExecStart')[0]),
   'ExecStart starts scepd with /etc/scepd/scepd.conf', f'ExecStart={setting("ExecStart")}')
tmpfiles = read(os.path.join(ROOT, 'contrib', 'scepd.tmpfiles'))
dirs = re.findall(r'^d\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)', tmpfiles, re.M)
writable = ' '.join(setting('ReadWritePaths'))
state = setting('StateDirectory')
ok(('/var/lib/scepd', 'scepd', 'scepd') in dirs and state == ['scepd'],
   '/var/lib/scepd comes from tmpfiles.d and is the unit\'s StateDirectory', f'{dirs} StateDirectory={state}')
ok(('/etc/scepd/exports', 'scepd', 'scepd') in dirs and '/etc/scepd/exports' in writable.split(),
   '/etc/scepd/exports comes from tmpfiles.d and stays writable under ProtectSystem=strict',
   f'{dirs} ReadWritePaths={writable}')
# binding commands run as scepd, confined; other services are reloaded by the
# path units, whose own unit must point back at the service template
path_unit = read(os.path.join(ROOT, 'contrib', 'scepd-reload@.path'))
reload_unit = read(os.path.join(ROOT, 'contrib', 'scepd-reload@.service'))
ok('PathChanged=/etc/scepd/exports/%i' in path_unit and 'Unit=scepd-reload@%i.service' in path_unit and
   re.search(r'^ExecStart=\S*systemctl reload-or-restart %i\.service$', reload_unit, re.M),
   'scepd-reload@.path watches /etc/scepd/exports/SERVICE and reloads SERVICE', path_unit + reload_unit)
p = subprocess.run(['systemd-analyze', 'verify', '--man=no', os.path.join(ROOT, 'contrib', 'scepd-reload@.path')],
                   capture_output=True, text=True, timeout=120)
ok(p.returncode == 0 and not p.stderr.strip(), 'systemd-analyze verify accepts scepd-reload@.path and its service',
   p.stdout + p.stderr)
sys.exit(done())
