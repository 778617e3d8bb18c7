/*
 * SCEP (RFC 8894) messages: build, parse, verify, open. Bytes in, structs out.
 * No sockets, files, clock reads, randomness or logging of its own: time,
 * nonces and keys are passed in. Used by the client (scepctl, scepd) and the
 * server (scepca) alike.
 */
#ifndef SCEPD_SCEP_H
#define SCEPD_SCEP_H

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

/* RFC 8894 §3.2.1.2, Table 3 */
typedef enum scep_message_type {
    SCEP_MSG_NONE = 0,
    SCEP_MSG_CERTREP = 3,
    SCEP_MSG_RENEWALREQ = 17,
    SCEP_MSG_PKCSREQ = 19,
    SCEP_MSG_CERTPOLL = 20,
    SCEP_MSG_GETCERT = 21,
    SCEP_MSG_GETCRL = 22,
} scep_message_type;

/* Table 4 */
typedef enum scep_pki_status {
    SCEP_STATUS_NONE = -1,
    SCEP_STATUS_SUCCESS = 0,
    SCEP_STATUS_FAILURE = 2,
    SCEP_STATUS_PENDING = 3,
} scep_pki_status;

/* Table 5; values above 4 are kept as they came */
typedef enum scep_fail_info {
    SCEP_FAIL_NONE = -1,
    SCEP_FAIL_BAD_ALG = 0,
    SCEP_FAIL_BAD_MESSAGE_CHECK = 1,
    SCEP_FAIL_BAD_REQUEST = 2,
    SCEP_FAIL_BAD_TIME = 3,
    SCEP_FAIL_BAD_CERT_ID = 4,
} scep_fail_info;

#define SCEP_NONCE_MAX 32
#define SCEP_NONCE_LEN 16

const char *scep_message_type_name(int type);
const char *scep_pki_status_name(int status);
const char *scep_fail_info_name(int fail_info);

/* ---- GetCACaps (§3.5) ---- */

enum {
    SCEP_CAP_AES = 1u << 0,
    SCEP_CAP_DES3 = 1u << 1,
    SCEP_CAP_GETNEXTCACERT = 1u << 2,
    SCEP_CAP_POSTPKIOPERATION = 1u << 3,
    SCEP_CAP_RENEWAL = 1u << 4,
    SCEP_CAP_SHA1 = 1u << 5,
    SCEP_CAP_SHA256 = 1u << 6,
    SCEP_CAP_SHA512 = 1u << 7,
    SCEP_CAP_SCEPSTANDARD = 1u << 8,
    SCEP_CAP_UPDATE = 1u << 9,
    SCEP_CAP_SHA384 = 1u << 10,
};

#define SCEP_CAPS_MAX_UNKNOWN 32

typedef struct scep_caps {
    unsigned flags;
    /* keywords outside Table 7, as sent (trimmed) */
    char *unknown[SCEP_CAPS_MAX_UNKNOWN];
    size_t unknown_count;
} scep_caps;

/* Case-insensitive, LF or CRLF, blanks ignored. Never fails on content:
 * an empty or odd body simply yields no capabilities. */
void scep_caps_parse(const uint8_t *body, size_t len, scep_caps *out);
void scep_caps_clear(scep_caps *caps);
/* SCEPStandard implies AES, POSTPKIOperation and SHA-256 (§3.5.2). */
bool scep_caps_has(const scep_caps *caps, unsigned flag);
/* Writes the keywords one per line ("AES\nPOSTPKIOperation\n..."). */
void scep_caps_format(const scep_caps *caps, char *out, size_t outlen);

/* ---- GetCACert (§4.2) ---- */

typedef struct scep_ca_certs {
    X509 *ca;             /* the issuing CA (borrowed from all) */
    X509 *ra_encrypt;     /* recipient for requests (borrowed; == ca in CA mode) */
    X509 *ra_sign;        /* expected signer of replies (borrowed; == ca in CA mode) */
    STACK_OF(X509) * all; /* every certificate, as received */
} scep_ca_certs;

typedef enum scep_cert_role {
    SCEP_ROLE_OTHER = 0,
    SCEP_ROLE_CA,
    SCEP_ROLE_RA_ENCRYPT,
    SCEP_ROLE_RA_SIGN,
    SCEP_ROLE_RA_BOTH,
    SCEP_ROLE_CA_CHAIN, /* a CA above the issuing CA */
} scep_cert_role;

/* Accepts a DER certificate, a certs-only PKCS#7/CMS (eContent absent or
 * empty), or PEM of either. Classifies by basicConstraints, keyUsage and
 * issuer, not by order. */
int scep_ca_certs_parse(const uint8_t *der, size_t len, scep_ca_certs **out, util_error *err) MUST_CHECK;
/* Builds the classification from certificates already at hand (state files,
 * stores). Takes references, the caller keeps its own. */
int scep_ca_certs_from_stack(STACK_OF(X509) * certs, scep_ca_certs **out, util_error *err) MUST_CHECK;
scep_cert_role scep_ca_certs_role(const scep_ca_certs *c, X509 *cert);
const char *scep_cert_role_name(scep_cert_role role);
void scep_ca_certs_free(scep_ca_certs *c);

/* Degenerate certs-only SignedData (§3.4), as GetCACert and CertRep use. */
int scep_certs_only_encode(STACK_OF(X509) * certs, X509_CRL *crl, uint8_t **der, size_t *len,
                           util_error *err) MUST_CHECK;
/* Reads certificates and CRLs out of a certs-only SignedData. */
int scep_certs_only_parse(const uint8_t *der, size_t len, STACK_OF(X509) * *certs, STACK_OF(X509_CRL) * *crls,
                          util_error *err) MUST_CHECK;

/* ---- Message data builders (§3.3) ---- */

int scep_issuer_and_subject_encode(const X509_NAME *issuer, const X509_NAME *subject, uint8_t **der,
                                   size_t *len, util_error *err) MUST_CHECK;
int scep_issuer_and_serial_encode(const X509_NAME *issuer, const ASN1_INTEGER *serial, uint8_t **der,
                                  size_t *len, util_error *err) MUST_CHECK;
int scep_issuer_and_subject_decode(const uint8_t *der, size_t len, X509_NAME **issuer, X509_NAME **subject,
                                   util_error *err) MUST_CHECK;
int scep_issuer_and_serial_decode(const uint8_t *der, size_t len, X509_NAME **issuer, ASN1_INTEGER **serial,
                                  util_error *err) MUST_CHECK;

/* ---- Building a pkiMessage ---- */

typedef enum scep_key_transport {
    SCEP_KT_DEFAULT = 0, /* PKCS#1 v1.5 for RSA, ECDH key agreement for EC */
    SCEP_KT_RSA_OAEP,    /* what NDES 2012 R2+ uses in AES replies */
} scep_key_transport;

typedef struct scep_pki_message_params {
    scep_message_type type;
    const char *transaction_id;
    const uint8_t *sender_nonce; /* NULL: no senderNonce attribute */
    size_t sender_nonce_len;
    /* CertRep only */
    int pki_status;                 /* scep_pki_status */
    int fail_info;                  /* scep_fail_info, or -1 */
    const char *fail_info_text;     /* NULL: omitted */
    const uint8_t *recipient_nonce; /* NULL: omitted */
    size_t recipient_nonce_len;
    const char *ms_hresult;     /* NDES 1.3.6.1.4.1.311.21.33, decimal text */
    const char *ms_disposition; /* NDES 1.3.6.1.4.1.311.21.38 */
    bool one_byte_content;      /* NDES: FAILURE/PENDING carry a 00 byte */
    /* signer */
    X509 *signer_cert;
    EVP_PKEY *signer_key;
    const EVP_MD *digest;         /* NULL: SHA-256 */
    bool include_signer_cert;     /* requests: true; NDES replies: false */
    STACK_OF(X509) * extra_certs; /* also placed in SignedData.certificates */
    time_t signing_time;          /* 0: no signingTime attribute */
    /* envelope (omitted when content is NULL) */
    const uint8_t *content; /* messageData to encrypt */
    size_t content_len;
    STACK_OF(X509) * recipients; /* at least one */
    const EVP_CIPHER *cipher;    /* NULL: AES-128-CBC */
    scep_key_transport key_transport;
} scep_pki_message_params;

int scep_pki_message_encode(const scep_pki_message_params *p, uint8_t **der, size_t *len,
                            util_error *err) MUST_CHECK;

/* ---- Parsing a pkiMessage ---- */

typedef struct scep_pki_message {
    int type;       /* messageType; SCEP_MSG_NONE when absent */
    int pki_status; /* SCEP_STATUS_NONE when absent */
    int fail_info;  /* SCEP_FAIL_NONE when absent */
    char *fail_info_text;
    char *transaction_id;
    uint8_t sender_nonce[SCEP_NONCE_MAX];
    size_t sender_nonce_len; /* 0 when absent */
    uint8_t recipient_nonce[SCEP_NONCE_MAX];
    size_t recipient_nonce_len;
    char *ms_hresult;     /* NDES 1.3.6.1.4.1.311.21.33, as sent */
    char *ms_disposition; /* NDES 1.3.6.1.4.1.311.21.38 */
    time_t signing_time;  /* 0 when absent */
    char digest_name[32]; /* digestAlgorithm of the signer */
    char signature_alg_name[48];
    /* signature */
    bool signature_checked; /* a signer certificate was found */
    bool signature_valid;
    X509 *signer;           /* the certificate that verified (owned ref) */
    STACK_OF(X509) * certs; /* SignedData.certificates (owned) */
    /* eContent: the DER of the EnvelopedData, if any (owned) */
    uint8_t *content;
    size_t content_len;
    CMS_ContentInfo *cms;
} scep_pki_message;

/*
 * Parses a pkiMessage (DER; also PEM or base64 text) and checks its
 * signature when a signer certificate can be found in the message or in
 * `signers` (NDES replies carry no certificates). Returns -1 only when the
 * bytes are not a SignedData with a SignerInfo. A bad signature leaves
 * signature_valid false: callers decide (scep_certrep_check rejects it).
 */
int scep_pki_message_parse(const uint8_t *data, size_t len, STACK_OF(X509) * signers, scep_pki_message **out,
                           util_error *err) MUST_CHECK;
void scep_pki_message_free(scep_pki_message *m);

/*
 * Client-side checks of a CertRep against the request it answers: signature
 * valid and made by one of `expected_signers` (when non-NULL), messageType 3,
 * transactionID, recipientNonce, a known pkiStatus, failInfo on FAILURE.
 */
int scep_certrep_check(const scep_pki_message *m, STACK_OF(X509) * expected_signers,
                       const char *transaction_id, const uint8_t *nonce, size_t nonce_len,
                       util_error *err) MUST_CHECK;

/*
 * Opens the EnvelopedData of a message with the recipient's key (RSA PKCS#1
 * v1.5 or OAEP, EC key agreement; AES, 3DES and, only here, single DES).
 * A wrong key is an error (RESPONSE_DECRYPT). For clients, whose replies
 * are opened only after their signature verified, so no one can use them
 * as a padding oracle.
 */
int scep_envelope_open(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, uint8_t **out,
                       size_t *out_len, char *cipher_name, size_t cipher_name_len,
                       util_error *err) MUST_CHECK;
/*
 * The same for servers, which open what anyone sends: with OpenSSL's
 * countermeasure against Bleichenbacher-style padding oracles, a wrong RSA
 * key yields random content (which then fails to parse) rather than an
 * error the sender could tell apart.
 */
int scep_envelope_open_mma(const uint8_t *env, size_t env_len, X509 *cert, EVP_PKEY *key, uint8_t **out,
                           size_t *out_len, char *cipher_name, size_t cipher_name_len,
                           util_error *err) MUST_CHECK;
/* Loads, once per process, what opening a single-DES envelope as a client
 * needs (the legacy provider's DES-CBC, about 1 ms); scep_envelope_open
 * does it when it first meets one. A client may call it on a thread of its
 * own while it waits for a reply. */
void scep_envelope_preload(void);
/* Describes an envelope without opening it: cipher and key transport names. */
int scep_envelope_describe(const uint8_t *env, size_t env_len, char *cipher_name, size_t cipher_len,
                           char *kt_name, size_t kt_len, util_error *err) MUST_CHECK;

/*
 * From an opened SUCCESS reply: the issued certificate (matched by public
 * key when `key` is given, else the first non-CA one), the rest as chain,
 * and any CRL. Outputs may be NULL.
 */
int scep_certrep_content(const uint8_t *der, size_t len, EVP_PKEY *key, X509 **issued,
                         STACK_OF(X509) * *chain, X509_CRL **crl, util_error *err) MUST_CHECK;

/* Maps a FAILURE reply to the catalogue (badRequest with an NDES HRESULT is
 * refined: password used, unknown, missing, key too short, not supported). */
util_err scep_failure_error(const scep_pki_message *m);

/* transactionID = uppercase hex SHA-256 of the DER SubjectPublicKeyInfo. */
int scep_transaction_id(EVP_PKEY *key, char out[65], util_error *err) MUST_CHECK;

/* Digest and cipher by name: sha1 sha256 sha384 sha512 / aes aes128 aes256 des3. */
const EVP_MD *scep_digest_by_name(const char *name);
const EVP_CIPHER *scep_cipher_by_name(const char *name);
const char *scep_digest_short_name(const EVP_MD *md);
const char *scep_cipher_short_name(const EVP_CIPHER *c);

#endif
