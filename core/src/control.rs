//! Messages on the control socket during connection set-up.
//!
//! Each record is a 4-byte header (u8 type, u8 zero, u16le body length) and the
//! body (PROTOCOL.md, "Control channel"):
//!
//! | type | name   | sender | body                                            | descriptors (SCM_RIGHTS, in order) |
//! |------|--------|--------|-------------------------------------------------|------------------------------------|
//! | 1    | HELLO  | client | Noise message 1                                 | none                               |
//! | 2    | REPLY  | server | Noise message 2                                 | memfd (memfd backend only), then the server's wake-up eventfd |
//! | 3    | REJECT | server | u16le reason code, then UTF-8 text (<= 1024 B)  | none                               |
//! | 4    | READY  | client | empty: the segment is mapped                    | the client's wake-up eventfd       |
//!
//! Descriptors are attached to a record's first byte. This module reads records
//! and collects what came with them; the handshake code checks that each record
//! carried exactly its descriptors. After READY nothing more is written on the
//! socket (wake-ups go through the eventfds), and end of stream means the peer
//! is gone.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::handshake::RejectReason;
use crate::platform;

/// Record type of the client's hello.
pub const HELLO: u8 = 1;
/// Record type of the server's reply.
pub const REPLY: u8 = 2;
/// Record type of a refusal.
pub const REJECT: u8 = 3;
/// Record type of the client's confirmation that it mapped the segment.
pub const READY: u8 = 4;
/// Longest REJECT text.
pub const MAX_REJECT_TEXT: usize = 1024;

/// A control record as received.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// Noise message 1.
    Hello(Vec<u8>),
    /// Noise message 2.
    Reply(Vec<u8>),
    /// A refusal, with the server's words.
    Reject(RejectReason, String),
    /// The client mapped the segment.
    Ready,
}

/// Encodes a record.
pub fn encode(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Encodes a REJECT record.
pub fn encode_reject(reason: RejectReason, text: &str) -> Vec<u8> {
    let mut cut = text.len().min(MAX_REJECT_TEXT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut body = (reason as u16).to_le_bytes().to_vec();
    body.extend_from_slice(&text.as_bytes()[..cut]);
    encode(REJECT, &body)
}

/// Writes a record, with `fds` (at most two, in this order) attached to its
/// first byte.
pub fn send(socket: BorrowedFd<'_>, record: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    platform::send_with_fds(socket, record, fds)
}

pub(crate) fn read_exact(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = platform::recv_with_fds(socket, &mut buf[got..], fds, deadline)?;
        if n == 0 {
            return Err(Error::new(ErrorKind::PeerGone, "the peer closed the control socket during the handshake"));
        }
        got += n;
        if fds.len() > platform::MAX_RECORD_FDS {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                format!("the peer passed more than {} file descriptors", platform::MAX_RECORD_FDS),
            ));
        }
    }
    Ok(())
}

/// Reads one record, collecting any passed file descriptors into `fds` (more than
/// two in all is a protocol violation).
pub fn receive(socket: BorrowedFd<'_>, fds: &mut Vec<OwnedFd>, deadline: Option<Instant>) -> Result<Record> {
    let mut header = [0u8; 4];
    read_exact(socket, &mut header, fds, deadline)?;
    let len = u16::from_le_bytes([header[2], header[3]]) as usize;
    if header[1] != 0 {
        return Err(Error::new(ErrorKind::ProtocolViolation, "malformed control record (nonzero reserved byte)"));
    }
    let mut body = vec![0u8; len];
    read_exact(socket, &mut body, fds, deadline)?;
    match header[0] {
        HELLO => Ok(Record::Hello(body)),
        REPLY => Ok(Record::Reply(body)),
        READY if body.is_empty() => Ok(Record::Ready),
        REJECT if body.len() >= 2 && body.len() <= 2 + MAX_REJECT_TEXT => {
            let code = u16::from_le_bytes([body[0], body[1]]);
            let reason = RejectReason::from_code(code).unwrap_or(RejectReason::ServerError);
            Ok(Record::Reject(reason, String::from_utf8_lossy(&body[2..]).into_owned()))
        }
        kind => Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!("malformed control record (type {kind}, {len} bytes)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn records_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        send(a.as_fd(), &encode(HELLO, b"abc"), &[]).unwrap();
        send(a.as_fd(), &encode_reject(RejectReason::ClientNotAllowed, "no"), &[]).unwrap();
        send(a.as_fd(), &encode(READY, &[]), &[]).unwrap();
        let mut fds = Vec::new();
        assert_eq!(receive(b.as_fd(), &mut fds, None).unwrap(), Record::Hello(b"abc".to_vec()));
        assert_eq!(
            receive(b.as_fd(), &mut fds, None).unwrap(),
            Record::Reject(RejectReason::ClientNotAllowed, "no".into())
        );
        assert_eq!(receive(b.as_fd(), &mut fds, None).unwrap(), Record::Ready);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        send(a.as_fd(), &[9, 0, 0, 0], &[]).unwrap();
        let mut fds = Vec::new();
        assert_eq!(receive(b.as_fd(), &mut fds, None).unwrap_err().kind(), ErrorKind::ProtocolViolation);
        send(a.as_fd(), &[1, 0, 10, 0, 1, 2], &[]).unwrap();
        drop(a);
        assert_eq!(receive(b.as_fd(), &mut fds, None).unwrap_err().kind(), ErrorKind::PeerGone);
    }

    #[test]
    fn silence_times_out() {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut fds = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(receive(b.as_fd(), &mut fds, Some(deadline)).unwrap_err().kind(), ErrorKind::Timeout);
    }
}
