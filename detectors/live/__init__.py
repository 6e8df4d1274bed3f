"""Live capture: ``v6sentry live`` on span ports and mirror interfaces.

Owns reading packets from network interfaces (``detectors.live.capture``:
TPACKET_V3 rings from the native core, kernel timestamps, BPF, promiscuous
mode, drop counters, interfaces that go away and come back) and running the
detection engine on them unattended (``detectors.live.cli``: timers, signals,
output reopening, statistics; ``detectors.live.workers``: ``--workers N``
processes sharing an interface through PACKET_FANOUT). It does not decode or
detect anything (the engine does) and does not ship (``detectors.ship`` does).
The systemd unit lives in ``detectors/live/systemd/``.
"""
