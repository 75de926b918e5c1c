"""shmsock.aio on the event loop: one registration per stream for its life,
receive timeouts and cancellations that lose nothing, sends larger than the
ring, ``async with aio.connect(...)``, ``wait=``, closing with pending calls."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List, Tuple

import pytest

import shmsock
from shmsock import aio


def run(coro: Any, timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def pair(listener: aio.Listener, key: shmsock.PublicKey, **options: Any) -> Tuple[aio.Stream, aio.Stream]:
    client, server = await asyncio.gather(aio.connect(listener.name, server_key=key, **options), listener.accept())
    return client, server


def test_steady_state_round_trips_register_the_fd_once(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        calls: List[str] = []
        add, remove = loop.add_reader, loop.remove_reader

        def counting_add(fd: int, *args: Any) -> None:
            calls.append(f"add {fd}")
            add(fd, *args)

        def counting_remove(fd: int) -> bool:
            calls.append(f"remove {fd}")
            return remove(fd)

        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            loop.add_reader = counting_add  # type: ignore[method-assign]
            loop.remove_reader = counting_remove  # type: ignore[method-assign]
            try:

                async def echo() -> None:
                    async for message in server:
                        await server.send(message)

                task = asyncio.ensure_future(echo())
                for _ in range(300):
                    await client.send(b"x" * 64)
                    assert await client.recv() == b"x" * 64
                for_client = [c for c in calls if c.endswith(f" {client.fileno()}")]
                for_server = [c for c in calls if c.endswith(f" {server.fileno()}")]
                assert for_client == [f"add {client.fileno()}"], calls
                assert for_server == [f"add {server.fileno()}"], calls
                client.close()
                await asyncio.wait_for(task, 10)
                server.close()
            finally:
                loop.add_reader, loop.remove_reader = add, remove  # type: ignore[method-assign]

    run(main())


def test_recv_timeout_and_cancel_lose_nothing(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            with pytest.raises(shmsock.Timeout):
                await server.recv(timeout=0.05)
            with pytest.raises(shmsock.Timeout):
                await server.recv(timeout=0)
            # A receive cancelled while its message is being handed over.
            pending = asyncio.ensure_future(server.recv())
            await asyncio.sleep(0)
            await client.send(b"one")
            await client.send(b"two")
            await asyncio.sleep(0.05)
            pending.cancel()
            got = []
            try:
                got.append(await pending)
            except asyncio.CancelledError:
                pass
            got.append(await server.recv(timeout=5))
            if len(got) < 2:
                got.append(await server.recv(timeout=5))
            assert got == [b"one", b"two"]
            # wait_for around recv: the message still arrives later.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(server.recv(), 0.05)
            await client.send(b"three")
            assert await server.recv(timeout=5) == b"three"
            with pytest.raises(TypeError):
                await server.recv(timeout="soon")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await server.recv(timeout=-1)
            client.close()
            server.close()

    run(main())


def test_connect_recv_timeout_is_honoured(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key, recv_timeout=0.05)
            assert client.stream.recv_timeout == pytest.approx(0.05)
            with pytest.raises(shmsock.Timeout):
                await client.recv()
            await server.send(b"late")
            assert await client.recv() == b"late"
            client.close()
            server.close()

    run(main())


def test_async_with_connect_without_await(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            accepted = asyncio.ensure_future(listener.accept())
            async with aio.connect(name, server_key=server_keypair.public_key) as client:
                server = await accepted
                await client.send(b"hi")
                assert await server.recv(timeout=5) == b"hi"
            assert client.closed
            with pytest.raises(shmsock.PeerClosed):
                await server.recv(timeout=5)
            server.close()

    run(main())


def test_connect_waits_for_the_server(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        with pytest.raises(shmsock.NotFound):
            await aio.connect(name, server_key=server_keypair.public_key)
        connecting = asyncio.ensure_future(aio.connect(name, server_key=server_keypair.public_key, wait=30))
        await asyncio.sleep(0.3)
        assert not connecting.done()
        async with aio.bind(name, keypair=server_keypair) as listener:
            server = await listener.accept()
            client = await asyncio.wait_for(connecting, 10)
            client.close()
            server.close()

    run(main())


def test_blocking_connect_waits_for_the_server(name: str, server_keypair: shmsock.Keypair) -> None:
    listeners: List[shmsock.Listener] = []

    def bind_later() -> None:
        time.sleep(0.3)
        listeners.append(shmsock.Listener.bind(name, keypair=server_keypair))
        listeners[0].accept(timeout=10).close()

    t = threading.Thread(target=bind_later)
    t.start()
    with shmsock.connect(name, server_key=server_keypair.public_key, wait=30):
        pass
    t.join(10)
    listeners[0].close()
    with pytest.raises(TypeError):
        shmsock.connect(name, server_key=server_keypair.public_key, wait="soon")  # type: ignore[arg-type]


def test_sends_larger_than_the_ring_complete_in_order(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair, ring_size=64 * 1024) as listener:
            client, server = await pair(listener, server_keypair.public_key, ring_size=64 * 1024)
            messages = [bytes([i]) * (200_000 + i) for i in range(6)]
            sends = asyncio.gather(*(client.send(m) for m in messages))
            got = [await server.recv(timeout=30) for _ in messages]
            await asyncio.wait_for(sends, 30)
            assert got == messages
            # Both directions at once, each larger than the ring.
            a = asyncio.gather(client.send(b"a" * 500_000), server.send(b"b" * 500_000))
            assert await server.recv(timeout=30) == b"a" * 500_000
            assert await client.recv(timeout=30) == b"b" * 500_000
            await asyncio.wait_for(a, 30)
            client.close()
            server.close()

    run(main())


def test_close_fails_pending_calls_with_closed(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair, ring_size=16 * 1024) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            receives = [asyncio.ensure_future(client.recv()) for _ in range(3)]
            send = asyncio.ensure_future(client.send(b"z" * 100_000))
            await asyncio.sleep(0.05)
            client.close()
            for r in receives:
                with pytest.raises(shmsock.Closed) as closed:
                    await r
                assert closed.value.code == "CLOSED"
            with pytest.raises(shmsock.Closed) as closed:
                await send
            assert closed.value.code == "CLOSED"
            with pytest.raises(shmsock.Closed):
                await client.recv()
            server.close()

    run(main())


def test_recv_into_keeps_a_message_too_large(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            await client.send(b"0123456789")
            small = bytearray(4)
            with pytest.raises(shmsock.BufferTooSmall) as info:
                await server.recv_into(small, timeout=5)
            assert info.value.needed == 10
            big = bytearray(16)
            assert await server.recv_into(big, timeout=5) == 10
            assert bytes(big[:10]) == b"0123456789"
            # The same when the receive waits before the message arrives.
            waiting = asyncio.ensure_future(server.recv_into(small, timeout=5))
            await asyncio.sleep(0)
            await client.send(b"abcdefghij")
            with pytest.raises(shmsock.BufferTooSmall):
                await waiting
            assert await server.recv(timeout=5) == b"abcdefghij"
            # And at the end: PeerClosed, for recv_into as for recv.
            client.close()
            with pytest.raises(shmsock.PeerClosed):
                await server.recv_into(big, timeout=5)
            with pytest.raises(shmsock.PeerClosed):
                await server.recv(timeout=5)
            client.close()
            server.close()

    run(main())


SHUTDOWN_CHILD = """
import asyncio, sys
import shmsock
from shmsock import aio

async def main() -> None:
    key = shmsock.Keypair.generate()
    listener = aio.bind(sys.argv[1], keypair=key)
    accepted = asyncio.ensure_future(listener.accept())
    client = await aio.connect(sys.argv[1], server_key=key.public_key, ring_size=16384)
    server = await accepted
    asyncio.ensure_future(server.recv())
    asyncio.ensure_future(client.send(b"z" * 100_000))
    await asyncio.sleep(0.05)
    print("open", flush=True)
    if sys.argv[2] == "exit":
        sys.exit(0)

asyncio.run(main())
print("returned", flush=True)
"""


@pytest.mark.parametrize("how", ["exit", "return"])
def test_interpreter_shutdown_with_open_streams(name: str, runtime_dir: Any, how: str) -> None:
    import subprocess
    import sys

    before = sorted(p.name for p in runtime_dir.iterdir())
    result = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_CHILD, name, how], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "open" in result.stdout
    assert sorted(p.name for p in runtime_dir.iterdir()) == before, "no socket file left behind"


def test_wrong_argument_types_raise_type_error(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            with pytest.raises(TypeError):
                await client.send(42)
            with pytest.raises(TypeError):
                await client.recv_into(b"read-only")
            with pytest.raises(TypeError):
                await aio.connect(name, server_key=server_keypair.public_key, wait="soon")  # type: ignore[arg-type]
            # Bad timeouts are refused before anything is taken: the message
            # waiting is still there for the next receive.
            await server.send(b"kept")
            with pytest.raises(TypeError):
                await client.recv(timeout="1")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await client.recv(timeout=True)
            with pytest.raises(ValueError):
                await client.recv(timeout=-1)
            with pytest.raises(ValueError):
                await client.recv(timeout=float("nan"))
            assert await client.recv(timeout=5) == b"kept"
            client.close()
            server.close()

    run(main())


def test_a_full_ring_does_not_starve_other_tasks(name: str, server_keypair: shmsock.Keypair) -> None:
    """Receives that find their message at once do not wait on the loop; every
    so often one lets the loop run the other tasks anyway."""

    async def main() -> None:
        async with aio.bind(name, keypair=server_keypair) as listener:
            client, server = await pair(listener, server_keypair.public_key)
            count = 300
            for i in range(count):
                await server.send(b"%d" % i)  # all of them fit in the ring
            ticks = 0
            done = False

            async def ticker() -> None:
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            other = asyncio.ensure_future(ticker())
            await asyncio.sleep(0)
            before = ticks
            received = [await client.recv() for _ in range(count)]
            during = ticks - before
            done = True
            await other
            assert received == [b"%d" % i for i in range(count)]
            # One turn at least every 64 receives (the exact rate is not the point).
            assert during >= count // 64 - 1, during
            client.close()
            server.close()

    run(main())
