#include "util/error.h"
#include "util/ossl.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

struct catalogue_entry {
    const char *code;
    int exit_class;
    const char *message;
    const char *remedy;
};

static const struct catalogue_entry catalogue[UTIL_ERR_COUNT] = {
    [UTIL_ERR_NONE] = {"ok", 0, "Done.", ""},
#define ERR(id, code, exit_class, message, remedy) [UTIL_ERR_##id] = {code, exit_class, message, remedy},
#include "errors.def"
#undef ERR
};

static const struct catalogue_entry *entry(util_err e)
{
    if ((int)e < 0 || e >= UTIL_ERR_COUNT)
        return &catalogue[UTIL_ERR_INTERNAL];
    return &catalogue[e];
}

const char *util_err_code(util_err e)
{
    return entry(e)->code;
}
const char *util_err_message(util_err e)
{
    return entry(e)->message;
}
const char *util_err_remedy(util_err e)
{
    return entry(e)->remedy;
}
int util_err_exit_class(util_err e)
{
    return entry(e)->exit_class;
}

util_err util_err_from_code(const char *code)
{
    for (int i = 1; i < UTIL_ERR_COUNT; i++)
        if (code && strcmp(catalogue[i].code, code) == 0)
            return (util_err)i;
    return UTIL_ERR_NONE;
}

static void set_detail(util_error *err, util_err code, const char *fmt, va_list ap)
{
    err->code = code;
    err->detail[0] = '\0';
    if (fmt)
        vsnprintf(err->detail, sizeof err->detail, fmt, ap);
}

int util_error_set(util_error *err, util_err code, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    set_detail(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

int util_error_ossl(util_error *err, util_err code, const char *fmt, ...)
{
    if (!err) {
        ERR_clear_error();
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    set_detail(err, code, fmt, ap);
    va_end(ap);
    unsigned long e;
    const char *sep = err->detail[0] ? ": " : "";
    /* The most specific reason is the earliest one on the queue. */
    if ((e = ERR_peek_error()) != 0) {
        char reason[256];
        ERR_error_string_n(e, reason, sizeof reason);
        const char *r = ERR_reason_error_string(e);
        size_t used = strlen(err->detail);
        snprintf(err->detail + used, sizeof err->detail - used, "%s%s", sep, r ? r : reason);
    }
    ERR_clear_error();
    return -1;
}

void util_error_clear(util_error *err)
{
    if (err) {
        err->code = UTIL_ERR_NONE;
        err->detail[0] = '\0';
    }
}

void util_errors_markdown(FILE *out)
{
    fputs("# Error catalogue\n\n"
          "Generated from `src/util/errors.def` by `scepctl errors --markdown`; a unit\n"
          "test fails when this file and the code disagree. The CLI, the REST API\n"
          "(`{\"error\":{\"code\",\"message\",\"remedy\"}}`) and the Remote UI show these words.\n"
          "The exit class is the exit code of `scepctl`: 1 rejected by the server,\n"
          "2 usage or local input, 3 still pending, 4 communication, 5 bad response data.\n\n"
          "| code | exit | message | remedy |\n|---|---|---|---|\n",
          out);
    for (int i = 1; i < UTIL_ERR_COUNT; i++)
        fprintf(out, "| `%s` | %d | %s | %s |\n", catalogue[i].code, catalogue[i].exit_class,
                catalogue[i].message, catalogue[i].remedy);
}

bool (*util_pkey_remote_tpm)(const EVP_PKEY *key) = NULL;
