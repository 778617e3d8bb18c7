/* src/scep: GetCACaps, GetCACert, messageData, and pkiMessages built with
 * scep_pki_message_encode and read back with the parser, the CertRep checks
 * and the envelope functions. */
#include "helpers.h"

#include <ctype.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "scep/scep.h"
#include "util/codec.h"
#include "util/file.h"

#define TID "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"

static const uint8_t NONCE[16] = {0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
                                  0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f};
static const uint8_t CA_NONCE[16] = {0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t CSR_STANDIN[] = "a PKCS#10 request stands here; the envelope does not look inside";

typedef struct fixture {
    EVP_PKEY *ca_key, *ra_enc_key, *ra_sign_key, *client_key, *other_key;
    EVP_PKEY *ec_ca_key, *ec_client_key;
    X509 *ca, *ra_enc, *ra_sign, *client, *issued, *other;
    X509 *ec_ca, *ec_client, *ec_issued;
    STACK_OF(X509) * getcacert; /* CA, RA encrypt, RA sign */
} fixture;

static X509 *selfsigned(EVP_PKEY *key, const char *subject)
{
    X509_NAME *name = NULL;
    X509 *x = NULL;
    util_error err = {0};
    assert_int_equal(crypto_name_parse(subject, &name, &err), 0);
    assert_int_equal(crypto_selfsigned_build(key, name, NULL, time(NULL), 7, &x, &err), 0);
    X509_NAME_free(name);
    return x;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->ca_key = h_key_rsa(2048);
    f->ra_enc_key = h_key_rsa(2048);
    f->ra_sign_key = h_key_rsa(2048);
    f->client_key = h_key_rsa(2048);
    f->other_key = h_key_rsa(2048);
    f->ec_ca_key = h_key_ec("P-256");
    f->ec_client_key = h_key_ec("P-256");
    f->ca = h_ca_new(f->ca_key, "O=Example,CN=SCEP Test CA");
    f->ra_enc =
        h_cert_issue(f->ca, f->ca_key, f->ra_enc_key, "O=Example,CN=SCEP RA encrypt", KU_KEY_ENCIPHERMENT);
    f->ra_sign =
        h_cert_issue(f->ca, f->ca_key, f->ra_sign_key, "O=Example,CN=SCEP RA sign", KU_DIGITAL_SIGNATURE);
    f->client = selfsigned(f->client_key, "O=Example,CN=device-1");
    f->issued = h_cert_issue(f->ca, f->ca_key, f->client_key, "O=Example,CN=device-1",
                             KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    f->other = selfsigned(f->other_key, "CN=Somebody Else");
    f->ec_ca = h_ca_new(f->ec_ca_key, "CN=EC Test CA");
    f->ec_client = selfsigned(f->ec_client_key, "CN=ec-device");
    f->ec_issued =
        h_cert_issue(f->ec_ca, f->ec_ca_key, f->ec_client_key, "CN=ec-device", KU_DIGITAL_SIGNATURE);
    f->getcacert = h_stack(f->ca, f->ra_enc, f->ra_sign, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    h_stack_free(f->getcacert);
    X509 *certs[] = {f->ca,    f->ra_enc, f->ra_sign,   f->client,   f->issued,
                     f->other, f->ec_ca,  f->ec_client, f->ec_issued};
    for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
        X509_free(certs[i]);
    EVP_PKEY *keys[] = {f->ca_key,    f->ra_enc_key, f->ra_sign_key,  f->client_key,
                        f->other_key, f->ec_ca_key,  f->ec_client_key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    free(f);
    return 0;
}

/* ---- small wrappers that fail the test on error ---- */

static uint8_t *encode(const scep_pki_message_params *p, size_t *len)
{
    uint8_t *der = NULL;
    util_error err = {0};
    if (scep_pki_message_encode(p, &der, len, &err) != 0)
        fail_msg("encode: %s: %s", util_err_code(err.code), err.detail);
    return der;
}

static scep_pki_message *parse(const uint8_t *der, size_t len, STACK_OF(X509) * signers)
{
    scep_pki_message *m = NULL;
    util_error err = {0};
    if (scep_pki_message_parse(der, len, signers, &m, &err) != 0)
        fail_msg("parse: %s: %s", util_err_code(err.code), err.detail);
    return m;
}

static uint8_t *certs_only(STACK_OF(X509) * certs, X509_CRL *crl, size_t *len)
{
    uint8_t *der = NULL;
    util_error err = {0};
    if (scep_certs_only_encode(certs, crl, &der, len, &err) != 0)
        fail_msg("certs-only: %s", err.detail);
    return der;
}

/* The PKCSReq a client sends: signed by its self-signed certificate,
 * encrypted to the RA. */
static void pkcsreq_params(fixture *f, scep_pki_message_params *p, STACK_OF(X509) * recipients)
{
    memset(p, 0, sizeof *p);
    p->type = SCEP_MSG_PKCSREQ;
    p->transaction_id = TID;
    p->sender_nonce = NONCE;
    p->sender_nonce_len = sizeof NONCE;
    p->pki_status = SCEP_STATUS_NONE;
    p->fail_info = SCEP_FAIL_NONE;
    p->signer_cert = f->client;
    p->signer_key = f->client_key;
    p->include_signer_cert = true;
    p->content = CSR_STANDIN;
    p->content_len = sizeof CSR_STANDIN;
    p->recipients = recipients;
}

/* A CertRep from the RA signing certificate, to the client. */
static void certrep_params(fixture *f, scep_pki_message_params *p, int status)
{
    memset(p, 0, sizeof *p);
    p->type = SCEP_MSG_CERTREP;
    p->transaction_id = TID;
    p->sender_nonce = CA_NONCE;
    p->sender_nonce_len = sizeof CA_NONCE;
    p->recipient_nonce = NONCE;
    p->recipient_nonce_len = sizeof NONCE;
    p->pki_status = status;
    p->fail_info = status == SCEP_STATUS_FAILURE ? SCEP_FAIL_BAD_REQUEST : SCEP_FAIL_NONE;
    p->signer_cert = f->ra_sign;
    p->signer_key = f->ra_sign_key;
    p->include_signer_cert = true;
}

static int check(const scep_pki_message *m, STACK_OF(X509) * expected, util_error *err)
{
    util_error_clear(err);
    return scep_certrep_check(m, expected, TID, NONCE, sizeof NONCE, err);
}

/* ---- GetCACaps ---- */

static void caps_parse_forms(void **state)
{
    (void)state;
    const char *bodies[] = {
        "AES\nPOSTPKIOperation\nSHA-256\nRenewal\nX-Vendor-Thing\n",
        "AES\r\nPOSTPKIOperation\r\nSHA-256\r\nRenewal\r\nX-Vendor-Thing\r\n",
        "aes\npostpkioperation\nsha-256\nRENEWAL\nX-Vendor-Thing",
        "  AES \r\n\r\n\tPOSTPKIOperation\n\nSHA-256\nRenewal\nX-Vendor-Thing\nx-vendor-thing\n",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        scep_caps c;
        scep_caps_parse((const uint8_t *)bodies[i], strlen(bodies[i]), &c);
        assert_int_equal(c.flags,
                         SCEP_CAP_AES | SCEP_CAP_POSTPKIOPERATION | SCEP_CAP_SHA256 | SCEP_CAP_RENEWAL);
        assert_int_equal(c.unknown_count, 1); /* kept once, as sent */
        assert_string_equal(c.unknown[0], "X-Vendor-Thing");
        assert_true(scep_caps_has(&c, SCEP_CAP_AES | SCEP_CAP_SHA256));
        assert_false(scep_caps_has(&c, SCEP_CAP_SHA512));
        assert_false(scep_caps_has(&c, SCEP_CAP_AES | SCEP_CAP_DES3));
        char out[256];
        scep_caps_format(&c, out, sizeof out);
        assert_string_equal(out, "AES\nPOSTPKIOperation\nRenewal\nSHA-256\nX-Vendor-Thing\n");
        scep_caps_clear(&c);
        assert_int_equal(c.flags, 0);
        assert_int_equal(c.unknown_count, 0);
    }
    /* every keyword of RFC 8894 Table 7 */
    const char *all = "AES\nDES3\nGetNextCACert\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\nSHA-384\nSHA-"
                      "512\nSCEPStandard\nUpdate\n";
    scep_caps c;
    scep_caps_parse((const uint8_t *)all, strlen(all), &c);
    assert_int_equal(c.flags, SCEP_CAP_AES | SCEP_CAP_DES3 | SCEP_CAP_GETNEXTCACERT |
                                  SCEP_CAP_POSTPKIOPERATION | SCEP_CAP_RENEWAL | SCEP_CAP_SHA1 |
                                  SCEP_CAP_SHA256 | SCEP_CAP_SHA384 | SCEP_CAP_SHA512 |
                                  SCEP_CAP_SCEPSTANDARD | SCEP_CAP_UPDATE);
    assert_int_equal(c.unknown_count, 0);
    char out[256];
    scep_caps_format(&c, out, sizeof out);
    scep_caps back;
    scep_caps_parse((const uint8_t *)out, strlen(out), &back);
    assert_int_equal(back.flags, c.flags);
    /* a short output buffer is cut at a keyword, never overrun */
    char tiny[12];
    scep_caps_format(&c, tiny, sizeof tiny);
    assert_string_equal(tiny, "AES\nDES3\n");
    scep_caps_clear(&back);
    scep_caps_clear(&c);
}

static void caps_empty_and_junk(void **state)
{
    (void)state;
    scep_caps c;
    scep_caps_parse((const uint8_t *)"", 0, &c);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.unknown_count, 0);
    char out[16] = "x";
    scep_caps_format(&c, out, sizeof out);
    assert_string_equal(out, "");
    scep_caps_clear(&c);
    scep_caps_parse((const uint8_t *)"\r\n \n", 4, &c);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.unknown_count, 0);
    scep_caps_clear(&c);
    /* binary junk: no keyword, nothing unprintable kept */
    const uint8_t junk[] = {0x30, 0x82, 0x01, 0x0a, 0xff, 0x00, 0x13, '\n', 0x80, 'A', 'E', 'S', 0x01};
    scep_caps_parse(junk, sizeof junk, &c);
    assert_int_equal(c.flags, 0);
    for (size_t i = 0; i < c.unknown_count; i++)
        for (const char *s = c.unknown[i]; *s; s++)
            assert_true(isprint((unsigned char)*s));
    scep_caps_clear(&c);
    /* NUL ends a keyword */
    scep_caps_parse((const uint8_t *)"AES\0DES3", 8, &c);
    assert_int_equal(c.flags, SCEP_CAP_AES | SCEP_CAP_DES3);
    scep_caps_clear(&c);
    /* an HTML page yields unknown words only, bounded in number and length */
    char page[8192];
    size_t n = 0;
    for (int i = 0; i < 200 && n + 40 < sizeof page; i++)
        n += (size_t)snprintf(page + n, sizeof page - n, "<td>word%d</td>\n", i);
    scep_caps_parse((const uint8_t *)page, n, &c);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.unknown_count, SCEP_CAPS_MAX_UNKNOWN);
    scep_caps_clear(&c);
    char longword[300];
    memset(longword, 'A', sizeof longword);
    scep_caps_parse((const uint8_t *)longword, sizeof longword, &c);
    assert_int_equal(c.unknown_count, 0);
    scep_caps_clear(&c);
}

static void caps_scepstandard_implies(void **state)
{
    (void)state;
    scep_caps c;
    scep_caps_parse((const uint8_t *)"SCEPStandard\n", 13, &c);
    assert_int_equal(c.flags, SCEP_CAP_SCEPSTANDARD);
    assert_true(scep_caps_has(&c, SCEP_CAP_AES));
    assert_true(scep_caps_has(&c, SCEP_CAP_POSTPKIOPERATION));
    assert_true(scep_caps_has(&c, SCEP_CAP_SHA256));
    assert_true(scep_caps_has(&c, SCEP_CAP_AES | SCEP_CAP_POSTPKIOPERATION | SCEP_CAP_SHA256));
    assert_false(scep_caps_has(&c, SCEP_CAP_SHA512));
    assert_false(scep_caps_has(&c, SCEP_CAP_DES3));
    assert_false(scep_caps_has(&c, SCEP_CAP_RENEWAL));
    scep_caps_clear(&c);
}

/* ---- GetCACert ---- */

static scep_ca_certs *ca_parse(const uint8_t *d, size_t len)
{
    scep_ca_certs *c = NULL;
    util_error err = {0};
    if (scep_ca_certs_parse(d, len, &c, &err) != 0)
        fail_msg("scep_ca_certs_parse: %s: %s", util_err_code(err.code), err.detail);
    return c;
}

static void cacert_single_der(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    uint8_t *der = h_cert_der(f->ca, &len);
    scep_ca_certs *c = ca_parse(der, len);
    assert_int_equal(sk_X509_num(c->all), 1);
    assert_int_equal(X509_cmp(c->ca, f->ca), 0);
    assert_ptr_equal(c->ra_encrypt, c->ca); /* CA mode */
    assert_ptr_equal(c->ra_sign, c->ca);
    assert_int_equal(scep_ca_certs_role(c, c->ca), SCEP_ROLE_CA);
    assert_string_equal(scep_cert_role_name(SCEP_ROLE_CA), "CA");
    scep_ca_certs_free(c);
    OPENSSL_free(der);
}

static void expect_ra_roles(fixture *f, scep_ca_certs *c)
{
    assert_int_equal(sk_X509_num(c->all), 3);
    assert_int_equal(X509_cmp(c->ca, f->ca), 0);
    assert_int_equal(X509_cmp(c->ra_encrypt, f->ra_enc), 0);
    assert_int_equal(X509_cmp(c->ra_sign, f->ra_sign), 0);
    for (int i = 0; i < 3; i++) {
        X509 *x = sk_X509_value(c->all, i);
        scep_cert_role want = !X509_cmp(x, f->ca)       ? SCEP_ROLE_CA
                              : !X509_cmp(x, f->ra_enc) ? SCEP_ROLE_RA_ENCRYPT
                                                        : SCEP_ROLE_RA_SIGN;
        assert_int_equal(scep_ca_certs_role(c, x), want);
    }
}

static void cacert_ra_every_order(void **state)
{
    fixture *f = *state;
    X509 *set[3] = {f->ca, f->ra_enc, f->ra_sign};
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int o = 0; o < 6; o++) {
        STACK_OF(X509) *s = h_stack(set[orders[o][0]], set[orders[o][1]], set[orders[o][2]], NULL);
        size_t len = 0;
        uint8_t *der = certs_only(s, NULL, &len);
        scep_ca_certs *c = ca_parse(der, len);
        expect_ra_roles(f, c);
        scep_ca_certs_free(c);
        /* the same from certificates already at hand */
        util_error err = {0};
        assert_int_equal(scep_ca_certs_from_stack(s, &c, &err), 0);
        expect_ra_roles(f, c);
        scep_ca_certs_free(c);
        OPENSSL_free(der);
        h_stack_free(s);
    }
    assert_string_equal(scep_cert_role_name(SCEP_ROLE_RA_ENCRYPT), "RA encryption");
    assert_string_equal(scep_cert_role_name(SCEP_ROLE_RA_SIGN), "RA signing");
}

static void cacert_ra_both_and_chain(void **state)
{
    fixture *f = *state;
    /* one RA certificate with both key usages (EJBCA, OpenXPKI) */
    X509 *ra = h_cert_issue(f->ca, f->ca_key, f->ra_enc_key, "CN=RA both",
                            KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    STACK_OF(X509) *s = h_stack(ra, f->ca, NULL);
    size_t len = 0;
    uint8_t *der = certs_only(s, NULL, &len);
    scep_ca_certs *c = ca_parse(der, len);
    assert_int_equal(X509_cmp(c->ca, f->ca), 0);
    assert_int_equal(X509_cmp(c->ra_encrypt, ra), 0);
    assert_ptr_equal(c->ra_encrypt, c->ra_sign);
    assert_int_equal(scep_ca_certs_role(c, c->ra_sign), SCEP_ROLE_RA_BOTH);
    scep_ca_certs_free(c);
    OPENSSL_free(der);
    h_stack_free(s);
    /* root -> issuing CA -> RAs: the issuing CA is the one that issued the RAs */
    EVP_PKEY *ik = h_key_ec("P-256");
    h_cert_spec spec = {.subject = "CN=Issuing CA", .ca = true, .key_usage = KU_KEY_CERT_SIGN | KU_CRL_SIGN};
    X509 *issuing = h_cert_make(&spec, ik, f->ca, f->ca_key);
    X509 *enc = h_cert_issue(issuing, ik, f->ra_enc_key, "CN=RA enc 2", KU_KEY_ENCIPHERMENT);
    X509 *sig = h_cert_issue(issuing, ik, f->ra_sign_key, "CN=RA sig 2", KU_DIGITAL_SIGNATURE);
    s = h_stack(f->ca, sig, issuing, enc, NULL);
    der = certs_only(s, NULL, &len);
    c = ca_parse(der, len);
    assert_int_equal(X509_cmp(c->ca, issuing), 0);
    assert_int_equal(X509_cmp(c->ra_encrypt, enc), 0);
    assert_int_equal(X509_cmp(c->ra_sign, sig), 0);
    for (int i = 0; i < sk_X509_num(c->all); i++)
        if (!X509_cmp(sk_X509_value(c->all, i), f->ca))
            assert_int_equal(scep_ca_certs_role(c, sk_X509_value(c->all, i)), SCEP_ROLE_CA_CHAIN);
    scep_ca_certs_free(c);
    OPENSSL_free(der);
    /* only CAs: the one nearest the end entities */
    STACK_OF(X509) *cas = h_stack(issuing, f->ca, NULL);
    der = certs_only(cas, NULL, &len);
    c = ca_parse(der, len);
    assert_int_equal(X509_cmp(c->ca, issuing), 0);
    scep_ca_certs_free(c);
    OPENSSL_free(der);
    h_stack_free(cas);
    h_stack_free(s);
    X509_free(enc);
    X509_free(sig);
    X509_free(issuing);
    X509_free(ra);
    EVP_PKEY_free(ik);
}

static void cacert_ca_without_key_encipherment(void **state)
{
    (void)state;
    /* like AD CS roots (cryptlib/scep_ca8.der): DS, keyCertSign, cRLSign, no KE */
    EVP_PKEY *k = h_key_rsa(2048);
    h_cert_spec spec = {.subject = "CN=qa-like root",
                        .ca = true,
                        .key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN};
    X509 *root = h_cert_make(&spec, k, NULL, NULL);
    size_t len = 0;
    uint8_t *der = h_cert_der(root, &len);
    scep_ca_certs *c = ca_parse(der, len);
    assert_int_equal(X509_cmp(c->ca, root), 0);
    assert_ptr_equal(c->ra_encrypt, c->ca);
    assert_int_equal(scep_ca_certs_role(c, c->ca), SCEP_ROLE_CA);
    scep_ca_certs_free(c);
    OPENSSL_free(der);
    X509_free(root);
    EVP_PKEY_free(k);
}

static void cacert_pem_input(void **state)
{
    fixture *f = *state;
    char *pem = NULL;
    size_t len = 0;
    util_error err = {0};
    STACK_OF(X509) *s = h_stack(f->ra_sign, f->ra_enc, f->ca, NULL);
    assert_int_equal(crypto_certs_to_pem(s, &pem, &len, &err), 0);
    scep_ca_certs *c = ca_parse((uint8_t *)pem, len);
    expect_ra_roles(f, c);
    scep_ca_certs_free(c);
    free(pem);
    /* PEM-wrapped certs-only PKCS#7 */
    size_t dlen = 0;
    uint8_t *der = certs_only(s, NULL, &dlen);
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)dlen);
    assert_non_null(cms);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_CMS(bio, cms), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    c = ca_parse((uint8_t *)data, (size_t)n);
    expect_ra_roles(f, c);
    scep_ca_certs_free(c);
    BIO_free(bio);
    CMS_ContentInfo_free(cms);
    OPENSSL_free(der);
    h_stack_free(s);
}

static void cacert_garbage(void **state)
{
    fixture *f = *state;
    scep_ca_certs *c = NULL;
    util_error err = {0};
    assert_int_equal(scep_ca_certs_parse((const uint8_t *)"garbage", 7, &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_PARSE);
    assert_int_equal(scep_ca_certs_parse((const uint8_t *)"", 0, &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_PARSE);
    const char *html = "<html><body>-----BEGIN nothing here</body></html>";
    assert_int_equal(scep_ca_certs_parse((const uint8_t *)html, strlen(html), &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_PARSE);
    /* a truncated certificate */
    size_t len = 0;
    uint8_t *der = h_cert_der(f->ca, &len);
    assert_int_equal(scep_ca_certs_parse(der, len - 1, &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_PARSE);
    /* a certificate followed by junk is not a certificate */
    uint8_t *longer = malloc(len + 3);
    memcpy(longer, der, len);
    memcpy(longer + len, "\x00\x01\x02", 3);
    assert_int_equal(scep_ca_certs_parse(longer, len + 3, &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_PARSE);
    free(longer);
    OPENSSL_free(der);
    /* a certs-only with no certificate */
    STACK_OF(X509) *none = sk_X509_new_null();
    der = certs_only(none, NULL, &len);
    assert_int_equal(scep_ca_certs_parse(der, len, &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_NO_CA);
    OPENSSL_free(der);
    sk_X509_free(none);
    /* end-entity certificates only: no CA */
    STACK_OF(X509) *ees = h_stack(f->ra_enc, f->ra_sign, NULL);
    der = certs_only(ees, NULL, &len);
    assert_int_equal(scep_ca_certs_parse(der, len, &c, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_NO_CA);
    OPENSSL_free(der);
    h_stack_free(ees);
    assert_null(c);
}

static void certs_only_round_trip(void **state)
{
    fixture *f = *state;
    X509_CRL *crl = h_crl_make(f->ca, f->ca_key, f->issued);
    STACK_OF(X509) *s = h_stack(f->issued, f->ca, NULL);
    size_t len = 0;
    uint8_t *der = certs_only(s, crl, &len);
    /* RFC 8894 §3.4: degenerate, content omitted, no signers */
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    assert_non_null(cms);
    assert_int_equal(CMS_is_detached(cms), 1);
    assert_int_equal(sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)), 0);
    CMS_ContentInfo_free(cms);
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    util_error err = {0};
    assert_int_equal(scep_certs_only_parse(der, len, &certs, &crls, &err), 0);
    /* certificates is a SET OF: DER sorts it, so compare as a set */
    assert_int_equal(sk_X509_num(certs), 2);
    assert_true(!X509_cmp(sk_X509_value(certs, 0), f->issued) ||
                !X509_cmp(sk_X509_value(certs, 1), f->issued));
    assert_true(!X509_cmp(sk_X509_value(certs, 0), f->ca) || !X509_cmp(sk_X509_value(certs, 1), f->ca));
    assert_int_equal(sk_X509_CRL_num(crls), 1);
    assert_int_equal(X509_CRL_cmp(sk_X509_CRL_value(crls, 0), crl), 0);
    h_stack_free(certs);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    /* a pkiMessage is a SignedData too, an EnvelopedData is not */
    assert_int_equal(scep_certs_only_parse(der, len - 5, &certs, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    OPENSSL_free(der);
    h_stack_free(s);
    X509_CRL_free(crl);
}

/* ---- pkiMessage round trips ---- */

static void pkcsreq_rsa_round_trip(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *rcpt = h_stack(f->ra_enc, NULL);
    static const struct {
        const char *cipher, *cipher_ln;
    } ciphers[] = {{"aes", "aes-128-cbc"}, {"des3", "des-ede3-cbc"}, {"aes256", "aes-256-cbc"}};
    const char *digests[] = {"sha1", "sha256", "sha512"};
    for (size_t ci = 0; ci < 3; ci++) {
        for (size_t di = 0; di < 3; di++) {
            scep_pki_message_params p;
            pkcsreq_params(f, &p, rcpt);
            p.cipher = scep_cipher_by_name(ciphers[ci].cipher);
            p.digest = scep_digest_by_name(digests[di]);
            p.signing_time = 1700000000 + (time_t)(ci * 3 + di);
            size_t len = 0;
            uint8_t *der = encode(&p, &len);
            scep_pki_message *m = parse(der, len, NULL);
            assert_true(m->signature_checked);
            assert_true(m->signature_valid);
            assert_int_equal(X509_cmp(m->signer, f->client), 0);
            assert_int_equal(m->type, SCEP_MSG_PKCSREQ);
            assert_string_equal(m->transaction_id, TID);
            assert_int_equal(m->sender_nonce_len, 16);
            assert_memory_equal(m->sender_nonce, NONCE, 16);
            assert_int_equal(m->recipient_nonce_len, 0);
            assert_int_equal(m->pki_status, SCEP_STATUS_NONE);
            assert_int_equal(m->fail_info, SCEP_FAIL_NONE);
            assert_null(m->fail_info_text);
            assert_null(m->ms_hresult);
            assert_int_equal(m->signing_time, p.signing_time);
            assert_string_equal(m->digest_name, digests[di]);
            assert_string_equal(m->signature_alg_name, "rsaEncryption");
            assert_int_equal(sk_X509_num(m->certs), 1); /* the signer, included */
            char cipher[64], kt[64];
            util_error err = {0};
            assert_int_equal(scep_envelope_describe(m->content, m->content_len, cipher, sizeof cipher, kt,
                                                    sizeof kt, &err),
                             0);
            assert_string_equal(cipher, ciphers[ci].cipher_ln);
            assert_string_equal(kt, "rsaEncryption");
            uint8_t *plain = NULL;
            size_t plain_len = 0;
            char used[64] = "";
            assert_int_equal(scep_envelope_open(m->content, m->content_len, f->ra_enc, f->ra_enc_key, &plain,
                                                &plain_len, used, sizeof used, &err),
                             0);
            assert_int_equal(plain_len, sizeof CSR_STANDIN);
            assert_memory_equal(plain, CSR_STANDIN, sizeof CSR_STANDIN);
            assert_string_equal(used, ciphers[ci].cipher_ln);
            OPENSSL_free(plain);
            /* not openable with another key */
            plain = NULL;
            assert_int_equal(scep_envelope_open(m->content, m->content_len, f->ra_sign, f->ra_sign_key,
                                                &plain, &plain_len, NULL, 0, &err),
                             -1);
            assert_int_equal(err.code, UTIL_ERR_RESPONSE_DECRYPT);
            assert_null(plain);
            scep_pki_message_free(m);
            OPENSSL_free(der);
        }
    }
    h_stack_free(rcpt);
}

static void pkcsreq_ec_signer(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *rcpt = h_stack(f->ra_enc, NULL);
    scep_pki_message_params p;
    pkcsreq_params(f, &p, rcpt);
    p.signer_cert = f->ec_client;
    p.signer_key = f->ec_client_key;
    p.digest = EVP_sha384();
    size_t len = 0;
    uint8_t *der = encode(&p, &len);
    scep_pki_message *m = parse(der, len, NULL);
    assert_true(m->signature_valid);
    assert_int_equal(X509_cmp(m->signer, f->ec_client), 0);
    assert_string_equal(m->digest_name, "sha384");
    assert_string_equal(m->signature_alg_name, "ecdsa-with-SHA384");
    scep_pki_message_free(m);
    OPENSSL_free(der);
    h_stack_free(rcpt);
}

/* The SUCCESS reply for the client: certs-only {CA, issued} in an envelope. */
static uint8_t *success_reply(fixture *f, scep_key_transport kt, const EVP_CIPHER *cipher, size_t *len)
{
    STACK_OF(X509) *content_certs = h_stack(f->ca, f->issued, NULL); /* CA first, as NDES does */
    STACK_OF(X509) *rcpt = h_stack(f->client, NULL);
    STACK_OF(X509) *extra = h_stack(f->ca, NULL);
    size_t clen = 0;
    uint8_t *content = certs_only(content_certs, NULL, &clen);
    scep_pki_message_params p;
    certrep_params(f, &p, SCEP_STATUS_SUCCESS);
    p.content = content;
    p.content_len = clen;
    p.recipients = rcpt;
    p.key_transport = kt;
    p.cipher = cipher;
    p.extra_certs = extra;
    uint8_t *der = encode(&p, len);
    OPENSSL_free(content);
    h_stack_free(content_certs);
    h_stack_free(rcpt);
    h_stack_free(extra);
    return der;
}

static void certrep_success(void **state)
{
    fixture *f = *state;
    static const struct {
        scep_key_transport kt;
        const char *kt_name;
    } cases[] = {{SCEP_KT_DEFAULT, "rsaEncryption"}, {SCEP_KT_RSA_OAEP, "rsaesOaep"}};
    STACK_OF(X509) *expected = h_stack(f->ra_sign, f->ca, NULL);
    for (size_t i = 0; i < 2; i++) {
        size_t len = 0;
        uint8_t *der = success_reply(f, cases[i].kt, NULL, &len);
        scep_pki_message *m = parse(der, len, f->getcacert);
        util_error err;
        assert_int_equal(check(m, expected, &err), 0);
        assert_int_equal(m->type, SCEP_MSG_CERTREP);
        assert_int_equal(m->pki_status, SCEP_STATUS_SUCCESS);
        assert_int_equal(m->fail_info, SCEP_FAIL_NONE);
        assert_int_equal(X509_cmp(m->signer, f->ra_sign), 0);
        assert_memory_equal(m->sender_nonce, CA_NONCE, 16);
        assert_int_equal(m->signing_time, 0); /* none asked for */
        assert_int_equal(sk_X509_num(m->certs), 2);
        char cipher[64], kt[64];
        assert_int_equal(
            scep_envelope_describe(m->content, m->content_len, cipher, sizeof cipher, kt, sizeof kt, &err),
            0);
        assert_string_equal(cipher, "aes-128-cbc");
        assert_string_equal(kt, cases[i].kt_name);
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        assert_int_equal(scep_envelope_open(m->content, m->content_len, f->client, f->client_key, &plain,
                                            &plain_len, NULL, 0, &err),
                         0);
        X509 *issued = NULL;
        STACK_OF(X509) *chain = NULL;
        X509_CRL *crl = (X509_CRL *)1;
        assert_int_equal(scep_certrep_content(plain, plain_len, f->client_key, &issued, &chain, &crl, &err),
                         0);
        assert_int_equal(X509_cmp(issued, f->issued), 0); /* picked by key although the CA came first */
        assert_int_equal(sk_X509_num(chain), 1);
        assert_int_equal(X509_cmp(sk_X509_value(chain, 0), f->ca), 0);
        assert_null(crl);
        X509_free(issued);
        h_stack_free(chain);
        OPENSSL_free(plain);
        scep_pki_message_free(m);
        OPENSSL_free(der);
    }
    h_stack_free(expected);
}

static void certrep_ec_key_agreement(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *content_certs = h_stack(f->ec_issued, f->ec_ca, NULL);
    STACK_OF(X509) *rcpt = h_stack(f->ec_client, NULL);
    size_t clen = 0;
    uint8_t *content = certs_only(content_certs, NULL, &clen);
    scep_pki_message_params p;
    certrep_params(f, &p, SCEP_STATUS_SUCCESS);
    p.signer_cert = f->ec_ca;
    p.signer_key = f->ec_ca_key;
    p.content = content;
    p.content_len = clen;
    p.recipients = rcpt;
    size_t len = 0;
    uint8_t *der = encode(&p, &len);
    STACK_OF(X509) *expected = h_stack(f->ec_ca, NULL);
    scep_pki_message *m = parse(der, len, expected);
    util_error err;
    assert_int_equal(check(m, expected, &err), 0);
    assert_string_equal(m->signature_alg_name, "ecdsa-with-SHA256");
    char cipher[64], kt[64];
    assert_int_equal(
        scep_envelope_describe(m->content, m->content_len, cipher, sizeof cipher, kt, sizeof kt, &err), 0);
    assert_string_equal(cipher, "aes-128-cbc");
    assert_string_equal(kt, "key agreement");
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(scep_envelope_open(m->content, m->content_len, f->ec_client, f->ec_client_key, &plain,
                                        &plain_len, NULL, 0, &err),
                     0);
    X509 *issued = NULL;
    assert_int_equal(scep_certrep_content(plain, plain_len, f->ec_client_key, &issued, NULL, NULL, &err), 0);
    assert_int_equal(X509_cmp(issued, f->ec_issued), 0);
    X509_free(issued);
    OPENSSL_free(plain);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    OPENSSL_free(content);
    h_stack_free(expected);
    h_stack_free(content_certs);
    h_stack_free(rcpt);
}

/* A single-DES envelope for rcpt, made with the legacy provider (our
 * encoder never makes one); NULL when that provider is not installed.
 * ber: streamed, with indefinite lengths, as some servers send. */
static uint8_t *des_envelope(STACK_OF(X509) * rcpt, bool ber, size_t *len)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    assert_non_null(ctx);
    OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(ctx, "legacy");
    OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(ctx, "default");
    uint8_t *env = NULL;
    if (legacy) {
        EVP_CIPHER *des = EVP_CIPHER_fetch(ctx, "DES-CBC", NULL);
        assert_non_null(des);
        BIO *in = BIO_new_mem_buf(CSR_STANDIN, sizeof CSR_STANDIN);
        CMS_ContentInfo *cms = CMS_encrypt_ex(rcpt, in, des, CMS_BINARY | (ber ? CMS_STREAM : 0), ctx, NULL);
        assert_non_null(cms);
        if (ber) {
            BIO *mem = BIO_new(BIO_s_mem());
            BIO *data = BIO_new_mem_buf(CSR_STANDIN, sizeof CSR_STANDIN);
            assert_int_equal(i2d_CMS_bio_stream(mem, cms, data, CMS_BINARY | CMS_STREAM), 1);
            char *p = NULL;
            long n = BIO_get_mem_data(mem, &p);
            assert_true(n > 0);
            env = OPENSSL_memdup(p, (size_t)n);
            *len = (size_t)n;
            BIO_free(data);
            BIO_free(mem);
        } else {
            int n = i2d_CMS_ContentInfo(cms, &env);
            assert_true(n > 0);
            *len = (size_t)n;
        }
        CMS_ContentInfo_free(cms);
        BIO_free(in);
        EVP_CIPHER_free(des);
    }
    OSSL_PROVIDER_unload(legacy);
    OSSL_PROVIDER_unload(deflt);
    OSSL_LIB_CTX_free(ctx);
    return env;
}

/* Re-encodes BER's indefinite lengths as definite ones and keeps every
 * constructed form, such as the OCTET STRING segments of the encrypted
 * content, which Go's pkcs7 (micromdm, step-ca) sends with definite
 * lengths. One-byte tags only, as in CMS. Returns the bytes written. */
static size_t ber_definite(const uint8_t **p, const uint8_t *end, uint8_t *out)
{
    assert_true(end - *p >= 2);
    uint8_t tag = *(*p)++;
    assert_int_not_equal(tag & 0x1f, 0x1f);
    size_t n = 0;
    uint8_t *body = NULL;
    if (**p == 0x80) { /* indefinite: children up to the end-of-contents */
        (*p)++;
        body = malloc((size_t)(end - *p));
        assert_non_null(body);
        while (!((*p)[0] == 0 && (*p)[1] == 0))
            n += ber_definite(p, end, body + n);
        *p += 2;
    } else {
        size_t len = **p & 0x7f, l = 0;
        if (*(*p)++ & 0x80)
            for (size_t i = 0; i < len; i++)
                l = l << 8 | *(*p)++;
        else
            l = len;
        assert_true((size_t)(end - *p) >= l);
        body = malloc(l ? l : 1);
        assert_non_null(body);
        memcpy(body, *p, l);
        *p += l;
        n = l;
    }
    size_t h = 0;
    out[h++] = tag;
    if (n < 128) {
        out[h++] = (uint8_t)n;
    } else {
        assert_true(n < 65536);
        out[h++] = n < 256 ? 0x81 : 0x82;
        if (n >= 256)
            out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, body, n);
    free(body);
    return h + n;
}

/* Opens env with cert and key (as a client, or as a server with mma);
 * returns the error code, 0 when it opened to CSR_STANDIN. */
static int des_open_as(const uint8_t *env, size_t len, X509 *cert, EVP_PKEY *key, bool mma)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    char used[64] = "";
    util_error err = {0};
    int rc = mma ? scep_envelope_open_mma(env, len, cert, key, &plain, &plain_len, used, sizeof used, &err)
                 : scep_envelope_open(env, len, cert, key, &plain, &plain_len, used, sizeof used, &err);
    if (rc != 0) {
        assert_null(plain);
        return err.code;
    }
    assert_int_equal(plain_len, sizeof CSR_STANDIN);
    assert_memory_equal(plain, CSR_STANDIN, plain_len);
    assert_string_equal(used, "des-cbc");
    OPENSSL_free(plain);
    return 0;
}

/* Single-DES envelope, as micromdm and step-ca reply: opened through the
 * legacy provider, never produced by our encoder. */
static void envelope_des_legacy(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *rcpt = h_stack(f->client, NULL);
    size_t n = 0;
    uint8_t *env = des_envelope(rcpt, false, &n);
    h_stack_free(rcpt);
    if (!env)
        skip(); /* the legacy provider is not installed */
    char cipher[64], kt[64];
    util_error err = {0};
    assert_int_equal(scep_envelope_describe(env, n, cipher, sizeof cipher, kt, sizeof kt, &err), 0);
    assert_string_equal(cipher, "des-cbc");
    assert_int_equal(des_open_as(env, n, f->client, f->client_key, false), 0); /* a client: two steps */
    assert_int_equal(des_open_as(env, n, f->client, f->client_key, true), 0);  /* a server */
    /* the right certificate with another key, another certificate */
    assert_int_equal(des_open_as(env, n, f->client, f->other_key, false), UTIL_ERR_RESPONSE_DECRYPT);
    assert_int_equal(des_open_as(env, n, f->other, f->other_key, false), UTIL_ERR_RESPONSE_DECRYPT);
    /* cut anywhere: an error, never a crash or a read past the end */
    for (size_t cut = 1; cut < n; cut += 37)
        assert_int_not_equal(des_open_as(env, cut, f->client, f->client_key, false), 0);
    OPENSSL_free(env);
    /* the default library context still refuses single DES for sending */
    assert_null(scep_cipher_by_name("des"));
}

/* Several recipients (ours not the first), BER with indefinite lengths
 * (the whole-CMS path), and definite lengths with the content in segments
 * (the two-step path): each recipient opens its own. */
static void envelope_des_recipients_ber(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *rcpt = h_stack(f->other, f->ra_enc, f->client, NULL);
    size_t n = 0, bn = 0;
    uint8_t *env = des_envelope(rcpt, false, &n);
    uint8_t *ber = env ? des_envelope(rcpt, true, &bn) : NULL;
    h_stack_free(rcpt);
    if (!env)
        skip(); /* the legacy provider is not installed */
    assert_non_null(ber);
    assert_int_equal(ber[1], 0x80); /* indefinite length indeed */
    assert_int_equal(des_open_as(env, n, f->client, f->client_key, false), 0);
    assert_int_equal(des_open_as(env, n, f->other, f->other_key, false), 0);
    assert_int_equal(des_open_as(env, n, f->ra_enc, f->ra_enc_key, false), 0);
    assert_int_equal(des_open_as(env, n, f->ca, f->ca_key, false), UTIL_ERR_RESPONSE_DECRYPT);
    assert_int_equal(des_open_as(env, n, f->client, f->other_key, false), UTIL_ERR_RESPONSE_DECRYPT);
    assert_int_equal(des_open_as(ber, bn, f->client, f->client_key, false), 0);
    assert_int_equal(des_open_as(ber, bn, f->ra_enc, f->ra_enc_key, true), 0);
    /* definite lengths with the content in segments: [0] constructed */
    uint8_t *seg = malloc(bn + 64);
    assert_non_null(seg);
    const uint8_t *q = ber;
    size_t sn = ber_definite(&q, ber + bn, seg);
    assert_ptr_equal(q, ber + bn);
    assert_int_not_equal(seg[1], 0x80);
    assert_int_equal(des_open_as(seg, sn, f->client, f->client_key, false), 0);
    assert_int_equal(des_open_as(seg, sn, f->client, f->other_key, false), UTIL_ERR_RESPONSE_DECRYPT);
    for (size_t cut = 1; cut < sn; cut += 29)
        assert_int_not_equal(des_open_as(seg, cut, f->client, f->client_key, false), 0);
    free(seg);
    OPENSSL_free(env);
    OPENSSL_free(ber);
}

static void pending_and_failure_content(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *expected = h_stack(f->ra_sign, NULL);
    int statuses[] = {SCEP_STATUS_PENDING, SCEP_STATUS_FAILURE};
    for (int s = 0; s < 2; s++) {
        for (int one = 0; one <= 1; one++) {
            scep_pki_message_params p;
            certrep_params(f, &p, statuses[s]);
            p.one_byte_content = one;
            p.include_signer_cert = false; /* as NDES */
            size_t len = 0;
            uint8_t *der = encode(&p, &len);
            scep_pki_message *m = parse(der, len, f->getcacert);
            assert_true(m->signature_checked);
            assert_true(m->signature_valid);
            assert_true(sk_X509_num(m->certs) <= 0); /* NULL or empty: none sent */
            assert_int_equal(m->pki_status, statuses[s]);
            assert_int_equal(m->content_len, (size_t)one);
            if (one)
                assert_int_equal(m->content[0], 0);
            else
                assert_null(m->content);
            util_error err;
            assert_int_equal(check(m, expected, &err), 0);
            if (statuses[s] == SCEP_STATUS_FAILURE) {
                assert_int_equal(m->fail_info, SCEP_FAIL_BAD_REQUEST);
                assert_int_equal(scep_failure_error(m), UTIL_ERR_FAIL_BAD_REQUEST);
            } else {
                assert_int_equal(m->fail_info, SCEP_FAIL_NONE);
            }
            /* a 00 byte is not an envelope */
            if (one) {
                char c[32], k[32];
                assert_int_equal(
                    scep_envelope_describe(m->content, m->content_len, c, sizeof c, k, sizeof k, &err), -1);
                assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
            }
            scep_pki_message_free(m);
            OPENSSL_free(der);
        }
    }
    h_stack_free(expected);
}

static void signing_time_optional(void **state)
{
    fixture *f = *state;
    time_t times[] = {0, 1700000000, 2524608000 /* 2050: GeneralizedTime */};
    for (size_t i = 0; i < 3; i++) {
        scep_pki_message_params p;
        certrep_params(f, &p, SCEP_STATUS_PENDING);
        p.signing_time = times[i];
        size_t len = 0;
        uint8_t *der = encode(&p, &len);
        scep_pki_message *m = parse(der, len, NULL);
        assert_true(m->signature_valid);
        assert_int_equal(m->signing_time, times[i]);
        /* no signingTime attribute at all when 0 (NDES omits it) */
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(m->cms), 0);
        int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
        assert_int_equal(idx >= 0, times[i] != 0);
        util_error err;
        assert_int_equal(check(m, NULL, &err), 0);
        scep_pki_message_free(m);
        OPENSSL_free(der);
    }
}

static void ms_attributes_and_fail_info_text(void **state)
{
    fixture *f = *state;
    scep_pki_message_params p;
    certrep_params(f, &p, SCEP_STATUS_FAILURE);
    p.ms_hresult = "-2146762480";
    p.ms_disposition = "Denied by Policy Module";
    p.fail_info_text = "Schl\xc3\xbcssel zu kurz: 1024 < 2048";
    p.one_byte_content = true;
    size_t len = 0;
    uint8_t *der = encode(&p, &len);
    scep_pki_message *m = parse(der, len, NULL);
    util_error err;
    assert_int_equal(check(m, NULL, &err), 0);
    assert_string_equal(m->ms_hresult, "-2146762480");
    assert_string_equal(m->ms_disposition, "Denied by Policy Module");
    assert_string_equal(m->fail_info_text, "Schl\xc3\xbcssel zu kurz: 1024 < 2048");
    assert_int_equal(m->fail_info, SCEP_FAIL_BAD_REQUEST);
    assert_int_equal(scep_failure_error(m), UTIL_ERR_FAIL_PASSWORD_USED);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* SUCCESS with the NDES disposition */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.ms_disposition = "Taken Under Submission";
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_string_equal(m->ms_disposition, "Taken Under Submission");
    assert_null(m->ms_hresult);
    assert_null(m->fail_info_text);
    scep_pki_message_free(m);
    OPENSSL_free(der);
}

static void check_transaction_and_nonces(void **state)
{
    fixture *f = *state;
    scep_pki_message_params p;
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    size_t len = 0;
    uint8_t *der = encode(&p, &len);
    scep_pki_message *m = parse(der, len, NULL);
    util_error err = {0};
    assert_int_equal(scep_certrep_check(m, NULL, "ANOTHER-ID", NONCE, 16, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TRANSACTION);
    assert_non_null(strstr(err.detail, "ANOTHER-ID"));
    uint8_t other[16];
    memcpy(other, NONCE, 16);
    other[15] ^= 1;
    assert_int_equal(scep_certrep_check(m, NULL, TID, other, 16, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_NONCE);
    assert_int_equal(scep_certrep_check(m, NULL, TID, NONCE, 8, &err), -1); /* length differs */
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_NONCE);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* no recipientNonce */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.recipient_nonce = NULL;
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(m->recipient_nonce_len, 0);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_NONCE);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* no senderNonce: allowed (RFC 8894 §3.3.2; jscep's scep_resp2) */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.sender_nonce = NULL;
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(m->sender_nonce_len, 0);
    assert_int_equal(check(m, NULL, &err), 0);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* an 8-byte nonce (Apple) is as good as 16 */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.recipient_nonce_len = 8;
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(scep_certrep_check(m, NULL, TID, NONCE, 8, &err), 0);
    scep_pki_message_free(m);
    OPENSSL_free(der);
}

static void check_signer(void **state)
{
    fixture *f = *state;
    scep_pki_message_params p;
    util_error err;
    /* signed by the RA, but only the CA is expected */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    size_t len = 0;
    uint8_t *der = encode(&p, &len);
    scep_pki_message *m = parse(der, len, NULL);
    assert_true(m->signature_valid);
    STACK_OF(X509) *only_ca = h_stack(f->ca, NULL);
    assert_int_equal(check(m, only_ca, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    assert_non_null(strstr(err.detail, "SCEP RA sign"));
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* signed by a stranger's valid self-signed certificate */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.signer_cert = f->other;
    p.signer_key = f->other_key;
    der = encode(&p, &len);
    m = parse(der, len, f->getcacert);
    assert_true(m->signature_valid);
    assert_int_equal(check(m, f->getcacert, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* no certificates in the reply (NDES): unknown without GetCACert's */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.include_signer_cert = false;
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_false(m->signature_checked);
    assert_false(m->signature_valid);
    assert_null(m->signer);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
    m = parse(der, len, only_ca); /* the wrong external certificates */
    assert_false(m->signature_checked);
    assert_int_equal(check(m, only_ca, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
    m = parse(der, len, f->getcacert); /* ... and with them it verifies */
    assert_true(m->signature_checked);
    assert_true(m->signature_valid);
    assert_int_equal(check(m, f->getcacert, &err), 0);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    h_stack_free(only_ca);
}

static void check_tampered(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    uint8_t *der = success_reply(f, SCEP_KT_DEFAULT, NULL, &len);
    util_error err;
    /* a bit of the signature */
    size_t sig_len = 0;
    long sig = h_signature_offset(der, len, &sig_len);
    assert_true(sig > 0);
    uint8_t *bad = h_flip_bit(der, len, (size_t)sig * 8 + 100);
    scep_pki_message *m = parse(bad, len, f->getcacert);
    assert_true(m->signature_checked);
    assert_false(m->signature_valid);
    assert_null(m->signer);
    assert_int_equal(check(m, f->getcacert, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNATURE);
    scep_pki_message_free(m);
    free(bad);
    /* a bit of the envelope (the signed content) */
    m = parse(der, len, NULL);
    long env = h_find(der, len, m->content, m->content_len);
    size_t env_len = m->content_len;
    scep_pki_message_free(m);
    assert_true(env > 0);
    bad = h_flip_bit(der, len, ((size_t)env + env_len - 20) * 8 + 3);
    m = parse(bad, len, f->getcacert);
    assert_false(m->signature_valid);
    assert_int_equal(check(m, f->getcacert, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNATURE);
    scep_pki_message_free(m);
    free(bad);
    /* another transactionID, re-signed by the right key: the check reads the signed value */
    size_t rlen = 0;
    uint8_t *re = h_resign(der, len, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, "OTHER", 5,
                           f->ra_sign_key, NULL, NULL, &rlen);
    m = parse(re, rlen, f->getcacert);
    assert_true(m->signature_valid);
    assert_string_equal(m->transaction_id, "OTHER");
    assert_int_equal(check(m, f->getcacert, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TRANSACTION);
    scep_pki_message_free(m);
    OPENSSL_free(re);
    /* pkiStatus changed to FAILURE and re-signed with another key */
    re = h_resign(der, len, "2.16.840.1.113733.1.9.3", V_ASN1_PRINTABLESTRING, "2", 1, f->other_key, NULL,
                  NULL, &rlen);
    m = parse(re, rlen, f->getcacert);
    assert_true(m->signature_checked);
    assert_false(m->signature_valid);
    assert_int_equal(check(m, f->getcacert, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNATURE);
    scep_pki_message_free(m);
    OPENSSL_free(re);
    OPENSSL_free(der);
    /* NDES-style reply without certificates, re-signed by an attacker who adds
     * a certificate with the RA's issuer and serial: it verifies against
     * the forged certificate, and the signer check rejects it */
    scep_pki_message_params p;
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.include_signer_cert = false;
    der = encode(&p, &len);
    char subject[256];
    h_cert_spec spec = {.subject = h_subject(f->ra_sign, subject, sizeof subject),
                        .serial = ASN1_INTEGER_get(X509_get0_serialNumber(f->ra_sign)),
                        .key_usage = KU_DIGITAL_SIGNATURE};
    X509 *forged = h_cert_make(&spec, f->other_key, f->ca, f->other_key);
    re = h_resign(der, len, "2.16.840.1.113733.1.9.3", V_ASN1_PRINTABLESTRING, "0", 1, f->other_key, NULL,
                  forged, &rlen);
    m = parse(re, rlen, f->getcacert);
    assert_true(m->signature_valid);
    assert_int_equal(X509_cmp(m->signer, forged), 0);
    assert_int_equal(check(m, f->getcacert, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_SIGNER);
    scep_pki_message_free(m);
    OPENSSL_free(re);
    OPENSSL_free(der);
    X509_free(forged);
}

static void check_type_and_status(void **state)
{
    fixture *f = *state;
    util_error err;
    size_t len = 0;
    /* a request where a reply was expected */
    STACK_OF(X509) *rcpt = h_stack(f->ra_enc, NULL);
    scep_pki_message_params p;
    pkcsreq_params(f, &p, rcpt);
    uint8_t *der = encode(&p, &len);
    scep_pki_message *m = parse(der, len, NULL);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TYPE);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    h_stack_free(rcpt);
    /* FAILURE without failInfo */
    certrep_params(f, &p, SCEP_STATUS_FAILURE);
    p.fail_info = SCEP_FAIL_NONE;
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TYPE);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* SUCCESS without content */
    certrep_params(f, &p, SCEP_STATUS_SUCCESS);
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* an unknown pkiStatus, and one that is not a number */
    certrep_params(f, &p, 7);
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(m->pki_status, 7);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TYPE);
    size_t rlen = 0;
    uint8_t *re = h_resign(der, len, "2.16.840.1.113733.1.9.3", V_ASN1_PRINTABLESTRING, "zero", 4,
                           f->ra_sign_key, NULL, NULL, &rlen);
    scep_pki_message_free(m);
    m = parse(re, rlen, NULL);
    assert_true(m->signature_valid);
    assert_int_equal(m->pki_status, -2);
    assert_int_equal(check(m, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_TYPE);
    scep_pki_message_free(m);
    OPENSSL_free(re);
    OPENSSL_free(der);
    /* failInfo values above 4 are kept as sent, not a parse error */
    certrep_params(f, &p, SCEP_STATUS_FAILURE);
    p.fail_info = 25;
    der = encode(&p, &len);
    m = parse(der, len, NULL);
    assert_int_equal(m->fail_info, 25);
    assert_int_equal(check(m, NULL, &err), 0);
    assert_int_equal(scep_failure_error(m), UTIL_ERR_FAIL_UNKNOWN);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    /* string types other than PrintableString, padded with blanks (old servers) */
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    der = encode(&p, &len);
    re = h_resign(der, len, "2.16.840.1.113733.1.9.7", V_ASN1_IA5STRING, " " TID " ", 66, f->ra_sign_key,
                  NULL, NULL, &rlen);
    m = parse(re, rlen, NULL);
    assert_string_equal(m->transaction_id, TID);
    assert_int_equal(check(m, NULL, &err), 0);
    scep_pki_message_free(m);
    OPENSSL_free(re);
    OPENSSL_free(der);
}

static void failure_error_mapping(void **state)
{
    (void)state;
    static const struct {
        int fail_info;
        const char *hresult;
        util_err want;
    } cases[] = {
        {SCEP_FAIL_BAD_ALG, NULL, UTIL_ERR_FAIL_BAD_ALG},
        {SCEP_FAIL_BAD_MESSAGE_CHECK, NULL, UTIL_ERR_FAIL_BAD_MESSAGE_CHECK},
        {SCEP_FAIL_BAD_REQUEST, NULL, UTIL_ERR_FAIL_BAD_REQUEST},
        {SCEP_FAIL_BAD_TIME, NULL, UTIL_ERR_FAIL_BAD_TIME},
        {SCEP_FAIL_BAD_CERT_ID, NULL, UTIL_ERR_FAIL_BAD_CERT_ID},
        {5, NULL, UTIL_ERR_FAIL_UNKNOWN},
        {SCEP_FAIL_NONE, NULL, UTIL_ERR_FAIL_UNKNOWN},
        {-2, NULL, UTIL_ERR_FAIL_UNKNOWN},
        /* NDES HRESULTs refine badRequest */
        {SCEP_FAIL_BAD_REQUEST, "-2146762480", UTIL_ERR_FAIL_PASSWORD_USED},    /* 0x800B0110 */
        {SCEP_FAIL_BAD_REQUEST, "-2147023728", UTIL_ERR_FAIL_PASSWORD_UNKNOWN}, /* 0x80070490 */
        {SCEP_FAIL_BAD_REQUEST, "-2146869244", UTIL_ERR_FAIL_PASSWORD_MISSING}, /* 0x80096004 */
        {SCEP_FAIL_BAD_REQUEST, "-2146875375", UTIL_ERR_FAIL_KEY_TOO_SHORT},    /* 0x80094811 */
        {SCEP_FAIL_BAD_REQUEST, "-2147024809", UTIL_ERR_FAIL_NOT_SUPPORTED},    /* 0x80070057 */
        {SCEP_FAIL_BAD_REQUEST, "0x80070057", UTIL_ERR_FAIL_NOT_SUPPORTED},
        {SCEP_FAIL_BAD_REQUEST, "-2147467259", UTIL_ERR_FAIL_BAD_REQUEST}, /* E_FAIL: no refinement */
        {SCEP_FAIL_BAD_REQUEST, "not a number", UTIL_ERR_FAIL_BAD_REQUEST},
        {SCEP_FAIL_BAD_TIME, "", UTIL_ERR_FAIL_BAD_TIME},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        scep_pki_message m;
        memset(&m, 0, sizeof m);
        m.type = SCEP_MSG_CERTREP;
        m.pki_status = SCEP_STATUS_FAILURE;
        m.fail_info = cases[i].fail_info;
        m.ms_hresult = (char *)cases[i].hresult;
        util_err got = scep_failure_error(&m);
        if (got != cases[i].want)
            fail_msg("failInfo %d, HRESULT %s: got %s, expected %s", cases[i].fail_info,
                     cases[i].hresult ? cases[i].hresult : "(none)", util_err_code(got),
                     util_err_code(cases[i].want));
    }
    assert_string_equal(scep_fail_info_name(SCEP_FAIL_BAD_CERT_ID), "badCertId");
    assert_string_equal(scep_fail_info_name(9), "unknown");
    assert_string_equal(scep_pki_status_name(SCEP_STATUS_PENDING), "PENDING");
    assert_string_equal(scep_message_type_name(SCEP_MSG_CERTPOLL), "CertPoll");
    assert_string_equal(scep_message_type_name(18), "unknown");
}

/* ---- messageData ---- */

static void message_data_round_trip(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    uint8_t *der = NULL;
    size_t len = 0;
    X509_NAME *issuer = NULL, *subject = NULL;
    assert_int_equal(scep_issuer_and_subject_encode(X509_get_subject_name(f->ca),
                                                    X509_get_subject_name(f->client), &der, &len, &err),
                     0);
    assert_int_equal(scep_issuer_and_subject_decode(der, len, &issuer, &subject, &err), 0);
    assert_int_equal(X509_NAME_cmp(issuer, X509_get_subject_name(f->ca)), 0);
    assert_int_equal(X509_NAME_cmp(subject, X509_get_subject_name(f->client)), 0);
    X509_NAME_free(issuer);
    X509_NAME_free(subject);
    issuer = subject = NULL;
    /* truncated, and with a trailing byte */
    assert_int_equal(scep_issuer_and_subject_decode(der, len - 1, &issuer, &subject, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, der, len);
    longer[len] = 0;
    assert_int_equal(scep_issuer_and_subject_decode(longer, len + 1, &issuer, &subject, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    assert_null(issuer);
    free(longer);
    /* IssuerAndSubject is not an IssuerAndSerialNumber */
    ASN1_INTEGER *serial = NULL;
    assert_int_equal(scep_issuer_and_serial_decode(der, len, &issuer, &serial, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    OPENSSL_free(der);
    /* IssuerAndSerialNumber, with a 20-byte serial */
    ASN1_INTEGER *big = ASN1_INTEGER_new();
    BIGNUM *bn = NULL;
    assert_true(BN_hex2bn(&bn, "7F0102030405060708090A0B0C0D0E0F10111213") > 0);
    assert_non_null(BN_to_ASN1_INTEGER(bn, big));
    BN_free(bn);
    assert_int_equal(scep_issuer_and_serial_encode(X509_get_subject_name(f->ca), big, &der, &len, &err), 0);
    assert_int_equal(scep_issuer_and_serial_decode(der, len, &issuer, &serial, &err), 0);
    assert_int_equal(X509_NAME_cmp(issuer, X509_get_subject_name(f->ca)), 0);
    assert_int_equal(ASN1_INTEGER_cmp(serial, big), 0);
    X509_NAME_free(issuer);
    ASN1_INTEGER_free(serial);
    assert_int_equal(
        scep_issuer_and_serial_decode((const uint8_t *)"\x30\x03\x02\x01\x01", 5, &issuer, &serial, &err),
        -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    OPENSSL_free(der);
    ASN1_INTEGER_free(big);
}

static void transaction_id_format(void **state)
{
    fixture *f = *state;
    char a[65], b[65], c[65];
    util_error err = {0};
    assert_int_equal(scep_transaction_id(f->client_key, a, &err), 0);
    assert_int_equal(strlen(a), 64);
    for (int i = 0; i < 64; i++)
        assert_true(isdigit((unsigned char)a[i]) || (a[i] >= 'A' && a[i] <= 'F'));
    /* SHA-256 of the DER SubjectPublicKeyInfo */
    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(f->client_key, &spki);
    uint8_t md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(spki, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    OPENSSL_free(spki);
    char want[65];
    util_hex(md, 32, want, 1);
    assert_string_equal(a, want);
    /* deterministic: the same for the key loaded back from PEM, or its certificate */
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(crypto_key_to_pem(f->client_key, &pem, &len, &err), 0);
    EVP_PKEY *again = NULL;
    assert_int_equal(crypto_key_load((uint8_t *)pem, len, &again, &err), 0);
    crypto_secret_free(pem, len);
    assert_int_equal(scep_transaction_id(again, b, &err), 0);
    assert_string_equal(a, b);
    EVP_PKEY_free(again);
    assert_int_equal(scep_transaction_id(X509_get0_pubkey(f->issued), b, &err), 0);
    assert_string_equal(a, b);
    /* another key, another ID; EC keys work too */
    assert_int_equal(scep_transaction_id(f->other_key, c, &err), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(scep_transaction_id(f->ec_client_key, c, &err), 0);
    assert_int_equal(strlen(c), 64);
}

static void certrep_content_selection(void **state)
{
    fixture *f = *state;
    X509 *someone = h_cert_issue(f->ca, f->ca_key, f->other_key, "CN=someone", KU_DIGITAL_SIGNATURE);
    X509_CRL *crl = h_crl_make(f->ca, f->ca_key, someone);
    STACK_OF(X509) *s = h_stack(f->ca, someone, f->issued, NULL);
    size_t len = 0;
    uint8_t *der = certs_only(s, crl, &len);
    util_error err = {0};
    X509 *issued = NULL;
    STACK_OF(X509) *chain = NULL;
    X509_CRL *got_crl = NULL;
    /* by key: the third certificate */
    assert_int_equal(scep_certrep_content(der, len, f->client_key, &issued, &chain, &got_crl, &err), 0);
    assert_int_equal(X509_cmp(issued, f->issued), 0);
    assert_int_equal(sk_X509_num(chain), 2);
    for (int i = 0; i < 2; i++)
        assert_int_not_equal(X509_cmp(sk_X509_value(chain, i), f->issued), 0);
    assert_non_null(got_crl);
    assert_int_equal(X509_CRL_cmp(got_crl, crl), 0);
    X509_free(issued);
    h_stack_free(chain);
    X509_CRL_free(got_crl);
    /* without a key: the first end-entity certificate */
    assert_int_equal(scep_certrep_content(der, len, NULL, &issued, NULL, NULL, &err), 0);
    assert_int_equal(X509_cmp(issued, someone), 0);
    X509_free(issued);
    issued = NULL;
    /* a key with no certificate in the reply */
    assert_int_equal(scep_certrep_content(der, len, f->ec_client_key, &issued, NULL, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_NO_CERT);
    assert_null(issued);
    /* GetCRL-style: only the CRL is wanted */
    got_crl = NULL;
    assert_int_equal(scep_certrep_content(der, len, NULL, NULL, NULL, &got_crl, &err), 0);
    assert_non_null(got_crl);
    X509_CRL_free(got_crl);
    /* not a certs-only */
    assert_int_equal(
        scep_certrep_content((const uint8_t *)"\x04\x01\x00", 3, NULL, &issued, NULL, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    OPENSSL_free(der);
    h_stack_free(s);
    X509_CRL_free(crl);
    X509_free(someone);
}

static void parse_text_forms_and_wrong_types(void **state)
{
    fixture *f = *state;
    scep_pki_message_params p;
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    size_t len = 0;
    uint8_t *der = encode(&p, &len);
    /* PEM */
    const unsigned char *q = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &q, (long)len);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_CMS(bio, cms), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    scep_pki_message *m = parse((uint8_t *)pem, (size_t)pem_len, NULL);
    assert_true(m->signature_valid);
    assert_string_equal(m->transaction_id, TID);
    scep_pki_message_free(m);
    BIO_free(bio);
    CMS_ContentInfo_free(cms);
    /* base64 with line breaks and URL escapes, as in a GET query */
    char *b64 = util_base64_encode(der, len);
    assert_non_null(b64);
    int n = (int)strlen(b64);
    char *escaped = malloc((size_t)n * 3 + 64);
    size_t e = 0;
    for (int i = 0; i < n; i++) {
        if (i && i % 64 == 0)
            escaped[e++] = '\n';
        if (b64[i] == '+' || b64[i] == '/' || b64[i] == '=')
            e += (size_t)sprintf(escaped + e, "%%%02X", (unsigned char)b64[i]);
        else
            escaped[e++] = b64[i];
    }
    escaped[e] = '\0';
    m = parse((uint8_t *)escaped, e, NULL);
    assert_true(m->signature_valid);
    assert_string_equal(m->transaction_id, TID);
    scep_pki_message_free(m);
    free(escaped);
    free(b64);
    /* not a pkiMessage */
    util_error err = {0};
    m = NULL;
    assert_int_equal(scep_pki_message_parse((const uint8_t *)"hello", 5, NULL, &m, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    assert_int_equal(scep_pki_message_parse((const uint8_t *)"", 0, NULL, &m, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    /* a certs-only SignedData has no SignerInfo */
    size_t clen = 0;
    uint8_t *co = certs_only(f->getcacert, NULL, &clen);
    assert_int_equal(scep_pki_message_parse(co, clen, NULL, &m, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    OPENSSL_free(co);
    /* an EnvelopedData is not a SignedData */
    m = parse(der, len, NULL);
    OPENSSL_free(der);
    STACK_OF(X509) *rcpt = h_stack(f->ra_enc, NULL);
    pkcsreq_params(f, &p, rcpt);
    der = encode(&p, &len);
    scep_pki_message *req = parse(der, len, NULL);
    assert_int_equal(scep_pki_message_parse(req->content, req->content_len, NULL, &m, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_RESPONSE_PARSE);
    assert_non_null(strstr(err.detail, "not a SignedData"));
    scep_pki_message_free(req);
    scep_pki_message_free(m);
    OPENSSL_free(der);
    h_stack_free(rcpt);
    scep_pki_message_free(NULL);
}

static void encode_rejects_incomplete(void **state)
{
    fixture *f = *state;
    scep_pki_message_params p;
    uint8_t *der = NULL;
    size_t len = 0;
    util_error err = {0};
    pkcsreq_params(f, &p, NULL); /* content but no recipient */
    assert_int_equal(scep_pki_message_encode(&p, &der, &len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CACERT_NO_RECIPIENT);
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.signer_key = NULL;
    assert_int_equal(scep_pki_message_encode(&p, &der, &len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INTERNAL);
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.transaction_id = NULL;
    assert_int_equal(scep_pki_message_encode(&p, &der, &len, &err), -1);
    certrep_params(f, &p, SCEP_STATUS_PENDING);
    p.signer_key = f->other_key; /* does not match the certificate */
    assert_int_equal(scep_pki_message_encode(&p, &der, &len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_KEY);
    assert_null(der);
}

static void algorithm_names(void **state)
{
    (void)state;
    assert_int_equal(EVP_MD_get_type(scep_digest_by_name("SHA-256")), NID_sha256);
    assert_int_equal(EVP_MD_get_type(scep_digest_by_name("sha1")), NID_sha1);
    assert_int_equal(EVP_MD_get_type(scep_digest_by_name("sha384")), NID_sha384);
    assert_int_equal(EVP_MD_get_type(scep_digest_by_name("Sha512")), NID_sha512);
    assert_null(scep_digest_by_name("md5"));
    assert_null(scep_digest_by_name(NULL));
    assert_int_equal(EVP_CIPHER_get_nid(scep_cipher_by_name("aes")), NID_aes_128_cbc);
    assert_int_equal(EVP_CIPHER_get_nid(scep_cipher_by_name("AES256")), NID_aes_256_cbc);
    assert_int_equal(EVP_CIPHER_get_nid(scep_cipher_by_name("3des")), NID_des_ede3_cbc);
    assert_null(scep_cipher_by_name("rc2"));
    assert_string_equal(scep_digest_short_name(EVP_sha512()), "sha512");
    assert_string_equal(scep_digest_short_name(NULL), "unknown");
    assert_string_equal(scep_cipher_short_name(EVP_des_ede3_cbc()), "des3");
    assert_string_equal(scep_cipher_short_name(EVP_aes_192_cbc()), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(caps_parse_forms),
        cmocka_unit_test(caps_empty_and_junk),
        cmocka_unit_test(caps_scepstandard_implies),
        cmocka_unit_test(cacert_single_der),
        cmocka_unit_test(cacert_ra_every_order),
        cmocka_unit_test(cacert_ra_both_and_chain),
        cmocka_unit_test(cacert_ca_without_key_encipherment),
        cmocka_unit_test(cacert_pem_input),
        cmocka_unit_test(cacert_garbage),
        cmocka_unit_test(certs_only_round_trip),
        cmocka_unit_test(pkcsreq_rsa_round_trip),
        cmocka_unit_test(pkcsreq_ec_signer),
        cmocka_unit_test(certrep_success),
        cmocka_unit_test(certrep_ec_key_agreement),
        cmocka_unit_test(envelope_des_legacy),
        cmocka_unit_test(envelope_des_recipients_ber),
        cmocka_unit_test(pending_and_failure_content),
        cmocka_unit_test(signing_time_optional),
        cmocka_unit_test(ms_attributes_and_fail_info_text),
        cmocka_unit_test(check_transaction_and_nonces),
        cmocka_unit_test(check_signer),
        cmocka_unit_test(check_tampered),
        cmocka_unit_test(check_type_and_status),
        cmocka_unit_test(failure_error_mapping),
        cmocka_unit_test(message_data_round_trip),
        cmocka_unit_test(transaction_id_format),
        cmocka_unit_test(certrep_content_selection),
        cmocka_unit_test(parse_text_forms_and_wrong_types),
        cmocka_unit_test(encode_rejects_incomplete),
        cmocka_unit_test(algorithm_names),
    };
    return cmocka_run_group_tests_name("scep", tests, setup, teardown);
}
