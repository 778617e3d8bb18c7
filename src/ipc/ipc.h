/*
 * The message protocol between scepd's processes (docs/internals/privsep.md).
 *
 * A message is a frame on a SOCK_STREAM socketpair:
 *
 *     u32 length of what follows (big-endian, at most IPC_MAX_FRAME)
 *     u16 type, u16 field count, u32 id
 *     fields: u8 tag, u32 length, bytes
 *
 * Every type has a schema (ipc.c): which tags it may carry, which are
 * required, which may repeat, and the maximum length of each. A frame that
 * breaks it is refused as a whole; the receiver then closes the channel, so a
 * process that sends garbage loses its peer instead of confusing it. Field
 * values are bytes; ipc_str() also refuses embedded NULs.
 */
#ifndef SCEPD_IPC_H
#define SCEPD_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

#define IPC_MAX_FRAME (8u * 1024 * 1024)
#define IPC_MAX_FIELDS 80
#define IPC_HEADER_LEN 12 /* the length word and the fixed header */

typedef enum ipc_type {
    /* agent or net -> vault, answered by IPC_OK or IPC_ERROR */
    IPC_V_GENERATE = 1, /* SPEC AAD -> SEALED PUBKEY */
    IPC_V_SEAL,         /* KEY AAD -> SEALED (a clear key of an old store) */
    IPC_V_RESEAL,       /* SEALED AAD NEW_AAD -> SEALED (a key moves to another row) */
    IPC_V_PUBLIC,       /* SEALED AAD -> PUBKEY */
    IPC_V_RSA,          /* SEALED AAD OP (MD | PADDING) INPUT -> OUTPUT */
    IPC_V_ECDSA,        /* SEALED AAD INPUT (a digest) -> OUTPUT (DER signature) */
    IPC_V_ECDH,         /* SEALED AAD PEER (public key DER) -> OUTPUT */
    IPC_V_EXPORT,       /* SEALED AAD FUNCTION CERT [CHAIN] -> (written to the function's export paths) */
    IPC_V_TLS,          /* SEALED AAD CERT [CHAIN] -> (the vault hands key and certificates to net) */
    IPC_V_SECRET_OPEN,  /* SEALED -> OUTPUT (the store's secrets key, and nothing else) */
    IPC_V_SECRET_SEAL,  /* INPUT (32 bytes) -> SEALED */
    IPC_OK = 32,        /* fields of the answer */
    IPC_ERROR,          /* CODE DETAIL */
    /* net -> agent */
    IPC_N_READY = 48, /* BOUND [BOUND_TLS]: listeners bound, at these addresses */
    IPC_N_REQUEST,    /* id: METHOD PATH [QUERY] REMOTE TLS (NAME VALUE)* [BODY] */
    IPC_N_CLOSED,     /* id: the client of a request left before its answer */
    IPC_N_FETCHED,    /* id: RC, then STATUS [CTYPE] [SERVER] [BODY] or CODE DETAIL */
    /* agent -> net */
    IPC_A_RESPONSE = 64, /* id: STATUS [CTYPE] (NAME VALUE)* [BODY] */
    IPC_A_FETCH,         /* id: METHOD URL [BODY] [CTYPE] OPTIONS... */
    IPC_A_CANCEL,        /* id: forget fetch id */
    /* vault -> net */
    IPC_TLS_KEY = 80, /* KEY or (SEALED AAD PUBKEY), CERT [CHAIN]: what the HTTPS listener presents */
    IPC_TYPE_MAX
} ipc_type;

typedef enum ipc_tag {
    IPC_T_SPEC = 1,
    IPC_T_AAD,
    IPC_T_NEW_AAD,
    IPC_T_SEALED,
    IPC_T_PUBKEY,
    IPC_T_KEY,
    IPC_T_OP, /* u32: IPC_OP_* */
    IPC_T_PADDING,
    IPC_T_INPUT,
    IPC_T_OUTPUT,
    IPC_T_PEER,
    IPC_T_FUNCTION,
    IPC_T_MD,
    IPC_T_CODE,
    IPC_T_DETAIL,
    IPC_T_BOUND,
    IPC_T_BOUND_TLS,
    IPC_T_METHOD,
    IPC_T_PATH,
    IPC_T_QUERY,
    IPC_T_REMOTE,
    IPC_T_TLS,
    IPC_T_NAME,
    IPC_T_VALUE,
    IPC_T_BODY,
    IPC_T_STATUS,
    IPC_T_CTYPE,
    IPC_T_SERVER,
    IPC_T_RC,
    IPC_T_URL,
    IPC_T_CONNECT_MS,
    IPC_T_TOTAL_MS,
    IPC_T_MAX_RESPONSE,
    IPC_T_CA_FILE,
    IPC_T_PIN,
    IPC_T_PIN_SKIP_HOST,
    IPC_T_PROXY,
    IPC_T_INSECURE,
    IPC_T_USER_AGENT,
    IPC_T_CERT,
    IPC_T_CHAIN,
    IPC_T_IN_TPM, /* u32: the key is inside the vault's TPM */
    IPC_T_MAX
} ipc_tag;

/* IPC_V_RSA: a PKCS#1 v1.5 signature of a digest (MD: its NID), or a
 * decryption with PADDING (RSA_PKCS1_PADDING, or RSA_NO_PADDING for OAEP,
 * whose padding the caller checks). */
enum { IPC_OP_SIGN = 1, IPC_OP_DECRYPT = 2 };

typedef struct ipc_field {
    uint8_t tag;
    uint32_t len;
    const uint8_t *data; /* into the message's frame */
} ipc_field;

typedef struct ipc_msg {
    uint16_t type;
    uint32_t id;
    size_t count;
    ipc_field fields[IPC_MAX_FIELDS];
    uint8_t *frame; /* owned; wiped when freed (it may hold keys or passwords) */
    size_t frame_len;
} ipc_msg;

/* ---- building ---- */
typedef struct ipc_builder {
    util_buf buf;
    uint16_t count;
    bool failed;
} ipc_builder;

void ipc_begin(ipc_builder *b, ipc_type type, uint32_t id);
void ipc_add(ipc_builder *b, ipc_tag tag, const void *data, size_t len);
void ipc_add_str(ipc_builder *b, ipc_tag tag, const char *s); /* NULL: nothing added */
void ipc_add_u32(ipc_builder *b, ipc_tag tag, uint32_t v);
void ipc_add_u64(ipc_builder *b, ipc_tag tag, uint64_t v);
/* The finished frame (caller frees with ipc_frame_free), or NULL when out of
 * memory or too large. */
uint8_t *ipc_end(ipc_builder *b, size_t *len);
void ipc_frame_free(uint8_t *frame, size_t len);

/* ---- parsing ---- */
/* Parses and checks a whole frame (with its length word) against its type's
 * schema; takes frame in both outcomes. */
int ipc_parse(uint8_t *frame, size_t len, ipc_msg *out, util_error *err) MUST_CHECK;
void ipc_msg_clear(ipc_msg *m);

const ipc_field *ipc_get(const ipc_msg *m, ipc_tag tag);
/* A copy as a C string; NULL when absent, empty-allowed, never with a NUL inside. */
char *ipc_str(const ipc_msg *m, ipc_tag tag);
bool ipc_u32(const ipc_msg *m, ipc_tag tag, uint32_t *out);
bool ipc_u64(const ipc_msg *m, ipc_tag tag, uint64_t *out);
const char *ipc_type_name(unsigned type);

/* ---- blocking I/O (the vault and its clients) ---- */
/* Writes a whole frame; -1 with errno on failure. */
int ipc_write(int fd, const uint8_t *frame, size_t len);
/* Reads one frame: 0, or -1 (peer gone or bad frame: err says which). */
int ipc_read(int fd, ipc_msg *out, util_error *err) MUST_CHECK;

/* An IPC_ERROR message's CODE and DETAIL as err (an unknown code reads as
 * INTERNAL); returns -1. */
int ipc_error_of(const ipc_msg *m, util_error *err);
/* The answer to a request: IPC_ERROR becomes err (rc -1). */
int ipc_call(int fd, ipc_builder *request, ipc_msg *reply, util_error *err) MUST_CHECK;
/* Frames an IPC_ERROR from err. */
uint8_t *ipc_error_frame(const util_error *err, size_t *len);

#endif
