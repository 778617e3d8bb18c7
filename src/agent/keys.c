/* Registered keys, their bindings to functions, and registration. */
#include <fcntl.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "util/file.h"
#include "util/log.h"
#include "util/ossl.h"

const agent_function *agent_function_find(const agent *a, const char *name)
{
    for (size_t i = 0; i < a->cfg.function_count; i++)
        if (!strcmp(a->cfg.functions[i].name, name))
            return &a->cfg.functions[i];
    return NULL;
}

/* The functions bound to a key, as a JSON array of names. */
static json_t *functions_of(const store_binding *b, size_t n, const char *key)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (!strcmp(b[i].key_name, key))
            json_array_append_new(arr, json_string(b[i].function));
    return arr;
}

static json_t *cert_summary(const char *pem)
{
    X509 *cert = NULL;
    util_error err;
    if (!pem || crypto_cert_load((const uint8_t *)pem, strlen(pem), &cert, &err) != 0)
        return json_object();
    crypto_cert_info info;
    crypto_cert_info_get(cert, &info);
    X509_free(cert);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "subject", info.subject,
                     "issuer", info.issuer, "serial", info.serial, "not_before",
                     agent_time_json(info.not_before), "not_after", agent_time_json(info.not_after),
                     "key_algorithm", info.key, "signature_algorithm", info.signature_alg, "key_usage",
                     info.key_usage, "ext_key_usage", info.ext_key_usage, "san", info.san, "sha256",
                     info.sha256, "sha1", info.sha1);
}

static json_t *key_json(const store_key *k, const store_binding *b, size_t nb, bool detail)
{
    json_t *j = cert_summary(k->cert_pem);
    json_object_set_new(j, "name", json_string(k->name));
    json_object_set_new(j, "state", json_string(store_state_name(k->state)));
    json_object_set_new(j, "functions", functions_of(b, nb, k->name));
    json_object_set_new(j, "created_at", agent_time_json(k->created_at));
    json_object_set_new(j, "registered_at", agent_time_json(k->registered_at));
    json_object_set_new(j, "replaces", k->replaces[0] ? json_string(k->replaces) : json_null());
    json_object_set_new(j, "key_storage", json_string(k->storage[0] ? k->storage : "software"));
    if (!detail)
        return j;
    json_object_set_new(j, "certificate_pem", json_string(k->cert_pem));
    json_t *chain = json_array();
    STACK_OF(X509) *certs = NULL;
    util_error err;
    if (k->chain_pem && k->chain_pem[0] &&
        crypto_certs_load((const uint8_t *)k->chain_pem, strlen(k->chain_pem), &certs, &err) == 0) {
        for (int i = 0; i < sk_X509_num(certs); i++) {
            crypto_cert_info info;
            crypto_cert_info_get(sk_X509_value(certs, i), &info);
            json_array_append_new(chain, json_pack("{s:s, s:s, s:o, s:s}", "subject", info.subject, "issuer",
                                                   info.issuer, "not_after", agent_time_json(info.not_after),
                                                   "sha256", info.sha256));
        }
    }
    util_x509_stack_free(certs);
    json_object_set_new(j, "chain", chain);
    return j;
}

json_t *agent_key_list(agent *a, util_error *err)
{
    store_key *keys = NULL;
    store_binding *b = NULL;
    size_t n = 0, nb = 0;
    if (store_key_list(a->st, &keys, &n, err) != 0)
        return NULL;
    if (store_binding_list(a->st, &b, &nb, err) != 0) {
        for (size_t i = 0; i < n; i++)
            store_key_clear(&keys[i]);
        free(keys);
        return NULL;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, key_json(&keys[i], b, nb, false));
        store_key_clear(&keys[i]);
    }
    free(keys);
    free(b);
    return arr;
}

json_t *agent_key_get(agent *a, const char *name, util_error *err)
{
    store_key k;
    store_binding *b = NULL;
    size_t nb = 0;
    if (store_key_get(a->st, name, &k, err) != 0)
        return NULL;
    json_t *j = NULL;
    if (store_binding_list(a->st, &b, &nb, err) == 0)
        j = key_json(&k, b, nb, true);
    free(b);
    store_key_clear(&k);
    return j;
}

int agent_key_delete(agent *a, const char *name, const char *user, util_error *err)
{
    return store_key_delete(a->st, name, user, err);
}

json_t *agent_key_verify(agent *a, const char *name, util_error *err)
{
    store_key k;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *trusted = NULL, *chain = NULL;
    json_t *out = NULL;
    if (store_key_get(a->st, name, &k, err) != 0)
        return NULL;
    if (crypto_cert_load((const uint8_t *)k.cert_pem, strlen(k.cert_pem), &cert, err) != 0 ||
        agent_unseal_pair_key(a, &k, &key, err) != 0 ||
        agent_stored_ca_certs(a->st, NULL, false, &trusted, err) != 0)
        goto out;
    util_error ignored;
    if (k.chain_pem && k.chain_pem[0] &&
        crypto_certs_load((const uint8_t *)k.chain_pem, strlen(k.chain_pem), &chain, &ignored) != 0)
        chain = NULL;
    /* CA certificates from the chain count as trusted only when they are stored CA certificates */
    STACK_OF(X509_CRL) *crls = NULL;
    if (agent_crl_for(a, cert, &crls) != 0)
        crls = NULL;
    crypto_verify_result r;
    crypto_cert_verify(cert, key, trusted, chain, crls, (time_t)agent_now(a), &r);
    json_t *crl_info = json_null();
    for (size_t i = 0; i < r.count; i++)
        if (!strcmp(r.checks[i].name, "revocation")) {
            json_decref(crl_info);
            crl_info = agent_crl_describe(a, cert, !r.checks[i].skipped, r.checks[i].detail,
                                          sizeof r.checks[i].detail);
        }
    util_crl_stack_free(crls);
    json_t *checks = json_array();
    for (size_t i = 0; i < r.count; i++)
        json_array_append_new(checks, json_pack("{s:s, s:b, s:b, s:s}", "name", r.checks[i].name, "ok",
                                                r.checks[i].ok, "skipped", r.checks[i].skipped, "detail",
                                                r.checks[i].detail));
    out = json_pack("{s:b, s:o, s:o}", "valid", r.valid, "checks", checks, "crl", crl_info);
out:
    util_x509_stack_free(trusted);
    util_x509_stack_free(chain);
    X509_free(cert);
    EVP_PKEY_free(key);
    store_key_clear(&k);
    return out;
}

int agent_key_verify_start(agent *a, const char *name, void (*done)(void *arg), void *arg,
                           agent_crl_waiter **wait)
{
    return agent_crl_wait(a, name, done, arg, wait) == 1 ? AGENT_VERIFY_PENDING : 0;
}

void agent_key_verify_cancel(agent *a, agent_crl_waiter *wait)
{
    agent_crl_wait_cancel(a, wait);
}

json_t *agent_binding_list(agent *a, util_error *err)
{
    store_binding *b = NULL;
    size_t nb = 0;
    if (store_binding_list(a->st, &b, &nb, err) != 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < a->cfg.function_count; i++) {
        const agent_function *f = &a->cfg.functions[i];
        const char *key = "";
        for (size_t j = 0; j < nb; j++)
            if (!strcmp(b[j].function, f->name))
                key = b[j].key_name;
        json_t *exports =
            json_pack("{s:o, s:o, s:o}", "key", f->export_key[0] ? json_string(f->export_key) : json_null(),
                      "cert", f->export_cert[0] ? json_string(f->export_cert) : json_null(), "chain",
                      f->export_chain[0] ? json_string(f->export_chain) : json_null());
        json_array_append_new(arr,
                              json_pack("{s:s, s:o, s:o, s:o}", "function", f->name, "key_name",
                                        key[0] ? json_string(key) : json_null(), "export", exports, "command",
                                        f->command[0] ? json_string(f->command) : json_null()));
    }
    free(b);
    return arr;
}

int agent_binding_put(agent *a, const char *function, const json_t *in, const char *user, util_error *err)
{
    if (!agent_function_find(a, function))
        return util_error_set(err, UTIL_ERR_NOT_FOUND, "function \"%s\" is not configured", function);
    const char *field;
    json_t *value;
    json_object_foreach((json_t *)in, field, value) if (strcmp(field, "key_name")) return util_error_set(
        err, UTIL_ERR_INVALID_FIELD, "%.64s: unknown field", field);
    const char *key = json_string_value(json_object_get(in, "key_name"));
    if (!json_is_object(in) || !key)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "key_name: is required, a string");
    store_key k;
    if (store_key_get(a->st, key, &k, err) != 0)
        return -1;
    bool registered = k.state == STORE_STATE_REGISTERED;
    store_key_clear(&k);
    if (!registered)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD,
                              "key_name: \"%s\" is not registered yet: restart first", key);
    if (store_binding_set(a->st, function, key, user, err) != 0)
        return -1;
    return agent_apply_bindings(a, key, err);
}

/* A function's command runs with a fixed, clean environment (nothing of
 * scepd's own, such as SCEPD_ADMIN_PASSWORD), stdin from /dev/null, and no
 * descriptor of scepd's but stdout and stderr (no socket, no database). */
static void run_command(const agent_function *f)
{
    char *argv[] = {"/bin/sh", "-c", (char *)f->command, NULL};
    char function_var[64];
    snprintf(function_var, sizeof function_var, "SCEPD_FUNCTION=%s", f->name);
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                    function_var, NULL};
    posix_spawn_file_actions_t actions;
    pid_t pid;
    if (posix_spawn_file_actions_init(&actions) != 0) {
        log_error("%s: could not run its command", f->name);
        return;
    }
    int rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0)
        rc = posix_spawn(&pid, "/bin/sh", &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        log_error("%s: could not run its command: %s", f->name, strerror(rc));
    else
        log_info("%s: running its command (pid %d)", f->name, (int)pid);
}

/* Writes a function's export files and runs its command. The exported key
 * is a plain 0600 PEM file by design: the service that reads it (a VPN
 * client, a web server) has no KEK. The vault writes the files, to the
 * paths the configuration gave the function: the agent may run without the
 * rights to them. */
static void export_function(agent *a, const agent_function *f, const store_key *k)
{
    util_error err;
    if ((f->export_key[0] || f->export_cert[0] || f->export_chain[0]) &&
        agent_export_pair_key(a, k, f->name, &err) != 0)
        log_error("%s: exporting %s", f->name, err.detail);
    if (f->command[0])
        run_command(f);
}

int agent_apply_bindings(agent *a, const char *only_key, util_error *err)
{
    store_binding *b = NULL;
    size_t nb = 0;
    if (store_binding_list(a->st, &b, &nb, err) != 0)
        return -1;
    for (size_t i = 0; i < nb; i++) {
        if (!b[i].key_name[0] || (only_key && strcmp(only_key, b[i].key_name)))
            continue;
        const agent_function *f = agent_function_find(a, b[i].function);
        store_key k;
        util_error e;
        if (!f || store_key_get(a->st, b[i].key_name, &k, &e) != 0)
            continue;
        export_function(a, f, &k);
        /* the vault hands the key to the HTTPS listener; the agent never sees it */
        if (!strcmp(f->name, "tls") && agent_tls_pair(a, &k, &e) != 0)
            log_error("tls: the HTTPS listener keeps its certificate: key %s: %s", k.name, e.detail);
        store_key_clear(&k);
    }
    free(b);
    return 0;
}

int agent_restart(agent *a, const char *user, json_t **result, util_error *err)
{
    store_registration *regs = NULL;
    size_t n = 0;
    if (store_register_all(a->st, user, &regs, &n, err) != 0)
        return -1;
    json_t *registered = json_array(), *deleted = json_array(), *renamed = json_object();
    for (size_t i = 0; i < n; i++) {
        util_error re;
        /* an auto renewal set to take the old key's name gets it now that the old one is gone */
        if (regs[i].replaced[0] && agent_auto_takes_old_name(a, regs[i].request_id)) {
            /* the key is sealed for its name: the vault seals it again for the new one */
            store_key k;
            char *resealed = NULL;
            bool renamed_ok = false;
            if (store_key_get(a->st, regs[i].name, &k, &re) == 0) {
                renamed_ok =
                    agent_reseal_pair_renamed(a, &k, regs[i].replaced, &resealed, &re) == 0 &&
                    store_key_rename(a->st, regs[i].name, regs[i].replaced, resealed, user, &re) == 0;
                store_key_clear(&k);
            }
            free(resealed);
            if (!renamed_ok) {
                log_error("renaming \"%s\" to \"%s\": %s", regs[i].name, regs[i].replaced, re.detail);
            } else {
                json_object_set_new(renamed, regs[i].name, json_string(regs[i].replaced));
                if (!strcmp(a->auto_state.current_key, regs[i].name))
                    snprintf(a->auto_state.current_key, sizeof a->auto_state.current_key, "%.24s",
                             regs[i].replaced);
                snprintf(regs[i].name, sizeof regs[i].name, "%s", regs[i].replaced);
            }
        }
        json_array_append_new(registered, json_string(regs[i].name));
        if (regs[i].replaced[0])
            json_array_append_new(deleted, json_string(regs[i].replaced));
        a->metric_requests[3]++;
        util_error e;
        if (a->auto_state.current_key[0] && !strcmp(regs[i].replaced, a->auto_state.current_key)) {
            snprintf(a->auto_state.current_key, sizeof a->auto_state.current_key, "%.24s", regs[i].name);
            if (agent_auto_save_state(a, &e) != 0)
                log_error("saving the auto request state: %s", e.detail);
        }
        if (agent_apply_bindings(a, regs[i].name, &e) != 0)
            log_error("applying the bindings of \"%s\": %s", regs[i].name, e.detail);
        log_info("registered \"%s\"%s%s", regs[i].name, regs[i].replaced[0] ? ", replacing " : "",
                 regs[i].replaced);
    }
    if (n > 0) {
        /* (no GetCRL here: a verification fetches the CRL first, and one
         * fetched now would hold off the next for the interval) */
        util_error e;
        if (agent_ca_certs_refresh(a, NULL, &e) != 0)
            log_info("CA rollover check after registration: %s", e.detail);
    }
    free(regs);
    *result = json_pack("{s:o, s:o, s:o}", "registered", registered, "deleted", deleted, "renamed", renamed);
    return 0;
}

/* At first start the tls function gets a self-signed EC key pair. */
int agent_ensure_tls_key(agent *a, util_error *err)
{
    store_binding *b = NULL;
    size_t nb = 0;
    if (store_binding_list(a->st, &b, &nb, err) != 0)
        return -1;
    bool bound = false;
    for (size_t i = 0; i < nb; i++)
        bound |= !strcmp(b[i].function, "tls") && b[i].key_name[0];
    free(b);
    if (bound)
        return 0;
    EVP_PKEY *key = NULL;
    X509_NAME *name = NULL;
    X509 *cert = NULL;
    store_key k;
    memset(&k, 0, sizeof k);
    size_t len;
    int rc = -1;
    char host[64] = "scepd";
    gethostname(host, sizeof host - 1);
    char subject[128];
    snprintf(subject, sizeof subject, "CN=%s,O=scepd self-signed", host);
    snprintf(k.name, sizeof k.name, "DefaultTLS");
    if (agent_generate_pair_key(a, k.name, 0, "ec:P-256", &k.key_sealed, &key, err) != 0 ||
        crypto_name_parse(subject, &name, err) != 0 ||
        crypto_selfsigned_build(key, name, EVP_sha256(), (time_t)agent_now(a), 3650, &cert, err) != 0 ||
        crypto_cert_to_pem(cert, &k.cert_pem, &len, err) != 0)
        goto out;
    k.state = STORE_STATE_REGISTERED;
    k.chain_pem = strdup("");
    store_key existing;
    util_error e;
    if (store_key_get(a->st, k.name, &existing, &e) == 0)
        store_key_clear(&existing);
    else if (store_key_insert_registered(a->st, &k, err) != 0)
        goto out;
    rc = store_binding_set(a->st, "tls", k.name, "scepd", err);
out:
    store_key_clear(&k);
    X509_free(cert);
    X509_NAME_free(name);
    EVP_PKEY_free(key);
    return rc;
}
