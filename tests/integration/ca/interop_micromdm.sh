#!/usr/bin/env bash
# micromdm's scepclient (Debian package `scep`) enrolls against scepca generic.
. "$(dirname "$0")/lib.sh"
if ! have_peer scepclient; then echo "1..0 # SKIP scepclient not installed (tools/deps.sh installs scep)"; exit 0; fi

D=$WORK/ca
"$SCEPCA" init --dir "$D" >/dev/null || { echo "Bail out! init failed"; exit 1; }
start_server generic --dir "$D" --profile generic --challenge s3cret
URL=$URL_BASE/scep

cell_begin
mkdir -p "$WORK/c1" && cd "$WORK/c1" || exit 1
check "micromdm scepclient enrolls with the static challenge" \
    timeout 60 scepclient -server-url "$URL" -private-key key.pem -certificate cert.pem \
    -challenge s3cret -cn micromdm-1
subject=$(openssl x509 -in cert.pem -noout -subject 2>/dev/null)
case $subject in *"CN = micromdm-1"*) ok "issued certificate has the CSR's subject ($subject)";;
    *) not_ok "issued certificate subject: '$subject'";; esac
curl -s "$URL?operation=GetCACert" -o ca.der
check "issued certificate verifies against the GetCACert certificate" \
    sh -c "openssl x509 -inform DER -in ca.der -out ca.pem && openssl verify -CAfile ca.pem cert.pem"
check "issued certificate's key matches the client key" \
    sh -c "[ \"\$(openssl x509 -in cert.pem -noout -pubkey)\" = \"\$(openssl pkey -in key.pem -pubout)\" ]"

mkdir -p "$WORK/c2" && cd "$WORK/c2" || exit 1
timeout 60 scepclient -server-url "$URL" -private-key key.pem -certificate cert.pem \
    -challenge wrong -cn micromdm-2 >out.txt 2>&1
if [ ! -s cert.pem ] && grep -q "badRequest" "$SRV_LOG"; then
    ok "a wrong challenge is refused with FAILURE badRequest"
else not_ok "a wrong challenge was not refused"; sed 's/^/#   /' out.txt | tail -5; fi
cell_end "micromdm scepclient" generic "enroll (static challenge)"
stop_server

# one-time passwords
start_server otp --dir "$D" --profile generic --otp
URL=$URL_BASE/scep
OTP=$("$SCEPCA" otp --dir "$D")
case $OTP in [0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F])
    ok "scepca otp prints 16 uppercase hex characters";; *) not_ok "otp format: '$OTP'";; esac
cell_begin
mkdir -p "$WORK/c3" && cd "$WORK/c3" || exit 1
check "micromdm scepclient enrolls with a one-time password" \
    timeout 60 scepclient -server-url "$URL" -private-key key.pem -certificate cert.pem \
    -challenge "$OTP" -cn micromdm-3
mkdir -p "$WORK/c4" && cd "$WORK/c4" || exit 1
timeout 60 scepclient -server-url "$URL" -private-key key.pem -certificate cert.pem \
    -challenge "$OTP" -cn micromdm-4 >out.txt 2>&1
if [ ! -s cert.pem ] && grep -q "already been used" "$SRV_LOG"; then
    ok "the same one-time password is refused the second time"
else not_ok "a reused one-time password was accepted"; fi
cell_end "micromdm scepclient" generic "enroll (one-time password)"
stop_server
finish
