"""Fine-tuning on tiny random models (CPU): the training passes agree with inference, padding never
leaks, losses fall, a run stopped mid-way and resumed ends bit-identical to a straight run, saves
are atomic, bad data is refused."""

from __future__ import annotations

import pytest
import torch

from gsvd.engine.audio import linear_spectrogram
from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn
from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder
from gsvd.engine.testing.gpt import random_gpt_state, tiny_gpt_config
from gsvd.engine.testing.sovits import random_sovits_state, tiny_sovits_config
from gsvd.trainer.fit_gpt import GptFitConfig, collate, fit_gpt
from gsvd.trainer.fit_sovits import SovitsFitConfig, fit_sovits
from gsvd.trainer.records import TrainError

SCFG = tiny_sovits_config("v2")
GCFG = tiny_gpt_config()


def sovits() -> SynthesizerTrn:
    torch.manual_seed(1)
    m = SynthesizerTrn(SovitsDims.from_config(SCFG, "v2"), with_posterior=True)
    m.load_state_dict(random_sovits_state(SCFG, "v2"), strict=False)
    return m


def gpt() -> Text2SemanticDecoder:
    m = Text2SemanticDecoder(T2SDims.from_config(GCFG))
    m.load_state_dict(random_gpt_state(GCFG))
    return m


def items(n: int = 4, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        frames = 50 + 10 * k
        t = torch.arange(frames * 640) / 32000
        wav = (0.3 * torch.sin(2 * torch.pi * (140 + 30 * k) * t) * torch.sin(torch.pi * t * 3)).float()
        spec = linear_spectrogram(wav[None])[0]
        out.append({"phones": torch.randint(1, 700, (8 + 3 * k,), generator=g),
                    "bert": torch.randn(1024, 8 + 3 * k, generator=g),
                    "ssl": torch.randn(32, spec.shape[-1], generator=g), "spec": spec, "wav": wav,
                    "codes": torch.randint(0, 1024, (spec.shape[-1] // 2,), generator=g)})
    return out


FAST_S = dict(batch_size=2, segment_frames=16, disc_width=1 / 16, lr=1e-3)
FAST_G = dict(batch_size=2, lr=1e-3, warmup_steps=2)


def test_gpt_training_pass_equals_inference_logits():
    from gsvd.engine.t2s_infer import first_step_logits

    m, data = gpt().eval(), items(3)
    b = collate(data, [0, 1, 2], m.dims.eos, "cpu")
    with torch.no_grad():
        logits = m.forward_train(b["phones"], b["phone_lens"], b["bert"], b["codes"], b["code_lens"])
        for i, it in enumerate(data):
            for t in (0, 7, it["codes"].numel() - 1):
                ref = first_step_logits(m, it["phones"], it["bert"], it["codes"][: t + 1])[0]
                assert torch.allclose(logits[i, t], ref, atol=1e-5), (i, t)
    assert (b["targets"][0, data[0]["codes"].numel() - 1] == m.dims.eos).item()


def test_sovits_training_pass_shapes_and_padding_invariance():
    m, data = sovits().eval(), items(2)
    from gsvd.trainer.fit_sovits import _collate

    b = _collate(data, [0, 1], "cpu")
    torch.manual_seed(0)
    wav, starts, (z_p, logs_q, m_p, logs_p, mask) = m.forward_train(
        b["ssl"], b["spec"], b["spec_lens"], b["text"], b["text_lens"], None, 16)
    assert wav.shape == (2, 1, 16 * 640) and starts.shape == (2,)
    assert z_p.shape == m_p.shape == (2, 16, b["spec"].shape[-1]) and mask.shape == (2, 1, b["spec"].shape[-1])
    assert all(0 <= int(s) <= int(n) - 16 for s, n in zip(starts, b["spec_lens"], strict=True))
    # the shorter item alone gives the same prior as inside the padded batch
    one = _collate(data, [0], "cpu")
    with torch.no_grad():
        ge = m.compute_ge(one["spec"])
        h_one = m.enc_p.encode(torch.nn.functional.interpolate(m.quantizer.decode(m.quantizer.encode(
            m.ssl_proj(one["ssl"]))), size=one["spec"].shape[-1]), torch.ones(1, 1, one["spec"].shape[-1]),
            one["text"], ge)
        m_one, _, _ = m.enc_p.finish(h_one, torch.ones(1, 1, one["spec"].shape[-1]))
    n = int(one["spec_lens"][0])
    assert torch.allclose(m_p[0, :, :n], m_one[0], atol=1e-4)


def test_losses_fall_and_rows_are_logged(tmp_path):
    rows: list[dict] = []
    res = fit_sovits(sovits(), items(), tmp_path / "s", SovitsFitConfig(epochs=6, save_every=3, **FAST_S),
                     log=rows.append)
    mel = [r["loss_mel"] for r in res.epoch_losses]
    kl = [r["loss_kl"] for r in res.epoch_losses]
    assert mel[-1] < mel[0] and kl[-1] < 0.5 * kl[0], (mel, kl)
    assert (tmp_path / "s" / "losses.jsonl").read_text().count("\n") == 6
    g = fit_gpt(gpt(), items(), tmp_path / "g", GptFitConfig(epochs=8, save_every=4, **FAST_G))
    assert g.epoch_losses[-1]["loss"] < 0.8 * g.epoch_losses[0]["loss"]
    assert g.epoch_losses[-1]["top3_acc"] > g.epoch_losses[0]["top3_acc"]


def _weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("which", ["sovits", "gpt"])
def test_stopped_run_resumes_to_the_same_weights(tmp_path, which):
    saves: list[int] = []
    if which == "sovits":
        cfg, run, make = SovitsFitConfig(epochs=5, save_every=2, **FAST_S), fit_sovits, sovits
    else:
        cfg, run, make = GptFitConfig(epochs=5, save_every=2, **FAST_G), fit_gpt, gpt
    straight = make()
    run(straight, items(), tmp_path / "a", cfg)
    stopped = make()
    run(stopped, items(), tmp_path / "b", cfg, stop_after_steps=7)  # killed inside epoch 4 (2 steps per epoch)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=False)["epoch"] == 2
    resumed = make()
    res = run(resumed, items(), tmp_path / "b", cfg, on_save=lambda ep, m: saves.append(ep))
    assert res.resumed_from == 2 and saves == [4, 5]
    assert [r["epoch"] for r in res.epoch_losses] == [1, 2, 3, 4, 5]
    assert _weights_equal(straight, resumed) == 0.0
    assert not list((tmp_path / "b").glob("*.tmp")) and not list((tmp_path / "b").glob(".*"))


def test_bad_data_is_refused(tmp_path):
    bad = items(1)
    bad[0]["codes"][3] = 1024  # EOS id inside the tokens
    with pytest.raises(TrainError, match="semantic token ids"):
        fit_gpt(gpt(), bad, tmp_path / "g", GptFitConfig(epochs=1))
    with pytest.raises(TrainError, match="no training items"):
        fit_gpt(gpt(), [], tmp_path / "g", GptFitConfig(epochs=1))
    short = items(1)
    short[0]["spec"], short[0]["ssl"] = short[0]["spec"][:, :10], short[0]["ssl"][:, :10]
    with pytest.raises(TrainError, match="longer than one training segment"):
        fit_sovits(sovits(), short, tmp_path / "s", SovitsFitConfig(epochs=1, segment_frames=16))
    plain = SynthesizerTrn(SovitsDims.from_config(SCFG, "v2"))
    with pytest.raises(TrainError, match="posterior encoder"):
        fit_sovits(plain, items(1), tmp_path / "s2", SovitsFitConfig(epochs=1))


def test_discriminators_and_mel_basis():
    from gsvd.trainer.mel import log_mel, mel_basis
    from gsvd.trainer.models.discriminators import MultiPeriodDiscriminator

    d = MultiPeriodDiscriminator(width=1 / 16)
    real, fake = torch.randn(2, 1, 8000), torch.randn(2, 1, 8000)
    r, g, fr, fg = d(real, fake)
    assert len(r) == len(g) == 6 and all(x.shape[0] == 2 for x in r)
    assert [len(f) for f in fr] == [7] + [6] * 5
    full = MultiPeriodDiscriminator()
    assert sum(p.numel() for p in full.parameters()) > 40_000_000  # upstream-sized (~46.7 M)
    fb = mel_basis()
    assert fb.shape == (128, 1025) and (fb >= 0).all()
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()  # filters in ascending frequency
    assert log_mel(torch.zeros(1, 6400)).shape == (1, 128, 10)
    assert torch.allclose(log_mel(torch.zeros(1, 6400)), torch.full((1, 128, 10), torch.log(torch.tensor(1e-5))))


def test_restore_removes_the_temp_file_of_a_killed_save(tmp_path):
    """A save cut off by a kill leaves its temp file (never renamed into place): the next fit's restore removes
    it, with or without a finished save beside it, and leaves the saved files alone."""
    from gsvd.trainer.fit_common import FitResult, restore

    stale = [tmp_path / ".last.pt.k3j2.tmp", tmp_path / ".losses.jsonl.x1.tmp"]
    for f in stale:
        f.write_bytes(b"half a checkpoint")
    (tmp_path / "keep.txt").write_text("kept")
    logged = []
    restore(tmp_path, {}, FitResult(), logged.append)
    assert not any(f.exists() for f in stale) and (tmp_path / "keep.txt").read_text() == "kept"
    assert logged == []  # nothing saved yet: a fresh start
