//! The run loop: for each placement, start every transport's peer and the
//! floors, warm them up, then interleave the timed runs of all of them round by
//! round (so background load hits them alike), and gather the medians into a
//! [`Report`]. A watchdog ends the bench if a step hangs.

use std::path::PathBuf;
use std::time::Duration;

use shmsock::CipherSuite;

use crate::affinity;
use crate::config::{Config, Placement, TransportKind};
use crate::error::{BenchError, Result};
use crate::floor::{self, FloorKind, FloorSession};
use crate::measure::{self, SampleBuffer};
use crate::peer::{self, PeerProcess};
use crate::ratios;
use crate::report::{FloorReport, LatencyStat, PlacementReport, Report, ThroughputStat, TransportReport};
use crate::seal_rate::SealRate;
use crate::session::{start_session, Session};
use crate::stats;
use crate::units::size_name;
use crate::watchdog::Watchdog;

/// The 1-minute load average (NaN if unknown).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Picks the placements to measure from the config and the CPUs we may use.
fn placements(config: &Config, notes: &mut Vec<String>) -> Result<Vec<Placement>> {
    let allowed = affinity::current()?;
    let Some(&first) = allowed.first() else {
        return Err(BenchError::new("this process may run on no CPU"));
    };
    let [a, b] = config.cpus;
    let (a, b) = if allowed.contains(&a) && allowed.contains(&b) && a != b {
        (a, b)
    } else if allowed.len() >= 2 {
        notes.push(format!("CPUs {a} and {b} are not both available; using {} and {}", allowed[0], allowed[1]));
        (allowed[0], allowed[1])
    } else {
        (first, first)
    };
    let mut v = Vec::new();
    let hogs: &[bool] = if config.contended { &[false, true] } else { &[false] };
    for &hog in hogs {
        if config.one_core {
            v.push(Placement { parent_cpu: a, peer_cpu: a, hog });
        }
        if config.two_cores {
            if a != b {
                v.push(Placement { parent_cpu: a, peer_cpu: b, hog });
            } else if !hog {
                notes.push("only one CPU is available: the two-core placement was skipped".into());
            }
        }
    }
    Ok(v)
}

/// The transports to measure, in report order.
fn transport_kinds(config: &Config, suites: &[CipherSuite]) -> Vec<TransportKind> {
    let mut kinds = TransportKind::all(suites);
    if !config.only.is_empty() {
        kinds.retain(|k| config.only.contains(&k.id()));
    }
    kinds
}

/// What stays the same across placements, and the progress of the launch.
struct Runner<'a> {
    config: &'a Config,
    exe: PathBuf,
    suites: Vec<CipherSuite>,
    kinds: Vec<TransportKind>,
    samples: SampleBuffer,
    scratch: Vec<u8>,
    watchdog: Watchdog,
    progress: &'a mut dyn FnMut(&str, f64),
    done: usize,
    total: f64,
    /// Numbers the shmsock endpoints of this launch.
    ordinal: usize,
}

impl Runner<'_> {
    /// Reports the next step (and tells the watchdog we are not stuck).
    fn step(&mut self, what: &str) {
        self.watchdog.beat();
        (self.progress)(what, self.done as f64 / self.total);
        self.done += 1;
    }

    fn placement(&mut self, placement: Placement) -> Result<PlacementReport> {
        let config = self.config;
        affinity::pin(&[placement.parent_cpu])?;
        let pname = placement.name();
        let hog = if placement.hog {
            self.step(&format!("{pname}: starting the hog on CPU {}", placement.parent_cpu));
            Some(PeerProcess::spawn(&self.exe, placement.parent_cpu, &["hog".to_string()], None)?)
        } else {
            None
        };
        let mut sessions = self.start_sessions(placement)?;
        let mut floors = self.start_floors(placement)?;
        let mut reports: Vec<TransportReport> = self.kinds.iter().map(|&k| empty_report(k, config)).collect();
        let mut floor_reports: Vec<FloorReport> = floors
            .iter()
            .map(|((suite, kind), _)| FloorReport {
                cipher: *suite,
                kind: *kind,
                wait: if placement.shared() { "yield" } else { "spin" },
                latency: LatencyStat::new(floor::FLOOR_SIZE),
            })
            .collect();
        let mut seal_rates: Vec<SealRate> = sessions
            .iter()
            .filter_map(|s| match s.kind {
                TransportKind::Shm(suite) => Some(suite),
                _ => None,
            })
            .flat_map(|suite| config.throughput_sizes.iter().map(move |&size| SealRate::new(suite, size)))
            .collect();
        for round in 0..config.runs {
            let r = format!("run {}/{}", round + 1, config.runs);
            for (li, &size) in config.latency_sizes.iter().enumerate() {
                for (s, rep) in sessions.iter_mut().zip(&mut reports) {
                    self.step(&format!("{pname}: {} round trip {} ({r})", s.kind.label(), size_name(size)));
                    s.transport.set_timeout(config.ping_timeout);
                    let run = measure::latency_run(
                        s.transport.as_mut(),
                        size,
                        config.run_warmup,
                        config.latency_run,
                        &mut self.samples,
                        &mut self.scratch,
                    )
                    .map_err(|e| e.context(&format!("{pname}, {}", s.kind.label())))?;
                    rep.latency[li].runs.push(run);
                }
            }
            for (((suite, kind), f), rep) in floors.iter_mut().zip(&mut floor_reports) {
                self.step(&format!("{pname}: floor ({}) with {} ({r})", kind.describe(), suite.name()));
                rep.latency.runs.push(f.run(config.run_warmup, config.latency_run, &mut self.samples)?);
            }
            for (ti, &size) in config.throughput_sizes.iter().enumerate() {
                for (s, rep) in sessions.iter_mut().zip(&mut reports) {
                    self.step(&format!("{pname}: {} throughput {} ({r})", s.kind.label(), size_name(size)));
                    let run = measure::throughput_run(
                        s.transport.as_mut(),
                        size,
                        config.run_warmup,
                        config.throughput_run,
                        Some(config.shm_timeout),
                        &mut self.scratch,
                    )
                    .map_err(|e| e.context(&format!("{pname}, {}", s.kind.label())))?;
                    rep.throughput[ti].runs.push(run);
                }
            }
            for rate in &mut seal_rates {
                self.step(&format!("{pname}: seal rate of {} {} ({r})", rate.cipher.name(), size_name(rate.size)));
                rate.run(config.throughput_run / 3);
            }
        }
        self.watchdog.unwatch_all();
        for s in sessions {
            let Session { mut transport, peer, .. } = s;
            let _ = transport.send(b"Q");
            drop(transport);
            peer.finish(Duration::from_millis(500));
        }
        for (_, f) in floors {
            f.finish();
        }
        drop(hog);
        for rep in &mut reports {
            rep.latency.iter_mut().for_each(LatencyStat::finish);
            for t in &mut rep.throughput {
                t.gb_per_s = stats::median(&t.runs.iter().map(|r| r.gb_per_s).collect::<Vec<_>>());
                t.stalls = t.runs.iter().map(|r| r.stalls).sum();
            }
        }
        floor_reports.iter_mut().for_each(|f| f.latency.finish());
        seal_rates.iter_mut().for_each(SealRate::finish);
        Ok(PlacementReport { placement, name: pname, transports: reports, floors: floor_reports, seal_rates })
    }

    /// Starts every transport's peer, then warms each up (untimed).
    fn start_sessions(&mut self, placement: Placement) -> Result<Vec<Session>> {
        let config = self.config;
        let pname = placement.name();
        let mut sessions = Vec::new();
        for kind in self.kinds.clone() {
            self.step(&format!("{pname}: starting {}", kind.label()));
            self.ordinal += 1;
            let s = start_session(kind, &self.exe, placement.peer_cpu, config, self.ordinal)
                .map_err(|e| e.context(&format!("{pname}, {}", kind.label())))?;
            self.watchdog.watch(s.peer.id());
            sessions.push(s);
        }
        for s in &mut sessions {
            self.step(&format!("{pname}: warming up {}", s.kind.label()));
            let t = s.transport.as_mut();
            let lat = *config.latency_sizes.first().unwrap_or(&64);
            measure::latency_run(t, lat, config.warmup / 2, Duration::ZERO, &mut self.samples, &mut self.scratch)?;
            let thr = *config.throughput_sizes.last().unwrap_or(&(1 << 20));
            let timeout = Some(config.shm_timeout);
            measure::throughput_run(t, thr, Duration::ZERO, config.warmup / 2, timeout, &mut self.scratch)?;
        }
        Ok(sessions)
    }

    /// Starts and warms up the floors of every cipher (none unless configured).
    fn start_floors(&mut self, placement: Placement) -> Result<Vec<((CipherSuite, FloorKind), FloorSession)>> {
        let mut floors = Vec::new();
        if !self.config.floor {
            return Ok(floors);
        }
        for suite in self.suites.clone() {
            for kind in [FloorKind::Line, FloorKind::Frame] {
                let what =
                    format!("{}: starting the floor ({}) with {}", placement.name(), kind.describe(), suite.name());
                self.step(&what);
                let mut f = FloorSession::start(&self.exe, placement.peer_cpu, suite, kind, !placement.shared())?;
                self.watchdog.watch(f.peer_id());
                f.run(self.config.warmup, Duration::ZERO, &mut self.samples)?;
                floors.push(((suite, kind), f));
            }
        }
        Ok(floors)
    }
}

/// A transport's report before its runs.
fn empty_report(kind: TransportKind, config: &Config) -> TransportReport {
    TransportReport {
        transport: kind,
        label: kind.label(),
        latency: config.latency_sizes.iter().map(|&s| LatencyStat::new(s)).collect(),
        throughput: config
            .throughput_sizes
            .iter()
            .map(|&s| ThroughputStat { size: s, gb_per_s: f64::NAN, stalls: 0, runs: Vec::new() })
            .collect(),
    }
}

/// How many steps the launch reports, for the progress fraction.
fn step_count(config: &Config, kinds: usize, suites: usize, placements: &[Placement]) -> f64 {
    let floors = if config.floor { 2 * suites } else { 0 };
    let per_placement = 2 * kinds
        + config.runs * ((config.latency_sizes.len() + config.throughput_sizes.len()) * kinds + floors)
        + config.runs * suites * config.throughput_sizes.len()
        + floors;
    let hogs = placements.iter().filter(|p| p.hog).count();
    (per_placement * placements.len() + hogs).max(1) as f64
}

/// Runs the whole benchmark. `progress(what, fraction_done)` is called before
/// each step.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str, f64)) -> Result<Report> {
    shmsock::sodium::init()?;
    for &s in config.latency_sizes.iter().chain(&config.throughput_sizes) {
        if !(2..=(1 << 20)).contains(&s) {
            return Err(BenchError::new(format!("message size {s} is out of range (2 B to 1 MiB)")));
        }
    }
    let exe = match &config.peer_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let mut notes = Vec::new();
    let suites = config.suites();
    let kinds = transport_kinds(config, &suites);
    let placements = placements(config, &mut notes)?;
    let load_before = load_average();
    let original_affinity = affinity::current()?;
    let mut runner = Runner {
        config,
        exe,
        total: step_count(config, kinds.len(), suites.len(), &placements),
        suites,
        kinds,
        samples: SampleBuffer::new(config.max_samples.max(16)),
        scratch: vec![0u8; peer::PEER_BUFFER],
        watchdog: Watchdog::start(config.watchdog),
        progress,
        done: 0,
        ordinal: 0,
    };
    let mut results = Vec::new();
    let mut outcome = Ok(());
    for &placement in &placements {
        match runner.placement(placement) {
            Ok(r) => results.push(r),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let _ = affinity::pin(&original_affinity);
    if runner.watchdog.fired() {
        let e = outcome.err().map(|e| format!(": {e}")).unwrap_or_default();
        return Err(BenchError::new(format!(
            "no progress for {:?}: a transport hung (a side asleep and never woken?); the peers were killed{e}",
            config.watchdog
        )));
    }
    let Runner { watchdog, progress, .. } = runner;
    drop(watchdog);
    outcome?;
    progress("done", 1.0);
    Ok(finish_report(config, results, [load_before, load_average()], notes))
}

/// The report of a finished launch: the figures, their ratios and the goals.
fn finish_report(config: &Config, placements: Vec<PlacementReport>, load: [f64; 2], notes: Vec<String>) -> Report {
    let mut report = Report {
        shmsock_version: shmsock::VERSION,
        cpu_model: cpu_model(),
        cpus_available: affinity::available_cpus(),
        aes_hardware: shmsock::sodium::has_aes_hardware(),
        default_cipher: Config::default_suite(),
        config: config.clone(),
        placements,
        load_average: load,
        ratios: Vec::new(),
        goals: Vec::new(),
        notes,
    };
    report.ratios = ratios::ratios(&report);
    report.goals = ratios::goals(&report);
    if report.busy() {
        report.notes.push(format!(
            "the machine was busy (load average {:.1} -> {:.1} on {} CPUs): other processes shared the cores, \
             so the figures are noisy, and spinning transports lose most (run again on an idle machine)",
            report.load_average[0], report.load_average[1], report.cpus_available
        ));
    }
    report
}
