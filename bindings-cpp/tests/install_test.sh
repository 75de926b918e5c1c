#!/bin/sh
# Installs the package from build tree $1 into a temporary prefix, builds the
# consumer in tests/install against it with find_package(shmsock_cpp), and runs it.
set -eu
build="$1"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
test -f "$tmp/prefix/include/shmsock.hpp"
# Every per-concept header is installed beside it.
for header in "$here"/../include/shmsock/*.hpp; do
    test -f "$tmp/prefix/include/shmsock/$(basename "$header")"
done
test -f "$tmp/prefix/lib/libshmsock_cxx.a" || test -f "$tmp/prefix/lib64/libshmsock_cxx.a"
cmake -S "$here/install" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release > "$tmp/configure.log"
cmake --build "$tmp/build" > "$tmp/build.log"
mkdir -m 700 "$tmp/run"
SHMSOCK_RUNTIME_DIR="$tmp/run" "$tmp/build/consumer"
echo "ok: installed package consumed with find_package(shmsock_cpp)"
