#!/usr/bin/env python3
"""The Python interop agent: keygen, pubkey, an echo server, a checking
client, a publisher and a checking subscriber, on the `shmsock` Python package
only.

The command line, output lines and exit codes are the contract in
tests/interop/README.md ("The agent command line", "Publish/subscribe"). Run it with ./agent (which
uses the repository's .venv; build it with ./build.sh).

The server runs on asyncio (`shmsock.aio`): one event loop accepts clients,
echoes every message and watches stdin (end of file: shut down) and
SIGTERM/SIGINT. The event-driven `shmsock.Server` is not used because its
`Connection` does not tell the cipher that the `connect` line prints.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import time
from typing import Callable, List, NoReturn, Sequence, Set

import shmsock
from shmsock import aio

EXIT_OK, EXIT_VERIFY, EXIT_USAGE, EXIT_SHMSOCK = 0, 1, 2, 3
CIPHERS = ("aegis-128l", "chacha20-poly1305")
DEFAULT_SIZES = "0,1,64,65536,262144"
DEFAULT_TOPIC_SIZES = "0,1,64,4096,65536"
INVERSE_31 = 223  # 31 * 223 = 1 (mod 256)


def out(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------ arguments


def number(minimum: float, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float >= minimum (> minimum when strict)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"out of range: {text!r}")
        return value

    return parse


def count(text: str) -> int:
    """An argparse type: a non-negative decimal integer."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


def size_list(text: str) -> List[int]:
    """An argparse type: comma-separated non-negative integers."""
    try:
        return [count(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agent", allow_abbrev=False, description="shmsock interop agent (Python)")
    commands = parser.add_subparsers(dest="command", required=True)

    for name in ("keygen", "pubkey"):
        p = commands.add_parser(name, allow_abbrev=False)
        p.add_argument("file")

    p = commands.add_parser("serve", allow_abbrev=False)
    p.add_argument("--name", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--allow", action="append", default=[])
    p.add_argument("--backend", choices=("memfd", "named"), default="memfd")

    p = commands.add_parser("client", allow_abbrev=False)
    p.add_argument("--name", required=True)
    p.add_argument("--server-key", required=True)
    p.add_argument("--key")
    p.add_argument("--cipher", choices=CIPHERS, default="aegis-128l")
    p.add_argument("--ring-size", type=count)
    p.add_argument("--sizes", type=size_list, default=size_list(DEFAULT_SIZES))
    p.add_argument("--seconds", type=number(0, strict=True))
    p.add_argument("--timeout", type=number(0, strict=True), default=10.0)

    p = commands.add_parser("publish", allow_abbrev=False)
    p.add_argument("--name", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--count", type=count, default=100)
    p.add_argument("--sizes", type=size_list, default=size_list(DEFAULT_TOPIC_SIZES))
    p.add_argument("--subscribers", type=count, default=1)
    p.add_argument("--timeout", type=number(0, strict=True), default=10.0)
    p.add_argument("--cipher", choices=CIPHERS, default="aegis-128l")

    p = commands.add_parser("subscribe", allow_abbrev=False)
    p.add_argument("--name", required=True)
    p.add_argument("--server-key", required=True)
    p.add_argument("--key")
    p.add_argument("--count", type=count, default=100)
    p.add_argument("--cipher", choices=CIPHERS, default="aegis-128l")
    p.add_argument("--sizes", type=size_list, default=size_list(DEFAULT_TOPIC_SIZES))
    p.add_argument("--timeout", type=number(0, strict=True), default=10.0)
    return parser.parse_args(argv)


# ----------------------------------------------------------------- keys


def keygen(path: str) -> int:
    keypair = shmsock.Keypair.generate()
    keypair.save(path)
    out(f"public {keypair.public_key.text}")
    return EXIT_OK


def pubkey(path: str) -> int:
    keypair = shmsock.Keypair.load(path)
    out(f"public {keypair.public_key.text} {keypair.fingerprint}")
    return EXIT_OK


# ----------------------------------------------------------------- server


async def echo(stream: aio.Stream) -> None:
    """Sends every message back until the client leaves; prints connect/close."""
    client = stream.peer_public_key.fingerprint
    out(f"connect {client} {stream.stream.cipher}")
    try:
        async for message in stream:
            await stream.send(message)
    except shmsock.Error as e:
        print(f"client {client}: {e.code}: {e}", file=sys.stderr, flush=True)
    finally:
        stats = stream.stats
        stream.close()
        out(f"close {client} {stats.messages_received} {stats.bytes_received}")


async def accept_all(listener: aio.Listener, clients: Set[asyncio.Task[None]]) -> None:
    async for stream in listener:
        task = asyncio.ensure_future(echo(stream))
        clients.add(task)
        task.add_done_callback(clients.discard)


class Rejections:
    """Prints `reject <CODE>` lines. aio.Listener skips refused clients
    silently, so this polls its counter (and the last rejection's code)."""

    def __init__(self, listener: aio.Listener) -> None:
        self.listener = listener
        self.seen = 0

    def report(self) -> None:
        now = self.listener.rejected_count
        if now != self.seen:
            last = self.listener.listener.last_rejection
            code = last.code if last is not None else "UNKNOWN"
            for _ in range(now - self.seen):
                out(f"reject {code}")
            self.seen = now

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self.report()


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Sets `stop` at end of file on stdin (read by the event loop)."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    try:
        loop.add_reader(fd, readable)
    except (PermissionError, ValueError, OSError):
        # A regular file (or /dev/null) cannot be polled; reading it does not wait.
        while os.read(fd, 65536):
            pass
        stop.set()


async def serve(args: argparse.Namespace) -> int:
    keypair = shmsock.Keypair.load(args.key)
    listener = aio.bind(
        args.name,
        keypair=keypair,
        allowed_clients=args.allow or None,
        backend=args.backend,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    clients: Set[asyncio.Task[None]] = set()
    async with listener:
        out(f"ready {args.name} {keypair.public_key.text} {keypair.fingerprint}")
        rejections = Rejections(listener)
        accepting = asyncio.ensure_future(accept_all(listener, clients))
        watching = asyncio.ensure_future(rejections.watch())
        watch_stdin(loop, stop)
        await stop.wait()
        watching.cancel()
        rejections.report()  # the counter is gone once the listener is closed
        # Closing the listener ends accept_all, after a handshake under way
        # (cancelling it instead would leave that handshake's future behind).
        listener.close()
        await asyncio.gather(accepting, watching, return_exceptions=True)
    for client in list(clients):
        client.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    return EXIT_OK


# ----------------------------------------------------------------- client


class Messages:
    """Message i of size n: byte j is (i + 31*j + n) mod 256. Every message is a
    slice of one pattern p[k] = 31*k mod 256, starting where 31*k = i + n."""

    def __init__(self, sizes: List[int]) -> None:
        self.sizes = sizes
        self.pattern = memoryview(bytes((31 * k) % 256 for k in range(256)) * (max(sizes) // 256 + 2))

    def __call__(self, i: int) -> memoryview:
        n = self.sizes[i % len(self.sizes)]
        start = ((i + n) * INVERSE_31) % 256
        return self.pattern[start : start + n]


def difference(got: bytes, expected: memoryview) -> str:
    if len(got) != len(expected):
        return f"received {len(got)} bytes"
    j = next(j for j in range(len(got)) if got[j] != expected[j])
    return f"byte {j} is {got[j]}, expected {expected[j]}"


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    sys.exit(EXIT_VERIFY)


def client(args: argparse.Namespace) -> int:
    server_key = shmsock.PublicKey(args.server_key)
    keypair = shmsock.Keypair.load(args.key) if args.key else None
    messages = Messages(args.sizes)
    stream = shmsock.connect(
        args.name,
        server_key=server_key,
        keypair=keypair,
        ring_size=args.ring_size,
        recv_timeout=args.timeout,
        require_chacha=args.cipher == "chacha20-poly1305",
    )
    with stream:
        cipher, client_fingerprint = stream.cipher, stream.local_public_key.fingerprint
        if stream.peer_public_key != server_key:
            fail(f"mismatch: server key is {stream.peer_public_key.text}, expected {server_key.text}")
        if cipher != args.cipher:
            fail(f"mismatch: cipher is {cipher}, expected {args.cipher}")
        start = time.monotonic()
        next_progress = start + 1.0
        i = total = 0
        while True:
            if args.seconds is None:
                if i == len(args.sizes):
                    break
            elif time.monotonic() - start >= args.seconds:
                break
            message = messages(i)
            stream.send(message)
            reply = stream.recv()
            if reply != message:
                fail(f"mismatch: message {i} ({len(message)} B): {difference(reply, message)}")
            i += 1
            total += len(message)
            if args.seconds is not None and time.monotonic() >= next_progress:
                next_progress += 1.0
                out(f"progress {i} {total} {time.monotonic() - start:.3f}")
        elapsed = time.monotonic() - start
    out(
        f"ok cipher={cipher} server={server_key.fingerprint} "
        f"client={client_fingerprint} messages={i} bytes={total} seconds={elapsed:.3f}"
    )
    return EXIT_OK


# ----------------------------------------------------------- publish/subscribe


def publish(args: argparse.Namespace) -> int:
    keypair = shmsock.Keypair.load(args.key)
    messages = Messages(args.sizes)
    # A reliable topic of 64 slots of 64 KiB: the package's defaults.
    with shmsock.Publisher.bind(args.name, keypair=keypair, require_chacha=args.cipher == "chacha20-poly1305") as topic:
        out(f"ready {args.name} {keypair.public_key.text} {keypair.fingerprint}")
        topic.wait_for_subscribers(args.subscribers, timeout=args.timeout)
        total = 0
        for i in range(args.count):
            message = messages(i)
            topic.publish(message)
            total += len(message)
        out(f"published messages={args.count} bytes={total}")
    return EXIT_OK


def subscribe(args: argparse.Namespace) -> int:
    server_key = shmsock.PublicKey(args.server_key)
    keypair = shmsock.Keypair.load(args.key) if args.key else None
    messages = Messages(args.sizes)
    with shmsock.Subscriber.connect(
        args.name,
        server_key=server_key,
        keypair=keypair,
        recv_timeout=args.timeout,
        require_chacha=args.cipher == "chacha20-poly1305",
    ) as sub:
        if sub.publisher_public_key != server_key:
            fail(f"mismatch: publisher key is {sub.publisher_public_key.text}, expected {server_key.text}")
        if sub.cipher != args.cipher:
            fail(f"mismatch: cipher is {sub.cipher}, expected {args.cipher}")
        out(f"subscribed {server_key.fingerprint} {sub.cipher}")
        total = 0
        for i in range(args.count):
            got = sub.recv()
            if sub.lost:
                fail(f"mismatch: lost {sub.lost} messages")
            expected = messages(i)
            if got != expected:
                fail(f"mismatch: message {i} ({len(expected)} B): {difference(got, expected)}")
            total += len(got)
        cipher = sub.cipher
    out(f"ok cipher={cipher} publisher={server_key.fingerprint} messages={args.count} bytes={total} lost=0")
    return EXIT_OK


# ----------------------------------------------------------------- main


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        if args.command == "keygen":
            return keygen(args.file)
        if args.command == "pubkey":
            return pubkey(args.file)
        if args.command == "serve":
            return asyncio.run(serve(args))
        if args.command == "publish":
            return publish(args)
        if args.command == "subscribe":
            return subscribe(args)
        return client(args)
    except shmsock.Error as e:
        print(f"error {e.code}: {e}", file=sys.stderr, flush=True)
        return EXIT_SHMSOCK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
