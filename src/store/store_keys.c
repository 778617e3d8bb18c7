/*
 * Issuance requests, key pairs and bindings (see store.h). The rules that
 * keep them consistent (a bound key is never deleted, registration moves
 * bindings and deletes the replaced key in one transaction) live here.
 */
#include "store/store_internal.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_NAME_SIZE sizeof(((store_key *)0)->name)
#define FUNCTION_SIZE sizeof(((store_binding *)0)->function)

/* ---- requests ---- */

#define REQUEST_COLUMNS                                                                                      \
    "id, kind, state, key_name, params, challenge_sealed, transaction_id, key_pem, signer_cert_pem,"         \
    " signer_key_pem, server, attempts, next_attempt_at, error_code, error_detail, replaces,"                \
    " created_at, updated_at"

static const char *const state_names[STORE_STATE_COUNT] = {
    [STORE_STATE_QUEUED] = "queued",
    [STORE_STATE_GENERATING_KEY] = "generating_key",
    [STORE_STATE_CONTACTING_SERVER] = "contacting_server",
    [STORE_STATE_SENT] = "sent",
    [STORE_STATE_PENDING] = "pending",
    [STORE_STATE_ACQUIRED] = "acquired",
    [STORE_STATE_REGISTERED] = "registered",
    [STORE_STATE_FAILED] = "failed",
    [STORE_STATE_CANCELLED] = "cancelled",
};

const char *store_state_name(store_state state)
{
    return (unsigned)state < STORE_STATE_COUNT ? state_names[state] : "?";
}

int store_state_parse(const char *name, store_state *out)
{
    for (int i = 0; name && i < STORE_STATE_COUNT; i++)
        if (!strcmp(name, state_names[i])) {
            *out = (store_state)i;
            return 0;
        }
    return -1;
}

/* Reads a state column; a value the schema's CHECK should have kept out is
 * reported, not guessed. */
static int col_state(sqlite3_stmt *s, int col, const char *what, const char *name, store_state *out,
                     util_error *err)
{
    const char *text = (const char *)sqlite3_column_text(s, col);
    if (store_state_parse(text, out) != 0)
        return util_error_set(err, UTIL_ERR_STORE, "%s %s: unknown state \"%s\"", what, name,
                              text ? text : "");
    return 0;
}

void store_request_clear(store_request *r)
{
    if (!r)
        return;
    json_decref(r->params);
    json_decref(r->server);
    if (r->challenge_sealed)
        OPENSSL_cleanse(r->challenge_sealed, r->challenge_sealed_len);
    free(r->challenge_sealed);
    store_free_secret(r->key_sealed);
    store_free_secret(r->signer_key_sealed);
    free(r->signer_cert_pem);
    OPENSSL_cleanse(r, sizeof *r);
}

static int request_from_row(sqlite3_stmt *s, store_request *r, util_error *err)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    STORE_COL_FIXED(s, 1, r->kind);
    STORE_COL_FIXED(s, 3, r->key_name);
    STORE_COL_FIXED(s, 6, r->transaction_id);
    r->attempts = sqlite3_column_int(s, 11);
    r->next_attempt_at = sqlite3_column_int64(s, 12);
    STORE_COL_FIXED(s, 13, r->error_code);
    STORE_COL_FIXED(s, 14, r->error_detail);
    STORE_COL_FIXED(s, 15, r->replaces);
    r->created_at = sqlite3_column_int64(s, 16);
    r->updated_at = sqlite3_column_int64(s, 17);
    char id_text[24];
    snprintf(id_text, sizeof id_text, "%" PRId64, r->id);
    if (col_state(s, 2, "request", id_text, &r->state, err) != 0)
        return -1;
    if (store_col_json(s, 4, &r->params) != 0 ||
        store_col_blob(s, 5, &r->challenge_sealed, &r->challenge_sealed_len) != 0 ||
        store_col_dup(s, 7, &r->key_sealed) != 0 || store_col_dup(s, 8, &r->signer_cert_pem) != 0 ||
        store_col_dup(s, 9, &r->signer_key_sealed) != 0 || store_col_json(s, 10, &r->server) != 0) {
        int64_t id = r->id;
        store_request_clear(r);
        return util_error_set(
            err, UTIL_ERR_STORE,
            "request %" PRId64 ": a column could not be read (invalid JSON or out of memory)", id);
    }
    return 0;
}

static bool state_ended(store_state state)
{
    return state == STORE_STATE_REGISTERED || state == STORE_STATE_FAILED || state == STORE_STATE_CANCELLED;
}

/* Binds ?1..?15 in the column order of the INSERT and UPDATE below, with
 * `state` in place of r->state. An ended request keeps no key. */
static int bind_request(sqlite3_stmt *s, const store_request *r, store_state state)
{
    bool ended = state_ended(state);
    int b = STORE_BIND_FIXED(s, 1, r->kind);
    b |= (unsigned)state < STORE_STATE_COUNT ? store_bind_str(s, 2, store_state_name(state)) : SQLITE_MISUSE;
    b |= STORE_BIND_FIXED(s, 3, r->key_name);
    b |= store_bind_json(s, 4, r->params);
    b |= store_bind_blob(s, 5, r->challenge_sealed, r->challenge_sealed_len);
    b |= STORE_BIND_FIXED(s, 6, r->transaction_id);
    b |= store_bind_str(s, 7, ended ? NULL : r->key_sealed);
    b |= store_bind_str(s, 8, r->signer_cert_pem);
    b |= store_bind_str(s, 9, ended ? NULL : r->signer_key_sealed);
    b |= store_bind_json(s, 10, r->server);
    b |= sqlite3_bind_int(s, 11, r->attempts);
    b |= sqlite3_bind_int64(s, 12, r->next_attempt_at);
    b |= STORE_BIND_FIXED(s, 13, r->error_code);
    b |= STORE_BIND_FIXED(s, 14, r->error_detail);
    b |= STORE_BIND_FIXED(s, 15, r->replaces);
    return b;
}

/* Every field but id and created_at; updated_at from the clock. */
static int request_write(store *st, const store_request *r, store_state state, util_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = -1;
    if (store_prepare(st,
                      "UPDATE requests SET kind = ?1, state = ?2, key_name = ?3, params = ?4,"
                      " challenge_sealed = ?5, transaction_id = ?6, key_pem = ?7, signer_cert_pem = ?8,"
                      " signer_key_pem = ?9, server = ?10, attempts = ?11, next_attempt_at = ?12,"
                      " error_code = ?13, error_detail = ?14, replaces = ?15, updated_at = ?16"
                      " WHERE id = ?17",
                      &s, err) != 0)
        return -1;
    if ((bind_request(s, r, state) | sqlite3_bind_int64(s, 16, store_now(st)) |
         sqlite3_bind_int64(s, 17, r->id)) != SQLITE_OK) {
        store_bind_fail(st, err, "write request");
        goto out;
    }
    if (store_step_done(st, s, "write request", err) != 0)
        goto out;
    if (sqlite3_changes(st->db) != 1) {
        util_error_set(err, UTIL_ERR_NOT_FOUND, "request %" PRId64, r->id);
        goto out;
    }
    rc = 0;
out:
    store_finalize(st, s);
    return rc;
}

static int request_add(store *st, const store_request *r, int64_t now, const char *user, int64_t *id,
                       util_error *err)
{
    sqlite3_stmt *s = NULL;
    char detail[160];
    int rc = -1;
    if (store_prepare(st,
                      "INSERT INTO requests (kind, state, key_name, params, challenge_sealed,"
                      " transaction_id, key_pem, signer_cert_pem, signer_key_pem, server, attempts,"
                      " next_attempt_at, error_code, error_detail, replaces, created_at, updated_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
                      &s, err) != 0)
        return -1;
    if ((bind_request(s, r, r->state) | sqlite3_bind_int64(s, 16, now)) != SQLITE_OK) {
        store_bind_fail(st, err, "insert request");
        goto out;
    }
    if (store_step_done(st, s, "insert request", err) != 0)
        goto out;
    *id = sqlite3_last_insert_rowid(st->db);
    snprintf(detail, sizeof detail, "request %" PRId64 " (%.16s) for key %.32s", *id, r->kind, r->key_name);
    rc = store_audit_insert(st, user, "request.create", detail, err);
out:
    store_finalize(st, s);
    return rc;
}

int store_request_insert(store *st, store_request *r, const char *user, util_error *err)
{
    int64_t id = 0, now;
    if (!r)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_request_insert: no request");
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    now = store_now(st);
    if (store_tx_end(st, request_add(st, r, now, user, &id, err), err) != 0)
        return -1;
    r->id = id;
    r->created_at = r->updated_at = now;
    return 0;
}

int store_request_insert_with_doc(store *st, store_request *r, const char *user, const char *doc_name,
                                  const json_t *doc, util_error *err)
{
    int64_t id = 0, now;
    if (!r || !doc_name || !doc)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_request_insert_with_doc: missing argument");
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    now = store_now(st);
    int rc = request_add(st, r, now, user, &id, err);
    if (rc == 0)
        rc = store_doc_write(st, doc_name, doc, err);
    if (store_tx_end(st, rc, err) != 0)
        return -1;
    r->id = id;
    r->created_at = r->updated_at = now;
    return 0;
}

int store_request_update(store *st, const store_request *r, util_error *err)
{
    if (!r)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_request_update: no request");
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    return store_tx_end(st, request_write(st, r, r->state, err), err);
}

int store_request_get(store *st, int64_t id, store_request *out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_request r = {0};
    int rc = -1, row;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare_bound(st, err, &s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE id = ?1", "i", id) !=
            0 ||
        (row = store_step_row(st, s, "read request", err)) < 0)
        goto out;
    if (row == 0) {
        util_error_set(err, UTIL_ERR_NOT_FOUND, "request %" PRId64, id);
        goto out;
    }
    rc = request_from_row(s, &r, err);
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = r;
    else
        store_request_clear(&r);
    return rc;
}

static void request_array_free(store_request *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_request_clear(&a[i]);
    free(a);
}

int store_request_list(store *st, int limit, bool only_active, store_request **out, size_t *n,
                       util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_request *a = NULL;
    size_t count = 0, cap = 0;
    int rc = -1, row;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    /* id, not created_at: the order of insertion whatever the clock did. */
    if (store_prepare_bound(st, err, &s,
                            "SELECT " REQUEST_COLUMNS " FROM requests"
                            " WHERE ?2 = 0 OR state NOT IN ('registered', 'failed', 'cancelled')"
                            " ORDER BY id DESC LIMIT ?1",
                            "ii", (int64_t)(limit > 0 ? limit : -1), (int64_t)only_active) != 0)
        goto out;
    while ((row = store_step_row(st, s, "list requests", err)) == 1) {
        if (store_grow((void **)&a, &cap, count, sizeof *a) != 0) {
            store_oom(err);
            goto out;
        }
        if (request_from_row(s, &a[count], err) != 0)
            goto out;
        count++;
    }
    rc = row;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0) {
        *out = a;
        *n = count;
    } else {
        request_array_free(a, count);
    }
    return rc;
}

/* ---- keys ---- */

#define KEY_COLUMNS                                                                                          \
    "name, state, key_pem, cert_pem, chain_pem, coalesce(request_id, 0), replaces, created_at,"              \
    " registered_at, storage"

void store_key_clear(store_key *k)
{
    if (!k)
        return;
    store_free_secret(k->key_sealed);
    free(k->cert_pem);
    free(k->chain_pem);
    OPENSSL_cleanse(k, sizeof *k);
}

static int key_from_row(sqlite3_stmt *s, store_key *k, util_error *err)
{
    memset(k, 0, sizeof *k);
    STORE_COL_FIXED(s, 0, k->name);
    k->request_id = sqlite3_column_int64(s, 5);
    STORE_COL_FIXED(s, 6, k->replaces);
    k->created_at = sqlite3_column_int64(s, 7);
    k->registered_at = sqlite3_column_int64(s, 8);
    STORE_COL_FIXED(s, 9, k->storage);
    if (col_state(s, 1, "key", k->name, &k->state, err) != 0)
        return -1;
    if (store_col_dup(s, 2, &k->key_sealed) != 0 || store_col_dup(s, 3, &k->cert_pem) != 0 ||
        store_col_dup(s, 4, &k->chain_pem) != 0) {
        store_key_clear(k);
        return store_oom(err);
    }
    return 0;
}

/* KEY_NAME_TAKEN when a key of this name exists, inside the transaction. */
static int key_name_free(store *st, const char *name, util_error *err)
{
    int64_t one;
    int found =
        store_query_int(st, err, "look up key", &one, "SELECT 1 FROM keys WHERE name = ?1", "t", name);
    if (found < 0)
        return -1;
    if (found)
        return util_error_set(err, UTIL_ERR_KEY_NAME_TAKEN, "key %s", name);
    return 0;
}

/* Inserts k with the given state and request (0: none). */
static int key_add(store *st, const store_key *k, store_state state, int64_t request_id, const char *replaces,
                   util_error *err)
{
    sqlite3_stmt *s = NULL;
    int64_t now = store_now(st);
    int rc = -1;
    bool registered = state == STORE_STATE_REGISTERED;
    if (store_prepare(st,
                      "INSERT INTO keys (name, state, key_pem, cert_pem, chain_pem, request_id, replaces,"
                      " created_at, registered_at, storage) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                      &s, err) != 0)
        return -1;
    if ((STORE_BIND_FIXED(s, 1, k->name) | store_bind_str(s, 2, store_state_name(state)) |
         store_bind_str(s, 3, k->key_sealed) | store_bind_str(s, 4, k->cert_pem) |
         store_bind_str(s, 5, k->chain_pem ? k->chain_pem : "") |
         (request_id ? sqlite3_bind_int64(s, 6, request_id) : sqlite3_bind_null(s, 6)) |
         store_bind_str(s, 7, replaces) | sqlite3_bind_int64(s, 8, now) |
         sqlite3_bind_int64(s, 9, registered ? now : 0) |
         store_bind_str(s, 10, k->storage[0] ? k->storage : "software")) != SQLITE_OK) {
        store_bind_fail(st, err, "insert key");
        goto out;
    }
    rc = store_step_done(st, s, "insert key", err);
out:
    store_finalize(st, s);
    return rc;
}

static int check_key_input(const store_key *k, util_error *err)
{
    if (!k)
        return util_error_set(err, UTIL_ERR_INTERNAL, "no key given");
    if (store_check_name("key name", k->name, sizeof k->name, false, err) != 0 ||
        store_check_name("replaced key name", k->replaces, sizeof k->replaces, true, err) != 0)
        return -1;
    if (!k->key_sealed || !*k->key_sealed || !k->cert_pem || !*k->cert_pem)
        return util_error_set(err, UTIL_ERR_INTERNAL, "key %s: private key or certificate missing", k->name);
    return 0;
}

static int acquire(store *st, const store_request *r, const store_key *k, int max_keys, util_error *err)
{
    int64_t count = 0;
    if (store_query_int(st, err, "count keys", &count, "SELECT count(*) FROM keys", "") < 0)
        return -1;
    if (count >= max_keys)
        return util_error_set(err, UTIL_ERR_KEY_STORE_FULL, "%" PRId64 " key pairs stored, at most %d", count,
                              max_keys);
    if (key_name_free(st, k->name, err) != 0 || request_write(st, r, STORE_STATE_ACQUIRED, err) != 0)
        return -1;
    return key_add(st, k, STORE_STATE_ACQUIRED, r->id, k->replaces[0] ? k->replaces : r->replaces, err);
}

int store_acquire(store *st, const store_request *r, const store_key *k, int max_keys, util_error *err)
{
    if (!r)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_acquire: no request");
    if (check_key_input(k, err) != 0 ||
        store_check_name("replaced key name", r->replaces, sizeof r->replaces, true, err) != 0)
        return -1;
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    return store_tx_end(st, acquire(st, r, k, max_keys, err), err);
}

int store_key_insert_registered(store *st, const store_key *k, util_error *err)
{
    int rc = -1;
    if (check_key_input(k, err) != 0 || store_tx_begin(st, true, err) != 0)
        return -1;
    if (key_name_free(st, k->name, err) == 0 &&
        key_add(st, k, STORE_STATE_REGISTERED, k->request_id, k->replaces, err) == 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

int store_key_get(store *st, const char *name, store_key *out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_key k = {0};
    int rc = -1, row;
    if (store_check_name("key name", name, KEY_NAME_SIZE, false, err) != 0 ||
        store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare_bound(st, err, &s, "SELECT " KEY_COLUMNS " FROM keys WHERE name = ?1", "t", name) !=
            0 ||
        (row = store_step_row(st, s, "read key", err)) < 0)
        goto out;
    if (row == 0) {
        util_error_set(err, UTIL_ERR_NOT_FOUND, "key %s", name);
        goto out;
    }
    rc = key_from_row(s, &k, err);
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = k;
    else
        store_key_clear(&k);
    return rc;
}

static void key_array_free(store_key *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_key_clear(&a[i]);
    free(a);
}

int store_key_list(store *st, store_key **out, size_t *n, util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_key *a = NULL;
    size_t count = 0, cap = 0;
    int rc = -1, row;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare(st, "SELECT " KEY_COLUMNS " FROM keys ORDER BY name", &s, err) != 0)
        goto out;
    while ((row = store_step_row(st, s, "list keys", err)) == 1) {
        if (store_grow((void **)&a, &cap, count, sizeof *a) != 0) {
            store_oom(err);
            goto out;
        }
        if (key_from_row(s, &a[count], err) != 0)
            goto out;
        count++;
    }
    rc = row;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0) {
        *out = a;
        *n = count;
    } else {
        key_array_free(a, count);
    }
    return rc;
}

int store_key_count(store *st, int *out, util_error *err)
{
    int64_t count = 0;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    int rc = store_query_int(st, err, "count keys", &count, "SELECT count(*) FROM keys", "");
    if (store_tx_end(st, rc < 0 ? -1 : 0, err) != 0)
        return -1;
    *out = (int)count;
    return 0;
}

int store_key_count_states(store *st, int *registered, int *acquired, util_error *err)
{
    int64_t reg = 0, acq = 0;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    int rc = store_query_int(st, err, "count registered keys", &reg,
                             "SELECT count(*) FROM keys WHERE state = 'registered'", "");
    if (rc >= 0)
        rc = store_query_int(st, err, "count acquired keys", &acq,
                             "SELECT count(*) FROM keys WHERE state = 'acquired'", "");
    if (store_tx_end(st, rc < 0 ? -1 : 0, err) != 0)
        return -1;
    *registered = (int)reg;
    *acquired = (int)acq;
    return 0;
}

/* A request whose acquired key is deleted before registration can no
 * longer complete: it fails, so that no request stays ACQUIRED without
 * its key. */
static int key_remove(store *st, const char *name, const char *user, util_error *err)
{
    char used_by[400] = "", detail[96];
    int64_t one;
    int found =
        store_query_int(st, err, "look up key", &one, "SELECT 1 FROM keys WHERE name = ?1", "t", name);
    if (found <= 0)
        return found < 0 ? -1 : util_error_set(err, UTIL_ERR_NOT_FOUND, "key %s", name);
    found = store_query_text(st, err, "look up bindings", used_by, sizeof used_by,
                             "SELECT group_concat(function, ', ') FROM"
                             " (SELECT function FROM bindings WHERE key_name = ?1 ORDER BY function)",
                             "t", name);
    if (found != 0)
        return found < 0 ? -1 : util_error_set(err, UTIL_ERR_KEY_IN_USE, "used by %s", used_by);
    if (store_run(st, err, "fail request of deleted key",
                  "UPDATE requests SET state = 'failed', updated_at = ?2, key_pem = NULL,"
                  " signer_key_pem = NULL, error_detail = 'key deleted before registration'"
                  " WHERE state = 'acquired' AND id IN"
                  " (SELECT request_id FROM keys WHERE name = ?1 AND state = 'acquired')",
                  "ti", name, store_now(st)) < 0 ||
        store_run(st, err, "delete key", "DELETE FROM keys WHERE name = ?1", "t", name) < 0)
        return -1;
    snprintf(detail, sizeof detail, "key %s deleted", name);
    return store_audit_insert(st, user, "key.delete", detail, err);
}

int store_key_delete(store *st, const char *name, const char *user, util_error *err)
{
    if (store_check_name("key name", name, KEY_NAME_SIZE, false, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_tx_end(st, key_remove(st, name, user, err), err) != 0)
        return -1;
    /* secure_delete zeroed the row's pages; the WAL still holds them. The
     * deletion is committed whatever the checkpoint does (SQLite checkpoints
     * again at close). */
    util_error late;
    int checkpointed = store_checkpoint(st, &late);
    (void)checkpointed;
    return 0;
}

/* Bindings are RESTRICT on update: the functions bound to `from` are
 * unbound, the key renamed, and the functions bound again, all in one
 * transaction. The requests that made the key follow its name. */
static int key_rename(store *st, const char *from, const char *to, const char *key_sealed, const char *user,
                      util_error *err)
{
    char functions[16][64];
    size_t n = 0;
    sqlite3_stmt *s = NULL;
    int64_t one;
    int row, taken = store_query_int(st, err, "look up key name", &one, "SELECT 1 FROM keys WHERE name = ?1",
                                     "t", to);
    if (taken < 0)
        return -1;
    if (taken > 0)
        return util_error_set(err, UTIL_ERR_KEY_NAME_TAKEN, "key_name: \"%s\" exists", to);
    int found =
        store_query_int(st, err, "look up key", &one, "SELECT 1 FROM keys WHERE name = ?1", "t", from);
    if (found <= 0)
        return found < 0 ? -1 : util_error_set(err, UTIL_ERR_NOT_FOUND, "key \"%s\"", from);
    if (store_prepare_bound(st, err, &s, "SELECT function FROM bindings WHERE key_name = ?1", "t", from) != 0)
        return -1;
    while ((row = store_step_row(st, s, "list bindings", err)) == 1 && n < 16)
        STORE_COL_FIXED(s, 0, functions[n++]);
    store_finalize(st, s);
    if (row < 0)
        return -1;
    char detail[128];
    snprintf(detail, sizeof detail, "key %s renamed to %s", from, to);
    if (store_run(st, err, "unbind key", "UPDATE bindings SET key_name = NULL WHERE key_name = ?1", "t",
                  from) < 0 ||
        store_run(st, err, "rename key",
                  "UPDATE keys SET name = ?2, key_pem = coalesce(?3, key_pem) WHERE name = ?1", "ttt", from,
                  to, key_sealed) < 0 ||
        store_run(st, err, "rename requests' key", "UPDATE requests SET key_name = ?2 WHERE key_name = ?1",
                  "tt", from, to) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (store_run(st, err, "bind renamed key", "UPDATE bindings SET key_name = ?1 WHERE function = ?2",
                      "tt", to, functions[i]) < 0)
            return -1;
    return store_audit_insert(st, user, "key.rename", detail, err);
}

int store_key_rename(store *st, const char *from, const char *to, const char *key_sealed, const char *user,
                     util_error *err)
{
    if (store_check_name("key name", from, KEY_NAME_SIZE, false, err) != 0 ||
        store_check_name("key name", to, KEY_NAME_SIZE, false, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    return store_tx_end(st, key_rename(st, from, to, key_sealed, user, err), err);
}

/* ---- registration ---- */

struct pending_key {
    char name[32];
    char replaces[32];
    int64_t request_id;
};

/* Acquired keys, oldest first, read completely before anything changes. */
static int pending_keys(store *st, struct pending_key **out, size_t *n, util_error *err)
{
    sqlite3_stmt *s = NULL;
    struct pending_key *a = NULL;
    size_t count = 0, cap = 0;
    int rc = -1, row;
    if (store_prepare(st,
                      "SELECT name, replaces, coalesce(request_id, 0) FROM keys WHERE state = 'acquired'"
                      " ORDER BY created_at, rowid",
                      &s, err) != 0)
        return -1;
    while ((row = store_step_row(st, s, "list acquired keys", err)) == 1) {
        if (store_grow((void **)&a, &cap, count, sizeof *a) != 0) {
            store_oom(err);
            goto out;
        }
        STORE_COL_FIXED(s, 0, a[count].name);
        STORE_COL_FIXED(s, 1, a[count].replaces);
        a[count].request_id = sqlite3_column_int64(s, 2);
        count++;
    }
    if (row < 0)
        goto out;
    *out = a;
    *n = count;
    a = NULL;
    rc = 0;
out:
    store_finalize(st, s);
    free(a);
    return rc;
}

/* Only a registered key is replaced: keys are processed oldest first, so
 * every older acquired key is registered by now, and a newer acquired one
 * (which would lose its request) is never deleted. */
static int replace_key(store *st, const char *name, const char *old, bool *replaced, util_error *err)
{
    int64_t one;
    *replaced = false;
    if (!old[0] || strcmp(old, name) == 0)
        return 0;
    int found = store_query_int(st, err, "look up replaced key", &one,
                                "SELECT 1 FROM keys WHERE name = ?1 AND state = 'registered'", "t", old);
    if (found <= 0)
        return found;
    if (store_run(st, err, "move bindings", "UPDATE bindings SET key_name = ?1 WHERE key_name = ?2", "tt",
                  name, old) < 0 ||
        store_run(st, err, "delete replaced key", "DELETE FROM keys WHERE name = ?1", "t", old) < 0)
        return -1;
    *replaced = true;
    return 0;
}

static int register_one(store *st, const struct pending_key *p, const char *user, store_registration *reg,
                        util_error *err)
{
    char detail[160];
    int64_t now = store_now(st);
    bool replaced;
    memset(reg, 0, sizeof *reg);
    if (store_run(st, err, "register key",
                  "UPDATE keys SET state = 'registered', registered_at = ?2 WHERE name = ?1", "ti", p->name,
                  now) < 0 ||
        replace_key(st, p->name, p->replaces, &replaced, err) != 0)
        return -1;
    if (p->request_id && store_run(st, err, "mark request registered",
                                   "UPDATE requests SET state = 'registered', updated_at = ?2,"
                                   " key_pem = NULL, signer_key_pem = NULL WHERE id = ?1",
                                   "ii", p->request_id, now) < 0)
        return -1;
    snprintf(reg->name, sizeof reg->name, "%s", p->name);
    snprintf(reg->replaced, sizeof reg->replaced, "%s", replaced ? p->replaces : "");
    reg->request_id = p->request_id;
    snprintf(detail, sizeof detail, "key %s registered (request %" PRId64 ")%s%s", p->name, p->request_id,
             replaced ? ", replaced key " : "", replaced ? p->replaces : "");
    return store_audit_insert(st, user, "key.register", detail, err);
}

int store_register_all(store *st, const char *user, store_registration **out, size_t *n, util_error *err)
{
    struct pending_key *pending = NULL;
    store_registration *regs = NULL;
    size_t count = 0;
    int rc = -1;
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (pending_keys(st, &pending, &count, err) != 0)
        goto out;
    if (count && !(regs = calloc(count, sizeof *regs))) {
        store_oom(err);
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        if (register_one(st, &pending[i], user, &regs[i], err) != 0)
            goto out;
    rc = 0;
out:
    free(pending);
    rc = store_tx_end(st, rc, err);
    bool replaced = false;
    for (size_t i = 0; rc == 0 && i < count; i++)
        replaced |= regs[i].replaced[0] != '\0';
    /* a replaced key was deleted: no page of it stays in the WAL */
    util_error late; /* the change is committed; SQLite checkpoints again at close */
    int checkpointed = rc == 0 && replaced ? store_checkpoint(st, &late) : 0;
    (void)checkpointed;
    if (rc == 0) {
        *out = regs;
        *n = count;
    } else {
        free(regs);
    }
    return rc;
}

/* ---- bindings ---- */

static int bind_function(store *st, const char *function, const char *key_name, const char *user,
                         util_error *err)
{
    char detail[128];
    int64_t one;
    bool unbind = key_name[0] == '\0';
    if (!unbind) {
        int found = store_query_int(st, err, "look up key", &one, "SELECT 1 FROM keys WHERE name = ?1", "t",
                                    key_name);
        if (found <= 0)
            return found < 0 ? -1 : util_error_set(err, UTIL_ERR_NOT_FOUND, "key %s", key_name);
    }
    if (store_run(st, err, "write binding",
                  "INSERT INTO bindings (function, key_name) VALUES (?1, ?2)"
                  " ON CONFLICT (function) DO UPDATE SET key_name = excluded.key_name",
                  "tt", function, unbind ? NULL : key_name) < 0)
        return -1;
    if (unbind)
        snprintf(detail, sizeof detail, "function %s unbound", function);
    else
        snprintf(detail, sizeof detail, "function %s bound to key %s", function, key_name);
    return store_audit_insert(st, user, "binding.set", detail, err);
}

int store_binding_set(store *st, const char *function, const char *key_name, const char *user,
                      util_error *err)
{
    if (!key_name)
        key_name = "";
    if (store_check_name("function", function, FUNCTION_SIZE, false, err) != 0 ||
        store_check_name("key name", key_name, KEY_NAME_SIZE, true, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    return store_tx_end(st, bind_function(st, function, key_name, user, err), err);
}

int store_binding_list(store *st, store_binding **out, size_t *n, util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_binding *a = NULL;
    size_t count = 0, cap = 0;
    int rc = -1, row;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare(st, "SELECT function, coalesce(key_name, '') FROM bindings ORDER BY function", &s,
                      err) != 0)
        goto out;
    while ((row = store_step_row(st, s, "list bindings", err)) == 1) {
        if (store_grow((void **)&a, &cap, count, sizeof *a) != 0) {
            store_oom(err);
            goto out;
        }
        STORE_COL_FIXED(s, 0, a[count].function);
        STORE_COL_FIXED(s, 1, a[count].key_name);
        count++;
    }
    rc = row;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0) {
        *out = a;
        *n = count;
    } else {
        free(a);
    }
    return rc;
}
