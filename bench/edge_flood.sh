#!/bin/sh
# Connection flood and drip figures (bench/edge_flood.py) for $BUILD, and for
# $BEFORE_BUILD too when set (a build of another commit, for comparison).
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
exec python3 "$here/edge_flood.py" ${BEFORE_BUILD:+"$BEFORE_BUILD"} "$BUILD"
