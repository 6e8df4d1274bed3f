//! What the first-hop family knows about each link, shared by its three detections.
//!
//! Owns, per link (interface and VLAN tags, as the RA family keys links): the routers
//! (the policy's, with their MACs, or without a policy the routers whose RAs with a
//! non-zero lifetime were heard in the learning window, as `router_advert/native/
//! rogue.rs` learns them), the on-link prefixes (the policy routers' prefixes and the
//! monitored prefixes, or the learned routers' on-link PIOs; link-local is always
//! on-link), the address-to-MAC bindings learned from ND, the MACs of hosts that live in
//! an on-link prefix, and a bounded set of the flows (source, destination) seen on any
//! link. Every table has a cap and counts its evictions.
//!
//! Also owns the one check the issue calls "spoofed remote sources on the local link": a
//! packet whose source is off-link must arrive from a router's MAC, so one from the MAC
//! of a host of this link was forged (`spoof_remote`). A MAC counts as a host's only once
//! ND bound it to an address in an on-link prefix: link-local bindings are not enough,
//! since a sensor mirroring two links into one port sees the other link's nodes as
//! neighbours with link-local addresses of their own.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use pyo3::prelude::*;

use crate::decode::events::{NdBody, NdMessage, OptionBody};
use crate::reduce::budget::Link;
use crate::reduce::sketch::mix64;
use crate::reduce::windows::Lru;

/// A random per-table key: where a key lands cannot be aimed by a flood.
fn table_key() -> u64 {
    RandomState::new().hash_one(0x5eed_u64)
}

/// The table key mixed with `bytes`, 8 at a time (the tail zero-padded, its length
/// mixed in): cheaper than a `Hasher`, which folds byte by byte, on every packet.
#[inline]
fn keyed(mut h: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = mix64(h ^ u64::from_le_bytes(b));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut b = [0u8; 8];
        b[..tail.len()].copy_from_slice(tail);
        h = mix64(h ^ u64::from_le_bytes(b) ^ ((tail.len() as u64) << 59));
    }
    h
}

/// `keyed` over a link (interface and VLAN tags) first.
#[inline]
fn keyed_link(h: u64, link: &Link) -> u64 {
    let vlans = link.1.as_slice();
    let mut h = mix64(h ^ u64::from(link.0) ^ ((vlans.len() as u64) << 32));
    for v in vlans {
        h = mix64(h ^ u64::from(*v));
    }
    h
}

/// A set of keys kept as 64-bit keyed fingerprints in a direct-mapped table: one hash
/// and one store per insert, no allocation after the start, a hard cap. A key landing on
/// another's slot replaces it (an eviction, counted). It runs for every packet of the
/// link (the flows seen), where an LRU map's bookkeeping cost a quarter of the replay
/// time of a random-source flood; forgetting an old flow a little early is the price.
pub struct FingerprintSet {
    slots: Vec<u64>,
    key: u64,
    len: usize,
    evictions: u64,
}

/// A map with the same direct-mapped layout (`FingerprintSet`): ND bindings and host
/// MACs are learned from every ND message, random-source floods included.
pub struct FingerprintMap<V: Copy + Default> {
    /// (fingerprint, value); fingerprint 0 marks an empty slot.
    slots: Vec<(u64, V)>,
    key: u64,
    len: usize,
    evictions: u64,
}

impl<V: Copy + Default> FingerprintMap<V> {
    pub fn new(cap: usize) -> Self {
        FingerprintMap {
            slots: vec![(0, V::default()); cap.max(1).next_power_of_two()],
            key: table_key(),
            len: 0,
            evictions: 0,
        }
    }

    #[inline]
    fn locate(&self, link: &Link, key: &[u8]) -> (usize, u64) {
        let f = keyed(keyed_link(self.key, link), key) | 1;
        ((f >> 17) as usize & (self.slots.len() - 1), f)
    }

    #[inline]
    pub fn get(&self, link: &Link, key: &[u8]) -> Option<V> {
        let (i, f) = self.locate(link, key);
        let (g, v) = self.slots[i];
        (g == f).then_some(v)
    }

    /// Insert; with `keep`, a value already held for this key stays.
    #[inline]
    pub fn insert(&mut self, link: &Link, key: &[u8], val: V, keep: bool) {
        let (i, f) = self.locate(link, key);
        let slot = &mut self.slots[i];
        if slot.0 == f {
            if !keep {
                slot.1 = val;
            }
            return;
        }
        if slot.0 == 0 {
            self.len += 1;
        } else {
            self.evictions += 1;
        }
        *slot = (f, val);
    }

    pub fn table_stat(&self, name: &str) -> crate::reducer::TableStat {
        (name.to_string(), self.len, self.slots.len(), self.evictions)
    }
}

impl FingerprintSet {
    pub fn new(cap: usize) -> Self {
        FingerprintSet {
            slots: vec![0; cap.max(1).next_power_of_two()],
            key: table_key(),
            len: 0,
            evictions: 0,
        }
    }

    #[inline]
    fn locate(&self, key: &[u8]) -> (usize, u64) {
        let f = keyed(self.key, key) | 1; // 0 marks an empty slot
        ((f >> 17) as usize & (self.slots.len() - 1), f)
    }

    #[inline]
    pub fn insert(&mut self, key: &[u8]) {
        let (i, f) = self.locate(key);
        let slot = &mut self.slots[i];
        if *slot == f {
            return;
        }
        if *slot == 0 {
            self.len += 1;
        } else {
            self.evictions += 1;
        }
        *slot = f;
    }

    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        let (i, f) = self.locate(key);
        self.slots[i] == f
    }

    pub fn table_stat(&self, name: &str) -> crate::reducer::TableStat {
        (name.to_string(), self.len, self.slots.len(), self.evictions)
    }
}

/// Routers and prefixes learned per link, at most.
const MAX_ROUTERS: usize = 16;
const MAX_PREFIXES: usize = 32;

/// A prefix: network bytes (host bits cleared) and length.
pub type Net = ([u8; 16], u8);

pub fn net(prefix: &[u8; 16], len: u8) -> Net {
    let len = len.min(128);
    let mut a = *prefix;
    for (i, b) in a.iter_mut().enumerate() {
        let bits = (i32::from(len) - 8 * i as i32).clamp(0, 8);
        *b &= (0xFFu16 << (8 - bits)) as u8;
    }
    (a, len)
}

fn within(addr: &[u8; 16], n: &Net) -> bool {
    net(addr, n.1) == *n
}

fn flow_key(src: &[u8; 16], dst: &[u8; 16]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(src);
    k[16..].copy_from_slice(dst);
    k
}

pub fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xFE && a[1] & 0xC0 == 0x80
}

pub fn is_multicast(a: &[u8; 16]) -> bool {
    a[0] == 0xFF
}

pub fn is_unspecified(a: &[u8; 16]) -> bool {
    *a == [0; 16]
}

/// A router's address and, when known, its MAC.
pub type Router = ([u8; 16], Option<[u8; 6]>);

#[derive(Default)]
struct LinkInfo {
    /// Learned routers, always with their MAC.
    routers: Vec<Router>,
    prefixes: Vec<Net>,
}

/// How a source compares with the link's routers.
pub enum RouterMatch {
    /// No router is known on this link: nothing can be judged.
    Unknown,
    Router,
    /// A router's address from another MAC; the router's MAC.
    OtherMac([u8; 6]),
    NotRouter,
}

/// A forged off-link source (`spoof_remote`): the host's MAC it came from and an
/// on-link address ND bound to that MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spoof {
    pub address: [u8; 16],
    pub mac: [u8; 6],
    pub host: [u8; 16],
}

impl Spoof {
    /// `(address, mac, host address)` as bytes, for Python.
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use crate::reduce::py::{bytes, tuple};
        tuple(
            py,
            vec![
                bytes(py, &self.address),
                bytes(py, &self.mac),
                bytes(py, &self.host),
            ],
        )
    }
}

pub struct Knowledge {
    /// None: learn routers from RAs.
    policy_routers: Option<Vec<Router>>,
    policy_prefixes: Vec<Net>,
    learn_ns: i64,
    learn_max: usize,
    learned: usize,
    pub first_ns: Option<i64>,
    links: Lru<Link, LinkInfo>,
    bindings: FingerprintMap<[u8; 6]>,
    hosts: FingerprintMap<[u8; 16]>,
    flows: FingerprintSet,
    last_flow: Option<[u8; 32]>,
    /// Sources seen sending data (anything but ND): the sensor sees their traffic.
    talkers: FingerprintSet,
    last_talker: Option<[u8; 16]>,
}

pub struct Caps {
    pub links: usize,
    pub bindings: usize,
    pub flows: usize,
}

impl Knowledge {
    pub fn new(
        policy_routers: Option<Vec<Router>>,
        policy_prefixes: Vec<Net>,
        learn_ns: i64,
        learn_max: usize,
        caps: Caps,
    ) -> Self {
        Knowledge {
            policy_routers,
            policy_prefixes,
            learn_ns,
            learn_max,
            learned: 0,
            first_ns: None,
            links: Lru::new(caps.links),
            bindings: FingerprintMap::new(caps.bindings),
            hosts: FingerprintMap::new(caps.bindings),
            flows: FingerprintSet::new(caps.flows),
            last_flow: None,
            talkers: FingerprintSet::new(caps.flows),
            last_talker: None,
        }
    }

    pub fn learning(&self) -> bool {
        self.policy_routers.is_none()
    }

    /// Packet time of an event: the learning window starts at the first one.
    pub fn clock(&mut self, ts: i64) {
        if self.first_ns.is_none() {
            self.first_ns = Some(ts);
        }
    }

    fn in_window(&self, ts: i64) -> bool {
        ts.saturating_sub(self.first_ns.unwrap_or(ts)) < self.learn_ns
    }

    /// What one local-link ND message teaches: routers and prefixes (learning mode, from
    /// RAs), and address-to-MAC bindings.
    pub fn learn_nd(&mut self, link: &Link, nd: &NdMessage) {
        let Some(mac) = nd.meta.src_mac else { return };
        let src = nd.ip.src;
        match nd.body {
            NdBody::RouterAdvertisement {
                router_lifetime, ..
            } => {
                if self.learning() && is_link_local(&src) && nd.ip.hop_limit == 255 {
                    self.learn_router(link, nd, src, mac, router_lifetime, nd.meta.ts_ns);
                }
                self.bind(link, src, mac);
            }
            NdBody::NeighborSolicitation { .. } | NdBody::RouterSolicitation => {
                if !is_unspecified(&src) && nd.ip.hop_limit == 255 {
                    self.bind(link, src, mac);
                }
            }
            NdBody::NeighborAdvertisement { target, .. } => {
                if nd.ip.hop_limit == 255 {
                    let tlla = nd.options.iter().find_map(|o| match &o.body {
                        OptionBody::LinkLayerAddress { address } if o.otype == 2 => {
                            <[u8; 6]>::try_from(&address[..]).ok()
                        }
                        _ => None,
                    });
                    self.bind(link, target, tlla.unwrap_or(mac));
                }
            }
            NdBody::Redirect { .. } => {}
        }
    }

    fn learn_router(
        &mut self,
        link: &Link,
        nd: &NdMessage,
        src: [u8; 16],
        mac: [u8; 6],
        lifetime: u16,
        ts: i64,
    ) {
        let known = self
            .links
            .peek(link)
            .is_some_and(|l| l.routers.contains(&(src, Some(mac))));
        if !known {
            if lifetime == 0 || !self.in_window(ts) || self.learned >= self.learn_max {
                return;
            }
            if self.links.peek(link).is_none() {
                self.links.put(*link, LinkInfo::default());
            }
            let Some(info) = self.links.get(link) else {
                return;
            };
            if info.routers.len() >= MAX_ROUTERS {
                return;
            }
            info.routers.push((src, Some(mac)));
            self.learned += 1;
        }
        // A learned router's on-link prefixes (PIO with the L flag), whenever it says them.
        let Some(info) = self.links.get(link) else {
            return;
        };
        for o in &nd.options {
            if let OptionBody::PrefixInformation {
                prefix,
                prefix_len,
                on_link: true,
                ..
            } = &o.body
            {
                let n = net(prefix, *prefix_len);
                if !info.prefixes.contains(&n) && info.prefixes.len() < MAX_PREFIXES {
                    info.prefixes.push(n);
                }
            }
        }
    }

    /// The first binding of an address wins: a later claim from another MAC is what
    /// the detections judge, not what they learn.
    fn bind(&mut self, link: &Link, addr: [u8; 16], mac: [u8; 6]) {
        if is_multicast(&addr) || is_unspecified(&addr) {
            return;
        }
        self.bindings.insert(link, &addr, mac, true);
        if !is_link_local(&addr)
            && self.on_link(link, &addr) == Some(true)
            && !self.is_router_mac(link, &mac)
        {
            self.hosts.insert(link, &mac, addr, false);
        }
    }

    pub fn binding(&self, link: &Link, addr: &[u8; 16]) -> Option<[u8; 6]> {
        self.bindings.get(link, addr)
    }

    /// The routers of a link: the policy's, or the learned ones.
    fn routers(&self, link: &Link) -> &[Router] {
        match &self.policy_routers {
            Some(r) => r,
            None => self.links.peek(link).map_or(&[], |info| &info.routers),
        }
    }

    /// The learned routers of a link, for the policy evidence (None with a policy).
    pub fn learned_routers(&self, link: &Link) -> Option<Vec<Router>> {
        if !self.learning() {
            return None;
        }
        Some(
            self.links
                .peek(link)
                .map(|l| l.routers.clone())
                .unwrap_or_default(),
        )
    }

    /// Judged on the address and the Ethernet source together, as for RAs.
    pub fn router_match(&self, link: &Link, addr: &[u8; 16], mac: Option<[u8; 6]>) -> RouterMatch {
        let mut any = false;
        let mut other = None;
        for &(a, m) in self.routers(link) {
            any = true;
            if a == *addr {
                match (m, mac) {
                    (None, _) => return RouterMatch::Router,
                    (Some(m), Some(x)) if m == x => return RouterMatch::Router,
                    (Some(m), _) => other = other.or(Some(m)),
                }
            }
        }
        match (any, other) {
            (false, _) => RouterMatch::Unknown,
            (true, Some(m)) => RouterMatch::OtherMac(m),
            (true, None) => RouterMatch::NotRouter,
        }
    }

    pub fn is_router_mac(&self, link: &Link, mac: &[u8; 6]) -> bool {
        self.routers(link).iter().any(|(_, m)| *m == Some(*mac))
    }

    /// The MAC a router's address is sent from, when the router is known with one.
    pub fn router_mac(&self, link: &Link, addr: &[u8; 16]) -> Option<[u8; 6]> {
        self.routers(link)
            .iter()
            .find(|(a, _)| a == addr)
            .and_then(|r| r.1)
    }

    /// Whether `addr` is on this link: link-local always; a global address when some
    /// on-link prefix is known (None: nothing known, or multicast/unspecified).
    pub fn on_link(&self, link: &Link, addr: &[u8; 16]) -> Option<bool> {
        if is_multicast(addr) || is_unspecified(addr) {
            return None;
        }
        if is_link_local(addr) {
            return Some(true);
        }
        let learned: &[Net] = match (&self.policy_routers, self.links.peek(link)) {
            (None, Some(info)) => &info.prefixes,
            _ => &[],
        };
        if self.policy_prefixes.is_empty() && learned.is_empty() {
            return None;
        }
        Some(
            self.policy_prefixes
                .iter()
                .chain(learned)
                .any(|n| within(addr, n)),
        )
    }

    /// "Spoofed remote sources on the local link": an off-link source from the MAC of a
    /// host of this link (not a router's) was forged by that host.
    pub fn spoof_remote(&self, link: &Link, src: &[u8; 16], mac: Option<[u8; 6]>) -> Option<Spoof> {
        let mac = mac?;
        if self.on_link(link, src) != Some(false) || self.is_router_mac(link, &mac) {
            return None;
        }
        let host = self.hosts.get(link, &mac)?;
        Some(Spoof {
            address: *src,
            mac,
            host,
        })
    }

    /// A flow seen on the wire (any link): what quoted packets are checked against.
    /// `data`: the packet is not ND, so its source is known to send traffic the sensor
    /// sees.
    pub fn record_flow(&mut self, src: &[u8; 16], dst: &[u8; 16], data: bool) {
        if data && self.last_talker != Some(*src) {
            self.last_talker = Some(*src);
            self.talkers.insert(src);
        }
        let key = flow_key(src, dst);
        if self.last_flow == Some(key) {
            return; // the common case of a busy flow: no table touch per packet
        }
        self.last_flow = Some(key);
        self.flows.insert(&key);
    }

    pub fn seen_flow(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        self.flows.contains(&flow_key(src, dst))
    }

    /// A quoted packet (source, destination) that was never seen, from a source whose
    /// data traffic the sensor does see: made up. A source the sensor never saw send
    /// data proves nothing (the sensor may sit where that host's traffic does not pass).
    pub fn unseen_quote(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        self.talkers.contains(src) && !self.seen_flow(src, dst)
    }

    pub fn tables(&self) -> Vec<crate::reducer::TableStat> {
        vec![
            self.links.table_stat("first_hop.links"),
            self.bindings.table_stat("first_hop.bindings"),
            self.hosts.table_stat("first_hop.hosts"),
            self.flows.table_stat("first_hop.flows"),
            self.talkers.table_stat("first_hop.talkers"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::Vlans;

    fn link() -> Link {
        (0, Vlans::default())
    }

    fn addr(last: u8, global: bool) -> [u8; 16] {
        let mut a = [0u8; 16];
        if global {
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        } else {
            a[..2].copy_from_slice(&[0xfe, 0x80]);
        }
        a[15] = last;
        a
    }

    fn knowledge(routers: Option<Vec<Router>>, prefixes: Vec<Net>) -> Knowledge {
        let caps = Caps {
            links: 4,
            bindings: 4,
            flows: 2,
        };
        Knowledge::new(routers, prefixes, 600_000_000_000, 16, caps)
    }

    #[test]
    fn routers_are_judged_on_address_and_mac() {
        let r = addr(1, false);
        let k = knowledge(Some(vec![(r, Some([1; 6]))]), vec![]);
        assert!(matches!(
            k.router_match(&link(), &r, Some([1; 6])),
            RouterMatch::Router
        ));
        assert!(matches!(
            k.router_match(&link(), &r, Some([2; 6])),
            RouterMatch::OtherMac([1, 1, 1, 1, 1, 1])
        ));
        assert!(matches!(
            k.router_match(&link(), &addr(9, false), Some([1; 6])),
            RouterMatch::NotRouter
        ));
        let learning = knowledge(None, vec![]);
        assert!(matches!(
            learning.router_match(&link(), &r, None),
            RouterMatch::Unknown
        ));
    }

    #[test]
    fn spoofed_remote_needs_an_off_link_source_from_a_host_mac() {
        let prefix = net(&addr(0, true), 64);
        let r = addr(1, false);
        let mut k = knowledge(Some(vec![(r, Some([1; 6]))]), vec![prefix]);
        let mut remote = addr(5, true);
        remote[5] = 0xff; // 2001:db8:ff::5, off-link
                          // An unknown MAC is not known to be a host's: nothing judged.
        assert_eq!(k.spoof_remote(&link(), &remote, Some([3; 6])), None);
        k.bind(&link(), addr(0x33, true), [3; 6]);
        let s = k.spoof_remote(&link(), &remote, Some([3; 6])).unwrap();
        assert_eq!(s.host, addr(0x33, true));
        // From the router's MAC, or an on-link source: fine.
        assert_eq!(k.spoof_remote(&link(), &remote, Some([1; 6])), None);
        assert_eq!(
            k.spoof_remote(&link(), &addr(0x44, true), Some([3; 6])),
            None
        );
        // The first binding of an address wins.
        k.bind(&link(), addr(0x33, true), [4; 6]);
        assert_eq!(k.binding(&link(), &addr(0x33, true)), Some([3; 6]));
    }

    #[test]
    fn flows_are_bounded_and_evictions_counted() {
        let mut k = knowledge(None, vec![]);
        k.record_flow(&addr(4, true), &addr(100, true), true);
        assert!(k.seen_flow(&addr(4, true), &addr(100, true)));
        assert!(!k.seen_flow(&addr(0, true), &addr(100, true)));
        assert!(k.unseen_quote(&addr(4, true), &addr(101, true)));
        assert!(!k.unseen_quote(&addr(4, true), &addr(100, true)));
        assert!(!k.unseen_quote(&addr(9, true), &addr(100, true)));
        // Two slots: many flows keep at most two, and every replacement is counted.
        for i in 0..50 {
            k.record_flow(&addr(i, true), &addr(100, true), false);
        }
        let (_, size, cap, evictions) = k.tables()[3].clone();
        assert_eq!((size, cap), (2, 2));
        assert!(evictions >= 40, "{evictions}");
    }
}
