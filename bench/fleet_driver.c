/* The device side of bench/fleet: N devices whose auto-request timers share
 * one start time, each shifted by a random delay of up to S seconds (the
 * printer's "auto adjust issuance request time"), against one SCEP server.
 *
 * Before the clock starts, every device's PKCSReq is built with scepd's own
 * client code (src/client), so the timed part costs the driver no
 * private-key operation: it only does what the network sees from each
 * device, on fresh connections as scepd's agent does (GetCACaps, GetCACert,
 * POST PKIOperation), over libevent's HTTP client in one event loop. After
 * the clock stops, each CertRep is checked and opened with src/client: an
 * enrollment counts only when its reply is a verified SUCCESS carrying a
 * certificate for the device's key.
 *
 *   fleet_driver --url http://127.0.0.1:8080/scep --devices N --jitter S
 *                [--keys K] [--challenge PW] [--seed X] [--timeout T]
 *
 * Prints one line of key=value results (see bench/fleet). Bounded: the loop
 * ends at S + T seconds whatever happens (T: --timeout, 120 by default). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "client/client.h"

#define DEVICES_MAX 20000
#define KEYS_MAX 256

enum step { STEP_CAPS, STEP_CACERT, STEP_PKIOP, STEP_DONE };

typedef struct fleet fleet;

typedef struct device {
    fleet *f;
    int index;
    client_transaction t;
    uint8_t nonce[SCEP_NONCE_LEN];
    uint8_t *msg;
    size_t msg_len;
    double shift;      /* seconds after the common start */
    double start, end; /* monotonic seconds */
    enum step step;
    bool failed;
    char why[96];
    struct evhttp_connection *conn;
    struct event *timer;
    http_response reply; /* the CertRep */
} device;

struct fleet {
    struct event_base *base;
    const char *host, *path;
    int port;
    device *dev;
    int n, finished;
    int open_conns, peak_conns; /* requests in flight: each has a connection of its own */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fatal(const char *what, const util_error *err)
{
    fprintf(stderr, "fleet_driver: %s%s%s\n", what, err ? ": " : "", err ? err->detail : "");
    exit(1);
}

static void request(device *d);

static void finish(device *d, const char *why)
{
    if (why) {
        d->failed = true;
        snprintf(d->why, sizeof d->why, "%s", why);
    }
    d->end = now_s();
    d->step = STEP_DONE;
    if (++d->f->finished == d->f->n)
        event_base_loopexit(d->f->base, NULL);
}

static void on_reply(struct evhttp_request *req, void *arg)
{
    device *d = arg;
    static const char *names[] = {"GetCACaps", "GetCACert", "PKIOperation"};
    char why[96];
    int code = req ? evhttp_request_get_response_code(req) : 0;
    d->f->open_conns--;
    if (code != 200) {
        snprintf(why, sizeof why, "%s: %s %d", names[d->step],
                 code ? "HTTP" : "connection closed or timed out", code);
        /* evhttp frees the connection's requests itself; the connection goes
         * once the callback has returned */
        evhttp_connection_free_on_completion(d->conn);
        d->conn = NULL;
        finish(d, why);
        return;
    }
    if (d->step == STEP_PKIOP) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        d->reply.status = code;
        d->reply.body = malloc(len + 1);
        if (!d->reply.body)
            fatal("out of memory", NULL);
        evbuffer_remove(in, d->reply.body, len);
        d->reply.body[len] = 0;
        d->reply.body_len = len;
    }
    evhttp_connection_free_on_completion(d->conn);
    d->conn = NULL;
    if (d->step == STEP_PKIOP) {
        finish(d, NULL);
        return;
    }
    d->step++;
    request(d);
}

/* Each request on a connection of its own, as libcurl does for scepd. */
static void request(device *d)
{
    fleet *f = d->f;
    char uri[256];
    d->conn = evhttp_connection_base_new(f->base, NULL, f->host, (ev_uint16_t)f->port);
    struct evhttp_request *req = d->conn ? evhttp_request_new(on_reply, d) : NULL;
    if (!req) {
        finish(d, "cannot create the request");
        return;
    }
    /* a device of its own address, as on a real network: scepca limits the
     * connections from one address (src/edge) */
    char local[32];
    snprintf(local, sizeof local, "127.1.%d.%d", d->index / 250, d->index % 250 + 1);
    evhttp_connection_set_local_address(d->conn, local);
    evhttp_connection_set_timeout(d->conn, 60);
    evhttp_connection_set_retries(d->conn, 0);
    if (++f->open_conns > f->peak_conns)
        f->peak_conns = f->open_conns;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", f->host);
    evhttp_add_header(h, "Connection", "close");
    enum evhttp_cmd_type cmd = EVHTTP_REQ_GET;
    if (d->step == STEP_CAPS) {
        snprintf(uri, sizeof uri, "%s?operation=GetCACaps", f->path);
    } else if (d->step == STEP_CACERT) {
        snprintf(uri, sizeof uri, "%s?operation=GetCACert", f->path);
    } else {
        snprintf(uri, sizeof uri, "%s?operation=PKIOperation", f->path);
        evhttp_add_header(h, "Content-Type", "application/x-pki-message");
        evbuffer_add(evhttp_request_get_output_buffer(req), d->msg, d->msg_len);
        cmd = EVHTTP_REQ_POST;
    }
    if (evhttp_make_request(d->conn, req, cmd, uri) != 0) {
        f->open_conns--; /* no connection was attempted */
        evhttp_connection_free(d->conn);
        d->conn = NULL;
        finish(d, "evhttp_make_request failed");
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    device *d = arg;
    d->start = now_s();
    d->step = STEP_CAPS;
    request(d);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double rank(const double *v, int n, double q)
{
    if (n == 0)
        return 0;
    int i = (int)(q * n + 0.5) - 1; /* nearest rank */
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* "http://HOST:PORT/PATH" with a numeric host: the benchmark's own form. */
static void split_url(const char *url, char *host, size_t hlen, int *port, const char **path)
{
    const char *h = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    const char *colon = h ? strchr(h, ':') : NULL;
    const char *slash = colon ? strchr(colon, '/') : NULL;
    if (!colon || !slash || (size_t)(colon - h) >= hlen)
        fatal("--url must look like http://127.0.0.1:PORT/scep", NULL);
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = 0;
    *port = atoi(colon + 1);
    *path = slash;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *challenge = "secret";
    int n = 0, keys = 32;
    double jitter = 0, timeout = 120;
    unsigned seed = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            fatal("each option takes a value", NULL);
        if (!strcmp(argv[i], "--url"))
            url = v;
        else if (!strcmp(argv[i], "--devices"))
            n = atoi(v);
        else if (!strcmp(argv[i], "--jitter"))
            jitter = atof(v);
        else if (!strcmp(argv[i], "--keys"))
            keys = atoi(v);
        else if (!strcmp(argv[i], "--challenge"))
            challenge = v;
        else if (!strcmp(argv[i], "--seed"))
            seed = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(argv[i], "--timeout"))
            timeout = atof(v);
        else
            fatal("unknown option (see the comment at the top of bench/fleet_driver.c)", NULL);
    }
    if (!url || n < 1 || n > DEVICES_MAX || jitter < 0 || jitter > 3600 || keys < 1 || keys > KEYS_MAX ||
        timeout < 1 || timeout > 3600)
        fatal("--url and --devices 1..20000 are needed; --jitter 0..3600, --keys 1..256, --timeout 1..3600",
              NULL);
    struct rlimit rl = {(rlim_t)n * 2 + 256, (rlim_t)n * 2 + 256};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fprintf(stderr, "fleet_driver: cannot raise the open-file limit to %d: %s\n", n * 2 + 256,
                strerror(errno));
    if (http_global_init() != 0)
        fatal("curl_global_init failed", NULL);

    fleet f = {.n = n};
    char host[64];
    split_url(url, host, sizeof host, &f.port, &f.path);
    f.host = host;
    util_error err = {0};
    client_config cfg = {.url = url, .http = {.proxy = ""}};
    client_server srv = {0};
    if (client_discover(&cfg, &srv, time(NULL), &err) != 0)
        fatal("discovering the server", &err);

    /* untimed: the keys (shared round-robin: generating 2,000 RSA keys would
     * take minutes) and each device's PKCSReq with its own transactionID */
    EVP_PKEY *pool[KEYS_MAX] = {0};
    crypto_key_spec spec = {CRYPTO_KEY_RSA, 2048};
    for (int i = 0; i < keys; i++)
        if (crypto_key_generate(&spec, &pool[i], &err) != 0)
            fatal("generating a key", &err);
    f.dev = calloc((size_t)n, sizeof *f.dev);
    if (!f.dev)
        fatal("out of memory", NULL);
    srand(seed);
    time_t now = time(NULL);
    for (int i = 0; i < n; i++) {
        device *d = &f.dev[i];
        char cn[64];
        uint8_t *csr = NULL;
        size_t csr_len = 0;
        d->f = &f;
        d->index = i;
        d->shift = jitter > 0 ? jitter * ((double)rand() / ((double)RAND_MAX + 1.0)) : 0;
        snprintf(cn, sizeof cn, "fleet-device-%05d", i);
        client_enrollment e = {.now = now};
        e.csr.common_name = cn;
        e.csr.challenge_password = challenge;
        EVP_PKEY_up_ref(pool[i % keys]);
        d->t.new_key = pool[i % keys];
        client_choose(&cfg, &srv, &d->t.choice);
        if (client_enrollment_prepare(&srv, &e, &d->t, &csr, &csr_len, &err) != 0)
            fatal("preparing a request", &err);
        /* devices sharing a key still are different transactions */
        snprintf(d->t.transaction_id, sizeof d->t.transaction_id, "fleet-%u-%05d-%lld", seed, i,
                 (long long)now);
        if (client_pki_prepare(&srv, &d->t, d->t.request_type, csr, csr_len, now, d->nonce, &d->msg,
                               &d->msg_len, &err) != 0)
            fatal("building a PKCSReq", &err);
        OPENSSL_clear_free(csr, csr_len);
    }

    /* timed: every device's timer fires at t0 + shift */
    f.base = event_base_new();
    if (!f.base)
        fatal("event_base_new failed", NULL);
    for (int i = 0; i < n; i++) {
        device *d = &f.dev[i];
        double at = 0.2 + d->shift; /* all timers are armed before the first fires */
        struct timeval tv = {(time_t)at, (suseconds_t)((at - (double)(time_t)at) * 1e6)};
        d->timer = evtimer_new(f.base, on_timer, d);
        if (!d->timer || evtimer_add(d->timer, &tv) != 0)
            fatal("evtimer_add failed", NULL);
    }
    fprintf(stderr, "armed\n"); /* bench/fleet starts the server's CPU clock here */
    fflush(stderr);
    struct timeval limit = {(time_t)(jitter + timeout + 1), 0};
    event_base_loopexit(f.base, &limit);
    event_base_dispatch(f.base);
    double t_end = now_s();
    fprintf(stderr, "done\n"); /* and stops it here */
    fflush(stderr);

    /* untimed: open every CertRep */
    int ok = 0, failed = 0, unfinished = 0;
    double *lat = calloc((size_t)n, sizeof *lat);
    double first = 0, last = 0;
    char first_why[128] = "";
    int why_count = 0;
    for (int i = 0; i < n; i++) {
        device *d = &f.dev[i];
        if (d->step != STEP_DONE) {
            unfinished++;
            continue;
        }
        if (first == 0 || d->start < first)
            first = d->start;
        if (!d->failed) {
            client_result r = {0};
            util_error e2 = {0};
            if (client_pki_finish(&srv, &d->t, d->nonce, &d->reply, &r, &e2) != 0) {
                d->failed = true;
                snprintf(d->why, sizeof d->why, "CertRep: %.80s", e2.detail);
            } else if (r.status != SCEP_STATUS_SUCCESS || !r.cert) {
                d->failed = true;
                snprintf(d->why, sizeof d->why, "CertRep %s: %.60s", scep_pki_status_name(r.status),
                         r.failure_detail);
            }
            client_result_clear(&r);
        }
        if (d->failed) {
            failed++;
            if (!why_count++)
                snprintf(first_why, sizeof first_why, "%s", d->why);
            continue;
        }
        lat[ok++] = (d->end - d->start) * 1000;
        if (d->end > last)
            last = d->end;
    }
    qsort(lat, (size_t)ok, sizeof *lat, cmp_double);
    double wall = last - first;
    printf("devices=%d jitter=%g ok=%d failed=%d unfinished=%d wall_s=%.2f loop_s=%.2f enroll_per_s=%.1f "
           "p50_ms=%.1f p99_ms=%.1f max_ms=%.1f peak_conns=%d\n",
           n, jitter, ok, failed + unfinished, unfinished, wall, first ? t_end - first : 0,
           wall > 0 ? ok / wall : 0, rank(lat, ok, 0.50), rank(lat, ok, 0.99), ok ? lat[ok - 1] : 0,
           f.peak_conns);
    if (failed)
        printf("first failure: %s (%d failed)\n", first_why, failed);

    for (int i = 0; i < n; i++) {
        device *d = &f.dev[i];
        if (d->conn)
            evhttp_connection_free(d->conn);
        if (d->timer)
            event_free(d->timer);
        free(d->reply.body);
        OPENSSL_free(d->msg);
        client_transaction_clear(&d->t);
    }
    for (int i = 0; i < keys; i++)
        EVP_PKEY_free(pool[i]);
    free(lat);
    free(f.dev);
    event_base_free(f.base);
    client_server_clear(&srv);
    http_global_cleanup();
    return failed + unfinished ? 2 : 0;
}
