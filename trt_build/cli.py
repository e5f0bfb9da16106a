"""`gsvd build VOICE`: export ONNX graphs, verify them, build TensorRT engines when possible."""

from __future__ import annotations

from pathlib import Path

import typer

from gsvd.engine.cli import VOICES_DIR


def register(app: typer.Typer) -> None:
    app.command("build")(build)


def build(
    voice: str = typer.Argument(..., help="Voice name (under the voices dir) or bundle path."),
    precision: str = typer.Option("fp16", "--precision", help="fp16 (default) or fp32; bf16 for engines only."),
    max_batch: int = typer.Option(64, "--max-batch", help="Largest decode batch bucket for the engines."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the onnxruntime parity check."),
    voices_dir: Path | None = VOICES_DIR,
) -> None:
    """Turn a voice bundle into ONNX graphs (+ TensorRT engines when TensorRT and a GPU are present)."""
    from rich.console import Console

    from gsvd.engine.errors import GsvdError
    from gsvd.engine.paths import resolve_voice
    from gsvd.trt_build.build import build_voice

    console = Console()
    if precision not in ("fp16", "fp32", "bf16"):
        Console(stderr=True).print("error: --precision must be fp16, fp32 or bf16", markup=False)
        raise typer.Exit(code=2)
    try:
        report = build_voice(resolve_voice(voice, voices_dir), "fp32" if precision == "fp32" else "fp16", max_batch,
                             verify=not no_verify, trt_precision=precision)
    except GsvdError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    console.print(f"ONNX graphs in {report.onnx_dir}: {len(report.exported)} files")
    for p in report.parity:
        console.print(f"  {p['graph']:13s} {p['precision']}  max abs {p['max_abs']:.2e}  max rel {p['max_rel']:.2e}")
    for e in report.engines:
        console.print(f"engine: {e}")
    for s in report.skipped:
        console.print(f"[yellow]skipped[/yellow]: {s}")
