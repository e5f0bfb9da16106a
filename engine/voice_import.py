"""Build a voice bundle from upstream checkpoints and a reference clip (``gsvd import``).

Reads a GPT ``.ckpt`` and a SoVITS ``.pth`` (any supported version), computes the
reference cache once — prompt tokens through HuBERT + the SoVITS quantizer, the
32 kHz spectrogram, the ERes2NetV2 speaker embedding for v2Pro/v2ProPlus, the
reference text's phones and BERT features — and writes an atomic bundle. When a
bundle made from the same checkpoint files already exists in the voices folder, the
new one shares its weights (hard links), so both load as one model.

This module does not know where base models live (the caller passes folders; see
``gsvd.engine.models_dir``) and does not scan GPT-SoVITS installs.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gsvd.engine.bundle import (
    DEFAULT_LANGUAGES,
    SV_VERSIONS,
    ReferenceCache,
    VoiceBundle,
    list_bundles,
    load_bundle,
    sha256_file,
    validate_voice_name,
    write_bundle,
)
from gsvd.engine.errors import BundleError, CheckpointError, InvalidInput, MissingModel

REFERENCE_LANGUAGES = (
    "zh",
    "en",
    "ja",
    "ko",
    "yue",
    "all_zh",
    "all_ja",
    "all_ko",
    "all_yue",
    "auto",
    "auto_yue",
)


@dataclass(frozen=True)
class BaseModelPaths:
    """Local base models an import needs (None: not available)."""

    hubert_folder: Path | None
    sv_model: Path | None = None
    bert_folder: Path | None = None


def import_voice(
    voices_root: str | Path,
    name: str,
    *,
    gpt_path: str | Path,
    sovits_path: str | Path,
    ref_audio: str | Path,
    ref_text: str,
    ref_lang: str,
    base: BaseModelPaths,
    consent: Mapping[str, Any] | None,
    provenance: Mapping[str, Any] | None = None,
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
    overwrite: bool = False,
    device: str = "cpu",
) -> VoiceBundle:
    """Write ``voices_root/name`` from upstream checkpoints + a 3-10 s reference clip.

    ``consent`` is required: the speaker's consent record (``gsvd.engine.consent``); InvalidInput without."""
    validate_voice_name(name)
    consent = _consent(consent)
    gpt_path, sovits_path, ref_audio = _check_request(gpt_path, sovits_path, ref_audio, ref_text, ref_lang)
    dest = Path(voices_root) / name
    if dest.exists() and not overwrite:
        raise BundleError(f"voice {name!r} already exists at {dest} (pass --force to replace it)")
    gpt, sovits = _load_pair(gpt_path, sovits_path)
    _check_base(base, sovits.version)
    model = _build_sovits(sovits, device)
    reference = compute_reference(model, sovits.version, ref_audio, ref_text, ref_lang, base, device)
    sources = {"gpt": sha256_file(gpt_path), "sovits": sha256_file(sovits_path)}
    return write_bundle(
        dest,
        name=name,
        version=sovits.version,
        gpt_state=gpt_module_state(gpt),
        gpt_config=gpt.config,
        sovits_state=module_state(model, sovits.state_dict),
        sovits_config=sovits.config,
        reference=reference,
        reference_text=ref_text.strip(),
        reference_language=ref_lang,
        reference_audio=_audio_copy(ref_audio),
        languages=languages,
        consent=consent,
        provenance=_provenance(provenance, gpt_path, sovits_path, ref_audio, sources, gpt),
        share_weights_from=find_same_weights(Path(voices_root), sources, exclude=dest),
        overwrite=overwrite,
    )


def compute_reference(
    sovits_model: torch.nn.Module,
    version: str,
    ref_audio: Path,
    ref_text: str,
    ref_lang: str,
    base: BaseModelPaths,
    device: str = "cpu",
) -> ReferenceCache:
    """The cached reference: prompt tokens, spectrogram, speaker embedding, phones, BERT."""
    from gsvd.engine.reference import prepare_reference
    from gsvd.engine.ssl import HubertEncoder
    from gsvd.engine.text import TextFrontend

    hubert = HubertEncoder.from_folder(base.hubert_folder, device=device)
    sv = None
    if version in SV_VERSIONS:
        from gsvd.engine.sv import SpeakerEncoder

        sv = SpeakerEncoder.from_file(base.sv_model, device=device)
    with torch.inference_mode():
        feats = prepare_reference(str(ref_audio), None, sovits=sovits_model, hubert=hubert, sv=sv)
    frontend = TextFrontend(
        version="v1" if version == "v1" else "v2", bert_folder=base.bert_folder, device=device
    )
    ids, bert, norm_text = frontend.features(prompt_text(ref_text, ref_lang), ref_lang)
    if ids.numel() == 0:
        raise InvalidInput(
            f"reference text {ref_text!r} gives no phones in language {ref_lang!r}", "ref_text"
        )
    sv_emb = None if feats.sv_emb is None else feats.sv_emb.reshape(-1).float().cpu()
    return ReferenceCache(
        prompt_tokens=feats.prompt_tokens.reshape(-1).long().cpu(),
        spec=feats.spec.reshape(feats.spec.shape[-2], feats.spec.shape[-1]).float().cpu(),
        phone_ids=ids.reshape(-1).long().cpu(),
        bert=bert.float().cpu(),
        sv_emb=sv_emb,
        norm_text=norm_text,
    )


def prompt_text(text: str, language: str) -> str:
    """Upstream appends a full stop to a reference text that lacks final punctuation."""
    text = text.strip()
    if text and text[-1] not in "。.!?！？，,…~:：—":
        text += "." if language == "en" else "。"
    return text


def find_same_weights(voices_root: Path, sources: dict[str, str], exclude: Path | None = None) -> Path | None:
    """A bundle under ``voices_root`` made from the same checkpoint files, if any."""
    for path in list_bundles(voices_root):
        if exclude is not None and path.resolve() == exclude.resolve():
            continue
        try:
            prov = load_bundle(path, verify=False).provenance
        except (BundleError, OSError):
            continue
        if prov.get("gpt_sha256") == sources["gpt"] and prov.get("sovits_sha256") == sources["sovits"]:
            return path
    return None


# ------------------------------------------------------------------ helpers


def _check_request(gpt_path, sovits_path, ref_audio, ref_text, ref_lang) -> tuple[Path, Path, Path]:
    paths = []
    for field, value in (("gpt", gpt_path), ("sovits", sovits_path), ("ref", ref_audio)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise InvalidInput(f"--{field}: no such file: {path}", field)
        paths.append(path)
    if not isinstance(ref_text, str) or not ref_text.strip():
        raise InvalidInput("--ref-text is empty: give the transcript of the reference clip", "ref_text")
    if ref_lang not in REFERENCE_LANGUAGES:
        raise InvalidInput(
            f"--ref-lang must be one of {', '.join(REFERENCE_LANGUAGES)}; got {ref_lang!r}", "ref_lang"
        )
    return paths[0], paths[1], paths[2]


def _load_pair(gpt_path: Path, sovits_path: Path):
    from gsvd.engine.checkpoints.gpt import load_gpt
    from gsvd.engine.checkpoints.sovits import load_sovits

    gpt = load_gpt(gpt_path)
    sovits = load_sovits(sovits_path)
    gpt_vocab = int(gpt.dims.phoneme_vocab_size)
    sovits_v1 = sovits.version == "v1"
    if (gpt_vocab <= 512) != sovits_v1:
        raise CheckpointError(
            f"{gpt_path.name} (GPT, {gpt_vocab} phonemes: {'v1' if gpt_vocab <= 512 else 'v2'} symbols) does not "
            f"match {sovits_path.name} (SoVITS {sovits.version}); pick weights trained together"
        )
    return gpt, sovits


def _check_base(base: BaseModelPaths, version: str) -> None:
    from gsvd.engine.models_dir.store import ModelsDir

    md = ModelsDir()
    if base.hubert_folder is None or not Path(base.hubert_folder).is_dir():
        raise MissingModel(md.missing_message("chinese-hubert-base", "prompt tokens of the reference clip"))
    if version in SV_VERSIONS and (base.sv_model is None or not Path(base.sv_model).is_file()):
        raise MissingModel(md.missing_message("sv", f"speaker embedding of a {version} reference"))


def _build_sovits(ckpt, device: str) -> torch.nn.Module:
    from gsvd.engine.checkpoints.sovits import build_sovits

    return build_sovits(ckpt, device=device, dtype=torch.float32)


def gpt_module_state(ckpt) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors that the GPT module uses (extra upstream entries dropped)."""
    from gsvd.engine.models.t2s import Text2SemanticDecoder

    with torch.device("meta"):
        keys = Text2SemanticDecoder(ckpt.dims).state_dict().keys()
    return {k: ckpt.state_dict[k] for k in keys}


def module_state(model: torch.nn.Module, source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The module's parameters in the checkpoint's dtype (fp16 stays fp16)."""
    out = {}
    for key, value in model.state_dict().items():
        dtype = source[key].dtype if key in source and source[key].is_floating_point() else value.dtype
        out[key] = value.detach().to("cpu", dtype=dtype if value.is_floating_point() else value.dtype)
    return out


def _audio_copy(path: Path):
    """The reference clip as stored in the bundle: mono float32 at its own sample rate."""
    from gsvd.engine.audio import decode_audio, to_mono

    audio, rate = decode_audio(path)
    return to_mono(audio), rate


def _consent(consent: Mapping[str, Any] | None) -> dict:
    """The record to store: InvalidInput (before any work) if there is none (see gsvd.engine.consent)."""
    from gsvd.engine.consent import check_record

    record = check_record(consent)
    record.setdefault("recorded_at", _now())
    return record


def _provenance(extra, gpt_path: Path, sovits_path: Path, ref_audio: Path, sources: dict, gpt) -> dict:
    import gsvd

    prov = {
        "created_by": f"gsvd {gsvd.__version__} import",
        "created_at": _now(),
        "gpt_checkpoint": str(gpt_path.resolve()),
        "gpt_sha256": sources["gpt"],
        "gpt_info": str(getattr(gpt, "info", "") or ""),
        "sovits_checkpoint": str(sovits_path.resolve()),
        "sovits_sha256": sources["sovits"],
        "reference_audio": str(ref_audio.resolve()),
        "reference_sha256": sha256_file(ref_audio),
    }
    prov.update(dict(extra or {}))
    return prov


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
