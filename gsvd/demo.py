"""`gsvd demo` / `make demo`: the main job end to end on an embedded default.

No pretrained weights or recordings ship with gsvd and nothing is downloaded, so the
demo generates a sample video (a synthetic talker with subtitles) and enrolls a voice
from it with `gsvd train`'s pipeline on a TINY RANDOM base model (extract -> VAD
segment -> select -> transcribe -> features -> fine-tune -> bundle). Then it starts the
gRPC daemon on a free loopback port, streams a sentence through the Python client and
writes a WAV. The audio is babble, not speech; the demo shows that every stage runs.
"""

from __future__ import annotations

import shlex
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
    voice = voice.resolve()
    console.print(f"The demo's voice bundle is {voice}; use it by name with its voices folder:", soft_wrap=True)
    for line in _usage(voice):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    return 0


def _usage(voice: Path) -> list[str]:
    """Commands that use the bundle at `voice` by its name."""
    folder = shlex.quote(str(voice.parent))
    return [f"gsvd synth --voices-dir {folder} --voice {voice.name} --text 'Hello there.' --out hello.wav",
            f"gsvd serve --voices-dir {folder}    # then: gsvd say 'Hello there.' --voice {voice.name} --out hello.wav"]


def _make_voice(out: Path, console) -> Path:
    """Enroll a voice with `gsvd train`'s pipeline from a sample video generated here."""
    from gsvd.trainer.pipeline import RunSettings, run_all
    from gsvd.trainer.sample_video import make_sample
    from gsvd.trainer.workspace import Workspace

    video, srt = make_sample(out / "input", n_phrases=8)
    console.print(f"1. generated a sample video {video} (a synthetic talker under a test pattern) with subtitles "
                  f"{srt.name}: gsvd ships no recordings")
    import shutil

    ws = Workspace(out / "run")
    ws.root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "voices" / "demo", ignore_errors=True)  # the demo's own output from an earlier run
    settings = RunSettings(name="demo", consent="synthetic demo voice, no real person", inputs=[str(video)],
                           from_scratch="tiny", epochs=2, gpt_epochs=2, save_every=2, batch_size=4,
                           device="cpu", min_seconds=5.0, voices_dir=str(out / "voices"))
    settings.save(ws)
    t0 = time.perf_counter()
    info = run_all(ws, settings, lambda msg: console.print("   " + msg, markup=False, highlight=False), force=True)
    console.print(f"2. `gsvd train` enrolled voice bundle {info['bundle']} in {time.perf_counter() - t0:.1f} s "
                  "(extract, VAD segment, select, subtitles, features, fine-tune, package)")
    return Path(info["bundle"])


def _synthesize(voice: Path, out: Path, console) -> Path:
    """Start the daemon on a free loopback port, stream the sentence through the Python client."""
    import numpy as np

    from gsvd.clients import Client
    from gsvd.daemon.background import serve_in_thread
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine
    from gsvd.wavio import measure_level, write_wav

    cfg = DaemonConfig.load(None, env={}, port=0, voices_dir=str(voice.parent), grace_s=2.0)
    engine = Engine(device="auto", max_streams=cfg.max_streams)
    running = serve_in_thread(engine, cfg, timeout=120)
    address = running.address
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
        running.stop()
    pcm = np.concatenate(chunks)
    seconds = len(pcm) / 32000
    wav = write_wav(out / "demo.wav", pcm, 32000)
    console.print(f"4. streamed {SENTENCE!r} over gRPC: {len(chunks)} chunks, first audio after {first * 1000:.0f} ms, "
                  f"{seconds:.2f} s of audio in {total:.2f} s (real-time factor {total / seconds:.3f}); daemon stopped")
    console.print(f"5. wrote {wav}: {measure_level(pcm, 32000).summary()}")
    return wav
