//! `shmsock-bench`: shmsock against Unix domain sockets between two processes,
//! pinned to one core and to two cores, in one launch.
//!
//! Usage: `shmsock-bench [--quick] [--json FILE] [--contended] ...` (`--help` lists all);
//! the options are parsed by clap into a [`Config`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;

use shmsock_bench::{format_report, maybe_run_peer, run, set_allocation_counter, Config, TransportKind};

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

/// shmsock against Unix domain sockets, between two processes, in one launch.
///
/// Measures shmsock (each cipher), a plaintext Unix socket and a Unix socket
/// with the same AEAD, between two processes pinned to one core and to two
/// cores, plus the shared-cache-line floor, and prints the figures and their
/// ratios. About 75 seconds; --quick takes about 10 seconds. Read the figures
/// as ratios within one launch, on an idle machine.
#[derive(Parser)]
#[command(name = "shmsock-bench", version)]
struct Args {
    /// The short run (about 10 s) instead of the full one (about 75 s)
    #[arg(long)]
    quick: bool,
    /// Also write the whole report as JSON to FILE (`-`: stdout, instead of the table)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Timed runs per figure (each figure is their median)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: Option<u32>,
    /// Skip the shared-cache-line floor
    #[arg(long)]
    no_floor: bool,
    /// Only the placement with both processes on one core
    #[arg(long, conflicts_with = "two_cores_only")]
    one_core_only: bool,
    /// Only the placement with the processes on two cores
    #[arg(long)]
    two_cores_only: bool,
    /// Measure each placement again with a busy-looping process on the measuring CPU
    #[arg(long)]
    contended: bool,
    /// shmsock's spin budget in microseconds [default: the library's]
    #[arg(long, value_name = "US")]
    shm_spin_us: Option<u64>,
    /// shmsock's ring size in bytes (a power of two) [default: the library's]
    #[arg(long, value_name = "BYTES")]
    shm_ring: Option<u32>,
    /// Measure only what a connection costs: connect p50 and rate against the
    /// handshake's X25519 work and a Unix socket, memory and fds per idle connection
    #[arg(long)]
    connect: bool,
    /// Measure only the 64 B round trip of N fresh, unpinned process pairs
    /// against pairs pinned to two cores (placement left to the kernel)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    unpinned: Option<u32>,
    /// Per-call timeout of the measuring side's shmsock calls during ping-pong
    #[arg(long, value_name = "MS")]
    ping_timeout_ms: Option<u64>,
    /// Ping-pong message sizes in bytes, comma-separated, or `none`
    #[arg(long, value_name = "64,1024|none", value_parser = sizes)]
    latency_sizes: Option<Sizes>,
    /// Streaming message sizes in bytes, comma-separated, or `none`
    #[arg(long, value_name = "65536,1048576|none", value_parser = sizes)]
    throughput_sizes: Option<Sizes>,
    /// Only these transports, comma-separated (`--only x` lists the ids)
    #[arg(long, value_name = "ID,...", value_delimiter = ',', value_parser = transport_id)]
    only: Vec<String>,
}

/// A list of message sizes (a newtype, so clap takes the whole list as one value).
#[derive(Clone)]
struct Sizes(Vec<usize>);

fn sizes(text: &str) -> Result<Sizes, String> {
    if text == "none" {
        return Ok(Sizes(Vec::new()));
    }
    let parsed: Result<Vec<usize>, _> = text.split(',').map(|x| x.trim().parse::<usize>()).collect();
    match parsed {
        Ok(v) if v.iter().all(|s| (2..=1 << 20).contains(s)) => Ok(Sizes(v)),
        _ => Err(format!("'{text}' is not a comma-separated list of byte counts from 2 to 1048576, nor `none`")),
    }
}

fn transport_id(text: &str) -> Result<String, String> {
    let known = TransportKind::all_ids();
    if known.iter().any(|k| k == text) {
        Ok(text.to_string())
    } else {
        Err(format!("'{text}' is not one of {}", known.join(", ")))
    }
}

impl Args {
    fn config(self) -> Config {
        let mut config = if self.quick { Config::quick() } else { Config::default() };
        if let Some(n) = self.runs {
            config.runs = n as usize;
        }
        config.floor = !self.no_floor;
        config.one_core = !self.two_cores_only;
        config.two_cores = !self.one_core_only;
        config.contended = self.contended;
        config.shm_spin = self.shm_spin_us.map(Duration::from_micros);
        config.ping_timeout = self.ping_timeout_ms.map(Duration::from_millis);
        config.shm_ring_size = self.shm_ring;
        if let Some(Sizes(v)) = self.latency_sizes {
            config.latency_sizes = v;
        }
        if let Some(Sizes(v)) = self.throughput_sizes {
            config.throughput_sizes = v;
        }
        config.only = self.only;
        config
    }
}

fn main() -> ExitCode {
    if let Some(code) = maybe_run_peer().or_else(shmsock_bench::unpinned::maybe_run_echo_peer) {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    set_allocation_counter(allocation_count);
    let args = Args::parse();
    if args.connect {
        // The cost of a connection only (bench/src/connect.rs).
        return print_section(connect_section(2000, args.shm_ring));
    }
    if let Some(n) = args.unpinned {
        // Placement left to the kernel (bench/src/unpinned.rs).
        return print_section(unpinned_section(n as usize));
    }
    let json = args.json.clone();
    // The connection and placement sections run with the full transport set only.
    let (quick, ring, extra) = (args.quick, args.shm_ring, args.only.is_empty());
    let config = args.config();
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
    let to_stdout = json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !to_stdout {
        print!("{}", format_report(&report));
        // What a connection costs and where the kernel places unpinned peers
        // (bench/src/connect.rs, bench/src/unpinned.rs).
        if extra {
            println!("\n== connections");
            let _ = print_section(connect_section(if quick { 500 } else { 2000 }, ring));
            println!("\n== placement left to the kernel");
            let _ = print_section(unpinned_section(if quick { 4 } else { 10 }));
        }
        println!("(took {:.1} s)", started.elapsed().as_secs_f64());
    }
    if let Some(path) = json {
        if let Err(e) = report.write_json(&path) {
            eprintln!("shmsock-bench: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The cost of a connection, with its goals.
fn connect_section(connections: usize, ring: Option<u32>) -> shmsock_bench::Result<String> {
    let r = shmsock_bench::connect::measure_connect(connections, 200, ring)?;
    Ok(format!("{}\n{}", r.format(), r.goals()))
}

/// `launches` unpinned launches against half as many pinned to two cores.
fn unpinned_section(launches: usize) -> shmsock_bench::Result<String> {
    let r = shmsock_bench::unpinned::measure_unpinned(launches, launches.div_ceil(2), [0, 1])?;
    Ok(format!("{}\n{}", r.format(), r.goal()))
}

/// Prints a section's text, or its error.
fn print_section(text: shmsock_bench::Result<String>) -> ExitCode {
    match text {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
