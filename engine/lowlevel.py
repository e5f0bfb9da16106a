"""Tensor-level entry points for comparing gsvd with the reference implementation.

These run the models exactly as upstream inference does, with no text frontend,
runtime or chunking in between (fp32 on CPU by default):

    from gsvd.engine import lowlevel as ll
    gpt = ll.load_gpt("s1.ckpt")                      # upstream GPT .ckpt
    logits = ll.gpt_first_logits(gpt, phone_ids, bert, prompt_tokens)   # [1, 1025]
    tokens = ll.gpt_generate(gpt, phone_ids, bert, prompt_tokens, top_k=1)  # LongTensor [T]
    sovits = ll.load_sovits("s2.pth")                 # v1/v2/v2Pro/v2ProPlus .pth
    spec = ll.reference_spectrogram(wav32k)           # [1, 1025, Tr] (upstream spectrogram_torch)
    wav = ll.sovits_decode(sovits, tokens, target_phone_ids, spec, noise_scale=0.0,
                           sv_emb=None)               # [T * 1280] float32 at 32 kHz

Shapes: phone_ids [N] long (prompt phones + target phones, symbol ids), bert [1024, N],
prompt_tokens [Ty] long (0..1023); `sovits_decode` takes the generated tokens only and
the target phones only, like upstream's `SynthesizerTrn.decode`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gsvd.engine.audio import linear_spectrogram, resample_sinc
from gsvd.engine.checkpoints.gpt import build_gpt
from gsvd.engine.checkpoints.gpt import load_gpt as _read_gpt
from gsvd.engine.checkpoints.sovits import build_sovits
from gsvd.engine.checkpoints.sovits import load_sovits as _read_sovits
from gsvd.engine.models.sovits import SynthesizerTrn
from gsvd.engine.models.t2s import Text2SemanticDecoder
from gsvd.engine.t2s_infer import first_step_logits, generate_all


def load_gpt(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Text2SemanticDecoder:
    return build_gpt(_read_gpt(path), device, dtype)


def load_sovits(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> SynthesizerTrn:
    return build_sovits(_read_sovits(path), device, dtype)


def gpt_first_logits(model, phone_ids, bert, prompt_tokens) -> torch.Tensor:
    """Logits the first semantic token is sampled from: [1, vocab]."""
    return first_step_logits(model, phone_ids, bert, prompt_tokens)


def gpt_generate(
    model,
    phone_ids,
    bert,
    prompt_tokens,
    *,
    top_k: int = 15,
    top_p: float = 1.0,
    temperature: float = 1.0,
    repetition_penalty: float = 1.35,
    seed: int = 0,
    max_steps: int = 1500,
) -> torch.Tensor:
    """Upstream's infer_panel_naive: the new semantic tokens (EOS dropped) as LongTensor [T]."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    return generate_all(model, phone_ids, bert, prompt_tokens, top_k=top_k, top_p=top_p, temperature=temperature,
                        repetition_penalty=repetition_penalty, generator=g, max_steps=max_steps)


def reference_spectrogram(wav: np.ndarray | torch.Tensor, sample_rate: int = 32000) -> torch.Tensor:
    """Mono waveform -> [1, 1025, Tr]: resampled to 32 kHz (sinc), peak-limited, linear spectrogram."""
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(1, -1)
    x = resample_sinc(x, sample_rate, 32000)
    peak = x.abs().max()
    if peak > 1:
        x = x / min(2.0, float(peak))
    return linear_spectrogram(x)


@torch.inference_mode()
def sovits_decode(
    model: SynthesizerTrn,
    tokens: torch.Tensor,
    target_phone_ids: torch.Tensor,
    spec: torch.Tensor,
    *,
    noise_scale: float = 0.5,
    speed: float = 1.0,
    sv_emb: torch.Tensor | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Whole-utterance SoVITS decode -> float32 PCM [len(tokens) * 1280] at 32 kHz."""
    p = next(model.parameters())
    codes = tokens.reshape(1, 1, -1).to(p.device)
    text = target_phone_ids.reshape(1, -1).to(p.device)
    refer = spec.reshape(1, spec.shape[-2], -1).to(p.device, p.dtype)
    sv = None if sv_emb is None else sv_emb.reshape(1, -1).to(p.device, p.dtype)
    g = torch.Generator(device=p.device).manual_seed(seed)
    wav = model.decode(codes, text, refer, noise_scale=noise_scale, speed=speed, sv_emb=sv, generator=g)
    return wav[0, 0].float().cpu().numpy()
