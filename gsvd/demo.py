"""`gsvd demo` / `make demo`: the main job end to end on an embedded default.

No pretrained weights ship with gsvd and nothing is downloaded, so the demo makes
a TINY RANDOM model in upstream GPT-SoVITS formats (.ckpt + .pth), a tiny HuBERT
and a synthetic reference clip, then runs the real pipeline on them: import ->
voice bundle -> engine -> streamed synthesis -> WAV. The audio is babble, not
speech; what the demo shows is that every stage runs, and how fast. Then it starts the
gRPC daemon on a free loopback port and streams the sentence through the Python client.
"""

from __future__ import annotations

import time
from pathlib import Path

SENTENCE = "你好，欢迎使用 gsvd。This is a streaming demo."


def run_demo(out: Path) -> int:
    from rich.console import Console

    console = Console()
    console.print("[bold]gsvd demo[/bold]: no pretrained weights are available here, so this demo uses a "
                  "[bold yellow]tiny random model[/bold yellow]; the WAV will be babble, not speech.")
    out.mkdir(parents=True, exist_ok=True)
    voice = _make_voice(out, console)
    wav = _synthesize(voice, out, console)
    console.print(f"[green]done[/green]: play {wav}")
    return 0


def _make_voice(out: Path, console) -> Path:
    import numpy as np

    from gsvd.engine.audio import write_wav
    from gsvd.engine.testing.bundle import synthetic_clip
    from gsvd.engine.testing.gpt import write_tiny_gpt
    from gsvd.engine.testing.sovits import write_tiny_hubert, write_tiny_sovits
    from gsvd.engine.voice_import import BaseModelPaths, import_voice

    models = out / "models"
    gpt = write_tiny_gpt(models / "demo-e1.ckpt", seed=7)
    sovits = write_tiny_sovits(models / "demo_e1_s1.pth", "v2", seed=7)
    hubert = write_tiny_hubert(models / "tiny-hubert")
    ref = write_wav(out / "reference.wav", np.asarray(synthetic_clip(4.0), dtype=np.float32), 32000)
    console.print(f"1. wrote a tiny random GPT ({gpt.name}) and SoVITS v2 ({sovits.name}) in upstream formats, "
                  f"a tiny HuBERT and a 4 s synthetic reference clip under {models}")
    t0 = time.perf_counter()
    bundle = import_voice(out / "voices", "demo", gpt_path=gpt, sovits_path=sovits, ref_audio=ref,
                          ref_text="你好，世界。", ref_lang="zh", base=BaseModelPaths(hubert_folder=hubert),
                          consent={"statement": "synthetic demo voice, no real person"}, overwrite=True)
    console.print(f"2. imported them as voice bundle {bundle.path} ({time.perf_counter() - t0:.2f} s): "
                  "weights as safetensors, prompt tokens / spectrogram / phones cached")
    return bundle.path


def _synthesize(voice: Path, out: Path, console) -> Path:
    """Start the daemon on a free loopback port, stream the sentence through the Python client."""
    import asyncio
    import threading

    import numpy as np

    from gsvd.clients import Client
    from gsvd.daemon.config import DaemonConfig
    from gsvd.daemon.server import Daemon
    from gsvd.engine import Engine
    from gsvd.wavio import write_wav

    cfg = DaemonConfig.load(None, env={}, port=0, voices_dir=str(voice.parent), grace_s=2.0)
    engine = Engine(device="auto", max_streams=cfg.max_streams)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            holder["daemon"] = Daemon(engine, cfg)
            await holder["daemon"].start()
            ready.set()

        loop.create_task(boot())
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    if not ready.wait(120):
        raise RuntimeError("the daemon did not start")
    daemon = holder["daemon"]
    address = f"127.0.0.1:{daemon.port}"
    try:
        with Client(address) as client:
            info = client.info()
            console.print(f"3. daemon up on {address}: backend {info.backend} on {info.device} ({info.dtype}), "
                          f"voices {[v.name for v in client.voices()]}")
            t0 = time.perf_counter()
            first, chunks = None, []
            for chunk in client.stream(SENTENCE, voice.name, seed=1, max_new_tokens=75):
                first = first if first is not None else time.perf_counter() - t0
                chunks.append(chunk.pcm)
            total = time.perf_counter() - t0
    finally:
        asyncio.run_coroutine_threadsafe(daemon.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        engine.close()
    pcm = np.concatenate(chunks)
    seconds = len(pcm) / 32000
    wav = write_wav(out / "demo.wav", pcm, 32000)
    console.print(f"4. streamed {SENTENCE!r} over gRPC: {len(chunks)} chunks, first audio after {first * 1000:.0f} ms, "
                  f"{seconds:.2f} s of audio in {total:.2f} s (real-time factor {total / seconds:.3f}); daemon stopped")
    console.print(f"5. wrote {wav}")
    return wav
