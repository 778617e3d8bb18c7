#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"

int util_file_read(const char *path, size_t max, uint8_t **out, size_t *len, util_error *err)
{
    int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return util_error_set(err, UTIL_ERR_INPUT_FILE, "%s: %s", path, strerror(errno));
    util_buf b;
    util_buf_init(&b, max, true);
    uint8_t chunk[8192];
    int rc = -1;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            util_error_set(err, UTIL_ERR_INPUT_FILE, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if (util_buf_append(&b, chunk, (size_t)n) != 0) {
            util_error_set(err, UTIL_ERR_INPUT_FILE, "%s: larger than %zu bytes", path, max);
            goto out;
        }
    }
    *out = util_buf_take(&b, len);
    rc = 0;
out:
    util_buf_free(&b);
    close(fd);
    return rc;
}

/* Writes data to a new temporary file next to f->path and starts its
 * writeback to disk; *tmp names it and *fd stays open for the fsync (the
 * caller frees and closes them; on failure nothing is left). */
static int write_temp(const util_file_out *f, char **tmp, int *fd, util_error *err)
{
    size_t plen = strlen(f->path);
    char *name = malloc(plen + 16);
    if (!name)
        return util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: out of memory", f->path);
    snprintf(name, plen + 16, "%s.tmpXXXXXX", f->path);
    int d = mkstemp(name);
    if (d < 0) {
        util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", f->path, strerror(errno));
        free(name);
        return -1;
    }
    const uint8_t *p = f->data;
    size_t left = f->len;
    int ok = fchmod(d, f->mode) == 0;
    while (ok && left) {
        ssize_t n = write(d, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n >= 0;
        if (ok) {
            p += n;
            left -= (size_t)n;
        }
    }
    if (!ok) {
        util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", f->path, strerror(errno));
        close(d);
        unlink(name);
        free(name);
        return -1;
    }
    /* the set's files go to disk at the same time; fsync waits for each */
    (void)sync_file_range(d, 0, 0, SYNC_FILE_RANGE_WRITE);
    *tmp = name;
    *fd = d;
    return 0;
}

/* Flushes the directory that holds path (its new entry), unless an earlier
 * file of the set was in the same one. */
static void sync_dir(const util_file_out *files, size_t i)
{
    char *dir = strdup(files[i].path);
    if (!dir)
        return;
    char *d = dirname(dir);
    for (size_t j = 0; j < i; j++) {
        char *other = strdup(files[j].path);
        bool same = other && strcmp(dirname(other), d) == 0;
        free(other);
        if (same) {
            free(dir);
            return;
        }
    }
    int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int util_files_write_atomic(const util_file_out *files, size_t n, util_error *err)
{
    char *tmp[UTIL_FILES_MAX] = {0};
    int fd[UTIL_FILES_MAX];
    int rc = -1;
    if (n > UTIL_FILES_MAX)
        return util_error_set(err, UTIL_ERR_INTERNAL, "more than %d files in one write", UTIL_FILES_MAX);
    for (size_t i = 0; i < n; i++)
        fd[i] = -1;
    size_t written = 0;
    while (written < n && write_temp(&files[written], &tmp[written], &fd[written], err) == 0)
        written++;
    if (written < n)
        goto out;
    for (size_t i = 0; i < n; i++) {
        int ok = fsync(fd[i]) == 0, saved = errno;
        if (close(fd[i]) != 0 && ok)
            ok = 0, saved = errno;
        fd[i] = -1;
        if (!ok) {
            util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", files[i].path, strerror(saved));
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (rename(tmp[i], files[i].path) != 0) {
            util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", files[i].path, strerror(errno));
            goto out;
        }
        free(tmp[i]);
        tmp[i] = NULL;
    }
    for (size_t i = 0; i < n; i++)
        sync_dir(files, i);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        if (fd[i] >= 0)
            close(fd[i]);
        if (tmp[i]) {
            unlink(tmp[i]);
            free(tmp[i]);
        }
    }
    return rc;
}

int util_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, util_error *err)
{
    util_file_out f = {.path = path, .data = data, .len = len, .mode = mode};
    return util_files_write_atomic(&f, 1, err);
}
