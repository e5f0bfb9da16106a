"""Tiny random voice bundles for tests: ``write_tiny_voice(dir, name, version, seed)``.

Builds a tiny GPT and SoVITS in upstream format (``gsvd.engine.testing.gpt/sovits``),
reads them back through the real checkpoint loaders, computes a reference cache from a
synthetic 3.2 s clip (spectrogram with the real ``linear_spectrogram``, prompt tokens
through the SoVITS quantizer from seeded SSL-like features, a seeded speaker embedding
for v2Pro/v2ProPlus) and writes a real bundle with ``write_bundle``. Same version and
seed give identical weights, hence the same ``model_id`` (voices share the model).
Models are cached per process, so repeated calls take milliseconds.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsvd.engine.bundle import SV_DIM, SV_VERSIONS, ReferenceCache, write_bundle
from gsvd.engine.voice_import import gpt_module_state, module_state

REF_SECONDS = 3.2
SAMPLE_RATE = 32000
REFERENCE_TEXT = "你好，世界。"


@dataclass(frozen=True)
class _TinyModel:
    version: str
    gpt_state: dict
    gpt_config: dict
    sovits_state: dict
    sovits_config: dict
    reference: ReferenceCache
    audio: np.ndarray


def write_tiny_voice(
    dir: str | Path,
    name: str = "alice",
    version: str = "v2",
    seed: int = 0,
    *,
    reference_text: str = REFERENCE_TEXT,
    reference_language: str = "zh",
    overwrite: bool = False,
) -> Path:
    """Write ``dir/name`` as a bundle of a tiny random model; return its path."""
    tiny = _tiny_model(version, seed)
    dest = Path(dir) / name
    write_bundle(
        dest,
        name=name,
        version=tiny.version,
        gpt_state=tiny.gpt_state,
        gpt_config=tiny.gpt_config,
        sovits_state=tiny.sovits_state,
        sovits_config=tiny.sovits_config,
        reference=tiny.reference,
        reference_text=reference_text,
        reference_language=reference_language,
        reference_audio=(tiny.audio, SAMPLE_RATE),
        consent={"statement": "synthetic test voice, no real person"},
        provenance={"created_by": "gsvd.engine.testing.bundle", "seed": seed},
        overwrite=overwrite,
    )
    return dest


def synthetic_clip(seconds: float = REF_SECONDS, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A voiced-sounding test clip: a gliding harmonic tone with an envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2
    pcm = 0.2 * envelope * wave + 0.01 * rng.standard_normal(t.size)
    return pcm.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _tiny_model(version: str, seed: int) -> _TinyModel:
    from gsvd.engine.checkpoints.gpt import load_gpt
    from gsvd.engine.checkpoints.sovits import build_sovits, load_sovits
    from gsvd.engine.testing.gpt import write_tiny_gpt
    from gsvd.engine.testing.sovits import write_tiny_sovits

    with tempfile.TemporaryDirectory(prefix="gsvd-tiny-") as tmp:
        gpt = load_gpt(write_tiny_gpt(Path(tmp) / "tiny-e1.ckpt", seed=seed))
        sovits = load_sovits(write_tiny_sovits(Path(tmp) / "tiny_e1_s1.pth", version=version, seed=seed))
    model = build_sovits(sovits, device="cpu", dtype=torch.float32)
    audio = synthetic_clip(seed=seed)
    reference = _reference(model, sovits.version, audio, int(gpt.dims.phoneme_vocab_size), seed)
    return _TinyModel(
        version=sovits.version,
        gpt_state=gpt_module_state(gpt),
        gpt_config=gpt.config,
        sovits_state=module_state(model, sovits.state_dict),
        sovits_config=sovits.config,
        reference=reference,
        audio=audio,
    )


def _reference(
    model: torch.nn.Module, version: str, audio: np.ndarray, phone_vocab: int, seed: int
) -> ReferenceCache:
    from gsvd.engine.audio import linear_spectrogram

    g = torch.Generator().manual_seed(seed)
    spec = linear_spectrogram(torch.from_numpy(audio).unsqueeze(0))
    spec = spec.reshape(spec.shape[-2], spec.shape[-1]).float()  # [1025, Tr]
    n_tokens = int(REF_SECONDS * 25)
    ssl_dim = int(model.ssl_proj.in_channels)
    with torch.inference_mode():
        ssl = torch.randn(1, ssl_dim, 2 * n_tokens, generator=g)
        codes = model.extract_latent(ssl)
    n_phones = 10
    return ReferenceCache(
        prompt_tokens=codes.reshape(-1).long(),
        spec=spec,
        phone_ids=torch.randint(10, min(300, phone_vocab), (n_phones,), generator=g),
        bert=torch.zeros(1024, n_phones),
        sv_emb=torch.randn(SV_DIM, generator=g) * 0.1 if version in SV_VERSIONS else None,
        norm_text=REFERENCE_TEXT,
    )
