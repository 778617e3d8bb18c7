/* Plain HTTP over libevent's HTTP client (see plain.h). One request, one
 * connection, one private event base: the blocking semantics of http_get and
 * http_post, with the same limits (total time, response size) and the same
 * catalogue errors as the libcurl path. */
#include "http/plain.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define PLAIN_DEFAULT_CONNECT_MS 10000L
#define PLAIN_DEFAULT_TOTAL_MS 60000L
#define PLAIN_DEFAULT_MAX ((size_t)1 << 20)
#define PLAIN_HEADERS_MAX (64 * 1024)
#define PLAIN_DEFAULT_CONTENT_TYPE "application/x-pki-message"
#define PLAIN_DEFAULT_UA "scepd/" SCEPD_VERSION

typedef struct plain_call {
    struct event_base *base;
    struct evhttp_connection *conn;
    bool connect_timed_out;
    bool finished; /* the request's callback ran */
    bool errored;  /* and evhttp said why it failed */
    enum evhttp_request_error error;
    int socket_error;   /* errno when the connection failed */
    long long expected; /* Content-Length of the reply, -1: none or no reply yet */
    bool interim;       /* a 1xx reply: left to libcurl */
    http_response r;
    bool oom;
} plain_call;

/* libcurl honours these (not HTTP_PROXY in capitals, for CGI's sake). */
static bool env_proxy(void)
{
    static const char *const names[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return true;
    }
    return false;
}

bool http_plain_eligible(const http_options *o, const char *url)
{
    if (!url || strncasecmp(url, "http://", 7) != 0 || (o && o->verbose))
        return false;
    if (o && o->proxy ? o->proxy[0] != '\0' : env_proxy())
        return false;
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    bool ok = u && evhttp_uri_get_host(u) && evhttp_uri_get_host(u)[0] && evhttp_uri_get_host(u)[0] != '[' &&
              !evhttp_uri_get_userinfo(u) && !evhttp_uri_get_fragment(u);
    if (u)
        evhttp_uri_free(u);
    return ok;
}

static void on_error(enum evhttp_request_error error, void *arg)
{
    plain_call *c = arg;
    c->errored = true;
    c->error = error;
    c->socket_error = EVUTIL_SOCKET_ERROR(); /* evhttp has freed the request by now */
}

/* Interim replies (1xx) are left to libcurl, which skips them. */
static int on_headers(struct evhttp_request *req, void *arg)
{
    plain_call *c = arg;
    int code = evhttp_request_get_response_code(req);
    if (code >= 100 && code < 200) {
        c->interim = true;
        return -1;
    }
    const char *cl = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length");
    c->expected = cl ? strtoll(cl, NULL, 10) : -1;
    return 0;
}

/* A header's value without the white space around it, as libcurl gives it. */
static char *header_dup(struct evhttp_request *req, const char *name, plain_call *c)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    if (!v)
        return NULL;
    size_t n = strlen(v);
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    char *d = strndup(v, n);
    if (!d)
        c->oom = true;
    return d;
}

static void on_done(struct evhttp_request *req, void *arg)
{
    plain_call *c = arg;
    c->finished = true;
    event_base_loopbreak(c->base);
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code <= 0 || c->errored || c->interim || c->r.body)
        return;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    c->r.status = code;
    c->r.content_type = header_dup(req, "Content-Type", c);
    c->r.server = header_dup(req, "Server", c);
    c->r.body = malloc(n + 1);
    if (!c->r.body) {
        c->oom = true;
        return;
    }
    if (evbuffer_remove(in, c->r.body, n) != (int)n)
        c->oom = true;
    c->r.body[n] = '\0';
    c->r.body_len = n;
}

/* The connect timeout: evhttp 2.1 has one timeout for connecting and for
 * each read and write, which is set to the total; this timer holds the
 * connect to its own, shorter limit. */
static void on_connect_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    plain_call *c = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
    evutil_socket_t s = bev ? bufferevent_getfd(bev) : -1;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    if (!c->finished && (s < 0 || getpeername(s, (struct sockaddr *)&peer, &len) != 0)) {
        c->connect_timed_out = true;
        event_base_loopbreak(c->base);
    }
}

/* Why a request without a reply failed, as libcurl's path would say it. */
static int failure(const plain_call *c, struct evhttp_connection *conn, const char *host, int port,
                   long connect_ms, long total_ms, size_t max, util_error *err)
{
    if (c->connect_timed_out)
        return util_error_set(err, UTIL_ERR_NET_TIMEOUT, "%s: no connection within %ld ms", host, connect_ms);
    if (!c->finished || (c->errored && c->error == EVREQ_HTTP_TIMEOUT))
        return util_error_set(err, UTIL_ERR_NET_TIMEOUT, "%s: no complete reply within %ld ms", host,
                              total_ms);
    if (c->errored && c->error == EVREQ_HTTP_DATA_TOO_LONG)
        return util_error_set(err, UTIL_ERR_RESPONSE_TOO_LARGE, "%s: the reply exceeds %zu bytes", host, max);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    int dns = bev ? bufferevent_socket_get_dns_error(bev) : 0;
    if (dns)
        return util_error_set(err, UTIL_ERR_NET_RESOLVE, "%s: could not resolve host: %s", host,
                              evutil_gai_strerror(dns));
    /* evhttp runs the callback without an error for a refused or timed-out
     * connect, and reports EOF once the connection was made */
    if (!c->errored)
        return util_error_set(err, UTIL_ERR_NET_CONNECT, "%s: failed to connect to %s port %d", host, host,
                              port);
    if (c->expected >= 0)
        return util_error_set(err, UTIL_ERR_NET_RESET,
                              "%s: the connection closed with bytes remaining to read (Content-Length %lld)",
                              host, c->expected);
    if (c->socket_error)
        return util_error_set(err, UTIL_ERR_NET_RESET, "%s: the connection failed: %s", host,
                              evutil_socket_error_to_string(c->socket_error));
    return util_error_set(err, UTIL_ERR_NET_RESET, "%s: the connection closed before a complete reply", host);
}

int http_plain_perform(const http_options *o, const char *url, bool post, const uint8_t *body, size_t len,
                       const char *content_type, http_response *out, util_error *err)
{
    int rc = -1;
    plain_call c = {.expected = -1};
    struct evhttp_uri *u = NULL;
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req = NULL;
    struct event *connect_timer = NULL;
    char *target = NULL, hostport[300];
    static const http_options none;
    if (!o)
        o = &none;
    if (!out || (post && len && !body))
        return util_error_set(err, UTIL_ERR_USAGE, "missing response or body");
    const char *ctype = content_type ? content_type : PLAIN_DEFAULT_CONTENT_TYPE;
    const char *ua = o->user_agent ? o->user_agent : PLAIN_DEFAULT_UA;
    if (strpbrk(ctype, "\r\n") || strpbrk(ua, "\r\n"))
        return util_error_set(err, UTIL_ERR_USAGE, "a header holds a line break");
    if (!(u = evhttp_uri_parse_with_flags(url, 0)) || !evhttp_uri_get_host(u))
        return util_error_set(err, UTIL_ERR_USAGE, "not a URL: %s", url);
    const char *host = evhttp_uri_get_host(u);
    int port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    const char *path = evhttp_uri_get_path(u) && *evhttp_uri_get_path(u) ? evhttp_uri_get_path(u) : "/";
    const char *query = evhttp_uri_get_query(u);
    long total_ms = o->total_timeout_ms > 0 ? o->total_timeout_ms : PLAIN_DEFAULT_TOTAL_MS;
    long connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : PLAIN_DEFAULT_CONNECT_MS;
    size_t max = o->max_response ? o->max_response : PLAIN_DEFAULT_MAX;
    if (asprintf(&target, "%s%s%s", path, query ? "?" : "", query ? query : "") < 0) {
        target = NULL;
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    snprintf(hostport, sizeof hostport, port == 80 ? "%s" : "%s:%d", host, port);
    c.base = event_base_new();
    conn = c.base ? evhttp_connection_base_new(c.base, NULL, host, (ev_uint16_t)port) : NULL;
    req = conn ? evhttp_request_new(on_done, &c) : NULL;
    if (!req) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", host);
        goto out;
    }
    /* the total is evhttp's timeout and the loop's deadline; the connect
     * timeout is a timer of its own (on_connect_deadline) */
    long first_ms = connect_ms < total_ms ? connect_ms : total_ms;
    struct timeval first = {first_ms / 1000, (suseconds_t)(first_ms % 1000) * 1000};
    struct timeval total = {total_ms / 1000, (suseconds_t)(total_ms % 1000) * 1000};
    c.conn = conn;
    if (!(connect_timer = evtimer_new(c.base, on_connect_deadline, &c)) ||
        evtimer_add(connect_timer, &first) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", host);
        goto out;
    }
    evhttp_connection_set_timeout_tv(conn, &total);
    evhttp_connection_set_retries(conn, 0);
    evhttp_connection_set_max_body_size(conn, (ev_ssize_t)(max > (size_t)INT32_MAX ? INT32_MAX : max));
    evhttp_connection_set_max_headers_size(conn, PLAIN_HEADERS_MAX);
    evhttp_request_set_error_cb(req, on_error);
    evhttp_request_set_header_cb(req, on_headers);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (evhttp_add_header(h, "Host", hostport) != 0 || evhttp_add_header(h, "User-Agent", ua) != 0 ||
        evhttp_add_header(h, "Accept", "*/*") != 0 || evhttp_add_header(h, "Connection", "close") != 0 ||
        (post &&
         (evhttp_add_header(h, "Content-Type", ctype) != 0 ||
          evbuffer_add(evhttp_request_get_output_buffer(req), len ? body : (const uint8_t *)"", len) != 0))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", host);
        goto out;
    }
    int made = evhttp_make_request(conn, req, post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, target);
    req = NULL; /* the connection owns it now, even when that failed */
    if (made != 0) {
        util_error_set(err, UTIL_ERR_NET_CONNECT, "%s: the request could not be started", host);
        goto out;
    }
    event_base_loopexit(c.base, &total);
    event_base_dispatch(c.base);
    if (c.interim) {
        rc = 1;
        goto out;
    }
    if (c.oom) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", host);
        goto out;
    }
    if (!c.finished || c.r.status <= 0) {
        failure(&c, conn, host, port, connect_ms, total_ms, max, err);
        goto out;
    }
    *out = c.r;
    memset(&c.r, 0, sizeof c.r);
    rc = 0;
out:
    http_response_free(&c.r);
    if (connect_timer)
        event_free(connect_timer);
    if (req)
        evhttp_request_free(req);
    if (conn)
        evhttp_connection_free(conn);
    if (c.base)
        event_base_free(c.base);
    if (u)
        evhttp_uri_free(u);
    free(target);
    return rc;
}
