//! Native per-packet reducers: the counting half of the detections, in Rust.
//!
//! Owns the reducers that see every decoded IPv6 packet and hand Python only what it must
//! judge (a gated threshold crossing, a closed window worth an observation), so Python's
//! work grows with alerts and windows, never with packets. `sketch` and `windows` are the
//! exact ports of `detectors/sketch.py` and `detectors/state.py` they build on; `packet`
//! is the plain per-packet input; `sweep` is `ipv6.sweep`'s counting; `py` is the Python
//! face (`SweepReducer`).
//!
//! The families' own reducers live beside their specs
//! (`detectors/detections/<family>/native/`) and are found by `build.rs`;
//! `builders` lists their kinds.

use pyo3::prelude::*;

pub mod budget;
pub mod few;
pub mod packet;
pub mod py;
pub mod sketch;
pub mod sweep;
pub mod windows;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<py::SweepReducer>()?;
    Ok(())
}

#[allow(clippy::all, unused_mut)]
mod families {
    include!(concat!(env!("OUT_DIR"), "/families.rs"));
}

/// Every reducer kind the families declare: `(kind, constructor)`.
pub fn builders() -> Vec<(&'static str, crate::reducer::Builder)> {
    families::family_reducers()
}
