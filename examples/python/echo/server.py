#!/usr/bin/env python3
"""Echo server on shmsock with asyncio: one event loop serves every client.

    python server.py [--name echo] [--keys DIR] [--once]

Loads (or creates) its key file ``echo.key`` and writes its public key to
``echo.pub`` for clients to pin. ``--once`` exits after the first client.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Set

import shmsock
from shmsock import aio


async def echo(stream: aio.Stream) -> None:
    peer = stream.peer_public_key.fingerprint
    print(f"client {peer} connected", flush=True)
    async with stream:
        try:
            async for message in stream:
                await stream.send(message)
        except shmsock.PeerGone as e:
            print(f"client {peer}: {e}", flush=True)
        print(f"client {peer} left after {stream.stats.messages_received} messages", flush=True)


async def serve(name: str, keypair: shmsock.Keypair, once: bool) -> None:
    tasks: Set["asyncio.Task[None]"] = set()
    async with aio.bind(name, keypair=keypair) as listener:
        print(f"echo server on '{name}', key {keypair.public_key}", flush=True)
        async for stream in listener:
            task = asyncio.ensure_future(echo(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if once:
                await task
                return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="echo", help="endpoint name (default: %(default)s)")
    parser.add_argument("--keys", type=Path, default=Path("."), help="folder of echo.key / echo.pub")
    parser.add_argument("--once", action="store_true", help="exit after the first client")
    args = parser.parse_args()
    args.keys.mkdir(parents=True, exist_ok=True)
    key_file = args.keys / "echo.key"
    try:
        if not key_file.exists():
            shmsock.Keypair.generate().save(key_file)
        keypair = shmsock.Keypair.load(key_file)
        (args.keys / "echo.pub").write_text(keypair.public_key.text + "\n")
        asyncio.run(serve(args.name, keypair, args.once))
    except KeyboardInterrupt:
        pass
    except shmsock.Error as e:
        print(f"error ({e.code}): {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
