/*
 * scepca's state in SQLite (DIR/scepca.db): CA and RA material, issued
 * certificates, the request queue, one-time passwords and revocations.
 * WAL, synchronous=FULL, every change one transaction; the file is 0600 and
 * its directory 0700. Private keys are stored as PEM text given by the
 * caller; nothing here parses them.
 */
#ifndef SCEPD_STORE_CA_STORE_H
#define SCEPD_STORE_CA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define STORE_CA_SCHEMA_VERSION 2
#define STORE_CA_DB_NAME "scepca.db"

typedef struct store_ca store_ca;

/* Opens DIR/scepca.db. With create, makes DIR (0700) and the schema. */
int store_ca_open(const char *dir, bool create, store_ca **out, util_error *err) MUST_CHECK;
void store_ca_close(store_ca *s);

/* Group commit for several connections to one store used by concurrent
 * threads (scepca's workers): store_ca_request_add calls that arrive while
 * another is committing are written together in the next transaction, one
 * fsync for all of them. Each call still returns only once its own rows are
 * committed (synchronous=FULL), so an acknowledged enrollment is on disk;
 * it waits for at most the commit in progress and its own. The group must
 * outlive every store attached to it. */
typedef struct store_ca_group store_ca_group;
store_ca_group *store_ca_group_new(void);
void store_ca_group_free(store_ca_group *g);
void store_ca_set_group(store_ca *s, store_ca_group *g);

/* ---- Settings (name/value text) ---- */

int store_ca_setting_set(store_ca *s, const char *name, const char *value, util_error *err) MUST_CHECK;
/* 0 found (*value malloc'ed), 1 absent, -1 error. */
int store_ca_setting_get(store_ca *s, const char *name, char **value, util_error *err) MUST_CHECK;

/* ---- CA and RA material, by role: "ca", "ra_encrypt", "ra_sign", "next_ca" ---- */

/* Stores several roles in one transaction (all or nothing). */
typedef struct store_ca_material {
    const char *role;
    const char *cert_pem;
    const char *key_pem; /* secret */
} store_ca_material;

int store_ca_material_put(store_ca *s, const store_ca_material *m, size_t count, util_error *err) MUST_CHECK;
/* 0 found, 1 absent, -1 error. The key PEM is wiped and freed by
 * store_ca_secret_free. */
int store_ca_material_get(store_ca *s, const char *role, char **cert_pem, char **key_pem,
                          util_error *err) MUST_CHECK;
/* Writes the rows and deletes the material of `drop` in one transaction
 * (a rollover's promotion: the next CA becomes "ca"). */
int store_ca_material_replace(store_ca *s, const store_ca_material *m, size_t count, const char *drop,
                              util_error *err) MUST_CHECK;
void store_ca_secret_free(char *s);

/* ---- Issued certificates ---- */

typedef struct store_ca_cert {
    char serial[80]; /* uppercase hex */
    char subject[512];
    char transaction_id[130];
    int64_t issued_at, not_before, not_after;
    int64_t revoked_at; /* 0: not revoked */
    char *cert_pem;     /* owned when read back */
} store_ca_cert;

/* 0 found, 1 absent, -1 error; free cert_pem with store_ca_cert_clear. */
int store_ca_cert_get(store_ca *s, const char *serial, store_ca_cert *out, util_error *err) MUST_CHECK;
void store_ca_cert_clear(store_ca_cert *c);
/* 0 revoked now, 1 unknown serial, 2 already revoked, -1 error. */
int store_ca_cert_revoke(store_ca *s, const char *serial, int64_t when, util_error *err) MUST_CHECK;

typedef int (*store_ca_cert_cb)(const store_ca_cert *c, void *arg);
/* Calls cb for each certificate (revoked_only: only revoked ones), at most
 * max rows; cert_pem is NULL in the callback. A non-zero cb stops. */
int store_ca_cert_each(store_ca *s, bool revoked_only, size_t max, store_ca_cert_cb cb, void *arg,
                       util_error *err) MUST_CHECK;

/* ---- Requests ---- */

typedef enum store_ca_request_status {
    STORE_CA_PENDING = 0,
    STORE_CA_ISSUED = 1,
    STORE_CA_REJECTED = 2,
} store_ca_request_status;

const char *store_ca_request_status_name(store_ca_request_status st);

typedef struct store_ca_request {
    int64_t id;
    char transaction_id[130];
    char subject[512];
    int status; /* store_ca_request_status */
    bool renewal;
    int64_t created_at, updated_at;
    char serial[80];  /* once issued */
    char reason[256]; /* once rejected */
    uint8_t *csr_der; /* owned when read back */
    size_t csr_len;
    int message_type; /* scep_message_type of the request that created the row */
    char signer[72];  /* SHA-256 hex of the signer certificate */
} store_ca_request;

/* Records a request; with cert (status ISSUED) also the certificate, in the
 * same transaction. Sets req->id. */
int store_ca_request_add(store_ca *s, store_ca_request *req, const store_ca_cert *cert,
                         util_error *err) MUST_CHECK;
/* 0 found, 1 absent, -1 error. */
int store_ca_request_get(store_ca *s, int64_t id, store_ca_request *out, util_error *err) MUST_CHECK;
/* The newest request with this transactionID. */
int store_ca_request_find(store_ca *s, const char *transaction_id, store_ca_request *out,
                          util_error *err) MUST_CHECK;
/* The newest request with this transactionID from this sender: the same
 * message type and signer (a resend, when the CSR is also the same). */
int store_ca_request_find_sender(store_ca *s, const char *transaction_id, int message_type,
                                 const char *signer, store_ca_request *out, util_error *err) MUST_CHECK;
/* The request a CertPoll names by transactionID and subject (one-line form
 * of crypto_name_oneline). A key used twice has several: an issued one
 * first, then a pending one, then the newest. */
int store_ca_request_find_subject(store_ca *s, const char *transaction_id, const char *subject,
                                  store_ca_request *out, util_error *err) MUST_CHECK;
void store_ca_request_clear(store_ca_request *r);
/* PENDING -> ISSUED with the certificate (one transaction). 1: not pending. */
int store_ca_request_issue(store_ca *s, int64_t id, const store_ca_cert *cert, int64_t now,
                           util_error *err) MUST_CHECK;
/* PENDING -> REJECTED. 1: not pending. */
int store_ca_request_reject(store_ca *s, int64_t id, const char *reason, int64_t now,
                            util_error *err) MUST_CHECK;

typedef int (*store_ca_request_cb)(const store_ca_request *r, void *arg);
/* status < 0: all; csr_der is NULL in the callback. */
int store_ca_request_each(store_ca *s, int status, size_t max, store_ca_request_cb cb, void *arg,
                          util_error *err) MUST_CHECK;

/* ---- One-time passwords (stored as a hash given by the caller) ---- */

typedef enum store_ca_otp_result {
    STORE_CA_OTP_OK = 0,
    STORE_CA_OTP_USED = 1,
    STORE_CA_OTP_UNKNOWN = 2,
    STORE_CA_OTP_EXPIRED = 3,
    STORE_CA_OTP_FULL = 4,
} store_ca_otp_result;

/* Adds a password unless max_outstanding unused, unexpired ones exist
 * (*result FULL). */
int store_ca_otp_add(store_ca *s, const char *hash, int64_t now, int64_t expires_at, int max_outstanding,
                     store_ca_otp_result *result, util_error *err) MUST_CHECK;
/* Marks the password used if it is known, unused and unexpired; reports
 * which of these failed otherwise. */
int store_ca_otp_consume(store_ca *s, const char *hash, int64_t now, store_ca_otp_result *result,
                         util_error *err) MUST_CHECK;

#endif
