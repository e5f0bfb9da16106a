"""Training text that matches the audio, piece by piece: cue ordering/overlap/rolling captions, clips
cut on cue boundaries, long cues split only at pauses that match punctuation, transcript-to-ASR
alignment, the character error rate, the speaking-rate bounds measured on shared/ speech."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsvd.trainer.asr import Word
from gsvd.trainer.cues import cue_clips, units_of
from gsvd.trainer.subtitles import Cue
from gsvd.trainer.textalign import align, assign, cer, join, tokens, untimed_at


def test_units_sort_merge_overlaps_and_drop_rolling_repeats():
    cues = [Cue(6.7, 8.0, "third part."), Cue(0.0, 2.0, "Hello there,"), Cue(2.0, 4.1, "Hello there, how are you?"),
            Cue(3.95, 4.8, "Fine."), Cue(4.0, 6.6, "Overlapping talk.")]
    units = units_of(cues)
    assert [u.text for u in units] == ["Hello there,", "how are you?", "Fine. Overlapping talk.", "third part."]
    # the rolling repeat went; 0.15 s of jitter is cut in the middle; a real overlap makes one unit
    assert units[1].end == units[2].start == pytest.approx(4.025)
    assert all(a.end <= b.start for a, b in zip(units, units[1:]))
    assert units_of([Cue(1.0, 2.0, "same"), Cue(1.5, 3.0, "same")])[0].end == 3.0  # a repeated caption: one


def _speech(spans, seconds):
    """A 16 kHz signal loud where `spans` say (so the quietest-point fallback has something to find)."""
    rng = np.random.default_rng(0)
    wav = np.zeros(int(seconds * 16000), np.float32)
    for s, e in spans:
        wav[int(s * 16000):int(e * 16000)] = 0.1 * rng.standard_normal(int(e * 16000) - int(s * 16000))
    return wav


def test_cue_clips_merge_neighbours_and_keep_text_inside():
    spans = [(0.5, 2.4), (2.9, 4.8), (5.3, 7.0), (12.0, 14.5), (20.0, 21.0), (30.0, 33.0), (33.4, 35.5)]
    cues = [Cue(0.45, 2.5, "One two."), Cue(2.85, 4.9, "Three four."), Cue(5.25, 7.1, "Five six."),
            Cue(11.9, 14.6, "Alone here."), Cue(19.9, 21.1, "Too short."), Cue(30.0, 33.1, "Near")]
    clips, drops = cue_clips(cues, _speech(spans, 40), spans)
    got = [(c.text, c.start, c.end) for c in clips]
    assert [g[0] for g in got] == ["One two. Three four. Five six.", "Near"]
    first, near = clips
    assert first.start <= 0.45 and first.end >= 7.0 and first.end - first.start <= 10.0
    # "Near" covers speech to 33.1; the speech after it (33.4-35.5) has no cue: the clip stops before it
    assert near.end <= 33.4 + 1e-6 and near.start <= 30.0
    assert drops == {"cue under 3 s": 2}  # "Alone here." (2.7 s of cue) and "Too short."


def test_cues_not_merged_across_uncovered_speech():
    spans = [(0.5, 3.0), (3.3, 3.9), (4.2, 7.0)]  # 3.3-3.9: speech no cue covers
    cues = [Cue(0.5, 3.0, "First bit here."), Cue(4.2, 7.0, "Second bit here.")]
    clips, _ = cue_clips(cues, _speech(spans, 9), spans, min_s=2.0)
    assert [c.text for c in clips] == ["First bit here.", "Second bit here."]
    assert clips[0].end <= 3.3 and clips[1].start >= 3.9


def test_long_cue_split_only_where_punctuation_meets_a_pause():
    # 18 s of speech with pauses at 6.2 and 12.4 s; the text's commas sit at 1/3 and 2/3 of its letters
    spans = [(0.2, 6.0), (6.4, 12.2), (12.6, 18.4)]
    text = "aaaa bbbb cccc dddd eeee, ffff gggg hhhh iiii jjjj, kkkk llll mmmm nnnn oooo."
    clips, drops = cue_clips([Cue(0.2, 18.4, text)], _speech(spans, 20), spans)
    assert [c.text for c in clips] == ["aaaa bbbb cccc dddd eeee,", "ffff gggg hhhh iiii jjjj,", "kkkk llll mmmm nnnn oooo."]
    assert clips[0].end <= 6.4 and clips[1].start >= 6.0 and clips[1].end <= 12.6 and clips[2].start >= 12.2
    assert not drops
    # the same audio with the comma far from any pause: not split, dropped with the reason
    odd = "aaaa, bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp."
    clips, drops = cue_clips([Cue(0.2, 18.4, odd)], _speech(spans, 20), spans)
    assert clips == [] and drops == {"cue over 10 s with no pause at its punctuation": 1}


def test_tokens_keep_punctuation_and_split_cjk():
    toks = tokens("Hello, world! 今天天气，很好。 ok")
    assert [t.key for t in toks] == ["hello", "world", "今", "天", "天", "气", "很", "好", "ok"]
    assert join(toks) == "Hello, world! 今天天气，很好。 ok"


def test_alignment_survives_asr_errors_and_cuts_at_times():
    words = [Word(0.0, 0.4, "the"), Word(0.4, 0.9, "quick"), Word(1.0, 1.4, "brwn"), Word(1.5, 2.0, "fox"),
             Word(3.0, 3.5, "jumps"), Word(3.5, 3.9, "over"), Word(4.8, 5.2, "lazy"), Word(5.2, 5.8, "dogs")]
    toks = align("The quick brown fox. It jumps over the lazy dog!", words)
    assert [(t.surface, t.timed) for t in toks][:4] == [("The", True), ("quick", True), ("brown", True), ("fox.", True)]
    groups, unsure = assign(toks, [(0.0, 2.6), (2.6, 6.0)])
    assert join(groups[1]).endswith("jumps over the lazy dog!")  # "the", unheard inside the clip, stays in it
    # "It" was not heard and there is no speech to put it on: it lies between "fox" (2.0) and "jumps" (3.0),
    # so an edge there cannot place it and both clips are unsure
    assert untimed_at(toks, 2.5) and not untimed_at(toks, 0.95) and unsure == {0, 1}
    # with VAD speech at 2.3-2.6 s it is placed there, and the edge at 2.7 is clear of it
    toks = align("The quick brown fox. It jumps over the lazy dog!", words, spans=[(0.0, 2.0), (2.3, 2.6), (3.0, 6.0)])
    groups, unsure = assign(toks, [(0.0, 2.7), (2.7, 6.0)])
    assert [join(g) for g in groups] == ["The quick brown fox. It", "jumps over the lazy dog!"] and not unsure
    # a word whose ASR time runs into the silence after its clip still goes to that clip
    late = align("one two three", [Word(0.1, 0.5, "one"), Word(0.5, 0.9, "two"), Word(1.0, 2.2, "three")])
    groups, unsure = assign(late, [(0.0, 1.2), (3.0, 5.0)])
    assert [join(g) for g in groups] == ["one two three", ""] and not unsure


def test_cer():
    assert cer("Hello, World!", "hello world") == 0.0
    assert cer("hello there", "hello where") == pytest.approx(1 / 10)
    assert cer("something else entirely", "hello world") > 0.8


def test_speaking_rate_bounds_hold_for_real_speech(shared_speech):
    """Every transcribed recording in shared/ lies inside its language's phones-per-second bounds, and the
    text of a neighbouring longer utterance on it does not."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.select import RATE_BOUNDS
    from gsvd.trainer.textalign import phone_count
    from gsvd.trainer.vad import speech_spans

    manifest = json.loads((shared_speech / "manifest.json").read_text())
    rows = [m for m in manifest if m["transcript"] and m["lang"][:2] in RATE_BOUNDS and "jfk.mp3" not in m["file"]
            and not m["file"].startswith(("noisy", "multi", "video", "en/moonshine"))
            and (not m["file"].startswith("en/librispeech") or m["file"].endswith("1.flac"))]  # one per speaker
    assert len(rows) >= 20 and {m["lang"][:2] for m in rows} == {"en", "zh", "ja"}
    for m in rows:
        text = m["transcript"].split(")", 1)[-1].strip()
        speech = sum(e - s for s, e in speech_spans(load_audio(shared_speech / m["file"], 16000)))
        lo, hi = RATE_BOUNDS[m["lang"][:2]]
        assert lo <= phone_count(text, m["lang"][:2]) / speech <= hi, m["file"]
    short = next(m for m in manifest if m["file"].endswith("3080-5032-0000.flac"))  # 4.6 s
    long_text = next(m for m in manifest if m["file"].endswith("3080-5032-0009.flac"))["transcript"]  # 22.8 s
    speech = sum(e - s for s, e in speech_spans(load_audio(shared_speech / short["file"], 16000)))
    assert phone_count(long_text.split(")", 1)[-1], "en") / speech > RATE_BOUNDS["en"][1]
