"""`gsvd g2p`: show how the frontend reads a text: per sentence, the language parts, the normalized
text, the words with their phones and, with `--explain`, the rule or dictionary behind each reading.

Torch-free on purpose (the per-sentence analysis in `text.phonemize` needs no BERT), so the command
starts in well under a second.
"""

from __future__ import annotations

import typer

VERSIONS = ("v1", "v2")


def register(app: typer.Typer) -> None:
    app.command("g2p")(g2p)


def g2p(
    text: str = typer.Argument(..., help="Text to analyse."),
    lang: str = typer.Option("auto", "--lang", help="auto, zh, en, ja, all_zh, all_ja, ..."),
    split: str = typer.Option("auto", "--split", help="Sentence split method: auto, cut0..cut5."),
    version: str = typer.Option("v2", help="Symbol table: v1 or v2."),
    explain: bool = typer.Option(False, "--explain", help="Show which rule or dictionary gave each reading."),
) -> None:
    """Print, per sentence: language parts, normalized text, words with their phones, and the phone ids."""
    from rich.console import Console

    from gsvd.engine.errors import GsvdError
    from gsvd.engine.text import phonemize as ph
    from gsvd.engine.text.split import split_text

    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    try:
        _check(text, lang, version)
        sentences = split_text(ph.clean(text), split)
        if not sentences:
            raise _Usage("the text has nothing to read (only spaces, punctuation or symbols)")
        for i, sentence in enumerate(sentences):
            _show(out, i, sentence, ph.phonemize(sentence, lang, version, explain=True), explain)
    except (GsvdError, _Usage) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None


class _Usage(Exception):
    pass


def _check(text: str, lang: str, version: str) -> None:
    from gsvd.engine.text.phonemize import LANGUAGE_MODES

    if not text.strip():
        raise _Usage("the text is empty: give the text to analyse, e.g. gsvd g2p '你好, world'")
    if version not in VERSIONS:
        raise _Usage(f"--version must be one of {', '.join(VERSIONS)}; got {version!r}")
    if lang not in LANGUAGE_MODES:
        raise _Usage(f"--lang must be one of {', '.join(LANGUAGE_MODES)}; got {lang!r}")


def _show(out, i: int, sentence: str, result, explain: bool) -> None:
    from rich.markup import escape

    out.print(f"[bold]sentence {i}:[/bold] {escape(sentence)}")
    for part in result.parts:
        out.print(f"  [cyan]{part.lang}[/cyan] {escape(part.text.strip())}")
        out.print(f"    normalized: {escape(part.norm_text)}")
        if explain:
            for rule, written, read in part.notes:
                out.print(f"    rule {escape(rule)}: {escape(written)} -> {escape(read)}")
        for w in part.words:
            phones = " ".join(w.phones)
            line = f"    {escape(w.text):<12} {escape(phones)}" if phones else f"    {escape(w.text):<12}"
            out.print(line + (f"   [dim]({escape(w.source)})[/dim]" if explain else ""))
        if part.lang == "ja" or not part.words:
            out.print(f"    phones: {escape(' '.join(part.phones))}")
    out.print("  ids: " + " ".join(map(str, result.phone_ids)))
