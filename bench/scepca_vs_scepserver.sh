#!/usr/bin/env bash
# Benchmark (bench/run runs it; results in docs/benchmarks.md):
# scepca generic vs micromdm scepserver in one run: same RSA-2048 CA, same
# client (scepctl enroll with pre-generated RSA-2048 keys, static challenge),
# N concurrent clients x M enrollments each on loopback. Prints a Markdown
# table: server CPU time per enrollment (utime+stime of the server process),
# enrollments per second, client-side p50/p99 latency of a whole enrollment
# (GetCACaps + GetCACert + PKIOperation). BENCH_TMP=/dev/shm puts both
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
for i in $(seq 1 $((N*M))); do openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $W/k$i.pem 2>/dev/null; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
run_load() { # URL label
    local url=$1 label=$2
    rm -f $W/lat.*
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
report() { # label cpu_ticks
    local n=$(wc -l < $W/lat.all) hz=$(getconf CLK_TCK)
    local p50=$(awk -v n=$n 'NR==int(n*0.50+0.5){print $1/1000}' $W/lat.all)
    local p99=$(awk -v n=$n 'NR==int(n*0.99+0.5){print $1/1000}' $W/lat.all)
    local fails=$(cat $W/fail.$1 2>/dev/null | wc -l)
    printf "| %s | %d | %d | %.2f | %.1f | %s | %s |\n" "$1" "$n" "$fails" \
        "$(echo "$2*1000/$hz/$n" | bc -l)" "$(echo "$n*1000/$WALL_MS" | bc -l)" "$p50" "$p99"
}
# scepca
"$SCEPCA" init --dir $W/ca --key-type rsa:2048 >/dev/null
"$SCEPCA" serve --dir $W/ca --listen 127.0.0.1:0 --challenge secret >$W/ca.addr 2>$W/ca.log & P1=$!
sleep 0.5; U1=$(sed -n 's/^listening on //p' $W/ca.addr)/scep
c0=$(cpu $P1); run_load $U1 scepca; c1=$(cpu $P1); kill $P1; wait $P1 2>/dev/null
echo "| server | enrollments | failed | server CPU ms/enrollment | enrollments/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|"
report scepca $((c1-c0))
# micromdm
(cd $W && scepserver ca -init -keySize 2048 -depot $W/depot >/dev/null 2>&1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scepserver -depot $W/depot -port $PORT -challenge secret -allowrenew 0 >$W/mm.log 2>&1 & P2=$!
sleep 1; U2=http://127.0.0.1:$PORT/scep
c0=$(cpu $P2); run_load $U2 micromdm; c1=$(cpu $P2); kill $P2; wait $P2 2>/dev/null
report micromdm $((c1-c0))
for l in scepca micromdm; do [ -s $W/err.$l ] && { echo "$l client errors:"; sort $W/err.$l | uniq -c | sort -rn | head -5; }; done
rm -rf $W
