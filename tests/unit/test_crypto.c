/* src/crypto: key specs and generation, CSRs, the self-signed signer,
 * names, fingerprints, certificate inspection and verification. */
#include "helpers.h"

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "util/file.h"

typedef struct fixture {
    EVP_PKEY *rsa, *ec256, *ca_key, *other_ca_key;
    X509 *ca, *other_ca;
    char *dir;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->rsa = h_key_rsa(2048);
    f->ec256 = h_key_ec("P-256");
    f->ca_key = h_key_rsa(2048);
    f->other_ca_key = h_key_ec("P-256");
    f->ca = h_ca_new(f->ca_key, "CN=Crypto Test CA,O=Example,C=US");
    f->other_ca = h_ca_new(f->other_ca_key, "CN=Other CA");
    f->dir = h_tempdir();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    h_rmtree(f->dir);
    free(f->dir);
    X509_free(f->ca);
    X509_free(f->other_ca);
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->ec256);
    EVP_PKEY_free(f->ca_key);
    EVP_PKEY_free(f->other_ca_key);
    free(f);
    return 0;
}

/* ---- key specs and keys ---- */

static void key_spec_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        crypto_key_alg alg;
        int bits;
        const char *canon;
    } cases[] = {
        {"rsa:2048", CRYPTO_KEY_RSA, 2048, "rsa:2048"},    {"rsa", CRYPTO_KEY_RSA, 2048, "rsa:2048"},
        {"RSA:4096", CRYPTO_KEY_RSA, 4096, "rsa:4096"},    {"rsa:1024", CRYPTO_KEY_RSA, 1024, "rsa:1024"},
        {"rsa:3072", CRYPTO_KEY_RSA, 3072, "rsa:3072"},    {"ec:P-256", CRYPTO_KEY_EC, 256, "ec:P-256"},
        {"ec:prime256v1", CRYPTO_KEY_EC, 256, "ec:P-256"}, {"ec", CRYPTO_KEY_EC, 256, "ec:P-256"},
        {"ec:P-384", CRYPTO_KEY_EC, 384, "ec:P-384"},      {"ecdsa:384", CRYPTO_KEY_EC, 384, "ec:P-384"},
        {"ec:secp384r1", CRYPTO_KEY_EC, 384, "ec:P-384"},  {"ECDSA:p-256", CRYPTO_KEY_EC, 256, "ec:P-256"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        crypto_key_spec s = {0, 0};
        util_error err = {0};
        if (crypto_key_spec_parse(cases[i].text, &s, &err) != 0)
            fail_msg("\"%s\" rejected: %s", cases[i].text, err.detail);
        assert_int_equal(s.alg, cases[i].alg);
        assert_int_equal(s.bits, cases[i].bits);
        char canon[32];
        crypto_key_spec_format(&s, canon, sizeof canon);
        assert_string_equal(canon, cases[i].canon);
    }
}

static void key_spec_invalid(void **state)
{
    (void)state;
    const char *bad[] = {"rsa:512",  "rsa:2047", "rsa:abc", "rsa:0",   "ec:P-521",  "ec:P-255",
                         "dsa:1024", "ed25519",  "",        "rsa2048", "ecc:P-256", ":2048"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        crypto_key_spec s = {CRYPTO_KEY_RSA, 1234};
        util_error err = {0};
        if (crypto_key_spec_parse(bad[i], &s, &err) != -1)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(err.code, UTIL_ERR_KEY_GENERATION);
        assert_int_equal(s.bits, 1234); /* not written on failure */
    }
    crypto_key_spec s;
    util_error err = {0};
    assert_int_equal(crypto_key_spec_parse(NULL, &s, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_KEY_GENERATION);
}

static void key_generate_each(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        const char *desc;
        int bits;
    } cases[] = {
        {"rsa:2048", "RSA 2048", 2048},
        {"ec:P-256", "EC P-256", 256},
        {"ec:P-384", "EC P-384", 384},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        crypto_key_spec s;
        util_error err = {0};
        EVP_PKEY *k = NULL;
        assert_int_equal(crypto_key_spec_parse(cases[i].spec, &s, &err), 0);
        assert_int_equal(crypto_key_generate(&s, &k, &err), 0);
        assert_int_equal(EVP_PKEY_get_bits(k), cases[i].bits);
        char desc[64];
        crypto_key_describe(k, desc, sizeof desc);
        assert_string_equal(desc, cases[i].desc);
        EVP_PKEY_free(k);
    }
    char desc[16];
    crypto_key_describe(NULL, desc, sizeof desc);
    assert_string_equal(desc, "none");
}

static void key_pem_round_trip_and_file(void **state)
{
    fixture *f = *state;
    EVP_PKEY *keys[] = {f->rsa, f->ec256};
    for (size_t i = 0; i < 2; i++) {
        char *pem = NULL;
        size_t len = 0;
        util_error err = {0};
        assert_int_equal(crypto_key_to_pem(keys[i], &pem, &len, &err), 0);
        assert_int_equal(strlen(pem), len);
        assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0); /* PKCS#8 */
        EVP_PKEY *back = NULL;
        assert_int_equal(crypto_key_load((uint8_t *)pem, len, &back, &err), 0);
        assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
        assert_int_equal(EVP_PKEY_get_bits(back), EVP_PKEY_get_bits(keys[i]));
        EVP_PKEY_free(back);
        crypto_secret_free(pem, len);
        /* the file is written 0600 and loads back */
        char name[32];
        snprintf(name, sizeof name, "key%zu.pem", i);
        size_t plen = strlen(f->dir) + strlen(name) + 2;
        char *path = malloc(plen);
        assert_non_null(path);
        snprintf(path, plen, "%s/%s", f->dir, name);
        mode_t old = umask(0);
        assert_int_equal(crypto_key_write_file(path, keys[i], &err), 0);
        umask(old);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(crypto_key_load_file(path, &back, &err), 0);
        assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
        EVP_PKEY_free(back);
        free(path);
    }
    /* DER (PKCS#1) loads too; garbage and public keys do not */
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(f->rsa, &der);
    assert_true(n > 0);
    EVP_PKEY *back = NULL;
    util_error err = {0};
    assert_int_equal(crypto_key_load(der, (size_t)n, &back, &err), 0);
    assert_int_equal(EVP_PKEY_eq(back, f->rsa), 1);
    EVP_PKEY_free(back);
    OPENSSL_free(der);
    back = NULL;
    assert_int_equal(crypto_key_load((const uint8_t *)"not a key", 9, &back, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_KEY);
    assert_null(back);
    der = NULL;
    n = i2d_PUBKEY(f->rsa, &der);
    assert_int_equal(crypto_key_load(der, (size_t)n, &back, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_KEY);
    OPENSSL_free(der);
    assert_int_equal(crypto_key_load_file("/nonexistent/key.pem", &back, &err), -1);
    assert_true(err.code == UTIL_ERR_INPUT_FILE || err.code == UTIL_ERR_INPUT_KEY);
}

static char *pem_of(EVP_PKEY *key, int form)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    if (form == 0)
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL), 1);
    else if (form == 1)
        assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL), 1);
    else if (form == 2)
        assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, key, EVP_aes_128_cbc(), NULL, 0, NULL, "secret"),
                         1);
    else if (form == 3)
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, key, EVP_aes_128_cbc(),
                                                              (unsigned char *)"secret", 6, NULL, NULL),
                         1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(b, key), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *copy = strndup(data, (size_t)n);
    assert_non_null(copy);
    BIO_free(b);
    return copy;
}

/* Each PEM form loads to the same key, whether its label sends it to one
 * decoder chain (PKCS#1, SEC 1, PKCS#8 RSA and EC) or to the search over
 * every decoder (Ed25519, encrypted or mislabelled keys). */
static void key_load_pem_forms(void **state)
{
    fixture *f = *state;
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    EVP_PKEY *keys[] = {f->rsa, f->ec256, ed};
    for (size_t i = 0; i < 3; i++) {
        for (int form = 0; form < 5; form++) {
            if (i == 2 && (form == 0 || form == 3))
                continue; /* Ed25519 has no traditional form */
            char *pem = pem_of(keys[i], form);
            EVP_PKEY *back = NULL;
            util_error err = {0};
            int rc = crypto_key_load((uint8_t *)pem, strlen(pem), &back, &err);
            if (form <= 1) {
                assert_int_equal(rc, 0);
                assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
                assert_int_equal(EVP_PKEY_get_bits(back), EVP_PKEY_get_bits(keys[i]));
                /* it signs: the private half is there */
                assert_true(EVP_PKEY_get_size(back) > 0);
            } else {
                assert_int_equal(rc, -1); /* encrypted: no passphrase here; public: no private key */
                assert_int_equal(err.code, UTIL_ERR_INPUT_KEY);
                assert_null(back);
            }
            EVP_PKEY_free(back);
            free(pem);
        }
    }
    /* an RSA key under the EC label, an EC key under the RSA label */
    const char *swap[][2] = {{"RSA PRIVATE KEY", "EC PRIVATE KEY"}, {"EC PRIVATE KEY", "RSA PRIVATE KEY"}};
    for (size_t i = 0; i < 2; i++) {
        char *pem = pem_of(keys[i], 0);
        /* the label appears twice (BEGIN, END) and is as long as the other one
         * give or take a few characters: rebuild the text around it */
        char *first = strstr(pem, swap[i][0]), *second = first ? strstr(first + 1, swap[i][0]) : NULL;
        assert_non_null(second);
        size_t n = strlen(pem) + 16;
        char *moved = malloc(n);
        assert_non_null(moved);
        size_t lab = strlen(swap[i][0]);
        snprintf(moved, n, "%.*s%s%.*s%s%s", (int)(first - pem), pem, swap[i][1], (int)(second - first - lab),
                 first + lab, swap[i][1], second + lab);
        EVP_PKEY *back = NULL;
        util_error err = {0};
        if (crypto_key_load((uint8_t *)moved, strlen(moved), &back, &err) == 0)
            assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1); /* the general search may still find it */
        else
            assert_int_equal(err.code, UTIL_ERR_INPUT_KEY);
        EVP_PKEY_free(back);
        free(moved);
        free(pem);
    }
    EVP_PKEY_free(ed);
}

/* ---- CSR ---- */

static X509_REQ *build_csr(const crypto_csr_params *p, EVP_PKEY *key)
{
    X509_REQ *req = NULL;
    util_error err = {0};
    if (crypto_csr_build(p, key, &req, &err) != 0)
        fail_msg("crypto_csr_build: %s: %s", util_err_code(err.code), err.detail);
    assert_int_equal(X509_REQ_verify(req, key), 1);
    return req;
}

static X509_EXTENSION *req_ext(STACK_OF(X509_EXTENSION) * exts, const char *oid)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    X509_EXTENSION *found = NULL;
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
        if (OBJ_cmp(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i)), o) == 0)
            found = sk_X509_EXTENSION_value(exts, i);
    ASN1_OBJECT_free(o);
    return found;
}

static void csr_subject_and_signature(void **state)
{
    fixture *f = *state;
    crypto_csr_params p = {.common_name = "printer-1.example.com",
                           .organization = "Example Corp",
                           .country = "DE",
                           .org_unit = "IT"};
    EVP_PKEY *keys[] = {f->rsa, f->ec256};
    for (int i = 0; i < 2; i++) {
        X509_REQ *req = build_csr(&p, keys[i]);
        char subject[256];
        crypto_name_oneline(X509_REQ_get_subject_name(req), subject, sizeof subject);
        assert_string_equal(subject, "CN=printer-1.example.com,OU=IT,O=Example Corp,C=DE");
        EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
        assert_int_equal(EVP_PKEY_eq(pub, keys[i]), 1);
        /* signed with SHA-256 by default */
        int md_nid = 0, pk_nid = 0;
        assert_int_equal(OBJ_find_sigid_algs(X509_REQ_get_signature_nid(req), &md_nid, &pk_nid), 1);
        assert_int_equal(md_nid, NID_sha256);
        /* verifies with its own key, not with another */
        assert_int_equal(X509_REQ_verify(req, keys[1 - i]) == 1, 0);
        X509_REQ_free(req);
    }
    p.digest = EVP_sha512();
    X509_REQ *req = build_csr(&p, f->rsa);
    assert_int_equal(X509_REQ_get_signature_nid(req), NID_sha512WithRSAEncryption);
    X509_REQ_free(req);
    /* a full subject overrides CN/O */
    crypto_csr_params q = {.common_name = "ignored", .subject = "CN=full,O=Sub\\, Inc.,C=US"};
    req = build_csr(&q, f->rsa);
    char subject[256];
    crypto_name_oneline(X509_REQ_get_subject_name(req), subject, sizeof subject);
    /* the comma form is RFC 4514 order, as the one-line form prints it */
    assert_string_equal(subject, "CN=full,O=Sub\\, Inc.,C=US");
    X509_REQ_free(req);
}

/* Renewal: subject (exactly, as NDES compares it), SANs and key usage come
 * from the old certificate unless given. */
static void csr_renew_from(void **state)
{
    fixture *f = *state;
    X509 *old =
        h_cert_issue(f->ca, f->ca_key, f->rsa, "CN=printer/7,O=Ex\\, Inc.,C=US", KU_DIGITAL_SIGNATURE);
    GENERAL_NAMES *sans = GENERAL_NAMES_new();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
    ASN1_STRING_set(uri, "https://a.example/x,y", -1); /* a comma inside a name */
    GENERAL_NAME_set0_value(g, GEN_URI, uri);
    sk_GENERAL_NAME_push(sans, g);
    assert_int_equal(X509_add1_ext_i2d(old, NID_subject_alt_name, sans, 0, 0), 1);
    GENERAL_NAMES_free(sans);
    crypto_csr_params p = {.renew_from = old};
    X509_REQ *req = build_csr(&p, f->ec256);
    assert_int_equal(X509_NAME_cmp(X509_REQ_get_subject_name(req), X509_get_subject_name(old)), 0);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    ASN1_BIT_STRING *ku = X509V3_get_d2i(exts, NID_key_usage, NULL, NULL);
    assert_non_null(ku);
    assert_true(ASN1_BIT_STRING_get_bit(ku, 0));  /* digitalSignature, as the old one */
    assert_false(ASN1_BIT_STRING_get_bit(ku, 2)); /* not keyEncipherment */
    GENERAL_NAMES *got = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_non_null(got);
    assert_int_equal(sk_GENERAL_NAME_num(got), 1);
    int type;
    ASN1_STRING *v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(got, 0), &type);
    assert_int_equal(type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(v), "https://a.example/x,y");
    GENERAL_NAMES_free(got);
    ASN1_BIT_STRING_free(ku);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    /* what is given wins */
    crypto_csr_params q = {
        .renew_from = old, .common_name = "new", .sans = {"dns:new.example"}, .san_count = 1};
    req = build_csr(&q, f->ec256);
    char subject[128];
    crypto_name_oneline(X509_REQ_get_subject_name(req), subject, sizeof subject);
    assert_string_equal(subject, "CN=new");
    exts = X509_REQ_get_extensions(req);
    got = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(got), 1);
    v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(got, 0), &type);
    assert_int_equal(type, GEN_DNS);
    GENERAL_NAMES_free(got);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    X509_free(old);
}

static void csr_bad_subject(void **state)
{
    fixture *f = *state;
    X509_REQ *req = NULL;
    util_error err = {0};
    crypto_csr_params p = {.common_name = ""};
    assert_int_equal(crypto_csr_build(&p, f->rsa, &req, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INVALID_SUBJECT);
    crypto_csr_params q = {.common_name = "x", .country = "DEU"};
    assert_int_equal(crypto_csr_build(&q, f->rsa, &req, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INVALID_SUBJECT);
    crypto_csr_params r = {.subject = "CN"};
    assert_int_equal(crypto_csr_build(&r, f->rsa, &req, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INVALID_SUBJECT);
    assert_null(req);
}

static void csr_sans_of_each_type(void **state)
{
    fixture *f = *state;
    crypto_csr_params p = {.common_name = "host",
                           .sans = {"dns:host.example.com", "ip:192.0.2.7", "ip:2001:db8::1",
                                    "email:ops@example.com", "uri:https://example.com/dev/1",
                                    "DNS:UPPER.example"},
                           .san_count = 6};
    X509_REQ *req = build_csr(&p, f->rsa);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    X509_EXTENSION *ext = req_ext(exts, "2.5.29.17");
    assert_non_null(ext);
    GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
    assert_non_null(names);
    assert_int_equal(sk_GENERAL_NAME_num(names), 6);
    int type;
    ASN1_STRING *v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names, 0), &type);
    assert_int_equal(type, GEN_DNS);
    assert_string_equal((const char *)ASN1_STRING_get0_data(v), "host.example.com");
    v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names, 1), &type);
    assert_int_equal(type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(v), 4);
    assert_memory_equal(ASN1_STRING_get0_data(v), "\xc0\x00\x02\x07", 4);
    v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names, 2), &type);
    assert_int_equal(type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(v), 16);
    uint8_t v6[16];
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", v6), 1);
    assert_memory_equal(ASN1_STRING_get0_data(v), v6, 16);
    v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names, 3), &type);
    assert_int_equal(type, GEN_EMAIL);
    assert_string_equal((const char *)ASN1_STRING_get0_data(v), "ops@example.com");
    v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names, 4), &type);
    assert_int_equal(type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(v), "https://example.com/dev/1");
    v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names, 5), &type);
    assert_int_equal(type, GEN_DNS);
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
}

static void csr_invalid_san(void **state)
{
    fixture *f = *state;
    const char *bad[] = {"host.example.com", "dns:",          "ip:300.1.1.1", "ip:host",
                         "x400:foo",         "dns:has space", ":value",       "email:\x01@x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        crypto_csr_params p = {.common_name = "h", .sans = {"dns:ok.example", bad[i]}, .san_count = 2};
        X509_REQ *req = NULL;
        util_error err = {0};
        if (crypto_csr_build(&p, f->rsa, &req, &err) != -1)
            fail_msg("SAN \"%s\" accepted", bad[i]);
        assert_int_equal(err.code, UTIL_ERR_INVALID_SAN);
        assert_null(req);
    }
}

static void csr_eku_and_invalid_oid(void **state)
{
    fixture *f = *state;
    crypto_csr_params p = {.common_name = "h",
                           .ekus = {"clientAuth", "1.3.6.1.5.5.7.3.1", "1.3.6.1.4.1.311.20.2.2"},
                           .eku_count = 3};
    X509_REQ *req = build_csr(&p, f->rsa);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    X509_EXTENSION *ext = req_ext(exts, "2.5.29.37");
    assert_non_null(ext);
    EXTENDED_KEY_USAGE *eku = X509V3_EXT_d2i(ext);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 3);
    assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
    assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 1)), NID_server_auth);
    char oid[64];
    OBJ_obj2txt(oid, sizeof oid, sk_ASN1_OBJECT_value(eku, 2), 1);
    assert_string_equal(oid, "1.3.6.1.4.1.311.20.2.2");
    EXTENDED_KEY_USAGE_free(eku);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    const char *bad[] = {"notAnEku", "1.2.x", "", "clientauth-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        crypto_csr_params q = {.common_name = "h", .ekus = {bad[i]}, .eku_count = 1};
        util_error err = {0};
        req = NULL;
        if (crypto_csr_build(&q, f->rsa, &req, &err) != -1)
            fail_msg("EKU \"%s\" accepted", bad[i]);
        assert_int_equal(err.code, UTIL_ERR_INVALID_OID);
    }
}

/* keyUsage bits of a CSR, or -1 when it has no keyUsage extension */
static long csr_ku_bits(X509_REQ *req, int *critical)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    X509_EXTENSION *ext = req_ext(exts, "2.5.29.15");
    long bits = -1;
    if (ext) {
        ASN1_BIT_STRING *ku = X509V3_EXT_d2i(ext);
        assert_non_null(ku);
        bits = 0;
        for (int b = 0; b < 9; b++)
            if (ASN1_BIT_STRING_get_bit(ku, b))
                bits |= 1L << b;
        *critical = X509_EXTENSION_get_critical(ext);
        ASN1_BIT_STRING_free(ku);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return bits;
}

static void csr_key_usage(void **state)
{
    fixture *f = *state;
    static const struct {
        crypto_key_usage ku;
        long bits;
    } cases[] = {
        {CRYPTO_KU_NONE, -1},
        {CRYPTO_KU_DIGITAL_SIGNATURE, 1L << 0},
        {CRYPTO_KU_KEY_ENCIPHERMENT, 1L << 2},
        {CRYPTO_KU_BOTH, (1L << 0) | (1L << 2)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        crypto_csr_params p = {.common_name = "h", .key_usage = cases[i].ku, .key_usage_set = true};
        X509_REQ *req = build_csr(&p, f->rsa);
        int critical = -1;
        assert_int_equal(csr_ku_bits(req, &critical), cases[i].bits);
        if (cases[i].bits >= 0)
            assert_int_equal(critical, 1);
        X509_REQ_free(req);
    }
    /* defaults: DS+KE for RSA, DS for EC */
    crypto_csr_params p = {.common_name = "h"};
    int critical;
    X509_REQ *req = build_csr(&p, f->rsa);
    assert_int_equal(csr_ku_bits(req, &critical), (1L << 0) | (1L << 2));
    X509_REQ_free(req);
    req = build_csr(&p, f->ec256);
    assert_int_equal(csr_ku_bits(req, &critical), 1L << 0);
    X509_REQ_free(req);
    /* names */
    crypto_key_usage ku;
    assert_int_equal(crypto_key_usage_parse("digitalSignature", &ku), 0);
    assert_int_equal(ku, CRYPTO_KU_DIGITAL_SIGNATURE);
    assert_int_equal(crypto_key_usage_parse("KEY_ENCIPHERMENT", &ku), 0);
    assert_int_equal(ku, CRYPTO_KU_KEY_ENCIPHERMENT);
    assert_int_equal(crypto_key_usage_parse("both", &ku), 0);
    assert_int_equal(ku, CRYPTO_KU_BOTH);
    assert_int_equal(crypto_key_usage_parse("none", &ku), 0);
    assert_int_equal(ku, CRYPTO_KU_NONE);
    assert_int_equal(crypto_key_usage_parse("nonRepudiation", &ku), -1);
    assert_int_equal(crypto_key_usage_parse(NULL, &ku), -1);
    assert_string_equal(crypto_key_usage_name(CRYPTO_KU_BOTH), "both");
    assert_string_equal(crypto_key_usage_name(CRYPTO_KU_KEY_ENCIPHERMENT), "keyEncipherment");
}

static void csr_template_name(void **state)
{
    fixture *f = *state;
    crypto_csr_params p = {.common_name = "h", .template_name = "IPSECIntermediateOffline"};
    X509_REQ *req = build_csr(&p, f->rsa);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    X509_EXTENSION *ext = req_ext(exts, "1.3.6.1.4.1.311.20.2");
    assert_non_null(ext);
    ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(ext);
    const unsigned char *d = ASN1_STRING_get0_data(os);
    ASN1_BMPSTRING *bmp = d2i_ASN1_BMPSTRING(NULL, &d, ASN1_STRING_length(os));
    assert_non_null(bmp);
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, bmp);
    assert_int_equal(n, 24);
    assert_memory_equal(utf8, "IPSECIntermediateOffline", 24);
    OPENSSL_free(utf8);
    ASN1_BMPSTRING_free(bmp);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    /* no template: no extension */
    crypto_csr_params q = {.common_name = "h"};
    req = build_csr(&q, f->rsa);
    exts = X509_REQ_get_extensions(req);
    assert_null(req_ext(exts, "1.3.6.1.4.1.311.20.2"));
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
}

/* The ASN.1 type of the challengePassword value, or -1 when absent. */
static int challenge_type(X509_REQ *req, char *value, size_t len)
{
    int idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
    if (idx < 0)
        return -1;
    ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(X509_REQ_get_attr(req, idx), 0);
    assert_non_null(t);
    const ASN1_STRING *s = t->value.asn1_string;
    snprintf(value, len, "%.*s", ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
    return t->type;
}

static void csr_challenge_password_type(void **state)
{
    fixture *f = *state;
    char value[128];
    /* NDES passwords are hex: PrintableString */
    crypto_csr_params p = {.common_name = "h", .challenge_password = "3A1F0C9D2B7E4F60"};
    X509_REQ *req = build_csr(&p, f->rsa);
    assert_int_equal(challenge_type(req, value, sizeof value), V_ASN1_PRINTABLESTRING);
    assert_string_equal(value, "3A1F0C9D2B7E4F60");
    X509_REQ_free(req);
    p.challenge_password = "pass word-1'()+,./:=?";
    req = build_csr(&p, f->rsa);
    assert_int_equal(challenge_type(req, value, sizeof value), V_ASN1_PRINTABLESTRING);
    assert_string_equal(value, "pass word-1'()+,./:=?");
    X509_REQ_free(req);
    /* outside the PrintableString alphabet: UTF8String */
    p.challenge_password = "p@ss!";
    req = build_csr(&p, f->rsa);
    assert_int_equal(challenge_type(req, value, sizeof value), V_ASN1_UTF8STRING);
    assert_string_equal(value, "p@ss!");
    X509_REQ_free(req);
    p.challenge_password = "Schl\xc3\xbcssel";
    req = build_csr(&p, f->rsa);
    assert_int_equal(challenge_type(req, value, sizeof value), V_ASN1_UTF8STRING);
    assert_string_equal(value, "Schl\xc3\xbcssel");
    X509_REQ_free(req);
    /* none: no attribute */
    p.challenge_password = NULL;
    req = build_csr(&p, f->rsa);
    assert_int_equal(challenge_type(req, value, sizeof value), -1);
    X509_REQ_free(req);
}

/* ---- names ---- */

static void name_parse_forms(void **state)
{
    (void)state;
    /* The comma form is RFC 4514 order and prints back as typed; the slash
     * form is DER order (openssl -subj), printed last RDN first. */
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"CN=a,O=b", "CN=a,O=b"},
        {"C=US,O=Example,CN=host", "C=US,O=Example,CN=host"},
        {"/C=US/O=Example/CN=host", "CN=host,O=Example,C=US"},
        {"CN=a\\,b,O=x", "CN=a\\,b,O=x"},
        {"/CN=a\\/b/O=x", "O=x,CN=a/b"},
        {" CN =spaced,O=b", "CN=spaced,O=b"},
        {"CN=printer,emailAddress=ops@example.com", "CN=printer,emailAddress=ops@example.com"},
        {"CN=M\xc3\xbcnchen", "CN=M\xc3\xbcnchen"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        X509_NAME *n = NULL;
        util_error err = {0};
        if (crypto_name_parse(cases[i].in, &n, &err) != 0)
            fail_msg("\"%s\" rejected: %s", cases[i].in, err.detail);
        char out[256];
        crypto_name_oneline(n, out, sizeof out);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("\"%s\" -> \"%s\", expected \"%s\"", cases[i].in, out, cases[i].out);
        X509_NAME_free(n);
    }
    X509_NAME *n = NULL;
    util_error err = {0};
    assert_int_equal(crypto_name_parse("CN=a,O=b", &n, &err), 0);
    assert_int_equal(X509_NAME_entry_count(n), 2);
    assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(n, 0))),
                     NID_organizationName);
    X509_NAME_free(n);
}

static void name_parse_bad(void **state)
{
    (void)state;
    const char *bad[] = {"", "CN", "=x", "CN=a,O", "/", "NOTATYPE=x", "CN=a,,", "C=USA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        X509_NAME *n = NULL;
        util_error err = {0};
        if (crypto_name_parse(bad[i], &n, &err) != -1) {
            char out[128];
            crypto_name_oneline(n, out, sizeof out);
            X509_NAME_free(n);
            fail_msg("\"%s\" accepted as \"%s\"", bad[i], out);
        }
        assert_int_equal(err.code, UTIL_ERR_INVALID_SUBJECT);
        assert_null(n);
    }
}

/* ---- self-signed signer ---- */

static void selfsigned_signer(void **state)
{
    fixture *f = *state;
    X509_NAME *subject = NULL;
    util_error err = {0};
    assert_int_equal(crypto_name_parse("CN=device-9,O=Example", &subject, &err), 0);
    time_t now = 1700000000;
    X509 *x = NULL;
    assert_int_equal(crypto_selfsigned_build(f->rsa, subject, NULL, now, 30, &x, &err), 0);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), subject), 0);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), subject), 0);
    assert_int_equal(X509_verify(x, f->rsa), 1);
    assert_true(crypto_cert_matches_key(x, f->rsa));
    assert_int_equal(crypto_asn1_time_to_time(X509_get0_notBefore(x)), now - 3600);
    assert_int_equal(crypto_asn1_time_to_time(X509_get0_notAfter(x)), now + 30 * 86400);
    assert_true(X509_get_extension_flags(x) & EXFLAG_KUSAGE);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_false(crypto_cert_is_ca(x));
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER); /* positive */
    assert_true(ASN1_STRING_length(serial) >= 7);
    X509 *y = NULL;
    assert_int_equal(crypto_selfsigned_build(f->rsa, subject, NULL, now, 30, &y, &err), 0);
    assert_int_not_equal(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(y)), 0); /* random */
    X509_free(y);
    X509_free(x);
    /* EC: digitalSignature without keyEncipherment */
    assert_int_equal(crypto_selfsigned_build(f->ec256, subject, EVP_sha384(), now, 1, &x, &err), 0);
    assert_int_equal(X509_get_key_usage(x) & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT),
                     KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
    X509_free(x);
    X509_NAME_free(subject);
}

/* ---- serial numbers as printed by scepctl and openssl ---- */

static void assert_serial(const char *text, bool decimal, const char *want_hex)
{
    ASN1_INTEGER *a = NULL;
    util_error err = {0};
    if (crypto_serial_parse(text, decimal, &a, &err) != 0)
        fail_msg("serial \"%s\" refused: %s", text, err.detail);
    BIGNUM *bn = ASN1_INTEGER_to_BN(a, NULL);
    char *hex = BN_bn2hex(bn);
    assert_string_equal(hex, want_hex);
    OPENSSL_free(hex);
    BN_free(bn);
    ASN1_INTEGER_free(a);
}

static void assert_serial_refused(const char *text, bool decimal)
{
    ASN1_INTEGER *a = NULL;
    util_error err = {0};
    if (crypto_serial_parse(text, decimal, &a, &err) == 0)
        fail_msg("serial \"%s\" (decimal %d) accepted", text, decimal);
    assert_int_equal(err.code, UTIL_ERR_USAGE);
    assert_null(a);
}

static void serial_forms(void **state)
{
    (void)state;
    assert_serial("4BCB8DD1DC25B611F8FB7D262982C767", false, "4BCB8DD1DC25B611F8FB7D262982C767");
    assert_serial("0x4bcb8d", false, "4BCB8D");
    assert_serial("0X4BCB8D", false, "4BCB8D");
    assert_serial("47:00:00:00:02:f5:40:0d", false, "4700000002F5400D");
    assert_serial("0x4b:cb:8d", false, "4BCB8D");
    assert_serial("10", false, "10");
    assert_serial("4660", true, "1234");
    /* trailing or embedded garbage, half bytes between colons, empty */
    const char *bad_hex[] = {"",         "0x",     "4BCB8Dz", "4BCB 8D",   "4B:CB:8",
                             "4B::CB",   "4B:CB:", ":4B:CB",  "4BC:B8D",   "-4BCB8D",
                             "4BCB8D\n", "0x0x12", "12.5",    "sha256:AB", "4B:CB8D"};
    for (size_t i = 0; i < sizeof bad_hex / sizeof bad_hex[0]; i++)
        assert_serial_refused(bad_hex[i], false);
    const char *bad_dec[] = {"", "12a", "0x12", "12 ", "-3", "1:2"};
    for (size_t i = 0; i < sizeof bad_dec / sizeof bad_dec[0]; i++)
        assert_serial_refused(bad_dec[i], true);
    char longest[200];
    memset(longest, 'A', 129);
    longest[129] = '\0';
    assert_serial_refused(longest, false);
}

/* ---- fingerprints and inspection ---- */

static void fingerprint_formats(void **state)
{
    fixture *f = *state;
    uint8_t d256[32], d1[20];
    unsigned int n = 0;
    assert_int_equal(X509_digest(f->ca, EVP_sha256(), d256, &n), 1);
    assert_int_equal(X509_digest(f->ca, EVP_sha1(), d1, &n), 1);
    char hex256[65], hex1[41], colons[100], text[120];
    util_hex(d256, 32, hex256, 1);
    util_hex(d1, 20, hex1, 0);
    crypto_cert_fingerprint(f->ca, EVP_sha256(), colons, sizeof colons, true);
    assert_int_equal(strlen(colons), 95);
    assert_int_equal(colons[2], ':');
    char plain[70];
    crypto_cert_fingerprint(f->ca, EVP_sha256(), plain, sizeof plain, false);
    assert_string_equal(plain, hex256);
    snprintf(text, sizeof text, "sha256:%s", hex256);
    assert_true(crypto_cert_matches_fingerprint(f->ca, text));
    snprintf(text, sizeof text, "SHA256:%s", colons);
    assert_true(crypto_cert_matches_fingerprint(f->ca, text));
    assert_true(crypto_cert_matches_fingerprint(f->ca, hex256)); /* bare, 64 digits */
    assert_true(crypto_cert_matches_fingerprint(f->ca, hex1));   /* bare, 40 digits: SHA-1 */
    snprintf(text, sizeof text, "sha1:%s", hex1);
    assert_true(crypto_cert_matches_fingerprint(f->ca, text));
    assert_true(crypto_fingerprint_valid(text));
    /* mismatches */
    char wrong[65];
    memcpy(wrong, hex256, sizeof wrong);
    wrong[10] = wrong[10] == 'A' ? 'B' : 'A';
    assert_false(crypto_cert_matches_fingerprint(f->ca, wrong));
    assert_false(crypto_cert_matches_fingerprint(f->other_ca, hex256));
    snprintf(text, sizeof text, "sha1:%s", hex256); /* length disagrees with the digest */
    assert_false(crypto_cert_matches_fingerprint(f->ca, text));
    assert_false(crypto_fingerprint_valid(text));
    snprintf(text, sizeof text, "sha256:%s", hex1);
    assert_false(crypto_cert_matches_fingerprint(f->ca, text));
    hex256[63] = '\0'; /* odd length */
    assert_false(crypto_cert_matches_fingerprint(f->ca, hex256));
    assert_false(crypto_fingerprint_valid(hex256));
    assert_false(crypto_fingerprint_valid("md5:00112233445566778899aabbccddeeff"));
    assert_false(crypto_fingerprint_valid(""));
    assert_false(crypto_fingerprint_valid(NULL));
}

static void cert_info_fields(void **state)
{
    fixture *f = *state;
    EVP_PKEY *k = f->ec256;
    h_cert_spec spec = {.subject = "C=US,O=Example,CN=leaf.example",
                        .serial = 0x1234ABCD,
                        .key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT,
                        .not_before = 1700000000,
                        .not_after = 1800000000};
    X509 *x = h_cert_make(&spec, k, f->ca, f->ca_key);
    /* add EKU and SAN */
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth));
    sk_ASN1_OBJECT_push(eku, OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1));
    assert_int_equal(X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, 0), 1);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    GENERAL_NAMES *sans = GENERAL_NAMES_new();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, "leaf.example", -1);
    GENERAL_NAME_set0_value(g, GEN_DNS, s);
    sk_GENERAL_NAME_push(sans, g);
    g = GENERAL_NAME_new();
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS("10.1.2.3");
    GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    sk_GENERAL_NAME_push(sans, g);
    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, 0), 1);
    GENERAL_NAMES_free(sans);
    assert_true(X509_sign(x, f->ca_key, EVP_sha256()) > 0);

    crypto_cert_info info;
    crypto_cert_info_get(x, &info);
    assert_string_equal(info.subject, "C=US,O=Example,CN=leaf.example");
    assert_string_equal(info.issuer, "CN=Crypto Test CA,O=Example,C=US");
    assert_string_equal(info.serial, "1234ABCD");
    assert_int_equal(info.not_before, 1700000000);
    assert_int_equal(info.not_after, 1800000000);
    assert_string_equal(info.key, "EC P-256");
    assert_string_equal(info.signature_alg, "sha256WithRSAEncryption");
    assert_string_equal(info.key_usage, "digitalSignature, keyAgreement");
    assert_string_equal(info.ext_key_usage, "clientAuth, 1.3.6.1.4.1.99999.1");
    assert_string_equal(info.san, "dns:leaf.example, ip:10.1.2.3");
    char fp[100];
    crypto_cert_fingerprint(x, EVP_sha256(), fp, sizeof fp, true);
    assert_string_equal(info.sha256, fp);
    crypto_cert_fingerprint(x, EVP_sha1(), fp, sizeof fp, true);
    assert_string_equal(info.sha1, fp);
    assert_int_equal(strlen(info.sha1), 59);
    assert_false(info.is_ca);
    X509_free(x);
    crypto_cert_info_get(f->ca, &info);
    assert_true(info.is_ca);
    assert_string_equal(info.key, "RSA 2048");
    assert_string_equal(info.key_usage, "digitalSignature, keyCertSign, cRLSign");
    assert_string_equal(info.ext_key_usage, "");
    assert_string_equal(info.san, "");
}

static void cert_load_forms(void **state)
{
    fixture *f = *state;
    STACK_OF(X509) *two = h_stack(f->ca, f->other_ca, NULL);
    char *pem = NULL;
    size_t len = 0;
    util_error err = {0};
    assert_int_equal(crypto_certs_to_pem(two, &pem, &len, &err), 0);
    STACK_OF(X509) *back = NULL;
    assert_int_equal(crypto_certs_load((uint8_t *)pem, len, &back, &err), 0);
    assert_int_equal(sk_X509_num(back), 2);
    assert_int_equal(X509_cmp(sk_X509_value(back, 1), f->other_ca), 0);
    h_stack_free(back);
    free(pem);
    size_t dlen = 0;
    uint8_t *der = h_cert_der(f->ca, &dlen);
    X509 *one = NULL;
    assert_int_equal(crypto_cert_load(der, dlen, &one, &err), 0);
    assert_int_equal(X509_cmp(one, f->ca), 0);
    X509_free(one);
    OPENSSL_free(der);
    one = NULL;
    assert_int_equal(crypto_cert_load((const uint8_t *)"garbage!", 8, &one, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_CERT);
    h_stack_free(two);
}

/* ---- verification ---- */

static const crypto_verify_check *check_named(const crypto_verify_result *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (!strcmp(r->checks[i].name, name))
            return &r->checks[i];
    fail_msg("no \"%s\" check", name);
    return NULL;
}

static void verify_cases(void **state)
{
    fixture *f = *state;
    time_t now = time(NULL);
    h_cert_spec spec = {.subject = "CN=verified",
                        .key_usage = KU_DIGITAL_SIGNATURE,
                        .not_before = now - 86400,
                        .not_after = now + 86400};
    X509 *leaf = h_cert_make(&spec, f->rsa, f->ca, f->ca_key);
    STACK_OF(X509) *trusted = h_stack(f->ca, NULL);
    STACK_OF(X509) *wrong = h_stack(f->other_ca, NULL);
    crypto_verify_result r;

    crypto_cert_verify(leaf, f->rsa, trusted, NULL, NULL, now, &r);
    assert_true(r.valid);
    assert_true(check_named(&r, "chain")->ok);
    assert_true(check_named(&r, "validity")->ok);
    assert_true(check_named(&r, "key_match")->ok);
    assert_false(check_named(&r, "key_match")->skipped);
    assert_true(check_named(&r, "revocation")->skipped);

    /* expired: the chain holds, the validity check fails */
    crypto_cert_verify(leaf, NULL, trusted, NULL, NULL, now + 2 * 86400, &r);
    assert_false(r.valid);
    assert_true(check_named(&r, "chain")->ok);
    assert_false(check_named(&r, "validity")->ok);
    assert_string_equal(check_named(&r, "validity")->detail, "expired");
    assert_true(check_named(&r, "key_match")->skipped);
    crypto_cert_verify(leaf, NULL, trusted, NULL, NULL, now - 2 * 86400, &r);
    assert_false(r.valid);
    assert_string_equal(check_named(&r, "validity")->detail, "not yet valid");

    /* wrong CA */
    crypto_cert_verify(leaf, NULL, wrong, NULL, NULL, now, &r);
    assert_false(r.valid);
    assert_false(check_named(&r, "chain")->ok);
    assert_true(check_named(&r, "validity")->ok);

    /* no CA: the chain is skipped, not failed */
    crypto_cert_verify(leaf, NULL, NULL, NULL, NULL, now, &r);
    assert_true(r.valid);
    assert_true(check_named(&r, "chain")->skipped);

    /* key mismatch */
    crypto_cert_verify(leaf, f->ec256, trusted, NULL, NULL, now, &r);
    assert_false(r.valid);
    assert_false(check_named(&r, "key_match")->ok);
    assert_true(check_named(&r, "chain")->ok);

    /* revoked, with a CRL signed by the CA */
    X509_CRL *crl = h_crl_make(f->ca, f->ca_key, leaf);
    STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
    sk_X509_CRL_push(crls, crl);
    crypto_cert_verify(leaf, f->rsa, trusted, NULL, crls, now, &r);
    assert_false(r.valid);
    assert_false(check_named(&r, "revocation")->ok);
    assert_false(check_named(&r, "revocation")->skipped);
    assert_string_equal(check_named(&r, "revocation")->detail, "revoked");
    assert_true(check_named(&r, "chain")->ok);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);

    /* a CRL that does not list it */
    crl = h_crl_make(f->ca, f->ca_key, NULL);
    crls = sk_X509_CRL_new_null();
    sk_X509_CRL_push(crls, crl);
    crypto_cert_verify(leaf, f->rsa, trusted, NULL, crls, now, &r);
    assert_true(r.valid);
    assert_true(check_named(&r, "revocation")->ok);
    assert_string_equal(check_named(&r, "revocation")->detail, "not revoked");
    sk_X509_CRL_pop_free(crls, X509_CRL_free);

    /* through an intermediate given as untrusted */
    EVP_PKEY *ik = h_key_ec("P-256");
    h_cert_spec ispec = {
        .subject = "CN=Intermediate", .ca = true, .key_usage = KU_KEY_CERT_SIGN | KU_CRL_SIGN};
    X509 *inter = h_cert_make(&ispec, ik, f->ca, f->ca_key);
    X509 *leaf2 = h_cert_issue(inter, ik, f->ec256, "CN=leaf2", KU_DIGITAL_SIGNATURE);
    STACK_OF(X509) *untrusted = h_stack(inter, NULL);
    crypto_cert_verify(leaf2, f->ec256, trusted, untrusted, NULL, now, &r);
    assert_true(r.valid);
    crypto_cert_verify(leaf2, f->ec256, trusted, NULL, NULL, now, &r);
    assert_false(r.valid);
    assert_false(check_named(&r, "chain")->ok);
    h_stack_free(untrusted);
    X509_free(leaf2);
    X509_free(inter);
    EVP_PKEY_free(ik);

    h_stack_free(trusted);
    h_stack_free(wrong);
    X509_free(leaf);
}

/* ---- what a CA copies from a request, and the TLS policy ---- */

static X509_REQ *request_with(EVP_PKEY *key, const char *key_usage, const char *sans)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    assert_non_null(req);
    assert_non_null(exts);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"device", -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    if (key_usage)
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, key_usage));
    if (sans)
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, sans));
    assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    assert_true(X509_REQ_sign(req, key, EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256()) > 0);
    return req;
}

/* A self-signed test CA "CN=test CA" for ca_key, valid one day. */
static X509 *test_ca(EVP_PKEY *ca_key)
{
    X509_NAME *subject = X509_NAME_new();
    X509 *ca = NULL;
    util_error err = {0};
    uint8_t serial[] = {0x09};
    assert_non_null(subject);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)"test CA", -1, -1, 0);
    if (crypto_ca_create(ca_key, subject, serial, 1, time(NULL), 1, &ca, &err) != 0)
        fail_msg("crypto_ca_create: %s", err.detail);
    X509_NAME_free(subject);
    return ca;
}

static X509 *issue_for(X509_REQ *req, X509 *ca, EVP_PKEY *ca_key)
{
    uint8_t serial[] = {0x01, 0x02};
    time_t now = time(NULL);
    crypto_issue_params p = {serial, sizeof serial, now - 60, now + 86400, NULL};
    X509 *cert = NULL;
    util_error err = {0};
    if (crypto_issue_from_csr(req, ca, ca_key, &p, &cert, &err) != 0)
        fail_msg("issue: %s", err.detail);
    return cert;
}

/* The issued certificate carries the request's key byte for byte (it is
 * copied as DER, not re-encoded), for RSA and for EC with its curve, and
 * the CA's signature over it verifies once the certificate is parsed. */
static void issue_copies_request_key(void **state)
{
    (void)state;
    EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *keys[] = {EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
                        EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")};
    X509 *ca = test_ca(ca_key);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_non_null(keys[i]);
        X509_REQ *req = request_with(keys[i], NULL, "DNS:k.example");
        X509 *cert = issue_for(req, ca, ca_key);
        unsigned char *der = NULL;
        int len = i2d_X509(cert, &der);
        assert_true(len > 0);
        const unsigned char *q = der;
        X509 *parsed = d2i_X509(NULL, &q, len);
        assert_non_null(parsed);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(parsed), keys[i]), 1);
        assert_int_equal(X509_verify(parsed, ca_key), 1);
        ASN1_OCTET_STRING *ski = X509_get_ext_d2i(parsed, NID_subject_key_identifier, NULL, NULL);
        assert_non_null(ski); /* hashed from the copied key bits */
        assert_int_equal(ASN1_STRING_length(ski), 20);
        ASN1_OCTET_STRING_free(ski);
        X509_free(parsed);
        OPENSSL_free(der);
        X509_free(cert);
        X509_REQ_free(req);
        EVP_PKEY_free(keys[i]);
    }
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

/* A request as a device sends it: subject, keyUsage and subjectAltName in
 * extensionRequest, a challengePassword, signed by key (or by signer). */
static unsigned char *request_der(EVP_PKEY *key, EVP_PKEY *signer, int *len)
{
    X509_REQ *req = request_with(key, "critical,digitalSignature", "DNS:k.example");
    assert_int_equal(X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                               (const unsigned char *)"pw-1234", -1),
                     1);
    const EVP_MD *md = EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
    assert_true(X509_REQ_sign(req, signer ? signer : key, md) > 0);
    unsigned char *der = NULL;
    *len = i2d_X509_REQ(req, &der);
    assert_true(*len > 0);
    X509_REQ_free(req);
    return der;
}

/* crypto_issue_csr_read gives what d2i_X509_REQ and X509_REQ_verify give:
 * for RSA keys (read without a decoder) the same DER once re-encoded, the
 * same key, subject, password and extensions; EC, RSA-PSS and Ed25519
 * keys take OpenSSL's own path. Either way the certificate issued from it
 * carries the request's key. */
static void csr_read_matches_openssl(void **state)
{
    (void)state;
    EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *keys[] = {EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
                        EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
                        EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), NULL,
                        EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};
    EVP_PKEY_CTX *pss = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    assert_non_null(pss);
    assert_int_equal(EVP_PKEY_keygen_init(pss), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(pss, 2048), 1);
    assert_int_equal(EVP_PKEY_keygen(pss, &keys[3]), 1);
    EVP_PKEY_CTX_free(pss);
    X509 *ca = test_ca(ca_key);
    util_error err = {0};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_non_null(keys[i]);
        int len = 0;
        unsigned char *der = request_der(keys[i], NULL, &len);
        X509_REQ *got = NULL;
        if (crypto_issue_csr_read(der, (size_t)len, &got, &err) != 0)
            fail_msg("key %zu: %s", i, err.detail);
        unsigned char *again = NULL;
        int again_len = i2d_X509_REQ(got, &again);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, der, (size_t)len);
        assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(got), keys[i]), 1);
        assert_int_equal(X509_REQ_verify(got, X509_REQ_get0_pubkey(got)), 1);
        char subject_text[64];
        crypto_issue_csr_subject(got, subject_text, sizeof subject_text);
        assert_string_equal(subject_text, "CN=device");
        char *pw = NULL;
        size_t pw_len = 0;
        assert_int_equal(crypto_issue_csr_challenge(got, &pw, &pw_len, &err), 0);
        assert_string_equal(pw, "pw-1234");
        crypto_secret_free(pw, pw_len);
        assert_int_equal(crypto_issue_csr_san_count(got), 1);
        X509 *cert = issue_for(got, ca, ca_key);
        unsigned char *cder = NULL;
        int clen = i2d_X509(cert, &cder);
        const unsigned char *q = cder;
        X509 *parsed = d2i_X509(NULL, &q, clen);
        assert_non_null(parsed);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(parsed), keys[i]), 1);
        assert_true(X509_get_key_usage(parsed) & KU_DIGITAL_SIGNATURE);
        X509_free(parsed);
        OPENSSL_free(cder);
        X509_free(cert);
        OPENSSL_free(again);
        X509_REQ_free(got);
        OPENSSL_free(der);
        EVP_PKEY_free(keys[i]);
    }
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

/* What crypto_issue_csr_read refuses: a signature by another key or with a
 * byte changed (-1, "does not verify"), an rsaEncryption key that is not an
 * RSAPublicKey (-1, as OpenSSL's path refuses it), and as unreadable every
 * cut of a request, a byte after it, nothing at all. */
static void csr_read_refuses(void **state)
{
    (void)state;
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    util_error err = {0};
    X509_REQ *got = NULL;
    int len = 0;

    unsigned char *der = request_der(rsa, other, &len);
    assert_int_equal(crypto_issue_csr_read(der, (size_t)len, &got, &err), -1);
    assert_null(got);
    assert_non_null(strstr(err.detail, "does not verify"));
    OPENSSL_free(der);

    EVP_PKEY *signers[] = {rsa, ec};
    for (size_t k = 0; k < 2; k++) {
        der = request_der(signers[k], NULL, &len);
        der[len - 1] ^= 0x01; /* the signature's last byte */
        memset(&err, 0, sizeof err);
        assert_int_equal(crypto_issue_csr_read(der, (size_t)len, &got, &err), -1);
        assert_null(got);
        assert_non_null(strstr(err.detail, "does not verify"));
        der[len - 1] ^= 0x01;
        for (int cut = 0; cut < len; cut++) {
            assert_int_equal(crypto_issue_csr_read(der, (size_t)cut, &got, &err), CRYPTO_CSR_UNREADABLE);
            assert_null(got);
        }
        unsigned char *longer = malloc((size_t)len + 1);
        assert_non_null(longer);
        memcpy(longer, der, (size_t)len);
        longer[len] = 0;
        assert_int_equal(crypto_issue_csr_read(longer, (size_t)len + 1, &got, &err), CRYPTO_CSR_UNREADABLE);
        assert_int_equal(crypto_issue_csr_read(der, (size_t)len, &got, &err), 0);
        X509_REQ_free(got);
        got = NULL;
        free(longer);
        OPENSSL_free(der);
    }

    /* rsaEncryption over an EC point: neither path can use the key */
    X509_REQ *req = request_with(ec, NULL, NULL);
    unsigned char *point = NULL;
    size_t point_len = EVP_PKEY_get1_encoded_public_key(ec, &point);
    assert_true(point_len > 0);
    assert_int_equal(X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req), OBJ_nid2obj(NID_rsaEncryption),
                                            V_ASN1_NULL, NULL, point, (int)point_len),
                     1);
    assert_true(X509_REQ_sign(req, ec, EVP_sha256()) > 0);
    der = NULL;
    len = i2d_X509_REQ(req, &der);
    assert_true(len > 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(crypto_issue_csr_read(der, (size_t)len, &got, &err), -1);
    assert_null(got);
    assert_non_null(strstr(err.detail, "no usable public key"));
    OPENSSL_free(der);
    X509_REQ_free(req);

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(other);
    EVP_PKEY_free(ec);
}

/* keyCertSign and cRLSign belong to CAs: never copied from a request. */
static void issue_drops_ca_key_usages(void **state)
{
    (void)state;
    EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *ca = test_ca(ca_key);
    X509_REQ *req =
        request_with(key, "critical,digitalSignature,keyCertSign,cRLSign", "DNS:a.example,DNS:b.example");
    assert_int_equal(crypto_issue_csr_san_count(req), 2);
    X509 *cert = issue_for(req, ca, ca_key);
    uint32_t ku = X509_get_key_usage(cert);
    assert_true(ku & KU_DIGITAL_SIGNATURE);
    assert_false(ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    int crit = -1;
    ASN1_BIT_STRING *bits = X509_get_ext_d2i(cert, NID_key_usage, &crit, NULL);
    assert_non_null(bits);
    assert_int_equal(crit, 1); /* criticality as asked */
    ASN1_BIT_STRING_free(bits);
    X509_free(cert);
    X509_REQ_free(req);
    /* only CA usages asked for: no keyUsage at all */
    req = request_with(key, "keyCertSign", NULL);
    assert_int_equal(crypto_issue_csr_san_count(req), 0);
    cert = issue_for(req, ca, ca_key);
    assert_false(X509_get_extension_flags(cert) & EXFLAG_KUSAGE);
    assert_false(X509_check_ca(cert));
    X509_free(cert);
    X509_REQ_free(req);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

static char *pem_of_key(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL), 1);
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static char *pem_of_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

/* TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE with AEAD, for an EC and an
 * RSA key alike. */
static void tls_policy_for_ec_and_rsa(void **state)
{
    (void)state;
    const char *types[][2] = {{"EC", "P-256"}, {"RSA", NULL}};
    for (size_t t = 0; t < 2; t++) {
        EVP_PKEY *key = types[t][1] ? EVP_PKEY_Q_keygen(NULL, NULL, types[t][0], types[t][1])
                                    : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        assert_non_null(key);
        X509_NAME *subject = X509_NAME_new();
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)"device", -1, -1, 0);
        X509 *cert = NULL;
        util_error err = {0};
        uint8_t serial[] = {0x09};
        assert_int_equal(crypto_ca_create(key, subject, serial, 1, time(NULL), 1, &cert, &err), 0);
        char *key_pem = pem_of_key(key), *cert_pem = pem_of_cert(cert);
        SSL_CTX *ctx = NULL;
        assert_int_equal(crypto_tls_server_ctx(key_pem, cert_pem, NULL, &ctx, &err), 0);
        assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
        assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
        STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
        int tls12 = 0;
        for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
            if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any)
                continue; /* a TLS 1.3 suite: always AEAD, always (EC)DHE */
            tls12++;
            if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(c))
                fail_msg("%s key: TLS 1.2 suite %s offered", types[t][0], SSL_CIPHER_get_name(c));
        }
        assert_true(tls12 >= 4);
        SSL_CTX_free(ctx);
        free(key_pem);
        free(cert_pem);
        X509_free(cert);
        X509_NAME_free(subject);
        EVP_PKEY_free(key);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_spec_valid),
        cmocka_unit_test(key_spec_invalid),
        cmocka_unit_test(key_generate_each),
        cmocka_unit_test(key_pem_round_trip_and_file),
        cmocka_unit_test(key_load_pem_forms),
        cmocka_unit_test(csr_subject_and_signature),
        cmocka_unit_test(csr_renew_from),
        cmocka_unit_test(csr_bad_subject),
        cmocka_unit_test(csr_sans_of_each_type),
        cmocka_unit_test(csr_invalid_san),
        cmocka_unit_test(csr_eku_and_invalid_oid),
        cmocka_unit_test(csr_key_usage),
        cmocka_unit_test(csr_template_name),
        cmocka_unit_test(csr_challenge_password_type),
        cmocka_unit_test(name_parse_forms),
        cmocka_unit_test(name_parse_bad),
        cmocka_unit_test(selfsigned_signer),
        cmocka_unit_test(serial_forms),
        cmocka_unit_test(fingerprint_formats),
        cmocka_unit_test(cert_info_fields),
        cmocka_unit_test(cert_load_forms),
        cmocka_unit_test(verify_cases),
        cmocka_unit_test(issue_drops_ca_key_usages),
        cmocka_unit_test(issue_copies_request_key),
        cmocka_unit_test(csr_read_matches_openssl),
        cmocka_unit_test(csr_read_refuses),
        cmocka_unit_test(tls_policy_for_ec_and_rsa),
    };
    return cmocka_run_group_tests_name("crypto", tests, setup, teardown);
}
