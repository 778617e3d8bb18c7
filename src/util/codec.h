/* Base64 (RFC 4648, standard alphabet, padded) and hex: the one place that
 * knows the padding arithmetic and how strict a decode is. */
#ifndef SCEPD_UTIL_CODEC_H
#define SCEPD_UTIL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* The largest input either direction accepts (64 MiB). */
#define UTIL_BASE64_MAX ((size_t)64 << 20)

/* Base64 of data, NUL-terminated, malloc'd; NULL when out of memory or
 * len exceeds UTIL_BASE64_MAX. */
char *util_base64_encode(const uint8_t *data, size_t len);

/* Decodes exactly len characters of padded base64: every character in the
 * alphabet, len a multiple of 4, '=' only as the last one or two characters.
 * No white space is skipped. *out is malloc'd and NUL-terminated after
 * *out_len bytes (caller frees; wipe it first if it held a secret). An empty
 * input decodes to zero bytes. Returns 0, or -1 (bad input or out of memory)
 * without touching *out. */
int util_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len) MUST_CHECK;

/* Lowercase or uppercase hex of data into out (2*len+1 bytes). */
void util_hex(const uint8_t *data, size_t len, char *out, int upper);
/* The value of one hex digit, or -1. */
int util_hex_digit(char c);
/* Parses hex, ignoring ':' and ' ' separators; returns the byte count or -1. */
int util_unhex(const char *hex, uint8_t *out, size_t max);

#endif
