"""The target-generation scan family's regression captures (``pcaps/generate.py`` runs
the ``cap_*`` here).

Owns three deterministic captures on R1's upstream link, all into the site
2001:db8:1::/48 from outside, each over 40 of its /64s (below ``ipv6.sweep``'s
wide_min_prefixes, and 8 targets per /64, far below its medium tier):
``tga_clustered.pcap``, echo requests to targets drawn from one nibble cluster (four
varying nibbles: two of the subnet, two of the identifier), as 6Gen or Entropy/IP
generate them; ``tga_lowbyte.pcap``, TCP SYNs to ::1 .. ::8 of every /64; and
``tga_cdn_benign.pcap``, a client opening TCP connections to 400 addresses of a CDN's
/48, every one answered. From the review of issue 15: ``tga_udp_eui64.pcap``, DNS queries
(UDP to port 53) to EUI-64 targets; ``tga_embedded_ipv4.pcap``, echo requests to
identifiers embedding IPv4 addresses (::c000:2XY); and ``tga_udp_benign.pcap``, a resolver
farm whose DNS queries to a provider's 400 servers are answered, and one of those servers
answering 400 clients across 40 /64s of one /48.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from pcaps.generate import (
    R1_MAC,
    UPSTREAM_MAC,
    Frame,
    a6,
    at,
    dns_message,
    echo6,
    eth,
    ip6,
    tcp6,
    udp6,
    write_pcap,
)

SITE = a6("2001:db8:1::")  # the /48 scanned
SUBNETS = 40
PER_SUBNET = 8


def subnet(n: int) -> bytes:
    """The /64 2001:db8:1:n::/64 as its first 8 bytes."""
    return SITE[:6] + struct.pack("!H", n)


def inbound(packet: bytes) -> bytes:
    return eth(packet, UPSTREAM_MAC, R1_MAC)


def outbound(packet: bytes) -> bytes:
    return eth(packet, R1_MAC, UPSTREAM_MAC)


def syn(src: bytes, dst: bytes, sport: int, dport: int, flags: int = 0x02) -> bytes:
    return ip6(src, dst, 6, tcp6(src, dst, sport, dport, flags), 57)


def cap_tga_clustered(out: Path) -> None:
    """2001:db8:bad::15 pings 320 targets of one nibble cluster over 40 /64s; 3 answer."""
    rng = random.Random(15)
    scanner = a6("2001:db8:bad::15")
    frames: list[Frame] = []
    t = 1.0
    for n in range(SUBNETS):
        # Eight of the cluster's 128 identifiers 1a2b:3c4d:0X00:00Y0 per /64.
        for x, y in sorted(rng.sample([(x, y) for x in range(8) for y in range(16)], PER_SUBNET)):
            target = subnet(n) + bytes([0x1A, 0x2B, 0x3C, 0x4D, x, 0, 0, y << 4])
            frames.append((at(t), inbound(echo6(scanner, target, 0x15, len(frames), 57))))
            if n % 16 == 3 and x == 0:
                frames.append((at(t + 0.002), outbound(echo6(target, scanner, 0x15, 0, 64, True))))
            t += 0.01
    write_pcap(out / "tga_clustered.pcap", frames)


def cap_tga_lowbyte(out: Path) -> None:
    """2001:db8:bad::16 sends TCP SYNs to ::1 .. ::8 of 40 /64s; the ::1s of two answer."""
    scanner = a6("2001:db8:bad::16")
    frames: list[Frame] = []
    t = 1.0
    for n in range(SUBNETS):
        for host in range(1, PER_SUBNET + 1):
            target = subnet(n) + struct.pack("!Q", host)
            frames.append((at(t), inbound(syn(scanner, target, 40000 + host, 22))))
            if host == 1 and n in (0, 7):
                frames.append(
                    (at(t + 0.002), outbound(syn(target, scanner, 22, 40000 + host, 0x12)))
                )
            t += 0.01
    write_pcap(out / "tga_lowbyte.pcap", frames)


def cap_tga_cdn_benign(out: Path) -> None:
    """Client 2001:db8:1::c0 opens TCP connections to 400 addresses over 40 /64s of a
    CDN's /48 (2001:db8:cd::/48); every one answers SYN-ACK."""
    client = a6("2001:db8:1::c0")
    rng = random.Random(1515)
    frames: list[Frame] = []
    t = 1.0
    for i in range(400):
        server = a6("2001:db8:cd::")[:6] + struct.pack("!H", i % 40) + rng.randbytes(8)
        sport = 50000 + i
        frames.append((at(t), outbound(syn(client, server, sport, 443))))
        frames.append((at(t + 0.01), inbound(syn(server, client, 443, sport, 0x12))))
        frames.append((at(t + 0.011), outbound(syn(client, server, sport, 443, 0x10))))
        t += 0.05
    write_pcap(out / "tga_cdn_benign.pcap", frames)


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, hlim: int = 57) -> bytes:
    return ip6(src, dst, 17, udp6(src, dst, sport, dport, payload), hlim)


def cap_tga_udp_eui64(out: Path) -> None:
    """2001:db8:bad::17 sends DNS queries to 320 EUI-64 targets over 40 /64s
    (:250:56ff:fe0X:Ya5, VMware's OUI with the universal/local bit); 3 answer."""
    rng = random.Random(1517)
    scanner = a6("2001:db8:bad::17")
    frames: list[Frame] = []
    t = 1.0
    for n in range(SUBNETS):
        for x, y in sorted(rng.sample([(x, y) for x in range(8) for y in range(16)], PER_SUBNET)):
            target = subnet(n) + bytes([0x02, 0x50, 0x56, 0xFF, 0xFE, x, y, 0xA5])
            sport = 40000 + len(frames)
            query = dns_message(len(frames), "example.com")
            frames.append((at(t), inbound(udp(scanner, target, sport, 53, query))))
            if n % 16 == 5 and x == 0:
                answer = dns_message(len(frames) - 1, "example.com", bytes(16))
                frames.append(
                    (at(t + 0.002), outbound(udp(target, scanner, 53, sport, answer, 64)))
                )
            t += 0.01
    write_pcap(out / "tga_udp_eui64.pcap", frames)


def cap_tga_embedded_ipv4(out: Path) -> None:
    """2001:db8:bad::18 pings 320 targets embedding 192.0.2.0/25 (::c000:2XY) over 40
    /64s; none answers."""
    rng = random.Random(1518)
    scanner = a6("2001:db8:bad::18")
    frames: list[Frame] = []
    t = 1.0
    for n in range(SUBNETS):
        for host in sorted(rng.sample(range(128), PER_SUBNET)):
            target = subnet(n) + bytes([0, 0, 0, 0, 192, 0, 2, host])
            frames.append((at(t), inbound(echo6(scanner, target, 0x18, len(frames), 57))))
            t += 0.01
    write_pcap(out / "tga_embedded_ipv4.pcap", frames)


def cap_tga_udp_benign(out: Path) -> None:
    """A resolver farm's /64 (2001:db8:1:ff::/64) sends DNS queries to 400 servers over
    40 /64s of a provider's /48 (2001:db8:5e::/48), every one answered; and one of them
    answers 400 clients spread over 40 /64s of 2001:db8:1::/48 (its answers come from
    port 53: replies, not probes)."""
    rng = random.Random(1519)
    provider = a6("2001:db8:5e::")
    servers = [provider[:6] + struct.pack("!H", i % 40) + rng.randbytes(8) for i in range(400)]
    farm = a6("2001:db8:1:ff::")[:8]
    frames: list[Frame] = []
    t = 1.0
    for i, server in enumerate(servers):
        client = farm + struct.pack("!Q", 0x53 + i % 4)
        sport = 20000 + i
        frames.append(
            (at(t), outbound(udp(client, server, sport, 53, dns_message(i, "example.com"))))
        )
        answer = dns_message(i, "example.com", bytes(16))
        frames.append((at(t + 0.004), inbound(udp(server, client, 53, sport, answer))))
        t += 0.01
    for i in range(400):
        client = subnet(i % 40) + rng.randbytes(8)
        sport = 30000 + i
        query = dns_message(i, "example.org")
        frames.append((at(t), outbound(udp(client, servers[0], sport, 53, query))))
        answer = dns_message(i, "example.org", bytes(16))
        frames.append((at(t + 0.004), inbound(udp(servers[0], client, 53, sport, answer))))
        t += 0.01
    write_pcap(out / "tga_udp_benign.pcap", frames)
