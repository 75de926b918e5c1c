//! The results of one launch: per placement, per transport and per size, with
//! the runs behind every median, and the [`Report`] that holds them all (its
//! JSON is the machine-readable output of both `shmsock-bench --json FILE` and
//! `shmsock bench --json FILE`).

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use shmsock::CipherSuite;

use crate::config::{serialize_suite, Config, Placement, TransportKind};
use crate::error::{BenchError, Result};
use crate::floor::FloorKind;
use crate::measure::{LatencyRun, ThroughputRun};
use crate::ratios::{GoalCheck, Ratio};
use crate::seal_rate::SealRate;
use crate::stats;

/// Round-trip figures of one message size.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyStat {
    /// Message size in bytes.
    pub size: usize,
    /// Median over runs of each run's p50, in ns.
    pub p50_ns: f64,
    /// Median over runs of each run's p99, in ns.
    pub p99_ns: f64,
    /// The runs.
    pub runs: Vec<LatencyRun>,
}

impl LatencyStat {
    pub(crate) fn new(size: usize) -> LatencyStat {
        LatencyStat { size, p50_ns: f64::NAN, p99_ns: f64::NAN, runs: Vec::new() }
    }
    pub(crate) fn finish(&mut self) {
        self.p50_ns = stats::median(&self.runs.iter().map(|r| r.p50_ns as f64).collect::<Vec<_>>());
        self.p99_ns = stats::median(&self.runs.iter().map(|r| r.p99_ns as f64).collect::<Vec<_>>());
    }
}

/// Throughput of one message size.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputStat {
    /// Message size in bytes.
    pub size: usize,
    /// Median over runs, in GB/s (10^9 bytes per second delivered).
    pub gb_per_s: f64,
    /// Stalled operations over all runs (see [`crate::measure::STALL`]).
    pub stalls: u32,
    /// The runs.
    pub runs: Vec<ThroughputRun>,
}

impl ThroughputStat {
    /// Runs that had at least one stall.
    pub fn stalled_runs(&self) -> usize {
        self.runs.iter().filter(|r| r.stalls > 0).count()
    }
    /// Median GB/s of the runs without a stall (NaN if none).
    pub fn gb_per_s_without_stalls(&self) -> f64 {
        stats::median(&self.runs.iter().filter(|r| r.stalls == 0).map(|r| r.gb_per_s).collect::<Vec<_>>())
    }
}

/// Everything measured on one transport in one placement.
#[derive(Clone, Debug, Serialize)]
pub struct TransportReport {
    /// Which transport.
    pub transport: TransportKind,
    /// Its label.
    pub label: String,
    /// Per ping-pong size.
    pub latency: Vec<LatencyStat>,
    /// Per streaming size.
    pub throughput: Vec<ThroughputStat>,
}

impl TransportReport {
    /// The latency figures of one size.
    pub fn latency_of(&self, size: usize) -> Option<&LatencyStat> {
        self.latency.iter().find(|l| l.size == size)
    }
    /// The throughput figures of one size.
    pub fn throughput_of(&self, size: usize) -> Option<&ThroughputStat> {
        self.throughput.iter().find(|l| l.size == size)
    }
}

/// The floor of one cipher in one placement.
#[derive(Clone, Debug, Serialize)]
pub struct FloorReport {
    /// The cipher sealing and opening 64 B each way.
    #[serde(serialize_with = "serialize_suite")]
    pub cipher: CipherSuite,
    /// One line only (the goal's floor), or the line and the frame.
    pub kind: FloorKind,
    /// How both sides wait: spinning (two cores) or yielding at each check (one core).
    pub wait: &'static str,
    /// Round trips of 64 B.
    pub latency: LatencyStat,
}

/// The results of one placement.
#[derive(Clone, Debug, Serialize)]
pub struct PlacementReport {
    /// Where the processes ran.
    pub placement: Placement,
    /// One name: "one core" or "two cores".
    pub name: &'static str,
    /// Per transport.
    pub transports: Vec<TransportReport>,
    /// Per cipher.
    pub floors: Vec<FloorReport>,
    /// One core's raw seal rate, per cipher and streaming size.
    pub seal_rates: Vec<SealRate>,
}

impl PlacementReport {
    /// The report of one transport.
    pub fn transport(&self, kind: TransportKind) -> Option<&TransportReport> {
        self.transports.iter().find(|t| t.transport == kind)
    }
    /// The floor (one line: the goal's) of one cipher.
    pub fn floor(&self, cipher: CipherSuite) -> Option<&FloorReport> {
        self.floor_of(cipher, FloorKind::Line)
    }
    /// A floor of one cipher.
    pub fn floor_of(&self, cipher: CipherSuite, kind: FloorKind) -> Option<&FloorReport> {
        self.floors.iter().find(|f| f.cipher == cipher && f.kind == kind)
    }
    /// One core's seal rate of one cipher and message size.
    pub fn seal_rate_of(&self, cipher: CipherSuite, size: usize) -> Option<&SealRate> {
        self.seal_rates.iter().find(|r| r.cipher == cipher && r.size == size)
    }
    /// The ping-pong sizes measured.
    pub fn latency_sizes(&self) -> Vec<usize> {
        self.transports.first().map(|t| t.latency.iter().map(|l| l.size).collect()).unwrap_or_default()
    }
    /// The streaming sizes measured.
    pub fn throughput_sizes(&self) -> Vec<usize> {
        self.transports.first().map(|t| t.throughput.iter().map(|l| l.size).collect()).unwrap_or_default()
    }
    /// The ciphers shmsock was measured with.
    pub fn shm_suites(&self) -> Vec<CipherSuite> {
        self.transports
            .iter()
            .filter_map(|t| match t.transport {
                TransportKind::Shm(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

/// Everything one launch measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// shmsock's version.
    pub shmsock_version: &'static str,
    /// The CPU, from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs available to the bench.
    pub cpus_available: usize,
    /// Whether the CPU has AES instructions (AEGIS-128L is the default then).
    pub aes_hardware: bool,
    /// The cipher shmsock uses by default here; the goals are judged on it.
    #[serde(serialize_with = "serialize_suite")]
    pub default_cipher: CipherSuite,
    /// What was run.
    pub config: Config,
    /// Per placement.
    pub placements: Vec<PlacementReport>,
    /// shmsock against the baselines, per metric and placement.
    pub ratios: Vec<Ratio>,
    /// The performance goals and whether this launch met them.
    pub goals: Vec<GoalCheck>,
    /// The 1-minute load average when the run started and when it ended (other
    /// work on the machine: above the CPU count, figures are noisy and the
    /// two-core placement is not two idle cores).
    pub load_average: [f64; 2],
    /// Anything skipped and why.
    pub notes: Vec<String>,
}

impl Report {
    /// True when other work competed for the cores: the higher 1-minute load
    /// average (start or end) above three quarters of the CPUs. Its figures are
    /// noisy, and spinning transports lose most.
    pub fn busy(&self) -> bool {
        let load = self.load_average.iter().copied().fold(f64::NAN, f64::max);
        load > self.cpus_available as f64 * 0.75
    }

    /// Writes the report as pretty JSON to `path`, or to stdout when `path` is `-`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| BenchError::new(format!("encoding the report: {e}")))?;
        text.push('\n');
        let written = if path.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        } else {
            std::fs::write(path, text)
        };
        written.map_err(|e| BenchError::new(format!("writing the report to {}: {e}", path.display())))
    }
}
