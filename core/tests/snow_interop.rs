//! Cross-checks the handshake against `snow`, an independent implementation of
//! Noise: byte-identical messages with fixed keys, the same handshake hash and
//! Split() keys, transport messages in both directions, and full handshakes of
//! ours against snow's with random keys, in both roles.

use shmsock::cipher::{CipherSuite, RecvCipher, SendCipher};
use shmsock::handshake::{
    prologue, AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerChoice, ServerPolicy, Session,
};
use shmsock::sodium::Aead;
use shmsock::{Error, Keypair};
use snow::{Builder, HandshakeState, TransportState};

const NOISE: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2b";
const ENDPOINT: &str = "snow.interop";

fn params() -> snow::params::NoiseParams {
    NOISE.parse().unwrap()
}

fn offer(ciphers: &[CipherSuite]) -> ClientOffer {
    ClientOffer {
        versions: vec![1],
        ciphers: ciphers.to_vec(),
        max_message: 65536,
        ring_size: 0,
        backends: Backend::Memfd.bit(),
    }
}

fn policy() -> ServerPolicy {
    ServerPolicy {
        versions: vec![1],
        ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
        max_message: 65536,
        ring_size: 1 << 16,
        allowed: AllowedClients::Any,
        backend: Backend::Memfd,
    }
}

fn choice(cipher: CipherSuite) -> ServerChoice {
    ServerChoice {
        version: 1,
        cipher,
        max_message: 65536,
        ring_size: 1 << 16,
        backend: Backend::Memfd,
        segment_name: String::new(),
    }
}

fn session(r: Result<Session, Error>) -> Session {
    match r {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn snow_initiator(local: &Keypair, server: &[u8], ephemeral: Option<&Keypair>) -> HandshakeState {
    let p = prologue(ENDPOINT).unwrap();
    let mut b = Builder::new(params())
        .local_private_key(local.secret_bytes())
        .unwrap()
        .remote_public_key(server)
        .unwrap()
        .prologue(&p)
        .unwrap();
    if let Some(e) = ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e.secret_bytes());
    }
    b.build_initiator().unwrap()
}

fn snow_responder(local: &Keypair, ephemeral: Option<&Keypair>) -> HandshakeState {
    let p = prologue(ENDPOINT).unwrap();
    let mut b = Builder::new(params()).local_private_key(local.secret_bytes()).unwrap().prologue(&p).unwrap();
    if let Some(e) = ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e.secret_bytes());
    }
    b.build_responder().unwrap()
}

fn write(hs: &mut HandshakeState, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 65535];
    let n = hs.write_message(payload, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn read(hs: &mut HandshakeState, msg: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 65535];
    let n = hs.read_message(msg, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn snow_seal(t: &mut TransportState, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + 16];
    let n = t.write_message(payload, &mut buf).unwrap();
    assert_eq!(n, payload.len() + 16);
    buf
}

fn snow_open(t: &mut TransportState, msg: &[u8]) -> Result<Vec<u8>, snow::Error> {
    let mut buf = vec![0u8; msg.len()];
    let n = t.read_message(msg, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Snow's transport messages are ciphertext || tag with empty associated data and
/// nonces 0, 1, ...: exactly our ChaCha20-Poly1305 transport without a header.
fn our_seal(tx: &mut SendCipher, payload: &[u8]) -> Vec<u8> {
    let mut ct = vec![0u8; payload.len()];
    let mut tag = vec![0u8; tx.suite().tag_len()];
    tx.seal(&[], payload, &mut ct, &mut tag).unwrap();
    ct.extend_from_slice(&tag);
    ct
}

fn our_open(rx: &mut RecvCipher, msg: &[u8]) -> Result<Vec<u8>, Error> {
    let (ct, tag) = msg.split_at(msg.len() - 16);
    let mut out = vec![0u8; ct.len()];
    rx.open(&[], ct, tag, &mut out)?;
    Ok(out)
}

/// Transport both ways between our session and snow's transport state.
fn check_transport(ours: &mut Session, theirs: &mut TransportState) {
    assert_eq!(ours.send.suite(), CipherSuite::ChaCha20Poly1305);
    for n in 0..20usize {
        let payload: Vec<u8> = (0..n * 13).map(|i| (i * n) as u8).collect();
        let from_snow = snow_seal(theirs, &payload);
        assert_eq!(our_open(&mut ours.recv, &from_snow).unwrap(), payload, "snow -> us, nonce {n}");
        let from_us = our_seal(&mut ours.send, &payload);
        assert_eq!(snow_open(theirs, &from_us).unwrap(), payload, "us -> snow, nonce {n}");
    }
    // A replayed message fails on both sides.
    let m = snow_seal(theirs, b"once");
    our_open(&mut ours.recv, &m).unwrap();
    assert!(our_open(&mut ours.recv, &m).is_err());
    let m = our_seal(&mut ours.send, b"once");
    snow_open(theirs, &m).unwrap();
    assert!(snow_open(theirs, &m).is_err());
}

#[test]
fn fixed_keys_give_byte_identical_messages_hash_and_keys() {
    for cipher in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
        let client = Keypair::from_secret_bytes([0x11; 32]);
        let client_e = Keypair::from_secret_bytes([0x22; 32]);
        let server = Keypair::from_secret_bytes([0x33; 32]);
        let server_e = Keypair::from_secret_bytes([0x44; 32]);
        let o = offer(&[CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305]);
        let c = choice(cipher);

        let mut ours_i =
            Initiator::with_ephemeral(&client, server.public(), ENDPOINT, o.clone(), client_e.clone()).unwrap();
        let mut snow_i = snow_initiator(&client, server.public().as_bytes(), Some(&client_e));
        let hello = ours_i.write_hello().unwrap();
        assert_eq!(hello, write(&mut snow_i, &o.encode()), "message 1");

        let mut ours_r = Responder::with_ephemeral(&server, ENDPOINT, server_e.clone()).unwrap();
        let mut snow_r = snow_responder(&server, Some(&server_e));
        ours_r.read_hello(&hello, &policy()).unwrap();
        assert_eq!(read(&mut snow_r, &hello), o.encode());
        assert_eq!(snow_r.get_remote_static().unwrap(), client.public().as_bytes());
        let (reply, mut ours_server) = ours_r.write_reply(&c).unwrap();
        assert_eq!(reply, write(&mut snow_r, &c.encode()), "message 2");

        let mut ours_client = session(ours_i.read_reply(&reply));
        assert_eq!(read(&mut snow_i, &reply), c.encode());
        assert_eq!(&ours_client.handshake_hash[..], snow_i.get_handshake_hash());
        assert_eq!(&ours_server.handshake_hash[..], snow_r.get_handshake_hash());

        let (k_i2r, k_r2i) = snow_i.dangerously_get_raw_split();
        assert_eq!((k_i2r, k_r2i), snow_r.dangerously_get_raw_split());
        match cipher {
            CipherSuite::ChaCha20Poly1305 => {
                // Snow's transport messages, both ways, open with our session ciphers.
                let mut snow_client = snow_i.into_transport_mode().unwrap();
                let mut snow_server = snow_r.into_transport_mode().unwrap();
                check_transport(&mut ours_server, &mut snow_client);
                check_transport(&mut ours_client, &mut snow_server);
            }
            CipherSuite::Aegis128L => {
                // Snow has no AEGIS-128L: seal with the bare AEAD under the first 16
                // bytes of snow's Split() keys and open with our session ciphers.
                for (key, rx) in [(k_i2r, &mut ours_server.recv), (k_r2i, &mut ours_client.recv)] {
                    let mut short_key = [0u8; 32];
                    short_key[..16].copy_from_slice(&key[..16]);
                    let mut ct = vec![0u8; 5];
                    let mut tag = vec![0u8; 32];
                    Aead::Aegis128L.seal(&short_key, 0, b"ad", b"hello", &mut ct, &mut tag);
                    let mut out = vec![0u8; 5];
                    rx.open(b"ad", &ct, &tag, &mut out).unwrap();
                    assert_eq!(out, b"hello");
                }
            }
        }
    }
}

#[test]
fn our_initiator_against_a_snow_responder() {
    for _ in 0..8 {
        let client = Keypair::generate();
        let server = Keypair::generate();
        let o = offer(&[CipherSuite::ChaCha20Poly1305]);
        let mut ours = Initiator::new(&client, server.public(), ENDPOINT, o.clone()).unwrap();
        let mut theirs = snow_responder(&server, None);
        let hello = ours.write_hello().unwrap();
        let payload = read(&mut theirs, &hello);
        assert_eq!(ClientOffer::decode(&payload).unwrap(), o);
        assert_eq!(theirs.get_remote_static().unwrap(), client.public().as_bytes());
        let reply = write(&mut theirs, &choice(CipherSuite::ChaCha20Poly1305).encode());
        let mut s = session(ours.read_reply(&reply));
        assert_eq!(s.choice, choice(CipherSuite::ChaCha20Poly1305));
        assert_eq!(&s.handshake_hash[..], theirs.get_handshake_hash());
        let mut t = theirs.into_transport_mode().unwrap();
        check_transport(&mut s, &mut t);
    }
}

#[test]
fn snow_initiator_against_our_responder() {
    for _ in 0..8 {
        let client = Keypair::generate();
        let server = Keypair::generate();
        let o = offer(&[CipherSuite::ChaCha20Poly1305]);
        let mut theirs = snow_initiator(&client, server.public().as_bytes(), None);
        let mut ours = Responder::new(&server, ENDPOINT).unwrap();
        let hello = write(&mut theirs, &o.encode());
        let accepted = ours.read_hello(&hello, &policy()).unwrap();
        assert_eq!(accepted.client, *client.public());
        assert_eq!(accepted.offer, o);
        assert_eq!(accepted.choice.cipher, CipherSuite::ChaCha20Poly1305);
        let (reply, mut s) = ours.write_reply(&accepted.choice).unwrap();
        assert_eq!(read(&mut theirs, &reply), accepted.choice.encode());
        assert_eq!(&s.handshake_hash[..], theirs.get_handshake_hash());
        let mut t = theirs.into_transport_mode().unwrap();
        check_transport(&mut s, &mut t);
    }
}

#[test]
fn snow_refuses_what_we_refuse() {
    // A snow initiator that pinned another key is refused by our responder, and a
    // snow responder holding another key cannot even read our hello.
    let client = Keypair::generate();
    let server = Keypair::generate();
    let other = Keypair::generate();
    let mut theirs = snow_initiator(&client, other.public().as_bytes(), None);
    let hello = write(&mut theirs, &offer(&[CipherSuite::ChaCha20Poly1305]).encode());
    let mut ours = Responder::new(&server, ENDPOINT).unwrap();
    let e = ours.read_hello(&hello, &policy()).unwrap_err();
    assert_eq!(e.kind(), shmsock::ErrorKind::ServerKeyMismatch);

    let mut ours = Initiator::new(&client, server.public(), ENDPOINT, offer(&[CipherSuite::ChaCha20Poly1305])).unwrap();
    let hello = ours.write_hello().unwrap();
    let mut theirs = snow_responder(&other, None);
    let mut buf = vec![0u8; 65535];
    assert!(theirs.read_message(&hello, &mut buf).is_err());
}
