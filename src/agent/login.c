/* Logins whose password must be hashed, off the event loop: one thread
 * checks scrypt hashes in the order they came (one at a time: each takes
 * 32 MiB), a queue of at most AGENT_LOGIN_QUEUE jobs in front of it, and a
 * pipe that wakes the loop when a hash is done. Everything but the hash
 * (throttle, store, cache, log) stays on the loop (auth.c). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "util/log.h"

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_HASHED, JOB_ANSWERED } job_state;

struct agent_login_job {
    agent_login_check check;
    char *password; /* secret */
    job_state state;
    bool cancelled;
    void (*done)(void *arg);
    void *arg;
    int rc;
    agent_role role;
    util_error err;
};

struct agent_login_worker {
    agent *a;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    /* every job not yet answered, oldest first (under lock) */
    agent_login_job *jobs[AGENT_LOGIN_QUEUE];
    size_t count;
    int pipe_fd[2];
    struct event *hashed;
};

static void job_free(agent_login_job *job)
{
    if (!job)
        return;
    agent_login_check_clear(&job->check);
    if (job->password) {
        OPENSSL_cleanse(job->password, strlen(job->password));
        free(job->password);
    }
    free(job);
}

/* Removes jobs[i] (under lock). */
static void take(agent_login_worker *w, size_t i)
{
    memmove(&w->jobs[i], &w->jobs[i + 1], (w->count - i - 1) * sizeof w->jobs[0]);
    w->count--;
}

static agent_login_job *next_queued(agent_login_worker *w)
{
    for (size_t i = 0; i < w->count; i++)
        if (w->jobs[i]->state == JOB_QUEUED)
            return w->jobs[i];
    return NULL;
}

static void *login_thread(void *arg)
{
    agent_login_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        agent_login_job *job = NULL;
        while (!w->stop && !(job = next_queued(w)))
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->stop)
            break;
        job->state = JOB_RUNNING;
        pthread_mutex_unlock(&w->lock);
        if (w->a->cfg.login_hook)
            w->a->cfg.login_hook(w->a->cfg.hook_arg);
        /* the job stays in jobs[] while running: cancel only marks it */
        agent_login_verify(&job->check, job->password);
        pthread_mutex_lock(&w->lock);
        job->state = JOB_HASHED;
        char byte = 1;
        ssize_t n;
        do
            n = write(w->pipe_fd[1], &byte, 1);
        while (n < 0 && errno == EINTR);
        /* a full pipe already wakes the loop */
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* On the loop: concludes every hashed job and tells its requester. */
static void on_hashed(evutil_socket_t fd, short what, void *arg)
{
    agent_login_worker *w = arg;
    agent_login_job *ready[AGENT_LOGIN_QUEUE];
    size_t n = 0;
    char drain[64];
    (void)what;
    while (read(fd, drain, sizeof drain) > 0)
        ;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->count;) {
        if (w->jobs[i]->state == JOB_HASHED) {
            ready[n++] = w->jobs[i];
            take(w, i);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        agent_login_job *job = ready[i];
        job->rc = agent_login_conclude(w->a, &job->check, job->password, &job->role, &job->err);
        OPENSSL_cleanse(job->password, strlen(job->password));
        job->state = JOB_ANSWERED;
        if (job->cancelled)
            job_free(job);
        else
            job->done(job->arg);
    }
}

static agent_login_worker *worker_new(agent *a, util_error *err)
{
    agent_login_worker *w = calloc(1, sizeof *w);
    if (!w) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    w->a = a;
    w->pipe_fd[0] = w->pipe_fd[1] = -1;
    if (pthread_mutex_init(&w->lock, NULL) != 0) {
        free(w);
        util_error_set(err, UTIL_ERR_INTERNAL, "creating a lock");
        return NULL;
    }
    if (pthread_cond_init(&w->wake, NULL) != 0) {
        pthread_mutex_destroy(&w->lock);
        free(w);
        util_error_set(err, UTIL_ERR_INTERNAL, "creating a condition");
        return NULL;
    }
    if (pipe2(w->pipe_fd, O_CLOEXEC | O_NONBLOCK) != 0 ||
        !(w->hashed = event_new(a->base, w->pipe_fd[0], EV_READ | EV_PERSIST, on_hashed, w)) ||
        event_add(w->hashed, NULL) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "creating the login thread's pipe");
        goto fail;
    }
    if (pthread_create(&w->thread, NULL, login_thread, w) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "starting the login thread");
        goto fail;
    }
    return w;
fail:
    if (w->hashed)
        event_free(w->hashed);
    for (int i = 0; i < 2; i++)
        if (w->pipe_fd[i] >= 0)
            close(w->pipe_fd[i]);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return NULL;
}

void agent_login_worker_free(agent_login_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->count; i++)
        job_free(w->jobs[i]);
    event_free(w->hashed);
    close(w->pipe_fd[0]);
    close(w->pipe_fd[1]);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int agent_login_start(agent *a, const char *user, const char *password, const char *client, agent_role *role,
                      void (*done)(void *arg), void *arg, agent_login_job **job, util_error *err)
{
    agent_login_job *j = calloc(1, sizeof *j);
    if (!j)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    int rc = agent_login_prepare(a, user, password, client, role, &j->check, err);
    if (rc != AGENT_LOGIN_PENDING)
        goto out;
    rc = -1;
    if (!a->login_worker && !(a->login_worker = worker_new(a, err)))
        goto out;
    if (!(j->password = strdup(password))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    j->done = done;
    j->arg = arg;
    agent_login_worker *w = a->login_worker;
    pthread_mutex_lock(&w->lock);
    bool full = w->count >= AGENT_LOGIN_QUEUE;
    if (!full) {
        w->jobs[w->count++] = j;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
    if (full) {
        util_error_set(err, UTIL_ERR_LOGIN_BUSY, "%d logins are being checked; retry in 1 s",
                       AGENT_LOGIN_QUEUE);
        goto out;
    }
    *job = j;
    return AGENT_LOGIN_PENDING;
out:
    job_free(j);
    return rc;
}

int agent_login_finish(agent *a, agent_login_job *job, agent_role *role, util_error *err)
{
    (void)a;
    int rc = job->rc;
    if (rc == 0)
        *role = job->role;
    else
        *err = job->err;
    job_free(job);
    return rc;
}

void agent_login_cancel(agent *a, agent_login_job *job)
{
    agent_login_worker *w = a->login_worker;
    if (!job || !w)
        return;
    if (job->state == JOB_ANSWERED) {
        job_free(job);
        return;
    }
    pthread_mutex_lock(&w->lock);
    bool queued = job->state == JOB_QUEUED;
    if (queued) {
        for (size_t i = 0; i < w->count; i++)
            if (w->jobs[i] == job) {
                take(w, i);
                break;
            }
    } else {
        job->cancelled = true;
    }
    pthread_mutex_unlock(&w->lock);
    if (queued)
        job_free(job);
}
