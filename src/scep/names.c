/* Names of SCEP values, algorithm lookups and the transactionID. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>
#include <strings.h>

#include "scep/scep.h"
#include "util/file.h"

const char *scep_message_type_name(int type)
{
    switch (type) {
    case SCEP_MSG_CERTREP: return "CertRep";
    case SCEP_MSG_RENEWALREQ: return "RenewalReq";
    case SCEP_MSG_PKCSREQ: return "PKCSReq";
    case SCEP_MSG_CERTPOLL: return "CertPoll";
    case SCEP_MSG_GETCERT: return "GetCert";
    case SCEP_MSG_GETCRL: return "GetCRL";
    default: return "unknown";
    }
}

const char *scep_pki_status_name(int status)
{
    switch (status) {
    case SCEP_STATUS_SUCCESS: return "SUCCESS";
    case SCEP_STATUS_FAILURE: return "FAILURE";
    case SCEP_STATUS_PENDING: return "PENDING";
    default: return "unknown";
    }
}

const char *scep_fail_info_name(int fail_info)
{
    switch (fail_info) {
    case SCEP_FAIL_BAD_ALG: return "badAlg";
    case SCEP_FAIL_BAD_MESSAGE_CHECK: return "badMessageCheck";
    case SCEP_FAIL_BAD_REQUEST: return "badRequest";
    case SCEP_FAIL_BAD_TIME: return "badTime";
    case SCEP_FAIL_BAD_CERT_ID: return "badCertId";
    case SCEP_FAIL_NONE: return "none";
    default: return "unknown";
    }
}

const EVP_MD *scep_digest_by_name(const char *name)
{
    if (!name)
        return NULL;
    if (!strcasecmp(name, "sha1") || !strcasecmp(name, "sha-1"))
        return EVP_sha1();
    if (!strcasecmp(name, "sha256") || !strcasecmp(name, "sha-256"))
        return EVP_sha256();
    if (!strcasecmp(name, "sha384") || !strcasecmp(name, "sha-384"))
        return EVP_sha384();
    if (!strcasecmp(name, "sha512") || !strcasecmp(name, "sha-512"))
        return EVP_sha512();
    return NULL;
}

const EVP_CIPHER *scep_cipher_by_name(const char *name)
{
    if (!name)
        return NULL;
    if (!strcasecmp(name, "aes") || !strcasecmp(name, "aes128") || !strcasecmp(name, "aes-128-cbc"))
        return EVP_aes_128_cbc();
    if (!strcasecmp(name, "aes256") || !strcasecmp(name, "aes-256-cbc"))
        return EVP_aes_256_cbc();
    if (!strcasecmp(name, "des3") || !strcasecmp(name, "3des") || !strcasecmp(name, "des-ede3-cbc"))
        return EVP_des_ede3_cbc();
    return NULL;
}

const char *scep_digest_short_name(const EVP_MD *md)
{
    switch (md ? EVP_MD_get_type(md) : 0) {
    case NID_sha1: return "sha1";
    case NID_sha256: return "sha256";
    case NID_sha384: return "sha384";
    case NID_sha512: return "sha512";
    default: return "unknown";
    }
}

const char *scep_cipher_short_name(const EVP_CIPHER *c)
{
    switch (c ? EVP_CIPHER_get_nid(c) : 0) {
    case NID_aes_128_cbc: return "aes";
    case NID_aes_256_cbc: return "aes256";
    case NID_des_ede3_cbc: return "des3";
    default: return "unknown";
    }
}

int scep_transaction_id(EVP_PKEY *key, char out[65], util_error *err)
{
    unsigned char *spki = NULL;
    int len = i2d_PUBKEY(key, &spki);
    if (len <= 0)
        return util_error_ossl(err, UTIL_ERR_INPUT_KEY, "encoding the public key");
    unsigned char md[32];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(spki, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(spki);
    if (!ok || mdlen != 32)
        return util_error_ossl(err, UTIL_ERR_INTERNAL, "hashing the public key");
    util_hex(md, 32, out, 1);
    return 0;
}
