/* Opening pkcsPKIEnvelope (RFC 8894 §3.1) and reading CertRep content. */
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <string.h>

#include "scep/scep.h"
#include "util/ossl.h"

/* Walks ContentInfo -> EnvelopedData to the contentEncryptionAlgorithm OID
 * and the first recipient's algorithm, with OpenSSL's DER reader. CMS has
 * no public getter for either. */
static int read_header(const unsigned char **p, long *left, int want_tag, long *len)
{
    int tag, xclass;
    const unsigned char *start = *p;
    int r = ASN1_get_object(p, len, &tag, &xclass, *left);
    if (r & 0x80)
        return -1;
    if (want_tag >= 0 && tag != want_tag)
        return -1;
    *left -= (long)(*p - start);
    return xclass;
}

static int skip(const unsigned char **p, long *left, long len)
{
    if (len > *left)
        return -1;
    *p += len;
    *left -= len;
    return 0;
}

static int describe(const uint8_t *env, size_t env_len, ASN1_OBJECT **cipher, ASN1_OBJECT **kt, int *ri_tag)
{
    const unsigned char *p = env;
    long left = (long)env_len, len;
    if (read_header(&p, &left, V_ASN1_SEQUENCE, &len) < 0) /* ContentInfo */
        return -1;
    if (read_header(&p, &left, V_ASN1_OBJECT, &len) < 0 || skip(&p, &left, len))
        return -1;
    if (read_header(&p, &left, 0, &len) != V_ASN1_CONTEXT_SPECIFIC) /* [0] */
        return -1;
    if (read_header(&p, &left, V_ASN1_SEQUENCE, &len) < 0) /* EnvelopedData */
        return -1;
    if (read_header(&p, &left, V_ASN1_INTEGER, &len) < 0 || skip(&p, &left, len))
        return -1;
    long set_len;
    int cls = read_header(&p, &left, -1, &set_len);
    if (cls == V_ASN1_CONTEXT_SPECIFIC) { /* originatorInfo */
        if (skip(&p, &left, set_len) || (cls = read_header(&p, &left, V_ASN1_SET, &set_len)) < 0)
            return -1;
    }
    const unsigned char *ri = p;
    long ri_left = set_len;
    if (skip(&p, &left, set_len))
        return -1;
    /* first RecipientInfo: KTRI is a SEQUENCE { version, rid, keyEncryptionAlgorithm, ... } */
    long rlen;
    int tag, xclass;
    const unsigned char *peek = ri;
    if (ri_left < 2 || (ASN1_get_object(&peek, &rlen, &tag, &xclass, ri_left) & 0x80))
        return -1;
    *ri_tag = xclass == V_ASN1_UNIVERSAL ? -1 : tag;
    if (read_header(&ri, &ri_left, -1, &rlen) < 0)
        return -1;
    if (*ri_tag == -1) {
        if (read_header(&ri, &ri_left, V_ASN1_INTEGER, &len) < 0 || skip(&ri, &ri_left, len))
            return -1;
        long rid_len;
        if (read_header(&ri, &ri_left, -1, &rid_len) < 0 || skip(&ri, &ri_left, rid_len))
            return -1;
        if (read_header(&ri, &ri_left, V_ASN1_SEQUENCE, &len) < 0)
            return -1;
        const unsigned char *o = ri;
        *kt = d2i_ASN1_OBJECT(NULL, &o, ri_left);
    }
    if (read_header(&p, &left, V_ASN1_SEQUENCE, &len) < 0) /* EncryptedContentInfo */
        return -1;
    if (read_header(&p, &left, V_ASN1_OBJECT, &len) < 0 || skip(&p, &left, len))
        return -1;
    if (read_header(&p, &left, V_ASN1_SEQUENCE, &len) < 0)
        return -1;
    const unsigned char *o = p;
    *cipher = d2i_ASN1_OBJECT(NULL, &o, left);
    return *cipher ? 0 : -1;
}

int scep_envelope_describe(const uint8_t *env, size_t env_len, char *cipher_name, size_t cipher_len,
                           char *kt_name, size_t kt_len, util_error *err)
{
    ASN1_OBJECT *cipher = NULL, *kt = NULL;
    int ri_tag = -1;
    int rc = describe(env, env_len, &cipher, &kt, &ri_tag);
    static const char *const ri_kinds[] = {"", "key agreement", "key encryption key", "password", "other"};
    if (rc == 0) {
        int nid = OBJ_obj2nid(cipher);
        snprintf(cipher_name, cipher_len, "%s", nid != NID_undef ? OBJ_nid2ln(nid) : "unknown");
        if (nid == NID_undef)
            OBJ_obj2txt(cipher_name, (int)cipher_len, cipher, 1);
        if (ri_tag >= 1 && ri_tag <= 4)
            snprintf(kt_name, kt_len, "%s", ri_kinds[ri_tag]);
        else if (kt && OBJ_obj2nid(kt) != NID_undef)
            snprintf(kt_name, kt_len, "%s", OBJ_nid2ln(OBJ_obj2nid(kt)));
        else if (kt)
            OBJ_obj2txt(kt_name, (int)kt_len, kt, 1);
        else
            snprintf(kt_name, kt_len, "unknown");
    } else {
        util_error_set(err, UTIL_ERR_RESPONSE_PARSE,
                       "the content is not an EnvelopedData (RFC 8894 section 3.2.2)");
    }
    ASN1_OBJECT_free(cipher);
    ASN1_OBJECT_free(kt);
    ERR_clear_error();
    return rc;
}

static int decrypt_in(OSSL_LIB_CTX *libctx, const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key,
                      BIO *out, unsigned int flags)
{
    /* a TPM key decrypts the content-encryption key in the TPM */
    CMS_ContentInfo *cms = CMS_ContentInfo_new_ex(libctx, util_pkey_propq(key));
    const unsigned char *p = env;
    int ok = 0;
    if (cms && d2i_CMS_ContentInfo(&cms, &p, (long)env_len) &&
        OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_enveloped)
        ok = CMS_decrypt(cms, key, cert, NULL, out, CMS_BINARY | flags) == 1;
    CMS_ContentInfo_free(cms);
    return ok;
}

/* Single DES lives in OpenSSL's legacy provider. It is loaded into a private
 * library context for this one decryption and never used to send. */
static int decrypt_legacy(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, BIO *out,
                          unsigned int flags)
{
    OSSL_LIB_CTX *libctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *legacy = libctx ? OSSL_PROVIDER_load(libctx, "legacy") : NULL;
    OSSL_PROVIDER *deflt = libctx ? OSSL_PROVIDER_load(libctx, "default") : NULL;
    int ok = legacy && deflt && decrypt_in(libctx, env, env_len, cert, key, out, flags);
    OSSL_PROVIDER_unload(legacy);
    OSSL_PROVIDER_unload(deflt);
    OSSL_LIB_CTX_free(libctx);
    return ok;
}

static int open_envelope(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, unsigned int flags,
                         uint8_t **out, size_t *out_len, char *cipher_name, size_t cipher_name_len,
                         util_error *err)
{
    char cipher[64] = "", kt[64] = "";
    util_error ignored;
    if (scep_envelope_describe(env, env_len, cipher, sizeof cipher, kt, sizeof kt, &ignored) != 0)
        return util_error_set(err, UTIL_ERR_RESPONSE_PARSE,
                              "the content is not an EnvelopedData (RFC 8894 section 3.2.2)");
    /* tpm2-openssl decrypts RSA PKCS#1 v1.5 only: it refuses the OAEP
     * padding and then hands the block to the TPM as if it were v1.5 (swtpm
     * goes into failure mode), and CMS cannot make an EC key agreement with
     * it. Such a reply never reaches the TPM. */
    if (util_pkey_in_tpm(key) && strcmp(kt, "rsaEncryption") != 0)
        return util_error_set(err, UTIL_ERR_TPM_KEY_TRANSPORT, "%s, %s, for a key held in the TPM", cipher,
                              kt);
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    /* single DES (micromdm, old NDES) goes straight to the legacy context:
     * trying the default one first would do the RSA decryption twice */
    int ok = strcmp(cipher, "des-cbc") == 0 ? decrypt_legacy(env, env_len, cert, key, mem, flags)
                                            : decrypt_in(NULL, env, env_len, cert, key, mem, flags);
    if (!ok && util_pkey_in_tpm(key)) {
        BIO_free(mem);
        return util_error_ossl(err, UTIL_ERR_TPM_OPERATION, "opening the reply (%s, %s) with the TPM key",
                               cipher, kt);
    }
    if (!ok) {
        BIO_free(mem);
        return util_error_ossl(err, UTIL_ERR_RESPONSE_DECRYPT,
                               "%s, %s (RFC 8894 section 3.2.2; NDES answers AES requests with RSA-OAEP)",
                               cipher, kt);
    }
    char *data = NULL;
    long n = BIO_get_mem_data(mem, &data);
    uint8_t *copy = OPENSSL_malloc(n > 0 ? (size_t)n : 1);
    if (!copy) {
        BIO_free(mem);
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    if (n > 0)
        memcpy(copy, data, (size_t)n);
    BIO_free(mem);
    *out = copy;
    *out_len = n > 0 ? (size_t)n : 0;
    if (cipher_name)
        snprintf(cipher_name, cipher_name_len, "%s", cipher);
    ERR_clear_error();
    return 0;
}

/* CMS_DEBUG_DECRYPT turns off OpenSSL's countermeasure against padding
 * oracles, so that a wrong key is an error instead of random content. */
int scep_envelope_open(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, uint8_t **out,
                       size_t *out_len, char *cipher_name, size_t cipher_name_len, util_error *err)
{
    return open_envelope(env, env_len, cert, key, CMS_DEBUG_DECRYPT, out, out_len, cipher_name,
                         cipher_name_len, err);
}

int scep_envelope_open_mma(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, uint8_t **out,
                           size_t *out_len, char *cipher_name, size_t cipher_name_len, util_error *err)
{
    return open_envelope(env, env_len, cert, key, 0, out, out_len, cipher_name, cipher_name_len, err);
}

int scep_certrep_content(const uint8_t *der, size_t len, EVP_PKEY *key, X509 **issued,
                         STACK_OF(X509) * *chain, X509_CRL **crl, util_error *err)
{
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    if (scep_certs_only_parse(der, len, &certs, &crls, err) != 0)
        return -1;
    int rc = -1;
    X509 *leaf = NULL;
    for (int i = 0; i < sk_X509_num(certs) && !leaf; i++) {
        X509 *x = sk_X509_value(certs, i);
        if (key ? EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1 : !X509_check_ca(x))
            leaf = x;
    }
    if (issued && !leaf) {
        util_error_set(err, UTIL_ERR_RESPONSE_NO_CERT,
                       "%d certificates in the reply, none for this key (RFC 8894 section 3.3.2.1)",
                       sk_X509_num(certs));
        goto out;
    }
    if (crl && sk_X509_CRL_num(crls) > 0) {
        *crl = sk_X509_CRL_value(crls, 0);
        X509_CRL_up_ref(*crl);
    } else if (crl) {
        *crl = NULL;
    }
    if (issued) {
        X509_up_ref(leaf);
        *issued = leaf;
    }
    if (chain) {
        if (issued && leaf) {
            (void)sk_X509_delete_ptr(certs, leaf);
            X509_free(leaf);
        }
        *chain = certs;
        certs = NULL;
    }
    rc = 0;
out:
    util_x509_stack_free(certs);
    util_crl_stack_free(crls);
    ERR_clear_error();
    return rc;
}
