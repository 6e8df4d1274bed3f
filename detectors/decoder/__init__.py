"""The one decoder: the only code in v6sentry that reads packet bytes.

``Decoder`` turns capture records into typed events (``detectors.events``).
Submodules: ``core`` (link, IP, extension headers, tunnels), ``nd`` (ND
bodies and options), ``reassembly`` (IPv6 fragments). Capture files are read
by ``detectors.capture``; nothing here judges traffic.
"""

from detectors.decoder.core import Decoder, DecoderLimits
from detectors.decoder.reassembly import ReassemblyLimits

__all__ = ["Decoder", "DecoderLimits", "ReassemblyLimits"]
