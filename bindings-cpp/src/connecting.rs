//! `Connecting`: a connect an event loop drives (the core's `Connecting`):
//! started without waiting, advanced when its fd is readable.

use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use shmsock::{ConnectProgress, Connecting, Error, ErrorKind, Stream};

use crate::errors::{guard, name_from_bytes, BridgeResult};
use crate::options::OptionsBox;
use crate::stream::StreamBox;

enum State {
    /// The HELLO is sent; the server's answer is awaited.
    Pending(Connecting),
    /// Established: the stream waits for `take_stream`.
    Done(Stream),
    /// Taken, failed, or past an error.
    Over,
}

/// A connect in progress (C++ drives it from one thread, but the box is
/// shared, so its state is behind a lock).
pub struct ConnectingBox(Mutex<State>);

/// Starts connecting to the server of endpoint `name` without waiting.
pub fn connect_start(name: &[u8], options: &OptionsBox) -> BridgeResult<Box<ConnectingBox>> {
    guard(|| {
        let connecting = Connecting::start(name_from_bytes(name)?, &options.0)?;
        Ok(Box::new(ConnectingBox(Mutex::new(State::Pending(connecting)))))
    })
}

fn over() -> Error {
    Error::new(ErrorKind::Closed, "this connect is over (its stream was taken, or it failed)")
}

impl ConnectingBox {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Advances with the server's answer, never waiting: true once the
    /// stream is ready for `take_stream`. An error ends the connect.
    pub fn advance(&self) -> BridgeResult<bool> {
        guard(|| {
            let mut state = self.state();
            match std::mem::replace(&mut *state, State::Over) {
                State::Pending(connecting) => match connecting.advance()? {
                    ConnectProgress::Waiting(connecting) => {
                        *state = State::Pending(connecting);
                        Ok(false)
                    }
                    ConnectProgress::Done(stream) => {
                        *state = State::Done(stream);
                        Ok(true)
                    }
                },
                State::Done(stream) => {
                    *state = State::Done(stream);
                    Ok(true)
                }
                State::Over => Err(over()),
            }
        })
    }

    /// The established stream (after `advance` said true).
    pub fn take_stream(&self) -> BridgeResult<Box<StreamBox>> {
        guard(|| match std::mem::replace(&mut *self.state(), State::Over) {
            State::Done(stream) => Ok(StreamBox::boxed(stream)),
            _ => Err(over()),
        })
    }

    /// The fd to watch while the connect is pending.
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| match &*self.state() {
            State::Pending(connecting) => Ok(connecting.fd().as_raw_fd()),
            _ => Err(over()),
        })
    }

    /// Nanoseconds until the handshake times out (0 once past).
    pub fn time_left_ns(&self) -> BridgeResult<i64> {
        guard(|| match &*self.state() {
            State::Pending(connecting) => {
                let left = connecting.deadline().saturating_duration_since(Instant::now());
                Ok(i64::try_from(left.as_nanos()).unwrap_or(i64::MAX))
            }
            _ => Err(over()),
        })
    }
}
