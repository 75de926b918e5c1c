//! The control records of a connect (PROTOCOL.md section 9), pinned in
//! `tests/vectors/control.json`: the HELLO, REPLY and READY records of each
//! session vector, every REJECT reason, and the segment header a server writes.
//!
//! Regenerate with `SHMSOCK_REGEN_VECTORS=1 cargo test -p shmsock --test control_vectors`.

use std::path::PathBuf;

use serde_json::{json, Value};
use shmsock::control::{self, Record};
use shmsock::handshake::RejectReason;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn generate() -> Value {
    let mut sessions = Vec::new();
    for file in ["session-chacha20-poly1305.json", "session-aegis-128l.json"] {
        let text = std::fs::read_to_string(vectors_dir().join(file)).expect("session vector");
        let v: Value = serde_json::from_str(&text).expect("json");
        let hello = unhex(v["hello"].as_str().expect("hello"));
        let reply = unhex(v["reply"].as_str().expect("reply"));
        sessions.push(json!({
            "session": file,
            "hello_record": hex(&control::encode(control::HELLO, &hello)),
            "reply_record": hex(&control::encode(control::REPLY, &reply)),
            "reply_carries_fd": v["server_choice"]["backend"] == 1,
            "ready_record": hex(&control::encode(control::READY, &[])),
        }));
    }
    let rejects: Vec<Value> = (1..=7u16)
        .filter_map(RejectReason::from_code)
        .map(|reason| {
            let text = format!("reason {}", reason as u16);
            json!({
                "reason": reason as u16,
                "name": format!("{reason:?}"),
                "text": text,
                "record": hex(&control::encode_reject(reason, &text)),
                "client_error": reason.to_error("e", "").kind().name(),
            })
        })
        .collect();
    let ring_size: u32 = 65536;
    let mut header = Vec::new();
    header.extend_from_slice(b"shmsock\0");
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&ring_size.to_le_bytes());
    header.extend_from_slice(&shmsock::segment::segment_size(ring_size).to_le_bytes());
    json!({
        "kind": "control",
        "description": "Control records of a connect (PROTOCOL.md section 9) for the two session vectors, every REJECT reason, and the first 24 bytes of a segment with 64 KiB rings (section 10).",
        "sessions": sessions,
        "rejects": rejects,
        "segment_header_64k": hex(&header),
        "segment_size_64k": shmsock::segment::segment_size(ring_size),
    })
}

#[test]
fn control_records_match_the_vectors() {
    let path = vectors_dir().join("control.json");
    let generated = serde_json::to_string_pretty(&generate()).expect("json") + "\n";
    if std::env::var_os("SHMSOCK_REGEN_VECTORS").is_some() {
        std::fs::write(&path, &generated).expect("write control.json");
    }
    let committed = std::fs::read_to_string(&path).expect("tests/vectors/control.json exists");
    assert_eq!(committed, generated, "control.json is stale; regenerate it (see this file's header)");
}

#[test]
fn committed_records_parse_back() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("control.json")).expect("file"))
        .expect("json");
    for s in v["sessions"].as_array().expect("sessions") {
        for (field, kind) in
            [("hello_record", control::HELLO), ("reply_record", control::REPLY), ("ready_record", control::READY)]
        {
            let bytes = unhex(s[field].as_str().expect("record"));
            assert_eq!(bytes[0], kind);
            assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]) as usize, bytes.len() - 4);
            let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
            use std::os::fd::AsFd;
            control::send(a.as_fd(), &bytes, &[]).expect("send");
            let mut fds = Vec::new();
            let record = control::receive(b.as_fd(), &mut fds, None).expect("receive");
            match (kind, record) {
                (control::HELLO, Record::Hello(body)) | (control::REPLY, Record::Reply(body)) => {
                    assert_eq!(body, &bytes[4..])
                }
                (control::READY, Record::Ready) => {}
                (k, r) => panic!("record type {k} parsed as {r:?}"),
            }
        }
    }
}
