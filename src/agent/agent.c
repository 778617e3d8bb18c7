/* The agent: lifetime, settings, status and metrics. */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent/agent_internal.h"
#include "util/file.h"
#include "util/log.h"

int64_t agent_now(const agent *a)
{
    return a->cfg.clock ? a->cfg.clock(a->cfg.hook_arg) : (int64_t)time(NULL);
}

uint32_t agent_random(const agent *a, uint32_t bound)
{
    return a->cfg.random ? a->cfg.random(a->cfg.hook_arg, bound) : crypto_random_below(bound);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    agent_tick(arg);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    agent_reap_runs(arg);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int status;
    pid_t pid;
    for (int i = 0; i < 64 && (pid = waitpid(-1, &status, WNOHANG)) > 0; i++)
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            log_warn("a binding command (pid %d) exited with status %d", (int)pid, WEXITSTATUS(status));
}

/* ---- credentials inside the SCEP and proxy URLs: sealed at rest ---- */

static json_t *seal_text(const agent *a, const char *text, util_error *err)
{
    uint8_t *sealed = NULL;
    size_t len = 0;
    if (crypto_seal(a->seal_key, (const uint8_t *)text, strlen(text), &sealed, &len, err) != 0)
        return NULL;
    char *hex = malloc(len * 2 + 1);
    json_t *out = NULL;
    if (hex) {
        util_hex(sealed, len, hex, 0);
        out = json_string(hex);
        free(hex);
    }
    free(sealed);
    if (!out)
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    return out;
}

static int unseal_text(const agent *a, const json_t *hex, char *out, size_t out_size, util_error *err)
{
    const char *text = json_string_value(hex);
    out[0] = '\0';
    if (!text)
        return 0;
    size_t max = strlen(text) / 2;
    uint8_t *sealed = malloc(max + 1), *plain = NULL;
    size_t plain_len = 0;
    int n = sealed ? util_unhex(text, sealed, max) : -1;
    int rc = -1;
    if (n < 0)
        util_error_set(err, UTIL_ERR_STORE, "sealed credentials: not hex");
    else if (crypto_unseal(a->seal_key, sealed, (size_t)n, &plain, &plain_len, err) == 0) {
        if (plain_len < out_size) {
            memcpy(out, plain, plain_len);
            out[plain_len] = '\0';
            rc = 0;
        } else {
            util_error_set(err, UTIL_ERR_STORE, "sealed credentials: too long");
        }
        OPENSSL_cleanse(plain, plain_len);
    }
    free(plain);
    free(sealed);
    return rc;
}

/* "scheme://" + credentials + "@" + the rest, for curl. */
static void settings_finish(agent_settings *s)
{
    s->proxy_full[0] = '\0';
    const char *rest = strstr(s->proxy, "://");
    if (s->proxy[0] && s->proxy_credentials[0] && rest)
        snprintf(s->proxy_full, sizeof s->proxy_full, "%.*s%s@%s", (int)(rest + 3 - s->proxy), s->proxy,
                 s->proxy_credentials, rest + 3);
    else
        snprintf(s->proxy_full, sizeof s->proxy_full, "%s", s->proxy);
}

/* scheme://host[:port] of two URLs agree (credentials stay with their server). */
static bool same_server(const char *x, const char *y)
{
    size_t nx =
        strstr(x, "://") ? (size_t)(strstr(x, "://") - x) + 3 + strcspn(strstr(x, "://") + 3, "/?#") : 0;
    size_t ny =
        strstr(y, "://") ? (size_t)(strstr(y, "://") - y) + 3 + strcspn(strstr(y, "://") + 3, "/?#") : 0;
    return nx && nx == ny && !strncasecmp(x, y, nx);
}

static int settings_load(agent *a, util_error *err)
{
    json_t *doc = NULL;
    if (store_doc_get(a->st, "scep_settings", &doc, err) != 0)
        return -1;
    if (!doc) {
        memset(&a->settings, 0, sizeof a->settings);
        if (a->cfg.initial_url) {
            json_t *init = json_pack("{s:s}", "url", a->cfg.initial_url);
            int rc = agent_parse_settings(init, &a->settings, err);
            json_decref(init);
            if (rc != 0)
                return -1;
        }
        settings_finish(&a->settings);
        return 0;
    }
    json_t *sealed = json_incref(json_object_get(doc, "credentials_sealed"));
    json_object_del(doc, "credentials_sealed");
    int rc = agent_parse_settings(doc, &a->settings, err);
    if (rc == 0 && sealed)
        rc = unseal_text(a, json_object_get(sealed, "url"), a->settings.url_credentials,
                         sizeof a->settings.url_credentials, err) ||
             unseal_text(a, json_object_get(sealed, "proxy"), a->settings.proxy_credentials,
                         sizeof a->settings.proxy_credentials, err);
    settings_finish(&a->settings);
    json_decref(sealed);
    json_decref(doc);
    return rc ? -1 : 0;
}

json_t *agent_scep_settings_get(agent *a)
{
    if (!a->settings.url[0])
        return json_pack("{s:n, s:i, s:i}", "url", "port", 80, "timeout_s", 30);
    return agent_settings_json(&a->settings);
}

/* Credentials not repeated in a PUT stay, unless cleared ("..._set": false)
 * or the server changed. */
static void keep_credentials(const agent_settings *old, agent_settings *s)
{
    if (!s->url_credentials[0] && s->url_credentials_given != 0 && old->url_credentials[0] &&
        same_server(old->url, s->url))
        snprintf(s->url_credentials, sizeof s->url_credentials, "%s", old->url_credentials);
    if (!s->proxy_credentials[0] && s->proxy_credentials_given != 0 && old->proxy_credentials[0] &&
        same_server(old->proxy, s->proxy))
        snprintf(s->proxy_credentials, sizeof s->proxy_credentials, "%s", old->proxy_credentials);
}

int agent_scep_settings_put(agent *a, const json_t *in, const char *user, util_error *err)
{
    agent_settings s;
    int rc = -1;
    json_t *doc = NULL, *sealed = NULL;
    if (agent_parse_settings(in, &s, err) != 0 || agent_settings_check_port(in, &s, err) != 0) {
        OPENSSL_cleanse(&s, sizeof s);
        return -1;
    }
    keep_credentials(&a->settings, &s);
    if (!(doc = agent_settings_json(&s)) || !(sealed = json_object())) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if ((s.url_credentials[0] &&
         json_object_set_new(sealed, "url", seal_text(a, s.url_credentials, err)) != 0) ||
        (s.proxy_credentials[0] &&
         json_object_set_new(sealed, "proxy", seal_text(a, s.proxy_credentials, err)) != 0))
        goto out;
    if (json_object_size(sealed) && json_object_set(doc, "credentials_sealed", sealed) != 0)
        goto out;
    char detail[700];
    snprintf(detail, sizeof detail, "url=%s port=%d timeout_s=%d%s%s", s.url, s.port, s.timeout_s,
             s.url_credentials[0] ? " url_credentials=set" : "",
             s.proxy_credentials[0] ? " proxy_credentials=set" : "");
    rc = store_doc_put(a->st, "scep_settings", doc, user, "scep_settings.update", detail, err);
    if (rc == 0) {
        settings_finish(&s);
        OPENSSL_cleanse(&a->settings, sizeof a->settings);
        a->settings = s;
    }
out:
    json_decref(sealed);
    json_decref(doc);
    OPENSSL_cleanse(&s, sizeof s);
    return rc;
}

/* The URL with the port of the settings (the device keeps them apart). */
static char *url_with_port(const agent_settings *s, util_error *err)
{
    CURLU *u = curl_url();
    char *joined = NULL, *out = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", s->port);
    char user[256] = "", *password = NULL;
    snprintf(user, sizeof user, "%s", s->url_credentials);
    if ((password = strchr(user, ':')))
        *password++ = '\0';
    if (!u || curl_url_set(u, CURLUPART_URL, s->url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PORT, port, 0) != CURLUE_OK ||
        (user[0] && curl_url_set(u, CURLUPART_USER, user, 0) != CURLUE_OK) ||
        (password && curl_url_set(u, CURLUPART_PASSWORD, password, 0) != CURLUE_OK) ||
        curl_url_get(u, CURLUPART_URL, &joined, 0) != CURLUE_OK) {
        util_error_set(err, UTIL_ERR_INVALID_FIELD, "url: \"%s\" is not a valid URL", s->url);
    } else {
        out = strdup(joined);
    }
    if (joined)
        OPENSSL_cleanse(joined, strlen(joined));
    curl_free(joined);
    curl_url_cleanup(u);
    OPENSSL_cleanse(user, sizeof user);
    return out;
}

int agent_client_config(const agent *a, client_config *cfg, char **url_out, util_error *err)
{
    const agent_settings *s = &a->settings;
    if (!s->url[0])
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "url: no SCEP server is configured");
    char *url = url_with_port(s, err);
    if (!url)
        return -1;
    memset(cfg, 0, sizeof *cfg);
    cfg->url = url;
    cfg->ca_identifier = s->ca_identifier[0] ? s->ca_identifier : NULL;
    cfg->ca_fingerprint = s->ca_fingerprint[0] ? s->ca_fingerprint : NULL;
    cfg->http.connect_timeout_ms = (long)s->timeout_s * 1000;
    cfg->http.total_timeout_ms = (long)s->timeout_s * 1000;
    cfg->http.ca_file = s->ca_file[0] ? s->ca_file : NULL;
    cfg->http.pin_sha256 = s->tls_pin[0] ? s->tls_pin : NULL;
    cfg->http.pin_skip_host_check = !s->tls_pin_check_host;
    cfg->http.proxy = s->proxy_full[0] ? s->proxy_full : "";
    cfg->method = !strcmp(s->method, "get")    ? CLIENT_METHOD_GET
                  : !strcmp(s->method, "post") ? CLIENT_METHOD_POST
                                               : CLIENT_METHOD_AUTO;
    if (agent_next_ca(a, &cfg->next_ca, err) != 0) {
        free(url);
        return -1;
    }
    *url_out = url;
    return 0;
}

static int open_state(agent *a, util_error *err)
{
    if (mkdir(a->state_dir, 0700) != 0 && errno != EEXIST)
        return util_error_set(err, UTIL_ERR_STORE, "%s: %s", a->state_dir, strerror(errno));
    if (store_open_sealing(a->state_dir, agent_seal_migrated, a, &a->st, err) != 0)
        return -1;
    if (a->cfg.clock)
        store_set_clock(a->st, a->cfg.clock, a->cfg.hook_arg);
    if (agent_vault_open(a, err) != 0)
        return -1;
    if (RAND_bytes(a->login_key, sizeof a->login_key) != 1)
        return util_error_set(err, UTIL_ERR_INTERNAL, "random key");
    return agent_login_setup(a, err);
}

static int ensure_admin(agent *a, const char *admin_password, char **generated, util_error *err)
{
    int users = 0;
    if (store_user_count(a->st, &users, err) != 0)
        return -1;
    if (users > 0)
        return 0;
    char pw[33];
    const char *use = admin_password;
    if (!use || !*use) {
        if (crypto_random_hex(pw, 12) != 0)
            return util_error_set(err, UTIL_ERR_INTERNAL, "generating the admin password");
        use = pw;
        if (generated && !(*generated = strdup(pw)))
            return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    }
    int rc = agent_user_put(a, "admin", use, AGENT_ROLE_ADMIN, "scepd", err);
    OPENSSL_cleanse(pw, sizeof pw);
    return rc;
}

static int resume_requests(agent *a, util_error *err)
{
    store_request *rows = NULL;
    size_t n = 0;
    if (store_request_list(a->st, 50, true, &rows, &n, err) != 0)
        return -1;
    int rc = 0;
    bool auto_acquired = false;
    /* the oldest unfinished request resumes; newer ones wait their turn */
    for (size_t i = n; i-- > 0;) {
        if (rows[i].state == STORE_STATE_ACQUIRED)
            auto_acquired |= !strcmp(rows[i].kind, "auto");
        if (rows[i].state == STORE_STATE_ACQUIRED || a->run)
            continue;
        util_error e;
        if (agent_run_start(a, &rows[i], &e) != 0)
            log_error("request %lld could not resume: %s", (long long)rows[i].id, e.detail);
        else
            log_info("request %lld resumes in state %s", (long long)rows[i].id,
                     store_state_name(rows[i].state));
    }
    for (size_t i = 0; i < n; i++)
        store_request_clear(&rows[i]);
    free(rows);
    /* an automatic restart that a crash interrupted happens now */
    if (auto_acquired && a->autoreq.auto_restart) {
        json_t *result = NULL;
        log_info("registering the auto request's acquired pair (automatic restart)");
        rc = agent_restart(a, "auto-restart", &result, err);
        json_decref(result);
    }
    return rc;
}

int agent_new(struct event_base *base, const agent_config *cfg, const char *admin_password,
              char **generated_password, agent **out, util_error *err)
{
    agent *a = calloc(1, sizeof *a);
    if (!a)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    a->base = base;
    a->cfg = *cfg;
    if (a->cfg.max_keys <= 0)
        a->cfg.max_keys = 10;
    snprintf(a->state_dir, sizeof a->state_dir, "%s", cfg->state_dir);
    a->cfg.state_dir = a->state_dir;
    if (!agent_function_find(a, "tls") && a->cfg.function_count < AGENT_MAX_FUNCTIONS) {
        memmove(&a->cfg.functions[1], &a->cfg.functions[0],
                a->cfg.function_count * sizeof a->cfg.functions[0]);
        memset(&a->cfg.functions[0], 0, sizeof a->cfg.functions[0]);
        snprintf(a->cfg.functions[0].name, sizeof a->cfg.functions[0].name, "tls");
        a->cfg.function_count++;
    }
    a->tick = evtimer_new(base, on_tick, a);
    a->reaper = evtimer_new(base, on_reap, a);
    a->sigchld = evsignal_new(base, SIGCHLD, on_sigchld, a);
    a->hc = cfg->http ? cfg->http : http_client_new(base);
    if (cfg->vault) {
        a->vault = cfg->vault;
    } else {
        if (!cfg->kek) {
            util_error_set(err, UTIL_ERR_KEK_MISSING, "the agent was started without a vault or a KEK");
            goto fail;
        }
        vault_config vc = {.kek = cfg->kek, .on_tls = cfg->on_tls_change, .tls_arg = cfg->tls_arg};
        for (size_t i = 0; i < a->cfg.function_count; i++) {
            const agent_function *f = &a->cfg.functions[i];
            vault_config_add_export(&vc, f->name, f->export_key, f->export_cert, f->export_chain);
        }
        a->own_vault = vault_new(&vc);
        a->vault = a->own_vault ? vault_link_local(a->own_vault) : NULL;
    }
    if (!a->vault || !a->tick || !a->reaper || !a->sigchld || !a->hc || event_add(a->sigchld, NULL) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "setting up the event loop");
        goto fail;
    }
    if (open_state(a, err) != 0 || ensure_admin(a, admin_password, generated_password, err) != 0 ||
        settings_load(a, err) != 0 || agent_auto_load(a, err) != 0 || agent_ensure_tls_key(a, err) != 0 ||
        agent_apply_bindings(a, NULL, err) != 0 || resume_requests(a, err) != 0)
        goto fail;
    agent_rollover_start(a);
    agent_schedule(a);
    *out = a;
    return 0;
fail:
    agent_free(a);
    return -1;
}

void agent_free(agent *a)
{
    if (!a)
        return;
    /* transfers first: their callbacks must not run into freed requests */
    if (!a->cfg.http)
        http_client_free(a->hc);
    a->hc = NULL;
    agent_crl_abandon(a);
    agent_rollover_abandon(a);
    agent_run_free(a->run);
    for (size_t i = 0; i < a->orphan_count; i++)
        agent_run_free(a->orphans[i]);
    free(a->orphans);
    agent_reap_runs(a);
    free(a->finished);
    if (a->tick)
        event_free(a->tick);
    if (a->reaper)
        event_free(a->reaper);
    if (a->sigchld)
        event_free(a->sigchld);
    store_close(a->st);
    OPENSSL_cleanse(a->seal_key, sizeof a->seal_key);
    OPENSSL_cleanse(&a->settings, sizeof a->settings);
    OPENSSL_cleanse(a->login_key, sizeof a->login_key);
    OPENSSL_cleanse(a->login_cache, sizeof a->login_cache);
    agent_login_worker_free(a->login_worker);
    util_throttle_free(a->login_throttle);
    free(a->dummy_hash);
    OPENSSL_cleanse(&a->autoreq.key.challenge, sizeof a->autoreq.key.challenge);
    if (a->auto_challenge_sealed)
        OPENSSL_clear_free(a->auto_challenge_sealed, a->auto_challenge_sealed_len);
    if (a->own_vault) { /* after every proxy key (runs, fetches) is gone */
        vault_link_free(a->vault);
        vault_free(a->own_vault);
    }
    free(a);
}

static json_t *latest_request(agent *a)
{
    store_request *rows = NULL;
    size_t n = 0;
    util_error err;
    json_t *out = json_null();
    if (store_request_list(a->st, 1, false, &rows, &n, &err) == 0 && n == 1) {
        json_decref(out);
        out = agent_request_json(&rows[0]);
        if (!out)
            out = json_null();
    }
    for (size_t i = 0; i < n; i++)
        store_request_clear(&rows[i]);
    free(rows);
    return out;
}

static int count_state(agent *a, store_state state)
{
    store_key *keys = NULL;
    size_t n = 0;
    util_error err;
    int count = 0;
    if (store_key_list(a->st, &keys, &n, &err) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].state == state)
            count++;
        store_key_clear(&keys[i]);
    }
    free(keys);
    return count;
}

json_t *agent_status(agent *a)
{
    char now[32];
    agent_time_format(agent_now(a), now, sizeof now);
    const agent_auto_state *s = &a->auto_state;
    json_t *auto_status = json_pack(
        "{s:b, s:b, s:o, s:i, s:o, s:i, s:o}", "enabled", a->autoreq.enabled, "done", agent_auto_done(a),
        "next_run", agent_time_json(s->next_run), "jitter_s", s->jitter_s, "last_result",
        s->last_result[0] ? json_string(s->last_result) : json_null(), "attempts_left", s->attempts_left,
        "last_request_id", s->last_request_id ? json_integer(s->last_request_id) : json_null());
    return json_pack("{s:s, s:s, s:o, s:o, s:i, s:i, s:i, s:b}", "version", SCEPD_VERSION, "time", now,
                     "latest_request", latest_request(a), "auto_request", auto_status, "pending_registration",
                     count_state(a, STORE_STATE_ACQUIRED), "registered_keys",
                     count_state(a, STORE_STATE_REGISTERED), "max_keys", a->cfg.max_keys, "scep_configured",
                     a->settings.url[0] != '\0');
}

static int metric(util_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int metric(util_buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return util_buf_append_str(out, line);
}

int agent_metrics(agent *a, util_buf *out)
{
    /* the order of metric_requests */
    static const store_state outcomes[] = {STORE_STATE_ACQUIRED, STORE_STATE_FAILED, STORE_STATE_PENDING,
                                           STORE_STATE_REGISTERED};
    int rc = metric(out, "# HELP scepd_requests_total Issuance request outcomes since start.\n"
                         "# TYPE scepd_requests_total counter\n");
    for (int i = 0; i < 4; i++)
        rc |= metric(out, "scepd_requests_total{outcome=\"%s\"} %lld\n", store_state_name(outcomes[i]),
                     (long long)a->metric_requests[i]);
    rc |= metric(out,
                 "# HELP scepd_auto_request_next_run_timestamp_seconds Next automatic request, 0 when none.\n"
                 "# TYPE scepd_auto_request_next_run_timestamp_seconds gauge\n"
                 "scepd_auto_request_next_run_timestamp_seconds %lld\n",
                 (long long)(a->autoreq.enabled ? a->auto_state.next_run : 0));
    rc |=
        metric(out, "# HELP scepd_certificate_expiry_timestamp_seconds notAfter of each key's certificate.\n"
                    "# TYPE scepd_certificate_expiry_timestamp_seconds gauge\n");
    store_key *keys = NULL;
    size_t n = 0;
    util_error err;
    if (store_key_list(a->st, &keys, &n, &err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        X509 *cert = NULL;
        if (crypto_cert_load((const uint8_t *)keys[i].cert_pem, strlen(keys[i].cert_pem), &cert, &err) == 0)
            rc |= metric(out, "scepd_certificate_expiry_timestamp_seconds{key=\"%s\",state=\"%s\"} %lld\n",
                         keys[i].name, store_state_name(keys[i].state),
                         (long long)crypto_asn1_time_to_time(X509_get0_notAfter(cert)));
        X509_free(cert);
        store_key_clear(&keys[i]);
    }
    free(keys);
    return rc ? -1 : 0;
}

json_t *agent_ca_certs(agent *a, util_error *err)
{
    json_t *rows = NULL;
    if (store_ca_certs_get(a->st, &rows, err) != 0)
        return NULL;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        X509 *cert = NULL;
        const char *pem = json_string_value(json_object_get(row, "pem"));
        util_error ignored;
        if (pem && crypto_cert_load((const uint8_t *)pem, strlen(pem), &cert, &ignored) == 0) {
            crypto_cert_info info;
            crypto_cert_info_get(cert, &info);
            json_object_set_new(row, "subject", json_string(info.subject));
            json_object_set_new(row, "issuer", json_string(info.issuer));
            json_object_set_new(row, "not_after", agent_time_json(info.not_after));
            json_object_set_new(row, "sha256", json_string(info.sha256));
            X509_free(cert);
        }
    }
    return rows;
}

json_t *agent_audit(agent *a, int limit, util_error *err)
{
    json_t *rows = NULL;
    if (store_audit_list(a->st, limit > 0 && limit <= 1000 ? limit : 100, &rows, err) != 0)
        return NULL;
    return rows;
}

void agent_schedule(agent *a)
{
    int64_t due = 0;
    agent_auto_renew_arm(a);
    if (a->autoreq.enabled && a->auto_state.next_run)
        due = a->auto_state.next_run;
    if (a->auto_state.renew_at && (!due || a->auto_state.renew_at < due))
        due = a->auto_state.renew_at;
    int64_t run_due = a->run ? agent_run_due(a->run) : 0;
    if (run_due && (!due || run_due < due))
        due = run_due;
    if (a->rollover_next_at && (!due || a->rollover_next_at < due))
        due = a->rollover_next_at;
    event_del(a->tick);
    if (!due)
        return;
    int64_t delay = due - agent_now(a);
    struct timeval tv = {delay > 0 ? (time_t)(delay > 86400 ? 86400 : delay) : 0, 0};
    event_add(a->tick, &tv);
}

void agent_tick(agent *a)
{
    int64_t now = agent_now(a);
    if (a->run && agent_run_due(a->run) && agent_run_due(a->run) <= now)
        agent_run_wake(a->run);
    if (a->autoreq.enabled && a->auto_state.next_run && a->auto_state.next_run <= now && !a->run) {
        util_error err;
        if (agent_auto_fire(a, &err) != 0)
            log_error("auto request could not start: %s: %s", util_err_code(err.code), err.detail);
    }
    agent_auto_renew_arm(a);
    if (a->autoreq.enabled && a->auto_state.renew_at && a->auto_state.renew_at <= now && !a->run) {
        util_error err;
        if (agent_auto_fire_renewal(a, &err) != 0)
            log_error("auto request (renewal) could not start: %s: %s", util_err_code(err.code), err.detail);
    }
    agent_rollover_tick(a);
    agent_schedule(a);
}
