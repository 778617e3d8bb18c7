#!/usr/bin/env python3
"""Access control of scepd's REST API, against a real scepd on loopback.
Prints TAP; exits 1 when any check fails.

The routes are read from src/api/routes.c, so a new endpoint is covered
without editing this file: every one refuses a request without credentials
(401), every admin-only one refuses a viewer (403) and changes nothing,
every read is open to a viewer. Also: the CSRF token of cookie sessions,
foreign Origins, login throttling, the security headers, oversized bodies
and unknown fields.

Environment: SCEPD (binary; default under SCEPD_BUILD_ROOT), SCEPD_SOURCE_ROOT.
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('SCEPD_SOURCE_ROOT', os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get('SCEPD_BUILD_ROOT', os.path.join(SRC, 'build'))
SCEPD = os.environ.get('SCEPD') or os.path.join(BUILD, 'src/cmd/scepd')

ADMIN_PW = 'Adm1n-' + os.urandom(6).hex()
VIEWER_PW = 'View3r-' + os.urandom(6).hex()

_n = 0
_failed = 0


def ok(cond, desc, detail=None):
    global _n, _failed
    _n += 1
    print(f'{"ok" if cond else "not ok"} {_n} - {desc}', flush=True)
    if not cond:
        _failed += 1
        if detail is not None:
            text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True, default=str)
            for line in text.splitlines()[:12]:
                print(f'#   {line[:300]}', flush=True)
    return bool(cond)


def closed_port():
    """A port bound by this process but not listening: connections to it are
    refused for as long as the socket stays open, and nobody else can take it."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    return s, s.getsockname()[1]


class Reply:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.doc = json.loads(raw) if raw else None
        except ValueError:
            self.doc = None

    def code(self):
        return ((self.doc or {}).get('error') or {}).get('code') if isinstance(self.doc, dict) else None

    def detail(self):
        return ((self.doc or {}).get('error') or {}).get('detail', '') if isinstance(self.doc, dict) else ''

    def header(self, name):
        return self.headers.get(name)

    def brief(self):
        return {'status': self.status, 'body': self.raw[:300].decode('utf-8', 'replace')}


class Api:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, user=None, password=None, headers=None, raw=None, source=None):
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault('Content-Type', 'application/json')
        if user is not None:
            h['Authorization'] = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Reply(r.status, r.headers, r.read())
        finally:
            conn.close()

    def admin(self, method, path, body=None, **kw):
        return self.call(method, path, body, 'admin', ADMIN_PW, **kw)

    def viewer(self, method, path, body=None, **kw):
        return self.call(method, path, body, 'viewer', VIEWER_PW, **kw)


def read_routes():
    """(method, pattern, flags) of every route in src/api/routes.c."""
    with open(os.path.join(SRC, 'src/api/routes.c'), encoding='utf-8') as fp:
        text = fp.read()
    table = text[text.index('routes[] = {'):]
    table = table[:table.index('};')]
    return [(m, p, set(re.findall(r'PUBLIC|ADMIN|BODY', f)))
            for m, p, f in re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*([^,]+),\s*\w+\s*\}', table)]


def main():
    if not os.access(SCEPD, os.X_OK):
        print(f'1..0 # SKIP {SCEPD} not built')
        return 0
    work = tempfile.mkdtemp(prefix='scepd-auth.')
    proc = None
    refuser, refused_port = closed_port()
    try:
        env = dict(os.environ, SCEPD_ADMIN_PASSWORD=ADMIN_PW)
        log_path = os.path.join(work, 'scepd.log')
        log = open(log_path, 'w')
        # a SCEP server nobody listens on: requests fail fast with net_connect.
        # scepd takes a port the kernel picks and names it in its first line.
        proc = subprocess.Popen([SCEPD, '--state', os.path.join(work, 'state'), '--listen', '127.0.0.1:0',
                                 '--kek-file', os.path.join(work, 'kek'),
                                 '--scep-url', f'http://127.0.0.1:{refused_port}/scep'],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        api = None
        deadline = time.monotonic() + 15
        up = False
        while not up and time.monotonic() < deadline and proc.poll() is None:
            if api is None:
                with open(log_path, 'rb') as fp:
                    m = re.search(rb'Remote UI at http://127\.0\.0\.1:(\d+)/', fp.read())
                if m:
                    api = Api(int(m.group(1)))
            try:
                up = api is not None and api.call('GET', '/api/v1/status').status == 401
            except OSError:
                pass
            if not up:
                time.sleep(0.1)
        if not up:
            print('Bail out! scepd did not start')
            return 1
        run(api)
    finally:
        refuser.close()
        if proc:
            early = proc.poll()
            if early is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            ok(early is None and proc.returncode == 0, 'scepd ran to the end and exited 0 on SIGTERM',
               f'exit status {proc.returncode}' + (' before the SIGTERM' if early is not None else ''))
        with open(os.path.join(work, 'scepd.log'), errors='replace') as fp:
            log = fp.read()
        m = re.search(r'ERROR: (Address|Leak)Sanitizer|runtime error:', log)
        ok(not m, 'no sanitizer report in the scepd log', log[m.start():m.start() + 2000] if m else None)
        ok(ADMIN_PW not in log and VIEWER_PW not in log, 'no password in the scepd log')
        shutil.rmtree(work, ignore_errors=True)
    print(f'1..{_n}')
    return 1 if _failed else 0


def security_headers(r, what):
    h = r.headers
    good = ('default-src' in (h.get('Content-Security-Policy') or '') and "frame-ancestors 'none'" in
            h.get('Content-Security-Policy', '') and h.get('X-Frame-Options') == 'DENY' and
            h.get('Cache-Control') == 'no-store' and h.get('X-Content-Type-Options') == 'nosniff')
    ok(good, f'{what}: CSP, X-Frame-Options DENY, no-store, nosniff', dict(h))


def run(api):
    routes = read_routes()
    ok(len(routes) >= 20 and ('GET', '/metrics', set()) in routes, f'{len(routes)} routes read from routes.c',
       routes)

    # ---- fixtures: a viewer, a request, a key ----
    r = api.admin('PUT', '/api/v1/users/viewer', {'password': VIEWER_PW, 'role': 'viewer'})
    ok(r.status == 200 and r.doc == {'name': 'viewer', 'role': 'viewer'}, 'admin creates a viewer', r.brief())
    r = api.admin('POST', '/api/v1/scep/requests', {'key_name': 'Probe', 'common_name': 'probe',
                                                    'challenge_password': 'not-a-secret-1'})
    ok(r.status == 202 and r.doc.get('id'), 'admin creates a request', r.brief())
    rid = (r.doc or {}).get('id', 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and api.admin('GET', f'/api/v1/scep/requests/{rid}').doc.get('state') not in (
            'failed', 'acquired'):
        time.sleep(0.2)
    settings_before = api.admin('GET', '/api/v1/scep/settings').doc
    keys_before = api.admin('GET', '/api/v1/keys').doc
    auto_before = api.admin('GET', '/api/v1/scep/auto-request').doc

    params = {':id': str(rid), ':name': 'DefaultTLS', ':user': 'viewer'}
    bodies = {
        '/api/v1/session': {'user': 'viewer', 'password': VIEWER_PW},
        '/api/v1/users/:user': {'password': 'Escalated-123', 'role': 'admin'},
        '/api/v1/scep/settings': {'url': 'http://evil.example/scep'},
        '/api/v1/scep/requests': {'key_name': 'ByViewer', 'common_name': 'x'},
        '/api/v1/scep/auto-request': {'enabled': False},
        '/api/v1/bindings/:name': {'key_name': 'DefaultTLS'},
    }

    def path_of(pattern, method):
        p = pattern
        for k, v in params.items():
            p = p.replace(k, 'tls' if (k == ':name' and pattern.startswith('/api/v1/bindings')) else v)
        return p

    # ---- without credentials: 401 everywhere but the login itself ----
    for method, pattern, flags in routes:
        path = path_of(pattern, method)
        body = bodies.get(pattern) if 'BODY' in flags else None
        if 'PUBLIC' in flags:
            r = api.call(method, path, {'user': 'nobody', 'password': 'wrong-password'})
            ok(r.status == 401 and r.code() == 'unauthorized', f'{method} {pattern}: wrong login -> 401', r.brief())
            continue
        r = api.call(method, path, body)
        e = (r.doc or {}).get('error', {}) if isinstance(r.doc, dict) else {}
        ok(r.status == 401 and r.code() == 'unauthorized' and e.get('message') and e.get('remedy')
           and (r.header('WWW-Authenticate') or '').startswith('Basic'),
           f'{method} {pattern}: no credentials -> 401 unauthorized', r.brief())
        # an unknown user (one per route: failures are throttled per user and address)
        r = api.call(method, path, body, 'nobody' + re.sub(r'[^a-z]', '', method.lower() + path.lower())[:40],
                     'wrong-password-x')
        ok(r.status == 401 and r.code() == 'unauthorized', f'{method} {pattern}: unknown user -> 401', r.brief())
    r = api.call('GET', '/api/v1/keys', headers={'X-Requested-With': 'scepd-ui'})
    ok(r.status == 401 and r.header('WWW-Authenticate') is None, 'the UI gets no WWW-Authenticate (no browser dialog)',
       r.brief())
    r = api.call('GET', '/api/v1/keys', headers={'Authorization': 'Bearer abc'})
    ok(r.status == 401 and r.code() == 'unauthorized', 'a non-Basic Authorization -> 401', r.brief())

    # ---- a viewer: reads yes, changes no ----
    for method, pattern, flags in routes:
        path = path_of(pattern, method)
        body = bodies.get(pattern) if 'BODY' in flags else None
        if 'ADMIN' in flags:
            r = api.viewer(method, path, body)
            ok(r.status == 403 and r.code() == 'forbidden' and 'viewer' in r.detail(),
               f'{method} {pattern}: viewer -> 403 forbidden', r.brief())
        elif method == 'GET':
            r = api.viewer(method, path)
            ok(r.status == 200, f'{method} {pattern}: viewer -> 200', r.brief())
        elif pattern == '/api/v1/keys/:name/verify':
            r = api.viewer(method, path)
            ok(r.status == 200 and isinstance(r.doc, dict) and 'valid' in r.doc,
               f'{method} {pattern}: viewer may verify -> 200', r.brief())
        elif pattern == '/api/v1/session' and method == 'POST':
            r = api.call(method, path, bodies[pattern])
            ok(r.status == 200 and r.doc.get('role') == 'viewer', 'POST /api/v1/session: viewer logs in',
               r.brief())
        elif pattern == '/api/v1/session' and method == 'DELETE':
            r = api.viewer(method, path)
            ok(r.status == 204, 'DELETE /api/v1/session: viewer (Basic) -> 204', r.brief())
        else:
            ok(False, f'{method} {pattern}: route not classified by this test (add it)')
    ok(api.admin('GET', '/api/v1/scep/settings').doc == settings_before, 'the viewer changed no settings')
    ok(api.admin('GET', '/api/v1/keys').doc == keys_before, 'the viewer changed no keys')
    ok(api.admin('GET', '/api/v1/scep/auto-request').doc == auto_before, 'the viewer changed no auto request')
    r = api.viewer('GET', '/api/v1/session')
    ok(r.status == 200 and r.doc == {'user': 'viewer', 'role': 'viewer', 'csrf_token': None},
       'the viewer is still a viewer', r.brief())
    r = api.call('GET', '/api/v1/session', user='viewer', password='Escalated-123')
    ok(r.status == 401, 'the password the viewer tried to set does not work', r.brief())
    r = api.admin('GET', '/api/v1/scep/requests')
    ok(r.status == 200 and 'ByViewer' not in r.raw.decode(), 'the viewer created no request')

    # ---- security headers ----
    security_headers(api.admin('GET', '/api/v1/status'), '200 answer')
    security_headers(api.call('GET', '/api/v1/status'), '401 answer')
    security_headers(api.viewer('PUT', '/api/v1/scep/settings', bodies['/api/v1/scep/settings']), '403 answer')
    security_headers(api.admin('GET', '/metrics'), '/metrics')

    # ---- cookie sessions and CSRF ----
    r = api.call('POST', '/api/v1/session', {'user': 'admin', 'password': ADMIN_PW})
    cookie = r.header('Set-Cookie') or ''
    m = re.match(r'scepd_session=([^;]+);', cookie)
    csrf = (r.doc or {}).get('csrf_token')
    ok(r.status == 200 and m and csrf and 'HttpOnly' in cookie and 'SameSite=Strict' in cookie,
       'login sets an HttpOnly SameSite=Strict cookie and returns a CSRF token', r.brief())
    jar = {'Cookie': f'scepd_session={m.group(1) if m else "x"}'}
    change = {'url': settings_before.get('url'), 'timeout_s': 11}
    r = api.call('GET', '/api/v1/session', headers=jar)
    ok(r.status == 200 and r.doc.get('csrf_token') == csrf and r.doc.get('role') == 'admin',
       'the cookie authenticates reads without a token', r.brief())
    r = api.call('PUT', '/api/v1/scep/settings', change, headers=jar)
    ok(r.status == 403 and r.code() == 'csrf' and 'X-CSRF-Token' in r.detail(),
       'cookie change without X-CSRF-Token -> 403 csrf', r.brief())
    r = api.call('PUT', '/api/v1/scep/settings', change, headers=dict(jar, **{'X-CSRF-Token': 'f' * len(csrf or 'x')}))
    ok(r.status == 403 and r.code() == 'csrf', 'cookie change with a wrong X-CSRF-Token -> 403 csrf', r.brief())
    r = api.call('POST', '/api/v1/restart', headers=jar)
    ok(r.status == 403 and r.code() == 'csrf', 'POST /restart by cookie without token -> 403 csrf', r.brief())
    ok(api.admin('GET', '/api/v1/scep/settings').doc.get('timeout_s') == settings_before.get('timeout_s'),
       'the refused changes changed nothing')
    r = api.call('PUT', '/api/v1/scep/settings', change, headers=dict(jar, **{'X-CSRF-Token': csrf or ''}))
    ok(r.status == 200 and r.doc.get('timeout_s') == 11, 'cookie change with the token -> 200', r.brief())
    r = api.call('DELETE', '/api/v1/session', headers=jar)
    ok(r.status == 403 and r.code() == 'csrf', 'logout by cookie without token -> 403 csrf', r.brief())
    r = api.call('DELETE', '/api/v1/session', headers=dict(jar, **{'X-CSRF-Token': csrf or ''}))
    ok(r.status == 204 and 'Max-Age=0' in (r.header('Set-Cookie') or ''), 'logout clears the cookie', r.brief())
    r = api.call('GET', '/api/v1/session', headers=jar)
    ok(r.status == 401 and r.code() == 'unauthorized', 'the ended session no longer works', r.brief())
    r = api.admin('PUT', '/api/v1/scep/settings', change, headers={'Origin': 'http://evil.example'})
    ok(r.status == 403 and r.code() == 'csrf', 'a foreign Origin on a change -> 403 csrf, even with Basic',
       r.brief())

    # ---- bodies ----
    r = api.admin('PUT', '/api/v1/scep/settings', raw=b'{"url":"' + b'a' * (70 * 1024) + b'"}',
                  headers={'Content-Type': 'application/json'})
    ok(r.status == 413 and r.code() == 'body_too_large', 'a 70 KiB body -> 413 body_too_large', r.brief())
    r = api.call('POST', '/api/v1/session', raw=b'{"user":"' + b'a' * (70 * 1024) + b'"}',
                 headers={'Content-Type': 'application/json'})
    ok(r.status == 413 and r.code() == 'body_too_large', 'a 70 KiB login body -> 413', r.brief())
    for path, method, body, field in (
            ('/api/v1/scep/settings', 'PUT', {'url': 'http://127.0.0.1:1/scep', 'bogus_field': 1}, 'bogus_field'),
            ('/api/v1/scep/requests', 'POST', {'key_name': 'K', 'common_name': 'c', 'extra_thing': 'x'},
             'extra_thing'),
            ('/api/v1/users/viewer2', 'PUT', {'password': 'Password-123', 'role': 'viewer', 'shoe_size': 4},
             'shoe_size'),
            ('/api/v1/scep/auto-request', 'PUT', {'polling': {'enabled': True, 'nope': 1}}, 'polling.nope'),
            ('/api/v1/bindings/tls', 'PUT', {'key_name': 'DefaultTLS', 'other': 1}, 'other'),
            ('/api/v1/session', 'POST', {'user': 'admin', 'password': 'x', 'remember': True}, 'remember')):
        r = api.admin(method, path, body)
        ok(r.status == 400 and r.code() == 'invalid_field' and r.detail().startswith(field + ':'),
           f'{method} {path}: unknown field -> 400 naming {field}', r.brief())
    r = api.admin('PUT', '/api/v1/scep/settings', raw=b'url=x', headers={'Content-Type': 'text/plain'})
    ok(r.status == 400 and r.code() == 'invalid_field' and r.detail().startswith('Content-Type'),
       'a non-JSON Content-Type -> 400', r.brief())
    r = api.admin('PUT', '/api/v1/scep/settings', raw=b'{"url": ', headers={'Content-Type': 'application/json'})
    ok(r.status == 400 and r.code() == 'invalid_field', 'malformed JSON -> 400', r.brief())
    r = api.admin('GET', '/api/v1/nothing-here')
    ok(r.status == 404 and r.code() == 'not_found', 'an unknown path -> 404', r.brief())
    r = api.admin('PATCH', '/api/v1/keys')
    ok(r.status == 405 and 'GET' in (r.header('Allow') or ''), 'a wrong method -> 405 with Allow', r.brief())

    # ---- login throttling (on a user of its own, so admin stays usable) ----
    r = api.admin('PUT', '/api/v1/users/target', {'password': 'Target-pass-1', 'role': 'viewer'})
    ok(r.status == 200, 'a second viewer for the throttling test', r.brief())
    statuses = [api.call('GET', '/api/v1/status', user='target', password=f'wrong-{i}').status for i in range(4)]
    ok(statuses == [401] * 4, f'4 wrong passwords refused ({statuses})')
    # from the fourth failure on, each one doubles the wait (1, 2, 4 s ...)
    waits = []
    for i in range(3):
        r = api.call('GET', '/api/v1/status', user='target', password='wrong-again')
        if r.status == 429:
            wait = int(r.header('Retry-After') or '0')
            waits.append(wait)
            time.sleep(min(wait, 10) + 0.2)
            r = api.call('GET', '/api/v1/status', user='target', password='wrong-again')
        if r.status != 401:
            break
    ok(waits and waits == sorted(waits) and waits[-1] > waits[0], f'the waits grow ({waits})')
    r = api.call('GET', '/api/v1/status', user='target', password='Target-pass-1')
    ok(r.status == 429 and r.code() == 'throttled' and r.header('Retry-After'),
       'while throttled even the right password -> 429 throttled with Retry-After', r.brief())
    r = api.call('POST', '/api/v1/session', {'user': 'target', 'password': 'Target-pass-1'})
    ok(r.status == 429 and r.code() == 'throttled', 'the login endpoint is throttled too', r.brief())
    r = api.call('GET', '/api/v1/status', user='target', password='Target-pass-1', source='127.0.0.2')
    ok(r.status == 200, 'the same user from another address is not locked out', r.brief())
    r = api.viewer('GET', '/api/v1/status')
    ok(r.status == 200, 'other users are not locked', r.brief())

if __name__ == '__main__':
    sys.exit(main())
