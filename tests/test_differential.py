"""Differential test: our decoder against Wireshark's dissectors (tshark).

Owns the frame-by-frame comparison, for every capture in ``pcaps/`` (``*.pcap``,
``*.pcapng``, ``*.gz``, whatever is there at run time) and in
``../shared/pcaps-external/zeek/``, of what both decoders say about each frame:

* the source and destination of every IPv6 layer, outer and tunnelled, outermost first;
* the extension-header chain of each IPv6 layer (next-header numbers in order);
* the tunnels, outermost first (``6in4``, ``teredo``, ``ayiya``, ``6in6``, ``4in6``);
* for ND messages (ICMPv6 133-137): the type and the options in order, with the
  values of prefix information (prefix/length), MTU, RDNSS (servers) and
  source/target link-layer address options.

Every difference across all captures is collected and reported in one failure.
A difference is either a decoder bug or one of the documented exceptions in
``KNOWN_DIFFERENCES``; each is applied by a named rule in ``excuse`` and only to
the frames it describes, never by skipping a capture.

Alignment, so that no exception is needed for it:

* tshark runs with the ``teredo_udp`` heuristic enabled, so Teredo on ports other
  than 3544 is dissected, as our decoder does.
* Fragments: tshark reassembles IPv6 (its default, kept explicit) and, like our
  decoder, shows the datagram at the frame that completes it, so those frames are
  compared in full. The other fragments are held by our decoder (no packet event);
  tshark's view of them is dropped by the ``held_fragment`` rule.
* ND options our decoder rejects as malformed are compared by type only (there are
  no values on our side); options both sides parse are compared by value.

Not owned here: what the decoder *reports* (Malformed reasons, fragment anomalies,
Teredo details, RA flags) is tested in ``test_decoder.py``; detections and alerts
in ``test_pcaps.py`` and ``test_external.py``.

tshark is run directly (``-T json``, the output pyshark's ``use_json`` parses)
rather than through ``pyshark.FileCapture``: pyshark reports tshark's exit status 2
on a capture cut short (``truncated.pcap``, on purpose) as a crash, then leaks the
process into ``__del__`` (an unraisable-exception warning on a running event loop),
and its JSON layers merge repeated layers by name, losing their order (IPv6 in IPv4
in IPv6). Parsing the same JSON with ``object_pairs_hook`` keeps every repeated key
in order.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
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
    TunnelPacket,
    ip_str,
    mac_str,
)

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "pcaps-external"
ZEEK = EXTERNAL / "zeek"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".gz")

TSHARK = shutil.which("tshark")
TSHARK_OPTIONS = (
    "-n",  # no name resolution: addresses as written
    "--enable-heuristic",
    "teredo_udp",  # Teredo on any UDP port, as our decoder
    "-o",
    "ipv6.defragment:TRUE",  # the default, relied on by the fragment alignment
)

KNOWN_DIFFERENCES: dict[str, str] = {
    "held_fragment": "a fragment that does not complete its datagram: tshark shows it, our "
    "decoder holds it and emits the datagram at the frame that completes it (as tshark does)",
}

# tshark's name for each IPv6 extension header, as a key in the JSON of the IPv6
# layer (they are nested in it, in wire order), and the header's number.
_EXT_KEYS = {
    "ipv6.hopopts": 0,
    "ipv6.routing": 43,
    "ipv6.fraghdr": 44,
    "ah": 51,
    "ipv6.dstopts": 60,
    "mipv6": 135,
    "hip": 139,
    "shim6": 140,
}
# The option values compared, by option type (see ``_our_option``/``_their_option``).
_LLA, _PREFIX, _MTU, _RDNSS = (1, 2), 3, 5, 25

Option = tuple[int, str]  # (type, value as text; "" when only the type is compared)
NDView = tuple[int, tuple[Option, ...]]  # (ICMPv6 type, options in order)


@dataclass(frozen=True)
class Layer:
    """One IPv6 packet in a frame, as one side saw it."""

    src: str
    dst: str
    chain: tuple[int, ...]
    nd: NDView | None = None
    held: bool = False  # tshark: a fragment that does not complete its datagram


@dataclass
class FrameView:
    """What one side saw in one frame, in comparable form."""

    layers: list[Layer] = field(default_factory=list)  # outermost first
    tunnels: list[str] = field(default_factory=list)  # outermost first
    malformed: set[str] = field(default_factory=set)  # ours: Malformed "layer.reason"
    truncated: bool = False  # the frame was cut by the capture's snaplen


# --- captures -----------------------------------------------------------------


def captures() -> list[Path]:
    """Every capture present now: ``pcaps/`` and, if there, the external Zeek traces."""
    found = [p for p in sorted(PCAPS.iterdir()) if p.is_file() and p.suffix in CAPTURE_SUFFIXES]
    if ZEEK.is_dir():
        found += [p for p in sorted(ZEEK.iterdir()) if p.suffix in CAPTURE_SUFFIXES]
    return found


def gunzip(path: Path, tmp: Path) -> Path:
    """A plain copy of a gzip capture for tshark; a cut-short stream keeps what it had."""
    out = tmp / path.name.removesuffix(".gz")
    with gzip.open(path, "rb") as src, out.open("wb") as dst:
        try:
            shutil.copyfileobj(src, dst)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            pass  # tshark then reports the capture cut short, as our reader does
    return out


# --- our side ---------------------------------------------------------------


def _our_option(opt: NDOption) -> Option:
    if isinstance(opt, LinkLayerAddressOption):
        return opt.type, mac_str(opt.address) or ""
    if isinstance(opt, PrefixInformationOption):
        return opt.type, f"{ip_str(opt.prefix)}/{opt.prefix_len}"
    if isinstance(opt, MTUOption):
        return opt.type, str(opt.mtu)
    if isinstance(opt, RDNSSOption):
        return opt.type, " ".join(ip_str(s) for s in opt.servers)
    return opt.type, ""


def _our_nd(event: NDMessage) -> NDView:
    # Rejected options carry no values: their place in the order is their offset.
    found = [(o.offset, _our_option(o)) for o in event.options]
    found += [(e.offset, (e.type, "")) for e in event.option_errors]
    return event.icmp_type, tuple(opt for _, opt in sorted(found))


def ours(path: Path) -> dict[int, FrameView]:
    decoder = Decoder(want_packets=True, want_tunnels=True)
    frames: dict[int, FrameView] = {}
    with open_capture(str(path)) as reader:
        for number, (ts, iface, linktype, data, wire_len) in enumerate(reader.records(), 1):
            view = frames[number] = FrameView(truncated=len(data) < wire_len)
            packets: list[Ipv6Packet] = []
            nd: dict[int, NDView] = {}  # by depth: the number of tunnels around it
            for event in decoder.decode(ts, number, iface, linktype, data, wire_len):
                if isinstance(event, Ipv6Packet):
                    packets.append(event)
                elif isinstance(event, NDMessage):
                    nd[len(event.ip.tunnels)] = _our_nd(event)
                elif isinstance(event, TunnelPacket):
                    view.tunnels.append(event.layer.kind)
                elif isinstance(event, Malformed):
                    view.malformed.add(f"{event.layer}.{event.reason}")
            # Packets are emitted innermost first (after their payload was walked).
            for packet in sorted(packets, key=lambda p: len(p.ip.tunnels)):
                ip = packet.ip
                depth = len(ip.tunnels)
                view.layers.append(Layer(ip_str(ip.src), ip_str(ip.dst), ip.chain, nd.get(depth)))
    return frames


# --- tshark's side ---------------------------------------------------------------


class Obj(list[tuple[str, Any]]):
    """A JSON object as its ordered (key, value) pairs: tshark repeats keys."""

    def all(self, key: str) -> list[Any]:
        """Every value under ``key``, in order (a JSON array counts as its items)."""
        out: list[Any] = []
        for k, v in self:
            if k == key:
                out.extend(v if type(v) is list else [v])
        return out

    def get(self, key: str, default: Any = None) -> Any:
        values = self.all(key)
        return values[0] if values else default


def tshark_json(path: Path) -> list[Obj]:
    """tshark's dissection of ``path`` as JSON packets; tolerates a capture cut short."""
    assert TSHARK is not None
    cmd = [TSHARK, *TSHARK_OPTIONS, "-r", str(path), "-T", "json"]
    run = subprocess.run(cmd, capture_output=True, check=False, timeout=300)
    stderr = run.stderr.decode(errors="replace")
    # tshark exits 2 after dissecting every complete record of a capture cut short.
    if run.returncode != 0 and not (run.returncode == 2 and "cut short" in stderr):
        raise AssertionError(f"{' '.join(cmd)} exited {run.returncode}: {stderr.strip()}")
    packets: list[Obj] = json.loads(run.stdout or b"[]", object_pairs_hook=Obj)
    return packets


def _int(text: Any) -> int:
    return int(str(text), 0)


def _chain(ipv6: Obj) -> tuple[tuple[int, ...], bool]:
    """The extension chain of one IPv6 layer, and whether it is a held fragment."""
    chain: list[int] = []
    held = False
    for key, value in ipv6:
        number = _EXT_KEYS.get(key)
        if number is None:
            continue
        chain.append(number)
        if number == 44 and isinstance(value, Obj):
            more = value.get("ipv6.fraghdr.more") == "1"
            offset = _int(value.get("ipv6.fraghdr.offset", "0"))
            if (more or offset) and "ipv6.fragments" not in (k for k, _ in ipv6):
                held = True
    return tuple(chain), held


def _their_option(opt: Obj) -> Option:
    otype = _int(opt.get("icmpv6.opt.type"))
    if otype in _LLA:
        return otype, str(opt.get("icmpv6.opt.linkaddr", ""))
    if otype == _PREFIX:
        return otype, f"{opt.get('icmpv6.opt.prefix')}/{opt.get('icmpv6.opt.prefix.length')}"
    if otype == _MTU:
        return otype, str(opt.get("icmpv6.opt.mtu", ""))
    if otype == _RDNSS:
        return otype, " ".join(str(s) for s in opt.all("icmpv6.opt.rdnss"))
    return otype, ""


def _their_nd(icmpv6: Obj) -> NDView | None:
    itype = _int(icmpv6.get("icmpv6.type", "0"))
    if not 133 <= itype <= 137:
        return None
    options = tuple(
        _their_option(o)
        for o in icmpv6.all("icmpv6.opt")
        if isinstance(o, Obj) and o.get("icmpv6.opt.type") is not None
    )
    return itype, options


def theirs(path: Path) -> dict[int, FrameView]:
    frames: dict[int, FrameView] = {}
    for packet in tshark_json(path):
        layers: Obj = packet.get("_source").get("layers")
        frame: Obj = layers.get("frame")
        view = frames[_int(frame.get("frame.number"))] = FrameView(
            truncated=_int(frame.get("frame.cap_len")) < _int(frame.get("frame.len"))
        )
        outer = ""  # the last network layer seen: "ip" or "ipv6"
        carrier = ""  # "teredo"/"ayiya" when the next network layer is inside one
        for name, value in layers:
            if not isinstance(value, Obj) and name not in ("teredo", "ayiya"):
                continue
            if name in ("teredo", "ayiya"):
                carrier = name
                if name == "ayiya":  # AYIYA is a tunnel even with no payload (heartbeats)
                    view.tunnels.append(name)
                continue
            if name in ("ip", "ipv6"):
                if carrier == "teredo":
                    view.tunnels.append("teredo")
                elif carrier == "ayiya":
                    pass  # counted at the AYIYA layer
                elif outer == "ip" and name == "ipv6":
                    view.tunnels.append("6in4")
                elif outer == "ipv6":
                    view.tunnels.append("6in6" if name == "ipv6" else "4in6")
                outer, carrier = name, ""
            if name == "ipv6":
                chain, held = _chain(value)
                src, dst = str(value.get("ipv6.src")), str(value.get("ipv6.dst"))
                view.layers.append(Layer(src, dst, chain, held=held))
            elif name == "icmpv6" and view.layers and outer == "ipv6":
                nd = _their_nd(value)
                if nd is not None:
                    view.layers[-1] = replace(view.layers[-1], nd=nd)
    return frames


# --- comparison ---------------------------------------------------------------


Rule = Callable[[FrameView, FrameView], tuple[FrameView, FrameView] | None]


def _held_fragment(mine: FrameView, wireshark: FrameView) -> tuple[FrameView, FrameView] | None:
    if not any(layer.held for layer in wireshark.layers):
        return None
    return mine, replace(wireshark, layers=[x for x in wireshark.layers if not x.held])


# Each rule names a KNOWN_DIFFERENCES entry and rewrites the views of a frame it
# applies to, or returns None when it does not apply.
RULES: dict[str, Rule] = {
    "held_fragment": _held_fragment,
}


def excuse(mine: FrameView, wireshark: FrameView, used: Counter[str]) -> tuple[FrameView, FrameView]:
    for name, rule in RULES.items():
        applied = rule(mine, wireshark)
        if applied is not None:
            mine, wireshark = applied
            used[name] += 1
    return mine, wireshark


def differences(a: FrameView, b: FrameView) -> Iterator[str]:
    """How our view ``a`` and tshark's ``b`` of one frame differ, one line each."""
    addresses_a = [(x.src, x.dst) for x in a.layers]
    addresses_b = [(x.src, x.dst) for x in b.layers]
    if addresses_a != addresses_b:
        yield f"IPv6 addresses: ours {addresses_a} tshark {addresses_b}"
        return  # the rest is per layer and meaningless when the layers differ
    if a.tunnels != b.tunnels:
        yield f"tunnels: ours {a.tunnels} tshark {b.tunnels}"
    for depth, (x, y) in enumerate(zip(a.layers, b.layers, strict=True)):
        where = f"layer {depth} ({x.src} -> {x.dst})"
        if x.chain != y.chain:
            yield f"{where} extension headers: ours {list(x.chain)} tshark {list(y.chain)}"
        if x.nd != y.nd:
            yield f"{where} ND: ours {x.nd} tshark {y.nd}"


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    used: Counter[str] = field(default_factory=Counter)
    frames: int = 0
    ipv6_layers: int = 0
    nd_messages: int = 0


def compare(path: Path, tshark_path: Path, outcome: Outcome) -> None:
    mine, wireshark = ours(path), theirs(tshark_path)
    for number in sorted(set(mine) | set(wireshark)):
        if number not in mine or number not in wireshark:
            side = "our decoder" if number not in mine else "tshark"
            outcome.problems.append(f"{path.name} frame {number}: not read by {side}")
            continue
        a, b = excuse(mine[number], wireshark[number], outcome.used)
        outcome.frames += 1
        outcome.ipv6_layers += len(a.layers)
        outcome.nd_messages += sum(1 for x in a.layers if x.nd)
        for line in differences(a, b):
            outcome.problems.append(f"{path.name} frame {number}: {line}")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt install tshark)")
def test_decoder_agrees_with_wireshark(tmp_path: Path) -> None:
    if not ZEEK.is_dir():
        print(f"external captures not found at {ZEEK}: comparing pcaps/ only")
    paths = captures()
    assert paths, f"no captures in {PCAPS}"
    outcome = Outcome()
    for path in paths:
        tshark_path = gunzip(path, tmp_path) if path.suffix == ".gz" else path
        compare(path, tshark_path, outcome)
    print(
        f"{len(paths)} captures, {outcome.frames} frames, {outcome.ipv6_layers} IPv6 layers, "
        f"{outcome.nd_messages} ND messages compared; exceptions applied: {dict(outcome.used)}"
    )
    assert outcome.ipv6_layers > 100, "too few IPv6 layers compared: the test is vacuous"
    assert not outcome.problems, f"{len(outcome.problems)} differences:\n" + "\n".join(
        outcome.problems
    )
