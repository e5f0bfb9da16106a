"""Harder enrollment inputs, built here from the real LibriSpeech speech in shared/: subtitles shifted
against the audio, music or noise under part of the speech, cue texts that belong to other cues,
two people talking at once. Each test runs the pipeline's extract -> segment -> select (or the
function under test) and checks which clips are kept against the script the media was built from.
`benchmarks/train_hard_bench.py` measures the same classes of input as precision and recall."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gsvd.trainer.cues import estimate_offset, shift_cues
from gsvd.trainer.records import ClipScore
from gsvd.trainer.subtitles import Cue

from .conftest import build_talk, librispeech
from .test_train_data import _assert_text_is_audio, _inside, _kept, _run, _settings

pytest.importorskip("av")
pytest.importorskip("silero_vad")


# -- subtitles shifted against the audio -------------------------------------------------------------


def _spans_and_cues(shift: float, linger: float = 0.0):
    """Six 'utterances' of 3-5 s of speech with 1 s pauses (each with a 0.3 s pause inside) and their cues
    moved by `shift` and held `linger` s past the speech."""
    spans, cues, t = [], [], 3.5
    for i in range(6):
        d = 3.0 + (i % 3)
        spans += [(t, t + d / 2 - 0.15), (t + d / 2 + 0.15, t + d)]
        cues.append(Cue(max(0.0, t + shift), t + d + shift + linger, f"line {i}"))
        t += d + 1.0
    return spans, cues, t + 1.0


@pytest.mark.parametrize("shift", [0.5, 1.2, -2.0, 3.0])
def test_offset_estimate_finds_a_constant_shift(shift):
    spans, cues, total = _spans_and_cues(shift)
    off = estimate_offset(cues, spans, total)
    assert off.seconds == pytest.approx(-shift, abs=0.05) and off.agree_after > off.agree_before + 0.1
    moved = shift_cues(cues, off.seconds)
    assert all(abs(m.start - s) < 0.06 for m, (s, _) in zip(moved, spans[::2], strict=True))


def test_offset_estimate_leaves_aligned_and_loosely_timed_cues_alone():
    for linger in (0.0, 0.4, 0.9):  # cues that stay up after the speech are common and not a shift
        spans, cues, total = _spans_and_cues(0.0, linger)
        assert estimate_offset(cues, spans, total).seconds == 0.0
    assert estimate_offset(cues[:1], spans, total).seconds == 0.0  # one cue: nothing to line up


@pytest.mark.parametrize("shift", [1.5, -2.5])
def test_shifted_subtitles_are_moved_onto_the_speech(shared_speech, tmp_path, shift):
    """A sidecar .srt that is 1.5 s late (or 2.5 s early) for the whole video: before, clips were cut at the
    wrong times and kept with texts of the neighbouring utterances (bench: 0 of 2 kept clips right)."""
    from gsvd.trainer.sample_video import mux_video, write_srt

    utts = librispeech(shared_speech, "2609", 5, lo=3.0, hi=8.0)
    audio, script = build_talk(utts, gap=0.8, lead=3.0)
    mp4 = mux_video(tmp_path / "talk.mp4", audio, 16000)
    write_srt(tmp_path / "talk.srt", [(s + shift, e + shift, u.text) for s, e, u in script])
    ws, lines = _run(tmp_path, _settings(tmp_path, [mp4]))
    kept = _kept(ws)
    assert len(kept) >= 4
    _assert_text_is_audio(kept, script)
    said = [re.search(r"cues were (\d+\.\d+) s (early|late) against the speech and were moved", x) for x in lines]
    said = [m for m in said if m]
    assert said and abs(float(said[0][1]) - abs(shift)) < 0.1 and said[0][2] == ("early" if shift < 0 else "late")


# -- cue texts that belong to other speech ---------------------------------------------------------------


def test_cue_text_too_long_for_this_talkers_pace(shared_speech, tmp_path):
    """One cue carries its own line plus words of other lines: about 1.7x the phones this reader speaks per
    second, still inside the language's absolute bounds (which must admit every talker), so before only an
    ASR could catch it. Against the run's median rate it is dropped; the right cues all stay."""
    from gsvd.trainer.textalign import phone_count

    utts = librispeech(shared_speech, "2609", 6, lo=3.0, hi=9.0)
    audio, script = build_talk(utts, gap=1.5)
    rates = [phone_count(u.text, "en") / (e - s) for s, e, u in script]
    k = max(range(len(utts)), key=lambda i: script[i][1] - script[i][0])
    extra = [w for i, u in enumerate(utts) if i != k for w in u.text.split()]
    n = next(i for i in range(1, len(extra) + 1)
             if phone_count(" ".join([utts[k].text, *extra[:i]]), "en") / (script[k][1] - script[k][0])
             >= 1.72 * sorted(rates)[len(rates) // 2])
    texts = {k: " ".join([utts[k].text, *extra[:n]])}
    from .test_train_data import _video

    mp4, script = _video(tmp_path, "talk", utts, gap=1.5, texts=texts)
    ws, _ = _run(tmp_path, _settings(tmp_path, [mp4]))
    scores = ws.load_records("select", "scores.json", ClipScore)
    bad = [sc for sc in scores if sc.text == texts[k]]
    assert len(bad) == 1 and bad[0].phone_rate < 20.5  # inside the absolute English bounds
    assert bad[0].drop == "text mismatch" and "pace" in bad[0].reason, bad[0].reason
    kept = _kept(ws)
    assert len(kept) == len(scores) - 1 >= 4
    _assert_text_is_audio(kept, script)


# -- crosstalk -------------------------------------------------------------------------------------------


def test_crosstalk_inside_a_clip_is_dropped(shared_speech, tmp_path):
    """A man (3005) reads six lines; over 2.5 s of one of them a woman (1998) talks at the same level. The
    clip's average voice is still his (similarity 0.97 to his other clips, so the speaker check kept it);
    its 1.6 s windows over the overlap are not (0.69-0.75 to the clip), and it is dropped as mixed voices.
    The clean lines stay. (The check is not a general overlap detector: the same woman over another of his
    lines, or a man over him, leaves every window above 0.80 -- see `select._mixed_voices`.)"""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.sample_video import mux_video, write_srt

    utts = librispeech(shared_speech, "3005", 6, lo=2.5, hi=9.5, skip=1)
    audio, script = build_talk(utts, gap=0.8)
    k = 4
    s, e, _ = script[k]
    other = load_audio(librispeech(shared_speech, "1998", 2, lo=2.5, hi=9.5, skip=5)[1].path, 16000)[4800:44800]
    at = int((s + 0.3 * (e - s)) * 16000)
    mine = audio[int(s * 16000):int(e * 16000)]
    audio[at:at + other.size] += other * float(np.sqrt(np.mean(mine**2) / np.mean(other**2)))
    mp4 = mux_video(tmp_path / "talk.mp4", audio, 16000)
    write_srt(tmp_path / "talk.srt", [(a, b, u.text) for a, b, u in script])
    ws, lines = _run(tmp_path, _settings(tmp_path, [mp4]))
    scores = {sc.id: sc for sc in ws.load_records("select", "scores.json", ClipScore)}
    kept = _kept(ws)
    assert all(utts[k] not in _inside(c, script) for c, _ in kept)
    assert len(kept) == len(scores) - 1 >= 3
    mixed = [sc for sc in scores.values() if not sc.kept]
    assert mixed[0].drop == "mixed voices" and "another voice over the speech" in mixed[0].reason
    assert "1 mixed voices" in lines[-1]
    _assert_text_is_audio(kept, script)
