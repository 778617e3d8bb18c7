/*
 * src/api against the fake agent (fake_agent.c): every route without
 * credentials, as a viewer and as an admin; sessions, CSRF and Origin;
 * status codes of the catalogue; body checks; static files; headers; the
 * log line; and one round trip through the real evhttp adapter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "edge/edge.h"
#include "fake_agent.h"
#include "util/codec.h"
#include "util/log.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define H(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef struct tctx {
    agent *agent;
    api *api;
    api_response resp;
    json_t *json;                             /* the last response's body when it is JSON */
    char admin[128], viewer[128], wrong[128]; /* Authorization header values */
} tctx;

/* ---- static files ---------------------------------------------------------- */

static const unsigned char index_html[] = "<!doctype html><title>scepd</title>";
static const unsigned char app_js[] = "console.log('ui');";
static const api_static_file files[] = {
    {"/ui/index.html", "text/html; charset=utf-8", index_html, sizeof index_html - 1},
    {"/ui/app.js", "text/javascript; charset=utf-8", app_js, sizeof app_js - 1},
};

static const api_static_file *static_lookup(const char *path)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(files[i].path, path) == 0)
            return &files[i];
    return NULL;
}

/* ---- helpers ----------------------------------------------------------------- */

static void basic(char *out, size_t outlen, const char *user, const char *password)
{
    char plain[128];
    snprintf(plain, sizeof plain, "%s:%s", user, password);
    assert_true(outlen > 6 + 4 * (strlen(plain) + 2) / 3 + 1);
    char *b64 = util_base64_encode((const uint8_t *)plain, strlen(plain));
    assert_non_null(b64);
    snprintf(out, outlen, "Basic %s", b64);
    free(b64);
}

static int setup_with(void **state, const api_config *cfg)
{
    tctx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->agent = fake_agent_create();
    t->api = api_new(t->agent, cfg);
    assert_non_null(t->agent);
    assert_non_null(t->api);
    api_set_static(t->api, static_lookup);
    basic(t->admin, sizeof t->admin, "admin", "admin-password");
    basic(t->viewer, sizeof t->viewer, "viewer", "viewer-password");
    basic(t->wrong, sizeof t->wrong, "admin", "not-the-password");
    *state = t;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL);
}

static int setup_small(void **state)
{
    api_config cfg = {.max_body = 1024};
    return setup_with(state, &cfg);
}

static int teardown(void **state)
{
    tctx *t = *state;
    api_response_clear(&t->resp);
    json_decref(t->json);
    api_free(t->api);
    agent_free(t->agent);
    free(t);
    return 0;
}

static const char *lookup(void *arg, const char *name)
{
    for (const char *const *kv = arg; kv && kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

/* One request through api_handle; target may carry "?query". */
static int run_full(tctx *t, bool tls, const char *method, const char *target, const char *body,
                    size_t body_len, const char *const *headers)
{
    char path[512];
    const char *q = strchr(target, '?');
    snprintf(path, sizeof path, "%.*s", (int)(q ? (size_t)(q - target) : strlen(target)), target);
    api_response_clear(&t->resp);
    json_decref(t->json);
    t->json = NULL;
    fake_agent_reset(t->agent);
    api_request r = {.method = method,
                     .path = path,
                     .query = q ? q + 1 : NULL,
                     .header = lookup,
                     .header_arg = (void *)headers,
                     .body = (const uint8_t *)body,
                     .body_len = body_len,
                     .tls = tls,
                     .remote = "192.0.2.1:1234"};
    int status = api_handle(t->api, &r, &t->resp);
    assert_int_equal(status, t->resp.status);
    if (t->resp.content_type && strcmp(t->resp.content_type, JSON_TYPE) == 0) {
        t->json = json_loadb(t->resp.body, t->resp.body_len, 0, NULL);
        assert_non_null(t->json);
    }
    return status;
}

static int run(tctx *t, const char *method, const char *target, const char *body, const char *const *headers)
{
    return run_full(t, false, method, target, body, body ? strlen(body) : 0, headers);
}

/* With Authorization (NULL: none) and, for a body, the JSON content type. */
static int req(tctx *t, const char *method, const char *target, const char *body, const char *authorization)
{
    const char *h[6] = {NULL};
    size_t n = 0;
    if (authorization) {
        h[n++] = "Authorization";
        h[n++] = authorization;
    }
    if (body) {
        h[n++] = "Content-Type";
        h[n++] = "application/json";
    }
    return run(t, method, target, body, h);
}

static const char *resp_header(const tctx *t, const char *name)
{
    for (size_t i = 0; i < t->resp.header_count; i++)
        if (strcasecmp(t->resp.headers[i].name, name) == 0)
            return t->resp.headers[i].value;
    return NULL;
}

static void assert_header(const tctx *t, const char *name, const char *value)
{
    const char *v = resp_header(t, name);
    if (!v)
        fail_msg("header %s missing", name);
    assert_string_equal(v, value);
}

static void assert_security(const tctx *t, bool tls)
{
    assert_header(t, "Content-Security-Policy",
                  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    assert_header(t, "X-Frame-Options", "DENY");
    assert_header(t, "X-Content-Type-Options", "nosniff");
    assert_header(t, "Referrer-Policy", "no-referrer");
    if (tls)
        assert_header(t, "Strict-Transport-Security", "max-age=31536000");
    else
        assert_null(resp_header(t, "Strict-Transport-Security"));
}

static const char *error_field(const tctx *t, const char *field)
{
    assert_non_null(t->json);
    json_t *e = json_object_get(t->json, "error");
    assert_true(json_is_object(e));
    return json_string_value(json_object_get(e, field));
}

/* The error document of the catalogue code, with no-store and the headers. */
static void assert_error(const tctx *t, int status, const char *code)
{
    assert_int_equal(t->resp.status, status);
    assert_string_equal(t->resp.content_type, JSON_TYPE);
    assert_non_null(error_field(t, "code"));
    assert_string_equal(error_field(t, "code"), code);
    util_err e = util_err_from_code(code);
    assert_string_equal(error_field(t, "message"), util_err_message(e));
    assert_string_equal(error_field(t, "remedy"), util_err_remedy(e));
    assert_non_null(error_field(t, "detail"));
    assert_header(t, "Cache-Control", "no-store");
    assert_security(t, false);
}

static void assert_json(const tctx *t, const char *expected)
{
    json_t *want = json_loads(expected, 0, NULL);
    assert_non_null(want);
    assert_non_null(t->json);
    if (!json_equal(want, t->json)) {
        char *got = json_dumps(t->json, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("body %s, expected %s", got, expected);
    }
    json_decref(want);
}

/* ---- every route ----------------------------------------------------------- */

typedef struct route_case {
    const char *method, *target, *body;
    bool change;       /* admin only: viewers get 403 */
    int status;        /* for the admin */
    const char *calls; /* what the API asked the agent */
    const char *json;  /* the admin's body; NULL: none or not JSON */
} route_case;

static const route_case routes[] = {
    {"GET", "/api/v1/status", NULL, false, 200, "agent_status", "{\"state\":\"idle\",\"version\":\"test\"}"},
    {"GET", "/metrics", NULL, false, 200, "agent_metrics", NULL},
    {"GET", "/api/v1/session", NULL, false, 200, "",
     "{\"user\":\"admin\",\"role\":\"admin\",\"csrf_token\":null}"},
    {"DELETE", "/api/v1/session", NULL, false, 204, "", NULL},
    {"PUT", "/api/v1/users/operator", "{\"password\":\"operator-pass\",\"role\":\"viewer\"}", true, 200,
     "agent_user_put", "{\"name\":\"operator\",\"role\":\"viewer\"}"},
    {"GET", "/api/v1/scep/settings", NULL, false, 200, "agent_scep_settings_get",
     "{\"url\":\"http://ca.example/scep\",\"port\":80,\"timeout_s\":30}"},
    {"PUT", "/api/v1/scep/settings", "{\"url\":\"http://ca2.example/scep\",\"port\":8080}", true, 200,
     "agent_scep_settings_put,agent_scep_settings_get",
     "{\"url\":\"http://ca.example/scep\",\"port\":80,\"timeout_s\":30}"},
    {"POST", "/api/v1/scep/requests", "{\"key_name\":\"k2\",\"common_name\":\"printer\"}", true, 202,
     "agent_request_create", "{\"id\":7}"},
    {"GET", "/api/v1/scep/requests", NULL, false, 200, "agent_request_list",
     "[{\"id\":7,\"state\":\"pending\",\"key_name\":\"k2\"}]"},
    {"GET", "/api/v1/scep/requests/7", NULL, false, 200, "agent_request_get",
     "{\"id\":7,\"state\":\"pending\",\"key_name\":\"k2\"}"},
    {"DELETE", "/api/v1/scep/requests/7", NULL, true, 200, "agent_request_cancel,agent_request_get",
     "{\"id\":7,\"state\":\"pending\",\"key_name\":\"k2\"}"},
    {"GET", "/api/v1/scep/auto-request", NULL, false, 200, "agent_auto_get",
     "{\"enabled\":false,\"interval_days\":30}"},
    {"PUT", "/api/v1/scep/auto-request", "{\"enabled\":true}", true, 200, "agent_auto_put,agent_auto_get",
     "{\"enabled\":false,\"interval_days\":30}"},
    {"POST", "/api/v1/restart", NULL, true, 200, "agent_restart",
     "{\"registered\":[\"k2\"],\"deleted\":[\"k1\"]}"},
    {"GET", "/api/v1/keys", NULL, false, 200, "agent_key_list",
     "[{\"name\":\"tls\",\"state\":\"registered\"}]"},
    {"GET", "/api/v1/keys/tls", NULL, false, 200, "agent_key_get",
     "{\"name\":\"tls\",\"state\":\"registered\"}"},
    {"DELETE", "/api/v1/keys/old-key_1", NULL, true, 204, "agent_key_delete", NULL},
    {"POST", "/api/v1/keys/tls/verify", NULL, false, 200, "agent_key_verify",
     "{\"valid\":true,\"checks\":[{\"name\":\"chain\",\"ok\":true,\"detail\":\"ok\"}]}"},
    {"GET", "/api/v1/bindings", NULL, false, 200, "agent_binding_list",
     "[{\"function\":\"tls\",\"key_name\":\"tls\"}]"},
    {"PUT", "/api/v1/bindings/ieee8021x", "{\"key_name\":\"k2\"}", true, 200,
     "agent_binding_put,agent_binding_list", "[{\"function\":\"tls\",\"key_name\":\"tls\"}]"},
    {"GET", "/api/v1/ca-certificates", NULL, false, 200, "agent_ca_certs",
     "[{\"pem\":\"-----BEGIN CERTIFICATE-----\\n\",\"role\":\"ca\",\"fetched_at\":1}]"},
    {"POST", "/api/v1/ca-certificates/refresh", NULL, true, 202, "agent_ca_certs_refresh", NULL},
    {"GET", "/api/v1/audit", NULL, false, 200, "agent_audit",
     "[{\"id\":1,\"at\":1,\"user\":\"admin\",\"action\":\"login\",\"detail\":\"\"}]"},
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

static void test_routes_need_credentials(void **state)
{
    tctx *t = *state;
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const route_case *rc = &routes[i];
        req(t, rc->method, rc->target, rc->body, NULL);
        assert_error(t, 401, "unauthorized");
        assert_header(t, "WWW-Authenticate", "Basic realm=\"scepd\"");
        assert_string_equal(t->agent->calls, "");
    }
}

static void test_routes_viewer_cannot_change(void **state)
{
    tctx *t = *state;
    size_t changes = 0;
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const route_case *rc = &routes[i];
        req(t, rc->method, rc->target, rc->body, t->viewer);
        if (!rc->change) {
            assert_int_equal(t->resp.status, rc->status);
            continue;
        }
        changes++;
        assert_error(t, 403, "forbidden");
        assert_string_equal(error_field(t, "detail"), "user viewer has the viewer role");
        assert_string_equal(t->agent->calls, "");
    }
    assert_int_equal(changes, 9);
}

static void test_routes_admin(void **state)
{
    tctx *t = *state;
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const route_case *rc = &routes[i];
        req(t, rc->method, rc->target, rc->body, t->admin);
        if (t->resp.status != rc->status)
            fail_msg("%s %s: status %d, expected %d", rc->method, rc->target, t->resp.status, rc->status);
        assert_string_equal(t->agent->calls, rc->calls);
        assert_int_equal(t->agent->logins, 1);
        assert_header(t, "Cache-Control", "no-store");
        assert_security(t, false);
        if (rc->json) {
            assert_string_equal(t->resp.content_type, JSON_TYPE);
            assert_json(t, rc->json);
        }
        if (rc->status == 204) {
            assert_null(t->resp.body);
            assert_int_equal(t->resp.body_len, 0);
        }
        if (rc->change)
            assert_string_equal(t->agent->last_user, "admin");
        if (rc->body && rc->change && strcmp(rc->calls, "agent_user_put") != 0) {
            json_t *sent = json_loads(rc->body, 0, NULL);
            assert_true(json_equal(sent, t->agent->last_in));
            json_decref(sent);
        }
    }
}

static void test_route_arguments(void **state)
{
    tctx *t = *state;
    req(t, "POST", "/api/v1/scep/requests", "{\"key_name\":\"k2\"}", t->admin);
    assert_int_equal(t->resp.status, 202);
    assert_header(t, "Location", "/api/v1/scep/requests/7");
    req(t, "GET", "/api/v1/scep/requests/123456789012", NULL, t->admin);
    assert_int_equal(t->agent->last_id, 123456789012LL);
    req(t, "DELETE", "/api/v1/scep/requests/4567", NULL, t->admin);
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->agent->calls, "agent_request_cancel,agent_request_get");
    assert_int_equal(t->agent->last_id, 4567);
    req(t, "DELETE", "/api/v1/keys/old-key_1", NULL, t->admin);
    assert_string_equal(t->agent->last_name, "old-key_1");
    req(t, "PUT", "/api/v1/bindings/ieee8021x", "{\"key_name\":\"k2\"}", t->admin);
    assert_string_equal(t->agent->last_name, "ieee8021x");
    req(t, "PUT", "/api/v1/users/op.erator", "{\"password\":\"operator-pass\",\"role\":\"admin\"}", t->admin);
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->agent->last_name, "op.erator");
    assert_string_equal(t->agent->last_password, "operator-pass");
    assert_int_equal(t->agent->last_role, AGENT_ROLE_ADMIN);
    req(t, "GET", "/api/v1/audit", NULL, t->admin);
    assert_int_equal(t->agent->last_limit, 100);
    req(t, "GET", "/api/v1/audit?limit=5", NULL, t->admin);
    assert_int_equal(t->agent->last_limit, 5);
    req(t, "GET", "/api/v1/audit?limit=0", NULL, t->admin);
    assert_error(t, 400, "invalid_field");
    assert_string_equal(error_field(t, "detail"), "limit: give 1 to 1000");
    req(t, "GET", "/api/v1/audit?limit=12x", NULL, t->admin);
    assert_error(t, 400, "invalid_field");
    req(t, "GET", "/api/v1/audit?order=asc", NULL, t->admin);
    assert_error(t, 400, "invalid_field");
    assert_string_equal(error_field(t, "detail"), "order: unknown query parameter");
}

static void test_metrics(void **state)
{
    tctx *t = *state;
    req(t, "GET", "/metrics", NULL, t->viewer);
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_int_equal(t->resp.body_len, strlen("# TYPE scepd_up gauge\nscepd_up 1\n"));
    assert_memory_equal(t->resp.body, "# TYPE scepd_up gauge\nscepd_up 1\n", t->resp.body_len);
    assert_security(t, false);
    fake_agent_fail(t->agent, "agent_metrics", UTIL_ERR_INTERNAL, "");
    api_request r = {.method = "GET",
                     .path = "/metrics",
                     .header = lookup,
                     .header_arg = (void *)H("Authorization", t->admin)};
    api_response_clear(&t->resp);
    json_decref(t->json);
    t->json = NULL;
    assert_int_equal(api_handle(t->api, &r, &t->resp), 500);
    t->json = json_loadb(t->resp.body, t->resp.body_len, 0, NULL);
    assert_error(t, 500, "internal");
}

static void test_head_is_get(void **state)
{
    tctx *t = *state;
    req(t, "HEAD", "/api/v1/status", NULL, t->admin);
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->agent->calls, "agent_status");
}

/* ---- sessions and CSRF ------------------------------------------------------ */

typedef struct session {
    char cookie[128]; /* "scepd_session=TOKEN" */
    char csrf[80];
} session;

static void login(tctx *t, bool tls, const char *user, const char *password, session *s)
{
    char body[160];
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, password);
    run_full(t, tls, "POST", "/api/v1/session", body, strlen(body),
             H("Content-Type", "application/json; charset=utf-8"));
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->agent->calls, "agent_session_new");
    const char *csrf = json_string_value(json_object_get(t->json, "csrf_token"));
    assert_non_null(csrf);
    assert_string_equal(json_string_value(json_object_get(t->json, "user")), user);
    snprintf(s->csrf, sizeof s->csrf, "%s", csrf);
    const char *set = resp_header(t, "Set-Cookie");
    assert_non_null(set);
    snprintf(s->cookie, sizeof s->cookie, "%.*s", (int)strcspn(set, ";"), set);
    assert_true(strncmp(s->cookie, tls ? "__Host-scepd_session=tok" : "scepd_session=tok", tls ? 24 : 17) ==
                0);
}

static void test_session_cookie_flags(void **state)
{
    tctx *t = *state;
    session s;
    login(t, false, "admin", "admin-password", &s);
    assert_json(t, "{\"user\":\"admin\",\"role\":\"admin\",\"csrf_token\":\"csrf1-fedcba9876543210\"}");
    assert_header(t, "Set-Cookie", "scepd_session=tok1-0123456789abcdef; Path=/; HttpOnly; SameSite=Strict");
    assert_header(t, "Cache-Control", "no-store");
    assert_security(t, false);
    login(t, true, "viewer", "viewer-password", &s);
    assert_json(t, "{\"user\":\"viewer\",\"role\":\"viewer\",\"csrf_token\":\"csrf2-fedcba9876543210\"}");
    /* over HTTPS the __Host- prefix: the browser keeps the cookie to this
     * exact origin, and a plain-HTTP page cannot set or shadow it */
    assert_header(t, "Set-Cookie",
                  "__Host-scepd_session=tok2-0123456789abcdef; Path=/; HttpOnly; SameSite=Strict; Secure");
    assert_security(t, true);
}

static void test_session_get(void **state)
{
    tctx *t = *state;
    session s;
    login(t, false, "admin", "admin-password", &s);
    run(t, "GET", "/api/v1/session", NULL, H("Cookie", s.cookie));
    assert_int_equal(t->resp.status, 200);
    assert_int_equal(t->agent->session_checks, 1);
    assert_json(t, "{\"user\":\"admin\",\"role\":\"admin\",\"csrf_token\":\"csrf1-fedcba9876543210\"}");
    /* among other cookies */
    char many[200];
    snprintf(many, sizeof many, "theme=dark; %s; other=1", s.cookie);
    run(t, "GET", "/api/v1/status", NULL, H("Cookie", many));
    assert_int_equal(t->resp.status, 200);
    run(t, "GET", "/api/v1/session", NULL, H("Cookie", "scepd_session=tok9-unknown"));
    assert_error(t, 401, "unauthorized");
}

static void test_cookie_change_needs_csrf(void **state)
{
    tctx *t = *state;
    session s;
    const char *body = "{\"url\":\"http://ca2.example/scep\"}";
    login(t, false, "admin", "admin-password", &s);
    run(t, "PUT", "/api/v1/scep/settings", body, H("Cookie", s.cookie, "Content-Type", "application/json"));
    assert_error(t, 403, "csrf");
    assert_string_equal(error_field(t, "detail"), "X-CSRF-Token: missing");
    assert_string_equal(t->agent->calls, "");
    run(t, "PUT", "/api/v1/scep/settings", body,
        H("Cookie", s.cookie, "Content-Type", "application/json", "X-CSRF-Token", "csrf1-fedcba9876543211"));
    assert_error(t, 403, "csrf");
    assert_string_equal(error_field(t, "detail"), "X-CSRF-Token: does not match the session");
    run(t, "PUT", "/api/v1/scep/settings", body,
        H("Cookie", s.cookie, "Content-Type", "application/json", "X-CSRF-Token", "csrf1"));
    assert_error(t, 403, "csrf");
    run(t, "PUT", "/api/v1/scep/settings", body,
        H("Cookie", s.cookie, "Content-Type", "application/json", "X-CSRF-Token", s.csrf));
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->agent->calls, "agent_scep_settings_put,agent_scep_settings_get");
    assert_string_equal(t->agent->last_user, "admin");
    /* GET needs no token */
    run(t, "GET", "/api/v1/keys", NULL, H("Cookie", s.cookie));
    assert_int_equal(t->resp.status, 200);
    /* POST without a body is a change too */
    run(t, "POST", "/api/v1/restart", NULL, H("Cookie", s.cookie));
    assert_error(t, 403, "csrf");
    run(t, "POST", "/api/v1/restart", NULL, H("Cookie", s.cookie, "X-CSRF-Token", s.csrf));
    assert_int_equal(t->resp.status, 200);
}

static void test_cookie_viewer_forbidden(void **state)
{
    tctx *t = *state;
    session s;
    login(t, false, "viewer", "viewer-password", &s);
    run(t, "DELETE", "/api/v1/keys/k1", NULL, H("Cookie", s.cookie, "X-CSRF-Token", s.csrf));
    assert_error(t, 403, "forbidden");
    assert_string_equal(t->agent->calls, "");
    run(t, "POST", "/api/v1/keys/k1/verify", NULL, H("Cookie", s.cookie, "X-CSRF-Token", s.csrf));
    assert_int_equal(t->resp.status, 200);
}

static void test_logout(void **state)
{
    tctx *t = *state;
    session s;
    login(t, false, "admin", "admin-password", &s);
    run(t, "DELETE", "/api/v1/session", NULL, H("Cookie", s.cookie));
    assert_error(t, 403, "csrf");
    run(t, "DELETE", "/api/v1/session", NULL, H("Cookie", s.cookie, "X-CSRF-Token", s.csrf));
    assert_int_equal(t->resp.status, 204);
    assert_string_equal(t->agent->calls, "agent_session_end");
    assert_header(t, "Set-Cookie", "scepd_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    /* the ended session no longer works and the stale cookie is removed */
    run(t, "GET", "/api/v1/status", NULL, H("Cookie", s.cookie, "X-Requested-With", "scepd-ui"));
    assert_error(t, 401, "unauthorized");
    assert_null(resp_header(t, "WWW-Authenticate"));
    assert_header(t, "Set-Cookie", "scepd_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

static void test_wrong_password(void **state)
{
    tctx *t = *state;
    req(t, "GET", "/api/v1/status", NULL, t->wrong);
    assert_error(t, 401, "unauthorized");
    /* the agent's wording (which could tell users apart) is not passed on */
    assert_string_equal(error_field(t, "detail"), "the user name or password is wrong");
    assert_string_equal(t->agent->calls, "");
    req(t, "POST", "/api/v1/session", "{\"user\":\"admin\",\"password\":\"nope\"}", NULL);
    assert_error(t, 401, "unauthorized");
    assert_string_equal(error_field(t, "detail"), "the user name or password is wrong");
    assert_null(resp_header(t, "Set-Cookie"));
    req(t, "POST", "/api/v1/session", "{\"user\":\"nobody\",\"password\":\"nope\"}", NULL);
    assert_error(t, 401, "unauthorized");
    assert_string_equal(error_field(t, "detail"), "the user name or password is wrong");
}

static void test_malformed_authorization(void **state)
{
    tctx *t = *state;
    static const char *const bad[] = {"Bearer abc",     "Basic",       "Basic !!!!",
                                      "Basic YWRtaW4=", "Basic YWRta", "Basic YWRtaW4AOmFkbWluLXBhc3N3b3Jk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req(t, "GET", "/api/v1/status", NULL, bad[i]);
        assert_error(t, 401, "unauthorized");
        assert_string_equal(t->agent->calls, "");
    }
    /* lower-case scheme and trailing space are accepted */
    char lower[128];
    snprintf(lower, sizeof lower, "basic %s ", t->admin + 6);
    req(t, "GET", "/api/v1/status", NULL, lower);
    assert_int_equal(t->resp.status, 200);
}

static void test_ui_gets_no_basic_dialog(void **state)
{
    tctx *t = *state;
    run(t, "GET", "/api/v1/status", NULL, H("X-Requested-With", "scepd-ui"));
    assert_error(t, 401, "unauthorized");
    assert_null(resp_header(t, "WWW-Authenticate"));
}

static void test_throttled(void **state)
{
    tctx *t = *state;
    api_request r = {.method = "GET",
                     .path = "/api/v1/status",
                     .header = lookup,
                     .header_arg = (void *)H("Authorization", t->admin)};
    api_response_clear(&t->resp);
    t->agent->throttled = true;
    assert_int_equal(api_handle(t->api, &r, &t->resp), 429);
    json_decref(t->json);
    t->json = json_loadb(t->resp.body, t->resp.body_len, 0, NULL);
    assert_error(t, 429, "throttled");
    assert_header(t, "Retry-After", "60");
    const char *body = "{\"user\":\"admin\",\"password\":\"admin-password\"}";
    api_request s = {.method = "POST",
                     .path = "/api/v1/session",
                     .header = lookup,
                     .header_arg = (void *)H("Content-Type", "application/json"),
                     .body = (const uint8_t *)body,
                     .body_len = strlen(body)};
    api_response_clear(&t->resp);
    t->agent->throttled = true;
    assert_int_equal(api_handle(t->api, &s, &t->resp), 429);
    assert_header(t, "Retry-After", "60");
    assert_null(resp_header(t, "Set-Cookie"));
}

static void test_origin(void **state)
{
    tctx *t = *state;
    const char *body = "{\"enabled\":true}";
    run(t, "PUT", "/api/v1/scep/auto-request", body,
        H("Authorization", t->admin, "Content-Type", "application/json", "Host", "printer.local", "Origin",
          "https://evil.example"));
    assert_error(t, 403, "csrf");
    assert_string_equal(t->agent->calls, "");
    run(t, "POST", "/api/v1/session", "{\"user\":\"admin\",\"password\":\"admin-password\"}",
        H("Content-Type", "application/json", "Host", "printer.local", "Origin", "null"));
    assert_error(t, 403, "csrf");
    run_full(t, true, "PUT", "/api/v1/scep/auto-request", body, strlen(body),
             H("Authorization", t->admin, "Content-Type", "application/json", "Host", "printer.local:8443",
               "Origin", "https://printer.local:8443"));
    assert_int_equal(t->resp.status, 200);
    /* scheme, host and port must all match the request's */
    static const struct {
        bool tls;
        const char *host, *origin;
        int status;
    } cases[] = {
        {false, "printer.local:8080", "https://printer.local:8080", 403}, /* scheme */
        {true, "printer.local:8443", "http://printer.local:8443", 403},   /* scheme */
        {false, "printer.local:8080", "http://printer.local:8081", 403},  /* port */
        {false, "printer.local:8080", "http://printer.local", 403},       /* port 80 implied */
        {false, "printer.local", "http://printer.local:80", 200},         /* the same */
        {true, "printer.local", "https://printer.local:443", 200},        /* the same */
        {false, "printer.local:8080", "http://printer.local.evil:8080", 403},
        {false, "printer.local:8080", "http://PRINTER.local:8080", 200}, /* names ignore case */
        {false, "[::1]:8080", "http://[::1]:8080", 200},
        {false, "[::1]:8080", "http://[::1]:8080/path", 403},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_full(t, cases[i].tls, "PUT", "/api/v1/scep/auto-request", body, strlen(body),
                 H("Authorization", t->admin, "Content-Type", "application/json", "Host", cases[i].host,
                   "Origin", cases[i].origin));
        if (t->resp.status != cases[i].status)
            fail_msg("Host %s, Origin %s: status %d, want %d", cases[i].host, cases[i].origin, t->resp.status,
                     cases[i].status);
    }
    /* reads are not checked: a cross-origin page cannot read the answer */
    run(t, "GET", "/api/v1/status", NULL,
        H("Authorization", t->admin, "Host", "printer.local", "Origin", "https://evil.example"));
    assert_int_equal(t->resp.status, 200);
}

/* With the device's names configured, any other Host is refused before
 * anything else: a DNS-rebound name cannot reach the API or the UI. */
static int setup_names(void **state)
{
    static const char *const names[] = {"127.0.0.1", "::1", "printer", "printer.example.com"};
    api_config cfg = {.host_names = names, .host_name_count = 4};
    return setup_with(state, &cfg);
}

static void test_host_names(void **state)
{
    tctx *t = *state;
    static const char *const good[] = {"127.0.0.1:8080", "[::1]:8443", "printer", "PRINTER.example.com.",
                                       "printer.example.com:443"};
    static const char *const bad[] = {
        "evil.example", "evil.example:8080", "127.0.0.2:8080", "printer.evil", "",
        "[::1",         "printer:",          "printer:99999",  "printer:80x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        run(t, "GET", "/api/v1/status", NULL, H("Authorization", t->admin, "Host", good[i]));
        if (t->resp.status != 200)
            fail_msg("Host %s: status %d, want 200", good[i], t->resp.status);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run(t, "GET", "/api/v1/status", NULL, H("Authorization", t->admin, "Host", bad[i]));
        assert_error(t, 421, "host_unknown");
        run(t, "GET", "/ui/", NULL, H("Host", bad[i]));
        assert_int_equal(t->resp.status, 421);
    }
    assert_string_equal(t->agent->calls, "");
    /* the detail quotes the Host escaped */
    run(t, "GET", "/api/v1/status", NULL, H("Authorization", t->admin, "Host", "evil\x1b[2J.example"));
    assert_error(t, 421, "host_unknown");
    assert_non_null(strstr(error_field(t, "detail"), "evil\\x1B[2J.example"));
}

/* ---- bodies ----------------------------------------------------------------- */

static void test_body_too_large(void **state)
{
    tctx *t = *state;
    size_t n = 64 * 1024 + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    run_full(t, false, "PUT", "/api/v1/scep/settings", big, n,
             H("Authorization", t->admin, "Content-Type", "application/json"));
    assert_error(t, 413, "body_too_large");
    assert_string_equal(error_field(t, "detail"), "body: 65537 bytes, at most 65536 are accepted");
    assert_string_equal(t->agent->calls, "");
    /* exactly the limit is fine */
    run_full(t, false, "PUT", "/api/v1/scep/settings", big, n - 1,
             H("Authorization", t->admin, "Content-Type", "application/json"));
    assert_error(t, 400, "invalid_field"); /* "{   " is not JSON, but it was read */
    free(big);
}

static void test_body_too_large_configured(void **state)
{
    tctx *t = *state;
    char body[1100];
    memset(body, ' ', sizeof body);
    body[0] = '{';
    body[sizeof body - 1] = '}';
    run_full(t, false, "POST", "/api/v1/session", body, 1025, H("Content-Type", "application/json"));
    assert_error(t, 413, "body_too_large");
    run_full(t, false, "POST", "/api/v1/session", body, 1024, H("Content-Type", "application/json"));
    assert_error(t, 400, "invalid_field");
}

static void expect_invalid(tctx *t, const char *method, const char *target, const char *body,
                           const char *content_type, const char *detail_prefix)
{
    run(t, method, target, body,
        H("Authorization", t->admin, "Content-Type", content_type ? content_type : "x/none"));
    assert_error(t, 400, "invalid_field");
    const char *detail = error_field(t, "detail");
    if (strncmp(detail, detail_prefix, strlen(detail_prefix)) != 0)
        fail_msg("%s %s %s: detail \"%s\", expected \"%s...\"", method, target, body, detail, detail_prefix);
    assert_string_equal(t->agent->calls, "");
}

static void test_bad_bodies(void **state)
{
    tctx *t = *state;
    const char *json = "application/json";
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "{", json, "body: ");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "[1,2]", json, "body: must be a JSON object");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "\"text\"", json, "body: ");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "{\"a\":1,\"a\":2}", json, "body: ");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "{\"a\":\"\\u0000\"}", json, "body: ");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "{\"a\":\"\xff\"}", json, "body: ");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "{}", "text/plain",
                   "Content-Type: must be application/json, not text/plain");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "{}", "application/jsonx", "Content-Type: ");
    expect_invalid(t, "PUT", "/api/v1/scep/settings", "", json, "body: a JSON object is required");
    expect_invalid(t, "POST", "/api/v1/restart", "{\"force\":true}", json, "force: unknown field");
    expect_invalid(t, "POST", "/api/v1/restart", "{}", "text/plain", "Content-Type: ");
    run(t, "POST", "/api/v1/restart", "{}", H("Authorization", t->admin, "Content-Type", json));
    assert_int_equal(t->resp.status, 200);
    run(t, "PUT", "/api/v1/scep/auto-request", "{\"enabled\":true}",
        H("Authorization", t->admin, "content-type", "Application/JSON;charset=UTF-8"));
    assert_int_equal(t->resp.status, 200);
}

static void test_session_and_user_bodies(void **state)
{
    tctx *t = *state;
    const char *json = "application/json";
    const char *s = "/api/v1/session";
    expect_invalid(t, "POST", s, "{\"user\":\"admin\"}", json, "password: required");
    expect_invalid(t, "POST", s, "{\"user\":1,\"password\":\"x\"}", json, "user: must be a string");
    expect_invalid(t, "POST", s, "{\"user\":\"ad min\",\"password\":\"x\"}", json, "user: only ");
    expect_invalid(t, "POST", s, "{\"user\":\"\",\"password\":\"x\"}", json, "user: must be 1 to 63");
    expect_invalid(t, "POST", s, "{\"user\":\"admin\",\"password\":\"a\\nb\"}", json, "password: ");
    expect_invalid(t, "POST", s, "{\"user\":\"admin\",\"password\":\"x\",\"remember\":true}", json,
                   "remember: unknown field");
    const char *u = "/api/v1/users/operator";
    expect_invalid(t, "PUT", u, "{\"password\":\"operator-pass\",\"role\":\"root\"}", json,
                   "role: give \"admin\" or \"viewer\"");
    expect_invalid(t, "PUT", u, "{\"password\":\"short\",\"role\":\"viewer\"}", json,
                   "password: must be 8 to 128");
    expect_invalid(t, "PUT", u, "{\"password\":\"operator-pass\"}", json, "role: required");
    expect_invalid(t, "PUT", u, "{\"password\":\"operator-pass\",\"role\":\"viewer\",\"x\":1}", json,
                   "x: unknown field");
}

/* ---- errors from the agent ---------------------------------------------------- */

static void test_agent_invalid_field(void **state)
{
    tctx *t = *state;
    fake_agent_fail(t->agent, "agent_binding_put", UTIL_ERR_INVALID_FIELD, "key_name: no key k9");
    api_request r = {.method = "PUT",
                     .path = "/api/v1/bindings/tls",
                     .header = lookup,
                     .header_arg = (void *)H("Authorization", t->admin, "Content-Type", "application/json"),
                     .body = (const uint8_t *)"{\"key_name\":\"k9\"}",
                     .body_len = 17};
    api_response_clear(&t->resp);
    assert_int_equal(api_handle(t->api, &r, &t->resp), 400);
    json_decref(t->json);
    t->json = json_loadb(t->resp.body, t->resp.body_len, 0, NULL);
    assert_error(t, 400, "invalid_field");
    assert_string_equal(error_field(t, "detail"), "key_name: no key k9");
    assert_string_equal(t->agent->calls, "agent_binding_put");
}

typedef struct mapping {
    const char *call, *method, *target, *body;
    util_err code;
    int status;
} mapping;

static void test_status_mapping(void **state)
{
    tctx *t = *state;
    static const mapping cases[] = {
        {"agent_request_create", "POST", "/api/v1/scep/requests", "{}", UTIL_ERR_AUTO_REQUEST_ENABLED, 409},
        {"agent_request_create", "POST", "/api/v1/scep/requests", "{}", UTIL_ERR_REQUEST_BUSY, 409},
        {"agent_request_create", "POST", "/api/v1/scep/requests", "{}", UTIL_ERR_KEY_NAME_TAKEN, 409},
        {"agent_request_create", "POST", "/api/v1/scep/requests", "{}", UTIL_ERR_KEY_STORE_FULL, 409},
        {"agent_scep_settings_put", "PUT", "/api/v1/scep/settings", "{}", UTIL_ERR_INVALID_FIELD, 400},
        {"agent_key_delete", "DELETE", "/api/v1/keys/k1", NULL, UTIL_ERR_KEY_IN_USE, 409},
        {"agent_restart", "POST", "/api/v1/restart", NULL, UTIL_ERR_KEY_STORE_FULL, 409},
        {"agent_key_get", "GET", "/api/v1/keys/k1", NULL, UTIL_ERR_NOT_FOUND, 404},
        {"agent_request_get", "GET", "/api/v1/scep/requests/9", NULL, UTIL_ERR_NOT_FOUND, 404},
        {"agent_request_cancel", "DELETE", "/api/v1/scep/requests/9", NULL, UTIL_ERR_NOT_FOUND, 404},
        {"agent_request_cancel", "DELETE", "/api/v1/scep/requests/9", NULL, UTIL_ERR_REQUEST_FINISHED, 409},
        {"agent_binding_put", "PUT", "/api/v1/bindings/nope", "{}", UTIL_ERR_NOT_FOUND, 404},
        {"agent_key_list", "GET", "/api/v1/keys", NULL, UTIL_ERR_STORE, 500},
        {"agent_audit", "GET", "/api/v1/audit", NULL, UTIL_ERR_INTERNAL, 500},
        {"agent_scep_settings_put", "PUT", "/api/v1/scep/settings", "{}", UTIL_ERR_NET_CONNECT, 500},
        {"agent_user_put", "PUT", "/api/v1/users/u1", "{\"password\":\"12345678\",\"role\":\"admin\"}",
         UTIL_ERR_USAGE, 400},
        {"agent_status", "GET", "/api/v1/status", NULL, UTIL_ERR_NONE, 500},
        {"agent_auto_get", "GET", "/api/v1/scep/auto-request", NULL, UTIL_ERR_NONE, 500},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mapping *m = &cases[i];
        const char *const *h = H("Authorization", t->admin, "Content-Type", "application/json");
        api_request r = {.method = m->method,
                         .path = m->target,
                         .header = lookup,
                         .header_arg = (void *)h,
                         .body = (const uint8_t *)m->body,
                         .body_len = m->body ? strlen(m->body) : 0};
        api_response_clear(&t->resp);
        fake_agent_reset(t->agent);
        fake_agent_fail(t->agent, m->call, m->code, "the detail");
        if (api_handle(t->api, &r, &t->resp) != m->status)
            fail_msg("%s -> %d, expected %d", m->call, t->resp.status, m->status);
        json_decref(t->json);
        t->json = json_loadb(t->resp.body, t->resp.body_len, 0, NULL);
        util_err shown = m->code == UTIL_ERR_NONE ? UTIL_ERR_INTERNAL : m->code;
        assert_error(t, m->status, util_err_code(shown));
        if (m->code != UTIL_ERR_NONE)
            assert_string_equal(error_field(t, "detail"), "the detail");
    }
}

/* ---- routing ------------------------------------------------------------------- */

static void test_not_found(void **state)
{
    tctx *t = *state;
    static const char *const paths[] = {"/api/v1/nope",
                                        "/api/v2/status",
                                        "/api/v1/status/",
                                        "/api/v1/keys/bad!name",
                                        "/api/v1/keys/abcdefghijklmnopqrstuvwxyz0123456", /* 33 */
                                        "/api/v1/keys/a b",
                                        "/api/v1/keys//verify",
                                        "/api/v1/scep/requests/abc",
                                        "/api/v1/scep/requests/0",
                                        "/api/v1/scep/requests/-1",
                                        "/api/v1/scep/requests/1234567890123456789",
                                        "/api/v1/users/.hidden",
                                        "/api/v1/bindings/t%6cs",
                                        "",
                                        "api/v1/status",
                                        "/metrics/x"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        req(t, "GET", paths[i], NULL, t->admin);
        if (t->resp.status != 404)
            fail_msg("%s: status %d", paths[i], t->resp.status);
        assert_error(t, 404, "not_found");
        assert_string_equal(t->agent->calls, "");
    }
    /* a request id that is not one: 404 before the agent is asked to cancel */
    req(t, "DELETE", "/api/v1/scep/requests/abc", NULL, t->admin);
    assert_error(t, 404, "not_found");
    assert_string_equal(t->agent->calls, "");
    req(t, "GET", "/api/v1/keys/abcdefghijklmnopqrstuvwxyz012345", NULL, t->admin); /* 32 */
    assert_int_equal(t->resp.status, 200);
}

static void test_method_not_allowed(void **state)
{
    tctx *t = *state;
    req(t, "DELETE", "/api/v1/status", NULL, t->admin);
    assert_error(t, 405, "usage");
    assert_header(t, "Allow", "GET, HEAD");
    req(t, "PATCH", "/api/v1/scep/settings", "{}", t->admin);
    assert_error(t, 405, "usage");
    assert_header(t, "Allow", "GET, HEAD, PUT");
    req(t, "PUT", "/api/v1/keys/tls", "{}", NULL);
    assert_error(t, 405, "usage");
    assert_header(t, "Allow", "GET, HEAD, DELETE");
    req(t, "GET", "/api/v1/restart", NULL, t->admin);
    assert_header(t, "Allow", "POST");
    req(t, "POST", "/ui/index.html", "{}", t->admin);
    assert_error(t, 405, "usage");
    assert_header(t, "Allow", "GET, HEAD");
    assert_string_equal(t->agent->calls, "");
}

/* ---- static files and redirect ------------------------------------------------ */

static void test_static(void **state)
{
    tctx *t = *state;
    run(t, "GET", "/ui/", NULL, NULL);
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.content_type, "text/html; charset=utf-8");
    assert_int_equal(t->resp.body_len, sizeof index_html - 1);
    assert_memory_equal(t->resp.body, index_html, sizeof index_html - 1);
    assert_header(t, "Cache-Control", "no-cache");
    assert_security(t, false);
    assert_int_equal(t->agent->logins + t->agent->session_checks, 0);
    run_full(t, true, "GET", "/ui/app.js", NULL, 0, NULL);
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.content_type, "text/javascript; charset=utf-8");
    assert_memory_equal(t->resp.body, app_js, sizeof app_js - 1);
    assert_security(t, true);
    run(t, "GET", "/ui/missing.js", NULL, NULL);
    assert_error(t, 404, "not_found");
    run(t, "GET", "/ui/../api/v1/status", NULL, NULL);
    assert_error(t, 404, "not_found");
    run(t, "GET", "/", NULL, NULL);
    assert_int_equal(t->resp.status, 302);
    assert_header(t, "Location", "/ui/");
    assert_null(t->resp.body);
    assert_security(t, false);
    run(t, "GET", "/ui", NULL, NULL);
    assert_int_equal(t->resp.status, 302);
    assert_header(t, "Location", "/ui/");
    api_set_static(t->api, NULL);
    run(t, "GET", "/ui/", NULL, NULL);
    assert_error(t, 404, "not_found");
}

static void test_tls_headers(void **state)
{
    tctx *t = *state;
    run_full(t, true, "GET", "/api/v1/status", NULL, 0, NULL);
    assert_int_equal(t->resp.status, 401);
    assert_security(t, true);
    run_full(t, true, "GET", "/api/v1/nothing", NULL, 0, NULL);
    assert_int_equal(t->resp.status, 404);
    assert_security(t, true);
}

/* ---- the log line ---------------------------------------------------------------- */

static char *capture_end(FILE *tmp, int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    util_log_setup("test_api", UTIL_LOG_INFO, false);
    long n = ftell(tmp);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    rewind(tmp);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

static void test_log_has_no_secrets(void **state)
{
    tctx *t = *state;
    session s;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    util_log_setup("test_api", UTIL_LOG_DEBUG, false);
    login(t, false, "admin", "admin-password", &s);
    run(t, "PUT", "/api/v1/scep/settings", "{\"challenge\":\"sekrit-challenge\"}",
        H("Cookie", s.cookie, "X-CSRF-Token", s.csrf, "Content-Type", "application/json"));
    req(t, "GET", "/api/v1/status", NULL, t->viewer);
    req(t, "GET", "/api/v1/status", NULL, t->wrong);
    char *log = capture_end(tmp, saved);
    assert_non_null(strstr(log, "api POST /api/v1/session 200 user=admin remote=192.0.2.1:1234"));
    assert_non_null(strstr(log, "api PUT /api/v1/scep/settings 200 user=admin"));
    assert_non_null(strstr(log, "api GET /api/v1/status 200 user=viewer"));
    assert_non_null(strstr(log, "api GET /api/v1/status 401 user=-"));
    const char *secrets[] = {"admin-password", "not-the-password", s.cookie + 14,     s.csrf,
                             t->admin + 6,     t->wrong + 6,       "sekrit-challenge"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(log, secrets[i]))
            fail_msg("the log shows %s", secrets[i]);
    free(log);
}

/* ---- through evhttp --------------------------------------------------------------- */

typedef struct exchange {
    struct event_base *base;
    int status;
    char *body;
    size_t body_len;
    char *content_type, *xfo, *csp, *location, *cache, *retry_after;
    bool answered;
} exchange;

static char *dup_header(struct evkeyvalq *h, const char *name)
{
    const char *v = evhttp_find_header(h, name);
    return v ? strdup(v) : NULL;
}

static void on_response(struct evhttp_request *r, void *arg)
{
    exchange *x = arg;
    if (r) {
        struct evkeyvalq *h = evhttp_request_get_input_headers(r);
        struct evbuffer *b = evhttp_request_get_input_buffer(r);
        x->status = evhttp_request_get_response_code(r);
        x->content_type = dup_header(h, "Content-Type");
        x->xfo = dup_header(h, "X-Frame-Options");
        x->csp = dup_header(h, "Content-Security-Policy");
        x->location = dup_header(h, "Location");
        x->cache = dup_header(h, "Cache-Control");
        x->retry_after = dup_header(h, "Retry-After");
        x->body_len = evbuffer_get_length(b);
        x->body = calloc(1, x->body_len + 1);
        evbuffer_remove(b, x->body, x->body_len);
    }
    x->answered = true;
    event_base_loopexit(x->base, NULL);
}

static void exchange_clear(exchange *x)
{
    free(x->body);
    free(x->content_type);
    free(x->xfo);
    free(x->csp);
    free(x->location);
    free(x->cache);
    free(x->retry_after);
    memset(x, 0, sizeof *x);
}

/* Sends a request without running the loop; x is filled when the answer
 * arrives. The caller frees the connection. */
static struct evhttp_connection *send_request(struct event_base *base, int port, enum evhttp_cmd_type cmd,
                                              const char *uri, const char *authorization, const char *body,
                                              exchange *x)
{
    exchange_clear(x);
    x->base = base;
    struct evhttp_connection *conn = evhttp_connection_base_new(base, NULL, "127.0.0.1", (ev_uint16_t)port);
    struct evhttp_request *r = evhttp_request_new(on_response, x);
    assert_non_null(conn);
    assert_non_null(r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r);
    evhttp_add_header(h, "Host", "127.0.0.1");
    if (authorization)
        evhttp_add_header(h, "Authorization", authorization);
    if (body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(r), body, strlen(body));
    }
    assert_int_equal(evhttp_make_request(conn, r, cmd, uri), 0);
    return conn;
}

static void roundtrip(struct event_base *base, int port, enum evhttp_cmd_type cmd, const char *uri,
                      const char *authorization, const char *body, exchange *x)
{
    struct timeval limit = {5, 0};
    struct evhttp_connection *conn = send_request(base, port, cmd, uri, authorization, body, x);
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    evhttp_connection_free(conn);
}

static void test_evhttp_adapter(void **state)
{
    tctx *t = *state;
    exchange x = {0};
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    assert_non_null(http);
    assert_int_equal(api_attach(t->api, http, false, NULL), 0);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    assert_non_null(sock);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &len), 0);
    int port = ntohs(sin.sin_port);

    fake_agent_reset(t->agent);
    roundtrip(base, port, EVHTTP_REQ_POST, "/api/v1/scep/requests?x=1", t->admin, "{\"key_name\":\"k2\"}",
              &x);
    assert_int_equal(x.status, 202);
    assert_string_equal(x.body, "{\"id\":7}");
    assert_string_equal(x.content_type, JSON_TYPE);
    assert_string_equal(x.location, "/api/v1/scep/requests/7");
    assert_string_equal(x.xfo, "DENY");
    assert_string_equal(x.cache, "no-store");
    assert_non_null(x.csp);
    assert_non_null(strstr(x.csp, "frame-ancestors 'none'"));
    json_t *sent = json_loads("{\"key_name\":\"k2\"}", 0, NULL);
    assert_true(json_equal(sent, t->agent->last_in));
    json_decref(sent);

    fake_agent_reset(t->agent);
    roundtrip(base, port, EVHTTP_REQ_GET, "/api/v1/keys/tls%2Dkey", t->admin, NULL, &x);
    assert_int_equal(x.status, 200);
    assert_string_equal(t->agent->last_name, "tls-key");
    assert_string_equal(x.body, "{\"name\":\"tls-key\",\"state\":\"registered\"}");

    roundtrip(base, port, EVHTTP_REQ_GET, "/api/v1/keys/a%00b", t->admin, NULL, &x);
    assert_int_equal(x.status, 404);
    assert_non_null(strstr(x.body, "\"code\":\"not_found\""));

    roundtrip(base, port, EVHTTP_REQ_GET, "/api/v1/status", NULL, NULL, &x);
    assert_int_equal(x.status, 401);
    assert_non_null(strstr(x.body, "\"code\":\"unauthorized\""));

    roundtrip(base, port, EVHTTP_REQ_DELETE, "/api/v1/keys/k1", t->admin, NULL, &x);
    assert_int_equal(x.status, 204);
    assert_int_equal(x.body_len, 0);
    assert_null(x.content_type);

    roundtrip(base, port, EVHTTP_REQ_PATCH, "/api/v1/keys/k1", t->admin, "{}", &x);
    assert_int_equal(x.status, 405);

    roundtrip(base, port, EVHTTP_REQ_GET, "/ui/", NULL, NULL, &x);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.body, (const char *)index_html);
    assert_string_equal(x.content_type, "text/html; charset=utf-8");
    assert_string_equal(x.xfo, "DENY");

    exchange_clear(&x);
    evhttp_free(http);
    event_base_free(base);
}

/* An evhttp server on loopback with the api attached. */
typedef struct served {
    struct event_base *base;
    struct evhttp *http;
    edge *edge;           /* as in scepd: the edge in front of evhttp */
    struct event *ticker; /* keeps the loop turning while a test waits */
    int port;
} served;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void serve_start(tctx *t, served *s)
{
    struct timeval every = {0, 10000};
    s->base = event_base_new();
    assert_non_null(s->base);
    s->http = evhttp_new(s->base);
    assert_non_null(s->http);
    s->edge = edge_new(s->base, NULL);
    assert_non_null(s->edge);
    assert_int_equal(api_attach(t->api, s->http, false, s->edge), 0);
    assert_int_equal(edge_add_http(s->edge, s->http, NULL, NULL), 0);
    struct evhttp_bound_socket *sock = NULL;
    util_error err = {0};
    assert_int_equal(edge_bind(s->edge, s->http, "127.0.0.1", 0, &sock, &err), 0);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
    s->ticker = event_new(s->base, -1, EV_PERSIST, on_tick, NULL);
    assert_non_null(s->ticker);
    assert_int_equal(event_add(s->ticker, &every), 0);
}

/* client (may be NULL): a connection to free after the server, before the base */
static void serve_stop(served *s, struct evhttp_connection *client)
{
    event_free(s->ticker);
    evhttp_free(s->http);
    edge_free(s->edge);
    if (client)
        evhttp_connection_free(client);
    event_base_free(s->base);
}

static unsigned open_connections(const served *s)
{
    edge_stats st;
    edge_get_stats(s->edge, &st);
    return st.open;
}

/* Runs the loop until *flag is set (at most 1,000 turns of 10 ms). */
static void pump_until(served *s, const bool *flag)
{
    for (int i = 0; i < 1000 && !*flag; i++)
        event_base_loop(s->base, EVLOOP_ONCE);
}

static bool held(const agent *a)
{
    return a->held != NULL;
}

/* A login whose password is being hashed holds its own request only: while
 * the agent holds it, the UI's files and a request with credentials the
 * agent answers at once (as from its cache) are served; the held request
 * is answered, with the right user, once the agent lets it go. */
static void test_login_does_not_block_others(void **state)
{
    tctx *t = *state;
    served s;
    exchange a = {0}, ui = {0}, other = {0};
    serve_start(t, &s);
    fake_agent_reset(t->agent);
    t->agent->defer_logins = true;
    struct evhttp_connection *ca =
        send_request(s.base, s.port, EVHTTP_REQ_GET, "/api/v1/status", t->admin, NULL, &a);
    bool is_held = false;
    for (int i = 0; i < 1000 && !(is_held = held(t->agent)); i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_true(is_held);
    struct evhttp_connection *cu = send_request(s.base, s.port, EVHTTP_REQ_GET, "/ui/", NULL, NULL, &ui);
    pump_until(&s, &ui.answered);
    struct evhttp_connection *co =
        send_request(s.base, s.port, EVHTTP_REQ_GET, "/api/v1/keys/k1", t->viewer, NULL, &other);
    pump_until(&s, &other.answered);
    assert_int_equal(ui.status, 200);
    assert_string_equal(ui.body, (const char *)index_html);
    assert_int_equal(other.status, 200);
    assert_false(a.answered);
    assert_null(strstr(t->agent->calls, "agent_status"));
    assert_true(fake_agent_release_login(t->agent));
    pump_until(&s, &a.answered);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(t->agent->calls, "agent_status"));
    assert_string_equal(a.xfo, "DENY");
    assert_string_equal(a.cache, "no-store");
    assert_int_equal(t->agent->login_cancels, 0);
    /* a wrong password is refused the same way after the wait */
    struct evhttp_connection *cw =
        send_request(s.base, s.port, EVHTTP_REQ_GET, "/api/v1/status", t->wrong, NULL, &other);
    for (int i = 0; i < 1000 && !held(t->agent); i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_true(fake_agent_release_login(t->agent));
    pump_until(&s, &other.answered);
    assert_int_equal(other.status, 401);
    assert_non_null(strstr(other.body, "\"code\":\"unauthorized\""));
    assert_null(strstr(other.body, "wrong password for"));
    evhttp_connection_free(ca);
    evhttp_connection_free(cu);
    evhttp_connection_free(co);
    evhttp_connection_free(cw);
    exchange_clear(&a);
    exchange_clear(&ui);
    exchange_clear(&other);
    serve_stop(&s, NULL);
}

/* A client that hangs up while its login is checked. evhttp 2.1 reads
 * nothing from a connection whose request is being handled, so the server
 * learns of it when the answer is written: the connection is then closed
 * and freed with its request. A connection freed while the login is under
 * way (here: the server stops) tells the agent through its close callback.
 * ASan sees neither a use after free nor a leak in either case. */
static void test_login_client_gone(void **state)
{
    tctx *t = *state;
    served s;
    exchange a = {0}, b = {0};
    serve_start(t, &s);
    fake_agent_reset(t->agent);
    t->agent->defer_logins = true;
    struct evhttp_connection *ca = send_request(s.base, s.port, EVHTTP_REQ_POST, "/api/v1/session", NULL,
                                                "{\"user\":\"admin\",\"password\":\"admin-password\"}", &a);
    for (int i = 0; i < 1000 && !held(t->agent); i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_true(held(t->agent));
    assert_int_equal(open_connections(&s), 1);
    evhttp_connection_free(ca);
    for (int i = 0; i < 20; i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_false(a.answered);
    assert_true(fake_agent_release_login(t->agent));
    for (int i = 0; i < 1000 && open_connections(&s) > 0; i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_int_equal(open_connections(&s), 0);
    assert_int_equal(t->agent->login_cancels, 0);
    assert_non_null(strstr(t->agent->calls, "agent_session_new"));
    /* still under way when the server is freed */
    struct evhttp_connection *cb =
        send_request(s.base, s.port, EVHTTP_REQ_GET, "/api/v1/status", t->admin, NULL, &b);
    for (int i = 0; i < 1000 && !held(t->agent); i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_true(held(t->agent));
    serve_stop(&s, cb);
    assert_int_equal(t->agent->login_cancels, 1);
    assert_false(b.answered);
    exchange_clear(&a);
    exchange_clear(&b);
}

/* POST /keys/{name}/verify waits for the CRL the agent fetches first: no
 * answer (and no agent_key_verify) until the fetch is over, other clients
 * are served meanwhile; a client that leaves is forgotten by the agent. */
static void test_verify_waits_for_crl(void **state)
{
    tctx *t = *state;
    served s;
    exchange v = {0}, other = {0}, gone = {0};
    serve_start(t, &s);
    fake_agent_reset(t->agent);
    t->agent->defer_verify = true;
    struct evhttp_connection *cv =
        send_request(s.base, s.port, EVHTTP_REQ_POST, "/api/v1/keys/k1/verify", t->viewer, NULL, &v);
    for (int i = 0; i < 1000 && !t->agent->held_verify; i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_non_null(t->agent->held_verify);
    struct evhttp_connection *co =
        send_request(s.base, s.port, EVHTTP_REQ_GET, "/api/v1/status", t->viewer, NULL, &other);
    pump_until(&s, &other.answered);
    assert_int_equal(other.status, 200);
    assert_false(v.answered);
    assert_null(strstr(t->agent->calls, "agent_key_verify"));
    assert_true(fake_agent_release_verify(t->agent));
    pump_until(&s, &v.answered);
    assert_int_equal(v.status, 200);
    assert_non_null(strstr(v.body, "\"valid\":true"));
    assert_non_null(strstr(t->agent->calls, "agent_key_verify"));
    assert_string_equal(t->agent->last_name, "k1");
    assert_int_equal(t->agent->verify_cancels, 0);
    /* still waiting when the server is freed: the agent is told */
    struct evhttp_connection *cg =
        send_request(s.base, s.port, EVHTTP_REQ_POST, "/api/v1/keys/k1/verify", t->admin, NULL, &gone);
    for (int i = 0; i < 1000 && !t->agent->held_verify; i++)
        event_base_loop(s.base, EVLOOP_ONCE);
    assert_non_null(t->agent->held_verify);
    evhttp_connection_free(cv);
    evhttp_connection_free(co);
    serve_stop(&s, cg);
    assert_int_equal(t->agent->verify_cancels, 1);
    assert_null(t->agent->held_verify);
    assert_false(gone.answered);
    exchange_clear(&v);
    exchange_clear(&other);
    exchange_clear(&gone);
}

/* Beyond the agent's queue of logins: 503 login_busy with Retry-After. */
static void test_login_busy(void **state)
{
    tctx *t = *state;
    served s;
    exchange x = {0};
    serve_start(t, &s);
    fake_agent_reset(t->agent);
    t->agent->login_busy = true;
    struct evhttp_connection *c =
        send_request(s.base, s.port, EVHTTP_REQ_GET, "/api/v1/status", t->admin, NULL, &x);
    pump_until(&s, &x.answered);
    assert_int_equal(x.status, 503);
    assert_non_null(strstr(x.body, "\"code\":\"login_busy\""));
    assert_string_equal(x.retry_after, "1");
    assert_null(strstr(t->agent->calls, "agent_status"));
    evhttp_connection_free(c);
    exchange_clear(&x);
    serve_stop(&s, NULL);
}

static void test_attach_limit(void **state)
{
    tctx *t = *state;
    struct event_base *base = event_base_new();
    struct evhttp *http[5];
    for (int i = 0; i < 5; i++) {
        http[i] = evhttp_new(base);
        assert_int_equal(api_attach(t->api, http[i], i % 2 == 0, NULL), i < 4 ? 0 : -1);
    }
    for (int i = 0; i < 5; i++)
        evhttp_free(http[i]);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_need_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_viewer_cannot_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_is_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_cookie_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_change_needs_csrf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_viewer_forbidden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_authorization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ui_gets_no_basic_dialog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_names, setup_names, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large_configured, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_and_user_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_invalid_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_has_no_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evhttp_adapter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_does_not_block_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_waits_for_crl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
