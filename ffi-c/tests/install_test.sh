#!/bin/sh
# Installs a configured and built libshmsock build tree into a temporary prefix
# and builds the consumer program against it each documented way, then runs
# each: pkg-config (shmsock.pc: shared; shmsock-static.pc: static) and CMake
# find_package (shmsock::shmsock, shmsock::shmsock_static).
# usage: install_test.sh <build dir> <consumer source dir>
set -eu
build="$1" src="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cc="${CC:-cc}"
cmake="${CMAKE:-cmake}"
step() { echo "== install test: $*"; }
for tool in pkg-config readelf "$cc" "$cmake"; do
    command -v "$tool" > /dev/null || { echo "install test: '$tool' is required"; exit 1; }
done

step "cmake --install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" > "$tmp/install.log"
libdir="$prefix/lib"
for f in include/shmsock.h lib/libshmsock.a lib/pkgconfig/shmsock.pc lib/pkgconfig/shmsock-static.pc \
         lib/cmake/shmsock/shmsockConfig.cmake lib/cmake/shmsock/shmsockConfigVersion.cmake; do
    test -f "$prefix/$f" || { echo "missing $f"; exit 1; }
done
test -L "$libdir/libshmsock.so" || { echo "lib/libshmsock.so is not a link"; exit 1; }
soname="$(readelf -d "$libdir/libshmsock.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
test -L "$libdir/$soname" || { echo "lib/$soname (the SONAME) is not installed as a link"; exit 1; }

mkdir -m 700 "$tmp/run"
export SHMSOCK_RUNTIME_DIR="$tmp/run"
export PKG_CONFIG_PATH="$libdir/pkgconfig"

step "pkg-config shmsock (shared)"
# shellcheck disable=SC2046
"$cc" -std=c99 -Wall -Wextra -Werror -o "$tmp/pc_shared" "$src/consumer.c" \
    $(pkg-config --cflags --libs shmsock) -Wl,-rpath,"$libdir"
readelf -d "$tmp/pc_shared" | grep -q "NEEDED.*\[$soname\]" || { echo "pc_shared does not need $soname"; exit 1; }
"$tmp/pc_shared"

step "pkg-config shmsock-static (static)"
# shellcheck disable=SC2046
"$cc" -std=c99 -Wall -Wextra -Werror -o "$tmp/pc_static" "$src/consumer.c" $(pkg-config --cflags --libs shmsock-static)
if readelf -d "$tmp/pc_static" | grep -q libshmsock; then echo "pc_static needs libshmsock.so"; exit 1; fi
"$tmp/pc_static"

step "pkg-config --static shmsock with -Wl,-Bstatic (static)"
# shellcheck disable=SC2046
"$cc" -std=c99 -o "$tmp/pc_static2" "$src/consumer.c" $(pkg-config --cflags shmsock) \
    -L"$libdir" -Wl,-Bstatic -lshmsock -Wl,-Bdynamic $(pkg-config --libs-only-l --static shmsock | sed 's/-lshmsock//')
if readelf -d "$tmp/pc_static2" | grep -q libshmsock; then echo "pc_static2 needs libshmsock.so"; exit 1; fi
"$tmp/pc_static2"

step "find_package(shmsock): shmsock::shmsock and shmsock::shmsock_static"
"$cmake" -S "$src" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$tmp/cmake.log" \
    || { cat "$tmp/cmake.log"; exit 1; }
"$cmake" --build "$tmp/cmake" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
readelf -d "$tmp/cmake/consumer_shared" | grep -q "NEEDED.*\[$soname\]" || { echo "consumer_shared does not need $soname"; exit 1; }
if readelf -d "$tmp/cmake/consumer_static" | grep -q libshmsock; then echo "consumer_static needs libshmsock.so"; exit 1; fi
"$tmp/cmake/consumer_shared"
"$tmp/cmake/consumer_static"

step "ok"
