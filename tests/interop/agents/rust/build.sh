#!/usr/bin/env bash
# Builds the Rust interop agent (this crate, shmsock-interop-agent) in release
# mode: target/release/shmsock-agent. cargo decides what is stale, so this is
# quick when nothing changed. See tests/interop/README.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
cd "$repo"
cargo build --release -p shmsock-interop-agent
