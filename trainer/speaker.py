"""Speaker consistency for `select`: one voice per run, the majority kept, the rest dropped with the reason.

Embeddings: a GE2E d-vector (3-layer LSTM over 40-band mel frames, 256-d, L2-normed) with the
weights `resemblyzer` ships inside its wheel (`resemblyzer/pretrained.pt`, read from the
installed package's folder; no download). The package itself is not imported: its audio module
needs `webrtcvad`, which imports `pkg_resources`, gone from current setuptools. The front end
here computes what resemblyzer's does (librosa's power mel: 25 ms Hann window, 10 ms hop,
zero-padded centre frames, Slaney mel scale and area normalization) and is checked against
librosa in the tests where librosa is installed. A clip's embedding is the normalized mean of
up to four 1.6 s windows spread over it, all clips' windows in batched LSTM passes (four windows
separate the seven LibriSpeech speakers as well as resemblyzer's 50 %-overlapping windows, at a
fraction of the cost).

Clustering: average-linkage agglomeration (scipy) of the clips' cosine similarities, merging while
the two closest clusters average at least `MERGE_SIM`. Measured on the LibriSpeech speakers in
shared/ (3-10 s clips): the same speaker 0.78-0.95, two speakers 0.40-0.71. The cluster with
the most seconds is the voice unless `--speaker-ref` (an audio clip, or a time in an input)
names another; when the two largest clusters hold nearly the same seconds (the largest has less
than `MAJORITY` of their sum) and no reference was given, it is an error that asks for one.
The items clustered are parts of clips (a clip's subtitle cues, or its stretches of speech between
pauses), so that a clip made of two people's cues is seen as two voices and dropped, instead of
an average of both that may land in either cluster (single 1.6 s windows are too noisy for that:
measured 0.54-0.95 between windows of one clip, up to 0.72 across speakers).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np

from gsvd.trainer.records import TrainError

RATE = 16000
N_FFT, HOP, N_MELS, WINDOW_FRAMES = 400, 160, 40, 160
MAX_WINDOWS = 4  # 1.6 s windows per clip, spread over it (cost: one LSTM pass of 160 frames each)
MERGE_SIM = 0.75  # average cosine at which two clusters are one speaker
MAJORITY = 0.6  # the kept speaker's share of the two largest clusters' seconds, below which we ask
REF_MIN_SIM = 0.6  # a --speaker-ref farther than this from every cluster matches none of them


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


def _windows(mel: np.ndarray, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Up to `MAX_WINDOWS` 1.6 s windows spread evenly over the clip (they overlap only in clips under
    6.4 s); a clip shorter than one window is zero-padded."""
    if mel.shape[0] <= WINDOW_FRAMES:
        return np.pad(mel, ((0, WINDOW_FRAMES - mel.shape[0]), (0, 0)))[None]
    count = max(1, min(max_windows, int(np.ceil(mel.shape[0] / WINDOW_FRAMES))))
    starts = np.linspace(0, mel.shape[0] - WINDOW_FRAMES, count).round().astype(int)
    return np.stack([mel[s:s + WINDOW_FRAMES] for s in starts])


def resemblyzer_weights() -> Path:
    """Where the installed `resemblyzer` wheel keeps its encoder weights (TrainError when absent)."""
    spec = find_spec("resemblyzer")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise TrainError("the speaker check needs the `resemblyzer` package (its wheel carries the encoder "
                     "weights): pip install 'gsvd[train]'")


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

    @classmethod
    def shared(cls) -> DVectorEncoder:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def features(self, wav16: np.ndarray, max_windows: int = MAX_WINDOWS) -> np.ndarray:
        """The clip's encoder input: [windows, 160, 40] mel frames."""
        return _windows(mel_frames(wav16), max_windows)

    def embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        return self.embed_features([self.features(w) for w in wavs])[0]

    def embed_features(self, feats: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        import torch

        if not feats:
            return np.zeros((0, 256), np.float32), []
        owner = np.repeat(np.arange(len(feats)), [f.shape[0] for f in feats])
        stacked = torch.from_numpy(np.concatenate(feats).astype(np.float32))
        outs = []
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


# -- clustering ---------------------------------------------------------------------------


def cluster(sim: np.ndarray, threshold: float = MERGE_SIM) -> list[int]:
    """Average-linkage clusters of a cosine-similarity matrix (scipy), merged while the two closest clusters
    average at least `threshold`: a label per row (0, 1, ... in order of first appearance)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = sim.shape[0]
    if n < 2:
        return [0] * n
    dist = 1.0 - np.clip((sim + sim.T) / 2, -1.0, 1.0)
    np.fill_diagonal(dist, 0.0)
    raw = fcluster(linkage(squareform(dist, checks=False), method="average"), 1.0 - threshold, criterion="distance")
    first: dict[int, int] = {}
    return [first.setdefault(int(r), len(first)) for r in raw]


@dataclass
class SpeakerDecision:
    """Which clips are the voice: a cluster label per clip, the chosen label, and why."""

    ids: list[str]  # clips, or parts of clips ('<clip id>#<n>')
    labels: list[int]
    sim: np.ndarray  # [n, n] cosine similarities of the clips' embeddings
    chosen: int
    how: str  # "majority (...)", "--speaker-ref ...", "one speaker"
    seconds: dict[int, float] = field(default_factory=dict)  # per cluster
    ref_sim: list[float] | None = None  # each cluster's centroid vs the reference

    def kept(self, cid: str) -> bool:
        return self.labels[self.ids.index(cid)] == self.chosen

    def similarity_to_voice(self, cid: str) -> float:
        """Average similarity of a clip to the chosen speaker's other clips."""
        i = self.ids.index(cid)
        mates = [j for j, lab in enumerate(self.labels) if lab == self.chosen and j != i]
        return float(self.sim[i, mates].mean()) if mates else 1.0


def decide_speaker(ids: list[str], emb: np.ndarray, seconds: list[float], ref: np.ndarray | None = None,
                   ref_label: str = "") -> SpeakerDecision:
    """Cluster the items (clips or parts of clips) and choose the voice (see the module docstring)."""
    sim = np.clip(emb @ emb.T, -1.0, 1.0)
    labels = cluster(sim) if len(ids) >= 2 else [0] * len(ids)
    per: dict[int, float] = {}
    for lab, s in zip(labels, seconds, strict=True):
        per[lab] = per.get(lab, 0.0) + s
    order = sorted(per, key=lambda k: -per[k])
    if ref is not None:
        cents = {k: _centroid(emb, labels, k) for k in per}
        ref_sims = {k: float(cents[k] @ ref) for k in per}
        chosen = max(ref_sims, key=ref_sims.get)
        if ref_sims[chosen] < REF_MIN_SIM:
            raise TrainError(f"--speaker-ref {ref_label} sounds like none of the {len(per)} voice(s) found in the "
                             f"clips (best similarity {ref_sims[chosen]:.2f} < {REF_MIN_SIM}): give a clip or a "
                             "time where the wanted speaker talks")
        return SpeakerDecision(ids, labels, sim, chosen, f"--speaker-ref {ref_label} (similarity "
                               f"{ref_sims[chosen]:.2f})", per, [ref_sims[k] for k in sorted(per)])
    if len(order) == 1:
        return SpeakerDecision(ids, labels, sim, order[0], "one speaker", per)
    first, second = per[order[0]], per[order[1]]
    share = first / (first + second)
    decision = SpeakerDecision(ids, labels, sim, order[0], f"majority ({first:.1f} s of {first + second:.1f} s "
                               "in the two largest voices)", per)
    if share < MAJORITY:
        raise EvenSplit(decision, share)
    return decision


class EvenSplit(TrainError):
    """Two voices with nearly the same amount of speech: the user must say which one is wanted."""

    def __init__(self, decision: SpeakerDecision, share: float) -> None:
        counts = {k: decision.labels.count(k) for k in decision.seconds}
        top = sorted(decision.seconds, key=lambda k: -decision.seconds[k])[:2]
        desc = " and ".join(f"{counts[k]} pieces, {decision.seconds[k]:.1f} s" for k in top)
        super().__init__(f"the clips hold two voices of nearly equal length ({desc}; the larger has "
                         f"{share * 100:.0f}% < {MAJORITY * 100:.0f}%): say which is wanted with --speaker-ref "
                         "CLIP_OR_SECONDS (an audio clip of that speaker, or a time in the input where they talk, "
                         "e.g. 12.5, 1:02 or talk.mp4@1:02); see select/report.md")
        self.decision = decision


def _centroid(emb: np.ndarray, labels: list[int], k: int) -> np.ndarray:
    c = emb[[i for i, lab in enumerate(labels) if lab == k]].mean(axis=0)
    return c / (np.linalg.norm(c) + 1e-9)


# -- --speaker-ref ----------------------------------------------------------------------

_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)$")


def parse_time(text: str) -> float | None:
    """'12.5', '1:02', '1:02:03.5' -> seconds; None when it is not a time."""
    m = _TIME.match(text.strip())
    if m is None:
        return None
    a, b, s = m.groups()
    if a is not None and b is None:  # m:ss
        return int(a) * 60 + float(s)
    return int(a or 0) * 3600 + int(b or 0) * 60 + float(s)


def split_ref(ref: str, inputs: list[str]) -> tuple[Path | None, float | None]:
    """--speaker-ref -> (an audio file, None) or (the input it points into, seconds); TrainError when unclear."""
    ref = ref.strip()
    if not ref:
        raise TrainError("--speaker-ref is empty: give an audio clip or a time in the input (e.g. 12.5 or 1:02)")
    secs = parse_time(ref)
    if secs is not None:
        if len(inputs) != 1:
            raise TrainError(f"--speaker-ref {ref} is a time but there are {len(inputs)} inputs: write "
                             "FILE@TIME (e.g. talk.mp4@1:02)")
        return Path(inputs[0]), secs
    if "@" in ref:
        name, _, when = ref.rpartition("@")
        secs = parse_time(when)
        if secs is not None:
            hits = [p for p in inputs if Path(p).name == Path(name).name or Path(p) == Path(name).resolve()]
            if not hits:
                raise TrainError(f"--speaker-ref {ref}: {name} is not one of the inputs "
                                 f"({', '.join(Path(p).name for p in inputs)})")
            return Path(hits[0]), secs
    path = Path(ref)
    if not path.is_file():
        raise TrainError(f"--speaker-ref {ref}: no such file, and not a time like 12.5, 1:02 or talk.mp4@1:02")
    return path.resolve(), None
