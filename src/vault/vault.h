/*
 * The vault: the only holder of the key-encryption key (KEK) and of private
 * keys in the clear. Everything else in scepd handles keys as sealed blobs
 * (AES-256-GCM under the KEK, bound to associated data that names the key)
 * and as proxy EVP_PKEYs whose private operations the vault performs.
 *
 * In scepd the vault is a process of its own (src/privsep) reached over a
 * socketpair with the messages of src/ipc; unit tests and one-process use
 * link a vault in place (vault_link_local) and go through the same handler.
 * See docs/internals/privsep.md.
 */
#ifndef SCEPD_VAULT_H
#define SCEPD_VAULT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/ipc.h"
#include "util/error.h"

#define VAULT_MAX_EXPORTS 16
#define VAULT_SECRET_LEN 32

struct crypto_kek;

typedef struct vault vault;

/* Where the key of a function goes when it is bound (its export_key path). */
typedef struct vault_export_path {
    char function[32];
    char key[256], cert[256], chain[256]; /* "": not exported */
} vault_export_path;

typedef struct vault_config {
    const struct crypto_kek *kek; /* borrowed: outlives the vault */
    vault_export_path exports[VAULT_MAX_EXPORTS];
    size_t export_count;
    /* The listener's key: handed over with its certificate and chain. In
     * scepd it is written to the net process's channel; in one process it
     * is a call. */
    void (*on_tls)(void *arg, const char *key_pem, const char *cert_pem, const char *chain_pem);
    /* A key that cannot leave (inside the TPM): the listener gets its
     * sealed text, associated data and public key (DER), and signs its
     * handshakes through vault_handle_listener. NULL: on_tls with the
     * key's PEM (one process). */
    void (*on_tls_held)(void *arg, const char *sealed, const char *aad, const uint8_t *pubkey,
                        size_t pubkey_len, const char *cert_pem, const char *chain_pem);
    void *tls_arg;
} vault_config;

/* A function's export paths (scepd.conf), when it has any. */
void vault_config_add_export(vault_config *cfg, const char *function, const char *key, const char *cert,
                             const char *chain);
/* Copies cfg. */
vault *vault_new(const vault_config *cfg);
void vault_free(vault *v);
/* Answers one request; the reply frame (IPC_OK or IPC_ERROR) is the
 * caller's. NULL only when out of memory. */
uint8_t *vault_handle(vault *v, const ipc_msg *req, size_t *len);

/* ---- the other side: what the agent holds ---- */
typedef struct vault_link vault_link;

/* Over a socket to the vault process (blocking calls; fd stays the caller's). */
vault_link *vault_link_remote(int fd);
/* A remote link whose vault is gone calls fn, which does not return: the
 * caller must not take the vault's absence for an answer (scepd's agent
 * ends, and its supervisor starts the processes again). */
void vault_link_on_lost(vault_link *l, void (*fn)(void));
/* In place; v is borrowed. */
vault_link *vault_link_local(vault *v);
/* After every proxy key made through the link has been freed. */
void vault_link_free(vault_link *l);

/* A new key of spec ("rsa:2048", "ec:P-256"), sealed for aad. *sealed is the
 * text the store keeps; *key (optional) a proxy for its operations. */
int vault_generate(vault_link *l, const char *spec, const char *aad, char **sealed, EVP_PKEY **key,
                   util_error *err) MUST_CHECK;
/* A proxy for a sealed key: its public half, private operations in the vault. */
int vault_key(vault_link *l, const char *sealed, const char *aad, EVP_PKEY **key, util_error *err) MUST_CHECK;
/* Seals a clear PEM key (from a store written before keys were sealed). */
int vault_seal_clear(vault_link *l, const char *pem, const char *aad, char **sealed,
                     util_error *err) MUST_CHECK;
/* The same key, sealed for another place. */
int vault_reseal(vault_link *l, const char *sealed, const char *aad, const char *new_aad, char **out,
                 util_error *err) MUST_CHECK;
/* Writes the key, its certificate and chain to the export paths configured
 * for function (the agent names none: it may run without the rights). */
int vault_export(vault_link *l, const char *sealed, const char *aad, const char *function,
                 const char *cert_pem, const char *chain_pem, util_error *err) MUST_CHECK;
/* Makes the key, with cert and chain, the HTTPS listener's. */
int vault_tls(vault_link *l, const char *sealed, const char *aad, const char *cert_pem, const char *chain_pem,
              util_error *err) MUST_CHECK;

/* The store's secrets key (it seals challenge passwords and URL
 * credentials; not a private key, so the agent may hold it): opened from,
 * or sealed to, its one place (CRYPTO_SEAL_AAD_SECRETS_KEY). */
int vault_secret_open(vault_link *l, const char *sealed, uint8_t secret[VAULT_SECRET_LEN],
                      util_error *err) MUST_CHECK;
int vault_secret_seal(vault_link *l, const uint8_t secret[VAULT_SECRET_LEN], char **sealed,
                      util_error *err) MUST_CHECK;

/* The network process's requests: signatures with a listener key held
 * here, nothing else. */
uint8_t *vault_handle_listener(vault *v, const ipc_msg *req, size_t *len);

/* The serving loop of the vault process: answers the agent on fd until it
 * closes it, and the network process on listener_fd (-1: none). */
int vault_serve(vault *v, int fd, int listener_fd, util_error *err);

/* A proxy from what the vault handed the listener (on_tls_held). */
int vault_proxy(vault_link *l, const char *sealed, const char *aad, const uint8_t *pubkey, size_t pubkey_len,
                bool in_tpm, EVP_PKEY **key, util_error *err) MUST_CHECK;

#endif
