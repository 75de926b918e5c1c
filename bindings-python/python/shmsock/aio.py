"""asyncio API of shmsock: coroutines that never block the event loop.

Waiting is driven by each connection's pollable file descriptor through the
event loop, never by a thread per call. A stream registers its descriptor with
the loop once (``loop.add_reader``) and keeps it registered for its life: when
it is readable, the stream receives what arrived (``try_recv`` until
WouldBlock) and hands the messages to the pending ``recv()`` calls in the same
step, so a message costs one wake-up of the loop and no ``epoll_ctl``. A
message that arrives while nobody waits is read ahead into a small bounded
queue; when that is full the descriptor is unregistered until a receive takes
from it. Sends use the core's resumable send: what does not fit in the ring
now waits, in order, until the descriptor reports freed space.

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

A ``recv()`` that times out (``timeout=``, the stream's ``recv_timeout``) or is
cancelled (``asyncio.wait_for``, ``asyncio.timeout``, ``task.cancel()``) loses
no message: the next ``recv()`` gets it. A ``send()`` cancelled after its
message started to go out still finishes sending it (a message is never cut).
Both sides of the handshake run on the loop without waiting (a connect sends
its HELLO and finishes when the server's answer arrives; an accept advances
every handshake side by side, each bounded by ``handshake_timeout``, so a
silent client delays no other). A connect's ``wait`` for a server that is not
there yet is waited for on the loop too (the core watches the runtime
directory): no executor thread.

Publish/subscribe: ``await aio.subscribe(name, server_key=...)`` (or ``async
with``) gives a :class:`Subscriber` (``await sub.recv(timeout=...)``, ``async
for``), registered with the loop once in the same way; :class:`Publisher`
(``aio.Publisher.bind(...)``) has ``await publish(data)``, which never blocks
the loop (see ``shmsock._aio_pubsub``).

Do not mix blocking and asyncio calls on one stream.
"""

from __future__ import annotations

import asyncio
import functools
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Generator,
    Generic,
    Optional,
    Protocol,
    Type,
    TypeVar,
)

from . import _shmsock
from ._aio_handshake import _finish_handshake, _Readiness
from ._aio_pubsub import Publisher, Subscriber
from ._aio_receive import _Receiver
from ._options import ConnectOptions, KeyLike, ListenOptions, SubscribeOptions
from ._shmsock import (
    Closed,
    Credentials,
    Error,
    Keypair,
    PublicKey,
    Stats,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Connecting", "Listener", "Publisher", "Stream", "Subscriber", "bind", "connect", "subscribe"]


class Stream(_Receiver):
    """An asyncio stream: the same connection as :class:`shmsock.Stream`, with
    coroutines. Get one from ``await aio.connect(...)`` or
    ``await listener.accept()``, or wrap a connected blocking stream with
    ``aio.Stream(stream)``."""

    def __init__(self, stream: _shmsock.Stream) -> None:
        """Wraps a connected :class:`shmsock.Stream` (which it then owns)."""
        super().__init__(stream, "stream")
        self._stream = stream

    def _close_source(self) -> None:
        # A blocking close waits up to 2 s for a peer that does not read to
        # make room for the CLOSE frame: not on the loop.
        self._stream._close_nowait()

    @classmethod
    async def connect(
        cls,
        name: str,
        *,
        server_key: KeyLike,
        **options: Unpack[ConnectOptions],
    ) -> Stream:
        """Connects to endpoint ``name`` (options as for
        :meth:`shmsock.Stream.connect`). The handshake runs on the loop
        without waiting: the HELLO goes out at once, and the rest when the
        server's answer makes the socket readable. ``wait`` (seconds): wait for
        a server to appear; the loop looks for it again whenever the runtime
        directory changes (and after a short backoff), as it does for a server
        whose queue of waiting connections is full. No thread waits."""
        connecting = _shmsock.Stream._connect_start(name, server_key=server_key, **options)
        return cls(await _finish_handshake(connecting))

    # ------------------------------------------------------------ sending

    async def send(self, data: Any) -> None:
        """Sends one message (any bytes-like object). When the ring has no
        room for all of it, the rest goes out as the peer frees space, without
        blocking the loop; sends complete in order."""
        # A closed stream raises Closed here.
        if not self._sends and self._stream._send_resumable(data):
            return
        loop = self._attach()
        fut: asyncio.Future[None] = loop.create_future()
        self._sends.append((fut, data))
        if len(self._sends) == 1:
            # That send consumed the descriptor's wake-ups: look at the
            # receive side once without consuming any.
            message = self._recheck() if self._waiters else None
            if message is not None:
                self._deliver(message)
                self._serve()
        self._update()
        await fut

    def _hand_over(self) -> Optional[bytes]:
        # A peer on this CPU (two processes on one core), where a spin only
        # delays it: the core lets it answer now, as a blocking receive does,
        # instead of this loop sleeping and being woken by the answer.
        try:
            came = self._stream._hand_over()
        except Error:
            came = True  # the look below reports the end, as any receive's does
        return self._recheck() if came else None

    def _recheck(self) -> Optional[bytes]:
        # The receiver's zero-timeout look, returning None instead of raising
        # Timeout: a spin looks many times in a row, and an exception per miss
        # cost as much as the look.
        try:
            return self._stream._recv_now()
        except Error:
            self._ended = True
            return None

    def _resume_sends(self) -> bool:
        """Resumes the waiting sends in order; True when none is left."""
        while self._sends:
            fut, data = self._sends[0]
            try:
                complete = self._stream._send_resumable(data)
            except Error as e:
                self._sends.popleft()
                if not fut.done():
                    fut.set_exception(e)
                continue
            if not complete:
                return False
            self._sends.popleft()
            if not fut.done():
                fut.set_result(None)
        return True

    @property
    def stream(self) -> _shmsock.Stream:
        """The underlying blocking :class:`shmsock.Stream`."""
        return self._stream

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

    def __repr__(self) -> str:
        return f"<shmsock.aio.Stream {self._stream!r}>"


class Listener:
    """An asyncio listener: ``await accept()`` waits on the listener's
    pollable descriptor through the loop and advances every handshake in
    progress without waiting (the core's ``try_accept``); the descriptor also
    reports handshake deadlines, so no timer is involved."""

    def __init__(self, listener: _shmsock.Listener) -> None:
        """Wraps a bound :class:`shmsock.Listener` (which it then owns)."""
        self._listener = listener
        self._readable = _Readiness(listener.fileno())

    @classmethod
    def bind(
        cls,
        name: str,
        *,
        keypair: Keypair,
        **options: Unpack[ListenOptions],
    ) -> Listener:
        """Binds endpoint ``name`` (options as for
        :meth:`shmsock.Listener.bind`). Binding does not wait."""
        return cls(_shmsock.Listener.bind(name, keypair=keypair, **options))

    async def accept(self) -> Stream:
        """Waits for a client and completes its handshake. Refused clients
        are skipped (see ``rejected_count``). Handshakes advance side by side
        on the loop as their clients' records arrive, each bounded by
        ``handshake_timeout``: a silent or slow client delays no other."""
        while True:
            stream = self._listener._try_accept()
            if stream is not None:
                return Stream(stream)
            await self._readable.wait()

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

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Stream:
        try:
            return await self.accept()
        except Closed:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<shmsock.aio.Listener {self._listener!r}>"


class _Closable(Protocol):
    def close(self) -> None: ...


_T = TypeVar("_T", bound=_Closable)


class Connecting(Generic[_T]):
    """A connection (or subscription) being made: ``await`` it for the
    :class:`Stream` (or :class:`Subscriber`), or use it directly as ``async
    with aio.connect(...) as stream:`` (closed at the end of the block)."""

    __slots__ = ("_connect", "_result")

    def __init__(self, connect: Callable[[], Awaitable[_T]]) -> None:
        self._connect = connect
        self._result: Optional[_T] = None

    def __await__(self) -> Generator[Any, None, _T]:
        result: _T = yield from self._connect().__await__()
        return result

    async def __aenter__(self) -> _T:
        self._result = await self._connect()
        return self._result

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._result is not None:
            self._result.close()


def connect(name: str, *, server_key: KeyLike, **options: Unpack[ConnectOptions]) -> Connecting[Stream]:
    """Connects to endpoint ``name``, as :meth:`Stream.connect` does:
    ``stream = await aio.connect(...)`` or ``async with aio.connect(...) as
    stream:`` (closed at the end of the block)."""
    return Connecting(functools.partial(Stream.connect, name, server_key=server_key, **options))


def bind(name: str, *, keypair: Keypair, **options: Unpack[ListenOptions]) -> Listener:
    """Binds endpoint ``name``; the same as :meth:`Listener.bind`."""
    return Listener.bind(name, keypair=keypair, **options)


def subscribe(name: str, *, server_key: KeyLike, **options: Unpack[SubscribeOptions]) -> Connecting[Subscriber]:
    """Subscribes to topic ``name``, as :meth:`Subscriber.connect` does: ``sub
    = await aio.subscribe(...)`` or ``async with aio.subscribe(...) as sub:``
    (closed at the end of the block)."""
    return Connecting(functools.partial(Subscriber.connect, name, server_key=server_key, **options))
