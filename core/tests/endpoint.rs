//! Endpoint files (PROTOCOL.md, "Endpoints"): a socket file at an endpoint's
//! path always listens, binding cleans up after a dead server, and a name too
//! long for a socket path is InvalidName.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use shmsock::endpoint::{self, EndpointPaths};
use shmsock::ErrorKind;

/// One non-blocking connection attempt to `path`: Ok, or the errno.
fn try_connect(path: &std::path::Path) -> Result<(), Errno> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    rustix::net::connect(&fd, &addr)
}

#[test]
fn a_socket_file_at_the_endpoint_path_always_listens() {
    common::init();
    let name = common::unique_name("bind-window");
    let paths = EndpointPaths::of(&name).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let connector = {
        let stop = stop.clone();
        let socket = paths.socket.clone();
        std::thread::spawn(move || {
            let (mut refused, mut attempts) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                attempts += 1;
                // ENOENT: no server; Ok or EAGAIN (backlog full): a listening
                // server. ECONNREFUSED would be a socket file nobody listens on.
                // A connect that found the file just before a closing server
                // unlinked it is refused too (the server is going away, which
                // is right): at once after, that path is gone or served again,
                // so only a refusal that a second try repeats counts.
                if try_connect(&socket) == Err(Errno::CONNREFUSED) && try_connect(&socket) == Err(Errno::CONNREFUSED) {
                    refused += 1;
                }
            }
            (refused, attempts)
        })
    };
    for _ in 0..300 {
        let bound = endpoint::bind(&name).unwrap();
        drop(bound);
    }
    stop.store(true, Ordering::Relaxed);
    let (refused, attempts) = connector.join().unwrap();
    assert_eq!(refused, 0, "{refused} of {attempts} connects found a socket file that was not listening");
}

#[test]
fn bind_replaces_a_dead_servers_files_and_leaves_no_temporary() {
    common::init();
    let name = common::unique_name("bind-stale");
    let paths = EndpointPaths::of(&name).unwrap();
    // A dead server's socket (bound, never listening, its owner gone) and a
    // temporary left by a crash between bind and rename.
    drop(std::os::unix::net::UnixListener::bind(&paths.socket).unwrap());
    std::fs::write(&paths.temporary, b"left over").unwrap();
    assert_eq!(try_connect(&paths.socket), Err(Errno::CONNREFUSED));
    assert_eq!(endpoint::connect(&name).unwrap_err().kind(), ErrorKind::NotFound);

    let bound = endpoint::bind(&name).unwrap();
    assert!(!paths.temporary.exists(), "the temporary name was left behind");
    assert_eq!(try_connect(&paths.socket), Ok(()));
    drop(bound);
    assert!(!paths.socket.exists() && !paths.lock.exists());
    assert_eq!(endpoint::connect(&name).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_name_too_long_for_a_socket_path_is_invalid_name() {
    let dir = common::init();
    // The runtime directory, a slash, the name and ".sock" must fit in 107 bytes.
    let fits = 107 - dir.as_os_str().len() - 1 - ".sock".len();
    let name = "n".repeat(fits);
    assert!(EndpointPaths::of(&name).is_ok());
    let name = "n".repeat(fits + 1);
    let err = EndpointPaths::of(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidName, "{err}");
    assert!(matches!(endpoint::bind(&name), Err(e) if e.kind() == ErrorKind::InvalidName));
    assert_eq!(endpoint::connect(&name).unwrap_err().kind(), ErrorKind::InvalidName);
}

/// A client that gives no keypair presents one key per process (DESIGN.md:
/// "generated per process when the user gives none"), on every connection.
#[test]
fn a_client_without_a_keypair_uses_one_key_per_process() {
    common::init();
    let name = common::unique_name("defkey");
    let server_key = shmsock::Keypair::generate();
    let listener = shmsock::Listener::bind(&name, &shmsock::Options::new().keypair(server_key.clone())).unwrap();
    let client_options = shmsock::Options::new().server_key(*server_key.public());
    let acceptor = std::thread::spawn(move || {
        (0..2)
            .map(|_| listener.accept_timeout(Some(std::time::Duration::from_secs(20))).unwrap().peer_public_key())
            .collect::<Vec<_>>()
    });
    let first = shmsock::Stream::connect(&name, &client_options).unwrap();
    let second = shmsock::Stream::connect(&name, &client_options).unwrap();
    let seen = acceptor.join().unwrap();
    assert_eq!(first.local_public_key(), second.local_public_key());
    assert_eq!(first.local_public_key(), *shmsock::Keypair::process_default().public());
    assert_eq!(seen, vec![first.local_public_key(), second.local_public_key()]);
}

/// A server that accepts nothing: once its backlog is full, connecting waits
/// until the caller's deadline and fails with Timeout (a stream's connect
/// within its handshake timeout), instead of queueing behind everyone else;
/// an accept makes room again.
#[test]
fn a_full_backlog_makes_connect_time_out_at_its_deadline() {
    common::init();
    let name = common::unique_name("backlog");
    let bound = endpoint::bind(&name).unwrap();
    let soon = || Some(std::time::Instant::now() + std::time::Duration::from_millis(20));
    let mut queued = Vec::new();
    let refused = loop {
        assert!(queued.len() <= endpoint::LISTEN_BACKLOG as usize + 2, "the backlog never filled");
        match endpoint::connect_until(&name, soon()) {
            Ok(socket) => queued.push(socket),
            Err(e) => break e,
        }
    };
    assert_eq!(refused.kind(), ErrorKind::Timeout, "{refused}");
    assert!(refused.message().contains("busy"), "{refused}");
    assert!(queued.len() >= endpoint::LISTEN_BACKLOG as usize, "only {} queued", queued.len());

    let options = shmsock::Options::new()
        .server_key(*shmsock::Keypair::generate().public())
        .handshake_timeout(std::time::Duration::from_millis(50));
    let e = shmsock::Stream::connect(&name, &options).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");

    let (_taken, _) = bound.listener.accept().unwrap();
    endpoint::connect_until(&name, soon()).unwrap();
}
