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
