/* Enrollment policy: challenge and one-time passwords, issuance, deferral. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "util/file.h"
#include "util/log.h"

void ca_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32)
        util_hex(md, n, out, 0);
}

int ca_otp_new(store_ca *store, time_t now, char out[17], util_error *err)
{
    uint8_t raw[8]; /* NDES PasswordLength: 8 bytes, 16 hex characters */
    char pw[17], hash[65];
    store_ca_otp_result result = STORE_CA_OTP_OK;
    if (crypto_ca_random_bytes(raw, sizeof raw, err) != 0)
        return -1;
    util_hex(raw, sizeof raw, pw, 1);
    ca_sha256_hex(pw, 16, hash);
    int rc = store_ca_otp_add(store, hash, now, now + CA_OTP_VALIDITY, CA_OTP_MAX, &result, err);
    OPENSSL_cleanse(raw, sizeof raw);
    if (rc != 0) {
        OPENSSL_cleanse(pw, sizeof pw);
        return -1;
    }
    if (result == STORE_CA_OTP_FULL) {
        OPENSSL_cleanse(pw, sizeof pw);
        return 1;
    }
    memcpy(out, pw, sizeof pw);
    OPENSSL_cleanse(pw, sizeof pw);
    return 0;
}

static ca_password_check check_static(const char *expected, const char *given)
{
    size_t a = strlen(expected), b = strlen(given);
    if (a != b || CRYPTO_memcmp(expected, given, a) != 0)
        return CA_PASSWORD_UNKNOWN;
    return CA_PASSWORD_OK;
}

static int check_otp(store_ca *store, const char *given, time_t now, ca_password_check *out, util_error *err)
{
    char hash[65];
    store_ca_otp_result r = STORE_CA_OTP_UNKNOWN;
    /* NDES compares the hex case-insensitively; the store keys uppercase */
    char upper[64];
    size_t n = strlen(given);
    if (n >= sizeof upper) {
        *out = CA_PASSWORD_UNKNOWN;
        return 0;
    }
    for (size_t i = 0; i <= n; i++)
        upper[i] = (char)(given[i] >= 'a' && given[i] <= 'f' ? given[i] - 32 : given[i]);
    ca_sha256_hex(upper, n, hash);
    OPENSSL_cleanse(upper, sizeof upper);
    if (store_ca_otp_consume(store, hash, now, &r, err) != 0)
        return -1;
    *out = r == STORE_CA_OTP_OK     ? CA_PASSWORD_OK
           : r == STORE_CA_OTP_USED ? CA_PASSWORD_USED
                                    : CA_PASSWORD_UNKNOWN;
    return 0;
}

int ca_password_verify(ca_server *srv, X509_REQ *req, time_t now, ca_password_check *out, util_error *err)
{
    char *given = NULL;
    size_t given_len = 0;
    int rc = -1;
    const ca_config *cfg = srv->cfg;
    if (!cfg->otp && !cfg->challenge) {
        *out = CA_PASSWORD_OK; /* open enrollment (NDES EnforcePassword=0) */
        return 0;
    }
    int found = crypto_issue_csr_challenge(req, &given, &given_len, err);
    if (found < 0)
        return -1;
    if (found == 1 || !given || given[0] == '\0') {
        *out = CA_PASSWORD_MISSING;
        rc = 0;
        goto out;
    }
    if (cfg->otp) {
        rc = check_otp(srv->store, given, now, out, err);
        if (rc == 0 && *out != CA_PASSWORD_OK && cfg->challenge &&
            check_static(cfg->challenge, given) == CA_PASSWORD_OK)
            *out = CA_PASSWORD_OK;
    } else {
        *out = check_static(cfg->challenge, given);
        rc = 0;
    }
out:
    if (given)
        crypto_secret_free(given, given_len);
    return rc;
}

static void fill_request(store_ca_request *r, const ca_issue_input *in, int status, time_t now)
{
    memset(r, 0, sizeof *r);
    snprintf(r->transaction_id, sizeof r->transaction_id, "%s", in->transaction_id);
    crypto_issue_csr_subject(in->req, r->subject, sizeof r->subject);
    r->status = status;
    r->renewal = in->renewal;
    r->created_at = r->updated_at = now;
    r->csr_der = (uint8_t *)in->csr_der;
    r->csr_len = in->csr_len;
    r->message_type = in->message_type;
    snprintf(r->signer, sizeof r->signer, "%s", in->signer ? in->signer : "");
}

int ca_issue(store_ca *store, X509 *ca_cert, EVP_PKEY *ca_key, const ca_issue_input *in, time_t now,
             X509 **out, util_error *err)
{
    int rc = -1;
    X509 *cert = NULL;
    store_ca_cert rec = {0};
    store_ca_request r;
    uint8_t serial[CRYPTO_SERIAL_LEN];
    int days = in->validity_days > 0 ? in->validity_days : CA_DEFAULT_VALIDITY_DAYS;
    time_t ca_end = crypto_asn1_time_to_time(X509_get0_notAfter(ca_cert));
    time_t end = now + (time_t)days * 86400;
    if (ca_end > now && end > ca_end)
        end = ca_end; /* never outlive the issuer */
    if (crypto_ca_random_serial(serial, rec.serial, err) != 0)
        goto out;
    crypto_issue_params p = {serial, sizeof serial, now - 300, end, EVP_sha256()};
    if (crypto_issue_from_csr(in->req, ca_cert, ca_key, &p, &cert, err) != 0 ||
        ca_material_cert_to_pem(cert, &rec.cert_pem, err) != 0)
        goto out;
    crypto_issue_csr_subject(in->req, rec.subject, sizeof rec.subject);
    snprintf(rec.transaction_id, sizeof rec.transaction_id, "%s", in->transaction_id);
    rec.issued_at = now;
    rec.not_before = now - 300;
    rec.not_after = end;
    if (in->pending_id > 0) {
        int st = store_ca_request_issue(store, in->pending_id, &rec, now, err);
        if (st == 1)
            util_error_set(err, UTIL_ERR_USAGE, "request %lld is not pending", (long long)in->pending_id);
        if (st != 0)
            goto out;
    } else {
        fill_request(&r, in, STORE_CA_ISSUED, now);
        snprintf(r.serial, sizeof r.serial, "%s", rec.serial);
        if (store_ca_request_add(store, &r, &rec, err) != 0)
            goto out;
    }
    log_info("issued serial %s to \"%s\" (transaction %s%s)", rec.serial, rec.subject, in->transaction_id,
             in->renewal ? ", renewal" : "");
    *out = cert;
    cert = NULL;
    rc = 0;
out:
    free(rec.cert_pem);
    X509_free(cert);
    return rc;
}

int ca_defer(store_ca *store, const ca_issue_input *in, time_t now, int64_t *id, util_error *err)
{
    store_ca_request r;
    fill_request(&r, in, STORE_CA_PENDING, now);
    if (store_ca_request_add(store, &r, NULL, err) != 0)
        return -1;
    *id = r.id;
    log_info("request %lld from \"%s\" is pending (transaction %s)", (long long)r.id, r.subject,
             in->transaction_id);
    return 0;
}
