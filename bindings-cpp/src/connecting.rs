//! `Connecting` and `Subscribing`: client handshakes an event loop drives
//! (the core's `Connecting` and `Subscribing`, through its `ClientHandshake`):
//! started without waiting, advanced when their fd is readable.

use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use shmsock::{ClientHandshake, Connecting, Error, ErrorKind, Subscribing};

use crate::errors::{guard, name_from_bytes, BridgeResult};
use crate::options::OptionsBox;
use crate::pubsub::SubscriberBox;
use crate::stream::StreamBox;

enum State<H: ClientHandshake> {
    /// Under way.
    Pending(H),
    /// Done: what it made waits to be taken.
    Done(H::Output),
    /// Taken, failed, or past an error.
    Over,
}

/// A handshake in progress (C++ drives it from one thread, but the box is
/// shared, so its state is behind a lock).
struct Driven<H: ClientHandshake>(Mutex<State<H>>);

fn over() -> Error {
    Error::new(ErrorKind::Closed, "this handshake is over (what it made was taken, or it failed)")
}

impl<H: ClientHandshake> Driven<H> {
    fn new(handshake: H) -> Self {
        Driven(Mutex::new(State::Pending(handshake)))
    }

    fn state(&self) -> MutexGuard<'_, State<H>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Advances, never waiting: true once done (`take`). An error ends it.
    fn advance(&self) -> shmsock::Result<bool> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Over) {
            State::Pending(handshake) => match handshake.step()? {
                Err(handshake) => {
                    *state = State::Pending(handshake);
                    Ok(false)
                }
                Ok(output) => {
                    *state = State::Done(output);
                    Ok(true)
                }
            },
            State::Done(output) => {
                *state = State::Done(output);
                Ok(true)
            }
            State::Over => Err(over()),
        }
    }

    /// What it made (after `advance` said true).
    fn take(&self) -> shmsock::Result<H::Output> {
        match std::mem::replace(&mut *self.state(), State::Over) {
            State::Done(output) => Ok(output),
            _ => Err(over()),
        }
    }

    fn fd(&self) -> shmsock::Result<i32> {
        match &*self.state() {
            State::Pending(handshake) => Ok(handshake.fd().as_raw_fd()),
            _ => Err(over()),
        }
    }

    fn time_left_ns(&self) -> shmsock::Result<i64> {
        match &*self.state() {
            State::Pending(handshake) => {
                let left = handshake.deadline().saturating_duration_since(Instant::now());
                Ok(i64::try_from(left.as_nanos()).unwrap_or(i64::MAX))
            }
            _ => Err(over()),
        }
    }
}

/// A connect in progress.
pub struct ConnectingBox(Driven<Connecting>);

/// Starts connecting to the server of endpoint `name` without waiting.
pub fn connect_start(name: &[u8], options: &OptionsBox) -> BridgeResult<Box<ConnectingBox>> {
    guard(|| Ok(Box::new(ConnectingBox(Driven::new(Connecting::start(name_from_bytes(name)?, &options.0)?)))))
}

impl ConnectingBox {
    /// Advances with the server's answer, never waiting: true once the
    /// stream is ready for `take_stream`. An error ends the connect.
    pub fn advance(&self) -> BridgeResult<bool> {
        guard(|| self.0.advance())
    }

    /// The established stream (after `advance` said true).
    pub fn take_stream(&self) -> BridgeResult<Box<StreamBox>> {
        guard(|| self.0.take().map(StreamBox::boxed))
    }

    /// The fd to watch while the connect is pending.
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| self.0.fd())
    }

    /// Nanoseconds until the connect gives up (0 once past).
    pub fn time_left_ns(&self) -> BridgeResult<i64> {
        guard(|| self.0.time_left_ns())
    }
}

/// A subscription in progress.
pub struct SubscribingBox(Driven<Subscribing>);

/// Starts subscribing to topic `name` without waiting.
pub fn subscribe_start(name: &[u8], options: &OptionsBox) -> BridgeResult<Box<SubscribingBox>> {
    guard(|| Ok(Box::new(SubscribingBox(Driven::new(Subscribing::start(name_from_bytes(name)?, &options.0)?)))))
}

impl SubscribingBox {
    /// Takes the steps whose input is there, never waiting: true once the
    /// subscriber is ready for `take_subscriber`. An error ends it.
    pub fn advance(&self) -> BridgeResult<bool> {
        guard(|| self.0.advance())
    }

    /// The subscriber (after `advance` said true).
    pub fn take_subscriber(&self) -> BridgeResult<Box<SubscriberBox>> {
        guard(|| self.0.take().map(SubscriberBox::boxed))
    }

    /// The fd to watch while the subscription is pending.
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| self.0.fd())
    }

    /// Nanoseconds until the subscription gives up (0 once past).
    pub fn time_left_ns(&self) -> BridgeResult<i64> {
        guard(|| self.0.time_left_ns())
    }
}
