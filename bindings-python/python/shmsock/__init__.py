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

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._options import (
    ClientOptions as ClientOptions,
    ConnectOptions as ConnectOptions,
    KeyLike as KeyLike,
    ListenOptions as ListenOptions,
    PublishOptions as PublishOptions,
    ServerOptions as ServerOptions,
    SubscribeOptions as SubscribeOptions,
)
from ._shmsock import (
    CallbackError as CallbackError,
    Client as Client,
    Connection as Connection,
    Credentials as Credentials,
    Error as Error,
    Keypair as Keypair,
    Listener as Listener,
    PublicKey as PublicKey,
    Publisher as Publisher,
    Server as Server,
    Stats as Stats,
    Stream as Stream,
    Subscriber as Subscriber,
    SubscriberInfo as SubscriberInfo,
    __version__ as __version__,
)

# One exception class per core error kind, made by the native module from the
# core's table of kinds; tests/test_errors.py checks this list against it.
# isort: split
from ._shmsock import (
    # BEGIN GENERATED: error imports (from the core's table of kinds; tools/gen_error_stubs.py)
    AddressInUse as AddressInUse,
    AuthenticationFailed as AuthenticationFailed,
    BufferTooSmall as BufferTooSmall,
    Closed as Closed,
    HandshakeRejected as HandshakeRejected,
    InsecureKeyFile as InsecureKeyFile,
    InvalidArgument as InvalidArgument,
    InvalidKey as InvalidKey,
    InvalidName as InvalidName,
    Io as Io,
    MessageTooLarge as MessageTooLarge,
    NoCommonCipher as NoCommonCipher,
    NotFound as NotFound,
    PeerClosed as PeerClosed,
    PeerGone as PeerGone,
    PermissionDenied as PermissionDenied,
    ProtocolVersion as ProtocolVersion,
    ProtocolViolation as ProtocolViolation,
    ResourceExhausted as ResourceExhausted,
    ServerKeyMismatch as ServerKeyMismatch,
    Timeout as Timeout,
    WouldBlock as WouldBlock,
    # END GENERATED: error imports
)

if _TYPE_CHECKING:
    from typing_extensions import Unpack as _Unpack


def connect(name: str, *, server_key: KeyLike, **options: "_Unpack[ConnectOptions]") -> Stream:
    """Connects to endpoint ``name``; the same as :meth:`Stream.connect`
    (``wait``: seconds to wait for a server to appear)."""
    return Stream.connect(name, server_key=server_key, **options)


def bind(name: str, *, keypair: Keypair, **options: "_Unpack[ListenOptions]") -> Listener:
    """Binds endpoint ``name``; the same as :meth:`Listener.bind`."""
    return Listener.bind(name, keypair=keypair, **options)


def subscribe(name: str, *, server_key: KeyLike, **options: "_Unpack[SubscribeOptions]") -> Subscriber:
    """Subscribes to topic ``name``; the same as :meth:`Subscriber.connect`."""
    return Subscriber.connect(name, server_key=server_key, **options)


__all__ = [  # noqa: RUF022 (the API, then the error classes, each sorted)
    "CallbackError",
    "Client",
    "Connection",
    "Credentials",
    "Error",
    "ClientOptions",
    "ConnectOptions",
    "KeyLike",
    "Keypair",
    "ListenOptions",
    "Listener",
    "PublishOptions",
    "PublicKey",
    "Publisher",
    "Server",
    "ServerOptions",
    "Stats",
    "Stream",
    "SubscribeOptions",
    "Subscriber",
    "SubscriberInfo",
    "__version__",
    "bind",
    "connect",
    "subscribe",
    # BEGIN GENERATED: error names (from the core's table of kinds; tools/gen_error_stubs.py)
    "AddressInUse",
    "AuthenticationFailed",
    "BufferTooSmall",
    "Closed",
    "HandshakeRejected",
    "InsecureKeyFile",
    "InvalidArgument",
    "InvalidKey",
    "InvalidName",
    "Io",
    "MessageTooLarge",
    "NoCommonCipher",
    "NotFound",
    "PeerClosed",
    "PeerGone",
    "PermissionDenied",
    "ProtocolVersion",
    "ProtocolViolation",
    "ResourceExhausted",
    "ServerKeyMismatch",
    "Timeout",
    "WouldBlock",
    # END GENERATED: error names
]
