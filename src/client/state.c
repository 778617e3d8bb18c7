/* The state file of a deferred request: JSON, mode 0600, written atomically. */
#include <jansson.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "util/codec.h"
#include "util/file.h"
#include "util/ossl.h"

#define STATE_VERSION 1
#define STATE_MAX (1u << 20)

void client_saved_clear(client_saved *s)
{
    free(s->url);
    free(s->ca_identifier);
    free(s->key_out);
    free(s->cert_out);
    free(s->chain_out);
    client_server_clear(&s->server);
    client_transaction_clear(&s->txn);
    memset(s, 0, sizeof *s);
}

static json_t *name_json(const X509_NAME *name)
{
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(name, &der);
    if (n <= 0)
        return NULL;
    char *b64 = util_base64_encode(der, (size_t)n);
    json_t *j = b64 ? json_string(b64) : NULL;
    free(b64);
    OPENSSL_free(der);
    return j;
}

static X509_NAME *name_from_json(const char *b64)
{
    uint8_t *der = NULL;
    size_t len = 0;
    X509_NAME *name = NULL;
    if (util_base64_decode(b64, strlen(b64), &der, &len) == 0 && len > 0) {
        const unsigned char *p = der;
        name = d2i_X509_NAME(NULL, &p, (long)len);
    }
    free(der);
    return name;
}

static json_t *key_json(EVP_PKEY *key, util_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    if (!key)
        return json_null();
    if (crypto_key_to_pem(key, &pem, &len, err) != 0)
        return NULL;
    json_t *j = json_stringn(pem, len);
    crypto_secret_free(pem, len);
    return j;
}

static json_t *certs_json(STACK_OF(X509) * certs, util_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    if (crypto_certs_to_pem(certs, &pem, &len, err) != 0)
        return NULL;
    json_t *j = json_stringn(pem, len);
    free(pem);
    return j;
}

static json_t *opt_string(const char *s)
{
    return s ? json_string(s) : json_null();
}

int client_state_save(const char *path, const client_saved *s, util_error *err)
{
    const client_transaction *t = &s->txn;
    STACK_OF(X509) *signer = sk_X509_new_null();
    char *text = NULL;
    int rc = -1;
    if (!s->server.ca || !t->signer_cert) {
        util_error_set(err, UTIL_ERR_STATE_FILE, "%s: nothing to save", path);
        goto out;
    }
    if (!signer || sk_X509_push(signer, t->signer_cert) <= 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    json_t *root = json_pack(
        "{s:i, s:o, s:o, s:o, s:o, s:o, s:s, s:i, s:o, s:o, s:o, s:o, s:s, s:s, s:b, s:b, s:i, s:s, s:i, "
        "s:b}",
        "version", STATE_VERSION, "url", opt_string(s->url), "ca_identifier", opt_string(s->ca_identifier),
        "key_out", opt_string(s->key_out), "cert_out", opt_string(s->cert_out), "chain_out",
        opt_string(s->chain_out), "transaction_id", t->transaction_id, "request_type", t->request_type,
        "signer_cert", certs_json(signer, err), "signer_key", key_json(t->signer_key, err), "new_key",
        key_json(t->new_key == t->signer_key ? NULL : t->new_key, err), "subject", name_json(t->subject),
        "digest", scep_digest_short_name(t->choice.digest), "cipher",
        scep_cipher_short_name(t->choice.cipher), "post", t->choice.post, "ndes", t->choice.is_ndes, "caps",
        (int)s->server.caps.flags, "server_header", s->server.server_header, "iis_major", s->server.iis_major,
        "caps_answered", s->server.caps_answered);
    if (!root) {
        if (err && err->code == UTIL_ERR_NONE)
            util_error_set(err, UTIL_ERR_STATE_FILE, "%s: could not encode the state", path);
        goto out;
    }
    json_t *ca = certs_json(s->server.ca->all, err);
    if (!ca || json_object_set_new(root, "ca_certs", ca) != 0) {
        json_decref(root);
        goto out;
    }
    text = json_dumps(root, JSON_INDENT(1));
    json_decref(root); /* the key PEM copies inside jansson are not wiped: see docs/internals */
    if (!text) {
        util_error_set(err, UTIL_ERR_STATE_FILE, "%s: could not encode the state", path);
        goto out;
    }
    rc = util_file_write_atomic(path, text, strlen(text), 0600, err);
out:
    if (text)
        crypto_secret_free(text, strlen(text));
    sk_X509_free(signer);
    return rc;
}

static char *dup_opt(json_t *root, const char *key)
{
    const char *v = json_string_value(json_object_get(root, key));
    return v ? strdup(v) : NULL;
}

static int load_key(json_t *root, const char *field, EVP_PKEY **out, util_error *err)
{
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return util_error_set(err, UTIL_ERR_STATE_FILE, "%s is not a string", field);
    return crypto_key_load((const uint8_t *)json_string_value(v), json_string_length(v), out, err);
}

static int load_certs(json_t *root, const char *field, STACK_OF(X509) * *out, util_error *err)
{
    json_t *v = json_object_get(root, field);
    if (!json_is_string(v))
        return util_error_set(err, UTIL_ERR_STATE_FILE, "%s is missing", field);
    return crypto_certs_load((const uint8_t *)json_string_value(v), json_string_length(v), out, err);
}

static int parse_state(json_t *root, client_saved *s, util_error *err)
{
    client_transaction *t = &s->txn;
    STACK_OF(X509) *certs = NULL;
    if (json_integer_value(json_object_get(root, "version")) != STATE_VERSION)
        return util_error_set(err, UTIL_ERR_STATE_FILE, "unknown state version");
    const char *tid = json_string_value(json_object_get(root, "transaction_id"));
    const char *subject = json_string_value(json_object_get(root, "subject"));
    s->url = dup_opt(root, "url");
    if (!tid || !subject || !s->url || strlen(tid) >= sizeof t->transaction_id)
        return util_error_set(err, UTIL_ERR_STATE_FILE, "url, transaction_id or subject missing");
    snprintf(t->transaction_id, sizeof t->transaction_id, "%s", tid);
    s->ca_identifier = dup_opt(root, "ca_identifier");
    s->key_out = dup_opt(root, "key_out");
    s->cert_out = dup_opt(root, "cert_out");
    s->chain_out = dup_opt(root, "chain_out");
    t->request_type = (int)json_integer_value(json_object_get(root, "request_type"));
    t->subject = name_from_json(subject);
    if (!t->subject)
        return util_error_set(err, UTIL_ERR_STATE_FILE, "subject is not a DER name");
    if (load_certs(root, "signer_cert", &certs, err) != 0)
        return -1;
    t->signer_cert = sk_X509_shift(certs);
    util_x509_stack_free(certs);
    certs = NULL;
    if (load_key(root, "signer_key", &t->signer_key, err) != 0 || !t->signer_key ||
        load_key(root, "new_key", &t->new_key, err) != 0)
        return util_error_set(err, UTIL_ERR_STATE_FILE, "the request's key could not be read");
    if (!t->new_key && EVP_PKEY_up_ref(t->signer_key))
        t->new_key = t->signer_key;
    t->choice.digest = scep_digest_by_name(json_string_value(json_object_get(root, "digest")));
    t->choice.cipher = scep_cipher_by_name(json_string_value(json_object_get(root, "cipher")));
    t->choice.post = json_is_true(json_object_get(root, "post"));
    t->choice.is_ndes = json_is_true(json_object_get(root, "ndes"));
    if (!t->choice.digest || !t->choice.cipher)
        return util_error_set(err, UTIL_ERR_STATE_FILE, "digest or cipher missing");
    s->server.caps.flags = (unsigned)json_integer_value(json_object_get(root, "caps"));
    s->server.caps_answered = json_is_true(json_object_get(root, "caps_answered"));
    s->server.iis_major = (int)json_integer_value(json_object_get(root, "iis_major"));
    const char *hdr = json_string_value(json_object_get(root, "server_header"));
    snprintf(s->server.server_header, sizeof s->server.server_header, "%s", hdr ? hdr : "");
    if (load_certs(root, "ca_certs", &certs, err) != 0)
        return -1;
    int rc = scep_ca_certs_from_stack(certs, &s->server.ca, err);
    util_x509_stack_free(certs);
    return rc;
}

int client_state_load(const char *path, client_saved *s, util_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    memset(s, 0, sizeof *s);
    if (util_file_read(path, STATE_MAX, &data, &len, err) != 0) {
        if (err)
            err->code = UTIL_ERR_STATE_FILE;
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, len, 0, &jerr);
    crypto_secret_free(data, len);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return util_error_set(err, UTIL_ERR_STATE_FILE, "%s: %s", path, jerr.text);
    }
    int rc = parse_state(root, s, err);
    json_decref(root);
    if (rc != 0) {
        if (err)
            err->code = UTIL_ERR_STATE_FILE;
        client_saved_clear(s);
    }
    return rc;
}
