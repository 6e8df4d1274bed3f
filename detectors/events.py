"""Typed events: the only thing the decoder hands to the rest of v6sentry.

Owns the event and option classes and the small formatting helpers for the raw
address bytes they carry. Does not parse bytes (that is ``detectors.decoder``)
and does not judge anything (that is ``detectors.detections``).

Addresses stay as packed ``bytes`` (16 for IPv6, 4 for IPv4, 6 for MACs): they
compare and hash cheaply, and are formatted only when an alert is written.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


def ip_str(packed: bytes) -> str:
    """Format a packed IPv4 or IPv6 address the way Suricata's EVE does."""
    if len(packed) == 16:
        return socket.inet_ntop(socket.AF_INET6, packed)
    return socket.inet_ntop(socket.AF_INET, packed)


def mac_str(mac: bytes | None) -> str | None:
    """Lower-case colon form (EVE style); ``None`` stays ``None``."""
    return None if mac is None else mac.hex(":")


def is_link_local(addr: bytes) -> bool:
    """True for a packed IPv6 address in fe80::/10."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


@dataclass(frozen=True, slots=True)
class PacketMeta:
    """Where and when a frame was seen. One per frame, shared by its events."""

    ts_ns: int  # capture timestamp, nanoseconds since the epoch
    frame: int  # 1-based record number within its capture file
    iface: int  # pcapng interface index (0 for pcap)
    linktype: int
    wire_len: int  # original length on the wire
    src_mac: bytes | None = None
    dst_mac: bytes | None = None
    vlans: tuple[int, ...] = ()  # outermost tag first


@dataclass(frozen=True, slots=True)
class TeredoInfo:
    """What a Teredo encapsulation reveals (RFC 4380 sections 4 and 5.1.1)."""

    bubble: bool
    auth: bool  # an authentication header was present
    origin_ip: bytes | None  # de-obfuscated origin indication, if present
    origin_port: int | None
    server: bytes | None  # Teredo server IPv4, from a 2001::/32 address
    client_ip: bytes | None  # client's mapped public IPv4 (de-obfuscated)
    client_port: int | None
    cone: bool | None


@dataclass(frozen=True, slots=True)
class TunnelLayer:
    """One encapsulation the packet was found inside; ``kind`` names it.

    Kinds: ``6in4`` (IPv4 protocol 41, including 6to4 and ISATAP, which the
    tunnel detections tell apart), ``teredo``, ``ayiya``, ``6in6``, ``4in6``.
    """

    kind: str
    outer_src: bytes
    outer_dst: bytes
    outer_sport: int | None = None
    outer_dport: int | None = None
    teredo: TeredoInfo | None = None


@dataclass(frozen=True, slots=True)
class FragmentInfo:
    """Set on a packet that arrived in IPv6 fragments."""

    ident: int
    count: int  # number of fragments that made the datagram
    atomic: bool  # offset 0 and M=0 (RFC 6946): processed alone, never merged
    first_chain_complete: bool  # RFC 7112: upper-layer header inside fragment 1
    # Overlapping fragments (RFC 5722): "first" or "last", the copy of each overlapped
    # byte this reading kept (what a host ignoring RFC 5722 saw); None when no overlap.
    overlap: str | None = None


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """The IPv6 header and its walked extension-header chain."""

    src: bytes
    dst: bytes
    hop_limit: int
    traffic_class: int
    flow_label: int
    payload_len: int
    chain: tuple[int, ...]  # extension header numbers in order (0, 60, 43, 44, 51, 135, ...)
    upper: int  # protocol after the chain: 58, 6, 17, 59 (none), 50 (ESP, opaque), ...
    fragment: FragmentInfo | None = None
    tunnels: tuple[TunnelLayer, ...] = ()  # outermost first; empty = seen on the local link


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: when and where it was seen."""

    meta: PacketMeta


@dataclass(frozen=True, slots=True)
class Ipv6Packet(Event):
    """Every decoded IPv6 packet, native or tunnelled, after reassembly.

    Built only when some detection subscribes to it, so ordinary traffic costs
    no objects when nobody asks.
    """

    ip: IPv6Header
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    tcp_flags: int | None = None
    # ICMPv6 errors (types 1-4): the source of the packet the error quotes.
    quoted_src: bytes | None = None


@dataclass(frozen=True, slots=True)
class TunnelPacket(Event):
    """One decapsulation: an inner packet was found inside ``layer``."""

    layer: TunnelLayer
    inner_version: int  # 6 or 4; 0 for a tunnel message without a packet (AYIYA control)
    inner_len: int
    depth: int  # 1 for the outermost tunnel
    inner_src: bytes | None = None  # the inner IPv6 header's addresses, when there is one
    inner_dst: bytes | None = None
    inner_next: int | None = None  # the inner IPv6 header's next-header field
    inner_icmp_type: int | None = None  # when that next header is ICMPv6


@dataclass(frozen=True, slots=True)
class FragmentAnomaly(Event):
    """A fragment that must not be trusted (RFC 5722, RFC 6946, RFC 7112).

    ``kind`` is one of ``overlap`` (datagram discarded), ``atomic``,
    ``incomplete_chain``, ``timeout``, ``evicted``, ``too_many_fragments``,
    ``oversize`` or ``inconsistent_length``. ``origin_ns`` and ``origin_frame`` name the
    datagram's first fragment: for ``timeout`` and ``evicted`` (caused by the clock or by
    another datagram) the packet that started the lost datagram, else the packet itself.
    """

    kind: str
    src: bytes
    dst: bytes
    ident: int
    tunnels: tuple[TunnelLayer, ...] = ()
    origin_ns: int = 0
    origin_frame: int = 0


@dataclass(frozen=True, slots=True)
class Malformed(Event):
    """Input that could not be decoded as its headers claim.

    ``layer`` is where decoding stopped (``link``, ``ipv4``, ``ipv6``,
    ``ext``, ``icmpv6``, ``nd``, ``teredo``, ``ayiya``, ``fragment``, ``tunnel``);
    ``reason`` is a short stable token; ``src``/``dst`` are the innermost
    addresses known at that point, if any. ``proto``, ``sport``/``dport`` and
    ``icmp_type``/``icmp_code`` are the packet's flow as far as the decoder knows
    it (for a broken extension chain, the header the bytes ran out in; for a chain
    too long, what ends it, as Suricata walks it), so that the alert carries the
    same ``proto`` and Community ID as Suricata's on the same packet.
    """

    layer: str
    reason: str
    detail: str = ""
    src: bytes | None = None
    dst: bytes | None = None
    tunnels: tuple[TunnelLayer, ...] = ()
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


@dataclass(frozen=True, slots=True)
class ExtOptions(Event):
    """A packet whose Hop-by-Hop or Destination Options carry data (RFC 4942 2.1.9.5).

    Built only for such packets (``native/src/decode/ext_options.rs``): PadN content
    that is not zero, padding past the 7 bytes any alignment needs, headers of only
    padding, options of types IANA does not list, known options longer than their RFC
    allows. Byte counts are per packet, over both kinds of header; ``header`` is the
    first one (0 or 60) something was found in; ``sample`` the first smuggled bytes
    (at most 16). ``proto`` and the ports or ICMP type name the flow, as far as decoded.
    """

    ip: IPv6Header
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    header: int = 0
    options: int = 0
    unknown_options: int = 0
    padding_only: int = 0
    padn_data: int = 0
    excess_padding: int = 0
    unknown_data: int = 0
    oversize_data: int = 0
    sample: bytes = b""

    @property
    def smuggled(self) -> int:
        """Bytes carried where the RFCs put no data."""
        return self.padn_data + self.excess_padding + self.unknown_data + self.oversize_data


@dataclass(frozen=True, slots=True)
class IcmpError(Event):
    """An ICMPv6 error message (RFC 4443 section 3): Destination Unreachable (1), Packet
    Too Big (2), Time Exceeded (3) or Parameter Problem (4).

    ``param`` is the 32-bit field after the checksum: the MTU of a Packet Too Big, the
    pointer of a Parameter Problem, unused otherwise. The ``quoted_*`` fields are the
    invoking packet the error carries, as far as the quote holds it (all None when not
    even its IPv6 header was quoted): ``quoted_next`` is the protocol after walking its
    extension chain (or the header the quote ran out in), then its ports or ICMPv6 type.
    Built only when some detection observes errors.
    """

    ip: IPv6Header
    icmp_type: int
    icmp_code: int
    param: int = 0
    quoted_src: bytes | None = None
    quoted_dst: bytes | None = None
    quoted_next: int | None = None
    quoted_flow_label: int | None = None
    quoted_sport: int | None = None
    quoted_dport: int | None = None
    quoted_icmp_type: int | None = None


# --- Neighbor Discovery options (RFC 4861 section 4.6 and later RFCs) --------


@dataclass(frozen=True, slots=True)
class NDOption:
    """Base of every parsed ND option; ``type`` is the IANA option number."""

    type: int
    offset: int  # byte offset of the option within the ICMPv6 message


@dataclass(frozen=True, slots=True)
class LinkLayerAddressOption(NDOption):
    """Source (type 1) or target (type 2) link-layer address."""

    address: bytes


@dataclass(frozen=True, slots=True)
class PrefixInformationOption(NDOption):
    """Type 3, RFC 4861 section 4.6.2."""

    prefix_len: int
    on_link: bool
    autonomous: bool
    router_address: bool
    valid_lifetime: int
    preferred_lifetime: int
    prefix: bytes


@dataclass(frozen=True, slots=True)
class RedirectedHeaderOption(NDOption):
    """Type 4: the start of the redirected packet: its length, and its addresses when
    the option quotes a whole IPv6 header (RFC 4861 section 4.6.3)."""

    data_len: int
    src: bytes | None = None
    dst: bytes | None = None


@dataclass(frozen=True, slots=True)
class MTUOption(NDOption):
    """Type 5."""

    mtu: int


@dataclass(frozen=True, slots=True)
class NonceOption(NDOption):
    """Type 14, RFC 3971 section 5.3.2 (used by DAD, RFC 7527)."""

    nonce: bytes


@dataclass(frozen=True, slots=True)
class RouteInformationOption(NDOption):
    """Type 24, RFC 4191 section 2.3. ``prefix`` is padded to 16 bytes."""

    prefix_len: int
    preference: int  # -1 low, 0 medium, 1 high, 2 reserved (10b)
    lifetime: int
    prefix: bytes


@dataclass(frozen=True, slots=True)
class RDNSSOption(NDOption):
    """Type 25, RFC 8106 section 5.1."""

    lifetime: int
    servers: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class DNSSLOption(NDOption):
    """Type 31, RFC 8106 section 5.2."""

    lifetime: int
    domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnknownOption(NDOption):
    """Any option type v6sentry does not interpret; kept whole."""

    data: bytes


@dataclass(frozen=True, slots=True)
class OptionError:
    """A malformed ND option. Parsing stops at ``zero_length`` and ``truncated``."""

    offset: int
    type: int
    length: int  # the option's length field, in units of 8 octets
    reason: str  # zero_length | truncated | bad_length | bad_value


# --- Neighbor Discovery messages --------------------------------------------


@dataclass(frozen=True, slots=True)
class NDMessage(Event):
    """Common part of RS, RA, NS, NA and Redirect."""

    ip: IPv6Header
    icmp_type: int
    code: int
    checksum_ok: bool
    options: tuple[NDOption, ...] = ()
    option_errors: tuple[OptionError, ...] = ()

    def _lla(self, otype: int) -> bytes | None:
        for opt in self.options:
            if opt.type == otype and isinstance(opt, LinkLayerAddressOption):
                return opt.address
        return None

    def source_lla(self) -> bytes | None:
        """The source link-layer address option's value, if present."""
        return self._lla(1)

    def target_lla(self) -> bytes | None:
        """The target link-layer address option's value, if present (NA, Redirect)."""
        return self._lla(2)

    def sender_mac(self) -> bytes | None:
        """The Ethernet source, or the source link-layer option where the link has none."""
        return self.meta.src_mac if self.meta.src_mac is not None else self.source_lla()


@dataclass(frozen=True, slots=True)
class RouterSolicitation(NDMessage):
    """ICMPv6 type 133."""


@dataclass(frozen=True, slots=True)
class RouterAdvertisement(NDMessage):
    """ICMPv6 type 134, RFC 4861 section 4.2 with RFC 4191/5175/8425 flag bits."""

    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    home_agent: bool = False
    preference: int = 0  # -1 low, 0 medium, 1 high, 2 reserved
    proxy: bool = False
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0


@dataclass(frozen=True, slots=True)
class NeighborSolicitation(NDMessage):
    """ICMPv6 type 135."""

    target: bytes = b""


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement(NDMessage):
    """ICMPv6 type 136."""

    router: bool = False
    solicited: bool = False
    override: bool = False
    target: bytes = b""


@dataclass(frozen=True, slots=True)
class Redirect(NDMessage):
    """ICMPv6 type 137."""

    target: bytes = b""
    destination: bytes = b""


@dataclass(frozen=True, slots=True)
class MldRecord:
    """One MLDv2 Multicast Address Record (RFC 3810 5.2.4), without its source list."""

    type: int
    aux_len: int  # auxiliary data, in 32-bit words
    group: bytes
    sources: int


@dataclass(frozen=True, slots=True)
class MldMessage(Event):
    """MLD Query (130), v1 Report (131), Done (132), v2 Report (143) (RFC 2710, RFC 3810),
    or Multicast Router Discovery (151-153, RFC 4286). Built only when a detection
    observes MLD."""

    ip: IPv6Header
    router_alert: bool  # a Hop-by-Hop Router Alert option (RFC 2711) came with it
    icmp_type: int
    code: int
    checksum_ok: bool
    version: int  # 1 or 2 (a query of 28 bytes or more is MLDv2)
    max_delay: int  # Maximum Response Code/Delay; the MRD advertisement interval
    group: bytes  # Multicast Address field (zero for a v2 report and MRD)
    s_flag: bool = False  # MLDv2 query: Suppress Router-Side Processing
    qrv: int = 0
    qqic: int = 0
    num_sources: int = 0
    records_declared: int = 0  # MLDv2 report: Nr of Mcast Address Records field
    records_fit: int = 0  # the records that fit in the message bytes
    sources_total: int = 0
    snapped: bool = False  # the capture cut it: records missing are not the sender's doing
    records: tuple[MldRecord, ...] = ()  # the first records that fit (bounded)


ND_CLASSES: dict[int, type[NDMessage]] = {
    133: RouterSolicitation,
    134: RouterAdvertisement,
    135: NeighborSolicitation,
    136: NeighborAdvertisement,
    137: Redirect,
}


# DHCPv6 message types (RFC 8415 7.3) v6sentry names.
DHCPV6_TYPES: dict[int, str] = {
    1: "solicit",
    2: "advertise",
    3: "request",
    4: "confirm",
    5: "renew",
    6: "rebind",
    7: "reply",
    8: "release",
    9: "decline",
    10: "reconfigure",
    11: "information-request",
    12: "relay-forward",
    13: "relay-reply",
}


@dataclass(frozen=True, slots=True)
class Dhcpv6Message(Event):
    """A DHCPv6 message (RFC 8415) on UDP 546/547 and the options detections read.

    Built only when some detection observes it. Lists hold at most the first 16 of
    each; DUIDs are raw bytes. A relay message (types 12, 13) has no transaction id
    but its hop count, link and peer addresses and the relayed message's type.
    """

    ip: IPv6Header
    sport: int
    dport: int
    msg_type: int
    transaction_id: int = 0
    client_id: bytes | None = None
    server_id: bytes | None = None
    iaids: tuple[int, ...] = ()
    addresses: tuple[bytes, ...] = ()
    prefixes: tuple[tuple[bytes, int], ...] = ()
    dns_servers: tuple[bytes, ...] = ()
    domains: tuple[str, ...] = ()
    status_code: int | None = None
    hop_count: int | None = None
    link_address: bytes | None = None
    peer_address: bytes | None = None
    relayed_type: int | None = None

    @property
    def type_name(self) -> str:
        return DHCPV6_TYPES.get(self.msg_type, str(self.msg_type))


@dataclass(frozen=True, slots=True)
class DnsMessage(Event):
    """A DNS message (RFC 1035 section 4.1) on UDP or TCP port 53 (either port), over
    IPv6 or IPv4 (decoded in ``native/src/decode/dns.rs``).

    ``src``/``dst`` are 16 or 4 bytes; ``transport`` is 17 (UDP) or 6 (TCP). Only the
    first question is kept (``qname`` lower-case, no final dot; None without one);
    ``ptr_answers`` are the PTR records' target names among the answers (at most 8).
    Built only when some detection observes DNS.
    """

    src: bytes
    dst: bytes
    sport: int
    dport: int
    transport: int
    tunnels: tuple[TunnelLayer, ...] = ()
    id: int = 0
    qr: bool = False
    opcode: int = 0
    aa: bool = False
    rcode: int = 0
    qdcount: int = 0
    qname: str | None = None
    qtype: int | None = None
    qclass: int | None = None
    ancount: int = 0
    ptr_answers: tuple[str, ...] = ()


@dataclass(slots=True)
class DecodeStats:
    """Counters the decoder keeps; the replay summary prints them."""

    packets: int = 0
    bytes: int = 0
    ipv6: int = 0
    ipv4: int = 0
    nd: int = 0
    malformed: int = 0
    snapped: int = 0  # frames cut by the capture's snaplen: not the sender's fault
    unsupported_link: int = 0
    other: int = 0  # frames that are neither IPv4 nor IPv6 (ARP, LLDP, STP...)
    fragments: int = 0
    reassembled: int = 0
    ipv4_fragments_skipped: int = 0  # protocol-41/UDP IPv4 fragments: not reassembled
    malformed_reasons: dict[str, int] = field(default_factory=dict)
    fragment_anomalies: dict[str, int] = field(default_factory=dict)
    tunnels: dict[str, int] = field(default_factory=dict)
    link_types: dict[int, int] = field(default_factory=dict)
    dns_tcp_partial: int = 0  # DNS-over-TCP messages continuing past their segment
    dns_tcp_continuation: int = 0  # DNS-over-TCP segments continuing a message: skipped
    dns_tcp_evicted: int = 0  # streams dropped from the DNS-over-TCP boundary table
