//! v6sentry's native core, imported by Python as `detectors._native`.
//!
//! Owns everything that runs once per packet: reading captures (`capture`) and
//! decoding frames into typed events (`decode`), reading live interfaces through
//! TPACKET_V3 rings (`live`), the split of one link over
//! worker processes (`merge`), the fused per-packet loop (`pipeline`) and the
//! families' counting (`reducer`, `reduce`). Python sees only events, reducer
//! outputs and counters; it never touches packet bytes.

use pyo3::prelude::*;

pub mod capture;
pub mod decode;
pub mod live;
pub mod merge;
pub mod pipeline;
pub mod record;
pub mod reduce;
pub mod reducer;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    capture::register(m)?;
    decode::register(m)?;
    live::register(m)?;
    merge::register(m)?;
    pipeline::register(m)?;
    reducer::register(m)?;
    Ok(())
}
