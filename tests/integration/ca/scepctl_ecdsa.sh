#!/usr/bin/env bash
# ECDSA keys against every scepca profile. The generic profile (SCEPStandard,
# not IIS) answers an EC signer with CMS key agreement; NDES encrypts only to
# RSA, so scepctl signs with a temporary RSA key while the CSR carries (and is
# signed by) the EC key. An EC signer forced onto NDES is refused.
. "$(dirname "$0")/lib.sh"
need_scepctl

profile_path() { case $1 in generic) echo /scep;; *) echo /certsrv/mscep/mscep.dll;; esac; }

same_pubkey() { # key.pem cert.pem
    [ "$(openssl pkey -in "$1" -pubout)" = "$(openssl x509 -in "$2" -noout -pubkey)" ]
}

run_profile() {
    local prof=$1 extra=()
    local D=$WORK/$prof P=$WORK/$prof-out
    mkdir -p "$P"
    if [ "$prof" = generic ]; then "$SCEPCA" init --dir "$D" >/dev/null
    else "$SCEPCA" init --dir "$D" --ndes >/dev/null; fi
    case $prof in ndes2008r2|ndes2012r2) extra=(--max-query-string 16384);; esac
    start_server "$prof" --dir "$D" --profile "$prof" --challenge pw "${extra[@]}"
    URL=$URL_BASE$(profile_path "$prof")

    for curve in P-256 P-384; do
        expect_exit 0 "$prof: enroll an EC $curve key" \
            "$SCEPCTL" enroll -v -u "$URL" --cn "$prof-$curve" --challenge pw --key-type "ec:$curve" \
            --key-out "$P/$curve.key" --cert-out "$P/$curve.crt"
        cp "$WORK/last.err" "$P/$curve.err"
        check "$prof $curve: the certificate carries the EC key" same_pubkey "$P/$curve.key" "$P/$curve.crt"
        check "$prof $curve: the certified key is on $curve" \
            sh -c "openssl x509 -in '$P/$curve.crt' -noout -text | grep -q 'NIST CURVE: $curve'"
        if [ "$prof" = generic ]; then
            grep -q "^signer: EC $curve, the new key" "$P/$curve.err" &&
                ok "$prof $curve: the EC key signs its own request" ||
                not_ok "$prof $curve: signer line: $(grep '^signer:' "$P/$curve.err")"
        else
            grep -q "^signer: RSA 2048, a separate key" "$P/$curve.err" &&
                ok "$prof $curve: a temporary RSA key signs the request" ||
                not_ok "$prof $curve: signer line: $(grep '^signer:' "$P/$curve.err")"
        fi
    done

    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/ecsigner.key" 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$P/rsasigner.key" 2>/dev/null
    if [ "$prof" = generic ]; then
        expect_exit 0 "$prof: --signer-key selects an RSA signer for an EC key" \
            "$SCEPCTL" enroll -v -u "$URL" --cn "$prof-rsasigned" --challenge pw --key-type ec:P-256 \
            --signer-key "$P/rsasigner.key" --key-out "$P/rs.key" --cert-out "$P/rs.crt"
        grep -q "^signer: RSA 2048, a separate key" "$WORK/last.err" &&
            ok "$prof: the signer is the key given" || not_ok "$prof: signer line: $(grep '^signer:' "$WORK/last.err")"
        check "$prof: the certificate carries the EC key, not the signer's" same_pubkey "$P/rs.key" "$P/rs.crt"
    else
        expect_exit 1 "$prof: a request signed by an EC key is refused" \
            "$SCEPCTL" enroll -u "$URL" --cn "$prof-ecsigned" --challenge pw --key-type ec:P-256 \
            --signer-key "$P/ecsigner.key" --key-out "$P/es.key" --cert-out "$P/es.crt"
        expect_error fail_not_supported "$prof: EC signer (HRESULT 0x80070057)"
        grep -q "only to RSA" "$SRV_LOG" && ok "$prof: the server says why" ||
            not_ok "$prof: no 'only to RSA' in the server log"
        [ ! -e "$P/es.crt" ] && ok "$prof: no certificate written" || not_ok "$prof: a certificate was written"
    fi
    stop_server

    # deferred: the state file keeps the temporary signer, so the poll opens the reply
    start_server "$prof-pending" --dir "$D" --profile "$prof" --challenge pw --pending "${extra[@]}"
    URL=$URL_BASE$(profile_path "$prof")
    expect_exit 3 "$prof: an EC request is deferred" \
        "$SCEPCTL" enroll -u "$URL" --cn "$prof-ecp" --challenge pw --key-type ec:P-384 --poll-count 0 \
        --state "$P/ecp.state" --key-out "$P/ecp.key" --cert-out "$P/ecp.crt"
    ID=$("$SCEPCA" list --dir "$D" --pending | sed -n "s/^request \([0-9]*\) .*CN=$prof-ecp.*/\1/p")
    check "$prof: scepca approve $ID" "$SCEPCA" approve --dir "$D" "$ID"
    expect_exit 0 "$prof: the poll after approval opens the reply" "$SCEPCTL" poll --state "$P/ecp.state"
    check "$prof: the polled certificate carries the EC key" same_pubkey "$P/ecp.key" "$P/ecp.crt"
    [ ! -e "$P/ecp.state" ] && ok "$prof: the state file with the signer key is gone" ||
        not_ok "$prof: the state file remains"
    stop_server
}

for prof in generic ndes2016 ndes2012r2 ndes2008r2; do run_profile "$prof"; done
finish
