//! `Listener`: a bound endpoint.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use shmsock::{Error, ErrorKind, Listener};

use crate::errors::{guard, key_into, name_from_bytes, BridgeResult, Guarded, Timeout};
use crate::options::OptionsBox;
use crate::stream::StreamBox;

/// A listener, shared by every C++ thread that uses it (the core's `Listener`
/// is Sync, and its `close` wakes a thread blocked in `accept`).
pub struct ListenerBox {
    listener: Guarded<Listener>,
    closed: AtomicBool,
}

impl ListenerBox {
    fn usable(&self) -> shmsock::Result<&Listener> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("the listener of '{}' was closed", self.listener.name()),
            ));
        }
        Ok(&self.listener)
    }

    /// Waits for a client and completes its handshake.
    pub fn accept(&self, timeout_ns: i64) -> BridgeResult<Box<StreamBox>> {
        guard(|| {
            let limit = match Timeout::from_ns(timeout_ns)? {
                Timeout::Default => None,
                Timeout::Limit(limit) => limit,
            };
            self.usable()?.accept_timeout(limit).map(StreamBox::boxed)
        })
    }

    /// Stops listening and removes the endpoint (idempotent); a thread blocked
    /// in `accept` fails with Closed.
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| {
            self.closed.store(true, Ordering::Release);
            self.listener.close();
            Ok(())
        })
    }

    /// True once closed.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.closed.load(Ordering::Acquire)))
    }

    /// The endpoint name.
    pub fn name(&self) -> BridgeResult<String> {
        guard(|| Ok(self.listener.name().to_string()))
    }

    /// The server's public key.
    pub fn public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.listener.public_key(), out))
    }

    /// The fd a reactor watches (readable when `accept` with a zero timeout may progress).
    pub(crate) fn pollable_fd(&self) -> shmsock::Result<std::os::fd::BorrowedFd<'_>> {
        Ok(self.usable()?.pollable_fd())
    }

    /// The listener's pollable fd: readable when `accept` with a zero timeout
    /// may progress (a client waits, a handshake got its client's next record,
    /// or a handshake's deadline passed).
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| Ok(self.usable()?.as_raw_fd()))
    }

    /// How many clients failed the handshake so far.
    pub fn rejected_count(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.listener.rejected_count()))
    }

    /// Changes how many accepted streams stay open at once (`max_per_uid` 0:
    /// no bound of its own); 0 is InvalidArgument.
    pub fn set_max_connections(&self, max: usize, max_per_uid: usize) -> BridgeResult<()> {
        guard(|| self.listener.set_max_connections(max, (max_per_uid > 0).then_some(max_per_uid)))
    }

    /// Why the last client failed the handshake: its code, or 0 if none did.
    pub fn last_rejection_code(&self) -> BridgeResult<u32> {
        guard(|| Ok(self.listener.last_rejection().map_or(0, |e| e.code())))
    }

    /// The message of the last rejection ("" if none).
    pub fn last_rejection_message(&self) -> BridgeResult<String> {
        guard(|| Ok(self.listener.last_rejection().map(|e| e.message().to_string()).unwrap_or_default()))
    }
}

/// Binds endpoint `name`.
pub fn listener_bind(name: &[u8], options: &OptionsBox) -> BridgeResult<Box<ListenerBox>> {
    guard(|| {
        let listener = Listener::bind(name_from_bytes(name)?, &options.0)?;
        Ok(Box::new(ListenerBox { listener: Guarded::new(listener), closed: AtomicBool::new(false) }))
    })
}
