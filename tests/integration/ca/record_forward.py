#!/usr/bin/env python3
"""A loopback HTTP forwarder for the scepca tests: relays GET and POST to
BACKEND (http://127.0.0.1:PORT) and saves each POST body to DIR/post-N.der,
so a test can send the very same pkiMessage again. Prints
"listening on http://127.0.0.1:PORT"; serves at most 100 requests.

usage: record_forward.py BACKEND DIR
"""
import http.server
import os
import sys
import urllib.error
import urllib.request

BACKEND, DIR = sys.argv[1], sys.argv[2]
MAX_REQUESTS = 100


class Forward(http.server.BaseHTTPRequestHandler):
    posts = 0

    def relay(self, body):
        req = urllib.request.Request(BACKEND + self.path, data=body, method=self.command)
        if body is not None:
            req.add_header('Content-Type', self.headers.get('Content-Type', 'application/octet-stream'))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, headers, data = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, data = e.code, e.headers, e.read()
        self.send_response(status)
        for name in ('Content-Type', 'Server'):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.relay(None)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        Forward.posts += 1
        with open(os.path.join(DIR, f'post-{Forward.posts}.der'), 'wb') as fp:
            fp.write(body)
        self.relay(body)

    def log_message(self, fmt, *args):
        pass


server = http.server.HTTPServer(('127.0.0.1', 0), Forward)
print(f'listening on http://127.0.0.1:{server.server_address[1]}', flush=True)
for _ in range(MAX_REQUESTS):
    server.handle_request()
