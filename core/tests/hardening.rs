//! Attacks from issue 17, each reproduced: a peer truncating a named segment
//! (SIGBUS), a hostile server naming another application's shared memory, peers
//! in another pid namespace, key files and planted symbolic links, and a side at
//! its open-file limit. Each test fails if its fix is undone.
//!
//! Some parts run in a child process (this binary again, running `role_child`
//! with `SHMSOCK_TEST_ROLE` set): in a new pid namespace (`unshare`), or with a
//! lowered RLIMIT_NOFILE. A child asserts and exits; the parent checks its exit
//! status, bounded by [`common::WAIT`].

mod common;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{init, shm_exists, unique_name, ROLE_ENV, WAIT};
use shmsock::control::{self, Record};
use shmsock::handshake::{AllowedClients, ClientOffer, Initiator, Responder, ServerPolicy, SUPPORTED_VERSIONS};
use shmsock::platform::OwnWake;
use shmsock::segment::{self, Segment};
use shmsock::{Backend, CipherSuite, ErrorKind, Keypair, Listener, Options, PublicKey, Stream};

const RING: u32 = 4096;

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn open_shm(name: &str) -> OwnedFd {
    rustix::shm::open(name, rustix::shm::OFlags::RDWR, rustix::fs::Mode::empty()).expect("opening the object by name")
}

// ------------------------------------------------------------ children

/// The child side of the tests that need another process: does nothing
/// unless `SHMSOCK_TEST_ROLE` is set.
#[test]
fn role_child() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    init();
    let setting = |key: &str| std::env::var(format!("SHMSOCK_TEST_{key}")).expect(key);
    match role.as_str() {
        "ns_client" => {
            let server = PublicKey::from_text(&setting("SERVER_KEY")).unwrap();
            let stream = Stream::connect(&setting("NAME"), &Options::new().server_key(server)).expect("connect");
            assert_eq!(stream.peer_credentials().pid, 0, "the server is outside our pid namespace");
            assert_eq!(stream.peer_credentials().uid, euid());
            stream.send(b"ping").unwrap();
            assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"pong");
            stream.close().unwrap();
        }
        "ns_server" => {
            let keypair = Keypair::from_file_text(&setting("KEY"), "KEY").unwrap();
            let listener = Listener::bind(&setting("NAME"), &Options::new().keypair(keypair)).expect("bind");
            let stream = listener.accept_timeout(Some(WAIT)).expect("accept");
            assert_eq!(stream.peer_credentials().pid, 0, "the client is outside our pid namespace");
            assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"ping");
            stream.send(b"pong").unwrap();
            assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap_err().kind(), ErrorKind::PeerClosed);
        }
        "fd_limit_receive" => {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let one = OwnWake::new().unwrap();
            let two = OwnWake::new().unwrap();
            control::send(a.as_fd(), &control::encode(control::REPLY, b"x"), &[one.for_peer(), two.for_peer()])
                .unwrap();
            let free = lowest_free_fd();
            // Room for one of the two descriptors.
            set_fd_limit(free + 1);
            let mut fds = Vec::new();
            let err = control::receive(b.as_fd(), &mut fds, Some(Instant::now() + WAIT)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
            assert!(err.message().contains("RLIMIT_NOFILE"), "{err}");
            assert!(fds.is_empty());
            // The one that did arrive was closed.
            assert_eq!(lowest_free_fd(), free, "a received descriptor leaked");
            // What a server checks before its REPLY.
            shmsock::platform::ensure_descriptor_room(b.as_fd(), 1).unwrap();
            let full = shmsock::platform::ensure_descriptor_room(b.as_fd(), 2).unwrap_err();
            assert_eq!(full.kind(), ErrorKind::ResourceExhausted, "{full}");
            assert!(full.message().contains("RLIMIT_NOFILE"), "{full}");
        }
        "fd_limit_client" => {
            let server = PublicKey::from_text(&setting("SERVER_KEY")).unwrap();
            let options = Options::new().server_key(server).keypair(Keypair::generate());
            // Room for the control socket only: the REPLY's descriptors are lost.
            set_fd_limit(lowest_free_fd() + 1);
            match Stream::connect(&setting("NAME"), &options) {
                Ok(_) => panic!("a stream was handed out although its set-up failed"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
                    assert!(e.message().contains("RLIMIT_NOFILE"), "{e}");
                }
            }
        }
        "fd_limit_server" => {
            let keypair = Keypair::from_file_text(&setting("KEY"), "KEY").unwrap();
            let listener = Listener::bind(&setting("NAME"), &Options::new().keypair(keypair)).expect("bind");
            // Room for the accepted socket, the memfd and the own eventfd, not
            // for the client's eventfd in READY.
            set_fd_limit(lowest_free_fd() + 3);
            let pending = listener.accept_pending(Some(Instant::now() + WAIT)).expect("accept");
            match listener.handshake(pending) {
                Ok(_) => panic!("the server set up a connection beyond its fd limit"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
                    assert!(e.message().contains("RLIMIT_NOFILE"), "{e}");
                }
            }
        }
        "foreign_sigbus" => {
            // The handler is installed by mapping a named segment...
            let mut segment = Segment::create(Backend::Named, RING).unwrap();
            // Its name goes at once (the mapping, and so the handler, stay):
            // this process dies of SIGBUS below, before any drop could unlink it.
            segment.unlink();
            // ...but a SIGBUS outside every segment still gets the default
            // action: this process must die of it, not hang or carry on
            // (and leave no core file behind).
            let none = rustix::process::Rlimit { current: Some(0), maximum: Some(0) };
            rustix::process::setrlimit(rustix::process::Resource::Core, none).unwrap();
            let file = tempfile::tempfile().unwrap();
            file.set_len(4096).unwrap();
            // SAFETY: a fresh shared mapping of our own file, read once after
            // the file was truncated, which is the fault under test.
            unsafe {
                let ptr = rustix::mm::mmap(
                    std::ptr::null_mut(),
                    4096,
                    rustix::mm::ProtFlags::READ,
                    rustix::mm::MapFlags::SHARED,
                    &file,
                    0,
                )
                .unwrap();
                file.set_len(0).unwrap();
                std::ptr::read_volatile(ptr.cast::<u8>());
            }
            panic!("the SIGBUS outside any segment was swallowed");
        }
        other => panic!("unknown role {other}"),
    }
}

fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    let probe = std::fs::File::open("/dev/null").unwrap();
    probe.as_raw_fd() as u64
}

fn set_fd_limit(limit: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let maximum = getrlimit(Resource::Nofile).maximum;
    setrlimit(Resource::Nofile, Rlimit { current: Some(limit), maximum }).unwrap();
}

/// Runs `role_child` as `role` with `settings`, in a new pid namespace if
/// `new_pid_namespace`.
fn spawn_role(role: &str, settings: &[(&str, String)], new_pid_namespace: bool) -> std::process::Child {
    init();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if new_pid_namespace {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(["--exact", "role_child", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in settings {
        cmd.env(format!("SHMSOCK_TEST_{k}"), v);
    }
    cmd.spawn().expect("spawning a child")
}

/// Waits for a child, killing it (and failing) after [`WAIT`].
fn wait_bounded(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the child did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) for a child and asserts it succeeded.
fn expect_success(mut child: std::process::Child, what: &str) {
    let status = wait_bounded(&mut child, what);
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    assert!(status.success(), "{what}: the child failed ({status})\n{out}\n{err}");
}

// ------------------------------------------------------------ 1. named segments and SIGBUS

/// Both sides of a named segment survive its truncation by a third descriptor
/// (a same-user process that opened it before it was unlinked): every checked
/// access then fails with ProtocolViolation instead of a SIGBUS.
#[test]
fn a_truncated_named_segment_is_an_error_not_a_sigbus() {
    init();
    let server = Segment::create(Backend::Named, RING).unwrap();
    let name = server.name().to_string();
    assert!(segment::is_segment_name(&name), "{name}");
    let intruder = open_shm(&name);
    let client = Segment::open_named(&name, RING, euid()).unwrap();
    assert!(!shm_exists(&name), "the client unlinks the name once it checked the object");

    let at = segment::DATA_OFFSET;
    server.write_bytes(at, b"before").unwrap();
    let mut seen = [0u8; 6];
    client.copy_out(at, &mut seen).unwrap();
    assert_eq!(&seen, b"before");

    rustix::fs::ftruncate(&intruder, 0).unwrap();
    for (side, seg) in [("server", &server), ("client", &client)] {
        let write = seg.write_bytes(at, b"after").unwrap_err();
        assert_eq!(write.kind(), ErrorKind::ProtocolViolation, "{side}: {write}");
        assert!(write.message().contains("truncated"), "{side}: {write}");
        assert_eq!(seg.copy_out(0, &mut seen).unwrap_err().kind(), ErrorKind::ProtocolViolation, "{side}");
        // The counters read as zero rather than faulting.
        let _ =
            seg.atomic_u64(segment::ring_control_offset(0) + segment::TAIL).load(std::sync::atomic::Ordering::Acquire);
        assert_eq!(seg.check_intact().unwrap_err().kind(), ErrorKind::ProtocolViolation);
    }
    // A fresh segment after the fault is unaffected.
    let fresh = Segment::create(Backend::Named, RING).unwrap();
    fresh.write_bytes(at, b"fine").unwrap();
    fresh.check_intact().unwrap();
}

/// The reproduction: an authenticated client keeps a descriptor to the
/// named segment and truncates it after set-up. The server's stream fails
/// with ProtocolViolation, and the server's other connections carry on (before
/// the fix the server process died of SIGBUS).
#[test]
fn a_hostile_client_truncating_the_named_segment_cannot_crash_the_server() {
    init();
    let name = unique_name("truncate");
    let kp = Keypair::generate();
    let options = Options::new().keypair(kp.clone()).backend(Backend::Named).ring_size(RING);
    let listener = Listener::bind(&name, &options).unwrap();

    let hostile = std::thread::spawn({
        let name = name.clone();
        let server = *kp.public();
        move || {
            let control = shmsock::endpoint::connect(&name).unwrap();
            control.set_nonblocking(true).unwrap();
            let socket = control.as_fd();
            let offer = ClientOffer::local(false, 1 << 20, RING, Backend::Named.bit());
            let mut initiator = Initiator::new(&Keypair::generate(), &server, &name, offer).unwrap();
            control::send(socket, &control::encode(control::HELLO, &initiator.write_hello().unwrap()), &[]).unwrap();
            let mut fds = Vec::new();
            let Record::Reply(reply) = control::receive(socket, &mut fds, Some(Instant::now() + WAIT)).unwrap() else {
                panic!("expected a REPLY")
            };
            let session = initiator.read_reply(&reply).unwrap();
            // Keep a descriptor of our own to the object, then confirm.
            let kept = open_shm(&session.choice.segment_name);
            let wake = OwnWake::new().unwrap();
            control::send(socket, &control::encode(control::READY, &[]), &[wake.for_peer()]).unwrap();
            (control, kept, wake)
        }
    });
    let victim = listener.accept_timeout(Some(WAIT)).unwrap();
    let (_control, kept, _wake) = hostile.join().unwrap();
    rustix::fs::ftruncate(&kept, 0).unwrap();

    let err = victim.send(b"hello?").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProtocolViolation, "{err}");
    assert_eq!(victim.try_recv().unwrap_err().kind(), ErrorKind::ProtocolViolation);

    // The server is alive and serves an honest client on the same backend.
    let client = std::thread::spawn({
        let name = name.clone();
        let server = *kp.public();
        move || {
            let stream = Stream::connect(&name, &Options::new().server_key(server)).unwrap();
            stream.send(b"still here").unwrap();
            stream.recv_timeout(Some(WAIT)).unwrap()
        }
    });
    let honest = listener.accept_timeout(Some(WAIT)).unwrap();
    assert_eq!(honest.backend(), Backend::Named);
    let got = honest.recv_timeout(Some(WAIT)).unwrap();
    honest.send(&got).unwrap();
    assert_eq!(client.join().unwrap(), b"still here");
}

/// The handler passes on what it does not own: a SIGBUS on another mapping
/// still kills the process with SIGBUS.
#[test]
fn a_sigbus_outside_any_segment_keeps_its_default_action() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = spawn_role("foreign_sigbus", &[], false);
    let status = wait_bounded(&mut child, "a SIGBUS outside any segment");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status}");
}

// ------------------------------------------------------------ 2. hostile server names

/// A fake server that completes the Noise handshake and names `segment_name`
/// in its REPLY (named backend). Returns the client's connect result.
fn connect_to_server_naming(segment_name: &str) -> shmsock::Result<Stream> {
    let name = unique_name("namer");
    let kp = Keypair::generate();
    let bound = shmsock::endpoint::bind(&name).unwrap();
    bound.listener.set_nonblocking(false).unwrap();
    let server = std::thread::spawn({
        let segment_name = segment_name.to_string();
        let name = name.clone();
        let kp = kp.clone();
        move || {
            let (socket, _) = bound.listener.accept().unwrap();
            socket.set_nonblocking(true).unwrap();
            let fd = socket.as_fd();
            let mut fds = Vec::new();
            let deadline = Some(Instant::now() + WAIT);
            let Record::Hello(hello) = control::receive(fd, &mut fds, deadline).unwrap() else { panic!("HELLO") };
            let policy = ServerPolicy {
                versions: SUPPORTED_VERSIONS.to_vec(),
                ciphers: CipherSuite::local_offer(false),
                max_message: 1 << 20,
                ring_size: RING,
                allowed: AllowedClients::Any,
                backend: Backend::Named,
            };
            let mut responder = Responder::new(&kp, &name).unwrap();
            let accepted = responder.read_hello(&hello, &policy).unwrap();
            let mut choice = accepted.choice;
            choice.segment_name = segment_name;
            let (reply, _) = responder.write_reply(&choice).unwrap();
            let wake = OwnWake::new().unwrap();
            control::send(fd, &control::encode(control::REPLY, &reply), &[wake.for_peer()]).unwrap();
            // The client must refuse: it closes without READY.
            let end = control::receive(fd, &mut fds, deadline);
            assert_eq!(end.err().map(|e| e.kind()), Some(ErrorKind::PeerGone), "the client sent READY");
        }
    });
    let options = Options::new().server_key(*kp.public()).backend(Backend::Named);
    let result = Stream::connect(&name, &options);
    if result.is_err() {
        server.join().unwrap();
    }
    result
}

/// Creates a shared-memory object with the given name, mode, size and owner,
/// and with a segment header for `RING` if `header`.
fn plant_object(name: &str, mode: u32, size: u64, owner: u32, header: bool) {
    let fd = rustix::shm::open(
        name,
        rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    if header {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&segment::MAGIC);
        bytes.extend_from_slice(&segment::LAYOUT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&RING.to_le_bytes());
        bytes.extend_from_slice(&segment::segment_size(RING).to_le_bytes());
        rustix::io::pwrite(&fd, &bytes, 0).unwrap();
    }
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode)).unwrap();
    rustix::fs::fchown(&fd, Some(rustix::process::Uid::from_raw(owner)), None).unwrap();
}

fn hex_name(tag: u32) -> String {
    format!("/shmsock-{:012x}{tag:08x}", std::process::id())
}

/// A hostile (but authenticated) server names another application's object,
/// or a shmsock-like object that is not a proper segment of its own: the
/// client refuses it with ProtocolViolation and unlinks nothing.
#[test]
fn a_hostile_server_cannot_make_the_client_unlink_other_objects() {
    init();
    let size = segment::segment_size(RING);
    let other_app = format!("/otherapp-{}", std::process::id());
    let cases: Vec<(&str, String, u32, u64, u32, bool)> = vec![
        // Another application's object, even one shaped like a segment.
        ("another application's object", other_app, 0o600, size, euid(), true),
        ("mode 0644", hex_name(1), 0o644, size, euid(), true),
        ("another owner", hex_name(2), 0o600, size, 65534, true),
        ("wrong size", hex_name(3), 0o600, size * 2, euid(), true),
        ("no header", hex_name(4), 0o600, size, euid(), false),
    ];
    for (what, object, mode, len, owner, header) in cases {
        plant_object(&object, mode, len, owner, header);
        match connect_to_server_naming(&object) {
            Ok(_) => panic!("{what}: the client accepted {object}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{what}: {e}"),
        }
        assert!(shm_exists(&object), "{what}: the client unlinked {object}");
        rustix::shm::unlink(object.as_str()).unwrap();
    }
    // Not even looked up: a name outside the form is refused before any open.
    let traversal = connect_to_server_naming("/..").unwrap_err();
    assert_eq!(traversal.kind(), ErrorKind::ProtocolViolation);
}

// ------------------------------------------------------------ 3. pid namespaces

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A client in another pid namespace connects to a server outside it, and a
/// client outside connects to a server inside one. The side that cannot see
/// its peer's pid reports 0 (before the fix, reading the credentials failed
/// with "Success (os error 0)" and the connection was refused).
#[test]
fn peers_in_another_pid_namespace_connect_both_ways() {
    init();
    if !unshare_works() {
        eprintln!("SKIPPED: `unshare --pid --fork --mount-proc` is not available here (needs root or user namespaces)");
        return;
    }
    let kp = Keypair::generate();

    // Server here, client in a new namespace.
    let name = unique_name("pidns-c");
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let child = spawn_role("ns_client", &[("NAME", name.clone()), ("SERVER_KEY", kp.public().to_text())], true);
    let stream = listener.accept_timeout(Some(WAIT)).unwrap();
    assert_ne!(stream.peer_credentials().pid, 0, "the client's pid is visible from the parent namespace");
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"ping");
    stream.send(b"pong").unwrap();
    expect_success(child, "client in a new pid namespace");
    drop(listener);

    // Server in a new namespace, client here.
    let name = unique_name("pidns-s");
    let child = spawn_role("ns_server", &[("NAME", name.clone()), ("KEY", kp.to_file_text())], true);
    let options = Options::new().server_key(*kp.public());
    let deadline = Instant::now() + WAIT;
    let stream = loop {
        match Stream::connect(&name, &options) {
            Ok(stream) => break stream,
            Err(e) if e.kind() == ErrorKind::NotFound && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("connecting to the server in a new pid namespace: {e}"),
        }
    };
    assert_ne!(stream.peer_credentials().pid, 0);
    stream.send(b"ping").unwrap();
    assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap(), b"pong");
    stream.close().unwrap();
    expect_success(child, "server in a new pid namespace");
}

// ------------------------------------------------------------ 4. key files

/// A shared directory (mode 1777, like /tmp) where another user could plant links.
fn shared_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// `Keypair::save` never writes through a symbolic link (to an existing file or
/// a dangling one); `PublicKey::save` replaces a link instead of following it.
#[test]
fn key_files_are_never_written_through_a_planted_symlink() {
    let dir = shared_dir();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let kp = Keypair::generate();

    let key = dir.path().join("id.key");
    std::os::unix::fs::symlink(&victim, &key).unwrap();
    let err = kp.save(&key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.message().contains("symbolic link"), "{err}");

    let dangling = dir.path().join("other.key");
    let created = dir.path().join("created-by-the-link");
    std::os::unix::fs::symlink(&created, &dangling).unwrap();
    assert_eq!(kp.save(&dangling).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert!(!created.exists(), "a key was written through a dangling link");

    let public = dir.path().join("id.key.pub");
    std::os::unix::fs::symlink(&victim, &public).unwrap();
    kp.public().save(&public).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "the link's target was written");
    let meta = std::fs::symlink_metadata(&public).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced by the public key file");
    assert_eq!(std::fs::read_to_string(&public).unwrap(), format!("{}\n", kp.public()));
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

// ------------------------------------------------------------ 5. descriptor limit

/// At the fd limit, a record's descriptors are lost (MSG_CTRUNC): the receive
/// says so (ResourceExhausted, naming RLIMIT_NOFILE) and closes what arrived;
/// `ensure_descriptor_room` sees the limit coming.
#[test]
fn a_receive_at_the_fd_limit_is_resource_exhausted() {
    expect_success(spawn_role("fd_limit_receive", &[], false), "receive at the fd limit");
}

/// A client at its fd limit gets a clear error from connect, and no stream.
#[test]
fn a_client_at_its_fd_limit_gets_a_clear_error() {
    init();
    let name = unique_name("fdlim-c");
    let kp = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let child = spawn_role("fd_limit_client", &[("NAME", name.clone()), ("SERVER_KEY", kp.public().to_text())], false);
    // The server's handshake fails when the client hangs up.
    let pending = listener.accept_pending(Some(Instant::now() + WAIT)).unwrap();
    assert!(listener.handshake(pending).is_err());
    expect_success(child, "client at its fd limit");
}

/// A server at its fd limit reports ResourceExhausted (naming RLIMIT_NOFILE),
/// not a protocol violation; the client gets an error or a stream that reports
/// the server gone, never a hang.
#[test]
fn a_server_at_its_fd_limit_reports_it() {
    init();
    let name = unique_name("fdlim-s");
    let kp = Keypair::generate();
    let child = spawn_role("fd_limit_server", &[("NAME", name.clone()), ("KEY", kp.to_file_text())], false);
    let options = Options::new().server_key(*kp.public());
    let deadline = Instant::now() + WAIT;
    let result = loop {
        match Stream::connect(&name, &options) {
            Err(e) if e.kind() == ErrorKind::NotFound && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => break other,
        }
    };
    match result {
        Ok(stream) => {
            assert_eq!(stream.recv_timeout(Some(WAIT)).unwrap_err().kind(), ErrorKind::PeerGone)
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}"),
    }
    expect_success(child, "server at its fd limit");
}
