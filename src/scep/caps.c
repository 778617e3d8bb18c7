/* GetCACaps (RFC 8894 §3.5): keywords, case-insensitive, LF or CRLF. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scep/scep.h"

static const struct {
    const char *keyword;
    unsigned flag;
} keywords[] = {
    {"AES", SCEP_CAP_AES},
    {"DES3", SCEP_CAP_DES3},
    {"GetNextCACert", SCEP_CAP_GETNEXTCACERT},
    {"POSTPKIOperation", SCEP_CAP_POSTPKIOPERATION},
    {"Renewal", SCEP_CAP_RENEWAL},
    {"SHA-1", SCEP_CAP_SHA1},
    {"SHA-256", SCEP_CAP_SHA256},
    {"SHA-384", SCEP_CAP_SHA384},
    {"SHA-512", SCEP_CAP_SHA512},
    {"SCEPStandard", SCEP_CAP_SCEPSTANDARD},
    {"Update", SCEP_CAP_UPDATE},
};

#define KEYWORD_MAX 128

static void add_keyword(scep_caps *caps, const char *word, size_t len)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (strlen(keywords[i].keyword) == len && strncasecmp(keywords[i].keyword, word, len) == 0) {
            caps->flags |= keywords[i].flag;
            return;
        }
    }
    if (caps->unknown_count >= SCEP_CAPS_MAX_UNKNOWN || len > KEYWORD_MAX)
        return;
    for (size_t i = 0; i < len; i++)
        if (!isprint((unsigned char)word[i]))
            return; /* binary junk is not a keyword */
    for (size_t i = 0; i < caps->unknown_count; i++)
        if (strlen(caps->unknown[i]) == len && strncasecmp(caps->unknown[i], word, len) == 0)
            return;
    char *copy = strndup(word, len);
    if (copy)
        caps->unknown[caps->unknown_count++] = copy;
}

void scep_caps_parse(const uint8_t *body, size_t len, scep_caps *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        while (i < len &&
               (body[i] == '\r' || body[i] == '\n' || body[i] == ' ' || body[i] == '\t' || body[i] == ','))
            i++;
        size_t start = i;
        while (i < len && body[i] != '\r' && body[i] != '\n' && body[i] != ' ' && body[i] != '\t' &&
               body[i] != ',' && body[i] != '\0')
            i++;
        if (i > start)
            add_keyword(out, (const char *)body + start, i - start);
        if (i < len && body[i] == '\0')
            i++;
    }
}

void scep_caps_clear(scep_caps *caps)
{
    for (size_t i = 0; i < caps->unknown_count; i++)
        free(caps->unknown[i]);
    memset(caps, 0, sizeof *caps);
}

bool scep_caps_has(const scep_caps *caps, unsigned flag)
{
    unsigned f = caps->flags;
    if (f & SCEP_CAP_SCEPSTANDARD)
        f |= SCEP_CAP_AES | SCEP_CAP_POSTPKIOPERATION | SCEP_CAP_SHA256;
    return (f & flag) == flag;
}

void scep_caps_format(const scep_caps *caps, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (caps->flags & keywords[i].flag) {
            int n = snprintf(out + used, outlen - used, "%s\n", keywords[i].keyword);
            if (n < 0 || (size_t)n >= outlen - used) {
                out[used] = '\0'; /* no half keyword */
                return;
            }
            used += (size_t)n;
        }
    }
    for (size_t i = 0; i < caps->unknown_count; i++) {
        int n = snprintf(out + used, outlen - used, "%s\n", caps->unknown[i]);
        if (n < 0 || (size_t)n >= outlen - used) {
            out[used] = '\0';
            return;
        }
        used += (size_t)n;
    }
}
