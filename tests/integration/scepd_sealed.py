#!/usr/bin/env python3
"""Sealed storage of scepd's private keys, from outside: after an
enrollment, a registration, a failed request, a cancelled request and a key
deletion, no file in the state directory holds any of those keys in the
clear (not the database, not its -wal or -shm, nothing else); a copy of the
state directory alone does not start; with the key-encryption key it starts
and serves HTTPS with the bound key; a wrong KEK is refused and changes
nothing; an old store (tests/unit/data/store-schema1.db) is sealed at its
first start.

Each key is looked for as its PKCS#8 DER, every full line of its PEM body,
and a slice of its raw private scalar (EC) or of its primes and private
exponent (RSA). The keys themselves come from the store: the test opens the
sealed values with the KEK (AES-256-GCM, src/crypto/seal.h), which also
checks the format, and compares one with the file a binding exported.

Prints TAP. Environment: SCEPD, SCEPCA, SCEPD_SOURCE_ROOT; KEEP_TMP=1 keeps
the work directory.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scepd_e2e as e2e  # noqa: E402  (TAP, processes, scepca and scepd drivers)
from scepd_e2e import ok, eq, diag  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

SEALED_PREFIX = 'scepd-sealed:v1:'


def unseal(kek_path, aad, text, raw_bytes=False):
    """The clear text (bytes with raw_bytes) of a sealed value, or None when
    it does not open."""
    if not text or not text.startswith(SEALED_PREFIX):
        return None
    with open(kek_path, 'rb') as fp:
        kek = fp.read()
    raw = base64.b64decode(text[len(SEALED_PREFIX):], validate=True)
    try:
        plain = AESGCM(kek).decrypt(raw[:12], raw[12:], aad.encode())
        return plain if raw_bytes else plain.decode()
    except Exception:  # noqa: BLE001  (InvalidTag: it does not open)
        return None


def db_rows(state, sql, args=()):
    conn = sqlite3.connect(f'file:{os.path.join(state, "scepd.db")}?mode=ro', uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def pair_key(state, kek, name):
    """A stored pair's private key in the clear (PEM), opened with the KEK."""
    rows = db_rows(state, 'SELECT key_pem, coalesce(request_id, 0) FROM keys WHERE name = ?', (name,))
    if not rows:
        return None
    return unseal(kek, f'scepd-key-v1|keys|{name}|{rows[0][1]}', rows[0][0])


def request_key(state, kek, rid):
    rows = db_rows(state, 'SELECT key_pem, key_name FROM requests WHERE id = ?', (rid,))
    if not rows or rows[0][0] is None:
        return None
    return unseal(kek, f'scepd-key-v1|requests|{rid}|key_pem|{rows[0][1]}', rows[0][0])


def needles(pem):
    """(what, bytes) that would show the key in the clear."""
    key = serialization.load_pem_private_key(pem.encode(), None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    out = [('PKCS#8 DER', der), ('a slice of the PKCS#8 DER', der[len(der) // 2:len(der) // 2 + 24])]
    body = [line for line in pem.splitlines() if line and not line.startswith('-----')]
    # a short last line could occur in random base64 by chance
    out += [(f'PEM line {i + 1}', line.encode()) for i, line in enumerate(body) if len(line) >= 40]

    def raw(n):
        return n.to_bytes((n.bit_length() + 7) // 8, 'big')
    if isinstance(key, ec.EllipticCurvePrivateKey):
        d = key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, 'big')
        out += [('the private scalar', d), ('a slice of the private scalar', d[8:24])]
    else:
        n = key.private_numbers()
        for what, v in (('prime p', n.p), ('prime q', n.q), ('private exponent', n.d)):
            b = raw(v)
            out += [(what, b), (f'a slice of the {what}', b[16:48])]
    return out


def files_under(top):
    for root, _, names in os.walk(top):
        for name in names:
            yield os.path.join(root, name)


def clear_copies(top, keys):
    """'file: key (what)' for every needle of every key found in a file under top."""
    found = []
    for path in files_under(top):
        try:
            with open(path, 'rb') as fp:
                data = fp.read()
        except OSError:
            continue
        for label, pem in keys.items():
            for what, needle in needles(pem):
                if needle in data:
                    found.append(f'{os.path.relpath(path, top)}: {label} ({what})')
    return found


def dir_digest(top):
    """Each file's name, size and SHA-256: what 'nothing changed' compares."""
    out = {}
    for path in sorted(files_under(top)):
        with open(path, 'rb') as fp:
            out[os.path.relpath(path, top)] = hashlib.sha256(fp.read()).hexdigest()
    return out


def run_refused(args, env=None, timeout=60):
    """Runs scepd expecting it to refuse to start: (exit status, output)."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout + p.stderr


def start_plain(work, name, state, extra, env=None):
    """scepd on ports the kernel picks, for a store whose admin password the
    test does not know: waits for its first line only."""
    log_path = os.path.join(work, name + '.log')
    log = open(log_path, 'w')
    proc = subprocess.Popen([e2e.SCEPD, '--state', state, '--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0']
                            + extra, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
    log.close()
    e2e.PROCS.append(proc)

    def ports():
        with open(log_path, 'rb') as fp:
            m = re.search(rb'Remote UI at http://127\.0\.0\.1:(\d+)/ui/ and https://127\.0\.0\.1:(\d+)/', fp.read())
        return (int(m.group(1)), int(m.group(2))) if m else None
    got = e2e.wait_for(lambda: proc.poll() is not None or ports(), 20)
    with open(log_path, errors='replace') as fp:
        text = fp.read()
    return proc, (ports() if got and proc.poll() is None else None), text


def key_sha256(pem_cert):
    der = base64.b64decode(''.join(line for line in pem_cert.splitlines() if not line.startswith('-----')))
    return ':'.join(f'{b:02X}' for b in hashlib.sha256(der).digest())


# ---- the scenario ----------------------------------------------------------

def lifecycle(work, ca):
    """Enrollment, registration, a failed, a cancelled request, a deletion.
    Returns (scepd, the clear keys by label)."""
    exports = os.path.join(work, 'exports')
    os.makedirs(exports)
    state = os.path.join(work, 'state')
    conf = os.path.join(work, 'scepd.conf')
    with open(conf, 'w') as fp:
        fp.write(f'[scepd]\nstate_dir = {state}\nlisten = 127.0.0.1:0\nlisten_tls = 127.0.0.1:0\n\n'
                 f'[function f1]\nexport_key = {exports}/f1.key\nexport_cert = {exports}/f1.crt\n')
    d = e2e.Scepd(work, 'state', config=conf)
    kek = d.state + '.kek'
    ok(os.path.isfile(kek) and (os.stat(kek).st_mode & 0o777) == 0o600 and os.path.getsize(kek) == 32,
       'scepd created the KEK file: 32 bytes, mode 0600, outside the state directory')
    ok(re.search(r'key-encryption key from the file \S+\.kek \(created\)', d.log()),
       'the log names the KEK source (and never the key)', d.log()[-800:])
    keys = {}
    url = ca.serve('--challenge', e2e.CHALLENGE)
    d.settings(url)

    # enrollment (RSA) and registration
    _, _, doc, rid = d.request('Seal1', 'seal1.example')
    eq(d.wait_request(rid).get('state'), 'acquired', 'enrollment: Seal1 acquired')
    sealed = db_rows(state, 'SELECT key_pem FROM keys WHERE name = ?', ('Seal1',))
    ok(sealed and sealed[0][0].startswith(SEALED_PREFIX), 'the keys table holds Seal1 sealed', sealed)
    keys['Seal1 (enrolled)'] = pair_key(state, kek, 'Seal1')
    ok(keys['Seal1 (enrolled)'] and 'PRIVATE KEY' in keys['Seal1 (enrolled)'],
       "Seal1's sealed key opens with the KEK and its place as associated data")
    ok(db_rows(state, 'SELECT key_pem, signer_key_pem FROM requests WHERE id = ?', (rid,)) == [(None, None)],
       'the acquired request keeps no copy of the key')
    st, _, res = d.api('POST', '/api/v1/restart')
    eq((st, res.get('registered') if isinstance(res, dict) else res), (200, ['Seal1']), 'registration: Seal1')
    # the export is a plain 0600 file by design, outside the state directory
    st, _, _ = d.api('PUT', '/api/v1/bindings/f1', {'key_name': 'Seal1'})
    f1 = os.path.join(exports, 'f1.key')
    ok(st == 200 and e2e.wait_for(lambda: os.path.exists(f1), 10), 'binding f1 exports Seal1')
    with open(f1) as fp:
        exported = fp.read()
    eq(exported, keys['Seal1 (enrolled)'], 'the exported key is the key the test opened from the store')
    eq(os.stat(f1).st_mode & 0o777, 0o600, 'the exported key is mode 0600')
    ok(clear_copies(exports, {'Seal1': exported}),
       'the search finds a clear key where there is one (the exported file, outside the state directory)')
    st, _, _ = d.api('PUT', '/api/v1/bindings/tls', {'key_name': 'Seal1'})
    eq(st, 200, 'tls bound to Seal1')
    eq(e2e.served_sha256(d.tls_port), d.key('Seal1')['sha256'], "HTTPS presents Seal1's certificate")

    # a failed request: pending at the CA, then rejected there (EC)
    d.settings(ca.serve('--challenge', e2e.CHALLENGE, '--pending'))
    _, _, _, rid = d.request('Seal2', 'seal2.example', key_algorithm='ecdsa', key_length=256)
    r = d.wait_request(rid, states=('pending', 'failed'))
    eq(r.get('state'), 'pending', 'a request the CA defers is pending')
    keys['Seal2 (failed request)'] = request_key(state, kek, rid)
    ok(keys['Seal2 (failed request)'] and 'PRIVATE KEY' in keys['Seal2 (failed request)'],
       "the pending request's key is sealed to its row and opens with the KEK")
    a = ca.run('reject', '--dir', ca.dir, ca.pending_id(r.get('transaction_id') or '-') or '0')
    eq(a.returncode, 0, 'scepca rejects it')
    r = d.wait_request(rid, states=('failed',), timeout=40)
    eq(r.get('state'), 'failed', 'the next poll fails the request')
    eq(db_rows(state, 'SELECT key_pem, signer_key_pem FROM requests WHERE id = ?', (rid,)), [(None, None)],
       'the failed request keeps no key')

    # a cancelled request (pending, RSA)
    _, _, _, rid = d.request('Seal3', 'seal3.example')
    eq(d.wait_request(rid, states=('pending', 'failed')).get('state'), 'pending', 'another request is pending')
    keys['Seal3 (cancelled request)'] = request_key(state, kek, rid)
    ok(keys['Seal3 (cancelled request)'], "its key opens with the KEK")
    st, _, _ = d.api('DELETE', f'/api/v1/scep/requests/{rid}')
    eq(st, 200, 'cancelling it: 200')
    eq(db_rows(state, 'SELECT state, key_pem, signer_key_pem FROM requests WHERE id = ?', (rid,)),
       [('cancelled', None, None)], 'the cancelled request keeps no key')

    # a deletion (EC, acquired then deleted)
    d.settings(ca.serve('--challenge', e2e.CHALLENGE))
    _, _, _, rid = d.request('Seal4', 'seal4.example', key_algorithm='ecdsa', key_length=256)
    eq(d.wait_request(rid).get('state'), 'acquired', 'Seal4 acquired')
    keys['Seal4 (deleted)'] = pair_key(state, kek, 'Seal4')
    ok(keys['Seal4 (deleted)'], "Seal4's key opens with the KEK")
    st, _, _ = d.api('DELETE', '/api/v1/keys/Seal4')
    eq(st, 204, 'deleting Seal4: 204')
    ok(not db_rows(state, 'SELECT 1 FROM keys WHERE name = ?', ('Seal4',)), 'Seal4 is gone from the keys table')
    # the stored DefaultTLS key is sealed as well
    keys['DefaultTLS'] = pair_key(state, kek, 'DefaultTLS')
    ok(keys['DefaultTLS'], 'the self-signed DefaultTLS key is sealed and opens with the KEK')
    return d, keys


def copies(work, d, keys):
    """The state directory without its KEK, with a wrong one, with the
    right one (file and systemd credential)."""
    state = d.state
    kek = d.state + '.kek'
    copy = os.path.join(work, 'copy')
    shutil.copytree(state, copy)
    os.chmod(copy, 0o700)
    before = dir_digest(copy)

    rc, out = run_refused([e2e.SCEPD, '--state', copy, '--listen', '127.0.0.1:0'],
                          env={'SCEPD_ADMIN_PASSWORD': e2e.ADMIN_PW, 'CREDENTIALS_DIRECTORY': ''})
    ok(rc == 1 and 'kek_missing' in out and 'TPM' in out and 'scepd-kek' in out and '--kek-file' in out,
       'a copy of the state directory alone does not start: kek_missing names the TPM, the systemd '
       'credential and --kek-file', out[-1500:])
    wrong = os.path.join(work, 'wrong.kek')
    with open(wrong, 'wb') as fp:
        fp.write(os.urandom(32))
    os.chmod(wrong, 0o600)
    rc, out = run_refused([e2e.SCEPD, '--state', copy, '--listen', '127.0.0.1:0', '--kek-file', wrong],
                          env={'SCEPD_ADMIN_PASSWORD': e2e.ADMIN_PW})
    ok(rc == 1 and 'sealed_invalid' in out, 'a wrong KEK is refused (sealed_invalid)', out[-1500:])
    eq(dir_digest(copy), before, 'the refusals changed nothing in the copy')
    inside = os.path.join(copy, 'kek')
    shutil.copyfile(kek, inside)
    os.chmod(inside, 0o600)
    rc, out = run_refused([e2e.SCEPD, '--state', copy, '--listen', '127.0.0.1:0', '--kek-file', inside],
                          env={'SCEPD_ADMIN_PASSWORD': e2e.ADMIN_PW})
    ok(rc == 1 and 'kek_invalid' in out and 'inside the state directory' in out,
       'a KEK file inside the state directory is refused', out[-1500:])
    os.unlink(inside)
    loose = os.path.join(work, 'loose.kek')
    shutil.copyfile(kek, loose)
    os.chmod(loose, 0o640)
    rc, out = run_refused([e2e.SCEPD, '--state', copy, '--listen', '127.0.0.1:0', '--kek-file', loose],
                          env={'SCEPD_ADMIN_PASSWORD': e2e.ADMIN_PW})
    ok(rc == 1 and 'kek_invalid' in out and 'mode 0640' in out, 'a group-readable KEK file is refused', out[-1500:])
    eq(dir_digest(copy), before, 'still nothing changed in the copy')

    # the right KEK, as a systemd credential: it starts and serves the bound key
    creds = os.path.join(work, 'credentials')
    os.makedirs(creds, mode=0o700)
    shutil.copyfile(kek, os.path.join(creds, 'scepd-kek'))
    os.chmod(os.path.join(creds, 'scepd-kek'), 0o400)
    proc, ports, text = start_plain(work, 'copy', copy, [], env={'CREDENTIALS_DIRECTORY': creds})
    ok(ports is not None, 'with the KEK (systemd credential) the copy starts', text[-1500:])
    ok('key-encryption key from the systemd credential' in text, 'the log names the credential as the source',
       text[-800:])
    if ports:
        cert = db_rows(copy, "SELECT cert_pem FROM keys WHERE name = 'Seal1'")[0][0]
        eq(e2e.served_sha256(ports[1]), key_sha256(cert), "the copy serves HTTPS with the bound key Seal1")
    e2e.stop(proc)
    eq(proc.returncode, 0, 'the copy stops cleanly on SIGTERM')
    found = clear_copies(copy, keys)
    ok(not found, 'no clear key in the copy after it ran', found[:10])


def migration(work):
    """An old store with clear keys is sealed at its first start."""
    src = os.path.join(e2e.SRC, 'tests/unit/data/store-schema1.db')
    old = {}
    conn = sqlite3.connect(f'file:{src}?mode=ro&immutable=1', uri=True)
    try:
        for name, pem in conn.execute('SELECT name, key_pem FROM keys'):
            old[f'{name} (schema 1, clear)'] = pem
        for rid, pem in conn.execute('SELECT id, key_pem FROM requests WHERE key_pem IS NOT NULL'):
            old[f'request {rid} (schema 1, clear)'] = pem
    finally:
        conn.close()
    state = os.path.join(work, 'old-state')
    os.makedirs(state, mode=0o700)
    shutil.copyfile(src, os.path.join(state, 'scepd.db'))
    os.chmod(os.path.join(state, 'scepd.db'), 0o600)
    ok(len(clear_copies(state, old)) > 0, 'the old store holds its keys in the clear (the test can see them)')
    # The data set comes without the seal.key that sealed its auto request's
    # challenge; the test gives it one, as an old scepd kept it beside the
    # store, and seals the challenge with it (AES-256-GCM, nonce || ct || tag).
    seal_key = os.urandom(32)
    with open(os.path.join(state, 'seal.key'), 'wb') as fp:
        fp.write(seal_key)
    os.chmod(os.path.join(state, 'seal.key'), 0o600)
    conn = sqlite3.connect(os.path.join(state, 'scepd.db'))
    try:
        doc = json.loads(conn.execute("SELECT json FROM docs WHERE name = 'auto_request'").fetchone()[0])
        nonce = os.urandom(12)
        doc['challenge_sealed'] = base64.b64encode(nonce + AESGCM(seal_key).encrypt(nonce, b'legacy-pw', None)).decode()
        conn.execute("UPDATE docs SET json = ? WHERE name = 'auto_request'", (json.dumps(doc),))
        conn.commit()
    finally:
        conn.close()
    kek = os.path.join(work, 'old.kek')
    proc, ports, text = start_plain(work, 'old', state, ['--kek-file', kek])
    ok(ports is not None, 'scepd starts on the schema-1 store with a new KEK', text[-1500:])
    ok(not os.path.exists(os.path.join(state, 'seal.key')) and 'seal.key is now sealed in the store' in text,
       'the old seal.key is taken into the store, sealed, and removed from the state directory', text[-800:])
    sealed = db_rows(state, "SELECT json FROM docs WHERE name = 'secrets_key'")
    opened = unseal(kek, 'scepd-secret-v1|docs|secrets_key', json.loads(sealed[0][0])['sealed'],
                    raw_bytes=True) if sealed else None
    ok(opened == seal_key,
       'the store holds the old challenge key sealed under the KEK')
    rows = db_rows(state, 'SELECT name, key_pem, coalesce(request_id, 0) FROM keys')
    ok(len(rows) == 3 and all(unseal(kek, f'scepd-key-v1|keys|{n}|{r}', p) for n, p, r in rows),
       'every pair of the old store is sealed and opens with the KEK', [(n, (p or '')[:30]) for n, p, _ in rows])
    eq(db_rows(state, "SELECT id, key_pem IS NULL FROM requests ORDER BY id"), [(1, 1), (2, 0)],
       'the registered request lost its key copy; the acquired one keeps it sealed')
    eq(db_rows(state, "SELECT value FROM meta WHERE key = 'schema_version'"), [(4,)],
       'the store is at the current schema (4: sealed keys at 3, the key storage column at 4)')
    found = clear_copies(state, old)
    ok(not found, 'while scepd runs, no file in the state directory holds an old key in the clear', found[:10])
    if ports:
        cert = db_rows(state, "SELECT cert_pem FROM keys WHERE name = 'DefaultTLS'")[0][0]
        eq(e2e.served_sha256(ports[1]), key_sha256(cert), 'HTTPS serves the migrated DefaultTLS pair')
    e2e.stop(proc)
    found = clear_copies(state, old)
    ok(not found, 'after it stopped, none either', found[:10])


def main():
    for path in (e2e.SCEPD, e2e.SCEPCA):
        if not os.access(path, os.X_OK):
            print(f'1..0 # SKIP {path} not built')
            return 0
    work = tempfile.mkdtemp(prefix='scepd-sealed.')
    t0 = time.monotonic()
    try:
        ca = e2e.CA(work, 'ca')
        d, keys = lifecycle(work, ca)
        ok(len(keys) == 5 and all(keys.values()), 'the test holds the five keys it looks for', sorted(keys))
        keys = {k: v for k, v in keys.items() if v}
        found = clear_copies(d.state, keys)
        ok(not found, 'while scepd runs: no file in the state directory holds any of them in the clear '
           '(PKCS#8 DER, PEM lines, raw private numbers)', found[:10])
        d.stop()
        ca.stop()
        found = clear_copies(d.state, keys)
        ok(not found, 'after scepd stopped: none either', found[:10])
        ok(os.listdir(d.state) and not [n for n in os.listdir(d.state) if n == 'seal.key'],
           'the state directory holds no sealing key file', sorted(os.listdir(d.state)))
        copies(work, d, keys)
        migration(work)
    except Exception:
        import traceback
        ok(False, 'the test ran to its end', traceback.format_exc())
    finally:
        e2e.finish(work)
    diag(f'took {time.monotonic() - t0:.1f} s')
    print(f'1..{e2e._n}')
    return 1 if e2e._failed else 0


if __name__ == '__main__':
    sys.exit(main())
