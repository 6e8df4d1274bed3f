"""The DNS family's regression captures (``pcaps/generate.py`` finds the ``cap_*``).

Owns building DNS traffic at our authoritative server (``pcaps/policy_dns.yaml``:
2001:db8:53::53 and 192.0.2.53, zone 1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa for the monitored
2001:db8:1::/48): backscatter of an outside scanner and of one of our hosts (resolvers
over IPv6, IPv4 and TCP), benign backscatter (a mail server, a router interface),
benign lookups (a busy authoritative answering many resolvers for many names, one
resolver asking a few), an RFC 8020 walk of our zone as dnsrevenum6 does it, a zone
transfer attempt over TCP (refused, then answered over many TCP segments: the
continuations must not be read as messages), and malformed messages. Deterministic:
fixed times and addresses.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from pcaps.generate import (
    Frame,
    a4,
    a6,
    at,
    eth,
    ipv4,
    mac,
    tcp_header,
    udp4,
    udp6,
    upper,
    write_pcap,
)

AUTH6, AUTH4 = a6("2001:db8:53::53"), a4("192.0.2.53")
AUTH_MAC, PEER_MAC = mac("02:00:00:00:00:53"), mac("02:00:00:00:01:01")
SCANNER = "2001:db8:bad:1::66"  # outside the monitored prefixes
OUR_BAD = "2001:db8:1::bad"  # inside them
MAIL = "2001:db8:1::25"
ROUTER = "2001:db8:1:ff::1"
WALKER, XFR = a6("2001:db8:bad:2::77"), a6("2001:db8:bad:2::78")
ZONE = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
ZONE_HOSTS = ("2001:db8:1::25", "2001:db8:1::53", "2001:db8:1::1:10")
PTR, AXFR = 12, 252
NOERROR, NXDOMAIN, REFUSED = 0, 3, 5


def arpa(addr: str) -> str:
    return ipaddress.IPv6Address(addr).reverse_pointer


def wire_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def message(
    qid: int, qname: str, qtype: int, *, response: bool = False, rcode: int = 0, ptr: str = ""
) -> bytes:
    """A DNS query or (authoritative) response with one question and at most one PTR."""
    flags = 0x8400 | rcode if response else 0x0000
    answers = 1 if ptr else 0
    head = struct.pack("!HHHHHH", qid, flags, 1, answers, 0, 0)
    body = wire_name(qname) + struct.pack("!HH", qtype, 1)
    if ptr:
        target = wire_name(ptr)
        body += b"\xc0\x0c" + struct.pack("!HHIH", PTR, 1, 3600, len(target)) + target
    return head + body


def resolver6(n: int) -> bytes:
    return a6(f"2001:db8:{0x100 + n:x}::53")


def udp_exchange(
    t: float, client: bytes, qid: int, qname: str, qtype: int, rcode: int, ptr: str = ""
) -> list[Frame]:
    """A query to our authoritative and its answer, over IPv6 or IPv4 (by address size)."""
    q = message(qid, qname, qtype)
    r = message(qid, qname, qtype, response=True, rcode=rcode, ptr=ptr)
    sport = 10000 + qid % 50000
    if len(client) == 4:
        return [
            (at(t), eth(ipv4(client, AUTH4, 17, udp4(sport, 53, q)), PEER_MAC, AUTH_MAC, 0x0800)),
            (
                at(t + 0.001),
                eth(ipv4(AUTH4, client, 17, udp4(53, sport, r)), AUTH_MAC, PEER_MAC, 0x0800),
            ),
        ]
    return [
        (
            at(t),
            eth(_ip6(client, AUTH6, 17, udp6(client, AUTH6, sport, 53, q)), PEER_MAC, AUTH_MAC),
        ),
        (
            at(t + 0.001),
            eth(_ip6(AUTH6, client, 17, udp6(AUTH6, client, 53, sport, r)), AUTH_MAC, PEER_MAC),
        ),
    ]


def _ip6(src: bytes, dst: bytes, nh: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, 60) + src + dst + payload


def tcp_exchange(
    t: float, client: bytes, qid: int, qname: str, qtype: int, rcode: int
) -> list[Frame]:
    """A TCP connection (handshake, length-prefixed query and answer, RFC 7766)."""
    q = message(qid, qname, qtype)
    r = message(qid, qname, qtype, response=True, rcode=rcode)
    port = 40000 + qid
    cs, ss = 1000, 5000  # initial sequence numbers

    def seg(
        src: bytes, dst: bytes, sp: int, dp: int, flags: int, seq: int, ack: int, data: bytes
    ) -> bytes:
        return upper(src, dst, 6, tcp_header(sp, dp, flags, seq, ack) + data, 16)

    qd, rd = struct.pack("!H", len(q)) + q, struct.pack("!H", len(r)) + r
    c2s = [
        (0.0, seg(client, AUTH6, port, 53, 0x02, cs, 0, b"")),
        (0.002, seg(client, AUTH6, port, 53, 0x10, cs + 1, ss + 1, b"")),
        (0.003, seg(client, AUTH6, port, 53, 0x18, cs + 1, ss + 1, qd)),
    ]
    s2c = [
        (0.001, seg(AUTH6, client, 53, port, 0x12, ss, cs + 1, b"")),
        (0.004, seg(AUTH6, client, 53, port, 0x18, ss + 1, cs + 1 + len(qd), rd)),
    ]
    return [(at(t + d), eth(_ip6(client, AUTH6, 6, p), PEER_MAC, AUTH_MAC)) for d, p in c2s] + [
        (at(t + d), eth(_ip6(AUTH6, client, 6, p), AUTH_MAC, PEER_MAC)) for d, p in s2c
    ]


def axfr_answer(qid: int, hosts: range) -> bytes:
    """An AXFR answer message of ``ZONE``: one PTR record per host number (uncompressed
    owner names, as a long answer has many)."""
    head = struct.pack("!HHHHHH", qid, 0x8400, 1, len(hosts), 0, 0)
    body = wire_name(ZONE) + struct.pack("!HH", AXFR, 1)
    for i in hosts:
        target = wire_name(f"host-{i}.example.com")
        body += wire_name(arpa(f"2001:db8:1::{0x2000 + i:x}"))
        body += struct.pack("!HHIH", PTR, 1, 3600, len(target)) + target
    return head + body


def tcp_axfr(t: float, client: bytes, qid: int) -> list[Frame]:
    """A zone transfer our authoritative allows: handshake, the AXFR query, and the answer
    (two messages of 100 PTRs, about 10 KB each) in 1220-byte segments, most of which
    start inside a message (RFC 7766)."""
    port = 41000 + qid
    cs, ss = 7000, 0xFFFFF000  # the server's sequence numbers wrap inside the answer

    def seg(
        src: bytes, dst: bytes, sp: int, dp: int, flags: int, seq: int, ack: int, data: bytes
    ) -> bytes:
        return upper(src, dst, 6, tcp_header(sp, dp, flags, seq % 2**32, ack % 2**32) + data, 16)

    q = message(qid, ZONE, AXFR)
    qd = struct.pack("!H", len(q)) + q
    stream = b"".join(
        struct.pack("!H", len(m)) + m
        for m in (axfr_answer(qid, range(k, k + 100)) for k in (0, 100))
    )
    c2s = [
        (0.0, seg(client, AUTH6, port, 53, 0x02, cs, 0, b"")),
        (0.002, seg(client, AUTH6, port, 53, 0x10, cs + 1, ss + 1, b"")),
        (0.003, seg(client, AUTH6, port, 53, 0x18, cs + 1, ss + 1, qd)),
    ]
    s2c = [(0.001, seg(AUTH6, client, 53, port, 0x12, ss, cs + 1, b""))]
    for n, off in enumerate(range(0, len(stream), 1220)):
        data = stream[off : off + 1220]
        s2c.append(
            (
                0.004 + n * 0.0001,
                seg(AUTH6, client, 53, port, 0x10, ss + 1 + off, cs + 1 + len(qd), data),
            )
        )
    return [(at(t + d), eth(_ip6(client, AUTH6, 6, p), PEER_MAC, AUTH_MAC)) for d, p in c2s] + [
        (at(t + d), eth(_ip6(AUTH6, client, 6, p), AUTH_MAC, PEER_MAC)) for d, p in s2c
    ]


def looked_up(t0: float, addr: str, resolvers: int, rcode: int, ptr: str, qid0: int) -> list[Frame]:
    """``resolvers`` distinct resolvers (IPv6, every fourth over IPv4, one over TCP) ask
    our authoritative for ``addr``'s PTR, 2 s apart; each asks twice (retries count once)."""
    frames: list[Frame] = []
    name = arpa(addr)
    for i in range(resolvers):
        t = t0 + 2 * i
        client = a4(f"198.51.100.{i + 1}") if i % 4 == 3 else resolver6(i)
        if i == 5:
            frames += tcp_exchange(t, client, qid0 + i, name, PTR, rcode)
            continue
        frames += udp_exchange(t, client, qid0 + i, name, PTR, rcode, ptr)
        frames += udp_exchange(t + 0.5, client, qid0 + 100 + i, name, PTR, rcode, ptr)
    return frames


def benign() -> list[Frame]:
    """A busy authoritative: 300 resolvers asking 300 different names (each name asked
    by at most 3 resolvers), and one resolver asking a few names."""
    frames: list[Frame] = []
    for i in range(300):
        addr = f"2001:db8:1::{i + 0x1000:x}"
        for j in range(1 + i % 3):
            client = resolver6(200 + (i + 7 * j) % 300)
            frames += udp_exchange(
                1 + i * 0.5 + j * 0.1,
                client,
                0x2000 + i * 4 + j,
                arpa(addr),
                PTR,
                NOERROR,
                f"h{i}.example.com",
            )
    for k in range(5):
        frames += udp_exchange(
            200 + k, resolver6(900), 0x9000 + k, arpa(f"2001:db8:1::{k + 1}"), PTR, NXDOMAIN
        )
    return frames


def cap_dns_benign(out: Path) -> None:
    write_pcap(out / "dns_benign.pcap", sorted(benign()))


def cap_dns_backscatter(out: Path) -> None:
    frames = benign()
    # An outside scanner without a name: 12 resolvers (potential abuse, one alert).
    frames += looked_up(10, SCANNER, 12, NXDOMAIN, "", 0x100)
    # One of our hosts, named like a desktop: potential abuse by our own host (high).
    frames += looked_up(60, OUR_BAD, 12, NOERROR, "pc-17.office.example.com", 0x300)
    # The mail server and a router interface: observations, no alert.
    frames += looked_up(110, MAIL, 15, NOERROR, "mail.example.com", 0x500)
    frames += looked_up(160, ROUTER, 12, NOERROR, "ae-1.core1.fra.example.net", 0x700)
    write_pcap(out / "dns_backscatter.pcap", sorted(frames))


def walk(t0: float, client: bytes, *, rotate: int = 0, extend: bool = False) -> list[Frame]:
    """dnsrevenum6's RFC 8020 walk of ZONE: the 16 children of every name that exists
    (NOERROR), NXDOMAIN for the others, down to the full names (answered with a PTR).
    Evasions the walk reducer must see through: ``rotate``, a new source address in the
    client's /64 every ``rotate`` queries; ``extend``, every name at once followed,
    before its answer, by a query for a made-up full name under it (posing as QNAME
    minimisation)."""
    hosts = [ipaddress.IPv6Address(h).exploded.replace(":", "") for h in ZONE_HOSTS]
    frames: list[Frame] = []
    zone_digits = "".join(reversed(ZONE[: -len(".ip6.arpa")].split(".")))
    frontier = [zone_digits]
    t, qid = t0, 0x4000
    while frontier:
        nxt = []
        for prefix in frontier:
            for d in "0123456789abcdef":
                digits = prefix + d
                name = ".".join(reversed(digits)) + ".ip6.arpa"
                exists = any(h.startswith(digits) for h in hosts)
                full = len(digits) == 32
                ptr = f"host-{digits[-4:]}.example.com" if exists and full else ""
                rcode = NOERROR if exists else NXDOMAIN
                src = client
                if rotate:
                    src = client[:8] + struct.pack("!Q", 0x1000 + (qid - 0x4000) // rotate)
                frames += udp_exchange(t, src, qid, name, PTR, rcode, ptr)
                if extend and not full:
                    fake = (digits + f"{qid:x}" * 8)[:32]
                    q = message(qid + 0x8000, ".".join(reversed(fake)) + ".ip6.arpa", PTR)
                    udp = udp6(src, AUTH6, 30000 + qid % 30000, 53, q)
                    pkt = _ip6(src, AUTH6, 17, udp)
                    frames.append((at(t + 0.0005), eth(pkt, PEER_MAC, AUTH_MAC)))
                t += 0.01
                qid += 1
                if exists and not full:
                    nxt.append(digits)
        frontier = nxt
    return frames


def cap_dns_walk(out: Path) -> None:
    frames = benign()
    frames += walk(20, WALKER)
    frames += tcp_exchange(30, XFR, 0x77, ZONE, AXFR, REFUSED)
    # Then allowed (the same querier: one alert per suppression interval).
    frames += tcp_axfr(35, XFR, 0x78)
    # Malformed: a compression loop in a question and a message cut short.
    loop = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", PTR, 1)
    frames.append(
        (at(40), eth(_ip6(XFR, AUTH6, 17, udp6(XFR, AUTH6, 5353, 53, loop)), PEER_MAC, AUTH_MAC))
    )
    short = b"\x00\x01\x00"
    frames.append(
        (at(41), eth(_ip6(XFR, AUTH6, 17, udp6(XFR, AUTH6, 5354, 53, short)), PEER_MAC, AUTH_MAC))
    )
    write_pcap(out / "dns_walk.pcap", sorted(frames))
