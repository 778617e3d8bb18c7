#!/usr/bin/env bash
# scepca's event loop and its request workers. With one client at a time and
# no job in flight, the loop thread answers a PKIOperation itself; with
# another connection open, every PKIOperation goes to a worker. Either way
# each enrollment is issued once, recorded, and chains to the CA.
. "$(dirname "$0")/lib.sh"
[ -n "$SCEPCTL" ] || { echo "1..0 # SKIP SCEPCTL not set"; exit 0; }

"$SCEPCA" init --dir "$WORK/ca" --key-type rsa:2048 >/dev/null || { echo "Bail out! scepca init failed"; exit 1; }
start_server main --dir "$WORK/ca" --challenge pw --verbose
U="$URL_BASE/scep"
for n in s1 s2 s3 s4 c1 c2 c3 c4 c5 c6; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$n.key" 2>/dev/null
done
enroll() { # CN
    "$SCEPCTL" enroll -u "$U" --cn "$1" --challenge pw --key "$WORK/$1.key" \
        --key-out "$WORK/$1.out.key" --cert-out "$WORK/$1.crt" --chain-out "$WORK/$1.chain" --force
}
on_loop() { grep -c 'answered on the event loop' "$SRV_LOG"; }
by_worker() { grep -c 'answered by worker' "$SRV_LOG"; }

# one client at a time: the loop answers each PKIOperation
for n in s1 s2 s3; do check "sequential enrollment $n" enroll $n; done
[ "$(on_loop)" = 3 ] && [ "$(by_worker)" = 0 ] &&
    ok "one client at a time: the three PKIOperations were answered on the event loop" ||
    not_ok "sequential: $(on_loop) on the loop, $(by_worker) by workers (wanted 3 and 0)"

# another connection open (idle, within the edge's request deadline): the
# six concurrent enrollments' PKIOperations all go to workers
exec 3<>"/dev/tcp/127.0.0.1/$SRV_PORT"
pids=""
for n in c1 c2 c3 c4 c5 c6; do
    enroll $n >"$WORK/$n.out" 2>&1 &
    pids="$pids $!"
done
failed=0
for p in $pids; do wait "$p" || failed=$((failed + 1)); done
exec 3>&-
[ "$failed" = 0 ] && ok "six concurrent enrollments succeeded" ||
    { not_ok "$failed of six concurrent enrollments failed"; cat "$WORK"/c*.out | head -20 | sed 's/^/#   /'; }
[ "$(on_loop)" = 3 ] && [ "$(by_worker)" = 6 ] &&
    ok "with another connection open, the six PKIOperations went to workers" ||
    not_ok "concurrent: $(on_loop) on the loop, $(by_worker) by workers (wanted 3 and 6)"

# the idle connection closed: the loop answers again once the pool is quiet
check "sequential enrollment after the burst" enroll s4
[ "$(on_loop)" = 4 ] && [ "$(by_worker)" = 6 ] &&
    ok "back to one client: answered on the event loop" ||
    not_ok "after the burst: $(on_loop) on the loop, $(by_worker) by workers (wanted 4 and 6)"

# every certificate chains to the CA, and each serial was issued once
bad=0
for n in s1 s2 s3 s4 c1 c2 c3 c4 c5 c6; do
    openssl verify -CAfile "$WORK/$n.chain" "$WORK/$n.crt" >/dev/null 2>&1 || bad=$((bad + 1))
    openssl x509 -in "$WORK/$n.crt" -noout -serial 2>/dev/null
done >"$WORK/serials"
[ "$bad" = 0 ] && ok "all ten certificates chain to the CA" || not_ok "$bad certificates do not verify"
[ "$(sort -u "$WORK/serials" | grep -c serial=)" = 10 ] && ok "ten distinct serials" ||
    not_ok "serials: $(sort "$WORK/serials" | uniq -c | tr '\n' ' ')"
stop_server
"$SCEPCA" list --dir "$WORK/ca" >"$WORK/list" 2>&1
for n in s1 s2 s3 s4 c1 c2 c3 c4 c5 c6; do grep -q "CN=$n\b" "$WORK/list" || echo "$n"; done >"$WORK/missing"
[ ! -s "$WORK/missing" ] && ok "the store records all ten" ||
    { not_ok "not in scepca list: $(tr '\n' ' ' <"$WORK/missing")"; head -20 "$WORK/list" | sed 's/^/#   /'; }
finish
