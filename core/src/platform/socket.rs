//! Unix sockets: connecting with a deadline, peer credentials, records with
//! descriptors attached, waiting for one socket, draining and shutting down a
//! control socket.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use super::process::{descriptor_limit_hint, os_error};
use crate::error::{Error, ErrorKind, Result};

/// Connects a Unix stream socket to `path`. When the listener's backlog is
/// full (its server accepts slower than clients arrive), the kernel makes
/// connect wait for room: at most until `deadline` (then EAGAIN), or for
/// ever without one. SO_SNDTIMEO is what bounds that wait; it is cleared once
/// connected.
pub fn connect_unix(path: &Path, deadline: Option<Instant>) -> std::io::Result<UnixStream> {
    use rustix::net::sockopt::{set_socket_timeout, Timeout};
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let socket = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    if let Some(deadline) = deadline {
        // A zero timeout would mean "no limit": keep at least 1 ms.
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        set_socket_timeout(&socket, Timeout::Send, Some(left))?;
    }
    let address = SocketAddrUnix::new(path)?;
    loop {
        match rustix::net::connect(&socket, &address) {
            Ok(()) => break,
            // Interrupted while waiting for room: not connected yet, try again.
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if deadline.is_some() {
        set_socket_timeout(&socket, Timeout::Send, None)?;
    }
    Ok(UnixStream::from(socket))
}

/// Connects a non-blocking Unix stream socket to `path`, never waiting: a
/// full backlog is EAGAIN at once (a Unix socket has no connect in progress).
pub fn connect_unix_now(path: &Path) -> std::io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let socket = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
    let address = SocketAddrUnix::new(path)?;
    loop {
        match rustix::net::connect(&socket, &address) {
            Ok(()) => return Ok(UnixStream::from(socket)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets how many connections the kernel queues for `listener` before accept.
pub fn set_listen_backlog(listener: BorrowedFd<'_>, backlog: i32) -> Result<()> {
    // listen() again on a listening socket only changes its backlog.
    rustix::net::listen(listener, backlog).map_err(|e| os_error("setting the listen backlog", e))
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
                // A deadline already past (a caller that only takes what is
                // there) needs no poll to say so: one system call less.
                let passed = deadline.is_some_and(|d| Instant::now() >= d);
                if passed || !wait_fd(socket, PollFlags::IN, deadline)? {
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

/// What a control socket held after set-up, when it was seen readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlAfterSetUp {
    /// Nothing (a spurious readiness).
    Quiet,
    /// The peer's end is closed (end of stream or reset).
    Closed,
    /// The peer wrote bytes, which a conforming peer never does after READY.
    Written,
}

/// Looks at a control socket after set-up without blocking (see
/// [`ControlAfterSetUp`]). Reads at most a few bytes: a peer that writes there
/// is ended by the caller, not drained, so flooding costs it its connection
/// rather than costing the caller's loop a read per wake-up.
pub fn check_control(socket: BorrowedFd<'_>) -> ControlAfterSetUp {
    let mut buf = [0u8; 16];
    loop {
        return match rustix::net::recv(socket, &mut buf, RecvFlags::DONTWAIT) {
            Ok((0, _)) => ControlAfterSetUp::Closed,
            Ok(_) => ControlAfterSetUp::Written,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => ControlAfterSetUp::Quiet,
            Err(_) => ControlAfterSetUp::Closed,
        };
    }
}

/// Shuts a socket down both ways so the peer sees end of stream at once, even if
/// another thread or process still holds the fd.
pub fn shutdown(socket: BorrowedFd<'_>) {
    let _ = rustix::net::shutdown(socket, rustix::net::Shutdown::Both);
}

/// True when bytes the peer sent wait unread in `socket` (looked at, not
/// taken; an end of stream or an error is no bytes).
pub fn has_unread_bytes(socket: BorrowedFd<'_>) -> bool {
    let mut probe = [0u8; 1];
    matches!(rustix::net::recv(socket, &mut probe, RecvFlags::DONTWAIT | RecvFlags::PEEK), Ok((1, _)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    /// Nothing, bytes, then end of stream: each is told apart, and the bytes
    /// are not drained (a flooder is ended, not read).
    #[test]
    fn check_control_tells_quiet_written_and_closed_apart() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        assert_eq!(check_control(ours.as_fd()), ControlAfterSetUp::Quiet);
        theirs.write_all(&[0x55u8; 4096]).unwrap();
        assert_eq!(check_control(ours.as_fd()), ControlAfterSetUp::Written);
        let mut probe = [0u8; 1];
        let left = rustix::net::recv(ours.as_fd(), &mut probe, RecvFlags::DONTWAIT | RecvFlags::PEEK).unwrap().0;
        assert_eq!(left, 1, "the bytes were drained");
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        assert_eq!(check_control(ours.as_fd()), ControlAfterSetUp::Closed);
    }

    #[test]
    fn unread_bytes_are_seen_and_left_in_place() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        assert!(!has_unread_bytes(ours.as_fd()));
        theirs.write_all(b"SUBSCRIBE").unwrap();
        assert!(has_unread_bytes(ours.as_fd()));
        let mut all = Vec::new();
        assert!(recv_available(ours.as_fd(), &mut all, 64).unwrap());
        assert_eq!(all, b"SUBSCRIBE", "looking took bytes");
        assert!(!has_unread_bytes(ours.as_fd()));
        drop(theirs);
        assert!(!has_unread_bytes(ours.as_fd()), "an end of stream is no bytes");
    }
}
