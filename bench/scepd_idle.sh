#!/usr/bin/env bash
# Benchmark (bench/run runs it; results in docs/benchmarks.md): scepd at
# rest. Starts scepca and scepd on loopback in a private network namespace,
# lets scepd settle for 3 s, then for IDLE_SECONDS (default 30) counts the
# context switches of scepd's four processes (nr_switches of every thread,
# /proc/PID/task/*/sched): each one is a wake-up. Also prints each process's
# memory at rest (VmRSS, RssAnon, RssFile from /proc/PID/status; RssAnon is
# the memory private to it) and the system calls strace sees in 10 s.
# Prints Markdown tables.
#   BUILD=build IDLE_SECONDS=30 bench/scepd_idle.sh
set -u
if [ -z "${BENCH_IN_NETNS:-}" ]; then
    timeout 10 unshare -n true 2>/dev/null || { echo "cannot create a network namespace (need root)" >&2; exit 1; }
    export BENCH_IN_NETNS=1
    exec timeout -k 10 300 unshare -n bash "$(readlink -f "$0")" "$@"
fi
ip link set lo up
B=${BUILD:-build}
SECONDS_IDLE=${IDLE_SECONDS:-30}
W=$(mktemp -d "${BENCH_TMP:-/tmp}/bench-idle.XXXXXX")
trap 'kill $P $CA 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
"$B/src/cmd/scepca" init --dir "$W/ca" --key-type rsa:2048 >/dev/null
"$B/src/cmd/scepca" serve --dir "$W/ca" --listen 127.0.0.1:18080 --challenge secret >/dev/null 2>&1 &
CA=$!
SCEPD_ADMIN_PASSWORD=bench-idle-password "$B/src/cmd/scepd" --state "$W/state" --listen 127.0.0.1:18081 \
    --scep-url http://127.0.0.1:18080/scep --kek-file "$W/kek" >"$W/log" 2>&1 &
P=$!
sleep 3
kill -0 $P 2>/dev/null || { echo "scepd did not start:" >&2; cat "$W/log" >&2; exit 1; }
# the supervisor and its three processes
PIDS="$P $(awk -v p=$P '$4 == p {print $1}' /proc/[0-9]*/stat 2>/dev/null | tr '\n' ' ')"
switches() { for q in $PIDS; do for t in /proc/$q/task/*; do awk '/^nr_switches/ {print $3}' "$t/sched"; done; done | awk '{s += $1} END {printf "%.0f\n", s}'; }
mem() { awk -v k="$2:" '$1 == k {print $2}' /proc/$1/status; }
s0=$(switches)
sleep "$SECONDS_IDLE"
s1=$(switches)
calls=-
if command -v strace >/dev/null 2>&1; then
    timeout 10 strace -f -c $(for q in $PIDS; do printf -- '-p %s ' $q; done) -o "$W/strace" >/dev/null 2>&1
    calls=$(awk '$NF == "total" {print $4}' "$W/strace")
    calls=${calls:-0}
fi
echo "| processes | context switches in ${SECONDS_IDLE} s idle | system calls in 10 s (strace) | load (1 min) |"
echo "|---:|---:|---:|---:|"
echo "| $(echo $PIDS | wc -w) | $((s1 - s0)) | $calls | $(cut -d' ' -f1 /proc/loadavg) |"
echo
echo "| process | threads | VmRSS KiB | RssAnon KiB | RssFile KiB |"
echo "|---|---:|---:|---:|---:|"
for q in $PIDS; do
    echo "| $(cat /proc/$q/comm) | $(ls /proc/$q/task | wc -l) | $(mem $q VmRSS) | $(mem $q RssAnon) | $(mem $q RssFile) |"
done
