//! A subscriber's cursor segment: the one page of shared memory the subscriber
//! alone writes and the publisher reads, holding where the subscriber is and
//! whether it sleeps.
//!
//! Layout (PROTOCOL.md, "Cursor segment"), 4096 bytes, little-endian:
//! `position` u64 at 0x00 (the sequence number of the next message the
//! subscriber will read), `sleep` u32 at 0x100 (its sleep word), zeros elsewhere.
//! The two fields are 256 bytes apart, beyond the pairs of lines CPUs prefetch together: the publisher polls the sleep
//! word after every message, and reads the position only when a reliable ring
//! looks full.
//!
//! A sleep word is `2n + 1` while the subscriber sleeps for the n-th time and
//! `2n` when awake. The publisher, which cannot write here, remembers the last
//! word it answered and wakes a sleeper once per sleep. The publisher's own
//! sleep word in the broadcast segment works the same way.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::platform;
use crate::shared_map::SharedMap;

/// Size of a cursor segment.
pub const CURSOR_SIZE: usize = 4096;
/// Offset of the position.
pub const POSITION: usize = 0x00;
/// Offset of the sleep word.
pub const SLEEP: usize = 0x100;

/// A sleep word's state, kept by the side that sleeps.
#[derive(Debug, Default)]
pub struct SleepWord {
    sleeps: u32,
}

impl SleepWord {
    /// The word for "asleep" (a new sleep).
    pub fn arm(&mut self) -> u32 {
        self.sleeps = self.sleeps.wrapping_add(1) & 0x7fff_ffff;
        self.sleeps << 1 | 1
    }

    /// The word for "awake".
    pub fn disarm(&self) -> u32 {
        self.sleeps << 1
    }
}

/// Whether to wake a side whose sleep word is `word`, given the word last
/// answered; records the answer.
pub fn should_wake(word: u32, last_answered: &mut u32) -> bool {
    if word & 1 == 1 && word != *last_answered {
        *last_answered = word;
        true
    } else {
        false
    }
}

/// A mapped cursor segment.
pub struct Cursor {
    map: SharedMap,
}

impl Cursor {
    /// Creates a cursor (subscriber) at `position`, writable here and sealed so
    /// that nobody else can write it.
    pub fn create() -> Result<Cursor> {
        let fd = platform::create_writer_memfd(CURSOR_SIZE as u64)?;
        let map = SharedMap::map(fd, CURSOR_SIZE, true)?;
        platform::seal_future_write(map.fd())?;
        Ok(Cursor { map })
    }

    /// Maps a subscriber's cursor (publisher): every seal checked, read-only.
    pub fn open(fd: OwnedFd) -> Result<Cursor> {
        let size = platform::check_read_only_memfd(fd.as_fd(), "cursor segment")?;
        if size != CURSOR_SIZE as u64 {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                format!("the subscriber passed a cursor segment of {size} bytes, not {CURSOR_SIZE}"),
            ));
        }
        Ok(Cursor { map: SharedMap::map(fd, CURSOR_SIZE, false)? })
    }

    /// The memfd, to pass to the publisher.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd()
    }

    /// The position, read once (untrusted on the publisher side).
    #[inline]
    pub fn position(&self) -> Result<u64> {
        self.map.load_u64(POSITION, Ordering::Acquire)
    }

    /// Records the position (subscriber).
    #[inline]
    pub fn set_position(&self, position: u64) -> Result<()> {
        self.map.store_u64(POSITION, position, Ordering::Release)
    }

    /// The sleep word, read once.
    #[inline]
    pub fn sleep_word(&self) -> Result<u32> {
        self.map.load_u32(SLEEP, Ordering::SeqCst)
    }

    /// Sets the sleep word (subscriber), fenced so that a later look at the
    /// ring and the publisher's look at this word cannot both miss.
    pub fn set_sleep_word(&self, word: u32) -> Result<()> {
        self.map.store_u32(SLEEP, word, Ordering::SeqCst)?;
        fence(Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_words_wake_once_per_sleep() {
        let mut w = SleepWord::default();
        let mut answered = 0;
        let a = w.arm();
        assert!(should_wake(a, &mut answered));
        assert!(!should_wake(a, &mut answered));
        assert!(!should_wake(w.disarm(), &mut answered));
        assert!(should_wake(w.arm(), &mut answered));
    }

    #[test]
    fn cursor_is_read_only_for_the_reader() {
        let c = Cursor::create().unwrap();
        c.set_position(7).unwrap();
        let fd = platform::reopen_read_only(c.fd()).unwrap();
        let theirs = Cursor::open(fd).unwrap();
        assert_eq!(theirs.position().unwrap(), 7);
        assert_eq!(theirs.set_position(1).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
}
