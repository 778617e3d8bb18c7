/* Throttling of failed attempts by key (a user name and a client address,
 * a client address alone): the first few failures cost nothing, then each
 * one doubles the wait before the next attempt, up to a maximum. A success
 * forgets the key, and so does a quiet period. Nothing is ever locked for
 * everyone: each key only throttles itself. Thread-safe. */
#ifndef SCEPD_UTIL_THROTTLE_H
#define SCEPD_UTIL_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct util_throttle_config {
    unsigned free_failures; /* failures before the first wait */
    unsigned first_wait_s;  /* the first wait (0: 1 s); each failure doubles it */
    unsigned max_wait_s;    /* the wait stops doubling here */
    unsigned forget_s;      /* a key without failures this long is forgotten */
    size_t capacity;        /* keys remembered at once */
} util_throttle_config;

typedef struct util_throttle util_throttle;

util_throttle *util_throttle_new(const util_throttle_config *cfg);
void util_throttle_free(util_throttle *t);

/* Seconds to wait before the key may try again (0: now). */
int64_t util_throttle_wait(util_throttle *t, const char *key, int64_t now);
void util_throttle_failure(util_throttle *t, const char *key, int64_t now);
void util_throttle_success(util_throttle *t, const char *key);
/* Failures recorded for the key (for tests and logs). */
unsigned util_throttle_failures(util_throttle *t, const char *key, int64_t now);

#endif
