"""asyncio publish/subscribe (re-exported by :mod:`shmsock.aio`).

A :class:`Subscriber` receives as :class:`shmsock.aio.Stream` does (the
shared machinery is ``shmsock._aio_receive``): its pollable descriptor is
registered with the loop once, when it subscribes, and stays registered; when
it is readable, the subscriber takes every message there and hands them to the
pending ``recv()`` calls in the same step, so a message costs one wake-up of
the loop and no ``epoll_ctl``. Messages that arrive while nobody waits are read
ahead into a small bounded queue; when it is full the descriptor is
unregistered until a receive takes from it (on a reliable topic the publisher
then waits for this subscriber, as it would for a blocking one).

A :class:`Publisher` never blocks the loop and uses no thread: it publishes
with the core's ``try_publish``. When a reliable topic's ring is full (the
slowest subscriber still holds the oldest slot) the message waits in order in
the publisher's queue; the publisher's descriptor, registered with the loop
while something waits, says when a subscriber moved on, and a timer set to
``publish_deadline`` makes the call that drops the subscribers still in the
way once the topic's ``reliable_timeout`` has passed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any, Deque, List, Optional, Tuple, Type

from . import _shmsock
from ._aio_handshake import _finish_handshake, _Readiness
from ._aio_receive import _Receiver
from ._options import KeyLike, PublishOptions, SubscribeOptions
from ._shmsock import Closed, Credentials, Error, Keypair, PublicKey, SubscriberInfo, Timeout, WouldBlock

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Subscriber(_Receiver):
    """An asyncio subscriber: the same subscription as
    :class:`shmsock.Subscriber`, with coroutines. Get one from ``await
    aio.subscribe(...)`` (or ``async with aio.subscribe(...) as sub:``), or
    wrap a blocking one with ``aio.Subscriber(subscriber)``. ``await
    recv(timeout=...)``, ``await recv_into(buffer)``, ``async for``, as for
    :class:`Stream`."""

    def __init__(self, subscriber: _shmsock.Subscriber) -> None:
        """Wraps a :class:`shmsock.Subscriber` (which it then owns)."""
        super().__init__(subscriber, "subscriber")
        self._sub = subscriber
        # Read ahead from the start (a reliable publisher would otherwise wait
        # for this subscriber until its first recv): the first try_recv arms
        # the descriptor, which the publisher signals only after a WouldBlock.
        self._serve()

    @classmethod
    async def connect(
        cls,
        name: str,
        *,
        server_key: KeyLike,
        **options: Unpack[SubscribeOptions],
    ) -> Subscriber:
        """Subscribes to topic ``name`` (options as for
        :meth:`shmsock.Subscriber.connect`). The handshake runs on the loop
        without waiting, ``wait`` for a publisher that is not there yet too:
        no executor thread."""
        subscribing = _shmsock.Subscriber._subscribe_start(name, server_key=server_key, **options)
        return cls(await _finish_handshake(subscribing))

    def _recheck(self) -> Optional[bytes]:
        # A subscriber's try_recv looks without losing a wake-up: a WouldBlock
        # (re)arms the descriptor. Its zero-timeout recv would not: it leaves
        # the sleep word disarmed, so the publisher would not signal it.
        try:
            return self._sub.try_recv()
        except WouldBlock:
            return None
        except Error:
            self._ended = True
            return None

    @property
    def subscriber(self) -> _shmsock.Subscriber:
        """The underlying blocking :class:`shmsock.Subscriber`."""
        return self._sub

    @property
    def lost(self) -> int:
        """Messages lost to lag so far (latest topics)."""
        return self._sub.lost

    @property
    def received(self) -> int:
        """Messages taken from the topic so far (read-ahead included)."""
        return self._sub.received

    @property
    def epoch(self) -> int:
        """The newest group-key epoch received."""
        return self._sub.epoch

    @property
    def topic(self) -> str:
        """The topic name."""
        return self._sub.topic

    @property
    def publisher_public_key(self) -> PublicKey:
        """The publisher's public key (the pinned one)."""
        return self._sub.publisher_public_key

    @property
    def publisher_credentials(self) -> Credentials:
        """The publisher process's pid, uid and gid, from the kernel."""
        return self._sub.publisher_credentials

    @property
    def cipher(self) -> str:
        """The topic's AEAD."""
        return self._sub.cipher

    def __repr__(self) -> str:
        return f"<shmsock.aio.Subscriber {self._sub!r}>"


class Publisher:
    """An asyncio publisher: ``await publish(data)`` never blocks the loop
    (see the module docstring). Messages are published in the order of the
    ``publish`` calls. A publish cancelled while a reliable topic waits for
    room is still published."""

    def __init__(self, publisher: _shmsock.Publisher) -> None:
        """Wraps a bound :class:`shmsock.Publisher` (which it then owns)."""
        self._pub = publisher
        # Messages waiting for room, oldest first, each with its caller's future.
        self._waiting: Deque[Tuple[Any, asyncio.Future[None]]] = deque()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd = -1
        self._timer: Optional[asyncio.TimerHandle] = None

    @classmethod
    def bind(
        cls,
        name: str,
        *,
        keypair: Keypair,
        **options: Unpack[PublishOptions],
    ) -> Publisher:
        """Binds topic ``name`` (options as for :meth:`shmsock.Publisher.bind`).
        Binding does not wait."""
        return cls(_shmsock.Publisher.bind(name, keypair=keypair, **options))

    async def publish(self, data: Any) -> None:
        """Publishes one message (any bytes-like object; do not change it
        until this returns). MessageTooLarge above ``max_message_size``."""
        if not self._waiting:
            try:
                self._pub.try_publish(data)
                return
            except WouldBlock:
                pass
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        # A cancelled await leaves the message queued; its outcome is dropped.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append((data, fut))
        if self._loop is None:
            self._loop, self._fd = loop, self._pub.fileno()
            loop.add_reader(self._fd, self._flush)
        self._set_timer()
        await asyncio.shield(fut)

    def _flush(self) -> None:
        """Publishes what waits, in order, until the ring is full again."""
        while self._waiting:
            data, fut = self._waiting[0]
            try:
                self._pub.try_publish(data)
            except WouldBlock:
                self._set_timer()
                return
            except Error as e:
                self._waiting.popleft()
                if not fut.done():
                    fut.set_exception(e)
                continue
            self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)
        self._stop_watching()

    def _set_timer(self) -> None:
        """A wake-up at the deadline after which a blocked publish drops the
        subscribers in its way (the descriptor says nothing then)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        left = self._pub.publish_deadline
        if left is not None and self._loop is not None:
            self._timer = self._loop.call_later(left, self._flush)

    def _stop_watching(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    async def wait_for_subscribers(self, n: int, timeout: Optional[float] = None) -> None:
        """Waits until at least ``n`` subscribers are connected (Timeout after
        ``timeout`` seconds), on the loop: the publisher's membership
        descriptor says when one joins or leaves."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"timeout must be a number of seconds or None, not '{type(timeout).__name__}'")
        readable = _Readiness(self._pub.membership_fileno())

        async def joined() -> None:
            while not self._pub.try_wait_for_subscribers(n):
                await readable.wait()

        try:
            await asyncio.wait_for(joined(), timeout)
        except asyncio.TimeoutError:
            count = self._pub.subscriber_count
            raise Timeout(f"{count} of {n} subscribers connected in time") from None
        finally:
            readable.close()

    def remove(self, id: int) -> None:
        """Removes subscriber ``id``; the key is rotated before this returns."""
        self._pub.remove(id)

    def rotate_key(self) -> None:
        """Rotates the group key now."""
        self._pub.rotate_key()

    def close(self) -> None:
        """Closes the topic (subscribers receive everything published before,
        then PeerClosed). Idempotent."""
        self._stop_watching()
        self._pub.close()
        while self._waiting:
            _, fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(Closed("the publisher was closed"))

    @property
    def publisher(self) -> _shmsock.Publisher:
        """The underlying blocking :class:`shmsock.Publisher`."""
        return self._pub

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._pub.closed

    @property
    def name(self) -> str:
        """The topic name."""
        return self._pub.name

    @property
    def public_key(self) -> PublicKey:
        """The publisher's public key, which subscribers pin."""
        return self._pub.public_key

    @property
    def policy(self) -> str:
        """``"reliable"`` or ``"latest"``."""
        return self._pub.policy

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are connected now."""
        return self._pub.subscriber_count

    @property
    def subscribers(self) -> List[SubscriberInfo]:
        """The subscribers now."""
        return self._pub.subscribers

    @property
    def epoch(self) -> int:
        """The current key epoch."""
        return self._pub.epoch

    @property
    def sequence(self) -> int:
        """How many messages were published."""
        return self._pub.sequence

    @property
    def dropped_count(self) -> int:
        """Subscribers dropped for holding up a reliable topic."""
        return self._pub.dropped_count

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shmsock.aio.Publisher {self._pub!r}>"
