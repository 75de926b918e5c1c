//! shmsock against its baselines, as ratios ([`Ratio`], "how many times better"),
//! and DESIGN.md's performance goals judged on them ([`GoalCheck`]). Figures of
//! one launch are only ever compared with each other.

use serde::Serialize;
use shmsock::CipherSuite;

use crate::config::TransportKind;
use crate::floor::{FloorKind, FLOOR_SIZE};
use crate::report::{PlacementReport, Report};
use crate::units::size_name;

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
    /// `floor+frame-<cipher>`, `seal-<cipher>`: one core's raw seal rate).
    pub baseline: String,
    /// How many times better shmsock is.
    pub ratio: f64,
}

/// The [`Ratio::metric`] of a round trip of `size` bytes at quantile `q` ("p50", "p99").
pub fn round_trip_metric(size: usize, q: &str) -> String {
    format!("round trip {} {q}", size_name(size))
}

/// The [`Ratio::metric`] of throughput with messages of `size` bytes.
pub fn throughput_metric(size: usize) -> String {
    format!("throughput {}", size_name(size))
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

/// shmsock against the plaintext Unix socket and the same-AEAD Unix socket, on
/// every metric and placement, and against the floor (64 B p50).
pub fn ratios(report: &Report) -> Vec<Ratio> {
    let mut out = Vec::new();
    for p in &report.placements {
        for suite in p.shm_suites() {
            let Some(shm) = p.transport(TransportKind::Shm(suite)) else {
                continue;
            };
            for base_kind in [TransportKind::UnixPlain, TransportKind::UnixAead(suite)] {
                let Some(base) = p.transport(base_kind) else {
                    continue;
                };
                for size in p.latency_sizes() {
                    let (Some(s), Some(b)) = (shm.latency_of(size), base.latency_of(size)) else {
                        continue;
                    };
                    for (q, sv, bv) in [("p50", s.p50_ns, b.p50_ns), ("p99", s.p99_ns, b.p99_ns)] {
                        out.push(Ratio {
                            placement: p.name,
                            metric: round_trip_metric(size, q),
                            transport: shm.transport.id(),
                            baseline: base_kind.id(),
                            ratio: bv / sv,
                        });
                    }
                }
                for size in p.throughput_sizes() {
                    let (Some(s), Some(b)) = (shm.throughput_of(size), base.throughput_of(size)) else {
                        continue;
                    };
                    out.push(Ratio {
                        placement: p.name,
                        metric: throughput_metric(size),
                        transport: shm.transport.id(),
                        baseline: base_kind.id(),
                        ratio: s.gb_per_s / b.gb_per_s,
                    });
                }
            }
            for size in p.throughput_sizes() {
                if let (Some(s), Some(seal)) = (shm.throughput_of(size), p.seal_rate_of(suite, size)) {
                    out.push(Ratio {
                        placement: p.name,
                        metric: throughput_metric(size),
                        transport: shm.transport.id(),
                        baseline: format!("seal-{}", suite.name()),
                        ratio: s.gb_per_s / seal.gb_per_s,
                    });
                }
            }
            for kind in [FloorKind::Line, FloorKind::Frame] {
                if let (Some(f), Some(s)) = (p.floor_of(suite, kind), shm.latency_of(FLOOR_SIZE)) {
                    out.push(Ratio {
                        placement: p.name,
                        metric: round_trip_metric(FLOOR_SIZE, "p50"),
                        transport: shm.transport.id(),
                        baseline: match kind {
                            FloorKind::Line => format!("floor-{}", suite.name()),
                            FloorKind::Frame => format!("floor+frame-{}", suite.name()),
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
    let suites: Vec<CipherSuite> = report.placements.first().map(PlacementReport::shm_suites).unwrap_or_default();
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
        let seal = two.and_then(|p| p.seal_rate_of(suite, 1 << 20)).map(|r| r.gb_per_s);
        push(
            "1 MiB throughput, two cores: at least 0.9x one core's raw seal rate (shmsock / seal)",
            thr(two, shm).zip(seal).map(|(s, r)| s / r),
            ">=",
            0.9,
        );
    }
    out
}
