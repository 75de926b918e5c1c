//! Control-socket records of publish/subscribe (PROTOCOL.md, "Publish/subscribe").
//!
//! Set-up reuses the stream records' framing (4-byte header: u8 type, u8 zero,
//! u16le body length) with two new types, so a subscriber can never be taken
//! for a stream client nor the other way round:
//!
//! | type | name      | sender     | body                              | descriptors |
//! |------|-----------|------------|-----------------------------------|-------------|
//! | 5    | SUBSCRIBE | subscriber | Noise message 1                   | none |
//! | 6    | WELCOME   | publisher  | Noise message 2                   | broadcast memfd (read-only), publisher's wake-up eventfd |
//! | 3    | REJECT    | publisher  | as for streams                    | none |
//! | 4    | READY     | subscriber | empty                             | cursor memfd, subscriber's wake-up eventfd |
//! | 7    | KEY       | publisher  | sealed: epoch, first_seq, key     | none |
//! | 8    | BYE       | publisher  | sealed: reason, final_seq         | none |
//!
//! KEY and BYE are sealed under the publisher-to-subscriber key of the Noise
//! session (nonces 0, 1, 2... in order) with the 4-byte record header as
//! associated data. After READY the subscriber writes nothing on the socket;
//! closing it is how it leaves.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::cipher::{RecvCipher, SendCipher};
use crate::control;
use crate::error::{Error, ErrorKind, Result};

/// A subscriber's hello (Noise message 1).
pub const SUBSCRIBE: u8 = 5;
/// The publisher's reply (Noise message 2).
pub const WELCOME: u8 = 6;
/// A group key, sealed.
pub const KEY: u8 = 7;
/// The end of a subscription, sealed.
pub const BYE: u8 = 8;
/// Longest body of a sealed record.
pub const MAX_SEALED_BODY: usize = 256;
/// Bytes of a BYE record's plaintext: reason u8, 7 zero bytes, final_seq u64le.
pub const BYE_PLAINTEXT_LEN: usize = 16;

/// Why a subscription ended, as a BYE record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ByeReason {
    /// The publisher closed the topic; messages before `final_seq` are still delivered.
    Closed = 0,
    /// The publisher removed this subscriber.
    Removed = 1,
    /// Reliable topic: the subscriber fell behind for longer than the publisher's timeout.
    TooSlow = 2,
    /// The subscriber's cursor segment held an impossible position.
    Violation = 3,
}

impl ByeReason {
    /// The reason with this wire code.
    pub fn from_code(code: u8) -> Option<ByeReason> {
        [ByeReason::Closed, ByeReason::Removed, ByeReason::TooSlow, ByeReason::Violation]
            .into_iter()
            .find(|r| *r as u8 == code)
    }

    /// What the subscriber reports once every deliverable message is delivered.
    pub fn to_error(self, topic: &str) -> Error {
        match self {
            ByeReason::Closed => Error::new(ErrorKind::PeerClosed, format!("the publisher of '{topic}' closed the topic")),
            ByeReason::Removed => {
                Error::new(ErrorKind::PeerClosed, format!("the publisher of '{topic}' removed this subscriber"))
            }
            ByeReason::TooSlow => Error::new(
                ErrorKind::PeerClosed,
                format!("the publisher of '{topic}' dropped this subscriber: it fell behind a reliable topic for longer than the publisher's timeout"),
            ),
            ByeReason::Violation => Error::new(
                ErrorKind::ProtocolViolation,
                format!("the publisher of '{topic}' dropped this subscriber: its cursor held an impossible position"),
            ),
        }
    }
}

/// Encodes a BYE record's plaintext.
pub fn bye_plaintext(reason: ByeReason, final_seq: u64) -> [u8; BYE_PLAINTEXT_LEN] {
    let mut out = [0u8; BYE_PLAINTEXT_LEN];
    out[0] = reason as u8;
    out[8..].copy_from_slice(&final_seq.to_le_bytes());
    out
}

/// Parses a BYE record's plaintext.
pub fn parse_bye(bytes: &[u8]) -> Result<(ByeReason, u64)> {
    let bad = || Error::new(ErrorKind::ProtocolViolation, "malformed BYE record");
    if bytes.len() != BYE_PLAINTEXT_LEN || bytes[1..8].iter().any(|b| *b != 0) {
        return Err(bad());
    }
    let reason = ByeReason::from_code(bytes[0]).ok_or_else(bad)?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[8..]);
    Ok((reason, u64::from_le_bytes(seq)))
}

/// Seals a KEY or BYE record under the session's sending key.
pub fn seal(kind: u8, cipher: &mut SendCipher, plaintext: &[u8]) -> Result<Vec<u8>> {
    let tag = cipher.suite().tag_len();
    let body = plaintext.len() + tag;
    let mut out = vec![0u8; 4 + body];
    out[0] = kind;
    out[2..4].copy_from_slice(&(body as u16).to_le_bytes());
    let (header, rest) = out.split_at_mut(4);
    let (ct, tg) = rest.split_at_mut(plaintext.len());
    cipher.seal(header, plaintext, ct, tg)?;
    Ok(out)
}

/// A sealed record parsed from the front of `buf`: (type, plaintext, bytes used).
/// None when `buf` does not hold a whole record yet.
pub fn open_front(buf: &[u8], cipher: &mut RecvCipher) -> Result<Option<(u8, Vec<u8>, usize)>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let kind = buf[0];
    let len = u16::from_le_bytes([buf[2], buf[3]]) as usize;
    let tag = cipher.suite().tag_len();
    if buf[1] != 0 || !(kind == KEY || kind == BYE) || len < tag || len > MAX_SEALED_BODY {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!("malformed control record from the publisher (type {kind}, {len} bytes)"),
        ));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let (header, body) = buf.split_at(4);
    let (ct, tg) = body[..len].split_at(len - tag);
    let mut plain = vec![0u8; ct.len()];
    cipher.open(header, ct, tg, &mut plain)?;
    Ok(Some((kind, plain, 4 + len)))
}

/// Reads one set-up record of any type: (type, body), with its descriptors
/// collected into `fds`.
pub fn receive_raw(socket: BorrowedFd<'_>, fds: &mut Vec<OwnedFd>, deadline: Option<Instant>) -> Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    control::read_exact(socket, &mut header, fds, deadline)?;
    if header[1] != 0 {
        return Err(Error::new(ErrorKind::ProtocolViolation, "malformed control record (nonzero reserved byte)"));
    }
    let mut body = vec![0u8; u16::from_le_bytes([header[2], header[3]]) as usize];
    control::read_exact(socket, &mut body, fds, deadline)?;
    Ok((header[0], body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::CipherSuite;
    use crate::sodium::Secret;

    #[test]
    fn sealed_records_round_trip_in_order_only() {
        crate::sodium::init().unwrap();
        let key = Secret::<32>::random();
        let mut tx = SendCipher::new(CipherSuite::ChaCha20Poly1305, key.clone());
        let mut rx = RecvCipher::new(CipherSuite::ChaCha20Poly1305, key);
        let a = seal(BYE, &mut tx, &bye_plaintext(ByeReason::Removed, 42)).unwrap();
        let b = seal(KEY, &mut tx, &[7u8; 48]).unwrap();
        let mut stream = a.clone();
        stream.extend_from_slice(&b[..10]);
        let (kind, plain, used) = open_front(&stream, &mut rx).unwrap().unwrap();
        assert_eq!((kind, used), (BYE, a.len()));
        assert_eq!(parse_bye(&plain).unwrap(), (ByeReason::Removed, 42));
        assert!(open_front(&stream[used..], &mut rx).unwrap().is_none());
        // a replay of the first record fails
        assert_eq!(open_front(&a, &mut rx).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
        assert!(open_front(&[9, 0, 20, 0], &mut rx).is_err());
        assert!(parse_bye(&[9u8; 16]).is_err());
    }
}
