/* PKIOperation: PKCSReq, RenewalReq, CertPoll, GetCert and GetCRL (RFC 8894
 * §3.3), answered as a clean RFC 8894 server or as an NDES version would. */
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "scep/scep.h"
#include "util/log.h"

/* NDES HRESULTs (§2.5, §2.11), as the decimal text of the attribute. */
#define HR_PASSWORD_USED "-2146762480"    /* 0x800B0110 CERT_E_WRONG_USAGE */
#define HR_PASSWORD_UNKNOWN "-2147023728" /* 0x80070490 ERROR_NOT_FOUND */
#define HR_PASSWORD_MISSING "-2146869244" /* 0x80096004 TRUST_E_CERT_SIGNATURE */
#define HR_INVALID_ARG "-2147024809"      /* 0x80070057 E_INVALIDARG */

#define TRANSACTION_ID_MAX 128

typedef struct reply {
    int status;
    int fail_info;
    char text[256]; /* failInfoText, and the log line */
    const char *hresult;
    uint8_t *content; /* certs-only DER (OPENSSL_free) */
    size_t content_len;
} reply;

typedef struct op_ctx {
    ca_server *srv;
    time_t now;
    const char *peer;
    scep_pki_message *m;
    uint8_t *data; /* the opened messageData (OPENSSL_free) */
    size_t data_len;
    char cipher[64];
    ca_fault_set faults;
} op_ctx;

static bool is_ndes(const op_ctx *c)
{
    return ca_profile_is_ndes(c->srv->cfg->profile);
}

static void fail(reply *r, int fail_info, const char *hresult, const char *fmt, const char *arg)
{
    char text[1024];
    r->status = SCEP_STATUS_FAILURE;
    r->fail_info = fail_info;
    r->hresult = hresult;
    snprintf(text, sizeof text, fmt, arg ? arg : "");
    size_t n = strnlen(text, sizeof r->text - 1); /* failInfoText is for people: cut */
    memcpy(r->text, text, n);
    r->text[n] = '\0';
}

static void pending(reply *r, const char *why)
{
    r->status = SCEP_STATUS_PENDING;
    snprintf(r->text, sizeof r->text, "%s", why);
}

/* SUCCESS with a certs-only SignedData of certs (and crl). NDES sends the
 * issued and the CA certificate; generic only the issued one, because DER
 * sorts the SET OF and clients such as micromdm's take the first. */
static void success(op_ctx *c, reply *r, STACK_OF(X509) * certs, X509_CRL *crl)
{
    util_error err = {0};
    STACK_OF(X509) *empty = certs ? NULL : sk_X509_new_null();
    if (scep_certs_only_encode(certs ? certs : empty, crl, &r->content, &r->content_len, &err)) {
        log_error("%s: encoding the reply content: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "internal error building the reply%s", NULL);
    } else {
        r->status = SCEP_STATUS_SUCCESS;
    }
    sk_X509_free(empty);
}

static void success_cert(op_ctx *c, reply *r, X509 *cert, bool with_ca)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (!certs || sk_X509_push(certs, cert) <= 0 || (with_ca && sk_X509_push(certs, c->srv->ca_cert) <= 0)) {
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "out of memory%s", NULL);
    } else {
        success(c, r, certs, NULL);
    }
    sk_X509_free(certs);
}

/* ---- the reply message ---- */

static const EVP_CIPHER *reply_cipher(const char *request_cipher)
{
    if (strncmp(request_cipher, "aes-", 4) == 0) {
        const EVP_CIPHER *ci = EVP_get_cipherbyname(request_cipher);
        return ci ? ci : EVP_aes_128_cbc();
    }
    /* des-ede3-cbc, and single DES (never sent back: RFC 8894 §2.9) */
    return EVP_des_ede3_cbc();
}

static void reply_signer(op_ctx *c, X509 **cert, EVP_PKEY **key)
{
    ca_server *srv = c->srv;
    *cert = srv->ra_sign_cert ? srv->ra_sign_cert : srv->ca_cert;
    *key = srv->ra_sign_key ? srv->ra_sign_key : srv->ca_key;
    if (c->faults.on[CA_FAULT_EXPIRED_RA] && srv->expired_sign)
        *cert = srv->expired_sign;
    if (c->faults.on[CA_FAULT_WRONG_SIGNER] && srv->rogue_cert) {
        *cert = srv->rogue_cert;
        *key = srv->rogue_key;
    }
}

static const char *disposition(int status)
{
    switch (status) {
    case SCEP_STATUS_SUCCESS: return "Issued";
    case SCEP_STATUS_PENDING: return "Taken Under Submission";
    default: return "Denied by Policy Module";
    }
}

static int encode_reply(op_ctx *c, const reply *r, uint8_t **der, size_t *len, util_error *err)
{
    int rc = -1;
    uint8_t nonce[SCEP_NONCE_LEN], wrong_nonce[SCEP_NONCE_LEN];
    char wrong_tid[TRANSACTION_ID_MAX + 8];
    STACK_OF(X509) *recipients = sk_X509_new_null();
    bool ndes = is_ndes(c);
    scep_pki_message_params p = {0};
    if (!recipients || crypto_ca_random_bytes(nonce, sizeof nonce, err) != 0 ||
        crypto_ca_random_bytes(wrong_nonce, sizeof wrong_nonce, err) != 0)
        goto out;
    p.type = SCEP_MSG_CERTREP;
    p.transaction_id = c->m->transaction_id;
    if (c->faults.on[CA_FAULT_WRONG_TRANSACTION_ID]) {
        snprintf(wrong_tid, sizeof wrong_tid, "X%s", c->m->transaction_id);
        p.transaction_id = wrong_tid;
    }
    p.sender_nonce = nonce;
    p.sender_nonce_len = sizeof nonce;
    if (c->m->sender_nonce_len) {
        p.recipient_nonce = c->m->sender_nonce;
        p.recipient_nonce_len = c->m->sender_nonce_len;
    }
    if (c->faults.on[CA_FAULT_WRONG_RECIPIENT_NONCE]) {
        p.recipient_nonce = wrong_nonce;
        p.recipient_nonce_len = sizeof wrong_nonce;
    }
    p.pki_status = r->status;
    p.fail_info = r->status == SCEP_STATUS_FAILURE ? r->fail_info : -1;
    if (!ndes && r->status == SCEP_STATUS_FAILURE)
        p.fail_info_text = r->text;
    if (ndes) {
        p.ms_hresult = r->status == SCEP_STATUS_FAILURE ? r->hresult : NULL;
        p.ms_disposition = disposition(r->status);
        p.one_byte_content = r->status != SCEP_STATUS_SUCCESS;
    }
    reply_signer(c, &p.signer_cert, &p.signer_key);
    p.digest = ndes ? EVP_sha1() : EVP_sha256();
    p.include_signer_cert = !ndes;
    p.signing_time = ndes ? 0 : c->now;
    if (r->status == SCEP_STATUS_SUCCESS) {
        if (sk_X509_push(recipients, c->m->signer) <= 0)
            goto out;
        p.content = r->content;
        p.content_len = r->content_len;
        p.recipients = recipients;
        p.cipher = reply_cipher(c->cipher);
        bool aes = strncmp(c->cipher, "aes-", 4) == 0;
        bool oaep_profile =
            c->srv->cfg->profile == CA_PROFILE_NDES2012R2 || c->srv->cfg->profile == CA_PROFILE_NDES2016;
        p.key_transport = aes && oaep_profile ? SCEP_KT_RSA_OAEP : SCEP_KT_DEFAULT;
    }
    rc = scep_pki_message_encode(&p, der, len, err);
out:
    sk_X509_free(recipients);
    return rc;
}

static void send_reply(op_ctx *c, reply *r, ca_http_response *resp)
{
    uint8_t *der = NULL;
    size_t len = 0;
    util_error err = {0};
    log_info("%s: %s transaction %s -> %s%s%s", c->peer, scep_message_type_name(c->m->type),
             c->m->transaction_id, scep_pki_status_name(r->status),
             r->status == SCEP_STATUS_FAILURE ? " " : "",
             r->status == SCEP_STATUS_FAILURE ? scep_fail_info_name(r->fail_info) : "");
    if (r->status != SCEP_STATUS_SUCCESS && r->text[0])
        log_info("%s: %s", c->peer, r->text);
    if (encode_reply(c, r, &der, &len, &err) != 0) {
        log_error("%s: building the CertRep: %s", c->peer, err.detail);
        ca_response_text(resp, 500, "scepca could not build the reply\n");
        return;
    }
    if (c->faults.on[CA_FAULT_BAD_SIGNATURE] && len > 0)
        der[len - 1] ^= 0x5a; /* the signature value is the last field */
    resp->status = 200;
    resp->content_type = "application/x-pki-message";
    if (ca_response_set_body(resp, der, len) != 0)
        ca_response_text(resp, 500, "out of memory\n");
    OPENSSL_free(der);
}

/* ---- requests ---- */

static void reply_for_request(op_ctx *c, const store_ca_request *rq, reply *r)
{
    util_error err = {0};
    store_ca_cert rec = {0};
    X509 *cert = NULL;
    if (rq->status == STORE_CA_PENDING || c->faults.on[CA_FAULT_PENDING_FOREVER]) {
        pending(r, "waiting for 'scepca approve'");
        return;
    }
    if (rq->status == STORE_CA_REJECTED) {
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the request was rejected: %s",
             rq->reason[0] ? rq->reason : "no reason given");
        return;
    }
    if (store_ca_cert_get(c->srv->store, rq->serial, &rec, &err) != 0 ||
        crypto_cert_load((const uint8_t *)rec.cert_pem, strlen(rec.cert_pem), &cert, &err) != 0) {
        log_error("%s: certificate %s: %s", c->peer, rq->serial, err.detail);
        fail(r, SCEP_FAIL_BAD_CERT_ID, NULL, "certificate %s not found", rq->serial);
    } else {
        success_cert(c, r, cert, is_ndes(c));
    }
    X509_free(cert);
    store_ca_cert_clear(&rec);
}

/* A renewal must be signed by a valid, unrevoked certificate of this CA. */
static bool renewal_allowed(op_ctx *c, X509_REQ *req, reply *r)
{
    char serial[CRYPTO_SERIAL_HEX];
    store_ca_cert rec = {0};
    util_error err = {0};
    X509 *old = c->m->signer;
    crypto_issue_serial_hex(old, serial);
    int found = store_ca_cert_get(c->srv->store, serial, &rec, &err);
    store_ca_cert_clear(&rec);
    time_t nb = crypto_asn1_time_to_time(X509_get0_notBefore(old));
    time_t na = crypto_asn1_time_to_time(X509_get0_notAfter(old));
    int window = c->srv->cfg->allow_renew_days;
    if (found != 0)
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL,
             "renewal signer %s is not in this CA's "
             "records",
             serial);
    else if (rec.revoked_at)
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "renewal signer %s is revoked", serial);
    else if (c->now < nb || c->now > na)
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "renewal signer %s is not valid now", serial);
    else if (window > 0 && na - c->now > (time_t)window * 86400)
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "renewal of %s is not due yet (--allow-renew-days)", serial);
    else if (is_ndes(c) && X509_NAME_cmp(X509_get_subject_name(old), X509_REQ_get_subject_name(req)) != 0)
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "renewal must keep the subject of %s (NDES)", serial);
    else
        return true;
    return false;
}

/* The client's address without the port: the key of the challenge throttle. */
static void peer_address(const char *peer, char *out, size_t len)
{
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    size_t n = colon ? (size_t)(colon - peer) : peer ? strlen(peer) : 0;
    if (n >= len)
        n = len - 1;
    if (n)
        memcpy(out, peer, n);
    out[n] = '\0';
}

static bool password_allowed(op_ctx *c, X509_REQ *req, reply *r)
{
    ca_password_check pc = CA_PASSWORD_UNKNOWN;
    util_error err = {0};
    char addr[80];
    peer_address(c->peer, addr, sizeof addr);
    int64_t wait = util_throttle_wait(c->srv->challenge_throttle, addr, c->now);
    if (wait > 0) {
        log_warn("%s: challenge refused unchecked: too many wrong ones from this address, %lld s to wait",
                 c->peer, (long long)wait);
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_PASSWORD_UNKNOWN,
             "too many wrong challenge passwords from this address; retry later%s", NULL);
        return false;
    }
    if (ca_password_verify(c->srv, req, c->now, &pc, &err) != 0) {
        log_error("%s: checking the password: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_PASSWORD_UNKNOWN, "password check failed%s", NULL);
        return false;
    }
    if (pc == CA_PASSWORD_OK)
        util_throttle_success(c->srv->challenge_throttle, addr);
    else if (pc != CA_PASSWORD_MISSING)
        util_throttle_failure(c->srv->challenge_throttle, addr, c->now);
    switch (pc) {
    case CA_PASSWORD_OK: return true;
    case CA_PASSWORD_MISSING:
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_PASSWORD_MISSING, "the request carries no challenge password%s",
             NULL);
        break;
    case CA_PASSWORD_USED:
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_PASSWORD_USED, "the one-time password has already been used%s",
             NULL);
        break;
    default:
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_PASSWORD_UNKNOWN,
             "the challenge password is wrong, unknown or expired%s", NULL);
    }
    return false;
}

/* Decides whether the signer makes this a first enrollment or a renewal. */
static bool signer_allowed(op_ctx *c, X509_REQ *req, bool *renewal, reply *r)
{
    bool ours = crypto_issue_signed_by(c->m->signer, c->srv->ca_cert);
    bool renewal_req = c->m->type == SCEP_MSG_RENEWALREQ;
    if (renewal_req && is_ndes(c)) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG,
             "RenewalReq is not supported: send a PKCSReq signed with the old certificate%s", NULL);
        return false;
    }
    if (ours) {
        *renewal = true;
        return renewal_allowed(c, req, r);
    }
    if (renewal_req) {
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "RenewalReq must be signed by a certificate this CA issued%s",
             NULL);
        return false;
    }
    if (!crypto_issue_self_signed(c->m->signer)) {
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL,
             "the signer certificate is neither self-signed nor issued by this CA%s", NULL);
        return false;
    }
    *renewal = false;
    return password_allowed(c, req, r);
}

static void handle_enroll(op_ctx *c, reply *r)
{
    X509_REQ *req = NULL;
    util_error err = {0};
    store_ca_request prev = {0};
    X509 *cert = NULL;
    bool renewal = false;
    if (c->data_len > CA_CSR_MAX_BYTES) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG, "the request is larger than %s bytes",
             CA_CSR_MAX_TEXT);
        goto out;
    }
    int read = crypto_issue_csr_read(c->data, c->data_len, &req, &err);
    if (read == CRYPTO_CSR_UNREADABLE) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG, "messageData is not a PKCS#10 request%s", NULL);
        goto out;
    }
    if (read != 0) {
        fail(r, SCEP_FAIL_BAD_MESSAGE_CHECK, NULL, "%s", err.detail);
        goto out;
    }
    int sans = crypto_issue_csr_san_count(req);
    if (sans < 0 || sans > CA_CSR_MAX_SANS) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG,
             "the request has too many subjectAltNames (at most %s)", CA_CSR_MAX_SANS_TEXT);
        goto out;
    }
    /* A resend has the same message type, signer certificate and CSR: answer
     * it as a poll would. Another CSR from the same signer under the
     * transactionID of a request still pending is an error: one transaction
     * cannot carry two requests. Anything else is a new request: a renewal
     * with the same key, a RenewalReq after a PKCSReq, a new CSR for a key
     * whose earlier request was issued or rejected (certmonger's resubmit). */
    char signer[72];
    crypto_cert_fingerprint(c->m->signer, EVP_sha256(), signer, sizeof signer, false);
    int found = store_ca_request_find_sender(c->srv->store, c->m->transaction_id, (int)c->m->type, signer,
                                             &prev, &err);
    if (found < 0) {
        log_error("%s: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the request could not be checked%s", NULL);
        goto out;
    }
    if (found == 0 && prev.csr_len == c->data_len && memcmp(prev.csr_der, c->data, c->data_len) == 0) {
        reply_for_request(c, &prev, r);
        goto out;
    }
    if (found == 0 && prev.status == STORE_CA_PENDING) {
        log_warn("%s: transactionID %s reused for a different CSR (request %lld)", c->peer,
                 c->m->transaction_id, (long long)prev.id);
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG,
             "transactionID %s belongs to a pending request with a different CSR from this signer",
             c->m->transaction_id);
        goto out;
    }
    if (!signer_allowed(c, req, &renewal, r))
        goto out;
    ca_issue_input in = {req,
                         c->data,
                         c->data_len,
                         c->m->transaction_id,
                         renewal,
                         0,
                         c->srv->cfg->validity_days,
                         (int)c->m->type,
                         signer};
    if (c->srv->cfg->pending || c->faults.on[CA_FAULT_PENDING_FOREVER]) {
        int64_t id = 0;
        if (ca_defer(c->srv->store, &in, c->now, &id, &err) != 0) {
            log_error("%s: %s", c->peer, err.detail);
            fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the request could not be recorded%s", NULL);
        } else {
            pending(r, "waiting for 'scepca approve'");
        }
        goto out;
    }
    if (ca_issue(c->srv->store, c->srv->ca_cert, c->srv->ca_key, &in, c->now, &cert, &err)) {
        log_error("%s: issuing: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the certificate could not be issued%s", NULL);
        goto out;
    }
    success_cert(c, r, cert, is_ndes(c));
out:
    store_ca_request_clear(&prev);
    X509_free(cert);
    X509_REQ_free(req);
}

/* The issuer a CertPoll names: RFC 8894 says the CA's name; strongSwan's
 * pki sends the RA certificate's subject, as it does to NDES. */
static bool names_this_ca(const ca_server *srv, const X509_NAME *issuer)
{
    X509 *known[] = {srv->ca_cert, srv->ra_enc_cert, srv->ra_sign_cert};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i] && X509_NAME_cmp(issuer, X509_get_subject_name(known[i])) == 0)
            return true;
    return false;
}

static void handle_poll(op_ctx *c, reply *r)
{
    X509_NAME *issuer = NULL, *subject = NULL;
    store_ca_request rq = {0};
    util_error err = {0};
    if (scep_issuer_and_subject_decode(c->data, c->data_len, &issuer, &subject, &err) != 0) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG, "CertPoll messageData is not an IssuerAndSubject%s",
             NULL);
        goto out;
    }
    char subject_text[512];
    crypto_name_oneline(subject, subject_text, sizeof subject_text);
    if (!names_this_ca(c->srv, issuer)) {
        fail(r, SCEP_FAIL_BAD_CERT_ID, NULL, "CertPoll names another issuer than this CA or its RA%s", NULL);
        goto out;
    }
    int found = store_ca_request_find_subject(c->srv->store, c->m->transaction_id, subject_text, &rq, &err);
    if (found < 0) {
        log_error("%s: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the request could not be looked up%s", NULL);
    } else if (found != 0) {
        fail(r, SCEP_FAIL_BAD_CERT_ID, NULL, "no request has this transactionID and subject %s",
             subject_text);
    } else {
        reply_for_request(c, &rq, r);
    }
out:
    store_ca_request_clear(&rq);
    X509_NAME_free(issuer);
    X509_NAME_free(subject);
}

static void handle_getcert(op_ctx *c, reply *r)
{
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    char *hex = NULL;
    util_error err = {0};
    store_ca_request rq = {0};
    if (scep_issuer_and_serial_decode(c->data, c->data_len, &issuer, &serial, &err) != 0 ||
        !(bn = ASN1_INTEGER_to_BN(serial, NULL)) || !(hex = BN_bn2hex(bn))) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG,
             "GetCert messageData is not an IssuerAndSerialNumber%s", NULL);
        goto out;
    }
    snprintf(rq.serial, sizeof rq.serial, "%s", hex);
    rq.status = STORE_CA_ISSUED;
    if (X509_NAME_cmp(issuer, X509_get_subject_name(c->srv->ca_cert)) != 0)
        fail(r, SCEP_FAIL_BAD_CERT_ID, NULL, "the issuer is not this CA (serial %s)", hex);
    else
        reply_for_request(c, &rq, r);
out:
    OPENSSL_free(hex);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    X509_NAME_free(issuer);
}

typedef struct crl_list {
    crypto_crl_entry *e;
    char (*serials)[80];
    size_t n, cap;
} crl_list;

static int collect_revoked(const store_ca_cert *cert, void *arg)
{
    crl_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        crypto_crl_entry *e = realloc(l->e, cap * sizeof *e);
        if (!e)
            return 1;
        l->e = e;
        char(*s)[80] = realloc(l->serials, cap * sizeof *s);
        if (!s)
            return 1;
        l->serials = s;
        l->cap = cap;
    }
    snprintf(l->serials[l->n], sizeof l->serials[l->n], "%s", cert->serial);
    l->e[l->n].revoked_at = (time_t)cert->revoked_at;
    l->n++;
    return 0;
}

static void handle_getcrl(op_ctx *c, reply *r)
{
    crl_list l = {0};
    util_error err = {0};
    X509_CRL *crl = NULL;
    if (is_ndes(c)) {
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG, "GetCRL is not supported (NDES)%s", NULL);
        return;
    }
    if (store_ca_cert_each(c->srv->store, true, CA_LIST_MAX, collect_revoked, &l, &err) != 0) {
        log_error("%s: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the CRL could not be built%s", NULL);
        goto out;
    }
    for (size_t i = 0; i < l.n; i++)
        l.e[i].serial_hex = l.serials[i];
    if (crypto_ca_crl_build(c->srv->ca_cert, c->srv->ca_key, l.e, l.n, c->now, 7, &crl, &err)) {
        log_error("%s: %s", c->peer, err.detail);
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the CRL could not be built%s", NULL);
        goto out;
    }
    success(c, r, NULL, crl);
out:
    X509_CRL_free(crl);
    free(l.e);
    free(l.serials);
}

/* ---- entry ---- */

static bool printable(const char *s)
{
    for (; *s; s++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?", *s))
            return false;
    return true;
}

/* Opens the envelope with the RA encryption key, or the CA's (CA mode, and
 * clients that encrypt to every certificate). */
static bool open_envelope(op_ctx *c, reply *r)
{
    util_error err = {0};
    ca_server *srv = c->srv;
    if (!c->m->content || c->m->content_len == 0) {
        fail(r, SCEP_FAIL_BAD_REQUEST, NULL, "the request has no pkcsPKIEnvelope%s", NULL);
        return false;
    }
    if (srv->ra_enc_cert &&
        scep_envelope_open_mma(c->m->content, c->m->content_len, srv->ra_enc_cert, srv->ra_enc_key, &c->data,
                               &c->data_len, c->cipher, sizeof c->cipher, &err) == 0)
        return true;
    if (scep_envelope_open_mma(c->m->content, c->m->content_len, srv->ca_cert, srv->ca_key, &c->data,
                               &c->data_len, c->cipher, sizeof c->cipher, &err) == 0)
        return true;
    fail(r, SCEP_FAIL_BAD_MESSAGE_CHECK, NULL, "the envelope cannot be opened: %s", err.detail);
    return false;
}

/* NDES encrypts its replies only to RSA (key transport): a request signed
 * by an EC certificate cannot be answered, so the NDES profiles refuse it
 * instead of issuing a certificate nobody can open. */
static bool ndes_can_answer(op_ctx *c, reply *r)
{
    if (!is_ndes(c) || crypto_key_is_rsa(X509_get0_pubkey(c->m->signer)))
        return true;
    fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG,
         "NDES encrypts replies only to RSA: sign the request with an RSA key and certificate%s", NULL);
    return false;
}

static void dispatch(op_ctx *c, reply *r)
{
    switch (c->m->type) {
    case SCEP_MSG_PKCSREQ:
    case SCEP_MSG_RENEWALREQ: handle_enroll(c, r); break;
    case SCEP_MSG_CERTPOLL: handle_poll(c, r); break;
    case SCEP_MSG_GETCERT: handle_getcert(c, r); break;
    case SCEP_MSG_GETCRL: handle_getcrl(c, r); break;
    default:
        fail(r, SCEP_FAIL_BAD_REQUEST, HR_INVALID_ARG, "messageType %s is not a request",
             scep_message_type_name(c->m->type));
    }
}

void ca_pki_operation(ca_server *srv, const uint8_t *der, size_t len, time_t now, const char *peer,
                      ca_http_response *resp)
{
    util_error err = {0};
    op_ctx c = {.srv = srv, .now = now, .peer = peer};
    reply r = {.status = SCEP_STATUS_FAILURE, .fail_info = SCEP_FAIL_BAD_REQUEST};
    ca_fault_roll(srv->cfg, &c.faults);
    if (scep_pki_message_parse(der, len, NULL, &c.m, &err) != 0) {
        log_warn("%s: PKIOperation: not a pkiMessage: %s", peer, err.detail);
        ca_response_text(resp, 400, "The request is not a SCEP pkiMessage (RFC 8894 §3).\n");
        return;
    }
    if (!c.m->transaction_id || !c.m->transaction_id[0] || strlen(c.m->transaction_id) > TRANSACTION_ID_MAX ||
        !printable(c.m->transaction_id)) {
        log_warn("%s: PKIOperation: missing or invalid transactionID", peer);
        ca_response_text(resp, 400,
                         "The pkiMessage has no valid transactionID (RFC 8894 "
                         "§3.2.1.1).\n");
        goto out;
    }
    if (!c.m->signature_checked || !c.m->signature_valid || !c.m->signer) {
        fail(&r, SCEP_FAIL_BAD_MESSAGE_CHECK, NULL,
             "the request's signature does not verify against the certificate it carries%s", NULL);
    } else if (ndes_can_answer(&c, &r) && open_envelope(&c, &r)) {
        dispatch(&c, &r);
    }
    /* without a verified signer there is nobody to encrypt to: only FAILURE */
    if (!c.m->signer && r.status == SCEP_STATUS_SUCCESS)
        fail(&r, SCEP_FAIL_BAD_MESSAGE_CHECK, NULL, "no signer%s", NULL);
    send_reply(&c, &r, resp);
    ca_fault_apply_reply(&c.faults, resp);
out:
    OPENSSL_free(r.content);
    OPENSSL_free(c.data);
    scep_pki_message_free(c.m);
}
