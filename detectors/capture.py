"""The capture-file reader: pcap and pcapng, plain or gzip, from a file or stdin.

Owns everything about capture *files*: opening them (``-`` is standard input),
sniffing gzip and the format from the first bytes, the pcap global header and
record headers, pcapng sections, interfaces and their timestamp resolution and
offset, and turning every captured frame into one record
``(ts_ns, iface_index, linktype, data, orig_len)``. It also owns the verdict on
damaged input: a file that cannot be a capture is a ``CaptureError``; a capture
that breaks part-way (truncated or corrupt record) yields every record before
the damage, sets ``truncated`` and explains itself in ``warnings``.

It does not decode packets (that is ``decoder``), interpret link types beyond
passing them on, or know about detections. No other module reads capture files.

Notes on the contract:

* Timestamps are integer nanoseconds since the epoch; no floats are involved.
  The pcap ``thiszone`` field is ignored, as libpcap and Wireshark do.
* ``iface_index`` indexes ``CaptureReader.interfaces``. pcapng numbers
  interfaces per section (each Section Header Block starts again at 0); the
  reader maps those section-local ids onto the growing ``interfaces`` list so an
  index never names two different interfaces within one capture.
* A Simple Packet Block has no timestamp: it gets the timestamp of the last
  packet read before it (0 if it is the first), so packet time never jumps.
* Damage, as opposed to a file that is not a capture at all: a record or
  block running past the end of input is *truncated*; a pcap record claiming
  more than ``max(MAX_CAPLEN, snaplen)`` bytes, or a pcapng block whose total
  length is not a multiple of 4, under 12, over ``MAX_BLOCK`` or unequal to its
  trailing copy, or whose contents do not fit it, or that names an interface
  its section has not described, is *corrupt*. Either way reading stops there.
* Corrupt gzip data before the first record is a ``CaptureError``; after it,
  and a gzip stream cut short anywhere, it is a warning like any other damage.
* Only ``CaptureError`` leaves ``open_capture`` and ``records()``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import struct
import sys
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Final

__all__ = ["CaptureError", "CaptureReader", "Interface", "Record", "open_capture"]

Record = tuple[int, int, int, bytes, int]
"""(ts_ns, iface_index, linktype, data, orig_len)"""

# Big reads amortise the per-call cost; records are cut out of the buffer.
CHUNK: Final = 4 * 2**20
# A pcap record is corrupt above this unless the file's snaplen allows more.
# 0x40000 is libpcap's largest snaplen; 4x leaves room for odd writers.
MAX_CAPLEN: Final = 0x40000 * 4
# Hard bound on one record or block, whatever the headers claim, so a corrupt
# length cannot make us buffer an unbounded stream; real frames are far smaller.
MAX_BLOCK: Final = 16 * 2**20

_NS: Final = 1_000_000_000
_GZIP_MAGIC: Final = b"\x1f\x8b"
_PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 6),
    b"\xa1\xb2\xc3\xd4": (">", 6),
    b"\x4d\x3c\xb2\xa1": ("<", 9),
    b"\xa1\xb2\x3c\x4d": (">", 9),
}
_SHB: Final = 0x0A0D0D0A  # a palindrome, so it reads the same in both byte orders
_SHB_BYTES: Final = b"\x0a\x0d\x0d\x0a"
_BOM_LE: Final = b"\x4d\x3c\x2b\x1a"
_BOM_BE: Final = b"\x1a\x2b\x3c\x4d"
_IDB, _PB, _SPB, _EPB = 1, 2, 3, 6
_OPT_IF_NAME, _OPT_IF_TSRESOL, _OPT_IF_TSOFFSET = 2, 9, 14


@dataclass(frozen=True, slots=True)
class _Structs:
    """Precompiled structs for one byte order."""

    pcap_global: struct.Struct  # magic, major, minor, thiszone, sigfigs, snaplen, network
    pcap_record: struct.Struct  # ts_sec, ts_frac, incl_len, orig_len
    block_head: struct.Struct  # block type, total length
    epb_head: struct.Struct  # type, length, interface, ts high, ts low, caplen, orig_len
    pb_head: struct.Struct  # interface (16 bits), drops, ts high, ts low, caplen, orig_len
    u32: struct.Struct
    shb_version: struct.Struct  # major, minor
    idb_head: struct.Struct  # linktype, reserved, snaplen
    option: struct.Struct  # code, length
    i64: struct.Struct


def _structs(order: str) -> _Structs:
    return _Structs(
        struct.Struct(order + "IHHiIII"),
        struct.Struct(order + "IIII"),
        struct.Struct(order + "II"),
        struct.Struct(order + "IIIIIII"),
        struct.Struct(order + "HHIIII"),
        struct.Struct(order + "I"),
        struct.Struct(order + "HH"),
        struct.Struct(order + "HHI"),
        struct.Struct(order + "HH"),
        struct.Struct(order + "q"),
    )


_LE: Final = _structs("<")
_BE: Final = _structs(">")


class CaptureError(Exception):
    """The input cannot be read as a capture. The message names the file."""


class _Corrupt(Exception):
    """Internal: the record or block at hand is corrupt; the message says how."""


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface: a pcap file has one, a pcapng section any number."""

    linktype: int
    snaplen: int
    name: str | None = None
    # Raw if_tsresol byte: high bit clear -> units of 10^-v s, set -> 2^-v s.
    tsresol: int = 6
    tsoffset_s: int = 0  # if_tsoffset: seconds added to every timestamp

    def ts_scale(self) -> tuple[int, int]:
        """(mul, div) with ``ns = units * mul // div``, exact integer arithmetic."""
        v = self.tsresol & 0x7F
        if self.tsresol & 0x80:
            return _NS, 1 << v
        if v <= 9:
            return 10 ** (9 - v), 1
        return 1, 10 ** (v - 9)

    def to_ns(self, units: int) -> int:
        """A timestamp in this interface's units, as nanoseconds since the epoch."""
        mul, div = self.ts_scale()
        return units * mul // div + self.tsoffset_s * _NS


class _Prefixed:
    """A readable made of bytes already consumed (the sniffed head) and the rest.

    Standard input cannot seek back after sniffing, so the head is replayed.
    """

    __slots__ = ("_head", "_read")

    def __init__(self, head: bytes, read: Callable[[int], bytes]) -> None:
        self._head = head
        self._read = read

    def read(self, size: int = -1, /) -> bytes:
        head = self._head
        if not head:
            return self._read(size)
        if 0 <= size < len(head):
            self._head = head[size:]
            return head[:size]
        self._head = b""
        return head

    def seek(self, offset: int, /) -> int:
        raise io.UnsupportedOperation("a capture stream is read once, front to back")


def _read_at_least(read: Callable[[int], bytes], n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at end of input (pipes return short reads)."""
    data = b""
    while len(data) < n:
        chunk = read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class CaptureReader:
    """An open capture. Iterate ``records()``; then check ``truncated``/``warnings``."""

    def __init__(
        self,
        path: str,
        read: Callable[[int], bytes],
        head: bytes,
        fmt: str,
        compressed: bool,
        closers: list[Callable[[], None]],
    ) -> None:
        self.path = path
        self.format = fmt
        self.compressed = compressed
        self.interfaces: list[Interface] = []
        self.warnings: list[str] = []
        self.truncated = False
        # Counts records yielded. Kept in step with every yield.
        self.records_read = 0
        self._name = "<stdin>" if path == "-" else path
        self._read = read
        self._buf = head  # bytes read while sniffing; parsing starts here
        self._base = 0  # offset in the (decompressed) stream of buf[0]
        self._eof = False
        self._closers = closers
        self._gen: Generator[Record, None, None] | None = None
        self._closed = False
        self._s = _LE
        if fmt == "pcap":
            self._open_pcap()

    # -- public -------------------------------------------------------------------

    def records(self) -> Iterator[Record]:
        """Yields ``(ts_ns, iface_index, linktype, data, orig_len)`` per captured frame.

        Calling it again continues where the previous iteration stopped, like a file.
        """
        if self._gen is None:
            self._gen = self._pcap() if self.format == "pcap" else self._pcapng()
            if self._closed:
                self._gen.close()  # a closed reader has no records left
        return self._gen

    def close(self) -> None:
        """Release the file (standard input stays open). Idempotent."""
        self._closed = True
        if self._gen is not None:
            self._gen.close()
        closers, self._closers = self._closers, []
        for closer in closers:
            # Nothing is read any more: a failing close changes no record.
            with contextlib.suppress(OSError, EOFError, zlib.error):
                closer()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"CaptureReader(path={self.path!r}, format={self.format!r}, "
            f"compressed={self.compressed}, records_read={self.records_read})"
        )

    # -- input --------------------------------------------------------------------

    def _more(self) -> bytes:
        """The next chunk of the stream, b'' at its end (or after a gzip failure)."""
        if self._eof:
            return b""
        offset = self._base + len(self._buf)
        try:
            chunk = self._read(CHUNK)
        except EOFError as exc:  # gzip member cut short
            self._eof = True
            self._warn(f"truncated gzip stream after {offset} decompressed bytes ({exc})")
            return b""
        except (gzip.BadGzipFile, zlib.error) as exc:
            self._eof = True
            if self.records_read == 0:
                raise CaptureError(f"{self._name}: corrupt gzip data: {exc}") from exc
            self._warn(f"corrupt gzip data after {offset} decompressed bytes ({exc})")
            return b""
        except (OSError, ValueError) as exc:  # ValueError: read after close
            raise CaptureError(f"{self._name}: read error: {_reason(exc)}") from exc
        if not chunk:
            self._eof = True
        return chunk

    def _warn(self, text: str) -> None:
        self.truncated = True
        self.warnings.append(f"{self._name}: {text}")

    def _where(self, pos: int) -> str:
        where = f"byte offset {self._base + pos}"
        return where + " of the decompressed data" if self.compressed else where

    def _stop_truncated(self, what: str, pos: int, need: int, have: int) -> None:
        self._warn(
            f"truncated capture: {what} at {self._where(pos)} needs {need} bytes, "
            f"{have} present; stopped there"
        )

    def _stop_corrupt(self, what: str, pos: int, why: str) -> None:
        self._warn(f"corrupt capture: {what} at {self._where(pos)} {why}; stopped there")

    # -- pcap ---------------------------------------------------------------------

    def _open_pcap(self) -> None:
        head = self._buf
        if len(head) < 24:
            raise CaptureError(
                f"{self._name}: truncated pcap file header ({len(head)} of 24 bytes)"
            )
        order, digits = _PCAP_MAGICS[head[:4]]
        self._s = _LE if order == "<" else _BE
        _, _, _, _, _, snaplen, network = self._s.pcap_global.unpack_from(head)
        # The upper 16 bits of `network` carry FCS length flags, not the link type.
        self.interfaces.append(Interface(network & 0xFFFF, snaplen, None, digits))

    def _pcap(self) -> Generator[Record, None, None]:
        unpack = self._s.pcap_record.unpack_from
        iface = self.interfaces[0]
        linktype = iface.linktype
        frac_mul = 1000 if iface.tsresol == 6 else 1
        limit = max(MAX_CAPLEN, min(iface.snaplen, MAX_BLOCK))
        buf = self._buf
        pos = 24
        end = len(buf)
        n = 0
        while True:
            p = pos + 16
            if p <= end:
                sec, frac, incl, orig = unpack(buf, pos)
                q = p + incl
                if q <= end and incl <= limit:
                    n += 1
                    self.records_read = n
                    yield (sec * _NS + frac * frac_mul, 0, linktype, buf[p:q], orig)
                    pos = q
                    continue
                if incl > limit:
                    self._stop_corrupt(
                        f"record {n + 1}",
                        pos,
                        f"claims {incl} captured bytes (snaplen {iface.snaplen}, limit {limit})",
                    )
                    return
                need = 16 + incl
            elif pos == end and self._eof:
                return  # ends on a record boundary: a clean end
            else:
                need = 16
            chunk = self._more()
            if not chunk:
                if end > pos:
                    self._stop_truncated(f"record {n + 1}", pos, need, end - pos)
                return
            # Keep the partial record and append; offsets restart at 0.
            self._base += pos
            buf = buf[pos:] + chunk
            self._buf = buf
            pos = 0
            end = len(buf)

    # -- pcapng -------------------------------------------------------------------

    def _pcapng(self) -> Generator[Record, None, None]:
        s = self._s
        epb_unpack = s.epb_head.unpack_from
        u32_unpack = s.u32.unpack_from
        # Section-local interface id -> (linktype, global index, mul, div, offset_ns, snaplen)
        section: list[tuple[int, int, int, int, int, int]] = []
        nif = 0
        last_ts = 0
        blocks = 0  # blocks other than packet blocks, for block numbers in messages
        buf = self._buf
        pos = 0
        end = len(buf)
        n = 0
        while True:
            # Fast path: a complete, well-formed Enhanced Packet Block.
            if pos + 28 <= end:
                btype, blen, iid, tsh, tsl, caplen, orig = epb_unpack(buf, pos)
                q = pos + blen
                if (
                    btype == _EPB
                    and q <= end
                    and caplen + 32 <= blen <= MAX_BLOCK
                    and not blen & 3
                    and iid < nif
                    and u32_unpack(buf, q - 4)[0] == blen
                ):
                    linktype, gidx, mul, div, off, _ = section[iid]
                    last_ts = ((tsh << 32) | tsl) * mul // div + off
                    n += 1
                    self.records_read = n
                    d = pos + 28
                    yield (last_ts, gidx, linktype, buf[d : d + caplen], orig)
                    pos = q
                    continue

            # Slow path: any other block, a block not yet fully buffered, or damage.
            what = f"block {n + blocks + 1}"
            if pos + 12 <= end:
                btype, blen = s.block_head.unpack_from(buf, pos)
                if btype == _SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom not in (_BOM_LE, _BOM_BE):
                        self._stop_corrupt(what, pos, f"has bad byte-order magic 0x{bom.hex()}")
                        return
                    s = _LE if bom == _BOM_LE else _BE
                    self._s = s
                    epb_unpack = s.epb_head.unpack_from
                    u32_unpack = s.u32.unpack_from
                    btype, blen = s.block_head.unpack_from(buf, pos)
                if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                    self._stop_corrupt(
                        what,
                        pos,
                        f"(type 0x{btype:08x}) has bad total length {blen} "
                        f"(must be a multiple of 4, 12 to {MAX_BLOCK})",
                    )
                    return
                q = pos + blen
                if q <= end:
                    try:
                        trailer = u32_unpack(buf, q - 4)[0]
                        if trailer != blen:
                            raise _Corrupt(
                                f"(type 0x{btype:08x}) has total length {blen} but "
                                f"trailing length {trailer}"
                            )
                        if btype in (_EPB, _PB, _SPB):
                            iid, ts_units, data, orig = self._packet(btype, buf, pos, q, nif)
                            linktype, gidx, mul, div, off, snaplen = section[iid]
                            if btype == _SPB:
                                if snaplen and len(data) > snaplen:
                                    data = data[:snaplen]
                            else:
                                last_ts = ts_units * mul // div + off
                            n += 1
                            self.records_read = n
                            yield (last_ts, gidx, linktype, data, orig)
                            pos = q
                            continue
                        blocks += 1
                        if btype == _SHB:
                            self._check_shb(buf, pos, blen)
                            section = []
                            nif = 0
                        elif btype == _IDB:
                            iface = self._idb(buf, pos, q)
                            mul, div = iface.ts_scale()
                            section.append(
                                (
                                    iface.linktype,
                                    len(self.interfaces),
                                    mul,
                                    div,
                                    iface.tsoffset_s * _NS,
                                    iface.snaplen,
                                )
                            )
                            nif = len(section)
                            self.interfaces.append(iface)
                        # Every other block type (NRB, ISB, DSB, custom...) is skipped.
                    except _Corrupt as exc:
                        self._stop_corrupt(what, pos, str(exc))
                        return
                    pos = q
                    continue
                need = blen
            elif pos == end and self._eof:
                return  # ends on a block boundary: a clean end
            else:
                need = 12
            chunk = self._more()
            if not chunk:
                if end > pos:
                    self._stop_truncated(what, pos, need, end - pos)
                return
            self._base += pos
            buf = buf[pos:] + chunk
            self._buf = buf
            pos = 0
            end = len(buf)

    def _check_shb(self, buf: bytes, pos: int, blen: int) -> None:
        if blen < 28:
            raise _Corrupt(f"is a section header of {blen} bytes (at least 28)")
        major, minor = self._s.shb_version.unpack_from(buf, pos + 12)
        if major != 1:
            raise _Corrupt(f"is a section header of unsupported pcapng version {major}.{minor}")

    def _packet(
        self, btype: int, buf: bytes, pos: int, q: int, nif: int
    ) -> tuple[int, int, bytes, int]:
        """(section interface id, timestamp units, data, orig_len) of an EPB, PB or SPB."""
        if btype == _SPB:
            if q - pos < 16:
                raise _Corrupt(f"is a simple packet block of {q - pos} bytes (at least 16)")
            if nif == 0:
                raise _Corrupt("is a simple packet block but interface 0 is not defined")
            orig = self._s.u32.unpack_from(buf, pos + 8)[0]
            d = pos + 12
            return 0, 0, buf[d : min(d + orig, q - 4)], orig
        if q - pos < 32:
            raise _Corrupt(f"is a packet block of {q - pos} bytes (at least 32)")
        if btype == _EPB:
            _, _, iid, tsh, tsl, caplen, orig = self._s.epb_head.unpack_from(buf, pos)
        else:
            iid, _, tsh, tsl, caplen, orig = self._s.pb_head.unpack_from(buf, pos + 8)
        d = pos + 28
        if d + caplen > q - 4:
            raise _Corrupt(f"claims {caplen} captured bytes in a block of {q - pos} bytes")
        if iid >= nif:
            raise _Corrupt(f"refers to interface {iid}, but the section defines {nif}")
        return iid, (tsh << 32) | tsl, buf[d : d + caplen], orig

    def _idb(self, buf: bytes, pos: int, q: int) -> Interface:
        s = self._s
        if q - pos < 20:
            raise _Corrupt(f"is an interface description of {q - pos} bytes (at least 20)")
        linktype, _, snaplen = s.idb_head.unpack_from(buf, pos + 8)
        name: str | None = None
        tsresol = 6
        tsoffset = 0
        opt = pos + 16
        stop = q - 4
        while opt + 4 <= stop:
            code, length = s.option.unpack_from(buf, opt)
            value = opt + 4
            if code == 0:  # opt_endofopt
                break
            if value + length > stop:
                raise _Corrupt(f"has option {code} of {length} bytes overrunning the block")
            if code == _OPT_IF_NAME:
                # Some writers include the C string's NUL.
                name = buf[value : value + length].rstrip(b"\0").decode("utf-8", "replace")
            elif code == _OPT_IF_TSRESOL and length >= 1:
                tsresol = buf[value]
            elif code == _OPT_IF_TSOFFSET and length >= 8:
                tsoffset = s.i64.unpack_from(buf, value)[0]
            opt = value + ((length + 3) & ~3)
        return Interface(linktype, snaplen, name, tsresol, tsoffset)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def open_capture(path: str, stdin: BinaryIO | None = None) -> CaptureReader:
    """Open a pcap or pcapng capture, gzip-compressed or not; ``-`` reads ``stdin``.

    ``stdin`` defaults to ``sys.stdin.buffer`` and is never closed by the reader.
    Raises ``CaptureError`` (naming the file) when the input is not a capture.
    """
    name = "<stdin>" if path == "-" else path
    closers: list[Callable[[], None]] = []
    read: Callable[[int], bytes]
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        # read1 returns what a pipe has now instead of waiting for a full chunk.
        read = getattr(stream, "read1", stream.read)
    else:
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115  # closed by CaptureReader.close
        except (OSError, ValueError) as exc:
            raise CaptureError(f"{name}: cannot open: {_reason(exc)}") from exc
        read = raw.read
        closers.append(raw.close)
    try:
        return _sniff(path, name, read, closers)
    except BaseException:
        for closer in closers:
            closer()
        raise


def _sniff(
    path: str, name: str, read: Callable[[int], bytes], closers: list[Callable[[], None]]
) -> CaptureReader:
    try:
        head = _read_at_least(read, 28)
    except (OSError, ValueError) as exc:
        raise CaptureError(f"{name}: read error: {_reason(exc)}") from exc
    if not head:
        raise CaptureError(f"{name}: empty file")
    compressed = head[:2] == _GZIP_MAGIC
    if compressed:
        gz = gzip.GzipFile(fileobj=_Prefixed(head, read), mode="rb")
        closers.insert(0, gz.close)
        read = gz.read1
        try:
            head = _read_at_least(read, 28)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise CaptureError(f"{name}: corrupt gzip data: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise CaptureError(f"{name}: read error: {_reason(exc)}") from exc
        if not head:
            raise CaptureError(f"{name}: empty file (after gzip decompression)")
    magic = head[:4]
    if magic in _PCAP_MAGICS:
        fmt = "pcap"
    elif magic == _SHB_BYTES:
        fmt = "pcapng"
        _check_first_shb(name, head)
    else:
        inner = " inside gzip" if compressed else ""
        raise CaptureError(
            f"{name}: not a pcap or pcapng file{inner} (first bytes 0x{head[:4].hex()})"
        )
    return CaptureReader(path, read, head, fmt, compressed, closers)


def _check_first_shb(name: str, head: bytes) -> None:
    if len(head) < 28:
        raise CaptureError(f"{name}: truncated pcapng section header ({len(head)} of 28 bytes)")
    bom = head[8:12]
    if bom not in (_BOM_LE, _BOM_BE):
        raise CaptureError(f"{name}: pcapng section header has bad byte-order magic 0x{bom.hex()}")
    s = _LE if bom == _BOM_LE else _BE
    major, minor = s.shb_version.unpack_from(head, 12)
    if major != 1:
        raise CaptureError(f"{name}: unsupported pcapng version {major}.{minor}")
