"""The decoder: capture records in, typed events out.

Owns every read of packet bytes in v6sentry: link layers, IPv4 (only as far as
tunnels need), IPv6 and its extension-header chain, fragment reassembly,
tunnel decapsulation (protocol 41, Teredo, AYIYA, IP-in-IPv6) and hands ND
bodies to ``nd``. It does not judge traffic, keep per-host state, or know
about policies.

Speed: the common case (IPv4 TCP, IPv6 TCP/UDP nobody subscribed to) is
classified from fixed offsets and returns before any object is built. Only ND
messages, tunnels, fragments and malformed input create events, plus
``Ipv6Packet`` when a detection asks for it.

Robustness: every length is checked before it is used, loops are bounded by
configured limits, and ``decode`` catches any remaining exception and turns
it into a counted ``malformed`` event (reason ``decoder_error``), so bad input
never escapes as an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass, field

from detectors.decoder import nd
from detectors.decoder.reassembly import Reassembler, ReassemblyLimits
from detectors.events import (
    DecodeStats,
    Event,
    FragmentAnomaly,
    FragmentInfo,
    IPv6Header,
    Ipv6Packet,
    Malformed,
    PacketMeta,
    TeredoInfo,
    TunnelLayer,
    TunnelPacket,
)

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_IP6_FIRST = struct.Struct("!IHBB")  # version/class/flow, payload length, next header, hop limit

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_TYPES = frozenset({LINKTYPE_RAW, 12, 14})  # DLT_RAW differs between BSDs
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_AF_INET6 = frozenset({10, 24, 28, 30})  # Linux, BSDs, macOS values of AF_INET6

# Extension headers: number -> how the length byte converts to bytes.
# AH counts 4-octet units minus 2 (RFC 4302); the rest 8-octet units minus 1.
_EXT_8 = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
EXT_HEADERS = _EXT_8 | {44, 51}
NH_NONE, NH_ESP, NH_FRAGMENT, NH_AH = 59, 50, 44, 51
NH_TCP, NH_UDP, NH_ICMPV6, NH_IPV4, NH_IPV6 = 6, 17, 58, 4, 41
# Next headers a real IPv6 packet plausibly carries; used to validate Teredo.
_PLAUSIBLE_NH = EXT_HEADERS | {NH_TCP, NH_UDP, NH_ICMPV6, NH_NONE, NH_ESP, NH_IPV4, NH_IPV6}

TEREDO_PORT = 3544
AYIYA_PORT = 5072
_TEREDO_PREFIX = b"\x20\x01\x00\x00"


@dataclass(frozen=True, slots=True)
class DecoderLimits:
    """Bounds on the decoder's work per packet and its memory.

    Overridable in the policy under ``thresholds: {decoder: {...}}``.
    """

    max_ext_headers: int = 16  # more than any real stack sends; RFC 8504 suggests a limit
    max_vlan_tags: int = 4
    max_tunnel_depth: int = 3
    reassembly: ReassemblyLimits = field(default_factory=ReassemblyLimits)


def teredo_info(
    addr: bytes, bubble: bool, auth: bool, origin: tuple[bytes, int] | None
) -> TeredoInfo:
    """Decode a Teredo address (RFC 4380 4): server, cone flag, obfuscated port and IP."""
    origin_ip, origin_port = origin if origin else (None, None)
    if addr[:4] != _TEREDO_PREFIX:
        return TeredoInfo(bubble, auth, origin_ip, origin_port, None, None, None, None)
    return TeredoInfo(
        bubble=bubble,
        auth=auth,
        origin_ip=origin_ip,
        origin_port=origin_port,
        server=addr[4:8],
        client_ip=bytes(b ^ 0xFF for b in addr[12:16]),
        client_port=_U16.unpack_from(addr, 10)[0] ^ 0xFFFF,
        cone=bool(addr[8] & 0x80),
    )


class Decoder:
    """Turns one captured frame into events. One instance per capture stream."""

    def __init__(
        self,
        limits: DecoderLimits | None = None,
        *,
        want_packets: bool = False,
        want_tunnels: bool = False,
    ) -> None:
        self.limits = limits or DecoderLimits()
        self.want_packets = want_packets
        self.want_tunnels = want_tunnels
        self.stats = DecodeStats()
        self.reassembler = Reassembler(self.limits.reassembly)
        # Per-frame state, reset by decode(); kept on self to avoid long argument lists.
        self._events: list[Event] = []
        self._meta: PacketMeta | None = None
        self._ts = 0
        self._frame = 0
        self._iface = 0
        self._linktype = 0
        self._wire_len = 0
        self._snapped = False
        self._snap_counted = False
        # MACs are sliced from the frame only when an event needs them.
        self._data = b""
        self._src_mac_at = -1  # offset of the source MAC in the frame, -1 if none
        self._dst_mac_at = -1
        self._vlans: tuple[int, ...] = ()

    # -- entry point -----------------------------------------------------

    def decode(
        self, ts_ns: int, frame: int, iface: int, linktype: int, data: bytes, wire_len: int
    ) -> list[Event]:
        """Decode one frame. Never raises; returns the frame's events."""
        stats = self.stats
        stats.packets += 1
        stats.bytes += wire_len
        # The cheapest path: untagged Ethernet carrying IPv4 that is neither UDP nor
        # protocol 41, or IPv6 TCP/UDP nobody subscribed to, is classified from fixed
        # offsets with no call and no object. Everything else takes the full walk.
        if linktype == LINKTYPE_ETHERNET and len(data) >= 54:
            etype = data[12] << 8 | data[13]
            if etype == _ETH_IPV4 and data[23] != NH_UDP and data[23] != NH_IPV6:
                stats.link_types[1] = stats.link_types.get(1, 0) + 1
                stats.ipv4 += 1
                return []
            if (
                etype == _ETH_IPV6
                and (data[20] == NH_TCP or data[20] == NH_UDP)
                and data[14] >> 4 == 6
                and 54 + (data[18] << 8 | data[19]) <= len(data)
            ):
                stats.link_types[1] = stats.link_types.get(1, 0) + 1
                stats.ipv6 += 1
                if not self.want_packets:
                    return []
                return [self._plain_l4(ts_ns, frame, iface, data, wire_len)]
        self._events = []
        self._meta = None
        self._ts, self._frame, self._iface = ts_ns, frame, iface
        self._linktype, self._wire_len = linktype, wire_len
        self._snapped = len(data) < wire_len
        self._snap_counted = False
        self._data = data
        self._src_mac_at = self._dst_mac_at = -1
        self._vlans = ()
        try:
            self._link(linktype, data)
        except Exception as exc:  # a decoder bug must not stop the sensor
            self._malformed("decoder", "decoder_error", f"{type(exc).__name__}: {exc}")
        return self._events

    def _plain_l4(self, ts_ns: int, frame: int, iface: int, data: bytes, wire_len: int) -> Event:
        """Untagged Ethernet, IPv6 with TCP or UDP right after the header, all of it
        in the frame: the same event the full walk builds, in one step, because this
        is most of the traffic when every packet is wanted."""
        first, plen, nh, hlim = _IP6_FIRST.unpack_from(data, 14)
        end = 54 + plen
        sport = dport = flags = None
        if end - 54 >= (14 if nh == NH_TCP else 8):
            sport, dport = _U16.unpack_from(data, 54)[0], _U16.unpack_from(data, 56)[0]
            if nh == NH_TCP:
                flags = data[67]
        meta = PacketMeta(ts_ns, frame, iface, LINKTYPE_ETHERNET, wire_len, data[6:12], data[:6])
        ip = IPv6Header(
            data[22:38],
            data[38:54],
            hlim,
            (first >> 20) & 0xFF,
            first & 0xFFFFF,
            plen,
            (),
            nh,
        )
        return Ipv6Packet(meta, ip, sport, dport, None, None, flags)

    def expire(self, now_ns: int) -> list[Event]:
        """Time out stale fragments on packet time; called by the engine's clock."""
        self._events = []
        self._meta = None
        for key, kind in self.reassembler.expire(now_ns):
            self._fragment_anomaly(key, kind, now_ns)
        return self._events

    # -- helpers ---------------------------------------------------------

    def meta(self) -> PacketMeta:
        if self._meta is None:
            self._meta = PacketMeta(
                self._ts,
                self._frame,
                self._iface,
                self._linktype,
                self._wire_len,
                self._data[self._src_mac_at : self._src_mac_at + 6]
                if self._src_mac_at >= 0
                else None,
                self._data[self._dst_mac_at : self._dst_mac_at + 6]
                if self._dst_mac_at >= 0
                else None,
                self._vlans,
            )
        return self._meta

    def _malformed(
        self,
        layer: str,
        reason: str,
        detail: str = "",
        src: bytes | None = None,
        dst: bytes | None = None,
        tunnels: tuple[TunnelLayer, ...] = (),
    ) -> None:
        stats = self.stats
        stats.malformed += 1
        key = f"{layer}.{reason}"
        stats.malformed_reasons[key] = stats.malformed_reasons.get(key, 0) + 1
        self._events.append(Malformed(self.meta(), layer, reason, detail, src, dst, tunnels))

    def _short(
        self,
        layer: str,
        what: str,
        src: bytes | None = None,
        dst: bytes | None = None,
        tunnels: tuple[TunnelLayer, ...] = (),
    ) -> None:
        """Ran out of bytes: the snaplen's fault if the frame was cut, else malformed."""
        if self._snapped:
            if not self._snap_counted:  # count a frame once
                self.stats.snapped += 1
                self._snap_counted = True
        else:
            self._malformed(layer, "truncated", what, src, dst, tunnels)

    def _fragment_anomaly(self, key: Hashable, kind: str, ts: int | None = None) -> None:
        stats = self.stats
        stats.fragment_anomalies[kind] = stats.fragment_anomalies.get(kind, 0) + 1
        assert isinstance(key, tuple)
        src, dst, ident, tunnels = key[0], key[1], key[2], key[3]
        meta = self.meta() if ts is None else PacketMeta(ts, 0, 0, 0, 0)
        self._events.append(FragmentAnomaly(meta, kind, src, dst, ident, tunnels))

    # -- link layer ------------------------------------------------------

    def _link(self, linktype: int, data: bytes) -> None:
        stats = self.stats
        stats.link_types[linktype] = stats.link_types.get(linktype, 0) + 1
        n = len(data)
        if linktype == LINKTYPE_ETHERNET:
            if n < 14:
                self._short("link", "ethernet header")
                return
            self._dst_mac_at, self._src_mac_at = 0, 6
            self._ethertype(data, _U16.unpack_from(data, 12)[0], 14)
        elif linktype == LINKTYPE_LINUX_SLL:
            if n < 16:
                self._short("link", "SLL header")
                return
            if _U16.unpack_from(data, 4)[0] == 6:  # address length: a MAC
                self._src_mac_at = 6
            self._ethertype(data, _U16.unpack_from(data, 14)[0], 16)
        elif linktype == LINKTYPE_LINUX_SLL2:
            if n < 20:
                self._short("link", "SLL2 header")
                return
            if data[11] == 6:
                self._src_mac_at = 12
            self._ethertype(data, _U16.unpack_from(data, 0)[0], 20)
        elif linktype in _RAW_TYPES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
            if n < 1:
                self._short("link", "raw IP packet")
                return
            version = data[0] >> 4
            if version == 6:
                self._ipv6(data, 0, n, (), None)
            elif version == 4:
                self._ipv4(data, 0, n, ())
            else:
                self._malformed("link", "bad_ip_version", f"version {version} on raw IP link")
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if n < 4:
                self._short("link", "loopback header")
                return
            family = (
                _U32.unpack_from(data, 0)[0]
                if linktype == LINKTYPE_LOOP
                else int.from_bytes(data[0:4], "little" if data[0] else "big")
            )
            if family == 2:
                self._ipv4(data, 4, n, ())
            elif family in _AF_INET6:
                self._ipv6(data, 4, n, (), None)
            else:
                stats.other += 1
        else:
            stats.unsupported_link += 1

    def _ethertype(self, data: bytes, etype: int, off: int) -> None:
        tags = 0
        while etype in _VLAN_TPIDS:
            if tags >= self.limits.max_vlan_tags:
                self._malformed("link", "too_many_vlan_tags", f"more than {tags} tags")
                return
            if len(data) < off + 4:
                self._short("link", "VLAN tag")
                return
            self._vlans += (_U16.unpack_from(data, off)[0] & 0x0FFF,)
            etype = _U16.unpack_from(data, off + 2)[0]
            off += 4
            tags += 1
        if etype == _ETH_IPV6:
            self._ipv6(data, off, len(data), (), None)
        elif etype == _ETH_IPV4:
            self._ipv4(data, off, len(data), ())
        else:
            self.stats.other += 1

    # -- IPv4 (tunnel carriers only) ---------------------------------------

    def _ipv4(self, data: bytes, off: int, end: int, tunnels: tuple[TunnelLayer, ...]) -> None:
        self.stats.ipv4 += 1
        if end - off < 20:
            self._short("ipv4", "IPv4 header", tunnels=tunnels)
            return
        vihl = data[off]
        proto = data[off + 9]
        if proto != NH_IPV6 and proto != NH_UDP:
            return  # the cheap path: nothing in IPv4 matters but tunnels
        ihl = (vihl & 0x0F) * 4
        total = _U16.unpack_from(data, off + 2)[0]
        src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
        if vihl >> 4 != 4 or ihl < 20 or total < ihl:
            self._malformed(
                "ipv4", "bad_header", f"version/ihl 0x{vihl:02x} total {total}", src, dst, tunnels
            )
            return
        if off + total > end:
            self._short("ipv4", f"IPv4 total length {total}", src, dst, tunnels)
            if off + ihl > end:
                return
        else:
            end = off + total  # drop Ethernet padding
        if _U16.unpack_from(data, off + 6)[0] & 0x3FFF:  # MF or a fragment offset
            # IPv4 reassembly is out of scope; counted so nothing vanishes silently.
            self.stats.ipv4_fragments_skipped += 1
            return
        p = off + ihl
        if proto == NH_IPV6:
            self._tunnel(data, p, end, tunnels, TunnelLayer("6in4", src, dst), 6)
        else:
            self._udp4(data, p, end, src, dst, tunnels)

    def _udp4(
        self,
        data: bytes,
        p: int,
        end: int,
        src: bytes,
        dst: bytes,
        tunnels: tuple[TunnelLayer, ...],
    ) -> None:
        if end - p < 8:
            self._short("ipv4", "UDP header", src, dst, tunnels)
            return
        sport, dport, ulen = struct.unpack_from("!HHH", data, p)
        if 8 <= ulen <= end - p:
            end = p + ulen
        q = p + 8
        if sport == TEREDO_PORT or dport == TEREDO_PORT:
            self._teredo(data, q, end, src, dst, sport, dport, tunnels, True)
        elif sport == AYIYA_PORT or dport == AYIYA_PORT:
            self._ayiya(data, q, end, src, dst, sport, dport, tunnels)
        elif end - q >= 40 and (data[q] >> 4 == 6 or (data[q] == 0 and data[q + 1] <= 1)):
            # Teredo on any port (client to client): only if it validates as IPv6.
            self._teredo(data, q, end, src, dst, sport, dport, tunnels, False)

    # -- tunnels -----------------------------------------------------------

    def _tunnel(
        self,
        data: bytes,
        p: int,
        end: int,
        tunnels: tuple[TunnelLayer, ...],
        layer: TunnelLayer,
        version: int,
    ) -> None:
        depth = len(tunnels) + 1
        stats = self.stats
        stats.tunnels[layer.kind] = stats.tunnels.get(layer.kind, 0) + 1
        inner = (*tunnels, layer)
        if depth > self.limits.max_tunnel_depth:
            self._malformed(
                "tunnel",
                "too_deep",
                f"{depth} nested tunnels",
                layer.outer_src,
                layer.outer_dst,
                tunnels,
            )
            return
        if self.want_tunnels:
            self._events.append(self._tunnel_event(data, p, end, layer, version, depth))
        if version == 6:
            self._ipv6(data, p, end, inner, None)
        elif version == 4:
            self._ipv4(data, p, end, inner)
        # version 0: a tunnel message without an inner packet (AYIYA control)

    def _tunnel_event(
        self, data: bytes, p: int, end: int, layer: TunnelLayer, version: int, depth: int
    ) -> TunnelPacket:
        """The decapsulation event, with the inner IPv6 addresses the tunnel detections
        classify by (6to4, ISATAP, Teredo qualification)."""
        if version != 6 or end - p < 40:
            return TunnelPacket(self.meta(), layer, version, end - p, depth)
        nh = data[p + 6]
        icmp = data[p + 40] if nh == NH_ICMPV6 and end - p > 40 else None
        return TunnelPacket(
            self.meta(),
            layer,
            version,
            end - p,
            depth,
            data[p + 8 : p + 24],
            data[p + 24 : p + 40],
            nh,
            icmp,
        )

    @staticmethod
    def _valid_ipv6(data: bytes, q: int, end: int) -> bool:
        """Does ``data[q:end]`` hold exactly one plausible IPv6 packet?

        Bubbles (no next header, payload length 0) may carry trailing bytes.
        """
        if end - q < 40 or data[q] >> 4 != 6:
            return False
        plen = _U16.unpack_from(data, q + 4)[0]
        nh = data[q + 6]
        if nh == NH_NONE and plen == 0:
            return True
        return plen == end - q - 40 and nh in _PLAUSIBLE_NH and data[q + 8] != 0xFF

    def _teredo(
        self,
        data: bytes,
        q: int,
        end: int,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        tunnels: tuple[TunnelLayer, ...],
        on_port: bool,
    ) -> None:
        auth = False
        origin: tuple[bytes, int] | None = None
        if end - q >= 4 and data[q] == 0 and data[q + 1] == 1:  # authentication header
            id_len, au_len = data[q + 2], data[q + 3]
            q += 4 + id_len + au_len + 9  # + nonce (8) + confirmation (1)
            auth = True
        if end - q >= 8 and data[q] == 0 and data[q + 1] == 0:  # origin indication
            port = _U16.unpack_from(data, q + 2)[0] ^ 0xFFFF
            origin = (bytes(b ^ 0xFF for b in data[q + 4 : q + 8]), port)
            q += 8
        if not self._valid_ipv6(data, q, end):
            if on_port and end - q > 0:
                self._malformed(
                    "teredo",
                    "not_ipv6",
                    "UDP 3544 payload is not an IPv6 packet",
                    src,
                    dst,
                    tunnels,
                )
            return
        isrc, idst = data[q + 8 : q + 24], data[q + 24 : q + 40]
        teredo_src, teredo_dst = isrc[:4] == _TEREDO_PREFIX, idst[:4] == _TEREDO_PREFIX
        if not on_port and not (teredo_src or teredo_dst):
            return  # valid-looking IPv6 off port 3544 without a Teredo address: not Teredo
        bubble = data[q + 6] == NH_NONE and _U16.unpack_from(data, q + 4)[0] == 0
        info = teredo_info(isrc if teredo_src or not teredo_dst else idst, bubble, auth, origin)
        layer = TunnelLayer("teredo", src, dst, sport, dport, info)
        self._tunnel(
            data, q, min(end, q + 40 + _U16.unpack_from(data, q + 4)[0]), tunnels, layer, 6
        )

    def _ayiya(
        self,
        data: bytes,
        q: int,
        end: int,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        tunnels: tuple[TunnelLayer, ...],
    ) -> None:
        # RFC-draft "Anything In Anything": 8 fixed bytes, identity, signature, payload.
        if end - q < 8:
            self._malformed("ayiya", "truncated", "AYIYA header", src, dst, tunnels)
            return
        id_len = 1 << (data[q] >> 4)
        sig_len = (data[q + 1] >> 4) * 4
        opcode = data[q + 2] & 0x0F
        nh = data[q + 3]
        p = q + 8 + id_len + sig_len
        if p > end:
            self._malformed("ayiya", "truncated", "AYIYA identity/signature", src, dst, tunnels)
            return
        layer = TunnelLayer("ayiya", src, dst, sport, dport)
        if opcode != 1 or nh == NH_NONE:  # heartbeats and control: no payload
            self._tunnel(data, p, p, tunnels, layer, 0)
            return
        if nh == NH_IPV6 and self._valid_ipv6(data, p, end):
            self._tunnel(data, p, end, tunnels, layer, 6)
        elif nh == NH_IPV4 and end - p >= 20 and data[p] >> 4 == 4:
            self._tunnel(data, p, end, tunnels, layer, 4)
        else:
            self._malformed("ayiya", "bad_payload", f"next header {nh}", src, dst, tunnels)

    # -- IPv6 --------------------------------------------------------------

    def _ipv6(
        self,
        data: bytes,
        off: int,
        end: int,
        tunnels: tuple[TunnelLayer, ...],
        frag: FragmentInfo | None,
    ) -> None:
        """Decode the IPv6 packet at ``data[off:end]``.

        ``frag`` is set when ``data`` is a reassembled datagram: its Fragment
        header is then walked over rather than fed to the reassembler again.
        """
        stats = self.stats
        if frag is None:
            stats.ipv6 += 1
        if end - off < 40:
            self._short("ipv6", "IPv6 header", tunnels=tunnels)
            return
        first, plen, nh, hlim = _IP6_FIRST.unpack_from(data, off)
        if first >> 28 != 6:
            self._malformed("ipv6", "bad_version", f"version {first >> 28}", tunnels=tunnels)
            return
        fits = off + 40 + plen <= end
        if fits and nh in (NH_TCP, NH_UDP) and not self.want_packets and frag is None:
            return  # the cheap path: nothing looks inside native IPv6 TCP/UDP
        src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
        if fits:
            end = off + 40 + plen  # drop link-layer padding
        elif not (plen == 0 and nh == 0):  # plen 0 with Hop-by-Hop may be a jumbogram
            self._short("ipv6", f"payload length {plen}", src, dst, tunnels)

        chain: list[int] = []
        p = off + 40
        max_ext = self.limits.max_ext_headers
        while nh in EXT_HEADERS:
            if len(chain) >= max_ext:
                self._malformed(
                    "ext", "chain_too_long", f"more than {max_ext} headers", src, dst, tunnels
                )
                return
            if nh == 0 and chain:
                self._malformed(
                    "ext", "hbh_not_first", "Hop-by-Hop after another header", src, dst, tunnels
                )
            if end - p < 8:
                self._short("ext", f"extension header {nh}", src, dst, tunnels)
                return
            chain.append(nh)
            if nh == NH_FRAGMENT:
                field_ = _U16.unpack_from(data, p + 2)[0]
                ident = _U32.unpack_from(data, p + 4)[0]
                offset, more = field_ & 0xFFF8, bool(field_ & 1)
                if frag is not None:
                    pass  # reassembled datagram: keep walking
                elif offset == 0 and not more:
                    frag = FragmentInfo(ident, 1, True, True)
                    self._fragment_anomaly((src, dst, ident, tunnels), "atomic")
                else:
                    self._fragment(data, off, p, end, src, dst, ident, offset, more, tunnels)
                    return
                nh = data[p]
                p += 8
                continue
            size = (data[p + 1] + 2) * 4 if nh == NH_AH else (data[p + 1] + 1) * 8
            if p + size > end:
                self._short("ext", f"extension header {nh} of {size} bytes", src, dst, tunnels)
                return
            nh = data[p]
            p += size

        ip = IPv6Header(
            src,
            dst,
            hlim,
            (first >> 20) & 0xFF,
            first & 0xFFFFF,
            plen,
            tuple(chain),
            nh,
            frag,
            tunnels,
        )
        self._upper(data, p, end, ip)

    def _fragment(
        self,
        data: bytes,
        off: int,
        fh: int,
        end: int,
        src: bytes,
        dst: bytes,
        ident: int,
        offset: int,
        more: bool,
        tunnels: tuple[TunnelLayer, ...],
    ) -> None:
        stats = self.stats
        stats.fragments += 1
        if self._snapped:
            self._short("fragment", "fragment cut by snaplen", src, dst, tunnels)
            return
        first_complete = True
        if offset == 0:
            first_complete = self._chain_complete(data, fh, end)
            if not first_complete:
                self._fragment_anomaly((src, dst, ident, tunnels), "incomplete_chain")
        # The key carries the link and tunnel context: the same (src, dst, id)
        # on two VLANs or inside two tunnels are different datagrams.
        key = (src, dst, ident, tunnels, self._iface, self._vlans)
        prefix = data[off : fh + 8]
        done, anomalies = self.reassembler.add(
            key, self._ts, offset, more, data[fh + 8 : end], prefix, first_complete
        )
        for akey, kind in anomalies:
            self._fragment_anomaly(akey, kind)
        if done is None:
            return
        stats.reassembled += 1
        buf = done.prefix + done.payload
        plen = len(buf) - 40
        if plen > 0xFFFF:
            self._fragment_anomaly(key, "oversize")
            return
        buf = buf[:4] + _U16.pack(plen) + buf[6:]
        info = FragmentInfo(ident, done.count, False, done.first_chain_complete)
        self._ipv6(buf, 0, len(buf), tunnels, info)

    @staticmethod
    def _chain_complete(data: bytes, fh: int, end: int) -> bool:
        """RFC 7112: does the first fragment hold every header up to the upper layer?"""
        nh, p = data[fh], fh + 8
        for _ in range(64):
            if nh in EXT_HEADERS and nh != NH_FRAGMENT:
                if end - p < 2:
                    return False
                size = (data[p + 1] + 2) * 4 if nh == NH_AH else (data[p + 1] + 1) * 8
                nh = data[p]
                p += size
                continue
            break
        need = {NH_TCP: 20, NH_UDP: 8, NH_ICMPV6: 4}.get(nh, 0)
        return end - p >= need

    # -- upper layers --------------------------------------------------------

    def _upper(self, data: bytes, p: int, end: int, ip: IPv6Header) -> None:
        nh = ip.upper
        sport = dport = itype = icode = flags = None
        if nh == NH_ICMPV6:
            if end - p < 4:
                self._short("icmpv6", "ICMPv6 header", ip.src, ip.dst, ip.tunnels)
                return
            itype, icode = data[p], data[p + 1]
            if 133 <= itype <= 137:
                self.stats.nd += 1
                event = nd.parse_nd(self.meta(), ip, data, p, end)
                if event is None:
                    if self._snapped:
                        self._short("nd", f"ND type {itype} body", ip.src, ip.dst, ip.tunnels)
                    else:
                        self._malformed(
                            "nd",
                            "short_message",
                            f"ND type {itype} shorter than its fixed part",
                            ip.src,
                            ip.dst,
                            ip.tunnels,
                        )
                else:
                    self._events.append(event)
                    errors = event.option_errors
                    if self._snapped:  # an option cut by the snaplen is not the sender's fault
                        errors = tuple(e for e in errors if e.reason != "truncated")
                        if len(errors) < len(event.option_errors):
                            self._short("nd", "options cut by the snaplen")
                    if errors:
                        reasons = ",".join(sorted({e.reason for e in errors}))
                        self._malformed("nd", "bad_option", reasons, ip.src, ip.dst, ip.tunnels)
        elif nh == NH_TCP:
            if end - p >= 14:
                sport, dport = _U16.unpack_from(data, p)[0], _U16.unpack_from(data, p + 2)[0]
                flags = data[p + 13]
        elif nh == NH_UDP:
            if end - p >= 8:
                sport, dport = _U16.unpack_from(data, p)[0], _U16.unpack_from(data, p + 2)[0]
        elif nh == NH_IPV6:
            self._tunnel(data, p, end, ip.tunnels, TunnelLayer("6in6", ip.src, ip.dst), 6)
        elif nh == NH_IPV4:
            self._tunnel(data, p, end, ip.tunnels, TunnelLayer("4in6", ip.src, ip.dst), 4)
        if self.want_packets:
            quoted = None
            if itype is not None and itype < 128 and end - p >= 48 and data[p + 8] >> 4 == 6:
                quoted = data[p + 16 : p + 32]  # the invoking packet's source (RFC 4443 2.1)
            self._events.append(
                Ipv6Packet(self.meta(), ip, sport, dport, itype, icode, flags, quoted)
            )
