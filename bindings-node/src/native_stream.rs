//! `NativeStream`: the JavaScript-facing class of one connection (wrapped by
//! the JavaScript `Stream` class). The behaviour is in [`crate::stream`].

use std::sync::Arc;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use shmsock::Role;

use crate::dispatch::{lock, Message};
use crate::errors::{to_js, Code};
use crate::hot;
use crate::stream::{live_streams as live, StreamShared};

/// Message and byte counts of a stream.
#[napi(object)]
pub struct StreamStats {
    /// Messages sent.
    pub messages_sent: f64,
    /// Plaintext bytes sent.
    pub bytes_sent: f64,
    /// Messages received.
    pub messages_received: f64,
    /// Plaintext bytes received.
    pub bytes_received: f64,
}

/// The peer process, per the kernel.
#[napi(object)]
pub struct PeerCredentials {
    /// Process id (0 if outside our pid namespace).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Internal: one connection (wrapped by the JavaScript `Stream` class).
#[napi]
pub struct NativeStream {
    inner: Arc<StreamShared>,
}

impl NativeStream {
    pub(crate) fn wrap(inner: Arc<StreamShared>) -> NativeStream {
        hot::register(&inner);
        NativeStream { inner }
    }
}

impl Drop for NativeStream {
    /// Garbage-collected without `close()`: close it (the core close runs off
    /// this thread) so the fd, the mapping and the peer are released. Pending
    /// operations keep the JavaScript object reachable, so none is pending.
    fn drop(&mut self) {
        hot::unregister(self.inner.id);
        self.inner.close(None);
    }
}

#[napi]
impl NativeStream {
    /// The stream's id (unique in the process).
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.inner.id
    }

    /// Cancels a pending receive; false if it already completed.
    #[napi]
    pub fn cancel_recv(&self, op: i64) -> bool {
        self.inner.cancel_recv(op)
    }

    /// Receives a message if one is complete now, else returns null. Never waits.
    #[napi(ts_return_type = "Buffer | null")]
    pub fn try_recv(&self) -> napi::Result<Option<Message>, Code> {
        Ok(self.inner.try_recv().map_err(to_js)?.map(Message))
    }

    /// Sends a message only if all of it fits in the ring now and no send
    /// waits; returns false otherwise (nothing was sent).
    #[napi]
    pub fn try_send(&self, data: Buffer) -> napi::Result<bool, Code> {
        self.inner.try_send(&data).map_err(to_js)
    }

    /// Delivers every message as a DATA event from now on (Server/Client).
    #[napi]
    pub fn start_flowing(&self) -> napi::Result<(), Code> {
        self.inner.start_flowing().map_err(to_js)
    }

    /// Closes the stream: pending receives and waiting sends fail with
    /// SHMSOCK_CLOSED, the peer gets every message sent before and then a
    /// clean close. Returns true when already done, else completes `op`.
    #[napi]
    pub fn close(&self, op: i64) -> bool {
        self.inner.close(Some(op))
    }

    /// True once closed by this side.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        lock(&self.inner.st).closed
    }

    /// The default receive timeout in milliseconds (null: none).
    #[napi(getter)]
    pub fn recv_timeout(&self) -> Option<f64> {
        self.inner.recv_timeout.map(|t| t.as_secs_f64() * 1000.0)
    }

    /// The peer's public key (32 bytes), proven by the handshake.
    #[napi(getter)]
    pub fn peer_public_key(&self) -> Buffer {
        Buffer::from(self.inner.stream.peer_public_key().as_bytes().to_vec())
    }

    /// This side's public key (32 bytes).
    #[napi(getter)]
    pub fn local_public_key(&self) -> Buffer {
        Buffer::from(self.inner.stream.local_public_key().as_bytes().to_vec())
    }

    /// The peer process's pid, uid and gid, from the kernel.
    #[napi(getter)]
    pub fn peer_credentials(&self) -> PeerCredentials {
        let c = self.inner.stream.peer_credentials();
        PeerCredentials { pid: c.pid, uid: c.uid, gid: c.gid }
    }

    /// Message and byte counts.
    #[napi(getter)]
    pub fn stats(&self) -> StreamStats {
        let s = self.inner.stream.stats();
        StreamStats {
            messages_sent: s.messages_sent as f64,
            bytes_sent: s.bytes_sent as f64,
            messages_received: s.messages_received as f64,
            bytes_received: s.bytes_received as f64,
        }
    }

    /// The transport cipher: `aegis-128l` or `chacha20-poly1305`.
    #[napi(getter)]
    pub fn cipher(&self) -> String {
        self.inner.stream.cipher().name().to_string()
    }

    /// The segment backend: `memfd` or `named`.
    #[napi(getter)]
    pub fn backend(&self) -> String {
        self.inner.stream.backend().name().to_string()
    }

    /// The capacity of each ring in bytes.
    #[napi(getter)]
    pub fn ring_size(&self) -> u32 {
        self.inner.stream.ring_size()
    }

    /// The largest message the peer accepts.
    #[napi(getter)]
    pub fn peer_max_message_size(&self) -> u32 {
        self.inner.stream.peer_max_message_size()
    }

    /// The endpoint name.
    #[napi(getter)]
    pub fn endpoint(&self) -> String {
        self.inner.stream.endpoint().to_string()
    }

    /// `client` (connected) or `server` (accepted).
    #[napi(getter)]
    pub fn role(&self) -> String {
        match self.inner.stream.role() {
            Role::Client => "client".into(),
            Role::Server => "server".into(),
        }
    }
}

/// How many streams are alive in this process (for tests of resource release).
#[napi]
pub fn live_streams() -> u32 {
    live() as u32
}
