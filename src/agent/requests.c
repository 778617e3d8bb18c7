/* Issuance requests as the API sees them: create, read, list; and what
 * happens when a run ends. */
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "util/log.h"

static json_t *error_json(const char *code, const char *detail)
{
    if (!code || !code[0])
        return json_null();
    util_err e = util_err_from_code(code);
    return json_pack("{s:s, s:s, s:s, s:s}", "code", code, "message", util_err_message(e), "remedy",
                     util_err_remedy(e), "detail", detail ? detail : "");
}

/* What the Remote UI shows for each state (the names are store_state_name's). */
static const char *state_text(store_state state)
{
    static const char *const texts[STORE_STATE_COUNT] = {
        [STORE_STATE_GENERATING_KEY] = "generating the key pair",
        [STORE_STATE_CONTACTING_SERVER] = "contacting the SCEP server",
        [STORE_STATE_SENT] = "request sent, waiting for the answer",
        [STORE_STATE_PENDING] = "deferred by the server; polling",
        [STORE_STATE_ACQUIRED] = "acquired; restart to register",
    };
    /* states without a text of their own are shown by name */
    return (unsigned)state < STORE_STATE_COUNT && texts[state] ? texts[state] : store_state_name(state);
}

/* How often the request went to the server: `attempts` counts the retries
 * and polls scheduled after an exchange, so a request with a next try set
 * (waiting, or trying again) or cancelled has made exactly `attempts`, and
 * the first exchange under way or the one that ended it is one more. */
static int tries_of(const store_request *r)
{
    if (r->next_attempt_at)
        return r->attempts;
    switch (r->state) {
    case STORE_STATE_CONTACTING_SERVER:
    case STORE_STATE_SENT:
    case STORE_STATE_ACQUIRED:
    case STORE_STATE_REGISTERED:
    case STORE_STATE_FAILED: return r->attempts + 1;
    default: return r->attempts;
    }
}

json_t *agent_request_json(const store_request *r)
{
    json_t *params = r->params ? json_deep_copy(r->params) : json_object();
    /* a pending or failed request keeps its last error for display */
    json_t *error = error_json(r->error_code, r->error_detail);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:i}", "id",
                     (json_int_t)r->id, "kind", r->kind, "state", store_state_name(r->state), "status_text",
                     state_text(r->state), "key_name", r->key_name, "transaction_id",
                     r->transaction_id[0] ? json_string(r->transaction_id) : json_null(), "created_at",
                     agent_time_json(r->created_at), "updated_at", agent_time_json(r->updated_at), "attempts",
                     r->attempts, "next_attempt_at", agent_time_json(r->next_attempt_at), "error", error,
                     "params", params, "tries", tries_of(r));
}

json_t *agent_request_get(agent *a, int64_t id, util_error *err)
{
    store_request r;
    if (store_request_get(a->st, id, &r, err) != 0)
        return NULL;
    json_t *j = agent_request_json(&r);
    store_request_clear(&r);
    return j;
}

json_t *agent_request_list(agent *a, util_error *err)
{
    store_request *rows = NULL;
    size_t n = 0;
    if (store_request_list(a->st, 100, false, &rows, &n, err) != 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, agent_request_json(&rows[i]));
        store_request_clear(&rows[i]);
    }
    free(rows);
    return arr;
}

int agent_key_store_check(agent *a, util_error *err)
{
    int registered = 0, acquired = 0;
    if (store_key_count_states(a->st, &registered, &acquired, err) != 0)
        return -1;
    if (registered + acquired < a->cfg.max_keys)
        return 0;
    return util_error_set(
        err, UTIL_ERR_KEY_STORE_FULL,
        "%d of %d key pairs stored: %d registered and %d acquired pairs waiting for restart; "
        "restart or delete one",
        registered + acquired, a->cfg.max_keys, registered, acquired);
}

/* A renewal's signer: the old pair's key, sealed again for the request's
 * row (its AAD names the row, so it is sealed once the row has its id). */
static int renewal_signer(agent *a, store_request *r, const store_key *renew, util_error *err)
{
    char *sealed = NULL;
    if (agent_reseal_pair_to_request(a, renew, r, &sealed, err) != 0)
        return -1;
    r->signer_key_sealed = sealed;
    r->signer_cert_pem = strdup(renew->cert_pem);
    if (!r->signer_cert_pem)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    return store_request_update(a->st, r, err);
}

/* Inserts a request row and starts it. The challenge is sealed with the
 * secrets key and wiped from the row once the server answered. A renewal's
 * signer is written right after the insert: a crash between the two
 * leaves a queued request without it, which enrolls as a first request
 * (self-signed signer) instead of a renewal. */
int agent_request_insert(agent *a, const char *kind, const agent_key_params *p, const char *key_name,
                         const char *replaces, const store_key *renew, const char *user,
                         const json_t *auto_state, int64_t *id, util_error *err)
{
    store_request r;
    memset(&r, 0, sizeof r);
    int rc = -1;
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    r.state = STORE_STATE_QUEUED;
    snprintf(r.key_name, sizeof r.key_name, "%s", key_name);
    snprintf(r.replaces, sizeof r.replaces, "%s", replaces ? replaces : "");
    agent_key_params stored = *p;
    snprintf(stored.key_name, sizeof stored.key_name, "%s", key_name);
    r.params = agent_key_params_json(&stored);
    json_object_del(r.params, "challenge_password_set");
    OPENSSL_cleanse(stored.challenge, sizeof stored.challenge);
    r.created_at = r.updated_at = agent_now(a);
    if (p->challenge[0] && crypto_seal(a->seal_key, (const uint8_t *)p->challenge, strlen(p->challenge),
                                       &r.challenge_sealed, &r.challenge_sealed_len, err) != 0)
        goto out;
    if ((auto_state ? store_request_insert_with_doc(a->st, &r, user, "auto_state", auto_state, err)
                    : store_request_insert(a->st, &r, user, err)) != 0)
        goto out;
    *id = r.id;
    if (renew && renewal_signer(a, &r, renew, err) != 0) {
        /* the row exists: it ends failed rather than resume as a first request */
        util_error ignored;
        free(r.signer_key_sealed);
        r.signer_key_sealed = NULL;
        r.state = STORE_STATE_FAILED;
        snprintf(r.error_code, sizeof r.error_code, "%s", util_err_code(err->code));
        snprintf(r.error_detail, sizeof r.error_detail, "renewal signer: %.480s", err->detail);
        if (store_request_update(a->st, &r, &ignored) != 0)
            log_error("request %lld: could not record its failure: %s", (long long)r.id, ignored.detail);
        goto out;
    }
    log_info("request %lld created by %s for key \"%s\"", (long long)r.id, user, key_name);
    if (agent_run_start(a, &r, err) != 0)
        goto out;
    rc = 0;
out:
    store_request_clear(&r);
    return rc;
}

int agent_request_create(agent *a, const json_t *in, const char *user, int64_t *id, util_error *err)
{
    agent_key_params p;
    if (a->autoreq.enabled && !agent_auto_done(a))
        return util_error_set(err, UTIL_ERR_AUTO_REQUEST_ENABLED, "the auto request timer is on");
    if (a->run)
        return util_error_set(err, UTIL_ERR_REQUEST_BUSY, "request in progress");
    /* before anything is generated or sent */
    if (agent_key_store_check(a, err) != 0)
        return -1;
    if (agent_parse_key_params(in, &p, err) != 0)
        return -1;
    if (agent_subject_charset_check(&p, a->settings.subject_utf8, "", err) != 0) {
        OPENSSL_cleanse(p.challenge, sizeof p.challenge);
        return -1;
    }
    store_key existing;
    util_error lookup;
    if (store_key_get(a->st, p.key_name, &existing, &lookup) == 0) {
        store_key_clear(&existing);
        OPENSSL_cleanse(p.challenge, sizeof p.challenge);
        return util_error_set(err, UTIL_ERR_KEY_NAME_TAKEN, "key_name: \"%s\" exists", p.key_name);
    }
    if (!a->settings.url[0]) {
        OPENSSL_cleanse(p.challenge, sizeof p.challenge);
        return util_error_set(err, UTIL_ERR_INVALID_FIELD,
                              "url: set the SCEP server's URL in the communication settings first");
    }
    int rc = agent_request_insert(a, "manual", &p, p.key_name, NULL, NULL, user, NULL, id, err);
    OPENSSL_cleanse(p.challenge, sizeof p.challenge);
    return rc;
}

void agent_reap_runs(agent *a)
{
    for (size_t i = 0; i < a->finished_count; i++)
        agent_run_free(a->finished[i]);
    a->finished_count = 0;
}

void agent_run_release(agent *a, agent_run *run)
{
    for (size_t i = 0; i < a->orphan_count; i++)
        if (a->orphans[i] == run) {
            a->orphans[i] = a->orphans[--a->orphan_count];
            break;
        }
    agent_run **grown = realloc(a->finished, (a->finished_count + 1) * sizeof *grown);
    if (grown) {
        a->finished = grown;
        a->finished[a->finished_count++] = run;
    } else {
        log_error("could not release a request run");
    }
    struct timeval now = {0, 0};
    event_add(a->reaper, &now);
}

void agent_request_cancelled(agent *a, store_request *row)
{
    free(row->key_sealed);
    row->key_sealed = NULL;
    free(row->signer_key_sealed);
    row->signer_key_sealed = NULL;
    if (row->challenge_sealed)
        OPENSSL_cleanse(row->challenge_sealed, row->challenge_sealed_len);
    free(row->challenge_sealed);
    row->challenge_sealed = NULL;
    row->challenge_sealed_len = 0;
    row->state = STORE_STATE_CANCELLED;
    row->next_attempt_at = 0;
    row->error_code[0] = row->error_detail[0] = '\0';
    row->updated_at = agent_now(a);
}

int agent_request_cancel(agent *a, int64_t id, const char *user, util_error *err)
{
    store_request r;
    if (store_request_get(a->st, id, &r, err) != 0)
        return -1;
    store_state was = r.state;
    int rc = -1;
    if (was == STORE_STATE_ACQUIRED || was == STORE_STATE_REGISTERED || was == STORE_STATE_FAILED ||
        was == STORE_STATE_CANCELLED) {
        util_error_set(err, UTIL_ERR_REQUEST_FINISHED, "request %lld is %s", (long long)id,
                       store_state_name(was));
        goto out;
    }
    if (a->run && agent_run_id(a->run) == id) {
        rc = agent_run_cancel(a->run, err);
    } else { /* a request not running (another one ran when the daemon resumed) */
        agent_request_cancelled(a, &r);
        rc = store_request_update(a->st, &r, err);
        if (rc == 0 && !strcmp(r.kind, "auto"))
            agent_auto_request_done(a, id, STORE_STATE_CANCELLED, NULL);
    }
    if (rc != 0)
        goto out;
    char detail[96];
    snprintf(detail, sizeof detail, "request %lld cancelled (was %s)", (long long)id, store_state_name(was));
    log_info("%s by %s", detail, user);
    util_error audit_err;
    if (store_audit_add(a->st, user, "request.cancel", detail, &audit_err) != 0)
        log_error("request %lld: audit line not written: %s", (long long)id, audit_err.detail);
out:
    store_request_clear(&r);
    return rc;
}

void agent_run_finished(agent *a, int64_t request_id, store_state state, const util_error *err)
{
    agent_run *run = a->run;
    a->run = NULL;
    /* the run's own callback is still on the stack: free it from the loop */
    if (run)
        agent_run_release(a, run);
    if (state == STORE_STATE_ACQUIRED || state == STORE_STATE_FAILED)
        a->metric_requests[state == STORE_STATE_ACQUIRED ? 0 : 1]++;
    store_request r;
    util_error e;
    bool is_auto = false;
    if (store_request_get(a->st, request_id, &r, &e) == 0) {
        is_auto = !strcmp(r.kind, "auto");
        store_request_clear(&r);
    }
    if (is_auto)
        agent_auto_request_done(a, request_id, state, err);
    if (state == STORE_STATE_ACQUIRED && is_auto && a->autoreq.auto_restart) {
        json_t *result = NULL;
        if (agent_restart(a, "auto-restart", &result, &e) != 0)
            log_error("automatic restart after acquisition failed: %s", e.detail);
        json_decref(result);
    }
    agent_schedule(a);
}
