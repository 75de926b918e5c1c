//! The event-driven pair: a Server with many Clients, callbacks, replies from
//! inside and outside callbacks, panicking callbacks, and closing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use shmsock::{Client, ClientHandler, Connection, Error, ErrorKind, Keypair, Options, Server, ServerHandler};

const WAIT: Duration = Duration::from_secs(10);

fn runtime_dir() {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
        std::env::set_var("SHMSOCK_RUNTIME_DIR", dir.path());
        dir
    });
}

fn unique(name: &str) -> String {
    runtime_dir();
    format!("sc-{name}-{}", std::process::id())
}

#[derive(Debug, PartialEq)]
enum Event {
    Connect(u64),
    Data(u64, Vec<u8>),
    Error(Option<u64>, ErrorKind),
    Close(u64, Option<ErrorKind>),
}

/// Echoes every message, reports every event, and panics on the message "panic".
struct Echo {
    events: Mutex<Sender<Event>>,
}

impl ServerHandler for Echo {
    fn on_connect(&self, c: &Connection) {
        let _ = self.events.lock().unwrap().send(Event::Connect(c.id()));
    }
    fn on_data(&self, c: &Connection, data: &[u8]) {
        if data == b"panic" {
            panic!("handler exploded");
        }
        let _ = self.events.lock().unwrap().send(Event::Data(c.id(), data.to_vec()));
        c.send(data).expect("echo from inside the callback");
    }
    fn on_error(&self, c: Option<&Connection>, e: &Error) {
        let _ = self.events.lock().unwrap().send(Event::Error(c.map(|c| c.id()), e.kind()));
    }
    fn on_close(&self, c: &Connection, reason: Option<&Error>) {
        let _ = self.events.lock().unwrap().send(Event::Close(c.id(), reason.map(|e| e.kind())));
    }
}

struct Collect {
    data: Mutex<Sender<Vec<u8>>>,
    closes: AtomicUsize,
}

impl ClientHandler for Collect {
    fn on_data(&self, data: &[u8]) {
        let _ = self.data.lock().unwrap().send(data.to_vec());
    }
    fn on_close(&self, _reason: Option<&Error>) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

fn start(name: &str) -> (Server, Receiver<Event>, Options) {
    let kp = Keypair::generate();
    let (tx, rx) = channel();
    let server =
        Server::start(name, &Options::new().keypair(kp.clone()).ring_size(1 << 16), Echo { events: Mutex::new(tx) })
            .expect("server starts");
    let client_opts = Options::new().server_key(*kp.public());
    (server, rx, client_opts)
}

fn next(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(WAIT).expect("an event within the timeout")
}

#[test]
fn many_clients_echo_through_callbacks() {
    let name = unique("many");
    let (server, events, opts) = start(&name);
    let mut clients = Vec::new();
    for i in 0..6u8 {
        let (tx, rx) = channel();
        let handler = Arc::new(AtomicUsize::new(0));
        let _ = handler;
        let client = Client::connect(&name, &opts, Collect { data: Mutex::new(tx), closes: AtomicUsize::new(0) })
            .expect("connects");
        clients.push((i, client, rx));
    }
    for (i, client, _) in &clients {
        for size in [0usize, 1, 100, 200_000] {
            client.write(&vec![*i; size]).unwrap();
        }
    }
    for (i, _, rx) in &clients {
        for size in [0usize, 1, 100, 200_000] {
            assert_eq!(rx.recv_timeout(WAIT).unwrap(), vec![*i; size]);
        }
    }
    let mut connects = 0;
    let mut data = 0;
    while connects < 6 || data < 24 {
        match next(&events) {
            Event::Connect(_) => connects += 1,
            Event::Data(..) => data += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(server.connections().len(), 6);
    for (_, client, _) in clients {
        client.close().unwrap();
    }
    let mut closes = 0;
    while closes < 6 {
        if let Event::Close(_, reason) = next(&events) {
            assert_eq!(reason, None);
            closes += 1;
        }
    }
    server.close();
}

#[test]
fn reply_from_outside_a_callback_and_server_close() {
    let name = unique("outside");
    let (server, events, opts) = start(&name);
    let (tx, rx) = channel();
    let client = Client::connect(&name, &opts, Collect { data: Mutex::new(tx), closes: AtomicUsize::new(0) }).unwrap();
    let Event::Connect(id) = next(&events) else { panic!("expected a connect") };
    let connection = server.connections().into_iter().find(|c| c.id() == id).unwrap();
    assert_eq!(connection.peer_public_key(), client.stream().local_public_key());
    connection.send(b"pushed by the server").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"pushed by the server");
    server.close();
    // The client's reader sees the clean close.
    for _ in 0..100 {
        if client.stream().is_closed() || client.write(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(client.write(b"after").is_err());
}

#[test]
fn a_panicking_callback_is_reported_and_the_server_goes_on() {
    let name = unique("panic");
    let (server, events, opts) = start(&name);
    let (tx, rx) = channel();
    let client = Client::connect(&name, &opts, Collect { data: Mutex::new(tx), closes: AtomicUsize::new(0) }).unwrap();
    assert!(matches!(next(&events), Event::Connect(_)));
    client.write(b"panic").unwrap();
    match next(&events) {
        Event::Error(Some(_), kind) => assert_eq!(kind, ErrorKind::Io),
        other => panic!("expected on_error, got {other:?}"),
    }
    client.write(b"still alive").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"still alive");
    server.close();
}

#[test]
fn a_refused_client_is_an_error_without_a_connection() {
    let name = unique("refused");
    let kp = Keypair::generate();
    let (tx, events) = channel();
    let opts = Options::new().keypair(kp.clone()).allow_clients([*Keypair::generate().public()]);
    let server = Server::start(&name, &opts, Echo { events: Mutex::new(tx) }).unwrap();
    let (dtx, _drx) = channel();
    let err = Client::connect(
        &name,
        &Options::new().server_key(*kp.public()),
        Collect { data: Mutex::new(dtx), closes: AtomicUsize::new(0) },
    )
    .err()
    .expect("refused");
    assert_eq!(err.kind(), ErrorKind::HandshakeRejected);
    assert_eq!(next(&events), Event::Error(None, ErrorKind::HandshakeRejected));
    server.close();
}

#[test]
fn closing_a_listener_frees_the_name_and_wakes_accept() {
    let name = unique("relisten");
    let opts = Options::new().keypair(Keypair::generate());
    let listener = Arc::new(shmsock::Listener::bind(&name, &opts).unwrap());
    let waiting = Arc::clone(&listener);
    let acceptor = std::thread::spawn(move || waiting.accept_timeout(Some(WAIT)).map(|_| ()));
    std::thread::sleep(Duration::from_millis(50));
    listener.close();
    let err = acceptor.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    // The name is free at once, even though the first listener still exists.
    let again = shmsock::Listener::bind(&name, &opts).expect("rebind after close");
    drop(again);
    drop(listener);
}

#[test]
fn a_closed_server_frees_its_name_at_once() {
    let name = unique("restart");
    for _ in 0..3 {
        let (server, _events, _opts) = start(&name);
        server.close();
    }
}

fn readable_within(fd: std::os::fd::RawFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

#[test]
fn try_send_arms_the_pollable_fd_for_space() {
    use std::os::fd::AsRawFd;
    let name = unique("trysend");
    let kp = Keypair::generate();
    let listener = shmsock::Listener::bind(&name, &Options::new().keypair(kp.clone()).ring_size(4096)).unwrap();
    let acceptor = std::thread::spawn(move || listener.accept_timeout(Some(WAIT)).unwrap());
    let client = shmsock::Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap();
    let server = acceptor.join().unwrap();
    let message = [7u8; 500];
    let mut sent = 0;
    loop {
        match client.try_send(&message) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
                break;
            }
        }
    }
    assert!(sent > 0);
    assert!(!readable_within(client.as_raw_fd(), 0), "nothing pending yet");
    assert_eq!(server.recv_timeout(Some(WAIT)).unwrap(), message);
    assert!(readable_within(client.as_raw_fd(), 10_000), "freed space must wake the sender's fd");
    client.try_send(&message).expect("room again");
}

/// Replies to a client that does not read queue up to `max_queued_bytes`, then
/// fail with WouldBlock without blocking the callback; once the client reads,
/// everything queued arrives in order. Several dispatch threads serve at once.
#[test]
fn a_full_outbound_queue_is_would_block_and_drains_in_order() {
    struct Flood {
        results: Mutex<Sender<Result<(), ErrorKind>>>,
    }
    impl ServerHandler for Flood {
        fn on_data(&self, c: &Connection, data: &[u8]) {
            // Each request asks for 100 replies of 1000 bytes, numbered.
            for i in 0..100u32 {
                let mut reply = vec![data[0]; 1000];
                reply[..4].copy_from_slice(&i.to_le_bytes());
                let r = c.send(&reply).map_err(|e| e.kind());
                let _ = self.results.lock().unwrap().send(r);
            }
        }
    }
    let name = unique("queue");
    let kp = Keypair::generate();
    let (tx, rx) = channel();
    let options = Options::new().keypair(kp.clone()).ring_size(4096).max_queued_bytes(20_000).dispatch_threads(2);
    let server = Server::start(&name, &options, Flood { results: Mutex::new(tx) }).unwrap();
    let client_options = Options::new().server_key(*kp.public()).recv_timeout(Some(WAIT));
    let client = shmsock::Stream::connect(&name, &client_options).unwrap();
    client.send(&[5]).unwrap();
    let results: Vec<Result<(), ErrorKind>> = (0..100).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    let accepted = results.iter().take_while(|r| r.is_ok()).count();
    assert!(accepted < 100, "a 4 KiB ring and a 20 kB queue cannot hold 100 kB");
    assert!(results[accepted..].iter().all(|r| *r == Err(ErrorKind::WouldBlock)), "{results:?}");
    for i in 0..accepted as u32 {
        let reply = client.recv().expect("every accepted reply arrives");
        assert_eq!(reply[..4], i.to_le_bytes(), "in order");
    }
    // A second client on the other dispatch thread is served as well.
    let other = shmsock::Stream::connect(&name, &client_options).unwrap();
    other.send(&[6]).unwrap();
    assert_eq!(other.recv().unwrap()[4], 6);
    client.close().unwrap();
    other.close().unwrap();
    server.close();
}
