"""Speech spans with Silero VAD (the `silero_vad` package's bundled model; no download).

Importing silero_vad / loading its model changes torch's intra-op thread count, so the
count is saved and restored around every use. The model is loaded once per process.
"""

from __future__ import annotations

import threading

import numpy as np

_MODEL = None
_LOCK = threading.Lock()


def _model():
    global _MODEL
    if _MODEL is None:
        from silero_vad import load_silero_vad

        _MODEL = load_silero_vad()
    return _MODEL


def speech_spans(wav16: np.ndarray, threshold: float = 0.5, min_silence_ms: int = 100, min_speech_ms: int = 250,
                 pad_ms: int = 30) -> list[tuple[float, float]]:
    """Mono float32 audio at 16 kHz -> [(start s, end s)] of speech, in order."""
    import torch

    if wav16.size == 0:
        return []
    threads = torch.get_num_threads()
    try:
        with _LOCK:
            from silero_vad import get_speech_timestamps

            model = _model()
            model.reset_states()
            stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wav16, np.float32)), model,
                                           threshold=threshold, sampling_rate=16000,
                                           min_speech_duration_ms=min_speech_ms,
                                           min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms)
    finally:
        torch.set_num_threads(threads)
    return [(s["start"] / 16000, s["end"] / 16000) for s in stamps]
