//! `connect` (and the waiting of `subscribe`): a client connection, made on a short-lived thread (the handshake
//! waits for the server, up to the handshake timeout) and handed to the
//! JavaScript thread as a job. With `wait`, a missing server (NotFound) is
//! tried again every 50 ms until it appears or the time is up, like the CLI's
//! `--wait`. A connect cancelled by an AbortSignal stops retrying, and a
//! stream it still made is closed.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Stream};

use crate::dispatch::{lock, post, Event};
use crate::errors::{to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{millis, to_core, NativeOptions};
use crate::stream::StreamShared;

/// How often a connect with `wait` tries again while no server listens.
const RETRY: Duration = Duration::from_millis(50);

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
        move || Stream::connect(&name, &options),
        move |stream| Event::Stream { op, stream: StreamShared::new(stream, recv_timeout) },
    )
}

/// Runs `attempt` (a connect, a subscribe) on a short-lived thread, again every
/// RETRY while it fails with NotFound and `wait` (ms) allows, and completes
/// `op` with `done` of its result on the JavaScript thread, unless the caller
/// gave up meanwhile (then the result is dropped, which closes it).
pub(crate) fn in_background<T: Send + 'static>(
    op: i64,
    wait: Option<f64>,
    attempt: impl Fn() -> Result<T, CoreError> + Send + 'static,
    done: impl FnOnce(T) -> Event + Send + 'static,
) -> napi::Result<(), Code> {
    let deadline = wait.map(|ms| millis(ms, "wait")).transpose()?.and_then(|w| Instant::now().checked_add(w));
    std::thread::Builder::new()
        .name("shmsock-connect".into())
        .spawn(move || {
            let result = loop {
                match attempt() {
                    Err(e)
                        if e.kind() == ErrorKind::NotFound
                            && deadline.is_some_and(|d| Instant::now() + RETRY < d)
                            && !cancelled(op) =>
                    {
                        std::thread::sleep(RETRY);
                    }
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
