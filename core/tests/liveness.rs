//! Liveness: SIGKILL of a server or client process at random points (mid
//! transfer of large messages, while the survivor is blocked sending or
//! receiving, mid handshake), fake peers that stop half way, and idle CPU.
//! The survivor's blocked call always ends with PeerGone (never a hang: every
//! wait is bounded and its outcome asserted), and nothing is left behind.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use shmsock::{ErrorKind, Keypair, Options, Stream};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// The client floods large messages, the server verifies them; the server dies.
    FloodKillServer,
    /// The same; the client dies (the server may be mid-message).
    FloodKillClient,
    /// The server does not read; the client blocks in send; the server dies.
    BlockedSendKillServer,
    /// The client does not read; the server blocks in send; the client dies.
    BlockedSendKillClient,
    /// The client blocks in recv; the server dies.
    BlockedRecvKillServer,
    /// The server blocks in recv; the client dies.
    BlockedRecvKillClient,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::FloodKillServer,
    Scenario::FloodKillClient,
    Scenario::BlockedSendKillServer,
    Scenario::BlockedSendKillClient,
    Scenario::BlockedRecvKillServer,
    Scenario::BlockedRecvKillClient,
];

fn sigkill_case(backend: &str, scenario: Scenario, rng: &mut Rng, watch: &mut ShmWatch) {
    let name = unique_name("kill");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("BACKEND", backend.into()), ("RING", "65536".into())]);
    let (mut client, info) = spawn_client("client", &name, kp.public(), &[]);
    assert_eq!(info[1], if backend == "memfd" { "Memfd" } else { "Named" });
    server.expect("0 ACCEPTED");
    watch.collect(&mut server);
    watch.collect(&mut client);
    let kill_server = matches!(
        scenario,
        Scenario::FloodKillServer | Scenario::BlockedSendKillServer | Scenario::BlockedRecvKillServer
    );
    // Messages of 200 kB cross the 64 KiB ring in many fragments, so a kill
    // lands mid-message most of the time.
    match scenario {
        Scenario::FloodKillServer | Scenario::FloodKillClient => {
            server.cmd("0 verify");
            client.cmd("0 flood 200000 1");
            client.expect("0 FLOODING");
            server.expect("0 VERIFYING");
        }
        Scenario::BlockedSendKillServer => {
            client.cmd("0 flood 20000 1");
            client.expect("0 FLOODING");
        }
        Scenario::BlockedSendKillClient => {
            server.cmd("0 flood 20000 1");
            server.expect("0 FLOODING");
        }
        Scenario::BlockedRecvKillServer => client.cmd("0 recv"),
        Scenario::BlockedRecvKillClient => server.cmd("0 recv"),
    }
    // A random point: the flood is under way, a blocked side may still be
    // spinning or already asleep.
    std::thread::sleep(Duration::from_micros(rng.below(30_000)));
    let (victim, survivor) = if kill_server { (&mut server, &mut client) } else { (&mut client, &mut server) };
    let t = Instant::now();
    victim.kill();
    let outcome = match scenario {
        Scenario::BlockedRecvKillServer | Scenario::BlockedRecvKillClient => survivor.result(0).err(),
        _ => Some(survivor.expect_end(0).0),
    };
    assert_eq!(outcome.as_deref(), Some("PeerGone"), "{backend} {scenario:?}: the survivor's blocked call");
    let noticed = t.elapsed();
    assert!(noticed < WAIT, "{backend} {scenario:?}: took {noticed:?}");
    // The connection stays ended.
    survivor.cmd("0 send 10 1");
    assert_eq!(survivor.result(0), Err("PeerGone".into()), "{backend} {scenario:?}: send after PeerGone");
    survivor.assert_no_panic();
    if kill_server {
        client.quit();
        // The dead server's socket and lock are reclaimed by the next bind.
        assert!(endpoint_socket_exists(&name));
        reclaim_and_check(&name);
    } else {
        server.quit();
        assert_no_endpoint_files(&name);
    }
}

fn sigkill_suite(backend: &str) {
    init();
    let mut rng = Rng::from_env_or_time(&format!("sigkill_{backend}"));
    let mut watch = ShmWatch::start(&[65536]);
    for round in 0..2 {
        for scenario in SCENARIOS {
            let _ = round;
            sigkill_case(backend, scenario, &mut rng, &mut watch);
        }
    }
    if backend == "named" {
        assert!(watch.seen() >= 12, "the children reported their named segments");
    }
    watch.assert_clean();
}

#[test]
fn sigkill_mid_transfer_memfd() {
    sigkill_suite("memfd");
}

#[test]
fn sigkill_mid_transfer_named() {
    sigkill_suite("named");
}

/// This process is the survivor, with one thread blocked in recv and another
/// blocked in send on the same stream: both calls end with PeerGone when the
/// server process is killed.
#[test]
fn both_blocked_calls_end_with_peer_gone() {
    init();
    let name = unique_name("both");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("RING", "4096".into())]);
    let s = Arc::new(Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap());
    server.expect("0 ACCEPTED");
    let receiver = std::thread::spawn({
        let s = s.clone();
        move || s.recv_timeout(Some(WAIT))
    });
    let sender = std::thread::spawn({
        let s = s.clone();
        move || loop {
            if let Err(e) = s.send_timeout(&message(1, 3000), Some(WAIT)) {
                return e;
            }
        }
    });
    // Wait until the sender has filled the ring (it then blocks).
    eventually("the ring is full", || s.try_send(&message(2, 3000)).is_err());
    std::thread::sleep(Duration::from_millis(50));
    server.kill();
    let r = receiver.join().unwrap();
    assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::PeerGone), "the blocked recv");
    assert_eq!(sender.join().unwrap().kind(), ErrorKind::PeerGone, "the blocked send");
    assert_eq!(s.try_recv().unwrap_err().kind(), ErrorKind::PeerGone);
    drop(s);
    reclaim_and_check(&name);
}

/// The pollable fd becomes readable when the peer dies, and try_recv then says
/// PeerGone.
#[test]
fn peer_death_wakes_the_pollable_fd() {
    init();
    let name = unique_name("pollfd");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[]);
    let s = Stream::connect(&name, &Options::new().server_key(*kp.public())).unwrap();
    server.expect("0 ACCEPTED");
    assert_eq!(s.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    server.kill();
    let mut fds = [rustix::event::PollFd::new(&s, rustix::event::PollFlags::IN)];
    let timeout = rustix::time::Timespec { tv_sec: WAIT.as_secs() as i64, tv_nsec: 0 };
    assert_eq!(rustix::event::poll(&mut fds, Some(&timeout)).unwrap(), 1, "the pollable fd stayed quiet");
    assert_eq!(s.try_recv().unwrap_err().kind(), ErrorKind::PeerGone);
    assert_eq!(s.send(b"x").unwrap_err().kind(), ErrorKind::PeerGone);
    drop(s);
    reclaim_and_check(&name);
}

/// Fake clients that stop mid-handshake (half a HELLO, a garbage HELLO,
/// nothing), stalled or SIGKILLed: the server gives up on them (within its
/// handshake timeout) and keeps serving real clients.
#[test]
fn fake_clients_stopping_mid_handshake() {
    init();
    let name = unique_name("halfhello");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[("HS_MS", "1000".into()), ("AUTO", "echo quiet".into())]);
    let mut rejected = 0;
    let mut conn = 0;
    for mode in ["half", "garbage", "nothing"] {
        for kill in [false, true] {
            let mut fake = Child::spawn("fake", "half_hello", &[("NAME", name.clone()), ("MODE", mode.into())]);
            fake.expect("STALLED");
            if kill {
                fake.kill();
            }
            // The server refuses or gives up on the fake ...
            rejected += 1;
            let why = server.expect(&format!("REJECTED {rejected}"));
            let want: &[&str] = match (mode, kill) {
                ("garbage", _) => &["ServerKeyMismatch", "ProtocolViolation"],
                (_, true) => &["PeerGone"],
                (_, false) => &["Timeout"],
            };
            assert!(want.contains(&why[0].as_str()), "{mode} kill={kill}: the server's handshake ended with {why:?}");
            // ... and serves a real client.
            let (mut real, _) = spawn_client("real", &name, kp.public(), &[]);
            server.expect(&format!("{conn} ACCEPTED"));
            real.cmd("0 roundtrip 3 1 10,5000,100000");
            assert_eq!(real.result(0), Ok("3".into()), "{mode} kill={kill}");
            real.quit();
            assert_eq!(server.expect_end(conn).0, "PeerClosed");
            conn += 1;
            fake.kill();
        }
    }
    server.quit();
    assert_no_endpoint_files(&name);
}

/// A fake server that accepts and never answers: the client's connect ends
/// with Timeout after its handshake timeout. One killed while the client waits:
/// PeerGone, at once.
#[test]
fn fake_server_never_answers() {
    init();
    let kp = Keypair::generate();

    let name = unique_name("silent");
    let mut fake = Child::spawn("silent", "silent_server", &[("NAME", name.clone())]);
    fake.expect("BOUND");
    let hs = Duration::from_millis(1000);
    let t = Instant::now();
    let e = Stream::connect(&name, &Options::new().server_key(*kp.public()).handshake_timeout(hs)).unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took >= hs && took < hs + Duration::from_secs(10),
        "connect gave up after {took:?} (handshake timeout {hs:?})"
    );
    fake.expect("ACCEPTED_RAW 1");
    fake.quit();
    assert_no_endpoint_files(&name);

    let name = unique_name("silent-killed");
    let mut fake = Child::spawn("silent", "silent_server", &[("NAME", name.clone())]);
    fake.expect("BOUND");
    let long = Duration::from_secs(60);
    let connecting = std::thread::spawn({
        let name = name.clone();
        let opts = Options::new().server_key(*kp.public()).handshake_timeout(long);
        move || {
            let t = Instant::now();
            (Stream::connect(&name, &opts).map(|_| ()), t.elapsed())
        }
    });
    fake.expect("ACCEPTED_RAW 1");
    fake.kill();
    let (r, took) = connecting.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::PeerGone);
    assert!(took < long / 2, "the client noticed the dead server only after {took:?}");
    reclaim_and_check(&name);
}

/// A real server SIGKILLed at a random moment while a client process connects
/// again and again (each time: connect, one round trip, close): every attempt
/// ends with success or a clear error, never a hang, and later attempts find
/// nobody (NotFound).
#[test]
fn server_killed_while_clients_connect() {
    init();
    let mut rng = Rng::from_env_or_time("server_killed_while_clients_connect");
    for round in 0..3 {
        let name = unique_name("connloop");
        let kp = Keypair::generate();
        let mut server = spawn_server("server", &name, &kp, &[("AUTO", "echo quiet".into()), ("RING", "16384".into())]);
        let mut settings = client_settings(&name, kp.public());
        // Far more attempts than happen before the kill: the loop ends after
        // three NotFound in a row.
        settings.push(("COUNT", "100000".into()));
        let mut client = Child::spawn("connector", "connect_loop", &settings);
        let first_ok = client.take("TRY", |e| e.starts_with("TRY "));
        assert!(first_ok.ends_with(" Ok"), "round {round}: {first_ok}");
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        server.kill();
        let mut outcomes = Vec::new();
        loop {
            let ev = client.take("TRY or DONE", |e| e.starts_with("TRY ") || e == "DONE");
            if ev == "DONE" {
                break;
            }
            outcomes.push(ev.split_whitespace().nth(2).unwrap().to_string());
        }
        for o in &outcomes {
            assert!(
                ["Ok", "PeerGone", "NotFound"].contains(&o.as_str()),
                "round {round}: an attempt ended with {o}: {outcomes:?}"
            );
        }
        assert_eq!(outcomes.last().map(String::as_str), Some("NotFound"), "round {round}: {outcomes:?}");
        assert!(client.wait_exit().success());
        client.assert_no_panic();
        reclaim_and_check(&name);
    }
}

/// An idle connected pair, both processes blocked in recv, uses (next to) no
/// CPU: idle waiting sleeps in the kernel.
#[test]
fn idle_pair_uses_no_cpu() {
    init();
    let name = unique_name("idle");
    let kp = Keypair::generate();
    let mut server = spawn_server("server", &name, &kp, &[]);
    let (mut client, _) = spawn_client("client", &name, kp.public(), &[]);
    server.expect("0 ACCEPTED");
    // One message each way first.
    client.cmd("0 send 64 1");
    assert_eq!(client.result(0), Ok("64".into()));
    assert_eq!(server.recv(0, WAIT), Ok(digest(&message(1, 64))));
    server.cmd("0 send 64 2");
    assert_eq!(server.result(0), Ok("64".into()));
    assert_eq!(client.recv(0, WAIT), Ok(digest(&message(2, 64))));
    // Both block in recv without a timeout (the client on a thread of its
    // own, so that its command loop stays free).
    server.cmd("0 recv");
    client.cmd("0 bg recv");
    // Past the spin budget (50 µs) by far.
    std::thread::sleep(Duration::from_millis(300));
    let (s0, c0) = (cpu_seconds(server.pid), cpu_seconds(client.pid));
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let (s1, c1) = (cpu_seconds(server.pid), cpu_seconds(client.pid));
    let wall = t.elapsed();
    eprintln!("idle over {wall:?}: server {:.3} s CPU, client {:.3} s CPU", s1 - s0, c1 - c0);
    assert!(s1 - s0 < 0.05, "the idle server used {:.3} s of CPU in {wall:?}", s1 - s0);
    assert!(c1 - c0 < 0.05, "the idle client used {:.3} s of CPU in {wall:?}", c1 - c0);
    // Both calls are still pending, and work.
    server.cmd("1 recv"); // no such connection: just proves the server is responsive
    server.expect("NOCONN 1");
    client.cmd("0 send 64 5");
    assert_eq!(client.result(0), Ok("64".into()));
    assert_eq!(server.result(0), Ok(digest(&message(5, 64))));
    server.cmd("0 send 64 6");
    assert_eq!(server.result(0), Ok("64".into()));
    assert_eq!(client.result(0), Ok(digest(&message(6, 64))));
    client.quit();
    server.quit();
    assert_no_endpoint_files(&name);
}

/// Client processes SIGKILLed at random points while they connect again and
/// again (mid-handshake, mid-transfer, between connections), on both backends:
/// the server keeps serving, and no named segment is left in /dev/shm.
#[test]
fn clients_killed_while_connecting_leave_nothing() {
    init();
    let mut rng = Rng::from_env_or_time("clients_killed_while_connecting_leave_nothing");
    for backend in ["named", "memfd"] {
        let name = unique_name("clientkill");
        let kp = Keypair::generate();
        let mut watch = ShmWatch::start(&[16384]);
        let mut server = spawn_server(
            "server",
            &name,
            &kp,
            &[
                ("AUTO", "echo quiet".into()),
                ("RING", "16384".into()),
                ("BACKEND", backend.into()),
                ("HS_MS", "2000".into()),
            ],
        );
        for _ in 0..6 {
            let mut settings = client_settings(&name, kp.public());
            settings.push(("COUNT", "100000".into()));
            let mut client = Child::spawn("connector", "connect_loop", &settings);
            let first = client.take("TRY", |e| e.starts_with("TRY "));
            assert!(first.ends_with(" Ok"), "{backend}: {first}");
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
            client.kill();
            // Every attempt the client finished succeeded.
            while let Some(ev) = client.try_take(Duration::ZERO, |e| e.starts_with("TRY ")) {
                assert!(ev.ends_with(" Ok"), "{backend}: {ev}");
            }
        }
        // The server still serves.
        let (mut real, _) = spawn_client("real", &name, kp.public(), &[]);
        real.cmd("0 roundtrip 3 1 10,5000,100000");
        assert_eq!(real.result(0), Ok("3".into()), "{backend}: the server after the kills");
        real.quit();
        server.quit();
        watch.collect(&mut server);
        assert_no_endpoint_files(&name);
        watch.assert_clean();
    }
}
