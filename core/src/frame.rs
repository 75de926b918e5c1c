//! Frames: the sealed unit of the transport, fragmentation of large messages and
//! their in-order reassembly.
//!
//! A frame (PROTOCOL.md, "Frames") is a 16-byte header, authenticated as associated
//! data, then the ciphertext of `frame_len` bytes, then the tag:
//!
//! ```text
//! 0  u8    kind          1 = DATA, 2 = CLOSE
//! 1  u8    flags         0
//! 2  u16le reserved      0
//! 4  u32le frame_len     plaintext bytes in this frame
//! 8  u32le message_len   plaintext bytes of the whole message
//! 12 u32le offset        where this frame's plaintext starts in the message
//! 16 ...   ciphertext (frame_len bytes), tag (16 or 32 bytes)
//! ```
//!
//! The sealer writes a whole frame into a destination (private memory, or shared
//! memory through a raw pointer); the opener takes a private copy of a frame,
//! checks its header against the reassembly state, then verifies and decrypts.
//! Nothing is ever returned from a frame that did not verify, and a message is
//! only complete when its last fragment verified.

use crate::cipher::{CipherSuite, RecvCipher, SendCipher};
use crate::error::{Error, ErrorKind, Result};

/// Length of the frame header.
pub const HEADER_LEN: usize = 16;

/// The kind of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A message or a fragment of one.
    Data = 1,
    /// The authenticated end of the stream in this direction.
    Close = 2,
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// DATA or CLOSE.
    pub kind: FrameKind,
    /// Plaintext bytes carried by this frame.
    pub frame_len: u32,
    /// Plaintext bytes of the whole message.
    pub message_len: u32,
    /// Offset of this frame's plaintext in the message.
    pub offset: u32,
}

fn corrupt(why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::ProtocolViolation,
        format!("corrupt frame header ({why}): the shared memory was tampered with or the peer is broken; the connection is closed"),
    )
}

impl FrameHeader {
    /// The header of a CLOSE frame.
    pub const CLOSE: FrameHeader = FrameHeader { kind: FrameKind::Close, frame_len: 0, message_len: 0, offset: 0 };

    /// The header of a DATA frame.
    pub fn data(frame_len: u32, message_len: u32, offset: u32) -> FrameHeader {
        FrameHeader { kind: FrameKind::Data, frame_len, message_len, offset }
    }

    /// The 16 header bytes.
    #[inline]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.kind as u8;
        b[4..8].copy_from_slice(&self.frame_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.message_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.offset.to_le_bytes());
        b
    }

    /// Decodes and checks a header on its own (not yet against a stream's state).
    #[inline]
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<FrameHeader> {
        let kind = match b[0] {
            1 => FrameKind::Data,
            2 => FrameKind::Close,
            k => return Err(corrupt(format_args!("unknown kind {k}"))),
        };
        if b[1] != 0 || b[2] != 0 || b[3] != 0 {
            return Err(corrupt("nonzero flags or reserved bytes"));
        }
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let h = FrameHeader { kind, frame_len: word(4), message_len: word(8), offset: word(12) };
        match kind {
            FrameKind::Close if h.frame_len != 0 || h.message_len != 0 || h.offset != 0 => {
                Err(corrupt("a CLOSE frame carries no data"))
            }
            FrameKind::Data if u64::from(h.offset) + u64::from(h.frame_len) > u64::from(h.message_len) => {
                Err(corrupt("fragment runs past the end of its message"))
            }
            FrameKind::Data if h.frame_len == 0 && h.message_len != 0 => Err(corrupt("empty fragment")),
            _ => Ok(h),
        }
    }

    /// True for the last frame of a message.
    #[inline]
    pub fn is_last_fragment(&self) -> bool {
        self.offset + self.frame_len == self.message_len
    }

    /// Total bytes of the sealed frame with this header.
    #[inline]
    pub fn sealed_len(&self, suite: CipherSuite) -> usize {
        sealed_len(self.frame_len as usize, suite)
    }
}

/// Bytes of a sealed frame carrying `frame_len` plaintext bytes.
#[inline]
pub fn sealed_len(frame_len: usize, suite: CipherSuite) -> usize {
    HEADER_LEN + frame_len + suite.tag_len()
}

/// The fragments `(offset, len)` of a message of `message_len` bytes cut into
/// pieces of at most `max_fragment` bytes (a zero-length message is one empty
/// fragment).
pub fn fragments(message_len: u32, max_fragment: u32) -> impl Iterator<Item = (u32, u32)> {
    let max_fragment = max_fragment.max(1);
    let count = if message_len == 0 { 1 } else { message_len.div_ceil(max_fragment) };
    (0..count).map(move |i| {
        let offset = i * max_fragment;
        (offset, (message_len - offset).min(max_fragment))
    })
}

/// Seals frames of one direction.
pub struct FrameSealer {
    cipher: SendCipher,
    /// ChaCha20-Poly1305 only: libsodium reads its ciphertext back to compute the
    /// tag, so it must seal into private memory, then copy out. Reused; grows once.
    staging: Vec<u8>,
    closed: bool,
}

impl FrameSealer {
    /// A sealer for the sending key of a connection.
    pub fn new(cipher: SendCipher) -> FrameSealer {
        FrameSealer { cipher, staging: Vec::new(), closed: false }
    }

    /// The suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.cipher.suite()
    }

    #[inline]
    fn check_open(&mut self, header: &FrameHeader, plaintext: &[u8]) -> Result<()> {
        if self.closed {
            return Err(Error::new(ErrorKind::Closed, "this direction was closed; nothing more can be sent"));
        }
        assert_eq!(plaintext.len(), header.frame_len as usize, "plaintext length differs from the header");
        if header.kind == FrameKind::Close {
            self.closed = true;
        }
        Ok(())
    }

    /// Seals one frame into `out`, which must be exactly `header.sealed_len()` bytes.
    #[inline]
    pub fn seal_into(&mut self, header: &FrameHeader, plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        self.check_open(header, plaintext)?;
        assert_eq!(out.len(), header.sealed_len(self.suite()), "output buffer of the wrong length");
        let ad = header.encode();
        let (head, rest) = out.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&ad);
        let (ct, tag) = rest.split_at_mut(plaintext.len());
        self.cipher.seal(&ad, plaintext, ct, tag)
    }

    /// Seals one frame straight into memory that another process may read and
    /// write (a ring in a shared segment).
    ///
    /// AEGIS-128L writes its output once and never reads it back, so it seals in
    /// place with no copy. ChaCha20-Poly1305 seals into a private staging buffer
    /// first and copies the frame out, so a writer racing on the shared bytes cannot
    /// change what the tag covers.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `header.sealed_len()` bytes and must not
    /// overlap `plaintext`. No Rust reference to those bytes may exist.
    pub unsafe fn seal_raw(&mut self, header: &FrameHeader, plaintext: &[u8], dst: *mut u8) -> Result<()> {
        self.check_open(header, plaintext)?;
        let ad = header.encode();
        let len = header.sealed_len(self.suite());
        match self.suite() {
            CipherSuite::Aegis128L => {
                // SAFETY: dst is valid for len = HEADER_LEN + frame_len + 32 bytes,
                // so the three regions written here lie inside it; ad is local.
                unsafe {
                    std::ptr::copy_nonoverlapping(ad.as_ptr(), dst, HEADER_LEN);
                    let ct = dst.add(HEADER_LEN);
                    self.cipher.seal_aegis_raw(&ad, plaintext, ct, ct.add(plaintext.len()))
                }
            }
            CipherSuite::ChaCha20Poly1305 => {
                if self.staging.len() < len {
                    self.staging.resize(len, 0);
                }
                let mut staging = std::mem::take(&mut self.staging);
                self.closed = false; // check_open ran already; seal_into re-checks.
                let sealed = self.seal_into(header, plaintext, &mut staging[..len]);
                if sealed.is_ok() {
                    // SAFETY: staging holds len initialised bytes; dst is valid for
                    // len bytes of writes and is not part of staging.
                    unsafe { std::ptr::copy_nonoverlapping(staging.as_ptr(), dst, len) };
                }
                self.staging = staging;
                sealed
            }
        }
    }

    /// Seals a whole message as frames of at most `max_fragment` plaintext bytes,
    /// into owned buffers (for tests, vectors and tools; the rings seal in place).
    pub fn seal_message(&mut self, message: &[u8], max_fragment: u32) -> Result<Vec<Vec<u8>>> {
        let message_len = u32::try_from(message.len())
            .map_err(|_| Error::new(ErrorKind::MessageTooLarge, "a message is at most 4 GiB - 1"))?;
        fragments(message_len, max_fragment)
            .map(|(offset, len)| {
                let header = FrameHeader::data(len, message_len, offset);
                let mut out = vec![0u8; header.sealed_len(self.suite())];
                let piece = &message[offset as usize..(offset + len) as usize];
                self.seal_into(&header, piece, &mut out)?;
                Ok(out)
            })
            .collect()
    }

    /// Seals the CLOSE frame into an owned buffer.
    pub fn seal_close(&mut self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; FrameHeader::CLOSE.sealed_len(self.suite())];
        self.seal_into(&FrameHeader::CLOSE, &[], &mut out)?;
        Ok(out)
    }
}

/// What an opened frame was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A verified fragment; the message is complete when `last`.
    Fragment {
        /// Plaintext bytes of the whole message.
        message_len: u32,
        /// Where this fragment's plaintext starts.
        offset: u32,
        /// Plaintext bytes in this fragment.
        len: u32,
        /// True for the last fragment of the message.
        last: bool,
    },
    /// The peer closed this direction; nothing follows.
    Close,
}

/// Opens frames of one direction and tracks reassembly.
pub struct FrameOpener {
    cipher: RecvCipher,
    max_message: u32,
    /// `(message_len, next_offset)` while a message is partly received.
    partial: Option<(u32, u32)>,
    closed: bool,
    failed: Option<Error>,
}

impl FrameOpener {
    /// An opener for the receiving key, refusing messages over `max_message` bytes.
    pub fn new(cipher: RecvCipher, max_message: u32) -> FrameOpener {
        FrameOpener { cipher, max_message, partial: None, closed: false, failed: None }
    }

    /// The suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.cipher.suite()
    }

    /// The largest message this side accepts.
    pub fn max_message(&self) -> u32 {
        self.max_message
    }

    /// True while a message is partly reassembled.
    pub fn in_message(&self) -> bool {
        self.partial.is_some()
    }

    fn fail(&mut self, err: Error) -> Error {
        self.failed = Some(err.clone());
        err
    }

    /// Decodes a header read from a private copy and checks it against the
    /// reassembly state and limits, before anything is authenticated, so that the
    /// caller knows how many bytes to copy and how large the message will be.
    /// A failure ends the stream: every later call fails the same way.
    #[inline]
    pub fn check_header(&mut self, bytes: &[u8; HEADER_LEN]) -> Result<FrameHeader> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.closed {
            return Err(self.fail(corrupt("data after the CLOSE frame")));
        }
        let header = FrameHeader::decode(bytes).map_err(|e| self.fail(e))?;
        let ok = match (header.kind, self.partial) {
            (FrameKind::Close, None) => Ok(()),
            (FrameKind::Close, Some(_)) => Err(corrupt("CLOSE in the middle of a message")),
            (FrameKind::Data, None) if header.offset != 0 => Err(corrupt("a message must start at offset 0")),
            (FrameKind::Data, None) if header.message_len > self.max_message => Err(Error::new(
                ErrorKind::ProtocolViolation,
                format!(
                    "the peer sent a message of {} bytes, over the limit of {} bytes it agreed to; the connection is closed",
                    header.message_len, self.max_message
                ),
            )),
            (FrameKind::Data, None) => Ok(()),
            (FrameKind::Data, Some((len, next))) if header.message_len != len || header.offset != next => {
                Err(corrupt("fragment out of sequence"))
            }
            (FrameKind::Data, Some(_)) => Ok(()),
        };
        ok.map_err(|e| self.fail(e))?;
        Ok(header)
    }

    /// Verifies and decrypts one frame. `sealed` is a private copy of the whole
    /// frame whose header `check_header` accepted; the plaintext goes to `out`
    /// (exactly `frame_len` bytes). On failure `out` holds nothing usable and the
    /// stream is over.
    #[inline]
    pub fn open(&mut self, header: &FrameHeader, sealed: &[u8], out: &mut [u8]) -> Result<Opened> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let body_len = header.frame_len as usize;
        assert_eq!(sealed.len(), header.sealed_len(self.suite()), "sealed frame of the wrong length");
        assert_eq!(out.len(), body_len, "output of the wrong length");
        let (ad, rest) = sealed.split_at(HEADER_LEN);
        if ad != header.encode() {
            return Err(self.fail(corrupt("header changed after it was checked")));
        }
        let (ct, tag) = rest.split_at(body_len);
        self.cipher.open(ad, ct, tag, out).map_err(|e| self.fail(e))?;
        Ok(self.opened(header))
    }

    /// Verifies and decrypts one AEGIS-128L frame whose ciphertext stays in
    /// memory another process may write (a ring), so it is read only once, by
    /// libsodium (PROTOCOL.md §10). `ad` is the private copy of the header that
    /// `check_header` parsed; `tag` a private copy of the tag.
    ///
    /// # Safety
    /// The suite must be AEGIS-128L; `ciphertext` must be valid for reads of
    /// `header.frame_len` bytes and must not overlap `out`.
    #[inline]
    pub unsafe fn open_shared(
        &mut self,
        header: &FrameHeader,
        ad: &[u8; HEADER_LEN],
        ciphertext: *const u8,
        tag: &[u8; 32],
        out: &mut [u8],
    ) -> Result<Opened> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        assert_eq!(self.suite(), CipherSuite::Aegis128L, "only AEGIS-128L opens from shared memory");
        assert_eq!(out.len(), header.frame_len as usize, "output of the wrong length");
        if *ad != header.encode() {
            return Err(self.fail(corrupt("header changed after it was checked")));
        }
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.cipher.open_aegis_raw(ad, ciphertext, tag, out) }.map_err(|e| self.fail(e))?;
        Ok(self.opened(header))
    }

    /// Updates the reassembly state after `header`'s frame verified.
    fn opened(&mut self, header: &FrameHeader) -> Opened {
        match header.kind {
            FrameKind::Close => {
                self.closed = true;
                Opened::Close
            }
            FrameKind::Data => {
                let last = header.is_last_fragment();
                self.partial = if last { None } else { Some((header.message_len, header.offset + header.frame_len)) };
                Opened::Fragment { message_len: header.message_len, offset: header.offset, len: header.frame_len, last }
            }
        }
    }
}

/// What a [`MessageReader`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A whole, verified message.
    Message(Vec<u8>),
    /// The peer closed cleanly.
    Close,
}

/// Reassembles whole messages from sealed frames held in private memory (for
/// tests, vectors, fuzzing and tools; the streams reassemble in place).
pub struct MessageReader {
    opener: FrameOpener,
    message: Vec<u8>,
}

impl MessageReader {
    /// A reader over an opener.
    pub fn new(opener: FrameOpener) -> MessageReader {
        MessageReader { opener, message: Vec::new() }
    }

    /// Feeds one sealed frame. Returns a message when its last fragment verified.
    pub fn push(&mut self, sealed: &[u8]) -> Result<Option<Received>> {
        let head: &[u8; HEADER_LEN] = match sealed.get(..HEADER_LEN).and_then(|h| h.try_into().ok()) {
            Some(head) => head,
            // Like any malformed frame, a short one ends the stream for good.
            None => match &self.opener.failed {
                Some(err) => return Err(err.clone()),
                None => return Err(self.opener.fail(corrupt("frame shorter than its header"))),
            },
        };
        let header = self.opener.check_header(head)?;
        if sealed.len() != header.sealed_len(self.opener.suite()) {
            return Err(self.opener.fail(corrupt("frame length differs from its header")));
        }
        if header.offset == 0 {
            self.message.clear();
            self.message.reserve(header.message_len as usize);
        }
        let start = self.message.len();
        self.message.resize(start + header.frame_len as usize, 0);
        match self.opener.open(&header, sealed, &mut self.message[start..])? {
            Opened::Close => Ok(Some(Received::Close)),
            Opened::Fragment { last: true, .. } => Ok(Some(Received::Message(std::mem::take(&mut self.message)))),
            Opened::Fragment { last: false, .. } => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sodium::Secret;

    fn pair(suite: CipherSuite, max_message: u32) -> (FrameSealer, MessageReader) {
        let key = Secret::<32>::random();
        (
            FrameSealer::new(SendCipher::new(suite, key.clone())),
            MessageReader::new(FrameOpener::new(RecvCipher::new(suite, key), max_message)),
        )
    }

    const SUITES: [CipherSuite; 2] = [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L];

    #[test]
    fn header_round_trip_and_rejects() {
        let h = FrameHeader::data(10, 30, 20);
        assert_eq!(FrameHeader::decode(&h.encode()).unwrap(), h);
        assert!(h.is_last_fragment());
        let mut b = h.encode();
        b[0] = 9;
        assert!(FrameHeader::decode(&b).is_err());
        let mut b = h.encode();
        b[1] = 1;
        assert!(FrameHeader::decode(&b).is_err());
        assert!(FrameHeader::decode(&FrameHeader::data(11, 30, 20).encode()).is_err());
        assert!(FrameHeader::decode(&FrameHeader::data(0, 30, 0).encode()).is_err());
        assert!(FrameHeader::decode(
            &FrameHeader { kind: FrameKind::Close, frame_len: 1, message_len: 1, offset: 0 }.encode()
        )
        .is_err());
        assert!(FrameHeader::decode(&FrameHeader::data(u32::MAX, u32::MAX, u32::MAX).encode()).is_err());
    }

    #[test]
    fn fragments_cover_the_message() {
        assert_eq!(fragments(0, 4).collect::<Vec<_>>(), vec![(0, 0)]);
        assert_eq!(fragments(4, 4).collect::<Vec<_>>(), vec![(0, 4)]);
        assert_eq!(fragments(9, 4).collect::<Vec<_>>(), vec![(0, 4), (4, 4), (8, 1)]);
    }

    #[test]
    fn messages_and_close_round_trip() {
        for suite in SUITES {
            let (mut tx, mut rx) = pair(suite, 1 << 20);
            for msg in [vec![], vec![1u8], vec![7u8; 1000]] {
                let frames = tx.seal_message(&msg, 64).unwrap();
                let mut got = None;
                for (i, f) in frames.iter().enumerate() {
                    let r = rx.push(f).unwrap();
                    assert_eq!(r.is_some(), i == frames.len() - 1);
                    got = r;
                }
                assert_eq!(got, Some(Received::Message(msg)));
            }
            let close = tx.seal_close().unwrap();
            assert_eq!(rx.push(&close).unwrap(), Some(Received::Close));
            assert_eq!(tx.seal_message(b"x", 64).unwrap_err().kind(), ErrorKind::Closed);
        }
    }

    #[test]
    fn raw_seal_equals_private_seal() {
        for suite in SUITES {
            let key = Secret::<32>::random();
            let mut a = FrameSealer::new(SendCipher::new(suite, key.clone()));
            let mut b = FrameSealer::new(SendCipher::new(suite, key));
            let h = FrameHeader::data(5, 5, 0);
            let mut out_a = vec![0u8; h.sealed_len(suite)];
            let mut out_b = vec![0u8; h.sealed_len(suite)];
            a.seal_into(&h, b"hello", &mut out_a).unwrap();
            // SAFETY: out_b is a private buffer of the sealed length.
            unsafe { b.seal_raw(&h, b"hello", out_b.as_mut_ptr()).unwrap() };
            assert_eq!(out_a, out_b);
        }
    }

    /// Opening AEGIS-128L frames in place (as from a ring) gives what opening a
    /// private copy gives; a flipped byte anywhere fails and leaves the output zeroed.
    #[test]
    fn shared_open_equals_private_open() {
        let suite = CipherSuite::Aegis128L;
        let key = Secret::<32>::random();
        let mut tx = FrameSealer::new(SendCipher::new(suite, key.clone()));
        let msg: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let frames = tx.seal_message(&msg, 300).unwrap();
        let open_all = |frames: &[Vec<u8>]| -> Result<Vec<u8>> {
            let mut rx = FrameOpener::new(RecvCipher::new(suite, key.clone()), 1 << 20);
            let mut out = Vec::new();
            for f in frames {
                let head: [u8; HEADER_LEN] = f[..HEADER_LEN].try_into().unwrap();
                let header = rx.check_header(&head)?;
                let body = header.frame_len as usize;
                let tag: [u8; 32] = f[HEADER_LEN + body..].try_into().unwrap();
                let mut part = vec![0xAAu8; body];
                // SAFETY: the ciphertext lies inside f, which outlives the call and
                // does not overlap part.
                let r = unsafe { rx.open_shared(&header, &head, f.as_ptr().add(HEADER_LEN), &tag, &mut part) };
                if r.is_err() {
                    assert!(part.iter().all(|&b| b == 0), "a frame that failed left plaintext behind");
                }
                r?;
                out.extend_from_slice(&part);
            }
            Ok(out)
        };
        assert_eq!(open_all(&frames).unwrap(), msg);
        for i in HEADER_LEN..frames[1].len() {
            let mut bad = frames.clone();
            bad[1][i] ^= 1;
            assert_eq!(open_all(&bad).unwrap_err().kind(), ErrorKind::AuthenticationFailed, "byte {i}");
        }
    }

    #[test]
    fn every_tampered_byte_is_caught() {
        for suite in SUITES {
            let key = Secret::<32>::random();
            let mut tx = FrameSealer::new(SendCipher::new(suite, key.clone()));
            let frame = tx.seal_message(b"attack at dawn", 64).unwrap().remove(0);
            for i in 0..frame.len() {
                let mut bad = frame.clone();
                bad[i] ^= 0x40;
                let mut rx = MessageReader::new(FrameOpener::new(RecvCipher::new(suite, key.clone()), 1024));
                assert!(rx.push(&bad).is_err(), "byte {i} flipped went unnoticed");
            }
            let mut rx = MessageReader::new(FrameOpener::new(RecvCipher::new(suite, key.clone()), 1024));
            assert_eq!(rx.push(&frame).unwrap(), Some(Received::Message(b"attack at dawn".to_vec())));
        }
    }

    #[test]
    fn oversize_and_out_of_sequence_are_refused() {
        for suite in SUITES {
            let (mut tx, mut rx) = pair(suite, 10);
            let frames = tx.seal_message(&[0u8; 11], 64).unwrap();
            assert_eq!(rx.push(&frames[0]).unwrap_err().kind(), ErrorKind::ProtocolViolation);
            // the reader stays failed
            assert!(rx.push(&frames[0]).is_err());

            let (mut tx, mut rx) = pair(suite, 100);
            let frames = tx.seal_message(&[0u8; 30], 10).unwrap();
            rx.push(&frames[0]).unwrap();
            assert_eq!(rx.push(&frames[2]).unwrap_err().kind(), ErrorKind::ProtocolViolation);
        }
    }
}
