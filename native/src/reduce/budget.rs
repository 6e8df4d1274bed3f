//! Suppression, per-link alert budgets and offender counts: the native twins of
//! `state.Suppressor` and `detections/budget.py` (`LinkBudget`, `Seen`).
//!
//! Owns three rules the families share, step for step as the Python did them:
//! - `Suppressor`: an identifier that alerted is quiet for `interval_ns` of packet time
//!   (Zeek's Notice suppression), in a bounded table; every refusal is counted.
//! - `LinkBudget`: on one link, at most `max_alerts` individual alerts per window; past
//!   the cap the event is folded into the window's burst (count, distinct offenders, a
//!   sample), handed back as a `Burst` when the window closes, so a flood that
//!   randomises its MAC and address per packet costs one alert, not one per packet.
//! - `Seen`: first/last/count of one offender, for the evidence.
//!
//! Knows nothing of what an offence is: the family asks `permit` before each individual
//! alert. The burst's evidence is written by Python (`budget.burst_alert`), from the
//! `Burst` this hands over.

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::windows::{KeyedState, Lru, Window, Windows};
use crate::decode::events::{Event, Vlans};
use crate::decode::topy::Converter;

/// Distinct offenders remembered per window, even inside one window (`MAX_KEYS`).
pub const MAX_KEYS: usize = 65536;
/// Offenders listed in a burst's evidence (`SAMPLE`).
pub const SAMPLE: usize = 10;

/// One broadcast domain: (interface, VLAN tags), as `budget.link_of`.
pub type Link = (u32, Vlans);

/// The link an event was seen on.
pub fn link_of(ev: &Event) -> Link {
    let m = ev.meta();
    (m.iface, m.vlans)
}

/// The link as Python's `Link` tuple: `(iface, (vlan, ...))`.
pub fn link_to_py<'py>(py: Python<'py>, link: &Link) -> PyResult<Bound<'py, PyTuple>> {
    let vlans = PyTuple::new(py, link.1.as_slice())?;
    PyTuple::new(py, [link.0.into_pyobject(py)?.into_any(), vlans.into_any()])
}

/// Who offended: an address (16 bytes IPv6, 4 bytes IPv4, or empty) and a MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Offender {
    addr: [u8; 16],
    len: u8,
    pub mac: Option<[u8; 6]>,
}

impl Offender {
    pub fn new(addr: &[u8], mac: Option<[u8; 6]>) -> Self {
        let mut a = [0u8; 16];
        let len = addr.len().min(16);
        a[..len].copy_from_slice(&addr[..len]);
        Offender {
            addr: a,
            len: len as u8,
            mac,
        }
    }

    pub fn addr(&self) -> &[u8] {
        &self.addr[..self.len as usize]
    }

    /// Python's sort key: `(address, mac or b"")`, bytes compared as Python compares them.
    fn sort_key(&self) -> (&[u8], &[u8]) {
        (self.addr(), self.mac.as_ref().map_or(&[][..], |m| &m[..]))
    }
}

/// Identifiers are strings (or tuples of strings) in Python; here a 128-bit keyed hash
/// of the text, so the table keys stay `Copy`. The keys are random per table, so a
/// collision cannot be aimed; by chance it is 2^-128.
#[derive(Clone)]
struct IdHasher(KeyedState, KeyedState);

impl IdHasher {
    fn new() -> Self {
        IdHasher(KeyedState::new(), KeyedState::new())
    }

    fn id(&self, identifier: &str) -> u128 {
        (u128::from(self.0.hash_one(identifier)) << 64) | u128::from(self.1.hash_one(identifier))
    }
}

/// Per-identifier alert suppression on packet time (`state.Suppressor`).
pub struct Suppressor {
    name: String,
    interval_ns: i64,
    table: Lru<u128, i64>,
    hasher: IdHasher,
    suppressed: u64,
}

impl Suppressor {
    /// `name` is the table's name in the stats (`<category>.suppression`).
    pub fn new(name: &str, interval_ns: i64, cap: usize) -> Self {
        Suppressor {
            name: name.to_string(),
            interval_ns,
            table: Lru::new(cap),
            hasher: IdHasher::new(),
            suppressed: 0,
        }
    }

    /// May an alert for `identifier` be raised at `now_ns`? If so it is suppressed from
    /// now for the interval; if not, the refusal is counted.
    pub fn allow(&mut self, identifier: &str, now_ns: i64) -> bool {
        let id = self.hasher.id(identifier);
        if let Some(until) = self.table.get(&id) {
            if now_ns < *until {
                self.suppressed += 1;
                return false;
            }
        }
        self.table.put(id, now_ns.saturating_add(self.interval_ns));
        true
    }

    /// True, and counted as suppressed, while `identifier` is suppressed (no LRU touch).
    pub fn active(&mut self, identifier: &str, now_ns: i64) -> bool {
        let id = self.hasher.id(identifier);
        if let Some(until) = self.table.peek(&id) {
            if now_ns < *until {
                self.suppressed += 1;
                return true;
            }
        }
        false
    }

    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// `(name, size, cap, evictions)` for the stats.
    pub fn table_stat(&self) -> (String, usize, usize, u64) {
        self.table.table_stat(&self.name)
    }
}

/// What one link's window folded instead of alerting individually (`Overflow`).
#[derive(Debug)]
pub struct Overflow {
    pub start_ns: i64,
    /// Individual alerts already raised in this window.
    pub alerts: u64,
    /// Events past the cap.
    pub count: u64,
    keys: HashSet<Offender, KeyedState>,
    pub first_ns: i64,
    pub last_ns: i64,
    pub sample: Option<Event>,
}

impl Overflow {
    fn new(start_ns: i64) -> Self {
        Overflow {
            start_ns,
            alerts: 0,
            count: 0,
            keys: HashSet::default(),
            first_ns: 0,
            last_ns: 0,
            sample: None,
        }
    }

    /// The folded offenders in a stable order (a MAC of None sorts first).
    pub fn offenders(&self) -> Vec<Offender> {
        let mut v: Vec<Offender> = self.keys.iter().copied().collect();
        v.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        v
    }
}

/// A window handle: windows are shared between the table and the caller.
#[derive(Clone, Debug)]
pub struct OverflowRef(Rc<RefCell<Overflow>>);

impl Window for OverflowRef {
    fn start_ns(&self) -> i64 {
        self.0.borrow().start_ns
    }
}

/// A closed window that folded something: the raw material of a `burst` alert.
#[derive(Debug)]
pub struct Burst {
    pub link: Link,
    pub start_ns: i64,
    pub window_ns: i64,
    pub alerts: u64,
    pub count: u64,
    /// All distinct offenders, sorted; the evidence names the first `SAMPLE`.
    pub offenders: Vec<Offender>,
    pub first_ns: i64,
    pub last_ns: i64,
    pub sample: Event,
}

impl Burst {
    /// `("burst", link, start_ns, window_ns, alerts, count, distinct, sample_offenders,
    /// first_ns, last_ns, sample_event)` — what `budget.burst_alert` reads.
    pub fn to_py<'py>(
        &self,
        py: Python<'py>,
        conv: &mut Converter<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sample: Vec<Bound<'py, PyAny>> = self
            .offenders
            .iter()
            .take(SAMPLE)
            .map(|o| {
                let mac = match o.mac {
                    Some(m) => PyBytes::new(py, &m).into_any(),
                    None => py.None().into_bound(py),
                };
                PyTuple::new(py, [PyBytes::new(py, o.addr()).into_any(), mac]).map(|t| t.into_any())
            })
            .collect::<PyResult<_>>()?;
        let items: Vec<Bound<'py, PyAny>> = vec![
            "burst".into_pyobject(py)?.into_any(),
            link_to_py(py, &self.link)?.into_any(),
            self.start_ns.into_pyobject(py)?.into_any(),
            self.window_ns.into_pyobject(py)?.into_any(),
            self.alerts.into_pyobject(py)?.into_any(),
            self.count.into_pyobject(py)?.into_any(),
            self.offenders.len().into_pyobject(py)?.into_any(),
            pyo3::types::PyList::new(py, sample)?.into_any(),
            self.first_ns.into_pyobject(py)?.into_any(),
            self.last_ns.into_pyobject(py)?.into_any(),
            conv.event(&self.sample)?,
        ];
        Ok(PyTuple::new(py, items)?.into_any())
    }
}

/// Caps individual alerts per link and window (`LinkBudget`); see the module docs.
pub struct LinkBudget {
    name: String,
    window_ns: i64,
    max_alerts: u64,
    links: Windows<Link, OverflowRef>,
}

impl LinkBudget {
    /// `name` is the table's full name in the stats (`<family>.<name>`).
    pub fn new(name: &str, cap: usize, window_ns: i64, max_alerts: u64) -> Self {
        LinkBudget {
            name: name.to_string(),
            window_ns,
            max_alerts,
            links: Windows::new(cap, window_ns),
        }
    }

    /// May the individual alert for `identifier` be raised now? A suppressed identifier
    /// costs no budget; past the budget the event is folded into the burst; otherwise
    /// the identifier is suppressed from now. Windows that close meanwhile (rolled over
    /// or evicted) go to `bursts`.
    pub fn permit(
        &mut self,
        suppress: &mut Suppressor,
        identifier: &str,
        ev: &Event,
        key: Offender,
        bursts: &mut Vec<Burst>,
    ) -> bool {
        let ts = ev.meta().ts_ns;
        if suppress.active(identifier, ts) || !self.admit(ev, key, bursts) {
            return false;
        }
        suppress.allow(identifier, ts)
    }

    /// True: raise the individual alert now. False: counted for the burst.
    pub fn admit(&mut self, ev: &Event, key: Offender, bursts: &mut Vec<Burst>) -> bool {
        let ts = ev.meta().ts_ns;
        let link = link_of(ev);
        let window_ns = self.window_ns;
        let w = self.links.current(
            link,
            ts,
            |t| OverflowRef(Rc::new(RefCell::new(Overflow::new(t)))),
            |k, v| push_burst(k, &v, window_ns, bursts),
        );
        let mut w = w.0.borrow_mut();
        if w.alerts < self.max_alerts {
            w.alerts += 1;
            return true;
        }
        w.count += 1;
        if w.keys.len() < MAX_KEYS {
            w.keys.insert(key);
        }
        if w.sample.is_none() {
            w.sample = Some(ev.clone());
            w.first_ns = ts;
        }
        w.last_ns = ts;
        false
    }

    /// Windows a span old at `now_ns`, closed in table order, into `bursts`.
    pub fn tick(&mut self, now_ns: i64, bursts: &mut Vec<Burst>) {
        for (k, v) in self.links.close_due(now_ns) {
            push_burst(k, &v, self.window_ns, bursts);
        }
    }

    /// Every window, closed in table order, into `bursts`.
    pub fn flush(&mut self, bursts: &mut Vec<Burst>) {
        for (k, v) in self.links.close_all() {
            push_burst(k, &v, self.window_ns, bursts);
        }
    }

    /// `(name, size, cap, evictions)` for the stats.
    pub fn table_stat(&self) -> (String, usize, usize, u64) {
        self.links.table.table_stat(&self.name)
    }
}

/// A closed window becomes a burst if it folded anything (its sample is taken, as the
/// Python set `window.sample = None` after raising it).
fn push_burst(link: Link, w: &OverflowRef, window_ns: i64, bursts: &mut Vec<Burst>) {
    let mut w = w.0.borrow_mut();
    let Some(sample) = w.sample.take() else {
        return;
    };
    bursts.push(Burst {
        link,
        start_ns: w.start_ns,
        window_ns,
        alerts: w.alerts,
        count: w.count,
        offenders: w.offenders(),
        first_ns: w.first_ns,
        last_ns: w.last_ns,
        sample,
    });
}

/// One offender's counts for the evidence: first and last seen, how many (`Seen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub first_ns: i64,
    pub last_ns: i64,
    pub count: u64,
}

/// Count one more sighting of `key` in `table` (`seen_in`): the entry, touched.
pub fn seen_in<K: Copy + std::hash::Hash + Eq>(
    table: &mut Lru<K, Seen>,
    key: K,
    ts_ns: i64,
) -> Seen {
    if let Some(s) = table.get(&key) {
        s.count += 1;
        s.last_ns = ts_ns;
        return *s;
    }
    let s = Seen {
        first_ns: ts_ns,
        last_ns: ts_ns,
        count: 1,
    };
    table.put(key, s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::{Malformed, Meta};

    fn ev(ts: i64) -> Event {
        Event::Malformed(Malformed {
            meta: Meta {
                ts_ns: ts,
                ..Meta::default()
            },
            layer: "ipv6",
            reason: "test",
            detail: "".into(),
            src: None,
            dst: None,
            tunnels: Default::default(),
            upper: Default::default(),
        })
    }

    #[test]
    fn suppressor_counts_refusals_and_expires() {
        let mut s = Suppressor::new("x.suppression", 10, 4);
        assert!(s.allow("a", 0));
        assert!(!s.allow("a", 5));
        assert!(s.active("a", 9));
        assert!(!s.active("a", 10));
        assert!(s.allow("a", 10));
        assert_eq!(s.suppressed(), 2);
    }

    #[test]
    fn budget_folds_past_the_cap_and_bursts_on_close() {
        let mut b = LinkBudget::new("f.links", 8, 100, 2);
        let mut bursts = Vec::new();
        for i in 0..5u8 {
            let ok = b.admit(&ev(i64::from(i)), Offender::new(&[i], None), &mut bursts);
            assert_eq!(ok, i < 2);
        }
        assert!(bursts.is_empty());
        b.tick(100, &mut bursts);
        assert_eq!(bursts.len(), 1);
        let burst = &bursts[0];
        assert_eq!(
            (burst.alerts, burst.count, burst.offenders.len()),
            (2, 3, 3)
        );
        assert_eq!((burst.first_ns, burst.last_ns), (2, 4));
        // A window that folded nothing closes silently.
        b.admit(&ev(200), Offender::new(&[9], None), &mut bursts);
        b.flush(&mut bursts);
        assert_eq!(bursts.len(), 1);
    }

    #[test]
    fn offenders_sort_as_python_bytes() {
        let mut o = Overflow::new(0);
        o.keys.insert(Offender::new(&[2], None));
        o.keys.insert(Offender::new(&[1, 0], Some([1; 6])));
        o.keys.insert(Offender::new(&[1, 0], None));
        o.keys.insert(Offender::new(&[1], None));
        let got: Vec<(Vec<u8>, bool)> = o
            .offenders()
            .iter()
            .map(|k| (k.addr().to_vec(), k.mac.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![1], false),
                (vec![1, 0], false),
                (vec![1, 0], true),
                (vec![2], false)
            ]
        );
    }
}
