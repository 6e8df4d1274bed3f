"""A toy detection family written into a temporary folder, for tests.

Owns the one family the "adding a detection touches one folder" tests add: a ``spec.yaml``
and a ``Detector`` with no native reducers (so no ``native/`` folder and no Rust build),
found through ``detectors.detections.EXTRA_ENV`` or ``discover(extra=...)``. It alerts on
the first ICMPv6 echo request from each source, with an address and a number as evidence.
Its regression capture comes from its own ``captures.py`` with its manifest entry in its
``captures.yaml`` (``pcaps/generate.py`` and ``tests/golden.py`` find both), and its
Suricata rule from its own ``suricata.rules.j2``.
"""

from __future__ import annotations

from pathlib import Path

NAME = "toy_echo"
CATEGORY = "ipv6.toy_echo"
SID = 1000801
EVIDENCE_ADDRESS = "pinged.address"

SPEC = """\
family: toy_echo
title: Toy echo family
description: A family written by a test, to prove a new folder is all a detection needs.
sids: {first: @FIRST@, last: @LAST@}
evidence:
  pinged.address: address
  pinged.count: number
detections:
  - category: ipv6.toy_echo
    id: 5f0c3c2e-8a55-4a53-9f0e-3d1b2c6a7e11
    title: Toy echo request
    description: The first ICMPv6 echo request from each source address.
    severity: low
    sigma: {date: 2026-12-02}
    techniques:
      - {id: T1595.001, name: "Active Scanning: Scanning IP Blocks"}
    tactics:
      - {id: TA0043, name: Reconnaissance}
    signatures:
      first_echo:
        sid: 1000801
        text: "Toy first IPv6 echo request from a source"
        description: A source sent its first ICMPv6 echo request (RFC 4443).
        rfcs: [4443]
        coverage:
          suricata: {level: full, why: "An echo request is one packet; the rule is in the folder"}
          zeek: {level: none, why: "A toy: no Zeek rule."}
    thresholds:
      suppress_s:
        default: 60
        unit: seconds
        min: 1
        meaning: One alert per source per this many seconds.
    false_positives:
      - Every ping.
"""

DETECTOR = '''\
"""The toy echo family: alerts on a source's first ICMPv6 echo request."""

from __future__ import annotations

from detectors.detections import Detector, Context
from detectors.events import Event, Ipv6Packet, ip_str


class ToyEcho(Detector):
    subscribes = (Ipv6Packet,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.seen = self.suppressor("ipv6.toy_echo", 1000)

    def on_event(self, event: Event) -> None:
        assert isinstance(event, Ipv6Packet)
        if event.icmp_type != 128:
            return
        src = ip_str(event.ip.src)
        ts = event.meta.ts_ns
        if not self.seen.allow(src, ts):
            return
        self.alert(
            "ipv6.toy_echo",
            "first_echo",
            identifier=src,
            first_ns=ts,
            event=event,
            evidence={"pinged": {"address": ip_str(event.ip.dst), "count": 1}},
        )
'''


CAPTURE = "toy_echo.pcap"

CAPTURES = f'''\
"""The toy family's regression capture: one source pings three times."""

from __future__ import annotations

from pathlib import Path

from pcaps.generate import S, T0, a6, echo6, lan, mac, write_pcap


def cap_toy_echo(out: Path) -> None:
    src, dst = a6("2001:db8::1"), a6("2001:db8::2")
    frames = [
        (T0 * S + i * S, lan(echo6(src, dst, 7, i), mac("02:00:00:00:00:01"))) for i in range(3)
    ]
    write_pcap(out / "{CAPTURE}", frames)
'''

MANIFEST = f"""\
captures:
  - file: {CAPTURE}
    description: one source pings three times; one alert, then suppressed
    expect:
      {CATEGORY}: 1
    sids: {{{SID}: 1}}
"""


SURICATA_TEMPLATE = """\
{% import "suricata_macros.j2" as m %}
{% set toy = detections["ipv6.toy_echo"] %}
{{ m.detection(toy, {
  "first_echo": [{
    "header": "icmp any any -> any any",
    "options": "itype:128; threshold: type limit, track by_src, count 1, seconds "
      ~ (toy.thresholds.suppress_s.value | number) ~ ";"}],
}, vars, policy.hash) }}
"""


def write_toy_family(root: Path, first: int = 1000800, last: int = 1000899) -> Path:
    """Write the toy family under ``root``; returns ``root`` (the folder to discover)."""
    family = root / NAME
    family.mkdir(parents=True)
    (family / "spec.yaml").write_text(
        SPEC.replace("@FIRST@", str(first)).replace("@LAST@", str(last)),
        encoding="utf-8",
    )
    (family / "__init__.py").write_text(DETECTOR, encoding="utf-8")
    (family / "captures.py").write_text(CAPTURES, encoding="utf-8")
    (family / "captures.yaml").write_text(MANIFEST, encoding="utf-8")
    (family / "suricata.rules.j2").write_text(SURICATA_TEMPLATE, encoding="utf-8")
    return root
