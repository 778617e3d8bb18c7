/*
 * The auto request: a timer that sends an issuance request at a set date and
 * time, optionally shifted by a uniform random delay of 0-600 s (drawn once
 * per run and shown), retried while the server defers it or cannot be
 * reached, repeated every N days, renewing with the previous pair's
 * certificate and, with delete-old, replacing that pair at registration.
 * The next run is persisted: a run missed while the daemon was down happens
 * at start-up.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "util/codec.h"
#include "util/log.h"

#define DAY 86400

static json_t *state_json(const agent_auto_state *s)
{
    return json_pack("{s:I, s:i, s:I, s:i, s:s, s:I, s:s, s:s, s:i, s:I, s:s}", "base", (json_int_t)s->base,
                     "jitter_s", s->jitter_s, "next_run", (json_int_t)s->next_run, "attempts_left",
                     s->attempts_left, "last_result", s->last_result, "last_request_id",
                     (json_int_t)s->last_request_id, "current_key", s->current_key, "renew_serial",
                     s->renew_serial, "renew_jitter_s", s->renew_jitter_s, "renew_at",
                     (json_int_t)s->renew_at, "renewed_serial", s->renewed_serial);
}

static void state_from_json(const json_t *j, agent_auto_state *s)
{
    memset(s, 0, sizeof *s);
    s->base = json_integer_value(json_object_get(j, "base"));
    s->jitter_s = (int)json_integer_value(json_object_get(j, "jitter_s"));
    s->next_run = json_integer_value(json_object_get(j, "next_run"));
    s->attempts_left = (int)json_integer_value(json_object_get(j, "attempts_left"));
    s->last_request_id = json_integer_value(json_object_get(j, "last_request_id"));
    const char *r = json_string_value(json_object_get(j, "last_result"));
    const char *k = json_string_value(json_object_get(j, "current_key"));
    snprintf(s->last_result, sizeof s->last_result, "%s", r ? r : "");
    snprintf(s->current_key, sizeof s->current_key, "%s", k ? k : "");
    const char *rs = json_string_value(json_object_get(j, "renew_serial"));
    const char *rd = json_string_value(json_object_get(j, "renewed_serial"));
    snprintf(s->renew_serial, sizeof s->renew_serial, "%s", rs ? rs : "");
    snprintf(s->renewed_serial, sizeof s->renewed_serial, "%s", rd ? rd : "");
    s->renew_jitter_s = (int)json_integer_value(json_object_get(j, "renew_jitter_s"));
    s->renew_at = json_integer_value(json_object_get(j, "renew_at"));
}

int agent_auto_save_state(agent *a, util_error *err)
{
    json_t *doc = state_json(&a->auto_state);
    int rc = store_doc_put(a->st, "auto_state", doc, NULL, NULL, NULL, err);
    json_decref(doc);
    return rc;
}

static void defaults(agent_auto *a)
{
    memset(a, 0, sizeof *a);
    a->retries = 3;
    a->interval_s = 300;
    a->interval_days = 30;
}

/* The auto request's challenge stays sealed in memory (a->auto_challenge_sealed)
 * and is opened only when a run starts (agent_auto_fire). */
static void replace_sealed(agent *a, uint8_t *sealed, size_t len)
{
    if (a->auto_challenge_sealed)
        OPENSSL_clear_free(a->auto_challenge_sealed, a->auto_challenge_sealed_len);
    a->auto_challenge_sealed = sealed;
    a->auto_challenge_sealed_len = sealed ? len : 0;
}

/* Opens the sealed challenge into params->challenge; nothing sealed: "". */
static int unseal_challenge(agent *a, agent_key_params *params, util_error *err)
{
    uint8_t *pw = NULL;
    size_t pw_len = 0;
    params->challenge[0] = '\0';
    if (!a->auto_challenge_sealed)
        return 0;
    if (crypto_unseal(a->seal_key, a->auto_challenge_sealed, a->auto_challenge_sealed_len, &pw, &pw_len,
                      err) != 0)
        return -1;
    int rc = 0;
    if (pw_len >= sizeof params->challenge)
        rc = util_error_set(err, UTIL_ERR_STORE, "auto_request: the sealed challenge is too long");
    else
        snprintf(params->challenge, sizeof params->challenge, "%.*s", (int)pw_len, (char *)pw);
    OPENSSL_clear_free(pw, pw_len);
    return rc;
}

int agent_auto_load(agent *a, util_error *err)
{
    json_t *doc = NULL, *state = NULL;
    defaults(&a->autoreq);
    if (store_doc_get(a->st, "auto_request", &doc, err) != 0 ||
        store_doc_get(a->st, "auto_state", &state, err) != 0) {
        json_decref(doc);
        return -1;
    }
    int rc = 0;
    if (doc) {
        json_t *sealed = json_object_get(doc, "challenge_sealed");
        json_t *config = json_deep_copy(doc);
        json_object_del(config, "challenge_sealed");
        json_t *key = json_object_get(config, "key");
        if (json_is_object(key))
            json_object_del(key, "challenge_password_set");
        agent_auto cur;
        defaults(&cur);
        rc = agent_parse_auto(config, &cur, &a->autoreq, err);
        json_decref(config);
        const char *b64 = json_string_value(sealed);
        if (rc == 0 && sealed && !b64)
            rc = util_error_set(err, UTIL_ERR_STORE, "auto_request: challenge_sealed is not a string");
        if (rc == 0 && b64) {
            uint8_t *raw = NULL;
            size_t raw_len = 0;
            /* a challenge that cannot be read back is an error, never "no challenge" */
            if (util_base64_decode(b64, strlen(b64), &raw, &raw_len) != 0 || raw_len == 0) {
                free(raw);
                rc =
                    util_error_set(err, UTIL_ERR_STORE, "auto_request: challenge_sealed is not valid base64");
            } else {
                replace_sealed(a, raw, raw_len);
                /* opened once here so that a seal that does not open fails the start,
                 * not the first run; the plaintext is wiped at once */
                agent_key_params probe;
                rc = unseal_challenge(a, &probe, err);
                OPENSSL_cleanse(probe.challenge, sizeof probe.challenge);
            }
        }
    }
    if (state)
        state_from_json(state, &a->auto_state);
    json_decref(doc);
    json_decref(state);
    return rc;
}

static void next_key_name(agent *a, char *out, size_t len);

bool agent_auto_done(const agent *a)
{
    /* an enabled timer always has a next run until its one run has fired;
     * while that run goes on (polls, retries) the timer is not done yet */
    return a->autoreq.enabled && a->auto_state.next_run == 0 && !(a->run && agent_run_is_auto(a->run));
}

json_t *agent_auto_get(agent *a, util_error *err)
{
    (void)err;
    json_t *j = agent_auto_json(&a->autoreq);
    json_object_set_new(json_object_get(j, "key"), "challenge_password_set",
                        json_boolean(a->auto_challenge_sealed != NULL));
    const agent_auto_state *s = &a->auto_state;
    json_object_set_new(j, "next_run", a->autoreq.enabled ? agent_time_json(s->next_run) : json_null());
    json_object_set_new(j, "done", json_boolean(agent_auto_done(a)));
    json_object_set_new(j, "jitter_s", json_integer(s->jitter_s));
    json_object_set_new(j, "last_result", s->last_result[0] ? json_string(s->last_result) : json_null());
    json_object_set_new(j, "attempts_left", json_integer(s->attempts_left));
    json_object_set_new(j, "last_request_id",
                        s->last_request_id ? json_integer(s->last_request_id) : json_null());
    json_object_set_new(j, "renew_at", a->autoreq.enabled ? agent_time_json(s->renew_at) : json_null());
    char next_name[AGENT_NAME_MAX + 1];
    next_key_name(a, next_name, sizeof next_name);
    json_object_set_new(j, "next_key_name", next_name[0] ? json_string(next_name) : json_null());
    return j;
}

/* The stored document: the configuration plus the sealed challenge. */
static json_t *auto_doc(const agent_auto *cfg, const uint8_t *sealed, size_t len, util_error *err)
{
    json_t *doc = agent_auto_json(cfg);
    if (!doc)
        return NULL;
    if (sealed) {
        char *b64 = util_base64_encode(sealed, len);
        /* storing the request without its challenge would silently drop it */
        if (!b64 || json_object_set_new(doc, "challenge_sealed", json_string(b64)) != 0) {
            free(b64);
            json_decref(doc);
            util_error_set(err, UTIL_ERR_INTERNAL, "out of memory sealing the challenge");
            return NULL;
        }
        free(b64);
    }
    return doc;
}

static void arm_run(agent *a, int64_t base)
{
    agent_auto_state *s = &a->auto_state;
    s->base = base;
    s->jitter_s = a->autoreq.auto_adjust ? (int)agent_random(a, AGENT_JITTER_MAX_S + 1) : 0;
    s->next_run = base ? base + s->jitter_s : 0;
}

int agent_auto_put(agent *a, const json_t *in, const char *user, util_error *err)
{
    agent_auto next;
    if (agent_parse_auto(in, &a->autoreq, &next, err) != 0)
        return -1;
    json_t *key_in = json_object_get(in, "key");
    if (key_in && !json_is_null(key_in) &&
        agent_subject_charset_check(&next.key, a->settings.subject_utf8, "key.", err) != 0) {
        OPENSSL_cleanse(next.key.challenge, sizeof next.key.challenge);
        return -1;
    }
    int64_t now = agent_now(a);
    /* As on the device, switching periodic requests on resets the start to now. */
    if (next.periodic && !a->autoreq.periodic && next.enabled)
        next.start = now - now % 60;
    /* the challenge: a new one sealed now, removed, or the sealed one kept */
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    if (next.key.challenge_set && next.key.challenge[0]) {
        int sealed_rc = crypto_seal(a->seal_key, (const uint8_t *)next.key.challenge,
                                    strlen(next.key.challenge), &sealed, &sealed_len, err);
        OPENSSL_cleanse(next.key.challenge, sizeof next.key.challenge);
        if (sealed_rc != 0)
            return -1;
    } else if (!next.key.challenge_set && a->auto_challenge_sealed) {
        if (!(sealed = malloc(a->auto_challenge_sealed_len)))
            return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        memcpy(sealed, a->auto_challenge_sealed, a->auto_challenge_sealed_len);
        sealed_len = a->auto_challenge_sealed_len;
    }
    OPENSSL_cleanse(next.key.challenge, sizeof next.key.challenge);
    json_t *doc = auto_doc(&next, sealed, sealed_len, err);
    if (!doc) {
        free(sealed);
        return -1;
    }
    char detail[200];
    snprintf(detail, sizeof detail, "enabled=%d periodic=%d interval_days=%d auto_restart=%d delete_old=%d",
             next.enabled, next.periodic, next.interval_days, next.auto_restart, next.delete_old);
    /* the configuration and the schedule it implies are written together: a
     * crash in between must not leave an enabled timer without a next run */
    agent_auto_state saved = a->auto_state, *st = &a->auto_state;
    agent_auto previous = a->autoreq;
    a->autoreq = next;
    arm_run(a, next.enabled ? next.start : 0);
    st->attempts_left = 0;
    json_t *state = state_json(st);
    const char *names[] = {"auto_request", "auto_state"};
    const json_t *docs[] = {doc, state};
    int rc = state ? store_docs_put(a->st, names, docs, 2, user, "auto_request.update", detail, err) : -1;
    json_decref(doc);
    json_decref(state);
    if (rc != 0) {
        a->autoreq = previous;
        a->auto_state = saved;
        free(sealed);
    } else {
        replace_sealed(a, sealed, sealed_len);
        /* the kept configuration carries no challenge: a later update without
         * one keeps the sealed copy */
        a->autoreq.key.challenge_set = false;
    }
    agent_schedule(a);
    return rc;
}

int64_t agent_schedule_following(const agent_auto *cfg, int64_t base, int64_t now)
{
    if (!cfg->periodic || cfg->interval_days <= 0)
        return 0;
    int64_t step = (int64_t)cfg->interval_days * DAY;
    int64_t next = base + step;
    if (next <= now) /* periods missed while down: one run happened now, skip the rest */
        next += ((now - next) / step + 1) * step;
    return next;
}

static bool key_exists(agent *a, const char *name, store_key *out)
{
    util_error err;
    store_key k;
    if (!name[0] || store_key_get(a->st, name, &k, &err) != 0)
        return false;
    if (out)
        *out = k;
    else
        store_key_clear(&k);
    return true;
}

/* key_name if free, else key_name2, key_name3, ... within 24 characters */
static int unique_name(agent *a, const char *base, char *out, size_t len)
{
    if (!key_exists(a, base, NULL)) {
        snprintf(out, len, "%s", base);
        return 0;
    }
    for (int i = 2; i < 1000; i++) {
        char suffix[8];
        int slen = snprintf(suffix, sizeof suffix, "%d", i);
        snprintf(out, len, "%.*s%s", AGENT_NAME_MAX - slen, base, suffix);
        if (!key_exists(a, out, NULL))
            return 0;
    }
    return -1;
}

/* rearm: schedule the date-and-period run after this one (a renewal
 * leaves that schedule as it is) */
static int fire(agent *a, bool rearm, util_error *err)
{
    agent_auto_state *s = &a->auto_state;
    const agent_auto *cfg = &a->autoreq;
    int64_t now = agent_now(a);
    store_key old;
    memset(&old, 0, sizeof old);
    bool renew = (key_exists(a, s->current_key, &old) || key_exists(a, cfg->key.key_name, &old)) &&
                 old.state == STORE_STATE_REGISTERED;
    char name[AGENT_NAME_MAX + 1];
    int64_t id = 0;
    /* a full store is seen before any key is generated or anything sent */
    int rc = agent_key_store_check(a, err);
    if (rc == 0 && (rc = unique_name(a, cfg->key.key_name, name, sizeof name)) != 0)
        util_error_set(err, UTIL_ERR_KEY_NAME_TAKEN, "no free name for \"%s\"", cfg->key.key_name);
    /* the following run is scheduled in the same transaction that inserts
     * this one, so a crash can neither repeat nor lose a run */
    if (rearm)
        arm_run(a, agent_schedule_following(cfg, s->base ? s->base : now, now));
    s->attempts_left = cfg->polling ? cfg->retries : 0;
    if (rc == 0) {
        log_info("auto request starts for key \"%s\"%s%s", name, renew ? ", renewing " : "",
                 renew ? old.name : "");
        json_t *state = state_json(s);
        /* the challenge is opened for the moment the request row seals it again */
        agent_key_params key = cfg->key;
        if (!state)
            rc = util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        else if ((rc = unseal_challenge(a, &key, err)) == 0)
            rc = agent_request_insert(a, "auto", &key, name, renew && cfg->delete_old ? old.name : NULL,
                                      renew ? &old : NULL, "auto-request", state, &id, err);
        OPENSSL_cleanse(key.challenge, sizeof key.challenge);
        json_decref(state);
    }
    if (id)
        s->last_request_id = id;
    if (rc != 0 && !id)
        snprintf(s->last_result, sizeof s->last_result, "%s", util_err_code(err->code));
    store_key_clear(&old);
    util_error save_err;
    if (agent_auto_save_state(a, &save_err) != 0)
        log_error("could not save the auto request schedule: %s", save_err.detail);
    return rc;
}

int agent_auto_fire(agent *a, util_error *err)
{
    return fire(a, true, err);
}

bool agent_auto_takes_old_name(agent *a, int64_t request_id)
{
    store_request r;
    util_error err;
    if (!a->autoreq.renew_replace || !request_id || store_request_get(a->st, request_id, &r, &err) != 0)
        return false;
    bool yes = !strcmp(r.kind, "auto");
    store_request_clear(&r);
    return yes;
}

/* The name the next run's pair will carry once registered: the old pair's
 * when it renews with delete_old and renew_key_name "replace", else the key
 * name or, while that exists, the first free numbered one. */
static void next_key_name(agent *a, char *out, size_t len)
{
    const agent_auto *cfg = &a->autoreq;
    store_key old;
    out[0] = '\0';
    if (!cfg->key.key_name[0])
        return;
    bool renew = (key_exists(a, a->auto_state.current_key, &old) || key_exists(a, cfg->key.key_name, &old));
    if (renew) {
        if (old.state == STORE_STATE_REGISTERED && cfg->delete_old && cfg->renew_replace)
            snprintf(out, len, "%.24s", old.name);
        store_key_clear(&old);
        if (out[0])
            return;
    }
    if (unique_name(a, cfg->key.key_name, out, len) != 0)
        out[0] = '\0';
}

/* The registered certificate the auto request renews: the pair it made
 * last, else the pair of its key name. */
static bool renewed_cert(agent *a, X509 **out)
{
    store_key k;
    util_error err;
    *out = NULL;
    if (!(key_exists(a, a->auto_state.current_key, &k) || key_exists(a, a->autoreq.key.key_name, &k)))
        return false;
    if (k.state == STORE_STATE_REGISTERED && k.cert_pem &&
        crypto_cert_load((const uint8_t *)k.cert_pem, strlen(k.cert_pem), out, &err) != 0)
        *out = NULL; /* an unreadable certificate is not renewed by its lifetime */
    store_key_clear(&k);
    return *out != NULL;
}

void agent_auto_renew_arm(agent *a)
{
    agent_auto_state *s = &a->auto_state;
    X509 *cert = NULL;
    if (!a->autoreq.enabled || !a->autoreq.renew_pct || !renewed_cert(a, &cert)) {
        s->renew_at = 0;
        return;
    }
    crypto_cert_info info;
    crypto_cert_info_get(cert, &info);
    X509_free(cert);
    const char *serial = info.serial;
    int64_t not_before = info.not_before, not_after = info.not_after;
    if (!strcmp(serial, s->renewed_serial) || not_after <= not_before) { /* renewed once already */
        s->renew_at = 0;
        return;
    }
    if (strcmp(serial, s->renew_serial) != 0) { /* a new certificate: a new random delay */
        snprintf(s->renew_serial, sizeof s->renew_serial, "%s", serial);
        s->renew_jitter_s = a->autoreq.auto_adjust ? (int)agent_random(a, AGENT_JITTER_MAX_S + 1) : 0;
    }
    int64_t left = (not_after - not_before) * a->autoreq.renew_pct / 100;
    s->renew_at = not_after - left + s->renew_jitter_s;
}

int agent_auto_fire_renewal(agent *a, util_error *err)
{
    agent_auto_state *s = &a->auto_state;
    log_info("auto request: the certificate with serial %s has %d %% of its lifetime left", s->renew_serial,
             a->autoreq.renew_pct);
    snprintf(s->renewed_serial, sizeof s->renewed_serial, "%s", s->renew_serial);
    s->renew_at = 0;
    return fire(a, false, err);
}

void agent_auto_request_done(agent *a, int64_t id, store_state state, const util_error *err)
{
    agent_auto_state *s = &a->auto_state;
    store_request r;
    util_error e;
    if (state == STORE_STATE_ACQUIRED && store_request_get(a->st, id, &r, &e) == 0) {
        snprintf(s->current_key, sizeof s->current_key, "%.24s", r.key_name);
        store_request_clear(&r);
    }
    snprintf(s->last_result, sizeof s->last_result, "%s",
             err ? util_err_code(err->code) : store_state_name(state));
    s->attempts_left = 0;
    if (agent_auto_save_state(a, &e) != 0)
        log_error("could not save the auto request state: %s", e.detail);
}
