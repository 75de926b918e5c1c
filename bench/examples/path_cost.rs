//! The CPU cost of shmsock's send + recv_into path for one message, with no
//! cross-core traffic and no waiting (one thread sends on one end and receives on
//! the other, so everything stays in its cache), next to the cost of the bare
//! AEAD seal + open of the same size. The difference is the transport's own
//! software overhead (locks, checks, ring bookkeeping, copies, fences).
//!
//! Run: `cargo run --release -p shmsock-bench --example path_cost`

use std::time::{Duration, Instant};

use shmsock::frame::{FrameHeader, HEADER_LEN};
use shmsock::sodium::Aead;
use shmsock::{Keypair, Listener, Options, Stream};

fn main() {
    shmsock_bench::affinity::pin(&[0]).expect("pin");
    for chacha in [false, true] {
        let name = format!("path-cost-{}-{}", std::process::id(), chacha as u8);
        let kp = Keypair::generate();
        let pk = *kp.public();
        let listener = Listener::bind(&name, &Options::new().keypair(kp).require_chacha(chacha)).unwrap();
        let n2 = name.clone();
        let client = std::thread::spawn(move || {
            Stream::connect(&n2, &Options::new().server_key(pk).require_chacha(chacha)).unwrap()
        });
        let server = listener.accept().unwrap();
        let client = client.join().unwrap();
        let aead = if chacha { Aead::ChaCha20Poly1305 } else { Aead::Aegis128L };
        for size in [64usize, 1024] {
            let msg = vec![7u8; size];
            let mut buf = vec![0u8; size];
            let iters = 400_000;
            let mut best_path = f64::MAX;
            let mut best_send = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                let mut send = Duration::ZERO;
                for _ in 0..iters {
                    let s = Instant::now();
                    client.send(&msg).unwrap();
                    send += s.elapsed();
                    server.recv_into(&mut buf).unwrap();
                }
                // Each iteration also read the clock twice (about 2 x 23 ns here).
                best_path = best_path.min(t.elapsed().as_nanos() as f64 / iters as f64);
                best_send = best_send.min(send.as_nanos() as f64 / iters as f64);
            }
            let key = [9u8; 32];
            let header = FrameHeader::data(size as u32, size as u32, 0).encode();
            let mut sealed = vec![0u8; HEADER_LEN + size + aead.tag_len()];
            let mut out = vec![0u8; size];
            let mut best_aead = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for i in 0..iters as u64 {
                    sealed[..HEADER_LEN].copy_from_slice(&header);
                    let (ct, tag) = sealed[HEADER_LEN..].split_at_mut(size);
                    aead.seal(&key, i, &header, &msg, ct, tag);
                    let (ct, tag) = sealed[HEADER_LEN..].split_at(size);
                    assert!(aead.open(&key, i, &header, ct, tag, &mut out));
                }
                best_aead = best_aead.min(t.elapsed().as_nanos() as f64 / iters as f64);
            }
            println!(
                "{:<18} {:>5} B: send+recv_into {:>6.0} ns (send alone incl. one clock read {:>5.0} ns); bare seal+open {:>6.0} ns; transport overhead ~{:>4.0} ns per message",
                server.cipher().name(),
                size,
                best_path,
                best_send,
                best_aead,
                best_path - best_aead - 46.0
            );
        }
    }
}
