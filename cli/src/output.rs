//! Command results on stdout: written and flushed at once, a closed pipe (as
//! with `| head`) not counted as a failure, and JSON in one format everywhere.

use std::io::Write;

use serde::Serialize;

use crate::error::{code, CliError};

/// Writes `bytes` to stdout and flushes; returns the exit code.
pub fn write_stdout(bytes: &[u8]) -> Result<u8, CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(code::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code::OK),
        Err(e) => Err(CliError::io("writing to stdout", &e)),
    }
}

/// `value` as pretty JSON with a final newline.
pub fn json_pretty(value: &impl Serialize) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(code::FAILED, "encoding JSON", e.to_string(), ""))?;
    text.push('\n');
    Ok(text)
}

/// `value` as one JSON line with a final newline.
pub fn json_line(value: &impl Serialize) -> Result<String, CliError> {
    let mut text =
        serde_json::to_string(value).map_err(|e| CliError::new(code::FAILED, "encoding JSON", e.to_string(), ""))?;
    text.push('\n');
    Ok(text)
}
