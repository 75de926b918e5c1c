//! `Connecting`, the client's handshake for event loops: driven by polling its
//! fd, it connects without ever waiting in a call; no server is NotFound at
//! once, or, with a connect wait, is waited for through the fd until the
//! server binds; a full queue is waited for the same way; a server that never
//! answers is Timeout at the deadline; a REJECT is the error it says.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use shmsock::{ConnectProgress, Connecting, ErrorKind, Keypair, Listener, Options, Stream};

const WAIT: Duration = Duration::from_secs(20);

fn unique(tag: &str) -> String {
    static DIR: OnceLock<()> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("shmsock-cg-").tempdir_in("/tmp").expect("temp dir").keep();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod 700");
        std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    });
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("cg-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Drives `connecting` as an event loop would: wait for its fd (or its
/// deadline), advance, until it is done. Checks that the fd stays the same
/// (a loop registers it once).
fn drive(mut connecting: Connecting) -> shmsock::Result<Stream> {
    let fd = connecting.fd().as_raw_fd();
    loop {
        connecting = match connecting.advance()? {
            ConnectProgress::Done(stream) => return Ok(stream),
            ConnectProgress::Waiting(connecting) => connecting,
        };
        assert_eq!(connecting.fd().as_raw_fd(), fd, "the fd of a connect changed");
        let until = connecting.deadline().min(Instant::now() + WAIT);
        shmsock::platform::wait_fd(connecting.fd(), PollFlags::IN, Some(until))?;
    }
}

/// Fills the queue of waiting connections of endpoint `name` with sockets
/// that never speak; returns them.
fn fill_queue(name: &str) -> Vec<std::os::unix::net::UnixStream> {
    let mut queued = Vec::new();
    let err = loop {
        match shmsock::endpoint::connect_now(name) {
            Ok(socket) => queued.push(socket),
            Err(e) => break e,
        }
        assert!(queued.len() < 1000, "the queue never filled");
    };
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    queued
}

#[test]
fn an_event_loop_connects_and_talks() {
    let name = unique("talks");
    let kp = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let server = std::thread::spawn(move || {
        let stream = listener.accept_timeout(Some(WAIT)).unwrap();
        let got = stream.recv_timeout(Some(WAIT)).unwrap();
        stream.send(&got).unwrap();
        stream
    });
    let connecting = Connecting::start(&name, &Options::new().server_key(*kp.public())).unwrap();
    let stream = drive(connecting).unwrap();
    stream.send(b"through the loop").unwrap();
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"through the loop");
    assert_eq!(stream.peer_public_key(), *kp.public());
    let _server = server.join().unwrap();
}

#[test]
fn no_server_is_not_found_at_once() {
    let name = unique("none");
    let options = Options::new().server_key(*Keypair::generate().public());
    let err = Connecting::start(&name, &options).err().expect("nothing listens");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// With a connect wait, a server that binds later is found through the fd
/// (the watch of the runtime directory, or the backoff), and the handshake
/// then runs through the same fd.
#[test]
fn with_a_wait_a_server_that_binds_later_is_found() {
    let name = unique("later");
    let kp = Keypair::generate();
    let options = Options::new().server_key(*kp.public()).connect_wait(WAIT);
    let connecting = Connecting::start(&name, &options).expect("waits for the server");
    assert!(connecting.deadline() > Instant::now() + WAIT / 2, "the wait's deadline");
    let server_name = name.clone();
    let server = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let listener = Listener::bind(&server_name, &Options::new().keypair(kp)).unwrap();
        let stream = listener.accept_timeout(Some(WAIT)).unwrap();
        stream.send(b"found you").unwrap();
        stream
    });
    let stream = drive(connecting).unwrap();
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"found you");
    let _server = server.join().unwrap();
}

/// A wait that ends before any server binds: NotFound, at the wait's end.
#[test]
fn a_wait_that_ends_without_a_server_is_not_found() {
    let name = unique("never");
    let wait = Duration::from_millis(150);
    let options = Options::new().server_key(*Keypair::generate().public()).connect_wait(wait);
    let connecting = Connecting::start(&name, &options).expect("waits for the server");
    assert!(connecting.deadline() <= Instant::now() + wait);
    let err = drive(connecting).expect_err("nothing binds");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[test]
fn a_missing_server_key_is_refused() {
    let err = Connecting::start(&unique("nokey"), &Options::new()).err().expect("no server key");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

/// A server whose queue of waiting connections is full: the connect tries
/// again through its fd (no call waits) and goes through once the server
/// takes the queued connections.
#[test]
fn a_full_queue_is_waited_for() {
    let name = unique("full");
    let kp = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let queued = fill_queue(&name);
    let connecting = Connecting::start(&name, &Options::new().server_key(*kp.public())).expect("waits for room");
    let server = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // Taking the silent ones out of the queue makes room.
        let stream = listener.accept_timeout(Some(WAIT)).unwrap();
        stream.send(b"room at last").unwrap();
        (listener, stream)
    });
    let stream = drive(connecting).unwrap();
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"room at last");
    let _server = server.join().unwrap();
    drop(queued);
}

/// A queue that stays full past the handshake timeout: Timeout, saying why.
#[test]
fn a_queue_that_stays_full_times_out() {
    let name = unique("busy");
    let kp = Keypair::generate();
    let _listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let _queued = fill_queue(&name);
    let options = Options::new().server_key(*kp.public()).handshake_timeout(Duration::from_millis(150));
    let connecting = Connecting::start(&name, &options).expect("waits for room");
    let err = drive(connecting).expect_err("the queue stays full");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("busy"), "{err}");
}

/// A server that takes the connection and never answers: Timeout once the
/// deadline passed (the event loop calls advance then).
#[test]
fn a_silent_server_times_out_at_the_deadline() {
    let name = unique("silent");
    let kp = Keypair::generate();
    let _listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let options = Options::new().server_key(*kp.public()).handshake_timeout(Duration::from_millis(200));
    let connecting = Connecting::start(&name, &options).unwrap();
    assert!(connecting.deadline() <= Instant::now() + Duration::from_millis(200));
    let err = drive(connecting).expect_err("nobody answers");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("did not answer the handshake"), "{err}");
}

/// A server that refuses the client: the REJECT's error.
#[test]
fn a_reject_is_the_error_it_says() {
    let name = unique("reject");
    let kp = Keypair::generate();
    let friend = Keypair::generate();
    let options = Options::new().keypair(kp.clone()).allow_clients([*friend.public()]);
    let listener = Listener::bind(&name, &options).unwrap();
    let server = std::thread::spawn(move || {
        let until = Instant::now() + WAIT;
        while listener.rejected_count() == 0 && Instant::now() < until {
            let _ = listener.accept_timeout(Some(Duration::from_millis(20)));
        }
        listener
    });
    let stranger = Options::new().server_key(*kp.public()).keypair(Keypair::generate());
    let err = drive(Connecting::start(&name, &stranger).unwrap()).expect_err("not on the allow-list");
    assert_eq!(err.kind(), ErrorKind::HandshakeRejected, "{err}");
    let listener = server.join().unwrap();
    assert_eq!(listener.rejected_count(), 1);
}
