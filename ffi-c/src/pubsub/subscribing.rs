//! Subscribing for event loops: shmsock_subscribe_start() and
//! shmsock_subscribing_advance(), the non-blocking counterpart of
//! shmsock_subscriber_connect() (as shmsock_connect_start() is for streams).

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Instant;

use shmsock::{Error, ErrorKind, SubscribeProgress, Subscribing};

use super::shmsock_subscriber;
use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::options::{options_arg, shmsock_options};
use crate::result::shmsock_result;
use crate::util::{self, Out};

/// A subscription in progress, for event loops: from
/// shmsock_subscribe_start(), finished with shmsock_subscribing_advance()
/// when its fd is readable, freed with shmsock_subscribing_free().
///
/// Thread safety: calls may come from several threads, but a subscription is
/// meant to be driven by one event loop.
pub struct shmsock_subscribing {
    /// None once finished or failed.
    inner: Mutex<Option<Subscribing>>,
}

handle!(shmsock_subscribing, "subscribing");

fn over() -> Error {
    Error::new(ErrorKind::Closed, "this subscription is over (it finished or failed)")
}

/// Starts subscribing to topic `name` without waiting: the control socket is
/// connected and the SUBSCRIBE sent. `options` as for
/// shmsock_subscriber_connect(); a connect wait
/// (shmsock_options_set_connect_wait()) and a publisher whose queue of
/// waiting connections is full are waited for through the fd, as for
/// shmsock_connect_start(). Watch shmsock_subscribing_fd() for readability
/// and call shmsock_subscribing_advance(). On success `*out` receives a new
/// handle, owned by the caller, to be freed with shmsock_subscribing_free().
///
/// Errors: as shmsock_subscriber_connect().
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscribe_start(
    name: *const c_char,
    options: *const shmsock_options,
    out: *mut *mut shmsock_subscribing,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let subscribing = Subscribing::start(name, &options)?;
        out.write(handle::into_raw(shmsock_subscribing { inner: Mutex::new(Some(subscribing)) }));
        Ok(())
    })
}

/// Writes the subscription's file descriptor to `*out_fd`: readable when
/// shmsock_subscribing_advance() may make progress; the same fd for the whole
/// handshake. It belongs to the subscription: do not close it, and stop
/// watching it once the subscription is over. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_CLOSED (the subscription is over).
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscribing_fd(
    subscribing: *const shmsock_subscribing,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscription or NULL; a writable int or NULL.
        let (subscribing, out) = unsafe { (handle::arg(subscribing)?, Out::new(out_fd, "out_fd")?) };
        let inner = subscribing.inner.lock().unwrap_or_else(|p| p.into_inner());
        out.write(inner.as_ref().map(|s| s.fd().as_raw_fd()).ok_or_else(over)?);
        Ok(())
    })
}

/// Writes to `*out_ms` the milliseconds left before the subscription gives
/// up (0 once past): call shmsock_subscribing_advance() then, if its fd said
/// nothing before. Read it again after each advance. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_CLOSED (the subscription is over).
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscribing_time_left(
    subscribing: *const shmsock_subscribing,
    out_ms: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscription or NULL; a writable u64 or NULL.
        let (subscribing, out) = unsafe { (handle::arg(subscribing)?, Out::new(out_ms, "out_ms")?) };
        let inner = subscribing.inner.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = inner.as_ref().map(Subscribing::deadline).ok_or_else(over)?;
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so that a loop sleeping this long finds the deadline passed.
        out.write(u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX));
        Ok(())
    })
}

/// Takes the steps of the handshake whose input is there, never waiting. On
/// success `*out` receives a new subscriber, owned by the caller, to be freed
/// with shmsock_subscriber_free(); stop watching the subscription's fd then
/// (watch shmsock_subscriber_pollable_fd() instead). SHMSOCK_WOULD_BLOCK: not
/// done yet; wait for the fd (or the time left) and call again.
///
/// Any other error ends the subscription (later calls give SHMSOCK_CLOSED):
/// what the publisher's REJECT says, or SHMSOCK_TIMEOUT past the deadline.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_WOULD_BLOCK, SHMSOCK_CLOSED, and the
/// handshake's errors as for shmsock_subscriber_connect().
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscribing_advance(
    subscribing: *const shmsock_subscribing,
    out: *mut *mut shmsock_subscriber,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscription or NULL; a writable pointer or NULL.
        let (subscribing, out) = unsafe { (handle::arg(subscribing)?, Out::new(out, "out")?) };
        let mut inner = subscribing.inner.lock().unwrap_or_else(|p| p.into_inner());
        let pending = inner.take().ok_or_else(over)?;
        match pending.advance()? {
            SubscribeProgress::Waiting(pending) => {
                *inner = Some(pending);
                Err(Error::new(ErrorKind::WouldBlock, "the publisher has not answered yet").into())
            }
            SubscribeProgress::Done(subscriber) => {
                out.write(handle::into_raw(shmsock_subscriber { inner: subscriber }));
                Ok(())
            }
        }
    })
}

/// Frees a subscription (closing its socket if it is still in progress).
/// NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscribing_free(subscribing: *mut shmsock_subscribing) {
    // SAFETY: a subscription from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(subscribing) })
}
