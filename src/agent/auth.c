/* Users, passwords (scrypt), login throttling and sessions. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "util/file.h"
#include "util/log.h"

/* Failed logins per (user, client address): three are free, then the wait
 * before the next attempt doubles from 1 s up to 5 minutes; a success or 15
 * quiet minutes forget them. No failure anywhere locks a user for others. */
#define LOGIN_FREE_FAILURES 3
#define LOGIN_MAX_WAIT_S 300
#define LOGIN_FORGET_S 900
#define LOGIN_THROTTLE_KEYS 1024

int agent_login_setup(agent *a, util_error *err)
{
    util_throttle_config cfg = {LOGIN_FREE_FAILURES, 1, LOGIN_MAX_WAIT_S, LOGIN_FORGET_S,
                                LOGIN_THROTTLE_KEYS};
    char random[33];
    if (!(a->login_throttle = util_throttle_new(&cfg)))
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (crypto_random_hex(random, 16) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "random password");
    int rc = crypto_password_hash(random, &a->dummy_hash, err);
    OPENSSL_cleanse(random, sizeof random);
    return rc;
}

const char *agent_role_name(agent_role role)
{
    return role == AGENT_ROLE_ADMIN ? "admin" : role == AGENT_ROLE_VIEWER ? "viewer" : "none";
}

static agent_role role_from(const char *name)
{
    return !strcmp(name, "admin")    ? AGENT_ROLE_ADMIN
           : !strcmp(name, "viewer") ? AGENT_ROLE_VIEWER
                                     : AGENT_ROLE_NONE;
}

#define LOGIN_CACHE_SECONDS 60
static int login_mac(agent *a, const char *user, const char *password, uint8_t mac[32])
{
    const char *parts[] = {user, password};
    return crypto_hmac_sha256(a->login_key, parts, 2, mac);
}

static bool login_cached(agent *a, const char *user, const char *password, int64_t now, agent_role *role)
{
    uint8_t mac[32];
    if (!user || !password || login_mac(a, user, password, mac) != 0)
        return false;
    for (size_t i = 0; i < sizeof a->login_cache / sizeof a->login_cache[0]; i++)
        if (a->login_cache[i].until > now && !strcmp(a->login_cache[i].user, user) &&
            CRYPTO_memcmp(a->login_cache[i].mac, mac, 32) == 0) {
            *role = a->login_cache[i].role;
            return true;
        }
    return false;
}

static void login_remember(agent *a, const char *user, const char *password, int64_t now, agent_role role)
{
    size_t slot = 0, n = sizeof a->login_cache / sizeof a->login_cache[0];
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(a->login_cache[i].user, user) || a->login_cache[i].until < a->login_cache[slot].until) {
            slot = i;
            if (!strcmp(a->login_cache[i].user, user))
                break;
        }
    }
    if (login_mac(a, user, password, a->login_cache[slot].mac) != 0)
        return;
    snprintf(a->login_cache[slot].user, sizeof a->login_cache[slot].user, "%s", user);
    a->login_cache[slot].role = role;
    a->login_cache[slot].until = now + LOGIN_CACHE_SECONDS;
}

static void login_forget(agent *a, const char *user)
{
    for (size_t i = 0; i < sizeof a->login_cache / sizeof a->login_cache[0]; i++)
        if (!strcmp(a->login_cache[i].user, user))
            memset(&a->login_cache[i], 0, sizeof a->login_cache[i]);
}

int agent_user_put(agent *a, const char *name, const char *password, agent_role role, const char *by,
                   util_error *err)
{
    if (!name || !*name || strlen(name) > 32 || !agent_key_name_valid(name))
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "user: must be 1-24 letters and digits");
    if (!password || strlen(password) < 8 || strlen(password) > 128)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "password: must be 8 to 128 characters");
    if (role == AGENT_ROLE_NONE)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "role: must be admin or viewer");
    store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "%s", name);
    snprintf(u.role, sizeof u.role, "%s", agent_role_name(role));
    if (crypto_password_hash(password, &u.password_hash, err) != 0)
        return -1;
    int rc = store_user_put(a->st, &u, err);
    store_user_clear(&u);
    login_forget(a, name);
    /* a new password or role ends every session of the user */
    util_error ended;
    if (rc == 0 && store_session_delete_user(a->st, name, &ended) != 0)
        log_warn("ending the sessions of user \"%s\": %s", name, ended.detail);
    if (rc == 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "user=%s role=%s", name, agent_role_name(role));
        util_error ignored;
        if (store_audit_add(a->st, by, "user.update", detail, &ignored) != 0)
            log_warn("audit: %s", ignored.detail);
    }
    return rc;
}

static void throttle_key(const char *user, const char *client, char *out, size_t len)
{
    snprintf(out, len, "%s\n%s", user, client && *client ? client : "-");
}

int agent_login_prepare(agent *a, const char *user, const char *password, const char *client,
                        agent_role *role, agent_login_check *check, util_error *err)
{
    store_user u;
    util_error lookup;
    int64_t now = agent_now(a);
    memset(check, 0, sizeof *check);
    if (!user || !password)
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "unknown user or wrong password");
    throttle_key(user, client, check->key, sizeof check->key);
    int64_t wait = util_throttle_wait(a->login_throttle, check->key, now);
    if (wait > 0)
        return util_error_set(err, UTIL_ERR_THROTTLED,
                              "too many failed logins from this address; retry in %lld s", (long long)wait);
    if (login_cached(a, user, password, now, role)) {
        util_throttle_success(a->login_throttle, check->key);
        return 0;
    }
    snprintf(check->user, sizeof check->user, "%s", user);
    snprintf(check->client, sizeof check->client, "%s", client ? client : "-");
    check->known = store_user_get(a->st, user, &u, &lookup) == 0;
    /* the same scrypt for an unknown name: the answer and its time do not
     * tell which user names exist */
    if (check->known) {
        snprintf(check->user, sizeof check->user, "%s", u.name);
        snprintf(check->role, sizeof check->role, "%s", u.role);
        check->hash = u.password_hash;
        u.password_hash = NULL;
        store_user_clear(&u);
    } else {
        check->hash = strdup(a->dummy_hash);
    }
    if (!check->hash)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    return AGENT_LOGIN_PENDING;
}

void agent_login_verify(agent_login_check *check, const char *password)
{
    check->ok = crypto_password_verify(password, check->hash) && check->known;
}

/* The password or role may have changed while the hash was checked on the
 * login thread: the answer holds only for the hash that was checked. */
static bool hash_unchanged(agent *a, agent_login_check *check)
{
    store_user u;
    util_error e;
    if (store_user_get(a->st, check->user, &u, &e) != 0)
        return false;
    bool same = u.password_hash && strcmp(u.password_hash, check->hash) == 0;
    if (same)
        snprintf(check->role, sizeof check->role, "%s", u.role);
    store_user_clear(&u);
    return same;
}

int agent_login_conclude(agent *a, agent_login_check *check, const char *password, agent_role *role,
                         util_error *err)
{
    int64_t now = agent_now(a);
    int rc = -1;
    if (check->ok && !hash_unchanged(a, check))
        check->ok = false;
    if (check->known) {
        util_error e;
        if (store_user_login_result(a->st, check->user, check->ok, 0, &e) != 0)
            log_warn("recording a login: %s", e.detail);
    }
    if (!check->ok) {
        util_throttle_failure(a->login_throttle, check->key, now);
        unsigned failures = util_throttle_failures(a->login_throttle, check->key, now);
        if (failures > LOGIN_FREE_FAILURES)
            log_warn("failed login %u for user \"%s\" from %s; the next try from there waits %lld s",
                     failures, check->user, check->client,
                     (long long)util_throttle_wait(a->login_throttle, check->key, now));
        else
            log_info("failed login for user \"%s\" from %s", check->user, check->client);
        util_error_set(err, UTIL_ERR_UNAUTHORIZED, "unknown user or wrong password");
        goto out;
    }
    util_throttle_success(a->login_throttle, check->key);
    *role = role_from(check->role);
    login_remember(a, check->user, password, now, *role);
    rc = 0;
out:
    agent_login_check_clear(check);
    return rc;
}

void agent_login_check_clear(agent_login_check *check)
{
    if (check->hash) {
        OPENSSL_cleanse(check->hash, strlen(check->hash));
        free(check->hash);
    }
    check->hash = NULL;
}

int agent_login(agent *a, const char *user, const char *password, const char *client, agent_role *role,
                util_error *err)
{
    agent_login_check check;
    int rc = agent_login_prepare(a, user, password, client, role, &check, err);
    if (rc != AGENT_LOGIN_PENDING) {
        agent_login_check_clear(&check);
        return rc;
    }
    agent_login_verify(&check, password);
    return agent_login_conclude(a, &check, password, role, err);
}

static void token_hash(const char *token, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
    util_hex(md, 32, out, 0);
}

int agent_session_new(agent *a, const char *user, char **token, char **csrf, util_error *err)
{
    char t[65], c[33];
    store_session s;
    memset(&s, 0, sizeof s);
    if (crypto_random_hex(t, 32) != 0 || crypto_random_hex(c, 16) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "random token");
    token_hash(t, s.token_hash);
    snprintf(s.user, sizeof s.user, "%s", user);
    snprintf(s.csrf, sizeof s.csrf, "%s", c);
    s.created_at = s.last_seen = agent_now(a);
    util_error e;
    if (store_session_expire(a->st, s.created_at - AGENT_SESSION_IDLE_S, &e) != 0)
        log_warn("expiring sessions: %s", e.detail);
    if (store_session_put(a->st, &s, err) != 0)
        return -1;
    *token = strdup(t);
    *csrf = strdup(c);
    OPENSSL_cleanse(t, sizeof t);
    if (!*token || !*csrf) {
        free(*token);
        free(*csrf);
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

int agent_session_check(agent *a, const char *token, char *user, agent_role *role, char *csrf,
                        util_error *err)
{
    char hash[65];
    store_session s;
    store_user u;
    int64_t now = agent_now(a);
    if (!token || strlen(token) != 64)
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "no valid session");
    token_hash(token, hash);
    util_error e;
    if (store_session_get(a->st, hash, &s, &e) != 0)
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "the session has ended; log in again");
    if (s.created_at + AGENT_SESSION_MAX_S < now) {
        if (store_session_delete(a->st, hash, &e) != 0)
            log_warn("ending a session: %s", e.detail);
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "the session ended after %d hours; log in again",
                              AGENT_SESSION_MAX_S / 3600);
    }
    if (s.last_seen + AGENT_SESSION_IDLE_S < now) {
        if (store_session_delete(a->st, hash, &e) != 0)
            log_warn("ending a session: %s", e.detail);
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED,
                              "the session expired after %d minutes idle; log in again",
                              AGENT_SESSION_IDLE_S / 60);
    }
    if (store_user_get(a->st, s.user, &u, &e) != 0)
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "the session's user no longer exists");
    *role = role_from(u.role);
    store_user_clear(&u);
    snprintf(user, 64, "%s", s.user);
    snprintf(csrf, 65, "%s", s.csrf);
    if (now - s.last_seen >= 30)
        if (store_session_touch(a->st, hash, now, &e) != 0)
            log_warn("refreshing a session: %s", e.detail);
    return 0;
}

void agent_session_end(agent *a, const char *token)
{
    char hash[65];
    util_error e;
    if (!token || strlen(token) != 64)
        return;
    token_hash(token, hash);
    if (store_session_delete(a->st, hash, &e) != 0)
        log_warn("ending a session: %s", e.detail);
}
