/* scepctl inspect: decode any SCEP message for troubleshooting. */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/scepctl.h"
#include "util/file.h"
#include "util/ossl.h"

#define INSPECT_MAX (4u << 20)

static void print_hex(const char *label, const uint8_t *d, size_t len)
{
    char hex[2 * SCEP_NONCE_MAX + 1];
    if (!len) {
        printf("%-16s (absent)\n", label);
        return;
    }
    util_hex(d, len, hex, 1);
    printf("%-16s %s (%zu bytes)\n", label, hex, len);
}

static void print_name(const char *label, const X509_NAME *name)
{
    char text[512];
    crypto_name_oneline(name, text, sizeof text);
    printf("%-16s %s\n", label, text);
}

static void print_certs(const char *label, STACK_OF(X509) * certs)
{
    for (int i = 0; certs && i < sk_X509_num(certs); i++) {
        crypto_cert_info info;
        crypto_cert_info_get(sk_X509_value(certs, i), &info);
        printf("%-16s %s (%s%s, sha256 %s)\n", i ? "" : label, info.subject, info.key,
               info.is_ca ? ", CA" : "", info.sha256);
    }
}

static void print_csr(X509_REQ *req)
{
    char key[64];
    print_name("csr subject:", X509_REQ_get_subject_name(req));
    crypto_key_describe(X509_REQ_get0_pubkey(req), key, sizeof key);
    printf("%-16s %s\n", "csr key:", key);
    int idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
    printf("%-16s %s\n", "challenge:", idx >= 0 ? "present (not shown)" : "absent");
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        char name[80];
        OBJ_obj2txt(name, sizeof name, X509_EXTENSION_get_object(e), 0);
        BIO *bio = BIO_new(BIO_s_mem());
        char *text = NULL;
        long n = 0;
        if (bio && X509V3_EXT_print(bio, e, 0, 0) > 0)
            n = BIO_get_mem_data(bio, &text);
        printf("%-16s %s: %.*s\n", "csr extension:", name, (int)n, n > 0 ? text : "(binary)");
        BIO_free(bio);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

/* The opened messageData: a CSR, IssuerAndSubject, IssuerAndSerialNumber or
 * a certs-only SignedData. */
static void print_message_data(const uint8_t *d, size_t len)
{
    const unsigned char *p = d;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
    if (req && p == d + len) {
        print_csr(req);
        X509_REQ_free(req);
        return;
    }
    X509_REQ_free(req);
    X509_NAME *a = NULL, *b = NULL;
    ASN1_INTEGER *serial = NULL;
    util_error ignored;
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    if (scep_certs_only_parse(d, len, &certs, &crls, &ignored) == 0) {
        print_certs("certificates:", certs);
        for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
            print_name("crl issuer:", X509_CRL_get_issuer(sk_X509_CRL_value(crls, i)));
            printf("%-16s %d\n",
                   "crl revoked:", sk_X509_REVOKED_num(X509_CRL_get_REVOKED(sk_X509_CRL_value(crls, i))));
        }
    } else if (scep_issuer_and_subject_decode(d, len, &a, &b, &ignored) == 0) {
        print_name("poll issuer:", a);
        print_name("poll subject:", b);
    } else if (scep_issuer_and_serial_decode(d, len, &a, &serial, &ignored) == 0) {
        print_name("issuer:", a);
        BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        printf("%-16s %s\n", "serial:", hex ? hex : "?");
        OPENSSL_free(hex);
        BN_free(bn);
    } else {
        printf("%-16s %zu bytes, not a known SCEP messageData\n", "content:", len);
    }
    util_x509_stack_free(certs);
    util_crl_stack_free(crls);
    X509_NAME_free(a);
    X509_NAME_free(b);
    ASN1_INTEGER_free(serial);
    ERR_clear_error();
}

static int print_envelope(const uint8_t *env, size_t len, EVP_PKEY *key, STACK_OF(X509) * signers,
                          util_error *err)
{
    char cipher[64], kt[64];
    if (scep_envelope_describe(env, len, cipher, sizeof cipher, kt, sizeof kt, err) != 0)
        return -1;
    printf("%-16s %s, key transport %s\n", "envelope:", cipher, kt);
    if (!key)
        return 0;
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    X509 *recipient = NULL;
    for (int i = 0; signers && i < sk_X509_num(signers) && !recipient; i++)
        if (crypto_cert_matches_key(sk_X509_value(signers, i), key))
            recipient = sk_X509_value(signers, i);
    if (scep_envelope_open(env, len, recipient, key, &inner, &inner_len, NULL, 0, err) != 0)
        return -1;
    printf("%-16s opened, %zu bytes\n", "envelope:", inner_len);
    print_message_data(inner, inner_len);
    OPENSSL_free(inner);
    return 0;
}

static void print_message(const scep_pki_message *m)
{
    printf("%-16s %d (%s)\n", "messageType:", m->type, scep_message_type_name(m->type));
    printf("%-16s %s\n", "transactionID:", m->transaction_id ? m->transaction_id : "(absent)");
    if (m->pki_status != SCEP_STATUS_NONE)
        printf("%-16s %d (%s)\n", "pkiStatus:", m->pki_status, scep_pki_status_name(m->pki_status));
    if (m->fail_info != SCEP_FAIL_NONE)
        printf("%-16s %d (%s)\n", "failInfo:", m->fail_info, scep_fail_info_name(m->fail_info));
    if (m->fail_info_text)
        printf("%-16s %s\n", "failInfoText:", m->fail_info_text);
    print_hex("senderNonce:", m->sender_nonce, m->sender_nonce_len);
    if (m->type == SCEP_MSG_CERTREP || m->recipient_nonce_len)
        print_hex("recipientNonce:", m->recipient_nonce, m->recipient_nonce_len);
    if (m->ms_hresult) {
        long hr = strtol(m->ms_hresult, NULL, 0);
        printf("%-16s %s (0x%08lX)\n", "ms hresult:", m->ms_hresult, (unsigned long)hr & 0xffffffffUL);
    }
    if (m->ms_disposition)
        printf("%-16s %s\n", "ms disposition:", m->ms_disposition);
    if (m->signing_time) {
        char t[32];
        struct tm tm;
        gmtime_r(&m->signing_time, &tm);
        strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-16s %s\n", "signingTime:", t);
    } else {
        printf("%-16s (absent)\n", "signingTime:");
    }
    printf("%-16s %s, %s\n", "algorithms:", m->digest_name, m->signature_alg_name);
    print_certs("certificates:", m->certs);
    if (!m->certs || sk_X509_num(m->certs) == 0)
        printf("%-16s (none)\n", "certificates:");
    printf("%-16s %s\n", "signature:",
           !m->signature_checked ? "not checked: signer certificate unknown (give --signer)"
           : m->signature_valid  ? "verifies"
                                 : "DOES NOT VERIFY");
    if (m->signer)
        print_name("signer:", X509_get_subject_name(m->signer));
}

/* PEM input (any label) becomes its DER; DER input is left as it is. */
static int pem_to_der(uint8_t **data, size_t *len, char label[64], util_error *err)
{
    label[0] = '\0';
    if (*len < 11 || memcmp(*data, "-----BEGIN", 10) != 0)
        return 0;
    BIO *bio = BIO_new_mem_buf(*data, (int)*len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    int rc = -1;
    if (!bio || !PEM_read_bio(bio, &name, &header, &der, &der_len) || der_len <= 0) {
        util_error_ossl(err, UTIL_ERR_INPUT_FILE, "the PEM block could not be decoded");
        goto out;
    }
    uint8_t *copy = malloc((size_t)der_len);
    if (!copy) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    memcpy(copy, der, (size_t)der_len);
    free(*data);
    *data = copy;
    *len = (size_t)der_len;
    snprintf(label, 64, "%s", name);
    rc = 0;
out:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return rc;
}

/* A bare certificate: what GetCACert returns as application/x-x509-ca-cert. */
static bool print_if_certificate(const uint8_t *data, size_t len)
{
    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x || p != data + len) {
        X509_free(x);
        ERR_clear_error();
        return false;
    }
    crypto_cert_info info;
    crypto_cert_info_get(x, &info);
    printf("%-16s X.509 certificate%s\n",
           "type:", info.is_ca ? " of a CA (a GetCACert reply, application/x-x509-ca-cert)" : "");
    printf("%-16s %s\n%-16s %s\n%-16s %s\n%-16s %s\n", "subject:", info.subject, "issuer:", info.issuer,
           "serial:", info.serial, "key:", info.key);
    printf("%-16s %s\n%-16s %s\n", "key usage:", info.key_usage[0] ? info.key_usage : "(absent)",
           "sha256:", info.sha256);
    X509_free(x);
    return true;
}

/* A SignedData without signers: what GetCACert returns with RA certificates
 * (application/x-x509-ca-ra-cert), GetNextCACert's content, or the inner
 * part of a CertRep. */
static bool print_if_certs_only(const uint8_t *data, size_t len)
{
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    util_error ignored;
    if (scep_certs_only_parse(data, len, &certs, &crls, &ignored) != 0) {
        ERR_clear_error();
        return false;
    }
    printf("%-16s certs-only SignedData (degenerate PKCS#7): %d certificate(s), %d CRL(s); the form of a "
           "GetCACert reply with RA certificates (application/x-x509-ca-ra-cert)\n",
           "type:", certs ? sk_X509_num(certs) : 0, crls ? sk_X509_CRL_num(crls) : 0);
    print_certs("certificates:", certs);
    util_x509_stack_free(certs);
    util_crl_stack_free(crls);
    return true;
}

/* Whether one of the --signer certificates signed the message. */
static bool signed_by_given(const scep_pki_message *m, STACK_OF(X509) * signers)
{
    for (int i = 0; m->signer && i < sk_X509_num(signers); i++)
        if (X509_cmp(m->signer, sk_X509_value(signers, i)) == 0)
            return true;
    return false;
}

int scepctl_inspect(options *o, util_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    STACK_OF(X509) *signers = NULL;
    EVP_PKEY *key = NULL;
    scep_pki_message *m = NULL;
    int rc = -1;
    if (!o->positional)
        return util_error_set(err, UTIL_ERR_USAGE, "inspect needs a FILE");
    if (util_file_read(o->positional, INSPECT_MAX, &data, &len, err) != 0 ||
        (o->signer && crypto_certs_load_file(o->signer, &signers, err) != 0) ||
        (o->key && crypto_key_load_file(o->key, &key, err) != 0))
        goto out;
    char pem_label[64];
    if (pem_to_der(&data, &len, pem_label, err) != 0)
        goto out;
    if (pem_label[0])
        printf("%-16s PEM \"%s\"\n", "encoding:", pem_label);
    if (print_if_certificate(data, len)) {
        rc = 0;
        goto out;
    }
    /* Not every SCEP object is a pkiMessage: a bare CSR, envelope or certs-only too. */
    const unsigned char *p = data;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
    if (req) {
        printf("%-16s PKCS#10 certificate request\n", "type:");
        print_csr(req);
        X509_REQ_free(req);
        rc = 0;
        goto out;
    }
    util_error first;
    if (scep_pki_message_parse(data, len, signers, &m, &first) != 0) {
        util_error env_err;
        if (print_if_certs_only(data, len)) {
            rc = 0;
        } else if (print_envelope(data, len, key, signers, &env_err) == 0) {
            rc = 0;
        } else {
            /* none of the forms fit: say so about the file, not about a server */
            util_error_set(err, UTIL_ERR_INPUT_NOT_SCEP, "%s: %s", o->positional, first.detail);
        }
        goto out;
    }
    if (m->type == SCEP_MSG_NONE && !m->transaction_id) {
        printf("%-16s SignedData without SCEP attributes\n", "type:");
        print_certs("certificates:", m->certs);
    } else {
        print_message(m);
    }
    if (m->content && m->content_len > 1) {
        if (print_envelope(m->content, m->content_len, key, signers, err) != 0)
            goto out;
    } else if (m->content_len == 1) {
        printf("%-16s one byte (%02X), as NDES sends with FAILURE and PENDING\n", "content:", m->content[0]);
    }
    if (m->signature_checked && !m->signature_valid) {
        util_error_set(err, UTIL_ERR_RESPONSE_SIGNATURE, "%s", o->positional);
        goto out;
    }
    if (signers && !signed_by_given(m, signers)) {
        char who[512] = "a certificate that is not in the message";
        if (m->signer)
            crypto_name_oneline(X509_get_subject_name(m->signer), who, sizeof who);
        fprintf(stderr, "warning: %s did not sign %s; it was signed by %s\n", o->signer, o->positional, who);
        util_error_set(err, UTIL_ERR_RESPONSE_SIGNER, "%s is not signed by the certificate in %s",
                       o->positional, o->signer);
        goto out;
    }
    rc = 0;
out:
    scep_pki_message_free(m);
    EVP_PKEY_free(key);
    util_x509_stack_free(signers);
    free(data);
    return rc;
}
