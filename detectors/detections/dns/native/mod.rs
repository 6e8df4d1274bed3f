//! The DNS family's per-message counting, in Rust: `backscatter` counts, per originator
//! (the address a full 32-nibble `ip6.arpa` PTR query names), the distinct queriers in a
//! packet-time window (`ipv6.dns_backscatter`); `walk` counts, per querier, the distinct
//! shorter-than-32-nibble names it asks under our zones (less the QNAME-minimisation
//! steps, RFC 9156) and the answers it gets, and hands over zone-transfer attempts
//! (`ipv6.rdns_walk`).
//!
//! Answers are believed only from the policy's `dns.authoritative` servers when it lists
//! any: anyone can send a packet that looks like a PTR answer, and an answer names the
//! originator's class (a forged `mail.example.com` would turn a scanner into a
//! "well-known service") and the walk's NXDOMAIN tree.
//!
//! Owns the tables (bounded LRUs, evictions counted) and the windows; Python gets one
//! `backscatter` output when an originator's window first reaches `min_queriers`, one
//! `walk` per closed querier window past `min_names`, one `xfr` per AXFR/IXFR query.
//! DNS messages are never handed to Python: its work grows with outputs, not packets.

use pyo3::prelude::*;

use crate::decode::dns::{ip6_arpa_nibbles, TYPE_PTR};
use crate::decode::events::{DnsMessage, Event, IpAddr};
use crate::reduce::py::{any, bytes, setting, tuple};
use crate::reduce::sketch::{mix64, DistinctCounter};
use crate::reduce::windows::Lru;
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[
    ("dns_backscatter", build_backscatter),
    ("dns_walk", build_walk),
];

const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const NXDOMAIN: u8 = 3;
/// Queriers and discovered addresses kept as a sample in the outputs.
const SAMPLE: usize = 10;

fn addr_of(b: &[u8]) -> PyResult<IpAddr> {
    match b.len() {
        4 => Ok(IpAddr::V4(b.try_into().unwrap_or_default())),
        16 => Ok(IpAddr::V6(b.try_into().unwrap_or_default())),
        _ => Err(pyo3::exceptions::PyValueError::new_err(
            "expected a 4- or 16-byte address",
        )),
    }
}

/// A standard query's or response's first question, when it is class IN (or ANY).
fn question(m: &DnsMessage) -> Option<(&str, u16)> {
    let q = m.question.as_ref()?;
    (m.opcode == 0 && (q.qclass == 1 || q.qclass == 255)).then_some((q.qname.as_str(), q.qtype))
}

/// Is `m` an answer we may believe: any answer when no authoritative server is listed,
/// else only one sent from a listed server.
fn trusted_answer(authoritative: &[IpAddr], m: &DnsMessage) -> bool {
    authoritative.is_empty() || authoritative.contains(&m.src)
}

fn observes_dns() -> Observes {
    Observes {
        dns: true,
        ..Observes::default()
    }
}

/// One DNS packet an alert names: time, record, flow.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    ts_ns: i64,
    frame: u64,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    transport: u8,
}

impl Sample {
    fn of(m: &DnsMessage) -> Sample {
        Sample {
            ts_ns: m.meta.ts_ns,
            frame: m.meta.frame,
            src: m.src,
            dst: m.dst,
            sport: m.sport,
            dport: m.dport,
            transport: m.transport,
        }
    }

    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        tuple(
            py,
            vec![
                any(py, self.ts_ns)?,
                any(py, self.frame)?,
                bytes(py, self.src.as_bytes()),
                bytes(py, self.dst.as_bytes()),
                any(py, self.sport)?,
                any(py, self.dport)?,
                any(py, self.transport)?,
            ],
        )
    }
}

// -- ipv6.dns_backscatter ---------------------------------------------------------------

/// One originator's window.
struct Orig {
    start_ns: i64,
    /// The query that reached the threshold (the alert's sample packet).
    sample: Option<Sample>,
    last_ns: i64,
    first_frame: u64,
    /// Distinct queriers, exact up to `max_queriers` (then the count saturates there).
    queriers: Vec<IpAddr>,
    saturated: bool,
    queries: u64,
    answer: Option<String>,
    nxdomain: u64,
    raised: bool,
}

struct Backscatter {
    window_ns: i64,
    min_queriers: usize,
    max_queriers: usize,
    /// Only queries to these servers count (empty: every query the sensor sees).
    authoritative: Vec<IpAddr>,
    table: Lru<[u8; 16], Orig>,
}

fn build_backscatter(s: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let auth: Vec<Vec<u8>> = setting(s, "dns_backscatter", "authoritative")?;
    let min_queriers: usize = setting(s, "dns_backscatter", "min_queriers")?;
    let max_queriers: usize = setting(s, "dns_backscatter", "max_queriers")?;
    Ok(Box::new(Backscatter {
        window_ns: setting::<i64>(s, "dns_backscatter", "window_ns")?.max(1),
        min_queriers: min_queriers.max(1),
        max_queriers: max_queriers.max(min_queriers).max(1),
        authoritative: auth.iter().map(|a| addr_of(a)).collect::<PyResult<_>>()?,
        table: Lru::new(setting(s, "dns_backscatter", "max_originators")?),
    }))
}

impl Backscatter {
    fn output<'py>(
        &self,
        py: Python<'py>,
        origin: &[u8; 16],
        o: &Orig,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = o.sample.unwrap_or_default();
        let sample: Vec<_> = o
            .queriers
            .iter()
            .take(SAMPLE)
            .map(|a| bytes(py, a.as_bytes()))
            .collect();
        tuple(
            py,
            vec![
                any(py, "backscatter")?,
                bytes(py, origin),
                any(py, o.queriers.len())?,
                any(py, o.saturated)?,
                any(py, o.queries)?,
                tuple(py, sample)?,
                any(py, o.answer.as_deref())?,
                any(py, o.nxdomain)?,
                any(py, o.start_ns)?,
                any(py, o.last_ns)?,
                any(py, o.first_frame)?,
                s.to_py(py)?,
            ],
        )
    }
}

impl Reducer for Backscatter {
    fn observes(&self) -> Observes {
        observes_dns()
    }

    fn observe<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let Event::Dns(m) = ev else { return Ok(()) };
        let Some((qname, qtype)) = question(m) else {
            return Ok(());
        };
        if qtype != TYPE_PTR {
            return Ok(());
        }
        let Some((origin, 32)) = ip6_arpa_nibbles(qname) else {
            return Ok(());
        };
        let ts = m.meta.ts_ns;
        if m.qr {
            // An answer: what the originator is called (or that it has no name). Only a
            // window a query opened is updated, so answers cannot fill the table; only
            // our authoritative servers' answers, so a forged one cannot name it.
            if !trusted_answer(&self.authoritative, m) {
                return Ok(());
            }
            if let Some(o) = self.table.peek_mut(&origin) {
                if m.rcode == NXDOMAIN {
                    o.nxdomain += 1;
                }
                if o.answer.is_none() {
                    o.answer = m.ptr_answers.first().cloned();
                }
            }
            return Ok(());
        }
        if !self.authoritative.is_empty() && !self.authoritative.contains(&m.dst) {
            return Ok(());
        }
        let window = self.window_ns;
        let fresh = |ts: i64, frame: u64| Orig {
            start_ns: ts,
            last_ns: ts,
            first_frame: frame,
            queriers: Vec::new(),
            saturated: false,
            queries: 0,
            answer: None,
            nxdomain: 0,
            raised: false,
            sample: None,
        };
        let o = match self.table.get(&origin) {
            Some(o) => {
                if ts.saturating_sub(o.start_ns) >= window {
                    *o = fresh(ts, m.meta.frame);
                }
                o
            }
            None => {
                self.table.put(origin, fresh(ts, m.meta.frame));
                match self.table.get(&origin) {
                    Some(o) => o,
                    None => return Ok(()),
                }
            }
        };
        o.last_ns = ts;
        o.queries += 1;
        if !o.queriers.contains(&m.src) {
            if o.queriers.len() < self.max_queriers {
                o.queriers.push(m.src);
            } else {
                o.saturated = true;
            }
        }
        if !o.raised && o.queriers.len() >= self.min_queriers {
            o.raised = true;
            o.sample = Some(Sample::of(m));
            let o = self.table.peek(&origin).expect("just updated");
            let item = self.output(py, &origin, o)?;
            out.push(item)?;
        }
        Ok(())
    }

    fn tick<'py>(
        &mut self,
        _py: Python<'py>,
        now_ns: i64,
        _out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let w = self.window_ns;
        self.table
            .take_where(|_, o| now_ns.saturating_sub(o.start_ns) >= w);
        Ok(())
    }

    fn flush<'py>(
        &mut self,
        _py: Python<'py>,
        _now_ns: i64,
        _out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        self.table.drain();
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![self.table.table_stat("dns.originators")]
    }
}

// -- ipv6.rdns_walk ---------------------------------------------------------------------

/// Recent names a walker asked, checked for QNAME minimisation (see `Walker::recent`).
const RECENT: usize = 32;

/// One of a walker's recent names: a fingerprint of it, its depth and what became of it.
#[derive(Clone, Copy, Debug, Default)]
struct Recent {
    fp: u32,
    depth: u8,
    state: u8,
}

/// `Recent.state`: an empty slot, a counted name, a name answered NXDOMAIN.
const EMPTY: u8 = 0;
const COUNTED: u8 = 1;
const NAME_ERROR: u8 = 2;

/// The fingerprints of every prefix of a name, `hs[k]` for its first `k` nibbles (one
/// pass, no allocation): a name's identity in the distinct count, and how a later query
/// finds out that an earlier name was its ancestor.
fn prefix_hashes(nibbles: &[u8; 16], depth: usize) -> [u64; 33] {
    let mut hs = [0u64; 33];
    let mut h = 0x6970_362e_6172_7061u64; // "ip6.arpa"
    hs[0] = h;
    for (k, slot) in hs.iter_mut().enumerate().take(depth.min(32) + 1).skip(1) {
        h = mix64(h ^ ((k as u64) << 8) ^ u64::from(nibble(nibbles, k - 1)));
        *slot = h;
    }
    hs
}

/// One querier's window of names under our zones.
struct Walker {
    start_ns: i64,
    /// The window's first query (the alert's sample packet).
    sample: Sample,
    last_ns: i64,
    first_frame: u64,
    server: IpAddr,
    zone: usize,
    /// Distinct names asked (exact while small, then a HyperLogLog): a resolver's retries
    /// and repeats count once.
    names: DistinctCounter,
    /// Distinct names found to be QNAME-minimisation steps (RFC 9156): an ancestor of a
    /// later query of the same querier, not answered NXDOMAIN. A minimising resolver
    /// resolving one full name asks its successively longer prefixes, each extending the
    /// last; a walker asks siblings (16 children per level), of which only the few that
    /// exist are ever extended.
    minimised: u64,
    /// The last `RECENT` new names, the candidates for being such steps: a resolver's
    /// next step follows its answer within a round trip, so each chain it has in flight
    /// holds one slot.
    recent: [Recent; RECENT],
    next_recent: usize,
    max_depth: usize,
    nxdomain: u64,
    noerror: u64,
    discovered: Vec<[u8; 16]>,
}

impl Walker {
    /// The names that count: distinct ones, less the minimisation steps.
    fn count(&self) -> u64 {
        (self.names.estimate().round() as u64).saturating_sub(self.minimised)
    }

    /// A query for a name with prefix fingerprints `hs` and `depth` nibbles: its recent
    /// ancestors were minimisation steps; a shorter-than-full name is counted.
    fn query(&mut self, hs: &[u64; 33], depth: usize) {
        for r in self.recent.iter_mut() {
            let d = usize::from(r.depth);
            if r.state == COUNTED && d < depth && hs[d] as u32 == r.fp {
                r.state = EMPTY;
                self.minimised += 1;
            }
        }
        if depth < 32 && self.names.add(hs[depth]) {
            self.recent[self.next_recent] = Recent {
                fp: hs[depth] as u32,
                depth: depth as u8,
                state: COUNTED,
            };
            self.next_recent = (self.next_recent + 1) % RECENT;
            self.max_depth = self.max_depth.max(depth);
        }
    }

    /// An NXDOMAIN for a recent name: nothing exists below it (RFC 8020), so a longer
    /// query under it is no resolver's next step.
    fn name_error(&mut self, fp: u32, depth: usize) {
        if let Some(r) = self
            .recent
            .iter_mut()
            .find(|r| r.state == COUNTED && usize::from(r.depth) == depth && r.fp == fp)
        {
            r.state = NAME_ERROR;
        }
    }
}

struct Walk {
    window_ns: i64,
    min_names: u64,
    /// Distinct names counted exactly per walker before its HyperLogLog takes over.
    exact_names: usize,
    /// Our zones as nibble prefixes (packed, count); empty: every ip6.arpa name.
    zones: Vec<([u8; 16], usize)>,
    authoritative: Vec<IpAddr>,
    table: Lru<IpAddr, Walker>,
    /// Zone-transfer attempts handed to Python in the current window (`xfr_start`),
    /// at most `XFR_PER_WINDOW`; the rest are counted in `xfr_dropped`. A transfer
    /// request is one packet, and a flood of them from spoofed sources would otherwise
    /// be one Python output per packet.
    xfr_start: i64,
    xfr_used: usize,
    xfr_dropped: u64,
}

/// Zone-transfer attempts reported per walk window (each is an alert or suppressed).
const XFR_PER_WINDOW: usize = 64;
/// A walker's distinct-name HyperLogLog past its exact set: 2**10 one-byte registers
/// (about 3 % standard error, far past the threshold by then).
const NAMES_PRECISION: u32 = 10;

fn build_walk(s: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let zones: Vec<(Vec<u8>, usize)> = setting(s, "dns_walk", "zones")?;
    let auth: Vec<Vec<u8>> = setting(s, "dns_walk", "authoritative")?;
    let min_names = setting::<u64>(s, "dns_walk", "min_names")?.max(1);
    Ok(Box::new(Walk {
        window_ns: setting::<i64>(s, "dns_walk", "window_ns")?.max(1),
        min_names,
        // Exact well past the threshold (a walk's evidence too, up to 512 names at the
        // defaults: 4 KiB for such a walker, nothing for a one-name querier); bounded
        // either way.
        exact_names: (2 * min_names).clamp(512, 4096) as usize,
        zones: zones
            .into_iter()
            .map(|(b, n)| {
                let mut a = [0u8; 16];
                let k = b.len().min(16);
                a[..k].copy_from_slice(&b[..k]);
                (a, n.min(32))
            })
            .collect(),
        authoritative: auth.iter().map(|a| addr_of(a)).collect::<PyResult<_>>()?,
        table: Lru::new(setting(s, "dns_walk", "max_queriers")?),
        xfr_start: i64::MIN,
        xfr_used: 0,
        xfr_dropped: 0,
    }))
}

fn nibble(a: &[u8; 16], i: usize) -> u8 {
    if i % 2 == 0 {
        a[i / 2] >> 4
    } else {
        a[i / 2] & 0x0F
    }
}

impl Walk {
    /// The zone (index) a name of `depth` nibbles is at or under; `usize::MAX` for
    /// "any ip6.arpa name" without zones.
    fn zone_of(&self, nibbles: &[u8; 16], depth: usize) -> Option<usize> {
        if self.zones.is_empty() {
            return Some(usize::MAX);
        }
        self.zones
            .iter()
            .position(|(z, n)| depth >= *n && (0..*n).all(|i| nibble(z, i) == nibble(nibbles, i)))
    }

    fn output<'py>(
        &self,
        py: Python<'py>,
        querier: &IpAddr,
        w: &Walker,
    ) -> PyResult<Bound<'py, PyAny>> {
        let found: Vec<_> = w.discovered.iter().map(|a| bytes(py, a)).collect();
        tuple(
            py,
            vec![
                any(py, "walk")?,
                bytes(py, querier.as_bytes()),
                bytes(py, w.server.as_bytes()),
                any(py, (w.zone != usize::MAX).then_some(w.zone))?,
                any(py, w.count())?,
                any(py, w.max_depth)?,
                any(py, w.nxdomain)?,
                any(py, w.noerror)?,
                tuple(py, found)?,
                any(py, w.start_ns)?,
                any(py, w.last_ns)?,
                any(py, w.first_frame)?,
                w.sample.to_py(py)?,
            ],
        )
    }

    fn close<'py>(
        &self,
        py: Python<'py>,
        q: &IpAddr,
        w: &Walker,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        if w.count() >= self.min_names {
            let item = self.output(py, q, w)?;
            out.push(item)?;
        }
        Ok(())
    }
}

impl Reducer for Walk {
    fn observes(&self) -> Observes {
        observes_dns()
    }

    fn observe<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        let Event::Dns(m) = ev else { return Ok(()) };
        let Some((qname, qtype)) = question(m) else {
            return Ok(());
        };
        let Some((nibbles, depth)) = ip6_arpa_nibbles(qname) else {
            return Ok(());
        };
        let Some(zone) = self.zone_of(&nibbles, depth) else {
            return Ok(());
        };
        let ts = m.meta.ts_ns;
        if m.qr {
            // An answer to a querier being counted: the RFC 8020 tree it walks.
            // The tree is judged on the shorter names; a full name answered with data
            // is an address discovered. Only our authoritative servers' answers.
            if !trusted_answer(&self.authoritative, m) {
                return Ok(());
            }
            if let Some(w) = self.table.peek_mut(&m.dst) {
                if depth < 32 {
                    if m.rcode == NXDOMAIN {
                        w.nxdomain += 1;
                        let hs = prefix_hashes(&nibbles, depth);
                        w.name_error(hs[depth] as u32, depth);
                    } else if m.rcode == 0 {
                        w.noerror += 1;
                    }
                } else if m.rcode == 0
                    && m.ancount > 0
                    && w.discovered.len() < SAMPLE
                    && !w.discovered.contains(&nibbles)
                {
                    w.discovered.push(nibbles);
                }
            }
            return Ok(());
        }
        if !self.authoritative.is_empty() && !self.authoritative.contains(&m.dst) {
            return Ok(());
        }
        if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
            if ts.saturating_sub(self.xfr_start) >= self.window_ns {
                (self.xfr_start, self.xfr_used) = (ts, 0);
            }
            if self.xfr_used >= XFR_PER_WINDOW {
                self.xfr_dropped += 1;
                return Ok(());
            }
            self.xfr_used += 1;
            let item = tuple(
                py,
                vec![
                    any(py, "xfr")?,
                    bytes(py, m.src.as_bytes()),
                    bytes(py, m.dst.as_bytes()),
                    any(py, (zone != usize::MAX).then_some(zone))?,
                    any(py, qname)?,
                    any(py, qtype)?,
                    any(py, m.transport)?,
                    any(py, m.sport)?,
                    any(py, m.dport)?,
                    any(py, ts)?,
                    any(py, m.meta.frame)?,
                ],
            )?;
            return out.push(item);
        }
        if depth >= 32 {
            // A full name is an ordinary lookup, not a walk step; but it ends a
            // minimising resolver's chain of shorter names (hashed only then).
            if let Some(w) = self.table.peek_mut(&m.src) {
                w.query(&prefix_hashes(&nibbles, depth), depth);
            }
            return Ok(());
        }
        let hs = prefix_hashes(&nibbles, depth);
        let window = self.window_ns;
        let due = match self.table.peek(&m.src) {
            Some(w) => ts.saturating_sub(w.start_ns) >= window,
            None => false,
        };
        if due {
            if let Some(old) = self.table.remove(&m.src) {
                self.close(py, &m.src, &old, out)?;
            }
        }
        if self.table.peek(&m.src).is_none() {
            let fresh = Walker {
                sample: Sample::of(m),
                start_ns: ts,
                last_ns: ts,
                first_frame: m.meta.frame,
                server: m.dst,
                zone,
                names: DistinctCounter::new(self.exact_names, NAMES_PRECISION),
                minimised: 0,
                recent: [Recent::default(); RECENT],
                next_recent: 0,
                max_depth: 0,
                nxdomain: 0,
                noerror: 0,
                discovered: Vec::new(),
            };
            if let Some((k, v)) = self.table.put(m.src, fresh) {
                self.close(py, &k, &v, out)?;
            }
        }
        if let Some(w) = self.table.get(&m.src) {
            w.last_ns = ts;
            w.query(&hs, depth);
        }
        Ok(())
    }

    fn tick<'py>(&mut self, py: Python<'py>, now_ns: i64, out: &mut Outputs<'py>) -> PyResult<()> {
        let w = self.window_ns;
        for (q, v) in self
            .table
            .take_where(|_, v| now_ns.saturating_sub(v.start_ns) >= w)
        {
            self.close(py, &q, &v, out)?;
        }
        Ok(())
    }

    fn flush<'py>(
        &mut self,
        py: Python<'py>,
        _now_ns: i64,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        for (q, v) in self.table.drain() {
            self.close(py, &q, &v, out)?;
        }
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![
            self.table.table_stat("dns.walkers"),
            // The zone-transfer budget: "evictions" are the attempts past it.
            (
                "dns.xfr_budget".to_string(),
                self.xfr_used,
                XFR_PER_WINDOW,
                self.xfr_dropped,
            ),
        ]
    }
}
