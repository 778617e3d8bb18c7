#!/usr/bin/env bash
# scepca tells a resend from a new request with the same transactionID: a
# resend has the same message type, signer certificate and CSR; the same
# signer with another CSR is refused (badRequest) while the first request is
# pending, and a new request once it is finished; a key used again under a
# new self-signed certificate, and a renewal with the same key, are new
# requests; a RenewalReq to ndes2016 is refused even when the CSR is the
# earlier one's. CertPoll finds the request named by issuer and subject, the
# issued one first.
. "$(dirname "$0")/lib.sh"
need_scepctl

requests() { "$SCEPCA" list --dir "$1" | grep -c '^request '; }
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# --- generic, pending: resend, a key used twice, reused transactionID, CertPoll ---
D=$WORK/g
"$SCEPCA" init --dir "$D" >/dev/null
start_server g --dir "$D" --profile generic --challenge pw --pending
U=$URL_BASE/scep
# a forwarder that keeps each POSTed pkiMessage, to send the same bytes again
mkdir -p "$WORK/rec"
python3 "$(dirname "$0")/record_forward.py" "$URL_BASE" "$WORK/rec" >"$WORK/rec.addr" 2>"$WORK/rec.log" &
REC_PID=$!
T_PIDS="$T_PIDS $REC_PID"
i=0
while [ $i -lt 100 ] && ! grep -q "listening on" "$WORK/rec.addr"; do sleep 0.1; i=$((i + 1)); done
REC=$(sed -n 's/^listening on //p' "$WORK/rec.addr")
[ -n "$REC" ] || { echo "Bail out! the forwarder did not start"; exit 1; }
resend() { # resend FILE: POSTs the saved pkiMessage again; prints its pkiStatus line
    curl -s -o "$WORK/resend.der" --data-binary @"$1" -H 'Content-Type: application/x-pki-message' \
        "$U?operation=PKIOperation"
    "$SCEPCTL" inspect "$WORK/resend.der" | sed -n 's/^pkiStatus: *//p'
}
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/k.pem" 2>/dev/null
expect_exit 3 "first request is pending" "$SCEPCTL" enroll -u "$REC/scep" --cn resend-a --challenge pw \
    --key "$WORK/k.pem" --key-out "$WORK/k1.pem" --cert-out "$WORK/c1.pem" --state "$WORK/s1" --poll-count 0
cp "$WORK/s1" "$WORK/s1.copy"
[ -s "$WORK/rec/post-1.der" ] && ok "the PKCSReq was recorded" || not_ok "no PKCSReq recorded"
st=$(resend "$WORK/rec/post-1.der")
[ "$st" = "3 (PENDING)" ] && ok "the same pkiMessage again is a resend: PENDING" || not_ok "resend answered '$st'"
[ "$(requests "$D")" = 1 ] && ok "a resend adds no request" || not_ok "a resend added a request: $(requests "$D")"
ID=$("$SCEPCA" list --dir "$D" --pending | sed -n 's/^request \([0-9]*\) .*CN=resend-a.*/\1/p')
check "approve request $ID" "$SCEPCA" approve --dir "$D" "$ID"
expect_exit 0 "poll after approval" "$SCEPCTL" poll --state "$WORK/s1"
check "the approved certificate is for CN=resend-a" \
    sh -c "openssl x509 -in '$WORK/c1.pem' -noout -subject | grep -q 'CN = resend-a'"
cp "$WORK/c1.pem" "$WORK/c1.first"
st=$(resend "$WORK/rec/post-1.der")
[ "$st" = "0 (SUCCESS)" ] && ok "a resend of the approved request: SUCCESS" || not_ok "resend answered '$st'"
[ "$(requests "$D")" = 1 ] && ok "still one request" || not_ok "requests: $(requests "$D")"
# the key used twice: a new self-signed certificate for the same key and CSR, as certmonger's resubmit
expect_exit 3 "the same key and CSR under a new signer certificate is a new request (pending)" \
    "$SCEPCTL" enroll -u "$U" --cn resend-a --challenge pw --key "$WORK/k.pem" \
    --key-out "$WORK/k2.pem" --cert-out "$WORK/c2.pem" --state "$WORK/s2" --poll-count 0
[ "$(requests "$D")" = 2 ] && ok "the key used twice has two requests" || not_ok "requests: $(requests "$D")"
expect_exit 0 "polling the approved request still gets its certificate" "$SCEPCTL" poll --state "$WORK/s1.copy" \
    --force
[ "$(serial "$WORK/c1.pem")" = "$(serial "$WORK/c1.first")" ] && ok "CertPoll returned the approved certificate" ||
    not_ok "CertPoll returned another certificate"
# renewal with the same key, then the same old certificate and key for another CSR
expect_exit 3 "renewal with the same key is a new request (pending)" "$SCEPCTL" renew -u "$U" \
    --key "$WORK/k1.pem" --cert "$WORK/c1.first" --reuse-key --cn resend-b \
    --key-out "$WORK/k3.pem" --cert-out "$WORK/c3.pem" --state "$WORK/s3" --poll-count 0
[ "$(requests "$D")" = 3 ] && ok "the renewal added a request" || not_ok "requests: $(requests "$D")"
expect_exit 1 "the same signer and transactionID with another CSR is refused" "$SCEPCTL" renew -u "$U" \
    --key "$WORK/k1.pem" --cert "$WORK/c1.first" --reuse-key --cn resend-c \
    --key-out "$WORK/k4.pem" --cert-out "$WORK/c4.pem" --poll-count 0
expect_error fail_bad_request "reused transactionID"
grep -q "reused for a different CSR" "$SRV_LOG" && ok "the server log says the transactionID was reused" ||
    not_ok "no 'reused' line in the server log"
[ "$(requests "$D")" = 3 ] && ok "the refused request is not recorded" || not_ok "requests: $(requests "$D")"
expect_exit 3 "polling the renewal is pending" "$SCEPCTL" poll --state "$WORK/s3" --poll-count 0
ID=$("$SCEPCA" list --dir "$D" --pending | sed -n 's/^request \([0-9]*\) .*CN=resend-b.*/\1/p')
check "reject request $ID" "$SCEPCA" reject --dir "$D" "$ID"
expect_exit 1 "polling the rejected renewal: FAILURE" "$SCEPCTL" poll --state "$WORK/s3" --poll-count 0
expect_exit 3 "once the request is rejected, another CSR under its transactionID is a new request" \
    "$SCEPCTL" renew -u "$U" --key "$WORK/k1.pem" --cert "$WORK/c1.first" --reuse-key --cn resend-c \
    --key-out "$WORK/k4.pem" --cert-out "$WORK/c4.pem" --poll-count 0
[ "$(requests "$D")" = 4 ] && ok "the new request is recorded" || not_ok "requests: $(requests "$D")"
kill "$REC_PID" 2>/dev/null
wait "$REC_PID" 2>/dev/null
stop_server

# --- generic, immediate: a renewal with the same key gets a new certificate ---
D=$WORK/r
"$SCEPCA" init --dir "$D" >/dev/null
# a database of schema version 1 (before message type and signer were kept),
# as a scepca without the meta table wrote it
sqlite3 "$D/scepca.db" "ALTER TABLE requests DROP COLUMN signer; ALTER TABLE requests DROP COLUMN message_type;
    UPDATE schema_version SET version = 1; DROP TABLE meta" && ok "database turned back into schema version 1" ||
    not_ok "could not make a version 1 database"
start_server r --dir "$D" --profile generic --challenge pw
U=$URL_BASE/scep
expect_exit 0 "enroll" "$SCEPCTL" enroll -u "$U" --cn renew-same --challenge pw \
    --key-out "$WORK/rk.pem" --cert-out "$WORK/rc.pem"
expect_exit 0 "renew with the same key" "$SCEPCTL" renew -u "$U" --key "$WORK/rk.pem" --cert "$WORK/rc.pem" \
    --reuse-key --challenge pw --key-out "$WORK/rk2.pem" --cert-out "$WORK/rc2.pem"
[ "$(serial "$WORK/rc2.pem")" != "$(serial "$WORK/rc.pem")" ] &&
    ok "the renewal is a new certificate, not the old one again" || not_ok "the renewal returned the old certificate"
[ "$(sqlite3 "$D/scepca.db" "SELECT version FROM schema_version")" = 2 ] &&
    [ "$(sqlite3 "$D/scepca.db" "SELECT value FROM meta WHERE key = 'schema_version'")" = 2 ] &&
    ok "the version 1 database was migrated to version 2" || not_ok "schema version not 2"
[ "$(sqlite3 "$D/scepca.db" "SELECT count(*) FROM requests WHERE length(signer) = 64 AND message_type = 19")" = 1 ] &&
    ok "the first enrollment is recorded as a PKCSReq with its signer" || not_ok "signer/message type not recorded"
stop_server

# --- ndes2016: RenewalReq after a PKCSReq with the same key is refused ---
D=$WORK/n
"$SCEPCA" init --dir "$D" --ndes >/dev/null
start_server n --dir "$D" --profile ndes2016 --challenge pw
U=$URL_BASE/certsrv/mscep/mscep.dll
expect_exit 0 "ndes2016: enroll" "$SCEPCTL" enroll -u "$U" --cn ndes-renew --challenge pw \
    --key-out "$WORK/nk.pem" --cert-out "$WORK/nc.pem"
expect_exit 1 "ndes2016: RenewalReq with the same key is refused" "$SCEPCTL" renew -u "$U" \
    --key "$WORK/nk.pem" --cert "$WORK/nc.pem" --reuse-key --mode renewalreq --challenge pw \
    --key-out "$WORK/nk2.pem" --cert-out "$WORK/nc2.pem"
grep -q "RenewalReq is not supported" "$WORK/last.err" "$SRV_LOG" && ok "ndes2016: the reason is RenewalReq" ||
    not_ok "ndes2016: no 'RenewalReq is not supported'"
[ ! -e "$WORK/nc2.pem" ] && ok "ndes2016: no certificate written" || not_ok "ndes2016: a certificate was written"
stop_server
finish
