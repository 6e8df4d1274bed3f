//! IPv4 (only as far as tunnels need), IPv6 with its extension-header chain, the
//! upper-layer fields events carry, and handing fragments to the reassembler.
//!
//! Ranges are `data[off..end]` with `end <= data.len()` always: `end` only ever
//! shrinks to a length a header claims after checking that it fits.

use std::borrow::Cow;

use super::chain_rules;
use super::events::*;
use super::ext_options::{self, Walk};
use super::reassembly::{VARIANT_FIRST, VARIANT_LAST, VARIANT_NONE};
use super::{arr16, arr4, be16, be32, has, Decoder};
use super::{NH_ICMPV6, NH_IPV4, NH_IPV6, NH_TCP, NH_UDP};

const NH_HBH: u8 = 0;
const NH_DSTOPTS: u8 = 60;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;

/// Extension headers v6sentry walks (RFC 8200 4, RFC 7045): all but ESP, which is opaque.
#[inline]
pub(crate) fn is_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

/// An extension header's size from its length byte: AH counts 4-octet units minus 2
/// (RFC 4302), the rest 8-octet units minus 1.
#[inline]
fn ext_size(nh: u8, len_byte: u8) -> usize {
    if nh == NH_AH {
        (len_byte as usize + 2) * 4
    } else {
        (len_byte as usize + 1) * 8
    }
}

impl Decoder {
    pub(super) fn ipv4(
        &mut self,
        data: &[u8],
        off: usize,
        mut end: usize,
        tunnels: &Tunnels,
        out: &mut Vec<Event>,
    ) {
        self.stats.ipv4 += 1;
        if !has(off, end, 20) {
            return self.short(out, "ipv4", "IPv4 header".into(), None, None, tunnels);
        }
        let vihl = data[off];
        let proto = data[off + 9];
        if proto != NH_IPV6 && proto != NH_UDP && !(self.want_dns && proto == NH_TCP) {
            return; // the cheap path: nothing in IPv4 matters but tunnels
        }
        let ihl = (vihl as usize & 0x0F) * 4;
        let total = be16(data, off + 2) as usize;
        let src = IpAddr::V4(arr4(data, off + 12));
        let dst = IpAddr::V4(arr4(data, off + 16));
        if vihl >> 4 != 4 || ihl < 20 || total < ihl {
            let detail = format!("version/ihl 0x{vihl:02x} total {total}").into();
            return self.malformed(
                out,
                "ipv4",
                "bad_header",
                detail,
                Some(src),
                Some(dst),
                tunnels,
            );
        }
        if off + total > end {
            let what = format!("IPv4 total length {total}").into();
            self.short(out, "ipv4", what, Some(src), Some(dst), tunnels);
            if off + ihl > end {
                return;
            }
        } else {
            end = off + total; // drop Ethernet padding
        }
        if be16(data, off + 6) & 0x3FFF != 0 {
            // MF or a fragment offset. IPv4 reassembly is out of scope; counted so
            // nothing vanishes silently.
            self.stats.ipv4_fragments_skipped += 1;
            return;
        }
        let p = off + ihl;
        if proto == NH_IPV6 {
            let layer = TunnelLayer {
                kind: TunnelKind::SixInFour,
                outer_src: src,
                outer_dst: dst,
                ..TunnelLayer::default()
            };
            self.tunnel(data, p, end, tunnels, layer, 6, out)
        } else if proto == NH_TCP {
            // Only reached when DNS is observed.
            if super::dns_at(&data[..end], p) {
                self.dns_tcp(data, p, end, src, dst, tunnels, out);
            }
        } else {
            self.udp4(data, p, end, src, dst, tunnels, out)
        }
    }

    /// Decode the IPv6 packet at `data[off..end]`.
    ///
    /// `frag` is set when `data` is a reassembled datagram: its Fragment header is then
    /// walked over rather than fed to the reassembler again.
    pub(super) fn ipv6(
        &mut self,
        data: &[u8],
        off: usize,
        mut end: usize,
        tunnels: &Tunnels,
        mut frag: Option<FragmentInfo>,
        out: &mut Vec<Event>,
    ) {
        if frag.is_none() {
            self.stats.ipv6 += 1;
        }
        if !has(off, end, 40) {
            return self.short(out, "ipv6", "IPv6 header".into(), None, None, tunnels);
        }
        let first = be32(data, off);
        let plen = be16(data, off + 4);
        let mut nh = data[off + 6];
        let hlim = data[off + 7];
        if first >> 28 != 6 {
            let detail = format!("version {}", first >> 28).into();
            return self.malformed(out, "ipv6", "bad_version", detail, None, None, tunnels);
        }
        let fits = off + 40 + plen as usize <= end;
        // `::` may only send DAD and MLD (`chain_rules::unspecified_allowed`).
        let unspecified = data[off + 8..off + 24] == [0u8; 16];
        if fits
            && (nh == NH_TCP || nh == NH_UDP)
            && !self.want_packets
            && frag.is_none()
            && !unspecified
            && !(self.want_dhcpv6 && nh == NH_UDP && super::dhcpv6_at(&data[..end], off + 40))
            && !(self.want_dns && super::dns_at(&data[..end], off + 40))
        {
            return; // the cheap path: nothing looks inside native IPv6 TCP/UDP
        }
        let src = arr16(data, off + 8);
        let dst = arr16(data, off + 24);
        let (s, d) = (Some(IpAddr::V6(src)), Some(IpAddr::V6(dst)));
        // Events of this header from here on learn its flow once the chain is walked.
        let from = out.len();
        if fits {
            end = off + 40 + plen as usize; // drop link-layer padding
        } else if !(plen == 0 && nh == 0) {
            // plen 0 with Hop-by-Hop may be a jumbogram; otherwise the rest is walked
            // as far as the bytes go.
            self.short(
                out,
                "ipv6",
                format!("payload length {plen}").into(),
                s,
                d,
                tunnels,
            );
        }

        let mut chain = Chain::default();
        let mut p = off + 40;
        // Where a first Hop-by-Hop header starts, for MLD's Router Alert check.
        let mut hbh = None;
        let max_ext = self.limits.max_ext_headers;
        // The first repeated header (RFC 8200 4.1), reported once the chain is walked (a
        // chain too long or cut short is reported as that instead).
        let mut duplicate = None;
        // What Hop-by-Hop and Destination Options carry (on the stack; an event only
        // when it holds something).
        let mut opts = OptionsSummary::default();
        let mut too_many_options = false;
        while is_ext(nh) {
            if chain.len() >= max_ext {
                let detail = format!("more than {max_ext} headers").into();
                self.malformed(out, "ext", "chain_too_long", detail, s, d, tunnels);
                // Suricata walks the whole chain and names the flow at its end; so does
                // this, only skipping (bounded by the bytes: each header has 8 or more).
                return Self::learn_upper(out, from, skip_chain(data, p, end, nh));
            }
            if nh == 0 && !chain.is_empty() {
                let detail = "Hop-by-Hop after another header".into();
                self.malformed(out, "ext", "hbh_not_first", detail, s, d, tunnels);
            }
            if !has(p, end, 8) {
                let what = format!("extension header {nh}").into();
                self.short(out, "ext", what, s, d, tunnels);
                return Self::learn_upper(out, from, cut_at(nh));
            }
            if nh == 0 && chain.is_empty() {
                hbh = Some(p);
            }
            if duplicate.is_none() {
                duplicate = chain_rules::duplicate(chain.as_slice(), nh).map(|r| (r, nh));
            }
            chain.push(nh);
            if nh == NH_FRAGMENT {
                let field = be16(data, p + 2);
                let ident = be32(data, p + 4);
                let offset = field & 0xFFF8;
                let more = field & 1 != 0;
                if frag.is_some() {
                    // reassembled datagram: keep walking
                } else if offset == 0 && !more {
                    // RFC 6946: an atomic fragment is processed alone, never merged.
                    frag = Some(FragmentInfo {
                        ident,
                        count: 1,
                        atomic: true,
                        first_chain_complete: true,
                        overlap: VARIANT_NONE,
                    });
                    self.fragment_anomaly(out, FragKind::Atomic, src, dst, ident, tunnels);
                } else {
                    let at = FragAt {
                        off,
                        fh: p,
                        end,
                        src,
                        dst,
                        ident,
                        offset,
                        more,
                    };
                    return self.fragment(data, at, tunnels, out);
                }
                nh = data[p];
                p += 8;
                continue;
            }
            let size = ext_size(nh, data[p + 1]);
            if p + size > end {
                let what = format!("extension header {nh} of {size} bytes").into();
                self.short(out, "ext", what, s, d, tunnels);
                return Self::learn_upper(out, from, cut_at(nh));
            }
            if nh == chain_rules::NH_ROUTING && chain_rules::routing_type0(data, p) {
                let detail = format!("segments left {}", data[p + 3]).into();
                self.malformed(out, "ext", "routing_type0", detail, s, d, tunnels);
            }
            if nh == NH_HBH || nh == NH_DSTOPTS {
                let max = self.limits.max_ext_options;
                let walked = ext_options::walk(data, p + 2, p + size, nh, max, &mut opts);
                if walked == Walk::TooMany && !too_many_options {
                    too_many_options = true; // once per packet, like the chain limit
                    let detail = format!("more than {max} options in header {nh}").into();
                    self.malformed(out, "ext", "too_many_options", detail, s, d, tunnels);
                }
            }
            nh = data[p];
            p += size;
        }
        if let Some((reason, h)) = duplicate {
            let detail = format!("extension header {h} repeated").into();
            self.malformed(out, "ext", reason, detail, s, d, tunnels);
        }
        if chain_rules::unassigned(nh) {
            let detail = format!("next header {nh}").into();
            self.malformed(out, "ext", "unknown_next_header", detail, s, d, tunnels);
        }
        if unspecified && !chain_rules::unspecified_allowed(data, p, end, nh, &dst) {
            let detail = match peek_upper(data, p, end, nh).icmp_type {
                Some(t) => format!("from :: with ICMPv6 type {t}").into(),
                None => format!("from :: with next header {nh}").into(),
            };
            self.malformed(out, "ipv6", "unspecified_source", detail, s, d, tunnels);
        }
        if out.len() > from {
            Self::learn_upper(out, from, peek_upper(data, p, end, nh));
        }

        let ip = Ipv6Header {
            src,
            dst,
            hop_limit: hlim,
            traffic_class: (first >> 20) as u8,
            flow_label: first & 0xFFFFF,
            payload_len: plen,
            chain,
            upper: nh,
            fragment: frag,
            tunnels: *tunnels,
        };
        self.hbh_at = hbh;
        if self.want_ext_options && opts.suspicious() {
            let meta = self.meta();
            out.push(Event::ExtOptions(ExtOptions {
                meta,
                ip,
                upper: peek_upper(data, p, end, nh),
                summary: opts,
            }));
        }
        self.upper(data, p, end, &ip, out)
    }

    fn fragment(&mut self, data: &[u8], at: FragAt, tunnels: &Tunnels, out: &mut Vec<Event>) {
        self.stats.fragments += 1;
        let (s, d) = (Some(IpAddr::V6(at.src)), Some(IpAddr::V6(at.dst)));
        if self.f.snapped {
            let what = "fragment cut by snaplen".into();
            return self.short(out, "fragment", what, s, d, tunnels);
        }
        let mut first_complete = true;
        if at.offset == 0 {
            first_complete = chain_complete(data, at.fh, at.end);
            if !first_complete {
                let kind = FragKind::IncompleteChain;
                self.fragment_anomaly(out, kind, at.src, at.dst, at.ident, tunnels);
            }
        }
        // The key carries the link and tunnel context: the same (src, dst, id) on two
        // VLANs or inside two tunnels are different datagrams.
        let key = reassembly_key(at, tunnels, self.f.iface, self.f.vlans);
        let mut anomalies = std::mem::take(&mut self.anomalies);
        anomalies.clear();
        self.reasm.frame = self.f.frame;
        let done = self.reasm.add(
            &key,
            self.f.ts_ns,
            at.offset as usize,
            at.more,
            &data[at.fh + 8..at.end],
            &data[at.off..at.fh + 8],
            first_complete,
            &mut anomalies,
        );
        for (akey, kind, origin) in anomalies.drain(..) {
            self.count_anomaly(kind);
            let meta = self.meta();
            out.push(Event::Fragment(akey.anomaly(meta, kind, origin)));
        }
        self.anomalies = anomalies;
        let Some(mut done) = done else { return };
        let info = FragmentInfo {
            ident: at.ident,
            count: done.count,
            atomic: false,
            first_chain_complete: done.first_chain_complete,
            overlap: done.variant,
        };
        if done.variant != VARIANT_NONE {
            // Overlapping fragments (already reported): what hosts that keep the first
            // or the last copy would read. Only their ND messages go on, marked.
            let last = done.last.take().unwrap_or_default();
            return self.overlap_readings(&mut done.buf, last, info, tunnels, out);
        }
        self.stats.reassembled += 1;
        let buf = &mut done.buf;
        let plen = buf.len() - 40;
        if plen > 0xFFFF {
            let kind = FragKind::Oversize;
            return self.fragment_anomaly(out, kind, at.src, at.dst, at.ident, tunnels);
        }
        buf[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        let buf = std::mem::take(&mut done.buf);
        self.ipv6(&buf, 0, buf.len(), tunnels, Some(info), out)
    }

    /// RFC 5722 says to drop an overlapped datagram; hosts that ignore it keep the first
    /// or the last copy. Decode both readings (`first`, then `last`) and emit the ND
    /// messages they hold, `FragmentInfo::overlap` naming the reading, so the RA and ND
    /// detections judge what such a host saw; the same message read both ways is
    /// emitted once. Nothing else from a reading is emitted: the overlap is the
    /// malformed event, and its packets must not count twice.
    fn overlap_readings(
        &mut self,
        first: &mut Vec<u8>,
        mut last: Vec<u8>,
        info: FragmentInfo,
        tunnels: &Tunnels,
        out: &mut Vec<Event>,
    ) {
        let mut found: Vec<Event> = Vec::new();
        for (buf, variant) in [(first, VARIANT_FIRST), (&mut last, VARIANT_LAST)] {
            let plen = buf.len() - 40;
            if plen > 0xFFFF {
                continue;
            }
            buf[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
            let mut events = Vec::new();
            let info = FragmentInfo {
                overlap: variant,
                ..info
            };
            self.ipv6(buf, 0, buf.len(), tunnels, Some(info), &mut events);
            for ev in events {
                if let Event::Nd(nd) = ev {
                    let same = found.iter().any(|e| match e {
                        Event::Nd(o) => o.body == nd.body && o.options == nd.options,
                        _ => false,
                    });
                    if !same {
                        found.push(Event::Nd(nd));
                    }
                }
            }
        }
        out.extend(found);
    }

    // -- upper layers ------------------------------------------------------------------

    fn upper(&mut self, data: &[u8], p: usize, end: usize, ip: &Ipv6Header, out: &mut Vec<Event>) {
        let nh = ip.upper;
        let (mut sport, mut dport, mut itype, mut icode, mut flags) =
            (None, None, None, None, None);
        let (s, d) = (Some(IpAddr::V6(ip.src)), Some(IpAddr::V6(ip.dst)));
        match nh {
            NH_ICMPV6 => {
                if !has(p, end, 4) {
                    let what = "ICMPv6 header".into();
                    let at = out.len();
                    self.short(out, "icmpv6", what, s, d, &ip.tunnels);
                    return Self::learn_upper(out, at, cut_at(NH_ICMPV6));
                }
                let t = data[p];
                itype = Some(t);
                icode = Some(data[p + 1]);
                if (133..=137).contains(&t) {
                    self.nd_message(data, p, end, ip, out);
                } else if (1..=4).contains(&t) {
                    self.icmp_error(data, p, end, ip, out);
                }
                if self.want_mld && super::mld::is_mld(t) {
                    self.mld_message(data, p, end, ip, out);
                }
            }
            NH_TCP if has(p, end, 14) => {
                sport = Some(be16(data, p));
                dport = Some(be16(data, p + 2));
                flags = Some(data[p + 13]);
                if self.want_dns && super::dns_at(&data[..end], p) {
                    let (s, d) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
                    self.dns_tcp(data, p, end, s, d, &ip.tunnels, out);
                }
            }
            NH_UDP if has(p, end, 8) => {
                sport = Some(be16(data, p));
                dport = Some(be16(data, p + 2));
                if self.want_dhcpv6 && super::dhcpv6_at(&data[..end], p) {
                    self.dhcpv6(data, p, end, ip, out);
                }
                if self.want_dns && super::dns_at(&data[..end], p) {
                    let (s, d) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
                    self.dns_udp(data, p, end, s, d, &ip.tunnels, out);
                }
            }
            NH_IPV6 | NH_IPV4 => {
                let (kind, version) = if nh == NH_IPV6 {
                    (TunnelKind::SixInSix, 6)
                } else {
                    (TunnelKind::FourInSix, 4)
                };
                let layer = TunnelLayer {
                    kind,
                    outer_src: IpAddr::V6(ip.src),
                    outer_dst: IpAddr::V6(ip.dst),
                    ..TunnelLayer::default()
                };
                self.tunnel(data, p, end, &ip.tunnels, layer, version, out);
            }
            _ => {}
        }
        if self.want_packets {
            let mut quoted = None;
            if let Some(t) = itype {
                // ICMPv6 errors quote the invoking packet; its source (RFC 4443 2.1).
                if t < 128 && has(p, end, 48) && data[p + 8] >> 4 == 6 {
                    quoted = Some(arr16(data, p + 16));
                }
            }
            let meta = self.meta();
            out.push(Event::Packet(Ipv6Packet {
                meta,
                ip: *ip,
                sport,
                dport,
                icmp_type: itype,
                icmp_code: icode,
                tcp_flags: flags,
                quoted_src: quoted,
            }));
        }
    }

    /// Hand an ND message (ICMPv6 133-137) to `nd`, reporting what it finds wrong.
    fn nd_message(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        ip: &Ipv6Header,
        out: &mut Vec<Event>,
    ) {
        self.stats.nd += 1;
        let itype = data[p];
        let (s, d) = (Some(IpAddr::V6(ip.src)), Some(IpAddr::V6(ip.dst)));
        // The caller checked the 4-byte ICMPv6 header.
        let flow = Upper {
            proto: Some(NH_ICMPV6),
            icmp_type: Some(itype),
            icmp_code: Some(data[p + 1]),
            ..Upper::default()
        };
        let meta = self.meta();
        let Some(msg) = super::nd::parse_nd(meta, ip, data, p, end) else {
            if self.f.snapped {
                let what = format!("ND type {itype} body").into();
                return self.short(out, "nd", what, s, d, &ip.tunnels);
            }
            let detail = format!("ND type {itype} shorter than its fixed part").into();
            let t = &ip.tunnels;
            return self.malformed_in(out, "nd", "short_message", detail, s, d, t, flow);
        };
        // The set of error reasons, sorted by name (the enum's order is alphabetical).
        let mut reasons = [false; 4];
        let mut cut = false;
        for e in &msg.option_errors {
            if self.f.snapped && e.reason == OptionReason::Truncated {
                cut = true; // an option cut by the snaplen is not the sender's fault
            } else {
                reasons[e.reason as usize] = true;
            }
        }
        out.push(Event::Nd(msg));
        if cut {
            let what = "options cut by the snaplen".into();
            self.short(out, "nd", what, None, None, &Tunnels::default());
        }
        if reasons.iter().any(|&r| r) {
            let all = [
                OptionReason::BadLength,
                OptionReason::BadValue,
                OptionReason::Truncated,
                OptionReason::ZeroLength,
            ];
            let mut joined = String::new();
            for r in all.iter().filter(|r| reasons[**r as usize]) {
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(r.name());
            }
            let detail = Cow::Owned(joined);
            let t = &ip.tunnels;
            self.malformed_in(out, "nd", "bad_option", detail, s, d, t, flow);
        }
    }
}

impl Decoder {
    /// Hand an MLD or MRD message to `mld`; short or inconsistent ones are malformed.
    fn mld_message(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        ip: &Ipv6Header,
        out: &mut Vec<Event>,
    ) {
        let itype = data[p];
        let (s, d) = (Some(IpAddr::V6(ip.src)), Some(IpAddr::V6(ip.dst)));
        // The caller checked the 4-byte ICMPv6 header.
        let flow = Upper {
            proto: Some(NH_ICMPV6),
            icmp_type: Some(itype),
            icmp_code: Some(data[p + 1]),
            ..Upper::default()
        };
        let alert = self
            .hbh_at
            .take()
            .is_some_and(|h| super::mld::router_alert(data, h, end));
        let meta = self.meta();
        let (msg, error) = super::mld::parse_mld(meta, ip, alert, data, p, end);
        if let Some(mut msg) = msg {
            msg.snapped = self.f.snapped;
            out.push(Event::Mld(msg));
        }
        if let Some(e) = error {
            if self.f.snapped {
                let what = format!("MLD type {itype} body").into();
                return self.short(out, "mld", what, s, d, &ip.tunnels);
            }
            let detail = format!("MLD type {itype}: {}", e.reason()).into();
            let t = &ip.tunnels;
            self.malformed_in(out, "mld", e.reason(), detail, s, d, t, flow);
        }
    }
}

/// Where a fragment sits in its packet.
#[derive(Clone, Copy)]
struct FragAt {
    /// Start of the IPv6 header.
    off: usize,
    /// Start of the Fragment header.
    fh: usize,
    end: usize,
    src: [u8; 16],
    dst: [u8; 16],
    ident: u32,
    /// Fragment offset in bytes.
    offset: u16,
    more: bool,
}

fn reassembly_key(at: FragAt, tunnels: &Tunnels, iface: u32, vlans: Vlans) -> super::FragKey {
    super::FragKey {
        src: at.src,
        dst: at.dst,
        ident: at.ident,
        tunnels: *tunnels,
        iface,
        vlans,
    }
}

/// RFC 7112: does the first fragment hold every header up to the upper layer?
/// The flow of a packet cut inside header `nh`: its protocol, nothing after it.
fn cut_at(nh: u8) -> Upper {
    Upper {
        proto: Some(nh),
        ..Upper::default()
    }
}

/// The flow of an upper-layer header `nh` at `p`: its ports or ICMP type and code, if
/// the bytes hold them.
fn peek_upper(data: &[u8], p: usize, end: usize, nh: u8) -> Upper {
    let mut u = cut_at(nh);
    match nh {
        NH_TCP | NH_UDP if has(p, end, 4) => {
            u.sport = Some(be16(data, p));
            u.dport = Some(be16(data, p + 2));
        }
        NH_ICMPV6 if has(p, end, 4) => {
            u.icmp_type = Some(data[p]);
            u.icmp_code = Some(data[p + 1]);
        }
        _ => {}
    }
    u
}

/// Skip the rest of an extension chain from header `nh` at `p` and peek at what ends
/// it: the flow, or the header the bytes ran out in. Ends: every step consumes 8 or
/// more bytes. A later fragment stops it (its upper header is elsewhere).
fn skip_chain(data: &[u8], mut p: usize, end: usize, mut nh: u8) -> Upper {
    while is_ext(nh) {
        if !has(p, end, 8) || (nh == NH_FRAGMENT && be16(data, p + 2) & 0xFFF8 != 0) {
            return cut_at(nh);
        }
        let size = if nh == NH_FRAGMENT {
            8
        } else {
            ext_size(nh, data[p + 1])
        };
        if p + size > end {
            return cut_at(nh);
        }
        nh = data[p];
        p += size;
    }
    peek_upper(data, p, end, nh)
}

fn chain_complete(data: &[u8], fh: usize, end: usize) -> bool {
    let mut nh = data[fh];
    let mut p = fh + 8;
    for _ in 0..64 {
        if is_ext(nh) && nh != NH_FRAGMENT {
            if !has(p, end, 2) {
                return false;
            }
            let size = ext_size(nh, data[p + 1]);
            nh = data[p];
            p += size;
            continue;
        }
        break;
    }
    let need = match nh {
        NH_TCP => 20,
        NH_UDP => 8,
        NH_ICMPV6 => 4,
        _ => 0,
    };
    has(p, end, need)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Decoder, DecoderLimits};
    use super::*;

    fn ext(nh: u8) -> Vec<u8> {
        vec![nh, 0, 0, 0, 0, 0, 0, 0]
    }

    #[test]
    fn extension_chain_is_walked_and_recorded() {
        let echo = icmp6(&G1, &G2, 128, &[0; 4]);
        let mut ah = vec![58, 1];
        ah.extend_from_slice(&[0; 10]); // (1 + 2) * 4 = 12 bytes
        let payload = [ext(60), ext(43), ext(51), ah, echo].concat();
        let ev = decode(&eth(&ip6(&G1, &G2, 0, &payload), 0x86DD, &[]));
        let p = packets(&ev);
        assert_eq!(p[0].ip.chain.as_slice(), [0, 60, 43, 51]);
        assert_eq!((p[0].ip.upper, p[0].icmp_type), (58, Some(128)));
    }

    #[test]
    fn chain_length_is_bounded_and_hbh_must_be_first() {
        let mut payload: Vec<u8> = (0..19).flat_map(|_| ext(60)).collect();
        payload.extend(ext(58));
        payload.extend(icmp6(&G1, &G2, 128, &[0; 4]));
        let mut d = Decoder::new(DecoderLimits::default());
        d.want_packets = true;
        let frame = eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(malformed(&ev), [("ext", "chain_too_long")]);
        assert!(packets(&ev).is_empty());
        // Suricata walks the whole chain: its alert has the echo's ICMPv6 flow.
        assert_eq!(flows(&ev), [icmp_flow(128, 0)]);
        let payload = [ext(0), ext(58), icmp6(&G1, &G2, 128, &[0; 4])].concat();
        let ev = decode(&eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]));
        assert_eq!(malformed(&ev), [("ext", "hbh_not_first")]);
        assert_eq!(flows(&ev), [icmp_flow(128, 0)]);
        assert_eq!(packets(&ev).len(), 1);
    }

    #[test]
    fn a_broken_chain_names_its_flow_as_far_as_it_goes() {
        let mut d = Decoder::new(DecoderLimits::default());
        // Too long, ending in UDP: the ports.
        let mut payload: Vec<u8> = (0..19).flat_map(|_| ext(60)).collect();
        payload.extend(ext(17));
        payload.extend(udp(40000, 53, &[0; 4]));
        let frame = eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        let udp_flow = Upper {
            proto: Some(17),
            sport: Some(40000),
            dport: Some(53),
            ..Upper::default()
        };
        assert_eq!(flows(&ev), [udp_flow]);
        // Too long, and cut inside a header past the limit: that header.
        let mut payload: Vec<u8> = (0..18).flat_map(|_| ext(60)).collect();
        payload.extend(ext(43));
        payload.extend([58, 0, 0, 0]);
        let frame = eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(malformed(&ev), [("ext", "chain_too_long")]);
        assert_eq!(flows(&ev)[0].proto, Some(43));
        // Too long, then a later fragment: its upper header is not here.
        let mut payload: Vec<u8> = (0..19).flat_map(|_| ext(60)).collect();
        payload.extend([44, 0, 0, 0, 0, 0, 0, 0, 58, 0, 0, 8, 0, 0, 0, 1]);
        payload.extend(icmp6(&G1, &G2, 128, &[0; 4]));
        let frame = eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(flows(&ev)[0].proto, Some(44));
        // A Destination Options header claiming 16 bytes with 8 present: header 60,
        // where the bytes ran out.
        let frame = eth(&ip6(&G1, &G2, 60, &[58, 1, 0, 0, 0, 0, 0, 0]), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(malformed(&ev), [("ext", "truncated")]);
        assert_eq!(
            flows(&ev),
            [Upper {
                proto: Some(60),
                ..Upper::default()
            }]
        );
        // A cut ICMPv6 header: the protocol, no type.
        let frame = eth(&ip6(&G1, &G2, 58, &[128, 0]), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(malformed(&ev), [("icmpv6", "truncated")]);
        assert_eq!(
            flows(&ev),
            [Upper {
                proto: Some(58),
                ..Upper::default()
            }]
        );
    }

    #[test]
    fn atomic_fragment_is_processed_alone() {
        let echo = icmp6(&G1, &G2, 128, &[0; 4]);
        let payload = [
            vec![44, 0, 0, 0, 0, 0, 0, 0],
            vec![58, 0, 0, 0, 0, 0, 0, 7],
            echo,
        ]
        .concat();
        let ev = decode(&eth(&ip6(&G1, &G2, 0, &payload), 0x86DD, &[]));
        assert_eq!(anomalies(&ev), [FragKind::Atomic]);
        let f = packets(&ev)[0].ip.fragment.unwrap();
        assert!(f.atomic && f.ident == 7 && f.count == 1);
    }

    #[test]
    fn incomplete_first_fragment_chain_is_reported() {
        // The first fragment ends inside a Destination Options header (RFC 7112).
        let mut payload = vec![58, 2];
        payload.extend_from_slice(&[0; 14]);
        let fh = [60, 0, 0, 1, 0, 0, 0, 5];
        let ev = decode(&eth(
            &ip6(&G1, &G2, 44, &[&fh[..], &payload].concat()),
            0x86DD,
            &[],
        ));
        assert_eq!(anomalies(&ev), [FragKind::IncompleteChain]);
        assert!(!chain_complete(&[60, 0, 0, 1, 0, 0, 0, 5, 58, 2], 0, 10));
        assert!(chain_complete(
            &[58, 0, 0, 1, 0, 0, 0, 5, 128, 0, 0, 0],
            0,
            12
        ));
    }

    #[test]
    fn reassembly_out_of_order_gives_one_packet() {
        let msg = icmp6(&G1, &G2, 128, &[7; 60]);
        let mut d = decoder();
        let mut ev = Vec::new();
        for f in fragments(&G1, &G2, 58, &msg, 24, 1).iter().rev() {
            ev.extend(run(&mut d, 1, f, f.len(), S));
        }
        let p = packets(&ev);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].ip.chain.as_slice(), [44]);
        assert_eq!(p[0].ip.payload_len as usize, 8 + msg.len());
        assert_eq!(p[0].ip.fragment.unwrap().count, 3);
        assert_eq!((d.stats().reassembled, d.reassembler().len()), (1, 0));
    }

    #[test]
    fn fragments_on_two_vlans_are_two_datagrams() {
        let msg = icmp6(&G1, &G2, 128, &[7; 60]);
        let frags = fragments(&G1, &G2, 58, &msg, 32, 1);
        let mut tagged = frags[1][..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0, 5]);
        tagged.extend_from_slice(&frags[1][12..]);
        let mut d = decoder();
        run(&mut d, 1, &frags[0], frags[0].len(), S);
        let ev = run(&mut d, 1, &tagged, tagged.len(), S);
        assert!(packets(&ev).is_empty());
        assert_eq!(d.reassembler().len(), 2);
    }

    #[test]
    fn ipv4_bad_header_and_fragments() {
        let mut bad = ipv4(&V4A, &V4B, 41, &[0; 40]);
        bad[0] = 0x44;
        let ev = decode(&eth(&bad, 0x0800, &[]));
        assert_eq!(malformed(&ev), [("ipv4", "bad_header")]);
        let mut frag = ipv4(&V4A, &V4B, 41, &[0; 40]);
        frag[6] = 0x20; // MF
        let mut d = decoder();
        let f = eth(&frag, 0x0800, &[]);
        assert!(run(&mut d, 1, &f, f.len(), S).is_empty());
        assert_eq!(d.stats().ipv4_fragments_skipped, 1);
    }

    #[test]
    fn routing_type0_duplicates_and_unknown_next_headers() {
        let echo = icmp6(&G1, &G2, 128, &[0; 4]);
        // RH0 (RFC 5095), one segment left.
        let rh0 = vec![58, 2, 0, 1, 0, 0, 0, 0];
        let rh0 = [rh0, vec![0; 16]].concat();
        let ev = decode(&eth(
            &ip6(&G1, &G2, 43, &[&rh0[..], &echo].concat()),
            0x86DD,
            &[],
        ));
        assert_eq!(malformed(&ev), [("ext", "routing_type0")]);
        assert_eq!(flows(&ev), [icmp_flow(128, 0)]);
        // A type 2 Routing header (Mobile IPv6) is fine.
        let rh2 = [vec![58, 2, 2, 1, 0, 0, 0, 0], vec![0; 16]].concat();
        let ev = decode(&eth(
            &ip6(&G1, &G2, 43, &[&rh2[..], &echo].concat()),
            0x86DD,
            &[],
        ));
        assert!(malformed(&ev).is_empty());
        // Destination Options twice is allowed, three times is not; reported once.
        let rh2 = vec![60, 0, 2, 0, 0, 0, 0, 0];
        let payload = [ext(43), rh2.clone(), ext(58), echo.clone()].concat();
        let ev = decode(&eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]));
        assert!(malformed(&ev).is_empty());
        let payload = [ext(43), rh2, ext(60), ext(58), echo.clone()].concat();
        let ev = decode(&eth(&ip6(&G1, &G2, 60, &payload), 0x86DD, &[]));
        assert_eq!(malformed(&ev), [("ext", "duplicate_header")]);
        // Two Fragment headers, both atomic: the explicit duplicate.
        let fh = |nh| vec![nh, 0, 0, 0, 0, 0, 0, 9];
        let payload = [fh(44), fh(58), echo.clone()].concat();
        let ev = decode(&eth(&ip6(&G1, &G2, 44, &payload), 0x86DD, &[]));
        assert_eq!(malformed(&ev), [("ext", "duplicate_fragment")]);
        // Unassigned protocol numbers, directly and after a header; 59 is not one.
        let ev = decode(&eth(&ip6(&G1, &G2, 200, &[0; 8]), 0x86DD, &[]));
        assert_eq!(malformed(&ev), [("ext", "unknown_next_header")]);
        let ev = decode(&eth(
            &ip6(&G1, &G2, 60, &[&ext(255)[..], &[0; 8]].concat()),
            0x86DD,
            &[],
        ));
        assert_eq!(malformed(&ev), [("ext", "unknown_next_header")]);
        assert_eq!(flows(&ev)[0].proto, Some(255));
        assert!(malformed(&decode(&eth(&ip6(&G1, &G2, 59, &[]), 0x86DD, &[]))).is_empty());
    }

    #[test]
    fn unspecified_source_only_for_dad_and_mld() {
        const UNSPEC: [u8; 16] = [0; 16];
        let snm = [0xFF, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0, 0, 0x10];
        let ns = icmp6(&UNSPEC, &snm, 135, &[&[0u8; 4][..], &G1].concat());
        assert!(malformed(&decode(&eth(&ip6(&UNSPEC, &snm, 58, &ns), 0x86DD, &[]))).is_empty());
        let echo = icmp6(&UNSPEC, &G2, 128, &[0; 4]);
        let ev = decode(&eth(&ip6(&UNSPEC, &G2, 58, &echo), 0x86DD, &[]));
        assert_eq!(malformed(&ev), [("ipv6", "unspecified_source")]);
        assert_eq!(flows(&ev), [icmp_flow(128, 0)]);
        // TCP from :: leaves the cheap paths, with and without packets wanted.
        let tcp = [&40000u16.to_be_bytes()[..], &80u16.to_be_bytes(), &[0; 16]].concat();
        let frame = eth(&ip6(&UNSPEC, &G2, 6, &tcp), 0x86DD, &[]);
        let mut d = Decoder::new(DecoderLimits::default());
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(malformed(&ev), [("ipv6", "unspecified_source")]);
        assert_eq!(flows(&ev)[0].dport, Some(80));
        let ev = decode(&frame);
        assert_eq!(malformed(&ev), [("ipv6", "unspecified_source")]);
    }

    #[test]
    fn overlapping_fragments_yield_both_readings_of_an_nd_message() {
        // An RA whose router lifetime differs between the two copies of bytes 0-7.
        let ra = icmp6(&LL1, &ALLNODES, 134, &ra_body(&opt(1, &MAC1)));
        let mut d = decoder();
        let mut ev = Vec::new();
        let frags = fragments(&LL1, &ALLNODES, 58, &ra, 8, 3);
        let mut forged = ra.clone();
        forged[6] = 0xFF; // router lifetime high byte
        let forged = fragments(&LL1, &ALLNODES, 58, &forged, 8, 3);
        ev.extend(run(&mut d, 1, &frags[0], frags[0].len(), S));
        ev.extend(run(&mut d, 1, &forged[0], forged[0].len(), S));
        for f in &frags[1..] {
            ev.extend(run(&mut d, 1, f, f.len(), S));
        }
        assert_eq!(anomalies(&ev), [FragKind::Overlap]);
        let ras = nd(&ev);
        assert_eq!(ras.len(), 2);
        let overlap: Vec<u8> = ras.iter().map(|m| m.ip.fragment.unwrap().overlap).collect();
        assert_eq!(overlap, [VARIANT_FIRST, VARIANT_LAST]);
        assert!(packets(&ev).is_empty() && malformed(&ev).is_empty());
        assert_eq!(d.reassembler().bytes(), 0);
        // Identical readings (the overlap rewrites nothing ND reads) give one message.
        let mut d = decoder();
        let frags = fragments(&LL1, &ALLNODES, 58, &ra, 16, 4);
        let mut ev = Vec::new();
        let mut half = frags[0].clone();
        let n = half.len();
        half.truncate(n - 8); // offset 0, 8 bytes: a strict overlap, same bytes
        let plen = (half.len() - 54) as u16;
        half[18..20].copy_from_slice(&plen.to_be_bytes());
        for f in [&frags[0], &half].into_iter().chain(&frags[1..]) {
            ev.extend(run(&mut d, 1, f, f.len(), S));
        }
        assert_eq!(anomalies(&ev), [FragKind::Overlap]);
        assert_eq!(nd(&ev).len(), 1);
    }
}
