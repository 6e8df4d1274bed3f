"""The covert family's regression capture: data hidden in options and Flow Labels.

Owns ``covert_channel.pcap``: benign traffic (RAs, SLAAC, DNS, TCP), then
- benign: MLD reports behind the usual Hop-by-Hop Router Alert, Mobile IPv6 packets
  whose Home Address option is aligned by a normal PadN, a UDP flow with a constant
  Flow Label;
- ``atk6-covert_send6``'s packet shape: echo requests whose Destination Options hold an
  id (0x10), a sequence number (0x11), a file chunk (0x12) and an end marker (0x1f);
- a Hop-by-Hop header whose PadN carries text, from another source;
- a UDP flow whose Flow Label carries 20 bits of a message per packet;
- one Destination Options header of 24 empty experimental options (more than the
  decoder's option limit: ``malformed`` too_many_options).
"""

from __future__ import annotations

import struct
from pathlib import Path

from pcaps.generate import (
    a6,
    at,
    benign_traffic,
    echo6,
    ext,
    host,
    icmp6,
    ip6,
    lan,
    udp6,
    write_pcap,
)

CAPTURE = "covert_channel.pcap"
TARGET = a6("2001:db8:1::100")
SERVER = a6("2001:db8:ffff::53")
FILE = b"user=alice;pass=correct-horse-battery-staple;host=db1.example;" * 2


def ip6_label(src: bytes, dst: bytes, nh: int, payload: bytes, label: int, hlim: int = 64) -> bytes:
    """An IPv6 header with Flow Label ``label``."""
    first = 0x60000000 | (label & 0xFFFFF)
    return struct.pack("!IHBB", first, len(payload), nh, hlim) + src + dst + payload


def covert_send6_options(ident: int, seq: int, chunk: bytes) -> bytes:
    """The options atk6-covert_send6 writes (its source: types 16, 17, 18.., 0x1f)."""
    opts = bytes([0x10, 4]) + struct.pack("<I", ident) + bytes([0x11, 4]) + struct.pack("<I", seq)
    opts += bytes([0x12, len(chunk)]) + chunk + bytes([0x1F, 0])
    pad = -(len(opts) + 2) % 8
    if pad == 1:
        opts += b"\0"
    elif pad:
        opts += bytes([1, pad - 2]) + bytes(pad - 2)
    return opts


def cap_covert_channel(out: Path) -> None:
    frames = benign_traffic(0, 300)
    m1, ll1, gl1 = host(1)
    m2, _, gl2 = host(2)
    # Benign: MLDv2 reports behind Hop-by-Hop Router Alert + PadN 0 (RFC 3810 5).
    mld_dst = a6("ff02::16")
    record = bytes([4, 0]) + struct.pack("!H", 0) + a6("ff02::1:3")
    for i in range(3):
        body = struct.pack("!HH", 0, 1) + record
        hbh = ext(58, bytes([5, 2, 0, 0, 1, 0]))
        frames.append(
            (at(20 + i), lan(ip6(ll1, mld_dst, 0, hbh + icmp6(ll1, mld_dst, 143, body), 1), m1))
        )
    # Benign: Mobile IPv6 Home Address option (8n+6) aligned by PadN 2 (RFC 6275 6.3).
    home = a6("2001:db8:99::7")
    for i in range(3):
        dest = ext(58, bytes([1, 2, 0, 0, 0xC9, 16]) + home)
        echo = icmp6(gl2, TARGET, 128, struct.pack("!HH", 9, i) + b"v6sentry")
        frames.append((at(30 + i), lan(ip6(gl2, TARGET, 60, dest + echo, 64), m2)))
    # Benign: one UDP flow, one Flow Label (RFC 6437).
    for i in range(40):
        dgram = udp6(gl1, SERVER, 40053, 53, struct.pack("!H", i) + bytes(10))
        frames.append((at(40 + i * 0.5), lan(ip6_label(gl1, SERVER, 17, dgram, 0x5A5A5), m1)))

    # atk6-covert_send6: the file in 40-byte chunks behind Destination Options.
    a1_mac, a1 = bytes([2, 0, 0, 0, 0x66, 1]), a6("2001:db8:1::bad:1")
    for seq, off in enumerate(range(0, len(FILE), 40), 1):
        dest = ext(58, covert_send6_options(0x1337, seq, FILE[off : off + 40]))
        echo = icmp6(a1, TARGET, 128, bytes(4))
        frames.append((at(100 + seq * 0.01), lan(ip6(a1, TARGET, 60, dest + echo, 64), a1_mac)))
    # Text in a PadN of the right length, whose bytes must be zero: 4 bytes a packet.
    a2_mac, a2 = bytes([2, 0, 0, 0, 0x66, 2]), a6("2001:db8:1::bad:2")
    secret = b"exfiltrated in padn, four at a time"
    for i in range(0, len(secret) - 3, 4):
        hbh = ext(58, bytes([1, 4]) + secret[i : i + 4])
        packet = echo6(a2, TARGET, 7, i)
        frames.append((at(120 + i * 0.1), lan(ip6(a2, TARGET, 0, hbh + packet[40:], 64), a2_mac)))
    # A message in the Flow Labels of one UDP flow: 20 bits per packet.
    a3_mac, a3 = bytes([2, 0, 0, 0, 0x66, 3]), a6("2001:db8:1::bad:3")
    message = b"the flow label hides twenty bits a packet!!"
    bits = int.from_bytes(message, "big")
    chunks = (len(message) * 8 + 19) // 20
    for i in range(chunks):
        label = (bits >> (20 * (chunks - 1 - i))) & 0xFFFFF
        dgram = udp6(a3, SERVER, 41000, 53, struct.pack("!H", i) + bytes(10))
        frames.append((at(140 + i * 0.2), lan(ip6_label(a3, SERVER, 17, dgram, label), a3_mac)))
    # 24 empty experimental options (RFC 3692 type 0x1e): past max_ext_options (16).
    a4_mac, a4 = bytes([2, 0, 0, 0, 0x66, 4]), a6("2001:db8:1::bad:4")
    dest = ext(58, bytes([0x1E, 0]) * 24 + bytes([1, 0]))
    frames.append(
        (at(160), lan(ip6(a4, TARGET, 60, dest + echo6(a4, TARGET, 8, 1)[40:], 64), a4_mac))
    )
    write_pcap(out / CAPTURE, sorted(frames))
