/* src/util: buffers, files, hex and the error catalogue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/codec.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/file.h"
#include "util/throttle.h"
#include "util/suggest.h"

#include "tempdir.h"

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_plain(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- util_buf ---- */

static void buf_hard_max(void **state)
{
    (void)state;
    util_buf b;
    util_buf_init(&b, 10, false);
    assert_int_equal(util_buf_append(&b, "abcdef", 6), 0);
    assert_int_equal(util_buf_append(&b, "ghijk", 5), -1); /* 11 > 10 */
    assert_int_equal(b.len, 6);                            /* unchanged on failure */
    assert_int_equal(util_buf_append(&b, "ghij", 4), 0);   /* exactly the maximum */
    assert_int_equal(b.len, 10);
    assert_int_equal(util_buf_append(&b, "", 0), 0);
    assert_int_equal(util_buf_append(&b, "x", 1), -1);
    assert_int_equal(util_buf_append_str(&b, "y"), -1);
    assert_true(b.cap <= 11);
    assert_memory_equal(b.data, "abcdefghij", 11); /* NUL-terminated */
    /* a length that would wrap size_t arithmetic */
    assert_int_equal(util_buf_append(&b, "z", SIZE_MAX), -1);
    size_t len = 0;
    uint8_t *d = util_buf_take(&b, &len);
    assert_int_equal(len, 10);
    assert_string_equal((char *)d, "abcdefghij");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(d);
    util_buf_free(&b);
}

static void buf_grows_in_steps(void **state)
{
    (void)state;
    util_buf b;
    util_buf_init(&b, 100000, false);
    char chunk[97];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)('a' + i % 26);
    size_t total = 0;
    while (util_buf_append(&b, chunk, sizeof chunk) == 0)
        total += sizeof chunk;
    assert_int_equal(total, 100000 / 97 * 97);
    assert_int_equal(b.len, total);
    assert_true(b.cap <= 100001);
    for (size_t i = 0; i < total; i++)
        if (b.data[i] != (uint8_t)chunk[i % sizeof chunk])
            fail_msg("byte %zu differs", i);
    assert_int_equal(b.data[total], 0);
    util_buf_free(&b);
    assert_null(b.data);
    util_buf_free(&b); /* twice is harmless */
}

static void buf_secret_and_empty_take(void **state)
{
    (void)state;
    util_buf b;
    util_buf_init(&b, 64, true);
    assert_true(b.secret);
    assert_int_equal(b.max, 64);
    size_t len = 99;
    uint8_t *d = util_buf_take(&b, &len); /* nothing appended: an empty string */
    assert_non_null(d);
    assert_int_equal(len, 0);
    assert_int_equal(d[0], 0);
    free(d);
    assert_int_equal(util_buf_append_str(&b, "s3cret-password"), 0);
    assert_int_equal(util_buf_append_str(&b, "-and-more"), 0);
    assert_string_equal((char *)b.data, "s3cret-password-and-more");
    assert_true(b.secret); /* kept across growth */
    util_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

/* ---- util_file ---- */

static void file_read_and_cap(void **state)
{
    (void)state;
    char *dir = h_tempdir();
    char *path = join(dir, "data.bin");
    char content[100];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)i; /* includes NUL bytes */
    write_plain(path, content, sizeof content);
    uint8_t *data = NULL;
    size_t len = 0;
    util_error err = {0};
    assert_int_equal(util_file_read(path, 100, &data, &len, &err), 0);
    assert_int_equal(len, 100);
    assert_memory_equal(data, content, 100);
    assert_int_equal(data[100], 0); /* NUL-terminated */
    free(data);
    data = NULL;
    assert_int_equal(util_file_read(path, 99, &data, &len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_FILE);
    assert_non_null(strstr(err.detail, "larger than 99 bytes"));
    assert_null(data); /* *out written only on success */
    char *missing = join(dir, "missing");
    assert_int_equal(util_file_read(missing, 100, &data, &len, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_FILE);
    assert_non_null(strstr(err.detail, "missing"));
    /* an empty file reads as an empty string */
    char *empty = join(dir, "empty");
    write_plain(empty, "", 0);
    assert_int_equal(util_file_read(empty, 10, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_int_equal(data[0], 0);
    free(data);
    h_rmtree(dir);
    free(empty);
    free(missing);
    free(path);
    free(dir);
}

static void file_write_atomic_mode_and_replace(void **state)
{
    (void)state;
    char *dir = h_tempdir();
    char *path = join(dir, "secret.pem");
    util_error err = {0};
    mode_t old_umask = umask(022);
    assert_int_equal(util_file_write_atomic(path, "first", 5, 0600, &err), 0);
    struct stat st1, st2;
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st1.st_mode & 0777, 0600);
    assert_int_equal(st1.st_size, 5);
    /* a reader that has the old file open keeps seeing the old content:
     * the new file replaces the old by rename, not by truncation */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(util_file_write_atomic(path, "second!", 7, 0600, &err), 0);
    char buf[16] = {0};
    assert_int_equal(read(fd, buf, sizeof buf), 5);
    assert_string_equal(buf, "first");
    close(fd);
    assert_int_equal(stat(path, &st2), 0);
    assert_true(st1.st_ino != st2.st_ino);
    assert_int_equal(st2.st_mode & 0777, 0600);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(util_file_read(path, 100, &data, &len, &err), 0);
    assert_int_equal(len, 7);
    assert_string_equal((char *)data, "second!");
    free(data);
    /* the mode is applied as given, whatever the umask */
    umask(077);
    char *pub = join(dir, "public.pem");
    assert_int_equal(util_file_write_atomic(pub, "x", 1, 0644, &err), 0);
    assert_int_equal(stat(pub, &st1), 0);
    assert_int_equal(st1.st_mode & 0777, 0644);
    umask(old_umask);
    /* no temporary files are left behind */
    assert_int_equal(count_entries(dir), 2);
    /* a missing directory fails with output_file and creates nothing */
    char *bad = join(dir, "nodir/file");
    assert_int_equal(util_file_write_atomic(bad, "x", 1, 0600, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_OUTPUT_FILE);
    assert_non_null(strstr(err.detail, "nodir/file"));
    assert_int_equal(count_entries(dir), 2);
    h_rmtree(dir);
    free(bad);
    free(pub);
    free(path);
    free(dir);
}

static void file_write_atomic_empty(void **state)
{
    (void)state;
    char *dir = h_tempdir();
    char *path = join(dir, "empty");
    util_error err = {0};
    assert_int_equal(util_file_write_atomic(path, "", 0, 0600, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    h_rmtree(dir);
    free(path);
    free(dir);
}

static char *slurp(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    util_error err = {0};
    assert_int_equal(util_file_read(path, 100, &data, &len, &err), 0);
    return (char *)data;
}

/* A key and its certificate replace the old pair together: when one of the
 * set cannot be written, none of the old files changes and no temporary
 * file stays; files in two directories both land. */
static void files_write_atomic_set(void **state)
{
    (void)state;
    char *dir = h_tempdir();
    char *sub = join(dir, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *key = join(dir, "key.pem"), *cert = join(dir, "cert.pem"), *chain = join(sub, "chain.pem");
    char *bad = join(dir, "nodir/cert.pem");
    util_error err = {0};
    util_file_out set[] = {{key, "key1", 4, 0600}, {cert, "cert1", 5, 0644}, {chain, "chain1", 6, 0644}};
    assert_int_equal(util_files_write_atomic(set, 3, &err), 0);
    char *k = slurp(key), *c = slurp(cert), *ch = slurp(chain);
    assert_string_equal(k, "key1");
    assert_string_equal(c, "cert1");
    assert_string_equal(ch, "chain1");
    free(k), free(c), free(ch);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cert, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* the second file cannot be written: the first keeps its old content */
    util_file_out broken[] = {{key, "key2", 4, 0600}, {bad, "cert2", 5, 0644}};
    assert_int_equal(util_files_write_atomic(broken, 2, &err), -1);
    assert_int_equal(err.code, UTIL_ERR_OUTPUT_FILE);
    assert_non_null(strstr(err.detail, "nodir/cert.pem"));
    k = slurp(key);
    assert_string_equal(k, "key1");
    free(k);
    assert_int_equal(count_entries(dir), 3); /* key.pem, cert.pem, sub */
    assert_int_equal(count_entries(sub), 1);
    /* too many files at once is refused before anything is written */
    util_file_out many[UTIL_FILES_MAX + 1];
    for (size_t i = 0; i < UTIL_FILES_MAX + 1; i++)
        many[i] = (util_file_out){key, "x", 1, 0600};
    assert_int_equal(util_files_write_atomic(many, UTIL_FILES_MAX + 1, &err), -1);
    k = slurp(key);
    assert_string_equal(k, "key1");
    free(k);
    h_rmtree(dir);
    free(bad);
    free(chain);
    free(cert);
    free(key);
    free(sub);
    free(dir);
}

/* ---- hex ---- */

static void hex_round_trip(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0x01, 0xab, 0xCD, 0xff, 0x7e};
    char out[2 * sizeof bytes + 1];
    util_hex(bytes, sizeof bytes, out, 0);
    assert_string_equal(out, "0001abcdff7e");
    util_hex(bytes, sizeof bytes, out, 1);
    assert_string_equal(out, "0001ABCDFF7E");
    util_hex(bytes, 0, out, 1);
    assert_string_equal(out, "");
    uint8_t back[16];
    assert_int_equal(util_unhex("0001ABCDFF7E", back, sizeof back), 6);
    assert_memory_equal(back, bytes, 6);
    assert_int_equal(util_unhex("00:01:ab:cd:FF:7e", back, sizeof back), 6);
    assert_memory_equal(back, bytes, 6);
    assert_int_equal(util_unhex("00 01 ab", back, sizeof back), 3);
    assert_int_equal(util_unhex("", back, sizeof back), 0);
}

static void hex_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t back[4];
    assert_int_equal(util_unhex("abc", back, sizeof back), -1); /* odd */
    assert_int_equal(util_unhex("zz", back, sizeof back), -1);  /* not hex */
    assert_int_equal(util_unhex("0g", back, sizeof back), -1);
    assert_int_equal(util_unhex("0011223344", back, sizeof back), -1); /* 5 > 4 */
    assert_int_equal(util_unhex("00112233", back, sizeof back), 4);    /* exactly 4 */
    assert_int_equal(util_unhex("a:b", back, sizeof back), -1);        /* split digit */
}

/* ---- error catalogue ---- */

static void catalogue_entries_complete(void **state)
{
    (void)state;
    assert_true(UTIL_ERR_COUNT > 40);
    for (int i = 1; i < UTIL_ERR_COUNT; i++) {
        util_err e = (util_err)i;
        const char *code = util_err_code(e), *msg = util_err_message(e), *rem = util_err_remedy(e);
        assert_non_null(code);
        assert_non_null(msg);
        assert_non_null(rem);
        if (!*code || !*msg || !*rem)
            fail_msg("error %d (%s) has an empty code, message or remedy", i, code);
        for (const char *c = code; *c; c++)
            if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_'))
                fail_msg("code \"%s\" is not snake_case", code);
        if (msg[strlen(msg) - 1] != '.' || rem[strlen(rem) - 1] != '.')
            fail_msg("%s: message and remedy are sentences ending with a full stop", code);
        if (!strcmp(msg, rem))
            fail_msg("%s: the remedy repeats the message", code);
        int cls = util_err_exit_class(e);
        if (cls < 1 || cls > 5)
            fail_msg("%s: exit class %d is not 1..5", code, cls);
    }
    /* spot checks of the classes documented in errors.def */
    assert_int_equal(util_err_exit_class(UTIL_ERR_USAGE), 2);
    assert_int_equal(util_err_exit_class(UTIL_ERR_NET_TIMEOUT), 4);
    assert_int_equal(util_err_exit_class(UTIL_ERR_RESPONSE_SIGNATURE), 5);
    assert_int_equal(util_err_exit_class(UTIL_ERR_FAIL_BAD_REQUEST), 1);
    assert_int_equal(util_err_exit_class(UTIL_ERR_PENDING), 3);
    assert_int_equal(util_err_exit_class(UTIL_ERR_NONE), 0);
}

static void catalogue_codes_unique_and_round_trip(void **state)
{
    (void)state;
    for (int i = 1; i < UTIL_ERR_COUNT; i++) {
        for (int j = i + 1; j < UTIL_ERR_COUNT; j++)
            if (!strcmp(util_err_code((util_err)i), util_err_code((util_err)j)))
                fail_msg("code \"%s\" is used twice", util_err_code((util_err)i));
        assert_int_equal(util_err_from_code(util_err_code((util_err)i)), i);
    }
    assert_string_equal(util_err_code(UTIL_ERR_RESPONSE_NONCE), "response_nonce");
    assert_int_equal(util_err_from_code("response_nonce"), UTIL_ERR_RESPONSE_NONCE);
    assert_int_equal(util_err_from_code("no_such_code"), UTIL_ERR_NONE);
    assert_int_equal(util_err_from_code(""), UTIL_ERR_NONE);
    assert_int_equal(util_err_from_code(NULL), UTIL_ERR_NONE);
    assert_int_equal(util_err_from_code("ok"), UTIL_ERR_NONE); /* not a failure code */
    /* out of range values fall back to "internal" rather than reading past the table */
    assert_string_equal(util_err_code(UTIL_ERR_COUNT), "internal");
    assert_string_equal(util_err_code((util_err)-1), "internal");
}

static void error_set_and_ossl(void **state)
{
    (void)state;
    util_error err = {0};
    assert_int_equal(util_error_set(&err, UTIL_ERR_INPUT_FILE, "%s: %d", "file", 42), -1);
    assert_int_equal(err.code, UTIL_ERR_INPUT_FILE);
    assert_string_equal(err.detail, "file: 42");
    assert_int_equal(util_error_set(NULL, UTIL_ERR_INPUT_FILE, "x"), -1);
    /* the detail is bounded */
    char longer[2000];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    util_error_set(&err, UTIL_ERR_USAGE, "%s", longer);
    assert_int_equal(strlen(err.detail), sizeof err.detail - 1);
    /* util_error_ossl appends the OpenSSL reason and empties the queue */
    assert_null(EVP_get_digestbyname("no-such-digest"));
    EVP_MD *md = EVP_MD_fetch(NULL, "no-such-digest", NULL);
    assert_null(md);
    assert_true(ERR_peek_error() != 0);
    assert_int_equal(util_error_ossl(&err, UTIL_ERR_UNSUPPORTED_ALGORITHM, "fetching"), -1);
    assert_int_equal(err.code, UTIL_ERR_UNSUPPORTED_ALGORITHM);
    assert_true(strncmp(err.detail, "fetching: ", 10) == 0);
    assert_true(strlen(err.detail) > 10);
    assert_int_equal(ERR_peek_error(), 0);
    util_error_clear(&err);
    assert_int_equal(err.code, UTIL_ERR_NONE);
    assert_string_equal(err.detail, "");
    util_error_clear(NULL);
}

static void errors_md_matches_catalogue(void **state)
{
    (void)state;
    const char *root = getenv("SCEPD_SOURCE_ROOT");
    if (!root || !*root)
        fail_msg("SCEPD_SOURCE_ROOT is not set (run through meson test or tests/run)");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/errors.md", root);
    uint8_t *doc = NULL;
    size_t doc_len = 0;
    util_error err = {0};
    if (util_file_read(path, 1u << 20, &doc, &doc_len, &err) != 0)
        fail_msg("%s; generate it with: scepctl errors --markdown > docs/errors.md", err.detail);
    char *gen = NULL;
    size_t gen_len = 0;
    FILE *f = open_memstream(&gen, &gen_len);
    assert_non_null(f);
    util_errors_markdown(f);
    assert_int_equal(fclose(f), 0);
    /* every code appears as a table row */
    for (int i = 1; i < UTIL_ERR_COUNT; i++) {
        char row[128];
        snprintf(row, sizeof row, "| `%s` | %d |", util_err_code((util_err)i),
                 util_err_exit_class((util_err)i));
        assert_non_null(strstr(gen, row));
    }
    if (doc_len != gen_len || memcmp(doc, gen, gen_len) != 0) {
        size_t i = 0;
        while (i < doc_len && i < gen_len && doc[i] == (uint8_t)gen[i])
            i++;
        fail_msg("docs/errors.md differs from `scepctl errors --markdown` at byte %zu; "
                 "regenerate it",
                 i);
    }
    free(gen);
    free(doc);
}

/* RFC 4648 section 10 vectors, both ways. */
static void base64_vectors(void **state)
{
    (void)state;
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *b64 = util_base64_encode((const uint8_t *)plain[i], strlen(plain[i]));
        assert_non_null(b64);
        assert_string_equal(b64, coded[i]);
        free(b64);
        uint8_t *raw = NULL;
        size_t len = 99;
        assert_int_equal(util_base64_decode(coded[i], strlen(coded[i]), &raw, &len), 0);
        assert_int_equal(len, strlen(plain[i]));
        assert_string_equal((char *)raw, plain[i]); /* NUL-terminated */
        free(raw);
    }
}

/* Strict: no white space, no missing or misplaced padding, no foreign letters. */
static void base64_rejects_loose_input(void **state)
{
    (void)state;
    static const char *bad[] = {"Zg",    "Zg=",  "Zg=a",  "Z===", "====",     "Zm9v\n",
                                " Zm9v", "Zm-_", "Zm9v=", "Zm=v", "Zg==Zg==", "Zm9\0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *raw = (uint8_t *)"untouched";
        size_t len = 7;
        size_t n = i == sizeof bad / sizeof bad[0] - 1 ? 4 : strlen(bad[i]);
        assert_int_equal(util_base64_decode(bad[i], n, &raw, &len), -1);
        assert_string_equal((char *)raw, "untouched");
        assert_int_equal(len, 7);
    }
    /* every byte value survives a round trip */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char *b64 = util_base64_encode(all, sizeof all);
    assert_non_null(b64);
    uint8_t *raw = NULL;
    size_t len = 0;
    assert_int_equal(util_base64_decode(b64, strlen(b64), &raw, &len), 0);
    assert_int_equal(len, sizeof all);
    assert_memory_equal(raw, all, sizeof all);
    free(raw);
    free(b64);
}

/* Control characters, DEL, C1 (also UTF-8-encoded) and bytes that are not
 * UTF-8 are escaped; printable UTF-8 passes unchanged. */
static void escape_controls(void **state)
{
    (void)state;
    char out[128];
    const char esc[] = "a\x1b[31mred\x07\r\n\tb\\c\x7f";
    assert_string_equal(util_escape(esc, strlen(esc), out, sizeof out),
                        "a\\x1B[31mred\\x07\\r\\n\\tb\\\\c\\x7F");
    assert_true(util_escape_needed(esc, strlen(esc)));
    const char utf8[] = "Gr\xc3\xbc\xc3\x9f"
                        "e \xe2\x82\xac \xf0\x9f\x94\x91";
    assert_string_equal(util_escape(utf8, strlen(utf8), out, sizeof out), utf8);
    assert_false(util_escape_needed(utf8, strlen(utf8)));
    /* U+009B (CSI in C1) encoded in UTF-8, a raw 0x9B, an overlong '/', a surrogate */
    const char c1[] = "x\xc2\x9b"
                      "2Jy\x9bz\xc0\xafw\xed\xa0\x80";
    assert_string_equal(util_escape(c1, strlen(c1), out, sizeof out),
                        "x\\u009B2Jy\\x9Bz\\xC0\\xAFw\\xED\\xA0\\x80");
    /* an embedded NUL is escaped, not a terminator */
    assert_string_equal(util_escape("a\0b", 3, out, sizeof out), "a\\x00b");
    /* truncation keeps whole characters and says so */
    char small[8];
    assert_string_equal(util_escape("abcdefghij", 10, small, sizeof small), "abcd...");
    assert_string_equal(util_escape("\x1b\x1b\x1b", 3, small, sizeof small), "\\x1B...");
    char *dup = util_escape_dup("\x1b]0;title\x07");
    assert_non_null(dup);
    assert_string_equal(dup, "\\x1B]0;title\\x07");
    free(dup);
    assert_string_equal(util_escape(NULL, 5, out, sizeof out), "");
}

/* The terminal stream keeps lines, tabs and backslashes, escapes the rest. */
static void escape_stream_keeps_lines(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *raw = open_memstream(&buf, &len);
    assert_non_null(raw);
    FILE *f = util_escape_stream(raw);
    assert_non_null(f);
    fprintf(f, "subject: CN=a\x1b]0;owned\x07"
               "b\tc\\d\n");
    fprintf(f, "caps: \xc2\x9b"
               "31m\xff\n");
    fclose(f);
    fclose(raw);
    assert_string_equal(buf, "subject: CN=a\\x1B]0;owned\\x07b\tc\\d\ncaps: \\u009B31m\\xFF\n");
    free(buf);
}

/* Three free failures, then 1, 2, 4 ... s up to the maximum; keys are
 * independent; a success or a quiet period forgets. */
static void throttle_grows_and_resets(void **state)
{
    (void)state;
    util_throttle_config cfg = {3, 0, 8, 100, 4};
    util_throttle *t = util_throttle_new(&cfg);
    assert_non_null(t);
    int64_t now = 1000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 0);
        util_throttle_failure(t, "u\n10.0.0.1", now);
    }
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 0);
    util_throttle_failure(t, "u\n10.0.0.1", now);
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 1);
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.2", now), 0); /* another address */
    now += 1;
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 0);
    util_throttle_failure(t, "u\n10.0.0.1", now);
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 2);
    for (int i = 0; i < 5; i++)
        util_throttle_failure(t, "u\n10.0.0.1", now);
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 8); /* the maximum */
    assert_int_equal(util_throttle_failures(t, "u\n10.0.0.1", now), 10);
    util_throttle_success(t, "u\n10.0.0.1");
    assert_int_equal(util_throttle_wait(t, "u\n10.0.0.1", now), 0);
    assert_int_equal(util_throttle_failures(t, "u\n10.0.0.1", now), 0);
    for (int i = 0; i < 6; i++)
        util_throttle_failure(t, "v", now);
    assert_int_equal(util_throttle_wait(t, "v", now), 4);
    assert_int_equal(util_throttle_wait(t, "v", now + 100), 0); /* forgotten */
    assert_int_equal(util_throttle_failures(t, "v", now + 100), 0);
    /* a stream of fresh keys replaces itself, not a throttled key */
    for (int i = 0; i < 6; i++)
        util_throttle_failure(t, "victim-of-nothing", now);
    for (int i = 0; i < 50; i++) {
        char key[32];
        snprintf(key, sizeof key, "fresh-%d", i);
        util_throttle_failure(t, key, now);
    }
    assert_int_equal(util_throttle_failures(t, "victim-of-nothing", now), 6);
    util_throttle_free(t);
    util_throttle_free(NULL);
    /* a first wait other than 1 s */
    util_throttle_config slow = {1, 30, 3600, 3600, 8};
    t = util_throttle_new(&slow);
    util_throttle_failure(t, "a", 100);
    assert_int_equal(util_throttle_wait(t, "a", 100), 0);
    util_throttle_failure(t, "a", 100);
    assert_int_equal(util_throttle_wait(t, "a", 100), 30);
    util_throttle_failure(t, "a", 100);
    assert_int_equal(util_throttle_wait(t, "a", 110), 50);
    util_throttle_free(t);
}

static void edit_distance_values(void **state)
{
    (void)state;
    assert_int_equal(util_edit_distance("", ""), 0);
    assert_int_equal(util_edit_distance("", "abc"), 3);
    assert_int_equal(util_edit_distance("abc", ""), 3);
    assert_int_equal(util_edit_distance("getcaps", "getcaps"), 0);
    assert_int_equal(util_edit_distance("getcap", "getcaps"), 1);  /* insertion */
    assert_int_equal(util_edit_distance("enrolll", "enroll"), 1);  /* deletion */
    assert_int_equal(util_edit_distance("getcsps", "getcaps"), 1); /* substitution */
    assert_int_equal(util_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(util_edit_distance("flaw", "lawn"), 2);
    assert_int_equal(util_edit_distance("sitting", "kitten"), 3); /* symmetric */
    char longer[UTIL_SUGGEST_MAX_WORD + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(util_edit_distance(longer, "a"), (size_t)-1);
    longer[UTIL_SUGGEST_MAX_WORD] = '\0';
    assert_int_equal(util_edit_distance(longer, ""), UTIL_SUGGEST_MAX_WORD);
}

static void suggest_nearest(void **state)
{
    (void)state;
    static const char *const commands[] = {"getcaps", "getca",  "enroll",    "renew",   "poll",
                                           "getcert", "getcrl", "getnextca", "inspect", "errors"};
    size_t n = sizeof commands / sizeof commands[0];
    assert_string_equal(util_suggest("getcap", commands, n), "getcaps"); /* tie with getca: first wins */
    assert_string_equal(util_suggest("getcsps", commands, n), "getcaps");
    assert_string_equal(util_suggest("enrol", commands, n), "enroll");
    assert_string_equal(util_suggest("inspct", commands, n), "inspect");
    assert_string_equal(util_suggest("getcrt", commands, n), "getcert");
    assert_string_equal(util_suggest("renew", commands, n), "renew");
    assert_string_equal(util_suggest("pol", commands, n), "poll");
    /* a unique abbreviation wins over a nearer word; an ambiguous one does not */
    assert_string_equal(util_suggest("getn", commands, n), "getnextca");
    assert_string_equal(util_suggest("getc", commands, n), "getca");
    static const char *const scepd_options[] = {"config", "state", "listen", "listen-tls", "debug", "syslog"};
    assert_string_equal(util_suggest("deb", scepd_options, 6), "debug");
    assert_string_equal(util_suggest("sta", scepd_options, 6), "state");
    assert_string_equal(util_suggest("list", scepd_options, 6), "listen");
    assert_null(util_suggest("frobnicate", commands, n));
    assert_null(util_suggest("xy", commands, n)); /* short words: at most one edit */
    assert_null(util_suggest("", commands, n));
    assert_null(util_suggest(NULL, commands, n));
    assert_null(util_suggest("getcaps", commands, 0));
    static const char *const keys[] = {"rsa:1024", "rsa:2048", "rsa:3072",
                                       "rsa:4096", "ec:P-256", "ec:P-384"};
    assert_string_equal(util_suggest("rsa2048", keys, 6), "rsa:2048");
    assert_string_equal(util_suggest("ec:p256", keys, 6), "ec:P-256");
    static const char *const with_gap[] = {NULL, "listen"};
    assert_string_equal(util_suggest("lsten", with_gap, 2), "listen");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_hard_max),
        cmocka_unit_test(buf_grows_in_steps),
        cmocka_unit_test(buf_secret_and_empty_take),
        cmocka_unit_test(file_read_and_cap),
        cmocka_unit_test(file_write_atomic_mode_and_replace),
        cmocka_unit_test(file_write_atomic_empty),
        cmocka_unit_test(files_write_atomic_set),
        cmocka_unit_test(hex_round_trip),
        cmocka_unit_test(hex_rejects_bad_input),
        cmocka_unit_test(base64_vectors),
        cmocka_unit_test(base64_rejects_loose_input),
        cmocka_unit_test(catalogue_entries_complete),
        cmocka_unit_test(catalogue_codes_unique_and_round_trip),
        cmocka_unit_test(error_set_and_ossl),
        cmocka_unit_test(errors_md_matches_catalogue),
        cmocka_unit_test(escape_controls),
        cmocka_unit_test(escape_stream_keeps_lines),
        cmocka_unit_test(throttle_grows_and_resets),
        cmocka_unit_test(edit_distance_values),
        cmocka_unit_test(suggest_nearest),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
