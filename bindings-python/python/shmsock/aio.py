"""asyncio API of shmsock: coroutines that never block the event loop.

Waiting is driven by each connection's pollable file descriptor through the
event loop (``loop.add_reader``), never by a thread per pending call: after the
core's ``try_recv`` raises WouldBlock, the descriptor becomes readable when a
message, a close or the peer's death is pending. Thousands of pending receives
cost one registration each and no thread.

::

    import asyncio
    from shmsock import Keypair, aio

    async def serve(keypair: Keypair) -> None:
        async with aio.bind("echo", keypair=keypair) as listener:
            async for stream in listener:
                asyncio.ensure_future(echo(stream))

    async def echo(stream: aio.Stream) -> None:
        async with stream:
            async for message in stream:
                await stream.send(message)

Cancelling a pending ``recv()`` (``asyncio.wait_for``, ``asyncio.timeout``,
``task.cancel()``) loses no message: a message is taken from the connection
only in the same step that returns it. Connecting and the server side of each
handshake (bounded by ``handshake_timeout``) run in the loop's default executor.

Do not mix blocking and asyncio receives on one stream.
"""

from __future__ import annotations

import asyncio
import functools
from types import TracebackType
from typing import Any, Iterable, List, Optional, Type, Union

from . import _shmsock
from ._shmsock import Closed, Credentials, Error, Keypair, PeerClosed, PublicKey, Stats, WouldBlock

KeyLike = Union[PublicKey, str, bytes]

__all__ = ["Listener", "Stream", "bind", "connect"]

# Polling bounds for a send waiting for ring space (see Stream.send).
_SEND_POLL_FIRST = 0.0001
_SEND_POLL_MAX = 0.005


class _Readiness:
    """One ``add_reader`` registration per descriptor, shared by every
    coroutine waiting on it. The registration is one-shot: it is removed when
    the descriptor becomes readable and every waiter is woken to retry."""

    __slots__ = ("_fd", "_loop", "_waiters")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiters: List["asyncio.Future[None]"] = []

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            self._unregister()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        try:
            if self._loop is None:
                loop.add_reader(self._fd, self._ready)
                self._loop = loop
            await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
            if not self._waiters:
                self._unregister()

    def _ready(self) -> None:
        self._unregister()
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _unregister(self) -> None:
        if self._loop is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            self._loop = None

    def close(self) -> None:
        """Unregisters (before the descriptor is closed) and wakes every
        waiter, so each one retries and sees Closed."""
        self._ready()


class Stream:
    """An asyncio stream: the same connection as :class:`shmsock.Stream`, with
    coroutines. Get one from ``await aio.connect(...)`` or
    ``await listener.accept()``, or wrap a connected blocking stream with
    ``aio.Stream(stream)``."""

    def __init__(self, stream: _shmsock.Stream) -> None:
        """Wraps a connected :class:`shmsock.Stream` (which it then owns)."""
        self._stream = stream
        self._readable = _Readiness(stream.fileno())

    @classmethod
    async def connect(
        cls,
        name: str,
        *,
        server_key: KeyLike,
        keypair: Optional[Keypair] = None,
        ring_size: Optional[int] = None,
        max_message_size: Optional[int] = None,
        send_timeout: Optional[float] = None,
        recv_timeout: Optional[float] = None,
        handshake_timeout: Optional[float] = None,
        spin: Optional[float] = None,
        require_chacha: bool = False,
    ) -> "Stream":
        """Connects to endpoint ``name`` (options as for
        :meth:`shmsock.Stream.connect`); the handshake runs in the default
        executor."""
        loop = asyncio.get_running_loop()
        connect = functools.partial(
            _shmsock.Stream.connect,
            name,
            server_key=server_key,
            keypair=keypair,
            ring_size=ring_size,
            max_message_size=max_message_size,
            send_timeout=send_timeout,
            recv_timeout=recv_timeout,
            handshake_timeout=handshake_timeout,
            spin=spin,
            require_chacha=require_chacha,
        )
        stream = await loop.run_in_executor(None, connect)
        return cls(stream)

    async def recv(self) -> bytes:
        """Receives the next message. Raises PeerClosed once the peer closed
        and every message it sent was received, PeerGone if it died. Cancelling
        it loses no message."""
        while True:
            try:
                return self._stream.try_recv()
            except WouldBlock:
                pass
            await self._readable.wait()

    async def recv_into(self, buffer: Any) -> int:
        """Receives the next message into a writable buffer and returns its
        length (BufferTooSmall, with ``needed``, keeps the message)."""
        while True:
            try:
                return self._stream.try_recv_into(buffer)
            except WouldBlock:
                pass
            await self._readable.wait()

    async def send(self, data: Any) -> None:
        """Sends one message (any bytes-like object).

        When the ring is full this waits for space without blocking the loop:
        it retries on a short timer (the core does not yet signal ring space on
        the pollable descriptor after ``try_send``). A message larger than half
        the ring cannot wait for room in one piece, so it is sent by a blocking
        ``send`` in the default executor; cancelling that one does not stop it.
        """
        try:
            self._stream.try_send(data)
            return
        except WouldBlock:
            pass
        if memoryview(data).nbytes > self._stream.ring_size // 2:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._stream.send, data)
            return
        delay = _SEND_POLL_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                self._stream.try_send(data)
                return
            except WouldBlock:
                delay = min(delay * 2, _SEND_POLL_MAX)

    def close(self) -> None:
        """Closes the stream (the peer receives every message sent before,
        then PeerClosed); pending receives raise Closed. Idempotent."""
        self._readable.close()
        self._stream.close()

    @property
    def stream(self) -> _shmsock.Stream:
        """The underlying blocking :class:`shmsock.Stream`."""
        return self._stream

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._stream.closed

    @property
    def peer_public_key(self) -> PublicKey:
        """The peer's public key, authenticated by the handshake."""
        return self._stream.peer_public_key

    @property
    def local_public_key(self) -> PublicKey:
        """This side's public key."""
        return self._stream.local_public_key

    @property
    def peer_credentials(self) -> Credentials:
        """The peer process's pid, uid and gid, from the kernel."""
        return self._stream.peer_credentials

    @property
    def stats(self) -> Stats:
        """Message and byte counts."""
        return self._stream.stats

    @property
    def endpoint(self) -> str:
        """The endpoint name."""
        return self._stream.endpoint

    def fileno(self) -> int:
        """The pollable descriptor (registered with the loop while a receive
        waits)."""
        return self._stream.fileno()

    async def __aenter__(self) -> "Stream":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __aiter__(self) -> "Stream":
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except PeerClosed:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<shmsock.aio.Stream {self._stream!r}>"


class Listener:
    """An asyncio listener: ``await accept()`` waits on the listening socket
    through the loop and runs each handshake in the default executor."""

    def __init__(self, listener: _shmsock.Listener) -> None:
        """Wraps a bound :class:`shmsock.Listener` (which it then owns)."""
        self._listener = listener
        self._readable = _Readiness(listener.fileno())
        self._handshakes: List["asyncio.Future[_shmsock.Stream]"] = []

    @classmethod
    def bind(
        cls,
        name: str,
        *,
        keypair: Keypair,
        allowed_clients: Optional[Iterable[KeyLike]] = None,
        allowed_uids: Optional[Iterable[int]] = None,
        ring_size: Optional[int] = None,
        max_message_size: Optional[int] = None,
        send_timeout: Optional[float] = None,
        recv_timeout: Optional[float] = None,
        handshake_timeout: Optional[float] = None,
        spin: Optional[float] = None,
        backend: Optional[str] = None,
        require_chacha: bool = False,
    ) -> "Listener":
        """Binds endpoint ``name`` (options as for
        :meth:`shmsock.Listener.bind`). Binding does not wait."""
        return cls(
            _shmsock.Listener.bind(
                name,
                keypair=keypair,
                allowed_clients=allowed_clients,
                allowed_uids=allowed_uids,
                ring_size=ring_size,
                max_message_size=max_message_size,
                send_timeout=send_timeout,
                recv_timeout=recv_timeout,
                handshake_timeout=handshake_timeout,
                spin=spin,
                backend=backend,
                require_chacha=require_chacha,
            )
        )

    async def accept(self) -> Stream:
        """Waits for a client and completes its handshake. Refused clients
        are skipped (see ``rejected_count``). A client whose handshake was
        under way when an accept was cancelled goes to the next accept."""
        loop = asyncio.get_running_loop()
        while True:
            if self._handshakes:
                fut = self._handshakes.pop(0)
            else:
                try:
                    pending = self._listener._accept_pending()
                except WouldBlock:
                    await self._readable.wait()
                    continue
                fut = loop.run_in_executor(None, self._listener._handshake, pending)
            try:
                stream = await asyncio.shield(fut)
            except asyncio.CancelledError:
                # The handshake goes on in the executor: keep its client.
                self._handshakes.insert(0, fut)
                raise
            except Closed:
                raise
            except Error:
                continue
            return Stream(stream)

    def close(self) -> None:
        """Stops listening and releases the endpoint name; pending accepts
        raise Closed. Idempotent."""
        self._readable.close()
        self._listener.close()

    @property
    def listener(self) -> _shmsock.Listener:
        """The underlying blocking :class:`shmsock.Listener`."""
        return self._listener

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._listener.closed

    @property
    def name(self) -> str:
        """The endpoint name."""
        return self._listener.name

    @property
    def public_key(self) -> PublicKey:
        """The server's public key, which clients pin."""
        return self._listener.public_key

    @property
    def rejected_count(self) -> int:
        """How many clients failed the handshake so far."""
        return self._listener.rejected_count

    def fileno(self) -> int:
        """The listening socket's descriptor."""
        return self._listener.fileno()

    async def __aenter__(self) -> "Listener":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __aiter__(self) -> "Listener":
        return self

    async def __anext__(self) -> Stream:
        try:
            return await self.accept()
        except Closed:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<shmsock.aio.Listener {self._listener!r}>"


async def connect(
    name: str,
    *,
    server_key: KeyLike,
    keypair: Optional[Keypair] = None,
    ring_size: Optional[int] = None,
    max_message_size: Optional[int] = None,
    send_timeout: Optional[float] = None,
    recv_timeout: Optional[float] = None,
    handshake_timeout: Optional[float] = None,
    spin: Optional[float] = None,
    require_chacha: bool = False,
) -> Stream:
    """Connects to endpoint ``name``; the same as :meth:`Stream.connect`."""
    return await Stream.connect(
        name,
        server_key=server_key,
        keypair=keypair,
        ring_size=ring_size,
        max_message_size=max_message_size,
        send_timeout=send_timeout,
        recv_timeout=recv_timeout,
        handshake_timeout=handshake_timeout,
        spin=spin,
        require_chacha=require_chacha,
    )


def bind(
    name: str,
    *,
    keypair: Keypair,
    allowed_clients: Optional[Iterable[KeyLike]] = None,
    allowed_uids: Optional[Iterable[int]] = None,
    ring_size: Optional[int] = None,
    max_message_size: Optional[int] = None,
    send_timeout: Optional[float] = None,
    recv_timeout: Optional[float] = None,
    handshake_timeout: Optional[float] = None,
    spin: Optional[float] = None,
    backend: Optional[str] = None,
    require_chacha: bool = False,
) -> Listener:
    """Binds endpoint ``name``; the same as :meth:`Listener.bind`."""
    return Listener.bind(
        name,
        keypair=keypair,
        allowed_clients=allowed_clients,
        allowed_uids=allowed_uids,
        ring_size=ring_size,
        max_message_size=max_message_size,
        send_timeout=send_timeout,
        recv_timeout=recv_timeout,
        handshake_timeout=handshake_timeout,
        spin=spin,
        backend=backend,
        require_chacha=require_chacha,
    )
