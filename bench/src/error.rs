//! The bench's error type: a message, with `?` from io and shmsock errors.

use std::fmt;

/// Something went wrong while benchmarking (a peer failed to start, a transport
/// failed, a check did not hold).
#[derive(Debug, Clone)]
pub struct BenchError {
    message: String,
    timeout: bool,
}

/// Result of the bench functions.
pub type Result<T> = std::result::Result<T, BenchError>;

impl BenchError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> BenchError {
        BenchError { message: msg.into(), timeout: false }
    }
    /// Prefixes the message with what was being done.
    pub fn context(self, what: &str) -> BenchError {
        BenchError { message: format!("{what}: {}", self.message), timeout: self.timeout }
    }
    /// True when a transport call timed out (nothing was lost).
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BenchError {}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> BenchError {
        let timeout = matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
        BenchError { message: format!("I/O error: {e}"), timeout }
    }
}

impl From<shmsock::Error> for BenchError {
    fn from(e: shmsock::Error) -> BenchError {
        BenchError { message: format!("shmsock: {e}"), timeout: e.kind() == shmsock::ErrorKind::Timeout }
    }
}

/// Returns an error for the last OS error, saying what failed.
pub(crate) fn last_os_error(what: &str) -> BenchError {
    BenchError::new(format!("{what}: {}", std::io::Error::last_os_error()))
}
