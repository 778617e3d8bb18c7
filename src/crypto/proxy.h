/*
 * Keys whose private half is elsewhere, and the operations such a key
 * forwards. A proxy is an EVP_PKEY with the public half of a key and a
 * function that performs its private operations (scepd: in the vault
 * process, src/vault); crypto_key_operate performs the same operations on
 * the real key, where it is. OpenSSL 3 still takes such keys through
 * RSA_METHOD and EC_KEY_METHOD: a key with its own method is "foreign" and
 * keeps the code paths CMS, X509_REQ and the signature code use, the way
 * engine keys work; a provider would do the same with much more code.
 */
#ifndef SCEPD_CRYPTO_PROXY_H
#define SCEPD_CRYPTO_PROXY_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* What a proxy forwards. Everything else with the private half (a raw RSA
 * private encryption, PSS) fails: signatures are of digests only. */
typedef enum crypto_key_op {
    CRYPTO_OP_RSA_SIGN = 1, /* PKCS#1 v1.5 of a digest; param: the digest's NID */
    CRYPTO_OP_RSA_DECRYPT,  /* param: RSA_PKCS1_PADDING, or RSA_NO_PADDING (OAEP, checked by the caller) */
    CRYPTO_OP_ECDSA_SIGN,   /* of a digest; the DER signature */
    CRYPTO_OP_ECDH,         /* in: the peer's public key (DER); the shared secret */
} crypto_key_op;

/* Performs op; *out is OPENSSL_malloc'd (free with OPENSSL_clear_free).
 * 0, or -1 with err set. */
typedef int (*crypto_proxy_fn)(void *arg, crypto_key_op op, int param, const uint8_t *in, size_t len,
                               uint8_t **out, size_t *out_len);

/* A proxy for the public key pubkey_der (RSA or EC); fn(arg, ...) performs
 * its private operations, arg_free(arg) runs when the key is freed. in_tpm:
 * the real key is inside a TPM (util_pkey_in_tpm then says so of the proxy,
 * so that the choices a TPM key needs follow it). arg is the proxy's in
 * both outcomes. */
int crypto_proxy_new(const uint8_t *pubkey_der, size_t len, bool in_tpm, crypto_proxy_fn fn, void *arg,
                     void (*arg_free)(void *), EVP_PKEY **out, util_error *err) MUST_CHECK;

/* The operations a proxy forwards, on the real key: the checks (the key's
 * type, a digest's length, the paddings allowed, no OAEP for a TPM key)
 * and the operation. *out as for crypto_proxy_fn. */
int crypto_key_operate(EVP_PKEY *key, crypto_key_op op, int param, const uint8_t *in, size_t len,
                       uint8_t **out, size_t *out_len, util_error *err) MUST_CHECK;

#endif
