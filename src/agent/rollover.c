/*
 * CA rollover (RFC 8894 section 4.7). When the server lists GetNextCACert,
 * the next CA certificate (signed by the current CA, which src/client
 * checks) is fetched at start, after registration, every ROLLOVER_PERIOD_S
 * and on request, and stored with the role "next_ca" next to the current
 * set. Being stored, it is trusted for verification (keys.c reads every
 * stored CA certificate) and, through client_config.next_ca, for replies: a
 * server that presents it passes the pinned fingerprint check. It is
 * promoted, the pin following it, when the server presents it or when the
 * current CA certificate has expired.
 */
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "util/log.h"
#include "util/ossl.h"

#define ROLLOVER_PERIOD_S 86400
#define ROLLOVER_RETRY_S 3600
#define ROLE_NEXT "next_ca"

struct agent_rollover {
    agent *a;
    client_config cfg;
    char *url;
    client_server srv;
    STACK_OF(X509) * next;
    client_async *op;
};

static void fetch_free(agent_rollover *f)
{
    if (!f)
        return;
    client_server_clear(&f->srv);
    util_x509_stack_free(f->next);
    util_x509_stack_free(f->cfg.next_ca);
    free(f->url);
    free(f);
}

void agent_rollover_abandon(agent *a)
{
    if (a->rollover && a->rollover->op)
        client_async_abandon(a->rollover->op);
    fetch_free(a->rollover);
    a->rollover = NULL;
}

/* ---- the stored set ---- */

/* The stored certificates whose role is (or, with `other`, is not) `role`;
 * all of them when role is NULL. */
int agent_stored_ca_certs(store *st, const char *role, bool other, STACK_OF(X509) * *out, util_error *err)
{
    json_t *rows = NULL;
    if (store_ca_certs_get(st, &rows, err) != 0)
        return -1;
    STACK_OF(X509) *certs = sk_X509_new_null();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *pem = json_string_value(json_object_get(row, "pem"));
        const char *r = json_string_value(json_object_get(row, "role"));
        X509 *x = NULL;
        util_error ignored;
        if (!certs || !pem || (role && (!r || (strcmp(r, role) == 0) == other)))
            continue;
        if (crypto_cert_load((const uint8_t *)pem, strlen(pem), &x, &ignored) == 0 &&
            sk_X509_push(certs, x) <= 0)
            X509_free(x);
    }
    json_decref(rows);
    *out = certs;
    return certs ? 0 : util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
}

int agent_next_ca(const agent *a, STACK_OF(X509) * *out, util_error *err)
{
    return agent_stored_ca_certs(a->st, ROLE_NEXT, false, out, err);
}

static bool contains(STACK_OF(X509) * certs, const X509 *x)
{
    for (int i = 0; certs && x && i < sk_X509_num(certs); i++)
        if (X509_cmp(sk_X509_value(certs, i), x) == 0)
            return true;
    return false;
}

static bool expired(X509 *x, int64_t now)
{
    return crypto_asn1_time_to_time(X509_get0_notAfter(x)) <= (time_t)now;
}

/* The first CA certificate among `certs` (the current set's issuing CA). */
static X509 *first_ca(STACK_OF(X509) * certs)
{
    for (int i = 0; certs && i < sk_X509_num(certs); i++)
        if (crypto_cert_is_ca(sk_X509_value(certs, i)))
            return sk_X509_value(certs, i);
    return NULL;
}

/* Writes cur (with roles) and next (role next_ca) as the whole stored set. */
static int put_all(agent *a, STACK_OF(X509) * cur, const char *const *cur_roles, STACK_OF(X509) * next,
                   util_error *err)
{
    int nc = sk_X509_num(cur), nn = next ? sk_X509_num(next) : 0;
    size_t n = (size_t)(nc + nn);
    char **pems = calloc(n + 1, sizeof *pems);
    const char **roles = calloc(n + 1, sizeof *roles);
    int rc = -1;
    if (!pems || !roles) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (int i = 0; i < nc + nn; i++) {
        X509 *x = i < nc ? sk_X509_value(cur, i) : sk_X509_value(next, i - nc);
        size_t len;
        if (crypto_cert_to_pem(x, &pems[i], &len, err) != 0)
            goto out;
        roles[i] = i < nc ? cur_roles[i] : ROLE_NEXT;
    }
    rc = store_ca_certs_put_all(a->st, (const char *const *)pems, roles, n, err);
out:
    for (size_t i = 0; pems && i < n; i++)
        free(pems[i]);
    free(pems);
    free(roles);
    return rc;
}

/* A pinned CA fingerprint follows the promoted CA, so that the next
 * discovery accepts it without the staged copy. */
static void follow_pin(agent *a, X509 *ca)
{
    if (!a->settings.ca_fingerprint[0])
        return;
    agent_settings s = a->settings;
    char hex[100];
    crypto_cert_fingerprint(ca, EVP_sha256(), hex, sizeof hex, false);
    snprintf(s.ca_fingerprint, sizeof s.ca_fingerprint, "sha256:%.64s", hex); /* 64 hex digits */
    json_t *doc = agent_settings_json(&s);
    util_error err;
    char detail[160];
    snprintf(detail, sizeof detail, "ca_fingerprint=%s", s.ca_fingerprint);
    if (doc && store_doc_put(a->st, "scep_settings", doc, "rollover", "scep_settings.ca_rollover", detail,
                             &err) == 0)
        a->settings = s;
    else
        log_error("the CA was promoted but the pinned fingerprint could not be updated");
    json_decref(doc);
}

static void log_promoted(X509 *ca, const char *why)
{
    crypto_cert_info info;
    crypto_cert_info_get(ca, &info);
    log_info("CA rollover: %s (sha256 %s) is now the CA: %s", info.subject, info.sha256, why);
}

/* Promotes the staged next CA when the current CA certificate has expired. */
static void promote_if_expired(agent *a)
{
    STACK_OF(X509) *cur = NULL, *next = NULL;
    util_error err;
    if (agent_stored_ca_certs(a->st, ROLE_NEXT, true, &cur, &err) != 0 ||
        agent_stored_ca_certs(a->st, ROLE_NEXT, false, &next, &err) != 0)
        goto out;
    X509 *ca = first_ca(cur), *new_ca = first_ca(next);
    if (!ca || !new_ca || !expired(ca, agent_now(a)) || expired(new_ca, agent_now(a)))
        goto out;
    const char *roles[1] = {scep_cert_role_name(SCEP_ROLE_CA)};
    STACK_OF(X509) *promoted = sk_X509_new_null();
    if (promoted && sk_X509_push(promoted, new_ca) > 0 && put_all(a, promoted, roles, NULL, &err) == 0) {
        log_promoted(new_ca, "the current CA certificate has expired");
        follow_pin(a, new_ca);
    } else {
        log_error("CA rollover: could not promote the next CA: %s", err.detail);
    }
    sk_X509_free(promoted);
out:
    util_x509_stack_free(cur);
    util_x509_stack_free(next);
}

void agent_ca_certs_store(agent *a, const client_server *srv, STACK_OF(X509) * fetched_next)
{
    const scep_ca_certs *ca = srv->ca;
    STACK_OF(X509) *staged = NULL, *cur = NULL, *next = NULL;
    const char **roles = NULL;
    util_error err;
    if (agent_stored_ca_certs(a->st, ROLE_NEXT, false, &staged, &err) != 0 ||
        agent_stored_ca_certs(a->st, ROLE_NEXT, true, &cur, &err) != 0)
        goto fail;
    bool presented = contains(staged, ca->ca);
    X509 *stored_ca = first_ca(cur);
    /* a server still presenting a CA that expired after the agent promoted the next one */
    if (!presented && stored_ca && X509_cmp(stored_ca, ca->ca) != 0 && expired(ca->ca, agent_now(a)) &&
        !expired(stored_ca, agent_now(a))) {
        log_warn("CA rollover: the server presents an expired CA certificate; keeping the promoted one");
        goto out;
    }
    /* the next CA: the one just fetched, else the staged one until it is presented */
    next = sk_X509_new_null();
    STACK_OF(X509) *source = fetched_next && sk_X509_num(fetched_next) > 0 ? fetched_next
                             : presented                                   ? NULL
                                                                           : staged;
    for (int i = 0; next && source && i < sk_X509_num(source); i++) {
        X509 *x = sk_X509_value(source, i);
        if (!contains(ca->all, x) && X509_up_ref(x) && sk_X509_push(next, x) <= 0)
            X509_free(x);
    }
    int n = sk_X509_num(ca->all);
    roles = calloc((size_t)n + 1, sizeof *roles);
    if (!next || !roles) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        roles[i] = scep_cert_role_name(scep_ca_certs_role(ca, sk_X509_value(ca->all, i)));
    if (put_all(a, ca->all, roles, next, &err) != 0)
        goto fail;
    if (presented) {
        log_promoted(ca->ca, "the server presents it");
        follow_pin(a, ca->ca);
    } else if (sk_X509_num(next) > 0 && !contains(staged, sk_X509_value(next, 0))) {
        crypto_cert_info info;
        crypto_cert_info_get(sk_X509_value(next, 0), &info);
        log_info("CA rollover: next CA %s (sha256 %s) stored", info.subject, info.sha256);
    }
    goto out;
fail:
    log_error("could not store the CA certificates: %s", err.detail);
out:
    free(roles);
    util_x509_stack_free(staged);
    util_x509_stack_free(cur);
    util_x509_stack_free(next);
}

/* ---- fetching ---- */

static void on_fetched(void *arg, int rc, const util_error *err)
{
    agent_rollover *f = arg;
    agent *a = f->a;
    f->op = NULL;
    a->rollover = NULL;
    if (rc != 0) {
        log_info("CA rollover: %s (%s); trying again in %d s", util_err_code(err->code), err->detail,
                 ROLLOVER_RETRY_S);
        a->rollover_next_at = agent_now(a) + ROLLOVER_RETRY_S;
    } else {
        agent_ca_certs_store(a, &f->srv, f->next);
        a->rollover_next_at = agent_now(a) + ROLLOVER_PERIOD_S;
    }
    promote_if_expired(a);
    fetch_free(f);
    agent_schedule(a);
}

int agent_ca_certs_refresh(agent *a, const char *user, util_error *err)
{
    if (user && store_audit_add(a->st, user, "ca_certificates.refresh", "", err) != 0)
        return -1;
    promote_if_expired(a);
    if (a->rollover)
        return 0; /* one in flight: its result is the refresh */
    agent_rollover *f = calloc(1, sizeof *f);
    if (!f)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    f->a = a;
    if (agent_client_config(a, &f->cfg, &f->url, err) != 0) {
        fetch_free(f);
        return -1;
    }
    f->op = client_async_next_ca(a->hc, &f->cfg, &f->srv, (time_t)agent_now(a), &f->next, on_fetched, f, err);
    if (!f->op) {
        fetch_free(f);
        return -1;
    }
    a->rollover = f;
    a->rollover_next_at = 0;
    return 0;
}

void agent_rollover_start(agent *a)
{
    STACK_OF(X509) *cur = NULL;
    util_error err;
    /* only once the agent knows the CA: a new device has no server yet */
    if (agent_stored_ca_certs(a->st, ROLE_NEXT, true, &cur, &err) == 0 && sk_X509_num(cur) > 0 &&
        a->settings.url[0])
        a->rollover_next_at = agent_now(a);
    util_x509_stack_free(cur);
    promote_if_expired(a);
}

void agent_rollover_tick(agent *a)
{
    if (!a->rollover_next_at || a->rollover_next_at > agent_now(a) || a->rollover)
        return;
    util_error err;
    if (agent_ca_certs_refresh(a, NULL, &err) != 0) {
        log_info("CA rollover: %s (%s)", util_err_code(err.code), err.detail);
        a->rollover_next_at = agent_now(a) + ROLLOVER_RETRY_S;
    }
}
