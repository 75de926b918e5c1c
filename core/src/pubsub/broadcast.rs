//! The broadcast segment of a topic: its byte layout, the publisher's writes and
//! the subscribers' seqlock-checked reads.
//!
//! Layout (PROTOCOL.md, "Broadcast segment"), all little-endian:
//!
//! ```text
//! 0x0000  magic "shmspub\0", u32 layout version (1), u32 slot count, u32 slot size,
//!         u32 max message, u64 total size, u8 cipher id, zeros to 0x80
//! 0x0080  write_seq u64: the number of messages published (the next sequence)
//! 0x0100  publisher_waiting u32: the publisher's sleep word (reliable topics)
//! 0x1000  slot 0, slot 1, ... (slot count x slot size bytes)
//! ```
//! Slot: stamp u64 (+0), epoch u64 (+8), length u32 (+16), zero u32 (+20),
//! ciphertext then tag (+24). Message `seq` goes to slot `seq mod slot count`.
//! The stamp is `2*seq + 1` while the publisher writes the slot and `2*seq + 2`
//! once message `seq` is complete (0: never written). A reader of message `seq`
//! loads the stamp, copies the slot out, loads the stamp again: only if both
//! are `2*seq + 2` is the copy message `seq`, whole; a larger stamp means the
//! ring overwrote it (lag), a smaller one that it is not published yet.
//!
//! Only the publisher can write this segment (a memfd sealed FUTURE_WRITE after
//! the publisher mapped it); every value read here is still validated, since the
//! publisher may be hostile.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};

use crate::cipher::CipherSuite;
use crate::error::{Error, ErrorKind, Result};
use crate::platform;
use crate::shared_map::SharedMap;

use super::group_key::{message_ad, GroupKey};

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 8] = *b"shmspub\0";
/// The layout version.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes of the header fields (magic to cipher id).
pub const HEADER_LEN: usize = 0x21;
/// Offset of `write_seq`.
pub const WRITE_SEQ: usize = 0x80;
/// Offset of the publisher's sleep word.
pub const PUBLISHER_WAITING: usize = 0x100;
/// Offset of slot 0.
pub const SLOTS_OFFSET: usize = 0x1000;
/// Bytes of a slot's header (stamp, epoch, length, zero).
pub const SLOT_HEADER: usize = 24;
/// Most slots a topic may have.
pub const MAX_SLOTS: u32 = 1 << 16;
/// Largest total segment size accepted (1 GiB of slots).
pub const MAX_SLOTS_BYTES: u64 = 1 << 30;

/// The shape of a topic's ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots (a power of two, 2 to 65536).
    pub slots: u32,
    /// Largest plaintext message.
    pub max_message: u32,
    /// The AEAD.
    pub suite: CipherSuite,
}

impl Geometry {
    /// Bytes per slot: header, message, tag, rounded up to 64.
    pub fn slot_size(&self) -> u64 {
        (SLOT_HEADER as u64 + u64::from(self.max_message) + self.suite.tag_len() as u64).div_ceil(64) * 64
    }

    /// Total segment bytes.
    pub fn total(&self) -> u64 {
        SLOTS_OFFSET as u64 + u64::from(self.slots) * self.slot_size()
    }

    /// Checks the shape is allowed.
    pub fn validate(&self) -> Result<()> {
        if !self.slots.is_power_of_two() || !(2..=MAX_SLOTS).contains(&self.slots) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a topic needs a power-of-two number of slots from 2 to {MAX_SLOTS} (got {})", self.slots),
            ));
        }
        if u64::from(self.slots) * self.slot_size() > MAX_SLOTS_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{} slots of {} bytes exceed the 1 GiB a topic's ring may take; use fewer slots or a smaller max message size",
                    self.slots,
                    self.slot_size()
                ),
            ));
        }
        Ok(())
    }

    fn slot_offset(&self, seq: u64) -> usize {
        SLOTS_OFFSET + (seq & u64::from(self.slots - 1)) as usize * self.slot_size() as usize
    }
}

/// The segment header the publisher writes (bytes 0x00 to 0x20).
pub fn header_bytes(geometry: &Geometry) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&geometry.slots.to_le_bytes());
    header[16..20].copy_from_slice(&(geometry.slot_size() as u32).to_le_bytes());
    header[20..24].copy_from_slice(&geometry.max_message.to_le_bytes());
    header[24..32].copy_from_slice(&geometry.total().to_le_bytes());
    header[32] = geometry.suite.id();
    header
}

/// What a read of one slot found.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRead {
    /// Message `seq`, whole, copied out: its epoch and length (the sealed bytes
    /// are in the caller's buffer).
    Ready {
        /// The epoch of its key.
        epoch: u64,
        /// Plaintext length.
        len: u32,
    },
    /// Not published yet (or being written right now).
    NotYet,
    /// Overwritten by a later message before or while it was read.
    Overwritten,
}

/// A mapped broadcast segment.
pub struct Broadcast {
    map: SharedMap,
    geometry: Geometry,
}

impl Broadcast {
    /// Creates the segment (publisher): maps it writable, writes the header,
    /// then seals it so that no one else can ever write it.
    pub fn create(geometry: Geometry) -> Result<Broadcast> {
        geometry.validate()?;
        let total = geometry.total();
        let fd = platform::create_writer_memfd(total)?;
        let map = SharedMap::map(fd, total as usize, true)?;
        platform::seal_future_write(map.fd())?;
        let header = header_bytes(&geometry);
        map.write_bytes(0, &header)?;
        Ok(Broadcast { map, geometry })
    }

    /// Maps a broadcast segment received from the publisher (subscriber): checks
    /// every seal, maps it read-only, and checks the header against the size and
    /// the negotiated cipher. Returns the segment and its geometry.
    pub fn open(fd: OwnedFd, suite: CipherSuite) -> Result<Broadcast> {
        let size = platform::check_read_only_memfd(fd.as_fd(), "broadcast segment")?;
        let bad = |what: &str| {
            Error::new(ErrorKind::ProtocolViolation, format!("the publisher's broadcast segment is unusable: {what}"))
        };
        if !(SLOTS_OFFSET as u64 + 128..=SLOTS_OFFSET as u64 + MAX_SLOTS_BYTES).contains(&size) {
            return Err(bad("its size is out of range"));
        }
        let map = SharedMap::map(fd, size as usize, false)?;
        let mut header = [0u8; HEADER_LEN];
        map.copy_out(0, &mut header)?;
        let u32_at = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let mut total = [0u8; 8];
        total.copy_from_slice(&header[24..32]);
        if header[..8] != MAGIC || u32_at(8) != LAYOUT_VERSION {
            return Err(bad("wrong magic or layout version"));
        }
        if header[32] != suite.id() {
            return Err(bad("its cipher differs from the one negotiated"));
        }
        let geometry = Geometry { slots: u32_at(12), max_message: u32_at(20), suite };
        geometry.validate().map_err(|e| bad(e.message()))?;
        if u64::from(u32_at(16)) != geometry.slot_size()
            || u64::from_le_bytes(total) != size
            || geometry.total() != size
        {
            return Err(bad("its header does not match its size"));
        }
        Ok(Broadcast { map, geometry })
    }

    /// The shape of the ring.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The memfd (publisher side: reopen it read-only before passing it on).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd()
    }

    /// The number of messages published, as the segment says (untrusted on the
    /// subscriber side).
    pub fn write_seq(&self) -> Result<u64> {
        self.map.load_u64(WRITE_SEQ, Ordering::Acquire)
    }

    /// The publisher's sleep word.
    pub fn publisher_waiting(&self) -> Result<u32> {
        self.map.load_u32(PUBLISHER_WAITING, Ordering::SeqCst)
    }

    /// Sets the publisher's sleep word (publisher).
    pub fn set_publisher_waiting(&self, word: u32) -> Result<()> {
        self.map.store_u32(PUBLISHER_WAITING, word, Ordering::SeqCst)?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// `len` as a slot's length field, or MessageTooLarge over the topic's limit.
    pub fn check_len(&self, len: usize) -> Result<u32> {
        u32::try_from(len).ok().filter(|l| *l <= self.geometry.max_message).ok_or_else(|| {
            Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "a message of {len} bytes is larger than the topic's max message size of {} bytes; nothing was published",
                    self.geometry.max_message
                ),
            )
        })
    }

    /// Writes message `seq` sealed under `key` into its slot and publishes it
    /// (publisher). The caller made sure the slot may be overwritten.
    pub fn write(&self, seq: u64, key: &GroupKey, message: &[u8], scratch: &mut Vec<u8>) -> Result<()> {
        let len = self.check_len(message.len())?;
        let stamp_end = seq
            .checked_mul(2)
            .and_then(|s| s.checked_add(2))
            .ok_or_else(|| Error::new(ErrorKind::ProtocolViolation, "the topic used every sequence number"))?;
        let off = self.geometry.slot_offset(seq);
        self.map.store_u64(off, stamp_end - 1, Ordering::Relaxed)?;
        // Orders the odd stamp before the slot's new bytes (seqlock writer).
        fence(Ordering::Release);
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&key.epoch.to_le_bytes());
        header[8..12].copy_from_slice(&len.to_le_bytes());
        self.map.write_bytes(off + 8, &header)?;
        let ad = message_ad(seq, key.epoch, len);
        self.map.seal_at(off + SLOT_HEADER, key.suite.aead(), key.key.expose(), seq, &ad, message, scratch)?;
        self.map.store_u64(off, stamp_end, Ordering::Release)?;
        self.map.store_u64(WRITE_SEQ, seq + 1, Ordering::Release)?;
        // Pairs with a subscriber's fence between arming its sleep word and
        // looking at the ring again: one of the two sees the other.
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Writes raw bytes (publisher; see `Publisher::tamper`).
    pub(crate) fn tamper(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.map.write_bytes(offset, bytes)
    }

    /// True when message `seq` looks published (its slot's stamp says so, or a
    /// later one): a cheap check for waiting.
    pub fn looks_ready(&self, seq: u64) -> Result<bool> {
        let stamp = self.map.load_u64(self.geometry.slot_offset(seq), Ordering::Acquire)?;
        Ok(stamp >= seq.saturating_mul(2).saturating_add(2))
    }

    /// Copies message `seq` out (subscriber): the sealed bytes go to `sealed`.
    /// Validates the length before copying and the stamp after.
    pub fn read(&self, seq: u64, sealed: &mut Vec<u8>) -> Result<SlotRead> {
        let want = seq.saturating_mul(2).saturating_add(2);
        let off = self.geometry.slot_offset(seq);
        let first = self.map.load_u64(off, Ordering::Acquire)?;
        if first < want {
            return Ok(SlotRead::NotYet);
        }
        if first > want {
            return Ok(SlotRead::Overwritten);
        }
        let mut header = [0u8; 16];
        self.map.copy_out(off + 8, &mut header)?;
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&header[..8]);
        let epoch = u64::from_le_bytes(epoch);
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let tag = self.geometry.suite.tag_len();
        let fits = len <= self.geometry.max_message && header[12..].iter().all(|b| *b == 0);
        if fits {
            sealed.clear();
            sealed.resize(len as usize + tag, 0);
            self.map.copy_out(off + SLOT_HEADER, sealed)?;
        }
        // Orders the copies before the second look at the stamp (seqlock reader).
        fence(Ordering::Acquire);
        let second = self.map.load_u64(off, Ordering::Relaxed)?;
        if second != first {
            return Ok(SlotRead::Overwritten);
        }
        if !fits {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                format!("published message {seq} claims {len} bytes, more than the topic's maximum; the subscription is closed"),
            ));
        }
        Ok(SlotRead::Ready { epoch, len })
    }
}
