"""models dir lookups, gsvd models link/list/verify, missing-model messages (no downloads)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gsvd.cli import app
from gsvd.engine.errors import InvalidInput, MissingModel
from gsvd.engine.models_dir.link import find_pretrained_folder, link, unlink
from gsvd.engine.models_dir.registry import model
from gsvd.engine.models_dir.store import ModelsDir
from gsvd.engine.models_dir.verify import verify_model

runner = CliRunner()


def _touch(root: Path, name: str, data: bytes = b"x") -> None:
    for f in model(name).files:
        p = root / f.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _gsv_install(tmp_path: Path) -> Path:
    root = tmp_path / "GPT-SoVITS"
    pm = root / "GPT_SoVITS" / "pretrained_models"
    _touch(pm, "chinese-hubert-base")
    _touch(pm, "v2")
    (pm / "sv").mkdir()  # empty folder: sv stays missing
    return root


@pytest.mark.parametrize("given", ["", "GPT_SoVITS", "GPT_SoVITS/pretrained_models"])
def test_link_detects_layout(tmp_path: Path, given: str) -> None:
    root = _gsv_install(tmp_path)
    folder, found = find_pretrained_folder(root / given if given else root)
    assert folder == (root / "GPT_SoVITS" / "pretrained_models").resolve()
    assert found == {"chinese-hubert-base": "complete", "v2": "complete"}


def test_link_partial_and_missing(tmp_path: Path) -> None:
    pm = tmp_path / "pretrained_models"
    (pm / "v2Pro").mkdir(parents=True)
    (pm / "v2Pro" / "s2Gv2ProPlus.pth").write_bytes(b"x")  # s1v3.ckpt absent
    (pm / "chinese-roberta-wwm-ext-large").mkdir()
    (pm / "chinese-roberta-wwm-ext-large" / "config.json").write_text("{}")
    _, found = find_pretrained_folder(pm)
    assert found == {"chinese-roberta-wwm-ext-large": "partial", "v2ProPlus": "partial"}
    with pytest.raises(InvalidInput, match="no GPT-SoVITS pretrained models found"):
        find_pretrained_folder(tmp_path / "pretrained_models" / "v2Pro")
    with pytest.raises(InvalidInput, match="is not a folder"):
        find_pretrained_folder(tmp_path / "nope")


def test_linked_models_are_found_and_local_wins(tmp_path: Path) -> None:
    root = _gsv_install(tmp_path)
    md = ModelsDir(tmp_path / "models")
    with pytest.raises(MissingModel, match=r"gsvd models fetch chinese-hubert-base"):
        md.hubert_folder()
    report = link(md, root)
    assert not report.already_linked and link(md, root).already_linked
    assert md.links() == [(root / "GPT_SoVITS" / "pretrained_models").resolve()]
    assert md.status("chinese-hubert-base").state == "linked"
    assert md.hubert_folder() == (root / "GPT_SoVITS" / "pretrained_models" / "chinese-hubert-base").resolve()
    gpt, sovits = md.pretrained("v2")
    assert gpt.name.startswith("s1bert25hz-5kh") and sovits.name == "s2G2333k.pth"
    _touch(md.root, "chinese-hubert-base")
    assert md.status("chinese-hubert-base").state == "present"
    assert md.hubert_folder() == md.root / "chinese-hubert-base"
    assert unlink(md, root) == (root / "GPT_SoVITS" / "pretrained_models").resolve()
    assert md.links() == []
    with pytest.raises(InvalidInput, match="is not linked"):
        unlink(md, root)


def test_missing_model_messages_name_the_command(tmp_path: Path) -> None:
    md = ModelsDir(tmp_path / "m")
    with pytest.raises(MissingModel) as info:
        md.sv_model()
    msg = str(info.value)
    assert "'sv' is missing" in msg and f"`gsvd models fetch sv --models-dir {md.root}`" in msg
    assert "gsvd models link" in msg
    with pytest.raises(MissingModel, match="gsvd models fetch v2Pro"):
        md.pretrained("v2Pro")
    with pytest.raises(MissingModel, match="gsvd models fetch chinese-roberta-wwm-ext-large"):
        md.bert_folder()
    with pytest.raises(InvalidInput, match="no pretrained base model for version 'v4'"):
        md.pretrained("v4")
    default = ModelsDir()  # default root: the command needs no --models-dir
    assert default.missing_message("sv").count("`gsvd models fetch sv`") == 1


def test_verify_fingerprint_and_recorded_hash(tmp_path: Path) -> None:
    md = ModelsDir(tmp_path)
    _touch(md.root, "v2", b"not the real file")
    r = verify_model(md, "v2", load=False)
    assert not r.ok and any("not the official release file" in p for p in r.problems)
    _touch(md.root, "chinese-hubert-base", b"abc")
    for f in model("chinese-hubert-base").files:
        md.record(f.path, hashlib.sha256(b"abc").hexdigest(), 3, "lj1995/GPT-SoVITS", "c0ffee")
    assert verify_model(md, "chinese-hubert-base", load=False).ok
    (md.root / "chinese-hubert-base" / "pytorch_model.bin").write_bytes(b"abd")
    r = verify_model(md, "chinese-hubert-base", load=False)
    assert r.problems == [
        "chinese-hubert-base/pytorch_model.bin: sha256 differs from the fetched file (corrupt or replaced)"
    ]
    r = verify_model(md, "sv", load=False)
    assert r.state == "missing" and "gsvd models fetch sv" in r.problems[0]


def test_verify_load_failure_is_reported(tmp_path: Path) -> None:
    md = ModelsDir(tmp_path)
    _touch(md.root, "v2-discriminator", b"garbage")
    r = verify_model(md, "v2-discriminator")
    assert not r.ok and r.problems[0].startswith("does not load")


def test_cli_link_list_verify(tmp_path: Path) -> None:
    root = _gsv_install(tmp_path)
    md = str(tmp_path / "models")
    res = runner.invoke(app, ["models", "link", str(root), "--models-dir", md])
    assert res.exit_code == 0, res.output
    assert "chinese-hubert-base: complete" in res.output
    res = runner.invoke(app, ["models", "list", "--models-dir", md])
    assert res.exit_code == 0
    lines = {line.split("│")[1].strip(): line for line in res.output.splitlines() if line.count("│") > 4}
    assert "linked" in lines["v2"] and "missing" in lines["sv"]
    res = runner.invoke(app, ["models", "verify", "v2", "--no-load", "--models-dir", md])
    assert res.exit_code == 1 and "not the official release file" in res.output
    res = runner.invoke(app, ["models", "link", str(tmp_path / "empty"), "--models-dir", md])
    assert res.exit_code == 2 and "is not a folder" in res.output
    res = runner.invoke(app, ["models", "fetch", "v9", "--models-dir", md])
    assert res.exit_code == 2 and "unknown base model 'v9'" in res.output
    res = runner.invoke(app, ["models", "verify", "nope", "--models-dir", md])
    assert res.exit_code == 2


def test_cli_fetch_from_mock_hub(tmp_path: Path, mock_hub) -> None:
    for f in model("chinese-hubert-base").files:
        mock_hub.add("lj1995/GPT-SoVITS", f.path, f.path.encode() * 50, lfs=f.path.endswith(".bin"))
    md = str(tmp_path / "models")
    args = ["models", "fetch", "hubert", "--models-dir", md, "--endpoint", mock_hub.url, "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "chinese-hubert-base/pytorch_model.bin: downloaded" in res.output
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "already present" in res.output
    res = runner.invoke(
        app, ["models", "fetch", "sv", "--models-dir", md, "--endpoint", mock_hub.url, "--no-progress"]
    )
    assert res.exit_code == 1 and "is not on" in res.output
