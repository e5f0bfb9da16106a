"""Eager reference generation for the GPT (one stream, concatenating KV cache).

This is the ground truth the fast runtime is tested against, and the path the
compatibility checks run: it follows upstream's `infer_panel_naive` exactly
(EOS column removed for the first 11 steps, stop on argmax-EOS or sampled EOS,
1500-step cap, a single token 0 when nothing was generated).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from gsvd.engine.models.t2s import Text2SemanticDecoder
from gsvd.engine.sampling import sample_next

MAX_STEPS = 1500
MIN_STEPS = 11  # EOS is not allowed before this many steps (about 0.4 s)


@dataclass
class GenerationTrace:
    """Everything a step-by-step comparison needs: per-step logits and tokens."""

    tokens: list[int] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)  # each [vocab] (before EOS removal)


def _prefill(
    model: Text2SemanticDecoder, phone_ids: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None
) -> tuple[torch.Tensor, list]:
    """Run the prefix; returns last-position logits [1,V] and the KV cache."""
    x = model.embed_text(phone_ids.reshape(1, -1), bert.reshape(1, bert.shape[-2], -1))
    if prompt is not None and prompt.numel() > 0:
        y = model.embed_audio(prompt.reshape(1, -1), 0)
        xy = torch.cat([x, y], dim=1)
    else:
        xy = x
    allow = model.prefix_mask(x.shape[1], xy.shape[1] - x.shape[1], device=xy.device)
    h, cache = model.run_layers(xy, None, allow)
    return model.logits(h[:, -1]), cache


@torch.inference_mode()
def first_step_logits(
    model: Text2SemanticDecoder, phone_ids: torch.Tensor, bert: torch.Tensor, prompt_tokens: torch.Tensor | None
) -> torch.Tensor:
    """The logits upstream samples the first token from: [1, vocab] (EOS column included)."""
    logits, _ = _prefill(model, phone_ids, bert, prompt_tokens)
    return logits


@torch.inference_mode()
def generate_semantic(
    model: Text2SemanticDecoder,
    phone_ids: torch.Tensor,
    bert: torch.Tensor,
    prompt_tokens: torch.Tensor | None,
    *,
    top_k: int = 15,
    top_p: float = 1.0,
    temperature: float = 1.0,
    repetition_penalty: float = 1.35,
    generator: torch.Generator | None = None,
    max_steps: int = MAX_STEPS,
    min_steps: int = MIN_STEPS,
    trace: GenerationTrace | None = None,
) -> Iterator[int]:
    """Yield new semantic tokens one at a time (EOS not yielded).

    phone_ids [N] (prompt + target phones), bert [1024, N], prompt_tokens [Ty].
    """
    eos = model.dims.eos
    logits, cache = _prefill(model, phone_ids, bert, prompt_tokens)
    device = logits.device
    y = (
        prompt_tokens.reshape(1, -1).to(device=device, dtype=torch.long)
        if prompt_tokens is not None
        else torch.zeros(1, 0, dtype=torch.long, device=device)
    )
    y_len = y.shape[1]
    produced = 0
    for idx in range(max_steps):
        if trace is not None:
            trace.logits.append(logits[0].float().clone())
        step_logits = logits[:, :-1] if idx < min_steps else logits
        token = sample_next(
            step_logits,
            y,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            generator=generator,
        )
        t = int(token[0])
        if int(torch.argmax(step_logits, dim=-1)[0]) == eos or t == eos:
            break
        produced += 1
        if trace is not None:
            trace.tokens.append(t)
        yield t
        if idx == max_steps - 1:
            break
        y = torch.cat([y, token.reshape(1, 1)], dim=1)
        step = model.embed_audio(token.reshape(1, 1), y_len + idx)
        h, cache = model.run_layers(step, cache, None)
        logits = model.logits(h[:, -1])
    if produced == 0 and y_len == 0:
        yield 0  # upstream emits a single token 0 rather than nothing


def generate_all(model: Text2SemanticDecoder, *args, **kwargs) -> torch.Tensor:
    """All new tokens as a LongTensor [T] (at least one)."""
    tokens = list(generate_semantic(model, *args, **kwargs))
    return torch.tensor(tokens or [0], dtype=torch.long)
