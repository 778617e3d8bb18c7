#!/usr/bin/env python3
"""scepd with keys inside a TPM 2.0 (swtpm, started here on a UNIX socket):
an issuance request with key_storage "tpm2" for RSA 2048 and ECDSA P-256
against scepca, the key list and details showing it, the store holding only
the TPM's blob, verification, the HTTPS listener serving the TPM key after
binding, and what a stopped TPM does: a clear error, the store intact,
scepd still running. Prints TAP; the helpers are scepd_e2e.py's."""
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scepd_e2e as e2e  # noqa: E402
import scepd_sealed as sealed  # noqa: E402
from scepd_e2e import CA, Scepd, ok, eq, diag, wait_for, code_of, CHALLENGE  # noqa: E402


def start_swtpm(work):
    """swtpm with its state and sockets under work; the swtpm TCTI finds the
    control socket at PATH.ctrl."""
    d = os.path.join(work, 'tpm')
    os.makedirs(os.path.join(d, 'state'))
    sock = os.path.join(d, 'sock')
    proc = subprocess.Popen(['swtpm', 'socket', '--tpm2', '--tpmstate', f'dir={d}/state',
                             '--server', f'type=unixio,path={sock}', '--ctrl', f'type=unixio,path={sock}.ctrl',
                             '--flags', 'not-need-init,startup-clear', '--log', f'file={work}/swtpm.log'])
    e2e.PROCS.append(proc)
    up = wait_for(lambda: proc.poll() is not None or (os.path.exists(sock) and os.path.exists(sock + '.ctrl')), 10,
                  0.05)
    if not up or proc.poll() is not None:
        raise RuntimeError('swtpm did not start (tools/deps.sh installs swtpm)')
    return proc, f'swtpm:path={sock}'


def tls_handshake(port, version):
    """(sha256 of the served certificate, negotiated version) or (None, error)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                import hashlib
                der = s.getpeercert(binary_form=True)
                return ':'.join(f'{b:02X}' for b in hashlib.sha256(der).digest()), s.version()
    except (ssl.SSLError, OSError) as e:
        return None, str(e)


def stored_keys(state):
    db = sqlite3.connect(f'file:{os.path.join(state, "scepd.db")}?mode=ro', uri=True)
    try:
        return {n: (s, pem) for n, s, pem in db.execute('SELECT name, storage, key_pem FROM keys')}
    finally:
        db.close()


def run(work):
    errors = e2e.catalogue()
    tpm, tcti = start_swtpm(work)
    ca = CA(work, 'ca')
    url = ca.serve('--challenge', CHALLENGE)
    state = os.path.join(work, 'state')
    conf = os.path.join(work, 'scepd.conf')
    kek_tpm = os.path.join(work, 'kek-tpm')  # the KEK sealed to the TPM: the first source
    os.makedirs(kek_tpm, mode=0o700)
    with open(conf, 'w') as fp:  # tpm_tcti through the configuration
        fp.write(f'[scepd]\nstate_dir = {state}\nlisten = 127.0.0.1:0\nlisten_tls = 127.0.0.1:0\n'
                 f'tpm_tcti = {tcti}\nkek_tpm_dir = {kek_tpm}\n')
    env_tcti = os.environ.pop('TPM2OPENSSL_TCTI', None)
    d = Scepd(work, 'scepd', config=conf)
    if env_tcti is not None:
        os.environ['TPM2OPENSSL_TCTI'] = env_tcti
    d.settings(url)
    ok('key-encryption key from the TPM' in d.log() and
       os.path.exists(os.path.join(kek_tpm, 'kek-tpm.sealed')) and
       os.path.getsize(os.path.join(kek_tpm, 'kek-tpm.sealed')) == 256,
       'the KEK is sealed to the TPM (kek_tpm_dir): the vault took it from there', d.log()[-800:])

    cases = [('TpmRsa', 'rsa', 2048, 'RSA 2048'), ('TpmEc', 'ecdsa', 256, 'EC P-256')]
    for name, alg, bits, desc in cases:
        st, _, doc, rid = d.request(name, f'{name.lower()}.example', key_algorithm=alg, key_length=bits,
                                    key_storage='tpm2')
        eq(st, 202, f'{name}: a request with key_storage tpm2 is accepted')
        r = d.wait_request(rid, timeout=60)
        if not eq(r.get('state'), 'acquired', f'{name}: acquired'):
            diag(r)
        k = d.key(name) or {}
        eq(k.get('key_storage'), 'tpm2', f'{name}: the key details say tpm2')
        eq(k.get('key_algorithm'), desc, f'{name}: certificate for {desc}')
    st, _, doc, rid = d.request('Soft1', 'soft.example')
    r = d.wait_request(rid, timeout=60)
    eq(r.get('state'), 'acquired', 'Soft1 (no key_storage): acquired')
    listed = d.keys()
    eq({n: listed.get(n, {}).get('key_storage') for n in ('TpmRsa', 'TpmEc', 'Soft1', 'DefaultTLS')},
       {'TpmRsa': 'tpm2', 'TpmEc': 'tpm2', 'Soft1': 'software', 'DefaultTLS': 'software'},
       'the key list shows each key\'s storage')
    st, _, doc = d.api('POST', '/api/v1/scep/requests', {'key_name': 'Big', 'common_name': 'x',
                                                         'key_length': 4096, 'key_storage': 'tpm2'})
    ok(st == 400 and code_of(doc) == 'invalid_field' and 'key_storage' in doc['error']['detail'],
       'rsa 4096 in the TPM: 400 invalid_field naming key_storage', doc)

    rows = stored_keys(state)
    for name, _, _, _ in cases:
        s, sealed_text = rows.get(name, (None, ''))
        ok(s == 'tpm2' and sealed_text.startswith(sealed.SEALED_PREFIX) and 'PRIVATE KEY' not in sealed_text,
           f'{name}: the store holds its key sealed (storage tpm2: the TSS2 blob of a key in the TPM)',
           {'storage': s, 'stored': sealed_text[:40]})
    ok(not os.path.exists(d.state + '.kek'), 'no KEK file was made: the TPM gave the KEK')
    eq(rows.get('Soft1', (None, ''))[0], 'software', 'Soft1: storage software in the store')

    st, _, res = d.api('POST', '/api/v1/restart')
    eq(st, 200, 'restart registers the pairs')
    for name, _, _, _ in cases:
        st, _, v = d.api('POST', f'/api/v1/keys/{name}/verify')
        checks = {c['name']: c for c in (v or {}).get('checks', [])}
        ok(st == 200 and v.get('valid') is True and checks.get('key_match', {}).get('ok') is True,
           f'{name}: verifies, the TPM key matches its certificate', v)

    for name, alg, _, _ in cases:
        st, _, b = d.api('PUT', '/api/v1/bindings/tls', {'key_name': name})
        ok(st == 200, f'tls bound to {name}', b)
        want = d.key(name)['sha256']
        # the network process signs the handshake through the vault, which
        # holds the TPM (docs/internals/privsep.md)
        got12 = tls_handshake(d.tls_port, ssl.TLSVersion.TLSv1_2)
        eq(got12, (want, 'TLSv1.2'), f'HTTPS (TLS 1.2) presents {name} and signs with the TPM key')
        got13 = tls_handshake(d.tls_port, ssl.TLSVersion.TLSv1_3)
        if alg == 'rsa':  # documented: RSA-PSS is not done through the vault, so no TLS 1.3
            ok(got13[0] is None, f'HTTPS (TLS 1.3) with {name}: refused, as documented', got13)
        else:
            eq(got13, (want, 'TLSv1.3'), f'HTTPS (TLS 1.3) presents {name} and signs with the TPM key')

    # the TPM stops: a request fails with a catalogue error; scepd, the store
    # and the other keys stay
    tpm.send_signal(signal.SIGTERM)
    ok(tpm.wait(timeout=10) is not None, 'swtpm stopped')
    st, _, doc, rid = d.request('TpmGone', 'gone.example', key_algorithm='ecdsa', key_length=256,
                                key_storage='tpm2')
    r = d.wait_request(rid, states=('failed', 'acquired'), timeout=60)
    err = (r or {}).get('error') or {}
    ok(r.get('state') == 'failed' and err.get('code') in ('tpm_operation', 'tpm_unavailable')
       and err.get('message') == errors[err.get('code')][0], 'with the TPM stopped the request fails: '
       + str(err.get('code')), r)
    ok(d.proc.poll() is None and d.api('GET', '/api/v1/status')[0] == 200, 'scepd keeps running and answering')
    after = stored_keys(state)
    eq({n: after[n] for n in ('TpmRsa', 'TpmEc', 'Soft1')}, {n: rows[n] for n in ('TpmRsa', 'TpmEc', 'Soft1')},
       'the stored keys are unchanged')
    ok('TpmGone' not in after, 'no key for the failed request')
    d.stop()
    eq(d.proc.returncode, 0, 'scepd exits 0 on SIGTERM')
    try:  # the KEK is sealed to the TPM, which is gone
        d.start(config=conf)
        started = True
    except RuntimeError:
        started = False
    ok(not started and 'tpm_unavailable' in d.log()[-3000:],
       'without its TPM scepd does not start (the KEK is sealed to it): tpm_unavailable', d.log()[-800:])
    ca.stop()


def main():
    for path in (e2e.SCEPD, e2e.SCEPCA):
        if not os.access(path, os.X_OK):
            print(f'1..0 # SKIP {path} not built')
            return 0
    work = tempfile.mkdtemp(prefix='scepd-tpm.')
    try:
        run(work)
    except Exception:
        import traceback
        ok(False, 'the test ran to its end', traceback.format_exc())
    finally:
        e2e.finish(work)
    print(f'1..{e2e._n}')
    return 1 if e2e._failed else 0


if __name__ == '__main__':
    sys.exit(main())
