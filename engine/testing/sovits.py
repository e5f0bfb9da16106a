"""Tiny random SoVITS checkpoints (upstream format) and a tiny HuBERT folder, built at run time."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from gsvd.engine.checkpoints.sovits import save_sovits
from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn

_V2 = {
    "train": {"segment_size": 20480, "fp16_run": True, "c_mel": 45, "c_kl": 1.0, "text_low_lr_rate": 0.4},
    "data": {
        "max_wav_value": 32768.0,
        "sampling_rate": 32000,
        "filter_length": 2048,
        "hop_length": 640,
        "win_length": 2048,
        "n_mel_channels": 128,
        "mel_fmin": 0.0,
        "mel_fmax": None,
        "n_speakers": 300,
    },
    "model": {
        "inter_channels": 192,
        "hidden_channels": 192,
        "filter_channels": 768,
        "n_heads": 2,
        "n_layers": 6,
        "kernel_size": 3,
        "p_dropout": 0.1,
        "resblock": "1",
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "upsample_rates": [10, 8, 2, 2, 2],
        "upsample_initial_channel": 512,
        "upsample_kernel_sizes": [16, 16, 8, 2, 2],
        "n_layers_q": 3,
        "use_spectral_norm": False,
        "gin_channels": 512,
        "semantic_frame_rate": "25hz",
        "freeze_quantizer": True,
        "version": "v2",
    },
}


def real_sovits_config(version: str = "v2") -> dict:
    """Upstream s2 config of the real sizes for v1/v2, v2Pro, v2ProPlus."""
    cfg = copy.deepcopy(_V2)
    cfg["model"]["version"] = version
    if version in ("v2Pro", "v2ProPlus"):
        cfg["model"]["gin_channels"] = 1024
        cfg["model"]["p_dropout"] = 0.0
    if version == "v2ProPlus":
        cfg["model"]["upsample_initial_channel"] = 768
        cfg["model"]["upsample_kernel_sizes"] = [20, 16, 8, 2, 2]
    return cfg


def tiny_sovits_config(version: str = "v2", ssl_dim: int = 32, **overrides) -> dict:
    """Small widths; hop stays 640 so one token is still 1280 samples at 32 kHz."""
    cfg = real_sovits_config(version)
    gin = 64 if version in ("v2Pro", "v2ProPlus") else 32
    cfg["model"].update(
        {
            "inter_channels": 16,
            "hidden_channels": 16,
            "filter_channels": 32,
            "n_layers": 2,
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "upsample_initial_channel": 32,
            "gin_channels": gin,
            "ssl_dim": ssl_dim,
            "mrte_hidden": 32,
        }
    )
    cfg["model"].update(overrides)
    return cfg


def random_sovits_state(config: dict, version: str, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = SynthesizerTrn(SovitsDims.from_config(config, version))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "flow" in name and ".post." in name:
                p.normal_(0.0, 0.05)  # upstream zero-inits these; random makes the flow non-trivial
            elif name.endswith("gamma"):
                p.fill_(1.0)
        _audible_vocoder(model.dec, config["data"]["sampling_rate"])
        book = model.quantizer.vq.layers[0]._codebook
        book.embed.normal_()
        book.embed_avg.copy_(book.embed)
    return model.state_dict()


SPEAKING_RMS = 0.1  # -20 dBFS: the untrained generator's output level for unit-variance latents
SPEECH_TOP_HZ = 4000.0  # upsamplers fed at or above this rate interpolate instead of adding images


@torch.no_grad()
def _audible_vocoder(dec: torch.nn.Module, sample_rate: int) -> None:
    """Initialise the HiFi-GAN generator so that, untrained, it outputs a zero-mean signal at a
    speaking level with its energy in the speech band.

    With PyTorch's default init a random tiny generator gave a -75 dBFS hum on a DC offset: the
    variance shrinks at every layer, random biases add offsets, and in the last stages (1-2
    channels in the tiny model) the leaky ReLUs see signals far below zero. A few fine-tuning
    steps cannot bring that back, so `make demo` wrote a silent file. Here
    - the upsamplers are scaled and biased on a seeded unit-variance latent so that every
      stage's output channel has zero mean and unit variance (data-dependent init, as for
      weight-normalized nets): the leaky ReLUs work on both sides of zero in every stage;
    - an upsampler fed at or above SPEECH_TOP_HZ interpolates (channel mixing times a smooth
      window) rather than mirroring its input into images, which puts most energy in the top
      octaves (hiss); the others are random with equal phase sums (no checkerboard tones);
    - resblock branches start small (upstream's std 0.01): the blocks start near identity;
    - the output conv is a smoothed derivative (a ramp of taps times a random gain per channel):
      no gain at 0 Hz, so the rectified features in front of it leave no DC offset, and a
      broad peak inside the speech band. It is scaled to SPEAKING_RMS on the same latent.
    """
    import torch.nn.functional as F

    from gsvd.engine.models.hifigan import LRELU_SLOPE

    for block in dec.resblocks:
        for conv in (*block.convs1, *block.convs2):
            conv.weight.normal_(0.0, 0.01)
            conv.bias.zero_()
    for conv in (dec.conv_pre, *([dec.cond] if hasattr(dec, "cond") else [])):
        conv.weight.normal_(0.0, conv.weight[0].numel() ** -0.5)
        conv.bias.zero_()
    seeded = torch.Generator().manual_seed(0)
    latent = torch.randn(1, dec.conv_pre.in_channels, 100, generator=seeded)
    if hasattr(dec, "cond"):
        cond = torch.randn(1, dec.cond.in_channels, 1, generator=seeded)
        h = _normalize_channels((dec.conv_pre, dec.cond), dec.conv_pre(latent) + dec.cond(cond), out_dim=0)
    else:
        h = _normalize_channels((dec.conv_pre,), dec.conv_pre(latent), out_dim=0)
    rate = sample_rate / math.prod(up.stride[0] for up in dec.ups)  # the latent's frame rate
    n = dec.num_kernels
    for i, up in enumerate(dec.ups):
        _init_upsampler(up, smooth=rate >= SPEECH_TOP_HZ)
        rate *= up.stride[0]
        x = _normalize_channels((up,), up(F.leaky_relu(h, LRELU_SLOPE)), out_dim=1)
        h = sum(dec.resblocks[i * n + j](x) for j in range(n)) / n
    post = dec.conv_post.weight  # [1, C, K]
    k = post.shape[-1]
    ramp = torch.arange(k, dtype=post.dtype) - (k - 1) / 2  # a smoothed derivative: 0 at 0 Hz, peak ~3 kHz
    post.copy_(torch.randn(1, post.shape[1], 1) * ramp)
    post.mul_(SPEAKING_RMS / dec.conv_post(F.leaky_relu(h)).std())


def _normalize_channels(convs: tuple, out: torch.Tensor, out_dim: int) -> torch.Tensor:
    """Scale and shift `convs` (summed into `out` [B, C, T]) so each channel of `out` has zero mean
    and unit variance; `out_dim` is the weights' output-channel axis (0 for Conv1d, 1 for
    ConvTranspose1d)."""
    mean, std = out.mean(dim=(0, 2)), out.std(dim=(0, 2))
    shape = [1, 1, 1]
    shape[out_dim] = -1
    for conv in convs:
        conv.weight.div_(std.reshape(shape))
        conv.bias.div_(std)
    convs[0].bias.sub_(mean / std)
    return (out - mean[:, None]) / std[:, None]  # what the convs now give


def _init_upsampler(up: torch.nn.ConvTranspose1d, *, smooth: bool) -> None:
    """Random transposed conv with equal phase sums, or (`smooth`) a window shared by every
    channel pair; the scale is set afterwards on data."""
    w, stride = up.weight, up.stride[0]  # [in, out, k]
    up.bias.zero_()
    if not smooth:
        w.normal_()
        _equal_phase_sums(w, stride)
        return
    k = w.shape[2]
    window = torch.sin(torch.pi * (torch.arange(k) + 0.5) / k) ** 2
    w.copy_(torch.randn(w.shape[0], w.shape[1], 1) * window)


def _equal_phase_sums(w: torch.Tensor, stride: int) -> None:
    """Give every output phase of a transposed conv (taps j, j + stride, ...) the same sum per channel
    pair, so that a constant input gives a constant output, not a tone at the input rate and its
    harmonics (the "checkerboard" of transposed convs)."""
    k = w.shape[-1]
    phase = torch.arange(k) % stride
    counts = torch.bincount(phase, minlength=stride).to(w.dtype)  # [stride]
    sums = torch.zeros(*w.shape[:-1], stride, dtype=w.dtype).index_add_(-1, phase, w)
    target = sums.sum(-1, keepdim=True) / stride
    w.add_(((target - sums) / counts)[..., phase])


def write_tiny_sovits(path: str | Path, version: str = "v2", seed: int = 0, config: dict | None = None, **overrides) -> Path:
    cfg = config if config is not None else tiny_sovits_config(version, **overrides)
    return save_sovits(path, random_sovits_state(cfg, version, seed), cfg, version)


def write_tiny_hubert(folder: str | Path, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random transformers HubertModel saved with save_pretrained (hidden = tiny ssl_dim)."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        conv_dim=(16, 16, 16, 16, 16, 16, 16),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    model = HubertModel(config)
    out = Path(folder)
    # the layout of the real chinese-hubert-base folder: config, feature-extractor config, .bin weights
    model.save_pretrained(out)
    if (out / "model.safetensors").is_file():  # newer transformers always write safetensors
        torch.save(model.state_dict(), out / "pytorch_model.bin")
        (out / "model.safetensors").unlink()
    from transformers import Wav2Vec2FeatureExtractor

    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(out)
    return out


def write_tiny_sv(path: str | Path, seed: int = 0) -> Path:
    """Random ERes2NetV2 weights in the released checkpoint's layout (a plain state dict), one block
    per stage so it is quick; the embedding keeps the real 20480 dimensions."""
    from gsvd.engine.checkpoints.io import atomic_write_bytes, torch_save_bytes
    from gsvd.engine.models.eres2net import ERes2NetV2

    torch.manual_seed(seed)
    model = ERes2NetV2(num_blocks=(1, 1, 1, 1), base_width=8, scale=2)
    return atomic_write_bytes(path, torch_save_bytes(model.state_dict()))
