"""Voice bundles: one directory per voice, written atomically, verified on load.

Layout of ``voices/<name>/``::

    voice.toml            manifest: name, version, languages, reference text, sample rate,
                          model configs, consent, provenance, sha256 of every file below,
                          optional [defaults]: the voice's own synthesis options (any field of
                          SynthesisOptions, e.g. noise_scale = 0.4, speed = 1.1; a request's replace them)
    gpt.safetensors       GPT (s1) weights, keys as upstream minus "model."
    sovits.safetensors    SoVITS (s2) weights, weight norm folded, no enc_q
    reference.safetensors cache derived from the reference clip: prompt_tokens [T25] long,
                          spec [1025, Tr], sv_emb [20480] (v2Pro/ProPlus), phone_ids [N],
                          bert [1024, N]; serving needs no HuBERT
    reference.wav         the reference clip itself (optional)

Several voices may use one model: the weights' sha256 pair gives ``model_id`` (the
engine loads a model once per id). When a bundle is written with
``share_weights_from=<other bundle>``, its weight files are hard links to the other
bundle's (or, across filesystems, references by relative path + sha256).

This module owns the format and its checks. It does not know how checkpoints are
read (engine/checkpoints) or how a reference is computed (engine/reference).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsvd.engine.errors import BundleError, InvalidInput, VoiceNotFound
from gsvd.engine.types import SAMPLE_RATE, SynthesisOptions

FORMAT = 1
MANIFEST = "voice.toml"
GPT_FILE = "gpt.safetensors"
SOVITS_FILE = "sovits.safetensors"
CACHE_FILE = "reference.safetensors"
AUDIO_FILE = "reference.wav"
VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
SV_VERSIONS = ("v2Pro", "v2ProPlus")
SV_DIM = 20480
SPEC_BINS = 1025
BERT_DIM = 1024
SEMANTIC_VOCAB = 1024
DEFAULT_LANGUAGES = ("zh", "en", "ja")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_voice_name(name: object) -> str:
    """Return ``name`` if it is a safe voice name, else raise InvalidInput(field="name").

    Safe: 1-64 ASCII letters, digits, '_', '-', '.', starting with a letter or digit,
    not ending in '.' (so no path separators, no '..', no hidden files).
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput("voice name must be a non-empty string", "name")
    if not _NAME_RE.fullmatch(name) or name.endswith(".") or ".." in name:
        raise InvalidInput(
            f"invalid voice name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ - . "
            "starting with a letter or digit",
            "name",
        )
    return name


@dataclass
class ReferenceCache:
    """What serving needs from a reference clip (all CPU tensors)."""

    prompt_tokens: torch.Tensor  # [T25] long, semantic ids 0..1023
    spec: torch.Tensor  # [1025, Tr] float32, 32 kHz linear spectrogram
    phone_ids: torch.Tensor  # [N] long, reference text phones
    bert: torch.Tensor  # [1024, N] float32, reference text BERT features
    sv_emb: torch.Tensor | None = None  # [20480] float32 (v2Pro/v2ProPlus only)
    norm_text: str = ""
    """The normalized reference text the phones were made from."""

    def check(self, version: str) -> ReferenceCache:
        """Return self if shapes/dtypes are consistent with ``version``; else raise BundleError."""
        _check_reference(self, version)
        return self


@dataclass
class VoiceBundle:
    """A voice bundle as described by its voice.toml (weights are loaded on demand)."""

    name: str
    path: Path
    version: str
    languages: tuple[str, ...]
    reference_text: str
    reference_language: str
    sample_rate: int
    model_id: str
    gpt_config: dict
    sovits_config: dict
    consent: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    reference_norm_text: str = ""
    files: dict[str, dict] = field(default_factory=dict)
    """Role ("gpt", "sovits", "reference", "audio") -> {"path": relative path, "sha256": hex, "bytes": n}."""
    defaults: SynthesisOptions = field(default_factory=SynthesisOptions)
    """The voice's default synthesis options (voice.toml `[defaults]`), validated."""

    def file(self, role: str) -> Path:
        """Absolute path of the file playing ``role`` (BundleError if the bundle has none)."""
        entry = self.files.get(role)
        if entry is None:
            raise BundleError(f"voice {self.name!r} has no {role} file")
        return (self.path / entry["path"]).resolve()

    @property
    def reference_audio(self) -> Path | None:
        return self.file("audio") if "audio" in self.files else None

    def load_gpt_state(self) -> dict[str, torch.Tensor]:
        return _load_tensors(self.file("gpt"), "GPT weights")

    def load_sovits_state(self) -> dict[str, torch.Tensor]:
        return _load_tensors(self.file("sovits"), "SoVITS weights")

    def load_reference(self) -> ReferenceCache:
        """The cached reference tensors, shape-checked against the model version."""
        tensors = _load_tensors(self.file("reference"), "reference cache")
        missing = {"prompt_tokens", "spec", "phone_ids", "bert"} - set(tensors)
        if missing:
            raise BundleError(f"reference cache of {self.name!r} lacks {', '.join(sorted(missing))}")
        cache = ReferenceCache(
            prompt_tokens=tensors["prompt_tokens"],
            spec=tensors["spec"],
            phone_ids=tensors["phone_ids"],
            bert=tensors["bert"],
            sv_emb=tensors.get("sv_emb"),
            norm_text=self.reference_norm_text,
        )
        return cache.check(self.version)

    def build_gpt(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        """A ``Text2SemanticDecoder`` in eval mode with this bundle's weights."""
        from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder

        dims = T2SDims.from_config(self.gpt_config)
        model = Text2SemanticDecoder(dims)
        _load_into(model, self.load_gpt_state(), f"GPT of voice {self.name!r}")
        return model.to(device=device, dtype=dtype).eval()

    def build_sovits(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        """A ``SynthesizerTrn`` (inference parts) in eval mode with this bundle's weights."""
        from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn

        dims = SovitsDims.from_config(self.sovits_config, self.version)
        model = SynthesizerTrn(dims)
        _load_into(model, self.load_sovits_state(), f"SoVITS of voice {self.name!r}")
        return model.to(device=device, dtype=dtype).eval()

    def verify(self) -> None:
        """Re-hash every file against voice.toml (BundleError on any mismatch)."""
        for role in self.files:
            _verify_file(self, role)


# --------------------------------------------------------------------- writing


def write_bundle(
    dest: str | Path,
    *,
    name: str,
    version: str,
    gpt_state: Mapping[str, torch.Tensor],
    gpt_config: dict,
    sovits_state: Mapping[str, torch.Tensor],
    sovits_config: dict,
    reference: ReferenceCache,
    reference_text: str,
    reference_language: str,
    reference_audio: tuple[np.ndarray, int] | None = None,
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
    consent: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    share_weights_from: str | Path | None = None,
    overwrite: bool = False,
    sample_rate: int = SAMPLE_RATE,
    defaults: Mapping[str, Any] | None = None,
) -> VoiceBundle:
    """Write a bundle at ``dest`` atomically (temp dir in the same folder, then rename).

    On any error (or a kill) no bundle appears at ``dest``; an existing bundle there is
    replaced only with ``overwrite=True`` and only once the new one is complete.
    ``share_weights_from`` names an existing bundle whose weights are identical: its
    files are hard-linked instead of written again. ``defaults``: the voice's own synthesis
    options (fields of SynthesisOptions), checked now and written as ``[defaults]``.
    """
    dest = Path(dest)
    validate_voice_name(name)
    _check_inputs(version, reference_text, reference_language, languages, reference)
    _voice_defaults(defaults or {}, "defaults")
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest} already exists (pass overwrite=True / --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = _write_weights(tmp, dest, gpt_state, sovits_state, share_weights_from)
        files["reference"] = _save_tensors(tmp / CACHE_FILE, _cache_tensors(reference), "reference")
        if reference_audio is not None:
            files["audio"] = _write_audio(tmp / AUDIO_FILE, *reference_audio)
        manifest = _manifest(
            name,
            version,
            languages,
            reference_text,
            reference_language,
            reference.norm_text,
            sample_rate,
            gpt_config,
            sovits_config,
            consent,
            provenance,
            files,
        )
        if defaults:
            manifest["defaults"] = dict(defaults)
        _write_manifest(tmp / MANIFEST, manifest)
        _fsync_dir(tmp)
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(dest, verify=False)


def model_id_for(gpt_sha256: str, sovits_sha256: str) -> str:
    """The id under which the engine shares one loaded model between voices."""
    return hashlib.sha256(f"{gpt_sha256}:{sovits_sha256}".encode()).hexdigest()[:16]


def _check_inputs(version, reference_text, reference_language, languages, reference) -> None:
    if version not in VERSIONS:
        raise InvalidInput(f"model version must be one of {', '.join(VERSIONS)}; got {version!r}", "version")
    if not isinstance(reference_text, str) or not reference_text.strip():
        raise InvalidInput("reference text is empty", "reference_text")
    if not isinstance(reference_language, str) or not reference_language:
        raise InvalidInput("reference language is empty", "reference_language")
    if not languages or not all(isinstance(x, str) and x for x in languages):
        raise InvalidInput("languages must be a non-empty list of language codes", "languages")
    try:
        reference.check(version)
    except BundleError as exc:
        raise InvalidInput(f"bad reference cache: {exc}", "reference") from None


def _write_weights(tmp: Path, dest: Path, gpt_state, sovits_state, share_from) -> dict[str, dict]:
    if share_from is not None:
        return _share_weights(tmp, dest, Path(share_from))
    return {
        "gpt": _save_tensors(tmp / GPT_FILE, gpt_state, "gpt"),
        "sovits": _save_tensors(tmp / SOVITS_FILE, sovits_state, "sovits"),
    }


def _share_weights(tmp: Path, dest: Path, other_dir: Path) -> dict[str, dict]:
    """Hard-link the other bundle's weights (or reference them by relative path)."""
    other = load_bundle(other_dir, verify=False)
    files: dict[str, dict] = {}
    for role in ("gpt", "sovits"):
        src = other.file(role)
        entry = dict(other.files[role])
        try:
            os.link(src, tmp / src.name)
            entry["path"] = src.name
        except OSError:
            entry["path"] = os.path.relpath(src, dest)
        files[role] = entry
    return files


def _cache_tensors(ref: ReferenceCache) -> dict[str, torch.Tensor]:
    tensors = {
        "prompt_tokens": ref.prompt_tokens.to(torch.long),
        "spec": ref.spec.to(torch.float32),
        "phone_ids": ref.phone_ids.to(torch.long),
        "bert": ref.bert.to(torch.float32),
    }
    if ref.sv_emb is not None:
        tensors["sv_emb"] = ref.sv_emb.reshape(-1).to(torch.float32)
    return tensors


def _save_tensors(path: Path, state: Mapping[str, torch.Tensor], role: str) -> dict:
    from safetensors.torch import save

    if not state:
        raise InvalidInput(f"{role} state dict is empty", role)
    clean = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InvalidInput(f"{role} entry {key!r} is not a tensor", role)
        clean[key] = value.detach().to("cpu").contiguous().clone()
    # one metadata key: the header stays byte-identical. Written with open(), not save_file (which
    # makes the file 0600): bundles are read by whoever runs the daemon. The fsync is _fsync_dir's.
    path.write_bytes(save(clean, metadata={"format": "pt"}))
    return _file_entry(path, path.name)


def _write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> dict:
    import soundfile as sf

    pcm = np.asarray(audio, dtype=np.float32).reshape(-1)
    if pcm.size == 0 or not np.isfinite(pcm).all():
        raise InvalidInput("reference audio is empty or not finite", "reference_audio")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise InvalidInput(f"bad reference sample rate {sample_rate!r}", "reference_audio")
    sf.write(str(path), pcm, sample_rate, subtype="FLOAT", format="WAV")
    return _file_entry(path, path.name)


def _file_entry(path: Path, rel: str) -> dict:
    return {"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manifest(
    name,
    version,
    languages,
    text,
    lang,
    norm_text,
    sample_rate,
    gpt_config,
    sovits_config,
    consent,
    provenance,
    files,
) -> dict:
    return {
        "format": FORMAT,
        "name": name,
        "version": version,
        "languages": list(languages),
        "sample_rate": int(sample_rate),
        "model_id": model_id_for(files["gpt"]["sha256"], files["sovits"]["sha256"]),
        "reference": {"text": text, "language": lang, "norm_text": norm_text},
        "consent": _toml_clean(dict(consent or {})),
        "provenance": _toml_clean(dict(provenance or {})),
        "files": files,
        "gpt": {"config": _toml_clean(gpt_config)},
        "sovits": {"config": _toml_clean(sovits_config)},
    }


def _toml_clean(value: Any) -> Any:
    """TOML has no null: drop None values; tuples become lists; numpy scalars plain."""
    if isinstance(value, Mapping):
        return {str(k): _toml_clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_clean(v) for v in value if v is not None]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _write_manifest(path: Path, manifest: dict) -> None:
    import tomli_w

    try:
        text = tomli_w.dumps(manifest)
    except TypeError as exc:
        raise InvalidInput(f"voice metadata cannot be written as TOML: {exc}", "config") from None
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(tmp, dest)
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------- reading


def load_bundle(path: str | Path, *, verify: bool = True) -> VoiceBundle:
    """Read ``path``/voice.toml; with ``verify`` re-hash every file.

    Raises VoiceNotFound when nothing is at ``path`` and BundleError when the
    bundle is incomplete, malformed or fails a checksum.
    """
    path = Path(path)
    if not path.exists():
        raise VoiceNotFound(f"no voice bundle at {path}")
    manifest_path = path / MANIFEST
    if not path.is_dir() or not manifest_path.is_file():
        raise BundleError(f"{path} is not a voice bundle (no {MANIFEST})")
    bundle = _bundle_from_manifest(path, _read_manifest(manifest_path))
    for role in bundle.files:
        if not bundle.file(role).is_file():
            raise BundleError(f"voice {bundle.name!r}: {role} file {bundle.files[role]['path']} is missing")
    if verify:
        bundle.verify()
    return bundle


def list_bundles(voices_root: str | Path) -> list[Path]:
    """Bundle directories directly under ``voices_root`` (temp/hidden dirs skipped)."""
    root = Path(voices_root)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def _read_manifest(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid TOML: {exc}") from None


def _bundle_from_manifest(path: Path, m: dict) -> VoiceBundle:
    fmt = m.get("format")
    if not isinstance(fmt, int):
        raise BundleError(f"{path / MANIFEST}: missing 'format'")
    if fmt > FORMAT:
        raise BundleError(f"{path} uses bundle format {fmt}; this gsvd reads up to {FORMAT} (upgrade gsvd)")
    try:
        files = {role: _file_record(role, e) for role, e in m["files"].items()}
        ref = m["reference"]
        bundle = VoiceBundle(
            name=str(m["name"]),
            path=path,
            version=str(m["version"]),
            languages=tuple(str(x) for x in m.get("languages", DEFAULT_LANGUAGES)),
            reference_text=str(ref["text"]),
            reference_language=str(ref["language"]),
            sample_rate=int(m.get("sample_rate", SAMPLE_RATE)),
            model_id=str(m["model_id"]),
            gpt_config=dict(m["gpt"]["config"]),
            sovits_config=dict(m["sovits"]["config"]),
            consent=dict(m.get("consent", {})),
            provenance=dict(m.get("provenance", {})),
            reference_norm_text=str(ref.get("norm_text", "")),
            files=files,
            defaults=_voice_defaults(m.get("defaults", {}), f"{path / MANIFEST} [defaults]"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{path / MANIFEST} is malformed: missing or bad {exc}") from None
    _check_manifest(bundle)
    return bundle


def _voice_defaults(table: Any, where: str) -> SynthesisOptions:
    """A [defaults] table -> SynthesisOptions with those fields; BundleError naming the bad field."""
    if not isinstance(table, Mapping):
        raise BundleError(f"{where} must be a table of synthesis options")
    try:
        return SynthesisOptions().with_overrides(**table)
    except InvalidInput as exc:
        raise BundleError(f"{where}: {exc}") from None


def _file_record(role: str, entry: Any) -> dict:
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("path"), str)
        or not isinstance(entry.get("sha256"), str)
    ):
        raise BundleError(f"files.{role} needs 'path' and 'sha256'")
    return dict(entry)


def _check_manifest(b: VoiceBundle) -> None:
    if not _safe_name(b.name):
        raise BundleError(f"{b.path}: invalid voice name {b.name!r} in {MANIFEST}")
    if b.version not in VERSIONS:
        raise BundleError(f"voice {b.name!r}: unsupported model version {b.version!r}")
    for role in ("gpt", "sovits", "reference"):
        if role not in b.files:
            raise BundleError(f"voice {b.name!r}: {MANIFEST} lists no {role} file")
    expected = model_id_for(b.files["gpt"]["sha256"], b.files["sovits"]["sha256"])
    if b.model_id != expected:
        raise BundleError(f"voice {b.name!r}: model_id does not match the weight checksums")
    for role, entry in b.files.items():
        target = (b.path / entry["path"]).resolve()
        if not target.is_relative_to(b.path.resolve().parent):
            raise BundleError(
                f"voice {b.name!r}: {role} path {entry['path']!r} points outside the voices folder"
            )


def _safe_name(name: str) -> bool:
    try:
        validate_voice_name(name)
    except InvalidInput:
        return False
    return True


def _verify_file(b: VoiceBundle, role: str) -> None:
    entry = b.files[role]
    path = b.file(role)
    if not path.is_file():
        raise BundleError(f"voice {b.name!r}: {role} file {entry['path']} is missing")
    if sha256_file(path) != entry["sha256"]:
        raise BundleError(
            f"voice {b.name!r}: checksum mismatch for {entry['path']} (file corrupt or modified)"
        )


def _load_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"cannot read {what} from {path}: {exc}") from None


def _load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{what} does not match its config: {str(exc).splitlines()[0]}") from None


def _check_reference(ref: ReferenceCache, version: str) -> None:
    pt, spec, ids, bert, sv = ref.prompt_tokens, ref.spec, ref.phone_ids, ref.bert, ref.sv_emb
    if pt.ndim != 1 or pt.numel() == 0 or pt.is_floating_point():
        raise BundleError(
            f"prompt_tokens must be a non-empty 1-D integer tensor; got {tuple(pt.shape)} {pt.dtype}"
        )
    if int(pt.min()) < 0 or int(pt.max()) >= SEMANTIC_VOCAB:
        raise BundleError(
            f"prompt_tokens must lie in [0, {SEMANTIC_VOCAB}); got [{int(pt.min())}, {int(pt.max())}]"
        )
    if spec.ndim != 2 or spec.shape[0] != SPEC_BINS or spec.shape[1] == 0:
        raise BundleError(f"spec must be [{SPEC_BINS}, Tr]; got {tuple(spec.shape)}")
    if ids.ndim != 1 or ids.numel() == 0 or ids.is_floating_point() or int(ids.min()) < 0:
        raise BundleError(f"phone_ids must be a non-empty 1-D tensor of ids >= 0; got {tuple(ids.shape)}")
    if bert.ndim != 2 or bert.shape != (BERT_DIM, ids.numel()):
        raise BundleError(f"bert must be [{BERT_DIM}, {ids.numel()}]; got {tuple(bert.shape)}")
    if version in SV_VERSIONS and (sv is None or sv.numel() != SV_DIM):
        raise BundleError(
            f"{version} needs a speaker embedding of {SV_DIM} values; got {None if sv is None else sv.numel()}"
        )
    if version not in SV_VERSIONS and sv is not None:
        raise BundleError(f"{version} takes no speaker embedding")
    if not (torch.isfinite(spec).all() and torch.isfinite(bert).all()):
        raise BundleError("spec/bert contain NaN or inf")
