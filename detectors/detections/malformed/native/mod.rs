//! The malformed family's counting: every `Malformed` and `FragmentAnomaly` event,
//! counted per (source, signature) in packet-time windows, natively.
//!
//! Owns what `MalformedDetector.on_event` did per event: the layer and fragment-kind
//! filter, the per-source window (`Count`: count, reasons, sample frames), and, once the
//! window holds `min_count` events, the suppression and the per-link alert budget
//! (`permit`). Only an event that may alert crosses to Python (`alert` output: the
//! window's counts and the event itself); what the budget folds crosses once per link
//! window as a `burst` output. Python writes the evidence and the alert. Under a flood of
//! malformed packets or fragment anomalies from random sources, Python sees the budget's
//! few alerts and one burst per link and window, never the events.
//!
//! Tables, as the Python made them: `malformed.sources`, `ipv6.malformed.suppression`,
//! `malformed.links`.

mod flood;

use std::fmt::Write as _;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::decode::events::{Event, FragKind, IpAddr};
use crate::decode::topy::Converter;
use crate::reduce::budget::{Burst, LinkBudget, Offender, Suppressor};
use crate::reduce::py::any;
use crate::reduce::windows::Lru;
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[
    ("malformed_sources", build),
    ("malformed_fragment_flood", flood::build),
];

const CATEGORY: &str = "ipv6.malformed";
/// Frames listed per window (`SAMPLE`).
const SAMPLE: usize = 10;

/// The signatures: by decoder layer, with a few reasons of their own (a named attack a
/// SOC triages apart), and for fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Sig {
    Nd,
    Chain,
    Tunnel,
    Fragments,
    RoutingType0,
    UnspecifiedSource,
    IncompleteChain,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Nd => "malformed_nd",
            Sig::Chain => "malformed_chain",
            Sig::Tunnel => "malformed_tunnel",
            Sig::Fragments => "bad_fragments",
            Sig::RoutingType0 => "routing_type0",
            Sig::UnspecifiedSource => "unspecified_source",
            Sig::IncompleteChain => "incomplete_chain",
        }
    }

    /// Of the `ipv6` layer only `unspecified_source` alerts: its other reasons (a
    /// truncated or non-6 header) are capture damage as often as attacks.
    fn of(layer: &str, reason: &str) -> Option<Sig> {
        match (layer, reason) {
            ("ext", "routing_type0") => Some(Sig::RoutingType0),
            ("ipv6", "unspecified_source") => Some(Sig::UnspecifiedSource),
            ("nd", _) => Some(Sig::Nd),
            ("ext", _) => Some(Sig::Chain),
            ("tunnel", _) => Some(Sig::Tunnel),
            _ => None,
        }
    }

    fn of_fragment(kind: FragKind) -> Sig {
        match kind {
            FragKind::IncompleteChain => Sig::IncompleteChain,
            _ => Sig::Fragments,
        }
    }
}

/// Who the identifier names: the source address, else the source MAC, else nobody
/// (`ip_str(src)`, `mac_str(src_mac)`, `"unknown"`). The three texts never coincide
/// (an IPv6 text has 8 groups or a `::`, a MAC 6 groups and no `::`), so keying by this
/// is keying by the Python identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Ip(IpAddr),
    Mac([u8; 6]),
    Unknown,
}

/// A reason, as the evidence names it: `layer.reason` or `fragment.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Layer(&'static str, &'static str),
    Fragment(FragKind),
}

impl Reason {
    fn text(self) -> String {
        match self {
            Reason::Layer(layer, reason) => format!("{layer}.{reason}"),
            Reason::Fragment(kind) => format!("fragment.{}", kind.name()),
        }
    }
}

/// One (source, signature)'s window (`_Count`).
#[derive(Debug)]
struct Count {
    start_ns: i64,
    first_ns: i64,
    last_ns: i64,
    count: u64,
    /// Per reason, in first-seen order (Python sorts them for the evidence).
    reasons: Vec<(Reason, u64)>,
    frames: Vec<u64>,
}

/// The `malformed_sources` reducer; see the module docs.
pub struct MalformedReducer {
    layers: Vec<String>,
    fragment_kinds: Vec<String>,
    min_count: u64,
    window_ns: i64,
    counts: Lru<(Who, Sig), Count>,
    suppress: Suppressor,
    budget: LinkBudget,
    /// The identifier's text for the suppression table (reused: no allocation per event).
    identifier: String,
    bursts: Vec<Burst>,
}

fn setting<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("malformed_sources: setting {key:?} missing")))
}

/// Settings: `{"alert_layers": [str], "alert_fragment_kinds": [str], "min_count",
/// "window_s", "suppress_s", "max_sources_tracked", "max_alerts_per_window"}`.
fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let s = settings.downcast::<PyDict>()?;
    let window_s: f64 = setting(s, "window_s")?.extract()?;
    let suppress_s: f64 = setting(s, "suppress_s")?.extract()?;
    let cap: f64 = setting(s, "max_sources_tracked")?.extract()?;
    let min_count: f64 = setting(s, "min_count")?.extract()?;
    let max_alerts: f64 = setting(s, "max_alerts_per_window")?.extract()?;
    // As the Python: int(seconds * NS), int(cap).
    let window_ns = (window_s * 1e9) as i64;
    let cap = (cap as usize).max(1);
    Ok(Box::new(MalformedReducer {
        layers: setting(s, "alert_layers")?.extract()?,
        fragment_kinds: setting(s, "alert_fragment_kinds")?.extract()?,
        min_count: min_count as u64,
        window_ns,
        counts: Lru::new(cap),
        suppress: Suppressor::new(
            &format!("{CATEGORY}.suppression"),
            (suppress_s * 1e9) as i64,
            cap,
        ),
        budget: LinkBudget::new("malformed.links", cap, window_ns, max_alerts as u64),
        identifier: String::new(),
        bursts: Vec::new(),
    }))
}

impl MalformedReducer {
    fn push_bursts<'py>(
        &mut self,
        py: Python<'py>,
        conv: &mut Converter<'py>,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        for b in self.bursts.drain(..) {
            out.push(PyTuple::new(py, [any(py, "burst")?, b.to_py(py, conv)?])?.into_any())?;
        }
        Ok(())
    }
}

/// `("alert", signature, count, [(reason, n)], [frame], first_ns, last_ns, start_ns,
/// event)`: the window at this event, and the event (a `Malformed` or `FragmentAnomaly`).
fn alert_output<'py>(
    py: Python<'py>,
    sig: Sig,
    entry: &Count,
    ev: &Event,
    conv: &mut Converter<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let reasons = PyList::empty(py);
    for (r, n) in &entry.reasons {
        reasons.append((r.text(), *n))?;
    }
    let items = [
        any(py, "alert")?,
        any(py, sig.name())?,
        any(py, entry.count)?,
        reasons.into_any(),
        any(py, &entry.frames)?,
        any(py, entry.first_ns)?,
        any(py, entry.last_ns)?,
        any(py, entry.start_ns)?,
        conv.event(ev)?,
    ];
    Ok(PyTuple::new(py, items)?.into_any())
}

impl Reducer for MalformedReducer {
    fn observes(&self) -> Observes {
        Observes {
            malformed: true,
            fragments: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let (sig, src, reason) = match ev {
            Event::Malformed(m) => {
                if !self.layers.iter().any(|l| l == m.layer) {
                    return Ok(());
                }
                let Some(sig) = Sig::of(m.layer, m.reason) else {
                    return Ok(());
                };
                (sig, m.src, Reason::Layer(m.layer, m.reason))
            }
            Event::Fragment(f) => {
                if !self.fragment_kinds.iter().any(|k| k == f.kind.name()) {
                    return Ok(());
                }
                (
                    Sig::of_fragment(f.kind),
                    Some(IpAddr::V6(f.src)),
                    Reason::Fragment(f.kind),
                )
            }
            _ => return Ok(()),
        };
        let meta = ev.meta();
        let ts = meta.ts_ns;
        let who = match (src, meta.src_mac) {
            (Some(ip), _) => Who::Ip(ip),
            (None, Some(mac)) => Who::Mac(mac),
            (None, None) => Who::Unknown,
        };
        let key = (who, sig);
        let window_ns = self.window_ns;
        let fresh = match self.counts.get(&key) {
            Some(e) => ts.saturating_sub(e.start_ns) >= window_ns,
            None => true,
        };
        if fresh {
            // A plain table: an evicted source's window just ends (no alert on eviction).
            self.counts.put(
                key,
                Count {
                    start_ns: ts,
                    first_ns: ts,
                    last_ns: 0,
                    count: 0,
                    reasons: Vec::new(),
                    frames: Vec::new(),
                },
            );
        }
        let Some(entry) = self.counts.get(&key) else {
            return Ok(());
        };
        entry.count += 1;
        entry.last_ns = ts;
        match entry.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => entry.reasons.push((reason, 1)),
        }
        if meta.frame != 0 && entry.frames.len() < SAMPLE {
            entry.frames.push(meta.frame);
        }
        if entry.count < self.min_count {
            return Ok(());
        }
        // The suppression key: any text that is one-to-one with (who, signature) does.
        self.identifier.clear();
        let _ = write!(self.identifier, "{who:?}|{}", sig.name());
        let offender = Offender::new(src.as_ref().map_or(&[][..], |a| a.as_bytes()), meta.src_mac);
        let permitted = self.budget.permit(
            &mut self.suppress,
            &self.identifier,
            ev,
            offender,
            &mut self.bursts,
        );
        let py = out.list().py();
        let mut conv = Converter::new(py)?;
        if !self.bursts.is_empty() {
            self.push_bursts(py, &mut conv, out)?;
        }
        if !permitted {
            return Ok(());
        }
        let Some(entry) = self.counts.peek(&key) else {
            return Ok(());
        };
        out.push(alert_output(py, sig, entry, ev, &mut conv)?)
    }

    fn tick(&mut self, _py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        let py = out.list().py();
        self.budget.tick(now_ns, &mut self.bursts);
        let mut conv = Converter::new(py)?;
        self.push_bursts(py, &mut conv, out)
    }

    fn flush(&mut self, _py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        let py = out.list().py();
        self.budget.flush(&mut self.bursts);
        let mut conv = Converter::new(py)?;
        self.push_bursts(py, &mut conv, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![
            self.counts.table_stat("malformed.sources"),
            self.suppress.table_stat(),
            self.budget.table_stat(),
        ]
    }

    fn suppressed(&self) -> u64 {
        self.suppress.suppressed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_keys_are_distinct_and_signatures_named() {
        let v4 = Who::Ip(IpAddr::V4([1, 2, 3, 4]));
        let v6 = Who::Ip(IpAddr::V6([0; 16]));
        assert_ne!(v4, v6);
        assert_ne!(Who::Mac([0; 6]), Who::Unknown);
        assert_eq!(Sig::of("ext", "truncated"), Some(Sig::Chain));
        assert_eq!(Sig::of("ext", "routing_type0"), Some(Sig::RoutingType0));
        assert_eq!(Sig::of("ipv6", "truncated"), None);
        assert_eq!(
            Sig::of("ipv6", "unspecified_source"),
            Some(Sig::UnspecifiedSource)
        );
        assert_eq!(
            Sig::of_fragment(FragKind::IncompleteChain),
            Sig::IncompleteChain
        );
        assert_eq!(Sig::of_fragment(FragKind::Overlap), Sig::Fragments);
        assert_eq!(
            Reason::Fragment(FragKind::Overlap).text(),
            "fragment.overlap"
        );
        assert_eq!(Reason::Layer("nd", "bad_option").text(), "nd.bad_option");
    }
}
