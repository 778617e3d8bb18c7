/* The core of the REST API: routing, the order of the checks (size, Origin,
 * authentication, CSRF, role, body), the Remote UI's static files, and the
 * headers and log line of every response. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "util/log.h"

api *api_new(agent *a, const api_config *cfg)
{
    api *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->agent = a;
    if (cfg)
        p->cfg = *cfg;
    if (p->cfg.max_body == 0)
        p->cfg.max_body = API_DEFAULT_MAX_BODY;
    return p;
}

void api_free(api *server)
{
    free(server);
}

void api_set_static(api *server, api_static_lookup lookup)
{
    server->static_lookup = lookup;
}

static bool is_get(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static bool is_change(const char *method)
{
    return !is_get(method) && strcmp(method, "OPTIONS") != 0;
}

/* Checks and stores one path parameter; false sends the request to 404. */
static bool match_param(const char *kind, size_t kind_len, const char *seg, size_t len, api_ctx *c)
{
    if (len == 0 || len > API_USER_MAX)
        return false;
    memcpy(c->name, seg, len);
    c->name[len] = '\0';
    if (kind_len == 3 && memcmp(kind, ":id", 3) == 0) {
        if (len > 18 || strspn(c->name, "0123456789") != len)
            return false;
        c->id = strtoll(c->name, NULL, 10);
        return c->id > 0;
    }
    if (kind_len == 5 && memcmp(kind, ":name", 5) == 0)
        return api_string_valid(c->name, len, API_NAME_MAX, API_CHARSET_NAME);
    return api_string_valid(c->name, len, API_USER_MAX, API_CHARSET_USER);
}

static bool match(const char *pattern, const char *path, api_ctx *c)
{
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return false;
        pattern++;
        path++;
        size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
        if (pattern[0] == ':') {
            if (!match_param(pattern, pl, path, sl, c))
                return false;
        } else if (pl != sl || memcmp(pattern, path, pl) != 0) {
            return false;
        }
        pattern += pl;
        path += sl;
    }
    return !*pattern && !*path;
}

/* The route for the method and path; when only the path matches, the
 * methods it allows are listed in allow. */
static const api_route *find_route(api_ctx *c, char *allow, size_t allow_len)
{
    size_t count = 0;
    const api_route *routes = api_routes(&count);
    const char *method = strcmp(c->req->method, "HEAD") == 0 ? "GET" : c->req->method;
    const api_route *found = NULL;
    allow[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (!match(routes[i].pattern, c->req->path, c))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            found = &routes[i];
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s%s", used ? ", " : "", routes[i].method,
                 strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    if (found && !match(found->pattern, c->req->path, c))
        found = NULL; /* cannot happen: restores the parameters of the route found */
    return found;
}

/* 405 with the catalogue's "usage" error (which is a 400 elsewhere). */
static void not_allowed(api_ctx *c, const char *allow)
{
    api_reply_errorf(c, UTIL_ERR_USAGE, "%.16s: method not allowed here; allowed: %s", c->req->method, allow);
    if (api_header_add(c->resp, "Allow", allow) != 0)
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
    else if (c->resp->status == 400)
        c->resp->status = 405;
}

/* Authentication, CSRF and role, in that order; false when answered. */
static bool admitted(api_ctx *c, const api_route *r)
{
    util_error err = {0};
    bool change = is_change(c->req->method);
    if (change && api_check_origin(c, &err) != 0)
        goto fail;
    if (r->flags & API_ROUTE_PUBLIC)
        return true;
    if (api_authenticate(c, &err) != 0) {
        api_reply_error(c, &err);
        /* a stale cookie is removed so that the UI shows its login page */
        if (c->auth.token[0] && err.code == UTIL_ERR_UNAUTHORIZED && api_session_cookie_clear(c) != 0)
            api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
        return false;
    }
    if (change && api_check_csrf(c, &err) != 0)
        goto fail;
    if ((r->flags & API_ROUTE_ADMIN) && c->auth.role != AGENT_ROLE_ADMIN) {
        util_error_set(&err, UTIL_ERR_FORBIDDEN, "user %s has the %s role", c->auth.user,
                       agent_role_name(c->auth.role));
        goto fail;
    }
    return true;
fail:
    api_reply_error(c, &err);
    return false;
}

static void dispatch(api_ctx *c)
{
    util_error err = {0};
    char allow[128];
    const api_route *r = find_route(c, allow, sizeof allow);
    if (!r) {
        if (allow[0])
            not_allowed(c, allow);
        else
            api_reply_errorf(c, UTIL_ERR_NOT_FOUND, "%.200s: no such endpoint or object", c->req->path);
        return;
    }
    if (c->req->body_len > c->api->cfg.max_body) {
        api_reply_errorf(c, UTIL_ERR_BODY_TOO_LARGE, "body: %zu bytes, at most %zu are accepted",
                         c->req->body_len, c->api->cfg.max_body);
        return;
    }
    if (!admitted(c, r))
        return;
    if (api_body_parse(c, (r->flags & API_ROUTE_BODY) != 0, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    r->handler(c);
}

static void redirect_ui(api_ctx *c)
{
    if (!is_get(c->req->method)) {
        not_allowed(c, "GET, HEAD");
        return;
    }
    api_reply_empty(c, 302);
    if (api_header_add(c->resp, "Location", "/ui/") != 0)
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
}

/* Static files need no login: they hold no data, only the UI's code. */
static bool serve_static(api_ctx *c)
{
    const char *path = c->req->path;
    const api_static_file *f = NULL;
    if (!is_get(c->req->method)) {
        not_allowed(c, "GET, HEAD");
        return false;
    }
    if (c->api->static_lookup && !strstr(path, "/.."))
        f = c->api->static_lookup(strcmp(path, "/ui/") == 0 ? "/ui/index.html" : path);
    if (!f) {
        api_reply_errorf(c, UTIL_ERR_NOT_FOUND, "%.200s: no such file", path);
        return false;
    }
    api_reply_empty(c, 200);
    if (f->len && !(c->resp->body = malloc(f->len))) {
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
        return false;
    }
    if (f->len)
        memcpy(c->resp->body, f->data, f->len);
    c->resp->body_len = f->len;
    c->resp->content_type = f->content_type ? f->content_type : "application/octet-stream";
    return true;
}

/* Returns true for a static file (cacheable), false for API answers. */
static bool route_request(api_ctx *c)
{
    const char *path = c->req->path;
    util_error err = {0};
    if (api_check_host(c, &err) != 0) {
        api_reply_error(c, &err);
        return false;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/ui") == 0) {
        redirect_ui(c);
        return false;
    }
    if (strncmp(path, "/ui/", 4) == 0)
        return serve_static(c);
    dispatch(c);
    return false;
}

/* Copies for the log line, with control characters replaced. */
static void printable(char *out, size_t outlen, const char *s)
{
    size_t i = 0;
    for (; s && *s && i + 1 < outlen; s++)
        out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    out[i] = '\0';
}

static void log_request(const api_ctx *c)
{
    char method[16], path[160], remote[64];
    printable(method, sizeof method, c->req->method);
    printable(path, sizeof path, c->req->path);
    printable(remote, sizeof remote, c->req->remote ? c->req->remote : "-");
    log_debug("api %s %s %d user=%s remote=%s", method, path, c->resp->status,
              c->auth.ok ? c->auth.user : "-", remote);
}

int api_handle(api *server, const api_request *req, api_response *resp)
{
    static const api_request empty = {.method = "GET", .path = ""};
    memset(resp, 0, sizeof *resp);
    api_request safe = req ? *req : empty;
    if (!safe.method)
        safe.method = "";
    if (!safe.path)
        safe.path = "";
    api_ctx c = {.api = server, .req = &safe, .resp = resp};
    bool cacheable = route_request(&c);
    if (c.deferred) {
        api_response_clear(resp);
        resp->deferred = true;
    } else {
        api_finish_headers(resp, safe.tls, cacheable ? "no-cache" : "no-store");
        log_request(&c);
    }
    api_body_wipe(c.body);
    json_decref(c.body);
    OPENSSL_cleanse(&c.auth, sizeof c.auth);
    return resp->status;
}
