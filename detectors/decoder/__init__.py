"""The one decoder: the only code in v6sentry that reads packet bytes.

This package is the Python face of the native decoder (``native/src/decode/``,
Rust, imported as ``detectors._native``). ``Decoder`` turns capture records
into the typed events of ``detectors.events``; ``decode``, ``expire``,
``stats``, ``reassembler`` and the ``want_*`` flags (one per event kind a
detection may observe: packets, tunnels, MLD, DHCPv6, extension-header options,
ICMPv6 errors) are what the engine uses. The limits stay small Python
dataclasses here (the policy builds them) and are read once by the native
constructor. No Python code reads packet bytes; capture files are read by
``detectors.capture``; nothing here judges traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors._native import TEREDO_PORT, Decoder, icmpv6_checksum_ok


@dataclass(frozen=True, slots=True)
class ReassemblyLimits:
    """Caps for the reassembly table; overridable as ``decoder`` thresholds."""

    timeout_ns: int = 60 * 1_000_000_000  # RFC 8200: 60 s
    max_datagrams: int = 4096
    max_bytes: int = 16 * 1024 * 1024
    max_fragments: int = 128  # per datagram; far above any honest MTU split


@dataclass(frozen=True, slots=True)
class DecoderLimits:
    """Bounds on the decoder's work per packet and its memory.

    Overridable in the policy under ``thresholds: {decoder: {...}}``. The native
    decoder holds at most 16 VLAN tags, 64 extension headers and 8 tunnels (the
    policy's ranges); larger values act as those.
    """

    max_ext_headers: int = 16  # more than any real stack sends; RFC 8504 suggests a limit
    max_vlan_tags: int = 4
    max_tunnel_depth: int = 3
    reassembly: ReassemblyLimits = field(default_factory=ReassemblyLimits)
    # Options per Hop-by-Hop or Destination Options header, padding included: Linux
    # takes 8 non-padding ones (net.ipv6.max_dst_opts_number), so 16 leaves room for
    # a padding option before each (RFC 8504 5.3 asks hosts for such a limit).
    max_ext_options: int = 16


__all__ = [
    "TEREDO_PORT",
    "Decoder",
    "DecoderLimits",
    "ReassemblyLimits",
    "icmpv6_checksum_ok",
]
