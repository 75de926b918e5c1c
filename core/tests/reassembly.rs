//! The bound on large messages a listener's connections gather at once
//! (`Options::max_reassembly_bytes`): a connection that finds no room leaves
//! its message in the ring, loses nothing, is woken when room comes back, and
//! messages of one frame never wait.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use shmsock::{ErrorKind, Keypair, Listener, Options, SendProgress, Stream};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

/// Small rings, so that a message of a few KiB takes several frames and
/// cannot sit whole in the ring.
const RING: u32 = 4096;
const BUDGET: usize = 10_000;

/// `n` connected (client, server) pairs through one listener whose budget
/// for large messages being received is `budget` bytes.
fn pairs(tag: &str, budget: usize, n: usize) -> Vec<(Stream, Stream)> {
    init();
    let name = unique_name(tag);
    let kp = Keypair::generate();
    let options = Options::new().keypair(kp.clone()).ring_size(RING).max_reassembly_bytes(budget);
    let listener = Listener::bind(&name, &options).unwrap();
    (0..n)
        .map(|_| {
            let (name, key) = (name.clone(), *kp.public());
            let client = std::thread::spawn(move || Stream::connect(&name, &Options::new().server_key(key)).unwrap());
            let server = listener.accept_timeout(Some(WAIT)).unwrap();
            (client.join().unwrap(), server)
        })
        .collect()
}

fn readable(stream: &Stream) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// Starts `message` with a resumable send: it stops where the ring is full.
fn start(client: &Stream, message: &[u8]) -> usize {
    match client.send_resumable(message).unwrap() {
        SendProgress::Partial { sent } => sent,
        SendProgress::Complete => panic!("a {}-byte message fit a {RING}-byte ring", message.len()),
    }
}

/// Alternates resumable sends and non-blocking receives until the message
/// arrives, and returns it.
fn finish(client: &Stream, server: &Stream, message: &[u8]) -> Vec<u8> {
    for _ in 0..10_000 {
        match server.try_recv() {
            Ok(got) => return got,
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
        if let Err(e) = client.send_resumable(message) {
            panic!("the send failed: {e}");
        }
    }
    panic!("the message did not arrive");
}

/// A message partly received (taking the frames in the ring) holds its length
/// in the budget, as `try_recv` keeps it between calls.
fn hold_part(client: &Stream, server: &Stream, message: &[u8]) {
    start(client, message);
    let e = server.try_recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
}

#[test]
fn a_large_message_without_room_waits_in_its_ring_and_is_woken_when_room_comes_back() {
    let mut pairs = pairs("no-room", BUDGET, 3);
    let (c, b, a) = (pairs.pop().unwrap(), pairs.pop().unwrap(), pairs.pop().unwrap());
    let big_a = message(1, 9000);
    hold_part(&a.0, &a.1, &big_a);

    // 9,000 + 5,000 exceed the budget: B's message stays in B's ring.
    let big_b = message(2, 5000);
    let sent_b = start(&b.0, &big_b);
    let e = b.1.try_recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    assert!(e.to_string().contains("max_reassembly_bytes"), "{e}");
    assert_eq!(b.1.next_message_len(), Some(5000), "the message left its ring");
    assert_eq!(
        b.0.send_resumable(&big_b).unwrap(),
        SendProgress::Partial { sent: sent_b },
        "the receiver took frames it had no room to keep"
    );
    assert!(!readable(&b.1), "the pollable fd stays readable with nothing to do");
    // Asking again changes nothing and loses nothing.
    assert_eq!(b.1.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(!readable(&b.1));

    // A message of one frame never waits.
    let small = message(3, 200);
    c.0.send(&small).unwrap();
    assert_eq!(c.1.try_recv().unwrap(), small);

    // A's message completes and gives its room back: B's fd says so.
    assert_eq!(finish(&a.0, &a.1, &big_a), big_a);
    assert!(readable(&b.1), "room given back did not make the waiting stream's fd readable");
    assert_eq!(finish(&b.0, &b.1, &big_b), big_b);

    // Both can go on.
    assert_eq!(finish(&a.0, &a.1, &big_b), big_b);
    for (client, server) in [a, b, c] {
        client.close().unwrap();
        server.close().unwrap();
    }
}

/// A connection closed (or dropped) half way through a message gives its
/// room back at once, waking the connection waiting for it.
#[test]
fn a_connection_closed_half_way_through_a_message_gives_its_room_back() {
    for drop_it in [false, true] {
        let mut pairs = pairs(if drop_it { "dropped" } else { "closed" }, BUDGET, 2);
        let (b, a) = (pairs.pop().unwrap(), pairs.pop().unwrap());
        hold_part(&a.0, &a.1, &message(1, 9000));
        let big_b = message(2, 5000);
        start(&b.0, &big_b);
        assert_eq!(b.1.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
        assert!(!readable(&b.1));
        if drop_it {
            drop(a);
        } else {
            a.1.close().unwrap();
        }
        assert!(readable(&b.1), "the room of the connection let go of did not wake the waiting one");
        assert_eq!(finish(&b.0, &b.1, &big_b), big_b);
    }
}

#[test]
fn a_blocking_receive_waits_for_room_up_to_its_timeout_and_loses_nothing() {
    let mut pairs = pairs("blocking", BUDGET, 2);
    let (b, a) = (pairs.pop().unwrap(), pairs.pop().unwrap());
    let big_a = message(1, 9000);
    hold_part(&a.0, &a.1, &big_a);
    let big_b = message(2, 5000);
    let (client_b, server_b) = b;
    let sender = {
        let big_b = big_b.clone();
        std::thread::spawn(move || {
            client_b.send(&big_b).unwrap();
            client_b
        })
    };
    let e = server_b.recv_timeout(Some(Duration::from_millis(50))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("nothing was lost"), "{e}");
    // Room comes back while the receive waits (the sender finishes A).
    let receiver = std::thread::spawn(move || (server_b.recv_timeout(Some(WAIT)), server_b));
    assert_eq!(finish(&a.0, &a.1, &big_a), big_a);
    let (got, server_b) = receiver.join().unwrap();
    assert_eq!(got.unwrap(), big_b);
    let client_b = sender.join().unwrap();
    client_b.close().unwrap();
    server_b.close().unwrap();
}

#[test]
fn a_budget_smaller_than_a_message_lets_one_through_at_a_time() {
    let mut pairs = pairs("tiny", 100, 2);
    let (b, a) = (pairs.pop().unwrap(), pairs.pop().unwrap());
    let (big_a, big_b) = (message(1, 9000), message(2, 9000));
    hold_part(&a.0, &a.1, &big_a);
    let sent_b = start(&b.0, &big_b);
    assert_eq!(b.1.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(b.0.send_resumable(&big_b).unwrap(), SendProgress::Partial { sent: sent_b }, "B was let in beside A");
    assert_eq!(finish(&a.0, &a.1, &big_a), big_a);
    assert_eq!(finish(&b.0, &b.1, &big_b), big_b);
}

/// Waits (up to `WAIT`) until `stream`'s pollable fd is readable.
fn wait_readable(stream: &Stream) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, WAIT.as_millis() as i32) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// The end of a connection whose held message was ended: the receive that
/// notices says why, later calls say Closed, and the peer's sends fail.
fn assert_ended(client: &Stream, server: &Stream, message: &[u8]) {
    let e = server.try_recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
    assert!(e.to_string().contains("stopped moving"), "{e}");
    let later = server.try_recv().unwrap_err();
    assert_eq!(later.kind(), ErrorKind::Closed, "{later}");
    let mut failed = None;
    for _ in 0..1000 {
        match client.send_resumable(message) {
            Err(e) => {
                failed = Some(e);
                break;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let failed = failed.expect("the peer of an ended connection could still send");
    assert!(failed.kind().ends_connection(), "{failed}");
}

/// A peer that sends part of a large message and stops keeps the room it took
/// only while nobody waits: once a receive waits for room, the stalled
/// connection is ended after a few seconds, its room goes to the waiting one
/// (whose pollable fd says so), and the stalled stream's fd says it too.
#[test]
fn a_connection_whose_message_stopped_moving_is_ended_when_others_wait_for_room() {
    let mut pairs = pairs("stalled", BUDGET, 2);
    let (b, a) = (pairs.pop().unwrap(), pairs.pop().unwrap());
    let big_a = message(1, 9000);
    hold_part(&a.0, &a.1, &big_a);
    let big_b = message(2, 5000);
    start(&b.0, &big_b);
    assert_eq!(b.1.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(wait_readable(&b.1), "the waiting connection was never given room");
    assert!(wait_readable(&a.1), "the ended connection's fd did not say so");
    assert_eq!(finish(&b.0, &b.1, &big_b), big_b);
    assert_ended(&a.0, &a.1, &big_a);
    // The waiting connection goes on as before.
    assert_eq!(finish(&b.0, &b.1, &big_a), big_a);
}

/// The same for a peer that trickles its message a few KiB at a time (every
/// frame in time, the whole far too slow), with a blocking receive waiting.
#[test]
fn a_connection_trickling_its_message_is_ended_when_others_wait_for_room() {
    let mut pairs = pairs("trickle", 60_000, 2);
    let (b, a) = (pairs.pop().unwrap(), pairs.pop().unwrap());
    let big_a = message(1, 50_000);
    hold_part(&a.0, &a.1, &big_a);
    let (client_b, server_b) = b;
    let big_b = message(2, 20_000);
    let sender = {
        let big_b = big_b.clone();
        std::thread::spawn(move || {
            client_b.send(&big_b).unwrap();
            client_b
        })
    };
    let receiver = std::thread::spawn(move || (server_b.recv_timeout(Some(WAIT)), server_b));
    // A frame or two every 0.4 s: about 10 KiB/s, never 3 s without one.
    let mut ended = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(400));
        if receiver.is_finished() {
            ended = true;
            break;
        }
        let _ = a.0.send_resumable(&big_a);
        match a.1.try_recv() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("the trickling connection was ended before the waiting one got room: {e}"),
            Ok(_) => panic!("the trickled message completed: the test trickles too fast"),
        }
    }
    assert!(ended, "the waiting receive never got room");
    let (got, server_b) = receiver.join().unwrap();
    assert_eq!(got.unwrap(), big_b);
    assert_ended(&a.0, &a.1, &big_a);
    sender.join().unwrap().close().unwrap();
    server_b.close().unwrap();
}

// ------------------------------------------- many giant messages, other processes

/// Connections that each send all but the end of a 15 MiB message, then stop:
/// the `giants` test below runs this binary again with `GIANTS` set.
const GIANT: usize = 15 << 20;
const GIANTS: usize = 12;
/// A peer stops sending this much before the end of its message.
const STOP_SHORT: usize = 3 << 20;

/// Discards what it gets, and counts the connections ended for holding room
/// with a message that stopped moving.
struct Sink;

static ENDED_STALLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl shmsock::ServerHandler for Sink {
    fn on_data(&self, _: &shmsock::Connection, _: &[u8]) {}

    fn on_error(&self, _: Option<&shmsock::Connection>, error: &shmsock::Error) {
        if error.kind() == ErrorKind::ResourceExhausted && error.to_string().contains("stopped moving") {
            ENDED_STALLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Kilobytes of this process's anonymous memory (the heap: kept messages).
fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Twelve peers in another process each send 12 MiB or more of a 15 MiB
/// message and stop. Without a bound the server would keep about 12 × 12 MiB
/// or more; with the default
/// (64 MiB) it keeps what four of them sent, and a bystander's large message
/// still gets through beside them.
#[test]
fn giant_messages_stopped_half_way_hold_no_more_than_the_budget() {
    if std::env::var_os("GIANTS").is_some() {
        return giants();
    }
    init();
    let name = unique_name("giants");
    let kp = Keypair::generate();
    let server = shmsock::Server::start(&name, &Options::new().keypair(kp.clone()), Sink).unwrap();
    let options = Options::new().server_key(*kp.public()).recv_timeout(Some(WAIT)).send_timeout(Some(WAIT));
    let bystander = Stream::connect(&name, &options).unwrap();
    bystander.send(&message(1, 1 << 20)).unwrap();
    let before = rss_anon_kib();
    let mut attacker = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "giant_messages_stopped_half_way_hold_no_more_than_the_budget", "--nocapture"])
        .env("GIANTS", &name)
        .env("KEY", kp.public().to_text())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(attacker.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "the attacker ended early");
        if let Some(sent) = line.trim().strip_prefix("SENT ") {
            let sent: Vec<usize> = sent.split(',').map(|n| n.parse().unwrap()).collect();
            // The server took most of four messages (their 60 MiB fit the
            // 64 MiB budget) and none of the others: those only filled their
            // 2 MiB rings.
            let far = sent.iter().filter(|&&n| n >= GIANT - STOP_SHORT).count();
            let none = sent.iter().filter(|&&n| n <= 2 << 20).count();
            assert_eq!((far, none), (4, GIANTS - 4), "bytes each peer got out: {sent:?}");
            break;
        }
    }
    let grown_mib = rss_anon_kib().saturating_sub(before) / 1024;
    eprintln!("GROWN {grown_mib} MiB");
    // Four kept messages (4 × at most 14 MiB) and the dispatch thread's buffer (15 MiB).
    assert!(grown_mib < 100, "the server's heap grew by {grown_mib} MiB under {GIANTS} giant messages");
    // A large message of a bystander still fits beside them.
    bystander.send(&message(2, 1 << 20)).unwrap();
    // The bystander waited for nothing, so nobody was ended; a giant message
    // of its own does not fit beside the four held ones and waits, so the
    // four holders, stopped, are ended (through the Server's event loop) and
    // give it their room.
    let ended = || ENDED_STALLED.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(ended(), 0);
    let sending = std::time::Instant::now();
    bystander.send(&message(3, GIANT)).unwrap();
    eprintln!("BYSTANDER GIANT {:?}", sending.elapsed());
    let until = std::time::Instant::now() + WAIT;
    while ended() < 4 {
        assert!(std::time::Instant::now() < until, "{} stalled connections ended, not 4", ended());
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = attacker.kill();
    let _ = attacker.wait();
    bystander.close().unwrap();
    server.close();
}

/// The attacker: sends each giant message as far as the server takes it,
/// until nothing moved for half a second, then prints how far each got.
fn giants() {
    let name = std::env::var("GIANTS").unwrap();
    let key = shmsock::PublicKey::from_text(&std::env::var("KEY").unwrap()).unwrap();
    let streams: Vec<Stream> =
        (0..GIANTS).map(|_| Stream::connect(&name, &Options::new().server_key(key)).unwrap()).collect();
    let giant = vec![3u8; GIANT];
    let mut sent = [0usize; GIANTS];
    let mut still = std::time::Instant::now();
    while still.elapsed() < Duration::from_millis(500) {
        for (stream, sent) in streams.iter().zip(sent.iter_mut()) {
            if *sent >= GIANT - STOP_SHORT {
                continue;
            }
            match stream.send_resumable(&giant).unwrap() {
                SendProgress::Partial { sent: now } if now > *sent => {
                    *sent = now;
                    still = std::time::Instant::now();
                }
                SendProgress::Partial { .. } => {}
                // One call writes for as long as the server frees room, so a
                // message may complete: the next one starts from nothing.
                SendProgress::Complete => {
                    *sent = 0;
                    still = std::time::Instant::now();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let list: Vec<String> = sent.iter().map(|n| n.to_string()).collect();
    println!("SENT {}", list.join(","));
    std::thread::sleep(WAIT * 10);
}
