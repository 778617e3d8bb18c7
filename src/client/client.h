/*
 * A SCEP client session: src/scep messages carried by src/http. Discovers the
 * server (GetCACaps, GetCACert), chooses algorithms and transport, sends
 * PKIOperations and checks the replies. Used by scepctl; the agent drives
 * the same steps from its state machine.
 */
#ifndef SCEPD_CLIENT_H
#define SCEPD_CLIENT_H

#include <stdbool.h>

#include "crypto/crypto.h"
#include "http/http.h"
#include "scep/scep.h"

typedef enum client_method { CLIENT_METHOD_AUTO = 0, CLIENT_METHOD_GET, CLIENT_METHOD_POST } client_method;

typedef struct client_config {
    const char *url;
    const char *ca_identifier;  /* message= on GetCACaps/GetCACert; NULL: none */
    const char *ca_fingerprint; /* "sha256:HEX" of the CA certificate; NULL: not checked */
    /* The staged next CA (from a GetNextCACert signed by the current CA):
     * a server presenting one of these passes the fingerprint check, which
     * is how a rollover is followed. NULL: none (borrowed). */
    STACK_OF(X509) * next_ca;
    http_options http;
    client_method method;
    const EVP_MD *digest;     /* NULL: chosen from the caps */
    const EVP_CIPHER *cipher; /* NULL: chosen from the caps */
    bool verbose;             /* explain choices on stderr */
} client_config;

/* What discovery learned about the server. */
typedef struct client_server {
    scep_caps caps;
    bool caps_answered;      /* false: closed, error or empty (no caps) */
    long caps_status;        /* HTTP status of GetCACaps, 0 when the connection closed */
    char server_header[128]; /* HTTP Server: of the GetCACaps reply */
    int iis_major;           /* Microsoft-IIS/N, 0 when not IIS */
    scep_ca_certs *ca;
} client_server;

void client_server_clear(client_server *s);

int client_get_caps(const client_config *cfg, client_server *srv, util_error *err) MUST_CHECK;
/* GetCACert, then checks the pinned fingerprint and that RA certificates
 * were issued by the CA and are within their validity at `now`. */
int client_get_ca(const client_config *cfg, client_server *srv, time_t now, util_error *err) MUST_CHECK;
int client_discover(const client_config *cfg, client_server *srv, time_t now, util_error *err) MUST_CHECK;
/* GetNextCACert: the next CA certificates, verified against the current CA. */
int client_get_next_ca(const client_config *cfg, const client_server *srv, STACK_OF(X509) * *out,
                       util_error *err) MUST_CHECK;
/* The same check of a GetNextCACert reply without the I/O. */
int client_next_ca_handle(const client_server *srv, const http_response *resp, STACK_OF(X509) * *out,
                          util_error *err) MUST_CHECK;

/* The algorithms and method a transaction uses. */
typedef struct client_choice {
    const EVP_MD *digest;
    const EVP_CIPHER *cipher;
    bool post;
    bool is_ndes; /* Microsoft IIS: renewal as PKCSReq, no RenewalReq */
} client_choice;

void client_choose(const client_config *cfg, const client_server *srv, client_choice *out);
/* The cipher a message signed by signer_key asks for: 3DES when the key is
 * held in a TPM (the reply is encrypted to the signer, and only RSA PKCS#1
 * v1.5 key transport opens there), else the chosen one. */
const EVP_CIPHER *client_cipher_for_signer(const EVP_CIPHER *chosen, EVP_PKEY *signer_key);

/* One transaction (an enrollment, a poll, a GetCert or GetCRL). */
typedef struct client_transaction {
    char transaction_id[80];
    int request_type;  /* PKCSReq or RenewalReq for enrollments */
    X509 *signer_cert; /* self-signed, or the old certificate for renewal */
    EVP_PKEY *signer_key;
    EVP_PKEY *new_key;  /* the key in the CSR; the issued certificate must match */
    X509_NAME *subject; /* CSR subject, for CertPoll */
    client_choice choice;
} client_transaction;

void client_transaction_clear(client_transaction *t);

/* ---- preparing an enrollment ---- */

typedef enum client_renewal_mode {
    CLIENT_RENEWAL_AUTO = 0,   /* RenewalReq when listed and not NDES, else PKCSReq */
    CLIENT_RENEWAL_RENEWALREQ, /* always RenewalReq */
    CLIENT_RENEWAL_PKCSREQ,    /* always a PKCSReq signed by the old certificate */
} client_renewal_mode;

typedef struct client_enrollment {
    crypto_csr_params csr; /* what the CSR says (borrowed); its digest is t->choice.digest */
    X509 *renew_cert;      /* renewal: the certificate being renewed, NULL otherwise (borrowed) */
    EVP_PKEY *renew_key;   /* and its key (borrowed) */
    client_renewal_mode mode;
    X509 *earlier_signer; /* first enrollment resumed: the certificate that signed it, or NULL */
    /* First enrollment: the key that signs instead of the new one (scepctl
     * --signer-key, or the temporary RSA signer a resumed request was sent
     * with), or NULL to follow client_signer_needs_rsa (borrowed). */
    EVP_PKEY *signer_key;
    time_t now; /* validity of a new self-signed signer */
} client_enrollment;

/* The message a renewal sends: the one rule for scepctl and the agent. */
int client_request_type(const client_server *srv, client_renewal_mode mode);
/* Whether the server is known to answer an EC signer (CMS key agreement):
 * only a server that lists SCEPStandard and is not IIS (NDES encrypts only
 * to RSA). No GetCACaps keyword announces key agreement itself. */
bool client_server_ec_agreement(const client_server *srv);
/* Whether a first enrollment of new_key must be signed by a temporary RSA
 * key: an EC key towards a server without EC key agreement, or an EC key
 * held in a TPM (CMS cannot make the key agreement with it). */
bool client_signer_needs_rsa(const client_server *srv, EVP_PKEY *new_key);
/* Prepares an enrollment. Expects t->new_key and t->choice; sets t->subject,
 * t->signer_cert, t->signer_key (a key other than t->new_key on a first
 * enrollment is the temporary signer: the caller keeps it for CertPoll and
 * frees it once the reply is opened), t->request_type and t->transaction_id, and
 * returns the CSR's DER in *csr. The CSR carries the challenge: free it with
 * OPENSSL_clear_free as soon as it is sent. */
int client_enrollment_prepare(const client_server *srv, const client_enrollment *e, client_transaction *t,
                              uint8_t **csr, size_t *csr_len, util_error *err) MUST_CHECK;

typedef struct client_result {
    int status;               /* scep_pki_status */
    util_err failure;         /* FAILURE: the catalogue code */
    char failure_detail[384]; /* failInfo name, failInfoText, NDES HRESULT */
    X509 *cert;
    STACK_OF(X509) * chain;
    X509_CRL *crl;
} client_result;

void client_result_clear(client_result *r);

/*
 * Sends one PKIOperation of `type` with `message_data` and checks the reply.
 * Returns 0 with r->status set (SUCCESS, PENDING or FAILURE; on SUCCESS the
 * content is opened and r->cert/chain/crl filled), or -1 for communication
 * and bad-data errors.
 */
int client_pki_operation(const client_config *cfg, const client_server *srv, const client_transaction *t,
                         int type, const uint8_t *message_data, size_t message_data_len, client_result *r,
                         util_error *err) MUST_CHECK;

/* PKCSReq or RenewalReq with the CSR. */
int client_enroll(const client_config *cfg, const client_server *srv, const client_transaction *t,
                  const uint8_t *csr_der, size_t csr_len, client_result *r, util_error *err) MUST_CHECK;
/* CertPoll (GetCertInitial) with the same transactionID. */
int client_poll(const client_config *cfg, const client_server *srv, const client_transaction *t,
                client_result *r, util_error *err) MUST_CHECK;

/* The steps of the calls above without their I/O, for event-driven callers
 * (scepd drives them over http_client). */
void client_caps_handle(client_server *srv, const http_response *resp); /* resp NULL: closed */
int client_ca_handle(const client_config *cfg, client_server *srv, const http_response *resp, time_t now,
                     util_error *err) MUST_CHECK;
/* post_refused: the reply is to the GET sent after the server refused a POST. */
int client_check_http(const http_response *resp, const char *operation, size_t query_len, bool post_refused,
                      util_error *err) MUST_CHECK;
int client_pki_prepare(const client_server *srv, const client_transaction *t, int type,
                       const uint8_t *message_data, size_t message_data_len, time_t now,
                       uint8_t nonce[SCEP_NONCE_LEN], uint8_t **msg, size_t *msg_len,
                       util_error *err) MUST_CHECK;
/* The GET URL of a PKIOperation; *query_len for the IIS limit check. */
char *client_pki_get_url(const client_config *cfg, const uint8_t *msg, size_t len, size_t *query_len);
/* A POST answered with an empty 200 or 405: send it again with GET. */
bool client_post_needs_get(const http_response *resp);
int client_pki_finish(const client_server *srv, const client_transaction *t,
                      const uint8_t nonce[SCEP_NONCE_LEN], const http_response *resp, client_result *r,
                      util_error *err) MUST_CHECK;
int client_poll_data(const client_server *srv, const client_transaction *t, uint8_t **der, size_t *len,
                     util_error *err) MUST_CHECK;

/* The issued certificate's chain: the reply's other certificates, else the
 * CA certificates from GetCACert. Never NULL unless out of memory. */
STACK_OF(X509) * client_result_chain(const client_result *r, const client_server *srv);

/* Fills the error for a FAILURE result (code and detail). */
void client_result_error(const client_result *r, util_error *err);

/* ---- Saved state of a deferred request (scepctl poll) ---- */

typedef struct client_saved {
    char *url;
    char *ca_identifier;
    char *key_out, *cert_out, *chain_out;
    client_server server; /* caps flags, Server header, CA/RA certificates */
    client_transaction txn;
} client_saved;

/* Written atomically with mode 0600: it holds the request's private keys. */
int client_state_save(const char *path, const client_saved *s, util_error *err) MUST_CHECK;
int client_state_load(const char *path, client_saved *s, util_error *err) MUST_CHECK;
void client_saved_clear(client_saved *s);

/* ---- Event-driven operations (scepd): the same steps over http_client ---- */

typedef struct client_async client_async;
/* rc 0: done (for a PKIOperation, r->status says SUCCESS/PENDING/FAILURE);
 * rc -1: err says why. The operation frees itself after the callback. */
typedef void (*client_async_cb)(void *arg, int rc, const util_error *err);

/* GetCACaps then GetCACert into srv (which must outlive the operation). */
client_async *client_async_discover(http_client *hc, const client_config *cfg, client_server *srv, time_t now,
                                    client_async_cb cb, void *arg, util_error *err);
/* One PKIOperation; cfg, srv, t and r must outlive the operation. */
client_async *client_async_pki(http_client *hc, const client_config *cfg, const client_server *srv,
                               const client_transaction *t, int type, const uint8_t *message_data,
                               size_t message_data_len, time_t now, client_result *r, client_async_cb cb,
                               void *arg, util_error *err);
/* GetCACaps and GetCACert into srv, then GetNextCACert when the caps list
 * it: *next gets the next CA certificates (verified against the current
 * CA), or NULL when the server offers none (not listed, or HTTP 404). */
client_async *client_async_next_ca(http_client *hc, const client_config *cfg, client_server *srv, time_t now,
                                   STACK_OF(X509) * *next, client_async_cb cb, void *arg, util_error *err);
/* Frees an operation whose transfer was cancelled by http_client_free (an
 * operation cannot be stopped otherwise: free the http_client first). */
void client_async_abandon(client_async *op);

#endif
