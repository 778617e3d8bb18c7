/* PKCS#10 requests and the self-signed certificate that signs a first
 * enrollment (RFC 8894 §2.3, §3.3.1). */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"

int crypto_key_usage_parse(const char *text, crypto_key_usage *out)
{
    static const struct {
        const char *name;
        crypto_key_usage ku;
    } names[] = {
        {"none", CRYPTO_KU_NONE},
        {"digitalSignature", CRYPTO_KU_DIGITAL_SIGNATURE},
        {"digital_signature", CRYPTO_KU_DIGITAL_SIGNATURE},
        {"keyEncipherment", CRYPTO_KU_KEY_ENCIPHERMENT},
        {"key_encipherment", CRYPTO_KU_KEY_ENCIPHERMENT},
        {"both", CRYPTO_KU_BOTH},
    };
    for (size_t i = 0; text && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(text, names[i].name) == 0) {
            *out = names[i].ku;
            return 0;
        }
    return -1;
}

const char *crypto_key_usage_name(crypto_key_usage ku)
{
    switch (ku) {
    case CRYPTO_KU_DIGITAL_SIGNATURE: return "digitalSignature";
    case CRYPTO_KU_KEY_ENCIPHERMENT: return "keyEncipherment";
    case CRYPTO_KU_BOTH: return "both";
    default: return "none";
    }
}

static int add_entry(X509_NAME *name, const char *field, const char *value, util_error *err)
{
    if (!value || !*value)
        return 0;
    if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)value, -1, -1, 0))
        return util_error_ossl(err, UTIL_ERR_INVALID_SUBJECT, "%s=\"%s\"", field, value);
    return 0;
}

static int build_subject(const crypto_csr_params *p, X509_NAME **out, util_error *err)
{
    if (p->subject && *p->subject)
        return crypto_name_parse(p->subject, out, err);
    if (p->renew_from && (!p->common_name || !*p->common_name)) {
        *out = X509_NAME_dup(X509_get_subject_name(p->renew_from));
        return *out ? 0 : util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    if (!p->common_name || !*p->common_name)
        return util_error_set(err, UTIL_ERR_INVALID_SUBJECT, "the common name is empty");
    if (p->country && strlen(p->country) != 2)
        return util_error_set(err, UTIL_ERR_INVALID_SUBJECT, "country \"%s\" is not two letters", p->country);
    X509_NAME *name = X509_NAME_new();
    if (!name)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (add_entry(name, "C", p->country, err) || add_entry(name, "ST", p->state, err) ||
        add_entry(name, "L", p->locality, err) || add_entry(name, "O", p->organization, err) ||
        add_entry(name, "OU", p->org_unit, err) || add_entry(name, "CN", p->common_name, err) ||
        add_entry(name, "emailAddress", p->email, err)) {
        X509_NAME_free(name);
        return -1;
    }
    *out = name;
    return 0;
}

static GENERAL_NAME *san_ip(const char *value)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(value);
    GENERAL_NAME *g = ip ? GENERAL_NAME_new() : NULL;
    if (!g) {
        ASN1_OCTET_STRING_free(ip);
        return NULL;
    }
    GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    return g;
}

static GENERAL_NAME *parse_san(const char *text)
{
    const char *colon = strchr(text, ':');
    if (!colon || colon == text || !colon[1])
        return NULL;
    size_t tlen = (size_t)(colon - text);
    const char *value = colon + 1;
    int type;
    if (tlen == 3 && !strncasecmp(text, "dns", 3))
        type = GEN_DNS;
    else if (tlen == 5 && !strncasecmp(text, "email", 5))
        type = GEN_EMAIL;
    else if (tlen == 3 && !strncasecmp(text, "uri", 3))
        type = GEN_URI;
    else if (tlen == 2 && !strncasecmp(text, "ip", 2))
        type = GEN_IPADD;
    else
        return NULL;
    if (type == GEN_IPADD)
        return san_ip(value);
    for (const char *c = value; *c; c++)
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
            return NULL; /* IA5String, no spaces */
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (!s || !g || !ASN1_STRING_set(s, value, -1)) {
        ASN1_IA5STRING_free(s);
        GENERAL_NAME_free(g);
        return NULL;
    }
    GENERAL_NAME_set0_value(g, type, s);
    return g;
}

static int add_extensions(const crypto_csr_params *p, EVP_PKEY *key, X509_REQ *req, util_error *err)
{
    int rc = -1;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    GENERAL_NAMES *sans = NULL;
    EXTENDED_KEY_USAGE *eku = NULL;
    ASN1_BIT_STRING *ku = NULL;
    if (!exts)
        goto oom;
    crypto_key_usage usage = p->key_usage;
    if (!p->key_usage_set && p->renew_from && (X509_get_extension_flags(p->renew_from) & EXFLAG_KUSAGE)) {
        uint32_t old = X509_get_key_usage(p->renew_from);
        usage = (old & KU_DIGITAL_SIGNATURE ? CRYPTO_KU_DIGITAL_SIGNATURE : 0) |
                (old & KU_KEY_ENCIPHERMENT ? CRYPTO_KU_KEY_ENCIPHERMENT : 0);
    } else if (!p->key_usage_set) {
        usage = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA ? CRYPTO_KU_BOTH : CRYPTO_KU_DIGITAL_SIGNATURE;
    }
    if (usage != CRYPTO_KU_NONE) {
        ku = ASN1_BIT_STRING_new();
        if (!ku || ((usage & CRYPTO_KU_DIGITAL_SIGNATURE) && !ASN1_BIT_STRING_set_bit(ku, 0, 1)) ||
            ((usage & CRYPTO_KU_KEY_ENCIPHERMENT) && !ASN1_BIT_STRING_set_bit(ku, 2, 1)) ||
            !X509V3_add1_i2d(&exts, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT))
            goto oom;
    }
    int old_san = p->renew_from ? X509_get_ext_by_NID(p->renew_from, NID_subject_alt_name, -1) : -1;
    if (!p->san_count && old_san >= 0) {
        X509_EXTENSION *ext = X509_EXTENSION_dup(X509_get_ext(p->renew_from, old_san));
        if (!ext || !sk_X509_EXTENSION_push(exts, ext)) {
            X509_EXTENSION_free(ext);
            goto oom;
        }
    }
    if (p->san_count) {
        sans = GENERAL_NAMES_new();
        for (size_t i = 0; sans && i < p->san_count; i++) {
            GENERAL_NAME *g = parse_san(p->sans[i]);
            if (!g) {
                util_error_set(err, UTIL_ERR_INVALID_SAN, "\"%s\"", p->sans[i]);
                goto out;
            }
            if (!sk_GENERAL_NAME_push(sans, g)) {
                GENERAL_NAME_free(g);
                goto oom;
            }
        }
        if (!sans || !X509V3_add1_i2d(&exts, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT))
            goto oom;
    }
    if (p->eku_count) {
        eku = sk_ASN1_OBJECT_new_null();
        for (size_t i = 0; eku && i < p->eku_count; i++) {
            ASN1_OBJECT *o = OBJ_txt2obj(p->ekus[i], 0);
            if (!o) {
                util_error_set(err, UTIL_ERR_INVALID_OID, "\"%s\"", p->ekus[i]);
                goto out;
            }
            if (!sk_ASN1_OBJECT_push(eku, o)) {
                ASN1_OBJECT_free(o);
                goto oom;
            }
        }
        if (!eku || !X509V3_add1_i2d(&exts, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT))
            goto oom;
    }
    if (p->template_name && *p->template_name) {
        /* Microsoft certificate template name (1.3.6.1.4.1.311.20.2), a BMPString */
        ASN1_STRING *bmp = NULL;
        ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.4.1.311.20.2", 1);
        unsigned char *der = NULL;
        int n = -1;
        if (ASN1_mbstring_copy(&bmp, (const unsigned char *)p->template_name, -1, MBSTRING_UTF8,
                               B_ASN1_BMPSTRING) > 0)
            n = i2d_ASN1_BMPSTRING(bmp, &der);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        X509_EXTENSION *ext = NULL;
        if (n > 0 && os && oid && ASN1_OCTET_STRING_set(os, der, n))
            ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, os);
        ASN1_STRING_free(bmp);
        ASN1_OBJECT_free(oid);
        ASN1_OCTET_STRING_free(os);
        OPENSSL_free(der);
        if (!ext || !sk_X509_EXTENSION_push(exts, ext)) {
            X509_EXTENSION_free(ext);
            goto oom;
        }
    }
    if (sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(req, exts))
        goto oom;
    rc = 0;
    goto out;
oom:
    util_error_ossl(err, UTIL_ERR_CSR_BUILD, "adding extensions");
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(sans);
    EXTENDED_KEY_USAGE_free(eku);
    ASN1_BIT_STRING_free(ku);
    return rc;
}

static bool printable(const char *s)
{
    return ASN1_PRINTABLE_type((const unsigned char *)s, -1) == V_ASN1_PRINTABLESTRING;
}

int crypto_csr_build(const crypto_csr_params *p, EVP_PKEY *key, X509_REQ **out, util_error *err)
{
    X509_NAME *subject = NULL;
    X509_REQ *req = X509_REQ_new();
    if (!req)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (build_subject(p, &subject, err) != 0)
        goto fail;
    if (!X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, subject) ||
        !X509_REQ_set_pubkey(req, key)) {
        util_error_ossl(err, UTIL_ERR_CSR_BUILD, "subject or key");
        goto fail;
    }
    if (add_extensions(p, key, req, err) != 0)
        goto fail;
    if (p->challenge_password && *p->challenge_password) {
        /* An MBSTRING_* type would go through OpenSSL's global string mask
         * (UTF8String only by default): name the type, with an explicit
         * length. Non-printable passwords keep MBSTRING_UTF8, which also
         * rejects invalid UTF-8. */
        const char *pw = p->challenge_password;
        bool ps = printable(pw);
        if (!X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                       ps ? V_ASN1_PRINTABLESTRING : MBSTRING_UTF8, (const unsigned char *)pw,
                                       ps ? (int)strlen(pw) : -1)) {
            util_error_ossl(err, UTIL_ERR_CSR_BUILD, "challenge password");
            goto fail;
        }
    }
    if (crypto_sign_x509_req(req, key, p->digest ? p->digest : EVP_sha256()) != 0) {
        util_error_ossl(
            err, crypto_key_storage_of(key) == CRYPTO_KEY_TPM2 ? UTIL_ERR_TPM_OPERATION : UTIL_ERR_CSR_BUILD,
            "signing with %s", p->digest ? EVP_MD_get0_name(p->digest) : "SHA256");
        goto fail;
    }
    X509_NAME_free(subject);
    *out = req;
    return 0;
fail:
    X509_NAME_free(subject);
    X509_REQ_free(req);
    return -1;
}

int crypto_selfsigned_build(EVP_PKEY *key, const X509_NAME *subject, const EVP_MD *md, time_t now, int days,
                            X509 **out, util_error *err)
{
    X509 *x = X509_new();
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    BIGNUM *serial = BN_new();
    int rc = -1;
    if (!x || !ku || !serial)
        goto fail;
    /* a random positive serial of 64 bits */
    if (!BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)))
        goto fail;
    if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, subject) ||
        !X509_set_issuer_name(x, subject) || !X509_set_pubkey(x, key) ||
        !X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &now) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now))
        goto fail;
    bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    if (!ASN1_BIT_STRING_set_bit(ku, 0, 1) || (rsa && !ASN1_BIT_STRING_set_bit(ku, 2, 1)) ||
        (!rsa && !ASN1_BIT_STRING_set_bit(ku, 4, 1)) ||
        !X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT))
        goto fail;
    if (crypto_sign_x509(x, key, md ? md : EVP_sha256()) != 0)
        goto fail;
    rc = 0;
    *out = x;
    x = NULL;
fail:
    if (rc != 0)
        util_error_ossl(
            err, crypto_key_storage_of(key) == CRYPTO_KEY_TPM2 ? UTIL_ERR_TPM_OPERATION : UTIL_ERR_CSR_BUILD,
            "building the self-signed signer certificate");
    X509_free(x);
    ASN1_BIT_STRING_free(ku);
    BN_free(serial);
    return rc;
}
