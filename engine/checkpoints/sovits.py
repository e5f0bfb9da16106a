"""Upstream SoVITS (`.pth`) checkpoints: version detection, reading, weight-norm folding, writing.

Layout: {"weight": fp16 state dict (no enc_q), "config": s2 hparams, "info": str}.
v2Pro/v2ProPlus (and v3/v4 LoRA) files replace the zip's leading "PK" with a
two-byte version marker. Fine-tuned files pickle their config as upstream's
`utils.HParams`; we read it with `torch.load(weights_only=True)` by allowing
only a plain stand-in class under that name, then turn it into a dict.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from gsvd.engine.checkpoints.io import atomic_write_bytes, check_state_shapes, read_bytes, torch_save_bytes
from gsvd.engine.errors import CheckpointError, UnsupportedVersion
from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn

SUPPORTED = ("v1", "v2", "v2Pro", "v2ProPlus")
MARKERS = {b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3", b"04": "v4", b"05": "v2Pro", b"06": "v2ProPlus"}
VERSION_MARKER = {"v2Pro": b"05", "v2ProPlus": b"06"}
# MD5 of the first 8192 bytes of the official pretrained generators
PRETRAINED_MD5 = {
    "dc3c97e17592963677a4a1681f30c653": "v1",  # s2G488k.pth
    "6642b37f3dbb1f76882b69937c95a5f3": "v2",  # s2G2333k.pth
    "43797be674a37c1c83ee81081941ed0f": "v3",  # s2Gv3.pth
    "4f26b9476d0c5033e04162c486074374": "v4",  # s2Gv4.pth
    "c7e9fce2223f3db685cdfa1e6368728a": "v2Pro",  # s2Gv2Pro.pth
    "66b313e39455b57ab1b0bc0b239c9d0a": "v2ProPlus",  # s2Gv2ProPlus.pth
}


class HParamsStandIn:
    """Receives the attributes of a pickled upstream `utils.HParams` (nothing is executed)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, HParamsStandIn) else v for k, v in self.__dict__.items()}


@dataclass
class SovitsCheckpoint:
    version: str
    dims: SovitsDims
    state_dict: dict[str, torch.Tensor]  # weight norm folded
    config: dict
    info: str = ""


def _marker_version(data: bytes) -> str | None:
    md5 = hashlib.md5(data[:8192]).hexdigest()
    if md5 in PRETRAINED_MD5:
        return PRETRAINED_MD5[md5]
    head = data[:2]
    if head == b"PK":
        return None
    if head in MARKERS:
        return MARKERS[head]
    raise CheckpointError("not a SoVITS checkpoint: unknown file header (neither a torch zip nor a version marker)")


def detect_sovits_version(path: str | Path) -> str:
    """'v1' | 'v2' | 'v2Pro' | 'v2ProPlus'; UnsupportedVersion for v3/v4; CheckpointError otherwise."""
    return load_sovits(path).version


def _unpickle(data: bytes, path: str | Path) -> dict:
    if data[:2] != b"PK":
        data = b"PK" + data[2:]
    try:
        with torch.serialization.safe_globals([(HParamsStandIn, "utils.HParams")]):
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable SoVITS checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a SoVITS checkpoint: top level is {type(obj).__name__}")
    return obj


def _config_dict(config: object, path: str | Path) -> dict:
    if isinstance(config, HParamsStandIn):
        config = config.to_dict()
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{path} is not a SoVITS checkpoint: its config has no 'model' section")
    return config


def _weight_version(state: dict[str, torch.Tensor], config: dict) -> str:
    if any(k.startswith(("cfm.", "bridge.", "wns1.")) for k in state):
        return "v3"
    if "sv_emb.weight" in state:
        return "v2ProPlus" if int(config["model"].get("upsample_initial_channel", 512)) >= 768 else "v2Pro"
    emb = state.get("enc_p.text_embedding.weight")
    return "v1" if emb is not None and emb.shape[0] == 322 else "v2"


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace <name>.weight_g / .weight_v by <name>.weight = g * v / ||v|| (norm over dims != 0)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            base = key[: -len(".weight_v")]
            g = state[base + ".weight_g"].float()
            v = value.float()
            norm = v.norm(dim=tuple(range(1, v.ndim)), keepdim=True)
            out[base + ".weight"] = g * v / norm
        elif not key.endswith(".weight_g"):
            out[key] = value
    return out


def load_sovits(path: str | Path, keep_posterior: bool = False) -> SovitsCheckpoint:
    """Read an upstream SoVITS checkpoint (torch.load weights_only=True only)."""
    data = read_bytes(path, "SoVITS")
    marker = _marker_version(data)
    if marker in ("v3", "v4"):
        raise UnsupportedVersion(f"{path} is a SoVITS {marker} model: {marker} is not supported yet (use v2, v2Pro or v2ProPlus)")
    obj = _unpickle(data, path)
    weight = obj.get("weight")
    if not isinstance(weight, dict):
        if isinstance(obj.get("config"), dict) and "model" in obj.get("config", {}) and "weight" in obj:
            raise CheckpointError(f"{path}: SoVITS checkpoint has no state dict under 'weight'")
        raise CheckpointError(f"{path} is not a SoVITS checkpoint: it lacks the 'weight' entry")
    if any(k.startswith("model.h.layers") for k in weight):
        raise CheckpointError(f"{path} is a GPT (.ckpt) checkpoint, not a SoVITS (.pth) one")
    config = _config_dict(obj.get("config"), path)
    version = marker or _weight_version(weight, config)
    if obj.get("lora_rank") or version not in SUPPORTED:
        raise UnsupportedVersion(f"{path} is a SoVITS {version} model: {version} is not supported yet")
    state = fold_weight_norm(weight)
    if not keep_posterior:
        state = {k: v for k, v in state.items() if not k.startswith("enc_q.")}
    try:
        dims = SovitsDims.from_config(config, version)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: SoVITS config is incomplete ({exc})") from None
    _check_state(state, dims, path, keep_posterior)
    return SovitsCheckpoint(version, dims, state, config, str(obj.get("info", "")))


def _check_state(state, dims: SovitsDims, path, with_posterior: bool) -> None:
    with torch.device("meta"):
        reference = SynthesizerTrn(dims, with_posterior=with_posterior and any(k.startswith("enc_q.") for k in state))
    check_state_shapes(state, reference, path, "SoVITS")


def build_sovits(
    ckpt: SovitsCheckpoint,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    with_posterior: bool = False,
) -> SynthesizerTrn:
    """A module in eval mode with the checkpoint's weights (unknown extra keys are ignored)."""
    model = SynthesizerTrn(ckpt.dims, with_posterior=with_posterior)
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) for k, v in ckpt.state_dict.items() if k in expected}
    model.load_state_dict(state, strict=True)
    return model.to(device=device, dtype=dtype).eval()


# modules whose weights upstream keeps weight-normed (prefixes of keys ending in ".weight")
_WN_PATTERNS = ("dec.ups.", "dec.resblocks.", ".in_layers.", ".res_skip_layers.", ".cond_layer.")


def split_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of fold_weight_norm for the layers upstream weight-norms."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight") and any(p in key or key.startswith(p) for p in _WN_PATTERNS):
            base = key[: -len(".weight")]
            v = value.float()
            out[base + ".weight_g"] = v.norm(dim=tuple(range(1, v.ndim)), keepdim=True)
            out[base + ".weight_v"] = v
        else:
            out[key] = value
    return out


def save_sovits(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: dict,
    version: str,
    info: str = "1epoch_1iteration",
    weight_norm: bool = True,
    half: bool = True,
) -> Path:
    """Write upstream's layout atomically, with the version marker for v2Pro/v2ProPlus."""
    if version not in SUPPORTED:
        raise UnsupportedVersion(f"cannot write a SoVITS {version} checkpoint")
    state = split_weight_norm(state_dict) if weight_norm else dict(state_dict)
    weight = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in state.items()
        if not k.startswith("enc_q.")
    }
    data = torch_save_bytes({"weight": weight, "config": config, "info": info})
    if version in VERSION_MARKER:
        data = VERSION_MARKER[version] + data[2:]
    return atomic_write_bytes(path, data)
