"""shmsock.aio publish/subscribe: async subscribers registered with the loop
once, timeouts and cancellation that lose nothing, reliable publishes that do
not block the loop, the end of a topic, closing."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any, Callable, List

import pytest
from conftest import Child, NoExecutor

import shmsock
from shmsock import aio


def run(coro: Any, timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


CHILD_SUBSCRIBER = """
import asyncio, hashlib, sys
from shmsock import aio

async def main() -> None:
    async with aio.subscribe(sys.argv[1], server_key=sys.argv[2], recv_timeout=20) as sub:
        print("subscribed", flush=True)
        digest = hashlib.sha256()
        count = 0
        async for message in sub:
            digest.update(len(message).to_bytes(4, "little") + message)
            count += 1
        print(count, sub.lost, digest.hexdigest(), flush=True)

asyncio.run(main())
"""


def test_round_trip_with_async_subscribers_here_and_in_another_process(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    messages = [bytes((i * 13 + j) & 0xFF for j in range((i * 997) % 5000)) for i in range(300)]
    digest = hashlib.sha256()
    for m in messages:
        digest.update(len(m).to_bytes(4, "little") + m)
    other = child(CHILD_SUBSCRIBER, name, server_keypair.public_key.text)

    async def main() -> None:
        async with aio.Publisher.bind(name, keypair=server_keypair) as pub:
            local = [await aio.subscribe(name, server_key=server_keypair.public_key) for _ in range(2)]
            await asyncio.get_running_loop().run_in_executor(None, other.wait_line, "subscribed")
            await pub.wait_for_subscribers(3, timeout=10)

            async def read_all(sub: aio.Subscriber) -> List[bytes]:
                async with sub:
                    return [m async for m in sub]

            readers = [asyncio.ensure_future(read_all(s)) for s in local]
            for m in messages:
                await pub.publish(m)
            pub.close()
            for r in readers:
                assert await r == messages
        result = await asyncio.get_running_loop().run_in_executor(None, other.finish, 30)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["300", "0", digest.hexdigest()]

    run(main())


def test_steady_state_never_registers_the_fd_again(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        calls: List[str] = []
        add, remove = loop.add_reader, loop.remove_reader

        def counting_add(fd: int, callback: Any, *args: Any) -> None:
            calls.append(f"add {fd}")
            add(fd, callback, *args)

        def counting_remove(fd: int) -> bool:
            calls.append(f"remove {fd}")
            return remove(fd)

        with shmsock.Publisher.bind(name, keypair=server_keypair, policy="latest") as pub:
            sub = await aio.subscribe(name, server_key=server_keypair.public_key)
            pub.wait_for_subscribers(1, timeout=5)
            loop.add_reader = counting_add  # type: ignore[method-assign]
            loop.remove_reader = counting_remove  # type: ignore[method-assign]
            try:
                pending = asyncio.ensure_future(sub.recv())
                await asyncio.sleep(0)
                for i in range(300):
                    pub.publish(b"%d" % i)
                    assert await pending == b"%d" % i
                    pending = asyncio.ensure_future(sub.recv())
                    await asyncio.sleep(0)
                pending.cancel()
                assert calls == [], calls  # registered when subscribing, and for good
            finally:
                loop.add_reader, loop.remove_reader = add, remove  # type: ignore[method-assign]
                sub.close()

    run(main())


def test_recv_timeout_and_cancel_lose_nothing(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.Publisher.bind(name, keypair=server_keypair, policy="latest") as pub:
            async with aio.subscribe(name, server_key=server_keypair.public_key, recv_timeout=0.05) as sub:
                await pub.wait_for_subscribers(1, timeout=5)
                with pytest.raises(shmsock.Timeout):
                    await sub.recv()  # the subscriber's recv_timeout
                with pytest.raises(shmsock.Timeout):
                    await sub.recv(timeout=0)
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(sub.recv(timeout=None), 0.05)
                await pub.publish(b"kept")
                assert await sub.recv(timeout=5) == b"kept"
                with pytest.raises(TypeError):
                    await sub.recv(timeout="1")  # type: ignore[arg-type]
                with pytest.raises(ValueError):
                    await sub.recv(timeout=-1)
                # Fewer than the ring's 64 slots, published while nobody waits:
                # read ahead (a latest publish never yields) and handed out in order.
                for i in range(50):
                    await pub.publish(b"%d" % i)
                await asyncio.sleep(0.01)
                got = [await sub.recv(timeout=5) for _ in range(50)]
                assert got == [b"%d" % i for i in range(50)]
                await pub.publish(b"into")
                buf = bytearray(8)
                assert buf[: await sub.recv_into(buf, timeout=5)] == b"into"
                assert sub.lost == 0 and sub.received == 52

    run(main())


def test_reliable_publish_waits_without_blocking_the_loop(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.Publisher.bind(name, keypair=server_keypair, slots=4, reliable_timeout=0.5) as pub:
            # A subscriber that never reads (blocking, never wrapped).
            stalled = shmsock.subscribe(name, server_key=server_keypair.public_key)
            reader = await aio.subscribe(name, server_key=server_keypair.public_key, recv_timeout=10)
            await pub.wait_for_subscribers(2, timeout=5)
            for i in range(4):
                await pub.publish(b"%d" % i)
            # The ring is full of messages the stalled subscriber holds: the
            # next publish waits for it (0.5 s), and the loop runs meanwhile.
            publishing = asyncio.ensure_future(pub.publish(b"4"))
            meanwhile = asyncio.ensure_future(asyncio.sleep(0))
            done, _ = await asyncio.wait([publishing, meanwhile], return_when=asyncio.FIRST_COMPLETED)
            assert meanwhile in done and publishing not in done
            await publishing
            assert pub.dropped_count == 1 and pub.subscriber_count == 1
            assert [await reader.recv() for _ in range(5)] == [b"%d" % i for i in range(5)]
            reader.close()
            stalled.close()

    run(main())


def test_a_full_topic_publishes_when_a_subscriber_reads_without_a_thread(
    name: str, server_keypair: shmsock.Keypair
) -> None:
    async def main() -> None:
        async with aio.Publisher.bind(name, keypair=server_keypair, slots=2, reliable_timeout=60) as pub:
            sub = shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5)
            await pub.wait_for_subscribers(1, timeout=5)
            await pub.publish(b"0")
            await pub.publish(b"1")
            threads = threading.active_count()
            publishing = asyncio.ensure_future(pub.publish(b"2"))
            await asyncio.sleep(0.05)
            assert not publishing.done(), "the ring is full: the publish waits"
            assert threading.active_count() == threads, "waiting takes no thread"
            assert sub.recv() == b"0"  # the subscriber moves on: the publisher's fd says so
            await asyncio.wait_for(publishing, 5)
            assert (pub.dropped_count, pub.sequence) == (0, 3)
            waiting = asyncio.ensure_future(pub.publish(b"3"))
            await asyncio.sleep(0)
            pub.close()
            with pytest.raises(shmsock.Closed):
                await waiting
            sub.close()

    run(main())


def test_end_of_topic_and_closing(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        pub = aio.Publisher.bind(name, keypair=server_keypair)
        sub = await aio.subscribe(name, server_key=server_keypair.public_key)
        other = await aio.subscribe(name, server_key=server_keypair.public_key)
        await pub.wait_for_subscribers(2, timeout=5)
        waiting = asyncio.ensure_future(other.recv())
        await asyncio.sleep(0)
        other.close()
        other.close()
        with pytest.raises(shmsock.Closed):
            await waiting
        with pytest.raises(shmsock.Closed):
            await other.recv()
        await pub.publish(b"last")
        pending = asyncio.ensure_future(sub.recv())
        assert await pending == b"last"
        ending = asyncio.ensure_future(sub.recv())
        await asyncio.sleep(0)
        pub.close()
        pub.close()
        with pytest.raises(shmsock.PeerClosed):
            await ending
        assert [m async for m in sub] == []
        with pytest.raises(shmsock.Closed):
            await pub.publish(b"x")
        sub.close()
        assert sub.closed and pub.closed
        assert "aio.Subscriber" in repr(sub) and "aio.Publisher" in repr(pub)

    run(main())


def test_subscribe_errors(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        with pytest.raises(shmsock.NotFound):
            await aio.subscribe(name, server_key=server_keypair.public_key)
        async with aio.Publisher.bind(name, keypair=server_keypair, max_message_size=100) as pub:
            with pytest.raises(shmsock.ServerKeyMismatch):
                async with aio.subscribe(name, server_key=shmsock.Keypair.generate().public_key):
                    pass
            with pytest.raises(shmsock.MessageTooLarge):
                await pub.publish(bytes(101))
            assert pub.sequence == 0

    run(main())


def test_concurrent_reliable_publishes_keep_their_order(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        async with aio.Publisher.bind(name, keypair=server_keypair, slots=8) as pub:
            async with aio.subscribe(name, server_key=server_keypair.public_key, recv_timeout=10) as sub:
                await pub.wait_for_subscribers(1, timeout=5)
                # More than the ring and the read-ahead hold: read while publishing.
                reading = asyncio.gather(*(sub.recv() for _ in range(200)))
                await asyncio.gather(*(pub.publish(b"%d" % i) for i in range(200)))
                assert await reading == [b"%d" % i for i in range(200)]
                assert pub.sequence == 200 and pub.dropped_count == 0

    run(main())


def test_publisher_killed_async_subscriber_gets_an_error(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child], tmp_path: Any
) -> None:
    import os
    import signal

    key_file = tmp_path / "pub.key"
    server_keypair.save(key_file)
    publisher = child(
        """
        import sys, time, shmsock
        pub = shmsock.Publisher.bind(sys.argv[1], keypair=shmsock.Keypair.load(sys.argv[2]))
        print("bound", flush=True)
        pub.wait_for_subscribers(1, timeout=10)
        pub.publish(b"first")
        print("published", flush=True)
        time.sleep(60)
        """,
        name,
        str(key_file),
    )
    publisher.wait_line("bound")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with aio.subscribe(name, server_key=server_keypair.public_key, recv_timeout=20) as sub:
            await loop.run_in_executor(None, publisher.wait_line, "published")
            assert await sub.recv() == b"first"
            pending = asyncio.ensure_future(sub.recv())
            await asyncio.sleep(0)
            os.kill(publisher.proc.pid, signal.SIGKILL)
            with pytest.raises((shmsock.PeerGone, shmsock.PeerClosed)):
                await pending  # woken by the loop well before the 20 s timeout

    run(main(), timeout=30)


def test_subscribe_waits_for_the_publisher(name: str, server_keypair: shmsock.Keypair) -> None:
    """The subscription, and ``wait`` for a publisher that is not there yet,
    run on the loop: no executor thread."""

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(NoExecutor())
        with pytest.raises(shmsock.NotFound):
            await aio.subscribe(name, server_key=server_keypair.public_key, wait=0.1)
        subscribing = asyncio.ensure_future(aio.subscribe(name, server_key=server_keypair.public_key, wait=30))
        await asyncio.sleep(0.1)  # (it may or may not have tried yet: either way it must connect)
        async with aio.Publisher.bind(name, keypair=server_keypair) as pub:
            async with await asyncio.wait_for(subscribing, 30) as sub:
                await pub.publish(b"hello")
                assert await sub.recv(timeout=10) == b"hello"

    run(main())


def test_wait_for_subscribers_runs_on_the_loop(name: str, server_keypair: shmsock.Keypair) -> None:
    """``wait_for_subscribers`` watches the membership descriptor: no executor;
    Timeout when too few came, done when they did."""

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(NoExecutor())
        async with aio.Publisher.bind(name, keypair=server_keypair) as pub:
            with pytest.raises(shmsock.Timeout, match="0 of 1 subscribers"):
                await pub.wait_for_subscribers(1, timeout=0.1)
            waiting = asyncio.ensure_future(pub.wait_for_subscribers(2, timeout=30))
            async with aio.subscribe(name, server_key=server_keypair.public_key):
                await asyncio.sleep(0.05)
                assert not waiting.done()
                async with aio.subscribe(name, server_key=server_keypair.public_key):
                    await asyncio.wait_for(waiting, 30)
                    assert pub.subscriber_count == 2
            with pytest.raises(TypeError):
                await pub.wait_for_subscribers(1, timeout="soon")  # type: ignore[arg-type]

    run(main())
