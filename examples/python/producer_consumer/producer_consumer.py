#!/usr/bin/env python3
"""The simple producer/consumer over shmsock.

    python producer_consumer.py            # the consumer: prints "consumed 1k messages", ...
    python producer_consumer.py -p         # a producer (start it in another terminal)

Keys travel through files: the consumer loads (or creates) its key file
``consumer.key`` and writes its public key to ``consumer.pub``; a producer pins
that public key and has its own key file ``producer.key``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Optional

import shmsock


def load_or_create(path: Path) -> shmsock.Keypair:
    """The keypair in `path`, created (mode 0600) on first use."""
    if not path.exists():
        shmsock.Keypair.generate().save(path)
    return shmsock.Keypair.load(path)


def consume(name: str, keys: Path, count: Optional[int]) -> int:
    keypair = load_or_create(keys / "consumer.key")
    (keys / "consumer.pub").write_text(keypair.public_key.text + "\n")
    consumed = 0
    lock = threading.Lock()
    done = threading.Event()

    def on_connect(conn: shmsock.Connection) -> None:
        print(f"producer {conn.peer_public_key.fingerprint} connected (pid {conn.peer_credentials.pid})", flush=True)

    def on_data(conn: shmsock.Connection, data: bytes) -> None:
        nonlocal consumed
        with lock:
            consumed += 1
            if consumed % 1000 == 0:
                print(f"consumed {consumed // 1000}k messages", flush=True)
            if count is not None and consumed >= count:
                done.set()

    def on_error(conn: Optional[shmsock.Connection], error: shmsock.Error) -> None:
        print(f"error: {error}", file=sys.stderr, flush=True)

    def on_close(conn: shmsock.Connection, reason: Optional[shmsock.Error]) -> None:
        print(f"producer {conn.peer_public_key.fingerprint} left ({reason or 'closed'})", flush=True)

    with shmsock.Server(
        name, keypair=keypair, on_connect=on_connect, on_data=on_data, on_error=on_error, on_close=on_close
    ):
        print(f"consumer on '{name}', key {keypair.public_key} (start a producer with -p)", flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
    print(f"consumed {consumed} messages in all", flush=True)
    return 0


def produce(name: str, keys: Path, count: Optional[int]) -> int:
    pub = keys / "consumer.pub"
    try:
        server_key = shmsock.PublicKey(pub.read_text().strip())
    except FileNotFoundError:
        print(f"{pub} does not exist: start the consumer first (without -p)", file=sys.stderr)
        return 2
    keypair = load_or_create(keys / "producer.key")
    with shmsock.connect(name, server_key=server_key, keypair=keypair) as stream:
        print(f"producer {keypair.fingerprint} connected to '{name}'", flush=True)
        sent = 0
        try:
            while count is None or sent < count:
                stream.send(b"message %d" % sent)
                sent += 1
        except (KeyboardInterrupt, shmsock.PeerClosed, shmsock.PeerGone) as e:
            print(f"stopped: {type(e).__name__}", flush=True)
    print(f"produced {sent} messages", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-p", "--produce", action="store_true", help="be a producer (default: the consumer)")
    parser.add_argument("--name", default="producer_consumer", help="endpoint name (default: %(default)s)")
    parser.add_argument(
        "--keys",
        type=Path,
        default=Path(os.environ.get("SHMSOCK_KEYS", ".")),
        help="folder of the key files (default: current folder)",
    )
    parser.add_argument("-n", "--count", type=int, help="stop after this many messages (default: run until Ctrl-C)")
    args = parser.parse_args()
    args.keys.mkdir(parents=True, exist_ok=True)
    try:
        if args.produce:
            return produce(args.name, args.keys, args.count)
        return consume(args.name, args.keys, args.count)
    except shmsock.Error as e:
        print(f"error ({e.code}): {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
