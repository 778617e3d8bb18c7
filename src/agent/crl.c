/*
 * The CA's CRL, for the revocation check of POST /keys/{name}/verify. It is
 * fetched with a SCEP GetCRL signed by a registered key, after registration
 * and with verifications (the check uses the CRL stored so far), and kept as
 * the "crl" document. However often verify is called, a CA is asked at most
 * once per CRL_INTERVAL_S, fetched or failed, so that a
 * cheap request never turns into a stream of GetCRLs. Servers without GetCRL (NDES) answer
 * FAILURE: the check then stays "no CRL available".
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "util/log.h"
#include "util/ossl.h"

#define CRL_INTERVAL_S 30

struct agent_crl_fetch {
    agent *a;
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

static void store_crl(agent *a, X509_CRL *crl)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL, issuer[512];
    long n = 0;
    if (bio && PEM_write_bio_X509_CRL(bio, crl))
        n = BIO_get_mem_data(bio, &pem);
    crypto_name_oneline(X509_CRL_get_issuer(crl), issuer, sizeof issuer);
    json_t *doc = n > 0 ? json_pack("{s:s%, s:s, s:I}", "pem", pem, (size_t)n, "issuer", issuer, "fetched_at",
                                    (json_int_t)agent_now(a))
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
        if (rc != 0)
            log_info("GetCRL: %s (%s)", util_err_code(err->code), err->detail);
        else
            log_info("GetCRL: the server has no CRL for us (%s)", f->r.failure_detail);
    } else {
        store_crl(a, f->r.crl);
    }
    a->crl_fetch = NULL;
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

void agent_crl_refresh(agent *a, const char *key_name)
{
    if (a->crl_fetch || !a->settings.url[0])
        return;
    if (!strcmp(a->crl_url, a->settings.url) && agent_now(a) < a->crl_next_try)
        return;
    /* counted from the start: a fetch in flight or just done holds off the next */
    snprintf(a->crl_url, sizeof a->crl_url, "%s", a->settings.url);
    a->crl_next_try = agent_now(a) + CRL_INTERVAL_S;
    store_key k;
    util_error err;
    if (store_key_get(a->st, key_name, &k, &err) != 0)
        return;
    agent_crl_fetch *f = calloc(1, sizeof *f);
    if (!f || (f->a = a, agent_client_config(a, &f->cfg, &f->url, &err)) != 0 ||
        crypto_cert_load((const uint8_t *)k.cert_pem, strlen(k.cert_pem), &f->t.signer_cert, &err) != 0 ||
        agent_unseal_pair_key(a, &k, &f->t.signer_key, &err) != 0 ||
        X509_check_issued(f->t.signer_cert, f->t.signer_cert) == X509_V_OK) { /* self-signed: no CA */
        store_key_clear(&k);
        fetch_free(f);
        return;
    }
    store_key_clear(&k);
    a->crl_fetch = f;
    f->op = client_async_discover(a->hc, &f->cfg, &f->srv, (time_t)agent_now(a), on_discovered, f, &err);
    if (!f->op) {
        a->crl_fetch = NULL;
        fetch_free(f);
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
