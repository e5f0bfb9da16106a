"""gsvd import of one upstream GPT/SoVITS pair + reference clip, end to end on tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from gsvd.cli import app
from gsvd.engine.bundle import load_bundle
from gsvd.engine.errors import BundleError, CheckpointError, InvalidInput, MissingModel
from gsvd.engine.testing.bundle import synthetic_clip
from gsvd.engine.voice_import import BaseModelPaths, import_voice

runner = CliRunner()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny upstream-format files: GPT, SoVITS v2 + v2ProPlus, HuBERT folder, SV ckpt, a 4 s clip."""
    from gsvd.engine.testing.gpt import write_tiny_gpt
    from gsvd.engine.testing.sovits import write_tiny_hubert, write_tiny_sovits, write_tiny_sv

    d = tmp_path_factory.mktemp("upstream")
    clip = d / "ref.wav"
    sf.write(str(clip), synthetic_clip(4.0, 32000, seed=3), 32000)
    short = d / "short.wav"
    sf.write(str(short), synthetic_clip(1.0, 32000), 32000)
    return {
        "gpt": write_tiny_gpt(d / "alice-e15.ckpt", seed=0),
        "sovits": write_tiny_sovits(d / "alice_e8_s200.pth", version="v2", seed=0),
        "sovits_pro": write_tiny_sovits(d / "bob_e8_s96.pth", version="v2ProPlus", seed=0),
        "hubert": write_tiny_hubert(d / "chinese-hubert-base") or d / "chinese-hubert-base",
        "sv": write_tiny_sv(d / "sv.ckpt", seed=0) or d / "sv.ckpt",
        "ref": clip,
        "short": short,
    }


def _import(up, voices: Path, name: str = "alice", **kw):
    args = dict(
        gpt_path=up["gpt"],
        sovits_path=up["sovits"],
        ref_audio=up["ref"],
        ref_text="你好，世界",
        ref_lang="zh",
        base=BaseModelPaths(hubert_folder=up["hubert"], sv_model=up["sv"]),
        consent={"statement": "test"},
    )
    args.update(kw)
    return import_voice(voices, name, **args)


def test_import_v2_end_to_end(tmp_path: Path, upstream) -> None:
    from gsvd.engine.checkpoints.gpt import load_gpt

    b = _import(upstream, tmp_path)
    loaded = load_bundle(tmp_path / "alice")
    assert loaded.version == "v2" and loaded.reference_text == "你好，世界"
    ref = loaded.load_reference()
    assert ref.norm_text.endswith(".")  # upstream appends a full stop to the prompt text (normalized to ".")
    # 4 s at 25 Hz plus upstream's 9600-sample (0.6 s) tail at 16 kHz, through HuBERT's conv stack
    assert ref.prompt_tokens.numel() == ((4 * 16000 + 9600 - 400) // 320 + 1) // 2
    assert abs(ref.spec.shape[1] - 200) <= 2  # 4 s at 50 frames/s
    assert ref.sv_emb is None and ref.phone_ids.numel() > 0
    prov = loaded.provenance
    assert prov["gpt_sha256"] and prov["sovits_checkpoint"].endswith("alice_e8_s200.pth")
    assert loaded.consent["statement"] == "test"
    gpt_state = load_gpt(upstream["gpt"]).state_dict
    got = b.load_gpt_state()
    assert set(got) == set(gpt_state) and all(torch.equal(got[k], gpt_state[k]) for k in got)
    b.build_gpt()
    b.build_sovits()
    assert loaded.reference_audio is not None and sf.info(str(loaded.reference_audio)).samplerate == 32000


def test_reference_matches_prepare_reference(tmp_path: Path, upstream) -> None:
    from gsvd.engine.checkpoints.sovits import build_sovits, load_sovits
    from gsvd.engine.reference import prepare_reference
    from gsvd.engine.ssl import HubertEncoder

    b = _import(upstream, tmp_path)
    model = build_sovits(load_sovits(upstream["sovits"]), device="cpu", dtype=torch.float32)
    hubert = HubertEncoder.from_folder(upstream["hubert"], device="cpu")
    with torch.inference_mode():
        want = prepare_reference(str(upstream["ref"]), None, sovits=model, hubert=hubert, sv=None)
    ref = b.load_reference()
    assert torch.equal(ref.prompt_tokens, want.prompt_tokens.reshape(-1).long())
    torch.testing.assert_close(ref.spec, want.spec.reshape(ref.spec.shape).float())


def test_import_v2proplus_has_speaker_embedding(tmp_path: Path, upstream) -> None:
    b = _import(upstream, tmp_path, "bob", sovits_path=upstream["sovits_pro"])
    assert b.version == "v2ProPlus" and b.load_reference().sv_emb.shape == (20480,)
    with pytest.raises(MissingModel, match="gsvd models fetch sv"):
        _import(
            upstream,
            tmp_path,
            "bob2",
            sovits_path=upstream["sovits_pro"],
            base=BaseModelPaths(hubert_folder=upstream["hubert"]),
        )


def test_same_checkpoints_share_weights(tmp_path: Path, upstream) -> None:
    a = _import(upstream, tmp_path, "alice")
    b = _import(upstream, tmp_path, "alice2", ref_text="另一段参考")
    assert a.model_id == b.model_id
    assert os.path.samefile(a.file("gpt"), b.file("gpt"))


def test_missing_hubert_names_the_command(tmp_path: Path, upstream) -> None:
    with pytest.raises(MissingModel, match="gsvd models fetch chinese-hubert-base"):
        _import(upstream, tmp_path, base=BaseModelPaths(hubert_folder=None))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"name": "../x"}, InvalidInput, "invalid voice name"),
        ({"gpt_path": "nope.ckpt"}, InvalidInput, "--gpt: no such file"),
        ({"ref_audio": "nope.wav"}, InvalidInput, "--ref: no such file"),
        ({"ref_text": " "}, InvalidInput, "--ref-text is empty"),
        ({"ref_lang": "xx"}, InvalidInput, "--ref-lang must be one of"),
        ({"gpt_path": "SOVITS"}, CheckpointError, r"is a SoVITS \(\.pth\) checkpoint, not a GPT"),
        ({"sovits_path": "GPT"}, CheckpointError, r"is a GPT \(\.ckpt\) checkpoint, not a SoVITS"),
        ({"ref_audio": "SHORT"}, InvalidInput, "reference audio must be 3-10 s long; got 1.00 s"),
    ],
)
def test_bad_input(tmp_path: Path, upstream, change: dict, error: type, match: str) -> None:
    subst = {"SOVITS": upstream["sovits"], "GPT": upstream["gpt"], "SHORT": upstream["short"]}
    change = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    name = change.pop("name", "alice")
    with pytest.raises(error, match=match):
        _import(upstream, tmp_path / "voices", name, **change)
    assert not (tmp_path / "voices").exists() or list((tmp_path / "voices").iterdir()) == []


def test_import_without_consent_is_refused_before_any_work(tmp_path: Path, upstream) -> None:
    for bad in (None, {}, {"statement": "  "}, {"speaker": "a", "use": "b", "date": "soon", "recorded_by": "c"}):
        with pytest.raises(InvalidInput, match="consent"):
            _import(upstream, tmp_path / "voices", consent=bad)
    assert not (tmp_path / "voices").exists()


def test_existing_voice_needs_force(tmp_path: Path, upstream) -> None:
    _import(upstream, tmp_path)
    with pytest.raises(BundleError, match="already exists"):
        _import(upstream, tmp_path)
    b = _import(upstream, tmp_path, overwrite=True, ref_text="新的参考")
    assert b.reference_text == "新的参考"


def test_cli_import_single(tmp_path: Path, upstream) -> None:
    base = [
        "import",
        "--gpt",
        str(upstream["gpt"]),
        "--sovits",
        str(upstream["sovits"]),
        "--ref",
        str(upstream["ref"]),
        "--ref-text",
        "你好",
        "--ref-lang",
        "zh",
        "--hubert",
        str(upstream["hubert"]),
        "--voices-dir",
        str(tmp_path / "voices"),
        "--models-dir",
        str(tmp_path / "models"),
    ]
    res = runner.invoke(app, [*base, "--name", "alice"])
    assert res.exit_code == 2 and "consent record is required" in res.output  # no --consent: nothing written
    assert not (tmp_path / "voices" / "alice").exists()
    base += ["--consent", "speaker=Alice; use=tests; date=2026-11-01; by=test suite"]
    res = runner.invoke(app, [*base, "--name", "alice"])
    assert res.exit_code == 0, res.output
    assert load_bundle(tmp_path / "voices" / "alice").consent["speaker"] == "Alice"
    assert "imported alice (v2)" in res.output
    assert load_bundle(tmp_path / "voices" / "alice").version == "v2"
    res = runner.invoke(app, [*base, "--name", "alice"])
    assert res.exit_code == 1 and "already exists" in res.output
    res = runner.invoke(app, base)
    assert res.exit_code == 2 and "missing --name" in res.output
    no_hubert = [a for a in base if a not in ("--hubert", str(upstream["hubert"]))]
    res = runner.invoke(app, [*no_hubert, "--name", "bob"])
    assert res.exit_code == 2 and "gsvd models fetch chinese-hubert-base" in res.output


def test_import_real_speech(tmp_path: Path, upstream, shared_speech: Path) -> None:
    import csv

    with open(shared_speech / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    zh = [r for r in rows if r["lang"] == "zh" and 3.0 <= float(r["seconds"]) <= 10.0 and r["transcript"]]
    if not zh:
        pytest.skip("no 3-10 s Mandarin clip with a transcript in shared speech")
    row = zh[0]
    text = (
        row["transcript"].split(")", 1)[-1].strip()
        if row["transcript"].startswith("(")
        else row["transcript"]
    )
    b = _import(upstream, tmp_path, ref_audio=shared_speech / row["file"], ref_text=text)
    ref = b.load_reference()
    assert abs(ref.prompt_tokens.numel() - 25 * float(row["seconds"])) <= 3
    assert np.isfinite(ref.spec.numpy()).all()
