//! `Client`: one connection with callbacks, the counterpart of [`Server`](crate::server::Server).
//!
//! A reader thread receives messages and calls `on_data`; `write` sends from any
//! thread; `on_close` runs once when the connection ends, after a clean close by
//! either side (reason None) or a failure (after `on_error`).

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::keys::PublicKey;
use crate::options::Options;
use crate::stream::{Stats, Stream};

/// What a client does on its events. Callbacks run on the client's reader thread.
pub trait ClientHandler: Send + Sync + 'static {
    /// A message arrived.
    fn on_data(&self, _data: &[u8]) {}
    /// The connection failed (`on_close` follows), or a callback panicked.
    fn on_error(&self, _error: &Error) {}
    /// The connection ended: `reason` is None after a clean close by either side.
    fn on_close(&self, _reason: Option<&Error>) {}
}

/// An event-driven client of one endpoint.
pub struct Client {
    stream: Arc<Stream>,
    reader: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

fn call(handler: &dyn ClientHandler, what: &str, f: impl FnOnce(&dyn ClientHandler)) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(handler))) {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let err = Error::new(ErrorKind::Io, format!("the {what} callback panicked: {text}"));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.on_error(&err)));
    }
}

fn read_loop(stream: &Stream, handler: &dyn ClientHandler) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.recv_into_timeout(&mut buf, None) {
            Ok(n) => call(handler, "on_data", |h| h.on_data(&buf[..n])),
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => buf.resize(e.needed().unwrap_or(buf.len() * 2), 0),
            Err(e) if matches!(e.kind(), ErrorKind::PeerClosed | ErrorKind::Closed) => {
                call(handler, "on_close", |h| h.on_close(None));
                return;
            }
            Err(e) => {
                call(handler, "on_error", |h| h.on_error(&e));
                let _ = stream.close();
                call(handler, "on_close", |h| h.on_close(Some(&e)));
                return;
            }
        }
    }
}

impl Client {
    /// Connects (see [`Stream::connect`]) and starts the reader thread.
    pub fn connect(name: &str, options: &Options, handler: impl ClientHandler) -> Result<Client> {
        let stream = Arc::new(Stream::connect(name, options)?);
        let reader_stream = Arc::clone(&stream);
        let reader = std::thread::Builder::new()
            .name(format!("shmsock-client-{name}"))
            .spawn(move || read_loop(&reader_stream, &handler))
            .map_err(|e| Error::io("starting the client's reader thread", e))?;
        Ok(Client { stream, reader: parking_lot::Mutex::new(Some(reader)) })
    }

    /// Sends a message.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.stream.send(data)
    }

    /// Sends only if the message fits now.
    pub fn try_write(&self, data: &[u8]) -> Result<()> {
        self.stream.try_send(data)
    }

    /// Closes the connection and waits for the reader thread (`on_close` runs
    /// before this returns, unless called from a callback). Idempotent.
    pub fn close(&self) -> Result<()> {
        self.stream.close()?;
        let reader = self.reader.lock().take();
        if self.stream.forked_away() {
            // A child of fork() has no reader thread (joining would never return).
            std::mem::forget(reader);
            return Ok(());
        }
        if let Some(reader) = reader {
            if reader.thread().id() != std::thread::current().id() {
                let _ = reader.join();
            }
        }
        Ok(())
    }

    /// The server's public key (the pinned one, proven by the handshake).
    pub fn server_public_key(&self) -> PublicKey {
        self.stream.peer_public_key()
    }

    /// Message and byte counts.
    pub fn stats(&self) -> Stats {
        self.stream.stats()
    }

    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
