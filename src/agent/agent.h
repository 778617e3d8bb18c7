/*
 * The device side of scepd: SCEP settings, issuance requests as persisted
 * state machines, the auto-request scheduler, registration ("restart"),
 * registered keys, bindings of keys to functions, users and sessions.
 * The REST API and the Remote UI reach everything through these calls.
 *
 * JSON in, JSON out. Inputs are validated strictly: an unknown field, a
 * wrong type or a bad value fails with UTIL_ERR_INVALID_FIELD and the field
 * name at the start of the detail ("key_name: ..."). Outputs never contain
 * secrets (private keys, challenge passwords, password hashes). The shapes
 * are documented in docs/api.md.
 */
#ifndef SCEPD_AGENT_H
#define SCEPD_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/error.h"

struct event_base;
struct vault_link;
struct http_client;
struct crypto_kek;

#define AGENT_MAX_FUNCTIONS 16

/* A function a key can be bound to ("tls", "ieee8021x", ...), from the config. */
typedef struct agent_function {
    char name[32];
    char export_key[256]; /* PEM paths written after a change, "" for none */
    char export_cert[256];
    char export_chain[256];
    char command[512]; /* run with /bin/sh -c after the exports, "" for none */
} agent_function;

typedef struct agent_config {
    const char *state_dir;
    int max_keys;                                  /* default 10 */
    agent_function functions[AGENT_MAX_FUNCTIONS]; /* "tls" is always present */
    size_t function_count;
    const char *initial_url; /* SCEP server used when the store has none */
    /* Injected for tests; NULL: time(NULL) and RAND_bytes. */
    int64_t (*clock)(void *arg);
    uint32_t (*random)(void *arg, uint32_t bound); /* uniform in [0, bound) */
    void *hook_arg;
    /* Tests: called on the login thread before each hash (with hook_arg),
     * so that a test can hold the thread; NULL in the daemon. */
    void (*login_hook)(void *arg);
    /* The holder of the private keys (src/vault). scepd passes its vault
     * process's link. NULL: a vault in this process under kek (borrowed,
     * kept alive until agent_free; required then), which calls
     * on_tls_change with the key's PEM (borrowed) when the key bound to
     * "tls" changes (registration, binding). */
    struct vault_link *vault;
    const struct crypto_kek *kek;
    /* Where SCEP transfers go (scepd: forwarded to its network process,
     * which the caller frees after the agent); NULL: curl in this process. */
    struct http_client *http;
    void (*on_tls_change)(void *arg, const char *key_pem, const char *cert_pem, const char *chain_pem);
    void *tls_arg;
} agent_config;

typedef struct agent agent;

/* Opens the store (sealing the keys of an older store in the vault),
 * checks that the vault's KEK opens what it holds (SEALED_INVALID, nothing
 * changed), creates the first admin when there is none (password
 * from admin_password; NULL: generated and written to *generated_password,
 * which the caller prints once and wipes), makes the self-signed tls key at
 * first start, resumes unfinished requests and arms the scheduler. */
int agent_new(struct event_base *base, const agent_config *cfg, const char *admin_password,
              char **generated_password, agent **out, util_error *err) MUST_CHECK;
void agent_free(agent *a);

/* ---- status ---- */
json_t *agent_status(agent *a);
/* Prometheus text exposition. */
int agent_metrics(agent *a, util_buf *out) MUST_CHECK;

/* ---- communication settings ---- */
json_t *agent_scep_settings_get(agent *a);
int agent_scep_settings_put(agent *a, const json_t *in, const char *user, util_error *err) MUST_CHECK;

/* ---- issuance requests ---- */
/* 409-class errors: AUTO_REQUEST_ENABLED, REQUEST_BUSY, KEY_NAME_TAKEN. */
int agent_request_create(agent *a, const json_t *in, const char *user, int64_t *id,
                         util_error *err) MUST_CHECK;
json_t *agent_request_get(agent *a, int64_t id, util_error *err);
/* Ends a request that has not finished (queued, generating its key,
 * contacting the server, sent, pending or waiting for a retry): it becomes
 * cancelled, its key, challenge and temporary signer are wiped from the row,
 * and a new request may start at once. A network exchange in flight is
 * abandoned (its answer is ignored; nothing more is sent). NOT_FOUND for an
 * unknown id; REQUEST_FINISHED for acquired, registered, failed, cancelled. */
int agent_request_cancel(agent *a, int64_t id, const char *user, util_error *err) MUST_CHECK;
json_t *agent_request_list(agent *a, util_error *err);

/* ---- auto request ---- */
json_t *agent_auto_get(agent *a, util_error *err);
int agent_auto_put(agent *a, const json_t *in, const char *user, util_error *err) MUST_CHECK;

/* ---- registration ---- */
/* Registers every acquired pair in one transaction, then applies bindings
 * (tls listener, exports, commands). *result: {"registered":[...],"deleted":[...]} */
int agent_restart(agent *a, const char *user, json_t **result, util_error *err) MUST_CHECK;

/* ---- keys ---- */
json_t *agent_key_list(agent *a, util_error *err);
json_t *agent_key_get(agent *a, const char *name, util_error *err);
int agent_key_delete(agent *a, const char *name, const char *user, util_error *err) MUST_CHECK;
/* {"valid", "checks": [...], "crl": {"source", "issuer", "fetched_at",
 * "age_s", "this_update", "next_update"} or null}. Uses the stored CRL;
 * without one the revocation check is skipped, "not checked: REASON". */
json_t *agent_key_verify(agent *a, const char *name, util_error *err);
/* Before agent_key_verify: fetches the CA's CRL (GetCRL signed by the key)
 * unless the CA was asked less than 30 s ago. 0: verify at once (no fetch
 * to wait for); AGENT_VERIFY_PENDING: *wait was queued, and done(arg) is
 * called on the event loop when the fetch ends or the communication
 * timeout passes, whichever is first; then call agent_key_verify. */
#define AGENT_VERIFY_PENDING 1
typedef struct agent_crl_waiter agent_crl_waiter;
int agent_key_verify_start(agent *a, const char *name, void (*done)(void *arg), void *arg,
                           agent_crl_waiter **wait);
/* The requester is gone: done is not called. Accepts NULL. */
void agent_key_verify_cancel(agent *a, agent_crl_waiter *wait);

/* ---- bindings ---- */
json_t *agent_binding_list(agent *a, util_error *err);
/* in: {"key_name": "..."}; NOT_FOUND for an unknown function or key. */
int agent_binding_put(agent *a, const char *function, const json_t *in, const char *user,
                      util_error *err) MUST_CHECK;

json_t *agent_ca_certs(agent *a, util_error *err);
/* Fetches the CA certificates and, when the server lists GetNextCACert,
 * the next CA; returns once the fetch has started. `user` (NULL: the agent
 * itself) gets an audit line. */
int agent_ca_certs_refresh(agent *a, const char *user, util_error *err) MUST_CHECK;
json_t *agent_audit(agent *a, int limit, util_error *err);

/* ---- users and sessions ---- */
typedef enum agent_role { AGENT_ROLE_NONE = 0, AGENT_ROLE_VIEWER, AGENT_ROLE_ADMIN } agent_role;

/* Checks a password (scrypt; an unknown user is checked against a dummy
 * hash, so that it costs the same). Failures are throttled per user and
 * client address (client: the address without port, or NULL), with growing
 * waits; THROTTLED while one runs. UNAUTHORIZED for an unknown user or a
 * wrong password, in the same words. */
int agent_login(agent *a, const char *user, const char *password, const char *client, agent_role *role,
                util_error *err) MUST_CHECK;
/* The same check with the password hashed on the agent's login thread, so
 * that the event loop keeps serving other clients meanwhile. 0 or -1 when
 * answered at once (throttled, or the credentials were verified in the last
 * minute); AGENT_LOGIN_PENDING when *job was queued: done(arg) is then called
 * on the event loop once the hash is done and the outcome recorded (throttle,
 * store, cache, log), and agent_login_finish gives the answer. At most
 * AGENT_LOGIN_QUEUE logins wait or run at once; beyond that LOGIN_BUSY. */
#define AGENT_LOGIN_PENDING 1
#define AGENT_LOGIN_QUEUE 8
typedef struct agent_login_job agent_login_job;
int agent_login_start(agent *a, const char *user, const char *password, const char *client, agent_role *role,
                      void (*done)(void *arg), void *arg, agent_login_job **job, util_error *err) MUST_CHECK;
/* After done: the answer, as agent_login gives it; frees the job. */
int agent_login_finish(agent *a, agent_login_job *job, agent_role *role, util_error *err) MUST_CHECK;
/* The requester is gone: done is not called. A job not yet hashed is
 * dropped; a hash under way still has its outcome recorded (a client that
 * hangs up does not escape the throttle). Accepts NULL. */
void agent_login_cancel(agent *a, agent_login_job *job);
/* Creates a session; *token (cookie value) and *csrf are malloc'd. */
int agent_session_new(agent *a, const char *user, char **token, char **csrf, util_error *err) MUST_CHECK;
/* Resolves a cookie token; UNAUTHORIZED when unknown or idle for longer than
 * the idle timeout. Refreshes last_seen. user is 64 bytes, csrf 65. */
int agent_session_check(agent *a, const char *token, char *user, agent_role *role, char *csrf,
                        util_error *err) MUST_CHECK;
void agent_session_end(agent *a, const char *token);
/* Creates or updates a user (admin only, enforced by the API). */
int agent_user_put(agent *a, const char *name, const char *password, agent_role role, const char *by,
                   util_error *err) MUST_CHECK;
const char *agent_role_name(agent_role role);

#endif
