#!/usr/bin/env bash
# One test per scepca fault: the exact exit code and error code of
# `scepctl enroll` when the server misbehaves that way.
. "$(dirname "$0")/lib.sh"
need_scepctl

G=$WORK/generic
N=$WORK/ndes
"$SCEPCA" init --dir "$G" >/dev/null && "$SCEPCA" init --dir "$N" --ndes >/dev/null ||
    { echo "Bail out! init failed"; exit 1; }

# fault_case FAULT EXIT ERROR [scepctl options...]: a server with only that
# fault, one enrollment. ERROR "-" means none is printed (success).
fault_case() {
    local fault=$1 want=$2 code=$3; shift 3
    local dir=$G path=/scep profile=generic
    case $fault in expired-ra*) dir=$N; path=/certsrv/mscep/mscep.dll; profile=ndes2016;; esac
    start_server "f-$fault" --dir "$dir" --profile "$profile" --challenge pw --fault "$fault"
    local t0 t1
    t0=$(date +%s%N)
    expect_exit "$want" "--fault $fault: scepctl enroll" \
        "$SCEPCTL" enroll -u "$URL_BASE$path" --cn "fault" --challenge pw --poll-count 0 \
        --state "$WORK/f.state" --key-out "$WORK/f.key" --cert-out "$WORK/f.crt" --force "$@"
    t1=$(date +%s%N)
    ELAPSED_MS=$(( (t1 - t0) / 1000000 ))
    if [ "$code" != - ]; then expect_error "$code" "--fault $fault"; fi
    kill -0 "$SRV_PID" 2>/dev/null && ok "--fault $fault: the server is still running" ||
        not_ok "--fault $fault: the server died"
    stop_server
}

fault_case delay:400 0 -
[ "$ELAPSED_MS" -ge 400 ] && ok "delay:400 delayed the reply (${ELAPSED_MS} ms)" ||
    not_ok "delay:400 took only ${ELAPSED_MS} ms"
fault_case delay:20000 4 net_timeout --timeout 2
fault_case drop 4 net_reset
fault_case reset 4 net_reset
grep -q "reset by peer" "$WORK/last.err" && ok "reset: the client saw a TCP RST" ||
    not_ok "reset: no 'reset by peer' in the client's message"
fault_case truncate 4 net_reset
grep -q "bytes remaining" "$WORK/last.err" && ok "truncate: the body ended early" ||
    not_ok "truncate: client message does not mention the missing bytes"
fault_case garbage 5 response_parse
fault_case http:500 4 http_server_error
fault_case http:503 4 http_server_error
fault_case http:404 4 http_status
fault_case wrong-content-type 0 -
fault_case bad-signature 5 response_signature
fault_case wrong-signer 5 response_signer
fault_case wrong-transaction-id 5 response_transaction
fault_case wrong-recipient-nonce 5 response_nonce
fault_case expired-ra 5 cacert_ra_invalid
fault_case slow-drip:50 4 net_timeout --timeout 3
fault_case slow-drip:1 0 -

# pending-forever: even an approved request stays pending
start_server pf --dir "$G" --profile generic --challenge pw --fault pending-forever
URL=$URL_BASE/scep
expect_exit 3 "--fault pending-forever: enroll" "$SCEPCTL" enroll -u "$URL" --cn pf \
    --challenge pw --poll-count 0 --state "$WORK/pf.state" --key-out "$WORK/pf.key" \
    --cert-out "$WORK/pf.crt"
expect_error pending "--fault pending-forever"
ID=$("$SCEPCA" list --dir "$G" --pending | sed -n 's/^request \([0-9]*\) .*CN=pf.*/\1/p')
check "pending-forever: approve $ID" "$SCEPCA" approve --dir "$G" "$ID"
expect_exit 3 "--fault pending-forever: poll after approval is still pending" \
    "$SCEPCTL" poll --state "$WORK/pf.state" --poll-count 0
stop_server

# faults combine, and probabilities parse
start_server combo --dir "$G" --profile generic --challenge pw --fault delay:300 \
    --fault wrong-recipient-nonce@1.0
t0=$(date +%s%N)
expect_exit 5 "delay:300 + wrong-recipient-nonce together" "$SCEPCTL" enroll \
    -u "$URL_BASE/scep" --cn combo --challenge pw --key-out "$WORK/c.key" --cert-out "$WORK/c.crt"
t1=$(date +%s%N)
expect_error response_nonce "combined faults"
[ $(( (t1 - t0) / 1000000 )) -ge 300 ] && ok "combined faults: the delay applied too" ||
    not_ok "combined faults: no delay"
stop_server
start_server never --dir "$G" --profile generic --challenge pw --fault drop@0.000001
expect_exit 0 "drop@0.000001 almost never fires" "$SCEPCTL" enroll -u "$URL_BASE/scep" \
    --cn p --challenge pw --key-out "$WORK/p.key" --cert-out "$WORK/p.crt"
stop_server
expect_exit 2 "an unknown fault is a usage error" "$SCEPCA" serve --dir "$G" --fault bogus
expect_exit 2 "http:abc is a usage error" "$SCEPCA" serve --dir "$G" --fault http:abc
expect_exit 2 "a probability above 1 is a usage error" "$SCEPCA" serve --dir "$G" --fault drop@2
finish
