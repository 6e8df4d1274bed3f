"""Engine, discovery, specs and bounded state.

Owns the engine contracts that do not need a capture: families are found by
convention, each spec is valid and complete, thresholds resolve from spec
then policy, tables stay within their caps and count evictions, suppression
runs on packet time.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.detections import NS, Detector, discover
from detectors.engine import DECODER_THRESHOLDS, Engine, known_thresholds
from detectors.policy import empty_policy, load_policy
from detectors.spec import SpecError, load_spec, revisions
from detectors.state import BoundedTable, Suppressor
from pcaps.generate import a6, fragment_packets, icmp6, ip6, lan, mac
from tests import toy_family
from tests.toy_family import write_toy_family

DETECTIONS = Path(__file__).resolve().parents[1] / "detectors" / "detections"
CATEGORIES = {
    "ipv6.rogue_ra", "ipv6.ra_flood", "ipv6.ra_guard_evasion", "ipv6.ndp_exhaustion",
    "ipv6.ndp_flood", "ipv6.ndp_spoof", "ipv6.dad_dos", "ipv6.tunnel_6to4", "ipv6.tunnel_6in4",
    "ipv6.tunnel_isatap", "ipv6.tunnel_teredo", "ipv6.tunnel_ayiya", "ipv6.sweep",
    "ipv6.dark_prefix", "ipv6.malformed", "ipv6.mld_abuse", "ipv6.rogue_dhcpv6",
    "ipv6.dhcpv6_starvation", "ipv6.covert_channel", "ipv6.redirect_spoof", "ipv6.smurf",
    "ipv6.ptb_attack", "ipv6.dns_backscatter", "ipv6.rdns_walk",
    "ipv6.tga_scan", "ipv6.slow_scan",
}  # fmt: skip


def test_families_are_discovered_by_convention() -> None:
    specs, classes = discover()
    assert {"router_advert", "malformed"} <= set(specs)
    for name, cls in classes.items():
        assert issubclass(cls, Detector) and cls.family == name
        # A family sees traffic through Python events or through its native reducers.
        assert cls.subscribes or specs[name].reducers, f"{name} observes nothing"


def test_specs_are_complete_and_unique() -> None:
    specs, _ = discover()
    ids, sids = set(), set()
    for spec in specs.values():
        for cat, det in spec.detections.items():
            assert cat in CATEGORIES, f"{cat} is not in the alert.category vocabulary"
            uuid.UUID(det.id)
            assert det.id not in ids
            ids.add(det.id)
            assert det.techniques and det.tactics and det.false_positives
            assert "suppress_s" in det.thresholds
            for t in det.thresholds.values():
                assert t.meaning and t.unit
            for sig in det.signatures.values():
                assert sig.sid not in sids
                sids.add(sig.sid)


def test_bad_spec_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "family: x\ntitle: t\ndescription: d\ndetections:\n"
        "  - category: ipv6.x\n    id: not-a-uuid\n"
    )
    with pytest.raises(SpecError, match=r"id: 'not-a-uuid' is not a UUID"):
        load_spec(spec)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("sids"), r"spec.yaml: missing key 'sids'"),
        (lambda d: d.update(sids={"first": 1000400, "last": 1000401}), r"sid 1000\d+ outside"),
        (lambda d: d.update(sids={"first": 1000500, "last": 1000400}), r"not a range"),
        (lambda d: d["detections"][0].pop("sigma"), r"detections\[0\]: missing key 'sigma'"),
        (lambda d: d.pop("evidence"), r"spec.yaml: missing key 'evidence'"),
        (
            lambda d: d["evidence"].update({"sample_targets": "ip"}),
            r"evidence.sample_targets: type 'ip' not one of address, time",
        ),
        (
            lambda d: d["detections"][0].update(sigma={"date": "1 Dec 2026"}),
            r"detections\[0\].sigma.date: '1 Dec 2026' is not a YYYY-MM-DD day",
        ),
    ],
)
def test_sid_range_and_sigma_date_are_checked(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    """The family's sid range and each detection's Sigma date live in its spec."""
    doc = yaml.safe_load((DETECTIONS / "sweep" / "spec.yaml").read_text())
    edit(doc)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match=message):
        load_spec(spec)


def test_a_spec_is_parsed_once_per_content(tmp_path: Path) -> None:
    """The parse is shared while the file is unchanged, and a rewrite of the same size
    in the same instant (the mtime would not tell) is parsed afresh."""
    spec = tmp_path / "spec.yaml"
    text = (DETECTIONS / "sweep" / "spec.yaml").read_text()
    spec.write_text(text)
    first = load_spec(spec)
    assert load_spec(spec) is first
    assert "\ntitle: I" in text
    spec.write_text(text.replace("\ntitle: I", "\ntitle: J", 1))  # the same size
    edited = load_spec(spec)
    assert edited is not first and edited.title.startswith("J")


def test_a_broken_rule_lock_names_the_file(tmp_path: Path) -> None:
    lock = tmp_path / "rules.lock.yaml"
    lock.write_text("1000401: {rev: 0, sha: ab}\n")
    with pytest.raises(SpecError, match=r"rules.lock.yaml: 1000401.rev: expected an integer"):
        revisions(lock)
    lock.write_text("1000401: {rev: [\n")
    with pytest.raises(SpecError, match=r"rules.lock.yaml: "):
        revisions(lock)
    lock.write_text("1000401: {rev: 3, sha: ab}\n")
    assert revisions(lock) == {1000401: 3}


def test_overlapping_sid_ranges_are_refused(tmp_path: Path) -> None:
    specs, _ = discover()
    assert specs["sweep"].sids == (1000400, 1000499)
    assert specs["sweep"].detections["ipv6.sweep"].sigma_date == "2026-12-01"
    specs, _ = discover([write_toy_family(tmp_path / "ok")])
    assert specs[toy_family.NAME].sids == (1000800, 1000899)
    # The toy's own sid is inside its range, so only the overlap can fail the second one.
    with pytest.raises(SpecError, match=r"toy_echo/spec.yaml: sids 1000450-1000899 overlap sweep"):
        discover([write_toy_family(tmp_path / "overlap", first=1000450)])


def test_an_evidence_field_has_one_type_across_families(tmp_path: Path) -> None:
    """One index holds every family's alerts: a field typed twice is refused on discovery."""
    root = write_toy_family(tmp_path)
    spec = root / toy_family.NAME / "spec.yaml"
    spec.write_text(spec.read_text().replace("pinged.count: number", "sample_targets: keyword"))
    with pytest.raises(SpecError, match=r"sample_targets: keyword, but .*declares it address"):
        discover([root])
    spec.write_text(spec.read_text().replace("sample_targets: keyword", "tunnel: keyword"))
    with pytest.raises(SpecError, match=r"evidence.tunnel.type: its parent tunnel is declared"):
        discover([root])


def test_thresholds_resolve_from_spec_then_policy(tmp_path: Path) -> None:
    specs, classes = discover()
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(
        "thresholds:\n  ipv6.rogue_ra:\n    window_s: 5\n  decoder:\n    max_ext_headers: 4\n"
        "    max_ext_options: 24\n"
    )
    policy = load_policy(str(policy_file), known_thresholds(specs))
    engine = Engine(policy, lambda a: None, specs, classes)
    ra = next(d for d in engine.detectors if d.family == "router_advert")
    assert ra.threshold("ipv6.rogue_ra", "window_s") == 5
    default = specs["router_advert"].detections["ipv6.rogue_ra"].thresholds["suppress_s"].default
    assert ra.threshold("ipv6.rogue_ra", "suppress_s") == default
    assert engine.decoder.limits.max_ext_headers == 4
    assert engine.decoder.limits.max_ext_options == 24
    assert "decoder" in known_thresholds(specs)
    assert set(known_thresholds(specs)["decoder"]) == set(DECODER_THRESHOLDS)


def test_decoder_builds_only_wanted_events() -> None:
    specs, classes = discover()

    def engine_of(families: set[str]) -> Engine:
        return Engine(
            empty_policy(),
            lambda a: None,
            {k: v for k, v in specs.items() if k in families},
            {k: v for k, v in classes.items() if k in families},
        )

    # The sweep family counts every packet, so with every family on they are built.
    assert Engine(empty_policy(), lambda a: None, specs, classes).decoder.want_packets is True
    # So does the ND family's native exhaustion reducer (it records off-link drivers
    # while some node is busy soliciting, and skips packets otherwise).
    assert engine_of({"neighbor_discovery"}).decoder.want_packets is True
    # Without them nobody wants per-packet events: the decoder's cheap path stays on.
    assert engine_of({"router_advert"}).decoder.want_packets is False
    # Extension-header options become events only for the covert family's reducer.
    assert engine_of({"covert"}).decoder.want_ext_options is True
    assert engine_of({"malformed", "router_advert"}).decoder.want_ext_options is False


def test_bounded_table_evicts_and_counts() -> None:
    evicted: list[object] = []
    table: BoundedTable[int, int] = BoundedTable("t", 3, lambda k, v: evicted.append(k))
    for i in range(10):
        table.put(i, i)
    assert len(table) == 3 and table.evictions == 7 and evicted == list(range(7))
    table.get(7)  # recently used survives
    table.put(10, 10)
    assert 7 in table and 8 not in table


def test_suppression_is_on_packet_time() -> None:
    sup = Suppressor("s", interval_ns=10, cap=2)
    assert sup.allow("a", 0)
    assert not sup.allow("a", 9)
    assert sup.allow("a", 10)
    assert sup.suppressed == 1


def test_engine_time_never_runs_backwards() -> None:
    engine = Engine(empty_policy(), lambda a: None)
    engine.advance(5_000_000_000)
    engine.advance(1_000_000_000)
    assert engine.now_ns == 5_000_000_000


def test_windows_close_each_window_once_when_it_ends() -> None:
    from dataclasses import dataclass

    from detectors.state import Windows

    @dataclass
    class Win:
        start_ns: int
        n: int = 0

    closed: list[tuple[str, int, int]] = []
    wins: Windows[str, Win] = Windows(
        "w", 2, 10, lambda k, w: closed.append((k, w.start_ns, w.n)), grace_ns=5
    )
    wins.current("a", 0, Win).n += 1
    wins.current("a", 9, Win).n += 1  # same window
    wins.current("a", 10, Win).n += 1  # rolls over: the first closes
    assert closed == [("a", 0, 2)]
    wins.current("b", 11, Win)
    wins.current("c", 12, Win)  # cap 2: "a" (least recently used) is evicted and closed
    assert closed[-1] == ("a", 10, 1)
    wins.close_due(25)  # "b" began 14 ago: not yet past span + grace
    assert len(closed) == 2
    wins.close_due(26)
    assert closed[-1] == ("b", 11, 0) and len(wins.table) == 1
    wins.close_all()
    assert closed[-1] == ("c", 12, 0) and len(wins.table) == 0 and len(closed) == 4


def test_reducer_declarations_are_checked(tmp_path: Path) -> None:
    """A family's ``reducers:`` names only observable kinds and its own thresholds, and
    every declared kind is one the native core builds."""
    import yaml

    from detectors._native import NativeReducer

    specs, _ = discover()
    path = Path(specs["sweep"].path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for broken, message in (
        ({"observes": ["every_byte"]}, r"reducers\.sweep\.observes: 'every_byte' not one of"),
        ({"thresholds": ["ipv6.sweep.nope"]}, r"'ipv6\.sweep\.nope' is not a threshold"),
    ):
        bad = {**doc, "reducers": {"sweep": {**doc["reducers"]["sweep"], **broken}}}
        tmp = tmp_path / "spec.yaml"
        tmp.write_text(yaml.safe_dump(bad), encoding="utf-8")
        with pytest.raises(SpecError, match=message):
            load_spec(tmp)
    declared = {r.kind for s in specs.values() for r in s.reducers.values()}
    assert declared >= {"sweep"}
    with pytest.raises(ValueError, match='unknown native reducer kind "nope"'):
        NativeReducer("nope", {})


def test_fragment_timeouts_reach_the_native_reducers() -> None:
    """Reassembly timeouts are found on ticks (``Pipeline.expire``), not while decoding a
    frame: they still reach the families' native reducers. A malformed family told to
    alert on ``timeout`` raises one for a datagram whose last fragment never came."""
    specs, classes = discover()
    specs = copy.deepcopy(specs)
    params = specs["malformed"].detections["ipv6.malformed"].parameters
    params["alert_fragment_kinds"] = ["timeout"]
    alerts: list[Any] = []
    engine = Engine(empty_policy(), alerts.append, specs, classes)
    src, dst = a6("2001:db8:1::bad"), a6("2001:db8:1::20")
    first, _rest = fragment_packets(src, dst, 58, icmp6(src, dst, 128, bytes(60)), 32, 0xC1, 64)
    later = ip6(a6("2001:db8:1::10"), dst, 59, b"")  # any packet after the 60 s timeout
    t0 = 1_700_000_000 * NS
    m = mac("02:00:00:00:00:10")
    engine.run(
        [
            (t0, 0, 1, lan(first, m), 0),
            (t0 + 30 * NS, 0, 1, lan(later, m), 0),
            (t0 + 61 * NS, 0, 1, lan(later, m), 0),
        ]
    )
    engine.finish()
    assert engine.decoder.stats.fragment_anomalies == {"timeout": 1}
    assert [(a.category, a.src_ip) for a in alerts] == [("ipv6.malformed", "2001:db8:1::bad")]
    assert "timeout" in str(alerts[0].evidence)
    assert alerts[0].ts_ns == t0 + 61 * NS  # found on the tick the later packet started


def test_signature_description_and_rfcs_are_checked(tmp_path: Path) -> None:
    """Each signature has its own one- or two-sentence description and lists every RFC it
    names; a broken one is an error naming the file and the field."""
    import yaml

    specs, _ = discover()
    path = Path(specs["router_advert"].path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = r"detections\[1\]\.signatures\.nd_fragment"
    for broken, message in (
        ({"description": None}, rf"{where}: missing key 'description'"),
        ({"rfcs": None}, rf"{where}: missing key 'rfcs'"),
        ({"description": "One. Two. Three."}, rf"{where}\.description: 3 sentences"),
        ({"description": "No full stop"}, rf"{where}\.description: must be whole sentences"),
        ({"rfcs": ["6980"]}, rf"{where}\.rfcs\[0\]: '6980' is not an RFC number"),
        ({"rfcs": [6980, 6105, 6980]}, rf"{where}\.rfcs\[2\]: RFC 6980 listed twice"),
        ({"rfcs": [6105]}, rf"{where}\.rfcs: lacks RFC 6980, named in its text or description"),
    ):
        bad = copy.deepcopy(doc)
        sig = bad["detections"][1]["signatures"]["nd_fragment"]
        sig.update(broken)
        for key in [k for k, v in broken.items() if v is None]:
            del sig[key]
        tmp = tmp_path / "spec.yaml"
        tmp.write_text(yaml.safe_dump(bad), encoding="utf-8")
        with pytest.raises(SpecError, match=rf"{re.escape(str(tmp))}: {message}"):
            load_spec(tmp)


def test_every_signature_cites_rfcs_its_spec_names() -> None:
    """The RFCs a signature cites are ones its family's spec text names."""
    specs, _ = discover()
    cited = 0
    for spec in specs.values():
        text = " ".join(Path(spec.path).read_text(encoding="utf-8").split())
        named = {int(n) for n in re.findall(r"\bRFC (\d+)", text)}
        for det in spec.detections.values():
            for sig in det.signatures.values():
                assert 1 <= len(sig.description.split(". ")) <= 2, sig.key
                assert set(sig.rfcs) <= named, f"{sig.sid} cites RFCs its spec never names"
                cited += len(sig.rfcs)
    dets = [d for f in specs.values() for d in f.detections.values()]
    sigs = {s.sid: s for d in dets for s in d.signatures.values()}
    assert 6980 in sigs[1000121].rfcs and 7112 in sigs[1000123].rfcs and 4861 in sigs[1000109].rfcs
    assert cited > len(sigs)
