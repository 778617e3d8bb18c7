/*
 * Sealing of private keys and other secrets (seal.h): AES-256-GCM through
 * OpenSSL's EVP interface, the text form of a sealed value and its parser.
 * The KEK lives in OpenSSL's secure heap when scepd set one up
 * (CRYPTO_secure_malloc_init), and is wiped when freed either way.
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "util/codec.h"

struct crypto_kek {
    uint8_t key[CRYPTO_KEK_LEN];
};

int crypto_kek_from_bytes(const uint8_t *bytes, size_t len, crypto_kek **out, util_error *err)
{
    if (!bytes || len != CRYPTO_KEK_LEN)
        return util_error_set(err, UTIL_ERR_KEK_INVALID, "a key-encryption key has %d bytes, not %zu",
                              CRYPTO_KEK_LEN, len);
    crypto_kek *kek = OPENSSL_secure_zalloc(sizeof *kek);
    if (!kek)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    memcpy(kek->key, bytes, CRYPTO_KEK_LEN);
    *out = kek;
    return 0;
}

void crypto_kek_free(crypto_kek *kek)
{
    if (kek)
        OPENSSL_secure_clear_free(kek, sizeof *kek);
}

bool crypto_is_sealed(const char *text)
{
    return text && !strncmp(text, CRYPTO_SEALED_PREFIX, strlen(CRYPTO_SEALED_PREFIX));
}

void crypto_sealed_clear(crypto_sealed *s)
{
    if (!s)
        return;
    free(s->ciphertext);
    memset(s, 0, sizeof *s);
}

int crypto_sealed_parse(const char *text, size_t len, crypto_sealed *out, util_error *err)
{
    size_t prefix = strlen(CRYPTO_SEALED_PREFIX);
    /* the largest plaintext, base64 of nonce + ciphertext + tag */
    size_t max = 4 * ((CRYPTO_SEAL_MAX_PLAIN + CRYPTO_SEAL_NONCE_LEN + CRYPTO_SEAL_TAG_LEN + 2) / 3);
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    memset(out, 0, sizeof *out);
    if (!text || len < prefix || memcmp(text, CRYPTO_SEALED_PREFIX, prefix) != 0)
        return util_error_set(err, UTIL_ERR_SEALED_INVALID, "not a sealed value (no \"%s\" prefix)",
                              CRYPTO_SEALED_PREFIX);
    if (len - prefix > max)
        return util_error_set(err, UTIL_ERR_SEALED_INVALID, "sealed value longer than %zu characters",
                              prefix + max);
    if (memchr(text + prefix, '\0', len - prefix) ||
        util_base64_decode(text + prefix, len - prefix, &raw, &raw_len) != 0)
        return util_error_set(err, UTIL_ERR_SEALED_INVALID, "sealed value: not base64 after the prefix");
    if (raw_len < CRYPTO_SEAL_NONCE_LEN + CRYPTO_SEAL_TAG_LEN) {
        free(raw);
        return util_error_set(err, UTIL_ERR_SEALED_INVALID, "sealed value: %zu bytes, shorter than %d",
                              raw_len, CRYPTO_SEAL_NONCE_LEN + CRYPTO_SEAL_TAG_LEN);
    }
    out->ciphertext_len = raw_len - CRYPTO_SEAL_NONCE_LEN - CRYPTO_SEAL_TAG_LEN;
    memcpy(out->nonce, raw, CRYPTO_SEAL_NONCE_LEN);
    memcpy(out->tag, raw + raw_len - CRYPTO_SEAL_TAG_LEN, CRYPTO_SEAL_TAG_LEN);
    /* at least one byte, so that an empty ciphertext is not a NULL pointer */
    out->ciphertext = malloc(out->ciphertext_len + 1);
    if (!out->ciphertext) {
        free(raw);
        memset(out, 0, sizeof *out);
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    memcpy(out->ciphertext, raw + CRYPTO_SEAL_NONCE_LEN, out->ciphertext_len);
    free(raw);
    return 0;
}

int crypto_seal_text(const crypto_kek *kek, const char *aad, const uint8_t *plain, size_t len, char **out,
                     util_error *err)
{
    if (!kek || !aad || (!plain && len))
        return util_error_set(err, UTIL_ERR_INTERNAL, "crypto_seal_text: missing argument");
    if (len > CRYPTO_SEAL_MAX_PLAIN)
        return util_error_set(err, UTIL_ERR_INTERNAL, "a secret of %zu bytes is too long to seal", len);
    size_t raw_len = CRYPTO_SEAL_NONCE_LEN + len + CRYPTO_SEAL_TAG_LEN;
    uint8_t *raw = malloc(raw_len);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    char *b64 = NULL, *text = NULL;
    int n = 0, fin = 0, rc = -1;
    if (!raw || !ctx) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (RAND_bytes(raw, CRYPTO_SEAL_NONCE_LEN) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, kek->key, raw) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(ctx, raw + CRYPTO_SEAL_NONCE_LEN, &n, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, raw + CRYPTO_SEAL_NONCE_LEN + n, &fin) != 1 || (size_t)(n + fin) != len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_SEAL_TAG_LEN,
                            raw + CRYPTO_SEAL_NONCE_LEN + len) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "sealing a secret");
        goto out;
    }
    b64 = util_base64_encode(raw, raw_len);
    if (!b64 || asprintf(&text, "%s%s", CRYPTO_SEALED_PREFIX, b64) < 0) {
        text = NULL;
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    *out = text;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    free(b64);
    return rc;
}

int crypto_unseal_text(const crypto_kek *kek, const char *aad, const char *sealed, char **out,
                       size_t *out_len, util_error *err)
{
    crypto_sealed s;
    if (!kek || !aad || !sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "crypto_unseal_text: missing argument");
    if (crypto_sealed_parse(sealed, strlen(sealed), &s, err) != 0)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    char *plain = malloc(s.ciphertext_len + 1);
    int n = 0, fin = 0, rc = -1;
    if (!ctx || !plain) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, kek->key, s.nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
        EVP_DecryptUpdate(ctx, (uint8_t *)plain, &n, s.ciphertext, (int)s.ciphertext_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_SEAL_TAG_LEN, s.tag) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "opening a sealed value");
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, (uint8_t *)plain + n, &fin) != 1 || (size_t)(n + fin) != s.ciphertext_len) {
        ERR_clear_error();
        util_error_set(err, UTIL_ERR_SEALED_INVALID, "the sealed value for \"%s\" does not open", aad);
        goto out;
    }
    plain[s.ciphertext_len] = '\0';
    *out = plain;
    *out_len = s.ciphertext_len;
    plain = NULL;
    rc = 0;
out:
    if (plain)
        crypto_secret_free(plain, s.ciphertext_len + 1);
    EVP_CIPHER_CTX_free(ctx);
    crypto_sealed_clear(&s);
    return rc;
}

void crypto_seal_aad_key(char *out, size_t size, const char *name, int64_t request_id)
{
    snprintf(out, size, "scepd-key-v1|keys|%s|%" PRId64, name, request_id);
}

void crypto_seal_aad_request(char *out, size_t size, int64_t id, const char *column, const char *key_name)
{
    snprintf(out, size, "scepd-key-v1|requests|%" PRId64 "|%s|%s", id, column, key_name);
}
