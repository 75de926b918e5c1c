#!/usr/bin/env python3
"""Echo client on shmsock: sends each argument (or each line of stdin) and
checks that the server sends it back unchanged.

    python echo_client.py hello world
    printf 'a\\nb\\n' | python echo_client.py

Pins the server's public key from ``echo.pub`` (written by echo_server.py), or
``--server-key shmsock-pk:...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterable

import shmsock


def run(stream: shmsock.Stream, messages: Iterable[bytes]) -> int:
    for message in messages:
        start = time.perf_counter()
        stream.send(message)
        reply = stream.recv(timeout=5)
        elapsed_us = (time.perf_counter() - start) * 1e6
        if reply != message:
            print(f"mismatch: sent {message!r}, got {reply!r}", file=sys.stderr)
            return 1
        print(f"echo: {reply.decode(errors='replace')} ({elapsed_us:.0f} us)", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("messages", nargs="*", help="messages to send (default: lines of stdin)")
    parser.add_argument("--name", default="echo", help="endpoint name (default: %(default)s)")
    parser.add_argument("--keys", type=Path, default=Path("."), help="folder of echo.pub")
    parser.add_argument("--server-key", help="the server's public key (default: read from echo.pub)")
    args = parser.parse_args()
    try:
        text = args.server_key or (args.keys / "echo.pub").read_text().strip()
    except FileNotFoundError:
        print("echo.pub not found: start echo_server.py first, or pass --server-key", file=sys.stderr)
        return 2
    messages = [m.encode() for m in args.messages] or (line.rstrip("\n").encode() for line in sys.stdin)
    try:
        with shmsock.connect(args.name, server_key=text) as stream:
            print(
                f"connected to '{args.name}' ({stream.cipher}, server {stream.peer_public_key.fingerprint})", flush=True
            )
            return run(stream, messages)
    except shmsock.Error as e:
        print(f"error ({e.code}): {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
