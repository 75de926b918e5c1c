//! Resumable and interruptible sends (`Stream::send_resumable`,
//! `Stream::send_interruptible`): progress kept across calls, writability through
//! the pollable fd, the interleaving rules with the other sends, and what happens
//! when the peer closes or dies, the counters are tampered with, or the hook
//! interrupts, in the middle of a message: never a half message delivered.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use shmsock::segment;
use shmsock::{Error, ErrorKind, Keypair, Options, SendProgress, Stream};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

const RING: u32 = 4096;

/// A connected (client, server) pair in this process with `RING`-byte rings.
fn pair(tag: &str) -> (Stream, Stream) {
    pair_in_process(tag, RING)
}

/// True when `fd` is readable now.
fn readable(stream: &Stream) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

fn partial(p: SendProgress) -> usize {
    match p {
        SendProgress::Partial { sent } => sent,
        SendProgress::Complete => panic!("expected a partial send"),
    }
}

/// Starts a message much larger than the ring: it stops part-way with progress.
fn start_big(client: &Stream, big: &[u8]) -> usize {
    let sent = partial(client.send_resumable(big).unwrap());
    assert!(sent > 0 && sent < big.len(), "sent {sent} of {}", big.len());
    sent
}

/// A message 25 times the ring goes out over many calls, each resuming where
/// the last stopped; the pollable fd says when to call again; the receiver gets
/// it whole, then the next message.
#[test]
fn partial_progress_over_many_calls() {
    let (client, server) = pair("resume");
    let big = message(1, 25 * RING as usize + 77);
    let mut sent = start_big(&client, &big);
    let mut calls = 1;
    let got = loop {
        if sent < big.len() {
            // Until the peer frees space, nothing more fits and the fd is quiet.
            assert_eq!(client.send_resumable(&big).unwrap(), SendProgress::Partial { sent });
            assert!(!readable(&client), "the pollable fd is readable before any space was freed");
        }
        match server.try_recv() {
            Ok(m) => break m,
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
        // The receiver freed space: the sender's pollable fd says so.
        assert!(readable(&client), "freed space did not make the pollable fd readable");
        assert!(sent < big.len(), "complete, yet the receiver has no message");
        calls += 1;
        match client.send_resumable(&big).unwrap() {
            SendProgress::Complete => sent = big.len(),
            SendProgress::Partial { sent: now } => {
                assert!(now > sent, "no progress: {now} after {sent}");
                sent = now;
            }
        }
    };
    assert_eq!(sent, big.len());
    assert!(got == big, "the message arrived changed");
    assert!(calls > 10, "only {calls} calls for a message 25 times the ring");
    assert_eq!(client.stats().messages_sent, 1);
    // Small messages complete at once; the stream goes on.
    assert_eq!(client.send_resumable(b"next").unwrap(), SendProgress::Complete);
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), b"next");
    assert_eq!(client.send_resumable(&[]).unwrap(), SendProgress::Complete);
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), b"");
}

/// A receiver that takes a message and returns while the ring is still mostly
/// full wakes a sender waiting for room: the wake-up its reading deferred (too
/// little room freed to be worth a wake-up yet) is paid when it stops reading.
#[test]
fn a_receiver_that_stops_reading_wakes_a_waiting_sender() {
    let (client, server) = pair("resume-pay");
    assert_eq!(client.send_resumable(b"a").unwrap(), SendProgress::Complete);
    let big = message(3, 4 * RING as usize);
    let mut sent = start_big(&client, &big);
    assert!(!readable(&client), "the sender's pollable fd is readable before any space was freed");
    // One small record freed; the rest of the ring still holds the big message.
    assert_eq!(server.try_recv().unwrap(), b"a");
    assert!(readable(&client), "the receiver returned without waking the sender waiting for room");
    // The rest goes through as usual.
    let mut rounds = 0;
    let got = loop {
        match server.try_recv() {
            Ok(m) => break m,
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
        rounds += 1;
        assert!(rounds < 10_000 && sent < big.len(), "no progress: {sent} of {} bytes sent", big.len());
        sent = match client.send_resumable(&big).unwrap() {
            SendProgress::Complete => big.len(),
            SendProgress::Partial { sent } => sent,
        };
    };
    assert!(got == big, "the message arrived changed");
}

/// With nothing written (the ring full of earlier messages), Partial { sent: 0 }
/// holds nothing: another message may go first.
#[test]
fn nothing_sent_holds_nothing() {
    let (client, server) = pair("resume0");
    let mut n = 0;
    while client.try_send(&[7u8; 1000]).is_ok() {
        n += 1;
    }
    assert_eq!(client.send_resumable(&[1u8; 1000]).unwrap(), SendProgress::Partial { sent: 0 });
    // Not pending: a message of another length is fine once there is room.
    for _ in 0..n {
        assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), vec![7u8; 1000]);
    }
    assert_eq!(client.send_resumable(&[2u8; 10]).unwrap(), SendProgress::Complete);
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), vec![2u8; 10]);
}

/// While a message is partly sent: try_send says WouldBlock, send_resumable
/// with another length says InvalidArgument, a blocking send times out with
/// nothing sent, and a blocking send on another thread waits and goes after
/// the partly sent message completes, in order.
#[test]
fn interleaving_rules() {
    let (client, server) = pair("interleave");
    let client = Arc::new(client);
    let big = message(2, 10 * RING as usize);
    start_big(&client, &big);
    let e = client.try_send(b"small").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let e = client.send_resumable(b"other").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = client.send_timeout(b"small", Some(Duration::from_millis(120))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("nothing was sent"), "{e}");
    let mut calls = 0;
    let e = client
        .send_interruptible(b"small", None, &mut || {
            calls += 1;
            if calls > 2 {
                Err(Error::new(ErrorKind::Io, "interrupted"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(e.message(), "interrupted");
    // None of these failed the stream; a waiting sender goes after the big one.
    let waiting = {
        let client = client.clone();
        std::thread::spawn(move || client.send_timeout(b"after", Some(WAIT)))
    };
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 2 {
        assert!(Instant::now() < deadline, "the messages did not arrive");
        match server.try_recv() {
            Ok(m) => got.push(m),
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
        if got.is_empty() {
            // The waiting sender holds the sending lock for moments as it
            // wakes up to check: then this says WouldBlock, and we try again.
            match client.send_resumable(&big) {
                Ok(_) => {}
                Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
            }
        }
        std::thread::yield_now();
    }
    waiting.join().unwrap().unwrap();
    assert!(got[0] == big, "the big message arrived changed");
    assert_eq!(got[1], b"after");
}

/// The peer closes while a message is partly sent: the next call fails (the
/// peer is gone, or closed) and the stream stays failed; the peer never got the
/// message.
#[test]
fn peer_closes_mid_message() {
    let (client, server) = pair("peerclose");
    let big = message(3, 10 * RING as usize);
    start_big(&client, &big);
    server.close().unwrap();
    let e = client.send_resumable(&big).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::PeerGone | ErrorKind::PeerClosed | ErrorKind::Closed), "{e:?}");
    let later = client.send_resumable(&big).unwrap_err();
    assert!(later.kind().ends_connection(), "{later:?}");
    assert!(client.send(b"x").unwrap_err().kind().ends_connection());
}

/// The peer process dies (SIGKILL) while a message is partly sent: PeerGone.
#[test]
fn peer_dies_mid_message() {
    init();
    let name = unique_name("peerdies");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", RING.to_string())]);
    let client = Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap();
    server.expect("0 ACCEPTED");
    let big = message(4, 10 * RING as usize);
    start_big(&client, &big);
    server.kill();
    let deadline = Instant::now() + WAIT;
    let e = loop {
        match client.send_resumable(&big) {
            Err(e) => break e,
            Ok(p) => partial(p),
        };
        assert!(Instant::now() < deadline, "a dead peer went unnoticed");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
    assert!(client.send_resumable(&big).unwrap_err().kind().ends_connection());
    drop(client);
    reclaim_and_check(&name);
}

/// Closing this side with a message partly sent ends the connection without
/// the CLOSE frame: the peer sees PeerGone, never the partial message and never
/// a clean close that would suggest everything arrived.
#[test]
fn close_mid_message_is_not_a_clean_close() {
    let (client, server) = pair("closemid");
    let big = message(5, 10 * RING as usize);
    start_big(&client, &big);
    client.close().unwrap();
    let e = server.recv_timeout(Some(WAIT)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
    assert_eq!(server.stats().messages_received, 0);
}

/// The consumer's head counter is tampered with while a message is partly
/// sent: the next call reports ProtocolViolation and the stream is over.
#[test]
fn tampered_counters_mid_message() {
    let (client, server) = pair("tamperres");
    let big = message(6, 10 * RING as usize);
    start_big(&client, &big);
    let head = segment::ring_control_offset(segment::CLIENT_TO_SERVER) + segment::HEAD;
    client.shared_segment().atomic_u64(head).store(1 << 40, Ordering::SeqCst);
    let e = client.send_resumable(&big).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{e}");
    assert!(client.send_resumable(&big).unwrap_err().kind().ends_connection());
    let e = server.recv_timeout(Some(WAIT)).unwrap_err();
    assert!(e.kind().ends_connection(), "{e:?}");
    assert_eq!(server.stats().messages_received, 0);
}

/// An interrupt before any fragment is out: nothing was sent, the stream goes
/// on. The hook is called while the send waits.
#[test]
fn interrupt_before_anything_is_sent() {
    let (client, server) = pair("intr0");
    let mut n = 0;
    while client.try_send(&[7u8; 1000]).is_ok() {
        n += 1;
    }
    let mut calls = 0;
    let e = client
        .send_interruptible(&message(7, 3000), Some(WAIT), &mut || {
            calls += 1;
            if calls == 3 {
                Err(Error::new(ErrorKind::Io, "KeyboardInterrupt"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(e.message(), "KeyboardInterrupt");
    assert_eq!(calls, 3);
    for _ in 0..n {
        assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), vec![7u8; 1000]);
    }
    // Nothing of the interrupted message arrived, and the stream still works.
    client.send(b"still here").unwrap();
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), b"still here");
}

/// An interrupt after part of a message is out ends the connection: the error
/// is returned, later calls say Closed, and the peer sees PeerGone, never the
/// part.
#[test]
fn interrupt_mid_message_ends_the_connection() {
    let (client, server) = pair("intrmid");
    let mut calls = 0;
    let e = client
        .send_interruptible(&message(8, 10 * RING as usize), None, &mut || {
            calls += 1;
            if calls == 2 {
                Err(Error::new(ErrorKind::Io, "KeyboardInterrupt"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.message().contains("KeyboardInterrupt") && e.message().contains("part of it was sent"), "{e}");
    let later = client.send(b"x").unwrap_err();
    assert_eq!(later.kind(), ErrorKind::Closed, "{later}");
    let got = server.recv_timeout(Some(WAIT)).unwrap_err();
    assert_eq!(got.kind(), ErrorKind::PeerGone, "{got}");
    assert_eq!(server.stats().messages_received, 0);
}

/// With a reader, an interruptible send completes like `send`; a timeout before
/// anything is out says Timeout with nothing sent.
#[test]
fn interruptible_send_completes_and_times_out() {
    let (client, server) = pair("introk");
    let server = Arc::new(server);
    let reader = {
        let server = server.clone();
        std::thread::spawn(move || server.recv_timeout(Some(WAIT)))
    };
    let big = message(9, 30 * RING as usize);
    client.send_interruptible(&big, Some(WAIT), &mut || Ok(())).unwrap();
    assert!(reader.join().unwrap().unwrap() == big);
    while client.try_send(&[7u8; 1000]).is_ok() {}
    let e = client.send_interruptible(&[8u8; 1000], Some(Duration::from_millis(120)), &mut || Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("nothing was sent"), "{e}");
}

/// A message trickled in hundreds of frames, received with a non-blocking call
/// after every few frames, is reassembled in place: the bytes copied to carry
/// it across calls stay linear in its size (none for a `Vec` result; one copy
/// in and one out for a caller's buffer), where copying the partial message
/// again on every call was quadratic (defect: 8 s of CPU for 16 MiB).
#[test]
fn trickled_receive_copies_linearly() {
    for into_slice in [false, true] {
        let (client, server) = pair(if into_slice { "trickle-slice" } else { "trickle-vec" });
        let len = 1 << 20;
        let big = message(10, len);
        let mut buf = vec![0u8; len];
        let mut sent = start_big(&client, &big);
        let mut calls = 0u64;
        let got = loop {
            let r =
                if into_slice { server.try_recv_into(&mut buf).map(|n| buf[..n].to_vec()) } else { server.try_recv() };
            calls += 1;
            match r {
                Ok(m) => break m,
                Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
            }
            assert!(sent < len, "complete, yet the receiver has no message");
            if let SendProgress::Partial { sent: now } = client.send_resumable(&big).unwrap() {
                sent = now;
            } else {
                sent = len;
            }
        };
        assert!(got == big, "the trickled message arrived changed");
        assert!(calls > 100, "only {calls} receive calls: the message was not trickled");
        let copied = server.reassembly_bytes_copied();
        let bound = if into_slice { 2 * len as u64 } else { 0 };
        assert!(copied <= bound, "{copied} bytes copied to reassemble {len} bytes over {calls} calls (bound {bound})");
    }
}

/// A receive buffer that hands its storage to the core between calls
/// (`RecvBuf::detach` / `take_back`), as a binding's pooled blocks do.
#[derive(Default)]
struct Handed(Vec<u8>);

impl shmsock::RecvBuf for Handed {
    fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
        self.0.resize(len, 0);
        Ok(())
    }
    fn bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn detach(&mut self, _len: usize) -> Option<Vec<u8>> {
        Some(std::mem::take(&mut self.0))
    }
    fn take_back(&mut self, bytes: &mut Vec<u8>) -> bool {
        std::mem::swap(&mut self.0, bytes);
        true
    }
}

/// A trickled message received through a buffer that detaches its storage
/// stays in that storage: nothing is copied, whatever the number of calls.
#[test]
fn trickled_receive_into_detached_storage_copies_nothing() {
    let (client, server) = pair("trickle-detach");
    let len = 1 << 20;
    let big = message(11, len);
    start_big(&client, &big);
    let mut complete = false;
    let mut calls = 0u64;
    let got = loop {
        // A new buffer per call, as a binding's per-message receive makes.
        let mut buf = Handed::default();
        calls += 1;
        match server.try_recv_with(&mut buf) {
            Ok(n) => break buf.0[..n].to_vec(),
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
        assert!(!complete, "complete, yet the receiver has no message");
        complete = client.send_resumable(&big).unwrap() == SendProgress::Complete;
    };
    assert!(got == big, "the trickled message arrived changed");
    assert!(calls > 100, "only {calls} receive calls: the message was not trickled");
    assert_eq!(server.reassembly_bytes_copied(), 0);
}

/// `try_close` with room in the ring: closed at once; the peer receives every
/// message, then PeerClosed.
#[test]
fn try_close_with_room_closes_at_once() {
    let (client, server) = pair("tryclose");
    client.send(b"before the close").unwrap();
    assert!(client.try_close().unwrap());
    assert!(client.is_closed());
    assert!(client.try_close().unwrap(), "idempotent");
    assert_eq!(client.send(b"after").unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), b"before the close");
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap_err().kind(), ErrorKind::PeerClosed);
}

/// `try_close` with a full ring: Ok(false) and nothing changes (the stream
/// still sends once there is room); the pollable fd says when the peer freed
/// room, and the next `try_close` closes cleanly after every message.
#[test]
fn try_close_with_a_full_ring_waits_for_the_pollable_fd() {
    let (client, server) = pair("tryclosefull");
    let mut sent = 0;
    while client.try_send(&[9u8; 500]).is_ok() {
        sent += 1;
    }
    // The slack that a 500-byte message does not fit, down to the last frame.
    let mut small = 0;
    while client.try_send(&[]).is_ok() {
        small += 1;
    }
    assert!(!client.try_close().unwrap(), "no room for the CLOSE frame");
    assert!(!client.is_closed());
    assert!(!readable(&client), "readable before the peer freed room");
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), vec![9u8; 500]);
    assert!(readable(&client), "the room freed did not make the pollable fd readable");
    assert!(client.try_close().unwrap());
    for _ in 1..sent {
        assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), vec![9u8; 500]);
    }
    for _ in 0..small {
        assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), Vec::<u8>::new());
    }
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap_err().kind(), ErrorKind::PeerClosed);
}

/// `try_close` with a message partly sent, or after the peer left: closed at
/// once, without a CLOSE frame (the peer sees PeerGone, never the part).
#[test]
fn try_close_mid_message_or_without_a_peer_ends_at_once() {
    let (client, server) = pair("tryclosemid");
    start_big(&client, &message(8, 10 * RING as usize));
    assert!(client.try_close().unwrap());
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap_err().kind(), ErrorKind::PeerGone);
    assert_eq!(server.stats().messages_received, 0);

    let (client, server) = pair("trycloseorphan");
    while client.try_send(&[1u8; 500]).is_ok() {}
    drop(server);
    assert!(client.try_close().unwrap(), "a gone peer frees no room: nothing to wait for");
    assert!(client.is_closed());
}
