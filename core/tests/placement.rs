//! Placement hints (PROTOCOL.md §10): a side that sleeps publishes the CPU it
//! ran on in its own word of the segment, never in the peer's, and a garbage
//! hint written by someone else changes nothing but how long a waiter spins.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use shmsock::placement::{CLIENT_CPU_HINT, SERVER_CPU_HINT};
use shmsock::ErrorKind;

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    child_main();
}

#[test]
fn a_sleeping_side_publishes_its_cpu() {
    let (client, server) = pair_in_process("placement", 4096);
    let seg = client.shared_segment();
    assert_eq!(seg.atomic_u32(CLIENT_CPU_HINT).load(Ordering::Relaxed), 0);
    let e = client.recv_timeout(Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    let cpus = std::thread::available_parallelism().map_or(1024, |n| n.get() as u32).max(1024);
    let hint = seg.atomic_u32(CLIENT_CPU_HINT).load(Ordering::Relaxed);
    assert!(hint >= 1 && hint <= cpus, "the client's hint after sleeping: {hint}");
    assert_eq!(seg.atomic_u32(SERVER_CPU_HINT).load(Ordering::Relaxed), 0, "the server never slept");

    // Garbage hints (a hostile writer) change nothing the peers can see.
    seg.atomic_u32(SERVER_CPU_HINT).store(hint, Ordering::Relaxed);
    seg.atomic_u32(CLIENT_CPU_HINT).store(u32::MAX, Ordering::Relaxed);
    let reader = std::thread::spawn(move || client.recv_timeout(Some(WAIT)));
    std::thread::sleep(Duration::from_millis(20));
    server.send(b"still fine").unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), b"still fine");
}

/// Pins the calling thread to the CPU it runs on now and returns that CPU's
/// hint value (the CPU + 1), so that a forged peer hint names this thread's CPU
/// for as long as the test runs.
fn pin_here() -> u32 {
    // SAFETY: sched_getcpu takes no arguments; sched_setaffinity reads a
    // cpu_set_t that lives on this stack for the whole call.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
        cpu as u32 + 1
    }
}

/// `Stream::hand_over` (an event loop's hand-over before it sleeps) publishes
/// this side's hint, tells the truth about a message being there, and never
/// takes one: whatever it returns, the next receive gets every message intact.
/// Hostile hints change nothing but whether it yields.
#[test]
fn hand_over_looks_without_taking() {
    let (client, server) = pair_in_process("hand-over", 4096);
    // Run on a thread of its own: pinning must not outlive the test.
    std::thread::spawn(move || {
        let seg = client.shared_segment();
        let own = pin_here();
        assert!(!client.hand_over().unwrap(), "nothing was sent and the peer's hint names no CPU");
        assert_eq!(seg.atomic_u32(CLIENT_CPU_HINT).load(Ordering::Relaxed), own, "it published this side's CPU");

        // The peer says it runs on this CPU: with nothing sent, hand-overs find
        // nothing (and stop paying), but take nothing either.
        seg.atomic_u32(SERVER_CPU_HINT).store(own, Ordering::Relaxed);
        for _ in 0..4 {
            assert!(!client.hand_over().unwrap(), "no message is there");
        }
        for round in 0..8u8 {
            server.send(&[round; 100]).unwrap();
            // True or false (a crowded machine, or hand-overs that stopped
            // paying, make it return at once), the message stays for recv.
            let _ = client.hand_over().unwrap();
            assert_eq!(client.next_message_len(), Some(100), "round {round}: the message is still there");
            assert_eq!(client.try_recv().unwrap(), vec![round; 100]);
        }

        // Garbage hints: no hand-over, no harm.
        for garbage in [u32::MAX, own.wrapping_add(1000), 0] {
            seg.atomic_u32(SERVER_CPU_HINT).store(garbage, Ordering::Relaxed);
            assert!(!client.hand_over().unwrap());
        }
        server.send(b"after garbage").unwrap();
        assert_eq!(client.recv_timeout(Some(WAIT)).unwrap(), b"after garbage");

        // After close, what a receive would say.
        client.close().unwrap();
        assert_eq!(client.hand_over().unwrap_err().kind(), ErrorKind::Closed);
    })
    .join()
    .unwrap();
}
