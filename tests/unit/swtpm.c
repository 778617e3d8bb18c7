/* swtpm for the unit tests (swtpm.h). */
#include "swtpm.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tempdir.h"

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void h_swtpm_start(h_swtpm *t)
{
    memset(t, 0, sizeof *t);
    t->dir = h_tempdir();
    char state[512], sock[512], ctrl[512], tpmstate[600], server[600], ctrlspec[600], log[600];
    snprintf(state, sizeof state, "%s/state", t->dir);
    snprintf(sock, sizeof sock, "%s/sock", t->dir);
    /* the swtpm TCTI finds the control socket at PATH.ctrl */
    snprintf(ctrl, sizeof ctrl, "%s/sock.ctrl", t->dir);
    snprintf(tpmstate, sizeof tpmstate, "dir=%s", state);
    snprintf(server, sizeof server, "type=unixio,path=%s", sock);
    snprintf(ctrlspec, sizeof ctrlspec, "type=unixio,path=%s", ctrl);
    snprintf(log, sizeof log, "file=%s/swtpm.log", t->dir);
    assert_int_equal(mkdir(state, 0700), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", tpmstate, "--server", server, "--ctrl",
               ctrlspec, "--flags", "not-need-init,startup-clear", "--log", log, (char *)NULL);
        _exit(127);
    }
    t->pid = pid;
    for (int i = 0; i < 1000 && !(exists(sock) && exists(ctrl)); i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            t->pid = 0;
            fail_msg("swtpm exited (status %d) before it listened; is swtpm installed (tools/deps.sh)?",
                     status);
        }
        pause_ms(10);
    }
    if (!exists(sock) || !exists(ctrl))
        fail_msg("swtpm did not create %s within 10 s", sock);
    size_t n = strlen(sock) + 16;
    t->tcti = malloc(n);
    assert_non_null(t->tcti);
    snprintf(t->tcti, n, "swtpm:path=%s", sock);
}

bool h_swtpm_stop(h_swtpm *t)
{
    if (t->pid <= 0)
        return false;
    int status = 0;
    bool running = waitpid(t->pid, &status, WNOHANG) == 0;
    if (running) {
        kill(t->pid, SIGTERM);
        for (int i = 0; i < 500 && waitpid(t->pid, &status, WNOHANG) == 0; i++)
            pause_ms(10);
        if (kill(t->pid, 0) == 0) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, &status, 0);
        }
    }
    t->pid = 0;
    return running;
}

void h_swtpm_free(h_swtpm *t)
{
    h_swtpm_stop(t);
    h_rmtree(t->dir);
    free(t->dir);
    free(t->tcti);
    memset(t, 0, sizeof *t);
}
