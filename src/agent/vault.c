/*
 * The agent's side of sealed storage: every private key the agent hands to
 * the store is sealed here under cfg.kek, and every key it needs back is
 * opened here. The associated data names the key's place (seal.h), so a
 * sealed key copied into another row or column does not open.
 *
 * This is the seam where the key operations will move into their own
 * process: the functions take the stored rows and return keys, and nothing
 * else in the agent sees the KEK.
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

#define AAD_SIZE 160
#define SECRETS_DOC "secrets_key"

int agent_seal_pair_key(const agent *a, const char *name, int64_t request_id, const char *pem, char **sealed,
                        util_error *err)
{
    char aad[AAD_SIZE];
    crypto_seal_aad_key(aad, sizeof aad, name, request_id);
    return crypto_seal_text(a->cfg.kek, aad, (const uint8_t *)pem, strlen(pem), sealed, err);
}

int agent_seal_request_key(const agent *a, int64_t id, const char *column, const char *key_name,
                           EVP_PKEY *key, char **sealed, util_error *err)
{
    char aad[AAD_SIZE], *pem = NULL;
    size_t len = 0;
    crypto_seal_aad_request(aad, sizeof aad, id, column, key_name);
    if (crypto_key_to_pem(key, &pem, &len, err) != 0)
        return -1;
    int rc = crypto_seal_text(a->cfg.kek, aad, (const uint8_t *)pem, len, sealed, err);
    crypto_secret_free(pem, len);
    return rc;
}

int agent_unseal_pair_pem(const agent *a, const store_key *k, char **pem, size_t *len, util_error *err)
{
    char aad[AAD_SIZE];
    if (!k->key_sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "key %s: no private key stored", k->name);
    crypto_seal_aad_key(aad, sizeof aad, k->name, k->request_id);
    return crypto_unseal_text(a->cfg.kek, aad, k->key_sealed, pem, len, err);
}

/* Turns an opened PEM into a key and wipes the PEM. */
static int load_opened(char *pem, size_t len, EVP_PKEY **out, util_error *err)
{
    int rc = crypto_key_load((const uint8_t *)pem, len, out, err);
    crypto_secret_free(pem, len);
    return rc;
}

int agent_unseal_pair_key(const agent *a, const store_key *k, EVP_PKEY **out, util_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    if (agent_unseal_pair_pem(a, k, &pem, &len, err) != 0)
        return -1;
    return load_opened(pem, len, out, err);
}

int agent_unseal_request_key(const agent *a, const store_request *r, const char *column, EVP_PKEY **out,
                             util_error *err)
{
    char aad[AAD_SIZE], *pem = NULL;
    size_t len = 0;
    const char *sealed = !strcmp(column, "key_pem") ? r->key_sealed : r->signer_key_sealed;
    if (!sealed)
        return util_error_set(err, UTIL_ERR_INTERNAL, "request %lld: no %s stored", (long long)r->id, column);
    crypto_seal_aad_request(aad, sizeof aad, r->id, column, r->key_name);
    if (crypto_unseal_text(a->cfg.kek, aad, sealed, &pem, &len, err) != 0)
        return -1;
    return load_opened(pem, len, out, err);
}

int agent_seal_migrated(void *arg, const store_secret_place *place, const char *clear, char **sealed,
                        util_error *err)
{
    const agent *a = arg;
    char aad[AAD_SIZE];
    if (!strcmp(place->table, "keys"))
        crypto_seal_aad_key(aad, sizeof aad, place->key_name, place->request_id);
    else
        crypto_seal_aad_request(aad, sizeof aad, place->request_id, place->column, place->key_name);
    return crypto_seal_text(a->cfg.kek, aad, (const uint8_t *)clear, strlen(clear), sealed, err);
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
    char *plain = NULL;
    size_t len = 0;
    if (!sealed)
        return util_error_set(err, UTIL_ERR_SEALED_INVALID, "the store's document %s has no sealed key",
                              SECRETS_DOC);
    if (crypto_unseal_text(a->cfg.kek, CRYPTO_SEAL_AAD_SECRETS_KEY, sealed, &plain, &len, err) != 0)
        return -1;
    int rc = 0;
    if (len == sizeof a->seal_key)
        memcpy(a->seal_key, plain, len);
    else
        rc = util_error_set(err, UTIL_ERR_SEALED_INVALID, "the store's secrets key has %zu bytes, not 32",
                            len);
    crypto_secret_free(plain, len);
    return rc;
}

static int create_secrets_key(agent *a, const char *old_path, util_error *err)
{
    bool found = false;
    char *sealed = NULL;
    if (read_old_seal_file(old_path, a->seal_key, &found, err) != 0)
        return -1;
    if (!found && RAND_bytes(a->seal_key, sizeof a->seal_key) != 1)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "generating the secrets key");
    if (crypto_seal_text(a->cfg.kek, CRYPTO_SEAL_AAD_SECRETS_KEY, a->seal_key, sizeof a->seal_key, &sealed,
                         err) != 0)
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
    if (!a->cfg.kek)
        return util_error_set(err, UTIL_ERR_KEK_MISSING, "the agent was started without one");
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
