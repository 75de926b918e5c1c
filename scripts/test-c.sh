#!/usr/bin/env bash
# Builds and tests the C ABI (ffi-c) from a fresh clone, and exits non-zero on
# any failure. Ends with a line "N passed, N failed" counting every test run:
#
#   1. header check: ffi-c/include/shmsock.h equals what the pinned cbindgen
#      generates (cbindgen is installed into .tools/ when missing)
#   2. cargo test -p shmsock-ffi (the Rust unit tests of the FFI layer)
#   3. cmake configure + build into build/c (cargo build --release inside),
#      then ctest: the C tests, the header compiled as C99 and C++17, the
#      exported symbols, the install test (pkg-config and find_package,
#      shared and static), the examples, and valgrind on an echo cycle
#   4. the same C tests built with -fsanitize=address,undefined against the
#      static library (build/c-asan), under ctest
#
# Environment: JOBS (parallel jobs, default 2), SHMSOCK_C_SKIP_ASAN=1 skips step 4.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${JOBS:-2}"
passed=0
failed=0
failures=()

note() { printf '\n== test-c: %s\n' "$*"; }
pass() { passed=$((passed + $1)); }
fail() { failed=$((failed + $1)); failures+=("$2"); }

# Adds the counts of a ctest log ("N% tests passed, F tests failed out of T").
count_ctest() {
    local log="$1" what="$2" line total bad
    line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)"
    if [[ -z "$line" ]]; then
        fail 1 "$what (ctest did not run)"
        return
    fi
    bad="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
    total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")"
    pass $((total - bad))
    if ((bad > 0)); then
        fail "$bad" "$what: $(grep -E '^\s+[0-9]+ - ' "$log" | sed -E 's/^\s+[0-9]+ - //' | tr '\n' ' ')"
    fi
}

cd "$repo"
logs="$repo/build/c-logs"
mkdir -p "$logs"

note "1. header is up to date (pinned cbindgen)"
if scripts/gen-c-header.sh --check; then pass 1; else fail 1 "header check"; fi

note "2. cargo test -p shmsock-ffi"
if cargo test -p shmsock-ffi 2>&1 | tee "$logs/cargo-test.log"; then
    n="$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^passed/) s += $i } END { print s + 0 }' "$logs/cargo-test.log")"
    pass "$n"
else
    fail 1 "cargo test -p shmsock-ffi"
fi

run_suite() {
    local dir="$1" what="$2"
    shift 2
    note "$what: configure and build $dir"
    if ! cmake -S ffi-c -B "$dir" "$@" > "$logs/$(basename "$dir")-configure.log" 2>&1; then
        cat "$logs/$(basename "$dir")-configure.log"
        fail 1 "$what: cmake configure"
        return
    fi
    if ! cmake --build "$dir" -j "$jobs" 2>&1 | tee "$logs/$(basename "$dir")-build.log"; then
        fail 1 "$what: build"
        return
    fi
    note "$what: ctest in $dir"
    (cd "$dir" && ctest -j "$jobs" --output-on-failure) 2>&1 | tee "$logs/$(basename "$dir")-ctest.log"
    count_ctest "$logs/$(basename "$dir")-ctest.log" "$what"
}

run_suite build/c "3. C tests, header, exports, install, examples, valgrind" -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [[ "${SHMSOCK_C_SKIP_ASAN:-0}" != 1 ]]; then
    run_suite build/c-asan "4. C tests under AddressSanitizer + UBSan" \
        -DCMAKE_BUILD_TYPE=Debug -DSHMSOCK_SANITIZE=ON -DSHMSOCK_BUILD_EXAMPLES=OFF -DSHMSOCK_VALGRIND=OFF
fi

echo
if ((${#failures[@]})); then
    echo "test-c: FAILED:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
