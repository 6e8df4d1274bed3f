//! Native per-packet reducers: the counting half of the detections, in Rust.
//!
//! Owns the building blocks the families' reducers share: `sketch` and `windows` are the
//! exact ports of `detectors/sketch.py` and `detectors/state.py`, `budget` of
//! `Suppressor`, `LinkBudget` and `Seen`, `few` a one-item-inline list, `probe` the
//! per-packet probe filters the scan reducers share, `py` the
//! conversions of their outputs to Python values.
//!
//! The families' own reducers live beside their specs
//! (`detectors/detections/<family>/native/`) and are found by `build.rs`;
//! `builders` lists their kinds.

pub mod budget;
pub mod few;
pub mod probe;
pub mod py;
pub mod sketch;
pub mod windows;

#[allow(clippy::all, unused_mut)]
mod families {
    include!(concat!(env!("OUT_DIR"), "/families.rs"));
}

/// Every reducer kind the families declare: `(kind, constructor)`.
pub fn builders() -> Vec<(&'static str, crate::reducer::Builder)> {
    families::family_reducers()
}
