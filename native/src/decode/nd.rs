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
    let address = if body[1] == 1 { &body[2..8] } else { &body[2..] };
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
    Ok(OptionBody::RedirectedHeader {
        data_len: (body.len() - 8) as u32,
    })
}

fn mtu(body: &[u8]) -> Result<OptionBody, BadValue> {
    Ok(OptionBody::Mtu {
        mtu: be32(body, 4),
    })
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
                Ok(body) => options.push(NdOption { otype, offset, body }),
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
    parse_options(data, start + fixed, end, start, &mut options, &mut option_errors);
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
