/* Whole-file reads with a size cap, and atomic writes (temp, fsync, rename). */
#ifndef SCEPD_UTIL_FILE_H
#define SCEPD_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Reads at most max bytes; the result is NUL-terminated. "-" reads stdin. */
int util_file_read(const char *path, size_t max, uint8_t **out, size_t *len, util_error *err) MUST_CHECK;
/* Writes through a temporary file in the same directory, fsyncs it and
 * renames it over path, so a crash leaves either the old or the new file. */
int util_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           util_error *err) MUST_CHECK;

/* Lowercase or uppercase hex of data into out (2*len+1 bytes). */
void util_hex(const uint8_t *data, size_t len, char *out, int upper);
/* The value of one hex digit, or -1. */
int util_hex_digit(char c);
/* Parses hex, ignoring ':' separators; returns the byte count or -1. */
int util_unhex(const char *hex, uint8_t *out, size_t max);

#endif
