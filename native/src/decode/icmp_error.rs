//! ICMPv6 error messages (RFC 4443 section 3: Destination Unreachable, Packet Too Big,
//! Time Exceeded, Parameter Problem) and the invoking packet they quote.
//!
//! Owns turning the bytes of one error message into an `IcmpError` event, and reading a
//! quoted IPv6 packet (`quoted`), which the Redirect's Redirected Header option (RFC
//! 4861 4.6.3) quotes the same way. Does not judge: the first-hop family decides what a
//! small MTU or an unseen quoted flow means. The quote is whatever fitted in the error
//! (RFC 4443 2.4 (c)), often cut: every field is read only when the bytes hold it, the
//! extension-chain walk is bounded by `MAX_QUOTED_HEADERS` and by the bytes each header
//! consumes, and a cut quote simply yields fewer fields, never a malformed event.

use super::events::*;
use super::ip::is_ext;
use super::{arr16, be16, be32, has, Decoder, NH_ICMPV6, NH_TCP, NH_UDP};

/// Most extension headers walked inside a quoted packet (the decoder's own default).
const MAX_QUOTED_HEADERS: usize = 16;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;

/// The IPv6 packet quoted at `data[p..end]`: `None` unless a whole IPv6 header (version
/// 6) is there; past the header, each field as far as the bytes go.
pub fn quoted(data: &[u8], p: usize, end: usize) -> Option<Quoted> {
    if !has(p, end, 40) || data[p] >> 4 != 6 {
        return None;
    }
    let mut q = Quoted {
        src: arr16(data, p + 8),
        dst: arr16(data, p + 24),
        flow_label: be32(data, p) & 0xFFFFF,
        next: data[p + 6],
        ..Quoted::default()
    };
    let mut at = p + 40;
    for _ in 0..MAX_QUOTED_HEADERS {
        if !is_ext(q.next) || !has(at, end, 8) {
            break;
        }
        let nh = q.next;
        if nh == NH_FRAGMENT && be16(data, at + 2) & 0xFFF8 != 0 {
            return Some(q); // a later fragment: its upper header is elsewhere
        }
        let size = match nh {
            NH_FRAGMENT => 8,
            NH_AH => (usize::from(data[at + 1]) + 2) * 4,
            _ => (usize::from(data[at + 1]) + 1) * 8,
        };
        q.next = data[at];
        at += size; // may pass `end`: `has` below then reads nothing
    }
    match q.next {
        NH_TCP | NH_UDP if has(at, end, 4) => {
            q.sport = Some(be16(data, at));
            q.dport = Some(be16(data, at + 2));
        }
        NH_ICMPV6 if has(at, end, 1) => q.icmp_type = Some(data[at]),
        _ => {}
    }
    Some(q)
}

impl Decoder {
    /// An ICMPv6 error (type 1-4) at `data[p..end]`, whose 4-byte header the caller
    /// checked; emitted only when someone observes errors.
    pub(super) fn icmp_error(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        ip: &Ipv6Header,
        out: &mut Vec<Event>,
    ) {
        if !self.want_icmp_errors {
            return;
        }
        let param = if has(p, end, 8) { be32(data, p + 4) } else { 0 };
        let meta = self.meta();
        out.push(Event::IcmpError(IcmpError {
            meta,
            ip: *ip,
            icmp_type: data[p],
            icmp_code: data[p + 1],
            param,
            quoted: quoted(data, p + 8, end),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Decoder, DecoderLimits};
    use super::*;

    fn errors(ev: &[Event]) -> Vec<&IcmpError> {
        ev.iter()
            .filter_map(|e| match e {
                Event::IcmpError(x) => Some(x),
                _ => None,
            })
            .collect()
    }

    fn with_errors() -> Decoder {
        let mut d = Decoder::new(DecoderLimits::default());
        d.want_icmp_errors = true;
        d
    }

    /// A Packet Too Big from G2 to G1 quoting `inner`.
    fn ptb(mtu: u32, inner: &[u8]) -> Vec<u8> {
        let mut body = mtu.to_be_bytes().to_vec();
        body.extend_from_slice(inner);
        eth(&ip6(&G2, &G1, 58, &icmp6(&G2, &G1, 2, &body)), 0x86DD, &[])
    }

    #[test]
    fn packet_too_big_gives_mtu_and_the_quoted_flow() {
        let inner = ip6(&G1, &G2, 17, &udp(40000, 443, &[0; 1200]));
        let frame = ptb(1400, &inner[..1232]);
        let ev = run(&mut with_errors(), 1, &frame, frame.len(), S);
        let e = errors(&ev);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].icmp_type, e[0].icmp_code, e[0].param), (2, 0, 1400));
        let q = e[0].quoted.unwrap();
        assert_eq!((q.src, q.dst, q.next), (G1, G2, 17));
        assert_eq!(
            (q.sport, q.dport, q.icmp_type),
            (Some(40000), Some(443), None)
        );
    }

    #[test]
    fn quoted_chain_is_walked_and_cut_quotes_give_what_they_hold() {
        let echo = icmp6(&G1, &G2, 128, &[0; 8]);
        let payload = [vec![58, 0, 0, 0, 0, 0, 0, 0], echo].concat(); // Destination Options
        let inner = ip6(&G1, &G2, 60, &payload);
        let q = quoted(&inner, 0, inner.len()).unwrap();
        assert_eq!((q.next, q.icmp_type), (58, Some(128)));
        // Cut inside the options header: the header it ran out in, no upper fields.
        let q = quoted(&inner, 0, 44).unwrap();
        assert_eq!((q.next, q.icmp_type, q.sport), (60, None, None));
        // Cut inside the IPv6 header: nothing.
        assert!(quoted(&inner, 0, 39).is_none());
        // A later fragment: no upper header.
        let frag = ip6(&G1, &G2, 44, &[17, 0, 0, 8, 0, 0, 0, 1, 0, 53, 0, 53]);
        let q = quoted(&frag, 0, frag.len()).unwrap();
        assert_eq!((q.next, q.sport), (44, None));
    }

    #[test]
    fn errors_are_emitted_only_when_observed_and_never_panic() {
        let frame = ptb(1280, &[0x60; 10]);
        let mut d = Decoder::new(DecoderLimits::default());
        assert!(errors(&run(&mut d, 1, &frame, frame.len(), S)).is_empty());
        let ev = run(&mut with_errors(), 1, &frame, frame.len(), S);
        assert_eq!(errors(&ev)[0].quoted, None);
        // Every cut of an error with a long quoted chain decodes without a panic.
        let mut chain: Vec<u8> = (0..30).flat_map(|_| [60u8, 0, 0, 0, 0, 0, 0, 0]).collect();
        chain.extend([58, 0, 0, 0, 0, 0, 0, 0]);
        let inner = ip6(&G1, &G2, 60, &chain);
        let full = ptb(1000, &inner);
        let mut d = with_errors();
        for n in 14..full.len() {
            run(&mut d, 1, &full[..n], n, S);
        }
        assert_eq!(
            d.stats()
                .malformed_reasons
                .get(("decoder", "decoder_error")),
            0
        );
    }
}
