//! MLD bodies (RFC 2710 MLDv1, RFC 3810 MLDv2) and Multicast Router Discovery (RFC 4286).
//!
//! Owns turning the bytes of one MLD or MRD message into an `MldMessage`, and finding a
//! Router Alert option (RFC 2711) in the Hop-by-Hop header that carried it. Does not walk
//! IPv6 headers (`ip` hands it the message bounds) and judges nothing: what a short or
//! inconsistent message is, is said as a reason; the `mld` family judges the rest.
//!
//! Bounds: the record walk of a v2 report stops at the declared count or at the first
//! record that does not fit, whichever comes first (each record is 20 bytes or more, so
//! the loop is bounded by the bytes), and keeps at most `MAX_MLD_RECORDS` records.

use super::events::*;
use super::nd::icmpv6_checksum_ok;
use super::{arr16, be16, has};

/// MLD and MRD ICMPv6 types.
pub const MLD_QUERY: u8 = 130;
pub const MLD_V1_REPORT: u8 = 131;
pub const MLD_DONE: u8 = 132;
pub const MLD_V2_REPORT: u8 = 143;
pub const MRD_ADVERTISEMENT: u8 = 151;
pub const MRD_SOLICITATION: u8 = 152;
pub const MRD_TERMINATION: u8 = 153;

/// Is ICMPv6 type `t` one this module decodes?
#[inline]
pub fn is_mld(t: u8) -> bool {
    matches!(t, 130 | 131 | 132 | 143 | 151..=153)
}

/// Why a message could not be decoded as its type and fields claim (`Malformed.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MldError {
    /// Shorter than its type's fixed part.
    Short,
    /// An MLDv2 query whose Number of Sources does not fit in its bytes.
    SourcesTruncated,
}

impl MldError {
    pub fn reason(self) -> &'static str {
        match self {
            MldError::Short => "short_message",
            MldError::SourcesTruncated => "sources_truncated",
        }
    }
}

/// Fixed part of each message, ICMPv6 header included.
fn fixed_len(itype: u8) -> usize {
    match itype {
        MLD_QUERY | MLD_V1_REPORT | MLD_DONE => 24,
        MLD_V2_REPORT | MRD_ADVERTISEMENT => 8,
        _ => 4, // MRD solicitation and termination: the ICMPv6 header alone
    }
}

/// Does the Hop-by-Hop header at `data[hbh..end]` carry a Router Alert option (type 5)?
/// Walks the TLVs within the header's own length; any inconsistency ends the walk.
pub fn router_alert(data: &[u8], hbh: usize, end: usize) -> bool {
    if !has(hbh, end, 8) {
        return false;
    }
    let stop = (hbh + (data[hbh + 1] as usize + 1) * 8).min(end);
    let mut p = hbh + 2;
    while p < stop {
        let t = data[p];
        if t == 0 {
            p += 1; // Pad1
            continue;
        }
        if p + 1 >= stop {
            return false;
        }
        if t == 5 {
            return true;
        }
        p += 2 + data[p + 1] as usize;
    }
    false
}

/// Build the MLD event for the message at `data[start..end]`; an error when it is shorter
/// than its fixed part (no event then) or inconsistent (the event, and the error).
pub fn parse_mld(
    meta: Meta,
    ip: &Ipv6Header,
    router_alert: bool,
    data: &[u8],
    start: usize,
    end: usize,
) -> (Option<MldMessage>, Option<MldError>) {
    if !has(start, end, 4) {
        return (None, Some(MldError::Short));
    }
    let itype = data[start];
    let len = end - start;
    if len < fixed_len(itype) {
        return (None, Some(MldError::Short));
    }
    let m = &data[start..end];
    let mut msg = MldMessage {
        meta,
        ip: *ip,
        router_alert,
        icmp_type: itype,
        code: m[1],
        checksum_ok: icmpv6_checksum_ok(&ip.src, &ip.dst, m),
        version: 1,
        max_delay: 0,
        group: [0; 16],
        s_flag: false,
        qrv: 0,
        qqic: 0,
        num_sources: 0,
        records_declared: 0,
        records_fit: 0,
        sources_total: 0,
        snapped: false,
        records: Vec::new(),
    };
    let mut error = None;
    match itype {
        MLD_QUERY | MLD_V1_REPORT | MLD_DONE => {
            msg.max_delay = be16(m, 4);
            msg.group = arr16(m, 8);
            if itype == MLD_QUERY && len >= 28 {
                msg.version = 2;
                msg.s_flag = m[24] & 0x08 != 0;
                msg.qrv = m[24] & 0x07;
                msg.qqic = m[25];
                msg.num_sources = be16(m, 26);
                if 28 + 16 * msg.num_sources as usize > len {
                    error = Some(MldError::SourcesTruncated);
                }
            }
        }
        MLD_V2_REPORT => {
            msg.version = 2;
            msg.records_declared = be16(m, 6);
            let mut p = 8;
            let mut fit = 0u16;
            while fit < msg.records_declared && has(p, len, 20) {
                let aux = m[p + 1];
                let sources = be16(m, p + 2);
                let size = 20 + 16 * sources as usize + 4 * aux as usize;
                if !has(p, len, size) {
                    break;
                }
                if msg.records.len() < MAX_MLD_RECORDS {
                    msg.records.push(MldRecord {
                        rtype: m[p],
                        aux_len: aux,
                        group: arr16(m, p + 4),
                        sources,
                    });
                }
                msg.sources_total += u32::from(sources);
                fit += 1;
                p += size;
            }
            msg.records_fit = fit;
        }
        MRD_ADVERTISEMENT => {
            msg.max_delay = u16::from(m[1]); // Advertisement Interval, in seconds
        }
        _ => {}
    }
    (Some(msg), error)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Decoder, DecoderLimits};
    use super::*;

    const ALL_ROUTERS_MLD2: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];

    fn mld_decoder() -> Decoder {
        let mut d = Decoder::new(DecoderLimits::default());
        d.want_mld = true;
        d
    }

    fn mlds(ev: &[Event]) -> Vec<&MldMessage> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Mld(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// An MLD packet behind a Hop-by-Hop header with a Router Alert, hop limit 1 (the
    /// checksum is right for code 0 only).
    fn with_ra(dst: &[u8; 16], body: &[u8]) -> Vec<u8> {
        let hbh = [58u8, 0, 5, 2, 0, 0, 1, 0];
        let mut msg = icmp6(&LL1, dst, body[0], &body[4..]);
        msg[1] = body[1];
        let mut ip = ip6(&LL1, dst, 0, &[&hbh[..], &msg].concat());
        ip[7] = 1;
        eth(&ip, 0x86DD, &[])
    }

    fn report_v2(records: &[(u8, [u8; 16], u16)], declared: u16) -> Vec<u8> {
        let mut b = vec![143, 0, 0, 0, 0, 0];
        b.extend_from_slice(&declared.to_be_bytes());
        for (t, g, n) in records {
            b.extend_from_slice(&[*t, 0]);
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(g);
            for _ in 0..*n {
                b.extend_from_slice(&G1);
            }
        }
        b
    }

    #[test]
    fn only_built_when_observed() {
        let mut body = vec![130, 0, 0, 0, 0x27, 0x10, 0, 0];
        body.extend_from_slice(&[0; 16]);
        let frame = with_ra(&ALLNODES, &body);
        let mut d = Decoder::new(DecoderLimits::default());
        assert!(mlds(&run(&mut d, 1, &frame, frame.len(), S)).is_empty());
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        let m = mlds(&ev);
        assert_eq!(m.len(), 1);
        assert!(m[0].router_alert && m[0].checksum_ok);
        assert_eq!(
            (m[0].version, m[0].max_delay, m[0].ip.hop_limit),
            (1, 10000, 1)
        );
    }

    #[test]
    fn v2_query_fields() {
        let mut body = vec![130, 0, 0, 0, 0x27, 0x10, 0, 0];
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[0x0A, 125, 0, 1]);
        body.extend_from_slice(&G2);
        let frame = with_ra(&ALLNODES, &body);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        let m = mlds(&ev)[0];
        assert_eq!(
            (m.version, m.s_flag, m.qrv, m.qqic, m.num_sources),
            (2, true, 2, 125, 1)
        );
        assert!(malformed(&ev).is_empty());
        // Sources claimed beyond the bytes: the event and a malformed reason.
        let mut bad = body.clone();
        bad[27] = 9;
        let frame = with_ra(&ALLNODES, &bad);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        assert_eq!(mlds(&ev).len(), 1);
        assert_eq!(malformed(&ev), [("mld", "sources_truncated")]);
    }

    #[test]
    fn v2_report_records_and_declared_count() {
        let mut g = ALL_ROUTERS_MLD2;
        g[15] = 0x33;
        let body = report_v2(&[(4, g, 0), (1, g, 2)], 2);
        let frame = with_ra(&ALL_ROUTERS_MLD2, &body);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        let m = mlds(&ev)[0];
        assert_eq!(
            (m.records_declared, m.records_fit, m.sources_total),
            (2, 2, 2)
        );
        assert_eq!(m.records[1].rtype, 1);
        assert_eq!(m.records[1].group, g);
        // Declares 500 records, holds 2: the event says so (the family judges it).
        let body = report_v2(&[(4, g, 0), (4, g, 0)], 500);
        let frame = with_ra(&ALL_ROUTERS_MLD2, &body);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        let m = mlds(&ev)[0];
        assert_eq!((m.records_declared, m.records_fit), (500, 2));
        // A record claiming sources past the end is not counted as fitting.
        let mut body = report_v2(&[(1, g, 3)], 1);
        body.truncate(body.len() - 16);
        let frame = with_ra(&ALL_ROUTERS_MLD2, &body);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        assert_eq!(mlds(&ev)[0].records_fit, 0);
    }

    #[test]
    fn records_kept_are_bounded() {
        let recs: Vec<(u8, [u8; 16], u16)> = (0..100).map(|_| (4, G2, 0)).collect();
        let body = report_v2(&recs, 100);
        let frame = with_ra(&ALL_ROUTERS_MLD2, &body);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        let m = mlds(&ev)[0];
        assert_eq!((m.records_fit, m.records.len()), (100, MAX_MLD_RECORDS));
    }

    #[test]
    fn short_messages_are_malformed_not_events() {
        let frame = with_ra(&ALLNODES, &[131, 0, 0, 0, 0, 0, 0, 0]);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        assert!(mlds(&ev).is_empty());
        assert_eq!(malformed(&ev), [("mld", "short_message")]);
        let m = &ev
            .iter()
            .find_map(|e| match e {
                Event::Malformed(m) => Some(m),
                _ => None,
            })
            .unwrap();
        assert_eq!((m.upper.icmp_type, m.upper.proto), (Some(131), Some(58)));
    }

    #[test]
    fn a_report_cut_by_the_snaplen_says_so() {
        let body = report_v2(&[(4, G2, 0), (4, G2, 0)], 2);
        let frame = with_ra(&ALL_ROUTERS_MLD2, &body);
        let cut = &frame[..frame.len() - 10];
        let ev = run(&mut mld_decoder(), 1, cut, frame.len(), S);
        let m = mlds(&ev)[0];
        assert!(m.snapped);
        assert_eq!((m.records_declared, m.records_fit), (2, 1));
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        assert!(!mlds(&ev)[0].snapped);
    }

    #[test]
    fn router_alert_walk_is_bounded() {
        assert!(router_alert(&[58, 0, 5, 2, 0, 0, 1, 0], 0, 8));
        assert!(!router_alert(&[58, 0, 1, 4, 0, 0, 0, 0], 0, 8));
        assert!(router_alert(&[58, 0, 0, 0, 5, 2, 0, 0], 0, 8));
        // A PadN claiming more than the header: stops.
        assert!(!router_alert(&[58, 0, 1, 200, 0, 0, 0, 0], 0, 8));
        assert!(!router_alert(&[58, 0, 0], 0, 3));
    }

    #[test]
    fn mrd_advertisement() {
        let mut ma = ALL_ROUTERS_MLD2;
        ma[15] = 0x6a;
        let frame = with_ra(&ma, &[151, 20, 0, 0, 0, 2, 0, 125]);
        let ev = run(&mut mld_decoder(), 1, &frame, frame.len(), S);
        let m = mlds(&ev)[0];
        assert_eq!((m.icmp_type, m.max_delay), (151, 20));
    }
}
