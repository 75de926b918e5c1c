#!/usr/bin/env bash
# Regenerates ffi-c/include/shmsock.h with the pinned cbindgen, or, with
# --check, regenerates it into a temporary file and fails when the committed
# header differs (a stale header, or version macros that drifted from the
# workspace version).
#
# cbindgen is installed into <repo>/.tools (git-ignored) when missing or of
# another version. The version macros (SHMSOCK_VERSION_*) live in
# ffi-c/cbindgen.toml ("after_includes"); this script rewrites them from the
# workspace version in Cargo.toml, and --check fails when they differ.
set -euo pipefail

CBINDGEN_VERSION="0.29.4"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/.tools"
header="$repo/ffi-c/include/shmsock.h"
config="$repo/ffi-c/cbindgen.toml"
check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

cbindgen="$tools/bin/cbindgen"
if [[ ! -x "$cbindgen" ]] || [[ "$("$cbindgen" --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]]; then
    echo "gen-c-header: installing cbindgen $CBINDGEN_VERSION into $tools" >&2
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --force --root "$tools" >&2
fi

# The workspace version, from [workspace.package] of the root Cargo.toml.
version="$(awk '/^\[workspace.package\]/{p=1; next} /^\[/{p=0} p && /^version *=/{gsub(/[" ]/, "", $0); sub(/version=/, "", $0); print; exit}' "$repo/Cargo.toml")"
if [[ ! "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
    echo "gen-c-header: cannot read the workspace version from Cargo.toml (got '$version')" >&2
    exit 1
fi
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}" patch="${BASH_REMATCH[3]}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The configuration with the version macros set from the workspace version.
sed -E \
    -e "s/^#define SHMSOCK_VERSION_MAJOR .*/#define SHMSOCK_VERSION_MAJOR $major/" \
    -e "s/^#define SHMSOCK_VERSION_MINOR .*/#define SHMSOCK_VERSION_MINOR $minor/" \
    -e "s/^#define SHMSOCK_VERSION_PATCH .*/#define SHMSOCK_VERSION_PATCH $patch/" \
    -e "s/^#define SHMSOCK_VERSION \".*\"/#define SHMSOCK_VERSION \"$version\"/" \
    "$config" > "$tmp/cbindgen.toml"

(cd "$repo" && "$cbindgen" --quiet --config "$tmp/cbindgen.toml" --crate shmsock-ffi --output "$tmp/shmsock.h" ffi-c)

if ((check)); then
    status=0
    if ! diff -u "$config" "$tmp/cbindgen.toml"; then
        echo "gen-c-header: the version macros in ffi-c/cbindgen.toml are not $version; run scripts/gen-c-header.sh" >&2
        status=1
    fi
    if ! diff -u "$header" "$tmp/shmsock.h"; then
        echo "gen-c-header: ffi-c/include/shmsock.h is stale; run scripts/gen-c-header.sh and commit the result" >&2
        status=1
    fi
    if ((status == 0)); then
        echo "gen-c-header: ffi-c/include/shmsock.h is up to date (cbindgen $CBINDGEN_VERSION, version $version)"
    fi
    exit "$status"
fi

cp "$tmp/cbindgen.toml" "$config"
mkdir -p "$(dirname "$header")"
cp "$tmp/shmsock.h" "$header"
echo "gen-c-header: wrote ffi-c/include/shmsock.h (cbindgen $CBINDGEN_VERSION, version $version)"
