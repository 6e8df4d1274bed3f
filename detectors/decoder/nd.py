"""ICMPv6 Neighbor Discovery bodies and options (RFC 4861, 4191, 8106, 3971).

Owns turning the bytes of one ND message into a typed ``NDMessage``. Does not
walk IPv6 headers or decide anything about the message: ``core`` hands it the
message bounds, detections judge the result.

Options are parsed from a table keyed by option type. Every length is checked
before use; a zero length or an option running past the message stops the walk
(a zero-length option would otherwise loop forever), a wrong but well-formed
length is reported and skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from detectors.events import (
    ND_CLASSES,
    DNSSLOption,
    IPv6Header,
    LinkLayerAddressOption,
    MTUOption,
    NDMessage,
    NDOption,
    NeighborAdvertisement,
    NeighborSolicitation,
    NonceOption,
    OptionError,
    PacketMeta,
    PrefixInformationOption,
    RDNSSOption,
    Redirect,
    RedirectedHeaderOption,
    RouteInformationOption,
    RouterAdvertisement,
    RouterSolicitation,
    UnknownOption,
)

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_RA = struct.Struct("!BBHII")  # cur hop limit, flags, lifetime, reachable, retrans
_PREFIX = struct.Struct("!BBII4x16s")

# Fixed part of each message, ICMPv6 header included (RFC 4861 section 4).
FIXED_LEN = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}

# RFC 4191 section 2.1: 01 high, 00 medium, 11 low, 10 reserved.
_PREFERENCE = {0: 0, 1: 1, 3: -1, 2: 2}


class _BadValue(ValueError):
    """An option whose length is right but whose content is not."""


def _lla(otype: int, off: int, body: bytes) -> NDOption:
    # One unit holds an Ethernet MAC (RFC 2464); longer options carry other link
    # types' addresses, kept whole rather than cut to a made-up MAC.
    return LinkLayerAddressOption(otype, off, body[2:8] if body[1] == 1 else body[2:])


def _prefix(otype: int, off: int, body: bytes) -> NDOption:
    plen, flags, valid, preferred, prefix = _PREFIX.unpack_from(body, 2)
    if plen > 128:
        raise _BadValue("prefix length above 128")
    return PrefixInformationOption(
        otype,
        off,
        prefix_len=plen,
        on_link=bool(flags & 0x80),
        autonomous=bool(flags & 0x40),
        router_address=bool(flags & 0x20),
        valid_lifetime=valid,
        preferred_lifetime=preferred,
        prefix=prefix,
    )


def _redirected(otype: int, off: int, body: bytes) -> NDOption:
    return RedirectedHeaderOption(otype, off, data_len=len(body) - 8)


def _mtu(otype: int, off: int, body: bytes) -> NDOption:
    return MTUOption(otype, off, mtu=_U32.unpack_from(body, 4)[0])


def _nonce(otype: int, off: int, body: bytes) -> NDOption:
    return NonceOption(otype, off, nonce=body[2:])


def _route(otype: int, off: int, body: bytes) -> NDOption:
    plen = body[2]
    if plen > 128:
        raise _BadValue("prefix length above 128")
    # RFC 4191 2.3: the length must cover the prefix (1: /0, 2: up to /64, 3: any).
    units = body[1]
    if (plen > 64 and units < 3) or (plen > 0 and units < 2):
        raise _BadValue(f"length {units} too short for a /{plen}")
    prefix = body[8 : 8 + (units - 1) * 8].ljust(16, b"\0")[:16]
    return RouteInformationOption(
        otype,
        off,
        prefix_len=plen,
        preference=_PREFERENCE[(body[3] >> 3) & 3],
        lifetime=_U32.unpack_from(body, 4)[0],
        prefix=prefix,
    )


def _rdnss(otype: int, off: int, body: bytes) -> NDOption:
    servers = tuple(body[i : i + 16] for i in range(8, len(body), 16))
    return RDNSSOption(otype, off, lifetime=_U32.unpack_from(body, 4)[0], servers=servers)


def _dnssl(otype: int, off: int, body: bytes) -> NDOption:
    domains: list[str] = []
    labels: list[str] = []
    i, end = 8, len(body)
    while i < end:
        n = body[i]
        if n == 0:
            if labels:
                domains.append(".".join(labels))
                labels = []
            i += 1  # a zero ends a name, and trailing zeros are padding
            continue
        if n > 63 or i + 1 + n > end:
            raise _BadValue("label runs past the option")
        labels.append(body[i + 1 : i + 1 + n].decode("ascii", "backslashreplace"))
        i += 1 + n
    if labels:
        raise _BadValue("domain name not terminated")
    return DNSSLOption(otype, off, lifetime=_U32.unpack_from(body, 4)[0], domains=tuple(domains))


def _rdnss_len_ok(units: int) -> bool:
    # RFC 8106: 1 + 2n units. An even length is CVE-2020-16898 ("Bad Neighbor").
    return units >= 3 and units % 2 == 1


_Parser = Callable[[int, int, bytes], NDOption]
# type -> (length check on the 8-octet unit count, parser)
OPTION_TABLE: dict[int, tuple[Callable[[int], bool], _Parser]] = {
    1: (lambda n: n >= 1, _lla),
    2: (lambda n: n >= 1, _lla),
    3: (lambda n: n == 4, _prefix),
    4: (lambda n: n >= 1, _redirected),
    5: (lambda n: n == 1, _mtu),
    14: (lambda n: n >= 1, _nonce),
    24: (lambda n: 1 <= n <= 3, _route),
    25: (_rdnss_len_ok, _rdnss),
    31: (lambda n: n >= 2, _dnssl),
}


def parse_options(
    data: bytes, start: int, end: int, base: int
) -> tuple[tuple[NDOption, ...], tuple[OptionError, ...]]:
    """Parse options in ``data[start:end]``; offsets are relative to ``base``."""
    options: list[NDOption] = []
    errors: list[OptionError] = []
    p = start
    while p < end:
        off = p - base
        if end - p < 2:
            errors.append(OptionError(off, data[p], 0, "truncated"))
            break
        otype, units = data[p], data[p + 1]
        if units == 0:
            errors.append(OptionError(off, otype, 0, "zero_length"))
            break
        size = units * 8
        if p + size > end:
            errors.append(OptionError(off, otype, units, "truncated"))
            break
        body = data[p : p + size]
        entry = OPTION_TABLE.get(otype)
        if entry is None:
            options.append(UnknownOption(otype, off, data=body[2:]))
        elif not entry[0](units):
            errors.append(OptionError(off, otype, units, "bad_length"))
        else:
            try:
                options.append(entry[1](otype, off, body))
            except _BadValue:
                errors.append(OptionError(off, otype, units, "bad_value"))
        p += size
    return tuple(options), tuple(errors)


def icmpv6_checksum_ok(src: bytes, dst: bytes, data: bytes, start: int, end: int) -> bool:
    """Verify the ICMPv6 checksum (RFC 4443 2.3) over ``data[start:end]``."""
    msg = data[start:end]
    length = len(msg)
    if length % 2:
        msg += b"\0"
    words: tuple[int, ...] = struct.unpack(f"!{len(msg) // 2}H", msg)
    pseudo: tuple[int, ...] = struct.unpack("!16H", src + dst)
    total = sum(words) + sum(pseudo)
    total += (length >> 16) + (length & 0xFFFF) + 58
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def parse_nd(
    meta: PacketMeta, ip: IPv6Header, data: bytes, start: int, end: int
) -> NDMessage | None:
    """Build the ND event for the message at ``data[start:end]``.

    Returns ``None`` when the fixed part is shorter than RFC 4861 requires; the
    caller reports that as malformed.
    """
    itype, code = data[start], data[start + 1]
    fixed = FIXED_LEN[itype]
    if end - start < fixed:
        return None
    checksum_ok = icmpv6_checksum_ok(ip.src, ip.dst, data, start, end)
    options, errors = parse_options(data, start + fixed, end, start)
    common = (meta, ip, itype, code, checksum_ok, options, errors)
    cls = ND_CLASSES[itype]
    if cls is RouterAdvertisement:
        hop, flags, lifetime, reachable, retrans = _RA.unpack_from(data, start + 4)
        return RouterAdvertisement(
            *common,
            cur_hop_limit=hop,
            managed=bool(flags & 0x80),
            other=bool(flags & 0x40),
            home_agent=bool(flags & 0x20),
            preference=_PREFERENCE[(flags >> 3) & 3],
            proxy=bool(flags & 0x04),
            router_lifetime=lifetime,
            reachable_time=reachable,
            retrans_timer=retrans,
        )
    if cls is NeighborSolicitation:
        return NeighborSolicitation(*common, target=data[start + 8 : start + 24])
    if cls is NeighborAdvertisement:
        flags = data[start + 4]
        return NeighborAdvertisement(
            *common,
            router=bool(flags & 0x80),
            solicited=bool(flags & 0x40),
            override=bool(flags & 0x20),
            target=data[start + 8 : start + 24],
        )
    if cls is Redirect:
        return Redirect(
            *common, target=data[start + 8 : start + 24], destination=data[start + 24 : start + 40]
        )
    return RouterSolicitation(*common)
