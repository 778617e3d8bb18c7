/* The key-encryption key sealed to a TPM key (kek_tpm.h). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/crypto.h"
#include "crypto/kek_tpm.h"
#include "util/file.h"
#include "util/ossl.h"

#define SEALED_MAX 1024

/* The sealing key: loaded from key_path, or made in the TPM and written
 * there (0600) when create is set and the file is missing. */
static int sealing_key(const char *key_path, bool create, EVP_PKEY **out, util_error *err)
{
    struct stat st;
    if (stat(key_path, &st) == 0 || errno != ENOENT || !create) {
        EVP_PKEY *key = NULL;
        if (crypto_key_load_file(key_path, &key, err) != 0)
            return -1;
        if (!util_pkey_in_tpm(key) || !crypto_key_is_rsa(key)) {
            EVP_PKEY_free(key);
            return util_error_set(err, UTIL_ERR_INPUT_KEY,
                                  "%s: not an RSA key held in a TPM (TSS2 PRIVATE KEY)", key_path);
        }
        *out = key;
        return 0;
    }
    crypto_key_spec spec = {CRYPTO_KEY_RSA, 2048, CRYPTO_KEY_TPM2};
    EVP_PKEY *key = NULL;
    if (crypto_key_generate(&spec, &key, err) != 0)
        return -1;
    if (crypto_key_write_file(key_path, key, err) != 0) {
        EVP_PKEY_free(key);
        return -1;
    }
    *out = key;
    return 0;
}

int kek_tpm_seal(const char *key_path, const uint8_t kek[KEK_TPM_KEK_LEN], uint8_t **sealed,
                 size_t *sealed_len, util_error *err)
{
    EVP_PKEY *key = NULL, *pub = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char *spki = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = -1;
    if (sealing_key(key_path, true, &key, err) != 0)
        return -1;
    /* the public half, in the default provider: encrypting needs no TPM */
    int n = i2d_PUBKEY(key, &spki);
    const unsigned char *p = spki;
    pub = n > 0 ? d2i_PUBKEY(NULL, &p, n) : NULL;
    ctx = pub ? EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL) : NULL;
    if (!ctx || EVP_PKEY_encrypt_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
        EVP_PKEY_encrypt(ctx, NULL, &len, kek, KEK_TPM_KEK_LEN) <= 0 || !(buf = malloc(len)) ||
        EVP_PKEY_encrypt(ctx, buf, &len, kek, KEK_TPM_KEK_LEN) <= 0) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "sealing the key-encryption key to %s", key_path);
        goto out;
    }
    *sealed = buf;
    *sealed_len = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    OPENSSL_free(spki);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    return rc;
}

int kek_tpm_unseal(const char *key_path, const uint8_t *sealed, size_t sealed_len,
                   uint8_t kek[KEK_TPM_KEK_LEN], util_error *err)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t plain[512];
    size_t len = sizeof plain;
    int rc = -1;
    if (sealing_key(key_path, false, &key, err) != 0)
        return -1;
    /* the modulus' length (the provider's EVP_PKEY_get_size is larger) */
    int modulus = (EVP_PKEY_get_bits(key) + 7) / 8;
    if (sealed_len != (size_t)modulus) {
        util_error_set(err, UTIL_ERR_INPUT_FILE, "the sealed key-encryption key has %zu bytes, not %d",
                       sealed_len, modulus);
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, util_pkey_propq(key));
    if (!ctx || EVP_PKEY_decrypt_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
        EVP_PKEY_decrypt(ctx, plain, &len, sealed, sealed_len) <= 0) {
        util_error_ossl(err, UTIL_ERR_TPM_OPERATION, "unsealing the key-encryption key with %s", key_path);
        goto out;
    }
    if (len != KEK_TPM_KEK_LEN) {
        util_error_set(err, UTIL_ERR_TPM_OPERATION, "the unsealed key-encryption key has %zu bytes, not %d",
                       len, KEK_TPM_KEK_LEN);
        goto out;
    }
    memcpy(kek, plain, KEK_TPM_KEK_LEN);
    rc = 0;
out:
    OPENSSL_cleanse(plain, sizeof plain);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return rc;
}

int kek_tpm_load_or_create(const char *key_path, const char *sealed_path, uint8_t kek[KEK_TPM_KEK_LEN],
                           util_error *err)
{
    struct stat st;
    if (stat(sealed_path, &st) == 0) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (util_file_read(sealed_path, SEALED_MAX, &data, &len, err) != 0)
            return -1;
        int rc = kek_tpm_unseal(key_path, data, len, kek, err);
        free(data);
        return rc;
    }
    uint8_t fresh[KEK_TPM_KEK_LEN];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    int rc = -1;
    if (RAND_priv_bytes(fresh, sizeof fresh) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "random key-encryption key");
        goto out;
    }
    if (kek_tpm_seal(key_path, fresh, &sealed, &sealed_len, err) != 0 ||
        util_file_write_atomic(sealed_path, sealed, sealed_len, 0600, err) != 0)
        goto out;
    memcpy(kek, fresh, sizeof fresh);
    rc = 0;
out:
    OPENSSL_cleanse(fresh, sizeof fresh);
    free(sealed);
    return rc;
}
