/*
 * The HTTP(S) client that carries SCEP messages, on libcurl: timeouts, a hard
 * cap on response size, proxy, CA file or pinned CA fingerprint. It never
 * sees a private key. Requests can run blocking (scepctl) or inside an event
 * loop through curl's multi interface (scepd): both share http_request setup.
 */
#ifndef SCEPD_HTTP_H
#define SCEPD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct http_options {
    long connect_timeout_ms;  /* 0: 10 s */
    long total_timeout_ms;    /* 0: 60 s */
    size_t max_response;      /* 0: 1 MiB */
    const char *ca_file;      /* HTTPS: PEM bundle to trust; NULL: system store */
    const char *pin_sha256;   /* HTTPS: "sha256:HEX" of a CA (or leaf) certificate in the
                                 server's chain; when set, the chain must contain it,
                                 and the server's certificate must name the URL's host */
    bool pin_skip_host_check; /* with pin_sha256: the pin alone (an explicit choice) */
    const char *proxy;        /* "http://host:port"; NULL: curl's default (the
                               *_proxy environment variables); "": no proxy */
    bool insecure;            /* HTTPS without any verification (lab use only) */
    bool verbose;             /* curl's trace to stderr */
    const char *user_agent;   /* NULL: "scepd/VERSION" */
} http_options;

typedef struct http_response {
    long status;
    char *content_type; /* NULL when absent */
    char *server;       /* the Server: header, NULL when absent */
    uint8_t *body;      /* NUL-terminated one past body_len */
    size_t body_len;
} http_response;

void http_response_free(http_response *r);

/* Global init/cleanup (curl_global_*); call once from main(). */
int http_global_init(void) MUST_CHECK;
void http_global_cleanup(void);

/* Blocking requests. Errors: NET_* and HTTP_PROXY, RESPONSE_TOO_LARGE.
 * Any HTTP status is a successful exchange: the caller judges it. */
int http_get(const http_options *o, const char *url, http_response *out, util_error *err) MUST_CHECK;
int http_post(const http_options *o, const char *url, const uint8_t *body, size_t len,
              const char *content_type, http_response *out, util_error *err) MUST_CHECK;

/* Percent-encodes every character outside RFC 3986 unreserved (so + / = too). */
char *http_url_escape(const char *s);
/* Appends "?operation=OP[&message=ESCAPED]" (or "&..." when url has a query). */
char *http_scep_url(const char *base, const char *operation, const char *message);

/* Asynchronous requests through curl's multi interface, driven by libevent.
 * The callback runs on the event loop with the same results as the blocking
 * calls, never from inside http_client_get/post: rc 0 with resp set and err
 * NULL, or rc -1 with resp NULL and err set. resp and err are valid only
 * during the callback; resp is freed (http_response_free) after it returns,
 * so a callback that keeps a field moves it out and sets it to NULL.
 * http_client_get/post fail synchronously only on bad arguments (USAGE) or
 * out of memory; the callback is then not called. http_client_free (also
 * from inside a callback) cancels outstanding transfers without calling
 * their callbacks; free the client before its event_base. */
struct event_base;
typedef struct http_client http_client;
typedef void (*http_done_cb)(void *arg, int rc, http_response *resp, const util_error *err);

http_client *http_client_new(struct event_base *base);
void http_client_free(http_client *c);
int http_client_get(http_client *c, const http_options *o, const char *url, http_done_cb cb, void *arg,
                    util_error *err) MUST_CHECK;
int http_client_post(http_client *c, const http_options *o, const char *url, const uint8_t *body, size_t len,
                     const char *content_type, http_done_cb cb, void *arg, util_error *err) MUST_CHECK;

/* A client whose transfers another process performs (scepd's network
 * process: the agent opens no socket). forward hands transfer id over and
 * fails only as http_client_get/post may; the outcome comes back through
 * http_client_deliver (resp's fields may be moved out by the callback), from
 * the event loop. cancel (optional) is told of transfers dropped by
 * http_client_free. */
typedef int (*http_forward_fn)(void *arg, uint32_t id, bool post, const http_options *o, const char *url,
                               const uint8_t *body, size_t len, const char *content_type, util_error *err);
typedef void (*http_forward_cancel_fn)(void *arg, uint32_t id);
http_client *http_client_new_forward(struct event_base *base, http_forward_fn forward,
                                     http_forward_cancel_fn cancel, void *arg);
void http_client_deliver(http_client *c, uint32_t id, int rc, http_response *resp, const util_error *err);

#endif
