"""Stage 3 on real recordings: clean speech ranks above the same speech under music or noise and
above noise alone; clipping is caught; near-duplicates and repeated sentences are dropped; the
budget holds; too little clean speech is a clear error; the report lists every clip."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest

from gsvd.trainer.records import Clip, TrainError
from gsvd.trainer.workspace import Workspace


def _clip(ws: Workspace, cid: str, wav16: np.ndarray, speech: float | None = None) -> Clip:
    from gsvd.engine.audio import resample_soxr
    from gsvd.wavio import write_wav

    d = ws.stage_dir("segment") / "clips"
    write_wav(d / f"{cid}.16k.wav", wav16, 16000)
    write_wav(d / f"{cid}.32k.wav", resample_soxr(wav16, 16000, 32000), 32000)
    secs = wav16.size / 16000
    return Clip(cid, "test", 0.0, secs, f"segment/clips/{cid}.32k.wav", f"segment/clips/{cid}.16k.wav",
                secs if speech is None else speech)


def _load(path: Path, seconds: float = 9.0) -> np.ndarray:
    from gsvd.engine.audio import load_audio

    return load_audio(path, 16000)[: int(seconds * 16000)]


@pytest.fixture(scope="module")
def scored(shared_speech, tmp_path_factory):
    from gsvd.trainer.select import score_clips
    from gsvd.trainer.vad import speech_spans

    ws = Workspace(tmp_path_factory.mktemp("sel"))
    s = shared_speech
    pairs = {
        "zh_clean": s / "zh" / "fleurs_zh_1883_clip5.wav",
        "zh_music": s / "noisy" / "mix_fleurs_zh_bbbmusic_snr5.wav",
        "zh_noise": s / "noisy" / "mix_fleurs_zh_cc0noise_snr5.wav",
        "en_clean": Path(sorted(glob.glob(str(s / "en" / "librispeech_test-other" / "3080" / "*.flac")))[1]),
        "en_music0": s / "noisy" / "mix_librispeech3080_bbbmusic_snr0.wav",
        "en_music10": s / "noisy" / "mix_librispeech3080_bbbmusic_snr10.wav",
        "noise_only": s / "noisy" / "dfn_noise_freesound_573577.wav",
    }
    clips = []
    for cid, path in pairs.items():
        wav = _load(path)
        clips.append(_clip(ws, cid, wav, sum(e - b for b, e in speech_spans(wav))))
    clean = _load(pairs["en_clean"])
    clips.append(_clip(ws, "en_clipped", np.clip(clean * 8, -0.5, 0.5)))
    scores, prints = score_clips(clips, ws)
    return ws, {sc.id: sc for sc in scores}, prints


def test_clean_beats_music_noise_and_noise_alone(scored):
    _, sc, _ = scored
    for row in sc.values():
        print(f"{row.id:11s} snr {row.snr_db:5.1f} music {row.music:.2f} clip {row.clipping:.4f} "
              f"speech {row.speech_ratio:.2f} rate {row.rate:.1f} score {row.score:.3f}")
    assert sc["zh_clean"].score > max(sc["zh_music"].score, sc["zh_noise"].score)
    assert sc["en_clean"].score > max(sc["en_music0"].score, sc["en_music10"].score)
    assert sc["noise_only"].score < min(sc["zh_clean"].score, sc["en_clean"].score)
    assert sc["zh_music"].music > sc["zh_clean"].music and sc["en_music0"].music > sc["en_clean"].music


def test_clipping_is_measured_and_costs_score(scored):
    _, sc, _ = scored
    assert sc["en_clipped"].clipping > 0.005 > sc["en_clean"].clipping
    assert sc["en_clipped"].score < sc["en_clean"].score


def test_selection_drops_for_stated_reasons(scored):
    from gsvd.trainer.select import select_clips

    _, sc, prints = scored
    order = select_clips([sc[k] for k in sc], target_seconds=60, min_seconds=5, prints=prints)
    kept = {s.id for s in order if s.kept}
    assert {"zh_clean", "en_clean"} <= kept
    assert not {"zh_music", "en_music0", "noise_only", "en_clipped"} & kept
    assert all(s.reason.startswith("kept" if s.kept else "dropped") for s in order)


def test_near_duplicates_and_repeated_sentences(shared_speech, tmp_path):
    from gsvd.trainer.select import score_clips, select_clips

    ws = Workspace(tmp_path)
    files = sorted(glob.glob(str(shared_speech / "en" / "librispeech_test-other" / "3080" / "*.flac")))
    a, b, c = (_load(Path(f)) for f in files[:3])
    rng = np.random.default_rng(0)
    clips = [
        _clip(ws, "a", a), _clip(ws, "b", b), _clip(ws, "c", c),
        _clip(ws, "a_again", a.copy()),
        _clip(ws, "a_louder_noisy", (a * 1.8 + rng.normal(0, 0.002, a.size)).astype(np.float32)),
        _clip(ws, "b_excerpt", b[16000:16000 * 5].copy()),
    ]
    scores, prints = score_clips(clips, ws)
    texts = {"c": "I knew you could not choose.", "b": "Different words entirely."}
    order = {s.id: s for s in select_clips(scores, 60, 3, texts=texts, prints=prints)}
    same_a = [order[k].kept for k in ("a", "a_again", "a_louder_noisy")]
    assert sum(same_a) == 1  # one copy of recording a survives, whichever scored best
    assert order["b"].kept != order["b_excerpt"].kept
    assert all(order[k].duplicate_of for k in ("a", "a_again", "a_louder_noisy", "b", "b_excerpt") if not order[k].kept)
    assert order["c"].kept and (order["b"].kept or order["b_excerpt"].kept)  # other sentences of the speaker stay
    texts["c"] = "different words, entirely!"  # the same sentence as b (after normalization)
    order = {s.id: s for s in select_clips(scores, 60, 3, texts=texts, prints=prints)}
    assert order["b"].kept != order["c"].kept and "repeats the sentence" in (order["b"].reason + order["c"].reason)


def test_budget_and_not_enough_speech(scored):
    from gsvd.trainer.select import select_clips

    _, sc, prints = scored
    rows = [sc[k] for k in sc]
    order = select_clips(rows, target_seconds=5, min_seconds=1, prints=prints)
    kept = [s for s in order if s.kept]
    assert len(kept) == 1 and any("budget" in s.reason for s in order)
    with pytest.raises(TrainError, match=r"found \d+\.\d s of usable clips, need at least 600 s") as err:
        select_clips(rows, target_seconds=60, min_seconds=600, prints=prints)
    assert "music" in str(err.value) or "noisy" in str(err.value)


def test_report_lists_every_clip(scored):
    from gsvd.trainer.report import write_report
    from gsvd.trainer.select import select_clips

    ws, sc, prints = scored
    rows = select_clips([sc[k] for k in sc], 60, 5, prints=prints)
    md, png = write_report(rows, ws)
    text = md.read_text()
    assert all(f"| {s.id} |" in text for s in rows) and "kept" in text and "dropped" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
