#!/usr/bin/env bash
# The cross-language suite, from a fresh clone:
#   1. builds the five interop agents (tests/interop/agents/*/build.sh: the
#      Rust agent, the C agent over libshmsock, the C++ agent over shmsock.hpp,
#      the Python package into .venv, the Node package's native module);
#   2. runs the interop matrix (tests/interop/matrix.py): 25 language pairs,
#      both ciphers and backends, refusals, key files, SIGKILL of either side;
#   3. runs the publish/subscribe matrix (tests/interop/topics.py): 25
#      publisher/subscriber language pairs, all five languages on one topic,
#      wrong keys, SIGKILL of the publisher;
#   4. runs the demo (`make demo`) for two seconds, as the main job's check.
# Exits non-zero when any step fails. Every step is bounded in time.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "--- interop: build the agents and run the matrix"
timeout --kill-after=30 2400 python3 tests/interop/matrix.py

echo
echo "--- interop: publish/subscribe, 25 publisher/subscriber pairs and all languages at once"
timeout --kill-after=30 1200 python3 tests/interop/topics.py --no-build

echo
echo "--- interop: the demo, two seconds"
timeout --kill-after=30 300 python3 tests/interop/demo.py --no-build --seconds 2
