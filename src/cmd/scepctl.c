/* scepctl: every SCEP operation, one shot, for scripts and troubleshooting. */
#include <getopt.h>
#include <signal.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "cmd/scepctl.h"
#include "util/escape.h"
#include "util/file.h"
#include "util/log.h"
#include "util/ossl.h"
#include "util/suggest.h"

#define SECRET_FILE_MAX 4096

/* ---- options shared by the commands ---- */

enum {
    OPT_CN = 256,
    OPT_ORG,
    OPT_SUBJECT,
    OPT_SAN,
    OPT_CHALLENGE,
    OPT_CHALLENGE_FILE,
    OPT_KEY_TYPE,
    OPT_KEY,
    OPT_DIGEST,
    OPT_CIPHER,
    OPT_KEY_USAGE,
    OPT_EKU,
    OPT_METHOD,
    OPT_CA_FP,
    OPT_POLL_INT,
    OPT_POLL_COUNT,
    OPT_TIMEOUT,
    OPT_STATE,
    OPT_KEY_OUT,
    OPT_CERT_OUT,
    OPT_CHAIN_OUT,
    OPT_CERT,
    OPT_NEW_KEY_TYPE,
    OPT_REUSE_KEY,
    OPT_MODE,
    OPT_SERIAL,
    OPT_SIGNER,
    OPT_SIGNER_KEY,
    OPT_TLS_CA,
    OPT_TLS_PIN,
    OPT_TLS_PIN_ONLY,
    OPT_PROXY,
    OPT_CONNECT_TIMEOUT,
    OPT_MAX_RESPONSE,
    OPT_INSECURE,
    OPT_TEMPLATE,
    OPT_EMAIL,
    OPT_MARKDOWN,
    OPT_DECIMAL,
    OPT_FORCE,
    OPT_VERSION,
    OPT_KEY_STORAGE,
    OPT_TPM_TCTI,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, 'u'},
    {"ca-ident", required_argument, NULL, 'i'},
    {"out", required_argument, NULL, 'o'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"cn", required_argument, NULL, OPT_CN},
    {"org", required_argument, NULL, OPT_ORG},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"san", required_argument, NULL, OPT_SAN},
    {"email", required_argument, NULL, OPT_EMAIL},
    {"challenge", required_argument, NULL, OPT_CHALLENGE},
    {"challenge-file", required_argument, NULL, OPT_CHALLENGE_FILE},
    {"key-type", required_argument, NULL, OPT_KEY_TYPE},
    {"key", required_argument, NULL, OPT_KEY},
    {"cert", required_argument, NULL, OPT_CERT},
    {"digest", required_argument, NULL, OPT_DIGEST},
    {"cipher", required_argument, NULL, OPT_CIPHER},
    {"key-usage", required_argument, NULL, OPT_KEY_USAGE},
    {"eku", required_argument, NULL, OPT_EKU},
    {"template", required_argument, NULL, OPT_TEMPLATE},
    {"method", required_argument, NULL, OPT_METHOD},
    {"ca-fingerprint", required_argument, NULL, OPT_CA_FP},
    {"poll-interval", required_argument, NULL, OPT_POLL_INT},
    {"poll-count", required_argument, NULL, OPT_POLL_COUNT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"max-response", required_argument, NULL, OPT_MAX_RESPONSE},
    {"state", required_argument, NULL, OPT_STATE},
    {"key-out", required_argument, NULL, OPT_KEY_OUT},
    {"cert-out", required_argument, NULL, OPT_CERT_OUT},
    {"chain-out", required_argument, NULL, OPT_CHAIN_OUT},
    {"new-key-type", required_argument, NULL, OPT_NEW_KEY_TYPE},
    {"reuse-key", no_argument, NULL, OPT_REUSE_KEY},
    {"mode", required_argument, NULL, OPT_MODE},
    {"serial", required_argument, NULL, OPT_SERIAL},
    {"decimal", no_argument, NULL, OPT_DECIMAL},
    {"signer", required_argument, NULL, OPT_SIGNER},
    {"signer-key", required_argument, NULL, OPT_SIGNER_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-pin", required_argument, NULL, OPT_TLS_PIN},
    {"tls-pin-no-host-check", no_argument, NULL, OPT_TLS_PIN_ONLY},
    {"proxy", required_argument, NULL, OPT_PROXY},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"markdown", no_argument, NULL, OPT_MARKDOWN},
    {"force", no_argument, NULL, OPT_FORCE},
    {"version", no_argument, NULL, OPT_VERSION},
    {"key-storage", required_argument, NULL, OPT_KEY_STORAGE},
    {"tpm-tcti", required_argument, NULL, OPT_TPM_TCTI},
    {NULL, 0, NULL, 0},
};

static int number(const char *text, long min, long max, long *out, util_error *err)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min || v > max)
        return util_error_set(err, UTIL_ERR_USAGE, "\"%s\" is not a number from %ld to %ld", text, min, max);
    *out = v;
    return 0;
}

/* The key types crypto_key_spec_parse accepts, as the help and errors name them. */
static const char *const key_types[] = {"rsa:1024", "rsa:2048", "rsa:3072",
                                        "rsa:4096", "ec:P-256", "ec:P-384"};

/* A key type that does not parse is a usage error naming the accepted forms,
 * found before any key is generated or anything is sent. */
static int check_key_type(const char *option, const char *arg, util_error *err)
{
    crypto_key_spec spec;
    util_error ignored = {0};
    if (crypto_key_spec_parse(arg, &spec, &ignored) == 0)
        return 0;
    const char *near = util_suggest(arg, key_types, sizeof key_types / sizeof key_types[0]);
    char hint[64] = "";
    if (near)
        snprintf(hint, sizeof hint, "did you mean %s? ", near);
    return util_error_set(
        err, UTIL_ERR_USAGE,
        "%s \"%s\" is not a key type; %sthe accepted forms are rsa:1024, rsa:2048, rsa:3072, rsa:4096, "
        "ec:P-256 or ec:P-384",
        option, arg, hint);
}

static int parse_option(options *o, int c, const char *arg, util_error *err)
{
    long v = 0;
    switch (c) {
    case 'u': o->cfg.url = arg; break;
    case 'i': o->cfg.ca_identifier = arg; break;
    case 'o': o->out = arg; break;
    case 'v': o->cfg.verbose = true; break;
    case 'h': o->help = true; break;
    case OPT_CN: o->cn = arg; break;
    case OPT_ORG: o->org = arg; break;
    case OPT_SUBJECT: o->subject = arg; break;
    case OPT_EMAIL: o->email = arg; break;
    case OPT_SAN:
        if (o->san_count >= CRYPTO_MAX_SANS)
            return util_error_set(err, UTIL_ERR_USAGE, "at most %d --san", CRYPTO_MAX_SANS);
        o->sans[o->san_count++] = arg;
        break;
    case OPT_EKU:
        if (o->eku_count >= CRYPTO_MAX_EKUS)
            return util_error_set(err, UTIL_ERR_USAGE, "at most %d --eku", CRYPTO_MAX_EKUS);
        o->ekus[o->eku_count++] = arg;
        break;
    case OPT_CHALLENGE: o->challenge = arg; break;
    case OPT_CHALLENGE_FILE: o->challenge_file = arg; break;
    case OPT_KEY_TYPE: o->key_type = arg; return check_key_type("--key-type", arg, err);
    case OPT_KEY: o->key = arg; break;
    case OPT_CERT: o->cert = arg; break;
    case OPT_DIGEST:
        if (!(o->cfg.digest = scep_digest_by_name(arg)))
            return util_error_set(err, UTIL_ERR_UNSUPPORTED_ALGORITHM, "digest \"%s\"", arg);
        break;
    case OPT_CIPHER:
        if (!(o->cfg.cipher = scep_cipher_by_name(arg)))
            return util_error_set(err, UTIL_ERR_UNSUPPORTED_ALGORITHM, "cipher \"%s\"", arg);
        break;
    case OPT_KEY_USAGE: o->key_usage = arg; break;
    case OPT_TEMPLATE: o->template_name = arg; break;
    case OPT_METHOD:
        if (!strcmp(arg, "auto"))
            o->cfg.method = CLIENT_METHOD_AUTO;
        else if (!strcmp(arg, "get"))
            o->cfg.method = CLIENT_METHOD_GET;
        else if (!strcmp(arg, "post"))
            o->cfg.method = CLIENT_METHOD_POST;
        else
            return util_error_set(err, UTIL_ERR_USAGE, "--method is auto, get or post");
        break;
    case OPT_CA_FP:
        if (!crypto_fingerprint_valid(arg))
            return util_error_set(err, UTIL_ERR_USAGE, "--ca-fingerprint wants sha256:HEX (64 hex digits)");
        o->cfg.ca_fingerprint = arg;
        break;
    case OPT_POLL_INT: return number(arg, 1, 86400, &o->poll_interval, err);
    case OPT_POLL_COUNT: return number(arg, 0, 100000, &o->poll_count, err);
    case OPT_TIMEOUT:
        if (number(arg, 1, 3600, &v, err) != 0)
            return -1;
        o->cfg.http.total_timeout_ms = v * 1000;
        break;
    case OPT_CONNECT_TIMEOUT:
        if (number(arg, 1, 3600, &v, err) != 0)
            return -1;
        o->cfg.http.connect_timeout_ms = v * 1000;
        break;
    case OPT_MAX_RESPONSE:
        if (number(arg, 1024, 1L << 30, &v, err) != 0)
            return -1;
        o->cfg.http.max_response = (size_t)v;
        break;
    case OPT_STATE: o->state = arg; break;
    case OPT_KEY_OUT: o->key_out = arg; break;
    case OPT_CERT_OUT: o->cert_out = arg; break;
    case OPT_CHAIN_OUT: o->chain_out = arg; break;
    case OPT_NEW_KEY_TYPE: o->new_key_type = arg; return check_key_type("--new-key-type", arg, err);
    case OPT_REUSE_KEY: o->reuse_key = true; break;
    case OPT_MODE: o->mode = arg; break;
    case OPT_SERIAL: o->serial = arg; break;
    case OPT_DECIMAL: o->decimal = true; break;
    case OPT_SIGNER: o->signer = arg; break;
    case OPT_SIGNER_KEY: o->signer_key = arg; break;
    case OPT_TLS_CA: o->cfg.http.ca_file = arg; break;
    case OPT_TLS_PIN:
        if (!crypto_fingerprint_valid(arg))
            return util_error_set(err, UTIL_ERR_USAGE, "--tls-pin wants sha256:HEX");
        o->cfg.http.pin_sha256 = arg;
        break;
    case OPT_TLS_PIN_ONLY: o->cfg.http.pin_skip_host_check = true; break;
    case OPT_PROXY: o->cfg.http.proxy = arg; break;
    case OPT_INSECURE: o->cfg.http.insecure = true; break;
    case OPT_MARKDOWN: o->markdown = true; break;
    case OPT_FORCE: o->force = true; break;
    case OPT_VERSION: o->version = true; break;
    case OPT_KEY_STORAGE:
        if (crypto_key_storage_parse(arg, &o->key_storage) != 0)
            return util_error_set(err, UTIL_ERR_USAGE, "--key-storage is software or tpm2, not \"%s\"", arg);
        break;
    case OPT_TPM_TCTI: o->tpm_tcti = arg; break;
    default: return util_error_set(err, UTIL_ERR_USAGE, "unknown option");
    }
    return 0;
}

#define UNKNOWN_OPTION (-2)

/* An option getopt_long did not take: one line naming it and, when there is
 * one, the nearest known option. Returns UNKNOWN_OPTION. */
static int unknown_option(const char *command, const char *arg, int missing_value, util_error *err)
{
    if (missing_value) {
        util_error_set(err, UTIL_ERR_USAGE, "option %s needs a value; see scepctl %s --help", arg, command);
        return UNKNOWN_OPTION;
    }
    char name[UTIL_SUGGEST_MAX_WORD + 1];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    const char *names[sizeof long_options / sizeof long_options[0]];
    size_t n = 0;
    for (size_t i = 0; long_options[i].name; i++)
        names[n++] = long_options[i].name;
    const char *near = !strncmp(name, "--", 2) ? util_suggest(name + 2, names, n) : NULL;
    if (near)
        util_error_set(err, UTIL_ERR_USAGE, "unknown option \"%s\"; did you mean --%s?", name, near);
    else
        util_error_set(err, UTIL_ERR_USAGE, "unknown option \"%s\"; see scepctl %s --help", name, command);
    return UNKNOWN_OPTION;
}

static int parse_options(int argc, char **argv, options *o, util_error *err)
{
    memset(o, 0, sizeof *o);
    o->poll_interval = 60;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":u:i:o:vh", long_options, NULL)) != -1) {
        if (c == '?' || c == ':')
            return unknown_option(argv[0], argv[optind - 1], c == ':', err);
        if (parse_option(o, c, optarg, err) != 0)
            return -1;
    }
    if (optind < argc)
        o->positional = argv[optind++];
    if (optind < argc)
        return util_error_set(err, UTIL_ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
    return 0;
}

static int need(const char *value, const char *name, util_error *err)
{
    return value ? 0 : util_error_set(err, UTIL_ERR_USAGE, "%s is required", name);
}

/* Keys, certificates and saved requests are never replaced without --force;
 * checked before any key is generated or anything is sent. */
static int refuse_existing(const options *o, const char *const *paths, size_t count, util_error *err)
{
    struct stat st;
    for (size_t i = 0; i < count && !o->force; i++)
        if (paths[i] && lstat(paths[i], &st) == 0)
            return util_error_set(err, UTIL_ERR_OUTPUT_EXISTS, "%s", paths[i]);
    return 0;
}

/* enroll and renew without --state: a deferred request is saved next to the
 * key, printer1.key -> printer1.state. */
static int default_state(options *o, util_error *err)
{
    if (o->state)
        return 0;
    const char *slash = strrchr(o->key_out, '/');
    const char *base = slash ? slash + 1 : o->key_out;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - o->key_out) : strlen(o->key_out);
    int n = snprintf(o->default_state, sizeof o->default_state, "%.*s.state", (int)stem, o->key_out);
    if (n < 0 || (size_t)n >= sizeof o->default_state)
        return util_error_set(err, UTIL_ERR_USAGE, "--key-out path too long; give --state FILE");
    o->state = o->default_state;
    o->state_defaulted = true;
    return 0;
}

/* ---- output ---- */

void scepctl_report(const util_error *err)
{
    fprintf(stderr, "error[%s]: %s", util_err_code(err->code), util_err_message(err->code));
    char detail[sizeof err->detail * 4];
    if (err->detail[0])
        fprintf(stderr, " (%s)", util_escape(err->detail, strlen(err->detail), detail, sizeof detail));
    fprintf(stderr, "\nremedy: %s\n", util_err_remedy(err->code));
}

static void print_cert_line(X509 *x, const char *role)
{
    crypto_cert_info info;
    crypto_cert_info_get(x, &info);
    char until[32];
    struct tm tm;
    gmtime_r(&info.not_after, &tm);
    strftime(until, sizeof until, "%Y-%m-%d", &tm);
    printf("%s: %s\n  issuer:  %s\n  key:     %s, valid until %s%s%s\n  sha256:  %s\n  sha1:    %s\n", role,
           info.subject, info.issuer, info.key, until, info.key_usage[0] ? ", " : "", info.key_usage,
           info.sha256, info.sha1);
}

/* ---- commands ---- */

static int cmd_getcaps(options *o, util_error *err)
{
    client_server srv = {0};
    if (need(o->cfg.url, "-u URL", err) || client_get_caps(&o->cfg, &srv, err) != 0)
        return -1;
    /* Within enroll an HTTP error means "no caps"; asked for alone, it is an error. */
    if (srv.caps_status && srv.caps_status != 200) {
        util_error_set(err, srv.caps_status >= 500 ? UTIL_ERR_HTTP_SERVER_ERROR : UTIL_ERR_HTTP_STATUS,
                       "GetCACaps: HTTP %ld", srv.caps_status);
        client_server_clear(&srv);
        return -1;
    }
    char text[2048];
    scep_caps_format(&srv.caps, text, sizeof text);
    fputs(text, stdout);
    if (!srv.caps_answered)
        fprintf(stderr, "note: the server sent no capabilities (treated as none: GET, SHA-1, 3DES)\n");
    if (srv.server_header[0] && o->cfg.verbose)
        fprintf(stderr, "server: %s\n", srv.server_header);
    client_server_clear(&srv);
    return 0;
}

static int cmd_getca(options *o, util_error *err)
{
    client_server srv = {0};
    int rc = -1;
    if (need(o->cfg.url, "-u URL", err) || need(o->out, "-o CHAIN.pem", err) ||
        refuse_existing(o, &o->out, 1, err) != 0)
        return -1;
    if (client_get_ca(&o->cfg, &srv, time(NULL), err) != 0)
        goto out;
    for (int i = 0; i < sk_X509_num(srv.ca->all); i++) {
        X509 *x = sk_X509_value(srv.ca->all, i);
        print_cert_line(x, scep_cert_role_name(scep_ca_certs_role(srv.ca, x)));
    }
    rc = crypto_certs_write_file(o->out, srv.ca->all, err);
out:
    client_server_clear(&srv);
    return rc;
}

static int cmd_getnextca(options *o, util_error *err)
{
    client_server srv = {0};
    STACK_OF(X509) *next = NULL;
    int rc = -1;
    if (need(o->cfg.url, "-u URL", err) || need(o->out, "-o OUT.pem", err) ||
        refuse_existing(o, &o->out, 1, err) != 0)
        return -1;
    if (client_discover(&o->cfg, &srv, time(NULL), err) != 0)
        goto out;
    if (srv.caps_answered && !scep_caps_has(&srv.caps, SCEP_CAP_GETNEXTCACERT))
        fprintf(stderr, "note: the server does not list GetNextCACert; asking anyway\n");
    if (client_get_next_ca(&o->cfg, &srv, &next, err) != 0)
        goto out;
    for (int i = 0; i < sk_X509_num(next); i++)
        print_cert_line(sk_X509_value(next, i), "next");
    rc = crypto_certs_write_file(o->out, next, err);
out:
    util_x509_stack_free(next);
    client_server_clear(&srv);
    return rc;
}

static int read_challenge(const options *o, char **out, util_error *err)
{
    *out = NULL;
    if (o->challenge_file) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (util_file_read(o->challenge_file, SECRET_FILE_MAX, &data, &len, err) != 0)
            return -1;
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            data[--len] = '\0';
        *out = (char *)data;
    } else if (o->challenge) {
        *out = strdup(o->challenge);
    }
    return 0;
}

static int write_outputs(const char *key_out, const char *cert_out, const char *chain_out, EVP_PKEY *key,
                         const client_result *r, const client_server *srv, util_error *err)
{
    STACK_OF(X509) *one = sk_X509_new_null();
    STACK_OF(X509) *chain = chain_out ? client_result_chain(r, srv) : NULL;
    char *key_pem = NULL, *cert_pem = NULL, *chain_pem = NULL;
    size_t key_len = 0, cert_len = 0, chain_len = 0;
    int rc = -1;
    if (!one || sk_X509_push(one, r->cert) <= 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    /* the key and its certificates replace the old ones together, or none
     * of them does */
    util_file_out files[3];
    size_t n = 0;
    if (key_out) {
        if (crypto_key_to_pem(key, &key_pem, &key_len, err) != 0)
            goto out;
        files[n++] = (util_file_out){key_out, key_pem, key_len, 0600};
    }
    if (cert_out) {
        if (crypto_certs_to_pem(one, &cert_pem, &cert_len, err) != 0)
            goto out;
        files[n++] = (util_file_out){cert_out, cert_pem, cert_len, 0644};
    }
    if (chain_out && chain) {
        if (crypto_certs_to_pem(chain, &chain_pem, &chain_len, err) != 0)
            goto out;
        files[n++] = (util_file_out){chain_out, chain_pem, chain_len, 0644};
    }
    if (util_files_write_atomic(files, n, err) != 0)
        goto out;
    crypto_cert_info info;
    crypto_cert_info_get(r->cert, &info);
    printf("issued: %s\n  serial:  %s\n  sha256:  %s\n", info.subject, info.serial, info.sha256);
    rc = 0;
out:
    crypto_secret_free(key_pem, key_len);
    free(cert_pem);
    free(chain_pem);
    sk_X509_free(one);
    util_x509_stack_free(chain);
    return rc;
}

/* Polls a deferred request up to poll_count times; saves the state while it
 * stays pending. Returns 0 on SUCCESS, -1 with err set otherwise. */
static int finish(options *o, client_saved *s, client_result *r, util_error *err)
{
    client_config cfg = o->cfg;
    cfg.url = s->url;
    cfg.ca_identifier = s->ca_identifier;
    for (long i = 0; r->status == SCEP_STATUS_PENDING && i < o->poll_count; i++) {
        fprintf(stderr, "pending: polling again in %ld s (%ld of %ld)\n", o->poll_interval, i + 1,
                o->poll_count);
        sleep((unsigned)o->poll_interval);
        client_result_clear(r);
        if (client_poll(&cfg, &s->server, &s->txn, r, err) != 0)
            return -1;
    }
    if (r->status == SCEP_STATUS_SUCCESS)
        return write_outputs(s->key_out, s->cert_out, s->chain_out, s->txn.new_key, r, &s->server, err);
    if (r->status == SCEP_STATUS_PENDING) {
        const char *path = o->state;
        if (!path)
            return util_error_set(err, UTIL_ERR_PENDING, "no --state file to resume from");
        if (client_state_save(path, s, err) != 0)
            return -1;
        fprintf(stderr, "pending: transactionID %s; state saved to %s%s\n", s->txn.transaction_id, path,
                o->state_defaulted ? " (no --state given: next to --key-out)" : "");
        return util_error_set(err, UTIL_ERR_PENDING, "resume with: scepctl poll --state %s", path);
    }
    client_result_error(r, err);
    return -1;
}

static int fill_csr_params(const options *o, crypto_csr_params *p, const char *challenge, util_error *err)
{
    memset(p, 0, sizeof *p);
    p->common_name = o->cn;
    p->organization = o->org;
    p->subject = o->subject;
    p->email = o->email;
    memcpy(p->sans, o->sans, sizeof o->sans);
    p->san_count = o->san_count;
    memcpy(p->ekus, o->ekus, sizeof o->ekus);
    p->eku_count = o->eku_count;
    p->template_name = o->template_name;
    p->challenge_password = challenge;
    p->digest = o->cfg.digest;
    if (o->key_usage) {
        if (crypto_key_usage_parse(o->key_usage, &p->key_usage) != 0)
            return util_error_set(err, UTIL_ERR_USAGE,
                                  "--key-usage is none, digitalSignature, keyEncipherment or both");
        p->key_usage_set = true;
    }
    return 0;
}

static int saved_init(client_saved *s, const options *o)
{
    s->url = strdup(o->cfg.url);
    s->ca_identifier = o->cfg.ca_identifier ? strdup(o->cfg.ca_identifier) : NULL;
    s->key_out = o->key_out ? strdup(o->key_out) : NULL;
    s->cert_out = o->cert_out ? strdup(o->cert_out) : NULL;
    s->chain_out = o->chain_out ? strdup(o->chain_out) : NULL;
    return s->url ? 0 : -1;
}

static void explain_choice(const options *o, const client_saved *s)
{
    if (!o->cfg.verbose)
        return;
    const client_choice *c = &s->txn.choice;
    fprintf(stderr, "server: %s%s; using %s, %s, %s, %s\n",
            s->server.server_header[0] ? s->server.server_header : "unknown",
            s->server.caps_answered ? "" : " (no caps)", scep_message_type_name(s->txn.request_type),
            scep_digest_short_name(c->digest),
            scep_cipher_short_name(client_cipher_for_signer(c->cipher, s->txn.signer_key)),
            c->post ? "POST" : "GET");
    char key[64];
    crypto_key_describe(s->txn.signer_key, key, sizeof key);
    fprintf(stderr, "signer: %s%s, %s\n", key,
            crypto_key_storage_of(s->txn.signer_key) == CRYPTO_KEY_TPM2 ? " in the TPM" : "",
            s->txn.signer_key == s->txn.new_key ? "the new key"
            : s->txn.request_type == SCEP_MSG_PKCSREQ && crypto_cert_is_self_signed(s->txn.signer_cert)
                ? "a separate key with a self-signed certificate"
                : "the certificate being renewed");
}

/* Discovers the server, prepares the request (src/client), sends it, then
 * polls or saves the state. The CSR is wiped as soon as it is sent. */
static int send_enrollment(options *o, client_saved *s, const client_enrollment *e, client_result *r,
                           util_error *err)
{
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    if (client_discover(&o->cfg, &s->server, time(NULL), err) != 0)
        return -1;
    client_choose(&o->cfg, &s->server, &s->txn.choice);
    if (client_enrollment_prepare(&s->server, e, &s->txn, &csr, &csr_len, err) != 0)
        return -1;
    explain_choice(o, s);
    int rc = client_enroll(&o->cfg, &s->server, &s->txn, csr, csr_len, r, err);
    OPENSSL_clear_free(csr, csr_len);
    return rc != 0 ? -1 : finish(o, s, r, err);
}

static int cmd_enroll(options *o, util_error *err)
{
    client_saved s = {0};
    client_result r = {0};
    char *challenge = NULL;
    client_enrollment e = {.now = time(NULL)};
    int rc = -1;
    if (need(o->cfg.url, "-u URL", err) || need(o->key_out, "--key-out", err) ||
        need(o->cert_out, "--cert-out", err) || (!o->subject && need(o->cn, "--cn", err)) ||
        default_state(o, err) != 0)
        return -1;
    const char *outputs[] = {o->key_out, o->cert_out, o->chain_out, o->state_defaulted ? o->state : NULL};
    if (refuse_existing(o, outputs, sizeof outputs / sizeof outputs[0], err) != 0)
        return -1;
    if (read_challenge(o, &challenge, err) != 0 || fill_csr_params(o, &e.csr, challenge, err) != 0)
        goto out;
    if (saved_init(&s, o) != 0) {
        util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (o->key) {
        if (crypto_key_load_file(o->key, &s.txn.new_key, err) != 0)
            goto out;
    } else {
        crypto_key_spec spec;
        if (crypto_key_spec_parse(o->key_type ? o->key_type : "rsa:2048", &spec, err) != 0)
            goto out;
        if (o->key_storage == CRYPTO_KEY_TPM2)
            spec.storage = CRYPTO_KEY_TPM2;
        if (crypto_key_generate(&spec, &s.txn.new_key, err) != 0)
            goto out;
    }
    /* the signer key is held only for this enrollment: EVP_PKEY_free clears it */
    if (o->signer_key && crypto_key_load_file(o->signer_key, &e.signer_key, err) != 0)
        goto out;
    rc = send_enrollment(o, &s, &e, &r, err);
out:
    if (challenge)
        crypto_secret_free(challenge, strlen(challenge));
    EVP_PKEY_free(e.signer_key);
    client_result_clear(&r);
    client_saved_clear(&s);
    return rc;
}

static int renewal_mode(const options *o, client_renewal_mode *mode, util_error *err)
{
    const char *text = o->mode ? o->mode : "auto";
    if (!strcmp(text, "renewalreq"))
        *mode = CLIENT_RENEWAL_RENEWALREQ;
    else if (!strcmp(text, "pkcsreq"))
        *mode = CLIENT_RENEWAL_PKCSREQ;
    else if (!strcmp(text, "auto"))
        *mode = CLIENT_RENEWAL_AUTO;
    else
        return util_error_set(err, UTIL_ERR_USAGE, "--mode is auto, renewalreq or pkcsreq");
    return 0;
}

static int cmd_renew(options *o, util_error *err)
{
    client_saved s = {0};
    client_result r = {0};
    char *challenge = NULL;
    client_enrollment e = {.now = time(NULL)};
    X509 *old_cert = NULL;
    EVP_PKEY *old_key = NULL;
    int rc = -1;
    if (need(o->cfg.url, "-u URL", err) || need(o->key, "--key OLD.key", err) ||
        need(o->cert, "--cert OLD.crt", err) || need(o->key_out, "--key-out", err) ||
        need(o->cert_out, "--cert-out", err) || default_state(o, err) != 0)
        return -1;
    const char *outputs[] = {o->key_out, o->cert_out, o->chain_out, o->state_defaulted ? o->state : NULL};
    if (refuse_existing(o, outputs, sizeof outputs / sizeof outputs[0], err) != 0)
        return -1;
    if (renewal_mode(o, &e.mode, err) != 0 || read_challenge(o, &challenge, err) != 0 ||
        fill_csr_params(o, &e.csr, challenge, err) != 0)
        goto out;
    if (saved_init(&s, o) != 0 || crypto_key_load_file(o->key, &old_key, err) != 0 ||
        crypto_cert_load_file(o->cert, &old_cert, err) != 0)
        goto out;
    if (!crypto_cert_matches_key(old_cert, old_key)) {
        util_error_set(err, UTIL_ERR_KEY_MISMATCH, "%s and %s", o->key, o->cert);
        goto out;
    }
    if (o->reuse_key) {
        s.txn.new_key = old_key;
        EVP_PKEY_up_ref(s.txn.new_key);
    } else {
        crypto_key_spec spec;
        char same[32];
        if (!o->new_key_type) {
            if (EVP_PKEY_get_base_id(old_key) == EVP_PKEY_EC)
                snprintf(same, sizeof same, "ec:%d", EVP_PKEY_get_bits(old_key));
            else
                snprintf(same, sizeof same, "rsa:%d", EVP_PKEY_get_bits(old_key));
        }
        if (crypto_key_spec_parse(o->new_key_type ? o->new_key_type : same, &spec, err) != 0)
            goto out;
        if (o->key_storage == CRYPTO_KEY_TPM2)
            spec.storage = CRYPTO_KEY_TPM2;
        if (crypto_key_generate(&spec, &s.txn.new_key, err) != 0)
            goto out;
    }
    e.csr.renew_from = old_cert; /* NDES: the subject must equal the old one's */
    e.renew_cert = old_cert;
    e.renew_key = old_key;
    rc = send_enrollment(o, &s, &e, &r, err);
out:
    if (challenge)
        crypto_secret_free(challenge, strlen(challenge));
    X509_free(old_cert);
    EVP_PKEY_free(old_key);
    client_result_clear(&r);
    client_saved_clear(&s);
    return rc;
}

static int cmd_poll(options *o, util_error *err)
{
    client_saved s = {0};
    client_result r = {0};
    if (need(o->state, "--state FILE", err) || client_state_load(o->state, &s, err) != 0)
        return -1;
    const char *outputs[] = {s.key_out, s.cert_out, s.chain_out};
    if (refuse_existing(o, outputs, sizeof outputs / sizeof outputs[0], err) != 0) {
        client_saved_clear(&s);
        return -1;
    }
    client_config cfg = o->cfg;
    cfg.url = s.url;
    cfg.ca_identifier = s.ca_identifier;
    int rc = client_poll(&cfg, &s.server, &s.txn, &r, err);
    if (rc == 0)
        rc = finish(o, &s, &r, err);
    if (rc == 0)
        (void)unlink(o->state); /* done: the state holds a private key */
    client_result_clear(&r);
    client_saved_clear(&s);
    return rc;
}

/* GetCert and GetCRL: signed with an existing certificate and key. */
static int signed_query(options *o, int type, client_result *r, util_error *err)
{
    client_saved s = {0};
    uint8_t *data = NULL;
    size_t len = 0;
    ASN1_INTEGER *serial = NULL;
    int rc = -1;
    if (need(o->cfg.url, "-u URL", err) || need(o->key, "--key", err) || need(o->cert, "--cert", err) ||
        need(o->out, "-o", err) || (type == SCEP_MSG_GETCERT && need(o->serial, "--serial", err)) ||
        refuse_existing(o, &o->out, 1, err) != 0)
        return -1;
    /* a malformed serial is a usage error before anything is sent */
    if (type == SCEP_MSG_GETCERT && crypto_serial_parse(o->serial, o->decimal, &serial, err) != 0)
        return -1;
    if (crypto_key_load_file(o->key, &s.txn.signer_key, err) != 0 ||
        crypto_cert_load_file(o->cert, &s.txn.signer_cert, err) != 0 ||
        client_discover(&o->cfg, &s.server, time(NULL), err) != 0)
        goto out;
    client_choose(&o->cfg, &s.server, &s.txn.choice);
    if (type == SCEP_MSG_GETCERT) {
        if (scep_issuer_and_serial_encode(X509_get_subject_name(s.server.ca->ca), serial, &data, &len, err) !=
            0)
            goto out;
    } else if (scep_issuer_and_serial_encode(X509_get_issuer_name(s.txn.signer_cert),
                                             X509_get0_serialNumber(s.txn.signer_cert), &data, &len,
                                             err) != 0) {
        goto out;
    }
    /* a per-query transactionID: hash of the signer's key plus the operation */
    if (scep_transaction_id(s.txn.signer_key, s.txn.transaction_id, err) != 0)
        goto out;
    strncat(s.txn.transaction_id, type == SCEP_MSG_GETCERT ? "-GC" : "-CRL",
            sizeof s.txn.transaction_id - strlen(s.txn.transaction_id) - 1);
    if (client_pki_operation(&o->cfg, &s.server, &s.txn, type, data, len, r, err) != 0)
        goto out;
    if (r->status != SCEP_STATUS_SUCCESS) {
        client_result_error(r, err);
        goto out;
    }
    rc = 0;
out:
    ASN1_INTEGER_free(serial);
    OPENSSL_free(data);
    client_saved_clear(&s);
    return rc;
}

/* The certificate in the reply whose serial is the one asked for; a
 * GetCert reply may also carry the CA and other certificates. */
static X509 *asked_cert(const options *o, STACK_OF(X509) * chain)
{
    ASN1_INTEGER *want = NULL;
    util_error ignored = {0};
    X509 *found = NULL;
    if (crypto_serial_parse(o->serial, o->decimal, &want, &ignored) != 0)
        return NULL;
    for (int i = 0; chain && i < sk_X509_num(chain) && !found; i++)
        if (ASN1_INTEGER_cmp(X509_get0_serialNumber(sk_X509_value(chain, i)), want) == 0)
            found = sk_X509_value(chain, i);
    ASN1_INTEGER_free(want);
    return found;
}

static int cmd_getcert(options *o, util_error *err)
{
    client_result r = {0};
    STACK_OF(X509) *one = NULL;
    int rc = signed_query(o, SCEP_MSG_GETCERT, &r, err);
    X509 *cert = rc == 0 ? asked_cert(o, r.chain) : NULL;
    if (rc == 0 && !cert)
        rc = util_error_set(err, UTIL_ERR_RESPONSE_NO_CERT,
                            "the reply holds %d certificate(s), none with serial %s",
                            r.chain ? sk_X509_num(r.chain) : 0, o->serial);
    if (rc == 0 && (!(one = sk_X509_new_null()) || !sk_X509_push(one, cert)))
        rc = util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    if (rc == 0) {
        print_cert_line(cert, "certificate");
        rc = crypto_certs_write_file(o->out, one, err);
    }
    sk_X509_free(one); /* the certificate belongs to r.chain */
    client_result_clear(&r);
    return rc;
}

static int cmd_getcrl(options *o, util_error *err)
{
    client_result r = {0};
    int rc = signed_query(o, SCEP_MSG_GETCRL, &r, err);
    if (rc == 0 && !r.crl)
        rc = util_error_set(err, UTIL_ERR_RESPONSE_PARSE, "the reply holds no CRL");
    if (rc == 0) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *pem = NULL;
        long n = 0;
        if (bio && PEM_write_bio_X509_CRL(bio, r.crl))
            n = BIO_get_mem_data(bio, &pem);
        rc = n > 0 ? util_file_write_atomic(o->out, pem, (size_t)n, 0644, err)
                   : util_error_ossl(err, UTIL_ERR_INTERNAL, "encoding the CRL");
        BIO_free(bio);
        if (rc == 0) {
            STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(r.crl);
            printf("crl: %d revoked certificate(s)\n", revoked ? sk_X509_REVOKED_num(revoked) : 0);
        }
    }
    client_result_clear(&r);
    return rc;
}

static int cmd_errors(options *o, util_error *err)
{
    (void)err;
    if (o->markdown) {
        util_errors_markdown(stdout);
        return 0;
    }
    for (int i = 1; i < UTIL_ERR_COUNT; i++)
        printf("%-24s %d  %s\n", util_err_code((util_err)i), util_err_exit_class((util_err)i),
               util_err_message((util_err)i));
    return 0;
}

/* What each option does and its default: `scepctl COMMAND --help` prints the
 * lines of the options named in that command's usage. */
static const struct command {
    const char *name;
    int (*run)(options *, util_error *);
    bool network;
    const char *usage;
} commands[] = {
    {"getcaps", cmd_getcaps, true, "getcaps   -u URL [-i IDENT]"},
    {"getca", cmd_getca, true,
     "getca     -u URL [-i IDENT] [--ca-fingerprint sha256:HEX] -o CHAIN.pem [--force]"},
    {"enroll", cmd_enroll, true,
     "enroll    -u URL --cn CN [--org O] [--subject DN] [--email E] [--san TYPE:VALUE]...\n"
     "                    [--challenge PW | --challenge-file F] [--key-type rsa:2048|rsa:4096|ec:P-256|...]\n"
     "                    [--key EXISTING.pem] [--digest sha256] [--cipher aes|aes256|des3]\n"
     "                    [--key-usage none|digitalSignature|keyEncipherment|both] [--eku OID]...\n"
     "                    [--template NAME] [--method auto|get|post] [--ca-fingerprint sha256:HEX]\n"
     "                    [--poll-interval S] [--poll-count N] [--timeout S] [--state FILE]\n"
     "                    [--signer-key KEY.pem] [--key-storage software|tpm2] [--tpm-tcti TCTI]\n"
     "                    --key-out KEY.pem --cert-out CERT.pem [--chain-out CHAIN.pem] [--force]"},
    {"renew", cmd_renew, true,
     "renew     -u URL --key OLD.key --cert OLD.crt [--new-key-type T | --reuse-key]\n"
     "                    [--mode auto|renewalreq|pkcsreq] [--challenge PW | --challenge-file F]\n"
     "                    [--poll-interval S] [--poll-count N] [--state FILE]\n"
     "                    [--key-storage software|tpm2] [--tpm-tcti TCTI]\n"
     "                    --key-out K --cert-out C [--chain-out CHAIN.pem] [--force]"},
    {"poll", cmd_poll, true,
     "poll      --state FILE [--poll-interval S --poll-count N] [--tpm-tcti TCTI] [--force]"},
    {"getcert", cmd_getcert, true,
     "getcert   -u URL --key K --cert C --serial HEX [--decimal] [--tpm-tcti TCTI] -o OUT.pem [--force]"},
    {"getcrl", cmd_getcrl, true, "getcrl    -u URL --key K --cert C [--tpm-tcti TCTI] -o OUT.crl [--force]"},
    {"getnextca", cmd_getnextca, true, "getnextca -u URL -o OUT.pem [--force]"},
    {"inspect", scepctl_inspect, false,
     "inspect   FILE [--signer CERT.pem] [--key KEY.pem] [--tpm-tcti TCTI]"},
    {"errors", cmd_errors, false, "errors    [--markdown]"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  scepctl %s\n", commands[i].usage);
    fprintf(out, "\ntransport options (all network commands): [--tls-ca FILE] [--tls-pin sha256:HEX]\n"
                 "  [--tls-pin-no-host-check] [--insecure] [--proxy URL]\n"
                 "  [--connect-timeout S] [--timeout S] [--max-response BYTES] [-v]\n"
                 "\n'scepctl COMMAND --help' describes each option of a command and its default;\n"
                 "'scepctl --version' prints the version.\n"
                 "\nexit codes: 0 done, 1 rejected by the server, 2 usage or local input error,\n"
                 "  3 still pending (state saved for 'scepctl poll'), 4 communication error,\n"
                 "  5 bad response data\n");
}

static void command_help(const struct command *cmd)
{
    scepctl_command_help(cmd->usage, cmd->network);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    util_log_setup("scepctl", UTIL_LOG_INFO, false);
    signal(SIGPIPE, SIG_IGN); /* curl runs with CURLOPT_NOSIGNAL */
    /* Subjects, failInfoText, Server headers, bodies quoted in errors: what
     * a server sends never reaches the terminal with its control characters. */
    FILE *out = util_escape_stream(stdout), *errout = util_escape_stream(stderr);
    if (out && errout) {
        setvbuf(out, NULL, _IOLBF, 0);
        setvbuf(errout, NULL, _IONBF, 0);
        stdout = out;
        stderr = errout;
    }
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("scepctl %s\n", SCEPD_VERSION);
        return 0;
    }
    const struct command *cmd = find_command(argv[1]);
    util_error err = {0};
    if (!cmd) {
        const char *names[sizeof commands / sizeof commands[0]];
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            names[i] = commands[i].name;
        const char *near = util_suggest(argv[1], names, sizeof names / sizeof names[0]);
        if (near)
            fprintf(stderr, "error[usage]: unknown command \"%s\"; did you mean %s?\n", argv[1], near);
        else
            fprintf(stderr, "error[usage]: unknown command \"%s\"; 'scepctl --help' lists the commands\n",
                    argv[1]);
        return 2;
    }
    options o;
    int parsed = parse_options(argc - 1, argv + 1, &o, &err);
    if (parsed == UNKNOWN_OPTION) {
        /* one line: the option and, for a typo, the nearest one */
        fprintf(stderr, "error[%s]: %s\n", util_err_code(err.code), err.detail);
        return 2;
    }
    if (parsed != 0) {
        scepctl_report(&err);
        fprintf(stderr, "usage: scepctl %s\n", cmd->usage);
        return 2;
    }
    if (o.version) {
        printf("scepctl %s\n", SCEPD_VERSION);
        return 0;
    }
    if (o.help) {
        command_help(cmd);
        return 0;
    }
    /* the tpm2 provider reads the TCTI when it loads, on the first TPM key */
    if (o.tpm_tcti && setenv("TPM2OPENSSL_TCTI", o.tpm_tcti, 1) != 0) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "setting TPM2OPENSSL_TCTI");
        scepctl_report(&err);
        return 2;
    }
    if (http_global_init() != 0) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "libcurl could not be initialised");
        scepctl_report(&err);
        return 2;
    }
    int rc = cmd->run(&o, &err);
    http_global_cleanup();
    crypto_tpm_unload();
    if (rc == 0)
        return 0;
    if (err.code == UTIL_ERR_NONE)
        util_error_set(&err, UTIL_ERR_INTERNAL, "unexplained failure");
    scepctl_report(&err);
    return util_err_exit_class(err.code);
}
