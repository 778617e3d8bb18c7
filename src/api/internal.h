/* Shared between the files of src/api; not part of its interface. */
#ifndef SCEPD_API_INTERNAL_H
#define SCEPD_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"

#define API_MAX_LISTENERS 4
#define API_NAME_MAX 32   /* key and function names in paths */
#define API_USER_MAX 63   /* user names (store: 64 bytes with the NUL) */
#define API_TOKEN_MAX 256 /* session cookie value */
#define API_CSRF_MAX 64
#define API_PASSWORD_MAX 1024
#define API_METRICS_MAX (1024 * 1024)
#define API_AUDIT_DEFAULT 100
#define API_AUDIT_MAX 1000
#define API_RETRY_AFTER_S "60" /* THROTTLED without a "retry in N s" detail */
#define API_COOKIE "scepd_session"
/* over HTTPS: the browser keeps it to this exact origin (no Domain, Path=/, Secure) */
#define API_COOKIE_TLS "__Host-scepd_session"
#define API_JSON_TYPE "application/json; charset=utf-8"

typedef struct api_listener {
    api *api;
    bool tls;
    struct edge *edge;
} api_listener;

struct api {
    agent *agent;
    api_config cfg;
    api_static_lookup static_lookup;
    api_listener listeners[API_MAX_LISTENERS];
    size_t listener_count;
};

/* Who made the request. token and csrf are secrets: wiped after the request. */
typedef struct api_auth {
    bool ok;
    bool by_cookie;
    char user[64];
    agent_role role;
    char token[API_TOKEN_MAX + 1];
    char csrf[API_CSRF_MAX + 1];
} api_auth;

typedef struct api_ctx {
    api *api;
    const api_request *req;
    api_response *resp;
    api_auth auth;
    char name[API_USER_MAX + 1]; /* the {name}/{function}/{user} path segment */
    int64_t id;                  /* the {id} path segment */
    json_t *body;                /* the parsed body, NULL when there is none */
    bool deferred;               /* a login or a GetCRL was started: the answer comes later */
} api_ctx;

enum {
    API_ROUTE_PUBLIC = 1 << 0, /* no authentication (POST /api/v1/session) */
    API_ROUTE_ADMIN = 1 << 1,  /* a change: viewers get 403 */
    API_ROUTE_BODY = 1 << 2,   /* a JSON object body is required */
};

typedef struct api_route {
    const char *method;
    const char *pattern; /* ":name" key or function, ":id" number, ":user" user name */
    unsigned flags;
    void (*handler)(api_ctx *c);
} api_route;

/* routes.c */
const api_route *api_routes(size_t *count);

/* session.c: handlers of /api/v1/session and /api/v1/users */
void api_session_create(api_ctx *c);
void api_session_get(api_ctx *c);
void api_session_delete(api_ctx *c);
void api_user_put(api_ctx *c);

/* auth.c */
/* Basic or cookie; fills c->auth. UNAUTHORIZED, THROTTLED or CSRF. */
int api_authenticate(api_ctx *c, util_error *err) MUST_CHECK;
/* Checks a password through the agent; fills c->auth. */
int api_login(api_ctx *c, const char *user, const char *password, util_error *err) MUST_CHECK;
/* For state-changing methods: a foreign Origin is refused (CSRF) ... */
int api_check_origin(const api_ctx *c, util_error *err) MUST_CHECK;
/* The Host header names this device (api_config.host_names). */
int api_check_host(const api_ctx *c, util_error *err) MUST_CHECK;
/* ... and cookie authentication needs X-CSRF-Token equal to the session's. */
int api_check_csrf(const api_ctx *c, util_error *err) MUST_CHECK;
bool api_token_valid(const char *token);
int api_session_cookie(api_ctx *c, const char *token) MUST_CHECK;
int api_session_cookie_clear(api_ctx *c) MUST_CHECK;
const char *api_request_header(const api_request *req, const char *name);

/* body.c */
/* Parses c->req's body into c->body. required: a JSON object must be sent;
 * otherwise the body must be empty or an object without members. */
int api_body_parse(api_ctx *c, bool required, util_error *err) MUST_CHECK;
/* Fails naming the first member of obj that is not in allowed (NULL-ended). */
int api_body_fields(const json_t *obj, const char *const *allowed, util_error *err) MUST_CHECK;
typedef enum api_charset { API_CHARSET_NAME, API_CHARSET_USER, API_CHARSET_TEXT } api_charset;
/* A required string member with min..max bytes of the charset. */
int api_body_string(const json_t *obj, const char *field, size_t min, size_t max, api_charset charset,
                    const char **out, util_error *err) MUST_CHECK;
/* Wipes every string in doc (passwords) before it is freed. */
void api_body_wipe(json_t *doc);
bool api_string_valid(const char *s, size_t len, size_t max, api_charset charset);

/* response.c */
int api_header_add(api_response *r, const char *name, const char *value) MUST_CHECK;
int api_status_for(util_err code);
/* Sets the response to doc (taken; NULL: 500 internal). */
void api_reply_json(api_ctx *c, int status, json_t *doc);
/* 200 with doc, or the error when doc is NULL. */
void api_reply_doc(api_ctx *c, json_t *doc, const util_error *err);
void api_reply_error(api_ctx *c, const util_error *err);
void api_reply_errorf(api_ctx *c, util_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void api_reply_empty(api_ctx *c, int status);
/* Cache-Control and the security headers that every response carries. */
void api_finish_headers(api_response *r, bool tls, const char *cache_control);

#endif
