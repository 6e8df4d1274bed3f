"""Differential test: our decoder against Wireshark's dissectors, through pyshark.

Owns the frame-by-frame comparison, for every regression capture in
``pcaps/`` and every external capture in ``../shared/pcaps-external/``, of:
the IPv6 source and destination of every IPv6 layer (outer and tunnelled),
the extension-header chain of each, the tunnel types, and for ND messages the
ICMPv6 type, the option types in order, and the values of the link-layer
address, prefix (PIO, RIO), MTU and RDNSS options. Every difference across all
captures is collected and reported in one failure.

A difference is a bug or one of the documented exceptions in
``KNOWN_DIFFERENCES``, each applied by an explicit rule below, never by
skipping a capture. tshark runs with the ``teredo_udp`` heuristic enabled so
Teredo on ports other than 3544 is dissected, as our decoder does.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from detectors.capture import open_capture
from detectors.decoder import Decoder
from detectors.events import (
    Ipv6Packet,
    LinkLayerAddressOption,
    Malformed,
    MTUOption,
    NDMessage,
    NDOption,
    PrefixInformationOption,
    RDNSSOption,
    RouteInformationOption,
    TunnelPacket,
    ip_str,
)

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT.parent / "shared" / "pcaps-external"

KNOWN_DIFFERENCES = {
    "held_fragment": "a fragment that does not complete its datagram: tshark shows the "
    "fragment, our decoder holds it and emits the datagram when it completes",
    "refused": "our decoder refuses the packet and reports it malformed (header chain over "
    "the limit, overlapping fragments per RFC 5722); tshark dissects it anyway",
    "teredo_bubble_trailing": "a Teredo bubble followed by trailing bytes (Zeek's "
    "bubble-with-payload trace): tshark's heuristic rejects it, our decoder accepts the "
    "bubble as Zeek does",
    "snapped": "the ND body was cut by the capture's snaplen: tshark shows the type, our "
    "decoder counts the frame as snapped and emits no half-parsed message",
    "teredo_over_ipv6": "UDP inside IPv6 that tshark's heuristic calls Teredo (Zeek's "
    "teredo-udp-in-udp trace): Teredo runs over IPv4 only (RFC 4380), so our decoder does "
    "not look for it inside IPv6",
    "repeated_ipv6_layer": "IPv6-in-IPv6: tshark's JSON repeats the key 'ipv6' and pyshark "
    "keeps only one of them, so only the outer layer can be compared",
}

# IPv6 extension header number -> (pyshark JSON key, its next-header field)
_EXT_FIELDS = {
    0: ("ipv6.hopopts", "ipv6.hopopts.nxt"),
    60: ("ipv6.dstopts", "ipv6.dstopts.nxt"),
    43: ("ipv6.routing", "ipv6.routing.nxt"),
    44: ("ipv6.fraghdr", "ipv6.fraghdr.nxt"),
    51: ("ah", "ah.next_header"),
    135: ("mipv6", "mip6.proto"),
}


@dataclass
class FrameView:
    """What one side saw in one frame, in comparable form."""

    addresses: list[tuple[str, str]] = field(default_factory=list)
    chains: list[tuple[int, ...]] = field(default_factory=list)
    tunnels: set[str] = field(default_factory=set)
    # ND type and (option type, comparable value) in order; value None = not compared
    nd: list[tuple[int, tuple[tuple[int, Any], ...]]] = field(default_factory=list)
    malformed: bool = False
    snapped: bool = False
    fragment: bool = False  # tshark: the layer is a (non-atomic) fragment


def _v6(text: str) -> str:
    return str(ipaddress.IPv6Address(text))


def _our_value(opt: NDOption) -> Any:
    """The option's value in the form tshark prints, for the options compared by value."""
    if isinstance(opt, LinkLayerAddressOption):
        return opt.address.hex(":")
    if isinstance(opt, PrefixInformationOption | RouteInformationOption):
        return f"{ip_str(opt.prefix)}/{opt.prefix_len}"
    if isinstance(opt, MTUOption):
        return str(opt.mtu)
    if isinstance(opt, RDNSSOption):
        return tuple(ip_str(s) for s in opt.servers)
    return None


def _their_value(o: dict[str, Any]) -> Any:
    otype = int(o["icmpv6.opt.type"])
    if otype in (1, 2):
        return o.get("icmpv6.opt.linkaddr")
    if otype in (3, 24) and "icmpv6.opt.prefix.length" in o:
        return f"{_v6(o.get('icmpv6.opt.prefix', '::'))}/{o['icmpv6.opt.prefix.length']}"
    if otype == 5:
        return o.get("icmpv6.opt.mtu")
    if otype == 25:
        servers = o.get("icmpv6.opt.rdnss", [])
        return tuple(_v6(x) for x in ([servers] if isinstance(servers, str) else servers))
    return None


def _nd_agree(
    a: list[tuple[int, tuple[tuple[int, Any], ...]]],
    b: list[tuple[int, tuple[tuple[int, Any], ...]]],
) -> bool:
    """Same ND types and option types in order; values equal wherever ours has one."""
    if [(t, [o for o, _ in opts]) for t, opts in a] != [(t, [o for o, _ in opts]) for t, opts in b]:
        return False
    return all(
        va is None or va == vb
        for (_, oa), (_, ob) in zip(a, b, strict=True)
        for (_, va), (_, vb) in zip(oa, ob, strict=True)
    )


def captures() -> list[Path]:
    paths = sorted(p for p in (ROOT / "pcaps").iterdir() if ".pcap" in p.name)
    if EXTERNAL.is_dir():
        paths += sorted(EXTERNAL.rglob("*.pcap"))
    return paths


def ours(path: Path) -> dict[int, FrameView]:
    decoder = Decoder(want_packets=True, want_tunnels=True)
    out: dict[int, FrameView] = {}
    with open_capture(str(path)) as reader:
        for frame, (ts, iface, linktype, data, wire) in enumerate(reader.records(), 1):
            view = out.setdefault(frame, FrameView())
            snapped = decoder.stats.snapped
            for event in decoder.decode(ts, frame, iface, linktype, data, wire):
                if isinstance(event, Ipv6Packet):
                    ip = event.ip
                    view.addresses.append((ip_str(ip.src), ip_str(ip.dst)))
                    view.chains.append(ip.chain)
                    view.tunnels.update(t.kind for t in ip.tunnels)
                elif isinstance(event, NDMessage):
                    # tshark lists malformed options too: merge both by offset.
                    found = [(o.offset, o.type, _our_value(o)) for o in event.options]
                    found += [(e.offset, e.type, None) for e in event.option_errors]
                    view.nd.append((event.icmp_type, tuple((t, v) for _, t, v in sorted(found))))
                elif isinstance(event, TunnelPacket):
                    view.tunnels.add(event.layer.kind)
                elif isinstance(event, Malformed):
                    view.malformed = True
            view.snapped = decoder.stats.snapped > snapped
    return out


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return [value] if isinstance(value, dict) else []


def _chain(fields: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
    """The extension chain of one pyshark IPv6 layer, and whether it is a real fragment."""
    chain: list[int] = []
    used: dict[int, int] = {}
    nh = int(fields.get("ipv6.nxt", "59"))
    fragment = False
    while nh in _EXT_FIELDS and len(chain) < 64:
        key, nxt = _EXT_FIELDS[nh]
        items = _items(fields.get(key))
        index = used.get(nh, 0)
        chain.append(nh)
        if index >= len(items):
            break
        used[nh] = index + 1
        header = items[index]
        if nh == 44 and (
            header.get("ipv6.fraghdr.more") == "1" or header.get("ipv6.fraghdr.offset") != "0"
        ):
            fragment = True
        if nh == 135:
            break  # Mobility ends the chain in both dissectors
        nh = int(header.get(nxt, "59"))
    return tuple(chain), fragment


def theirs(path: Path) -> dict[int, FrameView]:
    import pyshark

    out: dict[int, FrameView] = {}
    cap = pyshark.FileCapture(
        str(path),
        use_json=True,
        include_raw=False,
        custom_parameters=["--enable-heuristic", "teredo_udp"],
    )
    try:
        for pkt in _packets(cap):
            view = out.setdefault(int(pkt.number), FrameView())
            names = [layer.layer_name for layer in pkt.layers]
            previous = ""
            for layer in pkt.layers:
                name = layer.layer_name
                fields: dict[str, Any] = layer._all_fields
                if name == "ipv6":
                    view.addresses.append((fields["ipv6.src"], fields["ipv6.dst"]))
                    chain, fragment = _chain(fields)
                    view.chains.append(chain)
                    view.fragment |= fragment
                    if previous == "ip":
                        view.tunnels.add("6in4")
                    elif previous == "ipv6":
                        view.tunnels.add("6in6")
                elif name == "ip" and previous == "ipv6":
                    view.tunnels.add("4in6")
                elif name == "icmpv6":
                    itype = int(fields.get("icmpv6.type", "0"))
                    if 133 <= itype <= 137:
                        opts = tuple(
                            (int(o["icmpv6.opt.type"]), _their_value(o))
                            for o in _items(fields.get("icmpv6.opt"))
                            if "icmpv6.opt.type" in o
                        )
                        view.nd.append((itype, opts))
                if name in ("ipv6", "ip"):
                    previous = name
            if "teredo" in names:
                view.tunnels.discard("6in4")
                view.tunnels.add("teredo")
            if "ayiya" in names:
                view.tunnels.discard("6in4")
                view.tunnels.add("ayiya")
    finally:
        _close(cap)
    return out


def _cut_short(exc: Exception) -> bool:
    """tshark exits 2 on a capture cut mid-record, after dissecting what it could."""
    return "cut short" in str(exc)


def _packets(cap: Any) -> Iterator[Any]:
    try:
        yield from cap
    except Exception as exc:
        if not _cut_short(exc):
            raise


def _close(cap: Any) -> None:
    # Called after every packet was read. pyshark's cleanup can still report a
    # non-zero exit when tshark exits while its pipe is being torn down (seen
    # with one-packet captures); no frame is lost then, and a frame missing
    # from tshark's side would show up as a difference anyway.
    try:
        cap.close()
    except Exception as exc:
        if type(exc).__name__ != "TSharkCrashException":
            raise


@pytest.fixture(scope="module", autouse=True)
def _close_pyshark_loop() -> Iterator[None]:
    """Close the asyncio loop pyshark leaves behind once this module is done.

    Its SIGCHLD handler and wakeup fd stay installed otherwise, and every child
    process of a later test (labs, Suricata) writes to that full pipe, which
    pytest reports as BlockingIOError warnings.
    """
    yield
    import asyncio

    loop = asyncio.get_event_loop_policy().get_event_loop()
    if not loop.is_closed():
        loop.close()
    asyncio.set_event_loop(None)


COMPARED: list[int] = []  # frames whose IPv6 layers were compared, for the sanity check


def compare(path: Path) -> Iterator[str]:
    mine, wireshark = ours(path), theirs(path)
    for frame in sorted(set(mine) | set(wireshark)):
        a, b = mine.get(frame, FrameView()), wireshark.get(frame, FrameView())
        where = f"{path.name} frame {frame}"
        if not a.addresses and b.addresses:
            if b.fragment:
                continue  # held_fragment
            if a.malformed:
                continue  # refused
        if a.tunnels == {"teredo"} and not b.tunnels and not b.addresses:
            continue  # teredo_bubble_trailing
        if b.tunnels == {"teredo"} and not a.tunnels and a.addresses[:1] == b.addresses[:1]:
            continue  # teredo_over_ipv6: tshark found "Teredo" inside an IPv6 packet
        if "6in6" in a.tunnels and len(a.addresses) == len(b.addresses) + 1:
            # repeated_ipv6_layer: compare the outer layer only (ours emits it last).
            a = FrameView(a.addresses[-1:], a.chains[-1:], a.tunnels - {"6in6"}, a.nd)
        if not a.nd and b.nd and (a.malformed or a.snapped):
            b.nd = []  # refused (short ND message) or snapped
        COMPARED.append(len(a.addresses))
        if sorted(a.addresses) != sorted(b.addresses):
            yield f"{where}: IPv6 addresses ours {a.addresses} tshark {b.addresses}"
            continue
        if sorted(a.chains) != sorted(b.chains):
            yield f"{where}: header chains ours {a.chains} tshark {b.chains}"
        if a.tunnels != b.tunnels:
            yield f"{where}: tunnels ours {sorted(a.tunnels)} tshark {sorted(b.tunnels)}"
        if not _nd_agree(a.nd, b.nd):
            yield f"{where}: ND ours {a.nd} tshark {b.nd}"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_decoder_agrees_with_wireshark() -> None:
    paths = captures()
    assert paths
    problems = [line for path in paths for line in compare(path)]
    assert sum(1 for n in COMPARED if n) > 100, "too few IPv6 frames compared: test is vacuous"
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems)
