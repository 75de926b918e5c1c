#!/usr/bin/env python3
"""Python binding bench: shmsock against socket.socketpair(AF_UNIX), in one launch.

Two processes each time (this one and a child started with subprocess):

- latency: round trips of a 64-byte message (send, the child echoes it back),
  median and 99th percentile;
- throughput: 1 MiB messages streamed one way, with ``recv()`` (a new bytes
  object per message) and with ``recv_into()`` (one reused buffer);
- asyncio: the same round trip and 1 MiB stream from an asyncio task, with
  ``shmsock.aio`` against asyncio streams over the same kind of Unix socket.

The Unix-socket baseline uses a SOCK_STREAM socketpair with a 4-byte length
prefix per message, as a Python program would; it is plaintext, shmsock
encrypts and authenticates every byte. Figures are printed as ratios to that
baseline measured in the same launch, for each placement: both processes on
two different cores, and both on one core (when the machine lets us pin).

    python bench/bench.py [--seconds 1.0] [--rounds 4] [--placement both|two|one|none] [--only sync|asyncio]

Latencies are measured in alternating turns (``--rounds``) of shmsock and the
baseline, so that a machine whose load changes during the launch weighs on
both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Optional, Sequence, Tuple

import shmsock
from shmsock import aio

SMALL = 64
LARGE = 1 << 20

CHILD = r"""
import os, socket, struct, sys
import shmsock

mode, cpu = sys.argv[1], sys.argv[2]
if cpu != "-":
    os.sched_setaffinity(0, {int(cpu)})

def read_exact(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n

if mode.startswith("shm"):
    stream = shmsock.connect(sys.argv[3], server_key=sys.argv[4])
    try:
        if mode == "shm-echo":
            while True:
                stream.send(stream.recv())
        elif mode == "shm-sink-recv":
            count = int(sys.argv[5])
            for _ in range(count):
                stream.recv()
            stream.send(b"done")
        elif mode == "shm-sink-into":
            count = int(sys.argv[5])
            buf = bytearray(1 << 20)
            for _ in range(count):
                stream.recv_into(buf)
            stream.send(b"done")
        stream.recv()
    except shmsock.PeerClosed:
        pass
else:
    sock = socket.socket(fileno=int(sys.argv[3]))
    header = bytearray(4)
    hv = memoryview(header)
    try:
        if mode == "sock-echo":
            buf = bytearray(1 << 20)
            while True:
                read_exact(sock, hv)
                n = struct.unpack("<I", header)[0]
                read_exact(sock, memoryview(buf)[:n])
                sock.sendall(header + buf[:n])
        elif mode == "sock-sink-recv":
            count = int(sys.argv[4])
            for _ in range(count):
                read_exact(sock, hv)
                n = struct.unpack("<I", header)[0]
                parts = []
                left = n
                while left:
                    chunk = sock.recv(left)
                    if not chunk:
                        raise EOFError
                    parts.append(chunk)
                    left -= len(chunk)
                message = b"".join(parts)
            sock.sendall(b"done")
        elif mode == "sock-sink-into":
            count = int(sys.argv[4])
            buf = bytearray(1 << 20)
            for _ in range(count):
                read_exact(sock, hv)
                n = struct.unpack("<I", header)[0]
                read_exact(sock, memoryview(buf)[:n])
            sock.sendall(b"done")
        sock.recv(1)
    except (EOFError, ConnectionError):
        pass
"""


class Placement:
    def __init__(self, label: str, parent: Optional[int], child: Optional[int]) -> None:
        self.label, self.parent, self.child = label, parent, child

    def apply(self) -> None:
        if self.parent is not None:
            os.sched_setaffinity(0, {self.parent})

    def child_arg(self) -> str:
        return "-" if self.child is None else str(self.child)


def spawn(args: Sequence[str], pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], pass_fds=tuple(pass_fds))


# ------------------------------------------------------------------ shmsock


class Shm:
    def __init__(self) -> None:
        self.keypair = shmsock.Keypair.generate()
        self.name = f"pybench-{os.getpid()}"
        self.listener = shmsock.bind(self.name, keypair=self.keypair)
        self.cipher = ""

    def start(self, mode: str, placement: Placement, *extra: str) -> Tuple[shmsock.Stream, subprocess.Popen[bytes]]:
        child = spawn([mode, placement.child_arg(), self.name, self.keypair.public_key.text, *extra])
        stream = self.listener.accept(timeout=30)
        self.cipher = stream.cipher
        return stream, child

    def latency(self, placement: Placement, seconds: float) -> List[float]:
        stream, child = self.start("shm-echo", placement)
        message = b"x" * SMALL
        samples: List[float] = []
        for _ in range(2000):  # warm up
            stream.send(message)
            stream.recv()
        end = time.perf_counter() + seconds
        clock = time.perf_counter
        while clock() < end:
            t0 = clock()
            stream.send(message)
            stream.recv()
            samples.append(clock() - t0)
        stream.close()
        child.wait(30)
        return samples

    def throughput(self, placement: Placement, count: int, into: bool) -> float:
        stream, child = self.start("shm-sink-into" if into else "shm-sink-recv", placement, str(count))
        message = b"m" * LARGE
        t0 = time.perf_counter()
        for _ in range(count):
            stream.send(message)
        assert stream.recv(timeout=60) == b"done"
        elapsed = time.perf_counter() - t0
        stream.close()
        child.wait(30)
        return count * LARGE / elapsed

    def aio_latency(self, placement: Placement, seconds: float) -> List[float]:
        blocking, child = self.start("shm-echo", placement)

        async def run() -> List[float]:
            stream = aio.Stream(blocking)
            message = b"x" * SMALL
            for _ in range(2000):
                await stream.send(message)
                await stream.recv()
            samples: List[float] = []
            end = time.perf_counter() + seconds
            clock = time.perf_counter
            while clock() < end:
                t0 = clock()
                await stream.send(message)
                await stream.recv()
                samples.append(clock() - t0)
            stream.close()
            return samples

        samples = asyncio.run(run())
        child.wait(30)
        return samples

    def aio_throughput(self, placement: Placement, count: int) -> float:
        blocking, child = self.start("shm-sink-recv", placement, str(count))

        async def run() -> float:
            stream = aio.Stream(blocking)
            message = b"m" * LARGE
            t0 = time.perf_counter()
            for _ in range(count):
                await stream.send(message)
            assert await stream.recv(timeout=60) == b"done"
            elapsed = time.perf_counter() - t0
            stream.close()
            return elapsed

        elapsed = asyncio.run(run())
        child.wait(30)
        return count * LARGE / elapsed

    def close(self) -> None:
        self.listener.close()


# ------------------------------------------------------------- Unix sockets


def read_exact(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n


def sock_start(mode: str, placement: Placement, *extra: str) -> Tuple[socket.socket, subprocess.Popen[bytes]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = spawn([mode, placement.child_arg(), str(theirs.fileno()), *extra], pass_fds=[theirs.fileno()])
    theirs.close()
    return ours, child


def sock_latency(placement: Placement, seconds: float) -> List[float]:
    sock, child = sock_start("sock-echo", placement)
    message = struct.pack("<I", SMALL) + b"x" * SMALL
    reply = bytearray(len(message))
    view = memoryview(reply)
    for _ in range(2000):
        sock.sendall(message)
        read_exact(sock, view)
    samples: List[float] = []
    end = time.perf_counter() + seconds
    clock = time.perf_counter
    while clock() < end:
        t0 = clock()
        sock.sendall(message)
        read_exact(sock, view)
        samples.append(clock() - t0)
    sock.close()
    child.wait(30)
    return samples


def sock_throughput(placement: Placement, count: int, into: bool) -> float:
    sock, child = sock_start("sock-sink-into" if into else "sock-sink-recv", placement, str(count))
    header = struct.pack("<I", LARGE)
    message = b"m" * LARGE
    t0 = time.perf_counter()
    for _ in range(count):
        sock.sendall(header)
        sock.sendall(message)
    done = bytearray(4)
    read_exact(sock, memoryview(done))
    elapsed = time.perf_counter() - t0
    sock.close()
    child.wait(30)
    return count * LARGE / elapsed


def aio_sock_latency(placement: Placement, seconds: float) -> List[float]:
    sock, child = sock_start("sock-echo", placement)

    async def run() -> List[float]:
        reader, writer = await asyncio.open_connection(sock=sock)
        message = struct.pack("<I", SMALL) + b"x" * SMALL
        for _ in range(2000):
            writer.write(message)
            await reader.readexactly(len(message))
        samples: List[float] = []
        end = time.perf_counter() + seconds
        clock = time.perf_counter
        while clock() < end:
            t0 = clock()
            writer.write(message)
            await reader.readexactly(len(message))
            samples.append(clock() - t0)
        writer.close()
        return samples

    samples = asyncio.run(run())
    child.wait(30)
    return samples


def aio_sock_throughput(placement: Placement, count: int) -> float:
    sock, child = sock_start("sock-sink-recv", placement, str(count))

    async def run() -> float:
        reader, writer = await asyncio.open_connection(sock=sock)
        header = struct.pack("<I", LARGE)
        message = b"m" * LARGE
        t0 = time.perf_counter()
        for _ in range(count):
            writer.write(header)
            writer.write(message)
            await writer.drain()
        await reader.readexactly(4)
        elapsed = time.perf_counter() - t0
        writer.close()
        return elapsed

    elapsed = asyncio.run(run())
    child.wait(30)
    return count * LARGE / elapsed


# ------------------------------------------------------------------ report


def us(x: float) -> str:
    return f"{x * 1e6:.1f} us"


def gbps(x: float) -> str:
    return f"{x / 1e9:.2f} GB/s"


def placements(choice: str) -> List[Placement]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    two = [Placement("two cores", cpus[0], cpus[1])] if len(cpus) >= 2 else []
    one = [Placement("one core", cpus[0], cpus[0])] if cpus else []
    none = [Placement("unpinned", None, None)]
    return {"both": two + one, "two": two, "one": one, "none": none}[choice] or none


Row = Tuple[str, str, str, str, str]


def quantile(samples: List[float], pick: float) -> float:
    return statistics.median(samples) if pick == 0.5 else statistics.quantiles(samples, n=100)[int(pick * 100) - 1]


def interleaved(
    ours: Callable[[Placement, float], List[float]],
    theirs: Callable[[Placement, float], List[float]],
    placement: Placement,
    args: argparse.Namespace,
) -> Tuple[List[float], List[float]]:
    """Round-trip samples of both, measured in ``args.rounds`` alternating
    turns of ``args.seconds / args.rounds`` each, so that a change in the
    machine's load during the launch weighs on both alike."""
    a: List[float] = []
    b: List[float] = []
    for _ in range(args.rounds):
        a += ours(placement, args.seconds / args.rounds)
        b += theirs(placement, args.seconds / args.rounds)
    return a, b


def sync_rows(shm: Shm, placement: Placement, args: argparse.Namespace, rows: List[Row]) -> None:
    """Blocking shmsock against a socketpair."""
    lat_shm, lat_sock = interleaved(shm.latency, sock_latency, placement, args)
    for label, pick in (("median", 0.5), ("p99", 0.99)):
        a, b = quantile(lat_shm, pick), quantile(lat_sock, pick)
        rows.append((placement.label, f"64 B round trip, {label}", us(a), us(b), f"{a / b:.2f}x time"))
    for into in (False, True):
        t_shm = shm.throughput(placement, args.count, into)
        t_sock = sock_throughput(placement, args.count, into)
        how = "recv_into" if into else "recv"
        rows.append(
            (placement.label, f"1 MiB throughput ({how})", gbps(t_shm), gbps(t_sock), f"{t_shm / t_sock:.2f}x rate")
        )


def asyncio_rows(shm: Shm, placement: Placement, args: argparse.Namespace, rows: List[Row]) -> None:
    """shmsock.aio against asyncio streams over a socketpair."""
    lat_shm, lat_sock = interleaved(shm.aio_latency, aio_sock_latency, placement, args)
    for label, pick in (("median", 0.5), ("p99", 0.99)):
        a, b = quantile(lat_shm, pick), quantile(lat_sock, pick)
        rows.append((placement.label, f"asyncio 64 B round trip, {label}", us(a), us(b), f"{a / b:.2f}x time"))
    t_shm = shm.aio_throughput(placement, args.count)
    t_sock = aio_sock_throughput(placement, args.count)
    rows.append((placement.label, "asyncio 1 MiB throughput", gbps(t_shm), gbps(t_sock), f"{t_shm / t_sock:.2f}x rate"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per latency measurement")
    parser.add_argument("--count", type=int, default=300, help="1 MiB messages per throughput measurement")
    parser.add_argument("--placement", choices=["both", "two", "one", "none"], default="both")
    parser.add_argument("--rounds", type=int, default=4, help="alternating turns per latency measurement")
    parser.add_argument(
        "--only", choices=["all", "sync", "asyncio"], default="all", help="run only the blocking or the asyncio rows"
    )
    args = parser.parse_args()

    runtime = tempfile.mkdtemp(prefix="shmsock-bench-")
    os.chmod(runtime, 0o700)
    os.environ.setdefault("SHMSOCK_RUNTIME_DIR", runtime)
    original = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    shm = Shm()
    rows: List[Row] = []
    try:
        for placement in placements(args.placement):
            placement.apply()
            if args.only != "asyncio":
                sync_rows(shm, placement, args, rows)
            if args.only != "sync":
                asyncio_rows(shm, placement, args, rows)
            if original is not None:
                os.sched_setaffinity(0, original)
    finally:
        shm.close()

    print(
        f"shmsock {shmsock.__version__} Python bench: CPython {sys.version.split()[0]}, cipher {shm.cipher}, "
        f"{os.cpu_count()} CPUs, 2 processes"
    )
    print(
        "baseline: socket.socketpair(AF_UNIX, SOCK_STREAM) with a length prefix, plaintext "
        "(asyncio rows: asyncio streams over it)"
    )
    header = ("placement", "measure", "shmsock", "AF_UNIX", "shmsock / AF_UNIX")
    widths = [max(len(str(r[i])) for r in [*rows, header]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print("(latency: lower is better, a ratio below 1 means shmsock is faster; throughput: higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
