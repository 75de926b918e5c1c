#!/usr/bin/env bash
# Builds the C interop agent, build/interop/c/shmsock-agent: the *.c here compiled
# against ffi-c/include/shmsock.h and linked with the static libshmsock.a that
# `cargo build --release -p shmsock-ffi` makes (so no run-time library path is
# needed). cargo is a no-op when nothing changed, and the agent is recompiled only
# when it, the header, the library or this script is newer than the program.
# See tests/interop/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
cd "$repo"

cargo build --release -p shmsock-ffi
target="${CARGO_TARGET_DIR:-$repo/target}"
lib="$target/release/libshmsock.a"
out="$repo/build/interop/c"
program="$out/shmsock-agent"

stale=0
for input in "$here"/*.c "$here/agent.h" "$here/build.sh" "$repo/ffi-c/include/shmsock.h" "$lib"; do
    [ "$program" -nt "$input" ] || stale=1
done
if [ "$stale" = 0 ]; then
    echo "c agent: $program is up to date"
    exit 0
fi

mkdir -p "$out"
# The system libraries are what the static library needs (SHMSOCK_STATIC_DEPS
# in ffi-c/CMakeLists.txt, from rustc --print native-static-libs).
"${CC:-cc}" -std=c11 -O2 -g -Wall -Wextra -I"$repo/ffi-c/include" \
    "$here"/*.c "$lib" -lgcc_s -lutil -lrt -lpthread -lm -ldl -o "$program.tmp"
mv -f "$program.tmp" "$program"
echo "c agent: built $program"
