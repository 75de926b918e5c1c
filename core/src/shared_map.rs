//! A mapping of a whole memfd shared with another process, writable or
//! read-only, and every access to its bytes: bounds-checked whole copies,
//! atomics at fixed offsets, and sealing a message straight into it.
//!
//! Used by publish/subscribe (`crate::pubsub`) for the broadcast segment (the
//! publisher maps it writable, subscribers read-only) and the per-subscriber
//! cursor segment (the other way round). As in `segment`, the bytes are
//! untrusted: no Rust reference to them is ever formed except to atomics, and
//! callers validate every value they read. A read-only mapping is never
//! written: the store methods refuse it, so a bug cannot fault.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::platform;
use crate::sodium::Aead;

/// A mapped shared-memory file.
pub struct SharedMap {
    base: *mut u8,
    len: usize,
    writable: bool,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory valid for the map's lifetime; all
// access goes through atomics or whole copies, sound from any thread (another
// writer can only change the values read, which callers validate).
unsafe impl Send for SharedMap {}
// SAFETY: as above; no method hands out references to non-atomic shared bytes.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Maps all `len` bytes of `fd`, shared, writable or read-only.
    pub fn map(fd: OwnedFd, len: usize, writable: bool) -> Result<SharedMap> {
        if len == 0 || len % 64 != 0 {
            return Err(Error::new(ErrorKind::ProtocolViolation, "a shared segment has an unusable size"));
        }
        let prot = if writable {
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE
        } else {
            rustix::mm::ProtFlags::READ
        };
        // SAFETY: a fresh shared mapping of a file we hold open, whose size the
        // caller checked (and sealed against shrinking); the kernel picks the
        // address, so no existing memory is affected.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, rustix::mm::MapFlags::SHARED, fd.as_fd(), 0) }
                .map_err(|e| platform::os_error("mapping a shared segment", e))?;
        Ok(SharedMap { base: ptr.cast(), len, writable, fd })
    }

    /// The mapped file.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    #[inline]
    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::new(ErrorKind::ProtocolViolation, "an access fell outside the shared segment")),
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::InvalidArgument, "write to a read-only shared segment"))
        }
    }

    #[inline]
    fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_range(offset, 8)?;
        if offset % 8 != 0 {
            return Err(Error::new(ErrorKind::InvalidArgument, "misaligned shared u64"));
        }
        // SAFETY: in bounds and 8-aligned (mappings are page aligned); the
        // mapping lives as long as self. Atomics are the one kind of reference
        // that is sound to memory other processes write; loads of a native-width
        // atomic are plain loads, sound on a read-only mapping too.
        Ok(unsafe { AtomicU64::from_ptr(self.base.add(offset).cast()) })
    }

    #[inline]
    fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_range(offset, 4)?;
        if offset % 4 != 0 {
            return Err(Error::new(ErrorKind::InvalidArgument, "misaligned shared u32"));
        }
        // SAFETY: as for atomic_u64.
        Ok(unsafe { AtomicU32::from_ptr(self.base.add(offset).cast()) })
    }

    /// Loads the u64 at `offset` once.
    #[inline]
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        Ok(self.atomic_u64(offset)?.load(order))
    }

    /// Loads the u32 at `offset` once.
    #[inline]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        Ok(self.atomic_u32(offset)?.load(order))
    }

    /// Stores the u64 at `offset` (writable mappings only).
    #[inline]
    pub fn store_u64(&self, offset: usize, value: u64, order: Ordering) -> Result<()> {
        self.check_writable()?;
        self.atomic_u64(offset)?.store(value, order);
        Ok(())
    }

    /// Stores the u32 at `offset` (writable mappings only).
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<()> {
        self.check_writable()?;
        self.atomic_u32(offset)?.store(value, order);
        Ok(())
    }

    /// Copies `dst.len()` bytes at `offset` into private memory. The bytes may
    /// change while they are copied; callers validate the copy.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.check_range(offset, dst.len())?;
        // SAFETY: the source range is inside the mapping (checked) and dst is
        // private memory, so they cannot overlap. A concurrent writer can only
        // change which bytes are copied, never where.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(offset), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies private bytes into the mapping at `offset` (writable only).
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_range(offset, src.len())?;
        // SAFETY: the destination is inside a writable mapping (checked) and src
        // is private memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(offset), src.len()) };
        Ok(())
    }

    /// Seals `plaintext` with `aead` (key, nonce counter `n`, associated data
    /// `ad`) into the mapping at `offset`: ciphertext, then the tag. AEGIS-128L
    /// writes straight into the mapping (it never reads its output back);
    /// ChaCha20-Poly1305 seals into `scratch` first, since libsodium reads its
    /// ciphertext back to compute the tag.
    #[allow(clippy::too_many_arguments)]
    pub fn seal_at(
        &self,
        offset: usize,
        aead: Aead,
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        plaintext: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        self.check_writable()?;
        let tag = aead.tag_len();
        self.check_range(offset, plaintext.len() + tag)?;
        match aead {
            Aead::Aegis128L => {
                // SAFETY: the whole output range is inside a writable mapping
                // (checked); the inputs are private slices, which cannot overlap
                // it (nothing maps the broadcast segment twice in one process).
                unsafe {
                    let out = self.base.add(offset);
                    aead.seal_raw(key, n, ad, plaintext, out, out.add(plaintext.len()));
                }
                Ok(())
            }
            Aead::ChaCha20Poly1305 => {
                scratch.clear();
                scratch.resize(plaintext.len() + tag, 0);
                let (ct, tg) = scratch.split_at_mut(plaintext.len());
                aead.seal(key, n, ad, plaintext, ct, tg);
                self.write_bytes(offset, scratch)
            }
        }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: base/len describe the mapping made in `map`; nothing refers to
        // it after drop (atomics borrowed from self are gone).
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}
