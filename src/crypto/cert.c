/* Certificates: loading, output, fingerprints and inspection. */
#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "util/file.h"
#include "util/ossl.h"

#define CERT_FILE_MAX (4u << 20)

int crypto_certs_load(const uint8_t *data, size_t len, STACK_OF(X509) * *out, util_error *err)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (!certs)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (len > 11 && memmem(data, len, "-----BEGIN", 10)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        X509 *x;
        while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
            if (sk_X509_push(certs, x) <= 0)
                X509_free(x);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;
        X509 *x = d2i_X509(NULL, &p, (long)len);
        if (x && sk_X509_push(certs, x) <= 0)
            X509_free(x);
        if (!x) { /* a PKCS#7 bundle */
            p = data;
            CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
            STACK_OF(X509) *in = cms ? CMS_get1_certs(cms) : NULL;
            CMS_ContentInfo_free(cms);
            if (in) {
                util_x509_stack_free(certs);
                certs = in;
            }
        }
    }
    ERR_clear_error();
    if (sk_X509_num(certs) == 0) {
        util_x509_stack_free(certs);
        return util_error_set(err, UTIL_ERR_INPUT_CERT, "no certificate found");
    }
    *out = certs;
    return 0;
}

int crypto_cert_load(const uint8_t *data, size_t len, X509 **out, util_error *err)
{
    STACK_OF(X509) *certs = NULL;
    if (crypto_certs_load(data, len, &certs, err) != 0)
        return -1;
    *out = sk_X509_shift(certs);
    util_x509_stack_free(certs);
    return 0;
}

int crypto_certs_load_file(const char *path, STACK_OF(X509) * *out, util_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (util_file_read(path, CERT_FILE_MAX, &data, &len, err) != 0)
        return -1;
    int rc = crypto_certs_load(data, len, out, err);
    if (rc != 0)
        util_error_set(err, UTIL_ERR_INPUT_CERT, "%s: no certificate found", path);
    free(data);
    return rc;
}

int crypto_cert_load_file(const char *path, X509 **out, util_error *err)
{
    STACK_OF(X509) *certs = NULL;
    if (crypto_certs_load_file(path, &certs, err) != 0)
        return -1;
    *out = sk_X509_shift(certs);
    util_x509_stack_free(certs);
    return 0;
}

int crypto_certs_to_pem(STACK_OF(X509) * certs, char **pem, size_t *len, util_error *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    for (int i = 0; bio && i < sk_X509_num(certs); i++)
        if (!PEM_write_bio_X509(bio, sk_X509_value(certs, i))) {
            BIO_free(bio);
            bio = NULL;
        }
    if (!bio)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding certificates");
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = malloc((size_t)n + 1);
    if (copy) {
        memcpy(copy, data, (size_t)n);
        copy[n] = '\0';
    }
    BIO_free(bio);
    if (!copy)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    *pem = copy;
    *len = (size_t)n;
    return 0;
}

int crypto_cert_to_pem(X509 *cert, char **pem, size_t *len, util_error *err)
{
    STACK_OF(X509) *one = sk_X509_new_null();
    if (!one || sk_X509_push(one, cert) <= 0) {
        sk_X509_free(one);
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    int rc = crypto_certs_to_pem(one, pem, len, err);
    sk_X509_free(one);
    return rc;
}

int crypto_certs_write_file(const char *path, STACK_OF(X509) * certs, util_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    if (crypto_certs_to_pem(certs, &pem, &len, err) != 0)
        return -1;
    int rc = util_file_write_atomic(path, pem, len, 0644, err);
    free(pem);
    return rc;
}

int crypto_cert_to_der(X509 *cert, uint8_t **der, size_t *len, util_error *err)
{
    unsigned char *buf = NULL;
    int n = i2d_X509(cert, &buf);
    if (n <= 0)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding a certificate");
    *der = buf;
    *len = (size_t)n;
    return 0;
}

void crypto_cert_fingerprint(X509 *cert, const EVP_MD *md, char *out, size_t len, bool colons)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (!X509_digest(cert, md, d, &n))
        return;
    size_t used = 0;
    for (unsigned int i = 0; i < n && used + 4 <= len; i++)
        used += (size_t)snprintf(out + used, len - used, colons && i ? ":%02X" : "%02X", d[i]);
}

static const EVP_MD *fingerprint_digest(const char **text)
{
    const char *t = *text;
    if (!strncasecmp(t, "sha256:", 7)) {
        *text = t + 7;
        return EVP_sha256();
    }
    if (!strncasecmp(t, "sha1:", 5)) {
        *text = t + 5;
        return EVP_sha1();
    }
    return NULL;
}

static int fingerprint_bytes(const char *text, const EVP_MD **md, uint8_t *out)
{
    const EVP_MD *explicit_md = fingerprint_digest(&text);
    int n = util_unhex(text, out, EVP_MAX_MD_SIZE);
    if (n == 32 && (!explicit_md || EVP_MD_get_size(explicit_md) == 32))
        *md = EVP_sha256();
    else if (n == 20 && (!explicit_md || EVP_MD_get_size(explicit_md) == 20))
        *md = EVP_sha1();
    else
        return -1;
    return n;
}

bool crypto_fingerprint_valid(const char *fingerprint)
{
    uint8_t want[EVP_MAX_MD_SIZE];
    const EVP_MD *md = NULL;
    return fingerprint && fingerprint_bytes(fingerprint, &md, want) > 0;
}

bool crypto_cert_matches_fingerprint(X509 *cert, const char *fingerprint)
{
    uint8_t want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    const EVP_MD *md = NULL;
    unsigned int n = 0;
    int wn = fingerprint_bytes(fingerprint, &md, want);
    return wn > 0 && X509_digest(cert, md, got, &n) && (int)n == wn && CRYPTO_memcmp(want, got, n) == 0;
}

bool crypto_cert_matches_key(X509 *cert, EVP_PKEY *key)
{
    return cert && key && X509_check_private_key(cert, key) == 1;
}

bool crypto_cert_is_ca(X509 *cert)
{
    return X509_check_ca(cert) > 0;
}

bool crypto_cert_is_self_signed(X509 *cert)
{
    bool ok = cert && X509_self_signed(cert, 1) == 1;
    ERR_clear_error();
    return ok;
}

void crypto_name_oneline(const X509_NAME *name, char *out, size_t len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    out[0] = '\0';
    if (!bio)
        return;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(bio, out, (int)len - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
}

int crypto_name_parse(const char *text, X509_NAME **out, util_error *err)
{
    X509_NAME *name = NULL;
    char *copy = strdup(text ? text : "");
    if (!copy)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    char sep = copy[0] == '/' ? '/' : ',';
    name = X509_NAME_new();
    char *p = copy + (sep == '/');
    while (name && *p) {
        char *end = p;
        /* a backslash escapes the separator */
        while (*end && *end != sep) {
            if (*end == '\\' && end[1])
                memmove(end, end + 1, strlen(end));
            end++;
        }
        char saved = *end;
        *end = '\0';
        char *eq = strchr(p, '=');
        while (isspace((unsigned char)*p))
            p++;
        if (!eq || eq == p) {
            util_error_set(err, UTIL_ERR_INVALID_SUBJECT, "\"%s\" is not TYPE=VALUE", p);
            goto fail;
        }
        *eq = '\0';
        char *type = p;
        for (char *t = eq - 1; t > type && isspace((unsigned char)*t); t--)
            *t = '\0';
        /* "CN=a,O=b" is RFC 4514 order (the last RDN first): prepend; the
         * "/O=b/CN=a" form is DER order, as in openssl -subj: append */
        if (!X509_NAME_add_entry_by_txt(name, type, MBSTRING_UTF8, (unsigned char *)eq + 1, -1,
                                        sep == ',' ? 0 : -1, 0)) {
            util_error_ossl(err, UTIL_ERR_INVALID_SUBJECT, "attribute %s", type);
            goto fail;
        }
        p = saved ? end + 1 : end;
    }
    if (!name || X509_NAME_entry_count(name) == 0) {
        util_error_set(err, UTIL_ERR_INVALID_SUBJECT, "empty subject");
        goto fail;
    }
    free(copy);
    *out = name;
    return 0;
fail:
    free(copy);
    X509_NAME_free(name);
    return -1;
}

time_t crypto_asn1_time_to_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return timegm(&tm);
}

static void append(char *out, size_t len, const char *item)
{
    size_t used = strlen(out);
    snprintf(out + used, len - used, "%s%s", used ? ", " : "", item);
}

static void key_usage_text(X509 *cert, char *out, size_t len)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } bits[] = {
        {KU_DIGITAL_SIGNATURE, "digitalSignature"},
        {KU_NON_REPUDIATION, "nonRepudiation"},
        {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
        {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},
        {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},
        {KU_ENCIPHER_ONLY, "encipherOnly"},
        {KU_DECIPHER_ONLY, "decipherOnly"},
    };
    out[0] = '\0';
    if (!(X509_get_extension_flags(cert) & EXFLAG_KUSAGE))
        return;
    uint32_t ku = X509_get_key_usage(cert);
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (ku & bits[i].bit)
            append(out, len, bits[i].name);
}

static void eku_text(X509 *cert, char *out, size_t len)
{
    out[0] = '\0';
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++) {
        char name[128];
        ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, i);
        int nid = OBJ_obj2nid(o);
        if (nid != NID_undef)
            snprintf(name, sizeof name, "%s", OBJ_nid2sn(nid));
        else
            OBJ_obj2txt(name, sizeof name, o, 1);
        append(out, len, name);
    }
    EXTENDED_KEY_USAGE_free(eku);
}

static void san_text(X509 *cert, char *out, size_t len)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char item[300] = "";
        int type;
        ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
        if (type == GEN_DNS || type == GEN_EMAIL || type == GEN_URI) {
            const char *prefix = type == GEN_DNS ? "dns" : type == GEN_EMAIL ? "email" : "uri";
            snprintf(item, sizeof item, "%s:%.*s", prefix, ASN1_STRING_length(s),
                     (const char *)ASN1_STRING_get0_data(s));
        } else if (type == GEN_IPADD) {
            char ip[INET6_ADDRSTRLEN] = "?";
            int n = ASN1_STRING_length(s);
            if (n == 4 || n == 16)
                inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof ip);
            snprintf(item, sizeof item, "ip:%s", ip);
        } else {
            continue;
        }
        append(out, len, item);
    }
    GENERAL_NAMES_free(names);
}

#define SERIAL_MAX_DIGITS 128 /* RFC 5280 allows 20 octets; leave room for odd CAs */

/* Copies the digits of a serial into digits (without colons); false when
 * the text is not exactly one of the accepted forms. */
static bool serial_digits(const char *t, bool decimal, char *digits, size_t cap)
{
    size_t n = 0;
    if (decimal) {
        for (; *t; t++) {
            if (!isdigit((unsigned char)*t) || n + 1 >= cap)
                return false;
            digits[n++] = *t;
        }
    } else {
        if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))
            t += 2;
        bool colons = strchr(t, ':') != NULL;
        for (size_t group = 0; *t; t++) {
            if (*t == ':') {
                if (group != 2 || !t[1])
                    return false; /* colons separate byte pairs only */
                group = 0;
                continue;
            }
            if (!isxdigit((unsigned char)*t) || n + 1 >= cap || (colons && ++group > 2))
                return false;
            digits[n++] = *t;
        }
        if (colons && n % 2)
            return false;
    }
    digits[n] = '\0';
    return n > 0;
}

int crypto_serial_parse(const char *text, bool decimal, ASN1_INTEGER **out, util_error *err)
{
    char digits[SERIAL_MAX_DIGITS + 1];
    BIGNUM *bn = NULL;
    if (!text || !serial_digits(text, decimal, digits, sizeof digits))
        return util_error_set(err, UTIL_ERR_USAGE,
                              decimal ? "serial \"%s\" is not a decimal number"
                                      : "serial \"%s\" is not hex (as printed by scepctl or openssl: 4BCB8D, "
                                        "0x4BCB8D or 4b:cb:8d; decimal needs --decimal)",
                              text ? text : "");
    int used = decimal ? BN_dec2bn(&bn, digits) : BN_hex2bn(&bn, digits);
    ASN1_INTEGER *a = used == (int)strlen(digits) ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    if (!a)
        return util_error_ossl(err, UTIL_ERR_USAGE, "serial \"%s\"", text);
    *out = a;
    return 0;
}

void crypto_cert_info_get(X509 *cert, crypto_cert_info *info)
{
    memset(info, 0, sizeof *info);
    crypto_name_oneline(X509_get_subject_name(cert), info->subject, sizeof info->subject);
    crypto_name_oneline(X509_get_issuer_name(cert), info->issuer, sizeof info->issuer);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(info->serial, sizeof info->serial, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    info->not_before = crypto_asn1_time_to_time(X509_get0_notBefore(cert));
    info->not_after = crypto_asn1_time_to_time(X509_get0_notAfter(cert));
    crypto_key_describe(X509_get0_pubkey(cert), info->key, sizeof info->key);
    int nid = X509_get_signature_nid(cert);
    snprintf(info->signature_alg, sizeof info->signature_alg, "%s", nid ? OBJ_nid2ln(nid) : "unknown");
    key_usage_text(cert, info->key_usage, sizeof info->key_usage);
    eku_text(cert, info->ext_key_usage, sizeof info->ext_key_usage);
    san_text(cert, info->san, sizeof info->san);
    crypto_cert_fingerprint(cert, EVP_sha256(), info->sha256, sizeof info->sha256, true);
    crypto_cert_fingerprint(cert, EVP_sha1(), info->sha1, sizeof info->sha1, true);
    info->is_ca = crypto_cert_is_ca(cert);
    ERR_clear_error();
}
