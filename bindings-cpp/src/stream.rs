//! `Stream`: one encrypted connection (from `connect` or `Listener::accept`).

use std::os::fd::AsRawFd;

use shmsock::{ErrorKind, Role, SendProgress, Stats, Stream};

use crate::errors::{guard, key_into, name_from_bytes, BridgeResult, Guarded, Timeout};
use crate::ffi::{CredentialsData, StatsData};
use crate::options::OptionsBox;

/// A stream, shared by every C++ thread that uses it (the core's `Stream` is Sync).
pub struct StreamBox(pub(crate) Guarded<Stream>);

pub(crate) fn stats_data(stats: Stats) -> StatsData {
    StatsData {
        messages_sent: stats.messages_sent,
        bytes_sent: stats.bytes_sent,
        messages_received: stats.messages_received,
        bytes_received: stats.bytes_received,
    }
}

pub(crate) fn credentials_data(c: shmsock::Credentials) -> CredentialsData {
    CredentialsData { pid: c.pid, uid: c.uid, gid: c.gid }
}

/// Sends on `stream` with a C++ timeout code.
pub(crate) fn send_with(stream: &Stream, data: &[u8], timeout_ns: i64) -> shmsock::Result<()> {
    match Timeout::from_ns(timeout_ns)? {
        Timeout::Default => stream.send(data),
        Timeout::Limit(limit) => stream.send_timeout(data, limit),
    }
}

/// `try_send`, with WouldBlock as `false`.
pub(crate) fn try_send_with(stream: &Stream, data: &[u8]) -> shmsock::Result<bool> {
    match stream.try_send(data) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

impl StreamBox {
    pub(crate) fn boxed(stream: Stream) -> Box<StreamBox> {
        Box::new(StreamBox(Guarded::new(stream)))
    }

    /// Sends one message.
    pub fn send(&self, data: &[u8], timeout_ns: i64) -> BridgeResult<()> {
        guard(|| send_with(&self.0, data, timeout_ns))
    }

    /// Sends only if the whole message fits now; false: it did not (nothing sent).
    pub fn try_send(&self, data: &[u8]) -> BridgeResult<bool> {
        guard(|| try_send_with(&self.0, data))
    }

    /// Writes what fits of `data` now and keeps the progress: -1 when all of
    /// it is in the ring, else the bytes of it in the ring (call again with
    /// the same message once the pollable fd is readable).
    pub fn send_resumable(&self, data: &[u8]) -> BridgeResult<i64> {
        guard(|| match self.0.send_resumable(data)? {
            SendProgress::Complete => Ok(-1),
            SendProgress::Partial { sent } => Ok(i64::try_from(sent).unwrap_or(i64::MAX)),
        })
    }

    /// Receives the next message.
    pub fn recv(&self, timeout_ns: i64) -> BridgeResult<Vec<u8>> {
        guard(|| match Timeout::from_ns(timeout_ns)? {
            Timeout::Default => self.0.recv(),
            Timeout::Limit(limit) => self.0.recv_timeout(limit),
        })
    }

    /// Receives the next complete message into `out` if there is one now.
    pub fn try_recv(&self, out: &mut Vec<u8>) -> BridgeResult<bool> {
        guard(|| match self.0.try_recv() {
            Ok(message) => {
                *out = message;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        })
    }

    /// Receives the next message into `buf`, returning its length.
    pub fn recv_into(&self, buf: &mut [u8], timeout_ns: i64) -> BridgeResult<usize> {
        guard(|| match Timeout::from_ns(timeout_ns)? {
            Timeout::Default => self.0.recv_into(buf),
            Timeout::Limit(limit) => self.0.recv_into_timeout(buf, limit),
        })
    }

    /// As `recv_into` without waiting: -1 when no complete message is there.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> BridgeResult<i64> {
        guard(|| match self.0.try_recv_into(buf) {
            Ok(n) => Ok(n as i64),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(-1),
            Err(e) => Err(e),
        })
    }

    /// An event loop's hand-over to a peer on this CPU (`Stream::hand_over`).
    pub fn hand_over(&self) -> BridgeResult<bool> {
        guard(|| self.0.hand_over())
    }

    /// Closes the stream (idempotent); blocked calls on other threads fail with Closed.
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| self.0.close())
    }

    /// True once closed by this side.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.0.is_closed()))
    }

    /// The peer's static public key.
    pub fn peer_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.0.peer_public_key(), out))
    }

    /// This side's static public key.
    pub fn local_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.0.local_public_key(), out))
    }

    /// The peer process's pid, uid and gid.
    pub fn peer_credentials(&self) -> BridgeResult<CredentialsData> {
        guard(|| Ok(credentials_data(self.0.peer_credentials())))
    }

    /// Message and byte counts.
    pub fn stats(&self) -> BridgeResult<StatsData> {
        guard(|| Ok(stats_data(self.0.stats())))
    }

    /// The transport cipher's name.
    pub fn cipher(&self) -> BridgeResult<String> {
        guard(|| Ok(self.0.cipher().name().to_string()))
    }

    /// The segment backend's wire id (1 memfd, 2 named).
    pub fn backend(&self) -> BridgeResult<u8> {
        guard(|| Ok(self.0.backend() as u8))
    }

    /// The capacity of each ring.
    pub fn ring_size(&self) -> BridgeResult<u32> {
        guard(|| Ok(self.0.ring_size()))
    }

    /// The largest message the peer accepts.
    pub fn peer_max_message_size(&self) -> BridgeResult<u32> {
        guard(|| Ok(self.0.peer_max_message_size()))
    }

    /// The endpoint name.
    pub fn endpoint(&self) -> BridgeResult<String> {
        guard(|| Ok(self.0.endpoint().to_string()))
    }

    /// True on the side that accepted.
    pub fn is_server_side(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.0.role() == Role::Server))
    }

    /// The pollable fd (owned by the stream).
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| Ok(self.0.as_raw_fd()))
    }
}

/// Connects to the server of endpoint `name`.
pub fn stream_connect(name: &[u8], options: &OptionsBox) -> BridgeResult<Box<StreamBox>> {
    guard(|| Stream::connect(name_from_bytes(name)?, &options.0).map(StreamBox::boxed))
}
