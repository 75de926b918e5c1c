"""shmsock.Client: callbacks, sending from threads, errors raised in
callbacks, closing and garbage collection."""

from __future__ import annotations

import gc
import queue
import sys
import threading
import weakref
from typing import Any, List, Optional

import pytest
from conftest import EchoServer

import shmsock


def test_callbacks(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    data: queue.Queue[bytes] = queue.Queue()
    closes: queue.Queue[Optional[shmsock.Error]] = queue.Queue()
    client = shmsock.Client(
        name,
        server_key=server_keypair.public_key,
        on_data=data.put,
        on_close=closes.put,
    )
    with client:
        assert client.server_public_key == server_keypair.public_key
        client.send(b"one")
        client.write(bytearray(b"two"))
        client.try_send(memoryview(b"three"))
        assert [data.get(timeout=5) for _ in range(3)] == [b"one", b"two", b"three"]
        big = b"y" * (3 << 20)
        client.send(big)
        assert data.get(timeout=10) == big
        assert client.stats.messages_sent == 4
    # close() returns after on_close ran.
    assert closes.get_nowait() is None
    assert client.closed
    with pytest.raises(shmsock.Closed):
        client.send(b"late")
    client.close()  # idempotent


def test_threads_sending_through_one_client(
    echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair
) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    with shmsock.Client(name, server_key=server_keypair.public_key, on_data=got.put) as client:

        def sender(t: int) -> None:
            for i in range(100):
                client.send(b"%d-%d" % (t, i))

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        received = sorted(got.get(timeout=5) for _ in range(400))
        assert received == sorted(b"%d-%d" % (t, i) for t in range(4) for i in range(100))


def test_server_closing_reaches_on_close(name: str, server_keypair: shmsock.Keypair) -> None:
    closes: queue.Queue[Optional[shmsock.Error]] = queue.Queue()
    server = EchoServer(name, server_keypair)
    client = shmsock.Client(name, server_key=server_keypair.public_key, on_close=closes.put)
    try:
        assert len(server.streams) <= 1
        server.close()
        for s in server.streams:
            s.close()
        reason = closes.get(timeout=5)
        assert reason is None or isinstance(reason, (shmsock.PeerGone, shmsock.PeerClosed))
    finally:
        client.close()


def test_exception_in_on_data_goes_to_on_error(
    echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair
) -> None:
    errors: queue.Queue[shmsock.Error] = queue.Queue()
    seen: List[bytes] = []

    def on_data(data: bytes) -> None:
        seen.append(data)
        if data == b"bad":
            raise ValueError("bad message")

    with shmsock.Client(name, server_key=server_keypair.public_key, on_data=on_data, on_error=errors.put) as client:
        client.send(b"bad")
        error = errors.get(timeout=5)
        assert isinstance(error, shmsock.CallbackError) and isinstance(error.__cause__, ValueError)
        assert "on_data" in str(error) and "bad message" in str(error)
        client.send(b"good")  # the client goes on
        got = threading.Event()
        for _ in range(500):
            if b"good" in seen:
                got.set()
                break
            threading.Event().wait(0.01)
        assert got.is_set()


def test_exception_in_on_error_is_reported(
    echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: queue.Queue[Any] = queue.Queue()
    monkeypatch.setattr(sys, "unraisablehook", lambda info: reported.put(info))

    def on_data(data: bytes) -> None:
        raise RuntimeError("first")

    def on_error(error: shmsock.Error) -> None:
        raise RuntimeError("second")

    with shmsock.Client(name, server_key=server_keypair.public_key, on_data=on_data, on_error=on_error) as client:
        client.send(b"x")
        messages = {str(reported.get(timeout=5).exc_value), str(reported.get(timeout=5).exc_value)}
        assert messages == {"first", "second"}


def test_close_from_on_data(echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair) -> None:
    closed = threading.Event()
    holder: List[shmsock.Client] = []

    def on_data(data: bytes) -> None:
        holder[0].close()

    client = shmsock.Client(
        name, server_key=server_keypair.public_key, on_data=on_data, on_close=lambda r: closed.set()
    )
    holder.append(client)
    client.send(b"x")
    assert closed.wait(5)
    assert client.closed


def test_connect_errors(name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(shmsock.NotFound):
        shmsock.Client(name, server_key=server_keypair.public_key)
    with pytest.raises(TypeError, match="on_close must be callable"):
        shmsock.Client(name, server_key=server_keypair.public_key, on_close="x")  # type: ignore[arg-type]


class Session:
    def __init__(self, name: str, key: shmsock.PublicKey) -> None:
        self.client = shmsock.Client(name, server_key=key, on_data=self.on_data)

    def on_data(self, data: bytes) -> None:
        pass


def test_garbage_collected_client_is_closed(
    echo_server: EchoServer, name: str, server_keypair: shmsock.Keypair
) -> None:
    session = Session(name, server_keypair.public_key)
    session.client.send(b"hi")
    ref = weakref.ref(session.client)
    del session
    gc.collect()
    assert ref() is None, "the client was not collected"


def test_client_waits_for_the_server(name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(shmsock.NotFound):
        shmsock.Client(name, server_key=server_keypair.public_key, wait=0.1)
    got: queue.Queue[bytes] = queue.Queue()
    clients: List[shmsock.Client] = []
    connecting = threading.Thread(
        target=lambda: clients.append(
            shmsock.Client(name, server_key=server_keypair.public_key, on_data=got.put, wait=30)
        )
    )
    connecting.start()
    server = EchoServer(name, server_keypair)
    try:
        connecting.join(30)
        assert not connecting.is_alive() and len(clients) == 1
        with clients[0] as client:
            client.send(b"hello")
            assert got.get(timeout=10) == b"hello"
    finally:
        server.close()
