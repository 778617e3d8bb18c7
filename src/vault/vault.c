/* The vault's handler, its links, and proxy keys (vault.h). */
#include "vault/vault.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/proxy.h"
#include "crypto/seal.h"
#include "util/file.h"
#include "util/log.h"
#include "util/ossl.h"

#define LISTENER_KEYS 2

struct vault {
    vault_config cfg;
    /* the sealed texts of the listener's keys held here (a TPM key: the
     * network process signs its handshakes through the vault), the newest
     * first; the network process's channel may use these and nothing else */
    char *listener_keys[LISTENER_KEYS];
};

struct vault_link {
    int fd;                /* remote */
    vault *v;              /* local */
    void (*on_lost)(void); /* remote: the vault is gone */
    /* one call at a time: the agent calls from its loop and from its
     * key-generation thread, and a reply must meet its request */
    pthread_mutex_t lock;
};

static int seal(const vault *v, const char *aad, const uint8_t *in, size_t len, char **out, util_error *err)
{
    return crypto_seal_text(v->cfg.kek, aad, in, len, out, err);
}

static int unseal(const vault *v, const char *aad, const char *text, size_t text_len, uint8_t **out,
                  size_t *out_len, util_error *err)
{
    char *copy = strndup(text, text_len), *plain = NULL;
    if (!copy)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    int rc = crypto_unseal_text(v->cfg.kek, aad, copy, &plain, out_len, err);
    free(copy);
    *out = (uint8_t *)plain;
    return rc;
}

/* ---- the handler ---- */

vault *vault_new(const vault_config *cfg)
{
    vault *v = OPENSSL_secure_zalloc(sizeof *v);
    if (!v)
        v = OPENSSL_zalloc(sizeof *v);
    if (v)
        v->cfg = *cfg;
    return v;
}

void vault_free(vault *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < LISTENER_KEYS; i++)
        free(v->listener_keys[i]);
    OPENSSL_cleanse(v, sizeof *v);
    if (CRYPTO_secure_allocated(v))
        OPENSSL_secure_free(v);
    else
        OPENSSL_free(v);
}

static int open_key(vault *v, const ipc_msg *req, EVP_PKEY **key, util_error *err)
{
    const ipc_field *sealed = ipc_get(req, IPC_T_SEALED);
    char *aad = ipc_str(req, IPC_T_AAD);
    uint8_t *pem = NULL;
    size_t len = 0;
    int rc = -1;
    if (!sealed || !aad)
        util_error_set(err, UTIL_ERR_INTERNAL, "a key request without its key");
    else if (unseal(v, aad, (const char *)sealed->data, sealed->len, &pem, &len, err) == 0)
        rc = crypto_key_load(pem, len, key, err);
    free(aad);
    if (pem)
        OPENSSL_clear_free(pem, len + 1);
    return rc;
}

static int clear_pem(vault *v, const ipc_msg *req, char **pem, size_t *len, util_error *err)
{
    const ipc_field *sealed = ipc_get(req, IPC_T_SEALED);
    char *aad = ipc_str(req, IPC_T_AAD);
    int rc = aad && sealed
                 ? unseal(v, aad, (const char *)sealed->data, sealed->len, (uint8_t **)pem, len, err)
                 : util_error_set(err, UTIL_ERR_INTERNAL, "a key request without its key");
    free(aad);
    return rc;
}

static int add_pubkey(ipc_builder *b, EVP_PKEY *key, util_error *err)
{
    if (util_pkey_in_tpm(key))
        ipc_add_u32(b, IPC_T_IN_TPM, 1);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding a public key");
    ipc_add(b, IPC_T_PUBKEY, der, (size_t)n);
    OPENSSL_free(der);
    return 0;
}

static int seal_key(vault *v, EVP_PKEY *key, const char *aad, ipc_builder *b, util_error *err)
{
    char *pem = NULL, *sealed = NULL;
    size_t len = 0;
    if (crypto_key_to_pem(key, &pem, &len, err) != 0)
        return -1;
    int rc = seal(v, aad, (const uint8_t *)pem, len, &sealed, err);
    crypto_secret_free(pem, len);
    if (rc != 0)
        return -1;
    ipc_add_str(b, IPC_T_SEALED, sealed);
    free(sealed);
    return 0;
}

static int op_generate(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    char *spec_text = ipc_str(req, IPC_T_SPEC), *aad = ipc_str(req, IPC_T_AAD);
    crypto_key_spec spec;
    EVP_PKEY *key = NULL;
    int rc = -1;
    if (spec_text && aad && crypto_key_spec_parse(spec_text, &spec, err) == 0 &&
        crypto_key_generate(&spec, &key, err) == 0 && seal_key(v, key, aad, b, err) == 0 &&
        add_pubkey(b, key, err) == 0)
        rc = 0;
    else if (!spec_text || !aad)
        util_error_set(err, UTIL_ERR_INTERNAL, "a generate request without spec or place");
    EVP_PKEY_free(key);
    free(spec_text);
    free(aad);
    return rc;
}

static int op_seal(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    const ipc_field *pem = ipc_get(req, IPC_T_KEY);
    char *aad = ipc_str(req, IPC_T_AAD);
    EVP_PKEY *key = NULL;
    int rc = -1;
    /* only something that is a key gets sealed */
    if (aad && crypto_key_load(pem->data, pem->len, &key, err) == 0 && seal_key(v, key, aad, b, err) == 0)
        rc = 0;
    EVP_PKEY_free(key);
    free(aad);
    return rc;
}

static int op_reseal(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    char *pem = NULL, *sealed = NULL, *aad = ipc_str(req, IPC_T_NEW_AAD);
    size_t len = 0;
    int rc = -1;
    if (aad && clear_pem(v, req, &pem, &len, err) == 0 &&
        seal(v, aad, (const uint8_t *)pem, len, &sealed, err) == 0) {
        ipc_add_str(b, IPC_T_SEALED, sealed);
        rc = 0;
    }
    if (pem)
        OPENSSL_clear_free(pem, len + 1);
    free(sealed);
    free(aad);
    return rc;
}

static int op_public(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    EVP_PKEY *key = NULL;
    int rc = open_key(v, req, &key, err) == 0 ? add_pubkey(b, key, err) : -1;
    EVP_PKEY_free(key);
    return rc;
}

static int op_private(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    EVP_PKEY *key = NULL;
    const ipc_field *in = ipc_get(req, req->type == IPC_V_ECDH ? IPC_T_PEER : IPC_T_INPUT);
    uint32_t op = 0, md = 0, padding = 0;
    crypto_key_op kind = CRYPTO_OP_ECDH;
    int param = 0;
    if (req->type == IPC_V_ECDSA) {
        kind = CRYPTO_OP_ECDSA_SIGN;
    } else if (req->type == IPC_V_RSA) {
        ipc_u32(req, IPC_T_OP, &op);
        if (op == IPC_OP_SIGN && ipc_u32(req, IPC_T_MD, &md) && md <= INT32_MAX) {
            kind = CRYPTO_OP_RSA_SIGN;
            param = (int)md;
        } else if (op == IPC_OP_DECRYPT && ipc_u32(req, IPC_T_PADDING, &padding) && padding <= INT32_MAX) {
            kind = CRYPTO_OP_RSA_DECRYPT;
            param = (int)padding;
        } else {
            return util_error_set(err, UTIL_ERR_INTERNAL, "RSA operation not allowed");
        }
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = open_key(v, req, &key, err) == 0 &&
                     crypto_key_operate(key, kind, param, in->data, in->len, &out, &out_len, err) == 0
                 ? 0
                 : -1;
    if (rc == 0)
        ipc_add(b, IPC_T_OUTPUT, out, out_len);
    if (out)
        OPENSSL_clear_free(out, out_len);
    EVP_PKEY_free(key);
    return rc;
}

void vault_config_add_export(vault_config *cfg, const char *function, const char *key, const char *cert,
                             const char *chain)
{
    if ((!key[0] && !cert[0] && !chain[0]) || cfg->export_count >= VAULT_MAX_EXPORTS)
        return;
    vault_export_path *e = &cfg->exports[cfg->export_count++];
    snprintf(e->function, sizeof e->function, "%s", function);
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->cert, sizeof e->cert, "%s", cert);
    snprintf(e->chain, sizeof e->chain, "%s", chain);
}

static int op_export(vault *v, const ipc_msg *req, util_error *err)
{
    char *function = ipc_str(req, IPC_T_FUNCTION), *pem = NULL;
    char *cert = ipc_str(req, IPC_T_CERT), *chain = ipc_str(req, IPC_T_CHAIN);
    size_t len = 0;
    const vault_export_path *e = NULL;
    for (size_t i = 0; function && i < v->cfg.export_count; i++)
        if (!strcmp(v->cfg.exports[i].function, function))
            e = &v->cfg.exports[i];
    int rc = -1;
    if (!e)
        util_error_set(err, UTIL_ERR_NOT_FOUND, "function \"%s\" has no export paths in the configuration",
                       function ? function : "?");
    else if (e->key[0] && (clear_pem(v, req, &pem, &len, err) != 0 ||
                           util_file_write_atomic(e->key, pem, len, 0600, err) != 0))
        util_error_set(err, err->code, "the key: %s", err->detail);
    else if (e->cert[0] &&
             util_file_write_atomic(e->cert, cert ? cert : "", cert ? strlen(cert) : 0, 0644, err) != 0)
        util_error_set(err, err->code, "the certificate: %s", err->detail);
    else if (e->chain[0] &&
             util_file_write_atomic(e->chain, chain ? chain : "", chain ? strlen(chain) : 0, 0644, err) != 0)
        util_error_set(err, err->code, "the chain: %s", err->detail);
    else
        rc = 0;
    if (pem)
        OPENSSL_clear_free(pem, len + 1);
    free(function);
    free(cert);
    free(chain);
    return rc;
}

static int op_tls(vault *v, const ipc_msg *req, util_error *err)
{
    char *pem = NULL, *cert = ipc_str(req, IPC_T_CERT), *chain = ipc_str(req, IPC_T_CHAIN);
    size_t len = 0;
    EVP_PKEY *key = NULL;
    int rc = -1;
    /* the key must open and be a key before the listener gets it */
    if (cert && clear_pem(v, req, &pem, &len, err) == 0 &&
        crypto_key_load((const uint8_t *)pem, len, &key, err) == 0) {
        if (util_pkey_in_tpm(key) && v->cfg.on_tls_held) {
            /* a TPM key stays here: the listener gets a proxy and signs
             * its handshakes through the vault */
            char *sealed = ipc_str(req, IPC_T_SEALED), *aad = ipc_str(req, IPC_T_AAD);
            unsigned char *der = NULL;
            int n = i2d_PUBKEY(key, &der);
            if (sealed && aad && n > 0) {
                free(v->listener_keys[LISTENER_KEYS - 1]);
                memmove(&v->listener_keys[1], &v->listener_keys[0],
                        (LISTENER_KEYS - 1) * sizeof v->listener_keys[0]);
                v->listener_keys[0] = strdup(sealed);
                v->cfg.on_tls_held(v->cfg.tls_arg, sealed, aad, der, (size_t)n, cert, chain ? chain : "");
                rc = 0;
            } else {
                util_error_set(err, UTIL_ERR_INTERNAL, "the listener's key could not be described");
            }
            OPENSSL_free(der);
            free(sealed);
            free(aad);
        } else {
            if (v->cfg.on_tls)
                v->cfg.on_tls(v->cfg.tls_arg, pem, cert, chain ? chain : "");
            rc = 0;
        }
    } else if (!cert) {
        util_error_set(err, UTIL_ERR_INTERNAL, "a listener key without its certificate");
    }
    EVP_PKEY_free(key);
    if (pem)
        OPENSSL_clear_free(pem, len + 1);
    free(cert);
    free(chain);
    return rc;
}

static int op_secret_open(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    const ipc_field *sealed = ipc_get(req, IPC_T_SEALED);
    uint8_t *plain = NULL;
    size_t len = 0;
    if (unseal(v, CRYPTO_SEAL_AAD_SECRETS_KEY, (const char *)sealed->data, sealed->len, &plain, &len, err) !=
        0)
        return -1;
    int rc = len == VAULT_SECRET_LEN
                 ? 0
                 : util_error_set(err, UTIL_ERR_SEALED_INVALID,
                                  "the store's secrets key has %zu bytes, not %d", len, VAULT_SECRET_LEN);
    if (rc == 0)
        ipc_add(b, IPC_T_OUTPUT, plain, len);
    crypto_secret_free(plain, len);
    return rc;
}

static int op_secret_seal(vault *v, const ipc_msg *req, ipc_builder *b, util_error *err)
{
    const ipc_field *in = ipc_get(req, IPC_T_INPUT);
    char *sealed = NULL;
    if (in->len != VAULT_SECRET_LEN)
        return util_error_set(err, UTIL_ERR_INTERNAL, "a secrets key of %u bytes", (unsigned)in->len);
    if (seal(v, CRYPTO_SEAL_AAD_SECRETS_KEY, in->data, in->len, &sealed, err) != 0)
        return -1;
    ipc_add_str(b, IPC_T_SEALED, sealed);
    free(sealed);
    return 0;
}

uint8_t *vault_handle(vault *v, const ipc_msg *req, size_t *len)
{
    ipc_builder b;
    util_error err = {0};
    int rc = -1;
    ipc_begin(&b, IPC_OK, req->id);
    switch (req->type) {
    case IPC_V_GENERATE: rc = op_generate(v, req, &b, &err); break;
    case IPC_V_SEAL: rc = op_seal(v, req, &b, &err); break;
    case IPC_V_RESEAL: rc = op_reseal(v, req, &b, &err); break;
    case IPC_V_PUBLIC: rc = op_public(v, req, &b, &err); break;
    case IPC_V_RSA:
    case IPC_V_ECDSA:
    case IPC_V_ECDH: rc = op_private(v, req, &b, &err); break;
    case IPC_V_EXPORT: rc = op_export(v, req, &err); break;
    case IPC_V_TLS: rc = op_tls(v, req, &err); break;
    case IPC_V_SECRET_OPEN: rc = op_secret_open(v, req, &b, &err); break;
    case IPC_V_SECRET_SEAL: rc = op_secret_seal(v, req, &b, &err); break;
    default:
        util_error_set(&err, UTIL_ERR_INTERNAL, "the vault does not do \"%s\"", ipc_type_name(req->type));
    }
    if (rc == 0)
        return ipc_end(&b, len);
    size_t unused = 0;
    ipc_frame_free(ipc_end(&b, &unused), unused);
    return ipc_error_frame(&err, len);
}

uint8_t *vault_handle_listener(vault *v, const ipc_msg *req, size_t *len)
{
    const ipc_field *sealed = ipc_get(req, IPC_T_SEALED);
    uint32_t op = 0;
    bool allowed = false;
    for (size_t i = 0; sealed && i < LISTENER_KEYS; i++)
        allowed |= v->listener_keys[i] && strlen(v->listener_keys[i]) == sealed->len &&
                   !memcmp(v->listener_keys[i], sealed->data, sealed->len);
    if (req->type == IPC_V_RSA)
        allowed &= ipc_u32(req, IPC_T_OP, &op) && op == IPC_OP_SIGN;
    else
        allowed &= req->type == IPC_V_ECDSA;
    if (allowed)
        return vault_handle(v, req, len);
    util_error err;
    util_error_set(&err, UTIL_ERR_INTERNAL, "the network process may only sign with the listener's key");
    return ipc_error_frame(&err, len);
}

/* One request from fd, answered; -1 when the peer is gone. */
static int serve_one(vault *v, int fd, bool listener, util_error *err)
{
    ipc_msg req;
    if (ipc_read(fd, &req, err) != 0)
        return -1;
    size_t len = 0;
    uint8_t *reply = listener ? vault_handle_listener(v, &req, &len) : vault_handle(v, &req, &len);
    ipc_msg_clear(&req);
    if (!reply)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    int rc = ipc_write(fd, reply, len);
    ipc_frame_free(reply, len);
    return rc != 0 ? util_error_set(err, UTIL_ERR_INTERNAL, "a peer closed the vault's channel") : 0;
}

int vault_serve(vault *v, int fd, int listener_fd, util_error *err)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = listener_fd, .events = POLLIN}};
        int n = poll(p, listener_fd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return util_error_set(err, UTIL_ERR_INTERNAL, "poll: %s", strerror(errno));
        if (p[0].revents && serve_one(v, fd, false, err) != 0)
            return -1; /* the agent is gone: so is the vault */
        if (listener_fd >= 0 && p[1].revents && serve_one(v, listener_fd, true, err) != 0)
            listener_fd = -1; /* the network process is gone; the supervisor restarts all */
    }
}

/* ---- links ---- */

static vault_link *link_new(int fd, vault *v)
{
    vault_link *l = calloc(1, sizeof *l);
    if (l && pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l);
        return NULL;
    }
    if (l) {
        l->fd = fd;
        l->v = v;
    }
    return l;
}

vault_link *vault_link_remote(int fd)
{
    return link_new(fd, NULL);
}

vault_link *vault_link_local(vault *v)
{
    return link_new(-1, v);
}

void vault_link_free(vault_link *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static int call_locked(vault_link *l, ipc_builder *b, ipc_msg *reply, util_error *err);

static int call(vault_link *l, ipc_builder *b, ipc_msg *reply, util_error *err)
{
    pthread_mutex_lock(&l->lock);
    int rc = call_locked(l, b, reply, err);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void vault_link_on_lost(vault_link *l, void (*fn)(void))
{
    l->on_lost = fn;
}

static int call_locked(vault_link *l, ipc_builder *b, ipc_msg *reply, util_error *err)
{
    if (!l->v) {
        int rc = ipc_call(l->fd, b, reply, err);
        if (rc != 0 && err->code == UTIL_ERR_VAULT && l->on_lost)
            l->on_lost(); /* does not return */
        return rc;
    }
    /* in place: the same frames, so that both ways run the same checks */
    size_t len = 0, rlen = 0;
    uint8_t *frame = ipc_end(b, &len);
    ipc_msg req;
    if (!frame)
        return util_error_set(err, UTIL_ERR_INTERNAL, "message to the vault too large or out of memory");
    if (ipc_parse(frame, len, &req, err) != 0)
        return -1;
    uint8_t *answer = vault_handle(l->v, &req, &rlen);
    ipc_msg_clear(&req);
    if (!answer || ipc_parse(answer, rlen, reply, err) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the vault's answer");
    if (reply->type == IPC_ERROR) {
        ipc_error_of(reply, err);
        ipc_msg_clear(reply);
        return -1;
    }
    return 0;
}

static void add_ref(ipc_builder *b, const char *sealed, const char *aad)
{
    ipc_add_str(b, IPC_T_SEALED, sealed);
    ipc_add_str(b, IPC_T_AAD, aad);
}

static int proxy_from_reply(vault_link *l, const ipc_msg *reply, const char *sealed, const char *aad,
                            EVP_PKEY **key, util_error *err);

int vault_generate(vault_link *l, const char *spec, const char *aad, char **sealed, EVP_PKEY **key,
                   util_error *err)
{
    ipc_builder b;
    ipc_msg reply;
    ipc_begin(&b, IPC_V_GENERATE, 0);
    ipc_add_str(&b, IPC_T_SPEC, spec);
    ipc_add_str(&b, IPC_T_AAD, aad);
    if (call(l, &b, &reply, err) != 0)
        return -1;
    char *s = ipc_str(&reply, IPC_T_SEALED);
    int rc = s ? 0 : util_error_set(err, UTIL_ERR_VAULT, "the vault's answer has no key");
    if (rc == 0 && key && proxy_from_reply(l, &reply, s, aad, key, err) != 0)
        rc = -1;
    ipc_msg_clear(&reply);
    if (rc == 0)
        *sealed = s;
    else
        free(s);
    return rc;
}

int vault_key(vault_link *l, const char *sealed, const char *aad, EVP_PKEY **key, util_error *err)
{
    ipc_builder b;
    ipc_msg reply;
    ipc_begin(&b, IPC_V_PUBLIC, 0);
    add_ref(&b, sealed, aad);
    if (call(l, &b, &reply, err) != 0)
        return -1;
    int rc = proxy_from_reply(l, &reply, sealed, aad, key, err);
    ipc_msg_clear(&reply);
    return rc;
}

static int sealed_answer(vault_link *l, ipc_builder *b, char **out, util_error *err)
{
    ipc_msg reply;
    if (call(l, b, &reply, err) != 0)
        return -1;
    *out = ipc_str(&reply, IPC_T_SEALED);
    ipc_msg_clear(&reply);
    return *out ? 0 : util_error_set(err, UTIL_ERR_VAULT, "the vault's answer has no key");
}

int vault_seal_clear(vault_link *l, const char *pem, const char *aad, char **sealed, util_error *err)
{
    ipc_builder b;
    ipc_begin(&b, IPC_V_SEAL, 0);
    ipc_add_str(&b, IPC_T_KEY, pem);
    ipc_add_str(&b, IPC_T_AAD, aad);
    return sealed_answer(l, &b, sealed, err);
}

int vault_reseal(vault_link *l, const char *sealed, const char *aad, const char *new_aad, char **out,
                 util_error *err)
{
    ipc_builder b;
    ipc_begin(&b, IPC_V_RESEAL, 0);
    add_ref(&b, sealed, aad);
    ipc_add_str(&b, IPC_T_NEW_AAD, new_aad);
    return sealed_answer(l, &b, out, err);
}

static int empty_answer(vault_link *l, ipc_builder *b, util_error *err)
{
    ipc_msg reply;
    if (call(l, b, &reply, err) != 0)
        return -1;
    ipc_msg_clear(&reply);
    return 0;
}

int vault_export(vault_link *l, const char *sealed, const char *aad, const char *function,
                 const char *cert_pem, const char *chain_pem, util_error *err)
{
    ipc_builder b;
    ipc_begin(&b, IPC_V_EXPORT, 0);
    add_ref(&b, sealed, aad);
    ipc_add_str(&b, IPC_T_FUNCTION, function);
    ipc_add_str(&b, IPC_T_CERT, cert_pem);
    ipc_add_str(&b, IPC_T_CHAIN, chain_pem);
    return empty_answer(l, &b, err);
}

int vault_tls(vault_link *l, const char *sealed, const char *aad, const char *cert_pem, const char *chain_pem,
              util_error *err)
{
    ipc_builder b;
    ipc_begin(&b, IPC_V_TLS, 0);
    add_ref(&b, sealed, aad);
    ipc_add_str(&b, IPC_T_CERT, cert_pem);
    if (chain_pem && chain_pem[0])
        ipc_add_str(&b, IPC_T_CHAIN, chain_pem);
    return empty_answer(l, &b, err);
}

/* ---- proxy keys: their private operations come here ---- */

typedef struct proxy_ref {
    vault_link *link;
    char *sealed;
    char *aad;
} proxy_ref;

static void ref_free(void *arg)
{
    proxy_ref *r = arg;
    if (!r)
        return;
    free(r->sealed);
    free(r->aad);
    free(r);
}

/* crypto_proxy_fn: the operation as a request to the vault. */
static int private_call(void *arg, crypto_key_op op, int param, const uint8_t *in, size_t in_len,
                        uint8_t **out, size_t *out_len)
{
    const proxy_ref *r = arg;
    ipc_type type = op == CRYPTO_OP_ECDSA_SIGN ? IPC_V_ECDSA : op == CRYPTO_OP_ECDH ? IPC_V_ECDH : IPC_V_RSA;
    ipc_builder b;
    ipc_msg reply;
    util_error err;
    ipc_begin(&b, type, 0);
    add_ref(&b, r->sealed, r->aad);
    if (op == CRYPTO_OP_RSA_SIGN) {
        ipc_add_u32(&b, IPC_T_OP, IPC_OP_SIGN);
        ipc_add_u32(&b, IPC_T_MD, (uint32_t)param);
    } else if (op == CRYPTO_OP_RSA_DECRYPT) {
        ipc_add_u32(&b, IPC_T_OP, IPC_OP_DECRYPT);
        ipc_add_u32(&b, IPC_T_PADDING, (uint32_t)param);
    }
    ipc_add(&b, type == IPC_V_ECDH ? IPC_T_PEER : IPC_T_INPUT, in, in_len);
    if (call(r->link, &b, &reply, &err) != 0) {
        log_error("private-key operation in the vault: %s", err.detail);
        return -1;
    }
    const ipc_field *f = ipc_get(&reply, IPC_T_OUTPUT);
    int rc = -1;
    if (f && (*out = OPENSSL_malloc(f->len ? f->len : 1))) {
        memcpy(*out, f->data, f->len);
        *out_len = f->len;
        rc = 0;
    }
    ipc_msg_clear(&reply);
    return rc;
}

int vault_proxy(vault_link *l, const char *sealed, const char *aad, const uint8_t *pubkey, size_t pubkey_len,
                bool in_tpm, EVP_PKEY **key, util_error *err)
{
    proxy_ref *r = calloc(1, sizeof *r);
    if (r) {
        r->link = l;
        r->sealed = strdup(sealed);
        r->aad = strdup(aad);
    }
    if (!r || !r->sealed || !r->aad) {
        ref_free(r);
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    return crypto_proxy_new(pubkey, pubkey_len, in_tpm, private_call, r, ref_free, key, err);
}

static int proxy_from_reply(vault_link *l, const ipc_msg *reply, const char *sealed, const char *aad,
                            EVP_PKEY **key, util_error *err)
{
    const ipc_field *pub = ipc_get(reply, IPC_T_PUBKEY);
    uint32_t in_tpm = 0;
    if (!pub)
        return util_error_set(err, UTIL_ERR_VAULT, "the vault's answer has no public key");
    return vault_proxy(l, sealed, aad, pub->data, pub->len, ipc_u32(reply, IPC_T_IN_TPM, &in_tpm) && in_tpm,
                       key, err);
}

int vault_secret_open(vault_link *l, const char *sealed, uint8_t secret[VAULT_SECRET_LEN], util_error *err)
{
    ipc_builder b;
    ipc_msg reply;
    ipc_begin(&b, IPC_V_SECRET_OPEN, 0);
    ipc_add_str(&b, IPC_T_SEALED, sealed);
    if (call(l, &b, &reply, err) != 0)
        return -1;
    const ipc_field *f = ipc_get(&reply, IPC_T_OUTPUT);
    int rc = f && f->len == VAULT_SECRET_LEN
                 ? 0
                 : util_error_set(err, UTIL_ERR_VAULT, "the vault's answer has no key");
    if (rc == 0)
        memcpy(secret, f->data, VAULT_SECRET_LEN);
    ipc_msg_clear(&reply);
    return rc;
}

int vault_secret_seal(vault_link *l, const uint8_t secret[VAULT_SECRET_LEN], char **sealed, util_error *err)
{
    ipc_builder b;
    ipc_begin(&b, IPC_V_SECRET_SEAL, 0);
    ipc_add(&b, IPC_T_INPUT, secret, VAULT_SECRET_LEN);
    return sealed_answer(l, &b, sealed, err);
}
