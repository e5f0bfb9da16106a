"""SoVITS checkpoints (versions, markers, weight norm, HParams configs), decode shapes, audio DSP."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
import torch

from gsvd.engine.audio import linear_spectrogram, resample_sinc, write_wav
from gsvd.engine.checkpoints.sovits import (
    build_sovits,
    detect_sovits_version,
    fold_weight_norm,
    load_sovits,
    split_weight_norm,
)
from gsvd.engine.errors import CheckpointError, InvalidInput, UnsupportedVersion
from gsvd.engine.testing.gpt import write_tiny_gpt
from gsvd.engine.testing.sovits import random_sovits_state, tiny_sovits_config, write_tiny_sovits


@pytest.mark.parametrize("version, marker", [("v1", b"PK"), ("v2", b"PK"), ("v2Pro", b"05"), ("v2ProPlus", b"06")])
def test_version_detection_and_markers(tmp_path, version, marker):
    p = write_tiny_sovits(tmp_path / f"{version}.pth", version)
    assert p.read_bytes()[:2] == marker
    assert detect_sovits_version(p) == version


@pytest.mark.parametrize("marker, name", [(b"02", "v3"), (b"03", "v3"), (b"04", "v4")])
def test_v3_v4_not_supported_yet(tmp_path, marker, name):
    p = write_tiny_sovits(tmp_path / "x.pth", "v2")
    p.write_bytes(marker + p.read_bytes()[2:])
    with pytest.raises(UnsupportedVersion, match=f"{name} is not supported yet"):
        load_sovits(p)


def test_unknown_header_and_corrupt_and_gpt_given(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"ZZ" + b"\0" * 100)
    with pytest.raises(CheckpointError, match="unknown file header"):
        load_sovits(bad)
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(write_tiny_sovits(tmp_path / "ok.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_sovits(trunc)
    with pytest.raises(CheckpointError, match="GPT"):
        load_sovits(write_tiny_gpt(tmp_path / "g.ckpt"))


def test_weight_norm_layout_and_round_trip(tmp_path):
    p = write_tiny_sovits(tmp_path / "w.pth", "v2")
    raw = torch.load(p, weights_only=True)["weight"]
    assert "dec.ups.0.weight_g" in raw and "dec.ups.0.weight_v" in raw and "dec.ups.0.weight" not in raw
    # ConvTranspose1d: g is per input channel [in, 1, 1]; Conv1d: per output channel [out, 1, 1]
    assert raw["dec.ups.0.weight_g"].shape == (raw["dec.ups.0.weight_v"].shape[0], 1, 1)
    assert raw["flow.flows.0.enc.in_layers.0.weight_g"].shape[1:] == (1, 1)
    state = {k: v.float() for k, v in random_sovits_state(tiny_sovits_config(), "v2").items()}
    again = fold_weight_norm(split_weight_norm(state))
    assert set(again) == set(state)
    assert max((again[k] - state[k]).abs().max().item() for k in state) < 1e-5


def test_hparams_config_reads_with_weights_only(tmp_path):
    """Fine-tuned upstream files pickle their config as utils.HParams."""
    cfg = tiny_sovits_config()
    fake = types.ModuleType("utils")

    class HParams:
        def __init__(self, **kw):
            for k, v in kw.items():
                setattr(self, k, HParams(**v) if isinstance(v, dict) else v)

    HParams.__module__ = "utils"
    HParams.__qualname__ = "HParams"
    fake.HParams = HParams
    sys.modules["utils"] = fake
    try:
        buf = io.BytesIO()
        torch.save({"weight": split_weight_norm(random_sovits_state(cfg, "v2")), "config": HParams(**cfg),
                    "info": "8epoch_100iteration"}, buf)
    finally:
        del sys.modules["utils"]
    p = tmp_path / "ft.pth"
    p.write_bytes(buf.getvalue())
    ck = load_sovits(p)
    assert ck.version == "v2" and ck.config["model"]["gin_channels"] == cfg["model"]["gin_channels"]
    assert ck.info == "8epoch_100iteration"


def test_decode_length_and_latent_shape(tmp_path):
    for version in ("v2", "v2ProPlus"):
        m = build_sovits(load_sovits(write_tiny_sovits(tmp_path / f"{version}.pth", version)))
        codes = torch.randint(0, 1024, (1, 1, 13))
        sv = torch.randn(1, 20480) if version != "v2" else None
        wav = m.decode(codes, torch.randint(0, 700, (1, 9)), torch.rand(1, 1025, 60), noise_scale=0.0, sv_emb=sv)
        assert wav.shape == (1, 1, 13 * 1280) and torch.isfinite(wav).all()
        assert m.extract_latent(torch.randn(1, 32, 26)).shape == (1, 1, 13)
    with pytest.raises(ValueError, match="speaker embedding"):
        m.compute_ge(torch.rand(1, 1025, 10), None)


def test_spectrogram_matches_direct_formula():
    torch.manual_seed(0)
    wav = torch.randn(1, 32000) * 0.1
    spec = linear_spectrogram(wav)[0].numpy()
    padded = np.pad(wav[0].numpy(), 704, mode="reflect")
    frame = padded[640 * 3 : 640 * 3 + 2048] * np.hanning(2049)[:-1]
    direct = np.sqrt(np.abs(np.fft.rfft(frame)) ** 2 + 1e-8)
    assert spec.shape == (1025, 1 + (32000 + 1408 - 2048) // 640)
    assert np.allclose(spec[:, 3], direct, rtol=1e-3, atol=1e-4)


def test_sinc_resampler_preserves_a_tone():
    t = torch.arange(48000) / 48000
    x = torch.sin(2 * torch.pi * 440 * t)[None]
    y = resample_sinc(x, 48000, 32000)
    assert y.shape[-1] == 32000
    ref = torch.sin(2 * torch.pi * 440 * torch.arange(32000) / 32000)
    assert (y[0, 200:-200] - ref[200:-200]).abs().max() < 2e-3


def test_write_wav_is_atomic_and_playable(tmp_path):
    import wave

    out = write_wav(tmp_path / "a.wav", np.linspace(-1, 1, 3200, dtype=np.float32), 32000)
    with wave.open(str(out)) as w:
        assert w.getframerate() == 32000 and w.getnframes() == 3200 and w.getsampwidth() == 2
    assert not list(tmp_path.glob(".*tmp"))


def test_reference_bounds(tmp_path):
    from gsvd.engine.reference import prepare_reference
    from gsvd.engine.ssl import HubertEncoder
    from gsvd.engine.testing.sovits import write_tiny_hubert

    m = build_sovits(load_sovits(write_tiny_sovits(tmp_path / "s.pth")))
    hub = HubertEncoder.from_folder(write_tiny_hubert(tmp_path / "hub"))
    rng = np.random.default_rng(0)
    feats = prepare_reference(rng.standard_normal(16000 * 4).astype(np.float32) * 0.1, 16000, sovits=m, hubert=hub)
    assert feats.prompt_tokens.dtype == torch.long and feats.prompt_tokens.numel() == ((16000 * 4 + 9600 - 400) // 320 + 1) // 2
    assert feats.spec.shape[0] == 1025
    for seconds in (2.0, 11.0):
        with pytest.raises(InvalidInput, match="3-10 s"):
            prepare_reference(np.zeros(int(16000 * seconds), np.float32), 16000, sovits=m, hubert=hub)


def test_fbank_and_speaker_encoder(tmp_path):
    from gsvd.engine.models.eres2net import ERes2NetV2
    from gsvd.engine.sv import SpeakerEncoder, fbank, mel_banks

    banks = mel_banks()
    assert banks.shape == (80, 257) and torch.all(banks[:, -1] == 0) and torch.all(banks.sum(1) > 0)
    feats = fbank(torch.randn(16000) * 0.1)
    assert feats.shape == (98, 80) and torch.isfinite(feats).all()
    small = dict(num_blocks=(1, 1, 1, 1), m_channels=8)
    path = tmp_path / "sv.ckpt"
    torch.save(ERes2NetV2(**small).state_dict(), path)
    enc = SpeakerEncoder.from_file(path, **small)
    assert enc.embed(torch.randn(16000)).shape == (1, 8 * 8 * 4 * 10)
    torch.save({"nope": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="does not match"):
        SpeakerEncoder.from_file(path, **small)
