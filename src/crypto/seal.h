/*
 * Sealed storage of private keys and other secrets: AES-256-GCM under a
 * key-encryption key (KEK) that is never stored in the state directory.
 *
 * Every seal and unseal in scepd goes through the functions here, and each
 * takes the KEK explicitly: no global KEK exists, so that the code that
 * holds the KEK (today the agent, later a separate process) is the only
 * code that can open a sealed value.
 *
 * A sealed value is self-describing text:
 *
 *     scepd-sealed:v1:<base64 of nonce (12) || ciphertext || tag (16)>
 *
 * with a fresh random 96-bit nonce per seal. The associated data (AAD)
 * binds the value to its place (table, row, column, name): moved to another
 * row or column it does not open.
 */
#ifndef SCEPD_CRYPTO_SEAL_H
#define SCEPD_CRYPTO_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define CRYPTO_KEK_LEN 32
#define CRYPTO_SEAL_NONCE_LEN 12
#define CRYPTO_SEAL_TAG_LEN 16
#define CRYPTO_SEALED_PREFIX "scepd-sealed:v1:"
/* The longest plaintext sealed (a 16384-bit RSA key in PEM is ~13 KiB). */
#define CRYPTO_SEAL_MAX_PLAIN (64u * 1024u)

typedef struct crypto_kek crypto_kek;

/* Copies exactly CRYPTO_KEK_LEN bytes into the secure heap. */
int crypto_kek_from_bytes(const uint8_t *bytes, size_t len, crypto_kek **out, util_error *err) MUST_CHECK;
/* Wipes and frees; NULL is fine. */
void crypto_kek_free(crypto_kek *kek);

/* A sealed value taken apart (crypto_sealed_parse); the ciphertext is owned. */
typedef struct crypto_sealed {
    uint8_t nonce[CRYPTO_SEAL_NONCE_LEN];
    uint8_t *ciphertext;
    size_t ciphertext_len;
    uint8_t tag[CRYPTO_SEAL_TAG_LEN];
} crypto_sealed;

/* True when text starts with CRYPTO_SEALED_PREFIX (it may still be invalid). */
bool crypto_is_sealed(const char *text);
/* Parses the text form (len bytes, no NUL needed). SEALED_INVALID when it is
 * not one. */
int crypto_sealed_parse(const char *text, size_t len, crypto_sealed *out, util_error *err) MUST_CHECK;
void crypto_sealed_clear(crypto_sealed *s);

/* Seals len bytes under kek with the associated data aad; *out is the text
 * form (free()). */
int crypto_seal_text(const crypto_kek *kek, const char *aad, const uint8_t *plain, size_t len, char **out,
                     util_error *err) MUST_CHECK;
/* Opens the text form; *out is NUL-terminated, *out_len excludes the NUL.
 * Free it with crypto_secret_free(*out, *out_len). SEALED_INVALID when the
 * text is malformed, the KEK is not the one it was sealed with, the AAD
 * names another place, or the value was altered. */
int crypto_unseal_text(const crypto_kek *kek, const char *aad, const char *sealed, char **out,
                       size_t *out_len, util_error *err) MUST_CHECK;

/* ---- the associated data of each place a secret is stored in ---- */

/* A key pair in the keys table: "scepd-key-v1|keys|<name>|<request id>"
 * (request id 0 for a key not from a request). */
void crypto_seal_aad_key(char *out, size_t size, const char *name, int64_t request_id);
/* A key in the requests table: "scepd-key-v1|requests|<id>|<column>|<key name>",
 * column "key_pem" (the new key) or "signer_key_pem" (the renewal's or the
 * temporary signer's key). */
void crypto_seal_aad_request(char *out, size_t size, int64_t id, const char *column, const char *key_name);
/* The key that seals challenge passwords and URL credentials. */
#define CRYPTO_SEAL_AAD_SECRETS_KEY "scepd-secret-v1|docs|secrets_key"

/* ---- where the KEK comes from ---- */

typedef struct crypto_kek_sources {
    const char *credentials_dir; /* $CREDENTIALS_DIRECTORY, NULL or "": none */
    const char *file;            /* --kek-file / kek_file, NULL or "": none */
    const char *state_dir;       /* the KEK file must not be inside it */
    const char *tpm_dir;         /* kek_tpm_dir: the KEK sealed to the TPM there; NULL or "": none */
} crypto_kek_sources;

/* The name of the systemd credential inside $CREDENTIALS_DIRECTORY. */
#define CRYPTO_KEK_CREDENTIAL "scepd-kek"

/* The TPM source: the KEK sealed to a TPM. Returns 1 with *out set, 0 when
 * no TPM is configured (today: always), -1 with err set when one is
 * configured but fails. */
int crypto_kek_from_tpm(const crypto_kek_sources *src, crypto_kek **out, util_error *err) MUST_CHECK;
/* $CREDENTIALS_DIRECTORY/scepd-kek: exactly 32 raw bytes. 1, 0 (no
 * credentials directory or no such credential), -1. */
int crypto_kek_from_credential(const crypto_kek_sources *src, crypto_kek **out, util_error *err) MUST_CHECK;
/* The KEK file: created 0600 with 32 random bytes when missing (O_EXCL,
 * O_NOFOLLOW); refused when it is a symbolic link, not a regular file, not
 * owned by this user, readable by group or others, not 32 bytes long, or
 * inside the state directory. 1, 0 (no file configured), -1. */
int crypto_kek_from_file(const crypto_kek_sources *src, crypto_kek **out, bool *created,
                         util_error *err) MUST_CHECK;
/* Tries the TPM, the credential, then the file; the first that answers
 * wins. *source describes the one used ("tpm", "systemd credential PATH",
 * "file PATH (created)"), never the key. KEK_MISSING when none is
 * configured. */
int crypto_kek_load(const crypto_kek_sources *src, crypto_kek **out, char *source, size_t source_size,
                    util_error *err) MUST_CHECK;

#endif
