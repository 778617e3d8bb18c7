/*
 * scepd's store (see store.h and docs/internals/store.md): opening through
 * the shared SQLite layer (db.c) with scepd's migrations; named documents,
 * CA certificates, the audit log and the consistency check. Requests, keys
 * and bindings are in store_keys.c, users and sessions in store_users.c,
 * the schema in store_schema.c.
 */
#include "store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int store_audit_insert(store *st, const char *user, const char *action, const char *detail, util_error *err)
{
    if (!action || !*action)
        return util_error_set(err, UTIL_ERR_INTERNAL, "audit line without an action");
    if (store_run(st, err, "write audit line",
                  "INSERT INTO audit (at, user, action, detail) VALUES (?1, ?2, ?3, ?4)", "ittt",
                  store_now(st), user ? user : "", action, detail ? detail : "") < 0)
        return -1;
    return 0;
}

/* ---- opening ---- */

/* One clear key found by the sealing migration. */
struct clear_key {
    char table[16], column[16], key_name[64];
    int64_t row;     /* requests: id; keys: unused (the name is the key) */
    int64_t request; /* the AAD's request id */
    char *pem;       /* secret */
};

static void clear_keys_free(struct clear_key *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_free_secret(a[i].pem);
    free(a);
}

/* Every key column that does not hold sealed text yet (the sealed form
 * starts with "scepd-sealed:"). */
static int clear_keys_find(store *st, struct clear_key **out, size_t *n, util_error *err)
{
    static const char *const sql =
        "SELECT 'keys', 'key_pem', name, 0, coalesce(request_id, 0), key_pem FROM keys"
        " WHERE key_pem NOT LIKE 'scepd-sealed:%'"
        " UNION ALL SELECT 'requests', 'key_pem', key_name, id, id, key_pem FROM requests"
        " WHERE key_pem IS NOT NULL AND key_pem NOT LIKE 'scepd-sealed:%'"
        " UNION ALL SELECT 'requests', 'signer_key_pem', key_name, id, id, signer_key_pem FROM requests"
        " WHERE signer_key_pem IS NOT NULL AND signer_key_pem NOT LIKE 'scepd-sealed:%'";
    sqlite3_stmt *s = NULL;
    struct clear_key *a = NULL;
    size_t count = 0, cap = 0;
    int row, rc = -1;
    if (store_prepare(st, sql, &s, err) != 0)
        return -1;
    while ((row = store_step_row(st, s, "find clear keys", err)) == 1) {
        if (store_grow((void **)&a, &cap, count, sizeof *a) != 0) {
            store_oom(err);
            goto out;
        }
        struct clear_key *k = &a[count];
        memset(k, 0, sizeof *k);
        STORE_COL_FIXED(s, 0, k->table);
        STORE_COL_FIXED(s, 1, k->column);
        STORE_COL_FIXED(s, 2, k->key_name);
        k->row = sqlite3_column_int64(s, 3);
        k->request = sqlite3_column_int64(s, 4);
        count++;
        if (store_col_dup(s, 5, &k->pem) != 0 || !k->pem) {
            store_oom(err);
            goto out;
        }
    }
    rc = row;
out:
    store_finalize(st, s);
    if (rc == 0) {
        *out = a;
        *n = count;
    } else {
        clear_keys_free(a, count);
    }
    return rc;
}

struct sealer {
    store_seal_fn fn;
    void *arg;
};

/* The code step of migration 2 -> 3: seals every clear key in place. */
static int seal_migration(store *st, int to_version, void *arg, util_error *err)
{
    const struct sealer *sealer = arg;
    struct clear_key *keys = NULL;
    size_t n = 0;
    int rc = -1;
    if (to_version != 3)
        return 0;
    if (clear_keys_find(st, &keys, &n, err) != 0)
        return -1;
    if (n && (!sealer || !sealer->fn)) {
        util_error_set(err, UTIL_ERR_STORE,
                       "the store holds %zu private key(s) in the clear; only scepd, started with a "
                       "key-encryption key, seals them",
                       n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct clear_key *k = &keys[i];
        store_secret_place place = {k->table, k->column, k->key_name, k->request};
        char *sealed = NULL;
        if (sealer->fn(sealer->arg, &place, k->pem, &sealed, err) != 0)
            goto out;
        int changed;
        if (!strcmp(k->table, "keys"))
            changed = store_run(st, err, "seal a key", "UPDATE keys SET key_pem = ?1 WHERE name = ?2", "tt",
                                sealed, k->key_name);
        else if (!strcmp(k->column, "key_pem"))
            changed = store_run(st, err, "seal a request's key",
                                "UPDATE requests SET key_pem = ?1 WHERE id = ?2", "ti", sealed, k->row);
        else
            changed =
                store_run(st, err, "seal a request's signer key",
                          "UPDATE requests SET signer_key_pem = ?1 WHERE id = ?2", "ti", sealed, k->row);
        free(sealed);
        if (changed != 1) {
            if (changed >= 0)
                util_error_set(err, UTIL_ERR_STORE, "sealing the key of %s %s: the row is gone", k->table,
                               k->key_name);
            goto out;
        }
    }
    rc = 0;
out:
    clear_keys_free(keys, n);
    return rc;
}

int store_open_sealing(const char *dir, store_seal_fn seal, void *seal_arg, store **out, util_error *err)
{
    struct sealer sealer = {seal, seal_arg};
    const store_spec spec = {
        .file = STORE_DB_NAME,
        .migrations = store_migrations,
        .version = STORE_SCHEMA_VERSION,
        .program = "scepd",
        .code = UTIL_ERR_STORE,
        .migrate_code = seal_migration,
        .migrate_arg = &sealer,
    };
    return store_open_spec(dir, &spec, out, err);
}

int store_open(const char *dir, store **out, util_error *err)
{
    return store_open_sealing(dir, NULL, NULL, out, err);
}

/* ---- consistency ---- */

/* Each query returns one text naming the first offending row. The schema's
 * constraints should make most of them impossible; they are checked anyway
 * because a database can be edited by hand or restored from elsewhere. */
static const struct invariant {
    const char *broken;
    const char *sql;
} invariants[] = {
    {"registered key without a certificate",
     "SELECT name FROM keys WHERE state = 'registered' AND coalesce(cert_pem, '') = '' LIMIT 1"},
    {"binding to a missing key",
     "SELECT 'function ' || b.function || ' -> key ' || b.key_name FROM bindings b"
     " WHERE b.key_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.name = b.key_name)"
     " LIMIT 1"},
    {"acquired request without its key",
     "SELECT 'request ' || r.id || ' (key ' || r.key_name || ')' FROM requests r"
     " WHERE r.state = 'acquired' AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.request_id = r.id)"
     " LIMIT 1"},
    {"foreign key violation",
     "SELECT \"table\" || ' row ' || coalesce(rowid, '?') || ' references missing ' || parent"
     " FROM pragma_foreign_key_check LIMIT 1"},
};

static int check_invariants(store *st, util_error *err)
{
    char found[256];
    int rc =
        store_query_text(st, err, "integrity_check", found, sizeof found, "PRAGMA integrity_check(1)", "");
    if (rc < 0)
        return -1;
    if (rc == 0 || strcmp(found, "ok") != 0)
        return util_error_set(err, UTIL_ERR_STORE, "integrity_check: %s", rc ? found : "no answer");
    for (size_t i = 0; i < sizeof invariants / sizeof invariants[0]; i++) {
        rc = store_query_text(st, err, invariants[i].broken, found, sizeof found, invariants[i].sql, "");
        if (rc < 0)
            return -1;
        if (rc == 1)
            return util_error_set(err, UTIL_ERR_STORE, "%s: %s", invariants[i].broken, found);
    }
    return 0;
}

int store_check_consistency(store *st, util_error *err)
{
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    return store_tx_end(st, check_invariants(st, err), err);
}

/* ---- named JSON documents ---- */

#define DOC_NAME_SIZE 64

int store_doc_get(store *st, const char *name, json_t **out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    json_t *doc = NULL;
    int rc = -1, row;
    if (store_check_name("document name", name, DOC_NAME_SIZE, false, err) != 0 ||
        store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare_bound(st, err, &s, "SELECT json FROM docs WHERE name = ?1", "t", name) != 0 ||
        (row = store_step_row(st, s, "read document", err)) < 0)
        goto out;
    if (row == 1 && (store_col_json(s, 0, &doc) != 0 || !doc)) {
        util_error_set(err, UTIL_ERR_STORE, "document %s: not valid JSON (or out of memory)", name);
        goto out;
    }
    rc = 0;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = doc;
    else
        json_decref(doc);
    return rc;
}

int store_doc_write(store *st, const char *name, const json_t *value, util_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = -1;
    if (store_check_name("document name", name, DOC_NAME_SIZE, false, err) != 0)
        return -1;
    if (!value)
        return util_error_set(err, UTIL_ERR_INTERNAL, "document %s: no value", name);
    if (store_prepare(
            st,
            "INSERT INTO docs (name, json, updated_at) VALUES (?1, ?2, ?3)"
            " ON CONFLICT (name) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at",
            &s, err) != 0)
        goto out;
    if ((store_bind_str(s, 1, name) | store_bind_json(s, 2, value) |
         sqlite3_bind_int64(s, 3, store_now(st))) != SQLITE_OK) {
        store_bind_fail(st, err, "write document");
        goto out;
    }
    rc = store_step_done(st, s, "write document", err);
out:
    store_finalize(st, s);
    return rc;
}

int store_docs_put(store *st, const char *const *names, const json_t *const *values, size_t n,
                   const char *user, const char *audit_action, const char *audit_detail, util_error *err)
{
    int rc = -1;
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (store_doc_write(st, names[i], values[i], err) != 0)
            goto out;
    if (audit_action && store_audit_insert(st, user, audit_action, audit_detail, err) != 0)
        goto out;
    rc = 0;
out:
    return store_tx_end(st, rc, err);
}

int store_doc_put(store *st, const char *name, const json_t *value, const char *user,
                  const char *audit_action, const char *audit_detail, util_error *err)
{
    return store_docs_put(st, &name, &value, 1, user, audit_action, audit_detail, err);
}

/* ---- CA/RA certificates ---- */

static int insert_ca_certs(store *st, const char *const *pems, const char *const *roles, size_t n,
                           util_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = -1;
    int64_t now = store_now(st);
    /* positions follow on from the rows kept, in the order given */
    if (store_prepare(st, "INSERT INTO ca_certs (pem, role, fetched_at) VALUES (?1, ?2, ?3)", &s, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(s);
        if ((store_bind_str(s, 1, pems[i]) | store_bind_str(s, 2, roles && roles[i] ? roles[i] : "") |
             sqlite3_bind_int64(s, 3, now)) != SQLITE_OK) {
            store_bind_fail(st, err, "write CA certificate");
            goto out;
        }
        if (store_step_done(st, s, "write CA certificate", err) != 0)
            goto out;
    }
    rc = 0;
out:
    store_finalize(st, s);
    return rc;
}

static int replace_ca_certs(store *st, const char *const *pems, const char *const *roles, size_t n, bool all,
                            util_error *err)
{
    int rc = -1;
    for (size_t i = 0; i < n; i++)
        if (!pems || !pems[i] || !*pems[i])
            return util_error_set(err, UTIL_ERR_INTERNAL, "CA certificate %zu has no PEM", i);
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_exec_one(st, all ? "DELETE FROM ca_certs" : "DELETE FROM ca_certs WHERE role <> 'next_ca'",
                       "clear CA certificates", err) != 0 ||
        insert_ca_certs(st, pems, roles, n, err) != 0)
        goto out;
    rc = 0;
out:
    return store_tx_end(st, rc, err);
}

int store_ca_certs_put(store *st, const char *const *pems, const char *const *roles, size_t n,
                       util_error *err)
{
    return replace_ca_certs(st, pems, roles, n, false, err);
}

int store_ca_certs_put_all(store *st, const char *const *pems, const char *const *roles, size_t n,
                           util_error *err)
{
    return replace_ca_certs(st, pems, roles, n, true, err);
}

/* Reads every row of s into an array of objects built by row(). */
static int rows_to_json(store *st, sqlite3_stmt *s, json_t *(*row)(sqlite3_stmt *), const char *what,
                        json_t *array, util_error *err)
{
    int more;
    while ((more = store_step_row(st, s, what, err)) == 1) {
        json_t *obj = row(s);
        if (!obj || json_array_append_new(array, obj) != 0)
            return store_oom(err);
    }
    return more;
}

static const char *col_str(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? (const char *)t : "";
}

static json_t *ca_cert_row(sqlite3_stmt *s)
{
    return json_pack("{s:s, s:s, s:I}", "pem", col_str(s, 0), "role", col_str(s, 1), "fetched_at",
                     (json_int_t)sqlite3_column_int64(s, 2));
}

static json_t *audit_row(sqlite3_stmt *s)
{
    return json_pack("{s:I, s:I, s:s, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(s, 0), "at",
                     (json_int_t)sqlite3_column_int64(s, 1), "user", col_str(s, 2), "action", col_str(s, 3),
                     "detail", col_str(s, 4));
}

/* Runs a read-only query in its own transaction into a new JSON array. */
static int query_json(store *st, const char *sql, int64_t limit, json_t *(*row)(sqlite3_stmt *),
                      const char *what, json_t **out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    json_t *array = NULL;
    int rc = -1;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    if (!(array = json_array())) {
        store_oom(err);
        goto out;
    }
    if (store_prepare_bound(st, err, &s, sql, "i", limit) != 0 ||
        rows_to_json(st, s, row, what, array, err) != 0)
        goto out;
    rc = 0;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = array;
    else
        json_decref(array);
    return rc;
}

int store_ca_certs_get(store *st, json_t **out, util_error *err)
{
    return query_json(
        st, "SELECT pem, role, fetched_at FROM ca_certs ORDER BY role = 'next_ca', position LIMIT ?1", -1,
        ca_cert_row, "read CA certificates", out, err);
}

/* ---- audit ---- */

int store_audit_add(store *st, const char *user, const char *action, const char *detail, util_error *err)
{
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    return store_tx_end(st, store_audit_insert(st, user, action, detail, err), err);
}

int store_audit_list(store *st, int limit, json_t **out, util_error *err)
{
    /* id, not at: the order of writing, whatever the clock did meanwhile. */
    return query_json(st, "SELECT id, at, user, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
                      limit > 0 ? limit : -1, audit_row, "read audit log", out, err);
}
