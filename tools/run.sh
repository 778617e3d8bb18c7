#!/bin/sh
# make run: a local scepca as the default SCEP server and scepd configured to
# use it, both on loopback, state under run/. Ctrl-C stops both.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
run=$top/run
ca_port=${SCEPCA_PORT:-8090}
http=${SCEPD_LISTEN:-127.0.0.1:8080}
https=${SCEPD_LISTEN_TLS:-127.0.0.1:8443}
umask 077
mkdir -p "$run"
if [ ! -f "$run/admin-password" ]; then
    head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$run/admin-password"
fi
if [ ! -s "$run/challenge" ]; then
    head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F > "$run/challenge"
fi
if [ ! -d "$run/ca" ]; then
    "$build/scepca" init --dir "$run/ca" --subject "CN=scepca demo CA,O=scepd" >/dev/null
fi
"$build/scepca" serve --dir "$run/ca" --listen "127.0.0.1:$ca_port" --challenge-file "$run/challenge" \
    >"$run/scepca.log" 2>&1 &
ca_pid=$!
trap 'kill $ca_pid 2>/dev/null; wait $ca_pid 2>/dev/null || true' EXIT INT TERM
i=0
until curl -s -o /dev/null "http://127.0.0.1:$ca_port/scep?operation=GetCACaps"; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 $ca_pid 2>/dev/null; then
        echo "scepca did not start; see $run/scepca.log" >&2
        exit 1
    fi
    sleep 0.1
done
cat <<INFO

  scepca (SCEP server):  http://127.0.0.1:$ca_port/scep   log: run/scepca.log
  challenge password:    $(cat "$run/challenge")
  Remote UI:             http://$http/ui/   and   https://$https/ui/
  user / password:       admin / $(cat "$run/admin-password")

INFO
# the key-encryption key that seals scepd's private keys: next to the state
# directory, never inside it (scepd creates it, 0600, at the first start)
"$build/scepd" --state "$run/scepd" --listen "$http" --listen-tls "$https" \
    --admin-password-file "$run/admin-password" --scep-url "http://127.0.0.1:$ca_port/scep" \
    --kek-file "$run/scepd.kek"
