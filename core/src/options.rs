//! Options of listeners, streams, servers and clients, with their defaults.

use std::time::Duration;

use crate::cipher::CipherSuite;
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{validate_ring_size, AllowedClients, Backend, ClientOffer, ServerPolicy, SUPPORTED_VERSIONS};
use crate::keys::{Keypair, PublicKey};

/// Default capacity of each ring: 64 KiB, so an idle connection commits 132 KiB
/// of shared memory (4 KiB of header and two rings), within the 256 KiB budget
/// (a 128 KiB ring would make it 260 KiB). Larger messages stream through in
/// fragments of up to a quarter of the ring; measured on a 2-vCPU EPYC in one
/// launch, 1 MiB messages between two cores lost little against a 1 MiB ring,
/// while connecting took 4.5 times less time (see PROTOCOL.md §8).
pub const DEFAULT_RING_SIZE: u32 = 1 << 16;
/// Default maximum message size: 16 MiB (independent of the ring size: larger
/// messages stream through the ring in fragments).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 16 << 20;
/// Default time a blocking call spins before it sleeps.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// Default limit on connection set-up.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest handshake timeout accepted (a day): longer ones are mistakes.
pub const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest spin budget accepted.
pub const MAX_SPIN: Duration = Duration::from_secs(1);
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
    /// gets a fresh keypair per connection.
    pub keypair: Option<Keypair>,
    /// The server key a client pins (required to connect).
    pub server_key: Option<PublicKey>,
    /// Which client keys a server accepts (default: any).
    pub allowed_clients: AllowedClients,
    /// Which peer uids a server accepts (default: any that can reach the socket;
    /// the runtime directory already keeps other users out).
    pub allowed_uids: Option<Vec<u32>>,
    /// Capacity of each ring in bytes (a power of two, 4 KiB to 1 GiB). A client
    /// that sets none lets the server decide; a server that sets none uses 64 KiB.
    pub ring_size: Option<u32>,
    /// The largest message this side accepts to receive.
    pub max_message_size: u32,
    /// Limit on `send` (None: wait as long as it takes).
    pub send_timeout: Option<Duration>,
    /// Limit on `recv` (None: wait as long as it takes).
    pub recv_timeout: Option<Duration>,
    /// Limit on connecting and on each server-side handshake.
    pub handshake_timeout: Duration,
    /// How long a blocking call spins before sleeping (0: sleep at once).
    pub spin: Duration,
    /// How the server creates the segment (the client accepts either).
    pub backend: Backend,
    /// Use ChaCha20-Poly1305 even where AEGIS-128L is available.
    pub require_chacha: bool,
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
            spin: DEFAULT_SPIN,
            backend: if cfg!(target_os = "linux") { Backend::Memfd } else { Backend::Named },
            require_chacha: false,
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
        if self.spin > MAX_SPIN {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the spin budget must be at most {} ms (it burns a core while it lasts)", MAX_SPIN.as_millis()),
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
            Options::new().ring_size(3000),
        ];
        for options in too_long {
            let e = options.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
        assert!(Options::new().handshake_timeout(MAX_HANDSHAKE_TIMEOUT).spin(MAX_SPIN).validate().is_ok());
    }
}
