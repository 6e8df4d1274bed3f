#!/usr/bin/env python3
"""Deterministic generator of v6sentry's labelled regression captures.

Usage: ``python pcaps/generate.py [--out DIR]`` (default: this folder); ``make pcaps``.

Owns: the frame builders (also imported by ``tests/test_decoder.py``, so their
signatures are an interface) and the scenario of every capture in ``pcaps/``:
what traffic each holds, at what time and in what order, in which file format.

Family captures: a detection family may keep its own writers in
``detectors/detections/<family>/captures.py`` (``cap_*`` functions taking the output
folder, built with this module's builders: ``from pcaps.generate import ...``) and
their manifest entries in ``captures.yaml`` beside it (merged by ``tests/golden.py``).
They are found by walking the folders, never by importing ``detectors``; folders named
in ``V6SENTRY_EXTRA_DETECTIONS`` count too, as for ``v6sentry`` itself. Family writers
run after this module's, family by family in name order.

Does not own: what should be detected. ``pcaps/manifest.yaml`` states the
expected alert counts per capture (by hand, from the detection semantics),
``pcaps/policy*.yaml`` the policies, and ``pcaps/golden/`` (``make golden``)
pins the exact alerts. Nothing here imports ``detectors``: the captures must
not be shaped by the code they test.

Determinism: fixed timestamps (integer nanoseconds from ``T0``), one seeded
``random.Random`` only, no wall clock, gzip with ``mtime=0`` and no file name;
two runs write byte-identical files.

Addresses are documentation ranges only: 2001:db8::/32, 192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24, link-local, multicast, and 6to4/Teredo/ISATAP
forms built from those IPv4 ranges; MACs are 02:00:00:xx:xx:xx. Two exceptions,
kept on purpose: the Teredo server's link-local fe80::8000:f227:bec8:61af, the
address real Teredo qualification RAs come from, and the 6to4 relay anycast
address 192.88.99.1 (RFC 3068), which ``tunnels_6to4.pcap`` must use because
the 6to4 detection keys on 192.88.99.0/24. The EUI-64 sweep's targets embed
real OUIs (00:50:56, 00:0c:29, 52:54:00) in 2001:db8:: interface IDs, since the
pattern is what it tests; no frame carries those MACs.

Building: IPv4 headers and ARP with dpkt; ND bodies and options, extension
headers, fragments and tunnel headers with ``struct`` (dpkt builds no ND
bodies and trips over some chains), with every ICMPv6/UDP/TCP/Mobility
checksum computed here over the proper pseudo-header. pcap files go through
``dpkt.pcap.Writer`` (exact nanoseconds via ``Fraction`` timestamps); records
cut by the snaplen and all pcapng files (several interfaces, each with its
own ``if_tsresol``) are packed with ``struct``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import ipaddress
import os
import random
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import dpkt

T0 = 1_700_000_000  # seconds: every capture starts here
S = 1_000_000_000

Frame = tuple[int, bytes]  # (timestamp ns, frame bytes)


# -- addresses -------------------------------------------------------------------


def a6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def a4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


R1_LL, R1_MAC = a6("fe80::1"), mac("02:00:00:00:01:01")
R2_LL, R2_MAC = a6("fe80::2"), mac("02:00:00:00:01:02")
BAD_LL, BAD_MAC = a6("fe80::bad"), mac("02:00:00:00:66:66")
ALL_NODES, ALL_ROUTERS = a6("ff02::1"), a6("ff02::2")
PREFIX = a6("2001:db8:1::")
DNS1 = a6("2001:db8:1::53")


def host(n: int) -> tuple[bytes, bytes, bytes]:
    """Host n: (MAC, link-local EUI-64 address, global SLAAC address)."""
    m = bytes([2, 0, 0, 0, 2, n])
    iid = bytes([m[0] ^ 2]) + m[1:3] + b"\xff\xfe" + m[3:]
    return m, a6("fe80::")[:8] + iid, PREFIX[:8] + iid


def solicited_node(addr: bytes) -> bytes:
    return a6("ff02::1:ff00:0")[:13] + addr[13:]


def multicast_mac(addr: bytes) -> bytes:
    return b"\x33\x33" + addr[12:]


# -- checksums and headers -----------------------------------------------------------


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def upper(src: bytes, dst: bytes, nh: int, segment: bytes, csum_at: int) -> bytes:
    """Fill the transport checksum of ``segment`` (IPv6 pseudo-header, RFC 8200 8.1)."""
    pseudo = src + dst + struct.pack("!I3xB", len(segment), nh)
    value = checksum(pseudo + segment[:csum_at] + b"\0\0" + segment[csum_at + 2 :])
    return segment[:csum_at] + struct.pack("!H", value) + segment[csum_at + 2 :]


def icmp6(src: bytes, dst: bytes, itype: int, body: bytes, code: int = 0) -> bytes:
    return upper(src, dst, 58, bytes([itype, code, 0, 0]) + body, 2)


def udp6(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    return upper(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload, 6)


def tcp_header(sport: int, dport: int, flags: int, seq: int = 1, ack: int = 0) -> bytes:
    """A 20-byte TCP header with a zero checksum (filled by ``tcp6`` or ``ipv4``)."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)


def tcp6(
    src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int = 1, ack: int = 0
) -> bytes:
    return upper(src, dst, 6, tcp_header(sport, dport, flags, seq, ack), 16)


def ip6(src: bytes, dst: bytes, nh: int, payload: bytes, hlim: int = 255) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, hlim) + src + dst + payload


def eth(
    payload: bytes,
    src: bytes,
    dst: bytes,
    etype: int = 0x86DD,
    vlans: Iterable[tuple[int, int]] = (),
) -> bytes:
    """Ethernet II; ``vlans`` is (TPID, VLAN id) pairs, outermost first."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return dst + src + tags + struct.pack("!H", etype) + payload


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1) -> bytes:
    """An IPv4 packet (dpkt fills the header checksum).

    A TCP or UDP ``payload`` with a zero checksum gets it filled here over the
    IPv4 pseudo-header (RFC 768, RFC 9293), so ``udp4`` and ``tcp_header``
    need not know the addresses.
    """
    csum_at = {6: 16, 17: 6}.get(proto)
    if (
        csum_at is not None
        and len(payload) >= csum_at + 2
        and payload[csum_at : csum_at + 2] == b"\0\0"
    ):
        pseudo = src + dst + struct.pack("!xBH", proto, len(payload))
        value = checksum(pseudo + payload)
        if proto == 17 and value == 0:
            value = 0xFFFF  # zero means "no checksum" in UDP over IPv4
        payload = payload[:csum_at] + struct.pack("!H", value) + payload[csum_at + 2 :]
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=ident, data=payload)
    ip.len = 20 + len(payload)
    return bytes(ip)


def udp4(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram with a zero checksum, for ``ipv4`` to fill."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def arp_request(sender_mac: bytes, sender_ip: bytes, target_ip: bytes) -> bytes:
    """An Ethernet/IPv4 ARP request (dpkt's ARP defaults: hrd 1, pro 0x0800)."""
    return bytes(
        dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REQUEST, sha=sender_mac, spa=sender_ip, tpa=target_ip)
    )


# -- Neighbor Discovery ----------------------------------------------------------------


def opt(otype: int, body: bytes) -> bytes:
    """An ND option with a correct length (body padded to a multiple of 8 with the header)."""
    body += bytes(-(len(body) + 2) % 8)
    return bytes([otype, (len(body) + 2) // 8]) + body


def slla(m: bytes) -> bytes:
    return opt(1, m)


def tlla(m: bytes) -> bytes:
    return opt(2, m)


def pio(prefix: bytes, plen: int = 64, valid: int = 86400, preferred: int = 14400) -> bytes:
    return opt(3, struct.pack("!BBII4x16s", plen, 0xC0, valid, preferred, prefix))


def mtu_opt(value: int) -> bytes:
    return opt(5, struct.pack("!HI", 0, value))


def rdnss(*servers: bytes, lifetime: int = 3600) -> bytes:
    return opt(25, struct.pack("!HI", 0, lifetime) + b"".join(servers))


def dnssl(*domains: str, lifetime: int = 3600) -> bytes:
    wire = b"".join(
        b"".join(bytes([len(label)]) + label.encode() for label in d.split(".")) + b"\0"
        for d in domains
    )
    return opt(31, struct.pack("!HI", 0, lifetime) + wire)


def rio(prefix: bytes, plen: int, units: int, pref: int = 0, lifetime: int = 1800) -> bytes:
    body = struct.pack("!BBI", plen, (pref & 3) << 3, lifetime) + prefix[: (units - 1) * 8]
    return bytes([24, units]) + body


def nonce(value: bytes) -> bytes:
    return opt(14, value)


def ra(
    src: bytes, options: bytes, lifetime: int = 1800, flags: int = 0, dst: bytes = ALL_NODES
) -> bytes:
    body = struct.pack("!BBHII", 64, flags, lifetime, 0, 0) + options
    return ip6(src, dst, 58, icmp6(src, dst, 134, body))


def rs(src: bytes, m: bytes) -> bytes:
    return ip6(src, ALL_ROUTERS, 58, icmp6(src, ALL_ROUTERS, 133, bytes(4) + slla(m)))


def ns(src: bytes, dst: bytes, target: bytes, options: bytes) -> bytes:
    return ip6(src, dst, 58, icmp6(src, dst, 135, bytes(4) + target + options))


def na(src: bytes, dst: bytes, target: bytes, flags: int, options: bytes) -> bytes:
    return ip6(src, dst, 58, icmp6(src, dst, 136, bytes([flags, 0, 0, 0]) + target + options))


def redirect(src: bytes, dst: bytes, target: bytes, dest: bytes, options: bytes) -> bytes:
    return ip6(src, dst, 58, icmp6(src, dst, 137, bytes(4) + target + dest + options))


def router_ra(router: int = 1) -> bytes:
    """A legitimate RA as R1 or R2 sends it."""
    ll, m = (R1_LL, R1_MAC) if router == 1 else (R2_LL, R2_MAC)
    return ra(ll, slla(m) + mtu_opt(1500) + pio(PREFIX) + rdnss(DNS1))


def rogue_ra(src: bytes = BAD_LL, m: bytes = BAD_MAC) -> bytes:
    return ra(src, slla(m) + pio(a6("2001:db8:bad::")) + rdnss(a6("2001:db8:bad::53")), flags=0x08)


# -- extension headers and fragments ------------------------------------------------------


def ext(nh: int, body: bytes = bytes(6)) -> bytes:
    """A generic 8-octet-unit extension header (HBH, DestOpts, Routing, Mobility)."""
    body += bytes(-(len(body) + 2) % 8)
    return bytes([nh, (len(body) + 2) // 8 - 1]) + body


def mobility_brr(src: bytes, dst: bytes) -> bytes:
    """A Mobility header (RFC 6275): Binding Refresh Request, payload proto 59, checksum."""
    return upper(src, dst, 135, bytes([59, 0, 0, 0, 0, 0, 0, 0]), 4)


def fragment_packets(
    src: bytes, dst: bytes, nh: int, payload: bytes, size: int, ident: int, hlim: int = 255
) -> list[bytes]:
    """Split ``payload`` (the fragmentable part) into IPv6 fragments of ``size`` bytes."""
    out = []
    for off in range(0, len(payload), size):
        more = off + size < len(payload)
        fh = struct.pack("!BBHI", nh, 0, off | int(more), ident)
        out.append(ip6(src, dst, 44, fh + payload[off : off + size], hlim))
    return out


# -- tunnels -------------------------------------------------------------------------------


def teredo_addr(server: bytes, client: bytes, port: int, cone: bool = True) -> bytes:
    """RFC 4380 section 4: 2001:0::/32, server, flags, obfuscated port and client."""
    flags = b"\x80\x00" if cone else b"\x00\x00"
    return (
        b"\x20\x01\x00\x00"
        + server
        + flags
        + struct.pack("!H", port ^ 0xFFFF)
        + bytes(b ^ 0xFF for b in client)
    )


def teredo_origin(client: bytes, port: int) -> bytes:
    return b"\0\0" + struct.pack("!H", port ^ 0xFFFF) + bytes(b ^ 0xFF for b in client)


def teredo_auth(client_id: bytes = b"", auth: bytes = b"", nonce8: bytes = bytes(8)) -> bytes:
    return bytes([0, 1, len(client_id), len(auth)]) + client_id + auth + nonce8 + b"\0"


def ayiya(
    inner: bytes,
    epoch: int = T0,
    identity: bytes = a6("2001:db8:2::2"),
    opcode: int = 1,
    nh: int = 41,
) -> bytes:
    """AYIYA: 16-byte identity, SHA1 signature, shared-secret auth, ``opcode``, ``nh``.

    The default is a forward (opcode 1) of an IPv6 packet (next header 41); a
    heartbeat is opcode 0 (no-op) with next header 59 and no payload.
    """
    header = bytes([0x41, 0x52, 0x20 | opcode, nh]) + struct.pack("!I", epoch)
    return header + identity + bytes(20) + inner


# -- writers -----------------------------------------------------------------------------------


# dpkt's writer packs record headers in the host's byte order; cut records must match.
_PKT_HDR = dpkt.pcap.LEPktHdr if sys.byteorder == "little" else dpkt.pcap.PktHdr


def write_pcap(
    path: Path, frames: list[Frame], linktype: int = 1, nano: bool = False, snaplen: int = 65535
) -> None:
    """Classic pcap through ``dpkt.pcap.Writer``; frames over ``snaplen`` are cut.

    Timestamps are passed as exact ``Fraction`` seconds, so nanoseconds survive.
    dpkt's writer always records caplen == wire length, so a frame longer than
    ``snaplen`` gets its record header packed here (caplen < wire length), as
    tcpdump -s writes it.
    """
    buf = io.BytesIO()
    writer = dpkt.pcap.Writer(buf, snaplen=snaplen, linktype=linktype, nano=nano)
    for ts, frame in frames:
        if len(frame) <= snaplen:
            writer.writepkt_time(frame, Fraction(ts, S))
            continue
        sec, frac = divmod(ts, S)
        record = _PKT_HDR(
            tv_sec=sec, tv_usec=frac if nano else frac // 1000, caplen=snaplen, len=len(frame)
        )
        buf.write(bytes(record) + frame[:snaplen])
    path.write_bytes(buf.getvalue())


def write_pcapng(
    path: Path,
    interfaces: list[tuple[int, int, str]],
    records: list[tuple[int, int, bytes]],
) -> None:
    """``interfaces``: (linktype, tsresol exponent, if_name); ``records``: (iface, ts ns,
    frame). An empty name writes no if_name option."""

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, exp, name in interfaces:
        opts = struct.pack("<HH", 9, 1) + bytes([exp]) + bytes(3)
        if name:  # if_name (option 2): alerts carry it as in_iface
            raw = name.encode()
            opts += struct.pack("<HH", 2, len(raw)) + raw + bytes(-len(raw) % 4)
        opts += struct.pack("<HH", 0, 0)
        out += block(1, struct.pack("<HHI", linktype, 0, 65535) + opts)
    for iface, ts, frame in records:
        ticks = ts // 10 ** (9 - interfaces[iface][1])
        out += block(
            6,
            struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
            + frame,
        )
    path.write_bytes(out)


def gzip_copy(src: Path, dst: Path) -> None:
    with dst.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(src.read_bytes())


# -- scenarios ---------------------------------------------------------------------------------


def at(seconds: float) -> int:
    return T0 * S + round(seconds * S)


def lan(packet: bytes, src_mac: bytes, dst_mac: bytes | None = None) -> bytes:
    """An IPv6 packet on the Ethernet LAN; multicast destinations get 33:33 MACs."""
    dst = packet[24:40]
    return eth(packet, src_mac, dst_mac or (multicast_mac(dst) if dst[0] == 0xFF else R1_MAC))


def benign_traffic(start: float = 0.0, duration: float = 1000.0) -> list[Frame]:
    """Two routers advertising, hosts doing SLAAC, DAD, resolution and some traffic."""
    frames: list[Frame] = []
    t = start
    while t < start + duration:
        frames.append((at(t), lan(router_ra(1), R1_MAC)))
        frames.append((at(t + 7), lan(router_ra(2), R2_MAC)))
        t += 200
    for n in (1, 2, 3):
        m, ll, gl = host(n)
        base = start + 3 + n
        frames.append((at(base), lan(rs(ll, m), m)))
        dad = ns(bytes(16), solicited_node(gl), gl, nonce(bytes([n]) * 6))
        frames.append((at(base + 0.1), lan(dad, m)))
        frames.append((at(base + 1.2), lan(ns(gl, solicited_node(R1_LL), R1_LL, slla(m)), m)))
        reply = na(R1_LL, gl, R1_LL, 0xE0, tlla(R1_MAC))
        frames.append((at(base + 1.201), lan(reply, R1_MAC, m)))
        server = a6("2001:db8:ffff::80")
        syn = ip6(gl, server, 6, tcp6(gl, server, 40000 + n, 443, 0x02), 64)
        frames.append((at(base + 1.3), lan(syn, m)))
        ack = ip6(server, gl, 6, tcp6(server, gl, 443, 40000 + n, 0x12), 58)
        frames.append((at(base + 1.31), eth(ack, R1_MAC, m)))
        query = ip6(gl, DNS1, 17, udp6(gl, DNS1, 50000 + n, 53, b"\x12\x34" + bytes(10)), 64)
        frames.append((at(base + 1.4), lan(query, m)))
        v4 = ipv4(a4(f"192.0.2.{10 + n}"), a4("198.51.100.80"), 6, tcp_header(50000, 80, 0x02))
        frames.append((at(base + 1.5), eth(v4, m, R1_MAC, 0x0800)))
    arp = arp_request(host(1)[0], a4("192.0.2.11"), a4("192.0.2.1"))
    frames.append((at(start + 2), eth(arp, host(1)[0], b"\xff" * 6, 0x0806)))
    return sorted(frames)


def cap_benign_ra(out: Path) -> None:
    write_pcap(out / "benign_ra.pcap", benign_traffic())


def rogue_frames() -> list[Frame]:
    frames = benign_traffic()
    for t in (300, 310, 320):
        frames.append((at(t), lan(rogue_ra(), BAD_MAC)))
    frames.append((at(400), lan(rogue_ra(R1_LL, BAD_MAC), BAD_MAC)))  # spoofs R1's address
    return sorted(frames)


def cap_rogue_ra(out: Path) -> None:
    path = out / "rogue_ra.pcap"
    write_pcap(path, rogue_frames())
    gzip_copy(path, out / "rogue_ra.pcap.gz")
    # The same bytes cut in the middle of the last record, as a killed tcpdump leaves them.
    data = path.read_bytes()
    (out / "truncated.pcap").write_bytes(data[: len(data) - 20])


def cap_rogue_ra_learned(out: Path) -> None:
    frames = [(at(t), lan(router_ra(1), R1_MAC)) for t in range(0, 1401, 200)]
    frames += [(at(t), lan(rogue_ra(), BAD_MAC)) for t in (700, 900)]
    write_pcap(out / "rogue_ra_learned.pcap", sorted(frames))


def cap_rogue_ra_vlan(out: Path) -> None:
    frames: list[Frame] = []
    for i, vlans in enumerate(([(0x8100, 10)], [(0x88A8, 100), (0x8100, 20)])):
        frames.append((at(i), eth(router_ra(1), R1_MAC, multicast_mac(ALL_NODES), vlans=vlans)))
        frames.append((at(i + 5), eth(rogue_ra(), BAD_MAC, multicast_mac(ALL_NODES), vlans=vlans)))
    write_pcap(out / "rogue_ra_vlan.pcap", sorted(frames))


def cap_cooked_and_raw(out: Path) -> None:
    pairs = ((router_ra(1), R1_MAC), (rogue_ra(), BAD_MAC))
    # SLL/SLL2: packet type 2 (multicast, sent by another host), ARPHRD_ETHER, 6-byte address.
    sll = [
        (at(i), struct.pack("!HHH8sH", 2, 1, 6, m + b"\0\0", 0x86DD) + p)
        for i, (p, m) in enumerate(pairs)
    ]
    write_pcap(out / "rogue_ra_sll.pcap", sll, linktype=113)
    sll2 = [
        (at(i), struct.pack("!HHIHBB8s", 0x86DD, 0, 2, 1, 2, 6, m + b"\0\0") + p)
        for i, (p, m) in enumerate(pairs)
    ]
    write_pcap(out / "rogue_ra_sll2.pcap", sll2, linktype=276)
    write_pcap(
        out / "rogue_ra_raw.pcap", [(at(i), p) for i, (p, _) in enumerate(pairs)], linktype=101
    )


def cap_nanosecond(out: Path) -> None:
    frames = [(at(0), lan(router_ra(1), R1_MAC)), (T0 * S + 123_456_789, lan(rogue_ra(), BAD_MAC))]
    write_pcap(out / "rogue_ra_nanosecond.pcap", frames, nano=True)


def cap_multi_iface(out: Path) -> None:
    records = [
        (0, at(0), lan(router_ra(1), R1_MAC)),
        (1, at(0.5), router_ra(1)),
        (0, at(1), lan(rogue_ra(), BAD_MAC)),
        (1, at(1.000000001), rogue_ra()),
    ]
    path = out / "multi_iface.pcapng"
    write_pcapng(path, [(1, 6, "eth0"), (101, 9, "")], records)
    gzip_copy(path, out / "multi_iface.pcapng.gz")


def cap_ext_headers(out: Path) -> None:
    src, dst = a6("2001:db8:1::10"), a6("2001:db8:1::20")
    m = host(10)[0]

    def echo(s: bytes, d: bytes = dst) -> bytes:
        return icmp6(s, d, 128, struct.pack("!HH", 1, 1) + b"ping")

    router_alert = bytes([5, 2, 0, 0, 1, 0])  # HBH Router Alert option, PadN to 8
    packets = [
        ip6(src, dst, 0, ext(58, router_alert) + echo(src), 64),
        # DestOpts -> Segment Routing Header (type 4, segments left 0, one segment) -> TCP
        ip6(
            src,
            dst,
            60,
            ext(43) + ext(6, bytes([4, 0, 0, 0, 0, 0]) + dst) + tcp6(src, dst, 40000, 22, 0x02),
            64,
        ),
        ip6(
            src,
            dst,
            51,
            bytes([58, 4, 0, 0]) + struct.pack("!II", 0x100, 1) + bytes(12) + echo(src),
            64,
        ),
        ip6(src, dst, 135, mobility_brr(src, dst), 64),
        ip6(src, dst, 50, struct.pack("!II", 0x200, 1) + bytes(24), 64),
        ip6(src, dst, 0, ext(44) + struct.pack("!BBHI", 58, 0, 0, 7) + echo(src), 64),
    ]
    long_src, hbh_src = a6("2001:db8:1::66"), a6("2001:db8:1::67")
    chain = b"".join(ext(60) for _ in range(19)) + ext(58)
    packets.append(ip6(long_src, dst, 60, chain + echo(long_src), 64))
    packets.append(ip6(hbh_src, dst, 60, ext(0) + ext(58) + echo(hbh_src), 64))
    write_pcap(out / "ext_headers.pcap", [(at(i), lan(p, m)) for i, p in enumerate(packets)])


def cap_fragments(out: Path) -> None:
    frames: list[Frame] = []
    servers = b"".join(a6(f"2001:db8:bad::{i}") for i in range(1, 9))
    big_ra = icmp6(
        BAD_LL,
        ALL_NODES,
        134,
        struct.pack("!BBHII", 64, 0, 1800, 0, 0)
        + slla(BAD_MAC)
        + pio(a6("2001:db8:bad::"))
        + rdnss(servers),
    )
    for i, p in enumerate(fragment_packets(BAD_LL, ALL_NODES, 58, big_ra, 96, 0xA1)):
        frames.append((at(1 + i * 0.001), lan(p, BAD_MAC)))
    frames.append((at(0), lan(router_ra(1), R1_MAC)))
    h10, h11, h12 = (a6(f"2001:db8:1::{n}") for n in ("10", "11", "12"))
    dst = a6("2001:db8:1::20")
    m = host(10)[0]
    echo = icmp6(h10, dst, 128, struct.pack("!HH", 2, 1) + bytes(160))
    for i, p in enumerate(reversed(fragment_packets(h10, dst, 58, echo, 64, 0xB1, 64))):
        frames.append((at(2 + i * 0.001), lan(p, m)))
    bad = a6("2001:db8:1::bad")
    payload = icmp6(bad, dst, 128, bytes(60))
    first, _ = fragment_packets(bad, dst, 58, payload, 32, 0xC1, 64)
    overlap = ip6(bad, dst, 44, struct.pack("!BBHI", 58, 0, 24 | 1, 0xC1) + b"X" * 32, 64)
    frames += [(at(3), lan(first, m)), (at(3.001), lan(overlap, m))]
    atomic = icmp6(h11, dst, 128, struct.pack("!HH", 3, 1))
    frames.append(
        (at(4), lan(ip6(h11, dst, 44, struct.pack("!BBHI", 58, 0, 0, 0xD1) + atomic, 64), m))
    )
    dup_payload = icmp6(h12, dst, 128, struct.pack("!HH", 4, 1) + bytes(56))
    d1, d2 = fragment_packets(h12, dst, 58, dup_payload, 32, 0xE1, 64)
    frames += [(at(5), lan(d1, m)), (at(5.001), lan(d1, m)), (at(5.002), lan(d2, m))]
    write_pcap(out / "fragments.pcap", sorted(frames))


def cap_nd_options(out: Path) -> None:
    m, ll, gl = host(1)
    options = (
        slla(R1_MAC)
        + pio(PREFIX)
        + mtu_opt(1500)
        + rio(bytes(16), 0, 1)
        + rio(a6("2001:db8:2::"), 48, 2, pref=1)
        + rio(a6("2001:db8:3::100:0"), 96, 3, pref=3)
        + rdnss(DNS1, a6("2001:db8:1::54"))
        + dnssl("example.com", "corp.example")
    )
    redirected = ip6(gl, a6("2001:db8:ffff::1"), 59, b"", 64)
    frames = [
        lan(ra(R1_LL, options, flags=0xC0), R1_MAC),
        lan(rs(ll, m), m),
        lan(ns(gl, solicited_node(R1_LL), R1_LL, slla(m)), m),
        lan(ns(bytes(16), solicited_node(gl), gl, nonce(b"\x01\x02\x03\x04\x05\x06")), m),
        eth(na(R1_LL, gl, R1_LL, 0x60, tlla(R1_MAC)), R1_MAC, m),
        eth(
            redirect(
                R1_LL,
                gl,
                R2_LL,
                a6("2001:db8:ffff::1"),
                tlla(R2_MAC) + opt(4, bytes(6) + redirected),
            ),
            R1_MAC,
            m,
        ),
    ]
    write_pcap(out / "nd_options.pcap", [(at(i), f) for i, f in enumerate(frames)])


def cap_nd_malformed(out: Path) -> None:
    bad_rdnss = bytes([25, 4]) + struct.pack("!HI", 0, 60) + DNS1 + bytes(8)  # even length
    bad_route = bytes([24, 1]) + struct.pack("!BBI", 200, 0, 60)  # /200
    s1, s2, s3 = a6("fe80::2:1"), a6("fe80::2:2"), a6("fe80::2:3")
    m1, m2, m3 = (bytes([2, 0, 0, 0, 3, n]) for n in (1, 2, 3))
    target = a6("2001:db8:1::99")
    zero = ns(s1, solicited_node(target), target, b"\x01\x00" + bytes(6))
    # NA whose option says 3 units (24 bytes) but only 8 follow.
    runs_past = na(s2, ALL_NODES, target, 0x20, b"\x02\x03" + m2)
    short_redirect = ip6(s3, R1_LL, 58, icmp6(s3, R1_LL, 137, bytes(20)))
    frames = [
        lan(ra(R1_LL, slla(R1_MAC) + bad_rdnss), R1_MAC),
        lan(zero, m1),
        lan(runs_past, m2),
        eth(short_redirect, m3, R1_MAC),
        lan(ra(R1_LL, slla(R1_MAC) + bad_route), R1_MAC),
    ]
    write_pcap(out / "nd_malformed.pcap", [(at(i), f) for i, f in enumerate(frames)])


def cap_tunnels(out: Path) -> None:
    gw = mac("02:00:00:00:05:01")
    v4a, v4b = a4("192.0.2.1"), a4("198.51.100.1")
    frames: list[bytes] = []

    def v4(payload: bytes, proto: int, src: bytes = v4a, dst: bytes = v4b) -> bytes:
        return eth(ipv4(src, dst, proto, payload), host(1)[0], gw, 0x0800)

    def echo(src: bytes, dst: bytes) -> bytes:
        return ip6(src, dst, 58, icmp6(src, dst, 128, struct.pack("!HH", 9, 1) + b"tunnel"), 64)

    frames.append(v4(echo(a6("2001:db8:2::1"), a6("2001:db8:3::1")), 41))
    frames.append(
        v4(
            echo(a6("2002:c000:201::1"), a6("2001:db8:3::1")),
            41,
        )
    )
    frames.append(v4(echo(a6("fe80::5efe:c000:201"), a6("fe80::5efe:c633:6401")), 41))
    server, client, port = a4("203.0.113.1"), a4("192.0.2.45"), 40000
    taddr = teredo_addr(server, client, port)
    qual_rs = ip6(
        a6("fe80::ffff:ffff:fffd"),
        ALL_ROUTERS,
        58,
        icmp6(a6("fe80::ffff:ffff:fffd"), ALL_ROUTERS, 133, bytes(4)),
    )
    qual_nonce = bytes.fromhex("5a17c0de0badf00d")
    frames.append(
        v4(udp4(port, 3544, teredo_auth(nonce8=qual_nonce) + qual_rs), 17, client, server)
    )
    teredo_ra_src = a6("fe80::8000:f227:bec8:61af")
    qual_ra = ra(teredo_ra_src, pio(taddr[:8] + bytes(8)), dst=a6("fe80::ffff:ffff:fffd"))
    frames.append(
        v4(
            udp4(
                3544, port, teredo_auth(nonce8=qual_nonce) + teredo_origin(client, port) + qual_ra
            ),
            17,
            server,
            client,
        )
    )
    peer = teredo_addr(server, a4("198.51.100.77"), 50000)
    frames.append(
        v4(udp4(port, 50000, ip6(taddr, peer, 59, b"", 21)), 17, client, a4("198.51.100.77"))
    )
    frames.append(v4(udp4(port, 50000, echo(taddr, peer)), 17, client, a4("198.51.100.77")))
    frames.append(
        v4(
            udp4(50001, 5072, ayiya(echo(a6("2001:db8:2::2"), a6("2001:db8:3::1")))),
            17,
            v4a,
            a4("203.0.113.5"),
        )
    )
    dns = bytes.fromhex("66d601000001000000000000") + b"\x07example\x03com\x00\x00\x01\x00\x01"
    frames.append(v4(udp4(53000, 53, dns), 17, v4a, a4("198.51.100.53")))
    frames.append(lan(router_ra(1), R1_MAC))
    write_pcap(out / "tunnels.pcap", [(at(i), f) for i, f in enumerate(frames)])


def cap_ra_flood(out: Path) -> None:
    rng = random.Random(6980)
    frames: list[Frame] = [(at(0), lan(router_ra(1), R1_MAC))]
    seen: set[bytes] = {R1_MAC, R2_MAC, BAD_MAC}
    for i in range(2000):
        m = b"\x02\0\0" + rng.randbytes(3)  # 02:00:00:xx:xx:xx, each MAC once
        while m in seen:
            m = b"\x02\0\0" + rng.randbytes(3)
        seen.add(m)
        src = a6("fe80::")[:8] + rng.randbytes(8)
        frames.append((at(1 + i * 0.005), lan(rogue_ra(src, m), m)))
    write_pcap(out / "ra_flood_random.pcap", frames)


def cap_snapped(out: Path) -> None:
    frames = benign_traffic(0, 400)
    write_pcap(out / "snapped.pcap", frames, snaplen=64)


# -- Router Advertisement and Neighbor Discovery attacks (issue 3) --------------------


def ra_hop(src: bytes, options: bytes, hlim: int, flags: int = 0, lifetime: int = 1800) -> bytes:
    """An RA with a chosen IP hop limit (RFC 4861 requires 255)."""
    body = struct.pack("!BBHII", 64, flags, lifetime, 0, 0) + options
    return ip6(src, ALL_NODES, 58, icmp6(src, ALL_NODES, 134, body), hlim)


def attacker(n: int) -> tuple[bytes, bytes]:
    """Attacker n: (MAC 02:00:00:00:66:nn, link-local fe80::bad:n)."""
    return bytes([2, 0, 0, 0, 0x66, n]), a6(f"fe80::bad:{n}")


def cap_rogue_ra_variants(out: Path) -> None:
    frames = benign_traffic(0, 200)
    r1_opts = slla(R1_MAC) + mtu_opt(1500) + pio(PREFIX) + rdnss(DNS1)
    bad = pio(a6("2001:db8:bad::")) + rdnss(a6("2001:db8:bad::53"))
    m1, _ = attacker(1)
    m2, _ = attacker(2)
    frames += [
        # kill router: R1's address, lifetime 0, from the attacker's MAC
        (at(20), lan(ra(R1_LL, slla(m1) + pio(PREFIX), lifetime=0), m1)),
        # a global source address
        (at(30), lan(ra(a6("2001:db8:1::bad"), slla(m2) + bad), m2)),
        # R1's own RA, but forwarded: hop limit 64
        (at(40), lan(ra_hop(R1_LL, r1_opts, 64), R1_MAC)),
        # R1's MAC and address, but the SLLA points hosts at the attacker
        (at(50), lan(ra(R1_LL, slla(m1) + mtu_opt(1500) + pio(PREFIX) + rdnss(DNS1)), R1_MAC)),
        # R2 advertising an MTU below the IPv6 minimum
        (at(60), lan(ra(R2_LL, slla(R2_MAC) + mtu_opt(1000) + pio(PREFIX) + rdnss(DNS1)), R2_MAC)),
        # R1 advertising a prefix and a DNS server the policy does not list
        (at(70), lan(ra(R1_LL, r1_opts + bad), R1_MAC)),
    ]
    write_pcap(out / "rogue_ra_variants.pcap", sorted(frames))


def cap_ra_params(out: Path) -> None:
    """R1 against policy_ra_params.yaml: preference high, M off, O on, MTU 1500."""
    base = slla(R1_MAC) + mtu_opt(1500) + pio(PREFIX) + rdnss(DNS1) + dnssl("corp.example")
    frames: list[Frame] = [(at(t), lan(ra(R1_LL, base, flags=0x48), R1_MAC)) for t in (0, 4, 8)]
    changed = slla(R1_MAC) + mtu_opt(1400) + pio(PREFIX) + rdnss(DNS1) + dnssl("corp.example")
    frames.append((at(12), lan(ra(R1_LL, changed, flags=0xD8), R1_MAC)))  # M on, preference low
    extra = base + rio(a6("2001:db8:99::"), 48, 2) + dnssl("evil.example")
    frames.append((at(16), lan(ra(R1_LL, extra, flags=0x48), R1_MAC)))
    write_pcap(out / "ra_params.pcap", frames)


def cap_ra_params_learned(out: Path) -> None:
    """No policy: R1's first RAs are learned; after the window its flags and prefixes change."""
    base = slla(R1_MAC) + mtu_opt(1500) + pio(PREFIX) + rdnss(DNS1)
    frames: list[Frame] = [
        (at(t), lan(ra(R1_LL, base, flags=0x40), R1_MAC)) for t in range(0, 700, 100)
    ]
    frames.append((at(700), lan(ra(R1_LL, base, flags=0xC0), R1_MAC)))  # M switched on
    frames.append((at(800), lan(ra(R1_LL, base + pio(a6("2001:db8:bad::")), 0x40), R1_MAC)))
    write_pcap(out / "ra_params_learned.pcap", frames)


def cap_ra_guard_evasion(out: Path) -> None:
    frames = benign_traffic(0, 100)
    ms = [attacker(n) for n in range(1, 6)]

    def rogue_icmp(src: bytes) -> bytes:
        body = struct.pack("!BBHII", 64, 0x08, 1800, 0, 0)
        body += slla(ms[0][0]) + pio(a6("2001:db8:bad::")) + rdnss(a6("2001:db8:bad::53"))
        return icmp6(src, ALL_NODES, 134, body)

    (m1, s1), (m2, s2), (m3, s3), (m4, s4), (m5, s5) = ms
    router_alert = bytes([5, 2, 0, 0, 1, 0])
    frames.append((at(10), lan(ip6(s1, ALL_NODES, 0, ext(58, router_alert) + rogue_icmp(s1)), m1)))
    frames.append((at(11), lan(ip6(s2, ALL_NODES, 60, ext(58) + rogue_icmp(s2)), m2)))
    atomic = struct.pack("!BBHI", 58, 0, 0, 0xA1)
    frames.append((at(12), lan(ip6(s3, ALL_NODES, 44, atomic + rogue_icmp(s3)), m3)))
    for i, f in enumerate(fragment_packets(s4, ALL_NODES, 58, rogue_icmp(s4), 48, 0xA2)):
        frames.append((at(13 + i * 0.001), lan(f, m4)))
    # RFC 7112: 64 bytes of Destination Options push the ICMPv6 header into fragment 2.
    chained = ext(58, bytes(62)) + rogue_icmp(s5)
    for i, f in enumerate(fragment_packets(s5, ALL_NODES, 60, chained, 56, 0xA3)):
        frames.append((at(14 + i * 0.001), lan(f, m5)))
    hm, _, hgl = host(1)
    ns_body = icmp6(hgl, solicited_node(R1_LL), 135, bytes(4) + R1_LL + slla(hm))
    for i, f in enumerate(fragment_packets(hgl, solicited_node(R1_LL), 58, ns_body, 16, 0xA4)):
        frames.append((at(15 + i * 0.001), lan(f, hm)))
    write_pcap(out / "ra_guard_evasion.pcap", sorted(frames))


def cap_ra_flood_options(out: Path) -> None:
    """One rogue router sending 60 RAs of 17 prefixes and 8 routes in 3 s (flood_router26)."""
    m, src = attacker(7)
    opts = slla(m) + b"".join(pio(a6(f"2001:db8:bad:{i:x}::")) for i in range(17))
    opts += b"".join(rio(a6(f"2001:db8:bad:{0x100 + i:x}::"), 64, 2) for i in range(8))
    frames: list[Frame] = [(at(0), lan(router_ra(1), R1_MAC))]
    frames += [(at(1 + i * 0.05), lan(ra(src, opts), m)) for i in range(60)]
    write_pcap(out / "ra_flood_options.pcap", frames)


def ra_restart_frames() -> list[Frame]:
    """R1 and R2 advertising every 4 s; R1 shuts down (lifetime 0) at 50 s and restarts."""
    frames: list[Frame] = []
    for t in range(0, 120, 4):
        if not 50 <= t < 58:
            frames.append((at(t), lan(router_ra(1), R1_MAC)))
        frames.append((at(t + 1.5), lan(router_ra(2), R2_MAC)))
    goodbye = ra(R1_LL, slla(R1_MAC) + mtu_opt(1500) + pio(PREFIX) + rdnss(DNS1), lifetime=0)
    frames.append((at(50), lan(goodbye, R1_MAC)))
    frames += [(at(58 + i * 0.5), lan(router_ra(1), R1_MAC)) for i in range(3)]  # initial RAs
    hm, hll, _ = host(1)
    frames.append((at(58.2), lan(rs(hll, hm), hm)))
    return sorted(frames)


def cap_ra_restart(out: Path) -> None:
    write_pcap(out / "ra_restart.pcap", ra_restart_frames())


def nd_benign_frames() -> list[Frame]:
    """20 hosts: DAD, unsolicited NA, resolution, NUD, hosts adding addresses; 120 s."""
    frames: list[Frame] = [(at(t), lan(router_ra(1), R1_MAC)) for t in range(0, 120, 30)]
    r1_gl = PREFIX[:8] + bytes(7) + b"\x01"
    for n in range(1, 21):
        m, ll, gl = host(n)
        t = n * 0.5
        for i, addr in enumerate((ll, gl, PREFIX[:8] + bytes([0xAA, n]) + bytes(5) + b"\x01")):
            dad_at = t + (0.2 * i if i < 2 else 60)  # the third address is added later
            probe = ns(bytes(16), solicited_node(addr), addr, nonce(bytes([n, i]) * 3))
            frames.append((at(dad_at), lan(probe, m)))
            announce = na(ll, ALL_NODES, addr, 0x20, tlla(m))
            frames.append((at(dad_at + 1.1), lan(announce, m)))
        # resolve the router, get an answer; then NUD by unicast some seconds later
        frames.append((at(t + 2), lan(ns(gl, solicited_node(r1_gl), r1_gl, slla(m)), m)))
        reply = na(r1_gl, gl, r1_gl, 0xE0, tlla(R1_MAC))
        frames.append((at(t + 2.001), lan(reply, R1_MAC, m)))
        frames.append((at(t + 40), lan(ns(gl, r1_gl, r1_gl, slla(m)), m, R1_MAC)))
        frames.append((at(t + 40.001), lan(na(r1_gl, gl, r1_gl, 0xC0, b""), R1_MAC, m)))
        # the router resolves the host, and a neighbour host too
        frames.append((at(t + 3), lan(ns(r1_gl, solicited_node(gl), gl, slla(R1_MAC)), R1_MAC)))
        frames.append((at(t + 3.001), lan(na(gl, r1_gl, gl, 0x60, tlla(m)), m, R1_MAC)))
        if n > 1:
            pm, _, pgl = host(n - 1)
            frames.append((at(t + 5), lan(ns(gl, solicited_node(pgl), pgl, slla(m)), m)))
            frames.append((at(t + 5.001), lan(na(pgl, gl, pgl, 0x60, tlla(pm)), pm, m)))
    return sorted(frames)


def cap_nd_benign(out: Path) -> None:
    write_pcap(out / "nd_benign.pcap", nd_benign_frames())


def cap_ndp_exhaustion(out: Path) -> None:
    """A scan of 250 addresses from 2001:db8:ff::a through R1; R1 solicits each 3 times."""
    rng = random.Random(4861)
    frames = benign_traffic(0, 30)
    r1_gl = PREFIX[:8] + bytes(7) + b"\x01"
    scanner, upstream = a6("2001:db8:ff::a"), mac("02:00:00:00:ff:01")
    targets = sorted({PREFIX[:8] + rng.randbytes(8) for _ in range(250)})
    targets[:5] = [host(n)[2] for n in (1, 2, 3, 4, 5)]  # five exist and answer
    for i, target in enumerate(targets):
        t = 5 + i * 0.008
        syn = ip6(scanner, target, 6, tcp6(scanner, target, 40000, 443, 0x02), 60)
        frames.append((at(t), eth(syn, upstream, R1_MAC)))
        for k in range(1 if i < 5 else 3):  # answered targets are not solicited again
            solicit = ns(r1_gl, solicited_node(target), target, slla(R1_MAC))
            frames.append((at(t + 0.001 + k), lan(solicit, R1_MAC)))
        if i < 5:
            m = host(i + 1)[0]
            frames.append((at(t + 0.002), lan(na(target, r1_gl, target, 0x60, tlla(m)), m)))
    write_pcap(out / "ndp_exhaustion.pcap", sorted(frames))


def cap_ndp_flood(out: Path) -> None:
    """3000 NS then 3000 NA in 4 s, each from a new random MAC and address."""
    rng = random.Random(4862)
    frames: list[Frame] = []
    for i in range(6000):
        m = b"\x02\0\0" + rng.randbytes(3)
        src = PREFIX[:8] + rng.randbytes(8)
        target = PREFIX[:8] + rng.randbytes(8)
        if i < 3000:
            pkt = ns(src, solicited_node(target), target, slla(m))
        else:
            pkt = na(src, ALL_NODES, src, 0x20, tlla(m))
        frames.append((at(i * 0.0006), lan(pkt, m)))
    write_pcap(out / "ndp_flood.pcap", frames)


def cap_ndp_spoof(out: Path) -> None:
    frames = nd_benign_frames()
    am, all_ = attacker(1)
    h1m, _, h1 = host(1)
    h2m, _, h2 = host(2)
    # override NA moving host 1's address (resolved by R1 at 3.5 s) to the attacker
    frames.append((at(10), lan(na(all_, ALL_NODES, h1, 0x20, tlla(am)), am)))
    # unsolicited NA claiming R1's link-local address
    frames.append((at(20), lan(na(all_, ALL_NODES, R1_LL, 0xA0, tlla(am)), am)))
    # host 2's address answered alternately by host 2 and the attacker (no override)
    for k in range(4):
        who = (am, all_) if k % 2 == 0 else (h2m, h2)
        frames.append((at(60 + k), lan(na(who[1], h1, h2, 0x40, tlla(who[0])), who[0], h1m)))
    # from off-link: an NS that crossed a router (hop limit 64)
    h3m, _, h3 = host(3)
    off_link = ip6(h3, solicited_node(h1), 58, icmp6(h3, solicited_node(h1), 135,
                   bytes(4) + h1 + slla(h3m)), 64)  # fmt: skip
    frames.append((at(70), lan(off_link, h3m)))
    # an NS whose SLLA is not its Ethernet source
    h4m, _, h4 = host(4)
    frames.append((at(80), lan(ns(h4, solicited_node(h1), h1, slla(am)), h4m)))
    write_pcap(out / "ndp_spoof.pcap", sorted(frames))


def cap_dad_dos(out: Path) -> None:
    frames = nd_benign_frames()
    am, _ = attacker(1)
    m, _, _ = host(30)
    for k in range(3):
        tentative = PREFIX[:8] + bytes([0xDA, k]) + bytes(5) + b"\x01"
        probe = ns(bytes(16), solicited_node(tentative), tentative, nonce(bytes([k]) * 6))
        frames.append((at(50 + k * 5), lan(probe, m)))
        defend = na(tentative, ALL_NODES, tentative, 0x20, tlla(am))
        frames.append((at(50 + k * 5 + 0.01), lan(defend, am)))
    write_pcap(out / "dad_dos.pcap", sorted(frames))


# -- tunnels and sweeps (issue 4) ------------------------------------------------------

UPSTREAM_MAC = mac("02:00:00:00:ff:01")  # the provider's router on R1's upstream link
SITE_V4 = a4("192.0.2.0")[:3]  # the site's IPv4 /24; every other IPv4 range is outside
RELAY_ANYCAST = a4("192.88.99.1")  # 6to4 relay anycast (RFC 3068): see the docstring
NATIVE = a6("2001:db8:3::1")  # a native IPv6 host out on the Internet


def wan4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1) -> bytes:
    """An IPv4 packet on R1's upstream link: from the site it leaves R1, else it arrives."""
    macs = (R1_MAC, UPSTREAM_MAC) if src[:3] == SITE_V4 else (UPSTREAM_MAC, R1_MAC)
    return eth(ipv4(src, dst, proto, payload, ident), *macs, 0x0800)


def wan6(packet: bytes) -> bytes:
    """An IPv6 packet on R1's upstream link: from 2001:db8:1::/64 it leaves R1, else arrives."""
    outbound = packet[8:16] == PREFIX[:8]
    return eth(packet, *((R1_MAC, UPSTREAM_MAC) if outbound else (UPSTREAM_MAC, R1_MAC)))


def echo6(
    src: bytes, dst: bytes, ident: int, seq: int, hlim: int = 64, reply: bool = False
) -> bytes:
    """An ICMPv6 echo request (or reply) with an 8-byte body."""
    body = struct.pack("!HH", ident, seq) + b"v6sentry"
    return ip6(src, dst, 58, icmp6(src, dst, 129 if reply else 128, body), hlim)


def tcp6_data(
    src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int, ack: int, data: bytes
) -> bytes:
    """A TCP segment carrying ``data``, checksummed over the IPv6 pseudo-header."""
    return upper(src, dst, 6, tcp_header(sport, dport, flags, seq, ack) + data, 16)


def iid(prefix: bytes, text: str) -> bytes:
    """``prefix``'s /64 with the interface ID written as in an address (``"dead:beef"``)."""
    return prefix[:8] + a6("::" + text)[8:]


def sixto4(v4: bytes, host_id: int = 1) -> bytes:
    """A host in the 6to4 site of ``v4`` (2002:v4::/48, subnet 0): 2002:wwxx:yyzz::host_id."""
    return b"\x20\x02" + v4 + bytes(8) + struct.pack("!H", host_id)


def isatap(prefix: bytes, v4: bytes, global_v4: bool = False) -> bytes:
    """An ISATAP address (RFC 5214): ``prefix``'s /64 + 0000:5efe or 0200:5efe + the IPv4."""
    return prefix[:8] + (b"\x02\x00" if global_v4 else b"\x00\x00") + b"\x5e\xfe" + v4


def dns_message(ident: int, name: str, answer: bytes | None = None) -> bytes:
    """A DNS AAAA query, or with ``answer`` the response carrying that address."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    question = qname + struct.pack("!HH", 28, 1)
    if answer is None:
        return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question
    record = struct.pack("!HHHIH", 0xC00C, 28, 1, 300, 16) + answer
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + record


def cap_tunnels_6to4(out: Path) -> None:
    """The 6to4 router 192.0.2.1 (site 2002:c000:201::/48) with two 6to4 peers and a relay."""
    site, peer_b, peer_c = a4("192.0.2.1"), a4("198.51.100.2"), a4("203.0.113.3")
    frames: list[Frame] = []

    def exchange(t: float, far: bytes, inner_far: bytes, seq: int) -> None:
        """An echo from the site's host to ``inner_far`` through ``far``, and the reply."""
        req = echo6(sixto4(site), inner_far, 0x6704, seq)
        rep = echo6(inner_far, sixto4(site), 0x6704, seq, reply=True)
        frames.append((at(t), wan4(site, far, 41, req, seq)))
        frames.append((at(t + 0.05), wan4(far, site, 41, rep, seq)))

    for k in range(6):  # pair A: 0..10 s, then again at 400 s (a second window)
        exchange(2 * k, peer_b, sixto4(peer_b), k)
    for k in range(2):
        exchange(400 + 2 * k, peer_b, sixto4(peer_b), 10 + k)
    for k in range(6):  # pair B: 20..30 s
        exchange(20 + 2 * k, peer_c, sixto4(peer_c, 0x10), 20 + k)
    for k in range(5):  # to a native host through the relay anycast, replies from it
        exchange(40 + 2 * k, RELAY_ANYCAST, NATIVE, 30 + k)
    write_pcap(out / "tunnels_6to4.pcap", sorted(frames))


def cap_tunnels_isatap(out: Path) -> None:
    """ISATAP hosts behind the ISATAP router 198.51.100.20, and one host spoofing another."""
    router = a4("198.51.100.20")
    net = a6("2001:db8:4::")
    router6 = isatap(net, router)
    frames: list[Frame] = []

    def exchange(t: float, v4: bytes, inner: bytes, far: bytes, seq: int) -> None:
        """An echo from ISATAP host ``inner`` (outer ``v4``) to ``far`` and the reply."""
        frames.append((at(t), wan4(v4, router, 41, echo6(inner, far, 0x5EFE, seq), seq)))
        reply = echo6(far, inner, 0x5EFE, seq, reply=True)
        frames.append((at(t + 0.05), wan4(router, v4, 41, reply, seq)))

    h1 = a4("192.0.2.11")  # 0000:5efe form, to a native host and to the router itself
    for k in range(3):
        exchange(1 + k, h1, isatap(net, h1), NATIVE, k)
    exchange(4, h1, isatap(net, h1), router6, 3)
    h2 = a4("203.0.113.20")  # 0200:5efe form (a globally unique IPv4 address)
    for k in range(3):
        exchange(10 + k, h2, isatap(net, h2, True), NATIVE, 10 + k)
    # 192.0.2.10: one genuine packet, then three whose inner source embeds 203.0.113.9.
    # The router answers the forged ones at the IPv4 address in their IID.
    spoofer, victim = a4("192.0.2.10"), a4("203.0.113.9")
    exchange(20, spoofer, isatap(net, spoofer), router6, 20)
    for k in range(3):
        forged = echo6(isatap(net, victim), router6, 0x5EFE, 21 + k)
        frames.append((at(21 + k), wan4(spoofer, router, 41, forged, 21 + k)))
        reply = echo6(router6, isatap(net, victim), 0x5EFE, 21 + k, reply=True)
        frames.append((at(21.05 + k), wan4(router, victim, 41, reply, 21 + k)))
    write_pcap(out / "tunnels_isatap.pcap", sorted(frames))


def cap_tunnels_6in4_allowed(out: Path) -> None:
    """Two 6in4 tunnels; policy_tunnels.yaml allows the broker endpoint 198.51.100.50."""
    frames: list[Frame] = []
    pairs = (
        (a4("192.0.2.50"), a4("198.51.100.50"), a6("2001:db8:50::2")),  # allowed broker
        (a4("192.0.2.60"), a4("203.0.113.60"), a6("2001:db8:60::2")),  # not allowed
    )
    for n, (local, remote, inner) in enumerate(pairs):
        for k in range(4):
            t = 1 + n * 10 + k
            req = echo6(inner, NATIVE, 0x6464, k)
            frames.append((at(t), wan4(local, remote, 41, req, k)))
            rep = echo6(NATIVE, inner, 0x6464, k, 60, reply=True)
            frames.append((at(t + 0.04), wan4(remote, local, 41, rep, k)))
    write_pcap(out / "tunnels_6in4_allowed.pcap", sorted(frames))


def cap_tunnels_teredo(out: Path) -> None:
    """A Teredo client behind a NAT: qualification, bubbles, relay data, a peer; plus DNS.

    Client C is 192.0.2.45:40000 (its NAT mapping, the same port for every
    destination), server S 203.0.113.1 (secondary address 203.0.113.2), relay
    198.51.100.200:3544, peer client B 198.51.100.77:50000 behind server S too.
    """
    client, port = a4("192.0.2.45"), 40000
    server, server2 = a4("203.0.113.1"), a4("203.0.113.2")
    relay, peer, peer_port = a4("198.51.100.200"), a4("198.51.100.77"), 50000
    c6, b6 = teredo_addr(server, client, port, cone=False), teredo_addr(server, peer, peer_port)
    frames: list[Frame] = []
    ident = iter(range(1, 1000))

    def udp(t: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> None:
        frames.append((at(t), wan4(src, dst, 17, udp4(sport, dport, payload), next(ident))))

    # Qualification (RFC 4380 5.2.1): RS with the cone flag goes unanswered, RS without
    # it is answered; the same RS to the secondary address checks the mapping.
    ra_src, lls = a6("fe80::8000:f227:bec8:61af"), a6("fe80::ffff:ffff:fffd")
    for t, src_ll, to, nonce8, answered in (
        (0.0, a6("fe80::8000:ffff:ffff:fffd"), server, b"\x11" * 8, False),
        (4.0, lls, server, b"\x22" * 8, True),
        (4.2, lls, server2, b"\x33" * 8, True),
    ):
        solicit = ip6(src_ll, ALL_ROUTERS, 58, icmp6(src_ll, ALL_ROUTERS, 133, bytes(4)))
        udp(t, client, port, to, 3544, teredo_auth(nonce8=nonce8) + solicit)
        if answered:
            advert = ra(ra_src, pio(c6[:8] + bytes(8)), dst=src_ll)
            origin = teredo_origin(client, port)
            udp(t + 0.1, to, 3544, client, port, teredo_auth(nonce8=nonce8) + origin + advert)
    # C reaches B: an indirect bubble through S, which relays it with an origin indication.
    bubble_cb = ip6(c6, b6, 59, b"", 21)
    udp(10, client, port, server, 3544, bubble_cb)
    udp(10.05, server, 3544, peer, peer_port, teredo_origin(client, port) + bubble_cb)
    # Then client to client, off port 3544: B's bubble, C's bubble, echoes both ways.
    udp(10.1, peer, peer_port, client, port, ip6(b6, c6, 59, b"", 21))
    udp(10.15, client, port, peer, peer_port, bubble_cb)
    for k in range(3):
        udp(11 + k, client, port, peer, peer_port, echo6(c6, b6, 0x7E, k))
        udp(11.05 + k, peer, peer_port, client, port, echo6(b6, c6, 0x7E, k, reply=True))
    # Data with a native IPv6 host through a relay on port 3544.
    for k in range(3):
        udp(20 + k, client, port, relay, 3544, echo6(c6, NATIVE, 0x7F, k))
        udp(20.08 + k, relay, 3544, client, port, echo6(NATIVE, c6, 0x7F, k, 58, reply=True))
    # Ordinary DNS over IPv4: ids 0x0001 (looks like a Teredo auth header) and 0x6a5e
    # (first nibble 6, like an IPv6 header), each message over 40 bytes.
    dns = a4("198.51.100.53")
    for k, qid in enumerate((0x0001, 0x6A5E)):
        name = "ipv6-check.tunnel.example.com"
        udp(30 + k, client, 53001 + k, dns, 53, dns_message(qid, name))
        udp(30.02 + k, dns, 53, client, 53001 + k, dns_message(qid, name, NATIVE))
    write_pcap(out / "tunnels_teredo.pcap", sorted(frames))


def cap_tunnels_ayiya(out: Path) -> None:
    """An AYIYA tunnel (UDP 5072 both ends): a heartbeat, then echoes forwarded both ways."""
    client, pop = a4("192.0.2.70"), a4("203.0.113.72")
    inner_client, inner_pop = a6("2001:db8:72::2"), a6("2001:db8:72::1")
    frames: list[Frame] = []

    def ayiya_frame(t: float, src: bytes, dst: bytes, payload: bytes, seq: int) -> None:
        frames.append((at(t), wan4(src, dst, 17, udp4(5072, 5072, payload), seq)))

    beat = ayiya(b"", T0, inner_client, opcode=0, nh=59)
    ayiya_frame(0, client, pop, beat, 1)
    for k in range(3):
        t = 1 + k
        req = ayiya(echo6(inner_client, NATIVE, 0xA1, k), T0 + t, inner_client)
        ayiya_frame(t, client, pop, req, 2 + 2 * k)
        rep = ayiya(echo6(NATIVE, inner_client, 0xA1, k, 60, True), T0 + t, inner_pop)
        ayiya_frame(t + 0.06, pop, client, rep, 3 + 2 * k)
    write_pcap(out / "tunnels_ayiya.pcap", sorted(frames))


def cap_tunnel_sweep(out: Path) -> None:
    """A 6in4 tunnel user pinging 300 random addresses of 2001:db8:5::/64 in 60 s."""
    rng = random.Random(4214)
    local, broker = a4("192.0.2.80"), a4("198.51.100.80")
    src = a6("2001:db8:80::2")
    iids = sorted({rng.randbytes(8) for _ in range(300)})
    assert len(iids) == 300
    frames: list[Frame] = []
    for i, low in enumerate(iids):
        probe = echo6(src, a6("2001:db8:5::")[:8] + low, 0x5C, i)
        frames.append((at(1 + i * 0.2), wan4(local, broker, 41, probe, i)))
    write_pcap(out / "tunnel_sweep.pcap", frames)


# Sweeps are seen on R1's upstream link: probes arrive from UPSTREAM_MAC, replies leave R1.


def cap_sweep_lowbyte(out: Path) -> None:
    """2001:db8:bad::1 pings 2001:db8:1::1 .. ::400 (1024 low-byte addresses); five answer."""
    scanner = a6("2001:db8:bad::1")
    alive = {0x1, 0x10, 0x53, 0x80, 0x100}
    frames: list[Frame] = []
    for n in range(1, 0x401):
        t = 1 + (n - 1) * 0.05
        target = iid(PREFIX, f"{n:x}")
        frames.append((at(t), wan6(echo6(scanner, target, 0xBAD, n, 57))))
        if n in alive:
            frames.append((at(t + 0.002), wan6(echo6(target, scanner, 0xBAD, n, 63, True))))
    write_pcap(out / "sweep_lowbyte.pcap", frames)


def cap_sweep_eui64(out: Path) -> None:
    """TCP SYNs to 500 EUI-64 addresses of three virtualisation OUIs; three SYN-ACKs."""
    rng = random.Random(4291)
    scanner = a6("2001:db8:bad::2")
    ouis = (b"\x00\x50\x56", b"\x00\x0c\x29", b"\x52\x54\x00")  # VMware, VMware, QEMU/KVM
    targets: list[bytes] = []
    seen: set[bytes] = set()
    while len(targets) < 500:
        oui = ouis[len(targets) % 3]
        eui = bytes([oui[0] ^ 2]) + oui[1:] + b"\xff\xfe" + rng.randbytes(3)
        if eui not in seen:
            seen.add(eui)
            targets.append(PREFIX[:8] + eui)
    frames: list[Frame] = []
    for i, target in enumerate(targets):
        t = 1 + i * 0.1
        syn = ip6(scanner, target, 6, tcp6(scanner, target, 45000 + i, 22, 0x02, 7000 + i), 57)
        frames.append((at(t), wan6(syn)))
        if i in (17, 250, 433):
            synack = tcp6(target, scanner, 22, 45000 + i, 0x12, 90000 + i, 7001 + i)
            frames.append((at(t + 0.003), wan6(ip6(target, scanner, 6, synack, 63))))
    write_pcap(out / "sweep_eui64.pcap", frames)


def cap_sweep_random_source(out: Path) -> None:
    """400 pings to 6Gen-like targets 2001:db8:1::X0Y:ZW, each from a new source IID."""
    rng = random.Random(4292)
    values = rng.sample(range(1 << 16), 400)  # four random nybbles per target
    sources: set[bytes] = set()
    frames: list[Frame] = []
    for i, v in enumerate(values):
        x, y, z, w = (v >> 12) & 15, (v >> 8) & 15, (v >> 4) & 15, v & 15
        target = PREFIX[:8] + struct.pack("!HHHH", 0, 0, (x << 8) | y, (z << 4) | w)
        src = a6("2001:db8:bad::")[:8] + rng.randbytes(8)
        while src in sources:
            src = a6("2001:db8:bad::")[:8] + rng.randbytes(8)
        sources.add(src)
        frames.append((at(1 + i * 0.2), wan6(echo6(src, target, 0x6E, i, 57))))
    write_pcap(out / "sweep_random_source.pcap", frames)


def cap_sweep_high(out: Path) -> None:
    """12000 UDP probes (no payload) to random addresses of 2001:db8:1::/64 in 90 s."""
    rng = random.Random(4293)
    scanner = a6("2001:db8:bad::4")
    targets: list[bytes] = []
    seen: set[bytes] = set()
    while len(targets) < 12000:
        low = rng.randbytes(8)
        if low not in seen:
            seen.add(low)
            targets.append(PREFIX[:8] + low)
    frames = [
        (at(1 + i * 0.0075), wan6(ip6(scanner, t, 17, udp6(scanner, t, 61000, 161, b""), 57)))
        for i, t in enumerate(targets)
    ]
    write_pcap(out / "sweep_high.pcap", frames)


def cap_sweep_wide(out: Path) -> None:
    """TCP SYNs to ::1, ::2 and ::3 of 200 /64s (2001:db8:a:0::/64 .. :c7::/64); no reply."""
    scanner = a6("2001:db8:bad::3")
    frames: list[Frame] = []
    for n in range(200):
        for k in (1, 2, 3):
            i = n * 3 + k - 1
            target = a6(f"2001:db8:a:{n:x}::{k}")
            syn = tcp6(scanner, target, 50000 + i % 1000, 443, 0x02, 3000 + i)
            frames.append((at(1 + i * 0.1), wan6(ip6(scanner, target, 6, syn, 57))))
    write_pcap(out / "sweep_wide.pcap", frames)


def hitlist_targets() -> list[str]:
    """150 interface IDs a hitlist or a TGA tries: wordy, IPv4-embedded, port-embedded."""
    words = ["dead:beef", "cafe", "babe", "face:b00c", "c0ff:ee", "bad:cafe", "f00d", "beef"]
    words += ["dead", "feed", "fade", "ace", "deaf", "c0de", "b00c", "d00d", "abba"]
    wordy = list(words) + [f"1:{w}" for w in words] + [f"{w}:1" for w in words[:16]]
    v4_hex = [f"c000:2{n:02x}" for n in range(1, 26)]  # ::192.0.2.n as hex
    v4_dec = [f"192:0:2:{n}" for n in range(1, 26)]  # ::192:0:2:n, decimal digits as hex
    ports = [21, 22, 23, 25, 53, 80, 110, 143, 443, 445, 993, 995, 1433, 3306, 3389]
    ports += [5432, 5900, 6379, 8000, 8080, 8443, 9000, 9200]
    port_ids = [f"{p}" for p in ports] + [f"1:{p}" for p in ports]
    port_ids += ["8:8080", "80:443", "443:1", "5:443"]
    out = wordy + v4_hex + v4_dec + port_ids
    assert len(out) == len(set(out)) == 150, (len(out), len(set(out)))
    return out


def cap_sweep_hitlist(out: Path) -> None:
    """Pings to 150 hitlist-style addresses of 2001:db8:1::/64; ::cafe and ::80 answer."""
    scanner = a6("2001:db8:bad::5")
    frames: list[Frame] = []
    for i, text in enumerate(hitlist_targets()):
        t = 1 + i * 0.3
        target = iid(PREFIX, text)
        frames.append((at(t), wan6(echo6(scanner, target, 0x417, i, 57))))
        if text in ("cafe", "80"):
            frames.append((at(t + 0.002), wan6(echo6(target, scanner, 0x417, i, 63, True))))
    write_pcap(out / "sweep_hitlist.pcap", frames)


def cap_dark_prefix(out: Path) -> None:
    """Traffic to policy_dark.yaml's dark 2001:db8:dead::/48 from two source /64s."""
    scanner, other = a6("2001:db8:bad::7"), a6("2001:db8:2::99")
    live = a6("2001:db8:1::80")
    frames: list[Frame] = [
        (at(1), wan6(echo6(scanner, live, 0xDA, 1, 57))),
        (at(1.002), wan6(echo6(live, scanner, 0xDA, 1, 63, True))),
    ]
    d1, d2, d3 = a6("2001:db8:dead::1"), a6("2001:db8:dead:1::1"), a6("2001:db8:dead:beef::80")
    frames.append((at(2), wan6(echo6(scanner, d1, 0xDA, 2, 57))))
    frames.append((at(3), wan6(ip6(scanner, d2, 6, tcp6(scanner, d2, 51000, 22, 0x02), 57))))
    frames.append((at(4), wan6(ip6(scanner, d3, 17, udp6(scanner, d3, 51001, 53, b""), 57))))
    d4 = a6("2001:db8:dead::53")
    frames.append((at(5), wan6(ip6(other, d4, 17, udp6(other, d4, 52000, 53, b""), 58))))
    write_pcap(out / "dark_prefix.pcap", frames)


def cap_sweep_ndp_exhaustion(out: Path) -> None:
    """Inside: R1 puts 200 probes for absent addresses on the LAN and solicits each 3 times.

    The probes come from the remote scanner 2001:db8:bad::a and leave R1 with hop
    limit 56, addressed to 02:00:00:00:ee:ee (no host has that MAC or answers).
    """
    rng = random.Random(4294)
    scanner, nobody = a6("2001:db8:bad::a"), mac("02:00:00:00:ee:ee")
    r1_gl = PREFIX[:8] + bytes(7) + b"\x01"
    frames: list[Frame] = [(at(0), lan(router_ra(1), R1_MAC))]
    lows = sorted({rng.randbytes(8) for _ in range(200)})
    assert len(lows) == 200
    for i, low in enumerate(lows):
        t = 1 + i * 0.1
        target = PREFIX[:8] + low
        syn = ip6(scanner, target, 6, tcp6(scanner, target, 40000 + i, 80, 0x02, 500 + i), 56)
        frames.append((at(t), eth(syn, R1_MAC, nobody)))
        for k in range(3):
            solicit = ns(r1_gl, solicited_node(target), target, slla(R1_MAC))
            frames.append((at(t + 0.001 + k), lan(solicit, R1_MAC)))
    write_pcap(out / "sweep_ndp_exhaustion.pcap", sorted(frames))


# Three sensors, one scanner: each sensor's capture alone stays below medium_targets.

SENSOR_SCANNER = a6("2001:db8:bad::7")
# sensor name, destination /64 of its site, unanswered targets, start (s), seed
SENSOR_SITES = (
    ("a", "2001:db8:11::", 45, 1.0, 4301),
    ("b", "2001:db8:12::", 50, 41.0, 4302),
    ("c", "2001:db8:13::", 55, 81.0, 4303),
)


def cap_sensors(out: Path) -> None:
    """One scanner probing a different /64 at each of three sensors, within 300 s.

    2001:db8:bad::7 pings 45, 50 and 55 distinct random addresses of 2001:db8:11::/64,
    :12::/64 and :13::/64 (one /64 per sensor), nothing answers: 150 targets together,
    below 100 at every sensor. Each capture also holds a monitoring host of the site
    (2001:db8:1::9) pinging 40 hosts of the site's /64 that all answer: 120 together,
    but answered, so no sweep anywhere.
    """
    monitor = a6("2001:db8:1::9")
    for name, prefix, count, start, seed in SENSOR_SITES:
        rng = random.Random(seed)
        site = a6(prefix)
        lows = sorted({rng.randbytes(8) for _ in range(count)})
        assert len(lows) == count
        frames: list[Frame] = []
        for i, low in enumerate(lows):
            t = start + i * 0.5
            frames.append((at(t), wan6(echo6(SENSOR_SCANNER, site[:8] + low, 0x57, i, 57))))
        for n in range(1, 41):
            t = start + 0.25 + n * 0.5
            target = iid(site, f"1:{n:x}")
            frames.append((at(t), wan6(echo6(monitor, target, 0x9, n, 60))))
            frames.append((at(t + 0.002), wan6(echo6(target, monitor, 0x9, n, 60, True))))
        write_pcap(out / f"sensor_{name}.pcap", sorted(frames))


# Benign: many destinations, but every one answers.


def cap_benign_pings(out: Path) -> None:
    """Host 1 resolves and pings 20 neighbours (hosts 2..21) three times; all answer."""
    m1, _, g1 = host(1)
    frames: list[Frame] = [(at(0), lan(router_ra(1), R1_MAC))]
    for n in range(2, 22):
        m, _, g = host(n)
        t = n * 0.5
        frames.append((at(t), lan(ns(g1, solicited_node(g), g, slla(m1)), m1)))
        frames.append((at(t + 0.001), lan(na(g, g1, g, 0x60, tlla(m)), m, m1)))
        for k in range(3):
            frames.append((at(t + 0.002 + k), lan(echo6(g1, g, 0x1, n * 4 + k), m1, m)))
            reply = echo6(g, g1, 0x1, n * 4 + k, reply=True)
            frames.append((at(t + 0.003 + k), lan(reply, m, m1)))
    write_pcap(out / "benign_pings.pcap", sorted(frames))


def cap_benign_dns_server(out: Path) -> None:
    """2001:db8:1::53 answers one AAAA query from each of 500 clients in 2001:db8:2::/64."""
    rng = random.Random(4295)
    lows = sorted({rng.randbytes(8) for _ in range(500)})
    assert len(lows) == 500
    frames: list[Frame] = []
    for i, low in enumerate(lows):
        client, t = a6("2001:db8:2::")[:8] + low, 1 + i * 0.18
        sport = 1024 + rng.randrange(64000)
        query = dns_message(i, "www.example.com")
        answer = dns_message(i, "www.example.com", a6("2001:db8:1::80"))
        q = ip6(client, DNS1, 17, udp6(client, DNS1, sport, 53, query), 60)
        r = ip6(DNS1, client, 17, udp6(DNS1, client, 53, sport, answer), 63)
        frames += [(at(t), wan6(q)), (at(t + 0.001), wan6(r))]
    write_pcap(out / "benign_dns_server.pcap", frames)


def cap_benign_busy_client(out: Path) -> None:
    """Host 5 opens one HTTP connection to each of 500 servers in 500 /64s; all answer."""
    _, _, client = host(5)
    frames: list[Frame] = []
    request, response = b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"
    for i in range(500):
        server, t, sport = a6(f"2001:db8:c:{i:x}::80"), 1 + i * 0.18, 33000 + i
        cs, ss = 1000 + i, 50000 + i
        syn = tcp6(client, server, sport, 80, 0x02, cs)
        synack = tcp6(server, client, 80, sport, 0x12, ss, cs + 1)
        req = tcp6_data(client, server, sport, 80, 0x18, cs + 1, ss + 1, request)
        rsp = tcp6_data(server, client, 80, sport, 0x18, ss + 1, cs + 1 + len(request), response)
        frames += [
            (at(t), wan6(ip6(client, server, 6, syn, 63))),
            (at(t + 0.02), wan6(ip6(server, client, 6, synack, 55))),
            (at(t + 0.021), wan6(ip6(client, server, 6, req, 63))),
            (at(t + 0.04), wan6(ip6(server, client, 6, rsp, 55))),
        ]
    write_pcap(out / "benign_busy_client.pcap", frames)


REPO = Path(__file__).resolve().parents[1]
DETECTIONS = REPO / "detectors" / "detections"
# detectors.detections.EXTRA_ENV, spelled out because this module imports nothing of
# detectors (tests/test_new_family.py checks the two agree).
EXTRA_ENV = "V6SENTRY_EXTRA_DETECTIONS"
FAMILY_CAPTURES = "captures.py"


def _cap_functions(module: ModuleType) -> list[Callable[[Path], None]]:
    # Defined in the module itself, in definition order: not the builders it imports.
    return [
        fn
        for name, fn in vars(module).items()
        if name.startswith("cap_") and callable(fn) and fn.__module__ == module.__name__
    ]


def family_capture_files(extra: Sequence[Path] = ()) -> list[Path]:
    """Every family's ``captures.py``: the built-in families', then ``extra``'s and
    EXTRA_ENV's folders' (each folder's families in name order)."""
    dirs = [DETECTIONS, *extra]
    dirs += [Path(p) for p in os.environ.get(EXTRA_ENV, "").split(os.pathsep) if p]
    files: list[Path] = []
    for folder in dict.fromkeys(d.resolve() for d in dirs):
        files += sorted(p for p in folder.glob(f"*/{FAMILY_CAPTURES}") if p.is_file())
    return files


def _load_family(path: Path) -> ModuleType:
    # Family writers say `from pcaps.generate import ...`; run as a script this module is
    # __main__, so it stands in for pcaps.generate rather than being executed twice.
    sys.modules.setdefault("pcaps.generate", sys.modules[__name__])
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    name = f"_v6sentry_captures_{path.parent.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"generate: {path}: cannot load")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not _cap_functions(module):
        raise SystemExit(f"generate: {path}: defines no cap_* function")
    return module


def captures(extra: Sequence[Path] = ()) -> list[Callable[[Path], None]]:
    """Every capture writer: the module's ``cap_*`` functions, in the order they are defined,
    then each family's (``family_capture_files``).

    Found by convention, so a new capture is one function (no list to keep in step). Each
    writes its own files from its own seeds, so the order changes no byte."""
    found = _cap_functions(sys.modules[__name__])
    for path in family_capture_files(extra):
        found += _cap_functions(_load_family(path))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write v6sentry's regression captures.")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write into (default: pcaps/)",
    )
    parser.add_argument(
        "--families",
        type=Path,
        action="append",
        default=[],
        help=f"a further folder of family folders with {FAMILY_CAPTURES} (as {EXTRA_ENV})",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for make in captures(args.families):
        make(args.out)
    print(f"generate: wrote {len(list(args.out.glob('*.pcap*')))} captures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
