//! Arbitrary bytes as a handshake message, on both sides:
//! - as a hello (Noise message 1) to a server with a fixed keypair and policy;
//! - as a reply (Noise message 2) to a client that wrote its hello.
//!
//! Neither may panic, hang or allocate without bound, whatever the bytes. The
//! seeds hold a valid hello and a valid reply for the fixed keys, so the fuzzer
//! starts past the AEAD checks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shmsock::handshake::RejectReason;
use shmsock_fuzz as fx;

fuzz_target!(|data: &[u8]| {
    // Server side.
    let mut responder = fx::responder();
    match responder.read_hello(data, &fx::policy()) {
        Ok(hello) => {
            assert_eq!(hello.client, *fx::client_static().public());
            let (reply, session) = responder.write_reply(&hello.choice).expect("reply to an accepted hello");
            assert!(!reply.is_empty());
            assert_eq!(session.peer, hello.client);
        }
        Err(e) => {
            // Every failure maps to a reason the server can send.
            let _ = RejectReason::for_error(e.kind());
        }
    }

    // Client side.
    let mut initiator = fx::initiator(fx::offer());
    initiator.write_hello().expect("fixed hello");
    if let Ok(session) = initiator.read_reply(data) {
        // Whatever the server chose, it is something we offered.
        let offer = fx::offer();
        assert!(offer.versions.contains(&session.choice.version));
        assert!(offer.ciphers.contains(&session.choice.cipher));
        assert!(offer.backends & session.choice.backend.bit() != 0);
    }
});
