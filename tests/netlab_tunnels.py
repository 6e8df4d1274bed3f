"""Real IPv6-in-IPv4 tunnel traffic, recorded in a network-namespace lab.

Owns the tunnel scenarios of issue 4: an IPv4 network of namespaces on
documentation addresses only (192.0.2.0/24 captured, 198.51.100.0/24 and
203.0.113.0/24 behind a router; IPv6 inside the tunnels from 2001:db8::/32, the
Teredo prefix 2001:0::/32 and 6to4 prefixes of those IPv4 addresses), and what
crosses it:

- real Teredo: Debian's ``miredo-server`` and two ``miredo`` clients, run in the
  foreground from config files in the work dir, qualifying (RS/RA over UDP 3544),
  exchanging bubbles through the server and directly, then pinging each other's
  2001:0::/32 address on their own ports, and one echo to a native address through
  the server;
- protocol 41 built as packets (the kernel has no ``sit``): plain 6in4, 6to4,
  ISATAP (``0:5efe`` and ``200:5efe``), ISATAP whose embedded IPv4 is not the outer
  source, and a 150-address ICMPv6 sweep inside 6in4, sent through each
  namespace's own IPv4 stack with ``socket(AF_INET, SOCK_RAW, 41)``;
- AYIYA over UDP 5072 built as packets (SHA-1 shared-secret signatures, a
  heartbeat and forwarded echoes) sent with ordinary UDP sockets.

Each scenario declares the alert categories and signature ids it must raise and the
frames that prove its traffic crossed the captured segment; the frames are counted
by a tiny IPv4/UDP/Teredo/AYIYA parser of its own (``read_packets``), independent of
``detectors/``. The packet senders and receivers run inside the namespaces as this
module's ``agent`` (``python <workdir>/agent.py ...``). CLI::

    python -m tests.netlab_tunnels record OUTDIR [scenario ...]   # OUTDIR/<scenario>.pcap
    python -m tests.netlab_tunnels list

It reuses ``tests.netlab`` for the lab's lifetime (process groups, namespace
deletion, tcpdump on br0 in the switch namespace, tools under ``timeout``) and does
not change it. It does not run v6sentry or judge alerts (``tests/test_tunnel_lab.py``
does), and it builds no IPv6 LAN (``tests/netlab.py`` does). It never touches the
root namespace: every link, address, route and sysctl lives in a namespace it
created, no namespace has a default IPv4 route, and the only IPv6 default route is
the one miredo's own hook puts on the ``teredo`` interface inside a client namespace,
whose packets can only reach the lab's Teredo server. Needs root, iproute2, tcpdump,
miredo, miredo-server and /dev/net/tun.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import pwd
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.netlab import (
    NS_PREFIX,
    Lab,
    ToolRun,
    lab_problems,
    list_namespaces,
    remove_stale_namespaces,
)

ROOT: Final = Path(__file__).resolve().parents[1]
DAEMON_SECONDS: Final = 40  # hard bound on any daemon's life; they are stopped long before
AGENT_SECONDS: Final = 20  # hard bound on one agent run
TEREDO_PORT: Final = 3544
AYIYA_PORT: Final = 5072
NH_IPV6_IN_IPV4: Final = 41
NH_ICMPV6, NH_NONE = 58, 59
ECHO_REQUEST, ECHO_REPLY, RS, RA = 128, 129, 133, 134
ECHO_DATA: Final = b"v6sentry-tunnel-lab"
AYIYA_SECRET: Final = b"v6sentry-lab-shared-secret"
TEREDO_PREFIX: Final = bytes.fromhex("20010000")

# -- addresses ----------------------------------------------------------------------
# br0 (captured) is the "Internet" 192.0.2.0/24; r routes to br1, which carries
# 198.51.100.0/24 and 203.0.113.0/24. Nobody has a default route: each node knows
# the other two /24s through r, so no packet can be routed out of the lab.
TEREDO_SERVER: Final = "192.0.2.1"  # and 192.0.2.2: a Teredo server needs two in a row
TEREDO_SERVER2: Final = "192.0.2.2"
C1_V4: Final = "192.0.2.10"  # Teredo client on the captured segment
C2_V4: Final = "198.51.100.10"  # Teredo client behind the router (routed, not NATed)
T6_V4: Final = "192.0.2.30"  # a dual-stack host with 6in4, 6to4, ISATAP and AYIYA tunnels
ATK_V4: Final = "192.0.2.31"  # sends ISATAP claiming T6's address
ISR_V4: Final = "192.0.2.40"  # ISATAP router
R_PUBLIC: Final = "192.0.2.254"
R_INSIDE: Final = "198.51.100.1"
R_BROKER: Final = "203.0.113.1"
POP_V4: Final = "203.0.113.5"  # tunnel-broker PoP: 6in4 and AYIYA endpoint
H4_V4: Final = "198.51.100.20"  # 6to4 host
NATIVE_V6: Final = "2001:db8:ff::1"  # a native address a Teredo client pings via the server


def sixto4(v4: str, host: int = 1) -> str:
    """The 6to4 address ``2002:<v4>::<host>`` of an IPv4 address."""
    return str(ipaddress.IPv6Address((0x2002 << 112) | (_v4int(v4) << 80) | host))


def isatap(prefix: str, v4: str, *, universal: bool = False) -> str:
    """The ISATAP address ``<prefix /64>:0:5efe:<v4>`` (``200:5efe`` when ``universal``)."""
    net = ipaddress.IPv6Network(prefix)
    iid = ((0x0200 if universal else 0) << 48) | (0x5EFE << 32) | _v4int(v4)
    return str(net[iid])


def _v4int(v4: str) -> int:
    return int(ipaddress.IPv4Address(v4))


TUN6_LOCAL: Final = "2001:db8:4::2"  # T6's end of the 6in4 tunnel to the PoP
TUN6_REMOTE: Final = "2001:db8:4::1"  # the PoP's end
SWEEP_PREFIX: Final = "2001:db8:5::/64"
SWEEP_TARGETS: Final = 150
T6_6TO4: Final = sixto4(T6_V4)  # 2002:c000:21e::1
H4_6TO4: Final = sixto4(H4_V4)  # 2002:c633:6414::1
ISATAP_PREFIX: Final = "2001:db8:7::/64"
T6_ISATAP: Final = isatap(ISATAP_PREFIX, T6_V4)
T6_ISATAP_U: Final = isatap(ISATAP_PREFIX, T6_V4, universal=True)
ISR_ISATAP: Final = isatap(ISATAP_PREFIX, ISR_V4)
AYIYA_LOCAL: Final = "2001:db8:8::2"
AYIYA_REMOTE: Final = "2001:db8:8::1"


@dataclass(frozen=True)
class Leg:
    """One interface of a node: the bridge it plugs into, its MAC and IPv4 addresses."""

    bridge: str  # "br0" (captured) or "br1"
    mac: str
    addresses: tuple[str, ...]  # CIDR


@dataclass(frozen=True)
class Host:
    """A node of the IPv4 network; legs become eth0, eth1, ... in order."""

    name: str
    legs: tuple[Leg, ...]
    routes: tuple[tuple[str, str], ...] = ()  # (prefix, gateway); never a default route
    router: bool = False


_VIA_R: Final = (("198.51.100.0/24", R_PUBLIC), ("203.0.113.0/24", R_PUBLIC))


def _public(name: str, mac_byte: int, *addresses: str) -> Host:
    mac = f"02:00:00:00:c0:{mac_byte:02x}"
    return Host(name, (Leg("br0", mac, tuple(f"{a}/24" for a in addresses)),), _VIA_R)


TS: Final = _public("ts", 0x01, TEREDO_SERVER, TEREDO_SERVER2)
C1: Final = _public("c1", 0x0A, C1_V4)
T6: Final = _public("t6", 0x1E, T6_V4)
ATK: Final = _public("atk", 0x1F, ATK_V4)
ISR: Final = _public("isr", 0x28, ISR_V4)
R: Final = Host(
    "r",
    (
        Leg("br0", "02:00:00:00:c0:fe", (f"{R_PUBLIC}/24",)),
        Leg("br1", "02:00:00:00:c6:01", (f"{R_INSIDE}/24", f"{R_BROKER}/24")),
    ),
    router=True,
)
C2: Final = Host(
    "c2",
    (Leg("br1", "02:00:00:00:c6:0a", (f"{C2_V4}/24",)),),
    (("192.0.2.0/24", R_INSIDE), ("203.0.113.0/24", R_INSIDE)),
)
H4: Final = Host(
    "h4",
    (Leg("br1", "02:00:00:00:c6:14", (f"{H4_V4}/24",)),),
    (("192.0.2.0/24", R_INSIDE), ("203.0.113.0/24", R_INSIDE)),
)
POP: Final = Host(
    "pop",
    (Leg("br1", "02:00:00:00:cb:05", (f"{POP_V4}/24",)),),
    (("192.0.2.0/24", R_BROKER), ("198.51.100.0/24", R_BROKER)),
)


# -- packets (used by the agent in the namespaces, and by the evidence parser) -----


def a6(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv6(src: str, dst: str, nh: int, payload: bytes, hop_limit: int = 64) -> bytes:
    first = struct.pack("!IHBB", 6 << 28, len(payload), nh, hop_limit)
    return first + a6(src) + a6(dst) + payload


def icmpv6(src: str, dst: str, type_: int, body: bytes) -> bytes:
    """An IPv6 packet carrying an ICMPv6 message with a correct checksum."""
    msg = bytes([type_, 0, 0, 0]) + body
    pseudo = a6(src) + a6(dst) + struct.pack("!I3xB", len(msg), NH_ICMPV6)
    msg = msg[:2] + struct.pack("!H", checksum(pseudo + msg)) + msg[4:]
    return ipv6(src, dst, NH_ICMPV6, msg)


def echo(src: str, dst: str, ident: int, seq: int, *, reply: bool = False) -> bytes:
    body = struct.pack("!HH", ident, seq) + ECHO_DATA
    return icmpv6(src, dst, ECHO_REPLY if reply else ECHO_REQUEST, body)


@dataclass(frozen=True)
class Echo:
    """An ICMPv6 echo found in an IPv6 packet."""

    src: str
    dst: str
    reply: bool
    ident: int
    seq: int


def parse_echo(packet: bytes) -> Echo | None:
    if len(packet) < 48 or packet[0] >> 4 != 6 or packet[6] != NH_ICMPV6:
        return None
    if packet[40] not in (ECHO_REQUEST, ECHO_REPLY):
        return None
    ident, seq = struct.unpack_from("!HH", packet, 44)
    src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
    return Echo(src, dst, packet[40] == ECHO_REPLY, ident, seq)


def echo_answer(packet: bytes) -> bytes:
    """The echo reply to an echo request: addresses swapped, same identifier, data."""
    e = parse_echo(packet)
    assert e is not None and not e.reply
    plen = struct.unpack_from("!H", packet, 4)[0]
    return icmpv6(e.dst, e.src, ECHO_REPLY, packet[44 : 40 + plen])


def ayiya(identity: str, payload: bytes, *, forward: bool = True, epoch: int = 0) -> bytes:
    """AYIYA: 16-byte IPv6 identity, SHA-1 shared-secret signature, forward or no-op.

    Byte 0: identity length 2^4 / type 1 (IPv6 address); byte 1: signature length
    5 words / hash 2 (SHA-1); byte 2: authentication 2 (shared secret) / opcode 1
    (forward) or 0 (no-op, AICCU's heartbeat); byte 3: next header 41, or 59 for a
    heartbeat. The signature is the SHA-1 of the whole packet with the secret's SHA-1
    in the signature field, as AICCU computes it.
    """
    nh = NH_IPV6_IN_IPV4 if forward else NH_NONE
    head = bytes([0x41, 0x52, 0x21 if forward else 0x20, nh]) + struct.pack("!I", epoch)
    head += a6(identity)
    unsigned = head + hashlib.sha1(AYIYA_SECRET).digest() + payload
    return head + hashlib.sha1(unsigned).digest() + payload


@dataclass(frozen=True)
class Ayiya:
    opcode: int
    next_header: int
    identity: bytes
    signed: bool  # the signature checks out against AYIYA_SECRET
    payload: bytes


def parse_ayiya(data: bytes) -> Ayiya | None:
    if len(data) < 8 or data[0] >> 4 == 0:
        return None
    id_len, sig_len = 1 << (data[0] >> 4), (data[1] >> 4) * 4
    start = 8 + id_len + sig_len
    if len(data) < start:
        return None
    sig = data[8 + id_len : start]
    unsigned = data[: 8 + id_len] + hashlib.sha1(AYIYA_SECRET).digest() + data[start:]
    signed = sig_len == 20 and hashlib.sha1(unsigned).digest() == sig
    return Ayiya(data[2] & 0x0F, data[3], data[8 : 8 + id_len], signed, data[start:])


# -- the agent: senders and receivers run inside the namespaces ---------------------


def _result(**counts: object) -> int:
    print(json.dumps(counts), flush=True)
    return 0


def _v4_payload(datagram: bytes) -> tuple[str, bytes]:
    """(source, payload) of an IPv4 datagram as a raw socket returns it."""
    ihl = (datagram[0] & 0x0F) * 4
    return socket.inet_ntoa(datagram[12:16]), datagram[ihl:]


def _await_reply(sock: socket.socket, want: Callable[[bytes], bool], wait: float) -> bool:
    end = time.monotonic() + wait
    while (left := end - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
        if want(sock.recv(65535)):
            return True
    return False


def _agent_p41(args: argparse.Namespace) -> int:
    """Echo requests in protocol 41 to ``--to``; with ``--sweep``, one per target."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, NH_IPV6_IN_IPV4)
    ident = os.getpid() & 0xFFFF
    if args.sweep:
        net = ipaddress.IPv6Network(args.sweep)
        targets = [str(net[i + 1]) for i in range(args.count)]  # ::1, ::2, ... (low-byte)
    else:
        targets = [args.dst] * args.count
    answered = 0
    for seq, target in enumerate(targets, 1):
        sock.sendto(echo(args.src, target, ident, seq), (args.to, 0))

        def is_reply(datagram: bytes, seq: int = seq) -> bool:
            outer, inner = _v4_payload(datagram)
            e = parse_echo(inner)
            return (
                outer == args.to
                and e is not None
                and e.reply
                and (e.ident, e.seq)
                == (
                    ident,
                    seq,
                )
            )

        if args.wait > 0:
            answered += _await_reply(sock, is_reply, args.wait)
        else:
            time.sleep(0.002)  # paced, so the capture keeps every probe
    return _result(sent=len(targets), answered=answered)


def _agent_ayiya(args: argparse.Namespace) -> int:
    """An AYIYA heartbeat, then echo requests forwarded in AYIYA, from and to UDP 5072."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", AYIYA_PORT))  # AICCU uses 5072 on both ends
    ident = os.getpid() & 0xFFFF
    sock.sendto(ayiya(args.src, b"", forward=False, epoch=int(time.time())), (args.to, AYIYA_PORT))
    answered = 0
    for seq in range(1, args.count + 1):
        inner = echo(args.src, args.dst, ident, seq)
        sock.sendto(ayiya(args.src, inner, epoch=int(time.time())), (args.to, AYIYA_PORT))

        def is_reply(data: bytes, seq: int = seq) -> bool:
            a = parse_ayiya(data)
            e = parse_echo(a.payload) if a is not None and a.signed else None
            return e is not None and e.reply and (e.ident, e.seq) == (ident, seq)

        answered += _await_reply(sock, is_reply, args.wait)
    return _result(sent=args.count + 1, answered=answered)


def _agent_sink(args: argparse.Namespace) -> int:
    """Receive protocol 41 and/or AYIYA until SIGTERM; answer echoes to ``--answer`` addresses.

    A raw protocol-41 socket also keeps the kernel from sending ICMP "protocol
    unreachable" for every tunnelled packet (this kernel has no sit to take them).
    """
    answer = {str(ipaddress.IPv6Address(a)) for a in args.answer}
    socks: dict[socket.socket, str] = {}
    if args.p41:
        socks[socket.socket(socket.AF_INET, socket.SOCK_RAW, NH_IPV6_IN_IPV4)] = "p41"
    if args.ayiya:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("0.0.0.0", AYIYA_PORT))
        socks[udp] = "ayiya"
    counts = {"p41": 0, "ayiya": 0, "answered": 0, "bad_signature": 0}
    stopped: list[int] = []
    # SIGTERM (the lab's stop) ends the loop cleanly, so the counts still get printed.
    signal.signal(signal.SIGTERM, lambda sig, _frame: stopped.append(sig))
    print("ready", flush=True)
    end = time.monotonic() + args.seconds
    while not stopped and (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(list(socks), [], [], min(left, 0.2))
        for sock in ready:
            data, peer = sock.recvfrom(65535)
            counts[socks[sock]] += 1
            if socks[sock] == "p41":
                _, inner = _v4_payload(data)
                e = parse_echo(inner)
                if e is not None and not e.reply and e.dst in answer:
                    sock.sendto(echo_answer(inner), (peer[0], 0))
                    counts["answered"] += 1
                continue
            a = parse_ayiya(data)
            if a is None or not a.signed:
                counts["bad_signature"] += 1
                continue
            e = parse_echo(a.payload) if a.opcode == 1 else None
            if e is not None and not e.reply and e.dst in answer:
                reply = ayiya(e.dst, echo_answer(a.payload), epoch=int(time.time()))
                sock.sendto(reply, peer)
                counts["answered"] += 1
    return _result(**counts)


def _agent_ping(args: argparse.Namespace) -> int:
    """ICMPv6 echoes from the kernel's own stack (over the teredo interface), one at a time."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    ident = os.getpid() & 0xFFFF
    answered = 0
    for seq in range(1, args.count + 1):
        # The kernel fills in the checksum of an ICMPv6 raw socket.
        sock.sendto(struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq) + ECHO_DATA, (args.to, 0))

        def is_reply(data: bytes, seq: int = seq) -> bool:
            return data[0] == ECHO_REPLY and struct.unpack_from("!HH", data, 4) == (ident, seq)

        answered += _await_reply(sock, is_reply, args.wait)
    return _result(sent=args.count, answered=answered)


def agent(argv: Sequence[str]) -> int:
    """Entry point of the helper that runs in a namespace; prints one JSON line of counts."""
    parser = argparse.ArgumentParser(prog="agent")
    sub = parser.add_subparsers(dest="op", required=True)
    p41 = sub.add_parser("p41")
    p41.add_argument("--to", required=True)
    p41.add_argument("--src", required=True)
    p41.add_argument("--dst", default="")
    p41.add_argument("--sweep", default="")
    ayi = sub.add_parser("ayiya")
    ayi.add_argument("--to", required=True)
    ayi.add_argument("--src", required=True)
    ayi.add_argument("--dst", required=True)
    ping = sub.add_parser("ping")
    ping.add_argument("--to", required=True)
    for p in (p41, ayi, ping):
        p.add_argument("--count", type=int, default=5)
        p.add_argument("--wait", type=float, default=1.0)
    sink = sub.add_parser("sink")
    sink.add_argument("--p41", action="store_true")
    sink.add_argument("--ayiya", action="store_true")
    sink.add_argument("--answer", nargs="*", default=[])
    sink.add_argument("--seconds", type=float, default=AGENT_SECONDS - 2)
    args = parser.parse_args(argv)
    ops: dict[str, Callable[[argparse.Namespace], int]] = {
        "p41": _agent_p41,
        "ayiya": _agent_ayiya,
        "ping": _agent_ping,
        "sink": _agent_sink,
    }
    return ops[args.op](args)


_AGENT_SCRIPT: Final = f"""\
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.netlab_tunnels import agent
sys.exit(agent(sys.argv[1:]))
"""


# -- the lab ------------------------------------------------------------------------


def teredo_user() -> str:
    """The user miredo drops to: Debian's ``miredo`` if the package made it, else nobody.

    miredo refuses to keep root ("This program is not supposed to keep root
    privileges"), so ``-u root`` is no way out.
    """
    for name in ("miredo", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return ""


@dataclass(frozen=True)
class TeredoAddress:
    """What a Teredo address (RFC 4380 4) says about its client."""

    address: str
    server: str
    flags: int
    mapped_ip: str
    mapped_port: int

    @classmethod
    def decode(cls, address: str) -> TeredoAddress:
        raw = a6(address)
        server = socket.inet_ntoa(raw[4:8])
        flags, port = struct.unpack_from("!HH", raw, 8)
        mapped = bytes(b ^ 0xFF for b in raw[12:16])  # obfuscated: every bit inverted
        return cls(address, server, flags, socket.inet_ntoa(mapped), port ^ 0xFFFF)


class TunnelLab(Lab):
    """``tests.netlab.Lab`` with an IPv4 topology of ``Host``s instead of its IPv6 LAN.

    Only the lab's lifetime, ``sh``/``spawn``, the capture of br0 and the tool runs are
    inherited; namespaces made here are registered in ``self.namespaces`` so
    ``close()`` deletes them like its own.
    """

    def __init__(self, workdir: Path, pcap: Path) -> None:
        super().__init__(workdir, pcap)
        self.notes: list[str] = []
        self.agent = workdir / "agent.py"
        self.agent.write_text(_AGENT_SCRIPT, encoding="utf-8")

    def _netns(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        _run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)  # from here on close() deletes it, whatever happens
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns

    def _switch(self) -> None:
        """The switch namespace: hub-mode bridges br0 (captured) and br1, IPv6 off."""
        if self.switch in self.namespaces:
            return
        self._netns("sw")
        self.sysctl("sw", {"net.ipv6.conf.all.disable_ipv6": 1})
        self.sysctl("sw", {"net.ipv6.conf.default.disable_ipv6": 1})
        for br in ("br0", "br1"):
            # ageing_time 0: a hub, so the capture on br0 sees every unicast frame.
            hub = "ageing_time 0 mcast_snooping 0 stp_state 0 forward_delay 0"
            _run(["ip", "-n", self.switch, "link", "add", br, "type", "bridge", *hub.split()])
            _run(["ip", "-n", self.switch, "link", "set", br, "up"])

    def build(self, *hosts: Host) -> None:
        """Create every host's namespace, plug its legs in, address and route them."""
        self._switch()
        for host in hosts:
            ns = self.nodes[host.name] = self._netns(host.name)
            for i, leg in enumerate(host.legs):
                ifname, port = f"eth{i}", f"{leg.bridge[-1]}-{host.name}{i}"
                # Born in the switch with its peer in the node: nothing in the root namespace.
                veth = f"link add {port} type veth peer name {ifname} netns {ns}"
                _run(["ip", "-n", self.switch, *veth.split()])
                _run(["ip", "-n", self.switch, "link", "set", port, "master", leg.bridge, "up"])
                # IPv4 only on the wire: no link-local, RS or MLD of the node's own.
                self.sysctl(host.name, {f"net.ipv6.conf.{ifname}.disable_ipv6": 1})
                _run(["ip", "-n", ns, "link", "set", ifname, "address", leg.mac, "up"])
                for cidr in leg.addresses:
                    _run(["ip", "-n", ns, "addr", "add", cidr, "dev", ifname])
            if host.router:
                self.sysctl(host.name, {"net.ipv4.ip_forward": 1})
            for prefix, gateway in host.routes:
                _run(["ip", "-n", ns, "route", "add", prefix, "via", gateway])

    def stop(self, run: ToolRun, sig: int = signal.SIGTERM) -> ToolRun:
        """End a started daemon now (its process group), keeping its output."""
        if run.proc is not None and run.proc.poll() is None:
            os.killpg(run.proc.pid, sig)
        return self.finish(run)

    def start_agent(self, node: str, *argv: str) -> ToolRun:
        run = self.start_tool(node, [sys.executable, str(self.agent), *argv], AGENT_SECONDS)
        if argv[0] == "sink":
            self._wait_log(run, "ready", 5.0)
        return run

    def agent_result(self, run: ToolRun) -> dict[str, int]:
        """Wait for an agent and return its JSON counts (noted for the report)."""
        self.finish(run)
        lines = run.output.strip().splitlines()
        try:
            counts: dict[str, int] = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError) as exc:
            raise RuntimeError(f"{run.node}: {run.command}: {run.output.strip()}") from exc
        self.notes.append(f"[{run.node}] {' '.join(run.argv[2:])} -> {counts}")
        return counts

    def run_agent(self, node: str, *argv: str) -> dict[str, int]:
        return self.agent_result(self.start_agent(node, *argv))

    def stop_sink(self, run: ToolRun) -> dict[str, int]:
        """Stop a sink agent once the last packets have landed, and return its counts."""
        time.sleep(0.3)
        assert run.proc is not None
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGTERM)
        return self.agent_result(run)

    def _wait_log(self, run: ToolRun, text: str, timeout: float) -> None:
        assert run.log is not None and run.proc is not None
        deadline = time.monotonic() + timeout
        while text not in run.log.read_text(errors="replace"):
            if run.proc.poll() is not None or time.monotonic() > deadline:
                out = run.log.read_text(errors="replace").strip()
                raise RuntimeError(f"{run.node}: {run.command}: no {text!r}: {out}")
            time.sleep(0.02)

    # -- Teredo ------------------------------------------------------------------------

    def start_teredo_server(self, node: str) -> ToolRun:
        conf = self.workdir / "miredo-server.conf"
        conf.write_text(
            f"ServerBindAddress {TEREDO_SERVER}\nServerBindAddress2 {TEREDO_SERVER2}\n",
            encoding="utf-8",
        )
        pidfile = self.workdir / "miredo-server.pid"
        argv = ["miredo-server", "-f", "-u", teredo_user(), "-c", str(conf), "-p", str(pidfile)]
        run = self.start_tool(node, argv, DAEMON_SECONDS)
        self._wait_log(run, "Starting", 5.0)
        return run

    def start_teredo_client(self, node: str) -> ToolRun:
        # ServerAddress set explicitly: the packaged default names a real server.
        conf = self.workdir / f"miredo-{node}.conf"
        conf.write_text(
            "RelayType client\n"
            "InterfaceName teredo\n"
            f"ServerAddress {TEREDO_SERVER}\n"
            f"ServerAddress2 {TEREDO_SERVER2}\n",
            encoding="utf-8",
        )
        pidfile = self.workdir / f"miredo-{node}.pid"
        argv = ["miredo", "-f", "-u", teredo_user(), "-c", str(conf), "-p", str(pidfile)]
        return self.start_tool(node, argv, DAEMON_SECONDS)

    def teredo_address(self, node: str, run: ToolRun, timeout: float = 10.0) -> TeredoAddress:
        """Wait for qualification: miredo's hook puts a 2001:0::/32 address on ``teredo``."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.sh(node, "ip", "-j", "-6", "addr", "show", "dev", "teredo", check=False)
            for link in json.loads(proc.stdout or "[]") if proc.returncode == 0 else []:
                for info in link.get("addr_info", []):
                    if a6(info["local"])[:4] == TEREDO_PREFIX:
                        return TeredoAddress.decode(info["local"])
            assert run.proc is not None
            if run.proc.poll() is not None or time.monotonic() > deadline:
                log = run.log.read_text(errors="replace") if run.log else ""
                raise RuntimeError(f"{node}: miredo did not qualify in {timeout}s: {log.strip()}")
            time.sleep(0.1)


def _run(argv: Sequence[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


# -- reading the capture back --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """What the evidence checks need from one captured IPv4 frame."""

    src: str
    dst: str
    proto: int
    sport: int  # 0 unless UDP
    dport: int
    payload: bytes  # after the IPv4 (and UDP) header, first 256 bytes

    @property
    def ports(self) -> tuple[int, int]:
        return (self.sport, self.dport)


def _packet(data: bytes) -> Packet | None:
    if len(data) < 34 or data[12:14] != b"\x08\x00" or data[14] >> 4 != 4:
        return None
    ihl = (data[14] & 0x0F) * 4
    total = struct.unpack_from("!H", data, 16)[0]
    body = data[14 + ihl : 14 + total]
    src, dst = socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34])
    proto, sport, dport = data[23], 0, 0
    if proto == socket.IPPROTO_UDP and len(body) >= 8:
        sport, dport = struct.unpack_from("!HH", body)
        body = body[8:]
    return Packet(src, dst, proto, sport, dport, body[:256])


def read_packets(pcap: Path) -> Iterator[Packet]:
    """Every IPv4 frame of a classic pcap file (what tcpdump -w writes), parsed just enough."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    record = struct.Struct(order + "IIII")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = record.unpack_from(data, off)
        off += 16
        if (p := _packet(data[off : off + incl])) is not None:
            yield p
        off += incl


def teredo_kind(p: Packet) -> str | None:
    """ "rs", "ra", "bubble" or "data" for a UDP payload that is Teredo, else None."""
    if p.proto != socket.IPPROTO_UDP or AYIYA_PORT in p.ports:
        return None
    q, data = 0, p.payload
    if data[:2] == b"\x00\x01" and len(data) >= 4:  # authentication indicator
        q = 4 + data[2] + data[3] + 9
    if data[q : q + 2] == b"\x00\x00":  # origin indication
        q += 8
    inner = data[q:]
    if len(inner) < 40 or inner[0] >> 4 != 6:
        return None
    if inner[6] == NH_ICMPV6 and len(inner) > 40 and inner[40] in (RS, RA):
        return "rs" if inner[40] == RS else "ra"
    if TEREDO_PREFIX not in (inner[8:12], inner[24:28]):
        return None
    return "bubble" if inner[6] == NH_NONE and inner[4:6] == b"\0\0" else "data"


def p41_kind(p: Packet) -> str | None:
    """The plan's protocol-41 kind: "6to4", "isatap", "isatap_spoofed" or "6in4"."""
    inner = p.payload
    if p.proto != NH_IPV6_IN_IPV4 or len(inner) < 40 or inner[0] >> 4 != 6:
        return None
    src, dst = inner[8:24], inner[24:40]
    if src[:2] == b"\x20\x02" or dst[:2] == b"\x20\x02":
        return "6to4"

    def is_isatap(a: bytes) -> bool:
        return a[8:12] in (b"\x00\x00\x5e\xfe", b"\x02\x00\x5e\xfe")

    if is_isatap(src) and socket.inet_ntoa(src[12:16]) != p.src:
        return "isatap_spoofed"
    if is_isatap(src) or is_isatap(dst):
        return "isatap"
    return "6in4"


def inner_echo(p: Packet) -> Echo | None:
    """The ICMPv6 echo inside a protocol-41 or AYIYA packet."""
    if p.proto == NH_IPV6_IN_IPV4:
        return parse_echo(p.payload)
    a = parse_ayiya(p.payload) if AYIYA_PORT in p.ports else None
    return parse_echo(a.payload) if a is not None and a.opcode == 1 else None


@dataclass(frozen=True)
class Evidence:
    """At least ``minimum`` packets matching ``match`` prove the traffic crossed br0."""

    what: str
    match: Callable[[Packet], bool]
    minimum: int = 1

    def count(self, packets: Sequence[Packet]) -> int:
        return sum(1 for p in packets if self.match(p))


def teredo(
    kind: str, *, on_port: bool | None = None, src: str = "", dst: str = ""
) -> Callable[[Packet], bool]:
    """Teredo packets of ``kind``; ``on_port``: UDP 3544 on one side (True) or neither."""

    def match(p: Packet) -> bool:
        return (
            teredo_kind(p) == kind
            and (on_port is None or (TEREDO_PORT in p.ports) == on_port)
            and (not src or p.src == src)
            and (not dst or p.dst == dst)
        )

    return match


def p41(kind: str, src: str, dst: str, *, reply: bool | None = None) -> Callable[[Packet], bool]:
    """Protocol-41 packets of ``kind`` from ``src`` to ``dst``; ``reply``: echo reply or request."""

    def match(p: Packet) -> bool:
        if p41_kind(p) != kind or (p.src, p.dst) != (src, dst):
            return False
        e = inner_echo(p)
        return reply is None or (e is not None and e.reply == reply)

    return match


def sweep_probe(p: Packet) -> bool:
    e = inner_echo(p)
    net = ipaddress.IPv6Network(SWEEP_PREFIX)
    return p41_kind(p) == "6in4" and e is not None and ipaddress.IPv6Address(e.dst) in net


def ayiya_packets(src: str, dst: str, *, reply: bool | None = None) -> Callable[[Packet], bool]:
    """Signed AYIYA on UDP 5072 both sides; ``reply`` None means a heartbeat (no-op)."""

    def match(p: Packet) -> bool:
        if (p.src, p.dst, p.ports) != (src, dst, (AYIYA_PORT, AYIYA_PORT)):
            return False
        a = parse_ayiya(p.payload)
        if a is None or not a.signed:
            return False
        if reply is None:
            return a.opcode == 0 and a.next_header == NH_NONE
        e = inner_echo(p)
        return e is not None and e.reply == reply

    return match


# -- scenarios -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One recording: what runs, what it needs, and what v6sentry should say about it."""

    name: str
    expect: frozenset[str]  # alert categories that must be raised
    sids: frozenset[int]  # signature ids that must be among the alerts
    run: Callable[[TunnelLab], None]
    tools: tuple[str, ...]  # binaries beyond tests.netlab.LAB_BINARIES
    evidence: tuple[Evidence, ...]
    tun: bool = False  # needs /dev/net/tun

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip()


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    expect: Sequence[str],
    sids: Sequence[int],
    evidence: Sequence[Evidence],
    tools: Sequence[str] = (),
    *,
    tun: bool = False,
) -> Callable[[Callable[[TunnelLab], None]], Callable[[TunnelLab], None]]:
    """Register the decorated function as a scenario named after it, in definition order."""

    def register(fn: Callable[[TunnelLab], None]) -> Callable[[TunnelLab], None]:
        SCENARIOS[fn.__name__] = Scenario(
            fn.__name__,
            frozenset(expect),
            frozenset(sids),
            fn,
            tuple(tools),
            tuple(evidence),
            tun,
        )
        return fn

    return register


@scenario(
    expect=["ipv6.tunnel_teredo"],
    # qualification, bubbles through the server, data to port 3544, off-port bubbles/data
    sids=[1000331, 1000332, 1000333, 1000334],
    evidence=[
        Evidence("RS from a client to the server's UDP 3544", teredo("rs", on_port=True), 2),
        Evidence("RA from the server's UDP 3544", teredo("ra", on_port=True), 2),
        Evidence("bubble through the server (UDP 3544)", teredo("bubble", on_port=True), 2),
        Evidence("direct bubble between the clients", teredo("bubble", on_port=False), 1),
        Evidence(
            "data c1 -> c2 off port 3544", teredo("data", on_port=False, src=C1_V4, dst=C2_V4), 5
        ),
        Evidence(
            "data c2 -> c1 off port 3544", teredo("data", on_port=False, src=C2_V4, dst=C1_V4), 5
        ),
        Evidence("data to the server's UDP 3544", teredo("data", on_port=True, dst=TEREDO_SERVER)),
    ],
    tools=["miredo", "miredo-server"],
    tun=True,
)
def teredo_miredo(lab: TunnelLab) -> None:
    """miredo-server on 192.0.2.1 and .2; miredo clients c1 (192.0.2.10) and c2 (behind r).

    ts: ``miredo-server -f -u miredo -c miredo-server.conf -p miredo-server.pid`` with
    ``ServerBindAddress 192.0.2.1`` and ``ServerBindAddress2 192.0.2.2``; c1 and c2:
    ``miredo -f -u miredo -c miredo-<node>.conf -p miredo-<node>.pid`` with ``RelayType
    client``, ``InterfaceName teredo``, ``ServerAddress 192.0.2.1`` and ``ServerAddress2
    192.0.2.2`` (each bounded by ``timeout 40``, stopped with SIGTERM when done). Once
    both have a 2001:0::/32 address (qualification: RS/RA with the server on UDP 3544),
    c1 pings c2's Teredo address 5 times and c2 pings c1's 5 times (bubbles through the
    server and directly, then the echoes between the clients' own ports), and c1 pings
    2001:db8:ff::1 twice: a native address, so miredo sends the echo to the server's
    UDP 3544 for relay discovery (the server has no IPv6 route: it goes no further).
    No NAT: the lab has no nft or iptables binary, so c2 is routed, not masqueraded.
    """
    lab.build(TS, C1, R, C2)
    lab.start_capture()
    server = lab.start_teredo_server("ts")
    clients = {node: lab.start_teredo_client(node) for node in ("c1", "c2")}
    addresses = {node: lab.teredo_address(node, run) for node, run in clients.items()}
    for node, public in (("c1", C1_V4), ("c2", C2_V4)):
        t = addresses[node]
        lab.notes.append(
            f"{node}: {t.address} server {t.server} mapped {t.mapped_ip}:{t.mapped_port} "
            f"flags {t.flags:#06x}"
        )
        if (t.server, t.mapped_ip) != (TEREDO_SERVER, public):
            raise RuntimeError(f"{node}: Teredo address {t} does not match the lab")
    for src, dst in (("c1", "c2"), ("c2", "c1")):
        got = lab.run_agent(src, "ping", "--to", addresses[dst].address, "--count", "5")
        if not got["answered"]:
            raise RuntimeError(f"{src} -> {dst}: no echo reply over Teredo")
    lab.run_agent("c1", "ping", "--to", NATIVE_V6, "--count", "2", "--wait", "0.5")
    for run in (*clients.values(), server):
        lab.stop(run)


@scenario(
    expect=["ipv6.tunnel_6in4", "ipv6.tunnel_6to4", "ipv6.tunnel_isatap"],
    sids=[1000321, 1000301, 1000311, 1000312],
    evidence=[
        Evidence("6in4 echo request t6 -> pop", p41("6in4", T6_V4, POP_V4, reply=False), 5),
        Evidence("6in4 echo reply pop -> t6", p41("6in4", POP_V4, T6_V4, reply=True), 5),
        Evidence("6to4 echo request t6 -> h4", p41("6to4", T6_V4, H4_V4, reply=False), 5),
        Evidence("6to4 echo reply h4 -> t6", p41("6to4", H4_V4, T6_V4, reply=True), 5),
        Evidence("ISATAP (0:5efe and 200:5efe) t6 -> isr", p41("isatap", T6_V4, ISR_V4), 10),
        Evidence("ISATAP reply isr -> t6", p41("isatap", ISR_V4, T6_V4, reply=True), 10),
        Evidence("spoofed ISATAP atk -> isr", p41("isatap_spoofed", ATK_V4, ISR_V4), 5),
    ],
)
def proto41_kinds(lab: TunnelLab) -> None:
    """Protocol-41 packets from t6's raw socket, 5 echo requests each kind, answered.

    Sinks (``agent sink --p41 --answer ...``, a raw protocol-41 socket answering
    echoes to their own tunnel address) on pop, h4 and isr. From t6 (192.0.2.30):
    6in4 2001:db8:4::2 -> 2001:db8:4::1 to pop (203.0.113.5); 6to4 2002:c000:21e::1 ->
    2002:c633:6414::1 to h4 (198.51.100.20); ISATAP 2001:db8:7::5efe:c000:21e and
    2001:db8:7::200:5efe:c000:21e -> 2001:db8:7::5efe:c000:228 to isr (192.0.2.40).
    From atk (192.0.2.31): ISATAP claiming 2001:db8:7::5efe:c000:21e (t6's IPv4) to isr.
    """
    lab.build(T6, ATK, ISR, R, POP, H4)
    lab.start_capture()
    sinks = [
        lab.start_agent("pop", "sink", "--p41", "--answer", TUN6_REMOTE),
        lab.start_agent("h4", "sink", "--p41", "--answer", H4_6TO4),
        lab.start_agent("isr", "sink", "--p41", "--answer", ISR_ISATAP),
    ]
    sends = [
        ("t6", POP_V4, TUN6_LOCAL, TUN6_REMOTE),
        ("t6", H4_V4, T6_6TO4, H4_6TO4),
        ("t6", ISR_V4, T6_ISATAP, ISR_ISATAP),
        ("t6", ISR_V4, T6_ISATAP_U, ISR_ISATAP),
        ("atk", ISR_V4, T6_ISATAP, ISR_ISATAP),
    ]
    for node, to, src, dst in sends:
        got = lab.run_agent(node, "p41", "--to", to, "--src", src, "--dst", dst)
        if node == "t6" and not got["answered"]:
            raise RuntimeError(f"{src} -> {dst} via {to}: no echo reply")
    for sink in sinks:
        lab.stop_sink(sink)


@scenario(
    expect=["ipv6.sweep", "ipv6.tunnel_6in4"],
    sids=[1000401, 1000321],
    evidence=[Evidence("6in4 probe to 2001:db8:5::/64", sweep_probe, SWEEP_TARGETS)],
)
def proto41_sweep(lab: TunnelLab) -> None:
    """A host sweep of 2001:db8:5::/64 inside the 6in4 tunnel from t6 to pop.

    With a sink on pop (answering only its own tunnel address), t6 sends 150 ICMPv6
    echo requests from 2001:db8:4::2 to 2001:db8:5::1 ... ::96 in protocol 41 to
    203.0.113.5, 2 ms apart; nobody answers.
    """
    lab.build(T6, R, POP)
    lab.start_capture()
    sink = lab.start_agent("pop", "sink", "--p41", "--answer", TUN6_REMOTE)
    argv = ["--to", POP_V4, "--src", TUN6_LOCAL, "--sweep", SWEEP_PREFIX]
    lab.run_agent("t6", "p41", *argv, "--count", str(SWEEP_TARGETS), "--wait", "0")
    lab.stop_sink(sink)


@scenario(
    expect=["ipv6.tunnel_ayiya"],
    sids=[1000341],
    evidence=[
        Evidence("AYIYA heartbeat t6 -> pop", ayiya_packets(T6_V4, POP_V4), 1),
        Evidence("AYIYA echo request t6 -> pop", ayiya_packets(T6_V4, POP_V4, reply=False), 5),
        Evidence("AYIYA echo reply pop -> t6", ayiya_packets(POP_V4, T6_V4, reply=True), 5),
    ],
)
def ayiya_tunnel(lab: TunnelLab) -> None:
    """AYIYA between t6 and the PoP, UDP 5072 on both ends, signed with a shared secret.

    pop: ``agent sink --ayiya --answer 2001:db8:8::1``; t6: ``agent ayiya --to
    203.0.113.5 --src 2001:db8:8::2 --dst 2001:db8:8::1 --count 5``: one heartbeat
    (opcode no-op, next header 59), then 5 echo requests forwarded in AYIYA, each
    answered by the PoP in AYIYA.
    """
    lab.build(T6, R, POP)
    lab.start_capture()
    sink = lab.start_agent("pop", "sink", "--ayiya", "--answer", AYIYA_REMOTE)
    got = lab.run_agent("t6", "ayiya", "--to", POP_V4, "--src", AYIYA_LOCAL, "--dst", AYIYA_REMOTE)
    if not got["answered"]:
        raise RuntimeError("AYIYA: no echo reply from the PoP")
    lab.stop_sink(sink)


# -- recording -----------------------------------------------------------------------


def scenario_problems(sc: Scenario) -> list[str]:
    """Why this scenario cannot run here beyond the lab's own needs; [] if it can."""
    problems = []
    missing = [tool for tool in sc.tools if shutil.which(tool) is None]
    if missing:
        problems.append(f"missing binaries: {', '.join(missing)}")
    if sc.tun:
        try:
            mode = os.stat("/dev/net/tun").st_mode
        except OSError as exc:
            problems.append(f"/dev/net/tun unavailable ({exc.strerror}); miredo needs it")
        else:
            if not stat.S_ISCHR(mode):
                problems.append("/dev/net/tun is not a character device; miredo needs it")
    if "miredo" in sc.tools and not teredo_user():
        problems.append("no 'miredo' or 'nobody' user for miredo to drop root to")
    return problems


def problems_for(names: Sequence[str]) -> list[str]:
    """Everything that keeps the named scenarios (all by default) from running here."""
    scs = [SCENARIOS[n] for n in names or SCENARIOS]
    found = lab_problems([t for sc in scs for t in sc.tools])
    for sc in scs:
        found += [f"{sc.name}: {p}" for p in scenario_problems(sc)]
    return found


@dataclass
class Recording:
    """The outcome of recording one scenario."""

    scenario: Scenario
    pcap: Path
    seconds: float
    packets: list[Packet] = field(default_factory=list, repr=False)
    tool_runs: list[ToolRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    capture_stats: str = ""
    error: str | None = None

    def missing_evidence(self) -> list[str]:
        """Evidence checks that failed, as one line each; [] when the traffic crossed."""
        out = []
        for ev in self.scenario.evidence:
            got = ev.count(self.packets)
            if got < ev.minimum:
                out.append(f"{ev.what}: {got} packets, want >= {ev.minimum}")
        return out

    def counts(self) -> dict[str, int]:
        """Packets per evidence line, for the report."""
        return {ev.what: ev.count(self.packets) for ev in self.scenario.evidence}


def record(sc: Scenario, outdir: Path) -> Recording:
    """Record one scenario to ``outdir/<name>.pcap``; errors are kept, not raised."""
    pcap = outdir / f"{sc.name}.pcap"
    pcap.unlink(missing_ok=True)
    start = time.monotonic()
    rec = Recording(sc, pcap, 0.0)
    # Named like tests.netlab's work dirs, so its stale-run cleanup finds ours too.
    with tempfile.TemporaryDirectory(prefix=f"{NS_PREFIX}{os.getpid()}-{sc.name}-") as tmp:
        try:
            lab = TunnelLab(Path(tmp), pcap)
            with lab:  # not `as lab`: Lab.__enter__ is typed to return a plain Lab
                try:
                    sc.run(lab)
                    lab.stop_capture()
                finally:
                    rec.tool_runs = list(lab.tool_runs)
                    rec.notes = list(lab.notes)
                    stats = lab.capture_stats.items()  # capture point -> tcpdump's counts
                    rec.capture_stats = "; ".join(f"{point}: {n}" for point, n in stats)
        except Exception as exc:  # one broken scenario must not stop the others
            rec.error = f"{type(exc).__name__}: {exc}"
    rec.seconds = time.monotonic() - start
    if pcap.exists():
        rec.packets = list(read_packets(pcap))
    return rec


def record_all(outdir: Path, names: Sequence[str] = ()) -> list[Recording]:
    """Record the named scenarios (all by default) one after another into ``outdir``."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise KeyError(f"unknown scenarios: {', '.join(unknown)}")
    outdir.mkdir(parents=True, exist_ok=True)
    remove_stale_namespaces()
    return [record(SCENARIOS[n], outdir) for n in (names or list(SCENARIOS))]


def leftover_namespaces() -> list[str]:
    """This process's lab namespaces that still exist (there should be none)."""
    ours = f"{NS_PREFIX}{os.getpid()}-"
    return [ns for ns in list_namespaces() if ns.startswith(ours)]


_SUMMARY: Final = "Record real IPv6-in-IPv4 tunnel traffic in a network-namespace lab."


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.netlab_tunnels", description=_SUMMARY)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record scenarios to OUTDIR/<scenario>.pcap")
    rec.add_argument("outdir", type=Path)
    rec.add_argument("scenarios", nargs="*", metavar="scenario")
    rec.add_argument("-v", "--verbose", action="store_true", help="also print runs and counts")
    sub.add_parser("list", help="list the scenarios and their expected categories and sids")
    args = parser.parse_args(argv)
    if args.command == "list":
        for sc in SCENARIOS.values():
            sids = ", ".join(str(s) for s in sorted(sc.sids))
            print(f"{sc.name}: {', '.join(sorted(sc.expect))} [{sids}]")
        return 0
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    problems = problems_for(args.scenarios)
    if problems:
        print(f"netlab_tunnels: cannot run: {'; '.join(problems)}", file=sys.stderr)
        return 2
    # SIGTERM would skip the finally blocks and leave namespaces behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.monotonic()
    failed = 0
    for name in args.scenarios or list(SCENARIOS):
        r = record_all(args.outdir, [name])[0]
        status = r.error or "; ".join(r.missing_evidence()) or "ok"
        failed += status != "ok"
        print(f"{name}\t{len(r.packets)} IPv4 packets\t{r.seconds:.1f} s\t{status}", flush=True)
        if args.verbose:
            print(f"    tcpdump: {r.capture_stats}")
            for run in r.tool_runs:
                print(f"    [{run.node}] {run.command}  (exit {run.returncode})")
            for note in r.notes:
                print(f"    {note}")
            for what, n in r.counts().items():
                print(f"    {n:5d}  {what}", flush=True)
    print(f"total\t{time.monotonic() - start:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
