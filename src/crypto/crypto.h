/*
 * Keys, CSRs and certificates: generation, building, loading, inspection and
 * verification. The only module besides src/scep that touches private keys.
 */
#ifndef SCEPD_CRYPTO_H
#define SCEPD_CRYPTO_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

/* ---- Keys ---- */

typedef enum crypto_key_alg { CRYPTO_KEY_RSA = 1, CRYPTO_KEY_EC = 2 } crypto_key_alg;

/* Where a key lives: in memory (stored as PKCS#8) or inside a TPM 2.0
 * (stored as the provider's "TSS2 PRIVATE KEY", useless without that TPM). */
typedef enum crypto_key_storage { CRYPTO_KEY_SOFTWARE = 0, CRYPTO_KEY_TPM2 = 1 } crypto_key_storage;

typedef struct crypto_key_spec {
    crypto_key_alg alg;
    int bits;                   /* RSA: 1024/2048/3072/4096; EC: 256/384 */
    crypto_key_storage storage; /* TPM2: rsa:2048 and ec:P-256 only */
} crypto_key_spec;

/* "software" or "tpm2" (the names of the API, the store and scepctl). */
int crypto_key_storage_parse(const char *text, crypto_key_storage *out) MUST_CHECK;
const char *crypto_key_storage_name(crypto_key_storage storage);
/* Where key lives: CRYPTO_KEY_TPM2 for a key of the tpm2 provider. */
crypto_key_storage crypto_key_storage_of(EVP_PKEY *key);

/* "rsa:2048", "rsa", "ec:P-256", "ec:prime256v1", "ec:P-384", "ecdsa:384";
 * with the suffix "@tpm2" ("rsa:2048@tpm2") the storage is CRYPTO_KEY_TPM2,
 * which crypto_key_spec_format writes back, so a spec passed as text (to
 * another process) keeps where the key is to be made. */
int crypto_key_spec_parse(const char *text, crypto_key_spec *out, util_error *err) MUST_CHECK;
void crypto_key_spec_format(const crypto_key_spec *spec, char *out, size_t len);
int crypto_key_generate(const crypto_key_spec *spec, EVP_PKEY **out, util_error *err) MUST_CHECK;
/* Describes a key: "RSA 2048" or "EC P-256". */
void crypto_key_describe(EVP_PKEY *key, char *out, size_t len);
/* RSA: a key that can receive key transport (RSA PKCS#1 v1.5 or OAEP). */
bool crypto_key_is_rsa(EVP_PKEY *key);

/* PEM or DER, PKCS#8, PKCS#1 or SEC1, unencrypted; or a TSS2 PRIVATE KEY PEM,
 * which loads the tpm2 provider first (crypto_tpm_load). */
int crypto_key_load(const uint8_t *data, size_t len, EVP_PKEY **out, util_error *err) MUST_CHECK;
/* One signature with key, thrown away, and one random byte, on the calling
 * thread: what OpenSSL makes on a thread's first use (an RSA key's blinding,
 * a modular inverse of about a millisecond; the thread's random generators)
 * is then made. For server threads before their first request. */
void crypto_key_prepare(EVP_PKEY *key);
int crypto_key_load_file(const char *path, EVP_PKEY **out, util_error *err) MUST_CHECK;
/* PKCS#8 PEM in a secret buffer (wiped when freed with crypto_secret_free);
 * for a TPM key the TSS2 PRIVATE KEY PEM (the key sealed to its TPM). */
int crypto_key_to_pem(EVP_PKEY *key, char **pem, size_t *len, util_error *err) MUST_CHECK;
/* Writes PKCS#8 PEM atomically with mode 0600. */
int crypto_key_write_file(const char *path, EVP_PKEY *key, util_error *err) MUST_CHECK;
void crypto_secret_free(void *p, size_t len);

/* ---- TPM 2.0 through OpenSSL's tpm2 provider (tpm2-openssl) ---- */

/* Loads the "default" and "tpm2" providers into OpenSSL's default library
 * context, once per process; later calls return at once. The TPM is the
 * one TPM2OPENSSL_TCTI names (scepd and scepctl set it from tpm_tcti /
 * --tpm-tcti before the first call). The provider's digests, ciphers and
 * random generator are kept out by default properties: only operations
 * with keys held in the TPM go to it. UTIL_ERR_TPM_UNAVAILABLE when the
 * provider or the TPM cannot be reached. */
int crypto_tpm_load(util_error *err) MUST_CHECK;
/* Unloads what crypto_tpm_load loaded, at exit, once every TPM key is
 * freed (the provider closes its connection to the TPM). */
void crypto_tpm_unload(void);
/* A key generated inside the TPM (spec->storage is not looked at); its
 * private part never leaves the TPM. crypto_key_generate calls it for
 * CRYPTO_KEY_TPM2. */
int crypto_tpm_key_generate(const crypto_key_spec *spec, EVP_PKEY **out, util_error *err) MUST_CHECK;
/* The signing context of key with md: the signature is fetched from the
 * key's own provider for a TPM key (util_pkey_propq). */
int crypto_sign_init(EVP_MD_CTX *mctx, EVP_PKEY *key, const EVP_MD *md) MUST_CHECK;
int crypto_sign_x509_req(X509_REQ *req, EVP_PKEY *key, const EVP_MD *md) MUST_CHECK;
int crypto_sign_x509(X509 *cert, EVP_PKEY *key, const EVP_MD *md) MUST_CHECK;

/* ---- Certificates ---- */

int crypto_cert_load(const uint8_t *data, size_t len, X509 **out, util_error *err) MUST_CHECK;
/* Every certificate in PEM, DER, or a PKCS#7 bundle. */
int crypto_certs_load(const uint8_t *data, size_t len, STACK_OF(X509) * *out, util_error *err) MUST_CHECK;
int crypto_certs_load_file(const char *path, STACK_OF(X509) * *out, util_error *err) MUST_CHECK;
int crypto_cert_load_file(const char *path, X509 **out, util_error *err) MUST_CHECK;
int crypto_certs_to_pem(STACK_OF(X509) * certs, char **pem, size_t *len, util_error *err) MUST_CHECK;
int crypto_cert_to_pem(X509 *cert, char **pem, size_t *len, util_error *err) MUST_CHECK;
int crypto_certs_write_file(const char *path, STACK_OF(X509) * certs, util_error *err) MUST_CHECK;
int crypto_cert_to_der(X509 *cert, uint8_t **der, size_t *len, util_error *err) MUST_CHECK;

/* "sha256:AB:CD:..." style text is accepted by crypto_fingerprint_parse. */
void crypto_cert_fingerprint(X509 *cert, const EVP_MD *md, char *out, size_t len, bool colons);
/* Compares "sha256:HEX" (or bare hex of 64/40 digits) with the certificate. */
bool crypto_cert_matches_fingerprint(X509 *cert, const char *fingerprint);
bool crypto_fingerprint_valid(const char *fingerprint);
bool crypto_cert_matches_key(X509 *cert, EVP_PKEY *key);
bool crypto_cert_is_ca(X509 *cert);
/* Issuer equals subject and the certificate verifies with its own key. */
bool crypto_cert_is_self_signed(X509 *cert);
void crypto_name_oneline(const X509_NAME *name, char *out, size_t len);
/* Parses "CN=a,O=b,C=US" (RFC 4514 order, as crypto_name_oneline prints it)
 * or "/C=US/O=b/CN=a" (DER order, as openssl -subj) into a name. */
int crypto_name_parse(const char *text, X509_NAME **out, util_error *err) MUST_CHECK;

/* Everything a person wants to know about a certificate. */
typedef struct crypto_cert_info {
    char subject[512];
    char issuer[512];
    char serial[128]; /* hex */
    time_t not_before;
    time_t not_after;
    char key[64]; /* "RSA 2048" */
    char signature_alg[64];
    char key_usage[256]; /* comma-separated names, "" when absent */
    char ext_key_usage[512];
    char san[1024];
    char sha256[100];
    char sha1[64];
    bool is_ca;
} crypto_cert_info;

void crypto_cert_info_get(X509 *cert, crypto_cert_info *info);
/* Parses a certificate serial number as scepctl and openssl print it: hex,
 * with or without "0x" and with or without colons between byte pairs
 * ("4BCB8D", "0x4BCB8D", "4b:cb:8d"); with decimal, only decimal digits.
 * Anything else (spaces, trailing characters, empty) is UTIL_ERR_USAGE. */
int crypto_serial_parse(const char *text, bool decimal, ASN1_INTEGER **out, util_error *err) MUST_CHECK;
/* ASN1 time to time_t (UTC). */
time_t crypto_asn1_time_to_time(const ASN1_TIME *t);

/* ---- CSR ---- */

typedef enum crypto_key_usage {
    CRYPTO_KU_NONE = 0,
    CRYPTO_KU_DIGITAL_SIGNATURE = 1,
    CRYPTO_KU_KEY_ENCIPHERMENT = 2,
    CRYPTO_KU_BOTH = 3,
} crypto_key_usage;

#define CRYPTO_MAX_SANS 32
#define CRYPTO_MAX_EKUS 16

typedef struct crypto_csr_params {
    const char *common_name;
    const char *organization; /* optional */
    const char *subject;      /* optional full DN; overrides CN/O */
    X509 *renew_from;         /* renewal: subject, SANs and key usage of this certificate,
                                 each unless given above */
    const char *org_unit, *locality, *state, *country, *email; /* optional */
    const char *sans[CRYPTO_MAX_SANS]; /* "dns:x", "ip:1.2.3.4", "email:a@b", "uri:..." */
    size_t san_count;
    const char *ekus[CRYPTO_MAX_EKUS]; /* dotted OIDs or short names */
    size_t eku_count;
    crypto_key_usage key_usage;
    bool key_usage_set;             /* false: default for the key type */
    const char *template_name;      /* Microsoft certificate template (1.3.6.1.4.1.311.20.2) */
    const char *challenge_password; /* optional */
    const EVP_MD *digest;           /* NULL: SHA-256 */
} crypto_csr_params;

int crypto_key_usage_parse(const char *text, crypto_key_usage *out) MUST_CHECK;
const char *crypto_key_usage_name(crypto_key_usage ku);
int crypto_csr_build(const crypto_csr_params *p, EVP_PKEY *key, X509_REQ **out, util_error *err) MUST_CHECK;
/* The self-signed certificate that signs a first enrollment (RFC 8894 §2.3):
 * subject as given, KU digitalSignature (+ keyEncipherment for RSA), valid
 * from now-1h to now+days. */
int crypto_selfsigned_build(EVP_PKEY *key, const X509_NAME *subject, const EVP_MD *md, time_t now, int days,
                            X509 **out, util_error *err) MUST_CHECK;

/* ---- Verification ---- */

typedef struct crypto_verify_check {
    char name[32]; /* "chain", "validity", "key_match", "revocation", "signature" */
    bool ok;
    bool skipped;
    char detail[256];
} crypto_verify_check;

typedef struct crypto_verify_result {
    bool valid;
    crypto_verify_check checks[8];
    size_t count;
} crypto_verify_result;

/* Chain to `trusted` (and `untrusted` intermediates), validity at `now`, key
 * match when key is given, revocation when crls are given. */
void crypto_cert_verify(X509 *cert, EVP_PKEY *key, STACK_OF(X509) * trusted, STACK_OF(X509) * untrusted,
                        STACK_OF(X509_CRL) * crls, time_t now, crypto_verify_result *out);

/* ---- Secrets: passwords, tokens, sealed values ---- */

/* scrypt (N=2^15, r=8, p=1) through EVP_KDF; the result is self-describing:
 * "scrypt$15$8$1$SALT$HASH" (base64). */
int crypto_password_hash(const char *password, char **out, util_error *err) MUST_CHECK;
/* Constant-time comparison; false for malformed hashes. */
bool crypto_password_verify(const char *password, const char *hash);
/* `bytes` random bytes as lowercase hex into out (2*bytes+1). */
int crypto_random_hex(char *out, size_t bytes) MUST_CHECK;
/* Uniform random integer in [0, bound). */
uint32_t crypto_random_below(uint32_t bound);
/* HMAC-SHA-256 of the concatenated parts (NUL-separated) under key. */
int crypto_hmac_sha256(const uint8_t key[32], const char *const *parts, size_t n, uint8_t out[32]) MUST_CHECK;
/* AES-256-GCM: out = nonce(12) || ciphertext || tag(16). For challenge
 * passwords and URL credentials, under the agent's secrets key (itself
 * sealed under the KEK, seal.h). */
int crypto_seal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                util_error *err) MUST_CHECK;
int crypto_unseal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                  util_error *err) MUST_CHECK;

/* ---- TLS ---- */
struct ssl_ctx_st;
/* A TLS 1.2+ server context presenting cert (and the non-root chain). */
int crypto_tls_server_ctx(const char *key_pem, const char *cert_pem, const char *chain_pem,
                          struct ssl_ctx_st **out, util_error *err) MUST_CHECK;
/* The same with a key already loaded (borrowed): a proxy of the vault's
 * (src/vault) in scepd's network process. */
int crypto_tls_server_ctx_key(EVP_PKEY *key, const char *cert_pem, const char *chain_pem,
                              struct ssl_ctx_st **out, util_error *err) MUST_CHECK;

#endif
