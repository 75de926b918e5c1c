//! Pinning the calling thread to CPUs (rustix's safe sched_setaffinity).

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

use crate::error::{BenchError, Result};

/// The CPUs the calling thread may run on.
pub fn current() -> Result<Vec<usize>> {
    let set = sched_getaffinity(None).map_err(|e| BenchError::new(format!("sched_getaffinity: {e}")))?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Pins the calling thread to exactly these CPUs.
pub fn pin(cpus: &[usize]) -> Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        if c >= CpuSet::MAX_CPU {
            return Err(BenchError::new(format!("CPU {c} is beyond the {} a CPU set holds", CpuSet::MAX_CPU)));
        }
        set.set(c);
    }
    sched_setaffinity(None, &set).map_err(|e| BenchError::new(format!("sched_setaffinity to CPUs {cpus:?}: {e}")))
}

/// Number of CPUs this process may use.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
