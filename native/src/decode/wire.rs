//! A compact byte form of decoder events, for `live --workers N`.
//!
//! Owns only the encoding: each worker process decodes its share of a link and sends
//! its events to the one process that counts them (`crate::merge`), in batches. The
//! form is private to one running sensor (both ends are the same build), so it has no
//! version and no compatibility promise: fixed-width little-endian integers, a length
//! before every variable part, a tag byte before every enum. Decoding checks every
//! length against the buffer, so a damaged batch is an error, never a panic.
//!
//! A `Mark` is not an event: it carries the time of a frame that produced no event
//! for the counting process, so that its clock (and its packet-time ticks) moves on
//! exactly as replay's does, where every record moves the clock.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use super::events::*;

/// One item of a batch: a decoded event, or the time of a frame without one.
// Not boxed: one item per worker is held at a time, and boxing would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    Mark { ts_ns: i64, frame: u64 },
}

impl Item {
    /// Merge order: packet time, then frame number.
    pub fn key(&self) -> (i64, u64) {
        match self {
            Item::Event(ev) => (ev.meta().ts_ns, ev.meta().frame),
            Item::Mark { ts_ns, frame } => (*ts_ns, *frame),
        }
    }
}

/// A batch that does not decode (never produced by `encode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "damaged event batch: {}", self.0)
    }
}

impl std::error::Error for WireError {}

type R<T> = Result<T, WireError>;

/// A cursor over one batch.
pub struct Rd<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Rd { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(WireError("length"))?;
        let s = self.buf.get(self.pos..end).ok_or(WireError("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// A value with a byte form.
pub trait Wire: Sized {
    fn put(&self, w: &mut Vec<u8>);
    fn get(r: &mut Rd<'_>) -> R<Self>;
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            #[inline]
            fn put(&self, w: &mut Vec<u8>) {
                w.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn get(r: &mut Rd<'_>) -> R<Self> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
        }
    )*};
}

wire_int!(u8, i8, u16, u32, u64, i64);

impl Wire for bool {
    fn put(&self, w: &mut Vec<u8>) {
        w.push(u8::from(*self));
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        match u8::get(r)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError("bool")),
        }
    }
}

impl<const N: usize> Wire for [u8; N] {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(self);
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        r.array()
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            None => w.push(0),
            Some(v) => {
                w.push(1);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        match u8::get(r)? {
            0 => Ok(None),
            1 => Ok(Some(T::get(r)?)),
            _ => Err(WireError("option")),
        }
    }
}

fn put_len(n: usize, w: &mut Vec<u8>) {
    // Every variable part is bounded far below 4 GiB (a frame is at most 256 KiB).
    (n as u32).put(w);
}

fn get_len(r: &mut Rd<'_>) -> R<usize> {
    let n = u32::get(r)? as usize;
    if n > r.buf.len() - r.pos.min(r.buf.len()) {
        return Err(WireError("length"));
    }
    Ok(n)
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, w: &mut Vec<u8>) {
        put_len(self.len(), w);
        for v in self {
            v.put(w);
        }
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        // Each item takes at least one byte, so the length check bounds the allocation.
        let n = get_len(r)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::get(r)?);
        }
        Ok(out)
    }
}

impl Wire for String {
    fn put(&self, w: &mut Vec<u8>) {
        put_len(self.len(), w);
        w.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        let n = get_len(r)?;
        let s = r.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| WireError("utf-8"))
    }
}

impl Wire for Cow<'static, str> {
    fn put(&self, w: &mut Vec<u8>) {
        put_len(self.len(), w);
        w.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        Ok(Cow::Owned(String::get(r)?))
    }
}

/// Most distinct static strings (malformed layers and reasons) taken from batches; the
/// decoder has a few dozen, so the cap only matters for a damaged batch.
const MAX_INTERNED: usize = 1024;

/// The `&'static str` for `s`: the decoder's layer and reason names are constants, so
/// each distinct one is allocated once for the life of the process.
fn intern(s: &str) -> R<&'static str> {
    static TABLE: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(v) = table.get(s) {
        return Ok(v);
    }
    if table.len() >= MAX_INTERNED {
        return Err(WireError("too many distinct names"));
    }
    let v: &'static str = Box::leak(s.to_owned().into_boxed_str());
    table.insert(v);
    Ok(v)
}

impl Wire for &'static str {
    fn put(&self, w: &mut Vec<u8>) {
        put_len(self.len(), w);
        w.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        let n = get_len(r)?;
        let s = std::str::from_utf8(r.take(n)?).map_err(|_| WireError("utf-8"))?;
        intern(s)
    }
}

macro_rules! wire_list {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, w: &mut Vec<u8>) {
                w.push(self.len() as u8);
                for v in self.as_slice() {
                    v.put(w);
                }
            }
            fn get(r: &mut Rd<'_>) -> R<Self> {
                let n = usize::from(u8::get(r)?);
                if n > <$t>::CAPACITY {
                    return Err(WireError("list length"));
                }
                let mut out = <$t>::default();
                for _ in 0..n {
                    out.push(Wire::get(r)?);
                }
                Ok(out)
            }
        }
    )*};
}

wire_list!(Vlans, Chain, Tunnels);

macro_rules! wire_struct {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl Wire for $t {
            fn put(&self, w: &mut Vec<u8>) {
                $(self.$f.put(w);)*
            }
            fn get(r: &mut Rd<'_>) -> R<Self> {
                Ok($t { $($f: Wire::get(r)?,)* })
            }
        }
    };
}

/// A field-less enum as one byte, in the order listed.
macro_rules! wire_enum {
    ($t:ident { $($v:ident),* $(,)? }) => {
        impl Wire for $t {
            fn put(&self, w: &mut Vec<u8>) {
                const ALL: &[$t] = &[$($t::$v),*];
                let i = ALL.iter().position(|v| v == self).unwrap_or(0);
                w.push(i as u8);
            }
            fn get(r: &mut Rd<'_>) -> R<Self> {
                const ALL: &[$t] = &[$($t::$v),*];
                ALL.get(usize::from(u8::get(r)?)).copied().ok_or(WireError(stringify!($t)))
            }
        }
    };
}

wire_enum!(TunnelKind {
    SixInFour,
    Teredo,
    Ayiya,
    SixInSix,
    FourInSix
});
wire_enum!(FragKind {
    Overlap,
    Atomic,
    IncompleteChain,
    Timeout,
    Evicted,
    TooManyFragments,
    Oversize,
    InconsistentLength,
});
wire_enum!(OptionReason {
    BadLength,
    BadValue,
    Truncated,
    ZeroLength
});

impl Wire for IpAddr {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            IpAddr::V4(a) => {
                w.push(4);
                a.put(w);
            }
            IpAddr::V6(a) => {
                w.push(6);
                a.put(w);
            }
        }
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        match u8::get(r)? {
            4 => Ok(IpAddr::V4(r.array()?)),
            6 => Ok(IpAddr::V6(r.array()?)),
            _ => Err(WireError("address")),
        }
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, w: &mut Vec<u8>) {
        self.0.put(w);
        self.1.put(w);
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        Ok((A::get(r)?, B::get(r)?))
    }
}

wire_struct!(Meta {
    ts_ns,
    frame,
    iface,
    linktype,
    wire_len,
    src_mac,
    dst_mac,
    vlans
});
wire_struct!(TeredoInfo {
    bubble,
    auth,
    origin_ip,
    origin_port,
    server,
    client_ip,
    client_port,
    cone
});
wire_struct!(TunnelLayer {
    kind,
    outer_src,
    outer_dst,
    outer_sport,
    outer_dport,
    teredo
});
wire_struct!(FragmentInfo {
    ident,
    count,
    atomic,
    first_chain_complete,
    overlap
});
wire_struct!(Ipv6Header {
    src,
    dst,
    hop_limit,
    traffic_class,
    flow_label,
    payload_len,
    chain,
    upper,
    fragment,
    tunnels
});
wire_struct!(Ipv6Packet {
    meta,
    ip,
    sport,
    dport,
    icmp_type,
    icmp_code,
    tcp_flags,
    quoted_src
});
wire_struct!(TunnelPacket {
    meta,
    layer,
    inner_version,
    inner_len,
    depth,
    inner_src,
    inner_dst,
    inner_next,
    inner_icmp_type
});
wire_struct!(FragmentAnomaly {
    meta,
    kind,
    src,
    dst,
    ident,
    tunnels,
    origin_ns,
    origin_frame
});
wire_struct!(Malformed {
    meta,
    layer,
    reason,
    detail,
    src,
    dst,
    tunnels,
    upper
});
wire_struct!(OptionsSummary {
    header,
    options,
    unknown_options,
    padding_only,
    padn_data,
    excess_padding,
    unknown_data,
    oversize_data,
    sample_len,
    sample
});
wire_struct!(ExtOptions {
    meta,
    ip,
    upper,
    summary
});
wire_struct!(Upper {
    proto,
    sport,
    dport,
    icmp_type,
    icmp_code
});
wire_struct!(NdOption {
    otype,
    offset,
    body
});
wire_struct!(OptionError {
    offset,
    otype,
    length,
    reason
});
wire_struct!(MldRecord {
    rtype,
    aux_len,
    group,
    sources
});
wire_struct!(MldMessage {
    meta,
    ip,
    router_alert,
    icmp_type,
    code,
    checksum_ok,
    version,
    max_delay,
    group,
    s_flag,
    qrv,
    qqic,
    num_sources,
    records_declared,
    records_fit,
    sources_total,
    snapped,
    records
});

wire_struct!(Dhcpv6Message {
    meta,
    ip,
    sport,
    dport,
    msg_type,
    transaction_id,
    client_id,
    server_id,
    iaids,
    addresses,
    prefixes,
    dns_servers,
    domains,
    status_code,
    hop_count,
    link_address,
    peer_address,
    relayed_type,
});

wire_struct!(Quoted {
    src,
    dst,
    flow_label,
    next,
    sport,
    dport,
    icmp_type
});
wire_struct!(IcmpError {
    meta,
    ip,
    icmp_type,
    icmp_code,
    param,
    quoted
});
wire_struct!(DnsQuestion {
    qname,
    qtype,
    qclass
});
wire_struct!(DnsMessage {
    meta,
    src,
    dst,
    sport,
    dport,
    transport,
    tunnels,
    id,
    qr,
    opcode,
    aa,
    rcode,
    qdcount,
    question,
    ancount,
    ptr_answers
});
wire_struct!(NdMessage {
    meta,
    ip,
    icmp_type,
    code,
    checksum_ok,
    options,
    option_errors,
    body
});

impl Wire for OptionBody {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            OptionBody::LinkLayerAddress { address } => {
                w.push(0);
                address.put(w);
            }
            OptionBody::PrefixInformation {
                prefix_len,
                on_link,
                autonomous,
                router_address,
                valid_lifetime,
                preferred_lifetime,
                prefix,
            } => {
                w.push(1);
                prefix_len.put(w);
                on_link.put(w);
                autonomous.put(w);
                router_address.put(w);
                valid_lifetime.put(w);
                preferred_lifetime.put(w);
                prefix.put(w);
            }
            OptionBody::RedirectedHeader { data_len, src, dst } => {
                w.push(2);
                data_len.put(w);
                src.put(w);
                dst.put(w);
            }
            OptionBody::Mtu { mtu } => {
                w.push(3);
                mtu.put(w);
            }
            OptionBody::Nonce { nonce } => {
                w.push(4);
                nonce.put(w);
            }
            OptionBody::RouteInformation {
                prefix_len,
                preference,
                lifetime,
                prefix,
            } => {
                w.push(5);
                prefix_len.put(w);
                preference.put(w);
                lifetime.put(w);
                prefix.put(w);
            }
            OptionBody::Rdnss { lifetime, servers } => {
                w.push(6);
                lifetime.put(w);
                servers.put(w);
            }
            OptionBody::Dnssl { lifetime, domains } => {
                w.push(7);
                lifetime.put(w);
                domains.put(w);
            }
            OptionBody::Unknown { data } => {
                w.push(8);
                data.put(w);
            }
        }
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        Ok(match u8::get(r)? {
            0 => OptionBody::LinkLayerAddress {
                address: Wire::get(r)?,
            },
            1 => OptionBody::PrefixInformation {
                prefix_len: Wire::get(r)?,
                on_link: Wire::get(r)?,
                autonomous: Wire::get(r)?,
                router_address: Wire::get(r)?,
                valid_lifetime: Wire::get(r)?,
                preferred_lifetime: Wire::get(r)?,
                prefix: Wire::get(r)?,
            },
            2 => OptionBody::RedirectedHeader {
                data_len: Wire::get(r)?,
                src: Wire::get(r)?,
                dst: Wire::get(r)?,
            },
            3 => OptionBody::Mtu { mtu: Wire::get(r)? },
            4 => OptionBody::Nonce {
                nonce: Wire::get(r)?,
            },
            5 => OptionBody::RouteInformation {
                prefix_len: Wire::get(r)?,
                preference: Wire::get(r)?,
                lifetime: Wire::get(r)?,
                prefix: Wire::get(r)?,
            },
            6 => OptionBody::Rdnss {
                lifetime: Wire::get(r)?,
                servers: Wire::get(r)?,
            },
            7 => OptionBody::Dnssl {
                lifetime: Wire::get(r)?,
                domains: Wire::get(r)?,
            },
            8 => OptionBody::Unknown {
                data: Wire::get(r)?,
            },
            _ => return Err(WireError("option body")),
        })
    }
}

impl Wire for NdBody {
    fn put(&self, w: &mut Vec<u8>) {
        match *self {
            NdBody::RouterSolicitation => w.push(0),
            NdBody::RouterAdvertisement {
                cur_hop_limit,
                managed,
                other,
                home_agent,
                preference,
                proxy,
                router_lifetime,
                reachable_time,
                retrans_timer,
            } => {
                w.push(1);
                cur_hop_limit.put(w);
                managed.put(w);
                other.put(w);
                home_agent.put(w);
                preference.put(w);
                proxy.put(w);
                router_lifetime.put(w);
                reachable_time.put(w);
                retrans_timer.put(w);
            }
            NdBody::NeighborSolicitation { target } => {
                w.push(2);
                target.put(w);
            }
            NdBody::NeighborAdvertisement {
                router,
                solicited,
                override_,
                target,
            } => {
                w.push(3);
                router.put(w);
                solicited.put(w);
                override_.put(w);
                target.put(w);
            }
            NdBody::Redirect {
                target,
                destination,
            } => {
                w.push(4);
                target.put(w);
                destination.put(w);
            }
        }
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        Ok(match u8::get(r)? {
            0 => NdBody::RouterSolicitation,
            1 => NdBody::RouterAdvertisement {
                cur_hop_limit: Wire::get(r)?,
                managed: Wire::get(r)?,
                other: Wire::get(r)?,
                home_agent: Wire::get(r)?,
                preference: Wire::get(r)?,
                proxy: Wire::get(r)?,
                router_lifetime: Wire::get(r)?,
                reachable_time: Wire::get(r)?,
                retrans_timer: Wire::get(r)?,
            },
            2 => NdBody::NeighborSolicitation {
                target: Wire::get(r)?,
            },
            3 => NdBody::NeighborAdvertisement {
                router: Wire::get(r)?,
                solicited: Wire::get(r)?,
                override_: Wire::get(r)?,
                target: Wire::get(r)?,
            },
            4 => NdBody::Redirect {
                target: Wire::get(r)?,
                destination: Wire::get(r)?,
            },
            _ => return Err(WireError("ND body")),
        })
    }
}

impl Wire for Item {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            Item::Mark { ts_ns, frame } => {
                w.push(0);
                ts_ns.put(w);
                frame.put(w);
            }
            Item::Event(Event::Packet(e)) => {
                w.push(1);
                e.put(w);
            }
            Item::Event(Event::Tunnel(e)) => {
                w.push(2);
                e.put(w);
            }
            Item::Event(Event::Fragment(e)) => {
                w.push(3);
                e.put(w);
            }
            Item::Event(Event::Malformed(e)) => {
                w.push(4);
                e.put(w);
            }
            Item::Event(Event::Nd(e)) => {
                w.push(5);
                e.put(w);
            }
            Item::Event(Event::Mld(e)) => {
                w.push(6);
                e.put(w);
            }
            Item::Event(Event::Dhcpv6(e)) => {
                w.push(7);
                e.put(w);
            }
            Item::Event(Event::ExtOptions(e)) => {
                w.push(8);
                e.put(w);
            }
            Item::Event(Event::IcmpError(e)) => {
                w.push(9);
                e.put(w);
            }
            Item::Event(Event::Dns(e)) => {
                w.push(10);
                e.put(w);
            }
        }
    }
    fn get(r: &mut Rd<'_>) -> R<Self> {
        Ok(match u8::get(r)? {
            0 => Item::Mark {
                ts_ns: Wire::get(r)?,
                frame: Wire::get(r)?,
            },
            1 => Item::Event(Event::Packet(Wire::get(r)?)),
            2 => Item::Event(Event::Tunnel(Wire::get(r)?)),
            3 => Item::Event(Event::Fragment(Wire::get(r)?)),
            4 => Item::Event(Event::Malformed(Wire::get(r)?)),
            5 => Item::Event(Event::Nd(Wire::get(r)?)),
            6 => Item::Event(Event::Mld(Wire::get(r)?)),
            7 => Item::Event(Event::Dhcpv6(Wire::get(r)?)),
            8 => Item::Event(Event::ExtOptions(Wire::get(r)?)),
            9 => Item::Event(Event::IcmpError(Wire::get(r)?)),
            10 => Item::Event(Event::Dns(Wire::get(r)?)),
            _ => return Err(WireError("item tag")),
        })
    }
}

/// Append one event to a batch.
pub fn put_event(ev: &Event, w: &mut Vec<u8>) {
    // Same tags as `Item`, without cloning the event into one.
    let tag = match ev {
        Event::Packet(_) => 1,
        Event::Tunnel(_) => 2,
        Event::Fragment(_) => 3,
        Event::Malformed(_) => 4,
        Event::Nd(_) => 5,
        Event::Mld(_) => 6,
        Event::Dhcpv6(_) => 7,
        Event::ExtOptions(_) => 8,
        Event::IcmpError(_) => 9,
        Event::Dns(_) => 10,
    };
    w.push(tag);
    match ev {
        Event::Packet(e) => e.put(w),
        Event::Tunnel(e) => e.put(w),
        Event::Fragment(e) => e.put(w),
        Event::Malformed(e) => e.put(w),
        Event::Nd(e) => e.put(w),
        Event::Mld(e) => e.put(w),
        Event::Dhcpv6(e) => e.put(w),
        Event::ExtOptions(e) => e.put(w),
        Event::IcmpError(e) => e.put(w),
        Event::Dns(e) => e.put(w),
    }
}

/// Append the time of a frame that produced no event.
pub fn put_mark(ts_ns: i64, frame: u64, w: &mut Vec<u8>) {
    Item::Mark { ts_ns, frame }.put(w);
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn mld_round_trip() {
        let ev = Event::Mld(MldMessage {
            meta: Meta {
                ts_ns: 5,
                frame: 2,
                src_mac: Some([2, 0, 0, 0, 0, 1]),
                ..Meta::default()
            },
            ip: Ipv6Header {
                src: [0xfe; 16],
                dst: [0xff; 16],
                hop_limit: 1,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 36,
                chain: Chain::default().with(0),
                upper: 58,
                fragment: None,
                tunnels: Tunnels::default(),
            },
            router_alert: true,
            icmp_type: 143,
            code: 0,
            checksum_ok: true,
            version: 2,
            max_delay: 0,
            group: [0; 16],
            s_flag: false,
            qrv: 0,
            qqic: 0,
            num_sources: 0,
            records_declared: 3,
            records_fit: 1,
            sources_total: 2,
            snapped: false,
            records: vec![MldRecord {
                rtype: 4,
                aux_len: 0,
                group: [0xff; 16],
                sources: 2,
            }],
        });
        let mut buf = Vec::new();
        put_event(&ev, &mut buf);
        let mut r = Rd::new(&buf);
        assert_eq!(Item::get(&mut r).unwrap(), Item::Event(ev));
        assert!(r.at_end());
        // A damaged batch is an error, never a panic.
        for cut in 0..buf.len() {
            assert!(Item::get(&mut Rd::new(&buf[..cut])).is_err());
        }
    }

    #[test]
    fn an_overlap_reading_survives_the_byte_form() {
        // An RA whose first 8 bytes come twice with different contents (RFC 5722).
        let ra = icmp6(&LL1, &ALLNODES, 134, &ra_body(&opt(1, &MAC1)));
        let mut forged = ra.clone();
        forged[6] = 0xFF;
        let real = fragments(&LL1, &ALLNODES, 58, &ra, 8, 3);
        let fake = fragments(&LL1, &ALLNODES, 58, &forged, 8, 3);
        let mut d = decoder();
        let mut events = Vec::new();
        for f in [&real[0], &fake[0]].into_iter().chain(&real[1..]) {
            events.extend(run(&mut d, 1, f, f.len(), S));
        }
        let nds: Vec<Event> = events
            .into_iter()
            .filter(|e| matches!(e, Event::Nd(_)))
            .collect();
        assert_eq!(nds.len(), 2);
        for ev in nds {
            let mut buf = Vec::new();
            put_event(&ev, &mut buf);
            let back = Item::get(&mut Rd::new(&buf)).unwrap();
            assert_eq!(back, Item::Event(ev));
        }
    }
}

#[cfg(test)]
mod dhcpv6_tests {
    use super::*;

    #[test]
    fn a_dhcpv6_message_round_trips() {
        let ip = Ipv6Header {
            src: [0xfe; 16],
            dst: [0xff; 16],
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 5,
            payload_len: 60,
            chain: Chain::default(),
            upper: 17,
            fragment: None,
            tunnels: Tunnels::default(),
        };
        let m = Dhcpv6Message {
            meta: Meta {
                ts_ns: 7,
                frame: 3,
                src_mac: Some([2; 6]),
                ..Meta::default()
            },
            ip,
            sport: 547,
            dport: 546,
            msg_type: 7,
            transaction_id: 0xabcdef,
            client_id: Some(vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6]),
            server_id: None,
            iaids: vec![1, 2],
            addresses: vec![[0x20; 16]],
            prefixes: vec![([0x20; 16], 56)],
            dns_servers: vec![[0x21; 16]],
            domains: vec!["example.com".into()],
            status_code: Some(2),
            hop_count: None,
            link_address: None,
            peer_address: Some([1; 16]),
            relayed_type: Some(1),
        };
        let ev = Event::Dhcpv6(m);
        let mut buf = Vec::new();
        put_event(&ev, &mut buf);
        let mut r = Rd::new(&buf);
        match Item::get(&mut r) {
            Ok(Item::Event(back)) => assert_eq!(back, ev),
            other => panic!("round trip: {other:?}"),
        }
        assert!(r.at_end());
    }
}

#[cfg(test)]
mod ext_options_tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn ext_options_round_trip() {
        let mut opts = vec![60, 1, 0x10, 4, 1, 2, 3, 4, 1, 4, b'a', b'b', b'c', b'd'];
        opts.extend([1, 0]);
        opts.extend(icmp6(&G1, &G2, 128, &[0; 4]));
        opts[0] = 58;
        let frame = eth(&ip6(&G1, &G2, 60, &opts), 0x86DD, &[]);
        let ev = decode(&frame);
        let e = ev
            .iter()
            .find(|e| matches!(e, Event::ExtOptions(_)))
            .expect("an ExtOptions event");
        let mut w = Vec::new();
        put_event(e, &mut w);
        let mut r = Rd::new(&w);
        match Item::get(&mut r).expect("decodes") {
            Item::Event(back) => assert_eq!(&back, e),
            Item::Mark { .. } => panic!("not an event"),
        }
    }
}

#[cfg(test)]
mod icmp_error_tests {
    use super::*;

    #[test]
    fn icmp_errors_and_redirected_headers_round_trip() {
        let meta = Meta {
            ts_ns: 7,
            frame: 3,
            src_mac: Some([2, 0, 0, 0, 0, 1]),
            ..Meta::default()
        };
        let ip = Ipv6Header {
            src: [0xfe; 16],
            dst: [0x20; 16],
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 5,
            payload_len: 100,
            chain: Chain::default(),
            upper: 58,
            fragment: None,
            tunnels: Tunnels::default(),
        };
        let quoted = Quoted {
            src: [1; 16],
            dst: [2; 16],
            flow_label: 0xABCDE,
            next: 17,
            sport: Some(5353),
            dport: None,
            icmp_type: None,
        };
        let events = [
            Event::IcmpError(IcmpError {
                meta,
                ip,
                icmp_type: 2,
                icmp_code: 0,
                param: 1200,
                quoted: Some(quoted),
            }),
            Event::IcmpError(IcmpError {
                meta,
                ip,
                icmp_type: 4,
                icmp_code: 1,
                param: 40,
                quoted: None,
            }),
            Event::Nd(NdMessage {
                meta,
                ip,
                icmp_type: 137,
                code: 0,
                checksum_ok: true,
                options: vec![NdOption {
                    otype: 4,
                    offset: 40,
                    body: OptionBody::RedirectedHeader {
                        data_len: 48,
                        src: Some([3; 16]),
                        dst: None,
                    },
                }],
                option_errors: vec![],
                body: NdBody::Redirect {
                    target: [4; 16],
                    destination: [5; 16],
                },
            }),
        ];
        let mut buf = Vec::new();
        for ev in &events {
            put_event(ev, &mut buf);
        }
        let mut r = Rd::new(&buf);
        for ev in &events {
            assert_eq!(Item::get(&mut r).unwrap(), Item::Event(ev.clone()));
        }
        assert!(r.at_end());
        // A cut batch is an error, never a panic.
        for n in 0..buf.len() {
            let mut r = Rd::new(&buf[..n]);
            while !r.at_end() {
                if Item::get(&mut r).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod dns_tests {
    use super::*;

    #[test]
    fn dns_messages_round_trip() {
        let meta = Meta {
            ts_ns: 9,
            frame: 4,
            ..Meta::default()
        };
        let events = [
            Event::Dns(DnsMessage {
                meta,
                src: IpAddr::V6([1; 16]),
                dst: IpAddr::V4([192, 0, 2, 53]),
                sport: 40000,
                dport: 53,
                transport: 6,
                tunnels: Tunnels::default(),
                id: 7,
                qr: true,
                opcode: 0,
                aa: true,
                rcode: 3,
                qdcount: 1,
                question: Some(DnsQuestion {
                    qname: "1.0.ip6.arpa".into(),
                    qtype: 12,
                    qclass: 1,
                }),
                ancount: 2,
                ptr_answers: vec!["mail.example.com".into(), "x\\000y".into()],
            }),
            Event::Dns(DnsMessage {
                meta,
                src: IpAddr::V4([198, 51, 100, 1]),
                dst: IpAddr::V6([2; 16]),
                sport: 53,
                dport: 5353,
                transport: 17,
                tunnels: Tunnels::default(),
                id: 0,
                qr: false,
                opcode: 4,
                aa: false,
                rcode: 0,
                qdcount: 0,
                question: None,
                ancount: 0,
                ptr_answers: vec![],
            }),
        ];
        let mut buf = Vec::new();
        for ev in &events {
            put_event(ev, &mut buf);
        }
        let mut r = Rd::new(&buf);
        for ev in &events {
            assert_eq!(Item::get(&mut r).unwrap(), Item::Event(ev.clone()));
        }
        assert!(r.at_end());
        for n in 0..buf.len() {
            let mut r = Rd::new(&buf[..n]);
            while !r.at_end() {
                if Item::get(&mut r).is_err() {
                    break;
                }
            }
        }
    }
}
