//! IPv6 fragment reassembly with bounded memory (RFC 8200 4.5, RFC 5722).
//!
//! Owns the table of datagrams in flight: it stores fragments, detects overlaps,
//! expires datagrams on packet time and evicts the oldest when a cap is reached. It
//! does not parse headers: `ip` gives it the unfragmentable prefix and the fragment
//! payload, and walks the reassembled bytes itself.
//!
//! Overlapping fragments make the datagram invalid (RFC 5722): it is reported once and
//! never reassembled as a normal packet. Hosts that ignore RFC 5722 keep either the first
//! or the last copy of the overlapping bytes, so the table keeps collecting such a
//! datagram's fragments (within the same caps) and, once they cover it, hands back both
//! readings (`Completed::variant`: first-copy-wins and last-copy-wins) for the decoder to
//! judge what each host would have seen; after that it discards the datagram's later
//! fragments until it times out. Datagrams without overlap never pay for this: one flag.
//! Exact duplicates, common on span ports that mirror both directions, are dropped
//! without complaint.
//!
//! Order: datagrams leave by age of their first fragment (insertion order, never
//! refreshed), which a `BTreeMap` keyed by an insertion sequence gives with O(log n)
//! removal from the middle when a datagram completes.

use crate::reduce::windows::KeyedState;
use std::collections::{BTreeMap, HashMap};

use super::events::*;

/// Payload length limit without jumbograms.
pub const MAX_DATAGRAM: usize = 65535;

/// Caps for the reassembly table (Python `ReassemblyLimits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyLimits {
    pub timeout_ns: i64,
    pub max_datagrams: usize,
    pub max_bytes: usize,
    /// Per datagram; far above any honest MTU split.
    pub max_fragments: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            timeout_ns: 60 * 1_000_000_000,
            max_datagrams: 4096,
            max_bytes: 16 * 1024 * 1024,
            max_fragments: 128,
        }
    }
}

/// What identifies a datagram: addresses and id, plus the tunnels and link (interface,
/// VLANs) it travels on, since the same triple on two links is two datagrams.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ident: u32,
    pub tunnels: Tunnels,
    pub iface: u32,
    pub vlans: Vlans,
}

impl FragKey {
    pub fn anomaly(&self, mut meta: Meta, kind: FragKind, origin: Origin) -> FragmentAnomaly {
        if matches!(kind, FragKind::Timeout | FragKind::Evicted) {
            // The datagram's own link, not the frame that pushed it out (or none, for
            // a timeout on the clock): fragment floods are counted per link.
            meta.iface = self.iface;
            meta.vlans = self.vlans;
        }
        FragmentAnomaly {
            meta,
            kind,
            src: self.src,
            dst: self.dst,
            ident: self.ident,
            tunnels: self.tunnels,
            origin_ns: origin.ts_ns,
            origin_frame: origin.frame,
        }
    }
}

/// The packet that started a datagram (its first fragment to arrive): a timed-out or
/// evicted datagram's anomaly names it, so an alert on incomplete datagrams can point at
/// a packet of the flood (`pcap_cnt`) although the clock, not a packet, timed it out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub ts_ns: i64,
    pub frame: u64,
}

/// An anomaly the table reports: the datagram, what happened, and its first packet.
pub type Anomaly = (FragKey, FragKind, Origin);

struct Datagram {
    seq: u64,
    first_ts: i64,
    /// Record number of the first fragment (`Reassembler.frame` when it arrived).
    first_frame: u64,
    /// IPv6 header + unfragmentable headers + Fragment header, from fragment 0.
    prefix: Option<Vec<u8>>,
    /// (offset, payload) in arrival order.
    pieces: Vec<(usize, Vec<u8>)>,
    /// Payload length once the last fragment is seen.
    total: Option<usize>,
    size: usize,
    first_chain_complete: bool,
    /// Overlap (or another problem) seen: drop everything until the timeout.
    dead: bool,
    /// Overlap seen and reported: pieces are kept in arrival order (copies included)
    /// until they cover the datagram, then both readings are built (RFC 5722 ignored).
    overlapped: bool,
    /// The first fragment 0's prefix, when a later fragment 0 replaced it (overlaps).
    first_prefix: Option<Vec<u8>>,
}

/// Which copy of overlapping bytes a reading of an overlapped datagram keeps.
pub const VARIANT_NONE: u8 = 0;
pub const VARIANT_FIRST: u8 = 1;
pub const VARIANT_LAST: u8 = 2;

/// A reassembled datagram: the prefix then the payload, in one buffer.
pub struct Completed {
    pub buf: Vec<u8>,
    pub count: u32,
    pub first_chain_complete: bool,
    /// `VARIANT_NONE` for a normal datagram; for an overlapped one, `VARIANT_FIRST` (this
    /// buffer) and `VARIANT_LAST` (`last`).
    pub variant: u8,
    /// The last-copy-wins reading of an overlapped datagram.
    pub last: Option<Vec<u8>>,
}

/// Bounded table of IPv6 datagrams awaiting fragments.
pub struct Reassembler {
    limits: ReassemblyLimits,
    table: HashMap<FragKey, Datagram, KeyedState>,
    order: BTreeMap<u64, FragKey>,
    next_seq: u64,
    bytes: usize,
    /// Record number of the fragment being added (set by the decoder before `add`), kept
    /// as a new datagram's `first_frame`.
    pub frame: u64,
}

impl Reassembler {
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            table: HashMap::default(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            frame: 0,
        }
    }

    pub fn limits(&self) -> &ReassemblyLimits {
        &self.limits
    }

    /// Datagrams in the table, dead ones included.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes held (payloads and prefixes).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams still incomplete (reported at the end of a capture).
    pub fn pending(&self) -> usize {
        self.table.values().filter(|d| d.live()).count()
    }

    fn oldest(&self) -> Option<&FragKey> {
        self.order.values().next()
    }

    fn drop_key(&mut self, key: &FragKey) -> Option<Datagram> {
        let dgram = self.table.remove(key)?;
        self.order.remove(&dgram.seq);
        self.bytes -= dgram.size;
        Some(dgram)
    }

    /// Drop datagrams older than the timeout, reporting `timeout` for live ones.
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<Anomaly>) {
        let deadline = now_ns.saturating_sub(self.limits.timeout_ns);
        while let Some(key) = self.oldest() {
            if self.table[key].first_ts > deadline {
                break;
            }
            let key = key.clone();
            let dgram = self.drop_key(&key);
            let origin = dgram.as_ref().map(Datagram::origin).unwrap_or_default();
            // A dead or overlapped datagram was already reported.
            if dgram.is_some_and(|d| d.live()) {
                out.push((key, FragKind::Timeout, origin));
            }
        }
    }

    /// Add one fragment; returns the completed datagram, if any. Anomalies (its own
    /// and evictions of others) go to `anomalies`.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        key: &FragKey,
        now_ns: i64,
        offset: usize,
        more: bool,
        payload: &[u8],
        prefix: &[u8],
        first_chain_complete: bool,
        anomalies: &mut Vec<Anomaly>,
    ) -> Option<Completed> {
        self.expire(now_ns, anomalies);
        if !self.table.contains_key(key) {
            if self.table.len() >= self.limits.max_datagrams {
                if let Some(old) = self.oldest().cloned() {
                    if let Some(d) = self.drop_key(&old) {
                        if d.live() {
                            anomalies.push((old, FragKind::Evicted, d.origin()));
                        }
                    }
                }
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, key.clone());
            self.table.insert(
                key.clone(),
                Datagram {
                    seq,
                    first_ts: now_ns,
                    first_frame: self.frame,
                    prefix: None,
                    pieces: Vec::new(),
                    total: None,
                    size: 0,
                    first_chain_complete: true,
                    dead: false,
                    overlapped: false,
                    first_prefix: None,
                },
            );
        }
        let max_fragments = self.limits.max_fragments;
        let dgram = self.table.get_mut(key)?;
        if dgram.dead {
            return None;
        }
        let end = offset + payload.len();
        let mut problem = None;
        if end > MAX_DATAGRAM {
            problem = Some(FragKind::Oversize);
        } else if (more && payload.len() % 8 != 0)
            || (!more && dgram.total.is_some_and(|t| t != end))
            || dgram.total.is_some_and(|t| end > t)
        {
            problem = Some(FragKind::InconsistentLength);
        } else if dgram.pieces.len() >= max_fragments {
            problem = Some(FragKind::TooManyFragments);
        }
        if problem.is_none() {
            match overlap(dgram, offset, payload) {
                Overlap::Duplicate => return None,
                Overlap::Yes if !dgram.overlapped => {
                    // Reported once; the pieces stay to build both readings.
                    dgram.overlapped = true;
                    let origin = dgram.origin();
                    anomalies.push((key.clone(), FragKind::Overlap, origin));
                }
                Overlap::Yes | Overlap::No => {}
            }
        }
        if problem.is_none() && !more && dgram.pieces.iter().any(|(o, p)| o + p.len() > end) {
            problem = Some(FragKind::InconsistentLength);
        }
        if let Some(kind) = problem {
            let reported = dgram.overlapped;
            self.bytes -= dgram.size;
            dgram.kill();
            // An overlapped datagram was reported already; its end is not news.
            if !reported {
                anomalies.push((key.clone(), kind, dgram.origin()));
            }
            return None;
        }
        if dgram.overlapped {
            // Every copy is kept, in arrival order, for the two readings.
            dgram.pieces.push((offset, payload.to_vec()));
        } else {
            // Keyed by offset like the Python dict it mirrors: an empty fragment at an
            // offset already held (no overlap by the rule above) replaces that piece.
            match dgram.pieces.iter_mut().find(|(o, _)| *o == offset) {
                Some(slot) => slot.1 = payload.to_vec(),
                None => dgram.pieces.push((offset, payload.to_vec())),
            }
        }
        dgram.size += payload.len();
        self.bytes += payload.len();
        if offset == 0 {
            dgram.size += prefix.len();
            self.bytes += prefix.len();
            if let Some(old) = dgram.prefix.replace(prefix.to_vec()) {
                if dgram.overlapped && dgram.first_prefix.is_none() {
                    dgram.first_prefix = Some(old);
                } else {
                    dgram.size -= old.len();
                    self.bytes -= old.len();
                }
            }
            dgram.first_chain_complete = first_chain_complete;
        }
        if !more {
            dgram.total = Some(end);
        }
        while self.bytes > self.limits.max_bytes && self.table.len() > 1 {
            let Some(old) = self.oldest().cloned() else {
                break;
            };
            if &old == key {
                break;
            }
            if let Some(d) = self.drop_key(&old) {
                if !d.dead {
                    anomalies.push((old, FragKind::Evicted, d.origin()));
                }
            }
        }
        self.complete(key)
    }

    fn complete(&mut self, key: &FragKey) -> Option<Completed> {
        let dgram = self.table.get(key)?;
        let total = dgram.total?;
        let prefix = dgram.prefix.as_ref()?;
        if dgram.overlapped {
            return self.complete_overlapped(key, total);
        }
        if dgram.size - prefix.len() != total {
            return None;
        }
        // Sizes add up and nothing overlaps, so the pieces tile [0, total).
        let mut dgram = self.drop_key(key)?;
        let prefix = dgram.prefix.take().unwrap_or_default();
        dgram.pieces.sort_unstable_by_key(|(o, _)| *o);
        let mut buf = Vec::with_capacity(prefix.len() + total);
        buf.extend_from_slice(&prefix);
        for (_, piece) in &dgram.pieces {
            buf.extend_from_slice(piece);
        }
        Some(Completed {
            buf,
            count: dgram.pieces.len() as u32,
            first_chain_complete: dgram.first_chain_complete,
            variant: VARIANT_NONE,
            last: None,
        })
    }

    /// An overlapped datagram whose pieces cover `[0, total)`: its first-copy-wins and
    /// last-copy-wins readings; the entry stays, dead, so later copies are dropped until
    /// the timeout. Bounded: the pieces are capped by `max_fragments` and `max_bytes`.
    fn complete_overlapped(&mut self, key: &FragKey, total: usize) -> Option<Completed> {
        let dgram = self.table.get_mut(key)?;
        let mut spans: Vec<(usize, usize)> = dgram
            .pieces
            .iter()
            .map(|(o, p)| (*o, o + p.len()))
            .collect();
        spans.sort_unstable();
        let mut covered = 0;
        for (start, end) in spans {
            if start > covered {
                return None;
            }
            covered = covered.max(end);
        }
        if covered < total {
            return None;
        }
        let last_prefix = dgram.prefix.take()?;
        let first_prefix = dgram
            .first_prefix
            .take()
            .unwrap_or_else(|| last_prefix.clone());
        let pieces = std::mem::take(&mut dgram.pieces);
        let count = pieces.len() as u32;
        let first_chain_complete = dgram.first_chain_complete;
        self.bytes -= dgram.size;
        dgram.kill();
        let read = |prefix: &[u8], first_wins: bool| {
            let mut body = vec![0u8; total];
            let mut set = vec![false; total];
            for (o, p) in &pieces {
                let end = (o + p.len()).min(total);
                for i in *o..end {
                    if !(first_wins && set[i]) {
                        body[i] = p[i - o];
                        set[i] = true;
                    }
                }
            }
            let mut buf = Vec::with_capacity(prefix.len() + total);
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(&body);
            buf
        };
        Some(Completed {
            buf: read(&first_prefix, true),
            count,
            first_chain_complete,
            variant: VARIANT_FIRST,
            last: Some(read(&last_prefix, false)),
        })
    }
}

impl Datagram {
    fn origin(&self) -> Origin {
        Origin {
            ts_ns: self.first_ts,
            frame: self.first_frame,
        }
    }

    /// Neither dead nor overlapped: its loss (timeout, eviction) is still news.
    fn live(&self) -> bool {
        !self.dead && !self.overlapped
    }

    /// Drop everything held and discard later fragments until the timeout (the caller
    /// takes `size` off the table's bytes first).
    fn kill(&mut self) {
        self.size = 0;
        self.pieces = Vec::new();
        self.prefix = None;
        self.first_prefix = None;
        self.dead = true;
    }
}

enum Overlap {
    No,
    Yes,
    Duplicate,
}

fn overlap(dgram: &Datagram, offset: usize, payload: &[u8]) -> Overlap {
    let end = offset + payload.len();
    if let Some((_, same)) = dgram.pieces.iter().find(|(o, _)| *o == offset) {
        if same == payload {
            return Overlap::Duplicate;
        }
    }
    if dgram
        .pieces
        .iter()
        .any(|(o, p)| *o < end && offset < o + p.len())
    {
        return Overlap::Yes;
    }
    Overlap::No
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u32) -> FragKey {
        FragKey {
            src: [1; 16],
            dst: [2; 16],
            ident,
            tunnels: Tunnels::default(),
            iface: 0,
            vlans: Vlans::default(),
        }
    }

    fn limits() -> ReassemblyLimits {
        ReassemblyLimits::default()
    }

    type Anoms = Vec<Anomaly>;

    fn add(
        r: &mut Reassembler,
        k: u32,
        ts: i64,
        off: usize,
        more: bool,
        p: &[u8],
        a: &mut Anoms,
    ) -> Option<Completed> {
        r.add(&key(k), ts, off, more, p, &[0x60; 48], true, a)
    }

    fn kinds(a: &Anoms) -> Vec<FragKind> {
        a.iter().map(|x| x.1).collect()
    }

    #[test]
    fn completes_in_any_order_and_drops_duplicates_quietly() {
        let mut r = Reassembler::new(limits());
        let mut a = Vec::new();
        assert!(add(&mut r, 1, 0, 8, false, &[2; 4], &mut a).is_none());
        assert!(add(&mut r, 1, 0, 8, false, &[2; 4], &mut a).is_none());
        let done = add(&mut r, 1, 0, 0, true, &[1; 8], &mut a).unwrap();
        assert_eq!(done.buf.len(), 48 + 12);
        assert_eq!(&done.buf[48..], &[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!((done.count, r.len(), r.bytes()), (2, 0, 0));
        assert!(a.is_empty());
    }

    #[test]
    fn overlap_kills_the_datagram_until_timeout() {
        let mut r = Reassembler::new(limits());
        let mut a = Vec::new();
        add(&mut r, 1, 0, 0, true, &[1; 16], &mut a);
        add(&mut r, 1, 0, 8, false, &[3; 16], &mut a);
        assert!(add(&mut r, 1, 0, 16, false, &[2; 8], &mut a).is_none());
        assert_eq!(kinds(&a), [FragKind::Overlap]);
        assert_eq!((r.len(), r.pending(), r.bytes()), (1, 0, 0));
        a.clear();
        r.expire(61 * 1_000_000_000, &mut a);
        assert!(a.is_empty() && r.is_empty()); // reported once, not again as a timeout
    }

    #[test]
    fn a_lost_datagram_names_its_first_fragment() {
        let mut r = Reassembler::new(limits());
        let mut a = Vec::new();
        r.frame = 7;
        add(&mut r, 1, 3, 8, true, &[1; 8], &mut a); // not the first by offset: by arrival
        r.frame = 9;
        add(&mut r, 1, 4, 0, true, &[1; 8], &mut a);
        assert!(a.is_empty());
        r.expire(61 * 1_000_000_000, &mut a);
        let origins: Vec<Origin> = a.iter().map(|x| x.2).collect();
        assert_eq!(kinds(&a), [FragKind::Timeout]);
        assert_eq!(origins, [Origin { ts_ns: 3, frame: 7 }]);
    }

    #[test]
    fn lengths_caps_and_timeouts() {
        let mut r = Reassembler::new(ReassemblyLimits {
            max_datagrams: 2,
            max_fragments: 2,
            max_bytes: 200,
            ..limits()
        });
        let mut a = Vec::new();
        add(&mut r, 1, 0, 0, true, &[1; 12], &mut a); // M=1 payload not a multiple of 8
        add(&mut r, 2, 0, 65528, false, &[1; 16], &mut a); // past 65535
        add(&mut r, 3, 0, 0, true, &[1; 8], &mut a); // evicts 1 (dead: quiet)
        assert_eq!(
            kinds(&a),
            [FragKind::InconsistentLength, FragKind::Oversize]
        );
        a.clear();
        add(&mut r, 3, 0, 8, true, &[1; 8], &mut a);
        add(&mut r, 3, 0, 16, true, &[1; 8], &mut a);
        assert_eq!(kinds(&a), [FragKind::TooManyFragments]);
        a.clear();
        add(&mut r, 4, 5, 0, true, &[1; 160], &mut a); // 48 + 160 > 200: evict older
        assert_eq!(r.len(), 1);
        a.clear();
        r.expire(5 + 60 * 1_000_000_000, &mut a);
        assert_eq!(kinds(&a), [FragKind::Timeout]);
    }

    #[test]
    fn overlap_builds_first_and_last_copy_readings_once() {
        let mut r = Reassembler::new(limits());
        let mut a = Vec::new();
        assert!(add(&mut r, 1, 0, 0, true, &[1; 16], &mut a).is_none());
        assert!(add(&mut r, 1, 0, 8, true, &[3; 16], &mut a).is_none());
        assert_eq!(kinds(&a), [FragKind::Overlap]);
        assert_eq!(r.pending(), 0); // no normal datagram will come of it
        let done = add(&mut r, 1, 0, 24, false, &[4; 8], &mut a).unwrap();
        assert_eq!(done.variant, VARIANT_FIRST);
        let body = |b: &[u8]| b[48..].to_vec();
        let first = [[1u8; 16].as_slice(), &[3; 8], &[4; 8]].concat();
        let last = [[1u8; 8].as_slice(), &[3; 16], &[4; 8]].concat();
        assert_eq!(body(&done.buf), first);
        assert_eq!(body(done.last.as_ref().unwrap()), last);
        assert_eq!((done.count, r.bytes()), (3, 0));
        // Later copies are dropped quietly until the timeout, which is not reported.
        assert!(add(&mut r, 1, 0, 0, true, &[9; 8], &mut a).is_none());
        assert_eq!(kinds(&a), [FragKind::Overlap]);
        a.clear();
        r.expire(61 * 1_000_000_000, &mut a);
        assert!(a.is_empty() && r.is_empty());
    }

    #[test]
    fn an_overlapped_datagram_that_never_completes_is_not_reported_again() {
        let mut r = Reassembler::new(ReassemblyLimits {
            max_datagrams: 1,
            ..limits()
        });
        let mut a = Vec::new();
        add(&mut r, 1, 0, 0, true, &[1; 16], &mut a);
        add(&mut r, 1, 0, 8, true, &[3; 16], &mut a);
        add(&mut r, 2, 0, 0, true, &[1; 16], &mut a); // evicts 1: quiet
        assert_eq!(kinds(&a), [FragKind::Overlap]);
        assert_eq!(r.bytes(), 48 + 16);
    }

    #[test]
    fn timeout_and_eviction_name_the_datagram_link() {
        let mut k = key(1);
        k.iface = 3;
        let meta = Meta {
            iface: 9,
            ..Meta::default()
        };
        assert_eq!(
            k.anomaly(meta, FragKind::Evicted, Origin::default())
                .meta
                .iface,
            3
        );
        assert_eq!(
            k.anomaly(meta, FragKind::Overlap, Origin::default())
                .meta
                .iface,
            9
        );
    }
}
