//! Frame builders for the decoder's unit tests (the Rust twins of `pcaps/generate.py`).

use super::events::*;
use super::nd::icmpv6_checksum_ok;
use super::{Decoder, DecoderLimits};
use crate::record::Rec;

pub const LL1: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const ALLNODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const G1: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
pub const G2: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20];
pub const MAC1: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const V4A: [u8; 4] = [192, 0, 2, 1];
pub const V4B: [u8; 4] = [198, 51, 100, 1];
pub const S: i64 = 1_000_000_000;

pub fn ip6(src: &[u8; 16], dst: &[u8; 16], nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 255]);
    v.extend_from_slice(src);
    v.extend_from_slice(dst);
    v.extend_from_slice(payload);
    v
}

/// An ICMPv6 message with a correct checksum.
pub fn icmp6(src: &[u8; 16], dst: &[u8; 16], itype: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![itype, 0, 0, 0];
    m.extend_from_slice(body);
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for w in b.chunks(2) {
            sum += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
        }
    };
    add(src);
    add(dst);
    add(&(m.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&m);
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    m[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    assert!(icmpv6_checksum_ok(src, dst, &m));
    m
}

pub fn eth(payload: &[u8], etype: u16, vlans: &[(u16, u16)]) -> Vec<u8> {
    let mut v = vec![0x33, 0x33, 0, 0, 0, 1];
    v.extend_from_slice(&MAC1);
    for (tpid, vid) in vlans {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&vid.to_be_bytes());
    }
    v.extend_from_slice(&etype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn ipv4(src: &[u8; 4], dst: &[u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    v.extend_from_slice(src);
    v.extend_from_slice(dst);
    v.extend_from_slice(payload);
    v
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// An ND option with a correct length.
pub fn opt(otype: u8, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    b.resize(b.len() + (8 - (b.len() + 2) % 8) % 8, 0);
    let mut v = vec![otype, ((b.len() + 2) / 8) as u8];
    v.extend_from_slice(&b);
    v
}

pub fn ra_body(options: &[u8]) -> Vec<u8> {
    let mut v = vec![64, 0x08, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(options);
    v
}

/// `payload` split into IPv6 fragments of `size` bytes (nh of the fragmentable part).
pub fn fragments(
    src: &[u8; 16],
    dst: &[u8; 16],
    nh: u8,
    payload: &[u8],
    size: usize,
    ident: u32,
) -> Vec<Vec<u8>> {
    (0..payload.len())
        .step_by(size)
        .map(|off| {
            let more = off + size < payload.len();
            let mut fh = vec![nh, 0];
            fh.extend_from_slice(&(off as u16 | more as u16).to_be_bytes());
            fh.extend_from_slice(&ident.to_be_bytes());
            fh.extend_from_slice(&payload[off..(off + size).min(payload.len())]);
            eth(&ip6(src, dst, 44, &fh), 0x86DD, &[])
        })
        .collect()
}

pub fn decoder() -> Decoder {
    let mut d = Decoder::new(DecoderLimits::default());
    d.want_packets = true;
    d.want_tunnels = true;
    d.want_ext_options = true;
    d
}

pub fn run(d: &mut Decoder, linktype: u32, frame: &[u8], wire: usize, ts: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let rec = Rec {
        ts_ns: ts,
        iface: 0,
        linktype,
        data: frame,
        wire_len: wire as u32,
    };
    d.decode(&rec, 1, &mut out);
    out
}

pub fn decode(frame: &[u8]) -> Vec<Event> {
    run(&mut decoder(), 1, frame, frame.len(), S)
}

pub fn malformed(events: &[Event]) -> Vec<(&'static str, &'static str)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Malformed(m) => Some((m.layer, m.reason)),
            _ => None,
        })
        .collect()
}

/// The flow each `Malformed` event names: (protocol, ports, ICMPv6 type and code).
pub fn flows(events: &[Event]) -> Vec<Upper> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Malformed(m) => Some(m.upper),
            _ => None,
        })
        .collect()
}

/// An ICMPv6 flow as `flows` gives it.
pub fn icmp_flow(itype: u8, code: u8) -> Upper {
    Upper {
        proto: Some(58),
        icmp_type: Some(itype),
        icmp_code: Some(code),
        ..Upper::default()
    }
}

pub fn anomalies(events: &[Event]) -> Vec<FragKind> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(f.kind),
            _ => None,
        })
        .collect()
}

pub fn packets(events: &[Event]) -> Vec<&Ipv6Packet> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Packet(p) => Some(p),
            _ => None,
        })
        .collect()
}

pub fn nd(events: &[Event]) -> Vec<&NdMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Nd(n) => Some(n),
            _ => None,
        })
        .collect()
}
