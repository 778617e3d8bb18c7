#!/usr/bin/env bash
# scepca tells a resend from a new request with the same transactionID: a
# resend has the same message type, signer and CSR; the same signer with
# another CSR is refused (badRequest); a renewal with the same key is a new
# request; a RenewalReq to ndes2016 is refused even when the CSR is the
# earlier one's. CertPoll finds the request named by issuer and subject.
. "$(dirname "$0")/lib.sh"
need_scepctl

requests() { "$SCEPCA" list --dir "$1" | grep -c '^request '; }
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# --- generic, pending: resend, reused transactionID, CertPoll by subject ---
D=$WORK/g
"$SCEPCA" init --dir "$D" >/dev/null
start_server g --dir "$D" --profile generic --challenge pw --pending
U=$URL_BASE/scep
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/k.pem" 2>/dev/null
expect_exit 3 "first request is pending" "$SCEPCTL" enroll -u "$U" --cn resend-a --challenge pw \
    --key "$WORK/k.pem" --key-out "$WORK/k1.pem" --cert-out "$WORK/c1.pem" --state "$WORK/s1" --poll-count 0
cp "$WORK/s1" "$WORK/s1.copy"
expect_exit 3 "the same request again (new self-signed signer, same key and CSR) is a resend: pending" \
    "$SCEPCTL" enroll -u "$U" --cn resend-a --challenge pw \
    --key "$WORK/k.pem" --key-out "$WORK/k1.pem" --cert-out "$WORK/c1.pem" --state "$WORK/s1b" --poll-count 0
[ "$(requests "$D")" = 1 ] && ok "a resend adds no request" || not_ok "a resend added a request: $(requests "$D")"
expect_exit 1 "the same key and transactionID with another CSR is refused" \
    "$SCEPCTL" enroll -u "$U" --cn resend-other --challenge pw \
    --key "$WORK/k.pem" --key-out "$WORK/k2.pem" --cert-out "$WORK/c2.pem" --poll-count 0
expect_error fail_bad_request "reused transactionID"
grep -q "reused for a different CSR" "$SRV_LOG" && ok "the server log says the transactionID was reused" ||
    not_ok "no 'reused' line in the server log"
ID=$("$SCEPCA" list --dir "$D" --pending | sed -n 's/^request \([0-9]*\) .*CN=resend-a.*/\1/p')
check "approve request $ID" "$SCEPCA" approve --dir "$D" "$ID"
expect_exit 0 "poll after approval" "$SCEPCTL" poll --state "$WORK/s1"
check "the approved certificate is for CN=resend-a" \
    sh -c "openssl x509 -in '$WORK/c1.pem' -noout -subject | grep -q 'CN = resend-a'"
cp "$WORK/c1.pem" "$WORK/c1.first"
expect_exit 0 "a resend of the approved request gets its certificate" "$SCEPCTL" enroll -u "$U" \
    --cn resend-a --challenge pw --key "$WORK/k.pem" --key-out "$WORK/k1r.pem" --cert-out "$WORK/c1r.pem" \
    --poll-count 0
[ "$(serial "$WORK/c1r.pem")" = "$(serial "$WORK/c1.first")" ] && ok "the resend returned the same certificate" ||
    not_ok "the resend returned another certificate"
# the key used a second time: a renewal with the same key and another subject, left pending
expect_exit 3 "renewal with the same key is a new request (pending)" "$SCEPCTL" renew -u "$U" \
    --key "$WORK/k1.pem" --cert "$WORK/c1.first" --reuse-key --cn resend-b \
    --key-out "$WORK/k3.pem" --cert-out "$WORK/c3.pem" --state "$WORK/s3" --poll-count 0
[ "$(requests "$D")" = 2 ] && ok "the renewal added a request" || not_ok "requests: $(requests "$D")"
expect_exit 0 "polling the approved request still finds it by subject" \
    "$SCEPCTL" poll --state "$WORK/s1.copy"
[ "$(serial "$WORK/c1.pem")" = "$(serial "$WORK/c1.first")" ] && ok "CertPoll returned the approved certificate" ||
    not_ok "CertPoll returned another certificate"
expect_exit 3 "polling the renewal is pending" "$SCEPCTL" poll --state "$WORK/s3" --poll-count 0
stop_server

# --- generic, immediate: a renewal with the same key gets a new certificate ---
D=$WORK/r
"$SCEPCA" init --dir "$D" >/dev/null
# a database of schema version 1 (before message type and signer were kept)
sqlite3 "$D/scepca.db" "ALTER TABLE requests DROP COLUMN signer; ALTER TABLE requests DROP COLUMN message_type;
    UPDATE schema_version SET version = 1" && ok "database turned back into schema version 1" ||
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
    ok "the version 1 database was migrated to version 2" || not_ok "schema version not 2"
[ "$(sqlite3 "$D/scepca.db" "SELECT count(*) FROM requests WHERE signer LIKE 'key:%' AND message_type = 19")" = 1 ] &&
    ok "the first enrollment is recorded as a PKCSReq from its key" || not_ok "signer/message type not recorded"
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
