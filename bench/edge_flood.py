#!/usr/bin/env python3
"""Connection flood and drip figures for scepd (HTTP, HTTPS) and scepca, for
one or more builds. Each daemon runs with an open-file limit of 1024; 1,100
connections from 50 loopback addresses send part of a request and stop. From
127.0.0.2 one client then asks for /api/v1/status (scepd) or GetCACaps
(scepca). Measured: how long that answer takes (30 s at most), the daemon's
CPU time and log lines over the next 5 s, how many of 20 requests succeed
after the flood, and how long a connection dripping one byte per second is
kept open (45 s at most). Prints a Markdown table.

  bench/edge_flood.py BUILD_DIR [BUILD_DIR...]
"""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'security'))
from lib import (Daemon, close_all, count_lines, cpu_seconds, drip, free_port, http_call,  # noqa: E402
                 raise_own_nofile, read_text, rmtree, slow_clients, wait_until, workdir)

PW = 'Bench-' + os.urandom(6).hex()
SOURCES = [f'127.0.1.{i}' for i in range(1, 51)]


def measure(daemon, port, legit, tls=False):
    row = {}
    lines0 = count_lines(daemon.log)
    socks = slow_clients(port, 1100, SOURCES, first=b'\x16\x03\x01' if tls else b'GET / HTTP/1.1\r\nHost: x\r\n',
                         seconds=60)
    row['held'] = len(socks)
    cpu0 = cpu_seconds(daemon.pid)
    start = time.monotonic()
    try:
        ok = legit(30) == 200
    except OSError:
        ok = False
    row['answer'] = f'{time.monotonic() - start:.2f} s' if ok else 'not answered in 30 s'
    time.sleep(5)
    elapsed = time.monotonic() - start
    row['cpu'] = f'{100 * (cpu_seconds(daemon.pid) - cpu0) / elapsed:.0f} %'
    row['log'] = f'{(count_lines(daemon.log) - lines0) / elapsed:.1f}/s'
    close_all(socks)
    time.sleep(1)
    good = 0
    for _ in range(20):
        try:
            good += legit(10) == 200
        except OSError:
            pass
    row['after'] = f'{good}/20'
    payload = b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + bytes(64) if tls else \
        b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + b'a' * 100
    closed = drip(port, payload, seconds=45, interval=1.0)
    row['drip'] = f'closed after {closed:.0f} s' if closed is not None else 'open after 45 s'
    row['alive'] = 'yes' if daemon.alive() else 'no'
    return row


def bench_build(build, work):
    rows = []
    bins = {n: os.path.join(build, 'src', 'cmd', n) for n in ('scepd', 'scepca')}
    port, tls_port = free_port(), free_port()
    d = Daemon([bins['scepd'], '--state', os.path.join(work, 'state'), '--kek-file', os.path.join(work, 'kek'),
                '--listen', f'127.0.0.1:{port}',
                '--listen-tls', f'127.0.0.1:{tls_port}'], os.path.join(work, 'scepd.log'),
               env=dict(os.environ, SCEPD_ADMIN_PASSWORD=PW), nofile=1024)

    def status(p, tls):
        return lambda timeout: http_call(p, 'GET', '/api/v1/status', source='127.0.0.2', tls=tls, user='admin',
                                         password=PW, timeout=timeout)[0]
    try:
        wait_until(lambda: status(port, False)(2) == 200 and status(tls_port, True)(2) == 200, 30)
        rows.append(('scepd HTTP', measure(d, port, status(port, False))))
        rows.append(('scepd HTTPS', measure(d, tls_port, status(tls_port, True), tls=True)))
    finally:
        d.stop()
    cadir = os.path.join(work, 'ca')
    subprocess.run([bins['scepca'], 'init', '--dir', cadir], capture_output=True, check=True)
    ca_port = free_port()
    d = Daemon([bins['scepca'], 'serve', '--dir', cadir, '--listen', f'127.0.0.1:{ca_port}'],
               os.path.join(work, 'scepca.log'), nofile=1024)

    def caps(timeout):
        return http_call(ca_port, 'GET', '/scep?operation=GetCACaps', source='127.0.0.2', timeout=timeout)[0]
    try:
        wait_until(lambda: caps(2) == 200, 30)
        rows.append(('scepca', measure(d, ca_port, caps)))
    finally:
        d.stop()
    return rows


def main():
    builds = sys.argv[1:] or [os.environ.get('BUILD', os.path.join(ROOT, 'build'))]
    raise_own_nofile(4096)
    print('| build | listener | slow connections held | answer under flood | CPU during flood | '
          'log lines | served after | 1 byte/s drip | still running |')
    print('|---|---|---|---|---|---|---|---|---|')
    for build in builds:
        work = workdir('edge-flood.')
        try:
            for name, r in bench_build(build, work):
                print(f'| {build} | {name} | {r["held"]} | {r["answer"]} | {r["cpu"]} | {r["log"]} | {r["after"]} | '
                      f'{r["drip"]} | {r["alive"]} |', flush=True)
        finally:
            rmtree(work)
    return 0


if __name__ == '__main__':
    sys.exit(main())
