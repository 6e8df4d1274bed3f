//! Rules about an IPv6 header chain that are not about its bytes' lengths: which
//! headers may repeat (RFC 8200 4.1), Routing Header type 0 (RFC 5095), next-header
//! numbers nobody assigned (IANA "Assigned Internet Protocol Numbers"), and who may
//! send from the unspecified address (RFC 4862 5.4, RFC 3810 5.2.13, RFC 4861 4.1).
//!
//! Owns the verdicts only; `ip` walks the chain and reports what these say as
//! `Malformed` events. Option (TLV) contents are not looked at here.

use super::{has, NH_ICMPV6};

pub(super) const NH_ROUTING: u8 = 43;
const NH_DSTOPTS: u8 = 60;
const NH_FRAGMENT: u8 = 44;
const NH_HBH: u8 = 0;

/// RFC 8200 4.1: each extension header at most once, Destination Options at most twice
/// (once before a Routing header, once before the upper layer). `chain` holds the
/// headers before `nh`. Hop-by-Hop is left to `hbh_not_first`, and the experimental
/// numbers 253 and 254 (RFC 3692) may repeat.
pub(super) fn duplicate(chain: &[u8], nh: u8) -> Option<&'static str> {
    if nh == NH_HBH || nh >= 253 {
        return None;
    }
    let allowed = if nh == NH_DSTOPTS { 2 } else { 1 };
    if chain.iter().filter(|&&h| h == nh).count() < allowed {
        return None;
    }
    Some(if nh == NH_FRAGMENT {
        "duplicate_fragment"
    } else {
        "duplicate_header"
    })
}

/// A Routing header at `p` (its 8 bytes checked by the caller) of type 0, deprecated by
/// RFC 5095 (source-routed amplification and firewall bypass).
#[inline]
pub(super) fn routing_type0(data: &[u8], p: usize) -> bool {
    data[p + 2] == 0
}

/// A next-header number IANA has not assigned (146-252) or reserved (255). The
/// experimental 253 and 254 (RFC 3692) are walked as extension headers.
#[inline]
pub(super) fn unassigned(nh: u8) -> bool {
    matches!(nh, 146..=252 | 255)
}

/// May a packet whose upper layer is `nh` at `data[p..end]` come from `::`?
/// DAD Neighbor Solicitations to a multicast group (RFC 4862 5.4), MLD reports and
/// Dones before the host has a link-local address (RFC 3590, RFC 3810 5.2.13), and a
/// Router Solicitation from a host without an address (RFC 4861 4.1). Nothing else.
pub(super) fn unspecified_allowed(
    data: &[u8],
    p: usize,
    end: usize,
    nh: u8,
    dst: &[u8; 16],
) -> bool {
    if nh != NH_ICMPV6 || !has(p, end, 1) {
        return false;
    }
    match data[p] {
        135 => dst[0] == 0xFF,
        131 | 132 | 133 | 143 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_per_rfc_8200() {
        assert_eq!(duplicate(&[], 44), None);
        assert_eq!(duplicate(&[44], 44), Some("duplicate_fragment"));
        assert_eq!(duplicate(&[60, 43], 60), None);
        assert_eq!(duplicate(&[60, 43, 60], 60), Some("duplicate_header"));
        assert_eq!(duplicate(&[43], 43), Some("duplicate_header"));
        assert_eq!(duplicate(&[0], 0), None);
        assert_eq!(duplicate(&[253], 253), None);
    }

    #[test]
    fn unassigned_numbers_and_unspecified_senders() {
        assert!(unassigned(146) && unassigned(252) && unassigned(255));
        assert!(!unassigned(145) && !unassigned(253) && !unassigned(58) && !unassigned(89));
        let snm = [0xFF, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0, 0, 1];
        let uni = [0x20, 1, 0xD, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(unspecified_allowed(&[135, 0, 0, 0], 0, 4, 58, &snm));
        assert!(!unspecified_allowed(&[135, 0, 0, 0], 0, 4, 58, &uni));
        assert!(unspecified_allowed(&[143, 0, 0, 0], 0, 4, 58, &snm));
        assert!(!unspecified_allowed(&[134, 0, 0, 0], 0, 4, 58, &snm));
        assert!(!unspecified_allowed(&[128, 0, 0, 0], 0, 4, 58, &snm));
        assert!(!unspecified_allowed(&[], 0, 0, 58, &snm));
        assert!(!unspecified_allowed(&[0; 8], 0, 8, 17, &snm));
    }
}
