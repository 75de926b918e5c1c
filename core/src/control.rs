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
//! and collects what came with them, and decides how a server answers a client's
//! first record ([`first_record`]: REJECT 5 for anything malformed); the
//! handshake code checks that each later record carried exactly its descriptors. After READY nothing more is written on the
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

/// Writes the client's first record (HELLO or SUBSCRIBE). A server that refuses
/// at once (it is full, or busy) may send its REJECT and close before it reads
/// the first record; writing then fails, but the REJECT waits in our receive
/// buffer: that refusal is the error, not the failed write.
pub fn send_first(socket: BorrowedFd<'_>, record: &[u8], endpoint: &str) -> Result<()> {
    let Err(e) = send(socket, record, &[]) else { return Ok(()) };
    if e.kind() == ErrorKind::PeerGone {
        let mut fds = Vec::new();
        if let Ok(Record::Reject(reason, text)) = receive(socket, &mut fds, Some(Instant::now())) {
            return Err(reason.to_error(endpoint, &text));
        }
    }
    Err(e)
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

/// Length of a record's header: type, reserved byte, body length (u16 LE).
const HEADER: usize = 4;

/// Reads records without waiting, for handshakes an event loop drives: what
/// arrived of an incomplete record is kept until the rest comes (a peer may
/// send one in pieces), with the descriptors that came with it.
#[derive(Default)]
pub struct RecordReader {
    /// The bytes of the record being read (header first, then body).
    record: Vec<u8>,
    /// Descriptors received with the records read so far.
    fds: Vec<OwnedFd>,
}

impl RecordReader {
    /// The next record's header and body once it is complete, None while
    /// more must come. `peer` names the other side in errors.
    pub fn read(&mut self, socket: BorrowedFd<'_>, peer: &str) -> Result<Option<([u8; HEADER], Vec<u8>)>> {
        loop {
            let want = if self.record.len() < HEADER {
                HEADER
            } else {
                if self.record[1] != 0 {
                    return Err(malformed("nonzero reserved byte".to_string()));
                }
                let want = HEADER + u16::from_le_bytes([self.record[2], self.record[3]]) as usize;
                if self.record.len() == want {
                    let body = self.record.split_off(HEADER);
                    let header = [self.record[0], self.record[1], self.record[2], self.record[3]];
                    self.record.clear();
                    return Ok(Some((header, body)));
                }
                want
            };
            let have = self.record.len();
            self.record.resize(want, 0);
            // A deadline in the past: take what is there, never wait.
            let got = platform::recv_with_fds(socket, &mut self.record[have..], &mut self.fds, Some(Instant::now()));
            let n = match got {
                Ok(n) => n,
                Err(e) => {
                    self.record.truncate(have);
                    return if e.kind() == ErrorKind::Timeout { Ok(None) } else { Err(e) };
                }
            };
            self.record.truncate(have + n);
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::PeerGone,
                    format!("{peer} closed the control socket during the handshake"),
                ));
            }
            if self.fds.len() > platform::MAX_RECORD_FDS {
                return Err(Error::new(
                    ErrorKind::ProtocolViolation,
                    format!("{peer} passed more than {} file descriptors", platform::MAX_RECORD_FDS),
                ));
            }
        }
    }

    /// The descriptors received with the records read so far.
    pub fn fds(&mut self) -> &mut Vec<OwnedFd> {
        &mut self.fds
    }
}

/// The body length a record header announces.
pub fn body_len(header: &[u8; 4]) -> usize {
    u16::from_le_bytes([header[2], header[3]]) as usize
}

fn malformed(what: String) -> Error {
    Error::new(ErrorKind::ProtocolViolation, format!("malformed control record ({what})"))
}

/// Parses a whole record: its header and the body of [`body_len`] bytes. Any
/// malformed record (a nonzero reserved byte, an unknown type, a READY with a
/// body, a REJECT too short or too long) is a ProtocolViolation.
pub fn parse(header: &[u8; 4], body: Vec<u8>) -> Result<Record> {
    if header[1] != 0 {
        return Err(malformed(format!("nonzero reserved byte {}", header[1])));
    }
    match header[0] {
        HELLO => Ok(Record::Hello(body)),
        REPLY => Ok(Record::Reply(body)),
        READY if body.is_empty() => Ok(Record::Ready),
        REJECT if body.len() >= 2 && body.len() <= 2 + MAX_REJECT_TEXT => {
            let code = u16::from_le_bytes([body[0], body[1]]);
            let reason = RejectReason::from_code(code).unwrap_or(RejectReason::ServerError);
            Ok(Record::Reject(reason, String::from_utf8_lossy(&body[2..]).into_owned()))
        }
        kind => Err(malformed(format!("type {kind}, {} bytes", body.len()))),
    }
}

/// Reads one record, collecting any passed file descriptors into `fds` (more than
/// two in all is a protocol violation). The whole record is read before it is
/// judged, so a refusal can be written back with nothing left unread (closing a
/// Unix socket with unread input resets the peer's connection, and the client
/// would see the reset instead of the REJECT).
pub fn receive(socket: BorrowedFd<'_>, fds: &mut Vec<OwnedFd>, deadline: Option<Instant>) -> Result<Record> {
    let mut header = [0u8; 4];
    read_exact(socket, &mut header, fds, deadline)?;
    let mut body = vec![0u8; body_len(&header)];
    read_exact(socket, &mut body, fds, deadline)?;
    parse(&header, body)
}

/// What a server does with the client's first record (PROTOCOL.md, "Control
/// channel" and "Errors"): every malformed first record is answered with
/// REJECT 5 (malformed) before the socket is closed; a failure to read one at
/// all is not answered.
#[derive(Debug)]
pub enum FirstRecord {
    /// A well-formed HELLO without descriptors: its body, Noise message 1.
    Hello(Vec<u8>),
    /// A malformed first record (see [`parse`]), a record other than HELLO, a
    /// HELLO carrying descriptors, or too many descriptors: send
    /// `encode_reject(RejectReason::Malformed, error.message())`, then close.
    Malformed(Error),
    /// No record could be read (the client closed, stayed silent past the
    /// deadline, or the socket failed): close without answering.
    Unanswered(Error),
}

/// Judges the result of [`receive`] for a client's first record; `fds` are the
/// descriptors it carried.
pub fn first_record(received: Result<Record>, fds: &[OwnedFd]) -> FirstRecord {
    match received {
        Ok(Record::Hello(body)) if fds.is_empty() => FirstRecord::Hello(body),
        Ok(Record::Hello(_)) => FirstRecord::Malformed(malformed(format!("a HELLO carried {} descriptors", fds.len()))),
        Ok(_) => FirstRecord::Malformed(Error::new(ErrorKind::ProtocolViolation, "expected a HELLO record")),
        Err(e) if e.kind() == ErrorKind::ProtocolViolation => FirstRecord::Malformed(e),
        Err(e) => FirstRecord::Unanswered(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_reject_sent_before_the_first_record_is_the_error() {
        // The server refuses before reading: it writes REJECT and shuts the
        // socket, so our HELLO cannot be written (EPIPE).
        let (client, server) = UnixStream::pair().unwrap();
        send(server.as_fd(), &encode_reject(RejectReason::ServerError, "the server is full"), &[]).unwrap();
        platform::shutdown(server.as_fd());
        let e = send_first(client.as_fd(), &encode(HELLO, b"hello"), "ep").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
        assert!(e.message().contains("the server is full"), "{e}");

        // Without a REJECT, the failed write stays the error.
        let (client, server) = UnixStream::pair().unwrap();
        platform::shutdown(server.as_fd());
        let e = send_first(client.as_fd(), &encode(HELLO, b"hello"), "ep").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
    }

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
    fn a_bad_reserved_byte_is_malformed_and_the_whole_record_is_consumed() {
        let (a, b) = UnixStream::pair().unwrap();
        send(a.as_fd(), &[HELLO, 7, 3, 0, 1, 2, 3], &[]).unwrap();
        send(a.as_fd(), &encode(READY, &[]), &[]).unwrap();
        let mut fds = Vec::new();
        let err = receive(b.as_fd(), &mut fds, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ProtocolViolation);
        assert!(err.message().contains("reserved"), "{err}");
        // Nothing of the bad record is left behind: the next one parses.
        assert_eq!(receive(b.as_fd(), &mut fds, None).unwrap(), Record::Ready);
    }

    #[test]
    fn every_malformed_first_record_is_answered_with_reject_malformed() {
        let malformed: [&[u8]; 7] = [
            &[HELLO, 1, 0, 0],     // nonzero reserved byte
            &[9, 0, 0, 0],         // unknown type
            &[0, 0, 1, 0, 0],      // type 0
            &[REPLY, 0, 1, 0, 0],  // a server's record
            &[READY, 0, 0, 0],     // out of order
            &[READY, 0, 1, 0, 0],  // READY with a body
            &[REJECT, 0, 1, 0, 5], // REJECT too short
        ];
        for record in malformed {
            let (a, b) = UnixStream::pair().unwrap();
            send(a.as_fd(), record, &[]).unwrap();
            let mut fds = Vec::new();
            let received = receive(b.as_fd(), &mut fds, None);
            match first_record(received, &fds) {
                FirstRecord::Malformed(e) => {
                    assert_eq!(RejectReason::for_error(e.kind()), RejectReason::Malformed, "{record:?}: {e}")
                }
                other => panic!("{record:?} gave {other:?}"),
            }
        }
        // A HELLO with a descriptor attached is malformed too.
        let (a, b) = UnixStream::pair().unwrap();
        send(a.as_fd(), &encode(HELLO, b"hi"), &[a.as_fd()]).unwrap();
        let mut fds = Vec::new();
        let received = receive(b.as_fd(), &mut fds, None);
        assert!(matches!(first_record(received, &fds), FirstRecord::Malformed(_)));
        // A well-formed HELLO passes.
        let (a, b) = UnixStream::pair().unwrap();
        send(a.as_fd(), &encode(HELLO, b"hi"), &[]).unwrap();
        let mut fds = Vec::new();
        let received = receive(b.as_fd(), &mut fds, None);
        assert!(matches!(first_record(received, &fds), FirstRecord::Hello(body) if body == b"hi"));
    }

    #[test]
    fn a_first_record_never_read_is_not_answered() {
        let (a, b) = UnixStream::pair().unwrap();
        send(a.as_fd(), &[HELLO, 0, 10, 0, 1], &[]).unwrap();
        drop(a);
        let mut fds = Vec::new();
        let received = receive(b.as_fd(), &mut fds, None);
        assert!(matches!(first_record(received, &fds), FirstRecord::Unanswered(e) if e.kind() == ErrorKind::PeerGone));
        let (_a, b) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(10);
        let received = receive(b.as_fd(), &mut fds, Some(deadline));
        assert!(matches!(first_record(received, &fds), FirstRecord::Unanswered(e) if e.kind() == ErrorKind::Timeout));
    }

    #[test]
    fn silence_times_out() {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut fds = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(receive(b.as_fd(), &mut fds, Some(deadline)).unwrap_err().kind(), ErrorKind::Timeout);
    }
}
