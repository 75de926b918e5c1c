//! The crypto layer against its floor, measured in one launch.
//!
//! Run with `cargo bench -p shmsock --bench crypto`. Every figure is a ratio to
//! a baseline timed in the same process, interleaved with it, as medians over
//! several repetitions (DESIGN.md, "Performance rules"):
//!
//! (a) a whole in-process handshake (`Initiator::new`, `write_hello`,
//!     `Responder::new`, `read_hello`, `write_reply`, `read_reply`) against the
//!     X25519 operations it performs: 2 fixed-base multiplications (the two
//!     ephemeral keys) and 8 Diffie-Hellman operations (es, ss, ee, se on each
//!     side). Goal: at most 2x.
//! (b) sealing and opening one frame (`FrameSealer::seal_into`, then
//!     `FrameOpener::check_header` + `open`, or `MessageReader::push`) against the
//!     raw libsodium seal and open (`sodium::Aead`) of the same plaintext with the
//!     same 16-byte header as associated data into the same kind of buffers.
//!     Goal: within 1.1x.
//!
//! Arguments: `--quick` runs fewer repetitions (for a smoke run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use shmsock::cipher::{RecvCipher, SendCipher};
use shmsock::frame::{fragments, FrameHeader, FrameOpener, FrameSealer, MessageReader, Opened, Received, HEADER_LEN};
use shmsock::handshake::{AllowedClients, Backend, ClientOffer, Initiator, Responder, ServerPolicy};
use shmsock::sodium::{self, Aead, Secret};
use shmsock::{CipherSuite, Keypair};

/// Median of per-operation times over `reps` repetitions of `iters` operations;
/// `a` and `b` alternate within each repetition so drift hits both alike.
fn compare(reps: usize, iters: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    // Warm up both (caches, page faults of fresh buffers, CPU frequency).
    for _ in 0..iters.div_ceil(4).max(1) {
        a();
        b();
    }
    let mut ta = Vec::with_capacity(reps);
    let mut tb = Vec::with_capacity(reps);
    for rep in 0..reps {
        let run = |f: &mut dyn FnMut(), out: &mut Vec<Duration>| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            out.push(start.elapsed() / iters as u32);
        };
        if rep % 2 == 0 {
            run(&mut a, &mut ta);
            run(&mut b, &mut tb);
        } else {
            run(&mut b, &mut tb);
            run(&mut a, &mut ta);
        }
    }
    (median(ta), median(tb))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

struct Row {
    what: String,
    ours: Duration,
    base: Duration,
    baseline: &'static str,
    goal: f64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.ours.as_secs_f64() / self.base.as_secs_f64()
    }
}

fn handshake_row(reps: usize) -> Row {
    let server = Keypair::generate();
    let client = Keypair::generate();
    let offer = ClientOffer::local(false, 1 << 20, 0, Backend::Memfd.bit() | Backend::Named.bit());
    let policy = ServerPolicy {
        versions: vec![1],
        ciphers: CipherSuite::local_offer(false),
        max_message: 1 << 20,
        ring_size: 1 << 20,
        allowed: AllowedClients::Only(vec![*client.public()]),
        backend: Backend::Memfd,
    };
    let endpoint = "bench.handshake";
    let handshake = || {
        let mut i = Initiator::new(&client, server.public(), endpoint, offer.clone()).unwrap();
        let hello = i.write_hello().unwrap();
        let mut r = Responder::new(&server, endpoint).unwrap();
        let accepted = r.read_hello(&hello, &policy).unwrap();
        let (reply, server_session) = r.write_reply(&accepted.choice).unwrap();
        let client_session = i.read_reply(&reply).unwrap();
        assert_eq!(client_session.handshake_hash, server_session.handshake_hash);
        black_box((client_session, server_session));
    };
    // The X25519 work of one handshake: two ephemeral keys (fixed-base), then
    // es, ss (client), es, ss (server), ee, se (server), ee, se (client).
    let scalars: Vec<Secret<32>> = (0..10).map(|_| Secret::random()).collect();
    let points: Vec<[u8; 32]> = (0..8).map(|_| *Keypair::generate().public().as_bytes()).collect();
    let x25519_only = || {
        for s in &scalars[..2] {
            black_box(sodium::x25519_base(black_box(s.expose())));
        }
        for (s, p) in scalars[2..].iter().zip(&points) {
            black_box(sodium::x25519(black_box(s.expose()), black_box(p)).unwrap());
        }
    };
    let (ours, base) = compare(reps, 40, handshake, x25519_only);
    Row { what: "handshake (IK, both sides)".into(), ours, base, baseline: "2 base + 8 X25519", goal: 2.0 }
}

fn suite_rows(suite: CipherSuite, reps: usize) -> Vec<Row> {
    let aead = match suite {
        CipherSuite::ChaCha20Poly1305 => Aead::ChaCha20Poly1305,
        CipherSuite::Aegis128L => Aead::Aegis128L,
    };
    let mut rows = Vec::new();
    for (size, iters, label) in [(64usize, 20_000usize, "64 B"), (1 << 20, 30, "1 MiB")] {
        let key = Secret::<32>::random();
        let plaintext: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let header = FrameHeader::data(size as u32, size as u32, 0);
        let sealed_len = header.sealed_len(suite);

        // Ours through the zero-allocation path: seal_into + check_header + open.
        let mut sealer = FrameSealer::new(SendCipher::new(suite, key.clone()));
        let mut opener = FrameOpener::new(RecvCipher::new(suite, key.clone()), u32::MAX);
        let mut frame = vec![0u8; sealed_len];
        let mut out = vec![0u8; size];
        let ours = || {
            sealer.seal_into(&header, black_box(&plaintext), &mut frame).unwrap();
            let head: &[u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
            let h = opener.check_header(head).unwrap();
            let opened = opener.open(&h, &frame, &mut out).unwrap();
            debug_assert!(matches!(opened, Opened::Fragment { last: true, .. }));
            black_box(&out);
        };
        // Raw libsodium: the same header bytes as associated data, the same
        // buffer layout (header || ciphertext || tag), the same counter nonces.
        let raw_key = key.clone();
        let mut raw_frame = vec![0u8; sealed_len];
        let mut raw_out = vec![0u8; size];
        let mut n_seal = 0u64;
        let mut n_open = 0u64;
        let raw = || {
            let ad = header.encode();
            raw_frame[..HEADER_LEN].copy_from_slice(&ad);
            let (ct, tag) = raw_frame[HEADER_LEN..].split_at_mut(size);
            aead.seal(raw_key.expose(), n_seal, &ad, black_box(&plaintext), ct, tag);
            n_seal += 1;
            let (ad, rest) = raw_frame.split_at(HEADER_LEN);
            let (ct, tag) = rest.split_at(size);
            assert!(aead.open(raw_key.expose(), n_open, ad, ct, tag, &mut raw_out));
            n_open += 1;
            black_box(&raw_out);
        };
        let (o, b) = compare(reps, iters, ours, raw);
        rows.push(Row {
            what: format!("{} {label} seal_into+open", suite.name()),
            ours: o,
            base: b,
            baseline: "raw seal+open",
            goal: 1.1,
        });

        // Ours through MessageReader (the owned-buffer reader of tests and tools).
        let mut sealer = FrameSealer::new(SendCipher::new(suite, key.clone()));
        let mut reader = MessageReader::new(FrameOpener::new(RecvCipher::new(suite, key.clone()), u32::MAX));
        let mut frame = vec![0u8; sealed_len];
        let ours_reader = || {
            sealer.seal_into(&header, black_box(&plaintext), &mut frame).unwrap();
            match reader.push(&frame).unwrap() {
                Some(Received::Message(m)) => {
                    black_box(m);
                }
                other => panic!("expected a message, got {other:?}"),
            }
        };
        let raw_key = key.clone();
        let mut raw_frame = vec![0u8; sealed_len];
        let mut raw_out = vec![0u8; size];
        let mut n = 0u64;
        let raw = || {
            let ad = header.encode();
            raw_frame[..HEADER_LEN].copy_from_slice(&ad);
            let (ct, tag) = raw_frame[HEADER_LEN..].split_at_mut(size);
            aead.seal(raw_key.expose(), n, &ad, black_box(&plaintext), ct, tag);
            let (ad, rest) = raw_frame.split_at(HEADER_LEN);
            let (ct, tag) = rest.split_at(size);
            assert!(aead.open(raw_key.expose(), n, ad, ct, tag, &mut raw_out));
            n += 1;
            black_box(&raw_out);
        };
        let (o, b) = compare(reps, iters, ours_reader, raw);
        rows.push(Row {
            what: format!("{} {label} seal_into+MsgReader", suite.name()),
            ours: o,
            base: b,
            baseline: "raw seal+open",
            goal: 1.1,
        });
    }

    // A 1 MiB message as the transport cuts it: 16 fragments of 64 KiB.
    let key = Secret::<32>::random();
    let size = 1usize << 20;
    let max_fragment = 64 * 1024u32;
    let plaintext: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let pieces: Vec<(FrameHeader, usize, usize)> = fragments(size as u32, max_fragment)
        .map(|(off, len)| (FrameHeader::data(len, size as u32, off), off as usize, len as usize))
        .collect();
    let mut sealer = FrameSealer::new(SendCipher::new(suite, key.clone()));
    let mut opener = FrameOpener::new(RecvCipher::new(suite, key.clone()), u32::MAX);
    let mut frame = vec![0u8; HEADER_LEN + max_fragment as usize + suite.tag_len()];
    let mut out = vec![0u8; size];
    let ours = || {
        for (h, off, len) in &pieces {
            let f = &mut frame[..h.sealed_len(suite)];
            sealer.seal_into(h, &plaintext[*off..off + len], f).unwrap();
            let head: &[u8; HEADER_LEN] = f[..HEADER_LEN].try_into().unwrap();
            let checked = opener.check_header(head).unwrap();
            opener.open(&checked, f, &mut out[*off..off + len]).unwrap();
        }
        black_box(&out);
    };
    let raw_key = key.clone();
    let mut raw_frame = vec![0u8; HEADER_LEN + max_fragment as usize + suite.tag_len()];
    let mut raw_out = vec![0u8; size];
    let mut n = 0u64;
    let raw = || {
        for (h, off, len) in &pieces {
            let f = &mut raw_frame[..h.sealed_len(suite)];
            let ad = h.encode();
            f[..HEADER_LEN].copy_from_slice(&ad);
            let (ct, tag) = f[HEADER_LEN..].split_at_mut(*len);
            aead.seal(raw_key.expose(), n, &ad, &plaintext[*off..off + len], ct, tag);
            let (ad, rest) = f.split_at(HEADER_LEN);
            let (ct, tag) = rest.split_at(*len);
            assert!(aead.open(raw_key.expose(), n, ad, ct, tag, &mut raw_out[*off..off + len]));
            n += 1;
        }
        black_box(&raw_out);
    };
    let (o, b) = compare(reps, 30, ours, raw);
    rows.push(Row {
        what: format!("{} 1 MiB as 16x64 KiB frames", suite.name()),
        ours: o,
        base: b,
        baseline: "raw seal+open",
        goal: 1.1,
    });
    rows
}

fn main() {
    // `cargo bench` passes `--bench`; ignore what we do not know.
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 5 } else { 15 };
    sodium::init().expect("libsodium");

    println!("shmsock crypto bench: medians of {reps} repetitions, ratios to a baseline timed in this launch");
    println!(
        "CPU AES instructions: {} (AEGIS-128L is {} by this machine)",
        if sodium::has_aes_hardware() { "yes" } else { "no" },
        if sodium::has_aes_hardware() { "offered" } else { "not offered" }
    );
    let mut rows = vec![handshake_row(reps)];
    for suite in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
        rows.extend(suite_rows(suite, reps));
    }

    println!();
    println!(
        "{:<46} {:>11} {:>11}  {:<18} {:>6}  {:>6}",
        "operation", "ours", "baseline", "baseline is", "ratio", "goal"
    );
    println!("{}", "-".repeat(114));
    let mut missed = 0;
    for r in &rows {
        let ok = r.ratio() <= r.goal;
        if !ok {
            missed += 1;
        }
        println!(
            "{:<46} {:>11} {:>11}  {:<18} {:>5.2}x  <={:.1}x  {}",
            r.what,
            fmt(r.ours),
            fmt(r.base),
            r.baseline,
            r.ratio(),
            r.goal,
            if ok { "ok" } else { "MISSED" }
        );
    }
    println!();
    println!("{} of {} goals met", rows.len() - missed, rows.len());
}
