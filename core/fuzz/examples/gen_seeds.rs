//! Writes the committed seed inputs of the fuzz targets to `core/fuzz/seeds/`.
//!
//! Run from `core/fuzz` with `cargo run --example gen_seeds`. The keys are the
//! fixed ones of `shmsock_fuzz`, so the output is the same on every run.

use std::fs;
use std::path::{Path, PathBuf};

use shmsock::handshake::{Backend, ClientOffer, ServerChoice};
use shmsock::CipherSuite;
use shmsock_fuzz as fx;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("wrote {} ({} bytes)", path.display(), bytes.len());
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let hs = root.join("handshake_reader");
    let fr = root.join("frame_opener");
    fs::create_dir_all(&hs).unwrap();
    fs::create_dir_all(&fr).unwrap();

    // handshake_reader: a valid hello for the fixed server, and valid replies for
    // the fixed client (memfd; named with a segment name).
    let mut client = fx::initiator(fx::offer());
    let hello = client.write_hello().unwrap();
    write(&hs, "hello-valid", &hello);
    let mut server = fx::responder();
    let accepted = server.read_hello(&hello, &fx::policy()).unwrap();
    let (reply, _) = server.write_reply(&accepted.choice).unwrap();
    client.read_reply(&reply).expect("the seed reply is valid");
    write(&hs, "reply-valid-memfd", &reply);

    let mut client = fx::initiator(fx::offer());
    let hello2 = client.write_hello().unwrap();
    assert_eq!(hello, hello2, "the fixed hello is deterministic");
    let mut server = fx::responder();
    let accepted = server.read_hello(&hello2, &fx::policy()).unwrap();
    let named = ServerChoice { backend: Backend::Named, segment_name: "/shmsock-fuzz.seed_1".into(), ..accepted.choice };
    let (reply, _) = server.write_reply(&named).unwrap();
    client.read_reply(&reply).expect("the named seed reply is valid");
    write(&hs, "reply-valid-named", &reply);

    let mut truncated = hello.clone();
    truncated.truncate(96);
    write(&hs, "hello-truncated", &truncated);

    // frame_opener: valid frame streams for both suites, and the two payloads.
    for (config, suite) in [(0u8, CipherSuite::ChaCha20Poly1305), (1u8, CipherSuite::Aegis128L)] {
        let mut tx = fx::sealer(suite);
        let mut frames = tx.seal_message(b"hello", 64).unwrap();
        frames.extend(tx.seal_message(&[], 64).unwrap());
        frames.extend(tx.seal_message(&[0x5a; 300], 100).unwrap());
        frames.push(tx.seal_close().unwrap());
        write(&fr, &format!("frames-{}", suite.name()), &fx::join_frames(config, &frames));
    }
    let offer = ClientOffer { ciphers: vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305], ..fx::offer() };
    write(&fr, "client-offer", &[&[0u8][..], &offer.encode()].concat());
    let choice = ServerChoice {
        version: 1,
        cipher: CipherSuite::ChaCha20Poly1305,
        max_message: 1 << 20,
        ring_size: 1 << 16,
        backend: Backend::Named,
        segment_name: "/shmsock-abc".into(),
    };
    write(&fr, "server-choice", &[&[0u8][..], &choice.encode()].concat());
}
