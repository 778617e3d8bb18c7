#!/usr/bin/env bash
# Benchmark (bench/run runs it; results in docs/benchmarks.md): scepd at
# rest. Starts scepca and scepd on loopback in a private network namespace,
# lets scepd settle for 3 s, then for IDLE_SECONDS (default 30) counts its
# context switches (nr_switches of every thread, /proc/PID/task/*/sched):
# each one is a wake-up. Also prints its memory at rest (VmRSS, RssAnon,
# RssFile from /proc/PID/status; RssAnon is the memory private to scepd) and
# the system calls strace sees in 10 s. Prints a Markdown table.
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
    --scep-url http://127.0.0.1:18080/scep >"$W/log" 2>&1 &
P=$!
sleep 3
kill -0 $P 2>/dev/null || { echo "scepd did not start:" >&2; cat "$W/log" >&2; exit 1; }
switches() { for t in /proc/$P/task/*; do awk '/^nr_switches/ {print $3}' "$t/sched"; done | awk '{s += $1} END {printf "%.0f\n", s}'; }
mem() { awk -v k="$1:" '$1 == k {print $2}' /proc/$P/status; }
s0=$(switches)
sleep "$SECONDS_IDLE"
s1=$(switches)
calls=-
if command -v strace >/dev/null 2>&1; then
    timeout 10 strace -f -c -p $P -o "$W/strace" >/dev/null 2>&1
    calls=$(awk '$NF == "total" {print $4}' "$W/strace")
    calls=${calls:-0}
fi
echo "| threads | context switches in ${SECONDS_IDLE} s idle | system calls in 10 s (strace) | VmRSS KiB | RssAnon KiB | RssFile KiB | load (1 min) |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
echo "| $(ls /proc/$P/task | wc -l) | $((s1 - s0)) | $calls | $(mem VmRSS) | $(mem RssAnon) | $(mem RssFile) | $(cut -d' ' -f1 /proc/loadavg) |"
