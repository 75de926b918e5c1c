//! Python's option keywords: the one list of them ([`KEYWORDS`]), their
//! checking, and their translation into the core's `Options`.
//!
//! Every entry point that takes options (``Stream.connect``, ``Client``,
//! ``Listener.bind``, ``Server``, ``Subscriber.connect``, ``Publisher.bind``)
//! takes them as ``**options`` and hands the dict to [`Given::new`], which
//! refuses a keyword the entry point does not take, as Python would. The type
//! checkers' view of each entry point's keywords is one TypedDict in
//! ``shmsock/_options.py``; tests/test_options.py checks that it lists what
//! [`KEYWORDS`] says (``_shmsock._option_keywords()``). So a new option is a
//! row here (plus its translation below) and a line in ``_options.py``.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use shmsock::{AllowedClients, Backend, Options};

use crate::keys::{PyKeypair, PyPublicKey};
use crate::wait::{opt_seconds, seconds};

/// An entry point that takes options.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Entry {
    Connect,
    Client,
    Listen,
    Server,
    Subscribe,
    Publish,
}

use Entry::{Client, Connect, Listen, Publish, Server, Subscribe};

impl Entry {
    const ALL: [Entry; 6] = [Connect, Client, Listen, Server, Subscribe, Publish];

    /// Its name in `_option_keywords()` (``ConnectOptions`` is the TypedDict of
    /// ``"connect"``).
    fn name(self) -> &'static str {
        match self {
            Connect => "connect",
            Client => "client",
            Listen => "listen",
            Server => "server",
            Subscribe => "subscribe",
            Publish => "publish",
        }
    }

    /// The call, as error messages name it.
    fn call(self) -> &'static str {
        match self {
            Connect => "Stream.connect()",
            Client => "Client()",
            Listen => "Listener.bind()",
            Server => "Server()",
            Subscribe => "Subscriber.connect()",
            Publish => "Publisher.bind()",
        }
    }
}

/// Every option keyword once, with the entry points that take it.
pub(crate) const KEYWORDS: &[(&str, &[Entry])] = &[
    // Identity and access.
    ("keypair", &[Connect, Client, Subscribe]),
    ("allowed_clients", &[Listen, Server, Publish]),
    ("allowed_uids", &[Listen, Server, Publish]),
    // The handshake and waiting, on every side.
    ("handshake_timeout", &Entry::ALL),
    ("spin", &Entry::ALL),
    ("require_chacha", &Entry::ALL),
    // Streams and their rings.
    ("ring_size", &[Connect, Client, Listen, Server]),
    ("max_message_size", &Entry::ALL),
    ("send_timeout", &[Connect, Client, Listen]),
    ("recv_timeout", &[Connect, Client, Listen, Server, Subscribe]),
    ("backend", &[Listen, Server]),
    ("max_queued_bytes", &[Server]),
    ("max_reassembly_bytes", &[Listen, Server]),
    // What a server holds for its clients at once.
    ("max_connections", &[Listen, Server]),
    ("max_connections_per_uid", &[Listen, Server]),
    ("max_pending_handshakes", &[Listen, Server, Publish]),
    ("max_pending_handshakes_per_uid", &[Listen, Server, Publish]),
    ("dispatch_threads", &[Server]),
    // Connecting while no server listens yet.
    ("wait", &[Connect, Client, Subscribe]),
    // Topics.
    ("slots", &[Publish]),
    ("policy", &[Publish]),
    ("reliable_timeout", &[Publish]),
    ("rekey_interval", &[Publish]),
    ("max_subscribers", &[Publish]),
];

fn takes(entry: Entry, key: &str) -> bool {
    KEYWORDS.iter().any(|(k, entries)| *k == key && entries.contains(&entry))
}

/// ``_shmsock._option_keywords()``: each entry point's keywords, from
/// [`KEYWORDS`] (for tests/test_options.py).
#[pyfunction]
#[pyo3(name = "_option_keywords")]
pub(crate) fn option_keywords(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for entry in Entry::ALL {
        let keys: Vec<&str> = KEYWORDS.iter().filter(|(_, e)| e.contains(&entry)).map(|(k, _)| *k).collect();
        dict.set_item(entry.name(), keys)?;
    }
    Ok(dict)
}

/// The option keywords one call was given (its ``**options``), checked.
pub(crate) struct Given<'py> {
    entry: Entry,
    dict: Option<Bound<'py, PyDict>>,
}

impl<'py> Given<'py> {
    /// Checks that `entry` takes every keyword in `options`: another one is a
    /// TypeError worded as Python words it.
    pub(crate) fn new(entry: Entry, options: Option<&Bound<'py, PyDict>>) -> PyResult<Given<'py>> {
        if let Some(dict) = options {
            for key in dict.keys() {
                // Keyword names are always str (CPython checks them).
                let key = key.cast_into::<PyString>()?;
                let key = key.to_cow()?;
                if !takes(entry, &key) {
                    return Err(PyTypeError::new_err(format!(
                        "{} got an unexpected keyword argument '{key}'",
                        entry.call()
                    )));
                }
            }
        }
        Ok(Given { entry, dict: options.cloned() })
    }

    /// What was given for `key`: None when it was omitted (a given None is
    /// Some(None), for options where omitting differs from None).
    pub(crate) fn raw(&self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        debug_assert!(takes(self.entry, key), "{key} is not in KEYWORDS for {:?}", self.entry);
        match &self.dict {
            None => Ok(None),
            Some(d) => d.get_item(key),
        }
    }

    /// What was given for `key`; None when omitted or None.
    pub(crate) fn get(&self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.raw(key)?.filter(|v| !v.is_none()))
    }

    /// An integer option; errors name the keyword, as pyo3's own do.
    pub(crate) fn int<T>(&self, key: &str) -> PyResult<Option<T>>
    where
        T: for<'a> FromPyObject<'a, 'py, Error = PyErr>,
    {
        let Some(value) = self.get(key)? else { return Ok(None) };
        value.extract::<T>().map(Some).map_err(|e| {
            let py = value.py();
            PyErr::from_type(e.get_type(py), format!("argument '{key}': {}", e.value(py)))
        })
    }

    /// Seconds (None: no limit).
    pub(crate) fn seconds(&self, key: &str) -> PyResult<Option<Duration>> {
        opt_seconds(self.get(key)?.as_ref(), key)
    }

    /// A flag (omitted or None: false).
    pub(crate) fn flag(&self, key: &str) -> PyResult<bool> {
        match self.get(key)? {
            None => Ok(false),
            Some(v) => v.extract::<bool>().map_err(|_| {
                PyTypeError::new_err(format!("{key} must be True or False, not '{}'", crate::buffer::type_name(&v)))
            }),
        }
    }

    /// A string option.
    pub(crate) fn text(&self, key: &str) -> PyResult<Option<String>> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v.extract::<String>().map(Some).map_err(|_| {
                PyTypeError::new_err(format!("{key} must be a str, not '{}'", crate::buffer::type_name(&v)))
            }),
        }
    }
}

/// Options plus the send and receive timeouts they hold (the defaults of
/// `send()` and `recv()` when no `timeout=` is given).
pub(crate) struct Built {
    pub options: Options,
    pub send_timeout: Option<Duration>,
    pub recv_timeout: Option<Duration>,
}

/// The options every side shares (those of them `given`'s entry takes).
fn common(given: &Given<'_>) -> PyResult<Built> {
    let entry = given.entry;
    let mut options = Options::new();
    // Ranges (power of two, 4 KiB to 1 GiB, ...) are the core's to check: its
    // InvalidArgument is a ValueError.
    if takes(entry, "ring_size") {
        if let Some(size) = given.int::<u32>("ring_size")? {
            options = options.ring_size(size);
        }
    }
    // A topic's max_message_size is a topic option (see publisher.rs).
    if entry != Publish {
        if let Some(max) = given.int::<u32>("max_message_size")? {
            options = options.max_message_size(max);
        }
    }
    let send_timeout = if takes(entry, "send_timeout") { given.seconds("send_timeout")? } else { None };
    let recv_timeout = if takes(entry, "recv_timeout") { given.seconds("recv_timeout")? } else { None };
    options = options.send_timeout(send_timeout).recv_timeout(recv_timeout);
    if let Some(h) = given.get("handshake_timeout")? {
        match seconds(&h, "handshake_timeout")? {
            Some(d) if !d.is_zero() => options = options.handshake_timeout(d),
            _ => return Err(PyValueError::new_err("handshake_timeout must be a positive number of seconds")),
        }
    }
    if let Some(s) = given.get("spin")? {
        match seconds(&s, "spin")? {
            Some(d) if d <= Duration::from_secs(1) => options = options.spin(d),
            _ => return Err(PyValueError::new_err("spin must be between 0 and 1 second")),
        }
    }
    options = options.require_chacha(given.flag("require_chacha")?);
    Ok(Built { options, send_timeout, recv_timeout })
}

/// Options of a client (Stream.connect, Client, Subscriber.connect).
pub(crate) fn client(server_key: &Bound<'_, PyAny>, given: &Given<'_>) -> PyResult<Built> {
    let mut built = common(given)?;
    if server_key.is_none() {
        return Err(PyTypeError::new_err(
            "connecting needs server_key=, the server's public key (shmsock never trusts a key the server sends)",
        ));
    }
    built.options = built.options.server_key(PyPublicKey::extract_key(server_key, "server_key")?);
    // ``wait=None`` (or omitted, or infinite): one attempt.
    built.options = built.options.connect_wait(given.seconds("wait")?.unwrap_or_default());
    if let Some(kp) = given.get("keypair")? {
        let kp = kp.cast::<PyKeypair>().map_err(|_| {
            PyTypeError::new_err(format!(
                "keypair must be a shmsock.Keypair or None, not '{}'",
                crate::buffer::type_name(&kp)
            ))
        })?;
        built.options = built.options.keypair(kp.get().keypair.clone());
    }
    Ok(built)
}

/// Options of a server (Listener.bind, Server, Publisher.bind).
pub(crate) fn server(keypair: &Bound<'_, PyAny>, given: &Given<'_>) -> PyResult<Built> {
    let mut built = common(given)?;
    let kp = keypair.cast::<PyKeypair>().map_err(|_| {
        PyTypeError::new_err(format!(
            "keypair must be a shmsock.Keypair (the server's identity, which clients pin), not '{}'",
            crate::buffer::type_name(keypair)
        ))
    })?;
    built.options = built.options.keypair(kp.get().keypair.clone());
    if let Some(list) = given.get("allowed_clients")? {
        if list.is_instance_of::<PyString>() || list.is_instance_of::<PyPublicKey>() {
            return Err(PyTypeError::new_err(
                "allowed_clients must be an iterable of keys (e.g. a list), not a single key",
            ));
        }
        let mut keys = Vec::new();
        for item in list.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "allowed_clients must be an iterable of public keys or None, not '{}'",
                crate::buffer::type_name(&list)
            ))
        })? {
            keys.push(PyPublicKey::extract_key(&item?, "each allowed client")?);
        }
        built.options.allowed_clients = AllowedClients::Only(keys);
    }
    if let Some(list) = given.get("allowed_uids")? {
        let mut uids = Vec::new();
        for item in list.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "allowed_uids must be an iterable of ints or None, not '{}'",
                crate::buffer::type_name(&list)
            ))
        })? {
            uids.push(item?.extract::<u32>().map_err(|_| PyTypeError::new_err("each allowed uid must be an int"))?);
        }
        built.options = built.options.allow_uids(uids);
    }
    if takes(given.entry, "backend") {
        if let Some(name) = given.text("backend")? {
            let b = Backend::from_name(&name)
                .ok_or_else(|| PyValueError::new_err(format!("backend must be 'memfd' or 'named', not '{name}'")))?;
            built.options = built.options.backend(b);
        }
    }
    if takes(given.entry, "max_reassembly_bytes") {
        if let Some(bytes) = given.int::<usize>("max_reassembly_bytes")? {
            built.options = built.options.max_reassembly_bytes(bytes);
        }
    }
    // Zero limits are the core's to refuse (Options::validate): a ValueError.
    if takes(given.entry, "max_connections") {
        if let Some(n) = given.int::<usize>("max_connections")? {
            built.options = built.options.max_connections(n);
        }
        if let Some(n) = given.int::<usize>("max_connections_per_uid")? {
            built.options = built.options.max_connections_per_uid(Some(n));
        }
    }
    let (overall, per_uid) = (
        given.int::<usize>("max_pending_handshakes")?.unwrap_or(built.options.max_pending_handshakes),
        given.int::<usize>("max_pending_handshakes_per_uid")?.unwrap_or(built.options.max_pending_handshakes_per_uid),
    );
    built.options = built.options.max_pending_handshakes(overall, per_uid);
    Ok(built)
}
