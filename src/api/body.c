/* Request bodies: JSON objects only, strictly checked. The agent validates
 * the members of its documents; this file checks the envelope and the few
 * bodies the API reads itself (session, users). Every failure is
 * INVALID_FIELD with the field's name at the start of the detail. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"

static bool json_content_type(const char *ct)
{
    static const char json_type[] = "application/json";
    if (!ct)
        return false;
    ct += strspn(ct, " \t");
    if (strncasecmp(ct, json_type, sizeof json_type - 1) != 0)
        return false;
    char next = ct[sizeof json_type - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

int api_body_parse(api_ctx *c, bool required, util_error *err)
{
    const api_request *r = c->req;
    json_error_t jerr;
    if (r->body_len == 0) {
        if (required)
            return util_error_set(err, UTIL_ERR_INVALID_FIELD, "body: a JSON object is required");
        return 0;
    }
    const char *ct = api_request_header(r, "Content-Type");
    if (!json_content_type(ct))
        return util_error_set(err, UTIL_ERR_INVALID_FIELD,
                              "Content-Type: must be application/json, not %.64s", ct ? ct : "(none)");
    json_t *doc = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "body: %s (line %d, column %d)", jerr.text,
                              jerr.line, jerr.column);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "body: must be a JSON object");
    }
    static const char *const none[] = {NULL};
    if (!required && api_body_fields(doc, none, err) != 0) {
        json_decref(doc);
        return -1;
    }
    c->body = doc;
    return 0;
}

int api_body_fields(const json_t *obj, const char *const *allowed, util_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known)
            return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%.64s: unknown field", key);
    }
    return 0;
}

static bool char_allowed(unsigned char ch, api_charset charset, bool first)
{
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    switch (charset) {
    case API_CHARSET_NAME: return alnum || ch == '-' || ch == '_';
    case API_CHARSET_USER: return alnum || (!first && (ch == '-' || ch == '_' || ch == '.'));
    case API_CHARSET_TEXT: return ch >= 0x20 && ch != 0x7f; /* UTF-8 checked by jansson */
    }
    return false;
}

bool api_string_valid(const char *s, size_t len, size_t max, api_charset charset)
{
    if (len == 0 || len > max || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!char_allowed((unsigned char)s[i], charset, i == 0))
            return false;
    return true;
}

static const char *charset_rule(api_charset charset)
{
    switch (charset) {
    case API_CHARSET_NAME: return "letters, digits, - and _";
    case API_CHARSET_USER: return "letters, digits, -, _ and ., starting with a letter or digit";
    case API_CHARSET_TEXT: return "no control characters";
    }
    return "";
}

int api_body_string(const json_t *obj, const char *field, size_t min, size_t max, api_charset charset,
                    const char **out, util_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (!v)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s: required", field);
    if (!json_is_string(v))
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s: must be a string", field);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n < min || n > max)
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s: must be %zu to %zu bytes long", field, min,
                              max);
    if (!api_string_valid(s, n, max, charset))
        return util_error_set(err, UTIL_ERR_INVALID_FIELD, "%s: only %s are allowed", field,
                              charset_rule(charset));
    *out = s;
    return 0;
}

/* Bodies can hold passwords (login, users, challenge passwords): every
 * string is wiped before the document is freed. A value the agent still
 * holds a reference to is left alone: it is the agent's now. */
void api_body_wipe(json_t *doc)
{
    const char *key;
    json_t *value;
    size_t index;
    if (!doc || doc->refcount != 1)
        return;
    if (json_is_string(doc)) {
        OPENSSL_cleanse((char *)json_string_value(doc), json_string_length(doc));
    } else if (json_is_object(doc)) {
        json_object_foreach(doc, key, value) api_body_wipe(value);
    } else if (json_is_array(doc)) {
        json_array_foreach(doc, index, value) api_body_wipe(value);
    }
}
