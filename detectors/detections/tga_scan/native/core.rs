//! The per-packet half of `ipv6.tga_scan` (`detectors/detections/tga_scan/__init__.py`).
//!
//! Owns, per (source /64, destination /48) and packet-time window: the distinct targets,
//! the distinct destination /64s touched, the distinct hosts of that /48 that answered
//! the source /64 (the no-reply ratio), the probe kinds, a bounded distinct sample of the
//! targets (Python computes the nibble-position entropy profile from it) and the first
//! packet; and the gate: enough targets over enough /64s, dense enough per /64, mostly
//! unanswered. It hands out one `Outcome::Crossing` per window that passed the gate;
//! Python checks suppression and writes the alert, so its work grows with alerts, never
//! packets.
//!
//! Per packet it runs the shared probe filters (`crate::reduce::probe`) first: ICMPv6
//! echo requests, TCP segments opening something (SYN, FIN, NULL, Xmas) and UDP datagrams
//! that `probe::udp_role` calls probes (to a privileged port, or to the lower of two
//! unprivileged ones) are probes; echo replies, SYN-ACKs, RSTs, ICMPv6 errors and UDP
//! datagrams it calls replies (a service answering a client's ephemeral port) are
//! replies, which only update a window already open (never insert); UDP between equal
//! ports (NTP 123, IKE 500 and 4500 peers) is neither; everything else returns after a
//! few byte comparisons. A probe is hashed once for its table key and once for its
//! target; no allocation unless it opens a window.
//!
//! Admission (the doorkeeper, then a victim by value): once the table is full, a key
//! that is not in it is refused on its first probe, remembered with a count of its
//! probes in a direct-mapped array of 32-bit entries (a 24-bit fingerprint, an 8-bit
//! count). From its second probe on it may take the slot of the window of least value
//! among the `CANDIDATES` least recently used (its distinct targets, plus the probes it
//! showed at the doorkeeper before it got its slot; 0 once its span is over), and only
//! if that value is below the probes the newcomer has shown: else it is refused again
//! and keeps counting. A flood of single probes from random sources is refused
//! outright; a flood of keys sending k probes each only replaces windows worth less than
//! k, never a scanner's window once it has shown k targets (TinyLFU's admission: a
//! newcomer must have been seen more often than the victim). Keys refused and windows
//! evicted within one window span, at least `thrash_ratio` times the cap, are reported
//! once (`Outcome::Thrash`) instead of going silent. Below the cap nothing changes and
//! nothing is spent: the doorkeeper is consulted only by a probe that misses a full
//! table.

use crate::decode::events::Ipv6Packet;
use crate::reduce::probe::{
    self, addressed, answers_destination, halves, probe_kind, role, udp_role, Role,
};
use crate::reduce::sketch::{hash_bytes, mix64, DistinctCounter, DistinctSample};
use crate::reduce::windows::{thrash_threshold, KeyedState, Lru};
use std::hash::BuildHasher;

/// Distinct targets kept per window for the entropy profile and the pattern classes.
pub const SAMPLE: usize = 128;
/// Doorkeeper fingerprints per table slot: a first probe's fingerprint survives some
/// 8 x cap other refused keys, so a scanner's second probe finds it even in a flood.
pub const DOORKEEPER_PER_SLOT: usize = 8;
/// Least recently used windows a newcomer of the full table may replace: the one of
/// least value among them. A few, so a valuable window at the old end is passed over
/// for a worthless one behind it; few, so admission stays a handful of reads.
pub const CANDIDATES: usize = 4;

/// (source /64, destination /48).
pub type Key = [u8; 14];

/// The thresholds, resolved by Python from `spec.yaml` and the policy.
#[derive(Clone, Debug)]
pub struct Config {
    pub window_ns: i64,
    pub min_targets: f64,
    pub min_prefixes: f64,
    pub min_density: f64,
    pub min_no_reply: f64,
    pub exact_up_to: usize,
    pub precision: u32,
    pub max_tracked: usize,
    /// Keys refused plus windows evicted in one window span, as a multiple of the cap,
    /// that is thrashing.
    pub thrash_ratio: f64,
}

/// One source /64's window on one destination /48.
#[derive(Debug)]
pub struct Win {
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    /// Probes per kind (`probe::PROBE_NAMES`).
    pub probes: [u64; 7],
    pub targets: DistinctCounter,
    pub prefixes: DistinctCounter,
    pub responders: DistinctCounter,
    pub sample: DistinctSample<[u8; 16]>,
    pub first: Ipv6Packet,
    pub alerted: bool,
    /// Probes the key showed at the doorkeeper before it got a slot (not in `targets`):
    /// part of the window's value, so a scanner admitted under a flood is not the next
    /// victim of the flood's keys.
    pub credit: u32,
}

impl Win {
    fn new(cfg: &Config, ts: i64, p: &Ipv6Packet) -> Box<Self> {
        Box::new(Win {
            start_ns: ts,
            last_ns: ts,
            packets: 0,
            probes: [0; 7],
            targets: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
            prefixes: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
            responders: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
            sample: DistinctSample::new(SAMPLE),
            first: p.clone(),
            alerted: false,
            credit: 0,
        })
    }

    /// What a newcomer must beat to take this window's slot: its distinct targets plus
    /// its doorkeeper credit; 0 once its span is over (it would roll over anyway).
    fn value(&self, cfg: &Config, ts: i64) -> f64 {
        if ts.saturating_sub(self.start_ns) >= cfg.window_ns {
            return 0.0;
        }
        self.targets.estimate() + f64::from(self.credit)
    }

    pub fn no_reply_ratio(&self) -> f64 {
        probe::no_reply_ratio(self.targets.estimate(), self.responders.estimate())
    }
}

/// A window that passed the gate: everything the evidence needs.
#[derive(Clone, Debug)]
pub struct Crossing {
    pub src64: [u8; 8],
    pub dst48: [u8; 6],
    pub targets: f64,
    pub prefixes: f64,
    pub exact: bool,
    pub ratio: f64,
    pub responders: f64,
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    pub probes: [u64; 7],
    /// The distinct sample, insertion order, and its level (rate 2**-level).
    pub sample: Vec<[u8; 16]>,
    pub sample_level: u32,
    pub first: Ipv6Packet,
    /// The probe that passed the gate: the alert's sample packet.
    pub crossing: Ipv6Packet,
}

/// What Python acts on.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A window passed the gate.
    Crossing(Box<Crossing>),
    /// Since `start_ns`, `refused` keys were refused a slot of the full table and
    /// `evictions` windows evicted, together at least `thrash_ratio` times the cap: once
    /// per window span.
    Thrash {
        refused: u64,
        evictions: u64,
        cap: usize,
        start_ns: i64,
        ts_ns: i64,
        refused_total: u64,
        evictions_total: u64,
        /// Refusals plus evictions in one span that are thrashing.
        threshold: u64,
    },
}

fn key_of(src64: &[u8], dst48: &[u8]) -> Key {
    let mut k = [0u8; 14];
    k[..8].copy_from_slice(&src64[..8]);
    k[8..].copy_from_slice(&dst48[..6]);
    k
}

/// Admission to a full table: the probes each refused key has shown. Direct-mapped
/// 32-bit entries under a keyed hash (a flood cannot aim at a scanner's entry): a 24-bit
/// fingerprint and an 8-bit count of probes (saturating); a probe whose fingerprint
/// differs takes the entry over with a count of 1. Zeroed memory is taken from the
/// system lazily, so an idle doorkeeper costs no resident pages.
pub struct Doorkeeper {
    slots: Vec<u32>,
    hasher: KeyedState,
    /// Probes of keys refused a slot of the full table, ever.
    pub refused: u64,
    /// Entries held: keys refused, not yet admitted.
    held: usize,
}

impl Doorkeeper {
    fn new(cap: usize) -> Self {
        let n = cap.saturating_mul(DOORKEEPER_PER_SLOT).next_power_of_two();
        Doorkeeper {
            slots: vec![0; n],
            hasher: KeyedState::new(),
            refused: 0,
            held: 0,
        }
    }

    /// Count a probe of a key not in the table: its entry and the probes it has shown,
    /// this one included (1 for a first probe, or once its entry was taken over).
    #[inline]
    fn shown(&mut self, key: &Key) -> (usize, u32) {
        let h = self.hasher.hash_one(key);
        let i = (h as usize) & (self.slots.len() - 1);
        let fp = (h >> 40) as u32; // 24 bits; an entry is never 0 (its count is 1+)
        let slot = &mut self.slots[i];
        let n = if *slot != 0 && *slot >> 8 == fp {
            (*slot & 0xff).saturating_add(1).min(0xff)
        } else {
            if *slot == 0 {
                self.held += 1;
            }
            1
        };
        *slot = (fp << 8) | n;
        (i, n)
    }

    /// The key of entry `i` got its slot: forget it.
    fn admitted(&mut self, i: usize) {
        self.slots[i] = 0;
        self.held -= 1;
    }

    pub fn held(&self) -> usize {
        self.held
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }
}

/// Keys refused and windows evicted in the current thrashing span.
#[derive(Clone, Copy, Debug)]
struct Thrash {
    start_ns: i64,
    refused: u64,   // the doorkeeper's refusals when this span started
    evictions: u64, // the table's evictions when this span started
    min: u64,       // refusals plus evictions in one span that are thrashing
    reported: bool, // once per span
}

/// The reducer's per-packet state and logic.
pub struct TgaCore {
    pub cfg: Config,
    pub table: Lru<Key, Box<Win>>,
    pub doorkeeper: Doorkeeper,
    thrash: Thrash,
}

impl TgaCore {
    pub fn new(cfg: Config) -> Self {
        TgaCore {
            table: Lru::new(cfg.max_tracked),
            doorkeeper: Doorkeeper::new(cfg.max_tracked),
            thrash: Thrash {
                start_ns: i64::MIN,
                refused: 0,
                evictions: 0,
                min: thrash_threshold(cfg.thrash_ratio, cfg.max_tracked),
                reported: false,
            },
            cfg,
        }
    }

    /// Count one packet; a window that passes the gate with it, or the table thrashing,
    /// is pushed to `out`.
    #[inline]
    pub fn on_packet(&mut self, pk: &Ipv6Packet, out: &mut Vec<Outcome>) {
        // Most packets are neither (TCP data): a branch or two and out.
        let kind = match role(pk) {
            Role::Other => return,
            Role::Reply => {
                if addressed(pk) {
                    self.on_reply(pk);
                }
                return;
            }
            Role::Probe(kind) => kind,
            Role::Either => match (pk.sport, pk.dport) {
                // UDP by its ports (`probe::udp_role`): a DNS server's answers to its
                // clients are replies and an NTP server's (123 to 123) neither, never
                // probes of the clients' /48; a scanner sending from port 53 or 1 to
                // a privileged port still probes.
                (Some(s), Some(d)) => match udp_role(s, d) {
                    Role::Probe(kind) => kind,
                    Role::Reply => {
                        if addressed(pk) {
                            self.on_reply(pk);
                        }
                        return;
                    }
                    _ => return,
                },
                _ => return,
            },
        };
        if addressed(pk) && !answers_destination(pk) {
            debug_assert_eq!(probe_kind(pk), kind); // the sweep's kinds
            self.on_probe(pk, kind, out);
        }
    }

    /// A host of a tracked /48 answered a tracked source /64.
    fn on_reply(&mut self, pk: &Ipv6Packet) {
        let key = key_of(&pk.ip.dst, &pk.ip.src);
        if let Some(w) = self.table.peek_mut(&key) {
            w.responders.add(hash_bytes(&pk.ip.src));
        }
    }

    /// A probe of a key not in the full table: the doorkeeper counts it; from its second
    /// probe it takes the slot of the least valuable of the oldest windows if that one
    /// is worth less than its probes (evicted, counted), else it is refused. The
    /// refusals and evictions of this span are checked against the thrashing bar.
    /// Returns the credit of an admitted key (its probes before this one).
    #[cold]
    fn admit_to_full(&mut self, key: &Key, pk: &Ipv6Packet, out: &mut Vec<Outcome>) -> Option<u32> {
        let ts = pk.meta.ts_ns;
        let t = &mut self.thrash;
        if ts.saturating_sub(t.start_ns) >= self.cfg.window_ns {
            // A new span counts from this key on.
            *t = Thrash {
                start_ns: ts,
                refused: self.doorkeeper.refused,
                evictions: self.table.evictions(),
                min: t.min,
                reported: false,
            };
        }
        let (entry, shown) = self.doorkeeper.shown(key);
        let mut victim: Option<(Key, f64)> = None;
        if shown >= 2 {
            let limit = f64::from(shown);
            for (k, w) in self.table.oldest(CANDIDATES) {
                let v = w.value(&self.cfg, ts);
                // Strictly less: a tie keeps the incumbent, so keys of k probes each
                // only replace windows worth less than k, never each other.
                let better = match victim {
                    Some((_, best)) => v < best,
                    None => v < limit,
                };
                if better {
                    victim = Some((*k, v));
                }
            }
        }
        let admitted = match victim {
            Some((k, _)) => {
                self.table.evict(&k);
                self.doorkeeper.admitted(entry);
                Some(shown - 1)
            }
            None => {
                self.doorkeeper.refused += 1;
                None
            }
        };
        let evictions = self.table.evictions();
        let refused = self.doorkeeper.refused - t.refused;
        let evicted = evictions - t.evictions;
        if !t.reported && refused + evicted >= t.min {
            t.reported = true;
            out.push(Outcome::Thrash {
                refused,
                evictions: evicted,
                cap: self.cfg.max_tracked,
                start_ns: t.start_ns,
                ts_ns: ts,
                refused_total: self.doorkeeper.refused,
                evictions_total: evictions,
                threshold: t.min,
            });
        }
        admitted
    }

    fn on_probe(&mut self, pk: &Ipv6Packet, kind: usize, out: &mut Vec<Outcome>) {
        let (src, dst) = (&pk.ip.src, &pk.ip.dst);
        let ts = pk.meta.ts_ns;
        let key = key_of(src, dst);
        let w = match self.table.get(&key) {
            Some(w) => {
                if ts.saturating_sub(w.start_ns) >= self.cfg.window_ns {
                    *w = Win::new(&self.cfg, ts, pk); // rolled over: a new window
                }
                w
            }
            None => {
                let mut credit = 0;
                if self.table.len() >= self.table.cap() {
                    match self.admit_to_full(&key, pk, out) {
                        Some(c) => credit = c, // a victim made room
                        None => return,        // refused: remembered, not counted
                    }
                }
                let mut win = Win::new(&self.cfg, ts, pk);
                win.credit = credit;
                self.table.put(key, win); // below the cap now: evicts nothing
                self.table.peek_mut(&key).expect("just put")
            }
        };
        let cfg = &self.cfg;
        w.last_ns = ts;
        w.packets += 1;
        w.probes[kind] += 1;
        let (dst64, iid) = halves(dst);
        let h_dst = mix64(mix64(iid) ^ dst64);
        if !w.targets.add(h_dst) {
            return;
        }
        w.sample.add(h_dst, *dst);
        w.prefixes.add(mix64(dst64));
        if w.alerted {
            return;
        }
        let targets = w.targets.estimate();
        if targets < cfg.min_targets {
            return;
        }
        let prefixes = w.prefixes.estimate();
        if prefixes < cfg.min_prefixes || targets < cfg.min_density * prefixes {
            return;
        }
        let ratio = w.no_reply_ratio();
        if ratio < cfg.min_no_reply {
            return; // checked again on the next new target: replies may stop
        }
        w.alerted = true;
        let mut src64 = [0u8; 8];
        let mut dst48 = [0u8; 6];
        src64.copy_from_slice(&src[..8]);
        dst48.copy_from_slice(&dst[..6]);
        out.push(Outcome::Crossing(Box::new(Crossing {
            src64,
            dst48,
            targets,
            prefixes,
            exact: w.targets.is_exact() && w.prefixes.is_exact(),
            ratio,
            responders: w.responders.estimate(),
            start_ns: w.start_ns,
            last_ns: w.last_ns,
            packets: w.packets,
            probes: w.probes,
            sample: w.sample.items().collect(),
            sample_level: w.sample.level(),
            first: w.first.clone(),
            crossing: pk.clone(),
        })));
    }

    /// Packet time reached `now_ns`: windows a span old end (nothing to report).
    pub fn tick(&mut self, now_ns: i64) {
        let span = self.cfg.window_ns;
        self.table
            .take_where(|_, w| now_ns.saturating_sub(w.start_ns) >= span);
    }

    /// End of input: every window ends.
    pub fn flush(&mut self) {
        self.table.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::{Ipv6Header, Meta};
    use crate::reduce::probe::{TCP_OTHER, UDP};

    fn cfg() -> Config {
        Config {
            window_ns: 300_000_000_000,
            min_targets: 128.0,
            min_prefixes: 16.0,
            min_density: 4.0,
            min_no_reply: 0.5,
            exact_up_to: 128,
            precision: 10,
            max_tracked: 64,
            thrash_ratio: 1.0,
        }
    }

    fn crossings(out: &[Outcome]) -> Vec<&Crossing> {
        out.iter()
            .filter_map(|o| match o {
                Outcome::Crossing(c) => Some(&**c),
                Outcome::Thrash { .. } => None,
            })
            .collect()
    }

    fn addr(prefix: u64, iid: u64) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&prefix.to_be_bytes());
        a[8..].copy_from_slice(&iid.to_be_bytes());
        a
    }

    fn pkt(
        ts_ns: i64,
        src: [u8; 16],
        dst: [u8; 16],
        icmp: Option<u8>,
        tcp: Option<u8>,
    ) -> Ipv6Packet {
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
                upper: if icmp.is_some() { 58 } else { 6 },
                fragment: None,
                tunnels: Default::default(),
            },
            sport: tcp.map(|_| 40000),
            dport: tcp.map(|_| 443),
            icmp_type: icmp,
            icmp_code: icmp.map(|_| 0),
            tcp_flags: tcp,
            quoted_src: None,
        }
    }

    const SCANNER: u64 = 0x2001_0db8_0bad_0000;
    const SITE: u64 = 0x2001_0db8_00aa_0000; // a /48: the low 16 bits are the subnet

    #[test]
    fn a_dense_sweep_of_many_64s_fires_once() {
        let mut core = TgaCore::new(cfg());
        let mut out = Vec::new();
        let mut ts = 0;
        for round in 0..3u64 {
            for subnet in 0..32u64 {
                for host in 0..8u64 {
                    let d = addr(SITE | subnet, 0x1000 + host * 0x10 + round);
                    core.on_packet(&pkt(ts, addr(SCANNER, 1), d, Some(128), None), &mut out);
                    ts += 1_000_000;
                }
            }
        }
        assert_eq!(out.len(), 1);
        let o = crossings(&out)[0];
        assert_eq!(
            (o.targets, o.prefixes, o.exact, o.ratio),
            (128.0, 16.0, true, 1.0)
        );
        assert_eq!(o.probes[probe::ECHO], 128);
        assert!(o.sample.len() <= SAMPLE && !o.sample.is_empty());
        assert_eq!(core.table.len(), 1);
    }

    #[test]
    fn answered_probes_and_sparse_or_few_prefixes_stay_silent() {
        let mut core = TgaCore::new(cfg());
        let mut out = Vec::new();
        // A client whose servers answer: SYN, then SYN-ACK.
        for i in 0..400u64 {
            let (s, d) = (addr(SCANNER, 1), addr(SITE | (i % 40), 0x100 + i));
            core.on_packet(&pkt(i as i64 * 10, s, d, None, Some(0x02)), &mut out);
            core.on_packet(&pkt(i as i64 * 10 + 1, d, s, None, Some(0x12)), &mut out);
        }
        // A hitlist scan: one target per /64 (not dense).
        for i in 0..400u64 {
            let d = addr(SITE | i, 1);
            core.on_packet(
                &pkt(i as i64, addr(SCANNER + 1, 1), d, Some(128), None),
                &mut out,
            );
        }
        // Many targets in few /64s: the sweep family's case.
        for i in 0..400u64 {
            let d = addr(SITE | (i % 4), i + 1);
            core.on_packet(
                &pkt(i as i64, addr(SCANNER + 2, 1), d, Some(128), None),
                &mut out,
            );
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn non_probes_cost_nothing_and_the_table_is_capped() {
        let mut core = TgaCore::new(cfg());
        let mut out = Vec::new();
        let mut ack = pkt(0, addr(SCANNER, 1), addr(SITE, 1), None, Some(0x10));
        core.on_packet(&ack, &mut out);
        // UDP from the lower port: a service answering, not a probe.
        ack.tcp_flags = None;
        ack.ip.upper = 17;
        (ack.sport, ack.dport) = (Some(443), Some(40000));
        core.on_packet(&ack, &mut out);
        let mc = pkt(
            0,
            addr(SCANNER, 1),
            addr(0xff02_0000_0000_0000, 1),
            Some(128),
            None,
        );
        core.on_packet(&mc, &mut out);
        assert_eq!(core.table.len(), 0);
        // 100 source /64s whose doorkeeper entries differ (the hash is keyed per run).
        let mut entries = std::collections::HashSet::new();
        let sources: Vec<u64> = (0u64..)
            .filter(|i| {
                let key = key_of(&addr(SCANNER + i, 1), &addr(SITE, 1));
                let h = core.doorkeeper.hasher.hash_one(key);
                entries.insert((h as usize) & (core.doorkeeper.slots() - 1))
            })
            .take(100)
            .collect();
        for (i, s) in sources.iter().enumerate() {
            let s = addr(SCANNER + s, 1);
            core.on_packet(&pkt(i as i64, s, addr(SITE, 1), Some(128), None), &mut out);
        }
        // Full at 64: the other 36 single probes are refused, nothing evicted.
        assert_eq!((core.table.len(), core.table.evictions()), (64, 0));
        assert_eq!((core.doorkeeper.refused, core.doorkeeper.held()), (36, 36));
        // A refused key's second probe takes the slot of a window worth 1 (one target).
        let again = pkt(
            200,
            addr(SCANNER + sources[99], 1),
            addr(SITE, 2),
            Some(128),
            None,
        );
        core.on_packet(&again, &mut out);
        assert_eq!((core.table.evictions(), core.doorkeeper.held()), (1, 35));
        assert!(out.is_empty());
        core.tick(400_000_000_000);
        assert_eq!(core.table.len(), 0);
    }

    fn udp(ts_ns: i64, src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Ipv6Packet {
        let mut p = pkt(ts_ns, src, dst, None, None);
        p.ip.upper = 17;
        (p.sport, p.dport) = (Some(sport), Some(dport));
        p
    }

    /// A dense scan of 32 /64s (4 targets each, 128 in all) from `src`, `kind` 0 echo,
    /// 1 UDP to port 53, 2 TCP FIN; `extra` runs after every probe.
    fn scan(
        core: &mut TgaCore,
        src: [u8; 16],
        kind: u8,
        mut extra: impl FnMut(&mut TgaCore, i64),
    ) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut ts = 0;
        for host in 0..4u64 {
            for subnet in 0..32u64 {
                let d = addr(SITE | subnet, 0x1000 + host);
                let p = match kind {
                    0 => pkt(ts, src, d, Some(128), None),
                    1 => udp(ts, src, d, 40000 + host as u16, 53),
                    _ => pkt(ts, src, d, None, Some(0x01)),
                };
                core.on_packet(&p, &mut out);
                extra(core, ts);
                ts += 1_000_000;
            }
        }
        out
    }

    #[test]
    fn udp_and_fin_probes_count_and_udp_answers_are_replies() {
        let mut core = TgaCore::new(cfg());
        let out = scan(&mut core, addr(SCANNER, 1), 1, |_, _| {});
        let c = crossings(&out);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].probes[UDP], c[0].targets), (128, 128.0));
        let out = scan(&mut core, addr(SCANNER + 1, 1), 2, |_, _| {});
        assert_eq!(crossings(&out)[0].probes[TCP_OTHER], 128);
        // Every UDP probe answered from port 53: a client of DNS servers, silent.
        let client = addr(SCANNER + 2, 1);
        let mut out = Vec::new();
        for host in 0..4u64 {
            for subnet in 0..32u64 {
                let d = addr(SITE | subnet, 0x1000 + host);
                let ts = (host * 32 + subnet) as i64 * 1000;
                core.on_packet(&udp(ts, client, d, 40000, 53), &mut out);
                core.on_packet(&udp(ts + 1, d, client, 53, 40000), &mut out);
            }
        }
        assert!(out.is_empty(), "{out:?}");
        // Those servers' answers to many clients of one /48 are no probes of it.
        let server = addr(SITE, 0x53);
        for i in 0..400u64 {
            let c = addr(SCANNER | (i % 40), 0x100 + i);
            core.on_packet(&udp(i as i64, server, c, 53, 50000), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(core.table.len(), 3); // the two scans and the client
    }

    /// The thrash reports among `out`, as (refused, evictions, cap).
    fn thrashes(out: &[Outcome]) -> Vec<(u64, u64, usize)> {
        out.iter()
            .filter_map(|o| match o {
                Outcome::Thrash {
                    refused,
                    evictions,
                    cap,
                    ..
                } => Some((*refused, *evictions, *cap)),
                Outcome::Crossing(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_random_source_flood_is_refused_and_reported_once_and_the_scan_still_fires() {
        let mut core = TgaCore::new(cfg()); // a table of 64
        let mut n = 0u64;
        let mut flood_out = Vec::new();
        // Every probe of the scan comes with 60 echo requests from new random /64s.
        let out = scan(&mut core, addr(SCANNER, 1), 0, |core, ts| {
            for _ in 0..60 {
                n += 1;
                let s = addr(0x2001_0000_0000_0000 | (mix64(n) >> 16), mix64(!n));
                let d = addr(SITE | (mix64(n ^ 0x5a) & 0xffff), mix64(n ^ 0xa5));
                core.on_packet(&pkt(ts, s, d, Some(128), None), &mut flood_out);
            }
        });
        assert!(crossings(&flood_out).is_empty());
        // Reported once (the whole flood is within one span), when the refusals
        // reached the cap.
        assert_eq!(thrashes(&flood_out), [(64, 0, 64)]);
        let c = crossings(&out);
        assert_eq!(c.len(), 1, "{out:?}");
        assert_eq!((c[0].targets, c[0].packets), (128.0, 128));
        assert_eq!(core.table.evictions(), 0);
        assert_eq!(core.doorkeeper.refused, 128 * 60 - 63);
    }

    #[test]
    fn a_flood_of_two_probe_sources_cannot_wash_the_scan_out() {
        // Review of issue 15: keys sending two probes each passed the doorkeeper and
        // evicted the least recently used window; 100 of them (200 packets, three
        // times the table) between two of the scanner's probes evicted its window
        // every time, and the scan never fired. Now a newcomer takes only the slot of
        // a window worth less than the probes it has shown: the flood's windows are
        // worth 2 (two targets), so its keys (2) are refused, and the scanner gets a
        // slot on its third probe (3), worth 3 from then on and growing.
        let mut core = TgaCore::new(cfg()); // a table of 64
        let mut n = 0u64;
        let mut flood_out = Vec::new();
        let mut flood = |core: &mut TgaCore, ts: i64, out: &mut Vec<Outcome>| {
            for _ in 0..100 {
                n += 1;
                let s = addr(0x2001_0000_0000_0000 | (mix64(n) >> 16), mix64(!n));
                for t in 0..2u64 {
                    let d = addr(SITE | (mix64(n ^ t) & 0xffff), mix64(n ^ 0xa5 ^ t));
                    core.on_packet(&pkt(ts, s, d, Some(128), None), out);
                }
            }
        };
        // The flood fills the table first: the scanner arrives at a full one.
        flood(&mut core, 0, &mut flood_out);
        assert_eq!(core.table.len(), 64);
        let mut out = Vec::new();
        let mut ts = 1_000_000;
        for host in 0..16u64 {
            for subnet in 0..32u64 {
                let d = addr(SITE | subnet, 0x1000 + host);
                core.on_packet(&pkt(ts, addr(SCANNER, 1), d, Some(128), None), &mut out);
                flood(&mut core, ts, &mut flood_out);
                ts += 1_000_000;
            }
        }
        let c = crossings(&out);
        assert_eq!(c.len(), 1, "{out:?}");
        assert_eq!((c[0].targets, c[0].prefixes), (128.0, 32.0));
        assert!(crossings(&flood_out).is_empty());
        // One eviction, the scanner's admission; every other flood probe refused,
        // reported once (one span).
        assert_eq!(core.table.evictions(), 1);
        assert_eq!(thrashes(&flood_out), [(64, 0, 64)]);
        assert!(core.doorkeeper.refused > 100 * 2 * 512);
    }

    #[test]
    fn thrashing_is_reported_once_per_span() {
        // Keys of two probes each: in the first span the full table's windows are
        // worth 2 and every probe is refused; in the next the old windows are worth
        // nothing and each key evicts one on its second probe. The span's count
        // crosses the cap once in each.
        let mut core = TgaCore::new(cfg());
        let mut out = Vec::new();
        for span in 0..2i64 {
            for i in 0..300u64 {
                let s = addr(SCANNER + (span as u64) * 1000 + i, 1);
                let ts = span * 300_000_000_000 + i as i64;
                core.on_packet(&pkt(ts, s, addr(SITE, 1), Some(128), None), &mut out);
                core.on_packet(&pkt(ts, s, addr(SITE, 2), Some(128), None), &mut out);
            }
        }
        let thrash: Vec<_> = out
            .iter()
            .map(|o| match o {
                Outcome::Thrash {
                    refused, evictions, ..
                } => refused + evictions,
                Outcome::Crossing(_) => 0,
            })
            .collect();
        assert_eq!(thrash, [64, 64]);
        assert_eq!(core.table.evictions(), 64);
    }

    #[test]
    fn udp_roles_by_port() {
        use probe::udp_role;
        // Equal ports: symmetric peers (NTP, IKE, IKE over NAT, WireGuard), neither.
        for p in [123, 500, 4500, 51820] {
            assert_eq!(udp_role(p, p), Role::Other);
        }
        // Ephemeral to privileged: a probe; privileged to ephemeral: a reply.
        assert_eq!(udp_role(40000, 53), Role::Probe(UDP));
        assert_eq!(udp_role(1024, 1023), Role::Probe(UDP));
        assert_eq!(udp_role(53, 40000), Role::Reply);
        assert_eq!(udp_role(1023, 1024), Role::Reply);
        // Two different privileged ports: a client bound to one, probing.
        for (s, d) in [
            (53, 123),
            (53, 161),
            (53, 443),
            (53, 500),
            (1, 53),
            (443, 53),
        ] {
            assert_eq!(udp_role(s, d), Role::Probe(UDP), "{s} -> {d}");
        }
        // Two unprivileged ports: toward the lower (traceroute's 33434, 3478) a probe.
        assert_eq!(udp_role(50000, 33434), Role::Probe(UDP));
        assert_eq!(udp_role(33434, 50000), Role::Reply);
        assert_eq!(udp_role(3478, 61000), Role::Reply);
    }

    #[test]
    fn symmetric_udp_and_replies_open_no_window() {
        // An NTP server (123 to 123) answering 128 hosts over 32 /64s of the /48: no
        // probe. Before, the lower-port rule took 123 to 123 for a probe and it fired.
        let mut core = TgaCore::new(cfg());
        let mut out = Vec::new();
        let server = addr(SCANNER, 0x123);
        for host in 0..4u64 {
            for subnet in 0..32u64 {
                let c = addr(SITE | subnet, 0x1000 + host);
                let ts = (host * 32 + subnet) as i64 * 1000;
                core.on_packet(&udp(ts, server, c, 123, 123), &mut out);
                core.on_packet(&udp(ts + 1, server, c, 500, 500), &mut out);
                // Replies (service to ephemeral port) only update open windows.
                core.on_packet(&udp(ts + 2, server, c, 53, 40000), &mut out);
                core.on_packet(&udp(ts + 3, server, c, 33434, 50000), &mut out);
            }
        }
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(core.table.len(), 0);
        // A scanner sending from port 53 or 1 to privileged ports above it: probes.
        let out = {
            let mut out = Vec::new();
            for host in 0..4u64 {
                for subnet in 0..32u64 {
                    let d = addr(SITE | subnet, 0x1000 + host);
                    let ts = (host * 32 + subnet) as i64 * 1000;
                    let sport = if subnet % 2 == 0 { 53 } else { 1 };
                    let dport = [123, 161, 443, 500][host as usize];
                    core.on_packet(&udp(ts, server, d, sport, dport), &mut out);
                }
            }
            out
        };
        let c = crossings(&out);
        assert_eq!(c.len(), 1, "{out:?}");
        assert_eq!(c[0].probes[UDP], 128);
    }

    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// `cargo test --profile quick -- --ignored rss_tga --nocapture`: memory of a full
    /// table (8192 windows, each past its exact sets: sketches and a full sample).
    #[test]
    #[ignore]
    fn rss_tga() {
        let before = rss_kib();
        let mut core = TgaCore::new(Config {
            max_tracked: 8192,
            ..cfg()
        });
        let mut out = Vec::new();
        let (mut ts, mut alerts) = (0i64, 0usize);
        for k in 0..8192u64 {
            let s = addr(SCANNER + (k << 20), 1);
            for t in 0..300u64 {
                let d = addr(SITE | (t % 64), mix64(t + 1));
                core.on_packet(&pkt(ts, s, d, Some(128), None), &mut out);
                ts += 1;
            }
            alerts += crossings(&out).len();
            out.clear();
        }
        let used = rss_kib().saturating_sub(before);
        println!(
            "rss: {} windows of 300 targets: {used} KiB, {:.1} KiB per window, {} alerts",
            core.table.len(),
            used as f64 / core.table.len() as f64,
            alerts
        );
    }

    /// `cargo test --profile quick -- --ignored bench_tga --nocapture`: per-packet cost of
    /// the reducer alone over 10M packets: TCP data (filtered out), then echo requests from
    /// random source /64s into random /48s (once the table is full, each one refused at the
    /// doorkeeper).
    #[test]
    #[ignore]
    fn bench_tga() {
        use std::time::Instant;
        let n = 10_000_000u64;
        let mut core = TgaCore::new(Config {
            max_tracked: 8192,
            ..cfg()
        });
        let mut out = Vec::new();
        let mut data = pkt(0, addr(SCANNER, 1), addr(SITE, 1), None, Some(0x18));
        let t0 = Instant::now();
        for i in 0..n {
            data.meta.ts_ns = i as i64;
            core.on_packet(std::hint::black_box(&data), &mut out);
        }
        let other = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for i in 0..n {
            let s = addr(0x2001_0000_0000_0000 | (mix64(i) >> 16), 1);
            let d = addr(SITE | (mix64(i ^ 0x5a5a) >> 16), mix64(!i));
            core.on_packet(&pkt(i as i64, s, d, Some(128), None), &mut out);
        }
        let probes = t0.elapsed().as_secs_f64();
        println!(
            "bench: non-probes {:.1} ns/packet, random-source probes {:.0} ns/packet, table {:?}",
            other * 1e9 / n as f64,
            probes * 1e9 / n as f64,
            (core.table.len(), core.table.evictions())
        );
    }
}
