/* The network edge: connection limits, deadlines and accept back-off in
 * front of evhttp (see edge.h for what and why). */
#include "edge/edge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "util/log.h"

#define EDGE_MAX_HTTP 4
#define EDGE_MAX_LISTENERS 4
#define LOG_INTERVAL_S 10
#define IDLE_TICK_S 86400
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

enum conn_state {
    CONN_ATTACHING, /* accepted; evhttp has not been looked at yet */
    CONN_HANDSHAKE, /* TLS handshake under way */
    CONN_REQUEST,   /* waiting for a complete request */
    CONN_BUSY,      /* a request is being answered */
};

enum pause_reason { PAUSE_FULL = 1, PAUSE_ERROR = 2 };

typedef struct edge_conn edge_conn;
typedef struct edge_http edge_http;

struct edge_conn {
    edge *e;
    edge_http *h;
    struct bufferevent *bev;
    struct evhttp_connection *evcon;
    SSL *ssl;
    struct event *deadline;
    enum conn_state state;
    bool refuse;
    char addr[INET6_ADDRSTRLEN];
    void (*user_closecb)(struct evhttp_connection *, void *);
    void *user_arg;
    edge_conn *prev, *next; /* in accept order: the head is the oldest */
};

struct edge_http {
    edge *e;
    struct evhttp *http;
    edge_ssl_fn ssl_fn;
    void *ssl_arg;
    struct evconnlistener *listeners[EDGE_MAX_LISTENERS];
    size_t listener_count;
};

/* What happened since the last log line. */
typedef struct edge_window {
    unsigned long refused, evicted, timed_out, accept_errors;
    int last_errno;
    char last_addr[INET6_ADDRSTRLEN];
} edge_window;

struct edge {
    struct event_base *base;
    edge_config cfg;
    edge_http https[EDGE_MAX_HTTP];
    size_t http_count;
    edge_conn *head, *tail;
    unsigned open;
    struct event *attach; /* runs right after evhttp's accept callback */
    struct event *resume; /* ends an accept-error pause */
    struct event *tick;   /* flushes the log window; always pending */
    bool window_armed;    /* the tick is due LOG_INTERVAL_S after a window's first event */
    unsigned paused;      /* enum pause_reason bits */
    unsigned backoff_ms;
    edge_stats stats;
    edge_window window;
};

/* The summary of a window is due LOG_INTERVAL_S after its first event.
 * Otherwise the tick waits a day: it stays pending (find_edge looks for it)
 * without waking an idle daemon every few seconds. */
static void window_arm(edge *e, bool event)
{
    struct timeval tv = {event ? LOG_INTERVAL_S : IDLE_TICK_S, 0};
    if (event && e->window_armed)
        return;
    e->window_armed = event;
    evtimer_add(e->tick, &tv);
}

static void conn_arm(edge_conn *c, unsigned seconds)
{
    struct timeval tv = {(time_t)seconds, 0};
    event_add(c->deadline, &tv);
}

static void listeners_set(edge *e, bool enable)
{
    for (size_t i = 0; i < e->http_count; i++)
        for (size_t j = 0; j < e->https[i].listener_count; j++) {
            if (enable)
                evconnlistener_enable(e->https[i].listeners[j]);
            else
                evconnlistener_disable(e->https[i].listeners[j]);
        }
}

static void pause_set(edge *e, unsigned reason, bool on)
{
    unsigned before = e->paused;
    e->paused = on ? e->paused | reason : e->paused & ~reason;
    if (!before != !e->paused)
        listeners_set(e, e->paused == 0);
}

static void conn_unlink(edge_conn *c)
{
    edge *e = c->e;
    if (c->prev)
        c->prev->next = c->next;
    else
        e->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        e->tail = c->prev;
    c->prev = c->next = NULL;
}

static void conn_release(edge_conn *c)
{
    edge *e = c->e;
    conn_unlink(c);
    if (c->deadline)
        event_free(c->deadline);
    if (c->ssl) {
        SSL_set_info_callback(c->ssl, NULL);
        SSL_set_app_data(c->ssl, NULL);
    }
    free(c);
    e->open--;
    e->stats.open = e->open;
    if (e->open < e->stats.max_connections)
        pause_set(e, PAUSE_FULL, false);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    edge_conn *c = arg;
    if (c->user_closecb)
        c->user_closecb(evcon, c->user_arg);
    conn_release(c);
}

/* Closes a connection that evhttp knows; its close callback releases it. */
static void conn_close(edge_conn *c)
{
    if (c->evcon)
        evhttp_connection_free(c->evcon);
}

/* The oldest connection without a complete request: the one a new client
 * may take the place of. */
static edge_conn *oldest_waiting(edge *e)
{
    for (edge_conn *c = e->head; c; c = c->next)
        if (c->evcon && (c->state == CONN_HANDSHAKE || c->state == CONN_REQUEST))
            return c;
    return NULL;
}

static bool evict_one(edge *e)
{
    edge_conn *c = oldest_waiting(e);
    if (!c)
        return false;
    e->stats.evicted++;
    e->window.evicted++;
    window_arm(e, true);
    conn_close(c);
    return true;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    edge_conn *c = arg;
    if (c->state != CONN_HANDSHAKE && c->state != CONN_REQUEST)
        return;
    c->e->stats.timed_out++;
    c->e->window.timed_out++;
    window_arm(c->e, true);
    conn_close(c);
}

static void on_ssl_info(const SSL *ssl, int where, int ret)
{
    (void)ret;
    edge_conn *c = SSL_get_app_data(ssl);
    if (!c || !(where & SSL_CB_HANDSHAKE_DONE) || c->state != CONN_HANDSHAKE)
        return;
    c->state = CONN_REQUEST;
    conn_arm(c, c->e->cfg.request_timeout_s);
}

static unsigned count_address(const edge *e, const char *addr)
{
    unsigned n = 0;
    for (const edge_conn *c = e->head; c; c = c->next)
        if (c->state != CONN_ATTACHING && !strcmp(c->addr, addr))
            n++;
    return n;
}

static void peer_address(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    snprintf(out, len, "?");
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)len);
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)len);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)len);
    }
}

/* evhttp has set up every connection accepted since the last run: find
 * its evhttp_connection (the bufferevent's callback argument), take the
 * close callback, and apply the per-address limit. */
static void on_attach(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    edge *e = arg;
    edge_conn *next = NULL;
    for (edge_conn *c = e->head; c; c = next) {
        next = c->next;
        if (c->state != CONN_ATTACHING)
            continue;
        void *cbarg = NULL;
        bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
        c->evcon = cbarg;
        if (!c->evcon) { /* evhttp gave up on it already */
            conn_release(c);
            continue;
        }
        evhttp_connection_set_closecb(c->evcon, on_close, c);
        peer_address(bufferevent_getfd(c->bev), c->addr, sizeof c->addr);
        if (!c->refuse && count_address(e, c->addr) >= e->cfg.max_per_address) {
            e->stats.refused_per_address++;
            e->window.refused++;
            window_arm(e, true);
            snprintf(e->window.last_addr, sizeof e->window.last_addr, "%s", c->addr);
            c->refuse = true;
        }
        c->state = c->ssl ? CONN_HANDSHAKE : CONN_REQUEST;
        if (c->refuse) {
            conn_close(c);
            continue;
        }
        conn_arm(c, c->ssl ? e->cfg.handshake_timeout_s : e->cfg.request_timeout_s);
    }
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
    edge_http *h = arg;
    edge *e = h->e;
    edge_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = NULL;
    if (!c)
        return NULL; /* evhttp makes a plain one; it is not counted */
    *c = (edge_conn){.e = e, .h = h, .state = CONN_ATTACHING};
    c->deadline = event_new(base, -1, 0, on_deadline, c);
    SSL *ssl = h->ssl_fn ? h->ssl_fn(h->ssl_arg) : NULL;
    if (ssl) {
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
        if (bev) {
            c->ssl = ssl;
            SSL_set_app_data(ssl, c);
            SSL_set_info_callback(ssl, on_ssl_info);
        } else {
            SSL_free(ssl);
        }
    }
    if (!bev) /* plain, or refused below when TLS was wanted */
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev || !c->deadline) {
        if (c->deadline)
            event_free(c->deadline);
        free(c);
        return bev;
    }
    c->refuse = h->ssl_fn && !c->ssl;
    c->bev = bev;
    c->prev = e->tail;
    if (e->tail)
        e->tail->next = c;
    else
        e->head = c;
    e->tail = c;
    e->open++;
    e->stats.open = e->open;
    e->backoff_ms = 0;
    event_active(e->attach, 0, 0);
    if (e->open >= e->stats.max_connections && !evict_one(e))
        pause_set(e, PAUSE_FULL, true);
    return bev;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pause_set(arg, PAUSE_ERROR, false);
}

/* Finds the edge of a listener: the error callback's argument is evhttp's,
 * so the edge is found through its always-pending tick event. */
static int find_edge(const struct event_base *base, const struct event *ev, void *arg);

static void on_tick(evutil_socket_t fd, short what, void *arg);

static int find_edge(const struct event_base *base, const struct event *ev, void *arg)
{
    (void)base;
    if (event_get_callback(ev) != on_tick)
        return 0;
    *(edge **)arg = event_get_callback_arg(ev);
    return 1;
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    edge *e = NULL;
    event_base_foreach_event(evconnlistener_get_base(listener), find_edge, &e);
    if (!e) {
        evconnlistener_disable(listener);
        return;
    }
    e->stats.accept_errors++;
    e->window.accept_errors++;
    window_arm(e, true);
    e->window.last_errno = err;
    /* a descriptor held by the slowest client is worth more to a new one */
    evict_one(e);
    e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (e->backoff_ms > BACKOFF_MAX_MS)
        e->backoff_ms = BACKOFF_MAX_MS;
    pause_set(e, PAUSE_ERROR, true);
    struct timeval tv = {e->backoff_ms / 1000, (suseconds_t)(e->backoff_ms % 1000) * 1000};
    event_add(e->resume, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    edge *e = arg;
    edge_window *w = &e->window;
    window_arm(e, false);
    if (!w->refused && !w->evicted && !w->timed_out && !w->accept_errors)
        return;
    log_warn("connections in the last %d s: %lu refused over the per-address limit (last from %s), "
             "%lu closed for a new client at the limit of %u, %lu closed at their deadline, "
             "%lu accept error(s)%s%s; %u open",
             LOG_INTERVAL_S, w->refused, w->last_addr[0] ? w->last_addr : "-", w->evicted,
             e->stats.max_connections, w->timed_out, w->accept_errors, w->accept_errors ? ": " : "",
             w->accept_errors ? strerror(w->last_errno) : "", e->open);
    memset(w, 0, sizeof *w);
}

unsigned long edge_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}

edge *edge_new(struct event_base *base, const edge_config *cfg)
{
    edge *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->base = base;
    e->cfg = cfg ? *cfg : (edge_config){0};
    if (!e->cfg.max_connections)
        e->cfg.max_connections = EDGE_DEFAULT_MAX_CONNECTIONS;
    if (!e->cfg.max_per_address)
        e->cfg.max_per_address = EDGE_DEFAULT_MAX_PER_ADDRESS;
    if (!e->cfg.request_timeout_s)
        e->cfg.request_timeout_s = EDGE_DEFAULT_REQUEST_TIMEOUT_S;
    if (!e->cfg.handshake_timeout_s)
        e->cfg.handshake_timeout_s = EDGE_DEFAULT_HANDSHAKE_TIMEOUT_S;
    /* every connection is a descriptor: stay below the limit */
    struct rlimit rl;
    unsigned max = e->cfg.max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        rlim_t room = rl.rlim_cur > 2 * EDGE_RESERVED_FDS ? rl.rlim_cur - EDGE_RESERVED_FDS : rl.rlim_cur / 2;
        if (room < max) {
            log_info("at most %u connections (open-file limit %lu), not %u", (unsigned)room,
                     (unsigned long)rl.rlim_cur, max);
            max = (unsigned)room;
        }
    }
    e->stats.max_connections = max ? max : 1;
    e->attach = event_new(base, -1, 0, on_attach, e);
    e->resume = event_new(base, -1, 0, on_resume, e);
    e->tick = event_new(base, -1, 0, on_tick, e);
    if (e->tick)
        window_arm(e, false);
    if (!e->attach || !e->resume || !e->tick) {
        edge_free(e);
        return NULL;
    }
    return e;
}

void edge_free(edge *e)
{
    if (!e)
        return;
    while (e->head) /* only when evhttp was not freed first */
        conn_release(e->head);
    if (e->attach)
        event_free(e->attach);
    if (e->resume)
        event_free(e->resume);
    if (e->tick)
        event_free(e->tick);
    free(e);
}

int edge_add_http(edge *e, struct evhttp *http, edge_ssl_fn ssl_fn, void *ssl_arg)
{
    if (e->http_count >= EDGE_MAX_HTTP)
        return -1;
    edge_http *h = &e->https[e->http_count++];
    *h = (edge_http){.e = e, .http = http, .ssl_fn = ssl_fn, .ssl_arg = ssl_arg};
    evhttp_set_bevcb(http, on_new_connection, h);
    return 0;
}

int edge_bind(edge *e, struct evhttp *http, const char *host, unsigned port, struct evhttp_bound_socket **out,
              util_error *err)
{
    edge_http *h = NULL;
    for (size_t i = 0; i < e->http_count; i++)
        if (e->https[i].http == http)
            h = &e->https[i];
    if (!h || h->listener_count >= EDGE_MAX_LISTENERS || port > 65535)
        return util_error_set(err, UTIL_ERR_INTERNAL, "listener for %s:%u", host, port);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!sock)
        return util_error_set(err, UTIL_ERR_CONFIG, "cannot listen on %s port %u: %s", host, port,
                              strerror(errno));
    struct evconnlistener *l = evhttp_bound_socket_get_listener(sock);
    evconnlistener_set_error_cb(l, on_accept_error);
    h->listeners[h->listener_count++] = l;
    if (e->paused)
        evconnlistener_disable(l);
    if (out)
        *out = sock;
    return 0;
}

static edge_conn *find_conn(edge *e, const struct evhttp_connection *evcon)
{
    for (edge_conn *c = e->head; c && evcon; c = c->next)
        if (c->evcon == evcon)
            return c;
    return NULL;
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    edge_conn *c = find_conn(arg, evhttp_request_get_connection(req));
    if (!c || c->state != CONN_BUSY)
        return;
    c->state = CONN_REQUEST;
    conn_arm(c, c->e->cfg.request_timeout_s);
}

void edge_request_begin(edge *e, struct evhttp_request *req)
{
    edge_conn *c = e ? find_conn(e, evhttp_request_get_connection(req)) : NULL;
    if (!c)
        return;
    c->state = CONN_BUSY;
    event_del(c->deadline);
    evhttp_request_set_on_complete_cb(req, on_complete, e);
}

void edge_set_closecb(edge *e, struct evhttp_connection *evcon,
                      void (*cb)(struct evhttp_connection *, void *), void *arg)
{
    edge_conn *c = e ? find_conn(e, evcon) : NULL;
    if (!c) {
        evhttp_connection_set_closecb(evcon, cb, arg);
        return;
    }
    c->user_closecb = cb;
    c->user_arg = arg;
}

void edge_get_stats(const edge *e, edge_stats *out)
{
    *out = e->stats;
}
