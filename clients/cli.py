"""Client commands: `gsvd say`, `gsvd voices`, `gsvd devices` (talk to a running daemon; no torch)."""

from __future__ import annotations

from pathlib import Path

import typer

voices_app = typer.Typer(help="List, load and unload voices on a running daemon.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("say")(say)
    app.command("devices")(devices)
    app.add_typer(voices_app, name="voices")


def _fail(message: str, code: int = 1):
    from rich.console import Console

    console = Console(stderr=True)
    console.print("[red]error:[/red] ", end="")
    console.print(message, markup=False)
    raise typer.Exit(code=code)


def _rpc_error(exc) -> None:
    _fail(f"{exc.code().name}: {exc.details()}", 2 if exc.code().name in ("INVALID_ARGUMENT", "NOT_FOUND") else 1)


def say(
    text: str = typer.Argument(..., help="Text to speak."),
    voice: str = typer.Option(..., "--voice", help="Voice name on the daemon."),
    server: str = typer.Option("127.0.0.1:50051", "--server", envvar="GSVD_SERVER"),
    token: str | None = typer.Option(None, "--token", envvar="GSVD_TOKEN"),
    out: Path | None = typer.Option(None, "--out", help="Write a WAV file."),
    play: bool = typer.Option(False, "--play", help="Play while streaming."),
    device: str | None = typer.Option(None, "--device", help="Output device (name substring)."),
    lang: str = typer.Option("", "--lang", help="auto, zh, en, ja, ..."),
    seed: int | None = typer.Option(None, "--seed"),
    speed: float | None = typer.Option(None, "--speed"),
) -> None:
    """Stream TEXT from the daemon; play it (--play) and/or write it (--out). Prints the server's label saying
    the audio is AI-generated; a file written with --out carries it in its metadata (LIST/INFO + aigc chunk)."""
    import grpc
    import numpy as np

    from gsvd.clients.client import Client
    from gsvd.clients.playback import PlaybackUnavailable, Player, check_output

    if not play and out is None:
        _fail("nothing to do: give --play and/or --out FILE", 2)
    label = None
    try:
        if play:
            check_output(device)
        player = None
        chunks = []
        with Client(server, token) as client:
            stream = client.stream(text, voice, language=lang, seed=seed, speed=speed)
            for chunk in stream:
                if label is None and stream.label is not None:
                    label = stream.label
                    typer.echo(_label_line(label))
                if play and player is None:
                    player = Player(chunk.sample_rate, device)
                if player is not None:
                    player.feed(chunk.pcm)
                chunks.append(chunk)
        if player is not None:
            player.finish()
    except PlaybackUnavailable as exc:
        _fail(str(exc), 1)
    except grpc.RpcError as exc:
        _rpc_error(exc)
    if label is None:
        typer.echo("warning: the server sent no AI-generated label (an older gsvd?)", err=True)
    if out is not None and chunks:
        from gsvd.wavio import write_wav

        path = write_wav(out, np.concatenate([c.pcm for c in chunks]), chunks[0].sample_rate, label=label)
        typer.echo(f"wrote {path}")


def _label_line(label) -> str:
    """The label, as `gsvd say` prints it."""
    mark = f"; watermark: {label.watermark}" if label.watermark else ""
    return f"AI-generated speech (voice {label.voice}, {label.generator}, id {label.produce_id}){mark}"


def devices() -> None:
    """List audio outputs (virtual cables included)."""
    from gsvd.clients.playback import PlaybackUnavailable, output_devices

    try:
        for d in output_devices():
            typer.echo(f"{d['index']:3d}  {d['name']}  ({int(d['default_samplerate'])} Hz)")
    except PlaybackUnavailable as exc:
        _fail(str(exc))


@voices_app.command("list")
def voices_list(server: str = typer.Option("127.0.0.1:50051", "--server", envvar="GSVD_SERVER"),
                token: str | None = typer.Option(None, "--token", envvar="GSVD_TOKEN")) -> None:
    import grpc

    from gsvd.clients.client import Client

    try:
        with Client(server, token) as c:
            for v in c.voices():
                consent = v.consent.speaker or v.consent.statement or "no consent record"
                typer.echo(f"{v.name}\t{v.version}\t{','.join(v.languages)}\t{v.reference_text}\tconsent: {consent}")
    except grpc.RpcError as exc:
        _rpc_error(exc)


@voices_app.command("load")
def voices_load(path: str = typer.Argument(..., help="Bundle path on the server (inside its voices dir)."),
                name: str = typer.Option("", "--name"),
                replace: bool = typer.Option(False, "--replace", help="Swap a loaded voice of the same name."),
                server: str = typer.Option("127.0.0.1:50051", "--server", envvar="GSVD_SERVER"),
                token: str | None = typer.Option(None, "--token", envvar="GSVD_TOKEN")) -> None:
    import grpc

    from gsvd.clients.client import Client

    try:
        with Client(server, token) as c:
            v = c.load_voice(path, name, replace=replace)
            typer.echo(f"loaded {v.name} ({v.version})")
    except grpc.RpcError as exc:
        _rpc_error(exc)


@voices_app.command("unload")
def voices_unload(name: str = typer.Argument(...),
                  server: str = typer.Option("127.0.0.1:50051", "--server", envvar="GSVD_SERVER"),
                  token: str | None = typer.Option(None, "--token", envvar="GSVD_TOKEN")) -> None:
    import grpc

    from gsvd.clients.client import Client

    try:
        with Client(server, token) as c:
            c.unload_voice(name)
            typer.echo(f"unloaded {name}")
    except grpc.RpcError as exc:
        _rpc_error(exc)
