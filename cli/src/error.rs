//! Errors of the command and their exit codes: the one place that decides both.
//!
//! Every failure is reported as exactly one line on stderr,
//! `shmsock: <what failed>: <why>. <what to do>`, and ends the process with a
//! code from [`code`], which scripts can test. The table is documented in
//! `shmsock --help` ([`EXIT_CODES_HELP`]) and in cli/README.md; its numbers never
//! change meaning.

use std::fmt;

use shmsock::ErrorKind;

/// The exit codes.
pub mod code {
    /// Success (a peer that closed cleanly is success too).
    pub const OK: u8 = 0;
    /// The operation failed for a reason without a code of its own.
    pub const FAILED: u8 = 1;
    /// Bad usage: unknown or missing arguments, an invalid endpoint name.
    pub const USAGE: u8 = 2;
    /// No server is listening on the endpoint name.
    pub const NOT_FOUND: u8 = 3;
    /// The server does not hold the key pinned with --server-key.
    pub const KEY_MISMATCH: u8 = 4;
    /// The server refused this client (its key or uid is not allowed).
    pub const REJECTED: u8 = 5;
    /// The peer exited or was killed without closing the connection.
    pub const PEER_GONE: u8 = 6;
    /// The server did not complete the handshake in time.
    pub const TIMEOUT: u8 = 7;
    /// Another live process already serves the endpoint name.
    pub const IN_USE: u8 = 8;
    /// A key could not be used: missing, malformed, or readable by others.
    pub const KEY: u8 = 9;
    /// Added to a signal's number when a signal (INT, TERM, HUP) ended the command.
    pub const SIGNAL_BASE: u8 = 128;
}

/// The exit code table, as shown by `shmsock --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (stable; scripts may test them):
    0  success; also when the peer closed the connection cleanly
    1  the operation failed (any error without a code below)
    2  usage error: bad or missing arguments, an invalid endpoint name
    3  not found: no server is listening on that name
    4  key mismatch: the server does not hold the key given with --server-key
    5  rejected: the server refused our key (not on its --allow list) or our uid
    6  peer gone: the peer exited or was killed without closing the connection
    7  timeout: the server did not complete the handshake in time
    8  in use: another live process already serves that name
    9  key error: a key file is missing, malformed or readable by others, or
       a key argument is not a public key
  128+N  ended by signal N (INT 130, TERM 143, HUP 129) after closing the
       connection cleanly

Errors are one line on stderr: `shmsock: <what failed>: <why>. <what to do>`.
The runtime directory (where endpoint names live) is $SHMSOCK_RUNTIME_DIR, else
$XDG_RUNTIME_DIR/shmsock, else <tmp>/shmsock-<uid>.";

/// A failure of the command: what failed, why, what to do, and the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    code: u8,
    what: String,
    why: String,
    todo: String,
}

impl CliError {
    /// A failure with exit `code`. `todo` may be empty when there is nothing to do.
    pub fn new(code: u8, what: impl Into<String>, why: impl Into<String>, todo: impl Into<String>) -> CliError {
        CliError { code, what: what.into(), why: why.into(), todo: todo.into() }
    }

    /// A core error while doing `what`, with its exit code and a generic hint.
    /// Callers that know more (the endpoint name, the key) build their own.
    /// A core message that already starts with `what: ` (the core says
    /// "connecting to 'ep': ..." itself) does not get it twice.
    pub fn core(what: impl Into<String>, err: &shmsock::Error) -> CliError {
        let kind = err.kind();
        let what = what.into();
        let why = err.message().strip_prefix(what.as_str()).and_then(|rest| rest.strip_prefix(": "));
        let why = why.unwrap_or(err.message()).to_string();
        CliError::new(code_of(kind), what, why, hint_of(kind))
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, err: &std::io::Error) -> CliError {
        CliError::new(code::FAILED, what, err.to_string(), "")
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The one line printed on stderr.
    pub fn line(&self) -> String {
        let mut line = format!("shmsock: {}: {}", one_line(&self.what), one_line(&self.why).trim_end_matches('.'));
        let todo = one_line(&self.todo);
        if !todo.is_empty() {
            line.push_str(". ");
            line.push_str(&todo);
        }
        line
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

/// Writes one line on stderr; a stderr that cannot be written is ignored.
pub fn eprint_line(line: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Text from anywhere (a peer, the OS) made into one line.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The exit code of a core error kind.
pub fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => code::NOT_FOUND,
        ErrorKind::ServerKeyMismatch => code::KEY_MISMATCH,
        ErrorKind::HandshakeRejected => code::REJECTED,
        ErrorKind::PeerGone => code::PEER_GONE,
        ErrorKind::Timeout => code::TIMEOUT,
        ErrorKind::AddressInUse => code::IN_USE,
        ErrorKind::InvalidKey | ErrorKind::InsecureKeyFile => code::KEY,
        ErrorKind::InvalidName | ErrorKind::InvalidArgument => code::USAGE,
        _ => code::FAILED,
    }
}

/// What to do about a core error kind, when the caller has nothing better.
fn hint_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::PeerGone => "Messages it sent before were delivered; check why the peer stopped",
        ErrorKind::AuthenticationFailed | ErrorKind::ProtocolViolation => {
            "The connection was ended to protect it; reconnect, and suspect the process at the other end"
        }
        ErrorKind::ProtocolVersion | ErrorKind::NoCommonCipher => "Use the same shmsock version on both sides",
        ErrorKind::ResourceExhausted => "Free memory or file descriptors (check /dev/shm and ulimit -n) and retry",
        ErrorKind::PermissionDenied => "Set SHMSOCK_RUNTIME_DIR to a private directory (mode 0700) of this user",
        ErrorKind::MessageTooLarge => "Split the data into smaller messages",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_the_documented_shape() {
        let e = CliError::new(code::NOT_FOUND, "connecting to 'x'", "no server is listening on 'x'.", "Start one");
        assert_eq!(e.line(), "shmsock: connecting to 'x': no server is listening on 'x'. Start one");
        let e = CliError::new(code::FAILED, "a", "b\nc", "");
        assert_eq!(e.line(), "shmsock: a: b c");
    }

    #[test]
    fn a_core_message_with_the_same_context_is_not_prefixed_twice() {
        let err = shmsock::Error::new(ErrorKind::NoCommonCipher, "connecting to 'ep': no common cipher");
        assert_eq!(
            CliError::core("connecting to 'ep'", &err).line(),
            "shmsock: connecting to 'ep': no common cipher. Use the same shmsock version on both sides"
        );
        let err = shmsock::Error::new(ErrorKind::Io, "reading: broken");
        assert_eq!(CliError::core("connecting to 'ep'", &err).line(), "shmsock: connecting to 'ep': reading: broken");
    }

    #[test]
    fn codes_are_distinct() {
        let codes = [
            code::OK,
            code::FAILED,
            code::USAGE,
            code::NOT_FOUND,
            code::KEY_MISMATCH,
            code::REJECTED,
            code::PEER_GONE,
            code::TIMEOUT,
            code::IN_USE,
            code::KEY,
        ];
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), codes.len());
        assert!(codes.iter().all(|c| *c < code::SIGNAL_BASE));
    }
}
