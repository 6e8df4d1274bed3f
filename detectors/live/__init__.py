"""Live capture: ``v6sentry live`` on span ports and mirror interfaces.

Owns reading packets from network interfaces (``detectors.live.capture``:
AF_PACKET sockets, kernel timestamps, BPF, promiscuous mode, drop counters,
interfaces that go away and come back) and running the detection engine on
them unattended (``detectors.live.cli``: timers, signals, output reopening,
statistics). It does not decode or detect anything (the engine does) and does
not ship (``detectors.ship`` does). The systemd unit lives in
``detectors/live/systemd/``.
"""
