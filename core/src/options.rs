//! Options of listeners, streams, servers and clients, with their defaults.

use std::time::Duration;

use crate::cipher::CipherSuite;
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{validate_ring_size, AllowedClients, Backend, ClientOffer, ServerPolicy, SUPPORTED_VERSIONS};
use crate::keys::{Keypair, PublicKey};

/// Default capacity of each ring: 2 MiB. Ring pages are reserved as they come
/// into use (`ring`: a page first, then 64 KiB at a time), so an idle connection
/// commits 4 KiB of shared memory, a short-lived one 12 KiB, one exchanging small
/// messages 132 KiB, and one moving bulk data
/// at most 4 MiB + 4 KiB (the header and two rings). Larger messages stream
/// through in fragments of up to 64 KiB. A ring larger than the receiving core's
/// L2 cache doubled two-core 1 MiB throughput on a 2-vCPU EPYC (1 MiB L2): the
/// sender no longer seals into lines the receiver still caches (PROTOCOL.md §8).
pub const DEFAULT_RING_SIZE: u32 = 2 << 20;
/// Default maximum message size: 16 MiB (independent of the ring size: larger
/// messages stream through the ring in fragments).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 16 << 20;
/// Default time a blocking call spins before it sleeps.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// Default limit on connection set-up.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest handshake timeout accepted (a day): longer ones are mistakes.
pub const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest connect wait accepted (a day): longer ones are mistakes.
pub const MAX_CONNECT_WAIT: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest spin budget accepted.
pub const MAX_SPIN: Duration = Duration::from_secs(1);
/// Default most connections per server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default most handshakes in progress per server.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 64;
/// Default most bytes queued per server connection.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 1 << 20;
/// Default most bytes of messages a listener's connections gather at once:
/// 64 MiB, four messages of the default maximum size (see
/// [`Options`]' field `max_reassembly_bytes`).
pub const DEFAULT_MAX_REASSEMBLY_BYTES: usize = 64 << 20;
/// Most dispatch threads a server accepts.
pub const MAX_DISPATCH_THREADS: usize = 256;
/// Largest plaintext per frame; smaller frames let both sides work at once on
/// one large message.
pub const MAX_FRAGMENT: u32 = 64 * 1024;

/// Everything configurable about a connection. Build with the chained setters:
///
/// ```no_run
/// # use shmsock::{Options, Keypair};
/// let server_key = Keypair::generate();
/// let opts = Options::new().server_key(*server_key.public()).ring_size(1 << 16);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// This side's static keypair. A server must have one; a client without one
    /// uses one keypair generated per process ([`Keypair::process_default`]).
    pub keypair: Option<Keypair>,
    /// The server key a client pins (required to connect).
    pub server_key: Option<PublicKey>,
    /// Which client keys a server accepts (default: any).
    pub allowed_clients: AllowedClients,
    /// Which peer uids a server accepts (default: any that can reach the socket;
    /// the runtime directory already keeps other users out).
    pub allowed_uids: Option<Vec<u32>>,
    /// Capacity of each ring in bytes (a power of two, 4 KiB to 1 GiB). A client
    /// that sets none lets the server decide; a server that sets none uses
    /// [`DEFAULT_RING_SIZE`] (2 MiB).
    pub ring_size: Option<u32>,
    /// The largest message this side accepts to receive.
    pub max_message_size: u32,
    /// Limit on `send` (None: wait as long as it takes).
    pub send_timeout: Option<Duration>,
    /// Limit on `recv` (None: wait as long as it takes).
    pub recv_timeout: Option<Duration>,
    /// Limit on connecting and on each server-side handshake.
    pub handshake_timeout: Duration,
    /// How long a client's connect waits for its server to appear (0, the
    /// default: it fails at once with NotFound). See [`Options::connect_wait`].
    pub connect_wait: Duration,
    /// How long a blocking call spins before sleeping (0: sleep at once).
    pub spin: Duration,
    /// How the server creates the segment (the client accepts either).
    pub backend: Backend,
    /// Use ChaCha20-Poly1305 even where AEGIS-128L is available.
    pub require_chacha: bool,
    /// Most connections a server keeps at once; further clients get a REJECT
    /// (reason 7). With the ring size it bounds the shared memory a server
    /// commits: about `2 × ring_size × max_connections`. A `Listener` counts
    /// each stream it accepted until that stream is closed or dropped. It
    /// also bounds the accepted clients that have not sent their HELLO yet.
    pub max_connections: usize,
    /// Most connections a server (or listener) keeps at once for one uid
    /// (None: only `max_connections`).
    pub max_connections_per_uid: Option<usize>,
    /// Most handshakes past the client's HELLO at once (servers and
    /// `Listener::accept`): each holds a new segment until the client's READY.
    /// A HELLO beyond them is refused with a REJECT (reason 7). Clients that
    /// have not sent their HELLO cost only a descriptor: they are bounded by
    /// `max_connections` (and `max_connections_per_uid`) instead, the oldest
    /// giving way to a newcomer when full, and otherwise wait for the
    /// handshake timeout.
    ///
    /// A topic (`Publisher`) bounds all its subscriber handshakes in progress
    /// by it, each on a thread of its own: when full, the oldest client that
    /// has not sent its SUBSCRIBE gives way to the newcomer, and when all have
    /// spoken the newcomer gets a REJECT (reason 7).
    pub max_pending_handshakes: usize,
    /// Most handshakes past the client's HELLO at once for one uid (a topic:
    /// most subscriber handshakes in progress for one uid). Below
    /// `max_pending_handshakes`, it keeps clients of one uid that speak and
    /// then stall from holding every place.
    pub max_pending_handshakes_per_uid: usize,
    /// Most bytes a server connection queues when its ring is full (see
    /// `Connection::send`); a send that would exceed it fails with WouldBlock
    /// and queues nothing. A single message larger than this is still queued
    /// when the queue is empty. Once a connection's queue refused a send, the
    /// server reads no more of its messages until the client has taken every
    /// queued reply (backpressure).
    pub max_queued_bytes: usize,
    /// Most bytes of messages longer than one frame (64 KiB) that the
    /// connections of one listener or server gather at once: a connection
    /// reserves a message's length before taking its first frame and gives it
    /// back once the message is delivered. Without this bound, peers that send
    /// all of a large message but its last frame, then stop, would make the
    /// server hold `max_connections × max_message_size` bytes. A connection
    /// that finds no room leaves the message in its ring (its peer's sends
    /// wait, as for a slow reader) until room is given back; nothing is lost,
    /// messages of one frame never wait, and one message always passes when
    /// nothing is reserved. While some connection waits for room, a holder
    /// whose message stopped moving (no frame for 3 s, or not complete 3 s
    /// plus 1 s per MiB after it took room) is ended: its next receive fails
    /// with ResourceExhausted, and its room goes to those waiting; for 30 s
    /// after, that peer process gathers one message at a time at most.
    /// Clients have no such bound.
    pub max_reassembly_bytes: usize,
    /// Dispatch threads of a server (at least 1); connections are spread over them.
    pub dispatch_threads: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            keypair: None,
            server_key: None,
            allowed_clients: AllowedClients::Any,
            allowed_uids: None,
            ring_size: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            send_timeout: None,
            recv_timeout: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_wait: Duration::ZERO,
            spin: DEFAULT_SPIN,
            backend: if cfg!(target_os = "linux") { Backend::Memfd } else { Backend::Named },
            require_chacha: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_uid: None,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            max_pending_handshakes_per_uid: DEFAULT_MAX_PENDING_HANDSHAKES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_reassembly_bytes: DEFAULT_MAX_REASSEMBLY_BYTES,
            dispatch_threads: 1,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Options {
        Options::default()
    }
    /// Sets this side's keypair.
    pub fn keypair(mut self, keypair: Keypair) -> Options {
        self.keypair = Some(keypair);
        self
    }
    /// Pins the server's public key (clients).
    pub fn server_key(mut self, key: PublicKey) -> Options {
        self.server_key = Some(key);
        self
    }
    /// Accepts only these client keys (servers).
    pub fn allow_clients(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Options {
        self.allowed_clients = AllowedClients::Only(keys.into_iter().collect());
        self
    }
    /// Accepts only these peer uids (servers).
    pub fn allow_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Options {
        self.allowed_uids = Some(uids.into_iter().collect());
        self
    }
    /// Sets the ring capacity.
    pub fn ring_size(mut self, bytes: u32) -> Options {
        self.ring_size = Some(bytes);
        self
    }
    /// Sets the largest message this side accepts.
    pub fn max_message_size(mut self, bytes: u32) -> Options {
        self.max_message_size = bytes;
        self
    }
    /// Sets the send timeout.
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Options {
        self.send_timeout = timeout;
        self
    }
    /// Sets the receive timeout.
    pub fn recv_timeout(mut self, timeout: Option<Duration>) -> Options {
        self.recv_timeout = timeout;
        self
    }
    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Options {
        self.handshake_timeout = timeout;
        self
    }
    /// Makes a client's connect (streams, [`Client`](crate::Client),
    /// [`Subscriber`](crate::Subscriber)) wait up to `wait` for its server,
    /// like the command line's `--wait`: while no server listens on the name
    /// (NotFound) it tries again whenever an endpoint appears in the runtime
    /// directory (at least every 64 ms), and a busy server's full backlog is
    /// waited for as long. When the wait ends, the connect fails with the last
    /// error: NotFound, or Timeout for a server that stayed busy. Other errors
    /// (a wrong key, a rejection) are never retried. The handshake that follows
    /// still has `handshake_timeout`. At most [`MAX_CONNECT_WAIT`].
    pub fn connect_wait(mut self, wait: Duration) -> Options {
        self.connect_wait = wait;
        self
    }
    /// Sets the spin budget.
    pub fn spin(mut self, spin: Duration) -> Options {
        self.spin = spin;
        self
    }
    /// Sets the segment backend (servers).
    pub fn backend(mut self, backend: Backend) -> Options {
        self.backend = backend;
        self
    }
    /// Requires ChaCha20-Poly1305.
    pub fn require_chacha(mut self, require: bool) -> Options {
        self.require_chacha = require;
        self
    }

    /// Sets the most connections a server keeps.
    pub fn max_connections(mut self, n: usize) -> Options {
        self.max_connections = n;
        self
    }
    /// Sets the most connections a server keeps per uid.
    pub fn max_connections_per_uid(mut self, n: Option<usize>) -> Options {
        self.max_connections_per_uid = n;
        self
    }
    /// Sets the most handshakes past the client's HELLO, overall and per uid.
    pub fn max_pending_handshakes(mut self, overall: usize, per_uid: usize) -> Options {
        self.max_pending_handshakes = overall;
        self.max_pending_handshakes_per_uid = per_uid;
        self
    }
    /// Sets the most bytes queued per server connection.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Options {
        self.max_queued_bytes = bytes;
        self
    }
    /// Sets the most bytes of large messages a listener's connections gather
    /// at once (see the field of that name).
    pub fn max_reassembly_bytes(mut self, bytes: usize) -> Options {
        self.max_reassembly_bytes = bytes;
        self
    }
    /// Sets the number of dispatch threads of a server.
    pub fn dispatch_threads(mut self, n: usize) -> Options {
        self.dispatch_threads = n;
        self
    }

    /// Checks the values that do not depend on the side.
    pub fn validate(&self) -> Result<()> {
        if let Some(size) = self.ring_size {
            validate_ring_size(size)?;
        }
        if self.handshake_timeout.is_zero() || self.handshake_timeout > MAX_HANDSHAKE_TIMEOUT {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the handshake timeout must be positive and at most {} s", MAX_HANDSHAKE_TIMEOUT.as_secs()),
            ));
        }
        if self.connect_wait > MAX_CONNECT_WAIT {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the connect wait must be at most {} s", MAX_CONNECT_WAIT.as_secs()),
            ));
        }
        if self.spin > MAX_SPIN {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the spin budget must be at most {} ms (it burns a core while it lasts)", MAX_SPIN.as_millis()),
            ));
        }
        if self.max_connections == 0
            || self.max_connections_per_uid == Some(0)
            || self.max_pending_handshakes == 0
            || self.max_pending_handshakes_per_uid == 0
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "max_connections, max_connections_per_uid and the pending handshake limits must be at least 1",
            ));
        }
        if self.dispatch_threads == 0 || self.dispatch_threads > MAX_DISPATCH_THREADS {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("dispatch_threads must be between 1 and {MAX_DISPATCH_THREADS}"),
            ));
        }
        Ok(())
    }

    pub(crate) fn client_offer(&self) -> ClientOffer {
        ClientOffer::local(
            self.require_chacha,
            self.max_message_size,
            self.ring_size.unwrap_or(0),
            Backend::Memfd.bit() | Backend::Named.bit(),
        )
    }

    pub(crate) fn server_policy(&self) -> ServerPolicy {
        ServerPolicy {
            versions: SUPPORTED_VERSIONS.to_vec(),
            ciphers: CipherSuite::local_offer(self.require_chacha),
            max_message: self.max_message_size,
            ring_size: self.ring_size.unwrap_or(DEFAULT_RING_SIZE),
            allowed: self.allowed_clients.clone(),
            backend: self.backend,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_what_cannot_work() {
        assert!(Options::new().validate().is_ok());
        let too_long = [
            Options::new().handshake_timeout(Duration::ZERO),
            Options::new().handshake_timeout(Duration::MAX),
            Options::new().spin(MAX_SPIN + Duration::from_nanos(1)),
            Options::new().connect_wait(MAX_CONNECT_WAIT + Duration::from_nanos(1)),
            Options::new().ring_size(3000),
            Options::new().max_connections(0),
            Options::new().max_connections_per_uid(Some(0)),
            Options::new().max_pending_handshakes(0, 1),
            Options::new().max_pending_handshakes(1, 0),
            Options::new().dispatch_threads(0),
            Options::new().dispatch_threads(MAX_DISPATCH_THREADS + 1),
        ];
        for options in too_long {
            let e = options.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
        assert!(Options::new()
            .handshake_timeout(MAX_HANDSHAKE_TIMEOUT)
            .spin(MAX_SPIN)
            .connect_wait(MAX_CONNECT_WAIT)
            .validate()
            .is_ok());
    }
}
