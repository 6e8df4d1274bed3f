//! Which decoded packets can be address probes: the filters the scan reducers share
//! (`ipv6.sweep`'s `sweep`, `ipv6.slow_scan`'s `slow_scan` and `ipv6.tga_scan`'s
//! `tga_scan`).
//!
//! Owns the probe kinds (issue 4's list) and the cheap per-packet tests both reducers run
//! before any hashing: multicast, link-local and Neighbor Discovery traffic is not
//! addressed probing, and a packet from the unspecified address or an ICMPv6 error quoting
//! the destination's own packet is a reply. Byte comparisons only: every packet passes
//! here. Knows nothing of windows or counters.

use crate::decode::events::Ipv6Packet;

/// Index of the last probe kind (`other`) in `PROBE_NAMES`.
pub const OTHER: usize = 6;
/// Probe kinds, indexing `probes` arrays; `other` last.
pub const PROBE_NAMES: [&str; 7] = [
    "icmpv6_echo",
    "icmpv6_error",
    "icmpv6_other",
    "tcp_syn",
    "tcp_other",
    "udp",
    "other",
];
pub const ECHO: usize = 0;
pub const TCP_SYN: usize = 3;
pub const TCP_OTHER: usize = 4;
pub const UDP: usize = 5;

/// What a packet is to a scan reducer, from its ICMPv6 type or TCP flags alone: the
/// first test every packet meets, so it reads two fields and no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens something: an ICMPv6 echo request (`ECHO`), a TCP SYN (`TCP_SYN`), or a TCP
    /// segment with neither ACK nor RST (FIN, NULL, Xmas scans: `TCP_OTHER`).
    Probe(usize),
    /// What a scanned host sends back: an echo reply, an ICMPv6 error, a SYN-ACK or a RST.
    Reply,
    /// A UDP datagram: a probe or an answer, the ports alone do not say.
    Either,
    /// Neither: established TCP, other ICMPv6, other protocols.
    Other,
}

/// The role of a packet (see `Role`).
#[inline]
pub fn role(p: &Ipv6Packet) -> Role {
    if let Some(t) = p.icmp_type {
        return match t {
            128 => Role::Probe(ECHO),
            1..=4 | 129 => Role::Reply,
            _ => Role::Other,
        };
    }
    if let Some(f) = p.tcp_flags {
        return if f & 0x04 != 0 {
            Role::Reply // RST
        } else if f & 0x10 == 0 {
            Role::Probe(if f & 0x02 != 0 { TCP_SYN } else { TCP_OTHER })
        } else if f & 0x02 != 0 {
            Role::Reply // SYN-ACK
        } else {
            Role::Other // an established flow
        };
    }
    if p.ip.upper == 17 {
        return Role::Either;
    }
    Role::Other
}

/// The probe kind of a packet (an index into `PROBE_NAMES`).
#[inline]
pub fn probe_kind(p: &Ipv6Packet) -> usize {
    if let Some(t) = p.icmp_type {
        return match t {
            128 => ECHO,
            0..=127 => 1,
            _ => 2,
        };
    }
    if let Some(flags) = p.tcp_flags {
        return if flags & 0x12 == 0x02 {
            TCP_SYN
        } else {
            TCP_OTHER
        };
    }
    if p.ip.upper == 17 {
        return UDP;
    }
    OTHER
}

/// An address as its /64 prefix and its interface identifier, big-endian: the keys and
/// hash inputs of the scan reducers.
#[inline]
pub fn halves(a: &[u8; 16]) -> (u64, u64) {
    let (hi, lo) = a.split_at(8);
    (
        u64::from_be_bytes(hi.try_into().expect("8 bytes")),
        u64::from_be_bytes(lo.try_into().expect("8 bytes")),
    )
}

#[inline]
pub fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xFE && a[1] & 0xC0 == 0x80
}

/// False for multicast and link-local traffic and for Neighbor Discovery: not addressed
/// probing, and not a reply to it either.
#[inline]
pub fn addressed(p: &Ipv6Packet) -> bool {
    let (src, dst) = (&p.ip.src, &p.ip.dst);
    if dst[0] == 0xFF || is_link_local(dst) || is_link_local(src) || src[0] == 0xFF {
        return false;
    }
    !matches!(p.icmp_type, Some(133..=137))
}

/// True for a packet that cannot be a probe of its destination: from the unspecified
/// address, or an ICMPv6 error about the destination's own packet (a reply).
#[inline]
pub fn answers_destination(p: &Ipv6Packet) -> bool {
    p.ip.src == [0u8; 16] || p.quoted_src.as_ref() == Some(&p.ip.dst)
}

/// The share of targets that never answered: 1 minus responders over targets, 0 for no
/// targets. Responders above targets (estimates) count as all answered. The same operations
/// as the Python `max(0.0, 1.0 - min(responders, targets) / targets)` the goldens were
/// first written with, so a ratio on a threshold's edge is judged the same.
#[inline]
pub fn no_reply_ratio(targets: f64, responders: f64) -> f64 {
    if targets <= 0.0 {
        return 0.0;
    }
    let answered = if responders <= targets {
        responders
    } else {
        targets
    };
    let v = 1.0 - answered / targets;
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// A UDP datagram's role from its two ports, for the reducers that count UDP as probes.
/// No port list tells a service from a client, but operating systems take a client's
/// port from an ephemeral range above 1024 (Linux 32768-60999, IANA and Windows
/// 49152-65535) and a service answers to the port it was asked from, so:
/// - equal ports: neither. Peers of a symmetric protocol (NTP 123, IKE 500 and 4500,
///   WireGuard 51820) send the same datagrams both ways; an NTP server answering its
///   clients is no probe of them, and no reply either.
/// - a privileged destination from an unprivileged source: a probe (a client or a
///   scanner asking a service: 53, 123, 161, 443, 500).
/// - a privileged source to an unprivileged destination: a reply (the service answering
///   the client's ephemeral port).
/// - two different privileged ports: a probe. Only a client bound to a privileged port
///   sends from one (source port 53 or 1 to slip past naive filters); a service's
///   answer goes to the asker's port, privileged only for such a client.
/// - two different unprivileged ports: the lower is the service (registered services,
///   3478, 5060, traceroute's 33434, sit below the ephemeral ranges), so toward it is a
///   probe and from it a reply. A scanner picking a source port between 1024 and its
///   target's port is classed a reply: it can hide probes of high ports this way, never
///   of the privileged ones.
#[inline]
pub fn udp_role(sport: u16, dport: u16) -> Role {
    const PRIVILEGED: u16 = 1024;
    if sport == dport {
        Role::Other
    } else if dport < PRIVILEGED {
        Role::Probe(UDP) // from an ephemeral port, or from another privileged one
    } else if sport < PRIVILEGED || sport < dport {
        Role::Reply
    } else {
        Role::Probe(UDP)
    }
}
