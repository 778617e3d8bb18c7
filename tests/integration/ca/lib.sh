# Shared helpers for the scepca integration scripts (sourced, POSIX sh + bash).
# Each script prints TAP. Servers are started on port 0 and stopped by PID.

: "${SCEPCA:?SCEPCA must name the scepca binary}"
SCEPCTL=${SCEPCTL:-}
T_NUM=0
T_FAILED=0
T_PIDS=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scepca-test.XXXXXX")

ok() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - $*"; }
not_ok() { T_NUM=$((T_NUM + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_NUM - $*"; }
skip() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - # SKIP $*"; }
diag() { echo "# $*"; }
check() { # check "description" command...
    local desc=$1; shift
    if "$@" >"$WORK/last.out" 2>"$WORK/last.err"; then ok "$desc"; else
        not_ok "$desc"; sed 's/^/#   /' "$WORK/last.out" "$WORK/last.err" | head -20; fi
}
# expect_exit CODE "description" command...: the exit status must be CODE
expect_exit() {
    local want=$1 desc=$2; shift 2
    "$@" >"$WORK/last.out" 2>"$WORK/last.err"
    local got=$?
    if [ "$got" = "$want" ]; then ok "$desc (exit $got)"; else
        not_ok "$desc (exit $got, wanted $want)"; sed 's/^/#   /' "$WORK/last.out" "$WORK/last.err" | head -20; fi
}
# expect_error CODE "description": the last command printed error[CODE]
expect_error() {
    if grep -q "error\[$1\]" "$WORK/last.err"; then ok "$2: error[$1]"; else
        not_ok "$2: wanted error[$1]"; sed 's/^/#   /' "$WORK/last.err" | head -10; fi
}

# start_server NAME ARGS...: runs `scepca serve` on a free port (or on
# $LISTEN_PORT when set, to restart on the same address); sets URL_BASE
# (http://127.0.0.1:PORT), SRV_PORT, SRV_PID and SRV_LOG.
# A restart on $LISTEN_PORT is retried (bounded: 10 tries) while the port is
# still in use; port 0 never needs a retry.
start_server() {
    local name=$1; shift
    SRV_LOG="$WORK/$name.log"
    local try=0
    while :; do
        "$SCEPCA" serve --listen "127.0.0.1:${LISTEN_PORT:-0}" "$@" >"$WORK/$name.addr" 2>"$SRV_LOG" &
        SRV_PID=$!
        T_PIDS="$T_PIDS $SRV_PID"
        local i=0
        while [ $i -lt 100 ] && ! grep -q "listening on" "$WORK/$name.addr" 2>/dev/null; do
            sleep 0.1; i=$((i + 1))
            kill -0 "$SRV_PID" 2>/dev/null || break
        done
        try=$((try + 1))
        grep -q "listening on" "$WORK/$name.addr" 2>/dev/null && break
        [ -n "${LISTEN_PORT:-}" ] && [ $try -lt 10 ] && grep -qi "in use" "$SRV_LOG" || break
        wait "$SRV_PID" 2>/dev/null
        sleep 0.5
    done
    URL_BASE=$(sed -n 's/^listening on //p' "$WORK/$name.addr")
    SRV_PORT=${URL_BASE##*:}
    if [ -z "$URL_BASE" ]; then
        echo "Bail out! scepca serve did not start"; cat "$SRV_LOG" >&2; exit 1
    fi
}

# Stops the last server; under ASan/UBSan its log must hold no report.
stop_server() {
    local pid=${1:-$SRV_PID}
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    T_PIDS=$(echo "$T_PIDS" | sed "s/ $pid\b//")
    if grep -q -e "ERROR: AddressSanitizer" -e "ERROR: LeakSanitizer" -e "runtime error:" \
        "$SRV_LOG" 2>/dev/null; then
        not_ok "scepca ($SRV_LOG) reported a sanitizer error"
        grep -A12 -e "Sanitizer" -e "runtime error" "$SRV_LOG" | head -30 | sed 's/^/#   /'
    fi
}

# keep_logs: copies the daemons' logs to $SCEPD_TEST_LOGS (set by tests/run,
# which scans them for sanitizer reports)
keep_logs() {
    [ -n "${SCEPD_TEST_LOGS:-}" ] && [ -d "$SCEPD_TEST_LOGS" ] || return 0
    for f in "$WORK"/*.log; do [ -f "$f" ] && cp "$f" "$SCEPD_TEST_LOGS/"; done
    return 0
}

cleanup() {
    for p in $T_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    keep_logs
    if [ "${KEEP_TMP:-}" = 1 ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Interop matrix cells (tools/interop-matrix prints docs/interop.md from them):
# cell_begin, then checks, then cell_end PEER PROFILE OPERATION [RESULT [NOTE]].
# The cell says RESULT (default "works") when every check in between passed.
INTEROP_DIR=${INTEROP_RESULTS:-${SCEPD_BUILD_ROOT:+$SCEPD_BUILD_ROOT/interop-results}}
INTEROP_FILE=""
if [ -n "$INTEROP_DIR" ] && mkdir -p "$INTEROP_DIR"; then
    INTEROP_FILE=$INTEROP_DIR/$(basename "$0" .sh).tsv
    : >"$INTEROP_FILE"
fi
cell_begin() { CELL_FAILED=$T_FAILED; }
cell_end() {
    local result=${4:-works}
    [ "$T_FAILED" = "${CELL_FAILED:-x}" ] || result="FAILED"
    [ -z "$INTEROP_FILE" ] || printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$result" "${5:-}" >>"$INTEROP_FILE"
}

finish() {
    echo "1..$T_NUM"
    [ "$T_FAILED" = 0 ]
}

# have_peer NAME: NAME (a peer program) is on PATH and not named in
# SCEPD_TEST_MISSING (a comma-separated list), which lets a run act as if a
# peer were not installed without touching the machine.
have_peer() {
    case ",${SCEPD_TEST_MISSING:-}," in *",$1,"*) return 1;; esac
    command -v "$1" >/dev/null 2>&1
}

need_scepctl() {
    if [ -z "$SCEPCTL" ] || [ ! -x "$SCEPCTL" ]; then
        echo "1..0 # SKIP scepctl is not built"; exit 0
    fi
}
