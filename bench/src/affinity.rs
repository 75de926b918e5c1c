//! Pinning the calling thread to CPUs (sched_setaffinity).

use crate::error::{last_os_error, Result};

/// The CPUs the calling thread may run on.
pub fn current() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(last_os_error("sched_getaffinity"));
        }
        Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect())
    }
}

/// Pins the calling thread to exactly these CPUs.
pub fn pin(cpus: &[usize]) -> Result<()> {
    // SAFETY: as above; CPU_SET only touches the set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(last_os_error(&format!("sched_setaffinity to CPUs {cpus:?}")));
        }
    }
    Ok(())
}

/// Number of CPUs this process may use.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
