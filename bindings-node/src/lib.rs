//! Node.js bindings of shmsock (napi-rs). Thin: types, errors and threading are
//! translated here; every piece of protocol lives in the core crate.
//!
//! The JavaScript layer (`index.js`) wraps these native classes into the public
//! API (promises, async iterators, EventEmitters). One module per concept:
//! - [`keys`]: `Keypair`, public-key text forms and fingerprints;
//! - [`options`]: options objects to core `Options`;
//! - [`stream`]: `NativeStream` (receive, send, close, flowing mode);
//! - [`listener`]: `NativeListener` (accept, serve) and `connect`;
//! - [`reactor`]: the one reactor thread and the dispatch to JavaScript;
//! - [`errors`]: core errors as `Error`s with a `SHMSOCK_*` code.

#![deny(clippy::all)]

mod errors;
mod keys;
mod listener;
mod options;
mod reactor;
mod stream;

use napi_derive::napi;

/// The version of the native module (equal to the package version).
#[napi]
pub fn native_version() -> String {
    shmsock::VERSION.to_string()
}

/// Every stable error code, `SHMSOCK_` + the core's error kind name.
#[napi]
pub fn error_codes() -> Vec<String> {
    shmsock::ErrorKind::ALL.iter().map(|k| errors::code_of(*k)).collect()
}
