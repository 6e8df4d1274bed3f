//! The per-packet half of `ipv6.slow_scan`: long-horizon distinct counting per source /64
//! and per destination /64, in fixed memory per key.
//!
//! Owns two set-associative tables of keys (`slow_scan.sources`, `slow_scan.destinations`),
//! their doorkeepers, and per key a ring of `buckets` small HyperLogLog register arrays
//! (one per `bucket_ns` of packet time, aligned on the epoch) for each counter, with the
//! register-wise maximum of the live buckets kept beside them as the horizon's merged
//! sketch. A new target raises its bucket's register and the merged one (O(1), with the
//! O(1) estimate of `HllSums`); when packet time moves a key into a new bucket, the buckets
//! past the horizon are cleared and the merged sketch is rebuilt from the rest, once per
//! key and bucket. So a target counts for the horizon (`buckets` x `bucket_ns`, less at
//! most one bucket) and then falls out, and a key's memory never depends on its traffic.
//!
//! Counters: a source /64 counts the distinct destination addresses it probed and the
//! distinct hosts that sent it a reply; a destination /64 counts the distinct addresses
//! of it probed, the distinct source /64s that probed them, and the distinct addresses
//! of it that sent a reply. A probe is a packet that opens something (TCP without ACK,
//! ICMPv6 Echo Request, UDP); a reply one that answers (TCP SYN-ACK or RST, Echo Reply,
//! ICMPv6 errors, UDP). Established TCP traffic is neither and leaves after one branch.
//!
//! Not a sweep: each key also mirrors `ipv6.sweep`'s windows (its `window_s`, started by
//! the first probe past the previous one): the distinct targets in the window,
//! whether they all went to one peer /64, and 128-bit linear counters (Whang et al.) of
//! the window's targets and peer /64s.
//! A window with at least the sweep's medium tier in one /64, or a wide scan's targets
//! and /64s, is what `ipv6.sweep` reports: the key counts nothing more and stays quiet
//! until a horizon has passed since its last such window. The thresholds are turned into
//! popcounts once (`bits_for`), so the per-probe check takes no logarithm.
//!
//! Admission by value (what keeps a slow scanner through a flood): a key not in its table
//! waits at the doorkeeper, four-way sets of 32-byte entries (one set per table slot: a
//! tag, a 32-bit linear counter of the distinct targets seen, a value written back, the
//! first target and its time). A newcomer replaces the entry that has shown least
//! (halved per minute untouched, so a key that stopped showing anything gives way;
//! picked among equals by the newcomer's target hash), so a flood of single probes wipes
//! a waiting key only by chance, 3 in 4 that it survives each newcomer of its set. From its
//! second distinct target on, a key is admitted: into the main way of least value of its
//! set (`Table::value`: the distinct targets of its horizon plus those carried from the
//! door, halved for every whole bucket since its last probe; among equals the one that
//! spanned least time, then the least recently used) if it has shown at least that much,
//! else into the set's probation way (TinyLFU's window), whose occupant then takes that
//! main way if worth as much, or is refused. A key that loses its way has its value
//! written back to its door entry (unless it is a burst: all its targets within a
//! second), and comes back worth that plus what it shows since. So a slow scanner that
//! has shown three targets is never the victim of a flood of random sources with two
//! each, even when it started inside the flood (it ties with the flood's keys at two,
//! but spanned more time); a flood with k targets each replaces keys worth at most k, at
//! k times the packets. A table full of busy keys worth more than a door can show (32
//! bits) still gives every newcomer the probation way, where it counts; if newcomers
//! churn that too, a refused scanner comes back one target richer each probe until it is
//! worth a main way. Limits: the carried values are admission priorities, never
//! evidence (an alert counts only its sketch since admission), and a returning key may be
//! credited again for targets it had shown before. Evictions and refusals are counted; a
//! table whose evictions plus refusals in one bucket reach `churn_ratio` times its cap
//! reports it once per bucket (`ChurnReport`: Python's `slow_scan_churn` observation)
//! with the most targets an evicted key held, which says whether anything of value was
//! lost, and the most a refused newcomer had shown, reported again each time that doubles
//! (from four): newcomers locked out by busier keys.
//!
//! Speed: every packet pays its role (a few branches: established TCP and ND leave there)
//! and the shared filters (`reduce::probe`); a probe or a reply pays two keyed hashes and
//! a four-way set lookup per table. Only a probe of a key not in its table goes to the
//! door (out of line); from its second distinct target on, it is admitted after one
//! comparison of its set's ways' values. A key's ring
//! slot is zeroed when it goes live, not when the key is admitted. Nothing allocates
//! after the tables are made.

use crate::decode::events::Ipv6Packet;
use crate::reduce::probe::{self, addressed, answers_destination, halves, role, Role};
use crate::reduce::sketch::{hll_slot, mix64, HllSums};
use crate::reduce::windows::thrash_threshold;

/// Ways per set of a key table.
pub const WAYS: usize = 4;
/// Most buckets a horizon may hold (the live-bucket mask is a u64).
pub const MAX_BUCKETS: usize = 64;
/// Peers (targets of a source, sources of a destination) remembered per key for the
/// evidence, most recent last.
pub const RECENT: usize = 8;

/// Counters of a key, indexing its register rings.
pub const TARGETS: usize = 0;
pub const RESPONDERS: usize = 1;
pub const SOURCES: usize = 2; // destination keys only: distinct source /64s

/// The thresholds, resolved by Python from `spec.yaml`, the policy and `ipv6.sweep`'s.
#[derive(Clone, Debug)]
pub struct Config {
    pub bucket_ns: i64,
    pub buckets: usize,
    pub precision: u32,
    pub min_targets: f64,
    pub min_no_reply: f64,
    pub min_source_prefixes: f64,
    /// `max_probe_rate`: a key whose probes came faster than this (per second, on
    /// average from its first probe in the horizon) is a fast scan, not a slow one.
    pub max_probe_rate: f64,
    pub suppress_ns: i64,
    pub max_sources: usize,
    pub max_destinations: usize,
    /// `churn_ratio`: evictions and rejections of one table in one bucket, as a multiple
    /// of its cap, reported as churn.
    pub churn_ratio: f64,
    /// `ipv6.sweep`'s window, medium tier and wide-scan thresholds.
    pub sweep_window_ns: i64,
    pub sweep_medium: f64,
    pub wide_targets: f64,
    pub wide_prefixes: f64,
}

/// The sweep thresholds as set bits of the window's linear counters.
#[derive(Clone, Copy, Debug)]
struct Bits {
    medium: u32,
    wide_targets: u32,
    wide_prefixes: u32,
}

impl Config {
    pub fn horizon_ns(&self) -> i64 {
        self.bucket_ns.saturating_mul(self.buckets as i64)
    }
}

/// A key's fixed-size figures (its registers live in the table's arena).
#[derive(Clone, Debug)]
pub struct Meta {
    pub key: u64,
    /// The key's keyed hash (its door set and tag, for writing its value back there).
    pub h: u64,
    /// Distinct targets it had shown before it was admitted, beyond those counted in
    /// its sketch (the door's evidence and any value written back to the door): part
    /// of its admission value, never of its alert.
    pub floor: u32,
    pub last_ns: i64,
    pub first_ns: i64,
    /// The newest bucket written; ring slot `epoch mod buckets` holds it.
    pub epoch: i64,
    /// Ring slots holding anything.
    pub live: u64,
    pub sums: [HllSums; 3],
    pub bucket_probes: [u32; MAX_BUCKETS],
    pub probes: u64,
    // The mirror of the sweep's window.
    pub win_start: i64,
    /// Targets (128-bit linear counter) and peer /64s of the window.
    pub win_targets: u128,
    pub win_peer: u64,
    pub win_multi: bool,
    pub win_bits: u128,
    /// Most window targets seen, as set bits of the linear counter.
    pub peak_window: u32,
    pub swept_ns: i64,
    pub alerted_ns: i64,
    pub recent: [[u8; 16]; RECENT],
    pub recent_n: usize,
}

impl Meta {
    fn new(m: u32) -> Self {
        Meta {
            key: 0,
            h: 0,
            floor: 0,
            last_ns: 0,
            first_ns: 0,
            epoch: i64::MIN,
            live: 0,
            sums: [HllSums::empty(m); 3],
            bucket_probes: [0; MAX_BUCKETS],
            probes: 0,
            win_start: i64::MIN,
            win_targets: 0,
            win_peer: 0,
            win_multi: false,
            win_bits: 0,
            peak_window: 0,
            swept_ns: i64::MIN,
            alerted_ns: i64::MIN,
            recent: [[0; 16]; RECENT],
            recent_n: 0,
        }
    }

    /// A fresh key in a reused slot: the scalars only; the arrays are read only where
    /// `live` and `recent_n` say they were written since.
    fn reset(&mut self, key: u64, h: u64, floor: u32, ts: i64, m: u32) {
        let (probes, recent) = (self.bucket_probes, self.recent);
        *self = Meta {
            bucket_probes: probes,
            recent,
            ..Meta::new(m)
        };
        self.key = key;
        self.h = h;
        self.floor = floor;
        self.first_ns = ts;
        self.last_ns = ts;
    }

    #[inline]
    fn remember(&mut self, peer: &[u8; 16]) {
        self.recent[self.recent_n % RECENT] = *peer;
        self.recent_n += 1;
    }

    /// The remembered peers, oldest first, each once.
    pub fn recent_peers(&self) -> Vec<[u8; 16]> {
        let n = self.recent_n.min(RECENT);
        let mut out: Vec<[u8; 16]> = Vec::with_capacity(n);
        for i in 0..n {
            let a = self.recent[(self.recent_n - n + i) % RECENT];
            out.retain(|b| *b != a);
            out.push(a);
        }
        out
    }
}

/// Distinct values of a 128-bit linear counter with `set` bits (Whang et al. 1990);
/// saturated: infinite.
fn linear_count_of(set: u32) -> f64 {
    let zeros = 128 - set.min(128);
    if zeros == 0 {
        return f64::INFINITY;
    }
    128.0 * (128.0 / f64::from(zeros)).ln()
}

/// The fewest set bits of a 128-bit linear counter whose estimate reaches `n`: the
/// per-probe checks compare popcounts, never take a logarithm.
pub fn bits_for(n: f64) -> u32 {
    (1..=128).find(|&b| linear_count_of(b) >= n).unwrap_or(128)
}

/// A table's churn in the current bucket: admissions that cost a resident key (evictions)
/// or were refused (rejections), reported once per bucket when they reach `min`.
#[derive(Clone, Copy, Debug)]
struct Churn {
    epoch: i64,
    evicted: u64,
    rejected: u64,
    /// The most targets an evicted key held (its admission value).
    max_evicted: u32,
    /// The most targets a refused newcomer had shown (its value when it lost its
    /// probation way to the next newcomer): high while the main ways are worth more,
    /// which is what a lock-out looks like.
    max_rejected: u32,
    min: u64,
    reported: bool,
    /// `max_rejected` when last reported: reported again each time it doubles (from
    /// four on), so a lock-out of newcomers with ever more targets is seen within the
    /// bucket, at most a few times.
    reported_rejected: u32,
}

/// A table's churn report: what Python turns into one observation (rare: once per
/// table and bucket).
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnReport {
    /// True for the source table, false for the destination table.
    pub source: bool,
    pub start_ns: i64,
    pub ts_ns: i64,
    pub evicted: u64,
    pub rejected: u64,
    pub max_evicted: u32,
    pub max_rejected: u32,
    pub len: usize,
    pub cap: usize,
    pub total_evictions: u64,
    pub total_rejected: u64,
}

/// A key that loses its slot is written back to the door only if its targets spanned
/// at least this much packet time.
const WRITE_BACK_SPAN_NS: i64 = 1_000_000_000;

/// Ways per set of the doorkeeper (a door set per table slot, so four entries per key).
pub const DOOR_WAYS: usize = 4;

/// A key waiting at the doorkeeper: what it has shown so far.
#[derive(Clone, Copy, Debug, Default)]
struct Door {
    /// The low half of the key's keyed hash, never 0 (0 is an empty entry).
    tag: u32,
    /// Distinct items seen at the door, as a 32-bit linear counter.
    bits: u32,
    /// Value written back when the key lost its slot: it comes back worth this plus
    /// what it shows at the door since.
    floor: u32,
    /// Packet time (whole seconds, wrapping) the entry last changed.
    touched: u32,
    /// The first item since the entry was made or written back (0 before), and the
    /// key's first probe: the entry goes stale a horizon after it.
    first: u64,
    first_ts: i64,
}

impl Door {
    /// What the entry has shown: its written-back value and its distinct items.
    #[inline]
    fn weight(&self) -> u32 {
        self.floor.saturating_add(self.bits.count_ones())
    }

    /// What the entry is worth keeping at `now_s`: its weight, halved for every
    /// `DOOR_HALF_S` untouched. A door is a short wait: a key that shows nothing there
    /// for minutes (a busy key that lost its slot and never came back, a single probe)
    /// gives its way to keys that do, however much it had shown.
    #[inline]
    fn keep(&self, now_s: u32) -> u32 {
        let idle = now_s.wrapping_sub(self.touched) / DOOR_HALF_S;
        self.weight().checked_shr(idle).unwrap_or(0)
    }
}

/// Seconds untouched that halve a door entry's claim to its way.
const DOOR_HALF_S: u32 = 60;

#[inline]
fn secs(ts: i64) -> u32 {
    (ts / 1_000_000_000) as u32
}

#[inline]
fn door_tag(h: u64) -> u32 {
    h as u32 | 1
}

/// One table of long-horizon keys: `sets` x `WAYS` slots, the set chosen by a keyed hash
/// of the /64 (its place cannot be aimed). Admission is by value, not recency: a key
/// waits at the doorkeeper until it has shown two distinct targets (`at_door`), then
/// takes an empty way, or the main way of least value if it has shown at least that
/// much, or else the set's probation way (see `admit`). Evictions and rejections are
/// counted, and what a key lost its slot with is written back to its door entry.
pub struct Table {
    counters: usize,
    p: u32,
    m: usize,
    buckets: usize,
    bucket_ns: i64,
    set_mask: usize,
    tags: Vec<u64>, // the key of each slot; 0 is empty (::/64 is never tracked)
    pub meta: Vec<Meta>,
    regs: Vec<u8>,
    per_slot: usize,
    /// The doorkeeper: `DOOR_WAYS`-way sets, one set per table slot (32 bytes an entry).
    door: Vec<Door>,
    door_mask: usize,
    /// Per set: which way is its probation way (the others are its main ways).
    probation: Vec<u8>,
    len: usize,
    evictions: u64,
    rejected: u64,
    churn: Churn,
    /// Set when `churn` crossed its `min` in this bucket, until the report is taken.
    pub churning: bool,
}

impl Table {
    pub fn new(
        cap: usize,
        counters: usize,
        p: u32,
        buckets: usize,
        bucket_ns: i64,
        churn_ratio: f64,
    ) -> Self {
        let sets = cap.div_ceil(WAYS).max(1).next_power_of_two();
        let m = 1usize << p;
        let per_slot = counters * (buckets + 1) * m;
        let slots = sets * WAYS;
        Table {
            counters,
            p,
            m,
            buckets,
            bucket_ns,
            set_mask: sets - 1,
            tags: vec![0; slots],
            meta: vec![Meta::new(m as u32); slots],
            // Zeroed pages are only touched (made resident) as keys arrive.
            regs: vec![0; slots * per_slot],
            per_slot,
            door: vec![Door::default(); slots.next_power_of_two() * DOOR_WAYS],
            door_mask: slots.next_power_of_two() - 1,
            probation: vec![0; sets],
            len: 0,
            evictions: 0,
            rejected: 0,
            churn: Churn {
                epoch: i64::MIN,
                evicted: 0,
                rejected: 0,
                max_evicted: 0,
                max_rejected: 0,
                // At least one: a ratio of 0 would report every bucket.
                min: thrash_threshold(churn_ratio, slots),
                reported: false,
                reported_rejected: 0,
            },
            churning: false,
        }
    }

    pub fn cap(&self) -> usize {
        self.tags.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes a key costs: its registers, its figures, its tag and its doorkeeper share.
    pub fn bytes_per_key(&self) -> usize {
        self.per_slot
            + std::mem::size_of::<Meta>()
            + std::mem::size_of::<u64>()
            + DOOR_WAYS * std::mem::size_of::<Door>()
        // (and a quarter byte: each set's probation index)
    }

    #[inline]
    pub fn find(&self, key: u64, h: u64) -> Option<usize> {
        let base = (h as usize & self.set_mask) * WAYS;
        (base..base + WAYS).find(|&i| self.tags[i] == key)
    }

    /// Newcomers that lost their probation way with less than the main ways' value.
    #[cfg(test)]
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// What slot `i` is worth keeping at `ts`: the distinct targets of its horizon plus
    /// those it had shown before admission (`floor`), halved for each whole bucket since
    /// its last probe, so an idle key gives way.
    #[inline]
    fn value(&self, i: usize, ts: i64) -> u32 {
        let idle = (ts.saturating_sub(self.meta[i].last_ns) / self.bucket_ns).clamp(0, 31);
        let est = (self.estimate(i, TARGETS) + 0.5) as u32;
        est.saturating_add(self.meta[i].floor) >> idle
    }

    /// Take a slot for `key`, which showed `seen` distinct targets at the door
    /// (`carried` of them not to be counted in its sketch). Each set has one probation
    /// way (TinyLFU's window) and main ways. The newcomer takes an empty way; else the
    /// main way of least value (least recently used among equals) if it is worth at most
    /// `seen` (that key is evicted); else the probation way, whose occupant then
    /// competes with that main way: at least as valuable, it becomes a main way and the
    /// main key is evicted; less, it is refused (rejected). So a newcomer always gets a
    /// slot to prove itself in, however much the main ways are worth, and a flood of
    /// newcomers only churns the probation way unless it is worth as much as the main
    /// ways. What a key lost its slot with is written back to its door entry.
    fn admit(&mut self, key: u64, h: u64, seen: u32, carried: u32, ts: i64) -> usize {
        let set = h as usize & self.set_mask;
        let base = set * WAYS;
        let window = base + self.probation[set] as usize;
        let mut at = usize::MAX;
        let mut least = u32::MAX;
        for i in base..base + WAYS {
            if self.tags[i] == 0 {
                at = i;
                least = 0;
                break;
            }
            if i == window {
                continue;
            }
            // Among equals, the key that spanned the least time goes first (a burst of
            // a flood, not a scanner that came back), then the least recently used.
            let v = self.value(i, ts);
            let span = |m: &Meta| m.last_ns.saturating_sub(m.first_ns);
            if at == usize::MAX
                || v < least
                || (v == least
                    && (span(&self.meta[i]), self.meta[i].last_ns)
                        < (span(&self.meta[at]), self.meta[at].last_ns))
            {
                (at, least) = (i, v);
            }
        }
        if self.tags[at] == 0 {
            self.len += 1;
        } else if seen >= least {
            self.evict(at, true, least, ts);
        } else {
            // The probation way: its occupant moves to the main ways or leaves.
            let vp = self.value(window, ts);
            if vp >= least {
                self.evict(at, true, least, ts);
                self.probation[set] = (at - base) as u8;
            } else {
                self.evict(window, false, vp, ts);
                at = window;
            }
        }
        self.tags[at] = key;
        self.meta[at].reset(key, h, carried, ts, self.m as u32);
        // Only the merged sketches: a ring slot is zeroed when it first becomes live.
        let merged = at * self.per_slot + self.counters * self.buckets * self.m;
        self.regs[merged..(at + 1) * self.per_slot].fill(0);
        at
    }

    /// Slot `i`, worth `value`, loses its key: counted as an eviction (a resident) or a
    /// rejection (a newcomer refused a main way), and its value written back to its
    /// door entry, so the key comes back worth it plus what it shows there since.
    #[cold]
    fn evict(&mut self, i: usize, evicted: bool, value: u32, ts: i64) {
        if evicted {
            self.evictions += 1;
        } else {
            self.rejected += 1;
        }
        self.churned(ts, evicted, value);
        // A burst (all its targets within a second) is no slow scan, and however much it
        // showed, its entry would only crowd out waiting keys: it is not written back.
        let m = &self.meta[i];
        if value == 0 || m.last_ns.saturating_sub(m.first_ns) < WRITE_BACK_SPAN_NS {
            return;
        }
        let h = self.meta[i].h;
        let d = self.door_victim(h, 0, ts);
        let e = &self.door[d];
        let horizon = self.bucket_ns.saturating_mul(self.buckets as i64);
        if e.tag == 0 || ts.saturating_sub(e.first_ts) >= horizon || e.keep(secs(ts)) < value {
            self.door[d] = Door {
                tag: door_tag(h),
                bits: 0,
                floor: value,
                touched: secs(ts),
                first: 0,
                // Its first probe: the time it spans goes on when it comes back.
                first_ts: self.meta[i].first_ns,
            };
        }
    }

    /// One eviction (of a key worth `value`, `evicted`) or rejection (of a newcomer
    /// worth `value`) in the bucket of `ts`.
    fn churned(&mut self, ts: i64, evicted: bool, value: u32) {
        let epoch = ts.div_euclid(self.bucket_ns);
        let c = &mut self.churn;
        if epoch != c.epoch {
            *c = Churn {
                epoch,
                evicted: 0,
                rejected: 0,
                max_evicted: 0,
                max_rejected: 0,
                min: c.min,
                reported: false,
                reported_rejected: 0,
            };
        }
        if evicted {
            c.evicted += 1;
            c.max_evicted = c.max_evicted.max(value);
        } else {
            c.rejected += 1;
            c.max_rejected = c.max_rejected.max(value);
        }
        let refused_more = c.max_rejected >= 2 * c.reported_rejected.max(2);
        if (!c.reported && c.evicted + c.rejected >= c.min) || (c.reported && refused_more) {
            c.reported = true;
            c.reported_rejected = c.max_rejected;
            self.churning = true;
        }
    }

    /// The churn report of the bucket that crossed (clears `churning`).
    pub fn churn_report(&mut self, source: bool, ts: i64) -> ChurnReport {
        self.churning = false;
        let c = &self.churn;
        ChurnReport {
            source,
            start_ns: c.epoch.saturating_mul(self.bucket_ns),
            ts_ns: ts,
            evicted: c.evicted,
            rejected: c.rejected,
            max_evicted: c.max_evicted,
            max_rejected: c.max_rejected,
            len: self.len,
            cap: self.cap(),
            total_evictions: self.evictions,
            total_rejected: self.rejected,
        }
    }

    /// The doorkeeper: the slot of `key`, admitting it once it has shown two distinct
    /// `item`s (and won its set, see `admit`). Returns the slot and the first item
    /// (with its time) when it was just admitted.
    #[inline]
    fn lookup_or_admit(
        &mut self,
        key: u64,
        h: u64,
        item: u64,
        ts: i64,
    ) -> Option<(usize, Option<(u64, i64)>)> {
        if let Some(i) = self.find(key, h) {
            return Some((i, None));
        }
        self.at_door(key, h, item, ts)
    }

    /// The door entry to replace for a newcomer with hash `h`: an empty or stale one,
    /// else one that has shown the least, picked among equals from `r`'s bits (a
    /// target's hash): a flood of single probes displaces a waiting key only by chance
    /// (3 in 4 that it survives each newcomer in its set), never for being the oldest.
    #[inline]
    fn door_victim(&self, h: u64, r: u64, ts: i64) -> usize {
        let base = (h.rotate_left(29) as usize & self.door_mask) * DOOR_WAYS;
        let horizon = self.bucket_ns.saturating_mul(self.buckets as i64);
        let start = (r >> 32) as usize;
        let mut at = base;
        let mut least = u32::MAX;
        for k in 0..DOOR_WAYS {
            let d = base + (start + k) % DOOR_WAYS;
            let e = &self.door[d];
            if e.tag == 0 || ts.saturating_sub(e.first_ts) >= horizon {
                return d;
            }
            let keep = e.keep(secs(ts));
            if keep < least {
                (at, least) = (d, keep);
            }
        }
        at
    }

    /// A key not in the table: counted at its door entry (a `DOOR_WAYS`-way set; a
    /// newcomer replaces the entry that has shown the least), admitted from there once
    /// it has shown two distinct targets, counting any value written back to it.
    #[inline(never)]
    fn at_door(
        &mut self,
        key: u64,
        h: u64,
        item: u64,
        ts: i64,
    ) -> Option<(usize, Option<(u64, i64)>)> {
        let base = (h.rotate_left(29) as usize & self.door_mask) * DOOR_WAYS;
        let tag = door_tag(h);
        let bit = 1u32 << (item >> 59); // one of 32 bits, from the item's top bits
        let horizon = self.bucket_ns.saturating_mul(self.buckets as i64);
        let Some(d) = (base..base + DOOR_WAYS).find(|&d| {
            self.door[d].tag == tag && ts.saturating_sub(self.door[d].first_ts) < horizon
        }) else {
            let d = self.door_victim(h, item, ts);
            self.door[d] = Door {
                tag,
                bits: bit,
                floor: 0,
                touched: secs(ts),
                first: item,
                first_ts: ts,
            };
            return None;
        };
        let mut e = self.door[d];
        if e.bits & bit != 0 {
            return None; // the same target again
        }
        if e.bits == 0 {
            // Written back: the first item since then (the time stays the key's first).
            e.first = item;
        }
        e.bits |= bit;
        e.touched = secs(ts);
        let seen = e.weight();
        if seen < 2 {
            self.door[d] = e;
            return None;
        }
        // The first item and this one go into the sketch; the rest is carried.
        let fresh = e.bits.count_ones().min(2);
        self.door[d] = Door::default(); // before a write-back may want the entry
        let i = self.admit(key, h, seen, seen - fresh, ts);
        self.meta[i].first_ns = e.first_ts.min(ts);
        let first = (e.first != item).then_some((e.first, e.first_ts));
        Some((i, first))
    }

    /// Move slot `i` to bucket `epoch`: clear the ring slots it skips (past the horizon)
    /// and rebuild the merged sketches if any held something. False when `epoch` is
    /// already past the horizon of the slot (a late packet: not counted).
    #[inline]
    fn advance(&mut self, i: usize, epoch: i64) -> bool {
        if self.meta[i].epoch == epoch {
            return true; // the common case: the same bucket as the last packet
        }
        self.rotate(i, epoch)
    }

    #[cold]
    fn rotate(&mut self, i: usize, epoch: i64) -> bool {
        let b = self.buckets as i64;
        let meta = &mut self.meta[i];
        if meta.epoch == i64::MIN {
            meta.epoch = epoch;
            return true;
        }
        if epoch <= meta.epoch {
            return meta.epoch - epoch < b;
        }
        let steps = (epoch - meta.epoch).min(b);
        let mut cleared = false;
        let regs = &mut self.regs[i * self.per_slot..(i + 1) * self.per_slot];
        for e in epoch - steps + 1..=epoch {
            let slot = e.rem_euclid(b) as usize;
            if meta.live & (1 << slot) != 0 {
                cleared = true; // zeroed when it next becomes live
                meta.live &= !(1 << slot);
            }
        }
        meta.epoch = epoch;
        if cleared {
            for c in 0..self.counters {
                let merged = (self.counters * self.buckets + c) * self.m;
                let (ring, rest) = regs.split_at_mut(merged);
                let out = &mut rest[..self.m];
                out.fill(0);
                for slot in 0..self.buckets {
                    if meta.live & (1 << slot) != 0 {
                        let at = (c * self.buckets + slot) * self.m;
                        for (o, &r) in out.iter_mut().zip(&ring[at..at + self.m]) {
                            *o = (*o).max(r);
                        }
                    }
                }
                meta.sums[c] = HllSums::of(out);
            }
        }
        true
    }

    /// Count hash `h` in counter `c` of slot `i` at bucket `epoch`; true when the merged
    /// sketch grew (the value is new to the horizon, or looks it).
    #[inline]
    fn add(&mut self, i: usize, c: usize, epoch: i64, h: u64) -> bool {
        if !self.advance(i, epoch) {
            return false;
        }
        let slot = epoch.rem_euclid(self.buckets as i64) as usize;
        let (idx, rank) = hll_slot(self.p, h);
        let base = i * self.per_slot;
        let ring = base + (c * self.buckets + slot) * self.m + idx;
        let merged = base + (self.counters * self.buckets + c) * self.m + idx;
        if self.meta[i].live & (1 << slot) == 0 {
            // A bucket starts (or a reused slot's old data is dropped): zero it.
            self.meta[i].live |= 1 << slot;
            self.meta[i].bucket_probes[slot] = 0;
            for k in 0..self.counters {
                let at = base + (k * self.buckets + slot) * self.m;
                self.regs[at..at + self.m].fill(0);
            }
        }
        if rank > self.regs[ring] {
            self.regs[ring] = rank;
        }
        let old = self.regs[merged];
        if rank <= old {
            return false;
        }
        self.regs[merged] = rank;
        self.meta[i].sums[c].raise(old, rank);
        true
    }

    /// One probe at bucket `epoch` in the histogram of slot `i` (if still in it).
    #[inline]
    fn count_probe(&mut self, i: usize, epoch: i64) {
        let b = self.buckets as i64;
        let m = &mut self.meta[i];
        if m.epoch - epoch < b {
            let slot = epoch.rem_euclid(b) as usize;
            m.bucket_probes[slot] = m.bucket_probes[slot].saturating_add(1);
            m.probes += 1;
        }
    }

    /// The doorkeeper's first target of a key just admitted, counted as a probe.
    fn count_first(&mut self, i: usize, h: u64, epoch: i64) {
        if self.add(i, TARGETS, epoch, h) {
            self.count_probe(i, epoch);
        }
    }

    pub fn estimate(&self, i: usize, c: usize) -> f64 {
        self.meta[i].sums[c].estimate(self.p)
    }

    /// Probes per bucket of slot `i`, oldest bucket first (the horizon's histogram).
    pub fn histogram(&self, i: usize) -> Vec<u32> {
        let meta = &self.meta[i];
        let b = self.buckets as i64;
        (0..b)
            .map(|k| {
                let slot = (meta.epoch - b + 1 + k).rem_euclid(b) as usize;
                if meta.live & (1 << slot) != 0 {
                    meta.bucket_probes[slot]
                } else {
                    0
                }
            })
            .collect()
    }
}

/// What reaches Python: a key that passed every gate. Rare: once per key and suppress_ns.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// True for a source /64, false for a destination /64.
    pub source: bool,
    pub prefix: [u8; 8],
    pub targets: f64,
    pub responders: f64,
    pub ratio: f64,
    /// Distinct source /64s (destination keys; 0 for sources).
    pub source_prefixes: f64,
    pub first_ns: i64,
    pub last_ns: i64,
    pub probes: u64,
    pub histogram: Vec<u32>,
    pub peak_window: f64,
    pub recent: Vec<[u8; 16]>,
    pub bytes_per_key: usize,
    pub packet: Ipv6Packet,
}

/// The slow-scan state and logic.
pub struct SlowCore {
    pub cfg: Config,
    bits: Bits,
    pub sources: Table,
    pub dests: Table,
    /// Churn reports not yet taken (rare: once per table and bucket).
    pub churn: Vec<ChurnReport>,
    /// The tables' hash key: where a /64 lands cannot be aimed.
    salt: u64,
}

impl SlowCore {
    pub fn new(cfg: Config, salt: u64) -> Self {
        SlowCore {
            bits: Bits {
                medium: bits_for(cfg.sweep_medium),
                wide_targets: bits_for(cfg.wide_targets),
                wide_prefixes: bits_for(cfg.wide_prefixes),
            },
            sources: Table::new(
                cfg.max_sources,
                2,
                cfg.precision,
                cfg.buckets,
                cfg.bucket_ns,
                cfg.churn_ratio,
            ),
            dests: Table::new(
                cfg.max_destinations,
                3,
                cfg.precision,
                cfg.buckets,
                cfg.bucket_ns,
                cfg.churn_ratio,
            ),
            churn: Vec::new(),
            cfg,
            salt,
        }
    }

    /// Count one packet; push a key that passed every gate to `out`.
    #[inline]
    pub fn on_packet(&mut self, pk: &Ipv6Packet, out: &mut Vec<Outcome>) {
        // Most packets (established TCP, ND) leave here, before any call or hash.
        let (probe, reply) = match role(pk) {
            Role::Probe(_) => (true, false),
            Role::Reply => (false, true),
            Role::Either => (true, true),
            Role::Other => return,
        };
        if addressed(pk) {
            self.counted(pk, probe, reply, out);
        }
    }

    /// A probe or a reply of addressed traffic: the tables.
    #[inline(never)]
    fn counted(&mut self, pk: &Ipv6Packet, probe: bool, reply: bool, out: &mut Vec<Outcome>) {
        let ((s64, s_iid), (d64, d_iid)) = (halves(&pk.ip.src), halves(&pk.ip.dst));
        let (hs, hd) = (mix64(s64 ^ self.salt), mix64(d64 ^ self.salt));
        let ts = pk.meta.ts_ns;
        let epoch = ts.div_euclid(self.cfg.bucket_ns);
        if reply {
            // Anything answering a tracked source /64, or sent by a tracked destination
            // /64's hosts, is a reply.
            let h_src = mix64(mix64(s_iid) ^ s64);
            if let Some(i) = self.sources.find(d64, hd) {
                self.sources.add(i, RESPONDERS, epoch, h_src);
            }
            if let Some(i) = self.dests.find(s64, hs) {
                self.dests.add(i, RESPONDERS, epoch, h_src);
            }
        }
        if !probe || answers_destination(pk) || s64 == 0 || d64 == 0 {
            return;
        }
        let h_iid = mix64(d_iid);
        let h_dst = mix64(h_iid ^ d64);
        if let Some((i, first)) = self.sources.lookup_or_admit(s64, hs, h_dst, ts) {
            if let Some((h, t)) = first {
                self.sources
                    .count_first(i, h, t.div_euclid(self.cfg.bucket_ns));
            }
            self.on_probe(true, i, pk, d64, h_dst, epoch, out);
        }
        if let Some((i, first)) = self.dests.lookup_or_admit(d64, hd, h_iid, ts) {
            if let Some((h, t)) = first {
                self.dests
                    .count_first(i, h, t.div_euclid(self.cfg.bucket_ns));
            }
            self.on_probe(false, i, pk, s64, h_iid, epoch, out);
        }
        if self.sources.churning | self.dests.churning {
            self.take_churn(ts);
        }
    }

    #[cold]
    fn take_churn(&mut self, ts: i64) {
        if self.sources.churning {
            self.churn.push(self.sources.churn_report(true, ts));
        }
        if self.dests.churning {
            self.churn.push(self.dests.churn_report(false, ts));
        }
    }

    /// A probe counted in slot `i` of the source (`source`) or destination table; `peer`
    /// is the other side's /64.
    #[allow(clippy::too_many_arguments)]
    fn on_probe(
        &mut self,
        source: bool,
        i: usize,
        pk: &Ipv6Packet,
        peer: u64,
        h: u64,
        epoch: i64,
        out: &mut Vec<Outcome>,
    ) {
        let cfg = &self.cfg;
        let t = if source {
            &mut self.sources
        } else {
            &mut self.dests
        };
        let ts = pk.meta.ts_ns;
        let bits = self.bits;
        let m = &mut t.meta[i];
        m.last_ns = m.last_ns.max(ts);
        // The sweep's window: a new one starts with the first probe past the last.
        if m.win_start == i64::MIN || ts.saturating_sub(m.win_start) >= cfg.sweep_window_ns {
            m.win_start = ts;
            m.win_targets = 0;
            m.win_peer = peer;
            m.win_multi = false;
            m.win_bits = 0;
        }
        m.win_multi |= peer != m.win_peer; // more than one /64: not one sweep tier
        m.win_bits |= 1u128 << (mix64(peer) & 127);
        let bit = 1u128 << (h & 127);
        if m.win_targets & bit == 0 {
            // The sweep's count of this window, as far as 128 bits tell it.
            m.win_targets |= bit;
            m.remember(if source { &pk.ip.dst } else { &pk.ip.src });
            let in_window = m.win_targets.count_ones();
            m.peak_window = m.peak_window.max(in_window);
            let swept = if source {
                (in_window >= bits.medium && !m.win_multi)
                    || (in_window >= bits.wide_targets
                        && m.win_bits.count_ones() >= bits.wide_prefixes)
            } else {
                in_window >= bits.medium
            };
            if swept {
                m.swept_ns = ts;
            }
        }
        if m.swept_ns != i64::MIN && ts.saturating_sub(m.swept_ns) < cfg.horizon_ns() {
            // The sweep's: nothing is counted for the horizon, so its targets never make
            // a slow scan later, and a flood costs the window's bits only.
            return;
        }
        let grew = t.add(i, TARGETS, epoch, h);
        t.count_probe(i, epoch);
        if !source {
            t.add(i, SOURCES, epoch, mix64(peer)); // the source /64, not the address
        }
        if !grew {
            return;
        }
        let m = &mut t.meta[i];
        if m.alerted_ns != i64::MIN && ts.saturating_sub(m.alerted_ns) < cfg.suppress_ns {
            return;
        }
        let targets = t.estimate(i, TARGETS);
        if targets < cfg.min_targets {
            return;
        }
        let source_prefixes = if source { 0.0 } else { t.estimate(i, SOURCES) };
        if !source && source_prefixes < cfg.min_source_prefixes {
            return;
        }
        let responders = t.estimate(i, RESPONDERS);
        let ratio = probe::no_reply_ratio(targets, responders);
        if ratio < cfg.min_no_reply {
            return; // checked again on the next new target: replies may stop
        }
        let histogram = t.histogram(i);
        let probes: u64 = histogram.iter().map(|&n| u64::from(n)).sum();
        let m = &t.meta[i];
        let horizon_start = (m.epoch - cfg.buckets as i64 + 1).saturating_mul(cfg.bucket_ns);
        let first_ns = m.first_ns.max(horizon_start);
        // A fast scan is ipv6.sweep's (one /64) or ipv6.tga_scan's (a few targets in
        // each of many /64s, which passes no sweep tier): not low-and-slow. Checked
        // again on the next new target, so a burst that goes on slowly is reported once
        // its average over the horizon falls below the rate.
        let span_s = m.last_ns.saturating_sub(first_ns) as f64 / 1e9;
        if probes as f64 > cfg.max_probe_rate * span_s {
            return;
        }
        let bytes_per_key = t.bytes_per_key();
        let m = &mut t.meta[i];
        m.alerted_ns = ts;
        out.push(Outcome {
            source,
            prefix: m.key.to_be_bytes(),
            targets,
            responders,
            ratio,
            source_prefixes,
            first_ns,
            last_ns: m.last_ns,
            probes,
            histogram,
            peak_window: linear_count_of(m.peak_window),
            recent: m.recent_peers(),
            bytes_per_key,
            packet: pk.clone(),
        });
    }

    /// (size, cap, evictions) of the source and destination tables (their rejected
    /// admissions are in the churn reports).
    pub fn table_stats(&self) -> [(usize, usize, u64); 2] {
        [
            (
                self.sources.len(),
                self.sources.cap(),
                self.sources.evictions(),
            ),
            (self.dests.len(), self.dests.cap(), self.dests.evictions()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::{Ipv6Header, Meta as PacketMeta};

    const S: i64 = 1_000_000_000;
    const SCANNER: u64 = 0x2001_0db8_0bad_0000;
    const DST: u64 = 0x2001_0db8_0001_0000;

    fn cfg() -> Config {
        Config {
            bucket_ns: 3600 * S,
            buckets: 24,
            precision: 6,
            min_targets: 200.0,
            min_no_reply: 0.5,
            min_source_prefixes: 8.0,
            max_probe_rate: 2.0,
            suppress_ns: 86400 * S,
            max_sources: 4096,
            max_destinations: 4096,
            churn_ratio: 1.0,
            sweep_window_ns: 300 * S,
            sweep_medium: 100.0,
            wide_targets: 128.0,
            wide_prefixes: 64.0,
        }
    }

    fn addr(prefix: u64, iid: u64) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&prefix.to_be_bytes());
        a[8..].copy_from_slice(&iid.to_be_bytes());
        a
    }

    fn pkt(ts_ns: i64, src: [u8; 16], dst: [u8; 16], icmp: u8) -> Ipv6Packet {
        Ipv6Packet {
            meta: PacketMeta {
                ts_ns,
                linktype: 1,
                wire_len: 62,
                ..PacketMeta::default()
            },
            ip: Ipv6Header {
                src,
                dst,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 8,
                chain: Default::default(),
                upper: 58,
                fragment: None,
                tunnels: Default::default(),
            },
            sport: None,
            dport: None,
            icmp_type: Some(icmp),
            icmp_code: Some(0),
            tcp_flags: None,
            quoted_src: None,
        }
    }

    /// `n` echo requests from `src`, `every_ns` apart from `start`, to addresses of the
    /// `prefixes` /64s in turn; the alerts.
    fn scan(
        core: &mut SlowCore,
        src: [u8; 16],
        n: u64,
        start: i64,
        every_ns: i64,
        prefixes: u64,
    ) -> Vec<Outcome> {
        let mut out = Vec::new();
        for i in 0..n {
            let dst = addr(DST + i % prefixes, mix64(i + start as u64));
            core.on_packet(&pkt(start + i as i64 * every_ns, src, dst, 128), &mut out);
        }
        out
    }

    #[test]
    fn a_fast_scan_over_many_64s_is_not_slow_until_its_average_is() {
        // 300 probes in 3 s over 50 /64s: 6 per /64, no sweep tier, but 100 per second.
        // That is a target-generation scan (ipv6.tga_scan's), not a slow one.
        let mut core = SlowCore::new(cfg(), 7);
        let src = addr(SCANNER, 1);
        assert!(scan(&mut core, src, 300, 0, S / 100, 50).is_empty());
        // It goes on at one probe a minute: reported once the average over the horizon
        // (first probe to now) falls below max_probe_rate, and not suppressed before.
        let out = scan(&mut core, src, 60, 10 * S, 60 * S, 50);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].probes as f64 <= 2.0 * (out[0].last_ns - out[0].first_ns) as f64 / 1e9);
    }

    #[test]
    fn a_slow_scan_fires_once_and_reports_its_buckets() {
        let mut core = SlowCore::new(cfg(), 7);
        let out = scan(&mut core, addr(SCANNER, 1), 400, 0, 60 * S, 1);
        assert_eq!(out.len(), 1, "{out:?}");
        let o = &out[0];
        assert!(o.source && o.targets >= 200.0 && o.ratio == 1.0);
        assert_eq!(
            o.probes,
            o.histogram.iter().map(|&n| u64::from(n)).sum::<u64>()
        );
        assert!(o.histogram.iter().filter(|&&n| n > 0).count() >= 3);
        assert_eq!(o.first_ns, 0);
        // One source /64: the destination /64 is not a fan-in.
        assert_eq!(core.table_stats()[0].0, 1);
    }

    #[test]
    fn a_fast_sweep_is_the_sweeps_and_a_spread_fast_scan_is_not() {
        // 300 targets in one /64 at 10 a second: ipv6.sweep's medium tier.
        let mut core = SlowCore::new(cfg(), 7);
        assert!(scan(&mut core, addr(SCANNER, 1), 300, 0, S / 10, 1).is_empty());
        // More probes later in the horizon do not make it a slow scan either.
        assert!(scan(&mut core, addr(SCANNER, 1), 300, 3600 * S, 60 * S, 1).is_empty());
        // 100 a second over 200 /64s: a wide scan.
        let mut core = SlowCore::new(cfg(), 7);
        assert!(scan(&mut core, addr(SCANNER, 1), 400, 0, S / 100, 200).is_empty());
        // 400 targets over four /64s at 1 a second: 75 per /64 and window, no sweep tier
        // and not wide, so it is the slow scan's.
        let mut core = SlowCore::new(cfg(), 7);
        let out = scan(&mut core, addr(SCANNER, 1), 400, 0, S, 4);
        assert_eq!(out.len(), 1);
        let delay = out[0].packet.meta.ts_ns / S;
        assert!((150..=260).contains(&delay), "delay {delay} s");
    }

    #[test]
    fn targets_older_than_the_horizon_fall_out() {
        let mut core = SlowCore::new(cfg(), 7);
        let src = addr(SCANNER, 1);
        assert!(scan(&mut core, src, 150, 0, 30 * S, 1).is_empty());
        // 30 hours later: the first 150 have left the 24 h horizon.
        assert!(scan(&mut core, src, 150, 30 * 3600 * S, 30 * S, 1).is_empty());
        let i = core.sources.find(SCANNER, mix64(SCANNER ^ 7)).unwrap();
        let est = core.sources.estimate(i, TARGETS);
        assert!((120.0..180.0).contains(&est), "{est}");
        // Within the horizon they add up.
        let mut core = SlowCore::new(cfg(), 7);
        scan(&mut core, src, 150, 0, 30 * S, 1);
        assert_eq!(scan(&mut core, src, 150, 10 * 3600 * S, 30 * S, 1).len(), 1);
    }

    #[test]
    fn answered_targets_hold_the_gate() {
        let mut core = SlowCore::new(cfg(), 7);
        let mut out = Vec::new();
        let src = addr(SCANNER, 1);
        for i in 0..400u64 {
            let dst = addr(DST + i % 40, i + 1);
            let ts = i as i64 * 120 * S;
            core.on_packet(&pkt(ts, src, dst, 128), &mut out);
            core.on_packet(&pkt(ts + 1000, dst, src, 129), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_dns_server_answering_many_clients_over_a_day_is_silent() {
        // UDP is both a probe and a reply: the server's answers to 400 clients count
        // as 400 targets of its /64, and the clients' queries as 400 responders.
        let mut core = SlowCore::new(cfg(), 7);
        let mut out = Vec::new();
        let server = addr(DST, 0x53);
        for i in 0..400u64 {
            let client = addr(0x2001_0db8_4000_0000 + (i << 16), 0x10 + i);
            let ts = i as i64 * 200 * S;
            for (src, dst) in [(client, server), (server, client)] {
                let mut p = pkt(ts, src, dst, 0);
                p.icmp_type = None;
                p.ip.upper = 17;
                core.on_packet(&p, &mut out);
            }
        }
        assert!(out.is_empty(), "{out:?}");
        let i = core.sources.find(DST, mix64(DST ^ 7)).unwrap();
        assert!(core.sources.estimate(i, TARGETS) >= 300.0);
    }

    #[test]
    fn random_sources_stay_at_the_door_and_a_fan_in_is_seen() {
        let mut core = SlowCore::new(cfg(), 7);
        let mut out = Vec::new();
        for i in 0..300u64 {
            let src = addr(0x2001_0db8_4000_0000 + (i << 16), 0x10);
            let dst = addr(DST, mix64(i));
            core.on_packet(&pkt(i as i64 * 120 * S, src, dst, 128), &mut out);
        }
        assert_eq!(core.table_stats()[0], (0, 4096, 0));
        assert_eq!(core.table_stats()[1].0, 1);
        assert_eq!(out.len(), 1);
        assert!(!out[0].source && out[0].source_prefixes >= 200.0);
    }

    #[test]
    fn tables_are_capped_and_count_evictions() {
        let mut c = cfg();
        c.max_sources = 16;
        let mut core = SlowCore::new(c, 7);
        for k in 0..64u64 {
            scan(
                &mut core,
                addr(0x2001_0db8_7000_0000 + k, 1),
                3,
                k as i64,
                1,
                1,
            );
        }
        let (len, cap, evicted) = core.table_stats()[0];
        assert_eq!((len, cap), (16, 16));
        // Each newcomer shows two or three targets at the door; a resident holds three.
        // Every admission past the first 16 costs a key its slot (evicted, or refused
        // from the probation way), but for a few whose door entry a written-back value
        // took before their second target.
        assert!(evicted > 0 && evicted + core.sources.rejected() >= 40);
    }

    /// One slow scan (1 probe/s, 400 targets over four /64s) and `keys` random source
    /// /64s with `each` targets apiece, in a burst of `keys / 10` every 30 s from 15 s;
    /// the source alerts.
    fn scan_in_flood(core: &mut SlowCore, keys: u64, each: u64) -> Vec<Outcome> {
        let mut out = Vec::new();
        let src = addr(SCANNER, 1);
        let per_burst = keys / 10;
        let mut flood = (0..keys)
            .map(|k| {
                let t = (15 + 30 * (k / per_burst)) as i64 * S
                    + (2 * S / per_burst as i64) * (k % per_burst) as i64;
                (t, 0x2001_0db8_0000_0000 | (mix64(k) >> 32))
            })
            .peekable();
        for n in 0..400u64 {
            while let Some(&(t, key)) = flood.peek() {
                if t >= n as i64 * S {
                    break;
                }
                flood.next();
                for j in 0..each {
                    let dst = addr(0x2001_0db8_e000_0000 | (mix64(key) >> 36), j + 1);
                    core.on_packet(&pkt(t + j as i64, addr(key, 1), dst, 128), &mut out);
                }
            }
            let dst = addr(DST + n % 4, mix64(n));
            core.on_packet(&pkt(n as i64 * S, src, dst, 128), &mut out);
        }
        out.retain(|o| o.source);
        out
    }

    #[test]
    fn a_flood_of_two_target_sources_does_not_evict_a_slow_scan() {
        // Tables of 64 (16 sets): each burst of 20,000 keys puts 1,250 into every set,
        // where the least recently used way would have been the scanner's each time.
        let mut c = cfg();
        c.max_sources = 64;
        c.max_destinations = 64;
        let mut core = SlowCore::new(c, 7);
        let out = scan_in_flood(&mut core, 200_000, 2);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].prefix, SCANNER.to_be_bytes());
        let delay = out[0].packet.meta.ts_ns / S;
        assert!((150..=260).contains(&delay), "delay {delay} s");
        // The flood churned among itself, and that was reported once per table and
        // bucket, with the most targets an evicted key held.
        let (_, cap, evicted) = core.table_stats()[0];
        assert!(evicted > 100_000, "{evicted}");
        let mut churn: Vec<_> = core
            .churn
            .iter()
            .map(|c| (c.source, c.cap, c.max_evicted))
            .collect();
        churn.sort();
        assert_eq!(churn, [(false, cap, 2), (true, cap, 2)]);
    }

    #[test]
    fn a_flood_of_richer_sources_only_delays_a_slow_scan_it_cannot_outgrow() {
        // Sources with eight targets each win against the scanner only while it holds
        // fewer than eight: past that, it stays.
        let mut c = cfg();
        c.max_sources = 64;
        let mut core = SlowCore::new(c, 7);
        assert_eq!(scan_in_flood(&mut core, 50_000, 8).len(), 1);
    }

    #[test]
    fn a_full_table_gives_newcomers_its_probation_way_until_its_keys_go_idle() {
        let mut c = cfg();
        c.max_sources = 16;
        let mut core = SlowCore::new(c, 7);
        // Sources with 20 targets each fill the table.
        for k in 0..64u64 {
            scan(
                &mut core,
                addr(0x2001_0db8_7000_0000 + k, 1),
                20,
                k as i64,
                1,
                1,
            );
        }
        assert_eq!(core.table_stats()[0].0, 16);
        let (evicted, rejected) = (core.table_stats()[0].2, core.sources.rejected());
        // Newcomers with three targets take their set's probation way one after the
        // other: the first displaces a key worth 20, which takes a main way (it is worth
        // as much as the least of them); the later ones displace newcomers worth three,
        // which are refused. The main ways keep keys worth 20.
        let newcomer = |k: u64| 0x2001_0db8_7100_0000 + k;
        for k in 0..16u64 {
            scan(&mut core, addr(newcomer(k), 1), 3, S, 1, 1);
        }
        let resident = |core: &SlowCore, f: &dyn Fn(u64) -> u64| {
            (0..16)
                .filter(|&k| core.sources.find(f(k), mix64(f(k) ^ 7)).is_some())
                .count() as u64
        };
        assert!(core.table_stats()[0].2 - evicted <= 4);
        assert!(core.sources.rejected() - rejected >= 8);
        assert!((1..=4).contains(&resident(&core, &newcomer)));
        // Once the keys of 20 have been idle for three whole buckets (20 / 8 < 3), the
        // newcomers take main ways (four per set; the sets are uneven).
        let fresh = |k: u64| 0x2001_0db8_7200_0000 + k;
        for k in 0..16u64 {
            scan(&mut core, addr(fresh(k), 1), 3, 4 * 3600 * S, 1, 1);
        }
        assert!(resident(&core, &fresh) >= 8);
    }

    /// Feed packets `(ts, src, dst)` in time order; the source alerts.
    fn run(core: &mut SlowCore, mut pkts: Vec<(i64, [u8; 16], [u8; 16])>) -> Vec<Outcome> {
        pkts.sort_by_key(|p| p.0);
        let mut out = Vec::new();
        for (ts, src, dst) in pkts {
            core.on_packet(&pkt(ts, src, dst, 128), &mut out);
        }
        out.retain(|o| o.source);
        out
    }

    /// The slow scan (1 probe/s, 400 targets over four /64s) from `start_s`.
    fn slow(start_s: i64) -> Vec<(i64, [u8; 16], [u8; 16])> {
        (0..400u64)
            .map(|n| {
                let dst = addr(DST + n % 4, mix64(n));
                ((start_s + n as i64) * S, addr(SCANNER, 1), dst)
            })
            .collect()
    }

    /// `rate` random source /64s a second for `secs` from 0, `each` targets apiece.
    fn steady(rate: u64, secs: u64, each: u64) -> Vec<(i64, [u8; 16], [u8; 16])> {
        (0..rate * secs)
            .flat_map(|k| {
                let key = 0x2001_0db8_0000_0000 | (mix64(k ^ 0x5eed) >> 32);
                let t = (k * S as u64 / rate) as i64;
                (0..each).map(move |j| {
                    let dst = addr(0x2001_0db8_e000_0000 | (mix64(key) >> 36), j + 1);
                    (t + j as i64, addr(key, 1), dst)
                })
            })
            .collect()
    }

    fn delay_s(out: &[Outcome], start_s: i64) -> i64 {
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].prefix, SCANNER.to_be_bytes());
        out[0].packet.meta.ts_ns / S - start_s
    }

    #[test]
    fn a_scan_that_starts_inside_a_sustained_two_target_flood_fires() {
        // A table of 64 and 200 two-target source /64s a second from 0 to the end; the
        // scan starts at 60 s. Among keys worth two, the one that spanned least time
        // (a burst) goes first, so the scanner reaches three targets and stays.
        let mut c = cfg();
        c.max_sources = 64;
        c.max_destinations = 64;
        let mut pkts = steady(200, 470, 2);
        pkts.extend(slow(60));
        for salt in 1..=6 {
            let mut core = SlowCore::new(c.clone(), salt);
            let delay = delay_s(&run(&mut core, pkts.clone()), 60);
            println!("delay inside a sustained flood (key {salt}): {delay} s");
            assert!((150..=300).contains(&delay), "delay {delay} s");
        }
    }

    #[test]
    fn residents_worth_more_than_a_door_shows_do_not_lock_newcomers_out() {
        // 64 busy source /64s with 40 targets each fill a table of 16 (every main way
        // worth 40, more than the 32 bits of a door entry can show). The scanner gets a
        // probation way and counts there; alone, it stays there and fires.
        let mut c = cfg();
        c.max_sources = 16;
        let busy = |extra: Vec<(i64, [u8; 16], [u8; 16])>| busy_with(&c, 7, extra);
        let (_, out) = busy(Vec::new());
        let delay = delay_s(&out, 60);
        println!("delay with the main ways worth 40: {delay} s");
        // With newcomers of two targets (50 a second, 12 per set) churning the probation
        // ways too, the scanner is refused with what it showed, which is written back to
        // its door entry: it comes back worth one more each probe, takes a main way once
        // worth 40, and fires later. The 48 busy keys that lost their slots and never
        // come back fill door ways too, until they have been untouched for minutes:
        // whatever the sets (the hash key), the scanner fires.
        for salt in 1..=12 {
            let (core, out) = busy_with(&c, salt, steady(50, 470, 2));
            let delay = delay_s(&out, 60);
            println!("delay with the main ways worth 40 and a flood (key {salt}): {delay} s");
            assert!(delay <= 400, "delay {delay} s");
            // The churn shows the refusals and what the refused had shown.
            let most = core
                .churn
                .iter()
                .filter(|c| c.source)
                .map(|c| c.max_rejected)
                .max();
            assert!(most >= Some(16), "{:?}", core.churn);
        }
    }

    fn busy_with(
        c: &Config,
        salt: u64,
        extra: Vec<(i64, [u8; 16], [u8; 16])>,
    ) -> (SlowCore, Vec<Outcome>) {
        let mut core = SlowCore::new(c.clone(), salt);
        let mut pkts: Vec<_> = (0..64u64)
            .flat_map(|k| {
                (0..40u64).map(move |j| {
                    let src = addr(0x2001_0db8_7000_0000 + k, 1);
                    (k as i64 * 1000 + j as i64, src, addr(DST + 8, mix64(j)))
                })
            })
            .collect();
        pkts.extend(slow(60));
        pkts.extend(extra);
        let out = run(&mut core, pkts);
        (core, out)
    }

    #[test]
    fn a_flood_of_single_probes_does_not_keep_a_scanner_at_the_door() {
        // A table of 64 (a door of 64 four-way sets) and 256 single-probe source /64s a
        // second: four newcomers per door set and second, which would wipe a
        // direct-mapped entry between the scanner's probes.
        let mut c = cfg();
        c.max_sources = 64;
        c.max_destinations = 64;
        let mut pkts = steady(256, 460, 1);
        pkts.extend(slow(30));
        for salt in 1..=6 {
            let mut core = SlowCore::new(c.clone(), salt);
            let delay = delay_s(&run(&mut core, pkts.clone()), 30);
            println!("delay inside a single-probe flood (key {salt}): {delay} s");
            assert!((150..=300).contains(&delay), "delay {delay} s");
        }
    }

    #[test]
    fn churn_is_reported_once_per_table_and_bucket() {
        let mut c = cfg();
        c.max_sources = 16;
        c.churn_ratio = 2.0; // 32 evictions or rejections in one bucket
        let mut core = SlowCore::new(c, 7);
        for hour in 0..2i64 {
            for k in 0..200u64 {
                let src = addr(0x2001_0db8_7000_0000 + (hour as u64) * 1000 + k, 1);
                scan(&mut core, src, 2, hour * 3600 * S + k as i64, 1, 1);
            }
        }
        let churn: Vec<_> = core
            .churn
            .iter()
            .filter(|c| c.source)
            .map(|c| {
                (
                    c.start_ns / (3600 * S),
                    c.evicted + c.rejected,
                    c.max_evicted,
                )
            })
            .collect();
        assert_eq!(churn, [(0, 32, 2), (1, 32, 2)]);
    }

    #[test]
    fn thresholds_become_the_fewest_bits_that_reach_them() {
        for n in [1.0, 64.0, 100.0, 128.0, 300.0] {
            let b = bits_for(n);
            assert!(
                linear_count_of(b) >= n && linear_count_of(b - 1) < n,
                "{n}: {b}"
            );
        }
        assert_eq!(bits_for(1e9), 128); // past what 128 bits tell: only when saturated
        assert_eq!(linear_count_of(128), f64::INFINITY);
    }

    #[test]
    fn memory_per_key_is_fixed() {
        let core = SlowCore::new(cfg(), 7);
        // 2 (sources) or 3 (destinations) counters x (24 buckets + merged) x 64 registers,
        // plus the key's figures, its tag and its doorkeeper share.
        let (s, d) = (core.sources.bytes_per_key(), core.dests.bytes_per_key());
        println!("bytes per key: source {s}, destination {d}");
        assert_eq!(d - s, 25 * 64);
    }
}
