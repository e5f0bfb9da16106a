"""The prior's noise: a pure function of (seed, frame, channel), standard normal, same on any batch."""

import math

import numpy as np
import pytest
import torch

from gsvd.engine.runtime.prior_noise import gaussian, noise_seed, sample_prior


def test_noise_is_a_function_of_seed_frame_and_channel():
    alone = gaussian(torch.tensor([41]), 6, 30)
    batch = gaussian(torch.tensor([5, 41, 9]), 6, 50)
    assert alone.shape == (1, 6, 30) and batch.shape == (3, 6, 50) and alone.dtype == torch.float32
    assert torch.equal(batch[1:2, :, :30], alone)  # other rows and a longer span do not change it
    assert torch.equal(gaussian(torch.tensor([41]), 6, 30), alone)  # drawn again: the same
    assert not torch.allclose(batch[0], batch[2])  # seeds differ
    assert not torch.allclose(alone[0, 0], alone[0, 1])  # channels differ
    assert torch.isfinite(batch).all()


def test_noise_is_standard_normal_and_uncorrelated():
    x = gaussian(torch.arange(64, dtype=torch.int64) * 1_000_003, 192, 256).double()
    flat = x.flatten()
    n = flat.numel()
    assert abs(flat.mean().item()) < 5 / math.sqrt(n)
    assert abs(flat.std().item() - 1) < 5 * math.sqrt(0.5 / n)
    assert abs(((flat - flat.mean()) ** 4).mean().item() / flat.var().item() ** 2 - 3) < 0.05  # kurtosis
    # tail mass against the normal's: P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027
    assert abs((flat.abs() > 2).double().mean().item() - 0.0455) < 0.002
    assert abs((flat.abs() > 3).double().mean().item() - 0.0027) < 0.0005
    for a, b in ((x[:, :, 1:], x[:, :, :-1]), (x[:, 1:], x[:, :-1]), (x[1:], x[:-1])):  # frames, channels, rows
        r = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
        assert abs(r) < 0.01, r


def test_sample_prior_arithmetic():
    g = torch.Generator().manual_seed(0)
    m, logs = torch.randn(2, 4, 9, generator=g), torch.randn(2, 4, 9, generator=g) * 0.3
    seeds, scales = torch.tensor([3, 8]), torch.tensor([0.5, 0.0], dtype=torch.float64)
    z = sample_prior(m, logs, seeds, scales)
    expect = m + gaussian(seeds, 4, 9) * torch.exp(logs) * torch.tensor([0.5, 0.0])[:, None, None]
    assert torch.allclose(z, expect, atol=1e-6)
    assert torch.equal(z[1], m[1])  # scale 0: the mean
    assert sample_prior(m.half(), logs.half(), seeds, scales).dtype == torch.float16


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**62 + 7])
def test_noise_seed_is_a_nonnegative_int64_apart_from_the_request_seed(seed):
    s = noise_seed(seed)
    assert 0 <= s < 2**63 and s != seed
    assert noise_seed(seed) == s and noise_seed(seed + 1) != s
