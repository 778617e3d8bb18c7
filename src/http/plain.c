/* Plain HTTP over libevent's HTTP client (see plain.h): the blocking
 * semantics of http_get and http_post, with the same limits (total time,
 * response size) and the same catalogue errors as the libcurl path. The
 * connection of the last request stays open, on its own private event base,
 * for the next request to the same host and port (HTTP/1.1 keep-alive): a
 * scepctl run sends its GetCACaps, GetCACert and PKIOperation over one. */
#include "http/plain.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

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
    bool delimited;     /* the reply's end is not the connection's: Content-Length or chunked */
    bool received;      /* a byte of the reply arrived */
    bool interim;       /* a 1xx reply: left to libcurl */
    http_response r;
    bool oom;
} plain_call;

/* A connection and the private event base it runs on, kept between requests
 * to the same host and port. Nothing else in http_options concerns the
 * connection itself: timeouts and the response cap are set per request, and
 * the TLS, proxy and trace options never reach this path. */
typedef struct plain_link {
    struct event_base *base;
    struct evhttp_connection *conn;
    char *host;
    int port;
} plain_link;

/* The idle connection of the last request, if it may be used again. A
 * request takes it out under the lock and puts its own back when done, so
 * blocking calls from several threads never share one; each then simply
 * keeps at most one connection open. Process-wide, like curl's global state:
 * the callers (scepctl's client) hold no HTTP handle of their own to keep it
 * in; released by http_plain_close_all (http_global_cleanup). */
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static plain_link *idle_link;

static void link_free(plain_link *l)
{
    if (!l)
        return;
    if (l->conn)
        evhttp_connection_free(l->conn);
    if (l->base)
        event_base_free(l->base);
    free(l->host);
    free(l);
}

static plain_link *link_new(const char *host, int port)
{
    plain_link *l = calloc(1, sizeof *l);
    if (!l || !(l->host = strdup(host)) || !(l->base = event_base_new()) ||
        !(l->conn = evhttp_connection_base_new(l->base, NULL, host, (ev_uint16_t)port))) {
        link_free(l);
        return NULL;
    }
    l->port = port;
    evhttp_connection_set_retries(l->conn, 0);
    evhttp_connection_set_max_headers_size(l->conn, PLAIN_HEADERS_MAX);
    return l;
}

/* Puts l (may be NULL) in the idle slot and closes what was there. */
static void link_keep(plain_link *l)
{
    pthread_mutex_lock(&idle_lock);
    plain_link *old = idle_link;
    idle_link = l;
    pthread_mutex_unlock(&idle_lock);
    link_free(old);
}

/* The idle connection if it goes to host:port; any other one is closed. */
static plain_link *link_take(const char *host, int port)
{
    pthread_mutex_lock(&idle_lock);
    plain_link *l = idle_link;
    idle_link = NULL;
    pthread_mutex_unlock(&idle_lock);
    if (l && (l->port != port || strcmp(l->host, host) != 0)) {
        link_free(l);
        l = NULL;
    }
    return l;
}

void http_plain_close_all(void)
{
    link_keep(NULL);
}

/* The connection's socket, -1 when evhttp has none open (never connected, or
 * closed after an error or a reply with Connection: close). */
static evutil_socket_t link_socket(const plain_link *l)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(l->conn);
    return bev ? bufferevent_getfd(bev) : -1;
}

/* An idle connection that is readable has been closed by the server (or got
 * bytes nobody asked for): not to be used, as curl checks before reuse. */
static bool link_dead(const plain_link *l)
{
    evutil_socket_t s = link_socket(l);
    struct pollfd p = {.fd = s, .events = POLLIN};
    return s >= 0 && poll(&p, 1, 0) != 0;
}

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
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *cl = evhttp_find_header(h, "Content-Length");
    const char *te = evhttp_find_header(h, "Transfer-Encoding");
    c->expected = cl ? strtoll(cl, NULL, 10) : -1;
    c->delimited = cl || (te && strcasecmp(te, "chunked") == 0);
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

/* Whether any of the reply came: evhttp drains what it had read before it
 * reports a failure. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    plain_call *c = arg;
    if (info->n_added)
        c->received = true;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
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

/* One request as http_plain_perform was given it, ready to send. */
typedef struct plain_request {
    const char *host;
    int port;
    const char *hostport; /* the Host: header */
    const char *target;   /* path and query */
    bool post;
    const uint8_t *body;
    size_t len;
    const char *ctype, *ua;
    long connect_ms, total_ms;
    size_t max;
} plain_request;

static struct timeval ms_tv(long ms)
{
    return (struct timeval){ms / 1000, (suseconds_t)(ms % 1000) * 1000};
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends q over l and waits at most left_ms for the reply; returns as
 * http_plain_perform. *keep: l may carry the next request. *retry: l was
 * open from an earlier request and the server closed it before a byte of
 * the reply came (err is then not set): the request may go again over a new
 * connection, as curl and browsers do. */
static int send_request(plain_link *l, const plain_request *q, long left_ms, http_response *out, bool *keep,
                        bool *retry, util_error *err)
{
    int rc = -1;
    plain_call c = {.base = l->base, .conn = l->conn, .expected = -1};
    struct evhttp_request *req = NULL;
    struct event *connect_timer = NULL, *deadline = NULL;
    struct evbuffer *input = bufferevent_get_input(evhttp_connection_get_bufferevent(l->conn));
    struct evbuffer_cb_entry *watch = NULL;
    bool reused = link_socket(l) >= 0;
    *keep = *retry = false;
    /* the total is evhttp's timeout and the loop's deadline; the connect
     * timeout is a timer of its own (on_connect_deadline) */
    struct timeval first = ms_tv(q->connect_ms < left_ms ? q->connect_ms : left_ms);
    struct timeval total = ms_tv(left_ms);
    if (!(req = evhttp_request_new(on_done, &c)) ||
        !(connect_timer = evtimer_new(l->base, on_connect_deadline, &c)) ||
        !(deadline = evtimer_new(l->base, on_deadline, l->base)) ||
        !(watch = evbuffer_add_cb(input, on_input, &c)) || evtimer_add(connect_timer, &first) != 0 ||
        evtimer_add(deadline, &total) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", q->host);
        goto out;
    }
    evhttp_connection_set_timeout_tv(l->conn, &total);
    evhttp_connection_set_max_body_size(l->conn,
                                        (ev_ssize_t)(q->max > (size_t)INT32_MAX ? INT32_MAX : q->max));
    evhttp_request_set_error_cb(req, on_error);
    evhttp_request_set_header_cb(req, on_headers);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (evhttp_add_header(h, "Host", q->hostport) != 0 || evhttp_add_header(h, "User-Agent", q->ua) != 0 ||
        evhttp_add_header(h, "Accept", "*/*") != 0 ||
        (q->post && (evhttp_add_header(h, "Content-Type", q->ctype) != 0 ||
                     evbuffer_add(evhttp_request_get_output_buffer(req),
                                  q->len ? q->body : (const uint8_t *)"", q->len) != 0))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", q->host);
        goto out;
    }
    int made = evhttp_make_request(l->conn, req, q->post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, q->target);
    req = NULL; /* the connection owns it now, even when that failed */
    if (made != 0) {
        util_error_set(err, UTIL_ERR_NET_CONNECT, "%s: the request could not be started", q->host);
        goto out;
    }
    event_base_dispatch(l->base);
    if (c.interim) {
        rc = 1;
        goto out;
    }
    if (c.oom) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", q->host);
        goto out;
    }
    if (!c.finished || c.r.status <= 0) {
        /* never after part of a reply, a timeout, or on a new connection */
        if (reused && c.finished && c.errored && c.error == EVREQ_HTTP_EOF && !c.received &&
            !c.connect_timed_out) {
            *retry = true;
            goto out;
        }
        failure(&c, l->conn, q->host, q->port, q->connect_ms, q->total_ms, q->max, err);
        goto out;
    }
    *out = c.r;
    memset(&c.r, 0, sizeof c.r);
    *keep = c.delimited;
    rc = 0;
out:
    if (watch)
        evbuffer_remove_cb_entry(input, watch);
    if (connect_timer)
        event_free(connect_timer);
    if (deadline)
        event_free(deadline);
    if (req)
        evhttp_request_free(req);
    http_response_free(&c.r);
    return rc;
}

int http_plain_perform(const http_options *o, const char *url, bool post, const uint8_t *body, size_t len,
                       const char *content_type, http_response *out, util_error *err)
{
    int rc = -1;
    struct evhttp_uri *u = NULL;
    plain_link *l = NULL;
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
    if (asprintf(&target, "%s%s%s", path, query ? "?" : "", query ? query : "") < 0) {
        target = NULL;
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    snprintf(hostport, sizeof hostport, port == 80 ? "%s" : "%s:%d", host, port);
    plain_request q = {
        .host = host,
        .port = port,
        .hostport = hostport,
        .target = target,
        .post = post,
        .body = body,
        .len = len,
        .ctype = ctype,
        .ua = ua,
        .connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : PLAIN_DEFAULT_CONNECT_MS,
        .total_ms = o->total_timeout_ms > 0 ? o->total_timeout_ms : PLAIN_DEFAULT_TOTAL_MS,
        .max = o->max_response ? o->max_response : PLAIN_DEFAULT_MAX,
    };
    long long start = now_ms();
    bool keep = false, retry = false;
    if ((l = link_take(host, port)) && link_dead(l)) {
        link_free(l);
        l = NULL;
    }
    if (!l && !(l = link_new(host, port))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", host);
        goto out;
    }
    rc = send_request(l, &q, q.total_ms, out, &keep, &retry, err);
    if (retry) { /* once, on a new connection, in what is left of the total */
        link_free(l);
        if (!(l = link_new(host, port))) {
            util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", host);
            goto out;
        }
        long left = q.total_ms - (long)(now_ms() - start);
        rc = send_request(l, &q, left > 0 ? left : 1, out, &keep, &retry, err);
    }
    if (keep) {
        link_keep(l);
        l = NULL;
    }
out:
    link_free(l); /* after an error, a cut or oversized reply, an interim one */
    if (u)
        evhttp_uri_free(u);
    free(target);
    return rc;
}
