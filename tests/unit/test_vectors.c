/*
 * src/scep against real-world messages in tests/vectors (see PROVENANCE.md):
 * a Microsoft NDES CertRep without certificates, an NDES FAILURE, the
 * jscep/cryptlib samples of RFC 8894, an Apple PKCSReq and a micromdm
 * CertRep. Then every vector again, truncated, bit-flipped and re-signed:
 * each variant must be rejected with the right code, or (for a flip in a
 * part no signature covers) read back with exactly the authenticated values
 * of the original. A missing vector fails its test.
 */
#include "helpers.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "scep/scep.h"

#define V_NDES "smallstep-scep/testca2/CertRep_NoCertificatesForSigners.der"
#define V_NDES_RA "smallstep-scep/testca2/ca2.pem"
#define V_NDES_FAIL "ndes-captured/ndes2012_getcrl_failure_certrep.pem"
#define V_APPLE_REQ "smallstep-scep/PKCSReq.der"
#define V_MDM_REP "smallstep-scep/CertRep.der"
#define V_TESTCA_KEY "smallstep-scep/testca/ca.key"
#define V_TESTCA "smallstep-scep/testca/ca.pem"
#define V_CLIENT_KEY "smallstep-scep/testclient/client.key"
#define V_REQ0 "jscep-samples/scep_req0.der"
#define V_REQ1 "jscep-samples/scep_req1.der"
#define V_REQ2 "jscep-samples/scep_req2.der"
#define V_RESP0 "jscep-samples/scep_resp0.der"
#define V_RESP1 "jscep-samples/scep_resp1.der"
#define V_RESP2 "jscep-samples/scep_resp2.der"
#define V_CA8 "cryptlib/scep_ca8.der"
#define V_CL_CLI "cryptlib/scep_cli.dat"
#define V_CL_SVR "cryptlib/scep_svr.dat"

/* ---- helpers ---- */

static int empty_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Keys in the vectors are PEM, some encrypted with an empty passphrase. */
static EVP_PKEY *vector_key(const char *rel)
{
    uint8_t *data = NULL;
    size_t len = 0;
    H_VECTOR_READ(rel, &data, &len);
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, empty_passphrase, NULL);
    BIO_free(bio);
    free(data);
    if (!k)
        fail_msg("%s: no private key", rel);
    return k;
}

static scep_pki_message *parse_vector(const char *rel, STACK_OF(X509) * signers)
{
    uint8_t *data = NULL;
    size_t len = 0;
    H_VECTOR_READ(rel, &data, &len);
    scep_pki_message *m = NULL;
    util_error err = {0};
    int rc = scep_pki_message_parse(data, len, signers, &m, &err);
    free(data);
    if (rc != 0)
        fail_msg("%s: %s: %s", rel, util_err_code(err.code), err.detail);
    return m;
}

static void describe(const scep_pki_message *m, char *cipher, char *kt)
{
    util_error err = {0};
    assert_non_null(m->content);
    if (scep_envelope_describe(m->content, m->content_len, cipher, 64, kt, 64, &err) != 0)
        fail_msg("describe: %s", err.detail);
}

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return timegm(&tm);
}

static bool all_hex(const char *s, bool upper)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'F') || (!upper && *s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

/* ---- the NDES CertRep without certificates ---- */

static void ndes_certrep_fields(void **state)
{
    (void)state;
    X509 *ra = h_vector_cert(V_NDES_RA);
    STACK_OF(X509) *signers = h_stack(ra, NULL);
    scep_pki_message *m = parse_vector(V_NDES, signers);
    assert_int_equal(m->type, SCEP_MSG_CERTREP);
    assert_int_equal(m->pki_status, SCEP_STATUS_SUCCESS);
    assert_int_equal(m->fail_info, SCEP_FAIL_NONE);
    assert_string_equal(m->transaction_id, "HVvzN0228V+AW+dUuDe8OPyDXD0=");
    assert_non_null(m->ms_disposition);
    assert_string_equal(m->ms_disposition, "Issued");
    assert_null(m->ms_hresult);
    assert_int_equal(m->signing_time, 0); /* NDES sends none */
    assert_true(m->sender_nonce_len > 0);
    assert_int_equal(m->recipient_nonce_len, 16);
    assert_string_equal(m->digest_name, "sha1");
    assert_true(sk_X509_num(m->certs) <= 0);
    assert_true(m->signature_checked);
    assert_true(m->signature_valid);
    assert_int_equal(X509_cmp(m->signer, ra), 0);
    char name[256];
    assert_string_equal(h_subject(m->signer, name, sizeof name), "CN=CERT-PROV-CA-MSCEP-RA,C=US");
    /* the checks a client runs, with the values it sent */
    util_error err = {0};
    assert_int_equal(
        scep_certrep_check(m, signers, m->transaction_id, m->recipient_nonce, m->recipient_nonce_len, &err),
        0);
    char cipher[64], kt[64];
    describe(m, cipher, kt);
    assert_string_equal(cipher, "aes-128-cbc");
    assert_string_equal(kt, "rsaesOaep");
    /* the recipient key is not in the vectors: opening fails cleanly */
    EVP_PKEY *k = h_key_rsa(2048);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(scep_envelope_open(m->content, m->content_len, ra, k, &plain, &plain_len, NULL, 0, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_DECRYPT);
    EVP_PKEY_free(k);
    scep_pki_message_free(m);
    h_stack_free(signers);
    X509_free(ra);
}

static void ndes_certrep_needs_external_signer(void **state)
{
    (void)state;
    scep_pki_message *m = parse_vector(V_NDES, NULL);
    assert_false(m->signature_checked);
    assert_false(m->signature_valid);
    assert_null(m->signer);
    util_error err = {0};
    assert_int_equal(
        scep_certrep_check(m, NULL, m->transaction_id, m->recipient_nonce, m->recipient_nonce_len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
    /* another certificate does not help */
    X509 *other = h_vector_cert(V_TESTCA);
    STACK_OF(X509) *wrong = h_stack(other, NULL);
    m = parse_vector(V_NDES, wrong);
    assert_false(m->signature_checked);
    assert_int_equal(
        scep_certrep_check(m, wrong, m->transaction_id, m->recipient_nonce, m->recipient_nonce_len, &err),
        -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
    h_stack_free(wrong);
    X509_free(other);
    /* the RA certificate is classified as an RA signer */
    X509 *ra = h_vector_cert(V_NDES_RA);
    assert_false(crypto_cert_is_ca(ra));
    assert_int_equal(X509_get_key_usage(ra) & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT),
                     KU_DIGITAL_SIGNATURE);
    X509_free(ra);
}

static void ndes_failure_pem(void **state)
{
    (void)state;
    scep_pki_message *m = parse_vector(V_NDES_FAIL, NULL);
    assert_int_equal(m->type, SCEP_MSG_CERTREP);
    assert_int_equal(m->pki_status, SCEP_STATUS_FAILURE);
    assert_int_equal(m->fail_info, SCEP_FAIL_BAD_REQUEST);
    assert_int_equal(m->content_len, 1);
    assert_int_equal(m->content[0], 0);
    assert_string_equal(m->ms_hresult, "-2147024809");
    assert_int_equal(scep_failure_error(m), UTIL_ERR_FAIL_NOT_SUPPORTED);
    assert_string_equal(m->transaction_id, "9CB1CB998B7FCC0142297B492988AFB4");
    assert_int_equal(m->signing_time, 0);
    assert_true(m->sender_nonce_len > 0);
    assert_true(m->recipient_nonce_len > 0);
    assert_string_equal(m->digest_name, "sha1");
    /* the signer certificate is not included: it cannot be verified */
    assert_false(m->signature_checked);
    util_error err = {0};
    assert_int_equal(
        scep_certrep_check(m, NULL, m->transaction_id, m->recipient_nonce, m->recipient_nonce_len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
}

/* ---- jscep / cryptlib samples (RFC 8894 §3) ---- */

static void jscep_req2_pkcsreq(void **state)
{
    (void)state;
    scep_pki_message *m = parse_vector(V_REQ2, NULL);
    assert_int_equal(m->type, SCEP_MSG_PKCSREQ);
    assert_string_equal(m->transaction_id, "7XXEY-ERLPU-2JDR9");
    assert_int_equal(m->signing_time, utc(2018, 1, 14, 14, 39, 49));
    assert_string_equal(m->digest_name, "sha256");
    assert_int_equal(m->sender_nonce_len, 16);
    assert_int_equal(m->pki_status, SCEP_STATUS_NONE);
    assert_true(m->signature_valid);
    char name[256];
    assert_non_null(strstr(h_subject(m->signer, name, sizeof name), "Test SCEP PKI user"));
    /* self-signed */
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(m->signer), X509_get_issuer_name(m->signer)), 0);
    assert_int_equal(X509_verify(m->signer, X509_get0_pubkey(m->signer)), 1);
    char cipher[64], kt[64];
    describe(m, cipher, kt);
    assert_string_equal(cipher, "aes-128-cbc");
    assert_string_equal(kt, "rsaEncryption");
    scep_pki_message_free(m);
}

static void jscep_resp2_certrep(void **state)
{
    (void)state;
    scep_pki_message *req = parse_vector(V_REQ2, NULL);
    scep_pki_message *m = parse_vector(V_RESP2, NULL);
    assert_int_equal(m->type, SCEP_MSG_CERTREP);
    assert_int_equal(m->pki_status, SCEP_STATUS_SUCCESS);
    assert_int_equal(m->sender_nonce_len, 0); /* RFC 8894 no longer requires it */
    assert_int_equal(m->recipient_nonce_len, 16);
    assert_string_equal(m->digest_name, "sha256");
    assert_true(m->signature_checked);
    assert_true(m->signature_valid); /* with the certificates in the message */
    assert_int_equal(sk_X509_num(m->certs), 2);
    char name[256];
    assert_non_null(strstr(h_subject(m->signer, name, sizeof name), "Dave's SCEP CA"));
    /* it answers scep_req2: the client's checks pass with that request's values */
    util_error err = {0};
    STACK_OF(X509) *expected = h_stack(m->signer, NULL);
    assert_int_equal(
        scep_certrep_check(m, expected, req->transaction_id, req->sender_nonce, req->sender_nonce_len, &err),
        0);
    assert_int_equal(
        scep_certrep_check(m, expected, "7XXEY-ERLPU-2JDR8", req->sender_nonce, req->sender_nonce_len, &err),
        -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TRANSACTION);
    h_stack_free(expected);
    char cipher[64], kt[64];
    describe(m, cipher, kt);
    assert_string_equal(cipher, "aes-128-cbc");
    scep_pki_message_free(m);
    scep_pki_message_free(req);
}

static void jscep_unsigned_samples(void **state)
{
    (void)state;
    uint8_t *d = NULL;
    size_t len = 0;
    util_error err = {0};
    char cipher[64], kt[64];
    /* scep_req1: the EnvelopedData of the request */
    H_VECTOR_READ(V_REQ1, &d, &len);
    assert_int_equal(scep_envelope_describe(d, len, cipher, sizeof cipher, kt, sizeof kt, &err), 0);
    assert_string_equal(cipher, "aes-128-cbc");
    assert_string_equal(kt, "rsaEncryption");
    scep_pki_message *m = NULL;
    assert_int_equal(scep_pki_message_parse(d, len, NULL, &m, &err), -1); /* not a SignedData */
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    free(d);
    /* scep_resp1: the reply's envelope */
    H_VECTOR_READ(V_RESP1, &d, &len);
    assert_int_equal(scep_envelope_describe(d, len, cipher, sizeof cipher, kt, sizeof kt, &err), 0);
    assert_string_equal(cipher, "aes-128-cbc");
    free(d);
    /* scep_resp0: the degenerate certs-only inside the reply; it holds the
     * issued certificate only (not also the CA's, as its README says) */
    H_VECTOR_READ(V_RESP0, &d, &len);
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    assert_int_equal(scep_certs_only_parse(d, len, &certs, &crls, &err), 0);
    assert_int_equal(sk_X509_num(certs), 1);
    assert_int_equal(sk_X509_CRL_num(crls), 0);
    char name[256];
    assert_non_null(strstr(h_subject(sk_X509_value(certs, 0), name, sizeof name), "Test SCEP PKI user"));
    scep_ca_certs *ca = NULL;
    assert_int_equal(scep_ca_certs_parse(d, len, &ca, &err), 0);
    assert_int_equal(sk_X509_num(ca->all), 1);
    assert_int_equal(X509_cmp(ca->ca, sk_X509_value(certs, 0)),
                     0); /* a lone certificate is taken as the CA */
    X509 *issued = NULL;
    assert_int_equal(scep_certrep_content(d, len, NULL, &issued, NULL, NULL, &err), 0);
    assert_false(crypto_cert_is_ca(issued));
    /* picked by its key too */
    X509 *by_key = NULL;
    assert_int_equal(scep_certrep_content(d, len, X509_get0_pubkey(issued), &by_key, NULL, NULL, &err), 0);
    assert_int_equal(X509_cmp(by_key, issued), 0);
    X509_free(by_key);
    X509_free(issued);
    scep_ca_certs_free(ca);
    h_stack_free(certs);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    free(d);
    /* scep_req0: the PKCS#10 itself */
    H_VECTOR_READ(V_REQ0, &d, &len);
    const unsigned char *p = d;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
    X509_REQ_free(req);
    free(d);
}

static void cryptlib_seed_pair(void **state)
{
    (void)state;
    /* despite their names, scep_cli.dat is the request and scep_svr.dat its reply */
    scep_pki_message *req = parse_vector(V_CL_CLI, NULL);
    scep_pki_message *rep = parse_vector(V_CL_SVR, NULL);
    assert_int_equal(req->type, SCEP_MSG_PKCSREQ);
    assert_int_equal(rep->type, SCEP_MSG_CERTREP);
    assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
    assert_string_equal(req->transaction_id, "EYAC6-9EDKM-2LRFS");
    assert_string_equal(rep->transaction_id, req->transaction_id);
    assert_true(req->signature_valid);
    if (rep->signature_checked) {
        assert_true(rep->signature_valid);
        util_error err = {0};
        assert_int_equal(scep_certrep_check(rep, NULL, req->transaction_id, req->sender_nonce,
                                            req->sender_nonce_len, &err),
                         0);
    }
    assert_int_equal(rep->recipient_nonce_len, req->sender_nonce_len);
    assert_memory_equal(rep->recipient_nonce, req->sender_nonce, req->sender_nonce_len);
    scep_pki_message_free(req);
    scep_pki_message_free(rep);
}

/* ---- Apple PKCSReq and the micromdm CertRep ---- */

static void apple_pkcsreq_opens(void **state)
{
    (void)state;
    scep_pki_message *m = parse_vector(V_APPLE_REQ, NULL);
    assert_int_equal(m->type, SCEP_MSG_PKCSREQ);
    assert_int_equal(m->sender_nonce_len, 8);
    assert_int_equal(strlen(m->transaction_id), 40);
    assert_true(all_hex(m->transaction_id, true));
    assert_string_equal(m->digest_name, "sha1");
    assert_true(m->signature_valid);
    char name[256];
    assert_string_equal(h_subject(m->signer, name, sizeof name), "C=US,CN=MDM SCEP SIGNER");
    char cipher[64], kt[64];
    describe(m, cipher, kt);
    assert_string_equal(cipher, "des-ede3-cbc");
    assert_string_equal(kt, "rsaEncryption");
    EVP_PKEY *ca_key = vector_key(V_TESTCA_KEY);
    X509 *ca = h_vector_cert(V_TESTCA);
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    char used[64] = "";
    util_error err = {0};
    if (scep_envelope_open(m->content, m->content_len, ca, ca_key, &csr, &csr_len, used, sizeof used, &err) !=
        0)
        fail_msg("open: %s", err.detail);
    assert_string_equal(used, "des-ede3-cbc");
    const unsigned char *p = csr;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)csr_len);
    assert_non_null(req);
    assert_ptr_equal(p, csr + csr_len);
    X509_NAME *subject = X509_REQ_get_subject_name(req);
    char cn[128];
    assert_true(X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn) > 0);
    assert_string_equal(cn, "com.apple.security.scep.063D7953-1338-4BF0-8F99-913382996224");
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(pub), 1024);
    assert_int_equal(X509_REQ_verify(req, pub), 1);
    EVP_PKEY *client = vector_key(V_CLIENT_KEY);
    assert_int_equal(EVP_PKEY_eq(pub, client), 1);
    /* not the signer's key: the signer is "MDM SCEP SIGNER" */
    EVP_PKEY_free(client);
    X509_REQ_free(req);
    OPENSSL_free(csr);
    /* the wrong key fails cleanly */
    EVP_PKEY *wrong = h_key_rsa(2048);
    csr = NULL;
    assert_int_equal(scep_envelope_open(m->content, m->content_len, ca, wrong, &csr, &csr_len, NULL, 0, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_DECRYPT);
    assert_null(csr);
    EVP_PKEY_free(wrong);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    scep_pki_message_free(m);
}

static void micromdm_certrep(void **state)
{
    (void)state;
    scep_pki_message *req = parse_vector(V_APPLE_REQ, NULL);
    scep_pki_message *m = parse_vector(V_MDM_REP, NULL);
    assert_int_equal(m->type, SCEP_MSG_CERTREP);
    assert_int_equal(m->pki_status, SCEP_STATUS_SUCCESS);
    assert_string_equal(m->digest_name, "sha1");
    assert_true(m->signature_checked);
    assert_true(m->signature_valid); /* with its own certificates */
    assert_true(sk_X509_num(m->certs) >= 2);
    util_error err = {0};
    /* the reply to the Apple request: same transactionID, its nonce echoed */
    assert_int_equal(
        scep_certrep_check(m, NULL, req->transaction_id, req->sender_nonce, req->sender_nonce_len, &err), 0);
    uint8_t other[8];
    memcpy(other, req->sender_nonce, 8);
    other[0] ^= 0x80;
    assert_int_equal(scep_certrep_check(m, NULL, req->transaction_id, other, 8, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_NONCE);
    char cipher[64], kt[64];
    describe(m, cipher, kt);
    assert_string_equal(cipher, "des-cbc");
    assert_string_equal(kt, "rsaEncryption");
    /* client.key is not the recipient ("MDM SCEP SIGNER") */
    EVP_PKEY *client = vector_key(V_CLIENT_KEY);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(scep_envelope_open(m->content, m->content_len, req->signer, client, &plain, &plain_len,
                                        NULL, 0, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_DECRYPT);
    EVP_PKEY_free(client);
    scep_pki_message_free(m);
    scep_pki_message_free(req);
}

static void cryptlib_ca_without_key_encipherment(void **state)
{
    (void)state;
    uint8_t *d = NULL;
    size_t len = 0;
    H_VECTOR_READ(V_CA8, &d, &len);
    scep_ca_certs *c = NULL;
    util_error err = {0};
    assert_int_equal(scep_ca_certs_parse(d, len, &c, &err), 0);
    assert_int_equal(sk_X509_num(c->all), 1);
    assert_true(crypto_cert_is_ca(c->ca));
    assert_int_equal(X509_get_key_usage(c->ca) & KU_KEY_ENCIPHERMENT, 0);
    assert_int_equal(scep_ca_certs_role(c, c->ca), SCEP_ROLE_CA);
    assert_ptr_equal(c->ra_encrypt, c->ca);
    char name[256];
    assert_non_null(strstr(h_subject(c->ca, name, sizeof name), "qa4-QA4-MDM3-CA"));
    scep_ca_certs_free(c);
    free(d);
}

/* ---- hostile variants ---- */

typedef enum outcome {
    O_PARSE_ERROR,    /* scep_pki_message_parse: -1 response_parse */
    O_SIGNER_UNKNOWN, /* no signer certificate: response_signer */
    O_BAD_SIGNATURE,  /* response_signature */
    O_OTHER_SIGNER,   /* verifies, but not with the expected certificate: response_signer */
    O_ACCEPTED,       /* verifies with the expected signer */
    O_COUNT
} outcome;

static const char *const outcome_names[] = {"parse error", "unknown signer", "bad signature", "other signer",
                                            "accepted"};

typedef struct vector_ctx {
    const char *name;
    scep_pki_message *ref;     /* the unmodified message */
    STACK_OF(X509) * signers;  /* external signer certificates (NDES) */
    STACK_OF(X509) * expected; /* the original signer; NULL when unverifiable */
    bool certrep;
} vector_ctx;

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void assert_same_values(const vector_ctx *v, const scep_pki_message *m, const char *what, size_t at)
{
    const scep_pki_message *r = v->ref;
    bool same = m->type == r->type && m->pki_status == r->pki_status && m->fail_info == r->fail_info &&
                same_str(m->transaction_id, r->transaction_id) &&
                same_str(m->fail_info_text, r->fail_info_text) && same_str(m->ms_hresult, r->ms_hresult) &&
                same_str(m->ms_disposition, r->ms_disposition) && m->signing_time == r->signing_time &&
                m->sender_nonce_len == r->sender_nonce_len &&
                !memcmp(m->sender_nonce, r->sender_nonce, r->sender_nonce_len) &&
                m->recipient_nonce_len == r->recipient_nonce_len &&
                !memcmp(m->recipient_nonce, r->recipient_nonce, r->recipient_nonce_len) &&
                m->content_len == r->content_len &&
                (!r->content_len || !memcmp(m->content, r->content, r->content_len));
    if (!same)
        fail_msg("%s, %s at %zu: accepted with values that differ from the original", v->name, what, at);
}

static outcome judge(const vector_ctx *v, const uint8_t *d, size_t len, const char *what, size_t at)
{
    scep_pki_message *m = NULL;
    util_error err = {0};
    if (scep_pki_message_parse(d, len, v->signers, &m, &err) != 0) {
        if (err.code != UTIL_ERR_RESPONSE_PARSE)
            fail_msg("%s, %s at %zu: parse failed with %s", v->name, what, at, util_err_code(err.code));
        assert_null(m);
        return O_PARSE_ERROR;
    }
    outcome o;
    if (!m->signature_checked)
        o = O_SIGNER_UNKNOWN;
    else if (!m->signature_valid)
        o = O_BAD_SIGNATURE;
    else if (!v->expected || X509_cmp(m->signer, sk_X509_value(v->expected, 0)) != 0)
        o = O_OTHER_SIGNER;
    else
        o = O_ACCEPTED;
    if (o != O_ACCEPTED && o != O_OTHER_SIGNER)
        assert_null(m->signer);
    if (v->certrep) {
        util_error cerr = {0};
        const scep_pki_message *r = v->ref;
        int rc = scep_certrep_check(m, v->expected, r->transaction_id ? r->transaction_id : "",
                                    r->recipient_nonce, r->recipient_nonce_len, &cerr);
        util_err want = o == O_BAD_SIGNATURE ? UTIL_ERR_RESPONSE_SIGNATURE
                        : o == O_ACCEPTED    ? UTIL_ERR_NONE
                                             : UTIL_ERR_RESPONSE_SIGNER;
        if ((want == UTIL_ERR_NONE) != (rc == 0) || (rc != 0 && cerr.code != want))
            fail_msg("%s, %s at %zu: %s, but scep_certrep_check gave %d %s (%s)", v->name, what, at,
                     outcome_names[o], rc, util_err_code(cerr.code), cerr.detail);
    }
    if (o == O_ACCEPTED)
        assert_same_values(v, m, what, at);
    /* whatever came out, describing the content must not crash */
    if (m->content) {
        char c[64], k[64];
        util_error derr = {0};
        if (scep_envelope_describe(m->content, m->content_len, c, sizeof c, k, sizeof k, &derr) != 0)
            assert_int_equal(derr.code, UTIL_ERR_RESPONSE_PARSE);
    }
    scep_pki_message_free(m);
    return o;
}

/* A certificate with the issuer and serial of `victim`, over another key. */
static X509 *forge(X509 *victim, EVP_PKEY *key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(X509_set_serialNumber(x, (ASN1_INTEGER *)X509_get0_serialNumber(victim)), 1);
    assert_int_equal(X509_set_issuer_name(x, X509_get_issuer_name(victim)), 1);
    assert_int_equal(X509_set_subject_name(x, X509_get_subject_name(victim)), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

enum region { R_OTHER, R_SIGNATURE, R_CONTENT, R_ATTRS, R_COUNT };

static void mutate_signed(const char *rel, const char *signer_file, bool certrep)
{
    uint8_t *d = NULL;
    size_t len = 0;
    H_VECTOR_READ(rel, &d, &len);
    vector_ctx v = {.name = rel, .certrep = certrep};
    X509 *ext = signer_file ? h_vector_cert(signer_file) : NULL;
    if (ext)
        v.signers = h_stack(ext, NULL);
    util_error err = {0};
    assert_int_equal(scep_pki_message_parse(d, len, v.signers, &v.ref, &err), 0);
    assert_true(v.ref->signature_valid);
    v.expected = h_stack(v.ref->signer, NULL);
    assert_int_equal(judge(&v, d, len, "original", 0), O_ACCEPTED);

    /* the parts every signature covers */
    size_t sig_len = 0, attrs_len = 0;
    long sig = h_signature_offset(d, len, &sig_len);
    long attrs = h_signed_attrs_offset(d, len, &attrs_len);
    long content = v.ref->content_len >= 16 ? h_find(d, len, v.ref->content, v.ref->content_len) : -1;
    assert_true(sig > 0);
    assert_true(attrs > 0);
    assert_true(content > 0);

    /* every truncation in a stride, and the last few bytes */
    for (size_t cut = 0; cut < len; cut += (cut + 8 >= len ? 1 : 7))
        if (judge(&v, d, cut, "truncated", cut) != O_PARSE_ERROR)
            fail_msg("%s truncated to %zu bytes was not a parse error", rel, cut);

    /* bit flips across the file */
    size_t counts[R_COUNT][O_COUNT];
    memset(counts, 0, sizeof counts);
    for (size_t i = 0; i < len; i += 3) {
        size_t bit = i * 8 + (i * 5) % 8;
        uint8_t *flipped = h_flip_bit(d, len, bit);
        outcome o = judge(&v, flipped, len, "bit flip", bit);
        free(flipped);
        enum region r = (long)i >= sig && (long)i < sig + (long)sig_len                      ? R_SIGNATURE
                        : (long)i >= content && (long)i < content + (long)v.ref->content_len ? R_CONTENT
                        : (long)i >= attrs + 4 && (long)i < attrs + (long)attrs_len          ? R_ATTRS
                                                                                             : R_OTHER;
        counts[r][o]++;
        /* what the signature covers cannot change and still verify */
        if ((r == R_SIGNATURE || r == R_CONTENT) && o != O_BAD_SIGNATURE)
            fail_msg("%s: flip of bit %zu (%s) gave %s, expected a bad signature", rel, bit,
                     r == R_SIGNATURE ? "signature" : "content", outcome_names[o]);
        /* OpenSSL reads a SET tag with its constructed bit cleared (0x11)
         * and verifies over the DER re-encoding: such a flip is accepted,
         * with values that judge() found identical to the original's */
        if (r == R_ATTRS && o != O_BAD_SIGNATURE && o != O_PARSE_ERROR &&
            !(o == O_ACCEPTED && d[i] == 0x31 && bit % 8 == 2))
            fail_msg("%s: flip of bit %zu in the signed attributes gave %s", rel, bit, outcome_names[o]);
    }
    assert_true(counts[R_SIGNATURE][O_BAD_SIGNATURE] >= 10);
    assert_true(counts[R_CONTENT][O_BAD_SIGNATURE] >= 10);
    assert_true(counts[R_ATTRS][O_BAD_SIGNATURE] + counts[R_ATTRS][O_PARSE_ERROR] >= 10);
    assert_true(counts[R_OTHER][O_PARSE_ERROR] > 0);

    /* re-signed: another transactionID under another key */
    EVP_PKEY *attacker = h_key_rsa(2048);
    size_t rlen = 0;
    uint8_t *re = h_resign(d, len, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, "FORGED", 6, attacker,
                           NULL, NULL, &rlen);
    assert_int_equal(judge(&v, re, rlen, "re-signed", 0), O_BAD_SIGNATURE);
    OPENSSL_free(re);
    /* ... with a forged certificate bearing the signer's issuer and serial */
    X509 *forged = forge(v.ref->signer, attacker);
    re = h_resign(d, len, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, "FORGED", 6, attacker, NULL,
                  forged, &rlen);
    outcome o = judge(&v, re, rlen, "re-signed with a forged certificate", 0);
    if (sk_X509_num(v.ref->certs) > 0) /* the genuine certificate may be found first */
        assert_true(o == O_BAD_SIGNATURE || o == O_OTHER_SIGNER);
    else
        assert_int_equal(o, O_OTHER_SIGNER);
    OPENSSL_free(re);
    /* re-signed by nobody's key but unchanged attributes: still rejected */
    re = h_resign(d, len, NULL, 0, NULL, 0, attacker, NULL, NULL, &rlen);
    assert_int_equal(judge(&v, re, rlen, "re-signed unchanged", 0), O_BAD_SIGNATURE);
    OPENSSL_free(re);
    X509_free(forged);
    EVP_PKEY_free(attacker);

    h_stack_free(v.expected);
    h_stack_free(v.signers);
    X509_free(ext);
    scep_pki_message_free(v.ref);
    free(d);
}

static void mutate_ndes_certrep(void **state)
{
    (void)state;
    mutate_signed(V_NDES, V_NDES_RA, true);
}

static void mutate_micromdm_certrep(void **state)
{
    (void)state;
    mutate_signed(V_MDM_REP, NULL, true);
}

static void mutate_jscep_certrep(void **state)
{
    (void)state;
    mutate_signed(V_RESP2, NULL, true);
}

static void mutate_requests(void **state)
{
    (void)state;
    mutate_signed(V_APPLE_REQ, NULL, false);
    mutate_signed(V_REQ2, NULL, false);
    mutate_signed(V_CL_CLI, NULL, false);
}

/* The NDES FAILURE cannot be verified: every variant is a parse error or
 * an unknown signer, never anything accepted. */
static void mutate_ndes_failure(void **state)
{
    (void)state;
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    H_VECTOR_READ(V_NDES_FAIL, &pem, &pem_len);
    vector_ctx v = {.name = V_NDES_FAIL, .certrep = true};
    util_error err = {0};
    assert_int_equal(scep_pki_message_parse(pem, pem_len, NULL, &v.ref, &err), 0);
    /* the PEM text, cut anywhere before its end line, is a parse error */
    const char *end = strstr((const char *)pem, "-----END");
    assert_non_null(end);
    size_t end_at = (size_t)(end - (const char *)pem);
    for (size_t cut = 0; cut < end_at; cut += 5)
        assert_int_equal(judge(&v, pem, cut, "PEM truncated", cut), O_PARSE_ERROR);
    /* the DER inside */
    unsigned char *der = NULL;
    int len = i2d_CMS_ContentInfo(v.ref->cms, &der);
    assert_true(len > 0);
    for (int cut = 0; cut < len; cut += 3)
        assert_int_equal(judge(&v, der, (size_t)cut, "truncated", (size_t)cut), O_PARSE_ERROR);
    size_t counts[O_COUNT] = {0};
    for (int i = 0; i < len; i++) {
        uint8_t *flipped = h_flip_bit(der, (size_t)len, (size_t)i * 8 + (size_t)(i % 8));
        outcome o = judge(&v, flipped, (size_t)len, "bit flip", (size_t)i);
        free(flipped);
        if (o != O_PARSE_ERROR && o != O_SIGNER_UNKNOWN)
            fail_msg("flip in byte %d gave %s", i, outcome_names[o]);
        counts[o]++;
    }
    assert_true(counts[O_PARSE_ERROR] > 0 && counts[O_SIGNER_UNKNOWN] > 0);
    OPENSSL_free(der);
    scep_pki_message_free(v.ref);
    free(pem);
}

/* Envelopes, certs-only, a CSR and a certificate: every variant is read or
 * refused with the documented code. */
static void mutate_unsigned(void **state)
{
    (void)state;
    static const struct {
        const char *rel;
        int kind;
    } files[] = {{V_REQ1, 0}, {V_RESP1, 0}, {V_RESP0, 1}, {V_REQ0, 2}, {V_CA8, 3}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        uint8_t *d = NULL;
        size_t len = 0;
        H_VECTOR_READ(files[f].rel, &d, &len);
        size_t accepted = 0, refused = 0;
        for (int pass = 0; pass < 2; pass++) {
            size_t n = pass == 0 ? len : len / 2; /* truncations, then flips */
            for (size_t i = 0; i < n; i++) {
                uint8_t *buf = pass == 0 ? h_dup(d, i) : h_flip_bit(d, len, i * 2 * 8 + (i % 8));
                size_t blen = pass == 0 ? i : len;
                util_error err = {0};
                int rc = -1;
                util_err fail_code = UTIL_ERR_RESPONSE_PARSE;
                switch (files[f].kind) {
                case 0: {
                    char c[64], k[64];
                    rc = scep_envelope_describe(buf, blen, c, sizeof c, k, sizeof k, &err);
                    break;
                }
                case 1: {
                    STACK_OF(X509) *certs = NULL;
                    rc = scep_certs_only_parse(buf, blen, &certs, NULL, &err);
                    h_stack_free(certs);
                    scep_ca_certs *c = NULL;
                    util_error cerr = {0};
                    if (scep_ca_certs_parse(buf, blen, &c, &cerr) == 0)
                        scep_ca_certs_free(c);
                    else if (cerr.code != UTIL_ERR_CACERT_PARSE && cerr.code != UTIL_ERR_CACERT_NO_CA)
                        fail_msg("%s: GetCACert gave %s", files[f].rel, util_err_code(cerr.code));
                    break;
                }
                case 2: {
                    const unsigned char *p = buf;
                    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)blen);
                    rc = req && X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) == 1 ? 0 : -1;
                    err.code = rc ? UTIL_ERR_RESPONSE_PARSE : UTIL_ERR_NONE;
                    X509_REQ_free(req);
                    ERR_clear_error();
                    break;
                }
                case 3: {
                    scep_ca_certs *c = NULL;
                    rc = scep_ca_certs_parse(buf, blen, &c, &err);
                    scep_ca_certs_free(c);
                    fail_code =
                        err.code == UTIL_ERR_CACERT_NO_CA ? UTIL_ERR_CACERT_NO_CA : UTIL_ERR_CACERT_PARSE;
                    break;
                }
                }
                /* none of these is a pkiMessage, however mutated */
                scep_pki_message *m = NULL;
                util_error merr = {0};
                if (scep_pki_message_parse(buf, blen, NULL, &m, &merr) == 0) {
                    scep_pki_message_free(m);
                    fail_msg("%s: variant %zu/%d read as a pkiMessage", files[f].rel, i, pass);
                }
                assert_int_equal(merr.code, UTIL_ERR_RESPONSE_PARSE);
                if (rc != 0 && err.code != fail_code)
                    fail_msg("%s: variant %zu/%d failed with %s", files[f].rel, i, pass,
                             util_err_code(err.code));
                if (pass == 0 && rc == 0)
                    fail_msg("%s truncated to %zu bytes was accepted", files[f].rel, i);
                /* a CSR's signature covers all but itself */
                if (pass == 1 && files[f].kind == 2 && rc == 0)
                    fail_msg("%s: flipped CSR %zu still verifies", files[f].rel, i);
                if (rc == 0)
                    accepted++;
                else
                    refused++;
                free(buf);
            }
        }
        assert_true(refused > len);
        (void)accepted;
        free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ndes_certrep_fields),  cmocka_unit_test(ndes_certrep_needs_external_signer),
        cmocka_unit_test(ndes_failure_pem),     cmocka_unit_test(jscep_req2_pkcsreq),
        cmocka_unit_test(jscep_resp2_certrep),  cmocka_unit_test(jscep_unsigned_samples),
        cmocka_unit_test(cryptlib_seed_pair),   cmocka_unit_test(apple_pkcsreq_opens),
        cmocka_unit_test(micromdm_certrep),     cmocka_unit_test(cryptlib_ca_without_key_encipherment),
        cmocka_unit_test(mutate_ndes_certrep),  cmocka_unit_test(mutate_micromdm_certrep),
        cmocka_unit_test(mutate_jscep_certrep), cmocka_unit_test(mutate_requests),
        cmocka_unit_test(mutate_ndes_failure),  cmocka_unit_test(mutate_unsigned),
    };
    return cmocka_run_group_tests_name("vectors", tests, NULL, NULL);
}
