"""`gsvd train`: the seven stages wired together, each resumable.

`RunSettings` (saved as `run.json` in the run folder) holds every choice the user
made, so a stage run on its own (`gsvd train select --workdir runs/alice`) uses the
same settings as the full run. `run_stage(ws, settings, stage)` skips a stage whose
inputs are unchanged since it last finished (`<stage>/done.json`), unless forced.
Training itself resumes from its last save (`fit/sovits/last.pt`, `fit/gpt/last.pt`).

`preflight` runs before any stage: the voice name, a consent record that says something, a
voice of that name that this run did not make, and the text options (a whole-file transcript
needs subtitles or `--asr`), the ASR folder and `--speaker-ref` -- so nothing is decoded or
trained for a run that would be refused later. Each stage ends with one line of totals:
kept N clips, S s; dropped: k <reason>, ...
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from gsvd.trainer.records import Clip, ClipScore, SourceAudio, TrainError, Utterance
from gsvd.trainer.workspace import STAGES, Workspace, fingerprint, read_json, write_json

SCRATCH_PRESETS = ("tiny",)


@dataclass
class RunSettings:
    name: str
    consent: str = ""
    inputs: list[str] = field(default_factory=list)
    track: int | None = None
    lang: str | None = None  # transcript language; None = detect
    subtitles: str | None = None
    transcript: str | None = None
    asr: str | None = None
    speaker_ref: str | None = None  # an audio clip of the wanted speaker, or a time in an input (12.5, 1:02, f.mp4@1:02)
    target_seconds: float = 60.0
    min_seconds: float = 10.0
    min_clip: float = 3.0
    max_clip: float = 10.0
    version: str = "v2"
    base_gpt: str | None = None
    base_sovits: str | None = None
    from_scratch: str | None = None  # "tiny": random small models (tests, demos)
    hubert: str | None = None
    bert: str | None = None
    sv: str | None = None
    models_dir: str | None = None
    epochs: int = 80  # SoVITS
    gpt_epochs: int = 50
    batch_size: int = 4
    save_every: int = 10
    device: str = "auto"
    fp16: bool = False  # mixed precision on CUDA (measured slower than fp32 on an H100 at batch 4-8)
    seed: int = 0
    voices_dir: str | None = None
    build: bool = False
    register: str | None = None
    token: str | None = None
    sample_sentences: list[list[str]] = field(default_factory=list)  # [[lang, text]]; empty = defaults
    samples: int = 2  # test sentences rendered at each save (0: none)
    sovits_epoch: int = 0  # package the SoVITS weights saved at this epoch (fit/epochs/); 0: the final ones
    gpt_epoch: int = 0  # the same for the GPT

    def save(self, ws: Workspace) -> None:
        """run.json, without the admin token (secrets stay out of the run folder)."""
        write_json(ws.root / "run.json", asdict(self) | {"token": None})

    @classmethod
    def load(cls, ws: Workspace) -> RunSettings:
        data = read_json(ws.root / "run.json", "run settings (run.json)")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def validate(self) -> None:
        """Reject settings that would only fail stages later (TrainError)."""
        if self.from_scratch is not None and self.from_scratch not in SCRATCH_PRESETS:
            raise TrainError(f"unknown --from-scratch preset {self.from_scratch!r} (available: {', '.join(SCRATCH_PRESETS)})")
        if self.version not in ("v2", "v2Pro", "v2ProPlus"):
            raise TrainError(f"--version must be v2, v2Pro or v2ProPlus, not {self.version!r}")
        if self.lang not in (None, "zh", "en", "ja"):
            raise TrainError(f"--lang must be zh, en or ja, not {self.lang!r}")
        if not 1.0 <= self.min_clip < self.max_clip <= 30.0:
            raise TrainError(f"clip lengths must satisfy 1 <= min ({self.min_clip}) < max ({self.max_clip}) <= 30 s")
        if self.target_seconds <= 0 or self.min_seconds < 0:
            raise TrainError("--target-seconds must be positive and --min-seconds not negative")
        if self.sovits_epoch < 0 or self.gpt_epoch < 0:
            raise TrainError("--sovits-epoch and --gpt-epoch must be 0 (the final weights) or a saved epoch")
        from gsvd.engine.devices import check_device

        check_device(self.device)  # InvalidInput: the same message as every other --device

    def text_plan(self):
        from gsvd.trainer.textsource import TextPlan

        return TextPlan.read(_p(self.subtitles), _p(self.transcript), _p(self.asr), self.lang)

    def resolved_device(self) -> str:
        from gsvd.engine.devices import resolve_device

        return str(resolve_device(self.device))


Log = Callable[[str], None]
MIN_CONSENT_WORDS = 3


def preflight(ws: Workspace, s: RunSettings, to_package: bool = True) -> None:
    """Everything that can refuse the run without reading audio (see the module docstring). `to_package`:
    the run will write the bundle (a whole run, or the package stage), so a voice of that name made
    elsewhere refuses it now; a single earlier stage leaves that to `package`."""
    from gsvd.engine.bundle import validate_voice_name
    from gsvd.engine.consent import train_record
    from gsvd.engine.errors import GsvdError

    try:
        validate_voice_name(s.name)
    except GsvdError as exc:
        raise TrainError(str(exc)) from None
    s.validate()
    consent = (s.consent or "").strip()
    if not consent:
        raise TrainError('a consent record is required before anything runs: --consent "who agreed to what, '
                         'and when" (it goes into the voice bundle)')
    if len(consent.split()) < MIN_CONSENT_WORDS:
        raise TrainError(f"--consent {consent!r} does not say who agreed to what: write a sentence such as "
                         '"Alice agreed on 2026-11-20 to a cloned voice for her stream"')
    try:
        train_record(consent, recorded_by="")  # the four-field form must be complete before hours of work
    except GsvdError as exc:
        raise TrainError(f"--consent: {exc}") from None
    if to_package:
        from gsvd.trainer.package import check_not_foreign

        check_not_foreign(voices_root(s) / s.name, ws)
    s.text_plan().check(s.inputs)
    if s.asr and not (Path(s.asr) / "model.bin").is_file():
        raise TrainError(f"--asr {s.asr}: no faster-whisper model there (expected model.bin + config.json, a "
                         "CTranslate2 Whisper model folder)")
    if s.speaker_ref:
        from gsvd.trainer.speaker import split_ref

        split_ref(s.speaker_ref, s.inputs)


def run_all(ws: Workspace, s: RunSettings, log: Log, force: bool = False, stages: tuple[str, ...] = STAGES) -> dict:
    """Every stage in order (after `preflight`); returns what the last one reported."""
    preflight(ws, s, to_package="package" in stages)
    out: dict = {}
    for stage in stages:
        out = run_stage(ws, s, stage, log, force=force, checked=True)
    return out


def run_stage(ws: Workspace, s: RunSettings, stage: str, log: Log, force: bool = False, checked: bool = False) -> dict:
    if not checked:
        preflight(ws, s, to_package=stage == "package")
    runner = _RUNNERS[stage]
    inputs = {"settings": fingerprint(_relevant(s, stage)), "previous": _previous_done(ws, stage)}
    if not force and ws.is_done(stage, inputs):
        info = json.loads((ws.root / stage / "done.json").read_text(encoding="utf-8")).get("info", {})
        log(f"[{stage}] up to date (inputs unchanged); skipping" + (f": {info['summary']}" if "summary" in info else ""))
        return info
    ws.clear_done(stage)
    outputs, info = runner(ws, s, log)
    ws.mark_done(stage, inputs, outputs, info)
    return info


# -- stages ----------------------------------------------------------------------------


def _extract(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.extract import extract_many

    if not s.inputs:
        raise TrainError("no input files: give one or more videos or audio files")
    records, errors = extract_many([Path(p) for p in s.inputs], ws, track=s.track)
    for path, msg in errors:
        log(f"[extract] skipped {path}: {msg}")
    if not records:
        raise TrainError("no usable audio in any input: " + "; ".join(m for _, m in errors))
    ws.save_records("extract", "sources.json", records)
    total = sum(r.seconds for r in records)
    log(f"[extract] {len(records)} file(s), {total:.1f} s of audio ({len(errors)} skipped)")
    return ["extract/sources.json"], {"files": len(records), "seconds": round(total, 2), "errors": errors}


def _segment(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.segment import segment_sources

    sources = ws.load_records("extract", "sources.json", SourceAudio)
    recognizer = _recognizer(s, log) if s.asr else None
    res = segment_sources(sources, ws, min_s=s.min_clip, max_s=s.max_clip, plan=s.text_plan(), recognizer=recognizer)
    ws.save_records("segment", "clips.json", res.clips)
    for note in res.notes:
        log(f"[segment] {note}")
    total = sum(c.seconds for c in res.clips)
    line = f"kept {len(res.clips)} clips, {total:.1f} s" + _dropped(res.drops)
    log(f"[segment] {line}")
    return ["segment/clips.json"], {"clips": len(res.clips), "seconds": round(total, 2), "dropped": dict(res.drops),
                                    "summary": line}


def _recognizer(s: RunSettings, log: Log):
    from gsvd.trainer.asr import FasterWhisper

    device = s.resolved_device()
    log(f"[segment] recognizing speech with {s.asr} on {device} (word times)")
    return FasterWhisper(Path(s.asr), device="cuda" if device.startswith("cuda") else "cpu")


def _dropped(drops) -> str:
    return ("; dropped: " + ", ".join(f"{n} {r}" for r, n in sorted(drops.items(), key=lambda kv: (-kv[1], kv[0])))
            if drops else "")


def _select(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.select import run_select, summary
    from gsvd.trainer.textsource import resolve_text

    plan = s.text_plan()
    clips = ws.load_records("segment", "clips.json", Clip)
    texts = {c.id: t for c in clips if (t := resolve_text(c, plan)) is not None}
    if not texts:
        log("[select] no clip has text yet: the text check runs at `transcribe`")
    ref, label = _speaker_ref(ws, s)
    res = run_select(ws, s.target_seconds, s.min_seconds, texts=texts or None, ref=ref, ref_label=label)
    if res.speakers is not None and len(res.speakers.seconds) > 1:
        log(f"[select] {len(res.speakers.seconds)} voices among the clips; kept voice {res.speakers.chosen} by "
            f"{res.speakers.how}")
    kept = [c for c in res.scores if c.kept]
    secs = sum(c.seconds for c in kept)
    log(f"[select] report: {ws.root / 'select' / 'report.md'}")
    line = summary(res.scores)
    log(f"[select] {line}")
    return ["select/scores.json", "select/report.md"], {"kept": len(kept), "seconds": round(secs, 2), "summary": line}


def _speaker_ref(ws: Workspace, s: RunSettings):
    """--speaker-ref as 16 kHz audio: the clip given, or 4 s of the input around the time given."""
    if not s.speaker_ref:
        return None, ""
    from gsvd.engine.audio import load_audio
    from gsvd.engine.errors import GsvdError
    from gsvd.trainer.speaker import split_ref

    path, at = split_ref(s.speaker_ref, s.inputs)
    if at is None:
        try:
            return load_audio(path, 16000), s.speaker_ref
        except GsvdError as exc:
            raise TrainError(f"--speaker-ref {path}: {exc}") from None
    src = next((x for x in ws.load_records("extract", "sources.json", SourceAudio)
                if Path(x.source).resolve() == path.resolve()), None)
    if src is None or at >= src.seconds:
        raise TrainError(f"--speaker-ref {s.speaker_ref}: {path.name} is "
                         f"{'not an input' if src is None else f'{src.seconds:.1f} s long'}")
    wav = load_audio(ws.path(src.wav16), 16000)
    a, b = max(0, int((at - 2.0) * 16000)), min(wav.size, int((at + 2.0) * 16000))
    return wav[a:b], s.speaker_ref


def _transcribe(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.transcribe import transcribe_clips

    clips = _kept_clips(ws)
    checked = {sc.id: sc.text for sc in ws.load_records("select", "scores.json", ClipScore) if sc.text}
    utts, drops = transcribe_clips(clips, ws, speaker=s.name, plan=s.text_plan(), checked=checked)
    origins = Counter(u.origin.split(":", 1)[0] for u in utts)
    log(f"[transcribe] {ws.root / 'transcribe' / 'train.list'} (text from "
        + ", ".join(f"{n} {k}" for k, n in origins.most_common()) + ")")
    line = f"kept {len(utts)} clips, {_seconds(ws, utts):.1f} s" + _dropped(drops)
    log(f"[transcribe] {line}")
    return ["transcribe/train.list", "transcribe/utterances.json"], {"utterances": len(utts), "dropped": dict(drops),
                                                                     "summary": line}


def _seconds(ws: Workspace, utts) -> float:
    clips = {c.id: c for c in ws.load_records("segment", "clips.json", Clip)}
    return sum(clips[u.clip_id].seconds for u in utts if u.clip_id in clips)


def _features(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.features import run_features
    from gsvd.trainer.models_setup import feature_encoders

    utts = ws.load_records("transcribe", "utterances.json", Utterance)
    enc = feature_encoders(ws, s, log)
    tick = getattr(log, "progress", None)
    done = iter(range(1, len(utts) + 1))
    index = run_features(ws, utts, enc, progress=(lambda cid: tick(f"features {next(done)}/{len(utts)}: {cid}"))
                         if tick else None)
    log(f"[features] {len(index)} clips -> {ws.root / 'features'}")
    return ["features/features.json"], {"items": len(index)}


def _fit(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.fit import fit_both

    return fit_both(ws, s, log)


def _package(ws: Workspace, s: RunSettings, log: Log):
    from gsvd.trainer.models_setup import resolve_base
    from gsvd.trainer.package import build_engines, package_voice, provenance, register

    fit_info = read_json(ws.root / "fit" / "done.json", "fit result")["info"]
    base = resolve_base(ws, s, log)
    ref = reference_utterance(ws)
    sources = ws.load_records("extract", "sources.json", SourceAudio)
    clips = ws.load_records("segment", "clips.json", Clip)
    utts = ws.load_records("transcribe", "utterances.json", Utterance)
    (sovits_ckpt, sovits_loss), (gpt_ckpt, gpt_loss) = (_chosen_weights(ws, fit_info, "sovits", s.sovits_epoch),
                                                        _chosen_weights(ws, fit_info, "gpt", s.gpt_epoch))
    prov = provenance(ws, sources, clips, utts, {k: v for k, v in asdict(s).items() if k != "token"} | {
        "losses": {"sovits": sovits_loss, "gpt": gpt_loss}})
    bundle = package_voice(ws, name=s.name, voices_root=voices_root(s), gpt_ckpt=gpt_ckpt, sovits_ckpt=sovits_ckpt,
                           reference=ref, consent=s.consent, prov=prov, base=base.paths)
    if s.sovits_epoch or s.gpt_epoch:
        log(f"[package] weights: {sovits_ckpt.name} + {gpt_ckpt.name}")
    log(f"[package] voice bundle {bundle}")
    info: dict = {"bundle": str(bundle)}
    if s.build:
        lines = build_engines(bundle)
        for line in lines:
            log(f"[build] {line}")
        info["build"] = lines
    if s.register:
        info["registered"] = register(bundle, s.name, s.register, s.token)
        log(f"[package] {info['registered']}")
    return ["package/package.json"], info


_RUNNERS = {"extract": _extract, "segment": _segment, "select": _select, "transcribe": _transcribe,
            "features": _features, "fit": _fit, "package": _package}

# settings each stage depends on (a change re-runs it and, through "previous", everything after)
_STAGE_KEYS = {
    "extract": ("inputs", "track"),
    "segment": ("min_clip", "max_clip", "subtitles", "transcript", "asr", "lang"),
    "select": ("target_seconds", "min_seconds", "speaker_ref", "transcript", "lang"),
    "transcribe": ("lang", "transcript", "name"),
    "features": ("version", "base_sovits", "from_scratch", "hubert", "bert", "sv"),
    "fit": ("version", "base_gpt", "base_sovits", "from_scratch", "epochs", "gpt_epochs", "batch_size",
            "save_every", "fp16", "seed", "sample_sentences", "samples"),
    "package": ("name", "consent", "voices_dir", "build", "register", "sovits_epoch", "gpt_epoch"),
}


def _relevant(s: RunSettings, stage: str) -> dict:
    """The stage's settings; a file they name counts with its size and time (an edited transcript re-runs)."""
    d = asdict(s)
    out = {k: d[k] for k in _STAGE_KEYS[stage]}
    for k in ("subtitles", "transcript", "speaker_ref"):
        if out.get(k) and Path(out[k]).is_file():
            st = Path(out[k]).stat()
            out[k] = f"{out[k]}@{st.st_size}:{st.st_mtime_ns}"
    return out


def _previous_done(ws: Workspace, stage: str) -> str:
    i = STAGES.index(stage)
    if i == 0:
        return ""
    p = ws.root / STAGES[i - 1] / "done.json"
    return fingerprint(p.read_text(encoding="utf-8")) if p.is_file() else "missing"


# -- helpers shared by stages ------------------------------------------------------------


def _p(value: str | None) -> Path | None:
    return Path(value) if value else None


def voices_root(s: RunSettings) -> Path:
    if s.voices_dir:
        return Path(s.voices_dir)
    from gsvd.engine.paths import voices_dir

    return voices_dir()


def _chosen_weights(ws: Workspace, fit_info: dict, model: str, epoch: int) -> tuple[Path, dict]:
    """(checkpoint, that epoch's losses) of `model`: the final weights for epoch 0, else those the fit stage
    kept at that save (TrainError naming the saved epochs when there are none for it)."""
    from gsvd.trainer.package import epoch_weights, saved_epochs

    if not epoch:
        return Path(fit_info[f"{model}_ckpt"]), fit_info.get("final_losses", {}).get(model, {})
    path = epoch_weights(ws, model, epoch)
    if not path.is_file():
        saved = ", ".join(map(str, saved_epochs(ws, model))) or "none"
        raise TrainError(f"no {model} weights were kept at epoch {epoch} (saved epochs: {saved}); "
                         f"pass --{model}-epoch with one of them, or 0 for the final weights")
    rows = [r for r in fit_info.get(f"{model}_epoch_losses", []) if r.get("epoch") == epoch]
    return path, dict(rows[-1]) if rows else {}


def _kept_clips(ws: Workspace) -> list[Clip]:
    clips = {c.id: c for c in ws.load_records("segment", "clips.json", Clip)}
    scores = ws.load_records("select", "scores.json", ClipScore)
    return [clips[sc.id] for sc in scores if sc.kept and sc.id in clips]


def reference_utterance(ws: Workspace) -> Utterance:
    """The transcribed kept clip with the best selection score (3-10 s) becomes the voice's reference."""
    scores = {sc.id: sc for sc in ws.load_records("select", "scores.json", ClipScore)}
    utts = ws.load_records("transcribe", "utterances.json", Utterance)
    fit = [u for u in utts if u.clip_id in scores and 3.0 <= scores[u.clip_id].seconds <= 10.0]
    if not fit:
        raise TrainError("no transcribed clip of 3-10 s to use as the voice's reference")
    return max(fit, key=lambda u: scores[u.clip_id].score)
