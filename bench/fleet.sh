#!/usr/bin/env bash
# Benchmark (bench/run runs it; results in docs/benchmarks.md): bench/fleet
# for 200 and 2,000 devices, all at once (S=0) and shifted over 60 s. Exits
# non-zero when 200 devices do not all enroll (2,000 at once may fail: that
# is what the table shows).
set -u
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
rc=0
FLEET_HEADER=1 "$here/fleet" --devices 200 --jitter 0 || rc=1
"$here/fleet" --devices 200 --jitter 60 || rc=1
"$here/fleet" --devices 2000 --jitter 0
"$here/fleet" --devices 2000 --jitter 60
exit $rc
