"""Decoder unit tests on hand-built frames, one layer feature at a time.

Owns the decoder's field-level contract: link types and VLAN tags, the
extension-header walk and its bound, each ND message and option (good and
malformed), reassembly (order, overlap, duplicates, atomic, timeout, caps),
tunnels (6in4, Teredo with auth/origin headers on and off port 3544, AYIYA),
and the snaplen rule. Whole-capture behaviour is in ``test_pcaps.py``.
"""

from __future__ import annotations

import struct

from detectors.decoder import Decoder, DecoderLimits, ReassemblyLimits, icmpv6_checksum_ok
from detectors.events import (
    DNSSLOption,
    Event,
    ExtOptions,
    FragmentAnomaly,
    IcmpError,
    Ipv6Packet,
    LinkLayerAddressOption,
    Malformed,
    MldMessage,
    MTUOption,
    NeighborAdvertisement,
    NeighborSolicitation,
    NonceOption,
    PrefixInformationOption,
    RDNSSOption,
    Redirect,
    RedirectedHeaderOption,
    RouteInformationOption,
    RouterAdvertisement,
    RouterSolicitation,
    TunnelPacket,
    UnknownOption,
)
from pcaps import generate as gen
from pcaps.generate import icmp6, ip6, opt

LL1 = bytes.fromhex("fe800000000000000000000000000001")
LL2 = bytes.fromhex("fe800000000000000000000000000002")
ALLNODES = bytes.fromhex("ff020000000000000000000000000001")
G1 = bytes.fromhex("20010db8000100000000000000000010")
G2 = bytes.fromhex("20010db8000100000000000000000020")
MAC1 = bytes.fromhex("020000000101")
MAC2 = bytes.fromhex("020000000202")
S = 1_000_000_000


def eth(
    payload: bytes,
    etype: int = 0x86DD,
    src: bytes = MAC1,
    vlans: tuple[int, ...] = (),
    tpids: tuple[int, ...] = (),
) -> bytes:
    tags = list(zip(tpids or (0x8100,) * len(vlans), vlans, strict=True))
    return gen.eth(payload, src, b"\x33\x33\x00\x00\x00\x01", etype, tags)


def ra_body(options: bytes = b"", flags: int = 0x08, lifetime: int = 1800) -> bytes:
    return struct.pack("!BBHII", 64, flags, lifetime, 0, 0) + options


def decode(
    frame: bytes,
    linktype: int = 1,
    wire: int | None = None,
    ts: int = S,
    decoder: Decoder | None = None,
) -> list[Event]:
    d = decoder or Decoder(want_packets=True, want_tunnels=True)
    return d.decode(ts, 1, 0, linktype, frame, len(frame) if wire is None else wire)


def only(events: list[Event], cls: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, cls)]


# -- link layers ---------------------------------------------------------------


def test_ethernet_vlan_and_qinq() -> None:
    packet = ip6(LL1, ALLNODES, 58, icmp6(LL1, ALLNODES, 134, ra_body()))
    for vlans, tpids in (((), ()), ((10,), (0x8100,)), ((100, 20), (0x88A8, 0x8100))):
        (ra,) = only(decode(eth(packet, vlans=vlans, tpids=tpids)), RouterAdvertisement)
        assert ra.meta.vlans == vlans
        assert ra.meta.src_mac == MAC1


def test_sll_sll2_raw_and_loopback() -> None:
    packet = ip6(LL1, ALLNODES, 58, icmp6(LL1, ALLNODES, 134, ra_body()))
    sll = struct.pack("!HHH8sH", 0, 1, 6, MAC1 + b"\0\0", 0x86DD) + packet
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, MAC1 + b"\0\0") + packet
    for frame, linktype, mac in (
        (sll, 113, MAC1),
        (sll2, 276, MAC1),
        (packet, 101, None),
        (packet, 229, None),
        (struct.pack("<I", 24) + packet, 0, None),
        (struct.pack("!I", 30) + packet, 108, None),
    ):
        (ra,) = only(decode(frame, linktype), RouterAdvertisement)
        assert isinstance(ra, RouterAdvertisement)
        assert ra.meta.src_mac == mac, linktype
        assert ra.ip.src == LL1


def test_unsupported_link_is_counted_not_malformed() -> None:
    d = Decoder()
    assert d.decode(S, 1, 0, 147, b"\x00" * 40, 40) == []
    assert d.stats.unsupported_link == 1 and d.stats.malformed == 0


# -- Neighbor Discovery --------------------------------------------------------


def test_every_nd_message_and_option() -> None:
    pio = struct.pack("!BBII4x16s", 64, 0xC0, 86400, 14400, G1[:8] + bytes(8))
    rio1 = struct.pack("!BBI", 0, 0x08, 600)  # ::/0 high, length 1
    rio2 = struct.pack("!BBI8s", 48, 0x18, 600, G1[:6] + b"\0\0")  # low preference
    rdnss = struct.pack("!HI", 0, 3600) + G1 + G2
    dnssl_names = b"\x07example\x03com\x00\x04corp\x07example\x00"
    dnssl = struct.pack("!HI", 0, 3600) + dnssl_names + bytes(-(len(dnssl_names) + 8) % 8)
    options = (
        opt(1, MAC1)
        + opt(3, pio)
        + opt(5, struct.pack("!HI", 0, 1500))
        + opt(24, rio1)
        + opt(24, rio2)
        + opt(25, rdnss)
        + opt(31, dnssl)
        + opt(200, bytes(6))
    )
    (ra,) = only(
        decode(
            eth(ip6(LL1, ALLNODES, 58, icmp6(LL1, ALLNODES, 134, ra_body(options, flags=0xC8))))
        ),
        RouterAdvertisement,
    )
    assert isinstance(ra, RouterAdvertisement)
    assert ra.checksum_ok and not ra.option_errors
    assert ra.managed and ra.other and ra.preference == 1 and ra.router_lifetime == 1800
    kinds = [type(o) for o in ra.options]
    assert kinds == [
        LinkLayerAddressOption,
        PrefixInformationOption,
        MTUOption,
        RouteInformationOption,
        RouteInformationOption,
        RDNSSOption,
        DNSSLOption,
        UnknownOption,
    ]
    pi = ra.options[1]
    assert isinstance(pi, PrefixInformationOption)
    assert pi.prefix_len == 64 and pi.on_link and pi.autonomous and pi.valid_lifetime == 86400
    r1, r2 = ra.options[3], ra.options[4]
    assert isinstance(r1, RouteInformationOption) and isinstance(r2, RouteInformationOption)
    assert (r1.prefix_len, r1.preference) == (0, 1)
    assert (r2.prefix_len, r2.preference, r2.prefix[:6]) == (48, -1, G1[:6])
    rd = ra.options[5]
    assert isinstance(rd, RDNSSOption) and rd.servers == (G1, G2)
    ds = ra.options[6]
    assert isinstance(ds, DNSSLOption) and ds.domains == ("example.com", "corp.example")
    assert ra.source_lla() == MAC1

    rs = icmp6(LL2, ALLNODES, 133, bytes(4) + opt(1, MAC2))
    ns = icmp6(bytes(16), ALLNODES, 135, bytes(4) + G1 + opt(14, bytes(6)))
    na = icmp6(G1, LL2, 136, bytes([0xE0, 0, 0, 0]) + G1 + opt(2, MAC1))
    rd_msg = icmp6(LL1, G1, 137, bytes(4) + LL1 + G2 + opt(2, MAC1) + opt(4, bytes(14)))
    events = [
        e
        for m, s in ((rs, LL2), (ns, bytes(16)), (na, G1), (rd_msg, LL1))
        for e in decode(eth(ip6(s, ALLNODES, 58, m)))
    ]
    rs_e, ns_e, na_e, rd_e = [e for e in events if not isinstance(e, Ipv6Packet)]
    assert isinstance(rs_e, RouterSolicitation) and rs_e.source_lla() == MAC2
    assert isinstance(ns_e, NeighborSolicitation) and ns_e.target == G1
    assert isinstance(ns_e.options[0], NonceOption)
    assert isinstance(na_e, NeighborAdvertisement) and na_e.router and na_e.solicited
    assert na_e.override and na_e.target == G1
    assert isinstance(rd_e, Redirect) and rd_e.target == LL1 and rd_e.destination == G2
    assert isinstance(rd_e.options[1], RedirectedHeaderOption)
    assert (rd_e.options[1].src, rd_e.options[1].dst) == (None, None)  # no IPv6 header quoted


def test_redirected_header_and_icmp_errors_name_the_quoted_packet() -> None:
    # A Redirect quoting host G1's UDP packet to G2 (RFC 4861 4.6.3: 6 reserved bytes first).
    quoted = ip6(G1, G2, 17, struct.pack("!HHHH", 40000, 53, 12, 0) + bytes(4), 64)
    rd_msg = icmp6(LL1, G1, 137, bytes(4) + LL2 + G2 + opt(4, bytes(6) + quoted))
    (rd,) = only(decode(eth(ip6(LL1, G1, 58, rd_msg))), Redirect)
    assert isinstance(rd, Redirect)
    option = rd.options[0]
    assert isinstance(option, RedirectedHeaderOption)
    assert (option.src, option.dst, option.data_len) == (G1, G2, 56)  # padded to 8
    # A Packet Too Big quoting the same packet: built only when asked for.
    ptb = ip6(G2, G1, 58, icmp6(G2, G1, 2, struct.pack("!I", 1280) + quoted))
    assert not only(decode(eth(ptb)), IcmpError)
    (err,) = only(decode(eth(ptb), decoder=Decoder(want_icmp_errors=True)), IcmpError)
    assert isinstance(err, IcmpError)
    assert (err.icmp_type, err.icmp_code, err.param) == (2, 0, 1280)
    assert (err.quoted_src, err.quoted_dst, err.quoted_next) == (G1, G2, 17)
    assert (err.quoted_sport, err.quoted_dport, err.quoted_icmp_type) == (40000, 53, None)
    assert err.quoted_flow_label == 0
    # A Parameter Problem cut inside its quote: the pointer, and no quoted packet.
    pp = ip6(G2, G1, 58, icmp6(G2, G1, 4, struct.pack("!I", 6) + quoted[:30], code=1))
    (err,) = only(decode(eth(pp), decoder=Decoder(want_icmp_errors=True)), IcmpError)
    assert isinstance(err, IcmpError)
    assert (err.icmp_type, err.icmp_code, err.param, err.quoted_src) == (4, 1, 6, None)


def _nd_errors(options: bytes) -> list[tuple[str, int]]:
    events = decode(eth(ip6(LL1, ALLNODES, 58, icmp6(LL1, ALLNODES, 134, ra_body(options)))))
    (ra,) = only(events, RouterAdvertisement)
    assert isinstance(ra, RouterAdvertisement)
    malformed = only(events, Malformed)
    assert bool(malformed) == bool(ra.option_errors)
    return [(e.reason, e.type) for e in ra.option_errors]


def test_malformed_options_are_reported_and_never_loop() -> None:
    assert _nd_errors(b"\x01\x00" + bytes(6) + opt(1, MAC1)) == [("zero_length", 1)]
    assert _nd_errors(opt(1, MAC1) + b"\x19\x05" + bytes(14)) == [("truncated", 25)]
    # CVE-2020-16898: RDNSS with an even length; parsing goes on after it.
    bad = b"\x19\x04" + bytes(30)
    assert _nd_errors(bad + opt(1, MAC1)) == [("bad_length", 25)]
    assert _nd_errors(b"\x03\x03" + bytes(22)) == [("bad_length", 3)]
    assert _nd_errors(b"\x05\x02" + bytes(14)) == [("bad_length", 5)]
    assert _nd_errors(opt(24, struct.pack("!BBI", 200, 0, 0))) == [("bad_value", 24)]
    assert _nd_errors(opt(24, struct.pack("!BBI", 96, 0, 0) + bytes(8))) == [("bad_value", 24)]
    assert _nd_errors(b"\x01") == [("truncated", 1)]


def test_short_nd_message_is_malformed() -> None:
    msg = icmp6(LL1, ALLNODES, 135, bytes(8))  # NS needs 24 bytes
    events = decode(eth(ip6(LL1, ALLNODES, 58, msg)))
    assert not only(events, NeighborSolicitation)
    (m,) = only(events, Malformed)
    assert isinstance(m, Malformed) and (m.layer, m.reason) == ("nd", "short_message")


def test_bad_checksum_is_flagged() -> None:
    msg = bytearray(icmp6(LL1, ALLNODES, 134, ra_body()))
    msg[2] ^= 0xFF
    (ra,) = only(decode(eth(ip6(LL1, ALLNODES, 58, bytes(msg)))), RouterAdvertisement)
    assert isinstance(ra, RouterAdvertisement) and not ra.checksum_ok
    good = icmp6(LL1, ALLNODES, 134, ra_body())
    assert icmpv6_checksum_ok(LL1, ALLNODES, good, 0, len(good))


# -- extension headers ----------------------------------------------------------


def test_extension_chain_is_walked_and_recorded() -> None:
    echo = icmp6(G1, G2, 128, bytes(4))
    ah = bytes([58, 1]) + bytes(10)  # (1 + 2) * 4 = 12 bytes
    # HBH -> DestOpts -> Routing -> AH -> ICMPv6
    payload = gen.ext(60) + gen.ext(43) + gen.ext(51) + ah + echo
    (pkt,) = only(decode(eth(ip6(G1, G2, 0, payload))), Ipv6Packet)
    assert isinstance(pkt, Ipv6Packet)
    assert pkt.ip.chain == (0, 60, 43, 51) and pkt.ip.upper == 58 and pkt.icmp_type == 128


def test_esp_and_no_next_header_stop_the_walk() -> None:
    (pkt,) = only(decode(eth(ip6(G1, G2, 60, bytes([50, 0]) + bytes(6) + bytes(32)))), Ipv6Packet)
    assert isinstance(pkt, Ipv6Packet) and pkt.ip.chain == (60,) and pkt.ip.upper == 50
    mobility = bytes([59, 0]) + bytes(6)
    (pkt,) = only(decode(eth(ip6(G1, G2, 135, mobility))), Ipv6Packet)
    assert isinstance(pkt, Ipv6Packet) and pkt.ip.chain == (135,) and pkt.ip.upper == 59


def test_hbh_then_fragment_the_dpkt_attributeerror_case() -> None:
    echo = icmp6(G1, G2, 128, bytes(4))
    payload = bytes([44, 0]) + bytes(6) + bytes([58, 0, 0, 0]) + struct.pack("!I", 7) + echo
    events = decode(eth(ip6(G1, G2, 0, payload)))
    (pkt,) = only(events, Ipv6Packet)
    assert isinstance(pkt, Ipv6Packet)
    assert pkt.ip.chain == (0, 44) and pkt.ip.fragment is not None and pkt.ip.fragment.atomic
    (anomaly,) = only(events, FragmentAnomaly)
    assert isinstance(anomaly, FragmentAnomaly) and anomaly.kind == "atomic"


def test_chain_length_is_bounded() -> None:
    payload = b"".join(bytes([60, 0]) + bytes(6) for _ in range(19)) + bytes([58, 0]) + bytes(6)
    payload += icmp6(G1, G2, 128, bytes(4))
    d = Decoder(DecoderLimits(max_ext_headers=16), want_packets=True)
    events = decode(eth(ip6(G1, G2, 60, payload)), decoder=d)
    (m,) = only(events, Malformed)
    assert isinstance(m, Malformed) and m.reason == "chain_too_long"
    assert not only(events, Ipv6Packet)


def test_options_carrying_data_make_one_event_and_the_option_limit_holds() -> None:
    echo = icmp6(G1, G2, 128, bytes(4))
    # Router Alert + PadN 0 (MLD's Hop-by-Hop header): nothing to report.
    plain = eth(ip6(G1, G2, 0, bytes([58, 0, 5, 2, 0, 0, 1, 0]) + echo))
    d = Decoder(want_ext_options=True)
    assert not only(decode(plain, decoder=d), ExtOptions)
    # An unknown option 0x10 with 4 bytes, then PadN with text: one event per packet.
    dest = bytes([58, 1, 0x10, 4, 1, 2, 3, 4, 1, 4]) + b"abcd" + bytes([1, 0])
    (x,) = only(decode(eth(ip6(G1, G2, 60, dest + echo)), decoder=d), ExtOptions)
    assert isinstance(x, ExtOptions)
    assert (x.header, x.unknown_options, x.unknown_data, x.padn_data) == (60, 1, 4, 4)
    # The two PadNs are 8 bytes of padding in a row: one more than any alignment needs.
    assert (x.excess_padding, x.smuggled, x.sample) == (1, 9, b"\x01\x02\x03\x04abcd")
    assert (x.proto, x.icmp_type) == (58, 128)
    # Nobody observing: no event.
    assert not decode(eth(ip6(G1, G2, 60, dest + echo)), decoder=Decoder())
    # 30 Pad1 options in one header: past max_ext_options.
    many = bytes([58, 3]) + bytes(30)
    limited = Decoder(DecoderLimits(max_ext_options=16))
    (m,) = only(decode(eth(ip6(G1, G2, 60, many + echo)), decoder=limited), Malformed)
    assert isinstance(m, Malformed) and (m.layer, m.reason) == ("ext", "too_many_options")
    assert m.proto == 58 and m.icmp_type == 128
    roomy = Decoder(DecoderLimits(max_ext_options=64))
    assert not only(decode(eth(ip6(G1, G2, 60, many + echo)), decoder=roomy), Malformed)


# -- fragments -------------------------------------------------------------------


def fragments(src: bytes, dst: bytes, ident: int, payload: bytes, size: int) -> list[bytes]:
    return [eth(p) for p in gen.fragment_packets(src, dst, 58, payload, size, ident)]


def test_reassembly_out_of_order_gives_one_packet() -> None:
    msg = icmp6(LL1, ALLNODES, 134, ra_body(opt(25, struct.pack("!HI", 0, 60) + G1 * 6)))
    d = Decoder(want_packets=True)
    events: list[Event] = []
    for frame in reversed(fragments(LL1, ALLNODES, 1, msg, 48)):
        events += decode(frame, decoder=d)
    (ra,) = only(events, RouterAdvertisement)
    assert isinstance(ra, RouterAdvertisement) and ra.checksum_ok
    assert ra.ip.chain == (44,) and ra.ip.fragment is not None and ra.ip.fragment.count == 3
    assert d.stats.reassembled == 1 and len(d.reassembler) == 0


def test_overlap_discards_the_datagram() -> None:
    msg = icmp6(G1, G2, 128, bytes(60))
    first, second = fragments(G1, G2, 9, msg, 32)
    overlap = bytearray(fragments(G1, G2, 9, msg[:8] + b"X" * 56, 32)[1])
    # Rewrite offset 32 -> 24 so it overlaps the first fragment with other bytes.
    struct.pack_into("!H", overlap, 14 + 40 + 2, 24)
    d = Decoder(want_packets=True)
    events = decode(first, decoder=d) + decode(bytes(overlap), decoder=d)
    events += decode(second, decoder=d)
    kinds = [e.kind for e in only(events, FragmentAnomaly) if isinstance(e, FragmentAnomaly)]
    assert kinds == ["overlap"]
    assert not only(events, Ipv6Packet)  # never trusted, even when the rest arrives


def test_duplicates_are_quiet_and_timeouts_counted() -> None:
    msg = icmp6(G1, G2, 128, bytes(60))
    first, second = fragments(G1, G2, 3, msg, 32)
    d = Decoder(want_packets=True)
    events = decode(first, decoder=d) + decode(first, decoder=d) + decode(second, decoder=d)
    assert not only(events, FragmentAnomaly)
    assert len(only(events, Ipv6Packet)) == 1
    decode(first, decoder=d, ts=S)
    expired = d.expire(S + 61 * S)
    assert [e.kind for e in expired if isinstance(e, FragmentAnomaly)] == ["timeout"]


def test_reassembly_table_is_capped() -> None:
    limits = DecoderLimits(reassembly=ReassemblyLimits(max_datagrams=4))
    d = Decoder(limits)
    msg = icmp6(G1, G2, 128, bytes(60))
    for ident in range(100):
        decode(fragments(G1, G2, ident, msg, 32)[0], decoder=d)
    assert len(d.reassembler) == 4
    assert d.stats.fragment_anomalies["evicted"] == 96


def test_incomplete_first_fragment_chain_is_reported() -> None:
    # The first fragment ends inside a Destination Options header (RFC 7112).
    payload = bytes([58, 2]) + bytes(22) + icmp6(G1, G2, 128, bytes(8))
    fh = struct.pack("!BBHI", 60, 0, 1, 5)
    events = decode(eth(ip6(G1, G2, 44, fh + payload[:16])))
    kinds = [e.kind for e in only(events, FragmentAnomaly) if isinstance(e, FragmentAnomaly)]
    assert kinds == ["incomplete_chain"]


# -- tunnels ----------------------------------------------------------------------


ipv4, udp, teredo_addr = gen.ipv4, gen.udp4, gen.teredo_addr


V4A, V4B = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 1])


def test_6in4_inner_packet_is_tagged() -> None:
    inner = ip6(LL1, ALLNODES, 58, icmp6(LL1, ALLNODES, 134, ra_body()))
    events = decode(eth(ipv4(V4A, V4B, 41, inner), etype=0x0800))
    (ra,) = only(events, RouterAdvertisement)
    assert isinstance(ra, RouterAdvertisement)
    (layer,) = ra.ip.tunnels
    assert (layer.kind, layer.outer_src, layer.outer_dst) == ("6in4", V4A, V4B)
    assert only(events, TunnelPacket)


def test_teredo_with_auth_and_origin_headers() -> None:
    server, client = bytes([203, 0, 113, 1]), bytes([192, 0, 2, 45])
    inner = ip6(
        LL1,
        teredo_addr(server, client, 40000),
        58,
        icmp6(LL1, teredo_addr(server, client, 40000), 134, ra_body()),
    )
    auth, origin = gen.teredo_auth(), gen.teredo_origin(client, 40000)
    frame = eth(ipv4(server, V4A, 17, udp(3544, 40000, auth + origin + inner)), etype=0x0800)
    (ra,) = only(decode(frame), RouterAdvertisement)
    assert isinstance(ra, RouterAdvertisement)
    (layer,) = ra.ip.tunnels
    assert layer.kind == "teredo" and layer.teredo is not None
    td = layer.teredo
    assert td.auth and td.origin_ip == client and td.origin_port == 40000
    assert td.server == server and td.client_ip == client and td.client_port == 40000 and td.cone


def test_teredo_off_port_needs_a_valid_ipv6_packet_with_a_teredo_address() -> None:
    server, client = bytes([203, 0, 113, 1]), bytes([192, 0, 2, 45])
    t1 = teredo_addr(server, client, 40000)
    echo = ip6(t1, G2, 58, icmp6(t1, G2, 128, bytes(4)), hlim=64)
    events = decode(eth(ipv4(V4A, V4B, 17, udp(40000, 50000, echo)), etype=0x0800))
    assert [e.layer.kind for e in only(events, TunnelPacket) if isinstance(e, TunnelPacket)] == [
        "teredo"
    ]
    native = ip6(G1, G2, 58, icmp6(G1, G2, 128, bytes(4)), hlim=64)
    assert not decode(eth(ipv4(V4A, V4B, 17, udp(40000, 50000, native)), etype=0x0800))
    # A DNS header whose id starts with 0x6 is not IPv6 (Zeek's false-Teredo trace).
    dns = bytes.fromhex("631d01000001000000000000") + b"\x07example\x03com\x00\x00\x01\x00\x01"
    dns += bytes(40)
    d = Decoder(want_tunnels=True)
    assert not decode(eth(ipv4(V4A, V4B, 17, udp(53000, 53, dns)), etype=0x0800), decoder=d)
    assert d.stats.tunnels == {}


def test_teredo_bubble_may_carry_trailing_bytes() -> None:
    t1 = teredo_addr(bytes([203, 0, 113, 1]), bytes([192, 0, 2, 45]), 40000)
    bubble = ip6(t1, G2, 59, b"", hlim=21) + b"1234"
    events = decode(eth(ipv4(V4A, V4B, 17, udp(40000, 50000, bubble)), etype=0x0800))
    (tp,) = only(events, TunnelPacket)
    assert isinstance(tp, TunnelPacket) and tp.layer.teredo is not None
    assert tp.layer.teredo.bubble


def test_ayiya() -> None:
    inner = ip6(G1, G2, 58, icmp6(G1, G2, 128, bytes(4)), hlim=64)
    frame = eth(ipv4(V4A, V4B, 17, udp(50000, 5072, gen.ayiya(inner))), etype=0x0800)
    events = decode(frame)
    (pkt,) = only(events, Ipv6Packet)
    assert isinstance(pkt, Ipv6Packet) and pkt.ip.tunnels[0].kind == "ayiya"
    assert pkt.ip.src == G1


def test_tunnel_depth_is_bounded() -> None:
    packet = ip6(G1, G2, 58, icmp6(G1, G2, 128, bytes(4)))
    for _ in range(5):
        packet = ip6(G1, G2, 41, packet)
    d = Decoder(DecoderLimits(max_tunnel_depth=3), want_packets=True)
    events = decode(eth(packet), decoder=d)
    assert [e.reason for e in only(events, Malformed) if isinstance(e, Malformed)] == ["too_deep"]


# -- snaplen -------------------------------------------------------------------------


def test_snaplen_cut_is_not_malformed() -> None:
    frame = eth(
        ip6(
            LL1,
            ALLNODES,
            58,
            icmp6(LL1, ALLNODES, 134, ra_body(opt(25, struct.pack("!HI", 0, 1) + G1))),
        )
    )
    d = Decoder()
    events = d.decode(S, 1, 0, 1, frame[:64], len(frame))
    assert not only(events, Malformed)
    assert d.stats.snapped == 1 and d.stats.malformed == 0
    # The same bytes without the snaplen excuse are malformed.
    d2 = Decoder()
    events = d2.decode(S, 1, 0, 1, frame[:64], 64)
    assert only(events, Malformed)


def test_fast_path_counts_ordinary_traffic_without_events() -> None:
    tcp4 = eth(gen.ipv4(V4A, V4B, 6, bytes(20) + b"payload!"), etype=0x0800)
    tcp6 = eth(ip6(G1, G2, 6, gen.tcp6(G1, G2, 40000, 443, 0x10), hlim=64))
    d = Decoder()
    assert decode(tcp4, decoder=d) == [] and decode(tcp6, decoder=d) == []
    assert (d.stats.ipv4, d.stats.ipv6, d.stats.link_types) == (1, 1, {1: 2})
    # A subscriber to every IPv6 packet turns the IPv6 shortcut off.
    (pkt,) = only(decode(tcp6), Ipv6Packet)
    assert isinstance(pkt, Ipv6Packet) and (pkt.sport, pkt.dport, pkt.tcp_flags) == (
        40000,
        443,
        0x10,
    )


def test_long_link_layer_option_is_kept_whole() -> None:
    """A two-unit SLLA (as in Teredo's RS) is not a MAC: keep all 14 bytes."""
    addr = bytes(6) + bytes.fromhex("8000f12ab9c82815")
    msg = icmp6(LL1, ALLNODES, 133, bytes(4) + opt(1, addr))
    (rs,) = only(decode(eth(ip6(LL1, ALLNODES, 58, msg))), RouterSolicitation)
    assert isinstance(rs, RouterSolicitation) and rs.source_lla() == addr


# -- MLD (issue 14) ---------------------------------------------------------------


def test_mld_messages_become_events_only_when_asked() -> None:
    from detectors.detections.mld import captures as mld

    group = bytes.fromhex("ff050000000000000000000000000db8")
    report = mld.report(LL1, [mld.record(4, group), mld.record(3, group)])
    frame = eth(report)
    assert not [e for e in decode(frame) if isinstance(e, MldMessage)]
    events = decode(frame, decoder=Decoder(want_mld=True))
    (msg,) = only(events, MldMessage)
    assert isinstance(msg, MldMessage)
    assert (msg.icmp_type, msg.version, msg.ip.hop_limit, msg.router_alert) == (143, 2, 1, True)
    assert (msg.records_declared, msg.records_fit, msg.checksum_ok) == (2, 2, True)
    assert [(r.type, r.group) for r in msg.records] == [(4, group), (3, group)]
    query = only(decode(eth(mld.query(LL2)), decoder=Decoder(want_mld=True)), MldMessage)[0]
    assert isinstance(query, MldMessage)
    assert (query.icmp_type, query.qrv, query.qqic, query.max_delay) == (130, 2, 125, 10000)


def test_short_mld_message_is_malformed() -> None:
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    frame = eth(ip6(LL1, ALLNODES, 0, hbh + icmp6(LL1, ALLNODES, 131, bytes(4)), hlim=1))
    events = decode(frame, decoder=Decoder(want_mld=True))
    assert not only(events, MldMessage)
    (bad,) = only(events, Malformed)
    assert isinstance(bad, Malformed)
    assert (bad.layer, bad.reason) == ("mld", "short_message")


def test_dns_messages_become_dns_events_only_when_asked_for() -> None:
    from detectors.detections.dns.captures import message
    from detectors.events import DnsMessage, Malformed

    name = "a.b.ip6.arpa"
    answer = message(7, name, 12, response=True, rcode=0, ptr="Mail.Example.COM")
    pkt = ip6(G2, G1, 17, gen.udp6(G2, G1, 53, 40000, answer))
    assert not only(decode(eth(pkt)), DnsMessage)
    (m,) = only(decode(eth(pkt), decoder=Decoder(want_dns=True)), DnsMessage)
    assert isinstance(m, DnsMessage)
    assert (m.src, m.dst, m.sport, m.dport, m.transport) == (G2, G1, 53, 40000, 17)
    assert (m.id, m.qr, m.aa, m.opcode, m.rcode, m.qdcount, m.ancount) == (
        7,
        True,
        True,
        0,
        0,
        1,
        1,
    )
    assert (m.qname, m.qtype, m.qclass, m.ptr_answers) == (name, 12, 1, ("mail.example.com",))
    # A compression loop: a counted Malformed naming the flow, never an exception.
    loop = struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 12, 1)
    bad = ip6(G1, G2, 17, gen.udp6(G1, G2, 40000, 53, loop))
    (mal,) = only(decode(eth(bad), decoder=Decoder(want_dns=True)), Malformed)
    assert isinstance(mal, Malformed)
    assert (mal.layer, mal.reason, mal.proto, mal.dport) == ("dns", "compression_loop", 17, 53)
