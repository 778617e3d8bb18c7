/* Small conveniences over OpenSSL types shared by several modules. */
#ifndef SCEPD_UTIL_OSSL_H
#define SCEPD_UTIL_OSSL_H

#include <openssl/x509.h>

static inline void util_x509_stack_free(STACK_OF(X509) * s)
{
    sk_X509_pop_free(s, X509_free);
}

static inline void util_crl_stack_free(STACK_OF(X509_CRL) * s)
{
    sk_X509_CRL_pop_free(s, X509_CRL_free);
}

#endif
