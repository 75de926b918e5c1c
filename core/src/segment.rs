//! The shared-memory segment of a connection: its byte layout, its two backends
//! (sealed memfd, named POSIX object), and every access to its bytes.
//!
//! The segment is untrusted: the peer, or anyone else who gets at it, may write any
//! byte at any moment. So this module never forms a Rust reference to its bytes
//! (other than to atomics), bounds-checks every offset against the mapping, and
//! only offers whole copies in and out; validation of what is read is the job of
//! `ring` and `frame`. This and `sodium` are the only modules with `unsafe` code
//! touching memory shared with another process.
//!
//! Layout (PROTOCOL.md, "Shared-memory segment"), all little-endian:
//!
//! ```text
//! 0x0000  segment header: magic "shmsock\0", u32 layout version, u32 ring size, u64 total size
//! 0x0080  ring 0 control (client -> server)   0x0200 bytes
//! 0x0280  ring 1 control (server -> client)   0x0200 bytes
//! 0x1000  ring 0 data (ring size bytes), then ring 1 data (ring size bytes)
//! ```
//! Ring control, at its base: tail u64 (+0x000), head u64 (+0x080),
//! consumer_waiting u32 (+0x100), producer_waiting u32 (+0x180): each on its own
//! 128-byte line so the two processes never write the same line in steady state.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{FrameHeader, FrameOpener, FrameSealer, Opened, HEADER_LEN};
use crate::handshake::{validate_ring_size, Backend};
use crate::platform;
use crate::sodium;

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 8] = *b"shmsock\0";
/// The layout version this code writes and reads.
pub const LAYOUT_VERSION: u32 = 1;
/// Offset of ring `i`'s control block.
pub const fn ring_control_offset(ring: usize) -> usize {
    0x80 + ring * 0x200
}
/// Offset of the tail counter within a control block.
pub const TAIL: usize = 0x000;
/// Offset of the head counter within a control block.
pub const HEAD: usize = 0x080;
/// Offset of the consumer's waiting flag within a control block.
pub const CONSUMER_WAITING: usize = 0x100;
/// Offset of the producer's waiting flag within a control block.
pub const PRODUCER_WAITING: usize = 0x180;
/// Offset of the first ring's data.
pub const DATA_OFFSET: usize = 0x1000;
/// The ring carrying client-to-server frames.
pub const CLIENT_TO_SERVER: usize = 0;
/// The ring carrying server-to-client frames.
pub const SERVER_TO_CLIENT: usize = 1;

/// Total segment size for a ring size.
pub fn segment_size(ring_size: u32) -> u64 {
    DATA_OFFSET as u64 + 2 * u64::from(ring_size)
}

/// Offset of ring `i`'s data.
pub fn ring_data_offset(ring: usize, ring_size: u32) -> usize {
    DATA_OFFSET + ring * ring_size as usize
}

enum Backing {
    Memfd(OwnedFd),
    Named { shmem: shared_memory::Shmem, name: String, unlinked: bool },
}

/// A mapped segment.
pub struct Segment {
    base: *mut u8,
    len: usize,
    ring_size: u32,
    backing: Backing,
}

// SAFETY: the mapping is plain shared memory valid for the Segment's lifetime;
// all access goes through atomics or whole copies, which are sound from any
// thread (concurrent writers can only change the values read, which callers
// validate).
unsafe impl Send for Segment {}
// SAFETY: as above; no method hands out references to non-atomic shared bytes.
unsafe impl Sync for Segment {}

fn random_segment_name() -> String {
    let mut bytes = [0u8; 10];
    sodium::random_bytes(&mut bytes);
    // "/shmsock-" + 20 hex digits = 29 bytes, within macOS's 31.
    format!("/shmsock-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn map_fd(fd: BorrowedFd<'_>, len: usize) -> Result<*mut u8> {
    // SAFETY: a fresh shared mapping of a whole file we hold open; the kernel picks
    // the address, so no existing memory is affected.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            fd,
            0,
        )
    }
    .map_err(|e| platform::os_error("mapping the shared-memory segment", e))?;
    Ok(ptr.cast())
}

impl Segment {
    /// Creates a segment (server side) with its header written and counters zero.
    pub fn create(backend: Backend, ring_size: u32) -> Result<Segment> {
        validate_ring_size(ring_size)?;
        let size = segment_size(ring_size);
        let seg = match backend {
            Backend::Memfd => {
                let fd = platform::create_memfd(size)?;
                let base = map_fd(fd.as_fd(), size as usize)?;
                Segment { base, len: size as usize, ring_size, backing: Backing::Memfd(fd) }
            }
            Backend::Named => {
                let name = random_segment_name();
                let shmem = shared_memory::ShmemConf::new().size(size as usize).os_id(&name).create().map_err(|e| {
                    Error::new(ErrorKind::ResourceExhausted, format!("creating shared memory {name}: {e}"))
                })?;
                let mut seg = Segment {
                    base: shmem.as_ptr(),
                    len: shmem.len(),
                    ring_size,
                    backing: Backing::Named { shmem, name: name.clone(), unlinked: false },
                };
                // The crate only ftruncates (sparse): reserve the pages now so a
                // full /dev/shm is an error here and not a SIGBUS later.
                let path = format!("/dev/shm{name}");
                let reserved = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&format!("opening {path}"), e))
                    .and_then(|f| platform::reserve(f.as_fd(), size));
                if let Err(e) = reserved {
                    seg.unlink();
                    return Err(e);
                }
                seg
            }
        };
        if seg.len as u64 != size {
            return Err(Error::new(ErrorKind::Io, "the shared-memory mapping has an unexpected size"));
        }
        let mut header = [0u8; 32];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&ring_size.to_le_bytes());
        header[16..24].copy_from_slice(&size.to_le_bytes());
        seg.write_bytes(0, &header)?;
        Ok(seg)
    }

    /// Maps a memfd received from the server, after checking its seals and size.
    pub fn open_memfd(fd: OwnedFd, ring_size: u32) -> Result<Segment> {
        validate_ring_size(ring_size)?;
        let size = segment_size(ring_size);
        platform::check_memfd(fd.as_fd(), size)?;
        let base = map_fd(fd.as_fd(), size as usize)?;
        let seg = Segment { base, len: size as usize, ring_size, backing: Backing::Memfd(fd) };
        seg.check_header()?;
        Ok(seg)
    }

    /// Maps a named segment created by the server, then unlinks its name.
    pub fn open_named(name: &str, ring_size: u32) -> Result<Segment> {
        validate_ring_size(ring_size)?;
        let size = segment_size(ring_size);
        let shmem = shared_memory::ShmemConf::new().os_id(name).open().map_err(|e| {
            Error::new(ErrorKind::ProtocolViolation, format!("opening the server's shared memory {name}: {e}"))
        })?;
        let mut seg = Segment {
            base: shmem.as_ptr(),
            len: shmem.len(),
            ring_size,
            backing: Backing::Named { shmem, name: name.to_string(), unlinked: false },
        };
        seg.unlink();
        if seg.len as u64 != size {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                format!("the server's segment has {} bytes; the handshake agreed on {size}", seg.len),
            ));
        }
        seg.check_header()?;
        Ok(seg)
    }

    fn check_header(&self) -> Result<()> {
        let mut header = [0u8; 24];
        self.copy_out(0, &mut header)?;
        let ring = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        let total = u64::from_le_bytes(header[16..24].try_into().map_err(|_| Error::new(ErrorKind::Io, "header"))?);
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if header[..8] != MAGIC || version != LAYOUT_VERSION || ring != self.ring_size || total != self.len as u64 {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                "the segment's header does not match the handshake (magic, layout version or sizes); refusing it",
            ));
        }
        Ok(())
    }

    /// Removes the named object's name (named backend; memfd has none). The
    /// mapping stays valid.
    pub fn unlink(&mut self) {
        if let Backing::Named { shmem, name, unlinked } = &mut self.backing {
            if !*unlinked {
                platform::unlink_named(name);
                shmem.set_owner(false);
                *unlinked = true;
            }
        }
    }

    /// The memfd to pass to the peer (memfd backend).
    pub fn memfd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backing {
            Backing::Memfd(fd) => Some(fd.as_fd()),
            Backing::Named { .. } => None,
        }
    }

    /// The name to send to the peer (named backend; empty for memfd).
    pub fn name(&self) -> &str {
        match &self.backing {
            Backing::Memfd(_) => "",
            Backing::Named { name, .. } => name,
        }
    }

    /// The backend of this segment.
    pub fn backend(&self) -> Backend {
        match &self.backing {
            Backing::Memfd(_) => Backend::Memfd,
            Backing::Named { .. } => Backend::Named,
        }
    }

    /// Capacity of each ring.
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Total bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a segment has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::new(ErrorKind::ProtocolViolation, "an access fell outside the shared-memory segment")),
        }
    }

    /// The 64-bit atomic at `offset` (8-aligned, inside the segment).
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len, "atomic u64 offset outside the layout");
        // SAFETY: the offset is in bounds and 8-aligned (mappings are page
        // aligned); the mapping lives as long as self. Atomics are the one kind of
        // reference that is sound to memory other processes write concurrently.
        unsafe { AtomicU64::from_ptr(self.base.add(offset).cast()) }
    }

    /// The 32-bit atomic at `offset` (4-aligned, inside the segment).
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len, "atomic u32 offset outside the layout");
        // SAFETY: as for atomic_u64.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast()) }
    }

    /// Copies `dst.len()` bytes at `offset` out of the segment into private memory.
    /// The bytes may be changing while they are copied; callers validate the copy.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.check_range(offset, dst.len())?;
        // SAFETY: the source range is inside the mapping (checked); dst is private
        // memory, so the regions cannot overlap. A concurrent writer can only change
        // which bytes are copied, never where.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(offset), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies private bytes into the segment at `offset`.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<()> {
        self.check_range(offset, src.len())?;
        // SAFETY: the destination range is inside the mapping (checked) and src is
        // private memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(offset), src.len()) };
        Ok(())
    }

    /// Seals a frame straight into the segment at `offset`.
    pub fn seal_at(
        &self,
        offset: usize,
        sealer: &mut FrameSealer,
        header: &FrameHeader,
        plaintext: &[u8],
    ) -> Result<()> {
        self.check_range(offset, header.sealed_len(sealer.suite()))?;
        // SAFETY: the whole sealed length is inside the mapping (checked); plaintext
        // is the caller's private buffer and cannot overlap the segment... unless
        // the caller passes a slice of another mapping of it, which nothing in this
        // crate does.
        unsafe { sealer.seal_raw(header, plaintext, self.base.add(offset)) }
    }

    /// Opens the AEGIS-128L frame at `offset` straight from the segment into
    /// `out`: the ciphertext is read once, by libsodium (PROTOCOL.md §10). `ad`
    /// is the private copy of the header `opener` checked; the tag is copied to
    /// private memory first.
    pub fn open_at(
        &self,
        offset: usize,
        opener: &mut FrameOpener,
        header: &FrameHeader,
        ad: &[u8; HEADER_LEN],
        out: &mut [u8],
    ) -> Result<Opened> {
        let body = header.frame_len as usize;
        self.check_range(offset, header.sealed_len(opener.suite()))?;
        let mut tag = [0u8; 32];
        self.copy_out(offset + HEADER_LEN + body, &mut tag)?;
        // SAFETY: the whole frame is inside the mapping (checked) and out is the
        // caller's private buffer, so they cannot overlap; open_shared accepts
        // AEGIS-128L only.
        unsafe { opener.open_shared(header, ad, self.base.add(offset + HEADER_LEN), &tag, out) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        match &mut self.backing {
            Backing::Memfd(_) => {
                // SAFETY: base/len describe the mapping made in map_fd; nothing
                // refers to it after drop (atomics borrowed from self are gone).
                let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
            }
            Backing::Named { name, unlinked, .. } => {
                if !*unlinked {
                    platform::unlink_named(name);
                }
                // The crate unmaps in its own drop.
            }
        }
    }
}
