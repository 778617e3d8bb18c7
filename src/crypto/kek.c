/*
 * Where the key-encryption key comes from (seal.h): a TPM, a systemd
 * credential, or a KEK file, tried in that order. None of them lives in the
 * state directory: a copy of the state directory alone opens no key.
 *
 * Both the credential and the file hold exactly 32 raw bytes; no hex or
 * base64 is accepted, so that one file has one meaning (create one with
 * `head -c 32 /dev/urandom`).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/kek_tpm.h"
#include "crypto/seal.h"

int crypto_kek_from_tpm(const crypto_kek_sources *src, crypto_kek **out, util_error *err)
{
    if (!src->tpm_dir || !src->tpm_dir[0])
        return 0;
    /* the TPM key and the KEK encrypted to it: neither gives the KEK
     * without that TPM (kek_tpm.h) */
    char key_path[600], sealed_path[600];
    uint8_t kek[KEK_TPM_KEK_LEN];
    snprintf(key_path, sizeof key_path, "%s/kek-tpm.key", src->tpm_dir);
    snprintf(sealed_path, sizeof sealed_path, "%s/kek-tpm.sealed", src->tpm_dir);
    if (kek_tpm_load_or_create(key_path, sealed_path, kek, err) != 0)
        return -1;
    int rc = crypto_kek_from_bytes(kek, sizeof kek, out, err);
    OPENSSL_cleanse(kek, sizeof kek);
    return rc == 0 ? 1 : -1;
}

/* Reads exactly CRYPTO_KEK_LEN bytes from fd, refusing more or fewer. */
static int read_kek(int fd, const char *path, crypto_kek **out, util_error *err)
{
    uint8_t buf[CRYPTO_KEK_LEN + 1];
    size_t have = 0;
    for (int i = 0; i < 64 && have < sizeof buf; i++) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            OPENSSL_cleanse(buf, sizeof buf);
            return util_error_set(err, UTIL_ERR_KEK_INVALID, "read %s: %s", path, strerror(errno));
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    int rc = have == CRYPTO_KEK_LEN
                 ? crypto_kek_from_bytes(buf, have, out, err)
                 : util_error_set(err, UTIL_ERR_KEK_INVALID, "%s holds %s%zu bytes, not exactly %d raw bytes",
                                  path, have > CRYPTO_KEK_LEN ? "more than " : "",
                                  have > CRYPTO_KEK_LEN ? (size_t)CRYPTO_KEK_LEN : have, CRYPTO_KEK_LEN);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int crypto_kek_from_credential(const crypto_kek_sources *src, crypto_kek **out, util_error *err)
{
    if (!src->credentials_dir || !*src->credentials_dir)
        return 0;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", src->credentials_dir, CRYPTO_KEK_CREDENTIAL) >=
        sizeof path)
        return util_error_set(err, UTIL_ERR_KEK_INVALID, "$CREDENTIALS_DIRECTORY is too long");
    /* systemd makes the credential a read-only file owned by the service */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return util_error_set(err, UTIL_ERR_KEK_INVALID, "open %s: %s", path, strerror(errno));
    int rc = read_kek(fd, path, out, err);
    close(fd);
    return rc == 0 ? 1 : -1;
}

/* The real path of path's directory, and of the state directory: a KEK file
 * at or below the state directory is refused, however it is spelt. */
static int check_outside_state(const char *path, const char *state_dir, util_error *err)
{
    if (!state_dir || !*state_dir)
        return 0;
    char dir[PATH_MAX], real_dir[PATH_MAX], real_state[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (!realpath(dir, real_dir))
        return util_error_set(err, UTIL_ERR_KEK_INVALID, "the directory of %s: %s", path, strerror(errno));
    if (!realpath(state_dir, real_state))
        return 0; /* no state directory yet: nothing can be inside it */
    size_t n = strlen(real_state);
    if (!strncmp(real_dir, real_state, n) && (real_dir[n] == '\0' || real_dir[n] == '/' || n == 1))
        return util_error_set(err, UTIL_ERR_KEK_INVALID,
                              "%s is inside the state directory %s: keep the key-encryption key elsewhere "
                              "(e.g. /etc/scepd/kek), so that a copy of the state directory opens no key",
                              path, state_dir);
    return 0;
}

static int create_kek_file(const char *path, util_error *err)
{
    uint8_t key[CRYPTO_KEK_LEN];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST
                   ? 0 /* created meanwhile: read it */
                   : util_error_set(err, UTIL_ERR_KEK_INVALID, "create %s: %s", path, strerror(errno));
    int rc = 0;
    size_t done = 0;
    if (RAND_bytes(key, sizeof key) != 1)
        rc = util_error_set(err, UTIL_ERR_INTERNAL, "generating a key-encryption key");
    for (int i = 0; rc == 0 && done < sizeof key && i < 64; i++) {
        ssize_t n = write(fd, key + done, sizeof key - done);
        if (n < 0 && errno != EINTR)
            rc = util_error_set(err, UTIL_ERR_KEK_INVALID, "write %s: %s", path, strerror(errno));
        else if (n > 0)
            done += (size_t)n;
    }
    if (rc == 0 && done != sizeof key)
        rc = util_error_set(err, UTIL_ERR_KEK_INVALID, "write %s: short write", path);
    if (rc == 0 && fsync(fd) != 0)
        rc = util_error_set(err, UTIL_ERR_KEK_INVALID, "fsync %s: %s", path, strerror(errno));
    OPENSSL_cleanse(key, sizeof key);
    close(fd);
    if (rc != 0)
        unlink(path);
    return rc;
}

int crypto_kek_from_file(const crypto_kek_sources *src, crypto_kek **out, bool *created, util_error *err)
{
    const char *path = src->file;
    struct stat sb;
    *created = false;
    if (!path || !*path)
        return 0;
    if (check_outside_state(path, src->state_dir, err) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (create_kek_file(path, err) != 0)
            return -1;
        *created = true;
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return util_error_set(err, UTIL_ERR_KEK_INVALID, "open %s: %s%s", path, strerror(errno),
                              errno == ELOOP ? " (a symbolic link is not accepted)" : "");
    int rc = -1;
    if (fstat(fd, &sb) != 0)
        util_error_set(err, UTIL_ERR_KEK_INVALID, "stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        util_error_set(err, UTIL_ERR_KEK_INVALID, "%s is not a regular file", path);
    else if (sb.st_uid != geteuid())
        util_error_set(err, UTIL_ERR_KEK_INVALID, "%s is owned by uid %u, not by scepd's user (uid %u)", path,
                       (unsigned)sb.st_uid, (unsigned)geteuid());
    else if (sb.st_mode & 077)
        util_error_set(err, UTIL_ERR_KEK_INVALID,
                       "%s has mode %04o: group or others may read it; chmod 0600 it", path,
                       (unsigned)(sb.st_mode & 07777));
    else
        rc = read_kek(fd, path, out, err);
    close(fd);
    return rc == 0 ? 1 : -1;
}

int crypto_kek_load(const crypto_kek_sources *src, crypto_kek **out, char *source, size_t source_size,
                    util_error *err)
{
    bool created = false;
    int rc = crypto_kek_from_tpm(src, out, err);
    if (rc != 0) {
        if (rc > 0)
            snprintf(source, source_size, "TPM");
        return rc > 0 ? 0 : -1;
    }
    rc = crypto_kek_from_credential(src, out, err);
    if (rc != 0) {
        if (rc > 0)
            snprintf(source, source_size, "systemd credential %s/%s", src->credentials_dir,
                     CRYPTO_KEK_CREDENTIAL);
        return rc > 0 ? 0 : -1;
    }
    rc = crypto_kek_from_file(src, out, &created, err);
    if (rc != 0) {
        if (rc > 0)
            snprintf(source, source_size, "file %s%s", src->file, created ? " (created)" : "");
        return rc > 0 ? 0 : -1;
    }
    bool dir = src->credentials_dir && *src->credentials_dir;
    return util_error_set(err, UTIL_ERR_KEK_MISSING,
                          "tried 1. a TPM: kek_tpm_dir is not set; 2. the systemd credential %s: %s%s%s; "
                          "3. --kek-file / kek_file: not set",
                          CRYPTO_KEK_CREDENTIAL, dir ? "not in " : "$CREDENTIALS_DIRECTORY is not set",
                          dir ? src->credentials_dir : "", dir ? "" : "");
}
