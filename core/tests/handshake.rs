//! Integration tests of the handshake state machine: a full exchange, every error
//! path, malformed and tampered messages, misuse, and the REJECT reasons.

use shmsock::cipher::{CipherSuite, RecvCipher, SendCipher};
use shmsock::frame::{FrameOpener, FrameSealer, MessageReader, Received};
use shmsock::handshake::{
    negotiate, prologue, AllowedClients, Backend, ClientOffer, Hello, Initiator, RejectReason, Responder, ServerChoice,
    ServerPolicy, Session,
};
use shmsock::{Error, ErrorKind, Keypair, PublicKey};

const ENDPOINT: &str = "test.handshake";
const BOTH: [CipherSuite; 2] = [CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305];

fn offer(ciphers: &[CipherSuite]) -> ClientOffer {
    ClientOffer {
        versions: vec![1],
        ciphers: ciphers.to_vec(),
        max_message: 1 << 20,
        ring_size: 0,
        backends: Backend::Memfd.bit() | Backend::Named.bit(),
    }
}

fn policy(ciphers: &[CipherSuite], allowed: AllowedClients) -> ServerPolicy {
    ServerPolicy {
        versions: vec![1],
        ciphers: ciphers.to_vec(),
        max_message: 2 << 20,
        ring_size: 1 << 16,
        allowed,
        backend: Backend::Memfd,
    }
}

/// What the transport does with a negotiated choice before replying.
fn finish(mut choice: ServerChoice) -> ServerChoice {
    if choice.backend == Backend::Named {
        choice.segment_name = "/shmsock-test-0001".to_string();
    }
    choice
}

fn err<T>(r: Result<T, Error>) -> Error {
    match r {
        Ok(_) => panic!("expected an error, got success"),
        Err(e) => e,
    }
}

fn kp(n: u8) -> Keypair {
    Keypair::from_secret_bytes([n; 32])
}

/// A deterministic exchange: (hello, reply, accepted hello, client session, server session).
fn exchange(
    client: &Keypair,
    server: &Keypair,
    offer: ClientOffer,
    policy: &ServerPolicy,
) -> (Vec<u8>, Vec<u8>, Hello, Session, Session) {
    let mut i = Initiator::with_ephemeral(client, server.public(), ENDPOINT, offer, kp(201)).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::with_ephemeral(server, ENDPOINT, kp(202)).unwrap();
    let accepted = r.read_hello(&hello, policy).unwrap();
    let (reply, server_session) = r.write_reply(&finish(accepted.choice.clone())).unwrap();
    let client_session = match i.read_reply(&reply) {
        Ok(s) => s,
        Err(e) => panic!("read_reply: {e}"),
    };
    (hello, reply, accepted, client_session, server_session)
}

fn seal(tx: &mut SendCipher, ad: &[u8], pt: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut ct = vec![0u8; pt.len()];
    let mut tag = vec![0u8; tx.suite().tag_len()];
    tx.seal(ad, pt, &mut ct, &mut tag).unwrap();
    (ct, tag)
}

fn open(rx: &mut RecvCipher, ad: &[u8], ct: &[u8], tag: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; ct.len()];
    rx.open(ad, ct, tag, &mut out)?;
    Ok(out)
}

/// Seals on one side, opens on the other, both directions, several messages.
fn assert_transport_works(client: &mut Session, server: &mut Session) {
    for round in 0..5u8 {
        let msg = vec![round; round as usize * 17];
        let (ct, tag) = seal(&mut client.send, b"ad", &msg);
        if !msg.is_empty() {
            assert_ne!(ct, msg, "ciphertext is not plaintext");
        }
        assert_eq!(open(&mut server.recv, b"ad", &ct, &tag).unwrap(), msg);
        let (ct, tag) = seal(&mut server.send, b"ad", &msg);
        assert_eq!(open(&mut client.recv, b"ad", &ct, &tag).unwrap(), msg);
    }
}

#[test]
fn full_exchange_agrees_for_every_cipher() {
    let client = Keypair::generate();
    let server = Keypair::generate();
    for (offered, accepted, expect) in [
        (&BOTH[..], &BOTH[..], CipherSuite::Aegis128L),
        (&[CipherSuite::ChaCha20Poly1305][..], &BOTH[..], CipherSuite::ChaCha20Poly1305),
        (&BOTH[..], &[CipherSuite::ChaCha20Poly1305][..], CipherSuite::ChaCha20Poly1305),
        (&[CipherSuite::Aegis128L][..], &[CipherSuite::Aegis128L][..], CipherSuite::Aegis128L),
    ] {
        let mut i = Initiator::new(&client, server.public(), ENDPOINT, offer(offered)).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        let p = policy(accepted, AllowedClients::Only(vec![*client.public()]));
        let h = r.read_hello(&hello, &p).unwrap();
        assert_eq!(h.client, *client.public());
        assert_eq!(h.offer, offer(offered));
        assert_eq!(h.choice.cipher, expect);
        assert_eq!(h.choice.version, 1);
        assert_eq!(h.choice.ring_size, 1 << 16, "the server's ring size when the client asks for none");
        assert_eq!(h.choice.max_message, 2 << 20);
        let choice = finish(h.choice);
        let (reply, mut s) = r.write_reply(&choice).unwrap();
        let mut c = match i.read_reply(&reply) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.handshake_hash, s.handshake_hash);
        assert_ne!(c.handshake_hash, [0u8; 64]);
        assert_eq!(c.peer, *server.public());
        assert_eq!(s.peer, *client.public());
        assert_eq!(c.choice, choice);
        assert_eq!(s.choice, choice);
        assert_eq!(c.offer, s.offer);
        assert_eq!(c.send.suite(), expect);
        assert_eq!(s.recv.suite(), expect);
        assert_transport_works(&mut c, &mut s);

        // A frame sealed for one direction never opens in the other.
        let (ct, tag) = seal(&mut c.send, b"", b"to the server");
        assert_eq!(open(&mut c.recv, b"", &ct, &tag).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
    }
}

#[test]
fn sessions_carry_frames_both_ways() {
    let p = policy(&BOTH, AllowedClients::Any);
    let (_, _, _, c, s) = exchange(&kp(1), &kp(2), offer(&BOTH), &p);
    let (c_max, s_max) = (c.offer.max_message, s.choice.max_message);
    let mut to_server = FrameSealer::new(c.send);
    let mut at_server = MessageReader::new(FrameOpener::new(s.recv, s_max));
    let mut to_client = FrameSealer::new(s.send);
    let mut at_client = MessageReader::new(FrameOpener::new(c.recv, c_max));
    for msg in [b"".to_vec(), b"x".to_vec(), vec![9u8; 5000]] {
        for (tx, rx) in [(&mut to_server, &mut at_server), (&mut to_client, &mut at_client)] {
            let frames = tx.seal_message(&msg, 1024).unwrap();
            let mut last = None;
            for f in &frames {
                last = rx.push(f).unwrap();
            }
            assert_eq!(last, Some(Received::Message(msg.clone())));
        }
    }
    assert_eq!(at_server.push(&to_server.seal_close().unwrap()).unwrap(), Some(Received::Close));
    assert_eq!(at_client.push(&to_client.seal_close().unwrap()).unwrap(), Some(Received::Close));
}

#[test]
fn same_keys_give_the_same_bytes_and_fresh_ephemerals_differ() {
    let p = policy(&BOTH, AllowedClients::Any);
    let (h1, r1, _, c1, _) = exchange(&kp(1), &kp(2), offer(&BOTH), &p);
    let (h2, r2, _, c2, _) = exchange(&kp(1), &kp(2), offer(&BOTH), &p);
    assert_eq!((h1, r1, c1.handshake_hash), (h2, r2, c2.handshake_hash));

    let mut a = Initiator::new(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH)).unwrap();
    let mut b = Initiator::new(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH)).unwrap();
    assert_ne!(a.write_hello().unwrap(), b.write_hello().unwrap(), "each handshake uses a fresh ephemeral key");
}

#[test]
fn hello_and_reply_sizes() {
    let p = policy(&BOTH, AllowedClients::Any);
    let (hello, reply, _, _, _) = exchange(&kp(1), &kp(2), offer(&BOTH), &p);
    let offer_len = offer(&BOTH).encode().len();
    // e (32) + encrypted s (32 + 16) + encrypted payload (len + 16).
    assert_eq!(hello.len(), 32 + 48 + offer_len + 16);
    assert_eq!(&hello[..32], kp(201).public().as_bytes(), "the ephemeral key is sent in clear");
    assert_eq!(reply.len(), 32 + ServerChoice::encode(&finish(negotiate(&offer(&BOTH), &p).unwrap())).len() + 16);
    assert_eq!(&reply[..32], kp(202).public().as_bytes());
    // The static key and the payload travel encrypted.
    let client_pub = kp(1).public().as_bytes().to_vec();
    assert!(!hello.windows(32).any(|w| w == client_pub.as_slice()));
    let encoded = offer(&BOTH).encode();
    assert!(!hello.windows(encoded.len()).any(|w| w == encoded.as_slice()));
}

#[test]
fn wrong_pinned_server_key_is_refused_by_the_responder() {
    let server = kp(2);
    let mut i = Initiator::new(&kp(1), kp(3).public(), ENDPOINT, offer(&BOTH)).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    let e = err(r.read_hello(&hello, &policy(&BOTH, AllowedClients::Any)));
    assert_eq!(e.kind(), ErrorKind::ServerKeyMismatch, "{e}");
    assert_eq!(RejectReason::for_error(e.kind()), RejectReason::WrongServerKey);
    // The responder is spent: it cannot reply.
    assert_eq!(
        err(r.write_reply(&finish(negotiate(&offer(&BOTH), &policy(&BOTH, AllowedClients::Any)).unwrap()))).kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn impostor_reply_is_refused_by_the_initiator() {
    let client = kp(1);
    let server = kp(2);
    let impostor = kp(3);
    let p = policy(&BOTH, AllowedClients::Any);

    // The impostor cannot read the hello meant for the real server...
    let mut i = Initiator::with_ephemeral(&client, server.public(), ENDPOINT, offer(&BOTH), kp(201)).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::with_ephemeral(&impostor, ENDPOINT, kp(202)).unwrap();
    assert_eq!(err(r.read_hello(&hello, &p)).kind(), ErrorKind::ServerKeyMismatch);

    // ...and its best effort, a genuine reply to the same client keys pinned to the
    // impostor (same ephemerals on both sides), does not decrypt.
    let mut j = Initiator::with_ephemeral(&client, impostor.public(), ENDPOINT, offer(&BOTH), kp(201)).unwrap();
    let hello_to_impostor = j.write_hello().unwrap();
    let mut r = Responder::with_ephemeral(&impostor, ENDPOINT, kp(202)).unwrap();
    let h = r.read_hello(&hello_to_impostor, &p).unwrap();
    let (impostor_reply, _) = r.write_reply(&finish(h.choice)).unwrap();
    let e = err(i.read_reply(&impostor_reply));
    assert_eq!(e.kind(), ErrorKind::ServerKeyMismatch, "{e}");
    assert!(e.message().contains(ENDPOINT), "{e}");

    // A reply from the real server to another handshake (a replayed reply) fails too.
    let (_, old_reply, _, _, _) = exchange(&client, &server, offer(&BOTH), &p);
    let mut k = Initiator::new(&client, server.public(), ENDPOINT, offer(&BOTH)).unwrap();
    k.write_hello().unwrap();
    assert_eq!(err(k.read_reply(&old_reply)).kind(), ErrorKind::ServerKeyMismatch);
}

#[test]
fn endpoint_name_mismatch_is_a_key_mismatch() {
    let server = kp(2);
    let mut i = Initiator::new(&kp(1), server.public(), "endpoint-a", offer(&BOTH)).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&server, "endpoint-b").unwrap();
    let e = err(r.read_hello(&hello, &policy(&BOTH, AllowedClients::Any)));
    assert_eq!(e.kind(), ErrorKind::ServerKeyMismatch, "{e}");
    assert_ne!(prologue("endpoint-a").unwrap(), prologue("endpoint-b").unwrap());
}

#[test]
fn invalid_endpoint_names_are_refused() {
    for bad in ["", ".", "..", "a/b", "a b", "ünï", &"x".repeat(101), "a\0b"] {
        assert_eq!(err(prologue(bad)).kind(), ErrorKind::InvalidName, "{bad:?}");
        assert_eq!(err(Initiator::new(&kp(1), kp(2).public(), bad, offer(&BOTH))).kind(), ErrorKind::InvalidName);
        assert_eq!(err(Responder::new(&kp(2), bad)).kind(), ErrorKind::InvalidName);
    }
    for good in ["a", "A-z_0.9", &"x".repeat(100), "..."] {
        let p = prologue(good).unwrap();
        assert_eq!(&p[..7], b"shmsock");
        assert_eq!(&p[7..9], &1u16.to_le_bytes());
        assert_eq!(p[9] as usize, good.len());
        assert_eq!(&p[10..], good.as_bytes());
    }
}

#[test]
fn client_not_on_the_allow_list_is_rejected() {
    let client = kp(1);
    let server = kp(2);
    let mut i = Initiator::new(&client, server.public(), ENDPOINT, offer(&BOTH)).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    let only_others = policy(&BOTH, AllowedClients::Only(vec![*kp(3).public(), *kp(4).public()]));
    let e = err(r.read_hello(&hello, &only_others));
    assert_eq!(e.kind(), ErrorKind::HandshakeRejected, "{e}");
    assert!(e.message().contains(&client.public().to_text()), "the message names the refused key: {e}");
    assert_eq!(RejectReason::for_error(e.kind()), RejectReason::ClientNotAllowed);
    // No reply, no session, for a rejected client.
    let any_choice = finish(negotiate(&offer(&BOTH), &only_others).unwrap());
    assert_eq!(err(r.write_reply(&any_choice)).kind(), ErrorKind::InvalidArgument);

    // An empty allow-list refuses everyone; the same hello passes a list holding the key.
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    assert_eq!(
        err(r.read_hello(&hello, &policy(&BOTH, AllowedClients::Only(vec![])))).kind(),
        ErrorKind::HandshakeRejected
    );
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    let listed = policy(&BOTH, AllowedClients::Only(vec![*kp(3).public(), *client.public()]));
    assert_eq!(r.read_hello(&hello, &listed).unwrap().client, *client.public());
    assert!(AllowedClients::Any.allows(kp(9).public()));
}

#[test]
fn no_common_version() {
    let server = kp(2);
    for (client_versions, server_versions) in [(vec![2u16], vec![1u16]), (vec![1], vec![2, 3]), (vec![7, 8], vec![1])] {
        let o = ClientOffer { versions: client_versions, ..offer(&BOTH) };
        let mut i = Initiator::new(&kp(1), server.public(), ENDPOINT, o).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        let p = ServerPolicy { versions: server_versions, ..policy(&BOTH, AllowedClients::Any) };
        let e = err(r.read_hello(&hello, &p));
        assert_eq!(e.kind(), ErrorKind::ProtocolVersion, "{e}");
        assert_eq!(RejectReason::for_error(e.kind()), RejectReason::NoCommonVersion);
    }
    // The highest common version wins.
    let o = ClientOffer { versions: vec![1, 3, 2], ..offer(&BOTH) };
    let p = ServerPolicy { versions: vec![2, 1], ..policy(&BOTH, AllowedClients::Any) };
    assert_eq!(negotiate(&o, &p).unwrap().version, 2);
}

#[test]
fn no_common_cipher() {
    let server = kp(2);
    let mut i = Initiator::new(&kp(1), server.public(), ENDPOINT, offer(&[CipherSuite::Aegis128L])).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    let e = err(r.read_hello(&hello, &policy(&[CipherSuite::ChaCha20Poly1305], AllowedClients::Any)));
    assert_eq!(e.kind(), ErrorKind::NoCommonCipher, "{e}");
    assert_eq!(RejectReason::for_error(e.kind()), RejectReason::NoCommonCipher);
    // An offer with no cipher at all is malformed.
    let mut i = Initiator::new(&kp(1), server.public(), ENDPOINT, offer(&[])).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    assert_eq!(err(r.read_hello(&hello, &policy(&BOTH, AllowedClients::Any))).kind(), ErrorKind::ProtocolViolation);
}

#[test]
fn bad_ring_size_or_backend_in_an_authentic_hello_is_malformed() {
    let server = kp(2);
    for o in [
        ClientOffer { ring_size: 5000, ..offer(&BOTH) },
        ClientOffer { ring_size: 1024, ..offer(&BOTH) },
        ClientOffer { backends: 0, ..offer(&BOTH) },
        ClientOffer { versions: vec![], ..offer(&BOTH) },
        ClientOffer { versions: vec![1; 17], ..offer(&BOTH) },
    ] {
        let mut i = Initiator::new(&kp(1), server.public(), ENDPOINT, o.clone()).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        let e = err(r.read_hello(&hello, &policy(&BOTH, AllowedClients::Any)));
        assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{o:?}: {e}");
    }
}

#[test]
fn the_server_caps_the_ring_size_a_client_asks_for() {
    let server = kp(2);
    let p = policy(&BOTH, AllowedClients::Any);
    for (asked, got) in [(1u32 << 31, p.ring_size), (1 << 30, p.ring_size), (4096, 4096), (0, p.ring_size)] {
        let mut i = Initiator::new(&kp(1), server.public(), ENDPOINT, ClientOffer { ring_size: asked, ..offer(&BOTH) })
            .unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        assert_eq!(r.read_hello(&hello, &p).unwrap().choice.ring_size, got, "asked for {asked}");
    }
}

#[test]
fn bad_choice_in_an_authentic_reply_is_malformed() {
    let client = kp(1);
    let server = kp(2);
    let p = policy(&BOTH, AllowedClients::Any);
    let o = ClientOffer { backends: Backend::Memfd.bit(), ..offer(&[CipherSuite::ChaCha20Poly1305]) };
    let good = ServerChoice {
        version: 1,
        cipher: CipherSuite::ChaCha20Poly1305,
        max_message: 1 << 20,
        ring_size: 1 << 16,
        backend: Backend::Memfd,
        segment_name: String::new(),
    };
    let cases = [
        ServerChoice { version: 2, ..good.clone() },
        ServerChoice { cipher: CipherSuite::Aegis128L, ..good.clone() },
        ServerChoice { ring_size: 1000, ..good.clone() },
        ServerChoice { ring_size: 0, ..good.clone() },
        ServerChoice { backend: Backend::Named, segment_name: "/ok-name".into(), ..good.clone() },
        ServerChoice { segment_name: "/memfd-has-no-name".into(), ..good.clone() },
    ];
    for choice in cases {
        let mut i = Initiator::new(&client, server.public(), ENDPOINT, o.clone()).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        r.read_hello(&hello, &p).unwrap();
        let (reply, _) = r.write_reply(&choice).unwrap();
        let e = err(i.read_reply(&reply));
        assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{choice:?}: {e}");
    }
    // A client that asked for small rings refuses larger ones.
    let small = ClientOffer { ring_size: 1 << 12, ..o.clone() };
    {
        let choice = good.clone();
        let mut i = Initiator::new(&client, server.public(), ENDPOINT, small.clone()).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        r.read_hello(&hello, &p).unwrap();
        let (reply, _) = r.write_reply(&choice).unwrap();
        let e = err(i.read_reply(&reply));
        assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{choice:?}: {e}");
    }
    // Named segment names are checked too.
    let named = ClientOffer { backends: Backend::Named.bit(), ..o.clone() };
    for name in ["", "no-slash", "/", "/has space", "/this-name-is-far-too-long-for-macos"] {
        let mut i = Initiator::new(&client, server.public(), ENDPOINT, named.clone()).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, ENDPOINT).unwrap();
        r.read_hello(&hello, &p).unwrap();
        let choice = ServerChoice { backend: Backend::Named, segment_name: name.into(), ..good.clone() };
        let (reply, _) = r.write_reply(&choice).unwrap();
        assert_eq!(err(i.read_reply(&reply)).kind(), ErrorKind::ProtocolViolation, "{name:?}");
    }
    // And the good choice passes.
    let mut i = Initiator::new(&client, server.public(), ENDPOINT, o.clone()).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&server, ENDPOINT).unwrap();
    r.read_hello(&hello, &p).unwrap();
    let (reply, _) = r.write_reply(&good).unwrap();
    assert!(i.read_reply(&reply).is_ok());
}

fn fixed_hello() -> (Vec<u8>, ServerPolicy) {
    let mut i = Initiator::with_ephemeral(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH), kp(201)).unwrap();
    (i.write_hello().unwrap(), policy(&BOTH, AllowedClients::Any))
}

fn read_hello(bytes: &[u8], p: &ServerPolicy) -> Result<Hello, Error> {
    Responder::with_ephemeral(&kp(2), ENDPOINT, kp(202)).unwrap().read_hello(bytes, p)
}

/// A fresh initiator that wrote the fixed hello, and the genuine reply to it.
fn fixed_reply() -> (Initiator, Vec<u8>) {
    let (hello, p) = fixed_hello();
    let mut r = Responder::with_ephemeral(&kp(2), ENDPOINT, kp(202)).unwrap();
    let h = r.read_hello(&hello, &p).unwrap();
    let (reply, _) = r.write_reply(&finish(h.choice)).unwrap();
    (initiator_after_hello(), reply)
}

fn initiator_after_hello() -> Initiator {
    let mut i = Initiator::with_ephemeral(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH), kp(201)).unwrap();
    i.write_hello().unwrap();
    i
}

#[test]
fn truncated_and_oversized_hellos_are_malformed() {
    let (hello, p) = fixed_hello();
    assert!(read_hello(&hello, &p).is_ok());
    for len in 0..hello.len() {
        let e = err(read_hello(&hello[..len], &p));
        assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "hello cut to {len} bytes: {e}");
    }
    for extra in [1usize, 16, 65535] {
        let mut long = hello.clone();
        long.resize(hello.len() + extra, 0);
        let e = err(read_hello(&long, &p));
        assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "hello with {extra} extra bytes: {e}");
    }
}

#[test]
fn garbage_hellos_fail_cleanly() {
    let (_, p) = fixed_hello();
    // Deterministic pseudo-random garbage of many lengths.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    for len in (0..300).chain([65535, 65536, 70000]) {
        let garbage: Vec<u8> = (0..len).map(|_| next()).collect();
        let e = err(read_hello(&garbage, &p));
        // Garbage cannot be told apart from a hello encrypted to another key.
        assert!(
            matches!(e.kind(), ErrorKind::ProtocolViolation | ErrorKind::ServerKeyMismatch),
            "garbage of {len} bytes: {e}"
        );
        if !(96..=65535).contains(&len) {
            assert_eq!(e.kind(), ErrorKind::ProtocolViolation);
        }
    }
    // A low-order ephemeral key (all zeros) is refused as malformed.
    let (mut hello, _) = fixed_hello();
    hello[..32].fill(0);
    assert_eq!(err(read_hello(&hello, &p)).kind(), ErrorKind::ProtocolViolation);
}

#[test]
fn every_tampered_hello_byte_fails() {
    let (hello, p) = fixed_hello();
    for i in 0..hello.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = hello.clone();
            bad[i] ^= mask;
            let e = err(read_hello(&bad, &p));
            // e and the encrypted static key: the key check fails; the payload: malformed.
            let expected = if i < 80 { ErrorKind::ServerKeyMismatch } else { ErrorKind::ProtocolViolation };
            assert!(e.kind() == expected || e.kind() == ErrorKind::ProtocolViolation, "byte {i} ^ {mask:#x}: {e}");
        }
    }
}

#[test]
fn truncated_oversized_and_garbage_replies_fail_cleanly() {
    let (i, reply) = fixed_reply();
    assert!(i.read_reply(&reply).is_ok());
    for len in 0..reply.len() {
        let e = err(initiator_after_hello().read_reply(&reply[..len]));
        if len < 48 {
            assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "reply cut to {len} bytes: {e}");
        } else {
            // The payload's tag is cut: the reply does not decrypt.
            assert!(matches!(e.kind(), ErrorKind::ProtocolViolation | ErrorKind::ServerKeyMismatch), "{len}: {e}");
        }
    }
    for extra in [1usize, 65535] {
        let mut long = reply.clone();
        long.resize(reply.len() + extra, 0xaa);
        let e = err(initiator_after_hello().read_reply(&long));
        assert!(matches!(e.kind(), ErrorKind::ProtocolViolation | ErrorKind::ServerKeyMismatch), "{e}");
        if long.len() > 65535 {
            assert_eq!(e.kind(), ErrorKind::ProtocolViolation);
        }
    }
    for len in [0usize, 1, 47, 48, 49, 64, 100, 1000] {
        let garbage: Vec<u8> = (0..len).map(|n| (n * 31 + 7) as u8).collect();
        let e = err(initiator_after_hello().read_reply(&garbage));
        assert!(matches!(e.kind(), ErrorKind::ProtocolViolation | ErrorKind::ServerKeyMismatch), "{len}: {e}");
    }
    let mut low_order = reply.clone();
    low_order[..32].fill(0);
    assert_eq!(err(initiator_after_hello().read_reply(&low_order)).kind(), ErrorKind::ProtocolViolation);
}

#[test]
fn every_tampered_reply_byte_fails() {
    let (_, reply) = fixed_reply();
    for i in 0..reply.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = reply.clone();
            bad[i] ^= mask;
            let e = err(initiator_after_hello().read_reply(&bad));
            assert!(
                matches!(e.kind(), ErrorKind::ServerKeyMismatch | ErrorKind::ProtocolViolation),
                "byte {i} ^ {mask:#x}: {e}"
            );
        }
    }
}

#[test]
fn methods_in_the_wrong_order_fail() {
    let p = policy(&BOTH, AllowedClients::Any);
    // Initiator: reply before hello; hello twice.
    let i = Initiator::new(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH)).unwrap();
    let e = err(i.read_reply(&[0u8; 64]));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let mut i = Initiator::new(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH)).unwrap();
    let hello = i.write_hello().unwrap();
    assert_eq!(err(i.write_hello()).kind(), ErrorKind::InvalidArgument);

    // Responder: reply before hello; hello twice (even the same one).
    let choice = finish(negotiate(&offer(&BOTH), &p).unwrap());
    let r = Responder::new(&kp(2), ENDPOINT).unwrap();
    assert_eq!(err(r.write_reply(&choice)).kind(), ErrorKind::InvalidArgument);
    let mut r = Responder::new(&kp(2), ENDPOINT).unwrap();
    r.read_hello(&hello, &p).unwrap();
    assert_eq!(err(r.read_hello(&hello, &p)).kind(), ErrorKind::InvalidArgument);
    // The first hello still stands: the reply completes the handshake.
    let (reply, mut s) = r.write_reply(&choice).unwrap();
    let mut c = match i.read_reply(&reply) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_transport_works(&mut c, &mut s);

    // A responder whose hello failed is spent: a good hello afterwards is refused.
    let mut r = Responder::new(&kp(2), ENDPOINT).unwrap();
    assert!(r.read_hello(&[0u8; 200], &p).is_err());
    let mut i = Initiator::new(&kp(1), kp(2).public(), ENDPOINT, offer(&BOTH)).unwrap();
    let hello = i.write_hello().unwrap();
    assert_eq!(err(r.read_hello(&hello, &p)).kind(), ErrorKind::InvalidArgument);
    assert_eq!(err(r.write_reply(&choice)).kind(), ErrorKind::InvalidArgument);

    // A responder that refused the offer (after authenticating it) cannot reply.
    let mut i = Initiator::new(&kp(1), kp(2).public(), ENDPOINT, offer(&[CipherSuite::ChaCha20Poly1305])).unwrap();
    let hello = i.write_hello().unwrap();
    let mut r = Responder::new(&kp(2), ENDPOINT).unwrap();
    let aegis_only = policy(&[CipherSuite::Aegis128L], AllowedClients::Any);
    assert_eq!(err(r.read_hello(&hello, &aegis_only)).kind(), ErrorKind::NoCommonCipher);
    assert_eq!(err(r.write_reply(&choice)).kind(), ErrorKind::InvalidArgument);
}

#[test]
fn reject_reasons_round_trip() {
    let all = [
        RejectReason::WrongServerKey,
        RejectReason::ClientNotAllowed,
        RejectReason::NoCommonVersion,
        RejectReason::NoCommonCipher,
        RejectReason::Malformed,
        RejectReason::UidNotAllowed,
        RejectReason::ServerError,
    ];
    for (n, reason) in all.iter().enumerate() {
        assert_eq!(*reason as u16, n as u16 + 1, "wire codes are 1..=7 in order");
        assert_eq!(RejectReason::from_code(*reason as u16), Some(*reason));
    }
    for code in [0u16, 8, 9, 100, u16::MAX] {
        assert_eq!(RejectReason::from_code(code), None);
    }
    let expected_kind = [
        (RejectReason::WrongServerKey, ErrorKind::ServerKeyMismatch),
        (RejectReason::ClientNotAllowed, ErrorKind::HandshakeRejected),
        (RejectReason::NoCommonVersion, ErrorKind::ProtocolVersion),
        (RejectReason::NoCommonCipher, ErrorKind::NoCommonCipher),
        (RejectReason::Malformed, ErrorKind::ProtocolViolation),
        (RejectReason::UidNotAllowed, ErrorKind::HandshakeRejected),
        (RejectReason::ServerError, ErrorKind::ResourceExhausted),
    ];
    for (reason, kind) in expected_kind {
        let e = reason.to_error("my-endpoint", "");
        assert_eq!(e.kind(), kind, "{reason:?}");
        assert!(e.message().contains("'my-endpoint'"), "{e}");
        assert!(!e.message().contains("server says"), "{e}");
        let e = reason.to_error("my-endpoint", "try later");
        assert!(e.message().contains("(server says: try later)"), "{e}");
        // The client's error maps back to the reason, except that both uid and key
        // refusals read as HandshakeRejected, which maps to ClientNotAllowed.
        let back = RejectReason::for_error(e.kind());
        if reason == RejectReason::UidNotAllowed {
            assert_eq!(back, RejectReason::ClientNotAllowed);
        } else {
            assert_eq!(back, reason, "{reason:?} -> {kind:?} -> {back:?}");
        }
    }
    // Every read_hello failure kind has a reason; the rest are server errors.
    assert_eq!(RejectReason::for_error(ErrorKind::PermissionDenied), RejectReason::UidNotAllowed);
    assert_eq!(RejectReason::for_error(ErrorKind::AuthenticationFailed), RejectReason::Malformed);
    assert_eq!(RejectReason::for_error(ErrorKind::InvalidKey), RejectReason::Malformed);
    for kind in [ErrorKind::Io, ErrorKind::Timeout, ErrorKind::ResourceExhausted, ErrorKind::InvalidArgument] {
        assert_eq!(RejectReason::for_error(kind), RejectReason::ServerError, "{kind:?}");
    }
}

#[test]
fn offer_and_choice_encodings_round_trip() {
    let o = ClientOffer {
        versions: vec![1, 2, 300],
        ciphers: BOTH.to_vec(),
        max_message: 0xdead_beef,
        ring_size: 4096,
        backends: 3,
    };
    let bytes = o.encode();
    assert_eq!(
        bytes,
        [&[3u8, 1, 0, 2, 0, 0x2c, 1, 2, 2, 1][..], &0xdead_beefu32.to_le_bytes(), &4096u32.to_le_bytes(), &[3]]
            .concat()
    );
    assert_eq!(ClientOffer::decode(&bytes).unwrap(), o);
    // Unknown cipher ids are skipped, so later versions can offer more.
    let mut with_unknown = bytes.clone();
    with_unknown[8] = 9; // first cipher id (after 1 + 3 * 2 version bytes and the count)
    assert_eq!(ClientOffer::decode(&with_unknown).unwrap().ciphers, vec![CipherSuite::ChaCha20Poly1305]);
    // Trailing bytes are refused.
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(err(ClientOffer::decode(&trailing)).kind(), ErrorKind::ProtocolViolation);

    let c = ServerChoice {
        version: 1,
        cipher: CipherSuite::Aegis128L,
        max_message: 77,
        ring_size: 1 << 20,
        backend: Backend::Named,
        segment_name: "/seg.1_x-Y".into(),
    };
    let bytes = c.encode();
    assert_eq!(bytes.len(), 2 + 1 + 4 + 4 + 1 + 1 + c.segment_name.len());
    let o = ClientOffer {
        versions: vec![1],
        ciphers: BOTH.to_vec(),
        max_message: 0,
        ring_size: 0,
        backends: Backend::Named.bit(),
    };
    assert_eq!(ServerChoice::decode(&bytes, &o).unwrap(), c);
    for cut in 0..bytes.len() {
        assert_eq!(err(ServerChoice::decode(&bytes[..cut], &o)).kind(), ErrorKind::ProtocolViolation);
    }
}

#[test]
fn public_keys_from_the_handshake_are_usable() {
    let p = policy(&BOTH, AllowedClients::Any);
    let (_, _, hello, c, s) = exchange(&kp(1), &kp(2), offer(&BOTH), &p);
    assert_eq!(PublicKey::from_text(&s.peer.to_text()).unwrap(), *kp(1).public());
    assert_eq!(hello.client.fingerprint(), kp(1).public().fingerprint());
    assert_eq!(c.peer.fingerprint(), kp(2).public().fingerprint());
}
