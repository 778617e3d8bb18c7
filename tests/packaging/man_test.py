#!/usr/bin/env python3
"""The man pages render without warnings and describe every option the
programs accept: each long option of scepd, scepctl and scepca (their
getopt tables in src/cmd/) and each key of scepd's configuration parser has
its entry. Prints TAP; SCEPD_MAN_DIR holds the pages meson built."""
import os, re, subprocess, sys

from tap import done, ok, read

ROOT = os.environ.get('SCEPD_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAN = os.environ['SCEPD_MAN_DIR']
pages = {'scepd.8': 'scepd.c', 'scepd.conf.5': None, 'scepctl.1': 'scepctl.c', 'scepca.1': 'scepca.c'}
for page in pages:
    path = os.path.join(MAN, page)
    if not os.path.exists(path):
        ok(False, f'{page} was built', f'{path} is missing: is scdoc installed (tools/deps.sh)?')
        continue
    env = dict(os.environ, MANWIDTH='80', LANG='C.UTF-8')
    p = subprocess.run(['man', '--warnings', '-l', path], capture_output=True, text=True, env=env, timeout=60)
    name = page.rsplit('.', 1)[0]
    ok(p.returncode == 0 and not p.stderr.strip() and name.upper().split('.')[0] in p.stdout.upper(),
       f'{page} renders without warnings (man --warnings -l)', p.stderr)

for page, source in pages.items():
    if not source:
        continue
    code = read(os.path.join(ROOT, 'src', 'cmd', source))
    options = sorted(set(re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', code)))
    doc = read(os.path.join(ROOT, 'docs', 'man', page + '.scd'))
    missing = [o for o in options if f'*--{o}*' not in doc]
    ok(options and not missing, f'{page} describes each of the {len(options)} options in src/cmd/{source}',
       'not described: ' + ' '.join('--' + o for o in missing) + f'\nAdd them to docs/man/{page}.scd.')

code = read(os.path.join(ROOT, 'src', 'cmd', 'scepd.c'))
keys = sorted(set(re.findall(r'strcmp\(name, "([a-z_]+)"\)', code)))
doc = read(os.path.join(ROOT, 'docs', 'man', 'scepd.conf.5.scd'))
missing = [k for k in keys if not re.search(rf'^\*{k}\* = ', doc, re.M)]
ok(keys and not missing, f'scepd.conf.5 describes each of the {len(keys)} keys scepd\'s configuration parser reads',
   'not described: ' + ' '.join(missing) + '\nAdd them to docs/man/scepd.conf.5.scd.')
sys.exit(done())
