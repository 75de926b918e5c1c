//! `Options::connect_wait`: a client started before its server connects once
//! the server binds (also over a dead server's socket file, and for a
//! subscriber); when the wait ends it fails with NotFound; errors other than
//! NotFound (a wrong server key) are returned at once, not retried.

mod common;

use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock::endpoint::EndpointPaths;
use shmsock::{ErrorKind, Keypair, Listener, Options, Publisher, Stream, Subscriber};

/// Long enough that no test depends on how fast the server comes up.
const LONG_WAIT: Duration = Duration::from_secs(60);

/// How long the server takes to appear: long enough for the client to have
/// tried (and waited) at least once, which is what the tests are about; no
/// assertion depends on it.
const LATE: Duration = Duration::from_millis(200);

fn client_options(server: &Keypair) -> Options {
    Options::new().server_key(*server.public()).connect_wait(LONG_WAIT)
}

/// Connects a client that waits, binds the server `LATE` after, and checks
/// one message each way.
fn connect_then_bind(name: &str) {
    let server = Keypair::generate();
    let options = client_options(&server);
    let client = {
        let name = name.to_string();
        std::thread::spawn(move || {
            let stream = Stream::connect(&name, &options)?;
            stream.send(b"ping")?;
            stream.recv_timeout(Some(LONG_WAIT))
        })
    };
    std::thread::sleep(LATE);
    let listener = Listener::bind(name, &Options::new().keypair(server)).unwrap();
    let accepted = listener.accept_timeout(Some(LONG_WAIT)).unwrap();
    assert_eq!(accepted.recv_timeout(Some(LONG_WAIT)).unwrap(), b"ping");
    accepted.send(b"pong").unwrap();
    assert_eq!(client.join().unwrap().unwrap(), b"pong");
}

#[test]
fn a_client_started_before_its_server_connects_when_it_binds() {
    common::init();
    connect_then_bind(&common::unique_name("wait-late"));
}

#[test]
fn a_client_waits_past_a_dead_servers_socket_file() {
    common::init();
    let name = common::unique_name("wait-stale");
    // A socket file nobody listens on (a crashed server's): connecting is refused.
    let paths = EndpointPaths::of(&name).unwrap();
    drop(UnixListener::bind(&paths.socket).unwrap());
    assert!(paths.socket.exists());
    connect_then_bind(&name);
}

#[test]
fn a_subscriber_waits_for_its_publisher() {
    common::init();
    let name = common::unique_name("wait-sub");
    let publisher_key = Keypair::generate();
    let options = client_options(&publisher_key);
    let subscriber = {
        let name = name.clone();
        std::thread::spawn(move || Subscriber::connect(&name, &options))
    };
    std::thread::sleep(LATE);
    let publisher = Publisher::bind(&name, &Options::new().keypair(publisher_key)).unwrap();
    let subscriber = subscriber.join().unwrap().unwrap();
    publisher.wait_for_subscribers(1, Some(LONG_WAIT)).unwrap();
    publisher.publish(b"tick").unwrap();
    assert_eq!(subscriber.recv_timeout(Some(LONG_WAIT)).unwrap().data, b"tick");
}

#[test]
fn when_the_wait_ends_the_connect_fails_with_not_found() {
    common::init();
    let name = common::unique_name("wait-none");
    let wait = Duration::from_millis(300);
    let options = Options::new().server_key(*Keypair::generate().public()).connect_wait(wait);
    let started = Instant::now();
    let err = Stream::connect(&name, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(started.elapsed() >= wait, "gave up after {:?}, before the wait of {wait:?}", started.elapsed());
    // Without a wait: NotFound at once (the default).
    let err = Stream::connect(&name, &Options::new().server_key(*Keypair::generate().public())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[test]
fn a_wrong_server_key_is_not_retried() {
    common::init();
    let name = common::unique_name("wait-wrong-key");
    let listener = Listener::bind(&name, &Options::new().keypair(Keypair::generate())).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let done = done.clone();
        // Serves handshakes (each one fails) until the client has its answer.
        std::thread::spawn(move || {
            let mut accepted = 0;
            while !done.load(Ordering::SeqCst) {
                if listener.accept_timeout(Some(Duration::from_millis(50))).is_ok() {
                    accepted += 1;
                }
            }
            accepted
        })
    };
    let started = Instant::now();
    let err = Stream::connect(&name, &client_options(&Keypair::generate())).unwrap_err();
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    assert_eq!(err.kind(), ErrorKind::ServerKeyMismatch, "{err}");
    // Retried, it would only end with the wait (60 s).
    assert!(elapsed < LONG_WAIT / 2, "a key mismatch was retried for {elapsed:?}");
    assert_eq!(server.join().unwrap(), 0);
}

#[test]
fn a_wait_longer_than_a_day_is_refused() {
    common::init();
    let options = Options::new()
        .server_key(*Keypair::generate().public())
        .connect_wait(shmsock::options::MAX_CONNECT_WAIT + Duration::from_secs(1));
    let err = Stream::connect(&common::unique_name("wait-long"), &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}
