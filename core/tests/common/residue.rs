//! Residue checks: endpoint files and shared-memory objects left behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use shmsock::{Keypair, Listener, Options};

use super::*;

// ------------------------------------------------------------------- residue

/// Asserts that the runtime directory holds no socket or lock file of `name`.
pub fn assert_no_endpoint_files(name: &str) {
    let dir = init();
    for ext in ["sock", "lock"] {
        let path = dir.join(format!("{name}.{ext}"));
        assert!(!path.exists(), "residue: {} is left behind", path.display());
    }
}

/// True when the runtime directory holds the socket file of `name`.
pub fn endpoint_socket_exists(name: &str) -> bool {
    init().join(format!("{name}.sock")).exists()
}

/// Binds and drops `name` in this process: reclaims the files a SIGKILLed
/// server left, then checks that nothing is left.
pub fn reclaim_and_check(name: &str) {
    let listener = Listener::bind(name, &Options::new().keypair(Keypair::generate()))
        .unwrap_or_else(|e| panic!("reclaiming '{name}' after its server died: {e}"));
    drop(listener);
    assert_no_endpoint_files(name);
}

/// The `shmsock-*` objects in /dev/shm now.
pub fn shm_objects() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("shmsock-"))
                .collect()
        })
        .unwrap_or_default()
}

/// True when the named object `name` (as in a `SEG` event, "/shmsock-...")
/// exists in /dev/shm.
pub fn shm_exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name.trim_start_matches('/')).exists()
}

/// Watches /dev/shm for named segments left behind by a test.
///
/// Two checks: every name the test's children reported (`SEG` events: the named
/// segments they mapped) must be gone; and no `shmsock-*` object of one of the
/// test's segment sizes may appear during the test and stay (objects of other
/// tests running at the same time come and go within a handshake, so new ones
/// get a grace period to disappear before they count).
pub struct ShmWatch {
    before: BTreeSet<String>,
    sizes: Vec<u64>,
    names: BTreeSet<String>,
}

impl ShmWatch {
    /// Starts watching; `ring_sizes` are the ring sizes this test's named
    /// segments use.
    pub fn start(ring_sizes: &[u32]) -> ShmWatch {
        ShmWatch {
            before: shm_objects(),
            sizes: ring_sizes.iter().map(|r| shmsock::segment::segment_size(*r)).collect(),
            names: BTreeSet::new(),
        }
    }

    /// Adds the segment names a child reported.
    pub fn collect(&mut self, child: &mut Child) {
        self.names.extend(child.segment_names());
    }

    /// Number of distinct segment names seen.
    pub fn seen(&self) -> usize {
        self.names.len()
    }

    /// Asserts that nothing of this test is left in /dev/shm.
    pub fn assert_clean(&self) {
        for name in &self.names {
            assert!(!shm_exists(name), "residue: the named segment {name} is still in /dev/shm");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<String> = shm_objects()
                .difference(&self.before)
                .filter(|n| {
                    let size = std::fs::metadata(Path::new("/dev/shm").join(n)).map(|m| m.len()).unwrap_or(0);
                    self.sizes.contains(&size)
                })
                .cloned()
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "residue: new shared-memory objects stay in /dev/shm: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
