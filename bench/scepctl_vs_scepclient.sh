#!/bin/bash
# shellcheck disable=SC2034,SC2317  # arrays used through namerefs; cleanup runs from trap
# Benchmark: `scepctl enroll` against micromdm's `scepclient`, both enrolling
# with the same pre-generated RSA-2048 key at one micromdm scepserver (RSA-2048
# CA, challenge password) over loopback, inside a private network namespace.
#
#   bench/scepctl_vs_scepclient.sh            (RUNS=15 by default, at least 10)
#   RUNS=30 SCEPCTL=build/src/cmd/scepctl bench/scepctl_vs_scepclient.sh
#
# Per iteration, strictly interleaved: a timing run of scepctl, one of
# scepclient, then a memory run of scepctl and one of scepclient. Both kinds of
# run go through a small C helper (compiled here from the source below):
#  * timing run: fork + execvp + wait4, wall time from CLOCK_MONOTONIC around
#    them; peak RSS = ru_maxrss from wait4 (what `/usr/bin/time -f %M` shows).
#  * memory run: the child runs under ptrace (only the thread-group leader,
#    PTRACE_O_TRACEEXIT); the helper reads /proc/PID/status every 1 ms
#    (and on each SIGCHLD) and keeps the highest RssAnon (anonymous pages =
#    memory private to the process: heap, stacks, Go's arena); at the exit
#    stop, before the kernel frees the address space, it reads RssAnon and
#    VmHWM once more and Private_Clean+Private_Dirty from smaps_rollup.
#    Ptrace stops slow the traced run, so memory runs are not timed.
# Every run must succeed (exit 0 and a certificate written); failures are
# counted and make the script exit 1. Two untimed warm-up runs per client.
# Output: a table (median and p90 wall ms, median peak RSS, median peak RssAnon)
# with the ratios scepctl/scepclient, then cross-checks: VmHWM and
# Private_Clean+Private_Dirty from the exit stop. The latter is not used as the
# private-memory figure: it counts file-backed pages (shared libraries, the Go
# binary's text) as private whenever no other process maps the same file, so
# it changes with whatever else runs on the machine.
set -u

self=$(readlink -f "$0")
root=$(cd "$(dirname "$self")/.." && pwd)
BUILD=${BUILD:-$root/build}
SCEPCTL=${SCEPCTL:-$BUILD/src/cmd/scepctl}
RUNS=${RUNS:-15}
export SCEPCTL RUNS BUILD

die() { echo "error: $*" >&2; exit 1; }

if [ -z "${SCEPD_IN_NETNS:-}" ]; then
    case $RUNS in '' | *[!0-9]*) die "RUNS must be a number" ;; esac
    [ "$RUNS" -ge 10 ] || die "RUNS must be at least 10"
    for tool in scepserver scepclient openssl curl gcc; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (make deps)"
    done
    [ -x "$SCEPCTL" ] || die "scepctl not built at $SCEPCTL (make build)"
    if ldd "$SCEPCTL" 2>/dev/null | grep -q -E 'libasan|libubsan|libtsan'; then
        die "$SCEPCTL is a sanitizer build; use the release-ish one from make build"
    fi
    export SCEPD_IN_NETNS=1
    # scepserver listens on every interface: keep it in a private namespace.
    timeout 10 unshare -n true 2>/dev/null || die "cannot create a network namespace (need root)"
    exec timeout -k 10 1500 unshare -n bash "$self" "$@"
fi

ip link set lo up || die "cannot bring up lo"
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_scep.XXXXXX") || die mktemp
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- measuring helper ------------------------------------------------------------
cat >"$T/memwatch.c" <<'EOF'
/* memwatch -t OUT CMD...: wall time and ru_maxrss of CMD.
 * memwatch -m OUT CMD...: peak RssAnon (polled every 1 ms + at the exit stop),
 * VmHWM and Private_Clean+Private_Dirty at the exit stop.
 * Writes one line "rc wall_us maxrss_kb anon_peak_kb hwm_kb private_kb samples" to OUT. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int slurp(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    size_t off = 0;
    ssize_t r;
    while (off + 1 < n && (r = read(fd, buf + off, n - 1 - off)) > 0)
        off += (size_t)r;
    close(fd);
    buf[off] = 0;
    return off ? 0 : -1;
}

static long field(const char *buf, const char *name)
{
    const char *p = strstr(buf, name);
    return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static void sample(pid_t pid, long *anon, long *hwm)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (slurp(path, buf, sizeof buf) != 0)
        return;
    long a = field(buf, "\nRssAnon:"), h = field(buf, "\nVmHWM:");
    if (a > *anon)
        *anon = a;
    if (h > *hwm)
        *hwm = h;
}

static long private_kb(pid_t pid)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    if (slurp(path, buf, sizeof buf) != 0)
        return -1;
    return field(buf, "\nPrivate_Clean:") + field(buf, "\nPrivate_Dirty:");
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "-t") && strcmp(argv[1], "-m"))) {
        fprintf(stderr, "usage: memwatch -t|-m OUT CMD...\n");
        return 2;
    }
    int mem = argv[1][1] == 'm';
    FILE *out = fopen(argv[2], "w");
    if (!out)
        return 2;
    char **cmd = argv + 3;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        sigprocmask(SIG_UNBLOCK, &chld, NULL);
        if (mem && ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(126);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    int st = 0;
    long anon = -1, hwm = -1, priv = -1, samples = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (!mem) {
        if (wait4(pid, &st, 0, &ru) != pid)
            return 2;
    } else {
        /* first stop: the SIGTRAP after execve */
        if (wait4(pid, &st, 0, &ru) != pid || !WIFSTOPPED(st))
            return 2;
        ptrace(PTRACE_SETOPTIONS, pid, NULL,
               (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL));
        ptrace(PTRACE_CONT, pid, NULL, NULL);
        for (int done = 0; !done;) {
            sample(pid, &anon, &hwm);
            samples++;
            struct timespec tick = {0, 1000000};
            sigtimedwait(&chld, NULL, &tick);
            pid_t w = 0;
            while (!done && (w = wait4(pid, &st, WNOHANG, &ru)) == pid) {
                if (WIFSTOPPED(st)) {
                    if ((st >> 8) == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) {
                        sample(pid, &anon, &hwm);
                        priv = private_kb(pid);
                        ptrace(PTRACE_CONT, pid, NULL, NULL);
                    } else if (st >> 16) {
                        ptrace(PTRACE_CONT, pid, NULL, NULL); /* exec (a wrapper's) */
                    } else {
                        ptrace(PTRACE_CONT, pid, NULL, (void *)(long)WSTOPSIG(st));
                    }
                } else {
                    done = 1;
                }
            }
            if (w < 0)
                break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long wall_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    long cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    fprintf(out, "%d %ld %ld %ld %ld %ld %ld %ld\n", rc, wall_us, ru.ru_maxrss, anon, hwm, priv, samples, cpu_us);
    fclose(out);
    return 0;
}
EOF
gcc -O2 -Wall -o "$T/memwatch" "$T/memwatch.c" || die "cannot compile the measuring helper"
MW=$T/memwatch

# ---- micromdm CA and server ----------------------------------------------------------
PORT=8080
URL=http://127.0.0.1:$PORT/scep
timeout 120 scepserver ca -init -depot "$T/depot" -keySize 2048 >"$T/ca.log" 2>&1 || die "ca -init failed"
scepserver -depot "$T/depot" -port "$PORT" -challenge secret -allowrenew 0 >"$T/server.log" 2>&1 &
SERVER_PID=$!
up=0
for _ in $(seq 1 100); do
    curl -s --max-time 1 -o /dev/null "$URL?operation=GetCACaps" && { up=1; break; }
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ "$up" = 1 ] || die "scepserver did not start: $(tail -3 "$T/server.log")"

# One key for both clients, PKCS#1 PEM because scepclient reads only that.
# scepclient writes/reuses csr.pem next to the key: it is deleted before each
# of its runs so that, like scepctl, it builds a CSR every time.
mkdir -p "$T/key" "$T/out"
openssl genrsa -traditional -out "$T/key/key.pem" 2048 2>/dev/null || die "openssl genrsa"

ctl_cmd=("$SCEPCTL" enroll -u "$URL" --cn bench.example --challenge secret --key "$T/key/key.pem"
    --key-out "$T/out/ctl.key" --cert-out "$T/out/ctl.crt" --force)
sc_cmd=(scepclient -server-url "$URL" -private-key "$T/key/key.pem" -certificate "$T/out/sc.crt"
    -challenge secret -cn bench.example)

fail_ctl=0
fail_sc=0
# one CLIENT MODE: runs one measured enrollment, appends the helper's line to $T/CLIENT.MODE
one() {
    local client=$1 mode=$2 crt
    if [ "$client" = ctl ]; then crt=$T/out/ctl.crt; rm -f "$crt" "$T/out/ctl.key"
    else crt=$T/out/sc.crt; rm -f "$crt" "$T/key/csr.pem"; fi
    local -n cmd=${client}_cmd
    rm -f "$T/line"
    if ! timeout -k 5 60 "$MW" "-$mode" "$T/line" "${cmd[@]}" >>"$T/$client.log" 2>&1; then
        echo "helper failed" >"$T/line"
    fi
    local rc
    read -r rc _ <"$T/line"
    if [ "$rc" = 0 ] && grep -q "BEGIN CERTIFICATE" "$crt" 2>/dev/null; then
        cat "$T/line" >>"$T/$client.$mode"
    else
        echo "# $client run failed ($mode): $(cat "$T/line")" >&2
        if [ "$client" = ctl ]; then fail_ctl=$((fail_ctl + 1)); else fail_sc=$((fail_sc + 1)); fi
    fi
}

for _ in 1 2; do one ctl t; one sc t; done    # warm-up
rm -f "$T"/*.t
for i in $(seq 1 "$RUNS"); do
    one ctl t; one sc t; one ctl m; one sc m
done
# the certificates of the last runs must be issued by the CA, for the shared key
key_der=$(openssl pkey -in "$T/key/key.pem" -pubout -outform DER | base64 -w0)
for c in ctl sc; do
    if ! openssl verify -CAfile "$T/depot/ca.pem" "$T/out/$c.crt" >/dev/null 2>&1 ||
        [ "$(openssl x509 -in "$T/out/$c.crt" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | base64 -w0)" != "$key_der" ]; then
        echo "# the last $c certificate does not verify or is not for the shared key" >&2
        if [ "$c" = ctl ]; then fail_ctl=$((fail_ctl + 1)); else fail_sc=$((fail_sc + 1)); fi
    fi
done

# ---- statistics ------------------------------------------------------------------------
# stat FILE COLUMN med|p90 [DIV]: median (mean of the two middle values when
# even) or p90 (nearest rank) of a column, divided by DIV.
stat() {
    [ -s "$1" ] || { echo n/a; return; }
    awk -v c="$2" '{print $c}' "$1" | sort -n | awk -v q="$3" -v d="${4:-1}" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            if (q == "med") x = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            else { r = int(0.9 * NR); if (r < 0.9 * NR) r++; x = v[r] }
            printf "%.1f\n", x / d
        }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -A R
for c in ctl sc; do
    R[$c.n]=$( (wc -l <"$T/$c.t") 2>/dev/null || echo 0)
    R[$c.wmed]=$(stat "$T/$c.t" 2 med 1000)
    R[$c.wp90]=$(stat "$T/$c.t" 2 p90 1000)
    R[$c.rss]=$(stat "$T/$c.t" 3 med)
    R[$c.cpu]=$(stat "$T/$c.t" 8 med 1000)
    R[$c.anon]=$(stat "$T/$c.m" 4 med)
    R[$c.hwm]=$(stat "$T/$c.m" 5 med)
    R[$c.priv]=$(stat "$T/$c.m" 6 med)
    R[$c.samples]=$(stat "$T/$c.m" 7 med)
done

ctl_build=$(python3 -c 'import json,sys; print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"]=="buildtype"))' \
    "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo unknown)
echo "scepctl enroll vs micromdm scepclient $(scepclient -version 2>&1 | head -1)"
echo "runs: $RUNS each (+2 warm-up), ok: scepctl ${R[ctl.n]}, scepclient ${R[sc.n]}; failures (incl. warm-up): scepctl $fail_ctl, scepclient $fail_sc"
echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "scepctl: $SCEPCTL (buildtype $ctl_build, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?))"
echo "memory runs: median ${R[ctl.samples]} (scepctl) / ${R[sc.samples]} (scepclient) /proc samples per run"
echo
echo "| metric | scepctl | scepclient | scepctl/scepclient |"
echo "|---|---:|---:|---:|"
echo "| wall time, median (ms) | ${R[ctl.wmed]} | ${R[sc.wmed]} | $(ratio "${R[ctl.wmed]}" "${R[sc.wmed]}") |"
echo "| wall time, p90 (ms) | ${R[ctl.wp90]} | ${R[sc.wp90]} | $(ratio "${R[ctl.wp90]}" "${R[sc.wp90]}") |"
echo "| client CPU (user+sys), median (ms) | ${R[ctl.cpu]} | ${R[sc.cpu]} | $(ratio "${R[ctl.cpu]}" "${R[sc.cpu]}") |"
echo "| peak RSS, median (KiB, ru_maxrss) | ${R[ctl.rss]} | ${R[sc.rss]} | $(ratio "${R[ctl.rss]}" "${R[sc.rss]}") |"
echo "| peak private (RssAnon), median (KiB) | ${R[ctl.anon]} | ${R[sc.anon]} | $(ratio "${R[ctl.anon]}" "${R[sc.anon]}") |"
echo
echo "cross-checks (memory runs): VmHWM at exit ${R[ctl.hwm]} / ${R[sc.hwm]} KiB;" \
    "Private_Clean+Private_Dirty at exit ${R[ctl.priv]} / ${R[sc.priv]} KiB (scepctl / scepclient;" \
    "counts shared-library pages as private when no other process maps them)"
echo
verdict() { # verdict A OP B: "met" when A OP B holds, for numbers
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) { print "not measured"; exit }
        ok = (op == "<=half") ? (a + 0 <= 0.5 * b) : (op == "<=") ? (a + 0 <= b + 0) : (a + 0 < b + 0)
        print ok ? "met" : "NOT met" }'
}
wall_ok=$(verdict "${R[ctl.wmed]}" "<=half" "${R[sc.wmed]}")
mem_ok=$(verdict "${R[ctl.anon]}" "<" "${R[sc.anon]}")
echo "target median wall <= 1.0x scepclient (issue 14): $(verdict "${R[ctl.wmed]}" "<=" "${R[sc.wmed]}")"
echo "target median wall <= 0.5x scepclient (the first benchmark's): $wall_ok"
echo "target private memory below scepclient's: $mem_ok"

[ "$fail_ctl" -eq 0 ] && [ "$fail_sc" -eq 0 ] || exit 1
exit 0
