//! The ring and wake-up orderings of core/src/ring.rs hold under loom, and loom
//! catches each weakening that would break them (so a passing model means
//! something).
//!
//! A weakened model is run in a child process (this test binary, running one
//! ignored test): after reporting a deadlock, loom panics again while
//! unwinding its blocked threads and aborts the process, so the failure cannot
//! be caught in-process.

use std::process::Command;
use std::sync::atomic::Ordering;

use shmsock_loom::{check, Orderings};

/// Preemptions loom tries per execution: each failure below needs at most two;
/// three keeps the correct models to seconds.
const BOUND: usize = 3;

#[test]
fn ring_rs_orderings_hold_with_a_full_ring() {
    // One record of room, three messages: the producer waits for room and the
    // consumer for data, each possibly asleep.
    check(Orderings::RING_RS, 1, 3, BOUND);
}

#[test]
fn ring_rs_orderings_hold_with_room_to_spare() {
    check(Orderings::RING_RS, 2, 3, BOUND);
}

/// Runs the ignored test `name` in a child process and returns its output,
/// asserting that it failed.
fn failure_of(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running the weakened model");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(text.contains(&format!("test {name} ...")) || text.contains(name), "{name} did not run:\n{text}");
    assert!(!output.status.success(), "loom found no failure in {name}: the model no longer catches it\n{text}");
    text
}

#[test]
fn loom_catches_each_weakening() {
    for (name, expected) in [
        ("weak_relaxed_publish", "Causality violation"),
        ("weak_relaxed_tail_load", "Causality violation"),
        ("weak_relaxed_head_store", "Causality violation"),
        ("weak_relaxed_head_load", "Causality violation"),
        ("weak_no_fence_after_publish", "deadlock"),
        ("weak_no_fence_after_arm", "deadlock"),
        ("weak_deferral_without_flush", "deadlock"),
    ] {
        let text = failure_of(name);
        assert!(text.contains(expected), "{name} failed, but not with \"{expected}\":\n{text}");
    }
}

// The weakened models, each run by `loom_catches_each_weakening`.

/// The consumer can read a frame before its bytes are visible.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_relaxed_publish() {
    check(Orderings { publish_tail: Ordering::Relaxed, ..Orderings::RING_RS }, 2, 1, BOUND);
}

/// The same, from the consumer's side.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_relaxed_tail_load() {
    check(Orderings { load_tail: Ordering::Relaxed, ..Orderings::RING_RS }, 2, 1, BOUND);
}

/// The producer can overwrite a record the consumer is still copying out.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_relaxed_head_store() {
    check(Orderings { store_head: Ordering::Relaxed, ..Orderings::RING_RS }, 1, 2, BOUND);
}

/// The same, from the producer's side.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_relaxed_head_load() {
    check(Orderings { load_head: Ordering::Relaxed, ..Orderings::RING_RS }, 1, 2, BOUND);
}

/// The publisher reads the flag before its counter store is visible to the
/// sleeper: both miss each other and the sleeper is never woken.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_no_fence_after_publish() {
    check(Orderings { fence_after_publish: false, ..Orderings::RING_RS }, 1, 2, BOUND);
}

/// The sleeper re-reads the ring before its flag is visible to the publisher.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_no_fence_after_arm() {
    check(Orderings { fence_after_arm: false, ..Orderings::RING_RS }, 1, 2, BOUND);
}

/// Deferred wake-ups (ring.rs `Producer::publish`, `Consumer::advance`) at
/// their extreme: a producer wakes a sleeping consumer only when a message
/// ends, a consumer wakes a sleeping producer only when the ring is empty;
/// otherwise each side relies on `take_deferred_wake` when it stops.
const DEFERRAL: shmsock_loom::Deferral =
    shmsock_loom::Deferral { fragments: 2, producer_wakes_at: u64::MAX, consumer_wakes_at: 0, flush: true };

#[test]
fn deferred_wake_ups_are_never_lost() {
    // Two messages of two records through two records of room.
    shmsock_loom::check_deferred(DEFERRAL, 2, 4, BOUND);
}

#[test]
fn deferred_wake_ups_are_never_lost_with_a_message_larger_than_the_ring() {
    // One message of three records through two records of room: the producer
    // waits for room in the middle of the message.
    shmsock_loom::check_deferred(shmsock_loom::Deferral { fragments: 3, ..DEFERRAL }, 2, 3, BOUND);
}

/// Deferring without paying the wake-up when a side stops loses it.
#[test]
#[ignore = "fails by design; run by loom_catches_each_weakening"]
fn weak_deferral_without_flush() {
    shmsock_loom::check_deferred(shmsock_loom::Deferral { fragments: 3, flush: false, ..DEFERRAL }, 2, 3, BOUND);
}
