//! `shmsock bench`: the whole path (peers re-executing this binary, the
//! report, JSON, the plot) with tiny runs; structure only, never timing.

mod common;

use common::Env;

#[test]
fn a_tiny_bench_prints_json_and_writes_a_plot() {
    let env = Env::new();
    let out = env.run(&["bench", "--smoke", "--json", "--plot", "bench.svg"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let placements = report["placements"].as_array().expect("placements");
    assert!(!placements.is_empty());
    assert!(report["ratios"].as_array().is_some_and(|r| !r.is_empty()));
    let svg = std::fs::read_to_string(env.path("bench.svg")).expect("the plot");
    assert!(
        svg.starts_with("<svg") && svg.contains("round trip") && svg.contains("throughput"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    // No progress bar when stderr is not a terminal.
    assert!(!out.stderr.contains('%'), "{}", out.stderr);
}

#[test]
fn a_tiny_bench_prints_the_table() {
    let env = Env::new();
    let out = env.run(&["bench", "--smoke"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let text = out.stdout_text();
    assert!(text.contains("x better than") && text.contains("took"), "{text}");
}

#[test]
fn an_unwritable_plot_is_one_error_line() {
    let env = Env::new();
    let out = env.run(&["bench", "--smoke", "--plot", "no/such/dir/p.svg"], b"");
    assert_eq!(out.code(), 1);
    assert!(out.assert_one_error_line().contains("writing the plot"));
}
