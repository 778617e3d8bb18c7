/* CA-side key operations for scepca (see issue.h). */
#include "crypto/issue.h"

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/file.h"

#define ISSUE_MAX_SERIAL 20 /* RFC 5280 §4.1.2.2 */

int crypto_ca_random_bytes(uint8_t *out, size_t len, util_error *err)
{
    if (RAND_bytes(out, (int)len) != 1)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "random number generator failed");
    return 0;
}

int crypto_ca_random_serial(uint8_t serial[CRYPTO_SERIAL_LEN], char hex[CRYPTO_SERIAL_HEX], util_error *err)
{
    if (crypto_ca_random_bytes(serial, CRYPTO_SERIAL_LEN, err) != 0)
        return -1;
    serial[0] &= 0x7f; /* positive */
    serial[0] |= 0x40; /* and never short or zero */
    util_hex(serial, CRYPTO_SERIAL_LEN, hex, 1);
    return 0;
}

void crypto_issue_serial_hex(X509 *cert, char hex[CRYPTO_SERIAL_HEX])
{
    hex[0] = '\0';
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *s = bn ? BN_bn2hex(bn) : NULL;
    if (s) {
        snprintf(hex, CRYPTO_SERIAL_HEX, "%s", s);
        OPENSSL_free(s);
    }
    BN_free(bn);
}

static int set_serial(X509 *x, const uint8_t *serial, size_t len, util_error *err)
{
    int rc = -1;
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    if (!serial || len == 0 || len > ISSUE_MAX_SERIAL) {
        util_error_set(err, UTIL_ERR_INTERNAL, "serial number of %zu bytes", len);
        goto out;
    }
    bn = BN_bin2bn(serial, (int)len, NULL);
    ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    if (!ai || X509_set_serialNumber(x, ai) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "setting the serial number");
        goto out;
    }
    rc = 0;
out:
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return rc;
}

static int set_validity(X509 *x, time_t not_before, time_t not_after, util_error *err)
{
    if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "setting the validity period");
    return 0;
}

/* Adds an extension written in openssl.cnf syntax, with issuer/subject set. */
static int add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value, util_error *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "building extension %s=%s", OBJ_nid2sn(nid), value);
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ok != 1)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "adding extension %s", OBJ_nid2sn(nid));
    return 0;
}

static int sign_cert(X509 *x, EVP_PKEY *key, const EVP_MD *md, util_error *err)
{
    /* EdDSA-style keys take no digest; RSA and EC take the one given. */
    if (X509_sign(x, key, md ? md : EVP_sha256()) <= 0)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "signing the certificate");
    return 0;
}

int crypto_ca_create(EVP_PKEY *key, const X509_NAME *subject, const uint8_t *serial, size_t serial_len,
                     time_t now, int days, X509 **out, util_error *err)
{
    int rc = -1;
    X509 *x = X509_new();
    if (!x || X509_set_version(x, 2) != 1 || X509_set_subject_name(x, subject) != 1 ||
        X509_set_issuer_name(x, subject) != 1 || X509_set_pubkey(x, key) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "building the CA certificate");
        goto out;
    }
    if (set_serial(x, serial, serial_len, err) != 0 ||
        set_validity(x, now - 3600, now + (time_t)days * 86400, err) != 0 ||
        add_conf_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE", err) != 0 ||
        add_conf_ext(x, NULL, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign", err) != 0 ||
        add_conf_ext(x, NULL, NID_subject_key_identifier, "hash", err) != 0 ||
        add_conf_ext(x, NULL, NID_authority_key_identifier, "keyid:always", err) != 0 ||
        sign_cert(x, key, EVP_sha256(), err) != 0)
        goto out;
    *out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    return rc;
}

int crypto_issue_csr_verify(X509_REQ *req, util_error *err)
{
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (!pub)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "the request has no usable public key");
    if (X509_REQ_verify(req, pub) != 1)
        return util_error_ossl(err, UTIL_ERR_INTERNAL,
                               "the request's signature does not verify (RFC 2986 §4.2)");
    return 0;
}

/* A PKCS#10 request as RFC 2986 §4.1 has it, read with the components of
 * OpenSSL's own X509_REQ template, except that the SubjectPublicKeyInfo
 * stays an algorithm and a BIT STRING: OpenSSL 3.0 runs a decoder over every
 * X509_PUBKEY it reads, and building that decoder costs about 1.3 M
 * instructions, a sixth of what scepca spends on an enrollment beside its
 * three RSA operations (docs/benchmarks.md). The enc member keeps the
 * request info's encoding for the signature check, as X509_REQ's does. */
typedef struct csr_spki {
    X509_ALGOR *algor;
    ASN1_BIT_STRING *public_key;
} CSR_SPKI;

typedef struct csr_info {
    ASN1_ENCODING enc;
    ASN1_INTEGER *version;
    X509_NAME *subject;
    CSR_SPKI *spki;
    STACK_OF(X509_ATTRIBUTE) * attributes;
} CSR_INFO;

typedef struct csr {
    CSR_INFO *info;
    X509_ALGOR *sig_alg;
    ASN1_BIT_STRING *signature;
} CSR;

/* clang-format off */
ASN1_SEQUENCE(CSR_SPKI) = {
    ASN1_SIMPLE(CSR_SPKI, algor, X509_ALGOR),
    ASN1_SIMPLE(CSR_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_SPKI)

ASN1_SEQUENCE_enc(CSR_INFO, enc, NULL) = {
    ASN1_SIMPLE(CSR_INFO, version, ASN1_INTEGER),
    ASN1_SIMPLE(CSR_INFO, subject, X509_NAME),
    ASN1_SIMPLE(CSR_INFO, spki, CSR_SPKI),
    ASN1_IMP_SET_OF_OPT(CSR_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(CSR_INFO, CSR_INFO)

ASN1_SEQUENCE(CSR) = {
    ASN1_SIMPLE(CSR, info, CSR_INFO),
    ASN1_SIMPLE(CSR, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(CSR, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR)
/* (a declaration ends the unformatted part: the templates end without a
 * semicolon, and clang-format would indent what follows them) */
static EVP_PKEY *csr_rsa_key(const CSR_SPKI *spki);
/* clang-format on */

/* An rsaEncryption key (parameters absent or NULL, no unused bits) as a
 * PKCS#1 RSAPublicKey, through d2i_PublicKey's template: no decoder. NULL
 * for any other key or encoding, which then takes d2i_X509_REQ's path. */
static EVP_PKEY *csr_rsa_key(const CSR_SPKI *spki)
{
    const ASN1_OBJECT *oid = NULL;
    int ptype = V_ASN1_UNDEF;
    const void *pval = NULL;
    X509_ALGOR_get0(&oid, &ptype, &pval, spki->algor);
    const ASN1_BIT_STRING *bits = spki->public_key;
    if (OBJ_obj2nid(oid) != NID_rsaEncryption || (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL) ||
        (bits->flags & 0x07) || bits->length <= 0)
        return NULL;
    const unsigned char *p = bits->data;
    EVP_PKEY *key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, bits->length);
    if (key && p != bits->data + bits->length) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    ERR_clear_error();
    return key;
}

/* The X509_REQ that the rest of scepca reads, from a request already read
 * and verified (version 1, as X509_REQ_new makes it): subject, attributes
 * and signature copied, the key set as a legacy RSA key (X509_REQ_set_pubkey
 * then encodes it with the key type's own method, not an OpenSSL 3.0
 * encoder). */
static X509_REQ *csr_to_req(const CSR *c, EVP_PKEY *key)
{
    X509_REQ *req = X509_REQ_new();
    ASN1_BIT_STRING *sig = ASN1_STRING_dup(c->signature);
    if (!req || !sig || X509_REQ_set_subject_name(req, c->info->subject) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_set1_signature_algo(req, c->sig_alg) != 1)
        goto fail;
    for (int i = 0; i < sk_X509_ATTRIBUTE_num(c->info->attributes); i++)
        if (X509_REQ_add1_attr(req, sk_X509_ATTRIBUTE_value(c->info->attributes, i)) != 1)
            goto fail;
    X509_REQ_set0_signature(req, sig);
    return req;
fail:
    ASN1_BIT_STRING_free(sig);
    X509_REQ_free(req);
    return NULL;
}

static int csr_read_general(const unsigned char *der, size_t len, X509_REQ **out, util_error *err)
{
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
    if (!req || p != der + len) {
        X509_REQ_free(req);
        ERR_clear_error();
        return CRYPTO_CSR_UNREADABLE;
    }
    if (crypto_issue_csr_verify(req, err) != 0) {
        X509_REQ_free(req);
        return -1;
    }
    *out = req;
    return 0;
}

int crypto_issue_csr_read(const unsigned char *der, size_t len, X509_REQ **out, util_error *err)
{
    *out = NULL;
    if (len == 0 || len > LONG_MAX)
        return CRYPTO_CSR_UNREADABLE;
    const unsigned char *p = der;
    CSR *c = (CSR *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(CSR));
    if (!c || p != der + len) {
        ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(CSR));
        ERR_clear_error();
        return CRYPTO_CSR_UNREADABLE;
    }
    EVP_PKEY *key =
        ASN1_INTEGER_get(c->info->version) == X509_REQ_VERSION_1 ? csr_rsa_key(c->info->spki) : NULL;
    int rc;
    if (!key) {
        /* another key type, another version, an odd encoding: OpenSSL's
         * own reading, decoder included */
        rc = csr_read_general(der, len, out, err);
    } else if (ASN1_item_verify(ASN1_ITEM_rptr(CSR_INFO), c->sig_alg, c->signature, c->info, key) != 1) {
        rc = util_error_ossl(err, UTIL_ERR_INTERNAL,
                             "the request's signature does not verify (RFC 2986 §4.2)");
    } else if (!(*out = csr_to_req(c, key))) {
        rc = util_error_ossl(err, UTIL_ERR_INTERNAL, "out of memory");
    } else {
        rc = 0;
    }
    EVP_PKEY_free(key);
    ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(CSR));
    return rc;
}

int crypto_issue_csr_challenge(X509_REQ *req, char **out, size_t *out_len, util_error *err)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    int idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
    if (idx < 0)
        return 1;
    X509_ATTRIBUTE *attr = X509_REQ_get_attr(req, idx);
    ASN1_TYPE *t = attr ? X509_ATTRIBUTE_get0_type(attr, 0) : NULL;
    if (!t)
        return util_error_set(err, UTIL_ERR_INTERNAL, "challengePassword attribute is empty");
    switch (t->type) {
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_UTF8STRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
    case V_ASN1_VISIBLESTRING:
    case V_ASN1_OCTET_STRING:
    case V_ASN1_BMPSTRING: break;
    default:
        return util_error_set(err, UTIL_ERR_INTERNAL,
                              "challengePassword has ASN.1 type %d, not a DirectoryString", t->type);
    }
    const ASN1_STRING *s = t->value.asn1_string;
    int len = ASN1_STRING_length(s);
    if (len < 0 || len > 1024)
        return util_error_set(err, UTIL_ERR_INTERNAL, "challengePassword too long");
    char *p = malloc((size_t)len + 1);
    if (!p)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    memcpy(p, ASN1_STRING_get0_data(s), (size_t)len);
    p[len] = '\0';
    *out = p;
    if (out_len)
        *out_len = (size_t)len + 1;
    return 0;
}

void crypto_issue_csr_subject(X509_REQ *req, char *out, size_t len)
{
    crypto_name_oneline(X509_REQ_get_subject_name(req), out, len);
}

int crypto_issue_csr_san_count(X509_REQ *req)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    int count = 0;
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts) && count >= 0; i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name)
            continue;
        GENERAL_NAMES *names = X509V3_EXT_d2i(e);
        count = names ? count + sk_GENERAL_NAME_num(names) : -1;
        GENERAL_NAMES_free(names);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return count;
}

/* keyUsage of the request without keyCertSign and cRLSign (bits 5 and 6,
 * RFC 5280 4.2.1.3): only a CA may hold them. Nothing is added when no
 * other bit is left. */
static int copy_key_usage(X509_EXTENSION *e, X509 *x, util_error *err)
{
    ASN1_BIT_STRING *ku = X509V3_EXT_d2i(e);
    int rc = 0;
    if (!ku)
        return util_error_ossl(err, UTIL_ERR_INVALID_FIELD, "the request's keyUsage does not decode");
    if (ASN1_BIT_STRING_set_bit(ku, 5, 0) != 1 || ASN1_BIT_STRING_set_bit(ku, 6, 0) != 1)
        rc = util_error_ossl(err, UTIL_ERR_INTERNAL, "keyUsage");
    bool any = false;
    for (int bit = 0; bit < 9; bit++)
        any = any || ASN1_BIT_STRING_get_bit(ku, bit);
    if (rc == 0 && any &&
        X509_add1_ext_i2d(x, NID_key_usage, ku, X509_EXTENSION_get_critical(e), X509V3_ADD_DEFAULT) != 1)
        rc = util_error_ossl(err, UTIL_ERR_INTERNAL, "copying keyUsage");
    ASN1_BIT_STRING_free(ku);
    return rc;
}

/* Copies SAN, keyUsage and extKeyUsage from the request, nothing else: a
 * client does not get to ask for basicConstraints cA:TRUE, nor for the key
 * usages of a CA (copy_key_usage). */
static int copy_request_extensions(X509_REQ *req, X509 *x, util_error *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    int rc = 0;
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(e));
        if (nid != NID_subject_alt_name && nid != NID_key_usage && nid != NID_ext_key_usage)
            continue;
        if (nid == NID_key_usage) {
            if ((rc = copy_key_usage(e, x, err)) != 0)
                break;
            continue;
        }
        if (X509_add_ext(x, e, -1) != 1) {
            rc = util_error_ossl(err, UTIL_ERR_INTERNAL, "copying %s", OBJ_nid2sn(nid));
            break;
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

/* Copies the request's SubjectPublicKeyInfo as it is (algorithm,
 * parameters, key bits). X509_set_pubkey would run an OpenSSL 3 encoder and
 * then a decoder over the same bytes: about a tenth of scepca's CPU per
 * enrollment. Parameters other than none, NULL, an OID (EC curves) or a
 * SEQUENCE (DSA, RSASSA-PSS) take the general path. 1: not copied. */
static int copy_spki(X509 *x, X509_REQ *req)
{
    ASN1_OBJECT *alg_oid = NULL;
    const unsigned char *bits = NULL;
    int bits_len = 0, ptype = V_ASN1_UNDEF;
    X509_ALGOR *alg = NULL;
    const void *pval = NULL;
    X509_PUBKEY *from = X509_REQ_get_X509_PUBKEY(req);
    if (!from || X509_PUBKEY_get0_param(&alg_oid, &bits, &bits_len, &alg, from) != 1 || !bits ||
        bits_len <= 0)
        return 1;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    void *param = NULL;
    if (ptype == V_ASN1_OBJECT)
        param = OBJ_dup(pval);
    else if (ptype == V_ASN1_SEQUENCE)
        param = ASN1_STRING_dup(pval);
    else if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL)
        return 1;
    ASN1_OBJECT *oid = OBJ_dup(alg_oid);
    unsigned char *copy = OPENSSL_memdup(bits, (size_t)bits_len);
    if ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && !param)
        goto fail;
    if (!oid || !copy ||
        X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), oid, ptype, param, copy, bits_len) != 1)
        goto fail;
    return 0;
fail:
    ASN1_OBJECT_free(oid);
    OPENSSL_free(copy);
    if (ptype == V_ASN1_OBJECT)
        ASN1_OBJECT_free(param);
    else
        ASN1_STRING_free(param);
    return 1;
}

/* The fields every issued end-entity certificate shares: the public key
 * comes from req when given, else from pub. */
static int build_leaf(X509 *x, const X509_NAME *subject, X509_REQ *req, EVP_PKEY *pub, X509 *ca_cert,
                      const crypto_issue_params *p, util_error *err)
{
    if (X509_set_version(x, 2) != 1 || X509_set_subject_name(x, subject) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca_cert)) != 1 ||
        ((!req || copy_spki(x, req) != 0) && X509_set_pubkey(x, pub) != 1))
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "building the certificate");
    if (set_serial(x, p->serial, p->serial_len, err) != 0 ||
        set_validity(x, p->not_before, p->not_after, err) != 0 ||
        add_conf_ext(x, ca_cert, NID_basic_constraints, "critical,CA:FALSE", err) != 0 ||
        add_conf_ext(x, ca_cert, NID_subject_key_identifier, "hash", err) != 0 ||
        add_conf_ext(x, ca_cert, NID_authority_key_identifier, "keyid:always", err) != 0)
        return -1;
    return 0;
}

int crypto_issue_from_csr(X509_REQ *req, X509 *ca_cert, EVP_PKEY *ca_key, const crypto_issue_params *p,
                          X509 **out, util_error *err)
{
    int rc = -1;
    X509 *x = X509_new();
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (!x || !pub) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "the request has no usable public key");
        goto out;
    }
    if (build_leaf(x, X509_REQ_get_subject_name(req), req, pub, ca_cert, p, err) != 0 ||
        copy_request_extensions(req, x, err) != 0 || sign_cert(x, ca_key, p->digest, err) != 0)
        goto out;
    *out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    return rc;
}

int crypto_issue_ra(crypto_ra_kind kind, EVP_PKEY *key, const X509_NAME *subject, X509 *ca_cert,
                    EVP_PKEY *ca_key, const crypto_issue_params *p, X509 **out, util_error *err)
{
    int rc = -1;
    X509 *x = X509_new();
    const char *ku = kind == CRYPTO_RA_ENCRYPT ? "critical,keyEncipherment" : "critical,digitalSignature";
    if (!x) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "building the RA certificate");
        goto out;
    }
    if (build_leaf(x, subject, NULL, key, ca_cert, p, err) != 0 ||
        add_conf_ext(x, ca_cert, NID_key_usage, ku, err) != 0 ||
        add_conf_ext(x, ca_cert, NID_ext_key_usage, "1.3.6.1.4.1.311.20.2.1", err) != 0 ||
        sign_cert(x, ca_key, p->digest, err) != 0)
        goto out;
    *out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    return rc;
}

static int add_revoked(X509_CRL *crl, const crypto_crl_entry *e, util_error *err)
{
    int rc = -1;
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *when = NULL;
    X509_REVOKED *r = X509_REVOKED_new();
    if (!r || BN_hex2bn(&bn, e->serial_hex) == 0 || !(serial = BN_to_ASN1_INTEGER(bn, NULL)) ||
        !(when = ASN1_TIME_set(NULL, e->revoked_at)) || X509_REVOKED_set_serialNumber(r, serial) != 1 ||
        X509_REVOKED_set_revocationDate(r, when) != 1 || X509_CRL_add0_revoked(crl, r) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "adding serial %s to the CRL", e->serial_hex);
        goto out;
    }
    r = NULL;
    rc = 0;
out:
    X509_REVOKED_free(r);
    ASN1_TIME_free(when);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return rc;
}

static int crl_add_aki(X509_CRL *crl, X509 *ca_cert, util_error *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca_cert, NULL, NULL, crl, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    if (!ext)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "building the CRL's AKI");
    int ok = X509_CRL_add_ext(crl, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : util_error_ossl(err, UTIL_ERR_INTERNAL, "adding the CRL's AKI");
}

int crypto_ca_crl_build(X509 *ca_cert, EVP_PKEY *ca_key, const crypto_crl_entry *entries, size_t count,
                        time_t now, int next_update_days, X509_CRL **out, util_error *err)
{
    int rc = -1;
    ASN1_TIME *last = ASN1_TIME_set(NULL, now);
    ASN1_TIME *next = ASN1_TIME_set(NULL, now + (time_t)next_update_days * 86400);
    ASN1_INTEGER *number = ASN1_INTEGER_new();
    X509_CRL *crl = X509_CRL_new();
    if (!crl || !last || !next || !number || X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert)) != 1 ||
        X509_CRL_set1_lastUpdate(crl, last) != 1 || X509_CRL_set1_nextUpdate(crl, next) != 1 ||
        ASN1_INTEGER_set_int64(number, (int64_t)now) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "building the CRL");
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        if (add_revoked(crl, &entries[i], err) != 0)
            goto out;
    if (crl_add_aki(crl, ca_cert, err) != 0)
        goto out;
    if (X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) != 1 || X509_CRL_sort(crl) != 1 ||
        X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "signing the CRL");
        goto out;
    }
    *out = crl;
    crl = NULL;
    rc = 0;
out:
    X509_CRL_free(crl);
    ASN1_INTEGER_free(number);
    ASN1_TIME_free(next);
    ASN1_TIME_free(last);
    return rc;
}

int crypto_ca_sign_data(X509 *cert, EVP_PKEY *key, const EVP_MD *md, const uint8_t *data, size_t len,
                        uint8_t **der, size_t *der_len, util_error *err)
{
    int rc = -1;
    unsigned flags = CMS_BINARY | CMS_NOSMIMECAP | CMS_PARTIAL;
    BIO *in = BIO_new_mem_buf(data, (int)len);
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    unsigned char *p = NULL;
    if (!in || !cms || !CMS_add1_signer(cms, cert, key, md ? md : EVP_sha256(), flags) ||
        CMS_final(cms, in, NULL, CMS_BINARY) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "signing the GetNextCACert reply");
        goto out;
    }
    int n = i2d_CMS_ContentInfo(cms, &p);
    if (n <= 0) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding the GetNextCACert reply");
        goto out;
    }
    *der = p;
    *der_len = (size_t)n;
    rc = 0;
out:
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rc;
}

bool crypto_issue_signed_by(X509 *cert, X509 *ca_cert)
{
    EVP_PKEY *pub = X509_get0_pubkey(ca_cert);
    if (!pub || X509_check_issued(ca_cert, cert) != X509_V_OK)
        return false;
    bool ok = X509_verify(cert, pub) == 1;
    ERR_clear_error();
    return ok;
}

bool crypto_issue_self_signed(X509 *cert)
{
    bool ok = X509_self_signed(cert, 1) == 1;
    ERR_clear_error();
    return ok;
}
