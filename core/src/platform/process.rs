//! This process: its uid, its CPU, its open-descriptor limit (with the
//! errors that say what to do at it), and whether it is a child of `fork()`.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};

/// Converts a rustix error into ours, saying what we were doing (and, at the
/// open-file limit, what to do about it).
pub(crate) fn os_error(context: &str, errno: rustix::io::Errno) -> Error {
    let err = Error::io(context, std::io::Error::from_raw_os_error(errno.raw_os_error()));
    if errno == rustix::io::Errno::MFILE || errno == rustix::io::Errno::NFILE {
        return Error::new(ErrorKind::ResourceExhausted, format!("{}; {}", err.message(), descriptor_limit_hint()));
    }
    err
}

/// What to say when this process has no descriptor left to open.
pub(super) fn descriptor_limit_hint() -> String {
    use rustix::process::{getrlimit, Resource};
    let limit = getrlimit(Resource::Nofile).current.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    format!(
        "this process is at its open-file limit (RLIMIT_NOFILE, now {limit}): raise it (`ulimit -n`, \
         LimitNOFILE= in systemd) or close descriptors"
    )
}

/// Checks that this process can open `count` more descriptors now (by
/// duplicating `any`, an open descriptor, that many times, then closing the
/// copies: cheaper than opening a file, a path lookup each). A server calls it
/// before sending a REPLY, whose READY brings the client's wake-up descriptor:
/// at the limit it refuses the client with a clear error instead of handing it
/// a connection it cannot finish. (Another thread may still take the room in
/// between; the receive then fails with the same error.)
pub fn ensure_descriptor_room(any: BorrowedFd<'_>, count: usize) -> Result<()> {
    let mut spare = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = rustix::io::fcntl_dupfd_cloexec(any, 0)
            .map_err(|e| os_error("checking for room for the peer's descriptors", e))?;
        spare.push(fd);
    }
    Ok(())
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Raises this process's soft limit on open files to its hard limit (servers
/// with many connections, and tests that open a thousand sockets). Returns the
/// new soft limit.
pub fn raise_open_files_limit() -> Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).map_err(|e| os_error("raising the open files limit", e))?;
    }
    Ok(limit.current.unwrap_or(u64::MAX))
}

/// The CPU this thread runs on now, if the platform says.
///
/// libc's call rather than rustix's: rustix parses the vDSO itself, and under
/// valgrind (which maps no vDSO where the auxiliary vector says) that read
/// faults; glibc's call is what valgrind expects.
#[cfg(target_os = "linux")]
pub fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only returns a number.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// The CPU this thread runs on now: not known on this platform.
#[cfg(not(target_os = "linux"))]
pub fn current_cpu() -> Option<u32> {
    None
}

/// Threads runnable on the whole machine right now and CPUs online, per the
/// kernel (the fourth field of /proc/loadavg, "running/total", and
/// sysconf(_SC_NPROCESSORS_ONLN)). Reads without allocating. None when unknown.
#[cfg(target_os = "linux")]
pub fn runnable_and_cpus() -> Option<(u32, u32)> {
    use rustix::fs::{Mode, OFlags};
    let file = rustix::fs::open("/proc/loadavg", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut buf = [0u8; 128];
    let n = rustix::io::read(&file, &mut buf).ok()?;
    // "0.52 0.58 0.59 3/467 12345": the number before the '/'.
    let field = buf[..n].split(|&b| b == b' ').nth(3)?;
    let running = field.split(|&b| b == b'/').next()?;
    let running = std::str::from_utf8(running).ok()?.parse().ok()?;
    // SAFETY: sysconf takes a constant and only returns a number.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    Some((running, u32::try_from(cpus).ok().filter(|&c| c > 0)?))
}

/// Not known on this platform.
#[cfg(not(target_os = "linux"))]
pub fn runnable_and_cpus() -> Option<(u32, u32)> {
    None
}

/// `fork()`s since the first [`Origin::here`], counted in the child.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

fn fork_generation() -> u64 {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a handler that runs in the child of each fork()
        // and only increments an atomic (async-signal-safe, as a handler in
        // the child of a multi-threaded process must be). If registering
        // fails (out of memory), forks go uncounted.
        let _ = unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

/// The process something was made in. A child of `fork()` holds a copy of its
/// parent's memory, so of every stream, listener, topic and server the parent
/// had; but the connections, threads and endpoints they stand for stay the
/// parent's. What records its origin refuses to act in another process: a
/// child's sends would reuse the parent's nonces, its receives take the
/// parent's messages, and its close (or the drop of its copy when it exits)
/// would end the parent's connection or remove its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin(u64);

impl Origin {
    /// This process.
    pub fn here() -> Origin {
        Origin(fork_generation())
    }

    /// True in a child of `fork()` made since this origin (one load).
    pub fn forked(self) -> bool {
        fork_generation() != self.0
    }

    /// The error for using, in a child of `fork()`, `what` (a stream, a
    /// subscriber...) its parent opened.
    pub fn forked_error(what: &str) -> Error {
        Error::new(
            ErrorKind::Closed,
            format!(
                "this {what} belongs to the process that opened it, and this process is a child of fork() \
                 since: open one of its own (the parent's stays open)"
            ),
        )
    }

    /// An origin that is not this process (for tests).
    #[cfg(test)]
    pub(crate) fn elsewhere() -> Origin {
        Origin(fork_generation().wrapping_add(1))
    }
}
