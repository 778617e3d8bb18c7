/* util_base64_decode over arbitrary text: a decode that succeeds encodes back
 * to the same text (the decoder is strict, so there is one spelling per
 * value), and every encoding decodes back to its bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (util_base64_decode((const char *)data, size, &raw, &raw_len) == 0) {
        if (raw_len > size / 4 * 3 || raw[raw_len] != '\0')
            abort();
        char *again = util_base64_encode(raw, raw_len);
        if (!again)
            abort();
        /* unused low bits of the last character may differ; the length may not */
        if (strlen(again) != size)
            abort();
        free(again);
        free(raw);
    }
    /* the input as bytes: encode, decode, compare */
    char *b64 = util_base64_encode(data, size);
    if (!b64)
        abort();
    if (util_base64_decode(b64, strlen(b64), &raw, &raw_len) != 0 || raw_len != size ||
        (size && memcmp(raw, data, size) != 0))
        abort();
    free(raw);
    free(b64);
    char hex[2 * 64 + 1];
    uint8_t back[64];
    size_t n = size < 64 ? size : 64;
    util_hex(data, n, hex, (int)(size & 1));
    if (util_unhex(hex, back, sizeof back) != (int)n || (n && memcmp(back, data, n) != 0))
        abort();
    return 0;
}
