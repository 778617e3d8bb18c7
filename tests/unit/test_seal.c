/* src/crypto/seal.c and kek.c: sealing and opening under a KEK (round trip,
 * wrong associated data, wrong KEK, every altered and truncated form), the
 * text form's parser, and the KEK's sources (TPM seam, systemd credential,
 * KEK file with its refusals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tempdir.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "util/codec.h"

#define AAD "scepd-key-v1|keys|Web1|7"
#define SECRET                                                                                               \
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE "       \
    "KEY-----\n"

typedef struct fixture {
    char *dir;
    crypto_kek *kek, *other;
} fixture;

static crypto_kek *random_kek(void)
{
    uint8_t bytes[CRYPTO_KEK_LEN];
    crypto_kek *kek = NULL;
    util_error err;
    assert_int_equal(RAND_bytes(bytes, sizeof bytes), 1);
    assert_int_equal(crypto_kek_from_bytes(bytes, sizeof bytes, &kek, &err), 0);
    return kek;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = h_tempdir();
    f->kek = random_kek();
    f->other = random_kek();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    h_rmtree(f->dir);
    free(f->dir);
    crypto_kek_free(f->kek);
    crypto_kek_free(f->other);
    free(f);
    return 0;
}

static char *seal(const crypto_kek *kek, const char *aad, const char *plain)
{
    char *out = NULL;
    util_error err;
    if (crypto_seal_text(kek, aad, (const uint8_t *)plain, strlen(plain), &out, &err) != 0)
        fail_msg("crypto_seal_text: %s", err.detail);
    return out;
}

/* 0 with the plaintext compared, or the error's code. */
static util_err open_code(const crypto_kek *kek, const char *aad, const char *sealed, const char *want)
{
    char *plain = NULL;
    size_t len = 0;
    util_error err = {0};
    if (crypto_unseal_text(kek, aad, sealed, &plain, &len, &err) != 0) {
        assert_null(plain);
        return err.code;
    }
    if (want) {
        assert_int_equal(len, strlen(want));
        assert_string_equal(plain, want);
    }
    crypto_secret_free(plain, len);
    return UTIL_ERR_NONE;
}

/* ---- sealing ---- */

static void seal_round_trip(void **state)
{
    fixture *f = *state;
    char *a = seal(f->kek, AAD, SECRET), *b = seal(f->kek, AAD, SECRET);
    assert_true(crypto_is_sealed(a));
    assert_int_equal(strncmp(a, CRYPTO_SEALED_PREFIX, strlen(CRYPTO_SEALED_PREFIX)), 0);
    assert_null(strstr(a, "PRIVATE KEY"));
    /* a fresh nonce each time: the same secret never seals the same way */
    assert_string_not_equal(a, b);
    assert_int_equal(open_code(f->kek, AAD, a, SECRET), UTIL_ERR_NONE);
    assert_int_equal(open_code(f->kek, AAD, b, SECRET), UTIL_ERR_NONE);
    crypto_sealed parsed;
    util_error err;
    assert_int_equal(crypto_sealed_parse(a, strlen(a), &parsed, &err), 0);
    assert_int_equal(parsed.ciphertext_len, strlen(SECRET));
    crypto_sealed_clear(&parsed);
    free(a);
    free(b);
    /* an empty secret is sealed and opened too */
    a = seal(f->kek, AAD, "");
    assert_int_equal(open_code(f->kek, AAD, a, ""), UTIL_ERR_NONE);
    free(a);
}

static void seal_wrong_aad_and_kek(void **state)
{
    fixture *f = *state;
    char *s = seal(f->kek, AAD, SECRET);
    static const char *const places[] = {
        "scepd-key-v1|keys|Web1|8",             /* another request */
        "scepd-key-v1|keys|Web2|7",             /* another name */
        "scepd-key-v1|requests|7|key_pem|Web1", /* another table */
        "",
        "scepd-key-v1|keys|Web1|7 ",
    };
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++)
        assert_string_equal(util_err_code(open_code(f->kek, places[i], s, NULL)), "sealed_invalid");
    assert_string_equal(util_err_code(open_code(f->other, AAD, s, NULL)), "sealed_invalid");
    assert_int_equal(open_code(f->kek, AAD, s, SECRET), UTIL_ERR_NONE);
    free(s);
}

/* Every byte of nonce, ciphertext and tag flipped in turn: none opens. */
static void seal_tampered(void **state)
{
    fixture *f = *state;
    char *s = seal(f->kek, AAD, SECRET);
    const char *b64 = s + strlen(CRYPTO_SEALED_PREFIX);
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(util_base64_decode(b64, strlen(b64), &raw, &raw_len), 0);
    assert_int_equal(raw_len, CRYPTO_SEAL_NONCE_LEN + strlen(SECRET) + CRYPTO_SEAL_TAG_LEN);
    for (size_t i = 0; i < raw_len; i++) {
        raw[i] ^= 0x01;
        char *text = util_base64_encode(raw, raw_len), *altered = NULL;
        assert_true(asprintf(&altered, "%s%s", CRYPTO_SEALED_PREFIX, text) > 0);
        assert_string_equal(util_err_code(open_code(f->kek, AAD, altered, NULL)), "sealed_invalid");
        free(text);
        free(altered);
        raw[i] ^= 0x01;
    }
    /* a ciphertext one byte longer (tag moved) */
    uint8_t *longer = malloc(raw_len + 1);
    memcpy(longer, raw, raw_len);
    longer[raw_len] = 0;
    char *text = util_base64_encode(longer, raw_len + 1), *altered = NULL;
    assert_true(asprintf(&altered, "%s%s", CRYPTO_SEALED_PREFIX, text) > 0);
    assert_string_equal(util_err_code(open_code(f->kek, AAD, altered, NULL)), "sealed_invalid");
    free(text);
    free(altered);
    free(longer);
    free(raw);
    free(s);
}

/* Every prefix of a sealed text is refused, none crashes. */
static void seal_truncated(void **state)
{
    fixture *f = *state;
    char *s = seal(f->kek, AAD, SECRET);
    size_t n = strlen(s);
    for (size_t len = 0; len < n; len++) {
        char *cut = strndup(s, len);
        assert_string_equal(util_err_code(open_code(f->kek, AAD, cut, NULL)), "sealed_invalid");
        free(cut);
    }
    assert_int_equal(open_code(f->kek, AAD, s, SECRET), UTIL_ERR_NONE);
    free(s);
}

static void sealed_parse_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "-----BEGIN PRIVATE KEY-----",
        "scepd-sealed:v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "scepd-sealed:v1:",
        "scepd-sealed:v1:AAAA",                                 /* 3 bytes */
        "scepd-sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 27 bytes: shorter than nonce + tag */
        "scepd-sealed:v1:not base64 at all!!",
        "scepd-sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        crypto_sealed s;
        util_error err = {0};
        assert_int_equal(crypto_sealed_parse(bad[i], strlen(bad[i]), &s, &err), -1);
        assert_string_equal(util_err_code(err.code), "sealed_invalid");
        assert_null(s.ciphertext);
    }
    /* 28 bytes: nonce and tag, an empty ciphertext */
    const char *empty = "scepd-sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    crypto_sealed s;
    util_error err;
    assert_int_equal(crypto_sealed_parse(empty, strlen(empty), &s, &err), 0);
    assert_int_equal(s.ciphertext_len, 0);
    crypto_sealed_clear(&s);
    assert_false(crypto_is_sealed("scepd-sealed:v2:"));
    assert_false(crypto_is_sealed(NULL));
}

static void kek_from_bytes_length(void **state)
{
    (void)state;
    uint8_t bytes[CRYPTO_KEK_LEN + 1] = {0};
    crypto_kek *kek = NULL;
    util_error err;
    assert_int_equal(crypto_kek_from_bytes(bytes, CRYPTO_KEK_LEN - 1, &kek, &err), -1);
    assert_string_equal(util_err_code(err.code), "kek_invalid");
    assert_int_equal(crypto_kek_from_bytes(bytes, CRYPTO_KEK_LEN + 1, &kek, &err), -1);
    assert_null(kek);
    crypto_kek_free(NULL);
}

static void aad_forms(void **state)
{
    (void)state;
    char aad[160];
    crypto_seal_aad_key(aad, sizeof aad, "Web1", 7);
    assert_string_equal(aad, "scepd-key-v1|keys|Web1|7");
    crypto_seal_aad_key(aad, sizeof aad, "DefaultTLS", 0);
    assert_string_equal(aad, "scepd-key-v1|keys|DefaultTLS|0");
    crypto_seal_aad_request(aad, sizeof aad, 12, "signer_key_pem", "Web1");
    assert_string_equal(aad, "scepd-key-v1|requests|12|signer_key_pem|Web1");
}

/* ---- the KEK's sources ---- */

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(data, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The KEK that path holds, as sealing proves it: what one seals, the other opens. */
static bool same_kek(const crypto_kek *a, const crypto_kek *b)
{
    char *s = seal(a, AAD, SECRET);
    bool same = open_code(b, AAD, s, SECRET) == UTIL_ERR_NONE;
    free(s);
    return same;
}

static void kek_file_created_and_read(void **state)
{
    fixture *f = *state;
    char path[256], statedir[256];
    snprintf(path, sizeof path, "%s/kek", f->dir);
    snprintf(statedir, sizeof statedir, "%s/state", f->dir);
    assert_int_equal(mkdir(statedir, 0700), 0);
    crypto_kek_sources src = {NULL, path, statedir};
    crypto_kek *first = NULL, *second = NULL;
    bool created = false;
    util_error err;
    assert_int_equal(crypto_kek_from_file(&src, &first, &created, &err), 1);
    assert_true(created);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(sb.st_size, CRYPTO_KEK_LEN);
    assert_int_equal(crypto_kek_from_file(&src, &second, &created, &err), 1);
    assert_false(created);
    assert_true(same_kek(first, second));
    assert_false(same_kek(first, f->kek));
    crypto_kek_free(first);
    crypto_kek_free(second);
    /* no file configured: not this source */
    crypto_kek_sources none = {NULL, "", statedir};
    assert_int_equal(crypto_kek_from_file(&none, &first, &created, &err), 0);
}

static void kek_file_refusals(void **state)
{
    fixture *f = *state;
    char statedir[256], path[300], target[300];
    snprintf(statedir, sizeof statedir, "%s/state", f->dir);
    assert_int_equal(mkdir(statedir, 0700), 0);
    uint8_t key[CRYPTO_KEK_LEN + 1] = {1};
    crypto_kek *kek = NULL;
    bool created;
    util_error err;
    struct {
        const char *name;
        size_t len;
        mode_t mode;
        const char *detail;
    } cases[] = {
        {"short", CRYPTO_KEK_LEN - 1, 0600, "31 bytes"},
        {"long", CRYPTO_KEK_LEN + 1, 0600, "more than 32 bytes"},
        {"group", CRYPTO_KEK_LEN, 0640, "mode 0640"},
        {"world", CRYPTO_KEK_LEN, 0604, "mode 0604"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, cases[i].name);
        write_file(path, key, cases[i].len, cases[i].mode);
        crypto_kek_sources src = {NULL, path, statedir};
        assert_int_equal(crypto_kek_from_file(&src, &kek, &created, &err), -1);
        assert_null(kek);
        assert_string_equal(util_err_code(err.code), "kek_invalid");
        if (!strstr(err.detail, cases[i].detail))
            fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].name, err.detail, cases[i].detail);
    }
    /* a symbolic link to a good file */
    snprintf(target, sizeof target, "%s/good", f->dir);
    write_file(target, key, CRYPTO_KEK_LEN, 0600);
    snprintf(path, sizeof path, "%s/link", f->dir);
    assert_int_equal(symlink(target, path), 0);
    crypto_kek_sources link = {NULL, path, statedir};
    assert_int_equal(crypto_kek_from_file(&link, &kek, &created, &err), -1);
    assert_non_null(strstr(err.detail, "symbolic link"));
    /* a directory */
    crypto_kek_sources dir = {NULL, statedir, f->dir};
    assert_int_equal(crypto_kek_from_file(&dir, &kek, &created, &err), -1);
    /* inside the state directory, however it is spelt; nothing is created there */
    const char *inside[] = {"%s/kek", "%s/sub/kek", "%s/../state/kek", "%s/./kek"};
    snprintf(path, sizeof path, "%s/sub", statedir);
    assert_int_equal(mkdir(path, 0700), 0);
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
        snprintf(path, sizeof path, inside[i], statedir);
        crypto_kek_sources src = {NULL, path, statedir};
        assert_int_equal(crypto_kek_from_file(&src, &kek, &created, &err), -1);
        assert_non_null(strstr(err.detail, "inside the state directory"));
        assert_int_not_equal(access(path, F_OK), 0);
    }
    /* another owner's file (root can make one) */
    if (geteuid() == 0) {
        snprintf(path, sizeof path, "%s/other-owner", f->dir);
        write_file(path, key, CRYPTO_KEK_LEN, 0600);
        assert_int_equal(chown(path, 65534, 65534), 0);
        crypto_kek_sources src = {NULL, path, statedir};
        assert_int_equal(crypto_kek_from_file(&src, &kek, &created, &err), -1);
        assert_non_null(strstr(err.detail, "owned by uid 65534"));
    }
    /* a missing directory: nothing to create the file in */
    snprintf(path, sizeof path, "%s/missing/kek", f->dir);
    crypto_kek_sources missing = {NULL, path, statedir};
    assert_int_equal(crypto_kek_from_file(&missing, &kek, &created, &err), -1);
    assert_string_equal(util_err_code(err.code), "kek_invalid");
}

static void kek_sources_in_order(void **state)
{
    fixture *f = *state;
    char creds[256], cred[300], file[256], statedir[256], source[600];
    snprintf(creds, sizeof creds, "%s/creds", f->dir);
    snprintf(cred, sizeof cred, "%s/%s", creds, CRYPTO_KEK_CREDENTIAL);
    snprintf(file, sizeof file, "%s/kek", f->dir);
    snprintf(statedir, sizeof statedir, "%s/state", f->dir);
    assert_int_equal(mkdir(creds, 0700), 0);
    assert_int_equal(mkdir(statedir, 0700), 0);
    uint8_t a[CRYPTO_KEK_LEN], b[CRYPTO_KEK_LEN];
    assert_int_equal(RAND_bytes(a, sizeof a), 1);
    assert_int_equal(RAND_bytes(b, sizeof b), 1);
    write_file(cred, a, sizeof a, 0400);
    write_file(file, b, sizeof b, 0600);
    crypto_kek *want_a = NULL, *want_b = NULL, *got = NULL;
    util_error err;
    assert_int_equal(crypto_kek_from_bytes(a, sizeof a, &want_a, &err), 0);
    assert_int_equal(crypto_kek_from_bytes(b, sizeof b, &want_b, &err), 0);

    /* the TPM seam is not configured: it answers "not this source" */
    crypto_kek_sources all = {creds, file, statedir};
    assert_int_equal(crypto_kek_from_tpm(&all, &got, &err), 0);
    assert_null(got);
    /* the credential comes before the file */
    assert_int_equal(crypto_kek_load(&all, &got, source, sizeof source, &err), 0);
    assert_true(same_kek(got, want_a));
    assert_non_null(strstr(source, "systemd credential"));
    assert_null(strstr(source, "(created)"));
    crypto_kek_free(got);
    got = NULL;
    /* a credentials directory without scepd-kek: the file */
    unlink(cred);
    assert_int_equal(crypto_kek_load(&all, &got, source, sizeof source, &err), 0);
    assert_true(same_kek(got, want_b));
    assert_non_null(strstr(source, file));
    crypto_kek_free(got);
    got = NULL;
    /* a broken credential is an error, not a fall-through */
    write_file(cred, a, 16, 0400);
    assert_int_equal(crypto_kek_load(&all, &got, source, sizeof source, &err), -1);
    assert_string_equal(util_err_code(err.code), "kek_invalid");
    /* none at all: one error that names the three sources */
    crypto_kek_sources none = {NULL, NULL, statedir};
    assert_int_equal(crypto_kek_load(&none, &got, source, sizeof source, &err), -1);
    assert_string_equal(util_err_code(err.code), "kek_missing");
    assert_non_null(strstr(err.detail, "TPM"));
    assert_non_null(strstr(err.detail, CRYPTO_KEK_CREDENTIAL));
    assert_non_null(strstr(err.detail, "--kek-file"));
    assert_non_null(strstr(util_err_remedy(UTIL_ERR_KEK_MISSING), "CREDENTIALS_DIRECTORY"));
    assert_non_null(strstr(util_err_remedy(UTIL_ERR_KEK_MISSING), "--kek-file"));
    assert_non_null(strstr(util_err_remedy(UTIL_ERR_KEK_MISSING), "TPM"));
    crypto_kek_free(want_a);
    crypto_kek_free(want_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(seal_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(seal_wrong_aad_and_kek, setup, teardown),
        cmocka_unit_test_setup_teardown(seal_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(seal_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(sealed_parse_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(kek_from_bytes_length, setup, teardown),
        cmocka_unit_test_setup_teardown(aad_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(kek_file_created_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(kek_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(kek_sources_in_order, setup, teardown),
    };
    return cmocka_run_group_tests_name("seal", tests, NULL, NULL);
}
