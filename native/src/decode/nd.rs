//! ICMPv6 Neighbor Discovery bodies and options (RFC 4861, 4191, 8106, 3971).
//!
//! Owns turning the bytes of one ND message into an `NdMessage`. Does not walk IPv6
//! headers or judge the message: `ip` hands it the message bounds, detections judge.
//!
//! Options are parsed from a table keyed by option type (a length rule and a parser
//! each, like dpkt's). Every length is checked before use; a zero length or an option
//! running past the message stops the walk (a zero-length option would otherwise loop
//! forever), a wrong but well-formed length is reported and skipped.

use super::events::*;
use super::{arr16, be16, be32};

/// Fixed part of each message, ICMPv6 header included (RFC 4861 section 4).
fn fixed_len(itype: u8) -> Option<usize> {
    match itype {
        133 => Some(8),
        134 => Some(16),
        135 | 136 => Some(24),
        137 => Some(40),
        _ => None,
    }
}

/// RFC 4191 section 2.1: 01 high, 00 medium, 11 low, 10 reserved (kept as 2).
fn preference(bits: u8) -> i8 {
    match bits & 3 {
        0 => 0,
        1 => 1,
        3 => -1,
        _ => 2,
    }
}

/// An option whose length is right but whose content is not.
struct BadValue;

type LenRule = fn(u8) -> bool;
type Parser = fn(&[u8]) -> Result<OptionBody, BadValue>;

/// type -> (rule on the 8-octet unit count, parser of the whole option `body`).
/// Parsers run only after the rule passed, so `body` is at least that long.
static OPTION_TABLE: [(u8, LenRule, Parser); 9] = [
    (1, |n| n >= 1, lla),
    (2, |n| n >= 1, lla),
    (3, |n| n == 4, prefix_info),
    (4, |n| n >= 1, redirected),
    (5, |n| n == 1, mtu),
    (14, |n| n >= 1, nonce),
    (24, |n| (1..=3).contains(&n), route_info),
    // RFC 8106: 1 + 2n units. An even length is CVE-2020-16898 ("Bad Neighbor").
    (25, |n| n >= 3 && n % 2 == 1, rdnss),
    (31, |n| n >= 2, dnssl),
];

fn lla(body: &[u8]) -> Result<OptionBody, BadValue> {
    // One unit holds an Ethernet MAC (RFC 2464); longer options carry other link
    // types' addresses, kept whole rather than cut to a made-up MAC.
    let address = if body[1] == 1 {
        &body[2..8]
    } else {
        &body[2..]
    };
    Ok(OptionBody::LinkLayerAddress {
        address: address.to_vec(),
    })
}

fn prefix_info(body: &[u8]) -> Result<OptionBody, BadValue> {
    let prefix_len = body[2];
    if prefix_len > 128 {
        return Err(BadValue);
    }
    let flags = body[3];
    Ok(OptionBody::PrefixInformation {
        prefix_len,
        on_link: flags & 0x80 != 0,
        autonomous: flags & 0x40 != 0,
        router_address: flags & 0x20 != 0,
        valid_lifetime: be32(body, 4),
        preferred_lifetime: be32(body, 8),
        prefix: arr16(body, 16),
    })
}

fn redirected(body: &[u8]) -> Result<OptionBody, BadValue> {
    // RFC 4861 4.6.3: six reserved bytes, then as much of the redirected packet as fits.
    let q = super::icmp_error::quoted(body, 8, body.len());
    Ok(OptionBody::RedirectedHeader {
        data_len: (body.len() - 8) as u32,
        src: q.map(|q| q.src),
        dst: q.map(|q| q.dst),
    })
}

fn mtu(body: &[u8]) -> Result<OptionBody, BadValue> {
    Ok(OptionBody::Mtu { mtu: be32(body, 4) })
}

fn nonce(body: &[u8]) -> Result<OptionBody, BadValue> {
    Ok(OptionBody::Nonce {
        nonce: body[2..].to_vec(),
    })
}

fn route_info(body: &[u8]) -> Result<OptionBody, BadValue> {
    let prefix_len = body[2];
    if prefix_len > 128 {
        return Err(BadValue);
    }
    // RFC 4191 2.3: the length must cover the prefix (1: /0, 2: up to /64, 3: any).
    let units = body[1];
    if (prefix_len > 64 && units < 3) || (prefix_len > 0 && units < 2) {
        return Err(BadValue);
    }
    let mut prefix = [0u8; 16];
    let given = &body[8..8 + (units as usize - 1) * 8];
    prefix[..given.len()].copy_from_slice(given);
    Ok(OptionBody::RouteInformation {
        prefix_len,
        preference: preference(body[3] >> 3),
        lifetime: be32(body, 4),
        prefix,
    })
}

fn rdnss(body: &[u8]) -> Result<OptionBody, BadValue> {
    let servers = body[8..].chunks_exact(16).map(|c| arr16(c, 0)).collect();
    Ok(OptionBody::Rdnss {
        lifetime: be32(body, 4),
        servers,
    })
}

fn dnssl(body: &[u8]) -> Result<OptionBody, BadValue> {
    let mut domains = Vec::new();
    let mut name = String::new();
    let mut labels = 0;
    let (mut i, end) = (8, body.len());
    while i < end {
        let n = body[i] as usize;
        if n == 0 {
            if labels > 0 {
                domains.push(std::mem::take(&mut name));
                labels = 0;
            }
            i += 1; // a zero ends a name, and trailing zeros are padding
            continue;
        }
        if n > 63 || i + 1 + n > end {
            return Err(BadValue); // label runs past the option
        }
        if labels > 0 {
            name.push('.');
        }
        // ASCII, anything else escaped as \xNN (Python's "backslashreplace").
        for &b in &body[i + 1..i + 1 + n] {
            if b.is_ascii() {
                name.push(b as char);
            } else {
                name.push_str(&format!("\\x{b:02x}"));
            }
        }
        labels += 1;
        i += 1 + n;
    }
    if labels > 0 {
        return Err(BadValue); // domain name not terminated
    }
    Ok(OptionBody::Dnssl {
        lifetime: be32(body, 4),
        domains,
    })
}

/// Parse the options in `data[start..end]`; offsets are relative to `base`.
pub fn parse_options(
    data: &[u8],
    start: usize,
    end: usize,
    base: usize,
    options: &mut Vec<NdOption>,
    errors: &mut Vec<OptionError>,
) {
    let mut p = start;
    while p < end {
        let offset = (p - base) as u32;
        if end - p < 2 {
            errors.push(OptionError {
                offset,
                otype: data[p],
                length: 0,
                reason: OptionReason::Truncated,
            });
            break;
        }
        let (otype, units) = (data[p], data[p + 1]);
        let error = |reason| OptionError {
            offset,
            otype,
            length: units,
            reason,
        };
        if units == 0 {
            errors.push(OptionError {
                length: 0,
                ..error(OptionReason::ZeroLength)
            });
            break;
        }
        let size = units as usize * 8;
        if p + size > end {
            errors.push(error(OptionReason::Truncated));
            break;
        }
        let body = &data[p..p + size];
        match OPTION_TABLE.iter().find(|(t, _, _)| *t == otype) {
            None => options.push(NdOption {
                otype,
                offset,
                body: OptionBody::Unknown {
                    data: body[2..].to_vec(),
                },
            }),
            Some((_, rule, _)) if !rule(units) => errors.push(error(OptionReason::BadLength)),
            Some((_, _, parse)) => match parse(body) {
                Ok(body) => options.push(NdOption {
                    otype,
                    offset,
                    body,
                }),
                Err(BadValue) => errors.push(error(OptionReason::BadValue)),
            },
        }
        p += size;
    }
}

/// Verify the ICMPv6 checksum (RFC 4443 2.3) of `msg` sent from `src` to `dst`.
pub fn icmpv6_checksum_ok(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> bool {
    let mut total: u64 = 0;
    let mut words = msg.chunks_exact(2);
    for w in &mut words {
        total += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        total += u64::from(*last) << 8; // odd length: pad with a zero byte
    }
    for w in src.chunks_exact(2).chain(dst.chunks_exact(2)) {
        total += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let length = msg.len() as u64;
    total += (length >> 16) + (length & 0xFFFF) + 58;
    while total >> 16 != 0 {
        total = (total & 0xFFFF) + (total >> 16);
    }
    total == 0xFFFF
}

/// Build the ND event for the message at `data[start..end]` (ICMPv6 type 133-137).
///
/// `None` when the fixed part is shorter than RFC 4861 requires (or the type is not
/// ND); the caller reports that.
pub fn parse_nd(
    meta: Meta,
    ip: &Ipv6Header,
    data: &[u8],
    start: usize,
    end: usize,
) -> Option<NdMessage> {
    let itype = data[start];
    let fixed = fixed_len(itype)?;
    if end - start < fixed {
        return None;
    }
    let m = &data[start..end];
    let checksum_ok = icmpv6_checksum_ok(&ip.src, &ip.dst, m);
    let mut options = Vec::new();
    let mut option_errors = Vec::new();
    parse_options(
        data,
        start + fixed,
        end,
        start,
        &mut options,
        &mut option_errors,
    );
    let body = match itype {
        134 => {
            let flags = m[5];
            NdBody::RouterAdvertisement {
                cur_hop_limit: m[4],
                managed: flags & 0x80 != 0,
                other: flags & 0x40 != 0,
                home_agent: flags & 0x20 != 0,
                preference: preference(flags >> 3),
                proxy: flags & 0x04 != 0,
                router_lifetime: be16(m, 6),
                reachable_time: be32(m, 8),
                retrans_timer: be32(m, 12),
            }
        }
        135 => NdBody::NeighborSolicitation {
            target: arr16(m, 8),
        },
        136 => NdBody::NeighborAdvertisement {
            router: m[4] & 0x80 != 0,
            solicited: m[4] & 0x40 != 0,
            override_: m[4] & 0x20 != 0,
            target: arr16(m, 8),
        },
        137 => NdBody::Redirect {
            target: arr16(m, 8),
            destination: arr16(m, 24),
        },
        _ => NdBody::RouterSolicitation,
    };
    Some(NdMessage {
        meta,
        ip: *ip,
        icmp_type: itype,
        code: m[1],
        checksum_ok,
        options,
        option_errors,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn ra_with(options: &[u8]) -> (Vec<NdOption>, Vec<(OptionReason, u8)>) {
        let ev = decode(&eth(
            &ip6(
                &LL1,
                &ALLNODES,
                58,
                &icmp6(&LL1, &ALLNODES, 134, &ra_body(options)),
            ),
            0x86DD,
            &[],
        ));
        let m = nd(&ev)[0].clone();
        assert!(m.checksum_ok);
        let errors = m
            .option_errors
            .iter()
            .map(|e| (e.reason, e.otype))
            .collect();
        (m.options, errors)
    }

    #[test]
    fn every_option_in_the_table() {
        let mut pio = vec![64, 0xC0];
        pio.extend_from_slice(&86400u32.to_be_bytes());
        pio.extend_from_slice(&14400u32.to_be_bytes());
        pio.extend_from_slice(&[0; 4]);
        pio.extend_from_slice(&G1);
        let rio = [48, 0x18, 0, 0, 2, 0x58, 0x20, 1, 0xd, 0xb8, 0, 1, 0, 0];
        let rdnss = [&[0u8, 0, 0, 0, 0x0e, 0x10][..], &G1, &G2].concat();
        let mut dnssl = vec![0, 0, 0, 0, 0x0e, 0x10];
        dnssl.extend_from_slice(b"\x07example\x03com\x00\x04c\xffrp\x00");
        let options = [
            opt(1, &MAC1),
            opt(3, &pio),
            opt(4, &[0; 14]),
            opt(5, &[0, 0, 0, 0, 5, 0xdc]),
            opt(14, &[1; 6]),
            opt(24, &rio),
            opt(25, &rdnss),
            opt(31, &dnssl),
            opt(200, &[9; 6]),
        ]
        .concat();
        let (opts, errors) = ra_with(&options);
        assert!(errors.is_empty());
        let types: Vec<u8> = opts.iter().map(|o| o.otype).collect();
        assert_eq!(types, [1, 3, 4, 5, 14, 24, 25, 31, 200]);
        assert_eq!(opts[0].offset, 16);
        assert_eq!(
            opts[0].body,
            OptionBody::LinkLayerAddress {
                address: MAC1.to_vec()
            }
        );
        assert!(
            matches!(opts[1].body, OptionBody::PrefixInformation { prefix_len: 64, on_link: true, autonomous: true, valid_lifetime: 86400, prefix, .. } if prefix == G1)
        );
        assert_eq!(
            opts[2].body,
            OptionBody::RedirectedHeader {
                data_len: 8,
                src: None,
                dst: None
            }
        );
        assert_eq!(opts[3].body, OptionBody::Mtu { mtu: 1500 });
        let OptionBody::RouteInformation {
            prefix_len,
            preference,
            lifetime,
            prefix,
        } = opts[5].body
        else {
            panic!("not a RIO")
        };
        assert_eq!((prefix_len, preference, lifetime), (48, -1, 600));
        assert_eq!(prefix[..6], G1[..6]);
        assert_eq!(
            opts[6].body,
            OptionBody::Rdnss {
                lifetime: 3600,
                servers: vec![G1, G2]
            }
        );
        let want = vec!["example.com".to_string(), "c\\xffrp".to_string()];
        assert_eq!(
            opts[7].body,
            OptionBody::Dnssl {
                lifetime: 3600,
                domains: want
            }
        );
        assert_eq!(opts[8].body, OptionBody::Unknown { data: vec![9; 6] });
    }

    #[test]
    fn malformed_options_are_reported_and_never_loop() {
        use OptionReason::*;
        let zero = [&[1u8, 0, 0, 0, 0, 0, 0, 0][..], &opt(1, &MAC1)].concat();
        assert_eq!(ra_with(&zero).1, [(ZeroLength, 1)]);
        let cut = [opt(1, &MAC1), vec![0x19, 5], vec![0; 14]].concat();
        assert_eq!(ra_with(&cut).1, [(Truncated, 25)]);
        // CVE-2020-16898: RDNSS with an even length; parsing goes on after it.
        let bad = [&[0x19u8, 4][..], &[0; 30], &opt(1, &MAC1)].concat();
        let (opts, errors) = ra_with(&bad);
        assert_eq!((errors, opts.len()), (vec![(BadLength, 25)], 1));
        assert_eq!(
            ra_with(&[5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).1,
            [(BadLength, 5)]
        );
        assert_eq!(ra_with(&opt(24, &[200, 0, 0, 0, 0, 0])).1, [(BadValue, 24)]);
        assert_eq!(
            ra_with(&opt(24, &[96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).1,
            [(BadValue, 24)]
        );
        assert_eq!(
            ra_with(&opt(31, &[0, 0, 0, 0, 0, 0, 20, b'a'])).1,
            [(BadValue, 31)]
        );
        assert_eq!(ra_with(&[1]).1, [(Truncated, 1)]);
    }

    #[test]
    fn messages_and_short_ones() {
        let mut na = vec![0xE0, 0, 0, 0];
        na.extend_from_slice(&G1);
        let ev = decode(&eth(
            &ip6(&G1, &LL1, 58, &icmp6(&G1, &LL1, 136, &na)),
            0x86DD,
            &[],
        ));
        assert_eq!(
            nd(&ev)[0].body,
            NdBody::NeighborAdvertisement {
                router: true,
                solicited: true,
                override_: true,
                target: G1
            }
        );
        let ev = decode(&eth(
            &ip6(&LL1, &ALLNODES, 58, &icmp6(&LL1, &ALLNODES, 135, &[0; 8])),
            0x86DD,
            &[],
        ));
        assert!(nd(&ev).is_empty());
        assert_eq!(malformed(&ev), [("nd", "short_message")]);
        assert_eq!(flows(&ev), [icmp_flow(135, 0)]);
    }

    #[test]
    fn checksum() {
        let mut m = icmp6(&LL1, &ALLNODES, 134, &ra_body(&[]));
        assert!(icmpv6_checksum_ok(&LL1, &ALLNODES, &m));
        m[2] ^= 0xFF;
        assert!(!icmpv6_checksum_ok(&LL1, &ALLNODES, &m));
        let odd = icmp6(&LL1, &ALLNODES, 128, &[1, 2, 3]);
        assert!(icmpv6_checksum_ok(&LL1, &ALLNODES, &odd));
    }
}
