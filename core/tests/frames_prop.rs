//! Property tests of frames, fragmentation and reassembly, and of the decoders
//! that face untrusted bytes (handshake payloads and messages).
//!
//! Every property runs 256 cases from a fixed seed, so the suite is deterministic
//! and fast; set PROPTEST_CASES to run more locally.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use shmsock::cipher::CipherSuite;
use shmsock::frame::{
    fragments, FrameHeader, FrameKind, FrameOpener, FrameSealer, MessageReader, Received, HEADER_LEN,
};
use shmsock::handshake::{AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerChoice, ServerPolicy};
use shmsock::{ErrorKind, Keypair};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    Config { cases, rng_seed: RngSeed::Fixed(0x5348_4d53_4f43_4b21), failure_persistence: None, ..Config::default() }
}

const SUITES: [CipherSuite; 2] = [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L];
const MAX_MESSAGE: u32 = 1 << 16;

fn suite() -> impl Strategy<Value = CipherSuite> {
    prop::sample::select(SUITES.to_vec())
}

fn kp(n: u8) -> Keypair {
    Keypair::from_secret_bytes([n; 32])
}

fn offer(suite: CipherSuite) -> ClientOffer {
    ClientOffer {
        versions: vec![1],
        ciphers: vec![suite],
        max_message: MAX_MESSAGE,
        ring_size: 0,
        backends: Backend::Memfd.bit(),
    }
}

fn policy() -> ServerPolicy {
    ServerPolicy {
        versions: vec![1],
        ciphers: SUITES.to_vec(),
        max_message: MAX_MESSAGE,
        ring_size: 1 << 16,
        allowed: AllowedClients::Any,
        backend: Backend::Memfd,
    }
}

fn choice(suite: CipherSuite) -> ServerChoice {
    ServerChoice {
        version: 1,
        cipher: suite,
        max_message: MAX_MESSAGE,
        ring_size: 1 << 16,
        backend: Backend::Memfd,
        segment_name: String::new(),
    }
}

/// The client-to-server sealer and the server's reader of a handshake with fixed
/// keys (so every case is reproducible).
fn pair(suite: CipherSuite) -> (FrameSealer, MessageReader) {
    let mut i = Initiator::with_ephemeral(&kp(1), kp(2).public(), "prop", offer(suite), kp(3)).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::with_ephemeral(&kp(2), "prop", kp(4)).unwrap();
    r.read_hello(&hello, &policy()).unwrap();
    let (reply, server) = r.write_reply(&choice(suite)).unwrap();
    let client = match i.read_reply(&reply) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    (FrameSealer::new(client.send), MessageReader::new(FrameOpener::new(server.recv, MAX_MESSAGE)))
}

fn valid_hello() -> Vec<u8> {
    let mut i =
        Initiator::with_ephemeral(&kp(1), kp(2).public(), "prop", offer(CipherSuite::ChaCha20Poly1305), kp(3)).unwrap();
    i.write_hello().unwrap()
}

/// What FrameHeader::decode must accept, written independently.
fn header_is_valid(kind: u8, frame_len: u32, message_len: u32, offset: u32) -> bool {
    match kind {
        1 => u64::from(offset) + u64::from(frame_len) <= u64::from(message_len) && (frame_len > 0 || message_len == 0),
        2 => frame_len == 0 && message_len == 0 && offset == 0,
        _ => false,
    }
}

fn expected_frame_count(len: usize, frag: u32) -> usize {
    let frag = frag.max(1) as usize;
    if len == 0 {
        1
    } else {
        len.div_ceil(frag)
    }
}

/// A stream of sealed frames for `messages`, and the frame index where each
/// message completes.
fn seal_stream(sealer: &mut FrameSealer, messages: &[Vec<u8>], frag: u32, close: bool) -> (Vec<Vec<u8>>, Vec<usize>) {
    let mut frames = Vec::new();
    let mut ends = Vec::new();
    for m in messages {
        frames.extend(sealer.seal_message(m, frag).unwrap());
        ends.push(frames.len() - 1);
    }
    if close {
        frames.push(sealer.seal_close().unwrap());
    }
    (frames, ends)
}

/// One way to damage a stream of frames.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR one byte (index modulo the frame length) with a nonzero mask.
    Flip { frame: usize, byte: usize, mask: u8 },
    /// Keep only the first `keep` bytes (modulo the frame length).
    Truncate { frame: usize, keep: usize },
    /// Append bytes.
    Extend { frame: usize, extra: Vec<u8> },
    /// Put another frame of the stream in this frame's place (replay, reorder).
    Replace { frame: usize, with: usize },
    /// Leave the frame out.
    Drop { frame: usize },
    /// Swap the frame with the next one.
    Swap { frame: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(frame, byte, mask)| Mutation::Flip {
            frame,
            byte,
            mask
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(frame, keep)| Mutation::Truncate { frame, keep }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(frame, extra)| Mutation::Extend { frame, extra }),
        (any::<usize>(), any::<usize>()).prop_map(|(frame, with)| Mutation::Replace { frame, with }),
        any::<usize>().prop_map(|frame| Mutation::Drop { frame }),
        any::<usize>().prop_map(|frame| Mutation::Swap { frame }),
    ]
}

/// Applies a mutation; returns the damaged stream and the first index that
/// differs from the original (None if nothing changed).
fn apply(frames: &[Vec<u8>], m: &Mutation) -> (Vec<Vec<u8>>, Option<usize>) {
    let n = frames.len();
    let mut out = frames.to_vec();
    let first = match *m {
        Mutation::Flip { frame, byte, mask } => {
            let f = frame % n;
            let b = byte % out[f].len();
            out[f][b] ^= mask;
            Some(f)
        }
        Mutation::Truncate { frame, keep } => {
            let f = frame % n;
            let keep = keep % out[f].len();
            out[f].truncate(keep);
            Some(f)
        }
        Mutation::Extend { frame, ref extra } => {
            let f = frame % n;
            out[f].extend_from_slice(extra);
            Some(f)
        }
        Mutation::Replace { frame, with } => {
            let (f, w) = (frame % n, with % n);
            if f == w {
                None
            } else {
                out[f] = frames[w].clone();
                Some(f)
            }
        }
        Mutation::Drop { frame } => {
            let f = frame % n;
            out.remove(f);
            if f < out.len() {
                Some(f)
            } else {
                // The last frame dropped: what remains is a valid prefix.
                None
            }
        }
        Mutation::Swap { frame } => {
            if n < 2 {
                None
            } else {
                let f = frame % (n - 1);
                out.swap(f, f + 1);
                Some(f)
            }
        }
    };
    (out, first)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn header_round_trip(frame_len in any::<u32>(), message_len in any::<u32>(), offset in any::<u32>(), close in any::<bool>()) {
        let h = if close {
            FrameHeader { kind: FrameKind::Close, frame_len, message_len, offset }
        } else {
            FrameHeader::data(frame_len, message_len, offset)
        };
        let bytes = h.encode();
        prop_assert_eq!(bytes[0], if close { 2 } else { 1 });
        prop_assert_eq!(&bytes[1..4], &[0u8, 0, 0][..]);
        prop_assert_eq!(&bytes[4..8], &frame_len.to_le_bytes()[..]);
        prop_assert_eq!(&bytes[8..12], &message_len.to_le_bytes()[..]);
        prop_assert_eq!(&bytes[12..16], &offset.to_le_bytes()[..]);
        let valid = header_is_valid(bytes[0], frame_len, message_len, offset);
        match FrameHeader::decode(&bytes) {
            Ok(d) => {
                prop_assert!(valid);
                prop_assert_eq!(d, h);
            }
            Err(e) => {
                prop_assert!(!valid);
                prop_assert_eq!(e.kind(), ErrorKind::ProtocolViolation);
            }
        }
    }

    #[test]
    fn valid_data_headers_round_trip(message_len in 0u32..=u32::MAX, a in any::<u32>(), b in any::<u32>()) {
        // Any fragment inside any message.
        let offset = if message_len == 0 { 0 } else { a % message_len };
        let room = message_len - offset;
        let frame_len = if room == 0 { 0 } else { 1 + b % room };
        let h = FrameHeader::data(frame_len, message_len, offset);
        prop_assert_eq!(FrameHeader::decode(&h.encode()).unwrap(), h);
        prop_assert_eq!(h.is_last_fragment(), offset + frame_len == message_len);
    }

    #[test]
    fn header_decode_never_panics(bytes in any::<[u8; 16]>()) {
        let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let valid = bytes[1..4] == [0, 0, 0] && header_is_valid(bytes[0], word(4), word(8), word(12));
        match FrameHeader::decode(&bytes) {
            // A header has one encoding: decoding then encoding gives the same bytes.
            Ok(h) => {
                prop_assert!(valid);
                prop_assert_eq!(h.encode(), bytes);
            }
            Err(e) => {
                prop_assert!(!valid);
                prop_assert_eq!(e.kind(), ErrorKind::ProtocolViolation);
            }
        }
    }

    #[test]
    fn fragments_match_the_model(len in 0u32..100_000, frag in 0u32..5000) {
        let cuts: Vec<(u32, u32)> = fragments(len, frag).collect();
        prop_assert_eq!(cuts.len(), expected_frame_count(len as usize, frag));
        let mut next = 0u32;
        for (i, &(offset, piece)) in cuts.iter().enumerate() {
            prop_assert_eq!(offset, next);
            prop_assert!(piece <= frag.max(1));
            prop_assert!(piece > 0 || len == 0);
            if i + 1 < cuts.len() {
                prop_assert_eq!(piece, frag.max(1), "only the last fragment is short");
            }
            next += piece;
        }
        prop_assert_eq!(next, len);
    }

    #[test]
    fn fragment_and_reassemble(
        suite in suite(),
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..5),
        frag in 1u32..700,
    ) {
        let (mut tx, mut rx) = pair(suite);
        for m in &messages {
            let frames = tx.seal_message(m, frag).unwrap();
            prop_assert_eq!(frames.len(), expected_frame_count(m.len(), frag));
            let mut concatenated = Vec::new();
            let mut got = None;
            for (i, f) in frames.iter().enumerate() {
                let head: [u8; HEADER_LEN] = f[..HEADER_LEN].try_into().unwrap();
                let h = FrameHeader::decode(&head).unwrap();
                prop_assert_eq!(h.kind, FrameKind::Data);
                prop_assert_eq!(h.message_len as usize, m.len());
                prop_assert_eq!(h.offset as usize, concatenated.len());
                prop_assert_eq!(f.len(), HEADER_LEN + h.frame_len as usize + suite.tag_len());
                concatenated.extend_from_slice(&m[h.offset as usize..(h.offset + h.frame_len) as usize]);
                let r = rx.push(f).unwrap();
                prop_assert_eq!(r.is_some(), i + 1 == frames.len(), "a message only when its last fragment verified");
                got = r;
            }
            prop_assert_eq!(&concatenated, m);
            prop_assert_eq!(got, Some(Received::Message(m.clone())));
        }
        prop_assert_eq!(rx.push(&tx.seal_close().unwrap()).unwrap(), Some(Received::Close));
    }

    #[test]
    fn garbage_frames_never_deliver(
        suite in suite(),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8),
    ) {
        let (_, mut rx) = pair(suite);
        for f in &frames {
            // Nothing sealed under the key: every push fails, nothing is delivered.
            prop_assert!(rx.push(f).is_err());
        }
    }

    #[test]
    fn well_formed_forgeries_never_deliver(
        suite in suite(),
        forged in prop::collection::vec((any::<u32>(), any::<u32>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)), 1..6),
    ) {
        // Headers that pass every check, with the right length, and random bodies.
        let (_, mut rx) = pair(suite);
        for (a, b, close, fill) in &forged {
            let h = if *close {
                FrameHeader::CLOSE
            } else {
                let message_len = a % 4096;
                let frame_len = if message_len == 0 { 0 } else { 1 + b % message_len };
                FrameHeader::data(frame_len, message_len, 0)
            };
            let mut f = h.encode().to_vec();
            let body = h.frame_len as usize + suite.tag_len();
            f.extend((0..body).map(|i| fill.get(i % fill.len().max(1)).copied().unwrap_or(0)));
            let e = rx.push(&f).unwrap_err();
            prop_assert!(matches!(e.kind(), ErrorKind::AuthenticationFailed | ErrorKind::ProtocolViolation));
        }
    }

    #[test]
    fn mutated_streams_never_deliver_wrong_messages(
        suite in suite(),
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..4),
        frag in 1u32..80,
        close in any::<bool>(),
        m in mutation(),
    ) {
        let (mut tx, mut rx) = pair(suite);
        let (frames, _) = seal_stream(&mut tx, &messages, frag, close);
        let (damaged, first_changed) = apply(&frames, &m);
        let mut delivered = Vec::new();
        let mut failed_at = None;
        for (i, f) in damaged.iter().enumerate() {
            match rx.push(f) {
                Ok(Some(Received::Message(msg))) => {
                    prop_assert!(failed_at.is_none(), "a message after a failure");
                    delivered.push(msg);
                }
                Ok(Some(Received::Close)) => {
                    prop_assert!(failed_at.is_none());
                    prop_assert!(close, "a CLOSE that was never sent");
                    prop_assert_eq!(i, frames.len() - 1, "CLOSE only as the last frame");
                }
                Ok(None) => prop_assert!(failed_at.is_none(), "a fragment accepted after a failure"),
                Err(e) => {
                    prop_assert!(matches!(e.kind(), ErrorKind::AuthenticationFailed | ErrorKind::ProtocolViolation), "{}", e);
                    failed_at.get_or_insert(i);
                }
            }
        }
        // Only whole, genuine messages, in order.
        prop_assert!(delivered.len() <= messages.len());
        prop_assert_eq!(&delivered[..], &messages[..delivered.len()]);
        match first_changed {
            // The first damaged frame is refused (nothing before it is).
            Some(i) => prop_assert_eq!(failed_at, Some(i), "{:?}", m),
            None => prop_assert_eq!(failed_at, None),
        }
        if failed_at.is_some() {
            // The stream is over: even the genuine frames are refused now.
            for f in &frames {
                prop_assert!(rx.push(f).is_err(), "the reader must stay failed after {:?}", m);
            }
        }
    }

    #[test]
    fn client_offer_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(offer) = ClientOffer::decode(&bytes) {
            prop_assert!(!offer.versions.is_empty() && offer.versions.len() <= 16);
            prop_assert_eq!(ClientOffer::decode(&offer.encode()).unwrap(), offer);
        }
    }

    #[test]
    fn client_offer_round_trips(
        versions in prop::collection::vec(any::<u16>(), 1..=16),
        ciphers in prop::collection::vec(suite(), 1..=16),
        max_message in any::<u32>(),
        ring_size in any::<u32>(),
        backends in any::<u8>(),
    ) {
        let offer = ClientOffer { versions, ciphers, max_message, ring_size, backends };
        prop_assert_eq!(ClientOffer::decode(&offer.encode()).unwrap(), offer);
    }

    #[test]
    fn server_choice_decode_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..80),
        ciphers in prop::collection::vec(suite(), 0..3),
        backends in any::<u8>(),
    ) {
        let offer = ClientOffer { versions: vec![1, 2], ciphers, max_message: 0, ring_size: 0, backends };
        if let Ok(choice) = ServerChoice::decode(&bytes, &offer) {
            prop_assert!(offer.versions.contains(&choice.version));
            prop_assert!(offer.ciphers.contains(&choice.cipher));
            prop_assert!(offer.backends & choice.backend.bit() != 0);
            prop_assert_eq!(choice.encode(), bytes.clone());
            prop_assert_eq!(ServerChoice::decode(&choice.encode(), &offer).unwrap(), choice);
        }
    }

    #[test]
    fn read_hello_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut r = Responder::with_ephemeral(&kp(2), "prop", kp(4)).unwrap();
        let e = r.read_hello(&bytes, &policy()).unwrap_err();
        prop_assert!(matches!(e.kind(), ErrorKind::ProtocolViolation | ErrorKind::ServerKeyMismatch), "{}", e);
        // Afterwards the responder either is spent, or (when the hello was refused
        // on its length alone, before any state changed) still reads a good hello.
        match r.read_hello(&valid_hello(), &policy()) {
            Ok(h) => {
                prop_assert!(bytes.len() < 96, "a responder that mixed a bad hello accepted another");
                prop_assert_eq!(h.client, *kp(1).public());
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument),
        }
    }

    #[test]
    fn read_hello_never_panics_on_damaged_hellos(
        index in any::<usize>(),
        mask in 1u8..=255,
        cut in any::<usize>(),
        extra in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        let hello = valid_hello();
        let mut damaged = hello.clone();
        damaged[index % hello.len()] ^= mask;
        let mut r = Responder::with_ephemeral(&kp(2), "prop", kp(4)).unwrap();
        prop_assert!(r.read_hello(&damaged, &policy()).is_err());

        let mut cut_or_longer = hello[..cut % hello.len()].to_vec();
        if cut % 2 == 0 {
            cut_or_longer = hello.clone();
            cut_or_longer.extend_from_slice(&extra);
        }
        let mut r = Responder::with_ephemeral(&kp(2), "prop", kp(4)).unwrap();
        let result = r.read_hello(&cut_or_longer, &policy());
        prop_assert_eq!(result.is_ok(), cut_or_longer == hello);
    }

    #[test]
    fn read_reply_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut i = Initiator::with_ephemeral(&kp(1), kp(2).public(), "prop", offer(CipherSuite::ChaCha20Poly1305), kp(3)).unwrap();
        i.write_hello().unwrap();
        let e = match i.read_reply(&bytes) {
            Ok(_) => panic!("garbage reply accepted"),
            Err(e) => e,
        };
        prop_assert!(matches!(e.kind(), ErrorKind::ProtocolViolation | ErrorKind::ServerKeyMismatch), "{}", e);
    }
}
