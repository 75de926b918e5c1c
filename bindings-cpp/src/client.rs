//! `Client`: one connection with callbacks (a reader thread calls them).

use std::sync::{RwLock, RwLockReadGuard};

use cxx::UniquePtr;
use shmsock::{Client, ClientHandler, Error, ErrorKind, PublicKey};

use crate::errors::{guard, key_into, name_from_bytes, BridgeResult, Guarded, Timeout};
use crate::ffi::{self, ClientCallbacks, StatsData};
use crate::options::OptionsBox;
use crate::stream::{stats_data, try_send_with};

// SAFETY: the callbacks run on the client's reader thread only, one at a time;
// std::function has no thread affinity.
unsafe impl Send for ClientCallbacks {}
unsafe impl Sync for ClientCallbacks {}

struct Handler {
    callbacks: UniquePtr<ClientCallbacks>,
}

impl ClientHandler for Handler {
    fn on_data(&self, data: &[u8]) {
        if let Some(cb) = self.callbacks.as_ref() {
            ffi::client_on_data(cb, data);
        }
    }
    fn on_error(&self, error: &Error) {
        if let Some(cb) = self.callbacks.as_ref() {
            ffi::client_on_error(cb, error.code(), error.message());
        }
    }
    fn on_close(&self, reason: Option<&Error>) {
        if let Some(cb) = self.callbacks.as_ref() {
            let (has, code, message) = match reason {
                Some(e) => (true, e.code(), e.message()),
                None => (false, 0, ""),
            };
            ffi::client_on_close(cb, has, code, message);
        }
    }
}

/// A connected client; `None` once closed. Writers share the lock; `close`
/// first closes the stream (which wakes blocked writers with Closed), then
/// takes the client out and closes it, joining the reader thread.
pub struct ClientBox {
    client: RwLock<Option<Guarded<Client>>>,
    server_key: PublicKey,
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the client was closed")
}

impl ClientBox {
    fn read(&self) -> RwLockReadGuard<'_, Option<Guarded<Client>>> {
        self.client.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a message.
    pub fn write(&self, data: &[u8], timeout_ns: i64) -> BridgeResult<()> {
        guard(|| {
            let client = self.read();
            let client = client.as_ref().ok_or_else(closed)?;
            match Timeout::from_ns(timeout_ns)? {
                Timeout::Default => client.write(data),
                Timeout::Limit(limit) => client.stream().send_timeout(data, limit),
            }
        })
    }

    /// Sends only if the message fits now; false: it did not (nothing sent).
    pub fn try_write(&self, data: &[u8]) -> BridgeResult<bool> {
        guard(|| {
            let client = self.read();
            try_send_with(client.as_ref().ok_or_else(closed)?.stream(), data)
        })
    }

    /// Closes the connection and waits for the reader thread (on_close has run
    /// when this returns, unless called from a callback). Idempotent.
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| {
            if let Some(client) = self.read().as_ref() {
                client.stream().close()?;
            }
            let taken = self.client.write().unwrap_or_else(|p| p.into_inner()).take();
            // The core Client's Drop closes it and joins the reader thread.
            drop(taken);
            Ok(())
        })
    }

    /// True once closed by this side.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.read().as_ref().is_none_or(|c| c.stream().is_closed())))
    }

    /// The server's public key.
    pub fn server_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.server_key, out))
    }

    /// Message and byte counts.
    pub fn stats(&self) -> BridgeResult<StatsData> {
        guard(|| Ok(stats_data(self.read().as_ref().ok_or_else(closed)?.stats())))
    }
}

/// Connects and starts the reader thread with the C++ callbacks.
pub fn client_connect(
    name: &[u8],
    options: &OptionsBox,
    callbacks: UniquePtr<ClientCallbacks>,
) -> BridgeResult<Box<ClientBox>> {
    guard(|| {
        let client = Client::connect(name_from_bytes(name)?, &options.0, Handler { callbacks })?;
        Ok(Box::new(ClientBox {
            server_key: client.server_public_key(),
            client: RwLock::new(Some(Guarded::new(client))),
        }))
    })
}
