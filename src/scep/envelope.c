/* Opening pkcsPKIEnvelope (RFC 8894 §3.1) and reading CertRep content. */
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "scep/scep.h"
#include "util/ossl.h"

/* Walks ContentInfo -> EnvelopedData to the contentEncryptionAlgorithm OID
 * and the first recipient's algorithm, with OpenSSL's DER reader. CMS has
 * no public getter for either. */
static int header(const unsigned char **p, long *left, int want_tag, long *len, bool der)
{
    int tag, xclass;
    const unsigned char *start = *p;
    int r = ASN1_get_object(p, len, &tag, &xclass, *left);
    if ((r & 0x80) || (want_tag >= 0 && tag != want_tag))
        return -1;
    *left -= (long)(*p - start);
    /* DER: a definite length, the whole value inside what is left */
    if (der && (r == 0x21 || *len > *left))
        return -1;
    return xclass;
}

static int read_header(const unsigned char **p, long *left, int want_tag, long *len)
{
    return header(p, left, want_tag, len, false);
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

/* read_header for DER only (see header). Returns the class, or -1. */
static int der_header(const unsigned char **p, long *left, int want_tag, long *len)
{
    return header(p, left, want_tag, len, true);
}

/* Where single DES's two steps find their input in a DER EnvelopedData:
 * the encryptedKey of RecipientInfo number `want`, and from the
 * EncryptedContentInfo the IV and the encrypted content. */
typedef struct des_parts {
    const unsigned char *ek, *iv, *ct;
    long ek_len, ct_len;
    unsigned char *joined; /* ct when it came in segments; the caller frees it */
} des_parts;

static int des_locate(const uint8_t *env, size_t env_len, int want, des_parts *d)
{
    const unsigned char *p = env;
    long left = (long)env_len, len, set_len;
    if (der_header(&p, &left, V_ASN1_SEQUENCE, &len) < 0 || /* ContentInfo */
        der_header(&p, &left, V_ASN1_OBJECT, &len) < 0 || skip(&p, &left, len) ||
        der_header(&p, &left, 0, &len) != V_ASN1_CONTEXT_SPECIFIC ||
        der_header(&p, &left, V_ASN1_SEQUENCE, &len) < 0 || /* EnvelopedData */
        der_header(&p, &left, V_ASN1_INTEGER, &len) < 0 || skip(&p, &left, len))
        return -1;
    int cls = der_header(&p, &left, -1, &set_len);
    if (cls == V_ASN1_CONTEXT_SPECIFIC) { /* originatorInfo */
        if (skip(&p, &left, set_len))
            return -1;
        cls = der_header(&p, &left, V_ASN1_SET, &set_len);
    }
    if (cls < 0)
        return -1;
    const unsigned char *ri = p;
    long ri_left = set_len;
    if (skip(&p, &left, set_len))
        return -1;
    for (int i = 0; i < want; i++)
        if (der_header(&ri, &ri_left, -1, &len) < 0 || skip(&ri, &ri_left, len))
            return -1;
    /* KeyTransRecipientInfo: version, rid, keyEncryptionAlgorithm, encryptedKey */
    if (der_header(&ri, &ri_left, V_ASN1_SEQUENCE, &len) != V_ASN1_UNIVERSAL)
        return -1;
    ri_left = len;
    for (int field = 0; field < 3; field++)
        if (der_header(&ri, &ri_left, -1, &len) < 0 || skip(&ri, &ri_left, len))
            return -1;
    if (der_header(&ri, &ri_left, V_ASN1_OCTET_STRING, &d->ek_len) != V_ASN1_UNIVERSAL)
        return -1;
    d->ek = ri;
    /* EncryptedContentInfo: contentType, contentEncryptionAlgorithm
     * { des-CBC, IV }, [0] IMPLICIT encryptedContent (primitive in DER) */
    long alg_len;
    if (der_header(&p, &left, V_ASN1_SEQUENCE, &len) != V_ASN1_UNIVERSAL)
        return -1;
    left = len;
    if (der_header(&p, &left, V_ASN1_OBJECT, &len) < 0 || skip(&p, &left, len) ||
        der_header(&p, &left, V_ASN1_SEQUENCE, &alg_len) != V_ASN1_UNIVERSAL)
        return -1;
    const unsigned char *alg = p, *o = p;
    ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &o, alg_len);
    int nid = oid ? OBJ_obj2nid(oid) : NID_undef;
    ASN1_OBJECT_free(oid);
    long rest = alg_len - (long)(o - alg);
    if (nid != NID_des_cbc || der_header(&o, &rest, V_ASN1_OCTET_STRING, &len) != V_ASN1_UNIVERSAL ||
        len != 8 || rest != 8 || skip(&p, &left, alg_len))
        return -1;
    d->iv = o;
    /* primitive (DER), or constructed from OCTET STRING segments, which
     * BER allows and Go's pkcs7 (micromdm, step-ca) sends, as one segment */
    bool constructed = left >= 2 && *p == 0xa0;
    if (left < 2 || (*p != 0x80 && !constructed) ||
        der_header(&p, &left, 0, &len) != V_ASN1_CONTEXT_SPECIFIC || len != left)
        return -1;
    if (!constructed) {
        d->ct = p;
        d->ct_len = len;
    } else {
        d->ct = d->joined = OPENSSL_malloc((size_t)len);
        d->ct_len = 0;
        long seg;
        while (d->joined && left > 0) {
            if (*p != V_ASN1_OCTET_STRING ||
                der_header(&p, &left, V_ASN1_OCTET_STRING, &seg) != V_ASN1_UNIVERSAL)
                return -1;
            memcpy(d->joined + d->ct_len, p, (size_t)seg);
            d->ct_len += seg;
            skip(&p, &left, seg);
        }
        if (!d->joined)
            return -1;
    }
    return d->ct_len > 0 && d->ct_len % 8 == 0 ? 0 : -1;
}

/* The legacy provider alone, loaded once per process and kept, with its
 * DES-CBC: it lends single DES to des_open and is never used to send. */
static OSSL_LIB_CTX *des_libctx;
static EVP_CIPHER *des_cbc;
static pthread_once_t des_once = PTHREAD_ONCE_INIT;

static void des_cipher_load(void)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    EVP_CIPHER *des =
        ctx && OSSL_PROVIDER_load(ctx, "legacy") ? EVP_CIPHER_fetch(ctx, "DES-CBC", NULL) : NULL;
    if (des) {
        des_libctx = ctx;
        des_cbc = des;
    } else {
        OSSL_LIB_CTX_free(ctx);
    }
    ERR_clear_error();
}

void scep_envelope_preload(void)
{
    pthread_once(&des_once, des_cipher_load);
}

/* The RecipientInfo for cert, when it is RSA key transport. */
static int des_recipient(CMS_ContentInfo *cms, X509 *cert)
{
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
    for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
        CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
        X509_ALGOR *alg = NULL;
        if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_TRANS ||
            CMS_RecipientInfo_ktri_cert_cmp(ri, cert) != 0)
            continue;
        CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &alg);
        return alg && OBJ_obj2nid(alg->algorithm) == NID_rsaEncryption ? i : -1;
    }
    return -1;
}

/* Decrypts DES-CBC content with its PKCS#7 padding into out. */
static int des_decrypt(const unsigned char *key, const des_parts *d, BIO *out)
{
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    unsigned char *plain = OPENSSL_malloc((size_t)d->ct_len + 8);
    int n = 0, fin = 0;
    int ok = cctx && plain && EVP_DecryptInit_ex2(cctx, des_cbc, key, d->iv, NULL) == 1 &&
             EVP_DecryptUpdate(cctx, plain, &n, d->ct, (int)d->ct_len) == 1 &&
             EVP_DecryptFinal_ex(cctx, plain + n, &fin) == 1 && BIO_write(out, plain, n + fin) == n + fin;
    if (plain)
        OPENSSL_clear_free(plain, (size_t)d->ct_len + 8);
    EVP_CIPHER_CTX_free(cctx);
    return ok;
}

/* A single-DES reply to a client, in two steps instead of a second copy of
 * the default provider (decrypt_legacy: its random generator, its method
 * stores and the key's blinding made again cost more than the rest of the
 * reply): our key opens the content-encryption key where the key lives (the
 * default provider, the TPM, the vault), and the content is decrypted with
 * the legacy provider's DES-CBC. For clients only: a wrong key is an error
 * here, as with CMS_DEBUG_DECRYPT. 1: opened; 0: our key could not open it;
 * -1: not a form handled here (another recipient type, BER), for
 * decrypt_legacy. */
static int des_open(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, BIO *out)
{
    CMS_ContentInfo *cms = CMS_ContentInfo_new_ex(NULL, util_pkey_propq(key));
    const unsigned char *p = env;
    des_parts d = {0};
    int want = -1, rc = -1;
    if (cms && d2i_CMS_ContentInfo(&cms, &p, (long)env_len) &&
        OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_enveloped)
        want = des_recipient(cms, cert);
    CMS_ContentInfo_free(cms);
    scep_envelope_preload();
    if (want < 0 || des_locate(env, env_len, want, &d) != 0 || !des_cbc) {
        OPENSSL_free(d.joined);
        return -1;
    }
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, util_pkey_propq(key));
    size_t size = (size_t)EVP_PKEY_get_size(key), cek_len = size;
    unsigned char *cek = OPENSSL_malloc(size ? size : 1);
    if (pctx && cek) {
        rc = EVP_PKEY_decrypt_init(pctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_PKEY_decrypt(pctx, cek, &cek_len, d.ek, (size_t)d.ek_len) > 0 && cek_len == 8 &&
             des_decrypt(cek, &d, out);
    }
    if (cek)
        OPENSSL_clear_free(cek, size ? size : 1);
    EVP_PKEY_CTX_free(pctx);
    OPENSSL_free(d.joined);
    if (rc == 1)
        ERR_clear_error();
    return rc;
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
    /* single DES (micromdm, old NDES) never goes to the default context
     * first, which would do the RSA decryption twice: a client opens it in
     * two steps (des_open), a server, which must not tell a wrong key apart,
     * in the legacy context */
    int ok;
    if (strcmp(cipher, "des-cbc") == 0) {
        int fast = flags & CMS_DEBUG_DECRYPT ? des_open(env, env_len, cert, key, mem) : -1;
        ok = fast >= 0 ? fast : decrypt_legacy(env, env_len, cert, key, mem, flags);
    } else {
        ok = decrypt_in(NULL, env, env_len, cert, key, mem, flags);
    }
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
