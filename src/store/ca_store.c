/* scepca's SQLite state (see ca_store.h). */
#include "store/ca_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store_ca {
    sqlite3 *db;
};

/* No store-specific catalogue code yet: INTERNAL, with the SQLite detail. */
#define STORE_ERR UTIL_ERR_CA_STORE

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS material (role TEXT PRIMARY KEY, cert_pem TEXT NOT NULL,"
    " key_pem TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS certs (serial TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " transaction_id TEXT NOT NULL, issued_at INTEGER NOT NULL, not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0,"
    " cert_pem TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " transaction_id TEXT NOT NULL, subject TEXT NOT NULL, status INTEGER NOT NULL,"
    " renewal INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " serial TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', csr BLOB NOT NULL,"
    " message_type INTEGER NOT NULL DEFAULT 0, signer TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS requests_tid ON requests (transaction_id)",
    "CREATE TABLE IF NOT EXISTS otps (hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, used_at INTEGER NOT NULL DEFAULT 0)",
};

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

static int db_fail(store_ca *s, util_error *err, const char *what)
{
    return util_error_set(err, STORE_ERR, "scepca database: %s: %s", what,
                          s && s->db ? sqlite3_errmsg(s->db) : "not open");
}

static int exec(store_ca *s, const char *sql, util_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        util_error_set(err, STORE_ERR, "scepca database: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int begin(store_ca *s, util_error *err)
{
    return exec(s, "BEGIN IMMEDIATE", err);
}

static int commit(store_ca *s, util_error *err)
{
    return exec(s, "COMMIT", err);
}

static void rollback(store_ca *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int prepare(store_ca *s, const char *sql, sqlite3_stmt **st, util_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(s, err, "prepare");
    return 0;
}

static int step_done(store_ca *s, sqlite3_stmt *st, util_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, err, "write");
    return 0;
}

static void copy_text(char *dst, size_t len, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, len, "%s", t ? (const char *)t : "");
}

static char *dup_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

static int make_dir(const char *dir, bool create, util_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s is not a directory", dir);
        if (create && (sb.st_mode & 077) && chmod(dir, 0700) != 0)
            return util_error_set(err, UTIL_ERR_OUTPUT_FILE, "chmod 0700 %s: %s", dir, strerror(errno));
        return 0;
    }
    if (!create)
        return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s does not exist (run 'scepca init --dir %s')", dir,
                              dir);
    if (mkdir(dir, 0700) != 0)
        return util_error_set(err, UTIL_ERR_OUTPUT_FILE, "mkdir %s: %s", dir, strerror(errno));
    return 0;
}

/* Creates the database file 0600 before SQLite opens it (and its -wal and
 * -shm files inherit the mode from it). */
static int make_db_file(const char *path, bool create, util_error *err)
{
    if (!create) {
        if (access(path, R_OK | W_OK) != 0)
            return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s: %s (run 'scepca init' first)", path,
                                  strerror(errno));
        return 0;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", path, strerror(errno));
    int rc = fchmod(fd, 0600);
    close(fd);
    if (rc != 0)
        return util_error_set(err, UTIL_ERR_OUTPUT_FILE, "chmod %s: %s", path, strerror(errno));
    return 0;
}

static int check_schema(store_ca *s, util_error *err)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (prepare(s, "SELECT version FROM schema_version", &st, err) != 0)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version == STORE_CA_SCHEMA_VERSION)
        return 0;
    if (version == 1) {
        /* version 2 records who sent each request, so a resend can be told
         * from a new request with the same transactionID */
        if (exec(s, "ALTER TABLE requests ADD COLUMN message_type INTEGER NOT NULL DEFAULT 0", err) != 0 ||
            exec(s, "ALTER TABLE requests ADD COLUMN signer TEXT NOT NULL DEFAULT ''", err) != 0 ||
            prepare(s, "UPDATE schema_version SET version = ?", &st, err) != 0)
            return -1;
        sqlite3_bind_int(st, 1, STORE_CA_SCHEMA_VERSION);
        return step_done(s, st, err);
    }
    if (version != -1)
        return util_error_set(err, STORE_ERR, "scepca database has schema version %d, this scepca knows %d",
                              version, STORE_CA_SCHEMA_VERSION);
    if (prepare(s, "INSERT INTO schema_version (version) VALUES (?)", &st, err) != 0)
        return -1;
    sqlite3_bind_int(st, 1, STORE_CA_SCHEMA_VERSION);
    return step_done(s, st, err);
}

static int init_schema(store_ca *s, util_error *err)
{
    if (begin(s, err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
        if (exec(s, schema[i], err) != 0)
            goto fail;
    if (check_schema(s, err) != 0)
        goto fail;
    return commit(s, err);
fail:
    rollback(s);
    return -1;
}

int store_ca_open(const char *dir, bool create, store_ca **out, util_error *err)
{
    int rc = -1;
    char path[PATH_MAX];
    store_ca *s = calloc(1, sizeof *s);
    if (!s)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (snprintf(path, sizeof path, "%s/%s", dir, STORE_CA_DB_NAME) >= (int)sizeof path) {
        util_error_set(err, UTIL_ERR_USAGE, "directory name too long");
        goto out;
    }
    if (make_dir(dir, create, err) != 0 || make_db_file(path, create, err) != 0)
        goto out;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        db_fail(s, err, path);
        goto out;
    }
    sqlite3_busy_handler(s->db, busy_wait, NULL);
    if (exec(s, "PRAGMA journal_mode=WAL", err) != 0 || exec(s, "PRAGMA synchronous=FULL", err) != 0 ||
        exec(s, "PRAGMA foreign_keys=ON", err) != 0 || init_schema(s, err) != 0)
        goto out;
    *out = s;
    s = NULL;
    rc = 0;
out:
    store_ca_close(s);
    return rc;
}

void store_ca_close(store_ca *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

int store_ca_setting_set(store_ca *s, const char *name, const char *value, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", &st, err))
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    return step_done(s, st, err);
}

int store_ca_setting_get(store_ca *s, const char *name, char **value, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT value FROM settings WHERE name = ?", &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int result = 1;
    if (rc == SQLITE_ROW) {
        *value = dup_text(st, 0);
        result = *value ? 0 : util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    } else if (rc != SQLITE_DONE) {
        result = db_fail(s, err, "read setting");
    }
    sqlite3_finalize(st);
    return result;
}

int store_ca_material_put(store_ca *s, const store_ca_material *m, size_t count, util_error *err)
{
    if (begin(s, err) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        sqlite3_stmt *st = NULL;
        if (prepare(s,
                    "INSERT OR REPLACE INTO material (role, cert_pem, key_pem)"
                    " VALUES (?, ?, ?)",
                    &st, err) != 0)
            goto fail;
        sqlite3_bind_text(st, 1, m[i].role, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, m[i].cert_pem, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, m[i].key_pem, -1, SQLITE_TRANSIENT);
        if (step_done(s, st, err) != 0)
            goto fail;
    }
    return commit(s, err);
fail:
    rollback(s);
    return -1;
}

int store_ca_material_get(store_ca *s, const char *role, char **cert_pem, char **key_pem, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT cert_pem, key_pem FROM material WHERE role = ?", &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, role, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int result = 1;
    if (rc == SQLITE_ROW) {
        char *c = dup_text(st, 0), *k = dup_text(st, 1);
        if (!c || !k) {
            free(c);
            store_ca_secret_free(k);
            result = util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        } else {
            *cert_pem = c;
            *key_pem = k;
            result = 0;
        }
    } else if (rc != SQLITE_DONE) {
        result = db_fail(s, err, "read material");
    }
    sqlite3_finalize(st);
    return result;
}

void store_ca_secret_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* ---- certificates ---- */

#define CERT_COLUMNS "serial, subject, transaction_id, issued_at, not_before, not_after, revoked_at"

static void read_cert_row(sqlite3_stmt *st, store_ca_cert *c)
{
    memset(c, 0, sizeof *c);
    copy_text(c->serial, sizeof c->serial, st, 0);
    copy_text(c->subject, sizeof c->subject, st, 1);
    copy_text(c->transaction_id, sizeof c->transaction_id, st, 2);
    c->issued_at = sqlite3_column_int64(st, 3);
    c->not_before = sqlite3_column_int64(st, 4);
    c->not_after = sqlite3_column_int64(st, 5);
    c->revoked_at = sqlite3_column_int64(st, 6);
}

static int insert_cert(store_ca *s, const store_ca_cert *c, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO certs (" CERT_COLUMNS ", cert_pem)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, c->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, c->subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, c->transaction_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, c->issued_at);
    sqlite3_bind_int64(st, 5, c->not_before);
    sqlite3_bind_int64(st, 6, c->not_after);
    sqlite3_bind_text(st, 7, c->cert_pem ? c->cert_pem : "", -1, SQLITE_TRANSIENT);
    return step_done(s, st, err);
}

int store_ca_cert_get(store_ca *s, const char *serial, store_ca_cert *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT " CERT_COLUMNS ", cert_pem FROM certs WHERE serial = ?", &st, err))
        return -1;
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), result = 1;
    if (rc == SQLITE_ROW) {
        read_cert_row(st, out);
        out->cert_pem = dup_text(st, 7);
        result = out->cert_pem ? 0 : util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    } else if (rc != SQLITE_DONE) {
        result = db_fail(s, err, "read certificate");
    }
    sqlite3_finalize(st);
    return result;
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
    sqlite3_stmt *st = NULL;
    store_ca_cert c;
    int found = store_ca_cert_get(s, serial, &c, err);
    if (found != 0)
        return found;
    int64_t revoked = c.revoked_at;
    store_ca_cert_clear(&c);
    if (revoked != 0)
        return 2;
    if (prepare(s, "UPDATE certs SET revoked_at = ? WHERE serial = ? AND revoked_at = 0", &st, err) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, when > 0 ? when : 1);
    sqlite3_bind_text(st, 2, serial, -1, SQLITE_TRANSIENT);
    return step_done(s, st, err);
}

int store_ca_cert_each(store_ca *s, bool revoked_only, size_t max, store_ca_cert_cb cb, void *arg,
                       util_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql = revoked_only ? "SELECT " CERT_COLUMNS
                                     " FROM certs WHERE revoked_at != 0 ORDER BY issued_at LIMIT ?"
                                   : "SELECT " CERT_COLUMNS " FROM certs ORDER BY issued_at LIMIT ?";
    if (prepare(s, sql, &st, err) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
    int rc, result = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_ca_cert c;
        read_cert_row(st, &c);
        if (cb(&c, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = db_fail(s, err, "list certificates");
    sqlite3_finalize(st);
    return result;
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
    copy_text(r->transaction_id, sizeof r->transaction_id, st, 1);
    copy_text(r->subject, sizeof r->subject, st, 2);
    r->status = sqlite3_column_int(st, 3);
    r->renewal = sqlite3_column_int(st, 4) != 0;
    r->created_at = sqlite3_column_int64(st, 5);
    r->updated_at = sqlite3_column_int64(st, 6);
    copy_text(r->serial, sizeof r->serial, st, 7);
    copy_text(r->reason, sizeof r->reason, st, 8);
    r->message_type = sqlite3_column_int(st, 9);
    copy_text(r->signer, sizeof r->signer, st, 10);
}

static int insert_request(store_ca *s, store_ca_request *r, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO requests (transaction_id, subject, status, renewal, created_at,"
                " updated_at, serial, reason, csr, message_type, signer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, r->transaction_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, r->status);
    sqlite3_bind_int(st, 4, r->renewal ? 1 : 0);
    sqlite3_bind_int64(st, 5, r->created_at);
    sqlite3_bind_int64(st, 6, r->updated_at);
    sqlite3_bind_text(st, 7, r->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, r->reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 9, r->csr_der ? (const void *)r->csr_der : "", (int)r->csr_len, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 10, r->message_type);
    sqlite3_bind_text(st, 11, r->signer, -1, SQLITE_TRANSIENT);
    if (step_done(s, st, err) != 0)
        return -1;
    r->id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_ca_request_add(store_ca *s, store_ca_request *req, const store_ca_cert *cert, util_error *err)
{
    if (begin(s, err) != 0)
        return -1;
    if (cert && insert_cert(s, cert, err) != 0)
        goto fail;
    if (insert_request(s, req, err) != 0)
        goto fail;
    return commit(s, err);
fail:
    rollback(s);
    return -1;
}

static int request_query(store_ca *s, const char *sql, sqlite3_stmt *st, store_ca_request *out,
                         util_error *err)
{
    int rc = sqlite3_step(st), result = 1;
    if (rc == SQLITE_ROW) {
        read_request_row(st, out);
        const void *blob = sqlite3_column_blob(st, REQUEST_CSR_COLUMN);
        int n = sqlite3_column_bytes(st, REQUEST_CSR_COLUMN);
        out->csr_der = malloc(n > 0 ? (size_t)n : 1);
        if (!out->csr_der) {
            result = util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        } else {
            if (n > 0)
                memcpy(out->csr_der, blob, (size_t)n);
            out->csr_len = (size_t)n;
            result = 0;
        }
    } else if (rc != SQLITE_DONE) {
        result = db_fail(s, err, sql);
    }
    sqlite3_finalize(st);
    return result;
}

int store_ca_request_get(store_ca *s, int64_t id, store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE id = ?", &st, err))
        return -1;
    sqlite3_bind_int64(st, 1, id);
    return request_query(s, "read request", st, out, err);
}

int store_ca_request_find(store_ca *s, const char *transaction_id, store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE transaction_id = ?"
                " ORDER BY id DESC LIMIT 1",
                &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, transaction_id, -1, SQLITE_TRANSIENT);
    return request_query(s, "find request", st, out, err);
}

int store_ca_request_find_sender(store_ca *s, const char *transaction_id, int message_type,
                                 const char *signer, store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE transaction_id = ?"
                " AND message_type = ? AND signer = ? ORDER BY id DESC LIMIT 1",
                &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, transaction_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, message_type);
    sqlite3_bind_text(st, 3, signer, -1, SQLITE_TRANSIENT);
    return request_query(s, "find request by sender", st, out, err);
}

int store_ca_request_find_subject(store_ca *s, const char *transaction_id, const char *subject,
                                  store_ca_request *out, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT " REQUEST_COLUMNS ", csr FROM requests WHERE transaction_id = ?"
                " AND subject = ? ORDER BY CASE status WHEN 1 THEN 0 WHEN 0 THEN 1 ELSE 2 END, id DESC"
                " LIMIT 1",
                &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, transaction_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, subject, -1, SQLITE_TRANSIENT);
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
    sqlite3_stmt *st = NULL;
    if (prepare(s,
                "UPDATE requests SET status = ?, serial = ?, reason = ?, updated_at = ?"
                " WHERE id = ? AND status = 0",
                &st, err) != 0)
        return -1;
    sqlite3_bind_int(st, 1, status);
    sqlite3_bind_text(st, 2, serial ? serial : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, reason ? reason : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, id);
    if (step_done(s, st, err) != 0)
        return -1;
    return sqlite3_changes(s->db) == 1 ? 0 : 1;
}

int store_ca_request_issue(store_ca *s, int64_t id, const store_ca_cert *cert, int64_t now, util_error *err)
{
    if (begin(s, err) != 0)
        return -1;
    int rc = finish_request(s, id, STORE_CA_ISSUED, cert->serial, NULL, now, err);
    if (rc != 0 || insert_cert(s, cert, err) != 0) {
        rollback(s);
        return rc == 1 ? 1 : -1;
    }
    return commit(s, err);
}

int store_ca_request_reject(store_ca *s, int64_t id, const char *reason, int64_t now, util_error *err)
{
    if (begin(s, err) != 0)
        return -1;
    int rc = finish_request(s, id, STORE_CA_REJECTED, NULL, reason, now, err);
    if (rc != 0) {
        rollback(s);
        return rc;
    }
    return commit(s, err);
}

int store_ca_request_each(store_ca *s, int status, size_t max, store_ca_request_cb cb, void *arg,
                          util_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql = status >= 0
                          ? "SELECT " REQUEST_COLUMNS " FROM requests WHERE status = ? ORDER BY id LIMIT ?"
                          : "SELECT " REQUEST_COLUMNS " FROM requests WHERE ? < 0 ORDER BY id LIMIT ?";
    if (prepare(s, sql, &st, err) != 0)
        return -1;
    sqlite3_bind_int(st, 1, status);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int rc, result = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_ca_request r;
        read_request_row(st, &r);
        if (cb(&r, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = db_fail(s, err, "list requests");
    sqlite3_finalize(st);
    return result;
}

/* ---- one-time passwords ---- */

static int count_outstanding(store_ca *s, int64_t now, int *count, util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT count(*) FROM otps WHERE used_at = 0 AND expires_at > ?", &st, err))
        return -1;
    sqlite3_bind_int64(st, 1, now);
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(s, err, "count passwords");
}

int store_ca_otp_add(store_ca *s, const char *hash, int64_t now, int64_t expires_at, int max_outstanding,
                     store_ca_otp_result *result, util_error *err)
{
    sqlite3_stmt *st = NULL;
    int count = 0;
    if (begin(s, err) != 0)
        return -1;
    if (count_outstanding(s, now, &count, err) != 0)
        goto fail;
    if (count >= max_outstanding) {
        *result = STORE_CA_OTP_FULL;
        rollback(s);
        return 0;
    }
    if (prepare(s, "INSERT INTO otps (hash, created_at, expires_at) VALUES (?, ?, ?)", &st, err))
        goto fail;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, expires_at);
    if (step_done(s, st, err) != 0)
        goto fail;
    *result = STORE_CA_OTP_OK;
    return commit(s, err);
fail:
    rollback(s);
    return -1;
}

int store_ca_otp_consume(store_ca *s, const char *hash, int64_t now, store_ca_otp_result *result,
                         util_error *err)
{
    sqlite3_stmt *st = NULL;
    if (begin(s, err) != 0)
        return -1;
    if (prepare(s, "SELECT expires_at, used_at FROM otps WHERE hash = ?", &st, err) != 0)
        goto fail;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int64_t expires = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int64_t used = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_fail(s, err, "read password");
        goto fail;
    }
    if (rc == SQLITE_DONE)
        *result = STORE_CA_OTP_UNKNOWN;
    else if (used != 0)
        *result = STORE_CA_OTP_USED;
    else if (expires <= now)
        *result = STORE_CA_OTP_EXPIRED;
    else
        *result = STORE_CA_OTP_OK;
    if (*result == STORE_CA_OTP_OK) {
        if (prepare(s, "UPDATE otps SET used_at = ? WHERE hash = ?", &st, err) != 0)
            goto fail;
        sqlite3_bind_int64(st, 1, now > 0 ? now : 1);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
        if (step_done(s, st, err) != 0)
            goto fail;
    }
    return commit(s, err);
fail:
    rollback(s);
    return -1;
}
