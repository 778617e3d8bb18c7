/* Strict validation of the JSON the API hands to the agent. Every failure
 * names the field first: "key_name: must be 1-24 letters and digits". */
#include <openssl/crypto.h>
#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agent/agent_internal.h"

typedef struct field {
    const char *name;
    int type; /* JSON_STRING, JSON_INTEGER, JSON_TRUE (boolean), JSON_OBJECT, JSON_ARRAY */
    bool nullable;
} field;

static int bad(util_error *err, const char *prefix, const char *name, const char *why)
{
    return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s%s: %s", prefix, name, why);
}

/* Rejects unknown fields and wrong types. */
static int check_fields(const json_t *in, const field *fields, size_t n, const char *prefix, util_error *err)
{
    if (!json_is_object(in))
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s: must be a JSON object",
                              *prefix ? prefix : "body");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        const field *f = NULL;
        for (size_t i = 0; i < n && !f; i++)
            if (!strcmp(fields[i].name, key))
                f = &fields[i];
        if (!f) {
            char name[80];
            snprintf(name, sizeof name, "%.60s", key);
            for (char *c = name; *c; c++)
                if (!isprint((unsigned char)*c))
                    *c = '?';
            return bad(err, prefix, name, "unknown field");
        }
        if (json_is_null(v) && f->nullable)
            continue;
        bool ok = f->type == JSON_TRUE ? json_is_boolean(v) : (int)json_typeof(v) == f->type;
        if (!ok) {
            static const char *names[] = {"an object", "an array",  "a string",  "an integer",
                                          "a number",  "a boolean", "a boolean", "null"};
            char why[64];
            snprintf(why, sizeof why, "must be %s", names[f->type]);
            return bad(err, prefix, key, why);
        }
    }
    return 0;
}

/* Printable single-byte text without control characters, within max. */
static int get_text(const json_t *in, const char *name, const char *prefix, char *out, size_t max,
                    bool required, util_error *err)
{
    json_t *v = json_object_get(in, name);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(err, prefix, name, "is required");
        out[0] = '\0';
        return 0;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= max) {
        char why[48];
        snprintf(why, sizeof why, "must be at most %zu characters", max - 1);
        return bad(err, prefix, name, why);
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return bad(err, prefix, name, "must not contain control characters");
    if (required && len == 0)
        return bad(err, prefix, name, "is required");
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static int get_int(const json_t *in, const char *name, const char *prefix, long min, long max, long def,
                   int *out, util_error *err)
{
    json_t *v = json_object_get(in, name);
    long value = v && !json_is_null(v) ? (long)json_integer_value(v) : def;
    if (value < min || value > max) {
        char why[64];
        snprintf(why, sizeof why, "must be from %ld to %ld", min, max);
        return bad(err, prefix, name, why);
    }
    *out = (int)value;
    return 0;
}

static bool get_bool(const json_t *in, const char *name, bool def)
{
    json_t *v = json_object_get(in, name);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

bool agent_key_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 || len > AGENT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isascii((unsigned char)name[i]) || !isalnum((unsigned char)name[i]))
            return false;
    return true;
}

/* Copies a string array into `max` slots of `width` bytes starting at out. */
static int get_list(const json_t *in, const char *name, char *out, size_t width, size_t max, size_t *count,
                    util_error *err)
{
    json_t *arr = json_object_get(in, name);
    size_t i;
    json_t *v;
    *count = 0;
    if (!arr || json_is_null(arr))
        return 0;
    if (json_array_size(arr) > max) {
        char why[48];
        snprintf(why, sizeof why, "at most %zu entries", max);
        return bad(err, "", name, why);
    }
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        if (!s || !*s || strlen(s) >= width)
            return bad(err, "", name, "entries must be non-empty strings");
        for (const char *c = s; *c; c++)
            if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
                return bad(err, "", name, "entries must be printable ASCII without spaces");
        snprintf(out + i * width, width, "%s", s);
        (*count)++;
    }
    return 0;
}

static int check_san(const char *san)
{
    static const char *const prefixes[] = {"dns:", "ip:", "email:", "uri:", NULL};
    for (const char *const *p = prefixes; *p; p++)
        if (!strncasecmp(san, *p, strlen(*p)) && san[strlen(*p)])
            return 0;
    return -1;
}

int agent_parse_key_params(const json_t *in, agent_key_params *out, util_error *err)
{
    static const field fields[] = {
        {"key_name", JSON_STRING, false},
        {"signature_algorithm", JSON_STRING, false},
        {"key_algorithm", JSON_STRING, false},
        {"key_length", JSON_INTEGER, false},
        {"organization", JSON_STRING, true},
        {"common_name", JSON_STRING, false},
        {"challenge_password", JSON_STRING, true},
        {"key_usage", JSON_STRING, false},
        {"sans", JSON_ARRAY, true},
        {"eku", JSON_ARRAY, true},
        {"key_storage", JSON_STRING, false},
    };
    static const char *const digests[] = {"sha1", "sha256", "sha384", "sha512", NULL};
    static const char *const usages[] = {"none", "digital_signature", "key_encipherment", "both", NULL};
    agent_key_params p;
    memset(&p, 0, sizeof p);
    if (check_fields(in, fields, sizeof fields / sizeof fields[0], "", err) != 0 ||
        get_text(in, "key_name", "", p.key_name, sizeof p.key_name + 1, true, err) != 0)
        return -1;
    if (!agent_key_name_valid(p.key_name))
        return bad(err, "", "key_name", "must be 1-24 single-byte letters and digits");
    if (get_text(in, "signature_algorithm", "", p.signature_algorithm, sizeof p.signature_algorithm, false,
                 err))
        return -1;
    if (!p.signature_algorithm[0])
        snprintf(p.signature_algorithm, sizeof p.signature_algorithm, "sha256");
    if (!one_of(p.signature_algorithm, digests))
        return bad(err, "", "signature_algorithm", "must be sha1, sha256, sha384 or sha512");
    if (get_text(in, "key_algorithm", "", p.key_algorithm, sizeof p.key_algorithm, false, err))
        return -1;
    if (!p.key_algorithm[0])
        snprintf(p.key_algorithm, sizeof p.key_algorithm, "rsa");
    bool rsa = !strcmp(p.key_algorithm, "rsa");
    if (!rsa && strcmp(p.key_algorithm, "ecdsa"))
        return bad(err, "", "key_algorithm", "must be rsa or ecdsa");
    if (get_int(in, "key_length", "", 0, 8192, rsa ? 2048 : 256, &p.key_length, err))
        return -1;
    if (rsa ? (p.key_length != 1024 && p.key_length != 2048 && p.key_length != 3072 && p.key_length != 4096)
            : (p.key_length != 256 && p.key_length != 384))
        return bad(err, "", "key_length",
                   rsa ? "must be 1024, 2048, 3072 or 4096 for RSA" : "must be 256 or 384 for ECDSA");
    if (get_text(in, "key_storage", "", p.key_storage, sizeof p.key_storage, false, err))
        return -1;
    if (!p.key_storage[0])
        snprintf(p.key_storage, sizeof p.key_storage, "software");
    crypto_key_storage storage;
    if (crypto_key_storage_parse(p.key_storage, &storage) != 0)
        return bad(err, "", "key_storage", "must be software or tpm2");
    if (storage == CRYPTO_KEY_TPM2 && p.key_length != (rsa ? 2048 : 256))
        return bad(err, "", "key_storage", "tpm2 holds RSA 2048 and ECDSA 256 keys");
    if (get_text(in, "organization", "", p.organization, sizeof p.organization, false, err) ||
        get_text(in, "common_name", "", p.common_name, sizeof p.common_name, true, err) ||
        get_text(in, "key_usage", "", p.key_usage, sizeof p.key_usage, false, err))
        return -1;
    if (!p.key_usage[0])
        snprintf(p.key_usage, sizeof p.key_usage, "both");
    if (!one_of(p.key_usage, usages))
        return bad(err, "", "key_usage", "must be none, digital_signature, key_encipherment or both");
    json_t *pw = json_object_get(in, "challenge_password");
    p.challenge_set = pw != NULL;
    if (get_text(in, "challenge_password", "", p.challenge, sizeof p.challenge, false, err) ||
        get_list(in, "sans", p.sans[0], sizeof p.sans[0], AGENT_MAX_SANS, &p.san_count, err) ||
        get_list(in, "eku", p.ekus[0], sizeof p.ekus[0], AGENT_MAX_EKUS, &p.eku_count, err))
        return -1;
    for (size_t i = 0; i < p.san_count; i++)
        if (check_san(p.sans[i]) != 0)
            return bad(err, "", "sans", "entries must be dns:NAME, ip:ADDRESS, email:ADDRESS or uri:URI");
    for (size_t i = 0; i < p.eku_count; i++)
        for (const char *c = p.ekus[i]; *c; c++)
            if (!isdigit((unsigned char)*c) && *c != '.' && !isalpha((unsigned char)*c))
                return bad(err, "", "eku", "entries must be dotted OIDs or names such as clientAuth");
    *out = p;
    return 0;
}

static json_t *string_list(const char *base, size_t width, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_string(base + i * width));
    return arr;
}

json_t *agent_key_params_json(const agent_key_params *p)
{
    return json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:o, s:o, s:b, s:s}", "key_name", p->key_name,
        "signature_algorithm", p->signature_algorithm, "key_algorithm", p->key_algorithm, "key_length",
        p->key_length, "organization", p->organization, "common_name", p->common_name, "key_usage",
        p->key_usage, "sans", string_list((const char *)p->sans, sizeof p->sans[0], p->san_count), "eku",
        string_list((const char *)p->ekus, sizeof p->ekus[0], p->eku_count), "challenge_password_set",
        p->challenge[0] != '\0', "key_storage", p->key_storage[0] ? p->key_storage : "software");
}

/* http(s)://host[:port]/path with printable characters only */
static int check_url(const char *url, util_error *err)
{
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
        return bad(err, "", "url", "must start with http:// or https://");
    const char *host = strstr(url, "://") + 3;
    if (!*host || *host == '/' || *host == ':')
        return bad(err, "", "url", "must name a host");
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '#')
            return bad(err, "", "url", "must not contain spaces, '#' or non-ASCII characters");
    return 0;
}

/* The port written in the URL; 0 when it names none. */
static long url_explicit_port(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *end = host + strcspn(host, "/?");
    const char *colon = NULL;
    for (const char *c = host; c < end; c++)
        if (*c == ':')
            colon = c;
    if (colon && *host != '[') {
        long port = strtol(colon + 1, NULL, 10);
        if (port > 0 && port < 65536)
            return port;
    } else if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (close && close[1] == ':')
            return strtol(close + 2, NULL, 10);
    }
    return 0;
}

/* The port written in the URL, else the scheme's default. */
static long url_port(const char *url)
{
    long port = url_explicit_port(url);
    return port ? port : strncasecmp(url, "https", 5) ? 80 : 443;
}

/* Moves "user:password@" out of an http(s) URL into creds. */
static int take_credentials(char *url, char *creds, size_t creds_size, const char *name, util_error *err)
{
    creds[0] = '\0';
    char *start = strstr(url, "://");
    if (!start)
        return 0;
    start += 3;
    size_t authority = strcspn(start, "/?#");
    char *at = memchr(start, '@', authority);
    if (!at)
        return 0;
    while (memchr(at + 1, '@', authority - (size_t)(at + 1 - start)))
        at = memchr(at + 1, '@', authority - (size_t)(at + 1 - start));
    size_t n = (size_t)(at - start);
    if (n == 0 || n >= creds_size)
        return bad(err, "", name, "has credentials that are empty or too long");
    memcpy(creds, start, n);
    creds[n] = '\0';
    memmove(start, at + 1, strlen(at + 1) + 1);
    return 0;
}

static int get_flag(const json_t *in, const char *name, signed char *out)
{
    json_t *v = json_object_get(in, name);
    *out = !v || json_is_null(v) ? -1 : json_is_true(v) ? 1 : 0;
    return 0;
}

int agent_settings_check_port(const json_t *in, const agent_settings *s, util_error *err)
{
    long written = url_explicit_port(s->url);
    json_t *port = json_object_get(in, "port");
    if (!written || !json_is_integer(port) || s->port == written)
        return 0;
    return util_error_set(err, UTIL_ERR_INVALID_FIELD,
                          "port: %d contradicts the port %ld in the url; give %ld, or leave the port out",
                          s->port, written, written);
}

int agent_parse_settings(const json_t *in, agent_settings *out, util_error *err)
{
    static const field fields[] = {
        {"url", JSON_STRING, false},
        {"port", JSON_INTEGER, true},
        {"timeout_s", JSON_INTEGER, true},
        {"ca_file", JSON_STRING, true},
        {"ca_fingerprint", JSON_STRING, true},
        {"tls_pin", JSON_STRING, true},
        {"proxy", JSON_STRING, true},
        {"ca_identifier", JSON_STRING, true},
        {"method", JSON_STRING, true},
        {"poll_interval_s", JSON_INTEGER, true},
        {"poll_max", JSON_INTEGER, true},
        {"tls_pin_check_host", JSON_TRUE, true},
        {"url_credentials_set", JSON_TRUE, true},
        {"proxy_credentials_set", JSON_TRUE, true},
        {"subject_utf8", JSON_TRUE, true},
    };
    static const char *const methods[] = {"auto", "get", "post", NULL};
    agent_settings s;
    memset(&s, 0, sizeof s);
    if (check_fields(in, fields, sizeof fields / sizeof fields[0], "", err) ||
        get_text(in, "url", "", s.url, sizeof s.url, true, err) ||
        take_credentials(s.url, s.url_credentials, sizeof s.url_credentials, "url", err) ||
        check_url(s.url, err) || get_int(in, "port", "", 1, 65535, url_port(s.url), &s.port, err) ||
        get_int(in, "timeout_s", "", 1, 600, 30, &s.timeout_s, err) ||
        get_text(in, "ca_file", "", s.ca_file, sizeof s.ca_file, false, err) ||
        get_text(in, "ca_fingerprint", "", s.ca_fingerprint, sizeof s.ca_fingerprint, false, err) ||
        get_text(in, "tls_pin", "", s.tls_pin, sizeof s.tls_pin, false, err) ||
        get_text(in, "proxy", "", s.proxy, sizeof s.proxy, false, err) ||
        take_credentials(s.proxy, s.proxy_credentials, sizeof s.proxy_credentials, "proxy", err) ||
        get_flag(in, "url_credentials_set", &s.url_credentials_given) ||
        get_flag(in, "proxy_credentials_set", &s.proxy_credentials_given) ||
        get_text(in, "ca_identifier", "", s.ca_identifier, sizeof s.ca_identifier, false, err) ||
        get_text(in, "method", "", s.method, sizeof s.method, false, err) ||
        get_int(in, "poll_interval_s", "", 5, 86400, 60, &s.poll_interval_s, err) ||
        get_int(in, "poll_max", "", 0, 10000, 60, &s.poll_max, err))
        return -1;
    json_t *check_host = json_object_get(in, "tls_pin_check_host");
    s.tls_pin_check_host = !json_is_false(check_host);
    s.subject_utf8 = json_is_true(json_object_get(in, "subject_utf8"));
    if (!s.method[0])
        snprintf(s.method, sizeof s.method, "auto");
    if (!one_of(s.method, methods))
        return bad(err, "", "method", "must be auto, get or post");
    if (s.ca_fingerprint[0] && !crypto_fingerprint_valid(s.ca_fingerprint))
        return bad(err, "", "ca_fingerprint", "must be sha256:HEX (64 hex digits)");
    if (s.tls_pin[0] && !crypto_fingerprint_valid(s.tls_pin))
        return bad(err, "", "tls_pin", "must be sha256:HEX (64 hex digits)");
    if (s.proxy[0] && strncasecmp(s.proxy, "http://", 7) && strncasecmp(s.proxy, "https://", 8))
        return bad(err, "", "proxy", "must start with http:// or https://");
    *out = s;
    OPENSSL_cleanse(&s, sizeof s);
    return 0;
}

static json_t *opt(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

json_t *agent_settings_json(const agent_settings *s)
{
    return json_pack("{s:s, s:i, s:i, s:o, s:o, s:o, s:b, s:o, s:o, s:s, s:i, s:i, s:b, s:b, s:b}", "url",
                     s->url, "port", s->port, "timeout_s", s->timeout_s, "ca_file", opt(s->ca_file),
                     "ca_fingerprint", opt(s->ca_fingerprint), "tls_pin", opt(s->tls_pin),
                     "tls_pin_check_host", s->tls_pin_check_host, "proxy", opt(s->proxy), "ca_identifier",
                     opt(s->ca_identifier), "method", s->method, "poll_interval_s", s->poll_interval_s,
                     "poll_max", s->poll_max, "url_credentials_set", s->url_credentials[0] != '\0',
                     "proxy_credentials_set", s->proxy_credentials[0] != '\0', "subject_utf8",
                     s->subject_utf8);
}

/* The device's rule for the subject: printable single-byte characters
 * (0x20-0x7E), as many SCEP servers and printers accept no more; UTF-8
 * only when the settings allow it. */
static int subject_text_ok(const char *text, const char *prefix, const char *name, util_error *err)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            return util_error_set(err, UTIL_ERR_INVALID_FIELD,
                                  "%s%s: must be printable single-byte characters (letters, digits, spaces "
                                  "and ASCII punctuation); the SCEP server may not accept others. Set "
                                  "subject_utf8 in the communication settings if it accepts UTF-8",
                                  prefix, name);
    return 0;
}

int agent_subject_charset_check(const agent_key_params *p, bool utf8, const char *prefix, util_error *err)
{
    if (utf8)
        return 0;
    return subject_text_ok(p->organization, prefix, "organization", err) ||
                   subject_text_ok(p->common_name, prefix, "common_name", err)
               ? -1
               : 0;
}

int agent_time_parse(const char *text, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(text, "%Y-%m-%dT%H:%M", &tm);
    if (!end)
        return -1;
    if (*end == ':') {
        end = strptime(end, ":%S", &tm);
        if (!end)
            return -1;
    }
    if (*end == 'Z')
        end++;
    if (*end)
        return -1;
    time_t t = timegm(&tm);
    if (t < 0)
        return -1;
    *out = (int64_t)t;
    return 0;
}

void agent_time_format(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *agent_time_json(int64_t t)
{
    if (!t)
        return json_null();
    char buf[32];
    agent_time_format(t, buf, sizeof buf);
    return json_string(buf);
}

static int parse_auto_sub(const json_t *in, agent_auto *a, util_error *err)
{
    static const field polling_fields[] = {
        {"enabled", JSON_TRUE, false}, {"retries", JSON_INTEGER, false}, {"interval_s", JSON_INTEGER, false}};
    static const field periodic_fields[] = {{"enabled", JSON_TRUE, false},
                                            {"interval_days", JSON_INTEGER, false}};
    json_t *polling = json_object_get(in, "polling");
    if (polling) {
        if (check_fields(polling, polling_fields, 3, "polling.", err) ||
            get_int(polling, "retries", "polling.", 0, 100, a->retries, &a->retries, err) ||
            get_int(polling, "interval_s", "polling.", 10, 86400, a->interval_s, &a->interval_s, err))
            return -1;
        a->polling = get_bool(polling, "enabled", a->polling);
    }
    json_t *periodic = json_object_get(in, "periodic");
    if (periodic) {
        if (check_fields(periodic, periodic_fields, 2, "periodic.", err) ||
            get_int(periodic, "interval_days", "periodic.", 1, 3650, a->interval_days, &a->interval_days,
                    err))
            return -1;
        a->periodic = get_bool(periodic, "enabled", a->periodic);
    }
    return 0;
}

int agent_parse_auto(const json_t *in, const agent_auto *current, agent_auto *out, util_error *err)
{
    static const field fields[] = {
        {"enabled", JSON_TRUE, false},
        {"start", JSON_STRING, true},
        {"auto_adjust", JSON_TRUE, false},
        {"polling", JSON_OBJECT, false},
        {"periodic", JSON_OBJECT, false},
        {"auto_restart", JSON_TRUE, false},
        {"delete_old", JSON_TRUE, false},
        {"key", JSON_OBJECT, true},
        {"renew_at_remaining_percent", JSON_INTEGER, true},
        {"renew_key_name", JSON_STRING, true},
    };
    agent_auto a = *current;
    if (check_fields(in, fields, sizeof fields / sizeof fields[0], "", err) != 0)
        return -1;
    a.enabled = get_bool(in, "enabled", a.enabled);
    a.auto_adjust = get_bool(in, "auto_adjust", a.auto_adjust);
    a.auto_restart = get_bool(in, "auto_restart", a.auto_restart);
    a.delete_old = get_bool(in, "delete_old", a.delete_old);
    json_t *pct = json_object_get(in, "renew_at_remaining_percent");
    if (pct && json_is_null(pct))
        a.renew_pct = 0;
    else if (pct && get_int(in, "renew_at_remaining_percent", "", 1, 99, 0, &a.renew_pct, err) != 0)
        return -1;
    const char *naming = json_string_value(json_object_get(in, "renew_key_name"));
    if (naming && !strcmp(naming, "replace"))
        a.renew_replace = true;
    else if (naming && !strcmp(naming, "numbered"))
        a.renew_replace = false;
    else if (naming)
        return bad(err, "", "renew_key_name", "must be numbered or replace");
    json_t *start = json_object_get(in, "start");
    if (start && json_is_null(start)) {
        a.start = 0;
    } else if (start && agent_time_parse(json_string_value(start), &a.start) != 0) {
        return bad(err, "", "start", "must be a date and time such as 2026-12-01T09:30:00Z");
    }
    if (parse_auto_sub(in, &a, err) != 0)
        return -1;
    /* null is what agent_auto_json writes (and GET shows) while no key is
     * configured: the stored document and a GET sent back as it is must
     * parse, so null leaves the key as it is */
    json_t *key = json_object_get(in, "key");
    if (key && !json_is_null(key)) {
        util_error inner;
        if (agent_parse_key_params(key, &a.key, &inner) != 0)
            return util_error_set(err, UTIL_ERR_INVALID_FIELD, "key.%s", inner.detail);
        if (!a.key.challenge_set) /* write-only: keep the stored one */
            snprintf(a.key.challenge, sizeof a.key.challenge, "%s", current->key.challenge);
    }
    if (a.enabled && !a.start)
        return bad(err, "", "start", "is required when the timer is enabled");
    if (a.enabled && !a.key.key_name[0])
        return bad(err, "", "key", "is required when the timer is enabled");
    *out = a;
    return 0;
}

json_t *agent_auto_json(const agent_auto *a)
{
    json_t *key = a->key.key_name[0] ? agent_key_params_json(&a->key) : json_null();
    return json_pack("{s:b, s:o, s:b, s:{s:b, s:i, s:i}, s:{s:b, s:i}, s:b, s:b, s:o, s:o, s:s}", "enabled",
                     a->enabled, "start", agent_time_json(a->start), "auto_adjust", a->auto_adjust, "polling",
                     "enabled", a->polling, "retries", a->retries, "interval_s", a->interval_s, "periodic",
                     "enabled", a->periodic, "interval_days", a->interval_days, "auto_restart",
                     a->auto_restart, "delete_old", a->delete_old, "key", key, "renew_at_remaining_percent",
                     a->renew_pct ? json_integer(a->renew_pct) : json_null(), "renew_key_name",
                     a->renew_replace ? "replace" : "numbered");
}
