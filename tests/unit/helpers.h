/*
 * Shared fixtures for the cmocka unit tests: keys, a small PKI (CA, issued
 * certificates, CRLs), the interop vectors in $SCEP_VECTORS, temporary
 * directories and DER mutators. Every helper fails the running test (cmocka
 * assert) instead of returning NULL, so tests stay linear.
 */
#ifndef SCEPD_TESTS_HELPERS_H
#define SCEPD_TESTS_HELPERS_H

#include "tempdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* pem.h first: cms.h declares PEM_*_CMS only when pem.h came before it */
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <time.h>

/* ---- keys ---- */

/* A new RSA key of `bits` (1024/2048/...). */
EVP_PKEY *h_key_rsa(int bits);
/* A new EC key on `curve` ("P-256", "P-384"). */
EVP_PKEY *h_key_ec(const char *curve);

/* ---- certificates ---- */

typedef struct h_cert_spec {
    const char *subject; /* "CN=x,O=y" (crypto_name_parse syntax) */
    bool ca;             /* basicConstraints cA=TRUE (critical) */
    uint32_t key_usage;  /* KU_* bits from x509v3.h; 0: no keyUsage extension */
    long serial;         /* 0: random */
    time_t not_before;   /* 0: now - 1 hour */
    time_t not_after;    /* 0: now + 1 year */
    const EVP_MD *md;    /* NULL: SHA-256 */
} h_cert_spec;

/* Issues a certificate for `key` from issuer/issuer_key (self-signed when
 * issuer is NULL; issuer_key NULL means `key`). */
X509 *h_cert_make(const h_cert_spec *spec, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key);
/* A self-signed CA: KU keyCertSign, cRLSign and digitalSignature. */
X509 *h_ca_new(EVP_PKEY *key, const char *subject);
/* An end-entity (or RA) certificate issued by `ca` with the given KU bits. */
X509 *h_cert_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *subject, uint32_t key_usage);
/* A CRL of `ca` listing `revoked` (may be NULL), valid from now-1h to +7d. */
X509_CRL *h_crl_make(X509 *ca, EVP_PKEY *ca_key, X509 *revoked);

/* A new stack holding references to the NULL-terminated certificates. */
STACK_OF(X509) * h_stack(X509 *first, ...);
void h_stack_free(STACK_OF(X509) * s);
/* DER of a certificate (OPENSSL_free). */
uint8_t *h_cert_der(X509 *x, size_t *len);
/* The one-line RFC 2253 subject of a certificate. */
const char *h_subject(X509 *x, char *buf, size_t len);

/* ---- interop vectors ($SCEP_VECTORS) ---- */

/* Reads `rel` under $SCEP_VECTORS (tests/vectors) into a malloc'd,
 * NUL-terminated buffer. The vectors are part of the repository: a missing
 * folder or file fails the test. Returns 0. */
int h_vector_read(const char *rel, uint8_t **data, size_t *len);
#define H_VECTOR_READ(rel, data, len) (void)h_vector_read((rel), (data), (len))
/* Loads the first certificate of a PEM/DER vector file (fails if absent). */
X509 *h_vector_cert(const char *rel);

/* ---- files ---- */

/* Writes bytes to dir/name and returns the malloc'd path. */
char *h_write_file(const char *dir, const char *name, const void *data, size_t len);

/* ---- DER mutators ---- */

uint8_t *h_dup(const uint8_t *data, size_t len);
/* A copy of data with bit `bit` (0 = MSB of byte 0) inverted. */
uint8_t *h_flip_bit(const uint8_t *data, size_t len, size_t bit);
/* Offset of needle in haystack, or -1. */
long h_find(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t needle_len);

/*
 * Re-signs a pkiMessage: replaces (or adds) the signed attribute `oid` with
 * a value of ASN.1 `type` (V_ASN1_PRINTABLESTRING, V_ASN1_OCTET_STRING...;
 * oid NULL: attributes unchanged), then signs the attributes with `key` and
 * `md`. When add_cert is given it is appended to SignedData.certificates.
 * Returns the new DER (OPENSSL_free).
 */
uint8_t *h_resign(const uint8_t *der, size_t len, const char *oid, int type, const void *value, int value_len,
                  EVP_PKEY *key, const EVP_MD *md, X509 *add_cert, size_t *out_len);
/* Where the signature value of the first SignerInfo lies in `der`. */
long h_signature_offset(const uint8_t *der, size_t len, size_t *sig_len);
/* Where the signed attributes ([0] IMPLICIT SET, header included) of the
 * first SignerInfo lie in `der`, or -1 when they are not DER as sent. */
long h_signed_attrs_offset(const uint8_t *der, size_t len, size_t *attrs_len);

#endif
