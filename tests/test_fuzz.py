"""Fuzzing the decoder and the detections with hypothesis: random, truncated and mutated frames.

Owns the robustness contract of ``detectors.decoder`` (the native decoder,
through its Python API): whatever bytes arrive, ``Decoder.decode`` returns a
list of events and never raises, and its work per frame is bounded
(hypothesis' per-example deadline catches a hang or a pathological loop). The
Rust side has its own fuzz loop (``native/tests/decode_fuzz.rs``). Seeds are
real frames from ``pcaps/`` and the external captures, so mutations land deep
inside the layers that matter. Sequences of mutated ND frames also go through
the whole engine: no detection raises and every table stays within its cap.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.capture import open_capture
from detectors.decoder import Decoder
from detectors.engine import Engine
from detectors.events import Event
from detectors.policy import empty_policy

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT.parent / "shared" / "pcaps-external"
LINKTYPES = [1, 101, 113, 276, 228, 229, 0, 108, 12]
SETTINGS = settings(
    max_examples=400,
    deadline=500,  # ms per example: a bound against hangs, not a speed benchmark
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # same examples every run: CI stays deterministic
)


@cache
def seed_frames() -> list[tuple[int, bytes]]:
    """(linktype, frame) pairs from every capture available."""
    frames: list[tuple[int, bytes]] = []
    paths = sorted(ROOT.glob("pcaps/*.pcap*"))
    if EXTERNAL.is_dir():
        paths += sorted(EXTERNAL.rglob("*.pcap"))
    for path in paths:
        with open_capture(str(path)) as reader:
            for _ts, _iface, linktype, data, _wire in reader.records():
                frames.append((linktype, data))
    assert frames, "no seed captures found in pcaps/"
    return frames


def _decode_all(decoder: Decoder, linktype: int, data: bytes, wire_len: int) -> list[Event]:
    events = decoder.decode(1_700_000_000_000_000_000, 1, 0, linktype, data, wire_len)
    assert isinstance(events, list)
    assert decoder.stats.malformed_reasons.get("decoder.decoder_error", 0) == 0, (
        f"decoder raised internally on linktype {linktype} frame {data.hex()}: "
        f"{[e for e in events]}"
    )
    return events


def _every_kind() -> Decoder:
    """A decoder that builds every event kind."""
    return Decoder(
        want_packets=True,
        want_tunnels=True,
        want_mld=True,
        want_dhcpv6=True,
        want_ext_options=True,
        want_icmp_errors=True,
        want_dns=True,
    )


@SETTINGS
@given(linktype=st.sampled_from(LINKTYPES), data=st.binary(max_size=2048))
def test_random_bytes_never_raise(linktype: int, data: bytes) -> None:
    _decode_all(_every_kind(), linktype, data, len(data))


@SETTINGS
@given(index=st.integers(min_value=0), cut=st.integers(min_value=0, max_value=2000))
def test_truncated_real_frames_never_raise(index: int, cut: int) -> None:
    frames = seed_frames()
    linktype, frame = frames[index % len(frames)]
    data = frame[: cut % (len(frame) + 1)]
    decoder = _every_kind()
    # Both as a snaplen cut (wire length kept) and as a lying sender.
    _decode_all(decoder, linktype, data, len(frame))
    _decode_all(decoder, linktype, data, len(data))


@SETTINGS
@given(
    index=st.integers(min_value=0),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=8,
    ),
)
def test_mutated_real_frames_never_raise(index: int, flips: list[tuple[int, int]]) -> None:
    frames = seed_frames()
    linktype, frame = frames[index % len(frames)]
    if not frame:
        return
    buf = bytearray(frame)
    for pos, value in flips:
        buf[pos % len(buf)] = value
    _decode_all(_every_kind(), linktype, bytes(buf), len(buf))


@SETTINGS
@given(
    ident=st.integers(min_value=0, max_value=3),
    pieces=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=8191),  # offset in 8-octet units
            st.booleans(),
            st.binary(min_size=0, max_size=64),
        ),
        max_size=40,
    ),
)
def test_fragment_storms_stay_bounded(ident: int, pieces: list[tuple[int, bool, bytes]]) -> None:
    """Arbitrary fragment sequences: no exception, table within its cap."""
    from detectors.decoder import DecoderLimits, ReassemblyLimits

    limits = DecoderLimits(reassembly=ReassemblyLimits(max_datagrams=2, max_bytes=4096))
    decoder = Decoder(limits, want_packets=True)
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    for i, (offset, more, payload) in enumerate(pieces):
        frag = bytes([58, 0]) + ((offset << 3) | int(more)).to_bytes(2, "big")
        frag += (ident + i % 3).to_bytes(4, "big")
        body = frag + payload
        header = bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big") + bytes([44, 64])
        packet = header + src + dst + body
        events = decoder.decode(i * 1_000_000, i + 1, 0, 101, packet, len(packet))
        assert isinstance(events, list)
        assert len(decoder.reassembler) <= 2
    assert decoder.stats.malformed_reasons.get("decoder.decoder_error", 0) == 0


# -- the detections under random ND sequences ------------------------------------------


@cache
def nd_frames() -> list[bytes]:
    """Ethernet frames whose ICMPv6 type is ND (133-137), from the seed captures."""
    out = []
    for lt, f in seed_frames():
        if (
            lt == 1
            and len(f) > 58
            and f[12:14] == b"\x86\xdd"
            and f[20] == 58
            and 133 <= f[54] <= 137
        ):
            out.append(f)
    return out


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10_000),  # which seed ND frame
            st.integers(0, 5_000),  # milliseconds after the previous frame
            st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=4),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_detections_never_raise_on_mutated_nd_sequences(
    steps: list[tuple[int, int, list[tuple[int, int]]]],
) -> None:
    seeds = nd_frames()
    engine = Engine(empty_policy(), lambda a: None)
    ts = 1_700_000_000_000_000_000
    records = []
    for index, gap_ms, flips in steps:
        frame = bytearray(seeds[index % len(seeds)])
        for pos, value in flips:
            if 14 + pos < len(frame):  # keep Ethernet intact: mutate from the IPv6 header on
                frame[14 + pos] = value
        ts += gap_ms * 1_000_000
        records.append((ts, 0, 1, bytes(frame), len(frame)))
    engine.run(records)
    engine.finish()
    tables = engine.table_stats()
    assert all(t["size"] <= t["cap"] for t in tables.values()), tables
