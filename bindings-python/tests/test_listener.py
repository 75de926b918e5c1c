"""shmsock.Listener: binding, accepting, allow-lists, timeouts, Ctrl-C,
closing and garbage collection."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, List

import pytest
from conftest import Child, EchoServer, connected_pair, wait_for

import shmsock


def test_bind_accept_and_properties(name: str, server_keypair: shmsock.Keypair, runtime_dir: Path) -> None:
    with shmsock.Listener.bind(name, keypair=server_keypair) as listener:
        assert listener.name == name
        assert listener.public_key == server_keypair.public_key
        assert (runtime_dir / f"{name}.sock").exists()
        assert listener.rejected_count == 0 and listener.last_rejection is None
        assert isinstance(listener.fileno(), int)
        assert name in repr(listener)
        client, server = connected_pair(listener, server_keypair.public_key)
        with client, server:
            client.send(b"hi")
            assert server.recv(timeout=5) == b"hi"
            assert server.peer_credentials.pid == os.getpid()
    assert listener.closed
    assert not (runtime_dir / f"{name}.sock").exists()
    with pytest.raises(shmsock.Closed):
        listener.accept(timeout=0)


def test_address_in_use(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.bind(name, keypair=server_keypair):
        with pytest.raises(shmsock.AddressInUse, match="another live process") as info:
            shmsock.bind(name, keypair=server_keypair)
        assert isinstance(info.value, OSError)
    # Released: binding again works.
    shmsock.bind(name, keypair=server_keypair).close()


def test_accept_timeout(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.bind(name, keypair=server_keypair) as listener:
        start = time.monotonic()
        with pytest.raises(shmsock.Timeout):
            listener.accept(timeout=0.2)
        assert 0.19 <= time.monotonic() - start < 1.0
        with pytest.raises(ValueError):
            listener.accept(timeout=-1)
        with pytest.raises(TypeError):
            listener.accept(timeout="soon")  # type: ignore[arg-type]


def test_allow_list_rejects_other_clients(name: str, server_keypair: shmsock.Keypair) -> None:
    friend, stranger = shmsock.Keypair.generate(), shmsock.Keypair.generate()
    server = EchoServer(name, server_keypair, allowed_clients=[friend.public_key.text])
    try:
        with pytest.raises(shmsock.HandshakeRejected) as info:
            shmsock.connect(name, server_key=server_keypair.public_key, keypair=stranger)
        assert isinstance(info.value, ConnectionRefusedError)
        assert info.value.code == "HANDSHAKE_REJECTED"
        with pytest.raises(shmsock.HandshakeRejected):
            shmsock.connect(name, server_key=server_keypair.public_key)  # a fresh, unknown key
        with shmsock.connect(name, server_key=server_keypair.public_key, keypair=friend) as stream:
            stream.send(b"friend")
            assert stream.recv(timeout=5) == b"friend"
        assert server.listener.rejected_count == 2
        assert isinstance(server.listener.last_rejection, shmsock.Error)
    finally:
        server.close()


def test_a_listener_keeps_at_most_max_connections_open_streams(name: str, server_keypair: shmsock.Keypair) -> None:
    """One more client than ``max_connections`` is refused (ResourceExhausted);
    ``set_max_connections`` changes the bound while the listener serves."""
    key = server_keypair.public_key
    accepted: List[shmsock.Stream] = []
    with shmsock.bind(name, keypair=server_keypair, max_connections=1) as listener:

        def keep_accepting() -> None:
            for _ in range(2):
                accepted.append(listener.accept(timeout=10))

        acceptor = threading.Thread(target=keep_accepting)
        acceptor.start()
        first = shmsock.connect(name, server_key=key)
        with pytest.raises(shmsock.ResourceExhausted, match="full"):
            shmsock.connect(name, server_key=key)
        with pytest.raises(ValueError):
            listener.set_max_connections(0)
        listener.set_max_connections(2, per_uid=2)
        second = shmsock.connect(name, server_key=key)
        acceptor.join(timeout=10)
        assert len(accepted) == 2
        second.send(b"seated")
        assert accepted[1].recv(timeout=5) == b"seated"
        for s in [first, second, *accepted]:
            s.close()


def test_allowed_uids(name: str, server_keypair: shmsock.Keypair) -> None:
    server = EchoServer(name, server_keypair, allowed_uids=[os.getuid() + 1])
    try:
        with pytest.raises(shmsock.Error) as info:
            shmsock.connect(name, server_key=server_keypair.public_key)
        assert "uid" in str(info.value)
    finally:
        server.close()


def test_named_backend(name: str, server_keypair: shmsock.Keypair) -> None:
    server = EchoServer(name, server_keypair, backend="named")
    try:
        with shmsock.connect(name, server_key=server_keypair.public_key) as stream:
            assert stream.backend == "named"
            stream.send(b"x" * 100_000)
            assert stream.recv(timeout=5) == b"x" * 100_000
    finally:
        server.close()


def test_bad_arguments(name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(TypeError, match="keypair"):
        shmsock.bind(name, keypair=server_keypair.public_key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterable"):
        shmsock.bind(name, keypair=server_keypair, allowed_clients=server_keypair.public_key.text)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        shmsock.bind(name, keypair=server_keypair, allowed_clients=[1, 2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="backend"):
        shmsock.bind(name, keypair=server_keypair, backend="carrier-pigeon")
    with pytest.raises(ValueError, match="ring"):
        shmsock.bind(name, keypair=server_keypair, ring_size=12345)
    with pytest.raises(shmsock.InvalidName):
        shmsock.bind("", keypair=server_keypair)
    with pytest.raises(shmsock.InvalidName):
        shmsock.bind("x" * 500, keypair=server_keypair)
    with pytest.raises(TypeError):
        shmsock.Listener.bind(name)  # type: ignore[call-arg]


def test_iteration_ends_when_closed_from_another_thread(name: str, server_keypair: shmsock.Keypair) -> None:
    listener = shmsock.bind(name, keypair=server_keypair)
    accepted: List[shmsock.Stream] = []
    done = threading.Event()

    def serve() -> None:
        for stream in listener:
            accepted.append(stream)
        done.set()

    t = threading.Thread(target=serve)
    t.start()
    with shmsock.connect(name, server_key=server_keypair.public_key):
        assert wait_for(lambda: len(accepted) == 1)
    time.sleep(0.1)
    listener.close()
    assert done.wait(2), "iteration did not end after close()"
    t.join(2)
    accepted[0].close()


def test_garbage_collected_listener_releases_the_endpoint(
    name: str, server_keypair: shmsock.Keypair, runtime_dir: Path
) -> None:
    listener = shmsock.bind(name, keypair=server_keypair)
    sock = runtime_dir / f"{name}.sock"
    assert sock.exists()
    ref = weakref.ref(listener)
    del listener
    gc.collect()
    assert ref() is None
    assert not sock.exists(), "the socket file outlived its Listener"
    shmsock.bind(name, keypair=server_keypair).close()


CHILD_ACCEPT = """
import sys, shmsock
listener = shmsock.bind(sys.argv[1], keypair=shmsock.Keypair.generate())
print("accepting", flush=True)
listener.accept()
"""


def test_ctrl_c_interrupts_blocking_accept(name: str, child: Callable[..., Child], runtime_dir: Path) -> None:
    c = child(CHILD_ACCEPT, name)
    c.wait_line("accepting")
    time.sleep(0.3)
    sent = time.monotonic()
    c.proc.send_signal(signal.SIGINT)
    result = c.finish(timeout=10)
    assert "KeyboardInterrupt" in result.stderr, result.stderr
    assert time.monotonic() - sent < 1.5
    # The interpreter exited and the endpoint went with it.
    assert wait_for(lambda: not (runtime_dir / f"{name}.sock").exists(), timeout=2)


def test_a_connection_whose_large_message_stopped_moving_is_ended_for_those_waiting(
    name: str, server_keypair: shmsock.Keypair
) -> None:
    """4 KiB rings and a 10,000-byte bound on large messages being received:
    a client that sends part of a 9,000-byte message and stops holds its room
    only while nobody waits; once another connection's receive waits, the
    stalled connection is ended (after about 3 s without a frame) and the
    waiting receive gets its message."""
    with shmsock.bind(name, keypair=server_keypair, ring_size=4096, max_reassembly_bytes=10_000) as listener:
        stalled_client, stalled = connected_pair(listener, server_keypair.public_key)
        client, server = connected_pair(listener, server_keypair.public_key)
        held = b"a" * 9000
        assert stalled_client._send_resumable(held) is False, "9,000 bytes fit a 4 KiB ring"
        with pytest.raises(shmsock.WouldBlock):
            stalled.try_recv()  # takes the frames there, and keeps them
        message = b"b" * 5000
        sender = threading.Thread(target=lambda: client.send(message, timeout=20))
        sender.start()
        assert server.recv(timeout=20) == message
        sender.join(20)
        with pytest.raises(shmsock.ResourceExhausted, match="stopped moving"):
            stalled.try_recv()
        with pytest.raises(shmsock.Closed):
            stalled.try_recv()
        with pytest.raises(shmsock.PeerGone):
            for _ in range(1000):
                stalled_client._send_resumable(held)
                time.sleep(0.005)
        for s in (stalled_client, stalled, client, server):
            s.close()


_ROUNDS = 200  # messages each client sends once both connections are open


def _serve_one(listener: shmsock.Listener, who: bytes) -> None:
    """Accepts one client and echoes its messages back behind `who`, until
    the client hangs up."""
    with listener.accept(timeout=20) as stream:
        while True:
            try:
                message = stream.recv(timeout=20)
            except shmsock.PeerClosed:
                return
            stream.send(who + b":" + message)


class _Client(threading.Thread):
    """Connects, sends `message` and keeps the reply; once `both_open` is
    set, sends _ROUNDS more messages, each of whose replies it checks."""

    def __init__(self, name: str, server_key: shmsock.PublicKey, message: bytes, both_open: threading.Event) -> None:
        super().__init__()
        self.args = (name, server_key, message, both_open)
        self.answered = threading.Event()
        self.reply = b""
        self.rounds = 0

    def run(self) -> None:
        name, server_key, message, both_open = self.args
        with shmsock.connect(name, server_key=server_key) as stream:
            stream.send(message)
            self.reply = stream.recv(timeout=20)
            self.answered.set()
            both_open.wait(20)
            who = self.reply.split(b":")[0]
            for i in range(_ROUNDS):
                stream.send(b"%s %d" % (message, i))
                assert stream.recv(timeout=20) == b"%s:%s %d" % (who, message, i)
                self.rounds += 1


def test_a_listener_shared_by_fork_serves_each_client_on_its_own_memory(
    name: str, server_keypair: shmsock.Keypair
) -> None:
    """A pre-fork server: bound, then forked, each process accepting. What the
    parent prepared for its next handshake is inherited by the child; used by
    both, it put two clients on one shared segment. The processes take turns
    (an accept may take several waiting clients): the child serves the first
    client, the parent the second, then both clients talk at once."""
    with shmsock.bind(name, keypair=server_keypair) as listener:
        # A first connection, so that the listener prepares the next one here.
        client, server = connected_pair(listener, server_keypair.public_key)
        with client, server:
            client.send(b"warm-up")
            assert server.recv(timeout=5) == b"warm-up"
        child = os.fork()
        if child == 0:
            code = 1
            try:
                _serve_one(listener, b"child")
                code = 0
            finally:
                os._exit(code)
        both_open = threading.Event()
        first = _Client(name, server_keypair.public_key, b"first", both_open)
        second = _Client(name, server_keypair.public_key, b"second", both_open)
        try:
            first.start()
            assert first.answered.wait(20), "the child did not answer the first client"
            second.start()
            parent = threading.Thread(target=_serve_one, args=(listener, b"parent"))
            parent.start()
            second.answered.wait(20)
        finally:
            both_open.set()
            for t in (first, second):
                t.join(30)
            status = _reap(child)
        parent.join(30)
        assert (first.reply, second.reply) == (b"child:first", b"parent:second")
        assert (first.rounds, second.rounds) == (_ROUNDS, _ROUNDS)
        assert os.waitstatus_to_exitcode(status) == 0, "the child failed"


def _reap(pid: int) -> int:
    """The wait status of child `pid`, killed if it has not ended in 30 s."""
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def test_a_child_of_fork_cannot_use_or_end_its_parents_connection(
    name: str, server_keypair: shmsock.Keypair, runtime_dir: Path
) -> None:
    """A child of fork() (multiprocessing's default on Linux) holds copies of
    the parent's listener and streams: using them fails with Closed, and
    closing them (or the child's exit) leaves the parent's as they were."""
    with shmsock.bind(name, keypair=server_keypair) as listener:
        client, server = connected_pair(listener, server_keypair.public_key)
        with client, server:
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    with pytest.raises(shmsock.Closed, match=r"fork\(\)"):
                        client.send(b"from the child")
                    with pytest.raises(shmsock.Closed, match=r"fork\(\)"):
                        server.recv(timeout=0)
                    client.close()
                    server.close()
                    listener.close()
                    code = 0
                finally:
                    os._exit(code)
            assert os.waitstatus_to_exitcode(_reap(child)) == 0, "the child failed"
            client.send(b"after")
            assert server.recv(timeout=5) == b"after"
            server.send(b"back")
            assert client.recv(timeout=5) == b"back"
            assert (runtime_dir / f"{name}.sock").exists()
            newcomer, accepted = connected_pair(listener, server_keypair.public_key)
            newcomer.close()
            accepted.close()
