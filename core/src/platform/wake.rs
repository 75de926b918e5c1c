//! The wake-up descriptors of a connection: this side's ([`OwnWake`]), and the
//! checks and writes for the peer's.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::process::os_error;
use crate::error::{Error, ErrorKind, Result};

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
    /// watch; see [`Sleeper`](super::Sleeper)).
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
    // The peer creates it non-blocking (PROTOCOL.md section 9): one system call
    // less per connect then.
    if flags.contains(rustix::fs::OFlags::NONBLOCK) {
        return Ok(());
    }
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
