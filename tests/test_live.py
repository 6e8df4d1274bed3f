"""``v6sentry live`` on real sockets, in network namespaces made and removed here.

Owns the behaviour tests of the live mode: alerts within seconds of the frame,
the same alert ids as a replay of the same traffic, windows closed by the timer
on a quiet link, SIGHUP (good and bad policy, output reopened after a rename),
SIGTERM (flushed, exit 0, nothing left running), kernel drops in the stats line,
the BPF filter, interfaces going down and up and being deleted and recreated,
running unprivileged with and without CAP_NET_RAW/CAP_NET_ADMIN, ``--workers``;
and the native TPACKET_V3 ring itself, read by a probe in the namespace: the
same bytes, VLAN tags and nanosecond timestamps as tcpdump on the same veth,
BPF, kernel drops when it is too small, and PACKET_FANOUT splitting flows.

Every test gets its own namespace ``v6s-<pid>-lv<n>`` (the ``v6s-<pid>-`` form
that ``tests/netlab.py`` leaves alone while this process lives) with a veth pair
``cap0``/``snd0``: v6sentry captures on cap0, frames built with
``pcaps/generate.py`` are sent from snd0 by a raw socket inside the namespace.
IPv6 is disabled on the veths so only the test's frames are on the wire; only
documentation and link-local addresses and 02:00:00 MACs are used, and nothing
leaves the namespace, which is deleted in a fixture's ``finally``. Runs the
live mode as ``python -m detectors.cli live``, the ``v6sentry live`` command.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from detectors.capture import open_capture
from detectors.cli import main as v6sentry_main
from pcaps.generate import R1_MAC, a6, lan, mac, rogue_ra, router_ra
from tests.es_node import EsNode

pytestmark = pytest.mark.netlab

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "pcaps" / "policy.yaml"
# Without a policy the first learn_window_s of routers would be learned, rogue or not.
POLICY_ARGS = ("--policy", str(POLICY))
_IDS = itertools.count()

if os.geteuid() != 0 or shutil.which("ip") is None:  # pragma: no cover - CI runs as root
    pytest.skip("needs root and iproute2 (network namespaces)", allow_module_level=True)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _add_veth(ns: str, cap: str = "cap0", snd: str = "snd0") -> None:
    _ip("-n", ns, "link", "add", cap, "type", "veth", "peer", "name", snd)
    for dev in (cap, snd):
        _ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        _ip("-n", ns, "link", "set", dev, "up")


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"v6s-{os.getpid()}-lv{next(_IDS)}"
    _ip("netns", "add", name)
    try:
        _add_veth(name)
        yield name
    finally:
        pids = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def rogue(n: int) -> bytes:
    """A rogue RA from router fe80::bad:n with MAC 02:00:00:00:66:n (one identity per n)."""
    m = mac(f"02:00:00:00:66:{n:02x}")
    return lan(rogue_ra(a6(f"fe80::bad:{n:x}"), m), m)


def send(ns: str, frames: Sequence[bytes], dev: str = "snd0", repeat: int = 1) -> None:
    """Send ``frames`` (``repeat`` times over) from ``dev`` with a raw socket in ``ns``."""
    code = (
        "import socket, sys\n"
        "frames = [bytes.fromhex(x) for x in sys.stdin.read().split()]\n"
        "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)\n"
        f"s.bind(({dev!r}, 0))\n"
        f"for _ in range({repeat}):\n"
        "    for f in frames:\n"
        "        try:\n"
        "            s.send(f)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code],
        input=" ".join(f.hex() for f in frames),
        text=True,
        check=True,
        timeout=60,
    )


class Live:
    """One ``v6sentry live`` process (``python -m detectors.cli live``) in a namespace."""

    def __init__(
        self, ns: str | None, args: Sequence[str], prefix: Sequence[str] = (), cwd: Path = REPO
    ) -> None:
        argv = [*prefix, sys.executable, "-m", "detectors.cli", "live", *args]
        self.proc = subprocess.Popen(
            argv if ns is None else ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._new: queue.Queue[None] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            self._new.put(None)

    def wait_for(self, what: Callable[[], Any], timeout: float, describe: str) -> Any:
        end = time.monotonic() + timeout
        while True:
            got = what()
            if got:
                return got
            left = end - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self._new.empty()):
                raise AssertionError(
                    f"no {describe} within {timeout} s; stderr:\n" + "\n".join(self.err)
                )
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=min(left, 0.1))

    def started(self) -> None:
        self.wait_for(lambda: any("capturing on" in e for e in self.err), 10, "start line")

    def log(self, text: str, timeout: float = 10) -> str:
        found: str = self.wait_for(
            lambda: next((e for e in self.err if text in e), None), timeout, repr(text)
        )
        return found

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            # The namespace's process is `ip netns exec`, which execs into python.
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(5)
        return code


def _alerts_from(lines: Callable[[], list[dict[str, Any]]], src: str) -> Callable[[], Any]:
    return lambda: [a for a in lines() if _src(a) == src]


def _src(alert: dict[str, Any]) -> str | None:
    """EVE writes IPv6 in full, as Suricata does; tests name addresses short."""
    src = alert.get("src_ip")
    return None if src is None else ipaddress.ip_address(src).compressed


@pytest.fixture
def live_procs() -> Iterator[list[Live]]:
    procs: list[Live] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.stop(signal.SIGKILL)


@contextlib.contextmanager
def tcpdump_to(ns: str, pcap: Path) -> Iterator[None]:
    """tcpdump on cap0 into ``pcap`` (nanosecond stamps) while the block runs: the
    frames the sensor saw, to replay afterwards."""
    tcpdump = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "tcpdump",
            "-Z",
            "root",  # Debian's tcpdump otherwise runs as a user that cannot write tmp_path
            "-i",
            "cap0",
            "-U",
            "-w",
            str(pcap),
            "--time-stamp-precision=nano",
            "--immediate-mode",  # no buffered block left behind at SIGTERM
            "-B",
            "65536",  # KiB: a burst sent while the sensor takes the CPUs is kept whole
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tcpdump.stderr is not None
        assert "listening" in tcpdump.stderr.readline()
        yield
    finally:
        tcpdump.terminate()
        tcpdump.wait(10)


def _replay_ids(pcap: Path, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "replay.jsonl"
    assert v6sentry_main(["replay", "-q", "--policy", str(POLICY), "-o", str(out), str(pcap)]) == 0
    return [json.loads(x) for x in out.read_text().splitlines()]


def test_rogue_ra_alert_in_seconds_with_the_ids_of_a_replay(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    pcap = tmp_path / "same.pcap"
    with tcpdump_to(ns, pcap):
        live = Live(ns, ["-i", "cap0", "--policy", str(POLICY)])
        live_procs.append(live)
        live.started()
        sent = time.time()
        send(ns, [rogue(1)])
        got = live.wait_for(_alerts_from(live.alerts, "fe80::bad:1"), 2.0, "rogue RA alert")
        latency = time.time() - sent
        assert got[0]["alert"]["category"] == "ipv6.rogue_ra"
        assert got[0]["in_iface"] == "cap0"  # live: the interface the frame came in on
        assert latency < 2.0
        # Kernel timestamps are the realtime clock: the alert's time is the send time.
        ts = got[0]["timestamp"]
        alert_s = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert abs(alert_s - sent) < 2.0
        assert live.stop() == 0
    replayed = _replay_ids(pcap, tmp_path)
    assert [a["v6sentry"]["alert_id"] for a in replayed] == [
        a["v6sentry"]["alert_id"] for a in live.alerts()
    ]


def _flood_policy(tmp_path: Path, window_s: int) -> Path:
    path = tmp_path / "flood.yaml"
    text = POLICY.read_text().replace(
        "thresholds: {}",
        f"thresholds: {{ipv6.ra_flood: {{window_s: {window_s}, max_ras_per_window: 3}}}}",
    )
    path.write_text(text)
    return path


def test_quiet_link_closes_windows_on_the_timer(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    live = Live(ns, ["-i", "cap0", "--policy", str(_flood_policy(tmp_path, 1))])
    live_procs.append(live)
    live.started()
    # R1 is a policy router: only the flood (6 RAs in a 1 s window) is wrong.
    send(ns, [lan(router_ra(1), R1_MAC)], repeat=6)
    sent = time.monotonic()
    # No frame follows: only the wall-clock timer can close the window.
    flood = live.wait_for(
        lambda: [a for a in live.alerts() if a["alert"]["category"] == "ipv6.ra_flood"],
        4.0,
        "ra_flood alert after the window",
    )
    assert time.monotonic() - sent < 4.0
    assert flood[0]["v6sentry"]["ras"] == 6
    assert live.proc.poll() is None  # still running: not a flush at exit
    assert live.stop() == 0


def test_sigterm_flushes_open_windows_and_exits_0(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    live = Live(ns, ["-i", "cap0", "--policy", str(_flood_policy(tmp_path, 3600))])
    live_procs.append(live)
    live.started()
    send(ns, [lan(router_ra(1), R1_MAC)], repeat=6)
    time.sleep(1.0)
    assert not live.alerts()  # the hour-long window is open
    assert live.stop(signal.SIGTERM) == 0
    assert [a["alert"]["category"] for a in live.alerts()] == ["ipv6.ra_flood"]
    assert any("final stats" in e and "packets 6" in e for e in live.err), live.err
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    assert pids.strip() == ""


def test_sigint_exits_0_too(ns: str, live_procs: list[Live]) -> None:
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0"])
    live_procs.append(live)
    live.started()
    assert live.stop(signal.SIGINT) == 0
    assert not [e for e in live.err if "Traceback" in e]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_policy_keeps_old_on_error_and_reopens_output(
    ns: str, tmp_path: Path, live_procs: list[Live], workers: int
) -> None:
    """With ``--workers 2`` the parent judges: it reloads and logs once, and the new
    engine takes over what the workers had queued."""
    policy = tmp_path / "site.yaml"
    policy.write_text(POLICY.read_text())
    alerts = tmp_path / "alerts.json"
    live = Live(
        ns,
        ["-i", "cap0", "--policy", str(policy), "-o", str(alerts), "--workers", str(workers)],
    )
    live_procs.append(live)
    live.started()

    def written(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]

    send(ns, [rogue(1)])
    live.wait_for(lambda: written(alerts), 2.0, "alert in the output file")
    rotated = tmp_path / "alerts.json.1"
    alerts.rename(rotated)  # what logrotate does before its SIGHUP

    # A bad policy: the old one stays, the log names the file and line.
    lines = POLICY.read_text().splitlines()
    bad_line = next(i for i, x in enumerate(lines, 1) if "mac:" in x)
    lines[bad_line - 1] = '    mac: "not-a-mac"'
    policy.write_text("\n".join(lines) + "\n")
    live.proc.send_signal(signal.SIGHUP)
    error = live.log("policy reload failed")
    assert f"{policy}:{bad_line}" in error
    assert alerts.exists()  # reopened under the old name
    send(ns, [rogue(2)])  # the old policy still judges
    live.wait_for(
        _alerts_from(lambda: written(alerts), "fe80::bad:2"), 2.0, "alert with the old policy"
    )

    # A good policy that makes router 3 legitimate: a new engine judges by it.
    good = POLICY.read_text().replace(
        "prefixes:\n  monitored",
        '  - address: fe80::bad:3\n    mac: "02:00:00:00:66:03"\n    name: r3\n'
        "prefixes:\n  monitored",
    )
    policy.write_text(good)
    live.proc.send_signal(signal.SIGHUP)
    live.log("policy reloaded")
    send(ns, [rogue(3), rogue(4)])
    live.wait_for(_alerts_from(lambda: written(alerts), "fe80::bad:4"), 2.0, "marker alert")
    assert not [a for a in written(alerts) if _src(a) == "fe80::bad:3"]
    assert [_src(a) for a in written(rotated)] == ["fe80::bad:1"]
    assert live.stop() == 0
    assert len([e for e in live.err if "policy reloaded" in e]) == 1, live.err
    assert len([e for e in live.err if "policy reload failed" in e]) == 1, live.err


def test_kernel_drops_in_the_stats_line(ns: str, live_procs: list[Live]) -> None:
    live = Live(ns, ["-i", "cap0", "--buffer-mb", "1", "--stats-interval", "0.5"])
    live_procs.append(live)
    live.started()
    live.log("stats:", 5)
    # Stopped, the process reads nothing: the 1 MiB socket buffer overflows for sure.
    os.kill(_python_pid(ns), signal.SIGSTOP)
    try:
        send(ns, [lan(router_ra(1), R1_MAC)], repeat=20_000)
    finally:
        os.kill(_python_pid(ns), signal.SIGCONT)
    drops_line = live.wait_for(
        lambda: next((e for e in live.err if "stats:" in e and "kernel drops 0," not in e), None),
        5,
        "stats line with kernel drops",
    )
    drops = int(drops_line.split("kernel drops ")[1].split(",")[0])
    packets = int(drops_line.split("packets ")[1].split(",")[0])
    assert drops > 0 and packets > 0 and drops + packets <= 20_000 + 50
    assert live.stop() == 0


LEARNED = "policy none: routers learned from the first 600 s of traffic, not listed (see --policy)"


@pytest.mark.parametrize("workers", [1, 2])
def test_learning_run_says_so_at_start_and_in_every_stats_line(
    ns: str, live_procs: list[Live], workers: int
) -> None:
    live = Live(ns, ["-i", "cap0", "--stats-interval", "0.5", "--workers", str(workers)])
    live_procs.append(live)
    live.started()
    start = next(e for e in live.err if "capturing on" in e)
    assert start.endswith(f", {LEARNED}"), start
    warning = live.log("v6sentry: live: warning: routers are learned")
    assert "(no --policy given)" in warning and "--policy FILE" in warning
    assert live.log("stats:", 5).endswith(f"; {LEARNED}")
    assert live.stop() == 0
    assert next(e for e in live.err if "final stats" in e).endswith(f"; {LEARNED}")


def test_listed_policy_is_named_at_start_and_a_reload_to_learning_warns(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    policy = tmp_path / "site.yaml"
    policy.write_text(POLICY.read_text())
    live = Live(ns, ["-i", "cap0", "--policy", str(policy), "--stats-interval", "0.5"])
    live_procs.append(live)
    live.started()
    assert next(e for e in live.err if "capturing on" in e).endswith(
        f", policy {policy}: 2 routers listed"
    )
    assert "routers learned" not in live.log("stats:", 5)
    assert not [e for e in live.err if "warning" in e]
    # The routers key goes away: the new engine learns, and the log says so.
    policy.write_text("prefixes:\n  monitored: ['2001:db8:1::/64']\n")
    live.proc.send_signal(signal.SIGHUP)
    live.log("policy reloaded")
    warning = live.log("v6sentry: live: warning: routers are learned")
    assert f"({policy} has no 'routers' key)" in warning
    assert live.stop() == 0


def _python_pid(ns: str) -> int:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    found = [int(p) for p in pids.split()]
    assert len(found) == 1, found
    return found[0]


def test_bpf_filter_is_applied_in_the_kernel(ns: str, live_procs: list[Live]) -> None:
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0", "--bpf", "not ether src 02:00:00:00:66:01"])
    live_procs.append(live)
    live.started()
    send(ns, [rogue(1), rogue(1), rogue(2)])
    live.wait_for(_alerts_from(live.alerts, "fe80::bad:2"), 2.0, "alert for the unfiltered MAC")
    assert not _alerts_from(live.alerts, "fe80::bad:1")()
    assert live.stop() == 0
    final = next(e for e in live.err if "final stats" in e)
    assert "packets 1," in final


def test_bad_bpf_is_a_usage_error(ns: str) -> None:
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "detectors.cli",
            "live",
            "-i",
            "cap0",
            "--bpf",
            "ether src nonsense(",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("v6sentry: error: --bpf") and proc.stderr.count("\n") == 1


def test_interface_down_up_and_deleted_recreated(ns: str, live_procs: list[Live]) -> None:
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0"])
    live_procs.append(live)
    live.started()
    send(ns, [rogue(1)])
    live.wait_for(_alerts_from(live.alerts, "fe80::bad:1"), 2.0, "alert before")

    _ip("-n", ns, "link", "set", "cap0", "down")
    live.log("cap0: link down")
    _ip("-n", ns, "link", "set", "cap0", "up")
    live.log("cap0: link up")
    send(ns, [rogue(2)])
    live.wait_for(_alerts_from(live.alerts, "fe80::bad:2"), 3.0, "alert after down/up")

    _ip("-n", ns, "link", "del", "cap0")
    live.log("cap0: interface disappeared")
    time.sleep(1.0)  # gone for a while: the reopen is retried with backoff
    _add_veth(ns)
    live.log("cap0: capturing again", 15)
    send(ns, [rogue(3)])
    live.wait_for(_alerts_from(live.alerts, "fe80::bad:3"), 3.0, "alert after recreation")
    assert live.stop() == 0
    final = next(e for e in live.err if "final stats" in e)
    assert "cap0=up" in final


def test_two_interfaces_are_two_links(ns: str, live_procs: list[Live]) -> None:
    _add_veth(ns, "cap1", "snd1")
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0", "-i", "cap1"])
    live_procs.append(live)
    live.started()
    send(ns, [rogue(1)], "snd0")
    send(ns, [rogue(1)], "snd1")
    got = live.wait_for(
        lambda: len(_alerts_from(live.alerts, "fe80::bad:1")()) == 2 and live.alerts(),
        3.0,
        "one alert per link",
    )
    assert sorted(a["v6sentry"]["identifier"].split("|")[0] for a in got) == ["0", "1"]
    assert live.stop() == 0


SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_unprivileged_with_capabilities_captures(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    caps = ["--inh-caps=+net_raw,+net_admin", "--ambient-caps=+net_raw,+net_admin", "--"]
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0"], [*SETPRIV, *caps], cwd=tmp_path)
    live_procs.append(live)
    live.started()
    send(ns, [rogue(1)])
    live.wait_for(_alerts_from(live.alerts, "fe80::bad:1"), 2.0, "alert as nobody")
    status = Path(f"/proc/{_python_pid(ns)}/status").read_text()
    assert "Uid:\t65534" in status
    assert not [e for e in live.err if "socket buffer is" in e]  # CAP_NET_ADMIN was there
    assert live.stop() == 0


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_unprivileged_without_capabilities_fails_clearly(ns: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            *SETPRIV,
            "--",
            sys.executable,
            "-m",
            "detectors.cli",
            "live",
            "-i",
            "cap0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    for needed in ("CAP_NET_RAW", "setcap", "AmbientCapabilities"):
        assert needed in proc.stderr


def test_missing_interface_is_an_error(ns: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "detectors.cli", "live", "-i", "nosuch0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr == "v6sentry: error: nosuch0: no such interface\n"


def test_live_ships_alerts_to_elasticsearch(
    ns: str, es_node: EsNode, tmp_path: Path, live_procs: list[Live]
) -> None:
    """``live --es``: the alert reaches the real node while the sensor runs, and once.

    The node listens on the root namespace's loopback, so this sensor captures there, on
    the root end of a veth whose other end sends from inside the test's namespace.
    """
    cap = f"v6s{os.getpid() % 100000}es"
    _ip("link", "add", cap, "type", "veth", "peer", "name", "snd1", "netns", ns)
    try:
        _ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.snd1.disable_ipv6=1")
        subprocess.run(
            ["sysctl", "-qw", f"net.ipv6.conf.{cap}.disable_ipv6=1"], check=True, timeout=30
        )
        _ip("link", "set", cap, "up")
        _ip("-n", ns, "link", "set", "snd1", "up")
        index = f"logs-v6sentry.alert-live{os.getpid()}"
        live = Live(
            None,
            ["-i", cap, "--policy", str(POLICY), "--es", es_node.url, "--es-index", index,
             "--spool", str(tmp_path / "spool"), "--sensor-name", "span-test"],
        )  # fmt: skip
        live_procs.append(live)
        live.started()
        send(ns, [rogue(7)], dev="snd1")
        got = live.wait_for(_alerts_from(live.alerts, "fe80::bad:7"), 2.0, "rogue RA alert")
        alert_id = got[0]["v6sentry"]["alert_id"]
        client = es_node.client()
        deadline = time.monotonic() + 5.0  # shipped while running: batches wait at most 1 s
        found = 0
        while time.monotonic() < deadline and not found:
            client.indices.refresh(index=index, ignore_unavailable=True)
            if client.indices.exists(index=index):
                # The index exists as soon as the first bulk creates it; its shard may
                # still be starting (503 on a search) on a busy machine: wait for it.
                client.cluster.health(index=index, wait_for_status="yellow", timeout="5s")
                found = client.count(index=index, query={"ids": {"values": [alert_id]}})["count"]
            time.sleep(0.2)
        assert found == 1, "\n".join(live.err)
        assert live.stop() == 0
        client.indices.refresh(index=index)
        doc = client.get(index=index, id=alert_id)["_source"]
        assert doc["observer"]["name"] == "span-test"
        assert doc["source"]["mac"] == "02-00-00-00-66-07"
        assert client.count(index=index)["count"] == 1
        client.indices.delete(index=index)
    finally:
        subprocess.run(["ip", "link", "del", cap], capture_output=True, timeout=30)


# -- the ring itself (detectors._native.LiveRing), read by a probe inside the namespace ----

# Opens the rings described by argv[1] (JSON), says "ready", waits for a line on stdin,
# then reads every ring until all were quiet for 1 s and prints what each got as JSON.
RING_PROBE = """
import json, sys, time
from detectors._native import LiveRing
spec = json.loads(sys.argv[1])
bpf = bytes.fromhex(spec["bpf"]) if spec.get("bpf") else None
rings = [LiveRing.open("cap0", True, spec["buffer_mb"], bpf, spec.get("fanout"))
         for _ in range(spec["rings"])]
print("ready", flush=True)
sys.stdin.readline()
got = [[] for _ in rings]
quiet = time.monotonic()
while time.monotonic() - quiet < 1.0:
    for ring, into in zip(rings, got):
        batch = ring.next_batch(50)
        if batch:
            quiet = time.monotonic()
            into.extend([ts, i, lt, data.hex(), wl] for ts, i, lt, data, wl in batch)
print(json.dumps({"got": got, "stats": [r.stats() for r in rings],
                  "geometry": [r.geometry for r in rings]}))
"""


class RingProbe:
    """``RING_PROBE`` in ``ns``: ``go()`` once the frames are sent, then ``result()``."""

    def __init__(self, ns: str, **spec: Any) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", RING_PROBE, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"ring probe did not start: {line!r} {self.proc.communicate()}")

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate("go\n", timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.returncode == 0, err
        result: dict[str, Any] = json.loads(out)
        return result


def udp6(flow: int, seq: int, vlan: int | None = None) -> bytes:
    """An Ethernet/IPv6/UDP frame of flow ``flow`` (its own addresses and port) carrying
    ``seq``; 802.1Q-tagged with ``vlan``. Documentation addresses and 02:00:00 MACs."""
    payload = seq.to_bytes(4, "big") + bytes(20)
    udp = (1000 + flow).to_bytes(2, "big") + (53).to_bytes(2, "big")
    udp += (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload
    src = bytes.fromhex("20010db8000000000000000000000000")[:14] + flow.to_bytes(2, "big")
    dst = bytes.fromhex("20010db8000100000000000000000001")
    ip6 = b"\x60\0\0\0" + len(udp).to_bytes(2, "big") + b"\x11\x40" + src + dst
    eth = mac("02:00:00:00:00:01") + mac(f"02:00:00:00:10:{flow % 256:02x}")
    tag = b"" if vlan is None else b"\x81\x00" + vlan.to_bytes(2, "big")
    return eth + tag + b"\x86\xdd" + ip6 + udp


def test_ring_gets_every_frame_as_tcpdump_does(ns: str, tmp_path: Path) -> None:
    """Same bytes (VLAN tags back in place), lengths and nanosecond timestamps as
    tcpdump on the same veth, for a bounded burst."""
    pcap = tmp_path / "same.pcap"
    tcpdump = subprocess.Popen(
        ["ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "-i", "cap0", "-U", "-w",
         str(pcap), "--time-stamp-precision=nano", "--immediate-mode", "-B", "16384", "-s", "512"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    # -s 512: in immediate mode libpcap uses TPACKET_V2, one slot of the snap length per
    # frame; a small one keeps its ring from overflowing on the burst.
    try:
        assert tcpdump.stderr is not None
        assert "listening" in tcpdump.stderr.readline()
        probe = RingProbe(ns, rings=1, buffer_mb=16)
        frames = [udp6(i % 7, i, vlan=100 + i % 3 if i % 5 == 0 else None) for i in range(3000)]
        send(ns, frames)
        got = probe.result()
    finally:
        tcpdump.terminate()
        _, tail = tcpdump.communicate(timeout=10)
    assert "\n0 packets dropped by kernel" in tail, tail
    from detectors.capture import open_capture

    with open_capture(str(pcap)) as reader:
        dumped = [(ts, bytes(data), wl) for ts, _i, _lt, data, wl in reader.records()]
    ring = [(ts, bytes.fromhex(data), wl) for ts, _i, _lt, data, wl in got["got"][0]]
    assert [data for _ts, data, _wl in ring] == frames  # every frame, tags restored
    assert ring == dumped
    assert all(lt == 1 and i == 0 for _ts, i, lt, _d, _wl in got["got"][0])
    assert got["stats"][0][1] == 0  # no drops


def test_ring_applies_the_bpf_filter(ns: str) -> None:
    from detectors.live.capture import compile_bpf

    code = compile_bpf("ether src 02:00:00:00:10:01")
    probe = RingProbe(ns, rings=1, buffer_mb=4, bpf=code.hex())
    send(ns, [udp6(i % 4, i) for i in range(400)])
    got = probe.result()["got"][0]
    assert [bytes.fromhex(r[3]) for r in got] == [udp6(i % 4, i) for i in range(1, 400, 4)]


def test_ring_too_small_counts_kernel_drops(ns: str) -> None:
    probe = RingProbe(ns, rings=1, buffer_mb=1)  # 8 blocks of 128 KiB, read only after
    send(ns, [udp6(i % 5, i) for i in range(20_000)])
    result = probe.result()
    (packets, drops, freezes), got = result["stats"][0], result["got"][0]
    assert result["geometry"][0] == [128 * 1024, 8]
    assert drops > 0 and freezes > 0
    # The kernel counts every frame that passed the filter; the ring kept the rest.
    assert len(got) + drops == packets == 20_000
    seqs = [int.from_bytes(bytes.fromhex(r[3])[62:66], "big") for r in got]
    assert seqs == sorted(seqs)  # what it kept is in order, a prefix of the burst


def ipv4_fragments(n: int) -> list[bytes]:
    """UDP datagram ``n`` from 192.0.2.n in two IPv4 fragments (offsets 0 and 16)."""
    udp = (1000 + n).to_bytes(2, "big") + b"\x00\x35\x00\x20\x00\x00" + bytes(24)
    out = []
    for off, part, more in ((0, udp[:16], 0x2000), (2, udp[16:], 0)):
        hdr = bytearray(b"\x45\x00" + (20 + len(part)).to_bytes(2, "big"))
        hdr += (n + 1).to_bytes(2, "big") + (more | off).to_bytes(2, "big") + b"\x40\x11\0\0"
        hdr += bytes([192, 0, 2, n % 250 + 1, 198, 51, 100, 1])
        total = sum(int.from_bytes(hdr[i : i + 2], "big") for i in range(0, 20, 2))
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        hdr[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
        eth = mac("02:00:00:00:00:01") + mac(f"02:00:00:00:20:{n % 256:02x}") + b"\x08\x00"
        out.append(eth + bytes(hdr) + part)
    return out


def test_fanout_splits_flows_between_rings_without_loss_or_duplicates(ns: str) -> None:
    group = (os.getpid() * 16 + 7) & 0xFFFF
    probe = RingProbe(ns, rings=2, buffer_mb=8, fanout=group)
    frames = [udp6(i % 64, i) for i in range(6400)]
    fragments = [f for n in range(32) for f in ipv4_fragments(n)]
    send(ns, frames + fragments)
    result = probe.result()
    a, b = ([bytes.fromhex(r[3]) for r in got] for got in result["got"])
    assert a and b, (len(a), len(b))  # both members got a share
    # Nothing lost, nothing twice, and fragments as sent (the kernel did not reassemble).
    assert sorted(a + b) == sorted(frames + fragments)
    flows_a = {f[6:12] for f in a}  # the flow is in the source MAC
    flows_b = {f[6:12] for f in b}
    assert not flows_a & flows_b  # a flow, and a datagram's fragments, stay with one member
    assert sum(s[1] for s in result["stats"]) == 0


def test_workers_share_the_link_and_write_each_alert_once(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    out = tmp_path / "alerts.json"
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0", "--workers", "2", "-o", str(out)])
    live_procs.append(live)
    live.started()
    assert any("with 2 workers" in e for e in live.err)
    send(ns, [rogue(n) for n in range(1, 9)])

    def written() -> list[dict[str, Any]]:
        if not out.exists():
            return []
        return [json.loads(x) for x in out.read_text().splitlines() if x.endswith("}")]

    live.wait_for(lambda: len(written()) >= 8, 3.0, "eight rogue RA alerts")
    assert live.stop() == 0
    alerts = written()
    assert sorted(str(_src(a)) for a in alerts) == [f"fe80::bad:{n:x}" for n in range(1, 9)]
    assert len({a["v6sentry"]["alert_id"] for a in alerts}) == 8
    final = next(e for e in live.err if "final stats" in e)
    assert "packets 8," in final and "alerts 8 " in final, final
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    assert pids.strip() == ""  # workers gone too


def test_workers_count_a_scan_split_over_them_as_one_and_as_replay(
    ns: str, tmp_path: Path, live_procs: list[Live]
) -> None:
    """400 probes of one /64, each from another random source of one /64: the fanout
    hash spreads them over both workers (the final stats line shows each worker's
    share), and the parent still counts one prefix sweep over all 400, with the alert
    ids that a replay of the same frames (tcpdump's copy) gives."""
    with open_capture(str(REPO / "pcaps" / "sweep_random_source.pcap")) as reader:
        frames = [record[3] for record in reader.records()]
    pcap = tmp_path / "same.pcap"
    with tcpdump_to(ns, pcap):
        live = Live(ns, [*POLICY_ARGS, "-i", "cap0", "--workers", "2"])
        live_procs.append(live)
        live.started()
        send(ns, frames)
        sweep = live.wait_for(
            lambda: [a for a in live.alerts() if a["alert"]["category"] == "ipv6.sweep"],
            5.0,
            "one sweep alert",
        )
        assert live.stop() == 0
    assert sweep[0]["alert"]["signature_id"] == 1000402  # the prefix sweep, whole
    final = next(e for e in live.err if "final stats" in e)
    shares = [int(n) for n in final.split("; workers ")[1].split()[0].split("/")]
    assert len(shares) == 2 and min(shares) > 0 and sum(shares) == len(frames), final
    with open_capture(str(pcap)) as reader:
        assert sum(1 for _ in reader.records()) == len(frames)  # tcpdump kept every frame
    replayed = _replay_ids(pcap, tmp_path)
    assert [a["v6sentry"]["alert_id"] for a in live.alerts()] == [
        a["v6sentry"]["alert_id"] for a in replayed
    ]
    assert [a["alert"]["signature_id"] for a in replayed] == [1000402]


def test_a_worker_that_dies_stops_the_run_with_exit_2(ns: str, live_procs: list[Live]) -> None:
    live = Live(ns, [*POLICY_ARGS, "-i", "cap0", "--workers", "2"])
    live_procs.append(live)
    live.started()
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    workers = [
        int(pid)
        for pid in pids.split()
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(live.proc.pid)
    ]
    assert len(workers) == 2, (pids, live.proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert live.proc.wait(15) == 2
    live.proc.communicate(timeout=10)
    assert any("a worker stopped unexpectedly" in e for e in live.err), live.err
    assert any("final stats" in e for e in live.err), live.err
    left = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    assert left.strip() == ""  # the other worker is gone too


@pytest.mark.parametrize("workers", [1, 2])
def test_tuning_drops_are_counted_on_the_stats_line(
    ns: str, tmp_path: Path, live_procs: list[Live], workers: int
) -> None:
    """An alert the policy's tuning drops is not written, and the stats line says how
    many were dropped (the parent's engine judges with ``--workers``)."""
    policy = tmp_path / "tuned.yaml"
    policy.write_text(
        POLICY.read_text()
        + "tuning:\n  - detection: ipv6.rogue_ra\n    suppress: {src: fe80::bad:1}\n"
        "    reason: lab router under test\n"
    )
    live = Live(ns, ["-i", "cap0", "--policy", str(policy), "--workers", str(workers)])
    live_procs.append(live)
    live.started()
    send(ns, [rogue(1), rogue(2)])
    live.wait_for(_alerts_from(live.alerts, "fe80::bad:2"), 3.0, "the untuned rogue RA")
    assert live.stop() == 0
    assert [a["src_ip"] for a in live.alerts()] == ["fe80:0000:0000:0000:0000:0000:0bad:0002"]
    final = next(e for e in live.err if "final stats" in e)
    assert "alerts 1 (ipv6.rogue_ra=1), tuning suppressed 1," in final, final
