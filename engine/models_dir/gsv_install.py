"""Find the fine-tuned voices in an existing GPT-SoVITS install.

Upstream saves GPT weights as ``GPT_weights[_<ver>]/<exp>-e<epoch>.ckpt`` and SoVITS
weights as ``SoVITS_weights[_<ver>]/<exp>_e<epoch>_s<step>.pth`` (no suffix = v1;
LoRA files of v3/v4 end in ``_l<rank>``). Training lists are ``.list`` files with
``audio_path|speaker|language|text`` lines (``output/asr_opt/*.list`` by default);
``logs/<exp>/2-name2text.txt`` names the clips an experiment was trained on and
``logs/<exp>/5-wav32k/`` keeps a 32 kHz copy of each.

``scan_install(root)`` pairs GPT and SoVITS weights by experiment name (latest epoch
by default; several model versions for one name is ambiguous and needs a choice) and
picks a reference clip + transcript from the training list (3-10 s, closest to 6 s).
It reads only file names, text lists and WAV headers; it loads no model.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from gsvd.engine.errors import InvalidInput

SUPPORTED = ("v1", "v2", "v2Pro", "v2ProPlus")
_DIR_RE = re.compile(r"^(?P<kind>GPT|SoVITS)_weights(?:_(?P<ver>v[0-9A-Za-z]+))?$")
_GPT_RE = re.compile(r"^(?P<exp>.+)-e(?P<epoch>\d+)\.ckpt$")
_SOVITS_RE = re.compile(r"^(?P<exp>.+)_e(?P<epoch>\d+)_s(?P<step>\d+)(?P<lora>_l\d+)?\.pth$")
_LANGS = {"zh": "zh", "jp": "ja", "ja": "ja", "en": "en", "ko": "ko", "yue": "yue"}
_SKIP_DIRS = {".git", "pretrained_models", "node_modules", "runtime", "venv", ".venv", "env", "__pycache__"}
REF_MIN_S, REF_MAX_S, REF_BEST_S = 3.0, 10.0, 6.0


@dataclass(frozen=True)
class WeightFile:
    path: Path
    exp: str
    epoch: int
    step: int
    version: str
    """From the folder suffix (GPT_weights_v2 -> v2; no suffix -> v1)."""


@dataclass(frozen=True)
class Clip:
    audio: Path | None
    """Resolved audio file (None when the listed path cannot be found)."""
    listed: str
    speaker: str
    language: str
    text: str
    duration: float | None = None


@dataclass
class Candidate:
    """One experiment: its weight choices, the pair picked, a reference, and problems."""

    exp: str
    gpt_choices: list[WeightFile] = field(default_factory=list)
    sovits_choices: list[WeightFile] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)
    gpt: WeightFile | None = None
    sovits: WeightFile | None = None
    reference: Clip | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def versions(self) -> list[str]:
        return sorted({w.version for w in self.sovits_choices})

    @property
    def ready(self) -> bool:
        return (
            self.gpt is not None
            and self.sovits is not None
            and self.reference is not None
            and not self.problems
        )


@dataclass
class InstallScan:
    root: Path
    candidates: list[Candidate]
    skipped: list[str]
    """Weight files that cannot be imported, with the reason."""


def scan_install(
    root: str | Path,
    *,
    version: str | None = None,
    gpt_epoch: int | None = None,
    sovits_epoch: int | None = None,
) -> InstallScan:
    """Find every experiment in a GPT-SoVITS install and pick its pair + reference."""
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise InvalidInput(f"{root} is not a folder", "path")
    gpts, sovits, skipped = _weights(base)
    if not gpts and not sovits:
        raise InvalidInput(
            f"no fine-tuned weights under {base} (looked for GPT_weights*/<exp>-e<N>.ckpt and "
            "SoVITS_weights*/<exp>_e<N>_s<M>.pth); is this the GPT-SoVITS folder?",
            "path",
        )
    lists = _training_lists(base)
    names = sorted({w.exp for w in gpts} | {w.exp for w in sovits})
    candidates = []
    for exp in names:
        cand = Candidate(exp, [w for w in gpts if w.exp == exp], [w for w in sovits if w.exp == exp])
        cand.clips = _clips_for(base, exp, lists)
        pick_pair(cand, version=version, gpt_epoch=gpt_epoch, sovits_epoch=sovits_epoch)
        pick_reference(cand)
        candidates.append(cand)
    return InstallScan(base, candidates, skipped)


def pick_pair(
    cand: Candidate,
    *,
    version: str | None = None,
    gpt_epoch: int | None = None,
    sovits_epoch: int | None = None,
) -> None:
    """Choose the GPT/SoVITS pair (latest epochs of one version) or record why not."""
    cand.gpt = cand.sovits = None
    cand.problems = [p for p in cand.problems if not p.startswith("weights:")]
    sov = [w for w in cand.sovits_choices if version is None or w.version == version]
    versions = sorted({w.version for w in sov})
    if not cand.sovits_choices:
        cand.problems.append(f"weights: no SoVITS weights for {cand.exp!r}")
    elif not sov:
        cand.problems.append(
            f"weights: no {version} SoVITS weights for {cand.exp!r} (has {', '.join(cand.versions)})"
        )
    elif len(versions) > 1:
        cand.problems.append(
            f"weights: {cand.exp!r} has SoVITS weights of several versions ({', '.join(versions)}): "
            "choose one with --version"
        )
    else:
        cand.sovits = _latest(sov, sovits_epoch)
        if cand.sovits is None:
            cand.problems.append(f"weights: no SoVITS weights of epoch {sovits_epoch} for {cand.exp!r}")
    if not cand.gpt_choices:
        cand.problems.append(f"weights: no GPT weights for {cand.exp!r}")
    elif cand.sovits is not None:
        same = [w for w in cand.gpt_choices if w.version == cand.sovits.version] or cand.gpt_choices
        cand.gpt = _latest(same, gpt_epoch)
        if cand.gpt is None:
            cand.problems.append(f"weights: no GPT weights of epoch {gpt_epoch} for {cand.exp!r}")


def _latest(choices: list[WeightFile], epoch: int | None) -> WeightFile | None:
    pool = [w for w in choices if epoch is None or w.epoch == epoch]
    return max(pool, key=lambda w: (w.epoch, w.step, w.path.name)) if pool else None


def pick_reference(cand: Candidate) -> None:
    """Reference = the listed clip of 3-10 s closest to 6 s (first on ties)."""
    cand.problems = [p for p in cand.problems if not p.startswith("reference:")]
    usable = [c for c in cand.clips if c.audio is not None and c.duration is not None and c.text.strip()]
    in_range = [c for c in usable if REF_MIN_S <= c.duration <= REF_MAX_S]  # type: ignore[operator]
    if in_range:
        cand.reference = min(in_range, key=lambda c: abs(c.duration - REF_BEST_S))  # type: ignore[operator]
        return
    cand.reference = None
    if not cand.clips:
        why = "no training list mentions it"
    elif not usable:
        why = f"none of its {len(cand.clips)} listed clips was found on disk"
    else:
        why = f"none of its {len(usable)} clips is 3-10 s long"
    cand.problems.append(f"reference: no reference clip for {cand.exp!r} ({why}): pass --ref and --ref-text")


def voice_name_for(exp: str) -> str:
    """A safe voice name for an experiment name (unsafe characters become '_')."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", exp).strip("._-")
    name = re.sub(r"\.{2,}", ".", name)[:64].rstrip(".")
    if not name or not name[0].isalnum():
        name = "voice_" + hashlib.sha1(exp.encode()).hexdigest()[:8]
    return name


# ------------------------------------------------------------------ scanning


def _weights(base: Path) -> tuple[list[WeightFile], list[WeightFile], list[str]]:
    gpts: list[WeightFile] = []
    sovits: list[WeightFile] = []
    skipped: list[str] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        m = _DIR_RE.match(folder.name)
        if m is None:
            continue
        version = m["ver"] or "v1"
        for path in sorted(folder.iterdir()):
            parsed = _parse_weight(path, m["kind"], version)
            if isinstance(parsed, str):
                skipped.append(parsed)
            elif parsed is not None:
                (gpts if m["kind"] == "GPT" else sovits).append(parsed)
    return gpts, sovits, skipped


def _parse_weight(path: Path, kind: str, version: str) -> WeightFile | str | None:
    if kind == "GPT":
        m = _GPT_RE.match(path.name)
        if m is None:
            return None
        if version not in SUPPORTED:
            return f"{path}: {version} is not supported yet"
        return WeightFile(path, m["exp"], int(m["epoch"]), 0, version)
    m = _SOVITS_RE.match(path.name)
    if m is None:
        return None
    if m["lora"] or version not in SUPPORTED:
        return f"{path}: {version} (LoRA) SoVITS weights are not supported yet"
    return WeightFile(path, m["exp"], int(m["epoch"]), int(m["step"]), version)


def _training_lists(base: Path, max_depth: int = 4) -> list[Path]:
    found: list[Path] = []
    stack = [(base, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.is_file() and p.suffix == ".list":
                found.append(p)
            elif p.is_dir() and depth < max_depth and p.name not in _SKIP_DIRS and not p.name.startswith("."):
                stack.append((p, depth + 1))
    return sorted(found)


def parse_list(path: Path) -> list[tuple[str, str, str, str]]:
    """(audio path, speaker, language, text) per well-formed line of a .list file."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 4 and parts[0].strip():
            lang = _LANGS.get(parts[2].strip().lower())
            if lang is not None:
                rows.append((parts[0].strip(), parts[1].strip(), lang, "|".join(parts[3:]).strip()))
    return rows


def _clips_for(base: Path, exp: str, lists: list[Path]) -> list[Clip]:
    trained = _trained_names(base / "logs" / exp)
    clips: list[Clip] = []
    for lst in lists:
        for listed, speaker, lang, text in parse_list(lst):
            name = _basename(listed)
            if (trained and name in trained) or (not trained and speaker == exp):
                audio = _resolve_audio(base, lst.parent, exp, listed)
                clips.append(Clip(audio, listed, speaker, lang, text, _duration(audio)))
    return clips


def _trained_names(log_dir: Path) -> set[str]:
    path = log_dir / "2-name2text.txt"
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return {line.split("\t", 1)[0] for line in lines if line.strip()}


def _basename(listed: str) -> str:
    return listed.replace("\\", "/").rsplit("/", 1)[-1]


def _resolve_audio(base: Path, list_dir: Path, exp: str, listed: str) -> Path | None:
    posix = listed.replace("\\", "/")
    name = _basename(listed)
    candidates = [
        Path(posix),
        base / posix,
        list_dir / posix,
        list_dir / name,
        base / "logs" / exp / "5-wav32k" / name,
    ]
    for cand in candidates:
        if cand.is_file():
            return cand
    return None


def _duration(path: Path | None) -> float | None:
    if path is None:
        return None
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, sf.LibsndfileError):
        return None
    return info.frames / info.samplerate if info.samplerate else None
