//! What counts as addressed probing in a decoded IPv6 packet: the filters and probe kinds
//! the scan reducers share (`ipv6.sweep`'s windows, `ipv6.slow_scan`'s long horizon).
//!
//! Owns the early per-packet filters (multicast and link-local traffic, Neighbor
//! Discovery, the unspecified source, ICMPv6 errors quoting the destination's own packet)
//! and the probe kinds of issue 4. Cheap on purpose: every packet goes through them
//! before any table is touched. Knows nothing of windows or thresholds.

use crate::decode::events::Ipv6Packet;

/// Probe kinds (issue 4's list), indexing `probes` arrays; `other` last.
pub const OTHER: usize = 6;
pub const PROBE_NAMES: [&str; 7] = [
    "icmpv6_echo",
    "icmpv6_error",
    "icmpv6_other",
    "tcp_syn",
    "tcp_other",
    "udp",
    "other",
];

#[inline]
pub fn probe_kind(p: &Ipv6Packet) -> usize {
    if let Some(t) = p.icmp_type {
        return match t {
            128 => 0,
            0..=127 => 1,
            _ => 2,
        };
    }
    if let Some(flags) = p.tcp_flags {
        return if flags & 0x12 == 0x02 { 3 } else { 4 };
    }
    if p.ip.upper == 17 {
        return 5;
    }
    OTHER
}

#[inline]
pub fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xFE && a[1] & 0xC0 == 0x80
}

/// False for traffic that is not addressed probing whoever sends it: multicast and
/// link-local addresses on either side, and Neighbor Discovery (ICMPv6 133..137).
#[inline]
pub fn addressed(pk: &Ipv6Packet) -> bool {
    let (src, dst) = (&pk.ip.src, &pk.ip.dst);
    !(dst[0] == 0xFF
        || is_link_local(dst)
        || is_link_local(src)
        || src[0] == 0xFF
        || matches!(pk.icmp_type, Some(133..=137)))
}

/// True for a packet that can only be a reply to its destination: from the unspecified
/// address, or an ICMPv6 error quoting a packet the destination itself sent.
#[inline]
pub fn only_a_reply(pk: &Ipv6Packet) -> bool {
    pk.ip.src == [0u8; 16] || pk.quoted_src.as_ref() == Some(&pk.ip.dst)
}
