#!/bin/sh
# Runs one example scenario end to end and checks its output. The C and C++
# examples share it: the programs of every language behave alike.
#   run_examples.sh producer_consumer <producer_consumer binary>
#   run_examples.sh echo <echo_server binary> <echo_client binary>
#   run_examples.sh pubsub <pubsub binary>
#   run_examples.sh pubsub node <pubsub.mjs>     (a command of several words)
#   run_examples.sh echo_never_reading_client <echo_server binary> <echo_client binary>
#     (C++: the server survives a client that never reads its replies)
# A Python example is its script (executable, `#!/usr/bin/env python3`), run
# with an interpreter that has shmsock first on PATH:
#   PATH=.venv/bin:$PATH run_examples.sh pubsub examples/python/pubsub/pubsub.py
set -eu
scenario="$1"
shift
tmp="$(mktemp -d)"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -m 700 "$tmp/run"
export SHMSOCK_RUNTIME_DIR="$tmp/run"
endpoint="example-$scenario-$$"

# Waits (10 s at most) for a line in a file.
wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -gt 200 ] && { echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1; }
        sleep 0.05
    done
}

case "$scenario" in
producer_consumer)
    bin="$1"
    "$bin" "$endpoint" "$tmp/consumer.key" > "$tmp/consumer.out" 2>&1 &
    pid=$!
    wait_for "$tmp/consumer.out" "consumer on '$endpoint', key shmsock-pk:"
    # The producer pins the consumer's key: by its key file, then by its text.
    "$bin" -p "$endpoint" "$tmp/consumer.key" 2000
    key="$(sed -n "s/.*, key \(shmsock-pk:[A-Za-z0-9_-]*\)$/\1/p" "$tmp/consumer.out")"
    "$bin" -p "$endpoint" "$key" 1000
    wait_for "$tmp/consumer.out" "^consumed 3k messages$"
    cat "$tmp/consumer.out"
    grep -qx "consumed 1k messages" "$tmp/consumer.out"
    grep -qx "consumed 2k messages" "$tmp/consumer.out"
    ;;
pubsub)
    # The rest of the arguments are the command (a binary, or node and a script).
    "$@" "$endpoint" "$tmp/pub.key" 3000 2 > "$tmp/pub.out" 2>&1 &
    pid=$!
    wait_for "$tmp/pub.out" "publisher of '$endpoint', key shmsock-pk:"
    # Two subscribers, one pinning the key file, one the key text; a reliable
    # topic delivers every message to both.
    key="$(sed -n "s/.*, key \(shmsock-pk:[A-Za-z0-9_-]*\)$/\1/p" "$tmp/pub.out")"
    "$@" -s "$endpoint" "$tmp/pub.key" > "$tmp/sub1.out" &
    sub1=$!
    "$@" -s "$endpoint" "$key" > "$tmp/sub2.out"
    wait "$sub1"
    wait "$pid"
    pid=""
    cat "$tmp/pub.out" "$tmp/sub1.out" "$tmp/sub2.out"
    grep -qx "published 3000 messages" "$tmp/pub.out"
    grep -qx "received 3000 messages, lost 0" "$tmp/sub1.out"
    grep -qx "received 3000 messages, lost 0" "$tmp/sub2.out"
    ;;
echo)
    server="$1" client="$2"
    "$server" "$endpoint" "$tmp/server.key" > "$tmp/server.out" 2>&1 &
    pid=$!
    wait_for "$tmp/server.out" "serving '$endpoint' as shmsock-pk:"
    "$client" "$endpoint" "$tmp/server.key" hello "shared memory" > "$tmp/client.out"
    key="$(sed -n "s/.* as \(shmsock-pk:[A-Za-z0-9_-]*\)$/\1/p" "$tmp/server.out")"
    "$client" "$endpoint" "$key" >> "$tmp/client.out"
    cat "$tmp/client.out"
    [ "$(cat "$tmp/client.out")" = "$(printf 'hello\nshared memory\nhello')" ]
    kill -TERM "$pid"
    wait "$pid"
    pid=""
    cat "$tmp/server.out"
    grep -q "client 1 connected" "$tmp/server.out"
    grep -q "client 2 left" "$tmp/server.out"
    grep -qx "stopped" "$tmp/server.out"
    ;;
echo_never_reading_client)
    server="$1" client="$2"
    "$server" "$endpoint" "$tmp/server.key" > "$tmp/server.out" 2>&1 &
    pid=$!
    wait_for "$tmp/server.out" "serving '$endpoint' as shmsock-pk:"
    # 4 MiB of messages whose replies are never read: more than the client's
    # ring (2 MiB) and the server's 1 MiB outbox for it, so the server drops it.
    "$client" --never-read "$endpoint" "$tmp/server.key" 4096 > "$tmp/stuck.out" 2>&1 &
    stuck=$!
    wait_for "$tmp/server.out" "client 1 connected"
    # Meanwhile, and after, another client gets its echoes.
    "$client" "$endpoint" "$tmp/server.key" during > "$tmp/client.out"
    wait_for "$tmp/server.out" "client 1 dropped: it does not read its replies"
    wait_for "$tmp/stuck.out" "read none"
    "$client" "$endpoint" "$tmp/server.key" after >> "$tmp/client.out"
    kill "$stuck"
    wait "$stuck" || true
    [ "$(cat "$tmp/client.out")" = "$(printf 'during\nafter')" ]
    kill -TERM "$pid"
    wait "$pid"
    pid=""
    cat "$tmp/server.out" "$tmp/stuck.out"
    grep -qx "stopped" "$tmp/server.out"
    ;;
*)
    echo "unknown scenario $scenario"
    exit 2
    ;;
esac
echo "ok: example $scenario"
