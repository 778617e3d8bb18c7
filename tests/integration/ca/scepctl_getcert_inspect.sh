#!/usr/bin/env bash
# scepctl getcert --serial takes the serial exactly as scepctl and openssl
# print it (hex with or without 0x or colons, decimal with --decimal),
# refuses anything else as a usage error, and writes the certificate asked
# for. scepctl inspect says what a bare certificate and a certs-only
# SignedData are (both GetCACert forms, DER and PEM), and warns and exits 5
# when --signer did not sign the message.
. "$(dirname "$0")/lib.sh"
need_scepctl
V=${SCEP_VECTORS:-${SCEPD_SOURCE_ROOT:-.}/tests/vectors}

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
cert_count() { grep -c -- '-----BEGIN CERTIFICATE-----' "$1"; }

for prof in generic ndes2016; do
    D=$WORK/$prof
    if [ "$prof" = generic ]; then "$SCEPCA" init --dir "$D" >/dev/null; P=/scep
    else "$SCEPCA" init --dir "$D" --ndes >/dev/null; P=/certsrv/mscep/mscep.dll; fi
    start_server "$prof" --dir "$D" --profile "$prof" --challenge pw
    U=$URL_BASE$P
    expect_exit 0 "$prof: enroll a first certificate" "$SCEPCTL" enroll -u "$U" --cn "$prof-a" --challenge pw \
        --key-out "$WORK/$prof-a.key" --cert-out "$WORK/$prof-a.crt"
    expect_exit 0 "$prof: enroll a second certificate" "$SCEPCTL" enroll -u "$U" --cn "$prof-b" --challenge pw \
        --key-out "$WORK/$prof-b.key" --cert-out "$WORK/$prof-b.crt"
    S=$(serial_of "$WORK/$prof-a.crt")
    lower_colons=$(echo "$S" | tr 'A-F' 'a-f' | sed 's/../&:/g; s/:$//')
    decimal=$(python3 -c "print(int('$S', 16))")
    i=0
    for form in "$S" "0x$S" "$lower_colons" "$decimal --decimal"; do
        i=$((i + 1))
        # shellcheck disable=SC2086
        expect_exit 0 "$prof: getcert --serial ${form}" "$SCEPCTL" getcert -u "$U" --key "$WORK/$prof-b.key" \
            --cert "$WORK/$prof-b.crt" -o "$WORK/$prof-got$i.pem" --serial ${form}
        [ "$(cert_count "$WORK/$prof-got$i.pem")" = 1 ] && [ "$(serial_of "$WORK/$prof-got$i.pem")" = "$S" ] &&
            ok "$prof: the file holds exactly the certificate with serial $S" ||
            not_ok "$prof: wrong certificate(s) written for ${form}"
    done
    for bad in "${S}zz" "$S " "0x" "$S:" "${lower_colons}0" "$decimal.0"; do
        expect_exit 2 "$prof: getcert --serial '$bad' is refused" "$SCEPCTL" getcert -u "$U" \
            --key "$WORK/$prof-b.key" --cert "$WORK/$prof-b.crt" -o "$WORK/$prof-bad.pem" --serial "$bad"
        expect_error usage "$prof: '$bad'"
    done
    expect_exit 2 "$prof: --decimal with a hex serial is refused" "$SCEPCTL" getcert -u "$U" \
        --key "$WORK/$prof-b.key" --cert "$WORK/$prof-b.crt" -o "$WORK/$prof-bad.pem" --serial "$S" --decimal
    [ ! -e "$WORK/$prof-bad.pem" ] && ok "$prof: nothing written for a refused serial" ||
        not_ok "$prof: a file was written for a refused serial"

    # inspect: the GetCACert reply as the server sends it, DER and PEM
    curl -s -o "$WORK/$prof-cacert.der" -D "$WORK/$prof-cacert.hdr" "$U?operation=GetCACert&message=x"
    if [ "$prof" = generic ]; then
        grep -qi 'content-type: application/x-x509-ca-cert' "$WORK/$prof-cacert.hdr" &&
            ok "generic: GetCACert is a bare certificate" || not_ok "generic: GetCACert content type"
        expect_exit 0 "generic: inspect the GetCACert reply (DER)" "$SCEPCTL" inspect "$WORK/$prof-cacert.der"
        grep -q "^type: *X.509 certificate of a CA" "$WORK/last.out" && ok "generic: inspect says a CA certificate" ||
            not_ok "generic: inspect did not say a CA certificate"
        openssl x509 -inform DER -in "$WORK/$prof-cacert.der" -out "$WORK/$prof-cacert.pem"
        expect_exit 0 "generic: inspect the CA certificate (PEM)" "$SCEPCTL" inspect "$WORK/$prof-cacert.pem"
        grep -q '^encoding: *PEM "CERTIFICATE"' "$WORK/last.out" && grep -q "^type: *X.509 certificate" "$WORK/last.out" &&
            ok "generic: PEM certificate recognised" || not_ok "generic: PEM certificate not recognised"
    else
        grep -qi 'content-type: application/x-x509-ca-ra-cert' "$WORK/$prof-cacert.hdr" &&
            ok "$prof: GetCACert is a certs-only SignedData" || not_ok "$prof: GetCACert content type"
        expect_exit 0 "$prof: inspect the GetCACert reply (DER)" "$SCEPCTL" inspect "$WORK/$prof-cacert.der"
        n=$(openssl pkcs7 -inform DER -in "$WORK/$prof-cacert.der" -print_certs | grep -c '^subject')
        grep -q "^type: *certs-only SignedData.*: $n certificate(s)" "$WORK/last.out" &&
            ok "$prof: inspect says certs-only with $n certificates" || not_ok "$prof: certs-only not recognised"
        openssl pkcs7 -inform DER -in "$WORK/$prof-cacert.der" -out "$WORK/$prof-cacert.p7.pem"
        expect_exit 0 "$prof: inspect the certs-only SignedData (PEM)" "$SCEPCTL" inspect "$WORK/$prof-cacert.p7.pem"
        grep -q '^encoding: *PEM "PKCS7"' "$WORK/last.out" && grep -q "^type: *certs-only SignedData" "$WORK/last.out" &&
            ok "$prof: PEM certs-only recognised" || not_ok "$prof: PEM certs-only not recognised"
    fi
    stop_server
done

# inspect --signer against the captured replies in tests/vectors
expect_exit 0 "inspect the NDES CertRep with its RA certificate" "$SCEPCTL" inspect \
    "$V/smallstep-scep/testca2/CertRep_NoCertificatesForSigners.der" --signer "$V/smallstep-scep/testca2/ca2.pem"
grep -q "^signature: *verifies" "$WORK/last.out" && ok "the NDES CertRep verifies" || not_ok "no 'verifies'"
expect_exit 5 "inspect the NDES CertRep with another --signer" "$SCEPCTL" inspect \
    "$V/smallstep-scep/testca2/CertRep_NoCertificatesForSigners.der" --signer "$V/smallstep-scep/testca/ca.pem"
grep -q "^warning: .*did not sign" "$WORK/last.err" && ok "a warning says --signer did not sign it" ||
    not_ok "no warning for the wrong --signer"
expect_error response_signer "wrong --signer"
expect_exit 5 "inspect the micromdm CertRep (signer in the message) with another --signer" "$SCEPCTL" inspect \
    "$V/smallstep-scep/CertRep.der" --signer "$V/smallstep-scep/testca2/ca2.pem"
grep -q "it was signed by OU=CA,O=etcd-ca,C=USA" "$WORK/last.err" && ok "the warning names the real signer" ||
    not_ok "the warning does not name the signer"
finish
