"""shmsock.aio: coroutines that never block the loop, many pending receives,
cancellation, closing."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any, Callable, List, Tuple

import pytest
from conftest import NoExecutor

import shmsock
from shmsock import aio


def run(coro: Any, timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def pair(listener: aio.Listener, key: shmsock.PublicKey, **options: Any) -> Tuple[aio.Stream, aio.Stream]:
    client, server = await asyncio.gather(aio.connect(listener.name, server_key=key, **options), listener.accept())
    return client, server


class Ticker:
    """A task that counts loop iterations: it stalls if anything blocks the loop."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now
            self.ticks += 1

    def stop(self) -> None:
        self._task.cancel()


@pytest.mark.parametrize("size", [0, 1, 64, 70_000, 1 << 20, 3 << 20])
def test_echo(name: str, server_keypair: shmsock.Keypair, size: int) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)

            async def echo() -> None:
                async with server:
                    async for message in server:
                        await server.send(message)

            task = asyncio.ensure_future(echo())
            async with client:
                data = bytes(i & 0xFF for i in range(size))
                await client.send(data)
                assert await client.recv() == data
                buf = bytearray(size + 1)
                await client.send(memoryview(data))
                n = await client.recv_into(buf)
                assert buf[:n] == data
            await asyncio.wait_for(task, 10)

    run(main())


def test_many_pending_receives_do_not_block_the_loop(name: str, server_keypair: shmsock.Keypair) -> None:
    count = 100

    async def main() -> None:
        threads_before = threading.active_count()
        async with aio.bind(name, keypair=server_keypair, ring_size=1 << 14) as listener:
            accepted: List[aio.Stream] = []

            async def acceptor() -> None:
                while len(accepted) < count:
                    accepted.append(await listener.accept())

            acc = asyncio.ensure_future(acceptor())
            clients = [await aio.connect(name, server_key=server_keypair.public_key) for _ in range(count)]
            await asyncio.wait_for(acc, 30)
            ticker = Ticker()
            pending = [asyncio.ensure_future(c.recv()) for c in clients]
            await asyncio.sleep(0.3)
            assert not any(p.done() for p in pending)
            ticks_while_pending = ticker.ticks
            assert ticks_while_pending > 50, f"the loop only ticked {ticks_while_pending} times in 0.3 s"
            # No thread per pending call: only the default executor's few.
            assert threading.active_count() <= threads_before + 8
            for i, s in enumerate(accepted):
                await s.send(b"to %d" % i)
            results = await asyncio.wait_for(asyncio.gather(*pending), 10)
            assert sorted(results) == sorted(b"to %d" % i for i in range(count))
            ticker.stop()
            assert ticker.longest_gap < 0.5
            for s in clients + accepted:
                s.close()

    run(main())


def test_cancelled_recv_loses_no_message(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            task = asyncio.ensure_future(client.recv())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.send(b"kept")
            assert await asyncio.wait_for(client.recv(), 5) == b"kept"

            # Receives that time out all the time, against a steady sender.
            total = 300
            sent: List[bytes] = []

            async def sender() -> None:
                for i in range(total):
                    m = b"m%d" % i + b"." * (i * 37 % 5000)
                    sent.append(m)
                    await server.send(m)
                    if i % 7 == 0:
                        await asyncio.sleep(0.0005)

            s = asyncio.ensure_future(sender())
            received: List[bytes] = []
            timeouts = 0
            while len(received) < total:
                try:
                    received.append(await asyncio.wait_for(client.recv(), 0.0003))
                except asyncio.TimeoutError:
                    timeouts += 1
            await s
            assert received == sent
            assert timeouts > 0, "no receive was cancelled: the test proved nothing"
            client.close()
            server.close()

    run(main())


def test_send_waits_for_ring_space_without_blocking(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair, ring_size=1 << 14) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            ticker = Ticker()
            messages = [bytes([i]) * 3000 for i in range(200)]  # ~600 KB through a 16 KiB ring

            async def slow_reader() -> List[bytes]:
                out = []
                for _ in messages:
                    out.append(await server.recv())
                    await asyncio.sleep(0)
                return out

            reader = asyncio.ensure_future(slow_reader())
            for m in messages:
                await client.send(m)
            assert await asyncio.wait_for(reader, 20) == messages
            # Larger than half the ring: sent from the executor.
            big = b"B" * 100_000
            got = asyncio.ensure_future(server.recv())
            await client.send(big)
            assert await asyncio.wait_for(got, 10) == big
            ticker.stop()
            assert ticker.longest_gap < 0.5
            client.close()
            server.close()

    run(main())


def test_close_wakes_pending_recv(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            task = asyncio.ensure_future(client.recv())
            await asyncio.sleep(0.05)
            client.close()
            with pytest.raises(shmsock.Closed):
                await asyncio.wait_for(task, 2)
            # The peer sees a clean close; iteration ends.
            assert [m async for m in server] == []
            server.close()

    run(main())


def test_peer_gone(name: str, server_keypair: shmsock.Keypair, child: Callable[..., Any]) -> None:
    code = """
import sys, time, shmsock
s = shmsock.connect(sys.argv[1], server_key=sys.argv[2])
s.send(b"alive")
print("connected", flush=True)
time.sleep(60)
"""

    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            c = child(code, name, server_keypair.public_key.text)
            stream = await listener.accept()
            assert await stream.recv() == b"alive"
            c.proc.kill()
            with pytest.raises(shmsock.PeerGone):
                await asyncio.wait_for(stream.recv(), 5)
            stream.close()

    run(main())


def test_accept_cancellation_and_close(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        listener = aio.bind(name, keypair=server_keypair)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(listener.accept(), 0.1)
        # The listener still works after a cancelled accept.
        client, server = await pair(listener, server_keypair.public_key)
        await client.send(b"x")
        assert await server.recv() == b"x"
        pending = asyncio.ensure_future(listener.accept())
        await asyncio.sleep(0.05)
        listener.close()
        with pytest.raises(shmsock.Closed):
            await asyncio.wait_for(pending, 2)
        assert [s async for s in listener] == []
        client.close()
        server.close()

    run(main())


def test_rejected_clients_are_skipped(name: str, server_keypair: shmsock.Keypair) -> None:
    friend = shmsock.Keypair.generate()

    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair, allowed_clients=[friend.public_key]) as listener:
            accept = asyncio.ensure_future(listener.accept())
            with pytest.raises(shmsock.HandshakeRejected):
                await aio.connect(name, server_key=server_keypair.public_key)
            client = await aio.connect(name, server_key=server_keypair.public_key, keypair=friend)
            server = await asyncio.wait_for(accept, 5)
            assert server.peer_public_key == friend.public_key
            assert listener.rejected_count == 1
            client.close()
            server.close()

    run(main())


def test_accept_is_not_held_up_by_silent_clients(name: str, server_keypair: shmsock.Keypair, runtime_dir: Any) -> None:
    """Handshakes advance side by side on the loop: clients that connect and
    never speak (long handshake timeout) do not delay a real one."""

    async def main() -> None:
        listener = aio.bind(name, keypair=server_keypair, handshake_timeout=60)
        silent = []
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(runtime_dir / f"{name}.sock"))
            silent.append(s)
        try:
            accepting = asyncio.ensure_future(listener.accept())
            await asyncio.sleep(0.05)  # the silent clients are taken first
            client, server = await asyncio.wait_for(
                asyncio.gather(aio.connect(name, server_key=server_keypair.public_key), accepting), 20
            )
            await client.send(b"through")
            assert await server.recv() == b"through"
            assert listener.rejected_count == 0, "the silent clients still wait for their deadline"
            client.close()
            server.close()
        finally:
            for s in silent:
                s.close()
            listener.close()

    run(main())


def test_a_silent_client_is_refused_at_its_deadline(
    name: str, server_keypair: shmsock.Keypair, runtime_dir: Any
) -> None:
    """The listener's descriptor reports handshake deadlines: a pending
    accept refuses a silent client (a REJECT) without any timer."""

    async def main() -> None:
        listener = aio.bind(name, keypair=server_keypair, handshake_timeout=0.2)
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(str(runtime_dir / f"{name}.sock"))
        silent.setblocking(False)
        accepting = asyncio.ensure_future(listener.accept())
        try:
            loop = asyncio.get_running_loop()
            record = await asyncio.wait_for(loop.sock_recv(silent, 64), 20)
            assert record[:1] == b"\x03", f"expected a REJECT record, got {record!r}"
            assert listener.rejected_count == 1
            assert isinstance(listener.listener.last_rejection, shmsock.Timeout)
            assert not accepting.done()
        finally:
            accepting.cancel()
            silent.close()
            listener.close()

    run(main())


def test_connect_runs_on_the_loop(name: str, server_keypair: shmsock.Keypair) -> None:
    """Both sides of the handshake run on the loop: no executor thread."""

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(NoExecutor())
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key, recv_timeout=7)
            assert client.stream.recv_timeout == 7
            await client.send(b"no threads")
            assert await server.recv() == b"no threads"
            client.close()
            server.close()

    run(main())


def test_connect_waits_for_its_server_on_the_loop(name: str, server_keypair: shmsock.Keypair) -> None:
    """``wait=``: a connect started before its server binds finds it, with
    no executor thread; the loop runs meanwhile. A wait that ends first is
    NotFound."""

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(NoExecutor())
        with pytest.raises(shmsock.NotFound):
            await aio.connect(name, server_key=server_keypair.public_key, wait=0.1)
        ticker = Ticker()
        try:
            connecting = asyncio.ensure_future(aio.connect(name, server_key=server_keypair.public_key, wait=30))
            await asyncio.sleep(0.2)
            assert not connecting.done()
            async with aio.bind(name, keypair=server_keypair) as listener:
                server = await asyncio.wait_for(listener.accept(), 10)
                client = await asyncio.wait_for(connecting, 10)
                await client.send(b"found")
                assert await server.recv(timeout=5) == b"found"
                client.close()
                server.close()
            assert ticker.ticks > 0, "the loop ran while the connect waited"
        finally:
            ticker.stop()

    run(main())


def _thread_names() -> List[str]:
    """The names of this process's threads, native ones included."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:
            pass  # the thread ended meanwhile
    return names


def test_close_with_a_full_ring_leaves_the_wait_to_a_thread(name: str, server_keypair: shmsock.Keypair) -> None:
    """A close whose CLOSE frame finds no room (the peer does not read) does
    not wait on the loop: a thread waits for room, and the peer still gets
    every message, then PeerClosed. With room, it closes at once."""

    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            sent: List[bytes] = []
            for message in (b"m" * 500, b""):  # the slack too, down to the last frame
                while True:
                    try:
                        client.stream.try_send(message)
                    except shmsock.WouldBlock:
                        break
                    sent.append(message)
            client.close()
            assert client.closed
            # (A new thread names itself once it runs.)
            for _ in range(500):
                if "shmsock-close" in _thread_names():
                    break
                await asyncio.sleep(0.01)
            assert "shmsock-close" in _thread_names(), "the close did not leave its wait to a thread"
            for message in sent:
                assert await server.recv(timeout=5) == message
            with pytest.raises(shmsock.PeerClosed):
                await server.recv(timeout=5)
            server.close()

    run(main())


def test_connect_to_a_silent_server_times_out(name: str, server_keypair: shmsock.Keypair) -> None:
    """A server that takes the connection and never answers: Timeout at the
    handshake deadline, on the loop, which keeps running meanwhile."""

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(NoExecutor())
        listener = shmsock.Listener.bind(name, keypair=server_keypair)  # never accepts
        ticker = Ticker()
        try:
            with pytest.raises(shmsock.Timeout, match="did not answer the handshake"):
                await aio.connect(name, server_key=server_keypair.public_key, handshake_timeout=0.3)
            assert ticker.ticks > 0, "the loop ran while the connect waited"
        finally:
            ticker.stop()
            listener.close()

    run(main())


def test_a_cancelled_connect_leaves(name: str, server_keypair: shmsock.Keypair) -> None:
    """Cancelling a connect closes its socket: the server sees the client go."""

    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            # A listener that is not accepting: the connect waits for its REPLY.
            connect = asyncio.ensure_future(aio.connect(name, server_key=server_keypair.public_key))
            await asyncio.sleep(0.05)
            connect.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connect
            # Now accepting: the cancelled client's handshake fails (it left),
            # and a new client is served.
            client, server = await pair(listener, server_keypair.public_key)
            for _ in range(200):
                if listener.rejected_count >= 1:
                    break
                await asyncio.sleep(0.01)
            assert listener.rejected_count == 1, "the cancelled client left"
            client.close()
            server.close()

    run(main())


def test_wraps_blocking_objects(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        listener = aio.Listener(shmsock.bind(name, keypair=server_keypair))
        client, server = await pair(listener, server_keypair.public_key)
        assert isinstance(client.stream, shmsock.Stream)
        assert client.peer_public_key == server_keypair.public_key
        assert server.peer_credentials.uid >= 0
        assert client.endpoint == name and not client.closed
        assert "aio.Stream" in repr(client)
        await client.send(b"s")
        await server.recv()
        assert client.stats.messages_sent == 1
        client.close()
        server.close()
        listener.close()

    run(main())


def test_looks_at_the_ring_follow_the_cores_spin_rule() -> None:
    # shmsock.aio asks the core when looking at a ring pays (wait::SpinHistory):
    # looks that keep missing stop; a probe now and then; a find resumes.
    from shmsock._shmsock import _SpinHistory

    spins = _SpinHistory()
    full = 30e-6
    assert spins.budget(full) == pytest.approx(full)
    for _ in range(4):
        spins.missed()
    budgets = [spins.budget(full) for _ in range(64)]
    assert budgets[:63] == [None] * 63
    probe = budgets[63]
    assert probe is not None and 0 < probe < full
    spins.found()
    assert spins.budget(full) == pytest.approx(full)
    assert spins.budget(0.0) is None
    with pytest.raises(ValueError):
        spins.budget(-1.0)


def test_large_messages_beyond_the_reassembly_bound_wait_their_turn(name: str, server_keypair: shmsock.Keypair) -> None:
    """4 KiB rings and a 10,000-byte bound: three 9,000-byte messages (several
    frames each) are gathered one at a time; a receive that is not woken when
    room comes back times out."""

    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair, ring_size=4096, max_reassembly_bytes=10_000) as listener:
            pairs = [await pair(listener, server_keypair.public_key) for _ in range(3)]
            messages = [bytes([i + 1]) * 9000 for i in range(3)]
            receiving = [asyncio.ensure_future(server.recv(timeout=10)) for _, server in pairs]
            await asyncio.gather(*(client.send(m) for (client, _), m in zip(pairs, messages)))
            assert await asyncio.gather(*receiving) == messages
            for client, server in pairs:
                client.close()
                server.close()

    run(main())
