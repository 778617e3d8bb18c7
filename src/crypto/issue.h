/*
 * CA-side key operations for scepca: the self-signed CA, certificates issued
 * from a PKCS#10 request, the two NDES RA certificates, CRLs, and the
 * signature over GetNextCACert. Time and serial numbers are passed in; the
 * only randomness here is crypto_ca_random_bytes.
 */
#ifndef SCEPD_CRYPTO_ISSUE_H
#define SCEPD_CRYPTO_ISSUE_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

#define CRYPTO_SERIAL_LEN 16
/* Room for the uppercase hex of a serial (two digits a byte, and a NUL). */
#define CRYPTO_SERIAL_HEX 80

/* Fills out with len bytes from the OpenSSL DRBG. */
int crypto_ca_random_bytes(uint8_t *out, size_t len, util_error *err) MUST_CHECK;
/* A positive, non-zero 128-bit serial number, and its uppercase hex. */
int crypto_ca_random_serial(uint8_t serial[CRYPTO_SERIAL_LEN], char hex[CRYPTO_SERIAL_HEX],
                            util_error *err) MUST_CHECK;
/* Uppercase hex of a certificate's serial number. */
void crypto_issue_serial_hex(X509 *cert, char hex[CRYPTO_SERIAL_HEX]);

/* A self-signed CA certificate: basicConstraints cA, keyUsage keyCertSign,
 * cRLSign and digitalSignature, SKI/AKI, valid from now-1h for days. */
int crypto_ca_create(EVP_PKEY *key, const X509_NAME *subject, const uint8_t *serial, size_t serial_len,
                     time_t now, int days, X509 **out, util_error *err) MUST_CHECK;

typedef struct crypto_issue_params {
    const uint8_t *serial; /* big-endian, positive */
    size_t serial_len;
    time_t not_before;
    time_t not_after;
    const EVP_MD *digest; /* NULL: SHA-256 */
} crypto_issue_params;

/* What crypto_issue_csr_read returns for bytes that are not one PKCS#10
 * request and nothing more. */
#define CRYPTO_CSR_UNREADABLE 1
/* Reads a DER PKCS#10 request and verifies its self-signature. RSA keys are
 * read without OpenSSL 3.0's decoders (see issue.c); any other key, version
 * or encoding goes through d2i_X509_REQ and crypto_issue_csr_verify. The
 * request's public key is then a legacy RSA key: use it through EVP. 0,
 * CRYPTO_CSR_UNREADABLE, or -1 with err when the signature does not verify
 * or the key cannot be used. */
int crypto_issue_csr_read(const unsigned char *der, size_t len, X509_REQ **out, util_error *err) MUST_CHECK;
/* Verifies the request's self-signature. */
int crypto_issue_csr_verify(X509_REQ *req, util_error *err) MUST_CHECK;
/* The number of subjectAltName entries (0 without the extension), -1 when
 * the extension does not decode. */
int crypto_issue_csr_san_count(X509_REQ *req);
/* The challengePassword attribute (1.2.840.113549.1.9.7) as text. Returns 1
 * with *out NULL when absent; the string is wiped by crypto_secret_free. */
int crypto_issue_csr_challenge(X509_REQ *req, char **out, size_t *out_len, util_error *err) MUST_CHECK;
/* Subject as one line ("CN=a, O=b"), for logs and the store. */
void crypto_issue_csr_subject(X509_REQ *req, char *out, size_t len);

/* Issues a certificate for the request's key and subject, copying from its
 * extensionRequest subjectAltName, keyUsage and extKeyUsage (nothing else),
 * with basicConstraints cA:FALSE, SKI and AKI. The public key is copied as
 * DER, not decoded: the result is for encoding (i2d, PEM) and its
 * X509_get0_pubkey is NULL; parse the encoding to inspect the key. */
int crypto_issue_from_csr(X509_REQ *req, X509 *ca_cert, EVP_PKEY *ca_key, const crypto_issue_params *p,
                          X509 **out, util_error *err) MUST_CHECK;

typedef enum crypto_ra_kind {
    CRYPTO_RA_ENCRYPT = 1, /* "CEP Encryption": keyEncipherment */
    CRYPTO_RA_SIGN = 2,    /* "Exchange Enrollment Agent (Offline request)": digitalSignature */
} crypto_ra_kind;

/* An NDES-style RA certificate for key, issued by the CA, with the
 * Certificate Request Agent EKU 1.3.6.1.4.1.311.20.2.1. */
int crypto_issue_ra(crypto_ra_kind kind, EVP_PKEY *key, const X509_NAME *subject, X509 *ca_cert,
                    EVP_PKEY *ca_key, const crypto_issue_params *p, X509 **out, util_error *err) MUST_CHECK;

typedef struct crypto_crl_entry {
    const char *serial_hex;
    time_t revoked_at;
} crypto_crl_entry;

int crypto_ca_crl_build(X509 *ca_cert, EVP_PKEY *ca_key, const crypto_crl_entry *entries, size_t count,
                        time_t now, int next_update_days, X509_CRL **out, util_error *err) MUST_CHECK;

/* A SignedData over data (eContentType id-data, content included), signed
 * by cert/key, carrying cert: the GetNextCACert reply (RFC 8894 §4.7). */
int crypto_ca_sign_data(X509 *cert, EVP_PKEY *key, const EVP_MD *md, const uint8_t *data, size_t len,
                        uint8_t **der, size_t *der_len, util_error *err) MUST_CHECK;

/* Checks that cert was signed by ca_cert's key (one level, no chain). */
bool crypto_issue_signed_by(X509 *cert, X509 *ca_cert);
/* True when the certificate is self-signed by its own key. */
bool crypto_issue_self_signed(X509 *cert);

#endif
