//! `connect` (and the waiting of `subscribe`): a client connection, made on a short-lived thread (the handshake
//! waits for the server, up to the handshake timeout) and handed to the
//! JavaScript thread as a job. With `wait`, the core waits for a missing
//! server ([`shmsock::Options::connect_wait`], like the CLI's `--wait`), in
//! slices of at most [`SLICE`], so that a connect cancelled by an AbortSignal
//! stops waiting soon; a stream it still made is closed.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use napi_derive::napi;
use shmsock::{connect_wait, Error as CoreError, Stream};

use crate::dispatch::{lock, post, Event};
use crate::errors::{to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{millis, to_core, NativeOptions};
use crate::stream::StreamShared;

/// Longest core wait for a server between two looks at cancellation.
const SLICE: Duration = Duration::from_millis(250);

/// Connects whose caller gave up (an aborted signal).
static CANCELLED: Mutex<Option<HashSet<i64>>> = Mutex::new(None);

fn cancelled(op: i64) -> bool {
    lock(&CANCELLED).as_ref().is_some_and(|set| set.contains(&op))
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
    let (options, recv_timeout) = to_core(keypair, options)?;
    in_background(
        op,
        wait,
        move |wait| Stream::connect(&name, &options.clone().connect_wait(wait)),
        move |stream| Event::Stream { op, stream: StreamShared::new(stream, recv_timeout) },
    )
}

/// Runs `attempt(wait)` (a connect, a subscribe, waiting up to `wait` for its
/// server) on a short-lived thread, in slices of at most SLICE while it fails
/// with an error the core's wait retries and `wait` (ms) allows, and completes
/// `op` with `done` of its result on the JavaScript thread, unless the caller
/// gave up meanwhile (then the result is dropped, which closes it).
pub(crate) fn in_background<T: Send + 'static>(
    op: i64,
    wait: Option<f64>,
    attempt: impl Fn(Duration) -> Result<T, CoreError> + Send + 'static,
    done: impl FnOnce(T) -> Event + Send + 'static,
) -> napi::Result<(), Code> {
    let deadline = wait.map(|ms| millis(ms, "wait")).transpose()?.and_then(|w| Instant::now().checked_add(w));
    std::thread::Builder::new()
        .name("shmsock-connect".into())
        .spawn(move || {
            let result = loop {
                let left = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
                match attempt(left.min(SLICE)) {
                    Err(e) if connect_wait::is_retried(e.kind()) && left > SLICE && !cancelled(op) => {}
                    other => break other,
                }
            };
            post(Box::new(move |events: &mut Vec<Event>| {
                let gave_up = lock(&CANCELLED).as_mut().is_some_and(|set| set.remove(&op));
                match result {
                    // The caller is gone: dropping the result closes it.
                    Ok(_) if gave_up => {}
                    Ok(value) => events.push(done(value)),
                    Err(error) => events.push(Event::Failed { op, error }),
                }
            }));
        })
        .map_err(|e| to_js(CoreError::io("starting a connect thread", e)))?;
    Ok(())
}

/// The caller of connect (or subscribe) `op` gave up (its promise was rejected already).
#[napi]
pub fn cancel_connect(op: i64) {
    lock(&CANCELLED).get_or_insert_with(HashSet::new).insert(op);
}
