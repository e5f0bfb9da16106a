"""``gsvd models fetch|list|verify|link|unlink`` and ``gsvd import`` (light imports only).

Exit codes: 0 ok, 2 bad input (unknown name, missing file, bad flag), 1 runtime
failure (download failed, a model does not load, some voices not imported).
"""

from __future__ import annotations

from pathlib import Path

import typer

models_app = typer.Typer(
    name="models",
    help="Base models (HuBERT, RoBERTa, pretrained v2/v2Pro/v2ProPlus, speaker model): fetch, list, verify, link.",
    no_args_is_help=True,
)

_MODELS_DIR = typer.Option(
    None, "--models-dir", help="Models directory (default: $GSVD_MODELS_DIR or ~/.local/share/gsvd/models)."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(models_app, name="models")
    app.command("import")(import_cmd)


def _store(models_dir: Path | None):
    from gsvd.engine.models_dir.store import ModelsDir

    return ModelsDir(models_dir)


def _fail(exc: Exception, code: int) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


def _size(n: int | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


# ------------------------------------------------------------------ models


@models_app.command("fetch")
def fetch_cmd(
    names: list[str] = typer.Argument(
        None, help="Models to fetch (default: chinese-hubert-base, chinese-roberta-wwm-ext-large, v2)."
    ),
    all_models: bool = typer.Option(False, "--all", help="Fetch every known base model."),
    models_dir: Path | None = _MODELS_DIR,
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Hub URL (default: $HF_ENDPOINT or https://huggingface.co)."
    ),
    revision: str = typer.Option("main", "--revision", help="Hub revision (branch, tag or commit)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Download base models from the Hugging Face hub (resumable, checksum-verified)."""
    from rich.console import Console

    from gsvd.engine.errors import GsvdError, InvalidInput
    from gsvd.engine.models_dir.fetch import fetch_models, resolve_names

    out = Console()
    store = _store(models_dir)
    try:
        entries = resolve_names(names or [], all_models)

        def report(r) -> None:
            how = (
                "already present"
                if not r.downloaded
                else (f"resumed at {r.resumed_from} B" if r.resumed_from else "downloaded")
            )
            out.print(
                f"{r.rel}: {how}, {_size(r.size)}, sha256 {r.sha256[:12]}…", highlight=False, soft_wrap=True
            )

        fetch_models(entries, store, endpoint=endpoint, revision=revision, progress=progress, on_file=report)
    except InvalidInput as exc:
        raise _fail(exc, 2) from None
    except GsvdError as exc:
        raise _fail(exc, 1) from None
    out.print(f"[green]ok[/green]: {', '.join(e.name for e in entries)} in {store.root}")


@models_app.command("list")
def list_cmd(models_dir: Path | None = _MODELS_DIR) -> None:
    """What is present (local or linked), sizes, versions and what each model enables."""
    from rich.console import Console
    from rich.table import Table

    store = _store(models_dir)
    table = Table(title=f"base models ({store.root})")
    for col in ("name", "state", "size", "versions"):
        table.add_column(col, no_wrap=True)
    table.add_column("enables")
    colors = {"present": "green", "linked": "cyan", "partial": "yellow", "missing": "red"}
    for st in store.all_status():
        size = (
            _size(st.size)
            if st.state != "missing"
            else f"~{_size(st.model.size_hint)}"
            if st.model.size_hint
            else "-"
        )
        state = f"[{colors[st.state]}]{st.state}[/]"
        table.add_row(st.model.name, state, size, ", ".join(st.model.versions) or "all", st.model.enables)
    console = Console()
    console.print(table)
    for link in store.links():
        console.print(f"linked: {link}", highlight=False, soft_wrap=True)


@models_app.command("verify")
def verify_cmd(
    names: list[str] = typer.Argument(None, help="Models to verify (default: every one present)."),
    models_dir: Path | None = _MODELS_DIR,
    load: bool = typer.Option(True, "--load/--no-load", help="Also load each model (slower)."),
) -> None:
    """Check hashes (recorded at fetch, upstream fingerprints) and that each model loads."""
    from rich.console import Console

    from gsvd.engine.models_dir.registry import model
    from gsvd.engine.models_dir.verify import verify_all

    for n in names or []:
        try:
            model(n)
        except KeyError as exc:
            raise _fail(Exception(exc.args[0]), 2) from None
    results = verify_all(_store(models_dir), names or None, load=load)
    out = Console()
    if not results:
        out.print("no base models present: run `gsvd models fetch` or `gsvd models link PATH`")
        raise typer.Exit(code=1)
    for r in results:
        mark = "[green]ok[/green]" if r.ok else "[red]FAILED[/red]"
        out.print(f"{mark} {r.name}", highlight=False, soft_wrap=True)
        for line in r.checks:
            out.print(f"    {line}", highlight=False, soft_wrap=True)
        for line in r.problems:
            out.print(f"    [red]{line}[/red]", highlight=False, soft_wrap=True)
    if not all(r.ok for r in results):
        raise typer.Exit(code=1)


@models_app.command("link")
def link_cmd(
    path: Path = typer.Argument(..., help="A GPT-SoVITS folder, its GPT_SoVITS/ or its pretrained_models/."),
    models_dir: Path | None = _MODELS_DIR,
) -> None:
    """Use an existing GPT-SoVITS pretrained_models/ folder in place (nothing is copied)."""
    from rich.console import Console

    from gsvd.engine.errors import InvalidInput
    from gsvd.engine.models_dir.link import link

    try:
        report = link(_store(models_dir), path)
    except InvalidInput as exc:
        raise _fail(exc, 2) from None
    out = Console()
    verb = "already linked" if report.already_linked else "linked"
    out.print(f"{verb}: {report.folder}", highlight=False, soft_wrap=True)
    for name, state in report.found.items():
        out.print(f"    {name}: {state}", highlight=False, soft_wrap=True)


@models_app.command("unlink")
def unlink_cmd(path: Path = typer.Argument(...), models_dir: Path | None = _MODELS_DIR) -> None:
    """Stop using a linked GPT-SoVITS folder."""
    from gsvd.engine.errors import InvalidInput
    from gsvd.engine.models_dir.link import unlink

    try:
        folder = unlink(_store(models_dir), path)
    except InvalidInput as exc:
        raise _fail(exc, 2) from None
    typer.echo(f"unlinked: {folder}")


# ------------------------------------------------------------------ import


def import_cmd(
    gpt: Path | None = typer.Option(None, "--gpt", help="GPT weights (.ckpt, upstream format)."),
    sovits: Path | None = typer.Option(None, "--sovits", help="SoVITS weights (.pth, upstream format)."),
    ref: Path | None = typer.Option(None, "--ref", help="Reference clip, 3-10 s."),
    ref_text: str | None = typer.Option(None, "--ref-text", help="Transcript of the reference clip."),
    ref_lang: str = typer.Option(
        "zh", "--ref-lang", help="Language of the reference: zh, en, ja, ko, yue, ..."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Voice name (with --from-gpt-sovits: needs one --only)."
    ),
    from_gpt_sovits: Path | None = typer.Option(
        None, "--from-gpt-sovits", help="Import every voice of this GPT-SoVITS install."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --from-gpt-sovits: list what would be imported."
    ),
    only: list[str] = typer.Option(
        None, "--only", help="With --from-gpt-sovits: import only these experiments."
    ),
    version: str | None = typer.Option(
        None, "--version", help="With --from-gpt-sovits: model version when several exist."
    ),
    gpt_epoch: int | None = typer.Option(
        None, "--gpt-epoch", help="With --from-gpt-sovits: GPT epoch (default: latest)."
    ),
    sovits_epoch: int | None = typer.Option(
        None, "--sovits-epoch", help="With --from-gpt-sovits: SoVITS epoch (default: latest)."
    ),
    consent: str | None = typer.Option(
        None, "--consent", help='Required: "speaker=...; use=...; date=YYYY-MM-DD; by=..." or a .toml/.json file.'
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing voice of the same name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Never ask; unresolved choices skip the voice."),
    voices_dir: Path | None = typer.Option(
        None, "--voices-dir", help="Where bundles go (default: $GSVD_VOICES_DIR)."
    ),
    models_dir: Path | None = _MODELS_DIR,
    hubert: Path | None = typer.Option(
        None, "--hubert", help="chinese-hubert-base folder (default: models dir)."
    ),
    sv_model: Path | None = typer.Option(None, "--sv-model", help="ERes2NetV2 .ckpt for v2Pro/v2ProPlus."),
    bert: Path | None = typer.Option(None, "--bert", help="chinese-roberta-wwm-ext-large folder."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda for the reference features."),
) -> None:
    """Make voice bundles: from --gpt/--sovits/--ref/--ref-text, or from a whole GPT-SoVITS install."""
    from gsvd.engine.models_dir import cli_import

    if from_gpt_sovits is not None:
        if gpt or sovits:
            raise _fail(Exception("--from-gpt-sovits cannot be combined with --gpt/--sovits"), 2)
        code = cli_import.from_install(
            from_gpt_sovits,
            dry_run=dry_run,
            only=only or [],
            version=version,
            gpt_epoch=gpt_epoch,
            sovits_epoch=sovits_epoch,
            ref=ref,
            ref_text=ref_text,
            ref_lang=ref_lang,
            name=name,
            consent=consent,
            force=force,
            yes=yes,
            voices_dir=voices_dir,
            models_dir=models_dir,
            hubert=hubert,
            sv_model=sv_model,
            bert=bert,
            device=device,
        )
    else:
        code = cli_import.single(
            gpt=gpt,
            sovits=sovits,
            ref=ref,
            ref_text=ref_text,
            ref_lang=ref_lang,
            name=name,
            consent=consent,
            force=force,
            voices_dir=voices_dir,
            models_dir=models_dir,
            hubert=hubert,
            sv_model=sv_model,
            bert=bert,
            device=device,
        )
    if code:
        raise typer.Exit(code=code)
