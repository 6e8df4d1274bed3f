//! Python values from Rust ones, for the reducers' outputs (and `decode::topy`): the few
//! conversions every family's hand-over repeats. Owns no state.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::IntoPyObjectExt;

/// Any convertible value as a Python object.
pub fn any<'py, T: IntoPyObjectExt<'py>>(py: Python<'py>, v: T) -> PyResult<Bound<'py, PyAny>> {
    v.into_bound_py_any(py)
}

/// `bytes`.
pub fn bytes<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyAny> {
    PyBytes::new(py, b).into_any()
}

/// `bytes` or `None`.
pub fn opt_bytes<'py>(py: Python<'py>, b: Option<&[u8]>) -> Bound<'py, PyAny> {
    match b {
        Some(b) => bytes(py, b),
        None => py.None().into_bound(py),
    }
}

/// A tuple of the items, in order.
pub fn tuple<'py>(py: Python<'py>, items: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyTuple::new(py, items)?.into_any())
}

/// One reducer setting from its settings dict, converted; the error names the reducer and
/// the key (a missing key or a value of the wrong type), since the settings come from a
/// family's Python and a bare `KeyError` would not say whose.
pub fn setting<'py, T: FromPyObject<'py>>(
    settings: &Bound<'py, PyAny>,
    reducer: &str,
    key: &str,
) -> PyResult<T> {
    let value = settings.get_item(key).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "{reducer} reducer: setting {key:?} missing"
        ))
    })?;
    value.extract().map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("{reducer} reducer: setting {key:?}: {e}"))
    })
}
