"""English words outside CMUdict: g2p-en's learned grapheme-to-phoneme model (a GRU encoder-decoder
whose weights ship inside the g2p-en wheel), run here with numpy.

Why not `import g2p_en`: its module imports nltk and downloads the tagger and CMUdict at import time,
which this offline frontend must never do. We only read the wheel's weight file, located without
importing the package. Upstream GPT-SoVITS uses the same model for its out-of-vocabulary words.
"""

from __future__ import annotations

import functools
import threading
from importlib import util
from pathlib import Path

_GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
_PHONEMES = ["<pad>", "<unk>", "<s>", "</s>", "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1",
             "AO2", "AW0", "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1",
             "ER2", "EY0", "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M",
             "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2",
             "UW", "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH"]
_MAX_PHONES = 24
_lock = threading.Lock()
_weights: dict | None = None


def available() -> bool:
    return _weight_file() is not None


@functools.cache
def _weight_file() -> Path | None:
    spec = util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "checkpoint20.npz"
    return path if path.is_file() else None


def _load() -> dict:
    global _weights
    with _lock:
        if _weights is None:
            import numpy as np

            with np.load(_weight_file()) as z:
                _weights = {k: z[k].astype(np.float32) for k in z.files}
        return _weights


def _gru(x, h, w_ih, w_hh, b_ih, b_hh):
    import numpy as np

    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    n = h.shape[-1]
    r = 1.0 / (1.0 + np.exp(-(gi[:, :n] + gh[:, :n])))
    z = 1.0 / (1.0 + np.exp(-(gi[:, n : 2 * n] + gh[:, n : 2 * n])))
    cand = np.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :])
    return (1.0 - z) * cand + z * h


@functools.lru_cache(maxsize=4096)
def predict(word: str) -> tuple[str, ...]:
    """Lower-case letters -> ARPAbet phones with stress (greedy decoding); () if the model is absent."""
    if _weight_file() is None or not word:
        return ()
    import numpy as np

    w = _load()
    idx = {g: i for i, g in enumerate(_GRAPHEMES)}
    ids = [idx.get(c, 1) for c in word.lower()[:40]] + [2]
    h = np.zeros((1, w["enc_w_hh"].shape[1]), np.float32)
    for i in ids:
        h = _gru(w["enc_emb"][[i]], h, w["enc_w_ih"], w["enc_w_hh"], w["enc_b_ih"], w["enc_b_hh"])
    out: list[str] = []
    prev = 2  # <s>
    for _ in range(_MAX_PHONES):
        h = _gru(w["dec_emb"][[prev]], h, w["dec_w_ih"], w["dec_w_hh"], w["dec_b_ih"], w["dec_b_hh"])
        prev = int(np.argmax(h @ w["fc_w"].T + w["fc_b"]))
        if prev == 3:  # </s>
            break
        if prev > 3:
            out.append("UW1" if _PHONEMES[prev] == "UW" else _PHONEMES[prev])
    return tuple(out)
