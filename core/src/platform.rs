//! Everything that talks to the operating system: the per-user runtime directory,
//! memfd segments and their seals, memory mappings, fd passing, peer credentials,
//! the wake-up descriptors of a connection (an eventfd per side, see
//! [`OwnWake`] and [`Sleeper`]), and waiting on file descriptors.
//!
//! Only Linux is implemented and tested. A port to macOS or Windows replaces this
//! module (and the memfd backend) and nothing else; the wake-up descriptor is
//! already written so that a pipe can stand in for the eventfd there.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, ErrorKind, Result};

/// Converts a rustix error into ours, saying what we were doing (and, at the
/// open-file limit, what to do about it).
pub(crate) fn os_error(context: &str, errno: rustix::io::Errno) -> Error {
    let err = Error::io(context, std::io::Error::from_raw_os_error(errno.raw_os_error()));
    if errno == rustix::io::Errno::MFILE || errno == rustix::io::Errno::NFILE {
        return Error::new(ErrorKind::ResourceExhausted, format!("{}; {}", err.message(), descriptor_limit_hint()));
    }
    err
}

/// What to say when this process has no descriptor left to open.
fn descriptor_limit_hint() -> String {
    use rustix::process::{getrlimit, Resource};
    let limit = getrlimit(Resource::Nofile).current.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    format!(
        "this process is at its open-file limit (RLIMIT_NOFILE, now {limit}): raise it (`ulimit -n`, \
         LimitNOFILE= in systemd) or close descriptors"
    )
}

/// Checks that this process can open `count` more descriptors now (by opening
/// /dev/null that many times, then closing them). A server calls it before sending
/// a REPLY, whose READY brings the client's wake-up descriptor: at the limit it
/// refuses the client with a clear error instead of handing it a connection it
/// cannot finish. (Another thread may still take the room in between; the
/// receive then fails with the same error.)
pub fn ensure_descriptor_room(count: usize) -> Result<()> {
    use rustix::fs::{open, Mode, OFlags};
    let mut spare = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| os_error("checking for room for the peer's descriptors", e))?;
        spare.push(fd);
    }
    Ok(())
}

/// The credentials of the process at the other end of a Unix socket, from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Process id (in our pid namespace; 0 if the peer is outside it).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The kernel's record of who is at the other end of `socket`.
///
/// Read with `getsockopt(SO_PEERCRED)` directly: the peer's pid is 0 when it
/// lives in a pid namespace that ours cannot see (a server in the parent
/// namespace of a container's client), which rustix's non-zero `Pid` cannot
/// hold, and such a peer is as valid as any other.
pub fn peer_credentials(socket: BorrowedFd<'_>) -> Result<Credentials> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` holds its size, as
    // SO_PEERCRED requires; `socket` is open for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::io("reading peer credentials", std::io::Error::last_os_error()));
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(Error::new(ErrorKind::Io, "reading peer credentials: the kernel returned a short record"));
    }
    Ok(Credentials { pid: cred.pid, uid: cred.uid, gid: cred.gid })
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The per-user runtime directory holding endpoint sockets, created 0700.
///
/// `$SHMSOCK_RUNTIME_DIR` if set, else `$XDG_RUNTIME_DIR/shmsock`, else
/// `$TMPDIR/shmsock-<uid>`, else `/tmp/shmsock-<uid>`, where a variable set to
/// the empty string counts as unset (PROTOCOL.md section 9). The directory must
/// belong to us and be private.
pub fn runtime_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|d| !d.is_empty()).map(PathBuf::from);
    let dir = if let Some(dir) = var("SHMSOCK_RUNTIME_DIR") {
        dir
    } else if let Some(xdg) = var("XDG_RUNTIME_DIR") {
        xdg.join("shmsock")
    } else {
        // Not std::env::temp_dir(): it takes an empty TMPDIR as the current directory.
        var("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp")).join(format!("shmsock-{}", current_uid()))
    };
    // Connecting asks for the directory every time: after one full check, a
    // single lstat proves it is still the same private directory of ours.
    static CHECKED: std::sync::Mutex<Option<(PathBuf, u64, u64)>> = std::sync::Mutex::new(None);
    let checked = CHECKED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    if let Some((path, dev, ino)) = checked {
        if path == dir {
            if let Ok(meta) = std::fs::symlink_metadata(&dir) {
                if meta.dev() == dev && meta.ino() == ino && is_private_dir(&meta) {
                    return Ok(dir);
                }
            }
        }
    }
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) => return Err(Error::io(&format!("creating runtime directory {}", dir.display()), e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| Error::io(&format!("checking {}", dir.display()), e))?;
    if !is_private_dir(&meta) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "runtime directory {} is not a private directory of this user (mode {:04o}, owner {}); \
                 remove it or set SHMSOCK_RUNTIME_DIR to a directory with mode 0700",
                dir.display(),
                meta.permissions().mode() & 0o7777,
                meta.uid()
            ),
        ));
    }
    *CHECKED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((dir.clone(), meta.dev(), meta.ino()));
    Ok(dir)
}

/// A directory (not a link to one) of this user that nobody else may use.
fn is_private_dir(meta: &std::fs::Metadata) -> bool {
    meta.is_dir() && meta.uid() == current_uid() && meta.permissions().mode() & 0o077 == 0
}

/// The seals every memfd segment carries.
fn required_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// Creates an anonymous memfd of `size` bytes with all of it reserved now (so a
/// short memory limit is an error here, never a SIGBUS later), sealed against
/// shrinking, growing and further sealing.
pub fn create_memfd(size: u64) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("shmsock", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| os_error("creating the shared-memory segment (memfd_create)", e))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| os_error("sizing the shared-memory segment", e))?;
    rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size).map_err(|e| {
        let err = os_error(&format!("reserving {size} bytes of shared memory"), e);
        Error::new(
            ErrorKind::ResourceExhausted,
            format!("{}; lower the ring size or raise the memory limit", err.message()),
        )
    })?;
    rustix::fs::fcntl_add_seals(&fd, required_seals()).map_err(|e| os_error("sealing the shared-memory segment", e))?;
    Ok(fd)
}

/// Checks a received memfd: it must carry the seals and have exactly `size` bytes.
pub fn check_memfd(fd: BorrowedFd<'_>, size: u64) -> Result<()> {
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|_| {
        Error::new(ErrorKind::ProtocolViolation, "the peer passed a segment that is not a sealable memfd; refusing it")
    })?;
    if !seals.contains(required_seals()) {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!("the peer passed a segment without the required seals (has {seals:?}); refusing it"),
        ));
    }
    if seals.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
        return Err(Error::new(ErrorKind::ProtocolViolation, "the peer passed a write-sealed segment; refusing it"));
    }
    let st = rustix::fs::fstat(fd).map_err(|e| os_error("checking the segment", e))?;
    if st.st_size as u64 != size {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!("the peer passed a segment of {} bytes; the handshake agreed on {size}", st.st_size),
        ));
    }
    Ok(())
}

/// The mode of a named segment: owner read and write only.
const NAMED_MODE: u32 = 0o600;

/// Creates the named shared-memory object `name` (which must not exist), mode
/// 0600, `size` bytes all reserved now (a full /dev/shm is an error here, never
/// a SIGBUS later). On failure nothing is left behind.
pub fn create_named(name: &str, size: u64) -> Result<OwnedFd> {
    use rustix::shm;
    let fd = shm::open(
        name,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        shm::Mode::from_raw_mode(NAMED_MODE),
    )
    .map_err(|e| os_error(&format!("creating shared memory {name}"), e))?;
    // The umask may have taken bits away: make the mode exactly what the
    // client checks.
    let sized = rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(NAMED_MODE))
        .map_err(|e| os_error(&format!("setting mode 0600 on shared memory {name}"), e))
        .and_then(|()| {
            rustix::fs::ftruncate(&fd, size).map_err(|e| os_error(&format!("sizing shared memory {name}"), e))
        })
        .and_then(|()| {
            rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size).map_err(|e| {
                let err = os_error(&format!("reserving {size} bytes of shared memory"), e);
                Error::new(
                    ErrorKind::ResourceExhausted,
                    format!("{}; /dev/shm may be too small: lower the ring size or enlarge /dev/shm", err.message()),
                )
            })
        });
    if let Err(e) = sized {
        unlink_named(name);
        return Err(e);
    }
    Ok(fd)
}

/// Opens the server's named object `name` and checks, before anything is done
/// to it, that it is a regular file owned by `owner` (the server's uid), of
/// mode 0600 and exactly `size` bytes. Any failure is a ProtocolViolation: the
/// server named something it did not create for us.
pub fn open_named(name: &str, size: u64, owner: u32) -> Result<OwnedFd> {
    use rustix::shm;
    let refuse = |why: String| {
        Error::new(ErrorKind::ProtocolViolation, format!("the server's shared memory {name} {why}; refusing it"))
    };
    let fd = shm::open(name, shm::OFlags::RDWR, shm::Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::MFILE | rustix::io::Errno::NFILE => os_error(&format!("opening shared memory {name}"), e),
        _ => refuse(format!("cannot be opened ({})", std::io::Error::from_raw_os_error(e.raw_os_error()))),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error(&format!("checking shared memory {name}"), e))?;
    let mode = st.st_mode & 0o7777;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(refuse("is not a shared-memory object".into()));
    }
    if st.st_uid != owner {
        return Err(refuse(format!("belongs to uid {}, not to the server's uid {owner}", st.st_uid)));
    }
    if mode != NAMED_MODE {
        return Err(refuse(format!("has mode {mode:04o}, not 0600")));
    }
    if st.st_size as u64 != size {
        return Err(refuse(format!("has {} bytes; the handshake agreed on {size}", st.st_size)));
    }
    Ok(fd)
}

/// Removes a named shared-memory object. Missing objects are fine.
pub fn unlink_named(name: &str) {
    let _ = rustix::shm::unlink(name);
}

/// The most descriptors one control record carries (REPLY: the memfd and the
/// server's wake-up eventfd).
pub const MAX_RECORD_FDS: usize = 2;

/// Sends `bytes` on a stream socket, with `fds` (at most [`MAX_RECORD_FDS`], in
/// this order) attached to the first byte.
pub fn send_with_fds(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    if fds.len() > MAX_RECORD_FDS {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("a control record carries at most {MAX_RECORD_FDS} descriptors"),
        ));
    }
    let mut sent = 0;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_RECORD_FDS))];
    while sent < bytes.len() {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if sent == 0 && !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        match rustix::net::sendmsg(socket, &[IoSlice::new(&bytes[sent..])], &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => {
                wait_fd(socket, PollFlags::OUT, None)?;
            }
            Err(e) if is_disconnect(e) => {
                return Err(Error::new(ErrorKind::PeerGone, "the peer closed the control socket"));
            }
            Err(e) => return Err(os_error("writing to the control socket", e)),
        }
    }
    Ok(())
}

fn is_disconnect(e: rustix::io::Errno) -> bool {
    matches!(e, rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET | rustix::io::Errno::NOTCONN)
}

/// Receives up to `buf.len()` bytes, and any fds that came with them. Returns 0
/// bytes at end of stream. Waits until `deadline`. Room is left for one
/// descriptor more than a record may carry, so that a peer passing too many is
/// noticed (the kernel closes any beyond that room).
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
) -> Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_RECORD_FDS + 1))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let result = rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        );
        let mut received = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(arrived) = msg {
                received.extend(arrived);
            }
        }
        match result {
            Ok(msg) if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) => {
                // Descriptors were lost: the room for one more than a record
                // may carry is full (the peer passed too many), or the kernel
                // could not install them (this process is at its fd limit).
                // Close those that did arrive; the record cannot be used.
                let too_many = received.len() > MAX_RECORD_FDS;
                drop(received);
                fds.clear();
                return Err(if too_many {
                    Error::new(
                        ErrorKind::ProtocolViolation,
                        format!("the peer passed more than {MAX_RECORD_FDS} file descriptors"),
                    )
                } else {
                    Error::new(
                        ErrorKind::ResourceExhausted,
                        format!("the descriptors the peer passed could not be received: {}", descriptor_limit_hint()),
                    )
                });
            }
            Ok(msg) => {
                fds.extend(received);
                return Ok(msg.bytes);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => {
                if !wait_fd(socket, PollFlags::IN, deadline)? {
                    return Err(Error::new(ErrorKind::Timeout, "the peer did not answer in time"));
                }
            }
            Err(e) if is_disconnect(e) => return Ok(0),
            Err(e) => return Err(os_error("reading the control socket", e)),
        }
    }
}

/// Waits until `fd` is ready for `flags` (or hung up), or until `deadline`.
/// Returns false on timeout.
pub fn wait_fd(fd: BorrowedFd<'_>, flags: PollFlags, deadline: Option<Instant>) -> Result<bool> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                Some(rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as _ })
            }
        };
        let mut fds = [PollFd::new(&fd, flags)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {
                // A signal: let the caller's loop re-check (Python checks for
                // KeyboardInterrupt between waits).
                return Ok(true);
            }
            Err(e) => return Err(os_error("waiting on a socket", e)),
        }
    }
}

/// Reads at most this many times per [`drain_control`] call (of
/// `CONTROL_DRAIN_CHUNK` bytes each): a peer writing its control socket without
/// pause must not keep the caller (an event loop serving others) reading.
const CONTROL_DRAIN_READS: usize = 16;
const CONTROL_DRAIN_CHUNK: usize = 4096;

/// Reads and discards what is on the control socket without blocking (after
/// set-up a conforming peer writes nothing there), at most 64 KiB per call:
/// what remains keeps the socket readable, so the caller's loop comes back to
/// it after serving the others. Returns true when the peer's end is closed
/// (end of stream or reset).
pub fn drain_control(socket: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; CONTROL_DRAIN_CHUNK];
    let mut reads = 0;
    while reads < CONTROL_DRAIN_READS {
        match rustix::net::recv(socket, &mut buf, RecvFlags::DONTWAIT) {
            Ok((0, _)) => return true,
            Ok((n, _)) if n < buf.len() => return false,
            Ok(_) => reads += 1,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(_) => return true,
        }
    }
    false
}

// ------------------------------------------------------------------ waking

/// This side's wake-up descriptor: the peer writes to it to wake us, and we
/// sleep until it is readable. On Linux one eventfd (close-on-exec,
/// non-blocking) is both ends; a port without eventfds would use a pipe, keeping
/// the read end and handing the write end to the peer.
pub struct OwnWake {
    /// The end this side waits on and drains.
    read: OwnedFd,
    /// The end handed to the peer (the eventfd itself on Linux).
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

impl OwnWake {
    /// A fresh wake-up descriptor, not signalled.
    #[cfg(target_os = "linux")]
    pub fn new() -> Result<OwnWake> {
        use rustix::event::{eventfd, EventfdFlags};
        let read = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| os_error("creating the wake-up eventfd", e))?;
        Ok(OwnWake { read })
    }

    /// A fresh wake-up descriptor, not signalled.
    #[cfg(not(target_os = "linux"))]
    pub fn new() -> Result<OwnWake> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(|e| os_error("creating the wake-up pipe", e))?;
        Ok(OwnWake { read, write })
    }

    /// The descriptor to pass to the peer, which writes to it to wake us.
    pub fn for_peer(&self) -> BorrowedFd<'_> {
        #[cfg(target_os = "linux")]
        return self.read.as_fd();
        #[cfg(not(target_os = "linux"))]
        return self.write.as_fd();
    }

    /// Consumes pending wake-ups without blocking, so the descriptor is no
    /// longer readable for a wake-up already acted on (for a level-triggered
    /// watch; see [`Sleeper`]).
    pub fn drain(&self) {
        // An eventfd is reset by one read of 8 bytes; a pipe may need several.
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Err(rustix::io::Errno::INTR) => continue,
                Ok(8) if cfg!(not(target_os = "linux")) => continue,
                _ => return,
            }
        }
    }
}

impl AsFd for OwnWake {
    /// The end this side waits on.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// What a peer's wake-up descriptor must be: on Linux an eventfd. Two cheap
/// checks instead of reading the kernel's name for the file in /proc: the file
/// must live on the anonymous-inode filesystem (the device of an eventfd of our
/// own, found once per process), which refuses pipes, sockets, memfds and
/// regular files; and an 8-byte write of 0 must succeed, which the other
/// anonymous-inode files (epoll, timerfd, signalfd, inotify...) refuse and which
/// adds nothing to an eventfd's counter and cannot block (the counter never
/// exceeds 2^64 - 2), so the peer sees no wake-up.
#[cfg(target_os = "linux")]
fn check_wake_kind(fd: BorrowedFd<'_>) -> Result<()> {
    static ANON_INODE_DEVICE: std::sync::OnceLock<std::result::Result<u64, rustix::io::Errno>> =
        std::sync::OnceLock::new();
    let anon_inode_device = ANON_INODE_DEVICE.get_or_init(|| {
        use rustix::event::{eventfd, EventfdFlags};
        let probe = eventfd(0, EventfdFlags::CLOEXEC)?;
        Ok(rustix::fs::fstat(&probe)?.st_dev as u64)
    });
    let anon_inode_device = anon_inode_device.map_err(|e| os_error("finding the eventfd filesystem", e))?;
    let refuse = |what: &str| {
        Error::new(
            ErrorKind::ProtocolViolation,
            format!("the peer passed a wake-up descriptor that is not an eventfd ({what}); refusing it"),
        )
    };
    let st = rustix::fs::fstat(fd).map_err(|e| os_error("checking the peer's wake-up descriptor", e))?;
    if st.st_dev as u64 != anon_inode_device {
        return Err(refuse(&format!("{:?}", rustix::fs::FileType::from_raw_mode(st.st_mode))));
    }
    match rustix::io::write(fd, &0u64.to_ne_bytes()) {
        Ok(8) => Ok(()),
        _ => Err(refuse("an anonymous-inode file of another kind")),
    }
}

/// What a peer's wake-up descriptor must be: without eventfds, a pipe.
#[cfg(not(target_os = "linux"))]
fn check_wake_kind(fd: BorrowedFd<'_>) -> Result<()> {
    let st = rustix::fs::fstat(fd).map_err(|e| os_error("checking the peer's wake-up descriptor", e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Fifo {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            "the peer passed a wake-up descriptor that is not a pipe; refusing it",
        ));
    }
    Ok(())
}

/// Checks a received wake-up descriptor, which is untrusted: it must be an
/// eventfd (a pipe where eventfds do not exist), and is made non-blocking, so
/// that waking the peer never blocks this side, whatever the peer did to it.
pub fn check_peer_wake(fd: BorrowedFd<'_>) -> Result<()> {
    check_wake_kind(fd)?;
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| os_error("checking the peer's wake-up descriptor", e))?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| os_error("making the peer's wake-up descriptor non-blocking", e))
}

/// Wakes the peer: writes the 8-byte value 1 to its wake-up descriptor, never
/// blocking. EAGAIN (the counter is near its limit, or the pipe is full) means
/// wake-ups are already pending, so it and every other failure are ignored: a
/// dead peer is noticed through the control socket, not here.
pub fn wake_peer(peer: BorrowedFd<'_>) {
    let _ = rustix::io::write(peer, &1u64.to_ne_bytes());
}

/// Waits on an epoll set for up to `timeout` (None: no limit; rounded up to
/// whole milliseconds, so a short wait does not become a spin) and returns the
/// tokens of the ready entries, in `events`. A signal is an empty result.
///
/// libc's epoll_wait rather than rustix's: rustix issues epoll_pwait without its
/// sigsetsize argument (unused with no mask), which valgrind reports as an
/// uninitialised system call parameter.
fn epoll_wait<'a>(
    epoll: BorrowedFd<'_>,
    events: &'a mut [libc::epoll_event],
    timeout: Option<std::time::Duration>,
) -> Result<impl Iterator<Item = u64> + 'a> {
    use std::os::fd::AsRawFd;
    let timeout_ms = match timeout {
        None => -1,
        Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    };
    let capacity = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: `events` is a writable array of at least `capacity` entries, the
    // count passed, and `epoll` is an open fd borrowed for the whole call.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), capacity, timeout_ms) };
    let ready = match usize::try_from(n) {
        Ok(n) => n,
        Err(_) => {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("waiting on an epoll set", err));
            }
            0
        }
    };
    // Read by value: the struct is packed on x86-64, so no reference to a field.
    Ok(events.iter().take(ready).map(|event| event.u64))
}

/// What a [`Sleeper`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Woken {
    /// The control socket is readable or hung up: call [`drain_control`].
    pub control: bool,
}

/// Whether the own wake-up descriptor is watched edge-triggered: on Linux every
/// write to an eventfd signals its waiters, so each wake-up of the peer is one
/// event, reported once, and nothing needs to read the eventfd to reset it
/// (on one core that read cost about 0.6 µs of an 8.5 µs round trip). Its
/// counter then only grows, by 1 per wake-up: 2^64 is never reached by an
/// honest peer, and a peer that fills it only loses its own wake-ups. A pipe
/// (elsewhere) is watched level-triggered and drained.
const WAKE_EDGE: bool = cfg!(target_os = "linux");
const WAKE_TRIGGER: rustix::event::epoll::EventFlags =
    if WAKE_EDGE { rustix::event::epoll::EventFlags::ET } else { rustix::event::epoll::EventFlags::empty() };

/// Token of the own wake-up descriptor in a [`Sleeper`].
const SLEEP_WAKE: u64 = 0;
/// Token of the control socket in a [`Sleeper`].
const SLEEP_CONTROL: u64 = 1;

/// The connection's sleeping place: an epoll set holding this side's wake-up
/// descriptor and the control socket, so one wait ends on a wake-up from the
/// peer, a control record or the peer's death. Its fd is the connection's
/// pollable fd.
pub struct Sleeper {
    epoll: OwnedFd,
    own: OwnWake,
}

impl Sleeper {
    /// A sleeper on `own` and `control` (which must outlive it in the epoll set;
    /// the stream owns both).
    pub fn new(own: OwnWake, control: BorrowedFd<'_>) -> Result<Sleeper> {
        use rustix::event::epoll;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os_error("creating an epoll set", e))?;
        epoll::add(&epoll, own.as_fd(), epoll::EventData::new_u64(SLEEP_WAKE), epoll::EventFlags::IN | WAKE_TRIGGER)
            .map_err(|e| os_error("adding the wake-up descriptor to an epoll set", e))?;
        epoll::add(&epoll, control, epoll::EventData::new_u64(SLEEP_CONTROL), epoll::EventFlags::IN)
            .map_err(|e| os_error("adding the control socket to an epoll set", e))?;
        Ok(Sleeper { epoll, own })
    }

    /// Waits until the peer wakes us, the control socket is readable or hung
    /// up, a signal arrives, or `timeout` passes (`Some(ZERO)`: just look), and
    /// consumes the wake-up (reporting the edge is enough on Linux; a pipe is
    /// drained), so the epoll fd is not readable for it any more. The caller
    /// re-checks what it waits for and its deadline, so a signal or timeout is
    /// just an empty [`Woken`].
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> Result<Woken> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        let mut woken = Woken::default();
        for token in epoll_wait(self.epoll.as_fd(), &mut events, timeout)? {
            match token {
                SLEEP_WAKE if !WAKE_EDGE => self.own.drain(),
                SLEEP_WAKE => {}
                _ => woken.control = true,
            }
        }
        Ok(woken)
    }

    /// The epoll fd: readable when a wait would end at once.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Signals the own wake-up descriptor, as the peer does: the epoll fd
    /// becomes readable again (for a wake-up a drain consumed on behalf of
    /// another direction).
    pub fn wake_self(&self) {
        wake_peer(self.own.for_peer());
    }
}

/// Shuts a socket down both ways so the peer sees end of stream at once, even if
/// another thread or process still holds the fd.
pub fn shutdown(socket: BorrowedFd<'_>) {
    let _ = rustix::net::shutdown(socket, rustix::net::Shutdown::Both);
}

/// An epoll set of file descriptors, each with a token, plus a wake-up of its own
/// (an eventfd) so another thread can interrupt a wait.
pub struct Poller {
    epoll: OwnedFd,
    wake: OwnedFd,
}

/// The token a [`Poller`] reports for its own wake-up.
pub const WAKE_TOKEN: u64 = u64::MAX;

impl Poller {
    /// A new, empty poller.
    pub fn new() -> Result<Poller> {
        use rustix::event::{epoll, eventfd, EventfdFlags};
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os_error("creating an epoll set", e))?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| os_error("creating an eventfd", e))?;
        let poller = Poller { epoll, wake };
        poller.add(poller.wake.as_fd(), WAKE_TOKEN)?;
        Ok(poller)
    }

    /// Watches `fd` for readability, reporting `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        use rustix::event::epoll;
        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)
            .map_err(|e| os_error("adding to an epoll set", e))
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = rustix::event::epoll::delete(&self.epoll, fd);
    }

    /// Waits until a watched fd is readable or `notify` was called, up to
    /// `timeout` (None: no limit), and puts the ready tokens in `tokens`. The
    /// wake-up is reported as [`WAKE_TOKEN`] and reset.
    pub fn wait(&self, tokens: &mut Vec<u64>, timeout: Option<std::time::Duration>) -> Result<()> {
        tokens.clear();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        for token in epoll_wait(self.epoll.as_fd(), &mut events, timeout)? {
            if token == WAKE_TOKEN {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.wake, &mut buf);
            }
            tokens.push(token);
        }
        Ok(())
    }

    /// The epoll fd itself: readable when `wait` would report something, so an
    /// outer event loop (libuv, asyncio) can watch a whole set at once.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Wakes a thread blocked in `wait`.
    pub fn notify(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }
}

// ------------------------------------------------ publish/subscribe segments
//
// The broadcast segment of a topic is written by the publisher alone: it maps
// the memfd writable, then adds F_SEAL_FUTURE_WRITE, after which its own
// mapping still writes while every new writable mapping, write(2) and a
// read-write reopen through /proc fail with EPERM. A subscriber's cursor
// segment is the same in the other direction. See `crate::pubsub`.

/// The seals of a segment only its creator writes.
fn read_only_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL | SealFlags::FUTURE_WRITE
}

/// Creates a memfd of `size` bytes, all reserved now, sealed against shrinking
/// and growing but not yet against writing: the creator maps it writable, then
/// calls [`seal_future_write`].
pub fn create_writer_memfd(size: u64) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("shmsock-pubsub", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| os_error("creating a shared-memory segment (memfd_create)", e))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| os_error("sizing a shared-memory segment", e))?;
    rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size).map_err(|e| {
        let err = os_error(&format!("reserving {size} bytes of shared memory"), e);
        Error::new(ErrorKind::ResourceExhausted, format!("{}; use fewer or smaller slots", err.message()))
    })?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)
        .map_err(|e| os_error("sealing a shared-memory segment", e))?;
    Ok(fd)
}

/// Seals a memfd its creator has mapped writable: from now on only that
/// mapping writes it (SHRINK | GROW | SEAL | FUTURE_WRITE).
pub fn seal_future_write(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::fs::fcntl_add_seals(fd, read_only_seals())
        .map_err(|e| os_error("sealing a shared-memory segment against writing", e))
}

/// Checks a received read-only segment: a memfd with every seal of
/// [`seal_future_write`]. Returns its size in bytes.
pub fn check_read_only_memfd(fd: BorrowedFd<'_>, what: &str) -> Result<u64> {
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|_| {
        Error::new(ErrorKind::ProtocolViolation, format!("the peer passed a {what} that is not a sealable memfd"))
    })?;
    if !seals.contains(read_only_seals()) {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!(
                "the peer passed a {what} without the seals SHRINK|GROW|SEAL|FUTURE_WRITE (has {seals:?}); refusing it"
            ),
        ));
    }
    let st = rustix::fs::fstat(fd).map_err(|e| os_error("checking a shared-memory segment", e))?;
    u64::try_from(st.st_size).map_err(|_| Error::new(ErrorKind::ProtocolViolation, format!("the {what} has no size")))
}

/// A read-only descriptor of the same memfd (through `/proc/self/fd`), to hand
/// to a peer that must only read it.
pub fn reopen_read_only(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(path.as_str(), rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|e| os_error("reopening a segment read-only (is /proc mounted?)", e))
}

/// Sends one whole record on a non-blocking socket without ever waiting: a
/// peer whose socket buffer is full gets an error (WouldBlock), not our time.
pub fn send_now(socket: BorrowedFd<'_>, bytes: &[u8]) -> Result<()> {
    loop {
        match rustix::net::send(socket, bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) | Err(rustix::io::Errno::AGAIN) => {
                return Err(Error::new(ErrorKind::WouldBlock, "the peer's control socket is full"))
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) if is_disconnect(e) => {
                return Err(Error::new(ErrorKind::PeerGone, "the peer closed the control socket"))
            }
            Err(e) => return Err(os_error("writing to the control socket", e)),
        }
    }
}

/// Reads what is available on a non-blocking socket into `out`, up to `limit`
/// bytes in all. Returns false once the peer's end is closed.
pub fn recv_available(socket: BorrowedFd<'_>, out: &mut Vec<u8>, limit: usize) -> Result<bool> {
    let mut buf = [0u8; 512];
    while out.len() < limit {
        let room = (limit - out.len()).min(buf.len());
        match rustix::net::recv(socket, &mut buf[..room], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Ok(false),
            Ok((n, _)) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(true),
            Err(e) if is_disconnect(e) => return Ok(false),
            Err(e) => return Err(os_error("reading the control socket", e)),
        }
    }
    Ok(true)
}

// ------------------------------------------------------ reactor and accept
// (added for the reactor and the non-blocking accept driver)

/// Waits until one of `fds` is ready or `until` passes (None: no limit). A
/// signal ends the wait early; callers re-check their state either way.
pub fn poll_until(fds: &mut [PollFd<'_>], until: Option<Instant>) -> Result<()> {
    let timeout = until.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as _ }
    });
    match poll(fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(os_error("waiting for clients", e)),
    }
}

/// Raises this process's soft limit on open files to its hard limit (servers
/// with many connections, and tests that open a thousand sockets). Returns the
/// new soft limit.
pub fn raise_open_files_limit() -> Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).map_err(|e| os_error("raising the open files limit", e))?;
    }
    Ok(limit.current.unwrap_or(u64::MAX))
}

/// Waits on an epoll set (see `epoll_wait` above) and returns the tokens of the
/// ready entries.
pub fn epoll_wait_tokens<'a>(
    epoll: BorrowedFd<'_>,
    events: &'a mut [libc::epoll_event],
    timeout: Option<std::time::Duration>,
) -> Result<impl Iterator<Item = u64> + 'a> {
    epoll_wait(epoll, events, timeout)
}

// ------------------------------------------------------------------ placement

/// The CPU this thread runs on now, if the platform says.
///
/// libc's call rather than rustix's: rustix parses the vDSO itself, and under
/// valgrind (which maps no vDSO where the auxiliary vector says) that read
/// faults; glibc's call is what valgrind expects.
#[cfg(target_os = "linux")]
pub fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only returns a number.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// The CPU this thread runs on now: not known on this platform.
#[cfg(not(target_os = "linux"))]
pub fn current_cpu() -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// A peer that keeps writing its control socket: one drain reads a bounded
    /// amount and returns, leaving the rest (the socket stays readable), and a
    /// later drain sees the hang-up once the peer is gone and all is read.
    #[test]
    fn drain_control_is_bounded_per_call() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let chunk = [0x55u8; 4096];
        let mut written = 0;
        while written < 4 * CONTROL_DRAIN_READS * CONTROL_DRAIN_CHUNK {
            match theirs.write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        assert!(written > CONTROL_DRAIN_READS * CONTROL_DRAIN_CHUNK, "the socket buffer took only {written} bytes");
        assert!(!drain_control(ours.as_fd()));
        let mut probe = [0u8; 1];
        let left = rustix::net::recv(ours.as_fd(), &mut probe, RecvFlags::DONTWAIT | RecvFlags::PEEK).unwrap().0;
        assert_eq!(left, 1, "one drain read everything: it is not bounded");
        drop(theirs);
        let mut calls = 0;
        while !drain_control(ours.as_fd()) {
            calls += 1;
            assert!(calls < 1000, "the hang-up was never seen");
        }
    }
}
