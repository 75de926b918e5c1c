//! A listener shared by two processes through `fork()`, the pre-fork server
//! model (bind, fork workers, each accepts): each process serves its own
//! clients on its own memory. What the parent prepared ahead for its next
//! handshake (a spare segment, a spare responder) is inherited by the child;
//! used by both, it put two connections on one shared segment.
//!
//! A process's `accept` may take several waiting clients (it runs their
//! handshakes at once) and serves the others on its next calls; so that each
//! process gets one client here, they take turns: the child accepts the first
//! client, then the parent the second, and both connections stay open together.
//!
//! A child's copies of what its parent opened (streams, a listener, a topic
//! and its subscriber, a server and a client) do nothing: their calls fail
//! with Closed, and dropping them when the child ends leaves the parent's
//! connections, endpoints and threads as they were.
//!
//! `fork()` copies only the calling thread, so the tests here take turns (no
//! other test's thread may be inside shmsock when one forks).

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use shmsock::{
    Client, ClientHandler, Connection, ErrorKind, Keypair, Listener, Options, Publisher, Server, ServerHandler, Stream,
    Subscriber,
};

const WAIT: Duration = Duration::from_secs(20);

/// Held by each test for its whole run.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn runtime_dir() -> std::path::PathBuf {
    let dir = tempfile::Builder::new().prefix("shmsock-fork-").tempdir_in("/tmp").expect("temp dir").keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    dir
}

/// Messages each client sends once both connections are open.
const ROUNDS: usize = 200;

/// Accepts one client and echoes its messages back behind `who`, until the
/// client hangs up.
fn serve_one(listener: &Listener, who: &str) -> shmsock::Result<()> {
    let stream = listener.accept_timeout(Some(WAIT))?;
    loop {
        let message = match stream.recv_timeout(Some(WAIT)) {
            Err(e) if e.kind() == shmsock::ErrorKind::PeerClosed => return Ok(()),
            other => other?,
        };
        let mut reply = format!("{who}:").into_bytes();
        reply.extend_from_slice(&message);
        stream.send(&reply)?;
    }
}

/// A client: connects, sends `message` and returns the reply, once `done`
/// says both connections are open, after [`ROUNDS`] more round trips.
fn client(name: &str, options: &Options, message: &str, answered: Sender<()>, done: Receiver<()>) -> String {
    let stream = Stream::connect(name, options).unwrap();
    stream.send(message.as_bytes()).unwrap();
    let reply = String::from_utf8(stream.recv_timeout(Some(WAIT)).unwrap()).unwrap();
    answered.send(()).unwrap();
    done.recv_timeout(WAIT).unwrap();
    let who = reply.split(':').next().unwrap_or_default();
    for round in 0..ROUNDS {
        let message = format!("{message} {round}");
        stream.send(message.as_bytes()).unwrap();
        let reply = stream.recv_timeout(Some(WAIT)).unwrap();
        assert_eq!(String::from_utf8_lossy(&reply), format!("{who}:{message}"));
    }
    stream.close().unwrap();
    reply
}

#[test]
fn a_listener_shared_by_fork_serves_each_client_on_its_own_memory() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = runtime_dir();
    let name = format!("fork-{}", std::process::id());
    let server = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(server.clone())).unwrap();
    let options = Options::new().server_key(*server.public()).connect_wait(WAIT);

    // One connection first, so that the listener has prepared its next
    // handshake's segment and responder (this process's, before the fork).
    let (answered, _warm_up_answered) = channel();
    let (finish, done) = channel();
    finish.send(()).unwrap();
    let warm_up = std::thread::spawn({
        let (name, options) = (name.clone(), options.clone());
        move || client(&name, &options, "warm-up", answered, done)
    });
    serve_one(&listener, "parent").unwrap();
    assert_eq!(warm_up.join().unwrap(), "parent:warm-up");

    // SAFETY: no other thread of this process runs shmsock code now (the
    // warm-up client was joined, and this file has one test); the child only
    // serves, then leaves with _exit, never returning into the test harness.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_one(&listener, "child")));
        let code = match served {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                eprintln!("child: {e}");
                1
            }
            Err(_) => 2,
        };
        // SAFETY: ends the child at once, without running the parent's
        // destructors (the listener's endpoint is the parent's to remove).
        unsafe { libc::_exit(code) };
    }

    // The first client is the child's (only the child accepts until it is
    // answered), the second the parent's (the child accepts no more); once
    // both have their reply, both talk at once.
    let (finish_first, first_done) = channel();
    let (finish_second, second_done) = channel();
    let (answered, first_answered) = channel();
    let first = std::thread::spawn({
        let (name, options) = (name.clone(), options.clone());
        move || client(&name, &options, "first", answered, first_done)
    });
    first_answered.recv_timeout(WAIT).expect("the child did not answer the first client");
    let (answered, second_answered) = channel();
    let second = std::thread::spawn({
        let (name, options) = (name.clone(), options.clone());
        move || client(&name, &options, "second", answered, second_done)
    });
    let served = std::thread::scope(|scope| {
        let serving = scope.spawn(|| serve_one(&listener, "parent"));
        let _ = second_answered.recv_timeout(WAIT);
        let _ = (finish_first.send(()), finish_second.send(()));
        serving.join()
    });
    let replies = (first.join(), second.join());
    let status = reap(child);
    served.unwrap().unwrap();
    assert_eq!(replies.0.unwrap(), "child:first");
    assert_eq!(replies.1.unwrap(), "parent:second");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: {status:#x}");
    drop(listener);
    let _ = std::fs::remove_dir_all(dir);
}

/// The wait status of child `pid`, killed if it has not ended within [`WAIT`].
fn reap(pid: libc::pid_t) -> i32 {
    let deadline = std::time::Instant::now() + WAIT;
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, with a valid pointer to `status`.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(done >= 0, "waitpid failed");
        if done == pid {
            return status;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: signals our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Echoes every message.
struct Echo;
impl ServerHandler for Echo {
    fn on_data(&self, connection: &Connection, data: &[u8]) {
        let _ = connection.send(data);
    }
}

/// Passes what a client receives to the test.
struct Inbox(std::sync::Mutex<Sender<Vec<u8>>>);
impl ClientHandler for Inbox {
    fn on_data(&self, data: &[u8]) {
        let _ = self.0.lock().unwrap().send(data.to_vec());
    }
}

#[test]
fn what_a_child_of_fork_inherits_does_nothing_to_its_parent() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = runtime_dir();
    let tag = std::process::id();
    let keypair = Keypair::generate();
    let server_options = Options::new().keypair(keypair.clone());
    let client_options = Options::new().server_key(*keypair.public()).connect_wait(WAIT).recv_timeout(Some(WAIT));
    // A listener and a connection through it.
    let listener = Listener::bind(&format!("fork-listener-{tag}"), &server_options).unwrap();
    let client = std::thread::scope(|scope| {
        let connecting = scope.spawn(|| Stream::connect(&format!("fork-listener-{tag}"), &client_options).unwrap());
        let accepted = listener.accept_timeout(Some(WAIT)).unwrap();
        (connecting.join().unwrap(), accepted)
    });
    let (client, accepted) = client;
    // A topic and a subscriber.
    let topic = format!("fork-topic-{tag}");
    let publisher = Publisher::bind(&topic, &server_options).unwrap();
    let subscriber = Subscriber::connect(&topic, &client_options).unwrap();
    // A server and a client with their threads.
    let served = format!("fork-server-{tag}");
    let server = Server::start(&served, &server_options, Echo).unwrap();
    let (inbox, echoes) = channel();
    let server_client = Client::connect(&served, &client_options, Inbox(std::sync::Mutex::new(inbox))).unwrap();
    server_client.write(b"before").unwrap();
    assert_eq!(echoes.recv_timeout(WAIT).unwrap(), b"before");

    // SAFETY: this test holds the turn, so no other thread of this process is
    // inside shmsock now (the threads of the server, client and topic wait in
    // the kernel); the child leaves with _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let refused = |what: &str, e: shmsock::Error| {
                assert_eq!(e.kind(), ErrorKind::Closed, "{what}: {e}");
                assert!(e.message().contains("fork()"), "{what}: {e}");
            };
            refused("send", client.send(b"from the child").unwrap_err());
            refused("recv", accepted.try_recv().unwrap_err());
            refused("publish", publisher.publish(b"from the child").unwrap_err());
            refused("subscriber", subscriber.try_recv().unwrap_err());
            refused("client", server_client.write(b"from the child").unwrap_err());
            // Closed and dropped here, as when a child returns or exits.
            client.close().unwrap();
            listener.close();
            server.close();
            drop((client, accepted, listener, publisher, subscriber, server, server_client));
        }));
        // SAFETY: ends the child at once, without returning into the harness.
        unsafe { libc::_exit(if checked.is_ok() { 0 } else { 1 }) };
    }
    let status = reap(child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: {status:#x}");

    // Everything of the parent's still works.
    client.send(b"after").unwrap();
    assert_eq!(accepted.recv_timeout(Some(WAIT)).unwrap(), b"after");
    accepted.send(b"back").unwrap();
    assert_eq!(client.recv_timeout(Some(WAIT)).unwrap(), b"back");
    let newcomer = std::thread::scope(|scope| {
        let connecting = scope.spawn(|| Stream::connect(&format!("fork-listener-{tag}"), &client_options));
        let accepted = listener.accept_timeout(Some(WAIT));
        (connecting.join().unwrap(), accepted)
    });
    assert!(newcomer.0.is_ok() && newcomer.1.is_ok(), "the listener's endpoint is gone: {newcomer:?}");
    publisher.publish(b"news").unwrap();
    assert_eq!(subscriber.recv().unwrap().data, b"news");
    server_client.write(b"after").unwrap();
    assert_eq!(echoes.recv_timeout(WAIT).unwrap(), b"after");
    server_client.close().unwrap();
    server.close();
    drop((client, accepted, listener, publisher, subscriber));
    let _ = std::fs::remove_dir_all(dir);
}
