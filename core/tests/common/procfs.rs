//! Inspecting other processes through /proc: stopped threads, CPU time, and a
//! peer's shared-memory mapping (to tamper with it).

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

// ------------------------------------------------------------ /proc inspection

/// Waits until every thread of `pid` is stopped (after SIGSTOP, which takes
/// effect asynchronously: a busy machine can delay it noticeably).
pub fn wait_stopped(pid: u32) {
    let start = std::time::Instant::now();
    loop {
        let all_stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.filter_map(|t| t.ok()).all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .ok()
                        .and_then(|stat| stat.rfind(')').map(|i| stat[i + 2..].starts_with(['T', 't'])))
                        .unwrap_or(true)
                })
            })
            .unwrap_or(false);
        if all_stopped {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "process {pid} did not stop");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/<pid>/stat");
    // The command name is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf is a pure query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The named segments (`/shmsock-...`) mapped by this process.
pub(super) fn own_named_segments() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| {
            l.find("/dev/shm/shmsock-")
                .map(|i| l[i + "/dev/shm".len()..].split_whitespace().next().unwrap().to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A third party's mapping of a live connection's memfd segment, found through
/// `/proc/<pid>/fd` of a process that holds it. The tests write garbage through
/// it, as a hostile process with access to the segment could.
pub struct PeerMapping {
    ptr: *mut u8,
    len: usize,
    _file: std::fs::File,
}

// SAFETY: a plain shared mapping; all access below is through raw pointers and atomics.
unsafe impl Send for PeerMapping {}
unsafe impl Sync for PeerMapping {}

impl PeerMapping {
    /// Maps the one shmsock memfd that process `pid` holds.
    pub fn of_process(pid: u32) -> PeerMapping {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("reading /proc/<pid>/fd") {
            let path = entry.unwrap().path();
            if let Ok(target) = std::fs::read_link(&path) {
                if target.to_string_lossy().starts_with("/memfd:shmsock") {
                    found.push(path);
                }
            }
        }
        assert_eq!(found.len(), 1, "expected exactly one shmsock memfd in process {pid}, found {found:?}");
        let file =
            std::fs::OpenOptions::new().read(true).write(true).open(&found[0]).expect("opening the peer's memfd");
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a new shared mapping of a whole file we hold open.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap of the peer's memfd");
        PeerMapping { ptr: ptr.cast(), len, _file: file }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn at(&self, offset: usize, n: usize) -> *mut u8 {
        assert!(offset + n <= self.len, "offset {offset}+{n} outside the segment of {} bytes", self.len);
        // SAFETY: in bounds (checked).
        unsafe { self.ptr.add(offset) }
    }

    pub fn load_u64(&self, offset: usize) -> u64 {
        // SAFETY: in bounds, 8-aligned offsets of the layout; atomics are sound on shared memory.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.at(offset, 8).cast()) }.load(Ordering::SeqCst)
    }

    pub fn store_u64(&self, offset: usize, v: u64) {
        // SAFETY: as above.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.at(offset, 8).cast()) }.store(v, Ordering::SeqCst)
    }

    pub fn store_u32(&self, offset: usize, v: u32) {
        // SAFETY: as above (4-aligned).
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.at(offset, 4).cast()) }.store(v, Ordering::SeqCst)
    }

    pub fn load_u32(&self, offset: usize) -> u32 {
        // SAFETY: as above (4-aligned).
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.at(offset, 4).cast()) }.load(Ordering::SeqCst)
    }

    pub fn write(&self, offset: usize, bytes: &[u8]) {
        let p = self.at(offset, bytes.len());
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: in bounds; volatile so every write happens.
            unsafe { p.add(i).write_volatile(*b) };
        }
    }

    pub fn read(&self, offset: usize, n: usize) -> Vec<u8> {
        let p = self.at(offset, n);
        // SAFETY: in bounds; volatile reads of bytes others may write.
        (0..n).map(|i| unsafe { p.add(i).read_volatile() }).collect()
    }
}

impl Drop for PeerMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in of_process.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
