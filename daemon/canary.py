"""Canary monitoring: every resident voice speaks a fixed set of sentences now and then, and what it sounds
like is kept as Prometheus gauges and compared with its first reading.

A voice can go wrong while it stays loaded -- a bad GPU, a TensorRT engine that lost precision, a
replaced bundle, a runtime change -- in ways no request fails on: it rambles to the token cap, mumbles,
turns quiet, or stops sounding like its speaker. Every `canary_interval_s` (0: off) each voice speaks,
for each of its languages the canary has sentences for (`SENTENCES`), those sentences with fixed options
(seed `SEED`, speed 1, its other defaults, at most `canary_max_tokens` tokens a sentence). A reading
(`Reading`) holds the audio's duration, its RMS level (dBFS), the semantic tokens it took (the engine
makes `SAMPLES_PER_TOKEN` samples per token at speed 1), whether every sentence ended by EOS (fewer
tokens than the cap), and the cosine similarity of its speaker embedding to the voice's reference
recording (`gsvd.engine.speaker_embed`: resemblyzer's GE2E weights; absent -- the gauge unset -- when
resemblyzer is not installed, or the voice has no reference recording). `CanaryMonitor.record` sets the
gauges (`metrics.CanaryGauges`, labelled by voice and language) and, from the second reading of a
voice on, logs a warning for every measure beyond its bound (`DriftBounds`) from the first reading
(`drift`); a voice loaded again starts over.

Lowest priority: the canary's streams are not clients' sessions and never count against the limits;
a sentence starts only while fewer than `canary_below_streams` client streams are active, and the
moment a client stream is admitted at that threshold the canary's stream is cancelled (the engine frees
its slot within one decode step) and the round ends. `canary_below_streams` is below `max_streams`, so
the canary never holds a slot a client needs. Audio and similarity are computed on threads of their own
(the similarity on the CPU), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from gsvd.daemon.metrics import Metrics
from gsvd.daemon.streaming import StreamRunner
from gsvd.daemon.voice_admin import VoiceAdmin, VoiceFacts, own_thread
from gsvd.engine.errors import Cancelled, GsvdError
from gsvd.engine.types import SAMPLE_RATE, SAMPLES_PER_TOKEN
from gsvd.wavio import measure_level

if TYPE_CHECKING:
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine, Voice

log = logging.getLogger("gsvd.daemon")

SEED = 20250101
SENTENCE_DEADLINE_S = 120.0  # a canary stream that takes longer than this is stopped (and counted as failed)
SENTENCES: dict[str, tuple[str, ...]] = {
    "en": ("The quick brown fox jumps over the lazy dog.",
           "Please call Stella and ask her to bring these things with her from the store."),
    "zh": ("今天天气很好，我们一起去公园散步吧。", "请在明天上午十点以前把这份文件交给我。"),
    "ja": ("今日はとてもいい天気ですね。", "明日の朝十時までにこの書類を届けてください。"),
    "ko": ("오늘은 날씨가 정말 좋네요.", "내일 아침 열 시까지 이 서류를 보내 주세요."),
    "yue": ("今日天氣好好，我哋一齊去公園行下啦。", "唔該你聽朝十點之前將呢份文件交俾我。"),
}


@dataclass(frozen=True)
class Reading:
    """What one voice's canary sentences in one language sounded like."""

    voice: str
    language: str
    duration_s: float
    level_dbfs: float
    tokens: int
    eos: bool
    """Every sentence ended by EOS (none ran into the token cap)."""
    similarity: float | None
    """Cosine similarity to the voice's reference recording; None when it cannot be measured."""


@dataclass(frozen=True)
class DriftBounds:
    """How far a reading may move from the voice's first reading before it is logged: the duration and the token
    count by a share of the first (|now / first - 1|; sampling varies a little across batches on a GPU), the
    level in dB, the speaker similarity by a drop (a rise is no drift). A voice that reached EOS in every
    sentence and now runs into the token cap has drifted, whatever the bounds."""

    duration_ratio: float = 0.3
    tokens_ratio: float = 0.3
    level_db: float = 6.0
    similarity_drop: float = 0.15


def drift(first: Reading, now: Reading, bounds: DriftBounds = DriftBounds()) -> list[str]:
    """The measures of `now` beyond their bound from `first`, each described (empty: no drift)."""
    out = []
    if first.duration_s > 0 and abs(now.duration_s / first.duration_s - 1) > bounds.duration_ratio:
        out.append(f"duration {now.duration_s:.2f} s (first {first.duration_s:.2f} s)")
    if abs(now.level_dbfs - first.level_dbfs) > bounds.level_db:
        out.append(f"level {now.level_dbfs:.1f} dBFS (first {first.level_dbfs:.1f} dBFS)")
    if first.tokens > 0 and abs(now.tokens / first.tokens - 1) > bounds.tokens_ratio:
        out.append(f"tokens {now.tokens} (first {first.tokens})")
    if first.eos and not now.eos:
        out.append("a sentence ran into the token cap (the first reading ended every sentence by EOS)")
    if (first.similarity is not None and now.similarity is not None
            and first.similarity - now.similarity > bounds.similarity_drop):
        out.append(f"speaker similarity {now.similarity:.2f} (first {first.similarity:.2f})")
    return out


def languages(voice: Voice) -> list[str]:
    """The voice's languages the canary has sentences for, in the voice's order."""
    return [lang for lang in voice.languages if lang in SENTENCES]


class CanaryMonitor:
    """Runs the canary rounds of one daemon and keeps their readings (see the module docstring)."""

    def __init__(self, engine: Engine, admin: VoiceAdmin, runner: StreamRunner, metrics: Metrics,
                 config: DaemonConfig, bounds: DriftBounds = DriftBounds()) -> None:
        self.engine, self.admin, self.runner, self.metrics = engine, admin, runner, metrics
        self.interval_s = config.canary_interval_s
        self.below_streams = config.canary_below_streams
        self.max_tokens = config.canary_max_tokens
        self.bounds = bounds
        self._first: dict[tuple[str, str], Reading] = {}
        self._known: dict[str, VoiceFacts | None] = {}  # the facts each voice's first readings were taken with
        self._references: dict[str, tuple[VoiceFacts | None, np.ndarray | None]] = {}
        self._speaking: threading.Event | None = None  # the cancel flag of the canary stream in flight
        runner.on_admit(self._step_aside)

    # ------------------------------------------------------------------ readings

    def record(self, reading: Reading) -> list[str]:
        """Keep a reading: the gauges, the voice's first reading (the baseline) if it has none, and a warning
        for each measure beyond its bound from that baseline. Returns those measures (empty: no drift)."""
        key = (reading.voice, reading.language)
        first = self._first.setdefault(key, reading)
        problems = drift(first, reading, self.bounds) if first is not reading else []
        self.metrics.canary.set(reading.voice, reading.language, reading.duration_s, reading.level_dbfs,
                                reading.tokens, reading.eos, reading.similarity, len(problems))
        if problems:
            log.warning("canary: voice %s (%s) drifted from its first reading: %s", reading.voice, reading.language,
                        "; ".join(problems))
        return problems

    def first_reading(self, voice: str, language: str) -> Reading | None:
        return self._first.get((voice, language))

    # -------------------------------------------------------------------- rounds

    def busy(self) -> bool:
        """True while clients hold `canary_below_streams` streams or more (or the daemon drains)."""
        return self.runner.draining or self.runner.active >= self.below_streams

    async def run_forever(self) -> None:
        """A round every `interval_s` until cancelled (the daemon's stop)."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.round()
            except Exception:  # a canary must never take the daemon down
                log.exception("canary round failed")
                self.metrics.canary.rounds.labels("failed").inc()

    async def round(self) -> str:
        """Every resident voice's readings, one language after another. Returns the outcome: "done",
        "skipped" (clients held the slots), "cancelled" (a client came) or "failed" (a voice could not speak)."""
        voices = await asyncio.to_thread(self.engine.voices)
        self._forget_others(voices)
        outcome, done = "done", 0
        for voice in voices:
            for lang in languages(voice):
                if self.busy():
                    outcome = "skipped"
                    break
                try:
                    reading = await self.measure(voice, lang)
                except Cancelled:
                    outcome = "skipped" if self.busy() else "cancelled"
                    break
                except GsvdError as exc:  # unloaded meanwhile, a deadline, ...
                    log.warning("canary: voice %s (%s) could not speak: %s", voice.name, lang, exc)
                    outcome = "failed"
                    continue
                self.record(reading)
                done += 1
            if outcome in ("skipped", "cancelled"):
                break
        self.metrics.canary.rounds.labels(outcome).inc()
        log.info("canary round %s: %d reading(s)", outcome, done)
        return outcome

    async def measure(self, voice: Voice, language: str) -> Reading:
        """Speak the canary sentences of `language` in `voice` and measure them (Cancelled when a client
        needs the slot)."""
        cancel = threading.Event()
        self._speaking = cancel
        try:
            segments = await own_thread(partial(self._speak, voice.name, language, cancel), "gsvd-canary")
        except Cancelled as exc:
            if cancel.is_set():
                raise
            raise GsvdError(f"the canary sentences did not finish ({exc})") from None  # its deadline
        finally:
            self._speaking = None
        pcm = np.concatenate(segments) if segments else np.zeros(0, np.float32)
        tokens = [len(s) // SAMPLES_PER_TOKEN for s in segments]
        similarity = await own_thread(partial(self._similarity, voice.name, pcm), "gsvd-canary")
        return Reading(voice.name, language, len(pcm) / SAMPLE_RATE, measure_level(pcm, SAMPLE_RATE).rms_dbfs,
                       sum(tokens), all(t < self.max_tokens for t in tokens), similarity)

    def _speak(self, voice: str, language: str, cancel: threading.Event) -> list[np.ndarray]:
        """Worker thread: the audio of each canary sentence (one array per sentence)."""
        opts = self.engine.options_for(voice, seed=SEED, speed=1.0, max_new_tokens=self.max_tokens, language=language)
        parts: dict[int, list[np.ndarray]] = {}
        stream = self.engine.stream(" ".join(SENTENCES[language]), voice, opts, cancel=cancel,
                                    deadline=time.monotonic() + SENTENCE_DEADLINE_S)
        for chunk in stream:
            if len(chunk.pcm):
                parts.setdefault(chunk.segment, []).append(chunk.pcm)
        return [np.concatenate(parts[k]) for k in sorted(parts)]

    def _step_aside(self, active: int) -> None:
        """A client stream was admitted: at the threshold, cancel the canary's stream (its slot is freed)."""
        speaking = self._speaking
        if speaking is not None and active >= self.below_streams:
            speaking.set()

    def stop(self) -> None:
        speaking = self._speaking
        if speaking is not None:
            speaking.set()

    # ---------------------------------------------------------------- similarity

    def _similarity(self, voice: str, pcm: np.ndarray) -> float | None:
        """Worker thread: cosine similarity of `pcm` (32 kHz) to the voice's reference; None when the encoder
        or a reference recording is missing."""
        from gsvd.engine import speaker_embed

        if pcm.size == 0 or not speaker_embed.available():
            return None
        ref = self._reference_embedding(voice)
        if ref is None:
            return None
        from gsvd.engine.audio import resample_soxr

        encoder = speaker_embed.DVectorEncoder.shared()
        emb = encoder.embed([resample_soxr(pcm, SAMPLE_RATE, speaker_embed.RATE)])[0]
        return speaker_embed.similarity(emb, ref)

    def _reference_embedding(self, voice: str) -> np.ndarray | None:
        facts = self.admin.facts(voice)
        cached = self._references.get(voice)
        if cached is not None and cached[0] is facts:
            return cached[1]
        emb = None
        try:
            wav = _reference_audio(facts)
            if wav is not None:
                from gsvd.engine import speaker_embed

                emb = speaker_embed.DVectorEncoder.shared().embed([wav])[0]
        except (GsvdError, OSError) as exc:
            log.warning("canary: the reference recording of voice %s cannot be read (%s): no speaker similarity",
                        voice, exc)
        self._references[voice] = (facts, emb)
        return emb

    def _forget_others(self, voices: list[Voice]) -> None:
        """Drop the readings of voices no longer loaded, and the first readings of voices loaded again."""
        current = {v.name: self.admin.facts(v.name) for v in voices}
        for name in list(self._known):
            if name not in current or current[name] is not self._known[name]:
                for key in [k for k in self._first if k[0] == name]:
                    del self._first[key]
                    self.metrics.canary.forget(*key)
                self._known.pop(name)
                self._references.pop(name, None)
        for name, facts in current.items():
            self._known.setdefault(name, facts)


def _reference_audio(facts: VoiceFacts | None) -> np.ndarray | None:
    """The voice's reference recording at the encoder's rate (16 kHz mono), or None."""
    from gsvd.engine import speaker_embed
    from gsvd.engine.audio import load_audio, resample_soxr, to_mono

    if facts is None:
        return None
    if facts.reference is not None:
        return load_audio(facts.reference, speaker_embed.RATE)
    if facts.clip is not None:
        audio, rate = facts.clip
        return resample_soxr(to_mono(np.asarray(audio, np.float32)), rate, speaker_embed.RATE)
    return None
