//! `shmsock list`: the endpoints in this user's runtime directory, and
//! `list --prune`, which removes the stale ones.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;
use shmsock::endpoint::{self, EndpointPaths};
use shmsock::ErrorKind;

use crate::error::CliError;
use crate::output::{json_pretty, write_stdout};

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
    let text = if json { json_pretty(&entries)? } else { table(&entries) };
    write_stdout(text.as_bytes())
}

/// Runs `list --prune`: removes every stale endpoint whose files belong to
/// this user, printing `pruned NAME` for each; returns the exit code.
///
/// An endpoint is removed the way a new server reclaims it: by taking its lock
/// ([`endpoint::bind`]), which fails while a live server holds it, and then
/// releasing it, which deletes the files while still holding the lock. So a
/// live endpoint, or one a server binds in the meantime, is never removed, and
/// the lock protocol lives in the core only.
pub fn prune() -> Result<u8, CliError> {
    let mut pruned = String::new();
    for entry in entries()?.into_iter().filter(|e| !e.alive) {
        let what = format!("pruning endpoint '{}'", entry.name);
        let paths = EndpointPaths::of(&entry.name).map_err(|e| CliError::core(what.clone(), &e))?;
        if ![&paths.lock, &paths.socket].into_iter().all(|p| owned_by_us(p)) {
            crate::error::eprint_line(&format!(
                "shmsock: note: kept '{}': its files belong to another user",
                entry.name
            ));
            continue;
        }
        match endpoint::bind(&entry.name) {
            // Dropping the claim deletes the socket and lock files.
            Ok(claim) => drop(claim),
            // A server took the name since we listed it: it is alive now.
            Err(e) if e.kind() == ErrorKind::AddressInUse => continue,
            Err(e) => return Err(CliError::core(what, &e)),
        }
        pruned.push_str(&format!("pruned {}\n", entry.name));
    }
    write_stdout(pruned.as_bytes())
}

/// True when `path` is missing or owned by this process's effective user.
fn owned_by_us(path: &Path) -> bool {
    match path.symlink_metadata() {
        Ok(meta) => meta.uid() == rustix::process::geteuid().as_raw(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn entries() -> Result<Vec<Entry>, CliError> {
    let what = "listing endpoints";
    let found = endpoint::list().map_err(|e| CliError::core(what, &e))?;
    found
        .into_iter()
        .map(|e| {
            let socket = EndpointPaths::of(&e.name)
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
