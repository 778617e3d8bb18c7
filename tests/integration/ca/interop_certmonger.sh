#!/usr/bin/env bash
# certmonger (Debian `certmonger`) enrolls from scepca in the generic and
# ndes2016 profiles: at once, and pending then approval. certmonger runs as
# a session daemon under dbus-run-session, its state directories in the
# test's folder, and exits when the script it runs (-c) ends.
#
# Known peer bug, asserted here so that a fixed certmonger shows up: certmonger
# verifies a CertRep with PKCS7_verify, which needs content, so an RFC 8894
# PENDING reply without eContent (the generic profile) fails with "no content"
# and the request shows CA_UNREACHABLE until the next attempt. NDES, and the
# ndes2016 profile, send a one-byte eContent, which certmonger accepts.
# After approval `getcert refresh` makes certmonger send its PKCSReq again,
# which scepca answers as a resend with the approved certificate.
. "$(dirname "$0")/lib.sh"
for tool in certmonger getcert dbus-run-session; do
    have_peer "$tool" ||
        { echo "Bail out! $tool is not installed: run tools/deps.sh (make test installs it)"; exit 1; }
done

# certmonger_run NAME SCRIPT-BODY: runs the body (sh) inside a certmonger
# session with private state directories; its output lands in $WORK/NAME.out
certmonger_run() {
    local name=$1 body=$2 d=$WORK/cm-$1
    mkdir -p "$d/requests" "$d/cas" "$d/config" "$d/local" "$d/tmp"
    {
        echo '#!/bin/sh'
        echo 'status() { getcert list -s -i "$1" | sed -n "s/^[[:space:]]*status: //p"; }'
        echo '# wait_status ID SECONDS STATE...: polls getcert once a second, bounded'
        echo 'wait_status() { id=$1 n=$2; shift 2; i=0; while [ $i -lt $n ]; do s=$(status $id);'
        echo '  for w in "$@"; do [ "$s" = "$w" ] && return 0; done; sleep 1; i=$((i + 1)); done; return 1; }'
        printf '%s\n' "$body"
    } >"$d/script.sh"
    chmod +x "$d/script.sh"
    CERTMONGER_REQUESTS_DIR=$d/requests CERTMONGER_CAS_DIR=$d/cas CERTMONGER_CONFIG_DIR=$d/config \
        CERTMONGER_LOCAL_CA_DIR=$d/local CERTMONGER_TMPDIR=$d/tmp \
        timeout 180 dbus-run-session -- certmonger -s -n -c "$d/script.sh" >"$WORK/$name.out" 2>&1
}

subject_is() { openssl x509 -in "$1" -noout -subject 2>/dev/null | grep -q "CN = $2\$"; }

for prof in generic ndes2016; do
    D=$WORK/$prof
    "$SCEPCA" init --dir "$D" --ndes >/dev/null || { echo "Bail out! init failed"; exit 1; }
    P=/scep extra=()
    [ "$prof" = ndes2016 ] && P=/certsrv/mscep/mscep.dll extra=(--max-query-string 16384)
    curl_ca() { curl -s "$URL?operation=GetCACert&message=0" -o "$WORK/$prof-ca.p7"; }

    # --- at once ---
    cell_begin
    start_server "$prof" --dir "$D" --profile "$prof" --challenge pw "${extra[@]}"
    URL=$URL_BASE$P
    certmonger_run "$prof-now" "
getcert add-scep-ca -s -c scepca -u '$URL'
getcert request -s -c scepca -I now -k '$WORK/$prof-now.key' -f '$WORK/$prof-now.crt' -N CN=cm-$prof-now -L pw
wait_status now 60 MONITORING CA_UNREACHABLE CA_REJECTED
getcert list -s -i now"
    grep -q "status: MONITORING" "$WORK/$prof-now.out" && ok "$prof: certmonger reaches MONITORING" ||
        { not_ok "$prof: certmonger did not reach MONITORING"; grep -E "status|ca-error" "$WORK/$prof-now.out" | sed 's/^/#   /'; }
    subject_is "$WORK/$prof-now.crt" "cm-$prof-now" && ok "$prof: certmonger saved the certificate for CN=cm-$prof-now" ||
        not_ok "$prof: no certificate for CN=cm-$prof-now"
    curl_ca
    openssl pkcs7 -inform DER -in "$WORK/$prof-ca.p7" -print_certs -out "$WORK/$prof-chain.pem" 2>/dev/null
    check "$prof: the certificate verifies against the GetCACert chain" \
        openssl verify -partial_chain -CAfile "$WORK/$prof-chain.pem" "$WORK/$prof-now.crt"
    grep -q "PKCSReq transaction .* -> SUCCESS" "$SRV_LOG" && ok "$prof: scepca answered the PKCSReq with SUCCESS" ||
        not_ok "$prof: no PKCSReq SUCCESS in the server log"
    stop_server
    cell_end certmonger "$prof" enroll

    # --- pending, then approval ---
    cell_begin
    start_server "$prof-pending" --dir "$D" --profile "$prof" --challenge pw --pending "${extra[@]}"
    URL=$URL_BASE$P
    certmonger_run "$prof-pending" "
getcert add-scep-ca -s -c scepca -u '$URL'
getcert request -s -c scepca -I pend -k '$WORK/$prof-pend.key' -f '$WORK/$prof-pend.crt' -N CN=cm-$prof-pend -L pw
wait_status pend 60 CA_WORKING CA_UNREACHABLE MONITORING CA_REJECTED
echo \"first status: \$(status pend)\"
id=\$('$SCEPCA' list --dir '$D' --pending | sed -n 's/^request \\([0-9]*\\) .*CN=cm-$prof-pend.*/\\1/p' | head -1)
echo \"approving request '\$id'\"
'$SCEPCA' approve --dir '$D' \"\$id\"
getcert refresh -s -i pend
wait_status pend 60 MONITORING CA_UNREACHABLE CA_REJECTED
getcert list -s -i pend"
    if [ "$prof" = generic ]; then
        # the peer bug: PENDING without eContent reads as CA_UNREACHABLE
        grep -q "first status: CA_UNREACHABLE" "$WORK/$prof-pending.out" &&
            grep -q "failed to verify signature.*no content" "$WORK/$prof-pending.out" &&
            ok "generic: certmonger takes a PENDING reply without content for an error (known peer bug)" ||
            { not_ok "generic: certmonger's handling of PENDING changed: update docs/interop.md";
              grep -E "status|ca-error|no content" "$WORK/$prof-pending.out" | sed 's/^/#   /'; }
    else
        grep -q "first status: CA_WORKING" "$WORK/$prof-pending.out" && ok "$prof: certmonger waits (CA_WORKING) on PENDING" ||
            { not_ok "$prof: certmonger did not wait on PENDING"; grep -E "status|ca-error" "$WORK/$prof-pending.out" | sed 's/^/#   /'; }
    fi
    grep -q "status: MONITORING" "$WORK/$prof-pending.out" && ok "$prof: after approval certmonger reaches MONITORING" ||
        { not_ok "$prof: no MONITORING after approval"; grep -E "status|ca-error" "$WORK/$prof-pending.out" | sed 's/^/#   /'; }
    subject_is "$WORK/$prof-pend.crt" "cm-$prof-pend" && ok "$prof: the approved certificate was saved" ||
        not_ok "$prof: no approved certificate saved"
    "$SCEPCA" list --dir "$D" | grep -q "^request [0-9]* *issued *CN=cm-$prof-pend " &&
        ok "$prof: scepca issued the approved request" || not_ok "$prof: the request was not issued"
    grep -q "PKCSReq transaction .* -> PENDING" "$SRV_LOG" && grep -q "PKCSReq transaction .* -> SUCCESS" "$SRV_LOG" &&
        ok "$prof: certmonger's poll (the same PKCSReq again) got PENDING, then SUCCESS" ||
        not_ok "$prof: no PENDING then SUCCESS in the server log"
    stop_server
    if [ "$prof" = generic ]; then
        cell_end certmonger "$prof" "pending, then approval" "works, with a peer bug" \
            "certmonger verifies a CertRep with PKCS7_verify, which needs content: an RFC 8894 PENDING without eContent shows as CA_UNREACHABLE until the next attempt (no upstream issue found; certmonger's tracker is not indexed)"
    else
        cell_end certmonger "$prof" "pending, then approval"
    fi
done
finish
