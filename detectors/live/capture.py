"""Packet capture from network interfaces, on native TPACKET_V3 rings.

Owns everything between an interface name and a capture record
``(ts_ns, iface_index, linktype, data, wire_len)``, the same record
``detectors.capture`` makes from files: one memory-mapped ring per interface
(``detectors._native.LiveRing``, ``native/src/live/``; ``iface_index`` is the
interface's position on the command line, as pcapng numbers its interfaces),
optionally in a ``PACKET_FANOUT`` group shared with other workers' rings on the
same interface. The ring gives kernel receive timestamps in nanoseconds (the
realtime clock, so alert ids match a replay of the same traffic), 802.1Q tags
put back into the frame (the kernel strips them), promiscuous mode, the ring
size (``--buffer-mb``) and the kernel's packet, drop and freeze counters. Here:
the kernel BPF filter compiled by libpcap (``pcap_compile`` through ctypes; no
privilege is needed to compile) and handed to the ring, and the interfaces'
life: an interface that goes down is logged and read again when it comes back
up, one that is deleted (or replaced, with a new ifindex) is reopened with
backoff.

It does not decode packets, keep time for the engine, or print anything but
the one-line log messages it hands to ``log``. Errors that stop a start are
``LiveCaptureError``; ``privilege`` is set when a capability is missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from detectors._native import LiveRing

if TYPE_CHECKING:
    from detectors.engine import Pump

__all__ = ["CAPS_HINT", "Link", "LiveCapture", "LiveCaptureError", "compile_bpf"]


SIOCGIFFLAGS: Final = 0x8913
IFF_UP: Final = 0x1
LINKTYPE_UNSUPPORTED: Final = 147  # LINKTYPE_USER0: the decoder counts it as unsupported
LINKTYPE_DLT: Final = {1: 1, 101: 12}  # link type -> libpcap DLT for pcap_compile

# pcap_compile's snaplen: any frame the kernel hands a packet socket, GRO super-frames too.
SNAPLEN: Final = 256 * 1024
BACKOFF_FIRST_S: Final = 0.5
BACKOFF_MAX_S: Final = 8.0

CAPS_HINT: Final = (
    "live capture needs CAP_NET_RAW (packet sockets) and CAP_NET_ADMIN (promiscuous "
    "mode): run as root, give the interpreter the capabilities "
    "with `setcap cap_net_raw,cap_net_admin+eip $(readlink -f .venv/bin/python)`, or "
    "start it from systemd with AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"
)


class LiveCaptureError(Exception):
    """A capture that cannot start; ``privilege`` when a capability is missing."""

    def __init__(self, message: str, privilege: bool = False) -> None:
        super().__init__(message)
        self.privilege = privilege


# -- BPF, compiled by libpcap --------------------------------------------------------


class _BpfProgram(ctypes.Structure):
    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p))


def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise LiveCaptureError("--bpf needs libpcap (Debian: apt-get install libpcap0.8)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = (
        ctypes.c_void_p,
        ctypes.POINTER(_BpfProgram),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    )
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
    lib.pcap_freecode.argtypes = (ctypes.POINTER(_BpfProgram),)
    lib.pcap_close.argtypes = (ctypes.c_void_p,)
    return lib


def compile_bpf(expression: str, linktype: int = 1) -> bytes:
    """Kernel BPF bytecode (``struct sock_filter`` array) for a tcpdump expression."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(LINKTYPE_DLT.get(linktype, linktype), SNAPLEN)
    if not handle:
        raise LiveCaptureError("libpcap: pcap_open_dead failed")
    prog = _BpfProgram()
    try:
        # optimize=1, netmask PCAP_NETMASK_UNKNOWN: "ip broadcast" is refused, as in tcpdump.
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) < 0:
            why = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
            raise LiveCaptureError(f"--bpf {expression!r}: {why}")
        try:
            return ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)


# -- one interface ------------------------------------------------------------------------


@dataclass
class Link:
    """One interface on the command line and the ring reading it (None while gone)."""

    name: str
    index: int  # iface index in the records: position on the command line
    ring: LiveRing | None = None
    ifindex: int = 0
    linktype: int = 1
    up: bool = True
    gone_since: float | None = None  # monotonic time the interface went missing
    retry_at: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    packets: int = 0  # frames delivered to the engine
    bytes: int = 0
    kernel_packets: int = 0  # PACKET_STATISTICS over every ring this link had
    kernel_drops: int = 0
    kernel_freezes: int = 0  # times the ring was full (tp_freeze_q_cnt)
    reopened: int = 0
    _seen: tuple[int, int, int] = (0, 0, 0)  # the current ring's counters, last read

    @property
    def state(self) -> str:
        if self.ring is None:
            return "gone"
        return "up" if self.up else "down"


def _if_flags(fd: int, name: str) -> int:
    ifreq = struct.pack("16sH14x", name.encode()[:15], 0)
    return int(struct.unpack_from("16sH", fcntl.ioctl(fd, SIOCGIFFLAGS, ifreq))[1])


class LiveCapture:
    """Every interface of one ``v6sentry live`` (or one of its workers): open, read,
    watch, reopen, count. ``fanout``: the PACKET_FANOUT group of link 0 (link i uses
    ``fanout + i``), shared with the other workers' captures; None reads every frame."""

    def __init__(
        self,
        names: list[str],
        bpf: str | None = None,
        buffer_bytes: int = 128 * 2**20,
        promiscuous: bool = True,
        log: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
        fanout: int | None = None,
    ) -> None:
        self.links = [Link(name, i) for i, name in enumerate(names)]
        self.bpf = bpf
        self.buffer_bytes = buffer_bytes
        self.promiscuous = promiscuous
        self.log = log
        self.clock = clock
        self.fanout = fanout
        self._code: dict[int, bytes] = {}  # compiled filter per link type
        if bpf is not None:
            self._code[1] = compile_bpf(bpf, 1)  # a bad expression fails before any socket

    # -- opening ----------------------------------------------------------------------

    def open(self) -> None:
        """Open every interface; LiveCaptureError if any cannot be opened now."""
        try:
            for link in self.links:
                self._open(link)
        except BaseException:
            self.close()
            raise

    def _filter(self, linktype: int) -> bytes | None:
        if self.bpf is None:
            return None
        code = self._code.get(linktype)
        if code is None:
            code = self._code[linktype] = compile_bpf(self.bpf, linktype)
        return code

    def _open(self, link: Link) -> None:
        try:
            socket.if_nametoindex(link.name)
        except OSError:
            raise LiveCaptureError(f"{link.name}: no such interface") from None
        group = None if self.fanout is None else (self.fanout + link.index) & 0xFFFF
        try:
            ring = LiveRing.open(
                link.name,
                self.promiscuous,
                max(1, self.buffer_bytes >> 20),
                self._filter,  # called with the link type once the ring is bound
                group,
                link.index,
            )
        except PermissionError as exc:
            if exc.filename == "socket":
                raise LiveCaptureError(f"{link.name}: {CAPS_HINT}", privilege=True) from None
            raise LiveCaptureError(f"{link.name}: {exc.filename}: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise LiveCaptureError(f"{link.name}: no such interface") from None
            if exc.filename == "bind":
                raise LiveCaptureError(f"{link.name}: cannot bind: {exc.strerror}") from None
            raise LiveCaptureError(f"{link.name}: {exc.filename}: {exc.strerror}") from None
        link.ring, link.ifindex, link.up = ring, ring.ifindex, True
        link.linktype = ring.linktype
        link.gone_since, link.backoff, link._seen = None, BACKOFF_FIRST_S, (0, 0, 0)
        if link.linktype == LINKTYPE_UNSUPPORTED:
            self.log(
                f"{link.name}: hardware type {ring.hatype} is not supported; frames are counted"
            )
        promisc = ring.promisc_error
        if promisc is not None:
            self.log(f"{link.name}: cannot enable promiscuous mode: {promisc.strerror}")

    def close(self, count: bool = True) -> None:
        """Close every ring; ``count=False`` leaves the kernel counters unread (reading
        resets them), for a copy of a ring another process reads after a fork."""
        for link in self.links:
            if link.ring is not None:
                if count:
                    self._stats(link)
                link.ring.close()
                link.ring = None

    # -- reading ----------------------------------------------------------------------

    def rings(self) -> list[LiveRing]:
        return [link.ring for link in self.links if link.ring is not None]

    def link_of(self, ring: LiveRing) -> Link:
        for link in self.links:
            if link.ring is ring:
                return link
        raise KeyError(ring)

    def feed(self, link: Link, engine: Pump, timeout_ms: int = 0) -> bool:
        """Hand the next block of ``link``'s ring to ``engine`` natively (no Python per
        frame), waiting up to ``timeout_ms``; True if it had frames."""
        ring = link.ring
        if ring is None:
            return False
        try:
            frames, nbytes = engine.run_ring(ring, timeout_ms)
        except OSError as exc:
            if exc.errno == errno.ENETDOWN:  # reported once; frames resume on "up"
                self._went_down(link)
                return False
            raise
        if not frames:
            return False
        if not link.up:
            link.up = True
            self.log(f"{link.name}: link up, capturing again")
        link.packets += frames
        link.bytes += nbytes
        return True

    # -- watching ----------------------------------------------------------------------

    def _went_down(self, link: Link) -> None:
        if link.up:
            link.up = False
            self.log(f"{link.name}: link down; waiting for it to come back")

    def _gone(self, link: Link, why: str) -> None:
        if link.ring is not None:
            self._stats(link)
            link.ring.close()
            link.ring = None
        now = self.clock()
        link.gone_since = now
        link.backoff = BACKOFF_FIRST_S
        link.retry_at = now + link.backoff
        self.log(f"{link.name}: {why}; reopening with backoff (up to {BACKOFF_MAX_S:g} s)")

    def check(self) -> None:
        """Called about once a second: notice links that went down, up, away or back."""
        now = self.clock()
        for link in self.links:
            if link.ring is None:
                if now < link.retry_at:
                    continue
                assert link.gone_since is not None
                since = link.gone_since
                try:
                    self._open(link)
                except LiveCaptureError:
                    link.backoff = min(link.backoff * 2, BACKOFF_MAX_S)
                    link.retry_at = now + link.backoff
                    link.gone_since = since
                    continue
                link.reopened += 1
                self.log(
                    f"{link.name}: capturing again (ifindex {link.ifindex}) after "
                    f"{now - since:.1f} s"
                )
                continue
            try:
                ifindex = socket.if_nametoindex(link.name)
            except OSError:
                self._gone(link, "interface disappeared")
                continue
            if ifindex != link.ifindex:
                self._gone(link, f"interface replaced (ifindex {link.ifindex} -> {ifindex})")
                continue
            try:
                up = bool(_if_flags(link.ring.fileno(), link.name) & IFF_UP)
            except OSError:
                continue
            if not up:
                self._went_down(link)
            elif not link.up:
                link.up = True
                self.log(f"{link.name}: link up, capturing again")

    # -- counters ----------------------------------------------------------------------

    def _stats(self, link: Link) -> None:
        if link.ring is None:
            return
        try:
            now = link.ring.stats()
        except OSError:
            return
        packets, drops, freezes = (a - b for a, b in zip(now, link._seen, strict=True))
        link._seen = now
        link.kernel_packets += packets
        link.kernel_drops += drops
        link.kernel_freezes += freezes

    def counters(self) -> list[Link]:
        """Every link with its kernel counters brought up to date."""
        for link in self.links:
            self._stats(link)
        return self.links
