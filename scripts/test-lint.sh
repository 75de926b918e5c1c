#!/usr/bin/env bash
# The standing static checks, run by `make test`: formatting, clippy with every
# warning an error, and rustdoc with every warning an error for the crates whose
# documentation users read. Runs every check even after one fails, prints one
# line per check and a final "N passed, N failed", and exits non-zero when any
# check failed.
#
# Cheap by design: it reuses the workspace target directory (clippy and rustdoc
# share the dependencies the test suites already built).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

passed=0
failed=0

check() {
    local name="$1"
    shift
    echo "== lint: $name: $*"
    if "$@"; then
        passed=$((passed + 1))
        echo "== lint: $name ok"
    else
        failed=$((failed + 1))
        echo "== lint: $name FAILED" >&2
    fi
}

check "rustfmt" cargo fmt --all --check
check "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
# The core's `fuzzing` feature (core/fuzz's in-process hostile peer) is off in
# the workspace build above.
check "clippy shmsock --features fuzzing" cargo clippy -p shmsock --features fuzzing --all-targets --locked -- -D warnings
# The public crates: the core, the C ABI (its docs become the C header's
# comments) and the C++ bridge. The core and the C ABI both name their library
# `shmsock`, so each is documented on its own (rustdoc refuses to write two
# crates of one name into one run).
for crate in shmsock shmsock-ffi shmsock-cxx; do
    check "rustdoc $crate" env RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --locked -p "$crate"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
