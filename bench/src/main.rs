//! `shmsock-bench`: shmsock against Unix domain sockets between two processes,
//! pinned to one core and to two cores, in one launch.
//!
//! Usage: `shmsock-bench [--quick] [--json FILE] [--contended] ...` (`--help` lists all).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use shmsock_bench::{format_report, maybe_run_peer, run, set_allocation_counter, Config};

/// Counts heap allocations, so the bench can check that the hot path makes none.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocation_count() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn usage() -> &'static str {
    "usage: shmsock-bench [--quick] [--json FILE] [--runs N] [--no-floor] [--one-core-only | --two-cores-only]\n\
     [--contended] [--shm-spin-us US] [--shm-ring BYTES] [--connect] [--ping-timeout-ms MS] [--latency-sizes 64,1024|none] [--throughput-sizes 65536,1048576|none]\n\
     [--only shm-aegis-128l,shm-chacha20-poly1305,unix-plain,unix-aegis-128l,unix-chacha20-poly1305]\n\
     \n\
     Measures shmsock (each cipher), a plaintext Unix socket and a Unix socket with the same AEAD,\n\
     between two processes pinned to one core and to two cores, plus the shared-cache-line floor,\n\
     and prints the ratios against the goals. About 75 seconds; --quick takes about 10 seconds;\n\
     --contended measures each placement again with a busy-looping process on the measuring CPU."
}

fn main() -> ExitCode {
    if let Some(code) = maybe_run_peer() {
        return ExitCode::from(code as u8);
    }
    set_allocation_counter(allocation_count);
    let mut config = Config::default();
    let mut json: Option<String> = None;
    let mut quick = false;
    let mut connect = false;
    let mut runs: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => match args.next() {
                Some(f) => json = Some(f),
                None => {
                    eprintln!("--json needs a file name\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--runs" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => runs = Some(n),
                _ => {
                    eprintln!("--runs needs a positive number\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--no-floor" => config.floor = false,
            "--contended" => config.contended = true,
            "--shm-spin-us" => match args.next().and_then(|n| n.parse().ok()) {
                Some(us) => config.shm_spin = Some(std::time::Duration::from_micros(us)),
                None => {
                    eprintln!("--shm-spin-us needs a number\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--connect" => connect = true,
            "--shm-ring" => match args.next().and_then(|n| n.parse().ok()) {
                Some(bytes) => config.shm_ring_size = Some(bytes),
                None => {
                    eprintln!("--shm-ring needs a byte count (a power of two)\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--ping-timeout-ms" => match args.next().and_then(|n| n.parse().ok()) {
                Some(ms) => config.ping_timeout = Some(std::time::Duration::from_millis(ms)),
                None => {
                    eprintln!("--ping-timeout-ms needs a number\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--latency-sizes" | "--throughput-sizes" => {
                let sizes: Option<Vec<usize>> = args.next().and_then(|l| {
                    if l == "none" {
                        Some(Vec::new())
                    } else {
                        l.split(',').map(|x| x.parse().ok()).collect()
                    }
                });
                match sizes {
                    Some(v) => {
                        if a == "--latency-sizes" {
                            config.latency_sizes = v
                        } else {
                            config.throughput_sizes = v
                        }
                    }
                    _ => {
                        eprintln!("{a} needs a comma-separated list of byte counts\n{}", usage());
                        return ExitCode::from(2);
                    }
                }
            }
            "--only" => match args.next() {
                Some(list) => config.only = list.split(',').map(str::to_string).collect(),
                None => {
                    eprintln!("--only needs a list of transports\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--one-core-only" => config.two_cores = false,
            "--two-cores-only" => config.one_core = false,
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument '{other}'\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    if connect {
        return connect_main(config.shm_ring_size);
    }
    if quick {
        let q = Config::quick();
        config.runs = q.runs;
        config.warmup = q.warmup;
        config.run_warmup = q.run_warmup;
        config.latency_run = q.latency_run;
        config.throughput_run = q.throughput_run;
    }
    if let Some(n) = runs {
        config.runs = n;
    }
    let started = std::time::Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_pct = u32::MAX;
    let mut progress = |what: &str, fraction: f64| {
        let pct = (fraction * 100.0) as u32;
        if tty {
            eprint!("\r\x1b[K[{pct:>3}%] {what}");
            let _ = std::io::stderr().flush();
        } else if pct / 10 != last_pct / 10 || last_pct == u32::MAX {
            eprintln!("[{pct:>3}%] {what}");
        }
        last_pct = pct;
    };
    let report = match run(&config, &mut progress) {
        Ok(r) => r,
        Err(e) => {
            if tty {
                eprintln!();
            }
            eprintln!("shmsock-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if tty {
        eprint!("\r\x1b[K");
    }
    print!("{}", format_report(&report));
    println!("(took {:.1} s)", started.elapsed().as_secs_f64());
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shmsock-bench: encoding JSON: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("shmsock-bench: writing {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `--connect`: the cost of a connection only (bench/src/connect.rs).
fn connect_main(ring_size: Option<u32>) -> ExitCode {
    match shmsock_bench::connect::measure_connect(2000, 200, ring_size) {
        Ok(r) => {
            println!("{}", r.format());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
