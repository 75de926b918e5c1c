//! In-process access to a stream's receive path for the fuzz targets (only with
//! the `fuzzing` feature, which core/fuzz enables; never in a normal build).
//!
//! [`stream_with_hostile_peer`] builds a real server-side [`Stream`] over a
//! fresh memfd segment, as after a handshake that agreed on the all-zero
//! transport key, and hands the caller a second mapping of that segment: the
//! caller plays a hostile client that may write anything into the ring the
//! stream receives from (its counters, waiting flags, PAD records, frame
//! headers and ciphertext) between the stream's receive calls.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use crate::cipher::{CipherSuite, RecvCipher, SendCipher};
use crate::error::{Error, Result};
use crate::handshake::{Backend, ClientOffer, ServerChoice, Session};
use crate::keys::PublicKey;
use crate::options::Options;
use crate::platform::{Credentials, OwnWake};
use crate::segment::{self, Segment};
use crate::sodium::Secret;
use crate::stream::{Role, Stream};

/// Bytes of the ring control block the peer may write (tail, head, flags).
pub const CONTROL_LEN: usize = 0x200;

/// The client side of a [`stream_with_hostile_peer`]: a second mapping of the
/// stream's segment, and the ends of the stream's control socket and wake-up
/// descriptor (kept open, so the stream sees a live peer).
pub struct HostilePeer {
    segment: Segment,
    ring_size: u32,
    _control: UnixStream,
    _wake: OwnWake,
}

impl HostilePeer {
    /// Length of the writable region: the control block of the client-to-server
    /// ring, then its data area.
    pub fn region_len(&self) -> usize {
        CONTROL_LEN + self.ring_size as usize
    }

    /// Writes `bytes` at `offset` of the region (cut at its end): offsets below
    /// [`CONTROL_LEN`] fall in the control block (`segment::TAIL`, `HEAD`, the
    /// waiting flags), the rest in the data area.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        let offset = offset.min(self.region_len());
        let len = bytes.len().min(self.region_len() - offset);
        let base = if offset < CONTROL_LEN {
            segment::ring_control_offset(segment::CLIENT_TO_SERVER) + offset
        } else {
            segment::ring_data_offset(segment::CLIENT_TO_SERVER, self.ring_size) + offset - CONTROL_LEN
        };
        // Both parts are contiguous in the segment only piecewise: split a write
        // that crosses from the control block into the data area.
        let in_control = if offset < CONTROL_LEN { len.min(CONTROL_LEN - offset) } else { 0 };
        let _ = self.segment.write_bytes(base, &bytes[..in_control]);
        if in_control < len {
            let data = segment::ring_data_offset(segment::CLIENT_TO_SERVER, self.ring_size)
                + (offset + in_control - CONTROL_LEN);
            let _ = self.segment.write_bytes(data, &bytes[in_control..len]);
        }
    }
}

/// A server-side stream receiving frames sealed with the all-zero key of
/// `suite` (nonces from 0, as `FrameSealer::new(SendCipher::new(suite,
/// Secret::zero()))` seals them), accepting messages up to `max_message`
/// bytes, over a ring of `ring_size` bytes (a power of two, at least 4096).
pub fn stream_with_hostile_peer(suite: CipherSuite, ring_size: u32, max_message: u32) -> Result<(Stream, HostilePeer)> {
    let own = Segment::create(Backend::Memfd, ring_size)?;
    let fd: OwnedFd = own
        .memfd()
        .ok_or_else(|| Error::new(crate::ErrorKind::Io, "a memfd segment has a memfd"))?
        .try_clone_to_owned()
        .map_err(|e| Error::io("duplicating the memfd", e))?;
    let peer_mapping = Segment::open_memfd(fd, ring_size)?;
    let (control, peer_control) = UnixStream::pair().map_err(|e| Error::io("creating a socket pair", e))?;
    let peer_wake = OwnWake::new()?;
    let peer_wake_fd = peer_wake.for_peer().try_clone_to_owned().map_err(|e| Error::io("duplicating an fd", e))?;
    let choice = ServerChoice {
        version: 1,
        cipher: suite,
        max_message,
        ring_size,
        backend: Backend::Memfd,
        segment_name: String::new(),
    };
    let offer =
        ClientOffer { versions: vec![1], ciphers: vec![suite], max_message, ring_size, backends: Backend::Memfd.bit() };
    let session = Session {
        send: SendCipher::new(suite, Secret::zero()),
        recv: RecvCipher::new(suite, Secret::zero()),
        handshake_hash: [0; crate::kdf::HASHLEN],
        peer: PublicKey::from_bytes([0; 32]),
        offer,
        choice,
    };
    let stream = Stream::establish(
        control,
        (OwnWake::new()?, peer_wake_fd),
        own,
        session,
        Role::Server,
        &Options::default(),
        Credentials { pid: 0, uid: 0, gid: 0 },
        "fuzz.endpoint",
        PublicKey::from_bytes([0; 32]),
    )?;
    let peer = HostilePeer { segment: peer_mapping, ring_size, _control: peer_control, _wake: peer_wake };
    Ok((stream, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameSealer, HEADER_LEN};
    use crate::ring::record_len;
    use crate::ErrorKind;

    #[test]
    fn a_frame_written_by_the_hostile_peer_is_received() {
        let suite = CipherSuite::ChaCha20Poly1305;
        let (stream, peer) = stream_with_hostile_peer(suite, 4096, 1 << 16).unwrap();
        assert_eq!(stream.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
        let mut sealer = FrameSealer::new(SendCipher::new(suite, Secret::zero()));
        let frames = sealer.seal_message(b"hostile", 1024).unwrap();
        let mut at = CONTROL_LEN;
        for f in &frames {
            peer.write(at, f);
            at += record_len(f.len()) as usize;
        }
        peer.write(segment::TAIL, &((at - CONTROL_LEN) as u64).to_le_bytes());
        assert_eq!(stream.try_recv().unwrap(), b"hostile");
        // A forged frame ends the connection.
        peer.write(at, &[1u8; HEADER_LEN + 32]);
        peer.write(segment::TAIL, &((at - CONTROL_LEN + 64) as u64).to_le_bytes());
        assert!(stream.try_recv().is_err());
        assert!(stream.try_recv().is_err());
    }
}
