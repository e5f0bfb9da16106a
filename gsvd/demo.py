"""`gsvd demo` / `make demo`: the main job end to end on an embedded default.

No pretrained weights ship with gsvd and nothing is downloaded, so the demo makes
a TINY RANDOM model in upstream GPT-SoVITS formats (.ckpt + .pth), a tiny HuBERT
and a synthetic reference clip, then runs the real pipeline on them: import ->
voice bundle -> engine -> streamed synthesis -> WAV. The audio is babble, not
speech; what the demo shows is that every stage runs, and how fast.
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
    import numpy as np

    from gsvd.engine import Engine, SynthesisOptions
    from gsvd.engine.audio import write_wav

    opts = SynthesisOptions(seed=1, top_k=15, max_new_tokens=75)
    with Engine(device="auto") as engine:
        v = engine.load_voice(voice)
        info = engine.info()
        console.print(f"3. engine up: backend {info['backend']} on {info['device']} ({info['dtype']}), voice {v.name!r}")
        t0 = time.perf_counter()
        first = None
        chunks = []
        for chunk in engine.stream(SENTENCE, v.name, opts):
            if first is None:
                first = time.perf_counter() - t0
            chunks.append(chunk.pcm)
        total = time.perf_counter() - t0
    pcm = np.concatenate(chunks)
    seconds = len(pcm) / 32000
    wav = write_wav(out / "demo.wav", pcm, 32000)
    console.print(f"4. streamed {SENTENCE!r}: {len(chunks)} chunks, first audio after {first * 1000:.0f} ms, "
                  f"{seconds:.2f} s of audio in {total:.2f} s (real-time factor {total / seconds:.3f})")
    console.print(f"5. wrote {wav}")
    return wav
