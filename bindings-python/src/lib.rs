//! `shmsock._shmsock`: the native half of the Python package.
//!
//! Thin: every type wraps the core type of the same name (one file per concept)
//! and translates arguments, errors and threading, never protocol. The
//! pure-Python package `shmsock` (python/shmsock) re-exports these classes and
//! adds `shmsock.aio`.
//!
//! Threading rules kept everywhere:
//! - every call that can wait releases the GIL (`Python::detach`), and waits in
//!   slices (see [`wait`]) so Ctrl-C interrupts it with KeyboardInterrupt;
//! - core threads (a Server's dispatch thread, a Client's reader thread) take
//!   the GIL only to run a Python callback, and whoever waits for those threads
//!   (close, garbage collection) releases the GIL first, so they never deadlock;
//! - no Rust panic crosses into Python (pyo3 turns one into PanicException, and
//!   the core guards its own threads).

#![deny(unsafe_op_in_unsafe_fn)]

use pyo3::prelude::*;

mod buffer;
mod callbacks;
mod client;
mod connecting;
mod errors;
mod keys;
mod listener;
mod options;
mod publisher;
mod receive;
mod server;
mod spin;
mod stream;
mod subscriber;
mod wait;

/// Native module of shmsock; import `shmsock` instead.
#[pymodule]
fn _shmsock(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", shmsock::VERSION)?;
    errors::register(py, m)?;
    m.add_class::<keys::PyPublicKey>()?;
    m.add_class::<keys::PyKeypair>()?;
    m.add_class::<stream::PyStream>()?;
    m.add_class::<stream::PyStats>()?;
    m.add_class::<stream::PyCredentials>()?;
    m.add_class::<connecting::PyConnecting>()?;
    m.add_class::<connecting::PySubscribing>()?;
    m.add_class::<listener::PyListener>()?;
    m.add_class::<server::PyServer>()?;
    m.add_class::<server::PyConnection>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<publisher::PyPublisher>()?;
    m.add_class::<subscriber::PySubscriber>()?;
    m.add_class::<publisher::PySubscriberInfo>()?;
    m.add_class::<spin::PySpinHistory>()?;
    m.add_function(wrap_pyfunction!(shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(options::option_keywords, m)?)?;
    // Servers and clients run core threads that call into Python: stop them
    // while the interpreter can still run those calls, before it finalizes.
    let atexit = py.import("atexit")?;
    atexit.call_method1("register", (m.getattr("_shutdown_all")?,))?;
    Ok(())
}

/// Closes every Server and Client still running (registered with atexit).
#[pyfunction]
#[pyo3(name = "_shutdown_all")]
fn shutdown_all(py: Python<'_>) {
    server::shutdown_all(py);
    client::shutdown_all(py);
}
