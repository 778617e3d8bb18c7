/* Worker threads that run ca_handle off the event loop (see pool.c). */
#ifndef SCEPD_CA_POOL_H
#define SCEPD_CA_POOL_H

#include <stdbool.h>

#include "ca/ca.h"

struct event_base;

#define CA_POOL_MAX_THREADS 32
#define CA_POOL_MAX_QUEUE 1024 /* beyond this the server answers 503 */

typedef struct ca_job ca_job;
typedef struct ca_pool ca_pool;

struct ca_job {
    ca_job *next;          /* the pool's queue */
    ca_http_request req;   /* the strings and body it points to are the job owner's */
    ca_http_response resp; /* filled by a worker */
    time_t now;
    unsigned worker;           /* set by the pool: which worker ran it */
    void (*done)(ca_job *job); /* called on the event loop thread */
};

/* Opens one ca_server per thread from cfg (which must outlive the pool). */
int ca_pool_start(const ca_config *cfg, struct event_base *base, unsigned threads, ca_pool **out,
                  util_error *err) MUST_CHECK;
/* false: the queue is full or the pool is stopping; the job stays the caller's. */
bool ca_pool_submit(ca_pool *p, ca_job *job);
/* How many workers wait for a job. A job goes to the one that went idle
 * last, so that under light load one worker takes them all. */
unsigned ca_pool_idle(ca_pool *p);
/* Joins the threads. Jobs still queued are not run and stay their owner's;
 * done callbacks scheduled but not yet run are dropped with the event base. */
void ca_pool_stop(ca_pool *p);

#endif
