//! Checks the protocol test vectors in `tests/vectors/` (repository root).
//!
//! Two kinds of check:
//! - every file is read the way an independent implementation would read it (see
//!   `tests/vectors/README.md`), and the core must reproduce every byte (handshake
//!   messages, hash, keys, frames, key texts) and every negative outcome; the
//!   handshake is also replayed with `snow` from the file's data alone;
//! - the files on disk must be exactly what `core/examples/gen_vectors.rs` writes,
//!   so any changed byte, added or removed field, or missing file fails the suite.
//!
//! To regenerate after an intended protocol change:
//! `cargo run -p shmsock --example gen_vectors`.

#[path = "common/vectors_gen.rs"]
mod vectors_gen;

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use shmsock::cipher::CipherSuite;
use shmsock::frame::{
    fragments, FrameHeader, FrameKind, FrameOpener, FrameSealer, MessageReader, Received, HEADER_LEN,
};
use shmsock::handshake::{
    prologue, AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerChoice, ServerPolicy, Session,
};
use shmsock::sodium::{Aead, Blake2b};
use shmsock::{Error, Keypair, PublicKey};
use vectors_gen::{hex, unhex};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("vectors")
}

/// Every `.json` file of the vector directory, sorted by name.
fn vector_files() -> Vec<(String, Value)> {
    let dir = vector_dir();
    let mut files: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            (name, value)
        })
        // control.json and pubsub.json are generated and checked by
        // control_vectors.rs and pubsub_vectors.rs.
        .filter(|(_, value): &(String, Value)| value["kind"] != "control" && value["kind"] != "pubsub")
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!files.is_empty(), "no vector files in {}", dir.display());
    files
}

// ---- small accessors over untyped JSON --------------------------------------------

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or_else(|| panic!("missing field '{key}' in {}", short(v)))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(120).collect()
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    unhex(field(v, key).as_str().unwrap_or_else(|| panic!("'{key}' is not a hex string")))
}

fn key32(v: &Value, key: &str) -> [u8; 32] {
    bytes(v, key).try_into().unwrap_or_else(|_| panic!("'{key}' is not 32 bytes"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key).as_str().unwrap_or_else(|| panic!("'{key}' is not a string"))
}

fn num(v: &Value, key: &str) -> u64 {
    field(v, key).as_u64().unwrap_or_else(|| panic!("'{key}' is not an unsigned integer"))
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    field(v, key).as_array().unwrap_or_else(|| panic!("'{key}' is not an array"))
}

fn nums(v: &Value, key: &str) -> Vec<u64> {
    list(v, key).iter().map(|x| x.as_u64().expect("integer")).collect()
}

fn err_of<T>(r: Result<T, Error>, what: &str) -> Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, got success"),
        Err(e) => e,
    }
}

// ---- the generator's output equals the files ---------------------------------------

/// The path of the first difference between two JSON values, if any.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, &format!("{path}.{key}")) {
                            return Some(d);
                        }
                    }
                    _ => return Some(format!("{path}.{key} (present on one side only)")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path} (length {} vs {})", x.len(), y.len()));
            }
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {} vs {}", short(a), short(b))),
    }
}

#[test]
fn files_are_exactly_what_the_generator_writes() {
    let on_disk = vector_files();
    let generated = vectors_gen::all_files();
    let mut names: Vec<&String> = generated.iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(
        on_disk.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        names,
        "the vector files differ from the generator's list (run `cargo run -p shmsock --example gen_vectors`)"
    );
    for (name, value) in &generated {
        let disk = &on_disk.iter().find(|(n, _)| n == name).expect("present").1;
        if let Some(diff) = first_difference(disk, value, "") {
            panic!(
                "{name} differs from what the generator produces at {diff}. If the protocol changed on purpose, \
                 regenerate with `cargo run -p shmsock --example gen_vectors` and say so in PROTOCOL.md"
            );
        }
        let text = std::fs::read_to_string(vector_dir().join(name)).expect("read");
        assert_eq!(text, vectors_gen::file_text(value), "{name}: same JSON but different text; regenerate it");
    }
}

#[test]
fn every_file_has_a_known_kind() {
    let files = vector_files();
    let kinds: Vec<&str> = files.iter().map(|(_, v)| text(v, "kind")).collect();
    for (name, v) in &files {
        assert!(matches!(text(v, "kind"), "session" | "keys"), "{name}: unknown kind");
        assert!(!text(v, "description").is_empty());
    }
    let ciphers: Vec<u64> = files
        .iter()
        .filter(|(_, v)| text(v, "kind") == "session")
        .map(|(_, v)| num(field(v, "cipher"), "id"))
        .collect();
    assert!(ciphers.contains(&1) && ciphers.contains(&2), "a session vector for each cipher");
    assert!(kinds.contains(&"keys"));
}

// ---- session vectors, read as an independent implementation would -----------------

fn keypair(v: &Value, which: &str) -> Keypair {
    let k = field(field(v, "keys"), which);
    let kp = Keypair::from_secret_bytes(key32(k, "secret"));
    assert_eq!(hex(kp.public().as_bytes()), text(k, "public"), "public key of {which}");
    kp
}

fn suites(ids: &[u64]) -> Vec<CipherSuite> {
    ids.iter().map(|&id| CipherSuite::from_id(id as u8).expect("known cipher id")).collect()
}

fn offer_of(v: &Value) -> ClientOffer {
    let o = field(v, "client_offer");
    let offer = ClientOffer {
        versions: nums(o, "versions").into_iter().map(|x| x as u16).collect(),
        ciphers: suites(&nums(o, "ciphers")),
        max_message: num(o, "max_message") as u32,
        ring_size: num(o, "ring_size") as u32,
        backends: num(o, "backends") as u8,
    };
    assert_eq!(hex(&offer.encode()), text(o, "encoded"), "client_offer.encoded");
    assert_eq!(ClientOffer::decode(&bytes(o, "encoded")).expect("decode offer"), offer);
    offer
}

fn allowed_of(v: &Value) -> AllowedClients {
    match v {
        Value::Null => AllowedClients::Any,
        Value::Array(keys) => AllowedClients::Only(
            keys.iter().map(|k| PublicKey::from_slice(&unhex(k.as_str().expect("hex"))).expect("key")).collect(),
        ),
        other => panic!("allowed_clients must be null or a list, not {other}"),
    }
}

fn policy_of(v: &Value) -> ServerPolicy {
    let p = field(v, "server_policy");
    ServerPolicy {
        versions: nums(p, "versions").into_iter().map(|x| x as u16).collect(),
        ciphers: suites(&nums(p, "ciphers")),
        max_message: num(p, "max_message") as u32,
        ring_size: num(p, "ring_size") as u32,
        allowed: allowed_of(field(p, "allowed_clients")),
        backend: Backend::from_id(num(p, "backend") as u8).expect("backend id"),
    }
}

fn choice_of(v: &Value, offer: &ClientOffer) -> ServerChoice {
    let c = field(v, "server_choice");
    let choice = ServerChoice {
        version: num(c, "version") as u16,
        cipher: CipherSuite::from_id(num(c, "cipher") as u8).expect("cipher id"),
        max_message: num(c, "max_message") as u32,
        ring_size: num(c, "ring_size") as u32,
        backend: Backend::from_id(num(c, "backend") as u8).expect("backend id"),
        segment_name: text(c, "segment_name").to_string(),
    };
    assert_eq!(hex(&choice.encode()), text(c, "encoded"), "server_choice.encoded");
    assert_eq!(ServerChoice::decode(&bytes(c, "encoded"), offer).expect("decode choice"), choice);
    choice
}

fn initiator_of(v: &Value) -> Initiator {
    Initiator::with_ephemeral(
        &keypair(v, "initiator_static"),
        keypair(v, "responder_static").public(),
        text(v, "endpoint"),
        offer_of(v),
        keypair(v, "initiator_ephemeral"),
    )
    .expect("initiator")
}

fn responder_of(v: &Value) -> Responder {
    Responder::with_ephemeral(&keypair(v, "responder_static"), text(v, "endpoint"), keypair(v, "responder_ephemeral"))
        .expect("responder")
}

/// Runs the file's handshake and returns (client session, server session),
/// checking every handshake byte on the way.
fn handshake(v: &Value) -> (Session, Session) {
    let offer = offer_of(v);
    let policy = policy_of(v);
    let choice = choice_of(v, &offer);
    let mut initiator = initiator_of(v);
    let hello = initiator.write_hello().expect("write hello");
    assert_eq!(hex(&hello), text(v, "hello"), "hello (Noise message 1)");
    let mut responder = responder_of(v);
    let accepted = responder.read_hello(&hello, &policy).expect("read hello");
    assert_eq!(accepted.client, *keypair(v, "initiator_static").public());
    assert_eq!(accepted.offer, offer);
    let negotiated = &accepted.choice;
    assert_eq!(
        (negotiated.version, negotiated.cipher, negotiated.max_message, negotiated.ring_size),
        (choice.version, choice.cipher, choice.max_message, choice.ring_size),
        "negotiate() gives the choice of the file"
    );
    if cfg!(target_os = "linux") {
        assert_eq!(negotiated.backend, choice.backend);
    }
    let (reply, server) = responder.write_reply(&choice).expect("write reply");
    assert_eq!(hex(&reply), text(v, "reply"), "reply (Noise message 2)");
    let client = match initiator.read_reply(&reply) {
        Ok(s) => s,
        Err(e) => panic!("read reply: {e}"),
    };
    assert_eq!(client.choice, choice);
    assert_eq!(client.offer, offer);
    assert_eq!(client.peer, *keypair(v, "responder_static").public());
    assert_eq!(server.peer, *keypair(v, "initiator_static").public());
    assert_eq!(hex(&client.handshake_hash), text(v, "handshake_hash"));
    assert_eq!(hex(&server.handshake_hash), text(v, "handshake_hash"));
    (client, server)
}

/// The handshake again, by snow, from the file's data alone.
fn check_with_snow(v: &Value) {
    let prologue = bytes(v, "prologue");
    let keys = field(v, "keys");
    let k = |which: &str| key32(field(keys, which), "secret");
    let params: snow::params::NoiseParams = text(v, "protocol_name").parse().expect("params");
    let (is, ie, rs, re) =
        (k("initiator_static"), k("initiator_ephemeral"), k("responder_static"), k("responder_ephemeral"));
    let rs_pub = key32(field(keys, "responder_static"), "public");
    let mut i = snow::Builder::new(params.clone())
        .local_private_key(&is)
        .and_then(|b| b.remote_public_key(&rs_pub))
        .and_then(|b| b.prologue(&prologue))
        .map(|b| b.fixed_ephemeral_key_for_testing_only(&ie))
        .and_then(|b| b.build_initiator())
        .expect("snow initiator");
    let mut r = snow::Builder::new(params)
        .local_private_key(&rs)
        .and_then(|b| b.prologue(&prologue))
        .map(|b| b.fixed_ephemeral_key_for_testing_only(&re))
        .and_then(|b| b.build_responder())
        .expect("snow responder");
    let mut msg = vec![0u8; 65535];
    let mut payload = vec![0u8; 65535];
    let n = i.write_message(&bytes(field(v, "client_offer"), "encoded"), &mut msg).expect("snow message 1");
    assert_eq!(hex(&msg[..n]), text(v, "hello"), "snow's message 1");
    let p = r.read_message(&msg[..n], &mut payload).expect("snow reads message 1");
    assert_eq!(hex(&payload[..p]), text(field(v, "client_offer"), "encoded"));
    let n = r.write_message(&bytes(field(v, "server_choice"), "encoded"), &mut msg).expect("snow message 2");
    assert_eq!(hex(&msg[..n]), text(v, "reply"), "snow's message 2");
    let p = i.read_message(&msg[..n], &mut payload).expect("snow reads message 2");
    assert_eq!(hex(&payload[..p]), text(field(v, "server_choice"), "encoded"));
    assert_eq!(hex(i.get_handshake_hash()), text(v, "handshake_hash"), "snow's handshake hash");
    let (k1, k2) = i.dangerously_get_raw_split();
    let tk = field(v, "transport_keys");
    assert_eq!(hex(&k1), text(tk, "initiator_to_responder"), "snow's Split() first key");
    assert_eq!(hex(&k2), text(tk, "responder_to_initiator"), "snow's Split() second key");
}

/// Checks one direction's frames: independent sealing with the key of the file,
/// our sealer from the handshake's session, and our reader.
fn check_direction(v: &Value, dir: &str, sealer_session: Session, reader_session: Session, suite: CipherSuite) {
    let d = field(v, dir);
    let max_fragment = num(v, "max_fragment") as u32;
    let key_len = num(field(v, "cipher"), "key_len") as usize;
    let key = bytes(d, "key");
    assert_eq!(key.len(), key_len);
    assert_eq!(key[..], bytes(field(v, "transport_keys"), dir)[..key_len], "{dir}.key is the start of the Split() key");
    // The cipher key, zero-padded to the 32 bytes libsodium's wrapper takes: for
    // AEGIS-128L this shows the last 16 bytes of the Split() output are unused.
    let mut key32 = [0u8; 32];
    key32[..key_len].copy_from_slice(&key);
    let aead = match suite {
        CipherSuite::ChaCha20Poly1305 => Aead::ChaCha20Poly1305,
        CipherSuite::Aegis128L => Aead::Aegis128L,
    };
    let receiver_max = num(d, "receiver_max_message") as u32;
    let mut sealer = FrameSealer::new(sealer_session.send);
    let mut reader = MessageReader::new(FrameOpener::new(reader_session.recv, receiver_max));
    let mut expected_nonce = 0u64;
    let entries = list(d, "messages");
    assert_eq!(
        entries.iter().map(|e| text(e, "kind")).collect::<Vec<_>>(),
        ["data", "data", "data", "close"],
        "{dir}: small, zero-length, fragmented, close"
    );
    for entry in entries {
        let frames = list(entry, "frames");
        let is_close = text(entry, "kind") == "close";
        let message = if is_close { Vec::new() } else { bytes(entry, "message") };
        let sealed_by_us = if is_close {
            vec![sealer.seal_close().expect("seal close")]
        } else {
            sealer.seal_message(&message, max_fragment).expect("seal")
        };
        let cuts: Vec<(u32, u32)> =
            if is_close { vec![(0, 0)] } else { fragments(message.len() as u32, max_fragment).collect() };
        assert_eq!(frames.len(), cuts.len(), "{dir}: number of frames");
        for (i, (f, (offset, len))) in frames.iter().zip(cuts).enumerate() {
            let sealed = bytes(f, "sealed");
            assert_eq!(num(f, "nonce"), expected_nonce, "{dir}: nonces count from 0 across messages");
            let header =
                if is_close { FrameHeader::CLOSE } else { FrameHeader::data(len, message.len() as u32, offset) };
            assert_eq!(num(f, "kind"), header.kind as u64);
            assert_eq!(num(f, "frame_len"), u64::from(header.frame_len));
            assert_eq!(num(f, "message_len"), u64::from(header.message_len));
            assert_eq!(num(f, "offset"), u64::from(header.offset));
            assert_eq!(hex(&header.encode()), text(f, "header"), "{dir}: header bytes");
            let head: [u8; HEADER_LEN] = sealed[..HEADER_LEN].try_into().expect("header");
            assert_eq!(FrameHeader::decode(&head).expect("decode header"), header);
            // Independent seal: header || AEAD(key, nonce, ad = header, plaintext) || tag.
            let plaintext = &message[offset as usize..(offset + len) as usize];
            let mut ct = vec![0u8; plaintext.len()];
            let mut tag = vec![0u8; aead.tag_len()];
            aead.seal(&key32, expected_nonce, &head, plaintext, &mut ct, &mut tag);
            let mut independent = head.to_vec();
            independent.extend_from_slice(&ct);
            independent.extend_from_slice(&tag);
            assert_eq!(hex(&independent), text(f, "sealed"), "{dir}: frame {expected_nonce} sealed bytes");
            assert_eq!(sealed.len(), header.sealed_len(suite));
            // Our sealer, keyed by the handshake.
            assert_eq!(
                hex(&sealed_by_us[i]),
                text(f, "sealed"),
                "{dir}: FrameSealer output for frame {expected_nonce}"
            );
            // Our reader.
            let got = reader.push(&sealed).expect("reader accepts the frame");
            let last = i + 1 == frames.len();
            match (is_close, last, got) {
                (true, _, Some(Received::Close)) => {}
                (false, true, Some(Received::Message(m))) => assert_eq!(m, message),
                (false, false, None) => {}
                (_, _, other) => panic!("{dir}: unexpected reader output {other:?}"),
            }
            assert_eq!(header.kind == FrameKind::Close, is_close);
            expected_nonce += 1;
        }
    }
}

fn check_negative(v: &Value, n: &Value) {
    let name = text(n, "name");
    let expected = text(n, "expect_error");
    let policy = policy_of(v);
    match text(n, "type") {
        "frames" => {
            let dir = text(n, "direction");
            let (client, server) = handshake(v);
            let (recv, max) = match dir {
                "initiator_to_responder" => (server.recv, num(field(v, dir), "receiver_max_message")),
                "responder_to_initiator" => (client.recv, num(field(v, dir), "receiver_max_message")),
                other => panic!("{name}: unknown direction {other}"),
            };
            let mut reader = MessageReader::new(FrameOpener::new(recv, max as u32));
            let error_at = num(n, "error_at") as usize;
            let frames: Vec<Vec<u8>> = list(n, "frames").iter().map(|f| unhex(f.as_str().expect("hex"))).collect();
            assert_eq!(frames.len(), error_at + 1, "{name}: the failing frame is the last");
            for (i, f) in frames.iter().enumerate() {
                let r = reader.push(f);
                if i < error_at {
                    assert!(r.is_ok(), "{name}: frame {i} must be accepted: {:?}", r.err());
                } else {
                    let e = err_of(r, name);
                    assert_eq!(e.kind().name(), expected, "{name}: {e}");
                }
            }
            // The stream is over: nothing is accepted any more.
            for f in &frames {
                assert!(reader.push(f).is_err(), "{name}: the reader must stay failed");
            }
        }
        "hello" => {
            let policy = match n.get("allowed_clients") {
                Some(a) => ServerPolicy { allowed: allowed_of(a), ..policy },
                None => policy,
            };
            let mut responder = responder_of(v);
            let e = err_of(responder.read_hello(&bytes(n, "hello"), &policy), name);
            assert_eq!(e.kind().name(), expected, "{name}: {e}");
        }
        "reply" => {
            let mut initiator = initiator_of(v);
            assert_eq!(hex(&initiator.write_hello().expect("hello")), text(v, "hello"));
            let e = err_of(initiator.read_reply(&bytes(n, "reply")), name);
            assert_eq!(e.kind().name(), expected, "{name}: {e}");
        }
        other => panic!("{name}: unknown negative vector type {other}"),
    }
}

fn check_session(name: &str, v: &Value) {
    assert_eq!(text(v, "protocol_name"), "Noise_IK_25519_ChaChaPoly_BLAKE2b");
    assert_eq!(hex(&prologue(text(v, "endpoint")).expect("prologue")), text(v, "prologue"), "{name}: prologue");
    let (client, server) = handshake(v);
    check_with_snow(v);
    let suite = client.choice.cipher;
    let c = field(v, "cipher");
    assert_eq!(num(c, "id"), u64::from(suite.id()));
    assert_eq!(text(c, "name"), suite.name());
    assert_eq!(num(c, "tag_len") as usize, suite.tag_len());
    assert_eq!(num(c, "key_len"), if suite == CipherSuite::Aegis128L { 16 } else { 32 });
    assert_eq!(
        num(field(v, "initiator_to_responder"), "receiver_max_message"),
        num(field(v, "server_choice"), "max_message")
    );
    assert_eq!(
        num(field(v, "responder_to_initiator"), "receiver_max_message"),
        num(field(v, "client_offer"), "max_message")
    );
    let (client2, server2) = handshake(v);
    check_direction(v, "initiator_to_responder", client, server, suite);
    check_direction(v, "responder_to_initiator", server2, client2, suite);
    let negatives = list(v, "negative");
    assert!(negatives.len() >= 10, "{name}: negative vectors present");
    for n in negatives {
        check_negative(v, n);
    }
}

#[test]
fn session_vectors_are_reproduced() {
    let mut checked = 0;
    for (name, v) in vector_files() {
        if text(&v, "kind") == "session" {
            check_session(&name, &v);
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

// ---- key vectors --------------------------------------------------------------------

#[test]
fn key_vectors_are_reproduced() {
    let mut checked = 0;
    for (name, v) in vector_files() {
        if text(&v, "kind") != "keys" {
            continue;
        }
        for k in list(&v, "keys") {
            let kp = Keypair::from_secret_bytes(key32(k, "secret"));
            let public = bytes(k, "public");
            assert_eq!(kp.public().as_bytes()[..], public[..], "{name}: public key of the secret");
            // The text forms, computed independently of the core.
            assert_eq!(text(k, "public_text"), format!("shmsock-pk:{}", URL_SAFE_NO_PAD.encode(&public)));
            assert_eq!(text(k, "secret_text"), format!("shmsock-sk:{}", URL_SAFE_NO_PAD.encode(bytes(k, "secret"))));
            let mut digest = [0u8; 32];
            let mut h = Blake2b::new(32);
            h.update(&public);
            h.finish_into(&mut digest);
            let fp = digest[..8].chunks(2).map(hex).collect::<Vec<_>>().join(":");
            assert_eq!(text(k, "fingerprint"), fp);
            // The core agrees.
            assert_eq!(kp.public().to_text(), text(k, "public_text"));
            assert_eq!(PublicKey::from_text(text(k, "public_text")).expect("parse"), *kp.public());
            assert_eq!(kp.public().fingerprint(), text(k, "fingerprint"));
            assert_eq!(kp.to_file_text(), text(k, "key_file_text"));
            let loaded = Keypair::from_file_text(text(k, "key_file_text"), &name).expect("key file");
            assert_eq!(loaded.secret_bytes()[..], bytes(k, "secret")[..]);
            assert!(text(k, "key_file_text").contains(&format!("secret-key: {}\n", text(k, "secret_text"))));
            checked += 1;
        }
        for bad in list(&v, "invalid_public_texts") {
            let e = err_of(PublicKey::from_text(text(bad, "text")), text(bad, "description"));
            assert_eq!(e.kind().name(), text(bad, "expect_error"), "{}", text(bad, "description"));
        }
        for bad in list(&v, "invalid_key_files") {
            let e = err_of(Keypair::from_file_text(text(bad, "text"), "vector"), text(bad, "description"));
            assert_eq!(e.kind().name(), text(bad, "expect_error"), "{}", text(bad, "description"));
        }
    }
    assert!(checked >= 3);
}
