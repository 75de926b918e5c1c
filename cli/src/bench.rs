//! `shmsock bench`: the core's benchmark (shmsock against Unix sockets, in one
//! launch), with a progress bar, the table or JSON, and an optional plot.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmsock_bench::{format_report, Config};

use crate::error::{code, CliError};
use crate::plot;

/// What `bench` was asked to do.
pub struct Bench {
    /// The short run (about 10 s) instead of the full one (about 75 s).
    pub quick: bool,
    /// Tiny runs that check the machinery only (for tests).
    pub smoke: bool,
    /// Write an SVG plot here.
    pub plot: Option<PathBuf>,
    /// Print the report as JSON instead of the table.
    pub json: bool,
}

/// Steps of the progress bar (the bench reports fractions).
const STEPS: u64 = 1000;

/// Runs `bench`; returns the exit code.
pub fn run(args: Bench) -> Result<u8, CliError> {
    if let Some(path) = &args.plot {
        // Fail before a long run, not after it.
        std::fs::File::create(path).map_err(|e| {
            CliError::new(
                code::FAILED,
                format!("writing the plot {}", path.display()),
                e.to_string(),
                "Check that the directory exists and is writable",
            )
        })?;
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
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::new(code::FAILED, "encoding the report as JSON", e.to_string(), ""))?;
        text.push('\n');
        text
    } else {
        format!("{}(took {:.1} s)\n", format_report(&report), started.elapsed().as_secs_f64())
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(CliError::io("writing to stdout", &e)),
    }
    if let Some(path) = &args.plot {
        plot::write(&report, path)?;
        crate::error::eprint_line(&format!("shmsock: wrote the plot to {}", path.display()));
    }
    Ok(code::OK)
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
