//! What the main thread of `listen` and `connect` waits for besides the
//! connection: stdin's end, a failure of the stdin thread, and signals.
//!
//! Each sets a flag and then writes a byte to a socket pair whose read end the
//! main thread polls beside the stream's pollable fd, so nothing is polled on a
//! timer. INT, TERM and HUP end the command after closing the connection
//! cleanly; a second one ends it at once. A signal ignored when the command
//! started (INT in a script's background job, HUP under nohup) stays ignored.

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{code, CliError};

/// The events of one command run.
pub struct Events {
    wake_read: UnixStream,
    wake_write: UnixStream,
    eof: AtomicBool,
    failure: Mutex<Option<CliError>>,
    signal: Arc<AtomicUsize>,
}

impl Events {
    /// Creates the wake-up pair and takes over INT, TERM and HUP.
    pub fn new() -> Result<Arc<Events>, CliError> {
        let setup = |e: std::io::Error| CliError::io("setting up signal handling", &e);
        let (wake_read, wake_write) = UnixStream::pair().map_err(setup)?;
        wake_read.set_nonblocking(true).map_err(setup)?;
        wake_write.set_nonblocking(true).map_err(setup)?;
        let signal = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicBool::new(false));
        // A signal ignored on entry stays ignored, as shells expect (a
        // background job of a script ignores INT; `nohup` ignores HUP).
        for sig in [SIGINT, SIGTERM, SIGHUP].into_iter().filter(|&sig| !ignored_on_entry(sig)) {
            let exit_status = i32::from(code::SIGNAL_BASE) + sig;
            // Registration order is the order the actions run: a second signal
            // finds `received` set and exits at once; the first sets it, records
            // the signal and wakes the main thread.
            signal_hook::flag::register_conditional_shutdown(sig, exit_status, received.clone()).map_err(setup)?;
            signal_hook::flag::register(sig, received.clone()).map_err(setup)?;
            signal_hook::flag::register_usize(sig, signal.clone(), sig as usize).map_err(setup)?;
            signal_hook::low_level::pipe::register(sig, wake_write.try_clone().map_err(setup)?).map_err(setup)?;
        }
        Ok(Arc::new(Events { wake_read, wake_write, eof: AtomicBool::new(false), failure: Mutex::new(None), signal }))
    }

    /// The fd to poll: readable after any event.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_read.as_fd()
    }

    /// Empties the wake-up socket (call before checking the flags).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_read).read(&mut buf), Ok(n) if n > 0) {}
    }

    fn wake(&self) {
        // A full socket already holds a wake-up.
        match (&self.wake_write).write(&[1]) {
            Ok(_) => {}
            Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
            Err(_) => {}
        }
    }

    /// stdin has ended (and everything read from it was sent).
    pub fn set_eof(&self) {
        self.eof.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// True once stdin has ended.
    pub fn eof(&self) -> bool {
        self.eof.load(Ordering::SeqCst)
    }

    /// The stdin thread failed; the command ends with `err`.
    pub fn fail(&self, err: CliError) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(err);
        }
        self.wake();
    }

    /// The failure of the stdin thread, if any.
    pub fn failure(&self) -> Option<CliError> {
        self.failure.lock().ok().and_then(|slot| slot.clone())
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => i32::try_from(sig).ok(),
        }
    }
}

/// True when `signal`'s disposition is "ignore".
fn ignored_on_entry(signal: i32) -> bool {
    // SAFETY: sigaction with a null new action only writes the current action
    // into `current`, a valid, zero-initialised sigaction.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0 && current.sa_sigaction == libc::SIG_IGN
    }
}

/// The exit code for ending on `signal`.
pub fn signal_exit_code(signal: i32) -> u8 {
    u8::try_from(i32::from(code::SIGNAL_BASE) + signal).unwrap_or(code::FAILED)
}
