/* Keys held in a TPM 2.0 (tpm2-openssl) against swtpm, started here: every
 * operation a software key does — CSR, PKCSReq and GetCRL signatures,
 * opening a reply, verification, the HTTPS listener — with RSA 2048 and
 * ECDSA P-256; the KEK sealed to the TPM; and what a missing or stopped
 * TPM does. */
#include "helpers.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/client.h"
#include "crypto/crypto.h"
#include "crypto/kek_tpm.h"
#include "scep/scep.h"
#include "swtpm.h"
#include "util/file.h"
#include "util/ossl.h"

/* swtpm holds three objects at a time and no resource manager swaps them
 * out: a key generation needs two (the parent and the new key), every
 * loaded key one. So the keys are kept as TSS2 PEM and loaded where used. */
typedef struct fixture {
    h_swtpm tpm;
    char *rsa_pem, *ec_pem; /* TSS2 key files' contents of keys in the TPM */
    size_t rsa_pem_len, ec_pem_len;
    EVP_PKEY *ca_key;
    X509 *ca;
    char *dir;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    h_swtpm_start(&f->tpm);
    f->ca_key = h_key_rsa(2048);
    f->ca = h_ca_new(f->ca_key, "CN=TPM Test CA,O=Example");
    f->dir = h_tempdir();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    crypto_secret_free(f->rsa_pem, f->rsa_pem_len);
    crypto_secret_free(f->ec_pem, f->ec_pem_len);
    EVP_PKEY_free(f->ca_key);
    X509_free(f->ca);
    crypto_tpm_unload();
    h_swtpm_free(&f->tpm);
    h_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static EVP_PKEY *tpm_key(const char *pem)
{
    assert_non_null(pem);
    EVP_PKEY *key = NULL;
    util_error err = {0};
    if (crypto_key_load((const uint8_t *)pem, strlen(pem), &key, &err) != 0)
        fail_msg("loading a TPM key: %s %s", util_err_code(err.code), err.detail);
    assert_string_equal(crypto_key_storage_name(crypto_key_storage_of(key)), "tpm2");
    return key;
}

/* A certificate for a TPM key as a peer sees it: parsed from DER, so its
 * public key belongs to the default provider (h_cert_issue keeps the
 * key object it was given, and CMS would encrypt through the TPM). */
static X509 *issued_for(fixture *f, EVP_PKEY *key, const char *subject, uint32_t ku)
{
    X509 *made = h_cert_issue(f->ca, f->ca_key, key, subject, ku);
    size_t len = 0;
    uint8_t *der = h_cert_der(made, &len);
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    assert_non_null(cert);
    OPENSSL_free(der);
    X509_free(made);
    return cert;
}

static uint8_t *spki(EVP_PKEY *key, int *len)
{
    unsigned char *der = NULL;
    *len = i2d_PUBKEY(key, &der);
    assert_true(*len > 0);
    return der;
}

static void assert_same_public_key(EVP_PKEY *a, EVP_PKEY *b)
{
    int la, lb;
    uint8_t *da = spki(a, &la), *db = spki(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, (size_t)la);
    OPENSSL_free(da);
    OPENSSL_free(db);
}

/* A handshake in memory with a client that trusts ca; true when it
 * completed with the version asked for and the chain verified. */
static bool handshake(SSL_CTX *server, X509 *ca, int version)
{
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    assert_non_null(client);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client), ca);
    SSL_CTX_set_verify(client, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(client, version);
    SSL_CTX_set_max_proto_version(client, version);
    SSL *s = SSL_new(server), *c = SSL_new(client);
    BIO *bs = NULL, *bc = NULL;
    assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    int done = 0;
    for (int i = 0; i < 50 && done != 3; i++) {
        int r = 0;
        if (!(done & 1) && SSL_do_handshake(c) == 1)
            done |= 1;
        if (!(done & 2) && (r = SSL_do_handshake(s)) == 1)
            done |= 2;
        if (!(done & 2) && SSL_get_error(s, r) == SSL_ERROR_SSL)
            break;
    }
    bool ok = done == 3 && SSL_get_verify_result(c) == X509_V_OK && SSL_version(c) == version;
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(client);
    ERR_clear_error();
    return ok;
}

/* A software key's HTTPS context, TLS 1.2 and 1.3: it must not change
 * once the tpm2 provider is loaded (its key management and signatures
 * stay out of software keys' handshakes). */
static void soft_tls(fixture *f)
{
    EVP_PKEY *soft = h_key_ec("P-256");
    X509 *cert = issued_for(f, soft, "CN=soft.example.com", KU_DIGITAL_SIGNATURE);
    char *key_pem = NULL, *cert_pem = NULL;
    size_t key_len = 0, cert_len = 0;
    util_error err;
    assert_int_equal(crypto_key_to_pem(soft, &key_pem, &key_len, &err), 0);
    assert_int_equal(crypto_cert_to_pem(cert, &cert_pem, &cert_len, &err), 0);
    SSL_CTX *ctx = NULL;
    assert_int_equal(crypto_tls_server_ctx(key_pem, cert_pem, NULL, &ctx, &err), 0);
    assert_true(handshake(ctx, f->ca, TLS1_2_VERSION));
    assert_true(handshake(ctx, f->ca, TLS1_3_VERSION));
    SSL_CTX_free(ctx);
    crypto_secret_free(key_pem, key_len);
    free(cert_pem);
    X509_free(cert);
    EVP_PKEY_free(soft);
}

/* A TCTI that leads nowhere: a catalogue error, then the right one works
 * (the provider is loaded on demand, not at start). */
static void tpm_unreachable_then_reached(void **state)
{
    fixture *f = *state;
    soft_tls(f);
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "swtpm:path=%s/no-such-socket", f->dir);
    assert_int_equal(setenv("TPM2OPENSSL_TCTI", nowhere, 1), 0);
    util_error err = {0};
    assert_int_equal(crypto_tpm_load(&err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_unavailable");
    assert_non_null(strstr(err.detail, "no-such-socket"));
    crypto_key_spec spec = {CRYPTO_KEY_RSA, 2048, CRYPTO_KEY_TPM2};
    EVP_PKEY *key = NULL;
    assert_int_equal(crypto_key_generate(&spec, &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_unavailable");
    assert_null(key);

    assert_int_equal(setenv("TPM2OPENSSL_TCTI", f->tpm.tcti, 1), 0);
    assert_int_equal(crypto_tpm_load(&err), 0);
    assert_int_equal(crypto_tpm_load(&err), 0); /* once */
    soft_tls(f);
    /* the provider's digests and ciphers stay out, even where it is preferred */
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC", "?provider=tpm2");
    assert_string_equal(OSSL_PROVIDER_get0_name(EVP_MD_get0_provider(md)), "default");
    assert_string_equal(OSSL_PROVIDER_get0_name(EVP_CIPHER_get0_provider(aes)), "default");
    EVP_MD_free(md);
    EVP_CIPHER_free(aes);
    /* and software keys stay software */
    crypto_key_spec soft = {CRYPTO_KEY_EC, 256, CRYPTO_KEY_SOFTWARE};
    assert_int_equal(crypto_key_generate(&soft, &key, &err), 0);
    assert_string_equal(crypto_key_storage_name(crypto_key_storage_of(key)), "software");
    EVP_PKEY_free(key);
}

static void tpm_key_generate_store_load(void **state)
{
    fixture *f = *state;
    static const struct {
        crypto_key_spec spec;
        const char *describe;
    } cases[] = {{{CRYPTO_KEY_RSA, 2048, CRYPTO_KEY_TPM2}, "RSA 2048"},
                 {{CRYPTO_KEY_EC, 256, CRYPTO_KEY_TPM2}, "EC P-256"}};
    for (size_t i = 0; i < 2; i++) {
        util_error err = {0};
        EVP_PKEY *key = NULL;
        if (crypto_key_generate(&cases[i].spec, &key, &err) != 0)
            fail_msg("%s: %s %s", cases[i].describe, util_err_code(err.code), err.detail);
        assert_string_equal(crypto_key_storage_name(crypto_key_storage_of(key)), "tpm2");
        char desc[64];
        crypto_key_describe(key, desc, sizeof desc);
        assert_string_equal(desc, cases[i].describe);
        assert_int_equal(crypto_key_is_rsa(key), cases[i].spec.alg == CRYPTO_KEY_RSA);

        /* what is stored: the TSS2 blob, never a PKCS#8 private key */
        char *pem = NULL;
        size_t len = 0;
        assert_int_equal(crypto_key_to_pem(key, &pem, &len, &err), 0);
        assert_non_null(strstr(pem, "-----BEGIN TSS2 PRIVATE KEY-----"));
        assert_null(strstr(pem, "BEGIN PRIVATE KEY"));
        assert_null(strstr(pem, "BEGIN RSA PRIVATE KEY"));
        assert_null(strstr(pem, "BEGIN EC PRIVATE KEY"));

        EVP_PKEY *back = tpm_key(pem);
        assert_same_public_key(key, back);
        EVP_PKEY_free(back);

        char path[600];
        snprintf(path, sizeof path, "%s/key%zu.pem", f->dir, i);
        assert_int_equal(crypto_key_write_file(path, key, &err), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(crypto_key_load_file(path, &back, &err), 0);
        assert_same_public_key(key, back);
        EVP_PKEY_free(back);
        EVP_PKEY_free(key);
        if (i == 0) {
            f->rsa_pem = pem;
            f->rsa_pem_len = len;
        } else {
            f->ec_pem = pem;
            f->ec_pem_len = len;
        }
    }
    /* the storage survives a spec passed as text (to the vault) */
    static const char *const texts[] = {"rsa:2048@tpm2", "ec:P-256@tpm2", "rsa:2048", "ec:P-256"};
    for (size_t i = 0; i < 4; i++) {
        crypto_key_spec parsed;
        char back_text[64];
        util_error perr = {0};
        assert_int_equal(crypto_key_spec_parse(texts[i], &parsed, &perr), 0);
        assert_string_equal(crypto_key_storage_name(parsed.storage), i < 2 ? "tpm2" : "software");
        crypto_key_spec_format(&parsed, back_text, sizeof back_text);
        assert_string_equal(back_text, texts[i]);
    }
    crypto_key_spec parsed;
    util_error perr = {0};
    assert_int_equal(crypto_key_spec_parse("@tpm2", &parsed, &perr), -1);
    assert_int_equal(crypto_key_spec_parse("rsa:2048@hsm", &parsed, &perr), -1);
    /* only what was tried here */
    crypto_key_spec big = {CRYPTO_KEY_RSA, 3072, CRYPTO_KEY_TPM2};
    EVP_PKEY *key = NULL;
    util_error err = {0};
    assert_int_equal(crypto_key_generate(&big, &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "key_generation");
    /* a TSS2 file the TPM cannot load is a TPM error, not a parse error */
    char *broken = strdup(f->rsa_pem);
    assert_non_null(broken);
    char *body = strchr(broken, '\n') + 1;
    body[10] = body[10] == 'A' ? 'B' : 'A';
    assert_int_equal(crypto_key_load((const uint8_t *)broken, strlen(broken), &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_operation");
    assert_null(key);
    free(broken);
}

static X509_NAME *name_of(const char *text)
{
    X509_NAME *n = NULL;
    util_error err;
    assert_int_equal(crypto_name_parse(text, &n, &err), 0);
    return n;
}

/* CSR, the self-signed signer, a PKCSReq and a GetCRL signed in the TPM;
 * the RA opens each and finds the content. */
static void tpm_key_signs_requests(void **state)
{
    fixture *f = *state;
    const char *pems[] = {f->rsa_pem, f->ec_pem};
    EVP_PKEY *ra_key = h_key_rsa(2048);
    X509 *ra = h_cert_issue(f->ca, f->ca_key, ra_key, "CN=RA", KU_KEY_ENCIPHERMENT);
    STACK_OF(X509) *recipients = h_stack(ra, NULL);
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *key = tpm_key(pems[i]);
        util_error err = {0};
        crypto_csr_params p = {.common_name = "tpm.example.com", .challenge_password = "secret"};
        p.sans[p.san_count++] = "dns:tpm.example.com";
        X509_REQ *req = NULL;
        if (crypto_csr_build(&p, key, &req, &err) != 0)
            fail_msg("csr: %s %s", util_err_code(err.code), err.detail);
        EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
        assert_int_equal(X509_REQ_verify(req, pub), 1);
        assert_same_public_key(pub, key);

        X509_NAME *subject = name_of("CN=tpm.example.com");
        X509 *signer = NULL;
        assert_int_equal(crypto_selfsigned_build(key, subject, EVP_sha256(), time(NULL), 30, &signer, &err),
                         0);
        assert_true(crypto_cert_is_self_signed(signer));
        assert_true(crypto_cert_matches_key(signer, key));

        unsigned char *csr = NULL;
        int csr_len = i2d_X509_REQ(req, &csr);
        assert_true(csr_len > 0);
        char tid[65];
        assert_int_equal(scep_transaction_id(key, tid, &err), 0);
        uint8_t nonce[16];
        assert_int_equal(RAND_bytes(nonce, sizeof nonce), 1);
        static const int types[] = {SCEP_MSG_PKCSREQ, SCEP_MSG_GETCRL};
        for (size_t t = 0; t < 2; t++) {
            scep_pki_message_params mp = {
                .type = types[t],
                .transaction_id = tid,
                .sender_nonce = nonce,
                .sender_nonce_len = sizeof nonce,
                .signer_cert = signer,
                .signer_key = key,
                .digest = EVP_sha256(),
                .include_signer_cert = true,
                .signing_time = time(NULL),
                .content = csr,
                .content_len = (size_t)csr_len,
                .recipients = recipients,
                .cipher = EVP_aes_128_cbc(),
            };
            uint8_t *der = NULL;
            size_t len = 0;
            if (scep_pki_message_encode(&mp, &der, &len, &err) != 0)
                fail_msg("%s: %s %s", scep_message_type_name(types[t]), util_err_code(err.code), err.detail);
            scep_pki_message *m = NULL;
            assert_int_equal(scep_pki_message_parse(der, len, NULL, &m, &err), 0);
            assert_true(m->signature_checked);
            assert_true(m->signature_valid);
            assert_int_equal(m->type, types[t]);
            assert_int_equal(X509_cmp(m->signer, signer), 0);
            assert_string_equal(m->transaction_id, tid);
            uint8_t *plain = NULL;
            size_t plain_len = 0;
            assert_int_equal(
                scep_envelope_open(m->content, m->content_len, ra, ra_key, &plain, &plain_len, NULL, 0, &err),
                0);
            assert_int_equal(plain_len, (size_t)csr_len);
            assert_memory_equal(plain, csr, plain_len);
            OPENSSL_free(plain);
            scep_pki_message_free(m);
            OPENSSL_free(der);
        }
        OPENSSL_free(csr);
        X509_NAME_free(subject);
        X509_free(signer);
        X509_REQ_free(req);
        EVP_PKEY_free(key);
    }
    h_stack_free(recipients);
    X509_free(ra);
    EVP_PKEY_free(ra_key);
}

/* A CertRep's envelope as a CA builds it, opened with the key in the TPM. */
static int reply_open(fixture *f, EVP_PKEY *key, X509 *cert, const EVP_CIPHER *cipher, scep_key_transport kt,
                      util_error *err)
{
    static const uint8_t content[] = "certs-only SignedData stand-in";
    STACK_OF(X509) *recipients = h_stack(cert, NULL);
    scep_pki_message_params mp = {
        .type = SCEP_MSG_CERTREP,
        .transaction_id = "ABC",
        .pki_status = SCEP_STATUS_SUCCESS,
        .fail_info = -1,
        .signer_cert = f->ca,
        .signer_key = f->ca_key,
        .include_signer_cert = true,
        .content = content,
        .content_len = sizeof content,
        .recipients = recipients,
        .cipher = cipher,
        .key_transport = kt,
    };
    uint8_t *der = NULL, *plain = NULL;
    size_t len = 0, plain_len = 0;
    scep_pki_message *m = NULL;
    util_error ignored;
    assert_int_equal(scep_pki_message_encode(&mp, &der, &len, &ignored), 0);
    assert_int_equal(scep_pki_message_parse(der, len, NULL, &m, &ignored), 0);
    int rc = scep_envelope_open(m->content, m->content_len, cert, key, &plain, &plain_len, NULL, 0, err);
    if (rc == 0) {
        assert_int_equal(plain_len, sizeof content);
        assert_memory_equal(plain, content, plain_len);
    }
    OPENSSL_free(plain);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    h_stack_free(recipients);
    return rc;
}

static void tpm_key_opens_replies(void **state)
{
    fixture *f = *state;
    EVP_PKEY *rsa = tpm_key(f->rsa_pem), *ec = tpm_key(f->ec_pem);
    X509 *rsa_cert = issued_for(f, rsa, "CN=tpm-rsa", KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    X509 *ec_cert = issued_for(f, ec, "CN=tpm-ec", KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
    util_error err = {0};
    /* what the client asks for when a TPM key signs: 3DES, which servers
     * answer with PKCS#1 v1.5 key transport */
    const EVP_CIPHER *asked = client_cipher_for_signer(EVP_aes_128_cbc(), rsa);
    assert_string_equal(scep_cipher_short_name(asked), scep_cipher_short_name(EVP_des_ede3_cbc()));
    assert_ptr_equal(client_cipher_for_signer(EVP_aes_128_cbc(), f->ca_key), EVP_aes_128_cbc());
    if (reply_open(f, rsa, rsa_cert, asked, SCEP_KT_DEFAULT, &err) != 0)
        fail_msg("3DES, PKCS#1 v1.5: %s %s", util_err_code(err.code), err.detail);
    /* AES with PKCS#1 v1.5 opens as well */
    assert_int_equal(reply_open(f, rsa, rsa_cert, EVP_aes_128_cbc(), SCEP_KT_DEFAULT, &err), 0);
    /* RSA-OAEP (NDES's AES replies) is refused before it reaches the TPM */
    assert_int_equal(reply_open(f, rsa, rsa_cert, EVP_aes_128_cbc(), SCEP_KT_RSA_OAEP, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_key_transport");
    assert_non_null(strstr(err.detail, "rsaesOaep"));
    /* ... and the TPM still works afterwards */
    assert_int_equal(reply_open(f, rsa, rsa_cert, asked, SCEP_KT_DEFAULT, &err), 0);
    /* an EC key in the TPM cannot make CMS's key agreement: refused too,
     * which is why its requests are signed by a temporary RSA key */
    assert_int_equal(reply_open(f, ec, ec_cert, EVP_aes_128_cbc(), SCEP_KT_DEFAULT, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_key_transport");
    client_server srv = {0};
    srv.caps_answered = true;
    static const char caps[] = "SCEPStandard\nAES\nSHA-256\n";
    scep_caps_parse((const uint8_t *)caps, sizeof caps - 1, &srv.caps);
    assert_true(client_server_ec_agreement(&srv));
    assert_true(client_signer_needs_rsa(&srv, ec));
    EVP_PKEY *soft_ec = h_key_ec("P-256");
    assert_false(client_signer_needs_rsa(&srv, soft_ec));
    assert_false(client_signer_needs_rsa(&srv, rsa));
    EVP_PKEY_free(soft_ec);
    scep_caps_clear(&srv.caps);
    X509_free(rsa_cert);
    X509_free(ec_cert);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

/* Verification of an issued certificate against its TPM key, and the
 * HTTPS listener's context with the TPM key, in a handshake. */
static void tpm_key_verifies_and_serves_tls(void **state)
{
    fixture *f = *state;
    const char *pems[] = {f->rsa_pem, f->ec_pem};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *key = tpm_key(pems[i]);
        X509 *cert = issued_for(f, key, "CN=tpm.example.com", KU_DIGITAL_SIGNATURE);
        STACK_OF(X509) *trusted = h_stack(f->ca, NULL);
        crypto_verify_result vr;
        crypto_cert_verify(cert, key, trusted, NULL, NULL, time(NULL), &vr);
        assert_true(vr.valid);
        bool key_match = false;
        for (size_t c = 0; c < vr.count; c++)
            if (strcmp(vr.checks[c].name, "key_match") == 0)
                key_match = vr.checks[c].ok && !vr.checks[c].skipped;
        assert_true(key_match);
        /* the wrong key does not match */
        crypto_cert_verify(cert, f->ca_key, trusted, NULL, NULL, time(NULL), &vr);
        assert_false(vr.valid);
        /* the context loads its own copy of the key */
        EVP_PKEY_free(key);

        char *cert_pem = NULL;
        size_t cert_len = 0;
        util_error err = {0};
        assert_int_equal(crypto_cert_to_pem(cert, &cert_pem, &cert_len, &err), 0);
        SSL_CTX *ctx = NULL;
        if (crypto_tls_server_ctx(pems[i], cert_pem, NULL, &ctx, &err) != 0)
            fail_msg("%s %s", util_err_code(err.code), err.detail);
        /* TLS 1.2 needs the certificate's curve among the context's groups,
         * and with a TPM key the NIST curves' key management is the TPM's
         * (docs/internals/crypto.md): an EC TPM key serves TLS 1.3 only */
        assert_int_equal(handshake(ctx, f->ca, TLS1_2_VERSION), i == 0);
        assert_true(handshake(ctx, f->ca, TLS1_3_VERSION));
        SSL_CTX_free(ctx);
        /* a TPM key with another key's certificate is refused */
        X509 *other = h_cert_issue(f->ca, f->ca_key, f->ca_key, "CN=other", KU_DIGITAL_SIGNATURE);
        char *other_pem = NULL;
        size_t other_len = 0;
        assert_int_equal(crypto_cert_to_pem(other, &other_pem, &other_len, &err), 0);
        assert_int_equal(crypto_tls_server_ctx(pems[i], other_pem, NULL, &ctx, &err), -1);
        assert_string_equal(util_err_code(err.code), "key_mismatch");
        free(other_pem);
        X509_free(other);
        free(cert_pem);
        h_stack_free(trusted);
        X509_free(cert);
    }
}

static bool contains(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t len)
{
    return h_find(hay, hay_len, needle, len) >= 0;
}

static void kek_sealed_to_tpm(void **state)
{
    fixture *f = *state;
    char key_path[600], sealed_path[600];
    snprintf(key_path, sizeof key_path, "%s/kek-tpm.pem", f->dir);
    snprintf(sealed_path, sizeof sealed_path, "%s/kek.sealed", f->dir);
    util_error err = {0};
    uint8_t kek[KEK_TPM_KEK_LEN], again[KEK_TPM_KEK_LEN], zero[KEK_TPM_KEK_LEN] = {0};
    if (kek_tpm_load_or_create(key_path, sealed_path, kek, &err) != 0)
        fail_msg("%s %s", util_err_code(err.code), err.detail);
    assert_memory_not_equal(kek, zero, sizeof kek);
    struct stat st;
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(sealed_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* neither file holds the KEK */
    uint8_t *sealed = NULL, *keyfile = NULL;
    size_t sealed_len = 0, keyfile_len = 0;
    assert_int_equal(util_file_read(sealed_path, 4096, &sealed, &sealed_len, &err), 0);
    assert_int_equal(util_file_read(key_path, 8192, &keyfile, &keyfile_len, &err), 0);
    assert_int_equal(sealed_len, 256);
    assert_false(contains(sealed, sealed_len, kek, sizeof kek));
    assert_false(contains(keyfile, keyfile_len, kek, sizeof kek));
    assert_non_null(strstr((char *)keyfile, "BEGIN TSS2 PRIVATE KEY"));
    /* the same KEK on the next start */
    if (kek_tpm_load_or_create(key_path, sealed_path, again, &err) != 0)
        fail_msg("unsealing: %s %s", util_err_code(err.code), err.detail);
    assert_memory_equal(kek, again, sizeof kek);
    /* seal and unseal directly, with the existing TPM key */
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(kek_tpm_seal(key_path, kek, &blob, &blob_len, &err), 0);
    assert_memory_not_equal(blob, sealed, blob_len); /* PKCS#1 v1.5 padding is random */
    memset(again, 0, sizeof again);
    assert_int_equal(kek_tpm_unseal(key_path, blob, blob_len, again, &err), 0);
    assert_memory_equal(kek, again, sizeof kek);
    /* a damaged blob: an error, and kek untouched */
    blob[100] ^= 0x01;
    memset(again, 0x5a, sizeof again);
    assert_int_equal(kek_tpm_unseal(key_path, blob, blob_len, again, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_operation");
    assert_int_equal(again[0], 0x5a);
    assert_int_equal(kek_tpm_unseal(key_path, blob, blob_len - 1, again, &err), -1);
    assert_string_equal(util_err_code(err.code), "input_file");
    /* a software key file is not a sealing key */
    char soft_path[600];
    snprintf(soft_path, sizeof soft_path, "%s/soft.pem", f->dir);
    assert_int_equal(crypto_key_write_file(soft_path, f->ca_key, &err), 0);
    assert_int_equal(kek_tpm_unseal(soft_path, sealed, sealed_len, again, &err), -1);
    assert_string_equal(util_err_code(err.code), "input_key");
    free(blob);
    free(sealed);
    free(keyfile);
}

/* swtpm stops: every operation with a TPM key is a clear error, no crash,
 * and the key files are as they were. */
static void tpm_stopped(void **state)
{
    fixture *f = *state;
    char key_path[600], sealed_path[600];
    snprintf(key_path, sizeof key_path, "%s/kek-tpm.pem", f->dir);
    snprintf(sealed_path, sizeof sealed_path, "%s/kek.sealed", f->dir);
    uint8_t *before = NULL;
    size_t before_len = 0;
    util_error err = {0};
    assert_int_equal(util_file_read(key_path, 8192, &before, &before_len, &err), 0);

    EVP_PKEY *keys[] = {tpm_key(f->rsa_pem), tpm_key(f->ec_pem)};
    assert_true(h_swtpm_stop(&f->tpm));
    crypto_csr_params p = {.common_name = "tpm.example.com"};
    for (size_t i = 0; i < 2; i++) {
        X509_REQ *req = NULL;
        assert_int_equal(crypto_csr_build(&p, keys[i], &req, &err), -1);
        assert_string_equal(util_err_code(err.code), "tpm_operation");
        assert_null(req);
    }
    crypto_key_spec spec = {CRYPTO_KEY_EC, 256, CRYPTO_KEY_TPM2};
    EVP_PKEY *key = NULL;
    assert_int_equal(crypto_key_generate(&spec, &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_operation");
    uint8_t kek[KEK_TPM_KEK_LEN];
    assert_int_equal(kek_tpm_load_or_create(key_path, sealed_path, kek, &err), -1);
    assert_true(err.code == UTIL_ERR_TPM_OPERATION);
    assert_int_equal(crypto_key_load((const uint8_t *)f->rsa_pem, f->rsa_pem_len, &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "tpm_operation");

    uint8_t *after = NULL;
    size_t after_len = 0;
    assert_int_equal(util_file_read(key_path, 8192, &after, &after_len, &err), 0);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, after_len);
    free(before);
    free(after);
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tpm_unreachable_then_reached),
        cmocka_unit_test(tpm_key_generate_store_load),
        cmocka_unit_test(tpm_key_signs_requests),
        cmocka_unit_test(tpm_key_opens_replies),
        cmocka_unit_test(tpm_key_verifies_and_serves_tls),
        cmocka_unit_test(kek_sealed_to_tpm),
        cmocka_unit_test(tpm_stopped),
    };
    return cmocka_run_group_tests_name("tpm", tests, setup, teardown);
}
