/* GetCACert replies: a DER certificate, a certs-only PKCS#7, or PEM. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "scep/scep.h"
#include "util/ossl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scep_ca_certs *c = NULL;
    util_error err;
    if (scep_ca_certs_parse(data, size, &c, &err) == 0) {
        /* the roles point into the set */
        if (!c->ca || !c->ra_encrypt || !c->ra_sign || sk_X509_num(c->all) < 1)
            abort();
        for (int i = 0; i < sk_X509_num(c->all); i++)
            (void)scep_cert_role_name(scep_ca_certs_role(c, sk_X509_value(c->all, i)));
        scep_ca_certs_free(c);
    } else if (err.code != UTIL_ERR_CACERT_PARSE && err.code != UTIL_ERR_CACERT_NO_CA &&
               err.code != UTIL_ERR_INTERNAL) {
        abort();
    }
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    if (scep_certs_only_parse(data, size, &certs, &crls, &err) == 0) {
        util_x509_stack_free(certs);
        util_crl_stack_free(crls);
    }
    return 0;
}
