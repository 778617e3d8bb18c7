/*
 * An issuance request as a persisted state machine:
 *   queued -> generating_key -> contacting_server -> sent -> pending -> acquired -> registered
 *                                                      \-> failed (with a catalogue code)
 * and, from any state before acquired, -> cancelled (agent_request_cancel).
 * Every transition is written to the store before the next step starts, so
 * a restarted daemon resumes where it stopped: a key that was generated is
 * reused (same transactionID), a pending request is polled with CertPoll.
 */
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "util/log.h"
#include "util/ossl.h"

struct agent_run {
    agent *a;
    store_request row;
    agent_key_params params;
    bool is_auto;
    int max_attempts;
    int interval_s;
    client_config cfg;
    char *url;
    client_server srv;
    client_transaction t;
    client_result r;
    uint8_t *csr;
    size_t csr_len;
    client_async *op;
    int64_t due;
    /* key generation runs on a thread and reports through a pipe */
    pthread_t thread;
    bool thread_started;
    int pipe_fd[2];
    struct event *keygen_done;
    crypto_key_spec spec;
    EVP_PKEY *generated;    /* a proxy: the key is in the vault */
    char *generated_sealed; /* what the store keeps */
    util_error keygen_err;
    bool cancelled; /* an orphan: its thread or transfer is ignored when it comes back */
};

static void step_discover(agent_run *run);
static void step_send(agent_run *run);
static void step_poll(agent_run *run);

/* ---- persistence ---- */

static void finish(agent_run *run, store_state state, const util_error *err);

/* Writes the state before the next step starts. A write that fails ends
 * the run with that error: no step may run on a state the store lacks.
 * Returns 0, or -1 when the run has ended. */
static int set_state(agent_run *run, store_state state)
{
    run->row.state = state;
    run->row.updated_at = agent_now(run->a);
    util_error err;
    if (store_request_update(run->a->st, &run->row, &err) == 0)
        return 0;
    finish(run, STORE_STATE_FAILED, &err);
    return -1;
}

static void wipe_challenge(agent_run *run)
{
    if (run->row.challenge_sealed)
        OPENSSL_cleanse(run->row.challenge_sealed, run->row.challenge_sealed_len);
    free(run->row.challenge_sealed);
    run->row.challenge_sealed = NULL;
    run->row.challenge_sealed_len = 0;
    OPENSSL_cleanse(run->params.challenge, sizeof run->params.challenge);
}

static void finish(agent_run *run, store_state state, const util_error *err)
{
    run->due = 0;
    run->row.next_attempt_at = 0; /* an ended request is not attempted again */
    if (err) {
        snprintf(run->row.error_code, sizeof run->row.error_code, "%s", util_err_code(err->code));
        snprintf(run->row.error_detail, sizeof run->row.error_detail, "%s", err->detail);
        log_warn("request %lld failed: %s: %s", (long long)run->row.id, util_err_code(err->code),
                 err->detail);
    }
    wipe_challenge(run);
    /* an ended request keeps no key (the store writes none either) */
    free(run->row.key_sealed);
    run->row.key_sealed = NULL;
    free(run->row.signer_key_sealed);
    run->row.signer_key_sealed = NULL;
    run->row.state = state;
    run->row.updated_at = agent_now(run->a);
    util_error store_err;
    if (store_request_update(run->a->st, &run->row, &store_err) != 0) {
        /* the run ends all the same; the store's error is its outcome, and
         * the request resumes from its last saved state at the next start */
        log_error("request %lld: could not save state %s: %s: %s", (long long)run->row.id,
                  store_state_name(state), util_err_code(store_err.code), store_err.detail);
        agent_run_finished(run->a, run->row.id, STORE_STATE_FAILED, &store_err);
        return;
    }
    agent_run_finished(run->a, run->row.id, state, err);
}

static void fail(agent_run *run, const util_error *err)
{
    finish(run, STORE_STATE_FAILED, err);
}

static void fail_code(agent_run *run, util_err code, const char *detail)
{
    util_error err;
    util_error_set(&err, code, "%s", detail);
    fail(run, &err);
}

/* Communication errors and deferrals are retried while attempts remain. */
static void retry_or_fail(agent_run *run, const util_error *err, store_state state)
{
    /* manual requests poll while deferred; auto requests also retry unreachable servers */
    bool retryable = err->code == UTIL_ERR_PENDING || (run->is_auto && util_err_exit_class(err->code) == 4);
    if (!retryable || run->row.attempts >= run->max_attempts) {
        util_error final = *err;
        if (err->code == UTIL_ERR_PENDING)
            util_error_set(&final, UTIL_ERR_PENDING, "still pending after %d polls", run->row.attempts);
        fail(run, &final);
        return;
    }
    run->row.attempts++;
    run->row.next_attempt_at = agent_now(run->a) + run->interval_s;
    snprintf(run->row.error_code, sizeof run->row.error_code, "%s", util_err_code(err->code));
    snprintf(run->row.error_detail, sizeof run->row.error_detail, "%s", err->detail);
    run->due = run->row.next_attempt_at;
    if (set_state(run, state) != 0)
        return;
    if (err->code == UTIL_ERR_PENDING)
        run->a->metric_requests[2]++;
    log_info("request %lld: %s; attempt %d of %d in %d s", (long long)run->row.id, util_err_code(err->code),
             run->row.attempts, run->max_attempts, run->interval_s);
    agent_schedule(run->a);
}

/* ---- key generation, off the event loop ---- */

static void *keygen_thread(void *arg)
{
    agent_run *run = arg;
    char spec[32];
    crypto_key_spec_format(&run->spec, spec, sizeof spec);
    /* the vault generates and seals it; the link serialises its callers */
    if (agent_generate_request_key(run->a, run->row.id, "key_pem", run->row.key_name, spec,
                                   &run->generated_sealed, &run->generated, &run->keygen_err) != 0)
        run->generated = NULL;
    char done = 1;
    ssize_t n = write(run->pipe_fd[1], &done, 1);
    (void)n;
    return NULL;
}

static void on_keygen_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    agent_run *run = arg;
    pthread_join(run->thread, NULL);
    run->thread_started = false;
    if (run->cancelled) {
        agent_run_release(run->a, run);
        return;
    }
    if (!run->generated) {
        fail(run, &run->keygen_err);
        return;
    }
    run->row.key_sealed = run->generated_sealed;
    run->generated_sealed = NULL;
    run->t.new_key = run->generated;
    run->generated = NULL;
    if (set_state(run, STORE_STATE_CONTACTING_SERVER) == 0)
        step_discover(run);
}

static void step_keygen(agent_run *run)
{
    util_error err = {0};
    char spec[32];
    snprintf(spec, sizeof spec, "%s:%d", !strcmp(run->params.key_algorithm, "rsa") ? "rsa" : "ec",
             run->params.key_length);
    if (crypto_key_spec_parse(spec, &run->spec, &err) != 0 ||
        crypto_key_storage_parse(run->params.key_storage[0] ? run->params.key_storage : "software",
                                 &run->spec.storage) != 0) {
        if (!err.code)
            util_error_set(&err, UTIL_ERR_INVALID_FIELD, "key_storage: \"%s\"", run->params.key_storage);
        fail(run, &err);
        return;
    }
    if (set_state(run, STORE_STATE_GENERATING_KEY) != 0)
        return;
    if (pipe2(run->pipe_fd, O_CLOEXEC) != 0) {
        fail_code(run, UTIL_ERR_INTERNAL, "creating a pipe");
        return;
    }
    run->keygen_done = event_new(run->a->base, run->pipe_fd[0], EV_READ, on_keygen_done, run);
    if (!run->keygen_done || event_add(run->keygen_done, NULL) != 0 ||
        pthread_create(&run->thread, NULL, keygen_thread, run) != 0) {
        fail_code(run, UTIL_ERR_INTERNAL, "starting key generation");
        return;
    }
    run->thread_started = true;
}

/* ---- the CSR and the signer ---- */

/* The request's parameters as the CSR's; they borrow from run->params. */
static void csr_params(const agent_run *run, crypto_csr_params *c)
{
    const agent_key_params *p = &run->params;
    memset(c, 0, sizeof *c);
    c->common_name = p->common_name;
    c->organization = p->organization[0] ? p->organization : NULL;
    for (size_t i = 0; i < p->san_count; i++)
        c->sans[c->san_count++] = p->sans[i];
    for (size_t i = 0; i < p->eku_count; i++)
        c->ekus[c->eku_count++] = p->ekus[i];
    c->key_usage_set = true;
    c->key_usage = !strcmp(p->key_usage, "digital_signature")  ? CRYPTO_KU_DIGITAL_SIGNATURE
                   : !strcmp(p->key_usage, "key_encipherment") ? CRYPTO_KU_KEY_ENCIPHERMENT
                   : !strcmp(p->key_usage, "both")             ? CRYPTO_KU_BOTH
                                                               : CRYPTO_KU_NONE;
    c->challenge_password = p->challenge[0] ? p->challenge : NULL;
}

static int load_pem_cert(const char *pem, X509 **out, util_error *err)
{
    return crypto_cert_load((const uint8_t *)pem, strlen(pem), out, err);
}

/* A stored signer that is self-signed signed a first enrollment: its key,
 * when stored, is the temporary RSA signer of an EC request. A certificate
 * this CA issued is the pair being renewed. */
static bool stored_signer_is_renewal(const store_request *row)
{
    X509 *cert = NULL;
    util_error ignored;
    if (!row->signer_key_sealed || !row->signer_cert_pem ||
        load_pem_cert(row->signer_cert_pem, &cert, &ignored) != 0)
        return false;
    bool renewal = !crypto_cert_is_self_signed(cert);
    X509_free(cert);
    return renewal;
}

/* Records the first enrollment's signer (certificate, and a key other than
 * the new one) so that a resumed request signs its CertPolls the same way. */
static int remember_signer(agent_run *run, const X509 *stored_cert, const EVP_PKEY *stored_key,
                           char **new_signer_sealed, util_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    if (run->t.signer_cert != stored_cert) {
        if (crypto_cert_to_pem(run->t.signer_cert, &pem, &len, err) != 0)
            return -1;
        free(run->row.signer_cert_pem);
        run->row.signer_cert_pem = pem;
    }
    if (run->t.signer_key != run->t.new_key && run->t.signer_key != stored_key) {
        if (!*new_signer_sealed)
            return util_error_set(err, UTIL_ERR_INTERNAL, "a signer key that the vault did not make");
        free(run->row.signer_key_sealed);
        run->row.signer_key_sealed = *new_signer_sealed;
        *new_signer_sealed = NULL;
    }
    return 0;
}

/* The CSR, the signer and the message type through the one recipe in
 * src/client. Renewal signs with the old pair stored with the request; a
 * first enrollment keeps the self-signed certificate (and the temporary RSA
 * key of an EC request) it was sent with, so a resumed request's CertPolls
 * come from the same signer. */
static int prepare(agent_run *run, util_error *err)
{
    client_enrollment e = {.now = (time_t)agent_now(run->a)};
    X509 *stored = NULL;
    EVP_PKEY *stored_key = NULL, *new_signer = NULL;
    char *new_signer_sealed = NULL;
    int rc = -1;
    csr_params(run, &e.csr);
    bool renewal = stored_signer_is_renewal(&run->row);
    if (renewal) {
        if (agent_unseal_request_key(run->a, &run->row, "signer_key_pem", &e.renew_key, err) != 0 ||
            load_pem_cert(run->row.signer_cert_pem, &e.renew_cert, err) != 0)
            goto out;
    } else if (run->row.signer_cert_pem) {
        util_error ignored; /* an unreadable earlier signer is replaced */
        if (load_pem_cert(run->row.signer_cert_pem, &stored, &ignored) == 0)
            e.earlier_signer = stored;
        if (run->row.signer_key_sealed &&
            agent_unseal_request_key(run->a, &run->row, "signer_key_pem", &stored_key, &ignored) == 0)
            e.signer_key = stored_key;
    }
    /* the temporary RSA signer of an EC key comes from the vault too */
    if (!renewal && !e.signer_key && client_signer_needs_rsa(&run->srv, run->t.new_key)) {
        if (agent_generate_request_key(run->a, run->row.id, "signer_key_pem", run->row.key_name, "rsa:2048",
                                       &new_signer_sealed, &new_signer, err) != 0)
            goto out;
        e.signer_key = new_signer;
    }
    OPENSSL_clear_free(run->csr, run->csr_len);
    run->csr = NULL;
    run->csr_len = 0;
    if (client_enrollment_prepare(&run->srv, &e, &run->t, &run->csr, &run->csr_len, err) != 0)
        goto out;
    if (!renewal && remember_signer(run, stored, stored_key, &new_signer_sealed, err) != 0)
        goto out;
    rc = 0;
out:
    X509_free(stored);
    EVP_PKEY_free(stored_key);
    EVP_PKEY_free(new_signer);
    free(new_signer_sealed);
    X509_free(e.renew_cert);
    EVP_PKEY_free(e.renew_key);
    return rc;
}

/* ---- discovery ---- */

static json_t *server_snapshot(const client_server *srv, util_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    if (crypto_certs_to_pem(srv->ca->all, &pem, &len, err) != 0)
        return NULL;
    json_t *j = json_pack("{s:i, s:b, s:s, s:i, s:s}", "caps", (int)srv->caps.flags, "caps_answered",
                          srv->caps_answered, "server_header", srv->server_header, "iis_major",
                          srv->iis_major, "ca_certs", pem);
    free(pem);
    return j;
}

static int restore_server(agent_run *run, util_error *err)
{
    json_t *s = run->row.server;
    const char *pem = json_string_value(json_object_get(s, "ca_certs"));
    if (!pem)
        return util_error_set(err, UTIL_ERR_STORE, "request %lld has no server snapshot",
                              (long long)run->row.id);
    STACK_OF(X509) *certs = NULL;
    if (crypto_certs_load((const uint8_t *)pem, strlen(pem), &certs, err) != 0)
        return -1;
    client_server_clear(&run->srv);
    int rc = scep_ca_certs_from_stack(certs, &run->srv.ca, err);
    util_x509_stack_free(certs);
    run->srv.caps.flags = (unsigned)json_integer_value(json_object_get(s, "caps"));
    run->srv.caps_answered = json_is_true(json_object_get(s, "caps_answered"));
    run->srv.iis_major = (int)json_integer_value(json_object_get(s, "iis_major"));
    const char *hdr = json_string_value(json_object_get(s, "server_header"));
    snprintf(run->srv.server_header, sizeof run->srv.server_header, "%s", hdr ? hdr : "");
    return rc;
}

static void on_discovered(void *arg, int rc, const util_error *net)
{
    agent_run *run = arg;
    util_error err;
    run->op = NULL;
    if (run->cancelled) {
        agent_run_release(run->a, run);
        return;
    }
    if (rc != 0) {
        retry_or_fail(run, net, STORE_STATE_CONTACTING_SERVER);
        return;
    }
    agent_ca_certs_store(run->a, &run->srv, NULL);
    client_choose(&run->cfg, &run->srv, &run->t.choice);
    run->t.choice.digest = scep_digest_by_name(run->params.signature_algorithm);
    json_decref(run->row.server);
    run->row.server = server_snapshot(&run->srv, &err);
    if (!run->row.server || prepare(run, &err) != 0) {
        fail(run, &err);
        return;
    }
    snprintf(run->row.transaction_id, sizeof run->row.transaction_id, "%s", run->t.transaction_id);
    if (set_state(run, STORE_STATE_SENT) == 0)
        step_send(run);
}

static void step_discover(agent_run *run)
{
    util_error err;
    run->due = 0;
    run->op = client_async_discover(run->a->hc, &run->cfg, &run->srv, (time_t)agent_now(run->a),
                                    on_discovered, run, &err);
    if (!run->op)
        fail(run, &err);
}

/* ---- the PKIOperation and its reply ---- */

static int acquire(agent_run *run, util_error *err)
{
    store_key k;
    memset(&k, 0, sizeof k);
    size_t len;
    int rc = -1;
    snprintf(k.name, sizeof k.name, "%s", run->row.key_name);
    k.state = STORE_STATE_ACQUIRED;
    snprintf(k.replaces, sizeof k.replaces, "%s", run->row.replaces);
    k.request_id = run->row.id;
    /* from the request's parameters, not from the key object: the agent
     * holds a proxy, the key itself is in the vault */
    snprintf(k.storage, sizeof k.storage, "%s",
             run->params.key_storage[0] ? run->params.key_storage : "software");
    /* sealed again by the vault for its place in the keys table */
    if (agent_reseal_request_to_pair(run->a, &run->row, k.name, k.request_id, &k.key_sealed, err) != 0 ||
        crypto_cert_to_pem(run->r.cert, &k.cert_pem, &len, err) != 0)
        goto out;
    STACK_OF(X509) *chain = client_result_chain(&run->r, &run->srv);
    int chain_rc = chain && sk_X509_num(chain) > 0 ? crypto_certs_to_pem(chain, &k.chain_pem, &len, err)
                                                   : ((k.chain_pem = strdup("")) ? 0 : -1);
    util_x509_stack_free(chain);
    if (chain_rc != 0)
        goto out;
    wipe_challenge(run);
    /* the reply is open: the pair's key is in the keys table now, and the
     * request keeps no copy of it or of its signer's key */
    free(run->row.key_sealed);
    run->row.key_sealed = NULL;
    free(run->row.signer_key_sealed);
    run->row.signer_key_sealed = NULL;
    run->row.state = STORE_STATE_ACQUIRED;
    run->row.error_code[0] = run->row.error_detail[0] = '\0';
    run->row.next_attempt_at = 0;
    run->row.updated_at = agent_now(run->a);
    rc = store_acquire(run->a->st, &run->row, &k, run->a->cfg.max_keys, err);
out:
    free(k.key_sealed);
    free(k.cert_pem);
    free(k.chain_pem);
    return rc;
}

static void on_reply(void *arg, int rc, const util_error *net)
{
    agent_run *run = arg;
    util_error err;
    run->op = NULL;
    if (run->cancelled) {
        agent_run_release(run->a, run);
        return;
    }
    /* the CSR carries the challenge: gone once sent (a resend builds it again) */
    OPENSSL_clear_free(run->csr, run->csr_len);
    run->csr = NULL;
    run->csr_len = 0;
    if (rc != 0) {
        /* no answer to the request itself: send it again; to a poll: poll again */
        retry_or_fail(run, net,
                      run->row.state == STORE_STATE_SENT ? STORE_STATE_CONTACTING_SERVER
                                                         : STORE_STATE_PENDING);
        return;
    }
    switch (run->r.status) {
    case SCEP_STATUS_SUCCESS:
        if (acquire(run, &err) != 0) {
            fail(run, &err);
            return;
        }
        log_info("request %lld acquired \"%s\"", (long long)run->row.id, run->row.key_name);
        agent_run_finished(run->a, run->row.id, STORE_STATE_ACQUIRED, NULL);
        return;
    case SCEP_STATUS_PENDING:
        wipe_challenge(run); /* the server has it: a new PKCSReq would need a new one */
        util_error_set(&err, UTIL_ERR_PENDING, "waiting for approval (transactionID %s)",
                       run->t.transaction_id);
        retry_or_fail(run, &err, STORE_STATE_PENDING);
        return;
    default:
        client_result_error(&run->r, &err);
        fail(run, &err);
        return;
    }
}

static void step_send(agent_run *run)
{
    util_error err;
    run->due = 0;
    run->op = client_async_pki(run->a->hc, &run->cfg, &run->srv, &run->t, run->t.request_type, run->csr,
                               run->csr_len, (time_t)agent_now(run->a), &run->r, on_reply, run, &err);
    if (!run->op)
        fail(run, &err);
}

static void step_poll(agent_run *run)
{
    util_error err;
    uint8_t *data = NULL;
    size_t len = 0;
    run->due = 0;
    client_result_clear(&run->r);
    if (client_poll_data(&run->srv, &run->t, &data, &len, &err) != 0) {
        fail(run, &err);
        return;
    }
    run->op = client_async_pki(run->a->hc, &run->cfg, &run->srv, &run->t, SCEP_MSG_CERTPOLL, data, len,
                               (time_t)agent_now(run->a), &run->r, on_reply, run, &err);
    OPENSSL_free(data);
    if (!run->op)
        fail(run, &err);
}

/* ---- cancelling ---- */

int agent_run_cancel(agent_run *run, util_error *err)
{
    agent *a = run->a;
    int64_t id = run->row.id;
    bool waiting = run->op || run->thread_started;
    if (waiting) { /* room first: a run that cannot be kept must not be detached */
        agent_run **grown = realloc(a->orphans, (a->orphan_count + 1) * sizeof *grown);
        if (!grown)
            return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        a->orphans = grown;
    }
    wipe_challenge(run);
    agent_request_cancelled(a, &run->row);
    int rc = store_request_update(a->st, &run->row, err);
    if (rc != 0) /* the run ends all the same; the request resumes from its last saved state */
        log_error("request %lld: could not save state cancelled: %s", (long long)id, err->detail);
    run->due = 0;
    run->cancelled = true;
    a->run = NULL;
    if (waiting)
        a->orphans[a->orphan_count++] = run;
    else
        agent_run_release(a, run);
    agent_run_finished(a, id, rc == 0 ? STORE_STATE_CANCELLED : STORE_STATE_FAILED, rc == 0 ? NULL : err);
    return rc;
}

/* ---- lifetime ---- */

int64_t agent_run_id(const agent_run *run)
{
    return run->row.id;
}

bool agent_run_is_auto(const agent_run *run)
{
    return run->is_auto;
}

int64_t agent_run_due(const agent_run *run)
{
    return run->op ? 0 : run->due;
}

void agent_run_wake(agent_run *run)
{
    if (run->op || !run->due)
        return;
    run->due = 0;
    if (run->row.state == STORE_STATE_PENDING)
        step_poll(run);
    else
        step_discover(run);
}

static int load_params(agent_run *run, util_error *err)
{
    if (agent_parse_key_params(run->row.params, &run->params, err) != 0)
        return -1;
    if (run->row.challenge_sealed) {
        uint8_t *pw = NULL;
        size_t len = 0;
        if (crypto_unseal(run->a->seal_key, run->row.challenge_sealed, run->row.challenge_sealed_len, &pw,
                          &len, err) != 0)
            return -1;
        snprintf(run->params.challenge, sizeof run->params.challenge, "%.*s", (int)len, (char *)pw);
        OPENSSL_clear_free(pw, len);
    }
    return 0;
}

/* A copy that lacks a field it should have would change the request: a
 * missing key a new transactionID, a missing challenge a request without
 * it. Any allocation that fails fails the copy. */
static int copy_row(store_request *dst, const store_request *src, util_error *err)
{
    *dst = *src;
    dst->params = json_deep_copy(src->params);
    dst->server = src->server ? json_deep_copy(src->server) : NULL;
    dst->key_sealed = src->key_sealed ? strdup(src->key_sealed) : NULL;
    dst->signer_cert_pem = src->signer_cert_pem ? strdup(src->signer_cert_pem) : NULL;
    dst->signer_key_sealed = src->signer_key_sealed ? strdup(src->signer_key_sealed) : NULL;
    dst->challenge_sealed = src->challenge_sealed ? malloc(src->challenge_sealed_len) : NULL;
    if (dst->challenge_sealed)
        memcpy(dst->challenge_sealed, src->challenge_sealed, src->challenge_sealed_len);
    if (!dst->params || (src->server && !dst->server) || (src->key_sealed && !dst->key_sealed) ||
        (src->signer_cert_pem && !dst->signer_cert_pem) ||
        (src->signer_key_sealed && !dst->signer_key_sealed) ||
        (src->challenge_sealed && !dst->challenge_sealed)) {
        store_request_clear(dst);
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory copying request %lld",
                              (long long)src->id);
    }
    return 0;
}

static int begin(agent_run *run)
{
    util_error err;
    /* checked when the request was made; again for one resumed from the queue */
    if (run->row.state == STORE_STATE_QUEUED && agent_key_store_check(run->a, &err) != 0) {
        fail(run, &err);
        return 0;
    }
    if (!run->row.key_sealed) {
        step_keygen(run);
        return 0;
    }
    if (agent_unseal_request_key(run->a, &run->row, "key_pem", &run->t.new_key, &err) != 0) {
        fail(run, &err);
        return 0;
    }
    if (run->row.state == STORE_STATE_PENDING) {
        if (restore_server(run, &err) != 0) {
            fail(run, &err);
            return 0;
        }
        client_choose(&run->cfg, &run->srv, &run->t.choice);
        run->t.choice.digest = scep_digest_by_name(run->params.signature_algorithm);
        /* the CSR gives the subject of CertPoll; the transactionID is the one sent */
        if (prepare(run, &err) != 0) {
            fail(run, &err);
            return 0;
        }
        snprintf(run->t.transaction_id, sizeof run->t.transaction_id, "%s", run->row.transaction_id);
        run->due = run->row.next_attempt_at ? run->row.next_attempt_at : agent_now(run->a);
        agent_schedule(run->a);
        return 0;
    }
    /* queued with a key, contacting_server or sent: (re)send the request */
    if (set_state(run, STORE_STATE_CONTACTING_SERVER) == 0)
        step_discover(run);
    return 0;
}

int agent_run_start(agent *a, const store_request *row, util_error *err)
{
    if (a->run)
        return util_error_set(err, UTIL_ERR_REQUEST_BUSY, "request %lld is running",
                              (long long)a->run->row.id);
    agent_run *run = calloc(1, sizeof *run);
    if (!run)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    run->a = a;
    run->pipe_fd[0] = run->pipe_fd[1] = -1;
    if (copy_row(&run->row, row, err) != 0 || load_params(run, err) != 0 ||
        agent_client_config(a, &run->cfg, &run->url, err) != 0) {
        agent_run_free(run);
        return -1;
    }
    run->is_auto = !strcmp(row->kind, "auto");
    run->max_attempts = run->is_auto ? (a->autoreq.polling ? a->autoreq.retries : 0) : a->settings.poll_max;
    run->interval_s = run->is_auto ? a->autoreq.interval_s : a->settings.poll_interval_s;
    if (run->interval_s <= 0)
        run->interval_s = 60;
    a->run = run;
    return begin(run);
}

void agent_run_free(agent_run *run)
{
    if (!run)
        return;
    if (run->thread_started)
        pthread_join(run->thread, NULL);
    if (run->op)
        client_async_abandon(run->op);
    if (run->keygen_done)
        event_free(run->keygen_done);
    if (run->pipe_fd[0] >= 0)
        close(run->pipe_fd[0]);
    if (run->pipe_fd[1] >= 0)
        close(run->pipe_fd[1]);
    EVP_PKEY_free(run->generated);
    free(run->generated_sealed);
    wipe_challenge(run);
    store_request_clear(&run->row);
    client_server_clear(&run->srv);
    client_transaction_clear(&run->t);
    client_result_clear(&run->r);
    OPENSSL_clear_free(run->csr, run->csr_len);
    util_x509_stack_free(run->cfg.next_ca);
    free(run->url);
    free(run);
}
