"""`gsvd serve`: the gRPC daemon (and its HTTP/WebSocket gateway)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    config: Path | None = typer.Option(
        None, "--config", help="TOML file; its \\[serve] table is read (env GSVD_* and flags override it)."),
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port 1-65535 (default 50051; 0 picks a free one)."),
    voices_dir: str | None = typer.Option(None, "--voices-dir", help="Folder of voice bundles loaded at start."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda, cuda:N."),
    max_streams: int | None = typer.Option(None, "--max-streams", help="Concurrent streams."),
    token: str | None = typer.Option(
        None, help="Require 'authorization: Bearer TOKEN' (visible in ps: prefer --token-file or GSVD_TOKEN)."),
    admin_token: str | None = typer.Option(
        None, "--admin-token", help="Token for LoadVoice/UnloadVoice (without it: --token; env GSVD_ADMIN_TOKEN)."),
    token_file: str | None = typer.Option(None, "--token-file", help="Read the token from this file."),
    admin_token_file: str | None = typer.Option(None, "--admin-token-file", help="Read the admin token from this file."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Open LoadVoice/UnloadVoice without a token (loopback binds only; logged)."),
    tls_cert: str | None = typer.Option(None, "--tls-cert", help="PEM certificate (gRPC and the HTTP gateway)."),
    tls_key: str | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    tls_client_ca: str | None = typer.Option(None, "--tls-client-ca", help="Require client certificates (mTLS)."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on this port."),
    http_port: int | None = typer.Option(None, "--http-port", help="HTTP/WebSocket gateway port (-1 off, 0 any); "
                                         "the web console is at its /."),
    runs_dir: str | None = typer.Option(None, "--runs-dir", help="Folder of `gsvd train` runs the console shows."),
    allowed_origins: str | None = typer.Option(
        None, "--allowed-origins", help="Comma-separated origins (https://app.example) whose web pages may call the "
        "HTTP gateway from a browser; other sites' pages are refused (403). '*': any."),
    grace: float | None = typer.Option(None, "--grace", help="Seconds streams in flight get to finish on SIGTERM "
                                       "(new requests are refused at once); then they are cancelled."),
    frontend_workers: int | None = typer.Option(
        None, "--frontend-workers", help="Processes for the text analysis of concurrent requests (-1: half the "
        "cores up to 8 on a GPU, none on CPU)."),
    gpu_memory_fraction: float | None = typer.Option(
        None, "--gpu-memory-fraction", help="Share of the GPU's memory for model weights and the KV pool (default "
        "0.9); loading past it moves idle models to host memory, least recently used first."),
    gpu_memory_gib: float | None = typer.Option(
        None, "--gpu-memory-gib", help="The same budget in GiB (overrides --gpu-memory-fraction)."),
    kv_cache_gib: float | None = typer.Option(
        None, "--kv-cache-gib", help="GiB of the KV pool all models share (default: --max-streams slots, within "
        "3/4 of the budget)."),
    pin: list[str] | None = typer.Option(
        None, "--pin", metavar="VOICE", help="A voice whose model is never evicted from the GPU (repeatable; or comma-separated)."),
    allow_unconsented_voices: bool = typer.Option(
        False, "--allow-unconsented-voices", help="Load voices that carry no consent record (logged as a warning)."),
    audit_log: str | None = typer.Option(
        None, "--audit-log", help="JSON-lines audit log of voice loads/unloads and admin calls (rotated)."),
    audit_log_max_mb: float | None = typer.Option(None, "--audit-log-max-mb", help="Rotate the audit log at this size."),
    audit_log_backups: int | None = typer.Option(None, "--audit-log-backups", help="Rotated audit logs kept."),
    watermark: bool | None = typer.Option(
        None, "--watermark/--no-watermark", help="Mark every stream with the inaudible watermark (and say so in "
        "its label)."),
    watermark_key_file: str | None = typer.Option(
        None, "--watermark-key-file", help="The watermark's private key (default: the public key)."),
    watermark_daemon_id: int | None = typer.Option(
        None, "--watermark-daemon-id", help="0-255: this daemon's id in the watermark's payload."),
    label_producer: str | None = typer.Option(
        None, "--label-producer", help="Your service-provider code in every output's label (GB 45438)."),
    sign_cert: str | None = typer.Option(
        None, "--sign-cert", help="C2PA certificate chain (PEM): sign WAV answers of /v1/audio/speech."),
    sign_key: str | None = typer.Option(None, "--sign-key", help="Private key of --sign-cert (PEM)."),
    canary_interval_s: float | None = typer.Option(
        None, "--canary-interval-s", help="Every resident voice speaks the canary sentences this often (0 off)."),
    canary_below_streams: int | None = typer.Option(
        None, "--canary-below-streams", help="The canary speaks only while fewer client streams are active."),
) -> None:
    """Serve voices over gRPC (gsvd.v1.Synthesizer, health, reflection)."""
    import asyncio

    from rich.console import Console
    from rich.markup import escape

    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine, GsvdError
    from gsvd.engine.paths import voices_dir as default_voices

    err = Console(stderr=True)
    try:
        cfg = DaemonConfig.load(config, host=host, port=port, voices_dir=voices_dir, device=device,
                                max_streams=max_streams, token=token, admin_token=admin_token, token_file=token_file,
                                admin_token_file=admin_token_file, no_auth=no_auth or None, tls_cert=tls_cert,
                                tls_key=tls_key, tls_client_ca=tls_client_ca, metrics_port=metrics_port,
                                http_port=http_port, runs_dir=runs_dir, allowed_origins=allowed_origins,
                                frontend_workers=frontend_workers,
                                grace_s=grace, pin_voices=",".join(pin) if pin else None,
                                gpu_memory_fraction=gpu_memory_fraction, gpu_memory_gib=gpu_memory_gib,
                                kv_cache_gib=kv_cache_gib, allow_unconsented_voices=allow_unconsented_voices or None,
                                audit_log=audit_log, audit_log_max_mb=audit_log_max_mb,
                                audit_log_backups=audit_log_backups, watermark=watermark,
                                watermark_key_file=watermark_key_file, watermark_daemon_id=watermark_daemon_id,
                                label_producer=label_producer, sign_cert=sign_cert, sign_key=sign_key,
                                canary_interval_s=canary_interval_s, canary_below_streams=canary_below_streams)
        cfg.voices_dir = cfg.voices_dir or str(default_voices())
        from gsvd.daemon.server import Daemon

        engine = Engine(runtime=cfg.runtime(), bert_folder=cfg.bert_folder or None, hubert_folder=cfg.hubert_folder or None,
                        sv_model=cfg.sv_model or None, frontend_workers=cfg.engine_frontend_workers(),
                        pinned_voices=cfg.pinned_voices(), watermark=cfg.watermark_config())

        async def main() -> None:
            daemon = Daemon(engine, cfg)  # grpc.aio objects must be made inside the running loop
            print(f"gsvd serving on {cfg.host}:{daemon.port}", flush=True)
            await daemon.run_forever()

        try:
            asyncio.run(main())
        finally:
            engine.close()
    except (GsvdError, OSError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=2) from None
