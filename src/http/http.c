/*
 * Blocking HTTP on curl easy handles, and the transfer setup and error
 * mapping that multi.c shares (http_internal.h).
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"
#include "http/plain.h"
#include "util/buf.h"
#include "util/file.h"

#define HTTP_DEFAULT_CONNECT_MS 10000L
#define HTTP_DEFAULT_TOTAL_MS 60000L
#define HTTP_DEFAULT_MAX ((size_t)1 << 20)
#define HTTP_DEFAULT_CONTENT_TYPE "application/x-pki-message"
#define HTTP_DEFAULT_UA "scepd/" SCEPD_VERSION

static const http_options http_no_options;

/* ---- curl callbacks: body and headers ---------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_xfer *x = userdata;
    size_t n = size * nmemb;
    if (util_buf_append(&x->body, ptr, n) < 0) {
        if (n > x->body.max - x->body.len)
            x->too_large = true;
        else
            x->oom = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

static void trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Keeps the Server: header of the last response only (interim 1xx and
 * proxy CONNECT responses start over at their status line; trailers after
 * the blank line are ignored). */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_xfer *x = userdata;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        free(x->server);
        x->server = NULL;
        x->in_headers = true;
        return n;
    }
    const char *v = ptr;
    size_t vn = n;
    trim(&v, &vn);
    if (vn == 0) {
        x->in_headers = false;
        return n;
    }
    if (!x->in_headers || vn < 7 || strncasecmp(v, "server:", 7) != 0)
        return n;
    v += 7;
    vn -= 7;
    trim(&v, &vn);
    free(x->server);
    x->server = strndup(v, vn);
    if (!x->server)
        x->oom = true;
    return n;
}

/* ---- certificate pin --------------------------------------------------- */

static int parse_pin(const char *pin, uint8_t out[HTTP_PIN_LEN])
{
    uint8_t tmp[HTTP_PIN_LEN + 1];
    if (strncasecmp(pin, "sha256:", 7) != 0)
        return -1;
    if (util_unhex(pin + 7, tmp, sizeof tmp) != HTTP_PIN_LEN)
        return -1;
    memcpy(out, tmp, HTTP_PIN_LEN);
    return 0;
}

static bool cert_matches(X509 *cert, const uint8_t pin[HTTP_PIN_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!cert || !X509_digest(cert, EVP_sha256(), md, &n))
        return false;
    return n == HTTP_PIN_LEN && CRYPTO_memcmp(md, pin, HTTP_PIN_LEN) == 0;
}

/* The certificate with the pinned fingerprint among those the server sent. */
static X509 *find_pinned(X509_STORE_CTX *sctx, const uint8_t pin[HTTP_PIN_LEN])
{
    X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
    if (cert_matches(leaf, pin))
        return leaf;
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(sctx);
    for (int i = 0; i < sk_X509_num(sent); i++)
        if (cert_matches(sk_X509_value(sent, i), pin))
            return sk_X509_value(sent, i);
    return NULL;
}

/* Verifies the presented chain with the pinned certificate as the only trust
 * anchor (signatures, validity, CA constraints, TLS server purpose), so that
 * a chain that merely includes a public CA certificate is not accepted. */
/* The server's certificate must also name the host of the URL (an IP
 * address as an iPAddress SAN), unless the pin alone was asked for. */
static bool expect_host(X509_STORE_CTX *vctx, const http_xfer *x)
{
    if (!x->pin_check_host || !x->host)
        return true;
    char host[256];
    size_t n = strlen(x->host);
    const char *h = x->host;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof host)
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(vctx);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    return is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1
                 : X509_VERIFY_PARAM_set1_host(param, host, 0) == 1;
}

static int verify_to_pinned(X509_STORE_CTX *sctx, X509 *pinned, const http_xfer *x)
{
    int verr = X509_V_ERR_UNSPECIFIED;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    if (!store || !vctx || !X509_STORE_add_cert(store, pinned))
        goto out;
    if (!X509_STORE_CTX_init(vctx, store, X509_STORE_CTX_get0_cert(sctx),
                             X509_STORE_CTX_get0_untrusted(sctx)))
        goto out;
    X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_PARTIAL_CHAIN);
    if (!X509_STORE_CTX_set_default(vctx, "ssl_server") || !expect_host(vctx, x))
        goto out;
    if (X509_verify_cert(vctx) == 1)
        verr = X509_V_OK;
    else if (X509_STORE_CTX_get_error(vctx) != X509_V_OK)
        verr = X509_STORE_CTX_get_error(vctx);
out:
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    return verr;
}

/* Replaces OpenSSL's chain verification for this connection. */
static int on_verify(X509_STORE_CTX *sctx, void *arg)
{
    http_xfer *x = arg;
    X509 *pinned = find_pinned(sctx, x->pin);
    if (!pinned) {
        x->pin_state = HTTP_PIN_MISMATCH;
        X509_STORE_CTX_set_error(sctx, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    int verr = verify_to_pinned(sctx, pinned, x);
    if (verr != X509_V_OK) {
        x->pin_state = HTTP_PIN_CHAIN_BAD;
        x->pin_verify_error = verr;
        X509_STORE_CTX_set_error(sctx, verr);
        return 0;
    }
    x->pin_state = HTTP_PIN_OK;
    return 1;
}

static CURLcode on_ssl_ctx(CURL *easy, void *sslctx, void *arg)
{
    (void)easy;
    SSL_CTX *ctx = sslctx;
    /* curl was told not to verify; the handshake fails when on_verify does. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, on_verify, arg);
    return CURLE_OK;
}

/* ---- transfer setup ---------------------------------------------------- */

#define SET(x, opt, val) (curl_easy_setopt((x)->easy, (opt), (val)) == CURLE_OK)

/* Keeps the host (for messages) and the query (to scrub from curl's text). */
static int parse_url(http_xfer *x, const char *url, util_error *err)
{
    int rc = -1;
    char *scheme = NULL;
    CURLU *u = curl_url();
    if (!u)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &x->host, 0) != CURLUE_OK) {
        util_error_set(err, UTIL_ERR_USAGE, "not an http:// or https:// URL");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &x->query, 0) != CURLUE_OK)
        x->query = NULL;
    rc = 0;
out:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static bool set_basic(http_xfer *x, const http_options *o, const char *url)
{
    long cto = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : HTTP_DEFAULT_CONNECT_MS;
    long tto = o->total_timeout_ms > 0 ? o->total_timeout_ms : HTTP_DEFAULT_TOTAL_MS;
    const char *ua = o->user_agent ? o->user_agent : HTTP_DEFAULT_UA;
    curl_off_t max = x->body.max > (size_t)INT64_MAX ? INT64_MAX : (curl_off_t)x->body.max;
    return SET(x, CURLOPT_URL, url) && SET(x, CURLOPT_PROTOCOLS_STR, "http,https") &&
           SET(x, CURLOPT_NOSIGNAL, 1L) && SET(x, CURLOPT_FOLLOWLOCATION, 0L) &&
           SET(x, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) &&
           SET(x, CURLOPT_CONNECTTIMEOUT_MS, cto) && SET(x, CURLOPT_TIMEOUT_MS, tto) &&
           SET(x, CURLOPT_MAXFILESIZE_LARGE, max) && SET(x, CURLOPT_USERAGENT, ua) &&
           SET(x, CURLOPT_ERRORBUFFER, x->errbuf) && SET(x, CURLOPT_WRITEFUNCTION, on_body) &&
           SET(x, CURLOPT_WRITEDATA, x) && SET(x, CURLOPT_HEADERFUNCTION, on_header) &&
           SET(x, CURLOPT_HEADERDATA, x) && SET(x, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L) &&
           SET(x, CURLOPT_VERBOSE, o->verbose ? 1L : 0L) &&
           /* Each transfer gets its own connection and full handshake, so a
            * connection or TLS session verified under other settings (pin,
            * insecure) is never reused. */
           SET(x, CURLOPT_FRESH_CONNECT, 1L) && SET(x, CURLOPT_FORBID_REUSE, 1L) &&
           SET(x, CURLOPT_SSL_SESSIONID_CACHE, 0L);
}

static int set_tls(http_xfer *x, const http_options *o, util_error *err)
{
    if (o->ca_file && !SET(x, CURLOPT_CAINFO, o->ca_file))
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (!o->pin_sha256) {
        if (o->insecure && !(SET(x, CURLOPT_SSL_VERIFYPEER, 0L) && SET(x, CURLOPT_SSL_VERIFYHOST, 0L)))
            return util_error_set(err, UTIL_ERR_INTERNAL, "curl refused TLS options");
        return 0;
    }
    if (parse_pin(o->pin_sha256, x->pin) < 0)
        return util_error_set(err, UTIL_ERR_USAGE, "the TLS pin must be sha256: and 64 hex digits");
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (!v->ssl_version || strncmp(v->ssl_version, "OpenSSL", 7) != 0)
        return util_error_set(err, UTIL_ERR_NET_TLS,
                              "certificate pinning needs curl's OpenSSL backend, not %s",
                              v->ssl_version ? v->ssl_version : "none");
    x->has_pin = true;
    x->pin_check_host = !o->pin_skip_host_check;
    /* The pin replaces chain validation against a CA store; the host check
     * stays (verify_to_pinned) unless pin_skip_host_check. */
    if (!(SET(x, CURLOPT_SSL_VERIFYPEER, 0L) && SET(x, CURLOPT_SSL_VERIFYHOST, 0L) &&
          SET(x, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) && SET(x, CURLOPT_SSL_CTX_DATA, x)))
        return util_error_set(err, UTIL_ERR_NET_TLS, "curl cannot install the TLS pin check");
    return 0;
}

static bool set_proxy(http_xfer *x, const http_options *o)
{
    if (!o->proxy)
        return true; /* curl's default: the *_proxy environment variables */
    if (!*o->proxy)
        return SET(x, CURLOPT_PROXY, "") && SET(x, CURLOPT_NOPROXY, "*");
    x->explicit_proxy = true;
    /* errors name the proxy, never its password */
    const char *p = o->proxy, *scheme = strstr(p, "://");
    const char *host = scheme ? scheme + 3 : p;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        snprintf(x->proxy_name, sizeof x->proxy_name, "%.*s%s", (int)(host - p), p, at + 1);
    else
        snprintf(x->proxy_name, sizeof x->proxy_name, "%s", p);
    return SET(x, CURLOPT_PROXY, o->proxy);
}

static int set_post(http_xfer *x, const uint8_t *body, size_t len, const char *ctype, util_error *err)
{
    int rc = -1;
    char *line = NULL;
    if (!ctype)
        ctype = HTTP_DEFAULT_CONTENT_TYPE;
    if (strpbrk(ctype, "\r\n"))
        return util_error_set(err, UTIL_ERR_USAGE, "Content-Type holds a line break");
    if (asprintf(&line, "Content-Type: %s", ctype) < 0) {
        line = NULL;
        goto out;
    }
    /* "Expect:" with no value stops curl from sending Expect: 100-continue. */
    const char *hdrs[] = {line, "Expect:"};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        struct curl_slist *l = curl_slist_append(x->headers, hdrs[i]);
        if (!l)
            goto out;
        x->headers = l;
    }
    if (SET(x, CURLOPT_POST, 1L) && SET(x, CURLOPT_HTTPHEADER, x->headers) &&
        SET(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) &&
        SET(x, CURLOPT_COPYPOSTFIELDS, len ? (const char *)body : ""))
        rc = 0;
out:
    free(line);
    return rc < 0 ? util_error_set(err, UTIL_ERR_INTERNAL, "out of memory") : 0;
}

int http_xfer_new(const http_options *o, const char *url, bool post, const uint8_t *body, size_t len,
                  const char *content_type, http_xfer **out, util_error *err)
{
    int rc = -1;
    http_xfer *x = NULL;
    if (!o)
        o = &http_no_options;
    if (!url || !out || (post && len && !body)) {
        util_error_set(err, UTIL_ERR_USAGE, "missing URL or body");
        goto out;
    }
    if (!(x = calloc(1, sizeof *x)) || !(x->easy = curl_easy_init())) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    util_buf_init(&x->body, o->max_response ? o->max_response : HTTP_DEFAULT_MAX, false);
    if (parse_url(x, url, err) < 0)
        goto out;
    if (!set_basic(x, o, url) || !set_proxy(x, o)) {
        util_error_set(err, UTIL_ERR_INTERNAL, "curl refused an option for %s", x->host);
        goto out;
    }
    if (set_tls(x, o, err) < 0 || (post && set_post(x, body, len, content_type, err) < 0))
        goto out;
    *out = x;
    x = NULL;
    rc = 0;
out:
    http_xfer_free(x);
    return rc;
}

/* ---- results ----------------------------------------------------------- */

static util_err map_curl(const http_xfer *x, CURLcode rc)
{
    long connect_code = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_HTTP_CONNECTCODE, &connect_code) == CURLE_OK &&
        connect_code != 0 && (connect_code < 200 || connect_code > 299))
        return UTIL_ERR_HTTP_PROXY;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: return UTIL_ERR_NET_RESOLVE;
    case CURLE_COULDNT_CONNECT: return x->explicit_proxy ? UTIL_ERR_HTTP_PROXY : UTIL_ERR_NET_CONNECT;
    case CURLE_OPERATION_TIMEDOUT: return UTIL_ERR_NET_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED: return UTIL_ERR_NET_TLS;
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: return UTIL_ERR_NET_TLS_PIN;
    case CURLE_SSL_CACERT_BADFILE: return UTIL_ERR_INPUT_FILE;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
    case CURLE_WEIRD_SERVER_REPLY: return UTIL_ERR_NET_RESET;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_PROXY: return UTIL_ERR_HTTP_PROXY;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return UTIL_ERR_USAGE;
    case CURLE_OUT_OF_MEMORY: return UTIL_ERR_INTERNAL;
    default: return UTIL_ERR_NET_CONNECT;
    }
}

static int fail(http_xfer *x, CURLcode rc, util_error *err)
{
    const size_t max = x->body.max;
    if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return util_error_set(err, UTIL_ERR_RESPONSE_TOO_LARGE, "%s: the reply exceeds %zu bytes", x->host,
                              max);
    if (x->oom)
        return util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", x->host);
    /* curl names hosts, not queries, but a SCEP query must never leak. */
    char *q = x->query && *x->query ? strstr(x->errbuf, x->query) : NULL;
    if (q)
        *q = '\0';
    const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    if (x->pin_state == HTTP_PIN_MISMATCH)
        return util_error_set(err, UTIL_ERR_NET_TLS_PIN,
                              "%s: no certificate in the chain has the pinned fingerprint (%s)", x->host,
                              why);
    if (x->pin_state == HTTP_PIN_CHAIN_BAD)
        return util_error_set(err, UTIL_ERR_NET_TLS,
                              "%s: the chain does not verify up to the pinned certificate: %s", x->host,
                              X509_verify_cert_error_string(x->pin_verify_error));
    util_err code = map_curl(x, rc);
    if (code == UTIL_ERR_HTTP_PROXY && x->explicit_proxy)
        return util_error_set(err, code, "proxy %s (to reach %s): %s", x->proxy_name, x->host, why);
    return util_error_set(err, code, "%s: %s", x->host, why);
}

int http_xfer_finish(http_xfer *x, CURLcode rc, http_response *out, util_error *err)
{
    int ret = -1;
    http_response r = {0};
    char *ctype = NULL;
    if (rc != CURLE_OK || x->oom)
        return fail(x, rc, err);
    if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status) != CURLE_OK ||
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype) != CURLE_OK) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: curl gave no response data", x->host);
        goto out;
    }
    /* A plain-HTTP request through a proxy gets the proxy's refusal as an
     * ordinary reply: 407, or 401 from proxies such as tinyproxy that answer
     * wrong credentials that way. */
    if (x->explicit_proxy && r.status == 407) {
        util_error_set(err, UTIL_ERR_HTTP_PROXY, "proxy %s (to reach %s) requires authentication: HTTP 407",
                       x->proxy_name, x->host);
        goto out;
    }
    if (x->explicit_proxy && r.status == 401) {
        util_error_set(err, UTIL_ERR_HTTP_PROXY,
                       "HTTP 401 through proxy %s: the proxy refused the user name or password, or %s asks "
                       "for HTTP authentication",
                       x->proxy_name, x->host);
        goto out;
    }
    if ((ctype && !(r.content_type = strdup(ctype))) || !(r.body = util_buf_take(&x->body, &r.body_len))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s: out of memory", x->host);
        goto out;
    }
    r.server = x->server;
    x->server = NULL;
    *out = r;
    memset(&r, 0, sizeof r);
    ret = 0;
out:
    http_response_free(&r);
    return ret;
}

void http_xfer_free(http_xfer *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    curl_free(x->host);
    curl_free(x->query);
    util_buf_free(&x->body);
    free(x->server);
    OPENSSL_cleanse(x->pin, sizeof x->pin);
    free(x);
}

/* ---- public API -------------------------------------------------------- */

void http_response_free(http_response *r)
{
    if (!r)
        return;
    free(r->content_type);
    free(r->server);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
    http_plain_close_all();
    curl_global_cleanup();
}

static int perform(const http_options *o, const char *url, bool post, const uint8_t *body, size_t len,
                   const char *ctype, http_response *out, util_error *err)
{
    int rc = -1;
    http_xfer *x = NULL;
    http_response r = {0};
    if (!out)
        return util_error_set(err, UTIL_ERR_USAGE, "no response to fill");
    if (http_plain_eligible(o, url)) { /* no libcurl needed: see plain.h */
        int plain = http_plain_perform(o, url, post, body, len, ctype, out, err);
        if (plain <= 0)
            return plain;
    }
    if (http_xfer_new(o, url, post, body, len, ctype, &x, err) < 0)
        goto out;
    if (http_xfer_finish(x, curl_easy_perform(x->easy), &r, err) < 0)
        goto out;
    *out = r;
    memset(&r, 0, sizeof r);
    rc = 0;
out:
    http_response_free(&r);
    http_xfer_free(x);
    return rc;
}

int http_get(const http_options *o, const char *url, http_response *out, util_error *err)
{
    return perform(o, url, false, NULL, 0, NULL, out, err);
}

int http_post(const http_options *o, const char *url, const uint8_t *body, size_t len,
              const char *content_type, http_response *out, util_error *err)
{
    return perform(o, url, true, body, len, content_type, out, err);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *http_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!s)
        return NULL;
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (unreserved(*c)) {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = '\0';
    return out;
}

char *http_scep_url(const char *base, const char *operation, const char *message)
{
    char *esc = NULL, *url = NULL;
    if (!base || !operation)
        return NULL;
    if (message && !(esc = http_url_escape(message)))
        return NULL;
    const char *sep = "?";
    if (strchr(base, '?')) {
        size_t n = strlen(base);
        sep = base[n - 1] == '?' || base[n - 1] == '&' ? "" : "&";
    }
    if (asprintf(&url, "%s%soperation=%s%s%s", base, sep, operation, esc ? "&message=" : "", esc ? esc : "") <
        0)
        url = NULL;
    free(esc);
    return url;
}
