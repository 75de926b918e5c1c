//! Multi-process tests of the transport: echo across real processes on both
//! segment backends and both ciphers, many clients, concurrent senders,
//! timeouts and non-blocking calls, handshake refusals, endpoint names and
//! binding, message limits and clean close. See `common/mod.rs` for the child
//! process machinery.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmsock::{CipherSuite, ErrorKind, Keypair, Listener, Options, Stream};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Chacha {
    Nobody,
    Server,
    Client,
}

/// A child server and child clients echo messages of 0 B, 1 B, 64 B, 64 KiB and
/// several times the ring size (rings of 64 KiB, the server's choice, and of
/// 4 KiB, asked for by a client), compared byte for byte on both sides
/// (the server reports what it received, the client what came back).
fn echo_case(backend: &str, chacha: Chacha) {
    init();
    let name = unique_name("echo");
    let kp = Keypair::generate();
    let mut watch = ShmWatch::start(&[4096, 65536]);
    // The server allows rings up to 64 KiB; one client asks for 4 KiB.
    let mut server_extra = vec![("BACKEND", backend.to_string()), ("RING", "65536".into()), ("AUTO", "echo".into())];
    if chacha == Chacha::Server {
        server_extra.push(("CHACHA", "1".into()));
    }
    let mut server = spawn_server("server", &name, &kp, &server_extra);
    let want_cipher = format!("{:?}", expected_cipher(chacha != Chacha::Nobody));
    let want_backend = if backend == "memfd" { "Memfd" } else { "Named" };

    for (conn, ring) in [(0usize, 4096usize), (1, 65536)] {
        let mut client_extra = vec![];
        if ring != 65536 {
            client_extra.push(("RING", ring.to_string()));
        }
        if chacha == Chacha::Client {
            client_extra.push(("CHACHA", "1".into()));
        }
        let (mut client, info) = spawn_client("client", &name, &kp.public().clone(), &client_extra);
        assert_eq!(info[0], want_cipher, "client's Stream::cipher()");
        assert_eq!(info[1], want_backend, "client's Stream::backend()");
        assert_eq!(info[2], ring.to_string(), "client's ring size");
        let accepted = server.expect(&format!("{conn} ACCEPTED"));
        assert_eq!(accepted[0], want_cipher, "server's Stream::cipher()");
        assert_eq!(accepted[1], want_backend, "server's Stream::backend()");
        assert_eq!(accepted[2], ring.to_string(), "server's ring size");
        if backend == "named" {
            // The name is gone as soon as the client has mapped the segment.
            let names = client.segment_names();
            assert_eq!(names.len(), 1, "the client maps one named segment: {names:?}");
            assert!(!shm_exists(&names[0]), "{} still has a name after the client mapped it", names[0]);
        } else {
            assert!(client.segment_names().is_empty(), "the memfd backend makes no named object");
        }

        let sizes = [0usize, 1, 64, 65536, 5 * ring + 123, 300_001];
        let mut bytes = 0;
        for (i, &len) in sizes.iter().enumerate() {
            let tag = next_tag() + i as u64;
            let want = digest(&message(tag, len));
            client.cmd(&format!("0 send {len} {tag}"));
            assert_eq!(client.result(0), Ok(len.to_string()), "sending {len} bytes");
            assert_eq!(client.recv(0, WAIT), Ok(want.clone()), "echo of {len} bytes (ring {ring}, {backend})");
            assert_eq!(server.expect(&format!("{conn} ECHO")).join(" "), want, "what the server received");
            bytes += len as u64;
        }
        client.cmd("0 stats");
        let n = sizes.len();
        assert_eq!(client.expect("0 STATS").join(" "), format!("{n} {bytes} {n} {bytes}"));
        client.quit();
        assert_eq!(server.expect_end(conn), ("PeerClosed".to_string(), sizes.len() as u64));
        watch.collect(&mut client);
    }
    server.quit();
    watch.collect(&mut server);
    if backend == "named" {
        assert_eq!(watch.seen(), 2, "two connections, two named segments");
    }
    assert_no_endpoint_files(&name);
    watch.assert_clean();
}

#[test]
fn echo_memfd_default_cipher() {
    echo_case("memfd", Chacha::Nobody);
}

#[test]
fn echo_memfd_server_requires_chacha() {
    echo_case("memfd", Chacha::Server);
}

#[test]
fn echo_memfd_client_requires_chacha() {
    echo_case("memfd", Chacha::Client);
}

#[test]
fn echo_named_default_cipher() {
    echo_case("named", Chacha::Nobody);
}

#[test]
fn echo_named_server_requires_chacha() {
    echo_case("named", Chacha::Server);
}

#[test]
fn echo_named_client_requires_chacha() {
    echo_case("named", Chacha::Client);
}

/// Eight client processes at once on one listener, each connection served by
/// its own thread of the server process.
#[test]
fn many_clients_on_one_listener() {
    init();
    let name = unique_name("many");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into()), ("AUTO", "echo quiet".into())]);
    let mut clients: Vec<Child> =
        (0..8).map(|i| Child::spawn(&format!("client{i}"), "client", &client_settings(&name, kp.public()))).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.expect("0 CONNECTED");
        c.cmd(&format!("0 roundtrip 24 {} 0,1,64,5000,20000,70000", 1000 * i));
    }
    for c in clients.iter_mut() {
        assert_eq!(c.result(0), Ok("24".into()), "{}", c.label);
    }
    let mut ids: Vec<String> = (0..8)
        .map(|_| server.take("ACCEPTED", |e| e.contains(" ACCEPTED ")).split(' ').next().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..8).map(|i| i.to_string()).collect::<Vec<_>>());
    for c in clients.iter_mut() {
        c.quit();
    }
    for conn in 0..8 {
        assert_eq!(server.expect_end(conn), ("PeerClosed".into(), 24));
    }
    server.quit();
    assert_no_endpoint_files(&name);
}

/// Two threads send on one stream at once, messages several times the 4 KiB
/// ring (so their fragments would interleave if sending did not hold the
/// stream per message), while a third thread receives the echoes; and the
/// same from the server's side. Every message arrives intact and in each
/// sender's order.
#[test]
fn two_threads_send_on_one_stream() {
    init();
    let name = unique_name("senders");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into())]);

    // Client -> server (echoed back).
    let (mut a, _) = spawn_client("clientA", &name, kp.public(), &[]);
    server.expect("0 ACCEPTED");
    server.cmd("0 bg echo quiet");
    a.cmd("0 bg recv_check 160");
    a.cmd("0 burst 2 80");
    assert_eq!(a.expect("0 BURST_DONE"), vec!["160"]);
    assert_eq!(a.expect_conn(0, &["CHECKED", "BAD", "ERR"]), ("CHECKED".into(), vec!["160".into()]));

    // Server -> client.
    let (mut b, _) = spawn_client("clientB", &name, kp.public(), &[]);
    server.expect("1 ACCEPTED");
    b.cmd("0 bg recv_check 160");
    server.cmd("1 burst 2 80");
    assert_eq!(server.expect("1 BURST_DONE"), vec!["160"]);
    assert_eq!(b.expect_conn(0, &["CHECKED", "BAD", "ERR"]), ("CHECKED".into(), vec!["160".into()]));

    a.quit();
    assert_eq!(server.expect_end(0), ("PeerClosed".into(), 160));
    b.quit();
    server.quit();
    assert_no_endpoint_files(&name);
}

fn assert_kind<T>(r: shmsock::Result<T>, kind: ErrorKind, what: &str) -> shmsock::Error {
    match r {
        Ok(_) => panic!("{what}: expected {kind:?}, got Ok"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{what}: {e}");
            e
        }
    }
}

/// Timeouts, WouldBlock and BufferTooSmall, with this process as the client of
/// a child server that reads only when told to.
#[test]
fn timeouts_would_block_and_small_buffers() {
    init();
    let name = unique_name("timeouts");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into())]);

    // accept_timeout with nobody connecting.
    let lonely = Listener::bind(&unique_name("lonely"), &Options::new().keypair(Keypair::generate())).unwrap();
    let t = Instant::now();
    assert_kind(lonely.accept_timeout(Some(ms(300))), ErrorKind::Timeout, "accept_timeout");
    assert!(t.elapsed() >= ms(300), "accept_timeout returned early: {:?}", t.elapsed());
    let lonely_name = lonely.name().to_string();
    drop(lonely);
    assert_no_endpoint_files(&lonely_name);

    let s = Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap();
    server.expect("0 ACCEPTED");

    // Nothing sent: recv times out, try_recv would block.
    let t = Instant::now();
    assert_kind(s.recv_timeout(Some(ms(300))), ErrorKind::Timeout, "recv_timeout");
    assert!(t.elapsed() >= ms(300), "recv_timeout returned early: {:?}", t.elapsed());
    assert_kind(s.try_recv(), ErrorKind::WouldBlock, "try_recv on an empty ring");
    assert_kind(s.try_recv_into(&mut [0u8; 16]), ErrorKind::WouldBlock, "try_recv_into on an empty ring");

    // The server does not read: fill the ring with try_send until WouldBlock.
    let tag = next_tag();
    let mut sent = 0u64;
    loop {
        match s.try_send(&message(tag + sent, 100)) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::WouldBlock, "try_send on a full ring: {e}");
                break;
            }
        }
        assert!(sent < 1000, "a 4 KiB ring never filled");
    }
    assert!(sent >= 10, "only {sent} messages of 100 B fit in 4 KiB");
    assert_kind(s.try_send(&message(1, 900)), ErrorKind::WouldBlock, "try_send of one fragment on a full ring");
    assert_kind(s.try_send(&message(1, 20000)), ErrorKind::WouldBlock, "try_send of a large message on a full ring");
    let t = Instant::now();
    assert_kind(s.send_timeout(&message(2, 100), Some(ms(300))), ErrorKind::Timeout, "send_timeout on a full ring");
    assert!(t.elapsed() >= ms(300), "send_timeout returned early: {:?}", t.elapsed());
    assert_kind(s.send_timeout(&message(3, 900), Some(ms(200))), ErrorKind::Timeout, "send_timeout of one fragment");
    // A multi-fragment message whose first fragment does not fit: nothing sent.
    assert_kind(
        s.send_timeout(&message(4, 20000), Some(ms(200))),
        ErrorKind::Timeout,
        "send_timeout of a large message",
    );
    assert_eq!(s.stats().messages_sent, sent, "timed-out sends are not counted");

    // The server now reads: exactly the messages that were sent, whole, and no
    // trace of the ones that timed out.
    server.cmd("0 drain 500");
    for i in 0..sent {
        assert_eq!(server.result(0), Ok(digest(&message(tag + i, 100))), "message {i} after the timeouts");
    }
    assert_eq!(server.expect_end(0), ("Timeout".into(), sent));

    // The stream still works both ways.
    s.send(&message(5, 900)).unwrap();
    assert_eq!(server.recv(0, WAIT), Ok(digest(&message(5, 900))));
    server.cmd("0 bg recv 30000");
    s.send(&message(6, 20000)).unwrap();
    assert_eq!(server.result(0), Ok(digest(&message(6, 20000))));

    // recv_into with a small buffer: BufferTooSmall with the size needed; the
    // message is kept for a later call with a big buffer.
    for (len, tag) in [(1000usize, 7u64), (20000, 8)] {
        server.cmd(&format!("0 send {len} {tag}"));
        let mut small = [0u8; 10];
        let e = assert_kind(s.recv_into_timeout(&mut small, Some(WAIT)), ErrorKind::BufferTooSmall, "recv_into");
        assert_eq!(e.needed(), Some(len));
        let e = assert_kind(s.try_recv_into(&mut small), ErrorKind::BufferTooSmall, "try_recv_into");
        assert_eq!(e.needed(), Some(len));
        let mut big = vec![0u8; 40000];
        let n = s.recv_into_timeout(&mut big, Some(WAIT)).unwrap();
        assert_eq!(n, len);
        assert!(big[..n] == message(tag, len)[..], "recv_into delivered other bytes");
        assert_eq!(server.result(0), Ok(len.to_string()));
    }
    // A zero-length message fits an empty buffer. A timeout too long for an
    // Instant means "wait forever", never a panic.
    server.cmd("0 send 0 9");
    assert_eq!(server.result(0), Ok("0".into()));
    assert_eq!(s.recv_into_timeout(&mut [], Some(Duration::MAX)).unwrap(), 0);
    s.send_timeout(&message(11, 64), Some(Duration::MAX)).unwrap();
    assert_eq!(server.recv(0, WAIT), Ok(digest(&message(11, 64))));

    // The pollable fd: after WouldBlock it becomes readable when a message comes.
    assert_kind(s.try_recv(), ErrorKind::WouldBlock, "try_recv");
    server.cmd("0 send 64 10");
    let mut fds = [rustix::event::PollFd::new(&s, rustix::event::PollFlags::IN)];
    let timeout = rustix::time::Timespec { tv_sec: WAIT.as_secs() as i64, tv_nsec: 0 };
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
    assert_eq!(ready, 1, "the pollable fd did not become readable");
    let mut got = None;
    let deadline = Instant::now() + WAIT;
    while got.is_none() && Instant::now() < deadline {
        match s.try_recv() {
            Ok(m) => got = Some(m),
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        }
    }
    assert_eq!(got.unwrap(), message(10, 64));
    assert_eq!(server.result(0), Ok("64".into()));

    drop(s);
    assert_eq!(server.recv(0, WAIT), Err("PeerClosed".into()));
    server.quit();
    assert_no_endpoint_files(&name);
}

/// Handshake refusals: a wrong pinned key, a key off the allow-list, a uid not
/// allowed; the server keeps serving good clients afterwards.
#[test]
fn handshake_refusals() {
    init();
    let name = unique_name("refuse");
    let kp = Keypair::generate();
    let allowed = Keypair::generate();
    let stranger = Keypair::generate();
    let mut server =
        spawn_server("server", &name, &kp, &[("ALLOW", allowed.public().to_text()), ("AUTO", "echo quiet".into())]);

    let wrong = Keypair::generate();
    let e = assert_kind(
        Stream::connect(&name, &Options::new().server_key(*wrong.public()).keypair(allowed.clone())),
        ErrorKind::ServerKeyMismatch,
        "pinning another server key",
    );
    assert!(e.message().contains(&name), "the error names the endpoint: {e}");
    assert_eq!(server.expect("REJECTED 1"), vec!["ServerKeyMismatch"]);

    assert_kind(
        Stream::connect(&name, &Options::new().server_key(*kp.public()).keypair(stranger.clone())),
        ErrorKind::HandshakeRejected,
        "a client key off the allow-list",
    );
    assert_eq!(server.expect("REJECTED 2"), vec!["HandshakeRejected"]);
    // A client with no key of its own gets a fresh one, which is not allowed either.
    assert_kind(
        Stream::connect(&name, &Options::new().server_key(*kp.public())),
        ErrorKind::HandshakeRejected,
        "an ephemeral client key",
    );

    // The allowed key gets through and the server still works.
    let (mut good, _) = spawn_client("allowed", &name, kp.public(), &[("CLIENT_KEY", allowed.to_file_text())]);
    good.cmd("0 roundtrip 3 1 10,5000,100000");
    assert_eq!(good.result(0), Ok("3".into()));
    good.quit();
    server.quit();
    assert_no_endpoint_files(&name);

    // uids: a server that allows only another uid refuses us; one that allows ours accepts.
    let uid = rustix::process::geteuid().as_raw();
    let name2 = unique_name("uids");
    let mut strict = spawn_server("strict", &name2, &kp, &[("ALLOW_UIDS", format!("{},{}", uid + 1, uid + 7))]);
    let e = assert_kind(
        Stream::connect(&name2, &Options::new().server_key(*kp.public())),
        ErrorKind::HandshakeRejected,
        "uid not allowed",
    );
    assert!(e.message().contains("user id") || e.message().contains("uid"), "the error says why: {e}");
    strict.expect("REJECTED 1");
    strict.quit();
    assert_no_endpoint_files(&name2);

    let name3 = unique_name("uids-ok");
    let mut lenient =
        spawn_server("lenient", &name3, &kp, &[("ALLOW_UIDS", format!("{},{uid}", uid + 1)), ("AUTO", "echo".into())]);
    let s = Stream::connect(&name3, &Options::new().server_key(*kp.public())).unwrap();
    s.send(b"hello").unwrap();
    assert_eq!(s.recv_timeout(Some(WAIT)).unwrap(), b"hello");
    drop(s);
    lenient.quit();
    assert_no_endpoint_files(&name3);
}

/// Endpoint names and binding: NotFound, InvalidName, AddressInUse, and the
/// reclaiming of a socket left by a SIGKILLed server.
#[test]
fn names_binding_and_reclaim() {
    init();
    let kp = Keypair::generate();
    let client_opts = Options::new().server_key(*kp.public());
    let server_opts = Options::new().keypair(kp.clone());

    let nobody = unique_name("nobody");
    let t = Instant::now();
    assert_kind(Stream::connect(&nobody, &client_opts), ErrorKind::NotFound, "connect to an unserved name");
    assert!(t.elapsed() < Duration::from_secs(2), "NotFound took {:?}", t.elapsed());
    assert_no_endpoint_files(&nobody);

    let long = "x".repeat(200);
    let just_too_long = "y".repeat(101);
    for bad in
        ["", "a/b", "..", ".", "a b", "naïve", "tab\there", "nul\0", "/abs", long.as_str(), just_too_long.as_str()]
    {
        assert_kind(Listener::bind(bad, &server_opts), ErrorKind::InvalidName, &format!("bind {bad:?}"));
        assert_kind(Stream::connect(bad, &client_opts), ErrorKind::InvalidName, &format!("connect {bad:?}"));
    }

    // A live server holds its name against this process and other processes.
    let name = unique_name("inuse");
    let mut server = spawn_server("server", &name, &kp, &[("AUTO", "echo".into())]);
    assert_kind(Listener::bind(&name, &server_opts), ErrorKind::AddressInUse, "bind of a live name");
    let mut second = Child::spawn("second", "server", &server_settings(&name, &kp));
    assert_eq!(second.expect("BIND_ERR"), vec!["AddressInUse"]);
    second.quit();
    // The failed binds did not disturb the live server.
    let s = Stream::connect(&name, &client_opts).unwrap();
    s.send(b"still here").unwrap();
    assert_eq!(s.recv_timeout(Some(WAIT)).unwrap(), b"still here");

    // SIGKILL: the socket file stays, nobody answers on it, and the next bind
    // reclaims it.
    server.kill();
    assert_kind(s.recv_timeout(Some(WAIT)), ErrorKind::PeerGone, "recv after the server was killed");
    drop(s);
    assert!(endpoint_socket_exists(&name), "a SIGKILLed server cannot remove its socket file");
    assert_kind(Stream::connect(&name, &client_opts), ErrorKind::NotFound, "connect to a dead server's socket");
    let listener = Listener::bind(&name, &server_opts).expect("reclaiming the dead server's name");
    let (mut client, _) = {
        // The handshake needs this side to accept while the child connects.
        let accept = std::thread::scope(|scope| {
            let h = scope.spawn(|| listener.accept_timeout(Some(WAIT)));
            let c = spawn_client("client", &name, kp.public(), &[]);
            (c, h.join().unwrap())
        });
        let (c, stream) = accept;
        let stream = stream.expect("accepting on the reclaimed name");
        std::thread::spawn(move || {
            while let Ok(m) = stream.recv() {
                if stream.send(&m).is_err() {
                    break;
                }
            }
        });
        c
    };
    client.cmd("0 roundtrip 4 7 1,900,5000,70000");
    assert_eq!(client.result(0), Ok("4".into()));
    client.quit();
    drop(listener);
    assert_no_endpoint_files(&name);
}

/// MessageTooLarge over the peer's max_message_size, in both directions; the
/// stream keeps working.
#[test]
fn message_too_large() {
    init();
    let name = unique_name("toolarge");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("MAXMSG", "1000".into()), ("RING", "4096".into())]);
    let s = Stream::connect(&name, &Options::new().server_key(*kp.public()).max_message_size(2000)).unwrap();
    server.expect("0 ACCEPTED");
    assert_eq!(s.peer_max_message_size(), 1000);

    assert_kind(s.send(&message(1, 1001)), ErrorKind::MessageTooLarge, "send over the server's limit");
    assert_kind(s.try_send(&message(1, 5000)), ErrorKind::MessageTooLarge, "try_send over the server's limit");
    assert_kind(
        s.send_timeout(&message(1, 1 << 20), Some(ms(100))),
        ErrorKind::MessageTooLarge,
        "send_timeout over the limit",
    );
    s.send(&message(2, 1000)).unwrap();
    assert_eq!(server.recv(0, WAIT), Ok(digest(&message(2, 1000))));

    server.cmd("0 send 2001 3");
    assert_eq!(server.result(0), Err("MessageTooLarge".into()));
    server.cmd("0 send 2000 4");
    assert_eq!(server.result(0), Ok("2000".into()));
    assert_eq!(s.recv_timeout(Some(WAIT)).unwrap(), message(4, 2000));

    s.send(&message(5, 999)).unwrap();
    assert_eq!(server.recv(0, WAIT), Ok(digest(&message(5, 999))));
    assert_eq!(s.stats().messages_sent, 2);
    drop(s);
    server.quit();
    assert_no_endpoint_files(&name);
}

/// Clean close: the peer gets every message sent before, then PeerClosed;
/// calls on the closed stream give Closed.
#[test]
fn clean_close_both_directions() {
    init();
    let name = unique_name("close");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into())]);
    let opts = Options::new().server_key(*kp.public());

    // Client closes after sending, with the server still reading.
    let s = Stream::connect(&name, &opts).unwrap();
    server.expect("0 ACCEPTED");
    server.cmd("0 drain");
    let sizes = [0usize, 1, 64, 900, 5000, 20000, 0, 70000];
    for (i, len) in sizes.iter().enumerate() {
        s.send(&message(100 + i as u64, *len)).unwrap();
    }
    s.close().unwrap();
    for (i, len) in sizes.iter().enumerate() {
        assert_eq!(server.result(0), Ok(digest(&message(100 + i as u64, *len))), "message {i}");
    }
    assert_eq!(server.expect_end(0), ("PeerClosed".into(), sizes.len() as u64));
    assert!(s.is_closed());
    assert_kind(s.send(b"x"), ErrorKind::Closed, "send after close");
    assert_kind(s.try_send(b"x"), ErrorKind::Closed, "try_send after close");
    assert_kind(s.recv(), ErrorKind::Closed, "recv after close");
    assert_kind(s.recv_timeout(Some(ms(10))), ErrorKind::Closed, "recv_timeout after close");
    assert_kind(s.try_recv(), ErrorKind::Closed, "try_recv after close");
    assert_kind(s.recv_into(&mut [0u8; 8]), ErrorKind::Closed, "recv_into after close");
    s.close().expect("close is idempotent");
    drop(s);

    // Client closes with its ring full (the server reads only afterwards): the
    // close still arrives after every message.
    let s = Stream::connect(&name, &opts).unwrap();
    server.expect("1 ACCEPTED");
    // Fill it completely: 100-byte messages, then empty ones (the size of a
    // CLOSE frame) until not even those fit.
    let mut lens = Vec::new();
    for len in [100usize, 0] {
        while s.try_send(&message(200 + lens.len() as u64, len)).is_ok() {
            lens.push(len);
        }
    }
    let n = lens.len() as u64;
    // close() now has to wait for room for its CLOSE frame; the server starts
    // reading while it waits (or before: either way the close must arrive).
    let closing = std::thread::spawn({
        let s = std::sync::Arc::new(s);
        move || {
            s.close().unwrap();
            s
        }
    });
    std::thread::sleep(ms(50));
    server.cmd("1 drain");
    for (i, len) in lens.iter().enumerate() {
        assert_eq!(server.result(1), Ok(digest(&message(200 + i as u64, *len))), "message {i} of a full ring");
    }
    assert_eq!(server.expect_end(1), ("PeerClosed".into(), n), "the close of a stream whose ring was full");
    drop(closing.join().unwrap());

    // The server closes after sending; this side reads afterwards.
    let s = Stream::connect(&name, &opts).unwrap();
    server.expect("2 ACCEPTED");
    server.cmd("2 sendn 3 700 300");
    assert_eq!(server.result(2), Ok("3".into()));
    server.cmd("2 close");
    assert_eq!(server.result(2), Ok("".into()));
    server.cmd("2 after_close");
    assert_eq!(server.expect("2 AFTER"), vec!["Closed"; 5], "calls on a closed stream");
    for i in 0..3 {
        assert_eq!(s.recv_timeout(Some(WAIT)).unwrap(), message(300 + i, 700));
    }
    assert_kind(s.recv_timeout(Some(WAIT)), ErrorKind::PeerClosed, "recv after the peer closed");
    assert_kind(s.recv_timeout(Some(WAIT)), ErrorKind::PeerClosed, "recv again after the peer closed");
    assert_kind(s.try_recv(), ErrorKind::PeerClosed, "try_recv after the peer closed");
    assert_kind(s.send(b"x"), ErrorKind::PeerClosed, "send after the peer closed");
    s.close().unwrap();
    assert_kind(s.recv(), ErrorKind::Closed, "recv after close");
    drop(s);

    server.quit();
    assert_no_endpoint_files(&name);
}

/// Both ciphers are what `Stream::cipher()` says on both ends, also when this
/// process is one of them.
#[test]
fn cipher_is_reported_on_both_ends() {
    init();
    let name = unique_name("cipher");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("AUTO", "echo quiet".into())]);
    for (conn, chacha) in [(0, false), (1, true)] {
        let s = Stream::connect(&name, &Options::new().server_key(*kp.public()).require_chacha(chacha)).unwrap();
        assert_eq!(s.cipher(), expected_cipher(chacha));
        let words = server.expect(&format!("{conn} ACCEPTED"));
        assert_eq!(words[0], format!("{:?}", expected_cipher(chacha)));
        if chacha {
            assert_eq!(s.cipher(), CipherSuite::ChaCha20Poly1305);
        }
        s.send(&message(conn as u64, 3000)).unwrap();
        assert_eq!(s.recv_timeout(Some(WAIT)).unwrap(), message(conn as u64, 3000));
    }
    server.quit();
    assert_no_endpoint_files(&name);
}

/// A send that times out after part of a large message went into the ring
/// cannot be taken back: the connection ends (the peer never gets the partial
/// message, it sees PeerGone), and later calls say the stream is closed rather
/// than Timeout (which promises that a retry may succeed).
#[test]
fn send_timeout_mid_message_ends_the_connection() {
    init();
    let name = unique_name("partial");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into())]);
    let s = Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap();
    server.expect("0 ACCEPTED");
    // 20 kB in fragments of about 1 kB: the first few fit the empty 4 KiB ring.
    let e =
        assert_kind(s.send_timeout(&message(1, 20000), Some(ms(300))), ErrorKind::Timeout, "send_timeout mid-message");
    assert!(e.message().contains("part of it was sent"), "{e}");
    let later = s.send(&message(2, 10)).unwrap_err();
    assert!(later.kind().ends_connection(), "a later send: {later:?}");
    assert_ne!(later.kind(), ErrorKind::Timeout, "a later send must not invite a retry: {later}");
    let later = s.recv_timeout(Some(ms(10))).unwrap_err();
    assert!(later.kind().ends_connection() && later.kind() != ErrorKind::Timeout, "a later recv: {later:?}");
    // The server reads the fragments that made it, but never a message.
    server.cmd("0 drain");
    assert_eq!(server.expect_end(0), ("PeerGone".into(), 0));
    drop(s);
    server.quit();
    assert_no_endpoint_files(&name);
}

/// A receive that times out in the middle of a large message keeps what it
/// has: the sender is stopped (SIGSTOP) half way through, recv times out (and
/// recv_into with a small buffer says BufferTooSmall with the whole size); once
/// the sender continues (SIGCONT) the whole message arrives, intact.
#[test]
fn recv_timeout_mid_message_keeps_the_partial_message() {
    init();
    let name = unique_name("stopped");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into())]);
    let s = Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap();
    server.expect("0 ACCEPTED");
    server.cmd("0 send 30000 42");
    // Wait until the first fragment is there (a zero-length buffer reports the
    // message's size and keeps it), then give the server a moment to fill the
    // ring (if it has not yet, the test only covers less).
    let start = std::time::Instant::now();
    loop {
        match s.try_recv_into(&mut []) {
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock && start.elapsed() < WAIT => std::thread::sleep(ms(5)),
            other => panic!("waiting for the first fragment: {other:?}"),
        }
    }
    std::thread::sleep(ms(50));
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(server.pid as i32, libc::SIGSTOP) }, 0);
    wait_stopped(server.pid);
    assert_kind(s.recv_timeout(Some(ms(300))), ErrorKind::Timeout, "recv while the sender is stopped");
    assert_kind(s.try_recv(), ErrorKind::WouldBlock, "try_recv while the sender is stopped");
    let e = assert_kind(s.recv_into_timeout(&mut [0u8; 100], Some(ms(100))), ErrorKind::BufferTooSmall, "recv_into");
    assert_eq!(e.needed(), Some(30000));
    assert_eq!(s.stats().messages_received, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(server.pid as i32, libc::SIGCONT) }, 0);
    let mut buf = vec![0u8; 30000];
    let n = s.recv_into_timeout(&mut buf, Some(WAIT)).unwrap();
    assert_eq!(n, 30000);
    assert!(buf == message(42, 30000), "the resumed message differs");
    assert_eq!(server.result(0), Ok("30000".into()));
    // And the stream goes on.
    server.cmd("0 send 5000 43");
    assert_eq!(s.recv_timeout(Some(WAIT)).unwrap(), message(43, 5000));
    drop(s);
    server.quit();
    assert_no_endpoint_files(&name);
}
