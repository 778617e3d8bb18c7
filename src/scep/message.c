/* Building pkiMessages (RFC 8894 §3): SignedData over EnvelopedData. */
#include <openssl/cms.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <string.h>

#include "scep/scep.h"
#include "scep/scep_internal.h"
#include "util/ossl.h"

/* The signed attributes as a DER SET OF, for re-signing (see resign()). */
typedef STACK_OF(X509_ATTRIBUTE) SCEP_ATTRIBUTES;
ASN1_ITEM_TEMPLATE(SCEP_ATTRIBUTES) = ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SET_ORDER, 0, SCEP_ATTRIBUTES,
                                                            X509_ATTRIBUTE)
    ASN1_ITEM_TEMPLATE_END(SCEP_ATTRIBUTES)

        static int envelope(const scep_pki_message_params *p, uint8_t **der, size_t *len, util_error *err)
{
    int rc = -1;
    unsigned char *buf = NULL;
    const EVP_CIPHER *cipher = p->cipher ? p->cipher : EVP_aes_128_cbc();
    BIO *in = BIO_new_mem_buf(p->content, (int)p->content_len);
    CMS_ContentInfo *cms = CMS_encrypt(NULL, NULL, cipher, CMS_BINARY | CMS_PARTIAL);
    if (!in || !cms) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "creating the EnvelopedData");
        goto out;
    }
    if (!p->recipients || sk_X509_num(p->recipients) == 0) {
        util_error_set(err, UTIL_ERR_CACERT_NO_RECIPIENT, "no recipient certificate");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(p->recipients); i++) {
        X509 *r = sk_X509_value(p->recipients, i);
        CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, r, CMS_KEY_PARAM);
        if (!ri) {
            util_error_ossl(err, UTIL_ERR_CACERT_NO_RECIPIENT, "the recipient's key cannot receive a key");
            goto out;
        }
        EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
        if (p->key_transport == SCEP_KT_RSA_OAEP && pctx &&
            EVP_PKEY_get_base_id(X509_get0_pubkey(r)) == EVP_PKEY_RSA &&
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0) {
            util_error_ossl(err, UTIL_ERR_INTERNAL, "selecting RSA-OAEP");
            goto out;
        }
    }
    if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "encrypting the message data");
        goto out;
    }
    int n = i2d_CMS_ContentInfo(cms, &buf);
    if (n <= 0) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding the EnvelopedData");
        goto out;
    }
    *der = buf;
    *len = (size_t)n;
    buf = NULL;
    rc = 0;
out:
    OPENSSL_free(buf);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rc;
}

static int add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *bytes, int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int ok = obj && CMS_signed_add1_attr_by_OBJ(si, obj, type, bytes, len);
    ASN1_OBJECT_free(obj);
    return ok ? 0 : -1;
}

static int add_number(CMS_SignerInfo *si, const char *oid, int value)
{
    char text[16];
    snprintf(text, sizeof text, "%d", value);
    return add_attr(si, oid, V_ASN1_PRINTABLESTRING, text, (int)strlen(text));
}

static int add_attributes(CMS_SignerInfo *si, const scep_pki_message_params *p)
{
    if (add_number(si, OID_MESSAGE_TYPE, p->type) != 0 ||
        add_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, p->transaction_id,
                 (int)strlen(p->transaction_id)) != 0)
        return -1;
    if (p->sender_nonce &&
        add_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING, p->sender_nonce, (int)p->sender_nonce_len) != 0)
        return -1;
    if (p->type != SCEP_MSG_CERTREP)
        return 0;
    if (add_number(si, OID_PKI_STATUS, p->pki_status) != 0)
        return -1;
    if (p->pki_status == SCEP_STATUS_FAILURE && p->fail_info >= 0 &&
        add_number(si, OID_FAIL_INFO, p->fail_info) != 0)
        return -1;
    if (p->fail_info_text && add_attr(si, OID_FAIL_INFO_TEXT, V_ASN1_UTF8STRING, p->fail_info_text,
                                      (int)strlen(p->fail_info_text)) != 0)
        return -1;
    if (p->recipient_nonce && add_attr(si, OID_RECIPIENT_NONCE, V_ASN1_OCTET_STRING, p->recipient_nonce,
                                       (int)p->recipient_nonce_len) != 0)
        return -1;
    if (p->ms_hresult &&
        add_attr(si, OID_MS_HRESULT, V_ASN1_PRINTABLESTRING, p->ms_hresult, (int)strlen(p->ms_hresult)) != 0)
        return -1;
    if (p->ms_disposition && add_attr(si, OID_MS_DISPOSITION, V_ASN1_UTF8STRING, p->ms_disposition,
                                      (int)strlen(p->ms_disposition)) != 0)
        return -1;
    return 0;
}

/*
 * CMS_final always adds a signingTime from the system clock when none is
 * present. Replies that must carry none (as NDES's) drop it here and sign
 * the remaining attributes again, over their DER SET encoding.
 */
static int resign_without_signing_time(CMS_SignerInfo *si, EVP_PKEY *key, const EVP_MD *md)
{
    int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    if (idx < 0)
        return 0;
    X509_ATTRIBUTE_free(CMS_signed_delete_attr(si, idx));
    int rc = -1;
    unsigned char *der = NULL, *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    STACK_OF(X509_ATTRIBUTE) *attrs = sk_X509_ATTRIBUTE_new_null();
    if (!mctx || !attrs)
        goto out;
    for (int i = 0; i < CMS_signed_get_attr_count(si); i++)
        if (sk_X509_ATTRIBUTE_push(attrs, CMS_signed_get_attr(si, i)) <= 0)
            goto out;
    int n = ASN1_item_i2d((ASN1_VALUE *)attrs, &der, ASN1_ITEM_rptr(SCEP_ATTRIBUTES));
    if (n <= 0 ||
        EVP_DigestSignInit_ex(mctx, NULL, EVP_MD_get0_name(md), NULL, util_pkey_propq(key), key, NULL) <= 0 ||
        EVP_DigestSign(mctx, NULL, &siglen, der, (size_t)n) <= 0)
        goto out;
    sig = OPENSSL_malloc(siglen);
    if (!sig || EVP_DigestSign(mctx, sig, &siglen, der, (size_t)n) <= 0)
        goto out;
    if (!ASN1_STRING_set(CMS_SignerInfo_get0_signature(si), sig, (int)siglen))
        goto out;
    rc = 0;
out:
    sk_X509_ATTRIBUTE_free(attrs); /* borrowed entries */
    OPENSSL_free(der);
    OPENSSL_free(sig);
    EVP_MD_CTX_free(mctx);
    return rc;
}

static int add_signing_time(CMS_SignerInfo *si, time_t when)
{
    ASN1_TIME *t = ASN1_TIME_set(NULL, when);
    int ok = t && CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, t->type, t, -1);
    ASN1_TIME_free(t);
    return ok ? 0 : -1;
}

static int sign(const scep_pki_message_params *p, const uint8_t *content, size_t content_len, uint8_t **der,
                size_t *len, util_error *err)
{
    int rc = -1;
    unsigned char *buf = NULL;
    const EVP_MD *md = p->digest ? p->digest : EVP_sha256();
    unsigned int flags = CMS_PARTIAL | CMS_BINARY | CMS_NOSMIMECAP;
    BIO *in = BIO_new_mem_buf(content ? (const void *)content : "", (int)content_len);
    /* a key in the TPM signs there (util_pkey_propq) */
    CMS_ContentInfo *cms = CMS_sign_ex(NULL, NULL, NULL, NULL, flags, NULL, util_pkey_propq(p->signer_key));
    util_err sign_failure = util_pkey_in_tpm(p->signer_key) ? UTIL_ERR_TPM_OPERATION : UTIL_ERR_INTERNAL;
    if (!in || !cms) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "creating the SignedData");
        goto out;
    }
    CMS_SignerInfo *si = CMS_add1_signer(cms, p->signer_cert, p->signer_key, md,
                                         flags | (p->include_signer_cert ? 0 : CMS_NOCERTS));
    if (!si) {
        util_error_ossl(err, UTIL_ERR_INPUT_KEY, "the signer's key cannot sign with %s",
                        EVP_MD_get0_name(md));
        goto out;
    }
    for (int i = 0; p->extra_certs && i < sk_X509_num(p->extra_certs); i++)
        if (!CMS_add1_cert(cms, sk_X509_value(p->extra_certs, i)))
            ERR_clear_error(); /* already present */
    if (add_attributes(si, p) != 0 || (p->signing_time && add_signing_time(si, p->signing_time) != 0)) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "adding the SCEP attributes");
        goto out;
    }
    if (!content && !CMS_set_detached(cms, 1)) { /* eContent omitted */
        util_error_ossl(err, UTIL_ERR_INTERNAL, "omitting the content");
        goto out;
    }
    if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
        util_error_ossl(err, sign_failure, "signing the message");
        goto out;
    }
    if (!p->signing_time && resign_without_signing_time(si, p->signer_key, md) != 0) {
        util_error_ossl(err, sign_failure, "signing the message");
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
    BIO_free(in);
    return rc;
}

int scep_pki_message_encode(const scep_pki_message_params *p, uint8_t **der, size_t *len, util_error *err)
{
    if (!p->signer_cert || !p->signer_key || !p->transaction_id || !p->type)
        return util_error_set(err, UTIL_ERR_INTERNAL, "incomplete message parameters");
    uint8_t *env = NULL;
    size_t env_len = 0;
    static const uint8_t zero = 0;
    const uint8_t *content = NULL;
    size_t content_len = 0;
    if (p->content) {
        if (envelope(p, &env, &env_len, err) != 0)
            return -1;
        content = env;
        content_len = env_len;
    } else if (p->one_byte_content) {
        content = &zero;
        content_len = 1;
    }
    int rc = sign(p, content, content_len, der, len, err);
    OPENSSL_free(env);
    return rc;
}
