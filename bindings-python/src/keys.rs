//! `Keypair` and `PublicKey`.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use shmsock::keys::KEY_LEN;
use shmsock::{Keypair, PublicKey};

use crate::errors::OrRaise;

/// A static X25519 public key: who a peer is.
///
/// Build one from its text form (``"shmsock-pk:..."``) or its 32 raw bytes:
/// ``PublicKey("shmsock-pk:...")``, ``PublicKey(raw)``. ``str(key)`` is the text
/// form, ``bytes(key)`` the raw bytes. Keys compare equal by value and are
/// hashable.
#[pyclass(module = "shmsock", name = "PublicKey", frozen)]
#[derive(Clone)]
pub struct PyPublicKey {
    pub(crate) key: PublicKey,
}

impl PyPublicKey {
    /// A key from a PublicKey, its text form (str) or its raw bytes.
    pub(crate) fn extract_key(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PublicKey> {
        let py = obj.py();
        if let Ok(k) = obj.cast::<PyPublicKey>() {
            return Ok(k.get().key);
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return PublicKey::from_text(&s.to_cow()?).or_raise(py);
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return PublicKey::from_slice(b.as_bytes()).or_raise(py);
        }
        if obj.is_instance_of::<pyo3::types::PyByteArray>() || obj.is_instance_of::<pyo3::types::PyMemoryView>() {
            let data = crate::buffer::Data::from_py(obj)?;
            return PublicKey::from_slice(data.as_slice()).or_raise(py);
        }
        Err(PyTypeError::new_err(format!(
            "{what} must be a shmsock.PublicKey, its text form (str, 'shmsock-pk:...') or its {KEY_LEN} raw bytes, not '{}'",
            crate::buffer::type_name(obj)
        )))
    }
}

#[pymethods]
impl PyPublicKey {
    #[new]
    #[pyo3(signature = (key, /))]
    fn new(key: &Bound<'_, PyAny>) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: PyPublicKey::extract_key(key, "key")? })
    }

    /// The key from its text form, ``shmsock-pk:<base64url>``.
    #[staticmethod]
    fn from_text(py: Python<'_>, text: &str) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: PublicKey::from_text(text).or_raise(py)? })
    }

    /// The key from its 32 raw bytes.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<PyPublicKey> {
        let data = crate::buffer::Data::from_py(data)?;
        Ok(PyPublicKey { key: PublicKey::from_slice(data.as_slice()).or_raise(py)? })
    }

    /// The text form, ``shmsock-pk:<base64url>`` (also ``str(key)``).
    #[getter]
    fn text(&self) -> String {
        self.key.to_text()
    }

    /// The 32 raw bytes (also ``bytes(key)``).
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.key.as_bytes())
    }

    /// A short fingerprint for display, e.g. ``3f2a:9c11:07be:55d0``.
    #[getter]
    fn fingerprint(&self) -> String {
        self.key.fingerprint()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py)
    }

    fn __str__(&self) -> String {
        self.key.to_text()
    }

    fn __repr__(&self) -> String {
        format!("PublicKey('{}')", self.key.to_text())
    }

    fn __hash__(&self) -> u64 {
        let b = self.key.as_bytes();
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    }

    fn __eq__(&self, other: &Bound<'_, PyPublicKey>) -> bool {
        other.get().key == self.key
    }
}

/// A static X25519 keypair: the identity of a server or a client.
///
/// Create one with ``Keypair.generate()``, keep it in a key file with
/// ``save(path)`` (written 0600) and read it back with ``Keypair.load(path)``
/// (a file that others can read is refused, as ssh does). The secret is zeroed
/// in memory when the keypair is freed.
#[pyclass(module = "shmsock", name = "Keypair", frozen)]
pub struct PyKeypair {
    pub(crate) keypair: Keypair,
}

#[pymethods]
impl PyKeypair {
    /// A fresh random keypair.
    #[staticmethod]
    fn generate() -> PyKeypair {
        PyKeypair { keypair: Keypair::generate() }
    }

    /// Loads a key file written by ``save`` (or ``shmsock keygen``). Raises
    /// NotFound, InvalidKey (malformed file) or InsecureKeyFile (group or others
    /// can read it).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<PyKeypair> {
        Ok(PyKeypair { keypair: py.detach(|| Keypair::load(&path)).or_raise(py)? })
    }

    /// The keypair of a 32-byte secret key.
    #[staticmethod]
    fn from_secret_bytes(py: Python<'_>, secret: &Bound<'_, PyAny>) -> PyResult<PyKeypair> {
        let data = crate::buffer::Data::from_py(secret)?;
        let bytes: [u8; KEY_LEN] = data.as_slice().try_into().map_err(|_| {
            crate::errors::new(
                py,
                shmsock::ErrorKind::InvalidKey,
                format!("a secret key is {KEY_LEN} bytes long, not {}", data.as_slice().len()),
            )
        })?;
        Ok(PyKeypair { keypair: Keypair::from_secret_bytes(bytes) })
    }

    /// Writes a new key file with mode 0600. Refuses to overwrite an existing
    /// file (InvalidArgument), so an identity is never lost by accident.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.keypair.save(&path)).or_raise(py)
    }

    /// The public half, which peers pin or allow.
    #[getter]
    fn public_key(&self) -> PyPublicKey {
        PyPublicKey { key: *self.keypair.public() }
    }

    /// The fingerprint of the public key, e.g. ``3f2a:9c11:07be:55d0``.
    #[getter]
    fn fingerprint(&self) -> String {
        self.keypair.public().fingerprint()
    }

    /// The 32-byte secret key. Handle with care: it is this peer's identity.
    fn secret_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.keypair.secret_bytes())
    }

    fn __repr__(&self) -> String {
        format!("Keypair(public_key='{}')", self.keypair.public().to_text())
    }
}
