/* Password hashing (scrypt), random tokens and sealed secrets (AES-256-GCM). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "util/codec.h"
#include "util/file.h"

#define SCRYPT_LOG_N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_LEN 16
#define HASH_LEN 32

static int scrypt(const char *password, const uint8_t *salt, size_t salt_len, int log_n, int r, int p,
                  uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    uint64_t n = 1ull << log_n;
    uint32_t rr = (uint32_t)r, pp = (uint32_t)p;
    uint64_t maxmem = 64u << 20;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, strlen(password)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx && EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

int crypto_password_hash(const char *password, char **out, util_error *err)
{
    uint8_t salt[SALT_LEN], hash[HASH_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        scrypt(password, salt, sizeof salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, hash, sizeof hash) != 0)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "hashing the password");
    char *salt64 = util_base64_encode(salt, sizeof salt);
    char *hash64 = util_base64_encode(hash, sizeof hash);
    OPENSSL_cleanse(hash, sizeof hash);
    size_t len = salt64 && hash64 ? strlen(salt64) + strlen(hash64) + 32 : 0;
    char *s = len ? malloc(len) : NULL;
    if (s)
        snprintf(s, len, "scrypt$%d$%d$%d$%s$%s", SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, salt64, hash64);
    if (hash64)
        OPENSSL_cleanse(hash64, strlen(hash64));
    free(salt64);
    free(hash64);
    if (!s)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    *out = s;
    return 0;
}

static int decode64(const char *in, size_t in_len, uint8_t *out, size_t max)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (in_len == 0 || in_len / 4 * 3 > max + 2 || util_base64_decode(in, in_len, &buf, &n) != 0)
        return -1;
    int rc = n <= max ? (int)n : -1;
    if (rc > 0)
        memcpy(out, buf, n);
    OPENSSL_cleanse(buf, n);
    free(buf);
    return rc;
}

bool crypto_password_verify(const char *password, const char *stored)
{
    int log_n, r, p, used = 0;
    if (!password || !stored || sscanf(stored, "scrypt$%d$%d$%d$%n", &log_n, &r, &p, &used) != 3 ||
        used == 0 || log_n < 10 || log_n > 20 || r < 1 || r > 32 || p < 1 || p > 4)
        return false;
    const char *salt64 = stored + used;
    const char *dollar = strchr(salt64, '$');
    if (!dollar)
        return false;
    uint8_t salt[64], want[64], got[64];
    int salt_len = decode64(salt64, (size_t)(dollar - salt64), salt, sizeof salt);
    int hash_len = decode64(dollar + 1, strlen(dollar + 1), want, sizeof want);
    if (salt_len <= 0 || hash_len <= 0)
        return false;
    bool ok = scrypt(password, salt, (size_t)salt_len, log_n, r, p, got, (size_t)hash_len) == 0 &&
              CRYPTO_memcmp(got, want, (size_t)hash_len) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

int crypto_random_hex(char *out, size_t bytes)
{
    uint8_t buf[64];
    if (bytes > sizeof buf || RAND_bytes(buf, (int)bytes) != 1)
        return -1;
    util_hex(buf, bytes, out, 0);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

uint32_t crypto_random_below(uint32_t bound)
{
    if (bound <= 1)
        return 0;
    uint32_t limit = UINT32_MAX - UINT32_MAX % bound, v;
    do {
        if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
            return 0;
    } while (v >= limit);
    return v % bound;
}

int crypto_hmac_sha256(const uint8_t key[32], const char *const *parts, size_t n, uint8_t out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t len = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, 32, params) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(ctx, (const unsigned char *)parts[i], strlen(parts[i]) + 1) == 1;
    ok = ok && EVP_MAC_final(ctx, out, &len, 32) == 1 && len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}

int crypto_seal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                util_error *err)
{
    uint8_t *buf = malloc(12 + len + 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0,
        ok = buf && ctx && RAND_bytes(buf, 12) == 1 &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
             EVP_EncryptUpdate(ctx, buf + 12, &n, in, (int)len) == 1 &&
             EVP_EncryptFinal_ex(ctx, buf + 12 + n, &fin) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + n + fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(buf);
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "sealing a secret");
    }
    *out = buf;
    *out_len = 12 + (size_t)n + (size_t)fin + 16;
    return 0;
}

int crypto_unseal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                  util_error *err)
{
    if (len < 28)
        return util_error_set(err, UTIL_ERR_STORE, "sealed secret too short");
    size_t ct_len = len - 28;
    uint8_t *buf = malloc(ct_len + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0,
        ok = buf && ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) == 1 &&
             EVP_DecryptUpdate(ctx, buf, &n, in + 12, (int)ct_len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + len - 16)) == 1 &&
             EVP_DecryptFinal_ex(ctx, buf + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        if (buf)
            OPENSSL_cleanse(buf, ct_len);
        free(buf);
        return util_error_ossl(err, UTIL_ERR_STORE, "a sealed secret does not open (wrong key or altered)");
    }
    buf[n + fin] = '\0';
    *out = buf;
    *out_len = (size_t)(n + fin);
    return 0;
}
