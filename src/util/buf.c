#include "util/buf.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

void util_buf_init(util_buf *b, size_t max, bool secret)
{
    memset(b, 0, sizeof *b);
    b->max = max;
    b->secret = secret;
}

int util_buf_append(util_buf *b, const void *data, size_t len)
{
    if (len > b->max || b->len > b->max - len)
        return -1;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        uint8_t *n = malloc(cap);
        if (!n)
            return -1;
        if (b->data) {
            memcpy(n, b->data, b->len);
            if (b->secret)
                OPENSSL_cleanse(b->data, b->cap);
            free(b->data);
        }
        b->data = n;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int util_buf_append_str(util_buf *b, const char *s)
{
    return util_buf_append(b, s, strlen(s));
}

uint8_t *util_buf_take(util_buf *b, size_t *len)
{
    uint8_t *d = b->data;
    if (!d) {
        d = calloc(1, 1);
    }
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void util_buf_free(util_buf *b)
{
    if (b->data && b->secret)
        OPENSSL_cleanse(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
