/* Proxy keys and the operations they forward (proxy.h). This file alone
 * uses RSA_METHOD and EC_KEY_METHOD, deprecated in OpenSSL 3. */
#undef OPENSSL_NO_DEPRECATED
#undef OPENSSL_API_COMPAT
#define OPENSSL_API_COMPAT 10101
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto/proxy.h"

#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/ossl.h"

/* ---- on the real key ---- */

static const char *op_name(crypto_key_op op)
{
    switch (op) {
    case CRYPTO_OP_RSA_SIGN: return "RSA signature";
    case CRYPTO_OP_RSA_DECRYPT: return "RSA decryption";
    case CRYPTO_OP_ECDSA_SIGN: return "ECDSA signature";
    case CRYPTO_OP_ECDH: return "ECDH";
    }
    return "key operation";
}

int crypto_key_operate(EVP_PKEY *key, crypto_key_op op, int param, const uint8_t *in, size_t len,
                       uint8_t **out, size_t *out_len, util_error *err)
{
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    int ok = 0;
    bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    if (rsa != (op == CRYPTO_OP_RSA_SIGN || op == CRYPTO_OP_RSA_DECRYPT) ||
        (!rsa && EVP_PKEY_get_base_id(key) != EVP_PKEY_EC))
        return util_error_set(err, UTIL_ERR_INTERNAL, "%s with a key of another type", op_name(op));
    const EVP_MD *digest = op == CRYPTO_OP_RSA_SIGN ? EVP_get_digestbynid(param) : NULL;
    if (op == CRYPTO_OP_RSA_SIGN && (!digest || (size_t)EVP_MD_get_size(digest) != len))
        return util_error_set(err, UTIL_ERR_INTERNAL, "RSA signature of something that is not a digest");
    if (op == CRYPTO_OP_ECDSA_SIGN && (len < 20 || len > 64))
        return util_error_set(err, UTIL_ERR_INTERNAL, "ECDSA signature of something that is not a digest");
    if (op == CRYPTO_OP_RSA_DECRYPT && util_pkey_in_tpm(key) && param != RSA_PKCS1_PADDING)
        /* tpm2-openssl cannot do OAEP (or raw) decryption, and trying
         * leaves swtpm unanswering: refused before the TPM sees it */
        return util_error_set(err, UTIL_ERR_TPM_KEY_TRANSPORT,
                              "the reply's key transport needs a decryption the TPM key cannot do");
    if (op == CRYPTO_OP_RSA_DECRYPT && param != RSA_PKCS1_PADDING && param != RSA_NO_PADDING)
        return util_error_set(err, UTIL_ERR_INTERNAL, "RSA decryption with a padding that is not allowed");
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, util_pkey_propq(key));
    switch (ctx ? op : 0) {
    case CRYPTO_OP_RSA_SIGN:
        ok = EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, digest) == 1;
        /* fall through */
    case CRYPTO_OP_ECDSA_SIGN:
        ok = (op == CRYPTO_OP_RSA_SIGN ? ok : EVP_PKEY_sign_init(ctx) == 1) &&
             EVP_PKEY_sign(ctx, NULL, &n, in, len) == 1 && (buf = OPENSSL_malloc(n)) &&
             EVP_PKEY_sign(ctx, buf, &n, in, len) == 1;
        break;
    case CRYPTO_OP_RSA_DECRYPT:
        ok = EVP_PKEY_decrypt_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, param) == 1 &&
             EVP_PKEY_decrypt(ctx, NULL, &n, in, len) == 1 && (buf = OPENSSL_malloc(n)) &&
             EVP_PKEY_decrypt(ctx, buf, &n, in, len) == 1;
        break;
    case CRYPTO_OP_ECDH: {
        const unsigned char *p = in;
        peer = d2i_PUBKEY(NULL, &p, (long)len);
        ok = peer && p == in + len && EVP_PKEY_derive_init(ctx) == 1 &&
             EVP_PKEY_derive_set_peer(ctx, peer) == 1 && EVP_PKEY_derive(ctx, NULL, &n) == 1 &&
             (buf = OPENSSL_malloc(n)) && EVP_PKEY_derive(ctx, buf, &n) == 1;
        break;
    }
    default: break;
    }
    if (ok) {
        *out = buf;
        *out_len = n;
        buf = NULL;
    } else {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "%s", op_name(op));
    }
    if (buf)
        OPENSSL_clear_free(buf, n);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    return ok ? 0 : -1;
}

/* ---- proxies ---- */

typedef struct proxy_ref {
    crypto_proxy_fn fn;
    void *arg;
    void (*arg_free)(void *);
    bool tpm;
} proxy_ref;

static int rsa_index = -1, ec_index = -1;
static RSA_METHOD *rsa_method;
static EC_KEY_METHOD *ec_method;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;

static void ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    proxy_ref *r = ptr;
    if (!r)
        return;
    if (r->arg_free)
        r->arg_free(r->arg);
    free(r);
}

static int forward(const proxy_ref *r, crypto_key_op op, int param, const uint8_t *in, size_t len,
                   uint8_t **out, size_t *out_len)
{
    return r ? r->fn(r->arg, op, param, in, len, out, out_len) : -1;
}

static int rsa_sign(int type, const unsigned char *m, unsigned int m_len, unsigned char *sig,
                    unsigned int *sig_len, const RSA *rsa)
{
    uint8_t *out = NULL;
    size_t n = 0;
    if (forward(RSA_get_ex_data(rsa, rsa_index), CRYPTO_OP_RSA_SIGN, type, m, m_len, &out, &n) != 0)
        return 0;
    int ok = n <= (size_t)RSA_size(rsa);
    if (ok) {
        memcpy(sig, out, n);
        *sig_len = (unsigned int)n;
    }
    OPENSSL_free(out);
    return ok;
}

static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to, RSA *rsa, int padding)
{
    uint8_t *out = NULL;
    size_t n = 0;
    if (flen < 0 || (padding != RSA_PKCS1_PADDING && padding != RSA_NO_PADDING) ||
        forward(RSA_get_ex_data(rsa, rsa_index), CRYPTO_OP_RSA_DECRYPT, padding, from, (size_t)flen, &out,
                &n) != 0)
        return -1;
    int len = n <= (size_t)RSA_size(rsa) ? (int)n : -1;
    if (len >= 0)
        memcpy(to, out, n);
    OPENSSL_clear_free(out, n);
    return len;
}

static int rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa, int padding)
{
    (void)flen;
    (void)from;
    (void)to;
    (void)rsa;
    (void)padding;
    log_error("a raw RSA private operation was asked of a proxy key; it signs digests only");
    return -1;
}

static ECDSA_SIG *ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *rp,
                              EC_KEY *eckey)
{
    (void)kinv;
    (void)rp;
    uint8_t *out = NULL;
    size_t n = 0;
    if (dlen < 0 || forward(EC_KEY_get_ex_data(eckey, ec_index), CRYPTO_OP_ECDSA_SIGN, 0, dgst, (size_t)dlen,
                            &out, &n) != 0)
        return NULL;
    const unsigned char *p = out;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
    OPENSSL_free(out);
    return sig;
}

static int ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen,
                   const BIGNUM *kinv, const BIGNUM *rp, EC_KEY *eckey)
{
    (void)type;
    ECDSA_SIG *s = ec_sign_sig(dgst, dlen, kinv, rp, eckey);
    if (!s)
        return 0;
    unsigned char *p = sig;
    int n = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    if (n <= 0)
        return 0;
    *siglen = (unsigned int)n;
    return 1;
}

static int ec_compute_key(unsigned char **psec, size_t *pseclen, const EC_POINT *pub, const EC_KEY *ecdh)
{
    EC_KEY *peer = EC_KEY_new();
    unsigned char *der = NULL;
    int n = 0, ok = 0;
    if (peer && EC_KEY_set_group(peer, EC_KEY_get0_group(ecdh)) == 1 && EC_KEY_set_public_key(peer, pub) == 1)
        n = i2d_EC_PUBKEY(peer, &der);
    EC_KEY_free(peer);
    uint8_t *out = NULL;
    size_t len = 0;
    if (n > 0 &&
        forward(EC_KEY_get_ex_data(ecdh, ec_index), CRYPTO_OP_ECDH, 0, der, (size_t)n, &out, &len) == 0) {
        *psec = out;
        *pseclen = len;
        ok = 1;
    }
    OPENSSL_free(der);
    return ok;
}

/* util_pkey_remote_tpm: the choices a TPM key needs (3DES, a temporary
 * RSA signer for EC) follow the proxy. */
static bool proxy_in_tpm(const EVP_PKEY *key)
{
    const proxy_ref *r = NULL;
    if (EVP_PKEY_get0_provider(key)) /* a proxy is a legacy key */
        return false;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        const RSA *rsa = EVP_PKEY_get0_RSA(key);
        r = rsa && RSA_get_method(rsa) == rsa_method ? RSA_get_ex_data(rsa, rsa_index) : NULL;
    } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
        r = ec && EC_KEY_get_method(ec) == ec_method ? EC_KEY_get_ex_data(ec, ec_index) : NULL;
    }
    return r && r->tpm;
}

static void methods_init(void)
{
    rsa_index = RSA_get_ex_new_index(0, NULL, NULL, NULL, ref_free);
    ec_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, ref_free);
    rsa_method = RSA_meth_dup(RSA_PKCS1_OpenSSL());
    ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (rsa_index < 0 || ec_index < 0 || !rsa_method || !ec_method)
        return;
    RSA_meth_set1_name(rsa_method, "scepd proxy");
    RSA_meth_set_sign(rsa_method, rsa_sign);
    RSA_meth_set_priv_dec(rsa_method, rsa_priv_dec);
    RSA_meth_set_priv_enc(rsa_method, rsa_priv_enc);
    int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
    EC_KEY_METHOD_get_sign(ec_method, NULL, &sign_setup, NULL);
    EC_KEY_METHOD_set_sign(ec_method, ec_sign, sign_setup, ec_sign_sig);
    EC_KEY_METHOD_set_compute_key(ec_method, ec_compute_key);
    util_pkey_remote_tpm = proxy_in_tpm;
}

int crypto_proxy_new(const uint8_t *pubkey_der, size_t len, bool in_tpm, crypto_proxy_fn fn, void *arg,
                     void (*arg_free)(void *), EVP_PKEY **key, util_error *err)
{
    const unsigned char *p = pubkey_der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len), *out = NULL;
    proxy_ref *r = calloc(1, sizeof *r);
    int rc = -1;
    pthread_once(&methods_once, methods_init);
    if (r)
        *r = (proxy_ref){.fn = fn, .arg = arg, .arg_free = arg_free, .tpm = in_tpm};
    else if (arg_free)
        arg_free(arg);
    if (!pk || !r || !rsa_method || !ec_method || !util_pkey_remote_tpm) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "a proxy for a key held elsewhere");
        goto out;
    }
    out = EVP_PKEY_new();
    if (!out)
        goto oom;
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        RSA *rsa = EVP_PKEY_get1_RSA(pk);
        if (!rsa || RSA_set_method(rsa, rsa_method) != 1 || RSA_set_ex_data(rsa, rsa_index, r) != 1) {
            RSA_free(rsa);
            goto oom;
        }
        r = NULL; /* the RSA owns it now */
        if (EVP_PKEY_assign_RSA(out, rsa) != 1) {
            RSA_free(rsa);
            goto oom;
        }
    } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        EC_KEY *ec = EVP_PKEY_get1_EC_KEY(pk);
        if (!ec || EC_KEY_set_method(ec, ec_method) != 1 || EC_KEY_set_ex_data(ec, ec_index, r) != 1) {
            EC_KEY_free(ec);
            goto oom;
        }
        r = NULL;
        if (EVP_PKEY_assign_EC_KEY(out, ec) != 1) {
            EC_KEY_free(ec);
            goto oom;
        }
    } else {
        util_error_set(err, UTIL_ERR_INTERNAL, "a proxy for a key of a type scepd does not use");
        goto out;
    }
    *key = out;
    out = NULL;
    rc = 0;
    goto out;
oom:
    util_error_ossl(err, UTIL_ERR_INTERNAL, "making a proxy key");
out:
    if (r)
        ref_free(NULL, r, NULL, 0, 0, NULL);
    EVP_PKEY_free(out);
    EVP_PKEY_free(pk);
    return rc;
}
