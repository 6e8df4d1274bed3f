"""The first-hop family's regression captures: Redirects, smurf and Packet Too Big.

Owns four deterministic captures on the regression network of ``pcaps/policy.yaml``
(R1 and R2, hosts on 2001:db8:1::/64), each built on ``nd_traffic``: the routers'
RAs, the hosts' ND (which binds their addresses to their MACs) and traffic to a remote
server (the flows quoted packets are checked against), and an attacker that resolves
its own global address like any host of the link. ``first_hop_benign`` holds only
what an honest first hop does (a router's Redirect quoting a seen flow, path-MTU
discovery with a 1400-byte Packet Too Big, a host pinging ff02::1 from its own
link-local); the others pin every signature of their detection.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pcaps.generate import (
    ALL_NODES,
    PREFIX,
    R1_LL,
    R1_MAC,
    R2_LL,
    R2_MAC,
    Frame,
    a6,
    at,
    attacker,
    host,
    icmp6,
    ip6,
    lan,
    na,
    ns,
    opt,
    redirect,
    router_ra,
    slla,
    solicited_node,
    tcp6,
    tlla,
    write_pcap,
)

SERVER = a6("2001:db8:ffff::80")  # off-link, behind R1
R1_GLOBAL = PREFIX[:8] + bytes(7) + b"\x01"  # 2001:db8:1::1
ATTACKER_MAC, ATTACKER_LL = attacker(1)
ATTACKER_GLOBAL = PREFIX[:8] + bytes(6) + b"\x0b\xad"  # 2001:db8:1::bad
REMOTE = a6("2001:db8:ff::1")  # an off-link router address the attacker claims to be


def echo(src: bytes, dst: bytes, itype: int, seq: int, hlim: int = 64) -> bytes:
    return ip6(src, dst, 58, icmp6(src, dst, itype, struct.pack("!HH", 0x77, seq) + bytes(8)), hlim)


def syn(src: bytes, dst: bytes, sport: int) -> bytes:
    return ip6(src, dst, 6, tcp6(src, dst, sport, 443, 0x02), 64)


def redirected(packet: bytes) -> bytes:
    """A Redirected Header option quoting ``packet`` (cut to a multiple of 8)."""
    body = bytes(6) + packet
    body += bytes(-(len(body) + 2) % 8)
    return opt(4, body)


def ptb(src: bytes, dst: bytes, mtu: int, quoted: bytes, hlim: int = 64) -> bytes:
    return ip6(src, dst, 58, icmp6(src, dst, 2, struct.pack("!I", mtu) + quoted[:1232]), hlim)


def nd_traffic() -> list[Frame]:
    """R1 and R2 advertise; hosts 1-3 and the attacker resolve R1 (binding their global
    addresses to their MACs) and open a TCP connection to SERVER; R1 answers."""
    frames: list[Frame] = []
    for t in range(0, 400, 100):
        frames.append((at(t), lan(router_ra(1), R1_MAC)))
        frames.append((at(t + 5), lan(router_ra(2), R2_MAC)))
    nodes = [(host(n)[0], host(n)[2]) for n in (1, 2, 3)] + [(ATTACKER_MAC, ATTACKER_GLOBAL)]
    for k, (m, gl) in enumerate(nodes):
        t = 1 + k
        frames.append((at(t), lan(ns(gl, solicited_node(R1_LL), R1_LL, slla(m)), m)))
        frames.append((at(t + 0.001), lan(na(R1_LL, gl, R1_LL, 0xE0, tlla(R1_MAC)), R1_MAC, m)))
        frames.append((at(t + 0.1), lan(syn(gl, SERVER, 40000 + k), m)))
    return frames


def cap_first_hop_benign(out: Path) -> None:
    frames = nd_traffic()
    h1m, h1ll, h1 = host(1)
    h2m, h2ll, _ = host(2)
    # R1 redirects host 1's traffic for SERVER to R2, quoting the SYN it forwarded.
    rd = redirect(R1_LL, h1, R2_LL, SERVER, tlla(R2_MAC) + redirected(syn(h1, SERVER, 40000)))
    frames.append((at(10), lan(rd, R1_MAC, h1m)))
    # Path-MTU discovery: a 1500-byte echo to SERVER, R1's Packet Too Big (MTU 1400).
    big = ip6(h1, SERVER, 58, icmp6(h1, SERVER, 128, struct.pack("!HH", 9, 1) + bytes(1448)), 64)
    frames.append((at(20), lan(big, h1m)))
    frames.append((at(20.001), lan(ptb(R1_GLOBAL, h1, 1400, big), R1_MAC, h1m)))
    # Host 1 pings ff02::1 from its own link-local; R1 and host 2 answer.
    for seq in range(5):
        t = 30 + seq
        frames.append((at(t), lan(echo(h1ll, ALL_NODES, 128, seq), h1m)))
        frames.append((at(t + 0.001), lan(echo(R1_LL, h1ll, 129, seq), R1_MAC, h1m)))
        frames.append((at(t + 0.002), lan(echo(h2ll, h1ll, 129, seq), h2m, h1m)))
    write_pcap(out / "first_hop_benign.pcap", sorted(frames))


def cap_first_hop_redirect(out: Path) -> None:
    frames = nd_traffic()
    h1m, _, h1 = host(1)
    seen = redirected(syn(h1, SERVER, 40000))
    am = ATTACKER_MAC

    def send(t: float, src: bytes, m: bytes, target: bytes, options: bytes, hlim: int = 255,
             dest: bytes = SERVER) -> None:  # fmt: skip
        rd = redirect(src, h1, target, dest, options)
        rd = rd[:7] + bytes([hlim]) + rd[8:]
        frames.append((at(t), lan(rd, m, h1m)))

    send(10, R1_LL, am, ATTACKER_LL, tlla(am) + seen)  # spoofed_router_mac
    send(11, a6("fe80::bad:2"), am, ATTACKER_LL, seen, hlim=64)  # bad_hop_limit, not_router
    send(12, R1_LL, R1_MAC, ATTACKER_GLOBAL, seen)  # bad_target
    unseen = redirected(syn(h1, a6("2001:db8:ffff::99"), 40099))
    send(13, R1_LL, R1_MAC, R2_LL, unseen, dest=a6("2001:db8:ffff::99"))  # unseen_redirected
    send(14, R1_LL, R1_MAC, R2_LL, tlla(am) + seen)  # target_lla_mismatch
    send(15, REMOTE, am, ATTACKER_LL, seen)  # spoofed_remote_source, not_router
    send(16, R1_LL, am, ATTACKER_LL, tlla(am) + seen)  # suppressed (same sender, signature)
    # A burst: 14 more unknown routers, each from its own MAC, in the next window.
    for n in range(14):
        m = bytes([2, 0, 0, 0, 0x77, n])
        send(200 + n, a6(f"fe80::77:{n}"), m, a6(f"fe80::77:{n}"), seen)
    write_pcap(out / "first_hop_redirect.pcap", sorted(frames))


def cap_first_hop_smurf(out: Path) -> None:
    frames = nd_traffic()
    h1m, _, h1 = host(1)
    h2m, _, h2 = host(2)
    am = ATTACKER_MAC
    # Host 1's address to ff02::1 from the attacker's MAC, 1000 times in 5 s; R1 and
    # host 2 answer each: 2000 replies, a storm past 2000 in 10 s at the last one.
    for seq in range(1001):
        t = 10 + seq * 0.005
        frames.append((at(t), lan(echo(h1, ALL_NODES, 128, seq), am)))
        frames.append((at(t + 0.0001), lan(echo(R1_GLOBAL, h1, 129, seq), R1_MAC, h1m)))
        frames.append((at(t + 0.0002), lan(echo(h2, h1, 129, seq), h2m, h1m)))
    # rsmurf: an echo request to host 2 from ff02::1.
    frames.append((at(20), lan(echo(ALL_NODES, h2, 128, 1), am, h2m)))
    # A remote address to ff02::1 from the attacker's MAC: global, and spoofed remote.
    frames.append((at(21), lan(echo(a6("2001:db8:ff::5"), ALL_NODES, 128, 1), am)))
    # A burst: 14 on-link addresses nobody uses, each from its own MAC, next window.
    for n in range(14):
        m = bytes([2, 0, 0, 0, 0x78, n])
        frames.append((at(200 + n), lan(echo(PREFIX[:8] + bytes([0, 0, 0, 0, 0, 0, 0x78, n]),
                                             ALL_NODES, 128, n), m)))  # fmt: skip
    write_pcap(out / "first_hop_smurf.pcap", sorted(frames))


def cap_first_hop_ptb(out: Path) -> None:
    frames = nd_traffic()
    h1m, _, h1 = host(1)
    h2m, _, h2 = host(2)
    am = ATTACKER_MAC
    seen = syn(h1, SERVER, 40000)
    # From a remote router's address, from the attacker's MAC, MTU 1000.
    frames.append((at(10), lan(ptb(REMOTE, h1, 1000, seen), am, h1m)))
    # From R1 itself: an MTU of 1200 (small_mtu alone), and a quote of nothing seen.
    frames.append((at(11), lan(ptb(R1_GLOBAL, h1, 1200, seen), R1_MAC, h1m)))
    frames.append((at(12), lan(ptb(R1_GLOBAL, h1, 1400, syn(h1, a6("2001:db8:ffff::99"), 1)),
                               R1_MAC, h1m)))  # fmt: skip
    # A flood: 101 Packet Too Big from R1 to host 2 in 5 s, quoting its seen SYN.
    h2_seen = syn(h2, SERVER, 40001)
    for n in range(101):
        frames.append((at(20 + n * 0.05), lan(ptb(R1_GLOBAL, h2, 1400, h2_seen), R1_MAC, h2m)))
    # A burst: 14 remote addresses from the attacker's MAC, in the next window.
    for n in range(14):
        src = a6(f"2001:db8:ff::{0x100 + n:x}")
        frames.append((at(200 + n), lan(ptb(src, h1, 1400, seen), am, h1m)))
    write_pcap(out / "first_hop_ptb.pcap", sorted(frames))
