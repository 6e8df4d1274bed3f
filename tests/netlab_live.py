"""A span-port lab for ``v6sentry live``: a LAN, a mirror port, a sensor, real attacks.

Owns the end-to-end run of the live sensor against real traffic: a LAN (the hub-mode
bridge of ``tests/netlab.py``) whose every port's ingress is mirrored with ``tc``
(``clsact`` + ``u32`` + ``mirred egress mirror``) to a separate veth, the way a switch
SPAN port copies every frame once; the other end of that veth, ``span0``, sits in a
"sensor" namespace with IPv6 disabled (no address, nothing sent) and promiscuous. There
``v6sentry live -i span0`` runs as an unprivileged user (``nobody``) holding only the
ambient capabilities CAP_NET_RAW and CAP_NET_ADMIN (``setpriv``), next to a tcpdump of
the same interface with nanosecond timestamps. Then a benign phase (radvd from the
policy's router, SLAAC, pings) and four attacks by the on-link attacker a1 (thc-ipv6's
fake_router6 and fake_advertise6, ipv6toolkit's scan6 sweeping the LAN's /64 through
r1, and thc-ipv6's flood_advertise6 bounded in time and rate), each with the
alerts it must raise, watched as the sensor's output file grows; then SIGTERM, teardown,
and a ``v6sentry replay`` of the tcpdump capture to compare alert identities. It also
measures what a deployment needs sizing: alert latency, the sensor's RSS and CPU time,
and packets per second. CLI (prints the run as JSON)::

    python -m tests.netlab_live run [OUTDIR]

It does not judge the outcome (``tests/test_live_lab.py`` does), implement the sensor
(``detectors/live``) or define the base topology, radvd, tools under ``timeout`` and
teardown of processes (``tests/netlab.py``, reused through ``Lab``). Namespaces are
``v6l-<pid>-<n>-<node>``, apart from netlab's ``v6s-`` so a concurrent attack-tool run
never sees them; those of crashed runs are removed on the next run. Nothing is routed
out of the lab and only documentation addresses (2001:db8::/32) are used. Needs root,
iproute2 with tc, setpriv, tcpdump, radvd, thc-ipv6, ipv6toolkit and Linux 6.3+
(PR_SET_MDWE).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from tests import netlab
from tests.netlab import A1, H1, H2, R1, Lab, NodeSpec

ROOT: Final = Path(__file__).resolve().parents[1]
POLICY: Final = Path(__file__).with_name("netlab_policy.yaml")
LIVE_PREFIX: Final = "v6l-"
SPAN_SWITCH_END: Final = "mon0"  # in the switch namespace, on no bridge
SPAN_IFACE: Final = "span0"  # in the sensor namespace: what the sensor reads
SENSOR_CAPS: Final = "net_raw,net_admin"
# The sensor's user: nobody (65534) owns no file and holds no other privilege.
SENSOR_UID: Final = 65534
SENSOR_GID: Final = 65534
SENSOR_NAME: Final = "lab-span"
# ``v6sentry live`` as the console script runs it, by module: the script's shebang names
# the venv's interpreter, which the sensor's user may not be able to reach.
SENSOR_ENTRY: tuple[str, ...] = ("-m", "detectors.cli", "live")
# The unit's suggested filter; the lab sends only IPv6, so the sensor and tcpdump (no
# filter) still see the same frames. It also runs libpcap (ctypes) under MDWE.
SENSOR_BPF: Final = "ip6 or ip proto 41 or udp"
CAPTURE_BUFFER_KIB: Final = 32768  # tcpdump's, the same as the sensor's default
STATS_INTERVAL: Final = 2.0  # seconds between the sensor's stats lines
READY_TIMEOUT: Final = 20.0  # the sensor's interpreter start and imports, on a busy machine
TOOLS: Final = (
    "setpriv",
    "atk6-fake_router6",
    "atk6-fake_advertise6",
    "scan6",
    "atk6-flood_advertise6",
)

# a1 with a global address, so its scan has a source /64 like any scanning host.
A1_GLOBAL: Final = "2001:db8:1::a:1"
ATTACKER: Final = NodeSpec(A1.name, A1.mac, A1.link_local, "attacker", addresses=(A1_GLOBAL,))
LEGIT_MACS: Final = frozenset(n.mac for n in (R1, H1, H2))
# The NA flood's egress limit: ~1400 NAs/s of 86 bytes, past max_na_per_window (1000
# per 10 s) in one second, yet slow enough that tcpdump and the sensor see every frame
# (the point is comparing them, not a drop test). Unsolicited NAs for unknown addresses
# create no neighbour entries, unlike an RA flood, so the shared table stays untouched.
NA_FLOOD_TBF: Final = "tbf rate 1mbit burst 3000 limit 6000"
NA_FLOOD_SECONDS: Final = 2.5  # past 1000 NAs on either side of any window boundary
# Flood detections alert when their 10 s packet-time window closes: the budget of the
# last attack, from its start.
FLOOD_DEADLINE: Final = 16.0
ATTACK_DEADLINE: Final = 6.0  # immediate detections, from the attack's start
# a1 sweeps the LAN's low-byte addresses (2001:db8:1::0 upwards) at ~50 probes/s;
# scan6 sends them to its router, r1, which forwards each back onto the LAN and
# solicits the target first: r1's NS storm. Every target costs an entry in the
# kernel-wide neighbour table, so the time is short, r1's dead entries are swept and
# netlab's watchdog stops the tool at its budget.
SCAN: Final = (*netlab.SCAN6, "--tgt-low-byte", *netlab.SCAN6_RATE)
SCAN_SECONDS: Final = 5.0
BENIGN_QUIET: Final = 1.5  # after the benign traffic, time for the sensor to catch up


# -- stale namespaces ---------------------------------------------------------------


def live_namespaces() -> list[str]:
    """Namespaces named like this module's (``v6l-<pid>-...``), from any run."""
    return [ns for ns in netlab.list_namespaces() if ns.startswith(LIVE_PREFIX)]


def _owner_gone(name: str) -> bool:
    owner = name[len(LIVE_PREFIX) :].split("-", 1)[0]
    # A live owner other than us is a concurrent run: leave its lab alone.
    return not (owner.isdigit() and int(owner) != os.getpid() and netlab._alive(int(owner)))


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces and work dirs of crashed runs (their pid is gone); return them."""
    removed = [ns for ns in live_namespaces() if _owner_gone(ns)]
    for ns in removed:
        netlab._delete_namespace(ns)
    for workdir in Path(tempfile.gettempdir()).glob(f"{LIVE_PREFIX}*"):
        owner = workdir.name[len(LIVE_PREFIX) :].split("-", 1)[0]
        # Our own work dirs are in use (the caller made them), whatever state they are in.
        mine = owner == str(os.getpid())
        if owner.isdigit() and not mine and workdir.is_dir() and _owner_gone(workdir.name):
            shutil.rmtree(workdir, ignore_errors=True)
    return removed


def lab_problems() -> list[str]:
    """Why the lab cannot run here; [] if it can."""
    problems = netlab.lab_problems(TOOLS)
    mdwe = subprocess.run([sys.executable, "-c", _MDWE, "true"], capture_output=True, text=True)
    if mdwe.returncode != 0:
        problems.append(f"no MemoryDenyWriteExecute here: {mdwe.stderr.strip()}")
    return problems


def processes_in(netns_inodes: Sequence[int]) -> list[str]:
    """Processes whose network namespace is one of ``netns_inodes``: ``pid cmdline`` each.

    A deleted namespace lives on while a process holds it; this finds such leftovers
    by the namespace's inode, whatever the process is called.
    """
    wanted = {f"net:[{ino}]" for ino in netns_inodes}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(proc / "ns" / "net") in wanted:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name} {cmd.strip()}")
    return found


# -- the lab ------------------------------------------------------------------------


class SpanLab(Lab):
    """``netlab.Lab`` with ``v6l-`` names, a sensor namespace and a SPAN port.

    Only the LAN is built (no WAN). Every LAN port of the switch mirrors its ingress,
    i.e. every frame a node sends, to ``mon0``; its veth peer ``span0`` is the
    sensor's interface. Frames the sensor namespace might send into ``span0`` reach
    ``mon0``, which is on no bridge: the span port is receive-only, as on a switch.
    """

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, workdir / "unused-br0.pcap")
        self.pcaps = {}  # the capture is on the span port (start_span_capture), not br0
        self.tag = f"{LIVE_PREFIX}{os.getpid()}-{next(netlab._LAB_IDS)}"
        self.switch = f"{self.tag}-sw"
        self.netns_inodes: list[int] = []  # of every namespace made, for leftover checks
        self.mirrored: list[str] = []  # switch ports whose ingress is mirrored

    def _new_namespace(self, name: str) -> str:
        ns = super()._new_namespace(name)
        self.netns_inodes.append(os.stat(f"/run/netns/{ns}").st_ino)
        return ns

    def add_node(self, spec: NodeSpec, ifname: str = "eth0") -> None:
        """``Lab.add_node``, and mirror the node's LAN port to the span port."""
        super().add_node(spec, ifname)
        port = f"{spec.segment[0]}-{spec.name}"
        if spec.segment == "lan" and port not in self.mirrored:
            self._mirror(port)

    def add_span(self) -> None:
        """The sensor namespace and the span veth; call before ``add_node``."""
        self._build_switch()
        ns = self._new_namespace("sensor")
        self.nodes["sensor"] = ns
        # The sensor must never speak on the LAN: IPv6 off for every interface born here
        # (no link-local, no DAD, no MLD), and IPv4 gets no address.
        self.sysctl(
            "sensor",
            {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1},
        )
        veth = f"link add {SPAN_SWITCH_END} type veth peer name {SPAN_IFACE} netns {ns}"
        netlab._ip("-n", self.switch, *veth.split())
        netlab._ip("-n", self.switch, "link", "set", SPAN_SWITCH_END, "up")
        # Promiscuous, as on a real span port: mirrored frames carry other hosts' MACs.
        netlab._ip("-n", ns, "link", "set", SPAN_IFACE, "promisc", "on", "up")

    def _mirror(self, port: str) -> None:
        """Copy every frame entering ``port`` (sent by its node) out of ``mon0``.

        Ingress only: each frame enters the bridge through exactly one port, so the
        span sees it exactly once (mirroring egress too would duplicate it per port).
        ``u32 match u32 0 0`` matches everything (this kernel has no ``matchall``).
        """
        self.sh("sw", "tc", "qdisc", "add", "dev", port, "clsact")
        filt = f"filter add dev {port} ingress protocol all u32 match u32 0 0"
        self.sh("sw", "tc", *filt.split(), "action", "mirred", "egress", "mirror", "dev", "mon0")
        self.mirrored.append(port)

    def mirror_counts(self) -> dict[str, int]:
        """Frames each mirror action copied, by port (from ``tc -s``)."""
        counts = {}
        for port in self.mirrored:
            out = self.sh("sw", "tc", "-s", "filter", "show", "dev", port, "ingress").stdout
            sent = re.findall(r"Sent \d+ bytes (\d+) pkt", out)
            counts[port] = int(sent[0]) if sent else -1
        return counts

    def ifindex(self, node: str, ifname: str) -> int:
        out = netlab._ip("-j", "-n", self._namespace(node), "link", "show", ifname).stdout
        return int(json.loads(out)[0]["ifindex"])

    def span_counters(self) -> dict[str, int]:
        """span0's kernel receive counters (packets, dropped)."""
        out = netlab._ip("-j", "-s", "-n", self.nodes["sensor"], "link", "show", SPAN_IFACE).stdout
        rx = json.loads(out)[0]["stats64"]["rx"]
        return {"packets": int(rx["packets"]), "dropped": int(rx["dropped"])}

    def start_span_capture(self, pcap: Path) -> None:
        """tcpdump on span0 in the sensor namespace, nanosecond timestamps, every frame."""
        self.pcaps = {netlab.SPAN: pcap}
        log = self.workdir / f"tcpdump-{netlab.SPAN}.log"
        # Nanoseconds: alert ids hash the first packet's time, so the replay needs the
        # same timestamps the live sensor got from the kernel, to the nanosecond.
        argv = ["tcpdump", "-i", SPAN_IFACE, "-s", "0", "-U", "--immediate-mode", "-n"]
        argv += ["--time-stamp-precision=nano", "-Z", "root", "-c", str(netlab.CAPTURE_CAP)]
        argv += ["-B", str(CAPTURE_BUFFER_KIB)]  # the default 2 MiB dropped frames in the flood
        proc = self.spawn("sensor", [*argv, "-w", str(pcap)], log.name)
        self.captures[netlab.SPAN] = proc
        deadline = time.monotonic() + 10
        while "listening on" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {log.read_text(errors='replace')}")
            time.sleep(0.02)


# -- the sensor ---------------------------------------------------------------------


def sensor_python(uid: int = SENSOR_UID, gid: int = SENSOR_GID) -> tuple[str, str]:
    """An interpreter the sensor's user can run, and the PYTHONPATH it needs.

    The venv's own interpreter first; when the user cannot reach it (here it lives under
    root's 0700 home), a system interpreter of the same version with the repo and the
    venv's site-packages on PYTHONPATH (same minor version: same ABI for compiled
    extensions). Each candidate is tried as that user, importing the sensor's packages.
    """
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    pythonpath = f"{ROOT}:{site / 'site-packages'}"
    candidates = [Path(sys.prefix) / "bin" / "python"]
    if found := shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}"):
        candidates.append(Path(found))
    tried = []
    for python in candidates:
        argv = [*_drop_privileges(uid, gid, pythonpath), str(python), "-c", "import detectors.cli"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode == 0:
            return str(python), pythonpath
        tried.append(f"{python}: {proc.stderr.strip().splitlines()[-1:]}")
    raise RuntimeError(f"no interpreter usable by uid {uid}: {'; '.join(tried)}")


def _drop_privileges(uid: int, gid: int, pythonpath: str) -> list[str]:
    """The wrapper that runs a command as ``uid`` with only the sensor's capabilities.

    Like the systemd unit: a clean environment, no supplementary groups, CAP_NET_RAW and
    CAP_NET_ADMIN as the only inheritable, ambient and bounding capabilities,
    no_new_privs (NoNewPrivileges=yes), so nothing the sensor executes can gain more,
    and no writable-and-executable memory (MemoryDenyWriteExecute=yes, see ``_MDWE``).
    """
    caps = f"-all,+{SENSOR_CAPS.replace(',', ',+')}"
    env = ["env", "-i", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", f"PYTHONPATH={pythonpath}"]
    mdwe = [sys.executable, "-c", _MDWE]
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    setpriv += [f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}"]
    return [*env, *mdwe, *setpriv, "--no-new-privs"]


# Run as `python -c _MDWE COMMAND...`: PR_SET_MDWE (Linux 6.3+, what systemd's
# MemoryDenyWriteExecute=yes uses where the kernel has it), which the kernel keeps
# across fork and execve, then exec COMMAND. The sensor then cannot map memory both
# writable and executable, or make writable memory executable: the unit's setting,
# tested here.
_MDWE: Final = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(f"PR_SET_MDWE: {os.strerror(ctypes.get_errno())}")
os.execvp(sys.argv[1], sys.argv[1:])
"""


@dataclass
class Sample:
    """One look at the sensor process."""

    t: float  # seconds since the sensor started
    rss_kib: int
    cpu_s: float


class Sensor:
    """``v6sentry live`` in the sensor namespace, as an unprivileged user, and its output."""

    def __init__(self, lab: SpanLab, out: Path, policy: Path, extra: Sequence[str] = ()) -> None:
        self.lab = lab
        self.out = out
        self.log = lab.workdir / "sensor.log"
        python, pythonpath = sensor_python()
        live = [*SENSOR_ENTRY, "-i", SPAN_IFACE, "--policy", str(policy)]
        live += ["-o", str(out), "--format", "eve", "--sensor-name", SENSOR_NAME]
        live += ["--stats-interval", f"{STATS_INTERVAL:g}", "--bpf", SENSOR_BPF, *extra]
        self.argv = [python, *live]
        wrapper = _drop_privileges(SENSOR_UID, SENSOR_GID, pythonpath)
        self.started = time.monotonic()
        self.proc = lab.spawn("sensor", [*wrapper, *self.argv], self.log.name)
        self.samples: list[Sample] = []
        self.tail = AlertTail(out)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until the sensor holds a packet socket bound to span0; seconds it took.

        Read from the kernel (``/proc/<pid>/net/packet`` lists the packet sockets of the
        pid's namespace, matched to the pid's own descriptors), so it does not depend on
        what the sensor logs. Frames arriving after that are queued for it.
        """
        ifindex = self.lab.ifindex("sensor", SPAN_IFACE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sensor exited {self.proc.returncode}: {self.stderr()}")
            if self._bound_to(ifindex):
                self.tail.start()
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise RuntimeError(f"the sensor did not open {SPAN_IFACE} in {timeout}s: {self.stderr()}")

    def _bound_to(self, ifindex: int) -> bool:
        fds = Path(f"/proc/{self.pid}/fd")
        inodes = set()
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    if (link := os.readlink(fd)).startswith("socket:["):
                        inodes.add(link[8:-1])
        try:
            lines = Path(f"/proc/{self.pid}/net/packet").read_text().splitlines()[1:]
        except OSError:
            return False
        # sk RefCnt Type Proto Iface R Rmem User Inode
        return any(
            int(cols[4]) == ifindex and cols[8] in inodes
            for cols in (line.split() for line in lines)
            if len(cols) >= 9
        )

    def sample(self) -> Sample | None:
        """RSS and CPU time now; None once the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        found = re.search(r"VmRSS:\s+(\d+)", status)
        rss = int(found.group(1)) if found else 0
        fields = stat.rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        s = Sample(round(time.monotonic() - self.started, 3), rss, cpu)
        self.samples.append(s)
        return s

    def status(self) -> dict[str, str]:
        """The process's credentials as the kernel has them (/proc/<pid>/status)."""
        keep = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in (*keep, "NoNewPrivs"):
                out[key] = " ".join(value.split())
        return out

    def peak_rss_kib(self) -> int:
        """VmHWM: the highest RSS the process reached so far."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+)", status)
        return int(found.group(1)) if found else 0

    def stop(self, grace: float = 15.0) -> int:
        """SIGTERM (the sensor flushes and exits 0), SIGKILL after ``grace``; the exit code."""
        code = self.lab._stop(self.proc, signal.SIGTERM, grace)
        self.tail.stop()
        return code


@dataclass
class Arrival:
    """One alert line as it appeared in the sensor's output."""

    wall: float  # time.time() when the reader first saw the line
    alert: dict[str, Any]


class AlertTail:
    """Follows a JSON-lines file as it grows, stamping every record with when it appeared."""

    POLL: Final = 0.02

    def __init__(self, path: Path) -> None:
        self.path = path
        self.arrivals: list[Arrival] = []
        self.errors: list[str] = []  # lines that were not JSON
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-tail", daemon=True)
        self._offset = 0
        self._partial = b""

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        """Stop following, after reading whatever the file holds now."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._read()

    def _run(self) -> None:
        while not self._stop.wait(self.POLL):
            self._read()

    def _read(self) -> None:
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except FileNotFoundError:
                return
            now = time.time()
            self._offset += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    self.arrivals.append(Arrival(now, json.loads(line)))
                except ValueError:
                    self.errors.append(line.decode(errors="replace")[:200])

    def since(self, wall: float) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.wall >= wall]

    def all(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)


# -- attacks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """Who an alert must name: its Ethernet source and one of its IPv6 sources.

    ``mac=None``: the tool randomises it, so only "not a legitimate node's MAC" holds.
    ``mac_optional``: the alert may carry no ``ether`` at all (a sweep aggregates many
    frames and names only the source address); if it has one, it must be ``mac``.
    """

    mac: str | None
    ips: frozenset[str] = frozenset()
    mac_optional: bool = False


RANDOM: Final = Sender(None)


@dataclass(frozen=True)
class Attack:
    """One attack by a1 and the alerts it must raise on the live sensor.

    ``expect``: signature id -> the sender its alert names; every one must arrive within
    ``deadline`` seconds of the attack's start. ``at_exit``: the same for alerts raised
    when a window longer than the test closes: they must come with the final flush
    after SIGTERM (and so prove it happens).
    """

    name: str
    run: Callable[[SpanLab], None]
    expect: dict[int, Sender]
    deadline: float
    command: str
    at_exit: dict[int, Sender] = field(default_factory=dict)

    @property
    def sids(self) -> frozenset[int]:
        return frozenset(self.expect)


def _fake_router(lab: SpanLab) -> None:
    lab.run_tool("a1", ["atk6-fake_router6", "eth0", "2001:db8:bad::/64"], 2)


def _fake_advertise(lab: SpanLab) -> None:
    argv = ["atk6-fake_advertise6", "-n", "2", "-w", "1", "eth0"]
    runs = [lab.start_tool("a1", [*argv, addr], 3) for addr in (R1.link_local, "2001:db8:1::1")]
    for run in runs:
        lab.finish(run)


def _scan(lab: SpanLab) -> None:
    lab.sweep_neighbours("r1")
    lab.run_tool("a1", SCAN, SCAN_SECONDS, netlab.NEIGHBOUR_BUDGET)
    time.sleep(netlab.SOLICIT_TAIL)  # r1's NS for the last targets, then its errors


def _na_flood(lab: SpanLab) -> None:
    lab.limit_egress("a1", NA_FLOOD_TBF)
    lab.run_tool("a1", ["atk6-flood_advertise6", "eth0"], NA_FLOOD_SECONDS)


A1_SENDS: Final = Sender(A1.mac, frozenset({A1.link_local}))
ATTACKS: Final = (
    Attack(
        "fake_router6",
        _fake_router,
        {1000101: A1_SENDS},  # unknown_router
        ATTACK_DEADLINE,
        "atk6-fake_router6 eth0 2001:db8:bad::/64 (2 s)",
    ),
    Attack(
        "fake_advertise6",
        _fake_advertise,
        # router_address_claim: a1's MAC with the router's own (spoofed) address
        {1000221: Sender(A1.mac, frozenset({R1.link_local}))},
        ATTACK_DEADLINE,
        "atk6-fake_advertise6 -n 2 -w 1 eth0 fe80::1 and ... 2001:db8:1::1 (at once, 3 s)",
    ),
    Attack(
        "scan6",
        _scan,
        {1000401: Sender(A1.mac, frozenset({A1_GLOBAL}), mac_optional=True)},  # host_sweep
        SCAN_SECONDS + netlab.SOLICIT_TAIL + ATTACK_DEADLINE,
        f"{' '.join(SCAN)} ({SCAN_SECONDS:g} s)",
        # unresolved_targets: r1 soliciting every address a1 probed. Its window is 60 s,
        # longer than the whole test, so it is reported at exit.
        at_exit={1000201: Sender(R1.mac, frozenset({R1.link_local, "2001:db8:1::1"}))},
    ),
    Attack(
        "flood_advertise6",
        _na_flood,
        {1000212: RANDOM, 1000213: RANDOM},  # na_flood, new_sources
        FLOOD_DEADLINE,
        f"tc qdisc add dev eth0 root {NA_FLOOD_TBF}; atk6-flood_advertise6 eth0 "
        f"({NA_FLOOD_SECONDS:g} s)",
    ),
)


@dataclass
class AttackResult:
    """What the sensor said about one attack, and how fast."""

    name: str
    command: str
    started: float  # wall clock
    ended: float
    missing: list[int]  # expected sids that did not arrive in time
    latency_s: dict[int, float]  # sid -> seconds from the attack's start to the alert
    packet_to_alert_s: dict[int, float]  # sid -> from the alert's packet time to arrival
    wrong_sender: list[str]  # expected alerts that name someone else
    tool_exit: list[int | None]
    at_exit_missing: list[int] = field(default_factory=list)  # not in the final flush


@dataclass
class LiveRun:
    """Everything one run of the lab measured, for the test to judge and the CLI to print."""

    workdir: str
    sensor_argv: list[str] = field(default_factory=list)
    ready_s: float = 0.0
    sensor_status: dict[str, str] = field(default_factory=dict)  # Uid, Cap*, NoNewPrivs
    benign_alerts: list[dict[str, Any]] = field(default_factory=list)
    benign_window: tuple[float, float] = (0.0, 0.0)
    attacks: list[AttackResult] = field(default_factory=list)
    sensor_exit: int | None = None
    stop_s: float = 0.0  # SIGTERM to exit
    sensor_stderr: str = ""
    live_alerts: list[dict[str, Any]] = field(default_factory=list)
    late_alerts: int = 0  # alerts written at shutdown (the final flush)
    bad_lines: list[str] = field(default_factory=list)
    replay_alerts: list[dict[str, Any]] = field(default_factory=list)
    replay_error: str = ""
    replay_stats: dict[str, Any] = field(default_factory=dict)
    tcpdump_stats: str = ""
    span_counters: dict[str, int] = field(default_factory=dict)
    mirror_counts: dict[str, int] = field(default_factory=dict)
    capture_packets: int = 0
    samples: list[Sample] = field(default_factory=list)
    peak_rss_kib: int = 0
    sensor_cpu_s: float = 0.0
    sensor_wall_s: float = 0.0
    namespaces_left: list[str] = field(default_factory=list)
    processes_left: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def _replay(pcap: Path, policy: Path, out: Path, stats: Path) -> tuple[list[Any], str]:
    argv = [sys.executable, "-m", "detectors.cli", "replay", "--policy", str(policy)]
    argv += ["--format", "eve", "--sensor-name", SENSOR_NAME, "-q", "-o", str(out)]
    argv += ["--stats-json", str(stats), str(pcap)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return [], f"replay exit code {proc.returncode}: {proc.stderr.strip()}"
    lines = out.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()], ""


def packet_time(alert: dict[str, Any]) -> float:
    """The alert's EVE timestamp (packet time) as epoch seconds."""
    from datetime import datetime

    return datetime.strptime(alert["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _watch(sensor: Sensor, attack: Attack, started: float) -> AttackResult:
    """Wait for the attack's sids (up to its deadline from ``started``) and judge them."""
    first: dict[int, Arrival] = {}
    deadline = started + attack.deadline
    while True:
        for arr in sensor.tail.since(started):
            sid = arr.alert["alert"]["signature_id"]
            if sid in attack.sids and sid not in first:
                first[sid] = arr
        if set(first) == attack.sids or time.time() > deadline:
            break
        if sensor.proc.poll() is not None:
            break
        time.sleep(0.05)
    wrong = [w for sid, arr in sorted(first.items()) for w in _wrong(sid, arr, attack.expect)]
    return AttackResult(
        attack.name,
        attack.command,
        started,
        0.0,
        sorted(attack.sids - set(first)),
        {sid: round(arr.wall - started, 3) for sid, arr in sorted(first.items())},
        {sid: round(arr.wall - packet_time(arr.alert), 3) for sid, arr in sorted(first.items())},
        wrong,
        [],
    )


def _wrong(sid: int, arr: Arrival, expect: dict[int, Sender]) -> list[str]:
    """How the alert's sender differs from the expected one, one line each; [] if not."""
    mac = arr.alert.get("ether", {}).get("src_mac")
    src = arr.alert.get("src_ip")
    want = expect[sid]
    if want.mac is None:
        return [f"{sid}: src_mac {mac} is a legitimate node's"] if mac in LEGIT_MACS else []
    out = []
    if mac != want.mac and not (mac is None and want.mac_optional):
        out.append(f"{sid}: src_mac {mac}, want {want.mac}")
    ip = str(ipaddress.IPv6Address(src)) if src else ""
    if ip not in want.ips:
        out.append(f"{sid}: src_ip {src}, want one of {sorted(want.ips)}")
    return out


def _judge_exit(result: AttackResult, attack: Attack, flushed: Sequence[Arrival]) -> None:
    """The attack's ``at_exit`` alerts must be among those the final flush wrote."""
    seen: dict[int, Arrival] = {}
    for arr in flushed:
        sid = arr.alert["alert"]["signature_id"]
        if sid in attack.at_exit:
            seen.setdefault(sid, arr)
    result.at_exit_missing = sorted(set(attack.at_exit) - set(seen))
    result.wrong_sender += [
        w for sid, arr in seen.items() for w in _wrong(sid, arr, attack.at_exit)
    ]


def _benign(lab: SpanLab) -> None:
    """radvd on r1 (the policy's router), SLAAC on h1 and h2, pings between everyone."""
    lab.add_addresses()
    lab.start_radvd("r1")
    for host in (H1, H2):
        lab.wait_address(host.name, host.link_local)
        lab.wait_address(host.name, netlab.slaac_address(host.mac))
    netlab._must_ping(lab, netlab.HOST_PINGS)
    # a1 is on the LAN too, quiet and honest for now: it talks to h1 like anyone.
    netlab._must_ping(lab, [("a1", netlab.H1_GLOBAL), ("h2", A1_GLOBAL)])


def run_live_lab(workdir: Path, policy: Path = POLICY) -> LiveRun:
    """Build the span lab, run the sensor through the benign phase and the attacks, stop
    it, tear everything down and replay the span capture; never raises for the run's
    own failures (they go to ``LiveRun.error``)."""
    start = time.monotonic()
    result = LiveRun(str(workdir))
    remove_stale_namespaces()
    # The sensor's user must reach its output directory and nothing else of ours.
    workdir.chmod(0o711)
    outdir = workdir / "sensor-out"
    outdir.mkdir()
    os.chown(outdir, SENSOR_UID, SENSOR_GID)
    out = outdir / "alerts.eve.jsonl"
    pcap = workdir / "span.pcap"
    lab = SpanLab(workdir)
    sensor: Sensor | None = None
    try:
        with lab:
            lab.add_span()
            for spec in (R1, H1, H2, ATTACKER):
                lab.add_node(spec)
            lab.start_span_capture(pcap)
            sensor = Sensor(lab, out, policy)
            result.sensor_argv = sensor.argv
            result.ready_s = round(sensor.wait_ready(), 3)
            result.sensor_status = sensor.status()
            sensor.sample()

            benign_start = time.time()
            _benign(lab)
            time.sleep(BENIGN_QUIET)
            result.benign_window = (benign_start, time.time())
            result.benign_alerts = [a.alert for a in sensor.tail.since(0)]
            sensor.sample()

            for attack in ATTACKS:
                runs_before = len(lab.tool_runs)
                started = time.time()
                attack.run(lab)
                ended = time.time()
                res = _watch(sensor, attack, started)
                res.ended = ended
                res.tool_exit = [run.returncode for run in lab.tool_runs[runs_before:]]
                result.attacks.append(res)
                sensor.sample()

            time.sleep(0.3)  # the last mirrored frames
            result.peak_rss_kib = sensor.peak_rss_kib()
            last = sensor.sample()
            before_stop = len(sensor.tail.all())
            t0 = time.monotonic()
            result.sensor_exit = sensor.stop()
            result.stop_s = round(time.monotonic() - t0, 3)
            result.sensor_cpu_s = last.cpu_s if last else 0.0
            result.sensor_wall_s = round(time.monotonic() - sensor.started, 3)
            arrivals = sensor.tail.all()
            result.live_alerts = [a.alert for a in arrivals]
            result.late_alerts = len(arrivals) - before_stop
            for res, attack in zip(result.attacks, ATTACKS, strict=False):
                _judge_exit(res, attack, arrivals[before_stop:])
            result.bad_lines = sensor.tail.errors
            result.sensor_stderr = sensor.stderr()
            result.span_counters = lab.span_counters()
            result.mirror_counts = lab.mirror_counts()
            lab.stop_capture()
            result.tcpdump_stats = lab.capture_stats.get(netlab.SPAN, "")
    except Exception as exc:  # judged by the caller, after the teardown below
        result.error = f"{type(exc).__name__}: {exc}"
        if sensor is not None:
            result.sensor_stderr = sensor.stderr()
            result.live_alerts = result.live_alerts or [a.alert for a in sensor.tail.all()]
    finally:
        lab.close()
        if sensor is not None:
            sensor.tail.stop()
            result.samples = sensor.samples
    result.namespaces_left = [ns for ns in live_namespaces() if ns.startswith(lab.tag + "-")]
    result.processes_left = processes_in(lab.netns_inodes)
    if pcap.exists():
        result.capture_packets = sum(1 for _ in netlab.read_frames(pcap))
        stats = workdir / "replay-stats.json"
        result.replay_alerts, result.replay_error = _replay(
            pcap, policy, workdir / "replay.eve.jsonl", stats
        )
        if stats.exists():
            result.replay_stats = json.loads(stats.read_text())
    result.seconds = round(time.monotonic() - start, 3)
    return result


def identities(alerts: Sequence[dict[str, Any]]) -> set[tuple[int, str, str]]:
    """(sid, identifier, alert id) of every alert."""
    return {
        (a["alert"]["signature_id"], a["v6sentry"]["identifier"], a["v6sentry"]["alert_id"])
        for a in alerts
    }


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.netlab_live")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the span lab once and print what it measured")
    run.add_argument("outdir", nargs="?", type=Path, help="keep the work dir here")
    args = parser.parse_args(argv)
    problems = lab_problems()
    if problems:
        print(f"netlab_live: cannot run: {'; '.join(problems)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.outdir is not None:
        args.outdir.mkdir(parents=True, exist_ok=False)
        res = run_live_lab(args.outdir)
    else:
        with tempfile.TemporaryDirectory(prefix=f"{LIVE_PREFIX}{os.getpid()}-") as tmp:
            res = run_live_lab(Path(tmp))
    out = asdict(res)
    out["live_alerts"] = len(res.live_alerts)
    out["replay_alerts"] = len(res.replay_alerts)
    out["live_only"] = sorted(identities(res.live_alerts) - identities(res.replay_alerts))
    out["replay_only"] = sorted(identities(res.replay_alerts) - identities(res.live_alerts))
    print(json.dumps(out, indent=2, default=str))
    return 1 if res.error else 0


if __name__ == "__main__":
    sys.exit(_main())
