//! Tunnel decapsulation: protocol 41 (6in4, 6to4, ISATAP), Teredo (RFC 4380) on and
//! off port 3544, AYIYA, and IP-in-IPv6 (6in6, 4in6).
//!
//! Owns recognising a tunnel, recording the `TunnelLayer` and handing the inner packet
//! back to `ip`, bounded by `max_tunnel_depth`. Teredo off its port is accepted only
//! when the payload validates as exactly one IPv6 packet with a Teredo address, so
//! ordinary UDP (DNS ids starting with 0x6) is not mistaken for it.

use super::events::*;
use super::{arr16, arr4, be16, has, Decoder};
use super::{NH_ICMPV6, NH_IPV4, NH_IPV6, NH_NONE, NH_TCP, NH_UDP};

/// RFC 4380's Teredo port: the decoder, the tunnel family and the rule packs use this one.
pub const TEREDO_PORT: u16 = 3544;
const AYIYA_PORT: u16 = 5072;
const TEREDO_PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];

/// Next headers a real IPv6 packet plausibly carries; used to validate Teredo.
fn plausible_nh(nh: u8) -> bool {
    super::ip::is_ext(nh)
        || matches!(
            nh,
            NH_TCP | NH_UDP | NH_ICMPV6 | NH_NONE | 50 | NH_IPV4 | NH_IPV6
        )
}

/// Does `data[q..end]` hold exactly one plausible IPv6 packet? Bubbles (no next
/// header, payload length 0) may carry trailing bytes.
fn valid_ipv6(data: &[u8], q: usize, end: usize) -> bool {
    if !has(q, end, 40) || data[q] >> 4 != 6 {
        return false;
    }
    let plen = be16(data, q + 4) as usize;
    let nh = data[q + 6];
    if nh == NH_NONE && plen == 0 {
        return true;
    }
    plen == end - q - 40 && plausible_nh(nh) && data[q + 8] != 0xFF
}

/// Decode a Teredo address (RFC 4380 4): server, cone flag, obfuscated port and IP.
fn teredo_info(
    addr: &[u8; 16],
    bubble: bool,
    auth: bool,
    origin: Option<([u8; 4], u16)>,
) -> TeredoInfo {
    let mut info = TeredoInfo {
        bubble,
        auth,
        origin_ip: origin.map(|o| o.0),
        origin_port: origin.map(|o| o.1),
        ..TeredoInfo::default()
    };
    if addr[..4] == TEREDO_PREFIX {
        let c = arr4(addr, 12);
        info.server = Some(arr4(addr, 4));
        info.client_ip = Some([!c[0], !c[1], !c[2], !c[3]]);
        info.client_port = Some(be16(addr, 10) ^ 0xFFFF);
        info.cone = Some(addr[8] & 0x80 != 0);
    }
    info
}

/// One UDP-carried tunnel's outer context.
#[derive(Clone, Copy)]
struct Outer {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
}

impl Outer {
    /// The carrier UDP flow, for a `Malformed` payload.
    fn flow(&self) -> Upper {
        Upper {
            proto: Some(NH_UDP),
            sport: Some(self.sport),
            dport: Some(self.dport),
            ..Upper::default()
        }
    }

    fn layer(&self, kind: TunnelKind, teredo: Option<TeredoInfo>) -> TunnelLayer {
        TunnelLayer {
            kind,
            outer_src: self.src,
            outer_dst: self.dst,
            outer_sport: Some(self.sport),
            outer_dport: Some(self.dport),
            teredo,
        }
    }
}

impl Decoder {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn udp4(
        &mut self,
        data: &[u8],
        p: usize,
        mut end: usize,
        src: IpAddr,
        dst: IpAddr,
        tunnels: &Tunnels,
        out: &mut Vec<Event>,
    ) {
        if !has(p, end, 8) {
            let what = "UDP header".into();
            return self.short(out, "ipv4", what, Some(src), Some(dst), tunnels);
        }
        let sport = be16(data, p);
        let dport = be16(data, p + 2);
        let ulen = be16(data, p + 4) as usize;
        if 8 <= ulen && ulen <= end - p {
            end = p + ulen;
        }
        let q = p + 8;
        // Port 53 is DNS unless it carries a whole IPv6 packet: UDP/53 is the port
        // firewalls let through, so a tunnel there must still be decapsulated (it goes
        // on to the "Teredo on any port" check below). The test is strict (version 6 and
        // a payload length that fills the datagram) so real DNS is never taken for it.
        if self.want_dns
            && super::dns::is_dns_port(sport, dport)
            && !(has(q, end, 40) && data[q] >> 4 == 6 && q + 40 + be16(data, q + 4) as usize == end)
        {
            return self.dns_udp(data, p, end, src, dst, tunnels, out);
        }
        let outer = Outer {
            src,
            dst,
            sport,
            dport,
        };
        if sport == TEREDO_PORT || dport == TEREDO_PORT {
            self.teredo(data, q, end, outer, tunnels, true, out)
        } else if sport == AYIYA_PORT || dport == AYIYA_PORT {
            self.ayiya(data, q, end, outer, tunnels, out)
        } else if has(q, end, 40) && (data[q] >> 4 == 6 || (data[q] == 0 && data[q + 1] <= 1)) {
            // Teredo on any port (client to client): only if it validates as IPv6.
            self.teredo(data, q, end, outer, tunnels, false, out)
        }
    }

    /// Count the tunnel, bound the depth, emit the decapsulation, decode the inner packet.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tunnel(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        tunnels: &Tunnels,
        layer: TunnelLayer,
        version: u8,
        out: &mut Vec<Event>,
    ) {
        let depth = tunnels.len() + 1;
        self.stats.tunnels.add(layer.kind);
        if depth > self.limits.max_tunnel_depth {
            let detail = format!("{depth} nested tunnels").into();
            let (s, d) = (Some(layer.outer_src), Some(layer.outer_dst));
            // The carrier's flow: the outer header's protocol, and the UDP ports of
            // Teredo and AYIYA.
            let flow = Upper {
                proto: Some(match layer.kind {
                    TunnelKind::SixInFour | TunnelKind::SixInSix => NH_IPV6,
                    TunnelKind::FourInSix => NH_IPV4,
                    TunnelKind::Teredo | TunnelKind::Ayiya => NH_UDP,
                }),
                sport: layer.outer_sport,
                dport: layer.outer_dport,
                ..Upper::default()
            };
            let why = "too_deep";
            return self.malformed_in(out, "tunnel", why, detail, s, d, tunnels, flow);
        }
        if self.want_tunnels {
            let ev = self.tunnel_event(data, p, end, layer, version, depth as u8);
            out.push(Event::Tunnel(ev));
        }
        let inner = tunnels.with(layer);
        match version {
            6 => self.ipv6(data, p, end, &inner, None, out),
            4 => self.ipv4(data, p, end, &inner, out),
            _ => {} // 0: a tunnel message without an inner packet (AYIYA control)
        }
    }

    /// The decapsulation event, with the inner IPv6 addresses the tunnel detections
    /// classify by (6to4, ISATAP, Teredo qualification).
    fn tunnel_event(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        layer: TunnelLayer,
        version: u8,
        depth: u8,
    ) -> TunnelPacket {
        let meta = self.meta();
        let mut ev = TunnelPacket {
            meta,
            layer,
            inner_version: version,
            inner_len: end.saturating_sub(p) as u32,
            depth,
            inner_src: None,
            inner_dst: None,
            inner_next: None,
            inner_icmp_type: None,
        };
        if version == 6 && has(p, end, 40) {
            let nh = data[p + 6];
            ev.inner_src = Some(arr16(data, p + 8));
            ev.inner_dst = Some(arr16(data, p + 24));
            ev.inner_next = Some(nh);
            if nh == NH_ICMPV6 && has(p, end, 41) {
                ev.inner_icmp_type = Some(data[p + 40]);
            }
        }
        ev
    }

    #[allow(clippy::too_many_arguments)]
    fn teredo(
        &mut self,
        data: &[u8],
        mut q: usize,
        end: usize,
        outer: Outer,
        tunnels: &Tunnels,
        on_port: bool,
        out: &mut Vec<Event>,
    ) {
        let mut auth = false;
        let mut origin = None;
        if has(q, end, 4) && data[q] == 0 && data[q + 1] == 1 {
            // authentication header: + client id, auth value, nonce (8), confirmation (1)
            let (id_len, au_len) = (data[q + 2] as usize, data[q + 3] as usize);
            q += 4 + id_len + au_len + 9;
            auth = true;
        }
        if has(q, end, 8) && data[q] == 0 && data[q + 1] == 0 {
            // origin indication, obfuscated (RFC 4380 5.1.1)
            let port = be16(data, q + 2) ^ 0xFFFF;
            let ip = arr4(data, q + 4);
            origin = Some(([!ip[0], !ip[1], !ip[2], !ip[3]], port));
            q += 8;
        }
        if !valid_ipv6(data, q, end) {
            if on_port && q < end {
                let detail = "UDP 3544 payload is not an IPv6 packet".into();
                let (s, d) = (Some(outer.src), Some(outer.dst));
                let flow = outer.flow();
                self.malformed_in(out, "teredo", "not_ipv6", detail, s, d, tunnels, flow);
            }
            return;
        }
        let isrc = arr16(data, q + 8);
        let idst = arr16(data, q + 24);
        let teredo_src = isrc[..4] == TEREDO_PREFIX;
        let teredo_dst = idst[..4] == TEREDO_PREFIX;
        if !(on_port || teredo_src || teredo_dst) {
            return; // valid-looking IPv6 off port 3544 without a Teredo address: not Teredo
        }
        let plen = be16(data, q + 4) as usize;
        let bubble = data[q + 6] == NH_NONE && plen == 0;
        let addr = if teredo_src || !teredo_dst {
            &isrc
        } else {
            &idst
        };
        let info = teredo_info(addr, bubble, auth, origin);
        let layer = outer.layer(TunnelKind::Teredo, Some(info));
        self.tunnel(data, q, end.min(q + 40 + plen), tunnels, layer, 6, out)
    }

    fn ayiya(
        &mut self,
        data: &[u8],
        q: usize,
        end: usize,
        outer: Outer,
        tunnels: &Tunnels,
        out: &mut Vec<Event>,
    ) {
        // Draft "Anything In Anything": 8 fixed bytes, identity, signature, payload.
        let (s, d) = (Some(outer.src), Some(outer.dst));
        let flow = outer.flow();
        if !has(q, end, 8) {
            let detail = "AYIYA header".into();
            return self.malformed_in(out, "ayiya", "truncated", detail, s, d, tunnels, flow);
        }
        let id_len = 1usize << (data[q] >> 4);
        let sig_len = (data[q + 1] as usize >> 4) * 4;
        let opcode = data[q + 2] & 0x0F;
        let nh = data[q + 3];
        let p = q + 8 + id_len + sig_len;
        if p > end {
            let detail = "AYIYA identity/signature".into();
            return self.malformed_in(out, "ayiya", "truncated", detail, s, d, tunnels, flow);
        }
        let layer = outer.layer(TunnelKind::Ayiya, None);
        if opcode != 1 || nh == NH_NONE {
            // heartbeats and control: no payload
            self.tunnel(data, p, p, tunnels, layer, 0, out)
        } else if nh == NH_IPV6 && valid_ipv6(data, p, end) {
            self.tunnel(data, p, end, tunnels, layer, 6, out)
        } else if nh == NH_IPV4 && has(p, end, 20) && data[p] >> 4 == 4 {
            self.tunnel(data, p, end, tunnels, layer, 4, out)
        } else {
            let detail = format!("next header {nh}").into();
            self.malformed_in(out, "ayiya", "bad_payload", detail, s, d, tunnels, flow)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Decoder, DecoderLimits};
    use super::*;

    fn teredo_addr(server: [u8; 4], client: [u8; 4], port: u16) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&TEREDO_PREFIX);
        a[4..8].copy_from_slice(&server);
        a[8] = 0x80;
        a[10..12].copy_from_slice(&(port ^ 0xFFFF).to_be_bytes());
        for i in 0..4 {
            a[12 + i] = !client[i];
        }
        a
    }

    fn tunnels_of(ev: &[Event]) -> Vec<TunnelPacket> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Tunnel(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn six_in_four() {
        let inner = ip6(
            &LL1,
            &ALLNODES,
            58,
            &icmp6(&LL1, &ALLNODES, 134, &ra_body(&[])),
        );
        let ev = decode(&eth(&ipv4(&V4A, &V4B, 41, &inner), 0x0800, &[]));
        let ra = &nd(&ev)[0];
        let layer = ra.ip.tunnels.as_slice()[0];
        assert_eq!(
            (layer.kind, layer.outer_src, layer.outer_dst),
            (TunnelKind::SixInFour, IpAddr::V4(V4A), IpAddr::V4(V4B))
        );
        let t = &tunnels_of(&ev)[0];
        assert_eq!(
            (t.depth, t.inner_next, t.inner_icmp_type),
            (1, Some(58), Some(134))
        );
    }

    #[test]
    fn teredo_with_auth_and_origin_headers() {
        let (server, client) = ([203, 0, 113, 1], [192, 0, 2, 45]);
        let t = teredo_addr(server, client, 40000);
        let inner = ip6(&LL1, &t, 58, &icmp6(&LL1, &t, 134, &ra_body(&[])));
        let auth = [&[0u8, 1, 0, 0][..], &[0; 9]].concat();
        let origin = [
            &[0u8, 0][..],
            &(40000u16 ^ 0xFFFF).to_be_bytes(),
            &client.map(|b| !b),
        ]
        .concat();
        let payload = [auth, origin, inner].concat();
        let ev = decode(&eth(
            &ipv4(&server, &V4A, 17, &udp(3544, 40000, &payload)),
            0x0800,
            &[],
        ));
        let layer = nd(&ev)[0].ip.tunnels.as_slice()[0];
        let info = layer.teredo.unwrap();
        assert!(info.auth && info.cone == Some(true) && !info.bubble);
        assert_eq!(
            (info.origin_ip, info.origin_port),
            (Some(client), Some(40000))
        );
        assert_eq!(
            (info.server, info.client_ip, info.client_port),
            (Some(server), Some(client), Some(40000))
        );
        assert_eq!(
            (layer.outer_sport, layer.outer_dport),
            (Some(3544), Some(40000))
        );
    }

    #[test]
    fn teredo_off_port_needs_a_valid_packet_with_a_teredo_address() {
        let t = teredo_addr([203, 0, 113, 1], [192, 0, 2, 45], 40000);
        let echo = ip6(&t, &G2, 58, &icmp6(&t, &G2, 128, &[0; 4]));
        let ev = decode(&eth(
            &ipv4(&V4A, &V4B, 17, &udp(40000, 50000, &echo)),
            0x0800,
            &[],
        ));
        assert_eq!(tunnels_of(&ev)[0].layer.kind, TunnelKind::Teredo);
        let native = ip6(&G1, &G2, 58, &icmp6(&G1, &G2, 128, &[0; 4]));
        assert!(decode(&eth(
            &ipv4(&V4A, &V4B, 17, &udp(40000, 50000, &native)),
            0x0800,
            &[]
        ))
        .is_empty());
        let mut dns = b"\x63\x1d\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01".to_vec();
        dns.extend_from_slice(&[0; 40]);
        assert!(decode(&eth(
            &ipv4(&V4A, &V4B, 17, &udp(53000, 53, &dns)),
            0x0800,
            &[]
        ))
        .is_empty());
        let ev = decode(&eth(
            &ipv4(&V4A, &V4B, 17, &udp(3544, 53, &dns)),
            0x0800,
            &[],
        ));
        assert_eq!(malformed(&ev), [("teredo", "not_ipv6")]);
        let carrier = (
            flows(&ev)[0].proto,
            flows(&ev)[0].sport,
            flows(&ev)[0].dport,
        );
        assert_eq!(carrier, (Some(17), Some(3544), Some(53)));
    }

    #[test]
    fn teredo_bubble_may_carry_trailing_bytes() {
        let t = teredo_addr([203, 0, 113, 1], [192, 0, 2, 45], 40000);
        let bubble = [ip6(&t, &G2, 59, &[]), b"1234".to_vec()].concat();
        let ev = decode(&eth(
            &ipv4(&V4A, &V4B, 17, &udp(40000, 50000, &bubble)),
            0x0800,
            &[],
        ));
        let tp = &tunnels_of(&ev)[0];
        assert!(tp.layer.teredo.unwrap().bubble);
        assert_eq!(tp.inner_len, 40);
    }

    #[test]
    fn ayiya_forward_heartbeat_and_bad_payload() {
        let ayiya = |opcode: u8, nh: u8, inner: &[u8]| {
            let mut v = vec![0x41, 0x52, 0x20 | opcode, nh, 0, 0, 0, 0];
            v.extend_from_slice(&[0; 36]); // 16-byte identity, 20-byte signature
            v.extend_from_slice(inner);
            eth(&ipv4(&V4A, &V4B, 17, &udp(50000, 5072, &v)), 0x0800, &[])
        };
        let inner = ip6(&G1, &G2, 58, &icmp6(&G1, &G2, 128, &[0; 4]));
        let ev = decode(&ayiya(1, 41, &inner));
        let p = packets(&ev);
        assert_eq!(
            (p[0].ip.tunnels.as_slice()[0].kind, p[0].ip.src),
            (TunnelKind::Ayiya, G1)
        );
        let ev = decode(&ayiya(0, 59, &[]));
        assert_eq!(tunnels_of(&ev)[0].inner_version, 0);
        let ev = decode(&ayiya(1, 17, &inner));
        assert_eq!(malformed(&ev), [("ayiya", "bad_payload")]);
        assert_eq!(flows(&ev)[0].dport, Some(5072));
    }

    #[test]
    fn tunnel_depth_is_bounded() {
        let mut packet = ip6(&G1, &G2, 58, &icmp6(&G1, &G2, 128, &[0; 4]));
        for _ in 0..5 {
            packet = ip6(&G1, &G2, 41, &packet);
        }
        let mut d = Decoder::new(DecoderLimits::default());
        d.want_packets = true;
        let frame = eth(&packet, 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(malformed(&ev), [("tunnel", "too_deep")]);
        assert_eq!(flows(&ev)[0].proto, Some(41));
        assert_eq!(packets(&ev).len(), 4); // outer plus three decapsulated
        assert_eq!(d.stats().tunnels.get(TunnelKind::SixInSix), 4);
    }
}
