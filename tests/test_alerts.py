"""The keys alerts are joined on: Community ID, flow_id, addresses, the sample packet.

Owns: ``community_id`` against the reference vectors of the ``communityid``
package's own test suite, and, on every golden alert, the join keys' presence,
the timestamp / ``pcap_cnt`` rule (both name one packet of the capture), and
``v6sentry schema eve|ecs`` (every golden alert and its ECS document validate,
with the ``jsonschema`` package; what the contract forbids does not). Suricata's
agreement on the same packets is in test_suricata; the exact alerts in test_pcaps.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from detectors.alerts import community_id, iso_ts, suricata_ip
from detectors.capture import open_capture
from detectors.cli import main as cli_main
from detectors.ship.convert import document_from_line, titles
from tests.golden import golden_path, manifest

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"

# corelight/pycommunityid tests/communityid_test.py (seed 0, base64): the package's
# own vectors, so a wrong tuple order or field here cannot agree with them by chance.
A, B = "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea"
C, D = "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da"
VECTORS = [
    (58, A, B, 135, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, B, A, 136, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, C, D, 3, 0, "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w="),
    (58, D, C, 3, 0, "1:/OGBt9BN1ofenrmSPWYicpij2Vc="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
]


@pytest.mark.parametrize(("proto", "src", "dst", "a", "b", "want"), VECTORS)
def test_community_id_matches_the_reference_vectors(
    proto: int, src: str, dst: str, a: int, b: int, want: str
) -> None:
    icmp = proto in (1, 58)
    got = community_id(
        proto,
        src,
        dst,
        None if icmp else a,
        None if icmp else b,
        a if icmp else None,
        b if icmp else None,
    )
    assert got is not None
    assert got[0] == want
    assert 0 <= got[1] < 2**63  # a positive int64, as Suricata's flow_id


def test_community_id_of_a_portless_protocol_and_an_incomplete_tuple() -> None:
    # IP-only tuple (the vectors' test_ip, protocol 46).
    assert community_id(46, "10.1.24.4", "10.1.12.1") is not None
    assert community_id(46, "10.1.24.4", "10.1.12.1")[0] == "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4="  # type: ignore[index]
    assert community_id(6, "2001:db8::1", "2001:db8::2") is None  # TCP needs ports
    assert community_id(58, "2001:db8::1", "2001:db8::2") is None  # ICMPv6 needs a type


def test_suricata_address_form() -> None:
    assert suricata_ip("fe80::bad") == "fe80:0000:0000:0000:0000:0000:0000:0bad"
    assert suricata_ip("192.0.2.1") == "192.0.2.1"


def _golden() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    out = []
    for entry in manifest():
        lines = golden_path(entry).read_text(encoding="utf-8").splitlines()
        out.append((entry, [json.loads(line) for line in lines if line.strip()]))
    return out


def test_every_golden_alert_carries_the_join_keys() -> None:
    missing = []
    for entry, alerts in _golden():
        for n, alert in enumerate(alerts, 1):
            # README "Alert output": malformed packets included (a broken extension
            # chain, a malformed ND message), as Suricata writes them.
            keys = ["src_ip", "dest_ip", "pcap_cnt", "flow_id", "proto", "community_id"]
            for key in keys:
                if key not in alert:
                    missing.append(f"{golden_path(entry).name}:{n}: no {key}")
            for key in ("src_ip", "dest_ip"):
                value = alert.get(key, "")
                if ":" in value and value != suricata_ip(value):
                    missing.append(f"{golden_path(entry).name}:{n}: {key} {value} not in full")
    assert not missing, "\n".join(missing)


def test_timestamp_and_pcap_cnt_name_the_same_packet() -> None:
    """README "Alert output": both are the alert's sample packet's."""
    wrong = []
    checked = 0
    for entry, alerts in _golden():
        if not alerts:
            continue
        with open_capture(str(PCAPS / entry["file"])) as reader:
            times = [record[0] for record in reader.records()]
        for n, alert in enumerate(alerts, 1):
            frame = alert["pcap_cnt"]
            if iso_ts(times[frame - 1]) != alert["timestamp"]:
                wrong.append(
                    f"{golden_path(entry).name}:{n}: timestamp {alert['timestamp']}, but "
                    f"frame {frame} is at {iso_ts(times[frame - 1])}"
                )
            checked += 1
    assert not wrong, "\n".join(wrong)
    assert checked > 100


def test_pcapng_interface_name_is_in_iface() -> None:
    entry = next(e for e in manifest() if e["file"] == "multi_iface.pcapng")
    alerts = [json.loads(line) for line in golden_path(entry).read_text().splitlines()]
    # The Ethernet interface is named eth0; the raw-IP one has no if_name.
    by_frame = {a["pcap_cnt"]: a.get("in_iface") for a in alerts}
    assert by_frame == {3: "eth0", 4: None}
    assert all(ipaddress.ip_address(a["src_ip"]).is_link_local for a in alerts)


def _schema(kind: str, capsys: pytest.CaptureFixture[str]) -> Draft202012Validator:
    """``v6sentry schema KIND`` as the CLI prints it, as a validator that checks formats."""
    assert cli_main(["schema", kind]) == 0
    doc = json.loads(capsys.readouterr().out)
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc, format_checker=FormatChecker())


def _problems(validator: Draft202012Validator, doc: dict[str, Any], where: str) -> list[str]:
    return [
        f"{where}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_every_golden_alert_and_its_ecs_rendering_match_the_schemas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    eve, ecs = _schema("eve", capsys), _schema("ecs", capsys)
    known = titles()
    wrong: list[str] = []
    checked = 0
    for entry, alerts in _golden():
        for n, alert in enumerate(alerts, 1):
            where = f"{golden_path(entry).name}:{n}"
            wrong += _problems(eve, alert, where)
            # The ECS document of the same alert, as --format ecs and ship write it.
            doc = document_from_line(alert, known, "golden").source
            wrong += _problems(ecs, doc, f"{where} (ecs)")
            checked += 1
    assert not wrong, "\n".join(wrong[:40])
    assert checked > 100


def test_the_schemas_reject_what_the_contract_does_not_allow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    eve, ecs = _schema("eve", capsys), _schema("ecs", capsys)
    entry = next(e for e in manifest() if e["file"] == "rogue_ra.pcap")
    alert = json.loads(golden_path(entry).read_text(encoding="utf-8").splitlines()[0])
    assert _problems(eve, alert, "ok") == []
    short = {**alert, "src_ip": "fe80::bad"}  # not Suricata's form
    unknown = {**alert, "src_addr": "x"}  # a key the contract does not name
    category = {**alert, "alert": {**alert["alert"], "category": "Misc Attack"}}
    for bad in (short, unknown, category):
        assert _problems(eve, bad, "bad"), bad
    doc = document_from_line(alert, titles(), "golden").source
    assert _problems(ecs, doc, "ok") == []
    for bad in (
        {**doc, "rule": {**doc["rule"], "id": doc["rule"]["uuid"]}},  # rule.id is the sid
        {**doc, "event": {**doc["event"], "type": ["info"]}},
        {**doc, "related": {"ip": ["not-an-address"]}},
    ):
        assert _problems(ecs, bad, "bad"), bad
