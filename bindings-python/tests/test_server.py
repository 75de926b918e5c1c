"""shmsock.Server and its Connections: callbacks, replies, errors raised in
callbacks, closing and garbage collection."""

from __future__ import annotations

import gc
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest
from conftest import wait_for

import shmsock


class Recorder:
    """Callbacks that record every event into a queue."""

    def __init__(self) -> None:
        self.events: queue.Queue[Tuple[Any, ...]] = queue.Queue()
        self.threads: List[str] = []

    def on_connect(self, conn: shmsock.Connection) -> None:
        self.threads.append(threading.current_thread().name)
        self.events.put(("connect", conn))

    def on_data(self, conn: shmsock.Connection, data: bytes) -> None:
        self.events.put(("data", conn, data))
        conn.send(data.upper())

    def on_error(self, conn: Optional[shmsock.Connection], error: shmsock.Error) -> None:
        self.events.put(("error", conn, error))

    def on_close(self, conn: shmsock.Connection, reason: Optional[shmsock.Error]) -> None:
        self.events.put(("close", conn, reason))

    def next(self, kind: str, timeout: float = 5.0) -> Tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event[0] == kind:
                return event


def start(name: str, keypair: shmsock.Keypair, rec: Recorder, **options: Any) -> shmsock.Server:
    return shmsock.Server(
        name,
        keypair=keypair,
        on_connect=rec.on_connect,
        on_data=rec.on_data,
        on_error=rec.on_error,
        on_close=rec.on_close,
        **options,
    )


def test_callbacks_and_replies(name: str, server_keypair: shmsock.Keypair) -> None:
    rec = Recorder()
    with start(name, server_keypair, rec) as server:
        assert server.name == name and server.public_key == server_keypair.public_key
        me = shmsock.Keypair.generate()
        with shmsock.connect(name, server_key=server_keypair.public_key, keypair=me) as stream:
            _, conn = rec.next("connect")
            assert isinstance(conn, shmsock.Connection)
            assert conn.peer_public_key == me.public_key
            assert conn.peer_credentials.pid > 0
            assert server.connections == [conn]
            for m in (b"hello", b"", b"x" * 300_000):
                stream.send(m)
                _, c2, data = rec.next("data")
                assert c2 is conn and data == m  # the same object for every callback
                assert stream.recv(timeout=5) == m.upper()
            assert conn.stats.messages_received == 3
        _, c3, reason = rec.next("close")
        assert c3 is conn and reason is None
        assert conn.closed
        with pytest.raises(shmsock.Closed):
            conn.send(b"gone")
        assert wait_for(lambda: server.connections == [])
        assert rec.threads[0] != threading.main_thread().name  # the dispatch thread
    assert server.closed
    with pytest.raises(shmsock.Closed):
        _ = server.connections


@pytest.mark.parametrize("require_chacha", [False, True])
def test_connection_cipher_equals_the_client_stream_cipher(
    name: str, server_keypair: shmsock.Keypair, require_chacha: bool
) -> None:
    rec = Recorder()
    seen: queue.Queue[Tuple[str, shmsock.PublicKey]] = queue.Queue()

    def on_connect(conn: shmsock.Connection) -> None:
        # Read on the dispatch thread, inside the callback.
        seen.put((conn.cipher, conn.local_public_key))
        rec.on_connect(conn)

    with shmsock.Server(
        name,
        keypair=server_keypair,
        on_connect=on_connect,
        on_data=rec.on_data,
        on_close=rec.on_close,
        require_chacha=require_chacha,
    ):
        with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
            _, conn = rec.next("connect")
            cipher, local_key = seen.get(timeout=5)
            assert cipher == stream.cipher == conn.cipher
            assert cipher in ("aegis-128l", "chacha20-poly1305")
            if require_chacha:
                assert cipher == "chacha20-poly1305"
            assert local_key == conn.local_public_key == server_keypair.public_key == stream.peer_public_key
            client_cipher = stream.cipher
        rec.next("close")
        # Still answered once the connection ended.
        assert conn.closed and conn.cipher == client_cipher


@pytest.mark.parametrize("dispatch_threads", [1, 2])
def test_many_clients(name: str, server_keypair: shmsock.Keypair, dispatch_threads: int) -> None:
    rec = Recorder()
    with start(name, server_keypair, rec, dispatch_threads=dispatch_threads):
        streams = [shmsock.connect(name, server_key=server_keypair.public_key) for _ in range(8)]
        for i, s in enumerate(streams):
            s.send(b"client %d" % i)
        for i, s in enumerate(streams):
            assert s.recv(timeout=5) == b"CLIENT %d" % i
        for s in streams:
            s.close()
        closes = [rec.next("close") for _ in streams]
        assert len({id(c[1]) for c in closes}) == 8


def test_a_client_beyond_max_connections_is_refused_until_one_leaves(
    name: str, server_keypair: shmsock.Keypair
) -> None:
    rec = Recorder()
    key = server_keypair.public_key
    with start(name, server_keypair, rec, max_connections=2, max_connections_per_uid=2):
        first, second = (shmsock.connect(name, server_key=key) for _ in range(2))
        for s in (first, second):
            s.send(b"in")
            assert s.recv(timeout=5) == b"IN"
        with pytest.raises(shmsock.ResourceExhausted, match="full"):
            shmsock.connect(name, server_key=key)
        first.close()
        rec.next("close")
        # The server counts the departure once its dispatch thread saw it:
        # on_close above says it has.
        with shmsock.connect(name, server_key=key) as third:
            third.send(b"at last")
            assert third.recv(timeout=5) == b"AT LAST"
        second.close()


@pytest.mark.parametrize(
    "limits",
    [
        {"max_connections": 0},
        {"max_connections_per_uid": 0},
        {"max_pending_handshakes": 0},
        {"max_pending_handshakes_per_uid": 0},
        {"dispatch_threads": 0},
        {"dispatch_threads": 257},
    ],
)
def test_impossible_limits_are_value_errors(name: str, server_keypair: shmsock.Keypair, limits: Any) -> None:
    with pytest.raises(ValueError):
        start(name, server_keypair, Recorder(), **limits)


def test_exception_in_callback_goes_to_on_error(name: str, server_keypair: shmsock.Keypair) -> None:
    errors: queue.Queue[Tuple[Optional[shmsock.Connection], BaseException]] = queue.Queue()

    def on_data(conn: shmsock.Connection, data: bytes) -> None:
        if data == b"boom":
            raise ZeroDivisionError("division by boom")
        conn.send(data)

    def on_error(conn: Optional[shmsock.Connection], error: shmsock.Error) -> None:
        errors.put((conn, error))

    with shmsock.Server(name, keypair=server_keypair, on_data=on_data, on_error=on_error):
        with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
            stream.send(b"boom")
            conn, error = errors.get(timeout=5)
            assert isinstance(conn, shmsock.Connection)
            assert isinstance(error, shmsock.CallbackError)
            assert error.code == "CALLBACK_ERROR"
            assert "on_data" in str(error) and "ZeroDivisionError" in str(error) and "boom" in str(error)
            assert isinstance(error.__cause__, ZeroDivisionError)
            # The server and the connection go on.
            stream.send(b"after")
            assert stream.recv(timeout=5) == b"after"


def test_exception_in_on_error_is_reported_not_lost(
    name: str, server_keypair: shmsock.Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    reported: queue.Queue[Any] = queue.Queue()
    monkeypatch.setattr(sys, "unraisablehook", lambda info: reported.put(info))

    def on_data(conn: shmsock.Connection, data: bytes) -> None:
        raise RuntimeError("in on_data")

    def on_error(conn: Optional[shmsock.Connection], error: shmsock.Error) -> None:
        raise ValueError("in on_error")

    with shmsock.Server(name, keypair=server_keypair, on_data=on_data, on_error=on_error):
        with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
            stream.send(b"x")
            first = reported.get(timeout=5)
            second = reported.get(timeout=5)
            kinds = {type(first.exc_value), type(second.exc_value)}
            assert kinds == {RuntimeError, ValueError}


def test_exception_without_on_error_is_reported(
    name: str, server_keypair: shmsock.Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    reported: queue.Queue[Any] = queue.Queue()
    monkeypatch.setattr(sys, "unraisablehook", lambda info: reported.put(info))

    def on_connect(conn: shmsock.Connection) -> None:
        raise KeyError("no handler")

    with shmsock.Server(name, keypair=server_keypair, on_connect=on_connect):
        with shmsock.connect(name, server_key=server_keypair.public_key):
            info = reported.get(timeout=5)
            assert isinstance(info.exc_value, KeyError)


def test_rejected_client_is_reported_with_no_connection(name: str, server_keypair: shmsock.Keypair) -> None:
    rec = Recorder()
    friend = shmsock.Keypair.generate()
    with start(name, server_keypair, rec, allowed_clients=[friend.public_key]):
        with pytest.raises(shmsock.HandshakeRejected):
            shmsock.connect(name, server_key=server_keypair.public_key)
        _, conn, error = rec.next("error")
        assert conn is None and isinstance(error, shmsock.HandshakeRejected)


def test_peer_gone_reaches_on_error_and_on_close(name: str, server_keypair: shmsock.Keypair, child: Any) -> None:
    rec = Recorder()
    code = """
import sys, time, shmsock
s = shmsock.connect(sys.argv[1], server_key=sys.argv[2])
print("connected", flush=True)
time.sleep(60)
"""
    with start(name, server_keypair, rec):
        c = child(code, name, server_keypair.public_key.text)
        c.wait_line("connected")
        rec.next("connect")
        c.proc.kill()
        _, conn, error = rec.next("error")
        assert isinstance(error, shmsock.PeerGone)
        _, conn2, reason = rec.next("close")
        assert conn2 is conn and isinstance(reason, shmsock.PeerGone)


def test_close_from_a_callback(name: str, server_keypair: shmsock.Keypair) -> None:
    closed = threading.Event()
    holder: List[shmsock.Server] = []

    def on_data(conn: shmsock.Connection, data: bytes) -> None:
        holder[0].close()
        closed.set()

    server = shmsock.Server(name, keypair=server_keypair, on_data=on_data)
    holder.append(server)
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        stream.send(b"stop")
        assert closed.wait(5)
        with pytest.raises((shmsock.PeerClosed, shmsock.PeerGone)):
            stream.recv(timeout=5)
    assert server.closed


def test_bad_callbacks(name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(TypeError, match="on_data must be callable"):
        shmsock.Server(name, keypair=server_keypair, on_data=42)  # type: ignore[arg-type]


class App:
    """Holds its server, whose callbacks hold the app: a reference cycle."""

    def __init__(self, name: str, keypair: shmsock.Keypair) -> None:
        self.server = shmsock.Server(name, keypair=keypair, on_data=self.on_data)

    def on_data(self, conn: shmsock.Connection, data: bytes) -> None:
        conn.send(data)


def test_garbage_collected_server_is_closed(name: str, server_keypair: shmsock.Keypair, runtime_dir: Path) -> None:
    app = App(name, server_keypair)
    with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
        stream.send(b"echo")
        assert stream.recv(timeout=5) == b"echo"
        ref = weakref.ref(app.server)
        del app
        # The echo can arrive while the dispatch thread is still inside the
        # on_data call (waiting for the GIL to return from it), whose frame
        # holds the app: collect until that call is over.
        assert wait_for(lambda: gc.collect() >= 0 and ref() is None), "the server was not collected"
        assert not (runtime_dir / f"{name}.sock").exists()
        with pytest.raises((shmsock.PeerClosed, shmsock.PeerGone)):
            stream.recv(timeout=5)
