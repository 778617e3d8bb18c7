/*
 * src/agent against a real scepca on loopback, with the clock and the
 * random source injected: the scheduler (start time, jitter, retries and
 * intervals, the cases that must not poll, periodic renewal with delete-old,
 * runs missed while the daemon was down) is driven by advancing a variable
 * and calling agent_tick(), never by sleeping. The network and key
 * generation are real, so the event loop is run in bounded steps until the
 * state a test waits for is reached.
 *
 * scepca is $SCEPD_BUILD_ROOT/src/cmd/scepca (or $SCEPCA); the tests that
 * need it are skipped when it is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tempdir.h"
#include "agent/agent_internal.h"
#include "crypto/seal.h"
#include "http/http.h"
#include "util/log.h"
#include "util/ossl.h"

#define DAY 86400
#define PW "s3cret-challenge"
#define WAIT_MS 15000 /* per awaited state: key generation and a SCEP round trip */

typedef struct fx {
    char dir[64];
    char state[128];
    char cadir[128];
    char scepca[512];
    int64_t now;
    bool real_random;
    uint32_t rand_value;
    uint32_t rand_bound; /* the bound of the last call */
    int rand_calls;
    int max_keys;
    struct event_base *base;
    agent *a;
    pid_t ca_pid;
    char ca_url[160]; /* http://127.0.0.1:PORT/scep */
    int listen_fd;    /* a silent listener: counts connection attempts */
    bool exports;     /* agent_open configures function "f1" exporting to dir/f1.key, dir/f1.crt */
    /* the login thread waits on login_gate before each hash while hold_logins */
    bool hold_logins;
    sem_t login_gate;
    sem_t login_entered; /* posted by the login thread as each hash begins */
    crypto_kek *kek;     /* random per test; agent_open passes it */
} fx;

/* ---- clock and random ---- */

static int64_t fake_clock(void *arg)
{
    return ((fx *)arg)->now;
}

static void login_hook(void *arg)
{
    fx *f = arg;
    if (!f->hold_logins)
        return;
    sem_post(&f->login_entered);
    sem_wait(&f->login_gate);
}

static uint32_t fake_random(void *arg, uint32_t bound)
{
    fx *f = arg;
    f->rand_bound = bound;
    f->rand_calls++;
    return f->rand_value < bound ? f->rand_value : bound - 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- files ---- */

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char *buf = calloc(1, 65536);
    if (buf)
        (void)!fread(buf, 1, 65535, fp);
    fclose(fp);
    return buf;
}

/* ---- scepca ---- */

static bool find_scepca(fx *f)
{
    const char *env = getenv("SCEPCA");
    const char *root = getenv("SCEPD_BUILD_ROOT");
    if (env && access(env, X_OK) == 0) {
        snprintf(f->scepca, sizeof f->scepca, "%s", env);
        return true;
    }
    if (root) {
        snprintf(f->scepca, sizeof f->scepca, "%s/src/cmd/scepca", root);
        return access(f->scepca, X_OK) == 0;
    }
    return false;
}

/* Runs scepca with argv (NULL-terminated, without the program) to the end;
 * stdout goes to `out` (may be NULL). Returns the exit status. */
static int scepca_run(fx *f, const char *out, const char *const *args)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = f->scepca;
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int log = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 1);
        if (log >= 0)
            dup2(log, 2);
        execv(f->scepca, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    for (int i = 0; i < 3000; i++) { /* at most 30 s */
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        if (got < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("scepca %s did not finish", argv[1]);
    return -1;
}

static void ca_init(fx *f)
{
    const char *args[] = {"init", "--dir", f->cadir, NULL};
    assert_int_equal(scepca_run(f, NULL, args), 0);
}

/* `scepca serve` on a free port with extra options (NULL-terminated). */
static void ca_serve(fx *f, ...)
{
    char out[200], log[200];
    snprintf(out, sizeof out, "%s/serve.out", f->dir);
    snprintf(log, sizeof log, "%s/serve.log", f->dir);
    const char *argv[24] = {f->scepca, "serve", "--dir", f->cadir, "--listen", "127.0.0.1:0"};
    size_t n = 6;
    va_list ap;
    va_start(ap, f);
    for (const char *s; (s = va_arg(ap, const char *)) && n < 23;)
        argv[n++] = s;
    va_end(ap);
    argv[n] = NULL;
    unlink(out);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int lf = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0)
            dup2(fd, 1);
        if (lf >= 0)
            dup2(lf, 2);
        execv(f->scepca, (char *const *)argv);
        _exit(127);
    }
    f->ca_pid = pid;
    for (int i = 0; i < 500; i++) { /* at most 5 s */
        char *text = slurp(out);
        char *at = text ? strstr(text, "listening on http://") : NULL;
        if (at && strchr(at, '\n')) {
            int port = 0;
            if (sscanf(at, "listening on http://127.0.0.1:%d", &port) == 1)
                snprintf(f->ca_url, sizeof f->ca_url, "http://127.0.0.1:%d/scep", port);
            free(text);
            assert_true(port > 0);
            return;
        }
        free(text);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            f->ca_pid = 0;
            fail_msg("scepca serve exited at start");
        }
        usleep(10000);
    }
    fail_msg("scepca serve printed no address");
}

static void ca_stop(fx *f)
{
    if (f->ca_pid <= 0)
        return;
    kill(f->ca_pid, SIGTERM);
    int i = 0;
    for (; i < 300; i++) { /* at most 3 s, then SIGKILL */
        pid_t got = waitpid(f->ca_pid, NULL, WNOHANG);
        if (got == f->ca_pid || (got < 0 && errno == ECHILD))
            break;
        usleep(10000);
    }
    if (i == 300) {
        kill(f->ca_pid, SIGKILL);
        waitpid(f->ca_pid, NULL, 0);
    }
    f->ca_pid = 0;
}

/* The scepca ID of the pending request with this transactionID. */
static long ca_pending_id(fx *f, const char *tid)
{
    char out[200];
    snprintf(out, sizeof out, "%s/list.out", f->dir);
    const char *args[] = {"list", "--dir", f->cadir, "--pending", NULL};
    assert_int_equal(scepca_run(f, out, args), 0);
    char *text = slurp(out);
    assert_non_null(text);
    long id = 0;
    for (char *line = text; line && *line && !id;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (!strncmp(line, "request ", 8) && strstr(line, tid))
            id = strtol(line + 8, NULL, 10);
        line = end ? end + 1 : NULL;
    }
    if (!id)
        print_error("no pending request with tid %s in:\n%s\n", tid, text);
    free(text);
    assert_true(id > 0);
    return id;
}

/* ---- the agent ---- */

static void agent_open(fx *f)
{
    agent_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = f->state;
    cfg.max_keys = f->max_keys;
    cfg.initial_url = f->ca_url[0] ? f->ca_url : NULL;
    cfg.clock = fake_clock;
    cfg.random = f->real_random ? NULL : fake_random;
    cfg.hook_arg = f;
    cfg.login_hook = login_hook;
    cfg.kek = f->kek;
    if (f->exports) {
        agent_function *fn = &cfg.functions[cfg.function_count++];
        snprintf(fn->name, sizeof fn->name, "f1");
        snprintf(fn->export_key, sizeof fn->export_key, "%s/f1.key", f->dir);
        snprintf(fn->export_cert, sizeof fn->export_cert, "%s/f1.crt", f->dir);
    }
    util_error err = {0};
    if (agent_new(f->base, &cfg, "admin-password-1", NULL, &f->a, &err) != 0)
        fail_msg("agent_new: %s: %s", util_err_code(err.code), err.detail);
}

static void agent_close(fx *f)
{
    agent_free(f->a);
    f->a = NULL;
}

/* Stops the agent, has scepca approve the pending request with this
 * transactionID, and starts the agent again five seconds later. */
static void approve_across_restart(fx *f, const char *tid)
{
    agent_close(f);
    char approve_id[24];
    snprintf(approve_id, sizeof approve_id, "%ld", ca_pending_id(f, tid));
    const char *args[] = {"approve", "--dir", f->cadir, approve_id, NULL};
    assert_int_equal(scepca_run(f, NULL, args), 0);
    f->now += 5;
    agent_open(f);
    agent_tick(f->a);
}

static void set_url(fx *f, const char *url, int timeout_s)
{
    json_t *in = json_pack("{s:s, s:i, s:i, s:i}", "url", url, "timeout_s", timeout_s, "poll_interval_s", 5,
                           "poll_max", 1);
    util_error err = {0};
    int rc = agent_scep_settings_put(f->a, in, "test", &err);
    json_decref(in);
    if (rc != 0)
        fail_msg("settings: %s: %s", util_err_code(err.code), err.detail);
}

static json_t *key_params(const char *name, const char *challenge)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s}", "key_name", name, "common_name", "device-1",
                     "key_algorithm", "rsa", "key_length", 2048, "challenge_password", challenge);
}

/* PUT auto-request; `in` is consumed. Returns 0 or the error code. */
static util_err auto_put(fx *f, json_t *in)
{
    util_error err = {0};
    int rc = agent_auto_put(f->a, in, "test", &err);
    json_decref(in);
    return rc == 0 ? UTIL_ERR_NONE : err.code;
}

static void auto_put_ok(fx *f, json_t *in)
{
    util_error err = {0};
    int rc = agent_auto_put(f->a, in, "test", &err);
    json_decref(in);
    if (rc != 0)
        fail_msg("auto_put: %s: %s", util_err_code(err.code), err.detail);
}

static void fmt_time(int64_t t, char *out)
{
    agent_time_format(t, out, 32);
}

static int64_t time_of(const json_t *j)
{
    int64_t t = 0;
    if (!json_is_string(j))
        return 0;
    assert_int_equal(agent_time_parse(json_string_value(j), &t), 0);
    return t;
}

static json_t *auto_status(fx *f)
{
    json_t *st = agent_status(f->a);
    assert_non_null(st);
    json_t *out = json_incref(json_object_get(st, "auto_request"));
    json_decref(st);
    assert_non_null(out);
    return out;
}

static size_t request_count(fx *f)
{
    util_error err = {0};
    json_t *list = agent_request_list(f->a, &err);
    assert_non_null(list);
    size_t n = json_array_size(list);
    json_decref(list);
    return n;
}

static json_t *request_get(fx *f, int64_t id)
{
    util_error err = {0};
    json_t *r = agent_request_get(f->a, id, &err);
    if (!r)
        fail_msg("request %lld: %s", (long long)id, err.detail);
    return r;
}

static int64_t latest_id(fx *f)
{
    json_t *st = agent_status(f->a);
    int64_t id = json_integer_value(json_object_get(json_object_get(st, "latest_request"), "id"));
    json_decref(st);
    return id;
}

static const char *sget(const json_t *j, const char *k)
{
    const char *s = json_string_value(json_object_get(j, k));
    return s ? s : "";
}

static const char *error_code(const json_t *r)
{
    const char *s = json_string_value(json_object_get(json_object_get(r, "error"), "code"));
    return s ? s : "";
}

static void loop_once(fx *f)
{
    event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Runs the loop until request `id` is in `state` with at least `attempts`
 * attempts; any other terminal state fails the test with the row. */
static json_t *wait_state(fx *f, int64_t id, const char *state, int attempts)
{
    int64_t deadline = mono_ms() + WAIT_MS;
    for (;;) {
        json_t *r = request_get(f, id);
        const char *s = sget(r, "state");
        if (!strcmp(s, state) && json_integer_value(json_object_get(r, "attempts")) >= attempts)
            return r;
        bool terminal = !strcmp(s, "failed") || !strcmp(s, "acquired") || !strcmp(s, "registered") ||
                        !strcmp(s, "cancelled");
        if (terminal || mono_ms() > deadline) {
            char *text = json_dumps(r, JSON_COMPACT);
            print_error("waiting for %s/%d: %s\n", state, attempts, text ? text : "?");
            free(text);
            json_decref(r);
            fail_msg("request %lld did not reach %s", (long long)id, state);
        }
        json_decref(r);
        loop_once(f);
        usleep(2000);
    }
}

/* Runs the loop for about `ms` milliseconds. */
static void run_for(fx *f, int ms)
{
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        loop_once(f);
        usleep(2000);
    }
}

static void advance(fx *f, int64_t seconds)
{
    f->now += seconds;
    agent_tick(f->a);
}

/* ---- fixture ---- */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char *tmp = h_tempdir();
    snprintf(f->dir, sizeof f->dir, "%s", tmp);
    free(tmp);
    snprintf(f->state, sizeof f->state, "%s/state", f->dir);
    snprintf(f->cadir, sizeof f->cadir, "%s/ca", f->dir);
    int64_t t = (int64_t)time(NULL);
    f->now = t - t % 60; /* on a minute: periodic timers start on one */
    f->listen_fd = -1;
    f->base = event_base_new();
    assert_non_null(f->base);
    uint8_t kek[CRYPTO_KEK_LEN];
    util_error err;
    assert_int_equal(RAND_bytes(kek, sizeof kek), 1);
    assert_int_equal(crypto_kek_from_bytes(kek, sizeof kek, &f->kek, &err), 0);
    OPENSSL_cleanse(kek, sizeof kek);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    agent_close(f);
    ca_stop(f);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    event_base_free(f->base);
    h_rmtree(f->dir);
    crypto_kek_free(f->kek);
    free(f);
    return 0;
}

static fx *need_ca(void **state)
{
    fx *f = *state;
    if (!find_scepca(f)) {
        /* tests/run fails any skip: make test always builds scepca */
        print_message("scepca not built: skipped (set SCEPCA or SCEPD_BUILD_ROOT)\n");
        skip();
    }
    ca_init(f);
    return f;
}

/* ---- the pure schedule ---- */

static void test_schedule_following(void **state)
{
    (void)state;
    agent_auto cfg;
    memset(&cfg, 0, sizeof cfg);
    const int64_t base = 1800000000;
    cfg.interval_days = 30;
    /* one-shot timer: no following run */
    assert_int_equal(agent_schedule_following(&cfg, base, base), 0);
    assert_int_equal(agent_schedule_following(&cfg, base, base + 90 * DAY), 0);
    cfg.periodic = true;
    /* the next period after the base */
    assert_int_equal(agent_schedule_following(&cfg, base, base), base + 30 * DAY);
    assert_int_equal(agent_schedule_following(&cfg, base, base + 600), base + 30 * DAY);
    assert_int_equal(agent_schedule_following(&cfg, base, base + 30 * DAY - 1), base + 30 * DAY);
    /* missed periods are skipped to the next base in the future, on the grid */
    assert_int_equal(agent_schedule_following(&cfg, base, base + 30 * DAY), base + 60 * DAY);
    assert_int_equal(agent_schedule_following(&cfg, base, base + 95 * DAY), base + 120 * DAY);
    assert_int_equal(agent_schedule_following(&cfg, base, base + 120 * DAY), base + 150 * DAY);
    cfg.interval_days = 1;
    assert_int_equal(agent_schedule_following(&cfg, base, base + 10 * DAY + 5), base + 11 * DAY);
    /* a non-positive interval is treated as one-shot */
    cfg.interval_days = 0;
    assert_int_equal(agent_schedule_following(&cfg, base, base), 0);
}

/* ---- start time and jitter ---- */

static void test_start_time_and_jitter(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    char start[32];
    int64_t s = f->now + 3600;
    fmt_time(s, start);
    f->rand_value = 600;
    auto_put_ok(f, json_pack("{s:b, s:s, s:b, s:b, s:o}", "enabled", 1, "start", start, "auto_adjust", 1,
                             "auto_restart", 1, "key", key_params("Dev", PW)));
    /* the jitter is drawn from [0, 600] and shown */
    assert_int_equal(f->rand_bound, AGENT_JITTER_MAX_S + 1);
    json_t *st = auto_status(f);
    assert_int_equal(json_integer_value(json_object_get(st, "jitter_s")), 600);
    assert_int_equal(time_of(json_object_get(st, "next_run")), s + 600);
    assert_true(json_is_true(json_object_get(st, "enabled")));
    json_decref(st);
    /* nothing before the start, nor before start + jitter */
    advance(f, 3599);
    run_for(f, 50);
    assert_int_equal(request_count(f), 0);
    advance(f, 600);
    assert_int_equal(f->now, s + 599);
    run_for(f, 50);
    assert_int_equal(request_count(f), 0);
    /* at start + jitter it runs */
    advance(f, 1);
    assert_int_equal(request_count(f), 1);
    int64_t id = latest_id(f);
    json_t *r = request_get(f, id);
    assert_string_equal(sget(r, "kind"), "auto");
    assert_string_equal(sget(r, "key_name"), "Dev");
    json_decref(r);
    /* one-shot: no next run; with auto_restart the pair registers by itself */
    st = auto_status(f);
    assert_true(json_is_null(json_object_get(st, "next_run")));
    assert_int_equal(json_integer_value(json_object_get(st, "last_request_id")), id);
    json_decref(st);
    json_decref(wait_state(f, id, "registered", 0));
    util_error err = {0};
    json_t *k = agent_key_get(f->a, "Dev", &err);
    assert_non_null(k);
    assert_string_equal(sget(k, "state"), "registered");
    assert_string_equal(sget(k, "subject"), "CN=device-1");
    json_decref(k);
    st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "acquired");
    json_decref(st);
    /* a one-shot timer does not fire again */
    advance(f, 40 * DAY);
    run_for(f, 50);
    assert_int_equal(request_count(f), 1);

    /* without auto_adjust there is no jitter and no draw */
    f->rand_calls = 0;
    int64_t s2 = f->now + 120;
    fmt_time(s2, start);
    auto_put_ok(f, json_pack("{s:b, s:s, s:b, s:o}", "enabled", 1, "start", start, "auto_adjust", 0, "key",
                             key_params("Other", PW)));
    assert_int_equal(f->rand_calls, 0);
    st = auto_status(f);
    assert_int_equal(json_integer_value(json_object_get(st, "jitter_s")), 0);
    assert_int_equal(time_of(json_object_get(st, "next_run")), s2);
    json_decref(st);
    /* disabled: no next run */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    st = auto_status(f);
    assert_true(json_is_null(json_object_get(st, "next_run")));
    json_decref(st);
    advance(f, 3600);
    run_for(f, 50);
    assert_int_equal(request_count(f), 1);
}

/* With the real random source every draw stays within 0..600 and is what
 * status shows. */
static void test_jitter_real_random(void **state)
{
    fx *f = *state;
    f->real_random = true;
    agent_open(f);
    char start[32];
    int64_t s = f->now + DAY;
    fmt_time(s, start);
    int seen_distinct = 0, first = -1;
    for (int i = 0; i < 40; i++) {
        auto_put_ok(f, json_pack("{s:b, s:s, s:b, s:o}", "enabled", 1, "start", start, "auto_adjust", 1,
                                 "key", key_params("Dev", PW)));
        json_t *st = auto_status(f);
        int j = (int)json_integer_value(json_object_get(st, "jitter_s"));
        assert_in_range(j, 0, AGENT_JITTER_MAX_S);
        assert_int_equal(time_of(json_object_get(st, "next_run")), s + j);
        json_decref(st);
        if (first < 0)
            first = j;
        else if (j != first)
            seen_distinct = 1;
    }
    assert_true(seen_distinct);
}

/* ---- retries and intervals ---- */

static json_t *auto_doc(const char *start, bool polling, int retries, int interval_s, json_t *key)
{
    return json_pack("{s:b, s:s, s:b, s:{s:b, s:i, s:i}, s:o}", "enabled", 1, "start", start, "auto_adjust",
                     0, "polling", "enabled", polling, "retries", retries, "interval_s", interval_s, "key",
                     key);
}

static int64_t fire_now(fx *f, json_t *doc)
{
    auto_put_ok(f, doc);
    agent_tick(f->a);
    assert_int_equal(request_count(f) > 0, 1);
    return latest_id(f);
}

static void test_pending_retries(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, "--pending", NULL);
    agent_open(f);
    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, auto_doc(start, true, 2, 30, key_params("Dev", PW)));
    json_t *st = auto_status(f);
    assert_int_equal(json_integer_value(json_object_get(st, "attempts_left")), 2);
    json_decref(st);
    /* the first PENDING: attempt 1, the next poll interval_s later */
    json_t *r = wait_state(f, id, "pending", 1);
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
    /* tries: how often the request went to the server */
    assert_int_equal(json_integer_value(json_object_get(r, "tries")), 1);
    assert_int_equal(time_of(json_object_get(r, "next_attempt_at")), f->now + 30);
    assert_string_equal(error_code(r), "pending");
    const char *tid = sget(r, "transaction_id");
    assert_int_equal(strlen(tid), 64);
    char tid_copy[80];
    snprintf(tid_copy, sizeof tid_copy, "%s", tid);
    json_decref(r);
    /* no poll before the interval has passed */
    advance(f, 29);
    run_for(f, 100);
    r = request_get(f, id);
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
    json_decref(r);
    /* manual requests are refused while the timer is on, and while one runs */
    util_error err = {0};
    int64_t other = 0;
    json_t *in = key_params("Manual", PW);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &other, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_AUTO_REQUEST_ENABLED);
    /* poll 1 */
    advance(f, 1);
    r = wait_state(f, id, "pending", 2);
    assert_int_equal(time_of(json_object_get(r, "next_attempt_at")), f->now + 30);
    assert_string_equal(sget(r, "transaction_id"), tid_copy);
    json_decref(r);
    /* poll 2 is the last: after `retries` polls the request fails */
    advance(f, 30);
    r = wait_state(f, id, "failed", 2);
    assert_string_equal(error_code(r), "pending");
    assert_int_equal(json_integer_value(json_object_get(r, "tries")), 3); /* the first and two polls */
    assert_true(json_is_null(json_object_get(r, "next_attempt_at")));
    json_decref(r);
    st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "pending");
    assert_int_equal(json_integer_value(json_object_get(st, "attempts_left")), 0);
    json_decref(st);
    /* nothing runs any more */
    advance(f, 3600);
    run_for(f, 50);
    assert_int_equal(request_count(f), 1);

    /* without polling a deferred auto request fails at once */
    char start2[32];
    fmt_time(f->now, start2);
    id = fire_now(f, auto_doc(start2, false, 5, 30, key_params("Dev", PW)));
    r = wait_state(f, id, "failed", 0);
    assert_string_equal(error_code(r), "pending");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "tries")), 1);
    json_decref(r);

    /* a manual request polls with the settings' interval; REQUEST_BUSY while it waits */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    set_url(f, f->ca_url, 10);
    assert_int_equal(agent_request_create(f->a, in, "test", &other, &err), 0);
    r = wait_state(f, other, "pending", 1);
    assert_int_equal(time_of(json_object_get(r, "next_attempt_at")), f->now + 5);
    json_decref(r);
    json_t *in2 = key_params("Manual2", PW);
    assert_int_not_equal(agent_request_create(f->a, in2, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_REQUEST_BUSY);
    json_decref(in2);
    json_decref(in);

    /* the pending request survives a restart of the agent and is approved */
    r = request_get(f, other);
    snprintf(tid_copy, sizeof tid_copy, "%s", sget(r, "transaction_id"));
    json_decref(r);
    store_request row;
    assert_int_equal(store_request_get(f->a->st, other, &row, &err), 0);
    char *signer_before = strdup(row.signer_cert_pem);
    store_request_clear(&row);
    approve_across_restart(f, tid_copy);
    r = wait_state(f, other, "acquired", 0);
    assert_string_equal(error_code(r), "");
    json_decref(r);
    /* the CertPolls after the restart came from the certificate that signed the PKCSReq */
    assert_int_equal(store_request_get(f->a->st, other, &row, &err), 0);
    assert_string_equal(row.signer_cert_pem, signer_before);
    store_request_clear(&row);
    free(signer_before);
    json_t *k = agent_key_get(f->a, "Manual", &err);
    assert_non_null(k);
    assert_string_equal(sget(k, "state"), "acquired");
    json_decref(k);
}

/* The server cannot be reached: auto requests retry, manual ones do not. */
static void test_connect_retries(void **state)
{
    fx *f = *state;
    /* a port bound but not listening, held for the whole test: connections
     * are refused, and no other process can take the port meanwhile */
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(f->ca_url, sizeof f->ca_url, "http://127.0.0.1:%d/scep", ntohs(sa.sin_port));
    agent_open(f);
    set_url(f, f->ca_url, 5);
    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, auto_doc(start, true, 2, 60, key_params("Dev", PW)));
    json_t *r = wait_state(f, id, "contacting_server", 1);
    assert_string_equal(error_code(r), "net_connect");
    assert_int_equal(json_integer_value(json_object_get(r, "tries")), 1); /* waiting for the second */
    assert_int_equal(time_of(json_object_get(r, "next_attempt_at")), f->now + 60);
    json_decref(r);
    advance(f, 59);
    run_for(f, 50);
    r = request_get(f, id);
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
    json_decref(r);
    advance(f, 1);
    json_decref(wait_state(f, id, "contacting_server", 2));
    advance(f, 60);
    r = wait_state(f, id, "failed", 2);
    assert_string_equal(error_code(r), "net_connect");
    json_decref(r);
    json_t *st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "net_connect");
    json_decref(st);

    /* a manual request reports the communication error at once */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    util_error err = {0};
    json_t *in = key_params("Manual", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    r = wait_state(f, id, "failed", 0);
    assert_string_equal(error_code(r), "net_connect");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 0);
    json_decref(r);
}

/* ---- the three cases that must not poll ---- */

static void test_no_poll_on_failure(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, auto_doc(start, true, 5, 10, key_params("Dev", "wrong-password")));
    json_t *r = wait_state(f, id, "failed", 0);
    assert_string_equal(error_code(r), "fail_bad_request");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 0);
    assert_true(json_is_null(json_object_get(r, "next_attempt_at")));
    /* the catalogue's words travel with the code */
    const json_t *e = json_object_get(r, "error");
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        util_err_message(UTIL_ERR_FAIL_BAD_REQUEST));
    json_decref(r);
    json_t *st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "fail_bad_request");
    json_decref(st);
    advance(f, 10);
    run_for(f, 100);
    assert_int_equal(request_count(f), 1);
    util_error err = {0};
    assert_null(agent_key_get(f->a, "Dev", &err));
}

static void test_no_poll_key_store_full(void **state)
{
    fx *f = *state;
    /* a listener that never answers: any connection attempt would show */
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(f->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(f->ca_url, sizeof f->ca_url, "http://127.0.0.1:%d/scep", ntohs(sa.sin_port));
    f->max_keys = 1; /* DefaultTLS fills it */
    agent_open(f);
    json_t *status = agent_status(f->a);
    assert_int_equal(json_integer_value(json_object_get(status, "registered_keys")), 1);
    assert_int_equal(json_integer_value(json_object_get(status, "max_keys")), 1);
    json_decref(status);
    char start[32];
    fmt_time(f->now, start);
    /* the timer fires: refused up front, no request row, no key */
    auto_put_ok(f, auto_doc(start, true, 5, 10, key_params("Dev", PW)));
    agent_tick(f->a);
    assert_int_equal(request_count(f), 0);
    json_t *st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "key_store_full");
    json_decref(st);
    advance(f, 10);
    run_for(f, 100);
    assert_int_equal(request_count(f), 0);
    /* the same for a manual request: 409 at once, naming what fills the store */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    util_error err = {0};
    int64_t id = 0;
    json_t *in = key_params("Manual", PW);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    assert_int_equal(err.code, UTIL_ERR_KEY_STORE_FULL);
    assert_string_equal(err.detail, "1 of 1 key pairs stored: 1 registered and 0 acquired pairs waiting for "
                                    "restart; restart or delete one");
    assert_int_equal(request_count(f), 0);
    /* no connection was ever attempted */
    struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
}

/* Acquired pairs that wait for a restart fill the store too: the next
 * request is refused before it is made, with both counts. */
static void test_key_store_counts_acquired(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    f->max_keys = 2; /* DefaultTLS and one more */
    agent_open(f);
    util_error err = {0};
    int64_t id = 0;
    json_t *in = key_params("K1", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "acquired", 0));
    size_t before = request_count(f);
    in = key_params("K2", PW);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_KEY_STORE_FULL);
    assert_string_equal(err.detail, "2 of 2 key pairs stored: 1 registered and 1 acquired pairs waiting for "
                                    "restart; restart or delete one");
    assert_int_equal(request_count(f), before);
    /* once the acquired pair is deleted, the request is made */
    assert_int_equal(agent_key_delete(f->a, "K1", "test", &err), 0);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "acquired", 0));
}

/* DELETE of request `id`: 0 or the error code. */
static util_err cancel(fx *f, int64_t id)
{
    util_error err = {0};
    return agent_request_cancel(f->a, id, "test", &err) == 0 ? UTIL_ERR_NONE : err.code;
}

/* The row is cancelled and holds no secret. */
static void assert_cancelled(fx *f, int64_t id)
{
    store_request row;
    util_error err = {0};
    assert_int_equal(store_request_get(f->a->st, id, &row, &err), 0);
    assert_string_equal(store_state_name(row.state), "cancelled");
    assert_null(row.key_sealed);
    assert_null(row.signer_key_sealed);
    assert_null(row.challenge_sealed);
    assert_int_equal(row.next_attempt_at, 0);
    store_request_clear(&row);
    json_t *r = request_get(f, id);
    assert_string_equal(sget(r, "state"), "cancelled");
    assert_true(json_is_null(json_object_get(r, "error")));
    json_decref(r);
}

/* Runs the loop until the cancelled runs' threads and transfers are back. */
static void wait_orphans(fx *f)
{
    int64_t deadline = mono_ms() + WAIT_MS;
    while (f->a->orphan_count > 0) {
        if (mono_ms() > deadline)
            fail_msg("%zu cancelled runs did not come back", f->a->orphan_count);
        loop_once(f);
        usleep(2000);
    }
}

/* Cancelling while the server defers the request (between polls), while
 * the key is being generated, and then the ones that cannot be. */
static void test_cancel_pending_and_keygen(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, "--pending", NULL);
    agent_open(f);
    util_error err = {0};
    int64_t id = 0, id2 = 0;
    json_t *in = key_params("K1", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "pending", 1));
    assert_int_equal(cancel(f, id), UTIL_ERR_NONE);
    assert_cancelled(f, id);
    json_t *st = agent_status(f->a);
    assert_string_equal(sget(json_object_get(st, "latest_request"), "state"), "cancelled");
    json_decref(st);
    /* no poll follows, however much time passes */
    f->now += 3600;
    agent_tick(f->a);
    run_for(f, 50);
    assert_cancelled(f, id);
    /* the device is free at once: the next request starts (its key is being generated) */
    in = key_params("K2", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id2, &err), 0);
    json_decref(in);
    json_t *r = request_get(f, id2);
    assert_string_equal(sget(r, "state"), "generating_key");
    json_decref(r);
    assert_int_equal(cancel(f, id2), UTIL_ERR_NONE);
    assert_cancelled(f, id2);
    wait_orphans(f); /* the generated key is dropped, nothing is sent */
    assert_cancelled(f, id2);
    r = request_get(f, id2);
    assert_true(json_is_null(json_object_get(r, "transaction_id")));
    json_decref(r);
    store_key k;
    assert_int_not_equal(store_key_get(f->a->st, "K2", &k, &err), 0);
    /* finished requests stay as they are; an unknown one is not found */
    assert_int_equal(cancel(f, id), UTIL_ERR_REQUEST_FINISHED);
    assert_int_equal(cancel(f, id2 + 100), UTIL_ERR_NOT_FOUND);
    json_t *audit = agent_audit(f->a, 10, &err);
    char *text = json_dumps(audit, JSON_COMPACT);
    assert_non_null(strstr(text, "request.cancel"));
    free(text);
    json_decref(audit);
    agent_close(f);
    /* after a restart the cancelled requests stay cancelled */
    agent_open(f);
    run_for(f, 50);
    assert_cancelled(f, id);
    assert_cancelled(f, id2);
}

/* Cancelling an auto request waiting for a retry, a manual one whose
 * discovery is in flight (the server never answers: the exchange is
 * abandoned), and a failed one. */
static void test_cancel_retry_and_in_flight(void **state)
{
    fx *f = *state;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0); /* bound, not listening: refused */
    assert_true(f->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(f->ca_url, sizeof f->ca_url, "http://127.0.0.1:%d/scep", ntohs(sa.sin_port));
    agent_open(f);
    set_url(f, f->ca_url, 5);
    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, auto_doc(start, true, 3, 60, key_params("Dev", PW)));
    json_decref(wait_state(f, id, "contacting_server", 1));
    assert_int_equal(cancel(f, id), UTIL_ERR_NONE);
    assert_cancelled(f, id);
    json_t *st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "cancelled");
    json_decref(st);
    advance(f, 120);
    run_for(f, 50);
    assert_cancelled(f, id);
    /* a failed request cannot be cancelled */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    util_error err = {0};
    json_t *in = key_params("Manual", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "failed", 0));
    assert_int_equal(cancel(f, id), UTIL_ERR_REQUEST_FINISHED);

    /* a server that accepts the connection and never answers */
    agent_close(f);
    close(f->listen_fd);
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->listen_fd >= 0);
    sa.sin_port = 0;
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(f->ca_url, sizeof f->ca_url, "http://127.0.0.1:%d/scep", ntohs(sa.sin_port));
    agent_open(f);
    set_url(f, f->ca_url, 600);
    in = key_params("Hang", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "contacting_server", 0));
    assert_int_equal(cancel(f, id), UTIL_ERR_NONE);
    assert_cancelled(f, id);
    assert_int_equal(f->a->orphan_count, 1); /* its transfer is abandoned when it comes back */
    /* a new request starts at once, while the abandoned exchange is still open */
    int64_t id2 = 0;
    in = key_params("Hang2", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id2, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id2, "contacting_server", 0));
    assert_int_equal(cancel(f, id2), UTIL_ERR_NONE);
    assert_cancelled(f, id);
    assert_cancelled(f, id2);
    agent_close(f); /* frees the abandoned runs (ASan checks) */
}

static bool auto_done(fx *f)
{
    json_t *st = auto_status(f);
    bool done = json_is_true(json_object_get(st, "done"));
    json_decref(st);
    util_error err = {0};
    json_t *doc = agent_auto_get(f->a, &err);
    assert_non_null(doc);
    assert_true(json_is_boolean(json_object_get(doc, "done")));
    assert_int_equal(json_is_true(json_object_get(doc, "done")), done); /* the API says the same twice */
    json_decref(doc);
    return done;
}

/* Once a one-shot timer has run it is done: nothing more is scheduled, the
 * API says so, and manual requests are allowed again. A periodic timer is
 * never done. */
static void test_one_shot_done(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    char start[32];
    fmt_time(f->now + 60, start);
    auto_put_ok(f, auto_doc(start, false, 0, 60, key_params("Dev", PW)));
    assert_false(auto_done(f));
    util_error err = {0};
    int64_t id = 0;
    json_t *in = key_params("Manual", PW);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_AUTO_REQUEST_ENABLED);
    advance(f, 60);
    id = latest_id(f);
    assert_true(id > 0);
    assert_false(auto_done(f)); /* its run goes on */
    json_decref(wait_state(f, id, "acquired", 0));
    assert_true(auto_done(f));
    json_t *st = auto_status(f);
    assert_true(json_is_true(json_object_get(st, "enabled")));
    assert_true(json_is_null(json_object_get(st, "next_run")));
    json_decref(st);
    int64_t manual = 0;
    assert_int_equal(agent_request_create(f->a, in, "test", &manual, &err), 0);
    json_decref(wait_state(f, manual, "acquired", 0));
    json_decref(in);
    /* still done after a restart of the daemon */
    agent_close(f);
    agent_open(f);
    assert_true(auto_done(f));
    /* a periodic timer has a next run after each one: never done */
    fmt_time(f->now, start);
    json_t *doc = auto_doc(start, false, 0, 60, key_params("Per", PW));
    json_object_set_new(doc, "periodic", json_pack("{s:b, s:i}", "enabled", 1, "interval_days", 30));
    auto_put_ok(f, doc);
    agent_tick(f->a);
    json_decref(wait_state(f, latest_id(f), "acquired", 0));
    assert_false(auto_done(f));
}

static void bad_response_case(fx *f, const char *fault, const char *code)
{
    ca_serve(f, "--challenge", PW, "--fault", fault, NULL);
    set_url(f, f->ca_url, 10);
    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, auto_doc(start, true, 5, 10, key_params("Dev", PW)));
    json_t *r = wait_state(f, id, "failed", 0);
    if (strcmp(error_code(r), code) != 0)
        fail_msg("fault %s: got %s (%s), wanted %s", fault, error_code(r),
                 json_string_value(json_object_get(json_object_get(r, "error"), "detail")), code);
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 0);
    assert_true(json_is_null(json_object_get(r, "next_attempt_at")));
    json_decref(r);
    json_t *st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), code);
    json_decref(st);
    advance(f, 10);
    run_for(f, 100);
    r = request_get(f, id);
    assert_string_equal(sget(r, "state"), "failed");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 0);
    json_decref(r);
    assert_int_equal(latest_id(f), id);
    ca_stop(f);
}

static void test_no_poll_bad_response(void **state)
{
    fx *f = need_ca(state);
    agent_open(f);
    bad_response_case(f, "bad-signature", "response_signature");
    bad_response_case(f, "garbage", "response_parse");
    bad_response_case(f, "wrong-transaction-id", "response_transaction");
}

/* ---- periodic renewal and delete-old ---- */

static void test_periodic_renewal_delete_old(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    f->now += 17; /* switching periodic on starts it on the current minute */
    int64_t minute = f->now - f->now % 60;
    auto_put_ok(f,
                json_pack("{s:b, s:s, s:b, s:{s:b, s:i}, s:b, s:b, s:o}", "enabled", 1, "start",
                          "2020-01-01T00:00:00Z", "auto_adjust", 0, "periodic", "enabled", 1, "interval_days",
                          1, "auto_restart", 0, "delete_old", 1, "key", key_params("Dev", PW)));
    util_error err = {0};
    json_t *cfg = agent_auto_get(f->a, &err);
    assert_int_equal(time_of(json_object_get(cfg, "start")), minute);
    assert_int_equal(time_of(json_object_get(cfg, "next_run")), minute);
    json_decref(cfg);
    agent_tick(f->a);
    int64_t id1 = latest_id(f);
    /* the following run is set before this one starts */
    json_t *st = auto_status(f);
    assert_int_equal(time_of(json_object_get(st, "next_run")), minute + DAY);
    json_decref(st);
    json_t *r = wait_state(f, id1, "acquired", 0);
    json_decref(r);
    json_t *res = NULL;
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(res, "registered"), 0)), "Dev");
    assert_int_equal(json_array_size(json_object_get(res, "deleted")), 0);
    json_decref(res);
    /* the old pair serves a function: its binding must move to the new one */
    json_t *b = json_pack("{s:s}", "key_name", "Dev");
    assert_int_equal(agent_binding_put(f->a, "tls", b, "test", &err), 0);
    json_decref(b);
    store_key old;
    assert_int_equal(store_key_get(f->a->st, "Dev", &old, &err), 0);

    /* one interval later the next run renews Dev */
    advance(f, minute + DAY - f->now - 1);
    run_for(f, 50);
    assert_int_equal(latest_id(f), id1);
    advance(f, 1);
    int64_t id2 = latest_id(f);
    assert_true(id2 > id1);
    st = auto_status(f);
    assert_int_equal(time_of(json_object_get(st, "next_run")), minute + 2 * DAY);
    json_decref(st);
    store_request row;
    assert_int_equal(store_request_get(f->a->st, id2, &row, &err), 0);
    assert_string_equal(row.kind, "auto");
    assert_string_equal(row.key_name, "Dev2");
    assert_string_equal(row.replaces, "Dev");
    assert_non_null(row.signer_cert_pem);
    assert_string_equal(row.signer_cert_pem, old.cert_pem);
    store_request_clear(&row);
    r = wait_state(f, id2, "acquired", 0);
    json_decref(r);
    /* delete-old acts only at registration: both pairs exist until then */
    store_key k;
    assert_int_equal(store_key_get(f->a->st, "Dev", &k, &err), 0);
    assert_string_equal(store_state_name(k.state), "registered");
    store_key_clear(&k);
    assert_int_equal(store_key_get(f->a->st, "Dev2", &k, &err), 0);
    assert_string_equal(store_state_name(k.state), "acquired");
    assert_string_equal(k.replaces, "Dev");
    assert_string_not_equal(k.cert_pem, old.cert_pem);
    store_key_clear(&k);
    json_t *bl = agent_binding_list(f->a, &err);
    assert_string_equal(sget(json_array_get(bl, 0), "function"), "tls");
    assert_string_equal(sget(json_array_get(bl, 0), "key_name"), "Dev");
    json_decref(bl);
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(res, "registered"), 0)), "Dev2");
    assert_string_equal(json_string_value(json_array_get(json_object_get(res, "deleted"), 0)), "Dev");
    json_decref(res);
    assert_int_not_equal(store_key_get(f->a->st, "Dev", &k, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    bl = agent_binding_list(f->a, &err);
    assert_string_equal(sget(json_array_get(bl, 0), "key_name"), "Dev2");
    json_decref(bl);
    /* the request of the renewal reads "registered" */
    r = request_get(f, id2);
    assert_string_equal(sget(r, "state"), "registered");
    json_decref(r);

    /* the third run renews the pair the second one made */
    assert_int_equal(store_key_get(f->a->st, "Dev2", &k, &err), 0);
    advance(f, DAY);
    int64_t id3 = latest_id(f);
    assert_true(id3 > id2);
    assert_int_equal(store_request_get(f->a->st, id3, &row, &err), 0);
    assert_string_equal(row.replaces, "Dev2");
    assert_string_equal(row.key_name, "Dev");
    assert_string_equal(row.signer_cert_pem, k.cert_pem);
    store_request_clear(&row);
    store_key_clear(&k);
    json_decref(wait_state(f, id3, "acquired", 0));
    store_key_clear(&old);
}

/* ---- renewal outcomes, polling budget, jitter per run ---- */

/* A registered pair "Dev" bound to f1, whose files are exported. */
static void registered_bound_dev(fx *f)
{
    util_error err = {0};
    int64_t id = 0;
    json_t *in = key_params("Dev", PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "acquired", 0));
    json_t *res = NULL;
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    json_decref(res);
    json_t *b = json_pack("{s:s}", "key_name", "Dev");
    assert_int_equal(agent_binding_put(f->a, "f1", b, "test", &err), 0);
    json_decref(b);
}

static char *export_of(fx *f, const char *name)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    char *text = slurp(path);
    assert_non_null(text);
    return text;
}

static const char *binding_of(json_t *list, const char *function)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (!strcmp(sget(json_array_get(list, i), "function"), function))
            return sget(json_array_get(list, i), "key_name");
    return "";
}

/* delete-old acts only on a renewal that succeeded: when it fails, the old
 * pair, its binding and its exported files stay, and a registration after
 * the failure deletes nothing. */
static void test_delete_old_renewal_fails(void **state)
{
    fx *f = need_ca(state);
    f->exports = true;
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    registered_bound_dev(f);
    char *cert_before = export_of(f, "f1.crt"), *key_before = export_of(f, "f1.key");
    assert_non_null(strstr(cert_before, "BEGIN CERTIFICATE"));
    /* the server now answers garbage: the renewal fails without polling */
    ca_stop(f);
    ca_serve(f, "--challenge", PW, "--fault", "garbage", NULL);
    set_url(f, f->ca_url, 10);
    char start[32];
    fmt_time(f->now, start);
    auto_put_ok(f, json_pack("{s:b, s:s, s:b, s:b, s:b, s:o}", "enabled", 1, "start", start, "auto_adjust", 0,
                             "auto_restart", 1, "delete_old", 1, "key", key_params("Dev", PW)));
    agent_tick(f->a);
    int64_t id = latest_id(f);
    util_error err = {0};
    store_request row;
    assert_int_equal(store_request_get(f->a->st, id, &row, &err), 0);
    assert_string_equal(row.replaces, "Dev"); /* it was a delete-old renewal */
    store_request_clear(&row);
    json_t *r = wait_state(f, id, "failed", 0);
    assert_string_equal(error_code(r), "response_parse");
    json_decref(r);
    json_t *res = NULL;
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    assert_int_equal(json_array_size(json_object_get(res, "registered")), 0);
    assert_int_equal(json_array_size(json_object_get(res, "deleted")), 0);
    json_decref(res);
    store_key k;
    assert_int_equal(store_key_get(f->a->st, "Dev", &k, &err), 0);
    assert_string_equal(store_state_name(k.state), "registered");
    store_key_clear(&k);
    json_t *bl = agent_binding_list(f->a, &err);
    assert_string_equal(binding_of(bl, "f1"), "Dev");
    json_decref(bl);
    char *cert_after = export_of(f, "f1.crt"), *key_after = export_of(f, "f1.key");
    assert_string_equal(cert_after, cert_before);
    assert_string_equal(key_after, key_before);
    free(cert_before);
    free(key_before);
    free(cert_after);
    free(key_after);
}

/* delete_old=false: the renewal registers a second pair and keeps the
 * first one, its binding and its exports. */
static void test_renewal_keeps_old_pair(void **state)
{
    fx *f = need_ca(state);
    f->exports = true;
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    registered_bound_dev(f);
    char *cert_before = export_of(f, "f1.crt");
    char start[32];
    fmt_time(f->now, start);
    auto_put_ok(f, json_pack("{s:b, s:s, s:b, s:b, s:b, s:o}", "enabled", 1, "start", start, "auto_adjust", 0,
                             "auto_restart", 1, "delete_old", 0, "key", key_params("Dev", PW)));
    agent_tick(f->a);
    int64_t id = latest_id(f);
    util_error err = {0};
    store_request row;
    assert_int_equal(store_request_get(f->a->st, id, &row, &err), 0);
    assert_string_equal(row.key_name, "Dev2");
    assert_string_equal(row.replaces, "");
    store_request_clear(&row);
    json_decref(wait_state(f, id, "registered", 0));
    store_key k;
    assert_int_equal(store_key_get(f->a->st, "Dev", &k, &err), 0);
    assert_string_equal(store_state_name(k.state), "registered");
    store_key_clear(&k);
    assert_int_equal(store_key_get(f->a->st, "Dev2", &k, &err), 0);
    assert_string_equal(store_state_name(k.state), "registered");
    assert_string_equal(k.replaces, "");
    store_key_clear(&k);
    json_t *bl = agent_binding_list(f->a, &err);
    assert_string_equal(binding_of(bl, "f1"), "Dev");
    json_decref(bl);
    char *cert_after = export_of(f, "f1.crt");
    assert_string_equal(cert_after, cert_before);
    free(cert_before);
    free(cert_after);
}

/* A polling budget of 2 is used up once, however often the daemon restarts
 * while the request waits: restarts neither refill it nor add polls. */
static void test_polling_budget_survives_restart(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, "--pending", NULL);
    agent_open(f);
    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, auto_doc(start, true, 2, 30, key_params("Dev", PW)));
    json_t *r = wait_state(f, id, "pending", 1);
    int64_t next = time_of(json_object_get(r, "next_attempt_at"));
    assert_int_equal(next, f->now + 30);
    json_decref(r);
    json_t *st = auto_status(f);
    json_int_t left = json_integer_value(json_object_get(st, "attempts_left"));
    json_decref(st);

    /* restart while it waits: the same poll time, the same budget */
    agent_close(f);
    agent_open(f);
    st = auto_status(f);
    assert_int_equal(json_integer_value(json_object_get(st, "attempts_left")), left);
    json_decref(st);
    r = request_get(f, id);
    assert_string_equal(sget(r, "state"), "pending");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
    assert_int_equal(time_of(json_object_get(r, "next_attempt_at")), next);
    json_decref(r);
    advance(f, 29);
    run_for(f, 100);
    r = request_get(f, id);
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
    json_decref(r);
    /* poll 1, then another restart before poll 2 */
    advance(f, 1);
    json_decref(wait_state(f, id, "pending", 2));
    agent_close(f);
    agent_open(f);
    advance(f, 30);
    r = wait_state(f, id, "failed", 2);
    assert_string_equal(error_code(r), "pending");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 2);
    json_decref(r);
    st = auto_status(f);
    assert_string_equal(sget(st, "last_result"), "pending");
    assert_int_equal(json_integer_value(json_object_get(st, "attempts_left")), 0);
    json_decref(st);
    /* used up: a further restart and an hour add nothing */
    agent_close(f);
    agent_open(f);
    advance(f, 3600);
    run_for(f, 100);
    assert_int_equal(request_count(f), 1);
    r = request_get(f, id);
    assert_string_equal(sget(r, "state"), "failed");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 2);
    json_decref(r);
}

/* Every periodic run draws its own jitter for the run after it; the base
 * stays on the interval grid (jitters do not add up). */
static void test_jitter_per_periodic_run(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    int64_t minute = f->now - f->now % 60;
    f->rand_value = 100;
    f->rand_calls = 0;
    auto_put_ok(f,
                json_pack("{s:b, s:s, s:b, s:{s:b, s:i}, s:b, s:b, s:o}", "enabled", 1, "start",
                          "2020-01-01T00:00:00Z", "auto_adjust", 1, "periodic", "enabled", 1, "interval_days",
                          1, "auto_restart", 0, "delete_old", 0, "key", key_params("Dev", PW)));
    assert_int_equal(f->rand_calls, 1);
    json_t *st = auto_status(f);
    assert_int_equal(json_integer_value(json_object_get(st, "jitter_s")), 100);
    assert_int_equal(time_of(json_object_get(st, "next_run")), minute + 100);
    json_decref(st);
    const uint32_t draws[] = {250, 7, 599};
    for (int run = 0; run < 3; run++) {
        int64_t due = run == 0 ? minute + 100 : minute + run * DAY + (int64_t)draws[run - 1];
        int64_t before = latest_id(f);
        advance(f, due - f->now - 1);
        run_for(f, 20);
        assert_int_equal(latest_id(f), before);
        f->rand_value = draws[run];
        advance(f, 1);
        int64_t id = latest_id(f);
        assert_true(id > before);
        assert_int_equal(f->rand_calls, run + 2); /* one fresh draw per run */
        st = auto_status(f);
        assert_int_equal(json_integer_value(json_object_get(st, "jitter_s")), draws[run]);
        assert_int_equal(time_of(json_object_get(st, "next_run")), minute + (run + 1) * DAY + draws[run]);
        json_decref(st);
        json_decref(wait_state(f, id, "acquired", 0));
    }
}

/* Disabling an auto request that was never configured stores "key": null
 * (as GET shows it); the daemon must start again on that document. */
static void test_disable_unconfigured_auto_restarts(void **state)
{
    fx *f = *state;
    agent_open(f);
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    util_error err = {0};
    json_t *cfg = agent_auto_get(f->a, &err);
    assert_non_null(cfg);
    assert_true(json_is_null(json_object_get(cfg, "key")));
    /* what GET shows can be sent back as it is */
    json_t *back = json_deep_copy(cfg);
    json_decref(cfg);
    const char *shown_only[] = {"next_run",        "jitter_s", "last_result", "attempts_left",
                                "last_request_id", "done",     "renew_at",    "next_key_name"};
    for (size_t i = 0; i < sizeof shown_only / sizeof shown_only[0]; i++)
        json_object_del(back, shown_only[i]);
    auto_put_ok(f, back);
    agent_close(f);
    agent_open(f);
    cfg = agent_auto_get(f->a, &err);
    assert_non_null(cfg);
    assert_false(json_is_true(json_object_get(cfg, "enabled")));
    json_decref(cfg);
}

/* ---- runs missed while the agent was down ---- */

static void test_missed_run_after_restart(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    char start[32];
    int64_t s = f->now + 3600;
    fmt_time(s, start);
    /* periodic first, while disabled (switching it on while enabled resets the start to now) */
    auto_put_ok(f, json_pack("{s:b, s:b, s:{s:b, s:i}, s:o}", "enabled", 0, "auto_adjust", 0, "periodic",
                             "enabled", 1, "interval_days", 1, "key", key_params("Dev", PW)));
    auto_put_ok(f, json_pack("{s:b, s:s}", "enabled", 1, "start", start));
    json_t *st = auto_status(f);
    assert_int_equal(time_of(json_object_get(st, "next_run")), s);
    json_decref(st);
    assert_int_equal(request_count(f), 0);
    agent_close(f);

    /* down for two and a half days */
    f->now = s + 2 * DAY + DAY / 2;
    agent_open(f);
    st = auto_status(f);
    assert_int_equal(time_of(json_object_get(st, "next_run")), s);
    json_decref(st);
    assert_int_equal(request_count(f), 0);
    agent_tick(f->a);
    /* one run now; the missed periods are skipped to the next future one */
    assert_int_equal(request_count(f), 1);
    st = auto_status(f);
    assert_int_equal(time_of(json_object_get(st, "next_run")), s + 3 * DAY);
    json_decref(st);
    int64_t id = latest_id(f);
    json_decref(wait_state(f, id, "acquired", 0));
    agent_tick(f->a);
    run_for(f, 50);
    assert_int_equal(request_count(f), 1);

    /* the timer's own event also fires a missed run without an explicit tick */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    fmt_time(f->now + 60, start);
    auto_put_ok(f, json_pack("{s:b, s:s, s:o}", "enabled", 1, "start", start, "key", key_params("Dev", PW)));
    agent_close(f);
    f->now += 7200;
    agent_open(f);
    int64_t deadline = mono_ms() + 3000;
    while (request_count(f) < 2 && mono_ms() < deadline) {
        loop_once(f);
        usleep(2000);
    }
    assert_int_equal(request_count(f), 2);
}

/* ---- manual request refusals ---- */

/* Verified credentials are remembered for a minute (no scrypt per API call),
 * never across a password change. Failures are throttled per (user, client
 * address) with growing waits: another address is never locked out. */
static void test_login_cache_and_throttle(void **state)
{
    fx *f = *state;
    agent_open(f);
    agent_role role = AGENT_ROLE_NONE;
    util_error err = {0};
    const char *here = "192.0.2.1", *there = "192.0.2.2";
    assert_int_equal(agent_login(f->a, "admin", "admin-password-1", here, &role, &err), 0);
    assert_int_equal(role, AGENT_ROLE_ADMIN);
    assert_int_equal(agent_login(f->a, "admin", "admin-password-1", here, &role, &err), 0);
    assert_int_equal(agent_login(f->a, "admin", "admin-password-X", here, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    assert_int_equal(agent_user_put(f->a, "admin", "admin-password-2", AGENT_ROLE_ADMIN, "test", &err), 0);
    assert_int_equal(agent_login(f->a, "admin", "admin-password-1", here, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    /* an unknown user gets the same answer as a wrong password */
    util_error unknown = {0};
    assert_int_equal(agent_login(f->a, "nobody", "whatever-password", here, &role, &unknown), -1);
    assert_int_equal(unknown.code, UTIL_ERR_UNAUTHORIZED);
    assert_string_equal(unknown.detail, err.detail);
    assert_int_equal(agent_user_put(f->a, "viewer", "viewer-password", AGENT_ROLE_VIEWER, "test", &err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(agent_login(f->a, "viewer", "wrong-password", there, &role, &err), -1);
        assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    }
    /* the fourth failure makes the next try from there wait 1 s */
    assert_int_equal(agent_login(f->a, "viewer", "wrong-password", there, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    assert_int_equal(agent_login(f->a, "viewer", "viewer-password", there, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_THROTTLED);
    /* the same user from another address is not locked out */
    assert_int_equal(agent_login(f->a, "viewer", "viewer-password", here, &role, &err), 0);
    assert_int_equal(role, AGENT_ROLE_VIEWER);
    advance(f, 1);
    assert_int_equal(agent_login(f->a, "viewer", "wrong-password", there, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    /* now 2 s */
    advance(f, 1);
    assert_int_equal(agent_login(f->a, "viewer", "viewer-password", there, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_THROTTLED);
    advance(f, 1);
    /* a success forgets the failures */
    assert_int_equal(agent_login(f->a, "viewer", "viewer-password", there, &role, &err), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(agent_login(f->a, "viewer", "wrong-password", there, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    /* the remembered admin login expires with the clock too. The stored
     * hash is swapped behind the agent's back (the viewer's hash, so only
     * "viewer-password" matches it): while remembered, the old password
     * still logs in without a look at the store; once the minute is over,
     * the store is asked again and the old password is refused. */
    assert_int_equal(agent_login(f->a, "admin", "admin-password-2", here, &role, &err), 0);
    store_user admin, viewer;
    assert_int_equal(store_user_get(f->a->st, "admin", &admin, &err), 0);
    assert_int_equal(store_user_get(f->a->st, "viewer", &viewer, &err), 0);
    char *keep = admin.password_hash;
    admin.password_hash = viewer.password_hash;
    assert_int_equal(store_user_put(f->a->st, &admin, &err), 0);
    admin.password_hash = keep;
    store_user_clear(&admin);
    store_user_clear(&viewer);
    advance(f, 59);
    role = AGENT_ROLE_NONE;
    assert_int_equal(agent_login(f->a, "admin", "admin-password-2", here, &role, &err), 0);
    assert_int_equal(role, AGENT_ROLE_ADMIN);
    advance(f, 2);
    assert_int_equal(agent_login(f->a, "admin", "admin-password-2", here, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    assert_int_equal(agent_login(f->a, "admin", "viewer-password", here, &role, &err), 0);
    assert_int_equal(role, AGENT_ROLE_ADMIN);
    agent_close(f);
}

static void count_login(void *arg)
{
    (*(int *)arg)++;
}

/* Runs the loop until *count reaches want (the login thread wakes it). */
static void run_until_count(fx *f, const int *count, int want)
{
    for (int i = 0; i < 10000 && *count < want; i++)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(*count, want);
}

/* Logins that must hash run on the login thread, held here by the test's
 * hook: the loop answers nothing meanwhile, at most AGENT_LOGIN_QUEUE wait,
 * a queued job that is cancelled frees its place, a job cancelled while
 * hashing still has its failure counted, and the answers are those of
 * agent_login (the same words for an unknown user, the cache filled). */
static void test_login_thread(void **state)
{
    fx *f = *state;
    agent_open(f);
    assert_int_equal(sem_init(&f->login_gate, 0, 0), 0);
    assert_int_equal(sem_init(&f->login_entered, 0, 0), 0);
    f->hold_logins = true;
    agent_role role = AGENT_ROLE_NONE;
    util_error err = {0};
    int done = 0;
    agent_login_job *jobs[AGENT_LOGIN_QUEUE] = {0};
    const char *users[AGENT_LOGIN_QUEUE] = {"admin", "admin", "admin", "nobody",
                                            "admin", "admin", "admin", "admin"};
    const char *passwords[AGENT_LOGIN_QUEUE] = {"wrong-password", "admin-password-1", "wrong-password",
                                                "wrong-password", "wrong-password",   "wrong-password",
                                                "wrong-password", "wrong-password"};
    const char *clients[AGENT_LOGIN_QUEUE] = {"192.0.2.2", "192.0.2.1", "192.0.2.1", "192.0.2.1",
                                              "192.0.2.3", "192.0.2.3", "192.0.2.3", "192.0.2.3"};
    for (int i = 0; i < AGENT_LOGIN_QUEUE; i++) {
        assert_int_equal(agent_login_start(f->a, users[i], passwords[i], clients[i], &role, count_login,
                                           &done, &jobs[i], &err),
                         AGENT_LOGIN_PENDING);
        if (i == 0) /* the first is being hashed (held in the hook) */
            assert_int_equal(sem_wait(&f->login_entered), 0);
    }
    agent_login_job *extra = NULL;
    assert_int_equal(agent_login_start(f->a, "admin", "admin-password-1", "192.0.2.4", &role, count_login,
                                       &done, &extra, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_LOGIN_BUSY);
    assert_non_null(strstr(err.detail, "retry in 1 s"));
    assert_null(extra);
    agent_login_cancel(f->a, jobs[7]);
    assert_int_equal(agent_login_start(f->a, users[7], passwords[7], clients[7], &role, count_login, &done,
                                       &jobs[7], &err),
                     AGENT_LOGIN_PENDING);
    agent_login_cancel(f->a, jobs[0]); /* while its hash runs */
    jobs[0] = NULL;
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(done, 0);
    for (int i = 0; i < AGENT_LOGIN_QUEUE; i++)
        assert_int_equal(sem_post(&f->login_gate), 0);
    run_until_count(f, &done, AGENT_LOGIN_QUEUE - 1);
    util_error wrong = {0}, unknown = {0};
    assert_int_equal(agent_login_finish(f->a, jobs[1], &role, &err), 0);
    assert_int_equal(role, AGENT_ROLE_ADMIN);
    assert_int_equal(agent_login_finish(f->a, jobs[2], &role, &wrong), -1);
    assert_int_equal(wrong.code, UTIL_ERR_UNAUTHORIZED);
    assert_int_equal(agent_login_finish(f->a, jobs[3], &role, &unknown), -1);
    assert_int_equal(unknown.code, UTIL_ERR_UNAUTHORIZED);
    assert_string_equal(unknown.detail, wrong.detail);
    for (int i = 4; i < AGENT_LOGIN_QUEUE; i++) {
        assert_int_equal(agent_login_finish(f->a, jobs[i], &role, &err), -1);
        assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    }
    /* the cancelled hash counted; the throttle and the cache as agent_login keeps them */
    assert_int_equal(util_throttle_failures(f->a->login_throttle, "admin\n192.0.2.2", f->now), 1);
    assert_int_equal(util_throttle_failures(f->a->login_throttle, "admin\n192.0.2.3", f->now), 4);
    assert_int_equal(agent_login_start(f->a, "admin", "admin-password-1", "192.0.2.1", &role, count_login,
                                       &done, &extra, &err),
                     0);
    assert_int_equal(agent_login_start(f->a, "admin", "admin-password-1", "192.0.2.3", &role, count_login,
                                       &done, &extra, &err),
                     -1);
    assert_int_equal(err.code, UTIL_ERR_THROTTLED);
    assert_null(extra);
    /* a password changed while the old one is being checked: refused */
    int changed = 0;
    agent_login_job *old = NULL;
    assert_int_equal(agent_user_put(f->a, "admin", "admin-password-2", AGENT_ROLE_ADMIN, "test", &err), 0);
    assert_int_equal(agent_login_start(f->a, "admin", "admin-password-2", "192.0.2.6", &role, count_login,
                                       &changed, &old, &err),
                     AGENT_LOGIN_PENDING);
    assert_int_equal(agent_user_put(f->a, "admin", "admin-password-3", AGENT_ROLE_ADMIN, "test", &err), 0);
    assert_int_equal(sem_post(&f->login_gate), 0);
    run_until_count(f, &changed, 1);
    assert_int_equal(agent_login_finish(f->a, old, &role, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    /* logins still queued or hashing when the agent stops are freed */
    assert_int_equal(agent_login_start(f->a, "nobody", "password-1", "192.0.2.5", &role, count_login, &done,
                                       &jobs[0], &err),
                     AGENT_LOGIN_PENDING);
    assert_int_equal(agent_login_start(f->a, "nobody", "password-2", "192.0.2.5", &role, count_login, &done,
                                       &jobs[1], &err),
                     AGENT_LOGIN_PENDING);
    assert_int_equal(sem_post(&f->login_gate), 0);
    assert_int_equal(sem_post(&f->login_gate), 0);
    agent_close(f);
    assert_int_equal(done, AGENT_LOGIN_QUEUE - 1);
    sem_destroy(&f->login_gate);
    sem_destroy(&f->login_entered);
}

/* A password or role change ends the user's sessions; sessions also end
 * after their absolute lifetime however busy they are. */
static void test_session_lifetime(void **state)
{
    fx *f = *state;
    agent_open(f);
    util_error err = {0};
    char *token = NULL, *csrf = NULL, user[64], csrf_out[65];
    agent_role role;
    assert_int_equal(agent_user_put(f->a, "viewer", "viewer-password", AGENT_ROLE_VIEWER, "test", &err), 0);
    assert_int_equal(agent_session_new(f->a, "viewer", &token, &csrf, &err), 0);
    assert_int_equal(agent_session_check(f->a, token, user, &role, csrf_out, &err), 0);
    assert_int_equal(agent_user_put(f->a, "viewer", "viewer-password", AGENT_ROLE_ADMIN, "test", &err), 0);
    assert_int_equal(agent_session_check(f->a, token, user, &role, csrf_out, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    free(token);
    free(csrf);
    assert_int_equal(agent_session_new(f->a, "viewer", &token, &csrf, &err), 0);
    for (int i = 0; i < 8 * 60; i++) { /* active every minute for 8 hours */
        advance(f, 60);
        assert_int_equal(agent_session_check(f->a, token, user, &role, csrf_out, &err), 0);
    }
    advance(f, 60);
    assert_int_equal(agent_session_check(f->a, token, user, &role, csrf_out, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_UNAUTHORIZED);
    free(token);
    free(csrf);
    agent_close(f);
}

/* Credentials inside the SCEP and proxy URLs are taken out of the URLs,
 * stored sealed (never in clear in the database), reported only as "set",
 * and put back only for the transfer; they stay with their server. */
static bool file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    static char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_settings_credentials(void **state)
{
    fx *f = *state;
    agent_open(f);
    util_error err = {0};
    json_t *in = json_pack("{s:s, s:s, s:s, s:b}", "url", "http://scep%40user:Pw-s3cr3t-1@ca.example/scep",
                           "proxy", "http://proxyuser:Px-s3cr3t-2@proxy.example:3128", "tls_pin",
                           "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                           "tls_pin_check_host", 0);
    assert_int_equal(agent_scep_settings_put(f->a, in, "test", &err), 0);
    json_decref(in);
    json_t *out = agent_scep_settings_get(f->a);
    char *text = json_dumps(out, JSON_SORT_KEYS);
    assert_non_null(text);
    assert_null(strstr(text, "s3cr3t"));
    assert_string_equal(json_string_value(json_object_get(out, "url")), "http://ca.example/scep");
    assert_string_equal(json_string_value(json_object_get(out, "proxy")), "http://proxy.example:3128");
    assert_true(json_is_true(json_object_get(out, "url_credentials_set")));
    assert_true(json_is_true(json_object_get(out, "proxy_credentials_set")));
    assert_true(json_is_false(json_object_get(out, "tls_pin_check_host")));
    free(text);
    json_decref(out);
    client_config cfg;
    char *url = NULL;
    assert_int_equal(agent_client_config(f->a, &cfg, &url, &err), 0);
    util_x509_stack_free(cfg.next_ca);
    assert_string_equal(url, "http://scep%40user:Pw-s3cr3t-1@ca.example:80/scep");
    assert_string_equal(cfg.http.proxy, "http://proxyuser:Px-s3cr3t-2@proxy.example:3128");
    assert_true(cfg.http.pin_skip_host_check);
    free(url);
    agent_close(f);
    char db[256], wal[270];
    snprintf(db, sizeof db, "%s/scepd.db", f->state);
    snprintf(wal, sizeof wal, "%s-wal", db);
    /* the settings are there (the search works), the credentials are not */
    assert_true(file_contains(db, "proxy.example") || file_contains(wal, "proxy.example"));
    assert_false(file_contains(db, "s3cr3t") || file_contains(wal, "s3cr3t"));
    /* after a restart: unsealed again */
    agent_open(f);
    assert_int_equal(agent_client_config(f->a, &cfg, &url, &err), 0);
    util_x509_stack_free(cfg.next_ca);
    assert_non_null(strstr(url, "scep%40user:Pw-s3cr3t-1@"));
    free(url);
    /* a PUT without them keeps them for the same server ... */
    in = json_pack("{s:s, s:s}", "url", "http://ca.example/scep", "proxy", "http://proxy.example:3128");
    assert_int_equal(agent_scep_settings_put(f->a, in, "test", &err), 0);
    json_decref(in);
    assert_int_equal(agent_client_config(f->a, &cfg, &url, &err), 0);
    util_x509_stack_free(cfg.next_ca);
    assert_non_null(strstr(url, "Pw-s3cr3t-1@"));
    assert_false(cfg.http.pin_skip_host_check); /* the host check is the default */
    free(url);
    /* ... not for another one, and not when cleared */
    in = json_pack("{s:s, s:s, s:b}", "url", "http://other.example/scep", "proxy",
                   "http://proxy.example:3128", "proxy_credentials_set", 0);
    assert_int_equal(agent_scep_settings_put(f->a, in, "test", &err), 0);
    json_decref(in);
    assert_int_equal(agent_client_config(f->a, &cfg, &url, &err), 0);
    util_x509_stack_free(cfg.next_ca);
    assert_string_equal(url, "http://other.example:80/scep");
    assert_string_equal(cfg.http.proxy, "http://proxy.example:3128");
    free(url);
    out = agent_scep_settings_get(f->a);
    assert_true(json_is_false(json_object_get(out, "url_credentials_set")));
    json_decref(out);
    agent_close(f);
}

/* PUT settings with url and port; 0 or the error (detail in *err). */
static int put_url_port(fx *f, const char *url, int port, util_error *err)
{
    json_t *in = port ? json_pack("{s:s, s:i}", "url", url, "port", port) : json_pack("{s:s}", "url", url);
    int rc = agent_scep_settings_put(f->a, in, "test", err);
    json_decref(in);
    return rc;
}

static void assert_endpoint(fx *f, const char *want)
{
    client_config cfg;
    char *url = NULL;
    util_error err = {0};
    assert_int_equal(agent_client_config(f->a, &cfg, &url, &err), 0);
    util_x509_stack_free(cfg.next_ca);
    assert_string_equal(url, want);
    free(url);
}

/* A port that contradicts the one written in the URL is refused; a port
 * equal to it, or with a URL that names none, is taken. */
static void test_settings_port(void **state)
{
    fx *f = *state;
    agent_open(f);
    util_error err = {0};
    assert_int_equal(put_url_port(f, "http://ca.example:8080/scep", 0, &err), 0);
    assert_endpoint(f, "http://ca.example:8080/scep");
    assert_int_equal(put_url_port(f, "http://ca.example:8080/scep", 8080, &err), 0);
    assert_int_equal(put_url_port(f, "http://ca.example/scep", 9000, &err), 0);
    assert_endpoint(f, "http://ca.example:9000/scep");
    assert_int_equal(put_url_port(f, "https://[::1]:8443/scep", 8443, &err), 0);
    /* refused, naming the field; the stored settings stay */
    assert_int_not_equal(put_url_port(f, "http://ca.example:8080/scep", 80, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_INVALID_FIELD);
    assert_true(strncmp(err.detail, "port: 80 contradicts the port 8080", 34) == 0);
    assert_int_not_equal(put_url_port(f, "https://[::1]:8443/scep", 443, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_INVALID_FIELD);
    assert_true(strncmp(err.detail, "port:", 5) == 0);
    assert_endpoint(f, "https://[::1]:8443/scep");
    agent_close(f);
}

static void test_manual_refusals(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    util_error err = {0};
    int64_t id = 0;
    /* the name of an existing pair */
    json_t *in = key_params("DefaultTLS", PW);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_KEY_NAME_TAKEN);
    json_decref(in);
    /* invalid input names the field */
    in = json_pack("{s:s, s:s, s:b}", "key_name", "K1", "common_name", "x", "colour", 1);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_INVALID_FIELD);
    assert_true(strncmp(err.detail, "colour:", 7) == 0);
    json_decref(in);
    /* key_storage: software or tpm2, and tpm2 only for what the TPM holds */
    in = key_params("K1", PW);
    json_object_set_new(in, "key_storage", json_string("hsm"));
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_INVALID_FIELD);
    assert_true(strncmp(err.detail, "key_storage:", 12) == 0);
    json_object_set_new(in, "key_storage", json_string("tpm2"));
    json_object_set_new(in, "key_length", json_integer(4096));
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_INVALID_FIELD);
    assert_non_null(strstr(err.detail, "RSA 2048 and ECDSA 256"));
    assert_int_equal(request_count(f), 0);
    json_decref(in);
    /* the auto request's key takes it too, and shows it */
    json_t *tpm_key = key_params("Dev", PW);
    json_object_set_new(tpm_key, "key_storage", json_string("tpm2"));
    auto_put_ok(f, json_pack("{s:b, s:o}", "enabled", 0, "key", tpm_key));
    json_t *cfg = agent_auto_get(f->a, &err);
    assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "key"), "key_storage")),
                        "tpm2");
    json_decref(cfg);
    json_t *bad_key = key_params("Dev", PW);
    json_object_set_new(bad_key, "key_storage", json_string("hsm"));
    assert_string_equal(util_err_code(auto_put(f, json_pack("{s:b, s:o}", "enabled", 0, "key", bad_key))),
                        "invalid_field");
    auto_put_ok(f, json_pack("{s:b, s:o}", "enabled", 0, "key", key_params("Dev", PW)));
    cfg = agent_auto_get(f->a, &err);
    assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "key"), "key_storage")),
                        "software");
    json_decref(cfg);
    /* the timer on: refused whatever the input */
    char start[32];
    fmt_time(f->now + DAY, start);
    auto_put_ok(f, json_pack("{s:b, s:s, s:o}", "enabled", 1, "start", start, "key", key_params("Dev", PW)));
    in = key_params("K1", PW);
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_AUTO_REQUEST_ENABLED);
    assert_int_equal(request_count(f), 0);
    /* timer off: a manual request runs; a second one while it runs is busy */
    auto_put_ok(f, json_pack("{s:b}", "enabled", 0));
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_t *in2 = key_params("K2", PW);
    int64_t id2 = 0;
    assert_int_not_equal(agent_request_create(f->a, in2, "test", &id2, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_REQUEST_BUSY);
    json_t *r = wait_state(f, id, "acquired", 0);
    assert_string_equal(sget(r, "kind"), "manual");
    json_decref(r);
    /* the acquired pair's name is taken even before registration */
    assert_int_not_equal(agent_request_create(f->a, in, "test", &id2, &err), 0);
    assert_int_equal(err.code, UTIL_ERR_KEY_NAME_TAKEN);
    /* once done, the next request may start */
    assert_int_equal(agent_request_create(f->a, in2, "test", &id2, &err), 0);
    json_decref(wait_state(f, id2, "acquired", 0));
    json_decref(in);
    json_decref(in2);
    /* the auto request cannot be switched on without a start */
    assert_int_equal(auto_put(f, json_pack("{s:b, s:n}", "enabled", 1, "start")), UTIL_ERR_INVALID_FIELD);

    /* the subject: printable single-byte characters unless the settings allow UTF-8 */
    const char *cases[][2] = {{"common_name", "Dr\xc3\xbc"
                                              "cker"},
                              {"organization", "Caf\xc3\xa9"},
                              {"common_name", "100 \xe2\x82\xac"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        in = key_params("K3", PW);
        json_object_set_new(in, cases[i][0], json_string(cases[i][1]));
        assert_int_not_equal(agent_request_create(f->a, in, "test", &id2, &err), 0);
        assert_string_equal(util_err_code(err.code), "invalid_field");
        assert_true(strncmp(err.detail, cases[i][0], strlen(cases[i][0])) == 0);
        assert_non_null(strstr(err.detail, "printable single-byte characters"));
        json_decref(in);
    }
    json_t *key = key_params("K3", PW);
    json_object_set_new(key, "organization", json_string("Caf\xc3\xa9"));
    assert_int_not_equal(agent_auto_put(f->a, (in = json_pack("{s:o}", "key", key)), "test", &err), 0);
    json_decref(in);
    assert_true(strncmp(err.detail, "key.organization: must be printable", 35) == 0);
    in = json_pack("{s:s, s:b}", "url", f->ca_url, "subject_utf8", 1);
    assert_int_equal(agent_scep_settings_put(f->a, in, "test", &err), 0);
    json_decref(in);
    json_t *settings = agent_scep_settings_get(f->a);
    assert_true(json_is_true(json_object_get(settings, "subject_utf8")));
    json_decref(settings);
    in = key_params("K3", PW);
    json_object_set_new(in, "common_name",
                        json_string("Dr\xc3\xbc"
                                    "cker"));
    assert_int_equal(agent_request_create(f->a, in, "test", &id2, &err), 0);
    json_decref(in);
    r = wait_state(f, id2, "acquired", 0);
    json_decref(r);
    json_t *k3 = agent_key_get(f->a, "K3", &err);
    assert_non_null(strstr(sget(k3, "subject"), "Dr\xc3\xbc"
                                                "cker"));
    json_decref(k3);
}

static json_t *ec_params(const char *name, int bits)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s}", "key_name", name, "common_name", name, "key_algorithm",
                     "ecdsa", "key_length", bits, "challenge_password", PW);
}

static X509 *pem_cert(const char *pem)
{
    X509 *x = NULL;
    util_error err = {0};
    assert_int_equal(crypto_cert_load((const uint8_t *)pem, strlen(pem), &x, &err), 0);
    return x;
}

/* The acquired key's certificate carries the request's EC key. */
static void assert_acquired_ec(fx *f, const char *name, int bits)
{
    util_error err = {0};
    json_t *k = agent_key_get(f->a, name, &err);
    assert_non_null(k);
    assert_string_equal(sget(k, "state"), "acquired");
    json_decref(k);
    store_key key;
    assert_int_equal(store_key_get(f->a->st, name, &key, &err), 0);
    EVP_PKEY *priv = NULL;
    assert_int_equal(agent_unseal_pair_key(f->a, &key, &priv, &err), 0);
    X509 *cert = pem_cert(key.cert_pem);
    assert_true(crypto_cert_matches_key(cert, priv));
    assert_int_equal(EVP_PKEY_get_base_id(priv), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(priv), bits);
    X509_free(cert);
    EVP_PKEY_free(priv);
    store_key_clear(&key);
}

/* An EC key towards NDES: a temporary RSA signer, kept in the request row
 * over a restart while pending (same transactionID and signer for the
 * CertPoll), wiped once the reply is open. Towards the generic profile
 * (SCEPStandard) the EC key signs itself. */
static void test_ecdsa_temporary_signer(void **state)
{
    fx *f = *state;
    if (!find_scepca(f)) {
        print_message("scepca not built: skipped\n");
        skip();
    }
    const char *init[] = {"init", "--dir", f->cadir, "--ndes", NULL};
    assert_int_equal(scepca_run(f, NULL, init), 0);
    ca_serve(f, "--profile", "ndes2016", "--challenge", PW, "--pending", NULL);
    agent_open(f);
    set_url(f, f->ca_url, 10);
    util_error err = {0};
    int64_t id = 0;
    json_t *in = ec_params("Ec384", 384);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_t *r = wait_state(f, id, "pending", 1);
    char tid[80];
    snprintf(tid, sizeof tid, "%s", sget(r, "transaction_id"));
    json_decref(r);
    store_request row;
    assert_int_equal(store_request_get(f->a->st, id, &row, &err), 0);
    assert_non_null(row.signer_key_sealed);
    assert_non_null(row.signer_cert_pem);
    assert_true(crypto_is_sealed(row.signer_key_sealed));
    assert_true(crypto_is_sealed(row.key_sealed));
    EVP_PKEY *signer = NULL, *new_key = NULL;
    assert_int_equal(agent_unseal_request_key(f->a, &row, "signer_key_pem", &signer, &err), 0);
    assert_int_equal(agent_unseal_request_key(f->a, &row, "key_pem", &new_key, &err), 0);
    assert_true(crypto_key_is_rsa(signer));
    X509 *signer_cert = pem_cert(row.signer_cert_pem);
    assert_true(crypto_cert_is_self_signed(signer_cert));
    assert_true(crypto_cert_matches_key(signer_cert, signer));
    char expected[80];
    assert_int_equal(scep_transaction_id(new_key, expected, &err), 0);
    assert_string_equal(tid, expected); /* the EC key's, not the signer's */
    X509_free(signer_cert);
    EVP_PKEY_free(signer);
    EVP_PKEY_free(new_key);
    char *signer_before = strdup(row.signer_cert_pem);
    store_request_clear(&row);

    /* restart while pending; approve; the CertPoll after the restart opens the reply */
    approve_across_restart(f, tid);
    r = wait_state(f, id, "acquired", 0);
    assert_string_equal(sget(r, "transaction_id"), tid);
    json_decref(r);
    assert_int_equal(store_request_get(f->a->st, id, &row, &err), 0);
    assert_string_equal(row.signer_cert_pem, signer_before);
    assert_null(row.signer_key_sealed); /* the temporary key is gone */
    assert_null(row.key_sealed);        /* and the request's copy of the new key */
    store_request_clear(&row);
    free(signer_before);
    assert_acquired_ec(f, "Ec384", 384);

    /* P-256 against every NDES profile without deferral */
    const char *profiles[] = {"ndes2016", "ndes2012r2", "ndes2008r2"};
    for (size_t i = 0; i < 3; i++) {
        ca_stop(f);
        ca_serve(f, "--profile", profiles[i], "--challenge", PW, "--max-query-string", "16384", NULL);
        set_url(f, f->ca_url, 10);
        char name[16];
        snprintf(name, sizeof name, "Ec256n%zu", i);
        in = ec_params(name, 256);
        assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
        json_decref(in);
        json_decref(wait_state(f, id, "acquired", 0));
        assert_acquired_ec(f, name, 256);
    }

    /* the generic profile lists SCEPStandard: the EC key signs its own request */
    ca_stop(f);
    ca_serve(f, "--profile", "generic", "--challenge", PW, NULL);
    set_url(f, f->ca_url, 10);
    in = ec_params("Ec256", 256);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "acquired", 0));
    assert_int_equal(store_request_get(f->a->st, id, &row, &err), 0);
    assert_null(row.signer_key_sealed);
    assert_null(row.key_sealed);
    store_key pair;
    assert_int_equal(store_key_get(f->a->st, "Ec256", &pair, &err), 0);
    EVP_PKEY *own = NULL;
    assert_int_equal(agent_unseal_pair_key(f->a, &pair, &own, &err), 0);
    store_key_clear(&pair);
    signer_cert = pem_cert(row.signer_cert_pem);
    assert_true(crypto_cert_matches_key(signer_cert, own));
    X509_free(signer_cert);
    EVP_PKEY_free(own);
    store_request_clear(&row);
    assert_acquired_ec(f, "Ec256", 256);
}

/* ---- CA rollover ---- */

static void scepca_cmd(fx *f, const char *cmd)
{
    const char *args[] = {cmd, "--dir", f->cadir, NULL};
    assert_int_equal(scepca_run(f, NULL, args), 0);
}

static void set_url_pinned(fx *f, const char *pin)
{
    json_t *in = json_pack("{s:s, s:i, s:i, s:i, s:s}", "url", f->ca_url, "timeout_s", 10, "poll_interval_s",
                           5, "poll_max", 1, "ca_fingerprint", pin);
    util_error err = {0};
    int rc = agent_scep_settings_put(f->a, in, "test", &err);
    json_decref(in);
    if (rc != 0)
        fail_msg("settings: %s: %s", util_err_code(err.code), err.detail);
}

/* Runs the loop until no GetNextCACert check is in flight. */
static void wait_rollover(fx *f)
{
    int64_t deadline = mono_ms() + WAIT_MS;
    while (f->a->rollover && mono_ms() < deadline) {
        loop_once(f);
        usleep(2000);
    }
    assert_null(f->a->rollover);
}

static void refresh(fx *f)
{
    util_error err = {0};
    if (agent_ca_certs_refresh(f->a, "test", &err) != 0)
        fail_msg("refresh: %s: %s", util_err_code(err.code), err.detail);
    wait_rollover(f);
}

/* The sha256 of the stored certificate with this role ("" when none) and
 * how many rows have it. */
static int role_sha(fx *f, const char *role, char *sha, size_t len)
{
    util_error err = {0};
    json_t *rows = agent_ca_certs(f->a, &err);
    assert_non_null(rows);
    int count = 0;
    size_t i;
    json_t *row;
    sha[0] = '\0';
    json_array_foreach(rows, i, row)
    {
        if (strcmp(sget(row, "role"), role) != 0)
            continue;
        if (!count++)
            snprintf(sha, len, "%s", sget(row, "sha256"));
    }
    json_decref(rows);
    return count;
}

static void pin_of(fx *f, char *pin, size_t len)
{
    char sha[128];
    assert_int_equal(role_sha(f, "CA", sha, sizeof sha), 1);
    size_t n = (size_t)snprintf(pin, len, "sha256:");
    for (const char *c = sha; *c && n + 1 < len; c++)
        if (*c != ':')
            pin[n++] = *c;
    pin[n] = '\0';
}

static void acquire_rsa(fx *f, const char *name)
{
    util_error err = {0};
    int64_t id = 0;
    json_t *in = key_params(name, PW);
    assert_int_equal(agent_request_create(f->a, in, "test", &id, &err), 0);
    json_decref(in);
    json_decref(wait_state(f, id, "acquired", 0));
}

static void count_call(void *arg)
{
    (*(int *)arg)++;
}

/* The revocation check of a verification, and the CRL it used. */
static const char *revocation_of(const json_t *v, bool *ok, bool *skipped)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(v, "checks"), i, c) if (!strcmp(sget(c, "name"), "revocation"))
    {
        *ok = json_is_true(json_object_get(c, "ok"));
        *skipped = json_is_true(json_object_get(c, "skipped"));
        return sget(c, "detail");
    }
    fail_msg("no revocation check");
    return "";
}

/* A verification fetches the CRL first and waits for it: a certificate
 * revoked a moment ago reads revoked at once. The CA is asked at most once
 * per 30 s (the stored CRL answers meanwhile, with its age and source); a
 * self-signed certificate is "not checked", with the reason; a verification
 * whose client left is forgotten. */
static void test_verify_fetches_crl_first(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    set_url(f, f->ca_url, 10);
    advance(f, 60); /* the clock starts on a minute: not behind scepca's CRL */
    util_error err = {0};
    agent_crl_waiter *w = NULL;
    int done = 0;
    bool ok = false, skipped = false;

    assert_int_equal(agent_key_verify_start(f->a, "DefaultTLS", count_call, &done, &w), 0);
    assert_null(w);
    json_t *v = agent_key_verify(f->a, "DefaultTLS", &err);
    assert_non_null(v);
    assert_string_equal(revocation_of(v, &ok, &skipped),
                        "not checked: the certificate is self-signed: no CA publishes a CRL for it");
    assert_true(skipped);
    assert_true(json_is_null(json_object_get(v, "crl")));
    json_decref(v);

    acquire_rsa(f, "K1");
    json_t *k = agent_key_get(f->a, "K1", &err);
    assert_non_null(k);
    char serial[80];
    snprintf(serial, sizeof serial, "%s", sget(k, "serial"));
    json_decref(k);
    const char *revoke[] = {"revoke", "--dir", f->cadir, serial, NULL};
    assert_int_equal(scepca_run(f, NULL, revoke), 0);

    assert_int_equal(agent_key_verify_start(f->a, "K1", count_call, &done, &w), AGENT_VERIFY_PENDING);
    assert_non_null(w);
    for (int64_t end = mono_ms() + WAIT_MS; !done && mono_ms() < end;) {
        loop_once(f);
        usleep(2000);
    }
    assert_int_equal(done, 1);
    v = agent_key_verify(f->a, "K1", &err);
    assert_non_null(v);
    assert_string_equal(revocation_of(v, &ok, &skipped), "revoked");
    assert_false(ok);
    assert_false(skipped);
    assert_true(json_is_false(json_object_get(v, "valid")));
    json_t *crl = json_object_get(v, "crl");
    /* the endpoint asked: the server's URL */
    assert_non_null(strstr(sget(crl, "source"), f->ca_url));
    assert_int_equal(json_integer_value(json_object_get(crl, "age_s")), 0);
    assert_int_equal(time_of(json_object_get(crl, "fetched_at")), f->now);
    assert_non_null(strstr(sget(crl, "issuer"), "scepca test CA"));
    json_decref(v);

    /* within the interval the stored CRL answers, with its age */
    advance(f, 5);
    assert_int_equal(agent_key_verify_start(f->a, "K1", count_call, &done, &w), 0);
    v = agent_key_verify(f->a, "K1", &err);
    assert_string_equal(revocation_of(v, &ok, &skipped), "revoked");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "crl"), "age_s")), 5);
    json_decref(v);

    /* after it the CA is asked again; a waiter whose client left is not called */
    advance(f, 30);
    assert_int_equal(agent_key_verify_start(f->a, "K1", count_call, &done, &w), AGENT_VERIFY_PENDING);
    agent_key_verify_cancel(f->a, w);
    for (int64_t end = mono_ms() + WAIT_MS; f->a->crl_fetch && mono_ms() < end;) {
        loop_once(f);
        usleep(2000);
    }
    assert_null(f->a->crl_fetch);
    assert_int_equal(done, 1);

    /* a server that cannot be reached: "not checked" names the failure */
    ca_stop(f);
    advance(f, 31);
    assert_int_equal(agent_key_verify_start(f->a, "K1", count_call, &done, &w), AGENT_VERIFY_PENDING);
    for (int64_t end = mono_ms() + WAIT_MS; done < 2 && mono_ms() < end;) {
        loop_once(f);
        usleep(2000);
    }
    assert_int_equal(done, 2);
    assert_non_null(strstr(f->a->crl_reason, "GetCRL to "));
    v = agent_key_verify(f->a, "K1", &err);
    /* the CRL stored by the fetch before still answers, shown with its age */
    assert_string_equal(revocation_of(v, &ok, &skipped), "revoked");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "crl"), "age_s")), 31);
    json_decref(v);

    /* a server slower than the communication timeout: the wait ends at the
     * timeout (counted from the start of the fetch, before curl's own for
     * the PKIOperation), the fetch goes on, and the next verification does
     * not wait for it again */
    ca_serve(f, "--challenge", PW, "--fault", "delay:6000", NULL);
    set_url(f, f->ca_url, 2);
    assert_int_equal(agent_key_verify_start(f->a, "K1", count_call, &done, &w), AGENT_VERIFY_PENDING);
    for (int64_t end = mono_ms() + WAIT_MS; done < 3 && mono_ms() < end;) {
        loop_once(f);
        usleep(2000);
    }
    assert_int_equal(done, 3);
    assert_non_null(f->a->crl_fetch);
    assert_non_null(strstr(f->a->crl_reason, "did not answer within 2 s (the communication timeout)"));
    assert_int_equal(agent_key_verify_start(f->a, "K1", count_call, &done, &w), 0);
    for (int64_t end = mono_ms() + WAIT_MS; f->a->crl_fetch && mono_ms() < end;) {
        loop_once(f);
        usleep(2000);
    }
    assert_null(f->a->crl_fetch);
    assert_int_equal(done, 3);
}

/* renew_at_remaining_percent: the auto request also fires when the
 * registered certificate has that share of its lifetime left, shifted by
 * the random delay; the date schedule is left as it is, a certificate is
 * renewed once, and a share out of 1-99 is a field error. */
static void test_renew_at_remaining_percent(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    acquire_rsa(f, "Dev");
    util_error err = {0};
    json_t *res = NULL;
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    json_decref(res);
    int64_t id1 = latest_id(f);

    const int bad[] = {0, 100, -5};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *in = json_pack("{s:i}", "renew_at_remaining_percent", bad[i]);
        assert_int_not_equal(agent_auto_put(f->a, in, "test", &err), 0);
        json_decref(in);
        assert_string_equal(util_err_code(err.code), "invalid_field");
        assert_string_equal(err.detail, "renew_at_remaining_percent: must be from 1 to 99");
    }
    assert_int_equal(auto_put(f, json_pack("{s:s}", "renew_at_remaining_percent", "20")),
                     UTIL_ERR_INVALID_FIELD);

    json_t *k = agent_key_get(f->a, "Dev", &err);
    int64_t nb = time_of(json_object_get(k, "not_before")), na = time_of(json_object_get(k, "not_after"));
    json_decref(k);
    assert_true(na > nb);
    f->rand_value = 123;
    auto_put_ok(f, json_pack("{s:b, s:s, s:b, s:{s:b}, s:b, s:b, s:o, s:i}", "enabled", 1, "start",
                             "2099-01-01T00:00:00Z", "auto_adjust", 1, "periodic", "enabled", 0,
                             "auto_restart", 0, "delete_old", 0, "key", key_params("Dev", PW),
                             "renew_at_remaining_percent", 99));
    int64_t due = na - (na - nb) * 99 / 100 + 123;
    json_t *cfg = agent_auto_get(f->a, &err);
    assert_int_equal(json_integer_value(json_object_get(cfg, "renew_at_remaining_percent")), 99);
    assert_int_equal(time_of(json_object_get(cfg, "renew_at")), due);
    int64_t next_run = time_of(json_object_get(cfg, "next_run"));
    assert_true(next_run >= time_of(json_object_get(cfg, "start")));
    json_decref(cfg);

    advance(f, due - 1 - f->now);
    run_for(f, 50);
    assert_int_equal(latest_id(f), id1);
    advance(f, 1);
    int64_t id2 = latest_id(f);
    assert_true(id2 > id1);
    json_t *r = wait_state(f, id2, "acquired", 0);
    assert_string_equal(sget(r, "kind"), "auto");
    json_decref(r);
    cfg = agent_auto_get(f->a, &err);
    /* the date schedule stays; the renewed certificate is not renewed again */
    assert_int_equal(time_of(json_object_get(cfg, "next_run")), next_run);
    assert_true(json_is_null(json_object_get(cfg, "renew_at")));
    json_decref(cfg);
    advance(f, 60);
    assert_int_equal(latest_id(f), id2);

    /* null switches it off */
    auto_put_ok(f, json_pack("{s:n}", "renew_at_remaining_percent"));
    cfg = agent_auto_get(f->a, &err);
    assert_true(json_is_null(json_object_get(cfg, "renew_at_remaining_percent")));
    json_decref(cfg);
}

/* renew_key_name "replace": with delete_old the renewed pair takes the old
 * pair's name at registration, with its bindings; the auto request names
 * the new key before it runs ("numbered": Dev2). */
static void test_renewal_takes_old_name(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    acquire_rsa(f, "Dev");
    util_error err = {0};
    json_t *res = NULL;
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    json_decref(res);
    json_t *b = json_pack("{s:s}", "key_name", "Dev");
    assert_int_equal(agent_binding_put(f->a, "tls", b, "test", &err), 0);
    json_decref(b);
    json_t *k = agent_key_get(f->a, "Dev", &err);
    char old_serial[130];
    snprintf(old_serial, sizeof old_serial, "%s", sget(k, "serial"));
    json_decref(k);

    auto_put_ok(f, json_pack("{s:b}", "delete_old", 1));
    json_t *doc = auto_doc("2099-01-01T00:00:00Z", false, 0, 60, key_params("Dev", PW));
    json_object_set_new(doc, "enabled", json_false());
    auto_put_ok(f, doc);
    json_t *cfg = agent_auto_get(f->a, &err);
    assert_string_equal(sget(cfg, "renew_key_name"), "numbered");
    assert_string_equal(sget(cfg, "next_key_name"), "Dev2");
    json_decref(cfg);
    assert_int_equal(auto_put(f, json_pack("{s:s}", "renew_key_name", "other")), UTIL_ERR_INVALID_FIELD);
    auto_put_ok(f, json_pack("{s:s}", "renew_key_name", "replace"));
    cfg = agent_auto_get(f->a, &err);
    assert_string_equal(sget(cfg, "next_key_name"), "Dev");
    json_decref(cfg);

    char start[32];
    fmt_time(f->now, start);
    int64_t id = fire_now(f, json_pack("{s:b, s:s}", "enabled", 1, "start", start));
    json_t *r = wait_state(f, id, "acquired", 0);
    assert_string_equal(sget(r, "key_name"), "Dev2"); /* until registration */
    json_decref(r);
    assert_int_equal(agent_restart(f->a, "test", &res, &err), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(res, "registered"), 0)), "Dev");
    assert_string_equal(json_string_value(json_array_get(json_object_get(res, "deleted"), 0)), "Dev");
    assert_string_equal(json_string_value(json_object_get(json_object_get(res, "renamed"), "Dev2")), "Dev");
    json_decref(res);
    k = agent_key_get(f->a, "Dev", &err);
    assert_non_null(k);
    assert_string_equal(sget(k, "state"), "registered");
    assert_string_not_equal(sget(k, "serial"), old_serial);
    json_decref(k);
    assert_null(agent_key_get(f->a, "Dev2", &err));
    json_t *list = agent_binding_list(f->a, &err);
    assert_string_equal(binding_of(list, "tls"), "Dev");
    json_decref(list);
    r = request_get(f, id);
    assert_string_equal(sget(r, "key_name"), "Dev");
    json_decref(r);
    /* the key was sealed again for its new name: it opens there, and matches its certificate */
    store_key renamed;
    EVP_PKEY *key = NULL;
    assert_int_equal(store_key_get(f->a->st, "Dev", &renamed, &err), 0);
    assert_int_equal(agent_unseal_pair_key(f->a, &renamed, &key, &err), 0);
    X509 *cert = pem_cert(renamed.cert_pem);
    assert_true(crypto_cert_matches_key(cert, key));
    X509_free(cert);
    EVP_PKEY_free(key);
    store_key_clear(&renamed);
}

/* scepca rollover end to end: the next CA is fetched at start, on refresh,
 * periodically and after registration, listed as next_ca, accepted in place
 * of the pinned fingerprint once the server presents it (and then
 * promoted, the pin following), trusted for verification, and promoted
 * when the current CA expires. */
static void test_ca_rollover(void **state)
{
    fx *f = need_ca(state);
    ca_serve(f, "--challenge", PW, NULL);
    agent_open(f);
    set_url(f, f->ca_url, 10);
    acquire_rsa(f, "K1");
    char old_pin[160], sha[128], next1[128], next2[128], next3[128];
    pin_of(f, old_pin, sizeof old_pin);
    set_url_pinned(f, old_pin);
    /* nothing staged: GetNextCACert answers 404, no next_ca */
    refresh(f);
    assert_int_equal(role_sha(f, "next_ca", sha, sizeof sha), 0);

    /* staged, then fetched when the agent starts */
    scepca_cmd(f, "rollover");
    agent_close(f);
    agent_open(f);
    agent_tick(f->a);
    wait_rollover(f);
    assert_int_equal(role_sha(f, "next_ca", next1, sizeof next1), 1);
    assert_int_equal(role_sha(f, "CA", sha, sizeof sha), 1);
    assert_string_not_equal(next1, sha);

    /* the server presents the next CA: accepted despite the old pin, promoted */
    scepca_cmd(f, "promote");
    ca_stop(f);
    ca_serve(f, "--challenge", PW, NULL);
    set_url_pinned(f, old_pin);
    refresh(f);
    assert_int_equal(role_sha(f, "CA", sha, sizeof sha), 1);
    assert_string_equal(sha, next1);
    assert_int_equal(role_sha(f, "next_ca", sha, sizeof sha), 0);
    assert_true(crypto_fingerprint_valid(f->a->settings.ca_fingerprint));
    assert_string_not_equal(f->a->settings.ca_fingerprint, old_pin);
    /* the new CA answers requests: the reply is verified and the key issued */
    acquire_rsa(f, "K2");

    /* periodically: a day later the next rollover is fetched */
    scepca_cmd(f, "rollover");
    advance(f, 86400);
    wait_rollover(f);
    assert_int_equal(role_sha(f, "next_ca", next2, sizeof next2), 1);
    assert_string_not_equal(next2, next1);

    /* after registration */
    scepca_cmd(f, "rollover");
    json_t *result = NULL;
    util_error err = {0};
    assert_int_equal(agent_restart(f->a, "test", &result, &err), 0);
    json_decref(result);
    wait_rollover(f);
    assert_int_equal(role_sha(f, "next_ca", next3, sizeof next3), 1);
    assert_string_not_equal(next3, next2);
    /* K2 verifies against the stored (promoted) CA */
    json_t *v = agent_key_verify(f->a, "K2", &err);
    assert_non_null(v);
    assert_true(json_is_true(json_object_get(v, "valid")));
    json_decref(v);

    /* the current CA expires: the staged next CA is promoted, the pin follows */
    json_t *rows = agent_ca_certs(f->a, &err);
    int64_t not_after = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) if (!strcmp(sget(row, "role"), "CA")) not_after =
        time_of(json_object_get(row, "not_after"));
    json_decref(rows);
    assert_true(not_after > f->now);
    advance(f, not_after - f->now + 60);
    wait_rollover(f);
    assert_int_equal(role_sha(f, "CA", sha, sizeof sha), 1);
    assert_string_equal(sha, next3);
    assert_int_equal(role_sha(f, "next_ca", sha, sizeof sha), 0);
    char expect[160];
    snprintf(expect, sizeof expect, "%s", f->a->settings.ca_fingerprint);
    /* the pin names next3 (compared through the stored certificate) */
    rows = agent_ca_certs(f->a, &err);
    const char *pem = sget(json_array_get(rows, 0), "pem");
    X509 *cur = NULL;
    assert_int_equal(crypto_cert_load((const uint8_t *)pem, strlen(pem), &cur, &err), 0);
    assert_true(crypto_cert_matches_fingerprint(cur, expect));
    X509_free(cur);
    json_decref(rows);
}

/* The stored keys are sealed to their place under the KEK: the DefaultTLS
 * key opens only as itself; another KEK, or none, does not start the agent,
 * and the refusal writes nothing. */
static void test_sealed_keys(void **state)
{
    fx *f = *state;
    util_error err = {0};
    agent_open(f);
    store_key k;
    assert_int_equal(store_key_get(f->a->st, "DefaultTLS", &k, &err), 0);
    assert_true(crypto_is_sealed(k.key_sealed));
    assert_null(strstr(k.key_sealed, "PRIVATE KEY"));
    EVP_PKEY *key = NULL;
    assert_int_equal(agent_unseal_pair_key(f->a, &k, &key, &err), 0);
    EVP_PKEY_free(key);
    key = NULL;
    /* the same sealed text in another place does not open */
    store_key moved = k;
    snprintf(moved.name, sizeof moved.name, "Other");
    assert_int_equal(agent_unseal_pair_key(f->a, &moved, &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "sealed_invalid");
    moved = k;
    moved.request_id = 1;
    assert_int_equal(agent_unseal_pair_key(f->a, &moved, &key, &err), -1);
    assert_string_equal(util_err_code(err.code), "sealed_invalid");
    store_key_clear(&k);
    agent_close(f);

    char db[256];
    snprintf(db, sizeof db, "%s/scepd.db", f->state);
    struct stat before, after;
    assert_int_equal(stat(db, &before), 0);
    agent_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = f->state;
    cfg.clock = fake_clock;
    cfg.random = fake_random;
    cfg.hook_arg = f;
    crypto_kek *wrong = NULL;
    uint8_t bytes[CRYPTO_KEK_LEN];
    assert_int_equal(RAND_bytes(bytes, sizeof bytes), 1);
    assert_int_equal(crypto_kek_from_bytes(bytes, sizeof bytes, &wrong, &err), 0);
    cfg.kek = wrong;
    agent *a = NULL;
    assert_int_equal(agent_new(f->base, &cfg, "admin-password-1", NULL, &a, &err), -1);
    assert_null(a);
    assert_string_equal(util_err_code(err.code), "sealed_invalid");
    cfg.kek = NULL;
    assert_int_equal(agent_new(f->base, &cfg, "admin-password-1", NULL, &a, &err), -1);
    assert_string_equal(util_err_code(err.code), "kek_missing");
    crypto_kek_free(wrong);
    assert_int_equal(stat(db, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_mtime, before.st_mtime);
    /* the right one still opens it */
    agent_open(f);
    assert_int_equal(store_key_get(f->a->st, "DefaultTLS", &k, &err), 0);
    assert_int_equal(agent_unseal_pair_key(f->a, &k, &key, &err), 0);
    EVP_PKEY_free(key);
    store_key_clear(&k);
}

int main(void)
{
    util_log_setup("test_agent", UTIL_LOG_WARN, false);
    if (http_global_init() != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sealed_keys),
        T(test_login_cache_and_throttle),
        T(test_login_thread),
        T(test_session_lifetime),
        T(test_settings_credentials),
        T(test_settings_port),
        cmocka_unit_test(test_schedule_following),
        T(test_start_time_and_jitter),
        T(test_jitter_real_random),
        T(test_pending_retries),
        T(test_connect_retries),
        T(test_no_poll_on_failure),
        T(test_no_poll_key_store_full),
        T(test_key_store_counts_acquired),
        T(test_cancel_pending_and_keygen),
        T(test_cancel_retry_and_in_flight),
        T(test_one_shot_done),
        T(test_no_poll_bad_response),
        T(test_periodic_renewal_delete_old),
        T(test_missed_run_after_restart),
        T(test_manual_refusals),
        T(test_delete_old_renewal_fails),
        T(test_renewal_keeps_old_pair),
        T(test_polling_budget_survives_restart),
        T(test_jitter_per_periodic_run),
        T(test_disable_unconfigured_auto_restarts),
        T(test_ecdsa_temporary_signer),
        T(test_ca_rollover),
        T(test_verify_fetches_crl_first),
        T(test_renew_at_remaining_percent),
        T(test_renewal_takes_old_name),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    http_global_cleanup();
    return rc;
}
