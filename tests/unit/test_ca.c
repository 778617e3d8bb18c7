/* scepca's worker pool: which worker takes a job, and that none is lost. */
#include <event2/event.h>
#include <event2/thread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ca/ca.h"
#include "ca/pool.h"
#include "tempdir.h"

#define THREADS 4

typedef struct fixture {
    char *dir;
    ca_config cfg;
    struct event_base *base;
    ca_pool *pool;
} fixture;

typedef struct test_job {
    ca_job job;
    int *done_count;
} test_job;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    util_error err = {0};
    char pw[64];
    assert_non_null(f);
    assert_int_equal(evthread_use_pthreads(), 0);
    f->dir = h_tempdir();
    char *ca = malloc(strlen(f->dir) + 4);
    assert_non_null(ca);
    sprintf(ca, "%s/ca", f->dir);
    ca_init_params p = {.dir = ca, .key_type = "ec:P-256"};
    if (ca_admin_init(&p, time(NULL), pw, sizeof pw, &err) != 0)
        fail_msg("ca_admin_init: %s", err.detail);
    f->cfg = (ca_config){.dir = ca, .challenge = "secret"};
    assert_non_null(f->base = event_base_new());
    if (ca_pool_start(&f->cfg, f->base, THREADS, &f->pool, &err) != 0)
        fail_msg("ca_pool_start: %s", err.detail);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ca_pool_stop(f->pool);
    event_base_free(f->base);
    h_rmtree(f->dir);
    free((char *)f->cfg.dir);
    free(f->dir);
    free(f);
    return 0;
}

static void job_done(ca_job *job)
{
    test_job *t = (test_job *)job;
    (*t->done_count)++;
}

static void job_init(test_job *t, int *done_count)
{
    memset(t, 0, sizeof *t);
    t->job.req = (ca_http_request){"GET", "/scep", "operation=GetCACaps", NULL, 0, NULL, "test"};
    t->job.now = time(NULL);
    t->job.done = job_done;
    t->job.worker = THREADS; /* no worker has this index */
    t->done_count = done_count;
}

/* Runs the loop until done_count reaches want, for at most 10 s. */
static void wait_done(fixture *f, const int *done_count, int want)
{
    for (int i = 0; i < 10000 && *done_count < want; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (*done_count < want)
            usleep(1000);
    }
    assert_int_equal(*done_count, want);
}

static void wait_all_idle(fixture *f)
{
    for (int i = 0; i < 10000 && ca_pool_idle(f->pool) < THREADS; i++)
        usleep(1000);
    assert_int_equal(ca_pool_idle(f->pool), THREADS);
}

/* One request at a time, each sent once every worker waits: the worker that
 * answered the last one answers the next, so one SQLite connection and one
 * set of CPU caches stay warm. Handed round (one shared condition variable
 * wakes its waiters in turn), twenty requests would meet all four. */
static void sequential_jobs_stay_on_one_worker(void **state)
{
    fixture *f = *state;
    int done = 0;
    unsigned first = THREADS;
    for (int i = 0; i < 20; i++) {
        test_job t;
        wait_all_idle(f);
        job_init(&t, &done);
        assert_true(ca_pool_submit(f->pool, &t.job));
        wait_done(f, &done, i + 1);
        assert_true(t.job.worker < THREADS);
        assert_int_equal(t.job.resp.status, 200);
        if (i == 0)
            first = t.job.worker;
        assert_int_equal(t.job.worker, first);
        ca_http_response_clear(&t.job.resp);
    }
}

/* A burst of jobs larger than the pool: every one is answered, by workers
 * the pool knows. */
static void burst_is_answered(void **state)
{
    fixture *f = *state;
    enum { N = 200 };
    test_job *jobs = calloc(N, sizeof *jobs);
    int done = 0;
    assert_non_null(jobs);
    wait_all_idle(f);
    for (int i = 0; i < N; i++) {
        job_init(&jobs[i], &done);
        assert_true(ca_pool_submit(f->pool, &jobs[i].job));
    }
    wait_done(f, &done, N);
    for (int i = 0; i < N; i++) {
        assert_true(jobs[i].job.worker < THREADS);
        assert_int_equal(jobs[i].job.resp.status, 200);
        ca_http_response_clear(&jobs[i].job.resp);
    }
    wait_all_idle(f);
    free(jobs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sequential_jobs_stay_on_one_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(burst_is_answered, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
