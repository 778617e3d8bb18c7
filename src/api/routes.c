/* The endpoints: one table of method, path pattern and access, and a short
 * handler per endpoint that hands the work to the agent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

static void status_get(api_ctx *c)
{
    util_error err = {.code = UTIL_ERR_INTERNAL, .detail = "status: not available"};
    api_reply_doc(c, agent_status(c->api->agent), &err);
}

static void metrics_get(api_ctx *c)
{
    util_buf buf;
    size_t len = 0;
    util_buf_init(&buf, API_METRICS_MAX, false);
    if (agent_metrics(c->api->agent, &buf) != 0) {
        util_buf_free(&buf);
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "metrics: could not be collected");
        return;
    }
    uint8_t *text = util_buf_take(&buf, &len);
    if (!text) {
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
        return;
    }
    api_reply_empty(c, 200);
    c->resp->body = (char *)text;
    c->resp->body_len = len;
    c->resp->content_type = METRICS_TYPE;
}

static void settings_get(api_ctx *c)
{
    util_error err = {.code = UTIL_ERR_INTERNAL, .detail = "scep settings: not available"};
    api_reply_doc(c, agent_scep_settings_get(c->api->agent), &err);
}

static void settings_put(api_ctx *c)
{
    util_error err = {0};
    if (agent_scep_settings_put(c->api->agent, c->body, c->auth.user, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    settings_get(c);
}

static void request_create(api_ctx *c)
{
    util_error err = {0};
    int64_t id = 0;
    char location[64];
    if (agent_request_create(c->api->agent, c->body, c->auth.user, &id, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    snprintf(location, sizeof location, "/api/v1/scep/requests/%lld", (long long)id);
    api_reply_json(c, 202, json_pack("{s:I}", "id", (json_int_t)id));
    if (c->resp->status == 202 && api_header_add(c->resp, "Location", location) != 0)
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
}

static void request_list(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_request_list(c->api->agent, &err), &err);
}

static void request_get(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_request_get(c->api->agent, c->id, &err), &err);
}

static void request_cancel(api_ctx *c)
{
    util_error err = {0};
    if (agent_request_cancel(c->api->agent, c->id, c->auth.user, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    request_get(c);
}

static void auto_get(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_auto_get(c->api->agent, &err), &err);
}

static void auto_put(api_ctx *c)
{
    util_error err = {0};
    if (agent_auto_put(c->api->agent, c->body, c->auth.user, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    auto_get(c);
}

static void restart(api_ctx *c)
{
    util_error err = {0};
    json_t *result = NULL;
    if (agent_restart(c->api->agent, c->auth.user, &result, &err) != 0) {
        json_decref(result);
        api_reply_error(c, &err);
        return;
    }
    api_reply_json(c, 200, result ? result : json_object());
}

static void key_list(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_key_list(c->api->agent, &err), &err);
}

static void key_get(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_key_get(c->api->agent, c->name, &err), &err);
}

static void key_delete(api_ctx *c)
{
    util_error err = {0};
    if (agent_key_delete(c->api->agent, c->name, c->auth.user, &err) != 0)
        api_reply_error(c, &err);
    else
        api_reply_empty(c, 204);
}

/* With a slot (the evhttp adapter) the CRL is fetched first and the answer
 * waits for it; without one the stored CRL answers at once. */
static void key_verify(api_ctx *c)
{
    util_error err = {0};
    api_login_slot *slot = c->req->login;
    if (slot && !slot->crl_waited && slot->crl_done &&
        agent_key_verify_start(c->api->agent, c->name, slot->crl_done, slot->arg, &slot->crl_wait) ==
            AGENT_VERIFY_PENDING) {
        slot->crl_waited = true;
        c->deferred = true;
        return;
    }
    api_reply_doc(c, agent_key_verify(c->api->agent, c->name, &err), &err);
}

static void binding_list(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_binding_list(c->api->agent, &err), &err);
}

static void binding_put(api_ctx *c)
{
    util_error err = {0};
    if (agent_binding_put(c->api->agent, c->name, c->body, c->auth.user, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    binding_list(c);
}

static void ca_certs(api_ctx *c)
{
    util_error err = {0};
    api_reply_doc(c, agent_ca_certs(c->api->agent, &err), &err);
}

static void ca_certs_refresh(api_ctx *c)
{
    util_error err = {0};
    if (agent_ca_certs_refresh(c->api->agent, c->auth.user, &err) != 0)
        api_reply_error(c, &err);
    else
        api_reply_empty(c, 202);
}

/* ?limit=N (1..1000, default 100); other parameters are refused. */
static int audit_limit(const char *query, int *limit, util_error *err)
{
    *limit = API_AUDIT_DEFAULT;
    for (const char *p = query ? query : ""; *p;) {
        size_t n = strcspn(p, "&");
        if (n > 6 && strncmp(p, "limit=", 6) == 0) {
            size_t digits = strspn(p + 6, "0123456789");
            long v = digits == n - 6 && digits <= 4 ? strtol(p + 6, NULL, 10) : 0;
            if (v < 1 || v > API_AUDIT_MAX)
                return util_error_set(err, UTIL_ERR_INVALID_FIELD, "limit: give 1 to %d", API_AUDIT_MAX);
            *limit = (int)v;
        } else if (n > 0) {
            size_t name = strcspn(p, "=&");
            return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%.*s: unknown query parameter",
                                  (int)(name > 64 ? 64 : name), p);
        }
        p += n + (p[n] == '&');
    }
    return 0;
}

static void audit(api_ctx *c)
{
    util_error err = {0};
    int limit = 0;
    if (audit_limit(c->req->query, &limit, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    api_reply_doc(c, agent_audit(c->api->agent, limit, &err), &err);
}

enum { PUBLIC = API_ROUTE_PUBLIC, ADMIN = API_ROUTE_ADMIN, BODY = API_ROUTE_BODY };

static const api_route routes[] = {
    {"GET", "/api/v1/status", 0, status_get},
    {"GET", "/metrics", 0, metrics_get},
    {"POST", "/api/v1/session", PUBLIC | BODY, api_session_create},
    {"GET", "/api/v1/session", 0, api_session_get},
    {"DELETE", "/api/v1/session", 0, api_session_delete},
    {"PUT", "/api/v1/users/:user", ADMIN | BODY, api_user_put},
    {"GET", "/api/v1/scep/settings", 0, settings_get},
    {"PUT", "/api/v1/scep/settings", ADMIN | BODY, settings_put},
    {"POST", "/api/v1/scep/requests", ADMIN | BODY, request_create},
    {"GET", "/api/v1/scep/requests", 0, request_list},
    {"GET", "/api/v1/scep/requests/:id", 0, request_get},
    {"DELETE", "/api/v1/scep/requests/:id", ADMIN, request_cancel},
    {"GET", "/api/v1/scep/auto-request", 0, auto_get},
    {"PUT", "/api/v1/scep/auto-request", ADMIN | BODY, auto_put},
    {"POST", "/api/v1/restart", ADMIN, restart},
    {"GET", "/api/v1/keys", 0, key_list},
    {"GET", "/api/v1/keys/:name", 0, key_get},
    {"DELETE", "/api/v1/keys/:name", ADMIN, key_delete},
    /* verification reads and changes nothing: viewers may run it */
    {"POST", "/api/v1/keys/:name/verify", 0, key_verify},
    {"GET", "/api/v1/bindings", 0, binding_list},
    {"PUT", "/api/v1/bindings/:name", ADMIN | BODY, binding_put},
    {"GET", "/api/v1/ca-certificates", 0, ca_certs},
    {"POST", "/api/v1/ca-certificates/refresh", ADMIN, ca_certs_refresh},
    {"GET", "/api/v1/audit", 0, audit},
};

const api_route *api_routes(size_t *count)
{
    *count = sizeof routes / sizeof routes[0];
    return routes;
}
