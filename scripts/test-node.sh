#!/usr/bin/env bash
# The Node package's checks and tests, from a fresh clone:
#   1. npm ci in bindings-node (its install script builds the native module
#      from source with napi build: cargo, in the workspace's target directory);
#   2. package.json's version equals the Cargo workspace's;
#   3. native.d.ts / index.d.ts are current (scripts/gen-dts.mjs --check), and
#      the package's JavaScript type-checks (tsc --checkJs, tsconfig.js.json);
#   4. `npm install <path-to-bindings-node>` works from another project;
#   5. the examples (examples/node) install and type-check with tsc --noEmit;
#   6. the node:test suites (bindings-node/test/*.test.mjs).
# Exits non-zero when any step fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="$repo/bindings-node"
cd "$pkg"

step() { echo; echo "--- node: $*"; }

export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

step "npm ci (builds the native module)"
npm ci --foreground-scripts

step "version equals the workspace's"
node scripts/check-version.mjs

step "TypeScript declarations are current"
node scripts/gen-dts.mjs --check

step "the JavaScript type-checks (tsc --checkJs over index.js and lib/)"
node node_modules/typescript/bin/tsc -p tsconfig.js.json

step "npm install <path-to-bindings-node> from another project"
# Without the module, so the package's install script must build it again.
rm -f "$pkg/shmsock.node"
consumer="$(mktemp -d)"
trap 'rm -rf "$consumer"' EXIT
(
    cd "$consumer"
    printf '{ "name": "consumer", "version": "1.0.0", "private": true }\n' > package.json
    npm install --foreground-scripts "$pkg"
    SHMSOCK_RUNTIME_DIR="$consumer/run" node -e '
        const shm = require("shmsock")
        const kp = shm.Keypair.generate()
        if (shm.version !== require("shmsock/package.json").version) throw new Error("version mismatch")
        console.log(`consumer project: shmsock ${shm.version} loads (${kp.fingerprint})`)'
)

step "examples: npm ci and tsc --noEmit"
(cd "$repo/examples/node" && npm ci --foreground-scripts)
node node_modules/typescript/bin/tsc --noEmit -p "$repo/examples/node/tsconfig.json"
node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json

step "node --test"
node --test --test-concurrency=1 --test-timeout=120000 test/*.test.mjs
