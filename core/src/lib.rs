//! shmsock: encrypted, authenticated message sockets over shared memory.
//!
//! Programs on one machine talk through a shared-memory segment per connection,
//! with a Noise IK handshake (`Noise_IK_25519_ChaChaPoly_BLAKE2b`) over a Unix
//! control socket and every frame sealed with AEGIS-128L or ChaCha20-Poly1305.
//! The wire format is written down in `PROTOCOL.md` at the repository root.
//!
//! The crate is organised by concept, one module each:
//! - [`keys`]: static keypairs, the text form of public keys, key files;
//! - [`handshake`]: the Noise IK state machine and the negotiation payloads;
//! - [`cipher`]: transport ciphers and per-direction counter nonces;
//! - [`frame`]: sealed frames, fragmentation and reassembly;
//! - [`segment`] and [`ring`]: the shared memory of a connection and its two rings;
//! - [`wait`]: spinning, sleeping and waking;
//! - [`control`] and [`endpoint`]: the control socket and endpoint names;
//! - [`listener`] and [`stream`]: accepting, connecting, sending, receiving
//!   (into a caller's [`RecvBuf`], [`recv_buf`]); [`connect_wait`]: a client
//!   waiting for its server to appear;
//! - [`accept`] and [`connecting`]: the server and the client side of the
//!   handshake, non-blocking (event loops drive them);
//! - `reassembly` (private): the bound on the memory a listener's connections
//!   hold in large messages they are gathering ([`Options`]' `max_reassembly_bytes`);
//! - [`reactor`]: one thread's wait over many streams, listeners and timers;
//! - [`server`] and [`client`]: the event-driven pair, built on the reactor;
//! - [`pubsub`] and [`shared_map`]: encrypted publish/subscribe (one seal, many readers);
//! - [`platform`]: everything that talks to the operating system;
//! - [`error`]: the one error type.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod accept;
pub mod cipher;
pub mod client;
pub mod connect_wait;
pub mod connecting;
pub mod control;
mod dispatch;
pub mod endpoint;
pub mod error;
pub mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
mod handshake_cache;
pub mod kdf;
pub mod keys;
pub mod listener;
mod noise;
pub mod options;
mod outbound;
pub mod placement;
pub mod platform;
pub mod pubsub;
mod reaching;
pub mod reactor;
mod reassembly;
pub mod recv_buf;
pub mod ring;
mod seats;
pub mod segment;
pub mod server;
pub mod shared_map;
pub mod sodium;
pub mod stream;
pub mod wait;

pub use cipher::CipherSuite;
pub use client::{Client, ClientHandler};
pub use connecting::{ClientHandshake, ConnectProgress, Connecting};
pub use error::{Error, ErrorKind, Result};
pub use handshake::AllowedClients;
pub use keys::{Keypair, PublicKey};
pub use listener::Listener;
pub use options::Options;
pub use platform::Credentials;
pub use pubsub::{Publisher, SlowSubscribers, SubscribeProgress, Subscriber, Subscribing, TopicOptions};
pub use reactor::{Event, Reactor, Registry, TimerId, Token, Waker};
pub use recv_buf::RecvBuf;
pub use segment::Backend;
pub use server::{Connection, Server, ServerHandler};
pub use stream::{Role, SendProgress, Stats, Stream};

/// The version of this crate (and of every shmsock package built from it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Rust programs of the repository's README, compiled and run as doctests
/// so that each one works when pasted as written.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
