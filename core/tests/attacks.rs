//! Attacks on a `Server` from other processes: a peer flooding its control
//! socket, a thousand silent connections, a peer that never reads its replies,
//! peers whose close stalls, and a giant message that stops half way. In each,
//! a bystander client keeps being served (it completes its round trips) and a
//! new legitimate client still connects. No timed assertions: progress and
//! counts, every wait bounded.
//!
//! The attackers run in child processes: this test binary started again with
//! `ATTACK` set, running the `attacker` test below.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use shmsock::control::{self, Record};
use shmsock::handshake::{Backend, ClientOffer, Initiator};
use shmsock::platform::OwnWake;
use shmsock::{Connection, Error, ErrorKind, Keypair, Options, PublicKey, Server, ServerHandler, Stream};

const WAIT: Duration = Duration::from_secs(20);
const ROUND_TRIPS: usize = 200;

fn runtime_dir() {
    static DIR: OnceLock<()> = OnceLock::new();
    DIR.get_or_init(|| {
        if std::env::var_os("ATTACK").is_some() {
            return; // a child inherits its parent's directory
        }
        let dir = tempfile::Builder::new().prefix("shmsock-at-").tempdir_in("/tmp").expect("temp dir").keep();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod 700");
        std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    });
}

fn unique(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    runtime_dir();
    format!("at-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Echoes every message without ever blocking (a full queue drops the reply),
/// and closes the connection on "bye".
struct Echo;

impl ServerHandler for Echo {
    fn on_data(&self, c: &Connection, data: &[u8]) {
        if data == b"bye" {
            let _ = c.close();
            return;
        }
        let _ = c.send(data);
    }
}

fn start(name: &str) -> (Server, PublicKey) {
    start_with(name, Options::new().ring_size(1 << 16).max_queued_bytes(256 << 10))
}

/// An echo server with `options` and a fresh keypair, and its public key.
fn start_with(name: &str, options: Options) -> (Server, PublicKey) {
    let kp = Keypair::generate();
    (Server::start(name, &options.keypair(kp.clone()), Echo).expect("server starts"), *kp.public())
}

fn client_options(key: &PublicKey) -> Options {
    Options::new().server_key(*key).recv_timeout(Some(WAIT)).send_timeout(Some(WAIT)).handshake_timeout(WAIT)
}

/// A bystander's round trips all complete.
fn bystander_is_served(stream: &Stream) {
    for i in 0..ROUND_TRIPS {
        let msg = format!("bystander {i}");
        stream.send(msg.as_bytes()).expect("the bystander sends");
        assert_eq!(stream.recv().expect("the bystander gets its echo"), msg.as_bytes());
    }
}

/// A new client connects and is served.
fn newcomer_is_served(name: &str, key: &PublicKey) {
    let stream = Stream::connect(name, &client_options(key)).expect("a new client connects under attack");
    stream.send(b"hello").unwrap();
    assert_eq!(stream.recv().unwrap(), b"hello");
    stream.close().unwrap();
}

struct Attacker {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Attacker {
    fn spawn(kind: &str, name: &str, key: &PublicKey, count: usize) -> Attacker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "attacker", "--nocapture", "--test-threads=1"])
            .env("ATTACK", kind)
            .env("NAME", name)
            .env("KEY", key.to_text())
            .env("COUNT", count.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning an attacker");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut attacker = Attacker { child, out };
        attacker.expect("ATTACKING");
        attacker
    }

    fn expect(&mut self, word: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "the attacker ended before saying {word}");
            // libtest prints "test attacker ... " before the child's first line.
            if line.trim().ends_with(word) {
                return;
            }
        }
    }

    /// Stops the attacker mid-way (SIGSTOP), as a peer that stalls.
    fn freeze(&self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::STOP,
        );
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn attack_case(kind: &str, count: usize, freeze: bool) {
    let name = unique(kind);
    let (server, key) = start(&name);
    let bystander = Stream::connect(&name, &client_options(&key)).expect("the bystander connects");
    let attacker = Attacker::spawn(kind, &name, &key, count);
    if freeze {
        attacker.freeze();
    }
    bystander_is_served(&bystander);
    newcomer_is_served(&name, &key);
    bystander_is_served(&bystander);
    bystander.close().unwrap();
    drop(attacker);
    server.close();
}

#[test]
fn a_peer_flooding_its_control_socket() {
    attack_case("flood", 1, false);
}

#[test]
fn a_thousand_silent_connections() {
    attack_case("silent", 1000, false);
}

#[test]
fn a_peer_that_never_reads() {
    attack_case("noread", 4, false);
}

#[test]
fn peers_whose_close_stalls() {
    attack_case("stallclose", 8, false);
}

#[test]
fn a_giant_message_that_stops_half_way() {
    attack_case("giant", 1, true);
}

#[test]
fn every_attack_at_once() {
    let name = unique("all");
    let (server, key) = start(&name);
    let bystander = Stream::connect(&name, &client_options(&key)).expect("the bystander connects");
    let attackers: Vec<Attacker> = [("flood", 1), ("silent", 1000), ("noread", 4), ("stallclose", 8), ("giant", 1)]
        .into_iter()
        .map(|(kind, count)| Attacker::spawn(kind, &name, &key, count))
        .collect();
    attackers[4].freeze();
    bystander_is_served(&bystander);
    newcomer_is_served(&name, &key);
    drop(attackers);
    bystander.close().unwrap();
    server.close();
}

// ------------------------------------------------------------------ children

/// The attacker process's entry point (does nothing in the parent).
#[test]
fn attacker() {
    let Ok(kind) = std::env::var("ATTACK") else { return };
    let name = std::env::var("NAME").unwrap();
    let key = PublicKey::from_text(&std::env::var("KEY").unwrap()).unwrap();
    let count: usize = std::env::var("COUNT").unwrap().parse().unwrap();
    let say = |word: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{word}");
        let _ = out.flush();
    };
    match kind.as_str() {
        "flood" => {
            let socket = handshake_by_hand(&name, &key);
            say("ATTACKING");
            let junk = [0x5au8; 64 * 1024];
            loop {
                if (&socket).write_all(&junk).is_err() {
                    break; // the server ended the connection: connect again and go on
                }
            }
            let socket = handshake_by_hand(&name, &key);
            while (&socket).write_all(&junk).is_ok() {}
            std::thread::sleep(WAIT * 10);
        }
        "silent" => {
            shmsock::platform::raise_open_files_limit().unwrap();
            let path = shmsock::endpoint::EndpointPaths::of(&name).unwrap().socket;
            let mut sockets = Vec::new();
            for _ in 0..count {
                match UnixStream::connect(&path) {
                    Ok(s) => sockets.push(s),
                    Err(e) => panic!("silent connection {}: {e}", sockets.len()),
                }
            }
            say("ATTACKING");
            // Reconnect the ones the server refused, forever.
            loop {
                for s in sockets.iter_mut() {
                    let mut byte = [0u8; 1];
                    let _ = s.set_nonblocking(true);
                    if std::io::Read::read(s, &mut byte).is_ok() {
                        if let Ok(fresh) = UnixStream::connect(&path) {
                            *s = fresh;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        "noread" => {
            let streams: Vec<Stream> =
                (0..count).map(|_| Stream::connect(&name, &Options::new().server_key(key)).unwrap()).collect();
            say("ATTACKING");
            let msg = vec![7u8; 1000];
            loop {
                for s in &streams {
                    if s.send(&msg).is_err() {
                        std::thread::sleep(WAIT * 10);
                    }
                }
            }
        }
        "stallclose" => {
            // Fill the server's ring towards us, then make it close while we
            // keep the socket and read nothing.
            let streams: Vec<Stream> =
                (0..count).map(|_| Stream::connect(&name, &Options::new().server_key(key)).unwrap()).collect();
            // 20 x 8000 B: the ring towards us (64 KiB) fills and the rest
            // waits in the server's queue (256 KiB) without filling it (a
            // refused reply would make the server stop reading us), so the
            // "bye" is read.
            let msg = vec![9u8; 8000];
            for s in &streams {
                for _ in 0..20 {
                    s.send(&msg).unwrap();
                }
                s.send(b"bye").unwrap();
            }
            say("ATTACKING");
            std::thread::sleep(WAIT * 10);
        }
        "giant" => {
            let stream = Stream::connect(&name, &Options::new().server_key(key)).unwrap();
            say("ATTACKING");
            // Frozen by the parent somewhere in the middle.
            let giant = vec![3u8; 15 << 20];
            loop {
                let _ = stream.send(&giant);
            }
        }
        other => panic!("unknown attack {other}"),
    }
}

/// Connects without the library's client: HELLO, REPLY, READY with an eventfd,
/// returning the control socket, which the server now treats as a connection.
fn handshake_by_hand(name: &str, key: &PublicKey) -> UnixStream {
    let socket = hello_by_hand(name, key).expect("the server answers the HELLO");
    ready_by_hand(&socket);
    socket
}

/// The first half of [`handshake_by_hand`]: sends a HELLO and reads the REPLY
/// (the server now holds a segment for this client); Err(reason) on a REJECT.
fn hello_by_hand(name: &str, key: &PublicKey) -> Result<UnixStream, u16> {
    let socket = shmsock::endpoint::connect(name).unwrap();
    let me = Keypair::generate();
    let mut initiator = Initiator::new(
        &me,
        key,
        name,
        ClientOffer::local(false, 16 << 20, 0, Backend::Memfd.bit() | Backend::Named.bit()),
    )
    .unwrap();
    control::send(socket.as_fd(), &control::encode(control::HELLO, &initiator.write_hello().unwrap()), &[]).unwrap();
    let mut fds = Vec::new();
    let reply = match control::receive(socket.as_fd(), &mut fds, None).unwrap() {
        Record::Reply(reply) => reply,
        Record::Reject(reason, _) => return Err(reason as u16),
        other => panic!("expected a REPLY, got {other:?}"),
    };
    initiator.read_reply(&reply).unwrap();
    Ok(socket)
}

/// The second half of [`handshake_by_hand`]: READY with an eventfd.
fn ready_by_hand(socket: &UnixStream) {
    let wake = OwnWake::new().unwrap();
    control::send(socket.as_fd(), &control::encode(control::READY, &[]), &[wake.for_peer()]).unwrap();
    std::mem::forget(wake);
}

/// Bytes on the control socket after set-up end that connection (its writes
/// fail soon, instead of being read forever), and nobody else's.
#[test]
fn a_control_socket_flood_ends_the_flooders_connection() {
    let name = unique("flood-ends");
    let (server, key) = start(&name);
    let bystander = Stream::connect(&name, &client_options(&key)).expect("the bystander connects");
    let socket = handshake_by_hand(&name, &key);
    socket.set_write_timeout(Some(WAIT)).unwrap();
    let junk = [0x5au8; 64 * 1024];
    let mut written = 0usize;
    let e = loop {
        match (&socket).write(&junk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset),
        "the flood should end with the connection, got {e} after {written} bytes"
    );
    bystander_is_served(&bystander);
    bystander.close().unwrap();
    server.close();
}

/// A client that sends without reading its replies stops being read once its
/// outbound queue refused a reply: its own sends then wait (and time out)
/// instead of keeping the server busy; once it reads, it is served again.
#[test]
fn a_peer_that_never_reads_waits_in_its_own_sends() {
    let name = unique("backpressure");
    let (server, key) = start(&name);
    let options = client_options(&key).send_timeout(Some(Duration::from_millis(100)));
    let stream = Stream::connect(&name, &options).expect("the client connects");
    let message = vec![7u8; 1000];
    // Rings of 64 KiB each way and a queue of 256 KiB hold about 256 KiB in
    // all: far fewer than 16 MiB of sends must get through before one waits.
    let mut sent = 0usize;
    let stopped = loop {
        match stream.send(&message) {
            Ok(()) => sent += message.len(),
            Err(e) => break e,
        }
        assert!(sent < 16 << 20, "16 MiB sent without reading: the server never stopped reading this client");
    };
    assert_eq!(stopped.kind(), ErrorKind::Timeout, "{stopped}");
    // One reply taken moves the queue by one, and reading stays paused until
    // the whole queue has gone out: no request is read, so none fits.
    stream.recv().expect("a reply");
    std::thread::sleep(Duration::from_millis(100));
    let one_more = stream.try_send(&message);
    assert!(
        matches!(&one_more, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "one reply taken resumed reading: {one_more:?}"
    );
    // Reading the replies lets the server read again: a marked message comes back.
    let marker = b"marker";
    let mut marker_sent = false;
    let mut echoes = 0usize;
    loop {
        if !marker_sent {
            marker_sent = stream.try_send(marker).is_ok();
        }
        let echo = stream.recv().expect("the echoes keep coming");
        if echo == marker {
            break;
        }
        echoes += 1;
        assert!(echoes <= sent / message.len(), "more echoes than messages");
    }
    assert!(marker_sent);
    stream.close().unwrap();
    server.close();
}

/// Clients that have not sent their HELLO wait for their deadline instead of
/// being refused (and re-made by an attacker, in a loop) while there is room
/// for them; past `max_connections` of them, the oldest give way.
#[test]
fn silent_clients_wait_while_there_is_room() {
    let name = unique("silent-room");
    let (server, key) = start_with(&name, Options::new().max_connections(16).max_pending_handshakes(2, 2));
    let nothing_received = |s: &UnixStream| {
        s.set_nonblocking(true).unwrap();
        let got = std::io::Read::read(&mut &*s, &mut [0u8; 1]);
        s.set_nonblocking(false).unwrap();
        matches!(got, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let mut silent: Vec<UnixStream> = (0..10).map(|_| shmsock::endpoint::connect(&name).unwrap()).collect();
    // More clients than the pending-handshake limit, one after another: the
    // server accepted every silent one before each (the kernel queues in order).
    for _ in 0..3 {
        newcomer_is_served(&name, &key);
    }
    for (i, s) in silent.iter().enumerate() {
        assert!(nothing_received(s), "silent client {i} was refused while there was room");
    }
    silent.extend((0..10).map(|_| shmsock::endpoint::connect(&name).unwrap()));
    newcomer_is_served(&name, &key);
    // 20 silent and a newcomer against room for 16 waiting: the 5 oldest gave way.
    let mut fds = Vec::new();
    for s in &silent[..5] {
        s.set_read_timeout(Some(WAIT)).unwrap();
        match control::receive(s.as_fd(), &mut fds, None).unwrap() {
            Record::Reject(reason, _) => assert_eq!(reason as u16, 7),
            other => panic!("expected a REJECT, got {other:?}"),
        }
    }
    for (i, s) in silent.iter().enumerate().skip(5) {
        assert!(nothing_received(s), "silent client {i} was refused, though only the 5 oldest had to be");
    }
    server.close();
}

/// A HELLO beyond `max_pending_handshakes` (handshakes holding a segment until
/// their READY) is refused with REJECT 7; once one finishes, clients connect.
#[test]
fn handshakes_holding_a_segment_are_bounded() {
    let name = unique("hello-bound");
    let (server, key) = start_with(&name, Options::new().max_pending_handshakes(1, 1));
    let stalled = hello_by_hand(&name, &key).expect("the first HELLO is answered");
    assert_eq!(
        hello_by_hand(&name, &key).err(),
        Some(7),
        "a second HELLO is refused while the first holds its segment"
    );
    let e = Stream::connect(&name, &client_options(&key)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
    ready_by_hand(&stalled);
    // The READY ends the first handshake, freeing its place: the next client
    // gets in at once, though the server may look at its HELLO before at
    // that READY (it then finishes the answered handshakes first).
    let stream = Stream::connect(&name, &client_options(&key)).expect("a client connects once the READY was sent");
    stream.send(b"after").unwrap();
    assert_eq!(stream.recv().unwrap(), b"after");
    drop(stalled);
    server.close();
}

/// Refusals are answered, never silent.
#[test]
fn refusals_get_a_reject() {
    let name = unique("full");
    let (server, key) = start_with(&name, Options::new().max_connections(1).max_pending_handshakes(2, 2));
    let first = Stream::connect(&name, &client_options(&key)).unwrap();
    let e: Error = Stream::connect(&name, &client_options(&key)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
    first.close().unwrap();
    drop(first);
    for _ in 0..1000 {
        if server.connections().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // A malformed first record: REJECT 5.
    let socket = shmsock::endpoint::connect(&name).unwrap();
    control::send(socket.as_fd(), &[9, 0, 0, 0], &[]).unwrap();
    let mut fds = Vec::new();
    match control::receive(socket.as_fd(), &mut fds, None).unwrap() {
        Record::Reject(reason, _) => assert_eq!(reason as u16, 5),
        other => panic!("expected a REJECT, got {other:?}"),
    }

    // Pending handshakes are bounded: the oldest silent one is refused to make room.
    let silent: Vec<UnixStream> = (0..3).map(|_| shmsock::endpoint::connect(&name).unwrap()).collect();
    match control::receive(silent[0].as_fd(), &mut fds, None).unwrap() {
        Record::Reject(reason, _) => assert_eq!(reason as u16, 7),
        other => panic!("expected a REJECT, got {other:?}"),
    }
    // Counted just after the REJECT is sent.
    for _ in 0..1000 {
        if server.rejected_count() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.rejected_count() >= 3, "{} refusals counted", server.rejected_count());
    server.close();
}

/// `Listener::accept_timeout` is not delayed by silent clients ahead of a real one.
#[test]
fn accept_is_not_held_up_by_silent_clients() {
    let name = unique("accept");
    let kp = Keypair::generate();
    let listener = shmsock::Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let silent: Vec<UnixStream> = (0..3).map(|_| shmsock::endpoint::connect(&name).unwrap()).collect();
    let key = *kp.public();
    let client_name = name.clone();
    let client = std::thread::spawn(move || {
        let s = Stream::connect(&client_name, &client_options(&key)).unwrap();
        s.send(b"hi").unwrap();
        s
    });
    let stream = listener.accept_timeout(Some(WAIT)).expect("the real client is accepted");
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"hi");
    let _client = client.join().unwrap();
    let e = listener.accept_timeout(Some(Duration::from_millis(50))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    drop(silent);
}

/// Whether `fd` becomes readable within `timeout`.
fn readable_within(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    shmsock::platform::wait_fd(fd, rustix::event::PollFlags::IN, Some(std::time::Instant::now() + timeout)).unwrap()
}

/// An event loop's accept (`pollable_fd` + `try_accept`) serves a real client
/// behind silent ones, without waiting in any call.
#[test]
fn try_accept_serves_a_client_behind_silent_ones() {
    let name = unique("try-accept");
    let kp = Keypair::generate();
    let listener = shmsock::Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let silent: Vec<UnixStream> = (0..5).map(|_| shmsock::endpoint::connect(&name).unwrap()).collect();
    assert!(listener.try_accept().unwrap().is_none(), "silent clients complete nothing");
    let key = *kp.public();
    let client_name = name.clone();
    let client = std::thread::spawn(move || {
        let s = Stream::connect(&client_name, &client_options(&key)).unwrap();
        s.send(b"hi").unwrap();
        s
    });
    let mut stream = None;
    for _ in 0..100 {
        assert!(readable_within(listener.pollable_fd(), WAIT), "the pollable fd reports the client's progress");
        if let Some(s) = listener.try_accept().unwrap() {
            stream = Some(s);
            break;
        }
    }
    let stream = stream.expect("the real client is accepted");
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"hi");
    let _client = client.join().unwrap();
    assert!(listener.try_accept().unwrap().is_none());
    assert_eq!(listener.rejected_count(), 0, "the silent clients still wait for their deadline");
    drop(silent);
}

/// A handshake's deadline makes the pollable fd readable, so an event loop
/// needs no timer: the silent client is then refused with a REJECT.
#[test]
fn the_pollable_fd_reports_a_handshake_deadline() {
    let name = unique("deadline");
    let kp = Keypair::generate();
    let options = Options::new().keypair(kp).handshake_timeout(Duration::from_millis(200));
    let listener = shmsock::Listener::bind(&name, &options).unwrap();
    let silent = shmsock::endpoint::connect(&name).unwrap();
    assert!(readable_within(listener.pollable_fd(), WAIT), "the client is waiting");
    assert!(listener.try_accept().unwrap().is_none());
    assert!(readable_within(listener.pollable_fd(), WAIT), "the deadline wakes the event loop");
    let mut reported = Vec::new();
    assert!(listener.try_accept_reporting(&mut |e| reported.push(e.kind())).unwrap().is_none());
    assert_eq!(reported, [ErrorKind::Timeout], "the refusal is reported to the caller");
    assert_eq!(listener.rejected_count(), 1, "the silent client was refused at its deadline");
    let err = listener.last_rejection().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let mut fds = Vec::new();
    match control::receive(silent.as_fd(), &mut fds, None).unwrap() {
        Record::Reject(..) => {}
        other => panic!("expected a REJECT, got {other:?}"),
    }
    assert!(!readable_within(listener.pollable_fd(), Duration::ZERO), "nothing left to report");
}

/// A listener bounds the clients awaiting their HELLO by `max_connections`:
/// beyond it the oldest give way (REJECT 7), the others wait.
#[test]
fn a_listener_makes_room_by_refusing_the_oldest_silent_clients() {
    let name = unique("listener-room");
    let kp = Keypair::generate();
    let listener = shmsock::Listener::bind(&name, &Options::new().keypair(kp).max_connections(4)).unwrap();
    let silent: Vec<UnixStream> = (0..6)
        .map(|_| {
            let s = shmsock::endpoint::connect(&name).unwrap();
            // One at a time, so that the listener takes them in order.
            while listener.try_accept().unwrap().is_some() {}
            s
        })
        .collect();
    assert_eq!(listener.rejected_count(), 2, "{:?}", listener.last_rejection());
    let mut fds = Vec::new();
    for s in &silent[..2] {
        s.set_read_timeout(Some(WAIT)).unwrap();
        match control::receive(s.as_fd(), &mut fds, None).unwrap() {
            Record::Reject(reason, _) => assert_eq!(reason as u16, 7),
            other => panic!("expected a REJECT, got {other:?}"),
        }
    }
    for (i, s) in silent.iter().enumerate().skip(2) {
        s.set_nonblocking(true).unwrap();
        let got = std::io::Read::read(&mut &*s, &mut [0u8; 1]);
        assert!(
            matches!(got, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "silent client {i} was refused, though only the 2 oldest had to be: {got:?}"
        );
    }
}

/// A listener keeps at most `max_connections` streams open (and at most
/// `max_connections_per_uid` of one uid), as a Server does: one more client is
/// refused with a REJECT (ResourceExhausted) that says why, and closing an
/// accepted stream gives its seat to the next client. Before, a listener
/// kept every client that came.
#[test]
fn a_listener_keeps_at_most_max_connections_open_streams() {
    for (limit, why) in [
        (Options::new().max_connections(2), "the server is full (2 connections)"),
        (Options::new().max_connections_per_uid(Some(2)), "already has 2 connections"),
    ] {
        let name = unique("listener-seats");
        let kp = Keypair::generate();
        let key = *kp.public();
        let listener = std::sync::Arc::new(shmsock::Listener::bind(&name, &limit.keypair(kp)).unwrap());
        let (accepted, streams) = std::sync::mpsc::channel();
        let acceptor = {
            let listener = std::sync::Arc::clone(&listener);
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let stream = listener.accept_timeout(Some(WAIT)).expect("accepts");
                    if accepted.send(stream).is_err() {
                        return;
                    }
                }
            })
        };
        let first = Stream::connect(&name, &client_options(&key)).unwrap();
        let first_served = streams.recv_timeout(WAIT).unwrap();
        let second = Stream::connect(&name, &client_options(&key)).unwrap();
        let _second_served = streams.recv_timeout(WAIT).unwrap();
        let e = Stream::connect(&name, &client_options(&key)).expect_err("a third client");
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
        assert!(e.message().contains(why), "{e}");
        first_served.close().unwrap();
        // Lowered to one seat, the listener refuses though a seat is free...
        listener.set_max_connections(1, None).unwrap();
        let e = Stream::connect(&name, &client_options(&key)).expect_err("one seat, taken");
        assert!(e.message().contains("full (1 connections)"), "{e}");
        listener.set_max_connections(3, Some(3)).unwrap();
        assert_eq!(listener.set_max_connections(0, None).unwrap_err().kind(), ErrorKind::InvalidArgument);
        // ...and raised again, the freed seat is there.
        let third = Stream::connect(&name, &client_options(&key)).expect("a closed stream gave its seat back");
        let third_served = streams.recv_timeout(WAIT).unwrap();
        third.send(b"seated").unwrap();
        assert_eq!(third_served.recv_timeout(Some(WAIT)).unwrap(), b"seated");
        drop((first, second));
        acceptor.join().unwrap();
    }
}

/// With one place for handshakes past the HELLO, clients that connect one
/// after another are all served, by a Server and by a bare Listener: a client
/// that sent its READY holds no place, though the server may look at the
/// newcomer before at that READY. Before, the newcomer was refused (REJECT 7)
/// whenever it was looked at first.
#[test]
fn with_one_handshake_place_clients_connecting_one_after_another_are_all_served() {
    let one_place = Options::new().max_pending_handshakes(1, 1);
    let name = unique("one-place-server");
    let (_server, key) = start_with(&name, one_place.clone());
    for i in 0..30 {
        let s = Stream::connect(&name, &client_options(&key)).unwrap_or_else(|e| panic!("client {i}: {e}"));
        drop(s);
    }
    let name = unique("one-place-listener");
    let kp = Keypair::generate();
    let key = *kp.public();
    let listener = shmsock::Listener::bind(&name, &one_place.keypair(kp)).unwrap();
    let acceptor = std::thread::spawn(move || {
        (0..30).map(|_| listener.accept_timeout(Some(WAIT)).expect("accepts")).collect::<Vec<_>>()
    });
    let clients: Vec<Stream> = (0..30)
        .map(|i| Stream::connect(&name, &client_options(&key)).unwrap_or_else(|e| panic!("client {i}: {e}")))
        .collect();
    assert_eq!(acceptor.join().unwrap().len(), clients.len());
}

/// A client whose control socket hangs up without a CLOSE (as when its
/// process dies) is removed with PeerGone as the reason, and the bystander
/// is still served.
#[test]
fn a_peer_that_hangs_up_without_closing_is_removed() {
    struct Closes(std::sync::mpsc::Sender<Option<ErrorKind>>);
    impl ServerHandler for Closes {
        fn on_data(&self, c: &Connection, data: &[u8]) {
            let _ = c.send(data);
        }
        fn on_close(&self, _c: &Connection, reason: Option<&Error>) {
            let _ = self.0.send(reason.map(Error::kind));
        }
    }
    let name = unique("hang-up");
    let kp = Keypair::generate();
    let (tx, closes) = std::sync::mpsc::channel();
    let server = Server::start(&name, &Options::new().keypair(kp.clone()), Closes(tx)).expect("server starts");
    let key = *kp.public();
    let bystander = Stream::connect(&name, &client_options(&key)).expect("the bystander connects");
    let socket = handshake_by_hand(&name, &key);
    // Before the hang-up: the bystander is served and the connection made by
    // hand is adopted.
    bystander_is_served(&bystander);
    let deadline = std::time::Instant::now() + WAIT;
    while server.connections().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the server never adopted the connection made by hand");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(socket);
    let reason = closes.recv_timeout(WAIT).expect("the hung-up connection is closed");
    assert_eq!(reason, Some(ErrorKind::PeerGone));
    assert_eq!(server.connections().len(), 1, "only the hung-up connection is gone");
    bystander_is_served(&bystander);
    bystander.close().unwrap();
    server.close();
}
