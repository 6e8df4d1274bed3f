"""Capture reader tests on captures built byte by byte with ``struct``.

Owns the contract of ``detectors.capture``: pcap (microsecond and nanosecond,
both byte orders), pcapng (sections, several interfaces with their own link
type, timestamp resolution and offset, EPB/SPB/PB, skipped blocks), gzip and
standard input, input errors (``CaptureError`` naming the file), truncated and
corrupt captures (records up to the damage plus a warning), and robustness
against arbitrary bytes. Decoding what is inside the frames is not tested here.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.capture import CaptureError, CaptureReader, Interface, Record, open_capture

ORDERS = ["<", ">"]
T0 = 1_700_000_000  # an arbitrary epoch second
FRAME_A = bytes(range(60))
FRAME_B = bytes(range(100, 140))
FRAME_C = b"\x60" + bytes(39)  # a raw IPv6 header's worth

# -- builders ----------------------------------------------------------------------


def pcap_header(
    order: str = "<", nano: bool = False, linktype: int = 1, snaplen: int = 65535
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(
    order: str, sec: int, frac: int, data: bytes, orig: int | None = None, incl: int | None = None
) -> bytes:
    incl = len(data) if incl is None else incl
    orig = len(data) if orig is None else orig
    return struct.pack(order + "IIII", sec, frac, incl, orig) + data


def pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(order: str, btype: int, body: bytes, trailer: int | None = None) -> bytes:
    body = pad4(body)
    total = 12 + len(body)
    end = total if trailer is None else trailer
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", end)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def options(order: str, *opts: bytes) -> bytes:
    return b"".join(opts) + struct.pack(order + "HH", 0, 0) if opts else b""


def shb(order: str = "<", major: int = 1, opts: bytes = b"") -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1) + opts)


def idb(
    order: str,
    linktype: int,
    snaplen: int = 0,
    name: str | None = None,
    tsresol: int | None = None,
    tsoffset: int | None = None,
) -> bytes:
    opts = []
    if name is not None:
        opts.append(option(order, 2, name.encode()))
    if tsresol is not None:
        opts.append(option(order, 9, bytes([tsresol])))
    if tsoffset is not None:
        opts.append(option(order, 14, struct.pack(order + "q", tsoffset)))
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options(order, *opts))


def epb(
    order: str, iface: int, ts: int, data: bytes, orig: int | None = None, opts: bytes = b""
) -> bytes:
    orig = len(data) if orig is None else orig
    head = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
    return block(order, 6, head + pad4(data) + opts)


def pb(order: str, iface: int, ts: int, data: bytes) -> bytes:
    head = struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return block(order, 2, head + data)


def spb(order: str, data: bytes, orig: int | None = None) -> bytes:
    orig = len(data) if orig is None else orig
    return block(order, 3, struct.pack(order + "I", orig) + data)


def read_all(reader: CaptureReader) -> list[Record]:
    with reader:
        return list(reader.records())


def read_path(path: Path) -> tuple[CaptureReader, list[Record]]:
    reader = open_capture(str(path))
    return reader, read_all(reader)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class Trickle(io.RawIOBase):
    """A pipe-like, unseekable stream handing out at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int, fail_after: int | None = None) -> None:
        self._data = data
        self._pos = 0
        self._step = step
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError(5, "Input/output error")
        chunk = self._data[self._pos : self._pos + min(self._step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


# -- pcap -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_timestamps_exact_in_ns(tmp_path: Path, order: str, nano: bool) -> None:
    fracs = [0, 999_999_999 if nano else 999_999, 123_456_789 if nano else 123_456]
    data = pcap_header(order, nano, linktype=101, snaplen=262144)
    data += b"".join(pcap_record(order, T0 + i, f, FRAME_C) for i, f in enumerate(fracs))
    reader, recs = read_path(write(tmp_path, "t.pcap", data))
    scale = 1 if nano else 1000
    assert [r[0] for r in recs] == [(T0 + i) * 10**9 + f * scale for i, f in enumerate(fracs)]
    assert all(r[1:] == (0, 101, FRAME_C, len(FRAME_C)) for r in recs)
    assert reader.format == "pcap" and not reader.compressed and not reader.truncated
    assert reader.interfaces == [Interface(101, 262144, None, 9 if nano else 6)]
    assert reader.records_read == 3 and reader.warnings == []


def test_pcap_linktype_ignores_fcs_bits_and_keeps_orig_len(tmp_path: Path) -> None:
    # Bits 28-31 say "FCS present, 4 bytes"; the link type is the low 16 bits.
    data = pcap_header("<", linktype=0x1000_0000 | 0x0400_0000 | 1)
    data += pcap_record("<", T0, 5, FRAME_A[:20], orig=1514)
    _, recs = read_path(write(tmp_path, "fcs.pcap", data))
    assert recs == [(T0 * 10**9 + 5000, 0, 1, FRAME_A[:20], 1514)]


def test_pcap_without_records_is_fine(tmp_path: Path) -> None:
    reader, recs = read_path(write(tmp_path, "empty.pcap", pcap_header(">", nano=True)))
    assert recs == [] and not reader.truncated and reader.warnings == []


def test_pcap_record_longer_than_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("detectors.capture.CHUNK", 7)
    big = bytes(range(256)) * 300
    data = pcap_header("<", snaplen=0) + pcap_record("<", T0, 1, big) + pcap_record("<", T0, 2, b"")
    reader, recs = read_path(write(tmp_path, "big.pcap", data))
    assert [(r[3], r[4]) for r in recs] == [(big, len(big)), (b"", 0)]
    assert not reader.truncated


# -- pcapng ---------------------------------------------------------------------------


def multi_iface(order: str) -> tuple[bytes, list[Record]]:
    """Three interfaces: Ethernet in µs, raw IP in ns with an offset, Ethernet in 2^-20 s."""
    data = shb(order, opts=options(order, option(order, 4, b"v6sentry tests")))
    data += idb(order, 1, 65535, name="eth0")  # default resolution: 10^-6
    data += idb(order, 101, 0, name="tun0", tsresol=9, tsoffset=100)
    data += idb(order, 1, 262144, tsresol=0x80 | 20)
    us = T0 * 10**6 + 250_001
    ns = T0 * 10**9 + 7
    bin_units = (T0 << 20) | (1 << 19)  # T0 + 0.5 s in units of 2^-20 s
    data += epb(order, 0, us, FRAME_A)
    data += epb(order, 1, ns, FRAME_C, orig=1280)
    data += epb(order, 2, bin_units, FRAME_B, opts=options(order, option(order, 2, b"\0\0\0\1")))
    data += epb(order, 0, us + 1, FRAME_B[:3])  # a length that needs padding
    expected = [
        (us * 1000, 0, 1, FRAME_A, len(FRAME_A)),
        (ns + 100 * 10**9, 1, 101, FRAME_C, 1280),
        (T0 * 10**9 + 500_000_000, 2, 1, FRAME_B, len(FRAME_B)),
        ((us + 1) * 1000, 0, 1, FRAME_B[:3], 3),
    ]
    return data, expected


@pytest.mark.parametrize("order", ORDERS)
def test_pcapng_interfaces_with_own_linktype_resolution_and_offset(
    tmp_path: Path, order: str
) -> None:
    data, expected = multi_iface(order)
    reader, recs = read_path(write(tmp_path, "multi.pcapng", data))
    assert recs == expected
    assert reader.format == "pcapng" and reader.warnings == [] and reader.records_read == 4
    assert reader.interfaces == [
        Interface(1, 65535, "eth0", 6, 0),
        Interface(101, 0, "tun0", 9, 100),
        Interface(1, 262144, None, 0x80 | 20, 0),
    ]


def test_interface_timestamp_conversion() -> None:
    assert Interface(1, 0).to_ns(1) == 1000
    assert Interface(1, 0, tsresol=0).to_ns(3) == 3 * 10**9
    assert Interface(1, 0, tsresol=12).to_ns(5_999) == 5  # finer than ns: floor
    assert Interface(1, 0, tsresol=0x80 | 1, tsoffset_s=-1).to_ns(3) == 500_000_000
    assert Interface(1, 0, tsresol=0x80 | 30).to_ns(1 << 30) == 10**9


def test_pcapng_simple_and_obsolete_packet_blocks(tmp_path: Path) -> None:
    o = "<"
    data = shb(o) + idb(o, 1, snaplen=8) + idb(o, 101)
    data += spb(o, FRAME_A[:8], orig=60)  # before any timestamp: 0
    data += pb(o, 1, T0 * 10**6, FRAME_C)
    data += spb(o, FRAME_A[:5])  # reuses the last timestamp seen
    data += spb(o, FRAME_A[:12], orig=60)  # more data than snaplen: cut to snaplen
    reader, recs = read_path(write(tmp_path, "spb.pcapng", data))
    assert recs == [
        (0, 0, 1, FRAME_A[:8], 60),
        (T0 * 10**9, 1, 101, FRAME_C, len(FRAME_C)),
        (T0 * 10**9, 0, 1, FRAME_A[:5], 5),
        (T0 * 10**9, 0, 1, FRAME_A[:8], 60),
    ]
    assert reader.warnings == []


def test_pcapng_skips_unknown_blocks(tmp_path: Path) -> None:
    o = ">"
    nrb = block(o, 4, struct.pack(o + "HH", 1, 8) + bytes([192, 0, 2, 1]) + b"host" + bytes(4))
    isb = block(o, 5, struct.pack(o + "III", 0, 1, 2))
    dsb = block(o, 0x0000000A, struct.pack(o + "II", 0x544C534B, 4) + b"keys")
    custom = block(o, 0x40000BAD, struct.pack(o + "I", 32473) + b"whatever")
    empty = block(o, 0x12345678, b"")  # the smallest legal block: 12 bytes
    data = shb(o) + nrb + idb(o, 1) + isb + dsb + epb(o, 0, 1, FRAME_A) + custom + empty
    data += epb(o, 0, 2, FRAME_B) + isb + empty
    reader, recs = read_path(write(tmp_path, "skip.pcapng", data))
    assert recs == [(1000, 0, 1, FRAME_A, 60), (2000, 0, 1, FRAME_B, 40)]
    assert reader.warnings == [] and not reader.truncated


def test_pcapng_sections_reset_interfaces_and_may_switch_byte_order(tmp_path: Path) -> None:
    first = shb("<") + idb("<", 1) + idb("<", 113) + epb("<", 1, 10, FRAME_A)
    second = shb(">") + idb(">", 101, tsresol=9) + epb(">", 0, 20, FRAME_C)
    reader, recs = read_path(write(tmp_path, "sections.pcapng", first + second + first))
    assert recs == [
        (10_000, 1, 113, FRAME_A, 60),
        (20, 2, 101, FRAME_C, 40),  # section-local interface 0 is the third one seen
        (10_000, 4, 113, FRAME_A, 60),
    ]
    assert [i.linktype for i in reader.interfaces] == [1, 113, 101, 1, 113]
    assert reader.warnings == []


def test_pcapng_interface_from_previous_section_is_undefined(tmp_path: Path) -> None:
    data = shb() + idb("<", 1) + idb("<", 1) + epb("<", 1, 1, FRAME_A)
    data += shb() + idb("<", 101) + epb("<", 0, 2, FRAME_C) + epb("<", 1, 3, FRAME_A)
    reader, recs = read_path(write(tmp_path, "undef.pcapng", data))
    assert [r[2] for r in recs] == [1, 101]
    assert reader.truncated
    [warning] = reader.warnings
    assert "undef.pcapng: corrupt capture" in warning
    assert "interface 1" in warning and "defines 1" in warning


# -- compression and stdin ------------------------------------------------------------


def sample(fmt: str) -> tuple[bytes, list[Record]]:
    if fmt == "pcapng":
        return multi_iface("<")
    data = pcap_header(">", nano=True) + pcap_record(">", T0, 9, FRAME_A)
    return data, [(T0 * 10**9 + 9, 0, 1, FRAME_A, 60)]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_gzip_of_both_formats(tmp_path: Path, fmt: str) -> None:
    data, expected = sample(fmt)
    reader, recs = read_path(write(tmp_path, f"x.{fmt}.gz", gzip.compress(data)))
    assert recs == expected
    assert reader.compressed and reader.format == fmt and reader.warnings == []


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("step", [1, 5, 4096])
def test_stdin_stream(fmt: str, compress: bool, step: int) -> None:
    data, expected = sample(fmt)
    stream = io.BufferedReader(Trickle(gzip.compress(data) if compress else data, step))
    reader = open_capture("-", stdin=stream)
    assert reader.path == "-" and reader.compressed == compress and reader.format == fmt
    assert read_all(reader) == expected
    assert not stream.closed  # standard input belongs to the caller


def test_stdin_plain_bytesio() -> None:
    data, expected = sample("pcap")
    assert read_all(open_capture("-", stdin=io.BytesIO(data))) == expected


def test_stdin_errors_name_stdin() -> None:
    with pytest.raises(CaptureError, match="<stdin>: empty file"):
        open_capture("-", stdin=io.BytesIO(b""))
    with pytest.raises(CaptureError, match="<stdin>: not a pcap or pcapng file"):
        open_capture("-", stdin=io.BytesIO(b"hello world, this is not a capture"))


def test_read_error_is_capture_error() -> None:
    data = pcap_header() + pcap_record("<", T0, 0, FRAME_A) * 50
    stream = Trickle(data, 64, fail_after=200)
    reader = open_capture("-", stdin=stream)  # type: ignore[arg-type]
    with pytest.raises(CaptureError, match="<stdin>: read error: input/output error"):
        read_all(reader)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("chunk", [1, 3, 13, 64])
def test_small_reads_give_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, chunk: int
) -> None:
    data, expected = sample(fmt)
    monkeypatch.setattr("detectors.capture.CHUNK", chunk)
    assert read_path(write(tmp_path, "c", data))[1] == expected
    assert read_path(write(tmp_path, "c.gz", gzip.compress(data)))[1] == expected


# -- input errors ---------------------------------------------------------------------


def test_not_a_capture_errors_name_the_file(tmp_path: Path) -> None:
    cases = {
        "empty.pcap": (b"", "empty file"),
        "random.pcap": (bytes.fromhex("deadbeef") + os.urandom(60), "first bytes 0xdeadbeef"),
        "text.pcap.gz": (gzip.compress(b"just text"), "not a pcap or pcapng file inside gzip"),
        "hollow.gz": (gzip.compress(b""), "empty file \\(after gzip"),
        "badgz.pcap": (b"\x1f\x8b\x08\x00" + bytes(range(40)), "corrupt gzip data"),
        "short.pcap": (pcap_header()[:20], "truncated pcap file header \\(20 of 24"),
        "short.pcapng": (shb()[:20], "truncated pcapng section header"),
        "bom.pcapng": (shb()[:8] + b"XXXX" + shb()[12:], "bad byte-order magic 0x58585858"),
        "v2.pcapng": (shb(major=2), "unsupported pcapng version 2.0"),
    }
    for name, (data, why) in cases.items():
        path = write(tmp_path, name, data)
        with pytest.raises(CaptureError, match=f"^{re.escape(str(path))}: .*{why}"):
            open_capture(str(path))


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        CaptureError, match=f"^{re.escape(str(tmp_path))}: cannot open: is a directory"
    ):
        open_capture(str(tmp_path))
    missing = tmp_path / "nope.pcap"
    with pytest.raises(
        CaptureError, match=f"^{re.escape(str(missing))}: cannot open: no such file"
    ):
        open_capture(str(missing))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.pcap", pcap_header())
    path.chmod(0)
    with pytest.raises(CaptureError, match=r"locked\.pcap: cannot open: permission denied"):
        open_capture(str(path))


def test_bad_gzip_before_any_record_is_an_error(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(pcap_header()))
    packed[-8] ^= 0xFF  # CRC of the uncompressed data
    path = write(tmp_path, "crc.pcap.gz", bytes(packed))
    # The text after "corrupt gzip data: " is the gzip decoder's own (flate2's).
    with pytest.raises(
        CaptureError,
        match=r"crc\.pcap\.gz: corrupt gzip data: corrupt gzip stream does not have a matching",
    ):
        read_all(open_capture(str(path)))  # at open or on the first read: either is fine


# -- truncation and corruption --------------------------------------------------------


def three_records(order: str = "<") -> bytes:
    return pcap_header(order) + b"".join(
        pcap_record(order, T0, i, FRAME_A) for i in range(3)
    )  # records at 24, 100, 176; 76 bytes each


@pytest.mark.parametrize(
    ("cut", "need", "have"),
    [(176 + 16 + 30, 76, 46), (176 + 9, 16, 9)],
    ids=["mid-data", "mid-header"],
)
def test_truncated_pcap(tmp_path: Path, cut: int, need: int, have: int) -> None:
    reader, recs = read_path(write(tmp_path, "cut.pcap", three_records()[:cut]))
    assert [r[0] for r in recs] == [T0 * 10**9, T0 * 10**9 + 1000]
    assert reader.truncated and reader.records_read == 2
    assert reader.warnings == [
        f"{tmp_path}/cut.pcap: truncated capture: record 3 at byte offset 176 needs "
        f"{need} bytes, {have} present; stopped there"
    ]


def test_truncated_pcapng(tmp_path: Path) -> None:
    data, expected = multi_iface("<")
    reader, recs = read_path(write(tmp_path, "cut.pcapng", data[:-10]))
    assert recs == expected[:3]
    assert reader.truncated
    [warning] = reader.warnings
    assert warning.startswith(f"{tmp_path}/cut.pcapng: truncated capture: block 8 at byte offset")
    assert "needs 36 bytes, 26 present" in warning


def test_truncated_gzip(tmp_path: Path) -> None:
    data = pcap_header() + b"".join(pcap_record("<", T0, i, os.urandom(200)) for i in range(300))
    packed = gzip.compress(data)
    reader, recs = read_path(write(tmp_path, "cut.pcap.gz", packed[: len(packed) * 3 // 4]))
    assert 0 < len(recs) < 300
    assert reader.truncated
    assert any("cut.pcap.gz: truncated gzip stream" in w for w in reader.warnings)


def test_corrupt_gzip_after_records_is_a_warning(tmp_path: Path) -> None:
    data, expected = sample("pcapng")
    reader, recs = read_path(write(tmp_path, "tail.gz", gzip.compress(data) + b"garbage!"))
    assert recs == expected
    assert reader.truncated
    assert reader.warnings[0].startswith(f"{tmp_path}/tail.gz: corrupt gzip data")


def test_corrupt_pcap_caplen(tmp_path: Path) -> None:
    data = three_records()[:176] + pcap_record("<", T0, 0, b"", incl=5 * 2**20) + bytes(500)
    reader, recs = read_path(write(tmp_path, "huge.pcap", data))
    assert len(recs) == 2 and reader.truncated
    assert reader.warnings == [
        f"{tmp_path}/huge.pcap: corrupt capture: record 3 at byte offset 176 claims 5242880 "
        "captured bytes (snaplen 65535, limit 1048576); stopped there"
    ]


def test_pcap_caplen_above_snaplen_but_sane_is_kept(tmp_path: Path) -> None:
    data = pcap_header(snaplen=64) + pcap_record("<", T0, 0, bytes(1500))
    reader, recs = read_path(write(tmp_path, "over.pcap", data))
    assert len(recs[0][3]) == 1500 and reader.warnings == []


def corrupt_cases(o: str) -> dict[str, tuple[bytes, bytes, str]]:
    """name: (sound blocks before the damaged one, the damaged block, why)."""
    good = epb(o, 0, 1, FRAME_A)
    bad_len = bytearray(good)
    bad_len[4:8] = struct.pack(o + "I", len(good) + 1)
    overrun = bytearray(good)
    overrun[20:24] = struct.pack(o + "I", 2000)  # caplen beyond the block
    return {
        "not a multiple of 4": (b"", bytes(bad_len), "bad total length 93"),
        "below 12": (b"", struct.pack(o + "II", 6, 8) + bytes(16), "bad total length 8"),
        "trailer": (b"", block(o, 6, good[8:-4], trailer=88), "trailing length 88"),
        "caplen overrun": (b"", bytes(overrun), "claims 2000 captured bytes"),
        "huge": (b"", struct.pack(o + "II", 6, 0x7FFFFFF0) + bytes(64), "bad total length"),
        "short epb": (b"", block(o, 6, bytes(8)), "packet block of 20 bytes"),
        "undefined iface": (b"", epb(o, 3, 1, FRAME_A), "refers to interface 3"),
        "short idb": (b"", block(o, 1, bytes(4)), "interface description of 16 bytes"),
        "idb option": (
            b"",
            block(o, 1, bytes(8) + struct.pack(o + "HH", 2, 99)),
            "option 2 of 99 bytes overrunning",
        ),
        "spb no iface": (shb(o), spb(o, FRAME_A), "interface 0 is not defined"),
        "bad bom": (b"", shb(o)[:8] + b"XXXX" + shb(o)[12:], "bad byte-order magic"),
        "short shb": (
            b"",
            block(o, 0x0A0D0D0A, struct.pack(o + "I", 0x1A2B3C4D)),
            "at least 28",
        ),
        "version 2": (b"", shb(o, major=2), "unsupported pcapng version 2.0"),
    }


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("case", list(corrupt_cases("<")))
def test_corrupt_pcapng_block(tmp_path: Path, order: str, case: str) -> None:
    head = shb(order) + idb(order, 1) + epb(order, 0, 5, FRAME_B)
    before, bad, why = corrupt_cases(order)[case]
    data = head + before + bad + epb(order, 0, 6, FRAME_B)
    reader, recs = read_path(write(tmp_path, "bad.pcapng", data))
    assert recs == [(5000, 0, 1, FRAME_B, 40)]
    assert reader.truncated
    [warning] = reader.warnings
    assert warning.startswith(f"{tmp_path}/bad.pcapng: corrupt capture: block ")
    assert f"at byte offset {len(head) + len(before)} " in warning and why in warning
    assert warning.endswith("; stopped there")


# -- reader lifecycle -----------------------------------------------------------------


def test_records_resume_and_close(tmp_path: Path) -> None:
    reader = open_capture(str(write(tmp_path, "r.pcap", three_records())))
    first = next(iter(reader.records()))
    assert first[0] == T0 * 10**9 and reader.records_read == 1
    assert len(list(reader.records())) == 2  # continues where the first loop stopped
    reader.close()
    reader.close()
    assert list(reader.records()) == []


def test_close_before_reading(tmp_path: Path) -> None:
    with open_capture(str(write(tmp_path, "r.pcapng", sample("pcapng")[0]))) as reader:
        pass
    assert list(reader.records()) == [] and reader.records_read == 0


# -- cross-check with tshark -----------------------------------------------------------


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_agrees_on_built_pcapng(tmp_path: Path) -> None:
    """Guards the test builders: a real reader sees the same frames and times."""
    data, expected = multi_iface(">")
    path = write(tmp_path, "multi.pcapng", data)
    fields = ["frame.time_epoch", "frame.interface_id", "frame.cap_len", "frame.len"]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    seen = []
    for line in out:
        epoch, iface, caplen, wire = line.split("\t")
        sec, _, frac = epoch.partition(".")
        seen.append(
            (int(sec) * 10**9 + int(frac.ljust(9, "0")[:9]), int(iface), int(caplen), int(wire))
        )
    assert seen == [(r[0], r[1], len(r[3]), r[4]) for r in expected]


# -- robustness -------------------------------------------------------------------------


@cache
def seeds() -> list[bytes]:
    ng, _ = multi_iface("<")
    ng_be, _ = multi_iface(">")
    spbs = shb(">") + idb(">", 1, 8) + spb(">", FRAME_A) + pb(">", 0, 9, FRAME_B)
    return [
        three_records("<"),
        three_records(">"),
        pcap_header(nano=True) + pcap_record("<", T0, 1, FRAME_C),
        ng,
        ng_be + shb() + idb("<", 101) + epb("<", 0, 3, FRAME_C),
        spbs,
        gzip.compress(three_records(), mtime=0),
        gzip.compress(ng, mtime=0),
    ]


mutations = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8)


@settings(
    max_examples=300,
    deadline=1000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(range(len(seeds()))), mutations, st.integers(0, 10_000)).map(
            lambda t: mutate(seeds()[t[0]], t[1], t[2])
        ),
    ),
    st.sampled_from([1, 3, 4096]),
)
def test_arbitrary_bytes_raise_only_capture_error(data: bytes, step: int) -> None:
    """Never another exception, always an end, and the same verdict however the bytes arrive."""
    outcomes: list[tuple[object, list[Record]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.cap"
        path.write_bytes(data)
        for source in ("file", "stdin"):
            name = str(path) if source == "file" else "<stdin>"
            try:
                reader = (
                    open_capture(str(path))
                    if source == "file"
                    else open_capture("-", stdin=io.BufferedReader(Trickle(data, step)))
                )
                with reader:
                    recs = list(bounded(reader.records(), len(data)))
            except CaptureError as exc:
                assert str(exc).startswith(f"{name}: ")
                outcomes.append((str(exc).removeprefix(name), []))
                continue
            assert len(recs) == reader.records_read
            assert reader.truncated == bool(reader.warnings)
            outcomes.append(([w.removeprefix(name) for w in reader.warnings], recs))
    if data[:2] != b"\x1f\x8b":
        assert outcomes[0] == outcomes[1]
    else:
        # zlib reports damage per call, dropping that call's output, so with corrupt
        # gzip the read sizes decide how much comes out first. Never different records.
        (_, first), (_, second) = outcomes
        shorter = min(len(first), len(second))
        assert first[:shorter] == second[:shorter]


def mutate(seed: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(seed[: max(cut, 1)] if cut < len(seed) else seed)
    for index, value in flips:
        data[index % len(data)] = value
    return bytes(data)


def bounded(records: Iterator[Record], size: int) -> Iterator[Record]:
    """A record costs at least 12 bytes, and deflate expands at most ~1032x: past that, a loop."""
    for count, record in enumerate(records, 1):
        assert count <= size * 1100 // 12 + 1
        yield record
