//! Misbehaving peers for the child roles: a server that never answers, a
//! client that stops half way through its hello, a server that hands out bad
//! segments, a client with bad wake-up descriptors, and a connect loop.

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use shmsock::{Backend, CipherSuite, ErrorKind, Keypair, PublicKey, Stream};

use super::*;

/// A fake server: claims the endpoint (lock and socket, like a real one),
/// accepts connections and never answers. `quit` ends it.
pub(super) fn run_silent_server(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let bound = shmsock::endpoint::bind(&name).expect("binding the endpoint");
    bound.listener.set_nonblocking(false).unwrap();
    emit("BOUND");
    let listener = bound.listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut n = 0;
        while let Ok((socket, _)) = listener.accept() {
            n += 1;
            emit(format!("ACCEPTED_RAW {n}"));
            held.push(socket);
        }
    });
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    drop(bound);
    emit("QUIT");
}

/// A fake client: connects to the endpoint's socket, sends part of a HELLO
/// (`MODE=half`: a header promising 100 bytes, then 50; `MODE=garbage`: a whole
/// HELLO of random bytes; `MODE=nothing`: no bytes), reports `STALLED`, and
/// waits for `quit`.
pub(super) fn run_half_hello(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let mode = setting("MODE").unwrap_or_else(|| "half".into());
    let path = init().join(format!("{name}.sock"));
    let mut socket = std::os::unix::net::UnixStream::connect(&path).expect("connecting to the control socket");
    let mut junk = [0u8; 200];
    shmsock::sodium::random_bytes(&mut junk);
    match mode.as_str() {
        "half" => {
            socket.write_all(&[shmsock::control::HELLO, 0, 100, 0]).unwrap();
            socket.write_all(&junk[..50]).unwrap();
        }
        "garbage" => {
            socket.write_all(&shmsock::control::encode(shmsock::control::HELLO, &junk)).unwrap();
        }
        "nothing" => {}
        other => panic!("unknown MODE {other}"),
    }
    emit("STALLED");
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    drop(socket);
    emit("QUIT");
}

/// A hostile server: runs a correct handshake but hands the client a memfd it
/// should refuse (`MODE=unsealed`: no seals; `MODE=short`: sealed but smaller
/// than agreed; `MODE=badheader`: sealed, right size, no segment header; each
/// with a real eventfd as its wake-up descriptor), or a good segment with a
/// wake-up descriptor it should refuse (see [`bad_wake_fds`]: `MODE=wake-pipe`,
/// `wake-file`, `wake-none`, `wake-two`), and reports what became of the client.
/// `quit` ends it.
pub(super) fn run_evil_segment_server(commands: Receiver<String>) {
    use shmsock::control::{self, Record};
    use shmsock::handshake::{AllowedClients, Responder, ServerPolicy, SUPPORTED_VERSIONS};
    let name = setting("NAME").expect("NAME");
    let mode = setting("MODE").expect("MODE");
    let keypair = Keypair::from_file_text(&setting("KEY").unwrap(), "KEY").unwrap();
    let bound = shmsock::endpoint::bind(&name).expect("binding the endpoint");
    bound.listener.set_nonblocking(false).unwrap();
    emit("BOUND");
    let (socket, _) = bound.listener.accept().unwrap();
    let fd = std::os::fd::AsFd::as_fd(&socket);
    let mut fds = Vec::new();
    let Record::Hello(hello) = control::receive(fd, &mut fds, None).unwrap() else { panic!("expected HELLO") };
    let policy = ServerPolicy {
        versions: SUPPORTED_VERSIONS.to_vec(),
        ciphers: CipherSuite::local_offer(false),
        max_message: 1 << 20,
        ring_size: 4096,
        allowed: AllowedClients::Any,
        backend: Backend::Memfd,
    };
    let mut responder = Responder::new(&keypair, &name).unwrap();
    let accepted = responder.read_hello(&hello, &policy).unwrap();
    let size = shmsock::segment::segment_size(accepted.choice.ring_size);
    let memfd = rustix::fs::memfd_create(
        "shmsock-evil",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    let seals = rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SEAL;
    let good = shmsock::segment::Segment::create(Backend::Memfd, accepted.choice.ring_size).unwrap();
    let mut wake = bad_wake_fds("wake-eventfd");
    let memfd = match mode.as_str() {
        "unsealed" => {
            rustix::fs::ftruncate(&memfd, size).unwrap();
            memfd
        }
        "short" => {
            rustix::fs::ftruncate(&memfd, size / 2).unwrap();
            rustix::fs::fcntl_add_seals(&memfd, seals).unwrap();
            memfd
        }
        "badheader" => {
            rustix::fs::ftruncate(&memfd, size).unwrap();
            rustix::fs::fcntl_add_seals(&memfd, seals).unwrap();
            memfd
        }
        wake_mode if wake_mode.starts_with("wake-") => {
            wake = bad_wake_fds(wake_mode);
            good.memfd().unwrap().try_clone_to_owned().unwrap()
        }
        other => panic!("unknown MODE {other}"),
    };
    let (reply, _session) = responder.write_reply(&accepted.choice).unwrap();
    let mut passed = vec![std::os::fd::AsFd::as_fd(&memfd)];
    passed.extend(wake.iter().map(std::os::fd::AsFd::as_fd));
    send_with_any_fds(fd, &control::encode(control::REPLY, &reply), &passed);
    // The client must not send READY: it refuses the segment and hangs up.
    match control::receive(fd, &mut fds, Some(Instant::now() + WAIT)) {
        Ok(r) => emit(format!("CLIENT_SAID {r:?}")),
        Err(e) => emit(format!("CLIENT_ENDED {:?}", e.kind())),
    }
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    drop(bound);
    emit("QUIT");
}

/// Sends a whole control record with any number of descriptors (up to 8)
/// attached, as a hostile peer may (the library refuses to send more than a
/// record carries).
pub fn send_with_any_fds(socket: std::os::fd::BorrowedFd<'_>, record: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let sent = sendmsg(socket, &[std::io::IoSlice::new(record)], &mut control, SendFlags::NOSIGNAL).unwrap();
    assert_eq!(sent, record.len(), "a short send of a control record");
}

/// Wake-up descriptors a hostile peer may pass instead of one eventfd, by mode:
/// `wake-eventfd` (the correct one), `wake-full` (an eventfd, blocking, with its
/// counter at the limit, so that a blocking write would hang), `wake-pipe` (a pipe's write end),
/// `wake-file` (a regular file), `wake-epoll` (another anonymous-inode file,
/// an epoll set), `wake-none`, `wake-two` (two eventfds).
pub fn bad_wake_fds(mode: &str) -> Vec<std::os::fd::OwnedFd> {
    let eventfd = || rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    match mode {
        "wake-eventfd" => vec![eventfd()],
        "wake-full" => {
            // A blocking eventfd whose counter is at its limit: a write of 1
            // would block (or, non-blocking, fail with EAGAIN).
            let fd = eventfd();
            rustix::io::write(&fd, &(u64::MAX - 1).to_ne_bytes()).unwrap();
            vec![fd]
        }
        "wake-pipe" => vec![rustix::pipe::pipe().unwrap().1],
        "wake-file" => vec![tempfile::tempfile().unwrap().into()],
        "wake-epoll" => vec![rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap()],
        "wake-none" => vec![],
        "wake-two" => vec![eventfd(), eventfd()],
        other => panic!("unknown wake MODE {other}"),
    }
}

/// A hostile client: runs a correct handshake (backend `BACKEND`, memfd unless
/// `named`), maps nothing, and sends READY with the wake-up descriptors of
/// `MODE` (see [`bad_wake_fds`]). Reports `SEGMENT <name>` for a named segment,
/// then what the server did: `SERVER_ENDED <kind>` or `SERVER_SAID <record>`.
/// `quit` ends it.
pub(super) fn run_evil_ready_client(commands: Receiver<String>) {
    use shmsock::control::{self, Record};
    use shmsock::handshake::{ClientOffer, Initiator};
    let name = setting("NAME").expect("NAME");
    let mode = setting("MODE").expect("MODE");
    let server = PublicKey::from_text(&setting("KEY").expect("KEY")).unwrap();
    let path = init().join(format!("{name}.sock"));
    let socket = std::os::unix::net::UnixStream::connect(&path).expect("connecting to the control socket");
    let fd = std::os::fd::AsFd::as_fd(&socket);
    let offer = ClientOffer::local(false, 1 << 20, 0, Backend::Memfd.bit() | Backend::Named.bit());
    let mut initiator = Initiator::new(&Keypair::generate(), &server, &name, offer).unwrap();
    control::send(fd, &control::encode(control::HELLO, &initiator.write_hello().unwrap()), &[]).unwrap();
    let mut fds = Vec::new();
    let Record::Reply(reply) = control::receive(fd, &mut fds, Some(Instant::now() + WAIT)).unwrap() else {
        panic!("expected REPLY")
    };
    let session = initiator.read_reply(&reply).unwrap();
    if !session.choice.segment_name.is_empty() {
        emit(format!("SEGMENT {}", session.choice.segment_name));
    }
    emit(format!("REPLY_FDS {}", fds.len()));
    let wake = bad_wake_fds(&mode);
    let passed: Vec<_> = wake.iter().map(std::os::fd::AsFd::as_fd).collect();
    send_with_any_fds(fd, &control::encode(control::READY, &[]), &passed);
    match control::receive(fd, &mut fds, Some(Instant::now() + WAIT)) {
        Ok(r) => emit(format!("SERVER_SAID {r:?}")),
        Err(e) => emit(format!("SERVER_ENDED {:?}", e.kind())),
    }
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    emit("QUIT");
}

/// Connects up to `COUNT` times in a row (each: connect, one round trip,
/// close), stopping early after 3 NotFound in a row (the server is gone), and
/// reports each outcome as `TRY <i> <Ok|kind>`, then `DONE`.
pub(super) fn run_connect_loop() {
    let name = setting("NAME").expect("NAME");
    let options = options_from_settings(false);
    let count: u64 = setting_num("COUNT").unwrap_or(50);
    let mut not_found = 0;
    for i in 0..count {
        if not_found == 3 {
            break;
        }
        let outcome = Stream::connect(&name, &options).and_then(|s| {
            let m = message(i, 3000);
            s.send(&m)?;
            let back = s.recv_timeout(Some(WAIT))?;
            assert!(back == m, "the echo of attempt {i} differs");
            s.close()
        });
        match &outcome {
            Ok(()) => emit(format!("TRY {i} Ok")),
            Err(e) => emit(format!("TRY {i} {:?}", e.kind())),
        }
        not_found = match outcome {
            Err(e) if e.kind() == ErrorKind::NotFound => not_found + 1,
            _ => 0,
        };
    }
    emit("DONE");
}
