/* scepd's start-up, shared by scepd.c (configuration) and scepd_procs.c
 * (the processes). */
#ifndef SCEPD_CMD_SCEPD_H
#define SCEPD_CMD_SCEPD_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent/agent.h"
#include "edge/edge.h"
#include "util/error.h"
#include "util/log.h"

struct evhttp;

#define MAX_HOST_NAMES 64

typedef struct options {
    const char *config;
    char state_dir[512];
    char listen[128];
    char listen_tls[128];
    char admin_password_file[512];
    char kek_file[512];    /* --kek-file / kek_file: "" for none */
    char kek_tpm_dir[512]; /* kek_tpm_dir: the KEK sealed to the TPM; "" for none */
    char initial_url[512];
    bool check_only;
    bool use_syslog;
    util_log_level level;
    agent_config agent;
    edge_config edge;
    char server_names[512]; /* configured names of the device, comma-separated */
    char host_name_buf[MAX_HOST_NAMES][256];
    const char *host_names[MAX_HOST_NAMES];
    size_t host_name_count;
    int line_error;
    char config_error[256];
    char user[64];      /* the network process's user when scepd starts as root */
    char tpm_tcti[512]; /* TPM2OPENSSL_TCTI for keys in the TPM; "" leaves the environment's */
} options;

/* The HTTPS listener's context: replaced when the tls binding changes; open
 * connections keep the context they started with. */
typedef struct tls_holder {
    SSL_CTX *ctx;
    char fingerprint[100];
} tls_holder;

/* scepd.c */
int bind_http(edge *e, struct evhttp *http, const char *addr, char *bound, size_t bound_len, util_error *err);
SSL *tls_new(void *arg);
void on_tls_change(void *arg, const char *key_pem, const char *cert_pem, const char *chain_pem);
void collect_host_names(options *o);
int save_generated_password(const options *o, const char *password, util_error *err);
char *read_admin_password(const options *o, util_error *err);
void harden_process(void);

/* scepd_procs.c: starts the vault, agent and network processes and watches
 * them until a signal stops scepd. */
int scepd_run(options *o, util_error *err);

#endif
