"""The speaker check's parts: the encoder's front end matches librosa's (what resemblyzer was trained
on), its embeddings separate the seven LibriSpeech readers in shared/, clustering and the
majority / even-split / --speaker-ref decisions, and --speaker-ref parsing."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from gsvd.trainer.records import TrainError
from gsvd.trainer.speaker import EvenSplit, cluster, decide_speaker, mel_frames, parse_time, split_ref


def test_mel_front_end_matches_librosa(shared_speech):
    librosa = pytest.importorskip("librosa")
    from gsvd.engine.audio import load_audio

    wav = load_audio(shared_speech / "en" / "whispercpp_jfk.wav", 16000)
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40).T
    ours = mel_frames(wav)
    assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-5 * ref.max()


def test_embeddings_separate_seven_readers(shared_speech):
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.speaker import DVectorEncoder

    enc = DVectorEncoder.shared()
    names, wavs = [], []
    for spk in ("1688", "1998", "2033", "2414", "2609", "3005", "3080"):
        for f in sorted(glob.glob(str(shared_speech / "en" / "librispeech_test-other" / spk / "*.flac")))[:3]:
            names.append(spk)
            wavs.append(load_audio(f, 16000)[: 16000 * 8])
    emb = enc.embed(wavs)
    assert emb.shape == (21, 256) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    labels = cluster(emb @ emb.T)
    same = np.equal.outer(names, names)
    assert (np.equal.outer(labels, labels) == same).all()  # 7 clusters, exactly the readers


def _emb(groups: list[int], seed: int = 0) -> np.ndarray:
    """Unit vectors around one random centre per group (cosine ~0.9 within, ~0 across)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(groups) + 1, 64))
    e = centres[groups] + 0.3 * rng.standard_normal((len(groups), 64))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_majority_even_split_and_reference():
    ids = [f"c{i}" for i in range(5)]
    emb = _emb([0, 0, 1, 0, 1])
    d = decide_speaker(ids, emb, [5.0] * 5)
    assert [d.kept(i) for i in ids] == [True, True, False, True, False] and d.how.startswith("majority")
    with pytest.raises(EvenSplit, match=r"2 pieces, 10\.0 s and 2 pieces, 10\.0 s.*--speaker-ref") as err:
        decide_speaker(ids[:4], emb[[0, 1, 2, 4]], [5.0] * 4)
    assert err.value.decision.labels == [0, 0, 1, 1]
    d = decide_speaker(ids[:4], emb[[0, 1, 2, 4]], [5.0] * 4, ref=emb[2], ref_label="guest.wav")
    assert [d.kept(i) for i in ids[:4]] == [False, False, True, True] and "guest.wav" in d.how
    with pytest.raises(TrainError, match="sounds like none"):
        decide_speaker(ids, emb, [5.0] * 5, ref=_emb([0], seed=9)[0], ref_label="stranger.wav")
    assert decide_speaker(ids[:1], emb[:1], [5.0]).how == "one speaker"


def test_speaker_ref_forms(tmp_path):
    assert parse_time("12.5") == 12.5 and parse_time("1:02") == 62.0 and parse_time("1:02:03.5") == 3723.5
    assert parse_time("talk.wav") is None
    video = str(tmp_path / "talk.mp4")
    assert split_ref("1:02", [video]) == (tmp_path / "talk.mp4", 62.0)
    assert split_ref("talk.mp4@3", [video, str(tmp_path / "b.mp4")]) == (tmp_path / "talk.mp4", 3.0)
    clip = tmp_path / "ref.wav"
    clip.write_bytes(b"RIFF")
    assert split_ref(str(clip), [video]) == (clip, None)
    with pytest.raises(TrainError, match="FILE@TIME"):
        split_ref("12", [video, str(tmp_path / "b.mp4")])
    with pytest.raises(TrainError, match="not one of the inputs"):
        split_ref("other.mp4@3", [video])
    with pytest.raises(TrainError, match="no such file"):
        split_ref(str(tmp_path / "missing.wav"), [video])
