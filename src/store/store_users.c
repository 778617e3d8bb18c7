/*
 * Remote UI users and their sessions (see store.h). Passwords are stored
 * only as the caller's self-describing hash, sessions only as the hash of
 * their token.
 */
#include "store/store_internal.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define USER_NAME_SIZE sizeof(((store_user *)0)->name)
#define TOKEN_HASH_SIZE sizeof(((store_session *)0)->token_hash)

/* ---- users ---- */

void store_user_clear(store_user *u)
{
    if (!u)
        return;
    store_free_secret(u->password_hash);
    OPENSSL_cleanse(u, sizeof *u);
}

int store_user_put(store *st, const store_user *u, util_error *err)
{
    int rc = -1;
    if (!u)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_user_put: no user");
    if (store_check_name("user name", u->name, sizeof u->name, false, err) != 0 ||
        store_check_name("role", u->role, sizeof u->role, false, err) != 0)
        return -1;
    if (!u->password_hash || !*u->password_hash)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "user %s: no password hash", u->name);
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_run(st, err, "write user",
                  "INSERT INTO users (name, role, password_hash, failed_logins, locked_until, created_at,"
                  " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
                  " ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
                  " password_hash = excluded.password_hash, failed_logins = excluded.failed_logins,"
                  " locked_until = excluded.locked_until, updated_at = excluded.updated_at",
                  "tttiii", u->name, u->role, u->password_hash, (int64_t)u->failed_logins, u->locked_until,
                  store_now(st)) >= 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

int store_user_get(store *st, const char *name, store_user *out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_user u = {0};
    int rc = -1, row;
    if (store_check_name("user name", name, USER_NAME_SIZE, false, err) != 0 ||
        store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare_bound(st, err, &s,
                            "SELECT name, role, password_hash, failed_logins, locked_until FROM users"
                            " WHERE name = ?1",
                            "t", name) != 0 ||
        (row = store_step_row(st, s, "read user", err)) < 0)
        goto out;
    if (row == 0) {
        util_error_set(err, UTIL_ERR_NOT_FOUND, "user %s", name);
        goto out;
    }
    STORE_COL_FIXED(s, 0, u.name);
    STORE_COL_FIXED(s, 1, u.role);
    u.failed_logins = sqlite3_column_int(s, 3);
    u.locked_until = sqlite3_column_int64(s, 4);
    if (store_col_dup(s, 2, &u.password_hash) != 0) {
        store_oom(err);
        goto out;
    }
    rc = 0;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = u;
    else
        store_user_clear(&u);
    return rc;
}

int store_user_count(store *st, int *out, util_error *err)
{
    int64_t count = 0;
    if (store_tx_begin(st, false, err) != 0)
        return -1;
    int rc = store_query_int(st, err, "count users", &count, "SELECT count(*) FROM users", "");
    if (store_tx_end(st, rc < 0 ? -1 : 0, err) != 0)
        return -1;
    *out = (int)count;
    return 0;
}

/* A success resets the failure count, a failure adds one; both set
 * locked_until as given (the caller's throttling policy). */
int store_user_login_result(store *st, const char *name, bool success, int64_t locked_until, util_error *err)
{
    int rc = -1, changed;
    if (store_check_name("user name", name, USER_NAME_SIZE, false, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    changed = store_run(st, err, "record login",
                        success ? "UPDATE users SET failed_logins = 0, locked_until = ?2, updated_at = ?3"
                                  " WHERE name = ?1"
                                : "UPDATE users SET failed_logins = failed_logins + 1, locked_until = ?2,"
                                  " updated_at = ?3 WHERE name = ?1",
                        "tii", name, locked_until, store_now(st));
    if (changed == 0)
        util_error_set(err, UTIL_ERR_NOT_FOUND, "user %s", name);
    else if (changed > 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

/* ---- sessions ---- */

/* created_at 0 means now; last_seen 0 means created_at. */
int store_session_put(store *st, const store_session *s, util_error *err)
{
    int rc = -1;
    if (!s)
        return util_error_set(err, UTIL_ERR_INTERNAL, "store_session_put: no session");
    if (store_check_name("session token hash", s->token_hash, sizeof s->token_hash, false, err) != 0 ||
        store_check_name("user name", s->user, sizeof s->user, false, err) != 0 ||
        store_check_name("CSRF token", s->csrf, sizeof s->csrf, true, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    int64_t created = s->created_at ? s->created_at : store_now(st);
    if (store_run(st, err, "write session",
                  "INSERT INTO sessions (token_hash, user, csrf, created_at, last_seen)"
                  " VALUES (?1, ?2, ?3, ?4, ?5)",
                  "tttii", s->token_hash, s->user, s->csrf, created,
                  s->last_seen ? s->last_seen : created) >= 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

int store_session_get(store *st, const char *token_hash, store_session *out, util_error *err)
{
    sqlite3_stmt *s = NULL;
    store_session se = {0};
    int rc = -1, row;
    if (store_check_name("session token hash", token_hash, TOKEN_HASH_SIZE, false, err) != 0 ||
        store_tx_begin(st, false, err) != 0)
        return -1;
    if (store_prepare_bound(st, err, &s,
                            "SELECT token_hash, user, csrf, created_at, last_seen FROM sessions"
                            " WHERE token_hash = ?1",
                            "t", token_hash) != 0 ||
        (row = store_step_row(st, s, "read session", err)) < 0)
        goto out;
    if (row == 0) {
        util_error_set(err, UTIL_ERR_NOT_FOUND, "session");
        goto out;
    }
    STORE_COL_FIXED(s, 0, se.token_hash);
    STORE_COL_FIXED(s, 1, se.user);
    STORE_COL_FIXED(s, 2, se.csrf);
    se.created_at = sqlite3_column_int64(s, 3);
    se.last_seen = sqlite3_column_int64(s, 4);
    rc = 0;
out:
    store_finalize(st, s);
    rc = store_tx_end(st, rc, err);
    if (rc == 0)
        *out = se;
    OPENSSL_cleanse(&se, sizeof se);
    return rc;
}

/* NOT_FOUND when the session is gone (expired or logged out). */
int store_session_touch(store *st, const char *token_hash, int64_t now, util_error *err)
{
    int rc = -1, changed;
    if (store_check_name("session token hash", token_hash, TOKEN_HASH_SIZE, false, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    changed = store_run(st, err, "touch session", "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
                        "ti", token_hash, now);
    if (changed == 0)
        util_error_set(err, UTIL_ERR_NOT_FOUND, "session");
    else if (changed > 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

/* Deleting a session that is already gone succeeds (logging out twice). */
int store_session_delete(store *st, const char *token_hash, util_error *err)
{
    int rc = -1;
    if (store_check_name("session token hash", token_hash, TOKEN_HASH_SIZE, false, err) != 0 ||
        store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_run(st, err, "delete session", "DELETE FROM sessions WHERE token_hash = ?1", "t", token_hash) >=
        0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

int store_session_delete_user(store *st, const char *user, util_error *err)
{
    int rc = -1;
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_run(st, err, "delete sessions", "DELETE FROM sessions WHERE user = ?1", "t", user) >= 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}

/* Deletes the sessions last seen before idle_before. */
int store_session_expire(store *st, int64_t idle_before, util_error *err)
{
    int rc = -1;
    if (store_tx_begin(st, true, err) != 0)
        return -1;
    if (store_run(st, err, "expire sessions", "DELETE FROM sessions WHERE last_seen < ?1", "i",
                  idle_before) >= 0)
        rc = 0;
    return store_tx_end(st, rc, err);
}
