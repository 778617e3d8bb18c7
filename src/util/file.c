#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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

int util_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, util_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    char *dircopy = strdup(path);
    int fd = -1, rc = -1;
    if (!tmp || !dircopy) {
        util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fchmod(fd, mode) != 0)
        goto fail_errno;
    const uint8_t *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_errno;
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0)
        goto fail_errno;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_errno;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail_errno;
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
    goto out;
fail_errno:
    util_error_set(err, UTIL_ERR_OUTPUT_FILE, "%s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    free(tmp);
    free(dircopy);
    return rc;
}
