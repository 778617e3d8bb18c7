/* Shared inside src/agent. */
#ifndef SCEPD_AGENT_INTERNAL_H
#define SCEPD_AGENT_INTERNAL_H

#include <event2/event.h>
#include <pthread.h>

#include "util/throttle.h"
#include "agent/agent.h"
#include "client/client.h"
#include "vault/vault.h"

#define AGENT_NAME_MAX 24
#define AGENT_MAX_SANS 16
#define AGENT_MAX_EKUS 8
#define AGENT_SESSION_IDLE_S 900
/* auth.c: the login throttle and the dummy hash */
int agent_login_setup(agent *a, util_error *err);
/* A login split around its scrypt: prepare (throttle, cache, the user's hash
 * or the dummy; AGENT_LOGIN_PENDING when the hash must be checked), verify
 * (the only part that may run off the event loop), conclude (throttle,
 * store, cache, log; clears the check). */
typedef struct agent_login_check {
    char user[64];
    char client[80];
    char key[160]; /* the throttle's */
    char role[16];
    char *hash; /* secret, owned */
    bool known;
    bool ok;
} agent_login_check;
int agent_login_prepare(agent *a, const char *user, const char *password, const char *client,
                        agent_role *role, agent_login_check *check, util_error *err);
void agent_login_verify(agent_login_check *check, const char *password);
int agent_login_conclude(agent *a, agent_login_check *check, const char *password, agent_role *role,
                         util_error *err);
void agent_login_check_clear(agent_login_check *check);
/* login.c: the login thread; stopped (joined, jobs freed) by agent_free */
typedef struct agent_login_worker agent_login_worker;
void agent_login_worker_free(agent_login_worker *w);
#define AGENT_SESSION_MAX_S (8 * 3600) /* absolute lifetime of a session */
#define AGENT_JITTER_MAX_S 600

/* ---- validated inputs (validate.c) ---- */

typedef struct agent_key_params {
    char key_name[AGENT_NAME_MAX + 1];
    char signature_algorithm[8]; /* sha1 sha256 sha384 sha512 */
    char key_algorithm[8];       /* rsa ecdsa */
    int key_length;              /* rsa 1024..4096, ecdsa 256/384 */
    char organization[65];
    char common_name[65];
    char key_usage[24]; /* none digital_signature key_encipherment both */
    char sans[AGENT_MAX_SANS][128];
    size_t san_count;
    char ekus[AGENT_MAX_EKUS][64];
    size_t eku_count;
    char challenge[256];  /* secret; "" when none */
    bool challenge_set;   /* the input carried the field */
    char key_storage[16]; /* software (default) or tpm2: the key is made and kept in the TPM */
} agent_key_params;

typedef struct agent_settings {
    char url[512];
    int port;
    int timeout_s;
    char ca_file[256];
    char ca_fingerprint[100];
    char tls_pin[100];
    char proxy[256];
    char ca_identifier[128];
    char method[8];      /* auto get post */
    int poll_interval_s; /* manual requests */
    int poll_max;
    bool tls_pin_check_host; /* with tls_pin: also check the host name (default) */
    bool subject_utf8;       /* organization and common_name may be UTF-8 (default: printable single-byte) */
    /* Credentials given inside the URL or the proxy URL ("user:password",
     * as written there): secrets. url and proxy never hold them; they are
     * stored sealed and the API only says whether they are set. */
    char url_credentials[256];
    char proxy_credentials[256];
    /* From a PUT: -1 not given, 0 false (clear the stored ones), 1 true */
    signed char url_credentials_given, proxy_credentials_given;
    char proxy_full[520]; /* the proxy URL with its credentials, for curl */
} agent_settings;

typedef struct agent_auto {
    bool enabled;
    int64_t start;
    bool auto_adjust;
    bool polling;
    int retries;
    int interval_s;
    bool periodic;
    int interval_days;
    bool auto_restart;
    bool delete_old;
    agent_key_params key;
    int renew_pct;      /* renew_at_remaining_percent: 1-99, 0 for none */
    bool renew_replace; /* renew_key_name "replace": with delete_old the new pair takes the old one's name */
} agent_auto;

/* Parse and check; the first bad field is named at the start of the detail. */
int agent_parse_key_params(const json_t *in, agent_key_params *out, util_error *err) MUST_CHECK;
json_t *agent_key_params_json(const agent_key_params *p); /* without the challenge */
int agent_parse_settings(const json_t *in, agent_settings *out, util_error *err) MUST_CHECK;
/* organization and common_name hold printable single-byte characters only,
 * unless utf8 (the settings' subject_utf8); the field is named after prefix. */
int agent_subject_charset_check(const agent_key_params *p, bool utf8, const char *prefix,
                                util_error *err) MUST_CHECK;
json_t *agent_settings_json(const agent_settings *s);
/* A PUT that gives a port other than the one written in the URL is
 * refused (documents stored before this rule keep their port). */
int agent_settings_check_port(const json_t *in, const agent_settings *s, util_error *err) MUST_CHECK;
/* `current` supplies fields the input omits (challenge kept when absent). */
int agent_parse_auto(const json_t *in, const agent_auto *current, agent_auto *out,
                     util_error *err) MUST_CHECK;
json_t *agent_auto_json(const agent_auto *a);
bool agent_key_name_valid(const char *name);
int agent_time_parse(const char *text, int64_t *out);
void agent_time_format(int64_t t, char *out, size_t len);
json_t *agent_time_json(int64_t t); /* null for 0 */

/* ---- the agent ---- */

typedef struct agent_run agent_run;
typedef struct agent_crl_fetch agent_crl_fetch;
typedef struct agent_rollover agent_rollover;

typedef struct agent_auto_state {
    int64_t base;     /* scheduled time of the current/next run before jitter */
    int jitter_s;     /* drawn once per run */
    int64_t next_run; /* base + jitter; 0: none */
    int attempts_left;
    char last_result[48]; /* a state's name (ACQUIRED, REGISTERED) or an error code */
    int64_t last_request_id;
    char current_key[AGENT_NAME_MAX + 1]; /* the pair the last auto request produced */
    /* renew_at_remaining_percent: the registered certificate watched, when
     * its renewal is due (with its own random delay), and the certificate a
     * renewal was last sent for (it is renewed once) */
    char renew_serial[130];
    int renew_jitter_s;
    int64_t renew_at;
    char renewed_serial[130];
} agent_auto_state;

struct agent {
    struct event_base *base;
    agent_config cfg;
    char state_dir[512];
    store *st;
    http_client *hc;
    struct vault_link *vault; /* every private-key operation goes there */
    struct vault *own_vault;  /* one process: the vault made in place */
    /* Seals challenge passwords and URL credentials. Random, kept in the
     * store sealed under the KEK (document "secrets_key"). */
    uint8_t seal_key[32];
    /* Verified Basic credentials, kept for a minute as an HMAC under a key
     * that lives only in memory, so that each API call does not cost a
     * scrypt computation (32 MiB, ~90 ms) on the event loop. */
    struct {
        char user[64];
        uint8_t mac[32];
        agent_role role;
        int64_t until;
    } login_cache[8];
    uint8_t login_key[32];
    util_throttle *login_throttle;    /* failures per (user, client address) */
    char *dummy_hash;                 /* what unknown users are checked against */
    agent_login_worker *login_worker; /* started with the first login that hashes */
    agent_settings settings;
    agent_auto autoreq;
    /* the auto request's challenge, sealed with seal_key; NULL: none. It
     * is opened only when a run starts (autoreq.key.challenge stays ""). */
    uint8_t *auto_challenge_sealed;
    size_t auto_challenge_sealed_len;
    agent_auto_state auto_state;
    agent_run *run;       /* at most one request runs at a time */
    agent_run **finished; /* ended runs, freed from the loop (their callbacks were on the stack) */
    size_t finished_count;
    agent_run **orphans; /* cancelled runs whose key generation or transfer has not come back yet */
    size_t orphan_count;
    struct event *reaper;
    agent_crl_fetch *crl_fetch;                       /* a GetCRL in flight */
    int64_t crl_next_try;                             /* no GetCRL to crl_url before this */
    char crl_url[sizeof(((agent_settings *)0)->url)]; /* the CA last asked */
    char crl_reason[512];                             /* why the last GetCRL brought none; "" */
    agent_rollover *rollover;                         /* a GetNextCACert check in flight */
    int64_t rollover_next_at;                         /* the next check; 0: none planned */
    struct event *tick;                               /* the scheduler's timer */
    struct event *sigchld;
    int64_t metric_requests[4]; /* acquired, failed, pending polls, registered */
};

int64_t agent_now(const agent *a);

uint32_t agent_random(const agent *a, uint32_t bound);
/* Re-arms the scheduler timer for the earliest due time. */
void agent_schedule(agent *a);
/* Runs whatever is due at agent_now(): auto request, poll retries. */
void agent_tick(agent *a);

/* vault.c: the agent's side of the vault (src/vault). The store holds
 * sealed text only; the vault opens it, and the agent gets proxy keys whose
 * private operations run in the vault. The associated data names each
 * place (crypto/seal.h), so a key moved to another row does not open; a key
 * that moves is sealed again by the vault. */
/* A new key (spec "rsa:2048", "ec:P-256") for a column of the requests
 * table ("key_pem" or "signer_key_pem"); *key: its proxy. Callable from the
 * key-generation thread. */
int agent_generate_request_key(agent *a, int64_t id, const char *column, const char *key_name,
                               const char *spec, char **sealed, EVP_PKEY **key, util_error *err) MUST_CHECK;
/* A new key for the keys table (request id 0: not from a request). */
int agent_generate_pair_key(agent *a, const char *name, int64_t request_id, const char *spec, char **sealed,
                            EVP_PKEY **key, util_error *err) MUST_CHECK;
/* Proxies for a stored pair's key and a request's key. */
int agent_unseal_pair_key(agent *a, const store_key *k, EVP_PKEY **out, util_error *err) MUST_CHECK;
int agent_unseal_request_key(agent *a, const store_request *r, const char *column, EVP_PKEY **out,
                             util_error *err) MUST_CHECK;
/* A request's new key sealed again for the keys table (name, request_id). */
int agent_reseal_request_to_pair(agent *a, const store_request *r, const char *name, int64_t request_id,
                                 char **sealed, util_error *err) MUST_CHECK;
/* A pair's key sealed again as the signer of request r (a renewal). */
int agent_reseal_pair_to_request(agent *a, const store_key *k, const store_request *r, char **sealed,
                                 util_error *err) MUST_CHECK;
/* A pair's key sealed again under another name (the pair is renamed). */
int agent_reseal_pair_renamed(agent *a, const store_key *k, const char *new_name, char **sealed,
                              util_error *err) MUST_CHECK;
/* The vault writes the pair's key to the function's export_key path. */
int agent_export_pair_key(agent *a, const store_key *k, const char *function, util_error *err) MUST_CHECK;
/* The vault hands the pair's key, with its certificates, to the HTTPS listener. */
int agent_tls_pair(agent *a, const store_key *k, util_error *err) MUST_CHECK;
/* store_seal_fn for the sealing migration (arg: the agent). */
int agent_seal_migrated(void *arg, const store_secret_place *place, const char *clear, char **sealed,
                        util_error *err) MUST_CHECK;
/* Loads the secrets key (seal_key) from the store, creating it or taking
 * over the old state-directory file seal.key, and checks that the KEK opens
 * the store's keys. */
int agent_vault_open(agent *a, util_error *err) MUST_CHECK;

/* request.c */
int agent_run_start(agent *a, const store_request *row, util_error *err) MUST_CHECK;
void agent_run_free(agent_run *run);
int64_t agent_run_due(const agent_run *run); /* 0: not waiting on a timer */
int64_t agent_run_id(const agent_run *run);
bool agent_run_is_auto(const agent_run *run);
void agent_run_wake(agent_run *run);
/* renew: the stored pair being renewed (its certificate and key sign the
 * request), NULL for a first enrollment. */
int agent_request_insert(agent *a, const char *kind, const agent_key_params *p, const char *key_name,
                         const char *replaces, const store_key *renew, const char *user,
                         const json_t *auto_state, int64_t *id, util_error *err) MUST_CHECK;
void agent_reap_runs(agent *a);
/* Cancels the running request: writes the cancelled row (agent_request_
 * cancelled), detaches the run from the agent (an orphan until its thread
 * or transfer comes back, which is then ignored) and ends it. */
int agent_run_cancel(agent_run *run, util_error *err) MUST_CHECK;
/* Marks a row cancelled and wipes its secrets (key, signer key, challenge). */
void agent_request_cancelled(agent *a, store_request *row);
/* Hands an ended run to the reaper (its callback may be on the stack). */
void agent_run_release(agent *a, agent_run *run);
/* KEY_STORE_FULL when max_keys pairs are stored, counting acquired pairs
 * that wait for a restart; the detail says how many of each. */
int agent_key_store_check(agent *a, util_error *err) MUST_CHECK;
/* A request row as the API shows it. */
json_t *agent_request_json(const store_request *r);
/* Called by request.c when a run ends (acquired or failed). */
void agent_run_finished(agent *a, int64_t request_id, store_state state, const util_error *err);

/* schedule.c */
int agent_auto_load(agent *a, util_error *err) MUST_CHECK;
int agent_auto_save_state(agent *a, util_error *err) MUST_CHECK;
/* The base time of the run after `base`, or 0 when the timer is one-shot. */
int64_t agent_schedule_following(const agent_auto *cfg, int64_t base, int64_t now);
void agent_auto_request_done(agent *a, int64_t id, store_state state, const util_error *err);
int agent_auto_fire(agent *a, util_error *err) MUST_CHECK;
/* renew_at_remaining_percent: recomputes auto_state.renew_at from the
 * registered certificate (0: nothing to renew), and sends the renewal when
 * it is due; the date-and-period schedule is left as it is. */
void agent_auto_renew_arm(agent *a);
/* Registration: request_id was an auto renewal whose new pair takes the
 * name of the pair it replaced (renew_key_name "replace"). */
bool agent_auto_takes_old_name(agent *a, int64_t request_id);
int agent_auto_fire_renewal(agent *a, util_error *err) MUST_CHECK;
/* The timer is enabled, one-shot, and its run has fired: nothing more is
 * scheduled, and manual requests are allowed again. */
bool agent_auto_done(const agent *a);

/* keys.c */
int agent_apply_bindings(agent *a, const char *only_key, util_error *err) MUST_CHECK;
int agent_ensure_tls_key(agent *a, util_error *err) MUST_CHECK;
const agent_function *agent_function_find(const agent *a, const char *name);

/* crl.c */
/* agent_key_verify_start's wait: 1 and *w when a fetch runs that the
 * verification should wait for (done(arg) when it ends or is overdue). */
int agent_crl_wait(agent *a, const char *key_name, void (*done)(void *arg), void *arg, agent_crl_waiter **w);
void agent_crl_wait_cancel(agent *a, agent_crl_waiter *w);
/* For a verification's answer: the stored CRL's source, issuer, time and
 * age when it was used (null otherwise, and not_checked gets "not checked:"
 * and the reason). */
json_t *agent_crl_describe(agent *a, X509 *cert, bool used, char *not_checked, size_t len);
void agent_crl_abandon(agent *a);
/* The stored CRL when its issuer issued cert (*out NULL otherwise). */
int agent_crl_for(agent *a, X509 *cert, STACK_OF(X509_CRL) * *out) MUST_CHECK;

/* rollover.c */
/* Stores a discovery's CA set, keeping the staged next CA or promoting it
 * when the server presents it; fetched_next (GetNextCACert) replaces the
 * staged one. */
void agent_ca_certs_store(agent *a, const client_server *srv, STACK_OF(X509) * fetched_next);
/* The staged next CA certificates (possibly none). */
/* The stored CA/RA certificates whose role is (with other: is not) role;
 * every one when role is NULL. */
int agent_stored_ca_certs(store *st, const char *role, bool other, STACK_OF(X509) * *out,
                          util_error *err) MUST_CHECK;
int agent_next_ca(const agent *a, STACK_OF(X509) * *out, util_error *err) MUST_CHECK;
/* At start: plans a check when the CA is known; promotes an expired CA's successor. */
void agent_rollover_start(agent *a);
void agent_rollover_tick(agent *a);
void agent_rollover_abandon(agent *a);

/* settings helpers */
/* cfg->next_ca is the caller's: free it with util_x509_stack_free. */
int agent_client_config(const agent *a, client_config *cfg, char **url_out, util_error *err) MUST_CHECK;

#endif
