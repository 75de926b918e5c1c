//! End-to-end smoke test of the bench machinery (peer processes, every transport,
//! the floor, the report and its JSON), with tiny runs. It checks structure only,
//! never timing: benchmarks are not timed tests.

use shmsock_bench::{format_report, run, Config};

#[test]
fn a_tiny_run_measures_every_transport_and_the_floor() {
    let config = Config { peer_exe: Some(env!("CARGO_BIN_EXE_shmsock-bench").into()), ..Config::smoke() };
    let mut steps = 0;
    let report = run(&config, &mut |_, f| {
        assert!((0.0..=1.0).contains(&f));
        steps += 1;
    })
    .expect("the bench runs");
    assert!(steps > 10);
    let placements = if shmsock_bench::affinity::current().unwrap().len() >= 2 { 2 } else { 1 };
    assert_eq!(report.placements.len(), placements);
    let suites = config.suites().len();
    for p in &report.placements {
        assert_eq!(p.transports.len(), 2 * suites + 1);
        assert_eq!(p.floors.len(), 2 * suites);
        for t in &p.transports {
            for l in &t.latency {
                assert!(l.p50_ns > 0.0 && l.p99_ns >= l.p50_ns, "{} {}", t.label, l.size);
            }
            for x in &t.throughput {
                assert!(x.gb_per_s > 0.0, "{} {}", t.label, x.size);
            }
        }
        // One core's seal rate of every cipher and streaming size.
        assert_eq!(p.seal_rates.len(), suites * config.throughput_sizes.len());
        assert!(p.seal_rates.iter().all(|r| r.gb_per_s > 0.0 && r.runs.len() == config.runs), "{:?}", p.seal_rates);
    }
    assert_eq!(report.goals.len(), 5 * suites);
    let text = format_report(&report);
    assert!(text.contains("x better than") && text.contains("unix plaintext"), "{text}");
    assert!(!text.contains("[MET") && !text.contains("[MISS"), "{text}");
    // Every metric has its ratio in the row of each pair.
    let metrics = 2 * config.latency_sizes.len() + config.throughput_sizes.len();
    let row = text.lines().find(|l| l.contains("vs unix plaintext")).expect("a ratio row");
    assert_eq!(
        row.split_whitespace().filter(|w| w.ends_with('x') && w.starts_with(|c: char| c.is_ascii_digit())).count(),
        metrics,
        "{row}"
    );
    let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > shmsock_bench::table::WIDTH).collect();
    assert!(wide.is_empty(), "lines wider than the table width: {wide:#?}");
    assert!(text.contains("one core's raw seal") && text.contains("vs one core's seal"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["placements"][0]["transports"][0]["latency"][0]["p50_ns"].as_f64().unwrap() > 0.0);
}

/// The isolation mode runs every attack at once and reports every figure (on a
/// thread of its own, since it pins the measuring thread).
#[test]
fn the_isolation_mode_runs_every_attack() {
    let cpus = shmsock_bench::affinity::current().unwrap();
    let first = cpus[..1].to_vec();
    let time = std::time::Duration::from_millis(100);
    let figures =
        std::thread::spawn(move || shmsock_bench::isolation::measure(&first, time)).join().unwrap().expect("measured");
    for row in [&figures.quiet, &figures.attacked, &figures.futex_floor, &figures.stream_pair] {
        assert!(row.p50_us > 0.0 && row.p99_us >= row.p50_us, "{row:?}");
    }
    assert!(figures.connect_attacked.0 > std::time::Duration::ZERO);
    assert!(shmsock_bench::isolation::format(&figures).contains("under every attack"));
}
