#!/usr/bin/env bash
# The one test command of the project: runs every test suite, even after one
# fails, prints one line per suite and a final summary `N passed, N failed`,
# and exits non-zero when any suite failed.
#
# Works from a fresh clone: what the suites need beyond the machine's Rust
# toolchains (stable and nightly) is installed into the repository (.tools/).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Each crate is built once here: incremental state would only take disk.
export CARGO_INCREMENTAL=0

disk() {
    echo "=== disk: $(du -sh --exclude=.git . 2>/dev/null | cut -f1) in the repository, $(df -h --output=avail . | tail -1 | tr -d ' ') free"
}

passed=0
failed=0
results=()

suite() {
    local name="$1"
    shift
    echo
    echo "=== suite: $name: $*"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        results+=("ok      $name ($((SECONDS - start))s)")
    else
        failed=$((failed + 1))
        results+=("FAILED  $name ($((SECONDS - start))s)")
    fi
    disk
}

disk
suite "lint: rustfmt, clippy -D warnings, rustdoc -D warnings" scripts/test-lint.sh
suite "rust: core, examples and bench smoke" cargo test -p shmsock -p shmsock-examples -p shmsock-bench
suite "loom: memory ordering of the rings and wake-ups (tests/loom)" cargo test -p shmsock-loom
suite "C ABI (ffi-c): header, C tests, install, ASan/UBSan, valgrind" scripts/test-c.sh
suite "C++ package (bindings-cpp): GoogleTest, ASan/UBSan, install" scripts/test-cpp.sh
suite "Python package: build into .venv, stubs, mypy, pytest" scripts/test-python.sh
suite "Node package: npm install, d.ts, tsc, node --test" scripts/test-node.sh
suite "CLI: the shmsock command, spawned as users run it" cargo test -p shmsock-cli
suite "interop: 25 language pairs, refusals, key files, SIGKILL; pub/sub pairs; the demo" scripts/test-interop.sh
suite "fuzz smoke: 5 targets (parsers, receive path, control records, topic receive)" scripts/fuzz-smoke.sh
suite "dist: release artifacts installed without Rust, cross-language echo, npm source build" scripts/test-dist.sh

echo
echo "=== summary"
for r in "${results[@]}"; do
    echo "$r"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
