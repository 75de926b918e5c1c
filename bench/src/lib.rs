//! shmsock-bench: shmsock against Unix domain sockets, between two processes.
//!
//! One call to [`run`] measures, in one launch, for each placement (both
//! processes pinned to one core; pinned to two different cores):
//! - round-trip latency (p50, p99) of ping-pong with small messages (64 B, 1 KiB),
//! - one-way throughput with large messages (64 KiB, 1 MiB), acknowledged at the end,
//!
//! over shmsock with each cipher, a plaintext Unix socket and a Unix socket carrying
//! the same AEAD frames, plus the "floor": a spinning ping-pong over one shared cache
//! line with a 64 B seal and open each way (and a variant that also carries the
//! sealed frame through shared memory). Every figure is the median of several
//! runs, and the runs of all transports are interleaved so background load hits them
//! alike. [`Config::contended`] adds each placement again with a busy-looping
//! process on the measuring CPU. The measuring side also counts its heap
//! allocations while timed ([`set_allocation_counter`]) and single operations that
//! stall. Results are compared as ratios ([`Report::ratios`], [`Report::goals`]),
//! never as bare times: see DESIGN.md, "Performance rules".
//!
//! The peer process is the host binary re-executed with the hidden subcommand
//! [`PEER_SUBCOMMAND`]; a host binary (the `shmsock-bench` binary, or the CLI's
//! `shmsock bench`) must call [`maybe_run_peer`] first thing in `main`.

//!
//! Modules, one concept each: [`config`] (what to measure), `session` and
//! [`transport`] (the peers and the transports under test), [`floor`],
//! [`measure`] (one timed run), [`seal_rate`] (the raw cipher's ceiling),
//! `run` (the loop over placements), [`report`] (the results), [`ratios`]
//! (ratios and goals), [`table`] (the text table), [`units`] (how figures are
//! written).

#![warn(missing_docs)]

pub mod affinity;
pub mod config;
pub mod connect;
mod error;
pub mod floor;
pub mod isolation;
pub mod measure;
mod peer;
pub mod pubsub;
pub mod ratios;
pub mod report;
mod run;
pub mod seal_rate;
pub mod server;
mod session;
pub mod stats;
pub mod table;
pub mod transport;
pub mod units;
pub mod unpinned;
mod watchdog;

pub use config::{Config, Placement, TransportKind};
pub use error::{BenchError, Result};
pub use floor::FloorKind;
pub use measure::{set_allocation_counter, LatencyRun, ThroughputRun};
pub use peer::{peer_main, PeerProcess, PEER_SUBCOMMAND};
pub use ratios::{GoalCheck, Ratio};
pub use report::{FloorReport, LatencyStat, PlacementReport, Report, ThroughputStat, TransportReport};
pub use run::{load_average, run};
pub use table::format_report;

/// If this process was started as a bench peer (`<exe> __peer ...`), runs the
/// peer and returns its exit code; else returns None at once.
pub fn maybe_run_peer() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(|s| s.as_str()) != Some(PEER_SUBCOMMAND) {
        return None;
    }
    Some(match peer_main(&args[2..]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmsock-bench peer: {e}");
            1
        }
    })
}
