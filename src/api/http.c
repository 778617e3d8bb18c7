/* The evhttp adapter: evhttp_request to api_request, api_response to the
 * reply. Credentials and bodies are wiped from evhttp's buffers once the
 * response is built. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "edge/edge.h"

#define HEADERS_MAX (16 * 1024)
#define TIMEOUT_S 30

const char *api_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Status";
    }
}

const char *api_http_method(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static const char *find_header(void *arg, const char *name)
{
    return evhttp_find_header(arg, name); /* case-insensitive */
}

static void wipe_header(struct evkeyvalq *headers, const char *name)
{
    const char *value = evhttp_find_header(headers, name);
    if (value)
        OPENSSL_cleanse((char *)value, strlen(value));
}

static void send_response(struct evhttp_request *req, const api_response *resp)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    if (resp->content_type)
        evhttp_add_header(h, "Content-Type", resp->content_type);
    for (size_t i = 0; i < resp->header_count; i++)
        evhttp_add_header(h, resp->headers[i].name, resp->headers[i].value);
    if (body && resp->body_len && evbuffer_add(body, resp->body, resp->body_len) != 0) {
        evhttp_send_error(req, 500, NULL);
        evbuffer_free(body);
        return;
    }
    evhttp_send_reply(req, resp->status, api_http_reason(resp->status), body);
    if (body)
        evbuffer_free(body);
}

/* The decoded path; "" (matches nothing: 404) when it hides a NUL. */
char *api_http_path(const struct evhttp_uri *uri)
{
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t len = 0;
    char *path = evhttp_uridecode(raw && *raw ? raw : "/", 0, &len);
    if (path && strlen(path) != len)
        path[0] = '\0';
    return path;
}

/* One request from its arrival to its response; it outlives the request
 * callback while a login is being checked. */
typedef struct api_pending {
    const api_listener *l;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    api_login_slot slot;
} api_pending;

static void serve(api_pending *p);

static void on_login_done(void *arg)
{
    api_pending *p = arg;
    p->slot.finished = true;
    edge_set_closecb(p->l->edge, p->evcon, NULL, NULL);
    serve(p);
}

static void on_crl_done(void *arg)
{
    api_pending *p = arg;
    p->slot.crl_wait = NULL; /* the agent has let go of it */
    edge_set_closecb(p->l->edge, p->evcon, NULL, NULL);
    serve(p);
}

/* The client went away while its login was checked or its verification
 * waited for the CRL. A request evhttp has
 * let go of (the client's EOF) is ours to free; otherwise the connection
 * frees it. The agent still records the login's outcome. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    api_pending *p = arg;
    (void)evcon;
    agent_login_cancel(p->l->api->agent, p->slot.job);
    agent_key_verify_cancel(p->l->api->agent, p->slot.crl_wait);
    if (!evhttp_request_get_connection(p->req))
        evhttp_request_free(p->req);
    free(p);
}

static void serve(api_pending *p)
{
    struct evhttp_request *req = p->req;
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    char *path = api_http_path(uri);
    char *host = NULL;
    ev_uint16_t port = 0;
    char peer[80] = "-";
    if (p->evcon) {
        evhttp_connection_get_peer(p->evcon, &host, &port);
        snprintf(peer, sizeof peer, "%s:%u", host ? host : "?", (unsigned)port);
    }
    size_t body_len = in ? evbuffer_get_length(in) : 0;
    unsigned char *body = body_len ? evbuffer_pullup(in, -1) : NULL;
    api_request r = {
        .method = api_http_method(evhttp_request_get_command(req)),
        .path = path ? path : "",
        .query = uri ? evhttp_uri_get_query(uri) : NULL,
        .header = find_header,
        .header_arg = headers,
        .body = body,
        .body_len = body ? body_len : 0,
        .tls = p->l->tls,
        .remote = peer,
        /* without a connection to watch, a client that leaves could not be told apart */
        .login = p->evcon ? &p->slot : NULL,
    };
    api_response resp;
    api_handle(p->l->api, &r, &resp);
    free(path);
    if (resp.deferred) {
        /* the body and credentials stay until the second call */
        edge_set_closecb(p->l->edge, p->evcon, on_close, p);
        return;
    }
    if (body)
        OPENSSL_cleanse(body, body_len);
    wipe_header(headers, "Authorization");
    wipe_header(headers, "Cookie");
    send_response(req, &resp);
    api_response_clear(&resp);
    agent_login_cancel(p->l->api->agent, p->slot.job); /* none: a second call takes its answer */
    agent_key_verify_cancel(p->l->api->agent, p->slot.crl_wait);
    free(p);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const api_listener *l = arg;
    edge_request_begin(l->edge, req);
    api_pending *p = calloc(1, sizeof *p);
    if (!p) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    *p = (api_pending){.l = l, .req = req, .evcon = evhttp_request_get_connection(req)};
    p->slot.done = on_login_done;
    p->slot.crl_done = on_crl_done;
    p->slot.arg = p;
    serve(p);
}

int api_attach(api *server, struct evhttp *http, bool tls, struct edge *network_edge)
{
    if (server->listener_count >= API_MAX_LISTENERS)
        return -1;
    api_listener *l = &server->listeners[server->listener_count++];
    *l = (api_listener){.api = server, .tls = tls, .edge = network_edge};
    api_http_limits(http, server->cfg.max_body);
    evhttp_set_gencb(http, on_request, l);
    return 0;
}

void api_http_limits(struct evhttp *http, size_t max)
{
    /* Twice the API's limit: most oversized bodies still get the JSON 413
     * from api_handle, and evhttp cuts off the rest. */
    if (!max)
        max = API_DEFAULT_MAX_BODY;
    ev_ssize_t limit = max > (size_t)EV_SSIZE_MAX / 2 - 4096 ? EV_SSIZE_MAX : (ev_ssize_t)(max * 2 + 4096);
    evhttp_set_max_body_size(http, limit);
    evhttp_set_max_headers_size(http, HEADERS_MAX);
    evhttp_set_timeout(http, TIMEOUT_S);
    evhttp_set_default_content_type(http, NULL);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
}
