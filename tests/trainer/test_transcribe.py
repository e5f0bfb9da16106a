"""Stage 4 and the text sources: SRT/VTT parsing (real-world quirks), embedded subtitle tracks,
sidecar lookup, transcript files, language detection, mismatched subtitles, ASR configuration
errors, the list written from the clips' texts."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from gsvd.trainer.asr import FasterWhisper
from gsvd.trainer.records import Clip, SourceAudio, TrainError
from gsvd.trainer.subtitles import Cue, embedded_cues, parse_srt, parse_vtt, read_subtitles
from gsvd.trainer.textsource import check_cues_match, detect_lang, find_sidecar, read_transcript_file
from gsvd.trainer.transcribe import transcribe_clips
from gsvd.trainer.workspace import Workspace

SRT = "\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there,\r\nfriend.\r\n\r\n2\r\n00:00:03,000 --> " \
      "00:00:04,000\r\n[music]\r\n\r\n3\r\n01:00:00,5 --> 01:00:01,000\r\n{\\an8}♪ la la ♪ Bye - now\r\n"
VTT = "WEBVTT - title\n\nSTYLE\n::cue { color: red }\n\nNOTE a note\nover two lines\n\nintro\n00:01.000 --> " \
      "00:02.000 align:start position:10%\n<c.yellow>Hi</c> <v Bob>you</v>\n\n00:00:03.500 --> 00:00:04.250\nsecond\n"


def test_srt_quirks():
    cues = parse_srt(SRT)
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 2.5, "Hello there, friend."), (3600.5, 3601.0, "Bye - now")]


def test_vtt_quirks():
    assert [(c.start, c.end, c.text) for c in parse_vtt(VTT)] == [(1.0, 2.0, "Hi you"), (3.5, 4.25, "second")]


def test_malformed_files_name_the_line(tmp_path):
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03 -> 4\nbroken\n")
    with pytest.raises(TrainError, match=r"bad\.srt:6: expected a timing line"):
        read_subtitles(bad)
    back = tmp_path / "back.vtt"
    back.write_text("WEBVTT\n\n00:05.000 --> 00:04.000\nbackwards\n")
    with pytest.raises(TrainError, match=r"back\.vtt:3: cue ends"):
        read_subtitles(back)
    with pytest.raises(TrainError, match="must start with 'WEBVTT'"):
        parse_vtt("00:01.000 --> 00:02.000\nx\n", "x.vtt")


def _clip(cid: str, start: float, end: float, source: str = "/v.mp4", text: str | None = None) -> Clip:
    return Clip(cid, source, start, end, f"segment/clips/{cid}.32k.wav", f"segment/clips/{cid}.16k.wav", end - start,
                text=text, origin="subtitle:/v.srt" if text else "", lang="en" if text else None)


def test_transcript_file_formats(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("# comment\n/data/a_0001.32k.wav|alice|en|First line.\nb_0002|Second line.\nc_0003\tThird line.\n")
    t = read_transcript_file(f)
    assert t["a_0001"] == "First line." and t["b_0002"] == "Second line." and t["c_0003"] == "Third line."
    f.write_text("just text without a name\n")
    with pytest.raises(TrainError, match=r"list\.txt:1"):
        read_transcript_file(f)


def test_detect_lang():
    assert detect_lang("今天天气很好") == "zh" and detect_lang("今日はいい天気ですね") == "ja"
    assert detect_lang("Hello there.") == "en"


def test_asr_errors_without_model(tmp_path):
    with pytest.raises(TrainError, match="no faster-whisper model there"):
        FasterWhisper(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"x")
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        with pytest.raises(TrainError, match="needs faster-whisper"):
            FasterWhisper(tmp_path)
    else:
        with pytest.raises(TrainError, match="cannot load the model"):
            FasterWhisper(tmp_path)


def _mkv_with_subtitles(path: Path, cues: list[tuple[float, float, str]], seconds: float = 8.0) -> Path:
    import av

    with av.open(str(path), "w") as out:
        a = out.add_stream("flac", rate=16000)
        a.layout = "mono"
        s = out.add_stream("subrip")
        s.codec_context.time_base = Fraction(1, 1000)
        s.codec_context.subtitle_header = b""  # the encoder will not open without one
        frame = av.AudioFrame.from_ndarray(np.zeros((1, int(16000 * seconds)), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for pkt in [*a.encode(frame), *a.encode(None)]:
            out.mux(pkt)
        for start, end, text in cues:
            pkt = av.Packet(text.encode())
            pkt.stream = s
            pkt.pts = pkt.dts = int(start / s.time_base)
            pkt.duration = int((end - start) / s.time_base)
            out.mux(pkt)
    return path


def test_embedded_subtitle_track(tmp_path):
    video = _mkv_with_subtitles(tmp_path / "movie.mkv", [(0.5, 1.5, "<i>hello</i> there"), (1.8, 2.6, "second cue")])
    cues = embedded_cues(video)
    assert [(c.start, c.end, c.text) for c in cues] == [(0.5, 1.5, "hello there"), (1.8, 2.6, "second cue")]
    plain = _mkv_with_subtitles(tmp_path / "plain.mkv", [])
    assert embedded_cues(plain) in (None, [])


def test_sidecar_lookup(tmp_path):
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"x")
    assert find_sidecar(video) is None
    (tmp_path / "talk.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhi\n")
    assert find_sidecar(video) == tmp_path / "talk.en.srt"
    (tmp_path / "talk.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhi\n")
    assert find_sidecar(video) == tmp_path / "talk.srt"


def test_list_written_from_the_clips_texts(tmp_path):
    ws = Workspace(tmp_path / "run")
    clips = [_clip("t_0000", 0.4, 4.0, text="First sentence here."), _clip("t_0001", 5.0, 9.0),
             _clip("t_0002", 9.5, 13.0, text="Third one.")]
    clips[0].speech_seconds, clips[2].speech_seconds = 1.3, 0.6
    utts, drops = transcribe_clips(clips, ws, speaker="carol", checked={"t_0000": "First sentence here."})
    assert [(u.clip_id, u.text, u.lang) for u in utts] == [("t_0000", "First sentence here.", "en"),
                                                          ("t_0002", "Third one.", "en")]
    assert drops == {"no text": 1}  # and "Third one." was checked here (select had not): 6 phones in 0.6 s
    lines = (ws.root / "transcribe" / "train.list").read_text().splitlines()
    assert len(lines) == 2 and lines[0].endswith("|carol|en|First sentence here.")
    clips[2].text = "A much longer sentence that nobody could say in half a second."
    utts, drops = transcribe_clips(clips, ws, speaker="carol")
    assert [u.clip_id for u in utts] == ["t_0000"] and drops == {"no text": 1, "text mismatch": 1}


def test_subtitles_that_do_not_belong_are_an_error():
    src = SourceAudio("/v/clip.mp4", "0" * 64, 0, 12.0, "extract/x.32k.wav", "extract/x.16k.wav", -23.0, 0.0)
    with pytest.raises(TrainError, match=r"other\.srt do not match /v/clip\.mp4: cues span 100\.0-104\.0 s"):
        check_cues_match([Cue(100.0, 104.0, "from another film")], "other.srt", src, 0.0)
    with pytest.raises(TrainError, match=r"10% of the cue time has speech"):
        check_cues_match([Cue(1.0, 5.0, "silent film")], "other.srt", src, 0.1)
    check_cues_match([Cue(1.0, 5.0, "fine")], "ok.srt", src, 0.9)


def test_no_text_anywhere_says_what_works(tmp_path):
    ws = Workspace(tmp_path / "run")
    with pytest.raises(TrainError, match=r"no clip has a transcript.*--subtitles.*--asr.*--transcript"):
        transcribe_clips([_clip("n_0000", 1.0, 5.0)], ws, speaker="x")
