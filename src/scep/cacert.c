/* GetCACert (RFC 8894 §4.2) and certs-only SignedData (§3.4). */
#include <openssl/pem.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "scep/scep.h"
#include "util/ossl.h"

static bool looks_like_pem(const uint8_t *d, size_t len)
{
    return len > 11 && memmem(d, len, "-----BEGIN ", 11) != NULL;
}

static int parse_pem_certs(const uint8_t *d, size_t len, STACK_OF(X509) * out)
{
    BIO *bio = BIO_new_mem_buf(d, (int)len);
    if (!bio)
        return -1;
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!infos)
        return -1;
    for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->x509 && sk_X509_push(out, info->x509) > 0)
            info->x509 = NULL;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (sk_X509_num(out) > 0)
        return 0;
    /* PEM-wrapped PKCS#7/CMS */
    bio = BIO_new_mem_buf(d, (int)len);
    CMS_ContentInfo *cms = bio ? PEM_read_bio_CMS(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!cms)
        return -1;
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    CMS_ContentInfo_free(cms);
    for (int i = 0; certs && i < sk_X509_num(certs); i++)
        if (sk_X509_push(out, sk_X509_value(certs, i)) > 0)
            X509_up_ref(sk_X509_value(certs, i));
    util_x509_stack_free(certs);
    return sk_X509_num(out) > 0 ? 0 : -1;
}

int scep_certs_only_parse(const uint8_t *der, size_t len, STACK_OF(X509) * *certs, STACK_OF(X509_CRL) * *crls,
                          util_error *err)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (!cms)
        return util_error_ossl(err, UTIL_ERR_RESPONSE_PARSE, "certs-only SignedData (RFC 8894 section 3.4)");
    int rc = -1;
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        util_error_set(err, UTIL_ERR_RESPONSE_PARSE, "content is not a SignedData (RFC 8894 section 3.4)");
        goto out;
    }
    if (certs) {
        *certs = CMS_get1_certs(cms);
        if (!*certs)
            *certs = sk_X509_new_null();
    }
    if (crls) {
        *crls = CMS_get1_crls(cms);
        if (!*crls)
            *crls = sk_X509_CRL_new_null();
    }
    rc = 0;
out:
    CMS_ContentInfo_free(cms);
    return rc;
}

int scep_certs_only_encode(STACK_OF(X509) * certs, X509_CRL *crl, uint8_t **der, size_t *len, util_error *err)
{
    int rc = -1;
    unsigned char *buf = NULL;
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (!cms)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "creating a SignedData");
    for (int i = 0; certs && i < sk_X509_num(certs); i++)
        if (!CMS_add1_cert(cms, sk_X509_value(certs, i))) {
            util_error_ossl(err, UTIL_ERR_INTERNAL, "adding a certificate");
            goto out;
        }
    if (crl && !CMS_add1_crl(cms, crl)) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "adding a CRL");
        goto out;
    }
    /* RFC 8894 §3.4: the content MUST be omitted. */
    if (!CMS_set_detached(cms, 1)) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "omitting the content");
        goto out;
    }
    int n = i2d_CMS_ContentInfo(cms, &buf);
    if (n <= 0) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding the SignedData");
        goto out;
    }
    *der = buf;
    *len = (size_t)n;
    buf = NULL;
    rc = 0;
out:
    OPENSSL_free(buf);
    CMS_ContentInfo_free(cms);
    return rc;
}

static uint32_t key_usage(X509 *x)
{
    return (X509_get_extension_flags(x) & EXFLAG_KUSAGE) ? X509_get_key_usage(x) : UINT32_MAX;
}

static bool issued_by(X509 *child, X509 *parent)
{
    return X509_check_issued(parent, child) == X509_V_OK;
}

/* The issuing CA: the CA that issued the RA certificates, else the CA that
 * issued no other CA in the set (the one nearest the end entities). */
static X509 *find_issuing_ca(STACK_OF(X509) * all)
{
    int n = sk_X509_num(all);
    for (int i = 0; i < n; i++) {
        X509 *ra = sk_X509_value(all, i);
        if (X509_check_ca(ra))
            continue;
        for (int j = 0; j < n; j++) {
            X509 *ca = sk_X509_value(all, j);
            if (ca != ra && X509_check_ca(ca) && issued_by(ra, ca))
                return ca;
        }
    }
    X509 *candidate = NULL;
    for (int i = 0; i < n; i++) {
        X509 *ca = sk_X509_value(all, i);
        if (!X509_check_ca(ca))
            continue;
        bool issues_other_ca = false;
        for (int j = 0; j < n; j++) {
            X509 *other = sk_X509_value(all, j);
            if (other != ca && X509_check_ca(other) && issued_by(other, ca) &&
                X509_check_issued(other, other) != X509_V_OK)
                issues_other_ca = true;
        }
        if (!issues_other_ca)
            return ca;
        if (!candidate)
            candidate = ca;
    }
    return candidate ? candidate : (n == 1 ? sk_X509_value(all, 0) : NULL);
}

static X509 *find_ra(STACK_OF(X509) * all, X509 *ca, uint32_t want, uint32_t fallback)
{
    X509 *none_ku = NULL, *alt = NULL;
    for (int i = 0; i < sk_X509_num(all); i++) {
        X509 *x = sk_X509_value(all, i);
        if (x == ca || X509_check_ca(x))
            continue;
        uint32_t ku = key_usage(x);
        if (ku == UINT32_MAX) {
            if (!none_ku)
                none_ku = x;
        } else if (ku & want) {
            return x;
        } else if ((ku & fallback) && !alt) {
            alt = x;
        }
    }
    if (alt)
        return alt;
    return none_ku ? none_ku : ca;
}

static int classify(STACK_OF(X509) * all, scep_ca_certs **out, util_error *err)
{
    if (sk_X509_num(all) == 0)
        return util_error_set(err, UTIL_ERR_CACERT_NO_CA,
                              "the reply holds no certificate (RFC 8894 section 4.2.1)");
    X509 *ca = find_issuing_ca(all);
    if (!ca)
        return util_error_set(err, UTIL_ERR_CACERT_NO_CA,
                              "%d certificates, none with basicConstraints cA=TRUE (RFC 8894 section 4.2.1)",
                              sk_X509_num(all));
    scep_ca_certs *c = calloc(1, sizeof *c);
    if (!c)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    c->all = all;
    c->ca = ca;
    c->ra_encrypt =
        find_ra(all, ca, X509v3_KU_KEY_ENCIPHERMENT, X509v3_KU_DATA_ENCIPHERMENT | X509v3_KU_KEY_AGREEMENT);
    c->ra_sign = find_ra(all, ca, X509v3_KU_DIGITAL_SIGNATURE, X509v3_KU_NON_REPUDIATION);
    *out = c;
    return 0;
}

int scep_ca_certs_from_stack(STACK_OF(X509) * certs, scep_ca_certs **out, util_error *err)
{
    STACK_OF(X509) *all = X509_chain_up_ref(certs);
    if (!all)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (classify(all, out, err) != 0) {
        util_x509_stack_free(all);
        return -1;
    }
    return 0;
}

int scep_ca_certs_parse(const uint8_t *der, size_t len, scep_ca_certs **out, util_error *err)
{
    STACK_OF(X509) *all = NULL;
    if (len == 0)
        return util_error_set(err, UTIL_ERR_CACERT_PARSE, "empty reply (RFC 8894 section 4.2.1)");
    if (looks_like_pem(der, len)) {
        all = sk_X509_new_null();
        if (!all || parse_pem_certs(der, len, all) != 0) {
            util_x509_stack_free(all);
            return util_error_ossl(err, UTIL_ERR_CACERT_PARSE, "PEM holds no certificate");
        }
    } else {
        const unsigned char *p = der;
        X509 *single = d2i_X509(NULL, &p, (long)len);
        if (single && p == der + len) {
            all = sk_X509_new_null();
            if (!all || sk_X509_push(all, single) <= 0) {
                X509_free(single);
                util_x509_stack_free(all);
                return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
            }
        } else {
            X509_free(single);
            ERR_clear_error();
            util_error inner;
            if (scep_certs_only_parse(der, len, &all, NULL, &inner) != 0)
                return util_error_set(err, UTIL_ERR_CACERT_PARSE,
                                      "neither a DER certificate nor a PKCS#7 (%s; RFC 8894 section 4.2.1)",
                                      inner.detail);
        }
    }
    if (classify(all, out, err) != 0) {
        util_x509_stack_free(all);
        return -1;
    }
    return 0;
}

scep_cert_role scep_ca_certs_role(const scep_ca_certs *c, X509 *cert)
{
    if (cert == c->ca)
        return SCEP_ROLE_CA;
    if (cert == c->ra_encrypt && cert == c->ra_sign)
        return SCEP_ROLE_RA_BOTH;
    if (cert == c->ra_encrypt)
        return SCEP_ROLE_RA_ENCRYPT;
    if (cert == c->ra_sign)
        return SCEP_ROLE_RA_SIGN;
    if (X509_check_ca(cert))
        return SCEP_ROLE_CA_CHAIN;
    return SCEP_ROLE_OTHER;
}

const char *scep_cert_role_name(scep_cert_role role)
{
    switch (role) {
    case SCEP_ROLE_CA: return "CA";
    case SCEP_ROLE_RA_ENCRYPT: return "RA encryption";
    case SCEP_ROLE_RA_SIGN: return "RA signing";
    case SCEP_ROLE_RA_BOTH: return "RA signing+encryption";
    case SCEP_ROLE_CA_CHAIN: return "CA chain";
    default: return "other";
    }
}

void scep_ca_certs_free(scep_ca_certs *c)
{
    if (!c)
        return;
    util_x509_stack_free(c->all);
    free(c);
}
