/* scepctl's commands share one option set. */
#ifndef SCEPD_CMD_SCEPCTL_H
#define SCEPD_CMD_SCEPCTL_H

#include "client/client.h"

typedef struct options {
    client_config cfg;
    const char *out, *cn, *org, *subject, *email, *challenge, *challenge_file, *key_type, *key;
    const char *cert, *key_usage, *template_name, *state, *key_out, *cert_out, *chain_out;
    const char *new_key_type, *mode, *serial, *signer, *signer_key;
    crypto_key_storage key_storage; /* of a generated key: software (default) or tpm2 */
    const char *tpm_tcti;           /* --tpm-tcti: TPM2OPENSSL_TCTI for the tpm2 provider */
    const char *sans[CRYPTO_MAX_SANS];
    size_t san_count;
    const char *ekus[CRYPTO_MAX_EKUS];
    size_t eku_count;
    long poll_interval, poll_count;
    bool reuse_key, markdown, help, decimal, force, version;
    /* enroll and renew without --state: NAME.state next to --key-out */
    char default_state[4096];
    bool state_defaulted;
    const char *positional;
} options;

void scepctl_report(const util_error *err);
int scepctl_inspect(options *o, util_error *err);
/* Prints the help of the command whose usage line is usage. */
void scepctl_command_help(const char *usage, bool network);

#endif
