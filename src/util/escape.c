#include "util/escape.h"

#include <stdio.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one
 * (overlong forms, surrogates and values above U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t left, unsigned *cp)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* The escaped form of one character, or NULL when it passes unchanged. */
static const char *escape_of(unsigned cp, size_t seq_len, const unsigned char *s, char buf[8])
{
    if (seq_len == 0) {
        snprintf(buf, 8, "\\x%02X", s[0]);
        return buf;
    }
    switch (cp) {
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\\': return "\\\\";
    default: break;
    }
    if (cp < 0x20 || cp == 0x7F) {
        snprintf(buf, 8, "\\x%02X", cp);
        return buf;
    }
    if (cp >= 0x80 && cp <= 0x9F) {
        snprintf(buf, 8, "\\u%04X", cp);
        return buf;
    }
    return NULL;
}

char *util_escape(const char *in, size_t len, char *out, size_t out_size)
{
    const unsigned char *s = (const unsigned char *)(in ? in : "");
    size_t o = 0, cut = 0; /* cut: the last boundary that leaves room for "..." */
    if (!in)
        len = 0;
    for (size_t i = 0; i < len;) {
        unsigned cp = 0;
        char buf[8];
        size_t n = utf8_len(s + i, len - i, &cp);
        const char *esc = escape_of(cp, n, s + i, buf);
        const char *piece = esc ? esc : (const char *)s + i;
        size_t piece_len = esc ? strlen(esc) : n;
        if (o + piece_len + 1 > out_size) {
            o = cut;
            if (o + 4 <= out_size) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, piece, piece_len);
        o += piece_len;
        if (o + 4 <= out_size)
            cut = o;
        i += n ? n : 1;
    }
    out[o] = '\0';
    return out;
}

bool util_escape_needed(const char *in, size_t len)
{
    const unsigned char *s = (const unsigned char *)in;
    for (size_t i = 0; i < len;) {
        unsigned cp = 0;
        char buf[8];
        size_t n = utf8_len(s + i, len - i, &cp);
        if (escape_of(cp, n, s + i, buf))
            return true;
        i += n ? n : 1;
    }
    return false;
}

char *util_escape_dup(const char *in)
{
    size_t len = in ? strlen(in) : 0;
    size_t size = len * 6 + 1; /* \u00HH is the longest form of a byte */
    char *out = malloc(size);
    return out ? util_escape(in, len, out, size) : NULL;
}

static ssize_t stream_write(void *cookie, const char *buf, size_t size)
{
    FILE *raw = cookie;
    const unsigned char *s = (const unsigned char *)buf;
    size_t start = 0, i = 0;
    while (i < size) {
        unsigned cp = 0;
        char tmp[8];
        size_t n = utf8_len(s + i, size - i, &cp);
        const char *esc = n && (cp == '\n' || cp == '\t' || cp == '\\') ? NULL : escape_of(cp, n, s + i, tmp);
        if (!esc) {
            i += n;
            continue;
        }
        if (i > start && fwrite(s + start, 1, i - start, raw) != i - start)
            return -1;
        if (fputs(esc, raw) == EOF)
            return -1;
        i += n ? n : 1;
        start = i;
    }
    if (size > start && fwrite(s + start, 1, size - start, raw) != size - start)
        return -1;
    fflush(raw);
    return (ssize_t)size;
}

FILE *util_escape_stream(FILE *raw)
{
    cookie_io_functions_t io = {.write = stream_write};
    return fopencookie(raw, "w", io);
}
