#!/usr/bin/env bash
# Benchmark (bench/run runs it; results in docs/benchmarks.md):
# scepca generic vs micromdm scepserver in one run: same RSA-2048 CA, same
# client (scepctl enroll with pre-generated RSA-2048 keys, static challenge),
# N concurrent clients x M enrollments each on loopback. Prints a Markdown
# table: server CPU time per enrollment (utime+stime of the server process),
# enrollments per second, client-side p50/p99 latency of a whole enrollment
# (GetCACaps + GetCACert + PKIOperation), first with one client (M
# enrollments), then with N concurrent clients (N x M), each server after
# one enrollment that is not counted, and the CPU per
# enrollment as a multiple of the RSA floor. Then where scepca's sequential
# CPU goes: the RSA floor, the HTTP exchange alone (three GETs on one
# connection) and the rest, set against what 0.25x micromdm's CPU would
# leave for it. BENCH_TMP=/dev/shm puts both
# servers' state on tmpfs (no fsync cost).
#   SCEPCA=build/src/cmd/scepca SCEPCTL=build/src/cmd/scepctl N=4 M=50 bench/scepca_vs_scepserver.sh
set -u
# micromdm's scepserver binds every interface: run the whole benchmark in a
# private network namespace that has only loopback.
if [ -z "${BENCH_IN_NETNS:-}" ]; then
    timeout 10 unshare -n true 2>/dev/null || { echo "cannot create a network namespace (need root)" >&2; exit 1; }
    export BENCH_IN_NETNS=1
    exec timeout -k 10 900 unshare -n bash "$(readlink -f "$0")" "$@"
fi
ip link set lo up
SCEPCA=${SCEPCA:-${BUILD:-build}/src/cmd/scepca}; SCEPCTL=${SCEPCTL:-${BUILD:-build}/src/cmd/scepctl}
N=${N:-4}; M=${M:-25}
W=$(mktemp -d ${BENCH_TMP:-/tmp}/bench-ca.XXXXXX)
for i in $(seq 0 $((N*M))); do openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $W/k$i.pem 2>/dev/null; done
# CPU time of every thread of a server in ns (schedstat: exact, where
# utime+stime in /proc/PID/stat counts 10 ms ticks)
cpu() { cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
# The floor: 3 RSA-2048 private-key operations per enrollment (open the
# request's envelope, sign the certificate, sign the CertRep), timed by
# openssl speed in this run.
# The machine's speed drifts on a shared host: the floor is timed just
# before and just after each pass, and the pass is set against their mean.
floor_now() { openssl speed -seconds 1 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {printf "%.3f", $4 * 1000 * 3}'; }
FLOOR_MS=$(floor_now)
run_load() { # URL label
    local url=$1 label=$2
    rm -f $W/lat.* $W/fail.$label
    local pids=""
    local t0=$(date +%s%N)
    for c in $(seq 1 $N); do
        ( for j in $(seq 1 $M); do i=$(( (c-1)*M + j ));
            s=$(date +%s%N)
            "$SCEPCTL" enroll -u "$url" --cn "b$label$i" --challenge secret --key $W/k$i.pem \
                --key-out $W/o$i.key --cert-out $W/o$i.crt --force >/dev/null 2>>$W/err.$label || echo FAIL >>$W/fail.$label
            e=$(date +%s%N); echo $(( (e-s)/1000 )) >> $W/lat.$c
          done ) &
        pids="$pids $!"
    done
    wait $pids
    local t1=$(date +%s%N)
    WALL_MS=$(( (t1-t0)/1000000 ))
    sort -n $W/lat.* > $W/lat.all
}
declare -A PER
report() { # label cpu_ns
    local n=$(wc -l < $W/lat.all)
    local p50=$(awk -v n=$n 'NR==int(n*0.50+0.5){print $1/1000}' $W/lat.all)
    local p99=$(awk -v n=$n 'NR==int(n*0.99+0.5){print $1/1000}' $W/lat.all)
    local fails=$(cat $W/fail.$1 2>/dev/null | wc -l)
    local per=$(echo "$2/1000000/$n" | bc -l)
    PER[$1]=$per
    printf "| %s | %d | %d | %d | %.2f | %.3f | %.1f | %.1f | %s | %s |\n" "$1" "$N" "$n" "$fails" "$per" \
        "$PASS_FLOOR" "$(echo "$per/$PASS_FLOOR" | bc -l)" "$(echo "$n*1000/$WALL_MS" | bc -l)" "$p50" "$p99"
}
run_server() { # URL label pid: one sequential pass (N=1), then N concurrent clients
    local keepn=$N
    # One enrollment first, not counted: what a server does once (loading
    # its libraries' lazy state, its first store access) is not a cost per
    # enrollment. Both servers get the same warm-up.
    "$SCEPCTL" enroll -u "$1" --cn "warm$2" --challenge secret --key $W/k0.pem \
        --key-out $W/o0.key --cert-out $W/o0.crt --force >/dev/null 2>>$W/err.$2 || echo "warm-up enrollment against $2 failed" >&2
    N=1; f0=$(floor_now); c0=$(cpu $3); run_load $1 $2; c1=$(cpu $3); f1=$(floor_now)
    PASS_FLOOR=$(echo "($f0+$f1)/2" | bc -l); report $2 $((c1-c0)); PER[$2.1]=${PER[$2]}
    [ "$2" = scepca ] && PASS_FLOOR_SEQ=$PASS_FLOOR
    N=$keepn; f0=$(floor_now); c0=$(cpu $3); run_load $1 $2; c1=$(cpu $3); f1=$(floor_now)
    PASS_FLOOR=$(echo "($f0+$f1)/2" | bc -l); report $2 $((c1-c0))
}
# scepca
"$SCEPCA" init --dir $W/ca --key-type rsa:2048 >/dev/null
"$SCEPCA" serve --dir $W/ca --listen 127.0.0.1:0 --challenge secret >$W/ca.addr 2>$W/ca.log & P1=$!
sleep 0.5; U1=$(sed -n 's/^listening on //p' $W/ca.addr)/scep
echo "RSA floor (3 RSA-2048 private-key operations, openssl speed) at the start: $FLOOR_MS ms, then timed around each pass; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | concurrent clients | enrollments | failed | server CPU ms/enrollment | floor ms | x floor | enrollments/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run_server $U1 scepca $P1
# Where scepca's sequential CPU goes (printed after the table). The HTTP
# exchange alone: three requests on one keep-alive connection, as scepctl
# makes them, here GetCACaps, GetCACert and GetCACaps (no RSA, no store);
# server CPU per connection.
c0=$(cpu $P1)
for k in $(seq 1 50); do
    curl -s -o /dev/null -o /dev/null -o /dev/null "$U1?operation=GetCACaps" "$U1?operation=GetCACert" "$U1?operation=GetCACaps"
done
HTTP_MS=$(echo "($(cpu $P1)-$c0)/1000000/50" | bc -l)
kill $P1; wait $P1 2>/dev/null
# micromdm
(cd $W && scepserver ca -init -keySize 2048 -depot $W/depot >/dev/null 2>&1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scepserver -depot $W/depot -port $PORT -challenge secret -allowrenew 0 >$W/mm.log 2>&1 & P2=$!
sleep 1; U2=http://127.0.0.1:$PORT/scep
run_server $U2 micromdm $P2; kill $P2; wait $P2 2>/dev/null
echo
printf "scepca/micromdm server CPU per enrollment: %.2f sequential, %.2f with %d concurrent clients\n" \
    "$(echo "${PER[scepca.1]}/${PER[micromdm.1]}" | bc -l)" "$(echo "${PER[scepca]}/${PER[micromdm]}" | bc -l)" "$N"
# The decomposition of scepca's sequential pass, against what 0.25x
# micromdm would allow.
SEQ=${PER[scepca.1]}; GOAL=$(echo "${PER[micromdm.1]}*0.25" | bc -l)
echo
printf "scepca sequential, %.2f ms per enrollment: RSA floor %.2f ms; HTTP exchange (3 requests, one connection) %.2f ms; the rest (CMS, certificate, the durable SQLite commit, handler) %.2f ms\n" \
    "$SEQ" "$PASS_FLOOR_SEQ" "$HTTP_MS" "$(echo "$SEQ-$PASS_FLOOR_SEQ-$HTTP_MS" | bc -l)"
printf "0.25x micromdm's sequential CPU is %.2f ms, which leaves %.2f ms for the rest\n" "$GOAL" \
    "$(echo "$GOAL-$PASS_FLOOR_SEQ-$HTTP_MS" | bc -l)"
printf "0.25x micromdm's CPU with %d clients is %.2f ms, which leaves %.2f ms above the same floor and exchange\n" "$N" \
    "$(echo "${PER[micromdm]}*0.25" | bc -l)" "$(echo "${PER[micromdm]}*0.25-$PASS_FLOOR_SEQ-$HTTP_MS" | bc -l)"
for l in scepca micromdm; do [ -s $W/err.$l ] && { echo "$l client errors:"; sort $W/err.$l | uniq -c | sort -rn | head -5; }; done
rm -rf $W
