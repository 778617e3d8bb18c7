/* Login sessions for the Remote UI (cookie plus CSRF token) and user
 * management. The token and the CSRF token are secrets: wiped after use. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

#define PASSWORD_MIN 8 /* new passwords: the agent's rule */
#define PASSWORD_MAX 128

static void secret_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static int read_login(const json_t *body, const char **user, const char **password, util_error *err)
{
    static const char *const fields[] = {"user", "password", NULL};
    if (api_body_fields(body, fields, err) != 0 ||
        api_body_string(body, "user", 1, API_USER_MAX, API_CHARSET_USER, user, err) != 0 ||
        api_body_string(body, "password", 1, API_PASSWORD_MAX, API_CHARSET_TEXT, password, err) != 0)
        return -1;
    return 0;
}

void api_session_create(api_ctx *c)
{
    util_error err = {0};
    const char *user = NULL, *password = NULL;
    char *token = NULL, *csrf = NULL;
    if (read_login(c->body, &user, &password, &err) != 0 || api_login(c, user, password, &err) != 0 ||
        agent_session_new(c->api->agent, c->auth.user, &token, &csrf, &err) != 0)
        goto fail;
    if (!token || !csrf || !api_token_valid(token) || strlen(csrf) == 0 || strlen(csrf) > API_CSRF_MAX) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "session: the agent made a malformed token");
        goto fail;
    }
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s,s:s}", "user", c->auth.user, "role", agent_role_name(c->auth.role),
                             "csrf_token", csrf));
    if (c->resp->status == 200 && api_session_cookie(c, token) == 0)
        goto out;
    util_error_set(&err, UTIL_ERR_INTERNAL, "out of memory");
fail:
    if (token)
        agent_session_end(c->api->agent, token);
    api_reply_error(c, &err);
out:
    secret_free(token);
    secret_free(csrf);
}

/* With Basic authentication there is no session: csrf_token is null. */
void api_session_get(api_ctx *c)
{
    const char *csrf = c->auth.by_cookie ? c->auth.csrf : NULL;
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s,s:s?}", "user", c->auth.user, "role", agent_role_name(c->auth.role),
                             "csrf_token", csrf));
}

void api_session_delete(api_ctx *c)
{
    if (c->auth.by_cookie)
        agent_session_end(c->api->agent, c->auth.token);
    api_reply_empty(c, 204);
    if (api_session_cookie_clear(c) != 0)
        api_reply_errorf(c, UTIL_ERR_INTERNAL, "out of memory");
}

static int read_user(const json_t *body, const char **password, agent_role *role, util_error *err)
{
    static const char *const fields[] = {"password", "role", NULL};
    const char *name = NULL;
    if (api_body_fields(body, fields, err) != 0 ||
        api_body_string(body, "password", PASSWORD_MIN, PASSWORD_MAX, API_CHARSET_TEXT, password, err) != 0 ||
        api_body_string(body, "role", 1, 16, API_CHARSET_NAME, &name, err) != 0)
        return -1;
    if (strcmp(name, "admin") == 0)
        *role = AGENT_ROLE_ADMIN;
    else if (strcmp(name, "viewer") == 0)
        *role = AGENT_ROLE_VIEWER;
    else
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "role: give \"admin\" or \"viewer\"");
    return 0;
}

void api_user_put(api_ctx *c)
{
    util_error err = {0};
    const char *password = NULL;
    agent_role role = AGENT_ROLE_NONE;
    if (read_user(c->body, &password, &role, &err) != 0 ||
        agent_user_put(c->api->agent, c->name, password, role, c->auth.user, &err) != 0) {
        api_reply_error(c, &err);
        return;
    }
    api_reply_json(c, 200, json_pack("{s:s,s:s}", "name", c->name, "role", agent_role_name(role)));
}
