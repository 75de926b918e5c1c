//! The stable C ABI of shmsock: `libshmsock.a`, `libshmsock.so` and
//! `include/shmsock.h` (generated from this crate by cbindgen).
//!
//! This crate only translates: C types and ownership to the core's types and
//! back, the core's errors to result codes and a thread-local message, and C
//! callbacks to the core's handler traits. Every protocol decision is the
//! core's. The conventions (after rustls-ffi) are written once in
//! `ffi-c/README.md`, "API conventions"; each function's documentation below
//! becomes its comment in the header.
//!
//! Safety: every export checks its pointers for NULL at run time and runs
//! inside a panic boundary (`boundary!`); every handle is cast through
//! `handle`, which states the safety argument once. What cannot be checked at run
//! time (a dangling handle, a buffer shorter than its stated length, a handle
//! freed twice) is the caller's contract, as with any C library; it is stated in
//! the header. Each export is an `unsafe extern "C" fn` whose `# Safety` contract
//! is that C documentation, hence `missing_safety_doc` is allowed.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

// Declared in the order the header presents them (cbindgen follows it), one
// per group so that rustfmt keeps the order.
pub mod result;

pub mod keys;

pub mod options;

pub mod listener;

pub mod stream;

pub mod server;

pub mod client;

pub mod reactor;

pub mod endpoint;

pub mod pubsub;

pub mod util;

// Internal: the panic boundary and handle casting every export goes through.
mod boundary;

mod handle;

use std::ffi::c_char;

/// The version of the library that is running, e.g. "0.1.0": a static,
/// NUL-terminated string. Compare with SHMSOCK_VERSION (the header's version)
/// to detect a header/library mismatch. Never blocks. Thread-safe.
#[no_mangle]
pub extern "C" fn shmsock_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
