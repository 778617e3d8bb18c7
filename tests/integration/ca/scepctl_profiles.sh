#!/usr/bin/env bash
# scepctl against every scepca profile: GetCACaps bodies and Server headers,
# enrollment with a one-time password, a reused password, a missing one,
# PENDING -> approve -> poll, PENDING -> reject -> poll, a restart while
# pending, renewal, GetCRL, GetNextCACert after rollover, the IIS query
# string limit and the 2012 R2 empty answer to POST.
. "$(dirname "$0")/lib.sh"
need_scepctl

caps_generic=$(printf 'AES\nDES3\nGetNextCACert\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\nSHA-512\nSCEPStandard\n')
caps_ndes=$(printf 'POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3')

profile_path() { case $1 in generic) echo /scep;; *) echo /certsrv/mscep/mscep.dll;; esac; }

check_caps() { # profile server-header expected-body
    local body hdr
    body=$(curl -s "$URL?operation=GetCACaps")
    hdr=$(curl -s -o /dev/null -D - "$URL?operation=GetCACaps" | tr -d '\r' | sed -n 's/^Server: //p')
    [ "$body" = "$3" ] && ok "$1: GetCACaps body is exact" || not_ok "$1: GetCACaps body '$body'"
    [ "$hdr" = "$2" ] && ok "$1: Server: $hdr" || not_ok "$1: Server header '$hdr', wanted '$2'"
}

run_profile() {
    local prof=$1 server=$2 caps=$3 extra=()
    local D=$WORK/$prof P=$WORK/$prof-out
    mkdir -p "$P"
    if [ "$prof" = generic ]; then "$SCEPCA" init --dir "$D" >/dev/null
    else "$SCEPCA" init --dir "$D" --ndes >/dev/null; fi
    # IIS 7.5/8.5 clients must use GET: raise maxQueryString as an administrator would
    case $prof in ndes2008r2|ndes2012r2) extra=(--max-query-string 16384);; esac
    start_server "$prof" --dir "$D" --profile "$prof" --otp "${extra[@]}"
    URL=$URL_BASE$(profile_path "$prof")
    check_caps "$prof" "$server" "$caps"

    cell_begin
    OTP=$("$SCEPCA" otp --dir "$D")
    expect_exit 0 "$prof: enroll with a one-time password" \
        "$SCEPCTL" enroll -u "$URL" --cn "$prof-1" --challenge "$OTP" \
        --key-out "$P/k1.pem" --cert-out "$P/c1.pem"
    check "$prof: certificate issued for CN=$prof-1" \
        sh -c "openssl x509 -in '$P/c1.pem' -noout -subject | grep -q 'CN = $prof-1'"
    expect_exit 1 "$prof: the same one-time password again is rejected" \
        "$SCEPCTL" enroll -u "$URL" --cn "$prof-2" --challenge "$OTP" \
        --key-out "$P/k2.pem" --cert-out "$P/c2.pem"
    if [ "$prof" = generic ]; then expect_error fail_bad_request "$prof: reused password"
    else expect_error fail_password_used "$prof: reused password (HRESULT 0x800B0110)"; fi
    grep -q "already been used" "$WORK/last.err" "$SRV_LOG" &&
        ok "$prof: the message says the password was already used" ||
        not_ok "$prof: no 'already been used' message"
    if [ "$prof" != generic ]; then
        expect_exit 1 "$prof: enroll without a password is rejected" \
            "$SCEPCTL" enroll -u "$URL" --cn "$prof-3" --key-out "$P/k3.pem" --cert-out "$P/c3.pem"
        expect_error fail_password_missing "$prof: missing password (HRESULT 0x80096004)"
        expect_exit 1 "$prof: an unknown password is rejected" \
            "$SCEPCTL" enroll -u "$URL" --cn "$prof-3" --challenge 0123456789ABCDEF \
            --key-out "$P/k3.pem" --cert-out "$P/c3.pem"
        expect_error fail_password_unknown "$prof: unknown password (HRESULT 0x80070490)"
    fi

    cell_end scepctl "$prof" "enroll (one-time password)"
    cell_begin
    expect_exit 0 "$prof: renew" "$SCEPCTL" renew -u "$URL" --key "$P/k1.pem" --cert "$P/c1.pem" \
        --key-out "$P/k1b.pem" --cert-out "$P/c1b.pem"
    check "$prof: the renewed certificate has a new key" \
        sh -c "[ \"\$(openssl x509 -in '$P/c1b.pem' -noout -pubkey)\" != \"\$(openssl x509 -in '$P/c1.pem' -noout -pubkey)\" ]"
    if [ "$prof" != generic ]; then
        grep -q "RenewalReq" "$SRV_LOG" && not_ok "$prof: client sent RenewalReq to NDES" ||
            ok "$prof: renewal went as a PKCSReq signed by the old certificate"
    fi

    cell_end scepctl "$prof" renewal
    cell_begin
    if [ "$prof" = generic ]; then
        SERIAL=$(openssl x509 -in "$P/c1.pem" -noout -serial | cut -d= -f2)
        check "$prof: scepca revoke $SERIAL" "$SCEPCA" revoke --dir "$D" "$SERIAL"
        expect_exit 0 "$prof: getcrl" "$SCEPCTL" getcrl -u "$URL" --key "$P/k1b.pem" \
            --cert "$P/c1b.pem" -o "$P/crl.pem"
        { openssl crl -in "$P/crl.pem" -noout -text 2>/dev/null ||
          openssl crl -inform DER -in "$P/crl.pem" -noout -text; } >"$WORK/crl.txt" 2>&1
        grep -q "Serial Number: $SERIAL" "$WORK/crl.txt" &&
            ok "$prof: serial $SERIAL is in the CRL" || not_ok "$prof: serial not in the CRL"
    else
        expect_exit 1 "$prof: getcrl is refused as on NDES" "$SCEPCTL" getcrl -u "$URL" \
            --key "$P/k1b.pem" --cert "$P/c1b.pem" -o "$P/crl.pem"
        expect_error fail_not_supported "$prof: GetCRL (HRESULT 0x80070057)"
    fi

    if [ "$prof" = generic ]; then cell_end scepctl "$prof" GetCRL
    else cell_end scepctl "$prof" GetCRL "refused, as NDES does"; fi
    cell_begin
    check "$prof: scepca rollover" "$SCEPCA" rollover --dir "$D"
    expect_exit 0 "$prof: getnextca after rollover" "$SCEPCTL" getnextca -u "$URL" -o "$P/next.pem"
    curl -s "$URL?operation=GetCACert" -o "$P/cacert.der"
    check "$prof: the next CA is a different CA certificate" \
        sh -c "openssl x509 -in '$P/next.pem' -noout -ext basicConstraints | grep -q CA:TRUE && [ \"\$(openssl x509 -in '$P/next.pem' -noout -pubkey)\" != \"\$(openssl x509 -in '$P/c1.pem' -noout -pubkey)\" ]"
    cell_end scepctl "$prof" GetNextCACert
    stop_server

    # --- pending: approve, a restart in between, then reject ---
    cell_begin
    start_server "$prof-pending" --dir "$D" --profile "$prof" --otp --pending "${extra[@]}"
    URL=$URL_BASE$(profile_path "$prof")
    OTP=$("$SCEPCA" otp --dir "$D")
    expect_exit 3 "$prof: enroll is deferred (PENDING)" \
        "$SCEPCTL" enroll -u "$URL" --cn "$prof-p1" --challenge "$OTP" --poll-count 0 \
        --state "$P/p1.state" --key-out "$P/p1.key" --cert-out "$P/p1.crt"
    expect_error pending "$prof: pending"
    stop_server
    LISTEN_PORT=$SRV_PORT start_server "$prof-pending2" --dir "$D" --profile "$prof" --otp --pending "${extra[@]}"
    URL=$URL_BASE$(profile_path "$prof")
    ID=$("$SCEPCA" list --dir "$D" --pending | sed -n "s/^request \([0-9]*\) .*CN=$prof-p1.*/\1/p")
    [ -n "$ID" ] && ok "$prof: after a restart the request is still pending (id $ID)" ||
        not_ok "$prof: pending request lost over a restart"
    expect_exit 3 "$prof: poll before approval is still pending" \
        "$SCEPCTL" poll --state "$P/p1.state" --poll-count 0
    check "$prof: scepca approve $ID" "$SCEPCA" approve --dir "$D" "$ID"
    expect_exit 0 "$prof: poll after approval yields the certificate" \
        "$SCEPCTL" poll --state "$P/p1.state"
    check "$prof: the polled certificate is for CN=$prof-p1" \
        sh -c "openssl x509 -in '$P/p1.crt' -noout -subject | grep -q 'CN = $prof-p1'"
    OTP=$("$SCEPCA" otp --dir "$D")
    expect_exit 3 "$prof: a second request is deferred" \
        "$SCEPCTL" enroll -u "$URL" --cn "$prof-p2" --challenge "$OTP" --poll-count 0 \
        --state "$P/p2.state" --key-out "$P/p2.key" --cert-out "$P/p2.crt"
    ID=$("$SCEPCA" list --dir "$D" --pending | sed -n "s/^request \([0-9]*\) .*CN=$prof-p2.*/\1/p")
    check "$prof: scepca reject $ID" "$SCEPCA" reject --dir "$D" "$ID"
    expect_exit 1 "$prof: poll after rejection yields FAILURE" \
        "$SCEPCTL" poll --state "$P/p2.state"
    expect_error fail_bad_request "$prof: rejected"
    stop_server
    cell_end scepctl "$prof" "pending, then approval"
}

run_profile generic "scepca/0.1.0" "$caps_generic"
run_profile ndes2016 "Microsoft-IIS/10.0" "$caps_ndes"
run_profile ndes2012r2 "Microsoft-IIS/8.5" "$caps_ndes"
run_profile ndes2008r2 "Microsoft-IIS/7.5" ""

# --- IIS limits and transports ---
D=$WORK/iis
"$SCEPCA" init --dir "$D" --ndes >/dev/null
start_server iis2016 --dir "$D" --profile ndes2016 --challenge pw
URL=$URL_BASE/certsrv/mscep/mscep.dll
expect_exit 4 "ndes2016: a GET longer than maxQueryString (2048) is refused" \
    "$SCEPCTL" enroll -u "$URL" --cn iis-1 --challenge pw --method get \
    --key-out "$WORK/i1.key" --cert-out "$WORK/i1.crt"
expect_error http_url_too_long "ndes2016: IIS 404.15"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL?operation=PKIOperation&message=$(head -c 3000 /dev/zero | tr '\0' A)")
[ "$code" = 404 ] && ok "ndes2016: a 3000-character query string gets 404" || not_ok "got HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL")
[ "$code" = 403 ] && ok "ndes2016: mscep.dll without parameters gets 403" || not_ok "got HTTP $code"
stop_server
start_server iis2012 --dir "$D" --profile ndes2012r2 --challenge pw --max-query-string 16384
URL=$URL_BASE/certsrv/mscep/mscep.dll
code=$(curl -s -o "$WORK/post.body" -w '%{http_code}' --data-binary @/dev/null \
    -H 'Content-Type: application/x-pki-message' "$URL?operation=PKIOperation")
[ "$code" = 200 ] && [ ! -s "$WORK/post.body" ] && ok "ndes2012r2: POST gets an empty 200" ||
    not_ok "ndes2012r2: POST got HTTP $code"
expect_exit 0 "ndes2012r2: enroll --method auto uses GET" \
    "$SCEPCTL" enroll -u "$URL" --cn iis-2 --challenge pw --key-out "$WORK/i2.key" --cert-out "$WORK/i2.crt"
stop_server
start_server iis2012-limit --dir "$D" --profile ndes2012r2 --challenge pw
URL=$URL_BASE/certsrv/mscep/mscep.dll
expect_exit 4 "ndes2012r2 with the default maxQueryString: POST refused, then the GET is too long" \
    "$SCEPCTL" enroll -u "$URL" --cn iis-3 --challenge pw --method post \
    --key-out "$WORK/i3.key" --cert-out "$WORK/i3.crt"
expect_error http_url_too_long_post_refused "ndes2012r2: GET too long after POST"
grep -q "^remedy:.*POST\|--method" "$WORK/last.err" && not_ok "the hint suggests POST after POST failed" ||
    ok "the hint does not suggest POST after POST failed"
stop_server
start_server iis2008 --dir "$D" --profile ndes2008r2 --challenge pw
URL=$URL_BASE/certsrv/mscep/mscep.dll
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary x "$URL?operation=PKIOperation")
[ "$code" = 405 ] && ok "ndes2008r2: POST is refused (405)" || not_ok "ndes2008r2: POST got $code"
len=$(curl -s -o /dev/null -w '%{size_download}' "$URL?operation=GetCACaps")
[ "$len" = 0 ] && ok "ndes2008r2: GetCACaps body is empty (no KB2483564)" || not_ok "caps length $len"
stop_server
finish
