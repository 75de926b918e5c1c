//! A loom model of one ring of a shmsock connection: the producer and consumer
//! of `core/src/ring.rs`, the waiting flags they set before sleeping, and the
//! eventfds that wake them (`core/src/wait.rs`), with the orderings the core
//! uses (PROTOCOL.md, "Memory ordering").
//!
//! loom runs the two sides under every interleaving, and every value each load
//! may return under the C++/Rust memory model (including the weak behaviours of
//! aarch64 that x86 tests never show), up to a bound on preemptions. The
//! properties checked:
//! - no read of an unpublished frame, and no overwrite of a frame not yet
//!   consumed: the frame bytes live in a `loom::cell::UnsafeCell`, and loom
//!   reports any access to it that is not ordered by happens-before after the
//!   other side's last access ("causality violation");
//! - no lost wake-up: a side that sleeps on its eventfd (`loom::sync::Notify`,
//!   which may also wake spuriously, as epoll may) is woken whenever the other
//!   side published what it waits for; otherwise both sides end up asleep and
//!   loom reports a deadlock;
//! - every message arrives, in order, and the counters stay in range.
//!
//! The model keeps what matters for ordering and drops the rest: a record is one
//! slot holding a u64 (the sealed frame), counters count records rather than
//! bytes, and a wake-up is `Notify::notify` (an eventfd write, which the kernel
//! orders like a release/acquire pair). [`Orderings::RING_RS`] are the orderings
//! of ring.rs, which `tests/ring_rs_orderings.rs` reads from the source; the
//! other values of [`Orderings`] exist to show that the checker catches each
//! weakening (`tests/model.rs`).

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Notify};

/// The orderings of the accesses the protocol depends on.
#[derive(Clone, Copy, Debug)]
pub struct Orderings {
    /// The producer's store of `tail` (`Producer::publish`).
    pub publish_tail: Ordering,
    /// The consumer's load of `tail` (`Consumer::tail`).
    pub load_tail: Ordering,
    /// The consumer's store of `head` (`Consumer::advance`).
    pub store_head: Ordering,
    /// The producer's load of `head` (`Producer::head`).
    pub load_head: Ordering,
    /// The swap of 1 into the own waiting flag (`arm`). A swap, not a store, as
    /// in ring.rs: loom keeps the modification order of a location partial, and
    /// does not order a plain store after another thread's earlier swap of the
    /// same flag (`take_flag`) even when the swap read the value just before
    /// it, so with a plain store it reports a lost wake-up that the C++/Rust
    /// model rules out. An RMW on both sides keeps loom's order total.
    pub arm_flag: Ordering,
    /// A SeqCst fence between setting the own flag and re-reading the ring (`arm`).
    pub fence_after_arm: bool,
    /// A SeqCst fence between publishing a counter and reading the other's flag
    /// (`publish`, `advance`).
    pub fence_after_publish: bool,
    /// The swap that clears the other's flag (`take_flag`).
    pub take_flag_swap: Ordering,
}

impl Orderings {
    /// What core/src/ring.rs does.
    pub const RING_RS: Orderings = Orderings {
        publish_tail: Ordering::Release,
        load_tail: Ordering::Acquire,
        store_head: Ordering::Release,
        load_head: Ordering::Acquire,
        arm_flag: Ordering::SeqCst,
        fence_after_arm: true,
        fence_after_publish: true,
        take_flag_swap: Ordering::AcqRel,
    };
}

/// The deferred wake-ups of ring.rs (`Producer::publish`, `Consumer::advance`):
/// a record that does not end a message wakes a sleeping consumer only once
/// `producer_wakes_at` records are in use, and consuming a record wakes a
/// sleeping producer only once at most `consumer_wakes_at` are; a side that
/// stops (to wait, or at the end of a message) takes the other's flag and
/// wakes it whatever the ring holds (`take_deferred_wake`).
#[derive(Clone, Copy, Debug)]
pub struct Deferral {
    /// Records per message (the last one always wakes).
    pub fragments: u64,
    /// The producer wakes the consumer once this many records are in use.
    pub producer_wakes_at: u64,
    /// The consumer wakes the producer once at most this many are in use.
    pub consumer_wakes_at: u64,
    /// `take_deferred_wake` where ring.rs calls it (false only to show that
    /// loom then finds the lost wake-up).
    pub flush: bool,
}

/// The shared part of one ring: what lives in the segment, plus the eventfds.
struct Ring {
    slots: Vec<UnsafeCell<u64>>,
    tail: AtomicU64,
    head: AtomicU64,
    consumer_waiting: AtomicU32,
    producer_waiting: AtomicU32,
    /// The consumer's wake-up eventfd, written by the producer.
    consumer_wake: Notify,
    /// The producer's wake-up eventfd, written by the consumer.
    producer_wake: Notify,
    orderings: Orderings,
    deferral: Option<Deferral>,
}

impl Ring {
    fn capacity(&self) -> u64 {
        self.slots.len() as u64
    }

    /// `Producer::head` with the check `reserve` makes: is there room?
    fn has_space(&self, tail: u64) -> bool {
        let head = self.head.load(self.orderings.load_head);
        assert!(head <= tail && tail - head <= self.capacity(), "head counter out of range");
        tail - head < self.capacity()
    }

    /// `Consumer::tail`, checked.
    fn load_tail(&self, head: u64) -> u64 {
        let tail = self.tail.load(self.orderings.load_tail);
        assert!(tail >= head && tail - head <= self.capacity(), "tail counter out of range");
        tail
    }

    /// `arm`: say this side sleeps, then order that before the re-check.
    fn arm(&self, flag: &AtomicU32) {
        flag.swap(1, self.orderings.arm_flag);
        if self.orderings.fence_after_arm {
            fence(Ordering::SeqCst);
        }
    }

    /// `take_flag`: true when the other side said it sleeps (and clears it).
    fn take_flag(&self, flag: &AtomicU32) -> bool {
        flag.load(Ordering::Relaxed) != 0 && flag.swap(0, self.orderings.take_flag_swap) != 0
    }

    /// `Waiter::wait` around `ready`: look, then loop { arm, look, sleep }.
    fn wait(&self, flag: &AtomicU32, wake: &Notify, ready: impl Fn() -> bool) {
        if ready() {
            return;
        }
        loop {
            self.arm(flag);
            if ready() {
                // `disarm`
                flag.store(0, Ordering::Relaxed);
                return;
            }
            wake.wait();
        }
    }

    /// `take_deferred_wake`: the other side's flag, taken whatever the ring
    /// holds, because this side stops.
    fn flush(&self, flag: &AtomicU32, wake: &Notify) {
        if self.deferral.is_some_and(|d| d.flush) && self.take_flag(flag) {
            wake.notify();
        }
    }

    /// One send: wait for room, write the frame, publish, wake a sleeping
    /// consumer (now, or with a deferral, once enough is in or `last`).
    fn send(&self, tail: &mut u64, value: u64, last: bool) {
        let at = *tail;
        if !self.has_space(at) {
            // `reserve_waiting`: a deferred wake-up is owed before waiting.
            self.flush(&self.consumer_waiting, &self.consumer_wake);
        }
        self.wait(&self.producer_waiting, &self.producer_wake, || self.has_space(at));
        self.slots[(at % self.capacity()) as usize].with_mut(|frame| {
            // SAFETY: loom's own cell; the pointer is valid for the closure, and
            // loom reports it when this write races with the consumer's read.
            unsafe { *frame = value }
        });
        *tail = at + 1;
        self.tail.store(*tail, self.orderings.publish_tail);
        if self.orderings.fence_after_publish {
            fence(Ordering::SeqCst);
        }
        // `Producer::defers_wake`: the head is read after the fence.
        let defers = !last
            && self.deferral.is_some_and(|d| *tail - self.head.load(self.orderings.load_head) < d.producer_wakes_at);
        if !defers && self.take_flag(&self.consumer_waiting) {
            self.consumer_wake.notify();
        }
    }

    /// One receive: wait for a frame, copy it out, free its room, wake a sleeping
    /// producer.
    fn recv(&self, head: &mut u64, last: bool) -> u64 {
        let at = *head;
        // `Consumer::peek`'s tail, kept for `defers_wake`.
        let seen_tail = std::cell::Cell::new(at);
        let ready = || {
            seen_tail.set(self.load_tail(at));
            seen_tail.get() != at
        };
        if !ready() {
            // `receive_available` returns with the ring empty: it owes a
            // deferred wake-up before waiting.
            self.flush(&self.producer_waiting, &self.producer_wake);
        }
        self.wait(&self.consumer_waiting, &self.consumer_wake, ready);
        let value = self.slots[(at % self.capacity()) as usize].with(|frame| {
            // SAFETY: as in `send`; loom reports a read of an unpublished frame.
            unsafe { *frame }
        });
        *head = at + 1;
        self.head.store(*head, self.orderings.store_head);
        if self.orderings.fence_after_publish {
            fence(Ordering::SeqCst);
        }
        let defers = self.deferral.is_some_and(|d| seen_tail.get().saturating_sub(*head) > d.consumer_wakes_at);
        if !defers && self.take_flag(&self.producer_waiting) {
            self.producer_wake.notify();
        }
        if last {
            // `receive_available` returns a message: a deferred wake-up is owed.
            self.flush(&self.producer_waiting, &self.producer_wake);
        }
        value
    }
}

/// The model: a producer sends `messages` frames (1, 2, ...) through a ring of
/// `capacity` records to a consumer, each side sleeping when it must wait.
/// Returns after every interleaving loom explores within `preemption_bound`;
/// panics (loom's report) when one breaks a property.
pub fn check(orderings: Orderings, capacity: usize, messages: u64, preemption_bound: usize) {
    check_with(orderings, None, capacity, messages, preemption_bound);
}

/// [`check`] with deferred wake-ups: `messages` records in messages of
/// `deferral.fragments` records each.
pub fn check_deferred(deferral: Deferral, capacity: usize, messages: u64, preemption_bound: usize) {
    check_with(Orderings::RING_RS, Some(deferral), capacity, messages, preemption_bound);
}

fn check_with(
    orderings: Orderings,
    deferral: Option<Deferral>,
    capacity: usize,
    messages: u64,
    preemption_bound: usize,
) {
    let fragments = deferral.map_or(1, |d| d.fragments.max(1));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemption_bound);
    builder.check(move || {
        let ring = Arc::new(Ring {
            slots: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            consumer_waiting: AtomicU32::new(0),
            producer_waiting: AtomicU32::new(0),
            consumer_wake: Notify::new(),
            producer_wake: Notify::new(),
            orderings,
            deferral,
        });
        let producer = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let mut tail = 0;
                for value in 1..=messages {
                    ring.send(&mut tail, value, value % fragments == 0 || value == messages);
                }
            })
        };
        let mut head = 0;
        for expected in 1..=messages {
            let last = expected % fragments == 0 || expected == messages;
            assert_eq!(ring.recv(&mut head, last), expected, "a frame arrived out of order or torn");
        }
        producer.join().expect("the producer panicked");
    });
}
