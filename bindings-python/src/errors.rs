//! The exception hierarchy: one base `shmsock.Error`, one subclass per core
//! `ErrorKind` (also deriving from the built-in exception that fits, such as
//! `TimeoutError` or `ConnectionError`), and `CallbackError` for an exception
//! raised inside a Server or Client callback.
//!
//! Every class carries `code` (the core's stable name, e.g. "TIMEOUT") and
//! `numeric_code` (the stable number of the C ABI) as class attributes, so they
//! exist on every instance. `BufferTooSmall` instances also carry `needed`.

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use shmsock::{Error as CoreError, ErrorKind};

/// (Python class name, kind, built-in bases after `Error`, docstring)
const TABLE: &[(&str, ErrorKind, &[&str], &str)] = &[
    (
        "Timeout",
        ErrorKind::Timeout,
        &["TimeoutError"],
        "A blocking call ran out of time. Nothing was lost; the call may be retried.",
    ),
    (
        "WouldBlock",
        ErrorKind::WouldBlock,
        &["BlockingIOError"],
        "A try_ call could not proceed without waiting. Nothing was lost.",
    ),
    ("Closed", ErrorKind::Closed, &[], "The object was closed by this process and cannot be used any more."),
    (
        "PeerClosed",
        ErrorKind::PeerClosed,
        &["ConnectionError"],
        "The peer closed the connection cleanly; every message it sent was delivered.",
    ),
    (
        "PeerGone",
        ErrorKind::PeerGone,
        &["ConnectionResetError"],
        "The peer process exited or was killed without closing the connection.",
    ),
    (
        "HandshakeRejected",
        ErrorKind::HandshakeRejected,
        &["ConnectionRefusedError"],
        "The server refused this client (its key is not on the allow-list, or its uid is not allowed).",
    ),
    (
        "ServerKeyMismatch",
        ErrorKind::ServerKeyMismatch,
        &["ConnectionError"],
        "The server does not hold the key the client pinned (or the endpoint name differs).",
    ),
    (
        "AuthenticationFailed",
        ErrorKind::AuthenticationFailed,
        &["ConnectionError"],
        "A frame failed authentication: the shared memory was tampered with. The connection is over.",
    ),
    ("ProtocolVersion", ErrorKind::ProtocolVersion, &["ConnectionError"], "The two sides share no protocol version."),
    ("NoCommonCipher", ErrorKind::NoCommonCipher, &["ConnectionError"], "The two sides share no transport cipher."),
    (
        "ProtocolViolation",
        ErrorKind::ProtocolViolation,
        &["ConnectionError"],
        "The peer sent bytes that do not follow the protocol. The connection is over.",
    ),
    (
        "MessageTooLarge",
        ErrorKind::MessageTooLarge,
        &["ValueError"],
        "A message is larger than the receiver's max_message_size. Nothing was sent.",
    ),
    (
        "BufferTooSmall",
        ErrorKind::BufferTooSmall,
        &["ValueError"],
        "The buffer is too small for the next message; `needed` says how many bytes it needs. The message is kept.",
    ),
    (
        "InvalidName",
        ErrorKind::InvalidName,
        &["ValueError"],
        "An endpoint name is empty, too long or has characters outside [A-Za-z0-9._-].",
    ),
    ("AddressInUse", ErrorKind::AddressInUse, &["OSError"], "Another live process already serves this endpoint name."),
    (
        "NotFound",
        ErrorKind::NotFound,
        &["FileNotFoundError"],
        "No process serves this endpoint name (or a key file does not exist).",
    ),
    (
        "InvalidKey",
        ErrorKind::InvalidKey,
        &["ValueError"],
        "A key (text, bytes or key file contents) is malformed or unusable.",
    ),
    (
        "InsecureKeyFile",
        ErrorKind::InsecureKeyFile,
        &[],
        "A key file is readable by other users; it is refused, as ssh does (chmod 600 it).",
    ),
    (
        "InvalidArgument",
        ErrorKind::InvalidArgument,
        &["ValueError"],
        "An argument is out of range or inconsistent (for example a ring size that is not a power of two).",
    ),
    (
        "ResourceExhausted",
        ErrorKind::ResourceExhausted,
        &["OSError"],
        "The system refused a resource (memory for a segment, file descriptors).",
    ),
    (
        "PermissionDenied",
        ErrorKind::PermissionDenied,
        &["PermissionError"],
        "The peer's uid is not allowed to connect, or the runtime directory is unsafe.",
    ),
    ("Io", ErrorKind::Io, &["OSError"], "Any other operating-system error."),
];

struct Classes {
    base: Py<PyType>,
    callback: Py<PyType>,
    kinds: Vec<(ErrorKind, Py<PyType>)>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn make_class<'py>(
    py: Python<'py>,
    name: &str,
    bases: Vec<Bound<'py, PyAny>>,
    doc: &str,
    code: &str,
    numeric: u32,
) -> PyResult<Bound<'py, PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__module__", "shmsock")?;
    dict.set_item("__qualname__", name)?;
    dict.set_item("__doc__", doc)?;
    dict.set_item("code", code)?;
    dict.set_item("numeric_code", numeric)?;
    let bases = PyTuple::new(py, bases)?;
    let ty = py.get_type::<PyType>().call1((name, bases, dict))?;
    Ok(ty.cast_into::<PyType>()?)
}

/// Creates the classes and adds them to the module.
pub(crate) fn register(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    let builtins = py.import("builtins")?;
    let base = make_class(
        py,
        "Error",
        vec![builtins.getattr("Exception")?],
        "Base class of every shmsock error. `code` is the stable name of the error \
         (e.g. \"TIMEOUT\"), `numeric_code` its stable number (0 for errors that do \
         not come from the core), and str(error) says what happened and what to do.",
        "ERROR",
        0,
    )?;
    m.add("Error", &base)?;
    let callback = make_class(
        py,
        "CallbackError",
        vec![base.clone().into_any()],
        "A Server or Client callback raised an exception; it is passed to on_error, \
         and the original exception is the __cause__.",
        "CALLBACK_ERROR",
        0,
    )?;
    m.add("CallbackError", &callback)?;
    let mut kinds = Vec::new();
    for (name, kind, extra, doc) in TABLE {
        let mut bases = vec![base.clone().into_any()];
        for b in *extra {
            bases.push(builtins.getattr(*b)?);
        }
        let class = make_class(py, name, bases, doc, kind.name(), kind.code())?;
        if *kind == ErrorKind::BufferTooSmall {
            class.setattr("needed", py.None())?;
        }
        m.add(*name, &class)?;
        kinds.push((*kind, class.unbind()));
    }
    let _ = CLASSES.set(py, Classes { base: base.unbind(), callback: callback.unbind(), kinds });
    Ok(())
}

fn classes(py: Python<'_>) -> &Classes {
    CLASSES.get(py).expect("shmsock._shmsock was initialised")
}

/// The exception instance for a core error.
pub(crate) fn instance<'py>(py: Python<'py>, err: &CoreError) -> Bound<'py, PyAny> {
    let c = classes(py);
    let class = c
        .kinds
        .iter()
        .find(|(k, _)| *k == err.kind())
        .map(|(_, t)| t.bind(py).clone())
        .unwrap_or_else(|| c.base.bind(py).clone());
    match class.call1((err.message(),)) {
        Ok(exc) => {
            if class.is(c.base.bind(py)) {
                // A kind this binding does not know yet: keep its stable code.
                let _ = exc.setattr("code", err.kind().name());
                let _ = exc.setattr("numeric_code", err.kind().code());
            }
            if let Some(needed) = err.needed() {
                let _ = exc.setattr("needed", needed);
            }
            exc
        }
        Err(e) => e.into_value(py).into_bound(py).into_any(),
    }
}

/// The Python exception for a core error.
pub(crate) fn to_py(py: Python<'_>, err: CoreError) -> PyErr {
    PyErr::from_value(instance(py, &err))
}

/// `result.or_raise(py)`: a core result as a Python result.
pub(crate) trait OrRaise<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, CoreError> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// A `shmsock.<Kind>` exception with a message of our own.
pub(crate) fn new(py: Python<'_>, kind: ErrorKind, message: impl Into<String>) -> PyErr {
    to_py(py, CoreError::new(kind, message))
}

/// `shmsock.Closed` for `what` ("stream", "listener", ...).
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    new(py, ErrorKind::Closed, format!("the {what} was closed"))
}

/// `CallbackError` wrapping `cause`, an exception raised by callback `what`.
pub(crate) fn callback_error<'py>(py: Python<'py>, what: &str, cause: &PyErr) -> Bound<'py, PyAny> {
    let c = classes(py);
    let value = cause.value(py);
    let type_name = value.get_type().qualname().map(|n| n.to_string()).unwrap_or_else(|_| "exception".into());
    let text = value.str().map(|s| s.to_string()).unwrap_or_default();
    let message = if text.is_empty() {
        format!("the {what} callback raised {type_name}")
    } else {
        format!("the {what} callback raised {type_name}: {text}")
    };
    match c.callback.bind(py).call1((message,)) {
        Ok(exc) => {
            if let Ok(exc) = exc.cast::<PyBaseException>() {
                let _ = exc.setattr("__cause__", value);
            }
            exc
        }
        Err(e) => e.into_value(py).into_bound(py).into_any(),
    }
}

/// True when `err` is the exception of core kind `kind`.
pub(crate) fn is_kind(py: Python<'_>, err: &PyErr, kind: ErrorKind) -> bool {
    classes(py).kinds.iter().find(|(k, _)| *k == kind).is_some_and(|(_, class)| err.is_instance(py, class.bind(py)))
}
