/* messageData of CertPoll (IssuerAndSubject), GetCert and GetCRL
 * (IssuerAndSerialNumber), RFC 8894 §3.3.3-3.3.4. */
#include <openssl/asn1t.h>
#include <openssl/x509.h>

#include "scep/scep.h"

typedef struct {
    X509_NAME *issuer;
    X509_NAME *subject;
} SCEP_ISSUER_AND_SUBJECT;

typedef struct {
    X509_NAME *issuer;
    ASN1_INTEGER *serial;
} SCEP_ISSUER_AND_SERIAL;

ASN1_SEQUENCE(SCEP_ISSUER_AND_SUBJECT) =
    {
        ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, issuer, X509_NAME),
        ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, subject, X509_NAME),
} ASN1_SEQUENCE_END(SCEP_ISSUER_AND_SUBJECT)

        ASN1_SEQUENCE(SCEP_ISSUER_AND_SERIAL) =
            {
                ASN1_SIMPLE(SCEP_ISSUER_AND_SERIAL, issuer, X509_NAME),
                ASN1_SIMPLE(SCEP_ISSUER_AND_SERIAL, serial, ASN1_INTEGER),
} ASN1_SEQUENCE_END(SCEP_ISSUER_AND_SERIAL)

                DECLARE_ASN1_FUNCTIONS(SCEP_ISSUER_AND_SUBJECT) DECLARE_ASN1_FUNCTIONS(SCEP_ISSUER_AND_SERIAL)
                    IMPLEMENT_ASN1_FUNCTIONS(SCEP_ISSUER_AND_SUBJECT)
                        IMPLEMENT_ASN1_FUNCTIONS(SCEP_ISSUER_AND_SERIAL)

                            static int encode_pair(void *obj, const ASN1_ITEM *it, uint8_t **der, size_t *len,
                                                   util_error *err)
{
    unsigned char *buf = NULL;
    int n = ASN1_item_i2d(obj, &buf, it);
    if (n <= 0)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding %s", it->sname);
    *der = buf;
    *len = (size_t)n;
    return 0;
}

int scep_issuer_and_subject_encode(const X509_NAME *issuer, const X509_NAME *subject, uint8_t **der,
                                   size_t *len, util_error *err)
{
    SCEP_ISSUER_AND_SUBJECT v = {(X509_NAME *)issuer, (X509_NAME *)subject};
    return encode_pair(&v, ASN1_ITEM_rptr(SCEP_ISSUER_AND_SUBJECT), der, len, err);
}

int scep_issuer_and_serial_encode(const X509_NAME *issuer, const ASN1_INTEGER *serial, uint8_t **der,
                                  size_t *len, util_error *err)
{
    SCEP_ISSUER_AND_SERIAL v = {(X509_NAME *)issuer, (ASN1_INTEGER *)serial};
    return encode_pair(&v, ASN1_ITEM_rptr(SCEP_ISSUER_AND_SERIAL), der, len, err);
}

int scep_issuer_and_subject_decode(const uint8_t *der, size_t len, X509_NAME **issuer, X509_NAME **subject,
                                   util_error *err)
{
    const unsigned char *p = der;
    SCEP_ISSUER_AND_SUBJECT *v = d2i_SCEP_ISSUER_AND_SUBJECT(NULL, &p, (long)len);
    if (!v || p != der + len) {
        SCEP_ISSUER_AND_SUBJECT_free(v);
        return util_error_ossl(err, UTIL_ERR_RESPONSE_PARSE, "IssuerAndSubject (RFC 8894 section 3.3.3)");
    }
    *issuer = v->issuer;
    *subject = v->subject;
    v->issuer = v->subject = NULL;
    SCEP_ISSUER_AND_SUBJECT_free(v);
    return 0;
}

int scep_issuer_and_serial_decode(const uint8_t *der, size_t len, X509_NAME **issuer, ASN1_INTEGER **serial,
                                  util_error *err)
{
    const unsigned char *p = der;
    SCEP_ISSUER_AND_SERIAL *v = d2i_SCEP_ISSUER_AND_SERIAL(NULL, &p, (long)len);
    if (!v || p != der + len) {
        SCEP_ISSUER_AND_SERIAL_free(v);
        return util_error_ossl(err, UTIL_ERR_RESPONSE_PARSE,
                               "IssuerAndSerialNumber (RFC 8894 section 3.3.4)");
    }
    *issuer = v->issuer;
    *serial = v->serial;
    v->issuer = NULL;
    v->serial = NULL;
    SCEP_ISSUER_AND_SERIAL_free(v);
    return 0;
}
