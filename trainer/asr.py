"""Speech recognition with word times, behind one small interface.

`Recognizer` is what the training stages need from an ASR: the words of a whole file with their
start and end times, and the language it heard. `FasterWhisper` is the real one: a local
faster-whisper (CTranslate2) model folder given with `--asr`, never downloaded, run with word
timestamps. `segment` runs it once per input file and keeps the words in
`segment/asr/<stem>.json`; they time whole-file transcripts, give clips without text their text,
and are the reference of the text check in `select`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gsvd.trainer.records import TrainError


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the audio
    end: float
    text: str  # as recognized (may carry punctuation)


@dataclass
class Recognized:
    words: list[Word]
    lang: str | None  # zh / en / ja when recognized as one of them, else None

    def to_dict(self) -> dict:
        return {"lang": self.lang, "words": [asdict(w) for w in self.words]}

    @classmethod
    def from_dict(cls, d: dict) -> Recognized:
        return cls([Word(float(w["start"]), float(w["end"]), str(w["text"])) for w in d["words"]], d.get("lang"))


class Recognizer(Protocol):
    """An ASR with word times; `name` says which (it goes into clip origins and reports)."""

    name: str

    def recognize(self, wav16: np.ndarray, lang: str | None) -> Recognized: ...


class FasterWhisper:
    """faster-whisper from a local model folder (model.bin + config.json + tokenizer); never downloads."""

    def __init__(self, folder: Path, device: str = "cpu", compute_type: str = "default", beam_size: int = 5) -> None:
        folder = Path(folder)
        if not (folder / "model.bin").is_file():
            raise TrainError(f"--asr {folder}: no faster-whisper model there (expected model.bin + config.json, "
                             "a CTranslate2 Whisper model folder)")
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise TrainError("--asr needs faster-whisper, which is not installed: pip install 'gsvd[asr]'") from None
        try:
            self.model = WhisperModel(str(folder), device=device, compute_type=compute_type, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise TrainError(f"--asr {folder}: cannot load the model ({exc})") from None
        self.name = f"asr:{folder}"
        self.beam_size = beam_size

    def recognize(self, wav16: np.ndarray, lang: str | None) -> Recognized:
        segments, info = self.model.transcribe(np.ascontiguousarray(wav16, np.float32), language=lang,
                                               beam_size=self.beam_size, word_timestamps=True,
                                               condition_on_previous_text=False)
        words = [Word(round(float(w.start), 3), round(float(w.end), 3), w.word.strip())
                 for seg in segments for w in (seg.words or []) if w.word.strip()]
        found = lang or info.language
        return Recognized(words, found if found in ("zh", "en", "ja") else None)
