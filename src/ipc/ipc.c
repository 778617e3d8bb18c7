/* Frames, schemas and blocking I/O of the message protocol (ipc.h). */
#include "ipc/ipc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

/* What one tag may be in one type of message. */
typedef struct ipc_rule {
    uint8_t tag;
    uint32_t max; /* bytes */
    bool required;
    bool repeat;
    bool exact; /* a number: exactly max bytes */
} ipc_rule;

typedef struct ipc_schema {
    const char *name;
    const ipc_rule *rules; /* ended by tag 0 */
} ipc_schema;

#define R(t, m)                                                                                              \
    {                                                                                                        \
        IPC_T_##t, (m), true, false, false                                                                   \
    }
#define O(t, m)                                                                                              \
    {                                                                                                        \
        IPC_T_##t, (m), false, false, false                                                                  \
    }
#define N(t, m)                                                                                              \
    {                                                                                                        \
        IPC_T_##t, (m), false, true, false                                                                   \
    }
#define R4(t)                                                                                                \
    {                                                                                                        \
        IPC_T_##t, 4, true, false, true                                                                      \
    }
#define O4(t)                                                                                                \
    {                                                                                                        \
        IPC_T_##t, 4, false, false, true                                                                     \
    }
#define O8(t)                                                                                                \
    {                                                                                                        \
        IPC_T_##t, 8, false, false, true                                                                     \
    }
#define END                                                                                                  \
    {                                                                                                        \
        0, 0, false, false, false                                                                            \
    }
#define SEALED_MAX (64 * KiB)
#define AAD_MAX 512
#define DATA_MAX (16 * KiB)
#define TEXT_MAX (4 * KiB)

static const ipc_rule r_generate[] = {R(SPEC, 64), R(AAD, AAD_MAX), END};
static const ipc_rule r_seal[] = {R(KEY, SEALED_MAX), R(AAD, AAD_MAX), END};
static const ipc_rule r_reseal[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX), R(NEW_AAD, AAD_MAX), END};
static const ipc_rule r_keyref[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX), END};
static const ipc_rule r_rsa[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX),   R4(OP), O4(MD),
                                 O4(PADDING),           R(INPUT, 2 * KiB), END};
static const ipc_rule r_ecdsa[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX), R(INPUT, 128), END};
static const ipc_rule r_ecdh[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX), R(PEER, 2 * KiB), END};
static const ipc_rule r_export[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX),     R(FUNCTION, 64),
                                    O(CERT, 64 * KiB),     O(CHAIN, 256 * KiB), END};
static const ipc_rule r_tls[] = {R(SEALED, SEALED_MAX), R(AAD, AAD_MAX), R(CERT, 64 * KiB),
                                 O(CHAIN, 256 * KiB), END};
static const ipc_rule r_secret_open[] = {R(SEALED, 1 * KiB), END};
static const ipc_rule r_secret_seal[] = {R(INPUT, 32), END};
static const ipc_rule r_tls_key[] = {O(KEY, SEALED_MAX),
                                     O(SEALED, SEALED_MAX),
                                     O(AAD, AAD_MAX),
                                     O(PUBKEY, DATA_MAX),
                                     R(CERT, 64 * KiB),
                                     O(CHAIN, 256 * KiB),
                                     END};
static const ipc_rule r_ok[] = {O(SEALED, SEALED_MAX), O(PUBKEY, DATA_MAX), O(OUTPUT, DATA_MAX), O4(IN_TPM),
                                END};
static const ipc_rule r_error[] = {R4(CODE), R(DETAIL, 1 * KiB), END};
static const ipc_rule r_ready[] = {R(BOUND, 128), O(BOUND_TLS, 128), END};
static const ipc_rule r_request[] = {R(METHOD, 16),      R(PATH, 16 * KiB), O(QUERY, 16 * KiB),
                                     R(REMOTE, 128),     R4(TLS),           N(NAME, 256),
                                     N(VALUE, 16 * KiB), O(BODY, 1 * MiB),  END};
static const ipc_rule r_closed[] = {END};
static const ipc_rule r_fetched[] = {R4(RC),           O4(STATUS), O(CTYPE, 256),      O(SERVER, 256),
                                     O(BODY, 6 * MiB), O4(CODE),   O(DETAIL, 1 * KiB), END};
static const ipc_rule r_response[] = {R4(STATUS),         O(CTYPE, 256),    N(NAME, 256),
                                      N(VALUE, 16 * KiB), O(BODY, 6 * MiB), END};
static const ipc_rule r_fetch[] = {R(METHOD, 16),      R(URL, 64 * KiB),
                                   O(BODY, 1 * MiB),   O(CTYPE, 256),
                                   O8(CONNECT_MS),     O8(TOTAL_MS),
                                   O8(MAX_RESPONSE),   O(CA_FILE, TEXT_MAX),
                                   O(PIN, 128),        O4(PIN_SKIP_HOST),
                                   O(PROXY, TEXT_MAX), O4(INSECURE),
                                   O(USER_AGENT, 256), END};

static const ipc_schema schemas[IPC_TYPE_MAX] = {
    [IPC_V_GENERATE] = {"generate", r_generate},
    [IPC_V_SEAL] = {"seal", r_seal},
    [IPC_V_RESEAL] = {"reseal", r_reseal},
    [IPC_V_PUBLIC] = {"public", r_keyref},
    [IPC_V_RSA] = {"rsa", r_rsa},
    [IPC_V_ECDSA] = {"ecdsa", r_ecdsa},
    [IPC_V_ECDH] = {"ecdh", r_ecdh},
    [IPC_V_EXPORT] = {"export", r_export},
    [IPC_V_TLS] = {"tls", r_tls},
    [IPC_V_SECRET_OPEN] = {"secret-open", r_secret_open},
    [IPC_V_SECRET_SEAL] = {"secret-seal", r_secret_seal},
    [IPC_OK] = {"ok", r_ok},
    [IPC_ERROR] = {"error", r_error},
    [IPC_N_READY] = {"ready", r_ready},
    [IPC_N_REQUEST] = {"request", r_request},
    [IPC_N_CLOSED] = {"closed", r_closed},
    [IPC_N_FETCHED] = {"fetched", r_fetched},
    [IPC_A_RESPONSE] = {"response", r_response},
    [IPC_A_FETCH] = {"fetch", r_fetch},
    [IPC_A_CANCEL] = {"cancel", r_closed},
    [IPC_TLS_KEY] = {"tls-key", r_tls_key},
};

const char *ipc_type_name(unsigned type)
{
    return type < IPC_TYPE_MAX && schemas[type].name ? schemas[type].name : "unknown";
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void ipc_begin(ipc_builder *b, ipc_type type, uint32_t id)
{
    util_buf_init(&b->buf, IPC_MAX_FRAME + 4, true);
    b->count = 0;
    uint8_t h[IPC_HEADER_LEN] = {0};
    h[4] = (uint8_t)(type >> 8);
    h[5] = (uint8_t)type;
    put32(h + 8, id);
    b->failed = util_buf_append(&b->buf, h, sizeof h) != 0;
}

void ipc_add(ipc_builder *b, ipc_tag tag, const void *data, size_t len)
{
    if (b->failed || len > IPC_MAX_FRAME || b->count >= IPC_MAX_FIELDS) {
        b->failed = true;
        return;
    }
    uint8_t h[5];
    h[0] = (uint8_t)tag;
    put32(h + 1, (uint32_t)len);
    if (util_buf_append(&b->buf, h, sizeof h) != 0 || (len && util_buf_append(&b->buf, data, len) != 0))
        b->failed = true;
    b->count++;
}

void ipc_add_str(ipc_builder *b, ipc_tag tag, const char *s)
{
    if (s)
        ipc_add(b, tag, s, strlen(s));
}

void ipc_add_u32(ipc_builder *b, ipc_tag tag, uint32_t v)
{
    uint8_t p[4];
    put32(p, v);
    ipc_add(b, tag, p, sizeof p);
}

void ipc_add_u64(ipc_builder *b, ipc_tag tag, uint64_t v)
{
    uint8_t p[8];
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
    ipc_add(b, tag, p, sizeof p);
}

uint8_t *ipc_end(ipc_builder *b, size_t *len)
{
    if (b->failed || b->buf.len - 4 > IPC_MAX_FRAME) {
        util_buf_free(&b->buf);
        return NULL;
    }
    put32(b->buf.data, (uint32_t)(b->buf.len - 4));
    b->buf.data[6] = (uint8_t)(b->count >> 8);
    b->buf.data[7] = (uint8_t)b->count;
    return util_buf_take(&b->buf, len);
}

void ipc_frame_free(uint8_t *frame, size_t len)
{
    if (frame)
        OPENSSL_clear_free(frame, len);
}

void ipc_msg_clear(ipc_msg *m)
{
    ipc_frame_free(m->frame, m->frame_len);
    memset(m, 0, sizeof *m);
}

static const ipc_rule *rule_for(const ipc_rule *rules, uint8_t tag)
{
    for (const ipc_rule *r = rules; r->tag; r++)
        if (r->tag == tag)
            return r;
    return NULL;
}

int ipc_parse(uint8_t *frame, size_t len, ipc_msg *out, util_error *err)
{
    memset(out, 0, sizeof *out);
    out->frame = frame;
    out->frame_len = len;
    if (len < IPC_HEADER_LEN || get32(frame) != len - 4 || len - 4 > IPC_MAX_FRAME)
        goto bad_frame;
    out->type = (uint16_t)(frame[4] << 8 | frame[5]);
    size_t count = (size_t)(frame[6] << 8 | frame[7]);
    out->id = get32(frame + 8);
    if (out->type >= IPC_TYPE_MAX || !schemas[out->type].rules) {
        util_error_set(err, UTIL_ERR_INTERNAL, "message of unknown type %u between scepd's processes",
                       (unsigned)out->type);
        goto fail;
    }
    if (count > IPC_MAX_FIELDS)
        goto bad_frame;
    const ipc_schema *s = &schemas[out->type];
    size_t pos = IPC_HEADER_LEN;
    for (size_t i = 0; i < count; i++) {
        if (len - pos < 5)
            goto bad_frame;
        uint8_t tag = frame[pos];
        uint32_t flen = get32(frame + pos + 1);
        pos += 5;
        if (flen > len - pos)
            goto bad_frame;
        const ipc_rule *r = rule_for(s->rules, tag);
        if (!r || flen > r->max || (r->exact && flen != r->max)) {
            util_error_set(err, UTIL_ERR_INTERNAL, "%s message: field %u is not allowed or too long", s->name,
                           (unsigned)tag);
            goto fail;
        }
        if (!r->repeat && ipc_get(out, tag)) {
            util_error_set(err, UTIL_ERR_INTERNAL, "%s message: field %u twice", s->name, (unsigned)tag);
            goto fail;
        }
        out->fields[out->count++] = (ipc_field){.tag = tag, .len = flen, .data = frame + pos};
        pos += flen;
    }
    if (pos != len)
        goto bad_frame;
    for (const ipc_rule *r = s->rules; r->tag; r++)
        if (r->required && !ipc_get(out, r->tag)) {
            util_error_set(err, UTIL_ERR_INTERNAL, "%s message without field %u", s->name, (unsigned)r->tag);
            goto fail;
        }
    /* names and values come in pairs */
    size_t names = 0, values = 0;
    for (size_t i = 0; i < out->count; i++) {
        names += out->fields[i].tag == IPC_T_NAME;
        values += out->fields[i].tag == IPC_T_VALUE;
        if (values > names || names > values + 1) {
            util_error_set(err, UTIL_ERR_INTERNAL, "%s message: header names and values out of order",
                           s->name);
            goto fail;
        }
    }
    if (names != values) {
        util_error_set(err, UTIL_ERR_INTERNAL, "%s message: a header name without a value", s->name);
        goto fail;
    }
    return 0;
bad_frame:
    util_error_set(err, UTIL_ERR_INTERNAL, "malformed message frame between scepd's processes");
fail:
    ipc_msg_clear(out);
    return -1;
}

const ipc_field *ipc_get(const ipc_msg *m, ipc_tag tag)
{
    for (size_t i = 0; i < m->count; i++)
        if (m->fields[i].tag == tag)
            return &m->fields[i];
    return NULL;
}

char *ipc_str(const ipc_msg *m, ipc_tag tag)
{
    const ipc_field *f = ipc_get(m, tag);
    if (!f || memchr(f->data, '\0', f->len))
        return NULL;
    char *s = malloc(f->len + 1);
    if (!s)
        return NULL;
    memcpy(s, f->data, f->len);
    s[f->len] = '\0';
    return s;
}

bool ipc_u32(const ipc_msg *m, ipc_tag tag, uint32_t *out)
{
    const ipc_field *f = ipc_get(m, tag);
    if (!f || f->len != 4)
        return false;
    *out = get32(f->data);
    return true;
}

bool ipc_u64(const ipc_msg *m, ipc_tag tag, uint64_t *out)
{
    const ipc_field *f = ipc_get(m, tag);
    if (!f || f->len != 8)
        return false;
    *out = (uint64_t)get32(f->data) << 32 | get32(f->data + 4);
    return true;
}

int ipc_write(int fd, const uint8_t *frame, size_t len)
{
    while (len) {
        ssize_t n = write(fd, frame, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        frame += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ipc_read(int fd, ipc_msg *out, util_error *err)
{
    uint8_t word[4];
    memset(out, 0, sizeof *out);
    if (read_all(fd, word, 4) != 0)
        return util_error_set(err, UTIL_ERR_INTERNAL, "the other scepd process closed its channel");
    uint32_t n = get32(word);
    if (n < IPC_HEADER_LEN - 4 || n > IPC_MAX_FRAME)
        return util_error_set(err, UTIL_ERR_INTERNAL, "malformed message frame between scepd's processes");
    uint8_t *frame = malloc((size_t)n + 4);
    if (!frame)
        return util_error_set(err, UTIL_ERR_INTERNAL, "out of memory");
    memcpy(frame, word, 4);
    if (read_all(fd, frame + 4, n) != 0) {
        ipc_frame_free(frame, (size_t)n + 4);
        return util_error_set(err, UTIL_ERR_INTERNAL, "the other scepd process closed its channel");
    }
    return ipc_parse(frame, (size_t)n + 4, out, err);
}

int ipc_error_of(const ipc_msg *m, util_error *err)
{
    uint32_t code = UTIL_ERR_INTERNAL;
    if (!ipc_u32(m, IPC_T_CODE, &code) || code == 0 || code >= UTIL_ERR_COUNT)
        code = UTIL_ERR_INTERNAL;
    char *detail = ipc_str(m, IPC_T_DETAIL);
    util_error_set(err, (util_err)code, "%s", detail ? detail : "");
    free(detail);
    return -1;
}

uint8_t *ipc_error_frame(const util_error *err, size_t *len)
{
    ipc_builder b;
    ipc_begin(&b, IPC_ERROR, 0);
    ipc_add_u32(&b, IPC_T_CODE, (uint32_t)err->code);
    ipc_add_str(&b, IPC_T_DETAIL, err->detail);
    return ipc_end(&b, len);
}

int ipc_call(int fd, ipc_builder *request, ipc_msg *reply, util_error *err)
{
    size_t len = 0;
    uint8_t *frame = ipc_end(request, &len);
    memset(reply, 0, sizeof *reply);
    if (!frame)
        return util_error_set(err, UTIL_ERR_INTERNAL, "message to the vault too large or out of memory");
    int rc = ipc_write(fd, frame, len);
    ipc_frame_free(frame, len);
    if (rc != 0)
        return util_error_set(err, UTIL_ERR_VAULT, "the key process is gone");
    if (ipc_read(fd, reply, err) != 0) {
        err->code = UTIL_ERR_VAULT;
        return -1;
    }
    if (reply->type == IPC_ERROR) {
        ipc_error_of(reply, err);
        ipc_msg_clear(reply);
        return -1;
    }
    if (reply->type != IPC_OK) {
        ipc_msg_clear(reply);
        return util_error_set(err, UTIL_ERR_VAULT, "unexpected answer from the key process");
    }
    return 0;
}
