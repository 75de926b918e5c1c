//! Shared-memory segments: memfds and their seals, named objects in /dev/shm,
//! and the read-only segments of publish/subscribe.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

use super::process::os_error;
use crate::error::{Error, ErrorKind, Result};

/// The seals every memfd segment carries.
fn required_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// Creates an anonymous memfd of `size` bytes with its first `reserved` bytes
/// reserved now (the rest is reserved by [`reserve_memfd`] as it comes into
/// use), sealed against shrinking, growing and further sealing.
pub fn create_memfd(size: u64, reserved: u64) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("shmsock", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| os_error("creating the shared-memory segment (memfd_create)", e))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| os_error("sizing the shared-memory segment", e))?;
    reserve_memfd(fd.as_fd(), 0, reserved.min(size))?;
    rustix::fs::fcntl_add_seals(&fd, required_seals()).map_err(|e| os_error("sealing the shared-memory segment", e))?;
    Ok(fd)
}

/// Reserves `len` bytes of a memfd at `offset` (`fallocate`), so that touching
/// them can never raise SIGBUS: a short memory limit is this error instead.
/// Bytes already reserved stay as they are.
pub fn reserve_memfd(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<()> {
    rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), offset, len).map_err(|e| {
        let err = os_error(&format!("reserving {len} bytes of shared memory"), e);
        Error::new(
            ErrorKind::ResourceExhausted,
            format!("{}; lower the ring size or raise the memory limit", err.message()),
        )
    })
}

/// Checks a received memfd: it must carry the seals and have exactly `size` bytes.
pub fn check_memfd(fd: BorrowedFd<'_>, size: u64) -> Result<()> {
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|_| {
        Error::new(ErrorKind::ProtocolViolation, "the peer passed a segment that is not a sealable memfd; refusing it")
    })?;
    if !seals.contains(required_seals()) {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!("the peer passed a segment without the required seals (has {seals:?}); refusing it"),
        ));
    }
    if seals.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
        return Err(Error::new(ErrorKind::ProtocolViolation, "the peer passed a write-sealed segment; refusing it"));
    }
    let st = rustix::fs::fstat(fd).map_err(|e| os_error("checking the segment", e))?;
    if st.st_size as u64 != size {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!("the peer passed a segment of {} bytes; the handshake agreed on {size}", st.st_size),
        ));
    }
    Ok(())
}

/// The mode of a named segment: owner read and write only.
const NAMED_MODE: u32 = 0o600;

/// Creates the named shared-memory object `name` (which must not exist), mode
/// 0600, `size` bytes all reserved now (a full /dev/shm is an error here, never
/// a SIGBUS later). On failure nothing is left behind.
pub fn create_named(name: &str, size: u64) -> Result<OwnedFd> {
    use rustix::shm;
    let fd = shm::open(
        name,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        shm::Mode::from_raw_mode(NAMED_MODE),
    )
    .map_err(|e| os_error(&format!("creating shared memory {name}"), e))?;
    // The umask may have taken bits away: make the mode exactly what the
    // client checks.
    let sized = rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(NAMED_MODE))
        .map_err(|e| os_error(&format!("setting mode 0600 on shared memory {name}"), e))
        .and_then(|()| {
            rustix::fs::ftruncate(&fd, size).map_err(|e| os_error(&format!("sizing shared memory {name}"), e))
        })
        .and_then(|()| {
            rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size).map_err(|e| {
                let err = os_error(&format!("reserving {size} bytes of shared memory"), e);
                Error::new(
                    ErrorKind::ResourceExhausted,
                    format!("{}; /dev/shm may be too small: lower the ring size or enlarge /dev/shm", err.message()),
                )
            })
        });
    if let Err(e) = sized {
        unlink_named(name);
        return Err(e);
    }
    Ok(fd)
}

/// Opens the server's named object `name` and checks, before anything is done
/// to it, that it is a regular file owned by `owner` (the server's uid), of
/// mode 0600 and exactly `size` bytes. Any failure is a ProtocolViolation: the
/// server named something it did not create for us.
pub fn open_named(name: &str, size: u64, owner: u32) -> Result<OwnedFd> {
    use rustix::shm;
    let refuse = |why: String| {
        Error::new(ErrorKind::ProtocolViolation, format!("the server's shared memory {name} {why}; refusing it"))
    };
    let fd = shm::open(name, shm::OFlags::RDWR, shm::Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::MFILE | rustix::io::Errno::NFILE => os_error(&format!("opening shared memory {name}"), e),
        _ => refuse(format!("cannot be opened ({})", std::io::Error::from_raw_os_error(e.raw_os_error()))),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error(&format!("checking shared memory {name}"), e))?;
    let mode = st.st_mode & 0o7777;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(refuse("is not a shared-memory object".into()));
    }
    if st.st_uid != owner {
        return Err(refuse(format!("belongs to uid {}, not to the server's uid {owner}", st.st_uid)));
    }
    if mode != NAMED_MODE {
        return Err(refuse(format!("has mode {mode:04o}, not 0600")));
    }
    if st.st_size as u64 != size {
        return Err(refuse(format!("has {} bytes; the handshake agreed on {size}", st.st_size)));
    }
    Ok(fd)
}

/// Removes a named shared-memory object. Missing objects are fine.
pub fn unlink_named(name: &str) {
    let _ = rustix::shm::unlink(name);
}

// ------------------------------------------------ publish/subscribe segments
//
// The broadcast segment of a topic is written by the publisher alone: it maps
// the memfd writable, then adds F_SEAL_FUTURE_WRITE, after which its own
// mapping still writes while every new writable mapping, write(2) and a
// read-write reopen through /proc fail with EPERM. A subscriber's cursor
// segment is the same in the other direction. See `crate::pubsub`.

/// The seals of a segment only its creator writes.
fn read_only_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL | SealFlags::FUTURE_WRITE
}

/// Creates a memfd of `size` bytes, all reserved now, sealed against shrinking
/// and growing but not yet against writing: the creator maps it writable, then
/// calls [`seal_future_write`].
pub fn create_writer_memfd(size: u64) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("shmsock-pubsub", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| os_error("creating a shared-memory segment (memfd_create)", e))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| os_error("sizing a shared-memory segment", e))?;
    rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size).map_err(|e| {
        let err = os_error(&format!("reserving {size} bytes of shared memory"), e);
        Error::new(ErrorKind::ResourceExhausted, format!("{}; use fewer or smaller slots", err.message()))
    })?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)
        .map_err(|e| os_error("sealing a shared-memory segment", e))?;
    Ok(fd)
}

/// Seals a memfd its creator has mapped writable: from now on only that
/// mapping writes it (SHRINK | GROW | SEAL | FUTURE_WRITE).
pub fn seal_future_write(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::fs::fcntl_add_seals(fd, read_only_seals())
        .map_err(|e| os_error("sealing a shared-memory segment against writing", e))
}

/// Checks a received read-only segment: a memfd with every seal of
/// [`seal_future_write`]. Returns its size in bytes.
pub fn check_read_only_memfd(fd: BorrowedFd<'_>, what: &str) -> Result<u64> {
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|_| {
        Error::new(ErrorKind::ProtocolViolation, format!("the peer passed a {what} that is not a sealable memfd"))
    })?;
    if !seals.contains(read_only_seals()) {
        return Err(Error::new(
            ErrorKind::ProtocolViolation,
            format!(
                "the peer passed a {what} without the seals SHRINK|GROW|SEAL|FUTURE_WRITE (has {seals:?}); refusing it"
            ),
        ));
    }
    let st = rustix::fs::fstat(fd).map_err(|e| os_error("checking a shared-memory segment", e))?;
    u64::try_from(st.st_size).map_err(|_| Error::new(ErrorKind::ProtocolViolation, format!("the {what} has no size")))
}

/// A read-only descriptor of the same memfd (through `/proc/self/fd`), to hand
/// to a peer that must only read it.
pub fn reopen_read_only(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(path.as_str(), rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|e| os_error("reopening a segment read-only (is /proc mounted?)", e))
}
