/* Building responses: JSON documents, catalogue errors with their status
 * codes, and the headers every response carries. */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/escape.h"
#include "api/internal.h"

#define CSP                                                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "                        \
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

void api_response_clear(api_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    for (size_t i = 0; i < resp->header_count; i++) {
        if (strcmp(resp->headers[i].name, "Set-Cookie") == 0) /* holds the session token */
            OPENSSL_cleanse(resp->headers[i].value, strlen(resp->headers[i].value));
        free(resp->headers[i].value);
    }
    memset(resp, 0, sizeof *resp);
}

int api_header_add(api_response *r, const char *name, const char *value)
{
    if (r->header_count >= API_MAX_HEADERS)
        return -1;
    char *copy = strdup(value);
    if (!copy)
        return -1;
    r->headers[r->header_count++] = (api_header){.name = name, .value = copy};
    return 0;
}

int api_status_for(util_err code)
{
    switch (code) {
    case UTIL_ERR_INVALID_FIELD:
    case UTIL_ERR_USAGE: return 400;
    case UTIL_ERR_UNAUTHORIZED: return 401;
    case UTIL_ERR_FORBIDDEN:
    case UTIL_ERR_CSRF: return 403;
    case UTIL_ERR_NOT_FOUND: return 404;
    case UTIL_ERR_AUTO_REQUEST_ENABLED:
    case UTIL_ERR_REQUEST_BUSY:
    case UTIL_ERR_REQUEST_FINISHED:
    case UTIL_ERR_KEY_IN_USE:
    case UTIL_ERR_KEY_NAME_TAKEN:
    case UTIL_ERR_KEY_STORE_FULL: return 409;
    case UTIL_ERR_BODY_TOO_LARGE: return 413;
    case UTIL_ERR_THROTTLED: return 429;
    case UTIL_ERR_HOST_UNKNOWN: return 421;
    case UTIL_ERR_LOGIN_BUSY: return 503;
    default: return 500;
    }
}

/* The body a response gets when even the error document cannot be built. */
static void set_bare_internal(api_response *r)
{
    static const char body[] = "{\"error\":{\"code\":\"internal\",\"message\":\"An internal error "
                               "occurred.\",\"remedy\":\"Retry.\",\"detail\":\"out of memory\"}}";
    api_response_clear(r);
    r->status = 500;
    r->body = strdup(body);
    r->body_len = r->body ? strlen(body) : 0;
    r->content_type = r->body ? API_JSON_TYPE : NULL;
}

void api_reply_json(api_ctx *c, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(doc);
    free(c->resp->body);
    c->resp->body = NULL;
    if (!text) {
        set_bare_internal(c->resp);
        return;
    }
    c->resp->status = status;
    c->resp->body = text;
    c->resp->body_len = strlen(text);
    c->resp->content_type = API_JSON_TYPE;
}

void api_reply_empty(api_ctx *c, int status)
{
    free(c->resp->body);
    c->resp->body = NULL;
    c->resp->body_len = 0;
    c->resp->content_type = NULL;
    c->resp->status = status;
}

/* Details can quote input and what a SCEP server sent: control characters
 * and bytes that are not UTF-8 are escaped (util_escape), so that no client
 * that prints the detail hands them to a terminal. */
static json_t *safe_string(const char *s)
{
    char *copy = util_escape_dup(s);
    json_t *j = copy ? json_string(copy) : NULL;
    free(copy);
    return j;
}

static bool from_ui(const api_ctx *c)
{
    const char *v = api_request_header(c->req, "X-Requested-With");
    return v && strcasecmp(v, "scepd-ui") == 0;
}

void api_reply_error(api_ctx *c, const util_error *err)
{
    bool set = err && err->code != UTIL_ERR_NONE;
    util_err code = set ? err->code : UTIL_ERR_INTERNAL;
    const char *detail = set ? err->detail : "the operation failed without a reason";
    int status = api_status_for(code);
    json_t *doc =
        json_pack("{s:{s:s,s:s,s:s,s:o*}}", "error", "code", util_err_code(code), "message",
                  util_err_message(code), "remedy", util_err_remedy(code), "detail", safe_string(detail));
    api_response_clear(c->resp);
    api_reply_json(c, status, doc);
    if (c->resp->status != status)
        return; /* became the bare 500 */
    int rc = 0;
    /* Browsers show a login dialog on WWW-Authenticate: not for the UI. */
    if (status == 401 && !from_ui(c))
        rc = api_header_add(c->resp, "WWW-Authenticate", "Basic realm=\"scepd\"");
    if (status == 429 || status == 503) {
        /* the agent says how long the wait is: "... retry in N s" */
        const char *in = strstr(detail, "retry in ");
        long long wait = 0;
        char seconds[24];
        if (in && sscanf(in, "retry in %lld s", &wait) == 1 && wait > 0 && wait < 86400)
            snprintf(seconds, sizeof seconds, "%lld", wait);
        else
            snprintf(seconds, sizeof seconds, "%s", API_RETRY_AFTER_S);
        rc = api_header_add(c->resp, "Retry-After", seconds);
    }
    if (rc != 0)
        set_bare_internal(c->resp);
}

void api_reply_errorf(api_ctx *c, util_err code, const char *fmt, ...)
{
    util_error err = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.detail, sizeof err.detail, fmt, ap);
    va_end(ap);
    api_reply_error(c, &err);
}

void api_reply_doc(api_ctx *c, json_t *doc, const util_error *err)
{
    if (doc)
        api_reply_json(c, 200, doc);
    else
        api_reply_error(c, err);
}

void api_finish_headers(api_response *r, bool tls, const char *cache_control)
{
    int rc = 0;
    rc |= api_header_add(r, "Cache-Control", cache_control);
    rc |= api_header_add(r, "Content-Security-Policy", CSP);
    rc |= api_header_add(r, "X-Frame-Options", "DENY");
    rc |= api_header_add(r, "X-Content-Type-Options", "nosniff");
    rc |= api_header_add(r, "Referrer-Policy", "no-referrer");
    if (tls)
        rc |= api_header_add(r, "Strict-Transport-Security", "max-age=31536000");
    if (rc == 0)
        return;
    /* Out of memory: a bodiless 500, so nothing is shown without the headers. */
    api_response_clear(r);
    r->status = 500;
}
