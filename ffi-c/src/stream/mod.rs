//! Streams: the stream handle and the value types it reports (cipher, role,
//! stats, credentials). The exports are split by concept, in the order the
//! header presents them (cbindgen follows the module order):
//! `connect`, `send`, `recv`, `close` and `info`.

use shmsock::{CipherSuite, Credentials, Stats, Stream};

use crate::handle::handle;

mod connect;

mod send;

mod recv;

mod close;

mod info;

/// An encrypted, authenticated message stream to one peer, from
/// shmsock_stream_connect() or shmsock_listener_accept().
///
/// Thread safety: every function except shmsock_stream_free() may be called
/// from several threads at once. A sender and a receiver run in parallel;
/// concurrent senders (or receivers) take turns per whole message. Closing
/// from one thread wakes a call blocked in another, which then fails with
/// SHMSOCK_CLOSED. shmsock_stream_free() must not run while another thread
/// uses the stream.
pub struct shmsock_stream {
    pub(crate) inner: Stream,
}

/// The transport cipher of a connection. The values are the protocol's wire
/// identifiers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_cipher {
    /// ChaCha20-Poly1305 (RFC 8439).
    SHMSOCK_CIPHER_CHACHA20_POLY1305 = 1,
    /// AEGIS-128L (used when both sides have AES instructions).
    SHMSOCK_CIPHER_AEGIS_128L = 2,
}

impl From<CipherSuite> for shmsock_cipher {
    fn from(cipher: CipherSuite) -> Self {
        match cipher {
            CipherSuite::ChaCha20Poly1305 => shmsock_cipher::SHMSOCK_CIPHER_CHACHA20_POLY1305,
            CipherSuite::Aegis128L => shmsock_cipher::SHMSOCK_CIPHER_AEGIS_128L,
        }
    }
}

/// Which end of a connection a stream is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_role {
    /// The side that connected.
    SHMSOCK_ROLE_CLIENT = 1,
    /// The side that accepted.
    SHMSOCK_ROLE_SERVER = 2,
}

/// Message and byte counts of a connection (plaintext bytes, as the
/// applications see them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmsock_stats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl From<Stats> for shmsock_stats {
    fn from(s: Stats) -> shmsock_stats {
        shmsock_stats {
            messages_sent: s.messages_sent,
            bytes_sent: s.bytes_sent,
            messages_received: s.messages_received,
            bytes_received: s.bytes_received,
        }
    }
}

/// The peer process's identity per the kernel (SO_PEERCRED), taken when the
/// connection was made.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmsock_credentials {
    /// Process id, in our pid namespace (0 if the peer is outside it).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl From<Credentials> for shmsock_credentials {
    fn from(c: Credentials) -> shmsock_credentials {
        shmsock_credentials { pid: c.pid, uid: c.uid, gid: c.gid }
    }
}

handle!(shmsock_stream, "stream" => inner: Stream);
