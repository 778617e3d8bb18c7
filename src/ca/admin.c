/* Administration: the mscep_admin page and the scepca subcommands. */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca/internal.h"
#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/log.h"

/* ---- /certsrv/mscep_admin/ ---- */

static bool admin_authorized(ca_server *srv, const char *authorization)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    bool ok = false;
    char hash[65];
    if (!srv->admin_hash[0] || !authorization || strncasecmp(authorization, "Basic ", 6) != 0)
        return false;
    if (ca_base64_decode(authorization + 6, &raw, &len) != 0)
        return false;
    char *colon = memchr(raw, ':', len);
    if (colon) {
        size_t ulen = (size_t)(colon - (char *)raw);
        bool user_ok = ulen == strlen(srv->admin_user) && memcmp(raw, srv->admin_user, ulen) == 0;
        if (!strncmp(srv->admin_hash, "scrypt$", 7)) {
            size_t plen = len - ulen - 1;
            char *password = malloc(plen + 1);
            if (password) {
                memcpy(password, colon + 1, plen);
                password[plen] = '\0';
                ok = strlen(password) == plen && crypto_password_verify(password, srv->admin_hash) && user_ok;
                OPENSSL_cleanse(password, plen);
                free(password);
            }
        } else {
            util_buf b;
            util_buf_init(&b, 4096, true);
            if (util_buf_append_str(&b, srv->admin_salt) == 0 &&
                util_buf_append(&b, colon + 1, len - ulen - 1) == 0) {
                ca_sha256_hex(b.data, b.len, hash);
                ok = user_ok && CRYPTO_memcmp(hash, srv->admin_hash, 64) == 0;
            }
            util_buf_free(&b);
        }
    }
    OPENSSL_cleanse(raw, len);
    free(raw);
    return ok;
}

/* The CA "thumbprint" NDES shows: MD5, four groups of eight hex digits. */
static void thumbprint(X509 *ca, char out[40])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[33];
    out[0] = '\0';
    if (X509_digest(ca, EVP_md5(), md, &n) != 1 || n != 16)
        return;
    util_hex(md, 16, hex, 1);
    snprintf(out, 40, "%.8s %.8s %.8s %.8s", hex, hex + 8, hex + 16, hex + 24);
}

static const char page_head[] =
    "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">"
    "<Title>Network Device Enrollment Service</Title></Head>\r\n"
    "<Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n"
    "<P ID=locPageTitle> <B> Network Device Enrollment Service </B></P>\r\n"
    "<P> Network Device Enrollment Service allows you to obtain certificates for routers or "
    "other network devices using the Simple Certificate Enrollment Protocol (SCEP). </P>\r\n";

static int admin_body(ca_server *srv, time_t now, util_buf *b)
{
    char line[512], thumb[40], pw[17] = "";
    util_error err = {0};
    int rc = 0;
    thumbprint(srv->ca_cert, thumb);
    if (util_buf_append_str(b, page_head) != 0)
        return -1;
    if (srv->cfg->otp) {
        rc = ca_otp_new(srv->store, now, pw, &err);
        if (rc < 0) {
            log_error("mscep_admin: %s", err.detail);
            return -1;
        }
    }
    if (rc == 1) {
        snprintf(line, sizeof line, "<P> The password cache is full. </P>\r\n");
    } else if (srv->cfg->otp || srv->cfg->challenge) {
        snprintf(line, sizeof line,
                 "<P> To complete certificate enrollment for your network device you will need "
                 "the following information: <P> The thumbprint (hash value) for the CA "
                 "certificate is: <B> %s </B> <P> The enrollment challenge password is: <B> %s "
                 "</B> <P> %s </P>\r\n",
                 thumb, srv->cfg->otp ? pw : srv->cfg->challenge,
                 srv->cfg->otp ? "This password can be used only once and will expire within "
                                 "60 minutes. <P> Each enrollment requires a new challenge "
                                 "password. You can refresh this web page to obtain a new "
                                 "challenge password."
                               : "This password can be used multiple times and will not expire.");
    } else {
        snprintf(line, sizeof line,
                 "<P> The thumbprint (hash value) for the CA certificate is: <B> %s </B> <P> "
                 "No challenge password is required. </P>\r\n",
                 thumb);
    }
    OPENSSL_cleanse(pw, sizeof pw);
    rc = util_buf_append_str(b, line) || util_buf_append_str(b, "</Font></Body></HTML>\r\n");
    OPENSSL_cleanse(line, sizeof line);
    return rc ? -1 : 0;
}

/* NDES serves the page in UTF-16LE whatever its meta tag says. */
static int to_utf16le(const util_buf *in, util_buf *out)
{
    static const uint8_t bom[2] = {0xff, 0xfe};
    if (util_buf_append(out, bom, 2) != 0)
        return -1;
    for (size_t i = 0; i < in->len; i++) {
        uint8_t pair[2] = {in->data[i], 0};
        if (util_buf_append(out, pair, 2) != 0)
            return -1;
    }
    return 0;
}

void ca_admin_page(ca_server *srv, const ca_http_request *req, time_t now, ca_http_response *resp)
{
    util_buf page, wide;
    bool ndes = ca_profile_is_ndes(srv->cfg->profile);
    if (strcmp(req->path, "/certsrv/mscep_admin") == 0) {
        ca_response_text(resp, 301, "Moved.\n");
        ca_response_add_header(resp, "Location", "/certsrv/mscep_admin/");
        return;
    }
    if (strcmp(req->path, "/certsrv/mscep_admin/") != 0) {
        ca_response_text(resp, 404, "Not found.\n");
        return;
    }
    if (!admin_authorized(srv, req->authorization)) {
        log_warn("%s: mscep_admin: authentication required or failed", req->peer);
        ca_response_text(resp, 401, "Authentication required.\n");
        ca_response_add_header(resp, "WWW-Authenticate", "Basic realm=\"mscep_admin\"");
        return;
    }
    util_buf_init(&page, 16384, true);
    util_buf_init(&wide, 32768, true);
    if (admin_body(srv, now, &page) != 0 || (ndes && to_utf16le(&page, &wide) != 0)) {
        ca_response_text(resp, 500, "The password could not be created.\n");
    } else {
        const util_buf *b = ndes ? &wide : &page;
        resp->status = 200;
        resp->content_type = ndes ? "text/html" : "text/html; charset=utf-8";
        if (ca_response_set_body(resp, b->data, b->len) != 0)
            ca_response_text(resp, 500, "out of memory\n");
        log_info("%s: mscep_admin: page served", req->peer);
    }
    util_buf_free(&page);
    util_buf_free(&wide);
}

/* ---- subcommands ---- */

int ca_admin_otp(const char *dir, time_t now, char out[17], util_error *err)
{
    store_ca *store = NULL;
    if (store_ca_open(dir, false, &store, err) != 0)
        return -1;
    int rc = ca_otp_new(store, now, out, err);
    store_ca_close(store);
    return rc;
}

typedef struct list_ctx {
    FILE *out;
    time_t now;
} list_ctx;

static int print_request(const store_ca_request *r, void *arg)
{
    list_ctx *l = arg;
    fprintf(l->out, "request %" PRId64 "  %-8s  %s%s  tid=%s%s%s%s%s\n", r->id,
            store_ca_request_status_name((store_ca_request_status)r->status), r->subject,
            r->renewal ? "  (renewal)" : "", r->transaction_id, r->serial[0] ? "  serial=" : "", r->serial,
            r->reason[0] ? "  reason=" : "", r->reason);
    return 0;
}

static int print_cert(const store_ca_cert *c, void *arg)
{
    list_ctx *l = arg;
    const char *state = c->revoked_at ? "revoked" : c->not_after < l->now ? "expired" : "valid";
    char until[32];
    time_t t = (time_t)c->not_after;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(l->out, "cert %s  %-7s  until %s  %s\n", c->serial, state, until, c->subject);
    return 0;
}

int ca_admin_list(const char *dir, bool pending_only, time_t now, FILE *out, util_error *err)
{
    store_ca *store = NULL;
    list_ctx l = {out, now};
    if (store_ca_open(dir, false, &store, err) != 0)
        return -1;
    int rc = store_ca_request_each(store, pending_only ? STORE_CA_PENDING : -1, CA_LIST_MAX, print_request,
                                   &l, err);
    if (rc == 0 && !pending_only)
        rc = store_ca_cert_each(store, false, CA_LIST_MAX, print_cert, &l, err);
    store_ca_close(store);
    return rc;
}

static int validity_setting(store_ca *store)
{
    char *v = NULL;
    util_error ignored;
    int days = CA_DEFAULT_VALIDITY_DAYS;
    if (store_ca_setting_get(store, "validity_days", &v, &ignored) == 0)
        days = atoi(v) > 0 ? atoi(v) : days;
    free(v);
    return days;
}

int ca_admin_approve(const char *dir, int64_t id, time_t now, util_error *err)
{
    int rc = -1;
    store_ca *store = NULL;
    store_ca_request r = {0};
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_REQ *req = NULL;
    if (store_ca_open(dir, false, &store, err) != 0)
        goto out;
    int found = store_ca_request_get(store, id, &r, err);
    if (found != 0 || r.status != STORE_CA_PENDING) {
        rc = found < 0 ? -1 : 1;
        goto out;
    }
    const unsigned char *p = r.csr_der;
    if (!(req = d2i_X509_REQ(NULL, &p, (long)r.csr_len))) {
        util_error_set(err, UTIL_ERR_INTERNAL, "request %" PRId64 ": stored CSR unreadable", id);
        goto out;
    }
    if (ca_material_load(store, "ca", &ca, &ca_key, err) != 0)
        goto out;
    ca_issue_input in = {req, r.csr_der, r.csr_len, r.transaction_id, r.renewal, id, validity_setting(store)};
    rc = ca_issue(store, ca, ca_key, &in, now, &cert, err);
out:
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    X509_REQ_free(req);
    store_ca_request_clear(&r);
    store_ca_close(store);
    return rc;
}

int ca_admin_reject(const char *dir, int64_t id, time_t now, util_error *err)
{
    store_ca *store = NULL;
    if (store_ca_open(dir, false, &store, err) != 0)
        return -1;
    int rc = store_ca_request_reject(store, id, "rejected by the administrator", now, err);
    store_ca_close(store);
    return rc;
}

int ca_admin_revoke(const char *dir, const char *serial, time_t now, util_error *err)
{
    store_ca *store = NULL;
    char upper[80];
    size_t n = 0;
    /* accept lowercase and colons; the store keeps uppercase hex */
    for (const char *s = serial; *s && n + 1 < sizeof upper; s++) {
        if (*s == ':')
            continue;
        upper[n++] = (char)(*s >= 'a' && *s <= 'f' ? *s - 32 : *s);
    }
    upper[n] = '\0';
    if (store_ca_open(dir, false, &store, err) != 0)
        return -1;
    int rc = store_ca_cert_revoke(store, upper, (int64_t)now, err);
    store_ca_close(store);
    return rc;
}
