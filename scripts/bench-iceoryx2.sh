#!/usr/bin/env bash
# Builds the iceoryx2 comparison (bench/iceoryx2-cmp: iceoryx2's unencrypted
# publish/subscribe, from crates.io) and runs `shmsock-bench --pubsub`, which
# then prints iceoryx2's 64 B round trip beside shmsock's, same launch, same
# placement.
#
# iceoryx2 builds its bindings with bindgen, which needs libclang. When no
# libclang (or clang's headers) is found this installs Debian's libclang1-14 and
# libclang-common-14-dev with apt-get (as root;
# otherwise it says what to install).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

find_libclang() {
    local dir
    for dir in ${LIBCLANG_PATH:-} /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
        if compgen -G "$dir/libclang*.so*" >/dev/null 2>&1 && ls "$dir"/libclang*.so* | grep -qv "libclang-cpp"; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# bindgen also needs clang's own headers (stddef.h), which libclang1 lacks.
has_clang_headers() { compgen -G "/usr/lib/llvm-*/lib/clang/*/include/stddef.h" >/dev/null 2>&1; }

if ! libclang_dir="$(find_libclang)" || ! has_clang_headers; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench-iceoryx2: installing libclang (Debian libclang1-14, libclang-common-14-dev) for iceoryx2's bindgen"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libclang1-14 libclang-common-14-dev >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libclang1-14 libclang-common-14-dev >/dev/null; }
        libclang_dir="$(find_libclang)"
    else
        echo "bench-iceoryx2: iceoryx2 needs libclang (Debian: apt-get install libclang1-14 libclang-common-14-dev); none found" >&2
        exit 1
    fi
fi
export LIBCLANG_PATH="$libclang_dir"

echo "bench-iceoryx2: building bench/iceoryx2-cmp (libclang in $LIBCLANG_PATH)"
(cd "$repo/bench/iceoryx2-cmp" && cargo build --release --quiet)
cd "$repo"
cargo run --release --quiet -p shmsock-bench -- --pubsub "$@"
