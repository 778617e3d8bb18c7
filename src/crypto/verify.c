/* Certificate verification for the admin: chain, validity, key, revocation. */
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

static crypto_verify_check *add_check(crypto_verify_result *r, const char *name)
{
    if (r->count >= sizeof r->checks / sizeof r->checks[0])
        return NULL;
    crypto_verify_check *c = &r->checks[r->count++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static void check_chain(X509 *cert, STACK_OF(X509) * trusted, STACK_OF(X509) * untrusted,
                        STACK_OF(X509_CRL) * crls, time_t now, crypto_verify_result *r)
{
    crypto_verify_check *chain = add_check(r, "chain");
    crypto_verify_check *rev = add_check(r, "revocation");
    if (!chain || !rev)
        return;
    if (!trusted || sk_X509_num(trusted) == 0) {
        chain->skipped = true;
        snprintf(chain->detail, sizeof chain->detail, "no CA certificate stored");
        rev->skipped = true;
        snprintf(rev->detail, sizeof rev->detail, "no CA certificate stored");
        return;
    }
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !ctx)
        goto out;
    for (int i = 0; i < sk_X509_num(trusted); i++)
        X509_STORE_add_cert(store, sk_X509_value(trusted, i));
    bool have_crls = crls && sk_X509_CRL_num(crls) > 0;
    if (!X509_STORE_CTX_init(ctx, store, cert, untrusted))
        goto out;
    X509_STORE_CTX_set_time(ctx, 0, now);
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
    if (have_crls) {
        X509_STORE_CTX_set0_crls(ctx, crls);
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK);
    }
    int ok = X509_verify_cert(ctx);
    int e = X509_STORE_CTX_get_error(ctx);
    bool revoked = e == X509_V_ERR_CERT_REVOKED;
    bool time_only = e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID;
    chain->ok = ok == 1 || revoked || time_only;
    snprintf(chain->detail, sizeof chain->detail, "%s",
             chain->ok ? "signed by a stored CA certificate" : X509_verify_cert_error_string(e));
    if (!have_crls) {
        rev->skipped = true;
        rev->ok = true;
        snprintf(rev->detail, sizeof rev->detail, "no CRL available");
    } else {
        rev->ok = !revoked && (ok == 1 || e != X509_V_ERR_UNABLE_TO_GET_CRL);
        snprintf(rev->detail, sizeof rev->detail, "%s",
                 revoked   ? "revoked"
                 : rev->ok ? "not revoked"
                           : X509_verify_cert_error_string(e));
    }
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
}

void crypto_cert_verify(X509 *cert, EVP_PKEY *key, STACK_OF(X509) * trusted, STACK_OF(X509) * untrusted,
                        STACK_OF(X509_CRL) * crls, time_t now, crypto_verify_result *out)
{
    memset(out, 0, sizeof *out);
    check_chain(cert, trusted, untrusted, crls, now, out);
    crypto_verify_check *validity = add_check(out, "validity");
    time_t nb = crypto_asn1_time_to_time(X509_get0_notBefore(cert));
    time_t na = crypto_asn1_time_to_time(X509_get0_notAfter(cert));
    validity->ok = now >= nb && now <= na;
    snprintf(validity->detail, sizeof validity->detail, "%s",
             now < nb   ? "not yet valid"
             : now > na ? "expired"
                        : "within the validity period");
    crypto_verify_check *km = add_check(out, "key_match");
    if (key) {
        km->ok = crypto_cert_matches_key(cert, key);
        snprintf(km->detail, sizeof km->detail, "%s",
                 km->ok ? "the private key matches the certificate" : "the private key does not match");
    } else {
        km->skipped = true;
        km->ok = true;
        snprintf(km->detail, sizeof km->detail, "no private key given");
    }
    out->valid = true;
    for (size_t i = 0; i < out->count; i++)
        if (!out->checks[i].ok && !out->checks[i].skipped)
            out->valid = false;
    ERR_clear_error();
}
