//! Reused blocks for large received messages.
//!
//! A fresh allocation per large message costs a minor page fault per 4 KiB
//! when it is decrypted into (glibc maps large blocks anew and trims the
//! heap when the garbage collector frees many at once): for 64 KiB and 1 MiB
//! messages that, not the decryption, bounded `recv()`. So a message of
//! [`POOL_MIN`] bytes or more is received into a block of a power-of-two
//! size class, handed to JavaScript as an external Buffer, and its finalizer
//! gives the block back here, where the next message of that class takes it,
//! its pages already mapped. A Buffer the user keeps keeps its block: only
//! collected ones come back. At most [`RETAIN_MAX`] bytes of free blocks are
//! kept (the excess is freed), so memory stays bounded; the blocks out in
//! JavaScript are the user's, as any Buffer.

use std::sync::Mutex;

use shmsock::{Error as CoreError, ErrorKind, RecvBuf};

use crate::dispatch::lock;

/// Messages shorter than this come from the allocator as before (its small
/// blocks are reused without page faults).
pub(crate) const POOL_MIN: usize = 32 << 10;
/// Bytes of free blocks kept for reuse. The garbage collector frees Buffers
/// in batches (tens of MiB of external memory between collections), so the
/// pool must hold a batch for the next one to find its blocks mapped.
const RETAIN_MAX: usize = 128 << 20;
/// Size classes: 2^15 .. 2^30 bytes.
const CLASSES: usize = 16;

struct Pool {
    free: [Vec<Vec<u8>>; CLASSES],
    retained: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { free: [const { Vec::new() }; CLASSES], retained: 0 });

/// The class of a block of `capacity` bytes, if it is one of ours.
fn class_of_capacity(capacity: usize) -> Option<usize> {
    if capacity < POOL_MIN || !capacity.is_power_of_two() {
        return None;
    }
    let class = (capacity.trailing_zeros() - POOL_MIN.trailing_zeros()) as usize;
    (class < CLASSES).then_some(class)
}

/// A block of at least `len` bytes (`len >= POOL_MIN`) holding `len` bytes,
/// reused when one is free; None when the allocator refuses.
fn take(len: usize) -> Option<Vec<u8>> {
    let capacity = len.checked_next_power_of_two()?;
    let reused = class_of_capacity(capacity).and_then(|class| {
        let mut pool = lock(&POOL);
        let block = pool.free[class].pop()?;
        pool.retained -= block.capacity();
        Some(block)
    });
    let mut block = match reused {
        Some(block) => block,
        None => {
            let mut block = Vec::new();
            block.try_reserve_exact(capacity).ok()?;
            block
        }
    };
    // Writes only bytes past the block's last length: none for a block reused
    // by a message of its size, the usual case.
    block.resize(len, 0);
    Some(block)
}

/// Takes `block` back for reuse if it is a pool block and the pool has room;
/// else frees it.
pub(crate) fn give_back(block: Vec<u8>) {
    let Some(class) = class_of_capacity(block.capacity()) else { return };
    let mut pool = lock(&POOL);
    if pool.retained + block.capacity() <= RETAIN_MAX {
        pool.retained += block.capacity();
        pool.free[class].push(block);
    }
}

/// Bytes of free blocks the pool holds now (for tests).
#[cfg(test)]
fn retained() -> usize {
    lock(&POOL).retained
}

/// Where a receive puts a message: a pool block for a large one, else a
/// vector of its size. Dropped unused (a receive that failed), its block goes
/// back to the pool.
#[derive(Default)]
pub(crate) struct Incoming(Vec<u8>);

impl Incoming {
    /// The message received.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

impl RecvBuf for Incoming {
    fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
        if len < POOL_MIN {
            return self.0.prepare(len);
        }
        if self.0.capacity() >= len && class_of_capacity(self.0.capacity()).is_some() {
            // A receive retried on the same message: the same block again.
            self.0.resize(len, 0);
            return Ok(());
        }
        let block = take(len).ok_or_else(|| {
            CoreError::new(ErrorKind::ResourceExhausted, format!("out of memory allocating {len} bytes for a message"))
        })?;
        give_back(std::mem::replace(&mut self.0, block));
        Ok(())
    }

    fn bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }

    // A message trickled over many receives stays in its block between them.
    fn detach(&mut self, _len: usize) -> Option<Vec<u8>> {
        Some(std::mem::take(&mut self.0))
    }

    fn take_back(&mut self, bytes: &mut Vec<u8>) -> bool {
        give_back(std::mem::replace(&mut self.0, std::mem::take(bytes)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the pool is process-wide, and parallel tests would race on it.
    #[test]
    fn blocks_are_reused_bounded_and_sized_by_class() {
        let mut a = Incoming::default();
        a.prepare(100).unwrap();
        assert_eq!(a.bytes().len(), 100);
        let small = a.into_vec();
        give_back(small);
        assert_eq!(retained(), 0, "small vectors are not pooled");

        let mut b = Incoming::default();
        b.prepare(POOL_MIN + 1).unwrap();
        let block = b.into_vec();
        assert_eq!(block.len(), POOL_MIN + 1);
        assert_eq!(block.capacity(), 2 * POOL_MIN);
        let ptr = block.as_ptr();
        give_back(block);
        assert_eq!(retained(), 2 * POOL_MIN);

        // The next message of that class gets the same memory.
        let mut c = Incoming::default();
        c.prepare(2 * POOL_MIN).unwrap();
        assert_eq!(c.bytes().as_ptr(), ptr);
        assert_eq!(retained(), 0);
        // Dropped unused (a failed receive): back to the pool.
        drop(c);
        assert_eq!(retained(), 2 * POOL_MIN);

        // Never more than RETAIN_MAX kept.
        let big = 64 << 20;
        let blocks: Vec<_> = (0..4).map(|_| take(big).unwrap()).collect();
        blocks.into_iter().for_each(give_back);
        assert!(retained() <= RETAIN_MAX);
        assert_eq!(retained(), 2 * POOL_MIN + big);
    }
}
