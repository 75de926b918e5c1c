//! Publish/subscribe test vectors (PROTOCOL.md section 14), pinned in
//! `tests/vectors/pubsub.json`, for each cipher: the SUBSCRIBE and WELCOME
//! records of a handshake with fixed keys, the sealed KEY records of a first
//! key and a rotation, a sealed BYE, the broadcast segment header, and slots
//! holding sealed messages; plus what must fail.
//!
//! The check reads the file as an independent subscriber would: it finishes the
//! handshake from the WELCOME bytes, opens the KEY and BYE records with the
//! session key, and opens each slot's message with the group key from the spec's
//! rules alone (nonce = sequence number, associated data = sequence, epoch,
//! length, zero).
//!
//! Regenerate with `SHMSOCK_REGEN_VECTORS=1 cargo test -p shmsock --test pubsub_vectors`.

#[path = "common/vectors_gen.rs"]
mod vectors_gen;

use std::path::PathBuf;

use serde_json::{json, Value};
use shmsock::cipher::{CipherSuite, RecvCipher};
use shmsock::control;
use shmsock::handshake::{
    AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerPolicy, MIN_RING_SIZE, SUPPORTED_VERSIONS,
};
use shmsock::pubsub::broadcast::{header_bytes, Geometry, SLOTS_OFFSET, SLOT_HEADER};
use shmsock::pubsub::group_key::{message_ad, GroupKey};
use shmsock::pubsub::records::{self, ByeReason};
use shmsock::sodium::Aead;
use shmsock::ErrorKind;
use vectors_gen::{fixed_keypair, fixed_secret, hex, unhex};

const TOPIC: &str = "vector-topic";
const MAX_MESSAGE: u32 = 64;
const SLOTS: u32 = 4;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn aead(suite: CipherSuite) -> Aead {
    match suite {
        CipherSuite::ChaCha20Poly1305 => Aead::ChaCha20Poly1305,
        CipherSuite::Aegis128L => Aead::Aegis128L,
    }
}

fn offer() -> ClientOffer {
    ClientOffer {
        versions: vec![1],
        ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305],
        max_message: 16 << 20,
        ring_size: 0,
        backends: Backend::Memfd.bit(),
    }
}

fn policy(suite: CipherSuite) -> ServerPolicy {
    ServerPolicy {
        versions: SUPPORTED_VERSIONS.to_vec(),
        ciphers: vec![suite],
        max_message: MAX_MESSAGE,
        ring_size: MIN_RING_SIZE,
        allowed: AllowedClients::Any,
        backend: Backend::Memfd,
    }
}

fn group_key(suite: CipherSuite, epoch: u64, first_seq: u64) -> GroupKey {
    let bytes = fixed_secret(&format!("group key epoch {epoch}"));
    GroupKey::decode(suite, &[&epoch.to_le_bytes()[..], &first_seq.to_le_bytes(), &bytes].concat()).expect("key")
}

/// A slot as the publisher writes it: stamp, epoch, length, zero, ciphertext, tag.
fn slot(suite: CipherSuite, key: &GroupKey, seq: u64, plaintext: &[u8]) -> Vec<u8> {
    let a = aead(suite);
    let len = plaintext.len() as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&(2 * seq + 2).to_le_bytes());
    out.extend_from_slice(&key.epoch.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut ct = vec![0u8; plaintext.len()];
    let mut tag = vec![0u8; a.tag_len()];
    a.seal(key.key.expose(), seq, &message_ad(seq, key.epoch, len), plaintext, &mut ct, &mut tag);
    out.extend_from_slice(&ct);
    out.extend_from_slice(&tag);
    out
}

fn suite_vector(suite: CipherSuite) -> Value {
    let subscriber = fixed_keypair(vectors_gen::LABEL_INITIATOR_STATIC);
    let publisher = fixed_keypair(vectors_gen::LABEL_RESPONDER_STATIC);
    let mut initiator = Initiator::with_ephemeral(
        &subscriber,
        publisher.public(),
        TOPIC,
        offer(),
        fixed_keypair(vectors_gen::LABEL_INITIATOR_EPHEMERAL),
    )
    .expect("initiator");
    let hello = initiator.write_hello().expect("hello");
    let mut responder =
        Responder::with_ephemeral(&publisher, TOPIC, fixed_keypair(vectors_gen::LABEL_RESPONDER_EPHEMERAL))
            .expect("responder");
    let accepted = responder.read_hello(&hello, &policy(suite)).expect("accept");
    let (reply, session) = responder.write_reply(&accepted.choice).expect("reply");
    let mut send = session.send;
    let first = group_key(suite, 1, 5);
    let second = group_key(suite, 2, 7);
    let key1 = records::seal(records::KEY, &mut send, first.encode().expose()).expect("seal");
    let key2 = records::seal(records::KEY, &mut send, second.encode().expose()).expect("seal");
    let bye = records::seal(records::BYE, &mut send, &records::bye_plaintext(ByeReason::Closed, 8)).expect("seal");
    let geometry = Geometry { slots: SLOTS, max_message: MAX_MESSAGE, suite };
    let messages: Vec<(u64, &GroupKey, &[u8])> = vec![
        (5, &first, b"first message under epoch 1"),
        (6, &first, b""),
        (7, &second, b"after the rotation: epoch 2"),
    ];
    let slots: Vec<Value> = messages
        .iter()
        .map(|(seq, key, pt)| {
            json!({
                "sequence": seq,
                "slot_index": seq % u64::from(SLOTS),
                "slot_offset": SLOTS_OFFSET as u64 + (seq % u64::from(SLOTS)) * geometry.slot_size(),
                "slot": hex(&slot(suite, key, *seq, pt)),
                "plaintext": hex(pt),
            })
        })
        .collect();
    json!({
        "cipher": {"id": suite.id(), "name": suite.name()},
        "subscribe_record": hex(&control::encode(records::SUBSCRIBE, &hello)),
        "welcome_record": hex(&control::encode(records::WELCOME, &reply)),
        "ready_record": hex(&control::encode(control::READY, &[])),
        "key_records": [
            {"record": hex(&key1), "epoch": 1, "first_seq": 5, "key": hex(first.key.expose())},
            {"record": hex(&key2), "epoch": 2, "first_seq": 7, "key": hex(second.key.expose())},
        ],
        "bye_record": {"record": hex(&bye), "reason": 0, "final_seq": 8},
        "broadcast_header": hex(&header_bytes(&geometry)),
        "slot_size": geometry.slot_size(),
        "segment_size": geometry.total(),
        "slots": slots,
    })
}

fn generate() -> Value {
    json!({
        "kind": "pubsub",
        "description": "Publish/subscribe (PROTOCOL.md section 14): a subscription handshake with the fixed keys of the session vectors (subscriber = initiator, publisher = responder) on topic 'vector-topic', the sealed KEY records of epochs 1 and 2 and a BYE (nonces 0, 1, 2 of the publisher-to-subscriber session key), the broadcast header of 4 slots for 64-byte messages, and slots of messages 5 and 6 (epoch 1) and 7 (epoch 2).",
        "topic": TOPIC,
        "subscriber_static_secret": hex(&fixed_secret(vectors_gen::LABEL_INITIATOR_STATIC)),
        "subscriber_ephemeral_secret": hex(&fixed_secret(vectors_gen::LABEL_INITIATOR_EPHEMERAL)),
        "publisher_static_secret": hex(&fixed_secret(vectors_gen::LABEL_RESPONDER_STATIC)),
        "publisher_ephemeral_secret": hex(&fixed_secret(vectors_gen::LABEL_RESPONDER_EPHEMERAL)),
        "subscriber_offer": hex(&offer().encode()),
        "suites": [suite_vector(CipherSuite::ChaCha20Poly1305), suite_vector(CipherSuite::Aegis128L)],
    })
}

#[test]
fn pubsub_vectors_match_the_file() {
    let path = vectors_dir().join("pubsub.json");
    let generated = serde_json::to_string_pretty(&generate()).expect("json") + "\n";
    if std::env::var_os("SHMSOCK_REGEN_VECTORS").is_some() {
        std::fs::write(&path, &generated).expect("write pubsub.json");
    }
    let committed = std::fs::read_to_string(&path).expect("tests/vectors/pubsub.json exists");
    assert_eq!(committed, generated, "pubsub.json is stale; regenerate it (see this file's header)");
}

/// Reads the file as a subscriber built from the spec would.
#[test]
fn a_subscriber_from_the_spec_opens_everything() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("pubsub.json")).expect("file")).expect("json");
    let s = |v: &Value, k: &str| unhex(v[k].as_str().unwrap_or_else(|| panic!("{k}")));
    let secret = |k: &str| -> [u8; 32] { s(&v, k).try_into().expect("32 bytes") };
    for sv in v["suites"].as_array().expect("suites") {
        let suite = CipherSuite::from_id(sv["cipher"]["id"].as_u64().expect("id") as u8).expect("suite");
        let subscriber = shmsock::Keypair::from_secret_bytes(secret("subscriber_static_secret"));
        let publisher = shmsock::Keypair::from_secret_bytes(secret("publisher_static_secret"));
        let offer = ClientOffer::decode(&s(&v, "subscriber_offer")).expect("offer");
        let mut initiator = Initiator::with_ephemeral(
            &subscriber,
            publisher.public(),
            v["topic"].as_str().expect("topic"),
            offer,
            shmsock::Keypair::from_secret_bytes(secret("subscriber_ephemeral_secret")),
        )
        .expect("initiator");
        let sub = s(sv, "subscribe_record");
        assert_eq!((sub[0], &sub[4..]), (records::SUBSCRIBE, &initiator.write_hello().expect("hello")[..]));
        let welcome = s(sv, "welcome_record");
        assert_eq!(welcome[0], records::WELCOME);
        assert_eq!(u16::from_le_bytes([welcome[2], welcome[3]]) as usize, welcome.len() - 4);
        let session = initiator.read_reply(&welcome[4..]).expect("welcome");
        assert_eq!(session.choice.cipher, suite);
        assert_eq!(session.choice.max_message, MAX_MESSAGE);
        let mut recv: RecvCipher = session.recv;
        let mut keys = Vec::new();
        for k in sv["key_records"].as_array().expect("keys") {
            let (kind, plain, used) = records::open_front(&s(k, "record"), &mut recv).expect("open").expect("whole");
            assert_eq!((kind, used), (records::KEY, s(k, "record").len()));
            let key = GroupKey::decode(suite, &plain).expect("key");
            assert_eq!((key.epoch, key.first_seq), (k["epoch"].as_u64().unwrap(), k["first_seq"].as_u64().unwrap()));
            assert_eq!(&key.key.expose()[..], &s(k, "key")[..]);
            keys.push(key);
        }
        let (kind, plain, _) =
            records::open_front(&s(&sv["bye_record"], "record"), &mut recv).expect("open").expect("whole");
        assert_eq!(kind, records::BYE);
        assert_eq!(records::parse_bye(&plain).expect("bye"), (ByeReason::Closed, 8));
        let header = s(sv, "broadcast_header");
        assert_eq!(&header[..8], b"shmspub\0");
        assert_eq!(u32::from_le_bytes(header[12..16].try_into().unwrap()), SLOTS);
        for m in sv["slots"].as_array().expect("slots") {
            let seq = m["sequence"].as_u64().expect("seq");
            let bytes = s(m, "slot");
            assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()), 2 * seq + 2, "stamp");
            let epoch = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            let len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
            let key = keys.iter().find(|k| k.epoch == epoch).expect("key of the epoch");
            let sealed = &bytes[SLOT_HEADER..];
            let mut out = vec![0u8; len];
            key.open(seq, sealed, &mut out).expect("message opens");
            assert_eq!(out, s(m, "plaintext"));
            // What must fail: another sequence number, another epoch's key, a flipped byte.
            assert_eq!(key.open(seq + 1, sealed, &mut out).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
            let other = keys.iter().find(|k| k.epoch != epoch).expect("other key");
            let relabelled = GroupKey { epoch, first_seq: other.first_seq, key: other.key.clone(), suite: other.suite };
            assert_eq!(relabelled.open(seq, sealed, &mut out).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
            let mut flipped = sealed.to_vec();
            flipped[0] ^= 1;
            assert_eq!(key.open(seq, &flipped, &mut out).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
        }
    }
}
