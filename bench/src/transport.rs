//! The message transports being compared, behind one small trait so the same
//! ping-pong and throughput code drives each of them:
//! - [`ShmTransport`]: a shmsock [`Stream`];
//! - [`UnixPlain`]: a `SOCK_STREAM` Unix socket carrying length-prefixed messages;
//! - [`UnixAead`]: the same socket carrying frames sealed with the same AEAD and the
//!   same frame layout as shmsock (16-byte header as associated data, 64 KiB
//!   fragments), each frame length-prefixed.
//!
//! The Unix baselines are written the way a careful user would write them: one
//! `write` per small message (prefix and payload copied together, `writev` for large
//! ones), and a buffered reader so a small message costs one `read`.

use std::io::{IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use shmsock::frame::{fragments, FrameHeader, FrameKind, HEADER_LEN};
use shmsock::options::MAX_FRAGMENT;
use shmsock::sodium::Aead;
use shmsock::Stream;

use crate::error::{BenchError, Result};

/// A bidirectional, message-oriented channel to the peer process.
pub trait Transport {
    /// Sends one whole message.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Receives the next whole message into `buf`, returning its length.
    fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize>;
    /// Limits each later call (None: wait as long as it takes). Transports that
    /// cannot lose a wake-up may ignore it.
    fn set_timeout(&mut self, _timeout: Option<Duration>) {}
}

// ------------------------------------------------------------------ shmsock

/// A shmsock stream, with a per-call timeout: none during ping-pong (as a
/// default user runs it: a deadline costs a clock read per call), some while
/// streaming, so a lost wake-up costs a timeout instead of a hang.
pub struct ShmTransport {
    stream: Stream,
    timeout: Option<Duration>,
}

impl ShmTransport {
    /// Wraps a stream (no timeout).
    pub fn new(stream: Stream) -> ShmTransport {
        ShmTransport { stream, timeout: None }
    }
    /// The stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl Transport for ShmTransport {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(self.stream.send_timeout(msg, self.timeout)?)
    }
    fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        Ok(self.stream.recv_into_timeout(buf, self.timeout)?)
    }
    fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}

// ------------------------------------------------------- buffered socket I/O

/// A receive buffer over a stream socket: small records come out of one `read`.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new(capacity: usize) -> Reader {
        Reader { buf: vec![0u8; capacity], start: 0, end: 0 }
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Makes at least `need` (<= capacity) bytes available, reading as much as
    /// the socket has.
    fn fill(&mut self, sock: &mut UnixStream, need: usize) -> Result<()> {
        assert!(need <= self.buf.len());
        if self.available() >= need {
            return Ok(());
        }
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.available() < need {
            match sock.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(BenchError::new("the peer closed the Unix socket")),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.start..self.start + n];
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        s
    }

    /// Copies exactly `out.len()` bytes: what is buffered, then straight from the
    /// socket into `out` (no extra copy for large payloads).
    fn read_exact_into(&mut self, sock: &mut UnixStream, out: &mut [u8]) -> Result<()> {
        let have = self.available().min(out.len());
        out[..have].copy_from_slice(self.take(have));
        let rest = &mut out[have..];
        if rest.is_empty() {
            return Ok(());
        }
        if rest.len() < self.buf.len() / 4 {
            self.fill(sock, rest.len())?;
            let n = rest.len();
            rest.copy_from_slice(self.take(n));
            return Ok(());
        }
        sock.read_exact(rest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                BenchError::new("the peer closed the Unix socket")
            } else {
                e.into()
            }
        })
    }
}

/// Writes all of `head` then `body` with `writev`, coping with partial writes
/// (no allocation).
fn write_all_vectored(sock: &mut UnixStream, head: &[u8], body: &[u8]) -> Result<()> {
    let mut done = 0usize;
    let total = head.len() + body.len();
    while done < total {
        let r = if done < head.len() {
            sock.write_vectored(&[IoSlice::new(&head[done..]), IoSlice::new(body)])
        } else {
            sock.write(&body[done - head.len()..])
        };
        match r {
            Ok(0) => return Err(BenchError::new("the Unix socket accepted no bytes")),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receive-buffer size of the Unix baselines.
const READ_BUFFER: usize = 256 * 1024;
/// Messages up to this size are copied behind their prefix and written with one
/// `write`; larger ones go out with `writev`.
const COPY_LIMIT: usize = 64 * 1024;

// ------------------------------------------------------------- plain Unix

/// A Unix stream socket carrying `[u32 le length][payload]` messages.
pub struct UnixPlain {
    sock: UnixStream,
    reader: Reader,
    out: Vec<u8>,
}

impl UnixPlain {
    /// Wraps a connected socket.
    pub fn new(sock: UnixStream) -> UnixPlain {
        UnixPlain { sock, reader: Reader::new(READ_BUFFER), out: Vec::with_capacity(COPY_LIMIT + 4) }
    }
}

impl Transport for UnixPlain {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let prefix = (msg.len() as u32).to_le_bytes();
        if msg.len() <= COPY_LIMIT {
            self.out.clear();
            self.out.extend_from_slice(&prefix);
            self.out.extend_from_slice(msg);
            self.sock.write_all(&self.out)?;
            Ok(())
        } else {
            write_all_vectored(&mut self.sock, &prefix, msg)
        }
    }

    fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.reader.fill(&mut self.sock, 4)?;
        let len = u32::from_le_bytes(self.reader.take(4).try_into().unwrap()) as usize;
        if len > buf.len() {
            return Err(BenchError::new(format!("a message of {len} bytes does not fit a buffer of {}", buf.len())));
        }
        self.reader.read_exact_into(&mut self.sock, &mut buf[..len])?;
        Ok(len)
    }
}

// -------------------------------------------------------------- AEAD Unix

/// One direction's key and counter nonce.
pub struct DirectionKey {
    /// The 32-byte key (AEGIS-128L uses the first 16 bytes, like shmsock).
    pub key: [u8; 32],
    /// The next nonce.
    pub nonce: u64,
}

/// A Unix stream socket carrying shmsock-style sealed frames, each prefixed by
/// its length: `[u32 le len][16-byte header][ciphertext][tag]`. Messages larger
/// than 64 KiB are cut into fragments exactly as shmsock cuts them.
pub struct UnixAead {
    sock: UnixStream,
    aead: Aead,
    tx: DirectionKey,
    rx: DirectionKey,
    reader: Reader,
    out: Vec<u8>,
}

impl UnixAead {
    /// Wraps a connected socket with the keys of each direction.
    pub fn new(sock: UnixStream, aead: Aead, tx: [u8; 32], rx: [u8; 32]) -> UnixAead {
        UnixAead {
            sock,
            aead,
            tx: DirectionKey { key: tx, nonce: 0 },
            rx: DirectionKey { key: rx, nonce: 0 },
            reader: Reader::new(READ_BUFFER),
            out: Vec::new(),
        }
    }
}

impl Transport for UnixAead {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let len = msg.len() as u32;
        let tag_len = self.aead.tag_len();
        for (offset, frame_len) in fragments(len, MAX_FRAGMENT) {
            let header = FrameHeader::data(frame_len, len, offset);
            let ad = header.encode();
            let sealed = HEADER_LEN + frame_len as usize + tag_len;
            self.out.resize(4 + sealed, 0);
            self.out[..4].copy_from_slice(&(sealed as u32).to_le_bytes());
            self.out[4..4 + HEADER_LEN].copy_from_slice(&ad);
            let (ct, tag) = self.out[4 + HEADER_LEN..].split_at_mut(frame_len as usize);
            let piece = &msg[offset as usize..(offset + frame_len) as usize];
            self.aead.seal(&self.tx.key, self.tx.nonce, &ad, piece, ct, tag);
            self.tx.nonce += 1;
            self.sock.write_all(&self.out)?;
        }
        Ok(())
    }

    fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let tag_len = self.aead.tag_len();
        let mut expected_offset = 0u32;
        loop {
            self.reader.fill(&mut self.sock, 4)?;
            let sealed = u32::from_le_bytes(self.reader.take(4).try_into().unwrap()) as usize;
            if !(HEADER_LEN + tag_len..=HEADER_LEN + tag_len + MAX_FRAGMENT as usize).contains(&sealed) {
                return Err(BenchError::new(format!("bad frame length {sealed}")));
            }
            // The whole frame is in private memory (our read buffer) before it is opened.
            self.reader.fill(&mut self.sock, sealed)?;
            let frame = self.reader.take(sealed);
            let header = FrameHeader::decode(frame[..HEADER_LEN].try_into().unwrap())?;
            if header.kind != FrameKind::Data
                || header.offset != expected_offset
                || header.message_len as usize > buf.len()
                || HEADER_LEN + header.frame_len as usize + tag_len != sealed
            {
                return Err(BenchError::new("unexpected frame header"));
            }
            let (ad, rest) = frame.split_at(HEADER_LEN);
            let (ct, tag) = rest.split_at(header.frame_len as usize);
            let out = &mut buf[header.offset as usize..(header.offset + header.frame_len) as usize];
            if !self.aead.open(&self.rx.key, self.rx.nonce, ad, ct, tag, out) {
                return Err(BenchError::new("a frame failed authentication"));
            }
            self.rx.nonce += 1;
            if header.is_last_fragment() {
                return Ok(header.message_len as usize);
            }
            expected_offset += header.frame_len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_check(mut a: Box<dyn Transport + Send>, mut b: Box<dyn Transport + Send>) {
        let sizes = [0usize, 1, 2, 64, 1024, 65535, 65536, 65537, 200_000, 1 << 20];
        let peer = std::thread::spawn(move || {
            let mut buf = vec![0u8; (1 << 20) + 16];
            for _ in 0..sizes.len() * 3 {
                let n = b.recv_into(&mut buf).unwrap();
                b.send(&buf[..n]).unwrap();
            }
        });
        let mut buf = vec![0u8; (1 << 20) + 16];
        for round in 0..3u8 {
            for &size in &sizes {
                let msg: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(round)).collect();
                a.send(&msg).unwrap();
                let n = a.recv_into(&mut buf).unwrap();
                assert_eq!(&buf[..n], &msg[..], "size {size}");
            }
        }
        peer.join().unwrap();
    }

    #[test]
    fn unix_plain_round_trips() {
        let (x, y) = UnixStream::pair().unwrap();
        echo_check(Box::new(UnixPlain::new(x)), Box::new(UnixPlain::new(y)));
    }

    #[test]
    fn unix_aead_round_trips() {
        for aead in [Aead::Aegis128L, Aead::ChaCha20Poly1305] {
            let (x, y) = UnixStream::pair().unwrap();
            let (k1, k2) = ([1u8; 32], [2u8; 32]);
            echo_check(Box::new(UnixAead::new(x, aead, k1, k2)), Box::new(UnixAead::new(y, aead, k2, k1)));
        }
    }

    #[test]
    fn unix_aead_rejects_a_wrong_key() {
        let (x, y) = UnixStream::pair().unwrap();
        let mut a = UnixAead::new(x, Aead::Aegis128L, [1u8; 32], [2u8; 32]);
        let mut b = UnixAead::new(y, Aead::Aegis128L, [3u8; 32], [0u8; 32]);
        a.send(b"hello there").unwrap();
        let mut buf = [0u8; 64];
        assert!(b.recv_into(&mut buf).is_err());
    }
}
