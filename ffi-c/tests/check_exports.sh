#!/bin/sh
# Checks that a libshmsock.so exports exactly the functions its header
# declares (all named shmsock_*), and carries the expected SONAME.
# usage: check_exports.sh <libshmsock.so> <shmsock.h> <soname>
set -eu
lib="$1" header="$2" soname="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u > "$tmp/exported"
grep -o 'shmsock_[a-z0-9_]*(' "$header" | tr -d '(' | sort -u > "$tmp/declared"
status=0
if grep -v '^shmsock_' "$tmp/exported" > "$tmp/foreign"; then
    echo "exported symbols not named shmsock_*:"; cat "$tmp/foreign"; status=1
fi
if ! diff -u "$tmp/declared" "$tmp/exported"; then
    echo "the exported functions differ from the header's (- declared only, + exported only)"; status=1
fi
if ! readelf -d "$lib" | grep -q "Library soname: \[$soname\]"; then
    echo "SONAME is not $soname"; readelf -d "$lib" | grep SONAME || true; status=1
fi
count="$(wc -l < "$tmp/exported")"
[ "$status" -eq 0 ] && echo "ok: $count exported functions, all shmsock_*, all declared; SONAME $soname"
exit "$status"
