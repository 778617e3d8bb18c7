/* The network edge of scepd and scepca: what happens to a connection before
 * evhttp parses a request. libevent 2.1's evhttp accepts by itself and has
 * no connection limits, so the edge hooks in where evhttp allows it: it makes
 * every connection's bufferevent (evhttp_set_bevcb), learns the connection
 * right after the accept, and owns the listeners' pause and resume.
 *
 * - at most max_connections at once, and max_per_address from one address;
 *   when the total is reached, the oldest connection that has not yet sent a
 *   complete request is closed for the new one (so a flood of slow clients
 *   cannot keep a real one out), and the listeners pause when there is none;
 * - absolute deadlines, from the accept (or from the previous response): the
 *   TLS handshake within handshake_timeout_s, a complete request within
 *   request_timeout_s; bytes dripping in do not extend them;
 * - accept errors (EMFILE, ENFILE, ...) pause the listeners with back-off
 *   instead of spinning;
 * - refusals are counted and logged at most once per LOG_INTERVAL. */
#ifndef SCEPD_EDGE_EDGE_H
#define SCEPD_EDGE_EDGE_H

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "util/error.h"

#define EDGE_DEFAULT_MAX_CONNECTIONS 512
#define EDGE_DEFAULT_MAX_PER_ADDRESS 32
#define EDGE_DEFAULT_REQUEST_TIMEOUT_S 15
#define EDGE_DEFAULT_HANDSHAKE_TIMEOUT_S 10
/* descriptors kept free for the store, curl, pipes and logging */
#define EDGE_RESERVED_FDS 64

typedef struct edge_config {
    unsigned max_connections;     /* 0: default */
    unsigned max_per_address;     /* 0: default */
    unsigned request_timeout_s;   /* 0: default */
    unsigned handshake_timeout_s; /* 0: default */
} edge_config;

typedef struct edge edge;

/* Makes the SSL object of a new TLS connection; NULL refuses it. */
typedef SSL *(*edge_ssl_fn)(void *arg);

edge *edge_new(struct event_base *base, const edge_config *cfg);
/* After the evhttp objects are freed. */
void edge_free(edge *e);

/* Puts evhttp's connections under the edge; with ssl_fn they are TLS. */
int edge_add_http(edge *e, struct evhttp *http, edge_ssl_fn ssl_fn, void *ssl_arg)
    __attribute__((warn_unused_result));
/* Binds HOST:PORT for an http given to edge_add_http. */
int edge_bind(edge *e, struct evhttp *http, const char *host, unsigned port, struct evhttp_bound_socket **out,
              util_error *err) __attribute__((warn_unused_result));

/* From the request callback: the request is complete, its deadline stops;
 * the next one on the connection starts when the response has gone. */
void edge_request_begin(edge *e, struct evhttp_request *req);
/* evhttp_connection_set_closecb for connections under the edge (the edge
 * keeps its own close callback and calls this one first). */
void edge_set_closecb(edge *e, struct evhttp_connection *evcon,
                      void (*cb)(struct evhttp_connection *, void *), void *arg);

typedef struct edge_stats {
    unsigned open;            /* connections now */
    unsigned max_connections; /* in effect (after the descriptor limit) */
    unsigned long refused_per_address, evicted, timed_out, accept_errors;
} edge_stats;
void edge_get_stats(const edge *e, edge_stats *out);

/* Raises the soft open-file limit to the hard one; returns the soft limit
 * now in effect (0 when unknown). */
unsigned long edge_raise_nofile(void);

#endif
