"""TextFrontend: text -> segments -> normalized text -> phones, ids and BERT features.

The per-sentence analysis (normalization, G2P, ids) is `phonemize.analyze` (torch-free; it may run in
worker processes, `text.pool`); this class adds the BERT features and the tensors. Thread-safe;
dictionaries load once per process on first use.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from gsvd.engine.text import phonemize as _ph
from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.phonemize import LANGUAGE_MODES, MAX_CHARS, Analysis, Part, Phonemized
from gsvd.engine.text.split import split_text

__all__ = ["LANGUAGE_MODES", "MAX_CHARS", "Analysis", "Part", "Phonemized", "TextFrontend"]
log = logging.getLogger(__name__)


class TextFrontend:
    def __init__(
        self,
        version: str = "v2",
        bert_folder: str | Path | None = None,
        device: str = "cpu",
        lexicon: Lexicon | None = None,
    ) -> None:
        self.version = version
        self.lexicon = lexicon
        self._bert_folder = Path(bert_folder) if bert_folder else None
        self._device = str(device)
        self._bert = None
        self._lock = threading.Lock()
        self._warned = False

    # -- splitting ------------------------------------------------------------

    def split(self, text: str, method: str = "auto") -> list[str]:
        return split_text(_ph.clean(text), method)

    # -- phones ---------------------------------------------------------------

    def lexicon_for(self, lexicon: Lexicon | None) -> Lexicon | None:
        """The frontend's lexicon with a per-voice one's entries over it."""
        return self.lexicon.merged(lexicon) if self.lexicon else lexicon

    def phonemize(self, text: str, language: str = "auto", lexicon: Lexicon | None = None) -> Phonemized:
        return _ph.phonemize(text, language, self.version, self.lexicon_for(lexicon))

    def analyze(self, text: str, language: str = "auto", lexicon: Lexicon | None = None) -> Analysis:
        return _ph.analyze(text, language, self.version, self.lexicon_for(lexicon))

    def words(self, text: str, language: str = "auto", lexicon: Lexicon | None = None) -> list[tuple[str, int]]:
        """(word, number of phones) in reading order: characters for zh, words for en, segments for ja."""
        return _ph.words_of(self.phonemize(text, language, lexicon))

    # -- model inputs ---------------------------------------------------------

    def features(self, text: str, language: str = "auto", lexicon: Lexicon | None = None):
        """-> (phone ids LongTensor [N], BERT FloatTensor [1024, N], normalized text)."""
        return self.features_of(self.analyze(text, language, lexicon))

    def features_of(self, analysis: Analysis):
        """The model inputs of an analyzed sentence (see `features`)."""
        ph = analysis.phonemized
        return torch.tensor(ph.phone_ids, dtype=torch.long), self._bert_for(ph), ph.norm_text

    def needs_bert(self, analysis: Analysis) -> bool:
        """Whether the sentence has a Mandarin part that gets BERT features (a RoBERTa folder is configured)."""
        return self._bert_folder is not None and any(_wants_bert(p) for p in analysis.phonemized.parts)

    def features_many(self, analyses: list[Analysis]) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
        """`features_of` for several sentences, the BERT features of all their Mandarin parts in padded
        batches (a few forward passes instead of one per sentence)."""
        bert = self._bert_model()
        wanted = [(k, j) for k, a in enumerate(analyses) for j, part in enumerate(a.phonemized.parts)
                  if bert is not None and _wants_bert(part)]
        done: list[dict[int, torch.Tensor]] = [{} for _ in analyses]  # per sentence: part index -> features
        if wanted:
            parts = [analyses[k].phonemized.parts[j] for k, j in wanted]
            for (k, j), feats in zip(wanted, bert.many([(p.norm_text, p.word2ph) for p in parts]), strict=True):
                done[k][j] = feats
        return [(torch.tensor(a.phonemized.phone_ids, dtype=torch.long), self._bert_for(a.phonemized, given),
                 a.phonemized.norm_text) for a, given in zip(analyses, done)]

    def _bert_for(self, ph: Phonemized, given: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """[1024, n_phones]: each Mandarin part's BERT features (from `given` by part index, else computed),
        zeros elsewhere."""
        blocks = []
        for j, part in enumerate(ph.parts):
            if given and j in given:
                blocks.append(given[j])
            elif _wants_bert(part) and self._bert_model() is not None:
                blocks.append(self._bert_model()(part.norm_text, part.word2ph))
            else:
                blocks.append(torch.zeros(1024, len(part.phones)))
        return torch.cat(blocks, dim=1) if blocks else torch.zeros(1024, 0)

    def _bert_model(self):
        if self._bert_folder is None:
            if not self._warned:
                self._warned = True
                log.warning("no chinese-roberta folder configured: BERT features are zeros (zh prosody suffers)")
            return None
        with self._lock:
            if self._bert is None:
                from gsvd.engine.text.bert import BertFeatures

                self._bert = BertFeatures.shared(self._bert_folder, self._device)
            return self._bert


def _wants_bert(part: Part) -> bool:
    return part.lang == "zh" and part.word2ph is not None
