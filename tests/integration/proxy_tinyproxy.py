#!/usr/bin/env python3
"""Enrollment through a real HTTP proxy: tinyproxy on loopback with Basic
proxy authentication, in front of scepca over http:// and (through a TLS
front in this script) https://, which makes the client use CONNECT.

scepctl --proxy and scepd's "proxy" setting both enroll through it, and the
proxy's log must show each connection. A missing or wrong proxy password
(407, or tinyproxy's 401) is error http_proxy, and the detail names the proxy
but never its password. Prints TAP; exits 1 when a check fails.

Environment: SCEPCTL, SCEPCA, SCEPD (binaries), SCEPD_SOURCE_ROOT.
"""
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scepd_e2e as e2e  # noqa: E402  (TAP, processes, scepca and scepd drivers)
from scepd_e2e import ok, eq, diag  # noqa: E402

SCEPCTL = os.environ.get('SCEPCTL') or os.path.join(e2e.BUILD, 'src/cmd/scepctl')
PROXY_USER = 'scep'
PROXY_PASS = 'Px-' + os.urandom(6).hex()
MAX_CONNECTIONS = 200  # the TLS front stops accepting after this many


class TlsFront:
    """Terminates TLS on a loopback port and relays each connection to a
    plain-HTTP backend, so https:// reaches scepca."""

    def __init__(self, work, backend_port):
        self.cert = os.path.join(work, 'front.pem')
        key = os.path.join(work, 'front.key')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                        '-nodes', '-keyout', key, '-out', self.cert, '-days', '2', '-subj', '/CN=127.0.0.1',
                        '-addext', 'subjectAltName=IP:127.0.0.1'], check=True, capture_output=True, timeout=60)
        with open(self.cert) as fp:
            der = ssl.PEM_cert_to_DER_cert(fp.read())
        self.pin = 'sha256:' + hashlib.sha256(der).hexdigest().upper()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert, key)
        self.backend = backend_port
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(1.0)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        accepted = 0
        while self.running and accepted < MAX_CONNECTIONS:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            accepted += 1
            threading.Thread(target=self.relay, args=(raw,), daemon=True).start()

    def relay(self, raw):
        raw.settimeout(20)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
            back = socket.create_connection(('127.0.0.1', self.backend), timeout=20)
        except OSError:
            raw.close()
            return

        def pump(src, dst):
            try:
                for _ in range(100000):  # bounded: at most this many reads
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        t = threading.Thread(target=pump, args=(back, tls), daemon=True)
        t.start()
        pump(tls, back)
        t.join(30)
        tls.close()
        back.close()

    def stop(self):
        self.running = False
        self.sock.close()
        self.thread.join(5)


class Tinyproxy:
    def __init__(self, work):
        self.port = e2e.free_port()
        self.log = os.path.join(work, 'tinyproxy.log')
        conf = os.path.join(work, 'tinyproxy.conf')
        with open(conf, 'w') as fp:
            fp.write(f'Port {self.port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 20\n'
                     f'LogFile "{self.log}"\nLogLevel Info\nBasicAuth {PROXY_USER} {PROXY_PASS}\n')
        exe = shutil.which('tinyproxy')
        if not exe:
            raise RuntimeError('tinyproxy is not installed: run tools/deps.sh (make test installs it)')
        out = open(os.path.join(work, 'tinyproxy.out'), 'w')
        self.proc = subprocess.Popen([exe, '-d', '-c', conf], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        e2e.PROCS.append(self.proc)

        def up():
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return True
            except OSError:
                return self.proc.poll() is not None and 'dead'
        if e2e.wait_for(up, 10, 0.1) is not True:
            raise RuntimeError('tinyproxy did not start')

    def url(self, password=PROXY_PASS, user=PROXY_USER):
        creds = f'{user}:{password}@' if user else ''
        return f'http://{creds}127.0.0.1:{self.port}'

    def log_text(self):
        try:
            with open(self.log, errors='replace') as fp:
                return fp.read()
        except OSError:
            return ''

    def connections_to(self, port):
        """Connections tinyproxy made to 127.0.0.1:port, as its log tells."""
        return self.log_text().count(f'127.0.0.1:{port}')


def scepctl(work, *args):
    env = {k: v for k, v in os.environ.items() if k.lower() not in ('no_proxy', 'http_proxy', 'https_proxy',
                                                                     'all_proxy')}
    return subprocess.run([SCEPCTL] + list(args), capture_output=True, text=True, timeout=120, env=env,
                          cwd=work)


def enroll_args(work, url, name, challenge):
    return ['enroll', '-u', url, '--cn', name, '--challenge', challenge,
            '--key-out', os.path.join(work, name + '.key'), '--cert-out', os.path.join(work, name + '.crt')]


def scepctl_cases(work, proxy, front, http_url, https_url, backend_port):
    for scheme, url, extra, port in (('http', http_url, [], backend_port),
                                     ('https', https_url, ['--tls-pin', front.pin], front.port)):
        before = proxy.connections_to(port)
        r = scepctl(work, *enroll_args(work, url, f'px-{scheme}', e2e.CHALLENGE), '--proxy', proxy.url(), *extra)
        eq(r.returncode, 0, f'scepctl {scheme}:// through tinyproxy with the proxy password: enrolled')
        ok(os.path.exists(os.path.join(work, f'px-{scheme}.crt')), f'scepctl {scheme}://: certificate written')
        ok(proxy.connections_to(port) > before, f'scepctl {scheme}://: tinyproxy relayed the connections',
           proxy.log_text()[-2000:])
        for label, purl, status in (('no proxy credentials', proxy.url(user=None), '407'),
                                    ('a wrong proxy password', proxy.url(password='wrong-pw'), '401')):
            r = scepctl(work, *enroll_args(work, url, f'px-{scheme}-bad', e2e.CHALLENGE), '--proxy', purl, *extra)
            eq(r.returncode, 4, f'scepctl {scheme}:// with {label}: exit 4 (communication)')
            ok('error[http_proxy]' in r.stderr, f'scepctl {scheme}:// with {label}: error[http_proxy]', r.stderr)
            ok(f'proxy http://127.0.0.1:{proxy.port}' in r.stderr,
               f'scepctl {scheme}:// with {label}: the error names the proxy', r.stderr)
            ok(status in r.stderr, f'scepctl {scheme}:// with {label}: the error gives the HTTP status {status}',
               r.stderr)
            ok(PROXY_PASS not in r.stderr and 'wrong-pw' not in r.stderr,
               f'scepctl {scheme}:// with {label}: no password in the message', r.stderr)


def scepd_cases(work, proxy, front, http_url, https_url, backend_port, errors):
    d = e2e.Scepd(work, 'scepd')
    try:
        for scheme, url, extra, port in (('http', http_url, {}, backend_port),
                                         ('https', https_url, {'tls_pin': front.pin}, front.port)):
            before = proxy.connections_to(port)
            d.settings(url, proxy=proxy.url(), **extra)
            st, _, doc, rid = d.request(f'Proxy{scheme}', f'scepd-px-{scheme}')
            if not ok(st == 202, f'scepd {scheme}://: request accepted', doc):
                continue
            r = d.wait_request(rid, timeout=60)
            eq(r.get('state'), 'acquired', f'scepd {scheme}:// through tinyproxy: acquired')
            ok(proxy.connections_to(port) > before, f'scepd {scheme}://: tinyproxy relayed the connections')
            d.settings(url, proxy=proxy.url(password='wrong-pw'), **extra)
            st, _, doc, rid = d.request(f'ProxyBad{scheme}', f'scepd-px-bad-{scheme}')
            if not ok(st == 202, f'scepd {scheme}:// with a wrong proxy password: request accepted', doc):
                continue
            r = d.wait_request(rid, timeout=60)
            e = r.get('error') or {}
            eq((r.get('state'), e.get('code')), ('failed', 'http_proxy'),
               f'scepd {scheme}:// with a wrong proxy password: failed with http_proxy')
            eq((e.get('message'), e.get('remedy')), errors.get('http_proxy'),
               f'scepd {scheme}://: the catalogue words for http_proxy')
            text = ' '.join(str(v) for v in e.values())
            ok(f'proxy http://127.0.0.1:{proxy.port}' in text, f'scepd {scheme}://: the error names the proxy', e)
            ok('wrong-pw' not in text and PROXY_PASS not in text, f'scepd {scheme}://: no password in the error',
               e)
    finally:
        d.stop()


def main():
    for path in (SCEPCTL, e2e.SCEPCA, e2e.SCEPD):
        if not os.access(path, os.X_OK):
            ok(False, f'{path} is built')
            print(f'1..{e2e._n}')
            return 1
    errors = e2e.catalogue()
    work = tempfile.mkdtemp(prefix='scepd-proxy.')
    front = None
    try:
        ca = e2e.CA(work, 'ca')
        http_url = ca.serve('--challenge', e2e.CHALLENGE)
        backend_port = int(http_url.split(':')[2].split('/')[0])
        front = TlsFront(work, backend_port)
        https_url = f'https://127.0.0.1:{front.port}/scep'
        proxy = Tinyproxy(work)
        scepctl_cases(work, proxy, front, http_url, https_url, backend_port)
        scepd_cases(work, proxy, front, http_url, https_url, backend_port, errors)
    except Exception as exc:
        import traceback
        ok(False, 'the test ran to its end', traceback.format_exc())
        diag(repr(exc))
    finally:
        e2e.stop_all()
        if front:
            front.stop()
        bad = e2e.sanitizer_reports(work)
        ok(not bad, 'no sanitizer report in the logs of scepd and scepca', bad)
        if os.environ.get('KEEP_TMP') == '1':
            diag(f'kept {work}')
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f'1..{e2e._n}')
    return 1 if e2e._failed else 0


if __name__ == '__main__':
    sys.exit(main())
