"""The receiving half of :mod:`shmsock.aio`'s streams and subscribers.

:class:`_Receiver` owns everything between a pollable source (a
:class:`shmsock.Stream` or :class:`shmsock.Subscriber`: ``try_recv`` until
WouldBlock arms its descriptor) and the coroutines waiting on it: the
descriptor's registration with the loop (once, for as long as anything can
come of it), the pending receives, the bounded read-ahead queue, spinning
before sleeping, timeouts and cancellation that lose nothing, and the end.
Sends waiting for room (a stream's) wake on the same descriptor, so their
queue lives here too; a subclass resumes them in ``_resume_sends``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from types import TracebackType
from typing import Any, Deque, Optional, Protocol, Tuple, Type, TypeVar

from ._shmsock import BufferTooSmall, Closed, Error, PeerClosed, Timeout, WouldBlock, _SpinHistory

# Read-ahead bounds while no receive waits.
_AHEAD_MESSAGES = 64
_AHEAD_BYTES = 1 << 20
# How long a receive looks at the source before it sleeps, and when it stops
# looking (see _Receiver._spin).
_SPIN = 30e-6
# A receive that finds its message at once lets the loop run other tasks
# first once in this many calls.
_YIELD_EVERY = 64
# What ``_Receiver._now`` says when it has no message.
_QUEUE: Any = object()
_ARMED: Any = object()
# ``timeout=`` not given: the source's own recv_timeout.
_DEFAULT: Any = object()

# A pending receive: its future and, for recv_into, the buffer.
_Waiter = Tuple["asyncio.Future[Any]", Optional[memoryview]]

_R = TypeVar("_R", bound="_Receiver")


def _check_timeout(timeout: Any) -> None:
    """A ``timeout=`` other than None: a number of seconds, >= 0."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not '{type(timeout).__name__}'")
    if not timeout >= 0:
        raise ValueError(f"timeout must be >= 0 (or None to wait forever), not {timeout}")


class _Source(Protocol):
    """What a receiver needs of the blocking object it wraps."""

    @property
    def recv_timeout(self) -> Optional[float]: ...
    @property
    def closed(self) -> bool: ...
    def recv(self, timeout: Optional[float] = ...) -> bytes: ...
    def try_recv(self) -> bytes: ...
    def try_recv_into(self, buffer: Any) -> int: ...
    def close(self) -> None: ...
    def fileno(self) -> int: ...


class _Receiver:
    """Receiving through the event loop (see the module docstring)."""

    def __init__(self, source: _Source, what: str) -> None:
        self._source = source
        self._what = what
        self._fd = source.fileno()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiters: Deque[_Waiter] = collections.deque()
        self._ahead: Deque[bytes] = collections.deque()
        self._ahead_bytes = 0
        # The receive side ended (PeerClosed, PeerGone, ...): once the read-ahead
        # queue is empty, receives raise it (the core repeats it on every call).
        self._ended = False
        # Sends waiting for room, in order (a stream's; see _resume_sends).
        self._sends: Deque[Tuple[asyncio.Future[None], Any]] = collections.deque()
        # When looking at the ring pays (the core's rule: see _spin).
        self._spins = _SpinHistory()
        # Receives since this receiver last let the loop run (see recv).
        self._streak = 0

    async def recv(self, timeout: Optional[float] = _DEFAULT) -> bytes:
        """Receives the next message, waiting up to ``timeout`` seconds (None:
        forever; omitted: the stream's ``recv_timeout``), then raises Timeout.
        Raises PeerClosed once the peer closed and every message it sent was
        received, PeerGone if it died. A timed-out or cancelled receive loses
        no message."""
        message: bytes = await self._receive(None, timeout)
        return message

    def _turn(self, timeout: Optional[float]) -> bool:
        """Checks ``timeout``; True when this receive lets the loop run first.
        A receive that finds its message at once (see ``_now``) gives the loop
        no turn, so every _YIELD_EVERY-th one does, before it takes anything
        (a cancel there loses nothing): a peer that keeps the ring full cannot
        starve the loop's other tasks."""
        if timeout is not _DEFAULT and timeout is not None:
            _check_timeout(timeout)
        self._streak += 1
        if self._streak < _YIELD_EVERY:
            return False
        self._streak = 0
        return True

    def _now(self, into: Optional[memoryview]) -> Any:
        """The usual case of a receive, with no future and no turn of the
        loop: nobody is ahead in line and a message is there (read ahead, or in
        the ring). Returns it (or, with ``into``, its length), or _QUEUE (wait
        in line) or _ARMED (none is there: the try armed the descriptor)."""
        if self._waiters:
            return _QUEUE
        if self._ahead:
            return self._take_ahead() if into is None else _QUEUE
        if self._ended or self._sends:
            return _QUEUE
        try:
            return self._source.try_recv() if into is None else self._source.try_recv_into(into)
        except WouldBlock:
            return _ARMED
        except BufferTooSmall:
            raise  # the message stays for the next receive
        except Error:
            # The end (PeerClosed, PeerGone, ...): the core repeats it on every
            # call, so later receives raise it too.
            self._ended = True
            self._update()
            raise

    def _take_ahead(self) -> bytes:
        message = self._ahead.popleft()
        self._ahead_bytes -= len(message)
        if self._loop is None:
            # The queue was full (unregistered): there is room again.
            self._update()
        return message

    async def recv_into(self, buffer: Any, timeout: Optional[float] = _DEFAULT) -> int:
        """Receives the next message into a writable buffer and returns its
        length (BufferTooSmall, with ``needed``, keeps the message)."""
        view = memoryview(buffer)
        if view.readonly:
            raise TypeError("recv_into needs a writable buffer (bytearray, memoryview, ...)")
        length: int = await self._receive(view.cast("B"), timeout)
        return length

    async def _receive(self, into: Optional[memoryview], timeout: Optional[float]) -> Any:
        """A receive: at once when it can (``_now``), else in line."""
        if self._turn(timeout):
            await asyncio.sleep(0)
        result = self._now(into)
        if result is _QUEUE or result is _ARMED:
            result = await self._wait_message(into, timeout, tried=result is _ARMED)
        return result

    async def _wait_message(self, into: Optional[memoryview], timeout: Optional[float], tried: bool = False) -> Any:
        """Waits in line for the next message. ``tried``: the caller found
        none just now (its try_recv raised WouldBlock, arming the descriptor),
        so there is nothing to serve before looking again."""
        if timeout is _DEFAULT:
            timeout = self._source.recv_timeout
        elif timeout is not None:
            _check_timeout(timeout)
        loop = self._attach()
        fut: asyncio.Future[Any] = loop.create_future()
        waiter: _Waiter = (fut, into)
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            if tried:
                self._update()
            else:
                self._serve()
            if not fut.done() and not self._sends and not self._ended:
                message = self._spin()
                if message is not None:
                    self._deliver(message)
        if not fut.done():
            self._streak = 0  # this receive lets the loop run
        timer = None
        if not fut.done() and timeout is not None:
            timer = loop.call_later(timeout, self._expire, waiter)
        try:
            return await fut
        except asyncio.CancelledError:
            self._give_back(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            # A receive that got its message (or its error) left the line
            # already; a cancelled one leaves it now.
            if fut.cancelled() or not fut.done():
                self._forget(waiter)

    def _expire(self, waiter: _Waiter) -> None:
        fut = waiter[0]
        if not fut.done():
            self._forget(waiter)
            fut.set_exception(Timeout("recv timed out: no message arrived; nothing was lost"))

    def _forget(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        self._update()

    def _give_back(self, waiter: _Waiter) -> None:
        """A receive was cancelled after its message was handed to it: the
        message goes back first in line."""
        fut, into = waiter
        if fut.done() and not fut.cancelled() and fut.exception() is None and into is None:
            message = fut.result()
            self._ahead.appendleft(message)
            self._ahead_bytes += len(message)

    def _deliver(self, message: bytes) -> None:
        """Hands ``message`` to the oldest waiter, or to the read-ahead queue."""
        while self._waiters:
            fut, into = self._waiters.popleft()
            if fut.done():
                continue
            if into is None:
                fut.set_result(message)
            elif len(message) <= len(into):
                into[: len(message)] = message
                fut.set_result(len(message))
            else:
                error = BufferTooSmall(
                    f"the message is {len(message)} bytes, the buffer {len(into)}; the message was kept"
                )
                error.needed = len(message)
                fut.set_exception(error)
                self._ahead.appendleft(message)
                self._ahead_bytes += len(message)
                return
            return
        self._ahead.append(message)
        self._ahead_bytes += len(message)

    def _has_room(self) -> bool:
        return bool(self._waiters or self._sends) or (
            len(self._ahead) < _AHEAD_MESSAGES and self._ahead_bytes < _AHEAD_BYTES
        )

    def _serve(self) -> None:
        """Serves the waiters from the read-ahead queue, then receives what is
        there (the work of one readiness of the descriptor)."""
        while self._waiters and self._ahead:
            message = self._ahead.popleft()
            self._ahead_bytes -= len(message)
            self._deliver(message)
        while not self._ended and not self._source.closed and self._has_room():
            try:
                message = self._source.try_recv()
            except WouldBlock:
                # Every wake-up was consumed: the waiting sends look again
                # (freed space may be among them). If one consumed the
                # wake-ups in turn, the receive side looks once more without
                # consuming any (recv with a zero timeout).
                if not self._sends or self._resume_sends():
                    break
                recheck = self._recheck()
                if recheck is None:
                    break
                message = recheck
            except Error:
                self._ended = True
                break
            self._deliver(message)
        if self._ended and not self._ahead:
            self._fail_waiters()
        self._update()

    def _spin(self) -> Optional[bytes]:
        """Before a receive sleeps: looks at the ring for up to _SPIN seconds
        without a system call and without consuming a wake-up (a reply from a
        peer on another core usually comes sooner than a wake-up through the
        kernel). When to look is the core's rule, the one every blocking wait
        and every binding follows (``_SpinHistory``, ``wait::SpinHistory``): it
        keeps looking while at least two looks in three find the message, so a
        slow peer, or one on this core, where looking only delays it, soon
        makes it look only now and then; it then hands the CPU over to a peer
        on this core instead (``_hand_over``)."""
        budget = self._spins.budget(_SPIN)
        if budget is None:
            return self._hand_over()
        until = time.perf_counter() + budget
        while True:
            message = self._recheck()
            if message is not None:
                self._spins.found()
                return message
            if self._ended or time.perf_counter() >= until:
                self._spins.missed()
                return None

    def _hand_over(self) -> Optional[bytes]:
        """Before a receive sleeps, when spinning does not pay: a stream hands
        the CPU over to a peer on this CPU (see ``Stream._hand_over``); a
        subscriber does not."""
        return None

    def _recheck(self) -> Optional[bytes]:
        """Looks at the source once without consuming the descriptor's
        wake-ups (a stream's zero-timeout recv); a subscriber overrides it."""
        try:
            return self._source.recv(timeout=0)
        except Timeout:
            return None
        except Error:
            self._ended = True
            return None

    def _fail_waiters(self) -> None:
        while self._waiters:
            fut, _ = self._waiters.popleft()
            if fut.done():
                continue
            try:
                message = self._source.try_recv()
            except BaseException as e:  # the core repeats the end on every call
                fut.set_exception(e)
            else:  # cannot happen once ended; never drop a message
                fut.set_result(message)

    # ------------------------------------------------------------ the loop

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._unregister()
        return loop

    def _on_readable(self) -> None:
        if self._sends:
            self._resume_sends()
        self._serve()

    def _update(self) -> None:
        """Keeps the descriptor registered while anything can come of it."""
        want = not self._source.closed and (bool(self._sends) or (not self._ended and self._has_room()))
        if want and self._loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            loop.add_reader(self._fd, self._on_readable)
            self._loop = loop
        elif not want:
            self._unregister()

    def _unregister(self) -> None:
        if self._loop is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            self._loop = None

    def _close_source(self) -> None:
        """Closes the source without blocking the loop (see ``Stream``)."""
        self._source.close()

    def close(self) -> None:
        """Closes it (a stream's peer receives every message sent before, then
        PeerClosed; a subscriber leaves its topic); pending receives and sends
        raise Closed. Idempotent."""
        self._unregister()
        self._close_source()
        self._ahead.clear()
        self._ahead_bytes = 0
        self._ended = True
        self._fail_waiters()
        while self._sends:
            fut, _ = self._sends.popleft()
            if not fut.done():
                fut.set_exception(Closed(f"the {self._what} was closed"))

    def _resume_sends(self) -> bool:
        """Resumes the waiting sends in order; True when none is left (a
        receiver that sends overrides it)."""
        return True

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._source.closed

    def fileno(self) -> int:
        """The pollable descriptor (registered with the loop while anything
        can come of it)."""
        return self._fd

    async def __aenter__(self: _R) -> _R:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __aiter__(self: _R) -> _R:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except PeerClosed:
            raise StopAsyncIteration from None
