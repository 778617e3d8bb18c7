/* scepca: the SCEP CA/RA server for labs and tests. Argument parsing and
 * wiring only; the work is in src/ca. */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/edge.h"
#include "ca/ca.h"
#include "crypto/crypto.h"
#include "util/file.h"
#include "util/log.h"
#include "util/suggest.h"
#include "util/throttle.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: scepca COMMAND --dir DIR [options]\n"
    "\n"
    "  init     --dir DIR [--key-type rsa:2048|rsa:4096|ec:P-256] [--subject DN] [--days N]\n"
    "           [--ndes] [--admin-user NAME] [--admin-password PW]\n"
    "  serve    --dir DIR [--listen 127.0.0.1:PORT] [--profile generic|ndes2008r2|ndes2012r2|ndes2016]\n"
    "           [--challenge PW | --challenge-file F | --otp] [--pending] [--validity DAYS] "
    "[--allow-renew-days N]\n"
    "           [--max-query-string N] [--fault SPEC]... [--threads N] [--verbose]\n"
    "  otp      --dir DIR                 print a new one-time password (once)\n"
    "  list     --dir DIR [--pending]     requests and certificates\n"
    "  approve  --dir DIR ID              issue a pending request\n"
    "  reject   --dir DIR ID              deny a pending request\n"
    "  revoke   --dir DIR SERIAL          revoke a certificate (shows in GetCRL)\n"
    "  rollover --dir DIR                 stage the next CA for GetNextCACert\n"
    "  promote  --dir DIR                 make the staged next CA the CA (restart serve after)\n"
    "\n"
    "Faults (--fault NAME[:ARG][@PROBABILITY], on PKIOperation replies; repeatable):\n"
    "  delay:MS drop reset truncate garbage http:CODE wrong-content-type bad-signature\n"
    "  wrong-signer wrong-transaction-id wrong-recipient-nonce expired-ra pending-forever\n"
    "  slow-drip[:MS-PER-BYTE]\n"
    "\n"
    "Options and their defaults:\n"
    "  --dir DIR               the CA's directory (key, certificates, state). Required.\n"
    "  --key-type T            CA key: rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384. Default: "
    "rsa:2048.\n"
    "  --subject DN            CA subject. Default: CN=scepca test CA,O=scepd.\n"
    "  --days N                CA validity in days, 1 to 36500. Default: 3650.\n"
    "  --ndes                  also create NDES-style RA certificates. Default: none.\n"
    "  --admin-user NAME       mscep_admin user. Default: admin.\n"
    "  --admin-password PW     mscep_admin password. Default: generated and printed once.\n"
    "  --listen HOST:PORT      where serve listens (port 0: any free one). Default: 127.0.0.1:8080.\n"
    "  --profile P             generic, ndes2008r2, ndes2012r2 or ndes2016. Default: generic.\n"
    "  --challenge PW          static challenge password (visible in the process list). Default: none\n"
    "                          (no password needed).\n"
    "  --challenge-file F      read the static challenge password from the first line of F. Default: none.\n"
    "  --otp                   NDES-style one-time passwords (scepca otp). Default: off.\n"
    "  --pending               serve: defer every request; list: only pending ones. Default: off.\n"
    "  --validity DAYS         validity of issued certificates, 1 to 36500. Default: 365.\n"
    "  --allow-renew-days N    renewal accepted this many days before expiry. Default: 0 (any time).\n"
    "  --max-query-string N    longest GET query accepted. Default: 2048 (NDES profiles), 65536 (generic).\n"
    "  --fault SPEC            inject a fault (see below); repeatable. Default: none.\n"
    "  --threads N             worker threads, 1 to 32. Default: 4.\n"
    "  --verbose               log each request. Default: off.\n"
    "  --version, --help       print the version or this help and exit.\n"
    "\n"
    "Exit codes: 0 done, 1 refused (password cache full, not pending, unknown serial),\n"
    "2 usage or local error. Errors print as error[code]: message (detail) and a remedy,\n"
    "with the codes of 'scepctl errors'.\n";

/* As scepctl prints errors: error[code]: message (detail), then the remedy;
 * the exit status is the code's class (1 refused, 2 usage or local). */
static int report(const util_error *err)
{
    fprintf(stderr, "error[%s]: %s", util_err_code(err->code), util_err_message(err->code));
    if (err->detail[0])
        fprintf(stderr, " (%s)", err->detail);
    fprintf(stderr, "\nremedy: %s\n", util_err_remedy(err->code));
    int cls = util_err_exit_class(err->code);
    return cls == EXIT_REFUSED ? EXIT_REFUSED : EXIT_USAGE;
}

static int usage_error(const char *fmt, const char *arg)
{
    util_error err = {0};
    char detail[sizeof err.detail];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(detail, sizeof detail, fmt, arg ? arg : "");
#pragma GCC diagnostic pop
    util_error_set(&err, UTIL_ERR_USAGE, "%s", detail);
    return report(&err);
}

/* A typo: one line with the nearest match, exit 2. */
static int typo(const char *what, const char *word, const char *const *known, size_t count)
{
    char name[UTIL_SUGGEST_MAX_WORD + 1];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(word, "="), word);
    bool dashes = !strncmp(name, "--", 2);
    const char *near = util_suggest(dashes ? name + 2 : name, known, count);
    if (near)
        fprintf(stderr, "error[usage]: unknown %s \"%s\"; did you mean %s%s?\n", what, name,
                dashes ? "--" : "", near);
    else
        fprintf(stderr, "error[usage]: unknown %s \"%s\"; 'scepca --help' lists them\n", what, name);
    return EXIT_USAGE;
}

static bool parse_int(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

typedef struct options {
    const char *dir, *listen, *profile, *challenge, *challenge_file, *key_type, *subject;
    const char *admin_user, *admin_password;
    bool otp, pending, ndes, pending_only, verbose;
    long days, validity, renew_days, max_query, threads;
    const char *faults[CA_MAX_FAULTS];
    size_t fault_count;
} options;

enum {
    OPT_DIR = 256,
    OPT_LISTEN,
    OPT_PROFILE,
    OPT_CHALLENGE,
    OPT_OTP,
    OPT_PENDING,
    OPT_VALIDITY,
    OPT_RENEW,
    OPT_MAXQ,
    OPT_FAULT,
    OPT_KEYTYPE,
    OPT_SUBJECT,
    OPT_DAYS,
    OPT_NDES,
    OPT_AUSER,
    OPT_APASS,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_THREADS,
    OPT_CHALLENGE_FILE,
};

static const struct option long_options[] = {
    {"dir", required_argument, NULL, OPT_DIR},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"challenge", required_argument, NULL, OPT_CHALLENGE},
    {"challenge-file", required_argument, NULL, OPT_CHALLENGE_FILE},
    {"otp", no_argument, NULL, OPT_OTP},
    {"pending", no_argument, NULL, OPT_PENDING},
    {"validity", required_argument, NULL, OPT_VALIDITY},
    {"allow-renew-days", required_argument, NULL, OPT_RENEW},
    {"max-query-string", required_argument, NULL, OPT_MAXQ},
    {"fault", required_argument, NULL, OPT_FAULT},
    {"key-type", required_argument, NULL, OPT_KEYTYPE},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"days", required_argument, NULL, OPT_DAYS},
    {"ndes", no_argument, NULL, OPT_NDES},
    {"admin-user", required_argument, NULL, OPT_AUSER},
    {"admin-password", required_argument, NULL, OPT_APASS},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_number_option(int c, const char *arg, options *o)
{
    long *dst = c == OPT_VALIDITY  ? &o->validity
                : c == OPT_RENEW   ? &o->renew_days
                : c == OPT_MAXQ    ? &o->max_query
                : c == OPT_THREADS ? &o->threads
                                   : &o->days;
    long max = c == OPT_MAXQ ? 16L * 1024 * 1024 : c == OPT_THREADS ? 32 : 36500;
    if (!parse_int(arg, c == OPT_RENEW ? 0 : 1, max, dst))
        return usage_error("not a valid number: %s", arg);
    return 0;
}

static int check_key_type(const char *arg)
{
    static const char *const forms[] = {"rsa:2048", "rsa:3072", "rsa:4096", "ec:P-256", "ec:P-384"};
    crypto_key_spec spec;
    util_error ignored = {0};
    if (crypto_key_spec_parse(arg, &spec, &ignored) == 0)
        return 0;
    const char *near = util_suggest(arg, forms, sizeof forms / sizeof forms[0]);
    util_error err = {0};
    util_error_set(&err, UTIL_ERR_USAGE,
                   "--key-type \"%s\" is not a key type; %s%s%sthe accepted forms are rsa:2048, rsa:3072, "
                   "rsa:4096, ec:P-256 or ec:P-384",
                   arg, near ? "did you mean " : "", near ? near : "", near ? "? " : "");
    return report(&err);
}

static int parse_options(int argc, char **argv, options *o)
{
    int c;
    optind = 2; /* after the command */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_DIR: o->dir = optarg; break;
        case OPT_LISTEN: o->listen = optarg; break;
        case OPT_PROFILE: o->profile = optarg; break;
        case OPT_CHALLENGE: o->challenge = optarg; break;
        case OPT_CHALLENGE_FILE: o->challenge_file = optarg; break;
        case OPT_OTP: o->otp = true; break;
        case OPT_PENDING:
            o->pending = true;
            o->pending_only = true;
            break;
        case OPT_KEYTYPE:
            o->key_type = optarg;
            if (check_key_type(optarg) != 0)
                return EXIT_USAGE;
            break;
        case OPT_SUBJECT: o->subject = optarg; break;
        case OPT_NDES: o->ndes = true; break;
        case OPT_AUSER: o->admin_user = optarg; break;
        case OPT_APASS: o->admin_password = optarg; break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_FAULT:
            if (o->fault_count == CA_MAX_FAULTS)
                return usage_error("at most 16 faults%s", NULL);
            o->faults[o->fault_count++] = optarg;
            break;
        case OPT_VALIDITY:
        case OPT_RENEW:
        case OPT_MAXQ:
        case OPT_DAYS:
        case OPT_THREADS:
            if (parse_number_option(c, optarg, o) != 0)
                return EXIT_USAGE;
            break;
        case OPT_HELP: fputs(usage_text, stdout); exit(0);
        case ':': return usage_error("option %s needs a value", argv[optind - 1]);
        default: {
            const char *names[sizeof long_options / sizeof long_options[0]];
            size_t n = 0;
            for (size_t i = 0; long_options[i].name; i++)
                names[n++] = long_options[i].name;
            return typo("option", argv[optind - 1], names, n);
        }
        }
    }
    if (!o->dir)
        return usage_error("--dir DIR is required%s", NULL);
    return 0;
}

static int cmd_init(const options *o)
{
    util_error err = {0};
    char password[64] = "";
    ca_init_params p = {o->dir,  o->key_type,   o->subject,       (int)o->days,
                        o->ndes, o->admin_user, o->admin_password};
    if (ca_admin_init(&p, time(NULL), password, sizeof password, &err) != 0)
        return report(&err);
    printf("CA created in %s%s\n", o->dir, o->ndes ? " with NDES RA certificates" : "");
    if (password[0])
        printf("mscep_admin user: %s\nmscep_admin password: %s\n", o->admin_user ? o->admin_user : "admin",
               password);
    return 0;
}

static int build_config(const options *o, ca_config *cfg)
{
    util_error err = {0};
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = o->dir;
    if (o->profile && ca_profile_parse(o->profile, &cfg->profile) != 0)
        return usage_error("unknown profile %s", o->profile);
    if ((o->challenge != NULL) + (o->challenge_file != NULL) + o->otp > 1)
        return usage_error("give one of --challenge, --challenge-file and --otp%s", NULL);
    cfg->challenge = o->challenge;
    cfg->otp = o->otp;
    cfg->pending = o->pending;
    cfg->validity_days = (int)o->validity;
    cfg->allow_renew_days = (int)o->renew_days;
    cfg->max_query_string = (size_t)o->max_query;
    cfg->threads = (unsigned)o->threads;
    for (size_t i = 0; i < o->fault_count; i++)
        if (ca_fault_parse(o->faults[i], &cfg->faults[cfg->fault_count++], &err) != 0)
            return report(&err);
    return 0;
}

static int cmd_serve(const options *o)
{
    util_error err = {0};
    ca_config cfg;
    ca_server *srv = NULL;
    uint8_t *challenge = NULL;
    size_t challenge_len = 0;
    int rc = build_config(o, &cfg);
    if (rc != 0)
        return rc;
    util_log_setup("scepca", o->verbose ? UTIL_LOG_DEBUG : UTIL_LOG_INFO, false);
    /* a file keeps the challenge out of the process list and shell history */
    if (o->challenge_file) {
        if (util_file_read(o->challenge_file, 1024, &challenge, &challenge_len, &err) != 0)
            return report(&err);
        while (challenge_len &&
               (challenge[challenge_len - 1] == '\n' || challenge[challenge_len - 1] == '\r'))
            challenge[--challenge_len] = '\0';
        if (challenge_len == 0 || memchr(challenge, '\0', challenge_len)) {
            OPENSSL_cleanse(challenge, challenge_len);
            free(challenge);
            return usage_error("--challenge-file %s: holds no password (one line of text)",
                               o->challenge_file);
        }
        cfg.challenge = (const char *)challenge;
    }
    /* one throttle for every worker: a guesser cannot spread over them */
    if (!(cfg.challenge_throttle = ca_challenge_throttle_new())) {
        util_error_set(&err, UTIL_ERR_INTERNAL, "out of memory");
        rc = report(&err);
        goto out;
    }
    if (ca_server_open(&cfg, &srv, &err) != 0) {
        rc = report(&err);
        goto out;
    }
    log_info("profile %s, %s%s", ca_profile_name(cfg.profile),
             cfg.otp         ? "one-time passwords"
             : cfg.challenge ? "static challenge"
                             : "no password",
             cfg.pending ? ", every request pending" : "");
    for (size_t i = 0; i < cfg.fault_count; i++)
        log_info("fault %s:%ld @%.3f", ca_fault_name(cfg.faults[i].kind), cfg.faults[i].arg,
                 cfg.faults[i].probability);
    rc = ca_serve(srv, o->listen ? o->listen : "127.0.0.1:8080", &err) != 0 ? report(&err) : 0;
out:
    ca_server_free(srv);
    util_throttle_free(cfg.challenge_throttle);
    if (challenge) {
        OPENSSL_cleanse(challenge, challenge_len);
        free(challenge);
    }
    return rc;
}

static int cmd_otp(const options *o)
{
    util_error err = {0};
    char pw[17];
    int rc = ca_admin_otp(o->dir, time(NULL), pw, &err);
    if (rc < 0)
        return report(&err);
    if (rc == 1) {
        util_error_set(&err, UTIL_ERR_CA_OTP_CACHE_FULL, "%s", o->dir);
        return report(&err);
    }
    printf("%s\n", pw);
    return 0;
}

static int cmd_id(const char *cmd, const options *o, int argc, char **argv)
{
    util_error err = {0};
    long id = 0;
    if (optind != argc - 1)
        return usage_error("%s needs exactly one argument", cmd);
    const char *arg = argv[optind];
    int rc;
    if (strcmp(cmd, "revoke") == 0) {
        rc = ca_admin_revoke(o->dir, arg, time(NULL), &err);
    } else {
        if (!parse_int(arg, 1, LONG_MAX, &id))
            return usage_error("not a request ID: %s", arg);
        rc = strcmp(cmd, "approve") == 0 ? ca_admin_approve(o->dir, id, time(NULL), &err)
                                         : ca_admin_reject(o->dir, id, time(NULL), &err);
    }
    if (rc < 0)
        return report(&err);
    if (rc == 1) {
        util_error_set(&err, UTIL_ERR_CA_NO_SUCH_OBJECT, "%s %s: no such %s in %s", cmd, arg,
                       strcmp(cmd, "revoke") == 0 ? "certificate" : "pending request", o->dir);
        return report(&err);
    }
    if (rc == 2) {
        util_error_set(&err, UTIL_ERR_CA_ALREADY_REVOKED, "serial %s", arg);
        return report(&err);
    }
    printf("%s %s: done\n", cmd, arg);
    return 0;
}

int main(int argc, char **argv)
{
    options o = {0};
    util_error err = {0};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("scepca %s\n", SCEPD_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    static const char *const commands[] = {"init",   "serve",  "otp",      "list",   "approve",
                                           "reject", "revoke", "rollover", "promote"};
    bool known = false;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        known = known || !strcmp(cmd, commands[i]);
    if (!known)
        return typo("command", cmd, commands, sizeof commands / sizeof commands[0]);
    util_log_setup("scepca", UTIL_LOG_INFO, false);
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (strcmp(cmd, "init") == 0)
        rc = cmd_init(&o);
    else if (strcmp(cmd, "serve") == 0) {
        edge_raise_nofile(); /* connections are capped below the limit */
        rc = cmd_serve(&o);
    } else if (strcmp(cmd, "otp") == 0)
        rc = cmd_otp(&o);
    else if (strcmp(cmd, "list") == 0)
        rc = ca_admin_list(o.dir, o.pending_only, time(NULL), stdout, &err) ? report(&err) : 0;
    else if (!strcmp(cmd, "approve") || !strcmp(cmd, "reject") || !strcmp(cmd, "revoke"))
        rc = cmd_id(cmd, &o, argc, argv);
    else if (strcmp(cmd, "rollover") == 0)
        rc = ca_admin_rollover(o.dir, time(NULL), &err) ? report(&err) : (printf("next CA staged\n"), 0);
    else if (strcmp(cmd, "promote") == 0)
        rc = ca_admin_promote(o.dir, time(NULL), &err) ? report(&err) : (printf("next CA promoted\n"), 0);
    else
        rc = usage_error("unknown command %s", cmd);
    return rc;
}
