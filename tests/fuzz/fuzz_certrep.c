/*
 * CertRep as a client reads it: scep_pki_message_parse, the client-side
 * checks, the envelope description and, when the fixture is a recipient,
 * opening it and reading the issued certificate.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fixture.h"
#include "scep/scep.h"
#include "util/ossl.h"

static X509 *fixture_cert;
static EVP_PKEY *fixture_key;
static STACK_OF(X509) * signers;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_fixture_load(&fixture_cert, &fixture_key);
    signers = sk_X509_new_null();
    if (!signers || sk_X509_push(signers, fixture_cert) <= 0)
        abort();
    return 0;
}

static void read_content(const scep_pki_message *m)
{
    char cipher[64], kt[64];
    util_error err;
    if (scep_envelope_describe(m->content, m->content_len, cipher, sizeof cipher, kt, sizeof kt, &err) != 0)
        return;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    if (scep_envelope_open(m->content, m->content_len, fixture_cert, fixture_key, &plain, &plain_len, cipher,
                           sizeof cipher, &err) != 0)
        return;
    X509 *issued = NULL;
    STACK_OF(X509) *chain = NULL;
    X509_CRL *crl = NULL;
    if (scep_certrep_content(plain, plain_len, fixture_key, &issued, &chain, &crl, &err) == 0) {
        X509_free(issued);
        util_x509_stack_free(chain);
        X509_CRL_free(crl);
    }
    OPENSSL_free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scep_pki_message *m = NULL;
    util_error err;
    if (scep_pki_message_parse(data, size, signers, &m, &err) != 0)
        return 0;
    /* a valid signature needs a signer; an accepted reply needs all of it */
    if (m->signature_valid && !m->signer)
        abort();
    int rc = scep_certrep_check(m, signers, FUZZ_TID, FUZZ_NONCE, sizeof FUZZ_NONCE, &err);
    if (rc == 0 && (!m->signature_valid || m->type != SCEP_MSG_CERTREP))
        abort();
    if (m->pki_status == SCEP_STATUS_FAILURE)
        (void)util_err_code(scep_failure_error(m));
    if (m->content)
        read_content(m);
    scep_pki_message_free(m);
    return 0;
}
