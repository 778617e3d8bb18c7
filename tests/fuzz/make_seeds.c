/*
 * Writes the seed corpora of the fuzz targets from our own encoder:
 *   build-fuzz/tests/fuzz/make_seeds tests/fuzz/corpus
 * CertReps are signed by and encrypted to the fixture (fixture.h), with its
 * transactionID and nonce, so that fuzz_certrep reaches every step. Run it
 * again after changing the encoder; the seeds are committed.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/crypto.h"
#include "fixture.h"
#include "scep/scep.h"
#include "util/codec.h"
#include "util/ossl.h"

static const char *root;

static void die(const char *what, const util_error *err)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, err ? err->detail : "");
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path, NULL);
}

static X509 *issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *subject, bool is_ca,
                   uint32_t ku_bits)
{
    X509 *x = X509_new();
    X509_NAME *name = NULL;
    util_error err;
    if (crypto_name_parse(subject, &name, &err) != 0)
        die("name", &err);
    static long serial = 1000;
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_set_version(x, X509_VERSION_3);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650);
    X509_set_pubkey(x, key);
    if (is_ca) {
        BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
        bc->ca = 1;
        X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, 0);
        BASIC_CONSTRAINTS_free(bc);
    }
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    for (int bit = 0; bit < 8; bit++)
        if (ku_bits & (0x80u >> bit))
            ASN1_BIT_STRING_set_bit(ku, bit, 1);
    X509_add1_ext_i2d(x, NID_key_usage, ku, 1, 0);
    ASN1_BIT_STRING_free(ku);
    if (!X509_sign(x, ca_key ? ca_key : key, EVP_sha256()))
        die("signing a certificate", NULL);
    X509_NAME_free(name);
    return x;
}

static STACK_OF(X509) * stack_of(X509 *a, X509 *b, X509 *c)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    X509 *all[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (all[i]) {
            X509_up_ref(all[i]);
            sk_X509_push(s, all[i]);
        }
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    X509 *fx = NULL;
    EVP_PKEY *fk = NULL;
    fuzz_fixture_load(&fx, &fk);
    util_error err;
    EVP_PKEY *ra_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *ra_enc = issue(fx, fk, ra_key, "CN=Seed RA encrypt", false, KU_KEY_ENCIPHERMENT);
    X509 *ra_sign = issue(fx, fk, ra_key, "CN=Seed RA sign", false, KU_DIGITAL_SIGNATURE);
    X509 *ec_leaf = issue(fx, fk, ec_key, "CN=ec-device,O=Seeds", false, KU_DIGITAL_SIGNATURE);
    uint8_t *der = NULL;
    size_t len = 0;

    /* ---- getcacaps ---- */
    const char *caps[][2] = {
        {"ndes", "POSTPKIOperation\r\nRenewal\r\nSHA-512\r\nSHA-256\r\nSHA-1\r\nDES3\r\n"},
        {"all", "AES\nDES3\nGetNextCACert\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\nSHA-384\nSHA-"
                "512\nSCEPStandard\nUpdate\n"},
        {"standard", "SCEPStandard\n"},
        {"mixed", "aes, sha-256 X-Vendor\tUpdate\n\n"},
        {"html", "<html><body>Not found</body></html>"},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        put("getcacaps", caps[i][0], caps[i][1], strlen(caps[i][1]));

    /* ---- getcacert ---- */
    if (crypto_cert_to_der(fx, &der, &len, &err) != 0)
        die("der", &err);
    put("getcacert", "single-der", der, len);
    put("inspect", "certificate", der, len);
    OPENSSL_free(der);
    STACK_OF(X509) *ra_set = stack_of(fx, ra_enc, ra_sign);
    if (scep_certs_only_encode(ra_set, NULL, &der, &len, &err) != 0)
        die("certs-only", &err);
    put("getcacert", "ca-ra-certs-only", der, len);
    put("inspect", "certs-only", der, len);
    OPENSSL_free(der);
    char *pem = NULL;
    if (crypto_certs_to_pem(ra_set, &pem, &len, &err) != 0)
        die("pem", &err);
    put("getcacert", "ca-ra-pem", pem, len);
    free(pem);

    /* ---- certrep: replies to the fixture ---- */
    EVP_PKEY *leaf_key = fk; /* the issued certificate is for the fixture's key */
    X509 *issued = issue(fx, fk, leaf_key, "CN=issued to the fixture", false,
                         KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    X509_CRL *crl = X509_CRL_new();
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(fx));
    ASN1_TIME *t = ASN1_TIME_set(NULL, 1700000000);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_free(t);
    X509_CRL_sign(crl, fk, EVP_sha256());
    STACK_OF(X509) *content_certs = stack_of(fx, issued, NULL);
    uint8_t *content = NULL;
    size_t content_len = 0;
    if (scep_certs_only_encode(content_certs, crl, &content, &content_len, &err) != 0)
        die("content", &err);
    put("inspect", "certs-only-crl", content, content_len);
    STACK_OF(X509) *rcpt = stack_of(fx, NULL, NULL);
    struct {
        const char *name;
        int status;
        scep_key_transport kt;
        const char *cipher;
        bool with_certs, one_byte;
        const char *hresult;
    } replies[] = {
        {"success", SCEP_STATUS_SUCCESS, SCEP_KT_DEFAULT, "aes", true, false, NULL},
        {"success-oaep-ndes", SCEP_STATUS_SUCCESS, SCEP_KT_RSA_OAEP, "aes", false, false, NULL},
        {"success-des3", SCEP_STATUS_SUCCESS, SCEP_KT_DEFAULT, "des3", true, false, NULL},
        {"pending", SCEP_STATUS_PENDING, SCEP_KT_DEFAULT, NULL, true, false, NULL},
        {"pending-ndes", SCEP_STATUS_PENDING, SCEP_KT_DEFAULT, NULL, false, true, NULL},
        {"failure-ndes", SCEP_STATUS_FAILURE, SCEP_KT_DEFAULT, NULL, false, true, "-2147024809"},
    };
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        scep_pki_message_params p = {0};
        p.type = SCEP_MSG_CERTREP;
        p.transaction_id = FUZZ_TID;
        p.sender_nonce = (const uint8_t *)"0123456789abcdef";
        p.sender_nonce_len = 16;
        p.recipient_nonce = FUZZ_NONCE;
        p.recipient_nonce_len = sizeof FUZZ_NONCE;
        p.pki_status = replies[i].status;
        p.fail_info = replies[i].status == SCEP_STATUS_FAILURE ? SCEP_FAIL_BAD_REQUEST : SCEP_FAIL_NONE;
        p.fail_info_text = replies[i].status == SCEP_STATUS_FAILURE ? "not supported" : NULL;
        p.ms_hresult = replies[i].hresult;
        p.ms_disposition = replies[i].status == SCEP_STATUS_SUCCESS ? "Issued" : NULL;
        p.one_byte_content = replies[i].one_byte;
        p.signer_cert = fx;
        p.signer_key = fk;
        p.digest = replies[i].with_certs ? EVP_sha256() : EVP_sha1();
        p.include_signer_cert = replies[i].with_certs;
        p.signing_time = replies[i].with_certs ? 1700000000 : 0;
        if (replies[i].status == SCEP_STATUS_SUCCESS) {
            p.content = content;
            p.content_len = content_len;
            p.recipients = rcpt;
            p.cipher = scep_cipher_by_name(replies[i].cipher);
            p.key_transport = replies[i].kt;
        }
        if (scep_pki_message_encode(&p, &der, &len, &err) != 0)
            die(replies[i].name, &err);
        put("certrep", replies[i].name, der, len);
        if (i == 0) {
            put("inspect", "pkimessage", der, len);
            /* the envelope alone, and the message as base64 text */
            scep_pki_message *m = NULL;
            if (scep_pki_message_parse(der, len, NULL, &m, &err) != 0)
                die("parse", &err);
            put("inspect", "envelope", m->content, m->content_len);
            scep_pki_message_free(m);
            char *b64 = util_base64_encode(der, len);
            if (!b64)
                return 1;
            put("certrep", "success-base64", b64, strlen(b64));
            free(b64);
        }
        OPENSSL_free(der);
    }
    /* a request signed by an EC self-signed certificate */
    {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ec_leaf));
        X509 *self = NULL;
        if (crypto_selfsigned_build(ec_key, name, NULL, 1700000000, 7, &self, &err) != 0)
            die("self-signed", &err);
        crypto_csr_params cp = {.common_name = "ec-device",
                                .organization = "Seeds",
                                .sans = {"dns:ec.example", "ip:192.0.2.1"},
                                .san_count = 2,
                                .challenge_password = "00112233AABBCCDD"};
        X509_REQ *req = NULL;
        if (crypto_csr_build(&cp, ec_key, &req, &err) != 0)
            die("csr", &err);
        unsigned char *csr = NULL;
        int csr_len = i2d_X509_REQ(req, &csr);
        put("inspect", "csr", csr, (size_t)csr_len);
        scep_pki_message_params p = {0};
        p.type = SCEP_MSG_PKCSREQ;
        p.transaction_id = FUZZ_TID;
        p.sender_nonce = FUZZ_NONCE;
        p.sender_nonce_len = sizeof FUZZ_NONCE;
        p.pki_status = SCEP_STATUS_NONE;
        p.fail_info = SCEP_FAIL_NONE;
        p.signer_cert = self;
        p.signer_key = ec_key;
        p.include_signer_cert = true;
        p.content = csr;
        p.content_len = (size_t)csr_len;
        p.recipients = rcpt;
        if (scep_pki_message_encode(&p, &der, &len, &err) != 0)
            die("pkcsreq", &err);
        put("certrep", "pkcsreq-ec", der, len);
        put("inspect", "pkcsreq-ec", der, len);
        OPENSSL_free(der);
        /* messageData of CertPoll and GetCert */
        if (scep_issuer_and_subject_encode(X509_get_subject_name(fx), name, &der, &len, &err) != 0)
            die("issuer-and-subject", &err);
        put("inspect", "issuer-and-subject", der, len);
        OPENSSL_free(der);
        if (scep_issuer_and_serial_encode(X509_get_subject_name(fx), X509_get0_serialNumber(issued), &der,
                                          &len, &err) != 0)
            die("issuer-and-serial", &err);
        put("inspect", "issuer-and-serial", der, len);
        OPENSSL_free(der);
        OPENSSL_free(csr);
        X509_REQ_free(req);
        X509_free(self);
        X509_NAME_free(name);
    }
    OPENSSL_free(content);
    util_x509_stack_free(content_certs);
    util_x509_stack_free(rcpt);
    util_x509_stack_free(ra_set);
    X509_CRL_free(crl);
    X509_free(issued);
    X509_free(ra_enc);
    X509_free(ra_sign);
    X509_free(ec_leaf);
    X509_free(fx);
    EVP_PKEY_free(fk);
    EVP_PKEY_free(ra_key);
    EVP_PKEY_free(ec_key);
    return 0;
}
