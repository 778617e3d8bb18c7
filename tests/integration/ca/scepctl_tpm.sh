#!/usr/bin/env bash
# Keys inside a TPM 2.0 (swtpm, started here): scepctl enroll --key-storage
# tpm2 against scepca's generic and NDES 2016 profiles, RSA 2048 and ECDSA
# P-256. The key file is the provider's TSS2 blob, the certificate carries
# the TPM's public key, a TPM RSA signer asks for 3DES (NDES would answer
# AES with RSA-OAEP, which the tpm2 provider cannot decrypt), an EC TPM key
# is sent with a temporary RSA signer, GetCRL is signed in the TPM, and a
# stopped TPM is a clear error that writes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/swtpm.sh"
need_scepctl

start_swtpm tpm
export TPM2OPENSSL_TCTI=$TPM_TCTI

profile_path() { case $1 in generic) echo /scep;; *) echo /certsrv/mscep/mscep.dll;; esac; }

# the public key of a key file, through the tpm2 provider for a TSS2 file
pubkey_of_key() { openssl pkey -provider tpm2 -provider default -in "$1" -pubout 2>/dev/null; }
same_pubkey() { [ "$(pubkey_of_key "$1")" = "$(openssl x509 -in "$2" -noout -pubkey)" ] && [ -n "$(pubkey_of_key "$1")" ]; }
tss2_only() { grep -q -- "-----BEGIN TSS2 PRIVATE KEY-----" "$1" && ! grep -q "BEGIN.*[^2] PRIVATE KEY" "$1"; }

for prof in generic ndes2016; do
    D=$WORK/$prof P=$WORK/$prof-out
    mkdir -p "$P"
    if [ "$prof" = generic ]; then "$SCEPCA" init --dir "$D" >/dev/null
    else "$SCEPCA" init --dir "$D" --ndes >/dev/null; fi
    start_server "$prof" --dir "$D" --profile "$prof" --challenge pw
    URL=$URL_BASE$(profile_path "$prof")
    for kt in rsa:2048 ec:P-256; do
        n=${kt%%:*}
        # the TCTI through the option here, through the environment below
        expect_exit 0 "$prof: enroll a $kt key held in the TPM" \
            env -u TPM2OPENSSL_TCTI "$SCEPCTL" enroll -v -u "$URL" --cn "$prof-tpm-$n" --challenge pw \
            --key-type "$kt" --key-storage tpm2 --tpm-tcti "$TPM_TCTI" \
            --key-out "$P/$n.key" --cert-out "$P/$n.crt"
        cp "$WORK/last.err" "$P/$n.err"
        check "$prof $kt: the key file is the TSS2 blob, no private key in the clear" tss2_only "$P/$n.key"
        check "$prof $kt: the key file is 0600" sh -c "[ \$(stat -c %a '$P/$n.key') = 600 ]"
        check "$prof $kt: the certificate carries the TPM's public key" same_pubkey "$P/$n.key" "$P/$n.crt"
        if [ "$n" = rsa ]; then
            grep -q "^signer: RSA 2048 in the TPM, the new key" "$P/$n.err" &&
                ok "$prof $kt: the TPM key signs the request" ||
                not_ok "$prof $kt: signer line: $(grep '^signer:' "$P/$n.err")"
            grep -q "^server: .*, des3, " "$P/$n.err" &&
                ok "$prof $kt: 3DES is asked for (PKCS#1 v1.5 key transport)" ||
                not_ok "$prof $kt: server line: $(grep '^server:' "$P/$n.err")"
        else
            grep -q "^signer: RSA 2048, a separate key" "$P/$n.err" &&
                ok "$prof $kt: a temporary RSA key signs the request" ||
                not_ok "$prof $kt: signer line: $(grep '^signer:' "$P/$n.err")"
        fi
    done
    if [ "$prof" = generic ]; then
        expect_exit 0 "$prof: GetCRL signed by the RSA key in the TPM" \
            "$SCEPCTL" getcrl -u "$URL" --key "$P/rsa.key" --cert "$P/rsa.crt" -o "$P/rsa.crl"
        check "$prof: the CRL is the CA's" \
            sh -c "openssl crl -in '$P/rsa.crl' -inform DER -noout -issuer 2>/dev/null || openssl crl -in '$P/rsa.crl' -noout -issuer"
        # the reply to an EC signer is wrapped with key agreement, which the
        # provider cannot do: refused before it reaches the TPM (documented)
        expect_exit 5 "$prof: GetCRL signed by the EC key in the TPM" \
            "$SCEPCTL" getcrl -u "$URL" --key "$P/ec.key" --cert "$P/ec.crt" -o "$P/ec.crl"
        expect_error tpm_key_transport "$prof: the EC TPM key cannot open the GetCRL reply"
        [ ! -e "$P/ec.crl" ] && ok "$prof: no CRL written" || not_ok "$prof: a CRL was written"
        expect_exit 0 "$prof: renew the RSA TPM key into a new TPM key" \
            "$SCEPCTL" renew -u "$URL" --key "$P/rsa.key" --cert "$P/rsa.crt" --challenge pw \
            --key-storage tpm2 --key-out "$P/rsa2.key" --cert-out "$P/rsa2.crt"
        check "$prof: the renewed key is in the TPM" tss2_only "$P/rsa2.key"
        check "$prof: the renewed certificate carries it" same_pubkey "$P/rsa2.key" "$P/rsa2.crt"
    fi
    stop_server
done

# the TPM stops: a clear error, nothing written, and the earlier key file as it was
KEYSUM=$(sha256sum <"$WORK/generic-out/rsa.key")
start_server generic2 --dir "$WORK/generic" --profile generic --challenge pw
stop_swtpm
expect_exit 2 "enroll with the TPM stopped" \
    "$SCEPCTL" enroll -u "$URL_BASE/scep" --cn gone --challenge pw --key-storage tpm2 \
    --key-out "$WORK/gone.key" --cert-out "$WORK/gone.crt"
expect_error tpm_unavailable "enroll with the TPM stopped"
[ ! -e "$WORK/gone.key" ] && [ ! -e "$WORK/gone.crt" ] && ok "nothing was written" ||
    not_ok "a key or certificate was written"
expect_exit 2 "getcrl with a TPM key and the TPM stopped" \
    "$SCEPCTL" getcrl -u "$URL_BASE/scep" --key "$WORK/generic-out/rsa.key" \
    --cert "$WORK/generic-out/rsa.crt" -o "$WORK/gone.crl"
expect_error tpm_unavailable "getcrl with the TPM stopped"
[ "$(sha256sum <"$WORK/generic-out/rsa.key")" = "$KEYSUM" ] && ok "the key file is unchanged" ||
    not_ok "the key file changed"
stop_server
finish
