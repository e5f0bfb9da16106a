"""``gsvd watermark detect FILE...``: is this audio gsvd's, from which daemon, voice and day?

Exit code: 0 a mark was found in every file, 1 some file has none, 2 some file could not be read."""

from __future__ import annotations

from pathlib import Path

import typer

watermark_app = typer.Typer(help="The inaudible watermark in gsvd's audio.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(watermark_app, name="watermark")


@watermark_app.command("detect")
def detect(
    files: list[Path] = typer.Argument(..., help="Audio files (WAV, FLAC, MP3, Opus, ...); 3 s or more each."),
    key: str | None = typer.Option(None, "--key", help="The daemon's private watermark key (default: public)."),
    voice: list[str] = typer.Option(None, "--voice", help="Voice names to match the payload's voice hash against."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file."),
) -> None:
    """Read the watermark of each FILE: payload (daemon, voice hash, day) and confidence."""
    import json

    from rich.console import Console

    from gsvd.engine.errors import GsvdError
    from gsvd.engine.provenance.detector import Detector
    from gsvd.engine.provenance.scan import scan_file
    from gsvd.engine.provenance.watermark import PUBLIC_KEY, SYMBOLS, voice_hash

    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    detector = Detector(key or PUBLIC_KEY)
    names = {voice_hash(v): v for v in voice or []}
    code = 0
    for path in files:
        try:
            result = scan_file(path, detector)
        except GsvdError as exc:
            err.print(f"[red]error:[/red] {exc}")
            code = 2
            continue
        best = result.best
        row = {"file": str(path), "found": best.found, "confidence": round(best.confidence, 3),
               "sync_z": round(best.sync_z, 1), "symbol_errors": best.symbol_errors}
        if best.found:
            p = best.payload
            row.update(daemon_id=p.daemon_id, voice_hash=f"0x{p.voice_hash:03x}", voice=names.get(p.voice_hash),
                       day=p.day().isoformat(), at_s=best.start_s, speed=round(best.speed, 4),
                       payloads=len(result.payloads))
        else:
            code = max(code, 1)
        if as_json:
            out.print(json.dumps(row), soft_wrap=True)
        elif best.found:
            who = f" ({row['voice']})" if row["voice"] else ""
            out.print(f"{path}: watermark found: daemon {p.daemon_id}, voice {row['voice_hash']}{who}, day {row['day']}; "
                      f"confidence z {best.confidence:.1f} (sync z {best.sync_z:.1f}, {best.symbol_errors} of {SYMBOLS} "
                      f"symbols off)" + (f"; read at {best.speed:.3g}x speed" if best.speed != 1.0 else "")
                      + (f"; {len(result.payloads)} different payloads" if len(result.payloads) > 1 else ""),
                      soft_wrap=True)
        else:
            out.print(f"{path}: no watermark found (sync z {best.sync_z:.1f}, {result.seconds:.1f} s read)", soft_wrap=True)
    raise typer.Exit(code=code)
