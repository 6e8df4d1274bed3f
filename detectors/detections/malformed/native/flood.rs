//! `fragment_flood`'s counting: fragments that never complete, per link, in packet-time
//! windows.
//!
//! Owns the per-link windows of the reassembler's `timeout` and `evicted` anomalies (a
//! datagram whose fragments never all came, dropped on the timeout or pushed out by the
//! table's caps). A flood of fragments that never complete keeps the reassembly table
//! bounded by evicting; the evictions and timeouts are the signal. Every anomaly is
//! counted here; a window that closes with more than `max_incomplete` goes to Python
//! once, with its counts, a sample of sources and the first anomaly as the sample
//! event. Quiet windows never cross. Tables: `malformed.flood_links`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::decode::events::{Event, FragKind};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, link_to_py, Link};
use crate::reduce::py::any;
use crate::reduce::windows::{KeyedState, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

/// Sources listed in the evidence.
const SAMPLE: usize = 10;
/// Distinct sources counted per window (past it the count is a lower bound).
const MAX_SOURCES: usize = 4096;

#[derive(Default)]
struct Win {
    start_ns: i64,
    last_ns: i64,
    timeout: u64,
    evicted: u64,
    sources: HashSet<[u8; 16], KeyedState>,
    sample: Option<Event>,
}

type Handle = Rc<RefCell<Win>>;

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

/// The `fragment_flood` reducer; see the module docs.
pub struct FragmentFlood {
    max_incomplete: u64,
    links: Windows<Link, Handle>,
}

fn setting(settings: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    settings.get_item(name)?.extract()
}

/// Settings: `{"window_ns", "max_incomplete", "max_links_tracked"}`.
pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    Ok(Box::new(FragmentFlood {
        max_incomplete: setting(settings, "max_incomplete")?.max(0) as u64,
        links: Windows::new(
            setting(settings, "max_links_tracked")?.max(1) as usize,
            setting(settings, "window_ns")?,
        ),
    }))
}

impl FragmentFlood {
    /// A closed window: to Python only past the threshold, as `("flood", link,
    /// start_ns, last_ns, timeout, evicted, sources, [sample source], event)`.
    fn close(&self, link: Link, h: Handle, out: &mut Outputs<'_>) -> PyResult<()> {
        let w = h.borrow();
        if w.timeout + w.evicted <= self.max_incomplete {
            return Ok(());
        }
        let Some(ev) = &w.sample else {
            return Ok(());
        };
        let py = out.list().py();
        let mut conv = Converter::new(py)?;
        let mut sample: Vec<&[u8; 16]> = w.sources.iter().collect();
        sample.sort_unstable();
        sample.truncate(SAMPLE);
        let sample = PyList::new(py, sample.into_iter().map(|a| PyBytes::new(py, a)))?;
        let counts = PyDict::new(py);
        counts.set_item("timeout", w.timeout)?;
        counts.set_item("evicted", w.evicted)?;
        let items = [
            any(py, "flood")?,
            link_to_py(py, &link)?.into_any(),
            any(py, w.start_ns)?,
            any(py, w.last_ns)?,
            counts.into_any(),
            any(py, w.sources.len())?,
            sample.into_any(),
            conv.event(ev)?,
        ];
        out.push(PyTuple::new(py, items)?.into_any())
    }

    fn close_all(&self, closed: Vec<(Link, Handle)>, out: &mut Outputs<'_>) -> PyResult<()> {
        for (link, h) in closed {
            self.close(link, h, out)?;
        }
        Ok(())
    }
}

impl Reducer for FragmentFlood {
    fn observes(&self) -> Observes {
        Observes {
            fragments: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Event::Fragment(f) = ev else {
            return Ok(());
        };
        if !matches!(f.kind, FragKind::Timeout | FragKind::Evicted) {
            return Ok(());
        }
        let ts = f.meta.ts_ns;
        let mut closed = Vec::new();
        let h = self.links.current(
            link_of(ev),
            ts,
            |t| {
                Rc::new(RefCell::new(Win {
                    start_ns: t,
                    ..Win::default()
                }))
            },
            |k, v| closed.push((k, v)),
        );
        self.close_all(closed, out)?;
        let mut w = h.borrow_mut();
        w.last_ns = ts;
        if f.kind == FragKind::Timeout {
            w.timeout += 1;
        } else {
            w.evicted += 1;
        }
        if w.sources.len() < MAX_SOURCES {
            w.sources.insert(f.src);
        }
        if w.sample.is_none() {
            w.sample = Some(ev.clone());
        }
        Ok(())
    }

    fn tick(&mut self, _py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        let closed = self.links.close_due(now_ns);
        self.close_all(closed, out)
    }

    fn flush(&mut self, _py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        let closed = self.links.close_all();
        self.close_all(closed, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![self.links.table.table_stat("malformed.flood_links")]
    }
}
