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
    watermark: bool = typer.Option(True, "--watermark/--no-watermark", help="Embed the inaudible watermark."),
    watermark_key: str | None = typer.Option(None, "--watermark-key", help="Private watermark key (default: public)."),
    sign_cert: Path | None = typer.Option(None, "--sign-cert", help="PEM certificate chain: sign a C2PA manifest."),
    sign_key: Path | None = typer.Option(None, "--sign-key", help="PEM private key of --sign-cert."),
    sign_alg: str = typer.Option("es256", "--sign-alg", help="es256, es384, es512, ps256, ps384, ps512, ed25519."),
) -> None:
    """Synthesize TEXT with VOICE into a WAV file (eager on CPU, fast path on GPU), labelled AI-generated in its
    metadata, watermarked, and signed with content credentials when --sign-cert/--sign-key are given."""
    from rich.console import Console

    from gsvd.engine import Engine, GsvdError, SynthesisOptions
    from gsvd.engine.paths import resolve_voice
    from gsvd.engine.provenance.synth_output import OutputProvenance

    err = Console(stderr=True)
    try:
        prov = OutputProvenance.from_options(watermark, watermark_key, sign_cert, sign_key, sign_alg)
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
        with Engine(device=device, bert_folder=bert, watermark=prov.watermark) as engine:
            v = engine.load_voice(resolve_voice(voice, voices_dir))
            pcm, rate = engine.synthesize(text, v.name, options)
        out = prov.write(out, pcm, rate, v.name)
    except GsvdError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    Console().print(f"wrote {out} ({len(pcm) / rate:.2f} s at {rate} Hz)")

