/*
 * libFuzzer target for the REST API's request bodies: the input is sent as
 * the JSON body of every POST and PUT route through api_handle(), with the
 * fake agent (tests/unit/fake_agent.c) behind it. As the admin (Basic) for
 * the routes that need one, without credentials for POST /api/v1/session.
 * No sockets. Seeds: tests/fuzz/corpus/api_body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "fake_agent.h"
#include "util/log.h"

/* base64("admin:admin-password") */
#define ADMIN "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ="

static const char *const admin_headers[] = {"Authorization", ADMIN, "Content-Type", "application/json", NULL};
static const char *const public_headers[] = {"Content-Type", "application/json", NULL};

static const struct {
    const char *method, *path;
} routes[] = {
    {"POST", "/api/v1/session"},          {"PUT", "/api/v1/users/operator"},
    {"PUT", "/api/v1/scep/settings"},     {"POST", "/api/v1/scep/requests"},
    {"PUT", "/api/v1/scep/auto-request"}, {"POST", "/api/v1/restart"},
    {"POST", "/api/v1/keys/tls/verify"},  {"PUT", "/api/v1/bindings/tls"},
};

static const char *lookup(void *arg, const char *name)
{
    for (const char *const *kv = arg; kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agent *a = fake_agent_create();
    api *server = a ? api_new(a, NULL) : NULL;
    if (!server)
        abort();
    util_log_setup("fuzz", UTIL_LOG_ERROR, false);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        bool public = strcmp(routes[i].path, "/api/v1/session") == 0;
        api_request r = {
            .method = routes[i].method,
            .path = routes[i].path,
            .header = lookup,
            .header_arg = (void *)(public ? public_headers : admin_headers),
            .body = data,
            .body_len = size,
        };
        api_response resp;
        int status = api_handle(server, &r, &resp);
        /* every answer is a status the API documents, with a JSON body or none */
        if (status < 200 || status > 599 || (resp.body_len && !resp.body) || (status >= 400 && !resp.body))
            abort();
        api_response_clear(&resp);
    }
    api_free(server);
    agent_free(a);
    return 0;
}
