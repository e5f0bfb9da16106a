"""How ``gsvd synth`` (and, later, other writers of whole files) turns its options into a labelled,
watermarked, optionally signed file: one typed value built from the CLI options, passed down whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsvd.engine.errors import InvalidInput
from gsvd.engine.provenance.c2pa_sign import SigningConfig, sign_file
from gsvd.engine.provenance.label import AiLabel
from gsvd.engine.provenance.watermark import PUBLIC_KEY, WatermarkConfig, describe


@dataclass(frozen=True)
class OutputProvenance:
    watermark: WatermarkConfig | None
    signing: SigningConfig | None

    @classmethod
    def from_options(cls, watermark: bool, key: str | None, cert: Path | None, private_key: Path | None,
                     alg: str) -> OutputProvenance:
        if (cert is None) != (private_key is None):
            raise InvalidInput("give both --sign-cert and --sign-key to sign the output", "sign")
        if key is not None and not watermark:
            raise InvalidInput("--watermark-key with --no-watermark: pick one", "watermark_key")
        mark = WatermarkConfig(key=key or PUBLIC_KEY) if watermark else None
        signing = SigningConfig(cert, private_key, alg.lower()) if cert is not None and private_key is not None else None
        if signing is not None:
            signing.load()  # fail before synthesis, not after
        return cls(mark, signing)

    def label(self, voice: str) -> AiLabel:
        return AiLabel(voice=voice, watermark=describe(self.watermark, voice) if self.watermark else "")

    def write(self, out: Path, pcm: np.ndarray, rate: int, voice: str) -> Path:
        from gsvd.wavio import write_wav

        label = self.label(voice)
        path = write_wav(out, pcm, rate, label=label)
        if self.signing is not None:
            sign_file(path, label, self.signing)
        return path
