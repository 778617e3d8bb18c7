/*
 * The REST API of scepd: JSON in and out, authentication (HTTP Basic or a
 * session cookie with a CSRF token), the two roles, status codes from the
 * error catalogue, and the Remote UI's static files. It calls src/agent only.
 *
 * The core (api_handle) is a pure function from a request to a response so
 * that tests and the fuzzer drive it without sockets; api_attach connects it
 * to an evhttp server. docs/api.md is the reference for every endpoint.
 */
#ifndef SCEPD_API_H
#define SCEPD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>

#include "agent/agent.h"
#include "util/error.h"

struct evhttp;

#define API_DEFAULT_MAX_BODY (64 * 1024)
#define API_MAX_HEADERS 16

typedef struct api api;

typedef struct api_config {
    size_t max_body; /* larger bodies: 413 body_too_large; 0: 64 KiB */
    /* The device's names and addresses (without port, borrowed): a request
     * whose Host names something else is refused (421 host_unknown), which
     * keeps DNS rebinding away from the API. NULL: no Host check. */
    const char *const *host_names;
    size_t host_name_count;
} api_config;

/* A login that hashes a password off the event loop (agent_login_start):
 * the evhttp adapter passes one per request. api_handle starts the job and
 * answers nothing (api_response.deferred); when the agent calls done(arg),
 * the adapter sets finished and calls api_handle again with the same
 * request, which then takes the answer (agent_login_finish). */
typedef struct api_login_slot {
    void (*done)(void *arg);
    void *arg;
    agent_login_job *job; /* set while a login is under way */
    bool finished;
    /* POST /keys/{name}/verify waits the same way for the CRL it fetches
     * first (agent_key_verify_start): crl_done(arg) clears crl_wait and
     * calls api_handle again, which then verifies (crl_waited). */
    void (*crl_done)(void *arg);
    agent_crl_waiter *crl_wait;
    bool crl_waited;
} api_login_slot;

/* One HTTP request, borrowed for the call. */
typedef struct api_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* percent-decoded, without the query */
    const char *query;  /* raw query string after '?', NULL when none */
    /* Case-insensitive header lookup; NULL when absent. header may be NULL. */
    const char *(*header)(void *arg, const char *name);
    void *header_arg;
    const uint8_t *body;
    size_t body_len;
    bool tls;              /* served over HTTPS */
    const char *remote;    /* peer address for the log, may be NULL */
    api_login_slot *login; /* NULL: passwords are checked on the spot (agent_login) */
} api_request;

typedef struct api_header {
    const char *name; /* static string */
    char *value;      /* malloc'd */
} api_header;

typedef struct api_response {
    int status;
    const char *content_type; /* static string, NULL when there is no body */
    char *body;               /* malloc'd, NULL when empty */
    size_t body_len;
    api_header headers[API_MAX_HEADERS];
    size_t header_count;
    /* No answer yet: a login or a verification's GetCRL waits on
     * request.login (status 0, no body). */
    bool deferred;
} api_response;

/* A file of the Remote UI, embedded at build time (src/web). */
typedef struct api_static_file {
    const char *path; /* "/ui/index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} api_static_file;

typedef const api_static_file *(*api_static_lookup)(const char *path);

/* cfg may be NULL (defaults). NULL when out of memory. The agent is borrowed
 * and must outlive the api. */
api *api_new(agent *a, const api_config *cfg);
/* Free after the evhttp servers it is attached to. Accepts NULL. */
void api_free(api *server);

/* Serves GET /ui/... from lookup (no authentication); "/ui/" is
 * "/ui/index.html". Without a lookup every /ui/ path is 404. */
void api_set_static(api *server, api_static_lookup lookup);

/* Handles one request; always fills resp (clear it with api_response_clear)
 * and returns its status. Security headers are part of every response. */
int api_handle(api *server, const api_request *req, api_response *resp);
void api_response_clear(api_response *resp);

/* Makes api the general callback of http and sets its limits (methods, body
 * and header sizes, no default content type). tls says whether http serves
 * HTTPS (Secure cookies, HSTS). At most 4 servers per api; -1 when full. */
/* edge (may be NULL) is told when a request is complete (its deadline stops). */
struct edge;
int api_attach(api *server, struct evhttp *http, bool tls, struct edge *network_edge) MUST_CHECK;

/* For a process that carries requests to api_handle elsewhere (scepd's
 * network process): the limits api_attach sets (max_body 0: the default),
 * the method's name, the percent-decoded path ("" when it hides a NUL;
 * malloc'd) and the reason phrase of a status. */
void api_http_limits(struct evhttp *http, size_t max_body);
const char *api_http_method(enum evhttp_cmd_type cmd);
char *api_http_path(const struct evhttp_uri *uri);
const char *api_http_reason(int status);

#endif
