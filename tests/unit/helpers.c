/* Shared fixtures for the unit tests (see helpers.h). */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "util/file.h"

/* ---- keys ---- */

EVP_PKEY *h_key_rsa(int bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(k);
    return k;
}

EVP_PKEY *h_key_ec(const char *curve)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(k);
    return k;
}

/* ---- certificates ---- */

static void add_ext(X509 *x, int nid, void *value, int critical)
{
    assert_int_equal(X509_add1_ext_i2d(x, nid, value, critical, X509V3_ADD_DEFAULT), 1);
}

X509 *h_cert_make(const h_cert_spec *spec, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509_NAME *subject = NULL;
    util_error err = {0};
    assert_non_null(x);
    assert_int_equal(crypto_name_parse(spec->subject, &subject, &err), 0);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    long serial = spec->serial;
    if (!serial) {
        uint32_t r = 0;
        assert_int_equal(RAND_bytes((unsigned char *)&r, sizeof r), 1);
        serial = (long)(r & 0x7fffffff) + 1;
    }
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
    assert_int_equal(X509_set_subject_name(x, subject), 1);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject), 1);
    time_t now = time(NULL);
    time_t nb = spec->not_before ? spec->not_before : now - 3600;
    time_t na = spec->not_after ? spec->not_after : now + 365 * 86400;
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), nb));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), na));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    if (spec->ca) {
        BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
        assert_non_null(bc);
        bc->ca = 1;
        add_ext(x, NID_basic_constraints, bc, 1);
        BASIC_CONSTRAINTS_free(bc);
    }
    if (spec->key_usage) {
        ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
        assert_non_null(ku);
        /* KU_* values are the DER bit string's first two bytes, bit 0 = 0x80 */
        for (int bit = 0; bit < 9; bit++) {
            uint32_t mask = bit < 8 ? (0x80u >> bit) : 0x8000u;
            if (spec->key_usage & mask)
                assert_int_equal(ASN1_BIT_STRING_set_bit(ku, bit, 1), 1);
        }
        add_ext(x, NID_key_usage, ku, 1);
        ASN1_BIT_STRING_free(ku);
    }
    /* key identifiers, so that chains build the way real ones do */
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ski = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    assert_non_null(ski);
    assert_int_equal(X509_add_ext(x, ski, -1), 1);
    X509_EXTENSION_free(ski);
    if (issuer) {
        X509_EXTENSION *aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
        assert_non_null(aki);
        assert_int_equal(X509_add_ext(x, aki, -1), 1);
        X509_EXTENSION_free(aki);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, spec->md ? spec->md : EVP_sha256()) > 0);
    X509_NAME_free(subject);
    return x;
}

X509 *h_ca_new(EVP_PKEY *key, const char *subject)
{
    h_cert_spec s = {
        .subject = subject, .ca = true, .key_usage = KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE};
    return h_cert_make(&s, key, NULL, NULL);
}

X509 *h_cert_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *subject, uint32_t key_usage)
{
    h_cert_spec s = {.subject = subject, .key_usage = key_usage};
    return h_cert_make(&s, key, ca, ca_key);
}

X509_CRL *h_crl_make(X509 *ca, EVP_PKEY *ca_key, X509 *revoked)
{
    X509_CRL *crl = X509_CRL_new();
    assert_non_null(crl);
    assert_int_equal(X509_CRL_set_version(crl, X509_CRL_VERSION_2), 1);
    assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)), 1);
    time_t now = time(NULL);
    ASN1_TIME *t = ASN1_TIME_set(NULL, now - 3600);
    assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
    ASN1_TIME_set(t, now + 7 * 86400);
    assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
    if (revoked) {
        X509_REVOKED *r = X509_REVOKED_new();
        assert_non_null(r);
        assert_int_equal(X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked)), 1);
        ASN1_TIME_set(t, now - 1800);
        assert_int_equal(X509_REVOKED_set_revocationDate(r, t), 1);
        assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
    }
    ASN1_TIME_free(t);
    assert_int_equal(X509_CRL_sort(crl), 1);
    assert_true(X509_CRL_sign(crl, ca_key, EVP_sha256()) > 0);
    return crl;
}

STACK_OF(X509) * h_stack(X509 *first, ...)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    assert_non_null(s);
    va_list ap;
    va_start(ap, first);
    for (X509 *x = first; x; x = va_arg(ap, X509 *)) {
        assert_true(sk_X509_push(s, x) > 0);
        X509_up_ref(x);
    }
    va_end(ap);
    return s;
}

void h_stack_free(STACK_OF(X509) * s)
{
    sk_X509_pop_free(s, X509_free);
}

uint8_t *h_cert_der(X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der;
}

const char *h_subject(X509 *x, char *buf, size_t len)
{
    crypto_name_oneline(X509_get_subject_name(x), buf, len);
    return buf;
}

/* ---- vectors ---- */

int h_vector_read(const char *rel, uint8_t **data, size_t *len)
{
    const char *dir = getenv("SCEP_VECTORS");
    struct stat st;
    if (!dir || !*dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        fail_msg(
            "SCEP_VECTORS (%s) is not a folder: run the tests through meson or tests/run, which point it "
            "at tests/vectors",
            dir ? dir : "unset");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    util_error err = {0};
    if (util_file_read(path, 1u << 20, data, len, &err) != 0)
        fail_msg("vector %s missing or unreadable (%s): restore tests/vectors from git", rel, err.detail);
    return 0;
}

X509 *h_vector_cert(const char *rel)
{
    uint8_t *data = NULL;
    size_t len = 0;
    H_VECTOR_READ(rel, &data, &len);
    X509 *x = NULL;
    util_error err = {0};
    int rc = crypto_cert_load(data, len, &x, &err);
    free(data);
    if (rc != 0)
        fail_msg("vector %s missing or unreadable (%s): restore tests/vectors from git", rel, err.detail);
    return x;
}

/* ---- files ---- */

char *h_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* ---- mutators ---- */

uint8_t *h_dup(const uint8_t *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    return copy;
}

uint8_t *h_flip_bit(const uint8_t *data, size_t len, size_t bit)
{
    assert_true(bit / 8 < len);
    uint8_t *copy = h_dup(data, len);
    copy[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
    return copy;
}

long h_find(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t needle_len)
{
    const uint8_t *p = needle_len ? memmem(hay, hay_len, needle, needle_len) : NULL;
    return p ? (long)(p - hay) : -1;
}

typedef STACK_OF(X509_ATTRIBUTE) H_ATTRIBUTES;
ASN1_ITEM_TEMPLATE(H_ATTRIBUTES) = ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SET_ORDER, 0, H_ATTRIBUTES, X509_ATTRIBUTE)
                                       ASN1_ITEM_TEMPLATE_END(H_ATTRIBUTES)

                                           static CMS_SignerInfo
                                   * first_signer(CMS_ContentInfo * cms)
{
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
    assert_non_null(sis);
    assert_true(sk_CMS_SignerInfo_num(sis) > 0);
    return sk_CMS_SignerInfo_value(sis, 0);
}

uint8_t *h_resign(const uint8_t *der, size_t len, const char *oid, int type, const void *value, int value_len,
                  EVP_PKEY *key, const EVP_MD *md, X509 *add_cert, size_t *out_len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    assert_non_null(cms);
    CMS_SignerInfo *si = first_signer(cms);
    if (oid) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        assert_non_null(obj);
        int idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
        if (idx >= 0)
            X509_ATTRIBUTE_free(CMS_signed_delete_attr(si, idx));
        assert_int_equal(CMS_signed_add1_attr_by_OBJ(si, obj, type, value, value_len), 1);
        ASN1_OBJECT_free(obj);
    }
    X509_ALGOR *dig = NULL, *sig = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
    if (!md) {
        md = EVP_get_digestbyobj(dig->algorithm);
        assert_non_null(md);
    }
    /* the signature algorithm follows the new key */
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        X509_ALGOR_set0(sig, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL);
    } else {
        int signid = NID_undef;
        assert_int_equal(OBJ_find_sigid_by_algs(&signid, EVP_MD_get_type(md), EVP_PKEY_EC), 1);
        X509_ALGOR_set0(sig, OBJ_nid2obj(signid), V_ASN1_UNDEF, NULL);
    }
    STACK_OF(X509_ATTRIBUTE) *attrs = sk_X509_ATTRIBUTE_new_null();
    assert_non_null(attrs);
    for (int i = 0; i < CMS_signed_get_attr_count(si); i++)
        assert_true(sk_X509_ATTRIBUTE_push(attrs, CMS_signed_get_attr(si, i)) > 0);
    unsigned char *abuf = NULL;
    int alen = ASN1_item_i2d((ASN1_VALUE *)attrs, &abuf, ASN1_ITEM_rptr(H_ATTRIBUTES));
    sk_X509_ATTRIBUTE_free(attrs);
    assert_true(alen > 0);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    size_t siglen = 0;
    assert_non_null(mctx);
    assert_true(EVP_DigestSignInit(mctx, NULL, md, NULL, key) > 0);
    assert_true(EVP_DigestSign(mctx, NULL, &siglen, abuf, (size_t)alen) > 0);
    unsigned char *sigbuf = OPENSSL_malloc(siglen);
    assert_non_null(sigbuf);
    assert_true(EVP_DigestSign(mctx, sigbuf, &siglen, abuf, (size_t)alen) > 0);
    assert_int_equal(ASN1_STRING_set(CMS_SignerInfo_get0_signature(si), sigbuf, (int)siglen), 1);
    OPENSSL_free(sigbuf);
    OPENSSL_free(abuf);
    EVP_MD_CTX_free(mctx);
    if (add_cert)
        assert_int_equal(CMS_add1_cert(cms, add_cert), 1);
    unsigned char *out = NULL;
    int n = i2d_CMS_ContentInfo(cms, &out);
    assert_true(n > 0);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    *out_len = (size_t)n;
    return out;
}

long h_signature_offset(const uint8_t *der, size_t len, size_t *sig_len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    assert_non_null(cms);
    ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(first_signer(cms));
    *sig_len = (size_t)ASN1_STRING_length(sig);
    long off = h_find(der, len, ASN1_STRING_get0_data(sig), *sig_len);
    CMS_ContentInfo_free(cms);
    return off;
}

long h_signed_attrs_offset(const uint8_t *der, size_t len, size_t *attrs_len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    assert_non_null(cms);
    CMS_SignerInfo *si = first_signer(cms);
    STACK_OF(X509_ATTRIBUTE) *attrs = sk_X509_ATTRIBUTE_new_null();
    assert_non_null(attrs);
    for (int i = 0; i < CMS_signed_get_attr_count(si); i++)
        assert_true(sk_X509_ATTRIBUTE_push(attrs, CMS_signed_get_attr(si, i)) > 0);
    unsigned char *abuf = NULL;
    int alen = ASN1_item_i2d((ASN1_VALUE *)attrs, &abuf, ASN1_ITEM_rptr(H_ATTRIBUTES));
    sk_X509_ATTRIBUTE_free(attrs);
    CMS_ContentInfo_free(cms);
    assert_true(alen > 2);
    /* the SET tag (0x31) is sent as [0] (0xA0): match from the length on */
    long off = h_find(der, len, abuf + 1, (size_t)alen - 1);
    OPENSSL_free(abuf);
    if (off < 1 || der[off - 1] != 0xa0)
        return -1;
    *attrs_len = (size_t)alen;
    return off - 1;
}
