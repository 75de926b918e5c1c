//! `_SpinHistory`: the core's rule for when spinning pays
//! (`shmsock::wait::SpinHistory`), for `shmsock.aio`, which looks at a ring
//! before it asks the event loop to wake it. One rule for every spin of every
//! language, kept in the core.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use shmsock::wait::SpinHistory;

/// Whether looking at a ring has paid lately (see ``shmsock.aio``).
#[pyclass(module = "shmsock", name = "_SpinHistory", frozen)]
#[derive(Default)]
pub(crate) struct PySpinHistory(SpinHistory);

#[pymethods]
impl PySpinHistory {
    #[new]
    fn new() -> Self {
        PySpinHistory::default()
    }

    /// How many seconds to look now, of a full ``spin``: all of it while
    /// looking pays, else None, but now and then a short probe.
    fn budget(&self, spin: f64) -> PyResult<Option<f64>> {
        let spin =
            Duration::try_from_secs_f64(spin).map_err(|_| PyValueError::new_err("spin must be 0 or more seconds"))?;
        Ok(self.0.budget(spin).map(|d| d.as_secs_f64()))
    }

    /// The look found what it waited for.
    fn found(&self) {
        self.0.found();
    }

    /// The look ran out without finding it.
    fn missed(&self) {
        self.0.missed();
    }
}
