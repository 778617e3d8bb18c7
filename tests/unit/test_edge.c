/*
 * src/edge at the open-file limit, for real: the test process binds a
 * listener under the edge, lowers its own soft RLIMIT_NOFILE and fills
 * every free descriptor with dup(), so that the kernel answers the
 * listener's accept() with EMFILE. The listener must pause with back-off
 * (a handful of failed accepts and little CPU time, where a spinning loop
 * makes hundreds of thousands and burns a core), the failures must be
 * logged as one line per interval, and once the descriptors are free the
 * client that waited in the backlog and a new one must both be served.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edge/edge.h"
#include "util/log.h"

#define MAX_FILLERS 4096
#define PAUSED_PHASE_MS 10500 /* just over the edge's 10 s log interval */

static void on_request(struct evhttp_request *req, void *arg)
{
    edge_request_begin(arg, req);
    struct evbuffer *body = evbuffer_new();
    assert_non_null(body);
    evbuffer_add_printf(body, "served");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/* A blocking client socket connected to the listener (the kernel completes
 * the handshake from its backlog, whether or not the server accepts). */
static int client_connect(int port, int fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    static const char request[] = "GET /x HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    assert_int_equal(write(fd, request, sizeof request - 1), (ssize_t)(sizeof request - 1));
    return fd;
}

typedef struct reply {
    struct event_base *base;
    char text[512];
    size_t len;
    bool closed;
} reply;

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    reply *r = arg;
    (void)what;
    ssize_t n = read(fd, r->text + r->len, sizeof r->text - 1 - r->len);
    if (n <= 0) {
        r->closed = true;
        event_base_loopbreak(r->base);
        return;
    }
    r->len += (size_t)n;
}

/* Runs the loop until the server has answered fd and closed it (HTTP/1.0);
 * at most 20 s, which only a broken edge reaches. */
static void await_reply(struct event_base *base, int fd, reply *r)
{
    memset(r, 0, sizeof *r);
    r->base = base;
    struct event *ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, r);
    assert_non_null(ev);
    assert_int_equal(event_add(ev, NULL), 0);
    struct timeval limit = {20, 0};
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    event_free(ev);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static unsigned count_lines(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_emfile_backoff(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct evhttp *http = evhttp_new(base);
    assert_non_null(http);
    edge *e = edge_new(base, NULL);
    assert_non_null(e);
    assert_int_equal(edge_add_http(e, http, NULL, NULL), 0);
    evhttp_set_gencb(http, on_request, e);
    struct evhttp_bound_socket *sock = NULL;
    util_error err = {0};
    assert_int_equal(edge_bind(e, http, "127.0.0.1", 0, &sock, &err), 0);
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &slen), 0);
    int port = ntohs(sin.sin_port);

    /* the log goes to a file for the whole test */
    FILE *log = tmpfile();
    assert_non_null(log);
    fflush(stderr);
    int saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_int_equal(dup2(fileno(log), 2), 2);
    util_log_setup("test_edge", UTIL_LOG_INFO, false);

    /* the client's socket exists before the descriptors run out */
    int waiting = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(waiting >= 0);
    struct rlimit saved, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    if (low.rlim_cur == RLIM_INFINITY || low.rlim_cur > 1024)
        low.rlim_cur = 1024;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int fillers[MAX_FILLERS];
    size_t filled = 0;
    while (filled < MAX_FILLERS) {
        int fd = dup(0);
        if (fd < 0) {
            assert_int_equal(errno, EMFILE);
            break;
        }
        fillers[filled++] = fd;
    }
    assert_true(filled > 0 && filled < MAX_FILLERS);

    client_connect(port, waiting);
    double cpu_before = cpu_seconds();
    struct timeval phase = {PAUSED_PHASE_MS / 1000, (PAUSED_PHASE_MS % 1000) * 1000};
    event_base_loopexit(base, &phase);
    event_base_dispatch(base);
    double cpu_used = cpu_seconds() - cpu_before;
    edge_stats st;
    edge_get_stats(e, &st);
    unsigned long errors_paused = st.accept_errors;
    assert_int_equal(st.open, 0);

    /* descriptors free again */
    for (size_t i = 0; i < filled; i++)
        close(fillers[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    reply r;
    await_reply(base, waiting, &r);
    assert_true(r.closed);
    assert_non_null(strstr(r.text, "HTTP/1.0 200 OK"));
    assert_non_null(strstr(r.text, "served"));
    int fresh = client_connect(port, -1);
    await_reply(base, fresh, &r);
    assert_non_null(strstr(r.text, "HTTP/1.0 200 OK"));
    close(fresh);
    close(waiting);
    edge_get_stats(e, &st);

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    long size = ftell(log);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    rewind(log);
    assert_int_equal(fread(text, 1, (size_t)size, log), (size_t)size);
    fclose(log);

    /* back-off, not a spin: the first try, then one per pause (50 ms
     * doubling to 2 s) makes about 10 in the phase; a loop that retried at
     * once would make hundreds of thousands and use the phase's CPU */
    if (errors_paused < 1 || errors_paused > 50 || cpu_used > 3.0)
        fail_msg("accept errors %lu, CPU %.2f s over %d ms; log:\n%s", errors_paused, cpu_used,
                 PAUSED_PHASE_MS, text);
    /* one line per 10 s interval, naming the error, never one per accept */
    unsigned lines = count_lines(text, "accept error(s): Too many open files");
    if (lines < 1 || lines > 2)
        fail_msg("%u accept-error lines; log:\n%s", lines, text);
    assert_int_equal(st.accept_errors, errors_paused); /* none once free */
    free(text);
    evhttp_free(http);
    edge_free(e);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emfile_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
