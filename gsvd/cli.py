"""The one ``gsvd`` command.

Each area registers its own subcommands from a light ``cli`` module of its own
folder (``engine/cli.py``, ``daemon/cli.py`` ...). Those modules import only
typer/rich at top level; heavy subsystems (torch, grpc, av) are imported inside
the command that needs them, so ``gsvd --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="gsvd",
    help="Live GPT-SoVITS voice engine: serve voices over gRPC, enroll new ones, export engines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Areas that contribute commands; each module exposes ``register(app)``.
_AREAS = (
    "gsvd.engine.cli",
    "gsvd.engine.provenance.cli",
    "gsvd.engine.text.cli",
    "gsvd.daemon.cli",
    "gsvd.clients.cli",
    "gsvd.trt_build.cli",
    "gsvd.trainer.cli",
    "gsvd.engine.models_dir.cli",
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command("demo")
def demo(
    out: str = typer.Option("out/demo", "--out", help="Folder for the demo's files."),
) -> None:
    """Run the main job end to end on a tiny random model: import a voice, serve it, stream a sentence to a WAV."""
    from pathlib import Path

    from gsvd.demo import run_demo

    raise typer.Exit(code=run_demo(Path(out)))


def _register_all() -> None:
    for name in _AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an area not installed in this build
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    app()
