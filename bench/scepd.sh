#!/bin/bash
# shellcheck disable=SC2317  # cleanup runs from trap
# Benchmark: scepd, the device agent.
#
#   bench/scepd.sh                  (RUNS=15 by default, at least 10; WRK_SECONDS=10)
#   RUNS=30 BUILD=build bench/scepd.sh
#
# One scepca (generic profile, RSA-2048 CA, static challenge, no faults) and
# one scepd on 127.0.0.1 inside a private network namespace; a Python driver
# (written below) measures:
#  1. memory of scepd: VmRSS, RssAnon and Pss (smaps_rollup) idle after start
#     and login; the peaks while each wrk run lasts (sampled every 10 ms, Pss
#     every 100 ms, plus VmHWM); idle again after the load.
#  2. GET /api/v1/status under `wrk -t2 -c16 -d${WRK_SECONDS}s --latency`
#     (a small Lua script adds the credentials and prints the figures):
#       a. session cookie (POST /api/v1/session once), no other activity;
#       b. session cookie while manual issuance requests run one after the
#          other (POST /api/v1/scep/requests rsa:2048 -> acquired -> DELETE),
#          driven by a separate process, bounded by count and time;
#       c. HTTP Basic (scrypt on every request, by design) while requests run.
#     Requests/s, latency p50/p90/p99/max, errors and non-2xx answers.
#  3. time to a certificate, strictly interleaved, RUNS each after 2 warm-ups:
#       scepd: POST /api/v1/scep/requests (rsa:2048; scepd always generates
#              the key) until the store says acquired (read-only SQLite
#              polling every 1 ms, so the observer adds no API load);
#       scepctl enroll --key PREGENERATED.pem (fork + exec + wait);
#       scepctl enroll --key-type rsa:2048 (generates the key).
#     Median and p90 (nearest rank) wall time.
# Every request and enrollment must succeed; failures are counted and make
# the script exit 1.
set -u

self=$(readlink -f "$0")
root=$(cd "$(dirname "$self")/.." && pwd)
BUILD=${BUILD:-$root/build}
SCEPD=${SCEPD:-$BUILD/src/cmd/scepd}
SCEPCA=${SCEPCA:-$BUILD/src/cmd/scepca}
SCEPCTL=${SCEPCTL:-$BUILD/src/cmd/scepctl}
RUNS=${RUNS:-15}
WRK_SECONDS=${WRK_SECONDS:-10}
export SCEPD SCEPCA SCEPCTL RUNS WRK_SECONDS BUILD

die() { echo "error: $*" >&2; exit 1; }

if [ -z "${SCEPD_IN_NETNS:-}" ]; then
    case $RUNS in '' | *[!0-9]*) die "RUNS must be a number" ;; esac
    [ "$RUNS" -ge 10 ] || die "RUNS must be at least 10"
    case $WRK_SECONDS in '' | *[!0-9]*) die "WRK_SECONDS must be a number" ;; esac
    if [ "$WRK_SECONDS" -lt 1 ] || [ "$WRK_SECONDS" -gt 120 ]; then die "WRK_SECONDS must be 1 to 120"; fi
    if ! command -v wrk >/dev/null 2>&1; then
        # tools/deps.sh should list wrk; until then install it here (Debian package)
        echo "wrk is missing: installing the Debian package" >&2
        [ "$(id -u)" -eq 0 ] || die "wrk is missing and we are not root (apt-get install wrk)"
        export DEBIAN_FRONTEND=noninteractive
        timeout 300 apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 ||
            { timeout 300 apt-get update -qq >/dev/null 2>&1 &&
                timeout 300 apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; } ||
            die "could not install wrk"
    fi
    for tool in wrk python3 openssl curl; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (make deps)"
    done
    for b in "$SCEPD" "$SCEPCA" "$SCEPCTL"; do
        [ -x "$b" ] || die "$b is not built (make build)"
        if ldd "$b" 2>/dev/null | grep -q -E 'libasan|libubsan|libtsan'; then
            die "$b is a sanitizer build; use the release-ish one from make build"
        fi
    done
    export SCEPD_IN_NETNS=1
    # private loopback: fixed ports, nobody else's traffic, nothing reachable from outside
    timeout 10 unshare -n true 2>/dev/null || die "cannot create a network namespace (need root)"
    exec timeout -k 10 1500 unshare -n bash "$self" "$@"
fi

ip link set lo up || die "cannot bring up lo"
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_scepd.XXXXXX") || die mktemp
CA_PID=""
D_PID=""
stop_pid() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    stop_pid "$D_PID"
    stop_pid "$CA_PID"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

CA_PORT=8080
API_PORT=8081
SCEP_URL=http://127.0.0.1:$CA_PORT/scep
API=http://127.0.0.1:$API_PORT
ADMIN_PW=bench-admin-password

timeout 120 "$SCEPCA" init --dir "$T/ca" --key-type rsa:2048 --admin-password ca-admin-pw >"$T/ca-init.log" 2>&1 ||
    die "scepca init failed: $(tail -3 "$T/ca-init.log")"
"$SCEPCA" serve --dir "$T/ca" --listen "127.0.0.1:$CA_PORT" --challenge secret >"$T/scepca.log" 2>&1 &
CA_PID=$!
SCEPD_ADMIN_PASSWORD=$ADMIN_PW "$SCEPD" --state "$T/state" --listen "127.0.0.1:$API_PORT" \
    --scep-url "$SCEP_URL" --kek-file "$T/scepd.kek" >"$T/scepd.log" 2>&1 &
D_PID=$!
up=0
for _ in $(seq 1 100); do
    if curl -s --max-time 1 -o /dev/null "$SCEP_URL?operation=GetCACaps" &&
        curl -s --max-time 1 -o /dev/null "$API/api/v1/status"; then
        up=1
        break
    fi
    if ! kill -0 "$CA_PID" 2>/dev/null || ! kill -0 "$D_PID" 2>/dev/null; then break; fi
    sleep 0.1
done
[ "$up" = 1 ] || die "scepca or scepd did not start: $(tail -3 "$T/scepca.log") $(tail -3 "$T/scepd.log")"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/pregenerated.pem" 2>/dev/null ||
    die "openssl genpkey"

cat >"$T/status.lua" <<'EOF'
-- credentials from the environment; one RESULT line for the driver
local name, value = os.getenv("BENCH_HEADER_NAME"), os.getenv("BENCH_HEADER_VALUE")
if name and name ~= "" then
    wrk.headers[name] = value
end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %d %.0f %.0f %.0f %.0f %d %d %d %d %d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

cat >"$T/driver.py" <<'EOF'
"""Measures scepd (see bench/scepd.sh). Prints Markdown; exit 1 on failures."""
import base64, http.client, json, os, re, sqlite3, statistics, subprocess, sys, threading, time

PID, T, API_PORT, SCEP_URL, PW = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
DB = os.path.join(T, "state", "scepd.db")
RUNS, WRK_S = int(os.environ["RUNS"]), int(os.environ["WRK_SECONDS"])
SCEPCTL = os.environ["SCEPCTL"]


def api(method, path, body=None, cookie=None, csrf=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=timeout)
    headers = {}
    data = json.dumps(body).encode() if body is not None else None
    if data:
        headers["Content-Type"] = "application/json"
    if cookie:
        headers["Cookie"] = "scepd_session=" + cookie
        if method != "GET":
            headers["X-CSRF-Token"] = csrf
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        return r.status, (json.loads(payload) if payload else None), r.getheader("Set-Cookie")
    finally:
        conn.close()


def login():
    st, doc, cookie = api("POST", "/api/v1/session", {"user": "admin", "password": PW})
    m = re.match(r"scepd_session=([^;]+)", cookie or "")
    if st != 200 or not m:
        sys.exit("login failed: %s %s" % (st, doc))
    return m.group(1), doc["csrf_token"]


def one_request(name, cookie, csrf):
    """POST a manual request and watch the store (read-only, every 1 ms) until
    acquired. Returns ({total, keygen, rest} in s, None) or (None, error)."""
    body = {"key_name": name, "common_name": "bench-" + name, "challenge_password": "secret",
            "key_algorithm": "rsa", "key_length": 2048}
    conn = sqlite3.connect("file:%s?mode=ro" % DB, uri=True, timeout=10)
    try:
        t0 = time.monotonic()
        st, doc, _ = api("POST", "/api/v1/scep/requests", body, cookie, csrf)
        if st != 202:
            return None, "POST: HTTP %s %s" % (st, doc)
        rid = doc["id"]
        deadline = t0 + 60
        state, t_key = None, None
        while time.monotonic() < deadline:
            row = conn.execute("SELECT state FROM requests WHERE id = ?", (rid,)).fetchone()
            state = row[0] if row else None
            if t_key is None and state not in (None, "queued", "generating_key"):
                t_key = time.monotonic()  # the key exists: the SCEP exchange starts
            if state in ("acquired", "failed"):
                break
            time.sleep(0.001)
        t1 = time.monotonic()
    finally:
        conn.close()
    # keep the store small: the pair is not needed (its request becomes failed)
    api("DELETE", "/api/v1/keys/" + name, None, cookie, csrf)
    if state != "acquired":
        return None, "request %d ended %s" % (rid, state)
    return {"total": t1 - t0, "keygen": t_key - t0, "rest": t1 - t_key}, None


def background(stop_file, out_file, cookie, csrf, limit, seconds):
    """Requests one after the other until stop_file exists (bounded)."""
    times, errors = [], []
    end = time.monotonic() + seconds
    n = 0
    while n < limit and time.monotonic() < end and not os.path.exists(stop_file):
        n += 1
        dt, err = one_request("b%dx%d" % (os.getpid(), n), cookie, csrf)
        if err:
            errors.append(err)
        else:
            times.append(dt["total"])
    with open(out_file, "w") as f:
        json.dump({"times": times, "errors": errors}, f)


def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if parts and parts[0].isdigit():
                    out[k] = int(parts[0])
    except OSError:
        pass
    return out


def pids():
    """scepd's supervisor and its processes (vault, agent, network)."""
    out = [PID]
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % stat) as f:
                text = f.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == PID:
            out.append(int(stat))
    return out


def summed(path, keys):
    """keys of /proc/PID/<path>, summed over scepd's processes."""
    total = {}
    for pid in pids():
        kv = read_kv("/proc/%d/%s" % (pid, path))
        for k in keys:
            total[k] = total.get(k, 0) + kv.get(k, 0)
    return total


def memory():
    s = summed("status", ("VmRSS", "RssAnon", "VmHWM", "Threads"))
    r = summed("smaps_rollup", ("Pss", "Pss_Anon"))
    return {"rss": s.get("VmRSS"), "anon": s.get("RssAnon"), "hwm": s.get("VmHWM"), "pss": r.get("Pss"),
            "pss_anon": r.get("Pss_Anon"), "threads": s.get("Threads")}


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak = {"rss": 0, "anon": 0, "pss": 0}
        self.samples = 0

    def run(self):
        i = 0
        while not self.stop.is_set():
            s = summed("status", ("VmRSS", "RssAnon"))
            self.peak["rss"] = max(self.peak["rss"], s.get("VmRSS", 0))
            self.peak["anon"] = max(self.peak["anon"], s.get("RssAnon", 0))
            if i % 10 == 0:
                self.peak["pss"] = max(self.peak["pss"], summed("smaps_rollup", ("Pss",)).get("Pss", 0))
            i += 1
            self.samples += 1
            self.stop.wait(0.01)


def wrk(header_name, header_value, with_requests, cookie, csrf, label):
    sampler = Sampler()
    sampler.start()
    bg = None
    stop_file, out_file = os.path.join(T, "bg.stop"), os.path.join(T, "bg.json")
    for p in (stop_file, out_file):
        if os.path.exists(p):
            os.unlink(p)
    if with_requests:
        bg = subprocess.Popen([sys.executable, __file__, "bg", str(PID), T, str(API_PORT), SCEP_URL, PW,
                               stop_file, out_file, cookie, csrf, "500", str(WRK_S + 60)])
        time.sleep(0.3)
    env = dict(os.environ, BENCH_HEADER_NAME=header_name, BENCH_HEADER_VALUE=header_value)
    cmd = ["wrk", "-t2", "-c16", "-d%ds" % WRK_S, "--latency", "--timeout", "10s", "-s",
           os.path.join(T, "status.lua"), "http://127.0.0.1:%d/api/v1/status" % API_PORT]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WRK_S + 60)
    bg_result = None
    if bg:
        open(stop_file, "w").close()
        try:
            bg.wait(timeout=90)
        except subprocess.TimeoutExpired:
            bg.kill()
            bg.wait()
        try:
            with open(out_file) as f:
                bg_result = json.load(f)
        except (OSError, ValueError):
            bg_result = {"times": [], "errors": ["background driver wrote no result"]}
    sampler.stop.set()
    sampler.join()
    with open(os.path.join(T, "wrk-%s.txt" % label), "w") as f:
        f.write(r.stdout + r.stderr)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        return None, sampler, bg_result, "wrk failed: %s" % (r.stdout + r.stderr)[-300:]
    v = [int(x) for x in m.group(1).split()]
    res = dict(requests=v[0], seconds=v[1] / 1e6, p50=v[2] / 1000, p90=v[3] / 1000, p99=v[4] / 1000,
               max=v[5] / 1000, errors=v[6] + v[7] + v[8] + v[10], non2xx=v[9])
    res["rps"] = res["requests"] / res["seconds"] if res["seconds"] else 0
    return res, sampler, bg_result, None


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def p90(xs):
    if not xs:
        return float("nan")
    s = sorted(xs)
    r = -(-9 * len(s) // 10)  # nearest rank: ceil(0.9 n)
    return s[r - 1]


def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    return time.monotonic() - t0, r.returncode


def main():
    failures = []
    cookie, csrf = login()
    time.sleep(2)
    idle = memory()

    basic = "Basic " + base64.b64encode(("admin:" + PW).encode()).decode()
    # one client, one request at a time, idle daemon: the cost of each kind of credentials
    single = {}
    for label, hn, hv in (("cookie", "Cookie", "scepd_session=" + cookie), ("Basic", "Authorization", basic)):
        xs = []
        for _ in range(12):
            conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=30)
            t0 = time.monotonic()
            conn.request("GET", "/api/v1/status", headers={hn: hv})
            r = conn.getresponse()
            r.read()
            xs.append(time.monotonic() - t0)
            conn.close()
            if r.status != 200:
                failures.append("single GET /api/v1/status with %s: HTTP %d" % (label, r.status))
        single[label] = xs[2:]
    runs = [("cookie, no requests", "Cookie", "scepd_session=" + cookie, False),
            ("cookie, requests running", "Cookie", "scepd_session=" + cookie, True),
            ("Basic (scrypt), requests running", "Authorization", basic, True)]
    results = []
    for i, (label, hn, hv, withreq) in enumerate(runs):
        res, sampler, bg, err = wrk(hn, hv, withreq, cookie, csrf, "run%d" % i)
        if err:
            failures.append("%s: %s" % (label, err))
        if res and (res["errors"] or res["non2xx"]):
            failures.append("%s: %d socket errors, %d non-2xx answers" % (label, res["errors"], res["non2xx"]))
        if bg and bg["errors"]:
            failures.append("%s: background requests: %s" % (label, "; ".join(bg["errors"][:3])))
        results.append((label, res, sampler, bg, memory()))
    time.sleep(2)
    after = memory()

    # ---- time to a certificate, interleaved
    t_scepd, t_key, t_rest, t_pre, t_gen = [], [], [], [], []
    out = os.path.join(T, "out")
    os.makedirs(out, exist_ok=True)
    pre = ["--key", os.path.join(T, "pregenerated.pem")]
    gen = ["--key-type", "rsa:2048"]
    for i in range(RUNS + 2):
        dt, err = one_request("t%d" % i, cookie, csrf)
        if err:
            failures.append("scepd run %d: %s" % (i, err))
        elif i >= 2:
            t_scepd.append(dt["total"])
            t_key.append(dt["keygen"])
            t_rest.append(dt["rest"])
        for key_args, bucket, tag in ((pre, t_pre, "pregenerated"), (gen, t_gen, "generated")):
            crt = os.path.join(out, "c.crt")
            for f in ("c.crt", "c.key"):
                if os.path.exists(os.path.join(out, f)):
                    os.unlink(os.path.join(out, f))
            dt, rc = timed([SCEPCTL, "enroll", "-u", SCEP_URL, "--cn", "bench-ctl", "--challenge", "secret"]
                           + key_args + ["--key-out", os.path.join(out, "c.key"), "--cert-out", crt])
            ok = rc == 0 and os.path.exists(crt) and b"BEGIN CERTIFICATE" in open(crt, "rb").read()
            if not ok:
                failures.append("scepctl enroll (%s) run %d: exit %d" % (tag, i, rc))
            elif i >= 2:
                bucket.append(dt)

    # ---- report
    cpu = ""
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except (OSError, AttributeError):
        pass
    print("scepd benchmark: %d CPUs, %s, kernel %s" % (os.cpu_count(), cpu, os.uname().release))
    print()
    print("### Memory of scepd (KiB)")
    print()
    print("(the supervisor and its three processes, summed)")
    print()
    print("| when | VmRSS | RssAnon | Pss | threads |")
    print("|---|---:|---:|---:|---:|")
    print("| idle after start and one login | %s | %s | %s | %s |" % (idle["rss"], idle["anon"], idle["pss"], idle["threads"]))
    for label, res, sampler, bg, mem in results:
        print("| peak during wrk: %s | %d | %d | %d | |" % (label, sampler.peak["rss"], sampler.peak["anon"],
                                                          sampler.peak["pss"]))
    print("| idle 2 s after the load | %s | %s | %s | %s |" % (after["rss"], after["anon"], after["pss"], after["threads"]))
    print("| VmHWM (peak RSS since start) at the end | %s | | | |" % after["hwm"])
    print()
    print("samples per wrk run: %s" % ", ".join(str(r[2].samples) for r in results))
    print()
    print("### GET /api/v1/status under wrk -t2 -c16 -d%ds (loopback)" % WRK_S)
    print()
    print("one request at a time on the idle daemon (10 runs, new connection each): cookie median %.2f ms,"
          " Basic median %.1f ms" % (med(single["cookie"]) * 1000, med(single["Basic"]) * 1000))
    print()
    print("| credentials, activity | requests/s | p50 ms | p90 ms | p99 ms | max ms | requests | certificates issued meanwhile |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, res, sampler, bg, mem in results:
        issued = str(len(bg["times"])) if bg else "-"
        if res:
            print("| %s | %.1f | %.2f | %.2f | %.2f | %.1f | %d | %s |" % (label, res["rps"], res["p50"], res["p90"],
                                                                        res["p99"], res["max"], res["requests"], issued))
        else:
            print("| %s | failed | | | | | | %s |" % (label, issued))
    for label, res, sampler, bg, mem in results:
        if bg and bg["times"]:
            print()
            print("%s: %d requests POST -> acquired, median %.0f ms, p90 %.0f ms" % (
                label, len(bg["times"]), med(bg["times"]) * 1000, p90(bg["times"]) * 1000))
    print()
    print("### Time to a certificate, RSA-2048, %d runs each (+2 warm-up), interleaved" % RUNS)
    print()
    print("| client | median ms | p90 ms | runs ok |")
    print("|---|---:|---:|---:|")
    for label, xs in (("scepd: POST /api/v1/scep/requests -> acquired (generates the key)", t_scepd),
                      ("... of which POST -> key generated (state leaves generating_key)", t_key),
                      ("... of which key generated -> acquired (SCEP exchange, store writes)", t_rest),
                      ("scepctl enroll --key pregenerated.pem", t_pre),
                      ("scepctl enroll --key-type rsa:2048 (generates the key)", t_gen)):
        print("| %s | %.1f | %.1f | %d |" % (label, med(xs) * 1000, p90(xs) * 1000, len(xs)))
    print()
    if failures:
        print("FAILURES (%d):" % len(failures))
        for f in failures[:20]:
            print("  " + f)
        return 1
    print("all runs succeeded")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "bg":
        background(sys.argv[7], sys.argv[8], sys.argv[9], sys.argv[10], int(sys.argv[11]), float(sys.argv[12]))
        sys.exit(0)
    sys.exit(main())
EOF

echo "scepd: $SCEPD (commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?))"
python3 "$T/driver.py" main "$D_PID" "$T" "$API_PORT" "$SCEP_URL" "$ADMIN_PW"
rc=$?
kill -0 "$D_PID" 2>/dev/null || { echo "scepd died: $(tail -5 "$T/scepd.log")"; rc=1; }
exit $rc
