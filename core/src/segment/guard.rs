//! Surviving SIGBUS from a named shared-memory object that another process
//! truncated.
//!
//! A named object (the portable backend) cannot be sealed: any process of the
//! same user that opened it by name before it was unlinked (the peer, always)
//! keeps a descriptor and can `ftruncate` it later, and every later access to
//! the pages beyond the new size raises SIGBUS. So each named mapping is
//! registered here, and a SIGBUS handler (installed once, the first time a
//! named segment is mapped) that finds the faulting address inside a
//! registered mapping replaces the whole mapping with private zero pages
//! (`MAP_FIXED`) and marks it faulted, then returns: the faulting instruction
//! runs again on the new pages and succeeds, whatever was executing (our
//! copies, libsodium sealing in place). The segment then reports the fault on
//! its next checked access and the connection ends with ProtocolViolation;
//! nothing else in the process is affected. This is what libwayland-server does
//! for the shm pools of its clients.
//!
//! Any other SIGBUS (another address, or one sent with `kill`) goes to the
//! handler that was installed before ours (Rust's stack-overflow handler, a
//! language runtime's), or gets the default action.
//!
//! The handler is async-signal-safe: it only loads atomics and makes the mmap
//! system call. The registry is a list of fixed chunks of slots that only
//! grows (a chunk is never freed), so the handler can walk it without locks
//! while other threads register and unregister.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, ErrorKind, Result};

/// Slots per chunk of the registry.
const CHUNK: usize = 64;

/// One registered mapping. `base` is 0 when the slot holds none.
struct Slot {
    claimed: AtomicBool,
    base: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            claimed: AtomicBool::new(false),
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            faulted: AtomicBool::new(false),
        }
    }
}

struct Chunk {
    slots: [Slot; CHUNK],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn new() -> Chunk {
        Chunk { slots: [const { Slot::new() }; CHUNK], next: AtomicPtr::new(ptr::null_mut()) }
    }

    fn next(&self) -> Option<&'static Chunk> {
        let next = self.next.load(Ordering::Acquire);
        // SAFETY: `next` is null or a chunk leaked by `claim`, never freed.
        unsafe { next.as_ref() }
    }
}

static FIRST: Chunk = Chunk::new();

/// The SIGBUS action in place before ours, or the error of installing ours.
static PREVIOUS: OnceLock<std::result::Result<Previous, String>> = OnceLock::new();

/// A `libc::sigaction` (plain integers and a function address, but it is not
/// `Sync` on every target).
struct Previous(libc::sigaction);
// SAFETY: written once before our handler is installed, only read afterwards.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

/// A registered mapping: while it lives, a SIGBUS inside the mapping is
/// survived and recorded. Drop it before unmapping.
pub struct Guard {
    slot: &'static Slot,
}

impl Guard {
    /// True once a SIGBUS replaced the mapping with private zero pages: the
    /// shared object was truncated, and nothing read from the mapping since
    /// is the peer's.
    pub fn faulted(&self) -> bool {
        self.slot.faulted.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Hide the range from the handler first, then free the slot.
        self.slot.base.store(0, Ordering::Release);
        self.slot.len.store(0, Ordering::Relaxed);
        self.slot.faulted.store(false, Ordering::Relaxed);
        self.slot.claimed.store(false, Ordering::Release);
    }
}

/// Registers the mapping `[base, base + len)` (page-aligned, readable and
/// writable, `MAP_SHARED`), installing the handler on first use.
pub fn register(base: *mut u8, len: usize) -> Result<Guard> {
    install()?;
    let slot = claim();
    slot.faulted.store(false, Ordering::Relaxed);
    slot.len.store(len, Ordering::Relaxed);
    // Published last: a handler that sees `base` sees `len` too.
    slot.base.store(base as usize, Ordering::Release);
    Ok(Guard { slot })
}

/// A free slot, adding a chunk when all are taken.
fn claim() -> &'static Slot {
    let mut chunk: &'static Chunk = &FIRST;
    loop {
        for slot in &chunk.slots {
            if slot.claimed.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return slot;
            }
        }
        chunk = match chunk.next() {
            Some(next) => next,
            None => {
                let fresh = Box::into_raw(Box::new(Chunk::new()));
                match chunk.next.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
                    // SAFETY: `fresh` was just leaked from a Box and is now
                    // reachable from the list forever.
                    Ok(_) => unsafe { &*fresh },
                    Err(winner) => {
                        // SAFETY: our chunk was never published; the winner's
                        // was, and is never freed.
                        unsafe {
                            drop(Box::from_raw(fresh));
                            &*winner
                        }
                    }
                }
            }
        };
    }
}

fn install() -> Result<()> {
    let installed = PREVIOUS.get_or_init(|| {
        // SAFETY: sigaction with a zeroed struct to read, then with a fully
        // initialised one to write; both pointers are valid for the calls.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous) != 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            // Record the previous action before ours can run.
            let saved = Previous(previous);
            if libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            Ok(saved)
        }
    });
    match installed {
        Ok(_) => Ok(()),
        Err(why) => Err(Error::new(
            ErrorKind::Io,
            format!("installing the SIGBUS handler that protects named shared memory: {why}"),
        )),
    }
}

/// Replaces the registered mapping holding `addr` with private zero pages and
/// marks it faulted. False if no registered mapping holds `addr`.
fn recover(addr: usize) -> bool {
    let mut chunk = Some(&FIRST);
    while let Some(c) = chunk {
        for slot in &c.slots {
            let base = slot.base.load(Ordering::Acquire);
            let len = slot.len.load(Ordering::Acquire);
            if base == 0 || slot.base.load(Ordering::Acquire) != base || addr.wrapping_sub(base) >= len {
                continue;
            }
            // SAFETY: [base, base + len) is a live mapping of a registered
            // segment (a fault inside it means a thread is using the segment,
            // so it is not being unmapped). MAP_FIXED replaces it in one
            // system call; other threads reading it see zeros from then on.
            let remapped = unsafe {
                rustix::mm::mmap_anonymous(
                    base as *mut c_void,
                    len,
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED,
                )
            };
            if remapped.is_err() {
                return false;
            }
            slot.faulted.store(true, Ordering::Release);
            return true;
        }
        chunk = c.next();
    }
    false
}

extern "C" fn on_sigbus(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code > 0: raised by the kernel for a fault at si_addr (a SIGBUS sent
    // with kill has si_code <= 0 and an arbitrary si_addr).
    if code > 0 && recover(addr) {
        return;
    }
    let Some(Ok(Previous(previous))) = PREVIOUS.get() else { return };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: restoring the saved action; then the fault repeats (or the
        // sent signal is raised again) and gets the default action.
        unsafe {
            libc::sigaction(libc::SIGBUS, previous, ptr::null_mut());
            if code <= 0 {
                libc::raise(libc::SIGBUS);
            }
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: an SA_SIGINFO action's address is such a function.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: a plain action's address is such a function.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}
