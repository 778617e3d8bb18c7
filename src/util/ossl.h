/* Small conveniences over OpenSSL types shared by several modules. */
#ifndef SCEPD_UTIL_OSSL_H
#define SCEPD_UTIL_OSSL_H

#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <string.h>

static inline void util_x509_stack_free(STACK_OF(X509) * s)
{
    sk_X509_pop_free(s, X509_free);
}

static inline void util_crl_stack_free(STACK_OF(X509_CRL) * s)
{
    sk_X509_CRL_pop_free(s, X509_CRL_free);
}

/* Keys held in a TPM 2.0 belong to OpenSSL's "tpm2" provider (tpm2-openssl). */
/* Set by src/vault: whether a proxy key (its private half held by the
 * vault process) is a key inside the TPM there. NULL: no proxies. */
extern bool (*util_pkey_remote_tpm)(const EVP_PKEY *key);

static inline bool util_pkey_in_tpm(const EVP_PKEY *key)
{
    const OSSL_PROVIDER *prov = key ? EVP_PKEY_get0_provider(key) : NULL;
    if (prov && strcmp(OSSL_PROVIDER_get0_name(prov), "tpm2") == 0)
        return true;
    return key && util_pkey_remote_tpm && util_pkey_remote_tpm(key);
}

/* The property query of an operation with key (signature, decryption, a
 * TLS context): OpenSSL 3.0 fetches the operation first and then exports
 * the key to that provider, and the default provider would get only the
 * public half of a TPM key. crypto_tpm_load's default properties prefer
 * the default provider everywhere else and keep the tpm2 provider's
 * digests, ciphers and random generator out even here. */
static inline const char *util_pkey_propq(const EVP_PKEY *key)
{
    const OSSL_PROVIDER *prov = key ? EVP_PKEY_get0_provider(key) : NULL;
    return prov && strcmp(OSSL_PROVIDER_get0_name(prov), "tpm2") == 0 ? "?provider=tpm2" : NULL;
}

#endif
