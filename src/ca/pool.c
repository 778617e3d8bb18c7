/* Worker threads for ca_handle: the event loop stays free while a request
 * signs with RSA or waits for SQLite's fsync (synchronous=FULL). Each worker
 * owns a ca_server (its own SQLite connection); the finished job goes back
 * to the loop thread through event_base_once, which libevent makes
 * thread-safe once evthread_use_pthreads() has run. */
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "ca/pool.h"
#include "util/log.h"

struct ca_pool {
    struct event_base *base;
    pthread_mutex_t lock;
    ca_job *head, *tail;
    size_t queued;
    bool stop;
    unsigned count;
    pthread_t threads[CA_POOL_MAX_THREADS];
    ca_server *servers[CA_POOL_MAX_THREADS];
    /* Each worker waits on its own condition; the idle ones form a stack and
     * a job wakes the one that went idle last. Under light load one worker
     * takes every request: its SQLite page cache and its CPU caches stay
     * warm, where a shared condition handed the requests round to all four
     * (each then re-read the pages the others had written). */
    pthread_cond_t wake[CA_POOL_MAX_THREADS];
    unsigned idle[CA_POOL_MAX_THREADS];
    unsigned idle_count;
    store_ca_group *group; /* the workers' commits share fsyncs */
};

typedef struct worker_arg {
    ca_pool *pool;
    unsigned index;
} worker_arg;

static void deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ca_job *job = arg;
    job->done(job);
}

/* Where worker w stands in the idle stack, or -1. Called with the lock held. */
static int idle_slot(const ca_pool *p, unsigned w)
{
    for (unsigned i = 0; i < p->idle_count; i++)
        if (p->idle[i] == w)
            return (int)i;
    return -1;
}

static ca_job *next_job(ca_pool *p, unsigned w)
{
    ca_job *job = NULL;
    pthread_mutex_lock(&p->lock);
    while (!p->stop && !p->head) {
        if (idle_slot(p, w) < 0)
            p->idle[p->idle_count++] = w;
        pthread_cond_wait(&p->wake[w], &p->lock);
    }
    int i = idle_slot(p, w); /* woken by stop, or another's wake-up found a job */
    if (i >= 0) {
        memmove(&p->idle[i], &p->idle[i + 1], (p->idle_count - (unsigned)i - 1) * sizeof p->idle[0]);
        p->idle_count--;
    }
    if (!p->stop && p->head) {
        job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
    }
    pthread_mutex_unlock(&p->lock);
    return job;
}

static void *worker(void *arg)
{
    worker_arg *w = arg;
    ca_pool *p = w->pool;
    unsigned w_index = w->index;
    ca_server *srv = p->servers[w_index];
    free(w);
    ca_server_prepare(srv);
    ca_job *job;
    while ((job = next_job(p, w_index)) != NULL) {
        ca_handle(srv, &job->req, job->now, &job->resp);
        job->worker = w_index;
        struct timeval zero = {0, 0};
        if (event_base_once(p->base, -1, EV_TIMEOUT, deliver, job, &zero) != 0)
            log_error("cannot hand a reply back to the event loop");
    }
    return NULL;
}

int ca_pool_start(const ca_config *cfg, struct event_base *base, unsigned threads, ca_pool **out,
                  util_error *err)
{
    ca_pool *p = calloc(1, sizeof *p);
    if (!p)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    p->base = base;
    pthread_mutex_init(&p->lock, NULL);
    for (unsigned i = 0; i < CA_POOL_MAX_THREADS; i++)
        pthread_cond_init(&p->wake[i], NULL);
    if (threads == 0 || threads > CA_POOL_MAX_THREADS)
        threads = threads ? CA_POOL_MAX_THREADS : 1;
    if (!(p->group = store_ca_group_new())) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < threads; i++) {
        worker_arg *w = malloc(sizeof *w);
        if (!w || ca_server_open(cfg, &p->servers[i], err) != 0) {
            free(w);
            goto fail;
        }
        store_ca_set_group(p->servers[i]->store, p->group);
        *w = (worker_arg){p, i};
        if (pthread_create(&p->threads[i], NULL, worker, w) != 0) {
            free(w);
            ca_server_free(p->servers[i]);
            p->servers[i] = NULL;
            util_error_set(err, UTIL_ERR_INTERNAL, "cannot start worker thread %u", i);
            goto fail;
        }
        p->count++;
    }
    *out = p;
    return 0;
fail:
    ca_pool_stop(p);
    return -1;
}

bool ca_pool_submit(ca_pool *p, ca_job *job)
{
    bool ok = false;
    job->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (!p->stop && p->queued < CA_POOL_MAX_QUEUE) {
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        p->queued++;
        ok = true;
        if (p->idle_count > 0) {
            pthread_cond_signal(&p->wake[p->idle[--p->idle_count]]);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

unsigned ca_pool_idle(ca_pool *p)
{
    pthread_mutex_lock(&p->lock);
    unsigned n = p->idle_count;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void ca_pool_stop(ca_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    for (unsigned i = 0; i < CA_POOL_MAX_THREADS; i++)
        pthread_cond_broadcast(&p->wake[i]);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->count; i++)
        pthread_join(p->threads[i], NULL);
    for (unsigned i = 0; i < CA_POOL_MAX_THREADS; i++)
        ca_server_free(p->servers[i]);
    store_ca_group_free(p->group);
    for (unsigned i = 0; i < CA_POOL_MAX_THREADS; i++)
        pthread_cond_destroy(&p->wake[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
