#include "util/throttle.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 160

typedef struct throttle_entry {
    char key[KEY_MAX];
    unsigned failures;
    int64_t last; /* time of the last failure; 0: free slot */
} throttle_entry;

struct util_throttle {
    util_throttle_config cfg;
    pthread_mutex_t lock;
    throttle_entry *entries;
};

util_throttle *util_throttle_new(const util_throttle_config *cfg)
{
    util_throttle *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cfg = *cfg;
    if (!t->cfg.capacity)
        t->cfg.capacity = 1;
    t->entries = calloc(t->cfg.capacity, sizeof *t->entries);
    if (!t->entries || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->entries);
        free(t);
        return NULL;
    }
    return t;
}

void util_throttle_free(util_throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->entries);
    free(t);
}

static bool expired(const util_throttle *t, const throttle_entry *e, int64_t now)
{
    return e->last == 0 || now - e->last >= (int64_t)t->cfg.forget_s;
}

static throttle_entry *find(util_throttle *t, const char *key, int64_t now)
{
    for (size_t i = 0; i < t->cfg.capacity; i++) {
        throttle_entry *e = &t->entries[i];
        if (e->last && !strncmp(e->key, key, KEY_MAX - 1)) {
            if (expired(t, e, now)) {
                memset(e, 0, sizeof *e);
                return NULL;
            }
            return e;
        }
    }
    return NULL;
}

static int64_t wait_of(const util_throttle *t, const throttle_entry *e, int64_t now)
{
    if (!e || e->failures <= t->cfg.free_failures)
        return 0;
    unsigned doublings = e->failures - t->cfg.free_failures - 1;
    int64_t first = t->cfg.first_wait_s ? t->cfg.first_wait_s : 1;
    int64_t wait = doublings >= 30 ? (int64_t)t->cfg.max_wait_s : first << doublings;
    if (wait > (int64_t)t->cfg.max_wait_s)
        wait = t->cfg.max_wait_s;
    int64_t left = e->last + wait - now;
    return left > 0 ? left : 0;
}

int64_t util_throttle_wait(util_throttle *t, const char *key, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    int64_t w = wait_of(t, find(t, key, now), now);
    pthread_mutex_unlock(&t->lock);
    return w;
}

unsigned util_throttle_failures(util_throttle *t, const char *key, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    throttle_entry *e = find(t, key, now);
    unsigned n = e ? e->failures : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* A new key takes a free or expired slot, else the one with the fewest
 * failures (the oldest among those): a stream of fresh keys replaces
 * itself and cannot wash out a key that is being throttled. */
static throttle_entry *slot_for(util_throttle *t, int64_t now)
{
    throttle_entry *best = NULL;
    for (size_t i = 0; i < t->cfg.capacity; i++) {
        throttle_entry *e = &t->entries[i];
        if (expired(t, e, now))
            return e;
        if (!best || e->failures < best->failures || (e->failures == best->failures && e->last < best->last))
            best = e;
    }
    return best;
}

void util_throttle_failure(util_throttle *t, const char *key, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    throttle_entry *e = find(t, key, now);
    if (!e) {
        e = slot_for(t, now);
        memset(e, 0, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    e->last = now > 0 ? now : 1;
    pthread_mutex_unlock(&t->lock);
}

void util_throttle_success(util_throttle *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->cfg.capacity; i++)
        if (t->entries[i].last && !strncmp(t->entries[i].key, key, KEY_MAX - 1))
            memset(&t->entries[i], 0, sizeof t->entries[i]);
    pthread_mutex_unlock(&t->lock);
}
