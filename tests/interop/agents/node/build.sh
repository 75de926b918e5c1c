#!/usr/bin/env bash
# Builds the Node interop agent's dependency: the shmsock package in
# bindings-node, whose `npm ci` builds the native module shmsock.node from
# source. Runs only when shmsock.node is missing or older than the Rust sources
# (bindings-node/{src,Cargo.toml,build.rs}, core/src). See tests/interop/README.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
pkg="$repo/bindings-node"
module="$pkg/shmsock.node"

if [ -f "$module" ] && [ -z "$(find "$pkg/src" "$pkg/Cargo.toml" "$pkg/build.rs" "$repo/core/src" \
        -type f -newer "$module" -print -quit)" ]; then
    exit 0
fi

echo "node agent: npm ci in $pkg (builds shmsock.node)" >&2
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
(cd "$pkg" && npm ci --foreground-scripts) >&2
if [ ! -f "$module" ]; then
    echo "node agent: npm ci did not produce $module" >&2
    exit 1
fi
touch "$module"  # the reference time of the next check
