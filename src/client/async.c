/* Event-driven SCEP steps for scepd: discovery and PKIOperations over the
 * curl multi interface, with the same checks as the blocking calls. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "util/log.h"

enum step { STEP_CAPS, STEP_CACERT, STEP_NEXTCA, STEP_POST, STEP_GET };

struct client_async {
    http_client *hc;
    const client_config *cfg;
    client_server *srv;            /* discovery writes it */
    const client_server *srv_read; /* PKIOperation reads it */
    const client_transaction *t;
    client_result *r;
    STACK_OF(X509) * *next; /* GetNextCACert after discovery; NULL: discovery only */
    uint8_t nonce[SCEP_NONCE_LEN];
    uint8_t *msg;
    size_t msg_len;
    size_t query_len;
    time_t now;
    enum step step;
    client_async_cb cb;
    void *arg;
};

static void op_free(client_async *op)
{
    OPENSSL_free(op->msg);
    free(op);
}

static void done(client_async *op, int rc, const util_error *err)
{
    op->cb(op->arg, rc, err);
    op_free(op);
}

static void on_response(void *arg, int rc, http_response *resp, const util_error *net);

static int issue(client_async *op, util_error *err)
{
    char *url = NULL;
    int rc;
    const char *ident = op->cfg->ca_identifier;
    switch (op->step) {
    case STEP_CAPS: url = http_scep_url(op->cfg->url, "GetCACaps", ident); break;
    case STEP_CACERT: url = http_scep_url(op->cfg->url, "GetCACert", ident); break;
    case STEP_NEXTCA: url = http_scep_url(op->cfg->url, "GetNextCACert", ident); break;
    case STEP_POST: url = http_scep_url(op->cfg->url, "PKIOperation", NULL); break;
    case STEP_GET: url = client_pki_get_url(op->cfg, op->msg, op->msg_len, &op->query_len); break;
    }
    if (!url)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (op->step == STEP_POST)
        rc = http_client_post(op->hc, &op->cfg->http, url, op->msg, op->msg_len, "application/x-pki-message",
                              on_response, op, err);
    else
        rc = http_client_get(op->hc, &op->cfg->http, url, on_response, op, err);
    free(url);
    return rc;
}

/* Moves to the next step; on failure finishes the operation. */
static void advance(client_async *op, enum step next)
{
    util_error err = {0};
    op->step = next;
    if (issue(op, &err) != 0)
        done(op, -1, &err);
}

static void on_response(void *arg, int rc, http_response *resp, const util_error *net)
{
    client_async *op = arg;
    util_error err = {0};
    switch (op->step) {
    case STEP_CAPS:
        if (rc != 0 && net->code != UTIL_ERR_NET_RESET) {
            done(op, -1, net);
            return;
        }
        client_caps_handle(op->srv, rc == 0 ? resp : NULL);
        advance(op, STEP_CACERT);
        return;
    case STEP_CACERT:
        if (rc != 0) {
            done(op, -1, net);
            return;
        }
        rc = client_ca_handle(op->cfg, op->srv, resp, op->now, &err);
        if (rc == 0 && op->next && scep_caps_has(&op->srv->caps, SCEP_CAP_GETNEXTCACERT)) {
            advance(op, STEP_NEXTCA);
            return;
        }
        done(op, rc, &err);
        return;
    case STEP_NEXTCA:
        if (rc != 0) {
            done(op, -1, net);
            return;
        }
        /* listed, but nothing staged: scepca (and others) answer 404 */
        rc = resp->status == 404 ? 0 : client_next_ca_handle(op->srv, resp, op->next, &err);
        done(op, rc, &err);
        return;
    case STEP_POST:
        if (rc == 0 && client_post_needs_get(resp)) {
            log_info("POST answered HTTP %ld; retrying with GET", resp->status);
            advance(op, STEP_GET);
            return;
        }
        /* fall through */
    case STEP_GET:
        if (rc != 0) {
            done(op, -1, net);
            return;
        }
        if (client_check_http(resp, op->step == STEP_POST ? "PKIOperation (POST)" : "PKIOperation (GET)",
                              op->step == STEP_GET ? op->query_len : 0,
                              op->step == STEP_GET && op->t->choice.post, &err) != 0) {
            done(op, -1, &err);
            return;
        }
        rc = client_pki_finish(op->srv_read, op->t, op->nonce, resp, op->r, &err);
        done(op, rc, &err);
        return;
    }
}

client_async *client_async_discover(http_client *hc, const client_config *cfg, client_server *srv, time_t now,
                                    client_async_cb cb, void *arg, util_error *err)
{
    client_async *op = calloc(1, sizeof *op);
    if (!op) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    *op = (client_async){.hc = hc, .cfg = cfg, .srv = srv, .srv_read = srv, .now = now, .cb = cb, .arg = arg};
    op->step = STEP_CAPS;
    if (issue(op, err) != 0) {
        op_free(op);
        return NULL;
    }
    return op;
}

client_async *client_async_next_ca(http_client *hc, const client_config *cfg, client_server *srv, time_t now,
                                   STACK_OF(X509) * *next, client_async_cb cb, void *arg, util_error *err)
{
    *next = NULL;
    client_async *op = client_async_discover(hc, cfg, srv, now, cb, arg, err);
    if (op)
        op->next = next;
    return op;
}

client_async *client_async_pki(http_client *hc, const client_config *cfg, const client_server *srv,
                               const client_transaction *t, int type, const uint8_t *message_data,
                               size_t message_data_len, time_t now, client_result *r, client_async_cb cb,
                               void *arg, util_error *err)
{
    client_async *op = calloc(1, sizeof *op);
    if (!op) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    *op = (client_async){
        .hc = hc, .cfg = cfg, .srv_read = srv, .t = t, .r = r, .now = now, .cb = cb, .arg = arg};
    memset(r, 0, sizeof *r);
    if (client_pki_prepare(srv, t, type, message_data, message_data_len, now, op->nonce, &op->msg,
                           &op->msg_len, err) != 0) {
        op_free(op);
        return NULL;
    }
    op->step = t->choice.post ? STEP_POST : STEP_GET;
    if (issue(op, err) != 0) {
        op_free(op);
        return NULL;
    }
    return op;
}

void client_async_abandon(client_async *op)
{
    if (op)
        op_free(op);
}
