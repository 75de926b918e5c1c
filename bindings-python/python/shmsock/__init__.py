"""Encrypted, authenticated message sockets over shared memory.

Programs on one machine exchange messages through a shared-memory segment per
connection, after a Noise IK handshake that pins the server's key; every frame
is sealed with AEGIS-128L or ChaCha20-Poly1305.

Blocking API (threads)::

    import shmsock

    server_key = shmsock.Keypair.generate()
    with shmsock.Listener.bind("echo", keypair=server_key) as listener:
        ...                                  # in the server process
        with listener.accept() as stream:
            stream.send(stream.recv())

    with shmsock.connect("echo", server_key=server_key.public_key) as stream:
        stream.send(b"hello")                # in the client process
        print(stream.recv(timeout=1.0))

Event-driven: :class:`Server` and :class:`Client` take callbacks. asyncio:
:mod:`shmsock.aio`. Every error is a :class:`shmsock.Error` subclass with a
stable ``code``.
"""

from typing import Iterable as _Iterable
from typing import Optional as _Optional
from typing import Union as _Union

from . import _shmsock
from ._shmsock import (
    CallbackError,
    Client,
    Connection,
    Credentials,
    Error,
    Keypair,
    Listener,
    PendingClient,
    PublicKey,
    Publisher,
    Server,
    Stats,
    Stream,
    Subscriber,
    SubscriberInfo,
    __version__,
)

# One exception class per core error kind (Timeout, PeerGone, ...), made by the
# native module from the core's table of kinds: re-exported without a list here.
globals().update((cls.__name__, cls) for cls in _shmsock._error_classes)

KeyLike = _Union[PublicKey, str, bytes]
"""A public key: a :class:`PublicKey`, its text form or its 32 raw bytes."""


def connect(
    name: str,
    *,
    server_key: KeyLike,
    keypair: _Optional[Keypair] = None,
    ring_size: _Optional[int] = None,
    max_message_size: _Optional[int] = None,
    send_timeout: _Optional[float] = None,
    recv_timeout: _Optional[float] = None,
    handshake_timeout: _Optional[float] = None,
    spin: _Optional[float] = None,
    require_chacha: bool = False,
    wait: _Optional[float] = None,
) -> Stream:
    """Connects to endpoint ``name``; the same as :meth:`Stream.connect`
    (``wait``: seconds to keep trying while no server listens)."""
    return Stream.connect(
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
        wait=wait,
    )


def bind(
    name: str,
    *,
    keypair: Keypair,
    allowed_clients: _Optional[_Iterable[KeyLike]] = None,
    allowed_uids: _Optional[_Iterable[int]] = None,
    ring_size: _Optional[int] = None,
    max_message_size: _Optional[int] = None,
    send_timeout: _Optional[float] = None,
    recv_timeout: _Optional[float] = None,
    handshake_timeout: _Optional[float] = None,
    spin: _Optional[float] = None,
    backend: _Optional[str] = None,
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


def subscribe(
    name: str,
    *,
    server_key: KeyLike,
    keypair: _Optional[Keypair] = None,
    max_message_size: _Optional[int] = None,
    recv_timeout: _Optional[float] = None,
    handshake_timeout: _Optional[float] = None,
    spin: _Optional[float] = None,
    require_chacha: bool = False,
    wait: _Optional[float] = None,
) -> Subscriber:
    """Subscribes to topic ``name``; the same as :meth:`Subscriber.connect`."""
    return Subscriber.connect(
        name,
        server_key=server_key,
        keypair=keypair,
        max_message_size=max_message_size,
        recv_timeout=recv_timeout,
        handshake_timeout=handshake_timeout,
        spin=spin,
        require_chacha=require_chacha,
        wait=wait,
    )


__all__ = [
    "CallbackError",
    "Client",
    "Connection",
    "Credentials",
    "Error",
    "KeyLike",
    "Keypair",
    "Listener",
    "PendingClient",
    "PublicKey",
    "Publisher",
    "Server",
    "Stats",
    "Stream",
    "Subscriber",
    "SubscriberInfo",
    "__version__",
    "bind",
    "connect",
    "subscribe",
    *sorted(cls.__name__ for cls in _shmsock._error_classes),
]
