//! Ratios, goals and the printed table.

use std::fmt::Write as _;

use serde::Serialize;
use shmsock::CipherSuite;

use crate::{PlacementReport, Report, TransportKind};

/// "64 B", "1 KiB", "1 MiB".
pub fn size_name(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// "850 ns", "12.3 us".
pub fn time_name(ns: f64) -> String {
    if ns.is_nan() {
        "-".into()
    } else if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else if ns < 100_000.0 {
        format!("{:.2} us", ns / 1000.0)
    } else {
        format!("{:.0} us", ns / 1000.0)
    }
}

/// shmsock against a baseline on one metric. `ratio` > 1 means shmsock is better
/// (latency: baseline time / shmsock time; throughput: shmsock rate / baseline rate).
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// "one core" or "two cores".
    pub placement: &'static str,
    /// E.g. "round trip 64 B p50", "throughput 1 MiB".
    pub metric: String,
    /// The shmsock transport id.
    pub transport: String,
    /// The baseline id (`unix-plain`, `unix-<cipher>`, `floor-<cipher>`,
    /// `floor+frame-<cipher>`).
    pub baseline: String,
    /// How many times better shmsock is.
    pub ratio: f64,
}

/// One performance goal, judged on one cipher in one launch.
#[derive(Clone, Debug, Serialize)]
pub struct GoalCheck {
    /// The goal in words.
    pub goal: String,
    /// The cipher of the shmsock figure.
    pub cipher: String,
    /// True for the cipher shmsock uses by default on this machine.
    pub default_cipher: bool,
    /// The measured ratio.
    pub measured: f64,
    /// ">=" or "<=".
    pub comparison: &'static str,
    /// The target.
    pub target: f64,
    /// Whether it held (None: not measured).
    pub met: Option<bool>,
}

fn latency_metrics(p: &PlacementReport) -> Vec<usize> {
    p.transports.first().map(|t| t.latency.iter().map(|l| l.size).collect()).unwrap_or_default()
}

fn throughput_metrics(p: &PlacementReport) -> Vec<usize> {
    p.transports.first().map(|t| t.throughput.iter().map(|l| l.size).collect()).unwrap_or_default()
}

fn shm_suites(p: &PlacementReport) -> Vec<CipherSuite> {
    p.transports
        .iter()
        .filter_map(|t| match t.transport {
            TransportKind::Shm(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// shmsock against the plaintext Unix socket and the same-AEAD Unix socket, on
/// every metric and placement, and against the floor (64 B p50).
pub fn ratios(report: &Report) -> Vec<Ratio> {
    let mut out = Vec::new();
    for p in &report.placements {
        for suite in shm_suites(p) {
            let shm = p.transport(TransportKind::Shm(suite)).unwrap();
            for base_kind in [TransportKind::UnixPlain, TransportKind::UnixAead(suite)] {
                let Some(base) = p.transport(base_kind) else {
                    continue;
                };
                for size in latency_metrics(p) {
                    let (Some(s), Some(b)) = (shm.latency_of(size), base.latency_of(size)) else {
                        continue;
                    };
                    for (q, sv, bv) in [("p50", s.p50_ns, b.p50_ns), ("p99", s.p99_ns, b.p99_ns)] {
                        out.push(Ratio {
                            placement: p.name,
                            metric: format!("round trip {} {q}", size_name(size)),
                            transport: shm.transport.id(),
                            baseline: base_kind.id(),
                            ratio: bv / sv,
                        });
                    }
                }
                for size in throughput_metrics(p) {
                    let (Some(s), Some(b)) = (shm.throughput_of(size), base.throughput_of(size)) else {
                        continue;
                    };
                    out.push(Ratio {
                        placement: p.name,
                        metric: format!("throughput {}", size_name(size)),
                        transport: shm.transport.id(),
                        baseline: base_kind.id(),
                        ratio: s.gb_per_s / b.gb_per_s,
                    });
                }
            }
            for kind in [crate::FloorKind::Line, crate::FloorKind::Frame] {
                if let (Some(f), Some(s)) = (p.floor_of(suite, kind), shm.latency_of(crate::floor::FLOOR_SIZE)) {
                    out.push(Ratio {
                        placement: p.name,
                        metric: format!("round trip {} p50", size_name(crate::floor::FLOOR_SIZE)),
                        transport: shm.transport.id(),
                        baseline: match kind {
                            crate::FloorKind::Line => format!("floor-{}", suite.name()),
                            crate::FloorKind::Frame => format!("floor+frame-{}", suite.name()),
                        },
                        ratio: f.latency.p50_ns / s.p50_ns,
                    });
                }
            }
        }
    }
    out
}

/// The goals of DESIGN.md's performance rules, judged for each cipher.
pub fn goals(report: &Report) -> Vec<GoalCheck> {
    let mut out = Vec::new();
    let one = report.placements.iter().find(|p| p.placement.shared() && !p.placement.hog);
    let two = report.placements.iter().find(|p| !p.placement.shared() && !p.placement.hog);
    let suites: Vec<CipherSuite> = report.placements.first().map(shm_suites).unwrap_or_default();
    let rtt = |p: Option<&PlacementReport>, k: TransportKind| {
        p.and_then(|p| p.transport(k)).and_then(|t| t.latency_of(64)).map(|l| l.p50_ns)
    };
    let thr = |p: Option<&PlacementReport>, k: TransportKind| {
        p.and_then(|p| p.transport(k)).and_then(|t| t.throughput_of(1 << 20)).map(|l| l.gb_per_s)
    };
    for suite in suites {
        let mut push = |goal: &str, measured: Option<f64>, comparison: &'static str, target: f64| {
            let met =
                measured.filter(|m| !m.is_nan()).map(|m| if comparison == ">=" { m >= target } else { m <= target });
            out.push(GoalCheck {
                goal: goal.to_string(),
                cipher: suite.name().to_string(),
                default_cipher: suite == report.default_cipher,
                measured: measured.unwrap_or(f64::NAN),
                comparison,
                target,
                met,
            });
        };
        let shm = TransportKind::Shm(suite);
        let plain = TransportKind::UnixPlain;
        push(
            "64 B round trip p50, two cores: at least 10x faster than the plaintext Unix socket",
            rtt(two, plain).zip(rtt(two, shm)).map(|(b, s)| b / s),
            ">=",
            10.0,
        );
        let floor = two.and_then(|p| p.floor(suite)).map(|f| f.latency.p50_ns);
        push(
            "64 B round trip p50, two cores: within 2x of the floor (shmsock / floor)",
            rtt(two, shm).zip(floor).map(|(s, f)| s / f),
            "<=",
            2.0,
        );
        push(
            "64 B round trip p50, one core: no slower than the plaintext Unix socket",
            rtt(one, plain).zip(rtt(one, shm)).map(|(b, s)| b / s),
            ">=",
            1.0,
        );
        push(
            "1 MiB throughput, two cores: at least 1.2x the plaintext Unix socket, encrypting",
            thr(two, shm).zip(thr(two, plain)).map(|(s, b)| s / b),
            ">=",
            1.2,
        );
    }
    out
}

fn ratio_name(r: f64) -> String {
    if r.is_nan() {
        "-".into()
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

/// The whole report as text: one table per placement, the ratios, the goals.
pub fn format_report(report: &Report) -> String {
    let mut o = String::new();
    let c = &report.config;
    let _ = writeln!(
        o,
        "shmsock {} bench: {}, {} CPUs, AES instructions: {} (default cipher {})",
        report.shmsock_version,
        report.cpu_model,
        report.cpus_available,
        if report.aes_hardware { "yes" } else { "no" },
        report.default_cipher.name()
    );
    let _ = writeln!(
        o,
        "load average {:.2} at the start, {:.2} at the end",
        report.load_average[0], report.load_average[1]
    );
    let _ = writeln!(
        o,
        "two processes; each figure is the median of {} interleaved runs (latency runs {} ms, throughput runs {} ms); \
         latency = ping-pong round trip, throughput = one-way, acknowledged, GB/s = 10^9 B/s",
        c.runs,
        c.latency_run.as_millis(),
        c.throughput_run.as_millis()
    );
    for p in &report.placements {
        let lat = latency_metrics(p);
        let thr = throughput_metrics(p);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "== {} (measuring process on CPU {}, peer on CPU {}{}) ==",
            p.name,
            p.placement.parent_cpu,
            p.placement.peer_cpu,
            if p.placement.hog {
                format!(", a busy-looping hog on CPU {}", p.placement.parent_cpu)
            } else {
                String::new()
            }
        );
        let mut h1 = format!("{:<52}", "");
        let mut h2 = format!("{:<52}", "transport");
        for &s in &lat {
            let _ = write!(h1, "{:^22}", format!("round trip {}", size_name(s)));
            let _ = write!(h2, "{:>11}{:>11}", "p50", "p99");
        }
        for &s in &thr {
            let _ = write!(h1, "{:>12}", size_name(s));
            let _ = write!(h2, "{:>12}", "GB/s");
        }
        let _ = writeln!(o, "{}", h1.trim_end());
        let _ = writeln!(o, "{h2}");
        for t in &p.transports {
            let mut line = format!("{:<52}", t.label);
            for l in &t.latency {
                let _ = write!(line, "{:>11}{:>11}", time_name(l.p50_ns), time_name(l.p99_ns));
            }
            for x in &t.throughput {
                let _ = write!(line, "{:>12.2}", x.gb_per_s);
            }
            let _ = writeln!(o, "{line}");
        }
        for f in &p.floors {
            let mut line = format!("{:<52}", format!("floor {} ({}, {})", f.cipher.name(), f.kind.describe(), f.wait));
            for &s in &lat {
                if s == f.latency.size {
                    let _ = write!(line, "{:>11}{:>11}", time_name(f.latency.p50_ns), time_name(f.latency.p99_ns));
                } else {
                    let _ = write!(line, "{:>11}{:>11}", "", "");
                }
            }
            let _ = writeln!(o, "{}", line.trim_end());
        }
    }

    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "== ratios: how many times better shmsock is (latency: baseline/shmsock, throughput: shmsock/baseline) =="
    );
    let mut metrics: Vec<String> = Vec::new();
    for r in &report.ratios {
        if !r.baseline.starts_with("floor") && !metrics.contains(&r.metric) {
            metrics.push(r.metric.clone());
        }
    }
    let short = |m: &str| m.replace("round trip ", "rtt ").replace("throughput ", "thr ");
    let mut header = format!("{:<16}{:<56}", "placement", "shmsock vs baseline");
    for m in &metrics {
        let _ = write!(header, "{:>14}", short(m));
    }
    let _ = writeln!(o, "{header}");
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    for r in &report.ratios {
        if r.baseline.starts_with("floor") {
            continue;
        }
        let key = (r.placement, r.transport.clone(), r.baseline.clone());
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for (placement, transport, baseline) in &rows {
        let mut line = format!("{:<16}{:<56}", placement, format!("{} vs {}", transport, baseline));
        for m in &metrics {
            let r = report.ratios.iter().find(|r| {
                r.placement == *placement && &r.transport == transport && &r.baseline == baseline && &r.metric == m
            });
            let _ = write!(line, "{:>14}", r.map(|r| ratio_name(r.ratio)).unwrap_or_else(|| "-".into()));
        }
        let _ = writeln!(o, "{line}");
    }
    for r in report.ratios.iter().filter(|r| r.baseline.starts_with("floor")) {
        let _ = writeln!(
            o,
            "{:<16}{:<56}{:>14}   (floor/shmsock; shmsock takes {} the floor's round trip)",
            r.placement,
            format!("{} vs {}", r.transport, r.baseline),
            ratio_name(r.ratio),
            ratio_name(1.0 / r.ratio)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "== goals (judged on the default cipher, {}; the other cipher for information) ==",
        report.default_cipher.name()
    );
    for g in &report.goals {
        let verdict = match g.met {
            Some(true) => "MET ",
            Some(false) => "MISS",
            None => "n/a ",
        };
        let _ = writeln!(
            o,
            "[{verdict}] {:<84} {:<18} measured {:>8}  goal {} {}{}",
            g.goal,
            g.cipher,
            ratio_name(g.measured),
            g.comparison,
            ratio_name(g.target),
            if g.default_cipher { "" } else { "  (info)" }
        );
    }
    // Heap allocations of the measuring side while timed (DESIGN: none in steady state).
    let mut alloc_lines = Vec::new();
    for p in &report.placements {
        for t in &p.transports {
            let lat_allocs: Option<u64> = t.latency.iter().flat_map(|l| &l.runs).map(|r| r.allocations).sum();
            let lat_msgs: usize = t.latency.iter().flat_map(|l| &l.runs).map(|r| r.samples).sum();
            let thr_allocs: Option<u64> = t.throughput.iter().flat_map(|l| &l.runs).map(|r| r.allocations).sum();
            let thr_msgs: u64 = t.throughput.iter().flat_map(|l| &l.runs).map(|r| r.messages).sum();
            if let (Some(la), Some(ta)) = (lat_allocs, thr_allocs) {
                alloc_lines.push(format!(
                    "{:<16}{:<32} {:>9} allocations in {:>9} timed round trips, {:>7} in {:>8} streamed messages",
                    p.name, t.label, la, lat_msgs, ta, thr_msgs
                ));
            }
        }
    }
    if !alloc_lines.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "== heap allocations by the measuring process while timed (goal: none in steady state) ==");
        for l in alloc_lines {
            let _ = writeln!(o, "{l}");
        }
    }
    let mut stalled = false;
    for p in &report.placements {
        for t in &p.transports {
            for x in &t.throughput {
                if x.stalls > 0 {
                    if !stalled {
                        let _ = writeln!(o);
                        let _ = writeln!(
                            o,
                            "== stalls: single operations slower than {} ms (scheduling delays under load; ~{} ms = a call that only \
                             returned at its timeout: a lost wake-up) ==",
                            crate::measure::STALL.as_millis(),
                            report.config.shm_timeout.as_millis()
                        );
                        stalled = true;
                    }
                    let worst = x.runs.iter().map(|r| r.max_op_us).fold(0.0, f64::max);
                    let _ = writeln!(
                        o,
                        "{:<16}{:<32} throughput {:<7}: {} of {} runs stalled ({} stalls, worst {:.0} ms); median of the other runs: {:.2} GB/s",
                        p.name,
                        t.label,
                        size_name(x.size),
                        x.stalled_runs(),
                        x.runs.len(),
                        x.stalls,
                        worst / 1000.0,
                        x.gb_per_s_without_stalls()
                    );
                }
            }
        }
    }
    for n in &report.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}
