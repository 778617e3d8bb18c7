#!/bin/bash
# Builds the Debian package from the working tree (tracked and new files,
# not ignored ones) without network: the tree is copied to OUT/src, built
# there with dpkg-buildpackage (dh with meson), and the .deb, .changes and
# .buildinfo land in OUT. Usage: tools/deb.sh [OUT]   (default: build-deb)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src="$out/src/scepd-$version"
rm -rf "$out/src"
mkdir -p "$src"
cd "$root"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done |
        tar --null --no-recursion -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude='./build*' --exclude='./.git' -cf - . | tar -xf - -C "$src"
fi
rm -f "$out"/scepd*_"$version"_*
cd "$src"
dpkg-checkbuilddeps
dpkg-buildpackage -b -us -uc -j"$(nproc)" >"$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "tools/deb.sh: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
    exit 1
}
mv "$out"/src/scepd*_"$version"_* "$out"/
ls "$out"/scepd_"$version"_*.deb
