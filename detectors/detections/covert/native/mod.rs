//! The covert family's counting: data smuggled in extension-header options per address
//! pair, and Flow Labels that vary inside one flow, in packet-time windows, natively.
//!
//! Owns two bounded tables and the suppression of `ipv6.covert_channel`:
//! - `covert.pairs`: per (source, destination), a window of the bytes the decoder's
//!   `ExtOptions` events counted (PadN content, excess padding, unknown options, known
//!   options past their RFC length), the packets, the headers and a sample. The moment
//!   the window's bytes reach `min_bytes`, the pair alerts (`options`), once per window
//!   and suppression interval.
//! - `covert.flows`: per flow (addresses, protocol, ports; TCP and UDP only, the flows
//!   RFC 6437 gives one label), a window of the distinct Flow Labels seen. A stack keeps
//!   one label per flow (it changes it at most on a rare reroute, RFC 6437 3), so a flow
//!   with `min_labels` distinct labels in one window carries data in them
//!   (`flow_label`).
//!
//! Speed: `ExtOptions` events exist only for packets whose options carry something.
//! Every TCP/UDP `Ipv6Packet` costs one hash and one slot of `label_cache`, a
//! direct-mapped array of (flow tag, last label); only a flow whose label changed is
//! looked up in `covert.flows`. Nothing allocates for a packet of a steady flow.
//! Python gets an output per alert only, and writes the evidence.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hash};
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::decode::events::{Event, ExtOptions, Ipv6Packet};
use crate::decode::topy::Converter;
use crate::reduce::budget::Suppressor;
use crate::reduce::py::{any, bytes, tuple};
use crate::reduce::sketch::mix64;
use crate::reduce::windows::{KeyedState, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[("covert_channel", build)];

const CATEGORY: &str = "ipv6.covert_channel";
/// Smuggled bytes kept per pair window as the evidence's sample.
const SAMPLE: usize = 64;
/// Flow Labels listed per flow window in the evidence.
const LABELS_LISTED: usize = 16;
const NH_TCP: u8 = 6;
const NH_UDP: u8 = 17;

type Pair = ([u8; 16], [u8; 16]);

/// A flow as RFC 6437 defines it for the label: addresses, protocol, ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Flow {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    sport: u16,
    dport: u16,
}

#[derive(Default)]
struct PairWin {
    start_ns: i64,
    first_ns: i64,
    last_ns: i64,
    packets: u64,
    padn_data: u64,
    excess_padding: u64,
    unknown_data: u64,
    oversize_data: u64,
    unknown_options: u64,
    padding_only: u64,
    hbh: u64,
    dstopts: u64,
    sample: Vec<u8>,
    first: Option<ExtOptions>,
    alerted: bool,
}

impl PairWin {
    fn bytes(&self) -> u64 {
        self.padn_data + self.excess_padding + self.unknown_data + self.oversize_data
    }
}

impl Window for PairWin {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

#[derive(Default)]
struct FlowWin {
    start_ns: i64,
    first_ns: i64,
    last_ns: i64,
    packets: u64,
    changes: u64,
    /// Distinct labels, exactly, up to `min_labels` (all the verdict needs).
    labels: Vec<u32>,
    first: Option<Ipv6Packet>,
    alerted: bool,
}

impl Window for FlowWin {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

/// One slot of the label cache: a flow's tag (0 empty) and its last label.
#[derive(Clone, Copy, Default)]
struct Slot {
    tag: u64,
    label: u32,
    /// The flow changed its label: its packets also go to `covert.flows`.
    tracked: bool,
}

pub struct Covert {
    min_bytes: u64,
    min_labels: usize,
    pairs: Windows<Pair, Rc<RefCell<PairWin>>>,
    flows: Windows<Flow, Rc<RefCell<FlowWin>>>,
    cache: Vec<Slot>,
    /// The cache's random hash key: where a flow lands cannot be aimed.
    key: u64,
    cache_replaced: u64,
    suppress: Suppressor,
}

fn setting(settings: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    settings.get_item(name)?.extract()
}

fn count(settings: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    Ok(setting(settings, name)?.max(0) as usize)
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let window_ns = setting(settings, "window_ns")?;
    let slots = count(settings, "label_cache")?.max(1).next_power_of_two();
    Ok(Box::new(Covert {
        min_bytes: count(settings, "min_bytes")?.max(1) as u64,
        min_labels: count(settings, "min_labels")?.max(2),
        pairs: Windows::new(count(settings, "max_pairs_tracked")?, window_ns),
        flows: Windows::new(count(settings, "max_flows_tracked")?, window_ns),
        cache: vec![Slot::default(); slots],
        key: KeyedState::new().hash_one(0u64),
        cache_replaced: 0,
        suppress: Suppressor::new(
            &format!("{CATEGORY}.suppression"),
            setting(settings, "suppress_ns")?,
            count(settings, "max_pairs_tracked")?,
        ),
    }))
}

/// The flow's slot hash: five rounds of splitmix64 over its words, keyed. Cheaper than
/// the derived `Hash` (seven rounds and byte folding), and this runs for every TCP and
/// UDP packet.
#[inline]
fn flow_hash(key: u64, f: &Flow) -> u64 {
    let word = |a: &[u8; 16], i: usize| {
        u64::from_ne_bytes([
            a[i],
            a[i + 1],
            a[i + 2],
            a[i + 3],
            a[i + 4],
            a[i + 5],
            a[i + 6],
            a[i + 7],
        ])
    };
    let ports = (u64::from(f.proto) << 32) | (u64::from(f.sport) << 16) | u64::from(f.dport);
    [
        word(&f.src, 0),
        word(&f.src, 8),
        word(&f.dst, 0),
        word(&f.dst, 8),
        ports,
    ]
    .into_iter()
    .fold(key, |h, w| mix64(h ^ w))
}

fn hex(a: &[u8; 16]) -> String {
    a.iter().map(|b| format!("{b:02x}")).collect()
}

impl Covert {
    fn options(&mut self, ev: &ExtOptions, out: &mut Outputs<'_>) -> PyResult<()> {
        let ts = ev.meta.ts_ns;
        let s = &ev.summary;
        let h = self.pairs.current(
            (ev.ip.src, ev.ip.dst),
            ts,
            |t| {
                Rc::new(RefCell::new(PairWin {
                    start_ns: t,
                    first_ns: t,
                    ..PairWin::default()
                }))
            },
            |_, _| {},
        );
        let mut w = h.borrow_mut();
        w.last_ns = ts;
        w.packets += 1;
        w.padn_data += u64::from(s.padn_data);
        w.excess_padding += u64::from(s.excess_padding);
        w.unknown_data += u64::from(s.unknown_data);
        w.oversize_data += u64::from(s.oversize_data);
        w.unknown_options += u64::from(s.unknown_options);
        w.padding_only += u64::from(s.padding_only);
        if ev.ip.chain.as_slice().contains(&0) {
            w.hbh += 1;
        }
        if ev.ip.chain.as_slice().contains(&60) {
            w.dstopts += 1;
        }
        if w.sample.len() < SAMPLE && s.smuggled() > 0 {
            let take = (SAMPLE - w.sample.len()).min(s.sample().len());
            w.sample.extend_from_slice(&s.sample()[..take]);
        }
        if w.first.is_none() && s.smuggled() > 0 {
            w.first = Some(ev.clone());
        }
        if w.alerted || w.bytes() < self.min_bytes {
            return Ok(());
        }
        w.alerted = true;
        let id = format!("{}|{}|options", hex(&ev.ip.src), hex(&ev.ip.dst));
        if !self.suppress.allow(&id, ts) {
            return Ok(());
        }
        let py = out.list().py();
        let first = w.first.clone().unwrap_or_else(|| ev.clone());
        let mut conv = Converter::new(py)?;
        let kinds = PyDict::new(py);
        for (k, v) in [
            ("padn_data", w.padn_data),
            ("excess_padding", w.excess_padding),
            ("unknown_options", w.unknown_data),
            ("oversize_options", w.oversize_data),
        ] {
            if v > 0 {
                kinds.set_item(k, v)?;
            }
        }
        let headers = PyDict::new(py);
        for (k, v) in [("hop_by_hop", w.hbh), ("destination", w.dstopts)] {
            if v > 0 {
                headers.set_item(k, v)?;
            }
        }
        let item = tuple(
            py,
            vec![
                any(py, "options")?,
                conv.event(&Event::ExtOptions(first))?,
                any(py, w.start_ns)?,
                any(py, w.first_ns)?,
                any(py, w.last_ns)?,
                any(py, w.packets)?,
                any(py, w.bytes())?,
                kinds.into_any(),
                any(py, w.unknown_options)?,
                any(py, w.padding_only)?,
                headers.into_any(),
                bytes(py, &w.sample),
            ],
        )?;
        out.push(item)
    }

    fn packet(&mut self, p: &Ipv6Packet, out: &mut Outputs<'_>) -> PyResult<()> {
        let proto = p.ip.upper;
        let (Some(sport), Some(dport)) = (p.sport, p.dport) else {
            return Ok(());
        };
        if proto != NH_TCP && proto != NH_UDP {
            return Ok(());
        }
        let flow = Flow {
            src: p.ip.src,
            dst: p.ip.dst,
            proto,
            sport,
            dport,
        };
        let label = p.ip.flow_label;
        let hash = flow_hash(self.key, &flow);
        let mask = self.cache.len() - 1;
        let slot = &mut self.cache[hash as usize & mask];
        let tag = hash | 1;
        if slot.tag != tag {
            if slot.tag != 0 {
                self.cache_replaced += 1;
            }
            *slot = Slot {
                tag,
                label,
                tracked: false,
            };
            return Ok(());
        }
        let previous = slot.label;
        if previous == label {
            if slot.tracked {
                if let Some(h) = self.flows.table.peek(&flow) {
                    let mut w = h.borrow_mut();
                    w.packets += 1;
                    w.last_ns = p.meta.ts_ns;
                }
            }
            return Ok(());
        }
        slot.label = label;
        slot.tracked = true;
        let ts = p.meta.ts_ns;
        let h = self.flows.current(
            flow,
            ts,
            |t| {
                Rc::new(RefCell::new(FlowWin {
                    start_ns: t,
                    first_ns: t,
                    ..FlowWin::default()
                }))
            },
            |_, _| {},
        );
        let mut w = h.borrow_mut();
        w.last_ns = ts;
        w.packets += 1;
        w.changes += 1;
        if w.first.is_none() {
            w.first = Some(p.clone());
        }
        for l in [previous, label] {
            if w.labels.len() < self.min_labels && !w.labels.contains(&l) {
                w.labels.push(l);
            }
        }
        if w.alerted || w.labels.len() < self.min_labels {
            return Ok(());
        }
        w.alerted = true;
        let id = format!("{}|{}|flow_label", hex(&flow.src), hex(&flow.dst));
        if !self.suppress.allow(&id, ts) {
            return Ok(());
        }
        let py = out.list().py();
        let first = w.first.clone().unwrap_or_else(|| p.clone());
        let mut conv = Converter::new(py)?;
        let listed = PyList::new(py, w.labels.iter().take(LABELS_LISTED))?;
        let item = tuple(
            py,
            vec![
                any(py, "flow_label")?,
                conv.event(&Event::Packet(first))?,
                any(py, w.start_ns)?,
                any(py, w.first_ns)?,
                any(py, w.last_ns)?,
                any(py, w.packets)?,
                any(py, w.changes)?,
                any(py, w.labels.len())?,
                listed.into_any(),
            ],
        )?;
        out.push(item)
    }
}

impl Reducer for Covert {
    fn observes(&self) -> Observes {
        Observes {
            packets: true,
            ext_options: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        match ev {
            Event::ExtOptions(x) => self.options(x, out),
            Event::Packet(p) => self.packet(p, out),
            _ => Ok(()),
        }
    }

    fn tick(&mut self, _py: Python<'_>, now_ns: i64, _out: &mut Outputs<'_>) -> PyResult<()> {
        // Alerts leave at the crossing; a closed window has nothing left to say.
        self.pairs.close_due(now_ns);
        self.flows.close_due(now_ns);
        Ok(())
    }

    fn flush(&mut self, _py: Python<'_>, _now_ns: i64, _out: &mut Outputs<'_>) -> PyResult<()> {
        self.pairs.close_all();
        self.flows.close_all();
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        let used = self.cache.iter().filter(|s| s.tag != 0).count();
        vec![
            self.pairs.table.table_stat("covert.pairs"),
            self.flows.table.table_stat("covert.flows"),
            (
                "covert.label_cache".to_string(),
                used,
                self.cache.len(),
                self.cache_replaced,
            ),
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
    use crate::decode::events::{Chain, Ipv6Header, Meta, OptionsSummary, Tunnels, Upper};

    fn ip(src: u8, dst: u8, upper: u8, label: u32, chain: &[u8]) -> Ipv6Header {
        let mut c = Chain::default();
        for h in chain {
            c.push(*h);
        }
        let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
        s[15] = src;
        d[15] = dst;
        Ipv6Header {
            src: s,
            dst: d,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: label,
            payload_len: 0,
            chain: c,
            upper,
            fragment: None,
            tunnels: Tunnels::default(),
        }
    }

    /// Alert outputs carry `detectors.events` objects: the embedded interpreter must find
    /// the package in the checkout (`cargo test` runs without the venv's paths).
    fn importable(py: Python<'_>) {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let path = py
            .import("sys")
            .and_then(|sys| sys.getattr("path"))
            .unwrap();
        path.call_method1("insert", (0, root)).unwrap();
    }

    fn covert(min_bytes: u64, min_labels: usize) -> Covert {
        Covert {
            min_bytes,
            min_labels,
            pairs: Windows::new(4, 60_000_000_000),
            flows: Windows::new(4, 60_000_000_000),
            cache: vec![Slot::default(); 8],
            key: 7,
            cache_replaced: 0,
            suppress: Suppressor::new("s", 3_600_000_000_000, 16),
        }
    }

    fn packet(ts: i64, label: u32, sport: u16) -> Ipv6Packet {
        Ipv6Packet {
            meta: Meta {
                ts_ns: ts,
                ..Meta::default()
            },
            ip: ip(1, 2, 17, label, &[]),
            sport: Some(sport),
            dport: Some(53),
            icmp_type: None,
            icmp_code: None,
            tcp_flags: None,
            quoted_src: None,
        }
    }

    #[test]
    fn bytes_add_up_per_pair_and_alert_once() {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(|py| {
            importable(py);
            let mut c = covert(100, 8);
            let list = PyList::empty(py);
            let mut out = Outputs::new(list.clone(), None);
            for i in 0..10 {
                let ev = ExtOptions {
                    meta: Meta {
                        ts_ns: i,
                        ..Meta::default()
                    },
                    ip: ip(1, 2, 58, 0, &[60]),
                    upper: Upper::default(),
                    summary: OptionsSummary {
                        header: 60,
                        unknown_options: 1,
                        unknown_data: 30,
                        ..OptionsSummary::default()
                    },
                };
                c.options(&ev, &mut out).unwrap();
            }
            assert_eq!(list.len(), 1); // crossed at the 4th packet, once
            let w = c
                .pairs
                .table
                .peek(&(ip(1, 2, 0, 0, &[]).src, ip(1, 2, 0, 0, &[]).dst));
            assert_eq!(w.unwrap().borrow().bytes(), 300);
        });
    }

    #[test]
    fn steady_labels_stay_out_of_the_flow_table_and_changing_ones_alert() {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(|py| {
            importable(py);
            let mut c = covert(100, 8);
            let list = PyList::empty(py);
            let mut out = Outputs::new(list.clone(), None);
            for i in 0..100 {
                c.packet(&packet(i, 0x12345, 40000), &mut out).unwrap();
            }
            assert!(c.flows.table.is_empty());
            for i in 0..20 {
                c.packet(&packet(100 + i, i as u32 * 7, 40001), &mut out)
                    .unwrap();
            }
            assert_eq!(list.len(), 1);
            assert_eq!(c.flows.table.len(), 1);
        });
    }
}
