/*
 * The agent's side of the vault (src/vault): every private key the agent
 * hands to the store was sealed by the vault, and every key it uses is a
 * proxy whose private operations the vault performs. The associated data
 * names the key's place (crypto/seal.h), so a sealed key copied into another
 * row or column does not open; a key that moves is sealed again by the
 * vault, which alone holds the KEK.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "crypto/seal.h"
#include "util/file.h"
#include "util/log.h"
#include "vault/vault.h"

#define AAD_SIZE 160
#define SECRETS_DOC "secrets_key"

static void aad_pair(char aad[AAD_SIZE], const char *name, int64_t request_id)
{
    crypto_seal_aad_key(aad, AAD_SIZE, name, request_id);
}

static void aad_request(char aad[AAD_SIZE], int64_t id, const char *column, const char *key_name)
{
    crypto_seal_aad_request(aad, AAD_SIZE, id, column, key_name);
}

int agent_generate_request_key(agent *a, int64_t id, const char *column, const char *key_name,
                               const char *spec, char **sealed, EVP_PKEY **key, util_error *err)
{
    char aad[AAD_SIZE];
    aad_request(aad, id, column, key_name);
    return vault_generate(a->vault, spec, aad, sealed, key, err);
}

int agent_generate_pair_key(agent *a, const char *name, int64_t request_id, const char *spec, char **sealed,
                            EVP_PKEY **key, util_error *err)
{
    char aad[AAD_SIZE];
    aad_pair(aad, name, request_id);
    return vault_generate(a->vault, spec, aad, sealed, key, err);
}

int agent_unseal_pair_key(agent *a, const store_key *k, EVP_PKEY **out, util_error *err)
{
    char aad[AAD_SIZE];
    if (!k->key_sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "key %s: no private key stored", k->name);
    aad_pair(aad, k->name, k->request_id);
    return vault_key(a->vault, k->key_sealed, aad, out, err);
}

int agent_unseal_request_key(agent *a, const store_request *r, const char *column, EVP_PKEY **out,
                             util_error *err)
{
    char aad[AAD_SIZE];
    const char *sealed = !strcmp(column, "key_pem") ? r->key_sealed : r->signer_key_sealed;
    if (!sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "request %lld: no %s stored", (long long)r->id, column);
    aad_request(aad, r->id, column, r->key_name);
    return vault_key(a->vault, sealed, aad, out, err);
}

int agent_reseal_request_to_pair(agent *a, const store_request *r, const char *name, int64_t request_id,
                                 char **sealed, util_error *err)
{
    char from[AAD_SIZE], to[AAD_SIZE];
    if (!r->key_sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "request %lld: no key stored", (long long)r->id);
    aad_request(from, r->id, "key_pem", r->key_name);
    aad_pair(to, name, request_id);
    return vault_reseal(a->vault, r->key_sealed, from, to, sealed, err);
}

int agent_reseal_pair_to_request(agent *a, const store_key *k, const store_request *r, char **sealed,
                                 util_error *err)
{
    char from[AAD_SIZE], to[AAD_SIZE];
    if (!k->key_sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "key %s: no private key stored", k->name);
    aad_pair(from, k->name, k->request_id);
    aad_request(to, r->id, "signer_key_pem", r->key_name);
    return vault_reseal(a->vault, k->key_sealed, from, to, sealed, err);
}

int agent_reseal_pair_renamed(agent *a, const store_key *k, const char *new_name, char **sealed,
                              util_error *err)
{
    char from[AAD_SIZE], to[AAD_SIZE];
    if (!k->key_sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "key %s: no private key stored", k->name);
    aad_pair(from, k->name, k->request_id);
    aad_pair(to, new_name, k->request_id);
    return vault_reseal(a->vault, k->key_sealed, from, to, sealed, err);
}

int agent_export_pair_key(agent *a, const store_key *k, const char *function, util_error *err)
{
    char aad[AAD_SIZE];
    aad_pair(aad, k->name, k->request_id);
    return vault_export(a->vault, k->key_sealed, aad, function, k->cert_pem, k->chain_pem, err);
}

int agent_tls_pair(agent *a, const store_key *k, util_error *err)
{
    char aad[AAD_SIZE];
    aad_pair(aad, k->name, k->request_id);
    return vault_tls(a->vault, k->key_sealed, aad, k->cert_pem, k->chain_pem, err);
}

int agent_seal_migrated(void *arg, const store_secret_place *place, const char *clear, char **sealed,
                        util_error *err)
{
    agent *a = arg;
    char aad[AAD_SIZE];
    if (!strcmp(place->table, "keys"))
        aad_pair(aad, place->key_name, place->request_id);
    else
        aad_request(aad, place->request_id, place->column, place->key_name);
    return vault_seal_clear(a->vault, clear, aad, sealed, err);
}

/* ---- the secrets key and the check of the KEK ---- */

/* A store whose secrets key is missing may still hold sealed keys (its
 * document lost, or written by hand): the KEK must open the first one. */
static int check_kek_on_keys(agent *a, util_error *err)
{
    store_key *keys = NULL;
    size_t n = 0;
    int rc = 0;
    if (store_key_list(a->st, &keys, &n, err) != 0)
        return -1;
    if (n > 0) {
        EVP_PKEY *key = NULL;
        rc = agent_unseal_pair_key(a, &keys[0], &key, err);
        EVP_PKEY_free(key);
    }
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
    return rc;
}

/* Before sealed storage the secrets key was a file in the state directory;
 * it is overwritten and removed once the store holds it sealed. */
static void remove_old_seal_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        uint8_t zero[64] = {0};
        ssize_t n = write(fd, zero, sizeof zero);
        (void)n;
        if (fsync(fd) != 0)
            log_warn("%s: fsync: %s", path, strerror(errno));
        close(fd);
    }
    if (unlink(path) != 0 && errno != ENOENT)
        log_warn("%s could not be removed: %s; remove it by hand", path, strerror(errno));
}

static int read_old_seal_file(const char *path, uint8_t key[32], bool *found, util_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *found = false;
    if (access(path, F_OK) != 0)
        return 0;
    if (util_file_read(path, 64, &data, &len, err) != 0)
        return -1;
    int ok = len == 32;
    if (ok)
        memcpy(key, data, 32);
    OPENSSL_cleanse(data, len);
    free(data);
    if (!ok)
        return util_error_set(err, UTIL_ERR_STORE, "%s: not a 32-byte key", path);
    *found = true;
    return 0;
}

static int load_secrets_key(agent *a, const json_t *doc, util_error *err)
{
    const char *sealed = json_string_value(json_object_get(doc, "sealed"));
    if (!sealed)
        return util_error_set(err, UTIL_ERR_SEALED_INVALID, "the store's document %s has no sealed key",
                              SECRETS_DOC);
    return vault_secret_open(a->vault, sealed, a->seal_key, err);
}

static int create_secrets_key(agent *a, const char *old_path, util_error *err)
{
    bool found = false;
    char *sealed = NULL;
    if (read_old_seal_file(old_path, a->seal_key, &found, err) != 0)
        return -1;
    if (!found && RAND_bytes(a->seal_key, sizeof a->seal_key) != 1)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "generating the secrets key");
    if (vault_secret_seal(a->vault, a->seal_key, &sealed, err) != 0)
        return -1;
    json_t *doc = json_pack("{s:s}", "sealed", sealed);
    free(sealed);
    if (!doc)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    int rc = store_doc_put(a->st, SECRETS_DOC, doc, "scepd", found ? "secrets.seal" : NULL,
                           "the challenge and credentials key is sealed under the key-encryption key", err);
    json_decref(doc);
    if (rc == 0 && found) {
        log_info("%s is now sealed in the store; the file is removed", old_path);
        remove_old_seal_file(old_path);
    }
    return rc;
}

int agent_vault_open(agent *a, util_error *err)
{
    json_t *doc = NULL;
    char old_path[600];
    snprintf(old_path, sizeof old_path, "%s/seal.key", a->state_dir);
    if (store_doc_get(a->st, SECRETS_DOC, &doc, err) != 0)
        return -1;
    int rc;
    if (doc) {
        rc = load_secrets_key(a, doc, err);
        json_decref(doc);
        if (rc == 0 && access(old_path, F_OK) == 0)
            remove_old_seal_file(old_path); /* a crash came between sealing it and removing it */
        return rc;
    }
    if (check_kek_on_keys(a, err) != 0)
        return -1;
    return create_secrets_key(a, old_path, err);
}
