/* Growable byte buffer with a hard maximum size (like curl's dynbuf). */
#ifndef SCEPD_UTIL_BUF_H
#define SCEPD_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct util_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;  /* appends beyond this fail */
    bool secret; /* wiped before it is freed or grown */
} util_buf;

void util_buf_init(util_buf *b, size_t max, bool secret);
/* Returns 0, or -1 when the result would exceed max or memory ran out. */
int util_buf_append(util_buf *b, const void *data, size_t len) MUST_CHECK;
int util_buf_append_str(util_buf *b, const char *s) MUST_CHECK;
/* Takes the content (NUL-terminated one byte past len) and resets b. */
uint8_t *util_buf_take(util_buf *b, size_t *len);
void util_buf_free(util_buf *b);

#endif
