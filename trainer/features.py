"""Stage 5, features: per clip, everything the two fine-tunes read.

For each transcribed clip, `features/<clip id>.safetensors` holds
    phones int64 [Tp]            symbol ids from the text frontend
    bert   float32 [1024, Tp]    BERT hidden_states[-3] for zh parts, zeros elsewhere
    ssl    float32 [ssl, T50]    HuBERT last hidden state of the 16 kHz clip
    codes  int64 [T25]           semantic tokens: the base SoVITS's ssl_proj + quantizer
    spec   float32 [1025, Ts]    linear spectrogram of the 32 kHz clip (hop 640, 50 Hz)
    wav    float32 [N]           the 32 kHz clip, amplitude-normalized as upstream does
    sv     float32 [20480]       ERes2NetV2 speaker embedding (v2Pro / v2ProPlus only)
and `features/features.json` lists them. It knows nothing about training; the
models come in as arguments (the SoVITS decides the codes, so the same base model
must be used for `features` and `fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsvd.trainer.records import TrainError, Utterance
from gsvd.trainer.workspace import Workspace, write_json

PEAK, MIX = 0.95, 0.5  # upstream's 2-get-hubert-wav32k amplitude normalization
MIN_PHONES = 1


@dataclass
class FeatureEncoders:
    """The models the features need, on one device."""

    sovits: torch.nn.Module  # SynthesizerTrn (ssl_proj + quantizer used)
    hubert: object  # gsvd.engine.ssl.HubertEncoder
    frontend: object  # gsvd.engine.text.TextFrontend
    sv: object | None = None  # gsvd.engine.sv.SpeakerEncoder for v2Pro


def normalize_amplitude(wav: np.ndarray) -> np.ndarray:
    """Scale towards a 0.95 peak, half way (upstream's wav32k preprocessing)."""
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak <= 0.0:
        return wav.astype(np.float32)
    if peak > 2.2:  # upstream drops such clips; ours are int16 so this means corrupt input
        raise TrainError(f"clip peak {peak:.1f} is out of range")
    return (wav / peak * (PEAK * MIX) + (1 - MIX) * wav).astype(np.float32)


def clip_features(wav32: np.ndarray, text: str, lang: str, enc: FeatureEncoders) -> dict[str, torch.Tensor]:
    """One clip (float32 mono 32 kHz) + transcript -> the tensor dict above."""
    from gsvd.engine.audio import linear_spectrogram, resample_sinc, resample_soxr

    wav = normalize_amplitude(wav32)
    ids, bert, _ = enc.frontend.features(text, lang)
    if ids.numel() < MIN_PHONES:
        raise TrainError(f"transcript {text!r} gives no phones in language {lang!r}")
    param = next(enc.sovits.parameters())
    with torch.inference_mode():
        wav16 = resample_soxr(wav, 32000, 16000)
        ssl = enc.hubert.encode(torch.from_numpy(np.ascontiguousarray(wav16)))  # [1, ssl, T50]
        codes = enc.sovits.extract_latent(ssl.to(param.device, param.dtype))[0, 0]
        w = torch.from_numpy(wav)[None]
        spec = linear_spectrogram(w)[0]
        out = {
            "phones": ids.long(),
            "bert": bert.float(),
            "ssl": ssl[0].float().cpu(),
            "codes": codes.long().cpu(),
            "spec": spec.float().cpu(),
            "wav": torch.from_numpy(wav.copy()),
        }
        if enc.sv is not None:
            out["sv"] = enc.sv.embed(resample_sinc(w, 32000, 16000)[0]).reshape(-1).float().cpu()
    return {k: v.contiguous() for k, v in out.items()}


def run_features(ws: Workspace, utterances: list[Utterance], enc: FeatureEncoders, progress=None) -> list[dict]:
    """Compute and save features for every utterance; returns the index written to features.json."""
    from safetensors.torch import save_file

    from gsvd.engine.audio import load_audio

    if not utterances:
        raise TrainError("no transcribed clips: run `gsvd train transcribe` first (or give --transcript)")
    out_dir = ws.stage_dir("features")
    index, skipped = [], []
    for utt in utterances:
        try:
            wav = load_audio(ws.path(utt.wav32), 32000)
            feats = clip_features(wav, utt.text, utt.lang, enc)
        except TrainError as exc:
            skipped.append(f"{utt.clip_id}: {exc}")
            continue
        path = out_dir / f"{utt.clip_id}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(feats, str(tmp))
        tmp.replace(path)
        index.append({"clip_id": utt.clip_id, "file": ws.rel(path), "lang": utt.lang, "text": utt.text,
                      "phones": int(feats["phones"].numel()), "frames": int(feats["spec"].shape[-1]),
                      "seconds": round(feats["wav"].numel() / 32000, 3)})
        if progress is not None:
            progress(utt.clip_id)
    if not index:
        raise TrainError("no clip gave usable features: " + "; ".join(skipped[:5]))
    write_json(out_dir / "features.json", {"items": index, "skipped": skipped})
    return index


def load_items(ws: Workspace) -> list[dict[str, torch.Tensor]]:
    """The tensor dicts written by `run_features`, in features.json order."""
    from gsvd.trainer.workspace import read_json

    index = read_json(ws.root / "features" / "features.json", "features index")
    return [_load_one(ws.path(e["file"])) for e in index["items"]]


def _load_one(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise TrainError(f"feature file missing: {path} (run `gsvd train features` again)")
    try:
        return load_file(str(path))
    except Exception as exc:  # truncated / foreign file
        raise TrainError(f"{path}: unreadable feature file ({exc})") from None
