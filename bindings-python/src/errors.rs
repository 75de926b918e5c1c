//! The exception hierarchy: one base `shmsock.Error`, one subclass per core
//! `ErrorKind`, made at import from the core's table of kinds (name, docstring,
//! codes) and also deriving from the built-in exception that fits, such as
//! `TimeoutError` or `ConnectionError`; and `CallbackError` for an exception
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

/// The built-in exceptions the class of `kind` also derives from (after
/// `Error`), so that `except TimeoutError` or `except ConnectionError` catch
/// shmsock's too. The class name, docstring and codes come from the core's
/// table of kinds.
fn builtin_bases(kind: ErrorKind) -> &'static [&'static str] {
    use ErrorKind::*;
    match kind {
        Timeout => &["TimeoutError"],
        WouldBlock => &["BlockingIOError"],
        PeerGone => &["ConnectionResetError"],
        HandshakeRejected => &["ConnectionRefusedError"],
        PeerClosed | ServerKeyMismatch | AuthenticationFailed | ProtocolVersion | NoCommonCipher
        | ProtocolViolation => &["ConnectionError"],
        MessageTooLarge | BufferTooSmall | InvalidName | InvalidKey | InvalidArgument => &["ValueError"],
        NotFound => &["FileNotFoundError"],
        PermissionDenied => &["PermissionError"],
        AddressInUse | ResourceExhausted | Io => &["OSError"],
        // Closed, InsecureKeyFile, and a kind newer than this list: `Error` alone.
        _ => &[],
    }
}

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
    for kind in ErrorKind::ALL {
        let mut bases = vec![base.clone().into_any()];
        for b in builtin_bases(kind) {
            bases.push(builtins.getattr(*b)?);
        }
        let class = make_class(py, kind.type_name(), bases, kind.doc(), kind.name(), kind.code())?;
        if kind == ErrorKind::BufferTooSmall {
            class.setattr("needed", py.None())?;
        }
        m.add(kind.type_name(), &class)?;
        kinds.push((kind, class.unbind()));
    }
    // For `shmsock/__init__.py`, which re-exports them without listing them.
    m.add("_error_classes", PyTuple::new(py, kinds.iter().map(|(_, class)| class.bind(py)))?)?;
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
