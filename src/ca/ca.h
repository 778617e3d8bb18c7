/*
 * scepca: a SCEP (RFC 8894) CA/RA server for labs and tests, with NDES
 * emulation and fault injection. The request handler (ca_handle) is a plain
 * function from an HTTP request to an HTTP response, with the store and the
 * configuration passed in; the evhttp layer (ca_serve) only adapts it.
 */
#ifndef SCEPD_CA_CA_H
#define SCEPD_CA_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "util/error.h"

/* ---- Profiles ---- */

typedef enum ca_profile {
    CA_PROFILE_GENERIC = 0,
    CA_PROFILE_NDES2008R2,
    CA_PROFILE_NDES2012R2,
    CA_PROFILE_NDES2016,
} ca_profile;

int ca_profile_parse(const char *name, ca_profile *out) MUST_CHECK;
const char *ca_profile_name(ca_profile p);
bool ca_profile_is_ndes(ca_profile p);

/* ---- Faults: --fault NAME[:ARG][@PROBABILITY] ---- */

typedef enum ca_fault_kind {
    CA_FAULT_DELAY = 0, /* ARG: milliseconds */
    CA_FAULT_DROP,      /* close without a reply */
    CA_FAULT_RESET,     /* TCP RST */
    CA_FAULT_TRUNCATE,  /* half the body, then close */
    CA_FAULT_GARBAGE,   /* random bytes as the body */
    CA_FAULT_HTTP,      /* ARG: HTTP status */
    CA_FAULT_WRONG_CONTENT_TYPE,
    CA_FAULT_BAD_SIGNATURE,
    CA_FAULT_WRONG_SIGNER,
    CA_FAULT_WRONG_TRANSACTION_ID,
    CA_FAULT_WRONG_RECIPIENT_NONCE,
    CA_FAULT_EXPIRED_RA,
    CA_FAULT_PENDING_FOREVER,
    CA_FAULT_SLOW_DRIP, /* ARG: milliseconds per byte (default 2) */
    CA_FAULT_COUNT
} ca_fault_kind;

typedef struct ca_fault {
    ca_fault_kind kind;
    long arg;
    double probability; /* 0 < p <= 1 */
} ca_fault;

#define CA_MAX_FAULTS 16

int ca_fault_parse(const char *spec, ca_fault *out, util_error *err) MUST_CHECK;
const char *ca_fault_name(ca_fault_kind kind);

/* ---- Server configuration ---- */

typedef struct ca_config {
    const char *dir;
    ca_profile profile;
    const char *challenge;   /* static password, or NULL */
    bool otp;                /* one-time passwords (NDES style) */
    bool pending;            /* defer every request until approve/reject */
    int validity_days;       /* issued certificates; 0: 365 */
    int allow_renew_days;    /* 0: renew any time; N: within N days of expiry */
    size_t max_query_string; /* 0: the profile's default (IIS 2048, generic 65536) */
    ca_fault faults[CA_MAX_FAULTS];
    size_t fault_count;
    unsigned threads; /* request workers for ca_serve; 0: 4, 1: none */
    /* Wrong challenges per client address, shared by every worker's server
     * (thread-safe, borrowed); NULL: each server keeps its own. */
    struct util_throttle *challenge_throttle;
} ca_config;

typedef struct ca_server ca_server;

/* The throttle of wrong challenges (see ca_config.challenge_throttle). */
struct util_throttle *ca_challenge_throttle_new(void);

/* Opens the store under cfg->dir and loads the CA and RA material. cfg is
 * borrowed and must outlive the server. */
int ca_server_open(const ca_config *cfg, ca_server **out, util_error *err) MUST_CHECK;
/* Does, on the calling thread, what OpenSSL otherwise does on a thread's
 * first request: its random generators, the RSA blinding of each private
 * key (crypto_key_prepare). Each worker thread calls it once at start, so
 * that no device's request pays for it; the store's schema was read when
 * ca_server_open loaded the keys through the same connection. */
void ca_server_prepare(ca_server *srv);
void ca_server_free(ca_server *srv);

/* ---- The request handler ---- */

typedef struct ca_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* as received, without the query */
    const char *query;  /* raw query string, or NULL */
    const uint8_t *body;
    size_t body_len;
    const char *authorization; /* header value, or NULL */
    const char *peer;          /* for log lines */
} ca_http_request;

/* Faults that act on the connection, applied by the HTTP layer. */
enum {
    CA_CONN_DROP = 1u << 0,
    CA_CONN_RESET = 1u << 1,
    CA_CONN_TRUNCATE = 1u << 2,
    CA_CONN_SLOW_DRIP = 1u << 3,
};

#define CA_MAX_HEADERS 4

typedef struct ca_http_response {
    int status;
    const char *content_type;                 /* static text, NULL: no header */
    const char *header_names[CA_MAX_HEADERS]; /* static text */
    char header_values[CA_MAX_HEADERS][128];
    size_t header_count;
    uint8_t *body; /* owned (malloc) */
    size_t body_len;
    unsigned conn_faults; /* CA_CONN_* */
    long delay_ms;
    long drip_ms;
} ca_http_response;

void ca_handle(ca_server *srv, const ca_http_request *req, time_t now, ca_http_response *resp);
/* GetCACaps and GetCACert: answered from memory in microseconds, with no
 * store access, so the event loop answers them itself instead of handing
 * them to a worker thread (two thread switches each). */
bool ca_request_is_light(const ca_http_request *req);
void ca_http_response_clear(ca_http_response *resp);

/* Serves HTTP on listen ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80")
 * until SIGINT or SIGTERM. Prints "listening on http://HOST:PORT" (with the
 * real port when PORT is 0) on stdout. */
int ca_serve(ca_server *srv, const char *listen, util_error *err) MUST_CHECK;

/* ---- Administration (the scepca subcommands) ---- */

typedef struct ca_init_params {
    const char *dir;
    const char *key_type;       /* "rsa:2048" default */
    const char *subject;        /* default "CN=scepca test CA" */
    int days;                   /* CA validity, default 3650 */
    bool ndes;                  /* also issue the two RA certificates */
    const char *admin_user;     /* default "admin" */
    const char *admin_password; /* NULL: generated and returned */
} ca_init_params;

/* Creates DIR, the store and the CA. admin_password_out receives the
 * password of the /certsrv/mscep_admin/ page when one was generated. */
int ca_admin_init(const ca_init_params *p, time_t now, char *admin_password_out, size_t out_len,
                  util_error *err) MUST_CHECK;
/* A new one-time password (16 uppercase hex characters). Returns 1 when the
 * cache of 5 outstanding passwords is full. */
int ca_admin_otp(const char *dir, time_t now, char out[17], util_error *err) MUST_CHECK;
int ca_admin_list(const char *dir, bool pending_only, time_t now, FILE *out, util_error *err) MUST_CHECK;
/* 1: no such pending request. */
int ca_admin_approve(const char *dir, int64_t id, time_t now, util_error *err) MUST_CHECK;
int ca_admin_reject(const char *dir, int64_t id, time_t now, util_error *err) MUST_CHECK;
/* 1: unknown serial, 2: already revoked. */
int ca_admin_revoke(const char *dir, const char *serial, time_t now, util_error *err) MUST_CHECK;
/* Stages a new CA key and certificate for GetNextCACert. */
int ca_admin_rollover(const char *dir, time_t now, util_error *err) MUST_CHECK;
/* The staged next CA becomes the CA (RA certificates, if any, are issued
 * again under it); a running server uses it after a restart. */
int ca_admin_promote(const char *dir, time_t now, util_error *err) MUST_CHECK;

#endif
