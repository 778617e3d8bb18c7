/* Error catalogue and the diagnostic that fallible functions fill in. */
#ifndef SCEPD_UTIL_ERROR_H
#define SCEPD_UTIL_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define MUST_CHECK __attribute__((warn_unused_result))

typedef enum util_err {
    UTIL_ERR_NONE = 0,
#define ERR(id, code, exit_class, message, remedy) UTIL_ERR_##id,
#include "errors.def"
#undef ERR
    UTIL_ERR_COUNT
} util_err;

/* What a failed call reports: a catalogue code plus a detail that names the
 * object (file, field, HTTP status, OpenSSL reason) that failed. */
typedef struct util_error {
    util_err code;
    char detail[512];
} util_error;

const char *util_err_code(util_err e);
const char *util_err_message(util_err e);
const char *util_err_remedy(util_err e);
int util_err_exit_class(util_err e);
/* Lookup by code string; UTIL_ERR_NONE when unknown. */
util_err util_err_from_code(const char *code);

/* Sets code and detail; never fails. Returns -1 so that callers can write
 * `return util_error_set(err, ...);`. err may be NULL. */
int util_error_set(util_error *err, util_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like util_error_set, and appends the OpenSSL error queue (then clears it). */
int util_error_ossl(util_error *err, util_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void util_error_clear(util_error *err);

/* Writes the catalogue as Markdown (docs/errors.md) to the stream. */
void util_errors_markdown(FILE *out);

#endif
