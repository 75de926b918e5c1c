//! Tamper tests: a third party (this test process) maps the live segment of a
//! connection between two child processes, through `/proc/<pid>/fd` of the
//! client that holds its memfd, and writes garbage into the counters, the
//! waiter words, frame headers and ciphertext. The tampered connection must end
//! with an error (ProtocolViolation or AuthenticationFailed where it is
//! detected, PeerGone on the other side), never deliver a wrong or partial
//! message, never panic, and another connection of the same server keeps
//! working. Also: segments with missing seals, the wrong size or a bad header
//! are refused, through the public API and end to end.

mod common;

use std::time::Duration;

use common::*;
use shmsock::segment::{self, Segment};
use shmsock::{CipherSuite, ErrorKind, Keypair, Options, Stream};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

const C2S: usize = segment::ring_control_offset(segment::CLIENT_TO_SERVER);
const S2C: usize = segment::ring_control_offset(segment::SERVER_TO_CLIENT);

/// Errors a side may end with when it detects tampering itself.
const DETECTED: [&str; 2] = ["ProtocolViolation", "AuthenticationFailed"];

/// A server with one bystander connection that echoes throughout, and victims.
struct Rig {
    name: String,
    kp: Keypair,
    server: Child,
    bystander: Child,
    next_conn: usize,
    tag: u64,
}

struct Victim {
    client: Child,
    conn: usize,
    map: PeerMapping,
    cipher: CipherSuite,
    ring: usize,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        init();
        let name = unique_name(tag);
        let kp = Keypair::generate();
        // The server allows rings up to 64 KiB; clients ask for 4 KiB unless told.
        let mut server = spawn_server("server", &name, &kp, &[("RING", "65536".into()), ("BACKEND", "memfd".into())]);
        let (bystander, _) = spawn_client("bystander", &name, kp.public(), &[("RING", "4096".into())]);
        server.expect("0 ACCEPTED");
        server.cmd("0 bg echo quiet");
        let mut rig = Rig { name, kp, server, bystander, next_conn: 1, tag: next_tag() };
        rig.check_bystander();
        rig
    }

    fn check_bystander(&mut self) {
        self.tag += 100;
        self.bystander.cmd(&format!("0 roundtrip 4 {} 0,100,5000,30000", self.tag));
        assert_eq!(self.bystander.result(0), Ok("4".into()), "the bystander connection stopped working");
    }

    /// A new client process; warmed up with one message each way so the
    /// counters are not zero.
    fn victim(&mut self, extra: Settings<'_>) -> Victim {
        let mut settings = vec![("RING", "4096".to_string())];
        settings.extend(extra.iter().cloned());
        let (mut client, info) = spawn_client("victim", &self.name, self.kp.public(), &settings);
        let conn = self.next_conn;
        self.next_conn += 1;
        self.server.expect(&format!("{conn} ACCEPTED"));
        let cipher = if info[0] == "Aegis128L" { CipherSuite::Aegis128L } else { CipherSuite::ChaCha20Poly1305 };
        let ring: usize = info[2].parse().unwrap();
        let map = PeerMapping::of_process(client.pid);
        assert_eq!(map.len() as u64, segment::segment_size(ring as u32));
        self.tag += 100;
        client.cmd(&format!("0 send 100 {}", self.tag));
        assert_eq!(client.result(0), Ok("100".into()));
        assert_eq!(self.server.recv(conn, WAIT), Ok(digest(&message(self.tag, 100))));
        self.server.cmd(&format!("{conn} send 100 {}", self.tag + 1));
        assert_eq!(self.server.result(conn), Ok("100".into()));
        assert_eq!(client.recv(0, WAIT), Ok(digest(&message(self.tag + 1, 100))));
        Victim { client, conn, map, cipher, ring }
    }

    /// Ends a victim: checks it exited cleanly (no panic) and the bystander works.
    fn finish(&mut self, mut v: Victim) {
        v.client.quit();
        drop(v.map);
        self.check_bystander();
    }

    fn quit(mut self) {
        self.bystander.quit();
        self.server.quit();
        assert_no_endpoint_files(&self.name);
    }
}

fn assert_detected(result: Result<String, String>, what: &str) {
    match result {
        Err(kind) if DETECTED.contains(&kind.as_str()) => {}
        other => panic!("{what}: expected ProtocolViolation or AuthenticationFailed, got {other:?}"),
    }
}

/// Garbage in the tail and head counters of both rings is caught by the side
/// that reads them; the other side sees PeerGone; nothing is delivered.
#[test]
fn garbage_counters() {
    let mut rig = Rig::new("tamper-counters");
    // (ring control, counter, who reads it: 'S' the server or 'C' the client, what that side does)
    let cases: [(usize, usize, char); 4] = [
        (C2S, segment::TAIL, 'S'), // the server consumes client->server
        (S2C, segment::HEAD, 'S'), // the server produces server->client
        (C2S, segment::HEAD, 'C'), // the client produces client->server
        (S2C, segment::TAIL, 'C'), // the client consumes server->client
    ];
    for (ring, counter, reader) in cases {
        let probe = rig.victim(&[]);
        let cur = probe.map.load_u64(ring + counter);
        let ring_size = probe.ring as u64;
        rig.finish(probe);
        let values = |cur: u64| -> Vec<u64> {
            if counter == segment::TAIL {
                // The last: tail behind the consumer's head.
                vec![u64::MAX, cur + 8, cur + 4096 + 16, 1 << 63, cur - 16]
            } else {
                // The producer reads the head again only once the room it
                // last saw runs out, which a message of the ring's size makes
                // happen before its tail passes `cur + ring_size`: values past
                // that (or misaligned) are out of range whenever it reads them.
                vec![u64::MAX, cur + 8, cur + ring_size + 16, 1 << 63]
            }
        };
        for garbage in values(cur) {
            let what = format!("ring {ring:#x} counter {counter:#x} := {garbage:#x} (was {cur:#x})");
            let mut v = rig.victim(&[]);
            assert_eq!(v.map.load_u64(ring + counter), cur, "the warm-up leaves the same counters");
            v.map.store_u64(ring + counter, garbage);
            let conn = v.conn;
            let (detector, detector_conn, survivor, survivor_conn) = if reader == 'S' {
                (&mut rig.server, conn, &mut v.client, 0)
            } else {
                (&mut v.client, 0, &mut rig.server, conn)
            };
            // The reader reads the counter on its next call (the producer: on
            // the next that needs more room than it last saw).
            let detected = if counter == segment::TAIL {
                detector.recv(detector_conn, WAIT)
            } else {
                detector.cmd(&format!("{detector_conn} send {ring_size} 7"));
                detector.result(detector_conn)
            };
            assert_detected(detected, &what);
            // Later calls report the same failure.
            assert_detected(detector.recv(detector_conn, Duration::from_millis(100)), &what);
            // The other side learns that the peer ended the connection.
            assert_eq!(survivor.recv(survivor_conn, WAIT), Err("PeerGone".into()), "{what}: the other side");
            rig.finish(v);
        }
    }
    rig.quit();
}

/// Garbage in the waiter words causes at most spurious wake-ups (and a cleared
/// word at most a missed one, bounded by the receive timeout): every message
/// still arrives intact.
#[test]
fn garbage_waiter_words() {
    let mut rig = Rig::new("tamper-waiters");
    let mut v = rig.victim(&[]);
    let words = [
        C2S + segment::CONSUMER_WAITING,
        C2S + segment::PRODUCER_WAITING,
        S2C + segment::CONSUMER_WAITING,
        S2C + segment::PRODUCER_WAITING,
    ];
    let mut rng = Rng::from_env_or_time("garbage_waiter_words");
    let conn = v.conn;
    rig.server.cmd(&format!("{conn} bg echo quiet"));
    // A hammer writes random nonzero garbage into the words while messages
    // (several times the ring) go back and forth.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let map = &v.map;
        let stop = &stop;
        let mut hammer_rng = Rng::new(rng.next_u64());
        scope.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let w = words[hammer_rng.below(4) as usize];
                map.store_u32(w, (hammer_rng.next_u64() as u32) | 1);
                std::thread::yield_now();
            }
        });
        v.client.cmd("0 roundtrip 60 5000 0,64,900,5000,20000");
        let r = v.client.result(0);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(r, Ok("60".into()), "round trips with garbage waiter words");
    });

    // A cleared waiter word loses a wake-up: the receiver may then time out,
    // but never receives anything wrong, and gets the message afterwards.
    let mut v2 = rig.victim(&[]);
    let conn2 = v2.conn;
    rig.server.cmd(&format!("{conn2} recv 500"));
    // Give the server time to go to sleep (if it has not, it simply receives).
    std::thread::sleep(Duration::from_millis(100));
    v2.map.store_u32(C2S + segment::CONSUMER_WAITING, 0);
    v2.client.cmd("0 send 300 77");
    assert_eq!(v2.client.result(0), Ok("300".into()));
    match rig.server.result(conn2) {
        Ok(d) => assert_eq!(d, digest(&message(77, 300))),
        Err(kind) => {
            assert_eq!(kind, "Timeout", "a lost wake-up ends in a timeout, nothing else");
            assert_eq!(rig.server.recv(conn2, WAIT), Ok(digest(&message(77, 300))));
        }
    }
    rig.finish(v2);
    v.client.cmd("0 close");
    assert_eq!(v.client.result(0), Ok("".into()));
    assert_eq!(rig.server.expect_end(conn).0, "PeerClosed");
    rig.finish(v);
    rig.quit();
}

/// Where the next unread frame of a ring starts (skipping a PAD marker).
fn next_frame(map: &PeerMapping, ring: usize, ring_size: usize) -> usize {
    let control = segment::ring_control_offset(ring);
    let head = map.load_u64(control + segment::HEAD) as usize;
    let tail = map.load_u64(control + segment::TAIL) as usize;
    assert!(tail > head, "no unread frame");
    let data = segment::ring_data_offset(ring, ring_size as u32);
    let pos = head % ring_size;
    if map.read(data + pos, 1)[0] == 0 {
        data
    } else {
        data + pos
    }
}

/// The offsets of the frames following `first` (assuming no wrap), as
/// (offset, frame_len).
fn frames(map: &PeerMapping, first: usize, count: usize, suite: CipherSuite) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = first;
    for _ in 0..count {
        let h = map.read(at, 16);
        let frame_len = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        out.push((at, frame_len));
        at += (16 + frame_len + suite.tag_len()).div_ceil(16) * 16;
    }
    out
}

/// Garbage in frame headers and ciphertext (including a forged CLOSE, a
/// swapped pair of messages and fragments of a large message) is refused;
/// nothing of the message is delivered, not even on a retry.
#[test]
fn garbage_frames() {
    let mut rig = Rig::new("tamper-frames");

    // Single-frame messages of 100 bytes from the client, tampered in the ring
    // before the server reads them.
    type Edit = fn(&PeerMapping, usize, CipherSuite);
    let edits: Vec<(&str, Edit)> = vec![
        ("unknown kind", |m, at, _| m.write(at, &[3])),
        ("kind PAD in mid-ring", |m, at, _| m.write(at, &[0])),
        ("nonzero flags", |m, at, _| m.write(at + 1, &[0x80])),
        ("huge frame_len", |m, at, _| m.write(at + 4, &0x7fff_ffffu32.to_le_bytes())),
        ("frame and message longer than published", |m, at, _| {
            m.write(at + 4, &4000u32.to_le_bytes());
            m.write(at + 8, &4000u32.to_le_bytes());
        }),
        ("message_len changed", |m, at, _| m.write(at + 8, &200u32.to_le_bytes())),
        ("offset changed", |m, at, _| m.write(at + 12, &1u32.to_le_bytes())),
        ("forged CLOSE", |m, at, _| m.write(at, &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        ("ciphertext byte flipped", |m, at, _| {
            let b = m.read(at + 16 + 50, 1)[0];
            m.write(at + 16 + 50, &[b ^ 0x01]);
        }),
        ("tag byte flipped", |m, at, s| {
            let off = at + 16 + 100 + s.tag_len() - 1;
            let b = m.read(off, 1)[0];
            m.write(off, &[b ^ 0x80]);
        }),
        ("ciphertext zeroed", |m, at, _| m.write(at + 16, &[0u8; 100])),
    ];
    for (what, edit) in edits {
        let mut v = rig.victim(&[]);
        v.client.cmd("0 send 100 500");
        assert_eq!(v.client.result(0), Ok("100".into()));
        let at = next_frame(&v.map, segment::CLIENT_TO_SERVER, v.ring);
        edit(&v.map, at, v.cipher);
        let conn = v.conn;
        assert_detected(rig.server.recv(conn, WAIT), what);
        assert_detected(rig.server.recv(conn, Duration::from_millis(100)), what);
        assert_eq!(v.client.recv(0, WAIT), Err("PeerGone".into()), "{what}: the client");
        rig.finish(v);
    }

    // Two messages swapped in the ring (a reordering): refused.
    {
        let mut v = rig.victim(&[]);
        v.client.cmd("0 sendn 2 100 600");
        assert_eq!(v.client.result(0), Ok("2".into()));
        let at = next_frame(&v.map, segment::CLIENT_TO_SERVER, v.ring);
        let f = frames(&v.map, at, 2, v.cipher);
        let rec = f[1].0 - f[0].0;
        let (a, b) = (v.map.read(f[0].0, rec), v.map.read(f[1].0, rec));
        v.map.write(f[0].0, &b);
        v.map.write(f[1].0, &a);
        let conn = v.conn;
        assert_detected(rig.server.recv(conn, WAIT), "swapped messages");
        assert_eq!(v.client.recv(0, WAIT), Err("PeerGone".into()));
        rig.finish(v);
    }

    // A large message in three fragments, all in a 64 KiB ring: tampering with
    // any fragment (first, middle, last) or replaying the first in place of the
    // second delivers nothing, with recv or recv_into.
    for (what, target) in
        [("first fragment", 0usize), ("middle fragment", 1), ("last fragment", 2), ("replayed fragment", 9)]
    {
        for recv_into in [false, true] {
            let mut v = rig.victim(&[("RING", "65536".into())]);
            assert_eq!(v.ring, 65536, "the victim asked for a 64 KiB ring");
            v.client.cmd("0 send 40000 700");
            assert_eq!(v.client.result(0), Ok("40000".into()));
            let at = next_frame(&v.map, segment::CLIENT_TO_SERVER, v.ring);
            let f = frames(&v.map, at, 3, v.cipher);
            assert!(f[2].1 > 0 && f[0].1 + f[1].1 + f[2].1 == 40000, "three fragments: {f:?}");
            if target == 9 {
                let rec = f[1].0 - f[0].0;
                let first = v.map.read(f[0].0, rec);
                v.map.write(f[1].0, &first);
            } else {
                let off = f[target].0 + 16 + f[target].1 / 2;
                let b = v.map.read(off, 1)[0];
                v.map.write(off, &[!b]);
            }
            let conn = v.conn;
            let first = if recv_into {
                rig.server.cmd(&format!("{conn} recv_into 50000 30000"));
                rig.server.result(conn)
            } else {
                rig.server.recv(conn, WAIT)
            };
            assert_detected(first, what);
            assert_detected(rig.server.recv(conn, Duration::from_millis(100)), what);
            assert_eq!(v.client.recv(0, WAIT), Err("PeerGone".into()));
            rig.finish(v);
        }
    }
    rig.quit();
}

/// Random garbage at random places of a segment while messages flow both ways
/// (echoes checked byte for byte): the connection ends with an error on both
/// sides, no wrong message is ever delivered, nothing panics, and the
/// bystander keeps working.
#[test]
fn random_garbage_during_traffic() {
    let mut rig = Rig::new("tamper-random");
    let mut rng = Rng::from_env_or_time("random_garbage_during_traffic");
    for round in 0..6 {
        let mut v = rig.victim(&[]);
        let conn = v.conn;
        rig.server.cmd(&format!("{conn} bg echo quiet"));
        v.client.cmd(&format!("0 roundtrip 1000000 {} 0,16,100,900,3000,20000", 10_000 * (round + 1)));
        // Let some traffic through first.
        std::thread::sleep(Duration::from_millis(20 + rng.below(50)));
        let size = v.map.len();
        let mut writes = 0u64;
        let started = std::time::Instant::now();
        let client_end = loop {
            writes += 1;
            match rng.below(10) {
                // A live counter: almost surely out of range.
                0 => {
                    let ring = [C2S, S2C][rng.below(2) as usize];
                    let counter = [segment::TAIL, segment::HEAD][rng.below(2) as usize];
                    v.map.store_u64(ring + counter, rng.next_u64());
                }
                // A waiter word.
                1 => {
                    let ring = [C2S, S2C][rng.below(2) as usize];
                    let w = [segment::CONSUMER_WAITING, segment::PRODUCER_WAITING][rng.below(2) as usize];
                    v.map.store_u32(ring + w, rng.next_u64() as u32 | 1);
                }
                // Anywhere in the control area (header, counters, padding).
                2 => {
                    let off = rng.below(segment::DATA_OFFSET as u64) as usize;
                    let mut junk = vec![0u8; 1 + rng.below(8) as usize];
                    rng.fill(&mut junk);
                    v.map.write(off.min(segment::DATA_OFFSET - junk.len()), &junk);
                }
                // Ring data: frames being written or read.
                _ => {
                    let mut junk = vec![0u8; 1 + rng.below(32) as usize];
                    rng.fill(&mut junk);
                    let off =
                        segment::DATA_OFFSET + rng.below((size - segment::DATA_OFFSET - junk.len()) as u64) as usize;
                    v.map.write(off, &junk);
                }
            }
            if let Some(ev) = v.client.try_take(Duration::from_millis(1), |e| {
                e.starts_with("0 ERR") || e.starts_with("0 BAD") || e.starts_with("0 RT_OK")
            }) {
                break ev;
            }
            assert!(started.elapsed() < WAIT, "the connection survived {writes} random writes");
        };
        assert!(
            client_end.starts_with("0 ERR ProtocolViolation")
                || client_end.starts_with("0 ERR AuthenticationFailed")
                || client_end.starts_with("0 ERR PeerGone"),
            "round {round}: the client ended with {client_end:?} after {writes} writes"
        );
        let (server_end, _) = rig.server.expect_end(conn);
        assert!(
            ["ProtocolViolation", "AuthenticationFailed", "PeerGone"].contains(&server_end.as_str()),
            "round {round}: the server's echo ended with {server_end}"
        );
        v.client.assert_no_panic();
        rig.server.assert_no_panic();
        rig.finish(v);
    }
    rig.quit();
}

fn sealed_memfd(size: u64, seals: rustix::fs::SealFlags) -> std::os::fd::OwnedFd {
    let fd = rustix::fs::memfd_create(
        "shmsock-test",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

/// `Segment::open_memfd` refuses a memfd without the seals, of the wrong size,
/// write-sealed, not a memfd at all, or without a valid header; and
/// `Segment::open_named` a named object of the wrong size (and leaves it).
#[test]
fn bad_segments_are_refused() {
    use rustix::fs::SealFlags;
    init();
    let ring = 4096u32;
    let size = segment::segment_size(ring);
    let all = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    let refused = |r: shmsock::Result<Segment>, what: &str| match r {
        Ok(_) => panic!("{what}: the segment was accepted"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{what}: {e}"),
    };

    refused(Segment::open_memfd(sealed_memfd(size, SealFlags::empty()), ring), "no seals");
    refused(Segment::open_memfd(sealed_memfd(size, SealFlags::SHRINK | SealFlags::SEAL), ring), "no GROW seal");
    refused(Segment::open_memfd(sealed_memfd(size, SealFlags::GROW | SealFlags::SHRINK), ring), "no SEAL seal");
    refused(Segment::open_memfd(sealed_memfd(size - 4096, all), ring), "too small");
    refused(Segment::open_memfd(sealed_memfd(size + 4096, all), ring), "too large");
    refused(Segment::open_memfd(sealed_memfd(size, all | SealFlags::WRITE), ring), "write-sealed");
    refused(Segment::open_memfd(sealed_memfd(size, all), ring), "no segment header");
    let file = tempfile::tempfile().unwrap();
    file.set_len(size).unwrap();
    refused(Segment::open_memfd(file.into(), ring), "a regular file");

    // A well-formed segment made by the server side is accepted (the control case).
    let good = Segment::create(shmsock::Backend::Memfd, ring).unwrap();
    let fd = good.memfd().unwrap().try_clone_to_owned().unwrap();
    let opened = Segment::open_memfd(fd, ring).expect("a proper segment");
    assert_eq!(opened.ring_size(), ring);
    // ...but not with another ring size than the handshake agreed.
    let fd = good.memfd().unwrap().try_clone_to_owned().unwrap();
    refused(Segment::open_memfd(fd, ring * 2), "a different ring size");

    // Named objects: wrong size, and right size without a header. They are
    // refused and left in place (the server removes its own objects; a client
    // unlinks nothing it has not fully checked).
    for (i, (what, len)) in [("wrong size", 8192u64), ("no header", size)].into_iter().enumerate() {
        let name = format!("/shmsock-{:012x}{:08x}", std::process::id(), i);
        let fd = rustix::shm::open(
            name.as_str(),
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        rustix::fs::ftruncate(&fd, len).unwrap();
        drop(fd);
        assert!(shm_exists(&name));
        refused(Segment::open_named(&name, ring, rustix::process::geteuid().as_raw()), what);
        assert!(shm_exists(&name), "{what}: the refused object {name} was unlinked");
        rustix::shm::unlink(name.as_str()).unwrap();
    }
}

/// End to end: a hostile server runs a correct handshake but hands over a
/// memfd without seals, too short, or without a header; the client refuses it
/// (ProtocolViolation) and never confirms the connection.
#[test]
fn client_refuses_a_bad_segment_from_the_server() {
    init();
    for mode in ["unsealed", "short", "badheader"] {
        let name = unique_name("evil");
        let kp = Keypair::generate();
        let mut settings = server_settings(&name, &kp);
        settings.push(("MODE", mode.to_string()));
        let mut evil = Child::spawn("evil", "evil_segment_server", &settings);
        evil.expect("BOUND");
        match Stream::connect(&name, &Options::new().server_key(*kp.public())) {
            Ok(_) => panic!("{mode}: the client accepted the segment"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{mode}: {e}"),
        }
        assert_eq!(evil.expect("CLIENT_ENDED"), vec!["PeerGone"], "{mode}: the client must not send READY");
        evil.quit();
        assert_no_endpoint_files(&name);
    }
}
