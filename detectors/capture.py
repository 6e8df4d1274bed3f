"""The capture-file reader: pcap and pcapng, plain or gzip, from a file or stdin.

Owns everything about capture *files*: opening them (``-`` is standard input),
sniffing gzip and the format from the first bytes, the pcap global header and
record headers, pcapng sections, interfaces and their timestamp resolution and
offset, and turning every captured frame into one record
``(ts_ns, iface_index, linktype, data, orig_len)``. It also owns the verdict on
damaged input: a file that cannot be a capture is a ``CaptureError``; a capture
that breaks part-way (truncated or corrupt record) yields every record before
the damage, sets ``truncated`` and explains itself in ``warnings``.

The reader is native (``native/src/capture/``, exposed as ``detectors._native``);
this module is its Python face and owns only the names callers import and the
read size ``CHUNK`` (tests shrink it). No Python code parses capture bytes.

It does not decode packets (that is ``decoder``), interpret link types beyond
passing them on, or know about detections. No other module reads capture files.

Notes on the contract:

* Timestamps are integer nanoseconds since the epoch; no floats are involved.
  The pcap ``thiszone`` field is ignored, as libpcap and Wireshark do.
* ``iface_index`` indexes ``CaptureReader.interfaces``. pcapng numbers
  interfaces per section (each Section Header Block starts again at 0); the
  reader maps those section-local ids onto the growing ``interfaces`` list so an
  index never names two different interfaces within one capture.
* At most ``max_interfaces`` interfaces are kept (4096 by default): a pcapng
  describing millions would otherwise hold ~300 bytes for each. Descriptions
  past the cap are counted (``interfaces_over_cap``), not kept; packets on those
  interfaces are counted (``records_skipped``) and skipped, since their link type
  and time resolution are unknown. When reading ends (or on ``close``), one
  warning gives both counts. This is not damage: ``truncated`` is unchanged.
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
* Only ``CaptureError`` leaves ``open_capture`` and ``records()`` (or, from a
  ``stdin=`` stream, that stream's own exception if it is not an I/O error).
* Timestamps beyond the int64 nanosecond range (after 2262, or from absurd
  pcapng resolutions and offsets) are clamped to it.
* Where a message quotes the gzip decoder (``corrupt gzip data: ...``), the
  quoted text is the Rust decoder's (flate2), not Python's zlib's. A gzip header
  with reserved flag bits set is corrupt, as RFC 1952 asks (Python ignored them).
"""

from __future__ import annotations

from typing import BinaryIO, Final

from detectors import _native
from detectors._native import CaptureError, CaptureReader, Interface

__all__ = ["CaptureError", "CaptureReader", "Interface", "Record", "open_capture"]

Record = tuple[int, int, int, bytes, int]
"""(ts_ns, iface_index, linktype, data, orig_len)"""

# Bytes asked of the input per read; read at each open_capture, so tests may shrink it.
CHUNK = _native.CHUNK
# A pcap record is corrupt above this unless the file's snaplen allows more.
MAX_CAPLEN: Final = _native.MAX_CAPLEN
# Hard bound on one record or block, whatever the headers claim.
MAX_BLOCK: Final = _native.MAX_BLOCK
# Interfaces kept per capture by default (the policy's thresholds.decoder.max_interfaces).
DEFAULT_MAX_INTERFACES: Final = _native.DEFAULT_MAX_INTERFACES


def open_capture(
    path: str, stdin: BinaryIO | None = None, max_interfaces: int = DEFAULT_MAX_INTERFACES
) -> CaptureReader:
    """Open a pcap or pcapng capture, gzip-compressed or not; ``-`` reads ``stdin``.

    ``stdin`` defaults to the process's standard input (fd 0) and is never closed by
    the reader. Raises ``CaptureError`` (naming the file) when the input is not a
    capture. At most ``max_interfaces`` interfaces are kept (see the module notes).
    """
    return _native.open_capture(path, stdin, CHUNK, max_interfaces)
