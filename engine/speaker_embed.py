"""Speaker embeddings (d-vectors): who is speaking, as a 256-d unit vector, for checks that compare voices.

Two users: `gsvd train`'s speaker check (``gsvd.trainer.speaker``: one voice per run) and the daemon's
canary monitor (``gsvd.daemon.canary``: does a resident voice still sound like its reference?). The
daemon must not import the trainer, so the encoder lives here; it is loaded lazily, on the CPU.

The encoder is a GE2E d-vector (3-layer LSTM over 40-band mel frames, 256-d, L2-normed) with the
weights `resemblyzer` ships inside its wheel (`resemblyzer/pretrained.pt`, read from the installed
package's folder; no download). The package itself is not imported: its audio module needs
`webrtcvad`, which imports `pkg_resources`, gone from current setuptools. The front end here computes
what resemblyzer's does (librosa's power mel: 25 ms Hann window, 10 ms hop, zero-padded centre frames,
Slaney mel scale and area normalization) and is checked against librosa in the tests where librosa is
installed. A clip's embedding is the normalized mean of up to four 1.6 s windows spread over it, all
clips' windows in batched LSTM passes (four windows separate the seven LibriSpeech speakers as well as
resemblyzer's 50 %-overlapping windows, at a fraction of the cost).

Without `resemblyzer` installed (it comes with the `train` extra) `resemblyzer_weights` raises
`MissingModel`; callers that can do without (the canary) report the similarity as absent.
"""

from __future__ import annotations

import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np

from gsvd.engine.errors import MissingModel

RATE = 16000
N_FFT, HOP, N_MELS, WINDOW_FRAMES = 400, 160, 40, 160
MAX_WINDOWS = 4  # 1.6 s windows per clip, spread over it (cost: one LSTM pass of 160 frames each)


class SpeakerEncoder(Protocol):
    """Clips (16 kHz mono float32) -> L2-normalized speaker embeddings [n, d], in two steps so that the
    per-clip part runs while the clip is loaded anyway and the model runs once over all clips."""

    def features(self, wav16: np.ndarray, max_windows: int = ...) -> np.ndarray: ...

    def embed_features(self, feats: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """-> (clip embeddings [n, d], each clip's window embeddings [windows, d])."""
        ...

    def embed(self, wavs: list[np.ndarray]) -> np.ndarray: ...


def _slaney_mel(sr: int = RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Mel filterbank [n_mels, n_fft // 2 + 1]: Slaney's scale (linear to 1 kHz, log above), area-normalized."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, f / f_sp)

    def to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    edges = to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fdiff, ramps = np.diff(edges), edges[:, None] - bins[None, :]
    lower, upper = -ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


_MEL = _slaney_mel()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """Power mel spectrogram [frames, 40] as resemblyzer feeds its encoder (not log-compressed)."""
    x = np.pad(np.asarray(wav, np.float32), (N_FFT // 2, N_FFT // 2))
    count = 1 + (x.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:count] * _HANN
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return (power @ _MEL.T).astype(np.float32)


def windows(mel: np.ndarray, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Up to `MAX_WINDOWS` 1.6 s windows spread evenly over the clip (they overlap only in clips under
    6.4 s); a clip shorter than one window is zero-padded."""
    if mel.shape[0] <= WINDOW_FRAMES:
        return np.pad(mel, ((0, WINDOW_FRAMES - mel.shape[0]), (0, 0)))[None]
    count = max(1, min(max_windows, int(np.ceil(mel.shape[0] / WINDOW_FRAMES))))
    starts = np.linspace(0, mel.shape[0] - WINDOW_FRAMES, count).round().astype(int)
    return np.stack([mel[s:s + WINDOW_FRAMES] for s in starts])


def resemblyzer_weights() -> Path:
    """Where the installed `resemblyzer` wheel keeps its encoder weights (MissingModel when absent)."""
    spec = find_spec("resemblyzer")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise MissingModel("speaker embeddings need the `resemblyzer` package (its wheel carries the encoder "
                       "weights): pip install 'gsvd[train]'")


def available() -> bool:
    """True when the encoder's weights are installed."""
    try:
        resemblyzer_weights()
    except MissingModel:
        return False
    return True


class DVectorEncoder:
    """resemblyzer's GE2E encoder (its bundled weights) on CPU; thread-safe, loaded once per process.

    The LSTM runs on one intra-op thread: on the shared 2-core machine two OpenMP threads made the
    same 288 windows take 14.6-26.1 s instead of 3.6-3.9 s (and 4-7x the CPU time), spinning while
    other processes held the cores."""

    _shared: DVectorEncoder | None = None
    _lock = threading.Lock()

    def __init__(self, weights: Path | None = None, batch: int = 256) -> None:
        import torch

        state = torch.load(weights or resemblyzer_weights(), map_location="cpu", weights_only=True)["model_state"]
        self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.batch = batch
        self._run = threading.Lock()  # one pass at a time: the intra-op thread count is process-wide

    @classmethod
    def shared(cls) -> DVectorEncoder:
        with DVectorEncoder._lock:
            if cls.__dict__.get("_shared") is None:
                cls._shared = cls()
            return cls._shared

    def features(self, wav16: np.ndarray, max_windows: int = MAX_WINDOWS) -> np.ndarray:
        """The clip's encoder input: [windows, 160, 40] mel frames."""
        return windows(mel_frames(wav16), max_windows)

    def embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        return self.embed_features([self.features(w) for w in wavs])[0]

    def embed_features(self, feats: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        import torch

        if not feats:
            return np.zeros((0, 256), np.float32), []
        owner = np.repeat(np.arange(len(feats)), [f.shape[0] for f in feats])
        stacked = torch.from_numpy(np.concatenate(feats).astype(np.float32))
        outs = []
        with self._run:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # see the class docstring
            try:
                with torch.inference_mode():
                    for i in range(0, stacked.shape[0], self.batch):
                        _, (hidden, _) = self.lstm(stacked[i:i + self.batch])
                        e = torch.relu(self.linear(hidden[-1]))
                        outs.append(e / (e.norm(dim=1, keepdim=True) + 1e-9))
            finally:
                torch.set_num_threads(threads)
        parts = torch.cat(outs).numpy().astype(np.float64)
        sums = np.zeros((len(feats), parts.shape[1]), np.float64)
        np.add.at(sums, owner, parts)
        bounds = np.cumsum([0] + [f.shape[0] for f in feats])
        per_clip = [parts[a:b].astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return (sums / (np.linalg.norm(sums, axis=1, keepdims=True) + 1e-9)).astype(np.float32), per_clip


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (unit vectors from `embed`)."""
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
