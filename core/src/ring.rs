//! Single-producer single-consumer rings of sealed frames in a segment.
//!
//! Each ring is a byte area of `capacity` bytes (a power of two) with two
//! free-running u64 byte counters: `tail` (bytes ever published, written only by
//! the producer) and `head` (bytes ever consumed, written only by the consumer).
//! Records start at multiples of 16: a sealed frame padded to 16 bytes, or a
//! 16-byte PAD marker (first byte 0) that skips to the end of the area when the
//! next frame would not fit before it. If fewer than 16 bytes remain before the
//! end, both sides skip them without a marker (this cannot happen with 16-byte
//! alignment and a capacity that is a multiple of 16, and is listed for clarity).
//!
//! Both sides keep their own counter privately and treat the shared copy of the
//! other's counter as untrusted: it is read once per operation, checked against
//! the capacity and their own counter, and a bad value is a protocol error.
//!
//! Wake-ups (PROTOCOL.md, "Waking and liveness"): after publishing, a side
//! takes the other's waiting flag and wakes it. For a message in pieces that
//! wake-up may be deferred until it pays: a sleeping consumer is woken once
//! half the ring is in use or a record ends a message, a sleeping producer once
//! at most a quarter is in use. A side that defers leaves the flag set and
//! takes it (`take_deferred_wake`) at the latest when it stops: before it waits
//! itself, and before it returns to its caller. So every wake-up still comes,
//! only later, and a large message through a small ring costs a few wake-ups
//! per ring's worth instead of one per fragment (tests/loom models the rule).
//!
//! Committed pages (PROTOCOL.md §10, "Committing ring pages"): a memfd
//! segment is created with only its header reserved, and each side reserves
//! (`Segment::commit`) the pages of a ring from its start up to the furthest
//! byte it is about to touch, one page ([`FIRST_COMMIT`]) first and then in
//! steps of [`COMMIT_STEP`], before touching them, so memory pressure is an error from `fallocate`, never a SIGBUS. An
//! idle connection therefore costs a page, and one that only exchanges small
//! messages keeps to the first step: a producer whose message would run past
//! the first step starts again at the ring's beginning (a PAD marker) when the
//! ring is empty and the message fits before its current position. The same
//! rule brings small messages back to the first step after large ones.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::frame::HEADER_LEN;
use crate::segment::{self, Segment};

/// Records start at multiples of this.
pub const ALIGN: u64 = 16;

/// Ring bytes reserved at a time as a side first reaches them...
pub const COMMIT_STEP: u64 = 64 * 1024;
/// ...except the first reservation, one page: a connection that carries no
/// more than a few small messages and its CLOSE (a short-lived connection)
/// reserves, zeroes and frees 4 KiB per ring instead of 64 KiB, which on a
/// 2-vCPU EPYC was about 6% of a sequential connect-and-close's CPU time.
pub const FIRST_COMMIT: u64 = 4 * 1024;

/// Rounds a sealed frame length up to its record length.
pub fn record_len(sealed_len: usize) -> u64 {
    (sealed_len as u64).div_ceil(ALIGN) * ALIGN
}

fn tampered(what: &str) -> Error {
    Error::new(
        ErrorKind::ProtocolViolation,
        format!("ring {what}: the shared memory was tampered with or the peer is broken; the connection is closed"),
    )
}

/// Offsets of one ring in a segment.
#[derive(Clone, Copy, Debug)]
struct RingLayout {
    control: usize,
    data: usize,
    capacity: u64,
}

impl RingLayout {
    fn new(ring: usize, capacity: u32) -> RingLayout {
        RingLayout {
            control: segment::ring_control_offset(ring),
            data: segment::ring_data_offset(ring, capacity),
            capacity: u64::from(capacity),
        }
    }

    /// Makes `*committed` (ring bytes reserved from the ring's start) reach at
    /// least `end`, reserving [`FIRST_COMMIT`] first, then whole steps.
    fn commit(&self, seg: &Segment, committed: &mut u64, end: u64) -> Result<()> {
        if end <= *committed {
            return Ok(());
        }
        let step = if end <= FIRST_COMMIT { FIRST_COMMIT } else { COMMIT_STEP };
        let target = end.div_ceil(step).saturating_mul(step).min(self.capacity);
        seg.commit(self.data + *committed as usize, (target - *committed) as usize)?;
        *committed = target;
        Ok(())
    }
}

/// The writing end of a ring.
pub struct Producer {
    layout: RingLayout,
    tail: u64,
    /// The consumer's head as last read (validated). It only grows, so room
    /// computed from it is never more than there is; re-reading it only when
    /// that room is too small spares a transfer of the head's cache line
    /// between cores on nearly every record (the consumer writes it on each
    /// one).
    known_head: u64,
    /// Ring bytes this side reserved, from the ring's start.
    committed: u64,
}

/// Where a reserved record goes.
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    /// Segment offset of the record.
    pub offset: usize,
    /// Ring position after the record.
    end: u64,
}

impl Producer {
    /// The producer of ring `ring` (starting from an empty ring).
    pub fn new(ring: usize, capacity: u32) -> Producer {
        Producer { layout: RingLayout::new(ring, capacity), tail: 0, known_head: 0, committed: 0 }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.layout.capacity
    }

    fn head(&self, seg: &Segment) -> Result<u64> {
        let head = seg.atomic_u64(self.layout.control + segment::HEAD).load(Ordering::Acquire);
        if head > self.tail || self.tail - head > self.layout.capacity || head % ALIGN != 0 {
            return Err(tampered("head counter out of range"));
        }
        Ok(head)
    }

    /// True when `needed` more bytes fit after the tail: first by the head
    /// last read, then, if not, by the head read now.
    fn room_for(&mut self, seg: &Segment, needed: u64) -> Result<bool> {
        if needed <= self.layout.capacity - (self.tail - self.known_head) {
            return Ok(true);
        }
        self.known_head = self.head(seg)?;
        Ok(needed <= self.layout.capacity - (self.tail - self.known_head))
    }

    /// Bytes a record of `record` bytes takes at `tail`, counting a PAD skip.
    fn needed(&self, tail: u64, record: u64) -> u64 {
        let contiguous = self.layout.capacity - tail % self.layout.capacity;
        if record <= contiguous {
            record
        } else {
            contiguous + record
        }
    }

    /// Reserves room for one record, or None when the ring is too full now.
    /// Writes the PAD marker when the record wraps.
    pub fn reserve(&mut self, seg: &Segment, sealed_len: usize) -> Result<Option<Reservation>> {
        let record = record_len(sealed_len);
        assert!(record <= self.layout.capacity, "record larger than the ring");
        if !self.room_for(seg, self.needed(self.tail, record))? {
            return Ok(None);
        }
        let mut at = self.tail;
        let pos = at % self.layout.capacity;
        let contiguous = self.layout.capacity - pos;
        if record > contiguous {
            self.write_pad(seg, pos)?;
            at += contiguous;
        }
        let pos = at % self.layout.capacity;
        self.layout.commit(seg, &mut self.committed, pos + record)?;
        Ok(Some(Reservation { offset: self.layout.data + pos as usize, end: at + record }))
    }

    /// Writes a PAD marker at ring position `pos`.
    fn write_pad(&mut self, seg: &Segment, pos: u64) -> Result<()> {
        self.layout.commit(seg, &mut self.committed, pos + ALIGN)?;
        seg.write_bytes(self.layout.data + pos as usize, &[0u8; ALIGN as usize])
    }

    /// Called before the first record of a message whose records have these
    /// sealed lengths: when they would run past the ring's first
    /// [`COMMIT_STEP`] but fit before the tail's position, and the ring is
    /// empty, the message starts again at the ring's beginning (a PAD marker,
    /// published with its first record). So a connection that exchanges small
    /// messages keeps to the pages it reserved first, and after a burst of
    /// large messages it returns to them instead of walking the whole ring:
    /// fewer cache lines and TLB entries per message, which a large ring would
    /// otherwise cost every small message.
    pub fn begin_message(&mut self, seg: &Segment, sealed_lens: impl Iterator<Item = usize>) -> Result<()> {
        let pos = self.tail % self.layout.capacity;
        if pos == 0 || pos + ALIGN > self.committed {
            return Ok(());
        }
        let total: u64 = sealed_lens.map(record_len).sum();
        if pos + total <= COMMIT_STEP || total > pos {
            return Ok(());
        }
        // Only the head read now can tell that the ring is empty.
        self.known_head = self.head(seg)?;
        if self.known_head != self.tail {
            return Ok(());
        }
        self.write_pad(seg, pos)?;
        self.tail += self.layout.capacity - pos;
        Ok(())
    }

    /// True when records of these sealed lengths, written one after the other,
    /// fit in the ring now (for `try_send`, which is all or nothing).
    pub fn fits_all(&mut self, seg: &Segment, sealed_lens: impl Iterator<Item = usize>) -> Result<bool> {
        let mut at = self.tail;
        for len in sealed_lens {
            at += self.needed(at, record_len(len));
            if at - self.tail > self.layout.capacity {
                return Ok(false);
            }
        }
        self.room_for(seg, at - self.tail)
    }

    /// This ring's [`Interest`]: freed space (the consumer's head).
    pub fn interest(&self) -> Interest {
        Interest::new(self.layout.control + segment::PRODUCER_WAITING, self.layout.control + segment::HEAD)
    }

    /// Records in `interest` that records of these sealed lengths, written one
    /// after the other, are wanted: met once the consumer's head lets all of
    /// them fit. Call before [`arm`](Producer::arm).
    pub fn want(&self, interest: &Interest, sealed_lens: impl Iterator<Item = usize>) {
        let mut at = self.tail;
        for len in sealed_lens {
            at += self.needed(at, record_len(len));
        }
        interest.want(at.saturating_sub(self.layout.capacity));
    }

    /// Publishes a reserved record (after it was sealed in place). Returns true
    /// when the consumer said it sleeps and must be woken now.
    ///
    /// `last`: the record ends a message (or is a CLOSE). A sleeping consumer
    /// can only deliver a whole message, so for a record that does not end one
    /// the wake-up is deferred while the ring holds less than half its
    /// capacity (see `Producer::defers_wake`); the flag stays set, and the
    /// caller must call [`take_deferred_wake`](Producer::take_deferred_wake)
    /// before it waits for room or returns with the message unfinished.
    #[must_use = "when true the consumer sleeps and must be woken"]
    pub fn publish(&mut self, seg: &Segment, reservation: Reservation, last: bool) -> bool {
        self.tail = reservation.end;
        seg.atomic_u64(self.layout.control + segment::TAIL).store(self.tail, Ordering::Release);
        // Pairs with the consumer's fence between setting its flag and re-reading
        // the tail: one of the two sides sees the other's write.
        fence(Ordering::SeqCst);
        (last || !self.defers_wake(seg)) && take_flag(seg, self.layout.control + segment::CONSUMER_WAITING)
    }

    /// True while a wake-up for a record that does not end a message may wait:
    /// the ring holds less than half its capacity, so a consumer woken now
    /// could not make much progress (half the ring is what it opens while this
    /// side writes the other half). The head is untrusted: a bad one wakes now.
    fn defers_wake(&self, seg: &Segment) -> bool {
        self.head(seg).is_ok_and(|head| self.tail - head < self.layout.capacity / 2)
    }

    /// Takes the consumer's waiting flag, if set, whatever the ring holds: a
    /// wake-up `publish` deferred is owed now, because this producer is about
    /// to wait for room or to return with a message unfinished. True when the
    /// consumer must be woken.
    #[must_use = "when true the consumer sleeps and must be woken"]
    pub fn take_deferred_wake(&self, seg: &Segment) -> bool {
        take_flag(seg, self.layout.control + segment::CONSUMER_WAITING)
    }

    /// Says this producer is about to sleep until the consumer frees space.
    /// A swap rather than a store so that tests/loom can check it (see its
    /// `Orderings::arm_flag`); it costs the same (x86 stores SeqCst with xchg).
    pub fn arm(&self, seg: &Segment) {
        seg.atomic_u32(self.layout.control + segment::PRODUCER_WAITING).swap(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Withdraws `arm` once space was found.
    pub fn disarm(&self, seg: &Segment) {
        seg.atomic_u32(self.layout.control + segment::PRODUCER_WAITING).store(0, Ordering::Relaxed);
    }
}

/// One direction's wish to be woken by the peer, kept outside the ring (and its
/// lock) so that a call on the other direction, which drains the wake-up both
/// directions share, can re-arm it and see whether it was met (see
/// `Stream::drain_wakeups`).
///
/// It names the waiting flag to set and the peer's counter to watch (the tail
/// of an inbound ring, the head of an outbound one): the wish is met once that
/// counter reaches the threshold. The counter is untrusted: a peer that forges
/// it only causes a spurious wake-up, after which the direction's own call
/// checks the ring properly.
pub struct Interest {
    flag: usize,
    counter: usize,
    threshold: AtomicU64,
}

impl Interest {
    /// No wish.
    const NONE: u64 = u64::MAX;

    fn new(flag: usize, counter: usize) -> Interest {
        Interest { flag, counter, threshold: AtomicU64::new(Interest::NONE) }
    }

    /// Withdraws the wish (its direction is being served now).
    pub fn clear(&self) {
        self.threshold.store(Interest::NONE, Ordering::SeqCst);
    }

    fn want(&self, threshold: u64) {
        self.threshold.store(threshold.min(Interest::NONE - 1), Ordering::SeqCst);
    }

    /// If a wish is pending: sets its waiting flag again (the peer took it when
    /// it last woke us, and that wake-up may just have been drained) and
    /// returns true when the wish is met already, so the caller must make the
    /// pollable fd readable again.
    pub fn rearm(&self, seg: &Segment) -> bool {
        let threshold = self.threshold.load(Ordering::SeqCst);
        if threshold == Interest::NONE {
            return false;
        }
        seg.atomic_u32(self.flag).swap(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        seg.atomic_u64(self.counter).load(Ordering::Acquire) >= threshold
    }
}

/// Clears a waiting flag the other side set; true when it was set.
fn take_flag(seg: &Segment, offset: usize) -> bool {
    let flag = seg.atomic_u32(offset);
    flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::AcqRel) != 0
}

/// The reading end of a ring.
pub struct Consumer {
    layout: RingLayout,
    head: u64,
    /// Set when skipping a PAD marker freed space and took the producer's
    /// waiting flag: the producer must be woken (see `take_owed_wake`).
    wake_owed: bool,
    /// The tail `peek` last read (validated), for deciding whether to defer a
    /// wake-up.
    seen_tail: u64,
    /// Ring bytes this side reserved, from the ring's start: it reserves what
    /// it is about to read too, because the peer may publish records over
    /// pages nobody reserved.
    committed: u64,
}

/// A record found at the head of a ring.
#[derive(Clone, Copy, Debug)]
pub struct Peeked {
    /// The frame header bytes, copied out.
    pub header: [u8; HEADER_LEN],
    /// Segment offset of the record.
    pub offset: usize,
    /// Bytes from the record's start to the end of the ring area.
    contiguous: u64,
    /// The tail seen.
    tail: u64,
}

impl Consumer {
    /// The consumer of ring `ring` (starting from an empty ring).
    pub fn new(ring: usize, capacity: u32) -> Consumer {
        Consumer { layout: RingLayout::new(ring, capacity), head: 0, wake_owed: false, seen_tail: 0, committed: 0 }
    }

    fn tail(&self, seg: &Segment) -> Result<u64> {
        let tail = seg.atomic_u64(self.layout.control + segment::TAIL).load(Ordering::Acquire);
        if tail < self.head || tail - self.head > self.layout.capacity || tail % ALIGN != 0 {
            return Err(tampered("tail counter out of range"));
        }
        Ok(tail)
    }

    /// This ring's [`Interest`]: a record published (the producer's tail).
    pub fn interest(&self) -> Interest {
        Interest::new(self.layout.control + segment::CONSUMER_WAITING, self.layout.control + segment::TAIL)
    }

    /// Records in `interest` that the next record is wanted. Call before
    /// [`arm`](Consumer::arm).
    pub fn want(&self, interest: &Interest) {
        interest.want(self.head + 1);
    }

    /// True when a record is waiting (does not validate it).
    pub fn has_data(&self, seg: &Segment) -> Result<bool> {
        Ok(self.tail(seg)? != self.head)
    }

    /// The next frame's header bytes, without moving (None when the ring is
    /// empty, the next record is a PAD marker, or the counters look tampered
    /// with: the caller learns the truth when it receives). Unverified, as the
    /// peer wrote them.
    pub fn next_header(&mut self, seg: &Segment) -> Option<[u8; HEADER_LEN]> {
        let tail = self.tail(seg).ok()?;
        if self.head == tail {
            return None;
        }
        let pos = self.head % self.layout.capacity;
        self.layout.commit(seg, &mut self.committed, pos + HEADER_LEN as u64).ok()?;
        let offset = self.layout.data + pos as usize;
        let mut header = [0u8; HEADER_LEN];
        seg.copy_out(offset, &mut header).ok()?;
        (header[0] != 0).then_some(header)
    }

    /// The next frame's header, skipping PAD markers, or None when the ring is
    /// empty.
    pub fn peek(&mut self, seg: &Segment) -> Result<Option<Peeked>> {
        let tail = self.tail(seg)?;
        self.seen_tail = tail;
        loop {
            if self.head == tail {
                return Ok(None);
            }
            let pos = self.head % self.layout.capacity;
            let contiguous = self.layout.capacity - pos;
            let offset = self.layout.data + pos as usize;
            self.layout.commit(seg, &mut self.committed, pos + HEADER_LEN as u64)?;
            let mut header = [0u8; HEADER_LEN];
            seg.copy_out(offset, &mut header)?;
            if header[0] == 0 {
                // PAD: the producer wrapped; the rest of the area is skipped.
                if self.head + contiguous > tail {
                    return Err(tampered("PAD marker past the tail"));
                }
                // Skipping frees ring space: if the producer sleeps waiting for
                // it, `advance` took its flag, and the caller must wake it (the
                // flag is gone, so the next advance would not). Dropping this
                // lost the wake-up and deadlocked a producer waiting for space.
                if self.advance(seg, contiguous) {
                    self.wake_owed = true;
                }
                continue;
            }
            return Ok(Some(Peeked { header, offset, contiguous, tail }));
        }
    }

    /// True (once) when a `peek` skipped a PAD marker while the producer was
    /// waiting for space: the caller must wake the producer, as after `advance`.
    pub fn take_owed_wake(&mut self) -> bool {
        std::mem::take(&mut self.wake_owed)
    }

    /// Checks that a frame of `sealed_len` bytes at `peeked` lies inside the
    /// published part of the ring and does not wrap, and reserves its pages.
    pub fn check_record(&mut self, seg: &Segment, peeked: &Peeked, sealed_len: usize) -> Result<u64> {
        let record = record_len(sealed_len);
        if record > peeked.contiguous || self.head + record > peeked.tail {
            return Err(tampered("frame runs past the published data"));
        }
        let pos = (peeked.offset - self.layout.data) as u64;
        self.layout.commit(seg, &mut self.committed, pos + record)?;
        Ok(record)
    }

    /// Consumes `record` bytes and publishes the new head. Returns true when the
    /// producer said it sleeps and must be woken now.
    ///
    /// While more than a quarter of the ring is still in use the wake-up is
    /// deferred (a producer woken now would find room for a record or two and
    /// sleep again, and on one core each wake-up is a pair of context switches):
    /// the flag stays set, and the caller must call
    /// [`take_deferred_wake`](Consumer::take_deferred_wake) before it stops
    /// reading (to wait for data, or to return a message).
    #[must_use = "when true the producer sleeps and must be woken"]
    pub fn advance(&mut self, seg: &Segment, record: u64) -> bool {
        self.head += record;
        seg.atomic_u64(self.layout.control + segment::HEAD).store(self.head, Ordering::Release);
        fence(Ordering::SeqCst);
        !self.defers_wake() && take_flag(seg, self.layout.control + segment::PRODUCER_WAITING)
    }

    /// True while more than a quarter of the ring is in use, as far as the tail
    /// last seen tells (an older tail only makes the wake-up come sooner).
    fn defers_wake(&self) -> bool {
        self.seen_tail.saturating_sub(self.head) > self.layout.capacity / 4
    }

    /// Takes the producer's waiting flag, if set, however full the ring is: a
    /// wake-up `advance` deferred is owed now, because this consumer stops
    /// reading. True when the producer must be woken.
    #[must_use = "when true the producer sleeps and must be woken"]
    pub fn take_deferred_wake(&self, seg: &Segment) -> bool {
        take_flag(seg, self.layout.control + segment::PRODUCER_WAITING)
    }

    /// Says this consumer is about to sleep until data arrives (a swap, as in
    /// `Producer::arm`).
    pub fn arm(&self, seg: &Segment) {
        seg.atomic_u32(self.layout.control + segment::CONSUMER_WAITING).swap(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Withdraws `arm` once data was found.
    pub fn disarm(&self, seg: &Segment) {
        seg.atomic_u32(self.layout.control + segment::CONSUMER_WAITING).store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::Backend;

    #[test]
    fn wraps_with_pad_and_validates_counters() {
        let seg = Segment::create(Backend::Memfd, 4096).unwrap();
        let mut p = Producer::new(0, 4096);
        let mut c = Consumer::new(0, 4096);
        // Fill with 1000-byte records: 4 fit (4064 bytes incl. alignment).
        let mut n = 0;
        while let Some(r) = p.reserve(&seg, 1000).unwrap() {
            let mut hdr = [0u8; 16];
            hdr[0] = 1;
            seg.write_bytes(r.offset, &hdr).unwrap();
            let _ = p.publish(&seg, r, true);
            n += 1;
        }
        assert_eq!(n, 4);
        let peeked = c.peek(&seg).unwrap().unwrap();
        let rec = c.check_record(&seg, &peeked, 1000).unwrap();
        let _ = c.advance(&seg, rec);
        // Next record wraps: PAD written, lands at the start.
        let r = p.reserve(&seg, 1000).unwrap().unwrap();
        assert_eq!(r.offset, segment::ring_data_offset(0, 4096));
        let mut hdr = [0u8; 16];
        hdr[0] = 1;
        seg.write_bytes(r.offset, &hdr).unwrap();
        let _ = p.publish(&seg, r, true);
        for _ in 0..3 {
            let pk = c.peek(&seg).unwrap().unwrap();
            let rec = c.check_record(&seg, &pk, 1000).unwrap();
            let _ = c.advance(&seg, rec);
        }
        let pk = c.peek(&seg).unwrap().unwrap();
        assert_eq!(pk.offset, segment::ring_data_offset(0, 4096));

        // A producer sleeping for space freed by skipping a PAD marker is owed a
        // wake-up (it was once lost, deadlocking a sender).
        assert!(!c.take_owed_wake(), "no producer was waiting when c skipped its PAD");
        let mut p2 = Producer::new(1, 4096);
        let mut c2 = Consumer::new(1, 4096);
        // Two 2000-byte records, then consume them: the next one must wrap.
        for _ in 0..2 {
            let r = p2.reserve(&seg, 2000).unwrap().unwrap();
            let mut hdr = [0u8; 16];
            hdr[0] = 1;
            seg.write_bytes(r.offset, &hdr).unwrap();
            let _ = p2.publish(&seg, r, true);
            let pk = c2.peek(&seg).unwrap().unwrap();
            let rec = c2.check_record(&seg, &pk, 2000).unwrap();
            let _ = c2.advance(&seg, rec);
        }
        let r = p2.reserve(&seg, 2000).unwrap().unwrap(); // PAD at 4032, record at 0
        seg.write_bytes(r.offset, &[1u8; 16]).unwrap();
        let _ = p2.publish(&seg, r, true);
        p2.arm(&seg); // the producer now sleeps, waiting for space
        let pk = c2.peek(&seg).unwrap().unwrap(); // skips the PAD
        assert_eq!(pk.offset, segment::ring_data_offset(1, 4096));
        // More than a quarter of the ring is still in use (the 2,000-byte
        // record), so the wake-up is deferred, not lost: the flag stays set for
        // the consumer to take when it stops reading.
        assert!(!c2.take_owed_wake());
        assert!(c2.take_deferred_wake(&seg), "the producer waiting for the PAD's space must still be woken");
        assert!(!c2.take_deferred_wake(&seg));

        // A tampered tail is caught, never followed.
        seg.atomic_u64(segment::ring_control_offset(0) + segment::TAIL).store(1 << 40, Ordering::SeqCst);
        assert_eq!(c.peek(&seg).unwrap_err().kind(), ErrorKind::ProtocolViolation);
        seg.atomic_u64(segment::ring_control_offset(0) + segment::HEAD).store(7, Ordering::SeqCst);
        assert_eq!(p.reserve(&seg, 10).unwrap_err().kind(), ErrorKind::ProtocolViolation);
    }

    #[test]
    fn the_producer_reads_the_head_again_only_when_the_room_it_saw_runs_out() {
        let seg = Segment::create(Backend::Memfd, 4096).unwrap();
        let mut p = Producer::new(0, 4096);
        let mut c = Consumer::new(0, 4096);
        let head = segment::ring_control_offset(0) + segment::HEAD;
        // 1,024-byte records: four fill the 4,096-byte ring.
        let _ = put(&seg, &mut p, 1024, true);
        let _ = take(&seg, &mut c, 1024);
        // A bad head is not read while the room the producer knows (from the
        // empty ring it started with) suffices: records go where they would.
        seg.atomic_u64(head).store(7, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = put(&seg, &mut p, 1024, true);
        }
        // Past that room it reads the head, and the bad value ends it.
        assert_eq!(p.reserve(&seg, 1024).unwrap_err().kind(), ErrorKind::ProtocolViolation);
        // A good head read then gives the room it frees; a stale one never
        // gives more than there is.
        let mut p = Producer::new(1, 4096);
        let mut c = Consumer::new(1, 4096);
        for _ in 0..4 {
            let _ = put(&seg, &mut p, 1024, true);
        }
        assert!(p.reserve(&seg, 1024).unwrap().is_none(), "a full ring has no room");
        let _ = take(&seg, &mut c, 1024);
        assert!(p.reserve(&seg, 1024).unwrap().is_some(), "the freed record's room is seen");
    }

    /// Bytes of the segment's memfd that hold pages.
    fn reserved_bytes(seg: &Segment) -> u64 {
        let st = rustix::fs::fstat(seg.memfd().expect("a memfd segment")).unwrap();
        st.st_blocks as u64 * 512
    }

    #[test]
    fn ring_pages_are_reserved_as_they_come_into_use() {
        const RING: u32 = 256 * 1024;
        let seg = Segment::create(Backend::Memfd, RING).unwrap();
        assert_eq!(reserved_bytes(&seg), segment::DATA_OFFSET as u64, "a new segment reserves its header only");
        let (mut p, mut c) = (Producer::new(0, RING), Consumer::new(0, RING));
        // The first small message reserves one page on each side (a
        // short-lived connection costs no more).
        let _ = put(&seg, &mut p, 1000, true);
        let _ = take(&seg, &mut c, 1000);
        assert_eq!((p.committed, c.committed), (FIRST_COMMIT, FIRST_COMMIT));
        assert_eq!(reserved_bytes(&seg), segment::DATA_OFFSET as u64 + FIRST_COMMIT);
        // Small messages, one at a time, for several times the ring: the
        // producer starts again at the beginning instead of reserving more.
        for _ in 0..(4 * RING / 1024) {
            p.begin_message(&seg, [1000].into_iter()).unwrap();
            let _ = put(&seg, &mut p, 1000, true);
            let _ = take(&seg, &mut c, 1000);
        }
        assert_eq!(p.committed, COMMIT_STEP);
        assert_eq!(c.committed, COMMIT_STEP);
        assert_eq!(reserved_bytes(&seg), segment::DATA_OFFSET as u64 + COMMIT_STEP);
        // With records still in the ring it cannot start again: it reserves more.
        let _ = put(&seg, &mut p, 1000, true);
        for _ in 0..(COMMIT_STEP / 1024) {
            p.begin_message(&seg, [1000].into_iter()).unwrap();
            let _ = put(&seg, &mut p, 1000, true);
        }
        assert_eq!(p.committed, 2 * COMMIT_STEP);
        // A ring kept full reserves all of it, and no more.
        while let Some(r) = p.reserve(&seg, 16000).unwrap() {
            seg.write_bytes(r.offset, &[1u8; 16]).unwrap();
            let _ = p.publish(&seg, r, true);
            let _ = take(&seg, &mut c, 1000);
        }
        assert_eq!(p.committed, u64::from(RING));
        assert_eq!(reserved_bytes(&seg), segment::DATA_OFFSET as u64 + u64::from(RING));
    }

    #[test]
    fn small_messages_return_to_the_first_step_after_large_ones() {
        const RING: u32 = 256 * 1024;
        let seg = Segment::create(Backend::Memfd, RING).unwrap();
        let (mut p, mut c) = (Producer::new(0, RING), Consumer::new(0, RING));
        // One large message (ten fragments) takes the ring past its first step...
        p.begin_message(&seg, [16000; 10].into_iter()).unwrap();
        for i in 0..10 {
            let _ = put(&seg, &mut p, 16000, i == 9);
            let _ = take(&seg, &mut c, 16000);
        }
        assert!(p.tail % u64::from(RING) > COMMIT_STEP);
        // ...then small ones, one at a time, start again at the beginning and
        // stay in the first step, for several times the ring.
        for _ in 0..(4 * RING / 1024) {
            p.begin_message(&seg, [1000].into_iter()).unwrap();
            let _ = put(&seg, &mut p, 1000, true);
            assert!(p.tail % u64::from(RING) <= COMMIT_STEP, "a small message ran past the first step");
            let _ = take(&seg, &mut c, 1000);
        }
        // With a record still in the ring, a message goes on in place.
        let _ = put(&seg, &mut p, 1000, true);
        let before = p.tail;
        p.begin_message(&seg, [COMMIT_STEP as usize].into_iter()).unwrap();
        assert_eq!(p.tail, before, "a ring that is not empty is not started again");
    }

    #[test]
    fn a_consumer_reserves_what_it_reads_even_where_the_producer_did_not() {
        const RING: u32 = 256 * 1024;
        let seg = Segment::create(Backend::Memfd, RING).unwrap();
        let mut c = Consumer::new(1, RING);
        // A peer publishes records up to 200 KiB and beyond, past anything
        // reserved, without reserving them (as a hostile or careless one may).
        let at = 200 * 1024u64;
        let pad = segment::ring_data_offset(1, RING);
        seg.write_bytes(pad, &[1u8; 16]).unwrap();
        seg.atomic_u64(segment::ring_control_offset(1) + segment::TAIL).store(at + 1024, Ordering::Release);
        // The consumer reads the first record (1024 bytes at 0): one page.
        let pk = c.peek(&seg).unwrap().unwrap();
        let rec = c.check_record(&seg, &pk, 1024).unwrap();
        let _ = c.advance(&seg, rec);
        assert_eq!(c.committed, FIRST_COMMIT);
        // Jump the consumer's head as if it had read up to `at`.
        c.head = at;
        seg.atomic_u64(segment::ring_control_offset(1) + segment::HEAD).store(at, Ordering::Release);
        // What it finds there is zeros (a PAD marker running past the tail: an
        // error), read from a page it reserved first.
        let before = reserved_bytes(&seg);
        c.peek(&seg).unwrap_err();
        assert!(c.committed > at, "the header's page is reserved before it is read");
        assert!(reserved_bytes(&seg) > before);
    }

    /// Writes a record of `len` sealed bytes (a non-PAD header) and publishes it.
    fn put(seg: &Segment, p: &mut Producer, len: usize, last: bool) -> bool {
        let r = p.reserve(seg, len).unwrap().expect("room");
        seg.write_bytes(r.offset, &[1u8; 16]).unwrap();
        p.publish(seg, r, last)
    }

    /// Consumes the next record of `len` sealed bytes.
    fn take(seg: &Segment, c: &mut Consumer, len: usize) -> bool {
        let pk = c.peek(seg).unwrap().expect("a record");
        let rec = c.check_record(seg, &pk, len).unwrap();
        c.advance(seg, rec)
    }

    #[test]
    fn a_sleeping_consumer_is_woken_once_half_the_ring_or_a_message_end_is_in() {
        let seg = Segment::create(Backend::Memfd, 4096).unwrap();
        let mut p = Producer::new(0, 4096);
        let c = Consumer::new(0, 4096);
        c.arm(&seg);
        // 1,024 bytes of a message in a 4,096-byte ring: a consumer woken now
        // could deliver nothing, so the wake-up waits and the flag stays set.
        assert!(!put(&seg, &mut p, 1024, false));
        // Half the ring: woken (and the flag taken).
        assert!(put(&seg, &mut p, 1024, false));
        assert!(!p.take_deferred_wake(&seg), "the flag was taken with the wake-up");
        // The end of a message wakes at once, however little is in.
        let mut p = Producer::new(1, 4096);
        let c = Consumer::new(1, 4096);
        c.arm(&seg);
        assert!(put(&seg, &mut p, 64, true));
        // A deferred wake-up is owed when the producer stops (to wait, or to
        // return with the message unfinished).
        c.arm(&seg);
        assert!(!put(&seg, &mut p, 64, false));
        assert!(p.take_deferred_wake(&seg));
        assert!(!p.take_deferred_wake(&seg), "one wake-up per setting of the flag");
    }

    #[test]
    fn a_sleeping_producer_is_woken_once_three_quarters_are_free_or_the_consumer_stops() {
        let seg = Segment::create(Backend::Memfd, 4096).unwrap();
        let mut p = Producer::new(0, 4096);
        let mut c = Consumer::new(0, 4096);
        for _ in 0..4 {
            let _ = put(&seg, &mut p, 1024, false);
        }
        assert!(p.reserve(&seg, 16).unwrap().is_none(), "the ring is full");
        p.arm(&seg);
        // 3,072 then 2,048 bytes still in use: the producer would find room for
        // little, so the wake-up waits.
        assert!(!take(&seg, &mut c, 1024));
        assert!(!take(&seg, &mut c, 1024));
        // A quarter in use: woken.
        assert!(take(&seg, &mut c, 1024));
        // A consumer that stops reading owes the deferred wake-up.
        for _ in 0..3 {
            let _ = put(&seg, &mut p, 1024, false);
        }
        p.arm(&seg);
        assert!(!take(&seg, &mut c, 1024));
        assert!(c.take_deferred_wake(&seg));
        assert!(!c.take_deferred_wake(&seg));
    }
}
