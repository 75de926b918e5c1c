//! Writes the committed seed inputs of the fuzz targets to `core/fuzz/seeds/`.
//!
//! Run from `core/fuzz` with `cargo run --example gen_seeds`. The keys are the
//! fixed ones of `shmsock_fuzz`, so the output is the same on every run.

use std::fs;
use std::path::{Path, PathBuf};

use shmsock::control;
use shmsock::fuzzing::CONTROL_LEN;
use shmsock::handshake::{Backend, ClientOffer, RejectReason, ServerChoice};
use shmsock::ring::record_len;
use shmsock::segment::TAIL;
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
    let rp = root.join("receive_path");
    let cr = root.join("control_records");
    fs::create_dir_all(&rp).unwrap();
    fs::create_dir_all(&cr).unwrap();

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
    let named =
        ServerChoice { backend: Backend::Named, segment_name: "/shmsock-fuzz.seed_1".into(), ..accepted.choice };
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

    // receive_path: valid frames laid out in the ring as a peer writes them,
    // each write at most 255 bytes, then the tail published.
    for (config, suite) in [(0u8, CipherSuite::ChaCha20Poly1305), (1u8, CipherSuite::Aegis128L)] {
        let mut tx = fx::sealer(suite);
        let mut input = vec![config];
        let mut at = 0usize;
        let put = |input: &mut Vec<u8>, at: &mut usize, frame: &[u8]| {
            for (i, chunk) in frame.chunks(255).enumerate() {
                input.extend(fx::write_op(CONTROL_LEN + *at + i * 255, chunk));
            }
            *at += record_len(frame.len()) as usize;
        };
        for frame in tx.seal_message(b"hello", 1024).unwrap() {
            put(&mut input, &mut at, &frame);
        }
        for frame in tx.seal_message(&[0x5a; 600], 256).unwrap() {
            put(&mut input, &mut at, &frame);
        }
        input.extend(fx::write_op(TAIL, &(at as u64).to_le_bytes()));
        assert_eq!(fx::replay_receive(&input), [b"hello".to_vec(), vec![0x5a; 600]]);
        write(&rp, &format!("messages-{}", suite.name()), &input);

        // Wrapping: one large frame fills most of the ring and is consumed;
        // the next does not fit before the end, so a PAD record (zero bytes,
        // as the ring starts) skips the rest and the frame lands at offset 0.
        let mut tx = fx::sealer(suite);
        let mut input = vec![config];
        let mut at = 0usize;
        for frame in tx.seal_message(&[0x11; 3000], 4000).unwrap() {
            put(&mut input, &mut at, &frame);
        }
        input.extend(fx::write_op(TAIL, &(at as u64).to_le_bytes()));
        let mut wrapped = 0usize;
        let frames = tx.seal_message(&[0x22; 1500], 4000).unwrap();
        for frame in &frames {
            put(&mut input, &mut wrapped, frame);
        }
        let tail = fx::RING_SIZE as usize + wrapped;
        input.extend(fx::write_op(TAIL, &(tail as u64).to_le_bytes()));
        assert_eq!(fx::replay_receive(&input), [vec![0x11; 3000], vec![0x22; 1500]], "the PAD seed wraps");
        write(&rp, &format!("pad-wrap-{}", suite.name()), &input);

        // A CLOSE after a message.
        let mut tx = fx::sealer(suite);
        let mut input = vec![config];
        let mut at = 0usize;
        for frame in tx.seal_message(b"bye", 1024).unwrap() {
            put(&mut input, &mut at, &frame);
        }
        put(&mut input, &mut at, &tx.seal_close().unwrap());
        input.extend(fx::write_op(TAIL, &(at as u64).to_le_bytes()));
        assert_eq!(fx::replay_receive(&input), [b"bye".to_vec()]);
        write(&rp, &format!("close-{}", suite.name()), &input);
    }

    // control_records: each record type, well-formed and not.
    write(&cr, "hello", &control::encode(control::HELLO, &hello));
    write(
        &cr,
        "reply-then-ready",
        &[control::encode(control::REPLY, &[7; 48]), control::encode(control::READY, &[])].concat(),
    );
    write(&cr, "reject", &control::encode_reject(RejectReason::ClientNotAllowed, "not on the allow-list"));
    write(&cr, "reserved-byte", &[control::HELLO, 1, 2, 0, 9, 9]);
    write(&cr, "unknown-type", &[9, 0, 0, 0]);

    // topic_receive: publishes and receives that deliver, on both policies and
    // ciphers, a rotation, a wrap of the 4-slot ring, and a tampered slot.
    let tr = root.join("topic_receive");
    fs::create_dir_all(&tr).unwrap();
    for (config, label) in [(0u8, "chacha-reliable"), (1, "aegis-reliable"), (2, "chacha-latest"), (3, "aegis-latest")]
    {
        use fx::TopicOp::{Publish, Receive, Rotate, Tamper};
        let ops = [Publish(0), Publish(5), Receive, Rotate, Publish(300), Publish(512), Receive];
        let input = fx::encode_topic_ops(config, &ops);
        assert_eq!(fx::replay_topic(&input), [0, 1, 2, 3], "the {label} seed delivers");
        write(&tr, &format!("deliver-{label}"), &input);
        let ops = [Publish(64), Publish(64), Publish(64), Publish(64), Publish(64), Publish(64), Receive];
        write(&tr, &format!("wrap-{label}"), &fx::encode_topic_ops(config, &ops));
        let ops = [Publish(64), Tamper(300, vec![0xff; 16]), Receive, Publish(8), Receive];
        write(&tr, &format!("tamper-{label}"), &fx::encode_topic_ops(config, &ops));
    }
}
