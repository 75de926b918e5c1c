//! Borrowing the bytes of any object with the buffer protocol, without copying.
//!
//! pyo3's `PyBuffer` (and pyo3-ffi's `PyObject_GetBuffer`) exist only for the
//! limited API of Python 3.11 and later, and this wheel targets abi3 for 3.9.
//! The buffer functions and `Py_buffer` are nevertheless part of CPython's
//! public API since 3.0, exported by every CPython 3 interpreter, and the layout
//! of `Py_buffer` is the one 3.11 froze into the stable ABI (it has not changed
//! since 3.3). So we declare the two functions and the struct ourselves.
//!
//! `bytes` takes a fast path (immutable, no export needed). Non-contiguous
//! buffers (e.g. a strided memoryview) are copied into `bytes` first.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[repr(C)]
struct PyBufferRaw {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

const PYBUF_SIMPLE: c_int = 0;
const PYBUF_WRITABLE: c_int = 0x0001;

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBufferRaw, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBufferRaw);
}

/// An exported buffer, released (with the GIL held) when dropped.
pub(crate) struct Exported {
    view: Box<PyBufferRaw>,
}

// The view is only released with the GIL held (in Drop, which runs where the
// owner lives: inside a pymethod, attached). The pointer it holds stays valid
// while the export lasts, from any thread.
unsafe impl Send for Exported {}
unsafe impl Sync for Exported {}

impl Exported {
    fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<Exported> {
        let mut view = Box::new(PyBufferRaw {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        });
        let flags = if writable { PYBUF_WRITABLE } else { PYBUF_SIMPLE };
        // SAFETY: obj is a live object (we hold the GIL); view is a valid,
        // zeroed Py_buffer that CPython fills in.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Exported { view })
    }

    fn len(&self) -> usize {
        self.view.len.max(0) as usize
    }
}

impl Drop for Exported {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and is
        // released once; Drop runs attached (see the Send note above).
        Python::attach(|_| unsafe { PyBuffer_Release(&mut *self.view) });
    }
}

/// Read-only bytes borrowed from a Python object for the length of a call.
pub(crate) enum Data<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(Exported),
}

impl<'py> Data<'py> {
    /// Borrows the bytes of `obj`: bytes, bytearray, memoryview, array.array,
    /// numpy arrays, mmap, or anything with the buffer protocol.
    pub(crate) fn from_py(obj: &Bound<'py, PyAny>) -> PyResult<Data<'py>> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Data::Bytes(b.clone()));
        }
        match Exported::get(obj, false) {
            Ok(e) => Ok(Data::Buffer(e)),
            Err(err) if err.is_instance_of::<PyBufferError>(obj.py()) => {
                // Exports a buffer, but not a contiguous one: copy it, as
                // bytes(memoryview) does.
                let copy = obj.py().get_type::<PyBytes>().call1((obj,))?;
                Ok(Data::Bytes(copy.cast_into::<PyBytes>()?))
            }
            Err(_) => Err(PyTypeError::new_err(format!(
                "a bytes-like object is required (bytes, bytearray, memoryview or any buffer), not '{}'",
                type_name(obj)
            ))),
        }
    }

    /// The bytes. Valid while `self` lives, with or without the GIL.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Data::Bytes(b) => b.as_bytes(),
            Data::Buffer(e) => {
                if e.len() == 0 {
                    return &[];
                }
                // SAFETY: a successful simple export is a contiguous block of
                // `len` bytes that stays valid until the export is released.
                unsafe { std::slice::from_raw_parts(e.view.buf as *const u8, e.len()) }
            }
        }
    }
}

/// A writable buffer borrowed from a Python object (for recv_into).
pub(crate) struct WritableBuffer(Exported);

impl WritableBuffer {
    pub(crate) fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<WritableBuffer> {
        match Exported::get(obj, true) {
            Ok(e) => Ok(WritableBuffer(e)),
            Err(err) if err.is_instance_of::<PyBufferError>(obj.py()) => Err(PyTypeError::new_err(format!(
                "recv_into needs a writable, contiguous buffer (bytearray, memoryview of one, array.array, ...): {}",
                err.value(obj.py())
            ))),
            Err(_) => Err(PyTypeError::new_err(format!(
                "recv_into needs a writable buffer (bytearray, writable memoryview, array.array, ...), not '{}'",
                type_name(obj)
            ))),
        }
    }

    /// The bytes, writable. The caller must not hold two of these at once.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.0.len();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: a successful writable export is `len` contiguous writable
        // bytes, valid until released; &mut self makes this the only slice.
        unsafe { std::slice::from_raw_parts_mut(self.0.view.buf as *mut u8, len) }
    }
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().qualname().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}
