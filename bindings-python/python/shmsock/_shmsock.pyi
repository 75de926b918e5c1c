"""Native module of shmsock (Rust, pyo3). Import :mod:`shmsock` instead."""

import builtins
from types import TracebackType
from typing import Callable, Dict, Iterator, List, Optional, Type, Union, final

from _typeshed import ReadableBuffer, StrPath, WriteableBuffer
from typing_extensions import Unpack

from ._options import (
    ClientOptions,
    ConnectOptions,
    KeyLike as _KeyLike,
    ListenOptions,
    PublishOptions,
    ServerOptions,
    SubscribeOptions,
)

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
    "Keypair",
    "Listener",
    "MessageTooLarge",
    "NoCommonCipher",
    "NotFound",
    "PeerClosed",
    "PeerGone",
    "PermissionDenied",
    "ProtocolVersion",
    "ProtocolViolation",
    "PublicKey",
    "Publisher",
    "ResourceExhausted",
    "Server",
    "ServerKeyMismatch",
    "Stats",
    "Stream",
    "Subscriber",
    "SubscriberInfo",
    "Timeout",
    "WouldBlock",
    "_Connecting",
    "_SpinHistory",
    "_Subscribing",
    "__version__",
    "_error_classes",
    "_option_keywords",
    "_shutdown_all",
]

__version__: str
"""The package version (the version of the Rust workspace)."""

# --------------------------------------------------------------------- errors

class Error(Exception):
    """Base class of every shmsock error. ``code`` is the stable name of the
    error (e.g. ``"TIMEOUT"``), ``numeric_code`` its stable number (0 for errors
    that do not come from the core), and ``str(error)`` says what happened and
    what to do."""

    code: str
    """The stable name of the error, e.g. ``"TIMEOUT"`` (the same in every language)."""
    numeric_code: int
    """The stable number of the error (the C ABI's result code); 0 when not from the core."""

class CallbackError(Error):
    """A Server or Client callback raised an exception; it is passed to
    on_error, and the original exception is the ``__cause__``."""

_error_classes: tuple[type[Error], ...]
"""The class of each core error kind, in code order (``shmsock`` re-exports them)."""

# BEGIN GENERATED: error classes (from the core's table of kinds; tools/gen_error_stubs.py)
class Timeout(Error, TimeoutError):
    """A blocking call ran out of time. Nothing was lost; the call may be retried."""

class WouldBlock(Error, BlockingIOError):
    """A `try_` call could not proceed without blocking. Nothing was lost."""

class Closed(Error):
    """The object was closed by this process and cannot be used any more."""

class PeerClosed(Error, ConnectionError):
    """The peer closed the connection cleanly; every message it sent was delivered."""

class PeerGone(Error, ConnectionResetError):
    """The peer process exited or was killed without closing the connection."""

class HandshakeRejected(Error, ConnectionRefusedError):
    """The server refused this client (its key is not on the allow-list, or its uid is not allowed)."""

class ServerKeyMismatch(Error, ConnectionError):
    """The server does not hold the key the client pinned (or the endpoint name differs)."""

class AuthenticationFailed(Error, ConnectionError):
    """A frame failed authentication: the shared memory was tampered with. The connection is over."""

class ProtocolVersion(Error, ConnectionError):
    """The two sides share no protocol version."""

class NoCommonCipher(Error, ConnectionError):
    """The two sides share no transport cipher."""

class ProtocolViolation(Error, ConnectionError):
    """The peer sent bytes that do not follow the protocol (malformed or truncated handshake,
    control message, frame or segment). The connection is over."""

class MessageTooLarge(Error, ValueError):
    """A message is larger than the receiver's maximum message size. Nothing was sent."""

class BufferTooSmall(Error, ValueError):
    """The caller's buffer is too small for the next message; the size it needs is reported and
    nothing was lost (the message is kept for the next call)."""

    needed: Optional[int]
    """How many bytes the next message needs."""

class InvalidName(Error, ValueError):
    """An endpoint name is empty, too long or has characters outside `[A-Za-z0-9._-]`."""

class AddressInUse(Error, OSError):
    """Another live process already serves this endpoint name."""

class NotFound(Error, FileNotFoundError):
    """No process serves this endpoint name, or a file (such as a key file) does not exist."""

class InvalidKey(Error, ValueError):
    """A key (text, bytes or key file contents) is malformed or unusable."""

class InsecureKeyFile(Error):
    """A key file is readable by other users; it is refused, as ssh does (chmod 600 it)."""

class InvalidArgument(Error, ValueError):
    """An argument is out of range or inconsistent (for example a zero ring size)."""

class ResourceExhausted(Error, OSError):
    """The system refused a resource (memory for a segment, file descriptors)."""

class PermissionDenied(Error, PermissionError):
    """The peer's uid is not allowed to connect, or the runtime directory is unsafe."""

class Io(Error, OSError):
    """Any other operating-system error."""

# END GENERATED: error classes

# ----------------------------------------------------------------------- keys

@final
class PublicKey:
    """A static X25519 public key: who a peer is.

    Build one from its text form (``"shmsock-pk:..."``) or its 32 raw bytes.
    ``str(key)`` is the text form, ``bytes(key)`` the raw bytes. Keys compare
    equal by value and are hashable."""

    def __new__(cls, key: Union[PublicKey, str, builtins.bytes], /) -> PublicKey:
        """A key from a PublicKey, its text form or its 32 raw bytes."""
    @staticmethod
    def from_text(text: str) -> PublicKey:
        """The key from its text form, ``shmsock-pk:<base64url>``."""
    @staticmethod
    def from_bytes(data: ReadableBuffer) -> PublicKey:
        """The key from its 32 raw bytes."""
    @property
    def text(self) -> str:
        """The text form, ``shmsock-pk:<base64url>`` (also ``str(key)``)."""
    @property
    def bytes(self) -> builtins.bytes:
        """The 32 raw bytes (also ``bytes(key)``)."""
    @property
    def fingerprint(self) -> str:
        """A short fingerprint for display, e.g. ``3f2a:9c11:07be:55d0``."""
    def __bytes__(self) -> builtins.bytes:
        """The 32 raw bytes."""
    def __eq__(self, value: object, /) -> bool:
        """Equal when the keys are the same."""
    def __hash__(self) -> int:
        """Hash of the key."""

@final
class Keypair:
    """A static X25519 keypair: the identity of a server or a client.

    Create one with ``Keypair.generate()``, keep it in a key file with
    ``save(path)`` (written 0600) and read it back with ``Keypair.load(path)``
    (a file that others can read is refused, as ssh does)."""

    @staticmethod
    def generate() -> Keypair:
        """A fresh random keypair."""
    @staticmethod
    def load(path: StrPath) -> Keypair:
        """Loads a key file written by ``save``. Raises NotFound, InvalidKey
        (malformed file) or InsecureKeyFile (group or others can read it)."""
    @staticmethod
    def from_secret_bytes(secret: ReadableBuffer) -> Keypair:
        """The keypair of a 32-byte secret key."""
    def save(self, path: StrPath) -> None:
        """Writes a new key file with mode 0600. Refuses to overwrite an
        existing file (InvalidArgument)."""
    @property
    def public_key(self) -> PublicKey:
        """The public half, which peers pin or allow."""
    @property
    def fingerprint(self) -> str:
        """The fingerprint of the public key, e.g. ``3f2a:9c11:07be:55d0``."""
    def secret_bytes(self) -> bytes:
        """The 32-byte secret key. Handle with care: it is this peer's identity."""

# -------------------------------------------------------------------- streams

@final
class Stats:
    """Message and byte counts of a stream (a snapshot)."""

    @property
    def messages_sent(self) -> int:
        """Messages sent."""
    @property
    def bytes_sent(self) -> int:
        """Payload bytes sent."""
    @property
    def messages_received(self) -> int:
        """Messages received."""
    @property
    def bytes_received(self) -> int:
        """Payload bytes received."""

@final
class Credentials:
    """Who is at the other end of a connection, per the kernel (SO_PEERCRED)."""

    @property
    def pid(self) -> int:
        """Process id (0 if the peer is in another pid namespace)."""
    @property
    def uid(self) -> int:
        """User id."""
    @property
    def gid(self) -> int:
        """Group id."""

@final
class _Connecting:
    """A connect in progress (see ``Stream._connect_start``)."""

    def fileno(self) -> int:
        """The descriptor to watch (the same for the whole connect): readable
        when ``_advance`` may make progress."""
    @property
    def time_left(self) -> float:
        """Seconds until the connect gives up (0 once past)."""
    def _advance(self) -> Optional[Stream]:
        """Finishes the connect if the server answered (None: not yet)."""
    def close(self) -> None:
        """Gives up: closes the socket. Idempotent."""

@final
class _SpinHistory:
    """Whether looking at a ring has paid lately (see ``shmsock.aio``)."""

    def __init__(self) -> None: ...
    def budget(self, spin: float) -> Optional[float]:
        """How many seconds to look now, of a full ``spin``: all of it while
        looking pays, else None, but now and then a short probe."""
    def found(self) -> None:
        """The look found what it waited for."""
    def missed(self) -> None:
        """The look ran out without finding it."""

@final
class _Subscribing:
    """A subscription in progress (see ``Subscriber._subscribe_start``)."""

    def fileno(self) -> int:
        """The descriptor to watch (the same for the whole handshake)."""
    @property
    def time_left(self) -> float:
        """Seconds until the subscription gives up (0 once past)."""
    def _advance(self) -> Optional[Subscriber]:
        """Takes the steps whose input is there (None: not done yet)."""
    def close(self) -> None:
        """Gives up: closes the socket. Idempotent."""

@final
class Stream:
    """An encrypted, authenticated message stream to one peer.

    Get one from ``Stream.connect(name, server_key=...)`` or
    ``Listener.accept()``. Messages keep their boundaries. Use it as a context
    manager or call ``close()``; iterating yields messages until the peer
    closes. A stream may be shared between threads."""

    @staticmethod
    def connect(
        name: str,
        *,
        server_key: _KeyLike,
        **options: Unpack[ConnectOptions],
    ) -> Stream:
        """Connects to the server of endpoint ``name`` and completes the
        handshake. ``server_key`` pins the server; ``keypair`` is this client's
        identity (a fresh one when None); ``send_timeout`` and ``recv_timeout``
        are the defaults of ``send()`` and ``recv()``; ``wait`` (seconds, at
        most a day) waits for a server to appear, then raises NotFound."""
    @staticmethod
    def _connect_start(
        name: str,
        *,
        server_key: _KeyLike,
        **options: Unpack[ConnectOptions],
    ) -> _Connecting:
        """For event loops: starts connecting without waiting (NotFound at
        once unless ``wait`` is given; a server to wait for is looked for
        again through the descriptor)."""
    @property
    def recv_timeout(self) -> Optional[float]:
        """The default timeout of ``recv()`` in seconds (None: wait forever)."""
    def _send_resumable(self, data: ReadableBuffer) -> bool:
        """For event loops: sends what fits now; True when all of it is in the
        ring, False to call again with the same message once ``fileno()`` is
        readable."""
    def send(self, data: ReadableBuffer, timeout: Optional[float] = ...) -> None:
        """Sends one message (any bytes-like object, not copied), waiting while
        the ring is full up to ``timeout`` seconds (None: forever; omitted: the
        stream's send_timeout)."""
    def try_send(self, data: ReadableBuffer) -> None:
        """Sends one message only if all of it fits now; otherwise raises
        WouldBlock and sends nothing."""
    def recv(self, timeout: Optional[float] = ...) -> bytes:
        """Receives the next message, waiting up to ``timeout`` seconds (None:
        forever; omitted: the stream's recv_timeout)."""
    def recv_into(self, buffer: WriteableBuffer, timeout: Optional[float] = ...) -> int:
        """Receives the next message into ``buffer`` and returns its length;
        BufferTooSmall (with ``needed``) keeps the message."""
    def try_recv(self) -> bytes:
        """Receives the next message if one is complete now; otherwise raises
        WouldBlock and ``fileno()`` becomes readable when one arrives."""
    def try_recv_into(self, buffer: WriteableBuffer) -> int:
        """As ``recv_into`` without waiting."""
    def _recv_now(self) -> Optional[bytes]:
        """For event loops: ``recv(timeout=0)``, None instead of Timeout."""
    def _hand_over(self) -> bool:
        """For event loops about to sleep: hands the CPU over to a peer on
        this CPU; True when a message is there now."""
    def close(self) -> None:
        """Closes the stream; the peer receives every message sent before,
        then PeerClosed. Idempotent."""
    def _close_nowait(self) -> bool:
        """For event loops: ``close()`` without waiting (False: a thread waits
        for room for the CLOSE frame)."""
    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
    def fileno(self) -> int:
        """The pollable descriptor: readable when, after ``try_recv`` raised
        WouldBlock, a message, a close or the peer's death is pending."""
    @property
    def peer_public_key(self) -> PublicKey:
        """The peer's public key, authenticated by the handshake."""
    @property
    def local_public_key(self) -> PublicKey:
        """This side's public key."""
    @property
    def peer_credentials(self) -> Credentials:
        """The peer process's pid, uid and gid, from the kernel."""
    @property
    def stats(self) -> Stats:
        """Message and byte counts of this stream."""
    @property
    def cipher(self) -> str:
        """The transport cipher: ``"aegis-128l"`` or ``"chacha20-poly1305"``."""
    @property
    def backend(self) -> str:
        """The shared-memory backend: ``"memfd"`` or ``"named"``."""
    @property
    def ring_size(self) -> int:
        """The capacity of each ring in bytes."""
    @property
    def peer_max_message_size(self) -> int:
        """The largest message the peer accepts."""
    @property
    def endpoint(self) -> str:
        """The endpoint name."""
    @property
    def role(self) -> str:
        """``"client"`` (connected) or ``"server"`` (accepted)."""
    def __enter__(self) -> Stream:
        """Returns the stream."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        """Closes the stream."""
    def __iter__(self) -> Iterator[bytes]:
        """Iterates over messages until the peer closes."""
    def __next__(self) -> bytes:
        """The next message (StopIteration once the peer closed)."""

# ------------------------------------------------------------------ listener

@final
class Listener:
    """A bound endpoint that accepts clients.

    ``Listener.bind(name, keypair=...)`` claims the endpoint name;
    ``accept()`` waits for a client and completes its handshake. Refused
    clients are skipped (see ``rejected_count``). Use it as a context manager;
    iterating yields accepted streams until the listener is closed."""

    @staticmethod
    def bind(
        name: str,
        *,
        keypair: Keypair,
        **options: Unpack[ListenOptions],
    ) -> Listener:
        """Binds endpoint ``name`` with this server's ``keypair``.
        ``allowed_clients`` restricts the client keys, ``allowed_uids`` the
        uids; ``backend`` is ``"memfd"`` or ``"named"``."""
    def accept(self, timeout: Optional[float] = None) -> Stream:
        """Waits for a client and completes its handshake, up to ``timeout``
        seconds (None: forever)."""
    def _try_accept(self) -> Optional[Stream]:
        """Advances the handshakes in progress and takes waiting clients
        without waiting; a stream if one completed, else None."""
    def close(self) -> None:
        """Stops listening and releases the endpoint name. Idempotent."""
    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
    @property
    def name(self) -> str:
        """The endpoint name."""
    @property
    def public_key(self) -> PublicKey:
        """The server's public key, which clients pin."""
    @property
    def rejected_count(self) -> int:
        """How many clients failed the handshake so far."""
    def set_max_connections(self, max: int, per_uid: Optional[int] = None) -> None:
        """Changes how many accepted streams stay open at once (a client beyond
        them is refused at its handshake with ResourceExhausted)."""
    @property
    def last_rejection(self) -> Optional[Error]:
        """Why the last client failed the handshake (or None)."""
    def fileno(self) -> int:
        """The pollable descriptor: readable when a client waits, a handshake
        got its client's next record, or a handshake's deadline passed."""
    def __enter__(self) -> Listener:
        """Returns the listener."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        """Closes the listener."""
    def __iter__(self) -> Iterator[Stream]:
        """Iterates over accepted streams until the listener is closed."""
    def __next__(self) -> Stream:
        """The next accepted stream."""

# ------------------------------------------------------------- server, client

@final
class Connection:
    """One client of a Server, as passed to its callbacks. Usable from any
    thread; after on_close every call raises Closed."""

    @property
    def id(self) -> int:
        """A number unique within the server."""
    def send(self, data: ReadableBuffer) -> None:
        """Sends a message to this client without ever waiting: into its ring
        if it fits, else into the connection's bounded outbound queue (sent in
        order as the client reads). WouldBlock when the queue is full (a client
        that does not read): nothing was queued."""
    def try_send(self, data: ReadableBuffer) -> None:
        """Sends only if the message fits in the ring now and nothing is
        queued; otherwise WouldBlock and nothing is sent or queued."""
    @property
    def queued_messages(self) -> int:
        """Messages waiting in the outbound queue."""
    def close(self) -> None:
        """Closes this connection; on_close follows."""
    @property
    def peer_public_key(self) -> PublicKey:
        """The client's public key."""
    @property
    def local_public_key(self) -> PublicKey:
        """This side's public key: the server's."""
    @property
    def peer_credentials(self) -> Credentials:
        """The client process's pid, uid and gid."""
    @property
    def stats(self) -> Stats:
        """Message and byte counts."""
    @property
    def cipher(self) -> str:
        """The transport cipher: ``"aegis-128l"`` or ``"chacha20-poly1305"``
        (what the client's ``Stream.cipher`` says)."""
    @property
    def closed(self) -> bool:
        """True once this connection was closed by either side."""

@final
class Server:
    """An event-driven server: many clients served from one dispatch thread.

    Callbacks run on the dispatch thread: ``on_connect(connection)``,
    ``on_data(connection, data)``, ``on_error(connection_or_None, error)``,
    ``on_close(connection, reason_or_None)``. An exception raised by a
    callback reaches on_error as a CallbackError."""

    def __new__(
        cls,
        name: str,
        *,
        keypair: Keypair,
        on_connect: Optional[Callable[[Connection], object]] = None,
        on_data: Optional[Callable[[Connection, bytes], object]] = None,
        on_error: Optional[Callable[[Optional[Connection], Error], object]] = None,
        on_close: Optional[Callable[[Connection, Optional[Error]], object]] = None,
        **options: Unpack[ServerOptions],
    ) -> Server:
        """Binds endpoint ``name`` and starts serving; ``max_queued_bytes``
        bounds each connection's outbound queue (``Connection.send`` never
        waits)."""
    def close(self) -> None:
        """Stops serving: closes every connection (each gets on_close) and
        releases the endpoint. Idempotent."""
    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
    @property
    def name(self) -> str:
        """The endpoint name."""
    @property
    def public_key(self) -> PublicKey:
        """The server's public key, which clients pin."""
    @property
    def connections(self) -> List[Connection]:
        """The connected clients."""
    def __enter__(self) -> Server:
        """Returns the server."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        """Closes the server."""

@final
class Client:
    """An event-driven client of one endpoint: a reader thread calls
    ``on_data(data)``, ``on_error(error)`` and ``on_close(reason_or_None)``."""

    def __new__(
        cls,
        name: str,
        *,
        server_key: _KeyLike,
        on_data: Optional[Callable[[bytes], object]] = None,
        on_error: Optional[Callable[[Error], object]] = None,
        on_close: Optional[Callable[[Optional[Error]], object]] = None,
        **options: Unpack[ClientOptions],
    ) -> Client:
        """Connects to endpoint ``name`` and starts the reader thread
        (``wait``: seconds to keep trying while no server listens)."""
    def send(self, data: ReadableBuffer, timeout: Optional[float] = ...) -> None:
        """Sends a message."""
    def write(self, data: ReadableBuffer, timeout: Optional[float] = ...) -> None:
        """The same as ``send``."""
    def try_send(self, data: ReadableBuffer) -> None:
        """Sends only if the whole message fits now; otherwise WouldBlock."""
    def close(self) -> None:
        """Closes the connection; on_close has run when this returns."""
    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
    @property
    def server_public_key(self) -> PublicKey:
        """The server's public key."""
    @property
    def stats(self) -> Stats:
        """Message and byte counts."""
    def __enter__(self) -> Client:
        """Returns the client."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        """Closes the client."""

def _option_keywords() -> Dict[str, List[str]]:
    """Each entry point's option keywords (``src/options.rs``), for the test
    that checks them against ``shmsock._options``."""

def _shutdown_all() -> None:
    """Closes every Server and Client still running (registered with atexit)."""

# ----------------------------------------------------------- publish/subscribe

@final
class SubscriberInfo:
    """A subscriber as its publisher sees it (a snapshot)."""

    @property
    def id(self) -> int:
        """The publisher's number for it (for ``Publisher.remove``)."""
    @property
    def public_key(self) -> PublicKey:
        """Its static public key, authenticated by the handshake."""
    @property
    def credentials(self) -> Credentials:
        """Its process's pid, uid and gid, from the kernel."""
    @property
    def joined_at(self) -> int:
        """The sequence number of the first message it could read."""

@final
class Publisher:
    """The publishing end of a topic: each message is sealed once, into a ring
    only this process can write, for every subscriber. Use it as a context
    manager or call ``close()``."""

    @staticmethod
    def bind(
        name: str,
        *,
        keypair: Keypair,
        **options: Unpack[PublishOptions],
    ) -> Publisher:
        """Binds topic ``name``: ``slots`` (a power of two, default 64),
        ``max_message_size`` (default 64 KiB), ``policy`` ``"reliable"`` (wait
        for the slowest subscriber up to ``reliable_timeout`` seconds, default
        5, then drop it) or ``"latest"`` (overwrite; slow subscribers count
        what they lost), ``rekey_interval`` (seconds, default 600; None: only
        on departures), ``max_subscribers`` (default 256)."""
    def publish(self, data: ReadableBuffer) -> None:
        """Publishes one message to every subscriber (a reliable topic may
        wait for room, at most its timeout); MessageTooLarge above
        ``max_message_size``."""
    def try_publish(self, data: ReadableBuffer) -> None:
        """Publishes one message without waiting: WouldBlock while a reliable
        topic's slowest subscriber holds the oldest slot (then wait for
        ``fileno()`` or ``publish_deadline``, and call again)."""
    @property
    def publish_deadline(self) -> Optional[float]:
        """Seconds until a blocked ``try_publish`` drops the subscribers in its
        way; None when no publish is blocked."""
    def fileno(self) -> int:
        """Readable when a blocked ``try_publish`` may succeed. Do not read it."""
    def wait_for_subscribers(self, n: int, timeout: Optional[float] = None) -> None:
        """Waits until at least ``n`` subscribers are connected (Timeout after
        ``timeout`` seconds)."""
    def try_wait_for_subscribers(self, n: int) -> bool:
        """For event loops: True when at least ``n`` subscribers are connected,
        else False (``membership_fileno()`` becomes readable at the next join
        or departure)."""
    def membership_fileno(self) -> int:
        """Readable when a subscriber joins or leaves (do not read it)."""
    @property
    def subscriber_count(self) -> int:
        """How many subscribers are connected now."""
    @property
    def subscribers(self) -> List[SubscriberInfo]:
        """The subscribers now, by id."""
    def remove(self, id: int) -> None:
        """Removes a subscriber and rotates the key before returning."""
    def rotate_key(self) -> None:
        """Rotates the group key now."""
    @property
    def epoch(self) -> int:
        """The current key epoch."""
    @property
    def sequence(self) -> int:
        """How many messages were published."""
    @property
    def dropped_count(self) -> int:
        """Subscribers dropped for holding up a reliable topic."""
    @property
    def public_key(self) -> PublicKey:
        """The publisher's public key, which subscribers pin."""
    @property
    def cipher(self) -> str:
        """The topic's AEAD."""
    @property
    def max_message_size(self) -> int:
        """The largest message the topic carries."""
    @property
    def policy(self) -> str:
        """``"reliable"`` or ``"latest"``."""
    @property
    def reliable_timeout(self) -> Optional[float]:
        """How long a reliable publish may wait (None for latest topics)."""
    @property
    def name(self) -> str:
        """The topic name."""
    def close(self) -> None:
        """Closes the topic: subscribers receive everything published before,
        then PeerClosed. Idempotent."""
    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
    def __enter__(self) -> Publisher:
        """Returns the publisher."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        """Closes the publisher."""

@final
class Subscriber:
    """The receiving end of a topic; iterating yields messages until the
    topic ends. Use it as a context manager or call ``close()``."""

    @staticmethod
    def connect(
        name: str,
        *,
        server_key: _KeyLike,
        **options: Unpack[SubscribeOptions],
    ) -> Subscriber:
        """Subscribes to topic ``name``, pinning the publisher's key
        ``server_key``; ``wait`` (seconds) keeps trying while nobody publishes
        the name."""
    @staticmethod
    def _subscribe_start(
        name: str,
        *,
        server_key: _KeyLike,
        **options: Unpack[SubscribeOptions],
    ) -> _Subscribing:
        """For event loops: starts subscribing without waiting."""
    def recv(self, timeout: Optional[float] = ...) -> bytes:
        """Receives the next message (Timeout after ``timeout`` seconds;
        omitted: ``recv_timeout``; PeerClosed at the end of the topic)."""
    def try_recv(self) -> bytes:
        """Receives the next message if one is there now, else WouldBlock."""
    def recv_into(self, buffer: WriteableBuffer, timeout: Optional[float] = ...) -> int:
        """Receives the next message into ``buffer`` and returns its length."""
    def try_recv_into(self, buffer: WriteableBuffer) -> int:
        """As ``recv_into`` without waiting."""
    @property
    def recv_timeout(self) -> Optional[float]:
        """The default timeout of ``recv()`` in seconds."""
    @property
    def lost(self) -> int:
        """Messages lost to lag so far (latest topics)."""
    @property
    def received(self) -> int:
        """Messages received so far."""
    @property
    def position(self) -> int:
        """The sequence number of the next message this subscriber reads."""
    @property
    def epoch(self) -> int:
        """The newest group-key epoch received."""
    @property
    def topic(self) -> str:
        """The topic name."""
    @property
    def publisher_public_key(self) -> PublicKey:
        """The publisher's public key (the pinned one)."""
    @property
    def local_public_key(self) -> PublicKey:
        """This subscriber's public key."""
    @property
    def publisher_credentials(self) -> Credentials:
        """The publisher process's pid, uid and gid."""
    @property
    def cipher(self) -> str:
        """The topic's AEAD."""
    @property
    def max_message_size(self) -> int:
        """The largest message the topic carries."""
    def fileno(self) -> int:
        """The pollable descriptor (readable when a ``try_recv`` would find
        something)."""
    def close(self) -> None:
        """Leaves the topic. Idempotent."""
    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
    def __enter__(self) -> Subscriber:
        """Returns the subscriber."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        """Closes the subscriber."""
    def __iter__(self) -> Iterator[bytes]:
        """Iterates over messages until the topic ends."""
    def __next__(self) -> bytes:
        """The next message."""
