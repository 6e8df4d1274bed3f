//! DHCPv6 (RFC 8415) on UDP 546/547: the message header and the options the detections
//! read, as a `Dhcpv6Message` event.
//!
//! Owns every read of DHCPv6 bytes. Built only when a reducer observes `dhcpv6` (the
//! decoder's `want_dhcpv6`), so the cheap path of other UDP stays a port comparison.
//! Parsing is zero-copy over the UDP payload with small `nom`-style steps (`take` a
//! fixed width, `opt` one TLV), each returning the rest of the input, and is bounded:
//! at most `MAX_OPTIONS` options per level, `MAX_ITEMS` of each list kept, one level of
//! IA sub-options, names of at most 255 bytes. Every length is checked; a bad option
//! stops the walk of its level and becomes one `Malformed(layer="dhcpv6")` beside the
//! message (with what was read before it). Relay messages (Relay-forw, Relay-repl) keep
//! only their header and the relayed message's type.

use std::borrow::Cow;

use super::events::*;
use super::{be16, be32, Decoder, NH_UDP};

/// UDP ports: the client's and the server's/relay's (RFC 8415 7.2).
pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;

/// Options walked per level (a real message has a dozen).
const MAX_OPTIONS: usize = 64;
/// Items kept per list (addresses, prefixes, DNS servers, domains, IAIDs).
const MAX_ITEMS: usize = 16;
/// A DUID is at most 128 bytes plus its 2-byte type (RFC 8415 11.1).
const MAX_DUID: usize = 130;

pub const RELAY_FORW: u8 = 12;
pub const RELAY_REPL: u8 = 13;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_RELAY_MSG: u16 = 9;
const OPT_STATUS_CODE: u16 = 13;
const OPT_DNS_SERVERS: u16 = 23;
const OPT_DOMAIN_LIST: u16 = 24;
const OPT_IA_PD: u16 = 25;
const OPT_IAPREFIX: u16 = 26;

/// Is either port DHCPv6's? (The cheap paths' one comparison.)
#[inline]
pub fn is_dhcpv6_port(port: u16) -> bool {
    port == CLIENT_PORT || port == SERVER_PORT
}

/// Why a message or option could not be read (`Malformed.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    ShortMessage,
    TruncatedOption,
    BadOptionLength,
    BadDomainName,
    TooManyOptions,
}

impl Bad {
    pub fn reason(self) -> &'static str {
        match self {
            Bad::ShortMessage => "short_message",
            Bad::TruncatedOption => "truncated_option",
            Bad::BadOptionLength => "bad_option_length",
            Bad::BadDomainName => "bad_domain_name",
            Bad::TooManyOptions => "too_many_options",
        }
    }
}

/// `(what went wrong, option code)`.
type Fault = (Bad, u16);
type Res<'a, T> = Result<(&'a [u8], T), Fault>;

/// `n` bytes off the front.
#[inline]
fn take(i: &[u8], n: usize) -> Res<'_, &[u8]> {
    if i.len() < n {
        return Err((Bad::TruncatedOption, 0));
    }
    Ok((&i[n..], &i[..n]))
}

/// One option TLV: `(code, body)`.
#[inline]
fn opt(i: &[u8]) -> Res<'_, (u16, &[u8])> {
    if i.len() < 4 {
        return Err((Bad::TruncatedOption, 0));
    }
    let code = be16(i, 0);
    let len = be16(i, 2) as usize;
    let (rest, body) = take(&i[4..], len).map_err(|(b, _)| (b, code))?;
    Ok((rest, (code, body)))
}

#[inline]
fn a16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

fn push<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_ITEMS {
        list.push(item);
    }
}

/// DNS wire-format names (RFC 1035 3.1, uncompressed as RFC 8415 10 requires), as
/// lower-case text without the final dot.
fn names(mut i: &[u8], out: &mut Vec<String>) -> Result<(), Fault> {
    let bad = (Bad::BadDomainName, OPT_DOMAIN_LIST);
    let mut walked = 0;
    while !i.is_empty() {
        walked += 1;
        if walked > MAX_OPTIONS {
            return Err((Bad::TooManyOptions, OPT_DOMAIN_LIST));
        }
        let mut name = String::new();
        let mut wire = 0usize;
        loop {
            let (&len, rest) = i.split_first().ok_or(bad)?;
            i = rest;
            wire += 1 + len as usize;
            if len == 0 {
                break;
            }
            // 0xC0: compression, not allowed here; other high bits are reserved.
            if len > 63 || wire > 255 || i.len() < len as usize {
                return Err(bad);
            }
            let label = &i[..len as usize];
            i = &i[len as usize..];
            if !name.is_empty() {
                name.push('.');
            }
            for &c in label {
                if c.is_ascii_graphic() && c != b'.' {
                    name.push(c.to_ascii_lowercase() as char);
                } else {
                    name.push_str(&format!("\\{c:03}"));
                }
            }
        }
        if !name.is_empty() {
            push(out, name);
        }
    }
    Ok(())
}

/// The sub-options of an IA_NA or IA_PD (after IAID, T1, T2).
fn ia_options(mut i: &[u8], code: u16, m: &mut Dhcpv6Message) -> Result<(), Fault> {
    let mut n = 0;
    while !i.is_empty() {
        n += 1;
        if n > MAX_OPTIONS {
            return Err((Bad::TooManyOptions, code));
        }
        let (rest, (sub, body)) = opt(i)?;
        i = rest;
        match sub {
            OPT_IAADDR if code == OPT_IA_NA => {
                // address, preferred and valid lifetimes, options
                if body.len() < 24 {
                    return Err((Bad::BadOptionLength, sub));
                }
                push(&mut m.addresses, a16(body));
            }
            OPT_IAPREFIX if code == OPT_IA_PD => {
                // preferred, valid lifetimes, prefix length, prefix, options
                if body.len() < 25 || body[8] > 128 {
                    return Err((Bad::BadOptionLength, sub));
                }
                push(&mut m.prefixes, (a16(&body[9..]), body[8]));
            }
            OPT_STATUS_CODE => status(body, m)?,
            _ => {}
        }
    }
    Ok(())
}

fn status(body: &[u8], m: &mut Dhcpv6Message) -> Result<(), Fault> {
    if body.len() < 2 {
        return Err((Bad::BadOptionLength, OPT_STATUS_CODE));
    }
    // The top-level status is the message's; an IA's first one counts when none is.
    if m.status_code.is_none() {
        m.status_code = Some(be16(body, 0));
    }
    Ok(())
}

fn duid(body: &[u8], code: u16) -> Result<Vec<u8>, Fault> {
    if body.is_empty() || body.len() > MAX_DUID {
        return Err((Bad::BadOptionLength, code));
    }
    Ok(body.to_vec())
}

/// The options of a message, into `m`; stops at the first fault.
fn options(mut i: &[u8], m: &mut Dhcpv6Message) -> Result<(), Fault> {
    let mut n = 0;
    while !i.is_empty() {
        n += 1;
        if n > MAX_OPTIONS {
            return Err((Bad::TooManyOptions, 0));
        }
        let (rest, (code, body)) = opt(i)?;
        i = rest;
        match code {
            OPT_CLIENTID if m.client_id.is_none() => m.client_id = Some(duid(body, code)?),
            OPT_SERVERID if m.server_id.is_none() => m.server_id = Some(duid(body, code)?),
            OPT_IA_NA | OPT_IA_PD => {
                let (subs, fixed) = take(body, 12).map_err(|_| (Bad::BadOptionLength, code))?;
                if code == OPT_IA_NA {
                    push(&mut m.iaids, be32(fixed, 0));
                }
                ia_options(subs, code, m)?;
            }
            OPT_DNS_SERVERS => {
                if body.len() % 16 != 0 {
                    return Err((Bad::BadOptionLength, code));
                }
                for s in body.chunks_exact(16) {
                    push(&mut m.dns_servers, a16(s));
                }
            }
            OPT_DOMAIN_LIST => names(body, &mut m.domains)?,
            OPT_STATUS_CODE => status(body, m)?,
            OPT_RELAY_MSG if m.hop_count.is_some() => {
                m.relayed_type = body.first().copied();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parse the UDP payload `p` of a DHCPv6 packet. `Err` when even the header is short;
/// otherwise the message and the first fault in its options, if any.
pub fn parse(
    meta: Meta,
    ip: &Ipv6Header,
    sport: u16,
    dport: u16,
    p: &[u8],
) -> Result<(Dhcpv6Message, Option<Fault>), Fault> {
    let (&msg_type, _) = p.split_first().ok_or((Bad::ShortMessage, 0))?;
    let mut m = Dhcpv6Message {
        meta,
        ip: *ip,
        sport,
        dport,
        msg_type,
        transaction_id: 0,
        client_id: None,
        server_id: None,
        iaids: Vec::new(),
        addresses: Vec::new(),
        prefixes: Vec::new(),
        dns_servers: Vec::new(),
        domains: Vec::new(),
        status_code: None,
        hop_count: None,
        link_address: None,
        peer_address: None,
        relayed_type: None,
    };
    let rest = if msg_type == RELAY_FORW || msg_type == RELAY_REPL {
        if p.len() < 34 {
            return Err((Bad::ShortMessage, 0));
        }
        m.hop_count = Some(p[1]);
        m.link_address = Some(a16(&p[2..]));
        m.peer_address = Some(a16(&p[18..]));
        &p[34..]
    } else {
        if p.len() < 4 {
            return Err((Bad::ShortMessage, 0));
        }
        m.transaction_id = be32(p, 0) & 0x00FF_FFFF;
        &p[4..]
    };
    let fault = options(rest, &mut m).err();
    Ok((m, fault))
}

impl Decoder {
    /// A UDP datagram to or from 546/547 at `data[p..end]` (UDP header included).
    pub(super) fn dhcpv6(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        ip: &Ipv6Header,
        out: &mut Vec<Event>,
    ) {
        let sport = be16(data, p);
        let dport = be16(data, p + 2);
        // The UDP length bounds the message when it fits; trailing bytes are ignored.
        let ulen = be16(data, p + 4) as usize;
        let stop = if ulen >= 8 && p + ulen <= end {
            p + ulen
        } else {
            end
        };
        let payload = &data[p + 8..stop];
        let (s, d) = (Some(IpAddr::V6(ip.src)), Some(IpAddr::V6(ip.dst)));
        let flow = Upper {
            proto: Some(NH_UDP),
            sport: Some(sport),
            dport: Some(dport),
            ..Upper::default()
        };
        let meta = self.meta();
        let t = ip.tunnels;
        match parse(meta, ip, sport, dport, payload) {
            Err((bad, _)) => {
                if self.f.snapped {
                    let what = "DHCPv6 header".into();
                    return self.short(out, "dhcpv6", what, s, d, &t);
                }
                let detail = format!("{} bytes", payload.len()).into();
                self.malformed_in(out, "dhcpv6", bad.reason(), detail, s, d, &t, flow);
            }
            Ok((msg, fault)) => {
                let msg_type = msg.msg_type;
                out.push(Event::Dhcpv6(msg));
                if let Some((bad, code)) = fault {
                    if self.f.snapped && bad == Bad::TruncatedOption {
                        let what = "DHCPv6 options cut by the snaplen".into();
                        return self.short(out, "dhcpv6", what, None, None, &Tunnels::default());
                    }
                    let detail = Cow::Owned(format!("message type {msg_type} option {code}"));
                    self.malformed_in(out, "dhcpv6", bad.reason(), detail, s, d, &t, flow);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn o(code: u16, body: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        eth(
            &ip6(&src, &dst, 17, &udp(sport, dport, payload)),
            0x86DD,
            &[],
        )
    }

    fn dec(frame: &[u8]) -> Vec<Event> {
        let mut d = Decoder::new(super::super::DecoderLimits::default());
        d.want_dhcpv6 = true;
        run(&mut d, 1, frame, frame.len(), S)
    }

    fn msgs(evs: &[Event]) -> Vec<&Dhcpv6Message> {
        evs.iter()
            .filter_map(|e| match e {
                Event::Dhcpv6(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn advertise() -> Vec<u8> {
        let mut p = vec![2, 0x12, 0x34, 0x56];
        p.extend(o(1, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 9]));
        p.extend(o(2, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]));
        let mut iaaddr = [0u8; 24].to_vec();
        iaaddr[0] = 0x20;
        iaaddr[1] = 0x01;
        iaaddr[15] = 0x10;
        let mut ia = vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        ia.extend(o(5, &iaaddr));
        ia.extend(o(13, &[0, 0]));
        p.extend(o(3, &ia));
        let mut pd = vec![0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut pfx = vec![0; 9];
        pfx[8] = 56;
        pfx.extend([0x20, 0x01, 0x0d, 0xb8, 0xff]);
        pfx.extend([0; 11]);
        pd.extend(o(26, &pfx));
        p.extend(o(25, &pd));
        p.extend(o(23, &[0x20; 32]));
        p.extend(o(24, b"\x07Example\x03com\x00\x03lab\x00"));
        p
    }

    #[test]
    fn an_advertise_is_decoded() {
        let evs = dec(&frame(547, 546, &advertise()));
        assert_eq!(malformed(&evs), []);
        let m = msgs(&evs);
        assert_eq!(m.len(), 1);
        let m = m[0];
        assert_eq!((m.msg_type, m.transaction_id), (2, 0x123456));
        assert_eq!(
            m.client_id.as_deref(),
            Some(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 9][..])
        );
        assert_eq!(m.server_id.as_ref().map(|d| d[9]), Some(1));
        assert_eq!(m.iaids, [7]);
        assert_eq!(m.addresses.len(), 1);
        assert_eq!(m.addresses[0][15], 0x10);
        assert_eq!(m.prefixes.len(), 1);
        assert_eq!(m.prefixes[0].1, 56);
        assert_eq!(m.dns_servers, [[0x20; 16], [0x20; 16]]);
        assert_eq!(m.domains, ["example.com", "lab"]);
        assert_eq!(m.status_code, Some(0));
        assert_eq!((m.sport, m.dport), (547, 546));
    }

    #[test]
    fn nothing_is_built_unless_wanted() {
        let f = frame(547, 546, &advertise());
        assert!(msgs(&decode(&f)).is_empty());
        // Other UDP ports stay on the cheap path even when DHCPv6 is wanted.
        assert!(dec(&frame(53, 40000, &advertise())).is_empty());
    }

    #[test]
    fn a_relay_keeps_its_header_and_the_relayed_type() {
        let mut p = vec![12, 3];
        p.extend([0x20; 16]);
        p.extend([0xfe; 16]);
        p.extend(o(9, &[1, 0, 0, 1]));
        let evs = dec(&frame(547, 547, &p));
        let m = msgs(&evs)[0];
        assert_eq!(m.hop_count, Some(3));
        assert_eq!(m.link_address, Some([0x20; 16]));
        assert_eq!(m.peer_address, Some([0xfe; 16]));
        assert_eq!(m.relayed_type, Some(1));
        assert_eq!(
            malformed(&dec(&frame(547, 547, &p[..20]))),
            [("dhcpv6", "short_message")]
        );
    }

    #[test]
    fn malformed_options_are_counted_never_panic() {
        let bad = |payload: &[u8]| malformed(&dec(&frame(547, 546, payload)));
        assert_eq!(bad(&[2, 0]), [("dhcpv6", "short_message")]);
        let mut p = vec![2, 0, 0, 1];
        p.extend([0, 23, 0, 40, 1]);
        assert_eq!(bad(&p), [("dhcpv6", "truncated_option")]);
        let mut p = vec![2, 0, 0, 1];
        p.extend(o(23, &[0; 15]));
        assert_eq!(bad(&p), [("dhcpv6", "bad_option_length")]);
        let mut p = vec![2, 0, 0, 1];
        p.extend(o(24, b"\xc0\x0c"));
        assert_eq!(bad(&p), [("dhcpv6", "bad_domain_name")]);
        let mut p = vec![2, 0, 0, 1];
        p.extend(o(3, &[0; 8]));
        assert_eq!(bad(&p), [("dhcpv6", "bad_option_length")]);
        let mut p = vec![2, 0, 0, 1];
        for _ in 0..100 {
            p.extend(o(99, &[]));
        }
        assert_eq!(bad(&p), [("dhcpv6", "too_many_options")]);
        // Every prefix of a valid message and random bytes: no panic, bounded output.
        let good = advertise();
        for n in 0..good.len() {
            let evs = dec(&frame(547, 546, &good[..n]));
            assert!(evs.len() <= 2);
        }
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let len = (x % 200) as usize;
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p.push((x & 0x1f) as u8);
            }
            assert!(dec(&frame(546, 547, &p)).len() <= 2);
        }
    }
}
