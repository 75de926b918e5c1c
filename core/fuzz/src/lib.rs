//! Fixed inputs shared by the fuzz targets and the seed generator, so that the
//! committed seeds (a valid hello, a valid reply, valid frames) stay valid for the
//! targets that read them.
//!
//! Every key here is fixed and public: these are test fixtures, never identities.

mod topic;

pub use topic::{decode_topic_ops, encode_topic_ops, replay_topic, TopicOp};

use shmsock::cipher::{RecvCipher, SendCipher};
use shmsock::frame::{FrameOpener, FrameSealer, MessageReader};
use shmsock::fuzzing::stream_with_hostile_peer;
use shmsock::handshake::{AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerPolicy};
use shmsock::sodium::Secret;
use shmsock::{CipherSuite, ErrorKind, Keypair};

/// The endpoint name bound into the prologue.
pub const ENDPOINT: &str = "fuzz.endpoint";
/// The largest message the frame target's reader accepts (keeps the reader's
/// pre-authentication reservation small).
pub const MAX_MESSAGE: u32 = 1 << 20;

/// The ring size of the receive_path target's stream (the smallest allowed, so
/// inputs reach the wrap-around and PAD records quickly).
pub const RING_SIZE: u32 = 4096;

/// The server's static keypair.
pub fn server_static() -> Keypair {
    Keypair::from_secret_bytes([0x11; 32])
}
/// The client's static keypair.
pub fn client_static() -> Keypair {
    Keypair::from_secret_bytes([0x22; 32])
}
/// The client's ephemeral keypair (fixed so a committed reply seed decrypts).
pub fn client_ephemeral() -> Keypair {
    Keypair::from_secret_bytes([0x33; 32])
}
/// The server's ephemeral keypair.
pub fn server_ephemeral() -> Keypair {
    Keypair::from_secret_bytes([0x44; 32])
}

/// What the fuzzed client offers: both ciphers, both backends, server picks the ring.
pub fn offer() -> ClientOffer {
    ClientOffer {
        versions: vec![1],
        ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
        max_message: MAX_MESSAGE,
        ring_size: 0,
        backends: Backend::Memfd.bit() | Backend::Named.bit(),
    }
}

/// The fuzzed server's policy: only the fixed client key may connect.
pub fn policy() -> ServerPolicy {
    ServerPolicy {
        versions: vec![1],
        ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
        max_message: MAX_MESSAGE,
        ring_size: 1 << 16,
        allowed: AllowedClients::Only(vec![*client_static().public()]),
        backend: Backend::Memfd,
    }
}

/// A client that has not written its hello yet.
pub fn initiator(offer: ClientOffer) -> Initiator {
    Initiator::with_ephemeral(&client_static(), server_static().public(), ENDPOINT, offer, client_ephemeral())
        .expect("fixed initiator")
}

/// A server that has not read a hello yet.
pub fn responder() -> Responder {
    Responder::with_ephemeral(&server_static(), ENDPOINT, server_ephemeral()).expect("fixed responder")
}

/// The suite selected by the first byte of a frame-target input.
pub fn suite_of(config: u8) -> CipherSuite {
    if config & 1 == 0 {
        CipherSuite::ChaCha20Poly1305
    } else {
        CipherSuite::Aegis128L
    }
}

/// A sealer with the fixed frame key (all zeros) of `suite`.
pub fn sealer(suite: CipherSuite) -> FrameSealer {
    FrameSealer::new(SendCipher::new(suite, Secret::zero()))
}

/// A reader with the fixed frame key (all zeros) of `suite`.
pub fn reader(suite: CipherSuite) -> MessageReader {
    MessageReader::new(FrameOpener::new(RecvCipher::new(suite, Secret::zero()), MAX_MESSAGE))
}

/// Splits the rest of a frame-target input into frames, each preceded by its
/// length as u16le. A truncated last frame is passed as it is.
pub fn split_frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while data.len() >= 2 {
        let len = u16::from_le_bytes([data[0], data[1]]) as usize;
        data = &data[2..];
        let take = len.min(data.len());
        frames.push(&data[..take]);
        data = &data[take..];
    }
    frames
}

/// The inverse of [`split_frames`].
pub fn join_frames(config: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![config];
    for f in frames {
        out.extend_from_slice(&(f.len() as u16).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Encodes one receive_path write: u16le offset, u8 length, the bytes.
pub fn write_op(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = (offset as u16).to_le_bytes().to_vec();
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
    out
}

/// Splits a receive_path input (after its configuration byte) into writes: each
/// a u16le offset, a u8 length and that many bytes (a truncated last write keeps
/// what is there).
pub fn split_writes(mut data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut writes = Vec::new();
    while data.len() >= 3 {
        let offset = u16::from_le_bytes([data[0], data[1]]) as usize;
        let len = data[2] as usize;
        data = &data[3..];
        let take = len.min(data.len());
        writes.push((offset, &data[..take]));
        data = &data[take..];
    }
    writes
}

/// Runs a receive_path input (see fuzz_targets/receive_path.rs) and returns the
/// messages the stream delivered, asserting what must hold whatever the input.
pub fn replay_receive(data: &[u8]) -> Vec<Vec<u8>> {
    let Some((&config, rest)) = data.split_first() else { return Vec::new() };
    let (stream, peer) = stream_with_hostile_peer(suite_of(config), RING_SIZE, MAX_MESSAGE).expect("a stream to fuzz");
    let mut delivered = Vec::new();
    let mut ended = false;
    for (offset, bytes) in split_writes(rest) {
        peer.write(offset % peer.region_len(), bytes);
        // A bounded number of receives per write: each either delivers a
        // message, which takes at least one frame of the 4 KiB ring, or stops.
        for _ in 0..64 {
            match stream.try_recv() {
                Ok(message) => {
                    assert!(!ended, "a message was delivered after the stream failed or closed");
                    assert!(message.len() <= MAX_MESSAGE as usize, "a message over the limit was delivered");
                    delivered.push(message);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(!ended, "a failed or closed stream said WouldBlock: {e}");
                    break;
                }
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
    }
    delivered
}
