/*
 * What `scepctl inspect` reads from a file of unknown kind: a pkiMessage,
 * an EnvelopedData, a certs-only, a PKCS#10, IssuerAndSubject,
 * IssuerAndSerialNumber and certificates; and scepca's reading of a
 * PKCS#10 request (crypto_issue_csr_read).
 */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "crypto/crypto.h"
#include "crypto/issue.h"
#include "scep/scep.h"
#include "util/ossl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    util_error err;
    scep_pki_message *m = NULL;
    if (scep_pki_message_parse(data, size, NULL, &m, &err) == 0)
        scep_pki_message_free(m);
    char cipher[64], kt[64];
    (void)scep_envelope_describe(data, size, cipher, sizeof cipher, kt, sizeof kt, &err);
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    if (scep_certs_only_parse(data, size, &certs, &crls, &err) == 0) {
        util_x509_stack_free(certs);
        util_crl_stack_free(crls);
    }
    const unsigned char *p = data;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)size);
    if (req) {
        EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
        if (pub)
            (void)X509_REQ_verify(req, pub);
        X509_REQ_free(req);
    }
    X509_REQ *read = NULL;
    if (crypto_issue_csr_read(data, size, &read, &err) == 0) {
        char line[256];
        crypto_issue_csr_subject(read, line, sizeof line);
        X509_REQ_free(read);
    }
    X509_NAME *issuer = NULL, *subject = NULL;
    if (scep_issuer_and_subject_decode(data, size, &issuer, &subject, &err) == 0) {
        char a[256], b[256];
        crypto_name_oneline(issuer, a, sizeof a);
        crypto_name_oneline(subject, b, sizeof b);
        X509_NAME_free(issuer);
        X509_NAME_free(subject);
    }
    ASN1_INTEGER *serial = NULL;
    if (scep_issuer_and_serial_decode(data, size, &issuer, &serial, &err) == 0) {
        X509_NAME_free(issuer);
        ASN1_INTEGER_free(serial);
    }
    if (crypto_certs_load(data, size, &certs, &err) == 0) {
        for (int i = 0; i < sk_X509_num(certs); i++) {
            crypto_cert_info info;
            crypto_cert_info_get(sk_X509_value(certs, i), &info);
        }
        util_x509_stack_free(certs);
    }
    ERR_clear_error();
    return 0;
}
