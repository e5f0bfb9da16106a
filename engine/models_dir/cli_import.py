"""The work behind ``gsvd import`` (kept out of cli.py so ``gsvd --help`` stays light).

Both functions print with Rich and return an exit code: 0 ok, 2 bad input, 1 failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gsvd.engine.errors import GsvdError, InvalidInput, MissingModel, VoiceNotFound

_err = Console(stderr=True)
_out = Console()


def _error(exc: Exception | str) -> None:
    _err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)


def _code(exc: GsvdError) -> int:
    return 2 if isinstance(exc, (InvalidInput, MissingModel, VoiceNotFound)) else 1


def _voices_root(voices_dir: Path | None) -> Path:
    from gsvd.engine.paths import voices_dir as default_voices

    return Path(voices_dir).expanduser() if voices_dir else default_voices()


def single(
    *,
    gpt,
    sovits,
    ref,
    ref_text,
    ref_lang,
    name,
    consent,
    force,
    voices_dir,
    models_dir,
    hubert,
    sv_model,
    bert,
    device,
) -> int:
    """``gsvd import --gpt X --sovits Y --ref R --ref-text T --name N``."""
    from gsvd.engine.models_dir.import_install import base_models_for
    from gsvd.engine.models_dir.store import ModelsDir
    from gsvd.engine.voice_import import import_voice

    missing = [
        flag
        for flag, v in (
            ("--gpt", gpt),
            ("--sovits", sovits),
            ("--ref", ref),
            ("--ref-text", ref_text),
            ("--name", name),
        )
        if not v
    ]
    if missing:
        _error(f"missing {', '.join(missing)} (or use --from-gpt-sovits PATH to import a whole install)")
        return 2
    try:
        record = _consent_record(consent)
    except InvalidInput as exc:
        _error(exc)
        return 2
    base = base_models_for(ModelsDir(models_dir), hubert=hubert, sv_model=sv_model, bert=bert)
    _warn_no_bert(base, models_dir)
    try:
        bundle = import_voice(
            _voices_root(voices_dir),
            name,
            gpt_path=gpt,
            sovits_path=sovits,
            ref_audio=ref,
            ref_text=ref_text,
            ref_lang=ref_lang,
            base=base,
            consent=record,
            overwrite=force,
            device=device,
        )
    except GsvdError as exc:
        _error(exc)
        return _code(exc)
    _out.print(
        f"[green]imported[/green] {bundle.name} ({bundle.version}) -> {bundle.path}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def from_install(
    path: Path,
    *,
    dry_run,
    only,
    version,
    gpt_epoch,
    sovits_epoch,
    ref,
    ref_text,
    ref_lang,
    name,
    consent,
    force,
    yes,
    voices_dir,
    models_dir,
    hubert,
    sv_model,
    bert,
    device,
) -> int:
    """``gsvd import --from-gpt-sovits PATH [--dry-run]``."""
    from gsvd.engine.models_dir.gsv_install import scan_install

    try:
        scan = scan_install(path, version=version, gpt_epoch=gpt_epoch, sovits_epoch=sovits_epoch)
        candidates = _select(scan, only)
        names = _apply_overrides(candidates, ref, ref_text, ref_lang, name)
        record = None if dry_run else _consent_record(consent)
    except InvalidInput as exc:
        _error(exc)
        return 2
    if not yes and not dry_run and _interactive():
        _ask_versions(candidates, gpt_epoch, sovits_epoch)
    _print_plan(scan, candidates, names)
    if dry_run:
        return 0
    return _run_import(
        scan,
        candidates,
        names,
        consent=record,
        force=force,
        voices_dir=voices_dir,
        models_dir=models_dir,
        hubert=hubert,
        sv_model=sv_model,
        bert=bert,
        device=device,
    )


def _consent_record(consent: str | None) -> dict:
    """``--consent`` as a record (who, what use, when, recorded by whom); InvalidInput if absent or incomplete."""
    from gsvd.engine.consent import parse_consent

    return parse_consent(consent or "", source="gsvd import --consent").to_dict()


def _interactive() -> bool:
    return sys.stdin.isatty()


def _select(scan, only: list[str]):
    if not only:
        return scan.candidates
    known = {c.exp: c for c in scan.candidates}
    unknown = [o for o in only if o not in known]
    if unknown:
        raise InvalidInput(
            f"--only: no experiment named {', '.join(unknown)} (found: {', '.join(known) or 'none'})", "only"
        )
    return [known[o] for o in only]


def _apply_overrides(candidates, ref, ref_text, ref_lang, name) -> dict[str, str]:
    """--ref/--ref-text/--name apply to a single selected experiment."""
    from gsvd.engine.models_dir.gsv_install import Clip, _duration

    if not (ref or ref_text or name):
        return {}
    if len(candidates) != 1:
        raise InvalidInput(
            "--ref, --ref-text and --name need exactly one voice: add --only EXPERIMENT", "only"
        )
    cand = candidates[0]
    if ref or ref_text:
        if not (ref and ref_text):
            raise InvalidInput("give both --ref and --ref-text", "ref")
        if not Path(ref).is_file():
            raise InvalidInput(f"--ref: no such file: {ref}", "ref")
        cand.clips = [Clip(Path(ref), str(ref), cand.exp, ref_lang, ref_text, _duration(Path(ref)))]
        cand.reference = cand.clips[0]
        cand.problems = [p for p in cand.problems if not p.startswith("reference:")]
    return {cand.exp: name} if name else {}


def _ask_versions(candidates, gpt_epoch, sovits_epoch) -> None:
    import typer

    from gsvd.engine.models_dir.gsv_install import pick_pair

    for cand in candidates:
        if any("several versions" in p for p in cand.problems):
            choice = ""
            while choice not in cand.versions:
                choice = typer.prompt(f"{cand.exp}: which version ({', '.join(cand.versions)})?").strip()
            pick_pair(cand, version=choice, gpt_epoch=gpt_epoch, sovits_epoch=sovits_epoch)


def _print_plan(scan, candidates, names) -> None:
    from gsvd.engine.models_dir.gsv_install import voice_name_for

    table = Table(title=f"voices in {scan.root}")
    for col in ("experiment", "voice", "version", "GPT", "SoVITS", "reference", "status"):
        table.add_column(col)
    for c in candidates:
        ref = c.reference
        ref_s = (
            f"{ref.audio.name} ({ref.duration:.1f} s, {ref.language}): {ref.text[:30]}"
            if ref and ref.audio
            else "-"
        )
        status = (
            "[green]ready[/green]"
            if c.ready
            else "[yellow]" + "; ".join(p.split(": ", 1)[-1] for p in c.problems) + "[/yellow]"
        )
        table.add_row(
            c.exp,
            names.get(c.exp) or voice_name_for(c.exp),
            c.sovits.version if c.sovits else "-",
            c.gpt.path.name if c.gpt else "-",
            c.sovits.path.name if c.sovits else "-",
            ref_s,
            status,
        )
    # never truncate file names: they are what the user has to recognise
    Console(width=max(_out.width, 180)).print(table)
    for line in scan.skipped:
        _out.print(f"[dim]skipped {line}[/dim]", highlight=False, soft_wrap=True)


def _run_import(
    scan, candidates, names, *, consent, force, voices_dir, models_dir, hubert, sv_model, bert, device
) -> int:
    from gsvd.engine.models_dir.import_install import base_models_for, import_candidates
    from gsvd.engine.models_dir.store import ModelsDir

    base = base_models_for(ModelsDir(models_dir), scan.root, hubert=hubert, sv_model=sv_model, bert=bert)
    _warn_no_bert(base, models_dir)
    outcome = import_candidates(
        scan,
        candidates,
        _voices_root(voices_dir),
        base,
        names=names,
        consent=consent,
        overwrite=force,
        device=device,
        on_voice=lambda b: _out.print(
            f"[green]imported[/green] {b.name} -> {b.path}", highlight=False, soft_wrap=True
        ),
    )
    for exp, why in outcome.failed:
        _err.print(f"[yellow]not imported[/yellow] {exp}: {why}", highlight=False, soft_wrap=True)
    if not outcome.imported and not outcome.failed:
        _error("nothing to import")
        return 2
    return 1 if outcome.failed else 0


def _warn_no_bert(base, models_dir) -> None:
    if base.bert_folder is None:
        from gsvd.engine.models_dir.store import ModelsDir

        msg = ModelsDir(models_dir).missing_message("chinese-roberta-wwm-ext-large")
        _err.print(
            f"[yellow]warning:[/yellow] Chinese reference texts get zero BERT features: {msg}",
            highlight=False,
        )
