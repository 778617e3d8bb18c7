#!/bin/sh
# Installs the Debian 12 packages that the build, the tests and `make run`
# need, only when something is missing. Non-interactive; root or sudo.
set -eu
PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libssl-dev openssl libseccomp-dev
libevent-dev libcurl4-openssl-dev libsqlite3-dev sqlite3 libjansson-dev libinih-dev
libcmocka-dev python3 python3-cryptography iproute2 util-linux curl scep strongswan-pki libstrongswan-extra-plugins
chromium fonts-dejavu-core wrk clang-format tinyproxy certmonger dbus-daemon
swtpm swtpm-tools tpm2-openssl libtss2-tcti-swtpm0"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# the browser tests need node and npm; any installation of them will do
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
# `make deb`, the man pages and the packaging test (tests/packaging)
for p in debhelper dpkg-dev build-essential lintian scdoc debootstrap systemd man-db; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
