//! `ipv6.ra_flood`'s counting (`detectors/detections/router_advert/flood.py`).
//!
//! Owns the per-link packet-time windows over every local-link RA, across all sources
//! (flood tools randomise the MAC and address of every packet): RAs, distinct routers
//! (at most `MAX_KEYS`), the largest option count and the RAs over `max_options`, with
//! the first RA and the first oversized RA as samples. A window closes on rollover,
//! eviction, tick and flush, in `Windows` order; only a closed window past one of the
//! thresholds crosses to Python, which checks suppression and writes the alerts. So
//! Python's work grows with flooded windows, never with RAs.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::{local_nd, push, setting, source_lla};
use crate::decode::events::{Event, NdBody, NdMessage};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, link_to_py, Link, MAX_KEYS, SAMPLE};
use crate::reduce::windows::{KeyedState, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

/// A sender as Python's `(ev.ip.src, ev.sender_mac())`: the MAC whole, whatever its
/// length (a source link-layer option on a link without Ethernet may be longer than six
/// bytes; it is boxed only then).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Mac {
    None,
    Six([u8; 6]),
    Other(Box<[u8]>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Router {
    addr: [u8; 16],
    mac: Mac,
}

impl Router {
    fn of(nd: &NdMessage) -> Self {
        let mac = match (nd.meta.src_mac, source_lla(nd)) {
            (Some(m), _) => Mac::Six(m),
            (None, Some(l)) => match <[u8; 6]>::try_from(l) {
                Ok(m) => Mac::Six(m),
                Err(_) => Mac::Other(l.into()),
            },
            (None, None) => Mac::None,
        };
        Router {
            addr: nd.ip.src,
            mac,
        }
    }

    fn mac(&self) -> Option<&[u8]> {
        match &self.mac {
            Mac::None => None,
            Mac::Six(m) => Some(m),
            Mac::Other(m) => Some(m),
        }
    }

    /// Python's sort key: `(address, mac or b"")`.
    fn sort_key(&self) -> (&[u8], &[u8]) {
        (&self.addr, self.mac().unwrap_or(&[]))
    }

    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mac = match self.mac() {
            Some(m) => PyBytes::new(py, m).into_any(),
            None => py.None().into_bound(py),
        };
        Ok(PyTuple::new(py, [PyBytes::new(py, &self.addr).into_any(), mac])?.into_any())
    }
}

/// One link's window (`flood._Window`).
struct Win {
    start_ns: i64,
    first_ns: i64,
    last_ns: i64,
    ras: u64,
    /// Keyed hashing: the addresses are the attacker's choice.
    routers: HashSet<Router, KeyedState>,
    routers_overflow: bool,
    big: u64,
    max_options: usize,
    sample: Option<Event>,
    big_sample: Option<Event>,
}

type WinRef = Rc<RefCell<Win>>;

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

struct Config {
    max_ras: u64,
    max_routers: usize,
    max_options: usize,
}

pub struct FloodReducer {
    cfg: Config,
    links: Windows<Link, WinRef>,
    /// Windows closed during `observe` (rolled over, evicted), handed out in order.
    closed: Vec<(Link, WinRef)>,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let window_ns: i64 = setting(settings, "window_ns")?;
    let cap: usize = setting(settings, "cap")?;
    Ok(Box::new(FloodReducer {
        cfg: Config {
            max_ras: setting(settings, "max_ras")?,
            max_routers: setting(settings, "max_routers")?,
            max_options: setting(settings, "max_options")?,
        },
        links: Windows::new(cap, window_ns),
        closed: Vec::new(),
    }))
}

impl FloodReducer {
    /// Does the closed window raise anything? Only then does it cross to Python.
    fn alerts(&self, w: &Win) -> bool {
        w.ras > self.cfg.max_ras || w.routers.len() > self.cfg.max_routers || w.big > 0
    }

    /// `("flood", link, start_ns, first_ns, last_ns, ras, distinct_routers,
    /// routers_overflow, sample_routers, max_options, big, sample, big_sample)`.
    fn emit(&self, py: Python<'_>, link: Link, w: &WinRef, out: &mut Outputs<'_>) -> PyResult<()> {
        let w = w.borrow();
        if !self.alerts(&w) {
            return Ok(());
        }
        let mut routers: Vec<&Router> = w.routers.iter().collect();
        routers.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let sample = routers
            .iter()
            .take(SAMPLE)
            .map(|r| r.to_py(py))
            .collect::<PyResult<Vec<_>>>()?;
        let mut conv = Converter::new(py)?;
        let opt_event = |conv: &mut Converter<'_>, e: &Option<Event>| -> PyResult<PyObject> {
            Ok(match e {
                Some(e) => conv.event(e)?.unbind(),
                None => py.None(),
            })
        };
        let sample_ev = opt_event(&mut conv, &w.sample)?;
        let big_ev = opt_event(&mut conv, &w.big_sample)?;
        let items: Vec<Bound<'_, PyAny>> = vec![
            "flood".into_pyobject(py)?.into_any(),
            link_to_py(py, &link)?.into_any(),
            w.start_ns.into_pyobject(py)?.into_any(),
            w.first_ns.into_pyobject(py)?.into_any(),
            w.last_ns.into_pyobject(py)?.into_any(),
            w.ras.into_pyobject(py)?.into_any(),
            w.routers.len().into_pyobject(py)?.into_any(),
            pyo3::types::PyBool::new(py, w.routers_overflow)
                .to_owned()
                .into_any(),
            PyList::new(py, sample)?.into_any(),
            w.max_options.into_pyobject(py)?.into_any(),
            w.big.into_pyobject(py)?.into_any(),
            sample_ev.into_bound(py),
            big_ev.into_bound(py),
        ];
        push(out, PyTuple::new(py, items)?.into_any())
    }

    fn emit_closed(&mut self, py: Python<'_>, out: &mut Outputs<'_>) -> PyResult<()> {
        let closed = std::mem::take(&mut self.closed);
        for (link, w) in &closed {
            self.emit(py, *link, w, out)?;
        }
        Ok(())
    }
}

impl Reducer for FloodReducer {
    fn observes(&self) -> Observes {
        Observes {
            nd: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Some(nd) = local_nd(ev) else {
            return Ok(());
        };
        if !matches!(nd.body, NdBody::RouterAdvertisement { .. }) {
            return Ok(());
        }
        let ts = nd.meta.ts_ns;
        let closed = &mut self.closed;
        let w = self.links.current(
            link_of(ev),
            ts,
            |t| {
                Rc::new(RefCell::new(Win {
                    start_ns: t,
                    first_ns: t,
                    last_ns: 0,
                    ras: 0,
                    routers: HashSet::with_hasher(KeyedState::new()),
                    routers_overflow: false,
                    big: 0,
                    max_options: 0,
                    sample: None,
                    big_sample: None,
                }))
            },
            |k, v| closed.push((k, v)),
        );
        if !self.closed.is_empty() {
            self.emit_closed(py, out)?;
        }
        let mut w = w.borrow_mut();
        w.ras += 1;
        w.last_ns = ts;
        if w.sample.is_none() {
            w.sample = Some(ev.clone());
        }
        if w.routers.len() < MAX_KEYS {
            w.routers.insert(Router::of(nd));
        } else {
            w.routers_overflow = true;
        }
        let n = nd.options.len();
        w.max_options = w.max_options.max(n);
        if n > self.cfg.max_options {
            w.big += 1;
            if w.big_sample.is_none() {
                w.big_sample = Some(ev.clone());
            }
        }
        Ok(())
    }

    fn tick(&mut self, py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.closed = self.links.close_due(now_ns);
        self.emit_closed(py, out)
    }

    fn flush(&mut self, py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.closed = self.links.close_all();
        self.emit_closed(py, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        let t = &self.links.table;
        vec![t.table_stat("router_advert.flood_links")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(last: u8, mac: Mac) -> Router {
        let mut addr = [0u8; 16];
        addr[15] = last;
        Router { addr, mac }
    }

    #[test]
    fn routers_sort_as_python_with_a_missing_mac_first() {
        let mut v = [
            router(2, Mac::None),
            router(1, Mac::Other(vec![0; 14].into())),
            router(1, Mac::Six([0; 6])),
            router(1, Mac::None),
        ];
        v.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        assert_eq!(v[0], router(1, Mac::None));
        assert_eq!(v[1], router(1, Mac::Six([0; 6]))); // a prefix sorts before its extension
        assert_eq!(v[2], router(1, Mac::Other(vec![0; 14].into())));
        assert_eq!(v[3], router(2, Mac::None));
    }
}
