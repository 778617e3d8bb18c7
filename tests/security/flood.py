#!/usr/bin/env python3
"""Connection floods and slow clients against real scepd (HTTP and HTTPS) and
scepca on loopback, each started with an open-file limit of 1024 (systemd's
default). Prints TAP.

For each listener: 1,100 connections that send part of a request head and
then nothing, spread over 50 source addresses (127.0.1.x); meanwhile a client
from 127.0.0.2 must be answered, the daemon must not spin and its log must
stay short; afterwards it must serve normally. Also: one address cannot take
more than its share, and a byte-by-byte drip cannot outlive the request or
handshake deadline. The figures (how fast, how much CPU) are measured by
bench/edge_flood.py, not here."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (SCEPCA, SCEPD, Daemon, Tap, close_all, closed_by_peer, count_lines, cpu_seconds, drip,  # noqa: E402
                 free_port, http_call, raise_own_nofile, read_text, rmtree, sanitizer_report, slow_clients,
                 wait_until, workdir)

PW = 'Fl00d-' + os.urandom(6).hex()
FLOOD = 1100
SOURCES = [f'127.0.1.{i}' for i in range(1, 51)]
CLIENT = '127.0.0.2'
HOLD_S = 4
REQUEST_TIMEOUT_S = 4
HANDSHAKE_TIMEOUT_S = 3
t = Tap()


def status(port, tls=False, source=CLIENT, timeout=15):
    return http_call(port, 'GET', '/api/v1/status', source=source, tls=tls, user='admin', password=PW,
                     timeout=timeout)[0]


def flood_and_check(name, daemon, port, legit, tls=False):
    """The common checks: answered under flood, no spin, short log, serves after."""
    before_lines = count_lines(daemon.log)
    socks = slow_clients(port, FLOOD, SOURCES, first=b'\x16\x03\x01' if tls else b'GET / HTTP/1.1\r\nHost: x\r\n')
    t.ok(len(socks) >= FLOOD * 9 // 10, f'{name}: {len(socks)} of {FLOOD} slow connections were accepted by the kernel')
    cpu0 = cpu_seconds(daemon.pid)
    start = time.monotonic()
    answered = None
    try:
        answered = legit()
    except OSError as e:
        answered = f'not answered: {e}'
    took = time.monotonic() - start
    t.ok(answered == 200, f'{name}: a client from another address is answered during the flood ({took:.1f} s)',
         str(answered))
    time.sleep(HOLD_S)
    cpu = cpu_seconds(daemon.pid) - cpu0
    elapsed = time.monotonic() - start
    t.ok(cpu < 0.5 * elapsed, f'{name}: the daemon does not spin ({cpu:.2f} s CPU in {elapsed:.1f} s)')
    grown = count_lines(daemon.log) - before_lines
    t.ok(grown <= 5 + 2 * elapsed, f'{name}: the log grew by {grown} line(s) in {elapsed:.1f} s',
         read_text(daemon.log)[-2000:])
    t.ok(daemon.alive(), f'{name}: still running during the flood')
    close_all(socks)
    results = []
    for i in range(20):
        try:
            results.append(legit())
        except OSError as e:
            results.append(str(e))
    t.ok(all(r == 200 for r in results), f'{name}: serves normally after the flood (20 requests)', results)


def per_address(name, port, legit):
    socks = slow_clients(port, 100, ['127.0.0.3'])
    time.sleep(0.5)
    closed = sum(1 for s in socks if closed_by_peer(s, 0.05))
    t.ok(closed >= 100 - 32 and closed <= 100 - 1,
         f'{name}: one address keeps at most its share of connections ({100 - closed} of 100 kept)')
    answered = legit()
    t.ok(answered == 200, f'{name}: another address is answered meanwhile', str(answered))
    close_all(socks)


def drips(name, port, head_s, tls=False):
    payload = (b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + bytes(64)) if tls else \
        b'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + b'a' * 200
    closed_after = drip(port, payload, seconds=head_s * 5, interval=0.5)
    t.ok(closed_after is not None and closed_after < head_s * 5,
         f'{name}: a byte-by-byte drip is closed at the deadline ({head_s} s), not kept open'
         f' (closed after {closed_after if closed_after is None else round(closed_after, 1)} s)')


def scepd_suite(work):
    port, tls_port = free_port(), free_port()
    conf = os.path.join(work, 'scepd.conf')
    with open(conf, 'w') as fp:
        fp.write('[scepd]\n'
                 f'request_timeout = {REQUEST_TIMEOUT_S}\n'
                 f'handshake_timeout = {HANDSHAKE_TIMEOUT_S}\n')
    d = Daemon([SCEPD, '--config', conf, '--state', os.path.join(work, 'state'), '--kek-file',
                os.path.join(work, 'kek'), '--listen', f'127.0.0.1:{port}',
                '--listen-tls', f'127.0.0.1:{tls_port}'], os.path.join(work, 'scepd.log'),
               env=dict(os.environ, SCEPD_ADMIN_PASSWORD=PW), nofile=1024)
    try:
        if not t.ok(wait_until(lambda: status(port, timeout=2) == 200 and status(tls_port, True, timeout=2) == 200,
                               30), 'scepd starts with an open-file limit of 1024', read_text(d.log)[-2000:]):
            return
        flood_and_check('scepd HTTP', d, port, lambda: status(port))
        flood_and_check('scepd HTTPS', d, tls_port, lambda: status(tls_port, True))
        per_address('scepd HTTP', port, lambda: status(port))
        drips('scepd HTTP request head', port, REQUEST_TIMEOUT_S)
        drips('scepd HTTPS handshake', tls_port, HANDSHAKE_TIMEOUT_S, tls=True)
        t.ok(status(port) == 200, 'scepd answers after the drips')
    finally:
        d.stop()
        log = read_text(d.log)
        t.ok(not sanitizer_report(log), 'no sanitizer report in the scepd log', sanitizer_report(log))
        t.ok(PW not in log, 'the admin password is not in the scepd log')


def scepca_suite(work):
    import subprocess
    cadir = os.path.join(work, 'ca')
    p = subprocess.run([SCEPCA, 'init', '--dir', cadir], capture_output=True, text=True)
    if not t.ok(p.returncode == 0, 'scepca init', p.stderr):
        return
    port = free_port()
    d = Daemon([SCEPCA, 'serve', '--dir', cadir, '--listen', f'127.0.0.1:{port}'], os.path.join(work, 'scepca.log'),
               nofile=1024)

    def caps():
        return http_call(port, 'GET', '/scep?operation=GetCACaps', source=CLIENT, timeout=15)[0]

    try:
        if not t.ok(wait_until(lambda: caps() == 200, 30), 'scepca starts with an open-file limit of 1024',
                    read_text(d.log)[-2000:]):
            return
        flood_and_check('scepca', d, port, caps)
        per_address('scepca', port, caps)
        drips('scepca request head', port, 15)
    finally:
        d.stop()
        log = read_text(d.log)
        t.ok(not sanitizer_report(log), 'no sanitizer report in the scepca log', sanitizer_report(log))


def main():
    raise_own_nofile(4096)
    work = workdir('scepd-flood.')
    try:
        scepd_suite(work)
        scepca_suite(work)
    finally:
        rmtree(work)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
