#!/usr/bin/env bash
# Browser tests of the Remote UI, as TAP: starts scepca (test CA, --pending)
# and scepd on loopback, runs remote_ui.test.mjs with node's test runner
# (playwright-core driving Debian's chromium), then stops both by PID.
# Env: SCEPD and SCEPCA (binaries), SCEPD_BUILD_ROOT (screenshots go to
# $SCEPD_BUILD_ROOT/screenshots). Skips when node, npm or chromium is missing.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CHROMIUM=/usr/bin/chromium

skip() {
    # one skipped test point (a bare "1..0 # SKIP" would count as no test run)
    echo "ok 1 - e2e-remote-ui # SKIP $*"
    echo "1..1"
    exit 0
}
bail() {
    echo "Bail out! $*"
    exit 1
}

# SCEPD_TEST_MISSING (comma-separated) names peers to treat as absent
hidden() { case ",${SCEPD_TEST_MISSING:-}," in *",$1,"*) return 0 ;; esac; return 1; }
{ ! hidden node && command -v node >/dev/null 2>&1; } || skip "node is not installed (tools/deps.sh installs nodejs)"
{ ! hidden npm && command -v npm >/dev/null 2>&1; } || skip "npm is not installed (tools/deps.sh installs npm)"
{ ! hidden chromium && [ -x "$CHROMIUM" ]; } || skip "$CHROMIUM is not installed (tools/deps.sh installs chromium)"
[ -n "${SCEPD:-}" ] && [ -x "$SCEPD" ] || bail "SCEPD must name the scepd binary"
[ -n "${SCEPCA:-}" ] && [ -x "$SCEPCA" ] || bail "SCEPCA must name the scepca binary"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    skip "host: node $(node --version) is older than 20 (Debian 12 ships 18; tools/deps.sh cannot install a newer one)"

if [ ! -f "$HERE/node_modules/playwright-core/package.json" ]; then
    (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >&2 ||
        bail "npm ci in tests/e2e failed (the npm registry must be reachable once)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/scepd-e2e.XXXXXX")
SHOTS=${SCEPD_BUILD_ROOT:-$HERE/../../build}/screenshots
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png # only this run's pictures
CA_PID=""
SD_PID=""

stop() { # stop PID: TERM, then KILL after 5 s
    local pid=$1 i=0
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
cleanup() {
    stop "$SD_PID"
    stop "$CA_PID"
    # tests/run scans $SCEPD_TEST_LOGS for sanitizer reports
    if [ -n "${SCEPD_TEST_LOGS:-}" ] && [ -d "$SCEPD_TEST_LOGS" ]; then
        cp "$WORK"/*.log "$WORK"/*.out "$SCEPD_TEST_LOGS/" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE PATTERN PID: up to 10 s for PATTERN in FILE while PID lives
wait_for() {
    local i=0
    while [ $i -lt 100 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

"$SCEPCA" init --dir "$WORK/ca" >"$WORK/ca-init.log" 2>&1 || { cat "$WORK/ca-init.log" >&2; bail "scepca init failed"; }
"$SCEPCA" serve --dir "$WORK/ca" --listen 127.0.0.1:0 --challenge secret --pending \
    >"$WORK/ca.out" 2>"$WORK/ca.log" &
CA_PID=$!
wait_for "$WORK/ca.out" "listening on" "$CA_PID" || { cat "$WORK/ca.log" >&2; bail "scepca serve did not start"; }
CA_URL=$(sed -n 's/^listening on //p' "$WORK/ca.out")

ADMIN_PASSWORD="e2e-admin-$$"
# ports the kernel picks, read back from scepd's first line: no race with
# another process between choosing a port and binding it
SCEPD_ADMIN_PASSWORD=$ADMIN_PASSWORD "$SCEPD" --state "$WORK/state" --kek-file "$WORK/scepd.kek" \
    --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 >"$WORK/scepd.out" 2>"$WORK/scepd.log" &
SD_PID=$!
wait_for "$WORK/scepd.out" "Remote UI at" "$SD_PID" || { cat "$WORK/scepd.log" >&2; bail "scepd did not start"; }
PORT=$(sed -n 's|.*Remote UI at http://127\.0\.0\.1:\([0-9]*\)/ui/.*|\1|p' "$WORK/scepd.out")
TLS_PORT=$(sed -n 's|.* and https://127\.0\.0\.1:\([0-9]*\)/ui/.*|\1|p' "$WORK/scepd.out")
[ -n "$PORT" ] && [ -n "$TLS_PORT" ] || bail "no ports in scepd's first line: $(head -1 "$WORK/scepd.out")"

echo "# scepd on 127.0.0.1:$PORT (HTTPS $TLS_PORT), scepca on $CA_URL; screenshots in $SHOTS"
E2E_BASE="http://127.0.0.1:$PORT" E2E_TLS="127.0.0.1:$TLS_PORT" E2E_CA_URL="$CA_URL" E2E_CA_DIR="$WORK/ca" \
E2E_ADMIN_PASSWORD=$ADMIN_PASSWORD E2E_SCREENSHOTS="$SHOTS" SCEPCA="$SCEPCA" \
    timeout 400 node --test --test-reporter=tap --test-concurrency=1 "$HERE/remote_ui.test.mjs"
rc=$?

stop "$SD_PID"
SD_PID=""
stop "$CA_PID"
CA_PID=""
# under ASan/UBSan the daemons' logs must hold no report
for log in "$WORK/scepd.log" "$WORK/ca.log"; do
    if grep -q -e "ERROR: AddressSanitizer" -e "ERROR: LeakSanitizer" -e "runtime error:" "$log" 2>/dev/null; then
        echo "# $(basename "$log"): sanitizer report"
        grep -A12 -e "Sanitizer" -e "runtime error" "$log" | head -40 | sed 's/^/#   /'
        rc=1
    fi
done
if [ $rc -ne 0 ]; then
    echo "# scepd log (last lines):"
    tail -25 "$WORK/scepd.log" | sed 's/^/#   /'
    echo "# scepca log (last lines):"
    tail -10 "$WORK/ca.log" | sed 's/^/#   /'
fi
exit $rc
