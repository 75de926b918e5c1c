//! Node.js bindings of shmsock (napi-rs). Thin: types, errors and threading are
//! translated here; every piece of protocol lives in the core crate.
//!
//! The JavaScript layer (`index.js`) wraps these native classes into the public
//! API (promises, async iterators, EventEmitters). Everything waits on the
//! JavaScript thread's own event loop (libuv poll handles on the connections'
//! pollable fds); no native thread sits between a message and its promise.
//! One module per concept:
//! - [`keys`]: `Keypair`, public-key text forms and fingerprints;
//! - [`options`]: options objects to core `Options`;
//! - [`inbox`]: pending receives, read-ahead and flowing delivery (streams, subscribers);
//! - [`stream`]: one connection's receiving, sending and closing;
//! - [`native_stream`]: `NativeStream`, its JavaScript class;
//! - [`hot`]: its per-message calls (`send`, `recv`) as plain Node-API functions;
//! - [`listener`]: `NativeListener` (accept, serve);
//! - [`publisher`], [`subscriber`]: the two ends of a publish/subscribe topic;
//! - [`connect`]: `connect`, with its `wait` for a server to appear;
//! - [`dispatch`]: the events handed to JavaScript, and the thread-safe
//!   function for results of other threads (connects, handshakes, closes);
//! - [`uv`]: libuv poll handles and delivery to JavaScript (unsafe, as [`hot`]);
//! - [`pool`]: reused blocks for large received messages;
//! - [`cpu`]: this thread's preemptions (tell a spin that took turns with its peer);
//! - [`errors`]: core errors as `Error`s with a `SHMSOCK_*` code.

#![deny(clippy::all)]
// napi-derive registers exported functions only outside `cfg(test)`: in the test
// build (`cargo clippy --all-targets`) they look unused.
#![cfg_attr(test, allow(dead_code))]

mod connect;
mod cpu;
mod dispatch;
mod errors;
mod hot;
mod inbox;
mod keys;
mod listener;
mod native_stream;
mod options;
mod outbox;
mod pool;
mod publisher;
mod spin;
mod stream;
mod subscriber;
mod uv;

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
