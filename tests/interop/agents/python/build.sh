#!/usr/bin/env bash
# Builds the Python interop agent's dependency: the shmsock package, installed
# into the repository's .venv (created if missing) with `pip install
# ./bindings-python`. Reinstalls only when shmsock is not importable there or a
# source file (bindings-python/{src,python,Cargo.toml,pyproject.toml}, core/src)
# is newer than the installed native module. See tests/interop/README.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "python agent: creating $venv" >&2
    "$python" -m venv "$venv"
fi

# The installed native module (empty when shmsock is not importable).
installed() {
    "$venv/bin/python" -c 'import shmsock._shmsock as m; print(m.__file__)' 2>/dev/null || true
}

module="$(installed)"
if [ -n "$module" ] && [ -z "$(find "$repo"/bindings-python/{src,python,Cargo.toml,pyproject.toml} "$repo/core/src" \
        -type f -newer "$module" -print -quit)" ]; then
    exit 0
fi

echo "python agent: pip install ./bindings-python into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$repo/bindings-python" >&2
module="$(installed)"
if [ -z "$module" ]; then
    echo "python agent: shmsock is still not importable from $venv after pip install" >&2
    exit 1
fi
touch "$module"  # the reference time of the next check
