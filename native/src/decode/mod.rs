//! The packet decoder: capture records in, typed events out.
//!
//! Owns every read of packet bytes in v6sentry. This file holds the `Decoder` itself,
//! its limits, the per-frame state and the link layers; the rest is split by layer:
//! `ip` (IPv4 as far as tunnels need, IPv6 and its extension chain, upper layers,
//! fragments), `tunnels` (protocol 41, Teredo, AYIYA, IP-in-IPv6), `nd` (ND bodies and
//! options), `reassembly` (the bounded fragment table), `events` (the output types) and
//! `topy`/`py` (the Python face). Nothing here judges traffic.
//!
//! Speed: the common case (IPv4 that is not a tunnel carrier, IPv6 TCP/UDP nobody
//! subscribed to) is classified from fixed offsets and returns without building
//! anything. Robustness: every length is checked before it is used, every loop is
//! bounded by a limit or by the bytes it consumes, and `decode` catches any panic left
//! and turns it into a counted `Malformed(layer="decoder", reason="decoder_error")`.
//!
//! The behaviour (events, their order, details and counters) is byte-for-byte that of
//! the Python decoder it replaced; comments cite the RFCs it follows.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;

use crate::record::Rec;

mod chain_rules;
pub mod dhcpv6;
pub mod dns;
pub mod events;
pub mod ext_options;
pub mod icmp_error;
mod ip;
pub mod mld;
pub mod nd;
pub(crate) mod py;
pub mod reassembly;
#[cfg(test)]
mod testutil;
pub(crate) mod topy;
mod tunnels;
pub use tunnels::TEREDO_PORT;
pub mod wire;

use events::*;
use reassembly::{FragKey, Reassembler};

pub use reassembly::ReassemblyLimits;

// Link types (https://www.tcpdump.org/linktypes.html)
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;

pub(crate) const NH_TCP: u8 = 6;
pub(crate) const NH_UDP: u8 = 17;
pub(crate) const NH_IPV4: u8 = 4;
pub(crate) const NH_IPV6: u8 = 41;
pub(crate) const NH_ICMPV6: u8 = 58;
pub(crate) const NH_NONE: u8 = 59;

/// Bounds on the decoder's work per packet and its memory (Python `DecoderLimits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderLimits {
    pub max_ext_headers: usize,
    pub max_vlan_tags: usize,
    pub max_tunnel_depth: usize,
    pub reassembly: ReassemblyLimits,
    /// Most options walked in one Hop-by-Hop or Destination Options header (padding
    /// included); past it a `too_many_options` malformed event (`ext_options`).
    pub max_ext_options: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_ext_headers: 16,
            max_vlan_tags: 4,
            max_tunnel_depth: 3,
            reassembly: ReassemblyLimits::default(),
            max_ext_options: 16,
        }
    }
}

impl DecoderLimits {
    /// The limits the inline event lists can hold. The policy's allowed ranges are
    /// within these (see `DECODER_THRESHOLDS` in the engine), so this only matters
    /// for limits built by hand above them.
    fn clamped(mut self) -> Self {
        self.max_ext_headers = self.max_ext_headers.min(Chain::CAPACITY);
        self.max_vlan_tags = self.max_vlan_tags.min(Vlans::CAPACITY);
        self.max_tunnel_depth = self.max_tunnel_depth.min(Tunnels::CAPACITY);
        self
    }
}

/// What the current frame is, for building its `Meta` and judging short reads.
#[derive(Default)]
struct Frame {
    ts_ns: i64,
    frame: u64,
    iface: u32,
    linktype: u32,
    wire_len: u32,
    /// The capture cut the frame (captured < wire length).
    snapped: bool,
    /// `snapped` was counted for this frame (a frame counts once).
    snap_counted: bool,
    src_mac: Option<[u8; 6]>,
    dst_mac: Option<[u8; 6]>,
    vlans: Vlans,
    /// Built at the first event, then shared by the frame's events.
    meta: Option<Meta>,
}

/// Turns captured frames into events. One instance per capture stream.
pub struct Decoder {
    limits: DecoderLimits,
    /// Emit an `Ipv6Packet` for every IPv6 packet (off: none are built).
    pub want_packets: bool,
    /// Emit a `TunnelPacket` for every decapsulation.
    pub want_tunnels: bool,
    /// Decode MLD and MRD messages into `MldMessage` events (off: none are built).
    pub want_mld: bool,
    /// The first Hop-by-Hop header of the IPv6 packet whose upper layer is being
    /// decoded (MLD reads its Router Alert option).
    hbh_at: Option<usize>,
    /// Decode DHCPv6 (UDP 546/547) into `Dhcpv6Message` events (off: left on the
    /// cheap path like other UDP).
    pub want_dhcpv6: bool,
    /// Emit an `ExtOptions` for every packet whose options carry something.
    pub want_ext_options: bool,
    /// Emit an `IcmpError` for every ICMPv6 error message (types 1-4).
    pub want_icmp_errors: bool,
    /// Emit a `DnsMessage` for every DNS message on port 53 (UDP or TCP, IPv6 or IPv4).
    pub want_dns: bool,
    stats: DecodeStats,
    reasm: Reassembler,
    f: Frame,
    /// Scratch list of fragment anomalies the reassembler reports; kept to reuse its buffer.
    anomalies: Vec<reassembly::Anomaly>,
    /// DNS-over-TCP streams whose last segment ended inside a message (`dns::TcpTrack`).
    dns_track: dns::TcpTrack,
}

#[inline]
pub(crate) fn be16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

#[inline]
pub(crate) fn be32(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]])
}

#[inline]
pub(crate) fn arr16(d: &[u8], i: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[i..i + 16]);
    a
}

#[inline]
pub(crate) fn arr4(d: &[u8], i: usize) -> [u8; 4] {
    [d[i], d[i + 1], d[i + 2], d[i + 3]]
}

#[inline]
fn arr6(d: &[u8], i: usize) -> [u8; 6] {
    [d[i], d[i + 1], d[i + 2], d[i + 3], d[i + 4], d[i + 5]]
}

/// Is the UDP header at `data[p..]` addressed to a DHCPv6 port (546 client, 547 server
/// or relay; every DHCPv6 message goes to one)? One length check and two comparisons:
/// the cost DHCPv6 adds to the cheap paths.
#[inline]
pub(crate) fn dhcpv6_at(data: &[u8], p: usize) -> bool {
    data.len() >= p + 4 && dhcpv6::is_dhcpv6_port(be16(data, p + 2))
}

/// Is the TCP or UDP header at `data[p..]` to or from port 53? One length check and two
/// comparisons: the cost DNS adds to the cheap paths when it is observed.
#[inline(always)]
pub(crate) fn dns_at(data: &[u8], p: usize) -> bool {
    // Low byte first: it rules out almost every packet with one comparison per port.
    match data.get(p..p + 4) {
        Some(b) => (b[1] == 53 && b[0] == 0) || (b[3] == 53 && b[2] == 0),
        None => false,
    }
}

/// At least `n` bytes from `p` before `end` (false when `p` is already past `end`).
#[inline]
pub(crate) fn has(p: usize, end: usize, n: usize) -> bool {
    p <= end && end - p >= n
}

impl Decoder {
    pub fn new(limits: DecoderLimits) -> Self {
        let limits = limits.clamped();
        Decoder {
            limits,
            want_packets: false,
            want_tunnels: false,
            want_mld: false,
            hbh_at: None,
            want_dhcpv6: false,
            want_ext_options: false,
            want_icmp_errors: false,
            want_dns: false,
            stats: DecodeStats::default(),
            reasm: Reassembler::new(limits.reassembly),
            f: Frame::default(),
            anomalies: Vec::new(),
            dns_track: dns::TcpTrack::default(),
        }
    }

    pub fn limits(&self) -> &DecoderLimits {
        &self.limits
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    pub fn reassembler(&self) -> &Reassembler {
        &self.reasm
    }

    /// Decode one frame, appending its events to `out`. Never panics.
    pub fn decode(&mut self, rec: &Rec<'_>, frame: u64, out: &mut Vec<Event>) {
        let data = rec.data;
        let stats = &mut self.stats;
        stats.packets += 1;
        stats.bytes += u64::from(rec.wire_len);
        // The cheapest path: untagged Ethernet carrying IPv4 that is neither UDP nor
        // protocol 41, or IPv6 TCP/UDP nobody subscribed to, is classified from fixed
        // offsets. Everything else takes the full walk.
        if rec.linktype == LINKTYPE_ETHERNET && data.len() >= 54 {
            let etype = be16(data, 12);
            if etype == ETH_IPV4
                && data[23] != NH_UDP
                && data[23] != NH_IPV6
                // DNS over TCP is decoded only on port 53: every other TCP segment
                // stays here (the ports follow the IPv4 header, IHL words long).
                && !(self.want_dns
                    && data[23] == NH_TCP
                    && dns_at(data, 14 + usize::from(data[14] & 0x0F) * 4))
            {
                stats.link_types.add(LINKTYPE_ETHERNET);
                stats.ipv4 += 1;
                return;
            }
            if etype == ETH_IPV6
                && (data[20] == NH_TCP || data[20] == NH_UDP)
                && data[14] >> 4 == 6
                && 54 + be16(data, 18) as usize <= data.len()
                // From `::` only DAD and MLD are legal (`chain_rules`): the full walk.
                && data[22..38] != [0u8; 16]
                && !(self.want_dhcpv6 && data[20] == NH_UDP && dhcpv6_at(data, 54))
                && !(self.want_dns && dns_at(data, 54))
            {
                stats.link_types.add(LINKTYPE_ETHERNET);
                stats.ipv6 += 1;
                if self.want_packets {
                    out.push(Event::Packet(plain_l4(rec, frame)));
                }
                return;
            }
        }
        self.f = Frame {
            ts_ns: rec.ts_ns,
            frame,
            iface: rec.iface,
            linktype: rec.linktype,
            wire_len: rec.wire_len,
            snapped: data.len() < rec.wire_len as usize,
            ..Frame::default()
        };
        let caught = catch_unwind(AssertUnwindSafe(|| self.link(rec.linktype, data, out)));
        if let Err(panic) = caught {
            // A decoder bug must not stop the sensor: count it like the Python decoder
            // counted an exception. Events pushed before the panic stay, as there.
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            self.malformed(
                out,
                "decoder",
                "decoder_error",
                Cow::Owned(format!("panic: {what}")),
                None,
                None,
                &Tunnels::default(),
            );
        }
    }

    /// Time out stale fragments on packet time; events get a bare `Meta` at `now_ns`.
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<Event>) {
        let mut anomalies = std::mem::take(&mut self.anomalies);
        anomalies.clear();
        self.reasm.expire(now_ns, &mut anomalies);
        let meta = Meta {
            ts_ns: now_ns,
            ..Meta::default()
        };
        for (key, kind, origin) in anomalies.drain(..) {
            self.count_anomaly(kind);
            out.push(Event::Fragment(key.anomaly(meta, kind, origin)));
        }
        self.anomalies = anomalies;
    }

    // -- helpers ---------------------------------------------------------------------

    fn meta(&mut self) -> Meta {
        let f = &mut self.f;
        *f.meta.get_or_insert(Meta {
            ts_ns: f.ts_ns,
            frame: f.frame,
            iface: f.iface,
            linktype: f.linktype,
            wire_len: f.wire_len,
            src_mac: f.src_mac,
            dst_mac: f.dst_mac,
            vlans: f.vlans,
        })
    }

    /// A malformed packet whose upper-layer protocol the decoder never reached.
    #[allow(clippy::too_many_arguments)]
    fn malformed(
        &mut self,
        out: &mut Vec<Event>,
        layer: &'static str,
        reason: &'static str,
        detail: Cow<'static, str>,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        tunnels: &Tunnels,
    ) {
        let upper = Upper::default();
        self.malformed_in(out, layer, reason, detail, src, dst, tunnels, upper)
    }

    /// A malformed packet of a known flow (`upper`).
    #[allow(clippy::too_many_arguments)]
    fn malformed_in(
        &mut self,
        out: &mut Vec<Event>,
        layer: &'static str,
        reason: &'static str,
        detail: Cow<'static, str>,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        tunnels: &Tunnels,
        upper: Upper,
    ) {
        self.stats.malformed += 1;
        self.stats.malformed_reasons.add((layer, reason));
        let meta = self.meta();
        out.push(Event::Malformed(Malformed {
            meta,
            layer,
            reason,
            detail,
            src,
            dst,
            tunnels: *tunnels,
            upper,
        }));
    }

    /// Name the flow of the `Malformed` events pushed since `from`: those raised before
    /// the decoder knew it (inside the extension chain, a cut header).
    fn learn_upper(out: &mut [Event], from: usize, upper: Upper) {
        for ev in out.get_mut(from..).unwrap_or_default() {
            if let Event::Malformed(m) = ev {
                if m.upper.proto.is_none() {
                    m.upper = upper;
                }
            }
        }
    }

    /// Ran out of bytes: the snaplen's fault if the frame was cut, else malformed.
    fn short(
        &mut self,
        out: &mut Vec<Event>,
        layer: &'static str,
        what: Cow<'static, str>,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        tunnels: &Tunnels,
    ) {
        if self.f.snapped {
            if !self.f.snap_counted {
                self.stats.snapped += 1;
                self.f.snap_counted = true;
            }
        } else {
            self.malformed(out, layer, "truncated", what, src, dst, tunnels);
        }
    }

    fn count_anomaly(&mut self, kind: FragKind) {
        self.stats.fragment_anomalies.add(kind);
    }

    fn fragment_anomaly(
        &mut self,
        out: &mut Vec<Event>,
        kind: FragKind,
        src: [u8; 16],
        dst: [u8; 16],
        ident: u32,
        tunnels: &Tunnels,
    ) {
        self.count_anomaly(kind);
        let meta = self.meta();
        out.push(Event::Fragment(FragmentAnomaly {
            meta,
            kind,
            src,
            dst,
            ident,
            tunnels: *tunnels,
            origin_ns: meta.ts_ns,
            origin_frame: meta.frame,
        }));
    }

    // -- link layer ------------------------------------------------------------------

    fn link(&mut self, linktype: u32, data: &[u8], out: &mut Vec<Event>) {
        self.stats.link_types.add(linktype);
        #[cfg(test)]
        if linktype == tests::PANIC_LINKTYPE {
            panic!("deliberate test panic"); // exercises the catch_unwind guard
        }
        let n = data.len();
        let none = Tunnels::default();
        match linktype {
            LINKTYPE_ETHERNET => {
                if n < 14 {
                    return self.short(out, "link", "ethernet header".into(), None, None, &none);
                }
                self.f.dst_mac = Some(arr6(data, 0));
                self.f.src_mac = Some(arr6(data, 6));
                self.ethertype(data, be16(data, 12), 14, out)
            }
            LINKTYPE_LINUX_SLL => {
                if n < 16 {
                    return self.short(out, "link", "SLL header".into(), None, None, &none);
                }
                if be16(data, 4) == 6 {
                    // address length 6: a MAC
                    self.f.src_mac = Some(arr6(data, 6));
                }
                self.ethertype(data, be16(data, 14), 16, out)
            }
            LINKTYPE_LINUX_SLL2 => {
                if n < 20 {
                    return self.short(out, "link", "SLL2 header".into(), None, None, &none);
                }
                if data[11] == 6 {
                    self.f.src_mac = Some(arr6(data, 12));
                }
                self.ethertype(data, be16(data, 0), 20, out)
            }
            // DLT_RAW differs between BSDs (12, 14).
            LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
                if n < 1 {
                    return self.short(out, "link", "raw IP packet".into(), None, None, &none);
                }
                match data[0] >> 4 {
                    6 => self.ipv6(data, 0, n, &none, None, out),
                    4 => self.ipv4(data, 0, n, &none, out),
                    v => self.malformed(
                        out,
                        "link",
                        "bad_ip_version",
                        format!("version {v} on raw IP link").into(),
                        None,
                        None,
                        &none,
                    ),
                }
            }
            LINKTYPE_NULL | LINKTYPE_LOOP => {
                if n < 4 {
                    return self.short(out, "link", "loopback header".into(), None, None, &none);
                }
                let raw = arr4(data, 0);
                // LOOP is big-endian; NULL is host order of the capturing machine,
                // guessed from which end holds the (small) value.
                let family = if linktype == LINKTYPE_LOOP || raw[0] == 0 {
                    u32::from_be_bytes(raw)
                } else {
                    u32::from_le_bytes(raw)
                };
                match family {
                    2 => self.ipv4(data, 4, n, &none, out),
                    // AF_INET6 on Linux, the BSDs, macOS
                    10 | 24 | 28 | 30 => self.ipv6(data, 4, n, &none, None, out),
                    _ => self.stats.other += 1,
                }
            }
            _ => self.stats.unsupported_link += 1,
        }
    }

    fn ethertype(&mut self, data: &[u8], mut etype: u16, mut off: usize, out: &mut Vec<Event>) {
        let mut tags = 0;
        while matches!(etype, 0x8100 | 0x88A8 | 0x9100) {
            if tags >= self.limits.max_vlan_tags {
                let detail = format!("more than {tags} tags").into();
                let none = Tunnels::default();
                return self.malformed(
                    out,
                    "link",
                    "too_many_vlan_tags",
                    detail,
                    None,
                    None,
                    &none,
                );
            }
            if data.len() < off + 4 {
                let none = Tunnels::default();
                return self.short(out, "link", "VLAN tag".into(), None, None, &none);
            }
            self.f.vlans.push(be16(data, off) & 0x0FFF);
            etype = be16(data, off + 2);
            off += 4;
            tags += 1;
        }
        match etype {
            ETH_IPV6 => self.ipv6(data, off, data.len(), &Tunnels::default(), None, out),
            ETH_IPV4 => self.ipv4(data, off, data.len(), &Tunnels::default(), out),
            _ => self.stats.other += 1,
        }
    }
}

/// Untagged Ethernet, IPv6 with TCP or UDP right after the header, all of it in the
/// frame: the same event the full walk builds, in one step, because this is most of
/// the traffic when every packet is wanted. The caller checked the lengths.
fn plain_l4(rec: &Rec<'_>, frame: u64) -> Ipv6Packet {
    let data = rec.data;
    let first = be32(data, 14);
    let plen = be16(data, 18);
    let nh = data[20];
    let (mut sport, mut dport, mut flags) = (None, None, None);
    if plen as usize >= if nh == NH_TCP { 14 } else { 8 } {
        sport = Some(be16(data, 54));
        dport = Some(be16(data, 56));
        if nh == NH_TCP {
            flags = Some(data[67]);
        }
    }
    Ipv6Packet {
        meta: Meta {
            ts_ns: rec.ts_ns,
            frame,
            iface: rec.iface,
            linktype: LINKTYPE_ETHERNET,
            wire_len: rec.wire_len,
            src_mac: Some(arr6(data, 6)),
            dst_mac: Some(arr6(data, 0)),
            vlans: Vlans::default(),
        },
        ip: Ipv6Header {
            src: arr16(data, 22),
            dst: arr16(data, 38),
            hop_limit: data[21],
            traffic_class: (first >> 20) as u8,
            flow_label: first & 0xFFFFF,
            payload_len: plen,
            chain: Chain::default(),
            upper: nh,
            fragment: None,
            tunnels: Tunnels::default(),
        },
        sport,
        dport,
        icmp_type: None,
        icmp_code: None,
        tcp_flags: flags,
        quoted_src: None,
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    /// A link type that makes `link` panic in test builds only.
    pub const PANIC_LINKTYPE: u32 = 0xDEAD;

    #[test]
    fn a_panic_becomes_a_counted_decoder_error() {
        let mut d = decoder();
        let ev = run(&mut d, PANIC_LINKTYPE, &[0; 20], 20, S);
        assert_eq!(malformed(&ev), [("decoder", "decoder_error")]);
        let Event::Malformed(m) = &ev[0] else {
            unreachable!()
        };
        assert!(m.detail.contains("deliberate test panic"));
        assert_eq!(
            d.stats()
                .malformed_reasons
                .get(("decoder", "decoder_error")),
            1
        );
        // The decoder is still usable afterwards.
        assert_eq!(nd(&decode(&eth(&ra_packet(), 0x86DD, &[]))).len(), 1);
    }

    fn ra_packet() -> Vec<u8> {
        ip6(
            &LL1,
            &ALLNODES,
            58,
            &icmp6(&LL1, &ALLNODES, 134, &ra_body(&[])),
        )
    }

    #[test]
    fn ethernet_vlan_and_qinq() {
        for vlans in [&[][..], &[(0x8100, 10)], &[(0x88A8, 100), (0x8100, 20)]] {
            let ev = decode(&eth(&ra_packet(), 0x86DD, vlans));
            let ra = nd(&ev);
            assert_eq!(ra.len(), 1);
            let want: Vec<u16> = vlans.iter().map(|v| v.1).collect();
            assert_eq!(ra[0].meta.vlans.as_slice(), &want[..]);
            assert_eq!(ra[0].meta.src_mac, Some(MAC1));
        }
    }

    #[test]
    fn too_many_vlan_tags() {
        let tags = [(0x8100, 1); 5];
        let ev = decode(&eth(&ra_packet(), 0x86DD, &tags));
        assert_eq!(malformed(&ev), [("link", "too_many_vlan_tags")]);
    }

    #[test]
    fn sll_sll2_raw_and_loopback() {
        let packet = ra_packet();
        let mut sll = vec![0, 0, 0, 1, 0, 6];
        sll.extend_from_slice(&MAC1);
        sll.extend_from_slice(&[0, 0, 0x86, 0xDD]);
        sll.extend_from_slice(&packet);
        let mut sll2 = vec![0x86, 0xDD, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&MAC1);
        sll2.extend_from_slice(&[0, 0]);
        sll2.extend_from_slice(&packet);
        let mut null = 24u32.to_le_bytes().to_vec();
        null.extend_from_slice(&packet);
        let mut lo = 30u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&packet);
        for (frame, lt, mac) in [
            (&sll, LINKTYPE_LINUX_SLL, Some(MAC1)),
            (&sll2, LINKTYPE_LINUX_SLL2, Some(MAC1)),
            (&packet, LINKTYPE_RAW, None),
            (&packet, LINKTYPE_IPV6, None),
            (&null, LINKTYPE_NULL, None),
            (&lo, LINKTYPE_LOOP, None),
        ] {
            let ev = run(&mut decoder(), lt, frame, frame.len(), S);
            let ra = nd(&ev);
            assert_eq!(ra.len(), 1, "linktype {lt}");
            assert_eq!(ra[0].meta.src_mac, mac);
            assert_eq!(ra[0].ip.src, LL1);
        }
    }

    #[test]
    fn unsupported_link_and_other_ethertypes_are_counted_not_malformed() {
        let mut d = Decoder::new(DecoderLimits::default());
        assert!(run(&mut d, 147, &[0; 40], 40, S).is_empty());
        assert!(run(&mut d, 1, &eth(&[0; 28], 0x0806, &[]), 42, S).is_empty());
        let s = d.stats();
        assert_eq!((s.unsupported_link, s.other, s.malformed), (1, 1, 0));
        assert_eq!(s.link_types.0, [(147, 1), (1, 1)]);
    }

    #[test]
    fn fast_path_counts_ordinary_traffic_without_events() {
        let mut tcp = vec![0x9c, 0x40, 0x01, 0xbb];
        tcp.extend_from_slice(&[0; 9]);
        tcp.push(0x10);
        tcp.extend_from_slice(&[0; 6]);
        let tcp6 = eth(&ip6(&G1, &G2, 6, &tcp), 0x86DD, &[]);
        let tcp4 = eth(&ipv4(&V4A, &V4B, 6, &[0; 28]), 0x0800, &[]);
        let mut d = Decoder::new(DecoderLimits::default());
        assert!(run(&mut d, 1, &tcp4, tcp4.len(), S).is_empty());
        assert!(run(&mut d, 1, &tcp6, tcp6.len(), S).is_empty());
        assert_eq!((d.stats().ipv4, d.stats().ipv6), (1, 1));
        let ev = decode(&tcp6);
        let p = packets(&ev);
        assert_eq!(
            (p[0].sport, p[0].dport, p[0].tcp_flags),
            (Some(40000), Some(443), Some(0x10))
        );
        assert_eq!(p[0].meta.dst_mac, Some([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn snaplen_cut_is_not_malformed() {
        let rdnss = opt(25, &[[0u8; 6].as_slice(), &G1].concat());
        let frame = eth(
            &ip6(
                &LL1,
                &ALLNODES,
                58,
                &icmp6(&LL1, &ALLNODES, 134, &ra_body(&rdnss)),
            ),
            0x86DD,
            &[],
        );
        let mut d = Decoder::new(DecoderLimits::default());
        let ev = run(&mut d, 1, &frame[..64], frame.len(), S);
        assert!(malformed(&ev).is_empty());
        assert_eq!((d.stats().snapped, d.stats().malformed), (1, 0));
        let ev = run(&mut decoder(), 1, &frame[..64], 64, S);
        assert_eq!(
            malformed(&ev),
            [("ipv6", "truncated"), ("nd", "short_message")]
        );
    }

    #[test]
    fn empty_and_tiny_frames_never_panic() {
        let mut d = decoder();
        for lt in [0, 1, 12, 14, 101, 108, 113, 228, 229, 276] {
            for n in 0..64 {
                let frame = vec![0x60; n];
                run(&mut d, lt, &frame, n, S);
                run(&mut d, lt, &frame, n + 10, S);
            }
        }
        assert_eq!(
            d.stats()
                .malformed_reasons
                .get(("decoder", "decoder_error")),
            0
        );
    }
}
