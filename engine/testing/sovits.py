"""Tiny random SoVITS checkpoints (upstream format) and a tiny HuBERT folder, built at run time."""

from __future__ import annotations

import copy
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
        book = model.quantizer.vq.layers[0]._codebook
        book.embed.normal_()
        book.embed_avg.copy_(book.embed)
    return model.state_dict()


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
