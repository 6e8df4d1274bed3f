"""Target-pattern classes of IPv6 interface identifiers (RFC 7707 section 4.1).

Owns naming the pattern a scanner's target follows, from the 64-bit
interface identifier alone: ``eui64`` (with its OUI), ``wordy``,
``ipv4_embedded``, ``port_embedded``, ``low_byte`` or ``random``. Scanners
built on target-generation algorithms and hitlists concentrate on exactly
these patterns, so the mix tells an analyst what kind of scanner it is. Does
not count anything; the sweep detection samples targets and calls
``classify``.
"""

from __future__ import annotations

import struct

CLASSES = ("low_byte", "eui64", "ipv4_embedded", "port_embedded", "wordy", "random")

# Service ports scanners embed (RFC 7707 4.1.1.3), as the number and as its
# decimal digits read as hex (::80 is 0x80, ::443 is 0x443).
_PORTS: tuple[int, ...] = (
    21,
    22,
    23,
    25,
    53,
    80,
    110,
    143,
    389,
    443,
    445,
    587,
    993,
    995,
    1433,
    3306,
    3389,
    5432,
    8080,
    8443,
)
PORT_WORDS = frozenset(_PORTS) | frozenset(int(str(p), 16) for p in _PORTS)
# 16-bit groups that spell words (RFC 7707 4.1.1.5).
WORDS = frozenset(
    int(w, 16)
    for w in [
        "dead",
        "beef",
        "cafe",
        "babe",
        "face",
        "fade",
        "feed",
        "f00d",
        "c0de",
        "b00c",
        "d00d",
        "c0ff",
        "ace",
        "bad",
        "bed",
        "bee",
        "abba",
        "1337",
        "fee",
        "d1e5",
        "b0b",
        "5ec",
        "5eed",
    ]
)


def _decimal_octet(group: int) -> bool:
    """A group like 0x192 that reads as a decimal octet (192) when printed."""
    text = f"{group:x}"
    return text.isdigit() and int(text) <= 255


def classify(iid: bytes) -> str:
    """The pattern class of an 8-byte interface identifier."""
    if iid[3:5] == b"\xff\xfe":
        return "eui64"
    g0, g1, g2, g3 = struct.unpack("!4H", iid)
    groups = (g0, g1, g2, g3)
    if any(g in WORDS for g in groups if g):
        return "wordy"
    if g0 == 0 and g1 == 0:
        if g2 >= 0x100:  # ::c000:201, an IPv4 address in the low 32 bits
            return "ipv4_embedded"
        if g3 in PORT_WORDS or (g2 in PORT_WORDS and g3 <= 0xFF):
            return "port_embedded"
        return "low_byte"
    if all(_decimal_octet(g) for g in groups) and g0:  # ::192:0:2:1 style
        return "ipv4_embedded"
    return "random"


def eui64_oui(iid: bytes) -> str:
    """The OUI of an EUI-64 identifier, universal/local bit restored (aa:bb:cc)."""
    return bytes([iid[0] ^ 0x02, iid[1], iid[2]]).hex(":")
