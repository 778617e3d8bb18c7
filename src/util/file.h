/* Whole-file reads with a size cap, and atomic writes (temp, fsync, rename). */
#ifndef SCEPD_UTIL_FILE_H
#define SCEPD_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/codec.h" /* util_hex, util_unhex */
#include "util/error.h"

/* Reads at most max bytes; the result is NUL-terminated. "-" reads stdin. */
int util_file_read(const char *path, size_t max, uint8_t **out, size_t *len, util_error *err) MUST_CHECK;
/* Writes through a temporary file in the same directory, fsyncs it and
 * renames it over path, so a crash leaves either the old or the new file. */
int util_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           util_error *err) MUST_CHECK;

/* One file of a set written together. */
typedef struct util_file_out {
    const char *path;
    const void *data;
    size_t len;
    mode_t mode;
} util_file_out;
#define UTIL_FILES_MAX 8

/* Writes a set of files (a key and its certificate) all or none: each goes
 * to a temporary file next to it, flushed to disk; only once every one is
 * written are they renamed into place, then each directory is flushed once.
 * A failure before the renames leaves every old file as it was. */
int util_files_write_atomic(const util_file_out *files, size_t n, util_error *err) MUST_CHECK;

#endif
