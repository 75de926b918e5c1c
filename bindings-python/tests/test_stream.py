"""shmsock.Stream: echo of every size, buffers, timeouts, threads, the GIL,
peers that die, Ctrl-C, closing and garbage collection."""

from __future__ import annotations

import array
import gc
import os
import select
import signal
import threading
import time
import weakref
from typing import Callable, Dict, List

import pytest
from conftest import Child, EchoServer, connected_pair, wait_for

import shmsock

SIZES = [0, 1, 63, 64, 1000, 4095, 4096, 65536, 65537, 1 << 20, (1 << 20) + 7, 5 << 20]


def payload(n: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed) & 0xFF for i in range(256))
    return (block * (n // 256 + 1))[:n]


@pytest.mark.parametrize("size", SIZES)
def test_echo_sizes(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair, size: int) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        data = payload(size, size)
        stream.send(data, timeout=10)
        got = stream.recv(timeout=10)
        assert type(got) is bytes
        assert len(got) == size
        assert got == data


def test_echo_many_messages_in_flight(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        messages = [payload(n % 3000, n) for n in range(500)]
        received: List[bytes] = []
        reader = threading.Thread(target=lambda: received.extend(stream.recv(timeout=10) for _ in messages))
        reader.start()
        for m in messages:
            stream.send(m)
        reader.join(20)
        assert received == messages
        stats = stream.stats
        assert stats.messages_sent == stats.messages_received == 500
        assert stats.bytes_sent == stats.bytes_received == sum(map(len, messages))


def test_send_accepts_any_buffer(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        data = payload(10_000)
        sources: List[object] = [
            data,
            bytearray(data),
            memoryview(data),
            memoryview(data)[100:5000],
            memoryview(bytearray(data))[::2],  # not contiguous: copied
            array.array("I", range(1000)),
        ]
        for src in sources:
            stream.send(src)  # type: ignore[arg-type]
            expected = bytes(memoryview(src).cast("B")) if not isinstance(src, memoryview) else src.tobytes()  # type: ignore[arg-type]
            assert stream.recv(timeout=5) == expected


def test_recv_into(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        data = payload(3000)
        stream.send(data)
        small = bytearray(100)
        with pytest.raises(shmsock.BufferTooSmall) as info:
            stream.recv_into(small, timeout=5)
        assert info.value.needed == 3000
        assert isinstance(info.value, ValueError)
        buf = bytearray(4096)
        n = stream.recv_into(buf, timeout=5)  # the message was kept
        assert n == 3000 and buf[:n] == data
        stream.send(b"xyz")
        view = memoryview(bytearray(10))
        assert stream.recv_into(view[2:], timeout=5) == 3
        assert view.tobytes() == b"\0\0xyz\0\0\0\0\0"
        with pytest.raises(TypeError):
            stream.recv_into(b"read-only bytes")  # type: ignore[arg-type]


def test_try_recv_and_fileno(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        with pytest.raises(shmsock.WouldBlock) as info:
            stream.try_recv()
        assert isinstance(info.value, BlockingIOError)
        stream.try_send(b"ping")
        readable, _, _ = select.select([stream.fileno()], [], [], 5)
        assert readable, "the pollable fd did not become readable"
        deadline = time.monotonic() + 5
        while True:
            try:
                assert stream.try_recv() == b"ping"
                break
            except shmsock.WouldBlock:
                assert time.monotonic() < deadline
                select.select([stream.fileno()], [], [], 0.1)
        buf = bytearray(16)
        with pytest.raises(shmsock.WouldBlock):
            stream.try_recv_into(buf)


def test_properties(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    me = shmsock.Keypair.generate()
    with shmsock.connect(name, server_key=str(server_keypair.public_key), keypair=me) as stream:
        assert stream.peer_public_key == server_keypair.public_key
        assert stream.local_public_key == me.public_key
        assert stream.peer_credentials.pid == os.getpid()
        assert stream.peer_credentials.uid == os.getuid()
        assert stream.cipher in ("aegis-128l", "chacha20-poly1305")
        assert stream.backend == "memfd"
        assert stream.ring_size == 2 << 20  # the default ring: 2 MiB
        assert stream.role == "client"
        assert stream.endpoint == name
        assert not stream.closed
        assert name in repr(stream)
        assert wait_for(lambda: len(echo_server.streams) == 1)
        accepted = echo_server.streams[0]
        assert accepted.role == "server"
        assert accepted.peer_public_key == me.public_key


def test_options(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(
        name,
        server_key=bytes(server_keypair.public_key),
        ring_size=1 << 16,
        require_chacha=True,
        handshake_timeout=2,
        spin=0,
        recv_timeout=0.05,
    ) as stream:
        assert stream.ring_size == 1 << 16
        assert stream.cipher == "chacha20-poly1305"
        data = payload(200_000)  # larger than the ring: streams through it
        stream.send(data)
        assert stream.recv(timeout=10) == data
        with pytest.raises(shmsock.Timeout):
            stream.recv()  # the stream's recv_timeout
    with pytest.raises(ValueError):
        shmsock.connect(name, server_key=server_keypair.public_key, ring_size=1000)
    with pytest.raises(ValueError):
        shmsock.connect(name, server_key=server_keypair.public_key, handshake_timeout=0)


def test_timeouts(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        for timeout in (0, 0.01, 0.2):
            start = time.monotonic()
            with pytest.raises(shmsock.Timeout) as info:
                stream.recv(timeout=timeout)
            elapsed = time.monotonic() - start
            assert timeout <= elapsed + 0.005 and elapsed < timeout + 0.5
        assert isinstance(info.value, TimeoutError)
        assert info.value.code == "TIMEOUT" and info.value.numeric_code == 1
        assert "nothing was lost" in str(info.value)
        # A timed-out receive loses nothing.
        stream.send(b"after")
        assert stream.recv(timeout=5) == b"after"
        with pytest.raises(ValueError, match=">= 0"):
            stream.recv(timeout=-1)
        with pytest.raises(ValueError, match="NaN"):
            stream.recv(timeout=float("nan"))
        with pytest.raises(TypeError, match="number of seconds"):
            stream.recv(timeout="1")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            stream.recv(timeout=True)
        with pytest.raises(ValueError):
            stream.send(b"x", timeout=-0.5)
        # inf waits forever, like None; an int works.
        stream.send(b"inf", timeout=float("inf"))
        assert stream.recv(timeout=float("inf")) == b"inf"
        stream.send(b"int", timeout=1)
        assert stream.recv(timeout=1) == b"int"


def test_wrong_types(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        for bad in ("text", 123, None, [1, 2]):
            with pytest.raises(TypeError, match="bytes-like"):
                stream.send(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="server_key"):
        shmsock.connect(name, server_key=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keypair"):
        shmsock.connect(name, server_key=server_keypair.public_key, keypair="nope")  # type: ignore[arg-type]
    with pytest.raises(shmsock.InvalidKey):
        shmsock.connect(name, server_key="shmsock-pk:short")
    with pytest.raises(TypeError):
        shmsock.Stream()  # type: ignore[call-arg]


def test_message_too_large(name: str, server_keypair: shmsock.Keypair) -> None:
    server = EchoServer(name, server_keypair, max_message_size=1024)
    try:
        with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
            assert stream.peer_max_message_size == 1024
            stream.send(b"x" * 1024)
            assert stream.recv(timeout=5) == b"x" * 1024
            with pytest.raises(shmsock.MessageTooLarge, match="1024") as info:
                stream.send(b"x" * 1025)
            assert isinstance(info.value, ValueError)
            stream.send(b"still usable")
            assert stream.recv(timeout=5) == b"still usable"
    finally:
        server.close()


def test_connect_errors(name: str, server_keypair: shmsock.Keypair, echo_server: EchoServer) -> None:
    with pytest.raises(shmsock.NotFound) as nf:
        shmsock.connect(name + "-nobody", server_key=server_keypair.public_key)
    assert isinstance(nf.value, FileNotFoundError)
    with pytest.raises(shmsock.InvalidName) as bad:
        shmsock.connect("no/slashes", server_key=server_keypair.public_key)
    assert isinstance(bad.value, ValueError)


def test_wrong_server_key(echo_server: EchoServer, name: str) -> None:
    impostor = shmsock.Keypair.generate()
    with pytest.raises(shmsock.ServerKeyMismatch) as info:
        shmsock.connect(name, server_key=impostor.public_key, handshake_timeout=5)
    assert isinstance(info.value, ConnectionError)
    assert info.value.code == "SERVER_KEY_MISMATCH"
    assert str(info.value)


def test_closed_stream(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    stream = shmsock.connect(name, server_key=server_keypair.public_key)
    stream.close()
    stream.close()  # idempotent
    assert stream.closed
    assert "closed" in repr(stream)
    for call in (
        lambda: stream.send(b"x"),
        lambda: stream.recv(),
        lambda: stream.try_recv(),
        lambda: stream.fileno(),
        lambda: stream.stats,
        lambda: stream.peer_public_key,
    ):
        with pytest.raises(shmsock.Closed, match="closed"):
            call()


def test_peer_close_ends_iteration(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.bind(name, keypair=server_keypair) as listener:
        client, server = connected_pair(listener, server_keypair.public_key)
        for i in range(3):
            client.send(b"m%d" % i)
        client.close()
        assert list(server) == [b"m0", b"m1", b"m2"]
        with pytest.raises(shmsock.PeerClosed) as info:
            server.recv(timeout=1)
        assert isinstance(info.value, ConnectionError)
        with pytest.raises(shmsock.PeerClosed):
            server.send(b"late")
        server.close()


def test_close_wakes_blocked_thread(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    stream = shmsock.connect(name, server_key=server_keypair.public_key)
    caught: List[BaseException] = []

    def blocked() -> None:
        try:
            stream.recv()
        except BaseException as e:
            caught.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.2)
    stream.close()
    t.join(5)
    assert not t.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], shmsock.Closed)


def test_threads_sending_at_once(name: str, server_keypair: shmsock.Keypair) -> None:
    threads, per_thread = 4, 300
    with shmsock.bind(name, keypair=server_keypair) as listener:
        client, server = connected_pair(listener, server_keypair.public_key, ring_size=1 << 14)

        def sender(tid: int) -> None:
            for i in range(per_thread):
                client.send(b"%d:%d:" % (tid, i) + payload(i % 700, tid))

        workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        last: Dict[int, int] = {}
        for _ in range(threads * per_thread):
            message = server.recv(timeout=10)
            tid_s, i_s, rest = message.split(b":", 2)
            tid, i = int(tid_s), int(i_s)
            assert rest == payload(i % 700, tid), "a message was torn or mixed"
            assert last.get(tid, -1) == i - 1, "messages of one thread arrived out of order"
            last[tid] = i
        for w in workers:
            w.join(10)
        assert last == {t: per_thread - 1 for t in range(threads)}
        client.close()
        server.close()


def test_blocking_recv_releases_the_gil(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        finished = {}

        def blocked() -> None:
            try:
                stream.recv(timeout=1.5)
            except shmsock.Timeout:
                pass
            finished["recv"] = time.monotonic()

        t = threading.Thread(target=blocked)
        t.start()
        time.sleep(0.05)
        # Pure-Python work: it can only run while the other thread waits
        # without the GIL.
        start = time.monotonic()
        count = 0
        while time.monotonic() - start < 0.3:
            count += 1
        finished["work"] = time.monotonic()
        t.join(5)
        assert count > 1000
        assert finished["work"] < finished["recv"] - 0.5, "the Python thread could not run during recv"


def test_blocking_accept_releases_the_gil(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.bind(name, keypair=server_keypair) as listener:
        done = {}

        def blocked() -> None:
            with pytest.raises(shmsock.Timeout):
                listener.accept(timeout=1.0)
            done["accept"] = time.monotonic()

        t = threading.Thread(target=blocked)
        t.start()
        time.sleep(0.05)
        start = time.monotonic()
        while time.monotonic() - start < 0.2:
            pass
        done["work"] = time.monotonic()
        t.join(5)
        assert done["work"] < done["accept"] - 0.4


CHILD_CLIENT = """
import sys, time, shmsock
name, key = sys.argv[1], sys.argv[2]
stream = shmsock.connect(name, server_key=key)
stream.send(b"hello from child")
print("ready", flush=True)
time.sleep(60)
"""


def test_peer_process_killed_gives_peer_gone(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    with shmsock.bind(name, keypair=server_keypair) as listener:
        c = child(CHILD_CLIENT, name, server_keypair.public_key.text)
        stream = listener.accept(timeout=10)
        c.wait_line("ready")
        assert stream.recv(timeout=5) == b"hello from child"
        assert stream.peer_credentials.pid == c.proc.pid
        caught: List[BaseException] = []

        def blocked() -> None:
            try:
                stream.recv()
            except BaseException as e:
                caught.append(e)

        t = threading.Thread(target=blocked)
        t.start()
        time.sleep(0.1)
        killed_at = time.monotonic()
        c.proc.kill()
        t.join(5)
        assert not t.is_alive()
        assert len(caught) == 1 and isinstance(caught[0], shmsock.PeerGone), caught
        assert time.monotonic() - killed_at < 2.0
        assert isinstance(caught[0], ConnectionResetError)
        with pytest.raises(shmsock.PeerGone):
            stream.send(b"to nobody")
        stream.close()


CHILD_SERVER = """
import sys, time, shmsock
name = sys.argv[1]
keypair = shmsock.Keypair.generate()
listener = shmsock.bind(name, keypair=keypair)
print("key", keypair.public_key.text, flush=True)
stream = listener.accept(timeout=20)
print("accepted", flush=True)
time.sleep(60)
"""


def test_server_process_killed_while_client_waits(name: str, child: Callable[..., Child]) -> None:
    c = child(CHILD_SERVER, name)
    key = c.wait_line("key").split()[1]
    stream = shmsock.connect(name, server_key=key)
    c.wait_line("accepted")
    threading.Timer(0.2, c.proc.kill).start()
    start = time.monotonic()
    with pytest.raises(shmsock.PeerGone):
        stream.recv(timeout=10)
    assert time.monotonic() - start < 3.0
    stream.close()


CHILD_CTRL_C = """
import sys, shmsock
name, key = sys.argv[1], sys.argv[2]
stream = shmsock.connect(name, server_key=key)
print("blocking", flush=True)
stream.recv()
print("recv returned", flush=True)
"""


def test_ctrl_c_interrupts_blocking_recv(
    echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    c = child(CHILD_CTRL_C, name, server_keypair.public_key.text)
    c.wait_line("blocking")
    time.sleep(0.3)  # well inside the blocking recv
    sent = time.monotonic()
    c.proc.send_signal(signal.SIGINT)
    result = c.finish(timeout=10)
    elapsed = time.monotonic() - sent
    assert "KeyboardInterrupt" in result.stderr, result.stderr
    assert result.returncode != 0
    assert elapsed < 1.5, f"Ctrl-C took {elapsed:.2f}s"


def test_garbage_collected_stream_is_closed(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.bind(name, keypair=server_keypair) as listener:
        client, server = connected_pair(listener, server_keypair.public_key)
        client.send(b"last words")
        ref = weakref.ref(client)
        del client
        gc.collect()
        assert ref() is None
        assert server.recv(timeout=5) == b"last words"
        with pytest.raises(shmsock.PeerClosed):
            server.recv(timeout=5)
        server.close()


def test_zero_length_messages_keep_boundaries(
    echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair
) -> None:
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        for m in (b"", b"a", b"", b""):
            stream.send(m)
        assert [stream.recv(timeout=5) for _ in range(4)] == [b"", b"a", b"", b""]


def test_recv_now_gives_none_instead_of_raising(name: str, server_keypair: shmsock.Keypair) -> None:
    """The event loops' zero-timeout look: None when nothing is there, the
    message when it is, the end as the usual exception."""
    with shmsock.Listener.bind(name, keypair=server_keypair) as listener:
        client, server = connected_pair(listener, server_keypair.public_key)
        with client, server:
            assert client._recv_now() is None
            server.send(b"now")
            got = None
            deadline = time.monotonic() + 10
            while got is None and time.monotonic() < deadline:
                got = client._recv_now()
            assert got == b"now"
            assert client._recv_now() is None
            server.close()
            with pytest.raises(shmsock.PeerClosed):
                while time.monotonic() < deadline:
                    client._recv_now()
        with pytest.raises(shmsock.Closed):
            client._recv_now()


def test_hand_over_looks_without_taking(name: str, server_keypair: shmsock.Keypair) -> None:
    """The event loops' hand-over before they sleep (``_hand_over``): a bool,
    False when nothing is there, and it never takes a message; Closed once
    the stream is closed."""
    with shmsock.Listener.bind(name, keypair=server_keypair) as listener:
        client, server = connected_pair(listener, server_keypair.public_key)
        with client, server:
            assert client._hand_over() is False
            for i in range(4):
                server.send(bytes([i]) * 10)
                assert isinstance(client._hand_over(), bool)
                assert client.recv(timeout=5) == bytes([i]) * 10
            assert client._hand_over() is False
        with pytest.raises(shmsock.Closed):
            client._hand_over()
