//! Native reducers: the counting half of the detections, in Rust.
//!
//! Owns the building blocks every family's reducer shares and the table of reducer
//! kinds. The families' own reducers live beside their specs
//! (`detectors/detections/<family>/native/`) and are found by `build.rs`.

#[allow(clippy::all, unused_mut)]
mod families {
    include!(concat!(env!("OUT_DIR"), "/families.rs"));
}

use crate::reducer::Builder;

/// Every reducer kind the families declare: `(kind, constructor)`.
pub fn builders() -> Vec<(&'static str, Builder)> {
    families::family_reducers()
}
