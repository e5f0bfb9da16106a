"""`gsvd train`: enroll a voice from videos (light imports only; the stages load lazily).

    gsvd train VIDEO... --name alice --consent "..."        every stage, resumable
    gsvd train extract|segment|select|transcribe|features|fit|package --workdir runs/alice

A stage command changes only the settings it is given (saved in `run.json`) and runs
that one stage, so data can be inspected and fixed between stages.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

STAGE_HELP = {
    "extract": "Decode the audio of each input (any container ffmpeg reads) to 32 kHz / 16 kHz mono WAV.",
    "segment": "Cut 3-10 s clips on subtitle cues (else at Silero VAD pauses); align a whole-file transcript "
               "to --asr words.",
    "select": "Score clips (SNR, music, clipping, speech), check each text against its audio, keep one speaker, "
              "drop duplicates, keep the best; report.",
    "transcribe": "Write train.list from the clips' texts (cues, aligned transcript, per-clip lines, --asr words).",
    "features": "Phones + BERT, HuBERT features, semantic tokens (and speaker embedding for v2Pro).",
    "fit": "Fine-tune SoVITS then GPT (resumes from the last save); render test sentences at each save.",
    "package": "Write the voice bundle (consent + provenance); optionally --build engines and --register.",
}


class _DefaultRun(TyperGroup):
    """`gsvd train VIDEO ...` means `gsvd train run VIDEO ...`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


train_app = typer.Typer(cls=_DefaultRun, no_args_is_help=True, help="Enroll a voice from videos: extract, "
                        "segment, select, transcribe, features, fit, package.")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(train_app, name="train")


_WORKDIR = typer.Option(None, "--workdir", "-w", help="Run folder (default runs/<name>).")
_NAME = typer.Option(None, "--name", help="Voice name (letters, digits, - and _).")
_FORCE = typer.Option(False, "--force", help="Run again even if the inputs are unchanged.")


@train_app.command("run")
def run(
    inputs: list[Path] = typer.Argument(..., help="Videos or audio files of one speaker."),
    name: str = typer.Option(..., "--name", help="Voice name."),
    consent: str = typer.Option(..., "--consent", help="Consent record: who agreed to what, and when."),
    workdir: Path | None = _WORKDIR,
    track: int | None = typer.Option(None, "--track", help="Audio track index within each file (default: first)."),
    lang: str | None = typer.Option(None, "--lang", help="Transcript language zh/en/ja (default: detect)."),
    subtitles: Path | None = typer.Option(None, "--subtitles", help="An .srt/.vtt for the (single) input."),
    transcript: Path | None = typer.Option(None, "--transcript", help="A transcript list (path|speaker|lang|text)."),
    asr: Path | None = typer.Option(None, "--asr", help="Local faster-whisper model folder: word times to align a "
                                    "whole-file transcript, text for clips without any, and a check of every text."),
    speaker_ref: str | None = typer.Option(None, "--speaker-ref", help="The wanted speaker when the clips hold two "
                                           "voices: an audio clip, or a time in the input (12.5, 1:02, talk.mp4@1:02)."),
    target_seconds: float = typer.Option(60.0, "--target-seconds", help="Seconds of clean speech to keep."),
    min_seconds: float = typer.Option(10.0, "--min-seconds", help="Fail below this much clean speech."),
    version: str = typer.Option("v2", "--version", help="Model version when the base comes from the models dir."),
    base_gpt: Path | None = typer.Option(None, "--base-gpt", help="Base GPT .ckpt (upstream format)."),
    base_sovits: Path | None = typer.Option(None, "--base-sovits", help="Base SoVITS .pth (upstream format)."),
    from_scratch: str | None = typer.Option(None, "--from-scratch", help="'tiny': random small models (tests)."),
    hubert: Path | None = typer.Option(None, "--hubert", help="chinese-hubert-base folder."),
    bert: Path | None = typer.Option(None, "--bert", help="chinese-roberta-wwm-ext-large folder."),
    sv: Path | None = typer.Option(None, "--sv", help="Speaker-verification model (v2Pro)."),
    epochs: int = typer.Option(80, "--epochs", min=1, help="SoVITS epochs."),
    gpt_epochs: int = typer.Option(50, "--gpt-epochs", min=1, help="GPT epochs."),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    save_every: int = typer.Option(10, "--save-every", min=1, help="Save (and render samples) every N epochs."),
    samples: int = typer.Option(2, "--samples", min=0, help="Test sentences rendered at each save (0: none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 ..."),
    fp16: bool = typer.Option(False, "--fp16/--no-fp16", help="Mixed precision on CUDA (less memory; slower on an H100 here)."),
    seed: int = typer.Option(0, "--seed"),
    voices_dir: Path | None = typer.Option(None, "--voices-dir", help="Where the bundle goes."),
    build: bool = typer.Option(False, "--build", help="Export ONNX and build TensorRT engines when possible."),
    register_url: str | None = typer.Option(None, "--register", help="Load the voice into the daemon at URL."),
    token: str | None = typer.Option(None, "--token", envvar="GSVD_ADMIN_TOKEN", help="Admin token for --register."),
    force: bool = _FORCE,
) -> None:
    """Run every stage (each skipped when already done with the same inputs)."""
    over = dict(inputs=[str(p.resolve()) for p in inputs], consent=consent, track=track, lang=lang,
                subtitles=_s(subtitles), transcript=_s(transcript), asr=_s(asr), speaker_ref=speaker_ref,
                target_seconds=target_seconds,
                min_seconds=min_seconds, version=version, base_gpt=_s(base_gpt), base_sovits=_s(base_sovits),
                from_scratch=from_scratch, hubert=_s(hubert), bert=_s(bert), sv=_s(sv), epochs=epochs,
                gpt_epochs=gpt_epochs, batch_size=batch_size, save_every=save_every, samples=samples, device=device, fp16=fp16,
                seed=seed, voices_dir=_s(voices_dir), build=build, register=register_url, token=token)
    _execute(workdir, name, over, None, force, fresh=True)


def _s(p: Path | None) -> str | None:
    return str(p.resolve()) if p is not None else None


def _execute(workdir: Path | None, name: str | None, over: dict, stage: str | None, force: bool,
             fresh: bool = False) -> None:
    from rich.console import Console

    from gsvd.engine.errors import GsvdError
    from gsvd.trainer.records import TrainError

    err = Console(stderr=True, soft_wrap=True)  # paths in messages stay on one line
    try:
        ws, settings = _settings(workdir, name, over, fresh, stage)
        _run(ws, settings, stage, force)
    except (TrainError, GsvdError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to continue from the last finished stage / save")
        raise typer.Exit(code=130) from None


def _settings(workdir: Path | None, name: str | None, over: dict, fresh: bool, stage: str | None = None):
    from gsvd.trainer.pipeline import RunSettings
    from gsvd.trainer.records import TrainError
    from gsvd.trainer.workspace import Workspace

    if workdir is None and name is None:
        raise TrainError("say which run: --workdir runs/<name> or --name <name>")
    ws = Workspace(workdir if workdir is not None else Path("runs") / name)
    if (ws.root / "run.json").is_file():
        settings = RunSettings.load(ws)
        if name is not None and name != settings.name:
            raise TrainError(f"{ws.root} belongs to voice {settings.name!r}, not {name!r}: use another --workdir")
    elif fresh or name is not None:
        settings = RunSettings(name=name or ws.root.name)
    else:
        raise TrainError(f"no run at {ws.root} (run.json missing): start with "
                         "`gsvd train extract VIDEO... --name N --consent 'who agreed to what, and when'`")
    for key, value in over.items():
        if value is not None:
            setattr(settings, key, value)
    from gsvd.trainer.pipeline import preflight

    # name, consent, text options: before any stage runs or anything is written
    preflight(ws, settings, to_package=stage in (None, "package"))
    ws.root.mkdir(parents=True, exist_ok=True)
    settings.save(ws)
    return ws, settings


class _Reporter:
    """Stage messages printed with Rich; a spinner line shows the work in progress."""

    def __init__(self, console, status) -> None:
        self.console, self.status = console, status

    def __call__(self, msg: str) -> None:
        self.console.print(msg, markup=False, highlight=False)
        self.status.update(msg.split("]", 1)[0].lstrip("[") + " ...")

    def progress(self, text: str) -> None:
        self.status.update(text)


def _run(ws, settings, stage: str | None, force: bool) -> None:
    from rich.console import Console

    from gsvd.trainer.pipeline import run_all, run_stage

    console = Console(soft_wrap=True)
    console.print(f"run folder {ws.root}", markup=False, highlight=False)
    with console.status("starting ...") as status:
        log = _Reporter(console, status)
        if stage is None:
            info = run_all(ws, settings, log, force=force)
        else:
            run_stage(ws, settings, stage, log, force=force, checked=True)
    if stage is None:
        console.print(f"[green]voice ready[/green]: {info.get('bundle', '')}")


# -- one command per stage --------------------------------------------------------------


@train_app.command("extract", help=STAGE_HELP["extract"])
def extract_cmd(inputs: list[Path] = typer.Argument(...), name: str | None = _NAME, workdir: Path | None = _WORKDIR,
                consent: str | None = typer.Option(None, "--consent", help="Consent record (needed before any stage)."),
                track: int | None = typer.Option(None, "--track"), force: bool = _FORCE) -> None:
    over = {"inputs": [str(p.resolve()) for p in inputs], "track": track, "consent": consent}
    _execute(workdir, name, over, "extract", force, fresh=True)


@train_app.command("segment", help=STAGE_HELP["segment"])
def segment_cmd(workdir: Path | None = _WORKDIR, name: str | None = _NAME,
                min_clip: float | None = typer.Option(None, "--min-clip"),
                max_clip: float | None = typer.Option(None, "--max-clip"),
                lang: str | None = typer.Option(None, "--lang"),
                subtitles: Path | None = typer.Option(None, "--subtitles"),
                transcript: Path | None = typer.Option(None, "--transcript"),
                asr: Path | None = typer.Option(None, "--asr"), force: bool = _FORCE) -> None:
    over = {"min_clip": min_clip, "max_clip": max_clip, "lang": lang, "subtitles": _s(subtitles),
            "transcript": _s(transcript), "asr": _s(asr)}
    _execute(workdir, name, over, "segment", force)


@train_app.command("select", help=STAGE_HELP["select"])
def select_cmd(workdir: Path | None = _WORKDIR, name: str | None = _NAME,
               target_seconds: float | None = typer.Option(None, "--target-seconds"),
               min_seconds: float | None = typer.Option(None, "--min-seconds"),
               speaker_ref: str | None = typer.Option(None, "--speaker-ref"),
               transcript: Path | None = typer.Option(None, "--transcript"), force: bool = _FORCE) -> None:
    over = {"target_seconds": target_seconds, "min_seconds": min_seconds, "speaker_ref": speaker_ref,
            "transcript": _s(transcript)}
    _execute(workdir, name, over, "select", force)


@train_app.command("transcribe", help=STAGE_HELP["transcribe"])
def transcribe_cmd(workdir: Path | None = _WORKDIR, name: str | None = _NAME,
                   lang: str | None = typer.Option(None, "--lang"),
                   transcript: Path | None = typer.Option(None, "--transcript"), force: bool = _FORCE) -> None:
    over = {"lang": lang, "transcript": _s(transcript)}
    _execute(workdir, name, over, "transcribe", force)


@train_app.command("features", help=STAGE_HELP["features"])
def features_cmd(workdir: Path | None = _WORKDIR, name: str | None = _NAME,
                 base_sovits: Path | None = typer.Option(None, "--base-sovits"),
                 from_scratch: str | None = typer.Option(None, "--from-scratch"),
                 hubert: Path | None = typer.Option(None, "--hubert"), bert: Path | None = typer.Option(None, "--bert"),
                 sv: Path | None = typer.Option(None, "--sv"), device: str | None = typer.Option(None, "--device"),
                 force: bool = _FORCE) -> None:
    over = {"base_sovits": _s(base_sovits), "from_scratch": from_scratch, "hubert": _s(hubert), "bert": _s(bert),
            "sv": _s(sv), "device": device}
    _execute(workdir, name, over, "features", force)


@train_app.command("fit", help=STAGE_HELP["fit"])
def fit_cmd(workdir: Path | None = _WORKDIR, name: str | None = _NAME,
            base_gpt: Path | None = typer.Option(None, "--base-gpt"),
            epochs: int | None = typer.Option(None, "--epochs", min=1),
            gpt_epochs: int | None = typer.Option(None, "--gpt-epochs", min=1),
            batch_size: int | None = typer.Option(None, "--batch-size", min=1),
            save_every: int | None = typer.Option(None, "--save-every", min=1),
            samples: int | None = typer.Option(None, "--samples", min=0),
            device: str | None = typer.Option(None, "--device"),
            fp16: bool | None = typer.Option(None, "--fp16/--no-fp16"), force: bool = _FORCE) -> None:
    over = {"base_gpt": _s(base_gpt), "epochs": epochs, "gpt_epochs": gpt_epochs, "batch_size": batch_size,
            "save_every": save_every, "samples": samples, "device": device, "fp16": fp16}
    _execute(workdir, name, over, "fit", force)


@train_app.command("package", help=STAGE_HELP["package"])
def package_cmd(workdir: Path | None = _WORKDIR, name: str | None = _NAME,
                consent: str | None = typer.Option(None, "--consent"),
                voices_dir: Path | None = typer.Option(None, "--voices-dir"),
                build: bool | None = typer.Option(None, "--build/--no-build"),
                register_url: str | None = typer.Option(None, "--register"),
                token: str | None = typer.Option(None, "--token", envvar="GSVD_ADMIN_TOKEN"),
                sovits_epoch: int | None = typer.Option(
                    None, "--sovits-epoch", min=0, help="Package the SoVITS weights saved at this epoch (0: final)."),
                gpt_epoch: int | None = typer.Option(
                    None, "--gpt-epoch", min=0, help="Package the GPT weights saved at this epoch (0: final)."),
                force: bool = _FORCE) -> None:
    over = {"consent": consent, "voices_dir": _s(voices_dir), "build": build, "register": register_url,
            "token": token, "sovits_epoch": sovits_epoch, "gpt_epoch": gpt_epoch}
    _execute(workdir, name, over, "package", force)
