#!/usr/bin/env bash
# Builds the Python package into a fresh virtual environment inside the
# repository and runs its checks and tests:
#
#   1. creates .venv (python3 -m venv) unless it exists, and installs the
#      test tools into it (pytest, pytest-timeout, mypy, and ruff at the
#      version pinned below);
#   2. ruff: lint (ruff check) and formatting (ruff format --check) of the
#      package, its tests, bench and tools, examples/python and tests/interop
#      (configured in the root ruff.toml);
#   3. builds and installs the package with `pip install ./bindings-python`
#      (maturin is the declared build backend; cargo builds in the workspace's
#      target directory, so the core and libsodium are built once);
#   4. checks that the committed stubs match the built module
#      (python -m mypy.stubtest shmsock);
#   5. runs mypy --strict on the examples, the package's typed sources and
#      tests/interop (the matrix, the demo and the Python agent);
#   6. runs pytest on bindings-python/tests (every test bounded in time).
#
# Exits non-zero when any step fails. Environment:
#   PYTHON        the interpreter that creates the venv (default: python3)
#   PYTEST_ARGS   extra arguments for pytest (e.g. "-k aio -x")
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"
cd "$repo"

step() { printf '\n==> %s\n' "$*"; }

step "virtual environment $venv"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# ruff is pinned: a new release may add rules or change formatting.
ruff_version="0.17.6"
"$venv/bin/python" -m pip install --quiet "maturin>=1.5,<2" "pytest>=7" "pytest-timeout>=2.1" "mypy>=1.8" \
    "ruff==$ruff_version"

step "ruff $ruff_version (lint, format check)"
python_dirs=(bindings-python examples/python tests/interop)
"$venv/bin/ruff" check "${python_dirs[@]}"
"$venv/bin/ruff" format --check "${python_dirs[@]}"

step "pip install ./bindings-python"
# A native module left in the source tree by `maturin develop` would shadow
# the one being built: remove it (it is a build artefact, ignored by git).
rm -f "$repo"/bindings-python/python/shmsock/_shmsock*.so
"$venv/bin/python" -m pip install --force-reinstall --no-deps ./bindings-python
"$venv/bin/python" -c 'import shmsock, sys; print("installed shmsock", shmsock.__version__, "from", shmsock.__file__)'

step "stubs match the module (stubtest)"
(cd "$repo/bindings-python" && "$venv/bin/python" -m mypy.stubtest shmsock)

step "mypy --strict (examples, package, interop scripts and agent)"
"$venv/bin/mypy" --strict --cache-dir=/dev/null examples/python
"$venv/bin/mypy" --strict --cache-dir=/dev/null bindings-python/python/shmsock
"$venv/bin/mypy" --strict --cache-dir=/dev/null tests/interop

step "pytest"
cd "$repo/bindings-python"
# The whole run is bounded too (each test is, by pytest-timeout).
# shellcheck disable=SC2086
timeout --kill-after=30 1500 "$venv/bin/python" -m pytest tests -p no:cacheprovider ${PYTEST_ARGS:-}
