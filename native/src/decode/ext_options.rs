//! The TLV options of Hop-by-Hop and Destination Options headers (RFC 8200 4.2).
//!
//! Owns walking the options of one such header and summing up what they carry beyond
//! what the RFCs need: PadN content that is not zero, padding runs longer than any
//! alignment needs (more than 7 bytes, RFC 4942 2.1.9.5), headers of nothing but
//! padding, options of types the IANA registry does not list, and known options longer
//! than their RFC makes them. Those bytes are where a covert channel hides data; the
//! `covert` family counts them per address pair. Also owns the decoder's limit on
//! options per header (`max_ext_options`): past it the walk stops, and the caller
//! reports a `Malformed(layer="ext", reason="too_many_options")` (header-chain DoS).
//!
//! Speed: called only for packets that have such a header (never on the fast path);
//! the walk is a loop over bytes into a summary on the stack, and the caller builds an
//! event only when the summary holds something. Robustness: every length is checked
//! against the header's end, and each step consumes one or more bytes.

use super::events::{OptionsSummary, OPTIONS_SAMPLE};

/// Pad1 and PadN (RFC 8200 4.2).
const PAD1: u8 = 0x00;
const PADN: u8 = 0x01;
/// The most padding any alignment needs (alignments are at most 8n+7).
pub const MAX_PAD_RUN: usize = 7;

/// Option types the IANA registry lists as in use ("Destination Options and Hop-by-Hop
/// Options", https://www.iana.org/assignments/ipv6-parameters), with the data lengths
/// their RFCs allow: `(type, min, max)`. Deprecated types and the RFC 3692
/// experimental ones (0x1E, 0x3E, ...) are left out on purpose: no production stack
/// sends them, so their data counts as unknown.
const KNOWN: &[(u8, u8, u8)] = &[
    (0x04, 1, 1),   // Tunnel Encapsulation Limit, RFC 2473
    (0x05, 2, 2),   // Router Alert, RFC 2711
    (0x07, 8, 255), // CALIPSO, RFC 5570
    (0x08, 1, 255), // SMF_DPD, RFC 6621
    (0x0F, 10, 10), // Performance and Diagnostic Metrics, RFC 8250
    (0x11, 2, 255), // IOAM, RFC 9486
    (0x12, 4, 4),   // Alternate Marking, RFC 9343
    (0x23, 4, 255), // RPL Option, RFC 9008
    (0x26, 6, 6),   // Quick-Start, RFC 4782
    (0x30, 4, 4),   // Minimum Path MTU, RFC 9268
    (0x31, 2, 255), // IOAM, RFC 9486
    (0x63, 4, 255), // RPL Option, RFC 6553
    (0x6D, 2, 255), // MPL Option, RFC 7731
    (0x8B, 1, 255), // ILNP Nonce, RFC 6744
    (0x8C, 1, 255), // Line-Identification, RFC 6788
    (0xC2, 4, 4),   // Jumbo Payload, RFC 2675
    (0xC9, 16, 16), // Home Address, RFC 6275
    (0xEE, 1, 255), // IP_DNS, RFC 9360
];

/// The longest data a known option type may have, or None for an unknown type.
#[inline]
pub fn known_max(otype: u8) -> Option<u8> {
    KNOWN
        .iter()
        .find(|(t, _, _)| *t == otype)
        .map(|(_, _, max)| *max)
}

/// How one header's walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    Done,
    /// More than the limit of options: the rest was not walked.
    TooMany,
}

/// Add `n` bytes to a counter, saturating.
#[inline]
fn add(counter: &mut u16, n: usize) {
    *counter = counter.saturating_add(n.min(u16::MAX as usize) as u16);
}

/// Keep the first smuggled bytes as the sample.
#[inline]
fn sample(s: &mut OptionsSummary, bytes: &[u8]) {
    let have = s.sample_len as usize;
    let take = (OPTIONS_SAMPLE - have).min(bytes.len());
    s.sample[have..have + take].copy_from_slice(&bytes[..take]);
    s.sample_len += take as u8;
}

/// Walk the options of the header `nh` (0 or 60) in `data[start..end]` (after its
/// next-header and length bytes) into `s`, at most `max_options` of them.
pub fn walk(
    data: &[u8],
    start: usize,
    end: usize,
    nh: u8,
    max_options: usize,
    s: &mut OptionsSummary,
) -> Walk {
    let before = s.smuggled() > 0 || s.unknown_options > 0 || s.padding_only > 0;
    let mut q = start;
    let mut run = 0usize; // padding bytes in a row
    let mut count = 0usize;
    let mut only_padding = true;
    let mut walk = Walk::Done;
    let end = end.min(data.len());
    while q < end {
        if count >= max_options {
            walk = Walk::TooMany;
            break;
        }
        count += 1;
        let t = data[q];
        if t == PAD1 {
            run += 1;
            q += 1;
            continue;
        }
        if q + 2 > end {
            break; // an option cut by the header's end: the chain walk judges lengths
        }
        let len = data[q + 1] as usize;
        let body_end = (q + 2 + len).min(end);
        let body = &data[q + 2..body_end];
        q = body_end;
        if t == PADN {
            run += 2 + len;
            if body.iter().any(|&b| b != 0) {
                add(&mut s.padn_data, body.len());
                sample(s, body);
            }
            continue;
        }
        only_padding = false;
        if run > MAX_PAD_RUN {
            add(&mut s.excess_padding, run - MAX_PAD_RUN);
        }
        run = 0;
        match known_max(t) {
            Some(max) => {
                if body.len() > max as usize {
                    add(&mut s.oversize_data, body.len() - max as usize);
                    sample(s, &body[max as usize..]);
                }
            }
            None => {
                s.unknown_options = s.unknown_options.saturating_add(1);
                add(&mut s.unknown_data, body.len());
                sample(s, body);
            }
        }
    }
    if run > MAX_PAD_RUN {
        add(&mut s.excess_padding, run - MAX_PAD_RUN);
    }
    if only_padding && count > 0 && walk == Walk::Done {
        s.padding_only = s.padding_only.saturating_add(1);
    }
    s.options = s
        .options
        .saturating_add(count.min(u16::MAX as usize) as u16);
    if !before && s.suspicious() {
        s.header = nh;
    }
    walk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(opts: &[u8], max: usize) -> (OptionsSummary, Walk) {
        let mut s = OptionsSummary::default();
        let w = walk(opts, 0, opts.len(), 60, max, &mut s);
        (s, w)
    }

    #[test]
    fn normal_options_are_clean() {
        // Router Alert (MLD) then PadN 0: the usual Hop-by-Hop header.
        let (s, w) = run(&[5, 2, 0, 0, 1, 0], 16);
        assert_eq!(w, Walk::Done);
        assert!(!s.suspicious());
        assert_eq!(s.options, 2);
        // Jumbo Payload, Home Address with their exact lengths; Pad1 alignment.
        let mut hao = vec![0, 0xC9, 16];
        hao.extend([0x20; 16]);
        hao.extend([1, 1, 0, 0xC2, 4, 0, 1, 0, 0]);
        let (s, _) = run(&hao, 16);
        assert!(!s.suspicious(), "{s:?}");
    }

    #[test]
    fn padding_carrying_data_or_too_long() {
        let (s, _) = run(&[1, 4, b'a', b'b', 0, 0], 16);
        assert_eq!((s.padn_data, s.sample()), (4, &b"ab\0\0"[..]));
        assert_eq!(s.padding_only, 1);
        // 14 bytes of zero padding: 7 more than any alignment needs.
        let (s, _) = run(&[1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 16);
        assert_eq!((s.excess_padding, s.padn_data, s.smuggled()), (7, 0, 7));
        // Pad1s count in the run as well.
        let mut opts = vec![0; 9];
        opts.extend([5, 2, 0, 0]);
        let (s, _) = run(&opts, 16);
        assert_eq!((s.excess_padding, s.padding_only), (2, 0));
    }

    #[test]
    fn unknown_and_oversize_options() {
        // covert_send6: id (0x10), seq (IOAM 0x11, length allowed), data in 0x12
        // (Alternate Marking, 4 bytes by RFC 9343), end marker 0x1f.
        let mut opts = vec![0x10, 4, 1, 2, 3, 4, 0x11, 4, 0, 0, 0, 1, 0x12, 10];
        opts.extend(b"secretdata");
        opts.extend([0x1f, 0]);
        let (s, _) = run(&opts, 16);
        assert_eq!(
            (s.unknown_options, s.unknown_data, s.oversize_data),
            (2, 4, 6)
        );
        assert_eq!(s.sample(), &b"\x01\x02\x03\x04etdata"[..]);
        assert_eq!(s.header, 60);
    }

    #[test]
    fn the_option_limit_stops_the_walk() {
        let opts = [0u8; 40];
        let (s, w) = run(&opts, 16);
        assert_eq!((w, s.options), (Walk::TooMany, 16));
        let (_, w) = run(&opts[..16], 16);
        assert_eq!(w, Walk::Done);
    }

    #[test]
    fn cut_options_never_panic() {
        for n in 0..12 {
            let opts: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            for cut in 0..=n {
                let mut s = OptionsSummary::default();
                walk(&opts, 0, cut, 0, 4, &mut s);
                walk(&opts, cut, n + 5, 0, 4, &mut s);
            }
        }
        let big = [0xAB; 300];
        let mut s = OptionsSummary::default();
        for _ in 0..1000 {
            walk(&big, 0, big.len(), 0, 64, &mut s);
        }
        assert_eq!(s.sample_len as usize, OPTIONS_SAMPLE);
    }

    #[test]
    fn the_decoder_builds_one_event_and_reports_too_many_options() {
        use super::super::events::Event;
        use super::super::testutil::*;
        let echo = icmp6(&G1, &G2, 128, &[0; 4]);
        // A normal Hop-by-Hop header (Router Alert, PadN 0): no event.
        let hbh = [58, 0, 5, 2, 0, 0, 1, 0];
        let ev = decode(&eth(
            &ip6(&G1, &G2, 0, &[&hbh[..], &echo].concat()),
            0x86DD,
            &[],
        ));
        assert!(!ev.iter().any(|e| matches!(e, Event::ExtOptions(_))));
        // 22 Pad1 in a Destination Options header: past the limit of 16, and padding.
        let mut dst = vec![58, 2];
        dst.extend([0; 22]);
        let frame = eth(&ip6(&G1, &G2, 60, &[&dst[..], &echo].concat()), 0x86DD, &[]);
        let ev = decode(&frame);
        assert_eq!(malformed(&ev), [("ext", "too_many_options")]);
        assert_eq!(flows(&ev), [icmp_flow(128, 0)]);
        let x: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::ExtOptions(x) => Some(x),
                _ => None,
            })
            .collect();
        assert_eq!(x.len(), 1);
        assert_eq!((x[0].summary.excess_padding, x[0].summary.options), (9, 16));
        assert_eq!(x[0].upper.icmp_type, Some(128));
        assert_eq!(packets(&ev).len(), 1);
        // Nobody observing: no event, the limit still applies.
        let mut d = super::super::Decoder::new(super::super::DecoderLimits::default());
        let ev = run(&mut d, 1, &frame, frame.len(), S);
        assert_eq!(ev.len(), 1);
    }
}
