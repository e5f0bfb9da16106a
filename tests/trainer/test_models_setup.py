"""Where a run's base models come from: --base-gpt/--base-sovits paths (upstream formats), the models
folder, or --from-scratch tiny; missing pieces are errors that say how to get them."""

from __future__ import annotations

import pytest

from gsvd.trainer.models_setup import feature_encoders, load_sovits_for_training, resolve_base
from gsvd.trainer.pipeline import RunSettings
from gsvd.trainer.records import TrainError
from gsvd.trainer.workspace import Workspace


@pytest.fixture(scope="module")
def base_files(tmp_path_factory):
    from gsvd.engine.testing.gpt import write_tiny_gpt
    from gsvd.engine.testing.sovits import write_tiny_hubert, write_tiny_sovits

    d = tmp_path_factory.mktemp("base")
    return (write_tiny_gpt(d / "s1.ckpt"), write_tiny_sovits(d / "s2G.pth", "v2"), write_tiny_hubert(d / "hubert"))


def test_paths_given_on_the_command_line(base_files, tmp_path):
    gpt, sovits, hubert = base_files
    s = RunSettings(name="ann", base_gpt=str(gpt), base_sovits=str(sovits), hubert=str(hubert),
                    models_dir=str(tmp_path / "empty-models"))
    base = resolve_base(Workspace(tmp_path), s, lambda m: None)
    assert (base.gpt_ckpt, base.sovits_ckpt, base.version) == (gpt, sovits, "v2")
    model, cfg, version = load_sovits_for_training(sovits)
    assert hasattr(model, "enc_q") and version == "v2" and "model" in cfg  # posterior encoder added for training
    enc = feature_encoders(Workspace(tmp_path), s, lambda m: None)
    assert enc.hubert.dim == enc.sovits.dims.ssl_dim and enc.sv is None


def test_missing_pieces_say_how_to_get_them(base_files, tmp_path):
    gpt, sovits, _ = base_files
    empty = str(tmp_path / "empty-models")
    with pytest.raises(TrainError, match="no base model given and none installed"):
        resolve_base(Workspace(tmp_path), RunSettings(name="ann", models_dir=empty), lambda m: None)
    with pytest.raises(TrainError, match="chinese-hubert-base is needed"):
        resolve_base(Workspace(tmp_path), RunSettings(name="ann", base_gpt=str(gpt), base_sovits=str(sovits),
                                                      models_dir=empty), lambda m: None)
    with pytest.raises(TrainError, match="not found"):
        resolve_base(Workspace(tmp_path), RunSettings(name="ann", base_gpt=str(gpt), base_sovits=str(tmp_path / "x.pth"),
                                                      models_dir=empty), lambda m: None)
    swapped = RunSettings(name="ann", base_gpt=str(gpt), base_sovits=str(gpt), hubert=str(tmp_path), models_dir=empty)
    with pytest.raises(TrainError):  # a GPT .ckpt given as the SoVITS model
        resolve_base(Workspace(tmp_path), swapped, lambda m: None)
