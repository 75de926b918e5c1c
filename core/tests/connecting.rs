//! `Connecting`, the client's handshake for event loops: driven by polling its
//! fd, it connects without ever waiting in a call; no server is NotFound and a
//! full queue WouldBlock at once; a server that never answers is Timeout at
//! the deadline; a REJECT is the error it says.

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
/// deadline), advance, until it is done.
fn drive(mut connecting: Connecting) -> shmsock::Result<Stream> {
    loop {
        connecting = match connecting.advance()? {
            ConnectProgress::Done(stream) => return Ok(stream),
            ConnectProgress::Waiting(connecting) => connecting,
        };
        let until = connecting.deadline().min(Instant::now() + WAIT);
        shmsock::platform::wait_fd(connecting.fd(), PollFlags::IN, Some(until))?;
    }
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
    let options = Options::new().server_key(*Keypair::generate().public()).connect_wait(WAIT);
    let err = Connecting::start(&name, &options).err().expect("nothing listens");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[test]
fn a_missing_server_key_is_refused() {
    let err = Connecting::start(&unique("nokey"), &Options::new()).err().expect("no server key");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

/// A server whose queue of waiting connections is full: WouldBlock, not a wait.
#[test]
fn a_full_queue_would_block() {
    let name = unique("full");
    let kp = Keypair::generate();
    let _listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let mut queued = Vec::new();
    let err = loop {
        match shmsock::endpoint::connect_now(&name) {
            Ok(socket) => queued.push(socket),
            Err(e) => break e,
        }
        assert!(queued.len() < 1000, "the queue never filled");
    };
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    let err = Connecting::start(&name, &Options::new().server_key(*kp.public())).err().expect("queue full");
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
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
