//! A listener shared by two processes through `fork()`, the pre-fork server
//! model (bind, fork workers, each accepts): each process serves its own
//! clients on its own memory. What the parent prepared ahead for its next
//! handshake (a spare segment, a spare responder) is inherited by the child;
//! used by both, it would put two connections on one shared segment.
//!
//! One test in this file: `fork()` copies only the calling thread, so no other
//! test may be running shmsock calls at that moment.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use shmsock::{Keypair, Listener, Options, Stream};

const WAIT: Duration = Duration::from_secs(20);
/// Clients at once: one served by each process, at the same time.
const CLIENTS: usize = 2;

fn runtime_dir() -> std::path::PathBuf {
    let dir = tempfile::Builder::new().prefix("shmsock-fork-").tempdir_in("/tmp").expect("temp dir").keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    dir
}

/// Serves `count` clients one after another, each for one message echoed
/// back behind `who`, until the client hangs up.
fn serve(listener: &Listener, who: &str, count: usize) -> shmsock::Result<()> {
    for _ in 0..count {
        let stream = listener.accept_timeout(Some(WAIT))?;
        let message = stream.recv_timeout(Some(WAIT))?;
        let mut reply = format!("{who}:").into_bytes();
        reply.extend_from_slice(&message);
        stream.send(&reply)?;
        // The client hangs up once it has its reply; a message in between
        // would be another connection's, written into this one's memory.
        match stream.recv_timeout(Some(WAIT)) {
            Err(e) if e.kind() == shmsock::ErrorKind::PeerClosed => {}
            Err(e) => return Err(e),
            Ok(other) => panic!("{who} got a second message {:?}", String::from_utf8_lossy(&other)),
        }
    }
    Ok(())
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
    let warm_up = std::thread::spawn({
        let (name, options) = (name.clone(), options.clone());
        move || {
            let stream = Stream::connect(&name, &options).unwrap();
            stream.send(b"warm-up").unwrap();
            assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"parent:warm-up");
        }
    });
    serve(&listener, "parent", 1).unwrap();
    warm_up.join().unwrap();

    // SAFETY: no other thread of this process runs shmsock code now (the
    // warm-up client was joined, and this file has one test); the child only
    // serves, then leaves with _exit, never returning into the test harness.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(&listener, "child", CLIENTS / 2)));
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

    // The clients connect at once, and each keeps its connection until both
    // have their reply, so that the two connections are open together.
    let both_answered = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (name, options, both_answered) = (name.clone(), options.clone(), both_answered.clone());
            std::thread::spawn(move || {
                let stream = Stream::connect(&name, &options).unwrap();
                let message = format!("client {i}");
                stream.send(message.as_bytes()).unwrap();
                let reply = String::from_utf8(stream.recv_timeout(Some(WAIT)).unwrap()).unwrap();
                let (who, echoed) = reply.split_once(':').unwrap();
                assert_eq!(echoed, message, "a reply meant for another client");
                both_answered.wait();
                stream.close().unwrap();
                who.to_owned()
            })
        })
        .collect();
    serve(&listener, "parent", CLIENTS / 2).unwrap();
    let answered_by: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let mut status = 0;
    // SAFETY: waits for our own child, with a valid pointer to `status`.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: {status:#x}");
    assert_eq!(answered_by.iter().filter(|w| *w == "child").count(), CLIENTS / 2, "{answered_by:?}");
    drop(listener);
    let _ = std::fs::remove_dir_all(dir);
}
