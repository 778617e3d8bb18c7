/*
 * scepd's store: SQLite in WAL mode with synchronous=FULL, in a state
 * directory created 0700 (database 0600). The only code that runs SQL for
 * scepd. Every change is one transaction; a change and its audit line are
 * written together. Secrets (sealed private keys, sealed challenge
 * passwords, password hashes) are stored but never logged; their buffers
 * are wiped when freed (store_*_clear). The store never sees a private key
 * in the clear: the agent seals each one (src/crypto/seal.h) before it
 * hands it over, and the store keeps the sealed text as it is. The one
 * exception is the sealing migration of an older store, which hands the
 * clear keys it finds to the caller's store_seal_fn.
 */
#ifndef SCEPD_STORE_H
#define SCEPD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct store store;

#define STORE_SCHEMA_VERSION 4
/* The database file inside the state directory. */
#define STORE_DB_NAME "scepd.db"

/* Creates the directory (0700) and database (0600) when missing, applies
 * migrations up to STORE_SCHEMA_VERSION. */
int store_open(const char *dir, store **out, util_error *err) MUST_CHECK;

/* Where a private key is stored, for the sealing migration: the keys
 * table (request_id: the key's request, 0 when none) or the requests table
 * (request_id: the row's id; column "key_pem" or "signer_key_pem"). */
typedef struct store_secret_place {
    const char *table;
    const char *column;
    const char *key_name;
    int64_t request_id;
} store_secret_place;
/* Turns a clear PEM key into the text stored in its place (*sealed: free()). */
typedef int (*store_seal_fn)(void *arg, const store_secret_place *place, const char *clear, char **sealed,
                             util_error *err);
/* store_open, and the migration to schema 3 seals every clear key it finds
 * with seal (in the migration's transaction; the WAL is checkpointed
 * afterwards). store_open without a sealer refuses a store that holds clear
 * keys. Ended requests' keys are dropped, not sealed. */
int store_open_sealing(const char *dir, store_seal_fn seal, void *seal_arg, store **out,
                       util_error *err) MUST_CHECK;
void store_close(store *st);
int store_schema_version(store *st);
/* PRAGMA integrity_check plus the invariants: every registered key has a
 * certificate, every binding names an existing key. detail says what broke. */
int store_check_consistency(store *st, util_error *err) MUST_CHECK;

/* ---- named JSON documents: "scep_settings", "auto_request", "auto_state" ---- */

/* *out is NULL when the document does not exist. */
int store_doc_get(store *st, const char *name, json_t **out, util_error *err) MUST_CHECK;
/* Writes the document and, when audit_action is non-NULL, an audit line by
 * `user` in the same transaction. */
int store_doc_put(store *st, const char *name, const json_t *value, const char *user,
                  const char *audit_action, const char *audit_detail, util_error *err) MUST_CHECK;

/* Writes several documents in one transaction (with one audit line). */
int store_docs_put(store *st, const char *const *names, const json_t *const *values, size_t n,
                   const char *user, const char *audit_action, const char *audit_detail,
                   util_error *err) MUST_CHECK;

/* ---- issuance requests ---- */

/* A request's persisted state (docs/architecture.md). Keys use ACQUIRED
 * (waits for restart) and REGISTERED. The names are the schema's values,
 * and the API and the logs show them; store_state_name is their one table. */
typedef enum store_state {
    STORE_STATE_QUEUED = 0,
    STORE_STATE_GENERATING_KEY,
    STORE_STATE_CONTACTING_SERVER,
    STORE_STATE_SENT,
    STORE_STATE_PENDING,
    STORE_STATE_ACQUIRED,
    STORE_STATE_REGISTERED,
    STORE_STATE_FAILED,
    STORE_STATE_CANCELLED, /* ended by DELETE /api/v1/scep/requests/{id} */
} store_state;
#define STORE_STATE_COUNT 9

/* The state's name; "?" for a value outside the enum. */
const char *store_state_name(store_state state);
/* 0 with *out set, or -1 for a name that is not a state. */
int store_state_parse(const char *name, store_state *out) MUST_CHECK;

typedef struct store_request {
    int64_t id;
    char kind[16]; /* "manual" | "auto" */
    store_state state;
    char key_name[32];
    json_t *params;            /* request parameters without secrets (owned) */
    uint8_t *challenge_sealed; /* sealed challenge password, NULL when none or wiped (owned) */
    size_t challenge_sealed_len;
    char transaction_id[80];
    /* The keys are sealed text (crypto_seal_text), opaque to the store.
     * An ended request (registered, failed, cancelled) holds neither: the
     * store writes NULL whatever the row says. */
    char *key_sealed;        /* the new key (owned) */
    char *signer_cert_pem;   /* certificate that signed the request (owned) */
    char *signer_key_sealed; /* its key when it is not the new key (renewal; owned) */
    json_t *server;          /* discovery snapshot: caps, server header, CA certs PEM (owned) */
    int attempts;
    int64_t next_attempt_at; /* unix seconds, 0: none */
    char error_code[48];     /* catalogue code, "" when none */
    char error_detail[512];
    char replaces[32]; /* key this pair takes over at registration (delete-old) */
    int64_t created_at, updated_at;
} store_request;

void store_request_clear(store_request *r);
/* Inserts a new request (id assigned) with an audit line. */
int store_request_insert(store *st, store_request *r, const char *user, util_error *err) MUST_CHECK;
/* Inserts a request and writes a document in the same transaction (the auto
 * request's schedule advances with the request it starts). */
int store_request_insert_with_doc(store *st, store_request *r, const char *user, const char *doc_name,
                                  const json_t *doc, util_error *err) MUST_CHECK;
/* Writes every field of an existing request. */
int store_request_update(store *st, const store_request *r, util_error *err) MUST_CHECK;
int store_request_get(store *st, int64_t id, store_request *out, util_error *err) MUST_CHECK;
/* Newest first, at most `limit`. *out is an array of n entries; free each with
 * store_request_clear, then free(*out). */
int store_request_list(store *st, int limit, bool only_active, store_request **out, size_t *n,
                       util_error *err) MUST_CHECK;

/* ---- key pairs ---- */

typedef struct store_key {
    char name[32];
    store_state state;  /* ACQUIRED (waits for restart) or REGISTERED */
    char *key_sealed;   /* sealed text of the private key (owned) */
    char *cert_pem;     /* the certificate (owned) */
    char *chain_pem;    /* the rest of the chain, may be "" (owned) */
    int64_t request_id; /* 0 for keys not from a request (the initial tls key) */
    char replaces[32];  /* delete-old: key to replace at registration, "" when none */
    int64_t created_at, registered_at;
    char storage[16]; /* where the private key lives: "software" ("" on insert) or "tpm2" */
} store_key;

void store_key_clear(store_key *k);
/* One transaction: the request becomes ACQUIRED (fields as given in r) and
 * the key pair is inserted as ACQUIRED. Fails with KEY_STORE_FULL
 * when max_keys pairs (acquired + registered) already exist, KEY_NAME_TAKEN
 * when the name is used. */
int store_acquire(store *st, const store_request *r, const store_key *k, int max_keys,
                  util_error *err) MUST_CHECK;
/* Inserts a registered key directly (the self-signed tls key at first start). */
int store_key_insert_registered(store *st, const store_key *k, util_error *err) MUST_CHECK;

typedef struct store_registration {
    char name[32];     /* registered key */
    char replaced[32]; /* deleted old key, "" when none */
    int64_t request_id;
} store_registration;

/* One transaction: every acquired key becomes registered; where it replaces
 * an old key, the old key's bindings move to it and the old key is deleted;
 * its request becomes REGISTERED. Returns what changed (free(*out)). */
int store_register_all(store *st, const char *user, store_registration **out, size_t *n,
                       util_error *err) MUST_CHECK;
int store_key_get(store *st, const char *name, store_key *out, util_error *err) MUST_CHECK;
/* All keys, by name. */
int store_key_list(store *st, store_key **out, size_t *n, util_error *err) MUST_CHECK;
/* Refuses with KEY_IN_USE (detail: "used by FUNCTION") when bound. The
 * WAL is checkpointed afterwards (secure_delete is on). */
int store_key_delete(store *st, const char *name, const char *user, util_error *err) MUST_CHECK;
/* Gives key `from` the free name `to`; its bindings and the requests that
 * made it follow (renewal with delete-old taking the old key's name).
 * key_sealed: the key sealed again for its new name (its associated data
 * names it); NULL keeps the stored value. KEY_NAME_TAKEN when `to` exists. */
int store_key_rename(store *st, const char *from, const char *to, const char *key_sealed, const char *user,
                     util_error *err) MUST_CHECK;
int store_key_count(store *st, int *out, util_error *err) MUST_CHECK;
/* The stored pairs by state: registered, and acquired (waiting for a restart). */
int store_key_count_states(store *st, int *registered, int *acquired, util_error *err) MUST_CHECK;

/* ---- bindings: function name -> key name ---- */

typedef struct store_binding {
    char function[32];
    char key_name[32]; /* "" when unbound */
} store_binding;

int store_binding_set(store *st, const char *function, const char *key_name, const char *user,
                      util_error *err) MUST_CHECK;
int store_binding_list(store *st, store_binding **out, size_t *n, util_error *err) MUST_CHECK;

/* ---- CA/RA certificates from the last GetCACert ---- */

/* Replaces the stored set (PEM of each, with its role name); the staged
 * next CA (role "next_ca", from GetNextCACert) is kept. */
int store_ca_certs_put(store *st, const char *const *pems, const char *const *roles, size_t n,
                       util_error *err) MUST_CHECK;
/* Replaces every row, the next CA included (roles may be "next_ca"): a
 * rollover's staging and promotion, each in one transaction. */
int store_ca_certs_put_all(store *st, const char *const *pems, const char *const *roles, size_t n,
                           util_error *err) MUST_CHECK;
/* JSON array of {"pem","role","fetched_at"}, the next CA last. */
int store_ca_certs_get(store *st, json_t **out, util_error *err) MUST_CHECK;

/* ---- users, sessions, audit ---- */

typedef struct store_user {
    char name[64];
    char role[16];       /* "admin" | "viewer" */
    char *password_hash; /* self-describing scrypt hash string (owned, secret) */
    int failed_logins;
    int64_t locked_until;
} store_user;

void store_user_clear(store_user *u);
int store_user_put(store *st, const store_user *u, util_error *err) MUST_CHECK;
/* NOT_FOUND when absent. */
int store_user_get(store *st, const char *name, store_user *out, util_error *err) MUST_CHECK;
int store_user_count(store *st, int *out, util_error *err) MUST_CHECK;
int store_user_login_result(store *st, const char *name, bool success, int64_t locked_until,
                            util_error *err) MUST_CHECK;

typedef struct store_session {
    char token_hash[65]; /* hex SHA-256 of the cookie value; the token itself is never stored */
    char user[64];
    char csrf[65];
    int64_t created_at, last_seen;
} store_session;

int store_session_put(store *st, const store_session *s, util_error *err) MUST_CHECK;
int store_session_get(store *st, const char *token_hash, store_session *out, util_error *err) MUST_CHECK;
int store_session_touch(store *st, const char *token_hash, int64_t now, util_error *err) MUST_CHECK;
int store_session_delete(store *st, const char *token_hash, util_error *err) MUST_CHECK;
int store_session_expire(store *st, int64_t idle_before, util_error *err) MUST_CHECK;
/* Deletes every session of a user (password or role changed). */
int store_session_delete_user(store *st, const char *user, util_error *err) MUST_CHECK;

/* Adds an audit line in its own transaction (for events without a change). */
int store_audit_add(store *st, const char *user, const char *action, const char *detail,
                    util_error *err) MUST_CHECK;
/* JSON array of {"id","at","user","action","detail"}, newest first. */
int store_audit_list(store *st, int limit, json_t **out, util_error *err) MUST_CHECK;

/* Clock used for created_at/updated_at/audit times (tests inject one). */
typedef int64_t (*store_clock_fn)(void *arg);
void store_set_clock(store *st, store_clock_fn fn, void *arg);

#endif
