"""Speaker consistency for `select`: one voice per run, the majority kept, the rest dropped with the reason.

Embeddings: the GE2E d-vector encoder of ``gsvd.engine.speaker_embed`` (resemblyzer's weights read from
its wheel, our own mel front end; it lives in the engine because the daemon's canary monitor uses it
too and the daemon must not import the trainer). This module re-exports its names and turns a missing
`resemblyzer` into the trainer's own error.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsvd.engine import speaker_embed as _embed
from gsvd.engine.errors import MissingModel
from gsvd.engine.speaker_embed import (  # noqa: F401  (re-exported: the trainer's speaker check API)
    MAX_WINDOWS,
    SpeakerEncoder,
    mel_frames,
)
from gsvd.trainer.records import TrainError

MERGE_SIM = 0.75  # average cosine at which two clusters are one speaker
MAJORITY = 0.6  # the kept speaker's share of the two largest clusters' seconds, below which we ask
REF_MIN_SIM = 0.6  # a --speaker-ref farther than this from every cluster matches none of them


def resemblyzer_weights() -> Path:
    """Where the installed `resemblyzer` wheel keeps its encoder weights (TrainError when absent)."""
    try:
        return _embed.resemblyzer_weights()
    except MissingModel:
        raise TrainError("the speaker check needs the `resemblyzer` package (its wheel carries the encoder "
                         "weights): pip install 'gsvd[train]'") from None


class DVectorEncoder(_embed.DVectorEncoder):
    """The engine's d-vector encoder; a missing `resemblyzer` is a TrainError saying what to install."""

    def __init__(self, weights: Path | None = None, batch: int = 256) -> None:
        super().__init__(weights or resemblyzer_weights(), batch)


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
