"""Provenance of gsvd's audio: the inaudible watermark (``watermark``, read by ``detector``), the
AI-generated label that files and streams carry (``label``), content credentials (``c2pa_sign``).

Everything here is torch-free; options are typed values built at the edge (CLI options, the daemon's
config) and passed down whole.
"""

from gsvd.engine.provenance.detector import Detection, Detector
from gsvd.engine.provenance.watermark import (
    PUBLIC_KEY,
    Payload,
    StreamMarker,
    WatermarkConfig,
    Watermarker,
)

__all__ = ["PUBLIC_KEY", "Detection", "Detector", "Payload", "StreamMarker", "WatermarkConfig", "Watermarker"]
