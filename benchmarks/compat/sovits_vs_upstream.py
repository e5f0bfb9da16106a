"""Compare gsvd's SoVITS decode with upstream GPT-SoVITS's `SynthesizerTrn.decode` (fp32, CPU).

Run in a venv that can import upstream (see README.md here):

    UPSTREAM=/path/to/GPT-SoVITS python benchmarks/compat/sovits_vs_upstream.py [REF.wav]

For the real v2 and v2ProPlus sizes (random weights written with gsvd's
`save_sovits`, i.e. weight-normed and, for v2ProPlus, with the "06" marker), it
loads the same file into both implementations and compares, with noise_scale=0:
the reference spectrogram, `extract_latent` codes, the timbre vector and the
waveform. Last line: one JSON object.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def _upstream_model(path: str):
    from module.models import SynthesizerTrn

    data = Path(path).read_bytes()
    data = b"PK" + data[2:]
    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    d, m = cfg["data"], dict(cfg["model"])
    model = SynthesizerTrn(d["filter_length"] // 2 + 1, cfg["train"]["segment_size"] // d["hop_length"],
                           n_speakers=d["n_speakers"], **m)
    model.load_state_dict(ckpt["weight"], strict=False)
    return model.eval()


def _reference_wav(arg: str | None) -> tuple[np.ndarray, str]:
    """A real 3-10 s clip, resampled once to 32 kHz so both sides start from the same samples."""
    from gsvd.engine.audio import decode_audio, resample_soxr, to_mono

    path = arg or "/work/shared/data/speech/zh/fleurs_zh_1883_clip5.wav"
    audio, rate = decode_audio(path)
    wav = resample_soxr(to_mono(audio), rate, 32000)[: 32000 * 8]
    return wav, path


def compare(version: str, wav32: np.ndarray, tmp: str) -> dict:
    from module.mel_processing import spectrogram_torch

    from gsvd.engine.audio import linear_spectrogram
    from gsvd.engine.checkpoints.sovits import build_sovits, load_sovits, save_sovits
    from gsvd.engine.testing.sovits import random_sovits_state, real_sovits_config

    cfg = real_sovits_config(version)
    path = os.path.join(tmp, f"{version}.pth")
    save_sovits(path, random_sovits_state(cfg, version, seed=5), cfg, version)
    ckpt = load_sovits(path)
    ours, ref = build_sovits(ckpt), _upstream_model(path)

    g = torch.Generator().manual_seed(11)
    audio = torch.from_numpy(wav32)[None]
    spec_ours = linear_spectrogram(audio)
    spec_ref = spectrogram_torch(audio, 2048, 32000, 640, 2048, center=False)
    codes = torch.randint(0, 1024, (1, 1, 50), generator=g)
    text = torch.randint(0, 732, (1, 40), generator=g)
    ssl = torch.randn(1, 768, 120, generator=g)
    sv = torch.randn(1, 20480, generator=g) if version in ("v2Pro", "v2ProPlus") else None
    with torch.no_grad():
        wav_ours = ours.decode(codes, text, spec_ref, noise_scale=0.0, sv_emb=sv)
        wav_ref = ref.decode(codes, text, spec_ref, noise_scale=0.0, sv_emb=sv)
        lat_ours, lat_ref = ours.extract_latent(ssl), ref.extract_latent(ssl)
    return {
        "version": version,
        "detected_version": ckpt.version,
        "spec_max_abs_diff": (spec_ours - spec_ref).abs().max().item(),
        "latent_codes_identical": bool(torch.equal(lat_ours, lat_ref)),
        "wav_max_abs_diff": (wav_ours - wav_ref).abs().max().item(),
        "wav_samples": int(wav_ours.numel()),
        "wav_ref_peak": wav_ref.abs().max().item(),
    }


def main() -> None:
    up = os.environ.get("UPSTREAM", "/tmp/upstream")
    sys.path[:0] = [up, os.path.join(up, "GPT_SoVITS")]
    wav32, src = _reference_wav(sys.argv[1] if len(sys.argv) > 1 else None)
    tmp = tempfile.mkdtemp()
    results = [compare(v, wav32, tmp) for v in ("v2", "v2ProPlus")]
    print(f"reference clip: {src} ({len(wav32) / 32000:.2f} s at 32 kHz)")
    for r in results:
        print(" ".join(f"{k}={v}" for k, v in r.items()))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
