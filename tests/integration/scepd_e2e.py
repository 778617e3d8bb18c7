#!/usr/bin/env python3
"""End-to-end test of scepd against scepca (and one request against
micromdm's scepserver), through the REST API. Prints TAP; exits 1 when any
check fails.

Every server runs on a free loopback port. scepd cannot be given a clock, so
the auto request is tested with a start two seconds ahead and the periodic
timer by where it puts the next run, not by waiting days.

Environment: SCEPD, SCEPCA (binaries; default under SCEPD_BUILD_ROOT),
SCEPD_SOURCE_ROOT (for the error catalogue), KEEP_TMP=1 keeps the temporary
directory (logs of every server).
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('SCEPD_SOURCE_ROOT', os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get('SCEPD_BUILD_ROOT', os.path.join(SRC, 'build'))
SCEPD = os.environ.get('SCEPD') or os.path.join(BUILD, 'src/cmd/scepd')
SCEPCA = os.environ.get('SCEPCA') or os.path.join(BUILD, 'src/cmd/scepca')

ADMIN_PW = 'Adm1n-' + os.urandom(6).hex()
CHALLENGE = 'Chal-' + os.urandom(8).hex()

# ---- TAP -------------------------------------------------------------------

_n = 0
_failed = 0


def ok(cond, desc, detail=None):
    global _n, _failed
    _n += 1
    if cond:
        print(f'ok {_n} - {desc}', flush=True)
    else:
        _failed += 1
        print(f'not ok {_n} - {desc}', flush=True)
        if detail is not None:
            text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
            for line in text.splitlines()[:20]:
                print(f'#   {line[:400]}', flush=True)
    return bool(cond)


def eq(got, want, desc):
    return ok(got == want, desc, f'got {got!r}, wanted {want!r}')


def skip(desc):
    global _n
    _n += 1
    print(f'ok {_n} - # SKIP {desc}', flush=True)


def diag(text):
    for line in str(text).splitlines():
        print(f'# {line}', flush=True)


# ---- the error catalogue ---------------------------------------------------

def catalogue():
    """code -> (message, remedy), read from src/util/errors.def."""
    path = os.path.join(SRC, 'src/util/errors.def')
    with open(path, encoding='utf-8') as fp:
        text = fp.read()
    s = r'"((?:[^"\\]|\\.)*)"'
    out = {}
    for m in re.finditer(r'ERR\(\s*\w+\s*,\s*' + s + r'\s*,\s*\d\s*,\s*' + s + r'\s*,\s*' + s + r'\s*\)',
                         text):
        unq = [g.replace('\\"', '"') for g in m.groups()]
        out[unq[0]] = (unq[1], unq[2])
    return out


# ---- processes -------------------------------------------------------------

PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def stop_all():
    for p in PROCS:
        stop(p)


def wait_for(fn, timeout, interval=0.2):
    """Calls fn until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = fn()
    return value


class CA:
    """A scepca directory and at most one `scepca serve` on it."""

    def __init__(self, work, name, ndes=False):
        self.dir = os.path.join(work, name)
        self.work = work
        self.name = name
        self.proc = None
        self.url = None
        self.count = 0
        args = ['init', '--dir', self.dir] + (['--ndes'] if ndes else [])
        r = self.run(*args)
        if r.returncode != 0:
            raise RuntimeError(f'scepca init failed: {r.stderr}')

    def run(self, *args):
        return subprocess.run([SCEPCA] + list(args), capture_output=True, text=True, timeout=60)

    def serve(self, *args):
        self.stop()
        self.count += 1
        out = os.path.join(self.work, f'{self.name}-serve{self.count}.out')
        log = open(os.path.join(self.work, f'{self.name}-serve{self.count}.log'), 'w')
        with open(out, 'w') as fp:
            self.proc = subprocess.Popen([SCEPCA, 'serve', '--dir', self.dir, '--listen', '127.0.0.1:0'] +
                                         list(args), stdout=fp, stderr=log)
        log.close()
        PROCS.append(self.proc)

        def address():
            with open(out) as fp:
                m = re.search(r'^listening on (http://\S+)$', fp.read(), re.M)
            return m.group(1) if m else (self.proc.poll() is not None and 'dead')
        base = wait_for(address, 10, 0.05)
        if not base or base == 'dead':
            raise RuntimeError(f'scepca serve {args} did not start')
        self.url = base + '/scep'
        return self.url

    def stop(self):
        stop(self.proc)
        self.proc = None

    def pending_id(self, tid):
        r = self.run('list', '--dir', self.dir, '--pending')
        for line in r.stdout.splitlines():
            if line.startswith('request ') and tid in line:
                return line.split()[1]
        return None


class Scepd:
    """scepd listens on ports the kernel picks (127.0.0.1:0, in the config
    file too); the ports are read from its first line at every start."""

    def __init__(self, work, name, scep_url=None, config=None):
        self.state = os.path.join(work, name)
        self.log_path = os.path.join(work, name + '.log')
        self.port = self.tls_port = None
        self.proc = None
        self.start(scep_url, config)

    def start(self, scep_url=None, config=None):
        args = [SCEPD, '--state', self.state, '--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0']
        if config:
            args = [SCEPD, '--config', config]
        if scep_url:
            args += ['--scep-url', scep_url]
        # the key-encryption key, next to the state directory (created at the first start)
        args += ['--kek-file', self.state + '.kek']
        env = dict(os.environ, SCEPD_ADMIN_PASSWORD=ADMIN_PW)
        log = open(self.log_path, 'a')
        offset = log.tell()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        PROCS.append(self.proc)

        def ports():
            with open(self.log_path, 'rb') as fp:
                fp.seek(offset)
                m = re.search(rb'Remote UI at http://127\.0\.0\.1:(\d+)/ui/ and https://127\.0\.0\.1:(\d+)/',
                              fp.read())
            return (int(m.group(1)), int(m.group(2))) if m else None
        got = wait_for(lambda: self.proc.poll() is not None or ports(), 15)
        if not got or self.proc.poll() is not None:
            raise RuntimeError('scepd did not start: ' + self.log())
        self.port, self.tls_port = ports()
        up = wait_for(lambda: self.proc.poll() is not None or self.api('GET', '/api/v1/status')[0] == 200, 15)
        if not up or self.proc.poll() is not None:
            raise RuntimeError('scepd did not start: ' + self.log())

    def stop(self):
        stop(self.proc)

    def log(self):
        with open(self.log_path, errors='replace') as fp:
            return fp.read()

    def api(self, method, path, body=None, auth=('admin', None), headers=None):
        url = f'http://127.0.0.1:{self.port}{path}'
        data = None
        h = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault('Content-Type', 'application/json')
        if auth:
            user, pw = auth[0], auth[1] or ADMIN_PW
            h['Authorization'] = 'Basic ' + base64.b64encode(f'{user}:{pw}'.encode()).decode()
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return 0, {}, None
        text = raw.decode('utf-8', 'replace')
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text
        return status, hdrs, doc

    def settings(self, url, **extra):
        body = {'url': url, 'timeout_s': 10, 'poll_interval_s': 5, 'poll_max': 10}
        body.update(extra)
        st, _, doc = self.api('PUT', '/api/v1/scep/settings', body)
        if st != 200:
            raise RuntimeError(f'settings PUT: {st} {doc}')
        return doc

    def request(self, name, cn, challenge=CHALLENGE, **extra):
        body = {'key_name': name, 'common_name': cn, 'challenge_password': challenge}
        body.update(extra)
        st, hdrs, doc = self.api('POST', '/api/v1/scep/requests', body)
        rid = doc.get('id') if st == 202 and isinstance(doc, dict) else None
        return st, hdrs, doc, rid

    def get_request(self, rid):
        return self.api('GET', f'/api/v1/scep/requests/{rid}')[2]

    def wait_request(self, rid, states=('acquired', 'failed', 'registered'), timeout=30, extra=None):
        def done():
            r = self.get_request(rid)
            if isinstance(r, dict) and r.get('state') in states and (extra is None or extra(r)):
                return r
            return None
        r = wait_for(done, timeout, 0.25)
        return r or self.get_request(rid)

    def key(self, name):
        st, _, doc = self.api('GET', f'/api/v1/keys/{name}')
        return doc if st == 200 else None

    def keys(self):
        return {k['name']: k for k in self.api('GET', '/api/v1/keys')[2]}


def code_of(r):
    e = (r or {}).get('error') or {}
    return e.get('code')


def served_sha256(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
    return ':'.join(f'{b:02X}' for b in hashlib.sha256(der).digest())


class OpenTls:
    """A connection to the HTTPS listener kept open across a certificate swap:
    `stage` is how far it got before the swap ('tcp': accepted, no
    handshake; 'handshake': no request yet; 'request': one request done)."""

    def __init__(self, port, stage):
        self.stage = stage
        self.raw = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.tls = None
        self.sha256 = None
        if stage in ('handshake', 'request'):
            self.handshake()
        self.answers = [self.get()] if stage == 'request' else []

    def handshake(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.tls = ctx.wrap_socket(self.raw)
        self.sha256 = ':'.join(f'{b:02X}' for b in hashlib.sha256(self.tls.getpeercert(binary_form=True)).digest())

    def get(self):
        """GET /api/v1/status on this connection (HTTP/1.1 keep-alive); the status code or the error."""
        try:
            if self.tls is None:
                self.handshake()
            auth = base64.b64encode(f'admin:{ADMIN_PW}'.encode()).decode()
            self.tls.sendall(f'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                             f'Authorization: Basic {auth}\r\n\r\n'.encode())
            r = http.client.HTTPResponse(self.tls)
            r.begin()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException) as e:
            return f'{type(e).__name__}: {e}'

    def close(self):
        (self.tls or self.raw).close()


def utc(t):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))


def parse_utc(s):
    import calendar
    return calendar.timegm(time.strptime(s, '%Y-%m-%dT%H:%M:%SZ'))


# ---- scenarios -------------------------------------------------------------

def manual_and_bindings(d, ca, errors):
    """Manual request, registration, keys, the tls binding and in-use deletion."""
    url = ca.serve('--challenge', CHALLENGE)
    d.settings(url)
    st, hdrs, doc, rid = d.request('Web1', 'device-e2e.example', sans=['dns:device-e2e.example'])
    eq(st, 202, 'manual request accepted (202)')
    eq(hdrs.get('Location') if hdrs else None, f'/api/v1/scep/requests/{rid}', 'Location names the request')
    r = d.wait_request(rid)
    if not eq(r.get('state'), 'acquired', 'manual request acquired'):
        diag(json.dumps(r))
    ok(r.get('error') is None and r.get('attempts') == 0 and r.get('tries') == 1 and r.get('kind') == 'manual',
       'acquired request: no error, no retries, one try, kind manual', r)
    ok(re.fullmatch(r'[0-9A-F]{64}', r.get('transaction_id') or ''), 'transactionID recorded', r)
    eq(d.key('Web1')['state'], 'acquired', 'the pair waits for registration')
    st, _, res = d.api('POST', '/api/v1/restart')
    eq((st, res), (200, {'registered': ['Web1'], 'deleted': [], 'renamed': {}}), 'restart registers the pair')
    eq(d.get_request(rid).get('state'), 'registered', 'request reads registered')
    k = d.key('Web1')
    ok(k and k['state'] == 'registered' and k['subject'] == 'CN=device-e2e.example'
       and 'scepca test CA' in k['issuer'] and k['san'] == 'dns:device-e2e.example',
       'key listed with its subject, issuer and SAN',
       {f: (k or {}).get(f) for f in ('state', 'subject', 'issuer', 'san')})
    ok(k and k['certificate_pem'].startswith('-----BEGIN CERTIFICATE-----') and 'private' not in json.dumps(k).lower(),
       'key detail has the certificate and no private key', k)
    st, _, v = d.api('POST', '/api/v1/keys/Web1/verify')
    ok(st == 200 and v.get('valid') is True, 'the registered pair verifies against the stored CA', v)

    def revocation():
        st, _, v = d.api('POST', '/api/v1/keys/Web1/verify')
        checks = {c['name']: c for c in (v or {}).get('checks', [])}
        return v, checks.get('revocation', {})
    # verify fetches the CRL first and waits for it
    got = wait_for(lambda: (lambda v, c: (v, c) if not c.get('skipped') else None)(*revocation()), 10, 0.2)
    ok(got and got[1].get('ok') is True and got[1].get('detail') == 'not revoked' and got[0].get('valid') is True,
       'verify checks revocation against the CA\'s CRL: not revoked', got)
    crl = (got[0].get('crl') or {}) if got else {}
    ok(crl.get('source', '').startswith(url) and isinstance(crl.get('age_s'), int) and crl.get('fetched_at')
       and 'scepca test CA' in (crl.get('issuer') or ''),
       'verify names the CRL it used: its source, issuer, time and age', crl)
    r = ca.run('revoke', '--dir', ca.dir, k['serial'])
    ok(r.returncode == 0, 'scepca revokes the certificate', r.stderr)
    # a CA is asked for its CRL at most every 30 s, however often verify runs
    got = wait_for(lambda: (lambda v, c: (v, c) if c.get('ok') is False else None)(*revocation()), 60, 0.5)
    ok(got and got[1].get('detail') == 'revoked' and got[0].get('valid') is False,
       'after revocation, verify says revoked and not valid', got)
    st, _, cas = d.api('GET', '/api/v1/ca-certificates')
    ok(st == 200 and any('scepca test CA' in c.get('subject', '') for c in cas), 'CA certificate stored', cas)

    # CA rollover: a staged next CA is fetched on request and listed as next_ca
    r = ca.run('rollover', '--dir', ca.dir)
    ok(r.returncode == 0, 'scepca stages a next CA', r.stderr)
    st, _, _ = d.api('POST', '/api/v1/ca-certificates/refresh')
    eq(st, 202, 'refreshing the CA certificates is accepted (202)')

    def staged():
        got = d.api('GET', '/api/v1/ca-certificates')[2] or []
        return [c for c in got if c.get('role') == 'next_ca'] or None
    nxt = wait_for(staged, 10, 0.2)
    ok(nxt and len(nxt) == 1 and 'scepca test CA' in nxt[0].get('subject', '')
       and all(c.get('sha256') != nxt[0].get('sha256') for c in cas),
       'the next CA is listed with role next_ca beside the current one', nxt)

    # bindings: the HTTPS listener follows the tls binding
    before = served_sha256(d.tls_port)
    eq(before, d.key('DefaultTLS')['sha256'], 'HTTPS presents the self-signed DefaultTLS pair first')
    # connections left open across the hot swap, at three stages
    open_conns = [OpenTls(d.tls_port, stage) for stage in ('tcp', 'handshake', 'request', 'request')]
    ok(all(c.answers == [200] for c in open_conns if c.stage == 'request'),
       'before the swap: keep-alive HTTPS connections answer', [c.answers for c in open_conns])
    st, _, b = d.api('PUT', '/api/v1/bindings/tls', {'key_name': 'Web1'})
    ok(st == 200 and any(x['function'] == 'tls' and x['key_name'] == 'Web1' for x in b), 'tls bound to Web1', b)
    eq(served_sha256(d.tls_port), k['sha256'], "HTTPS presents Web1's certificate")
    after = [(c.stage, c.get(), c.get()) for c in open_conns]
    ok(all(a == 200 and b2 == 200 for _, a, b2 in after),
       'connections open across the swap keep answering (accepted, handshaken, mid keep-alive)', after)
    ok(all(c.sha256 == before for c in open_conns if c.stage != 'tcp') and
       all(c.sha256 in (before, k['sha256']) for c in open_conns),
       'they keep the certificate they were accepted with', [(c.stage, c.sha256) for c in open_conns])
    for c in open_conns:
        c.close()
    eq(served_sha256(d.tls_port), k['sha256'], "new connections after them still get Web1's certificate")
    st, _, e = d.api('DELETE', '/api/v1/keys/Web1')
    err = (e or {}).get('error', {})
    ok(st == 409 and err.get('code') == 'key_in_use' and 'tls' in err.get('detail', '')
       and err.get('message') == errors['key_in_use'][0], 'deleting the bound key: 409 key_in_use naming tls', e)
    ok(d.key('Web1') is not None, 'the bound key still exists')
    st, _, _ = d.api('DELETE', '/api/v1/keys/DefaultTLS')
    eq(st, 204, 'the unbound DefaultTLS pair can be deleted')
    ok('DefaultTLS' not in d.keys(), 'DefaultTLS is gone')
    # a second request for an existing name
    st, _, e, _ = d.request('Web1', 'x')
    ok(st == 409 and e['error']['code'] == 'key_name_taken', 'an existing name: 409 key_name_taken', e)


def pending_then_approve(d, ca):
    url = ca.serve('--challenge', CHALLENGE, '--pending')
    d.settings(url, poll_interval_s=5, poll_max=10)
    st, _, doc, rid = d.request('Pend1', 'pending-e2e')
    eq(st, 202, 'request to a deferring server accepted')
    r = d.wait_request(rid, states=('pending', 'failed', 'acquired'), extra=lambda x: x.get('attempts', 0) >= 1)
    ok(r.get('state') == 'pending' and code_of(r) == 'pending' and r.get('attempts') == 1
       and r.get('next_attempt_at'), 'deferred: state pending, attempt 1, next poll scheduled', r)
    # two clock reads in scepd, whole seconds each: they may straddle a tick
    nxt = parse_utc(r['next_attempt_at']) - parse_utc(r['updated_at'])
    ok(abs(nxt - 5) <= 1, 'next poll poll_interval_s (5 s, within 1 s) after the answer',
       f'next_attempt_at - updated_at = {nxt} s')
    st, _, e, _ = d.request('Pend2', 'other')
    ok(st == 409 and e['error']['code'] == 'request_busy', 'a second request while polling: 409 request_busy', e)
    sid = ca.pending_id(r['transaction_id'])
    ok(sid is not None, 'scepca lists the request as pending')
    a = ca.run('approve', '--dir', ca.dir, sid or '0')
    eq(a.returncode, 0, 'scepca approve')
    r = d.wait_request(rid, timeout=20)
    ok(r.get('state') == 'acquired' and r.get('error') is None and r.get('attempts', 0) >= 1
       and r.get('next_attempt_at') is None, 'approved: the next poll acquires the certificate', r)
    k = d.key('Pend1')
    ok(k and k['subject'] == 'CN=pending-e2e', 'pending pair stored with its subject', k)

    # a deferred request survives a restart of the daemon and keeps its transactionID
    _, _, _, rid = d.request('Pend3', 'pending-restart')
    r = d.wait_request(rid, states=('pending', 'failed', 'acquired'), extra=lambda x: x.get('attempts', 0) >= 1)
    eq(r.get('state'), 'pending', 'second deferred request pending')
    tid = r.get('transaction_id')
    d.stop()
    a = ca.run('approve', '--dir', ca.dir, ca.pending_id(tid or '-') or '0')
    eq(a.returncode, 0, 'approved while scepd is down')
    d.start()
    r = d.wait_request(rid, timeout=20)
    ok(r.get('state') == 'acquired' and r.get('transaction_id') == tid and r.get('error') is None,
       'after the daemon restart the poll resumes with the same transactionID and acquires', r)
    ca.stop()


def otp(d, ca, ndes, errors):
    """One-time passwords: generic scepca answers a reused one with a bare
    badRequest, the NDES profile adds the HRESULT that refines the code."""
    passwords = []
    for srv, profile, path, used_code in ((ca, 'generic', '/scep', 'fail_bad_request'),
                                          (ndes, 'ndes2016', '/certsrv/mscep/mscep.dll', 'fail_password_used')):
        url = srv.serve('--otp', '--profile', profile)
        d.settings(url.replace('/scep', path))
        r = srv.run('otp', '--dir', srv.dir)
        pw = r.stdout.strip()
        passwords.append(pw)
        ok(r.returncode == 0 and re.fullmatch(r'[0-9A-F]{16}', pw), f'{profile}: scepca otp prints a password',
           r.stderr)
        _, _, _, rid = d.request(f'Otp{profile}', 'otp-e2e', challenge=pw)
        eq(d.wait_request(rid).get('state'), 'acquired', f'{profile}: first request with the one-time password')
        _, _, _, rid2 = d.request(f'Otp{profile}2', 'otp-e2e-2', challenge=pw)
        r = d.wait_request(rid2)
        e = r.get('error') or {}
        ok(r.get('state') == 'failed' and code_of(r) == used_code and r.get('attempts') == 0,
           f'{profile}: reusing the one-time password fails {used_code}', r)
        eq((e.get('message'), e.get('remedy')), errors[used_code],
           f'{profile}: the error carries the catalogue message and remedy')
        ok(d.key(f'Otp{profile}2') is None, f'{profile}: no pair stored for the refused request')
        if profile != 'generic':
            _, _, _, rid3 = d.request('OtpUnknown', 'otp-e2e-3', challenge='0123456789ABCDEF')
            r = d.wait_request(rid3)
            ok(r.get('state') == 'failed' and code_of(r) == 'fail_password_unknown',
               f'{profile}: an unknown one-time password fails fail_password_unknown', r)
        srv.stop()
    return passwords


# fault, expected state, expected code, settings
FAULTS = [
    ('drop', 'failed', 'net_reset', {}),
    ('reset', 'failed', 'net_reset', {}),
    ('truncate', 'failed', 'net_reset', {}),
    ('garbage', 'failed', 'response_parse', {}),
    ('http:500', 'failed', 'http_server_error', {}),
    ('http:503', 'failed', 'http_server_error', {}),
    ('http:404', 'failed', 'http_status', {}),
    # the client takes a valid pkiMessage whatever its Content-Type (as scepctl does:
    # docs/scepca.md "What scepctl enroll reports for each fault")
    ('wrong-content-type', 'acquired', None, {}),
    ('bad-signature', 'failed', 'response_signature', {}),
    ('wrong-signer', 'failed', 'response_signer', {}),
    ('wrong-transaction-id', 'failed', 'response_transaction', {}),
    ('wrong-recipient-nonce', 'failed', 'response_nonce', {}),
    ('delay:20000', 'failed', 'net_timeout', {'timeout_s': 2}),
    ('slow-drip:50', 'failed', 'net_timeout', {'timeout_s': 2}),
    ('pending-forever', 'failed', 'pending', {'poll_max': 0}),
]


def faults(d, ca, ndes_ca, errors):
    for i, (fault, state, code, extra) in enumerate(FAULTS + [('expired-ra', 'failed', 'cacert_ra_invalid', {})]):
        srv = ndes_ca if fault == 'expired-ra' else ca
        url = srv.serve('--challenge', CHALLENGE, '--fault', fault)
        d.settings(url, **extra)
        t0 = time.monotonic()
        st, _, doc, rid = d.request(f'Fault{i}', f'fault-{i}')
        if not ok(st == 202, f'{fault}: request accepted', doc):
            continue
        r = d.wait_request(rid, timeout=40)
        took = time.monotonic() - t0
        e = r.get('error') or {}
        good = r.get('state') == state and code_of(r) == code and r.get('attempts') == 0
        if code:
            good = good and (e.get('message'), e.get('remedy')) == errors.get(code)
        ok(good, f'{fault}: {state} {code or ""} with the catalogue text, no retry', r)
        if 'timeout_s' in extra:
            ok(took < 15, f'{fault}: gave up after the 2 s timeout ({took:.1f} s)')
        srv.stop()
    d.settings(ca.url or 'http://127.0.0.1:1/scep')


def auto_request(d, ca):
    url = ca.serve('--challenge', CHALLENGE)
    d.settings(url)
    start = int(time.time()) + 2
    body = {
        'enabled': True, 'start': utc(start), 'auto_adjust': False,
        'polling': {'enabled': True, 'retries': 3, 'interval_s': 10},
        'periodic': {'enabled': False, 'interval_days': 7},
        'auto_restart': True, 'delete_old': True,
        'key': {'key_name': 'Auto', 'common_name': 'auto-e2e', 'challenge_password': CHALLENGE},
    }
    st, _, a = d.api('PUT', '/api/v1/scep/auto-request', body)
    ok(st == 200 and a.get('next_run') == utc(start) and a.get('jitter_s') == 0
       and a['key'].get('challenge_password_set') is True and 'challenge_password' not in a['key'],
       'auto request armed: next run at the start, no jitter, challenge write-only', a)
    st, _, e, _ = d.request('Manual9', 'm')
    ok(st == 409 and e['error']['code'] == 'auto_request_enabled', 'manual request refused while the timer is on', e)
    ok(d.key('Auto') is None, 'nothing before the start time')

    def registered():
        k = d.key('Auto')
        return k if k and k['state'] == 'registered' else None
    k = wait_for(registered, 25, 0.3)
    ok(k is not None and k['subject'] == 'CN=auto-e2e', 'auto request fired, acquired and registered by itself', k)
    st, _, a = d.api('GET', '/api/v1/scep/auto-request')
    rid = a.get('last_request_id')
    r = d.get_request(rid) if rid else {}
    ok(a.get('last_result') == 'acquired' and a.get('next_run') is None and r.get('kind') == 'auto'
       and r.get('state') == 'registered', 'one-shot: last result acquired, no next run, request registered', a)
    created = parse_utc(r['created_at']) if r.get('created_at') else 0
    ok(start <= created <= start + 5, f'it ran at the start time ({r.get("created_at")}, start {utc(start)})')

    # bind it, then switch periodic renewal on
    st, _, _ = d.api('PUT', '/api/v1/bindings/tls', {'key_name': 'Auto'})
    eq(st, 200, 'tls bound to the auto pair')
    st, _, a = d.api('PUT', '/api/v1/scep/auto-request', {'periodic': {'enabled': True, 'interval_days': 7}})
    ok(st == 200 and a['periodic'] == {'enabled': True, 'interval_days': 7}, 'periodic renewal switched on', a)
    # switching periodic on restarts the timer on the current minute (as the device does):
    # the renewal runs now and the next one interval_days later
    base = parse_utc(a['start'])
    ok(base % 60 == 0 and abs(base - time.time()) < 70, f'start reset to the current minute ({a["start"]})', a)

    def renewed():
        ks = d.keys()
        return ks if 'Auto2' in ks and ks['Auto2']['state'] == 'registered' else None
    ks = wait_for(renewed, 25, 0.3)
    ok(ks is not None and 'Auto' not in ks, 'renewal registered as Auto2 and delete_old removed Auto', ks and list(ks))
    st, _, a = d.api('GET', '/api/v1/scep/auto-request')
    ok(a.get('next_run') == utc(base + 7 * 86400), f'next run moved by interval_days: {a.get("next_run")}', a)
    r = d.get_request(a.get('last_request_id'))
    ok(r.get('kind') == 'auto' and r.get('key_name') == 'Auto2' and r.get('state') == 'registered',
       'the renewal request is registered', r)
    st, _, m = d.api('GET', '/metrics')
    nr = re.search(r'^scepd_auto_request_next_run_timestamp_seconds (\d+)$', m or '', re.M)
    eq(int(nr.group(1)) if nr else None, base + 7 * 86400, 'metrics show the next run')
    if ks:
        eq(served_sha256(d.tls_port), ks['Auto2']['sha256'], 'the tls binding moved to the renewed pair')
        st, _, e = d.api('DELETE', '/api/v1/keys/Auto2')
        ok(st == 409 and e['error']['code'] == 'key_in_use' and 'tls' in e['error']['detail'],
           'renewed pair in use: 409 key_in_use', e)
    st, _, a = d.api('PUT', '/api/v1/scep/auto-request', {'enabled': False})
    ok(st == 200 and a['enabled'] is False and a['next_run'] is None, 'timer switched off', a)
    ca.stop()


def metrics_and_audit(d, secrets):
    st, hdrs, text = d.api('GET', '/metrics')
    ok(st == 200 and hdrs.get('Content-Type', '').startswith('text/plain'), 'metrics served as text')
    ks = d.keys()
    for name, k in sorted(ks.items()):
        m = re.search(r'^scepd_certificate_expiry_timestamp_seconds\{key="%s",state="%s"\} (\d+)$'
                      % (re.escape(name), k['state']), text or '', re.M)
        eq(int(m.group(1)) if m else None, parse_utc(k['not_after']), f'metrics: expiry of {name}')
    # counted since the daemon restart: Auto and Auto2 acquired; the 6 waiting
    # pairs, Auto and Auto2 registered; nothing failed
    counts = dict(re.findall(r'^scepd_requests_total\{outcome="(\w+)"\} (\d+)$', text or '', re.M))
    eq(counts, {'acquired': '2', 'failed': '0', 'pending': '0', 'registered': '8'},
       'metrics count the outcomes since the daemon started')
    st, _, audit = d.api('GET', '/api/v1/audit?limit=1000')
    ok(st == 200 and isinstance(audit, list) and len(audit) >= 10, f'audit has entries ({len(audit or [])})')
    actions = {row.get('action') for row in audit or []}
    for want in ('scep_settings.update', 'auto_request.update'):
        ok(want in actions, f'audit records {want}', sorted(a for a in actions if a))
    blob = json.dumps(audit)
    log = d.log()
    everything = ''
    for path in ('/api/v1/scep/requests', '/api/v1/scep/auto-request', '/api/v1/keys', '/api/v1/status'):
        everything += json.dumps(d.api('GET', path)[2])
    for label, value in secrets:
        ok(value not in blob, f'the {label} is not in the audit')
        ok(value not in log, f'the {label} is not in the scepd log')
        ok(value not in everything, f'the {label} is not in any API answer')
    ok('PRIVATE KEY' not in blob + everything + log, 'no private key in audit, API answers or log')


def key_store_full(work, ca):
    url = ca.serve('--challenge', CHALLENGE)
    conf = os.path.join(work, 'full.conf')
    with open(conf, 'w') as fp:
        fp.write(f'[scepd]\nstate_dir = {work}/full-state\nlisten = 127.0.0.1:0\n'
                 f'listen_tls = 127.0.0.1:0\nmax_keys = 2\nscep_url = {url}\n')
    d = Scepd(work, 'full', config=conf)
    try:
        st, _, s = d.api('GET', '/api/v1/status')
        ok(s.get('max_keys') == 2 and s.get('registered_keys') == 1 and s.get('scep_configured') is True,
           'scepd with max_keys = 2 from the config file; DefaultTLS is one pair', s)
        _, _, _, rid = d.request('Full1', 'full-1')
        eq(d.wait_request(rid).get('state'), 'acquired', 'the second pair fits')
        _, _, before = d.api('GET', '/api/v1/scep/requests')
        st, _, doc, rid = d.request('Full2', 'full-2')
        ok(st == 409 and code_of(doc) == 'key_store_full'
           and '1 registered and 1 acquired pairs waiting for restart' in (doc['error'].get('detail') or ''),
           'the third is refused up front (409 key_store_full), naming the acquired pair that waits', doc)
        _, _, after = d.api('GET', '/api/v1/scep/requests')
        eq(len(after), len(before), 'no request was made for it')
        ok(d.key('Full2') is None, 'no third pair stored')
        st, _, _ = d.api('DELETE', '/api/v1/keys/Full1')
        eq(st, 204, 'an acquired, unbound pair can be deleted')
        _, _, _, rid = d.request('Full2', 'full-2')
        eq(d.wait_request(rid).get('state'), 'acquired', 'after the deletion the request fits')
    finally:
        d.stop()
        ca.stop()


def restart_registration(work, d, ca):
    """A pair acquired before a daemon restart is registered after it, and
    the daemon keeps its keys, bindings and settings."""
    url = ca.serve('--challenge', CHALLENGE)
    d.settings(url)
    _, _, _, rid = d.request('Late1', 'late-e2e')
    eq(d.wait_request(rid).get('state'), 'acquired', 'acquired before the daemon restarts')
    before = d.keys()
    waiting = sorted(n for n, k in before.items() if k['state'] == 'acquired')
    ok('Late1' in waiting and len(waiting) >= 2, f'acquired pairs wait for registration: {waiting}')
    d.stop()
    d.start()
    after = d.keys()
    eq(sorted(after), sorted(before), 'the keys survive a daemon restart')
    eq(sorted(n for n, k in after.items() if k['state'] == 'acquired'), waiting,
       'the same pairs still wait for registration after the restart')
    st, _, res = d.api('POST', '/api/v1/restart')
    ok(st == 200 and sorted(res.get('registered', [])) == waiting and res.get('deleted') == [],
       'POST /restart registers every waiting pair at once', res)
    ok(all(k['state'] == 'registered' for k in d.keys().values()), 'no pair waits any more')
    st, _, s = d.api('GET', '/api/v1/scep/settings')
    eq(s.get('url'), url, 'settings survive the daemon restart')
    ca.stop()


SANITIZER = re.compile(r'ERROR: (Address|Leak)Sanitizer|runtime error:')


def sanitizer_reports(work):
    """Names of the logs under work that hold an ASan/LSan/UBSan report."""
    bad = []
    for name in sorted(os.listdir(work)):
        if name.endswith('.log'):
            with open(os.path.join(work, name), errors='replace') as fp:
                if SANITIZER.search(fp.read()):
                    bad.append(name)
    return bad


# ---- micromdm, inside a private network namespace ---------------------------

def finish(work, prefix=''):
    """The end of a suite that runs scepd and scepca in work: stops them,
    checks their logs for sanitizer reports, copies the logs where tests/run
    scans them (SCEPD_TEST_LOGS) and removes work unless KEEP_TMP=1."""
    stop_all()
    bad = sanitizer_reports(work)
    ok(not bad, 'no sanitizer report in the logs of scepd and scepca', bad)
    logs = os.environ.get('SCEPD_TEST_LOGS')
    if logs and os.path.isdir(logs):
        for name in os.listdir(work):
            if name.endswith(('.log', '.out')) and os.path.isfile(os.path.join(work, name)):
                shutil.copyfile(os.path.join(work, name), os.path.join(logs, prefix + name))
    if os.environ.get('KEEP_TMP') == '1':
        diag(f'kept {work}')
    else:
        shutil.rmtree(work, ignore_errors=True)


def micromdm_helper():
    """Runs inside `unshare -n`; prints one JSON list of [ok, description, detail]."""
    results = []
    work = tempfile.mkdtemp(prefix='scepd-e2e-mdm.')
    server = None
    d = None
    try:
        subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True, timeout=10)
        depot = os.path.join(work, 'depot')
        r = subprocess.run(['scepserver', 'ca', '-init', '-depot', depot, '-keySize', '2048'],
                           capture_output=True, text=True, timeout=120)
        results.append([r.returncode == 0, 'micromdm: scepserver ca -init', r.stderr[-500:]])
        port = free_port()  # this namespace has only its own loopback: nobody else can take it
        log = open(os.path.join(work, 'scepserver.log'), 'w')
        server = subprocess.Popen(['scepserver', '-depot', depot, '-port', str(port), '-challenge', CHALLENGE,
                                   '-allowrenew', '0'], stdout=log, stderr=subprocess.STDOUT)
        PROCS.append(server)

        def up():
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/scep?operation=GetCACaps', timeout=2) as x:
                    return x.status == 200
            except OSError:
                return False
        results.append([wait_for(up, 10), 'micromdm: scepserver answers GetCACaps', None])
        d = Scepd(work, 'mdm-scepd')
        d.settings(f'http://127.0.0.1:{port}/scep')
        st, _, doc, rid = d.request('Mdm1', 'mdm-e2e.example')
        r = d.wait_request(rid) if rid else doc
        results.append([isinstance(r, dict) and r.get('state') == 'acquired' and r.get('error') is None,
                        'micromdm: manual request acquired', r])
        k = d.key('Mdm1') or {}
        with open(os.path.join(depot, 'ca.pem')) as fp:
            ca_der = ssl.PEM_cert_to_DER_cert(fp.read())
        ca_sha = ':'.join(f'{b:02X}' for b in hashlib.sha256(ca_der).digest())
        _, _, cas = d.api('GET', '/api/v1/ca-certificates')
        results.append([k.get('subject') == 'CN=mdm-e2e.example' and any(c.get('sha256') == ca_sha for c in cas or []),
                        "micromdm: the pair has its subject and the depot's CA is stored", [k, cas]])
        st, _, res = d.api('POST', '/api/v1/restart')
        results.append([st == 200 and res == {'registered': ['Mdm1'], 'deleted': [], 'renamed': {}}, 'micromdm: registered', res])
    except Exception as e:  # reported as a failed check, never a traceback
        results.append([False, 'micromdm: helper error', repr(e)])
    finally:
        if d:
            d.stop()
        stop(server)
        bad = sanitizer_reports(work)
        results.append([not bad, 'micromdm: no sanitizer report in the scepd log', bad])
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


def micromdm():
    hidden = os.environ.get('SCEPD_TEST_MISSING', '').split(',')
    for tool in ('scepserver', 'unshare', 'ip'):
        if tool in hidden or not shutil.which(tool):
            skip(f'micromdm: {tool} not installed')
            return
    if subprocess.run(['unshare', '-n', 'true'], capture_output=True, timeout=10).returncode != 0:
        skip('host: micromdm: network namespaces (unshare -n) not available')
        return
    try:
        r = subprocess.run(['timeout', '-k', '5', '150', 'unshare', '-n', sys.executable, os.path.abspath(__file__),
                            '--micromdm-helper'], capture_output=True, text=True, timeout=170,
                           env=dict(os.environ, SCEPD=SCEPD, SCEPCA=SCEPCA))
        results = json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as e:
        ok(False, 'micromdm: helper ran', repr(e))
        return
    for good, desc, detail in results:
        ok(good, desc, detail)


# ---- main ------------------------------------------------------------------

def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--micromdm-helper':
        try:
            micromdm_helper()
        finally:
            stop_all()
        return 0
    for path in (SCEPD, SCEPCA):
        if not os.access(path, os.X_OK):
            print(f'1..0 # SKIP {path} not built')
            return 0
    errors = catalogue()
    work = tempfile.mkdtemp(prefix='scepd-e2e.')
    t0 = time.monotonic()
    try:
        ca = CA(work, 'ca')
        ndes = CA(work, 'ca-ndes', ndes=True)
        d = Scepd(work, 'scepd')
        manual_and_bindings(d, ca, errors)
        pending_then_approve(d, ca)
        otps = otp(d, ca, ndes, errors)
        faults(d, ca, ndes, errors)
        restart_registration(work, d, ca)
        auto_request(d, ca)
        metrics_and_audit(d, [('challenge password', CHALLENGE), ('admin password', ADMIN_PW)] +
                          [('one-time password', pw) for pw in otps])
        d.stop()
        key_store_full(work, ca)
        micromdm()
    except Exception as e:
        import traceback
        ok(False, 'the test ran to its end', traceback.format_exc())
        diag(repr(e))
    finally:
        finish(work)
    diag(f'took {time.monotonic() - t0:.1f} s')
    print(f'1..{_n}')
    return 1 if _failed else 0


if __name__ == '__main__':
    sys.exit(main())
