/* The fake agent: see fake_agent.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_agent.h"

agent *fake_agent_create(void)
{
    return calloc(1, sizeof(agent));
}

void fake_agent_reset(agent *a)
{
    a->calls[0] = '\0';
    a->logins = a->session_checks = 0;
    a->last_user[0] = a->last_name[0] = a->last_password[0] = '\0';
    a->last_id = 0;
    a->last_limit = 0;
    a->last_role = AGENT_ROLE_NONE;
    json_decref(a->last_in);
    a->last_in = NULL;
    a->fail_call[0] = '\0';
    a->fail_code = UTIL_ERR_NONE;
    a->throttled = false;
}

void fake_agent_fail(agent *a, const char *call, util_err code, const char *detail)
{
    snprintf(a->fail_call, sizeof a->fail_call, "%s", call);
    snprintf(a->fail_detail, sizeof a->fail_detail, "%s", detail);
    a->fail_code = code;
}

/* Records the call; true when it is to fail (err is then set). */
static bool record(agent *a, const char *call, util_error *err)
{
    size_t used = strlen(a->calls);
    snprintf(a->calls + used, sizeof a->calls - used, "%s%s", used ? "," : "", call);
    if (strcmp(a->fail_call, call) != 0)
        return false;
    util_error_set(err, a->fail_code, "%s", a->fail_detail);
    return true;
}

static void record_in(agent *a, const json_t *in, const char *user)
{
    json_decref(a->last_in);
    a->last_in = json_deep_copy(in);
    if (user)
        snprintf(a->last_user, sizeof a->last_user, "%s", user);
}

static json_t *canned(const char *text)
{
    return json_loads(text, 0, NULL);
}

int agent_new(struct event_base *base, const agent_config *cfg, const char *admin_password,
              char **generated_password, agent **out, util_error *err)
{
    (void)base, (void)cfg, (void)admin_password, (void)err;
    if (generated_password)
        *generated_password = NULL;
    *out = fake_agent_create();
    return *out ? 0 : -1;
}

void agent_free(agent *a)
{
    if (!a)
        return;
    json_decref(a->last_in);
    free(a->held);
    free(a);
}

json_t *agent_status(agent *a)
{
    if (record(a, __func__, NULL))
        return NULL;
    return canned("{\"state\":\"idle\",\"version\":\"test\"}");
}

int agent_metrics(agent *a, util_buf *out)
{
    if (record(a, __func__, NULL))
        return -1;
    return util_buf_append_str(out, "# TYPE scepd_up gauge\nscepd_up 1\n");
}

json_t *agent_scep_settings_get(agent *a)
{
    if (record(a, __func__, NULL))
        return NULL;
    return canned("{\"url\":\"http://ca.example/scep\",\"port\":80,\"timeout_s\":30}");
}

int agent_scep_settings_put(agent *a, const json_t *in, const char *user, util_error *err)
{
    record_in(a, in, user);
    return record(a, __func__, err) ? -1 : 0;
}

int agent_request_create(agent *a, const json_t *in, const char *user, int64_t *id, util_error *err)
{
    record_in(a, in, user);
    if (record(a, __func__, err))
        return -1;
    *id = FAKE_REQUEST_ID;
    return 0;
}

int agent_request_cancel(agent *a, int64_t id, const char *user, util_error *err)
{
    a->last_id = id;
    record_in(a, NULL, user);
    return record(a, __func__, err) ? -1 : 0;
}

json_t *agent_request_get(agent *a, int64_t id, util_error *err)
{
    a->last_id = id;
    if (record(a, __func__, err))
        return NULL;
    return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "state", "pending", "key_name", "k2");
}

json_t *agent_request_list(agent *a, util_error *err)
{
    if (record(a, __func__, err))
        return NULL;
    return canned("[{\"id\":7,\"state\":\"pending\",\"key_name\":\"k2\"}]");
}

json_t *agent_auto_get(agent *a, util_error *err)
{
    if (record(a, __func__, err))
        return NULL;
    return canned("{\"enabled\":false,\"interval_days\":30}");
}

int agent_auto_put(agent *a, const json_t *in, const char *user, util_error *err)
{
    record_in(a, in, user);
    return record(a, __func__, err) ? -1 : 0;
}

int agent_restart(agent *a, const char *user, json_t **result, util_error *err)
{
    record_in(a, NULL, user);
    if (record(a, __func__, err))
        return -1;
    *result = canned("{\"registered\":[\"k2\"],\"deleted\":[\"k1\"]}");
    return 0;
}

json_t *agent_key_list(agent *a, util_error *err)
{
    if (record(a, __func__, err))
        return NULL;
    return canned("[{\"name\":\"tls\",\"state\":\"registered\"}]");
}

json_t *agent_key_get(agent *a, const char *name, util_error *err)
{
    snprintf(a->last_name, sizeof a->last_name, "%s", name);
    if (record(a, __func__, err))
        return NULL;
    return json_pack("{s:s,s:s}", "name", name, "state", "registered");
}

int agent_key_delete(agent *a, const char *name, const char *user, util_error *err)
{
    snprintf(a->last_name, sizeof a->last_name, "%s", name);
    record_in(a, NULL, user);
    return record(a, __func__, err) ? -1 : 0;
}

json_t *agent_key_verify(agent *a, const char *name, util_error *err)
{
    snprintf(a->last_name, sizeof a->last_name, "%s", name);
    if (record(a, __func__, err))
        return NULL;
    return canned("{\"valid\":true,\"checks\":[{\"name\":\"chain\",\"ok\":true,\"detail\":\"ok\"}]}");
}

json_t *agent_binding_list(agent *a, util_error *err)
{
    if (record(a, __func__, err))
        return NULL;
    return canned("[{\"function\":\"tls\",\"key_name\":\"tls\"}]");
}

int agent_binding_put(agent *a, const char *function, const json_t *in, const char *user, util_error *err)
{
    snprintf(a->last_name, sizeof a->last_name, "%s", function);
    record_in(a, in, user);
    return record(a, __func__, err) ? -1 : 0;
}

json_t *agent_ca_certs(agent *a, util_error *err)
{
    if (record(a, __func__, err))
        return NULL;
    return canned("[{\"pem\":\"-----BEGIN CERTIFICATE-----\\n\",\"role\":\"ca\",\"fetched_at\":1}]");
}

int agent_ca_certs_refresh(agent *a, const char *user, util_error *err)
{
    snprintf(a->last_user, sizeof a->last_user, "%s", user);
    return record(a, __func__, err) ? -1 : 0;
}

json_t *agent_audit(agent *a, int limit, util_error *err)
{
    a->last_limit = limit;
    if (record(a, __func__, err))
        return NULL;
    return canned("[{\"id\":1,\"at\":1,\"user\":\"admin\",\"action\":\"login\",\"detail\":\"\"}]");
}

int agent_login(agent *a, const char *user, const char *password, const char *client, agent_role *role,
                util_error *err)
{
    (void)client;
    a->logins++;
    if (a->throttled)
        return util_error_set(err, UTIL_ERR_THROTTLED, "user %s: locked", user);
    if (strcmp(user, "admin") == 0 && strcmp(password, "admin-password") == 0)
        *role = AGENT_ROLE_ADMIN;
    else if (strcmp(user, "viewer") == 0 && strcmp(password, "viewer-password") == 0)
        *role = AGENT_ROLE_VIEWER;
    else /* a real agent might say which: the API must not pass it on */
        return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "wrong password for %s", user);
    return 0;
}

struct agent_login_job {
    int rc;
    agent_role role;
    util_error err;
};

int agent_login_start(agent *a, const char *user, const char *password, const char *client, agent_role *role,
                      void (*done)(void *arg), void *arg, agent_login_job **job, util_error *err)
{
    if (a->login_busy)
        return util_error_set(err, UTIL_ERR_LOGIN_BUSY, "8 logins are being checked; retry in 1 s");
    if (!a->defer_logins || a->held)
        return agent_login(a, user, password, client, role, err);
    agent_login_job *j = calloc(1, sizeof *j);
    if (!j)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    j->rc = agent_login(a, user, password, client, &j->role, &j->err);
    a->held = j;
    a->held_done = done;
    a->held_arg = arg;
    *job = j;
    return AGENT_LOGIN_PENDING;
}

struct agent_crl_waiter {
    int unused;
};

int agent_key_verify_start(agent *a, const char *name, void (*done)(void *arg), void *arg,
                           agent_crl_waiter **wait)
{
    (void)name;
    if (!a->defer_verify || a->held_verify)
        return 0;
    if (!(a->held_verify = calloc(1, sizeof *a->held_verify)))
        return 0;
    a->verify_done = done;
    a->verify_arg = arg;
    *wait = a->held_verify;
    return AGENT_VERIFY_PENDING;
}

void agent_key_verify_cancel(agent *a, agent_crl_waiter *wait)
{
    if (!wait)
        return;
    a->verify_cancels++;
    if (a->held_verify == wait)
        a->held_verify = NULL;
    free(wait);
}

bool fake_agent_release_verify(agent *a)
{
    agent_crl_waiter *w = a->held_verify;
    if (!w)
        return false;
    a->held_verify = NULL;
    free(w); /* as the agent does: the waiter is gone before done runs */
    a->verify_done(a->verify_arg);
    return true;
}

bool fake_agent_release_login(agent *a)
{
    if (!a->held)
        return false;
    a->held = NULL;
    a->held_done(a->held_arg);
    return true;
}

int agent_login_finish(agent *a, agent_login_job *job, agent_role *role, util_error *err)
{
    (void)a;
    int rc = job->rc;
    if (rc == 0)
        *role = job->role;
    else
        *err = job->err;
    free(job);
    return rc;
}

void agent_login_cancel(agent *a, agent_login_job *job)
{
    if (!job)
        return;
    a->login_cancels++;
    if (a->held == job)
        a->held = NULL;
    free(job);
}

int agent_session_new(agent *a, const char *user, char **token, char **csrf, util_error *err)
{
    if (record(a, __func__, err))
        return -1;
    int n = a->sessions_made++ % FAKE_SESSIONS;
    fake_session *s = &a->sessions[n];
    *s = (fake_session){.active = true,
                        .role = strcmp(user, "admin") == 0 ? AGENT_ROLE_ADMIN : AGENT_ROLE_VIEWER};
    snprintf(s->token, sizeof s->token, "tok%d-0123456789abcdef", a->sessions_made);
    snprintf(s->csrf, sizeof s->csrf, "csrf%d-fedcba9876543210", a->sessions_made);
    snprintf(s->user, sizeof s->user, "%s", user);
    *token = strdup(s->token);
    *csrf = strdup(s->csrf);
    return 0;
}

int agent_session_check(agent *a, const char *token, char *user, agent_role *role, char *csrf,
                        util_error *err)
{
    a->session_checks++;
    for (size_t i = 0; i < FAKE_SESSIONS; i++) {
        fake_session *s = &a->sessions[i];
        if (s->active && strcmp(s->token, token) == 0) {
            snprintf(user, 64, "%s", s->user);
            snprintf(csrf, 65, "%s", s->csrf);
            *role = s->role;
            return 0;
        }
    }
    return util_error_set(err, UTIL_ERR_UNAUTHORIZED, "session expired");
}

void agent_session_end(agent *a, const char *token)
{
    (void)record(a, __func__, NULL);
    for (size_t i = 0; i < FAKE_SESSIONS; i++)
        if (strcmp(a->sessions[i].token, token) == 0)
            a->sessions[i].active = false;
}

int agent_user_put(agent *a, const char *name, const char *password, agent_role role, const char *by,
                   util_error *err)
{
    snprintf(a->last_name, sizeof a->last_name, "%s", name);
    snprintf(a->last_password, sizeof a->last_password, "%s", password);
    a->last_role = role;
    record_in(a, NULL, by);
    return record(a, __func__, err) ? -1 : 0;
}

const char *agent_role_name(agent_role role)
{
    switch (role) {
    case AGENT_ROLE_ADMIN: return "admin";
    case AGENT_ROLE_VIEWER: return "viewer";
    default: return "none";
    }
}
