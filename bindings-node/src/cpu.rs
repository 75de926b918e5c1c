//! How often this thread was preempted, to tell a spin that ran alongside its
//! peer from one that took turns with it (most likely on a shared core).

use std::ffi::{c_int, c_long};

/// `RUSAGE_THREAD` (Linux).
const RUSAGE_THREAD: c_int = 1;
/// `struct rusage` on Linux: two `struct timeval`s (two longs each), then
/// fourteen longs, the last of which is `ru_nivcsw`.
const RUSAGE_LONGS: usize = 18;
const RU_NIVCSW: usize = 17;

extern "C" {
    fn getrusage(who: c_int, usage: *mut c_long) -> c_int;
}

/// The involuntary context switches of this thread so far (the times the
/// kernel took its CPU away while it could run), or None if not known.
pub(crate) fn preemptions() -> Option<c_long> {
    let mut usage = [0 as c_long; RUSAGE_LONGS];
    // SAFETY: `usage` is writable and as large and aligned as Linux's
    // `struct rusage` (18 longs on every Linux architecture, `struct timeval`
    // being two longs); getrusage writes only it.
    let rc = unsafe { getrusage(RUSAGE_THREAD, usage.as_mut_ptr()) };
    (rc == 0).then_some(usage[RU_NIVCSW])
}
