"""The option keywords of each entry point, for type checkers.

Each TypedDict types the ``**options`` of one entry point: ``ConnectOptions``
those of :meth:`shmsock.Stream.connect`, :func:`shmsock.connect` and
``shmsock.aio.connect``; ``ListenOptions`` those of ``bind``; and so on. Each
keyword is declared once, in one of the small private groups below, and every
signature (the native module's stubs, ``shmsock``, ``shmsock.aio``) takes
``**options: Unpack[...]`` of one of them. The native module checks the
keywords at run time from its own table (``src/options.rs``, ``KEYWORDS``);
tests/test_options.py checks that both say the same. What each option does is
documented on the native entry points (``help(shmsock.Stream.connect)``).
"""

from __future__ import annotations

from typing import Iterable, Literal, Optional, TypedDict, Union

from ._shmsock import Keypair, PublicKey

KeyLike = Union[PublicKey, str, bytes]
"""A public key: a :class:`PublicKey`, its text form or its 32 raw bytes."""


# ------------------------------------------------------------ the groups


class _Handshake(TypedDict, total=False):
    handshake_timeout: Optional[float]
    spin: Optional[float]
    require_chacha: bool


class _Identity(TypedDict, total=False):
    keypair: Optional[Keypair]


class _Access(TypedDict, total=False):
    allowed_clients: Optional[Iterable[KeyLike]]
    allowed_uids: Optional[Iterable[int]]


class _Size(TypedDict, total=False):
    max_message_size: Optional[int]


class _Receive(_Size, total=False):
    recv_timeout: Optional[float]


class _Ring(TypedDict, total=False):
    ring_size: Optional[int]


class _Send(TypedDict, total=False):
    send_timeout: Optional[float]


class _Backend(TypedDict, total=False):
    backend: Optional[Literal["memfd", "named"]]


class _Queue(TypedDict, total=False):
    max_queued_bytes: Optional[int]


class _Reassembly(TypedDict, total=False):
    max_reassembly_bytes: Optional[int]


class _Connections(TypedDict, total=False):
    max_connections: Optional[int]
    max_connections_per_uid: Optional[int]


class _Pending(TypedDict, total=False):
    max_pending_handshakes: Optional[int]
    max_pending_handshakes_per_uid: Optional[int]


class _Dispatch(TypedDict, total=False):
    dispatch_threads: Optional[int]


class _Wait(TypedDict, total=False):
    wait: Optional[float]


class _Topic(TypedDict, total=False):
    slots: Optional[int]
    policy: Literal["reliable", "latest"]
    reliable_timeout: Optional[float]
    rekey_interval: Optional[float]
    max_subscribers: Optional[int]


# ------------------------------------------------------------ the entry points


class ConnectOptions(_Identity, _Handshake, _Receive, _Ring, _Send, _Wait, total=False):
    """``Stream.connect``, ``shmsock.connect``, ``aio.connect``."""


class ClientOptions(ConnectOptions, total=False):
    """``shmsock.Client(...)`` (the same keywords as ``connect``)."""


class ListenOptions(
    _Access, _Handshake, _Receive, _Ring, _Send, _Backend, _Reassembly, _Connections, _Pending, total=False
):
    """``Listener.bind``, ``shmsock.bind``, ``aio.bind``."""


class ServerOptions(
    _Access, _Handshake, _Receive, _Ring, _Backend, _Queue, _Reassembly, _Connections, _Pending, _Dispatch, total=False
):
    """``shmsock.Server(...)``."""


class SubscribeOptions(_Identity, _Handshake, _Receive, _Wait, total=False):
    """``Subscriber.connect``, ``shmsock.subscribe``, ``aio.subscribe``."""


class PublishOptions(_Access, _Handshake, _Size, _Topic, _Pending, total=False):
    """``Publisher.bind``, ``aio.Publisher.bind``."""
