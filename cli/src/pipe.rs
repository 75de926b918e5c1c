//! What `listen` and `connect` share: stdin to the peer on one thread, the peer
//! to stdout on the main thread, and how a session ends.
//!
//! Semantics (cli/README.md, "How a session ends", says the same for users):
//! - every message received is written to stdout and flushed at once;
//! - each message read from stdin is sent to the peer connected at the time;
//! - when stdin ends, `connect` (and `listen --close-on-eof`) first writes out
//!   every message that has already arrived, then closes the connection
//!   cleanly: the peer receives everything sent before, then the close;
//! - a peer's clean close ends the session with success, after stdout is flushed;
//! - a closed stdout (`| head -1`) closes the connection cleanly and ends quietly.

use std::io::{BufReader, IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};

use rustix::event::{poll, PollFd, PollFlags};
use shmsock::{ErrorKind, Stream};

use crate::error::{code, CliError};
use crate::events::Events;
use crate::records::{Mode, RecordReader, RecordWriter, MAX_MESSAGE};

/// How a session ended, short of a failure of this side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed the connection cleanly.
    PeerClosed,
    /// stdin ended and this side should close (everything pending was written out).
    StdinDone,
    /// A signal asks us to stop.
    Signal(i32),
    /// stdout was closed by its reader.
    StdoutClosed,
    /// The connection broke: the peer died, or broke the protocol.
    Broken(CliError),
}

/// The stream the stdin thread sends to: the current connection, numbered so a
/// message that could not be sent to one connection goes to the next.
#[derive(Default)]
pub struct Outbox {
    current: Mutex<(u64, Option<Arc<Stream>>)>,
    changed: Condvar,
}

impl Outbox {
    /// Makes `stream` the current connection.
    pub fn set(&self, stream: Arc<Stream>) {
        if let Ok(mut cur) = self.current.lock() {
            cur.0 += 1;
            cur.1 = Some(stream);
        }
        self.changed.notify_all();
    }

    /// No connection is current any more.
    pub fn clear(&self) {
        if let Ok(mut cur) = self.current.lock() {
            cur.1 = None;
        }
    }

    /// Waits for a current connection numbered above `after`.
    fn wait(&self, after: u64) -> Option<(u64, Arc<Stream>)> {
        let mut cur = self.current.lock().ok()?;
        loop {
            if let (n, Some(stream)) = &*cur {
                if *n > after {
                    return Some((*n, stream.clone()));
                }
            }
            cur = self.changed.wait(cur).ok()?;
        }
    }
}

/// True when stdin is a terminal that this process may not read because it
/// runs in the background (`shmsock listen x &` in an interactive shell):
/// reading would stop the whole process (SIGTTIN).
pub fn stdin_is_background_terminal() -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    // SAFETY: neither call takes a pointer; both only query the process state.
    let (foreground, own) = unsafe { (libc::tcgetpgrp(libc::STDIN_FILENO), libc::getpgrp()) };
    foreground != -1 && foreground != own
}

/// Starts the thread that sends stdin's messages to the outbox's current
/// connection, and reports stdin's end or a failure through `events`. When
/// stdin ends, it waits for a connection first, so the end is always
/// reported to a connected session.
pub fn spawn_stdin_sender(mode: Mode, outbox: Arc<Outbox>, events: Arc<Events>) -> Result<(), CliError> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut reader = RecordReader::new(BufReader::new(std::io::stdin().lock()), mode, MAX_MESSAGE);
            let mut after = 0;
            loop {
                let message = match reader.next_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        if outbox.wait(0).is_some() {
                            events.set_eof();
                        }
                        return;
                    }
                    Err(e) => return events.fail(e),
                };
                loop {
                    let Some((n, stream)) = outbox.wait(after) else {
                        return;
                    };
                    match stream.send(&message) {
                        Ok(()) => break,
                        // The connection ended: the main thread reports it; the
                        // message goes to the next connection, if any.
                        Err(e) if e.kind().ends_connection() => after = n,
                        Err(e) => return events.fail(send_error(&stream, &e)),
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| CliError::io("starting the stdin thread", &e))
}

fn send_error(stream: &Stream, err: &shmsock::Error) -> CliError {
    let what = format!("sending to '{}'", stream.endpoint());
    match err.kind() {
        ErrorKind::MessageTooLarge => {
            CliError::new(code::FAILED, what, err.message(), "Split the data into smaller messages")
        }
        _ => CliError::core(what, err),
    }
}

/// Receives from `stream` into `out` until the session ends. `close_on_eof`:
/// end with [`End::StdinDone`] once stdin has ended and nothing more has arrived.
pub fn receive<W: Write>(
    stream: &Stream,
    events: &Events,
    out: &mut RecordWriter<W>,
    close_on_eof: bool,
) -> Result<End, CliError> {
    loop {
        match stream.try_recv() {
            Ok(message) => {
                if let Err(e) = out.write_message(&message) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(End::StdoutClosed);
                    }
                    return Err(CliError::io("writing to stdout", &e));
                }
                // A peer that never pauses must not make us deaf to signals.
                if let Some(signal) = events.signal() {
                    return Ok(End::Signal(signal));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Drain before looking at the flags, so an event that comes
                // after the look still wakes the poll below.
                events.drain();
                if let Some(err) = events.failure() {
                    return Err(err);
                }
                if let Some(signal) = events.signal() {
                    return Ok(End::Signal(signal));
                }
                if close_on_eof && events.eof() {
                    return Ok(End::StdinDone);
                }
                wait_readable(&[stream.pollable_fd(), events.fd()])?;
            }
            Err(e) if e.kind() == ErrorKind::PeerClosed => return Ok(End::PeerClosed),
            Err(e) if e.kind().ends_connection() => return Ok(End::Broken(receive_error(stream, &e))),
            Err(e) => return Err(receive_error(stream, &e)),
        }
    }
}

fn receive_error(stream: &Stream, err: &shmsock::Error) -> CliError {
    let what = format!("receiving from '{}'", stream.endpoint());
    match err.kind() {
        ErrorKind::PeerGone => CliError::new(
            code::PEER_GONE,
            what,
            "the peer exited or was killed without closing the connection",
            "Every message it sent before was written out; check why the peer stopped",
        ),
        _ => CliError::core(what, err),
    }
}

/// Waits until one of `fds` is readable (or hung up). A signal also ends the
/// wait: its handler has woken the events socket, or it was one we ignore.
pub fn wait_readable(fds: &[std::os::fd::BorrowedFd<'_>]) -> Result<(), CliError> {
    let mut polled: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(fd, PollFlags::IN)).collect();
    match poll(&mut polled, None) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(CliError::io("waiting for the connection", &std::io::Error::from_raw_os_error(e.raw_os_error()))),
    }
}

/// An informational line on stderr (suppressed by --quiet).
pub fn info(quiet: bool, line: std::fmt::Arguments<'_>) {
    if !quiet {
        crate::error::eprint_line(&format!("shmsock: {line}"));
    }
}

/// The stdout writer of a session.
pub fn stdout_writer(mode: Mode) -> RecordWriter<std::io::StdoutLock<'static>> {
    RecordWriter::new(std::io::stdout().lock(), mode)
}
