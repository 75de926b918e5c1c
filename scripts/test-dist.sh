#!/usr/bin/env bash
# Tests the release artifacts as a user gets them (`make test` runs it):
#
#   1. one version everywhere: the Cargo workspace, package.json of both npm
#      packages, pyproject.toml (takes Cargo's), CHANGELOG.md's latest release,
#      and later what each installed artifact reports;
#   2. scripts/dist.sh builds the artifacts into build/test-dist/dist (reusing
#      the workspace's release build that the other suites made);
#   3. with cargo and rustc hidden from PATH (no CARGO_HOME, RUSTUP_HOME
#      either), installs each artifact in a scratch folder: the wheel into a
#      fresh venv, both npm tarballs into a fresh project (the prebuilt module
#      must be used: no build happens), the C, C++ and CLI tarballs unpacked; the
#      C and C++ interop agents are compiled against the unpacked packages
#      through their pkg-config files;
#   4. a cross-language echo across the installed artifacts only: the Python
#      agent (from the wheel) serves; the Node agent (npm tarball), the C agent
#      (C tarball, shared library), the C++ agent (C++ tarball) and
#      `shmsock connect` (CLI tarball) are its clients;
#   5. the source builds, with Rust on PATH: `npm install` of the shmsock
#      tarball alone (--omit=optional: no prebuilt fits) in a fresh project,
#      built from the sources it carries; with SHMSOCK_DIST_FULL=1 also
#      `pip install` of the sdist (maturin, from scratch: a few minutes).
#
# Ends with `N passed, N failed`. Every step runs under a timeout. Environment:
#   SHMSOCK_DIST_FULL=1   also the sdist source build (step 5), and the wheel as
#                         released (zig, manylinux2014) instead of the one the
#                         system toolchain links (manylinux_2_34 here)
#   SHMSOCK_DIST_REUSE=1  skip step 2 and test what build/test-dist/dist holds
#   SHMSOCK_DIST_SOURCE=0 skip the npm source build of step 5 (the expensive
#                         part in a fresh clone: its own cold target folder)
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
work="$repo/build/test-dist"
dist="$work/dist"
agents="$repo/tests/interop/agents"
passed=0
failed=0
results=()

note() { printf '\n== test-dist: %s\n' "$*"; }
ok() {
    passed=$((passed + 1))
    results+=("ok      $*")
}
bad() {
    failed=$((failed + 1))
    results+=("FAILED  $*")
    echo "test-dist: FAILED: $*" >&2
}
# check NAME COMMAND...: one test.
check() {
    local name="$1"
    shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() {
    note "summary"
    for r in "${results[@]}"; do echo "$r"; done
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

version="$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])')"

# ------------------------------------------------------------ 1. one version
versions_agree() {
    local v rc=0
    for f in bindings-node/package.json bindings-node/npm/linux-x64-gnu/package.json; do
        v="$(node -p "require('./$f').version")"
        [ "$v" = "$version" ] || { echo "$f has version $v, the workspace $version" >&2; rc=1; }
    done
    grep -q '^dynamic = \["version"\]' bindings-python/pyproject.toml ||
        { echo "bindings-python/pyproject.toml must take its version from Cargo (dynamic)" >&2; rc=1; }
    v="$(grep -m1 -oE '^## \[[0-9]+\.[0-9]+\.[0-9]+\]' CHANGELOG.md | tr -d '#[] ')"
    [ "$v" = "$version" ] || { echo "CHANGELOG.md's latest release is $v, the workspace $version" >&2; rc=1; }
    # Every crate of the workspace inherits the version.
    for f in $(cargo metadata --format-version 1 --no-deps --offline 2> /dev/null |
        python3 -c 'import json,sys; print("\n".join(p["manifest_path"] for p in json.load(sys.stdin)["packages"]))'); do
        grep -q '^version.workspace = true' "$f" || { echo "$f does not use version.workspace = true" >&2; rc=1; }
    done
    return $rc
}
note "one version ($version) in the manifests"
check "version: manifests and CHANGELOG agree on $version" versions_agree

# ---------------------------------------------------------------- 2. build
if [ "${SHMSOCK_DIST_REUSE:-}" != 1 ]; then
    note "scripts/dist.sh into ${dist#$repo/}"
    start=$SECONDS
    # The wheel linked by the system toolchain, which reuses the workspace's
    # build; the release default (zig, manylinux2014) builds the Python crate
    # once more in its own target folder: with SHMSOCK_DIST_FULL=1.
    wheel_kind=native
    [ "${SHMSOCK_DIST_FULL:-}" = 1 ] && wheel_kind=zig
    if timeout 2400 env DIST_DIR="$dist" DIST_WHEEL="$wheel_kind" scripts/dist.sh; then
        ok "dist: scripts/dist.sh built every artifact ($((SECONDS - start))s)"
    else
        bad "dist: scripts/dist.sh"
        finish
    fi
fi
triple="x86_64-linux-gnu"
wheel="$(ls "$dist"/shmsock-"$version"-cp39-abi3-manylinux*_x86_64.whl 2> /dev/null | head -1)"
artifacts=("$wheel" "$dist/shmsock-$version.tar.gz" "$dist/shmsock-$version.tgz" "$dist/shmsock-linux-x64-gnu-$version.tgz"
    "$dist/shmsock-c-$version-$triple.tar.gz" "$dist/shmsock-cpp-$version-$triple.tar.gz" "$dist/shmsock-cli-$version-$triple.tar.gz")
all_there() {
    local f rc=0
    for f in "${artifacts[@]}"; do [ -n "$f" ] && [ -f "$f" ] || { echo "missing: ${f:-the wheel}" >&2; rc=1; }; done
    return $rc
}
check "dist: every artifact is there, named with $version" all_there || finish

# Each artifact carries both licence texts.
licences_in() {
    local f="$1" list
    case "$f" in
        *.whl) list="$(python3 -m zipfile -l "$f")" ;;
        *) list="$(tar -tzf "$f")" ;;
    esac
    grep -q 'LICENSE-MIT' <<< "$list" && grep -q 'LICENSE-APACHE' <<< "$list"
}
for f in "${artifacts[@]}"; do check "licences: $(basename "$f") has LICENSE-MIT and LICENSE-APACHE" licences_in "$f"; done

# ------------------------------------------------- 3. install without Rust
scratch="$work/scratch"
rm -rf "$scratch" && mkdir -p "$scratch"
# PATH without the folders that hold cargo or rustc.
norust_path=""
IFS=: read -r -a path_dirs <<< "$PATH"
for d in "${path_dirs[@]}"; do
    [ -n "$d" ] || continue
    if [ -e "$d/cargo" ] || [ -e "$d/rustc" ]; then continue; fi
    norust_path="${norust_path:+$norust_path:}$d"
done
norust() { env -u CARGO_HOME -u RUSTUP_HOME -u CARGO_TARGET_DIR PATH="$norust_path" "$@"; }
for tool in python3 node npm cc c++ pkg-config tar; do
    norust sh -c "command -v $tool" > /dev/null || { bad "setup: $tool is not on PATH once cargo and rustc are hidden"; finish; }
done
check "setup: cargo and rustc are hidden" norust sh -c '! command -v cargo && ! command -v rustc'
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

note "install the wheel into a fresh venv (no Rust)"
py="$scratch/py"
check "python: a fresh venv" norust timeout 300 python3 -m venv "$py"
start=$SECONDS
check "python: pip install the wheel without Rust" \
    norust timeout 300 "$py/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$wheel"
wheel_secs=$((SECONDS - start))
check "python: installed shmsock reports $version" \
    norust "$py/bin/python" -c "import shmsock, sys; sys.exit(shmsock.__version__ != '$version')"

note "npm install both tarballs into a fresh project (no Rust)"
app="$scratch/node-app"
mkdir -p "$app"
printf '{ "name": "dist-test", "version": "1.0.0", "private": true }\n' > "$app/package.json"
start=$SECONDS
check "node: npm install the tarballs without Rust" norust timeout 300 sh -c \
    "cd '$app' && npm install --foreground-scripts --no-save '$dist/shmsock-linux-x64-gnu-$version.tgz' '$dist/shmsock-$version.tgz'"
npm_secs=$((SECONDS - start))
check "node: the prebuilt module is used (nothing was built)" \
    test ! -e "$app/node_modules/shmsock/shmsock.node" -a ! -e "$app/node_modules/shmsock/target"
check "node: installed shmsock reports $version" norust sh -c \
    "cd '$app' && SHMSOCK_RUNTIME_DIR='$scratch/run' node -e 'process.exit(require(\"shmsock\").version === \"$version\" ? 0 : 1)'"
# The interop agent, requiring the installed package instead of bindings-node.
sed "s#require('../../../../bindings-node')#require('shmsock')#" "$agents/node/agent.mjs" > "$app/agent.mjs"
check "node: the agent requires the installed package" grep -q "require('shmsock')" "$app/agent.mjs"

note "unpack the C, C++ and CLI tarballs; build the C and C++ agents against them (no Rust)"
for kind in c cpp cli; do tar -xzf "$dist/shmsock-$kind-$version-$triple.tar.gz" -C "$scratch"; done
cprefix="$scratch/shmsock-c-$version-$triple"
cppprefix="$scratch/shmsock-cpp-$version-$triple"
cli="$scratch/shmsock-cli-$version-$triple/bin/shmsock"
pc() { norust env PKG_CONFIG_PATH="$cprefix/lib/pkgconfig:$cppprefix/lib/pkgconfig" pkg-config "$@"; }
check "C: pkg-config shmsock is $version" test "$(pc --modversion shmsock)" = "$version"
check "C++: pkg-config shmsock_cpp is $version" test "$(pc --modversion shmsock_cpp)" = "$version"
# shellcheck disable=SC2046
check "C: agent.c builds against the tarball (shared library, pkg-config)" norust timeout 300 \
    cc -std=c11 -O2 -Wall "$agents/c/"*.c $(pc --cflags --libs shmsock) -lm -Wl,-rpath,"$cprefix/lib" -o "$scratch/c-agent"
check "C: the agent loads libshmsock.so from the tarball" \
    sh -c "ldd '$scratch/c-agent' | grep -q '$cprefix/lib/libshmsock.so.'"
# shellcheck disable=SC2046
check "C++: agent.cpp builds against the tarball (pkg-config)" norust timeout 300 \
    c++ -std=c++17 -O2 -Wall "$agents/cpp/agent.cpp" "$agents/cpp/pubsub.cpp" $(pc --cflags --libs shmsock_cpp) -o "$scratch/cpp-agent"
# find_package of both unpacked tarballs from a CMake project; each program
# prints its library's version.
cmake_consumer() {
    local dir="$scratch/cmake-consumer"
    mkdir -p "$dir"
    cat > "$dir/CMakeLists.txt" << CMAKE
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES C CXX)
find_package(shmsock $version CONFIG REQUIRED)
find_package(shmsock_cpp $version CONFIG REQUIRED)
add_executable(c_app app.c)
target_link_libraries(c_app PRIVATE shmsock::shmsock)
add_executable(cpp_app app.cpp)
target_link_libraries(cpp_app PRIVATE shmsock::shmsock_cpp)
CMAKE
    printf '#include <stdio.h>\n#include <shmsock.h>\nint main(void) { puts(shmsock_version()); return 0; }\n' > "$dir/app.c"
    printf '#include <iostream>\n#include <shmsock.hpp>\nint main() { std::cout << shmsock::version() << "\\n"; }\n' > "$dir/app.cpp"
    norust timeout 120 cmake -S "$dir" -B "$dir/build" -DCMAKE_PREFIX_PATH="$cprefix;$cppprefix" > /dev/null &&
        norust timeout 300 cmake --build "$dir/build" -j 2 > /dev/null &&
        [ "$("$dir/build/c_app")" = "$version" ] && [ "$("$dir/build/cpp_app")" = "$version" ]
}
check "C and C++: find_package from the unpacked tarballs; both libraries say $version" cmake_consumer
check "CLI: shmsock --version says $version" sh -c "norust_out=\$('$cli' --version) && echo \"\$norust_out\" | grep -q '$version'"

# ----------------------------------------------------- 4. cross-language echo
note "echo: the Python wheel serves; Node, C, C++ and the CLI connect"
run="$scratch/run"
mkdir -p "$run" && chmod 700 "$run"
export SHMSOCK_RUNTIME_DIR="$run"
endpoint="dist-echo-$$"
key="$scratch/server.key"
norust "$py/bin/python" -u "$agents/python/agent.py" keygen "$key" > /dev/null
fifo="$scratch/server-stdin"
mkfifo "$fifo"
server_log="$scratch/server.log"
# The server runs until its stdin (the fifo, held open by fd 7) ends.
norust timeout 600 "$py/bin/python" -u "$agents/python/agent.py" serve --name "$endpoint" --key "$key" < "$fifo" > "$server_log" 2>&1 &
server_pid=$!
exec 7> "$fifo"
server_key=""
for _ in $(seq 1 600); do
    server_key="$(awk '$1 == "ready" { print $3; exit }' "$server_log")"
    [ -n "$server_key" ] && break
    kill -0 "$server_pid" 2> /dev/null || break
    sleep 0.05
done
if [ -z "$server_key" ]; then
    bad "echo: the Python server did not get ready"
    cat "$server_log" >&2
else
    ok "echo: the Python server (wheel) is ready"
    sizes="0,1,64,4096,65536,262144"
    check "echo: Node client (npm tarball)" norust timeout 120 sh -c \
        "cd '$app' && node agent.mjs client --name '$endpoint' --server-key '$server_key' --sizes $sizes | grep -q '^ok '"
    check "echo: C client (C tarball)" norust timeout 120 sh -c \
        "'$scratch/c-agent' client --name '$endpoint' --server-key '$server_key' --sizes $sizes | grep -q '^ok '"
    check "echo: C++ client (C++ tarball)" norust timeout 120 sh -c \
        "'$scratch/cpp-agent' client --name '$endpoint' --server-key '$server_key' --sizes $sizes | grep -q '^ok '"
    check "echo: Python client (wheel), ChaCha20-Poly1305" norust timeout 120 sh -c \
        "'$py/bin/python' -u '$agents/python/agent.py' client --name '$endpoint' --server-key '$server_key' --cipher chacha20-poly1305 | grep -q '^ok '"
    # The CLI sends a line and must print the echo; its stdin stays open until
    # then (it closes the connection when stdin ends).
    cli_echo() {
        local line=""
        coproc CLI { norust timeout 60 "$cli" connect "$endpoint" --server-key "$server_key" --wait 10 --quiet 2>&1; }
        printf 'hello from the dist test\n' >&"${CLI[1]}"
        IFS= read -r -t 60 line <&"${CLI[0]}" || true
        exec {CLI[1]}>&-
        wait "$CLI_PID" 2> /dev/null
        [ "$line" = "hello from the dist test" ] || { echo "shmsock connect printed '$line'" >&2; return 1; }
    }
    check "echo: shmsock connect (CLI tarball)" cli_echo
fi
exec 7>&-
wait "$server_pid" 2> /dev/null
connects="$(grep -c '^connect ' "$server_log" || true)"
check "echo: the server saw 5 clients and ended cleanly" test "$connects" = 5
unset SHMSOCK_RUNTIME_DIR

# ----------------------------------------------- 5. source builds, with Rust
npm_src_secs="-"
if [ "${SHMSOCK_DIST_SOURCE:-1}" != 0 ]; then
    note "npm install the shmsock tarball alone (no prebuilt fits): a source build with Rust"
    src_app="$scratch/node-src"
    mkdir -p "$src_app"
    printf '{ "name": "dist-src-test", "version": "1.0.0", "private": true }\n' > "$src_app/package.json"
    start=$SECONDS
    # Its own target folder under target/, kept between runs (cold in a fresh clone).
    check "node source build: npm install --omit=optional the tarball" timeout 1200 sh -c \
        "cd '$src_app' && CARGO_TARGET_DIR='$repo/target/dist-npm-src' npm install --foreground-scripts --no-save --omit=optional '$dist/shmsock-$version.tgz'"
    npm_src_secs=$((SECONDS - start))
    check "node source build: the module was built and loads" sh -c \
        "cd '$src_app' && test -f node_modules/shmsock/shmsock.node && SHMSOCK_RUNTIME_DIR='$scratch/run' node -e 'process.exit(require(\"shmsock\").Keypair.generate().fingerprint ? 0 : 1)'"
fi

sdist_secs="-"
if [ "${SHMSOCK_DIST_FULL:-}" = 1 ]; then
    note "pip install the sdist: a source build with Rust (maturin)"
    start=$SECONDS
    check "python source build: pip install the sdist" timeout 1200 sh -c \
        "python3 -m venv '$scratch/py-src' && '$scratch/py-src/bin/python' -m pip install --quiet --disable-pip-version-check '$dist/shmsock-$version.tar.gz'"
    sdist_secs=$((SECONDS - start))
    check "python source build: shmsock imports and reports $version" \
        "$scratch/py-src/bin/python" -c "import shmsock, sys; sys.exit(shmsock.__version__ != '$version')"
fi

note "install times: wheel ${wheel_secs}s, npm with prebuilt ${npm_secs}s, npm source build ${npm_src_secs}s, sdist ${sdist_secs}s"
finish
