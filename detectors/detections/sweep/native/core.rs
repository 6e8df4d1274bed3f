//! The per-packet half of `ipv6.sweep` (`detectors/detections/sweep/sweep.py`).
//!
//! Owns, per packet: the filters (multicast, link-local, Neighbor Discovery, the
//! unspecified source, ICMPv6 errors quoting the destination's own packet), answers
//! (`is_answer`: echo replies, SYN-ACKs, RSTs and a server's UDP or TCP from its
//! well-known port, which only feed the responders of open windows and never open one),
//! the recent-pairs cache, the per-source-/64 and per-(source /64, destination /64) windows
//! with their distinct targets, destination /64s, responders, named source addresses,
//! probe kinds and target samples, and the gates: a tier crossing, or a wide scan, that
//! passes the no-reply ratio. It hands out only `Outcome`s: a gated crossing (Python
//! checks suppression and writes the alert) and a closed pair window with enough targets
//! for an observation (Python applies the observation budget and writes it). Python's
//! work therefore grows with alerts and windows, never with packets.
//!
//! Windows are shared handles (`Rc<RefCell<_>>`) because Python's are objects: a pair
//! keeps the source window it started with after that one left the table (its no-reply
//! ratio at close reads it), and the recent-pairs cache keeps both alive and absorbs
//! repeats into them even once evicted. Same graph, same answers.
//!
//! Fan-in (issue 15): a third table of windows keyed by the destination /64 alone counts,
//! across every source, the distinct targets (the interface-identifier hash the pair
//! already made), the distinct source /64s and the hosts of that /64 that sent anything
//! back, with a distinct sample of the source addresses. A scan whose every probe comes
//! from a new random source, which thrashes the per-source tables, is one growing window
//! here. And a table that evicts at least `thrash_ratio` times its cap within one window
//! is reported (`Outcome::Thrash`, once per table and window) instead of going silent.

use std::cell::RefCell;
use std::rc::Rc;

use crate::decode::events::Ipv6Packet;
use crate::reduce::few::Few;
use crate::reduce::probe::{self, addressed, answers_destination, probe_kind, role, Role};
use crate::reduce::sketch::{hash_bytes, mix64, DistinctCounter, DistinctSample};
use crate::reduce::windows::{thrash_threshold, KeyedMap, Lru, Window, Windows};

pub const PATTERN_SAMPLE: usize = 64; // distinct targets kept per window for the patterns
pub const MAX_SOURCES_NAMED: usize = 64; // source addresses remembered per window
pub const RECENT_PAIRS: usize = 16384; // flows remembered to skip repeats; cleared when full
pub const SOURCE_SAMPLE: usize = 64; // distinct source addresses kept per fan-in window
/// Table names, in `table_stats` order (the thrashing outcome names its table by index).
pub const TABLE_NAMES: [&str; 3] = ["sweep.sources", "sweep.pairs", "sweep.fanin"];

/// The thresholds, resolved by Python from `spec.yaml` and the policy.
#[derive(Clone, Debug)]
pub struct Config {
    pub window_ns: i64,
    pub tiers: [f64; 3],
    pub wide_prefixes: f64,
    pub wide_targets: f64,
    pub min_no_reply: f64,
    pub exact_up_to: usize,
    pub precision: u32,
    pub src_precision: u32,
    pub max_sources: usize,
    pub max_pairs: usize,
    /// `observe_min_targets`; None when nobody listens for observations.
    pub observe_min: Option<f64>,
    /// `fanin_min_sources`: distinct source /64s a fan-in window needs to alert.
    pub fanin_sources: f64,
    pub max_fanin: usize,
    /// `thrash_ratio`: evictions per window, as a multiple of the cap, that is thrashing.
    pub thrash_ratio: f64,
}

/// What both windows keep: when, which source addresses, how many packets.
#[derive(Debug)]
pub struct Win {
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    /// The window's first packet, as decoded: the alert's `event`.
    pub first: Ipv6Packet,
    pub sample: DistinctSample<[u8; 16]>,
    /// Source addresses (at most MAX_SOURCES_NAMED), in first-seen order, with the new
    /// targets each found: Python's Counter, whose order breaks `most_common` ties.
    pub sources: Few<([u8; 16], u64)>,
    pub more_sources: bool,
    pub probes: [u64; 7],
}

impl Win {
    fn new(ts: i64, p: &Ipv6Packet) -> Self {
        Win {
            start_ns: ts,
            last_ns: 0,
            packets: 0,
            first: p.clone(),
            sample: DistinctSample::new(PATTERN_SAMPLE),
            sources: Few::Empty,
            more_sources: false,
            probes: [0; 7],
        }
    }

    /// Count what each source address (at most MAX_SOURCES_NAMED) found new.
    fn name(&mut self, src: &[u8; 16], new: bool) {
        if let Some(e) = self
            .sources
            .as_mut_slice()
            .iter_mut()
            .find(|(a, _)| a == src)
        {
            e.1 += u64::from(new);
        } else if self.sources.len() < MAX_SOURCES_NAMED {
            self.sources.push((*src, u64::from(new)), MAX_SOURCES_NAMED);
        } else {
            self.more_sources = true;
        }
    }
}

/// One source /64's window over everything it sent and got back.
#[derive(Debug)]
pub struct Source {
    pub w: Win,
    pub targets: DistinctCounter,    // full addresses
    pub prefixes: DistinctCounter,   // destination /64s
    pub responders: DistinctCounter, // hosts that sent anything to the source /64
    pub swept: bool,                 // some destination /64 reached a tier: not wide
    pub wide: bool,                  // the wide-scan alert was raised in this window
}

impl Source {
    pub fn no_reply_ratio(&self) -> f64 {
        probe::no_reply_ratio(self.targets.estimate(), self.responders.estimate())
    }
}

/// One source /64's window on one destination /64.
#[derive(Debug)]
pub struct Pair {
    pub w: Win,
    pub targets: DistinctCounter, // interface identifiers
    pub tier: usize,              // tiers alerted in this window
    pub source: SrcRef,           // the source window it started in, for the ratio
}

pub type SrcRef = Rc<RefCell<Source>>;
pub type PairRef = Rc<RefCell<Pair>>;
pub type FanRef = Rc<RefCell<Fan>>;

/// A flow (source and destination address) in the recent-pairs cache: one lookup per
/// packet tells a repeat of a counted probe or of an answer, whichever it was.
enum Recent {
    /// Counted into these windows: repeats only add packets to them.
    Probe(PairRef, SrcRef),
    /// An answer (`is_answer`) first seen at this packet time: its source is a responder
    /// of whatever windows were open then; repeats within a window add nothing.
    Answer(i64),
}

/// One destination /64's window over every source that probed it (fan-in).
#[derive(Debug)]
pub struct Fan {
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    pub probes: [u64; 7],
    pub first: Ipv6Packet,
    pub targets: DistinctCounter, // interface identifiers, as the pairs count them
    pub sources: DistinctCounter, // source /64s
    pub responders: DistinctCounter, // hosts of this /64 that sent anything
    pub sample: DistinctSample<[u8; 16]>,
    pub src_sample: DistinctSample<[u8; 16]>,
    pub tier: usize, // tiers alerted in this window
}

impl Fan {
    pub fn no_reply_ratio(&self) -> f64 {
        probe::no_reply_ratio(self.targets.estimate(), self.responders.estimate())
    }
}

impl Window for Fan {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

/// A fan-in window when it alerted.
#[derive(Clone, Debug)]
pub struct FanSnapshot {
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    pub probes: [u64; 7],
    pub sample: Vec<[u8; 16]>,
    pub sample_level: u32,
    pub src_sample: Vec<[u8; 16]>,
    pub src_level: u32,
    pub first: Ipv6Packet,
    pub crossing: Option<Ipv6Packet>,
}

impl From<&Fan> for FanSnapshot {
    fn from(f: &Fan) -> Self {
        FanSnapshot {
            start_ns: f.start_ns,
            last_ns: f.last_ns,
            packets: f.packets,
            probes: f.probes,
            sample: f.sample.items().collect(),
            sample_level: f.sample.level(),
            src_sample: f.src_sample.items().collect(),
            src_level: f.src_sample.level(),
            first: f.first.clone(),
            crossing: None,
        }
    }
}

/// Evictions of one table in the current thrashing window.
#[derive(Clone, Copy, Debug)]
struct Thrash {
    start_ns: i64,
    base: u64,      // the table's evictions when this window started
    min: u64,       // evictions in one window that are thrashing
    reported: bool, // once per window
}

impl Window for Source {
    fn start_ns(&self) -> i64 {
        self.w.start_ns
    }
}

impl Window for Pair {
    fn start_ns(&self) -> i64 {
        self.w.start_ns
    }
}

/// What a window looked like when it alerted: everything the evidence needs.
#[derive(Clone, Debug)]
pub struct WinSnapshot {
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    pub sources: Vec<([u8; 16], u64)>,
    pub more_sources: bool,
    pub probes: [u64; 7],
    /// The distinct sample, insertion order, and its level (rate 2**-level).
    pub sample: Vec<[u8; 16]>,
    pub sample_level: u32,
    pub first: Ipv6Packet,
    /// The packet that crossed the tier (set by the reducer for tier and wide outcomes,
    /// which happen while a packet is observed): the alert's sample packet.
    pub crossing: Option<Ipv6Packet>,
}

impl From<&Win> for WinSnapshot {
    fn from(w: &Win) -> Self {
        WinSnapshot {
            start_ns: w.start_ns,
            last_ns: w.last_ns,
            packets: w.packets,
            sources: w.sources.as_slice().to_vec(),
            more_sources: w.more_sources,
            probes: w.probes,
            sample: w.sample.items().collect(),
            sample_level: w.sample.level(),
            first: w.first.clone(),
            crossing: None,
        }
    }
}

/// What reaches Python. Rare: per alert or per closed window, never per packet.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A pair window reached tier `tier` (1-based, after every tier it passed) with the
    /// no-reply gate passed. Python checks suppression, then alerts.
    Tier {
        src64: [u8; 8],
        dst64: [u8; 8],
        tier: usize,
        estimate: f64,
        exact: bool,
        ratio: f64,
        responders: f64,
        source_targets: f64,
        win: WinSnapshot,
    },
    /// A source /64 passed the wide-scan thresholds and the gate. Python checks
    /// suppression, then alerts.
    Wide {
        src64: [u8; 8],
        targets: f64,
        prefixes: f64,
        exact: bool,
        ratio: f64,
        responders: f64,
        win: WinSnapshot,
    },
    /// A pair window ended (rolled over, due, evicted or flushed) with at least
    /// `observe_min_targets`: Python writes the observation (or counts it past the budget).
    Closed {
        src64: [u8; 8],
        dst64: [u8; 8],
        estimate: f64,
        exact: bool,
        sources: Vec<([u8; 16], u64)>,
        more_sources: bool,
        packets: u64,
        probes: [u64; 7],
        tier: usize,
        start_ns: i64,
        last_ns: i64,
        ratio: f64,
    },
    /// A fan-in window reached tier `tier` with at least `fanin_min_sources` source /64s
    /// and the no-reply gate passed. Python checks suppression, then alerts.
    FanIn {
        dst64: [u8; 8],
        tier: usize,
        targets: f64,
        exact: bool,
        sources: f64,
        ratio: f64,
        responders: f64,
        win: FanSnapshot,
    },
    /// A fan-in window of at least half `fanin_min_sources` source /64s (and two) ended
    /// with at least `observe_min_targets`: Python writes the observation (within the
    /// budget).
    FanClosed {
        dst64: [u8; 8],
        targets: f64,
        exact: bool,
        sources: f64,
        ratio: f64,
        packets: u64,
        probes: [u64; 7],
        tier: usize,
        start_ns: i64,
        last_ns: i64,
        src_sample: Vec<[u8; 16]>,
        src_level: u32,
    },
    /// Table `table` (index in `TABLE_NAMES`) evicted `evictions` windows since
    /// `start_ns`, at least `threshold` (`thrash_ratio` times its cap, at least one):
    /// once per table and window.
    Thrash {
        table: usize,
        evictions: u64,
        cap: usize,
        threshold: u64,
        start_ns: i64,
        ts_ns: i64,
        total: u64,
        /// The packet whose eviction crossed the threshold (the alert's packet).
        packet: Box<Ipv6Packet>,
    },
}

/// The sweep's per-packet state and logic.
pub struct SweepCore {
    pub cfg: Config,
    pub sources: Windows<[u8; 8], SrcRef>,
    pub pairs: Windows<[u8; 16], PairRef>,
    pub fanin: Windows<[u8; 8], FanRef>,
    recent: KeyedMap<[u8; 32], Recent>,
    thrash: [Thrash; 3],
}

fn fan_closed(cfg: &Config, dst64: [u8; 8], f: &FanRef, out: &mut Vec<Outcome>) {
    let Some(min) = cfg.observe_min else { return };
    let f = f.borrow();
    let targets = f.targets.estimate();
    let sources = f.sources.estimate();
    if targets < min || sources < (cfg.fanin_sources / 2.0).max(2.0) {
        // One or two source /64s are the pairs' observations already: a fan-in
        // observation needs half of fanin_min_sources.
        return;
    }
    out.push(Outcome::FanClosed {
        dst64,
        targets,
        exact: f.targets.is_exact() && f.sources.is_exact(),
        sources,
        ratio: f.no_reply_ratio(),
        packets: f.packets,
        probes: f.probes,
        tier: f.tier,
        start_ns: f.start_ns,
        last_ns: f.last_ns,
        src_sample: f.src_sample.items().collect(),
        src_level: f.src_sample.level(),
    });
}

/// A packet that answers rather than probes (issue 15's review: a busy server's answers
/// opened a pair and a fan-in window on each of its clients' /64s). Read from the ICMPv6
/// type, the TCP flags and the ports, no address: an echo reply, a SYN-ACK or a RST
/// (`Role::Reply`), and a UDP datagram or an established TCP segment from a well-known
/// port (below 1024: DNS, NTP, HTTPS and QUIC on 443) to an ephemeral one (1024 and up),
/// which is a server answering its client. A UDP or ACK scan sent from a well-known port
/// to high ports is not counted; SYN, echo and UDP probes of services (a well-known
/// destination port) are. ICMPv6 errors are judged by what they quote instead
/// (`answers_destination`): one about someone else's packet is unsolicited, a probe.
#[inline]
pub fn is_answer(pk: &Ipv6Packet) -> bool {
    match role(pk) {
        Role::Reply => !matches!(pk.icmp_type, Some(1..=4)),
        Role::Probe(_) => false,
        Role::Either | Role::Other => {
            matches!((pk.sport, pk.dport), (Some(s), Some(d)) if s < 1024 && d >= 1024)
        }
    }
}

fn closed(cfg: &Config, key: [u8; 16], p: &PairRef, out: &mut Vec<Outcome>) {
    let Some(min) = cfg.observe_min else { return };
    let p = p.borrow();
    let estimate = p.targets.estimate();
    if estimate < min {
        return;
    }
    let mut src64 = [0u8; 8];
    let mut dst64 = [0u8; 8];
    src64.copy_from_slice(&key[..8]);
    dst64.copy_from_slice(&key[8..]);
    let ratio = p.source.borrow().no_reply_ratio();
    out.push(Outcome::Closed {
        src64,
        dst64,
        estimate,
        exact: p.targets.is_exact(),
        sources: p.w.sources.as_slice().to_vec(),
        more_sources: p.w.more_sources,
        packets: p.w.packets,
        probes: p.w.probes,
        tier: p.tier,
        start_ns: p.w.start_ns,
        last_ns: p.w.last_ns,
        ratio,
    });
}

impl SweepCore {
    pub fn new(cfg: Config) -> Self {
        let t = |cap| Thrash {
            start_ns: i64::MIN,
            base: 0,
            min: thrash_threshold(cfg.thrash_ratio, cap),
            reported: false,
        };
        SweepCore {
            sources: Windows::new(cfg.max_sources, cfg.window_ns),
            pairs: Windows::new(cfg.max_pairs, cfg.window_ns),
            fanin: Windows::new(cfg.max_fanin, cfg.window_ns),
            recent: KeyedMap::default(),
            thrash: [t(cfg.max_sources), t(cfg.max_pairs), t(cfg.max_fanin)],
            cfg,
        }
    }

    /// Once per table and window: a table that evicted `thrash_ratio` times its cap.
    /// Three compares per counted packet; an outcome only when it thrashes.
    #[inline]
    fn check_thrash(&mut self, pk: &Ipv6Packet, ts: i64, out: &mut Vec<Outcome>) {
        let ev = [
            self.sources.table.evictions(),
            self.pairs.table.evictions(),
            self.fanin.table.evictions(),
        ];
        let caps = [self.cfg.max_sources, self.cfg.max_pairs, self.cfg.max_fanin];
        for (i, t) in self.thrash.iter_mut().enumerate() {
            if ts.saturating_sub(t.start_ns) >= self.cfg.window_ns {
                *t = Thrash {
                    start_ns: ts,
                    base: ev[i],
                    min: t.min,
                    reported: false,
                };
            }
            if !t.reported && ev[i] - t.base >= t.min {
                t.reported = true;
                out.push(Outcome::Thrash {
                    table: i,
                    evictions: ev[i] - t.base,
                    cap: caps[i],
                    threshold: t.min,
                    start_ns: t.start_ns,
                    ts_ns: ts,
                    total: ev[i],
                    packet: Box::new(pk.clone()),
                });
            }
        }
    }

    /// An answer only says that its source is alive: it feeds the responders of the
    /// windows already open for its destination's /64 (the prober's source window) and
    /// its own /64 (a fan-in window on it), and opens nothing. Two lookups, and the
    /// address hash only when one of them hits.
    fn on_answer(&mut self, pk: &Ipv6Packet) {
        let (src, dst) = (&pk.ip.src, &pk.ip.dst);
        let src64: [u8; 8] = src[..8].try_into().expect("8 bytes");
        let dst64: [u8; 8] = dst[..8].try_into().expect("8 bytes");
        let back = self.sources.table.peek(&dst64);
        let fan = self.fanin.table.peek(&src64);
        if back.is_none() && fan.is_none() {
            return;
        }
        let h_src = hash_bytes(src);
        if let Some(back) = back {
            back.borrow_mut().responders.add(h_src);
        }
        if let Some(fan) = fan {
            fan.borrow_mut().responders.add(h_src);
        }
    }

    /// Count one packet; push whatever Python must act on to `out`, in Python's order.
    pub fn on_packet(&mut self, pk: &Ipv6Packet, out: &mut Vec<Outcome>) {
        let (src, dst) = (&pk.ip.src, &pk.ip.dst);
        if !addressed(pk) {
            return; // multicast, link-local and Neighbor Discovery are not probing
        }
        let ts = pk.meta.ts_ns;
        let mut flow = [0u8; 32];
        flow[..16].copy_from_slice(src);
        flow[16..].copy_from_slice(dst);
        let span = self.cfg.window_ns;
        match self.recent.get(&flow) {
            Some(Recent::Probe(p, s)) => {
                let (mut p, mut s) = (p.borrow_mut(), s.borrow_mut());
                if ts.saturating_sub(p.w.start_ns) < span && ts.saturating_sub(s.w.start_ns) < span
                {
                    // A known target in the current windows: nothing new to count.
                    p.w.last_ns = ts;
                    s.w.last_ns = ts;
                    p.w.packets += 1;
                    s.w.packets += 1;
                    return;
                }
            }
            Some(&Recent::Answer(seen)) if ts.saturating_sub(seen) < span => return,
            _ => {}
        }
        // Only a flow's first packet (per window) meets this test, after the cache.
        let what = if is_answer(pk) {
            // A server's answers to its clients open no window: its clients' /64s would
            // each get a pair and a fan-in window from it, and a busy server's would
            // thrash both tables.
            self.on_answer(pk);
            Recent::Answer(ts)
        } else {
            match self.on_probe(pk, out) {
                Some((p, s)) => Recent::Probe(p, s),
                None => return,
            }
        };
        // Cleared when full: cheaper than an LRU, and a cleared flow only counts once more.
        if self.recent.len() >= RECENT_PAIRS {
            self.recent.clear();
        }
        self.recent.insert(flow, what);
    }

    /// Count a packet that may be a probe into its source, pair and fan-in windows (None
    /// for an ICMPv6 error about the destination's own packet: a reply, counted nowhere).
    #[inline]
    fn on_probe(&mut self, pk: &Ipv6Packet, out: &mut Vec<Outcome>) -> Option<(PairRef, SrcRef)> {
        let (src, dst) = (&pk.ip.src, &pk.ip.dst);
        let ts = pk.meta.ts_ns;
        let mut src64 = [0u8; 8];
        let mut dst64 = [0u8; 8];
        src64.copy_from_slice(&src[..8]);
        dst64.copy_from_slice(&dst[..8]);
        let h_src = hash_bytes(src);
        // A packet to a tracked source /64 is a reply to it, whatever it is.
        if let Some(back) = self.sources.table.peek(&dst64) {
            back.borrow_mut().responders.add(h_src);
        }
        // And a packet from a /64 under fan-in watch is an answer from one of its hosts.
        if let Some(fan) = self.fanin.table.peek(&src64) {
            fan.borrow_mut().responders.add(h_src);
        }
        if answers_destination(pk) {
            return None; // an ICMPv6 error about the destination's own packet is a reply
        }
        let h_iid = mix64(u64::from_be_bytes(dst[8..].try_into().expect("8 bytes")));
        let h_dst = mix64(h_iid ^ u64::from_be_bytes(dst64));
        let kind = probe_kind(pk);
        let cfg = &self.cfg;

        let s_ref = self.sources.current(
            src64,
            ts,
            |t| {
                Rc::new(RefCell::new(Source {
                    w: Win::new(t, pk),
                    targets: DistinctCounter::new(cfg.exact_up_to, cfg.src_precision),
                    prefixes: DistinctCounter::new(cfg.exact_up_to, cfg.src_precision),
                    responders: DistinctCounter::new(cfg.exact_up_to, cfg.src_precision),
                    swept: false,
                    wide: false,
                }))
            },
            |_, _| {}, // a source window's end is not reported
        );
        {
            let mut s = s_ref.borrow_mut();
            s.w.last_ns = ts;
            s.w.packets += 1;
            s.w.probes[kind] += 1;
            let new = s.targets.add(h_dst);
            s.w.name(src, new);
            if new {
                s.w.sample.add(h_dst, *dst);
                s.prefixes.add(hash_bytes(&dst64));
            }
        } // released: closing a pair below reads its source, which may be this one

        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&src64);
        key[8..].copy_from_slice(&dst64);
        let p_ref = self.pairs.current(
            key,
            ts,
            |t| {
                Rc::new(RefCell::new(Pair {
                    w: Win::new(t, pk),
                    targets: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
                    tier: 0,
                    source: s_ref.clone(),
                }))
            },
            |k, p| closed(cfg, k, &p, out),
        );
        {
            let mut p = p_ref.borrow_mut();
            p.w.last_ns = ts;
            p.w.packets += 1;
            p.w.probes[kind] += 1;
            let new = p.targets.add(h_iid);
            p.w.name(src, new);
            if new {
                p.w.sample.add(h_iid, *dst);
                let mut s = s_ref.borrow_mut();
                if p.tier < cfg.tiers.len() && p.targets.estimate() >= cfg.tiers[p.tier] {
                    tier_crossed(cfg, src64, dst64, &mut p, &mut s, out);
                } else if !s.wide && !s.swept {
                    check_wide(cfg, src64, &mut s, out);
                }
            }
        }

        // Fan-in: the destination /64 across every source, with the hashes made above.
        let f_ref = self.fanin.current(
            dst64,
            ts,
            |t| {
                Rc::new(RefCell::new(Fan {
                    start_ns: t,
                    last_ns: t,
                    packets: 0,
                    probes: [0; 7],
                    first: pk.clone(),
                    targets: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
                    sources: DistinctCounter::new(cfg.exact_up_to, cfg.src_precision),
                    responders: DistinctCounter::new(cfg.exact_up_to, cfg.src_precision),
                    sample: DistinctSample::new(PATTERN_SAMPLE),
                    src_sample: DistinctSample::new(SOURCE_SAMPLE),
                    tier: 0,
                }))
            },
            |k, f| fan_closed(cfg, k, &f, out),
        );
        {
            let mut f = f_ref.borrow_mut();
            f.last_ns = ts;
            f.packets += 1;
            f.probes[kind] += 1;
            let new_target = f.targets.add(h_iid);
            if new_target {
                f.sample.add(h_iid, *dst);
            }
            let new_source = f.sources.add(mix64(u64::from_be_bytes(src64)));
            f.src_sample.add(h_src, *src);
            if (new_target || new_source)
                && f.tier < cfg.tiers.len()
                && f.targets.estimate() >= cfg.tiers[f.tier]
                && f.sources.estimate() >= cfg.fanin_sources
            {
                fan_crossed(cfg, dst64, &mut f, out);
            }
        }
        self.check_thrash(pk, ts, out);
        Some((p_ref, s_ref))
    }

    /// Packet time reached `now_ns`: close the windows a span old (sources, then pairs,
    /// as `Detector.tick` walks the tables in the order they were made).
    pub fn tick(&mut self, now_ns: i64, out: &mut Vec<Outcome>) {
        self.sources.close_due(now_ns);
        for (k, p) in self.pairs.close_due(now_ns) {
            closed(&self.cfg, k, &p, out);
        }
        for (k, f) in self.fanin.close_due(now_ns) {
            fan_closed(&self.cfg, k, &f, out);
        }
    }

    /// End of input: close every window. The recent-pairs cache is kept, as in Python.
    pub fn flush(&mut self, out: &mut Vec<Outcome>) {
        self.sources.close_all();
        for (k, p) in self.pairs.close_all() {
            closed(&self.cfg, k, &p, out);
        }
        for (k, f) in self.fanin.close_all() {
            fan_closed(&self.cfg, k, &f, out);
        }
    }

    /// (size, cap, evictions) of the source, pair and fan-in tables.
    pub fn table_stats(&self) -> [(usize, usize, u64); 3] {
        [
            stats(&self.sources.table),
            stats(&self.pairs.table),
            stats(&self.fanin.table),
        ]
    }
}

fn stats<K: Copy + std::hash::Hash + Eq, V>(t: &Lru<K, V>) -> (usize, usize, u64) {
    (t.len(), t.cap(), t.evictions())
}

/// Every tier `p` reached since the last one, if the no-reply gate allows.
fn tier_crossed(
    cfg: &Config,
    src64: [u8; 8],
    dst64: [u8; 8],
    p: &mut Pair,
    s: &mut Source,
    out: &mut Vec<Outcome>,
) {
    s.swept = true;
    let ratio = s.no_reply_ratio();
    if ratio < cfg.min_no_reply {
        return; // checked again on the next new target: replies may stop
    }
    let estimate = p.targets.estimate();
    while p.tier < cfg.tiers.len() && estimate >= cfg.tiers[p.tier] {
        p.tier += 1;
    }
    out.push(Outcome::Tier {
        src64,
        dst64,
        tier: p.tier,
        estimate,
        exact: p.targets.is_exact(),
        ratio,
        responders: s.responders.estimate(),
        source_targets: s.targets.estimate(),
        win: WinSnapshot::from(&p.w),
    });
}

/// Every tier a fan-in window reached since the last one, if the no-reply gate allows.
fn fan_crossed(cfg: &Config, dst64: [u8; 8], f: &mut Fan, out: &mut Vec<Outcome>) {
    let ratio = f.no_reply_ratio();
    if ratio < cfg.min_no_reply {
        return; // checked again on the next new target or source
    }
    let targets = f.targets.estimate();
    while f.tier < cfg.tiers.len() && targets >= cfg.tiers[f.tier] {
        f.tier += 1;
    }
    out.push(Outcome::FanIn {
        dst64,
        tier: f.tier,
        targets,
        exact: f.targets.is_exact() && f.sources.is_exact(),
        sources: f.sources.estimate(),
        ratio,
        responders: f.responders.estimate(),
        win: FanSnapshot::from(&*f),
    });
}

fn check_wide(cfg: &Config, src64: [u8; 8], s: &mut Source, out: &mut Vec<Outcome>) {
    let targets = s.targets.estimate();
    if targets < cfg.wide_targets || s.prefixes.estimate() < cfg.wide_prefixes {
        return;
    }
    let ratio = s.no_reply_ratio();
    if ratio < cfg.min_no_reply {
        return;
    }
    s.wide = true;
    out.push(Outcome::Wide {
        src64,
        targets,
        prefixes: s.prefixes.estimate(),
        exact: s.targets.is_exact() && s.prefixes.is_exact(),
        ratio,
        responders: s.responders.estimate(),
        win: WinSnapshot::from(&s.w),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn cfg() -> Config {
        Config {
            window_ns: 300_000_000_000,
            tiers: [100.0, 1000.0, 3000.0],
            wide_prefixes: 64.0,
            wide_targets: 128.0,
            min_no_reply: 0.5,
            exact_up_to: 128,
            precision: 12,
            src_precision: 10,
            max_sources: 8192,
            max_pairs: 8192,
            observe_min: Some(16.0),
            fanin_sources: 8.0,
            max_fanin: 4096,
            thrash_ratio: 1.0,
        }
    }

    fn addr(prefix: u64, iid: u64) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&prefix.to_be_bytes());
        a[8..].copy_from_slice(&iid.to_be_bytes());
        a
    }

    /// A UDP packet with everything else empty.
    fn udp(ts_ns: i64, src: [u8; 16], dst: [u8; 16]) -> Ipv6Packet {
        use crate::decode::events::{Ipv6Header, Meta};
        Ipv6Packet {
            meta: Meta {
                ts_ns,
                linktype: 1,
                wire_len: 62,
                ..Meta::default()
            },
            ip: Ipv6Header {
                src,
                dst,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 8,
                chain: Default::default(),
                upper: 17,
                fragment: None,
                tunnels: Default::default(),
            },
            sport: Some(40000),
            dport: Some(161),
            icmp_type: None,
            icmp_code: None,
            tcp_flags: None,
            quoted_src: None,
        }
    }

    /// A packet with these ports: TCP with `flags`, or UDP (`flags` None).
    fn ported(
        ts_ns: i64,
        src: [u8; 16],
        dst: [u8; 16],
        sport: u16,
        dport: u16,
        flags: Option<u8>,
    ) -> Ipv6Packet {
        let mut p = udp(ts_ns, src, dst);
        (p.sport, p.dport, p.tcp_flags) = (Some(sport), Some(dport), flags);
        if flags.is_some() {
            p.ip.upper = 6;
        }
        p
    }

    const SCANNER: u64 = 0x2001_0db8_0bad_0000;
    const TARGETS: u64 = 0x2001_0db8_0001_0000;

    fn tiers_of(out: &[Outcome]) -> Vec<usize> {
        out.iter()
            .filter_map(|o| match o {
                Outcome::Tier { tier, .. } => Some(*tier),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tiers_escalate_once_each_and_repeats_count_nothing() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..5000u64 {
            let pk = udp(i as i64 * 1000, addr(SCANNER, 1), addr(TARGETS, i * 7 + 1));
            core.on_packet(&pk, &mut out);
            core.on_packet(&pk, &mut out); // a repeat: absorbed by the recent-pairs cache
        }
        assert_eq!(tiers_of(&out), [1, 2, 3]);
        match &out[0] {
            Outcome::Tier {
                estimate,
                exact,
                ratio,
                win,
                ..
            } => {
                assert_eq!((*estimate, *exact, *ratio), (100.0, true, 1.0));
                assert_eq!(win.packets, 199); // the 100th target's first packet
                assert_eq!(win.sources, vec![(addr(SCANNER, 1), 100)]);
                // Probe kinds count packets that reached the windows, not repeats.
                assert_eq!(win.probes[5], 100);
                assert!(win.sample.len() <= 64 && win.sample_level >= 1);
            }
            o => panic!("{o:?}"),
        }
        // Not a wide scan: one destination /64 reached a tier.
        assert!(!out.iter().any(|o| matches!(o, Outcome::Wide { .. })));
        let mut end = Vec::new();
        core.flush(&mut end);
        assert!(matches!(
            &end[..],
            [Outcome::Closed {
                tier: 3,
                packets: 10000,
                ..
            }]
        ));
        assert_eq!(
            core.table_stats(),
            [(0, 8192, 0), (0, 8192, 0), (0, 4096, 0)]
        );
    }

    #[test]
    fn answered_targets_hold_the_gate() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..300u64 {
            let (s, d) = (addr(SCANNER, 1), addr(TARGETS, i + 1));
            core.on_packet(&udp(i as i64 * 10, s, d), &mut out);
            core.on_packet(&udp(i as i64 * 10 + 1, d, s), &mut out);
        }
        assert_eq!(tiers_of(&out), Vec::<usize>::new());
    }

    #[test]
    fn few_targets_in_many_prefixes_is_one_wide_scan() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..400u64 {
            let d = addr(TARGETS + (i % 100), 0x10 + i);
            core.on_packet(&udp(i as i64, addr(SCANNER, 1), d), &mut out);
        }
        let wide: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Wide {
                    targets, prefixes, ..
                } => Some((*targets, *prefixes)),
                _ => None,
            })
            .collect();
        assert_eq!(wide, [(128.0, 100.0)]);
    }

    #[test]
    fn filters_skip_multicast_link_local_nd_and_quoted_replies() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        let mut mc = udp(0, addr(SCANNER, 1), addr(0xff02_0000_0000_0000, 1));
        core.on_packet(&mc, &mut out);
        mc.ip.dst = addr(0xfe80_0000_0000_0000, 1);
        core.on_packet(&mc, &mut out);
        let mut nd = udp(0, addr(SCANNER, 1), addr(TARGETS, 1));
        nd.icmp_type = Some(135);
        core.on_packet(&nd, &mut out);
        let mut quoted = udp(0, addr(SCANNER, 1), addr(TARGETS, 1));
        quoted.quoted_src = Some(quoted.ip.dst);
        core.on_packet(&quoted, &mut out);
        assert_eq!(core.table_stats()[0].0 + core.table_stats()[1].0, 0);
    }

    #[test]
    fn a_pair_keeps_the_source_window_it_started_with() {
        // Two source tables' worth of other sources evict the scanner's source window;
        // its pair window still reads that one for the no-reply ratio when it closes.
        let mut c = cfg();
        c.max_sources = 16;
        let mut core = SweepCore::new(c);
        let mut out = Vec::new();
        for i in 0..20u64 {
            core.on_packet(
                &udp(i as i64, addr(SCANNER, 1), addr(TARGETS, i + 1)),
                &mut out,
            );
        }
        for i in 0..32u64 {
            let s = addr(0x2001_0db8_7000_0000 + i, 1);
            core.on_packet(&udp(100 + i as i64, s, addr(TARGETS, 1)), &mut out);
        }
        assert_eq!(core.table_stats()[0], (16, 16, 17));
        out.clear();
        core.flush(&mut out);
        // (The destination /64's fan-in window, 33 source /64s, closes after it.)
        assert!(matches!(
            &out[..],
            [Outcome::Closed { estimate, ratio, .. }, Outcome::FanClosed { .. }]
                if *estimate == 20.0 && *ratio == 1.0
        ));
    }

    fn fanins(out: &[Outcome]) -> Vec<(usize, f64, f64)> {
        out.iter()
            .filter_map(|o| match o {
                Outcome::FanIn {
                    tier,
                    targets,
                    sources,
                    ..
                } => Some((*tier, *targets, *sources)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_random_source_per_probe_is_one_fan_in_sweep_and_the_tables_thrash() {
        let mut c = cfg();
        c.max_sources = 256;
        c.max_pairs = 256;
        let mut core = SweepCore::new(c);
        let mut out = Vec::new();
        for i in 0..2000u64 {
            let s = addr(0x2001_0db8_0000_0000 | (mix64(i) >> 32), mix64(i ^ 7));
            core.on_packet(&udp(i as i64 * 1000, s, addr(TARGETS, mix64(!i))), &mut out);
        }
        // Tiers 100 and 1000 (the test config's); no per-source tier, no wide scan.
        let f = fanins(&out);
        assert_eq!((f.len(), f[0]), (2, (1, 100.0, 100.0)));
        assert!(f[1].0 == 2 && (f[1].1 - 1000.0).abs() < 50.0, "{f:?}"); // sketches now
        assert_eq!(tiers_of(&out), Vec::<usize>::new());
        let thrash: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Thrash {
                    table,
                    evictions,
                    cap,
                    ..
                } => Some((*table, *evictions, *cap)),
                _ => None,
            })
            .collect();
        assert_eq!(thrash, [(0, 256, 256), (1, 256, 256)]); // once per table and window
        match out.iter().find(|o| matches!(o, Outcome::FanIn { .. })) {
            Some(Outcome::FanIn { ratio, win, .. }) => {
                assert_eq!(*ratio, 1.0);
                assert!(win.src_sample.len() > 16 && win.src_sample.len() <= SOURCE_SAMPLE);
            }
            o => panic!("{o:?}"),
        }
        // The fan-in window closes into one observation at the end.
        out.clear();
        core.flush(&mut out);
        let closed: Vec<_> = out
            .iter()
            .filter(|o| matches!(o, Outcome::FanClosed { .. }))
            .collect();
        assert_eq!(closed.len(), 1);
    }

    #[test]
    fn thrashing_is_reported_once_per_table_and_window() {
        let mut c = cfg();
        c.max_sources = 64;
        c.max_pairs = 64;
        let mut core = SweepCore::new(c);
        let mut out = Vec::new();
        // 1000 random sources in each of two windows (300 s apart): 64 evictions is
        // thrashing, reported once per table in each window, not per eviction.
        for i in 0..2000u64 {
            let ts = (i / 1000) as i64 * 300_000_000_000 + (i % 1000) as i64 * 1000;
            let s = addr(0x2001_0db8_0000_0000 | (mix64(i) >> 32), 1);
            core.on_packet(&udp(ts, s, addr(TARGETS, mix64(!i))), &mut out);
        }
        let thrash: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Thrash {
                    table, evictions, ..
                } => Some((*table, *evictions)),
                _ => None,
            })
            .collect();
        assert_eq!(thrash, [(0, 64), (1, 64), (0, 64), (1, 64)]);
    }

    #[test]
    fn a_new_source_64_every_99_probes_is_a_fan_in_sweep() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..2000u64 {
            let s = addr(0x2001_0db8_4000_0000 + i / 99, 1);
            core.on_packet(&udp(i as i64 * 1000, s, addr(TARGETS, i + 1)), &mut out);
        }
        assert_eq!(tiers_of(&out), Vec::<usize>::new()); // 99 each: below medium
        let f = fanins(&out);
        assert_eq!(f[0].0, 1);
        assert!(f[0].1 >= 100.0 && f[0].2 >= 8.0, "{f:?}"); // once 8 source /64s did it
    }

    #[test]
    fn answered_fan_in_and_a_busy_server_stay_silent() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..3000u64 {
            // Clients from random /64s to 300 servers of one /64, each answered...
            let c = addr(0x2001_0db8_0000_0000 | (mix64(i) >> 32), 9);
            let srv = addr(TARGETS, 1 + i % 300);
            core.on_packet(&udp(i as i64 * 1000, c, srv), &mut out);
            core.on_packet(&udp(i as i64 * 1000 + 1, srv, c), &mut out);
            // ...and thousands of clients of one server.
            let one = addr(0x2001_0db8_0002_0000, 0x80);
            core.on_packet(&udp(i as i64 * 1000 + 2, c, one), &mut out);
        }
        assert_eq!(fanins(&out), Vec::<(usize, f64, f64)>::new());
    }

    #[test]
    fn answers_are_told_from_probes_by_flags_and_ports() {
        let (a, b) = (addr(SCANNER, 1), addr(TARGETS, 1));
        let answer = |p: &Ipv6Packet| is_answer(p);
        assert!(answer(&ported(0, a, b, 443, 40000, Some(0x12)))); // SYN-ACK
        assert!(answer(&ported(0, a, b, 40000, 443, Some(0x14)))); // RST, any ports
        assert!(answer(&ported(0, a, b, 443, 40000, Some(0x10)))); // a server's ACK
        assert!(answer(&ported(0, a, b, 53, 40000, None))); // a DNS answer
        assert!(answer(&ported(0, a, b, 443, 50000, None))); // QUIC
        assert!(!answer(&ported(0, a, b, 40000, 443, Some(0x02)))); // SYN
        assert!(!answer(&ported(0, a, b, 53, 40000, Some(0x02)))); // SYN from port 53
        assert!(!answer(&ported(0, a, b, 40000, 443, Some(0x10)))); // a client's ACK
        assert!(!answer(&ported(0, a, b, 40000, 53, None))); // a DNS query
        assert!(!answer(&ported(0, a, b, 123, 123, None))); // NTP peers, either way
        let mut echo = udp(0, a, b);
        (echo.ip.upper, echo.sport, echo.dport) = (58, None, None);
        echo.icmp_type = Some(128);
        assert!(!answer(&echo));
        echo.icmp_type = Some(129);
        assert!(answer(&echo));
        echo.icmp_type = Some(1); // judged by what it quotes (answers_destination)
        assert!(!answer(&echo));
    }

    #[test]
    fn busy_servers_answering_100k_clients_open_no_window() {
        // 32 servers in four /64s answer 100,000 clients, each in its own /64, with
        // SYN-ACKs, established ACKs and DNS or QUIC datagrams (the servers' side of an
        // asymmetric route). Every answer used to open a pair and a fan-in window on the
        // client's /64: both tables thrashed. Now nothing opens and nothing is reported.
        let mut c = cfg();
        c.max_pairs = 1024;
        c.max_fanin = 1024;
        let mut core = SweepCore::new(c);
        let mut out = Vec::new();
        for i in 0..100_000u64 {
            let ts = i as i64 * 2_000_000; // 200 s: one window
            let client = addr(0x2001_0db8_0000_0000 | (mix64(i) >> 32), mix64(i ^ 3));
            let server = addr(0x2001_0db8_0001_0000 + i % 4, 0x80 + i % 8);
            let port = 1024 + (mix64(i ^ 9) % 64512) as u16;
            core.on_packet(&ported(ts, server, client, 443, port, Some(0x12)), &mut out);
            core.on_packet(
                &ported(ts + 1, server, client, 443, port, Some(0x18)),
                &mut out,
            );
            let sport = if i % 2 == 1 { 53 } else { 443 };
            core.on_packet(&ported(ts + 2, server, client, sport, port, None), &mut out);
        }
        assert!(out.is_empty(), "{:?}", &out[..out.len().min(3)]);
        assert_eq!(
            core.table_stats(),
            [(0, 8192, 0), (0, 1024, 0), (0, 1024, 0)]
        );
    }

    #[test]
    fn an_answer_counts_its_sender_as_a_responder_of_open_windows_only() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        let (scanner, target) = (addr(SCANNER, 1), addr(TARGETS, 1));
        // Nothing open yet: the SYN-ACK neither opens a window nor is remembered as one.
        core.on_packet(&ported(0, target, scanner, 22, 40000, Some(0x12)), &mut out);
        assert_eq!(core.table_stats().map(|t| t.0), [0, 0, 0]);
        // The scanner probes: its source window and the target /64's fan-in window open;
        // the next answer (a RST from another host) counts in both.
        core.on_packet(
            &ported(10, scanner, target, 40000, 22, Some(0x02)),
            &mut out,
        );
        let other = addr(TARGETS, 2);
        core.on_packet(&ported(20, other, scanner, 22, 40000, Some(0x14)), &mut out);
        assert_eq!(core.table_stats().map(|t| t.0), [1, 1, 1]);
        let s = core
            .sources
            .table
            .peek(&addr(SCANNER, 0)[..8].try_into().unwrap());
        assert_eq!(s.unwrap().borrow().responders.estimate(), 1.0);
        let f = core
            .fanin
            .table
            .peek(&addr(TARGETS, 0)[..8].try_into().unwrap());
        assert_eq!(f.unwrap().borrow().responders.estimate(), 1.0);
    }

    #[test]
    fn a_million_random_sources_stay_in_bounded_tables() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..1_000_000u64 {
            let s = addr(0x2001_0000_0000_0000 | (mix64(i) >> 16), mix64(i ^ 0xabc));
            core.on_packet(&udp(i as i64 * 1000, s, addr(TARGETS, mix64(!i))), &mut out);
        }
        let [s, p, f] = core.table_stats();
        assert_eq!((s.0, p.0, f.0), (8192, 8192, 1));
        assert!(s.2 > 990_000 && p.2 > 990_000 && f.2 == 0);
        let tiers: Vec<usize> = fanins(&out).iter().map(|t| t.0).collect();
        assert_eq!(tiers, [1, 2, 3]);
    }

    fn peak_rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// `cargo test --release -- --ignored bench_random_sources --nocapture`: per-packet
    /// cost of the reducer alone over 10M probes, each from a new random source /64 to a
    /// new random target (every packet makes a source and a pair window and evicts two).
    #[test]
    #[ignore]
    fn bench_random_sources() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        let n: u64 = std::env::var("SWEEP_BENCH_PACKETS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000_000);
        let t0 = Instant::now();
        for i in 0..n {
            let s = addr(0x2001_0000_0000_0000 | (mix64(i) >> 16), mix64(i ^ 0xabc));
            let d = addr(TARGETS | (mix64(i ^ 0x5a5a) >> 48), mix64(!i));
            core.on_packet(&udp(i as i64 * 1000, s, d), &mut out);
            out.clear();
        }
        let took = t0.elapsed().as_secs_f64();
        println!(
            "bench: {n} random-source probes in {took:.2} s: {:.0} packets/s, {:.0} ns/packet, \
             peak RSS {} KiB, tables {:?}",
            n as f64 / took,
            took * 1e9 / n as f64,
            peak_rss_kib(),
            core.table_stats()
        );
    }

    /// One sweep of 10M targets in one /64 (the `make bench` memory run, natively).
    #[test]
    #[ignore]
    fn bench_one_sweep() {
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        let n = 10_000_000u64;
        let t0 = Instant::now();
        for i in 0..n {
            let d = addr(TARGETS, i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            core.on_packet(&udp(i as i64 * 10_000, addr(SCANNER, 1), d), &mut out);
        }
        let took = t0.elapsed().as_secs_f64();
        println!(
            "bench: one sweep of {n} targets in {took:.2} s: {:.0} packets/s, peak RSS {} KiB, \
             outcomes {}",
            n as f64 / took,
            peak_rss_kib(),
            out.len()
        );
    }

    /// Peak RSS for 1M random-source packets, and for the memory driver: many
    /// source /64s each sending 99 probes (below `exact_up_to`) to its own /64, so every
    /// one of the 8192 pair windows holds an exact set of 99 hashes.
    #[test]
    #[ignore]
    fn rss_random_sources_and_99_probes_per_source() {
        let base = peak_rss_kib();
        let mut core = SweepCore::new(cfg());
        let mut out = Vec::new();
        for i in 0..1_000_000u64 {
            let s = addr(0x2001_0000_0000_0000 | (mix64(i) >> 16), mix64(i ^ 0xabc));
            let d = addr(TARGETS | (mix64(i ^ 0x5a5a) >> 48), mix64(!i));
            core.on_packet(&udp(i as i64 * 1000, s, d), &mut out);
            out.clear();
        }
        let random = peak_rss_kib();
        println!("rss: 1M random-source packets: peak RSS {random} KiB (start {base} KiB)");
        drop(core);
        let mut core = SweepCore::new(cfg());
        let sources = 20_000u64;
        let mut ts = 0i64;
        for src in 0..sources {
            for t in 0..99u64 {
                let s = addr(0x2001_0db8_4000_0000 + src, 1);
                let d = addr(0x2001_0db8_9000_0000 + src, mix64(t + 1));
                core.on_packet(&udp(ts, s, d), &mut out);
                ts += 1000;
                out.clear();
            }
        }
        println!(
            "rss: {sources} source /64s x 99 probes: peak RSS {} KiB, tables {:?}",
            peak_rss_kib(),
            core.table_stats()
        );
    }
}
