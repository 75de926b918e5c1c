"""Shared fixtures: a private runtime directory, unique endpoint names, keys,
an echo server on a thread and child processes running small scripts."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

# Every endpoint of this run lives in a private directory (mode 0700), set
# before shmsock is used anywhere; child processes inherit it.
_RUNTIME = tempfile.mkdtemp(prefix="shmsock-py-")
os.chmod(_RUNTIME, 0o700)
os.environ["SHMSOCK_RUNTIME_DIR"] = _RUNTIME

import shmsock  # noqa: E402

_counter = itertools.count()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_RUNTIME, ignore_errors=True)


@pytest.fixture
def runtime_dir() -> Path:
    return Path(_RUNTIME)


@pytest.fixture
def name() -> str:
    """A unique endpoint name."""
    return f"py{os.getpid()}-{next(_counter)}"


@pytest.fixture
def server_keypair() -> shmsock.Keypair:
    return shmsock.Keypair.generate()


class NoExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that refuses work: proves a call never uses one
    (``loop.set_default_executor(NoExecutor())``)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the default executor was used for {fn!r}")


class EchoServer:
    """A Listener on a thread that echoes every message of every client."""

    def __init__(self, name: str, keypair: shmsock.Keypair, **options: object) -> None:
        self.listener = shmsock.Listener.bind(name, keypair=keypair, **options)  # type: ignore[arg-type]
        self.errors: List[BaseException] = []
        self.streams: List[shmsock.Stream] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for stream in self.listener:
                self.streams.append(stream)
                threading.Thread(target=self._echo, args=(stream,), daemon=True).start()
        except BaseException as e:  # pragma: no cover - reported by the test
            self.errors.append(e)

    def _echo(self, stream: shmsock.Stream) -> None:
        try:
            with stream:
                for message in stream:
                    stream.send(message)
        except (shmsock.PeerGone, shmsock.Closed):
            pass
        except BaseException as e:  # pragma: no cover
            self.errors.append(e)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def echo_server(name: str, server_keypair: shmsock.Keypair) -> Iterator[EchoServer]:
    server = EchoServer(name, server_keypair)
    yield server
    server.close()
    assert not server.errors, server.errors


class Child:
    """A child Python process running `code` (with argv), stdout/stderr piped."""

    def __init__(self, code: str, *args: str, env: Optional[dict] = None) -> None:
        fd, path = tempfile.mkstemp(suffix=".py", prefix="shmsock-child-")
        with os.fdopen(fd, "w") as f:
            f.write(textwrap.dedent(code))
        self.path = path
        self.proc = subprocess.Popen(
            [sys.executable, "-u", path, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def wait_line(self, expected: str, timeout: float = 15.0) -> str:
        """Waits for a line of stdout starting with `expected`."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        result: List[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(expected):
                    result.append(line.rstrip("\n"))
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        if not result:
            self.kill()
            _, err = self.proc.communicate(timeout=5)
            raise AssertionError(f"child did not print {expected!r} within {timeout}s; stderr:\n{err}")
        return result[0]

    def finish(self, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate(timeout=5)
            raise AssertionError(f"child did not exit within {timeout}s; stderr:\n{err}") from None
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def cleanup(self) -> None:
        self.kill()
        try:
            self.proc.communicate(timeout=5)
        except Exception:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


@pytest.fixture
def child() -> Iterator[Callable[..., Child]]:
    children: List[Child] = []

    def start(code: str, *args: str, env: Optional[dict] = None) -> Child:
        c = Child(code, *args, env=env)
        children.append(c)
        return c

    yield start
    for c in children:
        c.cleanup()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def connected_pair(
    listener: shmsock.Listener, server_key: shmsock.PublicKey, **options: object
) -> tuple[shmsock.Stream, shmsock.Stream]:
    """(client, server) streams: the handshake runs in accept, so accept on a
    thread while connecting."""
    accepted: List[shmsock.Stream] = []
    t = threading.Thread(target=lambda: accepted.append(listener.accept(timeout=10)))
    t.start()
    client = shmsock.connect(listener.name, server_key=server_key, **options)  # type: ignore[arg-type]
    t.join(10)
    assert accepted, "accept failed"
    return client, accepted[0]
