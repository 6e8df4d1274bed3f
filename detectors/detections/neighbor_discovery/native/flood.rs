//! `ipv6.ndp_flood`'s counting: per-link packet-time windows of local-link NS and NA,
//! and the table of source MACs and addresses already seen in ND (`flood.py`).
//!
//! Every ND message moves the link's window (RS, RA and Redirect too: they keep it
//! alive without counting); NS and NA are counted, and senders new to the link are
//! counted once each. A window that closes past any threshold goes to Python with its
//! counts and the first message of each signature it crossed; Python suppresses and
//! writes the alert. Quiet windows never cross.

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::decode::events::{Event, NdBody};
use crate::decode::topy::Converter;
use crate::reduce::windows::{Lru, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

use super::{count, link_of, link_py, local_nd, Link};

const SAMPLE: usize = 10;

/// One entry of `known_sources`: a MAC or an address already seen on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Known {
    Mac([u8; 6]),
    Addr([u8; 16]),
}

#[derive(Default)]
struct Win {
    start_ns: i64,
    last_ns: i64,
    ns: u64,
    na: u64,
    new_macs: u64,
    new_addresses: u64,
    sample_macs: Vec<[u8; 6]>,
    // The first message of each signature (`sample.setdefault`).
    ns_flood: Option<Event>,
    na_flood: Option<Event>,
    new_sources: Option<Event>,
}

type Handle = Rc<RefCell<Win>>;

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

pub struct Flood {
    max_ns: u64,
    max_na: u64,
    max_new: u64,
    known: Lru<(Link, Known), ()>,
    links: Windows<Link, Handle>,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    Ok(Box::new(Flood {
        max_ns: count(settings, "max_ns")? as u64,
        max_na: count(settings, "max_na")? as u64,
        max_new: count(settings, "max_new")? as u64,
        known: Lru::new(count(settings, "max_sources_tracked")?),
        links: Windows::new(
            count(settings, "max_links_tracked")?,
            super::setting(settings, "window_ns")?,
        ),
    }))
}

impl Flood {
    /// A closed window: to Python only if it crossed a threshold (`Flood._close`
    /// alerts nothing otherwise), as `("flood", link, start_ns, last_ns, ns, na,
    /// new_macs, new_addresses, sample_macs, {signature: first message})`.
    fn close(&self, link: Link, h: Handle, out: &mut Outputs<'_>) -> PyResult<()> {
        let py = out.list().py(); // outputs live as long as the batch's list
        let w = h.borrow();
        let crossed = [
            ("ns_flood", w.ns > self.max_ns, &w.ns_flood),
            ("na_flood", w.na > self.max_na, &w.na_flood),
            (
                "new_sources",
                w.new_macs.max(w.new_addresses) > self.max_new,
                &w.new_sources,
            ),
        ];
        if !crossed.iter().any(|c| c.1) {
            return Ok(());
        }
        let mut conv = Converter::new(py)?;
        let sample = PyDict::new(py);
        for (sig, over, ev) in crossed {
            if let (true, Some(ev)) = (over, ev) {
                sample.set_item(sig, conv.event(ev)?)?;
            }
        }
        let macs = PyList::new(py, w.sample_macs.iter().map(|m| PyBytes::new(py, m)))?;
        let item = PyTuple::new(
            py,
            [
                "flood".into_pyobject(py)?.into_any(),
                link_py(py, &link)?.into_any(),
                w.start_ns.into_pyobject(py)?.into_any(),
                w.last_ns.into_pyobject(py)?.into_any(),
                w.ns.into_pyobject(py)?.into_any(),
                w.na.into_pyobject(py)?.into_any(),
                w.new_macs.into_pyobject(py)?.into_any(),
                w.new_addresses.into_pyobject(py)?.into_any(),
                macs.into_any(),
                sample.into_any(),
            ],
        )?;
        out.push(item.into_any())
    }

    fn close_all(&self, closed: Vec<(Link, Handle)>, out: &mut Outputs<'_>) -> PyResult<()> {
        for (link, h) in closed {
            self.close(link, h, out)?;
        }
        Ok(())
    }
}

impl Reducer for Flood {
    fn observes(&self) -> Observes {
        Observes {
            nd: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Some(m) = local_nd(ev) else {
            return Ok(());
        };
        let ts = m.meta.ts_ns;
        let link = link_of(&m.meta);
        let mut closed = Vec::new();
        let h = self.links.current(
            link,
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
        match m.body {
            NdBody::NeighborSolicitation { .. } => {
                w.ns += 1;
                if w.ns_flood.is_none() {
                    w.ns_flood = Some(ev.clone());
                }
            }
            NdBody::NeighborAdvertisement { .. } => {
                w.na += 1;
                if w.na_flood.is_none() {
                    w.na_flood = Some(ev.clone());
                }
            }
            _ => return Ok(()), // RS, RA and Redirect senders are not NS/NA flood sources
        }
        if let Some(mac) = m.meta.src_mac {
            let key = (link, Known::Mac(mac));
            if self.known.get(&key).is_none() {
                self.known.put(key, ());
                w.new_macs += 1;
                if w.new_sources.is_none() {
                    w.new_sources = Some(ev.clone());
                }
                if w.sample_macs.len() < SAMPLE {
                    w.sample_macs.push(mac);
                }
            }
        }
        let src = m.ip.src;
        if src != [0; 16] {
            let key = (link, Known::Addr(src));
            if self.known.get(&key).is_none() {
                self.known.put(key, ());
                w.new_addresses += 1;
                if w.new_sources.is_none() {
                    w.new_sources = Some(ev.clone());
                }
            }
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
        vec![
            self.known.table_stat("neighbor_discovery.known_sources"),
            self.links
                .table
                .table_stat("neighbor_discovery.flood_links"),
        ]
    }
}
