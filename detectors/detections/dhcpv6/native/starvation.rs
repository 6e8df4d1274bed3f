//! `ipv6.dhcpv6_starvation`'s counting: per-link packet-time windows of local-link
//! DHCPv6 messages.
//!
//! Owns, per window: Solicits and their distinct client DUIDs and source MACs (exact up
//! to a few hundred, then a HyperLogLog: `sketch::DistinctCounter`), Advertises,
//! Requests and Replies, and the transactions that never complete: clients advertised
//! to that send no Request (RFC 8415 18.2.1: a client that takes an Advertise
//! requests), and Requests (client DUID, transaction id) without a Reply, each in a set
//! capped at `max_pending` (past it, they are counted as incomplete untracked). A window that closes past a threshold goes to Python
//! with its counts and the first message of each signature it crossed; quiet windows
//! never do.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::decode::events::{Dhcpv6Message, Event};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, link_to_py, Link};
use crate::reduce::py::any;
use crate::reduce::sketch::{hash_bytes, mix64, DistinctCounter};
use crate::reduce::windows::{Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

use super::{count, local, setting, ADVERTISE, REPLY, REQUEST, SOLICIT};

const SAMPLE: usize = 10;
/// Exact distinct counts up to this many per window, then the sketch.
const EXACT: usize = 256;
const PRECISION: u32 = 12;

struct Win {
    start_ns: i64,
    last_ns: i64,
    solicits: u64,
    duids: DistinctCounter,
    macs: DistinctCounter,
    sample_macs: Vec<[u8; 6]>,
    advertises: u64,
    requests: u64,
    replies: u64,
    pending: HashSet<u64>,
    /// Clients (DUID hashes) advertised to that have not sent a Request since.
    advertised: HashSet<u64>,
    /// Requests or Advertises not tracked because `pending` was full: counted as never completed.
    untracked: u64,
    solicit_flood: Option<Event>,
    request_churn: Option<Event>,
}

type Handle = Rc<RefCell<Win>>;

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

impl Win {
    fn new(start_ns: i64) -> Self {
        Win {
            start_ns,
            last_ns: start_ns,
            solicits: 0,
            duids: DistinctCounter::new(EXACT, PRECISION),
            macs: DistinctCounter::new(EXACT, PRECISION),
            sample_macs: Vec::new(),
            advertises: 0,
            requests: 0,
            replies: 0,
            pending: HashSet::new(),
            advertised: HashSet::new(),
            untracked: 0,
            solicit_flood: None,
            request_churn: None,
        }
    }

    fn clients(&self) -> u64 {
        self.duids.estimate().max(self.macs.estimate()).round() as u64
    }

    /// Counts one DHCPv6 message of this window's link.
    fn add(&mut self, m: &Dhcpv6Message, ev: &Event, max_pending: usize) {
        self.last_ns = m.meta.ts_ns;
        match m.msg_type {
            SOLICIT => {
                self.solicits += 1;
                if let Some(duid) = &m.client_id {
                    self.duids.add(hash_bytes(duid));
                }
                if let Some(mac) = m.meta.src_mac {
                    if self.macs.add(hash_bytes(&mac)) && self.sample_macs.len() < SAMPLE {
                        self.sample_macs.push(mac);
                    }
                }
                if self.solicit_flood.is_none() {
                    self.solicit_flood = Some(ev.clone());
                }
            }
            ADVERTISE => {
                self.advertises += 1;
                let client = m.client_id.as_deref().map_or(0, hash_bytes);
                if self.advertised.len() < max_pending {
                    self.advertised.insert(client);
                } else if !self.advertised.contains(&client) {
                    self.untracked += 1;
                }
                if self.request_churn.is_none() {
                    self.request_churn = Some(ev.clone());
                }
            }
            REQUEST => {
                self.requests += 1;
                let client = m.client_id.as_deref().map_or(0, hash_bytes);
                self.advertised.remove(&client);
                let t = transaction(m.client_id.as_deref(), m.transaction_id);
                if self.pending.len() < max_pending {
                    self.pending.insert(t);
                } else if !self.pending.contains(&t) {
                    self.untracked += 1;
                }
                if self.request_churn.is_none() {
                    self.request_churn = Some(ev.clone());
                }
            }
            _ => {
                self.replies += 1;
                let t = transaction(m.client_id.as_deref(), m.transaction_id);
                self.pending.remove(&t);
            }
        }
    }

    fn incomplete(&self) -> u64 {
        (self.pending.len() + self.advertised.len()) as u64 + self.untracked
    }
}

pub struct Starvation {
    max_clients: u64,
    max_requests: u64,
    max_incomplete: u64,
    max_pending: usize,
    links: Windows<Link, Handle>,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    Ok(Box::new(Starvation {
        max_clients: count(settings, "max_clients")? as u64,
        max_requests: count(settings, "max_requests")? as u64,
        max_incomplete: count(settings, "max_incomplete")? as u64,
        max_pending: count(settings, "max_pending")?,
        links: Windows::new(
            count(settings, "max_links_tracked")?,
            setting(settings, "window_ns")?,
        ),
    }))
}

/// A Request transaction: its client DUID and transaction id (RFC 8415 8: the Reply
/// echoes both).
fn transaction(client: Option<&[u8]>, xid: u32) -> u64 {
    mix64(client.map_or(0, hash_bytes) ^ u64::from(xid))
}

impl Starvation {
    /// A closed window, to Python only if it crossed a threshold:
    /// `("starvation", link, start_ns, last_ns, solicits, distinct_duids, distinct_macs,
    /// sample_macs, advertises, requests, replies, incomplete, {signature: message})`.
    fn close(&self, link: Link, h: Handle, out: &mut Outputs<'_>) -> PyResult<()> {
        let py = out.list().py();
        let w = h.borrow();
        let churn = w.requests > self.max_requests || w.incomplete() > self.max_incomplete;
        let crossed = [
            (
                "solicit_flood",
                w.clients() > self.max_clients,
                &w.solicit_flood,
            ),
            ("request_churn", churn, &w.request_churn),
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
        let items = vec![
            any(py, "starvation")?,
            link_to_py(py, &link)?.into_any(),
            any(py, w.start_ns)?,
            any(py, w.last_ns)?,
            any(py, w.solicits)?,
            any(py, w.duids.estimate().round() as u64)?,
            any(py, w.macs.estimate().round() as u64)?,
            macs.into_any(),
            any(py, w.advertises)?,
            any(py, w.requests)?,
            any(py, w.replies)?,
            any(py, w.incomplete())?,
            sample.into_any(),
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

impl Reducer for Starvation {
    fn observes(&self) -> Observes {
        Observes {
            dhcpv6: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Some(m) = local(ev) else {
            return Ok(());
        };
        if !matches!(m.msg_type, SOLICIT | ADVERTISE | REQUEST | REPLY) {
            return Ok(());
        }
        let ts = m.meta.ts_ns;
        let mut closed = Vec::new();
        let h = self.links.current(
            link_of(ev),
            ts,
            |t| Rc::new(RefCell::new(Win::new(t))),
            |k, v| closed.push((k, v)),
        );
        self.close_all(closed, out)?;
        h.borrow_mut().add(m, ev, self.max_pending);
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
        vec![self.links.table.table_stat("dhcpv6.starvation_links")]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::msg;
    use super::*;

    fn add(w: &mut Win, m: Dhcpv6Message) {
        let ev = Event::Dhcpv6(m.clone());
        w.add(&m, &ev, 4);
    }

    #[test]
    fn distinct_clients_and_transactions_that_never_complete() {
        let mut w = Win::new(0);
        for c in 0..10 {
            add(&mut w, msg(SOLICIT, 1, c, c, c, 1));
        }
        add(&mut w, msg(SOLICIT, 1, 0, 0, 0, 1)); // a retransmission: no new client
        assert_eq!((w.solicits, w.clients()), (11, 10));
        // Clients 0..3 are advertised to; 0 and 1 request, 0 gets its Reply.
        for c in 0..3 {
            add(&mut w, msg(ADVERTISE, 2, 99, 99, c, 1));
        }
        add(&mut w, msg(REQUEST, 3, 0, 0, 0, 7));
        add(&mut w, msg(REQUEST, 3, 1, 1, 1, 8));
        add(&mut w, msg(REPLY, 4, 99, 99, 0, 7));
        add(&mut w, msg(REPLY, 4, 99, 99, 1, 9)); // another transaction: no match
                                                  // Open: client 2's Advertise, client 1's Request.
        assert_eq!((w.requests, w.replies, w.incomplete()), (2, 2, 2));
        assert!(w.solicit_flood.is_some() && w.request_churn.is_some());
    }

    #[test]
    fn open_transactions_past_the_cap_count_untracked() {
        let mut w = Win::new(0);
        for c in 0..10 {
            add(&mut w, msg(REQUEST, 1, c, c, c, u32::from(c)));
        }
        assert_eq!(w.pending.len(), 4);
        assert_eq!(w.incomplete(), 10);
    }
}
