//! Timeouts as Python passes them, and waiting that Ctrl-C can interrupt.
//!
//! A blocking core call cannot be interrupted from outside, so a Python call
//! that may wait long runs the core call in slices of at most [`SLICE`] with
//! the GIL released, and between slices takes the GIL back to run signal
//! handlers (`py.check_signals()`: KeyboardInterrupt on Ctrl-C). The core keeps
//! every partly received message across a timed-out slice ("nothing was lost"),
//! so slicing changes nothing but the wake-up granularity of Ctrl-C.

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;
use shmsock::{Error as CoreError, ErrorKind, Options};

/// Longest time a blocking call waits without looking at signals.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A `timeout=` argument: omitted (the object's default), None (forever) or
/// seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Timeout {
    Default,
    Forever,
    After(Duration),
}

impl Timeout {
    /// The timeout, with `default` for an omitted argument.
    pub(crate) fn or(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Timeout::Default => default,
            Timeout::Forever => None,
            Timeout::After(d) => Some(d),
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Timeout {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Timeout> {
        Ok(match seconds(&obj, "timeout")? {
            None => Timeout::Forever,
            Some(d) => Timeout::After(d),
        })
    }
}

/// Seconds as a Python number (None: no limit) to a Duration. Negative or NaN
/// values are a ValueError, anything but a number a TypeError. Infinity means
/// no limit.
pub(crate) fn seconds(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<Duration>> {
    if obj.is_none() {
        return Ok(None);
    }
    let not_a_number = || {
        PyTypeError::new_err(format!(
            "{what} must be a number of seconds (int or float) or None, not '{}'",
            crate::buffer::type_name(obj)
        ))
    };
    if obj.is_instance_of::<PyBool>() {
        return Err(not_a_number());
    }
    let value: f64 = obj.extract().map_err(|_| not_a_number())?;
    if value.is_nan() {
        return Err(PyValueError::new_err(format!("{what} must be a number of seconds, not NaN")));
    }
    if value < 0.0 {
        return Err(PyValueError::new_err(format!("{what} must be >= 0 (or None to wait forever), not {value}")));
    }
    if value.is_infinite() {
        return Ok(None);
    }
    Duration::try_from_secs_f64(value)
        .map(Some)
        .map_err(|_| PyValueError::new_err(format!("{what} of {value} seconds is out of range")))
}

/// An optional seconds argument (None or omitted: `None`).
pub(crate) fn opt_seconds(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Duration>> {
    match obj {
        None => Ok(None),
        Some(o) => seconds(o, what),
    }
}

/// Runs `f(slice)` with the GIL released until it returns anything but a
/// Timeout that still leaves time before `timeout`, checking signals between
/// slices. The outer error is a Python exception raised by a signal handler
/// (KeyboardInterrupt) or by `between` (e.g. "closed"); the inner result is the
/// core's.
pub(crate) fn sliced<T, F>(
    py: Python<'_>,
    timeout: Option<Duration>,
    between: impl FnMut(Python<'_>) -> PyResult<()>,
    f: F,
) -> PyResult<Result<T, CoreError>>
where
    F: FnMut(Option<Duration>) -> Result<T, CoreError> + Send,
    T: Send,
{
    sliced_while(py, timeout, |kind| kind == ErrorKind::Timeout, between, f)
}

/// As [`sliced`], going on after any error of a kind for which `again` holds.
fn sliced_while<T, F>(
    py: Python<'_>,
    timeout: Option<Duration>,
    again: impl Fn(ErrorKind) -> bool,
    mut between: impl FnMut(Python<'_>) -> PyResult<()>,
    mut f: F,
) -> PyResult<Result<T, CoreError>>
where
    F: FnMut(Option<Duration>) -> Result<T, CoreError> + Send,
    T: Send,
{
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let (slice, last) = match deadline {
            None => (SLICE, false),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left <= SLICE {
                    (left, true)
                } else {
                    (SLICE, false)
                }
            }
        };
        let result = py.detach(|| f(Some(slice)));
        match result {
            Err(e) if again(e.kind()) && !last => {
                py.check_signals()?;
                between(py)?;
            }
            other => return Ok(other),
        }
    }
}

/// Runs `connect(options)` with the GIL released. Under a wait (the ``wait``
/// keyword: `options.connect_wait`) the core waits for the server to appear;
/// it does so here in slices of at most [`SLICE`] (the core's wait going on
/// after each one while the core says it retries the error), so that Ctrl-C
/// interrupts the wait.
pub(crate) fn connect_waiting<T: Send>(
    py: Python<'_>,
    options: &Options,
    connect: impl Fn(&Options) -> Result<T, CoreError> + Sync,
) -> PyResult<T> {
    // The slices are each valid; the whole wait must be too.
    options.validate().map_err(|e| crate::errors::to_py(py, e))?;
    let retried = shmsock::connect_wait::is_retried;
    let result = sliced_while(py, Some(options.connect_wait), retried, nothing, |slice| {
        connect(&options.clone().connect_wait(slice.unwrap_or_default()))
    })?;
    result.map_err(|e| crate::errors::to_py(py, e))
}

/// No check between slices.
pub(crate) fn nothing(_: Python<'_>) -> PyResult<()> {
    Ok(())
}
