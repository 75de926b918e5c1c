#!/usr/bin/env bash
# The C++ package's tests, from a fresh clone: configures and builds
# bindings-cpp (which drives `cargo build -p shmsock-cxx`) into build/cpp/normal
# and, with AddressSanitizer and UndefinedBehaviorSanitizer, into build/cpp/asan;
# runs the GoogleTest suites and the examples under ctest in both, and the
# install test (install into a temporary prefix, find_package(shmsock_cpp) from
# a tiny consumer, run it). Ends with a line `N passed, N failed` counting the
# ctest tests (a build that fails counts as one failure) and exits non-zero
# when anything failed.
#
# Needs cmake, a C++17 compiler and GoogleTest (Debian: libgtest-dev, installed
# here with apt-get when missing and we may).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
build="$repo/build/cpp"
jobs="${CPP_TEST_JOBS:-2}"

passed=0
failed=0
summary=()

note() { echo; echo "=== cpp: $*"; }

ensure_gtest() {
    if [ -f /usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake ] || [ -f /usr/lib/aarch64-linux-gnu/cmake/GTest/GTestConfig.cmake ] ||
        [ -f /usr/lib/cmake/GTest/GTestConfig.cmake ] || [ -f /usr/local/lib/cmake/GTest/GTestConfig.cmake ]; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        note "installing GoogleTest (libgtest-dev)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgtest-dev cmake g++ > /dev/null
    fi
}

# build NAME DIR [cmake args...]: configure and build; a failure counts once.
build_tree() {
    local name="$1" dir="$2"
    shift 2
    note "configure and build ($name) in ${dir#$repo/}"
    local generator=()
    command -v ninja > /dev/null && [ ! -f "$dir/CMakeCache.txt" ] && generator=(-G Ninja)
    if cmake -S bindings-cpp -B "$dir" "${generator[@]}" "$@" && cmake --build "$dir" -j "$jobs"; then
        summary+=("ok      build $name")
        return 0
    fi
    failed=$((failed + 1))
    summary+=("FAILED  build $name")
    return 1
}

# run_ctest NAME DIR [ctest args...]: adds the tests it ran to the counts.
run_ctest() {
    local name="$1" dir="$2"
    shift 2
    note "ctest ($name)"
    local log
    log="$(mktemp)"
    (cd "$dir" && ctest -j "$jobs" --output-on-failure "$@") 2>&1 | tee "$log"
    local line total bad
    line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)"
    rm -f "$log"
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        summary+=("FAILED  ctest $name (no result)")
        return
    fi
    bad="$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')"
    total="$(echo "$line" | sed -E 's/.* failed out of ([0-9]+).*/\1/')"
    passed=$((passed + total - bad))
    failed=$((failed + bad))
    if [ "$bad" -eq 0 ]; then
        summary+=("ok      ctest $name: $total tests")
    else
        summary+=("FAILED  ctest $name: $bad of $total tests")
    fi
}

# cargo_test: the Rust unit tests of the bridge (panic boundary, error channel).
cargo_test() {
    note "cargo test -p shmsock-cxx"
    local log
    log="$(mktemp)"
    cargo test -p shmsock-cxx 2>&1 | tee "$log"
    local ok=$? line
    line="$(grep -E '^test result: ' "$log" | head -1)"
    rm -f "$log"
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        summary+=("FAILED  cargo test -p shmsock-cxx (no result)")
        return
    fi
    local p f
    p="$(echo "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')"
    f="$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')"
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$ok" -eq 0 ] && [ "$f" -eq 0 ]; then
        summary+=("ok      cargo test -p shmsock-cxx: $p tests")
    else
        [ "$f" -eq 0 ] && failed=$((failed + 1))
        summary+=("FAILED  cargo test -p shmsock-cxx")
    fi
}

ensure_gtest
cargo_test

if build_tree normal "$build/normal" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMSOCK_BUILD_TESTS=ON -DSHMSOCK_CPP_SANITIZE=; then
    run_ctest normal "$build/normal" -E '^install\.'
    run_ctest install "$build/normal" -R '^install\.'
fi
if build_tree asan "$build/asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMSOCK_BUILD_TESTS=ON -DSHMSOCK_CPP_SANITIZE=address,undefined; then
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        run_ctest asan "$build/asan"
fi

note "summary"
for s in "${summary[@]}"; do echo "$s"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
