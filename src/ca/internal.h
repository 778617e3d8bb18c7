/* scepca internals shared by the files of src/ca. */
#ifndef SCEPD_CA_INTERNAL_H
#define SCEPD_CA_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/throttle.h"
#include "ca/ca.h"
#include "store/ca_store.h"

#define CA_OTP_VALIDITY (60 * 60) /* NDES PasswordValidity: 60 minutes */
#define CA_OTP_MAX 5              /* NDES PasswordMax */
#define CA_DEFAULT_VALIDITY_DAYS 365
#define CA_LIST_MAX 100000 /* rows a listing or a CRL reads at most */

/* Wrong challenge passwords from one address: five are free, then the
 * wait before the next try doubles from 30 s up to an hour (a challenge is
 * typed once per enrollment; a guesser makes many). */
#define CA_CHALLENGE_FREE_FAILURES 5
#define CA_CHALLENGE_FIRST_WAIT_S 30
#define CA_CHALLENGE_MAX_WAIT_S 3600
/* Requests larger than this, or with more subjectAltNames, are refused. */
#define CA_CSR_MAX_BYTES (16 * 1024)
#define CA_CSR_MAX_TEXT "16384"
#define CA_CSR_MAX_SANS 64
#define CA_CSR_MAX_SANS_TEXT "64"

struct ca_server {
    const ca_config *cfg;
    store_ca *store;
    X509 *ca_cert;
    EVP_PKEY *ca_key;
    X509 *ra_enc_cert; /* NULL in CA mode */
    EVP_PKEY *ra_enc_key;
    X509 *ra_sign_cert;
    EVP_PKEY *ra_sign_key;
    X509 *expired_enc; /* expired-ra fault: the RA certificates, expired */
    X509 *expired_sign;
    X509 *rogue_cert; /* wrong-signer fault: a stranger's certificate */
    EVP_PKEY *rogue_key;
    char admin_user[64];
    char admin_salt[40];
    char admin_hash[200];              /* "scrypt$..." (or a salted SHA-256 from older CAs) */
    util_throttle *challenge_throttle; /* wrong challenges per client address */
    util_throttle *own_throttle;       /* when the configuration has none */
};

/* ---- material.c ---- */

/* 0 loaded, 1 role absent, -1 error. */
int ca_material_load(store_ca *store, const char *role, X509 **cert, EVP_PKEY **key,
                     util_error *err) MUST_CHECK;
/* Expired copies of the RA certificates, and a stranger, for faults. */
int ca_material_fault_certs(ca_server *srv, time_t now, util_error *err) MUST_CHECK;
int ca_material_cert_to_pem(X509 *cert, char **pem, util_error *err) MUST_CHECK;

/* ---- policy.c ---- */

void ca_sha256_hex(const void *data, size_t len, char out[65]);
/* A new one-time password; 1 when the cache is full. */
int ca_otp_new(store_ca *store, time_t now, char out[17], util_error *err) MUST_CHECK;

typedef enum ca_password_check {
    CA_PASSWORD_OK = 0,
    CA_PASSWORD_MISSING,
    CA_PASSWORD_UNKNOWN, /* wrong, unknown or expired */
    CA_PASSWORD_USED,
} ca_password_check;

int ca_password_verify(ca_server *srv, X509_REQ *req, time_t now, ca_password_check *out,
                       util_error *err) MUST_CHECK;

/* Issues a certificate for req and records it: for a new request (pending_id
 * 0) request and certificate together, else the pending request moves to
 * issued. One transaction either way. */
typedef struct ca_issue_input {
    X509_REQ *req;
    const uint8_t *csr_der;
    size_t csr_len;
    const char *transaction_id;
    bool renewal;
    int64_t pending_id;
    int validity_days;
    int message_type;   /* of the pkiMessage, recorded to recognise a resend */
    const char *signer; /* SHA-256 hex of the signer certificate, same purpose */
} ca_issue_input;

int ca_issue(store_ca *store, X509 *ca_cert, EVP_PKEY *ca_key, const ca_issue_input *in, time_t now,
             X509 **out, util_error *err) MUST_CHECK;
/* Records a request as pending; sets *id. */
int ca_defer(store_ca *store, const ca_issue_input *in, time_t now, int64_t *id, util_error *err) MUST_CHECK;

/* ---- pkiop.c ---- */

void ca_pki_operation(ca_server *srv, const uint8_t *der, size_t len, time_t now, const char *peer,
                      ca_http_response *resp);

/* ---- fault.c ---- */

/* Decides once per request which configured faults fire. */
typedef struct ca_fault_set {
    bool on[CA_FAULT_COUNT];
    long arg[CA_FAULT_COUNT];
} ca_fault_set;

void ca_fault_roll(const ca_config *cfg, ca_fault_set *out);
/* Applies the faults that act on the finished reply (status, body, type,
 * connection). */
void ca_fault_apply_reply(const ca_fault_set *f, ca_http_response *resp);

/* ---- admin.c ---- */

/* /certsrv/mscep_admin/: HTTP Basic, then a fresh one-time password. */
void ca_admin_page(ca_server *srv, const ca_http_request *req, time_t now, ca_http_response *resp);

/* ---- handler.c ---- */

/* Base64 with line breaks and missing padding tolerated (malloc'ed). */
int ca_base64_decode(const char *text, uint8_t **out, size_t *out_len) MUST_CHECK;
int ca_response_set_body(ca_http_response *resp, const void *data, size_t len);
void ca_response_add_header(ca_http_response *resp, const char *name, const char *value);
void ca_response_text(ca_http_response *resp, int status, const char *text);

#endif
