#!/bin/sh
# The echo server survives a client that never reads: while that client's
# replies pile up (and it is dropped once 1 MiB of them wait), other clients
# are served at once.
#   never_reading_client_test.sh <echo_server binary> <echo_client binary>
set -eu
server="$1" client="$2"
tmp="$(mktemp -d)"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2> /dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -m 700 "$tmp/run"
export SHMSOCK_RUNTIME_DIR="$tmp/run"
endpoint="example-never-read-$$"

wait_for() {
    i=0
    until grep -q "$2" "$1" 2> /dev/null; do
        i=$((i + 1))
        [ "$i" -gt 400 ] && { echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1; }
        sleep 0.05
    done
}

"$server" "$endpoint" "$tmp/server.key" > "$tmp/server.out" 2>&1 &
server_pid=$!
pids="$server_pid"
wait_for "$tmp/server.out" "serving '$endpoint' as shmsock-pk:"

# 4 MiB of messages whose replies are never read: more than the client's ring
# and the server's 1 MiB outbox for it.
"$client" --never-read "$endpoint" "$tmp/server.key" 4096 > "$tmp/stuck.out" 2>&1 &
pids="$pids $!"
wait_for "$tmp/server.out" "client 1 connected"
# Meanwhile, and after, another client gets its echoes.
"$client" "$endpoint" "$tmp/server.key" during > "$tmp/client.out"
wait_for "$tmp/server.out" "client 1 dropped: it does not read its replies"
wait_for "$tmp/stuck.out" "read none"
"$client" "$endpoint" "$tmp/server.key" after >> "$tmp/client.out"
[ "$(cat "$tmp/client.out")" = "$(printf 'during\nafter')" ]
kill -TERM "$server_pid"
wait "$server_pid"
cat "$tmp/server.out" "$tmp/stuck.out"
grep -qx "stopped" "$tmp/server.out"
echo "ok: the echo server survived a client that never reads"
