//! The DNS family's per-message counting, in Rust: `backscatter` counts, per originator
//! (the address a full 32-nibble `ip6.arpa` PTR query names), the distinct queriers in a
//! packet-time window (`ipv6.dns_backscatter`); `walk` counts, per querier (IPv6: per
//! querier /64), the distinct shorter-than-32-nibble names it asks under our zones (less
//! the QNAME-minimisation steps, RFC 9156: names answered NOERROR before it asked below
//! them) and the answers it gets, and hands over zone-transfer attempts
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

/// `Recent.state`: an empty slot; a counted name not yet answered; a counted name our
/// authoritative answered NOERROR (something exists below: a later query under it may
/// be a minimisation step); a name answered NXDOMAIN (nothing below: always counted); a
/// name credited as a minimisation step (an NXDOMAIN that still comes takes it back).
const EMPTY: u8 = 0;
const ASKED: u8 = 1;
const ANSWERED: u8 = 2;
const NAME_ERROR: u8 = 3;
const MINIMISED: u8 = 4;

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

/// The walk table's key for a querier: its /64 for IPv6 (a walker is free to change its
/// address inside its own /64 at every query, and would otherwise stay under the
/// threshold at every one of them), its address for IPv4.
fn querier_key(a: &IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(b) => {
            let mut k = *b;
            k[8..].fill(0);
            IpAddr::V6(k)
        }
        v4 => *v4,
    }
}

/// One querier's (IPv6: one querier /64's) window of names under our zones.
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
    /// Distinct names found to be QNAME-minimisation steps (RFC 9156): answered NOERROR
    /// by our authoritative before the same querier asked a longer name under it, and
    /// never answered NXDOMAIN. A minimising resolver resolving one full name asks its
    /// successively longer prefixes, each only after the answer to the last; a walker
    /// asks siblings (16 children per level), of which only the few that exist are
    /// answered NOERROR. A name extended before its answer came (a walker hiding its
    /// walk behind made-up longer names) is no step: it stays counted.
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
    /// The querier addresses seen in the window (the first `SAMPLE`), and how many
    /// distinct ones were seen past them.
    queriers: Vec<IpAddr>,
    more_queriers: bool,
}

impl Walker {
    fn new(sample: Sample, zone: usize, exact_names: usize) -> Walker {
        Walker {
            sample,
            start_ns: sample.ts_ns,
            last_ns: sample.ts_ns,
            first_frame: sample.frame,
            server: sample.dst,
            zone,
            names: DistinctCounter::new(exact_names, NAMES_PRECISION),
            minimised: 0,
            recent: [Recent::default(); RECENT],
            next_recent: 0,
            max_depth: 0,
            nxdomain: 0,
            noerror: 0,
            discovered: Vec::new(),
            queriers: vec![sample.src],
            more_queriers: false,
        }
    }

    /// One more query from `src` (an address of the walker's /64).
    fn querier(&mut self, src: &IpAddr) {
        if !self.queriers.contains(src) {
            if self.queriers.len() < SAMPLE {
                self.queriers.push(*src);
            } else {
                self.more_queriers = true;
            }
        }
    }

    /// The names that count: distinct ones, less the minimisation steps.
    fn count(&self) -> u64 {
        (self.names.estimate().round() as u64).saturating_sub(self.minimised)
    }

    /// A query for a name with prefix fingerprints `hs` and `depth` nibbles: its recent
    /// ancestors already answered NOERROR were minimisation steps; a shorter-than-full
    /// name is counted.
    fn query(&mut self, hs: &[u64; 33], depth: usize) {
        for r in self.recent.iter_mut() {
            let d = usize::from(r.depth);
            if r.state == ANSWERED && d < depth && hs[d] as u32 == r.fp {
                r.state = MINIMISED;
                self.minimised += 1;
            }
        }
        if depth < 32 && self.names.add(hs[depth]) {
            self.recent[self.next_recent] = Recent {
                fp: hs[depth] as u32,
                depth: depth as u8,
                state: ASKED,
            };
            self.next_recent = (self.next_recent + 1) % RECENT;
            self.max_depth = self.max_depth.max(depth);
        }
    }

    /// Our authoritative's answer for a recent name. NOERROR: something exists below,
    /// so a later query under it may be a resolver's next step. NXDOMAIN: nothing exists
    /// below (RFC 8020), so a longer query under it is no resolver's next step; the name
    /// counts, even if it was credited (the answer came after the longer query).
    fn answered(&mut self, fp: u32, depth: usize, rcode: u8) {
        let Some(r) = self
            .recent
            .iter_mut()
            .find(|r| r.state != EMPTY && usize::from(r.depth) == depth && r.fp == fp)
        else {
            return;
        };
        match (rcode, r.state) {
            (NXDOMAIN, MINIMISED) => {
                r.state = NAME_ERROR;
                self.minimised = self.minimised.saturating_sub(1);
            }
            (NXDOMAIN, _) => r.state = NAME_ERROR,
            (0, ASKED) => r.state = ANSWERED,
            _ => {}
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
        // either way (4096 names, 32 KiB). With the Walker itself (512 bytes) and its
        // samples, the spec's max_queriers_tracked states the table's worst case.
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
        let queriers: Vec<_> = w.queriers.iter().map(|a| bytes(py, a.as_bytes())).collect();
        tuple(
            py,
            vec![
                any(py, "walk")?,
                bytes(py, querier.as_bytes()),
                tuple(py, queriers)?,
                any(py, w.more_queriers)?,
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
            if let Some(w) = self.table.peek_mut(&querier_key(&m.dst)) {
                if depth < 32 {
                    if m.rcode == NXDOMAIN {
                        w.nxdomain += 1;
                    } else if m.rcode == 0 {
                        w.noerror += 1;
                    }
                    if m.rcode == NXDOMAIN || m.rcode == 0 {
                        let hs = prefix_hashes(&nibbles, depth);
                        w.answered(hs[depth] as u32, depth, m.rcode);
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
            if let Some(w) = self.table.peek_mut(&querier_key(&m.src)) {
                w.query(&prefix_hashes(&nibbles, depth), depth);
            }
            return Ok(());
        }
        let hs = prefix_hashes(&nibbles, depth);
        let key = querier_key(&m.src);
        let window = self.window_ns;
        let due = match self.table.peek(&key) {
            Some(w) => ts.saturating_sub(w.start_ns) >= window,
            None => false,
        };
        if due {
            if let Some(old) = self.table.remove(&key) {
                self.close(py, &key, &old, out)?;
            }
        }
        if self.table.peek(&key).is_none() {
            let fresh = Walker::new(Sample::of(m), zone, self.exact_names);
            if let Some((k, v)) = self.table.put(key, fresh) {
                self.close(py, &k, &v, out)?;
            }
        }
        if let Some(w) = self.table.get(&key) {
            w.last_ns = ts;
            w.querier(&m.src);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefix fingerprints and depth of a name given as its nibbles (hex digits,
    /// most significant first).
    fn name(digits: &str) -> ([u64; 33], usize) {
        let mut n = [0u8; 16];
        for (i, c) in digits.chars().enumerate() {
            let v = c.to_digit(16).unwrap() as u8;
            n[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        }
        (prefix_hashes(&n, digits.len()), digits.len())
    }

    fn walker() -> Walker {
        Walker::new(Sample::default(), 0, 512)
    }

    fn ask(w: &mut Walker, digits: &str) {
        let (hs, d) = name(digits);
        w.query(&hs, d);
    }

    fn answer(w: &mut Walker, digits: &str, rcode: u8) {
        let (hs, d) = name(digits);
        w.answered(hs[d] as u32, d, rcode);
    }

    /// Made-up nibbles that extend `digits` to a full 32-nibble name.
    fn to_full(digits: &str, salt: usize) -> String {
        let mut s = digits.to_string();
        let mut x = salt as u64 * 0x9E37_79B9 + 1;
        while s.len() < 32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(char::from_digit((x % 16) as u32, 16).unwrap());
        }
        s
    }

    /// An RFC 8020 walk of 12 levels below a 12-nibble zone, 16 children a level, one of
    /// them existing (NOERROR, descended into), the other 15 NXDOMAIN. `trick`: every
    /// child is at once "extended" by a made-up full name, before its answer comes.
    fn walk(trick: bool, forged_noerror: bool) -> u64 {
        let mut w = walker();
        let mut prefix = "20010db80001".to_string();
        for level in 0..12 {
            for c in "0123456789abcdef".chars() {
                let x = format!("{prefix}{c}");
                ask(&mut w, &x);
                if forged_noerror {
                    // Without dns.authoritative any NOERROR is believed: the walker
                    // answers itself, then extends, before the true answer.
                    answer(&mut w, &x, 0);
                }
                if trick {
                    ask(&mut w, &to_full(&x, level * 16 + c as usize));
                }
                answer(&mut w, &x, if c == '7' { 0 } else { NXDOMAIN });
            }
            prefix.push('7');
        }
        w.count()
    }

    #[test]
    fn a_walker_cannot_hide_its_walk_behind_made_up_longer_names() {
        // 192 names, of which the 11 existing ones a level descended into are
        // extended after their NOERROR: 181 count, trick or not. (Before, the trick
        // credited every name before its NXDOMAIN came: 0.)
        assert_eq!(walk(false, false), 181);
        assert_eq!(walk(true, false), 181);
        // A credit given on a forged NOERROR is taken back by the true NXDOMAIN (only
        // the deepest existing name, answered NOERROR and extended, is credited too).
        assert_eq!(walk(true, true), 180);
    }

    #[test]
    fn names_answered_nxdomain_always_count() {
        let mut w = walker();
        ask(&mut w, "20010db800011");
        answer(&mut w, "20010db800011", NXDOMAIN);
        ask(&mut w, &to_full("20010db800011", 1));
        ask(&mut w, "20010db8000112");
        assert_eq!(w.count(), 2);
    }

    #[test]
    fn a_minimising_resolver_is_credited_each_step_it_was_answered() {
        // RFC 9156: each step only after the NOERROR of the last, ending in the full
        // name; 20 chains interleaved.
        let mut w = walker();
        let fulls: Vec<String> = (0..20)
            .map(|i| to_full(&format!("20010db80001{:x}", i % 16), i))
            .collect();
        for depth in [13, 14, 15, 16, 19, 22, 25, 28, 30, 32] {
            for f in &fulls {
                ask(&mut w, &f[..depth]);
                if depth < 32 {
                    answer(&mut w, &f[..depth], 0);
                }
            }
        }
        assert_eq!(w.count(), 0);
        // A step extended before its answer is not credited.
        let mut w = walker();
        ask(&mut w, "20010db800015");
        ask(&mut w, "20010db8000153");
        answer(&mut w, "20010db800015", 0);
        assert_eq!(w.count(), 2);
    }

    #[test]
    fn ipv6_queriers_are_keyed_by_their_64() {
        let a = IpAddr::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x77]);
        let b = IpAddr::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 2, 9, 9, 9, 9, 9, 9, 9, 9]);
        let c = IpAddr::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x77]);
        assert_eq!(querier_key(&a), querier_key(&b));
        assert_ne!(querier_key(&a), querier_key(&c));
        let v4 = IpAddr::V4([192, 0, 2, 1]);
        assert_eq!(querier_key(&v4), v4);
        let mut w = walker();
        for i in 0..15u8 {
            w.querier(&IpAddr::V6([i; 16]));
        }
        assert_eq!((w.queriers.len(), w.more_queriers), (SAMPLE, true));
    }
}
