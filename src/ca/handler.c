/* The request handler: HTTP request in, HTTP response out (RFC 8894 §4). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca/internal.h"
#include "util/codec.h"
#include "util/file.h"
#include "ca/profile.h"
#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "scep/scep.h"
#include "util/log.h"

#define CA_MAX_MESSAGE (256 * 1024) /* decoded GET message */

/* ---- responses ---- */

int ca_response_set_body(ca_http_response *resp, const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    if (len)
        memcpy(copy, data, len);
    free(resp->body);
    resp->body = copy;
    resp->body_len = len;
    return 0;
}

void ca_response_add_header(ca_http_response *resp, const char *name, const char *value)
{
    for (size_t i = 0; i < resp->header_count; i++)
        if (strcasecmp(resp->header_names[i], name) == 0) {
            snprintf(resp->header_values[i], sizeof resp->header_values[i], "%s", value);
            return;
        }
    if (resp->header_count == CA_MAX_HEADERS)
        return;
    resp->header_names[resp->header_count] = name;
    snprintf(resp->header_values[resp->header_count], sizeof resp->header_values[0], "%s", value);
    resp->header_count++;
}

void ca_response_text(ca_http_response *resp, int status, const char *text)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    if (ca_response_set_body(resp, text, strlen(text)) != 0) {
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
    }
}

void ca_http_response_clear(ca_http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

/* ---- server ---- */

static int load_optional(ca_server *srv, const char *role, X509 **c, EVP_PKEY **k, util_error *err)
{
    int rc = ca_material_load(srv->store, role, c, k, err);
    return rc < 0 ? -1 : 0;
}

static void load_admin(ca_server *srv)
{
    char *v = NULL;
    util_error err;
    struct {
        const char *name;
        char *dst;
        size_t len;
    } rows[] = {
        {"admin_user", srv->admin_user, sizeof srv->admin_user},
        {"admin_salt", srv->admin_salt, sizeof srv->admin_salt},
        {"admin_hash", srv->admin_hash, sizeof srv->admin_hash},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (store_ca_setting_get(srv->store, rows[i].name, &v, &err) == 0)
            snprintf(rows[i].dst, rows[i].len, "%s", v);
        free(v);
        v = NULL;
    }
}

util_throttle *ca_challenge_throttle_new(void)
{
    util_throttle_config throttle = {CA_CHALLENGE_FREE_FAILURES, CA_CHALLENGE_FIRST_WAIT_S,
                                     CA_CHALLENGE_MAX_WAIT_S, 3600, 1024};
    return util_throttle_new(&throttle);
}

int ca_server_open(const ca_config *cfg, ca_server **out, util_error *err)
{
    ca_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    srv->cfg = cfg;
    if (store_ca_open(cfg->dir, false, &srv->store, err) != 0)
        goto fail;
    int rc = ca_material_load(srv->store, "ca", &srv->ca_cert, &srv->ca_key, err);
    if (rc == 1)
        util_error_set(err, UTIL_ERR_INPUT_FILE, "%s holds no CA (run 'scepca init')", cfg->dir);
    if (rc != 0)
        goto fail;
    if (load_optional(srv, "ra_encrypt", &srv->ra_enc_cert, &srv->ra_enc_key, err) != 0 ||
        load_optional(srv, "ra_sign", &srv->ra_sign_cert, &srv->ra_sign_key, err) != 0)
        goto fail;
    if (!srv->ra_enc_cert != !srv->ra_sign_cert) {
        util_error_set(err, UTIL_ERR_INPUT_FILE, "%s holds only one of the RA certificates", cfg->dir);
        goto fail;
    }
    if (ca_material_fault_certs(srv, time(NULL), err) != 0)
        goto fail;
    /* 'scepca approve' issues with the validity the server was started with */
    char days[16];
    snprintf(days, sizeof days, "%d", cfg->validity_days > 0 ? cfg->validity_days : CA_DEFAULT_VALIDITY_DAYS);
    if (store_ca_setting_set(srv->store, "validity_days", days, err) != 0)
        goto fail;
    load_admin(srv);
    if (!(srv->challenge_throttle = cfg->challenge_throttle) &&
        !(srv->challenge_throttle = srv->own_throttle = ca_challenge_throttle_new())) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    *out = srv;
    return 0;
fail:
    ca_server_free(srv);
    return -1;
}

void ca_server_prepare(ca_server *srv)
{
    crypto_key_prepare(srv->ca_key);
    if (srv->ra_enc_key != srv->ca_key)
        crypto_key_prepare(srv->ra_enc_key);
    if (srv->ra_sign_key != srv->ca_key && srv->ra_sign_key != srv->ra_enc_key)
        crypto_key_prepare(srv->ra_sign_key);
}

void ca_server_free(ca_server *srv)
{
    if (!srv)
        return;
    X509_free(srv->ca_cert);
    X509_free(srv->ra_enc_cert);
    X509_free(srv->ra_sign_cert);
    X509_free(srv->expired_enc);
    X509_free(srv->expired_sign);
    X509_free(srv->rogue_cert);
    EVP_PKEY_free(srv->ca_key);
    EVP_PKEY_free(srv->ra_enc_key);
    EVP_PKEY_free(srv->ra_sign_key);
    EVP_PKEY_free(srv->rogue_key);
    store_ca_close(srv->store);
    OPENSSL_cleanse(srv->admin_hash, sizeof srv->admin_hash);
    util_throttle_free(srv->own_throttle);
    free(srv);
}

/* ---- query strings ---- */

/* The percent-decoded value of name in query, or NULL. A '+' stays a '+':
 * base64 clients that do not escape it (sscep) are common. */
static char *query_param(const char *query, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t vlen = len - nlen - 1;
            char *out = malloc(vlen + 1);
            size_t o = 0;
            for (size_t i = 0; out && i < vlen; i++) {
                int h, l;
                if (v[i] == '%' && i + 2 < vlen && (h = util_hex_digit(v[i + 1])) >= 0 &&
                    (l = util_hex_digit(v[i + 2])) >= 0) {
                    out[o++] = (char)(h << 4 | l);
                    i += 2;
                } else {
                    out[o++] = v[i];
                }
            }
            if (out)
                out[o] = '\0';
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Base64 with line breaks, blanks (a '+' turned into ' ') and missing padding
 * tolerated. */
int ca_base64_decode(const char *text, uint8_t **out, size_t *out_len)
{
    size_t n = strlen(text), o = 0;
    if (n > CA_MAX_MESSAGE * 2)
        return -1;
    char *clean = malloc(n + 4);
    if (!clean)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '\r' || c == '\n' || c == '\t')
            continue;
        clean[o++] = c == ' ' ? '+' : c;
    }
    while (o % 4)
        clean[o++] = '=';
    int rc = util_base64_decode(clean, o, out, out_len);
    free(clean);
    return rc;
}

/* ---- operations ---- */

static void get_ca_caps(ca_server *srv, ca_http_response *resp)
{
    const ca_profile_info *pi = ca_profile_get(srv->cfg->profile);
    resp->status = 200;
    resp->content_type = pi->caps_content_type;
    if (ca_response_set_body(resp, pi->caps, strlen(pi->caps)) != 0)
        ca_response_text(resp, 500, "out of memory\n");
}

static void get_ca_cert(ca_server *srv, ca_http_response *resp)
{
    util_error err = {0};
    uint8_t *der = NULL;
    size_t len = 0;
    ca_fault_set f;
    ca_fault_roll(srv->cfg, &f);
    if (!srv->ra_enc_cert) {
        if (crypto_cert_to_der(srv->ca_cert, &der, &len, &err) != 0)
            goto fail;
        resp->content_type = "application/x-x509-ca-cert";
    } else {
        bool expired = f.on[CA_FAULT_EXPIRED_RA] && srv->expired_sign;
        STACK_OF(X509) *certs = sk_X509_new_null();
        int ok = certs && sk_X509_push(certs, expired ? srv->expired_sign : srv->ra_sign_cert) &&
                 sk_X509_push(certs, expired ? srv->expired_enc : srv->ra_enc_cert) &&
                 sk_X509_push(certs, srv->ca_cert);
        ok = ok && scep_certs_only_encode(certs, NULL, &der, &len, &err) == 0;
        sk_X509_free(certs);
        if (!ok)
            goto fail;
        resp->content_type = "application/x-x509-ca-ra-cert";
    }
    resp->status = 200;
    if (ca_response_set_body(resp, der, len) != 0)
        ca_response_text(resp, 500, "out of memory\n");
    OPENSSL_free(der);
    return;
fail:
    log_error("GetCACert: %s", err.detail);
    ca_response_text(resp, 500, "scepca could not encode its certificates\n");
    OPENSSL_free(der);
}

static void get_next_ca_cert(ca_server *srv, ca_http_response *resp)
{
    util_error err = {0};
    X509 *next = NULL;
    EVP_PKEY *next_key = NULL;
    STACK_OF(X509) *certs = NULL;
    uint8_t *inner = NULL, *der = NULL;
    size_t inner_len = 0, len = 0;
    int rc = ca_material_load(srv->store, "next_ca", &next, &next_key, &err);
    if (rc == 1) {
        ca_response_text(resp, 404, "No next CA certificate is staged ('scepca rollover').\n");
        goto out;
    }
    if (rc != 0 || !(certs = sk_X509_new_null()) || sk_X509_push(certs, next) <= 0 ||
        scep_certs_only_encode(certs, NULL, &inner, &inner_len, &err) != 0 ||
        crypto_ca_sign_data(srv->ca_cert, srv->ca_key, EVP_sha256(), inner, inner_len, &der, &len, &err) !=
            0) {
        log_error("GetNextCACert: %s", err.detail);
        ca_response_text(resp, 500, "scepca could not build the GetNextCACert reply\n");
        goto out;
    }
    resp->status = 200;
    resp->content_type = "application/x-x509-next-ca-cert";
    if (ca_response_set_body(resp, der, len) != 0)
        ca_response_text(resp, 500, "out of memory\n");
out:
    sk_X509_free(certs);
    OPENSSL_free(inner);
    OPENSSL_free(der);
    X509_free(next);
    EVP_PKEY_free(next_key);
}

static void pki_operation_get(ca_server *srv, const ca_http_request *req, time_t now, ca_http_response *resp)
{
    char *message = query_param(req->query, "message");
    uint8_t *der = NULL;
    size_t len = 0;
    if (!message || !message[0]) {
        log_warn("%s: PKIOperation by GET without a message", req->peer);
        ca_response_text(resp, 400, "PKIOperation needs message=BASE64 (RFC 8894 §4.1).\n");
    } else if (ca_base64_decode(message, &der, &len) != 0 || len == 0) {
        log_warn("%s: PKIOperation message is not base64", req->peer);
        ca_response_text(resp, 400, "The message parameter is not valid base64.\n");
    } else {
        ca_pki_operation(srv, der, len, now, req->peer, resp);
    }
    free(message);
    free(der);
}

static void pki_operation_post(ca_server *srv, const ca_http_request *req, time_t now, ca_http_response *resp)
{
    const ca_profile_info *pi = ca_profile_get(srv->cfg->profile);
    if (pi->post == CA_POST_REFUSED) {
        ca_response_text(resp, 405, "POST is not supported here; use GET.\n");
        ca_response_add_header(resp, "Allow", "GET");
        return;
    }
    if (pi->post == CA_POST_EMPTY_200) {
        log_info("%s: POST PKIOperation answered with an empty 200 (%s)", req->peer, pi->name);
        resp->status = 200;
        resp->content_type = NULL;
        return;
    }
    if (req->body_len == 0) {
        log_warn("%s: POST PKIOperation with an empty body", req->peer);
        ca_response_text(resp, 400, "POST PKIOperation needs the pkiMessage as the body.\n");
        return;
    }
    ca_pki_operation(srv, req->body, req->body_len, now, req->peer, resp);
}

static bool is_scep_path(const char *path)
{
    static const char *const paths[] = {
        "/scep",
        "/scep/",
        "/cgi-bin/pkiclient.exe",
        "/certsrv/mscep/mscep.dll",
        "/certsrv/mscep/mscep.dll/pkiclient.exe",
        "/certsrv/mscep/",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (strcmp(path, paths[i]) == 0)
            return true;
    return false;
}

static void dispatch_operation(ca_server *srv, const ca_http_request *req, const char *op, time_t now,
                               ca_http_response *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    if (post && (!op || strcasecmp(op, "PKIOperation") == 0)) {
        pki_operation_post(srv, req, now, resp);
    } else if (!op) {
        /* NDES answers a bare mscep.dll with 403.0 */
        ca_response_text(resp, ca_profile_is_ndes(srv->cfg->profile) ? 403 : 400,
                         "Give ?operation=GetCACaps, GetCACert or PKIOperation.\n");
    } else if (post) {
        ca_response_text(resp, 405, "Only PKIOperation may be sent by POST.\n");
    } else if (strcasecmp(op, "GetCACaps") == 0) {
        get_ca_caps(srv, resp);
    } else if (strcasecmp(op, "GetCACert") == 0) {
        get_ca_cert(srv, resp);
    } else if (strcasecmp(op, "GetNextCACert") == 0) {
        get_next_ca_cert(srv, resp);
    } else if (strcasecmp(op, "PKIOperation") == 0) {
        pki_operation_get(srv, req, now, resp);
    } else {
        log_warn("%s: unknown operation", req->peer);
        ca_response_text(resp, 400, "Unknown operation (RFC 8894 §4).\n");
    }
}

bool ca_request_is_light(const ca_http_request *req)
{
    if (!req->method || strcmp(req->method, "GET") != 0 || !req->query ||
        !is_scep_path(req->path ? req->path : "/"))
        return false;
    char *op = query_param(req->query, "operation");
    bool light = op && (strcasecmp(op, "GetCACaps") == 0 || strcasecmp(op, "GetCACert") == 0);
    free(op);
    return light;
}

void ca_handle(ca_server *srv, const ca_http_request *req, time_t now, ca_http_response *resp)
{
    const ca_profile_info *pi = ca_profile_get(srv->cfg->profile);
    size_t max_query = srv->cfg->max_query_string ? srv->cfg->max_query_string : pi->default_max_query;
    const char *path = req->path ? req->path : "/";
    char *op = NULL;
    memset(resp, 0, sizeof *resp);
    ca_response_add_header(resp, "Server", pi->server);
    if (strncmp(path, "/certsrv/mscep_admin", 20) == 0) {
        ca_admin_page(srv, req, now, resp);
    } else if (!is_scep_path(path)) {
        ca_response_text(resp, 404, "Not found.\n");
    } else if (req->query && strlen(req->query) > max_query) {
        log_warn("%s: query string of %zu characters exceeds %zu", req->peer, strlen(req->query), max_query);
        ca_response_text(resp, pi->too_long_status,
                         pi->too_long_status == 404 ? "Not found (404.15: the query string is too long).\n"
                                                    : "URI too long: use POST.\n");
    } else if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0) {
        ca_response_text(resp, 405, "Use GET or POST.\n");
        ca_response_add_header(resp, "Allow", "GET, POST");
    } else {
        op = req->query ? query_param(req->query, "operation") : NULL;
        dispatch_operation(srv, req, op, now, resp);
    }
    log_debug("%s: %s %s%s%s -> %d", req->peer, req->method, path, op ? " " : "", op ? op : "", resp->status);
    free(op);
}
