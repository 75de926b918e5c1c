//! `Server` (event-driven, many clients) and its `Connection`s.
//!
//! The C++ callbacks (a `ServerCallbacks` holding `std::function`s) are owned by
//! the core's handler and called through C++ trampolines that catch every C++
//! exception (reporting it through `on_error`), so nothing unwinds into Rust.

use std::sync::Mutex;

use cxx::UniquePtr;
use shmsock::{Connection, Error, ErrorKind, PublicKey, Server, ServerHandler};

use crate::errors::{guard, key_into, name_from_bytes, BridgeResult, Guarded, Timeout};
use crate::ffi::{self, CredentialsData, ServerCallbacks, StatsData};
use crate::options::OptionsBox;
use crate::stream::{credentials_data, send_with, stats_data};

// SAFETY: the callbacks are called from the server's dispatch thread, one at a
// time (and from the thread that closes the server, after the dispatch thread
// ended); std::function has no thread affinity. The C++ side documents that
// the callables must be safe to call from another thread.
unsafe impl Send for ServerCallbacks {}
unsafe impl Sync for ServerCallbacks {}

/// One client of a server. The C++ `Connection` either owns a box of it or,
/// inside a callback, borrows the core's connection through this type.
#[repr(transparent)]
pub struct ConnectionBox(Connection);

impl ConnectionBox {
    fn of(connection: &Connection) -> &ConnectionBox {
        // SAFETY: ConnectionBox is a repr(transparent) wrapper of Connection.
        unsafe { &*(connection as *const Connection as *const ConnectionBox) }
    }

    /// A number unique within the server.
    pub fn id(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.0.id()))
    }
    /// Sends a message to this client. Without a timeout: never blocks (ring
    /// or bounded outbound queue; a full queue is WouldBlock, see
    /// `shmsock::Connection::send`). With one: straight into the ring, waiting
    /// up to it (not from a callback).
    pub fn send(&self, data: &[u8], timeout_ns: i64) -> BridgeResult<()> {
        guard(|| match Timeout::from_ns(timeout_ns)? {
            Timeout::Default => self.0.send(data),
            Timeout::Limit(_) => send_with(self.0.stream(), data, timeout_ns),
        })
    }
    /// Sends only if the message fits now.
    pub fn try_send(&self, data: &[u8]) -> BridgeResult<bool> {
        guard(|| match self.0.try_send(data) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        })
    }
    /// Closes this connection (on_close follows on the dispatch thread).
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| self.0.close())
    }
    /// True once closed by this side.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.0.is_closed()))
    }
    /// The client's public key.
    pub fn peer_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.0.peer_public_key(), out))
    }
    /// This side's (the server's) public key.
    pub fn local_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.0.stream().local_public_key(), out))
    }
    /// The client process's credentials.
    pub fn peer_credentials(&self) -> BridgeResult<CredentialsData> {
        guard(|| Ok(credentials_data(self.0.peer_credentials())))
    }
    /// Message and byte counts.
    pub fn stats(&self) -> BridgeResult<StatsData> {
        guard(|| Ok(stats_data(self.0.stats())))
    }
    /// The transport cipher's name.
    pub fn cipher(&self) -> BridgeResult<String> {
        guard(|| Ok(self.0.stream().cipher().name().to_string()))
    }
}

/// An owned copy of a connection (a cheap reference-counted clone).
pub fn connection_clone(connection: &ConnectionBox) -> BridgeResult<Box<ConnectionBox>> {
    guard(|| Ok(Box::new(ConnectionBox(connection.0.clone()))))
}

/// A snapshot of a server's connections.
pub struct ConnectionList(Vec<Connection>);

impl ConnectionList {
    /// How many.
    pub fn len(&self) -> BridgeResult<usize> {
        guard(|| Ok(self.0.len()))
    }
    /// An owned copy of the connection at `index`.
    pub fn get(&self, index: usize) -> BridgeResult<Box<ConnectionBox>> {
        guard(|| {
            self.0
                .get(index)
                .map(|c| Box::new(ConnectionBox(c.clone())))
                .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "connection index out of range"))
        })
    }
}

struct Handler {
    callbacks: UniquePtr<ServerCallbacks>,
}

impl ServerHandler for Handler {
    fn on_connect(&self, connection: &Connection) {
        if let Some(cb) = self.callbacks.as_ref() {
            ffi::server_on_connect(cb, ConnectionBox::of(connection));
        }
    }
    fn on_data(&self, connection: &Connection, data: &[u8]) {
        if let Some(cb) = self.callbacks.as_ref() {
            ffi::server_on_data(cb, ConnectionBox::of(connection), data);
        }
    }
    fn on_error(&self, connection: Option<&Connection>, error: &Error) {
        // While Server::close runs, the core's dispatch thread may report "the
        // listener was closed" (Closed, no connection), even many times, between
        // closing the listener and seeing that it should stop. That is no
        // failure: drop it. (A fix belongs in the core.)
        if connection.is_none() && error.kind() == ErrorKind::Closed {
            return;
        }
        if let Some(cb) = self.callbacks.as_ref() {
            match connection {
                Some(c) => ffi::server_on_error(cb, ConnectionBox::of(c), error.code(), error.message()),
                None => ffi::server_on_error_unbound(cb, error.code(), error.message()),
            }
        }
    }
    fn on_close(&self, connection: &Connection, reason: Option<&Error>) {
        if let Some(cb) = self.callbacks.as_ref() {
            let (has, code, message) = match reason {
                Some(e) => (true, e.code(), e.message()),
                None => (false, 0, ""),
            };
            ffi::server_on_close(cb, ConnectionBox::of(connection), has, code, message);
        }
    }
}

/// A running server; `None` once closed.
pub struct ServerBox {
    server: Mutex<Option<Guarded<Server>>>,
    name: String,
    public_key: PublicKey,
}

impl ServerBox {
    fn closed() -> Error {
        Error::new(ErrorKind::Closed, "the server was closed")
    }

    /// Stops serving: closes every connection (each gets on_close), removes the
    /// endpoint and joins the dispatch thread. Idempotent.
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| {
            // Take it out first: the dispatch thread may call back into this
            // server (connections()) while we join it.
            let taken = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
            // The core Server's Drop closes it, inside the Guarded panic boundary.
            drop(taken);
            Ok(())
        })
    }

    /// True once closed.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.server.lock().unwrap_or_else(|p| p.into_inner()).is_none()))
    }

    /// The endpoint name.
    pub fn name(&self) -> BridgeResult<String> {
        guard(|| Ok(self.name.clone()))
    }

    /// The server's public key.
    pub fn public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.public_key, out))
    }

    /// The connected clients now.
    pub fn connections(&self) -> BridgeResult<Box<ConnectionList>> {
        guard(|| {
            let server = self.server.lock().unwrap_or_else(|p| p.into_inner());
            let server = server.as_ref().ok_or_else(ServerBox::closed)?;
            Ok(Box::new(ConnectionList(server.connections())))
        })
    }
}

/// Binds endpoint `name` and starts serving with the C++ callbacks.
pub fn server_start(
    name: &[u8],
    options: &OptionsBox,
    callbacks: UniquePtr<ServerCallbacks>,
) -> BridgeResult<Box<ServerBox>> {
    guard(|| {
        let server = Server::start(name_from_bytes(name)?, &options.0, Handler { callbacks })?;
        Ok(Box::new(ServerBox {
            name: server.name().to_string(),
            public_key: server.public_key(),
            server: Mutex::new(Some(Guarded::new(server))),
        }))
    })
}
