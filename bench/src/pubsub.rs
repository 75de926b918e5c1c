//! Publish/subscribe against separate shmsock streams, in one launch
//! (`shmsock-bench --pubsub [--quick]`):
//!
//! - publisher CPU per 64 B message with N = 1, 2, 4, 16 subscriber processes,
//!   against sending the same message over N streams (one seal per stream);
//! - 64 B latency: a ping-pong over two topics (each side publishes, the other
//!   subscribes) against a ping-pong over one stream, so the ratio of the round
//!   trips is the ratio of the one-way figures;
//! - 1 MiB throughput to one subscriber against one stream.
//!
//! The measuring process runs on the first CPU, every peer on the second.
//! Figures are medians and are reported as ratios to the baseline measured in
//! the same launch. Peers are this binary re-executed (`__peer <cpu> pubsub
//! <role> ...`), each a [`PeerProcess`] killed on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shmsock::pubsub::{SlowSubscribers, TopicOptions};
use shmsock::{ErrorKind, Keypair, Listener, Options, PublicKey, Publisher, Stream, Subscriber};

use crate::error::{BenchError, Result};
use crate::{affinity, PeerProcess};

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn unique(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("bench-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The CPU peers run on: 1 when the machine has two or more, counted by `run`
/// before it pins this process to CPU 0 (afterwards the count would say 1).
static PEER_CPU: AtomicUsize = AtomicUsize::new(0);

fn spawn(role: &str, name: &str, key: &PublicKey) -> Result<PeerProcess> {
    let exe = std::env::current_exe()?;
    let cpu = PEER_CPU.load(Ordering::Relaxed);
    PeerProcess::spawn(&exe, cpu, &["pubsub".into(), role.into(), name.into(), key.to_string()], None)
}

/// Subscribes, retrying while the topic is not bound yet (the peer binds it).
fn subscribe_retry(name: &str, options: &Options) -> Result<Subscriber> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Subscriber::connect(name, options) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::NotFound && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Peer roles: `sub-spin NAME KEY` (subscribe, read until the topic closes),
/// `sub-echo NAME KEY` (subscribe to NAME, publish each message of at most
/// 1 KiB on NAME.b),
/// `stream-sink NAME KEY` (connect, read until closed), `stream-echo NAME KEY`.
pub fn peer(args: &[String]) -> Result<()> {
    let get =
        |i: usize| args.get(i).map(String::as_str).ok_or_else(|| BenchError::new("pubsub peer: missing argument"));
    let (role, name) = (get(0)?, get(1)?);
    let key = PublicKey::from_text(get(2)?)?;
    let spinning = Options::new().server_key(key).spin(Duration::from_secs(1)).max_message_size(2 << 20);
    match role {
        "sub-spin" => {
            let s = Subscriber::connect(name, &spinning)?;
            let mut buf = vec![0u8; 2 << 20];
            while s.recv_into(&mut buf).is_ok() {}
            Ok(())
        }
        "sub-echo" => {
            let back = Publisher::bind_with(
                &format!("{name}.b"),
                &Options::new().keypair(Keypair::generate()).spin(Duration::from_secs(1)),
                &TopicOptions::new().slots(64).max_message_size(2 << 20),
            )?;
            // The measuring side pins this key: it reads it from a file beside
            // the endpoint (the runtime directory is private to the user).
            let path = shmsock::platform::runtime_dir()?.join(format!("{name}.b.key"));
            std::fs::write(&path, back.public_key().to_string())?;
            let s = Subscriber::connect(name, &spinning)?;
            back.wait_for_subscribers(1, Some(Duration::from_secs(30)))?;
            // Small messages come back (ping-pong, and the end marker of a
            // throughput run); large ones are only read.
            let mut buf = vec![0u8; 2 << 20];
            while let Ok(d) = s.recv_into(&mut buf) {
                if d.len <= 1024 {
                    back.publish(&buf[..d.len])?;
                }
            }
            Ok(())
        }
        "stream-sink" | "stream-echo" => {
            let stream = Stream::connect(name, &spinning)?;
            let mut buf = vec![0u8; 2 << 20];
            while let Ok(n) = stream.recv_into(&mut buf) {
                if role == "stream-echo" {
                    stream.send(&buf[..n])?;
                }
            }
            Ok(())
        }
        other => Err(BenchError::new(format!("pubsub peer: unknown role {other}"))),
    }
}

/// Publisher CPU per message (ns): pub/sub with `n` subscribers, and `n` streams.
fn cpu_per_message(n: usize, messages: usize, runs: usize) -> Result<(f64, f64)> {
    let kp = Keypair::generate();
    let msg = [7u8; 64];
    // Publish/subscribe (latest: the publisher never waits, so only its own work counts).
    let name = unique("cpu");
    let topic = TopicOptions::new().slots(1024).max_message_size(1024).policy(SlowSubscribers::Latest);
    let p = Publisher::bind_with(&name, &Options::new().keypair(kp.clone()), &topic)?;
    let peers = (0..n).map(|_| spawn("sub-spin", &name, kp.public())).collect::<Result<Vec<_>>>()?;
    p.wait_for_subscribers(n, Some(Duration::from_secs(60)))?;
    let mut pubsub = Vec::new();
    for run in 0..=runs {
        let t0 = thread_cpu();
        for _ in 0..messages {
            p.publish(&msg)?;
        }
        if run > 0 {
            pubsub.push((thread_cpu() - t0).as_nanos() as f64 / messages as f64);
        }
    }
    p.close();
    drop(peers);
    // n streams; rings large enough that no send ever waits.
    let name = unique("cpu-streams");
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()).ring_size(8 << 20))?;
    let peers = (0..n).map(|_| spawn("stream-sink", &name, kp.public())).collect::<Result<Vec<_>>>()?;
    let streams = (0..n)
        .map(|_| listener.accept_timeout(Some(Duration::from_secs(60))))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut separate = Vec::new();
    for run in 0..=runs {
        let t0 = thread_cpu();
        for _ in 0..messages {
            for s in &streams {
                s.send(&msg)?;
            }
        }
        if run > 0 {
            separate.push((thread_cpu() - t0).as_nanos() as f64 / messages as f64);
        }
    }
    drop(streams);
    drop(peers);
    Ok((median(pubsub), median(separate)))
}

/// Round-trip times (µs) of 64 B ping-pong: over two topics, and over a stream.
fn latency(rounds: usize) -> Result<(f64, f64)> {
    let kp = Keypair::generate();
    let msg = [9u8; 64];
    let name = unique("lat");
    let p = Publisher::bind_with(&name, &Options::new().keypair(kp.clone()), &TopicOptions::new().slots(64))?;
    let peer = spawn("sub-echo", &name, kp.public())?;
    p.wait_for_subscribers(1, Some(Duration::from_secs(60)))?;
    let back_key = wait_back_key(&format!("{name}.b"))?;
    let back = subscribe_retry(&format!("{name}.b"), &Options::new().server_key(back_key))?;
    let mut pubsub = Vec::with_capacity(rounds);
    for i in 0..rounds + rounds / 10 {
        let t0 = Instant::now();
        p.publish(&msg)?;
        back.recv()?;
        if i >= rounds / 10 {
            pubsub.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    p.close();
    drop(peer);
    let name = unique("lat-stream");
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()))?;
    let peer = spawn("stream-echo", &name, kp.public())?;
    let s = listener.accept_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = [0u8; 128];
    let mut stream = Vec::with_capacity(rounds);
    for i in 0..rounds + rounds / 10 {
        let t0 = Instant::now();
        s.send(&msg)?;
        s.recv_into(&mut buf)?;
        if i >= rounds / 10 {
            stream.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(s);
    drop(peer);
    Ok((median(pubsub), median(stream)))
}

/// The echo peer's topic key: the peer writes it next to its endpoint.
fn wait_back_key(name: &str) -> Result<PublicKey> {
    let path = shmsock::platform::runtime_dir()?.join(format!("{name}.key"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(key) = PublicKey::from_text(text.trim()) {
                let _ = std::fs::remove_file(&path);
                return Ok(key);
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::new("the echo peer did not publish its key"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 1 MiB throughput (GB/s) to one subscriber and over one stream, each
/// acknowledged at the end by the echo of a 1-byte message.
fn throughput(messages: usize) -> Result<(f64, f64)> {
    let kp = Keypair::generate();
    let big = vec![3u8; 1 << 20];
    let name = unique("tput");
    let topic = TopicOptions::new().slots(8).max_message_size(1 << 20);
    let p = Publisher::bind_with(&name, &Options::new().keypair(kp.clone()), &topic)?;
    let peer = spawn("sub-echo", &name, kp.public())?;
    p.wait_for_subscribers(1, Some(Duration::from_secs(60)))?;
    let back_key = wait_back_key(&format!("{name}.b"))?;
    let back = subscribe_retry(&format!("{name}.b"), &Options::new().server_key(back_key).max_message_size(2 << 20))?;
    let t0 = Instant::now();
    for _ in 0..messages {
        p.publish(&big)?;
    }
    p.publish(b"!")?;
    // The end marker comes back once the peer read every message before it.
    back.recv()?;
    let pubsub = (messages << 20) as f64 / t0.elapsed().as_secs_f64() / 1e9;
    p.close();
    drop(peer);
    let name = unique("tput-stream");
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()))?;
    let peer = spawn("stream-sink", &name, kp.public())?;
    let s = listener.accept_timeout(Some(Duration::from_secs(60)))?;
    let t0 = Instant::now();
    for _ in 0..messages {
        s.send(&big)?;
    }
    // A clean close is delivered after every message: the peer has read them
    // all when our close completes and it exits.
    s.close()?;
    drop(peer);
    let stream = (messages << 20) as f64 / t0.elapsed().as_secs_f64() / 1e9;
    Ok((pubsub, stream))
}

/// Runs the pub/sub bench and prints its report. `quick`: fewer messages.
pub fn run(quick: bool) -> Result<()> {
    shmsock::sodium::init()?;
    if affinity::available_cpus() > 1 {
        PEER_CPU.store(1, Ordering::Relaxed);
        affinity::pin(&[0])?;
    }
    let (mut messages, runs, rounds, big) = if quick { (2000, 3, 2000, 20) } else { (4000, 5, 10000, 100) };
    if let Some(n) = std::env::var("SHMSOCK_BENCH_PUBSUB_MESSAGES").ok().and_then(|n| n.parse().ok()) {
        messages = n;
    }
    println!(
        "shmsock pub/sub bench (one launch; publisher on CPU 0, every peer on CPU 1; load average {:.1})",
        crate::load_average()
    );
    println!("\npublisher CPU per 64 B message (median of {runs} runs of {messages} messages):");
    let mut at1 = None;
    for n in [1usize, 2, 4, 16] {
        let (pubsub, streams) = cpu_per_message(n, messages, runs)?;
        let base = *at1.get_or_insert(pubsub);
        println!(
            "  N={n:>2}: pub/sub {pubsub:>8.0} ns  ({:.2}x N=1)   {n} streams {streams:>8.0} ns  (streams/pubsub {:.1}x)",
            pubsub / base,
            streams / pubsub
        );
    }
    let (pubsub_rtt, stream) = latency(rounds)?;
    println!(
        "\n64 B round trip (median of {rounds}): two topics {pubsub_rtt:.2} us, one stream {stream:.2} us: pub/sub one-way = {:.2}x the stream's",
        pubsub_rtt / stream
    );
    let (pubsub, stream) = throughput(big)?;
    println!(
        "1 MiB throughput ({big} messages): pub/sub {pubsub:.2} GB/s, stream {stream:.2} GB/s ({:.2}x)",
        pubsub / stream
    );
    match iceoryx2_round_trip() {
        Some(ice) => println!(
            "iceoryx2 (unencrypted pub/sub, busy-polling) 64 B round trip {ice:.2} us: shmsock pub/sub is {:.2}x it",
            pubsub_rtt / ice
        ),
        None => println!(
            "iceoryx2: not measured (build bench/iceoryx2-cmp with `cargo build --release` in that directory first)"
        ),
    }
    Ok(())
}

/// Runs the iceoryx2 comparison binary (a separate crate, built on its own)
/// with the same placement; None when it is not built or fails.
fn iceoryx2_round_trip() -> Option<f64> {
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("iceoryx2-cmp/target/release/iceoryx2-cmp");
    let out = std::process::Command::new(exe).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix("iceoryx2 64B round-trip median ")?.strip_suffix(" us")?.parse().ok())
}
