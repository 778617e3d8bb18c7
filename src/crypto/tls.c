/* The TLS server context of scepd's HTTPS listener, from a stored key pair. */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/ossl.h"

/* The TLS policy of every listener, in this one place (docs/internals/crypto.md):
 * TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE key exchange with AEAD
 * ciphers (no static RSA key exchange, no CBC, no finite-field DHE), for
 * ECDSA and RSA certificates alike; TLS 1.3 keeps OpenSSL's three AEAD
 * suites; no renegotiation, no compression, no session tickets kept
 * across restarts of the context. */
#define TLS12_CIPHERS                                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                             \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                             \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static int tls_apply_policy(SSL_CTX *ctx, util_error *err)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 || SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "setting the TLS policy");
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    return 0;
}

int crypto_tls_server_ctx(const char *key_pem, const char *cert_pem, const char *chain_pem, SSL_CTX **out,
                          util_error *err)
{
    EVP_PKEY *key = NULL;
    if (crypto_key_load((const uint8_t *)key_pem, strlen(key_pem), &key, err) != 0)
        return -1;
    int rc = crypto_tls_server_ctx_key(key, cert_pem, chain_pem, out, err);
    EVP_PKEY_free(key);
    return rc;
}

int crypto_tls_server_ctx_key(EVP_PKEY *key, const char *cert_pem, const char *chain_pem, SSL_CTX **out,
                              util_error *err)
{
    STACK_OF(X509) *chain = NULL;
    X509 *cert = NULL;
    SSL_CTX *ctx = NULL;
    int rc = -1;
    if (crypto_cert_load((const uint8_t *)cert_pem, strlen(cert_pem), &cert, err) != 0)
        goto out;
    /* a TPM key signs the handshake in the TPM (util_pkey_propq). Key
     * exchange then uses X25519 and X448 only: the NIST curves' key
     * management would be the TPM's too (docs/internals/crypto.md) */
    ctx = SSL_CTX_new_ex(NULL, util_pkey_propq(key), TLS_server_method());
    if (!ctx) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "creating the TLS context");
        goto out;
    }
    if (chain_pem && chain_pem[0] &&
        crypto_certs_load((const uint8_t *)chain_pem, strlen(chain_pem), &chain, err) != 0)
        goto out;
    if (tls_apply_policy(ctx, err) != 0)
        goto out;
    /* an RSA key held in another process's TPM signs PKCS#1 v1.5 digests
     * only (src/vault): no RSA-PSS, hence TLS 1.2 with PKCS#1 signatures */
    if (!EVP_PKEY_get0_provider(key) && util_pkey_in_tpm(key) && crypto_key_is_rsa(key) &&
        (SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != 1 ||
         SSL_CTX_set1_sigalgs_list(ctx, "RSA+SHA256:RSA+SHA384:RSA+SHA512") != 1)) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "TLS signature algorithms for a TPM key");
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        util_error_ossl(err, UTIL_ERR_KEY_MISMATCH, "TLS key and certificate");
        goto out;
    }
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        if (X509_check_issued(x, x) == X509_V_OK)
            continue; /* roots are not sent */
        if (SSL_CTX_add1_chain_cert(ctx, x) != 1) {
            util_error_ossl(err, UTIL_ERR_INTERNAL, "adding a chain certificate");
            goto out;
        }
    }
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    SSL_CTX_free(ctx);
    X509_free(cert);
    util_x509_stack_free(chain);
    return rc;
}
