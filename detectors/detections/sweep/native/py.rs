//! The sweep's outputs as Python sees them: `Outcome`s turned into plain tuples, a
//! window's first packet into the `detectors.events.Ipv6Packet` it was decoded as.
//!
//! Only this module touches Python objects, and only when an outcome is handed over
//! (a tier crossed, a wide scan, a closed window worth an observation).

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::core::{FanSnapshot, Outcome, WinSnapshot, TABLE_NAMES};
use crate::decode::events::{Event, Ipv6Packet};
use crate::decode::topy::Converter;
use crate::reduce::probe::PROBE_NAMES;
use crate::reduce::py::{any, bytes, tuple};

/// `[(address, new targets), ...]` in first-seen order.
fn sources_list<'py>(py: Python<'py>, s: &[([u8; 16], u64)]) -> PyResult<Bound<'py, PyAny>> {
    let items = s
        .iter()
        .map(|(a, n)| tuple(py, vec![bytes(py, a), any(py, *n)?]))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

/// `[(kind, packets), ...]` for the kinds seen.
fn probes_list<'py>(py: Python<'py>, probes: &[u64; 7]) -> PyResult<Bound<'py, PyAny>> {
    let mut items = Vec::new();
    for (name, &n) in PROBE_NAMES.iter().zip(probes) {
        if n > 0 {
            items.push(tuple(py, vec![any(py, *name)?, any(py, n)?])?);
        }
    }
    Ok(PyList::new(py, items)?.into_any())
}

/// `(start_ns, last_ns, packets, sources, more_sources, probes, sample, level, first,
/// crossing)`, `first` the window's first packet and `crossing` the packet that crossed a
/// tier (None when a window closed) as the `detectors.events.Ipv6Packet`s they were.
fn win_tuple<'py>(py: Python<'py>, w: &WinSnapshot) -> PyResult<Bound<'py, PyAny>> {
    let sample = w.sample.iter().map(|a| bytes(py, a)).collect::<Vec<_>>();
    tuple(
        py,
        vec![
            any(py, w.start_ns)?,
            any(py, w.last_ns)?,
            any(py, w.packets)?,
            sources_list(py, &w.sources)?,
            any(py, w.more_sources)?,
            probes_list(py, &w.probes)?,
            PyList::new(py, sample)?.into_any(),
            any(py, w.sample_level)?,
            packet(py, &w.first)?,
            crossing(py, &w.crossing)?,
        ],
    )
}

/// A decoded packet as the `detectors.events.Ipv6Packet` it was.
fn packet<'py>(py: Python<'py>, p: &Ipv6Packet) -> PyResult<Bound<'py, PyAny>> {
    Converter::new(py)?.event(&Event::Packet(p.clone()))
}

/// The packet that crossed a tier, or None (a window that closed).
fn crossing<'py>(py: Python<'py>, p: &Option<Ipv6Packet>) -> PyResult<Bound<'py, PyAny>> {
    match p {
        Some(p) => packet(py, p),
        None => Ok(py.None().into_bound(py)),
    }
}

fn addresses<'py>(py: Python<'py>, a: &[[u8; 16]]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyList::new(py, a.iter().map(|x| bytes(py, x)))?.into_any())
}

/// `(start_ns, last_ns, packets, probes, sample, level, sources, source level, first,
/// crossing)` of a fan-in window.
fn fan_tuple<'py>(py: Python<'py>, w: &FanSnapshot) -> PyResult<Bound<'py, PyAny>> {
    tuple(
        py,
        vec![
            any(py, w.start_ns)?,
            any(py, w.last_ns)?,
            any(py, w.packets)?,
            probes_list(py, &w.probes)?,
            addresses(py, &w.sample)?,
            any(py, w.sample_level)?,
            addresses(py, &w.src_sample)?,
            any(py, w.src_level)?,
            packet(py, &w.first)?,
            crossing(py, &w.crossing)?,
        ],
    )
}

pub(super) fn outcome<'py>(py: Python<'py>, o: &Outcome) -> PyResult<Bound<'py, PyAny>> {
    match o {
        Outcome::Tier {
            src64,
            dst64,
            tier,
            estimate,
            exact,
            ratio,
            responders,
            source_targets,
            win,
        } => tuple(
            py,
            vec![
                any(py, "tier")?,
                bytes(py, src64),
                bytes(py, dst64),
                any(py, *tier)?,
                any(py, *estimate)?,
                any(py, *exact)?,
                any(py, *ratio)?,
                any(py, *responders)?,
                any(py, *source_targets)?,
                win_tuple(py, win)?,
            ],
        ),
        Outcome::Wide {
            src64,
            targets,
            prefixes,
            exact,
            ratio,
            responders,
            win,
        } => tuple(
            py,
            vec![
                any(py, "wide")?,
                bytes(py, src64),
                any(py, *targets)?,
                any(py, *prefixes)?,
                any(py, *exact)?,
                any(py, *ratio)?,
                any(py, *responders)?,
                win_tuple(py, win)?,
            ],
        ),
        Outcome::Closed {
            src64,
            dst64,
            estimate,
            exact,
            sources,
            more_sources,
            packets,
            probes,
            tier,
            start_ns,
            last_ns,
            ratio,
        } => tuple(
            py,
            vec![
                any(py, "closed")?,
                bytes(py, src64),
                bytes(py, dst64),
                any(py, *estimate)?,
                any(py, *exact)?,
                sources_list(py, sources)?,
                any(py, *more_sources)?,
                any(py, *packets)?,
                probes_list(py, probes)?,
                any(py, *tier)?,
                any(py, *start_ns)?,
                any(py, *last_ns)?,
                any(py, *ratio)?,
            ],
        ),
        Outcome::FanIn {
            dst64,
            tier,
            targets,
            exact,
            sources,
            ratio,
            responders,
            win,
        } => tuple(
            py,
            vec![
                any(py, "fanin")?,
                bytes(py, dst64),
                any(py, *tier)?,
                any(py, *targets)?,
                any(py, *exact)?,
                any(py, *sources)?,
                any(py, *ratio)?,
                any(py, *responders)?,
                fan_tuple(py, win)?,
            ],
        ),
        Outcome::FanClosed {
            dst64,
            targets,
            exact,
            sources,
            ratio,
            packets,
            probes,
            tier,
            start_ns,
            last_ns,
            src_sample,
            src_level,
        } => tuple(
            py,
            vec![
                any(py, "fanclosed")?,
                bytes(py, dst64),
                any(py, *targets)?,
                any(py, *exact)?,
                any(py, *sources)?,
                any(py, *ratio)?,
                any(py, *packets)?,
                probes_list(py, probes)?,
                any(py, *tier)?,
                any(py, *start_ns)?,
                any(py, *last_ns)?,
                addresses(py, src_sample)?,
                any(py, *src_level)?,
            ],
        ),
        Outcome::Thrash {
            table,
            evictions,
            cap,
            threshold,
            start_ns,
            ts_ns,
            total,
            packet,
        } => tuple(
            py,
            vec![
                any(py, "thrash")?,
                any(py, TABLE_NAMES[*table])?,
                any(py, *evictions)?,
                any(py, *cap)?,
                any(py, *threshold)?,
                any(py, *start_ns)?,
                any(py, *ts_ns)?,
                any(py, *total)?,
                self::packet(py, packet)?,
            ],
        ),
    }
}
