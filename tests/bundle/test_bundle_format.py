"""Voice bundle format: round trip, checksums, atomic writes, bad input (no models needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from gsvd.engine.bundle import (
    ReferenceCache,
    list_bundles,
    load_bundle,
    validate_voice_name,
    write_bundle,
)
from gsvd.engine.errors import BundleError, InvalidInput, VoiceNotFound

GPT_CONFIG = {"model": {"embedding_dim": 8, "n_layer": 1}, "data": {"max_sec": 54}, "misc": None}
SOVITS_CONFIG = {"model": {"upsample_rates": [10, 8], "resblock_dilation_sizes": [[1, 3], [1, 3]]}}


def _states(seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    gpt = {"a.weight": torch.randn(4, 3, generator=g).half(), "b.bias": torch.randn(5, generator=g)}
    sov = {"enc_p.text_embedding.weight": torch.randn(6, 2, generator=g)}
    return gpt, sov


def _ref(version: str = "v2", n: int = 5) -> ReferenceCache:
    return ReferenceCache(
        prompt_tokens=torch.arange(10) * 7,
        spec=torch.rand(1025, 12),
        phone_ids=torch.arange(1, n + 1),
        bert=torch.randn(1024, n),
        sv_emb=torch.randn(20480) if version in ("v2Pro", "v2ProPlus") else None,
        norm_text="你好。",
    )


def _write(dest: Path, name: str = "alice", version: str = "v2", **kw):
    gpt, sov = _states(kw.pop("seed", 0))
    args = dict(
        name=name,
        version=version,
        gpt_state=gpt,
        gpt_config=GPT_CONFIG,
        sovits_state=sov,
        sovits_config=SOVITS_CONFIG,
        reference=_ref(version),
        reference_text="你好",
        reference_language="zh",
        reference_audio=(np.sin(np.arange(32000 * 3) / 10).astype(np.float32) * 0.1, 32000),
        consent={"statement": "I am alice and I agree", "date": "2026-11-23"},
        provenance={"source": "test"},
    )
    args.update(kw)
    return write_bundle(dest, **args)


def test_round_trip(tmp_path: Path) -> None:
    b = _write(tmp_path / "alice")
    loaded = load_bundle(tmp_path / "alice")
    assert loaded.name == "alice" and loaded.version == "v2"
    assert loaded.reference_text == "你好" and loaded.reference_language == "zh"
    assert loaded.gpt_config == {"model": {"embedding_dim": 8, "n_layer": 1}, "data": {"max_sec": 54}}
    assert loaded.sovits_config == SOVITS_CONFIG
    assert loaded.consent["statement"].startswith("I am alice")
    assert loaded.model_id == b.model_id and len(loaded.model_id) == 16
    gpt, sov = _states(0)
    got = loaded.load_gpt_state()
    assert got["a.weight"].dtype == torch.float16 and torch.equal(got["a.weight"], gpt["a.weight"])
    ref = loaded.load_reference()
    want = _ref()
    assert torch.equal(ref.prompt_tokens, want.prompt_tokens) and ref.prompt_tokens.dtype == torch.long
    assert ref.spec.shape == (1025, 12) and ref.bert.shape == (1024, 5) and ref.sv_emb is None
    assert ref.norm_text == "你好。"
    assert loaded.reference_audio is not None and loaded.reference_audio.name == "reference.wav"
    assert sorted(p.name for p in (tmp_path / "alice").iterdir()) == [
        "gpt.safetensors",
        "reference.safetensors",
        "reference.wav",
        "sovits.safetensors",
        "voice.toml",
    ]


def test_v2pro_needs_speaker_embedding(tmp_path: Path) -> None:
    b = _write(tmp_path / "pro", name="pro", version="v2ProPlus")
    assert b.load_reference().sv_emb.shape == (20480,)
    with pytest.raises(InvalidInput, match="speaker embedding"):
        _write(tmp_path / "pro2", name="pro2", version="v2Pro", reference=_ref("v2"))
    with pytest.raises(InvalidInput, match="takes no speaker embedding"):
        _write(tmp_path / "v2", name="v2", version="v2", reference=_ref("v2Pro"))


def test_same_weights_same_model_id_and_shared_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "alice")
    b = _write(tmp_path / "bob", name="bob", share_weights_from=tmp_path / "alice")
    c = _write(tmp_path / "carol", name="carol", seed=1)
    d = _write(tmp_path / "dave", name="dave")
    assert a.model_id == b.model_id == d.model_id != c.model_id
    assert os.path.samefile(a.file("gpt"), b.file("gpt"))
    assert not os.path.samefile(a.file("gpt"), d.file("gpt"))
    load_bundle(tmp_path / "bob")  # verifies the linked files


def test_corrupt_file_fails_checksum(tmp_path: Path) -> None:
    b = _write(tmp_path / "alice")
    path = b.file("sovits")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch for sovits.safetensors"):
        load_bundle(tmp_path / "alice")
    load_bundle(tmp_path / "alice", verify=False)  # structure is still readable


def test_missing_file_and_bad_manifest(tmp_path: Path) -> None:
    b = _write(tmp_path / "alice")
    b.file("reference").unlink()
    with pytest.raises(BundleError, match="reference file reference.safetensors is missing"):
        load_bundle(tmp_path / "alice")
    (tmp_path / "alice" / "voice.toml").write_text("format = [", encoding="utf-8")
    with pytest.raises(BundleError, match="not valid TOML"):
        load_bundle(tmp_path / "alice")
    (tmp_path / "alice" / "voice.toml").write_text("format = 1\nname = 'alice'\n", encoding="utf-8")
    with pytest.raises(BundleError, match="malformed"):
        load_bundle(tmp_path / "alice")
    (tmp_path / "alice" / "voice.toml").write_text("format = 99\n", encoding="utf-8")
    with pytest.raises(BundleError, match="format 99"):
        load_bundle(tmp_path / "alice")
    with pytest.raises(VoiceNotFound, match="no voice bundle"):
        load_bundle(tmp_path / "nobody")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="not a voice bundle"):
        load_bundle(tmp_path / "empty")


def test_manifest_paths_cannot_escape(tmp_path: Path) -> None:
    _write(tmp_path / "voices" / "alice")
    manifest = tmp_path / "voices" / "alice" / "voice.toml"
    text = manifest.read_text(encoding="utf-8").replace(
        'path = "gpt.safetensors"', 'path = "../../gpt.safetensors"'
    )
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(BundleError, match="outside the voices folder"):
        load_bundle(tmp_path / "voices" / "alice")


def test_existing_bundle_needs_overwrite(tmp_path: Path) -> None:
    a = _write(tmp_path / "alice")
    with pytest.raises(BundleError, match="already exists"):
        _write(tmp_path / "alice", seed=1)
    b = _write(tmp_path / "alice", seed=1, overwrite=True)
    assert b.model_id != a.model_id
    assert load_bundle(tmp_path / "alice").model_id == b.model_id
    assert [p.name for p in tmp_path.iterdir()] == ["alice"]  # no temp or old dirs left


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"name": "../evil"}, "invalid voice name"),
        ({"version": "v4"}, "model version must be one of"),
        ({"reference_text": "  "}, "reference text is empty"),
        ({"reference_language": ""}, "reference language is empty"),
        ({"languages": ()}, "languages must be"),
        ({"gpt_state": {}}, "gpt state dict is empty"),
        ({"sovits_state": {"x": [1, 2]}}, "is not a tensor"),
        ({"reference_audio": (np.zeros(0, np.float32), 32000)}, "reference audio is empty"),
        ({"reference_audio": (np.ones(100, np.float32), 0)}, "bad reference sample rate"),
        (
            {
                "reference": ReferenceCache(
                    torch.tensor([5000]), torch.rand(1025, 3), torch.tensor([1]), torch.zeros(1024, 1)
                )
            },
            "prompt_tokens must lie in",
        ),
        (
            {
                "reference": ReferenceCache(
                    torch.tensor([5]), torch.rand(513, 3), torch.tensor([1]), torch.zeros(1024, 1)
                )
            },
            "spec must be",
        ),
        (
            {
                "reference": ReferenceCache(
                    torch.tensor([5]), torch.rand(1025, 3), torch.tensor([1, 2]), torch.zeros(1024, 1)
                )
            },
            "bert must be",
        ),
        (
            {
                "reference": ReferenceCache(
                    torch.tensor([0.5]), torch.rand(1025, 3), torch.tensor([1]), torch.zeros(1024, 1)
                )
            },
            "integer tensor",
        ),
        ({"consent": {"when": object()}}, "cannot be written as TOML"),
    ],
)
def test_bad_input_is_rejected_and_leaves_nothing(tmp_path: Path, change: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        _write(tmp_path / "alice", **change)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["", ".hidden", "a/b", "a\\b", "..", "x..y", "a" * 65, "trail.", "sp ace", "é"]
)
def test_bad_voice_names(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_voice_name(name)
    assert info.value.field == "name"


@pytest.mark.parametrize("name", ["alice", "Bob_2", "v2.pro-1", "9"])
def test_good_voice_names(name: str) -> None:
    assert validate_voice_name(name) == name


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import gsvd.engine.bundle as bundle
    from test_bundle_format import _write
    real = bundle._save_tensors
    def killer(path, state, role):
        out = real(path, state, role)
        if role == {role!r}:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    bundle._save_tensors = killer
    _write(__import__("pathlib").Path({dest!r}), overwrite=True)
    """
)


@pytest.mark.parametrize("role", ["gpt", "reference"])
def test_killed_write_leaves_no_bundle(tmp_path: Path, role: str) -> None:
    dest = tmp_path / "alice"
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), role=role, dest=str(dest))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert not dest.exists()
    assert list_bundles(tmp_path) == []  # the leftover temp dir is hidden and ignored
    with pytest.raises(VoiceNotFound):
        load_bundle(dest)


def test_killed_overwrite_keeps_old_bundle(tmp_path: Path) -> None:
    old = _write(tmp_path / "alice", seed=3)
    script = _KILL_SCRIPT.format(
        tests=str(Path(__file__).parent), role="sovits", dest=str(tmp_path / "alice")
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert load_bundle(tmp_path / "alice").model_id == old.model_id
    assert list_bundles(tmp_path) == [tmp_path / "alice"]


def test_exception_mid_write_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gsvd.engine.bundle as bundle

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle, "_write_manifest", boom)
    with pytest.raises(OSError, match="No space left"):
        _write(tmp_path / "alice")
    assert list(tmp_path.iterdir()) == []
