"""What the asyncio classes share for waiting on a descriptor of the core's:
one ``add_reader`` registration per descriptor (:class:`_Readiness`), and the
loop that drives a client handshake (a connect, a subscription) to its end
(:func:`_finish_handshake`)."""

from __future__ import annotations

import asyncio
from typing import List, Optional, Protocol, TypeVar


class _Readiness:
    """One ``add_reader`` registration per descriptor, shared by every
    coroutine waiting on it (a listener's accepts). The registration is
    one-shot: it is removed when the descriptor becomes readable and every
    waiter is woken to retry."""

    __slots__ = ("_fd", "_loop", "_waiters")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiters: List[asyncio.Future[None]] = []

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


_Made = TypeVar("_Made", covariant=True)


class _Handshake(Protocol[_Made]):
    """A client handshake the loop drives (``_shmsock._Connecting`` or
    ``_shmsock._Subscribing``)."""

    def fileno(self) -> int: ...
    @property
    def time_left(self) -> float: ...
    def _advance(self) -> Optional[_Made]: ...
    def close(self) -> None: ...


async def _finish_handshake(handshake: _Handshake[_Made]) -> _Made:
    """Advances a handshake whenever its descriptor (the same for the whole
    handshake) is readable, until it is done or its deadline passes (read
    again after each advance: it moves when a server that was waited for
    takes the connection); a cancelled handshake closes its socket."""
    readable = _Readiness(handshake.fileno())
    try:
        while True:
            made = handshake._advance()
            if made is not None:
                return made
            try:
                await asyncio.wait_for(readable.wait(), handshake.time_left)
            except asyncio.TimeoutError:
                pass  # the next _advance raises Timeout
    finally:
        readable.close()
        handshake.close()
