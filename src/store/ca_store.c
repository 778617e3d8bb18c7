/* scepca's SQLite state (see ca_store.h), over the shared layer in db.c. */
#include "store/ca_store.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"

struct store_ca {
    store *st;
    store_ca_group *group; /* borrowed; NULL: each add commits alone */
};

/* One request (and certificate) waiting in a group for its commit. */
typedef struct group_entry {
    struct group_entry *next;
    store_ca_request *req;
    const store_ca_cert *cert;
    int rc;
    bool done;
    util_error err;
} group_entry;

/* Group commit (see store_ca_group_new): the first writer to arrive while
 * no commit is running leads; it takes every entry queued so far, writes
 * them in one transaction on its own connection and commits once (one WAL
 * fsync for the batch), then wakes their writers. Entries that arrive
 * meanwhile wait for the next leader, one of their own writers. Nobody
 * waits on a timer: a writer alone commits at once. */
struct store_ca_group {
    pthread_mutex_t lock;
    pthread_cond_t done;
    group_entry *head, **tail;
    bool leading;
};

/* Migration i takes scepca's schema from version i to i + 1. Version 1 is
 * the schema scepca created before it had migrations (IF NOT EXISTS, so it
 * applies cleanly to such a file); schema_version stays for older scepca
 * binaries, which read it. */
static const char *const ca_migrations[STORE_CA_SCHEMA_VERSION] = {
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);"
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS material (role TEXT PRIMARY KEY, cert_pem TEXT NOT NULL,"
    " key_pem TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS certs (serial TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " transaction_id TEXT NOT NULL, issued_at INTEGER NOT NULL, not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0,"
    " cert_pem TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " transaction_id TEXT NOT NULL, subject TEXT NOT NULL, status INTEGER NOT NULL,"
    " renewal INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " serial TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', csr BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS requests_tid ON requests (transaction_id);"
    "CREATE TABLE IF NOT EXISTS otps (hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, used_at INTEGER NOT NULL DEFAULT 0);",
    /* 2: who sent each request, so that a resend can be told from a new
     * request with the same transactionID */
    "ALTER TABLE requests ADD COLUMN message_type INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE requests ADD COLUMN signer TEXT NOT NULL DEFAULT '';"
    "UPDATE schema_version SET version = 2;",
};

static const store_spec ca_spec = {
    .file = STORE_CA_DB_NAME,
    .migrations = ca_migrations,
    .version = STORE_CA_SCHEMA_VERSION,
    .program = "scepca",
    .code = UTIL_ERR_CA_STORE,
    .label = "scepca database: ",
    .fast_busy_retry = true,
};

/* Without create, the directory and the database must exist already: the
 * remedy is `scepca init`, not an empty CA. */
static int check_exists(const char *dir, util_error *err)
{
    struct stat sb;
    char path[4096];
    if (stat(dir, &sb) != 0)
        return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s does not exist (run 'scepca init --dir %s')", dir,
                              dir);
    if (!S_ISDIR(sb.st_mode))
        return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s is not a directory", dir);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, STORE_CA_DB_NAME) >= sizeof path)
        return util_error_set(err, UTIL_ERR_USAGE, "directory name too long");
    if (access(path, R_OK | W_OK) != 0)
        return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s: %s (run 'scepca init' first)", path,
                              strerror(errno));
    return 0;
}

int store_ca_open(const char *dir, bool create, store_ca **out, util_error *err)
{
    if (!create && check_exists(dir, err) != 0)
        return -1;
    store_ca *s = calloc(1, sizeof *s);
    if (!s)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (store_open_spec(dir, &ca_spec, &s->st, err) != 0) {
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_ca_close(store_ca *s)
{
    if (!s)
        return;
    store_close(s->st);
    free(s);
}

int store_ca_setting_set(store_ca *s, const char *name, const char *value, util_error *err)
{
    return store_run(s->st, err, "write setting",
                     "INSERT OR REPLACE INTO settings (name, value) VALUES (?1, ?2)", "tt", name, value) < 0
               ? -1
               : 0;
}

int store_ca_setting_get(store_ca *s, const char *name, char **value, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st, "SELECT value FROM settings WHERE name = ?1", "t", name) != 0)
        return -1;
    int rc = store_step_row(s->st, st, "read setting", err);
    if (rc == 1)
        rc = store_col_dup(st, 0, value) == 0 && *value ? 0 : store_oom(err);
    else if (rc == 0)
        rc = 1;
    store_finalize(s->st, st);
    return rc;
}

/* Inside a transaction: each role's certificate and key, replacing the old. */
static int write_material(store_ca *s, const store_ca_material *m, size_t count, util_error *err)
{
    for (size_t i = 0; i < count; i++)
        if (store_run(s->st, err, "write material",
                      "INSERT OR REPLACE INTO material (role, cert_pem, key_pem) VALUES (?1, ?2, ?3)", "ttt",
                      m[i].role, m[i].cert_pem, m[i].key_pem) < 0)
            return -1;
    return 0;
}

int store_ca_material_put(store_ca *s, const store_ca_material *m, size_t count, util_error *err)
{
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    int rc = write_material(s, m, count, err);
    return store_tx_end(s->st, rc, err);
}

int store_ca_material_replace(store_ca *s, const store_ca_material *m, size_t count, const char *drop,
                              util_error *err)
{
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    int rc = write_material(s, m, count, err);
    if (rc == 0 &&
        store_run(s->st, err, "delete material", "DELETE FROM material WHERE role = ?1", "t", drop) < 0)
        rc = -1;
    return store_tx_end(s->st, rc, err);
}

int store_ca_material_get(store_ca *s, const char *role, char **cert_pem, char **key_pem, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st, "SELECT cert_pem, key_pem FROM material WHERE role = ?1", "t",
                            role) != 0)
        return -1;
    int rc = store_step_row(s->st, st, "read material", err);
    if (rc == 1) {
        char *c = NULL, *k = NULL;
        if (store_col_dup(st, 0, &c) != 0 || store_col_dup(st, 1, &k) != 0 || !c || !k) {
            free(c);
            store_ca_secret_free(k);
            rc = store_oom(err);
        } else {
            *cert_pem = c;
            *key_pem = k;
            rc = 0;
        }
    } else if (rc == 0) {
        rc = 1;
    }
    store_finalize(s->st, st);
    return rc;
}

void store_ca_secret_free(char *s)
{
    store_free_secret(s);
}

/* ---- certificates ---- */

#define CERT_COLUMNS "serial, subject, transaction_id, issued_at, not_before, not_after, revoked_at"

static void read_cert_row(sqlite3_stmt *st, store_ca_cert *c)
{
    memset(c, 0, sizeof *c);
    STORE_COL_FIXED(st, 0, c->serial);
    STORE_COL_FIXED(st, 1, c->subject);
    STORE_COL_FIXED(st, 2, c->transaction_id);
    c->issued_at = sqlite3_column_int64(st, 3);
    c->not_before = sqlite3_column_int64(st, 4);
    c->not_after = sqlite3_column_int64(st, 5);
    c->revoked_at = sqlite3_column_int64(st, 6);
}

static int insert_cert(store_ca *s, const store_ca_cert *c, util_error *err)
{
    return store_run(s->st, err, "write certificate",
                     "INSERT INTO certs (" CERT_COLUMNS ", cert_pem) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
                     "tttiiit", c->serial, c->subject, c->transaction_id, c->issued_at, c->not_before,
                     c->not_after, c->cert_pem ? c->cert_pem : "") < 0
               ? -1
               : 0;
}

int store_ca_cert_get(store_ca *s, const char *serial, store_ca_cert *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st, "SELECT " CERT_COLUMNS ", cert_pem FROM certs WHERE serial = ?1",
                            "t", serial) != 0)
        return -1;
    int rc = store_step_row(s->st, st, "read certificate", err);
    if (rc == 1) {
        read_cert_row(st, out);
        rc = store_col_dup(st, 7, &out->cert_pem) == 0 && out->cert_pem ? 0 : store_oom(err);
    } else if (rc == 0) {
        rc = 1;
    }
    store_finalize(s->st, st);
    return rc;
}

void store_ca_cert_clear(store_ca_cert *c)
{
    if (!c)
        return;
    free(c->cert_pem);
    c->cert_pem = NULL;
}

int store_ca_cert_revoke(store_ca *s, const char *serial, int64_t when, util_error *err)
{
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    int64_t revoked = 0;
    int rc = store_query_int(s->st, err, "read certificate", &revoked,
                             "SELECT revoked_at FROM certs WHERE serial = ?1", "t", serial);
    if (rc == 0)
        rc = 1; /* unknown serial */
    else if (rc == 1 && revoked != 0)
        rc = 2;
    else if (rc == 1)
        rc = store_run(s->st, err, "revoke certificate",
                       "UPDATE certs SET revoked_at = ?1 WHERE serial = ?2 AND revoked_at = 0", "it",
                       when > 0 ? when : (int64_t)1, serial) < 0
                 ? -1
                 : 0;
    /* 1 and 2 change nothing: commit the empty transaction */
    int end = store_tx_end(s->st, rc < 0 ? -1 : 0, err);
    return end != 0 ? -1 : rc;
}

int store_ca_cert_each(store_ca *s, bool revoked_only, size_t max, store_ca_cert_cb cb, void *arg,
                       util_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql = revoked_only ? "SELECT " CERT_COLUMNS
                                     " FROM certs WHERE revoked_at != 0 ORDER BY issued_at LIMIT ?1"
                                   : "SELECT " CERT_COLUMNS " FROM certs ORDER BY issued_at LIMIT ?1";
    if (store_prepare_bound(s->st, err, &st, sql, "i", (int64_t)max) != 0)
        return -1;
    int rc;
    while ((rc = store_step_row(s->st, st, "list certificates", err)) == 1) {
        store_ca_cert c;
        read_cert_row(st, &c);
        if (cb(&c, arg) != 0)
            break;
    }
    store_finalize(s->st, st);
    return rc < 0 ? -1 : 0;
}

/* ---- requests ---- */

const char *store_ca_request_status_name(store_ca_request_status st)
{
    switch (st) {
    case STORE_CA_PENDING: return "pending";
    case STORE_CA_ISSUED: return "issued";
    case STORE_CA_REJECTED: return "rejected";
    }
    return "unknown";
}

#define REQUEST_COLUMNS                                                                                      \
    "id, transaction_id, subject, status, renewal, created_at, updated_at, serial, reason, message_type, "   \
    "signer"
#define REQUEST_CSR_COLUMN 11

static void read_request_row(sqlite3_stmt *st, store_ca_request *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    STORE_COL_FIXED(st, 1, r->transaction_id);
    STORE_COL_FIXED(st, 2, r->subject);
    r->status = sqlite3_column_int(st, 3);
    r->renewal = sqlite3_column_int(st, 4) != 0;
    r->created_at = sqlite3_column_int64(st, 5);
    r->updated_at = sqlite3_column_int64(st, 6);
    STORE_COL_FIXED(st, 7, r->serial);
    STORE_COL_FIXED(st, 8, r->reason);
    r->message_type = sqlite3_column_int(st, 9);
    STORE_COL_FIXED(st, 10, r->signer);
}

static int insert_request(store_ca *s, store_ca_request *r, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st,
                            "INSERT INTO requests (transaction_id, subject, status, renewal, created_at,"
                            " updated_at, serial, reason, csr, message_type, signer)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                            "ttiiiitt", r->transaction_id, r->subject, (int64_t)r->status,
                            (int64_t)(r->renewal ? 1 : 0), r->created_at, r->updated_at, r->serial,
                            r->reason) != 0)
        return -1;
    /* csr is NOT NULL: an empty one is a zero-length blob */
    int b = r->csr_der && r->csr_len ? store_bind_blob(st, 9, r->csr_der, r->csr_len)
                                     : sqlite3_bind_zeroblob(st, 9, 0);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int(st, 10, r->message_type);
    if (b == SQLITE_OK)
        b = sqlite3_bind_text(st, 11, r->signer, -1, SQLITE_TRANSIENT);
    int rc = b != SQLITE_OK ? store_bind_fail(s->st, err, "write request")
                            : store_step_done(s->st, st, "write request", err);
    store_finalize(s->st, st);
    if (rc == 0)
        r->id = sqlite3_last_insert_rowid(s->st->db);
    return rc;
}

store_ca_group *store_ca_group_new(void)
{
    store_ca_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        free(g);
        return NULL;
    }
    if (pthread_cond_init(&g->done, NULL) != 0) {
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    g->tail = &g->head;
    return g;
}

void store_ca_group_free(store_ca_group *g)
{
    if (!g)
        return;
    pthread_cond_destroy(&g->done);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void store_ca_set_group(store_ca *s, store_ca_group *g)
{
    s->group = g;
}

static int insert_pair(store_ca *s, store_ca_request *req, const store_ca_cert *cert, util_error *err)
{
    return (cert && insert_cert(s, cert, err) != 0) || insert_request(s, req, err) != 0 ? -1 : 0;
}

/* Writes a batch in one transaction; a savepoint per entry keeps one
 * entry's failure (a duplicate serial) from undoing the others. */
static void commit_batch(store_ca *s, group_entry *batch)
{
    util_error err = {0};
    int rc = store_tx_begin(s->st, true, &err);
    if (rc != 0) {
        for (group_entry *e = batch; e; e = e->next) {
            e->rc = -1;
            e->err = err;
        }
        return;
    }
    for (group_entry *e = batch; e && rc == 0; e = e->next) {
        if ((rc = store_exec_one(s->st, "SAVEPOINT one", "savepoint", &err)) != 0)
            break;
        e->rc = insert_pair(s, e->req, e->cert, &e->err);
        if (e->rc != 0)
            rc = store_exec_one(s->st, "ROLLBACK TO one", "rollback to savepoint", &err);
        if (rc == 0)
            rc = store_exec_one(s->st, "RELEASE one", "release savepoint", &err);
    }
    /* a savepoint that cannot be handled fails the whole batch */
    if (store_tx_end(s->st, rc, &err) != 0)
        for (group_entry *e = batch; e; e = e->next)
            if (e->rc == 0 || rc != 0) {
                e->rc = -1;
                e->err = err;
            }
}

static int group_add(store_ca *s, store_ca_request *req, const store_ca_cert *cert, util_error *err)
{
    store_ca_group *g = s->group;
    group_entry me = {.req = req, .cert = cert};
    pthread_mutex_lock(&g->lock);
    *g->tail = &me;
    g->tail = &me.next;
    while (!me.done && g->leading)
        pthread_cond_wait(&g->done, &g->lock);
    if (!me.done) {
        group_entry *batch = g->head;
        g->head = NULL;
        g->tail = &g->head;
        g->leading = true;
        pthread_mutex_unlock(&g->lock);
        commit_batch(s, batch);
        pthread_mutex_lock(&g->lock);
        for (group_entry *e = batch, *next; e; e = next) {
            next = e->next; /* e belongs to a waiting writer */
            e->done = true;
        }
        g->leading = false;
        pthread_cond_broadcast(&g->done);
    }
    pthread_mutex_unlock(&g->lock);
    if (me.rc != 0 && err)
        *err = me.err;
    return me.rc;
}

int store_ca_request_add(store_ca *s, store_ca_request *req, const store_ca_cert *cert, util_error *err)
{
    if (s->group)
        return group_add(s, req, cert, err);
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    return store_tx_end(s->st, insert_pair(s, req, cert, err), err);
}

/* 0 with *out filled (csr_der owned), 1 when there is no row, -1 on error. */
static int request_query(store_ca *s, const char *what, sqlite3_stmt *st, store_ca_request *out,
                         util_error *err)
{
    int rc = store_step_row(s->st, st, what, err);
    if (rc == 1) {
        read_request_row(st, out);
        const void *blob = sqlite3_column_blob(st, REQUEST_CSR_COLUMN);
        int n = sqlite3_column_bytes(st, REQUEST_CSR_COLUMN);
        out->csr_der = malloc(n > 0 ? (size_t)n : 1);
        if (!out->csr_der) {
            rc = store_oom(err);
        } else {
            if (n > 0)
                memcpy(out->csr_der, blob, (size_t)n);
            out->csr_len = (size_t)n;
            rc = 0;
        }
    } else if (rc == 0) {
        rc = 1;
    }
    store_finalize(s->st, st);
    return rc;
}

int store_ca_request_get(store_ca *s, int64_t id, store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st, "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE id = ?1",
                            "i", id) != 0)
        return -1;
    return request_query(s, "read request", st, out, err);
}

int store_ca_request_find(store_ca *s, const char *transaction_id, store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st,
                            "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE transaction_id = ?1"
                            " ORDER BY id DESC LIMIT 1",
                            "t", transaction_id) != 0)
        return -1;
    return request_query(s, "find request", st, out, err);
}

int store_ca_request_find_sender(store_ca *s, const char *transaction_id, int message_type,
                                 const char *signer, store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare_bound(s->st, err, &st,
                            "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE transaction_id = ?1"
                            " AND message_type = ?2 AND signer = ?3 ORDER BY id DESC LIMIT 1",
                            "tit", transaction_id, (int64_t)message_type, signer) != 0)
        return -1;
    return request_query(s, "find request by sender", st, out, err);
}

int store_ca_request_find_subject(store_ca *s, const char *transaction_id, const char *subject,
                                  store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    /* an issued request first, then a pending one, then the newest */
    if (store_prepare_bound(s->st, err, &st,
                            "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE transaction_id = ?1"
                            " AND subject = ?2 ORDER BY CASE status WHEN ?3 THEN 0 WHEN ?4 THEN 1 ELSE 2 END,"
                            " id DESC LIMIT 1",
                            "ttii", transaction_id, subject, (int64_t)STORE_CA_ISSUED,
                            (int64_t)STORE_CA_PENDING) != 0)
        return -1;
    return request_query(s, "find request by subject", st, out, err);
}

void store_ca_request_clear(store_ca_request *r)
{
    if (!r)
        return;
    free(r->csr_der);
    r->csr_der = NULL;
    r->csr_len = 0;
}

/* Moves a pending request to a final state; 1 when it was not pending. */
static int finish_request(store_ca *s, int64_t id, int status, const char *serial, const char *reason,
                          int64_t now, util_error *err)
{
    int changed = store_run(s->st, err, "update request",
                            "UPDATE requests SET status = ?1, serial = ?2, reason = ?3, updated_at = ?4"
                            " WHERE id = ?5 AND status = 0",
                            "ittii", (int64_t)status, serial ? serial : "", reason ? reason : "", now, id);
    if (changed < 0)
        return -1;
    return changed == 1 ? 0 : 1;
}

int store_ca_request_issue(store_ca *s, int64_t id, const store_ca_cert *cert, int64_t now, util_error *err)
{
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    int rc = finish_request(s, id, STORE_CA_ISSUED, cert->serial, NULL, now, err);
    if (rc == 0 && insert_cert(s, cert, err) != 0)
        rc = -1;
    int end = store_tx_end(s->st, rc == 0 ? 0 : -1, err);
    return rc != 0 ? rc : end;
}

int store_ca_request_reject(store_ca *s, int64_t id, const char *reason, int64_t now, util_error *err)
{
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    int rc = finish_request(s, id, STORE_CA_REJECTED, NULL, reason, now, err);
    int end = store_tx_end(s->st, rc == 0 ? 0 : -1, err);
    return rc != 0 ? rc : end;
}

int store_ca_request_each(store_ca *s, int status, size_t max, store_ca_request_cb cb, void *arg,
                          util_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql = status >= 0
                          ? "SELECT " REQUEST_COLUMNS " FROM requests WHERE status = ?1 ORDER BY id LIMIT ?2"
                          : "SELECT " REQUEST_COLUMNS " FROM requests WHERE ?1 < 0 ORDER BY id LIMIT ?2";
    if (store_prepare_bound(s->st, err, &st, sql, "ii", (int64_t)status, (int64_t)max) != 0)
        return -1;
    int rc;
    while ((rc = store_step_row(s->st, st, "list requests", err)) == 1) {
        store_ca_request r;
        read_request_row(st, &r);
        if (cb(&r, arg) != 0)
            break;
    }
    store_finalize(s->st, st);
    return rc < 0 ? -1 : 0;
}

/* ---- one-time passwords ---- */

int store_ca_otp_add(store_ca *s, const char *hash, int64_t now, int64_t expires_at, int max_outstanding,
                     store_ca_otp_result *result, util_error *err)
{
    int64_t count = 0;
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    int rc = store_query_int(s->st, err, "count passwords", &count,
                             "SELECT count(*) FROM otps WHERE used_at = 0 AND expires_at > ?1", "i", now) == 1
                 ? 0
                 : -1;
    store_ca_otp_result outcome = STORE_CA_OTP_FULL;
    if (rc == 0 && count < max_outstanding) {
        outcome = STORE_CA_OTP_OK;
        if (store_run(s->st, err, "write password",
                      "INSERT INTO otps (hash, created_at, expires_at) VALUES (?1, ?2, ?3)", "tii", hash, now,
                      expires_at) < 0)
            rc = -1;
    }
    if (store_tx_end(s->st, rc, err) != 0)
        return -1;
    *result = outcome;
    return 0;
}

int store_ca_otp_consume(store_ca *s, const char *hash, int64_t now, store_ca_otp_result *result,
                         util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (store_tx_begin(s->st, true, err) != 0)
        return -1;
    store_ca_otp_result outcome = STORE_CA_OTP_UNKNOWN;
    int rc = store_prepare_bound(s->st, err, &st, "SELECT expires_at, used_at FROM otps WHERE hash = ?1", "t",
                                 hash);
    if (rc == 0) {
        int row = store_step_row(s->st, st, "read password", err);
        if (row < 0)
            rc = -1;
        else if (row == 0)
            outcome = STORE_CA_OTP_UNKNOWN;
        else if (sqlite3_column_int64(st, 1) != 0)
            outcome = STORE_CA_OTP_USED;
        else if (sqlite3_column_int64(st, 0) <= now)
            outcome = STORE_CA_OTP_EXPIRED;
        else
            outcome = STORE_CA_OTP_OK;
        store_finalize(s->st, st);
    }
    if (rc == 0 && outcome == STORE_CA_OTP_OK &&
        store_run(s->st, err, "use password", "UPDATE otps SET used_at = ?1 WHERE hash = ?2", "it",
                  now > 0 ? now : (int64_t)1, hash) < 0)
        rc = -1;
    if (store_tx_end(s->st, rc, err) != 0)
        return -1;
    *result = outcome;
    return 0;
}
