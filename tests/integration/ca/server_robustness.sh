#!/usr/bin/env bash
# Malformed and hostile requests get a proper answer (HTTP 400/404/405, or a
# FAILURE CertRep) and a log line, never a crash; the admin page; file modes.
. "$(dirname "$0")/lib.sh"
V=${SCEP_VECTORS:-${SCEPD_SOURCE_ROOT:-.}/tests/vectors}

D=$WORK/ca
"$SCEPCA" init --dir "$D" --ndes --admin-password 'adm1n pw' >/dev/null ||
    { echo "Bail out! init failed"; exit 1; }
mode=$(stat -c %a "$D/scepca.db"); [ "$mode" = 600 ] && ok "scepca.db is 0600" || not_ok "scepca.db is $mode"
mode=$(stat -c %a "$D"); [ "$mode" = 700 ] && ok "the state directory is 0700" || not_ok "directory is $mode"
expect_exit 2 "init refuses a directory that already holds a CA" "$SCEPCA" init --dir "$D"

start_server robust --dir "$D" --profile generic --otp
U=$URL_BASE/scep
status() { curl -s -o "$WORK/body" -w '%{http_code}' "$@"; }

[ "$(status --data-binary 'not der at all' "$U?operation=PKIOperation")" = 400 ] &&
    ok "POST of text: 400" || not_ok "POST of text"
[ "$(status -X POST "$U?operation=PKIOperation")" = 400 ] && ok "POST without a body: 400" ||
    not_ok "empty POST"
[ "$(status "$U?operation=PKIOperation&message=%%%%")" = 400 ] && ok "GET with bad base64: 400" ||
    not_ok "bad base64"
[ "$(status "$U?operation=PKIOperation")" = 400 ] && ok "GET PKIOperation without message: 400" ||
    not_ok "no message"
[ "$(status "$U?operation=Bogus")" = 400 ] && ok "unknown operation: 400" || not_ok "unknown operation"
[ "$(status "$URL_BASE/nothing/here?operation=GetCACaps")" = 404 ] && ok "unknown path: 404" ||
    not_ok "unknown path"
[ "$(status -X PUT "$U?operation=GetCACaps")" = 405 ] && ok "PUT: 405" || not_ok "PUT"
[ "$(status "$U?operation=GetCACert")" = 200 ] && grep -q . "$WORK/body" &&
    ok "GetCACert still answers" || not_ok "GetCACert"
for p in /cgi-bin/pkiclient.exe /certsrv/mscep/mscep.dll; do
    [ "$(status "$URL_BASE$p?operation=GetCACaps")" = 200 ] && ok "$p serves SCEP" || not_ok "$p"
done
ct=$(curl -s -o /dev/null -w '%{content_type}' "$U?operation=GetCACert")
[ "$ct" = application/x-x509-ca-ra-cert ] && ok "with RA certificates GetCACert is a ca-ra-cert" ||
    not_ok "GetCACert content type $ct"
n=$(curl -s "$U?operation=GetCACert" | openssl pkcs7 -inform DER -print_certs 2>/dev/null | grep -c '^subject')
[ "$n" = 3 ] && ok "GetCACert holds CA + 2 RA certificates" || not_ok "GetCACert holds $n certificates"

if [ -f "$V/smallstep-scep/PKCSReq.der" ]; then
    # a real Apple PKCSReq, encrypted to someone else's CA: a signed FAILURE
    [ "$(status --data-binary @"$V/smallstep-scep/PKCSReq.der" "$U?operation=PKIOperation")" = 200 ] &&
        ok "a request for another CA gets a CertRep" || not_ok "foreign PKCSReq"
    openssl cms -verify -noverify -inform DER -in "$WORK/body" -content /dev/null -out /dev/null 2>/dev/null &&
        ok "the CertRep's signature verifies" || not_ok "CertRep signature"
    openssl cms -cmsout -print -inform DER -in "$WORK/body" >"$WORK/certrep.txt" 2>&1
    grep -A3 '2.16.840.1.113733.1.9.4' "$WORK/certrep.txt" | grep -q 'PRINTABLESTRING:1' &&
        ok "it is FAILURE badMessageCheck (failInfo 1)" || not_ok "failInfo not badMessageCheck"
    head -c 700 "$V/smallstep-scep/PKCSReq.der" >"$WORK/trunc.der"
    [ "$(status --data-binary @"$WORK/trunc.der" "$U?operation=PKIOperation")" = 400 ] &&
        ok "a truncated pkiMessage: 400" || not_ok "truncated pkiMessage"
    b64=$(base64 -w 64 "$V/smallstep-scep/PKCSReq.der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g' | sed ':a;N;$!ba;s/\n/%0A/g')
    [ "$(status "$U?operation=PKIOperation&message=$b64")" = 200 ] &&
        ok "GET with %0A line breaks in the base64 is decoded" || not_ok "GET with %0A"
else
    not_ok "vector $V/smallstep-scep/PKCSReq.der missing: restore tests/vectors from git"
fi
grep -q "not a pkiMessage" "$SRV_LOG" && ok "malformed requests are logged" || not_ok "no log line"
kill -0 "$SRV_PID" && ok "the server survived all of it" || not_ok "the server died"

# the NDES admin page
A=$URL_BASE/certsrv/mscep_admin/
[ "$(status "$A")" = 401 ] && ok "mscep_admin without credentials: 401" || not_ok "admin no auth"
[ "$(status -u 'admin:wrong' "$A")" = 401 ] && ok "mscep_admin with a wrong password: 401" ||
    not_ok "admin wrong pw"
[ "$(status "$URL_BASE/certsrv/mscep_admin")" = 301 ] && ok "mscep_admin without the slash: 301" ||
    not_ok "admin redirect"
[ "$(status -u 'admin:adm1n pw' "$A")" = 200 ] && ok "mscep_admin with the init credentials: 200" ||
    not_ok "admin auth"
PW=$(sed -n 's/.*The enrollment challenge password is: <B> \([0-9A-F]*\) <\/B>.*/\1/p' "$WORK/body")
[ ${#PW} = 16 ] && ok "the page shows a 16-hex-digit password" || not_ok "page password '$PW'"
grep -q "can be used only once and will expire within 60 minutes" "$WORK/body" &&
    ok "the page is worded like NDES's" || not_ok "page wording"
if [ -n "$SCEPCTL" ] && [ -x "$SCEPCTL" ]; then
    expect_exit 0 "the page's password enrolls" "$SCEPCTL" enroll -u "$U" --cn admin-page \
        --challenge "$PW" --key-out "$WORK/a.key" --cert-out "$WORK/a.crt"
fi
for i in 1 2 3 4 5 6; do status -u 'admin:adm1n pw' "$A" >/dev/null; done
grep -q "The password cache is full." "$WORK/body" && ok "after 5 unused passwords: cache full" ||
    not_ok "no cache-full page"
expect_exit 1 "scepca otp with a full cache exits 1" "$SCEPCA" otp --dir "$D"
stop_server

# the NDES profiles serve the page in UTF-16LE, as IIS does
start_server ndes --dir "$D" --profile ndes2016 --challenge fixedpw
curl -s -u 'admin:adm1n pw' "$URL_BASE/certsrv/mscep_admin/" -o "$WORK/page16"
iconv -f UTF-16 -t UTF-8 "$WORK/page16" 2>/dev/null | grep -q "will not expire" &&
    ok "ndes2016: UTF-16LE page for the single password" || not_ok "UTF-16 page"
stop_server
finish
