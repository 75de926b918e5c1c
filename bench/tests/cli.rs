//! The `shmsock-bench` command line (clap): options reach the config, the
//! report goes to `--json FILE` (or stdout with `-`), bad options are usage
//! errors. Tiny runs; structure only, never timing.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shmsock-bench");

/// The smallest real run: one transport, one size, one core, one run.
const TINY: [&str; 10] = [
    "--quick",
    "--runs",
    "1",
    "--no-floor",
    "--one-core-only",
    "--only",
    "unix-plain",
    "--latency-sizes",
    "64",
    "--throughput-sizes=none",
];

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run shmsock-bench")
}

#[test]
fn json_file_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut args = TINY.to_vec();
    args.extend(["--json", path.to_str().unwrap()]);
    let out = bench(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("unix socket, plaintext") && table.contains("took"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= shmsock_bench::table::WIDTH), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("JSON");
    assert_eq!(report["config"]["preset"], "quick");
    assert_eq!(report["config"]["runs"], 1);
    let placements = report["placements"].as_array().unwrap();
    assert_eq!(placements.len(), 1);
    assert_eq!(placements[0]["transports"].as_array().unwrap().len(), 1);
    assert_eq!(placements[0]["transports"][0]["transport"], "unix-plain");
}

#[test]
fn json_to_stdout_replaces_the_table() {
    let mut args = TINY.to_vec();
    args.extend(["--json", "-"]);
    let out = bench(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert!(report["placements"].is_array());
}

#[test]
fn bad_options_are_usage_errors() {
    for args in [
        &["--only", "tcp"][..],
        &["--latency-sizes", "1"],
        &["--runs", "0"],
        &["--one-core-only", "--two-cores-only"],
        &["--json"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"), "{args:?}");
    }
}
