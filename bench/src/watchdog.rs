//! Ends the peers if the bench stops making progress (a side asleep and never
//! woken in a call without a timeout), so the bench fails with an error instead
//! of hanging: the measuring side's blocked call then sees the peer gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Inner {
    start: Instant,
    last_beat_ms: AtomicU64,
    stop: AtomicBool,
    fired: AtomicBool,
    pids: Mutex<Vec<u32>>,
}

pub(crate) struct Watchdog {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Kills the watched peers when no `beat` came for `limit`.
    pub(crate) fn start(limit: Duration) -> Watchdog {
        let inner = Arc::new(Inner {
            start: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            fired: AtomicBool::new(false),
            pids: Mutex::new(Vec::new()),
        });
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("shmsock-bench-watchdog".into())
            .spawn(move || {
                while !i.stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = i.start.elapsed().as_millis() as u64;
                    if now.saturating_sub(i.last_beat_ms.load(Ordering::Acquire)) > limit.as_millis() as u64 {
                        i.fired.store(true, Ordering::Release);
                        for &pid in i.pids.lock().unwrap().iter() {
                            // Our live, unreaped children (so the pids are theirs).
                            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                            }
                        }
                        i.last_beat_ms.store(now, Ordering::Release);
                    }
                }
            })
            .ok();
        Watchdog { inner, thread }
    }

    /// Progress was made.
    pub(crate) fn beat(&self) {
        self.inner.last_beat_ms.store(self.inner.start.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// Watches a live peer.
    pub(crate) fn watch(&self, pid: u32) {
        self.inner.pids.lock().unwrap().push(pid);
    }

    /// Stops watching every peer (call before they are reaped).
    pub(crate) fn unwatch_all(&self) {
        self.inner.pids.lock().unwrap().clear();
    }

    /// True if it had to kill the peers.
    pub(crate) fn fired(&self) -> bool {
        self.inner.fired.load(Ordering::Acquire)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
