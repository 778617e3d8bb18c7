/* Parsing and checking pkiMessages (RFC 8894 §3.2, §3.3.2). */
#include <ctype.h>
#include <openssl/pem.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "scep/scep.h"
#include "scep/scep_internal.h"
#include "util/buf.h"
#include "util/codec.h"
#include "util/ossl.h"

#define TEXT_INPUT_MAX (4u << 20)

/* DER, PEM, base64 (with or without line breaks or URL escaping). */
static CMS_ContentInfo *decode_any(const uint8_t *data, size_t len)
{
    const unsigned char *p = data;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (cms || len == 0 || data[0] == 0x30)
        return cms;
    ERR_clear_error();
    if (len > 11 && memmem(data, len, "-----BEGIN ", 11)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        cms = bio ? PEM_read_bio_CMS(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        return cms;
    }
    if (len > TEXT_INPUT_MAX)
        return NULL;
    /* base64: keep the alphabet, undo %XX escapes, drop white space */
    unsigned char *clean = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; clean && i < len; i++) {
        unsigned char c = data[i];
        if (c == '%' && i + 2 < len && isxdigit(data[i + 1]) && isxdigit(data[i + 2])) {
            char hex[3] = {(char)data[i + 1], (char)data[i + 2], 0};
            c = (unsigned char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (isalnum(c) || c == '+' || c == '/' || c == '=')
            clean[n++] = c;
    }
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (clean && n >= 4 && util_base64_decode((const char *)clean, n, &raw, &raw_len) == 0) {
        const unsigned char *q = raw;
        cms = d2i_CMS_ContentInfo(NULL, &q, (long)raw_len);
    }
    free(clean);
    free(raw);
    return cms;
}

static ASN1_TYPE *attr_value(CMS_SignerInfo *si, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    if (!obj)
        return NULL;
    int idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    ASN1_OBJECT_free(obj);
    if (idx < 0)
        return NULL;
    X509_ATTRIBUTE *a = CMS_signed_get_attr(si, idx);
    return a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
}

/* Servers vary the string type (PrintableString, UTF8String, IA5String,
 * even OCTET STRING): accept any of them, trimmed. */
static char *attr_string(CMS_SignerInfo *si, const char *oid)
{
    ASN1_TYPE *t = attr_value(si, oid);
    if (!t)
        return NULL;
    switch (t->type) {
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_UTF8STRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_OCTET_STRING:
    case V_ASN1_T61STRING:
    case V_ASN1_VISIBLESTRING:
    case V_ASN1_BMPSTRING: break;
    default: return NULL;
    }
    const ASN1_STRING *s = t->value.asn1_string;
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);
    if (t->type == V_ASN1_BMPSTRING) {
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, s);
        if (n < 0)
            return NULL;
        char *r = strndup((char *)utf8, (size_t)n);
        OPENSSL_free(utf8);
        return r;
    }
    while (len > 0 && (isspace(d[len - 1]) || d[len - 1] == '\0'))
        len--;
    while (len > 0 && isspace(*d)) {
        d++;
        len--;
    }
    return strndup((const char *)d, (size_t)len);
}

static int attr_number(CMS_SignerInfo *si, const char *oid, int absent)
{
    char *s = attr_string(si, oid);
    if (!s)
        return absent;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    int ok = *s && end && *end == '\0' && v >= 0 && v < 1000;
    free(s);
    return ok ? (int)v : -2; /* -2: present but not a number */
}

static size_t attr_nonce(CMS_SignerInfo *si, const char *oid, uint8_t *out)
{
    ASN1_TYPE *t = attr_value(si, oid);
    if (!t || t->type != V_ASN1_OCTET_STRING)
        return 0;
    int len = ASN1_STRING_length(t->value.octet_string);
    if (len <= 0 || len > SCEP_NONCE_MAX)
        return 0;
    memcpy(out, ASN1_STRING_get0_data(t->value.octet_string), (size_t)len);
    return (size_t)len;
}

static void read_attributes(CMS_SignerInfo *si, scep_pki_message *m)
{
    m->type = attr_number(si, OID_MESSAGE_TYPE, SCEP_MSG_NONE);
    m->pki_status = attr_number(si, OID_PKI_STATUS, SCEP_STATUS_NONE);
    m->fail_info = attr_number(si, OID_FAIL_INFO, SCEP_FAIL_NONE);
    m->transaction_id = attr_string(si, OID_TRANSACTION_ID);
    m->fail_info_text = attr_string(si, OID_FAIL_INFO_TEXT);
    m->ms_hresult = attr_string(si, OID_MS_HRESULT);
    m->ms_disposition = attr_string(si, OID_MS_DISPOSITION);
    m->sender_nonce_len = attr_nonce(si, OID_SENDER_NONCE, m->sender_nonce);
    m->recipient_nonce_len = attr_nonce(si, OID_RECIPIENT_NONCE, m->recipient_nonce);
    int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    if (idx >= 0) {
        ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, idx), 0);
        if (t && (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME)) {
            struct tm tm;
            if (ASN1_TIME_to_tm(t->value.utctime, &tm))
                m->signing_time = timegm(&tm);
        }
    }
    X509_ALGOR *dig = NULL, *sig = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
    if (dig)
        OBJ_obj2txt(m->digest_name, sizeof m->digest_name, dig->algorithm, 0);
    if (sig)
        OBJ_obj2txt(m->signature_alg_name, sizeof m->signature_alg_name, sig->algorithm, 0);
}

static X509 *find_signer(CMS_SignerInfo *si, STACK_OF(X509) * a, STACK_OF(X509) * b)
{
    for (int i = 0; a && i < sk_X509_num(a); i++)
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(a, i)) == 0)
            return sk_X509_value(a, i);
    for (int i = 0; b && i < sk_X509_num(b); i++)
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(b, i)) == 0)
            return sk_X509_value(b, i);
    return NULL;
}

static void verify(scep_pki_message *m, CMS_SignerInfo *si, STACK_OF(X509) * signers)
{
    X509 *signer = find_signer(si, m->certs, signers);
    if (!signer)
        return;
    m->signature_checked = true;
    STACK_OF(X509) *one = sk_X509_new_null();
    BIO *dcont = NULL;
    if (!one || sk_X509_push(one, signer) <= 0)
        goto out;
    const ASN1_OCTET_STRING *const *content = (const ASN1_OCTET_STRING *const *)CMS_get0_content(m->cms);
    if (!content || !*content) /* eContent omitted: digest over empty content */
        dcont = BIO_new_mem_buf("", 0);
    unsigned int flags = CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY | CMS_NOINTERN | CMS_NOCRL;
    if (CMS_verify(m->cms, one, NULL, dcont, NULL, flags) == 1) {
        m->signature_valid = true;
        X509_up_ref(signer);
        m->signer = signer;
    }
    ERR_clear_error();
out:
    BIO_free(dcont);
    sk_X509_free(one);
}

int scep_pki_message_parse(const uint8_t *data, size_t len, STACK_OF(X509) * signers, scep_pki_message **out,
                           util_error *err)
{
    scep_pki_message *m = calloc(1, sizeof *m);
    if (!m)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    m->cms = decode_any(data, len);
    if (!m->cms) {
        util_error_ossl(err, UTIL_ERR_RESPONSE_PARSE,
                        "not a CMS/PKCS#7 message; a pkiMessage is a CMS SignedData (RFC 8894 section 3)");
        goto fail;
    }
    if (OBJ_obj2nid(CMS_get0_type(m->cms)) != NID_pkcs7_signed) {
        util_error_set(err, UTIL_ERR_RESPONSE_PARSE,
                       "the message is a %s, not a SignedData (RFC 8894 section 3.2)",
                       OBJ_nid2sn(OBJ_obj2nid(CMS_get0_type(m->cms))));
        goto fail;
    }
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(m->cms);
    if (!sis || sk_CMS_SignerInfo_num(sis) < 1) {
        util_error_set(err, UTIL_ERR_RESPONSE_PARSE,
                       "the SignedData has no SignerInfo (RFC 8894 section 3.2)");
        goto fail;
    }
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);
    read_attributes(si, m);
    m->certs = CMS_get1_certs(m->cms);
    ASN1_OCTET_STRING **content = CMS_get0_content(m->cms);
    if (content && *content && ASN1_STRING_length(*content) > 0) {
        int n = ASN1_STRING_length(*content);
        m->content = malloc((size_t)n);
        if (!m->content) {
            util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
            goto fail;
        }
        memcpy(m->content, ASN1_STRING_get0_data(*content), (size_t)n);
        m->content_len = (size_t)n;
    }
    verify(m, si, signers);
    *out = m;
    ERR_clear_error();
    return 0;
fail:
    scep_pki_message_free(m);
    return -1;
}

void scep_pki_message_free(scep_pki_message *m)
{
    if (!m)
        return;
    free(m->fail_info_text);
    free(m->transaction_id);
    free(m->ms_hresult);
    free(m->ms_disposition);
    X509_free(m->signer);
    util_x509_stack_free(m->certs);
    free(m->content);
    CMS_ContentInfo_free(m->cms);
    free(m);
}

static bool in_stack(STACK_OF(X509) * s, X509 *x)
{
    for (int i = 0; i < sk_X509_num(s); i++)
        if (X509_cmp(sk_X509_value(s, i), x) == 0)
            return true;
    return false;
}

int scep_certrep_check(const scep_pki_message *m, STACK_OF(X509) * expected_signers,
                       const char *transaction_id, const uint8_t *nonce, size_t nonce_len, util_error *err)
{
    if (!m->signature_checked)
        return util_error_set(
            err, UTIL_ERR_RESPONSE_SIGNER,
            "the reply's signer certificate is neither in the reply nor among the CA/RA certificates "
            "(RFC 8894 section 3.3.2: the CA or RA signs CertRep)");
    if (!m->signature_valid)
        return util_error_set(err, UTIL_ERR_RESPONSE_SIGNATURE,
                              "CMS signature check failed (RFC 8894 section 3.2)");
    if (expected_signers && !in_stack(expected_signers, m->signer)) {
        char name[256];
        X509_NAME_oneline(X509_get_subject_name(m->signer), name, sizeof name);
        return util_error_set(err, UTIL_ERR_RESPONSE_SIGNER,
                              "signed by %s, not by the CA or RA (RFC 8894 section 3.3.2)", name);
    }
    if (m->type != SCEP_MSG_CERTREP)
        return util_error_set(err, UTIL_ERR_RESPONSE_TYPE,
                              "messageType %d, expected 3 (CertRep) (RFC 8894 section 3.2.1.2)", m->type);
    if (!m->transaction_id || strcmp(m->transaction_id, transaction_id) != 0)
        return util_error_set(
            err, UTIL_ERR_RESPONSE_TRANSACTION,
            "got \"%s\", sent \"%s\"; CertRep repeats the request's (RFC 8894 section 3.2.1.1)",
            m->transaction_id ? m->transaction_id : "(none)", transaction_id);
    if (m->recipient_nonce_len != nonce_len || memcmp(m->recipient_nonce, nonce, nonce_len) != 0)
        return util_error_set(
            err, UTIL_ERR_RESPONSE_NONCE, "%s",
            m->recipient_nonce_len
                ? "recipientNonce differs from the senderNonce sent (RFC 8894 section 3.2.1.5)"
                : "no recipientNonce (RFC 8894 section 3.2.1.5)");
    switch (m->pki_status) {
    case SCEP_STATUS_SUCCESS:
        if (!m->content)
            return util_error_set(err, UTIL_ERR_RESPONSE_PARSE,
                                  "SUCCESS without content (RFC 8894 section 3.3.2.1)");
        return 0;
    case SCEP_STATUS_PENDING: return 0;
    case SCEP_STATUS_FAILURE:
        if (m->fail_info == SCEP_FAIL_NONE || m->fail_info == -2)
            return util_error_set(err, UTIL_ERR_RESPONSE_TYPE,
                                  "FAILURE without a valid failInfo (RFC 8894 section 3.2.1.4)");
        return 0;
    default:
        return util_error_set(err, UTIL_ERR_RESPONSE_TYPE,
                              "pkiStatus %d is not 0, 2 or 3 (RFC 8894 section 3.2.1.3)", m->pki_status);
    }
}

util_err scep_failure_error(const scep_pki_message *m)
{
    if (m->ms_hresult) {
        long hr = strtol(m->ms_hresult, NULL, 0);
        switch ((unsigned long)hr & 0xffffffffUL) {
        case 0x800B0110UL: return UTIL_ERR_FAIL_PASSWORD_USED;
        case 0x80070490UL: return UTIL_ERR_FAIL_PASSWORD_UNKNOWN;
        case 0x80096004UL: return UTIL_ERR_FAIL_PASSWORD_MISSING;
        case 0x80094811UL: return UTIL_ERR_FAIL_KEY_TOO_SHORT;
        case 0x80070057UL: return UTIL_ERR_FAIL_NOT_SUPPORTED;
        default: break;
        }
    }
    switch (m->fail_info) {
    case SCEP_FAIL_BAD_ALG: return UTIL_ERR_FAIL_BAD_ALG;
    case SCEP_FAIL_BAD_MESSAGE_CHECK: return UTIL_ERR_FAIL_BAD_MESSAGE_CHECK;
    case SCEP_FAIL_BAD_REQUEST: return UTIL_ERR_FAIL_BAD_REQUEST;
    case SCEP_FAIL_BAD_TIME: return UTIL_ERR_FAIL_BAD_TIME;
    case SCEP_FAIL_BAD_CERT_ID: return UTIL_ERR_FAIL_BAD_CERT_ID;
    default: return UTIL_ERR_FAIL_UNKNOWN;
    }
}
