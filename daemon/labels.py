"""The explicit "AI-generated" label on every output of the daemon, and content credentials on whole files.

Every stream gets one `AiLabel` (`gsvd.engine.provenance.label`: AI-generated, the voice, the generator,
a produce id, the operator's producer code, and -- when the daemon watermarks its audio -- a description
of the mark) before its audio:

- gRPC: the `label` of the first message's `AudioFormat` (`convert.label`);
- HTTP `/v1/audio/speech`: the headers `X-AI-Generated: true` and `X-AI-Label` (the label as JSON, ASCII),
  and inside WAV answers the LIST/INFO and `aigc` chunks `gsvd.wavio` writes (streamed WAV too: the
  label is known before the first sample);
- WebSocket: the `label` object of the `start` message.

Content credentials (C2PA, `sign_cert`/`sign_key`): a whole WAV answer (`"stream": false`) is signed
before it is sent (a manifest covers the file's hash, so it needs the whole file). A streamed answer is
not signed -- its end is not known when its first bytes leave -- and carries the label headers, the
in-file label chunks and (when on) the watermark instead; so do raw PCM answers, which have no container
to hold a manifest.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from gsvd.daemon.config import DaemonConfig
from gsvd.engine.errors import GsvdError, InvalidInput
from gsvd.engine.provenance.label import AiLabel
from gsvd.engine.provenance.watermark import describe
from gsvd.wavio import wav_bytes, wav_stream_header

log = logging.getLogger("gsvd.daemon")
AI_GENERATED_HEADER = "X-AI-Generated"
LABEL_HEADER = "X-AI-Label"


class Labeler:
    """Labels (and signs) the daemon's outputs under its configuration (built once at start)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.producer = config.label_producer
        self.watermark = config.watermark_config()
        self.signing = config.signing()

    def label(self, voice: str) -> AiLabel:
        """A new stream's label (a fresh produce id)."""
        mark = describe(self.watermark, voice) if self.watermark is not None else ""
        return AiLabel(voice=voice, producer=self.producer, watermark=mark)

    @staticmethod
    def headers(label: AiLabel) -> dict[str, str]:
        """The HTTP headers of an answer carrying `label` (JSON with non-ASCII escaped: header values are Latin-1)."""
        return {AI_GENERATED_HEADER: "true", LABEL_HEADER: json.dumps(label.to_dict(), sort_keys=True)}

    def wav(self, pcm: np.ndarray, rate: int, label: AiLabel) -> bytes:
        """A whole WAV answer: 16-bit mono with the label's chunks, signed when signing is configured (blocking:
        call it off the event loop)."""
        data = wav_bytes(pcm, rate, label=label)
        if self.signing is None:
            return data
        from gsvd.engine.provenance.c2pa_sign import sign_bytes

        try:
            return sign_bytes(data, "audio/wav", label, self.signing, f"{label.voice}-{label.produce_id}.wav")
        except InvalidInput as exc:  # the material passed its check at start: a server fault now (INTERNAL)
            log.error("signing a WAV answer failed: %s", exc)
            raise GsvdError("content credentials could not be added to the answer") from None

    @staticmethod
    def stream_header(rate: int, label: AiLabel) -> bytes:
        return wav_stream_header(rate, label=label)
