//! Arbitrary bytes as a stream of sealed frames, and as handshake payloads.
//!
//! Input: one configuration byte (bit 0: 0 = ChaCha20-Poly1305, 1 = AEGIS-128L),
//! then frames, each preceded by its length as u16le. The frames go to a
//! `MessageReader` keyed with the fixed (all-zero) key, as a receiver would see
//! them in shared memory written by a hostile peer. The bytes after the
//! configuration byte are also decoded as a `ClientOffer` and a `ServerChoice`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shmsock::frame::Received;
use shmsock::handshake::{ClientOffer, ServerChoice};
use shmsock_fuzz as fx;

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else { return };

    let mut reader = fx::reader(fx::suite_of(config));
    let mut closed = false;
    for frame in fx::split_frames(rest) {
        match reader.push(frame) {
            Ok(Some(Received::Message(m))) => {
                assert!(!closed, "a message was delivered after CLOSE");
                assert!(m.len() <= fx::MAX_MESSAGE as usize, "a message over the limit was delivered");
            }
            Ok(Some(Received::Close)) => {
                assert!(!closed, "CLOSE was delivered twice");
                closed = true;
            }
            Ok(None) => assert!(!closed, "a fragment was accepted after CLOSE"),
            Err(_) => {}
        }
    }

    if let Ok(offer) = ClientOffer::decode(rest) {
        assert!((1..=16).contains(&offer.versions.len()));
        if !offer.ciphers.is_empty() {
            assert_eq!(ClientOffer::decode(&offer.encode()).as_ref(), Ok(&offer));
        }
    }
    if let Ok(choice) = ServerChoice::decode(rest, &fx::offer()) {
        // The reply payload has one encoding: decoding then encoding gives it back.
        assert_eq!(choice.encode(), rest);
    }
});
