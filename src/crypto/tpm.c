/* Keys inside a TPM 2.0 through OpenSSL's tpm2 provider (tpm2-openssl):
 * loading the provider, generating keys in the TPM, and signing where the
 * key lives. docs/internals/crypto.md, "Keys inside a TPM". */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/ossl.h"

/* Every fetch prefers the default provider: which of two providers'
 * implementations a fetch without preference returns is not defined, and
 * software keys, ephemeral TLS keys and the TLS groups' key management
 * must not end up in the TPM. The provider's digests, ciphers and random
 * generator stay out even of the fetches that prefer it (operations with
 * a TPM key, util_pkey_propq): hashing in the TPM is slow and takes its
 * few object slots. */
#define TPM_DEFAULT_PROPERTIES "?provider=default,tpm2.digest=no,tpm2.cipher=no,tpm2.rand=no"

/* The providers live in OpenSSL's process-wide default context, so the
 * lock that serialises loading them is process-wide too (key generation
 * runs on a thread in scepd). */
static pthread_mutex_t tpm_load_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_PROVIDER *tpm_provider, *tpm_default_provider;

static const char *tpm_tcti(void)
{
    const char *tcti = getenv("TPM2OPENSSL_TCTI");
    return tcti && *tcti ? tcti : "the default TCTI (device:/dev/tpmrm0)";
}

int crypto_tpm_load(util_error *err)
{
    int rc = -1;
    pthread_mutex_lock(&tpm_load_lock);
    if (tpm_provider) {
        rc = 0;
        goto out;
    }
    /* explicitly loading one provider turns off the implicit default one */
    if (!tpm_default_provider && !(tpm_default_provider = OSSL_PROVIDER_load(NULL, "default"))) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "loading OpenSSL's default provider");
        goto out;
    }
    if (!EVP_set_default_properties(NULL, TPM_DEFAULT_PROPERTIES)) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "setting the default properties");
        goto out;
    }
    if (!(tpm_provider = OSSL_PROVIDER_load(NULL, "tpm2"))) {
        util_error_ossl(err, UTIL_ERR_TPM_UNAVAILABLE, "tpm2 provider through %s", tpm_tcti());
        goto out;
    }
    ERR_clear_error();
    rc = 0;
out:
    pthread_mutex_unlock(&tpm_load_lock);
    return rc;
}

void crypto_tpm_unload(void)
{
    pthread_mutex_lock(&tpm_load_lock);
    if (tpm_provider)
        OSSL_PROVIDER_unload(tpm_provider);
    if (tpm_default_provider)
        OSSL_PROVIDER_unload(tpm_default_provider);
    tpm_provider = tpm_default_provider = NULL;
    pthread_mutex_unlock(&tpm_load_lock);
}

int crypto_tpm_key_generate(const crypto_key_spec *spec, EVP_PKEY **out, util_error *err)
{
    if (!(spec->alg == CRYPTO_KEY_RSA && spec->bits == 2048) &&
        !(spec->alg == CRYPTO_KEY_EC && spec->bits == 256))
        return util_error_set(err, UTIL_ERR_KEY_GENERATION, "a TPM key is rsa:2048 or ec:P-256");
    if (crypto_tpm_load(err) != 0)
        return -1;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx =
        EVP_PKEY_CTX_new_from_name(NULL, spec->alg == CRYPTO_KEY_RSA ? "RSA" : "EC", "provider=tpm2");
    int ok = ctx && EVP_PKEY_keygen_init(ctx) > 0 &&
             (spec->alg == CRYPTO_KEY_RSA ? EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) > 0
                                          : EVP_PKEY_CTX_set_group_name(ctx, "P-256") > 0) &&
             EVP_PKEY_generate(ctx, &key) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(key);
        return util_error_ossl(err, UTIL_ERR_TPM_OPERATION, "generating %s in the TPM through %s",
                               spec->alg == CRYPTO_KEY_RSA ? "rsa:2048" : "ec:P-256", tpm_tcti());
    }
    *out = key;
    return 0;
}

int crypto_sign_init(EVP_MD_CTX *mctx, EVP_PKEY *key, const EVP_MD *md)
{
    return EVP_DigestSignInit_ex(mctx, NULL, md ? EVP_MD_get0_name(md) : NULL, NULL, util_pkey_propq(key),
                                 key, NULL) > 0
               ? 0
               : -1;
}

int crypto_sign_x509_req(X509_REQ *req, EVP_PKEY *key, const EVP_MD *md)
{
    if (!util_pkey_in_tpm(key))
        return X509_REQ_sign(req, key, md) > 0 ? 0 : -1;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int ok = mctx && crypto_sign_init(mctx, key, md) == 0 && X509_REQ_sign_ctx(req, mctx) > 0;
    EVP_MD_CTX_free(mctx);
    return ok ? 0 : -1;
}

int crypto_sign_x509(X509 *cert, EVP_PKEY *key, const EVP_MD *md)
{
    if (!util_pkey_in_tpm(key))
        return X509_sign(cert, key, md) > 0 ? 0 : -1;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int ok = mctx && crypto_sign_init(mctx, key, md) == 0 && X509_sign_ctx(cert, mctx) > 0;
    EVP_MD_CTX_free(mctx);
    return ok ? 0 : -1;
}

int crypto_key_storage_parse(const char *text, crypto_key_storage *out)
{
    if (text && strcmp(text, "software") == 0)
        *out = CRYPTO_KEY_SOFTWARE;
    else if (text && strcmp(text, "tpm2") == 0)
        *out = CRYPTO_KEY_TPM2;
    else
        return -1;
    return 0;
}

const char *crypto_key_storage_name(crypto_key_storage storage)
{
    return storage == CRYPTO_KEY_TPM2 ? "tpm2" : "software";
}

crypto_key_storage crypto_key_storage_of(EVP_PKEY *key)
{
    return util_pkey_in_tpm(key) ? CRYPTO_KEY_TPM2 : CRYPTO_KEY_SOFTWARE;
}
