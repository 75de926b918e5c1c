//! Keyword arguments to the core's `Options`, checked with Python errors.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use shmsock::{AllowedClients, Backend, Options};

use crate::keys::{PyKeypair, PyPublicKey};
use crate::wait::{opt_seconds, seconds};

/// The options every side shares, as given from Python.
pub(crate) struct Common<'a, 'py> {
    pub ring_size: Option<u32>,
    pub max_message_size: Option<u32>,
    pub send_timeout: Option<&'a Bound<'py, PyAny>>,
    pub recv_timeout: Option<&'a Bound<'py, PyAny>>,
    pub handshake_timeout: Option<&'a Bound<'py, PyAny>>,
    pub spin: Option<&'a Bound<'py, PyAny>>,
    pub require_chacha: bool,
}

/// Options plus the send and receive timeouts they hold (the defaults of
/// `send()` and `recv()` when no `timeout=` is given).
pub(crate) struct Built {
    pub options: Options,
    pub send_timeout: Option<Duration>,
    pub recv_timeout: Option<Duration>,
}

fn common(c: &Common<'_, '_>) -> PyResult<Built> {
    let mut options = Options::new();
    // Ranges (power of two, 4 KiB to 1 GiB, ...) are the core's to check: its
    // InvalidArgument is a ValueError.
    if let Some(size) = c.ring_size {
        options = options.ring_size(size);
    }
    if let Some(max) = c.max_message_size {
        options = options.max_message_size(max);
    }
    let send_timeout = opt_seconds(c.send_timeout, "send_timeout")?;
    let recv_timeout = opt_seconds(c.recv_timeout, "recv_timeout")?;
    options = options.send_timeout(send_timeout).recv_timeout(recv_timeout);
    if let Some(h) = c.handshake_timeout {
        match seconds(h, "handshake_timeout")? {
            Some(d) if !d.is_zero() => options = options.handshake_timeout(d),
            _ => return Err(PyValueError::new_err("handshake_timeout must be a positive number of seconds")),
        }
    }
    if let Some(s) = c.spin {
        match seconds(s, "spin")? {
            Some(d) if d <= Duration::from_secs(1) => options = options.spin(d),
            _ => return Err(PyValueError::new_err("spin must be between 0 and 1 second")),
        }
    }
    options = options.require_chacha(c.require_chacha);
    Ok(Built { options, send_timeout, recv_timeout })
}

/// Options of a client (Stream.connect, Client).
pub(crate) fn client(
    server_key: &Bound<'_, PyAny>,
    keypair: Option<&Bound<'_, PyAny>>,
    c: &Common<'_, '_>,
) -> PyResult<Built> {
    let mut built = common(c)?;
    if server_key.is_none() {
        return Err(PyTypeError::new_err(
            "connecting needs server_key=, the server's public key (shmsock never trusts a key the server sends)",
        ));
    }
    built.options = built.options.server_key(PyPublicKey::extract_key(server_key, "server_key")?);
    if let Some(kp) = keypair.filter(|k| !k.is_none()) {
        let kp = kp.cast::<PyKeypair>().map_err(|_| {
            PyTypeError::new_err(format!(
                "keypair must be a shmsock.Keypair or None, not '{}'",
                crate::buffer::type_name(kp)
            ))
        })?;
        built.options = built.options.keypair(kp.get().keypair.clone());
    }
    Ok(built)
}

/// Options of a server (Listener.bind, Server).
pub(crate) fn server(
    keypair: &Bound<'_, PyAny>,
    allowed_clients: Option<&Bound<'_, PyAny>>,
    allowed_uids: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    c: &Common<'_, '_>,
) -> PyResult<Built> {
    let mut built = common(c)?;
    let kp = keypair.cast::<PyKeypair>().map_err(|_| {
        PyTypeError::new_err(format!(
            "keypair must be a shmsock.Keypair (the server's identity, which clients pin), not '{}'",
            crate::buffer::type_name(keypair)
        ))
    })?;
    built.options = built.options.keypair(kp.get().keypair.clone());
    if let Some(list) = allowed_clients.filter(|a| !a.is_none()) {
        if list.is_instance_of::<PyString>() || list.is_instance_of::<PyPublicKey>() {
            return Err(PyTypeError::new_err(
                "allowed_clients must be an iterable of keys (e.g. a list), not a single key",
            ));
        }
        let mut keys = Vec::new();
        for item in list.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "allowed_clients must be an iterable of public keys or None, not '{}'",
                crate::buffer::type_name(list)
            ))
        })? {
            keys.push(PyPublicKey::extract_key(&item?, "each allowed client")?);
        }
        built.options.allowed_clients = AllowedClients::Only(keys);
    }
    if let Some(list) = allowed_uids.filter(|a| !a.is_none()) {
        let mut uids = Vec::new();
        for item in list.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "allowed_uids must be an iterable of ints or None, not '{}'",
                crate::buffer::type_name(list)
            ))
        })? {
            uids.push(item?.extract::<u32>().map_err(|_| PyTypeError::new_err("each allowed uid must be an int"))?);
        }
        built.options = built.options.allow_uids(uids);
    }
    if let Some(name) = backend {
        let b = Backend::from_name(name)
            .ok_or_else(|| PyValueError::new_err(format!("backend must be 'memfd' or 'named', not '{name}'")))?;
        built.options = built.options.backend(b);
    }
    Ok(built)
}
