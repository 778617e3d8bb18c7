/*
 * Asynchronous HTTP: curl's multi interface driven by a libevent event_base.
 * curl tells us which sockets to watch (on_socket) and when to wake it
 * (on_timer_set); libevent events call curl_multi_socket_action, and
 * finished transfers are handed to their callbacks (check_done).
 */
#include "http/http.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "util/list.h"

typedef struct http_req {
    http_client *c;
    http_xfer *x; /* NULL when forwarded */
    uint32_t id;  /* forwarded: the transfer's number */
    http_done_cb cb;
    void *arg;
    struct http_req *prev, *next;
} http_req;

/* One socket curl asked us to watch (curl_multi_assign'd to it). */
typedef struct http_sock {
    struct event *ev;
    struct http_sock *prev, *next;
} http_sock;

struct http_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    http_req *reqs;
    http_sock *socks;
    int dispatching; /* inside check_done (callbacks may free the client) */
    bool doomed;     /* http_client_free was called while dispatching */
    /* forwarding: another process performs the transfers */
    http_forward_fn forward;
    http_forward_cancel_fn forward_cancel;
    void *forward_arg;
    uint32_t next_id;
};

static void check_done(http_client *c);
static void client_destroy(http_client *c);

/* ---- libevent -> curl --------------------------------------------------- */

static void on_event(evutil_socket_t fd, short kind, void *arg)
{
    http_client *c = arg;
    int running = 0;
    int action = (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(c->multi, fd, action, &running);
    check_done(c);
}

static void on_timeout(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    http_client *c = arg;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

/* ---- curl -> libevent --------------------------------------------------- */

static void sock_free(http_client *c, http_sock *s)
{
    if (!s)
        return;
    UTIL_UNLINK(c->socks, s);
    if (s->ev)
        event_free(s->ev);
    free(s);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    http_client *c = userp;
    http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        sock_free(c, s);
        return 0;
    }
    short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return -1;
        UTIL_LINK(c->socks, s);
        if (!(s->ev = event_new(c->base, fd, kind, on_event, c)) ||
            curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
            sock_free(c, s);
            return -1;
        }
    } else {
        event_del(s->ev);
        if (event_assign(s->ev, c->base, fd, kind, on_event, c) < 0)
            return -1;
    }
    return event_add(s->ev, NULL) < 0 ? -1 : 0;
}

/* curl wants to be called again in ms milliseconds (-1: no timeout). */
static int on_timer_set(CURLM *multi, long ms, void *userp)
{
    (void)multi;
    http_client *c = userp;
    if (ms < 0)
        return evtimer_del(c->timer) < 0 ? -1 : 0;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return evtimer_add(c->timer, &tv) < 0 ? -1 : 0;
}

/* ---- requests ----------------------------------------------------------- */

static void req_free(http_req *r)
{
    if (!r)
        return;
    http_xfer_free(r->x);
    free(r);
}

/* The response lives until the callback returns; then it is freed. */
static void complete(http_req *r, CURLcode result)
{
    http_response resp = {0};
    util_error err = {0};
    if (http_xfer_finish(r->x, result, &resp, &err) == 0)
        r->cb(r->arg, 0, &resp, NULL);
    else
        r->cb(r->arg, -1, NULL, &err);
    http_response_free(&resp);
}

static void check_done(http_client *c)
{
    CURLMsg *m;
    int left;
    c->dispatching++;
    while (!c->doomed && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode result = m->data.result; /* m is gone after remove_handle */
        if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
            continue;
        http_req *r = (http_req *)(void *)priv;
        UTIL_UNLINK(c->reqs, r);
        curl_multi_remove_handle(c->multi, r->x->easy);
        complete(r, result);
        req_free(r);
    }
    c->dispatching--;
    if (c->doomed && c->dispatching == 0)
        client_destroy(c);
}

static int submit(http_client *c, const http_options *o, const char *url, bool post, const uint8_t *body,
                  size_t len, const char *ctype, http_done_cb cb, void *arg, util_error *err)
{
    int rc = -1;
    http_req *r = NULL;
    if (!c || c->doomed || !cb)
        return util_error_set(err, UTIL_ERR_USAGE, "no HTTP client or callback");
    if (!(r = calloc(1, sizeof *r))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (c->forward) {
        r->id = ++c->next_id ? c->next_id : ++c->next_id;
        if (c->forward(c->forward_arg, r->id, post, o, url, body, len, ctype, err) != 0)
            goto out;
        r->c = c;
        r->cb = cb;
        r->arg = arg;
        UTIL_LINK(c->reqs, r);
        return 0;
    }
    if (http_xfer_new(o, url, post, body, len, ctype, &r->x, err) < 0)
        goto out;
    if (curl_easy_setopt(r->x->easy, CURLOPT_PRIVATE, (char *)r) != CURLE_OK ||
        curl_multi_add_handle(c->multi, r->x->easy) != CURLM_OK) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: curl refused the transfer", r->x->host);
        goto out;
    }
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    UTIL_LINK(c->reqs, r);
    r = NULL;
    rc = 0;
out:
    req_free(r);
    return rc;
}

/* ---- client ------------------------------------------------------------- */

http_client *http_client_new(struct event_base *base)
{
    http_client *c = NULL;
    if (!base || !(c = calloc(1, sizeof *c)))
        return NULL;
    c->base = base;
    if (!(c->multi = curl_multi_init()) || !(c->timer = evtimer_new(base, on_timeout, c)) ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_set) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
        client_destroy(c);
        return NULL;
    }
    return c;
}

static void client_destroy(http_client *c)
{
    while (c->reqs) {
        http_req *r = c->reqs;
        UTIL_UNLINK(c->reqs, r);
        if (r->x)
            curl_multi_remove_handle(c->multi, r->x->easy);
        else if (c->forward_cancel)
            c->forward_cancel(c->forward_arg, r->id);
        req_free(r);
    }
    if (c->multi)
        curl_multi_cleanup(c->multi); /* may still report sockets removed */
    while (c->socks)
        sock_free(c, c->socks);
    if (c->timer)
        event_free(c->timer);
    free(c);
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    if (c->dispatching) { /* from a callback: check_done finishes the job */
        c->doomed = true;
        return;
    }
    client_destroy(c);
}

int http_client_get(http_client *c, const http_options *o, const char *url, http_done_cb cb, void *arg,
                    util_error *err)
{
    return submit(c, o, url, false, NULL, 0, NULL, cb, arg, err);
}

int http_client_post(http_client *c, const http_options *o, const char *url, const uint8_t *body, size_t len,
                     const char *content_type, http_done_cb cb, void *arg, util_error *err)
{
    return submit(c, o, url, true, body, len, content_type, cb, arg, err);
}

/* ---- forwarding --------------------------------------------------------- */

http_client *http_client_new_forward(struct event_base *base, http_forward_fn forward,
                                     http_forward_cancel_fn cancel, void *arg)
{
    http_client *c = NULL;
    if (!base || !forward || !(c = calloc(1, sizeof *c)))
        return NULL;
    c->base = base;
    c->forward = forward;
    c->forward_cancel = cancel;
    c->forward_arg = arg;
    return c;
}

void http_client_deliver(http_client *c, uint32_t id, int rc, http_response *resp, const util_error *err)
{
    http_req *r = c->reqs;
    while (r && r->id != id)
        r = r->next;
    if (!r)
        return; /* cancelled in the meantime */
    UTIL_UNLINK(c->reqs, r);
    c->dispatching++;
    r->cb(r->arg, rc, rc == 0 ? resp : NULL, rc == 0 ? NULL : err);
    req_free(r);
    c->dispatching--;
    if (c->doomed && c->dispatching == 0)
        client_destroy(c);
}
