"""The DHCPv6 family's regression captures (``pcaps/generate.py`` finds the ``cap_*``).

Owns building DHCPv6 (RFC 8415) exchanges on the capture LAN: a legitimate server
(``pcaps/policy_dhcpv6.yaml``'s) serving several clients, a rogue server, a server
handing out a DNS server its entry does not list, rogue answers from many forged
servers (the burst), a starvation flood, and malformed messages. Deterministic: fixed
times, addresses and a seeded generator.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from pcaps.generate import (
    BAD_LL,
    BAD_MAC,
    DNS1,
    Frame,
    a6,
    at,
    eth,
    host,
    ip6,
    mac,
    multicast_mac,
    udp6,
    write_pcap,
)

SERVER_LL, SERVER_MAC = a6("fe80::547"), mac("02:00:00:00:05:47")
ALL_SERVERS = a6("ff02::1:2")  # All_DHCP_Relay_Agents_and_Servers (RFC 8415 7.1)
DOMAIN = "example.com"
EVIL_DNS = a6("2001:db8:666::53")
SOLICIT, ADVERTISE, REQUEST, REPLY, RENEW = 1, 2, 3, 7, 5


def opt(code: int, body: bytes) -> bytes:
    return struct.pack("!HH", code, len(body)) + body


def duid_ll(m: bytes) -> bytes:
    """DUID-LL (type 3) of an Ethernet MAC (RFC 8415 11.4)."""
    return b"\x00\x03\x00\x01" + m


SERVER_DUID = duid_ll(SERVER_MAC)


def message(mtype: int, xid: int, *options: bytes) -> bytes:
    return bytes([mtype]) + xid.to_bytes(3, "big") + b"".join(options)


def ia_na(iaid: int, *addresses: bytes) -> bytes:
    subs = b"".join(opt(5, a + struct.pack("!II", 7200, 7500)) for a in addresses)
    return opt(3, struct.pack("!III", iaid, 3600, 5400) + subs)


def dns(*servers: bytes) -> bytes:
    return opt(23, b"".join(servers))


def domains(*names: str) -> bytes:
    wire = b""
    for name in names:
        for label in name.split("."):
            wire += bytes([len(label)]) + label.encode()
        wire += b"\0"
    return opt(24, wire)


def from_client(src_mac: bytes, src: bytes, payload: bytes) -> bytes:
    return eth(ip6(src, ALL_SERVERS, 17, udp6(src, ALL_SERVERS, 546, 547, payload), 1),
               src_mac, multicast_mac(ALL_SERVERS))  # fmt: skip


def from_server(
    server_mac: bytes, server: bytes, client_mac: bytes, client: bytes, payload: bytes
) -> bytes:
    return eth(ip6(server, client, 17, udp6(server, client, 547, 546, payload), 255),
               server_mac, client_mac)  # fmt: skip


def exchange(
    t: float,
    n: int,
    xid: int,
    server: tuple[bytes, bytes, bytes] = (SERVER_MAC, SERVER_LL, SERVER_DUID),
    handed: tuple[bytes, ...] = (DNS1,),
) -> list[Frame]:
    """Client ``n``'s four-message exchange (Solicit, Advertise, Request, Reply)."""
    cmac, cll, cglobal = host(n)
    smac, sll, sduid = server
    cid, sid = opt(1, duid_ll(cmac)), opt(2, sduid)
    offer = (ia_na(n, cglobal), dns(*handed), domains(DOMAIN))

    def answer(mtype: int, x: int) -> bytes:
        return from_server(smac, sll, cmac, cll, message(mtype, x, cid, sid, *offer))

    return [
        (at(t), from_client(cmac, cll, message(SOLICIT, xid, cid, ia_na(n)))),
        (at(t + 0.01), answer(ADVERTISE, xid)),
        (at(t + 1.0), from_client(cmac, cll, message(REQUEST, xid + 1, cid, sid, ia_na(n)))),
        (at(t + 1.01), answer(REPLY, xid + 1)),
    ]


def benign(start: float = 0.0) -> list[Frame]:
    """The legitimate server serving five clients, then their renewals."""
    frames: list[Frame] = []
    for n in range(1, 6):
        frames += exchange(start + 10 * n, n, 0x100 * n)
    for n in range(1, 6):
        cmac, cll, cglobal = host(n)
        cid, sid = opt(1, duid_ll(cmac)), opt(2, SERVER_DUID)
        offer = (ia_na(n, cglobal), dns(DNS1), domains(DOMAIN))
        t = start + 300 + n
        renew = message(RENEW, 0x9000 + n, cid, sid, ia_na(n, cglobal))
        reply = message(REPLY, 0x9000 + n, cid, sid, *offer)
        frames += [
            (at(t), from_client(cmac, cll, renew)),
            (at(t + 0.01), from_server(SERVER_MAC, SERVER_LL, cmac, cll, reply)),
        ]
    return frames


def cap_dhcpv6_benign(out: Path) -> None:
    write_pcap(out / "dhcpv6_benign.pcap", sorted(benign()))


def cap_dhcpv6_rogue(out: Path) -> None:
    rogue = (BAD_MAC, BAD_LL, duid_ll(BAD_MAC))
    spoofed = (BAD_MAC, SERVER_LL, SERVER_DUID)  # the server's address from another MAC
    frames = benign()
    for i, n in enumerate((6, 7, 8)):  # one alert, then suppressed
        frames += exchange(100 + 5 * i, n, 0x600 + i, server=rogue, handed=(EVIL_DNS,))
    frames += exchange(150, 9, 0x700, server=spoofed)
    # The legitimate server hands out a DNS server its policy entry does not list.
    frames += exchange(200, 10, 0x800, handed=(DNS1, EVIL_DNS))
    write_pcap(out / "dhcpv6_rogue.pcap", sorted(frames))


def cap_dhcpv6_rogue_learned(out: Path) -> None:
    frames = benign() + benign(start=400)
    frames += exchange(700, 6, 0x600, server=(BAD_MAC, BAD_LL, duid_ll(BAD_MAC)))
    frames += exchange(900, 7, 0x700, server=(BAD_MAC, BAD_LL, duid_ll(BAD_MAC)))
    write_pcap(out / "dhcpv6_rogue_learned.pcap", sorted(frames))


def cap_dhcpv6_rogue_burst(out: Path) -> None:
    """30 forged servers (random MAC, address and DUID) answering within 3 s."""
    rnd = random.Random(14)
    frames = benign()
    cmac, cll, cglobal = host(1)
    for i in range(30):
        smac = bytes([2]) + rnd.randbytes(5)
        sll = a6("fe80::")[:8] + rnd.randbytes(8)
        payload = message(ADVERTISE, 0x100 + i, opt(1, duid_ll(cmac)), opt(2, duid_ll(smac)),
                          ia_na(1, cglobal), dns(EVIL_DNS))  # fmt: skip
        frames.append((at(120 + i * 0.1), from_server(smac, sll, cmac, cll, payload)))
    write_pcap(out / "dhcpv6_rogue_burst.pcap", sorted(frames))


def cap_dhcpv6_starvation(out: Path) -> None:
    """Solicits from 500 forged clients in 5 s (each a new MAC and DUID); the server
    advertises to the first 300, which all Request, and it replies to 100."""
    rnd = random.Random(1014)
    frames = benign()
    for i in range(500):
        t = 100 + i * 0.01
        cmac = bytes([2]) + rnd.randbytes(5)
        cll = a6("fe80::")[:8] + rnd.randbytes(8)
        cid = opt(1, duid_ll(cmac))
        frames.append((at(t), from_client(cmac, cll, message(SOLICIT, i, cid, ia_na(1)))))
        if i >= 300:
            continue
        sid = opt(2, SERVER_DUID)
        offer = ia_na(1, a6("2001:db8:1::1000")[:14] + i.to_bytes(2, "big"))
        frames += [
            (at(t + 0.001), from_server(SERVER_MAC, SERVER_LL, cmac, cll,
                                        message(ADVERTISE, i, cid, sid, offer, dns(DNS1)))),
            (at(t + 0.002), from_client(cmac, cll, message(REQUEST, 0x10000 + i, cid, sid, offer))),
        ]  # fmt: skip
        if i < 100:
            frames.append((at(t + 0.003), from_server(SERVER_MAC, SERVER_LL, cmac, cll,
                           message(REPLY, 0x10000 + i, cid, sid, offer, dns(DNS1)))))  # fmt: skip
    write_pcap(out / "dhcpv6_starvation.pcap", sorted(frames))


def cap_dhcpv6_malformed(out: Path) -> None:
    """The legitimate exchanges plus three malformed server messages: a truncated
    option, a DNS option of 15 bytes, a compressed domain name."""
    frames = benign()
    cmac, cll, _ = host(1)
    bad = [
        message(ADVERTISE, 1, opt(2, SERVER_DUID)) + b"\x00\x17\x00\x40\x20",
        message(ADVERTISE, 2, opt(2, SERVER_DUID), opt(23, bytes(15))),
        message(REPLY, 3, opt(2, SERVER_DUID), opt(24, b"\xc0\x0c")),
    ]
    for i, payload in enumerate(bad):
        frames.append((at(50 + i), from_server(SERVER_MAC, SERVER_LL, cmac, cll, payload)))
    write_pcap(out / "dhcpv6_malformed.pcap", sorted(frames))
