"""The prior's noise as a pure function of (stream seed, frame, channel), computed on the device.

A chunk's vocoder input is z_p = m + noise * exp(logs) * noise_scale over the stream's frames. The
noise of frame t, channel c is one standard normal drawn by Box-Muller from the 64 bits of
splitmix64(seed, t, c) (the same counter hash as the token sampler's race noise), so it is
drawn "once per frame" by construction: a frame decoded again as history, or by a batch of any
other streams, gets the same value; nothing is kept per stream and nothing goes up from the host
but the seed. It is plain tensor code, so the content-encoder graphs (`graph_content.py`) capture
it and the CPU reference runs the same arithmetic.
"""

from __future__ import annotations

import math

import torch

from gsvd.engine.runtime.device_sampling import _GOLDEN, _MIX1, _MIX2, _i64, _shr

_SEED_MULT = 7919  # a stream's noise seed is derived from its request seed (kept apart from the sampler's)


def noise_seed(request_seed: int) -> int:
    """The prior-noise seed of a stream whose request carries `request_seed` (a non-negative int64)."""
    return (int(request_seed) * _SEED_MULT + 1) & 0x7FFFFFFFFFFFFFFF


def gaussian(seeds: torch.Tensor, channels: int, frames: int) -> torch.Tensor:
    """[B] int64 seeds -> [B, channels, frames] float32 standard normals, element (b, c, t) a function of
    (seeds[b], t, c) alone."""
    dev = seeds.device
    ch = torch.arange(channels, device=dev, dtype=torch.int64)
    t = torch.arange(frames, device=dev, dtype=torch.int64)
    x = seeds[:, None, None] * _i64(_GOLDEN) + t[None, None, :] * _i64(_MIX1) + (ch[None, :, None] + 1) * _i64(_MIX2)
    x = (x ^ _shr(x, 30)) * _i64(_MIX1)
    x = (x ^ _shr(x, 27)) * _i64(_MIX2)
    x = x ^ _shr(x, 31)
    scale = 1.0 / (1 << 24)
    u1 = (_shr(x, 40).to(torch.float32) + 0.5) * scale  # (0, 1): the log is finite
    u2 = (((x >> 16) & 0xFFFFFF).to(torch.float32) + 0.5) * scale
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)


def sample_prior(m: torch.Tensor, logs: torch.Tensor, seeds: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """m, logs [B, C, T] (frame t of each row is the stream's frame t), seeds [B] int64, scales [B] ->
    z_p = m + noise * exp(logs) * scale, in m's dtype."""
    noise = gaussian(seeds, m.shape[1], m.shape[2]).to(m.dtype)
    return m + noise * torch.exp(logs) * scales.to(m.dtype)[:, None, None]
