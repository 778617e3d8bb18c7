/*
 * The key-encryption key (KEK) sealed to a TPM 2.0: a 32-byte KEK is
 * encrypted to an RSA-2048 key generated inside the TPM, whose TSS2 key
 * file is useless without that TPM. A copy of the files alone does not
 * give the KEK. docs/internals/crypto.md, "Keys inside a TPM".
 */
#ifndef SCEPD_CRYPTO_KEK_TPM_H
#define SCEPD_CRYPTO_KEK_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define KEK_TPM_KEK_LEN 32

/* Encrypts kek to the TPM key in key_path (a TSS2 PRIVATE KEY PEM), first
 * generating that key in the TPM and writing it 0600 when the file is
 * missing. *sealed (the RSA PKCS#1 v1.5 ciphertext, 256 bytes) is freed
 * with free(). UTIL_ERR_TPM_UNAVAILABLE / UTIL_ERR_TPM_OPERATION when the
 * TPM cannot be reached or refuses. */
int kek_tpm_seal(const char *key_path, const uint8_t kek[KEK_TPM_KEK_LEN], uint8_t **sealed,
                 size_t *sealed_len, util_error *err) MUST_CHECK;
/* Decrypts what kek_tpm_seal made, inside the TPM; kek is written only on
 * success. */
int kek_tpm_unseal(const char *key_path, const uint8_t *sealed, size_t sealed_len,
                   uint8_t kek[KEK_TPM_KEK_LEN], util_error *err) MUST_CHECK;
/* The KEK of a state directory: unsealed from sealed_path when it exists;
 * otherwise 32 random bytes, sealed, and written to sealed_path (0600,
 * atomically). key_path as for kek_tpm_seal. */
int kek_tpm_load_or_create(const char *key_path, const char *sealed_path, uint8_t kek[KEK_TPM_KEK_LEN],
                           util_error *err) MUST_CHECK;

#endif
