#!/usr/bin/env bash
# Builds the C++ interop agent, build/interop/cpp/shmsock-agent, with CMake
# (CMakeLists.txt here: agent.cpp and pubsub.cpp linked to shmsock::shmsock_cpp of
# bindings-cpp/, as examples/cpp is). Configures only once; the build is
# incremental (cargo and the compiler skip what did not change).
# See tests/interop/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
build="$repo/build/interop/cpp"

if [ ! -f "$build/CMakeCache.txt" ]; then
    generator=()
    command -v ninja > /dev/null && generator=(-G Ninja)
    cmake -S "$here" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" -j "${JOBS:-2}"
