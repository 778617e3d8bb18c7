/*
 * The one SQLite layer of src/store, for scepd's store (store.c) and
 * scepca's (ca_store.c): the safe open path (private directory and file,
 * O_NOFOLLOW, owner check, pragmas read back), migrations in transactions,
 * transactions under the connection's lock, prepared statements (kept in
 * a per-connection cache) with checked binds, and column readers. It is the
 * only code that calls sqlite3_prepare* and, but for the tests, the only
 * one that finalizes statements.
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

/* ---- helpers ---- */

int64_t store_now(store *st)
{
    return st->clock ? st->clock(st->clock_arg) : (int64_t)time(NULL);
}

int store_fail(store *st, util_error *err, const char *what)
{
    return util_error_set(err, st ? st->code : UTIL_ERR_STORE, "%s%s: %s", st ? st->label : "", what,
                          st && st->db ? sqlite3_errmsg(st->db) : "database not open");
}

int store_bind_fail(store *st, util_error *err, const char *what)
{
    return util_error_set(err, st ? st->code : UTIL_ERR_STORE,
                          "%s%s: cannot bind the parameters (out of memory)", st ? st->label : "", what);
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
    util_error_set(err, st->code, "%s%s: %s", st->label, what, msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return -1;
}

/* ---- the statement cache ----
 *
 * Slots are looked up and changed only under cache_lock; a statement is
 * prepared, reset and finalized outside it (SQLite's own mutex serialises
 * those), so a slow prepare never holds up other threads' look-ups. A slot
 * marked busy belongs to one caller until store_finalize. */

/* The slot holding sql's statement, or -1. The pointer is tried first (most
 * SQL is a string literal) but always confirmed by the text: a buffer reused
 * for other SQL must not get the old statement. */
static int cache_find(store *st, const char *sql)
{
    for (int i = 0; i < STORE_STMT_CACHE; i++) {
        store_cached_stmt *c = &st->cache[i];
        if (c->stmt && c->ptr == sql && strcmp(c->sql, sql) == 0)
            return i;
    }
    for (int i = 0; i < STORE_STMT_CACHE; i++) {
        store_cached_stmt *c = &st->cache[i];
        if (c->stmt && strcmp(c->sql, sql) == 0) {
            c->ptr = sql;
            return i;
        }
    }
    return -1;
}

/* A free slot, else the least recently used idle one, whose statement is
 * moved to *evicted for the caller to finalize; -1 when every slot is busy. */
static int cache_slot(store *st, sqlite3_stmt **evicted, char **evicted_sql)
{
    int lru = -1;
    for (int i = 0; i < STORE_STMT_CACHE; i++) {
        store_cached_stmt *c = &st->cache[i];
        if (!c->stmt)
            return i;
        if (!c->busy && (lru < 0 || c->used < st->cache[lru].used))
            lru = i;
    }
    if (lru >= 0) {
        *evicted = st->cache[lru].stmt;
        *evicted_sql = st->cache[lru].sql;
        st->cache[lru] = (store_cached_stmt){0};
    }
    return lru;
}

/* Keeps s, freshly prepared for sql and handed out, in the cache if there
 * is room; otherwise it stays uncached and store_finalize finalizes it. */
static void cache_add(store *st, const char *sql, sqlite3_stmt *s)
{
    sqlite3_stmt *evicted = NULL;
    char *evicted_sql = NULL;
    char *copy = strdup(sql);
    if (!copy)
        return; /* runs uncached */
    pthread_mutex_lock(&st->cache_lock);
    /* another thread may have cached the same text meanwhile */
    int i = cache_find(st, sql) < 0 ? cache_slot(st, &evicted, &evicted_sql) : -1;
    if (i >= 0) {
        st->cache[i] =
            (store_cached_stmt){.stmt = s, .sql = copy, .ptr = sql, .used = ++st->cache_tick, .busy = true};
        copy = NULL;
    }
    pthread_mutex_unlock(&st->cache_lock);
    free(copy);
    sqlite3_finalize(evicted);
    free(evicted_sql);
}

int store_prepare(store *st, const char *sql, sqlite3_stmt **out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->cache_lock);
    int i = cache_find(st, sql);
    if (i >= 0 && !st->cache[i].busy) {
        st->cache[i].busy = true;
        st->cache[i].used = ++st->cache_tick;
        *out = st->cache[i].stmt;
        pthread_mutex_unlock(&st->cache_lock);
        return 0;
    }
    pthread_mutex_unlock(&st->cache_lock);
    if (i >= 0) {
        /* in use by another caller: this one gets a statement of its own */
        if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
            return store_fail(st, err, "prepare statement");
        *out = s;
        return 0;
    }
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        return store_fail(st, err, "prepare statement");
    if (s) /* NULL: no statement in sql (only a comment); nothing to keep */
        cache_add(st, sql, s);
    *out = s;
    return 0;
}

void store_finalize(store *st, sqlite3_stmt *s)
{
    if (!s)
        return;
    int i;
    pthread_mutex_lock(&st->cache_lock);
    for (i = 0; i < STORE_STMT_CACHE && st->cache[i].stmt != s; i++)
        ;
    pthread_mutex_unlock(&st->cache_lock);
    if (i == STORE_STMT_CACHE) {
        sqlite3_finalize(s);
        return;
    }
    /* Still ours (busy): nobody else touches the slot until it is idle.
     * The reset ends the statement's read transaction, which would
     * otherwise block checkpoints. */
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    pthread_mutex_lock(&st->cache_lock);
    st->cache[i].busy = false;
    pthread_mutex_unlock(&st->cache_lock);
}

/* Finalizes every idle cached statement; busy ones stay with their callers. */
static void cache_clear(store *st)
{
    pthread_mutex_lock(&st->cache_lock);
    for (int i = 0; i < STORE_STMT_CACHE; i++) {
        store_cached_stmt *c = &st->cache[i];
        if (c->stmt && !c->busy) {
            sqlite3_finalize(c->stmt);
            free(c->sql);
            *c = (store_cached_stmt){0};
        }
    }
    pthread_mutex_unlock(&st->cache_lock);
}

/* store_exec_one, for callers that may ignore the outcome (ROLLBACK). */
static int exec_one(store *st, const char *sql, const char *what, util_error *err)
{
    sqlite3_stmt *s = NULL;
    util_error ignored = {0};
    if (store_prepare(st, sql, &s, &ignored) != 0)
        return store_fail(st, err, what);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        rc = store_fail(st, err, what);
    else
        rc = 0;
    store_finalize(st, s);
    return rc;
}

int store_exec_one(store *st, const char *sql, const char *what, util_error *err)
{
    return exec_one(st, sql, what, err);
}

/* ---- transactions ---- */

int store_tx_begin(store *st, bool write, util_error *err)
{
    if (!st || !st->db)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the store is not open");
    pthread_mutex_lock(&st->lock);
    if (store_exec_one(st, write ? "BEGIN IMMEDIATE" : "BEGIN", "begin transaction", err) != 0) {
        pthread_mutex_unlock(&st->lock);
        return -1;
    }
    return 0;
}

int store_tx_end(store *st, int rc, util_error *err)
{
    if (rc == 0 && store_exec_one(st, "COMMIT", "commit", err) != 0)
        rc = -1;
    /* A failed COMMIT (SQLITE_BUSY, disk full) leaves the transaction open. */
    if (rc != 0 && !sqlite3_get_autocommit(st->db)) {
        util_error ignored = {0};
        exec_one(st, "ROLLBACK", "rollback", &ignored);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
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
        store_finalize(st, s);
        return store_bind_fail(st, err, "statement");
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
    store_finalize(st, s);
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
    store_finalize(st, s);
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
    store_finalize(st, s);
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
static int prepare_dir(const char *dir, util_err code, util_error *err)
{
    struct stat sb;
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return util_error_set(err, code, "create directory %s: %s", dir, strerror(errno));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return util_error_set(err, code, "open directory %s: %s", dir, strerror(errno));
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = util_error_set(err, code, "stat %s: %s", dir, strerror(errno));
    else if ((sb.st_mode & 077) && sb.st_uid == geteuid() && fchmod(fd, 0700) != 0)
        rc = util_error_set(err, code, "chmod 0700 %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* Creates path 0600 (or tightens it when we own it) before SQLite opens
 * it; without create a missing file is fine. A symbolic link or anything
 * but a regular file is refused.
 *
 * An existing file is looked at through an O_PATH descriptor: closing an
 * ordinary descriptor would drop the POSIX locks that another connection
 * of this process holds on the database (scepca opens several), and SQLite
 * would then see a corrupt file. Closing an O_PATH descriptor drops none. */
static int prepare_file(const char *path, bool create, util_err code, util_error *err)
{
    struct stat sb;
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (!create)
            return 0;
        /* nobody holds locks on a file that did not exist */
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (errno != EEXIST)
            return util_error_set(err, code, "create %s: %s", path, strerror(errno));
        fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC); /* created meanwhile */
    }
    if (fd < 0)
        return util_error_set(err, code, "open %s: %s", path, strerror(errno));
    int rc = 0;
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (fstat(fd, &sb) != 0)
        rc = util_error_set(err, code, "stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        rc = util_error_set(err, code, "%s is not a regular file", path);
    /* the descriptor's /proc link names this very file, whatever the path now holds */
    else if ((sb.st_mode & 077) && sb.st_uid == geteuid() && chmod(self, 0600) != 0)
        rc = util_error_set(err, code, "chmod 0600 %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int prepare_files(const char *path, util_err code, util_error *err)
{
    static const char *const suffixes[] = {"-wal", "-shm"};
    char side[4096];
    if (prepare_file(path, true, code, err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if ((size_t)snprintf(side, sizeof side, "%s%s", path, suffixes[i]) >= sizeof side)
            return util_error_set(err, code, "path too long: %s", path);
        if (prepare_file(side, false, code, err) != 0)
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
        return util_error_set(err, st->code, "%s%s: answered \"%s\", expected \"%s\"", st->label, sql, got,
                              expect);
    return 0;
}

/* SQLite's default busy handler sleeps up to 100 ms between tries; with
 * several connections in one server (scepca's workers) that sleep becomes
 * the latency. Retry every 0.2-1 ms instead, for at most about 5 s. */
static int busy_wait(void *arg, int count)
{
    (void)arg;
    if (count >= 5000)
        return 0;
    usleep(count < 20 ? 200 : 1000);
    return 1;
}

static int configure(store *st, const store_spec *spec, util_error *err)
{
    if (spec->fast_busy_retry) {
        if (sqlite3_busy_handler(st->db, busy_wait, NULL) != SQLITE_OK)
            return store_fail(st, err, "busy handler");
    } else if (pragma_expect(st, "PRAGMA busy_timeout = 5000", "5000", err) != 0) {
        return -1;
    }
    if (pragma_expect(st, "PRAGMA journal_mode = WAL", "wal", err) != 0 ||
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
static int migrate_step(store *st, const store_spec *spec, util_error *err)
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
    if (version > spec->version || version < 0) {
        util_error_set(err, st->code,
                       "%s has schema version %lld, this %s knows versions up to %d: it was written "
                       "by a newer %s; install that version again or restore a backup",
                       sqlite3_db_filename(st->db, "main"), (long long)version, spec->program, spec->version,
                       spec->program);
        goto out;
    }
    st->schema_version = (int)version;
    if (version < spec->version) {
        if (store_exec(st, spec->migrations[version], "migrate schema", err) != 0 ||
            (spec->migrate_code && spec->migrate_code(st, (int)version + 1, spec->migrate_arg, err) != 0) ||
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

int store_checkpoint(store *st, util_error *err)
{
    int log = 0, done = 0;
    pthread_mutex_lock(&st->lock);
    int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    pthread_mutex_unlock(&st->lock);
    if (rc != SQLITE_OK)
        return store_fail(st, err, "checkpoint the write-ahead log");
    return 0;
}

static int migrate(store *st, const store_spec *spec, util_error *err)
{
    int rc, applied = 0;
    while ((rc = migrate_step(st, spec, err)) == 1)
        applied++;
    /* a migration may have rewritten secrets: no old page stays in the WAL */
    if (rc == 0 && applied && store_checkpoint(st, err) != 0)
        return -1;
    return rc;
}

static int open_db(store *st, const store_spec *spec, const char *path, util_error *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        util_error_set(err, st->code, "%sopen %s: %s", st->label, path,
                       st->db ? sqlite3_errmsg(st->db) : "out of memory");
        return -1;
    }
    sqlite3_extended_result_codes(st->db, 1);
    if (configure(st, spec, err) != 0 || migrate(st, spec, err) != 0)
        return -1;
    return 0;
}

int store_open_spec(const char *dir, const store_spec *spec, store **out, util_error *err)
{
    store *st = NULL;
    char *path = NULL;
    int rc = -1;
    if (!dir || !*dir || !out || !spec)
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
    st->code = spec->code;
    st->label = spec->label ? spec->label : "";
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        st = NULL;
        store_oom(err);
        goto out;
    }
    if (pthread_mutex_init(&st->cache_lock, NULL) != 0) {
        pthread_mutex_destroy(&st->lock);
        free(st);
        st = NULL;
        store_oom(err);
        goto out;
    }
    if (asprintf(&path, "%s/%s", dir, spec->file) < 0) {
        path = NULL;
        store_oom(err);
        goto out;
    }
    if (prepare_dir(dir, spec->code, err) != 0 || prepare_files(path, spec->code, err) != 0 ||
        open_db(st, spec, path, err) != 0)
        goto out;
    /* the pragmas' and migrations' statements do not run again */
    cache_clear(st);
    *out = st;
    st = NULL;
    rc = 0;
out:
    umask(old_umask);
    store_close(st);
    free(path);
    return rc;
}

int store_close_checked(store *st)
{
    if (!st)
        return SQLITE_OK;
    cache_clear(st);
    /* Busy slots are statements a caller never gave back: leave them to
     * the caller and let the connection close when they are finalized. */
    for (int i = 0; i < STORE_STMT_CACHE; i++)
        free(st->cache[i].sql);
    int rc = sqlite3_close(st->db);
    if (rc == SQLITE_BUSY)
        sqlite3_close_v2(st->db);
    pthread_mutex_destroy(&st->cache_lock);
    pthread_mutex_destroy(&st->lock);
    free(st);
    return rc;
}

void store_close(store *st)
{
    (void)store_close_checked(st);
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
