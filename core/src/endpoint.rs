//! Endpoint names and where they live: `<runtime dir>/<name>.sock` (the control
//! socket a server listens on) and `<name>.lock` (held with `flock` by the live
//! server, holding its pid as text). The runtime directory is private to the user
//! (0700), so other users cannot even connect.
//!
//! A bind takes the lock first: if another live process holds it, the name is in
//! use; if not, any socket file left by a dead server is stale and is replaced.
//! The new socket listens under `<name>.tmp` before it is renamed to
//! `<name>.sock`, so a socket file that refuses connections is always a dead
//! server's (PROTOCOL.md, "Endpoints").

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Instant;

use rustix::fs::FlockOperation;

use crate::error::{Error, ErrorKind, Result};
use crate::platform;

/// Longest endpoint name (bytes).
pub const MAX_NAME_LEN: usize = 100;

/// Checks an endpoint name: 1 to 100 bytes of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_endpoint_name(name: &str) -> Result<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars || name == "." || name == ".." {
        let shown: String = name.chars().take(40).collect();
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "invalid endpoint name '{shown}': use 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 . _ - (not '.' or '..')"
            ),
        ));
    }
    Ok(())
}

/// Longest Unix socket path the kernel accepts (sun_path is 108 bytes with NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The files of one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointPaths {
    /// The endpoint name.
    pub name: String,
    /// The control socket.
    pub socket: PathBuf,
    /// The lock file.
    pub lock: PathBuf,
    /// Where a server binds the socket before renaming it to `socket`
    /// (`<name>.tmp`, no longer than `socket`).
    pub temporary: PathBuf,
}

impl EndpointPaths {
    /// The paths of `name` in this user's runtime directory.
    pub fn of(name: &str) -> Result<EndpointPaths> {
        validate_endpoint_name(name)?;
        let dir = platform::runtime_dir()?;
        let socket = dir.join(format!("{name}.sock"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!(
                    "endpoint name '{name}' makes the socket path {} longer than the {MAX_SOCKET_PATH} bytes Unix sockets allow; use a shorter name or a shorter SHMSOCK_RUNTIME_DIR",
                    socket.display()
                ),
            ));
        }
        Ok(EndpointPaths {
            name: name.to_string(),
            lock: dir.join(format!("{name}.lock")),
            temporary: dir.join(format!("{name}.tmp")),
            socket,
        })
    }
}

/// A bound endpoint: the held lock and the listening socket. Dropping it removes
/// the socket and lock files.
pub struct Bound {
    paths: EndpointPaths,
    lock: File,
    released: std::sync::atomic::AtomicBool,
    /// The process that bound the name: a child of `fork()` gives up only its
    /// copy (see [`platform::Origin`]).
    origin: platform::Origin,
    /// The listening control socket (non-blocking).
    pub listener: UnixListener,
}

impl Bound {
    /// Gives the name up now: removes the socket and lock files, releases the
    /// lock, and wakes any thread waiting to accept. Idempotent; the name can be
    /// bound again at once. In a child of `fork()` (a pre-fork server's
    /// worker), only this process stops accepting: the files, the lock and the
    /// socket are the parent's too.
    pub fn release(&self) {
        if self.released.swap(true, std::sync::atomic::Ordering::AcqRel) || self.origin.forked() {
            return;
        }
        // Remove the files while still holding the lock, so no new server can be
        // between our unlink and its bind.
        let _ = std::fs::remove_file(&self.paths.socket);
        let _ = std::fs::remove_file(&self.paths.lock);
        let _ = rustix::fs::flock(self.lock.as_fd(), FlockOperation::Unlock);
        platform::shutdown(self.listener.as_fd());
    }

    /// True once released.
    pub fn is_released(&self) -> bool {
        self.released.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The endpoint's files.
    pub fn paths(&self) -> &EndpointPaths {
        &self.paths
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.release();
    }
}

fn in_use(name: &str) -> Error {
    Error::new(
        ErrorKind::AddressInUse,
        format!("endpoint '{name}' is served by another live process; choose another name or stop that server"),
    )
}

/// How many connections the kernel queues for a server before it accepts
/// them. Small on purpose: the server accepts fast, and a client that finds
/// the queue full waits in connect (bounded by its handshake timeout) rather
/// than behind hundreds of silent connections an attacker queued ahead of it;
/// handshakes the server has accepted are bounded separately
/// (`Options::max_pending_handshakes`).
pub const LISTEN_BACKLOG: i32 = 16;

/// Claims `name` and listens on its socket.
pub fn bind(name: &str) -> Result<Bound> {
    let paths = EndpointPaths::of(name)?;
    for _ in 0..8 {
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&paths.lock)
            .map_err(|e| Error::io(&format!("opening {}", paths.lock.display()), e))?;
        match rustix::fs::flock(lock.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(in_use(name)),
            Err(e) => return Err(platform::os_error("locking the endpoint", e)),
        }
        // A previous owner may have removed this lock file between our open and
        // our flock; then we hold a lock nobody else can see: start over.
        let same = match (lock.metadata(), std::fs::metadata(&paths.lock)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        let mut lock = lock;
        let _ = lock.set_len(0);
        let _ = writeln!(lock, "{}", std::process::id());
        // We hold the lock, so any socket file is a dead server's. The socket is
        // bound and listening under a temporary name first and then renamed
        // into place (atomically replacing a dead server's file): a client
        // never finds a socket file that does not listen yet, so ECONNREFUSED
        // always means that no server is there.
        let _ = std::fs::remove_file(&paths.temporary);
        let listener = UnixListener::bind(&paths.temporary)
            .map_err(|e| Error::io(&format!("binding {}", paths.temporary.display()), e))?;
        platform::set_listen_backlog(listener.as_fd(), LISTEN_BACKLOG)?;
        listener.set_nonblocking(true).map_err(|e| Error::io("configuring the listening socket", e))?;
        if let Err(e) = std::fs::rename(&paths.temporary, &paths.socket) {
            let _ = std::fs::remove_file(&paths.temporary);
            return Err(Error::io(&format!("moving the socket into place at {}", paths.socket.display()), e));
        }
        return Ok(Bound {
            paths,
            lock,
            released: std::sync::atomic::AtomicBool::new(false),
            origin: platform::Origin::here(),
            listener,
        });
    }
    Err(in_use(name))
}

/// Connects to the server of `name`. No server: NotFound, at once.
pub fn connect(name: &str) -> Result<UnixStream> {
    connect_until(name, None)
}

/// As [`connect`], waiting at most until `deadline` for room in the server's
/// backlog (it is full while the server accepts slower than clients arrive:
/// [`LISTEN_BACKLOG`]); Timeout then.
pub fn connect_until(name: &str, deadline: Option<Instant>) -> Result<UnixStream> {
    let paths = EndpointPaths::of(name)?;
    platform::connect_unix(&paths.socket, deadline).map_err(|e| match e.raw_os_error() {
        Some(libc::EAGAIN) => Error::new(
            ErrorKind::Timeout,
            format!(
                "the server of '{name}' is busy: it did not take this connection in time (its queue of \
                 {LISTEN_BACKLOG} waiting connections stayed full)"
            ),
        ),
        _ => connect_error(name, &paths, e),
    })
}

/// As [`connect`], never waiting: WouldBlock when the server's backlog is
/// full (the socket cannot wait for room without blocking its caller).
pub fn connect_now(name: &str) -> Result<UnixStream> {
    let paths = EndpointPaths::of(name)?;
    platform::connect_unix_now(&paths.socket).map_err(|e| match e.raw_os_error() {
        Some(libc::EAGAIN) => Error::new(
            ErrorKind::WouldBlock,
            format!(
                "the server of '{name}' is busy: its queue of {LISTEN_BACKLOG} waiting connections is full; \
                 try again (a blocking connect waits for room)"
            ),
        ),
        _ => connect_error(name, &paths, e),
    })
}

fn connect_error(name: &str, paths: &EndpointPaths, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => Error::new(
            ErrorKind::NotFound,
            format!("no server is listening on endpoint '{name}' (socket {})", paths.socket.display()),
        ),
        _ => Error::io(&format!("connecting to endpoint '{name}'"), e),
    }
}

/// An endpoint found in the runtime directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint name.
    pub name: String,
    /// The pid written by the server that bound it, if readable.
    pub pid: Option<u32>,
    /// True when a live process holds the endpoint's lock.
    pub alive: bool,
}

/// The endpoints of this user: every lock or socket file in the runtime directory.
pub fn list() -> Result<Vec<EndpointInfo>> {
    let dir = platform::runtime_dir()?;
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&format!("reading {}", dir.display()), e))? {
        let Ok(entry) = entry else { continue };
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".sock").or_else(|| file.strip_suffix(".lock")) {
            if validate_endpoint_name(name).is_ok() {
                names.insert(name.to_string());
            }
        }
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let lock_path = dir.join(format!("{name}.lock"));
            let (pid, alive) = match File::open(&lock_path) {
                Ok(f) => {
                    let pid = std::fs::read_to_string(&lock_path).ok().and_then(|s| s.trim().parse().ok());
                    let free = rustix::fs::flock(f.as_fd(), FlockOperation::NonBlockingLockShared).is_ok();
                    (pid, !free)
                }
                Err(_) => (None, false),
            };
            EndpointInfo { name, pid, alive }
        })
        .collect())
}
