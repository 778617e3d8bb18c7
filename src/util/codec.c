/* Base64 over OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock, and hex. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "util/codec.h"

static int base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

char *util_base64_encode(const uint8_t *data, size_t len)
{
    if (len > UTIL_BASE64_MAX)
        return NULL;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    /* EVP_EncodeBlock writes the padding and the terminating NUL */
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

int util_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    if (len > UTIL_BASE64_MAX || len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len >= 4 && text[len - 1] == '=')
        pad = text[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (!base64_char(text[i]))
            return -1;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) : 0;
    /* EVP_DecodeBlock counts the zero bytes that the padding stands for */
    if (n < 0 || (size_t)n != len / 4 * 3) {
        OPENSSL_cleanse(buf, len / 4 * 3 + 1);
        free(buf);
        return -1;
    }
    size_t got = (size_t)n - pad;
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return 0;
}

void util_hex(const uint8_t *data, size_t len, char *out, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

int util_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int util_unhex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = 0;
    while (*hex) {
        if (*hex == ':' || *hex == ' ') {
            hex++;
            continue;
        }
        int hi = util_hex_digit(hex[0]);
        int lo = hex[1] ? util_hex_digit(hex[1]) : -1;
        if (hi < 0 || lo < 0 || n >= max)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
        hex += 2;
    }
    return (int)n;
}
