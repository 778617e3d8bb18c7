/* The vault (src/vault) and the message protocol (src/ipc): sealed keys,
 * proxy keys doing every operation SCEP needs through the vault, and frames
 * that break their schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "ipc/ipc.h"
#include "scep/scep.h"
#include "vault/vault.h"

static const uint8_t PAYLOAD[] = "a CSR stands here";

static crypto_kek *kek_of(uint8_t byte)
{
    uint8_t bytes[CRYPTO_KEK_LEN];
    crypto_kek *kek = NULL;
    util_error err = {0};
    memset(bytes, byte, sizeof bytes);
    assert_int_equal(crypto_kek_from_bytes(bytes, sizeof bytes, &kek, &err), 0);
    return kek;
}

typedef struct fixture {
    crypto_kek *kek;
    vault *v;
    vault_link *l;
    int tls_calls;
    char tls_key_head[40];
} fixture;

static void on_tls(void *arg, const char *key_pem, const char *cert_pem, const char *chain_pem)
{
    fixture *f = arg;
    (void)cert_pem;
    (void)chain_pem;
    f->tls_calls++;
    snprintf(f->tls_key_head, sizeof f->tls_key_head, "%s", key_pem);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->kek = kek_of(0x42);
    vault_config cfg = {.kek = f->kek, .on_tls = on_tls, .tls_arg = f};
    f->v = vault_new(&cfg);
    f->l = vault_link_local(f->v);
    *state = f;
    return f->v && f->l ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    vault_link_free(f->l);
    vault_free(f->v);
    crypto_kek_free(f->kek);
    free(f);
    return 0;
}

static X509 *selfsigned(EVP_PKEY *key)
{
    X509_NAME *name = NULL;
    X509 *cert = NULL;
    util_error err = {0};
    assert_int_equal(crypto_name_parse("CN=vault test", &name, &err), 0);
    assert_int_equal(crypto_selfsigned_build(key, name, EVP_sha256(), time(NULL), 1, &cert, &err), 0);
    X509_NAME_free(name);
    /* the signature made in the vault verifies with the public key */
    assert_int_equal(X509_verify(cert, key), 1);
    return cert;
}

static void open_envelope(EVP_PKEY *key, X509 *cert, int padding)
{
    /* the sender has the certificate as it travelled: decoded from DER */
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    const unsigned char *p = der;
    X509 *sent = d2i_X509(NULL, &p, der_len);
    OPENSSL_free(der);
    assert_non_null(sent);
    BIO *in = BIO_new_mem_buf(PAYLOAD, sizeof PAYLOAD);
    CMS_ContentInfo *cms = CMS_encrypt(NULL, in, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL | CMS_KEY_PARAM);
    assert_non_null(cms);
    CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, sent, CMS_KEY_PARAM);
    assert_non_null(ri);
    if (padding) {
        EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, padding), 1);
    }
    assert_int_equal(CMS_final(cms, in, NULL, CMS_BINARY), 1);
    unsigned char *env = NULL;
    int n = i2d_CMS_ContentInfo(cms, &env);
    assert_true(n > 0);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    X509_free(sent);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    char used[64] = "";
    util_error err = {0};
    assert_int_equal(
        scep_envelope_open(env, (size_t)n, cert, key, &plain, &plain_len, used, sizeof used, &err), 0);
    assert_int_equal(plain_len, sizeof PAYLOAD);
    assert_memory_equal(plain, PAYLOAD, plain_len);
    OPENSSL_free(plain);
    OPENSSL_free(env);
}

static void check_key(fixture *f, const char *spec, bool rsa)
{
    char *sealed = NULL;
    EVP_PKEY *key = NULL;
    util_error err = {0};
    assert_int_equal(vault_generate(f->l, spec, "key|one", &sealed, &key, &err), 0);
    assert_true(crypto_is_sealed(sealed));
    assert_null(strstr(sealed, "PRIVATE"));
    /* the proxy has no private half here: it cannot be written out */
    char *pem = NULL;
    size_t len = 0;
    assert_int_not_equal(crypto_key_to_pem(key, &pem, &len, &err), 0);
    X509 *cert = selfsigned(key);
    assert_true(crypto_cert_matches_key(cert, key));
    /* a CSR signed in the vault */
    crypto_csr_params p = {.common_name = "device", .organization = "scepd", .digest = EVP_sha256()};
    X509_REQ *req = NULL;
    assert_int_equal(crypto_csr_build(&p, key, &req, &err), 0);
    assert_int_equal(X509_REQ_verify(req, key), 1);
    X509_REQ_free(req);
    /* envelopes: RSA PKCS#1 v1.5 and OAEP, EC key agreement */
    if (rsa) {
        open_envelope(key, cert, RSA_PKCS1_PADDING);
        open_envelope(key, cert, RSA_PKCS1_OAEP_PADDING);
    } else {
        open_envelope(key, cert, 0);
    }
    /* the same key again from its sealed text */
    EVP_PKEY *again = NULL;
    assert_int_equal(vault_key(f->l, sealed, "key|one", &again, &err), 0);
    assert_int_equal(EVP_PKEY_eq(key, again), 1);
    assert_int_equal(X509_verify(cert, again), 1);
    /* bound to its place: another aad does not open it */
    EVP_PKEY *wrong = NULL;
    assert_int_equal(vault_key(f->l, sealed, "key|two", &wrong, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_SEALED_INVALID);
    /* moved to another place, it opens there only */
    char *moved = NULL;
    assert_int_equal(vault_reseal(f->l, sealed, "key|one", "key|two", &moved, &err), 0);
    assert_int_equal(vault_key(f->l, moved, "key|two", &wrong, &err), 0);
    assert_int_equal(EVP_PKEY_eq(key, wrong), 1);
    EVP_PKEY_free(wrong);
    assert_int_equal(vault_key(f->l, moved, "key|one", &wrong, &err), -1);
    /* handed to the listener in the clear, and only there */
    char *cert_pem = NULL;
    assert_int_equal(crypto_cert_to_pem(cert, &cert_pem, &len, &err), 0);
    assert_int_equal(vault_tls(f->l, sealed, "key|one", cert_pem, NULL, &err), 0);
    assert_int_equal(f->tls_calls, 1);
    assert_non_null(strstr(f->tls_key_head, "PRIVATE KEY"));
    f->tls_calls = 0;
    free(cert_pem);
    free(moved);
    X509_free(cert);
    EVP_PKEY_free(again);
    EVP_PKEY_free(key);
    free(sealed);
}

static void test_rsa_key(void **state)
{
    check_key(*state, "rsa:2048", true);
}

static void test_ec_key(void **state)
{
    check_key(*state, "ec:P-256", false);
}

static void test_tampered_and_other_kek(void **state)
{
    fixture *f = *state;
    char *sealed = NULL;
    util_error err = {0};
    assert_int_equal(vault_generate(f->l, "ec:P-256", "key|x", &sealed, NULL, &err), 0);
    EVP_PKEY *key = NULL;
    /* one character of the ciphertext changed */
    char *bad = strdup(sealed);
    size_t at = strlen(bad) / 2;
    bad[at] = bad[at] == 'A' ? 'B' : 'A';
    assert_int_equal(vault_key(f->l, bad, "key|x", &key, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_SEALED_INVALID);
    /* truncated */
    bad[strlen(bad) - 8] = '\0';
    assert_int_equal(vault_key(f->l, bad, "key|x", &key, &err), -1);
    free(bad);
    /* a clear PEM is not a sealed key */
    assert_int_equal(vault_key(f->l, "-----BEGIN PRIVATE KEY-----\n", "key|x", &key, &err), -1);
    /* another KEK */
    crypto_kek *other_kek = kek_of(0x43);
    vault_config cfg = {.kek = other_kek};
    vault *other = vault_new(&cfg);
    vault_link *ol = vault_link_local(other);
    assert_int_equal(vault_key(ol, sealed, "key|x", &key, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_SEALED_INVALID);
    vault_link_free(ol);
    vault_free(other);
    crypto_kek_free(other_kek);
    free(sealed);
}

static void test_seal_clear_key(void **state)
{
    fixture *f = *state;
    EVP_PKEY *clear = NULL;
    char *pem = NULL, *sealed = NULL;
    size_t len = 0;
    util_error err = {0};
    crypto_key_spec spec = {CRYPTO_KEY_EC, 256};
    assert_int_equal(crypto_key_generate(&spec, &clear, &err), 0);
    assert_int_equal(crypto_key_to_pem(clear, &pem, &len, &err), 0);
    assert_int_equal(vault_seal_clear(f->l, pem, "key|old", &sealed, &err), 0);
    EVP_PKEY *proxy = NULL;
    assert_int_equal(vault_key(f->l, sealed, "key|old", &proxy, &err), 0);
    assert_int_equal(EVP_PKEY_eq(clear, proxy), 1);
    /* something that is not a key is not sealed */
    char *nothing = NULL;
    assert_int_equal(vault_seal_clear(f->l, "not a key", "key|old", &nothing, &err), -1);
    assert_null(nothing);
    EVP_PKEY_free(proxy);
    EVP_PKEY_free(clear);
    free(sealed);
    free(pem);
}

/* The remote link: a vault served by a child process over a socketpair. */
static void test_remote_vault(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        crypto_kek *kek = kek_of(0x44);
        vault_config cfg = {.kek = kek};
        vault *v = vault_new(&cfg);
        util_error err;
        vault_serve(v, sv[1], -1, &err);
        vault_free(v);
        crypto_kek_free(kek);
        _exit(0);
    }
    close(sv[1]);
    vault_link *l = vault_link_remote(sv[0]);
    char *sealed = NULL;
    EVP_PKEY *key = NULL;
    util_error err = {0};
    assert_int_equal(vault_generate(l, "rsa:2048", "key|remote", &sealed, &key, &err), 0);
    X509 *cert = selfsigned(key);
    open_envelope(key, cert, RSA_PKCS1_OAEP_PADDING);
    /* a request the vault refuses comes back as a catalogue error */
    EVP_PKEY *none = NULL;
    assert_int_equal(vault_key(l, sealed, "key|elsewhere", &none, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_SEALED_INVALID);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(sealed);
    /* the vault ends when its channel closes; a call then fails cleanly */
    close(sv[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(vault_key(l, "x", "y", &none, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_VAULT);
    vault_link_free(l);
}

static uint8_t *frame_of(ipc_builder *b, size_t *len)
{
    uint8_t *f = ipc_end(b, len);
    assert_non_null(f);
    return f;
}

static void test_ipc_schema(void **state)
{
    (void)state;
    ipc_builder b;
    ipc_msg m;
    util_error err = {0};
    size_t len = 0;
    /* a good request */
    ipc_begin(&b, IPC_N_REQUEST, 7);
    ipc_add_str(&b, IPC_T_METHOD, "GET");
    ipc_add_str(&b, IPC_T_PATH, "/api/v1/status");
    ipc_add_str(&b, IPC_T_REMOTE, "127.0.0.1:5");
    ipc_add_u32(&b, IPC_T_TLS, 0);
    ipc_add_str(&b, IPC_T_NAME, "Host");
    ipc_add_str(&b, IPC_T_VALUE, "localhost");
    uint8_t *f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), 0);
    assert_int_equal(m.id, 7);
    char *path = ipc_str(&m, IPC_T_PATH);
    assert_string_equal(path, "/api/v1/status");
    free(path);
    ipc_msg_clear(&m);
    /* a required field missing */
    ipc_begin(&b, IPC_N_REQUEST, 1);
    ipc_add_str(&b, IPC_T_METHOD, "GET");
    f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
    /* a field the type does not carry */
    ipc_begin(&b, IPC_V_PUBLIC, 1);
    ipc_add_str(&b, IPC_T_SEALED, "s");
    ipc_add_str(&b, IPC_T_AAD, "a");
    ipc_add_str(&b, IPC_T_URL, "http://x/");
    f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
    /* a field twice, a number of the wrong width */
    ipc_begin(&b, IPC_V_PUBLIC, 1);
    ipc_add_str(&b, IPC_T_SEALED, "s");
    ipc_add_str(&b, IPC_T_SEALED, "s");
    ipc_add_str(&b, IPC_T_AAD, "a");
    f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
    ipc_begin(&b, IPC_ERROR, 1);
    ipc_add(&b, IPC_T_CODE, "\0\0", 2);
    ipc_add_str(&b, IPC_T_DETAIL, "d");
    f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
    /* a header name without its value */
    ipc_begin(&b, IPC_A_RESPONSE, 1);
    ipc_add_u32(&b, IPC_T_STATUS, 200);
    ipc_add_str(&b, IPC_T_NAME, "X");
    f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
    /* lengths that do not add up, an unknown type */
    ipc_begin(&b, IPC_N_CLOSED, 1);
    f = frame_of(&b, &len);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, f, len);
    longer[len] = 0;
    ipc_frame_free(f, len);
    assert_int_equal(ipc_parse(longer, len + 1, &m, &err), -1);
    ipc_begin(&b, (ipc_type)200, 1);
    f = frame_of(&b, &len);
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
    /* a field longer than the frame */
    ipc_begin(&b, IPC_N_READY, 1);
    ipc_add_str(&b, IPC_T_BOUND, "127.0.0.1:1");
    f = frame_of(&b, &len);
    f[IPC_HEADER_LEN + 4] = 0x7f;
    assert_int_equal(ipc_parse(f, len, &m, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rsa_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ec_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_and_other_kek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_clear_key, setup, teardown),
        cmocka_unit_test(test_remote_vault),
        cmocka_unit_test(test_ipc_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
