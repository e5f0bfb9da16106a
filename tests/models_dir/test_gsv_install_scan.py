"""Scanning a GPT-SoVITS install: pairing by experiment, versions, epochs, reference choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gsvd.engine.errors import InvalidInput
from gsvd.engine.models_dir.gsv_install import parse_list, pick_pair, scan_install, voice_name_for


def _wav(path: Path, seconds: float, sr: int = 32000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(seconds * sr), np.float32), sr)
    return path


def _weights(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"w")


def _install(tmp_path: Path) -> Path:
    root = tmp_path / "GPT-SoVITS"
    for rel in [
        "GPT_weights_v2/alice-e5.ckpt",
        "GPT_weights_v2/alice-e15.ckpt",
        "SoVITS_weights_v2/alice_e4_s100.pth",
        "SoVITS_weights_v2/alice_e8_s200.pth",
        "GPT_weights_v2ProPlus/bob-e10.ckpt",
        "SoVITS_weights_v2ProPlus/bob_e8_s96.pth",
        "GPT_weights_v2/carol-e15.ckpt",
        "SoVITS_weights_v2/carol_e8_s80.pth",
        "SoVITS_weights_v2Pro/carol_e8_s80.pth",
        "GPT_weights_v2/dave-e3.ckpt",
        "SoVITS_weights_v4/erin_e2_s10_l32.pth",
        "GPT_weights_v2/notes.txt",
    ]:
        _weights(root, rel)
    # alice: trained list in logs; the list points at Windows paths that exist only as 5-wav32k copies
    lst = root / "output" / "asr_opt" / "slicer_opt.list"
    lst.parent.mkdir(parents=True)
    lines = [
        "D:\\GPT-SoVITS\\output\\slicer_opt\\a1.wav|alice|ZH|太短了。",
        "D:\\GPT-SoVITS\\output\\slicer_opt\\a2.wav|alice|ZH|这一句长度正好合适。",
        "D:\\GPT-SoVITS\\output\\slicer_opt\\a3.wav|alice|ZH|这一句太长了。",
        "D:\\GPT-SoVITS\\output\\slicer_opt\\a4.wav|alice|ZH|这一句也可以。",
        "bad line without fields",
        "output/bob/b1.wav|bob|EN|Hello there, this is Bob.",
        "output/bob/b2.wav|bob|JP|こんにちは。",
    ]
    lst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    logs = root / "logs" / "alice"
    logs.mkdir(parents=True)
    (logs / "2-name2text.txt").write_text(
        "a1.wav\tt ai4\t1 1\t太短了。\na2.wav\tz h\t1\t这一句长度正好合适。\na3.wav\tx\t1\t这一句太长了。\n"
        "a4.wav\tx\t1\t这一句也可以。\n",
        encoding="utf-8",
    )
    _wav(logs / "5-wav32k" / "a1.wav", 2.0)
    _wav(logs / "5-wav32k" / "a2.wav", 6.5)
    _wav(logs / "5-wav32k" / "a3.wav", 12.0)
    _wav(logs / "5-wav32k" / "a4.wav", 4.0)
    _wav(root / "output" / "bob" / "b1.wav", 4.0)
    _wav(root / "output" / "bob" / "b2.wav", 5.0)
    return root


def test_scan_pairs_and_references(tmp_path: Path) -> None:
    scan = scan_install(_install(tmp_path))
    by = {c.exp: c for c in scan.candidates}
    assert sorted(by) == ["alice", "bob", "carol", "dave"]
    alice = by["alice"]
    assert alice.ready, alice.problems
    assert alice.gpt.path.name == "alice-e15.ckpt" and alice.sovits.path.name == "alice_e8_s200.pth"
    assert alice.sovits.version == "v2"
    assert alice.reference.audio.name == "a2.wav" and alice.reference.text == "这一句长度正好合适。"
    assert alice.reference.language == "zh" and alice.reference.duration == pytest.approx(6.5)
    bob = by["bob"]
    assert bob.ready and bob.sovits.version == "v2ProPlus" and bob.gpt.path.name == "bob-e10.ckpt"
    assert bob.reference.audio.name == "b2.wav" and bob.reference.language == "ja"  # 5.0 s is closer to 6 s
    carol = by["carol"]
    assert (
        not carol.ready
        and "several versions (v2, v2Pro)" in carol.problems[0]
        and "--version" in carol.problems[0]
    )
    assert any("no reference clip" in p and "no training list mentions it" in p for p in carol.problems)
    dave = by["dave"]
    assert dave.problems[0] == "weights: no SoVITS weights for 'dave'"
    assert any("v4 (LoRA) SoVITS weights are not supported yet" in s for s in scan.skipped)


def test_version_and_epoch_choices(tmp_path: Path) -> None:
    root = _install(tmp_path)
    scan = scan_install(root, version="v2Pro")
    carol = next(c for c in scan.candidates if c.exp == "carol")
    assert carol.sovits.version == "v2Pro" and carol.gpt.path.name == "carol-e15.ckpt"  # only GPT there is v2
    alice = next(c for c in scan.candidates if c.exp == "alice")
    assert alice.sovits is None and "no v2Pro SoVITS weights for 'alice' (has v2)" in alice.problems[0]
    pick_pair(alice, gpt_epoch=5, sovits_epoch=4)
    assert alice.gpt.path.name == "alice-e5.ckpt" and alice.sovits.path.name == "alice_e4_s100.pth"
    pick_pair(alice, sovits_epoch=99)
    assert alice.problems == ["weights: no SoVITS weights of epoch 99 for 'alice'"]


def test_missing_clips_are_reported(tmp_path: Path) -> None:
    root = _install(tmp_path)
    for p in (root / "logs" / "alice" / "5-wav32k").iterdir():
        p.unlink()
    alice = next(c for c in scan_install(root).candidates if c.exp == "alice")
    assert alice.reference is None
    assert "none of its 4 listed clips was found on disk" in alice.problems[-1]
    assert "--ref and --ref-text" in alice.problems[-1]


def test_not_an_install(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no fine-tuned weights"):
        scan_install(tmp_path)
    with pytest.raises(InvalidInput, match="is not a folder"):
        scan_install(tmp_path / "missing")


def test_parse_list_languages(tmp_path: Path) -> None:
    p = tmp_path / "x.list"
    p.write_text("a.wav|s|EN|Hi|there\nb.wav|s|xx|nope\nc.wav|s|Yue|佢\n", encoding="utf-8")
    assert parse_list(p) == [("a.wav", "s", "en", "Hi|there"), ("c.wav", "s", "yue", "佢")]


@pytest.mark.parametrize(
    ("exp", "want"),
    [("alice", "alice"), ("my voice", "my_voice"), ("..x", "x"), ("a..b", "a.b"), ("a/b", "a_b")],
)
def test_voice_name_for(exp: str, want: str) -> None:
    assert voice_name_for(exp) == want


def test_voice_name_for_non_ascii() -> None:
    name = voice_name_for("小明")
    assert name.startswith("voice_") and len(name) == 14
