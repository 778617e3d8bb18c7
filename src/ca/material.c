/* CA and RA material: creation (init, rollover) and loading from the store. */
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "util/buf.h"
#include "util/file.h"

#define RA_VALIDITY_DAYS 730 /* NDES RA certificates come from v1 templates: 2 years */

int ca_material_cert_to_pem(X509 *cert, char **pem, util_error *err)
{
    size_t len = 0;
    return crypto_cert_to_pem(cert, pem, &len, err);
}

int ca_material_load(store_ca *store, const char *role, X509 **cert, EVP_PKEY **key, util_error *err)
{
    char *cert_pem = NULL, *key_pem = NULL;
    X509 *c = NULL;
    EVP_PKEY *k = NULL;
    int rc = store_ca_material_get(store, role, &cert_pem, &key_pem, err);
    if (rc != 0)
        return rc;
    rc = -1;
    if (crypto_cert_load((const uint8_t *)cert_pem, strlen(cert_pem), &c, err) != 0 ||
        crypto_key_load((const uint8_t *)key_pem, strlen(key_pem), &k, err) != 0)
        goto out;
    if (!crypto_cert_matches_key(c, k)) {
        util_error_set(err, UTIL_ERR_KEY_MISMATCH, "scepca material '%s'", role);
        goto out;
    }
    *cert = c;
    *key = k;
    c = NULL;
    k = NULL;
    rc = 0;
out:
    X509_free(c);
    EVP_PKEY_free(k);
    free(cert_pem);
    store_ca_secret_free(key_pem);
    return rc;
}

/* PEM of a certificate and its key, for the store. */
typedef struct pem_pair {
    char *cert;
    char *key;
    size_t key_len;
} pem_pair;

static int pem_pair_make(X509 *cert, EVP_PKEY *key, pem_pair *out, util_error *err)
{
    if (ca_material_cert_to_pem(cert, &out->cert, err) != 0)
        return -1;
    return crypto_key_to_pem(key, &out->key, &out->key_len, err);
}

static void pem_pair_clear(pem_pair *p)
{
    free(p->cert);
    if (p->key)
        crypto_secret_free(p->key, p->key_len);
    memset(p, 0, sizeof *p);
}

static int make_ca_named(const crypto_key_spec *spec, const X509_NAME *name, int days, time_t now,
                         X509 **cert, EVP_PKEY **key, util_error *err)
{
    uint8_t serial[CRYPTO_SERIAL_LEN];
    char hex[CRYPTO_SERIAL_HEX];
    if (crypto_ca_random_serial(serial, hex, err) != 0 || crypto_key_generate(spec, key, err) != 0)
        return -1;
    if (crypto_ca_create(*key, name, serial, sizeof serial, now, days, cert, err) != 0) {
        EVP_PKEY_free(*key);
        *key = NULL;
        return -1;
    }
    return 0;
}

static int make_ca(const crypto_key_spec *spec, const char *subject, int days, time_t now, X509 **cert,
                   EVP_PKEY **key, util_error *err)
{
    X509_NAME *name = NULL;
    if (crypto_name_parse(subject, &name, err) != 0)
        return -1;
    int rc = make_ca_named(spec, name, days, now, cert, key, err);
    X509_NAME_free(name);
    return rc;
}

/* One RA certificate, NDES style: "<CA CN>-MSCEP-RA", RSA 2048. */
static int make_ra(crypto_ra_kind kind, X509 *ca_cert, EVP_PKEY *ca_key, time_t now, X509 **cert,
                   EVP_PKEY **key, util_error *err)
{
    int rc = -1;
    crypto_key_spec spec = {CRYPTO_KEY_RSA, 2048};
    X509_NAME *name = X509_NAME_new();
    uint8_t serial[CRYPTO_SERIAL_LEN];
    char hex[CRYPTO_SERIAL_HEX];
    const char *cn =
        kind == CRYPTO_RA_ENCRYPT ? "scepca-MSCEP-RA (CEP Encryption)" : "scepca-MSCEP-RA (Enrollment Agent)";
    if (!name ||
        X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC, (const unsigned char *)"US", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1) {
        util_error_ossl(err, UTIL_ERR_INTERNAL, "RA subject");
        goto out;
    }
    if (crypto_ca_random_serial(serial, hex, err) != 0 || crypto_key_generate(&spec, key, err))
        goto out;
    crypto_issue_params p = {serial, sizeof serial, now - 3600, now + (time_t)RA_VALIDITY_DAYS * 86400,
                             EVP_sha256()};
    if (crypto_issue_ra(kind, *key, name, ca_cert, ca_key, &p, cert, err) != 0) {
        EVP_PKEY_free(*key);
        *key = NULL;
        goto out;
    }
    rc = 0;
out:
    X509_NAME_free(name);
    return rc;
}

static int random_password(char *out, size_t len, util_error *err)
{
    uint8_t raw[12];
    if (len < 2 * sizeof raw + 1)
        return util_error_set(err, UTIL_ERR_INTERNAL, "password buffer too small");
    if (crypto_ca_random_bytes(raw, sizeof raw, err) != 0)
        return -1;
    util_hex(raw, sizeof raw, out, 0);
    return 0;
}

/* The mscep_admin password is stored as scrypt (crypto_password_hash, the
 * salt inside); CAs initialised before keep their salted SHA-256, which
 * admin.c still checks. */
static int store_admin(store_ca *store, const char *user, const char *password, util_error *err)
{
    char *hash = NULL;
    if (strlen(password) > 1024)
        return util_error_set(err, UTIL_ERR_USAGE, "admin password too long");
    if (crypto_password_hash(password, &hash, err) != 0)
        return -1;
    int rc = store_ca_setting_set(store, "admin_user", user, err) != 0 ||
                     store_ca_setting_set(store, "admin_salt", "", err) != 0 ||
                     store_ca_setting_set(store, "admin_hash", hash, err) != 0
                 ? -1
                 : 0;
    OPENSSL_cleanse(hash, strlen(hash));
    free(hash);
    return rc;
}

typedef struct init_material {
    X509 *ca, *enc, *sign;
    EVP_PKEY *ca_key, *enc_key, *sign_key;
    pem_pair pem[3];
} init_material;

static void init_material_clear(init_material *m)
{
    X509_free(m->ca);
    X509_free(m->enc);
    X509_free(m->sign);
    EVP_PKEY_free(m->ca_key);
    EVP_PKEY_free(m->enc_key);
    EVP_PKEY_free(m->sign_key);
    for (int i = 0; i < 3; i++)
        pem_pair_clear(&m->pem[i]);
}

static int save_material(store_ca *store, init_material *m, bool ndes, util_error *err)
{
    store_ca_material rows[3];
    size_t n = 0;
    if (pem_pair_make(m->ca, m->ca_key, &m->pem[0], err) != 0)
        return -1;
    rows[n++] = (store_ca_material){"ca", m->pem[0].cert, m->pem[0].key};
    if (ndes) {
        if (pem_pair_make(m->enc, m->enc_key, &m->pem[1], err) != 0 ||
            pem_pair_make(m->sign, m->sign_key, &m->pem[2], err) != 0)
            return -1;
        rows[n++] = (store_ca_material){"ra_encrypt", m->pem[1].cert, m->pem[1].key};
        rows[n++] = (store_ca_material){"ra_sign", m->pem[2].cert, m->pem[2].key};
    }
    return store_ca_material_put(store, rows, n, err);
}

int ca_admin_init(const ca_init_params *p, time_t now, char *admin_password_out, size_t out_len,
                  util_error *err)
{
    int rc = -1;
    store_ca *store = NULL;
    init_material m = {0};
    char generated[32] = "";
    char *existing = NULL, *existing_key = NULL;
    const char *password = p->admin_password;
    if (store_ca_open(p->dir, true, &store, err) != 0)
        goto out;
    if (store_ca_material_get(store, "ca", &existing, &existing_key, err) != 1) {
        if (existing)
            util_error_set(err, UTIL_ERR_USAGE, "%s already holds a CA; use another --dir", p->dir);
        goto out;
    }
    crypto_key_spec spec;
    if (crypto_key_spec_parse(p->key_type ? p->key_type : "rsa:2048", &spec, err) != 0)
        goto out;
    if (make_ca(&spec, p->subject ? p->subject : "CN=scepca test CA,O=scepd", p->days > 0 ? p->days : 3650,
                now, &m.ca, &m.ca_key, err) != 0)
        goto out;
    if (p->ndes && (make_ra(CRYPTO_RA_ENCRYPT, m.ca, m.ca_key, now, &m.enc, &m.enc_key, err) != 0 ||
                    make_ra(CRYPTO_RA_SIGN, m.ca, m.ca_key, now, &m.sign, &m.sign_key, err) != 0))
        goto out;
    if (!password) {
        if (random_password(generated, sizeof generated, err) != 0)
            goto out;
        password = generated;
    }
    if (save_material(store, &m, p->ndes, err) != 0 ||
        store_admin(store, p->admin_user ? p->admin_user : "admin", password, err) != 0)
        goto out;
    if (admin_password_out && out_len)
        snprintf(admin_password_out, out_len, "%s", p->admin_password ? "" : generated);
    rc = 0;
out:
    OPENSSL_cleanse(generated, sizeof generated);
    free(existing);
    store_ca_secret_free(existing_key);
    init_material_clear(&m);
    store_ca_close(store);
    return rc;
}

int ca_admin_rollover(const char *dir, time_t now, util_error *err)
{
    int rc = -1;
    store_ca *store = NULL;
    X509 *cur = NULL, *next = NULL;
    EVP_PKEY *cur_key = NULL, *next_key = NULL;
    pem_pair pem = {0};
    if (store_ca_open(dir, false, &store, err) != 0)
        goto out;
    if (ca_material_load(store, "ca", &cur, &cur_key, err) != 0) {
        util_error_set(err, UTIL_ERR_INPUT_FILE, "%s holds no CA (run init)", dir);
        goto out;
    }
    /* the next CA gets a key of the same type and size */
    crypto_key_spec spec = {EVP_PKEY_get_base_id(cur_key) == EVP_PKEY_EC ? CRYPTO_KEY_EC : CRYPTO_KEY_RSA,
                            EVP_PKEY_get_bits(cur_key)};
    time_t cur_end = crypto_asn1_time_to_time(X509_get0_notAfter(cur));
    int days = cur_end > now ? (int)((cur_end - now) / 86400) + 3650 : 3650;
    if (make_ca_named(&spec, X509_get_subject_name(cur), days, now, &next, &next_key, err) != 0 ||
        pem_pair_make(next, next_key, &pem, err) != 0)
        goto out;
    store_ca_material row = {"next_ca", pem.cert, pem.key};
    rc = store_ca_material_put(store, &row, 1, err);
out:
    pem_pair_clear(&pem);
    X509_free(cur);
    X509_free(next);
    EVP_PKEY_free(cur_key);
    EVP_PKEY_free(next_key);
    store_ca_close(store);
    return rc;
}

int ca_admin_promote(const char *dir, time_t now, util_error *err)
{
    int rc = -1;
    store_ca *store = NULL;
    X509 *next = NULL, *enc = NULL, *sign = NULL, *old_ra = NULL;
    EVP_PKEY *next_key = NULL, *enc_key = NULL, *sign_key = NULL, *old_ra_key = NULL;
    pem_pair pem[3] = {{0}};
    store_ca_material rows[3];
    size_t n = 0;
    util_error ignored;
    if (store_ca_open(dir, false, &store, err) != 0)
        goto out;
    if (ca_material_load(store, "next_ca", &next, &next_key, &ignored) != 0) {
        util_error_set(err, UTIL_ERR_USAGE, "%s has no next CA staged (run 'scepca rollover' first)", dir);
        goto out;
    }
    if (pem_pair_make(next, next_key, &pem[0], err) != 0)
        goto out;
    rows[n++] = (store_ca_material){"ca", pem[0].cert, pem[0].key};
    /* RA mode: the RA certificates must chain to the CA that GetCACert presents */
    if (ca_material_load(store, "ra_encrypt", &old_ra, &old_ra_key, &ignored) == 0) {
        if (make_ra(CRYPTO_RA_ENCRYPT, next, next_key, now, &enc, &enc_key, err) != 0 ||
            make_ra(CRYPTO_RA_SIGN, next, next_key, now, &sign, &sign_key, err) != 0 ||
            pem_pair_make(enc, enc_key, &pem[1], err) != 0 ||
            pem_pair_make(sign, sign_key, &pem[2], err) != 0)
            goto out;
        rows[n++] = (store_ca_material){"ra_encrypt", pem[1].cert, pem[1].key};
        rows[n++] = (store_ca_material){"ra_sign", pem[2].cert, pem[2].key};
    }
    rc = store_ca_material_replace(store, rows, n, "next_ca", err);
out:
    for (size_t i = 0; i < 3; i++)
        pem_pair_clear(&pem[i]);
    X509_free(next);
    X509_free(enc);
    X509_free(sign);
    X509_free(old_ra);
    EVP_PKEY_free(next_key);
    EVP_PKEY_free(enc_key);
    EVP_PKEY_free(sign_key);
    EVP_PKEY_free(old_ra_key);
    store_ca_close(store);
    return rc;
}

/* Same keys and names as the RA certificates, but expired a day ago. */
static int expired_copy(ca_server *srv, crypto_ra_kind kind, X509 *ra, EVP_PKEY *key, time_t now, X509 **out,
                        util_error *err)
{
    uint8_t serial[CRYPTO_SERIAL_LEN];
    char hex[CRYPTO_SERIAL_HEX];
    if (crypto_ca_random_serial(serial, hex, err) != 0)
        return -1;
    crypto_issue_params p = {serial, sizeof serial, now - 800 * 86400, now - 86400, EVP_sha256()};
    return crypto_issue_ra(kind, key, X509_get_subject_name(ra), srv->ca_cert, srv->ca_key, &p, out, err);
}

int ca_material_fault_certs(ca_server *srv, time_t now, util_error *err)
{
    const ca_config *cfg = srv->cfg;
    bool expired = false, rogue = false;
    for (size_t i = 0; i < cfg->fault_count; i++) {
        expired |= cfg->faults[i].kind == CA_FAULT_EXPIRED_RA;
        rogue |= cfg->faults[i].kind == CA_FAULT_WRONG_SIGNER;
    }
    if (expired && srv->ra_enc_cert) {
        if (expired_copy(srv, CRYPTO_RA_ENCRYPT, srv->ra_enc_cert, srv->ra_enc_key, now, &srv->expired_enc,
                         err) != 0 ||
            expired_copy(srv, CRYPTO_RA_SIGN, srv->ra_sign_cert, srv->ra_sign_key, now, &srv->expired_sign,
                         err) != 0)
            return -1;
    }
    crypto_key_spec rsa = {CRYPTO_KEY_RSA, 2048};
    if (rogue && make_ca(&rsa, "CN=scepca impostor", 30, now, &srv->rogue_cert, &srv->rogue_key, err) != 0)
        return -1;
    return 0;
}
