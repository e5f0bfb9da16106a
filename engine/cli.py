"""Engine commands: ``gsvd synth`` (offline synthesis to a WAV file)."""

from __future__ import annotations

from pathlib import Path

import typer

from gsvd.engine.devices import DEVICE_CHOICES

# shared with `gsvd build`: a voice given by name is looked up in this folder
VOICES_DIR = typer.Option(None, "--voices-dir", help="Folder of voice bundles to find VOICE in (default: "
                          "$GSVD_VOICES_DIR, else ~/.local/share/gsvd/voices).")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)


def synth(
    voice: str = typer.Option(..., "--voice", help="Voice name (under the voices dir) or bundle path."),
    text: str = typer.Option(..., "--text", help="Text to speak."),
    out: Path = typer.Option(..., "--out", help="WAV file to write (atomically)."),
    voices_dir: Path | None = VOICES_DIR,
    language: str = typer.Option("auto", "--lang", help="auto, zh, en, ja, ..."),
    device: str = typer.Option("auto", help=f"{DEVICE_CHOICES}."),
    top_k: int = typer.Option(15, help="Sampling top-k."),
    top_p: float = typer.Option(1.0, help="Sampling top-p."),
    temperature: float = typer.Option(1.0, help="Sampling temperature."),
    repetition_penalty: float = typer.Option(1.35, help="Repetition penalty."),
    noise_scale: float = typer.Option(0.5, help="SoVITS noise scale in [0, 1]."),
    speed: float = typer.Option(1.0, help="Speaking rate."),
    seed: int = typer.Option(-1, help="Seed (-1: random)."),
    split: str = typer.Option("auto", "--split", help="auto or cut0..cut5."),
    bert: Path | None = typer.Option(None, "--bert", help="Local chinese-roberta-wwm-ext-large folder."),
) -> None:
    """Synthesize TEXT with VOICE into a WAV file (eager on CPU, fast path on GPU)."""
    from rich.console import Console

    from gsvd.engine import Engine, GsvdError, SynthesisOptions
    from gsvd.engine.audio import write_wav
    from gsvd.engine.paths import resolve_voice

    err = Console(stderr=True)
    try:
        options = SynthesisOptions(
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            noise_scale=noise_scale,
            speed=speed,
            seed=None if seed < 0 else seed,
            language=language,
            split_method=split,
        ).validate()
        with Engine(device=device, bert_folder=bert) as engine:
            v = engine.load_voice(resolve_voice(voice, voices_dir))
            pcm, rate = engine.synthesize(text, v.name, options)
        out = write_wav(out, pcm, rate)
    except GsvdError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    Console().print(f"wrote {out} ({len(pcm) / rate:.2f} s at {rate} Hz)")

