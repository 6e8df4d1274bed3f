//! v6sentry's native core, imported by Python as `detectors._native`.
//!
//! Owns everything that runs once per packet: reading captures (`capture`) and
//! decoding frames into typed events (`decode`), and counting them per packet
//! (`reduce`). Python sees only events and
//! counters; it never touches packet bytes.

use pyo3::prelude::*;

pub mod capture;
pub mod decode;
pub mod record;
pub mod reduce;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    capture::register(m)?;
    decode::register(m)?;
    reduce::register(m)?;
    Ok(())
}
