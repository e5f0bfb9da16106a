"""Files written by gsvd say they are AI-generated, in LIST/INFO and in a JSON chunk, readable back."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from gsvd.engine.provenance.label import AiLabel, read_label
from gsvd.wavio import read_wav_metadata, write_wav


def test_label_round_trip_and_audio_unchanged(tmp_path) -> None:
    pcm = (0.5 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)
    label = AiLabel(voice="alice", producer="ACME-0001", watermark="gsvd-ss1 key=public")
    labelled = write_wav(tmp_path / "a.wav", pcm, 32000, label=label)
    plain = write_wav(tmp_path / "b.wav", pcm, 32000)
    assert read_label(labelled) == label
    assert read_label(plain) is None and read_wav_metadata(plain).info == {}
    meta = read_wav_metadata(labelled)
    assert "AI-generated" in meta.info["ICMT"] and "alice" in meta.info["ICMT"]
    assert meta.info["ISFT"].startswith("gsvd ") and meta.aigc["AIGC"]["Label"] == "1"
    assert meta.aigc["AIGC"]["ContentProducer"] == "ACME-0001" and meta.aigc["ai_generated"] is True
    a, rate = sf.read(labelled, dtype="int16")
    b, _ = sf.read(plain, dtype="int16")
    assert rate == 32000 and np.array_equal(a, b) and len(a) == 8000


def test_other_readers_see_the_tags(tmp_path) -> None:
    av = pytest.importorskip("av")
    path = write_wav(tmp_path / "a.wav", np.zeros(3200, np.float32), 16000, label=AiLabel(voice="bob"))
    with av.open(str(path)) as container:
        tags = container.metadata
    assert tags["genre"] == "AI-generated speech" and "bob" in tags["artist"]


def test_read_rejects_non_wav(tmp_path) -> None:
    (tmp_path / "x.wav").write_bytes(b"not a riff file")
    with pytest.raises(ValueError, match="not a RIFF/WAVE"):
        read_wav_metadata(tmp_path / "x.wav")
    with pytest.raises(ValueError):
        AiLabel.from_dict({"voice": "x"})
