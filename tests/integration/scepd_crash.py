#!/usr/bin/env python3
"""Crash safety of scepd's store (TAP).

scepd is killed with SIGKILL at many points during issuance requests,
registration ("restart"), bindings, deletions, auto requests and its own
start-up, restarted, and the store is checked every time:

* offline, right after the kill, on a copy of scepd.db + scepd.db-wal (so that
  the check neither changes the crashed state nor checkpoints it), with
  python's sqlite3: the invariants of store_check_consistency (PRAGMA
  integrity_check, no registered key without a certificate, no binding to a
  missing key, no acquired request without its key, foreign_key_check) plus
  stricter ones (a key and its request agree on acquired/registered, bindings
  name registered keys, at most one unfinished request, the certificate
  belongs to the private key);
* against the snapshot taken just before the operation: no request, key or
  audit line is lost; registered keys only disappear through a DELETE the
  test sent for them (and a DELETE answered 204 must have happened) or
  through a delete-old registration that moved their bindings; registration
  is all or nothing; what the API confirmed (202, 200, 204) is in the store;
  every change has its audit line;
* after the restart: the unfinished request resumes and ends acquired (or
  registered, for an auto request with auto-restart) within a bounded time,
  pending ones after the test approves them at the CA; an enabled auto
  request runs exactly once; exported files match the bound keys; the state
  directory is 0700 and the database files 0600.

Every kill is checked: scepd was running just before it and died of that
SIGKILL; scepd stopped with SIGTERM exits 0; the three scepca servers stay up
until the end and exit 0. After every iteration the new part of every log
(scepd's, scepca's) is read and any sanitizer report fails the iteration. The
TAP plan (iterations + 2) is printed first and every planned iteration runs.

Environment: SCEPD, SCEPCA (binaries), CRASH_ITERATIONS (default 32),
CRASH_SEED (default: from the clock; printed), CRASH_WAIT_S (default 120:
the bound of every wait for scepd; the slowest resume is printed),
CRASH_MAX_FAILURES (default
5: iterations whose restart did not resume properly before the test stops; it
stops at once when the store itself is inconsistent), CRASH_KEEP=1 keeps the
work directory. On a failure the work directory is kept and named; the logs
are copied to $SCEPD_TEST_LOGS when tests/run sets it.
Only loopback (127.0.0.1) is used; every listener is bound to port 0.
"""
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time

ACTIVE = ("queued", "generating_key", "contacting_server", "sent", "pending")
ADMIN_PW = "crash-test-admin-pw"
CHALLENGE = "crashpw"
PHASES = ("keygen", "send", "pending", "register", "delete", "bind", "auto", "resume")
# Upper bound of every wait for scepd to do something (start, resume, end a
# request). Not a timing assertion: waits end as soon as the condition holds,
# and the bound only has to be far above what a loaded machine needs (RSA
# 4096 key generation under ASan on two busy cores takes tens of seconds).
WAIT_S = float(os.environ.get("CRASH_WAIT_S", "120"))


class Fail(Exception):
    pass


def log(msg):
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def find_bin(var, name):
    p = os.environ.get(var)
    if p and os.access(p, os.X_OK):
        return p
    roots = [os.environ.get("SCEPD_BUILD_ROOT", ""),
             os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")]
    for r in roots:
        c = os.path.join(r, "src", "cmd", name)
        if r and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


SANITIZER = re.compile(rb"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|"
                       rb"SUMMARY: \w+Sanitizer|runtime error: ")


class LogWatch:
    """Reads what was appended to a log since the last look."""

    def __init__(self, path):
        self.path, self.offset = path, 0

    def new_reports(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        m = SANITIZER.search(data)
        if not m:
            return []
        text = data[max(0, m.start() - 200):m.start() + 3000].decode("utf-8", "replace")
        return ["sanitizer report in %s:" % self.path] + text.splitlines()[:40]


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return "(no log)"


# ---- the CA --------------------------------------------------------------------------


class Scepca:
    def __init__(self, binary, cadir, work, name, args):
        self.log = os.path.join(work, "scepca-%s.log" % name)
        out = open(self.log, "wb")
        self.proc = subprocess.Popen([binary, "serve", "--dir", cadir, "--listen", "127.0.0.1:0",
                                      "--challenge", CHALLENGE] + args,
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.url = None
        self.watch = LogWatch(self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.log, "rb") as f:
                m = re.search(rb"listening on (http://127\.0\.0\.1:\d+)", f.read())
            if m:
                self.url = m.group(1).decode() + "/scep"
                return
            time.sleep(0.05)
        raise Fail("scepca serve %s did not start: %s" % (name, tail(self.log)))

    def stop(self):
        """Stops the server; returns a problem when it did not exit 0 on SIGTERM."""
        if self.proc.poll() is not None:
            return "scepca %s had exited with %s before the end: %s" % (self.url, self.proc.returncode,
                                                                      tail(self.log))
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return "scepca %s did not stop within 10 s of SIGTERM" % self.url
        return None if rc == 0 else "scepca %s exited with %s on SIGTERM: %s" % (self.url, rc, tail(self.log))


# ---- the REST API -----------------------------------------------------------------------


class Api:
    def __init__(self):
        self.port = None
        self.cookie = None
        self.csrf = None

    def raw(self, method, path, body=None, timeout=15, auth=True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth and self.cookie:
            headers["Cookie"] = "scepd_session=" + self.cookie
            if method != "GET":
                headers["X-CSRF-Token"] = self.csrf
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            cookie = r.getheader("Set-Cookie")
        finally:
            conn.close()
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
        return r.status, doc, cookie

    def login(self):
        st, doc, cookie = self.raw("POST", "/api/v1/session", {"user": "admin", "password": ADMIN_PW},
                                   auth=False)
        m = re.match(r"scepd_session=([^;]+)", cookie or "")
        if st != 200 or not m or not doc:
            raise Fail("login: HTTP %s %s" % (st, doc))
        self.cookie = m.group(1)
        self.csrf = doc["csrf_token"]

    def call(self, method, path, body=None, timeout=15):
        """For unkilled calls: logs in again when the session was lost in a crash."""
        st, doc, _ = self.raw(method, path, body, timeout)
        if st == 401:
            self.login()
            st, doc, _ = self.raw(method, path, body, timeout)
        return st, doc


class Op(threading.Thread):
    """One API call in a thread, so that scepd can be killed while it runs."""

    def __init__(self, api, method, path, body=None):
        super().__init__(daemon=True)
        self.api, self.method, self.path, self.body = api, method, path, body
        self.status, self.doc, self.error = None, None, None

    def run(self):
        try:
            self.status, self.doc, _ = self.api.raw(self.method, self.path, self.body, timeout=WAIT_S)
        except (OSError, http.client.HTTPException) as e:
            self.error = "%s: %s" % (type(e).__name__, e)

    def result(self):
        self.join(WAIT_S + 5)
        if self.is_alive():
            raise Fail("%s %s: no end %.0f s after the kill" % (self.method, self.path, WAIT_S + 5))
        return self.status

    def describe(self):
        return "%s %s -> %s" % (self.method, self.path, self.status if self.status else
                                "no answer (%s)" % (self.error or "?"))


# ---- the store, read from outside -----------------------------------------------------------


class Snap:
    pass


# The key-encryption key file scepd seals its private keys with (kek_file in
# the configuration); read_store opens the sealed keys with it.
KEK_FILE = {"path": None}
SEALED_PREFIX = "scepd-sealed:v1:"


def unseal(aad, text):
    """Opens scepd's sealed text (src/crypto/seal.h): base64 of nonce (12) ||
    ciphertext || tag (16), AES-256-GCM with the place as associated data.
    Returns the clear text, or None when it is not sealed or does not open."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    if not text or not text.startswith(SEALED_PREFIX) or not KEK_FILE["path"]:
        return None
    try:
        with open(KEK_FILE["path"], "rb") as fh:
            kek = fh.read()
        raw = base64.b64decode(text[len(SEALED_PREFIX):], validate=True)
        return AESGCM(kek).decrypt(raw[:12], raw[12:], aad.encode()).decode()
    except Exception:  # noqa: BLE001  (any failure: it does not open)
        return None


def read_store(path, uri_ro):
    if uri_ro:
        conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10, isolation_level=None)
    else:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN")
        s = Snap()
        s.integrity = ";".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        s.fk = conn.execute("SELECT * FROM pragma_foreign_key_check").fetchall()
        s.keys = {}
        for name, st, kp, cp, ch, rid, rep in conn.execute(
                "SELECT name, state, key_pem, cert_pem, chain_pem, request_id, replaces FROM keys"):
            clear = unseal("scepd-key-v1|keys|%s|%d" % (name, rid or 0), kp)
            s.keys[name] = dict(state=st, key_pem=clear or "", cert_pem=cp or "", chain_pem=ch or "",
                                request_id=rid, replaces=rep or "", sealed=kp or "",
                                opens=clear is not None)
        s.reqs = {}
        for rid, kind, st, kn, rep, ec, ed, has_key in conn.execute(
                "SELECT id, kind, state, key_name, replaces, error_code, error_detail,"
                " key_pem IS NOT NULL FROM requests"):
            s.reqs[rid] = dict(kind=kind, state=st, key_name=kn, replaces=rep, error_code=ec,
                               error_detail=ed, has_key=bool(has_key))
        s.binds = {f: k for f, k in conn.execute("SELECT function, key_name FROM bindings")}
        s.docs = {}
        for name, text in conn.execute("SELECT name, json FROM docs"):
            try:
                s.docs[name] = json.loads(text)
            except ValueError:
                s.docs[name] = {"_invalid": text}
        s.audit = {i: (a, d) for i, a, d in conn.execute("SELECT id, action, detail FROM audit")}
        s.audit_max = max(s.audit) if s.audit else 0
        conn.execute("COMMIT")
        return s
    finally:
        conn.close()


def live(read):
    """A read of the store while scepd runs. A read-only connection can meet
    a transient state of the WAL files (a checkpoint, recovery after a kill):
    such a read is retried, briefly and a bounded number of times; a
    persistent error still fails the test."""
    def wrapper(db):
        for attempt in range(50):
            try:
                return read(db)
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.02)
    return wrapper


@live
def snapshot_live(db):
    return read_store(db, True)


@live
def read_requests(db):
    """Only the requests' states: cheap enough to poll every millisecond."""
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return {i: dict(kind=k, state=st, key_name=n)
                for i, k, st, n in conn.execute("SELECT id, kind, state, key_name FROM requests")}
    finally:
        conn.close()


def snapshot_offline(statedir, scratch):
    """Copies scepd.db and its WAL (not the -shm) while scepd is dead and reads
    the copy: the crashed files stay exactly as they were."""
    if os.path.isdir(scratch):
        shutil.rmtree(scratch)
    os.makedirs(scratch)
    for suffix in ("", "-wal"):
        src = os.path.join(statedir, "scepd.db" + suffix)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(scratch, "scepd.db" + suffix))
    return read_store(os.path.join(scratch, "scepd.db"), False)


_pub_cache = {}


def pubkey(kind, pem):
    h = hashlib.sha256((kind + pem).encode()).hexdigest()
    if h not in _pub_cache:
        cmd = ["openssl", "x509", "-noout", "-pubkey"] if kind == "cert" else ["openssl", "pkey", "-pubout"]
        r = subprocess.run(cmd, input=pem.encode(), capture_output=True, timeout=20)
        _pub_cache[h] = r.stdout if r.returncode == 0 else None
    return _pub_cache[h]


def invariants(s, have_openssl):
    """store_check_consistency's invariants, and a few stricter ones."""
    v = []
    if s.integrity != "ok":
        v.append("integrity_check: " + s.integrity)
    if s.fk:
        v.append("foreign key violation: %r" % (s.fk[:3],))
    for name, k in sorted(s.keys.items()):
        if k["state"] == "registered" and not k["cert_pem"]:
            v.append("registered key without a certificate: " + name)
        if not k["sealed"] or not k["cert_pem"]:
            v.append("key %s without its private key or certificate" % name)
        elif not k["opens"]:
            v.append("key %s: its private key is not sealed or does not open with the KEK" % name)
    for f, kn in sorted(s.binds.items()):
        if kn is None:
            continue
        if kn not in s.keys:
            v.append("binding to a missing key: function %s -> key %s" % (f, kn))
        elif s.keys[kn]["state"] != "registered":
            v.append("binding to a key that is not registered: function %s -> key %s (%s)"
                     % (f, kn, s.keys[kn]["state"]))
    by_request = {}
    for name, k in s.keys.items():
        rid = k["request_id"]
        if rid is None:
            continue
        if rid in by_request:
            v.append("request %d has two keys: %s and %s" % (rid, by_request[rid], name))
        by_request[rid] = name
        r = s.reqs.get(rid)
        if r and r["state"] != k["state"]:
            v.append("key %s is %s but its request %d is %s" % (name, k["state"], rid, r["state"]))
        if r and r["key_name"] != name:
            v.append("key %s comes from request %d for key %s" % (name, rid, r["key_name"]))
    for rid, r in sorted(s.reqs.items()):
        if r["state"] == "acquired" and rid not in by_request:
            v.append("acquired request without its key: request %d (key %s)" % (rid, r["key_name"]))
    active = [rid for rid, r in s.reqs.items() if r["state"] in ACTIVE]
    if len(active) > 1:
        v.append("more than one unfinished request: %s" % sorted(active))
    if have_openssl:
        for name, k in sorted(s.keys.items()):
            if k["key_pem"] and k["cert_pem"]:
                a, b = pubkey("cert", k["cert_pem"]), pubkey("key", k["key_pem"])
                if a is None or b is None or a != b:
                    v.append("key %s: the certificate does not belong to the private key" % name)
    return v


class Allow:
    """What the operations sent since the earlier snapshot may have changed."""

    def __init__(self):
        self.manual_names = set()     # POST /requests sent for these key names
        self.created_ids = set()      # ... answered 202 with these ids
        self.max_auto = 0             # new auto requests allowed
        self.deletes = set()          # DELETE sent
        self.deletes_done = set()     # ... answered 204
        self.deletes_refused = set()  # ... answered 409 (bound key)
        self.binds = {}               # PUT binding sent: function -> key
        self.binds_done = {}          # ... answered 200
        self.registered_done = set()  # POST /restart answered 200: registered
        self.replaced_done = set()    # ... and deleted (delete-old)


def has_audit(cur, prev, action, prefix):
    return any(i > prev.audit_max and a == action and d.startswith(prefix) for i, (a, d) in cur.audit.items())


def compare(prev, cur, allow):
    v = []
    lost_audit = [i for i in prev.audit if i not in cur.audit]
    if lost_audit:
        v.append("audit lines lost: %s" % lost_audit[:5])
    # ---- requests
    for rid, r in sorted(prev.reqs.items()):
        c = cur.reqs.get(rid)
        if c is None:
            v.append("request %d (%s) lost" % (rid, r["state"]))
            continue
        if c["kind"] != r["kind"] or c["key_name"] != r["key_name"]:
            v.append("request %d changed kind or key name" % rid)
        ps, cs = r["state"], c["state"]
        if ps in ("registered", "failed") and cs != ps:
            v.append("request %d went from %s back to %s" % (rid, ps, cs))
        elif ps == "acquired" and cs not in ("acquired", "registered") and \
                not (cs == "failed" and r["key_name"] in allow.deletes):
            v.append("request %d went from acquired to %s" % (rid, cs))
        elif ps in ACTIVE and cs == "failed":
            v.append("request %d (%s) failed after the crash: %s: %s"
                     % (rid, ps, c["error_code"], c["error_detail"]))
    new = sorted(set(cur.reqs) - set(prev.reqs))
    manual = [i for i in new if cur.reqs[i]["kind"] == "manual"]
    autos = [i for i in new if cur.reqs[i]["kind"] == "auto"]
    for i in manual:
        if cur.reqs[i]["key_name"] not in allow.manual_names:
            v.append("request %d for key %s appeared without a POST" % (i, cur.reqs[i]["key_name"]))
    if len(manual) > len(allow.manual_names):
        v.append("%d new manual requests for %d POSTs" % (len(manual), len(allow.manual_names)))
    if len(autos) > allow.max_auto:
        v.append("%d new auto requests (at most %d allowed): %s" % (len(autos), allow.max_auto, autos))
    for i in new:
        if not has_audit(cur, prev, "request.create", "request %d (" % i):
            v.append("request %d has no request.create audit line" % i)
        if cur.reqs[i]["state"] == "failed":
            v.append("new request %d failed: %s: %s" % (i, cur.reqs[i]["error_code"], cur.reqs[i]["error_detail"]))
    for i in sorted(allow.created_ids):
        if i not in cur.reqs:
            v.append("POST /requests was answered 202 with id %d, but the request is not in the store" % i)
    # ---- keys
    def register_line(name):
        k = cur.keys[name]
        return "key %s registered (request %s)" % (name, k["request_id"] or 0)

    removed = {}
    for name, k in sorted(prev.keys.items()):
        c = cur.keys.get(name)
        if c is not None and (c["sealed"] != k["sealed"] or c["cert_pem"] != k["cert_pem"]):
            v.append("key %s now holds another key pair (deleted, and the name used again)" % name)
            continue
        if c is None:
            replacer = [n for n, x in cur.keys.items() if x["replaces"] == name and x["state"] == "registered"
                        and (n not in prev.keys or prev.keys[n]["state"] == "acquired")
                        and has_audit(cur, prev, "key.register",
                                      register_line(n) + ", replaced key " + name)]
            if name in allow.deletes:
                removed[name] = "delete"
                if not has_audit(cur, prev, "key.delete", "key %s deleted" % name):
                    v.append("key %s was deleted without a key.delete audit line" % name)
            elif replacer:
                removed[name] = "replaced by " + replacer[0]
            else:
                v.append("%s key %s lost (no DELETE sent for it, not replaced by a registration)"
                         % (k["state"], name))
            continue
        if k["state"] == "registered" and c["state"] != "registered":
            v.append("key %s went from registered to %s" % (name, c["state"]))
    for name in sorted(allow.deletes_done):
        if name in cur.keys and name in prev.keys:
            v.append("DELETE /keys/%s was answered 204 but the key is still stored" % name)
    for name in sorted(allow.deletes_refused):
        if name not in cur.keys:
            v.append("DELETE /keys/%s was refused (409) but the key is gone" % name)
    earlier = [n for n, k in prev.keys.items() if k["state"] == "acquired" and n in cur.keys]
    states = {n: cur.keys[n]["state"] for n in earlier}
    if len(set(states.values())) > 1:
        v.append("registration was not all or nothing: %s" % sorted(states.items()))
    for name in sorted(allow.registered_done):
        if cur.keys.get(name, {}).get("state") != "registered":
            v.append("POST /restart answered that %s is registered, but the store has it %s"
                     % (name, cur.keys.get(name, {}).get("state", "absent")))
    for name in sorted(allow.replaced_done):
        if name in cur.keys:
            v.append("POST /restart answered that %s was deleted, but it is stored" % name)
    for name, c in sorted(cur.keys.items()):
        if name not in prev.keys:
            if not c["request_id"] or c["request_id"] not in cur.reqs:
                v.append("new key %s does not come from a stored request" % name)
        if c["state"] == "registered" and (name not in prev.keys or prev.keys[name]["state"] == "acquired"):
            if not has_audit(cur, prev, "key.register", register_line(name)):
                v.append("key %s was registered without a key.register audit line" % name)
    # ---- bindings
    for f in sorted(set(prev.binds) | set(cur.binds)):
        p, c = prev.binds.get(f), cur.binds.get(f)
        if c == p:
            continue
        if f in allow.binds and c == allow.binds[f]:
            if not has_audit(cur, prev, "binding.set", "function %s bound to key %s" % (f, c)):
                v.append("binding %s -> %s has no binding.set audit line" % (f, c))
            continue
        if p and p not in cur.keys and c and cur.keys.get(c, {}).get("replaces") == p \
                and removed.get(p, "").startswith("replaced"):
            continue
        v.append("binding %s changed from %s to %s, which no operation asked for" % (f, p, c))
    for f, k in sorted(allow.binds_done.items()):
        if cur.binds.get(f) != k:
            v.append("PUT /bindings/%s was answered 200 for %s, but the store binds %s" % (f, k, cur.binds.get(f)))
    return v


# ---- the test ------------------------------------------------------------------------------


class CrashTest:
    def __init__(self):
        self.scepd = find_bin("SCEPD", "scepd")
        self.scepca_bin = find_bin("SCEPCA", "scepca")
        if not self.scepd or not self.scepca_bin:
            print("1..0 # SKIP scepd or scepca not built (set SCEPD and SCEPCA)")
            sys.exit(0)
        self.have_openssl = shutil.which("openssl") is not None
        self.iterations = int(os.environ.get("CRASH_ITERATIONS", "32"))
        self.seed = int(os.environ.get("CRASH_SEED", str(int(time.time() * 1000) % 1000000)))
        self.max_failures = int(os.environ.get("CRASH_MAX_FAILURES", "5"))
        self.rng = random.Random(self.seed)
        self.work = tempfile.mkdtemp(prefix="scepd_crash.")
        os.chmod(self.work, 0o755)
        self.state = os.path.join(self.work, "state")
        KEK_FILE["path"] = os.path.join(self.work, "scepd.kek")
        self.db = os.path.join(self.state, "scepd.db")
        self.cadir = os.path.join(self.work, "ca")
        self.exports = os.path.join(self.work, "exports")
        os.makedirs(self.exports)
        self.scratch = os.path.join(self.work, "scratch")
        self.scepd_log = os.path.join(self.work, "scepd.log")
        self.scepd_watch = LogWatch(self.scepd_log)
        self.proc = None
        self.api = Api()
        self.servers = {}
        self.tap = 0
        self.failed = False
        self.kills = 0
        self.stats = {}
        self.outcomes = {}
        self.target = None
        self.name_seq = 0
        self.slowest_resume = (0.0, "")
        self.current = ""
        self.conf = os.path.join(self.work, "scepd.conf")
        with open(self.conf, "w") as f:
            f.write("[scepd]\nstate_dir = %s\nkek_file = %s\nmax_keys = 100\nlog_level = info\n\n"
                    "[function f1]\nexport_key = %s/f1.key\nexport_cert = %s/f1.crt\n"
                    "export_chain = %s/f1-chain.crt\n\n"
                    "[function f2]\nexport_cert = %s/f2.crt\n"
                    % (self.state, KEK_FILE["path"], self.exports, self.exports, self.exports, self.exports))
        self.exported = {"f1": {"key": "f1.key", "cert": "f1.crt", "chain": "f1-chain.crt"},
                         "f2": {"cert": "f2.crt"}}

    # ---- output
    def ok(self, good, text, detail=()):
        self.tap += 1
        print("%s %d - %s" % ("ok" if good else "not ok", self.tap, text), flush=True)
        for d in detail:
            log("  " + d)
        if not good:
            self.failed = True

    # ---- processes
    def spawn(self):
        """Starts scepd on a port the kernel picks; the port is read from its
        first line, so no other process can take it in between."""
        with open(self.scepd_log, "ab") as f:
            f.write(b"---- start\n")
            self.spawn_offset = f.tell()
        out = open(self.scepd_log, "ab")
        env = dict(os.environ, SCEPD_ADMIN_PASSWORD=ADMIN_PW)
        self.proc = subprocess.Popen([self.scepd, "--config", self.conf, "--listen", "127.0.0.1:0"],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        out.close()
        self.api.port = None

    def read_port(self):
        with open(self.scepd_log, "rb") as f:
            f.seek(self.spawn_offset)
            m = re.search(rb"Remote UI at http://127\.0\.0\.1:(\d+)/", f.read())
        return int(m.group(1)) if m else None

    def start(self):
        self.spawn()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("scepd exited with %s at start: %s" % (self.proc.returncode, tail(self.scepd_log)))
            if self.api.port is None:
                self.api.port = self.read_port()
            if self.api.port is not None:
                try:
                    self.api.raw("GET", "/api/v1/status", timeout=2, auth=False)
                    return
                except (OSError, http.client.HTTPException):
                    pass
            time.sleep(0.02)
        raise Fail("scepd did not answer within %.0f s: %s" % (WAIT_S, tail(self.scepd_log)))

    def kill(self):
        """SIGKILLs scepd, which must be running, and checks that this kill
        is what ended it: a scepd that exited by itself fails the test."""
        if not self.proc:
            raise Fail("no scepd to kill")
        rc = self.proc.poll()
        if rc is not None:
            raise Fail("scepd was no longer running at the planned kill: it had exited with %s; log:\n%s"
                       % (rc, tail(self.scepd_log, 40)))
        os.kill(self.proc.pid, signal.SIGKILL)
        self.kills += 1
        rc = self.proc.wait(timeout=10)
        if rc != -signal.SIGKILL:
            raise Fail("scepd ended with %s, not by the SIGKILL sent to it; log:\n%s" % (rc, tail(self.scepd_log, 40)))

    def stop(self):
        """SIGTERM: scepd must exit 0. Returns a problem or None."""
        if not self.proc or self.proc.returncode is not None:
            return None
        rc = self.proc.poll()
        if rc is not None:
            return "scepd had exited with %s by itself: %s" % (rc, tail(self.scepd_log, 40))
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return "scepd did not stop within 20 s of SIGTERM"
        return None if rc == 0 else "scepd exited with %s on SIGTERM: %s" % (rc, tail(self.scepd_log, 40))

    def log_problems(self, running=True):
        """Sanitizer reports in what the logs gained since the last look, and
        (while they should run) servers that are no longer running."""
        v = self.scepd_watch.new_reports()
        for name, srv in sorted(self.servers.items()):
            v += srv.watch.new_reports()
            if running and srv.proc.poll() is not None:
                v.append("scepca %s exited with %s: %s" % (name, srv.proc.returncode, tail(srv.log)))
        return v

    # ---- CA
    def approve_all(self):
        r = subprocess.run([self.scepca_bin, "list", "--dir", self.cadir, "--pending"],
                           capture_output=True, text=True, timeout=20)
        for rid in re.findall(r"^request (\d+)\s+pending", r.stdout, re.M):
            subprocess.run([self.scepca_bin, "approve", "--dir", self.cadir, rid],
                           capture_output=True, timeout=20)

    # ---- API helpers (unkilled)
    def must(self, method, path, body=None, want=(200,)):
        try:
            st, doc = self.api.call(method, path, body)
        except (OSError, http.client.HTTPException) as e:
            # scepd was not killed here: it must answer. Show why it did not.
            raise Fail("%s %s: no answer (%s); scepd %s; log:\n%s" % (
                method, path, e, "exited with %s" % self.proc.returncode if self.proc.poll() is not None
                else "is running", tail(self.scepd_log, 40)))
        if st not in want:
            raise Fail("%s %s: HTTP %s %s" % (method, path, st, json.dumps(doc)[:300]))
        return doc

    def use_server(self, name):
        self.must("PUT", "/api/v1/scep/settings", {"url": self.servers[name].url, "poll_interval_s": 5,
                                                   "poll_max": 200, "timeout_s": 20})

    def new_name(self):
        self.name_seq += 1
        return "k%d" % self.name_seq

    def request_body(self, name, length=2048):
        return {"key_name": name, "common_name": "crash-" + name, "challenge_password": CHALLENGE,
                "key_algorithm": "rsa", "key_length": length, "sans": ["dns:%s.crash.test" % name]}

    def wait_request(self, rid, states, seconds=WAIT_S):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reqs = read_requests(self.db)
            st = reqs.get(rid, {}).get("state")
            if st in states:
                return st
            if st == "failed":
                raise Fail("request %d failed: %s" % (rid, snapshot_live(self.db).reqs[rid]))
            time.sleep(0.05)
        raise Fail("request %d not %s within %d s" % (rid, "/".join(states), seconds))

    def make_acquired(self, n=1):
        self.use_server("plain")
        for _ in range(n):
            doc = self.must("POST", "/api/v1/scep/requests", self.request_body(self.new_name()), want=(202,))
            self.wait_request(doc["id"], ("acquired",))

    def make_registered(self):
        self.make_acquired()
        self.must("POST", "/api/v1/restart")

    def tidy(self, s):
        """Keeps the number of stored pairs bounded (max_keys is 100)."""
        if len(s.keys) <= 20:
            return
        bound = {k for k in s.binds.values() if k}
        for name in sorted(s.keys, key=lambda n: s.keys[n]["request_id"] or 0):
            if len(s.keys) <= 14:
                break
            if name not in bound and name != "DefaultTLS":
                self.must("DELETE", "/api/v1/keys/" + name, want=(204,))
                del s.keys[name]

    # ---- kills
    def short_delay(self):
        """Around a call that takes a few milliseconds: mostly inside it."""
        return self.rng.uniform(0.0, 0.004) if self.rng.random() < 0.6 else self.rng.uniform(0.004, 0.03)

    def kill_after(self, op, delay):
        t0 = time.monotonic()
        if op:
            op.start()
        time.sleep(max(0.0, delay - (time.monotonic() - t0)))
        self.kill()
        return "SIGKILL %.1f ms after the call" % (delay * 1000)

    def kill_on(self, op, pred, what, extra, limit=20, pause=0.001):
        """Polls the live store until pred(requests) holds, then kills after `extra` s."""
        if op:
            op.start()
        deadline = time.monotonic() + limit
        seen = False
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                seen = pred(read_requests(self.db))
            except sqlite3.Error:
                seen = False
            if seen:
                break
            time.sleep(pause)
        time.sleep(extra)
        self.kill()
        return "SIGKILL %.1f ms after %s%s" % (extra * 1000, what, "" if seen else " (NOT seen within %d s)" % limit)

    # ---- checks
    def check_modes(self):
        v = []
        mode = stat.S_IMODE(os.stat(self.state).st_mode)
        if mode != 0o700:
            v.append("state directory mode %o (want 700)" % mode)
        for name in ("scepd.db", "scepd.db-wal", "scepd.db-shm"):
            p = os.path.join(self.state, name)
            if os.path.exists(p):
                m = stat.S_IMODE(os.stat(p).st_mode)
                if m != 0o600:
                    v.append("%s mode %o (want 600)" % (name, m))
        return v

    def check_exports(self, s):
        """Exported files equal the bound key's (scepd rewrites them at start)."""
        v = []
        for f, files in sorted(self.exported.items()):
            kn = s.binds.get(f)
            if not kn or kn not in s.keys:
                continue
            k = s.keys[kn]
            for what, fname in files.items():
                p = os.path.join(self.exports, fname)
                want = {"key": k["key_pem"], "cert": k["cert_pem"], "chain": k["chain_pem"]}[what]
                try:
                    with open(p) as fh:
                        got = fh.read()
                except OSError:
                    got = None
                if got != want:
                    v.append("export %s of function %s does not hold key %s's %s" % (fname, f, kn, what))
                if what == "key" and got is not None and stat.S_IMODE(os.stat(p).st_mode) != 0o600:
                    v.append("exported key %s mode %o" % (fname, stat.S_IMODE(os.stat(p).st_mode)))
        return v

    def wait_resumed(self, base, auto_base):
        """After a restart: every unfinished request of `base` ends acquired
        (an auto one with auto-restart: registered); an auto request enabled in
        `base` runs exactly once. Approves pending requests at the CA."""
        unfinished = sorted(r for r, x in base.reqs.items() if x["state"] in ACTIVE)
        auto_doc = base.docs.get("auto_request") or {}
        auto_on = auto_base is not None and auto_doc.get("enabled") is True
        t0 = time.monotonic()
        deadline = t0 + WAIT_S
        last_approve = 0.0
        problems = []
        while True:
            s = snapshot_live(self.db)
            waiting = []
            for rid in unfinished:
                r = s.reqs.get(rid)
                want = ("registered",) if r and r["kind"] == "auto" and auto_doc.get("auto_restart") else \
                    ("acquired", "registered")
                if r is None or r["state"] == "failed":
                    problems = ["request %d (%s at the kill) failed after the restart: %s: %s"
                                % (rid, base.reqs[rid]["state"], r and r["error_code"], r and r["error_detail"])]
                    return s, problems
                if r["state"] not in want:
                    waiting.append("request %d %s (want %s)" % (rid, r["state"], "/".join(want)))
            autos = []
            if auto_base is not None:
                autos = [i for i, r in s.reqs.items() if r["kind"] == "auto" and i > auto_base]
                if auto_on and not autos:
                    waiting.append("the enabled auto request has not started (auto_state %s)"
                                   % json.dumps(s.docs.get("auto_state")))
                for i in autos:
                    st = s.reqs[i]["state"]
                    if st == "failed":
                        return s, ["auto request %d failed: %s: %s" % (i, s.reqs[i]["error_code"],
                                                                         s.reqs[i]["error_detail"])]
                    if st != "registered":
                        waiting.append("auto request %d %s (want registered: auto-restart is on)" % (i, st))
            if not waiting:
                break
            if time.monotonic() > deadline:
                return s, ["not resumed within %.0f s: " % WAIT_S + "; ".join(waiting)]
            if time.monotonic() - last_approve > 0.5:
                self.approve_all()
                last_approve = time.monotonic()
            time.sleep(0.1)
        took = time.monotonic() - t0
        if took > self.slowest_resume[0]:
            self.slowest_resume = (took, self.current)
        if auto_base is not None:
            # No waiting for a second run: the store must show that none can
            # start (the one-shot request's run disarms it in the transaction
            # that inserts the request), and a run fires only when armed.
            s = snapshot_live(self.db)
            armed = (s.docs.get("auto_request") or {}).get("enabled") is True and \
                (s.docs.get("auto_state") or {}).get("next_run", 0) != 0
            if armed:
                problems.append("after the one-shot auto request the schedule is still armed: auto_state %s"
                                % json.dumps(s.docs.get("auto_state")))
            autos = sorted(i for i, r in s.reqs.items() if r["kind"] == "auto" and i > auto_base)
            if len(autos) != (1 if auto_on else 0):
                problems.append("the one-shot auto request ran %d times (%s); it was %s in the store at the kill"
                                % (len(autos), autos, "enabled" if auto_on else "not enabled"))
        deadline = time.monotonic() + WAIT_S
        while True:
            ex = self.check_exports(s)
            if not ex or time.monotonic() > deadline:
                break
            time.sleep(0.1)
            s = snapshot_live(self.db)
        return s, problems + ex

    def after_kill(self, prev, allow):
        s = snapshot_offline(self.state, self.scratch)
        return s, invariants(s, self.have_openssl) + compare(prev, s, allow) + self.check_modes()

    # ---- phases: each prepares, snapshots, runs an operation and kills scepd
    def phase_keygen(self, it):
        self.use_server("plain")
        prev = snapshot_live(self.db)
        name = self.new_name()
        op = Op(self.api, "POST", "/api/v1/scep/requests", self.request_body(name, 4096))
        if self.rng.random() < 0.5:
            how = self.kill_after(op, self.rng.uniform(0.0, 1.2))
        else:
            how = self.kill_on(op, lambda s: any(r["key_name"] == name and r["state"] != "queued"
                                                 for r in s.values()), "generating_key",
                               self.rng.uniform(0.0, 0.8))
        return prev, self.request_allow(op, name), op, how

    def request_allow(self, op, name):
        self.target = lambda c: any(r["key_name"] == name for r in c.reqs.values())
        a = Allow()
        a.manual_names.add(name)
        if op.result() == 202 and op.doc:
            a.created_ids.add(op.doc["id"])
        return a

    def phase_send(self, it):
        self.use_server("slow")
        prev = snapshot_live(self.db)
        name = self.new_name()
        op = Op(self.api, "POST", "/api/v1/scep/requests", self.request_body(name))
        mode = self.rng.choice(("contacting", "sent", "delay"))
        if mode == "delay":
            how = self.kill_after(op, self.rng.uniform(0.0, 1.6))
        else:
            target = "contacting_server" if mode == "contacting" else "sent"
            after = ("contacting_server", "sent", "pending", "acquired") if mode == "contacting" else \
                ("sent", "pending", "acquired")
            how = self.kill_on(op, lambda s: any(r["key_name"] == name and r["state"] in after
                                                 for r in s.values()), target,
                               self.rng.uniform(0.0, 0.05 if mode == "contacting" else 0.7))
        return prev, self.request_allow(op, name), op, how

    def phase_pending(self, it):
        self.use_server("pending")
        prev = snapshot_live(self.db)
        name = self.new_name()
        op = Op(self.api, "POST", "/api/v1/scep/requests", self.request_body(name))
        mode = self.rng.choice(("sent", "wait", "poll"))
        if mode == "sent":
            how = self.kill_on(op, lambda s: any(r["key_name"] == name and r["state"] in ("sent", "pending")
                                                 for r in s.values()), "sent", self.rng.uniform(0.0, 0.25))
        else:
            op.start()
            if op.result() != 202:
                raise Fail("POST /requests: %s" % op.describe())
            self.wait_request(op.doc["id"], ("pending",), 20)
            t0 = time.monotonic()
            if mode == "poll":
                self.approve_all()
                delay = self.rng.uniform(4.3, 6.3)  # the CertPoll 5 s after PENDING
            else:
                delay = self.rng.uniform(0.0, 3.0)
            time.sleep(max(0.0, delay - (time.monotonic() - t0)))
            self.kill()
            how = "SIGKILL %.1f ms after PENDING%s" % (delay * 1000, ", approved" if mode == "poll" else "")
        return prev, self.request_allow(op, name), op, how

    def phase_register(self, it):
        s = snapshot_live(self.db)
        acquired = [n for n, k in s.keys.items() if k["state"] == "acquired"]
        want = 2 if self.rng.random() < 0.4 else 1
        if len(acquired) < want:
            self.make_acquired(want - len(acquired))
        prev = snapshot_live(self.db)
        op = Op(self.api, "POST", "/api/v1/restart")
        how = self.kill_after(op, self.short_delay())
        self.target = lambda c: any(k["state"] == "acquired" and c.keys.get(n, {}).get("state") == "registered"
                                    for n, k in prev.keys.items())
        a = Allow()
        if op.result() == 200 and op.doc:
            a.registered_done = set(op.doc.get("registered", []))
            a.replaced_done = set(op.doc.get("deleted", []))
        return prev, a, op, how

    def phase_delete(self, it):
        s = snapshot_live(self.db)
        bound = {k for k in s.binds.values() if k}
        refuse = self.rng.random() < 0.2 and bound
        if refuse:
            name = self.rng.choice(sorted(bound))
        else:
            cands = sorted(n for n in s.keys if n not in bound)
            if not cands:
                self.make_acquired()
                s = snapshot_live(self.db)
                cands = sorted(n for n in s.keys if n not in bound)
            name = self.rng.choice(cands)
        prev = snapshot_live(self.db)
        op = Op(self.api, "DELETE", "/api/v1/keys/" + name)
        how = self.kill_after(op, self.short_delay())
        self.target = lambda c: name not in c.keys
        a = Allow()
        st = op.result()
        if refuse:
            if st not in (None, 409):
                raise Fail("DELETE of the bound key %s: %s" % (name, op.describe()))
            a.deletes_refused.add(name)
        else:
            a.deletes.add(name)
            if st == 204:
                a.deletes_done.add(name)
            elif st is not None:
                raise Fail("DELETE /keys/%s: %s" % (name, op.describe()))
        return prev, a, op, "%s %s (%s key)" % (how, name, prev.keys[name]["state"])

    def phase_bind(self, it):
        f = self.rng.choice(("f1", "f2", "tls"))
        s = snapshot_live(self.db)
        cands = sorted(n for n, k in s.keys.items() if k["state"] == "registered" and s.binds.get(f) != n)
        if not cands:
            self.make_registered()
            s = snapshot_live(self.db)
            cands = sorted(n for n, k in s.keys.items() if k["state"] == "registered" and s.binds.get(f) != n)
        name = self.rng.choice(cands)
        prev = snapshot_live(self.db)
        op = Op(self.api, "PUT", "/api/v1/bindings/" + f, {"key_name": name})
        how = self.kill_after(op, self.short_delay())
        self.target = lambda c: c.binds.get(f) == name
        a = Allow()
        a.binds[f] = name
        st = op.result()
        if st == 200:
            a.binds_done[f] = name
        elif st is not None:
            raise Fail("PUT /bindings/%s: %s" % (f, op.describe()))
        return prev, a, op, "%s (%s -> %s)" % (how, f, name)

    def phase_auto(self, it):
        self.use_server("slow")
        s = snapshot_live(self.db)
        cur = (s.docs.get("auto_state") or {}).get("current_key") or "auto"
        if cur in s.keys and s.keys[cur]["state"] == "registered" and self.rng.random() < 0.6:
            self.must("PUT", "/api/v1/bindings/f2", {"key_name": cur})
        prev = snapshot_live(self.db)
        base = max(prev.reqs) if prev.reqs else 0
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
        body = {"enabled": True, "start": start, "auto_adjust": False,
                "polling": {"enabled": True, "retries": 5, "interval_s": 10},
                "periodic": {"enabled": False, "interval_days": 30},
                "auto_restart": True, "delete_old": True,
                "key": {"key_name": "auto", "common_name": "crash-auto", "challenge_password": CHALLENGE,
                        "key_algorithm": "rsa", "key_length": 2048}}
        op = Op(self.api, "PUT", "/api/v1/scep/auto-request", body)
        mode = self.rng.choice(("put", "fired", "acquired", "delay"))
        self.target = lambda c: (c.docs.get("auto_request") or {}).get("enabled") is True
        if mode == "put":
            how = self.kill_after(op, self.short_delay())
        elif mode == "delay":
            how = self.kill_after(op, self.rng.uniform(0.0, 2.0))
        elif mode == "fired":  # between the new request and the saved schedule
            how = self.kill_on(op, lambda x: any(i > base and r["kind"] == "auto" for i, r in x.items()),
                               "the auto request's creation", 0.0, pause=0.0)
        else:
            how = self.kill_on(op, lambda x: any(i > base and r["kind"] == "auto" and r["state"] in
                                                 ("acquired", "registered") for i, r in x.items()),
                               "the auto request's acquisition", 0.0, pause=0.0)
        op.result()
        a = Allow()
        a.max_auto = 1
        return prev, a, op, how + (" (%s was current)" % cur)

    def phase_resume(self, it):
        """Killed while sent; killed again while the restarted daemon resumes."""
        self.use_server("slow")
        prev = snapshot_live(self.db)
        name = self.new_name()
        op = Op(self.api, "POST", "/api/v1/scep/requests", self.request_body(name))
        how = self.kill_on(op, lambda s: any(r["key_name"] == name and r["state"] in ("sent", "pending", "acquired")
                                             for r in s.values()), "sent", 0.0)
        return prev, self.request_allow(op, name), op, how

    # ---- one iteration
    def settle(self):
        """Waits (bounded) until no request runs, e.g. after a failed iteration."""
        deadline = time.monotonic() + WAIT_S
        while any(r["state"] in ACTIVE for r in read_requests(self.db).values()):
            if time.monotonic() > deadline:
                raise Fail("a request is still running %.0f s after the iteration" % WAIT_S)
            self.approve_all()
            time.sleep(0.2)

    def iteration(self, it, phase):
        self.current = "iteration %d, %s" % (it, phase)
        self.settle()
        s = snapshot_live(self.db)
        self.tidy(s)
        prev, allow, op, how = getattr(self, "phase_" + phase)(it)
        op.result()
        auto_base = (max(prev.reqs) if prev.reqs else 0) if phase == "auto" else None
        crashed, problems = self.after_kill(prev, allow)
        if op.status:
            outcome = "answered"
        else:
            outcome = "done, unanswered" if self.target(crashed) else "not done"
        self.outcomes.setdefault(phase, {}).setdefault(outcome, 0)
        self.outcomes[phase][outcome] += 1
        at_kill = ", ".join("request %d %s" % (i, r["state"]) for i, r in sorted(crashed.reqs.items())
                            if r["state"] in ACTIVE or i > (max(prev.reqs) if prev.reqs else 0)) or "no request running"
        label = "iteration %d, phase %s: %s; %s (%s); at the kill: %s" % (it, phase, how, op.describe(), outcome,
                                                                             at_kill)
        base = crashed
        if not problems and phase == "resume":
            self.spawn()
            delay = self.rng.uniform(0.0, 0.9)
            time.sleep(delay)
            self.kill()
            second, problems = self.after_kill(crashed, Allow())
            label += "; killed again %.0f ms after the restart (then: %s)" % (delay * 1000, ", ".join(
                "request %d %s" % (i, r["state"]) for i, r in sorted(second.reqs.items())
                if i > (max(prev.reqs) if prev.reqs else 0)))
            base = second
        problems += self.log_problems()
        if problems:
            self.ok(False, label, ["store after the kill: " + p for p in problems])
            return "stop"
        self.start()
        resumed, problems = self.wait_resumed(base, auto_base)
        allow_after = Allow()
        allow_after.max_auto = 1 if auto_base is not None and not any(
            r["kind"] == "auto" and i > auto_base for i, r in base.reqs.items()) else 0
        problems += invariants(resumed, self.have_openssl) + compare(base, resumed, allow_after) + self.check_modes()
        problems += self.log_problems()
        if phase == "auto":
            self.must("PUT", "/api/v1/scep/auto-request", {"enabled": False})
        self.stats[phase] = self.stats.get(phase, 0) + 1
        self.ok(not problems, label + "; consistent and resumed" if not problems else label,
                ["after the restart: " + p for p in problems])
        return "ok" if not problems else "failed"

    def run(self):
        t_start = time.monotonic()
        log("seed %d (repeat with CRASH_SEED=%d), %d iterations, work %s"
            % (self.seed, self.seed, self.iterations, self.work))
        if not self.have_openssl:
            log("openssl not found: the certificate/private key match is not checked")
        r = subprocess.run([self.scepca_bin, "init", "--dir", self.cadir, "--admin-password", "ca-admin-pw"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise Fail("scepca init: %s %s" % (r.stdout, r.stderr))
        self.servers["plain"] = Scepca(self.scepca_bin, self.cadir, self.work, "plain", [])
        self.servers["slow"] = Scepca(self.scepca_bin, self.cadir, self.work, "slow", ["--fault", "delay:500"])
        self.servers["pending"] = Scepca(self.scepca_bin, self.cadir, self.work, "pending",
                                         ["--pending", "--fault", "delay:200"])
        self.start()
        self.api.login()
        self.make_registered()
        first = snapshot_live(self.db)
        v = invariants(first, self.have_openssl) + self.check_modes() + self.log_problems()
        self.ok(not v, "scepd started, one pair acquired and registered, store consistent", v)
        if v:
            return
        order = []
        while len(order) < self.iterations:
            chunk = list(PHASES)
            self.rng.shuffle(chunk)
            order += chunk
        order = order[:self.iterations]
        done = failures = 0
        for it, phase in enumerate(order, 1):
            result = self.iteration(it, phase)
            done += 1
            if result == "failed":
                failures += 1
                log("seed %d, iteration %d, phase %s: the store is consistent but the restart did not "
                    "resume as it should; going on" % (self.seed, it, phase))
            if result == "stop" or failures >= self.max_failures:
                failures += result == "stop"
                log("stopping after %s (seed %d, iteration %d, phase %s)"
                    % ("an inconsistent store" if result == "stop" else "%d failed iterations" % failures,
                       self.seed, it, phase))
                break
        log("slowest resume after a restart: %.1f s (%s); the bound is %.0f s"
            % (self.slowest_resume[0], self.slowest_resume[1], WAIT_S))
        for phase in PHASES:
            if phase in self.outcomes:
                log("%-8s the call at the kill: %s" % (phase, ", ".join(
                    "%s %d" % kv for kv in sorted(self.outcomes[phase].items()))))
        final = snapshot_live(self.db)
        v = invariants(final, self.have_openssl) + self.log_problems()
        # the daemons end as they should: scepd and every scepca exit 0 on
        # SIGTERM, with no sanitizer report (LeakSanitizer runs at that exit)
        for problem in [self.stop()] + [srv.stop() for _, srv in sorted(self.servers.items())]:
            if problem:
                v.append(problem)
        v += self.log_problems(running=False)
        if done != self.iterations:
            v.append("%d of the %d planned iterations ran" % (done, self.iterations))
        self.ok(not v and not failures, "%d iterations (%d failed), %d SIGKILLs in %.0f s (%s); final store consistent "
                "(%d keys, %d requests)" % (done, failures, self.kills, time.monotonic() - t_start,
                                            ", ".join("%s %d" % kv for kv in sorted(self.stats.items())),
                                            len(final.keys), len(final.reqs)), v)

    def cleanup(self):
        self.stop()
        for s in self.servers.values():
            if s.proc.poll() is None:
                s.stop()
        logs = os.environ.get("SCEPD_TEST_LOGS")
        if logs and os.path.isdir(logs):
            # tests/run scans these for sanitizer reports too
            for name in os.listdir(self.work):
                if name.endswith(".log"):
                    shutil.copyfile(os.path.join(self.work, name), os.path.join(logs, "crash-" + name))
        if self.failed or os.environ.get("CRASH_KEEP") == "1":
            log("work directory kept: %s (scepd.log, state/, scratch/ = the store at the last kill)" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    t = CrashTest()
    print("1..%d" % (t.iterations + 2), flush=True)
    try:
        t.run()
    except Fail as e:
        t.ok(False, "error: %s" % e)
        log("seed %d" % t.seed)
        log("scepd log tail:\n" + tail(t.scepd_log, 25))
    except Exception:
        import traceback
        t.ok(False, "unexpected error (seed %d)" % t.seed, traceback.format_exc().splitlines())
    finally:
        t.cleanup()
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
