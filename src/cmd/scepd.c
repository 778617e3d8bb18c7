/* scepd: the device agent. Configuration and start-up; the processes are in
 * scepd_procs.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <getopt.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent.h"
#include "api/api.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "edge/edge.h"
#include "http/http.h"
#include "util/file.h"
#include "util/log.h"
#include "util/suggest.h"
#include "web/web.h"
#include "cmd/scepd.h"

static int config_unsigned(options *o, const char *name, const char *value, unsigned min, unsigned max,
                           unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || !end || end == value || *end || v < min || v > max) {
        snprintf(o->config_error, sizeof o->config_error, "%s must be a number from %u to %u", name, min,
                 max);
        return 0;
    }
    *out = (unsigned)v;
    return 1;
}

/* "127.0.0.1:8080" or "[::1]:8443"; on failure *why says what is wrong. */
static int split_address(const char *text, char *host, size_t host_len, int *port, const char **why)
{
    const char *start = text, *colon;
    size_t n;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            *why = "is not HOST:PORT (write an IPv6 address as [ADDRESS]:PORT)";
            return -1;
        }
        start = text + 1;
        n = (size_t)(close - start);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            *why = "is not HOST:PORT: the port is missing";
            return -1;
        }
        n = (size_t)(colon - text);
        if (memchr(text, ':', n)) {
            *why = "is not HOST:PORT (write an IPv6 address as [ADDRESS]:PORT)";
            return -1;
        }
    }
    if (n == 0 || n >= host_len) {
        *why = "is not HOST:PORT: the host is missing or too long";
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || errno || *end || p < 0 || p > 65535) {
        *why = "has a port that is not a number from 0 to 65535 (0: a free port the kernel picks)";
        return -1;
    }
    memcpy(host, start, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

/* A listen address that cannot be bound is found by -n, not at start. */
static int check_listen(const char *name, const char *value, char *why_out, size_t why_len)
{
    char host[128];
    int port;
    const char *why = NULL;
    if (split_address(value, host, sizeof host, &port, &why) == 0)
        return 0;
    snprintf(why_out, why_len, "%s \"%s\" %s", name, value, why);
    return -1;
}

static int check_scep_url(const char *name, const char *value, char *why_out, size_t why_len)
{
    size_t scheme = !strncasecmp(value, "http://", 7) ? 7 : !strncasecmp(value, "https://", 8) ? 8 : 0;
    if (scheme && value[scheme] && value[scheme] != '/')
        return 0;
    snprintf(why_out, why_len, "%s \"%s\" is not an http:// or https:// URL with a host", name, value);
    return -1;
}

/* "[scepd] listen_tsl is not a known setting; did you mean listen_tls?" */
static int unknown_setting(options *o, const char *section, const char *name, const char *const *known,
                           size_t count)
{
    const char *near = util_suggest(name, known, count);
    snprintf(o->config_error, sizeof o->config_error, "[%s] %s is not a known setting%s%s%s", section, name,
             near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
    return 0;
}

static const char *const scepd_keys[] = {"state_dir",
                                         "listen",
                                         "listen_tls",
                                         "max_keys",
                                         "scep_url",
                                         "admin_password_file",
                                         "kek_file",
                                         "server_name",
                                         "max_connections",
                                         "max_connections_per_address",
                                         "request_timeout",
                                         "handshake_timeout",
                                         "log",
                                         "log_level",
                                         "user",
                                         "tpm_tcti",
                                         "kek_tpm_dir"};
static const char *const function_keys[] = {"export_key", "export_cert", "export_chain", "command"};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    options *o = user;
    if (!strcmp(section, "scepd")) {
        if (!strcmp(name, "state_dir"))
            snprintf(o->state_dir, sizeof o->state_dir, "%s", value);
        else if (!strcmp(name, "listen"))
            snprintf(o->listen, sizeof o->listen, "%s", value);
        else if (!strcmp(name, "listen_tls"))
            snprintf(o->listen_tls, sizeof o->listen_tls, "%s", value);
        else if (!strcmp(name, "max_keys"))
            o->agent.max_keys = atoi(value);
        else if (!strcmp(name, "scep_url"))
            snprintf(o->initial_url, sizeof o->initial_url, "%s", value);
        else if (!strcmp(name, "admin_password_file"))
            snprintf(o->admin_password_file, sizeof o->admin_password_file, "%s", value);
        else if (!strcmp(name, "user"))
            snprintf(o->user, sizeof o->user, "%s", value);
        else if (!strcmp(name, "kek_file"))
            snprintf(o->kek_file, sizeof o->kek_file, "%s", value);
        else if (!strcmp(name, "server_name"))
            snprintf(o->server_names, sizeof o->server_names, "%s", value);
        else if (!strcmp(name, "kek_tpm_dir"))
            snprintf(o->kek_tpm_dir, sizeof o->kek_tpm_dir, "%s", value);
        else if (!strcmp(name, "tpm_tcti"))
            snprintf(o->tpm_tcti, sizeof o->tpm_tcti, "%s", value);
        else if (!strcmp(name, "max_connections"))
            return config_unsigned(o, name, value, 1, 100000, &o->edge.max_connections);
        else if (!strcmp(name, "max_connections_per_address"))
            return config_unsigned(o, name, value, 1, 100000, &o->edge.max_per_address);
        else if (!strcmp(name, "request_timeout"))
            return config_unsigned(o, name, value, 1, 3600, &o->edge.request_timeout_s);
        else if (!strcmp(name, "handshake_timeout"))
            return config_unsigned(o, name, value, 1, 3600, &o->edge.handshake_timeout_s);
        else if (!strcmp(name, "log") && (!strcmp(value, "syslog") || !strcmp(value, "stderr")))
            o->use_syslog = !strcmp(value, "syslog");
        else if (!strcmp(name, "log_level") &&
                 (!strcmp(value, "debug") || !strcmp(value, "info") || !strcmp(value, "warning")))
            o->level = !strcmp(value, "debug")     ? UTIL_LOG_DEBUG
                       : !strcmp(value, "warning") ? UTIL_LOG_WARN
                                                   : UTIL_LOG_INFO;
        else if (!strcmp(name, "log") || !strcmp(name, "log_level")) {
            snprintf(o->config_error, sizeof o->config_error, "%s \"%s\" is not one of %s", name, value,
                     !strcmp(name, "log") ? "stderr, syslog" : "debug, info, warning");
            return 0;
        } else
            return unknown_setting(o, section, name, scepd_keys, sizeof scepd_keys / sizeof scepd_keys[0]);
        if ((!strcmp(name, "listen") || !strcmp(name, "listen_tls")) &&
            check_listen(name, value, o->config_error, sizeof o->config_error) != 0)
            return 0;
        if (!strcmp(name, "scep_url") &&
            check_scep_url(name, value, o->config_error, sizeof o->config_error) != 0)
            return 0;
        if (!strcmp(name, "max_keys") && (o->agent.max_keys < 1 || o->agent.max_keys > 1000)) {
            snprintf(o->config_error, sizeof o->config_error, "max_keys must be from 1 to 1000");
            return 0;
        }
        return 1;
    }
    if (!strncmp(section, "function ", 9)) {
        const char *fname = section + 9;
        agent_function *f = NULL;
        for (size_t i = 0; i < o->agent.function_count; i++)
            if (!strcmp(o->agent.functions[i].name, fname))
                f = &o->agent.functions[i];
        if (!f) {
            if (o->agent.function_count >= AGENT_MAX_FUNCTIONS || strlen(fname) == 0 || strlen(fname) > 31) {
                snprintf(o->config_error, sizeof o->config_error, "function \"%s\": name or count", fname);
                return 0;
            }
            f = &o->agent.functions[o->agent.function_count++];
            snprintf(f->name, sizeof f->name, "%s", fname);
        }
        if (!strcmp(name, "export_key"))
            snprintf(f->export_key, sizeof f->export_key, "%s", value);
        else if (!strcmp(name, "export_cert"))
            snprintf(f->export_cert, sizeof f->export_cert, "%s", value);
        else if (!strcmp(name, "export_chain"))
            snprintf(f->export_chain, sizeof f->export_chain, "%s", value);
        else if (!strcmp(name, "command"))
            snprintf(f->command, sizeof f->command, "%s", value);
        else
            return unknown_setting(o, section, name, function_keys,
                                   sizeof function_keys / sizeof function_keys[0]);
        return 1;
    }
    snprintf(o->config_error, sizeof o->config_error,
             "unknown section [%s]%s; the sections are [scepd] and [function NAME]", section,
             util_edit_distance(section, "scepd") <= 2 ? " (did you mean [scepd]?)" : "");
    return 0;
}

/* ini_parse goes on after a failing line and reports the first one: keep the
 * words of that first failure. */
static int on_ini_first_error(void *user, const char *section, const char *name, const char *value)
{
    options *o = user;
    return o->config_error[0] ? 1 : on_ini(user, section, name, value);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: scepd [--config FILE] [--state DIR] [--listen 127.0.0.1:8080]\n"
            "             [--listen-tls 127.0.0.1:8443] [--admin-password-file F] [--scep-url URL]\n"
            "             [--kek-file FILE]\n"
            "             [--syslog] [--debug] [-n] [--version]\n"
            "\n"
            "  -c, --config FILE            INI configuration (scepd.conf(5)). Default: none.\n"
            "  -s, --state DIR              state directory. Default: /var/lib/scepd.\n"
            "  -l, --listen HOST:PORT       HTTP listener. Default: 127.0.0.1:8080.\n"
            "  -t, --listen-tls HOST:PORT   HTTPS listener. Default: none.\n"
            "  -p, --admin-password-file F  first admin password. Default: SCEPD_ADMIN_PASSWORD,\n"
            "                               else generated and printed once.\n"
            "  -u, --scep-url URL           initial SCEP server (http:// or https://). Default: none.\n"
            "  -k, --kek-file FILE          key-encryption key that seals the stored private keys\n"
            "                               (32 bytes, created 0600 when missing; outside the state\n"
            "                               directory). Used when no TPM and no systemd credential\n"
            "                               scepd-kek ($CREDENTIALS_DIRECTORY) gives one. Default: none.\n"
            "      --syslog                 log to syslog. Default: stderr.\n"
            "      --debug                  log debug messages. Default: info and above.\n"
            "  -n                           check the configuration and exit.\n"
            "      --version                print the version and exit.\n"
            "  -h, --help                   print this help and exit.\n"
            "\n"
            "Long options are taken only when spelt out in full.\n");
}

#define UNKNOWN_OPTION (-2)

/* getopt_long takes any unambiguous prefix of a long option; scepd takes only
 * the whole name, so that a later option cannot change what a script means.
 * Returns the long name when the token that getopt_long consumed is not it. */
static const char *abbreviated(char **argv, const struct option *opts, int index)
{
    if (index < 0)
        return NULL;
    /* a value in the next argument: the option is the one before it */
    const char *token = optarg && optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1];
    size_t n = strlen(opts[index].name);
    if (!strncmp(token, "--", 2) && !strncmp(token + 2, opts[index].name, n) &&
        (token[2 + n] == '\0' || token[2 + n] == '='))
        return NULL;
    return token;
}

static int unknown_option(const char *token, const struct option *opts, int missing_value, util_error *err)
{
    if (missing_value) {
        util_error_set(err, UTIL_ERR_USAGE, "option %s needs a value; see scepd --help", token);
        return UNKNOWN_OPTION;
    }
    char name[UTIL_SUGGEST_MAX_WORD + 1];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(token, "="), token);
    const char *names[32];
    size_t count = 0;
    for (size_t i = 0; opts[i].name && count < sizeof names / sizeof names[0]; i++)
        names[count++] = opts[i].name;
    const char *near = !strncmp(name, "--", 2) ? util_suggest(name + 2, names, count) : NULL;
    if (near)
        util_error_set(err, UTIL_ERR_USAGE, "unknown option \"%s\"; did you mean --%s?", name, near);
    else
        util_error_set(err, UTIL_ERR_USAGE, "unknown option \"%s\"; see scepd --help", name);
    return UNKNOWN_OPTION;
}

static int parse_args(int argc, char **argv, options *o, util_error *err)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"state", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'l'},
        {"listen-tls", required_argument, NULL, 't'},
        {"admin-password-file", required_argument, NULL, 'p'},
        {"scep-url", required_argument, NULL, 'u'},
        {"kek-file", required_argument, NULL, 'k'},
        {"syslog", no_argument, NULL, 'S'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* the config file first, then the command line overrides it */
    for (int i = 1; i < argc; i++)
        if (i < argc - 1 && (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")))
            o->config = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            o->config = argv[i] + 9;
    if (o->config) {
        int line = ini_parse(o->config, on_ini_first_error, o);
        if (line < 0)
            return util_error_set(err, UTIL_ERR_CONFIG, "%s: cannot be read", o->config);
        if (line > 0)
            return util_error_set(err, UTIL_ERR_CONFIG, "%s line %d: %s", o->config, line,
                                  o->config_error[0] ? o->config_error : "syntax error");
    }
    int c, index = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:s:l:t:p:u:k:nh", opts, &index)) != -1) {
        const char *whole = c != '?' && c != ':' ? abbreviated(argv, opts, index) : NULL;
        index = -1;
        if (whole)
            return unknown_option(whole, opts, 0, err);
        switch (c) {
        case 'c': break;
        case 's': snprintf(o->state_dir, sizeof o->state_dir, "%s", optarg); break;
        case 'l': snprintf(o->listen, sizeof o->listen, "%s", optarg); break;
        case 't': snprintf(o->listen_tls, sizeof o->listen_tls, "%s", optarg); break;
        case 'p': snprintf(o->admin_password_file, sizeof o->admin_password_file, "%s", optarg); break;
        case 'u': snprintf(o->initial_url, sizeof o->initial_url, "%s", optarg); break;
        case 'k': snprintf(o->kek_file, sizeof o->kek_file, "%s", optarg); break;
        case 'S': o->use_syslog = true; break;
        case 'd': o->level = UTIL_LOG_DEBUG; break;
        case 'n': o->check_only = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("scepd %s\n", SCEPD_VERSION); exit(0);
        default: return unknown_option(argv[optind - 1], opts, c == ':', err);
        }
    }
    if (optind < argc)
        return util_error_set(err, UTIL_ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
    /* the command line overrides the file: check what it set too */
    char why[256];
    if (check_listen("--listen", o->listen, why, sizeof why) != 0 ||
        (o->listen_tls[0] && check_listen("--listen-tls", o->listen_tls, why, sizeof why) != 0) ||
        (o->initial_url[0] && check_scep_url("--scep-url", o->initial_url, why, sizeof why) != 0))
        return util_error_set(err, UTIL_ERR_USAGE, "%s", why);
    return 0;
}

/* Binds addr (port 0: one the kernel picks) and writes the address actually
 * bound to bound, so that tests and scripts can take a free port without a
 * race between choosing it and binding it. */
int bind_http(edge *e, struct evhttp *http, const char *addr, char *bound, size_t bound_len, util_error *err)
{
    char host[128];
    int port;
    const char *why = NULL;
    if (split_address(addr, host, sizeof host, &port, &why) != 0)
        return util_error_set(err, UTIL_ERR_CONFIG, "listen address \"%s\" %s", addr, why);
    struct evhttp_bound_socket *sock = NULL;
    if (edge_bind(e, http, host, (unsigned)port, &sock, err) != 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char name[INET6_ADDRSTRLEN];
    snprintf(bound, bound_len, "%s", addr);
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, name, sizeof name))
            snprintf(bound, bound_len, "[%s]:%u", name, (unsigned)ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &in4->sin_addr, name, sizeof name))
            snprintf(bound, bound_len, "%s:%u", name, (unsigned)ntohs(in4->sin_port));
    }
    return 0;
}

SSL *tls_new(void *arg)
{
    tls_holder *h = arg;
    return h->ctx ? SSL_new(h->ctx) : NULL;
}

void on_tls_change(void *arg, const char *key_pem, const char *cert_pem, const char *chain_pem)
{
    tls_holder *h = arg;
    SSL_CTX *ctx = NULL;
    util_error err;
    if (crypto_tls_server_ctx(key_pem, cert_pem, chain_pem, &ctx, &err) != 0) {
        log_error("the HTTPS listener keeps its certificate: %s", err.detail);
        return;
    }
    SSL_CTX_free(h->ctx); /* connections in progress hold their own reference */
    h->ctx = ctx;
    X509 *cert = NULL;
    if (crypto_cert_load((const uint8_t *)cert_pem, strlen(cert_pem), &cert, &err) == 0) {
        crypto_cert_fingerprint(cert, EVP_sha256(), h->fingerprint, sizeof h->fingerprint, true);
        log_info("HTTPS listener presents the certificate with SHA-256 %s", h->fingerprint);
        X509_free(cert);
    }
}

static void add_host_name(options *o, const char *name, size_t len)
{
    while (len && (name[len - 1] == '.' || name[len - 1] == ' '))
        len--;
    if (len == 0 || len >= sizeof o->host_name_buf[0] || o->host_name_count >= MAX_HOST_NAMES)
        return;
    for (size_t i = 0; i < o->host_name_count; i++)
        if (strlen(o->host_names[i]) == len && !strncasecmp(o->host_names[i], name, len))
            return;
    char *slot = o->host_name_buf[o->host_name_count];
    memcpy(slot, name, len);
    slot[len] = '\0';
    o->host_names[o->host_name_count++] = slot;
}

/* The names a request may give in Host: the listen addresses, every address
 * of the machine's interfaces (for listeners on 0.0.0.0 or ::), the host
 * name, localhost, and the configured server_name list. */
void collect_host_names(options *o)
{
    char host[128];
    int port;
    const char *why = NULL;
    const char *listens[] = {o->listen, o->listen_tls};
    for (size_t i = 0; i < 2; i++)
        if (listens[i][0] && split_address(listens[i], host, sizeof host, &port, &why) == 0)
            add_host_name(o, host, strlen(host));
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            char text[INET6_ADDRSTRLEN];
            if (!i->ifa_addr)
                continue;
            if (i->ifa_addr->sa_family == AF_INET &&
                inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, text, sizeof text))
                add_host_name(o, text, strlen(text));
            else if (i->ifa_addr->sa_family == AF_INET6 &&
                     inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, text,
                               sizeof text) &&
                     !strchr(text, '%'))
                add_host_name(o, text, strlen(text));
        }
        freeifaddrs(ifs);
    }
    char hostname[256] = "";
    if (gethostname(hostname, sizeof hostname - 1) == 0)
        add_host_name(o, hostname, strlen(hostname));
    add_host_name(o, "localhost", 9);
    for (const char *p = o->server_names; *p;) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        add_host_name(o, p, n);
        p += n;
    }
}

/* A generated admin password goes to a file only root (or scepd's user) can
 * read; the log says where, never what. */
int save_generated_password(const options *o, const char *password, util_error *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/admin-password", o->state_dir);
    char *line = NULL;
    int n = asprintf(&line, "%s\n", password);
    if (n < 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    /* the agent works in its state directory (scepd_procs.c): a relative name */
    int rc = util_file_write_atomic("admin-password", line, (size_t)n, 0600, err);
    OPENSSL_cleanse(line, (size_t)n);
    free(line);
    if (rc == 0)
        log_warn("the admin user was created with a generated password; it is in %s (mode 0600): log in, "
                 "change it, then delete the file",
                 path);
    return rc;
}

char *read_admin_password(const options *o, util_error *err)
{
    const char *env = getenv("SCEPD_ADMIN_PASSWORD");
    char *copy = env && !o->admin_password_file[0] ? strdup(env) : NULL;
    /* gone from the environment (and from /proc/PID/environ), so that no
     * child process of ours can show it */
    if (env) {
        OPENSSL_cleanse((char *)env, strlen(env));
        unsetenv("SCEPD_ADMIN_PASSWORD");
    }
    if (o->admin_password_file[0]) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (util_file_read(o->admin_password_file, 1024, &data, &len, err) != 0)
            return NULL;
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            data[--len] = '\0';
        return (char *)data;
    }
    return copy;
}

/* No core dumps (they would hold keys, passwords and session tokens), and
 * every descriptor the hard limit allows: connections are capped below it. */
void harden_process(void)
{
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_warn("core dumps could not be switched off: %s", strerror(errno));
    unsigned long nofile = edge_raise_nofile();
    log_debug("open-file limit %lu", nofile);
}

int main(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    snprintf(o.state_dir, sizeof o.state_dir, "/var/lib/scepd");
    snprintf(o.listen, sizeof o.listen, "127.0.0.1:8080");
    o.level = UTIL_LOG_INFO;
    util_error err = {0};
    signal(SIGPIPE, SIG_IGN);
    int parsed = parse_args(argc, argv, &o, &err);
    if (parsed == UNKNOWN_OPTION) {
        fprintf(stderr, "error[%s]: %s\n", util_err_code(err.code), err.detail);
        return 2;
    }
    if (parsed != 0) {
        fprintf(stderr, "error[%s]: %s (%s)\nremedy: %s\n", util_err_code(err.code),
                util_err_message(err.code), err.detail, util_err_remedy(err.code));
        return 2;
    }
    if (o.check_only) {
        printf("configuration OK: state %s, listen %s%s%s, %zu function(s)\n", o.state_dir, o.listen,
               o.listen_tls[0] ? ", listen_tls " : "", o.listen_tls, o.agent.function_count);
        return 0;
    }
    util_log_setup("scepd", o.level, o.use_syslog);
    /* the tpm2 provider reads it when it loads, on the first key in the TPM */
    if (o.tpm_tcti[0] && setenv("TPM2OPENSSL_TCTI", o.tpm_tcti, 1) != 0) {
        fprintf(stderr, "error: setting TPM2OPENSSL_TCTI\n");
        return 2;
    }
    harden_process();
    /* the KEK lives in locked memory that is wiped when freed; without a
     * secure heap it is still wiped, only not locked */
    if (CRYPTO_secure_malloc_init(32 * 1024, 32) != 1)
        log_warn("no locked memory for the key-encryption key (RLIMIT_MEMLOCK?); it is kept in "
                 "ordinary memory and still wiped at exit");
    if (http_global_init() != 0) {
        fprintf(stderr, "error: libcurl could not be initialised\n");
        return 2;
    }
    int rc = scepd_run(&o, &err);
    http_global_cleanup();
    crypto_tpm_unload();
    CRYPTO_secure_malloc_done();
    if (rc != 0 && err.code == UTIL_ERR_NONE)
        return 1; /* the process that failed said why */
    if (rc != 0) {
        log_error("%s: %s (%s) — %s", util_err_code(err.code), util_err_message(err.code), err.detail,
                  util_err_remedy(err.code));
        return 1;
    }
    return 0;
}
