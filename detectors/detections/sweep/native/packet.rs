//! What a reducer sees of one decoded IPv6 packet: `PacketView`, plain data borrowed for
//! one call, and `FirstPacket`, its owned copy kept as the first packet of a window.
//!
//! Owns nothing else: `PacketView::from_packet` builds one from the decoder's
//! `Ipv6Packet` with no allocation (a tunnelled packet's layers go into a caller's
//! buffer).
//! The first packet carries what an alert's `event` needs later (`Detector.alert`: the
//! capture metadata, MACs, VLANs, addresses, upper protocol, ICMPv6 type, tunnels) plus
//! the rest of the fixed IPv6 header; it does not carry the extension-header chain or
//! fragment info, which no alert reads.

use std::net::IpAddr;

/// Encapsulation kinds, as `TunnelLayer.kind` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    SixIn4,
    Teredo,
    Ayiya,
    SixIn6,
    FourIn6,
}

impl TunnelKind {
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::SixIn4 => "6in4",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Ayiya => "ayiya",
            TunnelKind::SixIn6 => "6in6",
            TunnelKind::FourIn6 => "4in6",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "6in4" => TunnelKind::SixIn4,
            "teredo" => TunnelKind::Teredo,
            "ayiya" => TunnelKind::Ayiya,
            "6in6" => TunnelKind::SixIn6,
            "4in6" => TunnelKind::FourIn6,
            _ => return None,
        })
    }
}

/// `TeredoInfo`: what a Teredo encapsulation reveals (RFC 4380).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teredo {
    pub bubble: bool,
    pub auth: bool,
    pub origin_ip: Option<[u8; 4]>,
    pub origin_port: Option<u16>,
    pub server: Option<[u8; 4]>,
    pub client_ip: Option<[u8; 4]>,
    pub client_port: Option<u16>,
    pub cone: Option<bool>,
}

/// `TunnelLayer`: one encapsulation the packet was found inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    pub outer_sport: Option<u16>,
    pub outer_dport: Option<u16>,
    pub teredo: Option<Teredo>,
}

/// One decoded IPv6 packet (native or tunnelled), borrowed for one `on_packet` call.
#[derive(Clone, Copy, Debug)]
pub struct PacketView<'a> {
    pub ts_ns: i64,
    /// 1-based record number within its capture.
    pub frame: u64,
    pub iface: u32,
    pub linktype: u32,
    pub wire_len: u32,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    /// Outermost tag first.
    pub vlans: &'a [u16],
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u32,
    /// Protocol after the extension-header chain.
    pub upper: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub tcp_flags: Option<u8>,
    /// ICMPv6 errors: the source of the packet the error quotes.
    pub quoted_src: Option<[u8; 16]>,
    /// Outermost first; empty when seen on the local link.
    pub tunnels: &'a [Tunnel],
}

/// A `PacketView` owned: the first packet of a window. VLANs and tunnels allocate only
/// when present, so an untunnelled, untagged first packet is a plain copy.
#[derive(Clone, Debug)]
pub struct FirstPacket {
    pub ts_ns: i64,
    pub frame: u64,
    pub iface: u32,
    pub linktype: u32,
    pub wire_len: u32,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    pub vlans: Vec<u16>,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u32,
    pub upper: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub tcp_flags: Option<u8>,
    pub quoted_src: Option<[u8; 16]>,
    pub tunnels: Vec<Tunnel>,
}

impl From<&PacketView<'_>> for FirstPacket {
    fn from(p: &PacketView<'_>) -> Self {
        FirstPacket {
            ts_ns: p.ts_ns,
            frame: p.frame,
            iface: p.iface,
            linktype: p.linktype,
            wire_len: p.wire_len,
            src_mac: p.src_mac,
            dst_mac: p.dst_mac,
            vlans: p.vlans.to_vec(),
            src: p.src,
            dst: p.dst,
            hop_limit: p.hop_limit,
            traffic_class: p.traffic_class,
            flow_label: p.flow_label,
            payload_len: p.payload_len,
            upper: p.upper,
            sport: p.sport,
            dport: p.dport,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            tcp_flags: p.tcp_flags,
            quoted_src: p.quoted_src,
            tunnels: p.tunnels.to_vec(),
        }
    }
}

impl<'a> PacketView<'a> {
    /// The view of a decoded packet; `tunnels` is scratch space for its layers.
    pub fn from_packet(
        p: &'a crate::decode::events::Ipv6Packet,
        tunnels: &'a mut Vec<Tunnel>,
    ) -> PacketView<'a> {
        use crate::decode::events as ev;
        fn addr(a: &ev::IpAddr) -> IpAddr {
            match a {
                ev::IpAddr::V4(b) => IpAddr::from(*b),
                ev::IpAddr::V6(b) => IpAddr::from(*b),
            }
        }
        tunnels.clear();
        for t in p.ip.tunnels.as_slice() {
            tunnels.push(Tunnel {
                kind: TunnelKind::from_name(t.kind.name()).unwrap_or(TunnelKind::SixIn4),
                outer_src: addr(&t.outer_src),
                outer_dst: addr(&t.outer_dst),
                outer_sport: t.outer_sport,
                outer_dport: t.outer_dport,
                teredo: t.teredo.map(|d| Teredo {
                    bubble: d.bubble,
                    auth: d.auth,
                    origin_ip: d.origin_ip,
                    origin_port: d.origin_port,
                    server: d.server,
                    client_ip: d.client_ip,
                    client_port: d.client_port,
                    cone: d.cone,
                }),
            });
        }
        let m = &p.meta;
        PacketView {
            ts_ns: m.ts_ns,
            frame: m.frame,
            iface: m.iface,
            linktype: m.linktype,
            wire_len: m.wire_len,
            src_mac: m.src_mac,
            dst_mac: m.dst_mac,
            vlans: m.vlans.as_slice(),
            src: p.ip.src,
            dst: p.ip.dst,
            hop_limit: p.ip.hop_limit,
            traffic_class: p.ip.traffic_class,
            flow_label: p.ip.flow_label,
            payload_len: u32::from(p.ip.payload_len),
            upper: p.ip.upper,
            sport: p.sport,
            dport: p.dport,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            tcp_flags: p.tcp_flags,
            quoted_src: p.quoted_src,
            tunnels,
        }
    }
}

impl PacketView<'_> {
    /// A UDP packet with everything else empty: for tests and benchmarks.
    pub fn udp(ts_ns: i64, src: [u8; 16], dst: [u8; 16]) -> PacketView<'static> {
        PacketView {
            ts_ns,
            frame: 0,
            iface: 0,
            linktype: 1,
            wire_len: 62,
            src_mac: None,
            dst_mac: None,
            vlans: &[],
            src,
            dst,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            payload_len: 8,
            upper: 17,
            sport: Some(40000),
            dport: Some(161),
            icmp_type: None,
            icmp_code: None,
            tcp_flags: None,
            quoted_src: None,
            tunnels: &[],
        }
    }
}
