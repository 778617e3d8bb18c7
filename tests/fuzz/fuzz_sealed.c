/* crypto_sealed_parse and crypto_unseal_text over arbitrary text: the
 * parser of the sealed form that the store's key columns and the secrets
 * key hold (src/crypto/seal.h). A parse that succeeds accounts for every
 * decoded byte; opening under a fixed KEK either fails with the catalogue
 * code or yields exactly the ciphertext's length. The seed "valid" was
 * sealed under that KEK (32 bytes of 0x42) with the AAD below. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/seal.h"

#define FUZZ_AAD "scepd-key-v1|keys|Fuzz|1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static crypto_kek *kek;
    util_error err;
    if (!kek) {
        uint8_t bytes[CRYPTO_KEK_LEN];
        memset(bytes, 0x42, sizeof bytes);
        if (crypto_kek_from_bytes(bytes, sizeof bytes, &kek, &err) != 0)
            abort();
    }
    crypto_sealed s;
    const char *text = (const char *)data;
    int parsed = crypto_sealed_parse(text, size, &s, &err);
    if (parsed == 0) {
        size_t prefix = strlen(CRYPTO_SEALED_PREFIX);
        size_t b64 = size - prefix;
        /* base64: 4 characters per 3 bytes, less the padding */
        if (b64 % 4 != 0 || s.ciphertext_len + CRYPTO_SEAL_NONCE_LEN + CRYPTO_SEAL_TAG_LEN > b64 / 4 * 3 ||
            s.ciphertext_len + CRYPTO_SEAL_NONCE_LEN + CRYPTO_SEAL_TAG_LEN + 2 < b64 / 4 * 3 || !s.ciphertext)
            abort();
        crypto_sealed_clear(&s);
    } else if (err.code != UTIL_ERR_SEALED_INVALID && err.code != UTIL_ERR_INTERNAL) {
        abort();
    }
    /* the NUL-terminated form, as the store hands it over */
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *plain = NULL;
    size_t len = 0;
    if (crypto_unseal_text(kek, FUZZ_AAD, copy, &plain, &len, &err) == 0) {
        /* what opened is the C string: the input up to its first NUL */
        if (crypto_sealed_parse(copy, strlen(copy), &s, &err) != 0 || s.ciphertext_len != len ||
            plain[len] != '\0')
            abort();
        crypto_sealed_clear(&s);
        crypto_secret_free(plain, len + 1);
    } else if (err.code != UTIL_ERR_SEALED_INVALID && err.code != UTIL_ERR_INTERNAL) {
        abort();
    }
    free(copy);
    return 0;
}
