//! Shared machinery of the multi-process integration tests (`transport.rs`,
//! `tamper.rs`, `liveness.rs`).
//!
//! # Processes
//!
//! Every test binary has a `#[test] fn child()` that calls [`child_main`]. The
//! parent test re-runs its own binary (`std::env::current_exe()`) with
//! `--exact child --nocapture --test-threads=1` and `SHMSOCK_TEST_ROLE` (plus
//! `SHMSOCK_TEST_*` settings: endpoint name, keys in text form, options); without
//! that variable `child` returns at once, so in the parent it is a no-op test.
//!
//! A child reports events on stdout as lines `@@EV <event>` and takes commands
//! on stdin, one per line. The parent's [`Child`] reads the events on a thread
//! and lets a test wait for a matching one with a generous timeout. A child's
//! lifetime is bounded three ways: the parent's [`Child`] kills it on drop, it
//! exits when its stdin closes (the parent died), and a watchdog ends it after
//! [`CHILD_MAX_LIFETIME`].
//!
//! # Connection commands
//!
//! The `server` and `client` roles run a small command language per connection
//! (`<conn id> <command> <args>`; a client's connection is 0, a server numbers
//! the connections it accepts 0, 1, 2...). See [`run_command`].
//!
//! # Isolation and residue
//!
//! [`init`] points `SHMSOCK_RUNTIME_DIR` of the test process at a fresh private
//! temporary directory once, before any endpoint is used; children inherit it.
//! Each test uses names from [`unique_name`]. [`assert_no_endpoint_files`] and
//! [`ShmWatch`] check that nothing is left behind.
//!
//! # Files
//!
//! `setup` (runtime directory, names, messages, in-process pairs), `parent`
//! ([`Child`] and role settings), `child` (the roles and the command language),
//! `evil` (misbehaving peers), `residue` (files and segments left behind),
//! `procfs` (other processes seen through /proc).

#![allow(dead_code)]

use std::time::Duration;

mod child;
mod evil;
mod parent;
mod procfs;
mod residue;
mod setup;

// Each test binary uses some of these: the rest are not unused code.
#[allow(unused_imports)]
pub use child::*;
#[allow(unused_imports)]
pub use evil::*;
#[allow(unused_imports)]
pub use parent::*;
#[allow(unused_imports)]
pub use procfs::*;
#[allow(unused_imports)]
pub use residue::*;
#[allow(unused_imports)]
pub use setup::*;

/// The variable that makes `child` do something.
pub const ROLE_ENV: &str = "SHMSOCK_TEST_ROLE";
/// Prefix of every other setting passed to a child.
pub const ENV_PREFIX: &str = "SHMSOCK_TEST_";
/// Marker of event lines on a child's stdout.
const EVENT_MARK: &str = "@@EV ";
/// A child ends itself after this long, whatever happens.
pub const CHILD_MAX_LIFETIME: Duration = Duration::from_secs(120);
/// The generous bound on any single expected event. Nothing in the tests waits
/// this long when things work; it only turns a hang into a failure.
pub const WAIT: Duration = Duration::from_secs(30);
