//! Fixed inputs shared by the fuzz targets and the seed generator, so that the
//! committed seeds (a valid hello, a valid reply, valid frames) stay valid for the
//! targets that read them.
//!
//! Every key here is fixed and public: these are test fixtures, never identities.

use shmsock::cipher::{RecvCipher, SendCipher};
use shmsock::frame::{FrameOpener, FrameSealer, MessageReader};
use shmsock::handshake::{AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerPolicy};
use shmsock::sodium::Secret;
use shmsock::{CipherSuite, Keypair};

/// The endpoint name bound into the prologue.
pub const ENDPOINT: &str = "fuzz.endpoint";
/// The largest message the frame target's reader accepts (keeps the reader's
/// pre-authentication reservation small).
pub const MAX_MESSAGE: u32 = 1 << 20;

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
