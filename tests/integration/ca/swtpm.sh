# swtpm for the integration scripts (sourced after lib.sh): a TPM 2.0 on a
# UNIX socket under $WORK, stopped by PID at the end (lib.sh's cleanup).
# start_swtpm NAME: sets TPM_TCTI (swtpm:path=...) and TPM_PID.
start_swtpm() {
    local dir=$WORK/$1
    mkdir -p "$dir/state"
    # the swtpm TCTI finds the control socket at PATH.ctrl
    swtpm socket --tpm2 --tpmstate "dir=$dir/state" \
        --server "type=unixio,path=$dir/sock" --ctrl "type=unixio,path=$dir/sock.ctrl" \
        --flags not-need-init,startup-clear --log "file=$WORK/$1-swtpm.log" &
    TPM_PID=$!
    T_PIDS="$T_PIDS $TPM_PID"
    local i=0
    while [ $i -lt 100 ] && ! { [ -S "$dir/sock" ] && [ -S "$dir/sock.ctrl" ]; }; do
        kill -0 "$TPM_PID" 2>/dev/null || break
        sleep 0.1; i=$((i + 1))
    done
    if ! [ -S "$dir/sock" ]; then
        echo "Bail out! swtpm did not start (tools/deps.sh installs swtpm)"; exit 1
    fi
    TPM_TCTI="swtpm:path=$dir/sock"
}

# stop_swtpm: SIGTERM, and it must have been running and exit.
stop_swtpm() {
    kill -0 "$TPM_PID" 2>/dev/null && ok "swtpm was running" || not_ok "swtpm had stopped before"
    kill "$TPM_PID" 2>/dev/null
    wait "$TPM_PID" 2>/dev/null
    T_PIDS=$(echo "$T_PIDS" | sed "s/ $TPM_PID\b//")
}
