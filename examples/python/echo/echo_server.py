#!/usr/bin/env python3
"""Echo server on shmsock: one shmsock.Server serves every client from its
dispatch thread, and replies never block it.

    python echo_server.py [--name echo] [--keys DIR] [--once]

Loads (or creates) its key file ``echo.key`` and writes its public key to
``echo.pub`` for clients to pin. ``--once`` exits after the first client.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import shmsock


class Echo:
    """The server's callbacks (run one at a time on its dispatch thread)."""

    def __init__(self, once: bool) -> None:
        self.once = once
        self.done = threading.Event()

    def on_connect(self, conn: shmsock.Connection) -> None:
        print(f"client {conn.peer_public_key.fingerprint} connected", flush=True)

    def on_data(self, conn: shmsock.Connection, data: bytes) -> None:
        # Never waits: into the client's ring, or its bounded queue. A client
        # that does not read its replies fills its queue: that reply is dropped
        # (WouldBlock), the server stops reading the client until it reads
        # (its own sends wait), and every other client is served as before.
        try:
            conn.send(data)
        except shmsock.WouldBlock as e:
            print(f"echo to client {conn.peer_public_key.fingerprint} dropped: {e}", flush=True)

    def on_error(self, conn: Optional[shmsock.Connection], error: shmsock.Error) -> None:
        who = f"client {conn.peer_public_key.fingerprint}" if conn is not None else "handshake"
        print(f"{who}: {error}", flush=True)

    def on_close(self, conn: shmsock.Connection, reason: Optional[shmsock.Error]) -> None:
        messages = conn.stats.messages_received
        print(f"client {conn.peer_public_key.fingerprint} left after {messages} messages", flush=True)
        if self.once:
            self.done.set()


def serve(name: str, keypair: shmsock.Keypair, once: bool) -> None:
    echo = Echo(once)
    with shmsock.Server(
        name,
        keypair=keypair,
        on_connect=echo.on_connect,
        on_data=echo.on_data,
        on_error=echo.on_error,
        on_close=echo.on_close,
    ):
        print(f"echo server on '{name}', key {keypair.public_key}", flush=True)
        # Wait in slices so Ctrl-C (KeyboardInterrupt) gets through.
        while not echo.done.wait(0.2):
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="echo", help="endpoint name (default: %(default)s)")
    parser.add_argument("--keys", type=Path, default=Path("."), help="folder of echo.key / echo.pub")
    parser.add_argument("--once", action="store_true", help="exit after the first client")
    args = parser.parse_args()
    args.keys.mkdir(parents=True, exist_ok=True)
    key_file = args.keys / "echo.key"
    # SIGTERM stops the server as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if not key_file.exists():
            shmsock.Keypair.generate().save(key_file)
        keypair = shmsock.Keypair.load(key_file)
        (args.keys / "echo.pub").write_text(keypair.public_key.text + "\n")
        serve(args.name, keypair, args.once)
    except KeyboardInterrupt:
        pass
    except shmsock.Error as e:
        print(f"error ({e.code}): {e}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
