"""Sample input for the demo and tests: a speech-like signal muxed into a video, with subtitles.

gsvd ships no recordings, so the demo makes its own "talker": vowel-like formant
synthesis (a harmonic source with a moving pitch, shaped by three formants) in
syllables, words and phrases separated by pauses. Silero VAD hears it as speech;
it is not language. `mux_video` writes any mono signal under a small test-pattern
video with PyAV (H.264 + AAC in mp4), which tests also use for real recorded speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gsvd.trainer.workspace import atomic_write_text

RATE = 16000
VOWELS = (  # (formant Hz, bandwidth Hz) x 3, roughly /a/ /i/ /o/ /u/ /e/
    ((700, 130), (1220, 150), (2600, 200)),
    ((300, 80), (2300, 150), (3000, 200)),
    ((500, 100), (900, 120), (2500, 200)),
    ((350, 90), (800, 120), (2400, 200)),
    ((450, 100), (1700, 150), (2600, 200)),
)
PHRASES = (
    "今天天气很好，我们一起去公园散步。",
    "这是一段用来测试声音克隆的示例语音。",
    "他每天早上都会喝一杯热茶。",
    "我们明天下午三点在学校门口见面。",
    "请把桌子上的书放回书架上。",
    "春天来了，花园里开满了鲜花。",
    "这个周末我打算在家里看电影。",
    "火车会在十分钟以后到达北京。",
)


def _syllable(rng: np.random.Generator, f0: float, dur: float) -> np.ndarray:
    n = int(dur * RATE)
    t = np.arange(n) / RATE
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    formants = VOWELS[rng.integers(len(VOWELS))]
    out = np.zeros(n)
    for h in range(1, 40):
        amp = sum(np.exp(-(((h * pitch) - f) / bw) ** 2) for f, bw in formants) + 1e-3
        out += amp * np.sin(h * phase) / np.sqrt(h)
    return out * np.sin(np.pi * np.linspace(0, 1, n)) ** 0.6


def synthetic_talker(n_phrases: int = 8, seed: int = 0, pause: float = 0.8) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """-> (float32 mono at 16 kHz, [(start s, end s, subtitle text)] per phrase)."""
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(110, 160)
    pieces, cues, t = [np.zeros(int(0.5 * RATE))], [], 0.5
    for i in range(n_phrases):
        text = PHRASES[i % len(PHRASES)]
        phrase = []
        for char in text:  # one syllable per character, as Mandarin is spoken: the cue's text fits its audio
            if char in "，。":
                phrase.append(np.zeros(int(RATE * rng.uniform(0.12, 0.25))))
                continue
            phrase.append(_syllable(rng, f0 * rng.uniform(0.9, 1.1), rng.uniform(0.17, 0.27)))
            phrase.append(rng.normal(0, 0.05, int(RATE * rng.uniform(0.03, 0.07))))
        audio = np.concatenate(phrase)
        cues.append((t, t + len(audio) / RATE, text))
        pieces += [audio, np.zeros(int(pause * RATE))]
        t += len(audio) / RATE + pause
    wav = np.concatenate(pieces)
    wav = wav / np.abs(wav).max() * 0.5 + rng.normal(0.0, 0.002, wav.size)  # room noise, as in any recording
    return wav.astype(np.float32), cues


def mux_video(path: str | Path, audio: np.ndarray, rate: int, fps: int = 5, size: tuple[int, int] = (64, 48)) -> Path:
    """Mono float audio under a moving test pattern: H.264 + AAC in an mp4 (written to a temp name, then renamed)."""
    import av

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{dest.suffix}")
    seconds = len(audio) / rate
    with av.open(str(tmp), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for i in range(int(seconds * fps) + 1):
            img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
            img[:, (i * 3) % size[0]] = 255
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for pkt in a.encode(frame):
                out.mux(pkt)
        for stream in (v, a):
            for pkt in stream.encode(None):
                out.mux(pkt)
    tmp.replace(dest)
    return dest


def write_srt(path: str | Path, cues: list[tuple[float, float, str]]) -> Path:
    def ts(x: float) -> str:
        ms = int(round(x * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = [f"{i}\n{ts(s)} --> {ts(e)}\n{text}\n" for i, (s, e, text) in enumerate(cues, 1)]
    return atomic_write_text(path, "\n".join(blocks))


def make_sample(folder: str | Path, n_phrases: int = 8, seed: int = 0) -> tuple[Path, Path]:
    """`<folder>/talker.mp4` + sidecar `talker.srt` (found by the transcribe stage by its stem)."""
    wav, cues = synthetic_talker(n_phrases, seed)
    folder = Path(folder)
    video = mux_video(folder / "talker.mp4", wav, RATE)
    return video, write_srt(folder / "talker.srt", cues)
