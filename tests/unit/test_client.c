/* src/client: the saved state of a deferred request and the choice of
 * algorithms and HTTP method from what discovery learned. */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/client.h"

typedef struct fixture {
    EVP_PKEY *ca_key, *ra_key, *signer_key, *new_key;
    X509 *ca, *ra_enc, *ra_sign, *signer;
    char *dir;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->ca_key = h_key_rsa(2048);
    f->ra_key = h_key_rsa(2048);
    f->signer_key = h_key_ec("P-256");
    f->new_key = h_key_rsa(2048);
    f->ca = h_ca_new(f->ca_key, "CN=State Test CA,O=Example");
    f->ra_enc = h_cert_issue(f->ca, f->ca_key, f->ra_key, "CN=State RA encrypt", KU_KEY_ENCIPHERMENT);
    f->ra_sign = h_cert_issue(f->ca, f->ca_key, f->ra_key, "CN=State RA sign", KU_DIGITAL_SIGNATURE);
    X509_NAME *name = NULL;
    util_error err = {0};
    assert_int_equal(crypto_name_parse("CN=device-17,O=Example", &name, &err), 0);
    assert_int_equal(crypto_selfsigned_build(f->signer_key, name, NULL, time(NULL), 7, &f->signer, &err), 0);
    X509_NAME_free(name);
    f->dir = h_tempdir();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    h_rmtree(f->dir);
    free(f->dir);
    X509_free(f->ca);
    X509_free(f->ra_enc);
    X509_free(f->ra_sign);
    X509_free(f->signer);
    EVP_PKEY_free(f->ca_key);
    EVP_PKEY_free(f->ra_key);
    EVP_PKEY_free(f->signer_key);
    EVP_PKEY_free(f->new_key);
    free(f);
    return 0;
}

/* A saved state as `scepctl enroll` leaves it after PENDING. The signer and
 * the new key differ when `separate_new_key`. */
static void make_saved(fixture *f, client_saved *s, bool separate_new_key)
{
    memset(s, 0, sizeof *s);
    s->url = strdup("http://ndes.example/certsrv/mscep/mscep.dll");
    s->ca_identifier = strdup("ndes-ca");
    s->key_out = strdup("/etc/scepd/device.key");
    s->cert_out = strdup("/etc/scepd/device.pem");
    s->chain_out = NULL;
    const char *caps = "POSTPKIOperation\nSHA-256\nAES\n";
    scep_caps_parse((const uint8_t *)caps, strlen(caps), &s->server.caps);
    s->server.caps_answered = true;
    snprintf(s->server.server_header, sizeof s->server.server_header, "Microsoft-IIS/10.0");
    s->server.iis_major = 10;
    STACK_OF(X509) *all = h_stack(f->ra_sign, f->ca, f->ra_enc, NULL);
    util_error err = {0};
    assert_int_equal(scep_ca_certs_from_stack(all, &s->server.ca, &err), 0);
    h_stack_free(all);
    client_transaction *t = &s->txn;
    snprintf(t->transaction_id, sizeof t->transaction_id, "%s",
             "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0");
    t->request_type = SCEP_MSG_PKCSREQ;
    X509_up_ref(f->signer);
    t->signer_cert = f->signer;
    EVP_PKEY_up_ref(f->signer_key);
    t->signer_key = f->signer_key;
    EVP_PKEY *nk = separate_new_key ? f->new_key : f->signer_key;
    EVP_PKEY_up_ref(nk);
    t->new_key = nk;
    t->subject = X509_NAME_dup(X509_get_subject_name(f->signer));
    t->choice.digest = EVP_sha512();
    t->choice.cipher = EVP_aes_128_cbc();
    t->choice.post = true;
    t->choice.is_ndes = true;
}

static char *state_path(fixture *f, const char *name)
{
    size_t n = strlen(f->dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", f->dir, name);
    return p;
}

static void state_round_trip(void **state)
{
    fixture *f = *state;
    for (int separate = 0; separate <= 1; separate++) {
        client_saved s, l;
        make_saved(f, &s, separate);
        char *path = state_path(f, separate ? "two-keys.json" : "one-key.json");
        util_error err = {0};
        assert_int_equal(client_state_save(path, &s, &err), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600); /* it holds private keys */
        assert_int_equal(client_state_load(path, &l, &err), 0);
        assert_string_equal(l.url, s.url);
        assert_string_equal(l.ca_identifier, "ndes-ca");
        assert_string_equal(l.key_out, "/etc/scepd/device.key");
        assert_string_equal(l.cert_out, "/etc/scepd/device.pem");
        assert_null(l.chain_out);
        assert_string_equal(l.txn.transaction_id, s.txn.transaction_id);
        assert_int_equal(l.txn.request_type, SCEP_MSG_PKCSREQ);
        assert_int_equal(X509_cmp(l.txn.signer_cert, f->signer), 0);
        assert_int_equal(EVP_PKEY_eq(l.txn.signer_key, f->signer_key), 1);
        assert_int_equal(EVP_PKEY_eq(l.txn.new_key, separate ? f->new_key : f->signer_key), 1);
        if (!separate)
            assert_ptr_equal(l.txn.new_key, l.txn.signer_key); /* one key, stored once */
        assert_true(EVP_PKEY_get_bits(l.txn.new_key) == (separate ? 2048 : 256));
        assert_int_equal(X509_NAME_cmp(l.txn.subject, s.txn.subject), 0);
        assert_int_equal(EVP_MD_get_type(l.txn.choice.digest), NID_sha512);
        assert_int_equal(EVP_CIPHER_get_nid(l.txn.choice.cipher), NID_aes_128_cbc);
        assert_true(l.txn.choice.post);
        assert_true(l.txn.choice.is_ndes);
        assert_int_equal(l.server.caps.flags, s.server.caps.flags);
        assert_true(
            scep_caps_has(&l.server.caps, SCEP_CAP_POSTPKIOPERATION | SCEP_CAP_SHA256 | SCEP_CAP_AES));
        assert_true(l.server.caps_answered);
        assert_string_equal(l.server.server_header, "Microsoft-IIS/10.0");
        assert_int_equal(l.server.iis_major, 10);
        assert_non_null(l.server.ca);
        assert_int_equal(sk_X509_num(l.server.ca->all), 3);
        assert_int_equal(X509_cmp(l.server.ca->ca, f->ca), 0);
        assert_int_equal(X509_cmp(l.server.ca->ra_encrypt, f->ra_enc), 0);
        assert_int_equal(X509_cmp(l.server.ca->ra_sign, f->ra_sign), 0);
        client_saved_clear(&l);
        client_saved_clear(&s);
        free(path);
    }
}

static void state_overwrite_is_atomic(void **state)
{
    fixture *f = *state;
    client_saved s, l;
    make_saved(f, &s, false);
    char *path = state_path(f, "again.json");
    util_error err = {0};
    assert_int_equal(client_state_save(path, &s, &err), 0);
    snprintf(s.txn.transaction_id, sizeof s.txn.transaction_id, "SECOND");
    assert_int_equal(client_state_save(path, &s, &err), 0);
    assert_int_equal(client_state_load(path, &l, &err), 0);
    assert_string_equal(l.txn.transaction_id, "SECOND");
    client_saved_clear(&l);
    client_saved_clear(&s);
    free(path);
}

/* Saves a good state, lets `edit` damage its JSON, and expects STATE_FILE. */
static void expect_damaged(fixture *f, const char *name, void (*edit)(json_t *root))
{
    client_saved s, l;
    make_saved(f, &s, true);
    char *path = state_path(f, name);
    util_error err = {0};
    assert_int_equal(client_state_save(path, &s, &err), 0);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    edit(root);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    json_decref(root);
    memset(&l, 0x5a, sizeof l);
    util_error_clear(&err);
    if (client_state_load(path, &l, &err) != -1)
        fail_msg("%s: a damaged state file was accepted", name);
    assert_int_equal(err.code, UTIL_ERR_STATE_FILE);
    /* nothing is left allocated: the struct is cleared */
    assert_null(l.url);
    assert_null(l.txn.signer_key);
    assert_null(l.server.ca);
    client_saved_clear(&s);
    free(path);
}

static void drop_tid(json_t *r)
{
    json_object_del(r, "transaction_id");
}
static void drop_url(json_t *r)
{
    json_object_del(r, "url");
}
static void drop_subject(json_t *r)
{
    json_object_del(r, "subject");
}
static void bad_subject(json_t *r)
{
    json_object_set_new(r, "subject", json_string("bm90IGEgbmFtZQ=="));
}
static void drop_signer_cert(json_t *r)
{
    json_object_del(r, "signer_cert");
}
static void drop_signer_key(json_t *r)
{
    json_object_set_new(r, "signer_key", json_null());
}
static void bad_signer_key(json_t *r)
{
    json_object_set_new(r, "signer_key",
                        json_string("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
}
static void bad_new_key(json_t *r)
{
    json_object_set_new(r, "new_key", json_integer(5));
}
static void bad_digest(json_t *r)
{
    json_object_set_new(r, "digest", json_string("md5"));
}
static void drop_cipher(json_t *r)
{
    json_object_del(r, "cipher");
}
static void bad_version(json_t *r)
{
    json_object_set_new(r, "version", json_integer(99));
}
static void drop_ca(json_t *r)
{
    json_object_del(r, "ca_certs");
}
static void garbage_ca(json_t *r)
{
    json_object_set_new(r, "ca_certs", json_string("not PEM"));
}
static void long_tid(json_t *r)
{
    char tid[200];
    memset(tid, 'A', sizeof tid - 1);
    tid[sizeof tid - 1] = '\0';
    json_object_set_new(r, "transaction_id", json_string(tid));
}

static void state_damaged_fields(void **state)
{
    fixture *f = *state;
    expect_damaged(f, "no-tid.json", drop_tid);
    expect_damaged(f, "no-url.json", drop_url);
    expect_damaged(f, "no-subject.json", drop_subject);
    expect_damaged(f, "bad-subject.json", bad_subject);
    expect_damaged(f, "no-signer-cert.json", drop_signer_cert);
    expect_damaged(f, "no-signer-key.json", drop_signer_key);
    expect_damaged(f, "bad-signer-key.json", bad_signer_key);
    expect_damaged(f, "bad-new-key.json", bad_new_key);
    expect_damaged(f, "bad-digest.json", bad_digest);
    expect_damaged(f, "no-cipher.json", drop_cipher);
    expect_damaged(f, "bad-version.json", bad_version);
    expect_damaged(f, "no-ca.json", drop_ca);
    expect_damaged(f, "garbage-ca.json", garbage_ca);
    expect_damaged(f, "long-tid.json", long_tid);
}

static void state_not_json_or_missing(void **state)
{
    fixture *f = *state;
    client_saved l;
    util_error err = {0};
    char *path = h_write_file(f->dir, "truncated.json", "{\"version\": 1, \"url\": \"http", 27);
    assert_int_equal(client_state_load(path, &l, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STATE_FILE);
    free(path);
    path = h_write_file(f->dir, "array.json", "[1,2,3]", 7);
    assert_int_equal(client_state_load(path, &l, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STATE_FILE);
    free(path);
    path = h_write_file(f->dir, "empty.json", "", 0);
    assert_int_equal(client_state_load(path, &l, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STATE_FILE);
    free(path);
    path = state_path(f, "does-not-exist.json");
    assert_int_equal(client_state_load(path, &l, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_STATE_FILE);
    free(path);
}

/* ---- client_choose ---- */

static void choose(const char *caps, bool answered, int iis, const client_config *cfg, client_choice *out)
{
    client_server srv;
    memset(&srv, 0, sizeof srv);
    if (caps)
        scep_caps_parse((const uint8_t *)caps, strlen(caps), &srv.caps);
    srv.caps_answered = answered;
    srv.iis_major = iis;
    if (iis)
        snprintf(srv.server_header, sizeof srv.server_header, "Microsoft-IIS/%d.0", iis);
    client_config dflt;
    memset(&dflt, 0, sizeof dflt);
    memset(out, 0, sizeof *out);
    client_choose(cfg ? cfg : &dflt, &srv, out);
    client_server_clear(&srv);
}

#define ASSERT_CHOICE(c, md_nid, cipher_nid, is_post)                                                        \
    do {                                                                                                     \
        assert_int_equal(EVP_MD_get_type((c).digest), (md_nid));                                             \
        assert_int_equal(EVP_CIPHER_get_nid((c).cipher), (cipher_nid));                                      \
        assert_int_equal((c).post, (is_post));                                                               \
    } while (0)

static void choose_strongest_advertised(void **state)
{
    (void)state;
    client_choice c;
    choose("AES\nDES3\nPOSTPKIOperation\nSHA-1\nSHA-256\nSHA-512\nRenewal\n", true, 0, NULL, &c);
    ASSERT_CHOICE(c, NID_sha512, NID_aes_128_cbc, true);
    assert_false(c.is_ndes);
    choose("SHA-256\r\nAES\r\nPOSTPKIOperation\r\n", true, 0, NULL, &c);
    ASSERT_CHOICE(c, NID_sha256, NID_aes_128_cbc, true);
    /* SCEPStandard implies AES, POST and SHA-256 */
    choose("SCEPStandard\n", true, 0, NULL, &c);
    ASSERT_CHOICE(c, NID_sha256, NID_aes_128_cbc, true);
}

static void choose_old_servers(void **state)
{
    (void)state;
    client_choice c;
    choose("DES3\nSHA-1\n", true, 0, NULL, &c);
    ASSERT_CHOICE(c, NID_sha1, NID_des_ede3_cbc, false);
    /* no caps answered (closed, error, empty body): the RFC's defaults */
    choose(NULL, false, 0, NULL, &c);
    ASSERT_CHOICE(c, NID_sha1, NID_des_ede3_cbc, false);
    assert_false(c.is_ndes);
}

static void choose_ndes(void **state)
{
    (void)state;
    client_choice c;
    const char *ndes = "POSTPKIOperation\r\nRenewal\r\nSHA-512\r\nSHA-256\r\nSHA-1\r\nDES3\r\n";
    /* IIS 10: AES works although only DES3 is advertised */
    choose(ndes, true, 10, NULL, &c);
    ASSERT_CHOICE(c, NID_sha512, NID_aes_128_cbc, true);
    assert_true(c.is_ndes);
    /* IIS 8.5 (2012 R2): POST, but DES3 as advertised */
    choose(ndes, true, 8, NULL, &c);
    ASSERT_CHOICE(c, NID_sha512, NID_des_ede3_cbc, true);
    /* IIS 7.5 (2008 R2): GET even when POSTPKIOperation is advertised */
    choose(ndes, true, 7, NULL, &c);
    ASSERT_CHOICE(c, NID_sha512, NID_des_ede3_cbc, false);
    assert_true(c.is_ndes);
    /* unpatched NDES without caps: SHA-256 is known to work on IIS */
    choose(NULL, false, 7, NULL, &c);
    ASSERT_CHOICE(c, NID_sha256, NID_des_ede3_cbc, false);
}

static void choose_overrides_win(void **state)
{
    (void)state;
    client_choice c;
    client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.digest = EVP_sha1();
    cfg.cipher = EVP_des_ede3_cbc();
    cfg.method = CLIENT_METHOD_GET;
    choose("AES\nPOSTPKIOperation\nSHA-512\n", true, 10, &cfg, &c);
    ASSERT_CHOICE(c, NID_sha1, NID_des_ede3_cbc, false);
    cfg.digest = EVP_sha256();
    cfg.cipher = EVP_aes_256_cbc();
    cfg.method = CLIENT_METHOD_POST;
    choose("DES3\nSHA-1\n", true, 7, &cfg, &c);
    ASSERT_CHOICE(c, NID_sha256, NID_aes_256_cbc, true);
    assert_true(c.is_ndes);
}

/* The renewal rule, once: RenewalReq only where listed and not NDES. */
static void renewal_request_type(void **state)
{
    (void)state;
    client_server srv;
    memset(&srv, 0, sizeof srv);
    scep_caps_parse((const uint8_t *)"Renewal\nSHA-256\n", 16, &srv.caps);
    assert_int_equal(client_request_type(&srv, CLIENT_RENEWAL_AUTO), SCEP_MSG_RENEWALREQ);
    assert_int_equal(client_request_type(&srv, CLIENT_RENEWAL_PKCSREQ), SCEP_MSG_PKCSREQ);
    srv.iis_major = 10; /* NDES lists Renewal but means a PKCSReq signed by the old certificate */
    assert_int_equal(client_request_type(&srv, CLIENT_RENEWAL_AUTO), SCEP_MSG_PKCSREQ);
    assert_int_equal(client_request_type(&srv, CLIENT_RENEWAL_RENEWALREQ), SCEP_MSG_RENEWALREQ);
    scep_caps_clear(&srv.caps);
    memset(&srv.caps, 0, sizeof srv.caps);
    srv.iis_major = 0;
    assert_int_equal(client_request_type(&srv, CLIENT_RENEWAL_AUTO), SCEP_MSG_PKCSREQ);
}

/* First enrollment: self-signed signer over the new key, or the earlier one
 * when it still fits; renewal: the old pair signs; the CSR carries the subject. */
static void enrollment_prepare(void **state)
{
    fixture *f = *state;
    client_server srv;
    memset(&srv, 0, sizeof srv);
    util_error err = {0};
    client_transaction t;
    memset(&t, 0, sizeof t);
    t.new_key = f->new_key;
    EVP_PKEY_up_ref(t.new_key);
    t.choice.digest = EVP_sha256();
    client_enrollment e = {.now = time(NULL)};
    e.csr.common_name = "device-17";
    e.csr.organization = "Example";
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_true(csr_len > 0);
    assert_int_equal(t.request_type, SCEP_MSG_PKCSREQ);
    assert_true(t.signer_key == t.new_key);
    assert_true(crypto_cert_matches_key(t.signer_cert, t.new_key));
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(t.signer_cert), t.subject), 0);
    char tid[80];
    assert_int_equal(scep_transaction_id(f->new_key, tid, &err), 0);
    assert_string_equal(t.transaction_id, tid);
    OPENSSL_clear_free(csr, csr_len);
    /* resumed: the earlier signer is kept */
    X509 *earlier = t.signer_cert;
    X509_up_ref(earlier);
    e.earlier_signer = earlier;
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_ptr_equal(t.signer_cert, earlier);
    OPENSSL_clear_free(csr, csr_len);
    /* a different subject does not fit the earlier signer: a new one */
    e.csr.common_name = "device-18";
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_ptr_not_equal(t.signer_cert, earlier);
    OPENSSL_clear_free(csr, csr_len);
    X509_free(earlier);
    /* renewal on a server listing Renewal: RenewalReq signed by the old pair */
    scep_caps_parse((const uint8_t *)"Renewal\n", 8, &srv.caps);
    e.earlier_signer = NULL;
    e.renew_cert = f->signer;
    e.renew_key = f->signer_key;
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_int_equal(t.request_type, SCEP_MSG_RENEWALREQ);
    assert_ptr_equal(t.signer_cert, f->signer);
    assert_ptr_equal(t.signer_key, f->signer_key);
    assert_string_equal(t.transaction_id, tid); /* the new key's, not the signer's */
    OPENSSL_clear_free(csr, csr_len);
    client_transaction_clear(&t);
    client_server_clear(&srv);
}

/* An EC key signs its own request only where the server lists SCEPStandard
 * and is not IIS; otherwise a temporary RSA key signs, a given signer key
 * wins, and a resumed request keeps its earlier temporary signer. */
static void enrollment_ec_signer(void **state)
{
    (void)state;
    client_server srv;
    memset(&srv, 0, sizeof srv);
    util_error err = {0};
    client_transaction t;
    memset(&t, 0, sizeof t);
    t.new_key = h_key_ec("P-384");
    t.choice.digest = EVP_sha256();
    client_enrollment e = {.now = time(NULL)};
    e.csr.common_name = "ec-device";
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    char tid[80];
    assert_int_equal(scep_transaction_id(t.new_key, tid, &err), 0);

    /* no caps at all: nothing says the server can do key agreement */
    assert_true(client_signer_needs_rsa(&srv, t.new_key));
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_true(t.signer_key != t.new_key);
    assert_true(crypto_key_is_rsa(t.signer_key));
    assert_true(crypto_cert_matches_key(t.signer_cert, t.signer_key));
    assert_true(crypto_cert_is_self_signed(t.signer_cert));
    assert_string_equal(t.transaction_id, tid); /* the EC key's, not the signer's */
    const unsigned char *p = csr;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)csr_len);
    assert_non_null(req);
    assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), t.new_key), 1);
    assert_int_equal(X509_REQ_verify(req, t.new_key), 1); /* signed by the EC key itself */
    X509_REQ_free(req);
    OPENSSL_clear_free(csr, csr_len);

    /* resumed with the earlier temporary signer: the same key and certificate */
    EVP_PKEY *temp = t.signer_key;
    X509 *temp_cert = t.signer_cert;
    EVP_PKEY_up_ref(temp);
    X509_up_ref(temp_cert);
    e.signer_key = temp;
    e.earlier_signer = temp_cert;
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_ptr_equal(t.signer_key, temp);
    assert_ptr_equal(t.signer_cert, temp_cert);
    OPENSSL_clear_free(csr, csr_len);
    e.signer_key = NULL;
    e.earlier_signer = NULL;

    /* NDES (IIS) with SCEPStandard listed all the same: still RSA */
    srv.iis_major = 10;
    srv.caps_answered = true;
    scep_caps_parse((const uint8_t *)"SCEPStandard\n", 13, &srv.caps);
    assert_true(client_signer_needs_rsa(&srv, t.new_key));
    /* an RFC 8894 server that is not IIS: the EC key signs itself */
    srv.iis_major = 0;
    assert_false(client_signer_needs_rsa(&srv, t.new_key));
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_ptr_equal(t.signer_key, t.new_key);
    OPENSSL_clear_free(csr, csr_len);
    /* an explicit signer key wins */
    e.signer_key = temp;
    assert_int_equal(client_enrollment_prepare(&srv, &e, &t, &csr, &csr_len, &err), 0);
    assert_ptr_equal(t.signer_key, temp);
    assert_true(crypto_cert_matches_key(t.signer_cert, temp));
    OPENSSL_clear_free(csr, csr_len);
    /* an RSA new key never needs another signer */
    EVP_PKEY *rsa = h_key_rsa(2048);
    assert_false(client_signer_needs_rsa(&(client_server){0}, rsa));
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(temp);
    X509_free(temp_cert);
    client_transaction_clear(&t);
    client_server_clear(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_round_trip),
        cmocka_unit_test(state_overwrite_is_atomic),
        cmocka_unit_test(state_damaged_fields),
        cmocka_unit_test(state_not_json_or_missing),
        cmocka_unit_test(choose_strongest_advertised),
        cmocka_unit_test(choose_old_servers),
        cmocka_unit_test(choose_ndes),
        cmocka_unit_test(choose_overrides_win),
        cmocka_unit_test(renewal_request_type),
        cmocka_unit_test(enrollment_prepare),
        cmocka_unit_test(enrollment_ec_signer),
    };
    return cmocka_run_group_tests_name("client", tests, setup, teardown);
}
