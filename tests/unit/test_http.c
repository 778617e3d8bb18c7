/*
 * src/http against in-process servers: an evhttp server (plain and, through
 * bufferevent_openssl, TLS with a CA and leaf made here) and raw socket
 * servers that never answer or cut a reply short. Each server runs its own
 * event_base or loop in a thread; every wait is bounded by a timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "http/plain.h"

/* ---- evhttp test server -------------------------------------------------- */

typedef struct tserver {
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    SSL_CTX *ssl;
    int stop[2];
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    /* what /echo last received */
    char *method, *ctype, *expect, *ua;
    int conns; /* connections accepted */
} tserver;

static void reply(struct evhttp_request *req, int code, const char *ctype, const void *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    if (ctype)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Not Found", b);
    evbuffer_free(b);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void handle_echo(tserver *s, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    pthread_mutex_lock(&s->mu);
    free(s->method);
    free(s->ctype);
    free(s->expect);
    free(s->ua);
    s->method = strdup(evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "other");
    s->ctype = dup_or_null(evhttp_find_header(h, "Content-Type"));
    s->expect = dup_or_null(evhttp_find_header(h, "Expect"));
    s->ua = dup_or_null(evhttp_find_header(h, "User-Agent"));
    pthread_mutex_unlock(&s->mu);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    reply(req, 200, "application/x-pki-message", evbuffer_pullup(in, -1), n);
}

static void handle_scep(struct evhttp_request *req)
{
    struct evkeyvalq kv;
    char *body = NULL;
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (!q || evhttp_parse_query_str(q, &kv) < 0) {
        reply(req, 404, NULL, "no query", 8);
        return;
    }
    const char *op = evhttp_find_header(&kv, "operation");
    const char *msg = evhttp_find_header(&kv, "message");
    int n = asprintf(&body, "op=%s msg=%s", op ? op : "-", msg ? msg : "-");
    reply(req, 200, "text/plain", body, n > 0 ? (size_t)n : 0);
    free(body);
    evhttp_clear_headers(&kv);
}

static void handle_chunked(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    char big[2000];
    memset(big, 'y', sizeof big);
    evhttp_send_reply_start(req, 200, "OK");
    evbuffer_add(b, big, sizeof big);
    evhttp_send_reply_chunk(req, b);
    evhttp_send_reply_end(req);
    evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg)
{
    tserver *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char big[2000];
    if (!path) {
        reply(req, 404, NULL, "", 0);
    } else if (strcmp(path, "/hello") == 0) {
        evhttp_add_header(out, "sErVeR", " \t scep-test/1.0  ");
        reply(req, 200, "application/x-x509-ca-cert", "hello world", 11);
    } else if (strcmp(path, "/echo") == 0) {
        handle_echo(s, req);
    } else if (strcmp(path, "/scep") == 0) {
        handle_scep(req);
    } else if (strcmp(path, "/big") == 0) {
        memset(big, 'x', sizeof big);
        reply(req, 200, "application/octet-stream", big, sizeof big);
    } else if (strcmp(path, "/chunked") == 0) {
        handle_chunked(req);
    } else if (strcmp(path, "/a") == 0 || strcmp(path, "/b") == 0) {
        reply(req, 200, "text/plain", path[1] == 'a' ? "body-a" : "body-b", 6);
    } else {
        reply(req, 404, "text/plain", "not here", 8);
    }
}

/* Counts the connections; TLS when the server has a context. */
static struct bufferevent *server_bev(struct event_base *base, void *arg)
{
    tserver *s = arg;
    pthread_mutex_lock(&s->mu);
    s->conns++;
    pthread_mutex_unlock(&s->mu);
    if (!s->ssl)
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(s->ssl);
    if (!ssl)
        return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static int server_conns(tserver *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->conns;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int port_of(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    return ntohs(sa.sin_port);
}

static void on_stop(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    event_base_loopbreak(arg);
}

static void *server_main(void *arg)
{
    tserver *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static int server_start(tserver *s, SSL_CTX *ssl)
{
    memset(s, 0, sizeof *s);
    s->ssl = ssl;
    pthread_mutex_init(&s->mu, NULL);
    if (pipe(s->stop) < 0 || !(s->base = event_base_new()) || !(s->http = evhttp_new(s->base)))
        return -1;
    evhttp_set_bevcb(s->http, server_bev, s);
    evhttp_set_gencb(s->http, handle, s);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (!h || (s->port = port_of(evhttp_bound_socket_get_fd(h))) <= 0)
        return -1;
    s->stop_ev = event_new(s->base, s->stop[0], EV_READ, on_stop, s->base);
    if (!s->stop_ev || event_add(s->stop_ev, NULL) < 0)
        return -1;
    return pthread_create(&s->thread, NULL, server_main, s) == 0 ? 0 : -1;
}

static void server_stop(tserver *s)
{
    if (write(s->stop[1], "x", 1) != 1)
        abort();
    pthread_join(s->thread, NULL);
    event_free(s->stop_ev);
    evhttp_free(s->http);
    event_base_free(s->base);
    close(s->stop[0]);
    close(s->stop[1]);
    free(s->method);
    free(s->ctype);
    free(s->expect);
    free(s->ua);
    pthread_mutex_destroy(&s->mu);
}

/* ---- raw servers: silent (never answers) or a canned reply, then close -- */

typedef struct rawserver {
    int lfd;
    int port;
    int stop[2];
    const char *reply; /* NULL: accept and never answer */
    pthread_t thread;
} rawserver;

/* A body cut short: 7 of 100 bytes, then the connection closes. */
static const char partial_reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 100\r\n\r\npartial";
/* An interim response and a trailer, both with their own Server: header. */
static const char interim_reply[] = "HTTP/1.1 100 Continue\r\nServer: interim\r\n\r\n"
                                    "HTTP/1.1 200 OK\r\nServer:  final \r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n"
                                    "2\r\nok\r\n0\r\nServer: trailer\r\n\r\n";
/* A proxy that refuses every CONNECT. */
static const char forbid_reply[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
/* The interim response has a Server: header, the final one has none. */
static const char interim_only_reply[] = "HTTP/1.1 102 Processing\r\nServer: interim\r\n\r\n"
                                         "HTTP/1.1 204 No Content\r\n\r\n";

/* Reads a request head, bounded in size and time. */
static void read_head(int fd)
{
    char buf[1024];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0)
            return;
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return;
    }
}

/* The next connection, or -1 once the stop pipe has been written. */
static int accept_or_stop(int lfd, int stop)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = stop, .events = POLLIN}};
        int n = poll(p, 2, 1000);
        if ((n < 0 && errno != EINTR) || (n > 0 && p[1].revents))
            return -1;
        int fd = n > 0 ? accept(lfd, NULL, NULL) : -1;
        if (fd >= 0)
            return fd;
    }
}

/* Tells a server thread to stop, waits for it and closes its descriptors. */
static void thread_stop(int lfd, int stop[2], pthread_t thread)
{
    if (write(stop[1], "x", 1) != 1)
        abort();
    pthread_join(thread, NULL);
    close(lfd);
    close(stop[0]);
    close(stop[1]);
}

static void *raw_main(void *arg)
{
    rawserver *s = arg;
    int held[32], nheld = 0;
    for (int fd; (fd = accept_or_stop(s->lfd, s->stop[0])) >= 0;) {
        if (s->reply) {
            read_head(fd);
            if (write(fd, s->reply, strlen(s->reply)) < 0)
                perror("write");
            close(fd);
        } else if (nheld < 32) {
            held[nheld++] = fd;
        } else {
            close(fd);
        }
    }
    while (nheld)
        close(held[--nheld]);
    return NULL;
}

static int listen_any(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int raw_start(rawserver *s, const char *reply)
{
    memset(s, 0, sizeof *s);
    s->reply = reply;
    if ((s->lfd = listen_any()) < 0 || pipe(s->stop) < 0)
        return -1;
    s->port = port_of(s->lfd);
    return pthread_create(&s->thread, NULL, raw_main, s) == 0 ? 0 : -1;
}

static void raw_stop(rawserver *s)
{
    thread_stop(s->lfd, s->stop, s->thread);
}

/* ---- keep-alive server: scripted replies, counted connections ---------- */

/* One connection at a time; the n-th request on each connection gets
 * replies[n]. A reply that starts with '!' is written without the '!' and
 * the connection then closes ("!" alone: closed without a reply). After the
 * last reply (NULL), requests are read and never answered. */
typedef struct kaserver {
    int lfd;
    int port;
    int stop[2];
    const char *replies[4];
    pthread_t thread;
    pthread_mutex_t mu;
    int conns, requests;
} kaserver;

#define KA_OK "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

static void ka_count(kaserver *s, int *n)
{
    pthread_mutex_lock(&s->mu);
    (*n)++;
    pthread_mutex_unlock(&s->mu);
}

/* 1: a request head came (and was counted), 0: the client closed, -1: stop. */
static int ka_read_head(kaserver *s, int fd)
{
    char buf[2048];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop[0], .events = POLLIN}};
        if (poll(p, 2, 10000) <= 0 || p[1].revents)
            return -1;
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return 0;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            ka_count(s, &s->requests);
            return 1;
        }
    }
    return 0;
}

/* Serves one connection; false when told to stop. */
static bool ka_serve(kaserver *s, int fd)
{
    for (size_t i = 0;; i++) {
        int head = ka_read_head(s, fd);
        if (head <= 0)
            return head == 0;
        pthread_mutex_lock(&s->mu); /* a test may change the script between requests */
        const char *r = i < sizeof s->replies / sizeof s->replies[0] ? s->replies[i] : NULL;
        pthread_mutex_unlock(&s->mu);
        if (!r)
            continue;
        bool last = r[0] == '!';
        r += last;
        if (*r && write(fd, r, strlen(r)) < 0)
            perror("write");
        if (last)
            return true;
    }
}

static void *ka_main(void *arg)
{
    kaserver *s = arg;
    for (int fd; (fd = accept_or_stop(s->lfd, s->stop[0])) >= 0;) {
        ka_count(s, &s->conns);
        bool more = ka_serve(s, fd);
        close(fd);
        if (!more)
            break;
    }
    return NULL;
}

static void ka_start(kaserver *s, const char *r0, const char *r1, const char *r2)
{
    memset(s, 0, sizeof *s);
    s->replies[0] = r0;
    s->replies[1] = r1;
    s->replies[2] = r2;
    pthread_mutex_init(&s->mu, NULL);
    assert_true((s->lfd = listen_any()) >= 0);
    assert_int_equal(pipe(s->stop), 0);
    s->port = port_of(s->lfd);
    assert_int_equal(pthread_create(&s->thread, NULL, ka_main, s), 0);
}

/* Stops the server and checks what it saw. */
static void ka_stop(kaserver *s, int conns, int requests)
{
    thread_stop(s->lfd, s->stop, s->thread);
    pthread_mutex_destroy(&s->mu);
    if (s->conns != conns || s->requests != requests)
        print_message("# port %d: %d connections, %d requests\n", s->port, s->conns, s->requests);
    assert_int_equal(s->conns, conns);
    assert_int_equal(s->requests, requests);
}

/* A port where nothing listens: bound and kept open without listen(), so
 * connections are refused and no other process can take the port while the
 * tests run. *fd_out is closed by the teardown. */
static int closed_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *fd_out = fd;
    return port_of(fd);
}

/* ---- certificates ------------------------------------------------------- */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long serial)
{
    X509 *c = X509_new();
    X509 *iss = issuer ? issuer : c;
    if (!c || !X509_set_version(c, X509_VERSION_3) || !ASN1_INTEGER_set(X509_get_serialNumber(c), serial) ||
        !X509_gmtime_adj(X509_getm_notBefore(c), -3600) || !X509_gmtime_adj(X509_getm_notAfter(c), 86400) ||
        !X509_set_pubkey(c, key) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                    -1, -1, 0) ||
        !X509_set_issuer_name(c, X509_get_subject_name(iss)))
        goto fail;
    int bad = issuer ? add_ext(c, iss, NID_basic_constraints, "CA:FALSE") +
                           add_ext(c, iss, NID_key_usage, "critical,digitalSignature") +
                           add_ext(c, iss, NID_ext_key_usage, "serverAuth") +
                           add_ext(c, iss, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost")
                     : add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE") +
                           add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign") +
                           add_ext(c, iss, NID_subject_key_identifier, "hash");
    if (bad || !X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()))
        goto fail;
    return c;
fail:
    X509_free(c);
    return NULL;
}

/* "sha256:" and the SHA-256 of the DER, with colons and uppercase or not. */
static void pin_of(X509 *cert, bool fancy, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t used = (size_t)snprintf(out, outlen, "sha256:");
    if (!X509_digest(cert, EVP_sha256(), md, &n))
        abort();
    for (unsigned int i = 0; i < n && used + 4 < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, fancy ? "%s%02X" : "%s%02x",
                                 fancy && i ? ":" : "", md[i]);
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
    tserver plain, tls, rogue;
    rawserver silent, partial, interim, interim_only, forbid;
    EVP_PKEY *ca_key, *leaf_key, *fake_key;
    X509 *ca, *leaf, *fake_ca, *fake_leaf;
    SSL_CTX *ssl, *rogue_ssl;
    char ca_file[64];
    char ca_pin[160], leaf_pin[160];
    int closed, closed_fd;
} fixture;

static fixture *F;

/* Presents leaf and the real CA certificate as its chain. */
static SSL_CTX *server_ctx(X509 *leaf, EVP_PKEY *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || !SSL_CTX_use_certificate(ctx, leaf) || !SSL_CTX_use_PrivateKey(ctx, key) ||
        !SSL_CTX_add1_chain_cert(ctx, F->ca)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int write_ca_file(void)
{
    strcpy(F->ca_file, "/tmp/test_http_caXXXXXX");
    int fd = mkstemp(F->ca_file);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return -1;
    int ok = PEM_write_X509(f, F->ca);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int make_pki(void)
{
    if (!(F->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ||
        !(F->leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ||
        !(F->ca = make_cert(F->ca_key, "scepd test CA", NULL, NULL, 1)) ||
        !(F->leaf = make_cert(F->leaf_key, "127.0.0.1", F->ca, F->ca_key, 2)) ||
        !(F->ssl = server_ctx(F->leaf, F->leaf_key)) || write_ca_file() < 0)
        return -1;
    /* An impostor: a leaf from another key under the real CA's name, sent
     * with the (public) real CA certificate. */
    if (!(F->fake_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ||
        !(F->fake_ca = make_cert(F->fake_key, "scepd test CA", NULL, NULL, 1)) ||
        !(F->fake_leaf = make_cert(F->fake_key, "127.0.0.1", F->fake_ca, F->fake_key, 3)) ||
        !(F->rogue_ssl = server_ctx(F->fake_leaf, F->fake_key)))
        return -1;
    pin_of(F->ca, true, F->ca_pin, sizeof F->ca_pin);
    pin_of(F->leaf, false, F->leaf_pin, sizeof F->leaf_pin);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    /* The TLS server writes to peers that hung up (as scepd must, it ignores
     * SIGPIPE and takes EPIPE). */
    signal(SIGPIPE, SIG_IGN);
    /* Tests pass proxy "" except where they test the default (env) path. */
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("https_proxy");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    if (http_global_init() < 0 || !(F = calloc(1, sizeof *F)) || make_pki() < 0)
        return -1;
    if (server_start(&F->plain, NULL) < 0 || server_start(&F->tls, F->ssl) < 0 ||
        server_start(&F->rogue, F->rogue_ssl) < 0 || raw_start(&F->silent, NULL) < 0 ||
        raw_start(&F->partial, partial_reply) < 0 || raw_start(&F->interim, interim_reply) < 0 ||
        raw_start(&F->interim_only, interim_only_reply) < 0 || raw_start(&F->forbid, forbid_reply) < 0)
        return -1;
    F->closed = closed_port(&F->closed_fd);
    return F->closed > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (F->closed > 0)
        close(F->closed_fd);
    server_stop(&F->plain);
    server_stop(&F->tls);
    server_stop(&F->rogue);
    raw_stop(&F->silent);
    raw_stop(&F->partial);
    raw_stop(&F->interim);
    raw_stop(&F->interim_only);
    raw_stop(&F->forbid);
    unlink(F->ca_file);
    SSL_CTX_free(F->ssl);
    SSL_CTX_free(F->rogue_ssl);
    X509_free(F->ca);
    X509_free(F->leaf);
    X509_free(F->fake_ca);
    X509_free(F->fake_leaf);
    EVP_PKEY_free(F->ca_key);
    EVP_PKEY_free(F->leaf_key);
    EVP_PKEY_free(F->fake_key);
    free(F);
    http_global_cleanup();
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static http_options opts(void)
{
    http_options o = {0};
    o.proxy = "";
    o.connect_timeout_ms = 5000;
    o.total_timeout_ms = 10000;
    return o;
}

static const char *url(char *buf, size_t n, const char *scheme, int port, const char *path)
{
    snprintf(buf, n, "%s://127.0.0.1:%d%s", scheme, port, path);
    return buf;
}

#define URL(scheme, port, path) url((char[256]){0}, 256, scheme, port, path)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs a request expected to fail; checks the code and that the detail names
 * the host. */
static void expect_get_error(const http_options *o, const char *u, util_err code)
{
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(o, u, &r, &err), -1);
    if (err.code != code)
        print_message("# got %s: %s\n", util_err_code(err.code), err.detail);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.detail, "127.0.0.1"));
    assert_null(r.body); /* outputs untouched on failure */
}

/* ---- blocking tests ----------------------------------------------------- */

static void test_get_ok(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(&o, URL("http", F->plain.port, "/hello"), &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello world", 12); /* NUL-terminated */
    assert_string_equal(r.content_type, "application/x-x509-ca-cert");
    assert_string_equal(r.server, "scep-test/1.0");
    http_response_free(&r);
    assert_null(r.body);
    http_response_free(NULL);
}

static void test_post_echo(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    /* above 1 MiB, where curl would send Expect: 100-continue */
    const size_t n = 1100 * 1024;
    uint8_t *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (uint8_t)(i * 7);
    o.max_response = 2 * n;
    assert_int_equal(http_post(&o, URL("http", F->plain.port, "/echo"), body, n, NULL, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, n);
    assert_memory_equal(r.body, body, n);
    free(body);
    assert_null(r.server);
    pthread_mutex_lock(&F->plain.mu);
    assert_string_equal(F->plain.method, "POST");
    assert_string_equal(F->plain.ctype, "application/x-pki-message");
    assert_null(F->plain.expect);
    assert_string_equal(F->plain.ua, "scepd/" SCEPD_VERSION);
    pthread_mutex_unlock(&F->plain.mu);
    http_response_free(&r);

    o.user_agent = "custom/1";
    assert_int_equal(http_post(&o, URL("http", F->plain.port, "/echo"), (const uint8_t *)"x", 1,
                               "application/octet-stream", &r, &err),
                     0);
    assert_int_equal(r.body_len, 1);
    pthread_mutex_lock(&F->plain.mu);
    assert_string_equal(F->plain.ctype, "application/octet-stream");
    assert_string_equal(F->plain.ua, "custom/1");
    pthread_mutex_unlock(&F->plain.mu);
    http_response_free(&r);
}

static void test_server_header_final_only(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(&o, URL("http", F->interim.port, "/"), &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.server, "final");
    assert_null(r.content_type);
    assert_int_equal(r.body_len, 2);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    assert_int_equal(http_get(&o, URL("http", F->interim_only.port, "/"), &r, &err), 0);
    assert_int_equal(r.status, 204);
    assert_null(r.server);
    assert_int_equal(r.body_len, 0);
    assert_non_null(r.body);
    assert_int_equal(r.body[0], 0);
    http_response_free(&r);
}

static void test_post_bad_content_type(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_post(&o, URL("http", F->plain.port, "/echo"), (const uint8_t *)"x", 1,
                               "text/plain\r\nX-Evil: 1", &r, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_USAGE);
}

static void test_status_404(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(&o, URL("http", F->plain.port, "/nope"), &r, &err), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.body_len, 8);
    assert_string_equal((char *)r.body, "not here");
    http_response_free(&r);
}

static void test_too_large(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    o.max_response = 1000;
    expect_get_error(&o, URL("http", F->plain.port, "/big"), UTIL_ERR_RESPONSE_TOO_LARGE);
    /* without a Content-Length the cap stops the transfer while writing */
    expect_get_error(&o, URL("http", F->plain.port, "/chunked"), UTIL_ERR_RESPONSE_TOO_LARGE);
    o.max_response = 2000; /* exactly the size is fine */
    assert_int_equal(http_get(&o, URL("http", F->plain.port, "/chunked"), &r, &err), 0);
    assert_int_equal(r.body_len, 2000);
    assert_int_equal(r.body[1999], 'y');
    http_response_free(&r);
}

static void test_timeout(void **state)
{
    (void)state;
    http_options o = opts();
    o.total_timeout_ms = 300;
    double t0 = now_s();
    expect_get_error(&o, URL("http", F->silent.port, "/hello"), UTIL_ERR_NET_TIMEOUT);
    assert_true(now_s() - t0 < 5.0);
}

static void test_refused(void **state)
{
    (void)state;
    http_options o = opts();
    expect_get_error(&o, URL("http", F->closed, "/"), UTIL_ERR_NET_CONNECT);
}

static void test_reset(void **state)
{
    (void)state;
    http_options o = opts();
    expect_get_error(&o, URL("http", F->partial.port, "/hello"), UTIL_ERR_NET_RESET);
}

static void test_detail_hides_query(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(&o, URL("http", F->closed, "/scep?operation=x&message=SECRET42"), &r, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_NET_CONNECT);
    assert_non_null(strstr(err.detail, "127.0.0.1"));
    assert_non_null(strstr(err.detail, "onnect")); /* curl's own words */
    assert_null(strstr(err.detail, "SECRET42"));
    assert_null(strstr(err.detail, "operation"));
}

static void test_bad_url(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(&o, "ftp://127.0.0.1/x", &r, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_USAGE);
    assert_int_equal(http_get(&o, "not a url", &r, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_USAGE);
    assert_int_equal(http_get(NULL, NULL, &r, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_USAGE);
}

static void test_proxy_unreachable(void **state)
{
    (void)state;
    http_options o = opts();
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", F->closed);
    o.proxy = proxy;
    expect_get_error(&o, URL("http", F->plain.port, "/hello"), UTIL_ERR_HTTP_PROXY);
}

static void test_proxy_used(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    char proxy[64];
    /* the test server answers the proxied request; the host is never resolved */
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", F->plain.port);
    o.proxy = proxy;
    assert_int_equal(http_get(&o, "http://scep.example.invalid/a", &r, &err), 0);
    assert_string_equal((char *)r.body, "body-a");
    http_response_free(&r);
    /* a proxy that refuses the CONNECT for HTTPS */
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", F->forbid.port);
    o.ca_file = F->ca_file;
    expect_get_error(&o, URL("https", F->tls.port, "/a"), UTIL_ERR_HTTP_PROXY);
}

static void test_default_options(void **state)
{
    (void)state; /* NULL options: defaults, and the environment's proxy (unset) */
    http_response r = {0};
    util_error err = {0};
    assert_int_equal(http_get(NULL, URL("http", F->plain.port, "/a"), &r, &err), 0);
    assert_string_equal((char *)r.body, "body-a");
    http_response_free(&r);
}

static void test_escape(void **state)
{
    (void)state;
    char *s = http_url_escape("a+b/c=d e");
    assert_string_equal(s, "a%2Bb%2Fc%3Dd%20e");
    free(s);
    s = http_url_escape("AZaz09-._~");
    assert_string_equal(s, "AZaz09-._~");
    free(s);
    s = http_url_escape("\xc3\xa9?&%\n");
    assert_string_equal(s, "%C3%A9%3F%26%25%0A");
    free(s);
    s = http_url_escape("");
    assert_string_equal(s, "");
    free(s);
    assert_null(http_url_escape(NULL));
}

static void test_scep_url(void **state)
{
    (void)state;
    char *s = http_scep_url("http://h/scep", "GetCACert", NULL);
    assert_string_equal(s, "http://h/scep?operation=GetCACert");
    free(s);
    s = http_scep_url("http://h/cgi-bin/pkiclient.exe?ca=1", "PKIOperation", "a+b/c=d e");
    assert_string_equal(s, "http://h/cgi-bin/pkiclient.exe?ca=1&operation=PKIOperation"
                           "&message=a%2Bb%2Fc%3Dd%20e");
    free(s);
    s = http_scep_url("http://h/x?", "GetCACaps", "");
    assert_string_equal(s, "http://h/x?operation=GetCACaps&message=");
    free(s);
    assert_null(http_scep_url(NULL, "GetCACert", NULL));
    assert_null(http_scep_url("http://h/", NULL, NULL));
}

static void test_scep_url_roundtrip(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    char *u = http_scep_url(URL("http", F->plain.port, "/scep"), "PKIOperation", "a+b/c=d e");
    assert_int_equal(http_get(&o, u, &r, &err), 0);
    assert_string_equal((char *)r.body, "op=PKIOperation msg=a+b/c=d e");
    http_response_free(&r);
    free(u);
}

/* ---- connection reuse (plain HTTP) -------------------------------------- */

static void get_ok(const http_options *o, int port, const char *path, const char *body)
{
    http_response r = {0};
    util_error err = {0};
    int rc = http_get(o, URL("http", port, path), &r, &err);
    if (rc != 0)
        print_message("# %s: %s\n", util_err_code(err.code), err.detail);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, body);
    http_response_free(&r);
}

static void test_reuse_one_connection(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    http_plain_close_all();
    int before = server_conns(&F->plain);
    get_ok(&o, F->plain.port, "/a", "body-a");
    assert_int_equal(
        http_post(&o, URL("http", F->plain.port, "/echo"), (const uint8_t *)"xyz", 3, NULL, &r, &err), 0);
    assert_string_equal((char *)r.body, "xyz");
    http_response_free(&r);
    get_ok(&o, F->plain.port, "/b", "body-b");
    assert_int_equal(server_conns(&F->plain) - before, 1);
    /* a 404 is a complete reply too */
    assert_int_equal(http_get(&o, URL("http", F->plain.port, "/nope"), &r, &err), 0);
    assert_int_equal(r.status, 404);
    http_response_free(&r);
    get_ok(&o, F->plain.port, "/a", "body-a");
    assert_int_equal(server_conns(&F->plain) - before, 1);
    http_plain_close_all();
    http_plain_close_all();
}

static void test_reuse_other_server(void **state)
{
    (void)state;
    http_options o = opts();
    kaserver a, b;
    ka_start(&a, KA_OK, KA_OK, KA_OK);
    ka_start(&b, KA_OK, KA_OK, NULL);
    get_ok(&o, a.port, "/", "ok");
    get_ok(&o, a.port, "/", "ok");
    get_ok(&o, b.port, "/", "ok"); /* closes the one to a */
    get_ok(&o, a.port, "/", "ok");
    get_ok(&o, a.port, "/", "ok");
    http_plain_close_all();
    ka_stop(&a, 2, 4);
    ka_stop(&b, 1, 1);
}

static void test_reuse_server_closes(void **state)
{
    (void)state;
    http_options o = opts();
    kaserver s;
    /* Connection: close: evhttp closes, the next request connects again */
    ka_start(&s, "!HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", NULL, NULL);
    get_ok(&o, s.port, "/", "ok");
    get_ok(&o, s.port, "/", "ok");
    ka_stop(&s, 2, 2);
    /* HTTP/1.0 without keep-alive */
    ka_start(&s, "!HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL, NULL);
    get_ok(&o, s.port, "/", "ok");
    get_ok(&o, s.port, "/", "ok");
    ka_stop(&s, 2, 2);
    /* closed after the reply without a word: seen before the next request
     * (or, if the close is late, the request goes again) */
    ka_start(&s, "!" KA_OK, NULL, NULL);
    get_ok(&o, s.port, "/", "ok");
    usleep(50 * 1000);
    get_ok(&o, s.port, "/", "ok");
    get_ok(&o, s.port, "/", "ok");
    ka_stop(&s, 3, 3);
    /* a reply that ends with the connection (no length) is not reused */
    ka_start(&s, "!HTTP/1.1 200 OK\r\n\r\nok", NULL, NULL);
    get_ok(&o, s.port, "/", "ok");
    get_ok(&o, s.port, "/", "ok");
    http_plain_close_all();
    ka_stop(&s, 2, 2);
}

static void test_reuse_retry_once(void **state)
{
    (void)state;
    http_options o = opts();
    kaserver s;
    /* the server closes the kept connection as the second request comes:
     * sent again, once, over a new connection */
    ka_start(&s, KA_OK, "!", NULL);
    get_ok(&o, s.port, "/", "ok");
    get_ok(&o, s.port, "/", "ok");
    /* the new connection was kept: the third request is its second, and the
     * server closes it the same way */
    get_ok(&o, s.port, "/", "ok");
    ka_stop(&s, 3, 5);
    /* a POST is sent again the same way */
    ka_start(&s, KA_OK, "!", NULL);
    http_response r = {0};
    util_error err = {0};
    get_ok(&o, s.port, "/", "ok");
    assert_int_equal(http_post(&o, URL("http", s.port, "/"), (const uint8_t *)"x", 1, NULL, &r, &err), 0);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    http_plain_close_all();
    ka_stop(&s, 2, 3);
}

static void test_fresh_no_retry(void **state)
{
    (void)state;
    http_options o = opts();
    kaserver s;
    /* a new connection closed without a reply: the error of old, no retry */
    ka_start(&s, "!", NULL, NULL);
    expect_get_error(&o, URL("http", s.port, "/"), UTIL_ERR_NET_RESET);
    ka_stop(&s, 1, 1);
    /* a new connection after Connection: close is not retried either */
    ka_start(&s, "!HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", NULL, NULL);
    get_ok(&o, s.port, "/", "ok");
    pthread_mutex_lock(&s.mu);
    s.replies[0] = "!";
    pthread_mutex_unlock(&s.mu);
    expect_get_error(&o, URL("http", s.port, "/"), UTIL_ERR_NET_RESET);
    ka_stop(&s, 2, 2);
}

static void test_reuse_no_retry_after_bytes(void **state)
{
    (void)state;
    http_options o = opts();
    kaserver s;
    /* part of the body, then the connection closes */
    ka_start(&s, KA_OK, "!HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", NULL);
    get_ok(&o, s.port, "/", "ok");
    expect_get_error(&o, URL("http", s.port, "/"), UTIL_ERR_NET_RESET);
    ka_stop(&s, 1, 2);
    /* part of the status line */
    ka_start(&s, KA_OK, "!HTTP/1.1 20", NULL);
    get_ok(&o, s.port, "/", "ok");
    expect_get_error(&o, URL("http", s.port, "/"), UTIL_ERR_NET_RESET);
    ka_stop(&s, 1, 2);
    /* no reply at all is a timeout, not a closed connection */
    ka_start(&s, KA_OK, NULL, NULL);
    get_ok(&o, s.port, "/", "ok");
    o.total_timeout_ms = 300;
    expect_get_error(&o, URL("http", s.port, "/"), UTIL_ERR_NET_TIMEOUT);
    ka_stop(&s, 1, 2);
}

static void test_reuse_after_too_large(void **state)
{
    (void)state;
    http_options o = opts();
    kaserver s;
    o.max_response = 1000;
    ka_start(&s, KA_OK, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\nxxxx", KA_OK);
    get_ok(&o, s.port, "/", "ok");
    expect_get_error(&o, URL("http", s.port, "/"), UTIL_ERR_RESPONSE_TOO_LARGE);
    get_ok(&o, s.port, "/", "ok"); /* over a new connection */
    http_plain_close_all();
    ka_stop(&s, 2, 3);
}

/* ---- HTTPS -------------------------------------------------------------- */

static void test_https_ca_file(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    o.ca_file = F->ca_file;
    assert_int_equal(http_get(&o, URL("https", F->tls.port, "/hello"), &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "hello world");
    assert_string_equal(r.server, "scep-test/1.0");
    http_response_free(&r);
}

static void test_https_system_store(void **state)
{
    (void)state;
    http_options o = opts();
    expect_get_error(&o, URL("https", F->tls.port, "/hello"), UTIL_ERR_NET_TLS);
}

static void test_https_bad_ca_file(void **state)
{
    (void)state;
    http_options o = opts();
    o.ca_file = "/nonexistent/ca.pem";
    expect_get_error(&o, URL("https", F->tls.port, "/hello"), UTIL_ERR_INPUT_FILE);
}

static void test_https_insecure(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    o.insecure = true;
    assert_int_equal(http_get(&o, URL("https", F->tls.port, "/a"), &r, &err), 0);
    assert_string_equal((char *)r.body, "body-a");
    http_response_free(&r);
}

static void test_https_pin_ok(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    const char *pins[] = {F->ca_pin, F->leaf_pin};
    for (size_t i = 0; i < 2; i++) {
        o.pin_sha256 = pins[i];
        assert_int_equal(http_get(&o, URL("https", F->tls.port, "/hello"), &r, &err), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal((char *)r.body, "hello world");
        http_response_free(&r);
    }
    /* the pin does not replace the host check: the certificate is for
     * 127.0.0.1 and localhost, not for ::ffff:127.0.0.1 (the same server) ... */
    o.pin_sha256 = F->ca_pin;
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%d/a", F->tls.port);
    assert_int_equal(http_get(&o, u, &r, &err), 0);
    http_response_free(&r);
    snprintf(u, sizeof u, "https://[::ffff:127.0.0.1]:%d/a", F->tls.port);
    assert_int_equal(http_get(&o, u, &r, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NET_TLS);
    if (!strstr(err.detail, "IP address mismatch"))
        fail_msg("detail: %s", err.detail);
    /* ... unless the pin alone is asked for explicitly */
    o.pin_skip_host_check = true;
    assert_int_equal(http_get(&o, u, &r, &err), 0);
    assert_string_equal((char *)r.body, "body-a");
    http_response_free(&r);
}

static void test_https_pin_wrong(void **state)
{
    (void)state;
    http_options o = opts();
    char pin[80] = "sha256:";
    memset(pin + 7, 'A', 64);
    pin[71] = '\0';
    o.pin_sha256 = pin;
    expect_get_error(&o, URL("https", F->tls.port, "/hello"), UTIL_ERR_NET_TLS_PIN);
    o.ca_file = F->ca_file; /* a CA file that would trust the server does not override */
    expect_get_error(&o, URL("https", F->tls.port, "/hello"), UTIL_ERR_NET_TLS_PIN);
}

/* The pinned CA certificate is in the chain, but the leaf is not signed by it:
 * presence alone must not be enough. */
static void test_https_pin_impostor(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    o.pin_sha256 = F->ca_pin;
    assert_int_equal(http_get(&o, URL("https", F->rogue.port, "/hello"), &r, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NET_TLS);
    assert_non_null(strstr(err.detail, "pinned"));
    assert_null(r.body);
    o.pin_sha256 = F->leaf_pin; /* the real leaf's pin is not in this chain at all */
    expect_get_error(&o, URL("https", F->rogue.port, "/hello"), UTIL_ERR_NET_TLS_PIN);
}

static void test_pin_bad_format(void **state)
{
    (void)state;
    http_options o = opts();
    http_response r = {0};
    util_error err = {0};
    const char *bad[] = {"sha1:00", "sha256:0011", "sha256:zz", F->ca_pin + 7};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.pin_sha256 = bad[i];
        assert_int_equal(http_get(&o, URL("https", F->tls.port, "/"), &r, &err), -1);
        assert_int_equal(err.code, UTIL_ERR_USAGE);
    }
}

/* ---- multi interface ---------------------------------------------------- */

typedef struct mctx {
    struct event_base *base;
    http_client *client;
    int pending;
    bool free_in_cb;
} mctx;

typedef struct mreq {
    mctx *ctx;
    int calls;
    int rc;
    long status;
    char *body;
    util_err code;
} mreq;

static void on_done(void *arg, int rc, http_response *resp, const util_error *err)
{
    mreq *q = arg;
    q->calls++;
    q->rc = rc;
    if (rc == 0) {
        assert_null(err);
        q->status = resp->status;
        q->body = (char *)resp->body; /* take ownership of one field */
        resp->body = NULL;
    } else {
        assert_null(resp);
        q->code = err->code;
        if (!strstr(err->detail, "127.0.0.1"))
            q->code = UTIL_ERR_NONE;
    }
    if (q->ctx->free_in_cb) {
        http_client_free(q->ctx->client);
        q->ctx->client = NULL;
        event_base_loopbreak(q->ctx->base);
    }
    if (--q->ctx->pending == 0)
        event_base_loopbreak(q->ctx->base);
}

static void run_loop(mctx *m, long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_base_loopexit(m->base, &tv);
    event_base_dispatch(m->base);
}

static void mctx_init(mctx *m)
{
    memset(m, 0, sizeof *m);
    m->base = event_base_new();
    assert_non_null(m->base);
    m->client = http_client_new(m->base);
    assert_non_null(m->client);
}

static void mctx_done(mctx *m)
{
    http_client_free(m->client);
    event_base_free(m->base);
}

static void test_multi_concurrent(void **state)
{
    (void)state;
    mctx m;
    mctx_init(&m);
    http_options o = opts();
    util_error err = {0};
    mreq a = {.ctx = &m}, b = {.ctx = &m}, p = {.ctx = &m};
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->plain.port, "/a"), on_done, &a, &err), 0);
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->plain.port, "/b"), on_done, &b, &err), 0);
    uint8_t body[] = "posted";
    assert_int_equal(
        http_client_post(m.client, &o, URL("http", F->plain.port, "/echo"), body, 6, NULL, on_done, &p, &err),
        0);
    m.pending = 3;
    assert_int_equal(a.calls + b.calls + p.calls, 0); /* never synchronous */
    run_loop(&m, 10000);
    assert_int_equal(m.pending, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "body-a");
    assert_string_equal(b.body, "body-b");
    assert_string_equal(p.body, "posted");
    free(a.body);
    free(b.body);
    free(p.body);
    mctx_done(&m);
}

static void test_multi_errors(void **state)
{
    (void)state;
    mctx m;
    mctx_init(&m);
    http_options o = opts(), slow = opts(), pinned = opts();
    util_error err = {0};
    mreq refused = {.ctx = &m}, timeout = {.ctx = &m}, pin = {.ctx = &m};
    mreq big = {.ctx = &m}, reset = {.ctx = &m};
    slow.total_timeout_ms = 300;
    pinned.pin_sha256 = "sha256:00000000000000000000000000000000"
                        "00000000000000000000000000000000";
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->closed, "/"), on_done, &refused, &err), 0);
    assert_int_equal(
        http_client_get(m.client, &slow, URL("http", F->silent.port, "/"), on_done, &timeout, &err), 0);
    assert_int_equal(http_client_get(m.client, &pinned, URL("https", F->tls.port, "/"), on_done, &pin, &err),
                     0);
    o.max_response = 100;
    assert_int_equal(
        http_client_get(m.client, &o, URL("http", F->plain.port, "/chunked"), on_done, &big, &err), 0);
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->partial.port, "/"), on_done, &reset, &err),
                     0);
    m.pending = 5;
    run_loop(&m, 10000);
    assert_int_equal(m.pending, 0);
    mreq *all[] = {&refused, &timeout, &pin, &big, &reset};
    util_err want[] = {UTIL_ERR_NET_CONNECT, UTIL_ERR_NET_TIMEOUT, UTIL_ERR_NET_TLS_PIN,
                       UTIL_ERR_RESPONSE_TOO_LARGE, UTIL_ERR_NET_RESET};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(all[i]->calls, 1);
        assert_int_equal(all[i]->rc, -1);
        assert_int_equal(all[i]->code, want[i]);
    }
    /* a bad URL fails at once and never reaches the callback */
    assert_int_equal(http_client_get(m.client, &o, "gopher://x/", on_done, &refused, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_USAGE);
    assert_int_equal(refused.calls, 1);
    mctx_done(&m);
}

static void test_multi_https_pin(void **state)
{
    (void)state;
    mctx m;
    mctx_init(&m);
    http_options o = opts();
    util_error err = {0};
    mreq q = {.ctx = &m};
    o.pin_sha256 = F->ca_pin;
    assert_int_equal(http_client_get(m.client, &o, URL("https", F->tls.port, "/b"), on_done, &q, &err), 0);
    m.pending = 1;
    run_loop(&m, 10000);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.rc, 0);
    assert_string_equal(q.body, "body-b");
    free(q.body);
    mctx_done(&m);
}

static void test_multi_free_outstanding(void **state)
{
    (void)state;
    mctx m;
    mctx_init(&m);
    http_options o = opts();
    util_error err = {0};
    mreq q = {.ctx = &m};
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->silent.port, "/"), on_done, &q, &err), 0);
    m.pending = 1;
    run_loop(&m, 200); /* connected, waiting for an answer that never comes */
    assert_int_equal(q.calls, 0);
    http_client_free(m.client);
    m.client = NULL;
    assert_int_equal(q.calls, 0);
    http_client_free(NULL);
    mctx_done(&m);
}

static void test_multi_free_in_callback(void **state)
{
    (void)state;
    mctx m;
    mctx_init(&m);
    http_options o = opts();
    util_error err = {0};
    mreq fast = {.ctx = &m}, stuck = {.ctx = &m};
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->silent.port, "/"), on_done, &stuck, &err),
                     0);
    assert_int_equal(http_client_get(m.client, &o, URL("http", F->plain.port, "/a"), on_done, &fast, &err),
                     0);
    m.pending = 2;
    m.free_in_cb = true;
    run_loop(&m, 10000);
    assert_null(m.client);
    assert_int_equal(fast.calls, 1);
    assert_string_equal(fast.body, "body-a");
    assert_int_equal(stuck.calls, 0);
    free(fast.body);
    run_loop(&m, 100); /* nothing left that could call back */
    assert_int_equal(stuck.calls, 0);
    mctx_done(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_ok),
        cmocka_unit_test(test_post_echo),
        cmocka_unit_test(test_server_header_final_only),
        cmocka_unit_test(test_post_bad_content_type),
        cmocka_unit_test(test_status_404),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_detail_hides_query),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_proxy_unreachable),
        cmocka_unit_test(test_proxy_used),
        cmocka_unit_test(test_default_options),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_scep_url),
        cmocka_unit_test(test_scep_url_roundtrip),
        cmocka_unit_test(test_reuse_one_connection),
        cmocka_unit_test(test_reuse_other_server),
        cmocka_unit_test(test_reuse_server_closes),
        cmocka_unit_test(test_reuse_retry_once),
        cmocka_unit_test(test_fresh_no_retry),
        cmocka_unit_test(test_reuse_no_retry_after_bytes),
        cmocka_unit_test(test_reuse_after_too_large),
        cmocka_unit_test(test_https_ca_file),
        cmocka_unit_test(test_https_system_store),
        cmocka_unit_test(test_https_bad_ca_file),
        cmocka_unit_test(test_https_insecure),
        cmocka_unit_test(test_https_pin_ok),
        cmocka_unit_test(test_https_pin_wrong),
        cmocka_unit_test(test_https_pin_impostor),
        cmocka_unit_test(test_pin_bad_format),
        cmocka_unit_test(test_multi_concurrent),
        cmocka_unit_test(test_multi_errors),
        cmocka_unit_test(test_multi_https_pin),
        cmocka_unit_test(test_multi_free_outstanding),
        cmocka_unit_test(test_multi_free_in_callback),
    };
    return cmocka_run_group_tests_name("http", tests, group_setup, group_teardown);
}
