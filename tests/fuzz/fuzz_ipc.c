/* ipc_parse over arbitrary bytes: the frames scepd's processes exchange
 * (src/ipc). A frame that parses satisfies its type's schema: every field
 * inside the frame, within its type's limits, required fields present,
 * header names and values in pairs. A parsed request of the vault is then
 * answered by a vault under a fixed KEK (32 bytes of 0x42), which must
 * answer IPC_OK or IPC_ERROR with a catalogue code and never crash. Seeds:
 * tests/fuzz/corpus/ipc (one frame of each kind, written by make_seeds). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/seal.h"
#include "ipc/ipc.h"
#include "vault/vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static crypto_kek *kek;
    static vault *v;
    util_error err;
    if (!kek) {
        uint8_t bytes[CRYPTO_KEK_LEN];
        memset(bytes, 0x42, sizeof bytes);
        if (crypto_kek_from_bytes(bytes, sizeof bytes, &kek, &err) != 0)
            abort();
        vault_config cfg = {.kek = kek};
        v = vault_new(&cfg);
    }
    uint8_t *frame = malloc(size ? size : 1);
    if (!frame)
        return 0;
    memcpy(frame, data, size);
    ipc_msg m;
    if (ipc_parse(frame, size, &m, &err) != 0)
        return 0; /* ipc_parse took the frame */
    size_t names = 0, values = 0;
    for (size_t i = 0; i < m.count; i++) {
        const ipc_field *f = &m.fields[i];
        if (f->data < m.frame || f->data + f->len > m.frame + m.frame_len)
            abort();
        names += f->tag == IPC_T_NAME;
        values += f->tag == IPC_T_VALUE;
    }
    if (names != values)
        abort();
    /* the vault's requests, but not generation: a fuzzer asking for RSA keys
     * would measure key generation, not the parser */
    if (m.type >= IPC_V_SEAL && m.type <= IPC_V_SECRET_SEAL && m.type != IPC_V_TLS) {
        size_t len = 0;
        uint8_t *reply = vault_handle(v, &m, &len);
        ipc_msg r;
        if (!reply || ipc_parse(reply, len, &r, &err) != 0 || (r.type != IPC_OK && r.type != IPC_ERROR))
            abort();
        ipc_msg_clear(&r);
    }
    ipc_msg_clear(&m);
    return 0;
}
