//! `shmsock bench`: the core's benchmark (shmsock against Unix sockets, in one
//! launch), with a progress bar, the table or JSON, and an optional plot.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmsock_bench::{format_report, Config};

use crate::error::{code, CliError};
use crate::output::write_stdout;
use crate::plot;

/// What `bench` was asked to do.
pub struct Bench {
    /// The short run (about 10 s) instead of the full one (about 75 s).
    pub quick: bool,
    /// Tiny runs that check the machinery only (for tests).
    pub smoke: bool,
    /// Write an SVG plot here.
    pub plot: Option<PathBuf>,
    /// Write the report as JSON here (`-`: to stdout, instead of the table).
    pub json: Option<PathBuf>,
}

/// Steps of the progress bar (the bench reports fractions).
const STEPS: u64 = 1000;

/// Runs `bench`; returns the exit code.
pub fn run(args: Bench) -> Result<u8, CliError> {
    // Fail before a long run, not after it.
    if let Some(path) = &args.plot {
        check_writable(path, "the plot")?;
    }
    let json_to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if let Some(path) = args.json.as_deref().filter(|_| !json_to_stdout) {
        check_writable(path, "the JSON report")?;
    }
    if cfg!(debug_assertions) {
        crate::error::eprint_line(
            "shmsock: note: this is a debug build, whose figures say little; \
             install with `cargo install --path cli` or run `cargo run --release -p shmsock-cli -- bench`",
        );
    }
    let config = config(&args);
    let bar = progress_bar();
    let started = Instant::now();
    let outcome = shmsock_bench::run(&config, &mut |what, fraction| {
        bar.set_position((fraction.clamp(0.0, 1.0) * STEPS as f64).round() as u64);
        bar.set_message(what.to_string());
    });
    bar.finish_and_clear();
    let report = outcome.map_err(|e| {
        CliError::new(
            code::FAILED,
            "running the bench",
            e.message(),
            "Run it again on an idle machine; `shmsock-bench --help` has finer options",
        )
    })?;
    if !json_to_stdout {
        let text = format!("{}(took {:.1} s)\n", format_report(&report), started.elapsed().as_secs_f64());
        write_stdout(text.as_bytes())?;
    }
    if let Some(path) = &args.json {
        report.write_json(path).map_err(|e| {
            CliError::new(code::FAILED, "writing the JSON report", e.message(), "Check that the directory is writable")
        })?;
    }
    if let Some(path) = &args.plot {
        plot::write(&report, path)?;
        crate::error::eprint_line(&format!("shmsock: wrote the plot to {}", path.display()));
    }
    Ok(code::OK)
}

/// Creates (empties) `path`, or fails with an error naming `what`.
fn check_writable(path: &Path, what: &str) -> Result<(), CliError> {
    std::fs::File::create(path).map(drop).map_err(|e| {
        CliError::new(
            code::FAILED,
            format!("writing {what} {}", path.display()),
            e.to_string(),
            "Check that the directory exists and is writable",
        )
    })
}

fn config(args: &Bench) -> Config {
    if args.smoke {
        Config::smoke()
    } else if args.quick {
        Config::quick()
    } else {
        Config::default()
    }
}

/// A bar on stderr, hidden when stderr is not a terminal.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {percent:>3}% {wide_msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
