//! The MLD family's per-message counting (`ipv6.mld_abuse`, RFC 2710, RFC 3810, RFC 4286).
//!
//! Owns, for every local-link MLD or MRD message (not tunnelled):
//! - the verdict on who sent a Query or a Multicast Router Advertisement/Termination: a
//!   policy router (address and MAC), a querier learned in the learning window (no policy
//!   routers), or an unknown one; an unknown querier with a lower address than the
//!   legitimate querier of the link wins the querier election (RFC 3810 7.6.2, RFC 2710
//!   5) and is a takeover. Counts per (link, sender, signature), suppression and the link
//!   budget are here; Python gets a `querier` output per alert that passed both and a
//!   `burst` per link window that folded alerts.
//! - MLDv2 reports with an abnormal record count (more than `max_records`, or a declared
//!   count that the bytes do not hold), judged per report, through the same gate.
//! - per-link packet-time windows over reports and leaves: reports, distinct groups and
//!   reporters (each at most `key_cap`: four times its threshold, at least 1024, at most
//!   `MAX_KEYS`, so a window past its threshold stays small on every link), Dones (132 and MLDv2 leave records), and the
//!   Dones for groups that had listeners (a bounded table of the groups reported per
//!   link). Only a closed window past a threshold crosses to Python (`flood`).
//!
//! So a flood with random sources costs Python one burst or one window, never one call
//! per packet. The policy routers come in as plain settings.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::decode::events::{Event, MldMessage};
use crate::decode::topy::Converter;
use crate::reduce::budget::{
    link_of, link_to_py, seen_in, Link, LinkBudget, Offender, Seen, Suppressor, MAX_KEYS, SAMPLE,
};
use crate::reduce::py::{any, bytes, opt_bytes, tuple};
use crate::reduce::windows::{KeyedMap, KeyedState, Lru, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[("mld", build)];

const QUERY: u8 = 130;
const V1_REPORT: u8 = 131;
const DONE: u8 = 132;
const V2_REPORT: u8 = 143;
const MRD_ADVERTISEMENT: u8 = 151;
const MRD_TERMINATION: u8 = 153;
/// MLDv2 record type CHANGE_TO_INCLUDE_MODE: with no sources, a leave (RFC 3810 6.1).
const TO_IN: u8 = 3;

/// Signature names, indexed by the `u8` kept in table keys.
const SIGS: [&str; 4] = [
    "unknown_querier",
    "querier_takeover",
    "rogue_multicast_router",
    "record_count",
];
const UNKNOWN: u8 = 0;
const TAKEOVER: u8 = 1;
const MRD: u8 = 2;
const RECORDS: u8 = 3;

fn setting<'py, T: FromPyObject<'py>>(s: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
    s.get_item(name)?.extract()
}

fn arr<const N: usize>(b: &[u8], what: &str) -> PyResult<[u8; N]> {
    b.try_into()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("{what} must be {N} bytes")))
}

fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xFE && a[1] & 0xC0 == 0x80
}

/// The MLD message of a local-link event: tunnelled MLD is not this link's.
fn local_mld(ev: &Event) -> Option<&MldMessage> {
    match ev {
        Event::Mld(m) if m.ip.tunnels.is_empty() => Some(m),
        _ => None,
    }
}

fn offender(m: &MldMessage) -> Offender {
    Offender::new(&m.ip.src, m.meta.src_mac)
}

/// Python's `(address, mac | None)`.
fn offender_py<'py>(py: Python<'py>, o: &Offender) -> PyResult<Bound<'py, PyAny>> {
    tuple(
        py,
        vec![
            bytes(py, o.addr()),
            opt_bytes(py, o.mac.as_ref().map(|m| &m[..])),
        ],
    )
}

/// One link's report and leave window.
struct Win {
    start_ns: i64,
    first_ns: i64,
    last_ns: i64,
    reports: u64,
    groups: HashSet<[u8; 16], KeyedState>,
    groups_capped: bool,
    reporters: HashSet<Offender, KeyedState>,
    reporters_capped: bool,
    dones: u64,
    /// Dones for a group that had a listener on the link.
    dones_listened: u64,
    emptied: HashSet<[u8; 16], KeyedState>,
    report_sample: Option<Event>,
    done_sample: Option<Event>,
}

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

type WinRef = Rc<RefCell<Win>>;

struct Config {
    learn_ns: i64,
    learn_max: usize,
    max_records: u16,
    max_groups: usize,
    max_reporters: usize,
    max_dones: u64,
    /// Distinct groups, reporters and emptied groups kept per window.
    key_cap: usize,
}

pub struct MldReducer {
    cfg: Config,
    learning: bool,
    /// Policy routers: address -> the MACs listed with it (None: any MAC).
    policy: KeyedMap<[u8; 16], Vec<Option<[u8; 6]>>>,
    learned: KeyedMap<(Link, Offender), ()>,
    learned_count: usize,
    first_ns: Option<i64>,
    /// The lowest address of a legitimate querier heard on each link (the election's
    /// winner, RFC 3810 7.6.2).
    elected: Lru<Link, [u8; 16]>,
    senders: Lru<(Link, Offender, u8), Seen>,
    /// Groups reported per link, with the last report time.
    listeners: Lru<(Link, [u8; 16]), i64>,
    suppress: Suppressor,
    budget: LinkBudget,
    bursts: Vec<crate::reduce::budget::Burst>,
    windows: Windows<Link, WinRef>,
    closed: Vec<(Link, WinRef)>,
    key: String,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let cap: usize = setting(settings, "cap")?;
    let routers: Option<Vec<(Vec<u8>, Option<Vec<u8>>)>> = setting(settings, "routers")?;
    let mut policy: KeyedMap<[u8; 16], Vec<Option<[u8; 6]>>> = KeyedMap::default();
    for (a, m) in routers.iter().flatten() {
        let mac = m
            .as_deref()
            .map(|m| arr::<6>(m, "router mac"))
            .transpose()?;
        policy
            .entry(arr::<16>(a, "router address")?)
            .or_default()
            .push(mac);
    }
    let mut cfg = Config {
        learn_ns: setting(settings, "learn_ns")?,
        learn_max: setting(settings, "learn_max")?,
        max_records: setting(settings, "max_records")?,
        max_groups: setting(settings, "max_groups")?,
        max_reporters: setting(settings, "max_reporters")?,
        max_dones: setting(settings, "max_dones")?,
        key_cap: 0,
    };
    let most = cfg.max_groups.max(cfg.max_reporters);
    cfg.key_cap = most.saturating_mul(4).max(1024).min(MAX_KEYS);
    Ok(Box::new(MldReducer {
        cfg,
        learning: routers.is_none(),
        policy,
        learned: KeyedMap::default(),
        learned_count: 0,
        first_ns: None,
        elected: Lru::new(cap),
        senders: Lru::new(cap),
        listeners: Lru::new(cap),
        suppress: Suppressor::new(
            "ipv6.mld_abuse.suppression",
            setting(settings, "suppress_ns")?,
            cap,
        ),
        budget: LinkBudget::new(
            "mld.links",
            cap,
            setting(settings, "budget_window_ns")?,
            setting(settings, "max_alerts")?,
        ),
        bursts: Vec::new(),
        windows: Windows::new(cap, setting(settings, "window_ns")?),
        closed: Vec::new(),
        key: String::new(),
    }))
}

impl MldReducer {
    /// Is the sender a legitimate querier (policy router, or learned)? Learns it while
    /// in the learning window.
    fn legitimate(&mut self, link: Link, who: Offender, ts: i64) -> bool {
        if !self.learning {
            let addr: [u8; 16] = who.addr().try_into().unwrap_or([0; 16]);
            return self
                .policy
                .get(&addr)
                .is_some_and(|macs| macs.iter().any(|m| m.is_none() || *m == who.mac));
        }
        if self.learned.contains_key(&(link, who)) {
            return true;
        }
        let first = *self.first_ns.get_or_insert(ts);
        if ts.saturating_sub(first) < self.cfg.learn_ns && self.learned_count < self.cfg.learn_max {
            self.learned.insert((link, who), ());
            self.learned_count += 1;
            return true;
        }
        false
    }

    /// The learned queriers of `link` with the learning start, for the policy evidence:
    /// `(first_ns, [(address, mac), ...])`, or None when the policy lists routers.
    fn learned_py<'py>(&self, py: Python<'py>, link: &Link) -> PyResult<Bound<'py, PyAny>> {
        if !self.learning {
            return Ok(py.None().into_bound(py));
        }
        let mut keys: Vec<&Offender> = self
            .learned
            .keys()
            .filter(|(l, _)| l == link)
            .map(|(_, o)| o)
            .collect();
        keys.sort_by(|a, b| (a.addr(), a.mac).cmp(&(b.addr(), b.mac)));
        let keys = keys
            .into_iter()
            .map(|o| offender_py(py, o))
            .collect::<PyResult<Vec<_>>>()?;
        tuple(
            py,
            vec![
                any(py, self.first_ns.unwrap_or(0))?,
                PyList::new(py, keys)?.into_any(),
            ],
        )
    }

    fn emit_bursts<'py>(&mut self, py: Python<'py>, out: &mut Outputs<'py>) -> PyResult<()> {
        if self.bursts.is_empty() {
            return Ok(());
        }
        let mut conv = Converter::new(py)?;
        for b in std::mem::take(&mut self.bursts) {
            let learned = self.learned_py(py, &b.link)?;
            let items = vec![any(py, "burst")?, b.to_py(py, &mut conv)?, learned];
            out.push(tuple(py, items)?)?;
        }
        Ok(())
    }

    /// One alert candidate: counted, then suppression and the link budget; `extra` is
    /// appended to the output.
    #[allow(clippy::too_many_arguments)]
    fn raise<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        link: Link,
        who: Offender,
        sig: u8,
        extra: Vec<Bound<'py, PyAny>>,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let ts = ev.meta().ts_ns;
        let seen = seen_in(&mut self.senders, (link, who, sig), ts);
        // The suppression key: link, sender and signature (Python writes the identifier).
        self.key.clear();
        self.key
            .push_str(&format!("{link:?}|{:?}|{:?}|{sig}", who.addr(), who.mac));
        let permitted =
            self.budget
                .permit(&mut self.suppress, &self.key, ev, who, &mut self.bursts);
        self.emit_bursts(py, out)?;
        if !permitted {
            return Ok(());
        }
        let mut items = vec![
            any(py, "alert")?,
            any(py, SIGS[usize::from(sig)])?,
            link_to_py(py, &link)?.into_any(),
            offender_py(py, &who)?,
            any(py, seen.count)?,
            any(py, seen.first_ns)?,
            any(py, seen.last_ns)?,
            Converter::new(py)?.event(ev)?,
        ];
        items.extend(extra);
        out.push(tuple(py, items)?)
    }

    /// A Query, MRD Advertisement or MRD Termination: who may send it.
    fn querier<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        m: &MldMessage,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let link = link_of(ev);
        let who = offender(m);
        let ts = m.meta.ts_ns;
        if self.legitimate(link, who, ts) {
            if m.icmp_type == QUERY {
                let src = m.ip.src;
                match self.elected.get(&link) {
                    Some(low) if *low <= src => {}
                    _ => {
                        self.elected.put(link, src);
                    }
                }
            }
            return Ok(());
        }
        let elected = self.elected.peek(&link).copied();
        let sig = if m.icmp_type != QUERY {
            MRD
        } else if elected.is_some_and(|e| m.ip.src < e) {
            TAKEOVER
        } else {
            UNKNOWN
        };
        let extra = vec![
            opt_bytes(py, elected.as_ref().map(|e| &e[..])),
            self.learned_py(py, &link)?,
        ];
        self.raise(py, ev, link, who, sig, extra, out)
    }

    /// Reports and leaves into the link's window; the report's record count judged.
    fn listener<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        m: &MldMessage,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let link = link_of(ev);
        let ts = m.meta.ts_ns;
        let closed = &mut self.closed;
        let w = self.windows.current(
            link,
            ts,
            |t| {
                Rc::new(RefCell::new(Win {
                    start_ns: t,
                    first_ns: t,
                    last_ns: t,
                    reports: 0,
                    groups: HashSet::with_hasher(KeyedState::new()),
                    groups_capped: false,
                    reporters: HashSet::with_hasher(KeyedState::new()),
                    reporters_capped: false,
                    dones: 0,
                    dones_listened: 0,
                    emptied: HashSet::with_hasher(KeyedState::new()),
                    report_sample: None,
                    done_sample: None,
                }))
            },
            |k, v| closed.push((k, v)),
        );
        if !self.closed.is_empty() {
            self.emit_closed(py, out)?;
        }
        let cap = self.cfg.key_cap;
        {
            let mut w = w.borrow_mut();
            w.last_ns = ts;
            let mut join = |w: &mut Win, listeners: &mut Lru<(Link, [u8; 16]), i64>, g| {
                if w.groups.len() < cap {
                    w.groups.insert(g);
                } else if !w.groups.contains(&g) {
                    w.groups_capped = true;
                }
                listeners.put((link, g), ts);
            };
            let mut leave = |w: &mut Win, listeners: &mut Lru<(Link, [u8; 16]), i64>, g| {
                w.dones += 1;
                if listeners.remove(&(link, g)).is_some() {
                    w.dones_listened += 1;
                    if w.emptied.len() < cap {
                        w.emptied.insert(g);
                    }
                }
                if w.done_sample.is_none() {
                    w.done_sample = Some(ev.clone());
                }
            };
            match m.icmp_type {
                V1_REPORT => join(&mut w, &mut self.listeners, m.group),
                DONE => leave(&mut w, &mut self.listeners, m.group),
                _ => {
                    for r in &m.records {
                        if r.rtype == TO_IN && r.sources == 0 {
                            leave(&mut w, &mut self.listeners, r.group);
                        } else {
                            join(&mut w, &mut self.listeners, r.group);
                        }
                    }
                }
            }
            if m.icmp_type != DONE {
                w.reports += 1;
                let who = offender(m);
                if w.reporters.len() < cap {
                    w.reporters.insert(who);
                } else if !w.reporters.contains(&who) {
                    w.reporters_capped = true;
                }
                if w.report_sample.is_none() {
                    w.report_sample = Some(ev.clone());
                }
            }
        }
        // A report the capture cut (snaplen) holds fewer records than it declares
        // through no fault of the sender: only its declared count is judged then.
        let inconsistent = m.records_declared != m.records_fit && !m.snapped;
        if m.icmp_type == V2_REPORT && (inconsistent || m.records_declared > self.cfg.max_records) {
            let extra = vec![
                any(py, m.records_declared)?,
                any(py, m.records_fit)?,
                any(py, m.sources_total)?,
            ];
            self.raise(py, ev, link, offender(m), RECORDS, extra, out)?;
        }
        Ok(())
    }

    /// Does the closed window raise anything? Only then does it cross to Python.
    fn alerts(&self, w: &Win) -> bool {
        w.groups.len() > self.cfg.max_groups
            || w.reporters.len() > self.cfg.max_reporters
            || w.dones > self.cfg.max_dones
    }

    /// `("flood", link, start_ns, first_ns, last_ns, reports, groups, groups_capped,
    /// sample_groups, reporters, reporters_capped, sample_reporters, dones,
    /// dones_listened, emptied_groups, sample_emptied, report_sample, done_sample)`.
    fn emit<'py>(
        &self,
        py: Python<'py>,
        link: Link,
        w: &WinRef,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let w = w.borrow();
        if !self.alerts(&w) {
            return Ok(());
        }
        let mut groups: Vec<&[u8; 16]> = w.groups.iter().collect();
        groups.sort();
        let mut reporters: Vec<&Offender> = w.reporters.iter().collect();
        reporters.sort_by(|a, b| (a.addr(), a.mac).cmp(&(b.addr(), b.mac)));
        let mut emptied: Vec<&[u8; 16]> = w.emptied.iter().collect();
        emptied.sort();
        let sample_groups = groups.iter().take(SAMPLE).map(|g| bytes(py, &g[..]));
        let sample_reporters = reporters
            .iter()
            .take(SAMPLE)
            .map(|o| offender_py(py, o))
            .collect::<PyResult<Vec<_>>>()?;
        let sample_emptied = emptied.iter().take(SAMPLE).map(|g| bytes(py, &g[..]));
        let mut conv = Converter::new(py)?;
        let mut opt_ev = |e: &Option<Event>| -> PyResult<Bound<'_, PyAny>> {
            Ok(match e {
                Some(e) => conv.event(e)?,
                None => py.None().into_bound(py),
            })
        };
        let report_sample = opt_ev(&w.report_sample)?;
        let done_sample = opt_ev(&w.done_sample)?;
        let items = vec![
            any(py, "flood")?,
            link_to_py(py, &link)?.into_any(),
            any(py, w.start_ns)?,
            any(py, w.first_ns)?,
            any(py, w.last_ns)?,
            any(py, w.reports)?,
            any(py, w.groups.len())?,
            any(py, w.groups_capped)?,
            PyList::new(py, sample_groups)?.into_any(),
            any(py, w.reporters.len())?,
            any(py, w.reporters_capped)?,
            PyList::new(py, sample_reporters)?.into_any(),
            any(py, w.dones)?,
            any(py, w.dones_listened)?,
            any(py, w.emptied.len())?,
            PyList::new(py, sample_emptied)?.into_any(),
            report_sample,
            done_sample,
        ];
        out.push(PyTuple::new(py, items)?.into_any())
    }

    fn emit_closed<'py>(&mut self, py: Python<'py>, out: &mut Outputs<'py>) -> PyResult<()> {
        for (link, w) in std::mem::take(&mut self.closed) {
            self.emit(py, link, &w, out)?;
        }
        Ok(())
    }
}

impl Reducer for MldReducer {
    fn observes(&self) -> Observes {
        Observes {
            mld: true,
            ..Observes::default()
        }
    }

    fn observe<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let Some(m) = local_mld(ev) else {
            return Ok(());
        };
        if self.first_ns.is_none() {
            self.first_ns = Some(m.meta.ts_ns);
        }
        match m.icmp_type {
            // A query from the unspecified address is no querier (RFC 3810 5.1.14
            // requires a link-local source; receivers drop it): only link-local
            // sources can take part in the election.
            QUERY if is_link_local(&m.ip.src) => self.querier(py, ev, m, out),
            MRD_ADVERTISEMENT | MRD_TERMINATION => self.querier(py, ev, m, out),
            V1_REPORT | DONE | V2_REPORT => self.listener(py, ev, m, out),
            _ => Ok(()),
        }
    }

    fn tick<'py>(&mut self, py: Python<'py>, now_ns: i64, out: &mut Outputs<'py>) -> PyResult<()> {
        self.budget.tick(now_ns, &mut self.bursts);
        self.emit_bursts(py, out)?;
        self.closed = self.windows.close_due(now_ns);
        self.emit_closed(py, out)
    }

    fn flush<'py>(
        &mut self,
        py: Python<'py>,
        _now_ns: i64,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        self.budget.flush(&mut self.bursts);
        self.emit_bursts(py, out)?;
        self.closed = self.windows.close_all();
        self.emit_closed(py, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![
            self.senders.table_stat("mld.senders"),
            self.elected.table_stat("mld.elected_queriers"),
            self.listeners.table_stat("mld.listeners"),
            self.windows.table.table_stat("mld.windows"),
            self.budget.table_stat(),
            self.suppress.table_stat(),
        ]
    }

    fn suppressed(&self) -> u64 {
        self.suppress.suppressed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reducer(policy: Option<Vec<([u8; 16], Option<[u8; 6]>)>>) -> MldReducer {
        let mut p: KeyedMap<[u8; 16], Vec<Option<[u8; 6]>>> = KeyedMap::default();
        for (a, m) in policy.iter().flatten() {
            p.entry(*a).or_default().push(*m);
        }
        MldReducer {
            cfg: Config {
                learn_ns: 100,
                learn_max: 2,
                max_records: 64,
                max_groups: 3,
                max_reporters: 3,
                max_dones: 2,
                key_cap: 1024,
            },
            learning: policy.is_none(),
            policy: p,
            learned: KeyedMap::default(),
            learned_count: 0,
            first_ns: None,
            elected: Lru::new(8),
            senders: Lru::new(8),
            listeners: Lru::new(8),
            suppress: Suppressor::new("s", 100, 8),
            budget: LinkBudget::new("b", 8, 100, 10),
            bursts: Vec::new(),
            windows: Windows::new(8, 100),
            closed: Vec::new(),
            key: String::new(),
        }
    }

    fn ll(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0xfe;
        a[1] = 0x80;
        a[15] = last;
        a
    }

    fn link() -> Link {
        (0, Default::default())
    }

    #[test]
    fn policy_routers_by_address_and_mac() {
        let mut r = reducer(Some(vec![(ll(1), Some([2; 6])), (ll(2), None)]));
        assert!(r.legitimate(link(), Offender::new(&ll(1), Some([2; 6])), 0));
        assert!(!r.legitimate(link(), Offender::new(&ll(1), Some([3; 6])), 0));
        assert!(r.legitimate(link(), Offender::new(&ll(2), Some([3; 6])), 0));
        assert!(!r.legitimate(link(), Offender::new(&ll(3), Some([2; 6])), 0));
    }

    #[test]
    fn learning_is_bounded_in_time_and_count() {
        let mut r = reducer(None);
        assert!(r.legitimate(link(), Offender::new(&ll(9), Some([2; 6])), 10));
        assert!(r.legitimate(link(), Offender::new(&ll(9), Some([2; 6])), 500));
        // Past the window: not learned.
        assert!(!r.legitimate(link(), Offender::new(&ll(8), Some([2; 6])), 200));
        let mut r = reducer(None);
        for i in 0..2 {
            assert!(r.legitimate(link(), Offender::new(&ll(i), None), 0));
        }
        assert!(!r.legitimate(link(), Offender::new(&ll(5), None), 0));
        assert_eq!(r.learned_count, 2);
    }

    #[test]
    fn record_types_and_signature_names() {
        assert_eq!(SIGS[usize::from(TAKEOVER)], "querier_takeover");
        assert_eq!(SIGS[usize::from(RECORDS)], "record_count");
        assert!(is_link_local(&ll(1)) && !is_link_local(&[0; 16]));
    }
}
