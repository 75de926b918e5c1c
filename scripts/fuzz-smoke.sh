#!/usr/bin/env bash
# Runs every cargo-fuzz target of core/fuzz for a short, bounded time, starting
# from the committed seeds (core/fuzz/seeds/<target>/): handshake_reader and
# frame_opener (the parsers), receive_path (arbitrary shared-memory contents under
# a real stream's receive path), control_records (the control-socket records) and
# topic_receive (a hostile publisher against a real subscriber). Exits non-zero when a
# target crashes (panic, sanitizer report, timeout or out-of-memory) or does not
# build.
#
# Needs the nightly toolchain (rustup toolchain install nightly). Installs
# cargo-fuzz into <repo>/.tools when it is missing.
#
# Environment:
#   FUZZ_SECONDS   time per target (default 15)
#   FUZZ_TARGETS   space-separated targets (default: all of core/fuzz)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/.tools"
seconds="${FUZZ_SECONDS:-15}"
export PATH="$tools/bin:$PATH"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz-smoke: the nightly toolchain is missing; installing it with rustup" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz into $tools" >&2
    cargo install cargo-fuzz --locked --root "$tools"
fi

cd "$repo/core/fuzz"
targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
failed=()
for target in $targets; do
    corpus="corpus/$target"
    seeds="seeds/$target"
    mkdir -p "$corpus" "$seeds"
    echo "== fuzz-smoke: $target for ${seconds}s"
    # The first directory receives new inputs; the seeds are only read.
    # -timeout: one input taking over 10 s is a hang, reported as a crash.
    if cargo +nightly fuzz run "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "== fuzz-smoke: $target ok"
    else
        echo "== fuzz-smoke: $target FAILED (crash input under core/fuzz/artifacts/$target/)" >&2
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz-smoke: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: all targets ran ${seconds}s without a crash"
