#!/usr/bin/env bash
# The command lines of scepctl, scepca and scepd as a first-time user meets
# them: --version, --help that describes every option with its default, one
# line with the nearest match for a typo, no file overwritten without
# --force, a deferred enroll that saves its state next to the key, clear
# words for a bad key type and for a file that is not SCEP, scepd taking only
# exact long options and naming the file and line of an impossible setting,
# and scepca's errors in the catalogue's form.
. "$(dirname "$0")/lib.sh"
need_scepctl
SCEPD=${SCEPD:-}

# --- --version on the three programs ---
for prog in "$SCEPCTL" "$SCEPCA" ${SCEPD:+"$SCEPD"}; do
    name=$(basename "$prog")
    expect_exit 0 "$name --version" "$prog" --version
    grep -Eq "^$name [0-9]+\.[0-9]+" "$WORK/last.out" && ok "$name --version prints its name and version" ||
        not_ok "$name --version printed '$(cat "$WORK/last.out")'"
done

# --- every command's --help describes each option of its usage, with a default ---
for cmd in getcaps getca enroll renew poll getcert getcrl getnextca inspect errors; do
    "$SCEPCTL" "$cmd" --help >"$WORK/help.out" 2>&1
    missing=""
    for opt in $(sed -n '/^options:/q;p' "$WORK/help.out" | grep -o -- '--[a-z-]*' | sort -u); do
        grep -Eq "^  (-[a-z], )?$opt( |$)" "$WORK/help.out" || missing="$missing $opt"
    done
    [ -z "$missing" ] && ok "$cmd --help describes each option of its usage" ||
        not_ok "$cmd --help lacks$missing"
    nodefault=$(sed -n '/^options:/,$p' "$WORK/help.out" | grep '^  -' |
        grep -v -e 'Default' -e 'Required' -e 'required' -e '^  --version' -e '^  -h, --help' || true)
    [ -z "$nodefault" ] && ok "$cmd --help gives each option's default or says it is required" ||
        not_ok "$cmd --help: no default in: $nodefault"
done
"$SCEPCTL" enroll --help | grep -q -- '--key-type T .*Default: rsa:2048' && ok "enroll --help: rsa:2048 by default" ||
    not_ok "enroll --help does not give the default key type"
"$SCEPCTL" getcaps --help | grep -q -- '--timeout S .*Default: 60' && ok "getcaps --help lists the transport options" ||
    not_ok "getcaps --help lacks the transport options"
# libcurl is loaded only for HTTPS, proxies and traces (docs/architecture.md):
# not at start, and not for a plain http:// request (nothing listens on port 1)
LD_DEBUG=files "$SCEPCTL" --help 2>"$WORK/ld.err" >/dev/null
grep -q 'file=libcurl' "$WORK/ld.err" && not_ok "scepctl --help loaded libcurl" ||
    ok "scepctl starts without loading libcurl"
LD_DEBUG=files "$SCEPCTL" getcaps -u http://127.0.0.1:1/scep 2>"$WORK/ld.err" >/dev/null
grep -q 'error\[net_connect\]' "$WORK/ld.err" && ! grep -q 'file=libcurl' "$WORK/ld.err" &&
    ok "a plain http:// request goes without libcurl (and fails with net_connect)" ||
    not_ok "plain http:// request: $(grep -v '^ *[0-9]*:' "$WORK/ld.err" | head -3)"
LD_DEBUG=files "$SCEPCTL" getcaps -u https://127.0.0.1:1/scep 2>"$WORK/ld.err" >/dev/null
grep -q 'file=libcurl' "$WORK/ld.err" && grep -q 'error\[net_connect\]' "$WORK/ld.err" &&
    ok "an https:// request loads libcurl on demand (and fails with net_connect)" ||
    not_ok "https:// request: $(grep -v '^ *[0-9]*:' "$WORK/ld.err" | head -3)"

# --- typos: one line, the nearest match, exit 2 ---
one_line() { [ "$(wc -l <"$WORK/last.err")" = 1 ] && [ ! -s "$WORK/last.out" ]; }
expect_exit 2 "unknown command getcap" "$SCEPCTL" getcap -u http://127.0.0.1:1/scep
grep -q 'did you mean getcaps?' "$WORK/last.err" && one_line && ok "getcap: one line, did you mean getcaps?" ||
    not_ok "getcap: $(cat "$WORK/last.err")"
expect_exit 2 "unknown command enrol" "$SCEPCTL" enrol
grep -q 'did you mean enroll?' "$WORK/last.err" && one_line && ok "enrol: did you mean enroll?" ||
    not_ok "enrol: $(cat "$WORK/last.err")"
expect_exit 2 "unknown command frobnicate" "$SCEPCTL" frobnicate
one_line && ! grep -q 'did you mean' "$WORK/last.err" && grep -q 'unknown command "frobnicate"' "$WORK/last.err" &&
    ok "frobnicate: one line, no guess" || not_ok "frobnicate: $(cat "$WORK/last.err")"
expect_exit 2 "unknown option --chalenge" "$SCEPCTL" enroll -u http://127.0.0.1:1/scep --chalenge pw
grep -q 'unknown option "--chalenge"; did you mean --challenge?' "$WORK/last.err" && one_line &&
    ok "--chalenge: one line, did you mean --challenge?" || not_ok "--chalenge: $(cat "$WORK/last.err")"
expect_exit 2 "unknown option --key-out=F spelt --keyout=F" "$SCEPCTL" enroll --keyout=x.pem
grep -q 'unknown option "--keyout"; did you mean --key-out?' "$WORK/last.err" && one_line &&
    ok "--keyout=x.pem: did you mean --key-out?" || not_ok "--keyout: $(cat "$WORK/last.err")"
expect_exit 2 "unknown option with no near match" "$SCEPCTL" getca --zzzzzzzz
one_line && grep -q 'scepctl getca --help' "$WORK/last.err" && ok "--zzzzzzzz: points to --help" ||
    not_ok "--zzzzzzzz: $(cat "$WORK/last.err")"
expect_exit 2 "scepca: unknown command" "$SCEPCA" serv --dir "$WORK/none"
grep -q 'did you mean serve?' "$WORK/last.err" && one_line && ok "scepca serv: did you mean serve?" ||
    not_ok "scepca serv: $(cat "$WORK/last.err")"
expect_exit 2 "scepca: unknown option" "$SCEPCA" serve --dir "$WORK/none" --chalenge pw
grep -q 'did you mean --challenge?' "$WORK/last.err" && one_line && ok "scepca --chalenge: did you mean --challenge?" ||
    not_ok "scepca --chalenge: $(cat "$WORK/last.err")"

# --- bad key types are usage errors naming the accepted forms, before any key is made ---
for bad in rsa2048 rsa:2047 ec:P-999 ed25519; do
    expect_exit 2 "--key-type $bad" "$SCEPCTL" enroll -u http://127.0.0.1:1/scep --cn x --key-type "$bad" \
        --key-out "$WORK/kt.key" --cert-out "$WORK/kt.crt"
    expect_error usage "--key-type $bad"
    grep -q 'rsa:1024, rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384' "$WORK/last.err" &&
        ok "--key-type $bad: the accepted forms are named" || not_ok "--key-type $bad: $(cat "$WORK/last.err")"
done
grep -q 'did you mean' "$WORK/last.err" && not_ok "ed25519 got a guess" || ok "ed25519: no guess"
"$SCEPCTL" enroll -u http://127.0.0.1:1/scep --cn x --key-type rsa2048 --key-out "$WORK/kt.key" \
    --cert-out "$WORK/kt.crt" 2>&1 | grep -q 'did you mean rsa:2048?' && ok "rsa2048: did you mean rsa:2048?" ||
    not_ok "rsa2048: no suggestion"
expect_exit 2 "renew --new-key-type ec256" "$SCEPCTL" renew -u http://127.0.0.1:1/scep --key k --cert c \
    --new-key-type ec256 --key-out "$WORK/kt.key" --cert-out "$WORK/kt.crt"
expect_error usage "--new-key-type ec256"
[ ! -e "$WORK/kt.key" ] && ok "no key written for a bad key type" || not_ok "a key was written"

# --- inspect on a file that is not SCEP says so ---
printf 'hello, this is not SCEP\n' >"$WORK/text.txt"
head -c 300 /dev/urandom >"$WORK/random.bin"
for f in text.txt random.bin; do
    expect_exit 2 "inspect $f" "$SCEPCTL" inspect "$WORK/$f"
    expect_error input_not_scep "inspect $f"
    grep -q "$WORK/$f" "$WORK/last.err" && ! grep -qi 'url' "$WORK/last.err" &&
        ok "inspect $f names the file and no URL" || not_ok "inspect $f: $(cat "$WORK/last.err")"
done

# --- no overwriting without --force, checked before anything is sent ---
D=$WORK/ca
"$SCEPCA" init --dir "$D" >/dev/null
start_server ca --dir "$D" --profile generic --challenge pw
U=$URL_BASE/scep
echo "keep me" >"$WORK/exists.key"
expect_exit 2 "enroll onto an existing --key-out" "$SCEPCTL" enroll -u "$U" --cn f1 --challenge pw \
    --key-out "$WORK/exists.key" --cert-out "$WORK/f1.crt"
expect_error output_exists "existing key"
grep -q "$WORK/exists.key" "$WORK/last.err" && grep -q -- '--force' "$WORK/last.err" &&
    ok "the error names the file and --force" || not_ok "output_exists: $(cat "$WORK/last.err")"
[ "$(cat "$WORK/exists.key")" = "keep me" ] && ok "the existing key is untouched" || not_ok "the key was replaced"
[ "$("$SCEPCA" list --dir "$D" | grep -c 'CN=f1')" = 0 ] && ok "nothing was sent to the CA" ||
    not_ok "a request reached the CA"
expect_exit 2 "refused even when the server is unreachable (no traffic first)" "$SCEPCTL" enroll \
    -u http://127.0.0.1:1/scep --cn f1 --key-out "$WORK/exists.key" --cert-out "$WORK/f1.crt"
expect_error output_exists "unreachable server"
echo "old cert" >"$WORK/exists.crt"
expect_exit 2 "enroll onto an existing --cert-out" "$SCEPCTL" enroll -u "$U" --cn f1 --challenge pw \
    --key-out "$WORK/f1.key" --cert-out "$WORK/exists.crt"
expect_error output_exists "existing certificate"
[ ! -e "$WORK/f1.key" ] && ok "no key written when the certificate file exists" || not_ok "a key was written"
expect_exit 0 "enroll --force replaces both" "$SCEPCTL" enroll -u "$U" --cn f1 --challenge pw --force \
    --key-out "$WORK/exists.key" --cert-out "$WORK/exists.crt"
openssl x509 -in "$WORK/exists.crt" -noout -subject | grep -q 'CN = f1' && ok "--force wrote the certificate" ||
    not_ok "--force: no certificate"
"$SCEPCTL" getca -u "$U" -o "$WORK/ca.pem" >/dev/null 2>&1
cp "$WORK/ca.pem" "$WORK/ca.first"
expect_exit 2 "getca onto an existing -o" "$SCEPCTL" getca -u "$U" -o "$WORK/ca.pem"
expect_error output_exists "getca -o"
expect_exit 0 "getca --force" "$SCEPCTL" getca -u "$U" -o "$WORK/ca.pem" --force
expect_exit 2 "renew onto existing files" "$SCEPCTL" renew -u "$U" --key "$WORK/exists.key" \
    --cert "$WORK/exists.crt" --key-out "$WORK/exists.key" --cert-out "$WORK/exists.crt"
expect_error output_exists "renew"
stop_server

# --- a deferred enroll without --state saves it next to the key ---
start_server pend --dir "$D" --profile generic --challenge pw --pending
U=$URL_BASE/scep
mkdir -p "$WORK/dev"
expect_exit 3 "deferred enroll without --state" "$SCEPCTL" enroll -u "$U" --cn p1 --challenge pw \
    --key-out "$WORK/dev/p1.key" --cert-out "$WORK/dev/p1.crt"
expect_error pending "deferred enroll"
[ -s "$WORK/dev/p1.state" ] && ok "state saved to p1.state next to the key" || not_ok "no $WORK/dev/p1.state"
grep -q "state saved to $WORK/dev/p1.state" "$WORK/last.err" && grep -q "poll --state $WORK/dev/p1.state" "$WORK/last.err" &&
    ok "the place is printed with the command to resume" || not_ok "where: $(cat "$WORK/last.err")"
[ "$(stat -c %a "$WORK/dev/p1.state")" = 600 ] && ok "the state file is private (0600)" ||
    not_ok "state mode $(stat -c %a "$WORK/dev/p1.state")"
expect_exit 2 "a second enroll does not replace the saved state" "$SCEPCTL" enroll -u "$U" --cn p1 \
    --challenge pw --key-out "$WORK/dev/p1.key" --cert-out "$WORK/dev/p1.crt"
expect_error output_exists "saved state"
grep -q "$WORK/dev/p1.state" "$WORK/last.err" && ok "the error names the state file" || not_ok "$(cat "$WORK/last.err")"
ID=$("$SCEPCA" list --dir "$D" --pending | sed -n 's/^request \([0-9]*\) .*CN=p1.*/\1/p')
check "approve request $ID" "$SCEPCA" approve --dir "$D" "$ID"
expect_exit 0 "poll the default state file" "$SCEPCTL" poll --state "$WORK/dev/p1.state"
openssl x509 -in "$WORK/dev/p1.crt" -noout -subject | grep -q 'CN = p1' && ok "the certificate arrived" ||
    not_ok "no certificate after poll"
[ ! -e "$WORK/dev/p1.state" ] && ok "the state file is removed once done" || not_ok "state file left behind"
expect_exit 3 "deferred enroll with a key name without extension" "$SCEPCTL" enroll -u "$U" --cn p2 \
    --challenge pw --key-out "$WORK/dev/p2" --cert-out "$WORK/dev/p2.crt"
[ -s "$WORK/dev/p2.state" ] && ok "p2 -> p2.state" || not_ok "no p2.state"
stop_server

# --- scepca: errors in the catalogue's form, with its exit classes ---
expect_exit 2 "scepca list on a missing directory" "$SCEPCA" list --dir "$WORK/no-such-ca"
grep -Eq '^error\[[a-z_]+\]: .+' "$WORK/last.err" && grep -q '^remedy: ' "$WORK/last.err" &&
    ok "scepca: error[code]: message, then remedy" || not_ok "scepca list: $(cat "$WORK/last.err")"
expect_exit 2 "scepca serve --validity abc" "$SCEPCA" serve --dir "$D" --validity abc
expect_error usage "scepca --validity abc"
grep -q 'remedy: ' "$WORK/last.err" && ok "scepca usage error has a remedy" || not_ok "$(cat "$WORK/last.err")"
expect_exit 1 "scepca approve of an unknown request" "$SCEPCA" approve --dir "$D" 99999
expect_error ca_no_such_object "scepca approve 99999"
expect_exit 2 "scepca init --key-type rsa2048" "$SCEPCA" init --dir "$WORK/ca2" --key-type rsa2048
expect_error usage "scepca --key-type rsa2048"
grep -q 'did you mean rsa:2048?' "$WORK/last.err" && ok "scepca rsa2048: did you mean rsa:2048?" ||
    not_ok "$(cat "$WORK/last.err")"

# --- scepd: exact long options only; -n names the file and line of impossible settings ---
if [ -z "$SCEPD" ] || [ ! -x "$SCEPD" ]; then
    skip "scepd is not built"
else
    expect_exit 2 "scepd --deb (an abbreviation of --debug)" "$SCEPD" --deb -n
    grep -q 'unknown option "--deb"; did you mean --debug?' "$WORK/last.err" && one_line &&
        ok "scepd --deb: one line, did you mean --debug?" || not_ok "scepd --deb: $(cat "$WORK/last.err")"
    expect_exit 2 "scepd --list 127.0.0.1:1 (an abbreviation)" "$SCEPD" --list 127.0.0.1:1 -n
    expect_exit 2 "scepd --state=DIR spelt --sta=DIR" "$SCEPD" --sta="$WORK" -n
    expect_exit 0 "scepd exact options pass -n" "$SCEPD" --state "$WORK/sd" --listen 127.0.0.1:8080 --debug -n
    conf() { printf '%s\n' "$@" >"$WORK/scepd.conf"; }
    bad_conf() { # bad_conf LINE "description" "expected text" lines...
        local line=$1 desc=$2 want=$3; shift 3
        conf "$@"
        expect_exit 2 "scepd -n: $desc" "$SCEPD" --config "$WORK/scepd.conf" -n
        expect_error config "$desc"
        grep -q "$WORK/scepd.conf line $line:" "$WORK/last.err" && grep -q -- "$want" "$WORK/last.err" &&
            ok "$desc: file, line $line and '$want' named" || not_ok "$desc: $(cat "$WORK/last.err")"
    }
    bad_conf 3 "port out of range" "65536" "[scepd]" "state_dir = $WORK/sd" "listen = 127.0.0.1:65536"
    bad_conf 2 "a negative port" "0 to 65535" "[scepd]" "listen = 127.0.0.1:-1"
    # port 0 is valid: the kernel picks a free port and scepd prints the one it bound
    conf "[scepd]" "state_dir = $WORK/sd" "listen = 127.0.0.1:0"
    expect_exit 0 "scepd -n: port 0 (a free port) is accepted" "$SCEPD" --config "$WORK/scepd.conf" -n
    bad_conf 2 "listen without a port" "HOST:PORT" "[scepd]" "listen = 127.0.0.1"
    bad_conf 3 "listen_tls without a port" "HOST:PORT" "[scepd]" "listen = 127.0.0.1:8080" "listen_tls = [::1]"
    bad_conf 2 "a port that is not a number" "port" "[scepd]" "listen = 127.0.0.1:http"
    bad_conf 2 "scep_url that is not http(s)" "http://" "[scepd]" "scep_url = ftp://ca.example/scep"
    bad_conf 2 "scep_url without a scheme" "http://" "[scepd]" "scep_url = ca.example/scep"
    bad_conf 4 "unknown section" "[sceppd]" "[scepd]" "listen = 127.0.0.1:8080" "[sceppd]" "listen = 127.0.0.1:1"
    bad_conf 2 "unknown key with a near match" "did you mean listen_tls" "[scepd]" "listen_tsl = 127.0.0.1:8443"
    bad_conf 2 "unknown log_level" "log_level" "[scepd]" "log_level = verbose"
    conf "[scepd]" "state_dir = $WORK/sd" "listen = [::1]:8080" "listen_tls = 127.0.0.1:8443" \
        "scep_url = https://ca.example/scep" "log_level = debug" "" "[function tls]" "export_key = $WORK/k"
    expect_exit 0 "scepd -n accepts a sound file" "$SCEPD" --config "$WORK/scepd.conf" -n
    grep -q 'listen \[::1\]:8080, listen_tls 127.0.0.1:8443, 1 function' "$WORK/last.out" &&
        ok "the summary shows the file's settings" || not_ok "summary: $(cat "$WORK/last.out")"
    expect_exit 0 "scepd --config=FILE -n" "$SCEPD" --config="$WORK/scepd.conf" -n
    grep -q 'listen \[::1\]:8080' "$WORK/last.out" && ok "--config=FILE is read too" ||
        not_ok "--config=FILE: $(cat "$WORK/last.out")"
    expect_exit 2 "scepd -n: --listen without a port" "$SCEPD" --state "$WORK/sd" --listen 127.0.0.1 -n
    expect_error usage "--listen without a port"
    grep -q -- '--listen' "$WORK/last.err" && ok "the option is named" || not_ok "$(cat "$WORK/last.err")"
    expect_exit 2 "scepd -n: --scep-url ldap://" "$SCEPD" --state "$WORK/sd" --scep-url ldap://x -n
    expect_error usage "--scep-url ldap://"
fi

finish
