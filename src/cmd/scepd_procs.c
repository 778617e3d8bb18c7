/*
 * scepd's processes (docs/internals/privsep.md):
 *
 *   scepd (supervisor)   holds nothing: starts the three below, restarts
 *                        them together when one ends, forwards signals.
 *   scepd-vault          the key-encryption key and every private key in
 *                        the clear; no network socket, no exec (seccomp).
 *   scepd-agent          the store, the scheduler, the REST API (JSON) and
 *                        the SCEP messages; keys only sealed and as proxies;
 *                        no network socket (seccomp).
 *   scepd-net            the listeners, TLS, HTTP parsing (evhttp) and the
 *                        SCEP transfers (libcurl); no store, no key but the
 *                        HTTPS listener's; unprivileged when scepd starts as
 *                        root; no exec (seccomp).
 *
 * Channels (socketpairs, frames of src/ipc): agent <-> vault (blocking
 * calls), agent <-> net (requests, responses, transfers), vault -> net (the
 * listener's key), agent -> supervisor (a pipe: started).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h> /* before keyvalq_struct.h: TAILQ */
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "cmd/scepd.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "http/http.h"
#include "ipc/chan.h"
#include "util/file.h"
#include "util/list.h"
#include "util/log.h"
#include "vault/vault.h"
#include "web/web.h"

#define STOP_GRACE_S 5
#define RESTART_WINDOW_S 60
#define RESTART_MAX 5

typedef enum role { ROLE_VAULT, ROLE_AGENT, ROLE_NET } role;
static const char *const role_names[] = {"vault", "agent", "net"};

/* A process's start-up failure, in the catalogue's words. */
static void log_failure(const util_error *err)
{
    log_error("%s: %s (%s) — %s", util_err_code(err->code), util_err_message(err->code), err->detail,
              util_err_remedy(err->code));
}

/* ---- confinement ---- */

/* What no process of scepd does, and what each must not: the vault and the
 * agent open no socket but AF_UNIX ones (syslog, the TPM's), the vault and
 * the network process start no program. Refused calls fail with EPERM (or
 * EAFNOSUPPORT for socket), so a bug shows up as an error, not a kill.
 * ptrace stays allowed for the sanitizers' leak checker; PR_SET_DUMPABLE 0
 * already keeps other processes of the same user from attaching. */
static int confine(role r, util_error *err)
{
    static const char *const never[] = {
        "process_vm_readv",
        "process_vm_writev",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "mount",
        "umount2",
        "pivot_root",
        "bpf",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "swapon",
        "swapoff",
        "reboot",
        "acct",
        "settimeofday",
        "clock_settime",
        "unshare",
        "setns",
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc = ctx ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < sizeof never / sizeof never[0]; i++) {
        int nr = seccomp_syscall_resolve_name(never[i]);
        if (nr != __NR_SCMP_ERROR)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    if (rc == 0 && r != ROLE_NET)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    if (rc == 0 && r != ROLE_AGENT) /* the agent runs the bindings' commands */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(execve), 0) ||
             seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(execveat), 0);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL,
                              "the %s process could not install its seccomp filter (%s)", role_names[r],
                              strerror(rc < 0 ? -rc : EINVAL));
    return 0;
}

/* The user of the agent and the network process when scepd runs as root:
 * the configured one, else "scepd", else "nobody". */
static int unprivileged_user(const options *o, uid_t *uid, gid_t *gid, util_error *err)
{
    const char *names[] = {o->user[0] ? o->user : "scepd", o->user[0] ? NULL : "nobody"};
    struct passwd *pw = NULL;
    for (size_t i = 0; i < 2 && !pw; i++)
        if (names[i])
            pw = getpwnam(names[i]);
    if (!pw || pw->pw_uid == 0)
        return util_error_set(
            err, UTIL_ERR_CONFIG,
            "no unprivileged user for scepd's agent and network processes (user \"%s\" does "
            "not exist or is root); set user in scepd.conf",
            names[0]);
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* The agent without its vault: nothing it would do now is right (a request
 * would end "failed" for a restart); the supervisor starts all again. */
static void vault_lost(void)
{
    log_error("the vault process is gone; the agent stops and scepd starts its processes again");
    _exit(1);
}

static int drop_privileges(const options *o, role r, util_error *err)
{
    uid_t uid;
    gid_t gid;
    if (geteuid() != 0)
        return 0;
    if (unprivileged_user(o, &uid, &gid, err) != 0)
        return -1;
    pid_t parent = getppid();
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || setuid(0) == 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the %s process could not give up root: %s",
                              role_names[r], strerror(errno));
    /* a change of user clears the parent-death signal: set it again */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
        _exit(1);
    log_debug("the %s process runs as uid %u", role_names[r], (unsigned)uid);
    return 0;
}

/* Started as root, the agent runs as the unprivileged user when that user
 * can reach the state directory (SQLite opens it by its full path, so every
 * directory above it must let the user through): the directory and what it
 * holds become that user's (symbolic links are not followed). Otherwise the
 * agent keeps root and the log says why. */
static uid_t own_uid;
static gid_t own_gid;
static bool agent_unprivileged;

/* Whether uid can reach dir: asked of a child that becomes uid. */
static bool reachable_by(const char *dir, uid_t uid, gid_t gid)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(setgroups(0, NULL) == 0 && setgid(gid) == 0 && setuid(uid) == 0 && access(dir, X_OK) == 0 ? 0
                                                                                                        : 1);
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int own_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    if ((sb->st_uid != own_uid || sb->st_gid != own_gid) && lchown(path, own_uid, own_gid) != 0)
        log_warn("%s: could not be given to scepd's user: %s", path, strerror(errno));
    return 0;
}

static int own_state_dir(const options *o, util_error *err)
{
    if (geteuid() != 0)
        return 0;
    if (unprivileged_user(o, &own_uid, &own_gid, err) != 0)
        return -1;
    if (mkdir(o->state_dir, 0700) != 0 && errno != EEXIST)
        return util_error_set(err, UTIL_ERR_STORE, "%s: %s", o->state_dir, strerror(errno));
    /* the directory itself becomes the user's: what matters is the path to it */
    struct stat sb;
    if (stat(o->state_dir, &sb) != 0)
        return util_error_set(err, UTIL_ERR_STORE, "%s: %s", o->state_dir, strerror(errno));
    char parent[sizeof o->state_dir];
    snprintf(parent, sizeof parent, "%s", o->state_dir);
    char *slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    static bool warned;
    agent_unprivileged = reachable_by(parent, own_uid, own_gid);
    if (!agent_unprivileged) {
        if (warned)
            return 0;
        warned = true;
        log_warn("the agent keeps root: the user for scepd's processes (uid %u) cannot reach %s (a directory "
                 "above it is closed to it); open the path to it to run the agent unprivileged",
                 (unsigned)own_uid, o->state_dir);
        return 0;
    }
    if (nftw(o->state_dir, own_entry, 16, FTW_PHYS) != 0)
        return util_error_set(err, UTIL_ERR_STORE, "%s: %s", o->state_dir, strerror(errno));
    return 0;
}

/* ---- the vault process ---- */

static int vault_to_net = -1;

/* The listener's key goes to the network process, never through the agent. */
static void vault_on_tls(void *arg, const char *key_pem, const char *cert_pem, const char *chain_pem)
{
    (void)arg;
    ipc_builder b;
    size_t len = 0;
    ipc_begin(&b, IPC_TLS_KEY, 0);
    ipc_add_str(&b, IPC_T_KEY, key_pem);
    ipc_add_str(&b, IPC_T_CERT, cert_pem);
    if (chain_pem && chain_pem[0])
        ipc_add_str(&b, IPC_T_CHAIN, chain_pem);
    uint8_t *frame = ipc_end(&b, &len);
    if (!frame || ipc_write(vault_to_net, frame, len) != 0)
        log_error("the HTTPS listener's key could not be handed to the network process");
    ipc_frame_free(frame, len);
}

/* A TPM key: the network process gets what it needs for a proxy. */
static void vault_on_tls_held(void *arg, const char *sealed, const char *aad, const uint8_t *pubkey,
                              size_t pubkey_len, const char *cert_pem, const char *chain_pem)
{
    (void)arg;
    ipc_builder b;
    size_t len = 0;
    ipc_begin(&b, IPC_TLS_KEY, 0);
    ipc_add_str(&b, IPC_T_SEALED, sealed);
    ipc_add_str(&b, IPC_T_AAD, aad);
    ipc_add(&b, IPC_T_PUBKEY, pubkey, pubkey_len);
    ipc_add_str(&b, IPC_T_CERT, cert_pem);
    if (chain_pem && chain_pem[0])
        ipc_add_str(&b, IPC_T_CHAIN, chain_pem);
    uint8_t *frame = ipc_end(&b, &len);
    if (!frame || ipc_write(vault_to_net, frame, len) != 0)
        log_error("the HTTPS listener's key could not be handed to the network process");
    ipc_frame_free(frame, len);
}

static int vault_main(const options *o, int agent_fd, int net_fd, int listener_fd, int ready_fd)
{
    util_error err = {0};
    vault_config vc = {.on_tls = vault_on_tls, .on_tls_held = vault_on_tls_held};
    for (size_t i = 0; i < o->agent.function_count; i++) {
        const agent_function *f = &o->agent.functions[i];
        vault_config_add_export(&vc, f->name, f->export_key, f->export_cert, f->export_chain);
    }
    vault_to_net = net_fd;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(net_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* the KEK is read here, by the one process that uses it */
    crypto_kek *kek = NULL;
    char source[700];
    crypto_kek_sources sources = {getenv("CREDENTIALS_DIRECTORY"), o->kek_file, o->state_dir, o->kek_tpm_dir};
    if (crypto_kek_load(&sources, &kek, source, sizeof source, &err) != 0 || confine(ROLE_VAULT, &err) != 0) {
        crypto_kek_free(kek);
        log_failure(&err);
        return 1;
    }
    log_info("key-encryption key from the %s", source);
    /* the agent opens the store only once the KEK is there */
    char c = 'V';
    if (write(ready_fd, &c, 1) != 1)
        log_debug("the supervisor did not take the vault's start signal");
    close(ready_fd);
    vc.kek = kek;
    vault *v = vault_new(&vc);
    if (!v) {
        crypto_kek_free(kek);
        return 1;
    }
    vault_serve(v, agent_fd, listener_fd, &err); /* until the agent closes its end */
    vault_free(v);
    crypto_kek_free(kek);
    return 0;
}

/* ---- the network process ---- */

typedef struct net_proc net_proc;

typedef struct net_req {
    net_proc *np;
    uint32_t id;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct net_req *prev, *next;
} net_req;

typedef struct net_fetch {
    net_proc *np;
    uint32_t id;
    bool cancelled;
    char *strings[5]; /* url, ca_file, pin, proxy, user agent: alive while curl runs */
    struct net_fetch *prev, *next;
} net_fetch;

struct net_proc {
    struct event_base *base;
    const options *o;
    ipc_chan *agent, *vault;
    vault_link *signer; /* the listener's TPM key signs through the vault */
    edge *e;
    struct evhttp *http, *https;
    tls_holder tls;
    http_client *hc;
    net_req *reqs;
    net_fetch *fetches;
    uint32_t next_id;
    struct net_listener {
        net_proc *np;
        bool tls;
    } listeners[2]; /* the request callbacks' arguments */
};

static void wipe_header(struct evkeyvalq *headers, const char *name)
{
    const char *value = evhttp_find_header(headers, name);
    if (value)
        OPENSSL_cleanse((char *)value, strlen(value));
}

/* Credentials and bodies do not stay in evhttp's buffers. */
static void wipe_request(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    if (len)
        OPENSSL_cleanse(evbuffer_pullup(in, -1), len);
    wipe_header(evhttp_request_get_input_headers(req), "Authorization");
    wipe_header(evhttp_request_get_input_headers(req), "Cookie");
}

/* The client left before the agent answered. */
static void net_on_close(struct evhttp_connection *evcon, void *arg)
{
    net_req *r = arg;
    (void)evcon;
    ipc_builder b;
    ipc_begin(&b, IPC_N_CLOSED, r->id);
    if (ipc_chan_send(r->np->agent, &b) != 0)
        log_debug("request %u: the agent's channel is gone", r->id);
    UTIL_UNLINK(r->np->reqs, r);
    if (!evhttp_request_get_connection(r->req))
        evhttp_request_free(r->req);
    free(r);
}

static void net_on_request(struct evhttp_request *req, void *arg)
{
    const struct net_listener *l = arg;
    net_proc *np = l->np;
    bool tls = l->tls;
    edge_request_begin(np->e, req);
    net_req *r = calloc(1, sizeof *r);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    char *path = api_http_path(uri);
    if (!r || !path) {
        free(r);
        free(path);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->np = np;
    r->id = ++np->next_id ? np->next_id : ++np->next_id;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    char peer[80] = "-";
    if (r->evcon) {
        char *host = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(r->evcon, &host, &port);
        snprintf(peer, sizeof peer, "%s:%u", host ? host : "?", (unsigned)port);
    }
    ipc_builder b;
    ipc_begin(&b, IPC_N_REQUEST, r->id);
    ipc_add_str(&b, IPC_T_METHOD, api_http_method(evhttp_request_get_command(req)));
    ipc_add_str(&b, IPC_T_PATH, path);
    ipc_add_str(&b, IPC_T_QUERY, uri ? evhttp_uri_get_query(uri) : NULL);
    ipc_add_str(&b, IPC_T_REMOTE, peer);
    ipc_add_u32(&b, IPC_T_TLS, tls);
    struct evkeyval *kv;
    size_t headers = 0;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
    {
        if (++headers > (IPC_MAX_FIELDS - 8) / 2)
            break; /* more than the protocol carries: the rest is dropped */
        ipc_add_str(&b, IPC_T_NAME, kv->key);
        ipc_add_str(&b, IPC_T_VALUE, kv->value);
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    if (len)
        ipc_add(&b, IPC_T_BODY, evbuffer_pullup(in, -1), len);
    free(path);
    if (ipc_chan_send(np->agent, &b) != 0) {
        free(r);
        wipe_request(req);
        evhttp_send_error(req, 503, NULL);
        return;
    }
    wipe_request(req);
    UTIL_LINK(np->reqs, r);
    if (r->evcon)
        edge_set_closecb(np->e, r->evcon, net_on_close, r);
}

static void net_on_response(net_proc *np, const ipc_msg *m)
{
    net_req *r = np->reqs;
    while (r && r->id != m->id)
        r = r->next;
    if (!r)
        return; /* its client left */
    UTIL_UNLINK(np->reqs, r);
    if (r->evcon)
        edge_set_closecb(np->e, r->evcon, NULL, NULL);
    uint32_t status = 500;
    ipc_u32(m, IPC_T_STATUS, &status);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    char *ctype = ipc_str(m, IPC_T_CTYPE);
    if (ctype)
        evhttp_add_header(h, "Content-Type", ctype);
    free(ctype);
    for (size_t i = 0; i + 1 < m->count; i++)
        if (m->fields[i].tag == IPC_T_NAME && m->fields[i + 1].tag == IPC_T_VALUE) {
            char *name = strndup((const char *)m->fields[i].data, m->fields[i].len);
            char *value = strndup((const char *)m->fields[i + 1].data, m->fields[i + 1].len);
            if (name && value && !strchr(name, '\n') && !strchr(value, '\n') && !strchr(value, '\r'))
                evhttp_add_header(h, name, value);
            free(name);
            free(value);
        }
    const ipc_field *body = ipc_get(m, IPC_T_BODY);
    struct evbuffer *out = evbuffer_new();
    if (out && body && body->len)
        evbuffer_add(out, body->data, body->len);
    evhttp_send_reply(r->req, (int)status, api_http_reason((int)status), out);
    if (out)
        evbuffer_free(out);
    free(r);
}

static void net_fetch_free(net_fetch *f)
{
    for (size_t i = 0; i < 5; i++)
        free(f->strings[i]);
    free(f);
}

static void net_fetch_done(void *arg, int rc, http_response *resp, const util_error *err)
{
    net_fetch *f = arg;
    net_proc *np = f->np;
    UTIL_UNLINK(np->fetches, f);
    if (!f->cancelled) {
        ipc_builder b;
        ipc_begin(&b, IPC_N_FETCHED, f->id);
        ipc_add_u32(&b, IPC_T_RC, rc == 0 ? 0 : 1);
        if (rc == 0) {
            ipc_add_u32(&b, IPC_T_STATUS, (uint32_t)resp->status);
            ipc_add_str(&b, IPC_T_CTYPE, resp->content_type);
            ipc_add_str(&b, IPC_T_SERVER, resp->server);
            ipc_add(&b, IPC_T_BODY, resp->body, resp->body_len);
        } else {
            ipc_add_u32(&b, IPC_T_CODE, (uint32_t)err->code);
            ipc_add_str(&b, IPC_T_DETAIL, err->detail);
        }
        if (ipc_chan_send(np->agent, &b) != 0)
            log_debug("transfer %u: the agent's channel is gone", f->id);
    }
    net_fetch_free(f);
}

static void net_on_fetch(net_proc *np, const ipc_msg *m)
{
    net_fetch *f = calloc(1, sizeof *f);
    util_error err = {0};
    if (!f)
        return;
    f->np = np;
    f->id = m->id;
    static const ipc_tag tags[5] = {IPC_T_URL, IPC_T_CA_FILE, IPC_T_PIN, IPC_T_PROXY, IPC_T_USER_AGENT};
    for (size_t i = 0; i < 5; i++)
        f->strings[i] = ipc_str(m, tags[i]);
    char *method = ipc_str(m, IPC_T_METHOD), *ctype = ipc_str(m, IPC_T_CTYPE);
    uint64_t connect_ms = 0, total_ms = 0, max_response = 0;
    uint32_t skip = 0, insecure = 0;
    ipc_u64(m, IPC_T_CONNECT_MS, &connect_ms);
    ipc_u64(m, IPC_T_TOTAL_MS, &total_ms);
    ipc_u64(m, IPC_T_MAX_RESPONSE, &max_response);
    ipc_u32(m, IPC_T_PIN_SKIP_HOST, &skip);
    ipc_u32(m, IPC_T_INSECURE, &insecure);
    http_options o = {.connect_timeout_ms = (long)connect_ms,
                      .total_timeout_ms = (long)total_ms,
                      .max_response = (size_t)max_response,
                      .ca_file = f->strings[1],
                      .pin_sha256 = f->strings[2],
                      .pin_skip_host_check = skip != 0,
                      .proxy = f->strings[3],
                      .insecure = insecure != 0,
                      .user_agent = f->strings[4]};
    const ipc_field *body = ipc_get(m, IPC_T_BODY);
    bool post = method && !strcmp(method, "POST");
    int rc = !f->strings[0] ? util_error_set(&err, UTIL_ERR_USAGE, "a transfer without a URL")
             : post         ? http_client_post(np->hc, &o, f->strings[0], body ? body->data : NULL,
                                       body ? body->len : 0, ctype, net_fetch_done, f, &err)
                            : http_client_get(np->hc, &o, f->strings[0], net_fetch_done, f, &err);
    free(method);
    free(ctype);
    if (rc != 0) {
        UTIL_LINK(np->fetches, f); /* net_fetch_done unlinks */
        net_fetch_done(f, -1, NULL, &err);
        return;
    }
    UTIL_LINK(np->fetches, f);
}

static void net_on_agent_msg(void *arg, ipc_msg *m)
{
    net_proc *np = arg;
    switch (m->type) {
    case IPC_A_RESPONSE: net_on_response(np, m); break;
    case IPC_A_FETCH: net_on_fetch(np, m); break;
    case IPC_A_CANCEL:
        for (net_fetch *f = np->fetches; f; f = f->next)
            if (f->id == m->id)
                f->cancelled = true;
        break;
    default: log_error("the agent sent a \"%s\" message to the network process", ipc_type_name(m->type));
    }
    ipc_msg_clear(m);
}

static void net_on_vault_msg(void *arg, ipc_msg *m)
{
    net_proc *np = arg;
    char *key = ipc_str(m, IPC_T_KEY), *cert = ipc_str(m, IPC_T_CERT), *chain = ipc_str(m, IPC_T_CHAIN);
    char *sealed = ipc_str(m, IPC_T_SEALED), *aad = ipc_str(m, IPC_T_AAD);
    const ipc_field *pub = ipc_get(m, IPC_T_PUBKEY);
    if (m->type == IPC_TLS_KEY && key && cert) {
        on_tls_change(&np->tls, key, cert, chain ? chain : "");
    } else if (m->type == IPC_TLS_KEY && sealed && aad && pub && cert) {
        EVP_PKEY *proxy = NULL;
        SSL_CTX *ctx = NULL;
        util_error err;
        if (vault_proxy(np->signer, sealed, aad, pub->data, pub->len, true, &proxy, &err) != 0 ||
            crypto_tls_server_ctx_key(proxy, cert, chain ? chain : "", &ctx, &err) != 0) {
            log_error("the HTTPS listener keeps its certificate: %s", err.detail);
        } else {
            SSL_CTX_free(np->tls.ctx); /* connections in progress hold their own reference */
            np->tls.ctx = ctx;
            log_info("HTTPS listener presents a certificate whose key stays in the TPM");
        }
        EVP_PKEY_free(proxy);
    }
    free(sealed);
    free(aad);
    if (key)
        OPENSSL_clear_free(key, strlen(key));
    free(cert);
    free(chain);
    ipc_msg_clear(m);
}

static void net_on_lost(void *arg, const char *why)
{
    net_proc *np = arg;
    log_info("network process: %s; stopping", why);
    event_base_loopexit(np->base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static int net_main(const options *o, int agent_fd, int vault_fd, int signer_fd)
{
    util_error err = {0};
    net_proc np = {.o = o};
    char bound[INET6_ADDRSTRLEN + 8] = "", bound_tls[INET6_ADDRSTRLEN + 8] = "";
    struct event *term = NULL;
    int rc = 1;
    np.base = event_base_new();
    if (!np.base)
        goto out;
    np.e = edge_new(np.base, &o->edge);
    np.http = evhttp_new(np.base);
    np.https = o->listen_tls[0] ? evhttp_new(np.base) : NULL;
    np.hc = http_client_new(np.base);
    term = evsignal_new(np.base, SIGTERM, on_stop_signal, np.base);
    if (!np.e || !np.http || (o->listen_tls[0] && !np.https) || !np.hc || !term ||
        event_add(term, NULL) != 0) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    np.listeners[0] = (struct net_listener){&np, false};
    np.listeners[1] = (struct net_listener){&np, true};
    api_http_limits(np.http, 0);
    evhttp_set_gencb(np.http, net_on_request, &np.listeners[0]);
    if (edge_add_http(np.e, np.http, NULL, NULL) != 0 ||
        bind_http(np.e, np.http, o->listen, bound, sizeof bound, &err) != 0)
        goto fail;
    if (np.https) {
        api_http_limits(np.https, 0);
        evhttp_set_gencb(np.https, net_on_request, &np.listeners[1]);
        if (edge_add_http(np.e, np.https, tls_new, &np.tls) != 0 ||
            bind_http(np.e, np.https, o->listen_tls, bound_tls, sizeof bound_tls, &err) != 0)
            goto fail;
    }
    /* bound (a port below 1024 needs root): now the user without rights */
    if (drop_privileges(o, ROLE_NET, &err) != 0 || confine(ROLE_NET, &err) != 0)
        goto fail;
    np.signer = vault_link_remote(signer_fd);
    np.agent = ipc_chan_new(np.base, agent_fd, net_on_agent_msg, net_on_lost, &np);
    np.vault = ipc_chan_new(np.base, vault_fd, net_on_vault_msg, net_on_lost, &np);
    if (!np.agent || !np.vault) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    ipc_builder b;
    ipc_begin(&b, IPC_N_READY, 0);
    ipc_add_str(&b, IPC_T_BOUND, bound);
    if (np.https)
        ipc_add_str(&b, IPC_T_BOUND_TLS, bound_tls);
    if (ipc_chan_send(np.agent, &b) != 0)
        goto fail;
    event_base_dispatch(np.base);
    rc = 0;
    goto out;
fail:
    log_failure(&err);
out:
    while (np.reqs) {
        net_req *r = np.reqs;
        UTIL_UNLINK(np.reqs, r);
        free(r);
    }
    http_client_free(np.hc); /* without callbacks */
    while (np.fetches) {
        net_fetch *f = np.fetches;
        UTIL_UNLINK(np.fetches, f);
        net_fetch_free(f);
    }
    ipc_chan_free(np.agent);
    ipc_chan_free(np.vault);
    if (term)
        event_free(term);
    if (np.https)
        evhttp_free(np.https);
    if (np.http)
        evhttp_free(np.http);
    edge_free(np.e);
    SSL_CTX_free(np.tls.ctx); /* before the link its proxy keys use */
    vault_link_free(np.signer);
    if (np.base)
        event_base_free(np.base);
    return rc;
}

/* ---- the agent process ---- */

typedef struct agent_proc agent_proc;

typedef struct agent_req {
    agent_proc *ap;
    uint32_t id;
    ipc_msg msg; /* the request as it came */
    char *method, *path, *query, *remote;
    char **names, **values;
    size_t header_count;
    bool tls;
    api_login_slot slot;
    struct agent_req *prev, *next;
} agent_req;

struct agent_proc {
    struct event_base *base;
    options *o;
    agent *a;
    api *server;
    ipc_chan *net;
    http_client *hc;
    agent_req *reqs;
    char *generated; /* a new admin's password, until it is written */
    int ready_fd;
};

static const char *agent_req_header(void *arg, const char *name)
{
    const agent_req *r = arg;
    for (size_t i = 0; name && i < r->header_count; i++)
        if (!strcasecmp(r->names[i], name))
            return r->values[i];
    return NULL;
}

static void agent_req_free(agent_req *r)
{
    for (size_t i = 0; i < r->header_count; i++) {
        if (r->values[i])
            OPENSSL_cleanse(r->values[i], strlen(r->values[i]));
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->remote);
    ipc_msg_clear(&r->msg); /* wipes the frame: the body may hold a password */
    free(r);
}

static void agent_serve(agent_req *r)
{
    agent_proc *ap = r->ap;
    const ipc_field *body = ipc_get(&r->msg, IPC_T_BODY);
    api_request req = {
        .method = r->method,
        .path = r->path,
        .query = r->query,
        .header = agent_req_header,
        .header_arg = r,
        .body = body ? body->data : NULL,
        .body_len = body ? body->len : 0,
        .tls = r->tls,
        .remote = r->remote,
        .login = &r->slot,
    };
    api_response resp;
    api_handle(ap->server, &req, &resp);
    if (resp.deferred)
        return; /* the login thread calls back */
    ipc_builder b;
    ipc_begin(&b, IPC_A_RESPONSE, r->id);
    ipc_add_u32(&b, IPC_T_STATUS, (uint32_t)resp.status);
    ipc_add_str(&b, IPC_T_CTYPE, resp.content_type);
    for (size_t i = 0; i < resp.header_count; i++) {
        ipc_add_str(&b, IPC_T_NAME, resp.headers[i].name);
        ipc_add_str(&b, IPC_T_VALUE, resp.headers[i].value);
    }
    if (resp.body_len)
        ipc_add(&b, IPC_T_BODY, resp.body, resp.body_len);
    if (ipc_chan_send(ap->net, &b) != 0)
        log_error("request %u: the answer could not be sent to the network process", r->id);
    api_response_clear(&resp);
    agent_login_cancel(ap->a, r->slot.job); /* none left: a second call took its answer */
    agent_key_verify_cancel(ap->a, r->slot.crl_wait);
    UTIL_UNLINK(ap->reqs, r);
    agent_req_free(r);
}

static void agent_on_login_done(void *arg)
{
    agent_req *r = arg;
    r->slot.finished = true;
    agent_serve(r);
}

/* A verification's GetCRL came back (or its wait ended): verify now. */
static void agent_on_crl_done(void *arg)
{
    agent_req *r = arg;
    r->slot.crl_wait = NULL; /* the agent has let go of it */
    agent_serve(r);
}

static void agent_on_request(agent_proc *ap, ipc_msg *m)
{
    agent_req *r = calloc(1, sizeof *r);
    if (!r) {
        ipc_msg_clear(m);
        return;
    }
    r->ap = ap;
    r->id = m->id;
    r->msg = *m;
    memset(m, 0, sizeof *m);
    uint32_t tls = 0;
    ipc_u32(&r->msg, IPC_T_TLS, &tls);
    r->tls = tls != 0;
    r->method = ipc_str(&r->msg, IPC_T_METHOD);
    r->path = ipc_str(&r->msg, IPC_T_PATH);
    r->query = ipc_str(&r->msg, IPC_T_QUERY);
    r->remote = ipc_str(&r->msg, IPC_T_REMOTE);
    size_t n = 0;
    for (size_t i = 0; i < r->msg.count; i++)
        n += r->msg.fields[i].tag == IPC_T_NAME;
    r->names = calloc(n + 1, sizeof *r->names);
    r->values = calloc(n + 1, sizeof *r->values);
    bool ok = r->method && r->path && r->remote && r->names && r->values;
    for (size_t i = 0; ok && i + 1 < r->msg.count; i++)
        if (r->msg.fields[i].tag == IPC_T_NAME) {
            r->names[r->header_count] = strndup((const char *)r->msg.fields[i].data, r->msg.fields[i].len);
            r->values[r->header_count] =
                strndup((const char *)r->msg.fields[i + 1].data, r->msg.fields[i + 1].len);
            ok = r->names[r->header_count] && r->values[r->header_count];
            r->header_count++;
        }
    r->slot.done = agent_on_login_done;
    r->slot.crl_done = agent_on_crl_done;
    r->slot.arg = r;
    UTIL_LINK(ap->reqs, r);
    if (!ok) {
        ipc_builder b;
        ipc_begin(&b, IPC_A_RESPONSE, r->id);
        ipc_add_u32(&b, IPC_T_STATUS, 400);
        if (ipc_chan_send(ap->net, &b) != 0)
            log_debug("request %u: no channel for the answer", r->id);
        UTIL_UNLINK(ap->reqs, r);
        agent_req_free(r);
        return;
    }
    agent_serve(r);
}

static void agent_on_closed(agent_proc *ap, uint32_t id)
{
    for (agent_req *r = ap->reqs; r; r = r->next)
        if (r->id == id) {
            agent_login_cancel(ap->a, r->slot.job);
            agent_key_verify_cancel(ap->a, r->slot.crl_wait);
            UTIL_UNLINK(ap->reqs, r);
            agent_req_free(r);
            return;
        }
}

static void agent_on_fetched(agent_proc *ap, const ipc_msg *m)
{
    uint32_t rc = 1, status = 0;
    ipc_u32(m, IPC_T_RC, &rc);
    http_response resp = {0};
    util_error err = {0};
    if (rc == 0) {
        ipc_u32(m, IPC_T_STATUS, &status);
        resp.status = (long)status;
        resp.content_type = ipc_str(m, IPC_T_CTYPE);
        resp.server = ipc_str(m, IPC_T_SERVER);
        const ipc_field *body = ipc_get(m, IPC_T_BODY);
        resp.body_len = body ? body->len : 0;
        resp.body = malloc(resp.body_len + 1);
        if (!resp.body) {
            http_response_free(&resp);
            rc = 1;
            util_error_set(&err, UTIL_ERR_INTERNAL, "out of memory");
        } else {
            if (resp.body_len)
                memcpy(resp.body, body->data, resp.body_len);
            resp.body[resp.body_len] = '\0';
        }
    } else {
        ipc_error_of(m, &err);
    }
    http_client_deliver(ap->hc, m->id, rc == 0 ? 0 : -1, &resp, &err);
    http_response_free(&resp);
}

static void agent_on_ready(agent_proc *ap, const ipc_msg *m)
{
    char *bound = ipc_str(m, IPC_T_BOUND), *bound_tls = ipc_str(m, IPC_T_BOUND_TLS);
    printf("scepd %s: Remote UI at http://%s/ui/%s%s%s\n", SCEPD_VERSION, bound ? bound : "?",
           bound_tls ? " and https://" : "", bound_tls ? bound_tls : "", bound_tls ? "/ui/" : "");
    fflush(stdout);
    /* the supervisor keeps the addresses: processes started again bind the
     * same ports, even those the kernel picked */
    char line[300];
    int n = snprintf(line, sizeof line, "R%s\n%s\n", bound ? bound : "", bound_tls ? bound_tls : "");
    free(bound);
    free(bound_tls);
    util_error err;
    if (ap->generated) {
        if (save_generated_password(ap->o, ap->generated, &err) != 0)
            log_error("the generated admin password could not be saved: %s", err.detail);
        OPENSSL_clear_free(ap->generated, strlen(ap->generated));
        ap->generated = NULL;
    }
    if (ap->ready_fd >= 0) {
        if (n <= 0 || (size_t)n >= sizeof line || write(ap->ready_fd, line, (size_t)n) != n)
            log_debug("the supervisor did not take the start signal");
        close(ap->ready_fd);
        ap->ready_fd = -1;
    }
}

static void agent_on_net_msg(void *arg, ipc_msg *m)
{
    agent_proc *ap = arg;
    switch (m->type) {
    case IPC_N_REQUEST: agent_on_request(ap, m); return; /* took m */
    case IPC_N_CLOSED: agent_on_closed(ap, m->id); break;
    case IPC_N_FETCHED: agent_on_fetched(ap, m); break;
    case IPC_N_READY: agent_on_ready(ap, m); break;
    default: log_error("the network process sent a \"%s\" message to the agent", ipc_type_name(m->type));
    }
    ipc_msg_clear(m);
}

static void agent_on_lost(void *arg, const char *why)
{
    agent_proc *ap = arg;
    log_info("agent: network process channel: %s; stopping", why);
    event_base_loopexit(ap->base, NULL);
}

static int agent_forward(void *arg, uint32_t id, bool post, const http_options *o, const char *url,
                         const uint8_t *body, size_t len, const char *content_type, util_error *err)
{
    agent_proc *ap = arg;
    ipc_builder b;
    if (!ap->net)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the network process is not reachable");
    ipc_begin(&b, IPC_A_FETCH, id);
    ipc_add_str(&b, IPC_T_METHOD, post ? "POST" : "GET");
    ipc_add_str(&b, IPC_T_URL, url);
    if (post)
        ipc_add(&b, IPC_T_BODY, body, len);
    ipc_add_str(&b, IPC_T_CTYPE, content_type);
    ipc_add_u64(&b, IPC_T_CONNECT_MS, (uint64_t)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 0));
    ipc_add_u64(&b, IPC_T_TOTAL_MS, (uint64_t)(o->total_timeout_ms > 0 ? o->total_timeout_ms : 0));
    ipc_add_u64(&b, IPC_T_MAX_RESPONSE, (uint64_t)o->max_response);
    ipc_add_str(&b, IPC_T_CA_FILE, o->ca_file);
    ipc_add_str(&b, IPC_T_PIN, o->pin_sha256);
    ipc_add_u32(&b, IPC_T_PIN_SKIP_HOST, o->pin_skip_host_check);
    ipc_add_str(&b, IPC_T_PROXY, o->proxy); /* absent: curl's default; "": none */
    ipc_add_u32(&b, IPC_T_INSECURE, o->insecure);
    ipc_add_str(&b, IPC_T_USER_AGENT, o->user_agent);
    if (ipc_chan_send(ap->net, &b) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the network process is not reachable");
    return 0;
}

static void agent_forward_cancel(void *arg, uint32_t id)
{
    agent_proc *ap = arg;
    ipc_builder b;
    ipc_begin(&b, IPC_A_CANCEL, id);
    if (ap->net && ipc_chan_send(ap->net, &b) != 0)
        log_debug("transfer %u: no channel to cancel it", id);
}

static void agent_on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    agent_proc *ap = arg;
    json_t *result = NULL;
    util_error err;
    if (agent_restart(ap->a, "SIGHUP", &result, &err) != 0)
        log_error("restart (SIGHUP): %s", err.detail);
    else
        log_info("restart (SIGHUP): %zu pair(s) registered",
                 json_array_size(json_object_get(result, "registered")));
    json_decref(result);
}

static int agent_main(options *o, const char *password, int vault_fd, int net_fd, int ready_fd)
{
    util_error err = {0};
    agent_proc ap = {.o = o, .ready_fd = ready_fd};
    vault_link *link = vault_link_remote(vault_fd);
    if (link)
        vault_link_on_lost(link, vault_lost);
    struct event *sigs[3] = {NULL, NULL, NULL};
    int rc = 1;
    ap.base = event_base_new();
    /* the agent works inside its state directory, which its user owns
     * (own_state_dir): the directories above may be closed to that user */
    if (chdir(o->state_dir) != 0) {
        util_error_set(&err, UTIL_ERR_STORE, "%s: %s", o->state_dir, strerror(errno));
        goto fail;
    }
    if (!link || !ap.base || (agent_unprivileged && drop_privileges(o, ROLE_AGENT, &err) != 0) ||
        confine(ROLE_AGENT, &err) != 0)
        goto fail;
    ap.hc = http_client_new_forward(ap.base, agent_forward, agent_forward_cancel, &ap);
    /* before the agent: resumed requests send their transfers at once (the
     * loop reads the network process's messages only once it runs) */
    ap.net = ipc_chan_new(ap.base, net_fd, agent_on_net_msg, agent_on_lost, &ap);
    if (!ap.hc || !ap.net)
        goto fail;
    o->agent.state_dir = ".";
    o->agent.initial_url = o->initial_url[0] ? o->initial_url : NULL;
    o->agent.vault = link;
    o->agent.http = ap.hc;
    if (agent_new(ap.base, &o->agent, password, &ap.generated, &ap.a, &err) != 0)
        goto fail;
    api_config api_cfg = {.host_names = o->host_names, .host_name_count = o->host_name_count};
    ap.server = api_new(ap.a, &api_cfg);
    sigs[0] = evsignal_new(ap.base, SIGINT, on_stop_signal, ap.base);
    sigs[1] = evsignal_new(ap.base, SIGTERM, on_stop_signal, ap.base);
    sigs[2] = evsignal_new(ap.base, SIGHUP, agent_on_hup, &ap);
    if (!ap.server || !ap.net || !sigs[0] || !sigs[1] || !sigs[2] || event_add(sigs[0], NULL) != 0 ||
        event_add(sigs[1], NULL) != 0 || event_add(sigs[2], NULL) != 0) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "setting up the event loop");
        goto fail;
    }
    api_set_static(ap.server, web_lookup);
    event_base_dispatch(ap.base);
    rc = 0;
    goto out;
fail:
    log_failure(&err);
out:
    while (ap.reqs) {
        agent_req *r = ap.reqs;
        agent_login_cancel(ap.a, r->slot.job);
        agent_key_verify_cancel(ap.a, r->slot.crl_wait);
        UTIL_UNLINK(ap.reqs, r);
        agent_req_free(r);
    }
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    api_free(ap.server);
    agent_free(ap.a);
    http_client_free(ap.hc);
    ipc_chan_free(ap.net);
    vault_link_free(link);
    if (ap.generated)
        OPENSSL_clear_free(ap.generated, strlen(ap.generated));
    if (ap.base)
        event_base_free(ap.base);
    if (ready_fd >= 0 && ap.ready_fd >= 0)
        close(ap.ready_fd);
    return rc;
}

/* ---- the supervisor ---- */

typedef struct proc_set {
    pid_t pid[3];
    int ready_fd; /* read end: the agent writes once it serves */
} proc_set;

/* A child: named, dies with the supervisor, keeps only its descriptors. */
static pid_t supervisor_pid;

static void child_setup(role r, sigset_t *old, const int *keep, size_t nkeep)
{
    char name[16];
    snprintf(name, sizeof name, "scepd-%s", role_names[r]);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != supervisor_pid)
        _exit(1); /* the supervisor is already gone */
    sigprocmask(SIG_SETMASK, old, NULL);
    /* descriptors from the supervisor other than ours and the standard ones go */
    for (int fd = 3; fd < 1024; fd++) {
        bool mine = false;
        for (size_t i = 0; i < nkeep; i++)
            mine |= keep[i] == fd;
        if (!mine)
            close(fd);
    }
}

static int start_set(options *o, const char *password, sigset_t *old, proc_set *set, util_error *err)
{
    int av[2], an[2], vn[2], lv[2], ready[2], vready[2];
    memset(set, 0, sizeof *set);
    set->ready_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, av) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, an) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, vn) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, lv) != 0 || pipe2(ready, O_CLOEXEC) != 0 ||
        pipe2(vready, O_CLOEXEC) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "channels between scepd's processes: %s",
                              strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int keep[] = {av[1], vn[0], lv[0], vready[1]};
        child_setup(ROLE_VAULT, old, keep, 4);
        _exit(vault_main(o, av[1], vn[0], lv[0], vready[1]));
    }
    set->pid[ROLE_VAULT] = pid;
    close(vready[1]);
    /* the vault first: without a KEK nothing else starts and the store is
     * not touched (the pipe closed: the vault ended, its log says why) */
    char c = 0;
    struct pollfd vp = {.fd = vready[0], .events = POLLIN};
    bool vault_up = pid > 0 && poll(&vp, 1, 60 * 1000) == 1 && read(vready[0], &c, 1) == 1 && c == 'V';
    close(vready[0]);
    if (!vault_up) {
        int fds[] = {av[0], av[1], an[0], an[1], vn[0], vn[1], lv[0], lv[1], ready[0], ready[1]};
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
            close(fds[i]);
        log_error("scepd could not start: the vault process ended before it had a key-encryption key");
        err->code = UTIL_ERR_NONE;
        return -1;
    }
    pid = pid > 0 ? fork() : -1;
    if (pid == 0) {
        int keep[] = {av[0], an[0], ready[1]};
        child_setup(ROLE_AGENT, old, keep, 3);
        int rc = agent_main(o, password, av[0], an[0], ready[1]);
        fflush(stdout);
        exit(rc);
    }
    set->pid[ROLE_AGENT] = pid;
    pid = pid > 0 ? fork() : -1;
    if (pid == 0) {
        int keep[] = {an[1], vn[1], lv[1]};
        child_setup(ROLE_NET, old, keep, 3);
        exit(net_main(o, an[1], vn[1], lv[1]));
    }
    set->pid[ROLE_NET] = pid;
    int fds[] = {av[0], av[1], an[0], an[1], vn[0], vn[1], lv[0], lv[1], ready[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
    set->ready_fd = ready[0];
    if (pid < 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "starting scepd's processes: %s", strerror(errno));
    log_debug("processes: vault %d, agent %d, net %d", (int)set->pid[0], (int)set->pid[1], (int)set->pid[2]);
    return 0;
}

static int role_of(const proc_set *set, pid_t pid)
{
    for (int r = 0; r < 3; r++)
        if (set->pid[r] == pid)
            return r;
    return -1;
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, len, "exit status %d", WEXITSTATUS(status));
}

/* Stops every child that is still running: SIGTERM, then SIGKILL after the
 * grace period. */
static void stop_set(proc_set *set, int sfd)
{
    for (int r = 0; r < 3; r++)
        if (set->pid[r] > 0)
            kill(set->pid[r], SIGTERM);
    time_t deadline = time(NULL) + STOP_GRACE_S;
    for (;;) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            int r = role_of(set, pid);
            if (r >= 0)
                set->pid[r] = 0;
        }
        if (!set->pid[0] && !set->pid[1] && !set->pid[2])
            break;
        if (time(NULL) >= deadline) {
            for (int r = 0; r < 3; r++)
                if (set->pid[r] > 0) {
                    log_warn("the %s process did not stop within %d s: killed", role_names[r], STOP_GRACE_S);
                    kill(set->pid[r], SIGKILL);
                }
            deadline = time(NULL) + STOP_GRACE_S;
        }
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) < 0)
                log_debug("signalfd: %s", strerror(errno));
        }
    }
    if (set->ready_fd >= 0)
        close(set->ready_fd);
    set->ready_fd = -1;
}

int scepd_run(options *o, util_error *err)
{
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, &old) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "signals: %s", strerror(errno));
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "signalfd: %s", strerror(errno));
    supervisor_pid = getpid();
    collect_host_names(o);
    if (own_state_dir(o, err) != 0) {
        close(sfd);
        return -1;
    }
    char *password = read_admin_password(o, err);
    if (o->admin_password_file[0] && !password) {
        close(sfd);
        return -1;
    }
    time_t restarts[RESTART_MAX] = {0};
    size_t restart_count = 0;
    bool ever_ready = false;
    int rc = 0;
    for (;;) {
        proc_set set;
        util_error own_err;
        if (own_state_dir(o, &own_err) != 0) /* files a restarted set finds */
            log_warn("%s", own_err.detail);
        if (start_set(o, password, &old, &set, err) != 0) {
            stop_set(&set, sfd);
            rc = -1;
            break;
        }
        bool ready = false, stopping = false;
        char why[128] = "";
        int ended = -1;
        while (ended < 0 && !stopping) {
            struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = set.ready_fd, .events = POLLIN}};
            if (poll(p, set.ready_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
                break;
            if (set.ready_fd >= 0 && p[1].revents) {
                char line[300];
                ssize_t n = read(set.ready_fd, line, sizeof line - 1);
                ready = n > 0 && line[0] == 'R';
                if (ready) {
                    line[n] = '\0';
                    char *bound = line + 1, *nl = strchr(bound, '\n'), *bound_tls = nl ? nl + 1 : NULL;
                    if (nl)
                        *nl = '\0';
                    if (bound_tls && (nl = strchr(bound_tls, '\n')))
                        *nl = '\0';
                    if (bound[0] && strlen(bound) < sizeof o->listen)
                        memcpy(o->listen, bound, strlen(bound) + 1);
                    if (bound_tls && bound_tls[0] && strlen(bound_tls) < sizeof o->listen_tls)
                        memcpy(o->listen_tls, bound_tls, strlen(bound_tls) + 1);
                }
                close(set.ready_fd);
                set.ready_fd = -1;
                if (ready && !ever_ready && password) {
                    /* the admin exists now: the password is not needed again */
                    OPENSSL_clear_free(password, strlen(password));
                    password = NULL;
                }
                ever_ready |= ready;
            }
            if (!(p[0].revents & POLLIN))
                continue;
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
            if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                log_info("signal %d: stopping", (int)si.ssi_signo);
                stopping = true;
            } else if (si.ssi_signo == SIGHUP) {
                if (set.pid[ROLE_AGENT] > 0)
                    kill(set.pid[ROLE_AGENT], SIGHUP);
            } else if (si.ssi_signo == SIGCHLD) {
                int status;
                pid_t pid;
                bool abnormal = false;
                /* the one that failed, not the ones that stopped after it */
                while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                    int r = role_of(&set, pid);
                    if (r < 0)
                        continue;
                    set.pid[r] = 0;
                    bool bad = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
                    if (ended < 0 || (bad && !abnormal)) {
                        ended = r;
                        abnormal = bad;
                        describe_exit(status, why, sizeof why);
                    }
                }
            }
        }
        stop_set(&set, sfd);
        if (stopping)
            break;
        if (!ready && !ever_ready) {
            /* it never served: a configuration or store problem, said in the log */
            log_error("scepd could not start: the %s process ended (%s)",
                      ended >= 0 ? role_names[ended] : "?", why);
            err->code = UTIL_ERR_NONE;
            rc = -1;
            break;
        }
        time_t now = time(NULL);
        size_t recent = 0;
        for (size_t i = 0; i < RESTART_MAX; i++)
            recent += restarts[i] && now - restarts[i] < RESTART_WINDOW_S;
        if (recent >= RESTART_MAX) {
            log_error("the %s process ended (%s), the %zuth time within %d s: scepd stops",
                      ended >= 0 ? role_names[ended] : "?", why, recent + 1, RESTART_WINDOW_S);
            err->code = UTIL_ERR_NONE;
            rc = -1;
            break;
        }
        restarts[restart_count++ % RESTART_MAX] = now;
        log_warn("the %s process ended (%s); restarting scepd's processes",
                 ended >= 0 ? role_names[ended] : "?", why);
        sleep(1);
    }
    if (password)
        OPENSSL_clear_free(password, strlen(password));
    close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
