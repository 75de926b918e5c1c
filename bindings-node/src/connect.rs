//! `connect` and `subscribe`: the client handshakes, driven from the
//! JavaScript thread.
//!
//! The core's [`Connecting`] (a stream) and [`Subscribing`] (a topic) connect
//! the control socket and send their first record without waiting; a libuv
//! poll handle then watches the handshake's fd, and a second one a timerfd
//! armed for its deadline. Whichever becomes readable calls `advance`, which
//! completes `op` with the stream or subscriber, with the error of the
//! server's REJECT, or with Timeout once the deadline passed (so the deadline
//! needs neither a thread nor a JavaScript timer: the timerfd counts on the
//! monotonic clock that `Instant` reads). A handshake cancelled by an
//! AbortSignal closes its socket at once (the server sees the client leave)
//! and completes nothing.
//!
//! A server that is not there yet, with `wait` (like the CLI's `--wait`), and
//! a server whose queue of waiting connections is full are waited for the
//! same way: the core's handshake then has one fd for the whole handshake (an
//! epoll set of its watch of the runtime directory, a backoff timer and,
//! later, the socket), and its deadline moves when the server takes the
//! connection, so the timer is armed again after each advance. No thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use napi_derive::napi;
use shmsock::platform::DeadlineTimer;
use shmsock::{ConnectProgress, Connecting, Error as CoreError, ErrorKind, SubscribeProgress, Subscribing};

use crate::dispatch::Event;
use crate::errors::{to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{millis, to_core, NativeOptions};
use crate::stream::StreamShared;
use crate::subscriber::SubShared;
use crate::uv::{Poll, Ready};

/// A client handshake in progress, and the receive timeout of what it makes.
pub(crate) enum Handshake {
    Connect(Connecting, Option<Duration>),
    Subscribe(Subscribing, Option<Duration>),
}

impl Handshake {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Handshake::Connect(connecting, _) => connecting.fd(),
            Handshake::Subscribe(subscribing, _) => subscribing.fd(),
        }
    }

    fn deadline(&self) -> Instant {
        match self {
            Handshake::Connect(connecting, _) => connecting.deadline(),
            Handshake::Subscribe(subscribing, _) => subscribing.deadline(),
        }
    }

    /// One step: the handshake back while it waits, else the event that
    /// completes `op`.
    fn advance(self, op: i64) -> Step {
        match self {
            Handshake::Connect(connecting, recv_timeout) => match connecting.advance() {
                Ok(ConnectProgress::Waiting(connecting)) => Step::Waiting(Handshake::Connect(connecting, recv_timeout)),
                Ok(ConnectProgress::Done(stream)) => {
                    Step::Done(Event::Stream { op, stream: StreamShared::new(stream, recv_timeout) })
                }
                Err(error) => Step::Done(Event::Failed { op, error }),
            },
            Handshake::Subscribe(subscribing, recv_timeout) => match subscribing.advance() {
                Ok(SubscribeProgress::Waiting(subscribing)) => {
                    Step::Waiting(Handshake::Subscribe(subscribing, recv_timeout))
                }
                Ok(SubscribeProgress::Done(sub)) => {
                    Step::Done(Event::Subscriber { op, sub: SubShared::new(sub, recv_timeout) })
                }
                Err(error) => Step::Done(Event::Failed { op, error }),
            },
        }
    }
}

/// What one step of a handshake achieved.
// Made once per step and unpacked at once, as the core's `ConnectProgress`.
#[allow(clippy::large_enum_variant)]
enum Step {
    Waiting(Handshake),
    Done(Event),
}

/// A handshake the JavaScript thread drives.
struct Watched {
    handshake: Handshake,
    watch: Watch,
}

/// The watching of a connect: a poll handle on its fd, another on a timer
/// readable once its deadline passed.
struct Watch {
    timer: DeadlineTimer,
    /// A duplicate of the connect's fd (the same for the whole connect),
    /// which the first poll handle watches: `advance` consumes the connect
    /// (and closes its fd when it fails), and libuv must stop watching an fd
    /// before the fd is closed.
    socket: OwnedFd,
    /// On `socket` and on `timer`.
    polls: [Poll; 2],
}

impl Watch {
    /// Watches `handshake` for operation `op` (keeping the process alive).
    fn new(op: i64, handshake: &Handshake) -> napi::Result<Watch, Code> {
        let socket = handshake
            .fd()
            .try_clone_to_owned()
            .map_err(|e| to_js(CoreError::io("duplicating the fd of a connect", e)))?;
        let timer = DeadlineTimer::new().map_err(to_js)?;
        timer.set(Some(handshake.deadline()));
        let pump: Arc<dyn Ready> = Arc::new(Pump { op });
        let poll = |fd: BorrowedFd<'_>| {
            Poll::new(fd.as_raw_fd(), Arc::clone(&pump))
                .map_err(|e| to_js(CoreError::new(ErrorKind::Io, format!("watching a connect: {}", e.reason))))
        };
        let on_socket = poll(socket.as_fd())?;
        let on_timer = match poll(timer.as_fd()) {
            Ok(handle) => handle,
            Err(e) => {
                on_socket.close();
                return Err(e);
            }
        };
        let mut polls = [on_socket, on_timer];
        // A pending connect keeps the process alive (as the JavaScript
        // layer's count of pending operations does too).
        for handle in &mut polls {
            handle.set(true, true);
        }
        Ok(Watch { timer, socket, polls })
    }

    /// After an `advance` that did not finish: a timer that fired stays
    /// readable until read, so it is read and armed again; one that did not
    /// fire keeps its setting. (It does not fire before the deadline: it
    /// counts on the monotonic clock that `Instant` reads.)
    fn rearm(&self, deadline: Instant) {
        self.timer.clear();
        self.timer.set(Some(deadline));
    }

    /// Stops watching, then closes the timer and the duplicate socket.
    fn close(self) {
        let Watch { timer, socket, polls } = self;
        for handle in polls {
            handle.close();
        }
        drop((timer, socket));
    }
}

thread_local! {
    /// The connects this JavaScript thread drives, by op (ops are unique per
    /// JavaScript thread, as is its libuv loop).
    static WATCHED: RefCell<HashMap<i64, Watched>> = RefCell::new(HashMap::new());
}

/// What the poll handles of connect `op` serve: each readiness advances it.
struct Pump {
    op: i64,
}

impl Ready for Pump {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let op = self.op;
        // None: completed or cancelled (a late readiness of its other fd).
        let Some(Watched { handshake, watch }) = WATCHED.with(|w| w.borrow_mut().remove(&op)) else {
            return;
        };
        match handshake.advance(op) {
            Step::Waiting(handshake) => {
                watch.rearm(handshake.deadline());
                WATCHED.with(|w| w.borrow_mut().insert(op, Watched { handshake, watch }));
            }
            Step::Done(event) => {
                watch.close();
                events.push(event);
            }
        }
    }
}

/// Starts driving `handshake`, which completes `op`.
pub(crate) fn drive(op: i64, handshake: Handshake) -> napi::Result<(), Code> {
    let watch = Watch::new(op, &handshake)?;
    WATCHED.with(|w| w.borrow_mut().insert(op, Watched { handshake, watch }));
    Ok(())
}

/// Connects to endpoint `name` and completes `op` with the stream; `wait` (ms):
/// how long to keep trying while no server listens.
#[napi]
pub fn connect(
    op: i64,
    name: String,
    keypair: Option<&JsKeypair>,
    options: Option<NativeOptions>,
    wait: Option<f64>,
) -> napi::Result<(), Code> {
    let (options, recv_timeout) = client_options(keypair, options, wait)?;
    let connecting = Connecting::start(&name, &options).map_err(to_js)?;
    drive(op, Handshake::Connect(connecting, recv_timeout))
}

/// The core options of a client, with `wait` (ms) as its connect wait.
pub(crate) fn client_options(
    keypair: Option<&JsKeypair>,
    options: Option<NativeOptions>,
    wait: Option<f64>,
) -> napi::Result<(shmsock::Options, Option<Duration>), Code> {
    let (mut options, recv_timeout) = to_core(keypair, options)?;
    if let Some(wait) = wait.map(|ms| millis(ms, "wait")).transpose()? {
        options = options.connect_wait(wait);
    }
    Ok((options, recv_timeout))
}

/// The caller of connect (or subscribe) `op` gave up (its promise was rejected already).
#[napi]
pub fn cancel_connect(op: i64) {
    if let Some(Watched { handshake, watch }) = WATCHED.with(|w| w.borrow_mut().remove(&op)) {
        watch.close();
        // Closes the socket: the server sees the client leave.
        drop(handshake);
    }
}
