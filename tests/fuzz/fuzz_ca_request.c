/*
 * libFuzzer target for scepca's request handling: the bytes go through
 * ca_handle() as a POST PKIOperation body or, base64-encoded, as a GET
 * message, against each profile. No sockets; the CA lives in a temporary
 * directory made once.
 *
 * The first input byte selects the profile (bits 0-1) and GET or POST
 * (bit 2); the rest is the pkiMessage.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "util/codec.h"
#include "util/log.h"

static ca_config configs[4];
static ca_server *servers[4];
static char work_dir[64];

/* The temporary CA goes away with the process. */
static void teardown(void)
{
    static const char *const files[] = {"scepca.db", "scepca.db-wal", "scepca.db-shm"};
    char path[160];
    for (int i = 0; i < 4; i++)
        ca_server_free(servers[i]);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/ca/%s", work_dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/ca", work_dir);
    rmdir(path);
    rmdir(work_dir);
}

static void setup(void)
{
    static char dir_template[] = "/tmp/fuzz-scepca.XXXXXX";
    char *dir = mkdtemp(dir_template);
    char ca_dir[300];
    util_error err = {0};
    if (!dir)
        abort();
    snprintf(work_dir, sizeof work_dir, "%s", dir);
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", dir);
    util_log_setup("fuzz", UTIL_LOG_ERROR, false);
    ca_init_params p = {.dir = strdup(ca_dir), .ndes = true, .admin_password = "fuzz"};
    if (ca_admin_init(&p, time(NULL), NULL, 0, &err) != 0) {
        fprintf(stderr, "init: %s\n", err.detail);
        abort();
    }
    for (int i = 0; i < 4; i++) {
        configs[i].dir = p.dir;
        configs[i].profile = (ca_profile)i;
        configs[i].otp = true;
        if (ca_server_open(&configs[i], &servers[i], &err) != 0) {
            fprintf(stderr, "open: %s\n", err.detail);
            abort();
        }
    }
    atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!servers[0])
        setup();
    if (size < 1 || size > 256 * 1024)
        return 0;
    unsigned sel = data[0];
    ca_server *srv = servers[sel & 3];
    bool get = sel & 4;
    char *query = NULL;
    ca_http_request req = {.path = "/scep", .peer = "fuzz"};
    ca_http_response resp;
    if (get) {
        char *b64 = util_base64_encode(data + 1, size - 1);
        size_t b64_len = b64 ? strlen(b64) + 64 : 0;
        query = b64 ? malloc(b64_len) : NULL;
        if (query)
            snprintf(query, b64_len, "operation=PKIOperation&message=%s", b64);
        free(b64);
        if (!query)
            return 0;
        req.method = "GET";
        req.query = query;
        req.path = "/certsrv/mscep/mscep.dll";
    } else {
        req.method = "POST";
        req.query = "operation=PKIOperation";
        req.body = data + 1;
        req.body_len = size - 1;
    }
    ca_handle(srv, &req, time(NULL), &resp);
    if (resp.status < 100 || resp.status > 599)
        abort();
    ca_http_response_clear(&resp);
    free(query);
    return 0;
}
