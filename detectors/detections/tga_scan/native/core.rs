//! The per-packet half of `ipv6.tga_scan` (`detectors/detections/tga_scan/__init__.py`).
//!
//! Owns, per (source /64, destination /48) and packet-time window: the distinct targets,
//! the distinct destination /64s touched, the distinct hosts of that /48 that answered
//! the source /64 (the no-reply ratio), the probe kinds, a bounded distinct sample of the
//! targets (Python computes the nibble-position entropy profile from it) and the first
//! packet; and the gate: enough targets over enough /64s, dense enough per /64, mostly
//! unanswered. It hands out one `Outcome` per window that passed the gate; Python checks
//! suppression and writes the alert, so its work grows with alerts, never packets.
//!
//! Per packet it runs the shared probe filters (`crate::reduce::probe`) first: only
//! ICMPv6 echo requests and TCP SYNs are probes, and only echo replies, SYN-ACKs, RSTs and
//! ICMPv6 errors are replies; everything else returns after a few byte comparisons. A
//! probe is hashed once for its table key and once for its target; no allocation unless
//! it opens a window.

use crate::decode::events::Ipv6Packet;
use crate::reduce::probe::{
    self, addressed, answers_destination, probe_kind, role, Role, ECHO, TCP_OTHER,
};
use crate::reduce::sketch::{hash_bytes, mix64, DistinctCounter, DistinctSample};
use crate::reduce::windows::Lru;

/// Distinct targets kept per window for the entropy profile and the pattern classes.
pub const SAMPLE: usize = 128;

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
}

/// One source /64's window on one destination /48.
#[derive(Debug)]
pub struct Win {
    pub start_ns: i64,
    pub last_ns: i64,
    pub packets: u64,
    pub echo: u64,
    pub syn: u64,
    pub targets: DistinctCounter,
    pub prefixes: DistinctCounter,
    pub responders: DistinctCounter,
    pub sample: DistinctSample<[u8; 16]>,
    pub first: Ipv6Packet,
    pub alerted: bool,
}

impl Win {
    fn new(cfg: &Config, ts: i64, p: &Ipv6Packet) -> Box<Self> {
        Box::new(Win {
            start_ns: ts,
            last_ns: ts,
            packets: 0,
            echo: 0,
            syn: 0,
            targets: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
            prefixes: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
            responders: DistinctCounter::new(cfg.exact_up_to, cfg.precision),
            sample: DistinctSample::new(SAMPLE),
            first: p.clone(),
            alerted: false,
        })
    }

    pub fn no_reply_ratio(&self) -> f64 {
        probe::no_reply_ratio(self.targets.estimate(), self.responders.estimate())
    }
}

/// A window that passed the gate: everything the evidence needs.
#[derive(Clone, Debug)]
pub struct Outcome {
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
    pub echo: u64,
    pub syn: u64,
    /// The distinct sample, insertion order, and its level (rate 2**-level).
    pub sample: Vec<[u8; 16]>,
    pub sample_level: u32,
    pub first: Ipv6Packet,
    /// The probe that passed the gate: the alert's sample packet.
    pub crossing: Ipv6Packet,
}

fn key_of(src64: &[u8], dst48: &[u8]) -> Key {
    let mut k = [0u8; 14];
    k[..8].copy_from_slice(&src64[..8]);
    k[8..].copy_from_slice(&dst48[..6]);
    k
}

/// The reducer's per-packet state and logic.
pub struct TgaCore {
    pub cfg: Config,
    pub table: Lru<Key, Box<Win>>,
}

impl TgaCore {
    pub fn new(cfg: Config) -> Self {
        TgaCore {
            table: Lru::new(cfg.max_tracked),
            cfg,
        }
    }

    /// Count one packet; a window that passes the gate with it is pushed to `out`.
    #[inline]
    pub fn on_packet(&mut self, pk: &Ipv6Packet, out: &mut Vec<Outcome>) {
        // Most packets are neither (TCP data, UDP): a branch or two and out.
        match role(pk) {
            Role::Other | Role::Either | Role::Probe(TCP_OTHER) => {}
            Role::Reply => {
                if addressed(pk) {
                    self.on_reply(pk);
                }
            }
            Role::Probe(kind) => {
                if addressed(pk) && !answers_destination(pk) {
                    debug_assert_eq!(probe_kind(pk), kind); // the sweep's kinds
                    self.on_probe(pk, kind, out);
                }
            }
        }
    }

    /// A host of a tracked /48 answered a tracked source /64.
    fn on_reply(&mut self, pk: &Ipv6Packet) {
        let key = key_of(&pk.ip.dst, &pk.ip.src);
        if let Some(w) = self.table.peek_mut(&key) {
            w.responders.add(hash_bytes(&pk.ip.src));
        }
    }

    fn on_probe(&mut self, pk: &Ipv6Packet, kind: usize, out: &mut Vec<Outcome>) {
        let (src, dst) = (&pk.ip.src, &pk.ip.dst);
        let ts = pk.meta.ts_ns;
        let key = key_of(src, dst);
        let cfg = &self.cfg;
        let w = match self.table.get(&key) {
            Some(w) => {
                if ts.saturating_sub(w.start_ns) >= cfg.window_ns {
                    *w = Win::new(cfg, ts, pk); // rolled over: a new window
                }
                w
            }
            None => {
                self.table.put(key, Win::new(cfg, ts, pk)); // may evict (counted)
                self.table.peek_mut(&key).expect("just put")
            }
        };
        w.last_ns = ts;
        w.packets += 1;
        if kind == ECHO {
            w.echo += 1;
        } else {
            w.syn += 1;
        }
        let dst64 = u64::from_be_bytes(dst[..8].try_into().expect("8 bytes"));
        let h_iid = mix64(u64::from_be_bytes(dst[8..].try_into().expect("8 bytes")));
        let h_dst = mix64(h_iid ^ dst64);
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
        out.push(Outcome {
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
            echo: w.echo,
            syn: w.syn,
            sample: w.sample.items().collect(),
            sample_level: w.sample.level(),
            first: w.first.clone(),
            crossing: pk.clone(),
        });
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
        }
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
        let o = &out[0];
        assert_eq!(
            (o.targets, o.prefixes, o.exact, o.ratio),
            (128.0, 16.0, true, 1.0)
        );
        assert_eq!(o.echo, 128);
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
        ack.tcp_flags = None;
        ack.ip.upper = 17;
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
        for i in 0..100u64 {
            let s = addr(SCANNER + i, 1);
            core.on_packet(&pkt(i as i64, s, addr(SITE, 1), Some(128), None), &mut out);
        }
        assert_eq!((core.table.len(), core.table.evictions()), (64, 36));
        core.tick(400_000_000_000);
        assert_eq!(core.table.len(), 0);
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
            alerts += out.len();
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
    /// random source /64s into random /48s (every one opens a window and evicts one).
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
