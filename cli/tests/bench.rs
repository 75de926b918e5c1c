//! `shmsock bench`: the whole path (peers re-executing this binary, the
//! report, JSON, the plot) with tiny runs; structure only, never timing.

mod common;

use common::Env;

#[test]
fn a_tiny_bench_prints_json_to_stdout_and_writes_a_plot() {
    let env = Env::new();
    let out = env.run(&["bench", "--smoke", "--json", "-", "--plot", "bench.svg"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report, and nothing else");
    let placements = report["placements"].as_array().expect("placements");
    assert!(!placements.is_empty());
    assert!(report["ratios"].as_array().is_some_and(|r| !r.is_empty()));
    assert_eq!(report["config"]["preset"], "smoke");
    let svg = std::fs::read_to_string(env.path("bench.svg")).expect("the plot");
    assert!(svg.starts_with("<svg"), "{}", &svg[..200.min(svg.len())]);
    // Both charts, the subtitle saying what kind of run it was, the log
    // scales, and a value label on the bars.
    for text in ["round trip", "throughput", "smoke run", "rough figures", "log scales", "whiskers: p99"] {
        assert!(svg.contains(text), "no {text:?} in the plot");
    }
    assert!(svg.contains("shmsock aegis-128l") || svg.contains("shmsock chacha20-poly1305"));
    // A log axis is labelled by decades: 1 and 10 both appear (a linear axis
    // from 0 to the slowest transport's microseconds would not show both).
    let texts = svg_texts(&svg);
    assert!(texts.contains(&"1") && texts.contains(&"10"), "{texts:?}");
    // Every bar carries its value: numbers that are not axis decades, at least
    // one per transport, group and chart.
    let values = texts.iter().filter_map(|t| t.parse::<f64>().ok()).filter(|v| v.log10().fract().abs() > 1e-9).count();
    let transports = report["placements"][0]["transports"].as_array().map_or(0, Vec::len);
    assert!(values >= 2 * transports * placements.len(), "{values} values in {texts:?}");
    // No progress bar when stderr is not a terminal.
    assert!(!out.stderr.contains('%'), "{}", out.stderr);
}

/// The text of every `<text>` element of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>'))
        .filter_map(|(_, rest)| rest.split_once("</text>"))
        .map(|(text, _)| text.trim())
        .collect()
}

#[test]
fn a_tiny_bench_prints_a_100_column_table_and_writes_json_to_a_file() {
    let env = Env::new();
    let out = env.run(&["bench", "--smoke", "--json", "report.json"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let text = out.stdout_text();
    assert!(text.contains("x better than") && text.contains("unix plaintext") && text.contains("took"), "{text}");
    assert!(!text.contains("[MET") && !text.contains("[MISS"), "{text}");
    let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(wide.is_empty(), "wider than 100 columns: {wide:#?}");
    let json = std::fs::read(env.path("report.json")).expect("the JSON file");
    let report: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert!(report["goals"].as_array().is_some_and(|g| !g.is_empty()), "the goals stay in the JSON");
}

#[test]
fn unwritable_outputs_are_one_error_line_before_the_run() {
    let env = Env::new();
    let out = env.run(&["bench", "--smoke", "--plot", "no/such/dir/p.svg"], b"");
    assert_eq!(out.code(), 1);
    assert!(out.assert_one_error_line().contains("writing the plot"));
    let out = env.run(&["bench", "--smoke", "--json", "no/such/dir/r.json"], b"");
    assert_eq!(out.code(), 1);
    assert!(out.assert_one_error_line().contains("writing the JSON report"));
}
