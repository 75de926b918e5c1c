//! The test-vector generator, shared by `core/examples/gen_vectors.rs` (which writes
//! `tests/vectors/*.json`) and `core/tests/vectors.rs` (which checks that the files
//! on disk are exactly what this code produces, besides checking every vector
//! independently).
//!
//! Every input is fixed: static and ephemeral secrets are the first 32 bytes of
//! BLAKE2b-512("shmsock test vector secret: " || label), payloads and messages are
//! written out below. The format is documented in `tests/vectors/README.md`.

#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use shmsock::cipher::CipherSuite;
use shmsock::frame::{FrameHeader, FrameSealer, HEADER_LEN};
use shmsock::handshake::{
    prologue, AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerChoice, ServerPolicy, Session,
};
use shmsock::{ErrorKind, Keypair, PublicKey};

/// Lowercase hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase or uppercase hex; panics on malformed input (test code).
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd-length hex string {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {text:?}")))
        .collect()
}

/// The fixed secret of a label.
pub fn fixed_secret(label: &str) -> [u8; 32] {
    let digest = shmsock::kdf::hash(&[b"shmsock test vector secret: ", label.as_bytes()]);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

/// The keypair of a label.
pub fn fixed_keypair(label: &str) -> Keypair {
    Keypair::from_secret_bytes(fixed_secret(label))
}

pub const LABEL_INITIATOR_STATIC: &str = "initiator static";
pub const LABEL_INITIATOR_EPHEMERAL: &str = "initiator ephemeral";
pub const LABEL_RESPONDER_STATIC: &str = "responder static";
pub const LABEL_RESPONDER_EPHEMERAL: &str = "responder ephemeral";
pub const LABEL_IMPOSTOR_STATIC: &str = "impostor static";
pub const LABEL_OTHER_CLIENT_STATIC: &str = "other client static";

/// The two directions of a connection, as named in the files.
pub const DIRECTIONS: [&str; 2] = ["initiator_to_responder", "responder_to_initiator"];

/// The inputs of one session vector file.
pub struct SessionSpec {
    pub file: &'static str,
    pub description: &'static str,
    pub endpoint: &'static str,
    pub offer: ClientOffer,
    pub policy: ServerPolicy,
    /// The segment name the transport fills into the negotiated choice (named backend).
    pub segment_name: &'static str,
    pub max_fragment: u32,
    /// The small message of each direction (at most `max_fragment` bytes).
    pub small: [&'static [u8]; 2],
    /// Length of the fragmented message of each direction.
    pub fragmented_len: u32,
    /// Whether to include the NO_COMMON_CIPHER negative (an offer of AEGIS-128L only).
    pub aegis_only_is_refused: bool,
}

impl SessionSpec {
    pub fn suite(&self) -> CipherSuite {
        CipherSuite::choose(&self.offer.ciphers, &self.policy.ciphers).expect("spec has a common cipher")
    }
}

/// The fragmented message of a direction: byte i is (i * 7 + 1 + 128 * direction) mod 256.
pub fn fragmented_message(len: u32, direction: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7).wrapping_add(1).wrapping_add(128 * direction as u32)) as u8).collect()
}

/// The specifications of every session vector file.
pub fn session_specs() -> Vec<SessionSpec> {
    vec![
        SessionSpec {
            file: "session-chacha20-poly1305.json",
            description:
                "Noise_IK_25519_ChaChaPoly_BLAKE2b handshake negotiating ChaCha20-Poly1305 (the client offers \
                          AEGIS-128L and ChaCha20-Poly1305, the server requires ChaCha20-Poly1305), memfd backend, \
                          then the first frames of each direction and negative cases",
            endpoint: "vectors.chacha",
            offer: ClientOffer {
                versions: vec![1],
                ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
                max_message: 65536,
                ring_size: 0,
                backends: Backend::Memfd.bit() | Backend::Named.bit(),
            },
            policy: ServerPolicy {
                versions: vec![1],
                ciphers: vec![CipherSuite::ChaCha20Poly1305],
                max_message: 1 << 20,
                ring_size: 1 << 16,
                allowed: AllowedClients::Any,
                backend: Backend::Memfd,
            },
            segment_name: "",
            max_fragment: 32,
            small: [b"ping: hello, server", b"pong: hello, client"],
            fragmented_len: 100,
            aegis_only_is_refused: true,
        },
        SessionSpec {
            file: "session-aegis-128l.json",
            description:
                "Noise_IK_25519_ChaChaPoly_BLAKE2b handshake negotiating AEGIS-128L (both sides offer AEGIS-128L \
                          and ChaCha20-Poly1305), named backend, client asks for a 1 MiB ring, then the first frames \
                          of each direction and negative cases",
            endpoint: "vectors.aegis",
            offer: ClientOffer {
                versions: vec![1],
                ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
                max_message: 1 << 20,
                ring_size: 1 << 20,
                backends: Backend::Named.bit(),
            },
            policy: ServerPolicy {
                versions: vec![1],
                ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
                max_message: 4 << 20,
                ring_size: 1 << 16,
                allowed: AllowedClients::Only(vec![*fixed_keypair(LABEL_INITIATOR_STATIC).public()]),
                backend: Backend::Memfd,
            },
            segment_name: "/shmsock-vector-0123456789",
            max_fragment: 32,
            small: [b"ping: hello, server", b"pong: hello, client"],
            fragmented_len: 100,
            aegis_only_is_refused: false,
        },
    ]
}

/// A handshake with fixed keys; returns (hello, reply, client session, server session).
pub fn run_handshake(spec: &SessionSpec) -> (Vec<u8>, Vec<u8>, Session, Session) {
    let client = fixed_keypair(LABEL_INITIATOR_STATIC);
    let server = fixed_keypair(LABEL_RESPONDER_STATIC);
    let mut initiator = Initiator::with_ephemeral(
        &client,
        server.public(),
        spec.endpoint,
        spec.offer.clone(),
        fixed_keypair(LABEL_INITIATOR_EPHEMERAL),
    )
    .expect("initiator");
    let hello = initiator.write_hello().expect("hello");
    let mut responder =
        Responder::with_ephemeral(&server, spec.endpoint, fixed_keypair(LABEL_RESPONDER_EPHEMERAL)).expect("responder");
    let accepted = responder.read_hello(&hello, &spec.policy).expect("read hello");
    let choice = complete_choice(spec, accepted.choice);
    let (reply, server_session) = responder.write_reply(&choice).expect("reply");
    let client_session = initiator.read_reply(&reply).expect("read reply");
    (hello, reply, client_session, server_session)
}

/// The negotiated choice with the segment name the transport fills in. The
/// backend is fixed by the spec so the files do not depend on the platform.
pub fn complete_choice(spec: &SessionSpec, mut choice: ServerChoice) -> ServerChoice {
    choice.backend = if spec.segment_name.is_empty() { Backend::Memfd } else { Backend::Named };
    choice.segment_name = spec.segment_name.to_string();
    choice
}

fn keypair_json(kp: &Keypair) -> Value {
    json!({ "secret": hex(kp.secret_bytes()), "public": hex(kp.public().as_bytes()) })
}

fn offer_json(offer: &ClientOffer) -> Value {
    json!({
        "versions": offer.versions,
        "ciphers": offer.ciphers.iter().map(|c| c.id()).collect::<Vec<_>>(),
        "max_message": offer.max_message,
        "ring_size": offer.ring_size,
        "backends": offer.backends,
        "encoded": hex(&offer.encode()),
    })
}

fn choice_json(choice: &ServerChoice) -> Value {
    json!({
        "version": choice.version,
        "cipher": choice.cipher.id(),
        "max_message": choice.max_message,
        "ring_size": choice.ring_size,
        "backend": choice.backend as u8,
        "segment_name": choice.segment_name,
        "encoded": hex(&choice.encode()),
    })
}

fn policy_json(policy: &ServerPolicy) -> Value {
    json!({
        "versions": policy.versions,
        "ciphers": policy.ciphers.iter().map(|c| c.id()).collect::<Vec<_>>(),
        "max_message": policy.max_message,
        "ring_size": policy.ring_size,
        "backend": policy.backend as u8,
        "allowed_clients": match &policy.allowed {
            AllowedClients::Any => Value::Null,
            AllowedClients::Only(keys) => Value::from(keys.iter().map(|k| hex(k.as_bytes())).collect::<Vec<_>>()),
        },
    })
}

fn frame_json(nonce: u64, sealed: &[u8]) -> Value {
    let head: [u8; HEADER_LEN] = sealed[..HEADER_LEN].try_into().expect("header");
    let h = FrameHeader::decode(&head).expect("valid header");
    json!({
        "nonce": nonce,
        "kind": h.kind as u8,
        "frame_len": h.frame_len,
        "message_len": h.message_len,
        "offset": h.offset,
        "header": hex(&head),
        "sealed": hex(sealed),
    })
}

/// The sealed frames of one direction's stream: small message, zero-length message,
/// fragmented message, CLOSE. Returns the JSON entries and the flat frame list.
fn stream(spec: &SessionSpec, sealer: &mut FrameSealer, direction: usize) -> (Vec<Value>, Vec<Vec<u8>>) {
    let mut entries = Vec::new();
    let mut flat = Vec::new();
    let mut nonce = 0u64;
    let fragmented = fragmented_message(spec.fragmented_len, direction);
    let messages: [(&str, &[u8]); 3] = [
        ("a small message (one frame)", spec.small[direction]),
        ("a zero-length message (one frame with frame_len 0)", &[]),
        ("a message cut into fragments of at most max_fragment bytes", &fragmented),
    ];
    for (description, message) in messages {
        let frames = sealer.seal_message(message, spec.max_fragment).expect("seal");
        let mut frame_values = Vec::new();
        for f in &frames {
            frame_values.push(frame_json(nonce, f));
            nonce += 1;
        }
        flat.extend(frames);
        entries.push(json!({
            "description": description,
            "kind": "data",
            "message": hex(message),
            "frames": frame_values,
        }));
    }
    let close = sealer.seal_close().expect("close");
    entries.push(json!({
        "description": "the CLOSE frame",
        "kind": "close",
        "frames": [frame_json(nonce, &close)],
    }));
    flat.push(close);
    (entries, flat)
}

fn flip(bytes: &[u8], index: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= mask;
    out
}

fn with_byte(bytes: &[u8], index: usize, value: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] = value;
    out
}

fn frames_negative(
    name: &str,
    description: &str,
    direction: &str,
    frames: &[Vec<u8>],
    error_at: usize,
    kind: ErrorKind,
) -> Value {
    json!({
        "name": name,
        "description": description,
        "type": "frames",
        "direction": direction,
        "frames": frames.iter().map(|f| hex(f)).collect::<Vec<_>>(),
        "error_at": error_at,
        "expect_error": kind.name(),
    })
}

/// A hello written by the fixed initiator keys with other parameters.
fn hello_with(spec: &SessionSpec, pinned: &PublicKey, endpoint: &str, offer: ClientOffer) -> Vec<u8> {
    Initiator::with_ephemeral(
        &fixed_keypair(LABEL_INITIATOR_STATIC),
        pinned,
        endpoint,
        offer,
        fixed_keypair(LABEL_INITIATOR_EPHEMERAL),
    )
    .and_then(|mut i| i.write_hello())
    .unwrap_or_else(|e| panic!("{}: {e}", spec.file))
}

fn negatives(spec: &SessionSpec, hello: &[u8], reply: &[u8], i2r: &[Vec<u8>], r2i: &[Vec<u8>]) -> Vec<Value> {
    use ErrorKind::*;
    let dir = DIRECTIONS[0];
    let mut out = Vec::new();

    // Frames. All are fed to a fresh receiver of the direction (expecting nonce 0).
    out.push(frames_negative(
        "frame_tampered_ciphertext",
        "the first frame with its first ciphertext byte (offset 16) XORed with 0x01",
        dir,
        &[flip(&i2r[0], HEADER_LEN, 0x01)],
        0,
        AuthenticationFailed,
    ));
    let last = i2r[0].len() - 1;
    out.push(frames_negative(
        "frame_tampered_tag",
        "the first frame with its last tag byte XORed with 0x80",
        dir,
        &[flip(&i2r[0], last, 0x80)],
        0,
        AuthenticationFailed,
    ));
    out.push(frames_negative(
        "frame_tampered_header",
        "the first frame with message_len (header offset 8) increased by one: still a well-formed header, \
         but the header is the associated data, so the tag fails",
        dir,
        &[with_byte(&i2r[0], 8, i2r[0][8] + 1)],
        0,
        AuthenticationFailed,
    ));
    out.push(frames_negative(
        "frame_unknown_kind",
        "the first frame with its kind byte (offset 0) set to 3: rejected before authentication",
        dir,
        &[with_byte(&i2r[0], 0, 3)],
        0,
        ProtocolViolation,
    ));
    out.push(frames_negative(
        "frame_truncated",
        "the first frame without its last byte: its length differs from what its header implies",
        dir,
        &[i2r[0][..last].to_vec()],
        0,
        ProtocolViolation,
    ));
    out.push(frames_negative(
        "frame_shorter_than_header",
        "the first 10 bytes of the first frame: not even a whole header",
        dir,
        &[i2r[0][..10].to_vec()],
        0,
        ProtocolViolation,
    ));
    out.push(frames_negative(
        "frame_wrong_key",
        "the first responder_to_initiator frame given to the initiator_to_responder receiver (wrong key)",
        dir,
        &[r2i[0].clone()],
        0,
        AuthenticationFailed,
    ));
    out.push(frames_negative(
        "frame_wrong_key_reverse",
        "the first initiator_to_responder frame given to the responder_to_initiator receiver (wrong key)",
        DIRECTIONS[1],
        &[i2r[0].clone()],
        0,
        AuthenticationFailed,
    ));
    out.push(frames_negative(
        "frame_replayed",
        "the first frame twice: the second copy is checked against nonce 1",
        dir,
        &[i2r[0].clone(), i2r[0].clone()],
        1,
        AuthenticationFailed,
    ));
    out.push(frames_negative(
        "frame_dropped",
        "the second frame (nonce 1) first: the receiver expects nonce 0",
        dir,
        &[i2r[1].clone()],
        0,
        AuthenticationFailed,
    ));
    out.push(frames_negative(
        "fragment_out_of_sequence",
        "the first two messages, the first fragment of the third, then its third fragment",
        dir,
        &[i2r[0].clone(), i2r[1].clone(), i2r[2].clone(), i2r[4].clone()],
        3,
        ProtocolViolation,
    ));
    out.push(frames_negative(
        "close_mid_message",
        "the first two messages, the first fragment of the third, then the CLOSE frame",
        dir,
        &[i2r[0].clone(), i2r[1].clone(), i2r[2].clone(), i2r[i2r.len() - 1].clone()],
        3,
        ProtocolViolation,
    ));
    let mut after_close: Vec<Vec<u8>> = i2r.to_vec();
    after_close.push(i2r[0].clone());
    out.push(frames_negative(
        "frame_after_close",
        "the whole stream, CLOSE included, then the first frame again",
        dir,
        &after_close,
        i2r.len(),
        ProtocolViolation,
    ));
    // A correctly sealed first frame announcing a message one byte over the limit.
    let (_, _, client, _) = run_handshake(spec);
    let mut sealer = FrameSealer::new(client.send);
    let over = spec.policy.max_message + 1;
    let header = FrameHeader::data(spec.max_fragment, over, 0);
    let mut oversize = vec![0u8; header.sealed_len(spec.suite())];
    sealer.seal_into(&header, &fragmented_message(spec.max_fragment, 0), &mut oversize).expect("seal oversize");
    out.push(frames_negative(
        "message_over_limit",
        "a correctly sealed first fragment (nonce 0) of a message of receiver_max_message + 1 bytes: refused from \
         its header, before authentication",
        dir,
        &[oversize],
        0,
        ProtocolViolation,
    ));

    // Hellos, read by the file's responder with the file's server policy.
    let server = fixed_keypair(LABEL_RESPONDER_STATIC);
    let impostor = fixed_keypair(LABEL_IMPOSTOR_STATIC);
    let other_client = fixed_keypair(LABEL_OTHER_CLIENT_STATIC);
    let hello_neg = |name: &str, description: &str, hello: Vec<u8>, kind: ErrorKind, extra: Value| {
        let mut v = json!({
            "name": name,
            "description": description,
            "type": "hello",
            "hello": hex(&hello),
            "expect_error": kind.name(),
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut v, extra) {
            map.extend(more);
        }
        v
    };
    out.push(hello_neg(
        "hello_to_wrong_server_key",
        "a hello from the same initiator keys (static and ephemeral) that pinned another server key \
         (pinned_server_public)",
        hello_with(spec, impostor.public(), spec.endpoint, spec.offer.clone()),
        ServerKeyMismatch,
        json!({ "pinned_server_public": hex(impostor.public().as_bytes()) }),
    ));
    out.push(hello_neg(
        "hello_to_wrong_endpoint",
        "a hello from the same initiator keys for another endpoint name (so another prologue)",
        hello_with(spec, server.public(), "another-endpoint", spec.offer.clone()),
        ServerKeyMismatch,
        json!({ "endpoint": "another-endpoint" }),
    ));
    out.push(hello_neg(
        "hello_client_not_allowed",
        "the hello of this file, read by a responder whose allow-list holds only another key (allowed_clients)",
        hello.to_vec(),
        HandshakeRejected,
        json!({ "allowed_clients": [hex(other_client.public().as_bytes())] }),
    ));
    out.push(hello_neg(
        "hello_tampered_static",
        "the hello of this file with byte 40 (inside the encrypted static key) XORed with 0x01",
        flip(hello, 40, 0x01),
        ServerKeyMismatch,
        json!({}),
    ));
    out.push(hello_neg(
        "hello_tampered_payload",
        "the hello of this file with its last byte (payload tag) XORed with 0x01",
        flip(hello, hello.len() - 1, 0x01),
        ProtocolViolation,
        json!({}),
    ));
    out.push(hello_neg(
        "hello_truncated",
        "the first 95 bytes of the hello of this file (a hello is at least 96 bytes)",
        hello[..95].to_vec(),
        ProtocolViolation,
        json!({}),
    ));
    out.push(hello_neg(
        "hello_no_common_version",
        "a hello from the same initiator keys offering only protocol version 2",
        hello_with(spec, server.public(), spec.endpoint, ClientOffer { versions: vec![2], ..spec.offer.clone() }),
        ProtocolVersion,
        json!({}),
    ));
    if spec.aegis_only_is_refused {
        out.push(hello_neg(
            "hello_no_common_cipher",
            "a hello from the same initiator keys offering only AEGIS-128L to a server that requires ChaCha20-Poly1305",
            hello_with(
                spec,
                server.public(),
                spec.endpoint,
                ClientOffer { ciphers: vec![CipherSuite::Aegis128L], ..spec.offer.clone() },
            ),
            NoCommonCipher,
            json!({}),
        ));
    }

    // Replies, read by the file's initiator after it wrote the file's hello.
    let reply_neg = |name: &str, description: &str, reply: Vec<u8>, kind: ErrorKind, extra: Value| {
        let mut v = json!({
            "name": name,
            "description": description,
            "type": "reply",
            "reply": hex(&reply),
            "expect_error": kind.name(),
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut v, extra) {
            map.extend(more);
        }
        v
    };
    // The impostor answers a hello from the same initiator keys pinned to the
    // impostor, using the real responder's ephemeral: only its static key differs.
    let impostor_reply = {
        let mut r = Responder::with_ephemeral(&impostor, spec.endpoint, fixed_keypair(LABEL_RESPONDER_EPHEMERAL))
            .expect("impostor responder");
        let h = r
            .read_hello(&hello_with(spec, impostor.public(), spec.endpoint, spec.offer.clone()), &permissive(spec))
            .expect("impostor reads its hello");
        r.write_reply(&complete_choice(spec, h.choice)).expect("impostor reply").0
    };
    out.push(reply_neg(
        "reply_from_impostor",
        "a reply from a server holding another static key (impostor_static_secret) and the same ephemeral key",
        impostor_reply,
        ServerKeyMismatch,
        json!({
            "impostor_static_secret": hex(impostor.secret_bytes()),
            "impostor_static_public": hex(impostor.public().as_bytes()),
        }),
    ));
    out.push(reply_neg(
        "reply_tampered_ephemeral",
        "the reply of this file with byte 0 (the responder's ephemeral key) XORed with 0x01",
        flip(reply, 0, 0x01),
        ServerKeyMismatch,
        json!({}),
    ));
    out.push(reply_neg(
        "reply_tampered_payload",
        "the reply of this file with its last byte (payload tag) XORed with 0x01",
        flip(reply, reply.len() - 1, 0x01),
        ServerKeyMismatch,
        json!({}),
    ));
    out.push(reply_neg(
        "reply_truncated",
        "the first 47 bytes of the reply of this file (a reply is at least 48 bytes)",
        reply[..47].to_vec(),
        ProtocolViolation,
        json!({}),
    ));
    let bad_choice_reply = {
        let mut r = Responder::with_ephemeral(&server, spec.endpoint, fixed_keypair(LABEL_RESPONDER_EPHEMERAL))
            .expect("responder");
        let h = r.read_hello(hello, &spec.policy).expect("read hello");
        let mut choice = complete_choice(spec, h.choice);
        choice.version = 2;
        r.write_reply(&choice).expect("reply").0
    };
    out.push(reply_neg(
        "reply_version_not_offered",
        "a correctly encrypted reply from the real server (same ephemeral) choosing protocol version 2, which the \
         client did not offer",
        bad_choice_reply,
        ProtocolViolation,
        json!({}),
    ));
    out
}

/// The spec's policy, accepting any client.
fn permissive(spec: &SessionSpec) -> ServerPolicy {
    ServerPolicy { allowed: AllowedClients::Any, ..spec.policy.clone() }
}

/// The JSON of one session vector file.
pub fn session_vector(spec: &SessionSpec) -> Value {
    let (hello, reply, client, server) = run_handshake(spec);
    assert_eq!(client.handshake_hash, server.handshake_hash);
    let suite = client.choice.cipher;
    let (snow_hash, k_i2r, k_r2i) = snow_split(spec, &hello, &reply, &client.choice);
    assert_eq!(hex(&client.handshake_hash), hex(&snow_hash), "snow's handshake hash differs from ours");
    let key_len = match suite {
        CipherSuite::ChaCha20Poly1305 => 32,
        CipherSuite::Aegis128L => 16,
    };
    let choice = client.choice.clone();
    let mut client_sealer = FrameSealer::new(client.send);
    let mut server_sealer = FrameSealer::new(server.send);
    let (i2r_entries, i2r_flat) = stream(spec, &mut client_sealer, 0);
    let (r2i_entries, r2i_flat) = stream(spec, &mut server_sealer, 1);
    let negative = negatives(spec, &hello, &reply, &i2r_flat, &r2i_flat);
    json!({
        "kind": "session",
        "description": spec.description,
        "protocol_name": "Noise_IK_25519_ChaChaPoly_BLAKE2b",
        "endpoint": spec.endpoint,
        "prologue": hex(&prologue(spec.endpoint).expect("prologue")),
        "keys": {
            "initiator_static": keypair_json(&fixed_keypair(LABEL_INITIATOR_STATIC)),
            "initiator_ephemeral": keypair_json(&fixed_keypair(LABEL_INITIATOR_EPHEMERAL)),
            "responder_static": keypair_json(&fixed_keypair(LABEL_RESPONDER_STATIC)),
            "responder_ephemeral": keypair_json(&fixed_keypair(LABEL_RESPONDER_EPHEMERAL)),
        },
        "client_offer": offer_json(&spec.offer),
        "server_policy": policy_json(&spec.policy),
        "server_choice": choice_json(&choice),
        "hello": hex(&hello),
        "reply": hex(&reply),
        "handshake_hash": hex(&client.handshake_hash),
        "transport_keys": {
            "initiator_to_responder": hex(&k_i2r),
            "responder_to_initiator": hex(&k_r2i),
        },
        "cipher": {
            "id": suite.id(),
            "name": suite.name(),
            "key_len": key_len,
            "tag_len": suite.tag_len(),
        },
        "max_fragment": spec.max_fragment,
        "initiator_to_responder": {
            "key": hex(&k_i2r[..key_len]),
            "receiver_max_message": spec.policy.max_message,
            "messages": i2r_entries,
        },
        "responder_to_initiator": {
            "key": hex(&k_r2i[..key_len]),
            "receiver_max_message": spec.offer.max_message,
            "messages": r2i_entries,
        },
        "negative": negative,
    })
}

/// The raw Split() output, computed by the independent `snow` implementation
/// running the same handshake with the same keys, prologue and payloads (and
/// checked to produce the same two messages and handshake hash).
pub fn snow_split(
    spec: &SessionSpec,
    hello: &[u8],
    reply: &[u8],
    choice: &ServerChoice,
) -> (Vec<u8>, [u8; 32], [u8; 32]) {
    let prologue = prologue(spec.endpoint).expect("prologue");
    let client = fixed_keypair(LABEL_INITIATOR_STATIC);
    let client_e = fixed_keypair(LABEL_INITIATOR_EPHEMERAL);
    let server = fixed_keypair(LABEL_RESPONDER_STATIC);
    let server_e = fixed_keypair(LABEL_RESPONDER_EPHEMERAL);
    let params: snow::params::NoiseParams = "Noise_IK_25519_ChaChaPoly_BLAKE2b".parse().expect("params");
    let mut i = snow::Builder::new(params.clone())
        .local_private_key(client.secret_bytes())
        .and_then(|b| b.remote_public_key(server.public().as_bytes()))
        .and_then(|b| b.prologue(&prologue))
        .map(|b| b.fixed_ephemeral_key_for_testing_only(client_e.secret_bytes()))
        .and_then(|b| b.build_initiator())
        .expect("snow initiator");
    let mut r = snow::Builder::new(params)
        .local_private_key(server.secret_bytes())
        .and_then(|b| b.prologue(&prologue))
        .map(|b| b.fixed_ephemeral_key_for_testing_only(server_e.secret_bytes()))
        .and_then(|b| b.build_responder())
        .expect("snow responder");
    let mut buf = vec![0u8; 65535];
    let mut payload = vec![0u8; 65535];
    let n = i.write_message(&spec.offer.encode(), &mut buf).expect("snow message 1");
    assert_eq!(hex(&buf[..n]), hex(hello), "snow's message 1 differs from ours");
    let p = r.read_message(hello, &mut payload).expect("snow reads message 1");
    assert_eq!(payload[..p], spec.offer.encode());
    let n = r.write_message(&choice.encode(), &mut buf).expect("snow message 2");
    assert_eq!(hex(&buf[..n]), hex(reply), "snow's message 2 differs from ours");
    let p = i.read_message(reply, &mut payload).expect("snow reads message 2");
    assert_eq!(payload[..p], choice.encode());
    assert_eq!(i.get_handshake_hash(), r.get_handshake_hash());
    let (a, b) = i.dangerously_get_raw_split();
    let (c, d) = r.dangerously_get_raw_split();
    assert_eq!((a, b), (c, d));
    (i.get_handshake_hash().to_vec(), a, b)
}

/// Key text forms of fixed secrets, and invalid key texts.
pub fn keys_vector() -> Value {
    let secrets: Vec<(String, [u8; 32])> = vec![
        (format!("fixed_secret({LABEL_INITIATOR_STATIC:?})"), fixed_secret(LABEL_INITIATOR_STATIC)),
        (format!("fixed_secret({LABEL_RESPONDER_STATIC:?})"), fixed_secret(LABEL_RESPONDER_STATIC)),
        ("32 bytes 0x00".to_string(), [0u8; 32]),
        ("32 bytes 0xff".to_string(), [0xffu8; 32]),
        ("bytes 0x00 to 0x1f".to_string(), std::array::from_fn(|i| i as u8)),
    ];
    let keys: Vec<Value> = secrets
        .iter()
        .map(|(description, secret)| {
            let kp = Keypair::from_secret_bytes(*secret);
            let file = kp.to_file_text();
            let secret_text =
                file.lines().find_map(|l| l.strip_prefix("secret-key: ")).expect("secret line").to_string();
            json!({
                "description": description,
                "secret": hex(secret),
                "public": hex(kp.public().as_bytes()),
                "public_text": kp.public().to_text(),
                "secret_text": secret_text,
                "fingerprint": kp.public().fingerprint(),
                "key_file_text": file,
            })
        })
        .collect();
    let good = Keypair::from_secret_bytes(fixed_secret(LABEL_INITIATOR_STATIC));
    let other = Keypair::from_secret_bytes(fixed_secret(LABEL_RESPONDER_STATIC));
    let pk = good.public().to_text();
    let body = pk.strip_prefix("shmsock-pk:").expect("prefix").to_string();
    let invalid_public_texts = vec![
        ("empty", String::new()),
        ("no prefix", body.clone()),
        ("secret-key prefix", format!("shmsock-sk:{body}")),
        ("upper-case prefix", format!("SHMSOCK-PK:{body}")),
        ("standard base64 alphabet ('+' and '/' instead of '-' and '_')", {
            let std_body = body.replace('-', "+").replace('_', "/");
            assert_ne!(std_body, body, "pick a key whose text has '-' or '_'");
            format!("shmsock-pk:{std_body}")
        }),
        ("padded base64url", format!("{pk}=")),
        ("42 base64url characters (31 bytes)", pk[..pk.len() - 1].to_string()),
        ("41 base64url characters (not a whole number of bytes)", format!("shmsock-pk:{}", &body[..41])),
        (
            "31 bytes, correctly encoded",
            format!("shmsock-pk:{}", URL_SAFE_NO_PAD.encode(&good.public().as_bytes()[..31])),
        ),
        ("33 bytes, correctly encoded", {
            let mut long = good.public().as_bytes().to_vec();
            long.push(0);
            format!("shmsock-pk:{}", URL_SAFE_NO_PAD.encode(long))
        }),
        ("embedded space", format!("shmsock-pk:{} {}", &body[..20], &body[20..])),
    ];
    let good_file = good.to_file_text();
    let invalid_key_files = vec![
        ("empty file", String::new()),
        ("public key of another secret", good_file.replace(&pk, &other.public().to_text())),
        (
            "no public-key line",
            good_file.lines().filter(|l| !l.starts_with("public-key")).map(|l| format!("{l}\n")).collect(),
        ),
        (
            "no secret-key line",
            good_file.lines().filter(|l| !l.starts_with("secret-key")).map(|l| format!("{l}\n")).collect(),
        ),
        ("unknown field", format!("{good_file}comment: hello\n")),
        ("public-key twice", format!("{good_file}public-key: {pk}\n")),
    ];
    json!({
        "kind": "keys",
        "description": "text forms of static keys: public key text, secret key text, fingerprint and key file text \
                        for fixed secrets; public key texts and key files that must be refused",
        "keys": keys,
        "invalid_public_texts": invalid_public_texts
            .into_iter()
            .map(|(d, t)| json!({ "description": d, "text": t, "expect_error": ErrorKind::InvalidKey.name() }))
            .collect::<Vec<_>>(),
        "invalid_key_files": invalid_key_files
            .into_iter()
            .map(|(d, t)| json!({ "description": d, "text": t, "expect_error": ErrorKind::InvalidKey.name() }))
            .collect::<Vec<_>>(),
    })
}

/// Every vector file: (file name, JSON).
pub fn all_files() -> Vec<(String, Value)> {
    let mut files: Vec<(String, Value)> =
        session_specs().iter().map(|spec| (spec.file.to_string(), session_vector(spec))).collect();
    files.push(("keys.json".to_string(), keys_vector()));
    files
}

/// The exact text written for a JSON value.
pub fn file_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("json");
    text.push('\n');
    text
}
