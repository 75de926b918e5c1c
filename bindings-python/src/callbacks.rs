//! Python callbacks called from core threads (a Server's dispatch thread, a
//! Client's reader thread).
//!
//! The core thread takes the GIL for the call only. An exception raised by a
//! callback goes to `on_error` as a `CallbackError` (the original exception is
//! its `__cause__`); an exception raised by `on_error` itself, or by a callback
//! when there is no `on_error`, goes to `sys.unraisablehook` (printed to stderr
//! by default), so none is ever lost silently and none crashes the process.

use std::sync::{Arc, Mutex, Weak};

use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::PyTraverseError;

/// Which callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Connect = 0,
    Data = 1,
    Error = 2,
    Close = 3,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::Connect => "on_connect",
            Slot::Data => "on_data",
            Slot::Error => "on_error",
            Slot::Close => "on_close",
        }
    }
}

/// The four callbacks, each optional. Locks are held only to clone or replace
/// a reference, always with the GIL held, so they never wait on each other.
#[derive(Default)]
pub(crate) struct Callbacks {
    slots: [Mutex<Option<Py<PyAny>>>; 4],
}

impl Callbacks {
    /// Checks and stores the callbacks given to a constructor.
    pub(crate) fn new(given: [(Slot, Option<Bound<'_, PyAny>>); 4]) -> PyResult<Callbacks> {
        let callbacks = Callbacks::default();
        for (slot, value) in given {
            if let Some(f) = value.filter(|f| !f.is_none()) {
                if !f.is_callable() {
                    return Err(PyTypeError::new_err(format!(
                        "{} must be callable or None, not '{}'",
                        slot.name(),
                        crate::buffer::type_name(&f)
                    )));
                }
                *callbacks.slots[slot as usize].lock().unwrap_or_else(|p| p.into_inner()) = Some(f.unbind());
            }
        }
        Ok(callbacks)
    }

    fn get<'py>(&self, py: Python<'py>, slot: Slot) -> Option<Bound<'py, PyAny>> {
        self.slots[slot as usize].lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|f| f.bind(py).clone())
    }

    /// True when the callback is set.
    pub(crate) fn has(&self, py: Python<'_>, slot: Slot) -> bool {
        self.get(py, slot).is_some()
    }

    /// Calls callback `slot` with `args`. An exception is reported to
    /// `on_error(*error_prefix, CallbackError)`, or to the unraisable hook.
    pub(crate) fn call<'py>(
        &self,
        py: Python<'py>,
        slot: Slot,
        args: Bound<'py, PyTuple>,
        error_prefix: &[Bound<'py, PyAny>],
    ) {
        let Some(f) = self.get(py, slot) else { return };
        let Err(err) = f.call1(args) else { return };
        if slot == Slot::Error {
            err.write_unraisable(py, Some(&f));
            return;
        }
        let Some(on_error) = self.get(py, Slot::Error) else {
            err.write_unraisable(py, Some(&f));
            return;
        };
        let wrapped = crate::errors::callback_error(py, slot.name(), &err);
        let mut items: Vec<Bound<'py, PyAny>> = error_prefix.to_vec();
        items.push(wrapped);
        let args = match PyTuple::new(py, items) {
            Ok(a) => a,
            Err(e) => {
                e.write_unraisable(py, Some(&on_error));
                return;
            }
        };
        if let Err(second) = on_error.call1(args) {
            // Both are reported: the callback's exception, then on_error's.
            err.write_unraisable(py, Some(&f));
            second.write_unraisable(py, Some(&on_error));
        }
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for slot in &self.slots {
            // try_lock: never wait inside the garbage collector.
            if let Ok(guard) = slot.try_lock() {
                if let Some(f) = guard.as_ref() {
                    visit.call(f)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            let old = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(old);
        }
    }
}

/// Waits (without the GIL: call inside `detach`) until `arc` is the last
/// reference, then drops what it holds. Other references are clones held for
/// the length of one call, which ends quickly once the object is closed.
pub(crate) fn drop_when_unique<T>(mut arc: Arc<T>) {
    loop {
        match Arc::try_unwrap(arc) {
            Ok(inner) => {
                drop(inner);
                return;
            }
            Err(shared) => {
                arc = shared;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// A list of live objects to close at interpreter exit.
pub(crate) struct Registry<T> {
    items: Mutex<Vec<Weak<T>>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new() -> Registry<T> {
        Registry { items: Mutex::new(Vec::new()) }
    }

    pub(crate) fn add(&self, item: &Arc<T>) {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.retain(|w| w.strong_count() > 0);
        items.push(Arc::downgrade(item));
    }

    pub(crate) fn live(&self) -> Vec<Arc<T>> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.retain(|w| w.strong_count() > 0);
        items.iter().filter_map(Weak::upgrade).collect()
    }
}
