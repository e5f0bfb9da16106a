"""`gsvd g2p`: show how the frontend reads a text (segments, normalized text, phones)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("g2p")(g2p)


def g2p(
    text: str = typer.Argument(..., help="Text to analyse."),
    lang: str = typer.Option("auto", "--lang", help="auto, zh, en, ja, all_zh, all_ja, ..."),
    split: str = typer.Option("auto", "--split", help="Sentence split method: auto, cut0..cut5."),
    version: str = typer.Option("v2", help="Symbol table: v1 or v2."),
) -> None:
    """Print segments, normalized text and phones (with ids) for TEXT."""
    from rich.console import Console
    from rich.table import Table

    from gsvd.engine.errors import GsvdError
    from gsvd.engine.text import TextFrontend

    out, err = Console(), Console(stderr=True)
    fe = TextFrontend(version=version)
    try:
        for i, sentence in enumerate(fe.split(text, split)):
            ph = fe.phonemize(sentence, lang)
            table = Table(title=f"sentence {i}: {sentence}")
            for col in ("lang", "text", "normalized", "phones"):
                table.add_column(col)
            for part in ph.parts:
                table.add_row(part.lang, part.text, part.norm_text, " ".join(part.phones))
            out.print(table)
            out.print("ids:", " ".join(map(str, ph.phone_ids)))
    except GsvdError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
