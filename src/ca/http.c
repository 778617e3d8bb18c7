/* The evhttp adapter: turns evhttp requests into ca_handle calls, and
 * applies the faults that act on the connection (delay, drop, reset,
 * truncate, slow-drip) by writing to a duplicate of the socket. evhttp keeps
 * its connection until the fault is done: freeing it shuts the socket down
 * (drop, and the end of truncate), so it is freed last. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ca/internal.h"
#include "ca/pool.h"
#include "edge/edge.h"
#include "util/log.h"

#define HTTP_MAX_BODY (1024 * 1024)
#define HTTP_MAX_HEADERS (512 * 1024) /* room for --max-query-string */
#define HTTP_TIMEOUT_S 60
#define RAW_MAX 256       /* connections under a fault at once */
#define DRIP_MAX_MS 30000 /* a slow drip never lasts longer */

#define DEFAULT_THREADS 4

typedef struct raw_conn raw_conn;
typedef struct http_job http_job;

typedef struct http_ctx {
    ca_server *srv;
    struct event_base *base;
    edge *edge;
    ca_pool *pool;
    http_job *jobs; /* handed to the pool, not yet answered */
    raw_conn *raw[RAW_MAX];
} http_ctx;

/* A request on its way through a worker; ca_job comes first. */
struct http_job {
    ca_job job;
    http_ctx *ctx;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    bool dead; /* evhttp dropped the connection meanwhile */
    http_job *prev, *next;
    char *path, *query, *authorization;
    uint8_t *body;
    char peer[80];
};

/* A connection taken over from evhttp to misbehave on. */
struct raw_conn {
    http_ctx *ctx;
    size_t slot;
    struct evhttp_connection *evcon; /* until released */
    int fd;                          /* our duplicate */
    struct bufferevent *bev;
    struct event *timer;
    uint8_t *data; /* the whole response */
    size_t len, pos, limit;
    unsigned faults;
    long delay_ms, drip_ms;
    size_t drip_step;
    bool started;
};

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static void raw_free(raw_conn *r)
{
    if (!r)
        return;
    if (r->timer)
        event_free(r->timer);
    if (r->bev)
        bufferevent_free(r->bev); /* closes fd */
    else if (r->fd >= 0)
        close(r->fd);
    if (r->evcon) {
        edge_set_closecb(r->ctx->edge, r->evcon, NULL, NULL);
        evhttp_connection_free(r->evcon);
    }
    r->ctx->raw[r->slot] = NULL;
    free(r->data);
    free(r);
}

/* A real RST: the socket must be closed with SO_LINGER 0 before evhttp
 * shuts it down (which would send a FIN first). evhttp's bufferevent gives
 * up the descriptor, both descriptors close, and evhttp is freed after. */
static void raw_reset(raw_conn *r)
{
    struct linger lg = {1, 0};
    struct bufferevent *ev_bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;
    int orig = ev_bev ? bufferevent_getfd(ev_bev) : -1;
    if (ev_bev && orig >= 0) {
        bufferevent_disable(ev_bev, EV_READ | EV_WRITE);
        bufferevent_setfd(ev_bev, -1);
        (void)setsockopt(orig, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(orig);
    }
    if (r->fd >= 0) {
        (void)setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(r->fd);
        r->fd = -1;
    }
    raw_free(r);
}

static void raw_on_write(struct bufferevent *bev, void *arg)
{
    raw_conn *r = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0 || r->pos < r->limit)
        return;
    if (r->faults & CA_CONN_TRUNCATE)
        (void)shutdown(r->fd, SHUT_WR);
    raw_free(r);
}

static void raw_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what; /* the peer went away or errored: nothing more to do */
    raw_free(arg);
}

static void raw_tick(evutil_socket_t fd, short what, void *arg);

static int raw_start_writing(raw_conn *r)
{
    r->bev = bufferevent_socket_new(r->ctx->base, r->fd, BEV_OPT_CLOSE_ON_FREE);
    if (!r->bev)
        return -1;
    bufferevent_setcb(r->bev, NULL, raw_on_write, raw_on_event, r);
    bufferevent_enable(r->bev, EV_WRITE);
    if (r->faults & CA_CONN_SLOW_DRIP) {
        int one = 1; /* one byte a segment, not what Nagle would gather */
        (void)setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        size_t ms = r->drip_ms > 0 ? (size_t)r->drip_ms : 1;
        r->drip_step = r->limit * ms / DRIP_MAX_MS + 1; /* bounded total time */
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        r->timer = event_new(r->ctx->base, -1, EV_PERSIST, raw_tick, r);
        return r->timer ? event_add(r->timer, &tv) : -1;
    }
    if (bufferevent_write(r->bev, r->data, r->limit) != 0)
        return -1;
    r->pos = r->limit;
    return 0;
}

static void raw_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    raw_conn *r = arg;
    if (!r->started) {
        /* the delay has passed: do what the faults say */
        r->started = true;
        if (r->timer) {
            event_free(r->timer);
            r->timer = NULL;
        }
        if (r->faults & CA_CONN_DROP) {
            raw_free(r);
        } else if (r->faults & CA_CONN_RESET) {
            raw_reset(r);
        } else if (raw_start_writing(r) != 0) {
            raw_free(r);
        }
        return;
    }
    size_t n = r->limit - r->pos < r->drip_step ? r->limit - r->pos : r->drip_step;
    if (n == 0 || bufferevent_write(r->bev, r->data + r->pos, n) != 0) {
        event_del(r->timer);
        raw_on_write(r->bev, r);
        return;
    }
    r->pos += n;
}

static void raw_on_evcon_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    raw_conn *r = arg;
    r->evcon = NULL;
}

static int raw_serialize(raw_conn *r, const ca_http_response *resp)
{
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n",
                     resp->status, reason(resp->status), resp->body_len);
    if (resp->content_type)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\n", resp->content_type);
    for (size_t i = 0; i < resp->header_count && (size_t)n < sizeof head; i++)
        n += snprintf(head + n, sizeof head - (size_t)n, "%s: %s\r\n", resp->header_names[i],
                      resp->header_values[i]);
    if ((size_t)n + 3 > sizeof head)
        return -1;
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    r->len = (size_t)n + resp->body_len;
    if (!(r->data = malloc(r->len)))
        return -1;
    memcpy(r->data, head, (size_t)n);
    if (resp->body_len)
        memcpy(r->data + n, resp->body, resp->body_len);
    /* truncate: the headers promise the whole body, half of it comes */
    r->limit = r->faults & CA_CONN_TRUNCATE ? (size_t)n + resp->body_len / 2 : r->len;
    return 0;
}

static bool send_raw(http_ctx *ctx, struct evhttp_request *req, const ca_http_response *resp)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    size_t slot = 0;
    while (slot < RAW_MAX && ctx->raw[slot])
        slot++;
    if (!bev || slot == RAW_MAX)
        return false;
    raw_conn *r = calloc(1, sizeof *r);
    if (!r)
        return false;
    *r = (raw_conn){.ctx = ctx,
                    .slot = slot,
                    .evcon = evcon,
                    .fd = -1,
                    .faults = resp->conn_faults,
                    .delay_ms = resp->delay_ms,
                    .drip_ms = resp->drip_ms};
    ctx->raw[slot] = r;
    r->fd = dup(bufferevent_getfd(bev));
    long ms = r->delay_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    r->timer = event_new(ctx->base, -1, 0, raw_tick, r);
    if (r->fd < 0 || raw_serialize(r, resp) != 0 || !r->timer || event_add(r->timer, &tv) != 0) {
        r->evcon = NULL; /* evhttp still owns it: it answers normally */
        raw_free(r);
        return false;
    }
    edge_set_closecb(ctx->edge, evcon, raw_on_evcon_close, r);
    return true;
}

static void send_normal(struct evhttp_request *req, const ca_http_response *resp)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    if (resp->content_type)
        evhttp_add_header(h, "Content-Type", resp->content_type);
    for (size_t i = 0; i < resp->header_count; i++)
        evhttp_add_header(h, resp->header_names[i], resp->header_values[i]);
    if (body && resp->body_len)
        evbuffer_add(body, resp->body, resp->body_len);
    evhttp_send_reply(req, resp->status, reason(resp->status), body);
    if (body)
        evbuffer_free(body);
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "OTHER";
    }
}

static void respond(http_ctx *ctx, struct evhttp_request *req, ca_http_response *resp)
{
    if (resp->status == 0)
        ca_response_text(resp, 500, "internal error\n");
    if (!(resp->conn_faults || resp->delay_ms > 0) || !send_raw(ctx, req, resp))
        send_normal(req, resp);
}

static void job_free(http_job *j)
{
    if (!j)
        return;
    http_ctx *ctx = j->ctx;
    if (j->prev)
        j->prev->next = j->next;
    else if (ctx->jobs == j)
        ctx->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    ca_http_response_clear(&j->job.resp);
    free(j->path);
    free(j->query);
    free(j->authorization);
    free(j->body);
    free(j);
}

static void job_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    http_job *j = arg;
    j->dead = true;
}

/* Back on the loop thread with the worker's response. */
static void job_done(ca_job *job)
{
    http_job *j = (http_job *)job;
    if (!j->dead) {
        log_debug("%s: answered by worker %u", j->peer, job->worker);
        edge_set_closecb(j->ctx->edge, j->evcon, NULL, NULL);
        respond(j->ctx, j->req, &j->job.resp);
    }
    job_free(j);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static http_job *job_new(http_ctx *ctx, struct evhttp_request *req, const ca_http_request *r)
{
    http_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->ctx = ctx;
    j->req = req;
    j->evcon = evhttp_request_get_connection(req);
    j->path = strdup(r->path);
    j->query = dup_or_null(r->query);
    j->authorization = dup_or_null(r->authorization);
    j->body = r->body_len ? malloc(r->body_len) : NULL;
    snprintf(j->peer, sizeof j->peer, "%s", r->peer);
    if (!j->path || (r->query && !j->query) || (r->authorization && !j->authorization) ||
        (r->body_len && !j->body)) {
        job_free(j);
        return NULL;
    }
    if (r->body_len)
        memcpy(j->body, r->body, r->body_len);
    j->job.req =
        (ca_http_request){r->method, j->path, j->query, j->body, r->body_len, j->authorization, j->peer};
    j->job.now = time(NULL);
    j->job.done = job_done;
    j->next = ctx->jobs;
    if (ctx->jobs)
        ctx->jobs->prev = j;
    ctx->jobs = j;
    return j;
}

/* A request that signs and stores goes to a worker, so that the loop stays
 * free for the other connections. With no other connection open and no job
 * in flight (ctx->jobs holds every job from its submit until its reply is
 * back on the loop, so no worker touches the store) nobody would be kept
 * waiting, and the loop thread answers it itself: handing it over costs two
 * thread switches, a futex and the eventfd write that brings the reply
 * back. */
static bool run_on_loop(const http_ctx *ctx)
{
    edge_stats st;
    edge_get_stats(ctx->edge, &st);
    return st.open <= 1 && !ctx->jobs;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    http_ctx *ctx = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    edge_request_begin(ctx->edge, req);
    char peer[80] = "?";
    char *host = NULL;
    ev_uint16_t port = 0;
    if (evcon) {
        evhttp_connection_get_peer(evcon, &host, &port);
        snprintf(peer, sizeof peer, "%s:%u", host ? host : "?", (unsigned)port);
    }
    size_t body_len = in ? evbuffer_get_length(in) : 0;
    ca_http_request r = {
        .method = method_name(evhttp_request_get_command(req)),
        .path = uri && evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/",
        .query = uri ? evhttp_uri_get_query(uri) : NULL,
        .body = body_len ? evbuffer_pullup(in, -1) : NULL,
        .body_len = body_len,
        .authorization = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"),
        .peer = peer,
    };
    ca_http_response resp;
    bool heavy = ctx->pool && evcon && !ca_request_is_light(&r);
    if (heavy && !run_on_loop(ctx)) {
        http_job *j = job_new(ctx, req, &r);
        if (j && ca_pool_submit(ctx->pool, &j->job)) {
            edge_set_closecb(ctx->edge, evcon, job_conn_closed, j);
            return;
        }
        job_free(j);
        log_warn("%s: all workers busy, answering 503", peer);
        memset(&resp, 0, sizeof resp);
        ca_response_text(&resp, 503, "scepca is busy; retry later.\n");
    } else {
        ca_handle(ctx->srv, &r, time(NULL), &resp);
        if (heavy)
            log_debug("%s: answered on the event loop (no other connection, no job in flight)", peer);
    }
    respond(ctx, req, &resp);
    ca_http_response_clear(&resp);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("signal %d: shutting down", (int)sig);
    event_base_loopexit(arg, NULL);
}

/* "HOST:PORT" or "[V6]:PORT" */
static int split_listen(const char *listen, char *host, size_t hlen, ev_uint16_t *port, util_error *err)
{
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t n = colon ? (size_t)(colon - listen) : 0;
    if (!colon || n == 0)
        return util_error_set(err, UTIL_ERR_USAGE, "--listen %s: give HOST:PORT", listen);
    if (h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (n == 0 || n >= hlen || !end || *end || p < 0 || p > 65535)
        return util_error_set(err, UTIL_ERR_USAGE, "--listen %s: give HOST:PORT", listen);
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (ev_uint16_t)p;
    return 0;
}

static void print_bound(struct evhttp_bound_socket *sock, const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    unsigned port = 0;
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) == 0)
        port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    bool v6 = strchr(host, ':') != NULL;
    printf("listening on http://%s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
    fflush(stdout);
}

/* epoll's changes go in a list applied once per loop pass: a request's
 * read-off, write-on, write-off and read-on on one socket become one
 * epoll_ctl or none (16 calls per enrollment before, see docs/benchmarks.md).
 * The list must not see two descriptors that share one file (dup()); scepca
 * never dups a socket. */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* After the loop: the workers stop, then what they left unanswered goes. */
static void free_pending(http_ctx *ctx)
{
    ca_pool_stop(ctx->pool);
    ctx->pool = NULL;
    size_t bound = CA_POOL_MAX_QUEUE + CA_POOL_MAX_THREADS + 1;
    while (ctx->jobs && bound--) {
        if (!ctx->jobs->dead)
            edge_set_closecb(ctx->edge, ctx->jobs->evcon, NULL, NULL);
        job_free(ctx->jobs);
    }
    for (size_t i = 0; i < RAW_MAX; i++)
        raw_free(ctx->raw[i]);
}

int ca_serve(ca_server *srv, const char *listen, util_error *err)
{
    int rc = -1;
    char host[256];
    ev_uint16_t port = 0;
    http_ctx ctx = {.srv = srv};
    struct evhttp *http = NULL;
    struct event *sigint = NULL, *sigterm = NULL;
    if (split_listen(listen, host, sizeof host, &port, err) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() != 0 || !(ctx.base = new_base()) || !(http = evhttp_new(ctx.base)) ||
        !(ctx.edge = edge_new(ctx.base, NULL)) || edge_add_http(ctx.edge, http, NULL, NULL) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "libevent initialisation failed");
        goto out;
    }
    evhttp_set_default_content_type(http, NULL);
    evhttp_set_max_body_size(http, HTTP_MAX_BODY);
    evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
    evhttp_set_timeout(http, HTTP_TIMEOUT_S);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(http, on_request, &ctx);
    struct evhttp_bound_socket *sock = NULL;
    if (edge_bind(ctx.edge, http, host, port, &sock, err) != 0)
        goto out;
    sigint = evsignal_new(ctx.base, SIGINT, on_signal, ctx.base);
    sigterm = evsignal_new(ctx.base, SIGTERM, on_signal, ctx.base);
    if (!sigint || !sigterm || event_add(sigint, NULL) != 0 || event_add(sigterm, NULL) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "cannot install signal handlers");
        goto out;
    }
    unsigned threads = srv->cfg->threads ? srv->cfg->threads : DEFAULT_THREADS;
    if (threads > 1 && ca_pool_start(srv->cfg, ctx.base, threads, &ctx.pool, err) != 0)
        goto out;
    ca_server_prepare(srv);
    print_bound(sock, host);
    if (event_base_dispatch(ctx.base) < 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "the event loop failed");
        goto out;
    }
    rc = 0;
out:
    free_pending(&ctx);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (http)
        evhttp_free(http);
    edge_free(ctx.edge);
    if (ctx.base)
        event_base_free(ctx.base);
    return rc;
}
