"""Packet capture from network interfaces, with Python's AF_PACKET sockets.

Owns everything between an interface name and a capture record
``(ts_ns, iface_index, linktype, data, wire_len)``, the same record
``detectors.capture`` makes from files: one ``AF_PACKET``/``SOCK_RAW`` socket
per interface (``iface_index`` is the interface's position on the command
line, as pcapng numbers its interfaces), kernel receive timestamps in
nanoseconds (``SO_TIMESTAMPNS``, the realtime clock, so alert ids match a
replay of the same traffic), 802.1Q tags put back into the frame from the
kernel's auxiliary data (``PACKET_AUXDATA``; the kernel strips them), a
kernel BPF filter compiled by libpcap (``pcap_compile`` through ctypes; no
privilege is needed to compile), promiscuous mode, the socket buffer size,
the kernel's packet and drop counters (``PACKET_STATISTICS``), and the
interfaces' life: an interface that goes down is logged and read again when it
comes back up, one that is deleted (or replaced, with a new ifindex) is
reopened with backoff.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

__all__ = ["CAPS_HINT", "Link", "LiveCapture", "LiveCaptureError", "compile_bpf"]

Record = tuple[int, int, int, bytes, int]

# Linux constants the socket module (3.11) does not export.
ETH_P_ALL: Final = 0x0003
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_MR_PROMISC: Final = 1
PACKET_STATISTICS: Final = 6
PACKET_AUXDATA: Final = 8
SO_TIMESTAMPNS: Final = 35  # also SCM_TIMESTAMPNS
SO_ATTACH_FILTER: Final = 26
SO_RCVBUFFORCE: Final = 33
SIOCGIFFLAGS: Final = 0x8913
IFF_UP: Final = 0x1
TP_STATUS_VLAN_VALID: Final = 0x10
TP_STATUS_VLAN_TPID_VALID: Final = 0x40

# ARPHRD (the interface's hardware type) -> link type of what SOCK_RAW delivers.
# Ethernet and loopback carry an Ethernet header; the others carry bare IP.
ARPHRD_LINKTYPE: Final = {1: 1, 772: 1, 65534: 101, 776: 101, 769: 101, 778: 101, 823: 101}
LINKTYPE_UNSUPPORTED: Final = 147  # LINKTYPE_USER0: the decoder counts it as unsupported
LINKTYPE_DLT: Final = {1: 1, 101: 12}  # link type -> libpcap DLT for pcap_compile

# Big enough for any frame the kernel hands a packet socket, GRO super-frames included;
# MSG_TRUNC still reports the true length of anything larger.
FRAME_BUFFER: Final = 256 * 1024
BATCH: Final = 256  # frames read from one socket before looking at the others
BACKOFF_FIRST_S: Final = 0.5
BACKOFF_MAX_S: Final = 8.0

CAPS_HINT: Final = (
    "live capture needs CAP_NET_RAW (packet sockets) and CAP_NET_ADMIN (promiscuous "
    "mode, large socket buffers): run as root, give the interpreter the capabilities "
    "with `setcap cap_net_raw,cap_net_admin+eip $(readlink -f .venv/bin/python)`, or "
    "start it from systemd with AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"
)

_TIMESPEC = struct.Struct("=qq")
_AUXDATA = struct.Struct("=IIIHHHH")
_STATS = struct.Struct("=II")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size)
_DROP_ALL: Final = struct.pack("=HBBI", 0x06, 0, 0, 0)  # BPF "ret #0"


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
    handle = lib.pcap_open_dead(LINKTYPE_DLT.get(linktype, linktype), FRAME_BUFFER)
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


def _attach(sock: socket.socket, code: bytes) -> None:
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }; the buffer
    # must live until setsockopt returns (the kernel copies it).
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# -- one interface ------------------------------------------------------------------------


@dataclass
class Link:
    """One interface on the command line and the socket reading it (None while gone)."""

    name: str
    index: int  # iface index in the records: position on the command line
    sock: socket.socket | None = None
    ifindex: int = 0
    linktype: int = 1
    up: bool = True
    gone_since: float | None = None  # monotonic time the interface went missing
    retry_at: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    packets: int = 0  # frames delivered to the engine
    bytes: int = 0
    kernel_packets: int = 0  # PACKET_STATISTICS, accumulated (reading resets the kernel's)
    kernel_drops: int = 0
    reopened: int = 0
    _buf: bytearray = field(default_factory=lambda: bytearray(FRAME_BUFFER), repr=False)

    @property
    def state(self) -> str:
        if self.sock is None:
            return "gone"
        return "up" if self.up else "down"


def _if_flags(sock: socket.socket, name: str) -> int:
    ifreq = struct.pack("16sH14x", name.encode()[:15], 0)
    return int(struct.unpack_from("16sH", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, ifreq))[1])


class LiveCapture:
    """Every interface of one ``v6sentry live``: open, read, watch, reopen, count."""

    def __init__(
        self,
        names: list[str],
        bpf: str | None = None,
        buffer_bytes: int = 128 * 2**20,
        promiscuous: bool = True,
        log: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.links = [Link(name, i) for i, name in enumerate(names)]
        self.bpf = bpf
        self.buffer_bytes = buffer_bytes
        self.promiscuous = promiscuous
        self.log = log
        self.clock = clock
        self._warned_buffer = False
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
            ifindex = socket.if_nametoindex(link.name)
        except OSError:
            raise LiveCaptureError(f"{link.name}: no such interface") from None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: no frames yet
        except PermissionError:
            raise LiveCaptureError(f"{link.name}: {CAPS_HINT}", privilege=True) from None
        try:
            self._setup(sock, link, ifindex)
        except BaseException:
            sock.close()
            raise
        link.sock, link.ifindex, link.up = sock, ifindex, True
        link.gone_since, link.backoff = None, BACKOFF_FIRST_S

    def _setup(self, sock: socket.socket, link: Link, ifindex: int) -> None:
        # Nothing may pass before the real filter is in place: drop everything, bind,
        # drain what slipped in, then attach the filter (what libpcap does too).
        if self.bpf is not None:
            _attach(sock, _DROP_ALL)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self._buffer(sock)
        try:
            sock.bind((link.name, ETH_P_ALL))
        except OSError as exc:
            raise LiveCaptureError(f"{link.name}: cannot bind: {exc.strerror}") from None
        hatype = int(sock.getsockname()[3])
        link.linktype = ARPHRD_LINKTYPE.get(hatype, LINKTYPE_UNSUPPORTED)
        if link.linktype == LINKTYPE_UNSUPPORTED:
            self.log(f"{link.name}: hardware type {hatype} is not supported; frames are counted")
        if self.promiscuous:
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            try:
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                self.log(f"{link.name}: cannot enable promiscuous mode: {exc.strerror}")
        code = self._filter(link.linktype)
        if code is not None:
            sock.setblocking(False)
            while True:
                try:
                    sock.recv(FRAME_BUFFER)
                except BlockingIOError:
                    break
                except OSError:
                    break
            _attach(sock, code)
        sock.setblocking(False)
        self._stats(link, sock)  # reset the kernel counters: they start now

    def _buffer(self, sock: socket.socket) -> None:
        # SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; without it the
        # kernel caps SO_RCVBUF at rmem_max (often 208 KiB), and bursts drop sooner.
        half = self.buffer_bytes // 2  # the kernel doubles the value for bookkeeping
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, half)
            return
        except PermissionError:
            pass
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, half)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if got < self.buffer_bytes and not self._warned_buffer:
            self._warned_buffer = True
            self.log(
                f"warning: socket buffer is {got // 1024} KiB, not "
                f"{self.buffer_bytes // 1024} KiB: without CAP_NET_ADMIN the kernel caps it "
                "at net.core.rmem_max"
            )

    def close(self) -> None:
        for link in self.links:
            if link.sock is not None:
                self._stats(link, link.sock)
                link.sock.close()
                link.sock = None

    # -- reading ----------------------------------------------------------------------

    def sockets(self) -> list[socket.socket]:
        return [link.sock for link in self.links if link.sock is not None]

    def link_of(self, sock: socket.socket) -> Link:
        for link in self.links:
            if link.sock is sock:
                return link
        raise KeyError(sock)

    def read(self, link: Link, budget: int = BATCH) -> Iterator[Record]:
        """Up to ``budget`` frames waiting on ``link``'s socket, without blocking."""
        sock = link.sock
        if sock is None:
            return
        buf = link._buf
        view = memoryview(buf)
        recv = sock.recvmsg_into
        for _ in range(budget):
            try:
                n, ancdata, _flags, _addr = recv([view], _ANC_SIZE, socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:  # reported once; frames resume on "up"
                    self._went_down(link)
                    return
                raise
            ts_ns = 0
            tag = b""
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    ts_ns = sec * 1_000_000_000 + nsec
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(data)
                    if status & TP_STATUS_VLAN_VALID:
                        # The kernel took the 802.1Q tag off; libpcap puts it back too.
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        tag = struct.pack("!HH", tpid, tci)
            if ts_ns == 0:
                ts_ns = time.time_ns()
            if not link.up:
                link.up = True
                self.log(f"{link.name}: link up, capturing again")
            size = min(n, FRAME_BUFFER)
            if tag and link.linktype == 1 and size >= 12:
                data = bytes(view[:12]) + tag + bytes(view[12:size])
                n += 4
            else:
                data = bytes(view[:size])
            link.packets += 1
            link.bytes += n
            yield (ts_ns, link.index, link.linktype, data, n)

    # -- watching ----------------------------------------------------------------------

    def _went_down(self, link: Link) -> None:
        if link.up:
            link.up = False
            self.log(f"{link.name}: link down; waiting for it to come back")

    def _gone(self, link: Link, why: str) -> None:
        if link.sock is not None:
            self._stats(link, link.sock)
            link.sock.close()
            link.sock = None
        now = self.clock()
        link.gone_since = now
        link.backoff = BACKOFF_FIRST_S
        link.retry_at = now + link.backoff
        self.log(f"{link.name}: {why}; reopening with backoff (up to {BACKOFF_MAX_S:g} s)")

    def check(self) -> None:
        """Called about once a second: notice links that went down, up, away or back."""
        now = self.clock()
        for link in self.links:
            if link.sock is None:
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
                up = bool(_if_flags(link.sock, link.name) & IFF_UP)
            except OSError:
                continue
            if not up:
                self._went_down(link)
            elif not link.up:
                link.up = True
                self.log(f"{link.name}: link up, capturing again")

    # -- counters ----------------------------------------------------------------------

    def _stats(self, link: Link, sock: socket.socket) -> None:
        try:
            raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        except OSError:
            return
        packets, drops = _STATS.unpack(raw)
        link.kernel_packets += packets
        link.kernel_drops += drops

    def counters(self) -> list[Link]:
        """Every link with its kernel counters brought up to date."""
        for link in self.links:
            if link.sock is not None:
                self._stats(link, link.sock)
        return self.links
