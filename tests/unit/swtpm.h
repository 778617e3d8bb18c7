/* A software TPM (swtpm) for the tests of keys held in a TPM: started on a
 * UNIX socket under a test's temporary directory, stopped at the end. */
#ifndef SCEPD_TESTS_SWTPM_H
#define SCEPD_TESTS_SWTPM_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct h_swtpm {
    pid_t pid;
    char *dir;  /* state and sockets */
    char *tcti; /* "swtpm:path=DIR/sock" */
} h_swtpm;

/* Starts swtpm (TPM 2.0, started up) with its state and sockets in a new
 * temporary directory and waits (at most 10 s) until both sockets exist.
 * Fails the running test when it cannot. */
void h_swtpm_start(h_swtpm *t);
/* Stops it with SIGTERM (SIGKILL after 5 s) and reaps it; the directory is
 * kept until h_swtpm_free. Returns true when it was running and exited. */
bool h_swtpm_stop(h_swtpm *t);
void h_swtpm_free(h_swtpm *t);

#endif
