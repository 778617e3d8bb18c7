/*
 * src/store against real SQLite databases in temporary directories. Where a
 * test needs a state the API refuses to produce (a corrupt store, a newer
 * schema, a failure half-way through a transaction), it edits the same file
 * through a second, raw sqlite3 handle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tempdir.h"
#include "store/ca_store.h"
#include "store/store.h"
#include "store/store_internal.h" /* the statement cache's tests use db.c's own calls */

#define SECRET_KEY_PEM "-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MARKER-4711\n-----END PRIVATE KEY-----\n"
#define SECRET_SIGNER_PEM                                                                                    \
    "-----BEGIN PRIVATE KEY-----\nSECRET-SIGNER-MARKER-0815\n-----END PRIVATE KEY-----\n"
#define SECRET_CHALLENGE "SECRET-CHALLENGE-MARKER-42"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n"

typedef struct fixture {
    char base[64];
    char dir[96];
    char db_path[128];
    int64_t now;
    store *st;
} fixture;

static int64_t test_clock(void *arg)
{
    return ((fixture *)arg)->now;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    util_error err = {0};
    assert_non_null(f);
    char *tmp = h_tempdir();
    snprintf(f->base, sizeof f->base, "%s", tmp);
    free(tmp);
    snprintf(f->dir, sizeof f->dir, "%s/state", f->base);
    snprintf(f->db_path, sizeof f->db_path, "%s/%s", f->dir, STORE_DB_NAME);
    f->now = 1700000000;
    assert_int_equal(store_open(f->dir, &f->st, &err), 0);
    store_set_clock(f->st, test_clock, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    h_rmtree(f->base);
    free(f);
    return 0;
}

/* A second connection to the same file, as a person with sqlite3(1) would have. */
static sqlite3 *raw_open(const fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static int raw_int_row(void *arg, int n, char **values, char **names)
{
    (void)names;
    if (n > 0 && values[0])
        *(int64_t *)arg = strtoll(values[0], NULL, 10);
    return 0;
}

/* The first column of the first row; -1 when there is none. */
static int64_t raw_int(sqlite3 *db, const char *sql)
{
    int64_t v = -1;
    assert_int_equal(sqlite3_exec(db, sql, raw_int_row, &v, NULL), SQLITE_OK);
    return v;
}

static store_request new_request(const char *kind, const char *state, const char *key_name)
{
    store_request r = {0};
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    assert_int_equal(store_state_parse(state, &r.state), 0);
    snprintf(r.key_name, sizeof r.key_name, "%s", key_name);
    return r;
}

/* Borrowed strings: never pass to store_key_clear. */
static store_key new_key(const char *name, const char *replaces)
{
    store_key k = {0};
    snprintf(k.name, sizeof k.name, "%s", name);
    snprintf(k.replaces, sizeof k.replaces, "%s", replaces);
    k.key_sealed = (char *)SECRET_KEY_PEM;
    k.cert_pem = (char *)CERT_PEM;
    k.chain_pem = (char *)"";
    return k;
}

/* Inserts a request and acquires its key; returns the request id. */
static int64_t acquire_key(fixture *f, const char *name, const char *replaces)
{
    util_error err = {0};
    store_request r = new_request("manual", "pending", name);
    snprintf(r.replaces, sizeof r.replaces, "%s", replaces);
    assert_int_equal(store_request_insert(f->st, &r, "admin", &err), 0);
    store_key k = new_key(name, replaces);
    k.request_id = r.id;
    assert_int_equal(store_acquire(f->st, &r, &k, 10, &err), 0);
    return r.id;
}

static void assert_key_state(fixture *f, const char *name, const char *state)
{
    util_error err = {0};
    store_key k = {0};
    assert_int_equal(store_key_get(f->st, name, &k, &err), 0);
    assert_string_equal(store_state_name(k.state), state);
    store_key_clear(&k);
}

static void assert_request_state(fixture *f, int64_t id, const char *state)
{
    util_error err = {0};
    store_request r = {0};
    assert_int_equal(store_request_get(f->st, id, &r, &err), 0);
    assert_string_equal(store_state_name(r.state), state);
    store_request_clear(&r);
}

static const char *binding_of(const store_binding *b, size_t n, const char *function)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(b[i].function, function) == 0)
            return b[i].key_name;
    return NULL;
}

/* ---- opening ---- */

static void test_open_modes(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    struct stat sb;
    char side[160];
    json_t *v = json_pack("{s:i}", "a", 1);
    assert_int_equal(store_doc_put(f->st, "scep_settings", v, NULL, NULL, NULL, &err), 0);
    json_decref(v);

    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(stat(f->db_path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    /* WAL mode: the side files exist while the store is open. */
    snprintf(side, sizeof side, "%s-wal", f->db_path);
    assert_int_equal(stat(side, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    snprintf(side, sizeof side, "%s-shm", f->db_path);
    assert_int_equal(stat(side, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);

    sqlite3 *db = raw_open(f);
    char **table = NULL;
    int rows = 0, cols = 0;
    assert_int_equal(sqlite3_get_table(db, "PRAGMA journal_mode", &table, &rows, &cols, NULL), SQLITE_OK);
    assert_int_equal(rows, 1);
    assert_string_equal(table[cols], "wal"); /* the row after the header */
    sqlite3_free_table(table);
    sqlite3_close(db);
}

static void test_open_tightens_loose_modes(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    struct stat sb;
    store *st = NULL;
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/loose", f->base);
    snprintf(path, sizeof path, "%s/%s", dir, STORE_DB_NAME);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0644), 0);

    assert_int_equal(store_open(dir, &st, &err), 0);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    store_close(st);
}

static void test_open_fails_on_file_as_dir(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store *st = NULL;
    /* The database file itself is not a directory. */
    assert_int_equal(store_open(f->db_path, &st, &err), -1);
    assert_null(st);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, f->db_path));
}

static void test_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    json_t *v = json_pack("{s:s}", "url", "http://ca.example/scep"), *got = NULL;
    assert_int_equal(store_doc_put(f->st, "scep_settings", v, NULL, NULL, NULL, &err), 0);
    store_key k = new_key("tls", "");
    assert_int_equal(store_key_insert_registered(f->st, &k, &err), 0);
    store_close(f->st);
    f->st = NULL;

    assert_int_equal(store_open(f->dir, &f->st, &err), 0);
    store_set_clock(f->st, test_clock, f);
    assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
    assert_int_equal(store_doc_get(f->st, "scep_settings", &got, &err), 0);
    assert_true(json_equal(v, got));
    assert_key_state(f, "tls", "registered");
    json_decref(v);
    json_decref(got);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"),
                     STORE_SCHEMA_VERSION);
    sqlite3_close(db);
}

/* Where a key lives is stored with it: "software" unless given, "tpm2",
 * and nothing else (CHECK). */
static void test_key_storage(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_key soft = new_key("soft", ""), tpm = new_key("tpm", ""), bad = new_key("bad", "");
    snprintf(tpm.storage, sizeof tpm.storage, "tpm2");
    snprintf(bad.storage, sizeof bad.storage, "hsm");
    assert_int_equal(store_key_insert_registered(f->st, &soft, &err), 0);
    assert_int_equal(store_key_insert_registered(f->st, &tpm, &err), 0);
    assert_int_equal(store_key_insert_registered(f->st, &bad, &err), -1);
    assert_string_equal(util_err_code(err.code), "store");
    const char *names[] = {"soft", "tpm"}, *want[] = {"software", "tpm2"};
    for (size_t i = 0; i < 2; i++) {
        store_key k;
        assert_int_equal(store_key_get(f->st, names[i], &k, &err), 0);
        assert_string_equal(k.storage, want[i]);
        store_key_clear(&k);
    }
    store_key *all = NULL;
    size_t n = 0;
    assert_int_equal(store_key_list(f->st, &all, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].storage, "software");
    assert_string_equal(all[1].storage, "tpm2");
    for (size_t i = 0; i < n; i++)
        store_key_clear(&all[i]);
    free(all);
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store *st = NULL;
    sqlite3 *db = raw_open(f);
    raw_exec(db, "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
    sqlite3_close(db);

    assert_int_equal(store_open(f->dir, &st, &err), -1);
    assert_null(st);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "schema version 99"));
    assert_non_null(strstr(err.detail, "newer scepd"));
}

/* The sealing migration's stand-in for the agent: records each place and
 * returns a marker that names it (the store keeps it as it is). */
struct fake_sealer {
    int calls;
    char places[8][96];
};

static int fake_seal(void *arg, const store_secret_place *place, const char *clear, char **sealed,
                     util_error *err)
{
    struct fake_sealer *fs = arg;
    (void)err;
    assert_non_null(strstr(clear, "PRIVATE KEY"));
    if (fs->calls < 8)
        snprintf(fs->places[fs->calls], sizeof fs->places[0], "%s|%s|%s|%lld", place->table, place->column,
                 place->key_name, (long long)place->request_id);
    fs->calls++;
    char buf[160];
    snprintf(buf, sizeof buf, "scepd-sealed:v1:fake|%s|%s|%s|%lld", place->table, place->column,
             place->key_name, (long long)place->request_id);
    *sealed = strdup(buf);
    return *sealed ? 0 : -1;
}

static bool fake_sealer_saw(const struct fake_sealer *fs, const char *place)
{
    for (int i = 0; i < fs->calls && i < 8; i++)
        if (!strcmp(fs->places[i], place))
            return true;
    return false;
}

/* Whether any file in dir holds needle (a clear key's bytes). */
static bool dir_holds(const char *dir, const char *needle)
{
    static const char *const names[] = {STORE_DB_NAME, STORE_DB_NAME "-wal", STORE_DB_NAME "-shm"};
    bool found = false;
    for (size_t i = 0; i < 3 && !found; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *in = fopen(path, "rb");
        if (!in)
            continue;
        static char data[1 << 20];
        size_t n = fread(data, 1, sizeof data, in);
        fclose(in);
        for (size_t j = 0; !found && n >= strlen(needle) && j <= n - strlen(needle); j++)
            found = !memcmp(data + j, needle, strlen(needle));
    }
    return found;
}

/* A store written by the first released schema (tests/unit/data/
 * store-schema1.db, never regenerated) opens with this scepd: it is migrated
 * to STORE_SCHEMA_VERSION in place and keeps every pair, binding, request,
 * user, document and audit line. */
static void test_upgrade_from_schema1(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    const char *root = getenv("SCEPD_SOURCE_ROOT");
    if (!root)
        fail_msg("SCEPD_SOURCE_ROOT is not set (run through meson test or tests/run)");
    char src[512];
    snprintf(src, sizeof src, "%s/tests/unit/data/store-schema1.db", root);
    store_close(f->st);
    f->st = NULL;
    unlink(f->db_path);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->db_path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", f->db_path);
    unlink(wal);
    FILE *in = fopen(src, "rb"), *out = fopen(f->db_path, "wb");
    if (!in)
        fail_msg("%s is missing: it is checked in", src);
    assert_non_null(out);
    char buf[8192];
    for (size_t n; (n = fread(buf, 1, sizeof buf, in)) > 0;)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(f->db_path, 0600), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"), 1);
    /* a line from the middle of each clear key's PEM body, looked for in
     * every file of the directory after the migration */
    char needles[4][65] = {{0}};
    const char *needle_sql[] = {
        "SELECT substr(key_pem, instr(key_pem, char(10)) + 65, 64) FROM keys WHERE name = 'DefaultTLS'",
        "SELECT substr(key_pem, instr(key_pem, char(10)) + 650, 64) FROM keys WHERE name = 'Legacy1'",
        "SELECT substr(key_pem, instr(key_pem, char(10)) + 650, 64) FROM keys WHERE name = 'Legacy2'",
        "SELECT substr(key_pem, instr(key_pem, char(10)) + 650, 64) FROM requests WHERE id = 1",
    };
    for (size_t i = 0; i < 4; i++) {
        sqlite3_stmt *q = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, needle_sql[i], -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        snprintf(needles[i], sizeof needles[i], "%s", (const char *)sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
        assert_true(strlen(needles[i]) >= 40);
    }
    sqlite3_close(db);
    for (size_t i = 0; i < 4; i++)
        assert_true(dir_holds(f->dir, needles[i]));

    /* without a sealer the clear keys are not taken: nothing changes */
    assert_int_equal(store_open(f->dir, &f->st, &err), -1);
    assert_null(f->st);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "in the clear"));
    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"), 2);
    sqlite3_close(db);

    struct fake_sealer sealer = {0};
    assert_int_equal(store_open_sealing(f->dir, fake_seal, &sealer, &f->st, &err), 0);
    store_set_clock(f->st, test_clock, f);
    /* the three pairs and the acquired request's key; the registered
     * request's key is dropped, not sealed */
    assert_int_equal(sealer.calls, 4);
    assert_true(fake_sealer_saw(&sealer, "keys|key_pem|DefaultTLS|0"));
    assert_true(fake_sealer_saw(&sealer, "keys|key_pem|Legacy1|1"));
    assert_true(fake_sealer_saw(&sealer, "keys|key_pem|Legacy2|2"));
    assert_true(fake_sealer_saw(&sealer, "requests|key_pem|Legacy2|2"));
    for (size_t i = 0; i < 4; i++)
        assert_false(dir_holds(f->dir, needles[i]));
    assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
    assert_int_equal(store_check_consistency(f->st, &err), 0);
    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"),
                     STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit"), 9);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM requests"), 2);
    sqlite3_close(db);

    const char *names[] = {"DefaultTLS", "Legacy1", "Legacy2"};
    const char *states[] = {"registered", "registered", "acquired"};
    for (size_t i = 0; i < 3; i++) {
        store_key k;
        assert_int_equal(store_key_get(f->st, names[i], &k, &err), 0);
        assert_string_equal(store_state_name(k.state), states[i]);
        assert_non_null(strstr(k.key_sealed, "scepd-sealed:v1:fake|keys|key_pem|"));
        assert_null(strstr(k.key_sealed, "PRIVATE KEY"));
        assert_non_null(strstr(k.cert_pem, "BEGIN CERTIFICATE"));
        assert_string_equal(k.storage, "software"); /* schema 3: keys before it are software keys */
        store_key_clear(&k);
    }
    store_binding *b = NULL;
    size_t nb = 0;
    assert_int_equal(store_binding_list(f->st, &b, &nb, &err), 0);
    int seen = 0;
    for (size_t i = 0; i < nb; i++) {
        if (!strcmp(b[i].function, "tls"))
            seen += !strcmp(b[i].key_name, "DefaultTLS");
        if (!strcmp(b[i].function, "f1"))
            seen += !strcmp(b[i].key_name, "Legacy1");
    }
    free(b);
    assert_int_equal(seen, 2);
    store_request r;
    assert_int_equal(store_request_get(f->st, 1, &r, &err), 0);
    assert_string_equal(r.key_name, "Legacy1");
    assert_string_equal(store_state_name(r.state), "registered");
    assert_null(r.key_sealed);
    assert_null(r.signer_key_sealed);
    store_request_clear(&r);
    assert_int_equal(store_request_get(f->st, 2, &r, &err), 0);
    assert_string_equal(store_state_name(r.state), "acquired");
    assert_string_equal(r.key_sealed, "scepd-sealed:v1:fake|requests|key_pem|Legacy2|2");
    store_request_clear(&r);
    store_user u;
    assert_int_equal(store_user_get(f->st, "admin", &u, &err), 0);
    assert_string_equal(u.role, "admin");
    store_user_clear(&u);
    assert_int_equal(store_user_get(f->st, "viewer", &u, &err), 0);
    assert_string_equal(u.role, "viewer");
    store_user_clear(&u);
    const char *docs[] = {"scep_settings", "auto_request", "auto_state"};
    for (size_t i = 0; i < 3; i++) {
        json_t *doc = NULL;
        assert_int_equal(store_doc_get(f->st, docs[i], &doc, &err), 0);
        assert_non_null(doc);
        json_decref(doc);
    }
    /* and it stays writable */
    assert_int_equal(store_binding_set(f->st, "f1", "DefaultTLS", "test", &err), 0);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->dir, &f->st, &err), 0);
    store_set_clock(f->st, test_clock, f);
    assert_int_equal(store_check_consistency(f->st, &err), 0);
    /* migration 2 widened the requests table's state CHECK: 'cancelled' is
     * accepted, a name outside the list still is not */
    store_close(f->st);
    f->st = NULL;
    db = raw_open(f);
    raw_exec(db, "UPDATE requests SET state = 'cancelled' WHERE id = 1");
    assert_int_equal(raw_int(db, "SELECT count(*) FROM requests WHERE state = 'cancelled'"), 1);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE requests SET state = 'bogus' WHERE id = 1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"),
                     1);
    sqlite3_close(db);
}

/* ---- documents ---- */

static void test_docs(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    json_t *got = (json_t *)&err, *audit = NULL;
    assert_int_equal(store_doc_get(f->st, "auto_request", &got, &err), 0);
    assert_null(got);

    json_t *v1 = json_pack("{s:b, s:i}", "enabled", 1, "days_before", 30);
    json_t *v2 = json_pack("{s:b}", "enabled", 0);
    assert_int_equal(
        store_doc_put(f->st, "auto_request", v1, "admin", "settings.auto_request", "enabled", &err), 0);
    assert_int_equal(store_doc_get(f->st, "auto_request", &got, &err), 0);
    assert_true(json_equal(got, v1));
    json_decref(got);

    assert_int_equal(store_doc_put(f->st, "auto_request", v2, NULL, NULL, NULL, &err), 0);
    assert_int_equal(store_doc_get(f->st, "auto_request", &got, &err), 0);
    assert_true(json_equal(got, v2));
    json_decref(got);

    /* One audit line: only the first put asked for one. */
    assert_int_equal(store_audit_list(f->st, 10, &audit, &err), 0);
    assert_int_equal(json_array_size(audit), 1);
    json_t *line = json_array_get(audit, 0);
    assert_string_equal(json_string_value(json_object_get(line, "user")), "admin");
    assert_string_equal(json_string_value(json_object_get(line, "action")), "settings.auto_request");
    assert_int_equal(json_integer_value(json_object_get(line, "at")), f->now);
    json_decref(audit);
    json_decref(v1);
    json_decref(v2);
}

/* ---- requests ---- */

static void test_request_insert_get_update(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_request r = new_request("manual", "queued", "web1"), got = {0};
    r.params = json_pack("{s:s, s:i}", "subject", "CN=printer", "key_bits", 2048);
    r.challenge_sealed = (uint8_t *)SECRET_CHALLENGE;
    r.challenge_sealed_len = strlen(SECRET_CHALLENGE);
    assert_int_equal(store_request_insert(f->st, &r, "admin", &err), 0);
    assert_true(r.id > 0);
    assert_int_equal(r.created_at, f->now);

    assert_int_equal(store_request_get(f->st, r.id, &got, &err), 0);
    assert_string_equal(got.kind, "manual");
    assert_string_equal(store_state_name(got.state), "queued");
    assert_string_equal(got.key_name, "web1");
    assert_true(json_equal(got.params, r.params));
    assert_int_equal(got.challenge_sealed_len, strlen(SECRET_CHALLENGE));
    assert_memory_equal(got.challenge_sealed, SECRET_CHALLENGE, got.challenge_sealed_len);
    assert_null(got.key_sealed);
    assert_null(got.server);
    assert_int_equal(got.created_at, f->now);
    store_request_clear(&got);

    f->now += 60;
    r.state = STORE_STATE_PENDING;
    snprintf(r.transaction_id, sizeof r.transaction_id, "ABCDEF0123");
    r.key_sealed = (char *)SECRET_KEY_PEM;
    r.signer_cert_pem = (char *)CERT_PEM;
    r.signer_key_sealed = (char *)SECRET_SIGNER_PEM;
    r.server = json_pack("{s:[s,s]}", "caps", "POSTPKIOperation", "SHA-256");
    r.attempts = 3;
    r.next_attempt_at = f->now + 300;
    snprintf(r.error_code, sizeof r.error_code, "net_timeout");
    snprintf(r.error_detail, sizeof r.error_detail, "no answer in 60 s");
    r.challenge_sealed = NULL;
    r.challenge_sealed_len = 0;
    assert_int_equal(store_request_update(f->st, &r, &err), 0);

    assert_int_equal(store_request_get(f->st, r.id, &got, &err), 0);
    assert_string_equal(store_state_name(got.state), "pending");
    assert_string_equal(got.transaction_id, "ABCDEF0123");
    assert_string_equal(got.key_sealed, SECRET_KEY_PEM);
    assert_string_equal(got.signer_cert_pem, CERT_PEM);
    assert_string_equal(got.signer_key_sealed, SECRET_SIGNER_PEM);
    assert_true(json_equal(got.server, r.server));
    assert_null(got.challenge_sealed); /* wiped */
    assert_int_equal(got.attempts, 3);
    assert_int_equal(got.next_attempt_at, f->now + 300);
    assert_string_equal(got.error_code, "net_timeout");
    assert_string_equal(got.error_detail, "no answer in 60 s");
    assert_int_equal(got.created_at, f->now - 60);
    assert_int_equal(got.updated_at, f->now);
    store_request_clear(&got);
    store_request_clear(&got); /* a cleared struct clears again */

    got.id = 12345;
    assert_int_equal(store_request_get(f->st, 999, &got, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_int_equal(got.id, 12345); /* untouched on failure */
    r.id = 999;
    assert_int_equal(store_request_update(f->st, &r, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);

    json_decref(r.params);
    json_decref(r.server);
}

static void test_request_list(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    static const char *const states[] = {"registered", "pending", "failed", "queued"};
    int64_t ids[4];
    for (int i = 0; i < 4; i++) {
        store_request r = new_request(i % 2 ? "auto" : "manual", states[i], "k");
        assert_int_equal(store_request_insert(f->st, &r, NULL, &err), 0);
        ids[i] = r.id;
    }
    store_request *list = NULL;
    size_t n = 0;
    assert_int_equal(store_request_list(f->st, 0, false, &list, &n, &err), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(list[i].id, ids[3 - i]); /* newest first */
    for (size_t i = 0; i < n; i++)
        store_request_clear(&list[i]);
    free(list);

    assert_int_equal(store_request_list(f->st, 10, true, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(store_state_name(list[0].state), "queued");
    assert_string_equal(store_state_name(list[1].state), "pending");
    for (size_t i = 0; i < n; i++)
        store_request_clear(&list[i]);
    free(list);

    assert_int_equal(store_request_list(f->st, 1, false, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, ids[3]);
    store_request_clear(&list[0]);
    free(list);
}

static void test_request_rejects_bad_state(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_request r = new_request("manual", "queued", "k");
    r.state = (store_state)STORE_STATE_COUNT; /* no such state: nothing is written */
    assert_int_equal(store_request_insert(f->st, &r, NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "insert request"));
    assert_int_equal(r.id, 0);
}

/* ---- acquire ---- */

static void test_acquire(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_request r = new_request("manual", "pending", "web1");
    assert_int_equal(store_request_insert(f->st, &r, "admin", &err), 0);
    f->now += 10;
    snprintf(r.transaction_id, sizeof r.transaction_id, "T1");
    r.key_sealed = (char *)SECRET_KEY_PEM;
    store_key k = new_key("web1", "");
    assert_int_equal(store_acquire(f->st, &r, &k, 2, &err), 0);

    store_request got = {0};
    assert_int_equal(store_request_get(f->st, r.id, &got, &err), 0);
    assert_string_equal(store_state_name(got.state), "acquired");
    assert_string_equal(got.transaction_id, "T1");
    store_request_clear(&got);

    store_key key = {0};
    assert_int_equal(store_key_get(f->st, "web1", &key, &err), 0);
    assert_string_equal(store_state_name(key.state), "acquired");
    assert_string_equal(key.key_sealed, SECRET_KEY_PEM);
    assert_string_equal(key.cert_pem, CERT_PEM);
    assert_string_equal(key.chain_pem, "");
    assert_int_equal(key.request_id, r.id);
    assert_int_equal(key.created_at, f->now); /* the injected clock */
    assert_int_equal(key.registered_at, 0);
    store_key_clear(&key);

    int count = -1;
    assert_int_equal(store_key_count(f->st, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_int_equal(store_check_consistency(f->st, &err), 0);
}

static void test_acquire_store_full(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_key tls = new_key("tls", "");
    assert_int_equal(store_key_insert_registered(f->st, &tls, &err), 0);
    acquire_key(f, "a1", "");

    store_request r = new_request("manual", "pending", "a2");
    assert_int_equal(store_request_insert(f->st, &r, NULL, &err), 0);
    store_request changed = r;
    snprintf(changed.transaction_id, sizeof changed.transaction_id, "SHOULD-NOT-BE-WRITTEN");
    store_key k = new_key("a2", "");
    assert_int_equal(store_acquire(f->st, &changed, &k, 2, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_KEY_STORE_FULL);

    /* Nothing written: the request is as it was, the key does not exist. */
    store_request got = {0};
    assert_int_equal(store_request_get(f->st, r.id, &got, &err), 0);
    assert_string_equal(store_state_name(got.state), "pending");
    assert_string_equal(got.transaction_id, "");
    store_request_clear(&got);
    store_key key = {0};
    assert_int_equal(store_key_get(f->st, "a2", &key, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    int count = 0;
    assert_int_equal(store_key_count(f->st, &count, &err), 0);
    assert_int_equal(count, 2);
    int registered = -1, acquired = -1;
    assert_int_equal(store_key_count_states(f->st, &registered, &acquired, &err), 0);
    assert_int_equal(registered, 1);
    assert_int_equal(acquired, 1);
}

static void test_acquire_name_taken(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    acquire_key(f, "dup", "");
    store_request r = new_request("manual", "pending", "dup");
    assert_int_equal(store_request_insert(f->st, &r, NULL, &err), 0);
    store_key k = new_key("dup", "");
    assert_int_equal(store_acquire(f->st, &r, &k, 10, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_KEY_NAME_TAKEN);
    assert_non_null(strstr(err.detail, "dup"));
    assert_request_state(f, r.id, "pending");

    store_key again = new_key("dup", "");
    assert_int_equal(store_key_insert_registered(f->st, &again, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_KEY_NAME_TAKEN);
}

/* ---- registration ---- */

static void setup_old_key_with_bindings(fixture *f)
{
    util_error err = {0};
    store_key old = new_key("old", "");
    assert_int_equal(store_key_insert_registered(f->st, &old, &err), 0);
    assert_int_equal(store_binding_set(f->st, "https", "old", "admin", &err), 0);
    assert_int_equal(store_binding_set(f->st, "ieee8021x", "old", "admin", &err), 0);
    assert_int_equal(store_binding_set(f->st, "ipsec", "", "admin", &err), 0);
}

static void test_register_all_replaces(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    setup_old_key_with_bindings(f);
    f->now += 100;
    int64_t rid = acquire_key(f, "new", "old");
    int64_t other = acquire_key(f, "extra", "");
    f->now += 100;

    store_registration *regs = NULL;
    size_t n = 0;
    assert_int_equal(store_register_all(f->st, "admin", &regs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(regs[0].name, "new");
    assert_string_equal(regs[0].replaced, "old");
    assert_int_equal(regs[0].request_id, rid);
    assert_string_equal(regs[1].name, "extra");
    assert_string_equal(regs[1].replaced, "");
    assert_int_equal(regs[1].request_id, other);
    free(regs);

    store_key k = {0};
    assert_int_equal(store_key_get(f->st, "old", &k, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_int_equal(store_key_get(f->st, "new", &k, &err), 0);
    assert_string_equal(store_state_name(k.state), "registered");
    assert_int_equal(k.registered_at, f->now);
    store_key_clear(&k);
    assert_request_state(f, rid, "registered");
    assert_request_state(f, other, "registered");

    store_binding *b = NULL;
    assert_int_equal(store_binding_list(f->st, &b, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(binding_of(b, n, "https"), "new");
    assert_string_equal(binding_of(b, n, "ieee8021x"), "new");
    assert_string_equal(binding_of(b, n, "ipsec"), "");
    free(b);
    assert_int_equal(store_check_consistency(f->st, &err), 0);

    /* Nothing left to register. */
    regs = (store_registration *)&err;
    assert_int_equal(store_register_all(f->st, "admin", &regs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(regs);
}

/* A failure half-way (injected with a trigger on the raw handle) leaves
 * every key, binding and request as before. */
static void test_register_all_atomic(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    setup_old_key_with_bindings(f);
    int64_t rid = acquire_key(f, "new", "old");
    sqlite3 *db = raw_open(f);
    raw_exec(db,
             "CREATE TRIGGER fail_delete BEFORE DELETE ON keys BEGIN SELECT RAISE(ABORT, 'injected'); END");

    store_registration *regs = NULL;
    size_t n = 99;
    assert_int_equal(store_register_all(f->st, "admin", &regs, &n, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "injected"));
    assert_null(regs);
    assert_int_equal(n, 99);
    assert_key_state(f, "new", "acquired");
    assert_key_state(f, "old", "registered");
    assert_request_state(f, rid, "acquired");
    store_binding *b = NULL;
    assert_int_equal(store_binding_list(f->st, &b, &n, &err), 0);
    assert_string_equal(binding_of(b, n, "https"), "old");
    assert_string_equal(binding_of(b, n, "ieee8021x"), "old");
    free(b);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit WHERE action = 'key.register'"), 0);

    raw_exec(db, "DROP TRIGGER fail_delete");
    sqlite3_close(db);
    assert_int_equal(store_register_all(f->st, "admin", &regs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(regs[0].replaced, "old");
    free(regs);
}

/* ---- delete and bindings ---- */

static void test_key_delete(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    setup_old_key_with_bindings(f);
    assert_int_equal(store_key_delete(f->st, "old", "admin", &err), -1);
    assert_int_equal(err.code, UTIL_ERR_KEY_IN_USE);
    assert_string_equal(err.detail, "used by https, ieee8021x");
    assert_key_state(f, "old", "registered");

    assert_int_equal(store_binding_set(f->st, "https", "", "admin", &err), 0);
    assert_int_equal(store_key_delete(f->st, "old", "admin", &err), -1);
    assert_string_equal(err.detail, "used by ieee8021x");
    assert_int_equal(store_binding_set(f->st, "ieee8021x", NULL, "admin", &err), 0);
    assert_int_equal(store_key_delete(f->st, "old", "admin", &err), 0);
    store_key k = {0};
    assert_int_equal(store_key_get(f->st, "old", &k, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);

    assert_int_equal(store_key_delete(f->st, "missing", "admin", &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.detail, "missing"));
}

/* A renamed key keeps its bindings (RESTRICT on update: unbound and bound
 * again in the same transaction); a taken name is refused, nothing moves. */
static void test_key_rename(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    setup_old_key_with_bindings(f);
    store_key other = new_key("other", "");
    assert_int_equal(store_key_insert_registered(f->st, &other, &err), 0);
    assert_int_equal(store_key_rename(f->st, "old", "other", NULL, "admin", &err), -1);
    assert_string_equal(util_err_code(err.code), "key_name_taken");
    assert_key_state(f, "old", "registered");

    assert_int_equal(store_key_rename(f->st, "old", "renamed", NULL, "admin", &err), 0);
    store_key k = {0};
    assert_int_equal(store_key_get(f->st, "old", &k, &err), -1);
    assert_key_state(f, "renamed", "registered");
    store_binding *b = NULL;
    size_t n = 0;
    assert_int_equal(store_binding_list(f->st, &b, &n, &err), 0);
    assert_string_equal(binding_of(b, n, "https"), "renamed");
    assert_string_equal(binding_of(b, n, "ieee8021x"), "renamed");
    assert_string_equal(binding_of(b, n, "ipsec"), "");
    free(b);
    assert_int_equal(store_check_consistency(f->st, &err), 0);
    assert_int_equal(store_key_rename(f->st, "missing", "x", NULL, "admin", &err), -1);
    assert_string_equal(util_err_code(err.code), "not_found");
}

static void test_delete_acquired_key_fails_request(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    int64_t rid = acquire_key(f, "fresh", "");
    assert_int_equal(store_key_delete(f->st, "fresh", "admin", &err), 0);
    assert_request_state(f, rid, "failed");
    assert_int_equal(store_check_consistency(f->st, &err), 0);
}

static void test_binding_to_missing_key(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    assert_int_equal(store_binding_set(f->st, "https", "ghost", "admin", &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.detail, "ghost"));
    store_binding *b = NULL;
    size_t n = 9;
    assert_int_equal(store_binding_list(f->st, &b, &n, &err), 0);
    assert_int_equal(n, 0);
    free(b);

    assert_int_equal(store_binding_set(f->st, "a-function-name-longer-than-31-chars", "", NULL, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INVALID_FIELD);
}

/* ---- consistency ---- */

static void test_consistency_dangling_binding(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    setup_old_key_with_bindings(f);
    assert_int_equal(store_check_consistency(f->st, &err), 0);

    sqlite3 *db = raw_open(f);
    raw_exec(db, "PRAGMA foreign_keys = OFF");
    raw_exec(db, "INSERT INTO bindings (function, key_name) VALUES ('syslog', 'ghost')");
    sqlite3_close(db);
    assert_int_equal(store_check_consistency(f->st, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "binding to a missing key"));
    assert_non_null(strstr(err.detail, "syslog -> key ghost"));
}

static void test_consistency_acquired_request_without_key(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    sqlite3 *db = raw_open(f);
    raw_exec(db, "INSERT INTO requests (kind, state, key_name, created_at, updated_at)"
                 " VALUES ('auto', 'acquired', 'lost', 1, 1)");
    sqlite3_close(db);
    assert_int_equal(store_check_consistency(f->st, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "acquired request without its key"));
    assert_non_null(strstr(err.detail, "lost"));
}

/* ---- users and sessions ---- */

static void test_users(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_user u = {0}, got = {0};
    int count = -1;
    assert_int_equal(store_user_count(f->st, &count, &err), 0);
    assert_int_equal(count, 0);
    snprintf(u.name, sizeof u.name, "admin");
    snprintf(u.role, sizeof u.role, "admin");
    u.password_hash = (char *)"$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA";
    assert_int_equal(store_user_put(f->st, &u, &err), 0);
    assert_int_equal(store_user_count(f->st, &count, &err), 0);
    assert_int_equal(count, 1);

    assert_int_equal(store_user_login_result(f->st, "admin", false, 0, &err), 0);
    assert_int_equal(store_user_login_result(f->st, "admin", false, f->now + 60, &err), 0);
    assert_int_equal(store_user_get(f->st, "admin", &got, &err), 0);
    assert_string_equal(got.role, "admin");
    assert_string_equal(got.password_hash, u.password_hash);
    assert_int_equal(got.failed_logins, 2);
    assert_int_equal(got.locked_until, f->now + 60);
    store_user_clear(&got);

    assert_int_equal(store_user_login_result(f->st, "admin", true, 0, &err), 0);
    assert_int_equal(store_user_get(f->st, "admin", &got, &err), 0);
    assert_int_equal(got.failed_logins, 0);
    assert_int_equal(got.locked_until, 0);
    store_user_clear(&got);

    snprintf(u.role, sizeof u.role, "viewer");
    assert_int_equal(store_user_put(f->st, &u, &err), 0);
    assert_int_equal(store_user_get(f->st, "admin", &got, &err), 0);
    assert_string_equal(got.role, "viewer");
    store_user_clear(&got);
    assert_int_equal(store_user_count(f->st, &count, &err), 0);
    assert_int_equal(count, 1);

    assert_int_equal(store_user_get(f->st, "nobody", &got, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_int_equal(store_user_login_result(f->st, "nobody", false, 0, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
}

static void test_sessions(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_user u = {0};
    snprintf(u.name, sizeof u.name, "alice");
    snprintf(u.role, sizeof u.role, "viewer");
    u.password_hash = (char *)"$scrypt$x";
    assert_int_equal(store_user_put(f->st, &u, &err), 0);

    store_session s1 = {0}, s2 = {0}, got = {0};
    memset(s1.token_hash, 'a', 64);
    memset(s2.token_hash, 'b', 64);
    snprintf(s1.user, sizeof s1.user, "alice");
    snprintf(s2.user, sizeof s2.user, "alice");
    snprintf(s1.csrf, sizeof s1.csrf, "csrf1");
    snprintf(s2.csrf, sizeof s2.csrf, "csrf2");
    s1.created_at = s1.last_seen = 1000;
    s2.created_at = s2.last_seen = 2000;
    assert_int_equal(store_session_put(f->st, &s1, &err), 0);
    assert_int_equal(store_session_put(f->st, &s2, &err), 0);

    assert_int_equal(store_session_get(f->st, s1.token_hash, &got, &err), 0);
    assert_string_equal(got.user, "alice");
    assert_string_equal(got.csrf, "csrf1");
    assert_int_equal(got.last_seen, 1000);
    assert_int_equal(store_session_touch(f->st, s1.token_hash, 3000, &err), 0);
    assert_int_equal(store_session_get(f->st, s1.token_hash, &got, &err), 0);
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.last_seen, 3000);

    /* s2 was last seen at 2000: expired; s1 (3000) stays. */
    assert_int_equal(store_session_expire(f->st, 2500, &err), 0);
    assert_int_equal(store_session_get(f->st, s2.token_hash, &got, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_int_equal(store_session_get(f->st, s1.token_hash, &got, &err), 0);
    assert_int_equal(store_session_touch(f->st, s2.token_hash, 3000, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);

    assert_int_equal(store_session_delete(f->st, s1.token_hash, &err), 0);
    assert_int_equal(store_session_get(f->st, s1.token_hash, &got, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_NOT_FOUND);
    assert_int_equal(store_session_delete(f->st, s1.token_hash, &err), 0);

    /* A session names an existing user. */
    snprintf(s2.user, sizeof s2.user, "mallory");
    assert_int_equal(store_session_put(f->st, &s2, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STORE);
}

/* ---- audit ---- */

static void test_audit_has_no_secrets(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    json_t *audit = NULL;
    store_request r = new_request("manual", "pending", "secret");
    r.challenge_sealed = (uint8_t *)SECRET_CHALLENGE;
    r.challenge_sealed_len = strlen(SECRET_CHALLENGE);
    r.key_sealed = (char *)SECRET_KEY_PEM;
    r.signer_key_sealed = (char *)SECRET_SIGNER_PEM;
    assert_int_equal(store_request_insert(f->st, &r, "admin", &err), 0);
    store_key k = new_key("secret", "");
    assert_int_equal(store_acquire(f->st, &r, &k, 5, &err), 0);
    store_registration *regs = NULL;
    size_t n = 0;
    assert_int_equal(store_register_all(f->st, "admin", &regs, &n, &err), 0);
    free(regs);
    assert_int_equal(store_binding_set(f->st, "https", "secret", "admin", &err), 0);
    assert_int_equal(store_binding_set(f->st, "https", "", "admin", &err), 0);
    f->now += 5;
    assert_int_equal(store_key_delete(f->st, "secret", "admin", &err), 0);
    assert_int_equal(store_audit_add(f->st, "admin", "login", "from 192.0.2.1", &err), 0);

    assert_int_equal(store_audit_list(f->st, 0, &audit, &err), 0);
    assert_int_equal(json_array_size(audit), 6);
    char *text = json_dumps(audit, 0);
    assert_non_null(text);
    assert_null(strstr(text, "SECRET-KEY-MARKER"));
    assert_null(strstr(text, "SECRET-SIGNER-MARKER"));
    assert_null(strstr(text, "SECRET-CHALLENGE-MARKER"));
    assert_null(strstr(text, "BEGIN PRIVATE KEY"));
    free(text);

    /* Newest first, each with its time. */
    json_t *first = json_array_get(audit, 0), *last = json_array_get(audit, 5);
    assert_string_equal(json_string_value(json_object_get(first, "action")), "login");
    assert_string_equal(json_string_value(json_object_get(first, "detail")), "from 192.0.2.1");
    assert_int_equal(json_integer_value(json_object_get(first, "at")), f->now);
    assert_string_equal(json_string_value(json_object_get(last, "action")), "request.create");
    assert_int_equal(json_integer_value(json_object_get(last, "at")), f->now - 5);
    for (size_t i = 1; i < json_array_size(audit); i++)
        assert_true(json_integer_value(json_object_get(json_array_get(audit, i - 1), "id")) >
                    json_integer_value(json_object_get(json_array_get(audit, i), "id")));
    json_decref(audit);

    assert_int_equal(store_audit_list(f->st, 2, &audit, &err), 0);
    assert_int_equal(json_array_size(audit), 2);
    json_decref(audit);
}

/* ---- CA certificates ---- */

static void test_ca_certs(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    json_t *got = NULL;
    const char *pems[] = {"PEM-CA", "PEM-RA"}, *roles[] = {"ca", "ra_encrypt"};
    assert_int_equal(store_ca_certs_put(f->st, pems, roles, 2, &err), 0);
    assert_int_equal(store_ca_certs_get(f->st, &got, &err), 0);
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "pem")), "PEM-CA");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 1), "role")), "ra_encrypt");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(got, 1), "fetched_at")), f->now);
    json_decref(got);

    f->now += 3600;
    const char *pems2[] = {"PEM-NEW-CA"}, *roles2[] = {"ca"};
    assert_int_equal(store_ca_certs_put(f->st, pems2, roles2, 1, &err), 0);
    assert_int_equal(store_ca_certs_get(f->st, &got, &err), 0);
    assert_int_equal(json_array_size(got), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "pem")), "PEM-NEW-CA");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(got, 0), "fetched_at")), f->now);
    json_decref(got);

    /* the staged next CA: listed last, kept by put, replaced by put_all */
    const char *pems3[] = {"PEM-NEXT", "PEM-NEW-CA"}, *roles3[] = {"next_ca", "ca"};
    assert_int_equal(store_ca_certs_put_all(f->st, pems3, roles3, 2, &err), 0);
    const char *pems4[] = {"PEM-NEW-CA", "PEM-RA2"}, *roles4[] = {"ca", "ra_sign"};
    assert_int_equal(store_ca_certs_put(f->st, pems4, roles4, 2, &err), 0);
    assert_int_equal(store_ca_certs_get(f->st, &got, &err), 0);
    assert_int_equal(json_array_size(got), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "pem")), "PEM-NEW-CA");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 1), "pem")), "PEM-RA2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 2), "role")), "next_ca");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 2), "pem")), "PEM-NEXT");
    json_decref(got);
    const char *pems5[] = {"PEM-NEXT"}, *roles5[] = {"ca"};
    assert_int_equal(store_ca_certs_put_all(f->st, pems5, roles5, 1, &err), 0);
    assert_int_equal(store_ca_certs_get(f->st, &got, &err), 0);
    assert_int_equal(json_array_size(got), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "role")), "ca");
    json_decref(got);
}

/* ---- memory and threads ---- */

static void test_clear_accepts_null_and_zeroed(void **state)
{
    (void)state;
    store_request r = {0};
    store_key k = {0};
    store_user u = {0};
    store_request_clear(NULL);
    store_key_clear(NULL);
    store_user_clear(NULL);
    store_request_clear(&r);
    store_key_clear(&k);
    store_user_clear(&u);
    store_close(NULL);
}

struct worker {
    store *st;
    int fails;
};

static void *audit_worker(void *arg)
{
    struct worker *w = arg;
    util_error err = {0};
    for (int i = 0; i < 50; i++) {
        json_t *list = NULL;
        if (store_audit_add(w->st, "worker", "tick", "thread", &err) != 0 ||
            store_audit_list(w->st, 5, &list, &err) != 0)
            w->fails++;
        json_decref(list);
    }
    return NULL;
}

/* Two threads share the connection; each transaction is whole. */
static void test_two_threads(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    struct worker w[2] = {{f->st, 0}, {f->st, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, audit_worker, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(w[0].fails + w[1].fails, 0);
    json_t *audit = NULL;
    assert_int_equal(store_audit_list(f->st, 0, &audit, &err), 0);
    assert_int_equal(json_array_size(audit), 100);
    json_decref(audit);
}

/* One name table: every state's name reads back as that state. */
static void state_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < STORE_STATE_COUNT; i++) {
        store_state back = STORE_STATE_FAILED;
        assert_int_equal(store_state_parse(store_state_name((store_state)i), &back), 0);
        assert_int_equal(back, i);
    }
    store_state untouched = STORE_STATE_SENT;
    assert_int_equal(store_state_parse("Pending", &untouched), -1);
    assert_int_equal(store_state_parse(NULL, &untouched), -1);
    assert_int_equal(untouched, STORE_STATE_SENT);
    assert_string_equal(store_state_name((store_state)STORE_STATE_COUNT), "?");
}

/* ---- scepca's store: the same layer ---- */

static void ca_store_open_modes_and_migration(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    store_ca *ca = NULL;
    char dir[128], path[160];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/ca", f->base);
    snprintf(path, sizeof path, "%s/%s", dir, STORE_CA_DB_NAME);
    /* without create a missing CA is an input error that names scepca init */
    assert_int_equal(store_ca_open(dir, false, &ca, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_FILE);
    assert_non_null(strstr(err.detail, "scepca init"));
    assert_int_equal(store_ca_open(dir, true, &ca, &err), 0);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(store_ca_setting_set(ca, "serial", "0A", &err), 0);
    store_ca_close(ca);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"),
                     STORE_CA_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"), 1);
    raw_exec(db, "UPDATE meta SET value = 7 WHERE key = 'schema_version'");
    sqlite3_close(db);
    assert_int_equal(store_ca_open(dir, false, &ca, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CA_STORE);
    assert_non_null(strstr(err.detail, "newer scepca"));
}

/* A scepca.db written before migrations existed (schema_version table
 * only) opens and keeps its rows. */
static void ca_store_old_file_migrates(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/oldca", f->base);
    snprintf(path, sizeof path, "%s/%s", dir, STORE_CA_DB_NAME);
    assert_int_equal(mkdir(dir, 0700), 0);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    raw_exec(db, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                 "INSERT INTO schema_version VALUES (1);"
                 "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
                 "INSERT INTO settings VALUES ('serial', '2A');");
    sqlite3_close(db);
    store_ca *ca = NULL;
    char *value = NULL;
    assert_int_equal(store_ca_open(dir, false, &ca, &err), 0);
    assert_int_equal(store_ca_setting_get(ca, "serial", &value, &err), 0);
    assert_string_equal(value, "2A");
    free(value);
    assert_int_equal(store_ca_setting_get(ca, "absent", &value, &err), 1);
    store_ca_close(ca);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(raw_int(db, "SELECT version FROM schema_version"), STORE_CA_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"),
                     STORE_CA_SCHEMA_VERSION);
    /* version 2's columns are there */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_table_info('requests')"
                                 " WHERE name IN ('message_type', 'signer')"),
                     2);
    sqlite3_close(db);
}

/* Both stores refuse a database file that is a symbolic link. */
static void stores_refuse_symlinked_file(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char dir[128], path[160], target[160];
    snprintf(dir, sizeof dir, "%s/linked", f->base);
    snprintf(target, sizeof target, "%s/elsewhere.db", f->base);
    assert_int_equal(mkdir(dir, 0700), 0);
    FILE *fp = fopen(target, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/%s", dir, STORE_DB_NAME);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/%s", dir, STORE_CA_DB_NAME);
    assert_int_equal(symlink(target, path), 0);
    store *st = NULL;
    assert_int_equal(store_open(dir, &st, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STORE);
    assert_non_null(strstr(err.detail, "not a regular file"));
    store_ca *ca = NULL;
    assert_int_equal(store_ca_open(dir, true, &ca, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_CA_STORE);
    assert_non_null(strstr(err.detail, "not a regular file"));
}

static int count_cert(const store_ca_cert *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

/* Requests, certificates and one-time passwords through the shared helpers;
 * a second connection of the same process sees every change. */
static void ca_store_operations(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char dir[128];
    snprintf(dir, sizeof dir, "%s/ops", f->base);
    store_ca *ca = NULL, *other = NULL;
    assert_int_equal(store_ca_open(dir, true, &ca, &err), 0);
    assert_int_equal(store_ca_open(dir, false, &other, &err), 0);
    store_ca_otp_result res = STORE_CA_OTP_UNKNOWN;
    assert_int_equal(store_ca_otp_add(ca, "h1", 100, 200, 1, &res, &err), 0);
    assert_int_equal(res, STORE_CA_OTP_OK);
    assert_int_equal(store_ca_otp_add(ca, "h2", 100, 200, 1, &res, &err), 0);
    assert_int_equal(res, STORE_CA_OTP_FULL);
    assert_int_equal(store_ca_otp_consume(other, "h1", 150, &res, &err), 0);
    assert_int_equal(res, STORE_CA_OTP_OK);
    assert_int_equal(store_ca_otp_consume(ca, "h1", 150, &res, &err), 0);
    assert_int_equal(res, STORE_CA_OTP_USED);
    assert_int_equal(store_ca_otp_consume(ca, "nope", 150, &res, &err), 0);
    assert_int_equal(res, STORE_CA_OTP_UNKNOWN);

    store_ca_request req = {.status = STORE_CA_PENDING, .created_at = 5, .updated_at = 5};
    snprintf(req.transaction_id, sizeof req.transaction_id, "TID-1");
    snprintf(req.subject, sizeof req.subject, "CN=dev");
    assert_int_equal(store_ca_request_add(ca, &req, NULL, &err), 0);
    assert_true(req.id > 0);
    store_ca_cert cert = {.issued_at = 6, .not_before = 6, .not_after = 600, .cert_pem = (char *)CERT_PEM};
    snprintf(cert.serial, sizeof cert.serial, "0A");
    snprintf(cert.subject, sizeof cert.subject, "CN=dev");
    snprintf(cert.transaction_id, sizeof cert.transaction_id, "TID-1");
    assert_int_equal(store_ca_request_issue(other, req.id, &cert, 6, &err), 0);
    assert_int_equal(store_ca_request_issue(ca, req.id, &cert, 7, &err), 1); /* no longer pending */
    store_ca_request got;
    assert_int_equal(store_ca_request_find(ca, "TID-1", &got, &err), 0);
    assert_int_equal(got.status, STORE_CA_ISSUED);
    assert_string_equal(got.serial, "0A");
    assert_int_equal(got.csr_len, 0);
    store_ca_request_clear(&got);
    assert_int_equal(store_ca_cert_revoke(ca, "0A", 9, &err), 0);
    assert_int_equal(store_ca_cert_revoke(ca, "0A", 9, &err), 2);
    assert_int_equal(store_ca_cert_revoke(ca, "0B", 9, &err), 1);
    int n = 0;
    assert_int_equal(store_ca_cert_each(other, true, 10, count_cert, &n, &err), 0);
    assert_int_equal(n, 1);
    store_ca_cert back;
    assert_int_equal(store_ca_cert_get(other, "0A", &back, &err), 0);
    assert_string_equal(back.cert_pem, CERT_PEM);
    assert_int_equal(back.revoked_at, 9);
    store_ca_cert_clear(&back);
    store_ca_close(other);
    store_ca_close(ca);
}

#define GROUP_THREADS 4
#define GROUP_ADDS 25

typedef struct group_writer {
    store_ca *ca;
    int index;
    int ok, failed; /* adds that returned 0, and -1 */
    int64_t ids[GROUP_ADDS + 1];
    util_error duplicate_error;
} group_writer;

/* Each writer adds GROUP_ADDS issued requests with serials of its own; the
 * first writer also adds a serial that writer 1 uses, which must fail alone. */
static void *group_write(void *arg)
{
    group_writer *w = arg;
    for (int i = 0; i <= GROUP_ADDS; i++) {
        if (i == GROUP_ADDS && w->index != 0)
            break;
        util_error err = {0};
        store_ca_request req = {.status = STORE_CA_ISSUED, .created_at = 5, .updated_at = 5};
        store_ca_cert cert = {
            .issued_at = 6, .not_before = 6, .not_after = 600, .cert_pem = (char *)CERT_PEM};
        snprintf(req.transaction_id, sizeof req.transaction_id, "T-%d-%d", w->index, i);
        snprintf(req.subject, sizeof req.subject, "CN=dev%d.%d", w->index, i);
        /* the extra add of writer 0 reuses writer 1's serial 1-0 */
        snprintf(cert.serial, sizeof cert.serial, "%X%02X", i == GROUP_ADDS ? 1 : w->index,
                 i == GROUP_ADDS ? 0 : i);
        snprintf(req.serial, sizeof req.serial, "%s", cert.serial);
        snprintf(cert.subject, sizeof cert.subject, "%s", req.subject);
        snprintf(cert.transaction_id, sizeof cert.transaction_id, "%s", req.transaction_id);
        if (store_ca_request_add(w->ca, &req, &cert, &err) == 0) {
            w->ids[w->ok++] = req.id;
        } else {
            w->failed++;
            w->duplicate_error = err;
        }
    }
    return NULL;
}

/* Group commit: writers on connections of their own, in threads, share
 * transactions; every add that returned 0 is stored, with an id of its own,
 * and the one that breaks the serial's uniqueness fails without taking the
 * rest of its batch with it. */
static void ca_store_group_commit(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char dir[128];
    snprintf(dir, sizeof dir, "%s/group", f->base);
    store_ca *first = NULL;
    assert_int_equal(store_ca_open(dir, true, &first, &err), 0);
    store_ca_group *g = store_ca_group_new();
    assert_non_null(g);
    group_writer w[GROUP_THREADS] = {0};
    pthread_t th[GROUP_THREADS];
    for (int i = 0; i < GROUP_THREADS; i++) {
        w[i].index = i;
        assert_int_equal(store_ca_open(dir, false, &w[i].ca, &err), 0);
        store_ca_set_group(w[i].ca, g);
    }
    for (int i = 0; i < GROUP_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, group_write, &w[i]), 0);
    for (int i = 0; i < GROUP_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    int ok = 0;
    for (int i = 0; i < GROUP_THREADS; i++) {
        ok += w[i].ok;
        assert_int_equal(w[i].failed, i == 0 ? 1 : 0);
        for (int j = 0; j < w[i].ok; j++) {
            assert_true(w[i].ids[j] > 0);
            for (int k = 0; k < i; k++)
                for (int m = 0; m < w[k].ok; m++)
                    assert_true(w[i].ids[j] != w[k].ids[m]);
        }
    }
    assert_int_equal(ok, GROUP_THREADS * GROUP_ADDS);
    assert_non_null(strstr(w[0].duplicate_error.detail, "certificate"));
    int n = 0;
    assert_int_equal(store_ca_cert_each(first, false, 1000, count_cert, &n, &err), 0);
    assert_int_equal(n, GROUP_THREADS * GROUP_ADDS);
    store_ca_request got;
    assert_int_equal(store_ca_request_find(first, "T-3-24", &got, &err), 0);
    assert_string_equal(got.serial, "318");
    store_ca_request_clear(&got);
    assert_int_equal(store_ca_request_find(first, "T-0-25", &got, &err), 1); /* rolled back */
    for (int i = 0; i < GROUP_THREADS; i++)
        store_ca_close(w[i].ca);
    store_ca_group_free(g);
    store_ca_close(first);
}

/* ---- the statement cache (db.c) ---- */

/* Statements open on the connection, and how many of them are mid-step. */
static int open_statements(store *st, int *stepping)
{
    int n = 0;
    if (stepping)
        *stepping = 0;
    for (sqlite3_stmt *s = sqlite3_next_stmt(st->db, NULL); s; s = sqlite3_next_stmt(st->db, s)) {
        n++;
        if (stepping && sqlite3_stmt_busy(s))
            (*stepping)++;
    }
    return n;
}

/* The same SQL twice is the same statement; the second use starts from the
 * first row and none of the first use's bindings. */
static void stmt_cache_hit_clears_bindings(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    static const char sql[] = "SELECT ?1, ?2";
    char copy[sizeof sql];
    sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(store_prepare(f->st, sql, &a, &err), 0);
    assert_int_equal(sqlite3_bind_int64(a, 1, 11) | sqlite3_bind_int64(a, 2, 22), SQLITE_OK);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(a, 0), 11);
    assert_int_equal(sqlite3_column_int64(a, 1), 22);
    store_finalize(f->st, a); /* given back mid-step: the row is still pending */
    assert_int_equal(store_prepare(f->st, sql, &b, &err), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(sqlite3_bind_int64(b, 1, 33), SQLITE_OK);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(b, 0), 33);
    assert_int_equal(sqlite3_column_type(b, 1), SQLITE_NULL);
    assert_int_equal(sqlite3_step(b), SQLITE_DONE);
    store_finalize(f->st, b);
    /* the same text at another address finds it too */
    memcpy(copy, sql, sizeof sql);
    assert_int_equal(store_prepare(f->st, copy, &c, &err), 0);
    assert_ptr_equal(a, c);
    store_finalize(f->st, c);
    /* and through the helpers, with other bindings each time */
    int64_t v = 0;
    for (int64_t i = 0; i < 3; i++) {
        assert_int_equal(store_query_int(f->st, &err, "add", &v, "SELECT ?1 + 1", "i", i), 1);
        assert_int_equal(v, i + 1);
    }
    store_finalize(f->st, NULL);
}

/* A buffer reused for other SQL runs the other SQL, not the statement
 * cached for the buffer's address. */
static void stmt_cache_reused_buffer(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char sql[64];
    sqlite3_stmt *first = NULL, *second = NULL, *again = NULL;
    snprintf(sql, sizeof sql, "SELECT 'first'");
    assert_int_equal(store_prepare(f->st, sql, &first, &err), 0);
    assert_int_equal(sqlite3_step(first), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(first, 0), "first");
    store_finalize(f->st, first);
    snprintf(sql, sizeof sql, "SELECT 'second'");
    assert_int_equal(store_prepare(f->st, sql, &second, &err), 0);
    assert_ptr_not_equal(first, second);
    assert_int_equal(sqlite3_step(second), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(second, 0), "second");
    store_finalize(f->st, second);
    snprintf(sql, sizeof sql, "SELECT 'first'");
    assert_int_equal(store_prepare(f->st, sql, &again, &err), 0);
    assert_ptr_equal(first, again);
    assert_int_equal(sqlite3_step(again), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(again, 0), "first");
    store_finalize(f->st, again);
}

/* A statement handed out is not handed out again until it is given back:
 * the second caller gets one of its own, finalized when given back. */
static void stmt_cache_in_use(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    static const char sql[] = "SELECT ?1 * 2";
    sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;
    int before = open_statements(f->st, NULL);
    assert_int_equal(store_prepare(f->st, sql, &a, &err), 0);
    assert_int_equal(sqlite3_bind_int64(a, 1, 4), SQLITE_OK);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    assert_int_equal(store_prepare(f->st, sql, &b, &err), 0);
    assert_ptr_not_equal(a, b);
    assert_int_equal(open_statements(f->st, NULL), before + 2);
    assert_int_equal(sqlite3_bind_int64(b, 1, 5), SQLITE_OK);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(b, 0), 10);
    assert_int_equal(sqlite3_column_int64(a, 0), 8);
    store_finalize(f->st, b);
    assert_int_equal(open_statements(f->st, NULL), before + 1);
    store_finalize(f->st, a);
    assert_int_equal(open_statements(f->st, NULL), before + 1);
    assert_int_equal(store_prepare(f->st, sql, &c, &err), 0);
    assert_ptr_equal(a, c);
    store_finalize(f->st, c);
}

/* Twice as many texts as the cache holds, twice over: every one answers
 * with its own result, and the connection never keeps more statements
 * than the cache's size, none of them mid-step. */
static void stmt_cache_eviction(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char sql[64];
    for (int64_t round = 0; round < 2; round++)
        for (int i = 0; i < 2 * STORE_STMT_CACHE; i++) {
            int64_t v = -1;
            snprintf(sql, sizeof sql, "SELECT %d + ?1", i);
            assert_int_equal(store_query_int(f->st, &err, "evict", &v, sql, "i", round), 1);
            assert_int_equal(v, i + round);
        }
    int stepping = -1;
    assert_true(open_statements(f->st, &stepping) <= STORE_STMT_CACHE);
    assert_int_equal(stepping, 0);
}

/* Cached statements are reset when given back: a read left at its first
 * row does not hold a read transaction, so a checkpoint still empties the
 * WAL (SQLite refuses to checkpoint on a connection inside a transaction). */
static void stmt_cache_checkpoint_truncates(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char wal[160];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", f->db_path);
    json_t *doc = json_pack("{s:s}", "k", "v");
    assert_non_null(doc);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "doc%d", i);
        assert_int_equal(store_doc_put(f->st, name, doc, "admin", NULL, NULL, &err), 0);
    }
    json_decref(doc);
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size > 0);
    sqlite3_stmt *s = NULL;
    assert_int_equal(store_prepare(f->st, "SELECT name FROM docs ORDER BY name", &s, &err), 0);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    store_finalize(f->st, s);
    json_t *got = NULL;
    assert_int_equal(store_doc_get(f->st, "doc1", &got, &err), 0);
    assert_non_null(got);
    json_decref(got);
    assert_int_equal(store_checkpoint(f->st, &err), 0);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_size, 0);
}

/* Closing finalizes the cached statements: sqlite3_close itself succeeds.
 * A statement never given back is reported, and the connection closes
 * once it is finalized. */
static void stmt_cache_close(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    json_t *doc = json_pack("{s:i}", "n", 1), *got = NULL;
    assert_int_equal(store_doc_put(f->st, "d", doc, "admin", NULL, NULL, &err), 0);
    assert_int_equal(store_doc_get(f->st, "d", &got, &err), 0);
    json_decref(doc);
    json_decref(got);
    assert_true(open_statements(f->st, NULL) > 0);
    store *st = f->st;
    f->st = NULL; /* closed here, whatever the outcome: not again by teardown */
    assert_int_equal(store_close_checked(st), SQLITE_OK);

    st = NULL;
    sqlite3_stmt *kept = NULL;
    assert_int_equal(store_open(f->dir, &st, &err), 0);
    assert_int_equal(store_prepare(st, "SELECT count(*) FROM docs", &kept, &err), 0);
    assert_int_equal(store_close_checked(st), SQLITE_BUSY);
    assert_int_equal(sqlite3_step(kept), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(kept, 0), 1);
    assert_int_equal(sqlite3_finalize(kept), SQLITE_OK);
}

#define CACHE_THREADS 4
#define CACHE_ITERATIONS 500
#define CACHE_WRITE_EVERY 5

typedef struct cache_worker {
    store *st;
    store_ca *ca;
    int index;
    int fails;
} cache_worker;

/* Reads and writes through both stores' public calls; every fifth
 * iteration writes a request and an audit line and reads the request back. */
static void *cache_work(void *arg)
{
    cache_worker *w = arg;
    for (int i = 0; i < CACHE_ITERATIONS; i++) {
        util_error err = {0};
        char *value = NULL;
        json_t *doc = NULL;
        if (store_ca_setting_get(w->ca, "shared", &value, &err) != 0 || strcmp(value, "v") != 0)
            w->fails++;
        free(value);
        if (store_doc_get(w->st, "shared", &doc, &err) != 0 ||
            json_integer_value(json_object_get(doc, "n")) != 7)
            w->fails++;
        json_decref(doc);
        if (i % CACHE_WRITE_EVERY != 0)
            continue;
        store_ca_request req = {.status = STORE_CA_PENDING, .created_at = 5, .updated_at = 5}, got;
        snprintf(req.transaction_id, sizeof req.transaction_id, "C-%d-%d", w->index, i);
        snprintf(req.subject, sizeof req.subject, "CN=cache%d.%d", w->index, i);
        if (store_ca_request_add(w->ca, &req, NULL, &err) != 0 ||
            store_ca_request_find(w->ca, req.transaction_id, &got, &err) != 0) {
            w->fails++;
            continue;
        }
        if (got.id != req.id || strcmp(got.subject, req.subject) != 0)
            w->fails++;
        store_ca_request_clear(&got);
        if (store_audit_add(w->st, "admin", "cache.test", req.transaction_id, &err) != 0)
            w->fails++;
    }
    return NULL;
}

static int count_request(const store_ca_request *r, void *arg)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

/* Threads share each store's connection and cache: no call fails, every
 * write is there, and no statement is left handed out or mid-step. */
static void stmt_cache_threads(void **state)
{
    fixture *f = *state;
    util_error err = {0};
    char dir[128];
    store_ca *ca = NULL;
    snprintf(dir, sizeof dir, "%s/cache", f->base);
    assert_int_equal(store_ca_open(dir, true, &ca, &err), 0);
    assert_int_equal(store_ca_setting_set(ca, "shared", "v", &err), 0);
    json_t *doc = json_pack("{s:i}", "n", 7);
    assert_int_equal(store_doc_put(f->st, "shared", doc, "admin", NULL, NULL, &err), 0);
    json_decref(doc);
    cache_worker w[CACHE_THREADS];
    pthread_t t[CACHE_THREADS];
    for (int i = 0; i < CACHE_THREADS; i++) {
        w[i] = (cache_worker){.st = f->st, .ca = ca, .index = i};
        assert_int_equal(pthread_create(&t[i], NULL, cache_work, &w[i]), 0);
    }
    for (int i = 0; i < CACHE_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < CACHE_THREADS; i++)
        assert_int_equal(w[i].fails, 0);
    const int writes = CACHE_THREADS * (CACHE_ITERATIONS / CACHE_WRITE_EVERY);
    int n = 0;
    assert_int_equal(store_ca_request_each(ca, STORE_CA_PENDING, 100000, count_request, &n, &err), 0);
    assert_int_equal(n, writes);
    json_t *audit = NULL;
    assert_int_equal(store_audit_list(f->st, 0, &audit, &err), 0);
    assert_int_equal(json_array_size(audit), writes);
    json_decref(audit);
    int stepping = -1;
    assert_true(open_statements(f->st, &stepping) <= STORE_STMT_CACHE);
    assert_int_equal(stepping, 0);
    store_ca_close(ca);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_names_round_trip),
        T(ca_store_open_modes_and_migration),
        T(ca_store_old_file_migrates),
        T(stores_refuse_symlinked_file),
        T(ca_store_operations),
        T(ca_store_group_commit),
        T(test_open_modes),
        T(test_open_tightens_loose_modes),
        T(test_open_fails_on_file_as_dir),
        T(test_key_storage),
        T(test_reopen_keeps_data),
        T(test_newer_schema_refused),
        T(test_upgrade_from_schema1),
        T(test_docs),
        T(test_request_insert_get_update),
        T(test_request_list),
        T(test_request_rejects_bad_state),
        T(test_acquire),
        T(test_acquire_store_full),
        T(test_acquire_name_taken),
        T(test_register_all_replaces),
        T(test_register_all_atomic),
        T(test_key_delete),
        T(test_key_rename),
        T(test_delete_acquired_key_fails_request),
        T(test_binding_to_missing_key),
        T(test_consistency_dangling_binding),
        T(test_consistency_acquired_request_without_key),
        T(test_users),
        T(test_sessions),
        T(test_audit_has_no_secrets),
        T(test_ca_certs),
        T(test_clear_accepts_null_and_zeroed),
        T(test_two_threads),
        T(stmt_cache_hit_clears_bindings),
        T(stmt_cache_reused_buffer),
        T(stmt_cache_in_use),
        T(stmt_cache_eviction),
        T(stmt_cache_checkpoint_truncates),
        T(stmt_cache_close),
        T(stmt_cache_threads),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
