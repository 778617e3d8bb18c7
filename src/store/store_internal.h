/*
 * Shared by the store's source files (db.c, the SQLite layer; store.c,
 * store_keys.c, store_users.c, store_schema.c; ca_store.c). Nothing outside
 * src/store includes it, except the store's unit tests.
 */
#ifndef SCEPD_STORE_INTERNAL_H
#define SCEPD_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "store/store.h"

/* Prepared statements kept for reuse (db.c). scepd's store runs about 50
 * distinct statements and scepca's about 25, plus the transaction and
 * savepoint statements; 64 holds a whole process's working set, so that
 * steady-state calls never compile SQL, while bounding what an unexpected
 * caller with many distinct texts can pin (each statement is a few KiB). */
#define STORE_STMT_CACHE 64

typedef struct store_cached_stmt {
    sqlite3_stmt *stmt; /* NULL: free slot */
    char *sql;          /* our copy of the text: the key */
    const char *ptr;    /* the caller's pointer last seen for it: a fast first test, never trusted alone */
    uint64_t used;      /* cache tick of the last hand-out: least recently used is evicted */
    bool busy;          /* handed out, not given back with store_finalize yet */
} store_cached_stmt;

struct store {
    sqlite3 *db;
    /* One transaction at a time on the shared connection: SQLite's own
     * mutex (FULLMUTEX) serialises single calls, not BEGIN ... COMMIT. */
    pthread_mutex_t lock;
    store_clock_fn clock;
    void *clock_arg;
    int schema_version;
    util_err code;     /* the catalogue code of every error: STORE or CA_STORE */
    const char *label; /* put before each error's detail ("" for scepd's store) */
    /* Its own mutex, never held while SQL runs: st->lock is held across
     * whole transactions, and reads outside them come from several threads. */
    pthread_mutex_t cache_lock;
    store_cached_stmt cache[STORE_STMT_CACHE];
    uint64_t cache_tick;
};

/* What differs between the databases that share this layer (db.c). */
typedef struct store_spec {
    const char *file;              /* the database's name inside the directory */
    const char *const *migrations; /* migrations[i]: schema version i to i + 1 */
    int version;                   /* how many there are: the current version */
    const char *program;           /* named when a newer one wrote the file */
    util_err code;                 /* see struct store */
    const char *label;             /* see struct store; NULL: "" */
    bool fast_busy_retry;          /* retry a busy database every 0.2-1 ms instead of
                                      busy_timeout's sleeps (many connections) */
    /* Optional: runs inside migration (to_version - 1)'s transaction, after
     * its SQL, for the steps SQL cannot do (sealing keys); arg is passed on. */
    int (*migrate_code)(store *st, int to_version, void *arg, util_error *err);
    void *migrate_arg;
} store_spec;

/* Creates the directory 0700 and the file 0600 when missing (O_NOFOLLOW;
 * looser modes of our own files are tightened, others' left alone), opens
 * it with SQLITE_OPEN_NOFOLLOW, sets WAL, synchronous=FULL, foreign keys
 * and secure_delete (answers read back) and applies missing migrations,
 * each in its own transaction. */
int store_open_spec(const char *dir, const store_spec *spec, store **out, util_error *err) MUST_CHECK;

/* PRAGMA wal_checkpoint(TRUNCATE): the WAL's pages go into the database
 * and the -wal file is emptied, so that no old page (a deleted key, a key
 * as it was before sealing) survives there. Outside any transaction. */
int store_checkpoint(store *st, util_error *err) MUST_CHECK;

/* store_close, returning sqlite3_close's result: SQLITE_OK, or SQLITE_BUSY
 * when a statement was not given back (the connection is then closed once
 * it is finalized). For tests. */
int store_close_checked(store *st);

/* Migration i takes the schema from version i to version i + 1. */
extern const char *const store_migrations[STORE_SCHEMA_VERSION];

int64_t store_now(store *st);

/* Each sets err and returns -1. */
int store_fail(store *st, util_error *err, const char *what);
int store_bind_fail(store *st, util_error *err, const char *what);
int store_oom(util_error *err);
/* Rejects NULL, "" (unless allow_empty) and values that do not fit in a
 * char[size] field (INVALID_FIELD). Safe on unterminated char arrays. */
int store_check_name(const char *what, const char *value, size_t size, bool allow_empty,
                     util_error *err) MUST_CHECK;

/* Takes the lock and starts a transaction (IMMEDIATE when write). */
int store_tx_begin(store *st, bool write, util_error *err) MUST_CHECK;
/* Commits when rc is 0, rolls back otherwise, releases the lock; returns
 * the outcome (a failed COMMIT turns 0 into -1). */
int store_tx_end(store *st, int rc, util_error *err);

/* Writes a document inside the caller's transaction. */
int store_doc_write(store *st, const char *name, const json_t *value, util_error *err) MUST_CHECK;
/* Runs sql, which may hold several statements (migrations, pragmas),
 * compiling it each time. */
int store_exec(store *st, const char *sql, const char *what, util_error *err) MUST_CHECK;
/* Runs one statement without parameters through the statement cache
 * (BEGIN, COMMIT, SAVEPOINT...); errors read like store_exec's. */
int store_exec_one(store *st, const char *sql, const char *what, util_error *err) MUST_CHECK;
/* Hands out a prepared statement for sql, from the cache when one for the
 * same text is idle (keyed by the text; the pointer is only a shortcut).
 * The caller owns it until store_finalize, which every statement from
 * store_prepare, store_prepare_bound and their users must go through. */
int store_prepare(store *st, const char *sql, sqlite3_stmt **out, util_error *err) MUST_CHECK;
/* Gives a statement back: a cached one is reset (ending its read
 * transaction, so checkpoints are not blocked) and its bindings cleared;
 * any other is finalized. NULL is fine. */
void store_finalize(store *st, sqlite3_stmt *s);
/* Prepares sql and binds its parameters ?1, ?2... from the arguments, one
 * per letter of types: 't' const char * (NULL binds NULL), 'i' int64_t. */
int store_prepare_bound(store *st, util_error *err, sqlite3_stmt **out, const char *sql, const char *types,
                        ...) MUST_CHECK;
/* Runs a statement prepared like store_prepare_bound; returns the number of
 * rows it changed, or -1. */
int store_run(store *st, util_error *err, const char *what, const char *sql, const char *types,
              ...) MUST_CHECK;
/* A query's first column of its first row: 1 with *value set when there is
 * a row, 0 when there is none, -1 on error. */
int store_query_int(store *st, util_error *err, const char *what, int64_t *value, const char *sql,
                    const char *types, ...) MUST_CHECK;
/* Like store_query_int for text, copied into dst[size]; a NULL value counts
 * as no row. */
int store_query_text(store *st, util_error *err, const char *what, char *dst, size_t size, const char *sql,
                     const char *types, ...) MUST_CHECK;
/* Steps to the end (SQLITE_DONE), else sets err. */
int store_step_done(store *st, sqlite3_stmt *s, const char *what, util_error *err) MUST_CHECK;
/* 1 on SQLITE_ROW, 0 on SQLITE_DONE, -1 with err set otherwise. */
int store_step_row(store *st, sqlite3_stmt *s, const char *what, util_error *err) MUST_CHECK;

/* Writes inside the caller's transaction. */
int store_audit_insert(store *st, const char *user, const char *action, const char *detail,
                       util_error *err) MUST_CHECK;

/* Binders return an SQLite result code; callers OR them and compare with
 * SQLITE_OK. The bound memory must outlive the statement (except JSON,
 * which is copied). */
int store_bind_str(sqlite3_stmt *s, int i, const char *v);
int store_bind_fixed(sqlite3_stmt *s, int i, const char *v, size_t size);
int store_bind_blob(sqlite3_stmt *s, int i, const uint8_t *v, size_t len);
int store_bind_json(sqlite3_stmt *s, int i, const json_t *v);
#define STORE_BIND_FIXED(s, i, field) store_bind_fixed((s), (i), (field), sizeof(field))

/* Column readers: NULL columns read as "" (fixed) or NULL (owned). The
 * owned ones return -1 when memory runs out or the JSON is invalid. */
void store_col_fixed(sqlite3_stmt *s, int col, char *dst, size_t size);
int store_col_dup(sqlite3_stmt *s, int col, char **out);
int store_col_blob(sqlite3_stmt *s, int col, uint8_t **out, size_t *len);
int store_col_json(sqlite3_stmt *s, int col, json_t **out);
#define STORE_COL_FIXED(s, col, field) store_col_fixed((s), (col), (field), sizeof(field))

/* Makes room for one more element in a growing array. */
int store_grow(void **array, size_t *cap, size_t n, size_t elem) MUST_CHECK;
/* OPENSSL_cleanse + free of a NUL-terminated secret; NULL is fine. */
void store_free_secret(char *s);

#endif
