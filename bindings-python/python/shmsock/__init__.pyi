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

from typing import Iterable, Optional, Union

from ._shmsock import (
    AddressInUse as AddressInUse,
    AuthenticationFailed as AuthenticationFailed,
    BufferTooSmall as BufferTooSmall,
    CallbackError as CallbackError,
    Client as Client,
    Closed as Closed,
    Connection as Connection,
    Credentials as Credentials,
    Error as Error,
    HandshakeRejected as HandshakeRejected,
    InsecureKeyFile as InsecureKeyFile,
    InvalidArgument as InvalidArgument,
    InvalidKey as InvalidKey,
    InvalidName as InvalidName,
    Io as Io,
    Keypair as Keypair,
    Listener as Listener,
    MessageTooLarge as MessageTooLarge,
    NoCommonCipher as NoCommonCipher,
    NotFound as NotFound,
    PeerClosed as PeerClosed,
    PeerGone as PeerGone,
    PendingClient as PendingClient,
    PermissionDenied as PermissionDenied,
    ProtocolVersion as ProtocolVersion,
    ProtocolViolation as ProtocolViolation,
    PublicKey as PublicKey,
    ResourceExhausted as ResourceExhausted,
    Server as Server,
    ServerKeyMismatch as ServerKeyMismatch,
    Stats as Stats,
    Stream as Stream,
    Timeout as Timeout,
    WouldBlock as WouldBlock,
    __version__ as __version__,
)

KeyLike = Union[PublicKey, str, bytes]
"""A public key: a :class:`PublicKey`, its text form or its 32 raw bytes."""

def connect(
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
    wait: Optional[float] = None,
) -> Stream:
    """Connects to endpoint ``name``; the same as :meth:`Stream.connect`
    (``wait``: seconds to keep trying while no server listens)."""

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

__all__ = [
    "AddressInUse",
    "AuthenticationFailed",
    "BufferTooSmall",
    "CallbackError",
    "Client",
    "Closed",
    "Connection",
    "Credentials",
    "Error",
    "HandshakeRejected",
    "InsecureKeyFile",
    "InvalidArgument",
    "InvalidKey",
    "InvalidName",
    "Io",
    "KeyLike",
    "Keypair",
    "Listener",
    "MessageTooLarge",
    "NoCommonCipher",
    "NotFound",
    "PeerClosed",
    "PeerGone",
    "PendingClient",
    "PermissionDenied",
    "ProtocolVersion",
    "ProtocolViolation",
    "PublicKey",
    "ResourceExhausted",
    "Server",
    "ServerKeyMismatch",
    "Stats",
    "Stream",
    "Timeout",
    "WouldBlock",
    "__version__",
    "bind",
    "connect",
]
