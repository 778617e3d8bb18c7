/*
 * Preparing an enrollment, once for scepctl and the agent: which message
 * (PKCSReq, RenewalReq, or a PKCSReq signed with the old certificate as NDES
 * wants for re-enrollment), the CSR, the signer and the transactionID.
 */
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "client/client.h"
#include "util/ossl.h"

/* How long the self-signed signer of a first enrollment is valid. */
#define SELFSIGNED_DAYS 30
/* The temporary signer of an EC request to a server that encrypts only to RSA. */
#define TEMPORARY_SIGNER_BITS 2048

int client_request_type(const client_server *srv, client_renewal_mode mode)
{
    switch (mode) {
    case CLIENT_RENEWAL_RENEWALREQ: return SCEP_MSG_RENEWALREQ;
    case CLIENT_RENEWAL_PKCSREQ: return SCEP_MSG_PKCSREQ;
    case CLIENT_RENEWAL_AUTO: break;
    }
    /* RenewalReq is not mandatory to implement (RFC 8894 section 2.9) and
     * NDES, which lists Renewal, means a PKCSReq signed by the current
     * certificate by it */
    return scep_caps_has(&srv->caps, SCEP_CAP_RENEWAL) && srv->iis_major == 0 ? SCEP_MSG_RENEWALREQ
                                                                              : SCEP_MSG_PKCSREQ;
}

bool client_server_ec_agreement(const client_server *srv)
{
    return srv->iis_major == 0 && srv->caps_answered && scep_caps_has(&srv->caps, SCEP_CAP_SCEPSTANDARD);
}

bool client_signer_needs_rsa(const client_server *srv, EVP_PKEY *new_key)
{
    return !crypto_key_is_rsa(new_key) && (util_pkey_in_tpm(new_key) || !client_server_ec_agreement(srv));
}

static int build_csr(const client_enrollment *e, client_transaction *t, uint8_t **der, size_t *len,
                     util_error *err)
{
    crypto_csr_params params = e->csr;
    params.digest = t->choice.digest;
    X509_REQ *req = NULL;
    if (crypto_csr_build(&params, t->new_key, &req, err) != 0)
        return -1;
    unsigned char *buf = NULL;
    int n = i2d_X509_REQ(req, &buf);
    X509_NAME *subject = X509_NAME_dup(X509_REQ_get_subject_name(req));
    X509_REQ_free(req);
    if (n <= 0 || !subject) {
        if (n > 0)
            OPENSSL_clear_free(buf, (size_t)n);
        X509_NAME_free(subject);
        return util_error_ossl(err, UTIL_ERR_CSR_BUILD, "encoding the request");
    }
    X509_NAME_free(t->subject);
    t->subject = subject;
    *der = buf;
    *len = (size_t)n;
    return 0;
}

/* First enrollment's signing key: the one asked for, else the new key, else
 * (an EC key towards a server that encrypts only to RSA) a temporary RSA
 * key: the CSR still carries and is signed by the EC key, and the reply is
 * encrypted to the RSA signer (NDES, see docs/internals/client.md). */
static int first_signer_key(const client_server *srv, const client_enrollment *e, client_transaction *t,
                            util_error *err)
{
    if (e->signer_key) {
        t->signer_key = e->signer_key;
        EVP_PKEY_up_ref(t->signer_key);
        return 0;
    }
    if (!client_signer_needs_rsa(srv, t->new_key)) {
        t->signer_key = t->new_key;
        EVP_PKEY_up_ref(t->signer_key);
        return 0;
    }
    crypto_key_spec spec = {CRYPTO_KEY_RSA, TEMPORARY_SIGNER_BITS};
    return crypto_key_generate(&spec, &t->signer_key, err);
}

/* Renewal: the old pair signs. First enrollment: a self-signed certificate
 * (RFC 8894 section 2.3) over the signing key, the earlier one when a
 * resumed request already sent with it, so its CertPolls match. */
static int choose_signer(const client_server *srv, const client_enrollment *e, client_transaction *t,
                         util_error *err)
{
    X509_free(t->signer_cert);
    EVP_PKEY_free(t->signer_key);
    t->signer_cert = NULL;
    t->signer_key = NULL;
    if (e->renew_cert && e->renew_key) {
        t->request_type = client_request_type(srv, e->mode);
        t->signer_cert = e->renew_cert;
        t->signer_key = e->renew_key;
        X509_up_ref(t->signer_cert);
        EVP_PKEY_up_ref(t->signer_key);
        return 0;
    }
    t->request_type = SCEP_MSG_PKCSREQ;
    if (first_signer_key(srv, e, t, err) != 0)
        return -1;
    if (e->earlier_signer && crypto_cert_matches_key(e->earlier_signer, t->signer_key) &&
        X509_NAME_cmp(X509_get_subject_name(e->earlier_signer), t->subject) == 0) {
        t->signer_cert = e->earlier_signer;
        X509_up_ref(t->signer_cert);
        return 0;
    }
    return crypto_selfsigned_build(t->signer_key, t->subject, t->choice.digest, e->now, SELFSIGNED_DAYS,
                                   &t->signer_cert, err);
}

int client_enrollment_prepare(const client_server *srv, const client_enrollment *e, client_transaction *t,
                              uint8_t **csr, size_t *csr_len, util_error *err)
{
    uint8_t *der = NULL;
    size_t len = 0;
    if (!t->new_key)
        return util_error_set(err, UTIL_ERR_INTERNAL, "no key to enroll");
    /* the CSR first: its subject names the self-signed signer and CertPoll */
    if (build_csr(e, t, &der, &len, err) != 0)
        return -1;
    if (choose_signer(srv, e, t, err) != 0 || scep_transaction_id(t->new_key, t->transaction_id, err) != 0) {
        OPENSSL_clear_free(der, len);
        return -1;
    }
    *csr = der;
    *csr_len = len;
    return 0;
}
