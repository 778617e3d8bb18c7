/*
 * The CA's CRL, for the revocation check of POST /keys/{name}/verify. A
 * verification first fetches it with a SCEP GetCRL signed by the key being
 * verified and waits for the answer, at most the communication timeout
 * (agent_crl_wait); it is kept as the "crl" document with its source and
 * time. However often verify is called, a CA is asked at most once per
 * CRL_INTERVAL_S, fetched or failed, so that a cheap request never turns
 * into a stream of GetCRLs: within the interval the stored CRL answers, and
 * the verification shows its age. Servers without GetCRL (NDES) answer
 * FAILURE: the check then says "not checked" with that reason.
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "util/log.h"
#include "util/ossl.h"

#define CRL_INTERVAL_S 30

/* A verification waiting for the fetch (the API answers it when done runs). */
struct agent_crl_waiter {
    agent_crl_waiter *next;
    void (*done)(void *arg);
    void *arg;
};

struct agent_crl_fetch {
    agent *a;
    struct event *deadline; /* the communication timeout: waiters are answered then */
    agent_crl_waiter *waiters;
    bool overdue;     /* the deadline passed: nobody waits for it any more */
    char source[600]; /* the endpoint asked, without credentials */
    client_config cfg;
    char *url;
    client_server srv;
    client_transaction t;
    client_result r;
    uint8_t *data;
    size_t len;
    client_async *op;
};

static void fetch_free(agent_crl_fetch *f)
{
    if (!f)
        return;
    if (f->deadline)
        event_free(f->deadline);
    for (agent_crl_waiter *w = f->waiters, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    client_server_clear(&f->srv);
    client_transaction_clear(&f->t);
    client_result_clear(&f->r);
    OPENSSL_free(f->data);
    util_x509_stack_free(f->cfg.next_ca);
    free(f->url);
    free(f);
}

void agent_crl_abandon(agent *a)
{
    if (a->crl_fetch && a->crl_fetch->op)
        client_async_abandon(a->crl_fetch->op);
    fetch_free(a->crl_fetch);
    a->crl_fetch = NULL;
}

/* Tells every waiter (each done runs on the event loop and may verify at
 * once); the list is emptied first, so that a waiter cannot be told twice. */
static void wake_waiters(agent_crl_fetch *f)
{
    agent_crl_waiter *w = f->waiters;
    f->waiters = NULL;
    while (w) {
        agent_crl_waiter *next = w->next;
        void (*done)(void *) = w->done;
        void *arg = w->arg;
        free(w);
        done(arg);
        w = next;
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    agent_crl_fetch *f = arg;
    (void)fd;
    (void)what;
    f->overdue = true;
    snprintf(f->a->crl_reason, sizeof f->a->crl_reason,
             "GetCRL to %.200s did not answer within %d s (the communication timeout)", f->source,
             f->a->settings.timeout_s);
    wake_waiters(f);
}

static void store_crl(agent *a, X509_CRL *crl, const char *source)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL, issuer[512];
    long n = 0;
    if (bio && PEM_write_bio_X509_CRL(bio, crl))
        n = BIO_get_mem_data(bio, &pem);
    crypto_name_oneline(X509_CRL_get_issuer(crl), issuer, sizeof issuer);
    json_t *doc = n > 0 ? json_pack("{s:s%, s:s, s:I, s:s}", "pem", pem, (size_t)n, "issuer", issuer,
                                    "fetched_at", (json_int_t)agent_now(a), "source", source)
                        : NULL;
    util_error err;
    if (!doc || store_doc_put(a->st, "crl", doc, NULL, NULL, NULL, &err) != 0)
        log_warn("could not store the CRL of %s", issuer);
    else
        log_info("CRL of %s stored (%d revoked)", issuer,
                 X509_CRL_get_REVOKED(crl) ? sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) : 0);
    json_decref(doc);
    BIO_free(bio);
}

static void on_crl(void *arg, int rc, const util_error *err)
{
    agent_crl_fetch *f = arg;
    agent *a = f->a;
    f->op = NULL;
    if (rc != 0 || f->r.status != SCEP_STATUS_SUCCESS || !f->r.crl) {
        if (rc != 0) {
            log_info("GetCRL: %s (%s)", util_err_code(err->code), err->detail);
            snprintf(a->crl_reason, sizeof a->crl_reason, "GetCRL to %.200s failed: %s (%.200s)", f->source,
                     util_err_code(err->code), err->detail);
        } else {
            log_info("GetCRL: the server has no CRL for us (%s)", f->r.failure_detail);
            snprintf(a->crl_reason, sizeof a->crl_reason,
                     "the server at %.200s gives no CRL for this certificate (GetCRL: %.200s)", f->source,
                     f->r.failure_detail[0] ? f->r.failure_detail : "no CRL in the answer");
        }
    } else {
        store_crl(a, f->r.crl, f->source);
        a->crl_reason[0] = '\0';
    }
    a->crl_fetch = NULL;
    wake_waiters(f);
    fetch_free(f);
}

static void on_discovered(void *arg, int rc, const util_error *err)
{
    agent_crl_fetch *f = arg;
    util_error e;
    f->op = NULL;
    if (rc != 0) {
        on_crl(f, rc, err);
        return;
    }
    client_choose(&f->cfg, &f->srv, &f->t.choice);
    snprintf(f->t.transaction_id, sizeof f->t.transaction_id, "CRL-%lld", (long long)agent_now(f->a));
    if (scep_issuer_and_serial_encode(X509_get_issuer_name(f->t.signer_cert),
                                      X509_get0_serialNumber(f->t.signer_cert), &f->data, &f->len, &e) != 0 ||
        !(f->op = client_async_pki(f->a->hc, &f->cfg, &f->srv, &f->t, SCEP_MSG_GETCRL, f->data, f->len,
                                   (time_t)agent_now(f->a), &f->r, on_crl, f, &e)))
        on_crl(f, -1, &e);
}

/* The URL requests go to (with the port of the settings), without the
 * credentials it may carry: it is shown and stored. */
static void source_of(const char *url, char *out, size_t len)
{
    CURLU *u = curl_url();
    char *text = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &text, 0) == CURLUE_OK)
        snprintf(out, len, "%s", text);
    else
        snprintf(out, len, "the SCEP server");
    curl_free(text);
    curl_url_cleanup(u);
}

/* Starts a GetCRL signed by key_name unless one runs (1: one is under way
 * and not overdue) or the CA was asked less than the interval ago (0). */
static int crl_refresh(agent *a, const char *key_name)
{
    if (a->crl_fetch)
        return a->crl_fetch->overdue ? 0 : 1;
    if (!a->settings.url[0])
        return 0;
    if (!strcmp(a->crl_url, a->settings.url) && agent_now(a) < a->crl_next_try)
        return 0;
    store_key k;
    util_error err;
    if (store_key_get(a->st, key_name, &k, &err) != 0)
        return 0;
    agent_crl_fetch *f = calloc(1, sizeof *f);
    if (!f || (f->a = a, agent_client_config(a, &f->cfg, &f->url, &err)) != 0 ||
        crypto_cert_load((const uint8_t *)k.cert_pem, strlen(k.cert_pem), &f->t.signer_cert, &err) != 0 ||
        agent_unseal_pair_key(a, &k, &f->t.signer_key, &err) != 0 ||
        X509_self_signed(f->t.signer_cert, 0) == 1) { /* self-signed: no CA */
        store_key_clear(&k);
        fetch_free(f);
        return 0;
    }
    store_key_clear(&k);
    source_of(f->url, f->source, sizeof f->source);
    /* counted from the start: a fetch in flight or just done holds off the
     * next; a key that cannot ask (unknown, self-signed) does not count */
    snprintf(a->crl_url, sizeof a->crl_url, "%s", a->settings.url);
    a->crl_next_try = agent_now(a) + CRL_INTERVAL_S;
    struct timeval tv = {.tv_sec = a->settings.timeout_s > 0 ? a->settings.timeout_s : 30};
    if (!(f->deadline = evtimer_new(a->base, on_deadline, f)) || evtimer_add(f->deadline, &tv) != 0) {
        fetch_free(f);
        return 0;
    }
    a->crl_fetch = f;
    f->op = client_async_discover(a->hc, &f->cfg, &f->srv, (time_t)agent_now(a), on_discovered, f, &err);
    if (!f->op) {
        snprintf(a->crl_reason, sizeof a->crl_reason, "GetCRL to %.200s failed: %s (%.200s)", f->source,
                 util_err_code(err.code), err.detail);
        a->crl_fetch = NULL;
        fetch_free(f);
        return 0;
    }
    return 1;
}

int agent_crl_wait(agent *a, const char *key_name, void (*done)(void *arg), void *arg, agent_crl_waiter **out)
{
    *out = NULL;
    if (crl_refresh(a, key_name) != 1)
        return 0;
    agent_crl_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return 0; /* verify with what is stored */
    *w = (agent_crl_waiter){.next = a->crl_fetch->waiters, .done = done, .arg = arg};
    a->crl_fetch->waiters = w;
    *out = w;
    return 1;
}

void agent_crl_wait_cancel(agent *a, agent_crl_waiter *w)
{
    if (!w || !a->crl_fetch)
        return;
    for (agent_crl_waiter **p = &a->crl_fetch->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            free(w);
            return;
        }
}

int agent_crl_for(agent *a, X509 *cert, STACK_OF(X509_CRL) * *out)
{
    json_t *doc = NULL;
    util_error err;
    *out = NULL;
    if (store_doc_get(a->st, "crl", &doc, &err) != 0 || !doc)
        return 0;
    const char *pem = json_string_value(json_object_get(doc, "pem"));
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509_CRL *crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    json_decref(doc);
    if (!crl)
        return 0;
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(cert)) != 0) {
        X509_CRL_free(crl);
        return 0;
    }
    *out = sk_X509_CRL_new_null();
    if (!*out || sk_X509_CRL_push(*out, crl) <= 0) {
        X509_CRL_free(crl);
        return -1;
    }
    return 0;
}

/* "self-signed", "no server", the last fetch's failure, a CRL of another
 * CA, or the interval: why revocation could not be checked. */
static void not_checked_reason(agent *a, X509 *cert, char *out, size_t len)
{
    json_t *doc = NULL;
    util_error err;
    const char *issuer = NULL;
    if (store_doc_get(a->st, "crl", &doc, &err) == 0 && doc)
        issuer = json_string_value(json_object_get(doc, "issuer"));
    if (X509_self_signed(cert, 0) == 1)
        snprintf(out, len, "the certificate is self-signed: no CA publishes a CRL for it");
    else if (!a->settings.url[0])
        snprintf(out, len, "no SCEP server is set to ask for a CRL");
    else if (a->crl_reason[0])
        snprintf(out, len, "%.390s", a->crl_reason);
    else if (issuer)
        snprintf(out, len, "the stored CRL is from %.200s, not from this certificate's issuer", issuer);
    else if (a->crl_fetch)
        snprintf(out, len, "GetCRL to %.200s is still under way", a->crl_fetch->source);
    else
        snprintf(out, len, "no CRL has been fetched yet; the CA is asked at most every %d s", CRL_INTERVAL_S);
    json_decref(doc);
}

json_t *agent_crl_describe(agent *a, X509 *cert, bool used, char *not_checked, size_t len)
{
    if (!used) {
        char why[400];
        not_checked_reason(a, cert, why, sizeof why);
        snprintf(not_checked, len, "not checked: %s", why);
        return json_null();
    }
    json_t *doc = NULL;
    util_error err;
    if (store_doc_get(a->st, "crl", &doc, &err) != 0 || !doc)
        return json_null();
    const char *pem = json_string_value(json_object_get(doc, "pem"));
    const char *source = json_string_value(json_object_get(doc, "source"));
    int64_t fetched = json_integer_value(json_object_get(doc, "fetched_at"));
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509_CRL *crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    int64_t this_update = 0, next_update = 0;
    if (crl) {
        this_update = crypto_asn1_time_to_time(X509_CRL_get0_lastUpdate(crl));
        if (X509_CRL_get0_nextUpdate(crl))
            next_update = crypto_asn1_time_to_time(X509_CRL_get0_nextUpdate(crl));
    }
    int64_t age = agent_now(a) - fetched;
    json_t *out = json_pack(
        "{s:o, s:o, s:o, s:I, s:o, s:o}", "source", source ? json_string(source) : json_null(), "issuer",
        json_object_get(doc, "issuer") ? json_incref(json_object_get(doc, "issuer")) : json_null(),
        "fetched_at", agent_time_json(fetched), "age_s", (json_int_t)(age > 0 ? age : 0), "this_update",
        agent_time_json(this_update), "next_update", agent_time_json(next_update));
    X509_CRL_free(crl);
    json_decref(doc);
    return out ? out : json_null();
}
