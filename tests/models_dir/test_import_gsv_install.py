"""gsvd import --from-gpt-sovits: a fake GPT-SoVITS install (tiny upstream-format files) end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from gsvd.cli import app
from gsvd.engine.bundle import list_bundles, load_bundle
from gsvd.engine.testing.bundle import synthetic_clip

runner = CliRunner()


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-SoVITS tree: v2 'alice', v2ProPlus 'bob', 'carol' in v2 and v2ProPlus, pretrained HuBERT + SV."""
    from gsvd.engine.testing.gpt import write_tiny_gpt
    from gsvd.engine.testing.sovits import write_tiny_hubert, write_tiny_sovits, write_tiny_sv

    root = tmp_path_factory.mktemp("gsv") / "GPT-SoVITS"
    pm = root / "GPT_SoVITS" / "pretrained_models"
    (pm / "sv").mkdir(parents=True)
    write_tiny_hubert(pm / "chinese-hubert-base")
    write_tiny_sv(pm / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt", seed=0)
    for folder in (
        "GPT_weights_v2",
        "SoVITS_weights_v2",
        "GPT_weights_v2ProPlus",
        "SoVITS_weights_v2ProPlus",
    ):
        (root / folder).mkdir()
    write_tiny_gpt(root / "GPT_weights_v2" / "alice-e5.ckpt", seed=1)
    write_tiny_gpt(root / "GPT_weights_v2" / "alice-e15.ckpt", seed=2)
    write_tiny_sovits(root / "SoVITS_weights_v2" / "alice_e8_s200.pth", version="v2", seed=2)
    write_tiny_gpt(root / "GPT_weights_v2ProPlus" / "bob-e10.ckpt", seed=3)
    write_tiny_sovits(root / "SoVITS_weights_v2ProPlus" / "bob_e8_s96.pth", version="v2ProPlus", seed=3)
    write_tiny_gpt(root / "GPT_weights_v2" / "carol-e15.ckpt", seed=4)
    write_tiny_sovits(root / "SoVITS_weights_v2" / "carol_e8_s80.pth", version="v2", seed=4)
    write_tiny_sovits(root / "SoVITS_weights_v2ProPlus" / "carol_e8_s80.pth", version="v2ProPlus", seed=5)
    slicer = root / "output" / "slicer_opt"
    slicer.mkdir(parents=True)
    clips = {"a1": 2.0, "a2": 4.5, "b1": 5.0, "c1": 6.0}
    for stem, seconds in clips.items():
        sf.write(
            str(slicer / f"{stem}.wav"), synthetic_clip(seconds, 32000, seed=len(stem) + int(seconds)), 32000
        )
    (root / "output" / "asr_opt").mkdir()
    (root / "output" / "asr_opt" / "slicer_opt.list").write_text(
        "output/slicer_opt/a1.wav|alice|ZH|短句。\n"
        "output/slicer_opt/a2.wav|alice|ZH|今天天气很好。\n"
        "output/slicer_opt/b1.wav|bob|EN|Hello from Bob.\n"
        "output/slicer_opt/c1.wav|carol|JA|こんにちは。\n",
        encoding="utf-8",
    )
    return root


CONSENT = "speaker=Test Speaker; use=tests; date=2026-11-01; by=the test suite"


def _args(install: Path, tmp_path: Path, *extra: str) -> list[str]:
    if "--consent" not in extra and "--dry-run" not in extra:
        extra = (*extra, "--consent", CONSENT)
    return [
        "import",
        "--from-gpt-sovits",
        str(install),
        "--voices-dir",
        str(tmp_path / "voices"),
        "--models-dir",
        str(tmp_path / "models"),
        *extra,
    ]


def test_dry_run_lists_and_writes_nothing(install: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, _args(install, tmp_path, "--dry-run"))
    assert res.exit_code == 0, res.output
    out = res.output
    for expected in (
        "alice",
        "alice-e15.ckpt",
        "alice_e8_s200.pth",
        "a2.wav",
        "bob",
        "v2ProPlus",
        "several versions",
    ):
        assert expected in out, expected
    assert not (tmp_path / "voices").exists()


def test_import_whole_install(install: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, _args(install, tmp_path, "--yes", "--consent", "who=Me; use=my own voices; when=2026-10-01; by=me"))
    assert res.exit_code == 1, res.output  # carol is ambiguous and skipped
    assert "not imported carol" in res.output and "--version" in res.output
    voices = {p.name: load_bundle(p) for p in list_bundles(tmp_path / "voices")}
    assert sorted(voices) == ["alice", "bob"]
    alice, bob = voices["alice"], voices["bob"]
    assert (
        alice.version == "v2"
        and alice.reference_text == "今天天气很好。"
        and alice.reference_language == "zh"
    )
    assert alice.provenance["gpt_checkpoint"].endswith("alice-e15.ckpt")
    assert alice.provenance["experiment"] == "alice" and alice.consent["use"] == "my own voices"
    assert alice.consent["speaker"] == "Me" and alice.consent["recorded_by"] == "me" and alice.consent["date"] == "2026-10-01"
    assert bob.version == "v2ProPlus" and bob.reference_language == "en"
    assert bob.load_reference().sv_emb.shape == (20480,)
    assert alice.model_id != bob.model_id
    alice.build_gpt()
    bob.build_sovits()


def test_version_flag_and_overrides(install: Path, tmp_path: Path) -> None:
    ref = install / "output" / "slicer_opt" / "c1.wav"
    res = runner.invoke(
        app,
        _args(
            install,
            tmp_path,
            "--only",
            "carol",
            "--version",
            "v2",
            "--name",
            "caro",
            "--ref",
            str(ref),
            "--ref-text",
            "别的文字",
            "--ref-lang",
            "zh",
        ),
    )
    assert res.exit_code == 0, res.output
    caro = load_bundle(tmp_path / "voices" / "caro")
    assert caro.version == "v2" and caro.reference_text == "别的文字"
    res = runner.invoke(app, _args(install, tmp_path, "--name", "x"))
    assert res.exit_code == 2 and "--only" in res.output
    res = runner.invoke(app, _args(install, tmp_path, "--only", "zed"))
    assert res.exit_code == 2 and "no experiment named zed" in res.output


def test_interactive_choice(install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gsvd.engine.models_dir import cli_import

    monkeypatch.setattr(cli_import, "_interactive", lambda: True)
    res = runner.invoke(app, _args(install, tmp_path, "--only", "carol"), input="v2ProPlus\n")
    assert res.exit_code == 0, res.output
    assert load_bundle(tmp_path / "voices" / "carol").version == "v2ProPlus"


def test_missing_base_model_message(install: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    for rel in (
        "GPT_weights_v2/alice-e15.ckpt",
        "SoVITS_weights_v2/alice_e8_s200.pth",
        "output/slicer_opt/a2.wav",
        "output/asr_opt/slicer_opt.list",
    ):
        (bare / rel).parent.mkdir(parents=True, exist_ok=True)
        (bare / rel).write_bytes((install / rel).read_bytes())
    res = runner.invoke(app, _args(bare, tmp_path, "--yes"))
    assert res.exit_code == 1
    assert "base model 'chinese-hubert-base' is missing" in res.output
    assert "gsvd models fetch chinese-hubert-base" in res.output
    # linking the install's pretrained models fixes it
    res = runner.invoke(app, ["models", "link", str(install), "--models-dir", str(tmp_path / "models")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, _args(bare, tmp_path, "--yes"))
    assert res.exit_code == 0, res.output
    assert load_bundle(tmp_path / "voices" / "alice").version == "v2"


def test_import_requires_a_consent_record(install: Path, tmp_path: Path) -> None:
    base = _args(install, tmp_path, "--yes", "--consent", "")
    res = runner.invoke(app, base)
    assert res.exit_code == 2 and "consent record is required" in res.output
    res = runner.invoke(app, _args(install, tmp_path, "--yes", "--consent", "speaker=Me; use=tests; date=2026-10-01"))
    assert res.exit_code == 2 and "lacks 'recorded_by'" in res.output
    assert not (tmp_path / "voices").exists() or not list_bundles(tmp_path / "voices")
