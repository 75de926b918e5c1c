//! `shmsock list`: the endpoints in this user's runtime directory.

use std::io::Write;

use serde::Serialize;

use crate::error::{code, CliError};

/// One endpoint, as `--json` prints it. The field names are stable.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The endpoint name.
    pub name: String,
    /// The pid of the server that bound it (null if unknown).
    pub pid: Option<u32>,
    /// True when a live process serves it.
    pub alive: bool,
    /// "alive" or "stale" (files left by a server that died; the next bind reclaims them).
    pub state: &'static str,
    /// The control socket's path.
    pub socket: String,
}

/// Runs `list`; returns the exit code.
pub fn run(json: bool) -> Result<u8, CliError> {
    let entries = entries()?;
    let text = if json {
        let mut text = serde_json::to_string_pretty(&entries)
            .map_err(|e| CliError::new(code::FAILED, "encoding JSON", e.to_string(), ""))?;
        text.push('\n');
        text
    } else {
        table(&entries)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(code::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code::OK),
        Err(e) => Err(CliError::io("writing to stdout", &e)),
    }
}

fn entries() -> Result<Vec<Entry>, CliError> {
    let what = "listing endpoints";
    let found = shmsock::endpoint::list().map_err(|e| CliError::core(what, &e))?;
    found
        .into_iter()
        .map(|e| {
            let socket = shmsock::endpoint::EndpointPaths::of(&e.name)
                .map(|p| p.socket.display().to_string())
                .map_err(|err| CliError::core(what, &err))?;
            Ok(Entry {
                state: if e.alive { "alive" } else { "stale" },
                name: e.name,
                pid: e.pid,
                alive: e.alive,
                socket,
            })
        })
        .collect()
}

fn table(entries: &[Entry]) -> String {
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0).max("NAME".len());
    let mut text = format!("{:<width$}  {:>8}  STATE\n", "NAME", "PID");
    for e in entries {
        let pid = e.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
        text.push_str(&format!("{:<width$}  {:>8}  {}\n", e.name, pid, e.state));
    }
    text
}
