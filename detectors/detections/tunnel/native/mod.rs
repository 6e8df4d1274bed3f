//! The tunnel family's counting: every `TunnelPacket`, classified and counted per
//! (category, signature, unordered outer endpoint pair) in packet-time windows, natively.
//!
//! Owns what `TunnelDetector.on_event` and the gate of `_close` did per packet: the
//! classification (`classify`), one window per pair (`PairWin`, same fields and same
//! sampling as `_PairWindow`), and, when a window closes (rolled over, due, evicted,
//! flushed), the per-category suppression and per-link budget that decide whether it
//! alerts. Only a window that passes both crosses to Python (`pair` output: the window's
//! counts and its first packet as a `TunnelPacket`); what the budget folds crosses once
//! per link window as a `burst` output. Python writes the evidence and the alert.
//!
//! Tables, per category in spec order, as the Python made them: `tunnel.<cat>.pairs`,
//! `<category>.suppression`, `tunnel.<cat>.links`. Tick and flush close them in that
//! order too (pairs, then links, per category).

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::decode::events::{Event, IpAddr, TunnelKind, TunnelPacket};
use crate::decode::topy::Converter;
use crate::reduce::budget::{Burst, LinkBudget, Offender, Suppressor};
use crate::reduce::py::any;
use crate::reduce::windows::{Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[("tunnel_pairs", build)];

use crate::decode::TEREDO_PORT;

/// Inner pairs, embedded IPv4s and Teredo clients kept per window (`SAMPLE`).
const SAMPLE: usize = 10;
/// Links tracked per category's budget (the Python's fixed 4096).
const LINKS_CAP: usize = 4096;

/// The five categories, in the order `classify` names them.
const CATEGORIES: [&str; 5] = [
    "ipv6.tunnel_6to4",
    "ipv6.tunnel_isatap",
    "ipv6.tunnel_6in4",
    "ipv6.tunnel_teredo",
    "ipv6.tunnel_ayiya",
];

/// A signature of one of the categories (`classify`'s second value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Sig {
    RelayAnycast,
    Prefix2002,
    SpoofedIpv4,
    Isatap,
    SixInFour,
    OffPort,
    Qualification,
    Bubble,
    Data,
    Ayiya,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::RelayAnycast => "relay_anycast",
            Sig::Prefix2002 => "prefix_2002",
            Sig::SpoofedIpv4 => "spoofed_ipv4",
            Sig::Isatap => "isatap",
            Sig::SixInFour => "6in4",
            Sig::OffPort => "off_port",
            Sig::Qualification => "qualification",
            Sig::Bubble => "bubble",
            Sig::Data => "data",
            Sig::Ayiya => "ayiya",
        }
    }
}

/// The IPv4 address an ISATAP interface identifier embeds (RFC 5214 6.1, u/l bit 0 or 1).
fn isatap_ipv4(addr: Option<&[u8; 16]>) -> Option<[u8; 4]> {
    let a = addr?;
    if (a[8] == 0x00 || a[8] == 0x02) && a[9..12] == [0x00, 0x5e, 0xfe] {
        Some([a[12], a[13], a[14], a[15]])
    } else {
        None
    }
}

/// The IPv4 address in a 2002:V4ADDR::/48 prefix.
fn embedded_6to4(addr: Option<&[u8; 16]>) -> Option<[u8; 4]> {
    let a = addr?;
    if a[0] == 0x20 && a[1] == 0x02 {
        Some([a[2], a[3], a[4], a[5]])
    } else {
        None
    }
}

/// In 192.88.99.0/24, the 6to4 relay anycast prefix (IPv4 only).
fn relay_anycast(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V4([192, 88, 99, _]))
}

/// (category index, signature) of one decapsulation; None for kinds not reported
/// (6in6 and 4in6 stay inside IPv6: not hidden from IPv6 monitoring).
fn classify(ev: &TunnelPacket) -> Option<(usize, Sig)> {
    let layer = &ev.layer;
    match layer.kind {
        TunnelKind::SixInFour => {
            if relay_anycast(&layer.outer_src) || relay_anycast(&layer.outer_dst) {
                return Some((0, Sig::RelayAnycast));
            }
            if embedded_6to4(ev.inner_src.as_ref()).is_some()
                || embedded_6to4(ev.inner_dst.as_ref()).is_some()
            {
                return Some((0, Sig::Prefix2002));
            }
            if let Some(v4) = isatap_ipv4(ev.inner_src.as_ref()) {
                let spoofed = v4[..] != *layer.outer_src.as_bytes();
                return Some((
                    1,
                    if spoofed {
                        Sig::SpoofedIpv4
                    } else {
                        Sig::Isatap
                    },
                ));
            }
            if isatap_ipv4(ev.inner_dst.as_ref()).is_some() {
                return Some((1, Sig::Isatap));
            }
            Some((2, Sig::SixInFour))
        }
        TunnelKind::Teredo => {
            if layer.outer_sport != Some(TEREDO_PORT) && layer.outer_dport != Some(TEREDO_PORT) {
                return Some((3, Sig::OffPort));
            }
            if matches!(ev.inner_icmp_type, Some(133 | 134)) {
                return Some((3, Sig::Qualification));
            }
            let bubble = layer.teredo.is_some_and(|t| t.bubble);
            Some((3, if bubble { Sig::Bubble } else { Sig::Data }))
        }
        TunnelKind::Ayiya => Some((4, Sig::Ayiya)),
        TunnelKind::SixInSix | TunnelKind::FourInSix => None,
    }
}

/// An outer endpoint: address and UDP port (0 when none), ordered as Python orders the
/// `(bytes, int)` tuples (bytes compared lexicographically, a prefix first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Endpoint(IpAddr, u16);

impl Endpoint {
    fn le(&self, other: &Endpoint) -> bool {
        (self.0.as_bytes(), self.1) <= (other.0.as_bytes(), other.1)
    }
}

/// `endpoint_str`: `addr`, `addr:port` (IPv4) or `[addr]:port` (IPv6).
fn endpoint_str(ep: &Endpoint) -> String {
    let addr = match ep.0 {
        IpAddr::V4(a) => std::net::Ipv4Addr::from(a).to_string(),
        IpAddr::V6(a) => std::net::Ipv6Addr::from(a).to_string(),
    };
    match (ep.1, ep.0) {
        (0, _) => addr,
        (p, IpAddr::V6(_)) => format!("[{addr}]:{p}"),
        (p, IpAddr::V4(_)) => format!("{addr}:{p}"),
    }
}

/// Signature and the endpoint pair, lower end first (the category is the table's).
type PairKey = (Sig, Endpoint, Endpoint);

/// A Teredo client as the evidence lists it: address, port, cone.
type Client = (Option<[u8; 4]>, Option<u16>, Option<bool>);

/// Which Teredo evidence keys were set first (the Python dict's insertion order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TeredoKey {
    ServerClients,
    Origin,
    Auth,
}

/// Teredo message kinds, in `_teredo_kind`'s names.
const TEREDO_KINDS: [&str; 4] = [
    "bubbles",
    "router_solicitations",
    "router_advertisements",
    "data",
];

/// One pair's window (`_PairWindow`).
#[derive(Debug)]
struct PairWin {
    start_ns: i64,
    /// The first packet (its sender is reported as the source), kept whole for the alert.
    first: Event,
    last_ns: i64,
    packets: u64,
    wire_bytes: u64,
    inner_bytes: u64,
    /// Packets in the first packet's direction.
    forward: u64,
    /// Inner (src, dst) pairs and their packets, first SAMPLE pairs only.
    inner: Vec<([u8; 16], [u8; 16], u64)>,
    /// 6to4 / ISATAP IPv4s, first SAMPLE distinct (Python sorts them).
    embedded: Vec<[u8; 4]>,
    teredo_order: Vec<TeredoKey>,
    server: Option<[u8; 4]>,
    clients: Vec<Client>,
    origin: Option<([u8; 4], Option<u16>)>,
    auth: bool,
    /// Counts per `TEREDO_KINDS`, with the order each kind was first seen.
    kinds: [u64; 4],
}

impl PairWin {
    fn new(start_ns: i64, first: &TunnelPacket) -> Self {
        PairWin {
            start_ns,
            first: Event::Tunnel(first.clone()),
            last_ns: 0,
            packets: 0,
            wire_bytes: 0,
            inner_bytes: 0,
            forward: 0,
            inner: Vec::new(),
            embedded: Vec::new(),
            teredo_order: Vec::new(),
            server: None,
            clients: Vec::new(),
            origin: None,
            auth: false,
            kinds: [0; 4],
        }
    }

    fn first(&self) -> &TunnelPacket {
        match &self.first {
            Event::Tunnel(t) => t,
            _ => unreachable!("a pair window's first event is a tunnel packet"),
        }
    }

    /// Count one packet, as `on_event` did after `current`.
    fn count(&mut self, ev: &TunnelPacket) {
        self.last_ns = ev.meta.ts_ns;
        self.packets += 1;
        self.wire_bytes += u64::from(ev.meta.wire_len);
        self.inner_bytes += u64::from(ev.inner_len);
        if ev.layer.outer_src == self.first().layer.outer_src {
            self.forward += 1;
        }
        if let (Some(s), Some(d)) = (ev.inner_src, ev.inner_dst) {
            if let Some(e) = self.inner.iter_mut().find(|e| e.0 == s && e.1 == d) {
                e.2 += 1;
            } else if self.inner.len() < SAMPLE {
                self.inner.push((s, d, 1));
            }
        }
        for addr in [ev.inner_src.as_ref(), ev.inner_dst.as_ref()] {
            let v4 = embedded_6to4(addr).or_else(|| isatap_ipv4(addr));
            if let Some(v4) = v4 {
                if self.embedded.len() < SAMPLE && !self.embedded.contains(&v4) {
                    self.embedded.push(v4);
                }
            }
        }
        if let Some(td) = ev.layer.teredo {
            let kind = if td.bubble {
                0
            } else {
                match ev.inner_icmp_type {
                    Some(133) => 1,
                    Some(134) => 2,
                    _ => 3,
                }
            };
            self.kinds[kind] += 1;
            if let Some(server) = td.server {
                if self.server.is_none() {
                    self.server = Some(server);
                    self.teredo_order.push(TeredoKey::ServerClients);
                }
                let client = (td.client_ip, td.client_port, td.cone);
                if !self.clients.contains(&client) && self.clients.len() < SAMPLE {
                    self.clients.push(client);
                }
            }
            if let Some(ip) = td.origin_ip {
                if self.origin.is_none() {
                    self.origin = Some((ip, td.origin_port));
                    self.teredo_order.push(TeredoKey::Origin);
                }
            }
            if td.auth && !self.auth {
                self.auth = true;
                self.teredo_order.push(TeredoKey::Auth);
            }
        }
    }
}

/// A window handle: the table and the caller share it.
#[derive(Clone, Debug)]
struct PairRef(Rc<RefCell<PairWin>>);

impl Window for PairRef {
    fn start_ns(&self) -> i64 {
        self.0.borrow().start_ns
    }
}

/// One category's tables: pair windows, suppression, link budget.
struct Category {
    /// The category's index in `CATEGORIES`.
    index: usize,
    pairs_name: String,
    pairs: Windows<PairKey, PairRef>,
    suppress: Suppressor,
    budget: LinkBudget,
}

/// The `tunnel_pairs` reducer; see the module docs.
pub struct TunnelReducer {
    /// The configured categories, in spec order.
    cats: Vec<Category>,
    /// `CATEGORIES` index -> position in `cats`.
    slot: [Option<usize>; 5],
    /// Windows closed by the packet being counted, handled after it.
    closed: Vec<(PairKey, PairRef)>,
    bursts: Vec<Burst>,
}

fn setting<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("tunnel_pairs: setting {key:?} missing")))
}

/// Settings: `{"categories": [{"category", "window_s", "suppress_s",
/// "max_pairs_tracked", "max_alerts_per_window"}, ...]}` in spec order.
fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let settings = settings.downcast::<PyDict>()?;
    let mut cats = Vec::new();
    let mut slot = [None; 5];
    for c in setting(settings, "categories")?.try_iter()? {
        let c = c?;
        let c = c.downcast::<PyDict>()?;
        let name: String = setting(c, "category")?.extract()?;
        let index = CATEGORIES.iter().position(|n| *n == name).ok_or_else(|| {
            PyValueError::new_err(format!("tunnel_pairs: unknown category {name:?}"))
        })?;
        let window_s: f64 = setting(c, "window_s")?.extract()?;
        let suppress_s: f64 = setting(c, "suppress_s")?.extract()?;
        let cap: f64 = setting(c, "max_pairs_tracked")?.extract()?;
        let max_alerts: f64 = setting(c, "max_alerts_per_window")?.extract()?;
        // As the Python: int(seconds * NS), int(cap).
        let window_ns = (window_s * 1e9) as i64;
        let short = name.trim_start_matches("ipv6.");
        slot[index] = Some(cats.len());
        cats.push(Category {
            index,
            pairs_name: format!("tunnel.{short}.pairs"),
            pairs: Windows::new((cap as usize).max(1), window_ns),
            suppress: Suppressor::new(
                &format!("{name}.suppression"),
                (suppress_s * 1e9) as i64,
                (cap as usize).max(1),
            ),
            budget: LinkBudget::new(
                &format!("tunnel.{short}.links"),
                LINKS_CAP,
                window_ns,
                max_alerts as u64,
            ),
        });
    }
    Ok(Box::new(TunnelReducer {
        cats,
        slot,
        closed: Vec::new(),
        bursts: Vec::new(),
    }))
}

impl TunnelReducer {
    /// `_close`'s gate: suppressed pairs and pairs past the link budget stay native;
    /// the rest, and any burst a link window closed meanwhile, go out in order.
    fn close<'py>(
        &mut self,
        py: Python<'py>,
        ci: usize,
        key: PairKey,
        w: PairRef,
        conv: &mut Converter<'py>,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let (sig, lo, hi) = key;
        let w = w.0.borrow();
        let identifier = format!("{}|{}|{}", sig.name(), endpoint_str(&lo), endpoint_str(&hi));
        let cat = &mut self.cats[ci];
        if cat.suppress.active(&identifier, w.start_ns) {
            return Ok(());
        }
        let offender = Offender::new(w.first().layer.outer_src.as_bytes(), None);
        let admitted = cat.budget.admit(&w.first, offender, &mut self.bursts);
        self.push_bursts(py, ci, conv, out)?;
        if !admitted {
            return Ok(());
        }
        self.cats[ci].suppress.allow(&identifier, w.last_ns);
        out.push(pair_output(py, self.cats[ci].index, key, &w, conv)?)
    }

    fn push_bursts<'py>(
        &mut self,
        py: Python<'py>,
        ci: usize,
        conv: &mut Converter<'py>,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        for b in self.bursts.drain(..) {
            let cat = CATEGORIES[self.cats[ci].index];
            let t = PyTuple::new(py, [any(py, "burst")?, any(py, cat)?, b.to_py(py, conv)?])?;
            out.push(t.into_any())?;
        }
        Ok(())
    }

    /// Close the windows `close` picks (due or all), per category: pairs, then links.
    fn close_windows(&mut self, now_ns: Option<i64>, out: &mut Outputs<'_>) -> PyResult<()> {
        // The outputs' lifetime is the GIL token's for everything pushed.
        let py = out.list().py();
        let mut conv = Converter::new(py)?;
        for ci in 0..self.cats.len() {
            let closed = match now_ns {
                Some(now) => self.cats[ci].pairs.close_due(now),
                None => self.cats[ci].pairs.close_all(),
            };
            for (k, w) in closed {
                self.close(py, ci, k, w, &mut conv, out)?;
            }
            let cat = &mut self.cats[ci];
            match now_ns {
                Some(now) => cat.budget.tick(now, &mut self.bursts),
                None => cat.budget.flush(&mut self.bursts),
            }
            self.push_bursts(py, ci, &mut conv, out)?;
        }
        Ok(())
    }
}

/// `("pair", category, signature, lo, hi, start_ns, last_ns, packets, bytes,
/// inner_bytes, forward, inner, embedded, teredo, kinds, first)`: an endpoint is
/// `(address bytes, port)`; `inner` `[(src, dst, packets)]`; `embedded` `[bytes]`;
/// `teredo` the evidence keys in the order first set: `("server", bytes, [(client
/// bytes|None, port, cone)])`, `("origin", bytes, port)`, `("auth",)`; `kinds`
/// `[(name, n)]`; `first` the window's first `TunnelPacket`.
fn pair_output<'py>(
    py: Python<'py>,
    index: usize,
    key: PairKey,
    w: &PairWin,
    conv: &mut Converter<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let (sig, lo, hi) = key;
    let endpoint = |ep: Endpoint| -> PyResult<Bound<'py, PyAny>> {
        Ok(PyTuple::new(
            py,
            [any(py, PyBytes::new(py, ep.0.as_bytes()))?, any(py, ep.1)?],
        )?
        .into_any())
    };
    let inner = PyList::empty(py);
    for (s, d, n) in &w.inner {
        inner.append((PyBytes::new(py, s), PyBytes::new(py, d), *n))?;
    }
    let embedded = PyList::empty(py);
    for v4 in &w.embedded {
        embedded.append(PyBytes::new(py, v4))?;
    }
    let teredo = PyList::empty(py);
    for k in &w.teredo_order {
        match k {
            TeredoKey::ServerClients => {
                let clients = PyList::empty(py);
                for (ip, port, cone) in &w.clients {
                    clients.append((ip.map(|a| PyBytes::new(py, &a)), *port, *cone))?;
                }
                let server = w.server.map(|a| PyBytes::new(py, &a));
                teredo.append(("server", server, clients))?;
            }
            TeredoKey::Origin => {
                if let Some((ip, port)) = w.origin {
                    teredo.append(("origin", PyBytes::new(py, &ip), port))?;
                }
            }
            TeredoKey::Auth => teredo.append(("auth",))?,
        }
    }
    let kinds = PyList::empty(py);
    for (name, n) in TEREDO_KINDS.iter().zip(w.kinds) {
        if n > 0 {
            kinds.append((*name, n))?;
        }
    }
    let items = [
        any(py, "pair")?,
        any(py, CATEGORIES[index])?,
        any(py, sig.name())?,
        endpoint(lo)?,
        endpoint(hi)?,
        any(py, w.start_ns)?,
        any(py, w.last_ns)?,
        any(py, w.packets)?,
        any(py, w.wire_bytes)?,
        any(py, w.inner_bytes)?,
        any(py, w.forward)?,
        inner.into_any(),
        embedded.into_any(),
        teredo.into_any(),
        kinds.into_any(),
        conv.event(&w.first)?,
    ];
    Ok(PyTuple::new(py, items)?.into_any())
}

impl Reducer for TunnelReducer {
    fn observes(&self) -> Observes {
        Observes {
            tunnels: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Event::Tunnel(t) = ev else {
            return Ok(());
        };
        let Some((index, sig)) = classify(t) else {
            return Ok(());
        };
        let Some(ci) = self.slot[index] else {
            return Ok(());
        };
        let layer = &t.layer;
        let a = Endpoint(layer.outer_src, layer.outer_sport.unwrap_or(0));
        let b = Endpoint(layer.outer_dst, layer.outer_dport.unwrap_or(0));
        let (lo, hi) = if a.le(&b) { (a, b) } else { (b, a) };
        let key = (sig, lo, hi);
        let closed = &mut self.closed;
        let w = self.cats[ci].pairs.current(
            key,
            t.meta.ts_ns,
            |ts| PairRef(Rc::new(RefCell::new(PairWin::new(ts, t)))),
            |k, v| closed.push((k, v)),
        );
        // A closed window is judged before this packet counts, as the Python closed it
        // inside `current`; counting touches only the new window.
        if !self.closed.is_empty() {
            let py = out.list().py();
            let mut conv = Converter::new(py)?;
            for (k, v) in std::mem::take(&mut self.closed) {
                self.close(py, ci, k, v, &mut conv, out)?;
            }
        }
        w.0.borrow_mut().count(t);
        Ok(())
    }

    fn tick(&mut self, _py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.close_windows(Some(now_ns), out)
    }

    fn flush(&mut self, _py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.close_windows(None, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        let mut out = Vec::with_capacity(self.cats.len() * 3);
        for c in &self.cats {
            let t = &c.pairs.table;
            out.push((c.pairs_name.clone(), t.len(), t.cap(), t.evictions()));
            out.push(c.suppress.table_stat());
            out.push(c.budget.table_stat());
        }
        out
    }

    fn suppressed(&self) -> u64 {
        self.cats.iter().map(|c| c.suppress.suppressed()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::{TeredoInfo, TunnelLayer};

    fn tp(kind: TunnelKind, src: IpAddr, dst: IpAddr) -> TunnelPacket {
        TunnelPacket {
            meta: Default::default(),
            layer: TunnelLayer {
                kind,
                outer_src: src,
                outer_dst: dst,
                ..Default::default()
            },
            inner_version: 6,
            inner_len: 40,
            depth: 1,
            inner_src: None,
            inner_dst: None,
            inner_next: None,
            inner_icmp_type: None,
        }
    }

    #[test]
    fn classifies_like_the_python() {
        let v4 = |a, b, c, d| IpAddr::V4([a, b, c, d]);
        let mut p = tp(TunnelKind::SixInFour, v4(192, 0, 2, 1), v4(192, 88, 99, 1));
        assert_eq!(classify(&p), Some((0, Sig::RelayAnycast)));
        p.layer.outer_dst = v4(198, 51, 100, 1);
        assert_eq!(classify(&p), Some((2, Sig::SixInFour)));
        let mut isatap = [0u8; 16];
        isatap[8..16].copy_from_slice(&[2, 0, 0x5e, 0xfe, 192, 0, 2, 1]);
        p.inner_src = Some(isatap);
        assert_eq!(classify(&p), Some((1, Sig::Isatap)));
        isatap[15] = 9;
        p.inner_src = Some(isatap);
        assert_eq!(classify(&p), Some((1, Sig::SpoofedIpv4)));
        let mut six = [0u8; 16];
        six[..6].copy_from_slice(&[0x20, 0x02, 1, 2, 3, 4]);
        p.inner_dst = Some(six);
        assert_eq!(classify(&p), Some((0, Sig::Prefix2002)));
        let mut t = tp(TunnelKind::Teredo, v4(1, 1, 1, 1), v4(2, 2, 2, 2));
        t.layer.outer_sport = Some(5000);
        t.layer.outer_dport = Some(6000);
        assert_eq!(classify(&t), Some((3, Sig::OffPort)));
        t.layer.outer_dport = Some(TEREDO_PORT);
        assert_eq!(classify(&t), Some((3, Sig::Data)));
        t.layer.teredo = Some(TeredoInfo {
            bubble: true,
            ..Default::default()
        });
        assert_eq!(classify(&t), Some((3, Sig::Bubble)));
        t.inner_icmp_type = Some(134);
        assert_eq!(classify(&t), Some((3, Sig::Qualification)));
        let s = tp(TunnelKind::SixInSix, v4(1, 1, 1, 1), v4(2, 2, 2, 2));
        assert_eq!(classify(&s), None);
    }

    #[test]
    fn endpoints_order_and_format_as_python() {
        let a = Endpoint(IpAddr::V4([10, 0, 0, 1]), 3544);
        let b = Endpoint(IpAddr::V4([10, 0, 0, 1]), 80);
        assert!(b.le(&a) && !a.le(&b));
        // Bytes compare lexicographically, a shorter prefix first.
        let v6 = Endpoint(
            IpAddr::V6([10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            0,
        );
        assert!(a.le(&v6));
        assert_eq!(endpoint_str(&a), "10.0.0.1:3544");
        assert_eq!(
            endpoint_str(&Endpoint(IpAddr::V4([10, 0, 0, 1]), 0)),
            "10.0.0.1"
        );
        let mut six = [0u8; 16];
        six[0] = 0x20;
        six[1] = 0x01;
        six[15] = 1;
        assert_eq!(
            endpoint_str(&Endpoint(IpAddr::V6(six), 5072)),
            "[2001::1]:5072"
        );
    }

    #[test]
    fn window_samples_and_teredo_order() {
        let mut p = tp(
            TunnelKind::Teredo,
            IpAddr::V4([1, 1, 1, 1]),
            IpAddr::V4([2, 2, 2, 2]),
        );
        let mut w = PairWin::new(0, &p);
        p.layer.teredo = Some(TeredoInfo {
            origin_ip: Some([9, 9, 9, 9]),
            origin_port: Some(7),
            ..Default::default()
        });
        w.count(&p);
        p.layer.teredo = Some(TeredoInfo {
            server: Some([3, 3, 3, 3]),
            auth: true,
            ..Default::default()
        });
        w.count(&p);
        w.count(&p);
        assert_eq!(
            w.teredo_order,
            vec![TeredoKey::Origin, TeredoKey::ServerClients, TeredoKey::Auth]
        );
        assert_eq!(w.clients.len(), 1);
        assert_eq!((w.packets, w.forward, w.kinds[3]), (3, 3, 3));
        for i in 0..12u8 {
            let mut q = p.clone();
            q.inner_src = Some([i; 16]);
            q.inner_dst = Some([0; 16]);
            w.count(&q);
            w.count(&q);
        }
        assert_eq!(w.inner.len(), SAMPLE);
        assert!(w.inner.iter().all(|e| e.2 == 2));
    }
}
