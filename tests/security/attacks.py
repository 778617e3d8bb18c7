#!/usr/bin/env python3
"""Attacks on scepd's and scepca's edge, each against real processes on
loopback; every check asserts the outcome the issue asks for. Prints TAP.

  logins     lock-out from elsewhere, user enumeration, sessions, cookie
  host       DNS rebinding (Host), Origin scheme/host/port
  tls        protocol versions and suites
  secrets    URL credentials, generated admin password, environment, cores,
             binding commands
  escaping   control characters from the network in the log, the API and
             scepctl's output
  crl        verify does not turn into a GetCRL per call
  scepca     challenge guessing, mscep_admin hash, CSR limits
"""
import base64
import http.server
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (SCEPCA, SCEPCTL, SCEPD, Daemon, Tap, free_port, http_call, read_text, rmtree,  # noqa: E402
                 sanitizer_report, wait_until, workdir)

ADMIN_PW = 'Adm1n-' + os.urandom(6).hex()
VIEWER_PW = 'View3r-' + os.urandom(6).hex()
CHALLENGE = 'Ch4ll-' + os.urandom(6).hex()
URL_SECRET = 'UrlPw-' + os.urandom(6).hex()
PROXY_SECRET = 'PxPw-' + os.urandom(6).hex()
ESC = '\x1b'
t = Tap()


class Env:
    pass


def api(e, method, path, body=None, user='admin', password=None, source='127.0.0.2', tls=False, headers=None):
    port = e.tls_port if tls else e.port
    h = {'Host': f'127.0.0.1:{port}'}
    h.update(headers or {})
    st, hd, raw = http_call(port, method, path, source=source, tls=tls, user=user,
                            password=ADMIN_PW if password is None and user == 'admin' else password,
                            headers=h, body=body, timeout=60)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return st, hd, doc, raw


def code(doc):
    return ((doc or {}).get('error') or {}).get('code') if isinstance(doc, dict) else None


# ---------------------------------------------------------------- logins --

def logins(e):
    st, _, _, _ = api(e, 'PUT', '/api/v1/users/viewer', {'password': VIEWER_PW, 'role': 'viewer'})
    t.ok(st == 200, 'logins: a viewer is created')
    # someone at 127.0.0.3 guesses the password of an operator who has not
    # logged in yet (nothing remembered that could hide a lock)
    st = api(e, 'PUT', '/api/v1/users/operator', {'password': 'Operator-pw-1', 'role': 'admin'})[0]
    t.ok(st == 200, 'logins: an operator is created')
    statuses, waits = [], []
    for i in range(30):  # guess, and honour the waits until one is 2 s or more
        st, hd, _, _ = api(e, 'GET', '/api/v1/status', user='operator', password=f'guess-{i}', source='127.0.0.3')
        statuses.append(st)
        if st == 429:
            waits.append(int(hd.get('Retry-After') or 0))
            if waits[-1] >= 2:
                break
            time.sleep(waits[-1] + 0.1)
    t.ok(statuses[:3] == [401] * 3 and waits and waits[-1] >= 2,
         f'logins: guesses from one address are throttled with growing waits ({statuses}, waits {waits})')
    st = api(e, 'GET', '/api/v1/status', user='operator', password='Operator-pw-1', source='127.0.0.3')[0]
    t.ok(st == 429, f'logins: the guessing address waits even with the right password ({st})')
    st = api(e, 'GET', '/api/v1/status', user='operator', password='Operator-pw-1', source='127.0.0.2')[0]
    t.ok(st == 200, f'logins: the operator still logs in from another address, no lock-out ({st})')
    # user enumeration: same answer and the same cost for unknown and known names
    known = api(e, 'GET', '/api/v1/status', user='admin', password='wrong-pw-1', source='127.0.0.4')
    unknown = api(e, 'GET', '/api/v1/status', user='nosuchuser', password='wrong-pw-1', source='127.0.0.5')
    t.ok(known[0] == unknown[0] == 401 and known[3] == unknown[3],
         'logins: an unknown user gets the same answer as a wrong password', [known[3][:200], unknown[3][:200]])

    def timed(user, source):
        start = time.monotonic()
        api(e, 'GET', '/api/v1/status', user=user, password='wrong-pw-2', source=source)
        return time.monotonic() - start
    k = [timed('admin', f'127.0.2.{i}') for i in range(1, 6)]
    u = [timed(f'ghost{i}', f'127.0.3.{i}') for i in range(1, 6)]
    km, um = statistics.median(k), statistics.median(u)
    t.ok(um >= 0.4 * km, f'logins: an unknown user costs what a known one does '
         f'(median {um * 1000:.0f} ms vs {km * 1000:.0f} ms)')
    # sessions end when the password or role changes
    st, hd, doc, _ = api(e, 'POST', '/api/v1/session', {'user': 'viewer', 'password': VIEWER_PW}, user=None)
    cookie = (hd.get('Set-Cookie') or '').split(';')[0] if hd else ''
    t.ok(st == 200 and cookie.startswith('scepd_session='), 'logins: the viewer logs in (cookie over HTTP)')
    st = api(e, 'GET', '/api/v1/status', user=None, headers={'Cookie': cookie})[0]
    t.ok(st == 200, 'logins: the session works')
    st = api(e, 'PUT', '/api/v1/users/viewer', {'password': VIEWER_PW + 'x', 'role': 'viewer'})[0]
    st2 = api(e, 'GET', '/api/v1/status', user=None, headers={'Cookie': cookie})[0]
    t.ok(st == 200 and st2 == 401, f'logins: a password change ends the session ({st}, {st2})')
    st, hd, _, _ = api(e, 'POST', '/api/v1/session', {'user': 'viewer', 'password': VIEWER_PW + 'x'}, user=None,
                       tls=True)
    set_cookie = hd.get('Set-Cookie') or '' if hd else ''
    t.ok(st == 200 and set_cookie.startswith('__Host-scepd_session=') and 'Secure' in set_cookie
         and 'Path=/' in set_cookie and 'Domain' not in set_cookie,
         'logins: over HTTPS the cookie has the __Host- prefix', set_cookie)
    cookie = set_cookie.split(';')[0]
    st = api(e, 'GET', '/api/v1/status', user=None, headers={'Cookie': cookie}, tls=True)[0]
    st2 = api(e, 'PUT', '/api/v1/users/viewer', {'password': VIEWER_PW + 'x', 'role': 'admin'})[0]
    st3 = api(e, 'GET', '/api/v1/status', user=None, headers={'Cookie': cookie}, tls=True)[0]
    t.ok(st == 200 and st2 == 200 and st3 == 401, f'logins: a role change ends the session ({st}, {st2}, {st3})')


# ------------------------------------------------------------------ host --

def host_and_origin(e):
    for host, want in ((f'evil.example:{e.port}', 421), (f'rebind.attacker.test:{e.port}', 421),
                       (f'printer.test:{e.port}', 200), (f'127.0.0.1:{e.port}', 200), (f'localhost:{e.port}', 200)):
        st, _, doc, _ = api(e, 'GET', '/api/v1/status', headers={'Host': host})
        t.ok(st == want and (want == 200 or code(doc) == 'host_unknown'),
             f'host: Host {host} -> {want} (got {st})')
    st, _, _, _ = api(e, 'GET', '/ui/', user=None, headers={'Host': f'evil.example:{e.port}'})
    t.ok(st == 421, f'host: the UI is not served to a rebound name either ({st})')
    body = {'enabled': False}
    for origin in (f'http://127.0.0.1:{e.port + 1}', f'https://127.0.0.1:{e.port}', 'http://evil.example',
                   f'http://127.0.0.1.evil.example:{e.port}'):
        st, _, doc, _ = api(e, 'PUT', '/api/v1/scep/auto-request', body, headers={'Origin': origin})
        t.ok(st == 403 and code(doc) == 'csrf', f'host: Origin {origin} is refused ({st})')
    st = api(e, 'PUT', '/api/v1/scep/auto-request', body, headers={'Origin': f'http://127.0.0.1:{e.port}'})[0]
    t.ok(st == 200, f'host: the device\'s own Origin is accepted ({st})')


# ------------------------------------------------------------------- tls --

def s_client(port, *args):
    p = subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{port}', '-brief'] + list(args),
                       input=b'', capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode(errors='replace')
    m = re.search(r'Ciphersuite: (\S+)', out)
    return m.group(1) if m else None


def tls(e):
    for args, what in ((['-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0'], 'TLS 1.0'),
                       (['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'], 'TLS 1.1'),
                       (['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'], 'TLS 1.2 ECDHE with CBC (SHA-1)'),
                       (['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256'], 'TLS 1.2 ECDHE with CBC (SHA-256)'),
                       (['-tls1_2', '-cipher', 'AES128-GCM-SHA256:AES128-SHA:@SECLEVEL=0'], 'TLS 1.2 static RSA'),
                       (['-tls1_2', '-cipher', 'DHE-RSA-AES128-GCM-SHA256'], 'TLS 1.2 finite-field DHE')):
        got = s_client(e.tls_port, *args)
        t.ok(got is None, f'tls: {what} is refused (negotiated {got})')
    got = s_client(e.tls_port, '-tls1_2')
    t.ok(got and got.startswith('ECDHE-') and ('GCM' in got or 'CHACHA20' in got),
         f'tls: TLS 1.2 gets ECDHE with AEAD ({got})')
    got = s_client(e.tls_port, '-tls1_3')
    t.ok(got and got.startswith('TLS_'), f'tls: TLS 1.3 works ({got})')


# --------------------------------------------------------------- secrets --

def secrets(e):
    url = f'http://scepuser:{URL_SECRET}@127.0.0.1:{e.ca_port}/scep'
    proxy = f'http://proxyuser:{PROXY_SECRET}@127.0.0.1:{free_port()}'
    st, _, doc, raw = api(e, 'PUT', '/api/v1/scep/settings', {'url': url, 'proxy': proxy})
    t.ok(st == 200, f'secrets: settings with credentials in the URLs accepted ({st})', raw[:300])
    st, _, doc, raw = api(e, 'GET', '/api/v1/scep/settings')
    text = raw.decode(errors='replace')
    t.ok(st == 200 and URL_SECRET not in text and PROXY_SECRET not in text and doc.get('url_credentials_set') is True
         and doc.get('proxy_credentials_set') is True and doc.get('url') == f'http://127.0.0.1:{e.ca_port}/scep',
         'secrets: the API says the credentials are set and never shows them', text[:400])
    st, _, _, raw = api(e, 'GET', '/api/v1/audit')
    t.ok(st == 200 and URL_SECRET not in raw.decode(errors='replace') and b'scep_settings' in raw,
         'secrets: the audit log has the change, not the credentials')
    db = b''
    for name in ('scepd.db', 'scepd.db-wal'):
        path = os.path.join(e.state, name)
        if os.path.exists(path):
            with open(path, 'rb') as fp:
                db += fp.read()
    t.ok(db and URL_SECRET.encode() not in db and PROXY_SECRET.encode() not in db,
         'secrets: the database holds them sealed, not in clear')
    # back to a direct connection for the CRL test, credentials kept for the same server
    st = api(e, 'PUT', '/api/v1/scep/settings', {'url': f'http://127.0.0.1:{e.ca_port}/scep',
                                                  'proxy_credentials_set': False})[0]
    t.ok(st == 200, 'secrets: the proxy is removed again')
    with open(f'/proc/{e.scepd.pid}/environ', 'rb') as fp:
        environ = fp.read()
    t.ok(ADMIN_PW.encode() not in environ, 'secrets: SCEPD_ADMIN_PASSWORD is gone from scepd\'s environment')
    with open(f'/proc/{e.scepd.pid}/limits') as fp:
        core = [line for line in fp if line.startswith('Max core file size')]
    t.ok(core and core[0].split()[4:6] == ['0', '0'], f'secrets: scepd makes no core dumps ({core})')
    with open(f'/proc/{e.scepca.pid}/cmdline', 'rb') as fp:
        t.ok(CHALLENGE.encode() not in fp.read(), 'secrets: scepca\'s challenge is not on its command line')
    # a binding command: clean environment, no inherited descriptors
    st = api(e, 'PUT', '/api/v1/bindings/probe', {'key_name': 'DefaultTLS'})[0]
    envfile, fdfile = os.path.join(e.probe, 'probe.env'), os.path.join(e.probe, 'probe.fds')
    done = wait_until(lambda: os.path.exists(fdfile) and os.path.getsize(fdfile) > 0, 20)
    t.ok(st == 200 and done, f'secrets: the binding command ran ({st})')
    env = read_text(envfile) if os.path.exists(envfile) else ''
    fds = sorted(int(x) for x in read_text(fdfile).split()) if os.path.exists(fdfile) else []
    t.ok(env and 'SCEPD_ADMIN_PASSWORD' not in env and ADMIN_PW not in env and 'SCEPD_FUNCTION=probe' in env,
         'secrets: the command\'s environment is clean', env[:400])
    t.ok(fds == [0, 1, 2], f'secrets: the command inherits no descriptor but 0, 1, 2 ({fds})')
    # a generated admin password goes to a 0600 file, not to the output
    state2 = os.path.join(e.work, 'state2')
    log2 = os.path.join(e.work, 'scepd2.log')
    env2 = {k: v for k, v in os.environ.items() if k != 'SCEPD_ADMIN_PASSWORD'}
    port2 = free_port()
    d2 = Daemon([SCEPD, '--state', state2, '--kek-file', os.path.join(e.work, 'kek2'), '--listen',
                 f'127.0.0.1:{port2}'], log2, env=env2)
    try:
        pwfile = os.path.join(state2, 'admin-password')
        ok = wait_until(lambda: os.path.exists(pwfile) and os.path.getsize(pwfile) > 0 and
                        'admin-password' in read_text(log2), 30)
        pw = read_text(pwfile).strip() if ok else ''
        mode = os.stat(pwfile).st_mode & 0o777 if ok else None
        t.ok(ok and mode == 0o600, f'secrets: a generated admin password is in a 0600 file (mode {mode and oct(mode)})')
        t.ok(pw and pw not in read_text(log2), 'secrets: the generated password is not printed or logged')
        st = http_call(port2, 'GET', '/api/v1/status', user='admin', password=pw, timeout=60)[0] if pw else None
        t.ok(st == 200, f'secrets: the password in the file logs in ({st})')
    finally:
        d2.stop()


# -------------------------------------------------------------- escaping --

class EvilScep(http.server.BaseHTTPRequestHandler):
    def version_string(self):  # the one Server header (send_response sends it)
        return 'evil\x1b[2J'

    def do_GET(self):
        body = b'POSTPKIOperation\nSHA-256\n\x1b[31mEVIL\x07\n\x1b]0;pwned\x07\n'
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def escaping(e):
    st, _, doc, raw = api(e, 'GET', '/api/v1/status', user=f'x{ESC}]0;pwned\x07', password='whatever-1',
                          source='127.0.0.7')
    time.sleep(0.3)
    log = open(e.scepd.log, 'rb').read()
    t.ok(st == 401 and b'\x1b' not in log and b'\\x1B]0;pwned' in log,
         'escaping: a user name with control characters is escaped in the log')
    s = socket.create_connection(('127.0.0.1', e.port), timeout=10)
    s.sendall(f'GET /api/v1/status HTTP/1.1\r\nHost: evil{ESC}[2J.example\r\nConnection: close\r\n\r\n'.encode())
    reply = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    body = reply.split(b'\r\n\r\n', 1)[-1]
    try:
        detail = json.loads(body)['error']['detail']
    except (ValueError, KeyError, TypeError):
        detail = ''
    t.ok(ESC not in detail and '\\x1B[2J' in detail, f'escaping: the API error detail is escaped ({detail!r})')
    srv = http.server.HTTPServer(('127.0.0.1', 0), EvilScep)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        p = subprocess.run([SCEPCTL, 'getcaps', '-v', '-u', f'http://127.0.0.1:{srv.server_address[1]}/scep'],
                           capture_output=True, timeout=60)
    finally:
        srv.shutdown()
    out = p.stdout + p.stderr
    t.ok(p.returncode == 0 and b'\x1b' not in out and b'\x07' not in out and b'\\x1B' in out,
         'escaping: scepctl shows a server\'s caps and Server header escaped', out.decode(errors='replace')[:400])


# ------------------------------------------------------------------- crl --

def crl(e):
    st, _, doc, raw = api(e, 'POST', '/api/v1/scep/requests',
                          {'key_name': 'Web1', 'common_name': 'device.test', 'challenge_password': CHALLENGE,
                           'key_algorithm': 'ecdsa', 'key_length': 256})
    rid = (doc or {}).get('id')
    t.ok(st == 202 and rid, f'crl: a request is accepted ({st})', raw[:300])

    def state():
        return api(e, 'GET', f'/api/v1/scep/requests/{rid}')[2].get('state')
    wait_until(lambda: state() in ('acquired', 'failed'), 60, 0.3)
    t.ok(state() == 'acquired', f'crl: the request is acquired ({state()})')
    st, _, res, _ = api(e, 'POST', '/api/v1/restart')
    t.ok(st == 200 and 'Web1' in (res or {}).get('registered', []), 'crl: the pair is registered')
    wait_until(lambda: 'GetCRL' in read_text(e.scepca.log), 20)
    before = read_text(e.scepca.log).count('GetCRL transaction')
    statuses = [api(e, 'POST', '/api/v1/keys/Web1/verify')[0] for _ in range(25)]
    time.sleep(1)
    after = read_text(e.scepca.log).count('GetCRL transaction')
    t.ok(all(s == 200 for s in statuses) and after - before <= 1,
         f'crl: 25 verifications caused {after - before} GetCRL (at most one per interval)')


# ---------------------------------------------------------------- scepca --

def enroll(e, *extra, challenge=CHALLENGE):
    out = os.path.join(e.work, 'enroll')
    os.makedirs(out, exist_ok=True)
    argv = [SCEPCTL, 'enroll', '-u', f'http://127.0.0.1:{e.ca_port}/scep', '--cn', 'lab.test', '--key-type',
            'ec:P-256', '--challenge', challenge, '--key-out', os.path.join(out, 'k.pem'), '--cert-out',
            os.path.join(out, 'c.pem')] + list(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def pki_enroll(e, work, sans, name):
    """strongSwan pki (it sends any number of SANs; scepctl stops at 32)."""
    key = os.path.join(work, f'{name}.key')
    subprocess.run(['pki', '--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem'], stdout=open(key, 'wb'),
                   stderr=subprocess.DEVNULL, timeout=60)
    argv = ['pki', '--scep', '--url', f'http://127.0.0.1:{e.ca_port}/scep', '--in', key, '--dn', f'CN={name}',
            '--password', CHALLENGE, '--cacert-enc', e.ca_der, '--cacert-sig', e.ca_der, '--cipher', 'des3',
            '--outform', 'pem']
    for san in sans:
        argv += ['--san', san]
    return subprocess.run(argv, capture_output=True, timeout=120)


def scepca(e):
    work = os.path.join(e.work, 'pki')
    os.makedirs(work, exist_ok=True)
    e.ca_der = os.path.join(work, 'ca.der')
    subprocess.run(['pki', '--scepca', '--url', f'http://127.0.0.1:{e.ca_port}/scep', '--caout', e.ca_der,
                    '--force'], capture_output=True, timeout=60)
    t.ok(os.path.exists(e.ca_der), 'scepca: strongSwan pki fetched the CA certificate')
    p = pki_enroll(e, work, [f'host{i}.lab.test' for i in range(65)], 'many-sans')
    log = read_text(e.scepca.log)
    t.ok(p.returncode != 0 and 'too many subjectAltNames' in log,
         f'scepca: a request with 65 subjectAltNames is refused with badRequest (exit {p.returncode})',
         p.stderr.decode(errors='replace')[-300:])
    p = pki_enroll(e, work, [f'{"x" * 60}.{i}.lab.test' for i in range(300)], 'huge')
    log = read_text(e.scepca.log)
    t.ok(p.returncode != 0 and 'larger than 16384 bytes' in log,
         f'scepca: a request over 16 KiB is refused with badRequest (exit {p.returncode})',
         p.stderr.decode(errors='replace')[-300:])
    p = pki_enroll(e, work, [f'host{i}.lab.test' for i in range(3)], 'three-sans')
    t.ok(p.returncode == 0, f'scepca: a request with 3 subjectAltNames is issued (exit {p.returncode})',
         p.stderr.decode(errors='replace')[-300:])
    # mscep_admin: scrypt at rest, Basic still works
    cadir = os.path.join(e.work, 'ndes')
    subprocess.run([SCEPCA, 'init', '--dir', cadir, '--ndes', '--admin-password', 'Lab-admin-pw-1'],
                   capture_output=True, timeout=120)
    con = sqlite3.connect(os.path.join(cadir, 'scepca.db'))
    try:
        stored = dict(con.execute("SELECT name, value FROM settings WHERE name LIKE 'admin_%'").fetchall())
    except sqlite3.Error as ex:
        stored = {'error': str(ex)}
    con.close()
    t.ok((stored.get('admin_hash') or '').startswith('scrypt$'),
         f'scepca: the mscep_admin password is stored with scrypt ({(stored.get("admin_hash") or "")[:14]}...)',
         stored)
    port = free_port()
    d = Daemon([SCEPCA, 'serve', '--dir', cadir, '--listen', f'127.0.0.1:{port}', '--profile', 'ndes2016'],
               os.path.join(e.work, 'ndes.log'))
    try:
        wait_until(lambda: http_call(port, 'GET', '/certsrv/mscep/mscep.dll?operation=GetCACaps')[0] == 200, 30)
        good = http_call(port, 'GET', '/certsrv/mscep_admin/', user='admin', password='Lab-admin-pw-1', timeout=60)[0]
        bad = http_call(port, 'GET', '/certsrv/mscep_admin/', user='admin', password='wrong', timeout=60)[0]
        t.ok(good == 200 and bad == 401, f'scepca: mscep_admin accepts the password and refuses others ({good}, {bad})')
    finally:
        d.stop()
    # challenge guessing: after a few wrong ones, even the right one waits
    codes = [enroll(e, challenge=f'guess-{i}').returncode for i in range(6)]
    p = enroll(e)
    log = read_text(e.scepca.log)
    t.ok(codes == [1] * 6 and p.returncode == 1 and 'too many wrong challenge' in log,
         f'scepca: challenge guesses are throttled (wrong: {codes}, right one after them: exit {p.returncode})')


# ------------------------------------------------------------------ main --

def start(e):
    e.work = workdir('scepd-attacks.')
    cadir = os.path.join(e.work, 'ca')
    p = subprocess.run([SCEPCA, 'init', '--dir', cadir], capture_output=True, text=True, timeout=120)
    if not t.ok(p.returncode == 0, 'scepca init', p.stderr):
        return False
    chfile = os.path.join(e.work, 'challenge')
    with open(chfile, 'w') as fp:
        fp.write(CHALLENGE + '\n')
    e.ca_port = free_port()
    e.scepca = Daemon([SCEPCA, 'serve', '--dir', cadir, '--listen', f'127.0.0.1:{e.ca_port}', '--challenge-file',
                       chfile], os.path.join(e.work, 'scepca.log'))
    e.port, e.tls_port = free_port(), free_port()
    e.state = os.path.join(e.work, 'state')
    conf = os.path.join(e.work, 'scepd.conf')
    # the command runs as the agent's unprivileged user: a place it may write
    os.chmod(e.work, 0o711)
    e.probe = os.path.join(e.work, 'probe')
    os.makedirs(e.probe, mode=0o777)
    os.chmod(e.probe, 0o777)
    with open(conf, 'w') as fp:
        fp.write('[scepd]\nserver_name = printer.test\n\n[function probe]\n'
                 f'command = env > {e.probe}/probe.env; exec > {e.probe}/probe.fds; ls /proc/$$/fd\n')
    e.scepd = Daemon([SCEPD, '--config', conf, '--state', e.state, '--kek-file', os.path.join(e.work, 'kek'),
                      '--listen', f'127.0.0.1:{e.port}',
                      '--listen-tls', f'127.0.0.1:{e.tls_port}', '--scep-url', f'http://127.0.0.1:{e.ca_port}/scep'],
                     os.path.join(e.work, 'scepd.log'), env=dict(os.environ, SCEPD_ADMIN_PASSWORD=ADMIN_PW))
    up = wait_until(lambda: api(e, 'GET', '/api/v1/status')[0] == 200 and
                    http_call(e.ca_port, 'GET', '/scep?operation=GetCACaps')[0] == 200, 30)
    return t.ok(up, 'scepd and scepca start', read_text(e.scepd.log)[-1500:])


def main():
    e = Env()
    e.scepd = e.scepca = None
    try:
        if start(e):
            for part in (logins, host_and_origin, tls, secrets, escaping, crl, scepca):
                try:
                    part(e)
                except Exception as ex:  # an attack that breaks the harness is a failure
                    t.ok(False, f'{part.__name__}: {type(ex).__name__}: {ex}')
    finally:
        for name, d in (('scepd', e.scepd), ('scepca', e.scepca)):
            if d:
                d.stop()
                log = read_text(d.log)
                rep = sanitizer_report(log)
                t.ok(not rep, f'no sanitizer report in the {name} log', rep)
                t.ok(ADMIN_PW not in log and URL_SECRET not in log and PROXY_SECRET not in log and
                     (name == 'scepca' or CHALLENGE not in log), f'no secret in the {name} log')
        if getattr(e, 'work', None):
            rmtree(e.work)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
