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
//! One test in this file: `fork()` copies only the calling thread, so no other
//! test may be running shmsock calls at that moment.

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use shmsock::{Keypair, Listener, Options, Stream};

const WAIT: Duration = Duration::from_secs(20);

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
    let mut status = 0;
    // SAFETY: waits for our own child, with a valid pointer to `status`.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    served.unwrap().unwrap();
    assert_eq!(replies.0.unwrap(), "child:first");
    assert_eq!(replies.1.unwrap(), "parent:second");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: {status:#x}");
    drop(listener);
    let _ = std::fs::remove_dir_all(dir);
}
