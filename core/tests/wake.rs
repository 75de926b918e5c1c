//! The wake-up eventfds: a peer that passes something else as its wake-up
//! descriptor is refused with ProtocolViolation on either side and nothing is
//! left behind; a peer that saturates its eventfd cannot make us block; writes
//! to a stream's own eventfd (spurious wake-ups) never deliver anything wrong;
//! and a thief reading it only delays that connection, whose timeouts still fire.
//!
//! The tests run one at a time, so that those comparing this process's open
//! descriptors before and after see only their own.

mod common;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use shmsock::{Backend, ErrorKind, Keypair, Listener, Options, Stream};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's open descriptors and what each is.
fn open_fds() -> BTreeMap<RawFd, String> {
    let mut fds = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else { continue };
        // The directory being read has an fd of its own, which vanishes.
        if let Ok(target) = std::fs::read_link(entry.path()) {
            if !target.starts_with("/proc") {
                fds.insert(fd, target.display().to_string());
            }
        }
    }
    fds
}

fn assert_same_fds(before: &BTreeMap<RawFd, String>, what: &str) {
    let after = open_fds();
    let leaked: Vec<_> = after.iter().filter(|(fd, t)| before.get(fd) != Some(t)).collect();
    assert!(leaked.is_empty(), "{what}: descriptors left open: {leaked:?}");
}

/// As [`assert_same_fds`], but a listener that answered a HELLO on the memfd
/// backend keeps one spare segment for its next client: returns its fd, which
/// must be gone once the listener is.
fn assert_same_fds_but_a_spare(before: &BTreeMap<RawFd, String>, what: &str) -> Option<RawFd> {
    let after = open_fds();
    let mut leaked: Vec<_> = after.iter().filter(|(fd, t)| before.get(fd) != Some(t)).collect();
    let spare = leaked.iter().position(|(_, t)| t.starts_with("/memfd:shmsock")).map(|i| *leaked.remove(i).0);
    assert!(leaked.is_empty(), "{what}: descriptors left open: {leaked:?}");
    spare
}

const REFUSED_MODES: [&str; 5] = ["wake-pipe", "wake-file", "wake-epoll", "wake-none", "wake-two"];

/// Whether an error message says clearly what was wrong with the descriptors of `mode`.
fn says_why(mode: &str, message: &str) -> bool {
    match mode {
        "wake-none" => message.contains("exactly"),
        // Two eventfds: one too many for READY, or three descriptors with a memfd.
        "wake-two" => message.contains("exactly") || message.contains("more than 2 file descriptors"),
        _ => message.contains("not an eventfd"),
    }
}

/// A client whose READY carries a pipe, a regular file, an epoll fd, nothing,
/// or two eventfds instead of its wake-up eventfd is refused by the server with
/// ProtocolViolation; the server keeps no descriptor and no named segment.
#[test]
fn server_refuses_a_bad_wake_fd_from_the_client() {
    init();
    let _serial = serial();
    for backend in [Backend::Memfd, Backend::Named] {
        for mode in REFUSED_MODES {
            let name = unique_name("badwake");
            let kp = Keypair::generate();
            let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()).backend(backend)).unwrap();
            let mut settings = client_settings(&name, kp.public());
            settings.push(("MODE", mode.to_string()));
            let mut evil = Child::spawn("evil", "evil_ready_client", &settings);
            let before = open_fds();
            let pending = listener.accept_pending(Some(Instant::now() + WAIT)).unwrap();
            let err = listener.handshake(pending).expect_err("the server accepted a bad wake-up descriptor");
            assert_eq!(err.kind(), ErrorKind::ProtocolViolation, "{backend:?} {mode}: {err}");
            assert!(says_why(mode, err.message()), "{backend:?} {mode}: unclear message: {err}");
            let spare = assert_same_fds_but_a_spare(&before, &format!("{backend:?} {mode}"));
            if backend == Backend::Named {
                let segment = evil.expect("SEGMENT");
                assert!(!shm_exists(&segment[0]), "{mode}: the named segment {} was left in /dev/shm", segment[0]);
            }
            let expected_fds = if backend == Backend::Memfd { "2" } else { "1" };
            assert_eq!(
                evil.expect("REPLY_FDS"),
                vec![expected_fds],
                "REPLY: memfd (memfd backend), then the wake-up eventfd"
            );
            assert_eq!(evil.expect("SERVER_ENDED"), vec!["PeerGone"], "{backend:?} {mode}");
            evil.quit();
            drop(listener);
            if let Some(fd) = spare {
                let open = open_fds();
                assert!(
                    !open.get(&fd).is_some_and(|t| t.starts_with("/memfd:shmsock")),
                    "{mode}: the listener's spare segment outlived it"
                );
            }
            assert_no_endpoint_files(&name);
        }
    }
}

/// A server whose REPLY carries a bad wake-up descriptor (with a good memfd) is
/// refused by the client with ProtocolViolation, before it sends READY; the
/// client keeps no descriptor.
#[test]
fn client_refuses_a_bad_wake_fd_from_the_server() {
    init();
    let _serial = serial();
    for mode in REFUSED_MODES {
        let name = unique_name("evilwake");
        let kp = Keypair::generate();
        let mut settings = server_settings(&name, &kp);
        settings.push(("MODE", mode.to_string()));
        let mut evil = Child::spawn("evil", "evil_segment_server", &settings);
        evil.expect("BOUND");
        let before = open_fds();
        match Stream::connect(&name, &Options::new().server_key(*kp.public())) {
            Ok(_) => panic!("{mode}: the client accepted a bad wake-up descriptor"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{mode}: {e}");
                assert!(says_why(mode, e.message()), "{mode}: unclear message: {e}");
            }
        }
        assert_same_fds(&before, mode);
        assert_eq!(evil.expect("CLIENT_ENDED"), vec!["PeerGone"], "{mode}: the client must not send READY");
        evil.quit();
        assert_no_endpoint_files(&name);
    }
}

/// A client that passes a blocking eventfd with its counter at the limit (so a
/// blocking write would hang) cannot make the server block: waking it is
/// "already woken", and the server's close returns at once.
#[test]
fn a_saturated_peer_eventfd_never_blocks() {
    init();
    let _serial = serial();
    let name = unique_name("fullwake");
    let kp = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let mut settings = client_settings(&name, kp.public());
    settings.push(("MODE", "wake-full".to_string()));
    let mut evil = Child::spawn("evil", "evil_ready_client", &settings);
    let stream = listener.accept_timeout(Some(WAIT)).expect("a saturated eventfd is still an eventfd");
    let started = Instant::now();
    stream.close().unwrap(); // wakes the peer unconditionally
    assert!(started.elapsed() < Duration::from_secs(5), "close blocked on the peer's eventfd");
    assert_eq!(evil.expect("SERVER_ENDED"), vec!["PeerGone"]);
    evil.quit();
}

/// The eventfds in a stream's epoll set (its pollable fd): its own wake-up.
fn own_eventfds(stream: &Stream) -> Vec<RawFd> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", stream.pollable_fd().as_raw_fd())).unwrap();
    let fds: Vec<RawFd> = info
        .lines()
        .filter_map(|l| l.strip_prefix("tfd:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|t| t.as_os_str() == "anon_inode:[eventfd]")
        })
        .collect();
    assert_eq!(fds.len(), 1, "the pollable fd holds exactly one eventfd: {info}");
    fds
}

/// A connected pair in this process, sleeping at once (no spin) so that every
/// wait goes through the eventfds.
fn pair(tag: &str, ring: u32) -> (Stream, Stream) {
    // Before naming: a test that sets the runtime directory up while another
    // binds and connects would split them across two directories.
    init();
    let name = unique_name(tag);
    let kp = Keypair::generate();
    let listener =
        Listener::bind(&name, &Options::new().keypair(kp.clone()).spin(Duration::ZERO).ring_size(ring)).unwrap();
    let options = Options::new().server_key(*kp.public()).spin(Duration::ZERO).ring_size(ring);
    let client = std::thread::spawn(move || Stream::connect(&name, &options).unwrap());
    let server = listener.accept_timeout(Some(WAIT)).unwrap();
    (client.join().unwrap(), server)
}

/// Runs `f` on each fd in a loop on another thread until the returned flag is set.
fn hammer(
    fds: Vec<RawFd>,
    seed: u64,
    f: fn(BorrowedFd<'_>, &mut Rng),
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut rounds = 0;
        while !flag.load(Ordering::Relaxed) {
            for &fd in &fds {
                // SAFETY (test): the streams owning these fds outlive this thread,
                // which is joined before they are dropped.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                f(fd, &mut rng);
            }
            rounds += 1;
            if rng.below(4) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(200)));
            }
        }
        rounds
    });
    (stop, handle)
}

/// Another writer of a stream's own eventfd (a hostile peer writing at random)
/// causes only spurious wake-ups: every message arrives once, intact, in order,
/// both ways, with fragmented messages and a ring that fills up.
#[test]
fn spurious_wakeups_deliver_nothing_wrong() {
    init();
    let _serial = serial();
    let (client, server) = pair("spurious", 4096);
    let mut fds = own_eventfds(&client);
    fds.extend(own_eventfds(&server));
    let (stop, hammering) = hammer(fds, 7, |fd, rng| {
        let value = 1 + rng.below(1 << 40);
        let _ = rustix::io::write(fd, &value.to_ne_bytes());
    });
    let echo = std::thread::spawn(move || loop {
        match server.recv_timeout(Some(WAIT)) {
            Ok(m) => server.send_timeout(&m, Some(WAIT)).unwrap(),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::PeerClosed, "{e}");
                return;
            }
        }
    });
    let mut rng = Rng::new(11);
    for i in 0..3000u64 {
        let len = match rng.below(10) {
            0 => 3000 + rng.below(6000) as usize,
            _ => 16 + rng.below(300) as usize,
        };
        let m = message(i, len);
        client.send_timeout(&m, Some(WAIT)).unwrap();
        let unread = client.stats().messages_sent - client.stats().messages_received;
        if len < 400 && unread < 3 && rng.below(3) == 0 {
            // Let a few small ones pile up in the rings before reading the
            // echoes (few enough that both rings hold them: no deadlock).
            continue;
        }
        while client.stats().messages_received < client.stats().messages_sent {
            let back = client.recv_timeout(Some(WAIT)).unwrap();
            assert_eq!(
                check_message(&back),
                Some(client.stats().messages_received - 1),
                "echo out of order or damaged"
            );
        }
    }
    while client.stats().messages_received < client.stats().messages_sent {
        let back = client.recv_timeout(Some(WAIT)).unwrap();
        assert_eq!(check_message(&back), Some(client.stats().messages_received - 1));
    }
    client.close().unwrap();
    echo.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(hammering.join().unwrap() > 0);
}

/// A thief that reads a stream's own eventfd (a hostile peer may, it holds it)
/// steals wake-ups: the stream's waits may then end only at their timeout, but
/// nothing is lost or damaged, and retrying receives every message.
#[test]
fn a_stolen_wakeup_only_delays() {
    init();
    let _serial = serial();
    let (client, server) = pair("thief", 4096);
    let (stop, stealing) = hammer(own_eventfds(&client), 5, |fd, _| {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(fd, &mut buf);
    });
    let count = 300u64;
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            server.send_timeout(&message(i, 100), Some(WAIT)).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        server
    });
    let mut timeouts = 0;
    let mut got = 0;
    let deadline = Instant::now() + WAIT;
    while got < count {
        assert!(Instant::now() < deadline, "messages stopped arriving");
        match client.recv_timeout(Some(Duration::from_millis(5))) {
            Ok(m) => {
                assert_eq!(check_message(&m), Some(got));
                got += 1;
            }
            Err(e) if e.kind() == ErrorKind::Timeout => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    stealing.join().unwrap();
    let server = sender.join().unwrap();
    drop(server);
    eprintln!("a_stolen_wakeup_only_delays: {timeouts} receive timeouts while the wake-ups were stolen");
}

/// True when the stream's pollable fd becomes readable within `timeout`.
fn readable_within(stream: &Stream, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd; poll only writes its revents.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// Fills the stream's outbound ring with `try_send` until it says WouldBlock
/// (whose drain of the shared wake-up is what these tests are about).
fn fill_with_try_send(stream: &Stream) -> usize {
    let chunk = [7u8; 512];
    for sent in 0..10_000 {
        match stream.try_send(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("try_send: {e}"),
        }
    }
    panic!("the ring never filled");
}

/// Both directions share one wake-up eventfd. An event loop whose `try_recv`
/// said WouldBlock waits on the pollable fd for the peer's message; when the
/// message's wake-up arrives and a `try_send` on the same stream then finds the
/// ring full and drains the wake-ups, the pollable fd must still become
/// readable (before, the drain consumed it and the loop slept with the message
/// waiting: the server rechecked every connection each millisecond for this).
/// And the other way round: a `try_recv` drain keeps the wake-up of a
/// `try_send` waiting for space. Once both are served, the fd is quiet (no
/// wake-up is re-signalled for nothing, which would make a loop spin).
#[test]
fn a_drain_for_one_direction_keeps_the_other_directions_wakeup() {
    let (a, b) = pair("drain-both", 16 * 1024);

    // Receive side first.
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    b.send(b"for the event loop").unwrap();
    // The message woke `a` (its receive flag was set); now a send drains that.
    assert!(fill_with_try_send(&a) > 0);
    assert!(readable_within(&a, WAIT), "the pollable fd lost the wake-up of a message that arrived");
    assert_eq!(a.try_recv().unwrap(), b"for the event loop");

    // Send side: `a`'s ring is full and its try_send armed for space (above).
    while b.try_recv().is_ok() {}
    // `b` freed the space and woke `a`; a receive that finds nothing drains it.
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(readable_within(&a, WAIT), "the pollable fd lost the wake-up of freed ring space");
    a.try_send(b"fits again").unwrap();

    // Both served: the drain of the next WouldBlock leaves the fd quiet.
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(!readable_within(&a, Duration::ZERO), "a wake-up was re-signalled for nothing");
    assert_eq!(b.recv_timeout(Some(WAIT)).unwrap(), b"fits again");
}

/// A reader blocked in `recv` while another thread's `try_send` on the same
/// stream finds the ring full and drains the shared wake-up, again and again:
/// the reader still gets every message the peer sends meanwhile (bounded by a
/// generous receive timeout, so a lost wake-up fails instead of hanging).
#[test]
fn a_blocked_reader_keeps_its_wakeup_while_try_send_drains() {
    let (a, b) = pair("drain-reader", 16 * 1024);
    let a = Arc::new(a);
    fill_with_try_send(&a);
    let done = Arc::new(AtomicBool::new(false));
    let drainer = {
        let (a, done) = (Arc::clone(&a), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                // Never fits (nobody reads `b`'s side): each call drains.
                let _ = a.try_send(&[1u8; 512]);
            }
        })
    };
    for i in 0..200u32 {
        b.send(&i.to_le_bytes()).unwrap();
        let got = a.recv_timeout(Some(WAIT)).unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(got, i.to_le_bytes());
    }
    done.store(true, Ordering::Relaxed);
    drainer.join().unwrap();
}

/// A pair where `a`, as an event loop, served one message from `b` (so it
/// keeps the wish for the next) and then filled its ring towards `b` with
/// `try_send` (whose drain of the shared wake-up, and whose wish for space,
/// the tests using this are about).
fn served_one_then_full(tag: &str) -> (Stream, Stream) {
    let (a, b) = pair(tag, 16 * 1024);
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    b.send(b"first").unwrap();
    assert!(readable_within(&a, WAIT));
    assert_eq!(a.try_recv().unwrap(), b"first");
    fill_with_try_send(&a);
    (a, b)
}

/// An event loop that served a message (`try_recv` said Ok) relies on the
/// wake-up it got for that message to come back for the next one: the peer's
/// next message finds the waiting flag taken and wakes nobody. When a
/// `try_send` on the same stream then finds the ring full and drains the shared
/// wake-up, the pollable fd must still become readable for the peer's next
/// message (before, the drain consumed it, and the loop slept with the message
/// waiting: the C reactor test caught it, 3% of runs).
#[test]
fn a_served_message_keeps_the_next_ones_wakeup_across_a_try_send_drain() {
    let (a, b) = served_one_then_full("served-drain");
    b.send(b"second").unwrap();
    assert!(readable_within(&a, WAIT), "the next message's wake-up was lost to the drain");
    assert_eq!(a.try_recv().unwrap(), b"second");
}

/// The same with a blocking `send` on the event loop's stream (what the C and
/// C++ echo examples do: `try_recv` from the loop, then `send` the reply): a
/// send that sleeps for ring space consumes the shared wake-up, and must leave
/// the pollable fd armed for the peer's next message.
#[test]
fn a_served_message_keeps_the_next_ones_wakeup_across_a_blocking_send() {
    let ring = 16 * 1024;
    let (a, b) = pair("served-send", ring);
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    b.send(b"first").unwrap();
    assert!(readable_within(&a, WAIT));
    assert_eq!(a.try_recv().unwrap(), b"first");
    let b = Arc::new(b);
    let reader = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || b.recv_timeout(Some(WAIT)).unwrap().len())
    };
    // Larger than the ring: this send must wait (sleep, no spin) for space.
    let big = vec![3u8; 4 * ring as usize];
    a.send(&big).unwrap();
    assert_eq!(reader.join().unwrap(), big.len());
    b.send(b"second").unwrap();
    assert!(readable_within(&a, WAIT), "the next message's wake-up was lost to the blocking send");
    assert_eq!(a.try_recv().unwrap(), b"second");
}

/// An event loop that stops reading a stream (backpressure) calls
/// `pause_receiving`: the pollable fd then stays quiet for the messages it
/// leaves unread (else a level-triggered loop would spin on it), still wakes
/// for the ring space its `try_send` waits for, and the next `try_recv` gets
/// every message that waited.
#[test]
fn a_paused_stream_wakes_only_for_what_the_loop_waits_for() {
    let (a, b) = served_one_then_full("paused");
    b.send(b"second").unwrap();
    b.send(b"third").unwrap();
    a.pause_receiving().unwrap();
    assert!(!readable_within(&a, Duration::ZERO), "a paused stream's fd stays readable for unread messages");
    // Space freed by `b`: that wake-up still comes.
    while b.try_recv().is_ok() {}
    assert!(readable_within(&a, WAIT), "the wake-up for freed ring space was lost to the pause");
    a.try_send(b"fits again").unwrap();
    assert_eq!(a.try_recv().unwrap(), b"second");
    assert_eq!(a.try_recv().unwrap(), b"third");
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(!readable_within(&a, Duration::ZERO), "a wake-up was re-signalled for nothing");
}

/// An event loop that wants messages but does not read them now (a send just
/// drained the shared wake-up) calls `watch_receiving`: it takes nothing, and
/// the pollable fd reports a message already in the ring, or the next one, as
/// after a `try_recv` that said WouldBlock; even after a pause withdrew the
/// wish. After close it says Closed.
#[test]
fn watching_the_receive_side_reports_waiting_and_coming_messages() {
    let (a, b) = served_one_then_full("watch");
    b.send(b"second").unwrap();
    a.pause_receiving().unwrap();
    assert!(!readable_within(&a, Duration::ZERO));
    a.watch_receiving().unwrap();
    assert!(readable_within(&a, Duration::ZERO), "a message in the ring was not reported");
    assert_eq!(a.next_message_len(), Some(b"second".len()), "watching took the message");
    assert_eq!(a.try_recv().unwrap(), b"second");
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    a.pause_receiving().unwrap();
    a.watch_receiving().unwrap();
    assert!(!readable_within(&a, Duration::ZERO), "an empty ring was reported");
    b.send(b"third").unwrap();
    assert!(readable_within(&a, WAIT), "the next message was not reported");
    assert_eq!(a.try_recv().unwrap(), b"third");
    a.close().unwrap();
    assert_eq!(a.watch_receiving().unwrap_err().kind(), ErrorKind::Closed);
}
