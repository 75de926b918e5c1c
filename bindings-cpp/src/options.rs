//! `Options`: built by the C++ builder one setter at a time.

use shmsock::{AllowedClients, Backend, Error, ErrorKind, Options};

use crate::errors::{guard, key_from_bytes, BridgeResult, Timeout};
use crate::keys::KeypairBox;

/// Everything configurable about a connection.
#[derive(Clone, Default)]
pub struct OptionsBox(pub(crate) Options);

fn limit(ns: i64) -> shmsock::Result<Option<std::time::Duration>> {
    match Timeout::from_ns(ns)? {
        Timeout::Limit(limit) => Ok(limit),
        Timeout::Default => Err(Error::new(ErrorKind::InvalidArgument, "an option needs a timeout value")),
    }
}

/// Checks one server limit with the core's own rules and messages: the
/// defaults with only this change must pass `Options::validate`, so a bad value
/// is refused by its setter (the options then stay as they were) without
/// blaming it for another field's bad value, and the bounds (1..=256 dispatch
/// threads, ...) live in the core alone. `validate` checks them again.
fn check_limit(change: impl FnOnce(Options) -> Options) -> shmsock::Result<()> {
    change(Options::default()).validate()
}

fn positive(ns: i64, what: &str) -> shmsock::Result<std::time::Duration> {
    limit(ns)?.ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("the {what} cannot be 'forever'")))
}

/// The defaults.
pub fn options_new() -> BridgeResult<Box<OptionsBox>> {
    guard(|| Ok(Box::default()))
}

/// A copy.
pub fn options_clone(options: &OptionsBox) -> BridgeResult<Box<OptionsBox>> {
    guard(|| Ok(Box::new(options.clone())))
}

impl OptionsBox {
    /// This side's keypair.
    pub fn set_keypair(&mut self, keypair: &KeypairBox) -> BridgeResult<()> {
        guard(|| {
            self.0.keypair = Some((*keypair.0).clone());
            Ok(())
        })
    }
    /// The server's public key (clients pin it).
    pub fn set_server_key(&mut self, key: &[u8]) -> BridgeResult<()> {
        guard(|| {
            self.0.server_key = Some(key_from_bytes(key)?);
            Ok(())
        })
    }
    /// Only these client keys (concatenated 32-byte keys); empty: allow none.
    pub fn set_allowed_clients(&mut self, keys: &[u8]) -> BridgeResult<()> {
        guard(|| {
            if !keys.len().is_multiple_of(32) {
                return Err(Error::new(ErrorKind::InvalidKey, "the allowed client keys are 32 bytes each"));
            }
            let keys = keys.chunks(32).map(key_from_bytes).collect::<shmsock::Result<Vec<_>>>()?;
            self.0.allowed_clients = AllowedClients::Only(keys);
            Ok(())
        })
    }
    /// Any client key.
    pub fn set_allow_any_client(&mut self) -> BridgeResult<()> {
        guard(|| {
            self.0.allowed_clients = AllowedClients::Any;
            Ok(())
        })
    }
    /// Only these peer uids.
    pub fn set_allowed_uids(&mut self, uids: &[u32]) -> BridgeResult<()> {
        guard(|| {
            self.0.allowed_uids = Some(uids.to_vec());
            Ok(())
        })
    }
    /// Any uid that can reach the socket.
    pub fn set_allow_any_uid(&mut self) -> BridgeResult<()> {
        guard(|| {
            self.0.allowed_uids = None;
            Ok(())
        })
    }
    /// Ring capacity in bytes (0: the default).
    pub fn set_ring_size(&mut self, bytes: u32) -> BridgeResult<()> {
        guard(|| {
            self.0.ring_size = if bytes == 0 { None } else { Some(bytes) };
            Ok(())
        })
    }
    /// Largest message this side accepts.
    pub fn set_max_message_size(&mut self, bytes: u32) -> BridgeResult<()> {
        guard(|| {
            if bytes == 0 {
                return Err(Error::new(ErrorKind::InvalidArgument, "the maximum message size must be positive"));
            }
            self.0.max_message_size = bytes;
            Ok(())
        })
    }
    /// Send timeout in ns (-1: forever).
    pub fn set_send_timeout(&mut self, ns: i64) -> BridgeResult<()> {
        guard(|| {
            self.0.send_timeout = limit(ns)?;
            Ok(())
        })
    }
    /// Receive timeout in ns (-1: forever).
    pub fn set_recv_timeout(&mut self, ns: i64) -> BridgeResult<()> {
        guard(|| {
            self.0.recv_timeout = limit(ns)?;
            Ok(())
        })
    }
    /// Handshake timeout in ns.
    pub fn set_handshake_timeout(&mut self, ns: i64) -> BridgeResult<()> {
        guard(|| {
            self.0.handshake_timeout = positive(ns, "handshake timeout")?;
            Ok(())
        })
    }
    /// Connect wait in ns (0: none; checked by `Options::validate`).
    pub fn set_connect_wait(&mut self, ns: i64) -> BridgeResult<()> {
        guard(|| {
            self.0.connect_wait = positive(ns, "connect wait")?;
            Ok(())
        })
    }
    /// Spin budget in ns.
    pub fn set_spin(&mut self, ns: i64) -> BridgeResult<()> {
        guard(|| {
            self.0.spin = positive(ns, "spin budget")?;
            Ok(())
        })
    }
    /// Segment backend: 1 memfd, 2 named.
    pub fn set_backend(&mut self, backend: u8) -> BridgeResult<()> {
        guard(|| {
            self.0.backend = Backend::from_id(backend).ok_or_else(|| {
                Error::new(ErrorKind::InvalidArgument, format!("there is no segment backend {backend}"))
            })?;
            Ok(())
        })
    }
    /// Require ChaCha20-Poly1305.
    pub fn set_require_chacha(&mut self, require: bool) -> BridgeResult<()> {
        guard(|| {
            self.0.require_chacha = require;
            Ok(())
        })
    }
    /// Listeners and servers: bytes of large messages gathered at once.
    pub fn set_max_reassembly_bytes(&mut self, bytes: usize) -> BridgeResult<()> {
        guard(|| {
            self.0.max_reassembly_bytes = bytes;
            Ok(())
        })
    }
    /// Servers (and `Listener::accept`): the most connections at once (at least 1).
    pub fn set_max_connections(&mut self, n: usize) -> BridgeResult<()> {
        guard(|| {
            check_limit(|o| o.max_connections(n))?;
            self.0.max_connections = n;
            Ok(())
        })
    }
    /// Servers: the most connections at once per peer uid (0: no limit of its own).
    pub fn set_max_connections_per_uid(&mut self, n: usize) -> BridgeResult<()> {
        guard(|| {
            let n = (n > 0).then_some(n);
            check_limit(|o| o.max_connections_per_uid(n))?;
            self.0.max_connections_per_uid = n;
            Ok(())
        })
    }
    /// Servers, listeners and publishers: the most handshakes in progress,
    /// overall and per uid (each at least 1).
    pub fn set_max_pending_handshakes(&mut self, overall: usize, per_uid: usize) -> BridgeResult<()> {
        guard(|| {
            check_limit(|o| o.max_pending_handshakes(overall, per_uid))?;
            self.0.max_pending_handshakes = overall;
            self.0.max_pending_handshakes_per_uid = per_uid;
            Ok(())
        })
    }
    /// Servers: the most bytes a connection queues when its ring is full.
    pub fn set_max_queued_bytes(&mut self, bytes: usize) -> BridgeResult<()> {
        guard(|| {
            check_limit(|o| o.max_queued_bytes(bytes))?;
            self.0.max_queued_bytes = bytes;
            Ok(())
        })
    }
    /// Servers: the number of dispatch threads (1 to 256).
    pub fn set_dispatch_threads(&mut self, n: usize) -> BridgeResult<()> {
        guard(|| {
            check_limit(|o| o.dispatch_threads(n))?;
            self.0.dispatch_threads = n;
            Ok(())
        })
    }
    /// Checks the values that do not depend on the side.
    pub fn validate(&self) -> BridgeResult<()> {
        guard(|| self.0.validate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::last_error_code;

    #[test]
    fn server_limits_are_checked_by_their_setters() {
        let mut o = OptionsBox::default();
        o.set_max_connections(2).unwrap();
        o.set_max_connections_per_uid(1).unwrap();
        o.set_max_pending_handshakes(3, 2).unwrap();
        o.set_max_queued_bytes(8192).unwrap();
        o.set_dispatch_threads(256).unwrap();
        o.validate().unwrap();
        assert_eq!(o.0.max_connections, 2);
        assert_eq!(o.0.max_connections_per_uid, Some(1));
        assert_eq!((o.0.max_pending_handshakes, o.0.max_pending_handshakes_per_uid), (3, 2));
        assert_eq!(o.0.max_queued_bytes, 8192);
        assert_eq!(o.0.dispatch_threads, 256);
        o.set_max_connections_per_uid(0).unwrap();
        assert_eq!(o.0.max_connections_per_uid, None, "0: no limit of its own");

        assert!(o.set_max_connections(0).is_err());
        assert!(o.set_max_pending_handshakes(0, 1).is_err());
        assert!(o.set_max_pending_handshakes(1, 0).is_err());
        assert!(o.set_dispatch_threads(0).is_err());
        assert!(o.set_dispatch_threads(257).is_err());
        assert_eq!(last_error_code(), ErrorKind::InvalidArgument.code());
        // A refused value leaves the options as they were.
        assert_eq!(o.0.max_connections, 2);
        assert_eq!((o.0.max_pending_handshakes, o.0.max_pending_handshakes_per_uid), (3, 2));
        assert_eq!(o.0.dispatch_threads, 256);
        o.validate().unwrap();
        // Another field's bad value does not make a good limit fail.
        o.set_ring_size(3000).unwrap();
        o.set_max_connections(5).unwrap();
        assert!(o.validate().is_err());
    }
}
