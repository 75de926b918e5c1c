//! Everything that talks to the operating system: the per-user runtime directory,
//! memfd segments and their seals, memory mappings, fd passing, peer credentials,
//! the wake-up descriptors of a connection (an eventfd per side, see
//! [`OwnWake`] and [`Sleeper`]), and waiting on file descriptors.
//!
//! Only Linux is implemented and tested. A port to macOS or Windows replaces this
//! module (and the memfd backend) and nothing else; the wake-up descriptor is
//! already written so that a pipe can stand in for the eventfd there.
//!
//! One file per concept; callers name everything as `platform::item`.

mod poll;
mod process;
mod runtime_dir;
mod shm;
mod socket;
mod wake;

pub use poll::*;
pub use process::*;
pub use runtime_dir::*;
pub use shm::*;
pub use socket::*;
pub use wake::*;
