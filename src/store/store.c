/*
 * scepd's store (see store.h and docs/internals/store.md): opening, schema
 * migrations, transactions and the helpers the other store files share;
 * named documents, CA certificates, the audit log and the consistency
 * check. Requests, keys and bindings are in store_keys.c, users and
 * sessions in store_users.c, the schema in store_schema.c.
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

/* ---- helpers shared by the store's files ---- */

int64_t store_now(store *st)
{
    return st->clock ? st->clock(st->clock_arg) : (int64_t)time(NULL);
}

int store_fail(store *st, util_error *err, const char *what)
{
    return util_error_set(err, UTIL_ERR_STORE, "%s: %s", what,
                          st && st->db ? sqlite3_errmsg(st->db) : "database not open");
}

int store_bind_fail(util_error *err, const char *what)
{
    return util_error_set(err, UTIL_ERR_STORE, "%s: cannot bind the parameters (out of memory)", what);
}

int store_oom(util_error *err)
{
    return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
}

int store_check_name(const char *what, const char *value, size_t size, bool allow_empty, util_error *err)
{
    if (!value)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s is missing", what);
    if (!allow_empty && value[0] == '\0')
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s is empty", what);
    if (strnlen(value, size) >= size)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s is longer than %zu characters", what,
                              size - 1);
    return 0;
}

int store_exec(store *st, const char *sql, const char *what, util_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    util_error_set(err, UTIL_ERR_STORE, "%s: %s", what, msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return -1;
}

int store_tx_begin(store *st, bool write, util_error *err)
{
    if (!st || !st->db)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the store is not open");
    pthread_mutex_lock(&st->lock);
    if (store_exec(st, write ? "BEGIN IMMEDIATE" : "BEGIN", "begin transaction", err) != 0) {
        pthread_mutex_unlock(&st->lock);
        return -1;
    }
    return 0;
}

int store_tx_end(store *st, int rc, util_error *err)
{
    if (rc == 0 && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = store_fail(st, err, "commit");
    /* A failed COMMIT (SQLITE_BUSY, disk full) leaves the transaction open. */
    if (rc != 0 && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int store_prepare(store *st, const char *sql, sqlite3_stmt **out, util_error *err)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK)
        return store_fail(st, err, "prepare statement");
    return 0;
}

static int prepare_bound_v(store *st, util_error *err, sqlite3_stmt **out, const char *sql, const char *types,
                           va_list ap)
{
    sqlite3_stmt *s = NULL;
    int b = SQLITE_OK;
    if (store_prepare(st, sql, &s, err) != 0)
        return -1;
    for (int i = 0; types[i]; i++) {
        if (types[i] == 't')
            b |= store_bind_str(s, i + 1, va_arg(ap, const char *));
        else
            b |= sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
    }
    if (b != SQLITE_OK) {
        sqlite3_finalize(s);
        return store_bind_fail(err, "statement");
    }
    *out = s;
    return 0;
}

int store_prepare_bound(store *st, util_error *err, sqlite3_stmt **out, const char *sql, const char *types,
                        ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = prepare_bound_v(st, err, out, sql, types, ap);
    va_end(ap);
    return rc;
}

int store_run(store *st, util_error *err, const char *what, const char *sql, const char *types, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = prepare_bound_v(st, err, &s, sql, types, ap);
    va_end(ap);
    if (rc == 0 && store_step_done(st, s, what, err) == 0)
        rc = sqlite3_changes(st->db);
    else
        rc = -1;
    sqlite3_finalize(s);
    return rc;
}

int store_query_int(store *st, util_error *err, const char *what, int64_t *value, const char *sql,
                    const char *types, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = prepare_bound_v(st, err, &s, sql, types, ap);
    va_end(ap);
    if (rc == 0)
        rc = store_step_row(st, s, what, err);
    if (rc == 1)
        *value = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc;
}

int store_query_text(store *st, util_error *err, const char *what, char *dst, size_t size, const char *sql,
                     const char *types, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = prepare_bound_v(st, err, &s, sql, types, ap);
    va_end(ap);
    if (rc == 0)
        rc = store_step_row(st, s, what, err);
    if (rc == 1 && sqlite3_column_type(s, 0) == SQLITE_NULL)
        rc = 0;
    if (rc == 1)
        store_col_fixed(s, 0, dst, size);
    sqlite3_finalize(s);
    return rc;
}

int store_step_done(store *st, sqlite3_stmt *s, const char *what, util_error *err)
{
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_fail(st, err, what);
    return 0;
}

int store_step_row(store *st, sqlite3_stmt *s, const char *what, util_error *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return store_fail(st, err, what);
}

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

int store_bind_str(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

int store_bind_fixed(sqlite3_stmt *s, int i, const char *v, size_t size)
{
    return sqlite3_bind_text(s, i, v, (int)strnlen(v, size), SQLITE_STATIC);
}

int store_bind_blob(sqlite3_stmt *s, int i, const uint8_t *v, size_t len)
{
    if (!v || len == 0)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_blob64(s, i, v, len, SQLITE_STATIC);
}

int store_bind_json(sqlite3_stmt *s, int i, const json_t *v)
{
    if (!v)
        return sqlite3_bind_null(s, i);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return SQLITE_NOMEM;
    int rc = sqlite3_bind_text(s, i, text, -1, SQLITE_TRANSIENT);
    free(text);
    return rc;
}

void store_col_fixed(sqlite3_stmt *s, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

int store_col_dup(sqlite3_stmt *s, int col, char **out)
{
    *out = NULL;
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return 0;
    const unsigned char *t = sqlite3_column_text(s, col);
    if (!t)
        return -1;
    *out = strdup((const char *)t);
    return *out ? 0 : -1;
}

int store_col_blob(sqlite3_stmt *s, int col, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    const void *p = sqlite3_column_blob(s, col);
    int n = sqlite3_column_bytes(s, col);
    if (!p || n <= 0)
        return 0;
    if (!(*out = malloc((size_t)n)))
        return -1;
    memcpy(*out, p, (size_t)n);
    *len = (size_t)n;
    return 0;
}

int store_col_json(sqlite3_stmt *s, int col, json_t **out)
{
    *out = NULL;
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return 0;
    const char *t = (const char *)sqlite3_column_text(s, col);
    *out = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
    return *out ? 0 : -1;
}

int store_grow(void **array, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = reallocarray(*array, ncap, elem);
    if (!p)
        return -1;
    *array = p;
    *cap = ncap;
    return 0;
}

void store_free_secret(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* ---- opening ---- */

/* The directory holds private keys: 0700. A looser one we own is tightened;
 * one owned by someone else is left alone (we could not chmod it). */
static int prepare_dir(const char *dir, util_error *err)
{
    struct stat sb;
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return util_error_set(err, UTIL_ERR_STORE, "create directory %s: %s", dir, strerror(errno));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return util_error_set(err, UTIL_ERR_STORE, "open directory %s: %s", dir, strerror(errno));
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = util_error_set(err, UTIL_ERR_STORE, "stat %s: %s", dir, strerror(errno));
    else if ((sb.st_mode & 077) && sb.st_uid == geteuid() && fchmod(fd, 0700) != 0)
        rc = util_error_set(err, UTIL_ERR_STORE, "chmod 0700 %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* Creates path 0600 (or tightens it when we own it) before SQLite opens
 * it; without create a missing file is fine. */
static int prepare_file(const char *path, bool create, util_error *err)
{
    struct stat sb;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
    if (fd < 0 && !create && errno == ENOENT)
        return 0;
    if (fd < 0)
        return util_error_set(err, UTIL_ERR_STORE, "open %s: %s", path, strerror(errno));
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = util_error_set(err, UTIL_ERR_STORE, "stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        rc = util_error_set(err, UTIL_ERR_STORE, "%s is not a regular file", path);
    else if ((sb.st_mode & 077) && sb.st_uid == geteuid() && fchmod(fd, 0600) != 0)
        rc = util_error_set(err, UTIL_ERR_STORE, "chmod 0600 %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int prepare_files(const char *path, util_error *err)
{
    static const char *const suffixes[] = {"-wal", "-shm"};
    char side[4096];
    if (prepare_file(path, true, err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if ((size_t)snprintf(side, sizeof side, "%s%s", path, suffixes[i]) >= sizeof side)
            return util_error_set(err, UTIL_ERR_STORE, "path too long: %s", path);
        if (prepare_file(side, false, err) != 0)
            return -1;
    }
    return 0;
}

/* Runs a PRAGMA and checks its answer, so that a build of SQLite that
 * ignores it (no WAL, no foreign keys) is noticed. */
static int pragma_expect(store *st, const char *sql, const char *expect, util_error *err)
{
    char got[32] = "";
    int rc = store_query_text(st, err, sql, got, sizeof got, sql, "");
    if (rc < 0)
        return -1;
    if (expect && strcmp(got, expect) != 0)
        return util_error_set(err, UTIL_ERR_STORE, "%s: answered \"%s\", expected \"%s\"", sql, got, expect);
    return 0;
}

static int configure(store *st, util_error *err)
{
    if (pragma_expect(st, "PRAGMA busy_timeout = 5000", "5000", err) != 0 ||
        pragma_expect(st, "PRAGMA journal_mode = WAL", "wal", err) != 0 ||
        store_exec(st, "PRAGMA synchronous = FULL", "PRAGMA synchronous", err) != 0 ||
        store_exec(st, "PRAGMA foreign_keys = ON", "PRAGMA foreign_keys", err) != 0 ||
        pragma_expect(st, "PRAGMA foreign_keys", "1", err) != 0 ||
        /* Deleted keys' pages are overwritten, not just unlinked. */
        store_exec(st, "PRAGMA secure_delete = ON", "PRAGMA secure_delete", err) != 0)
        return -1;
    return 0;
}

/* One step of the migration: 1 when a migration was applied, 0 when the
 * schema is current, -1 on error. Re-reads the version inside the
 * transaction in case another process migrated meanwhile. */
static int migrate_step(store *st, util_error *err)
{
    int64_t version = 0;
    int rc = -1, applied = 0;
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_exec(st, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
                   "create table meta", err) != 0 ||
        store_query_int(st, err, "read schema_version", &version,
                        "SELECT value FROM meta WHERE key = 'schema_version'", "") < 0)
        goto out;
    if (version > STORE_SCHEMA_VERSION || version < 0) {
        util_error_set(err, UTIL_ERR_STORE,
                       "%s has schema version %lld, this scepd knows versions up to %d: it was written "
                       "by a newer scepd; install that version again or restore a backup",
                       sqlite3_db_filename(st->db, "main"), (long long)version, STORE_SCHEMA_VERSION);
        goto out;
    }
    st->schema_version = (int)version;
    if (version < STORE_SCHEMA_VERSION) {
        if (store_exec(st, store_migrations[version], "migrate schema", err) != 0 ||
            store_run(st, err, "write schema_version",
                      "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)"
                      " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      "i", version + 1) < 0)
            goto out;
        applied = 1;
    }
    rc = 0;
out:
    rc = store_tx_end(st, rc, err);
    if (rc == 0 && applied)
        st->schema_version = (int)version + 1;
    return rc == 0 ? applied : -1;
}

static int migrate(store *st, util_error *err)
{
    int rc;
    while ((rc = migrate_step(st, err)) == 1)
        ;
    return rc;
}

static int open_db(store *st, const char *path, util_error *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        util_error_set(err, UTIL_ERR_STORE, "open %s: %s", path,
                       st->db ? sqlite3_errmsg(st->db) : "out of memory");
        return -1;
    }
    sqlite3_extended_result_codes(st->db, 1);
    if (configure(st, err) != 0 || migrate(st, err) != 0)
        return -1;
    return 0;
}

int store_open(const char *dir, store **out, util_error *err)
{
    store *st = NULL;
    char *path = NULL;
    int rc = -1;
    if (!dir || !*dir || !out)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_open: no directory");
    /* The -wal and -shm files are created later by SQLite; the umask keeps
     * them private even where SQLite does not copy the database's mode.
     * umask is per process: a thread creating files meanwhile only gets a
     * stricter mode. */
    mode_t old_umask = umask(077);
    if (!(st = calloc(1, sizeof *st))) {
        store_oom(err);
        goto out;
    }
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        st = NULL;
        store_oom(err);
        goto out;
    }
    if (asprintf(&path, "%s/%s", dir, STORE_DB_NAME) < 0) {
        path = NULL;
        store_oom(err);
        goto out;
    }
    if (prepare_dir(dir, err) != 0 || prepare_files(path, err) != 0 || open_db(st, path, err) != 0)
        goto out;
    *out = st;
    st = NULL;
    rc = 0;
out:
    umask(old_umask);
    store_close(st);
    free(path);
    return rc;
}

void store_close(store *st)
{
    if (!st)
        return;
    sqlite3_close_v2(st->db);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

int store_schema_version(store *st)
{
    return st ? st->schema_version : -1;
}

void store_set_clock(store *st, store_clock_fn fn, void *arg)
{
    pthread_mutex_lock(&st->lock);
    st->clock = fn;
    st->clock_arg = arg;
    pthread_mutex_unlock(&st->lock);
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
    sqlite3_finalize(s);
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
        store_bind_fail(err, "write document");
        goto out;
    }
    rc = store_step_done(st, s, "write document", err);
out:
    sqlite3_finalize(s);
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
    if (store_prepare(st, "INSERT INTO ca_certs (position, pem, role, fetched_at) VALUES (?1, ?2, ?3, ?4)",
                      &s, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(s);
        if ((sqlite3_bind_int64(s, 1, (int64_t)i) | store_bind_str(s, 2, pems[i]) |
             store_bind_str(s, 3, roles && roles[i] ? roles[i] : "") | sqlite3_bind_int64(s, 4, now)) !=
            SQLITE_OK) {
            store_bind_fail(err, "write CA certificate");
            goto out;
        }
        if (store_step_done(st, s, "write CA certificate", err) != 0)
            goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(s);
    return rc;
}

int store_ca_certs_put(store *st, const char *const *pems, const char *const *roles, size_t n,
                       util_error *err)
{
    int rc = -1;
    for (size_t i = 0; i < n; i++)
        if (!pems || !pems[i] || !*pems[i])
            return util_error_set(err, UTIL_ERR_INTERNAL, "CA certificate %zu has no PEM", i);
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_exec(st, "DELETE FROM ca_certs", "clear CA certificates", err) != 0 ||
        insert_ca_certs(st, pems, roles, n, err) != 0)
        goto out;
    rc = 0;
out:
    return store_tx_end(st, rc, err);
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
    sqlite3_finalize(s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = array;
    else
        json_decref(array);
    return rc;
}

int store_ca_certs_get(store *st, json_t **out, util_error *err)
{
    return query_json(st, "SELECT pem, role, fetched_at FROM ca_certs ORDER BY position LIMIT ?1", -1,
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
