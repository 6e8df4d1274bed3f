//! Typed decoder events: plain Rust mirrors of `detectors/events.py`, and `DecodeStats`.
//!
//! Owns the data the decoder hands on, nothing else: no parsing, no Python. Everything
//! here is plain data so that per-packet reducers can later run on it natively; `topy`
//! turns it into the Python dataclasses. Variable parts that are short and bounded by
//! `DecoderLimits` (VLAN tags, extension chain, tunnel stack) are fixed-capacity inline
//! arrays, so an event never allocates unless it carries ND options or a formatted detail.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

/// Most VLAN tags kept (the policy allows `max_vlan_tags` up to 16).
pub const MAX_VLANS: usize = 16;
/// Most nested tunnels kept (the policy allows `max_tunnel_depth` up to 8).
pub const MAX_TUNNELS: usize = 8;
/// Longest extension-header chain kept (the policy allows `max_ext_headers` up to 64).
pub const MAX_CHAIN: usize = 64;

/// A packed IPv4 or IPv6 address (Python: 4 or 16 `bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpAddr {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Default for IpAddr {
    fn default() -> Self {
        IpAddr::V4([0; 4])
    }
}

impl IpAddr {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => a,
        }
    }
}

/// A fixed-capacity list; equality and hashing look only at the used part.
macro_rules! inline_list {
    ($name:ident, $item:ty, $cap:expr) => {
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            len: u8,
            items: [$item; $cap],
        }

        impl Default for $name {
            #[inline]
            fn default() -> Self {
                $name {
                    len: 0,
                    items: [<$item>::default(); $cap],
                }
            }
        }

        impl $name {
            pub const CAPACITY: usize = $cap;

            pub fn as_slice(&self) -> &[$item] {
                &self.items[..self.len as usize]
            }

            pub fn len(&self) -> usize {
                self.len as usize
            }

            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            /// Appends; callers bound the length by a clamped limit, so a full list
            /// only drops (never panics).
            pub fn push(&mut self, item: $item) {
                if (self.len as usize) < $cap {
                    self.items[self.len as usize] = item;
                    self.len += 1;
                }
            }

            /// A copy with `item` appended.
            pub fn with(&self, item: $item) -> Self {
                let mut out = *self;
                out.push(item);
                out
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_slice() == other.as_slice()
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_slice().hash(state)
            }
        }
    };
}

inline_list!(Vlans, u16, MAX_VLANS);
inline_list!(Chain, u8, MAX_CHAIN);
inline_list!(Tunnels, TunnelLayer, MAX_TUNNELS);

/// Where and when a frame was seen (Python `PacketMeta`). One per frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub ts_ns: i64,
    pub frame: u64,
    pub iface: u32,
    pub linktype: u32,
    pub wire_len: u32,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    pub vlans: Vlans,
}

/// What a Teredo encapsulation reveals (RFC 4380 sections 4 and 5.1.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TeredoInfo {
    pub bubble: bool,
    pub auth: bool,
    pub origin_ip: Option<[u8; 4]>,
    pub origin_port: Option<u16>,
    pub server: Option<[u8; 4]>,
    pub client_ip: Option<[u8; 4]>,
    pub client_port: Option<u16>,
    pub cone: Option<bool>,
}

/// The encapsulation kinds (`TunnelLayer.kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    #[default]
    SixInFour,
    Teredo,
    Ayiya,
    SixInSix,
    FourInSix,
}

impl TunnelKind {
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::SixInFour => "6in4",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Ayiya => "ayiya",
            TunnelKind::SixInSix => "6in6",
            TunnelKind::FourInSix => "4in6",
        }
    }
}

/// One encapsulation a packet was found inside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelLayer {
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    pub outer_sport: Option<u16>,
    pub outer_dport: Option<u16>,
    pub teredo: Option<TeredoInfo>,
}

/// Set on a packet that arrived in IPv6 fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentInfo {
    pub ident: u32,
    pub count: u32,
    pub atomic: bool,
    pub first_chain_complete: bool,
    /// Overlapping fragments (RFC 5722): which reading this is, 1 the first copy of
    /// each byte, 2 the last (`reassembly::VARIANT_*`); 0 for a normal datagram.
    pub overlap: u8,
}

/// The IPv6 header and its walked extension-header chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    pub chain: Chain,
    pub upper: u8,
    pub fragment: Option<FragmentInfo>,
    pub tunnels: Tunnels,
}

/// Every decoded IPv6 packet, when someone subscribed to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Packet {
    pub meta: Meta,
    pub ip: Ipv6Header,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub tcp_flags: Option<u8>,
    pub quoted_src: Option<[u8; 16]>,
}

/// One decapsulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPacket {
    pub meta: Meta,
    pub layer: TunnelLayer,
    /// 6 or 4; 0 for a tunnel message without a packet (AYIYA control).
    pub inner_version: u8,
    pub inner_len: u32,
    pub depth: u8,
    pub inner_src: Option<[u8; 16]>,
    pub inner_dst: Option<[u8; 16]>,
    pub inner_next: Option<u8>,
    pub inner_icmp_type: Option<u8>,
}

/// `FragmentAnomaly.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FragKind {
    Overlap,
    Atomic,
    IncompleteChain,
    Timeout,
    Evicted,
    TooManyFragments,
    Oversize,
    InconsistentLength,
}

impl FragKind {
    pub fn name(self) -> &'static str {
        match self {
            FragKind::Overlap => "overlap",
            FragKind::Atomic => "atomic",
            FragKind::IncompleteChain => "incomplete_chain",
            FragKind::Timeout => "timeout",
            FragKind::Evicted => "evicted",
            FragKind::TooManyFragments => "too_many_fragments",
            FragKind::Oversize => "oversize",
            FragKind::InconsistentLength => "inconsistent_length",
        }
    }
}

/// A fragment that must not be trusted (RFC 5722, 6946, 7112).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentAnomaly {
    pub meta: Meta,
    pub kind: FragKind,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ident: u32,
    pub tunnels: Tunnels,
    /// The datagram's first fragment (time, record number): the packet itself for the
    /// kinds judged on arrival; for `timeout` and `evicted`, which the clock or another
    /// datagram causes, the packet that started the lost datagram.
    pub origin_ns: i64,
    pub origin_frame: u64,
}

/// Input that could not be decoded as its headers claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub meta: Meta,
    pub layer: &'static str,
    pub reason: &'static str,
    /// Mostly a constant; formatted only when it quotes a value.
    pub detail: Cow<'static, str>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub tunnels: Tunnels,
    /// The flow the packet belonged to, as far as the decoder got: alerts hash it into
    /// their Community ID, so it must be Suricata's tuple for the same packet.
    pub upper: Upper,
}

/// The upper-layer protocol of a malformed packet and its ports or ICMP type and code,
/// each as far as the decoder knows it (`None`: never reached, or cut off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upper {
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
}

/// The content of one ND option, by type (RFC 4861 4.6, 4191, 8106, 3971).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionBody {
    /// Types 1 and 2.
    LinkLayerAddress { address: Vec<u8> },
    /// Type 3.
    PrefixInformation {
        prefix_len: u8,
        on_link: bool,
        autonomous: bool,
        router_address: bool,
        valid_lifetime: u32,
        preferred_lifetime: u32,
        prefix: [u8; 16],
    },
    /// Type 4: the length of the quoted packet, and its addresses when the quote
    /// holds a whole IPv6 header (`icmp_error::quoted`).
    RedirectedHeader {
        data_len: u32,
        src: Option<[u8; 16]>,
        dst: Option<[u8; 16]>,
    },
    /// Type 5.
    Mtu { mtu: u32 },
    /// Type 14.
    Nonce { nonce: Vec<u8> },
    /// Type 24; `prefix` padded to 16 bytes.
    RouteInformation {
        prefix_len: u8,
        preference: i8,
        lifetime: u32,
        prefix: [u8; 16],
    },
    /// Type 25.
    Rdnss {
        lifetime: u32,
        servers: Vec<[u8; 16]>,
    },
    /// Type 31.
    Dnssl { lifetime: u32, domains: Vec<String> },
    /// Any type v6sentry does not interpret, kept whole.
    Unknown { data: Vec<u8> },
}

/// One parsed ND option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdOption {
    pub otype: u8,
    /// Byte offset within the ICMPv6 message.
    pub offset: u32,
    pub body: OptionBody,
}

/// `OptionError.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OptionReason {
    BadLength,
    BadValue,
    Truncated,
    ZeroLength,
}

impl OptionReason {
    pub fn name(self) -> &'static str {
        match self {
            OptionReason::ZeroLength => "zero_length",
            OptionReason::Truncated => "truncated",
            OptionReason::BadLength => "bad_length",
            OptionReason::BadValue => "bad_value",
        }
    }
}

/// A malformed ND option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionError {
    pub offset: u32,
    pub otype: u8,
    /// The option's length field, in units of 8 octets.
    pub length: u8,
    pub reason: OptionReason,
}

/// The message-specific part of an ND message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdBody {
    RouterSolicitation,
    RouterAdvertisement {
        cur_hop_limit: u8,
        managed: bool,
        other: bool,
        home_agent: bool,
        preference: i8,
        proxy: bool,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_timer: u32,
    },
    NeighborSolicitation {
        target: [u8; 16],
    },
    NeighborAdvertisement {
        router: bool,
        solicited: bool,
        override_: bool,
        target: [u8; 16],
    },
    Redirect {
        target: [u8; 16],
        destination: [u8; 16],
    },
}

/// RS, RA, NS, NA or Redirect (ICMPv6 133-137).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdMessage {
    pub meta: Meta,
    pub ip: Ipv6Header,
    pub icmp_type: u8,
    pub code: u8,
    pub checksum_ok: bool,
    pub options: Vec<NdOption>,
    pub option_errors: Vec<OptionError>,
    pub body: NdBody,
}

/// Most MLDv2 multicast address records an `MldMessage` keeps (the counts go on).
pub const MAX_MLD_RECORDS: usize = 64;

/// One MLDv2 Multicast Address Record (RFC 3810 5.2.4), without its source list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MldRecord {
    pub rtype: u8,
    /// Auxiliary data length, in 32-bit words.
    pub aux_len: u8,
    pub group: [u8; 16],
    pub sources: u16,
}

/// An MLD message: Query (130), v1 Report (131), Done (132), v2 Report (143) (RFC
/// 2710, RFC 3810), or a Multicast Router Discovery message (151-153, RFC 4286).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MldMessage {
    pub meta: Meta,
    pub ip: Ipv6Header,
    /// A Hop-by-Hop Router Alert option (RFC 2711) came with it.
    pub router_alert: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub checksum_ok: bool,
    /// 1 or 2: a query is MLDv2 when it has 28 or more bytes (RFC 3810 8.1).
    pub version: u8,
    /// Maximum Response Code (Delay for MLDv1); MRD advertisement interval for 151.
    pub max_delay: u16,
    /// The Multicast Address field (unspecified for a general query; zero for a v2
    /// report and MRD).
    pub group: [u8; 16],
    /// MLDv2 query: Suppress Router-Side Processing flag, QRV, QQIC, Number of Sources.
    pub s_flag: bool,
    pub qrv: u8,
    pub qqic: u8,
    pub num_sources: u16,
    /// MLDv2 report: the Number of Multicast Address Records field, the records that
    /// fit in the message bytes, and the sources they list.
    pub records_declared: u16,
    pub records_fit: u16,
    pub sources_total: u32,
    /// The capture cut the message (snaplen): records that do not fit are not the
    /// sender's doing.
    pub snapped: bool,
    /// The first `MAX_MLD_RECORDS` records that fit.
    pub records: Vec<MldRecord>,
}

/// A DHCPv6 message (RFC 8415) on UDP 546/547: its header and the options the
/// detections read. Lists are bounded by `decode::dhcpv6` (the first few of each kept).
/// A relay message (Relay-forw 12, Relay-repl 13) has no transaction id; its hop count,
/// link and peer addresses and the relayed message's type are kept instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dhcpv6Message {
    pub meta: Meta,
    pub ip: Ipv6Header,
    pub sport: u16,
    pub dport: u16,
    pub msg_type: u8,
    /// 24 bits; 0 for relay messages.
    pub transaction_id: u32,
    /// Client Identifier (option 1): the client's DUID.
    pub client_id: Option<Vec<u8>>,
    /// Server Identifier (option 2): the server's DUID.
    pub server_id: Option<Vec<u8>>,
    /// IAIDs of the IA_NA options (3).
    pub iaids: Vec<u32>,
    /// IA Addresses (option 5) inside the IA_NAs.
    pub addresses: Vec<[u8; 16]>,
    /// IA Prefixes (option 26) inside the IA_PDs (25): (prefix, length).
    pub prefixes: Vec<([u8; 16], u8)>,
    /// DNS Recursive Name Servers (option 23, RFC 3646).
    pub dns_servers: Vec<[u8; 16]>,
    /// Domain Search List (option 24), names without the final dot, lower-case.
    pub domains: Vec<String>,
    /// Status Code (option 13) at the top level or inside an IA.
    pub status_code: Option<u16>,
    pub hop_count: Option<u8>,
    pub link_address: Option<[u8; 16]>,
    pub peer_address: Option<[u8; 16]>,
    /// Type of the message inside a relay's Relay Message option (9).
    pub relayed_type: Option<u8>,
}

/// Bytes of the smuggled-data sample an `ExtOptions` event keeps.
pub const OPTIONS_SAMPLE: usize = 16;

/// What the options of a packet's Hop-by-Hop and Destination Options headers hold
/// beyond what RFC 8200 4.2 needs (see `ext_options`). Every field is bounded and
/// inline: the summary never allocates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionsSummary {
    /// The first header (0 Hop-by-Hop, 60 Destination Options) something was found in.
    pub header: u8,
    /// Options walked in both kinds of header, padding included.
    pub options: u16,
    /// Options of a type the IANA registry does not list (or deprecated, experimental).
    pub unknown_options: u16,
    /// Headers holding nothing but padding (they align nothing).
    pub padding_only: u8,
    /// Bytes of PadN content that are not zero.
    pub padn_data: u16,
    /// Padding bytes past the 7 in a row that any alignment can need.
    pub excess_padding: u16,
    /// Data bytes of unknown options.
    pub unknown_data: u16,
    /// Bytes of known options beyond the length their RFC gives them.
    pub oversize_data: u16,
    /// The first smuggled bytes (`sample_len` of them).
    pub sample_len: u8,
    pub sample: [u8; OPTIONS_SAMPLE],
}

impl OptionsSummary {
    /// Bytes that carry data where the RFCs put none.
    pub fn smuggled(&self) -> u32 {
        u32::from(self.padn_data)
            + u32::from(self.excess_padding)
            + u32::from(self.unknown_data)
            + u32::from(self.oversize_data)
    }

    /// Anything worth an event.
    pub fn suspicious(&self) -> bool {
        self.smuggled() > 0 || self.unknown_options > 0 || self.padding_only > 0
    }

    /// The sample's bytes.
    pub fn sample(&self) -> &[u8] {
        &self.sample[..self.sample_len as usize]
    }
}

/// A packet whose extension-header options carry something (a covert channel, RFC
/// 4942 2.1.9.5). Built only for such packets and only when someone observes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtOptions {
    pub meta: Meta,
    pub ip: Ipv6Header,
    /// The flow the options rode in (protocol, ports or ICMP type), as far as decoded.
    pub upper: Upper,
    pub summary: OptionsSummary,
}

/// The packet an ICMPv6 error (or a Redirect's Redirected Header) quotes, as far as
/// the quote holds it (RFC 4443 2.4 (c): as much of the invoking packet as fits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quoted {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub flow_label: u32,
    /// The header after walking the quoted extension chain: the upper-layer protocol,
    /// or the extension header the quote ran out in.
    pub next: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
}

/// An ICMPv6 error message (types 1-4, RFC 4443 section 3), when someone observes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub meta: Meta,
    pub ip: Ipv6Header,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The 32-bit field after the checksum: the MTU of a Packet Too Big, the pointer of
    /// a Parameter Problem, unused (zero) otherwise.
    pub param: u32,
    /// The invoking packet, when at least its IPv6 header was quoted.
    pub quoted: Option<Quoted>,
}

/// The first question of a DNS message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsQuestion {
    /// Lower-case, labels joined by dots, no final dot (`\DDD` for odd bytes).
    pub qname: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// A DNS message (RFC 1035 4.1) on UDP or TCP port 53, over IPv6 or IPv4 (`decode::dns`):
/// its header, first question and PTR answer names (bounded by `dns::MAX_PTR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage {
    pub meta: Meta,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// 17 (UDP) or 6 (TCP).
    pub transport: u8,
    pub tunnels: Tunnels,
    pub id: u16,
    pub qr: bool,
    pub opcode: u8,
    pub aa: bool,
    pub rcode: u8,
    pub qdcount: u16,
    pub question: Option<DnsQuestion>,
    pub ancount: u16,
    /// The PTR records' target names among the answers, lower-case.
    pub ptr_answers: Vec<String>,
}

/// Everything the decoder emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Packet(Ipv6Packet),
    Tunnel(TunnelPacket),
    Fragment(FragmentAnomaly),
    Malformed(Malformed),
    Nd(NdMessage),
    Mld(MldMessage),
    Dhcpv6(Dhcpv6Message),
    ExtOptions(ExtOptions),
    IcmpError(IcmpError),
    Dns(DnsMessage),
}

impl Event {
    pub fn meta(&self) -> &Meta {
        match self {
            Event::Packet(e) => &e.meta,
            Event::Tunnel(e) => &e.meta,
            Event::Fragment(e) => &e.meta,
            Event::Malformed(e) => &e.meta,
            Event::Nd(e) => &e.meta,
            Event::Mld(e) => &e.meta,
            Event::Dhcpv6(e) => &e.meta,
            Event::ExtOptions(e) => &e.meta,
            Event::IcmpError(e) => &e.meta,
            Event::Dns(e) => &e.meta,
        }
    }
}

/// A counter keyed by a few distinct values, in first-seen order (like the Python
/// dicts it becomes); a linear scan beats hashing at this size and never allocates
/// once every key has been seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts<K>(pub Vec<(K, u64)>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts(Vec::new())
    }
}

impl<K: PartialEq + Copy> Counts<K> {
    pub fn add(&mut self, key: K) {
        for (k, n) in self.0.iter_mut() {
            if *k == key {
                *n += 1;
                return;
            }
        }
        self.0.push((key, 1));
    }

    pub fn get(&self, key: K) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, n)| *n)
    }
}

/// Counters the decoder keeps (Python `DecodeStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub packets: u64,
    pub bytes: u64,
    pub ipv6: u64,
    pub ipv4: u64,
    pub nd: u64,
    pub malformed: u64,
    pub snapped: u64,
    pub unsupported_link: u64,
    pub other: u64,
    pub fragments: u64,
    pub reassembled: u64,
    pub ipv4_fragments_skipped: u64,
    /// Keyed by (layer, reason); Python joins them as "layer.reason".
    pub malformed_reasons: Counts<(&'static str, &'static str)>,
    pub fragment_anomalies: Counts<FragKind>,
    pub tunnels: Counts<TunnelKind>,
    pub link_types: Counts<u32>,
    /// DNS-over-TCP messages that continue past their segment (not reassembled).
    pub dns_tcp_partial: u64,
    /// DNS-over-TCP segments (or their heads) that continue a message rather than start
    /// one: skipped, never `Malformed` (`dns::TcpTrack`, `dns::plausible_start`).
    pub dns_tcp_continuation: u64,
    /// Streams dropped from the DNS-over-TCP boundary table by a collision.
    pub dns_tcp_evicted: u64,
}
