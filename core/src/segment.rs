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
//! A named object cannot be sealed, so a peer (or a same-user process that
//! opened it before it was unlinked) may truncate it: the `guard` submodule
//! turns the resulting SIGBUS into a fault reported on this segment's next
//! checked access.
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
use crate::handshake::validate_ring_size;
use crate::platform;
use crate::sodium;

mod guard;

/// How a connection's shared memory is created and passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Backend {
    /// An anonymous sealed memfd passed over the control socket (Linux default).
    Memfd = 1,
    /// A POSIX shared-memory object with a random name, unlinked once mapped.
    Named = 2,
}

impl Backend {
    /// The bit of this backend in a client's backend set.
    pub fn bit(self) -> u8 {
        1 << (self as u8 - 1)
    }

    /// The backend with this wire id.
    pub fn from_id(id: u8) -> Option<Backend> {
        match id {
            1 => Some(Backend::Memfd),
            2 => Some(Backend::Named),
            _ => None,
        }
    }

    /// A human name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memfd => "memfd",
            Backend::Named => "named",
        }
    }

    /// Parses a human name (`memfd` or `named`).
    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "memfd" => Some(Backend::Memfd),
            "named" | "posix" => Some(Backend::Named),
            _ => None,
        }
    }
}

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
    /// A POSIX shared-memory object. No descriptor is kept (a peer could not
    /// truncate it through ours anyway, but nothing needs it once mapped).
    /// `linked`: the name still exists and this side removes it (the server's,
    /// until the client has mapped it); the client never unlinks on drop.
    Named {
        name: String,
        linked: bool,
    },
}

/// A mapped segment.
pub struct Segment {
    base: *mut u8,
    len: usize,
    ring_size: u32,
    backing: Backing,
    /// The SIGBUS guard of a named mapping (memfd segments are sealed).
    guard: Option<guard::Guard>,
}

// SAFETY: the mapping is plain shared memory valid for the Segment's lifetime;
// all access goes through atomics or whole copies, which are sound from any
// thread (concurrent writers can only change the values read, which callers
// validate).
unsafe impl Send for Segment {}
// SAFETY: as above; no method hands out references to non-atomic shared bytes.
unsafe impl Sync for Segment {}

/// The prefix of every named segment.
const NAMED_PREFIX: &str = "/shmsock-";
/// Random hex digits after the prefix.
const NAMED_HEX_DIGITS: usize = 20;

fn random_segment_name() -> String {
    let mut bytes = [0u8; NAMED_HEX_DIGITS / 2];
    sodium::random_bytes(&mut bytes);
    // "/shmsock-" + 20 hex digits = 29 bytes, within macOS's 31.
    format!("{NAMED_PREFIX}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// True for the names this implementation creates, `/shmsock-` then 20
/// lowercase hex digits: the only names a client opens (and unlinks), so a
/// server cannot point it at another application's object.
pub fn is_segment_name(name: &str) -> bool {
    name.strip_prefix(NAMED_PREFIX).is_some_and(|hex| {
        hex.len() == NAMED_HEX_DIGITS && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
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
                // The rings' pages are reserved as they come into use (`commit`).
                let fd = platform::create_memfd(size, DATA_OFFSET as u64)?;
                let base = map_fd(fd.as_fd(), size as usize)?;
                Segment { base, len: size as usize, ring_size, backing: Backing::Memfd(fd), guard: None }
            }
            Backend::Named => {
                let name = random_segment_name();
                let fd = platform::create_named(&name, size)?;
                let seg = Segment::map_named(fd, name.clone(), ring_size, true);
                if seg.is_err() {
                    platform::unlink_named(&name);
                }
                seg?
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
        let seg = Segment { base, len: size as usize, ring_size, backing: Backing::Memfd(fd), guard: None };
        seg.check_header()?;
        Ok(seg)
    }

    /// Maps a named segment created by the server (whose uid is `owner`), then
    /// unlinks its name. Nothing is unlinked unless every check passed: the
    /// name's form, the object's owner, mode and size (before mapping) and the
    /// header (after).
    pub fn open_named(name: &str, ring_size: u32, owner: u32) -> Result<Segment> {
        validate_ring_size(ring_size)?;
        if !is_segment_name(name) {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                format!(
                    "the server named the shared-memory object '{}', not one of the form /shmsock-<20 hex digits>; refusing it",
                    name.escape_default()
                ),
            ));
        }
        let size = segment_size(ring_size);
        let fd = platform::open_named(name, size, owner)?;
        let seg = Segment::map_named(fd, name.to_string(), ring_size, false)?;
        seg.check_header()?;
        platform::unlink_named(name);
        Ok(seg)
    }

    /// Maps a named object (already checked to have the segment's size) and
    /// closes its descriptor, with the SIGBUS guard registered before the
    /// first access.
    fn map_named(fd: OwnedFd, name: String, ring_size: u32, linked: bool) -> Result<Segment> {
        let len = segment_size(ring_size) as usize;
        let base = map_fd(fd.as_fd(), len)?;
        drop(fd);
        let guard = match guard::register(base, len) {
            Ok(guard) => guard,
            Err(e) => {
                // SAFETY: the mapping just made, not yet used.
                let _ = unsafe { rustix::mm::munmap(base.cast(), len) };
                return Err(e);
            }
        };
        Ok(Segment { base, len, ring_size, backing: Backing::Named { name, linked }, guard: Some(guard) })
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
        if let Backing::Named { name, linked } = &mut self.backing {
            if *linked {
                platform::unlink_named(name);
                *linked = false;
            }
        }
    }

    /// Fails once the named object was truncated under us (the `guard`
    /// submodule survived a SIGBUS by replacing the mapping with private
    /// zeros): from then on nothing read from the segment is the peer's, so the
    /// connection must end. Every copy in or out checks it after copying.
    pub fn check_intact(&self) -> Result<()> {
        if self.guard.as_ref().is_some_and(guard::Guard::faulted) {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                "the named shared-memory segment was truncated by another process (the peer, or one of the same user); \
                 the connection is ended",
            ));
        }
        Ok(())
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
        self.check_intact()
    }

    /// Copies private bytes into the segment at `offset`.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<()> {
        self.check_range(offset, src.len())?;
        // SAFETY: the destination range is inside the mapping (checked) and src is
        // private memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(offset), src.len()) };
        self.check_intact()
    }

    /// Reserves the pages of `[offset, offset + len)` before this side first
    /// touches them (memfd segments, whose rings are reserved as they come
    /// into use; a named object is reserved whole when created).
    pub fn commit(&self, offset: usize, len: usize) -> Result<()> {
        self.check_range(offset, len)?;
        match &self.backing {
            Backing::Memfd(fd) => platform::reserve_memfd(fd.as_fd(), offset as u64, len as u64),
            Backing::Named { .. } => Ok(()),
        }
    }

    /// Seals a frame straight into the segment at `offset`.
    pub fn seal_at(
        &self,
        offset: usize,
        sealer: &mut FrameSealer,
        header: &FrameHeader,
        plaintext: &[u8],
    ) -> Result<()> {
        let sealed = header.sealed_len(sealer.suite());
        self.check_range(offset, sealed)?;
        // SAFETY: the whole sealed length is inside the mapping (checked); plaintext
        // is the caller's private buffer and cannot overlap the segment... unless
        // the caller passes a slice of another mapping of it, which nothing in this
        // crate does.
        unsafe { sealer.seal_raw(header, plaintext, self.base.add(offset)) }?;
        if sealed <= DEMOTE_MAX {
            // SAFETY: the sealed frame is inside the mapping (checked above).
            demote(unsafe { self.base.add(offset) }, sealed);
        }
        self.check_intact()
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
        let opened = unsafe { opener.open_shared(header, ad, self.base.add(offset + HEADER_LEN), &tag, out) };
        // A truncation during the read (named backend) is the clearer error.
        self.check_intact()?;
        opened
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Backing::Named { name, linked: true } = &self.backing {
            platform::unlink_named(name);
        }
        // Unregister before unmapping, so the handler never remaps a range
        // that may be reused.
        self.guard = None;
        // SAFETY: base/len describe the mapping made in map_fd; nothing refers
        // to it after drop (atomics borrowed from self are gone).
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// The largest sealed frame whose cache lines the sender demotes. For small
/// frames the receiver's read is the round trip's critical path, and taking
/// the lines from the shared cache instead of by a snoop into the sender's
/// core saved 8-15 % of a 64 B-2 KiB round trip on a Xeon with CLDEMOTE (A/B
/// within one process). Large transfers gained nothing and 1 MiB lost a
/// little (each demote costs some nanoseconds and the receiver's prefetcher
/// already streams them), so they keep their lines.
const DEMOTE_MAX: usize = 4096;

/// Asks the CPU to move the cache lines of `[ptr, ptr + len)` from this core's
/// private caches to the shared last-level cache (x86 CLDEMOTE), where the
/// peer's core reads them sooner. A hint: it changes no value, cannot fault,
/// and is skipped on CPUs without the instruction.
fn demote(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if cpu_has_cldemote() {
        let end = ptr as usize + len;
        let mut line = ptr as usize & !63;
        while line < end {
            // SAFETY: CLDEMOTE neither reads nor writes memory and never faults,
            // whatever the address; the CPU implements it (checked above).
            // `readonly` (not `nomem`) keeps it after the seal's stores.
            unsafe {
                std::arch::asm!("cldemote byte ptr [{0}]", in(reg) line, options(nostack, preserves_flags, readonly))
            };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// CPUID.(EAX=7, ECX=0):ECX bit 25, read once.
#[cfg(target_arch = "x86_64")]
fn cpu_has_cldemote() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        // SAFETY: CPUID exists on every x86_64 CPU. (The intrinsics are safe
        // functions since Rust 1.89 but not in 1.85, our minimum.)
        #[allow(unused_unsafe)]
        let (max_leaf, leaf7) = unsafe { (std::arch::x86_64::__cpuid(0).eax, std::arch::x86_64::__cpuid_count(7, 0)) };
        // Leaf 7 is meaningful only when leaf 0 says it exists.
        max_leaf >= 7 && leaf7.ecx & (1 << 25) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demoting_lines_changes_no_byte() {
        let buf: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        // An unaligned range across several lines, and an empty one.
        demote(buf[3..].as_ptr(), 290);
        demote(buf.as_ptr(), 0);
        assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
    }

    #[test]
    fn only_names_of_the_created_form_are_segment_names() {
        for _ in 0..16 {
            let name = random_segment_name();
            assert!(is_segment_name(&name), "{name}");
            assert_eq!(name.len(), 29);
        }
        for bad in [
            "",
            "/shmsock-",
            "/shmsock-0123456789abcdef012",
            "/shmsock-0123456789abcdef01234",
            "/shmsock-0123456789ABCDEF0123",
            "/shmsock-0123456789abcdef012g",
            "shmsock-0123456789abcdef0123",
            "/other-0123456789abcdef0123",
            "/shmsock-vector-0123456789",
            "/../shmsock-0123456789abcdef",
        ] {
            assert!(!is_segment_name(bad), "{bad}");
        }
    }
}
