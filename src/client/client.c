/* A SCEP client session over HTTP (RFC 8894 §4). */
#include "client/client.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/codec.h"
#include "util/log.h"
#include "util/ossl.h"

#define IIS_MAX_QUERY_STRING 2048

void client_server_clear(client_server *s)
{
    scep_caps_clear(&s->caps);
    scep_ca_certs_free(s->ca);
    memset(s, 0, sizeof *s);
}

void client_transaction_clear(client_transaction *t)
{
    X509_free(t->signer_cert);
    EVP_PKEY_free(t->signer_key);
    EVP_PKEY_free(t->new_key);
    X509_NAME_free(t->subject);
    memset(t, 0, sizeof *t);
}

void client_result_clear(client_result *r)
{
    X509_free(r->cert);
    util_x509_stack_free(r->chain);
    X509_CRL_free(r->crl);
    memset(r, 0, sizeof *r);
}

static bool is_html(const http_response *r)
{
    if (r->body_len && r->body[0] == 0x30)
        return false;
    return (r->content_type && strcasestr(r->content_type, "html")) ||
           (r->body_len > 5 &&
            (strncasecmp((char *)r->body, "<!DOC", 5) == 0 || strncasecmp((char *)r->body, "<html", 5) == 0));
}

/* Judges an HTTP reply to a SCEP operation; query_len > 0 for GETs;
 * post_refused when the GET is the fallback after a refused POST. */
static int check_http(const http_response *r, const char *operation, size_t query_len, bool post_refused,
                      util_error *err)
{
    if (r->status == 200) {
        if (r->body_len == 0)
            return util_error_set(err, UTIL_ERR_RESPONSE_EMPTY, "%s: HTTP 200 with an empty body", operation);
        if (is_html(r))
            return util_error_set(err, UTIL_ERR_RESPONSE_HTML, "%s: %s", operation,
                                  r->content_type ? r->content_type : "text/html");
        return 0;
    }
    if ((r->status == 404 || r->status == 414 || r->status == 400) && query_len > IIS_MAX_QUERY_STRING &&
        post_refused)
        return util_error_set(err, UTIL_ERR_HTTP_URL_TOO_LONG_POST_REFUSED,
                              "%s: HTTP %ld for a GET with %zu characters of query string, after the server "
                              "refused the POST",
                              operation, r->status, query_len);
    if ((r->status == 404 || r->status == 414 || r->status == 400) && query_len > IIS_MAX_QUERY_STRING)
        return util_error_set(err, UTIL_ERR_HTTP_URL_TOO_LONG,
                              "%s: HTTP %ld for a GET with %zu characters of query string", operation,
                              r->status, query_len);
    if (r->status >= 500)
        return util_error_set(err, UTIL_ERR_HTTP_SERVER_ERROR, "%s: HTTP %ld%s%s", operation, r->status,
                              r->server ? " from " : "", r->server ? r->server : "");
    return util_error_set(err, UTIL_ERR_HTTP_STATUS, "%s: HTTP %ld", operation, r->status);
}

static int get_operation(const client_config *cfg, const char *operation, const char *message,
                         http_response *resp, util_error *err)
{
    char *url = http_scep_url(cfg->url, operation, message);
    if (!url)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    int rc = http_get(&cfg->http, url, resp, err);
    free(url);
    return rc;
}

void client_caps_handle(client_server *srv, const http_response *resp)
{
    scep_caps_clear(&srv->caps);
    srv->caps_answered = false;
    srv->server_header[0] = '\0';
    srv->iis_major = 0;
    srv->caps_status = 0;
    if (!resp)
        return; /* connection closed: no caps */
    srv->caps_status = resp->status;
    if (resp->server) {
        snprintf(srv->server_header, sizeof srv->server_header, "%s", resp->server);
        const char *iis = strcasestr(resp->server, "Microsoft-IIS/");
        srv->iis_major = iis ? atoi(iis + 14) : 0;
    }
    if (resp->status == 200 && !is_html(resp)) {
        scep_caps_parse(resp->body, resp->body_len, &srv->caps);
        srv->caps_answered = resp->body_len > 0;
    }
}

int client_get_caps(const client_config *cfg, client_server *srv, util_error *err)
{
    http_response resp = {0};
    util_error net;
    if (get_operation(cfg, "GetCACaps", cfg->ca_identifier, &resp, &net) != 0) {
        /* Unpatched NDES closes the connection: that means "no caps" (§3.5.2),
         * but a server that cannot be reached at all is an error. */
        if (net.code != UTIL_ERR_NET_RESET) {
            if (err)
                *err = net;
            return -1;
        }
        if (cfg->verbose)
            log_info("GetCACaps: connection closed; assuming no capabilities");
        client_caps_handle(srv, NULL);
        return 0;
    }
    client_caps_handle(srv, &resp);
    http_response_free(&resp);
    return 0;
}

static int check_ra(const scep_ca_certs *ca, X509 *ra, time_t now, util_error *err)
{
    if (!ra || ra == ca->ca)
        return 0;
    char name[256];
    crypto_name_oneline(X509_get_subject_name(ra), name, sizeof name);
    if (X509_check_issued(ca->ca, ra) != X509_V_OK) {
        /* RA certificates may come from an intermediate that is also sent */
        bool chained = false;
        for (int i = 0; i < sk_X509_num(ca->all) && !chained; i++)
            chained = X509_check_issued(sk_X509_value(ca->all, i), ra) == X509_V_OK;
        if (!chained)
            return util_error_set(err, UTIL_ERR_CACERT_RA_INVALID, "%s is not issued by the CA", name);
    }
    EVP_PKEY *capub = X509_get0_pubkey(ca->ca);
    if (X509_check_issued(ca->ca, ra) == X509_V_OK && X509_verify(ra, capub) != 1) {
        ERR_clear_error();
        return util_error_set(err, UTIL_ERR_CACERT_RA_INVALID, "%s has a bad signature", name);
    }
    time_t nb = crypto_asn1_time_to_time(X509_get0_notBefore(ra));
    time_t na = crypto_asn1_time_to_time(X509_get0_notAfter(ra));
    if (now < nb || now > na)
        return util_error_set(err, UTIL_ERR_CACERT_RA_INVALID, "%s %s", name,
                              now > na ? "has expired" : "is not yet valid");
    return 0;
}

static bool is_staged_next_ca(const client_config *cfg, const X509 *ca)
{
    for (int i = 0; cfg->next_ca && i < sk_X509_num(cfg->next_ca); i++)
        if (X509_cmp(sk_X509_value(cfg->next_ca, i), ca) == 0)
            return true;
    return false;
}

int client_ca_handle(const client_config *cfg, client_server *srv, const http_response *resp, time_t now,
                     util_error *err)
{
    scep_ca_certs *ca = NULL;
    if (check_http(resp, "GetCACert", 0, false, err) != 0 ||
        scep_ca_certs_parse(resp->body, resp->body_len, &ca, err) != 0)
        return -1;
    if (cfg->ca_fingerprint && !crypto_cert_matches_fingerprint(ca->ca, cfg->ca_fingerprint) &&
        !is_staged_next_ca(cfg, ca->ca)) {
        char got[100];
        crypto_cert_fingerprint(ca->ca, EVP_sha256(), got, sizeof got, false);
        scep_ca_certs_free(ca);
        return util_error_set(err, UTIL_ERR_CACERT_FINGERPRINT, "the server's CA has sha256:%s", got);
    }
    if (check_ra(ca, ca->ra_encrypt, now, err) != 0 || check_ra(ca, ca->ra_sign, now, err) != 0) {
        scep_ca_certs_free(ca);
        return -1;
    }
    scep_ca_certs_free(srv->ca);
    srv->ca = ca;
    return 0;
}

int client_get_ca(const client_config *cfg, client_server *srv, time_t now, util_error *err)
{
    http_response resp = {0};
    if (get_operation(cfg, "GetCACert", cfg->ca_identifier, &resp, err) != 0)
        return -1;
    int rc = client_ca_handle(cfg, srv, &resp, now, err);
    http_response_free(&resp);
    return rc;
}

int client_discover(const client_config *cfg, client_server *srv, time_t now, util_error *err)
{
    if (client_get_caps(cfg, srv, err) != 0)
        return -1;
    return client_get_ca(cfg, srv, now, err);
}

int client_next_ca_handle(const client_server *srv, const http_response *resp, STACK_OF(X509) * *out,
                          util_error *err)
{
    scep_pki_message *m = NULL;
    int rc = -1;
    if (check_http(resp, "GetNextCACert", 0, false, err) != 0)
        return -1;
    if (scep_pki_message_parse(resp->body, resp->body_len, srv->ca->all, &m, err) != 0)
        goto out;
    if (!m->signature_valid || !m->signer ||
        (X509_cmp(m->signer, srv->ca->ca) != 0 && X509_cmp(m->signer, srv->ca->ra_sign) != 0)) {
        util_error_set(err, m->signature_checked ? UTIL_ERR_RESPONSE_SIGNATURE : UTIL_ERR_RESPONSE_SIGNER,
                       "GetNextCACert reply is not signed by the current CA");
        goto out;
    }
    if (!m->content) {
        util_error_set(err, UTIL_ERR_RESPONSE_PARSE, "GetNextCACert reply has no content");
        goto out;
    }
    rc = scep_certs_only_parse(m->content, m->content_len, out, NULL, err);
out:
    scep_pki_message_free(m);
    return rc;
}

int client_get_next_ca(const client_config *cfg, const client_server *srv, STACK_OF(X509) * *out,
                       util_error *err)
{
    http_response resp = {0};
    if (get_operation(cfg, "GetNextCACert", cfg->ca_identifier, &resp, err) != 0)
        return -1;
    int rc = client_next_ca_handle(srv, &resp, out, err);
    http_response_free(&resp);
    return rc;
}

const EVP_CIPHER *client_cipher_for_signer(const EVP_CIPHER *chosen, EVP_PKEY *signer_key)
{
    /* servers wrap an AES reply's key with RSA-OAEP (NDES does), which
     * tpm2-openssl cannot decrypt; with 3DES they use PKCS#1 v1.5 */
    return util_pkey_in_tpm(signer_key) ? EVP_des_ede3_cbc() : chosen;
}

void client_choose(const client_config *cfg, const client_server *srv, client_choice *out)
{
    const scep_caps *c = &srv->caps;
    out->is_ndes = srv->iis_major > 0;
    if (cfg->digest)
        out->digest = cfg->digest;
    else if (scep_caps_has(c, SCEP_CAP_SHA512))
        out->digest = EVP_sha512();
    else if (scep_caps_has(c, SCEP_CAP_SHA256) || out->is_ndes)
        out->digest = EVP_sha256();
    else if (scep_caps_has(c, SCEP_CAP_SHA1) || !srv->caps_answered)
        out->digest = EVP_sha1();
    else
        out->digest = EVP_sha256();
    if (cfg->cipher)
        out->cipher = cfg->cipher;
    else if (scep_caps_has(c, SCEP_CAP_AES) || srv->iis_major >= 10)
        out->cipher = EVP_aes_128_cbc();
    else
        out->cipher = EVP_des_ede3_cbc();
    if (cfg->method != CLIENT_METHOD_AUTO)
        out->post = cfg->method == CLIENT_METHOD_POST;
    else
        out->post = scep_caps_has(c, SCEP_CAP_POSTPKIOPERATION) && !(srv->iis_major && srv->iis_major < 8);
}

char *client_pki_get_url(const client_config *cfg, const uint8_t *msg, size_t len, size_t *query_len)
{
    char *b64 = util_base64_encode(msg, len);
    char *escaped = b64 ? http_url_escape(b64) : NULL;
    char *url = escaped ? http_scep_url(cfg->url, "PKIOperation", b64) : NULL;
    if (url && query_len)
        *query_len = strlen("operation=PKIOperation&message=") + strlen(escaped);
    free(b64);
    free(escaped);
    return url;
}

bool client_post_needs_get(const http_response *resp)
{
    return (resp->status == 200 && resp->body_len == 0) || resp->status == 405;
}

int client_check_http(const http_response *resp, const char *operation, size_t query_len, bool post_refused,
                      util_error *err)
{
    return check_http(resp, operation, query_len, post_refused, err);
}

/* POST when chosen; GET otherwise, or when a POST gets an empty 200 (NDES
 * 2012 R2) or 405. */
static int transmit(const client_config *cfg, bool post, const uint8_t *msg, size_t len, http_response *resp,
                    util_error *err)
{
    if (post) {
        char *url = http_scep_url(cfg->url, "PKIOperation", NULL);
        if (!url)
            return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        int rc = http_post(&cfg->http, url, msg, len, "application/x-pki-message", resp, err);
        free(url);
        if (rc != 0)
            return -1;
        if (!client_post_needs_get(resp))
            return check_http(resp, "PKIOperation (POST)", 0, false, err);
        if (cfg->verbose)
            log_info("POST answered HTTP %ld%s; retrying with GET", resp->status,
                     resp->body_len ? "" : " with an empty body");
        http_response_free(resp);
    }
    size_t query_len = 0;
    char *url = client_pki_get_url(cfg, msg, len, &query_len);
    if (!url)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    int rc = http_get(&cfg->http, url, resp, err);
    free(url);
    if (rc != 0)
        return -1;
    return check_http(resp, "PKIOperation (GET)", query_len, post, err);
}

static STACK_OF(X509) * expected_signers(const scep_ca_certs *ca)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    if (s) {
        if (ca->ra_sign)
            sk_X509_push(s, ca->ra_sign);
        if (ca->ca != ca->ra_sign)
            sk_X509_push(s, ca->ca);
    }
    return s;
}

static int open_success(const client_transaction *t, const scep_pki_message *m, client_result *r,
                        util_error *err)
{
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    if (scep_envelope_open(m->content, m->content_len, t->signer_cert, t->signer_key, &inner, &inner_len,
                           NULL, 0, err) != 0)
        return -1;
    int rc = scep_certrep_content(inner, inner_len, t->new_key, t->new_key ? &r->cert : NULL, &r->chain,
                                  &r->crl, err);
    OPENSSL_free(inner);
    return rc;
}

static void describe_failure(const scep_pki_message *m, client_result *r)
{
    r->failure = scep_failure_error(m);
    int n = snprintf(r->failure_detail, sizeof r->failure_detail, "failInfo %d (%s)", m->fail_info,
                     scep_fail_info_name(m->fail_info));
    if (m->fail_info_text && n > 0 && (size_t)n < sizeof r->failure_detail)
        n += snprintf(r->failure_detail + n, sizeof r->failure_detail - (size_t)n, ", \"%s\"",
                      m->fail_info_text);
    if (m->ms_hresult && n > 0 && (size_t)n < sizeof r->failure_detail) {
        long hr = strtol(m->ms_hresult, NULL, 0);
        snprintf(r->failure_detail + n, sizeof r->failure_detail - (size_t)n, ", HRESULT 0x%08lX",
                 (unsigned long)hr & 0xffffffffUL);
    }
}

int client_pki_prepare(const client_server *srv, const client_transaction *t, int type,
                       const uint8_t *message_data, size_t message_data_len, time_t now,
                       uint8_t nonce[SCEP_NONCE_LEN], uint8_t **msg, size_t *msg_len, util_error *err)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    int rc = -1;
    if (!recipients || !srv->ca || !srv->ca->ra_encrypt ||
        sk_X509_push(recipients, srv->ca->ra_encrypt) <= 0 || RAND_bytes(nonce, SCEP_NONCE_LEN) != 1) {
        util_error_set(err, UTIL_ERR_INTERNAL, "preparing the request");
        goto out;
    }
    scep_pki_message_params p = {
        .type = type,
        .transaction_id = t->transaction_id,
        .sender_nonce = nonce,
        .sender_nonce_len = SCEP_NONCE_LEN,
        .signer_cert = t->signer_cert,
        .signer_key = t->signer_key,
        .digest = t->choice.digest,
        .include_signer_cert = true,
        .signing_time = now,
        .content = message_data,
        .content_len = message_data_len,
        .recipients = recipients,
        .cipher = client_cipher_for_signer(t->choice.cipher, t->signer_key),
    };
    rc = scep_pki_message_encode(&p, msg, msg_len, err);
out:
    sk_X509_free(recipients);
    return rc;
}

int client_pki_finish(const client_server *srv, const client_transaction *t,
                      const uint8_t nonce[SCEP_NONCE_LEN], const http_response *resp, client_result *r,
                      util_error *err)
{
    scep_pki_message *reply = NULL;
    STACK_OF(X509) *signers = expected_signers(srv->ca);
    int rc = -1;
    memset(r, 0, sizeof *r);
    if (!signers) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (scep_pki_message_parse(resp->body, resp->body_len, srv->ca->all, &reply, err) != 0 ||
        scep_certrep_check(reply, signers, t->transaction_id, nonce, SCEP_NONCE_LEN, err) != 0)
        goto out;
    r->status = reply->pki_status;
    if (r->status == SCEP_STATUS_SUCCESS && open_success(t, reply, r, err) != 0)
        goto out;
    if (r->status == SCEP_STATUS_FAILURE)
        describe_failure(reply, r);
    rc = 0;
out:
    if (rc != 0)
        client_result_clear(r);
    scep_pki_message_free(reply);
    sk_X509_free(signers);
    return rc;
}

static void *preload(void *arg)
{
    (void)arg;
    scep_envelope_preload();
    return NULL;
}

int client_pki_operation(const client_config *cfg, const client_server *srv, const client_transaction *t,
                         int type, const uint8_t *message_data, size_t message_data_len, client_result *r,
                         util_error *err)
{
    uint8_t nonce[SCEP_NONCE_LEN];
    uint8_t *msg = NULL;
    size_t msg_len = 0;
    http_response resp = {0};
    int rc = -1;
    memset(r, 0, sizeof *r);
    if (client_pki_prepare(srv, t, type, message_data, message_data_len, time(NULL), nonce, &msg, &msg_len,
                           err) != 0)
        goto out;
    /* micromdm, step-ca and old NDES reply in single DES, whatever their
     * caps say: what opens it loads while the request is on the network */
    pthread_t loader;
    bool loading = pthread_create(&loader, NULL, preload, NULL) == 0;
    int sent = transmit(cfg, t->choice.post, msg, msg_len, &resp, err);
    if (loading)
        pthread_join(loader, NULL);
    if (sent != 0)
        goto out;
    rc = client_pki_finish(srv, t, nonce, &resp, r, err);
out:
    http_response_free(&resp);
    OPENSSL_free(msg);
    return rc;
}

int client_poll_data(const client_server *srv, const client_transaction *t, uint8_t **der, size_t *len,
                     util_error *err)
{
    return scep_issuer_and_subject_encode(X509_get_subject_name(srv->ca->ca), t->subject, der, len, err);
}

int client_enroll(const client_config *cfg, const client_server *srv, const client_transaction *t,
                  const uint8_t *csr_der, size_t csr_len, client_result *r, util_error *err)
{
    return client_pki_operation(cfg, srv, t, t->request_type ? t->request_type : SCEP_MSG_PKCSREQ, csr_der,
                                csr_len, r, err);
}

int client_poll(const client_config *cfg, const client_server *srv, const client_transaction *t,
                client_result *r, util_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (client_poll_data(srv, t, &data, &len, err) != 0)
        return -1;
    int rc = client_pki_operation(cfg, srv, t, SCEP_MSG_CERTPOLL, data, len, r, err);
    OPENSSL_free(data);
    return rc;
}

/* The chain to store: what the reply carried besides the certificate, else
 * the CA certificates from GetCACert (never the RA certificates). */
STACK_OF(X509) * client_result_chain(const client_result *r, const client_server *srv)
{
    if (r->chain && sk_X509_num(r->chain) > 0)
        return X509_chain_up_ref(r->chain);
    STACK_OF(X509) *chain = sk_X509_new_null();
    for (int i = 0; chain && srv->ca && i < sk_X509_num(srv->ca->all); i++) {
        X509 *x = sk_X509_value(srv->ca->all, i);
        if (crypto_cert_is_ca(x) && sk_X509_push(chain, x) > 0)
            X509_up_ref(x);
    }
    return chain;
}

void client_result_error(const client_result *r, util_error *err)
{
    if (r->status == SCEP_STATUS_PENDING)
        util_error_set(err, UTIL_ERR_PENDING, "the request is waiting for approval");
    else
        util_error_set(err, r->failure ? r->failure : UTIL_ERR_FAIL_UNKNOWN, "%s", r->failure_detail);
}
