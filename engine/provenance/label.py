"""The explicit "AI-generated" label every output of gsvd carries: in file metadata (WAV LIST/INFO + a
JSON ``aigc`` chunk, see ``gsvd.wavio``), and -- in the daemon -- a stream's first message and HTTP
headers. One value type, so every place says the same thing.

The JSON form includes an ``AIGC`` object with the implicit-label fields of China's labelling standard
for AI-generated content (GB 45438-2025: ``Label`` "1" = AI-generated, ``ContentProducer``,
``ProduceID``), which the operator fills in through its configuration.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATEMENT = "AI-generated speech: a synthetic voice, not a recording"


def generator_name() -> str:
    import gsvd

    return f"gsvd {gsvd.__version__}"


@dataclass(frozen=True)
class AiLabel:
    """Says that a piece of audio is AI-generated, by what, in which voice."""

    voice: str
    generator: str = field(default_factory=generator_name)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat())
    producer: str = ""
    """The operator's service-provider code (GB 45438 ``ContentProducer``); empty if none configured."""
    produce_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """An id of this output (``ProduceID``)."""
    watermark: str = ""
    """A description of the inaudible mark in the audio, e.g. ``gsvd-qim1 key=public daemon=0 voice=0x3a1 day=...``."""
    statement: str = STATEMENT

    def to_dict(self) -> dict:
        out = {"ai_generated": True, **asdict(self)}
        out["AIGC"] = {"Label": "1", "ContentProducer": self.producer, "ProduceID": self.produce_id}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> AiLabel:
        if not isinstance(data, dict) or data.get("ai_generated") is not True or not isinstance(data.get("voice"), str):
            raise ValueError("not a gsvd AI-generated label")
        known = {k: str(data[k]) for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def info_tags(self) -> dict[str, str]:
        """RIFF LIST/INFO tags (what common players and tag editors show)."""
        return {
            "ICMT": f"{self.statement}. Voice: {self.voice}. Generator: {self.generator}.",
            "ISFT": self.generator,
            "ICRD": self.created,
            "IART": f"{self.voice} (synthetic voice)",
            "IGNR": "AI-generated speech",
        }

    def header(self) -> str:
        """One line for an HTTP header / a stream's first message."""
        return f'ai-generated; voice="{self.voice}"; generator="{self.generator}"; id="{self.produce_id}"'


def read_label(path: str | Path) -> AiLabel | None:
    """The label of a WAV file written by gsvd, or None if it has none."""
    from gsvd.wavio import read_wav_metadata

    meta = read_wav_metadata(path)
    if meta.aigc is None:
        return None
    try:
        return AiLabel.from_dict(meta.aigc)
    except ValueError:
        return None
