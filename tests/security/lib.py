"""Shared pieces of the attack tests: TAP output, starting scepd and scepca
on loopback under a given open-file limit, and slow clients."""
import base64
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('SCEPD_SOURCE_ROOT', os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get('SCEPD_BUILD_ROOT', os.path.join(SRC, 'build'))
SCEPD = os.environ.get('SCEPD') or os.path.join(BUILD, 'src/cmd/scepd')
SCEPCA = os.environ.get('SCEPCA') or os.path.join(BUILD, 'src/cmd/scepca')
SCEPCTL = os.environ.get('SCEPCTL') or os.path.join(BUILD, 'src/cmd/scepctl')


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, detail=None):
        self.n += 1
        print(f'{"ok" if cond else "not ok"} {self.n} - {desc}', flush=True)
        if not cond:
            self.failed += 1
            if detail is not None:
                text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True, default=str)
                for line in text.splitlines()[:15]:
                    print(f'#   {line[:300]}', flush=True)
        return bool(cond)

    def done(self):
        print(f'1..{self.n}', flush=True)
        return 1 if self.failed else 0


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def raise_own_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new_hard = max(hard, want)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f'/proc/{pid}/stat') as fp:
        fields = fp.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def count_lines(path):
    with open(path, 'rb') as fp:
        return sum(1 for _ in fp)


def read_text(path):
    with open(path, errors='replace') as fp:
        return fp.read()


def sanitizer_report(text):
    m = re.search(r'ERROR: (Address|Leak)Sanitizer|runtime error:', text)
    return text[m.start():m.start() + 2000] if m else None


class Daemon:
    """A process started under `prlimit --nofile=N:N`, its output in a file."""

    def __init__(self, argv, log, env=None, nofile=None):
        self.log = log
        out = open(log, 'w')
        if nofile:
            argv = ['prlimit', f'--nofile={nofile}:{nofile}', '--'] + argv
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def wait_until(pred, seconds, step=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(step)
    return False


def http_call(port, method, path, host='127.0.0.1', source=None, tls=False, user=None, password=None,
              headers=None, body=None, timeout=10):
    """(status, headers, body bytes); raises OSError when not answered."""
    h = dict(headers or {})
    if user is not None:
        h['Authorization'] = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault('Content-Type', 'application/json')
    src = (source, 0) if source else None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx, source_address=src)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=src)
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def slow_clients(port, count, sources, first=b'GET / HTTP/1.1\r\n', seconds=20):
    """Opens `count` connections spread over the source addresses, each sends
    `first` and then nothing. Returns the sockets that connected (bounded by
    `seconds`)."""
    socks = []
    deadline = time.monotonic() + seconds
    for i in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sources[i % len(sources)], 0))
        s.settimeout(2)
        try:
            s.connect(('127.0.0.1', port))
            if first:
                s.send(first)
            socks.append(s)
        except OSError:
            s.close()
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def closed_by_peer(sock, wait=0.0):
    """True when the server has closed this connection (EOF or reset)."""
    sock.settimeout(wait if wait else 0.01)
    try:
        while True:
            d = sock.recv(4096)
            if d == b'':
                return True
            if not d:
                return False
    except socket.timeout:
        return False
    except BlockingIOError:
        return False
    except OSError:
        return True


def drip(port, payload, seconds, interval=1.0, tls_port=False):
    """Sends one byte per interval. Returns the seconds until the server
    closed the connection, or None when it was still open after `seconds`."""
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    start = time.monotonic()
    try:
        i = 0
        while time.monotonic() - start < seconds:
            try:
                if i < len(payload):
                    s.send(payload[i:i + 1])
                    i += 1
            except OSError:
                return time.monotonic() - start
            if closed_by_peer(s, interval):
                return time.monotonic() - start
        return None
    finally:
        s.close()


def workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
