"""TextFrontend: text -> segments -> normalized text -> phones, ids and BERT features.

Thread-safe; dictionaries load once per process on first use.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gsvd.engine.errors import InvalidInput, LanguageNotAvailable
from gsvd.engine.text import en, ja, zh
from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.segment import segment
from gsvd.engine.text.split import split_text
from gsvd.engine.text.symbols import to_ids

log = logging.getLogger(__name__)
LANGUAGE_MODES = ("auto", "zh", "en", "ja", "ko", "yue", "all_zh", "all_ja", "all_ko", "all_yue", "auto_yue")
MAX_CHARS = 100_000


@dataclass
class Part:
    """One language segment of the text."""

    lang: str
    text: str
    norm_text: str
    phones: list[str]
    word2ph: list[int] | None  # zh only: phones per normalized character


@dataclass
class Phonemized:
    phones: list[str]
    phone_ids: list[int]
    norm_text: str
    parts: list[Part] = field(default_factory=list)

    @property
    def segments(self) -> list[tuple[str, str]]:
        return [(p.lang, p.text) for p in self.parts]

    @property
    def word2ph(self) -> list[int] | None:
        if all(p.word2ph is not None for p in self.parts):
            return [n for p in self.parts for n in p.word2ph]
        return None


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
        self._bert = None
        self._device = device if not str(device).startswith("cuda") else device
        self._lock = threading.Lock()
        self._warned = False

    # -- splitting ------------------------------------------------------------

    def split(self, text: str, method: str = "auto") -> list[str]:
        return split_text(_clean(text), method)

    # -- phones ---------------------------------------------------------------

    def phonemize(self, text: str, language: str = "auto", lexicon: Lexicon | None = None) -> Phonemized:
        if language not in LANGUAGE_MODES:
            raise InvalidInput(f"language must be one of {', '.join(LANGUAGE_MODES)}; got {language!r}", "language")
        text = _clean(text)
        if len(text) > MAX_CHARS:
            raise InvalidInput(f"text is {len(text)} characters; the frontend limit is {MAX_CHARS}", "text")
        lex = (self.lexicon.merged(lexicon) if self.lexicon else lexicon)
        if _reads_as_chinese(text, language):
            from gsvd.engine.text.normalize_zh import normalize_symbols

            text = normalize_symbols(text)  # units/times/currency become Han before script segmentation
        parts = [self._part(lang, chunk, lex) for lang, chunk in segment(text, language)]
        parts = [p for p in parts if p.phones]
        phones = [ph for p in parts for ph in p.phones]
        return Phonemized(phones, to_ids(phones, self.version), "".join(p.norm_text for p in parts), parts)

    def _part(self, lang: str, chunk: str, lex: Lexicon | None) -> Part:
        if lang == "zh":
            norm = zh.normalize(chunk)
            phones, w2p = _with_lexicon_zh(norm, lex) if lex else zh.g2p(norm)
            return Part("zh", chunk, norm, phones, w2p)
        if lang == "en":
            norm = en.normalize(chunk)
            return Part("en", chunk, norm, _with_lexicon_en(norm, lex) if lex else en.g2p(norm), None)
        if lang == "ja":
            norm = ja.normalize(chunk)
            return Part("ja", chunk, norm, ja.g2p(norm), None)
        pkg = {"ko": "g2pk2 (Korean)", "yue": "ToJyutping (Cantonese)"}.get(lang, lang)
        raise LanguageNotAvailable(f"language not available: {lang} text needs {pkg}, which gsvd does not bundle yet")

    def words(self, text: str, language: str = "auto", lexicon: Lexicon | None = None) -> list[tuple[str, int]]:
        """(word, number of phones) in reading order: characters for zh, words for en, segments for ja.

        Used to estimate word timings from a segment's audio length (the model has no durations).
        """
        out: list[tuple[str, int]] = []
        for part in self.phonemize(text, language, lexicon).parts:
            if part.lang == "zh" and part.word2ph is not None:
                out += [(ch, n) for ch, n in zip(part.norm_text, part.word2ph, strict=False) if ch.isalnum()]
            elif part.lang == "en":
                out += [(w, len(en.g2p(w))) for w in part.norm_text.split() if en.g2p(w)]
            else:
                out.append((part.norm_text, len(part.phones)))
        return [(w, n) for w, n in out if n > 0]

    # -- model inputs ---------------------------------------------------------

    def features(self, text: str, language: str = "auto", lexicon: Lexicon | None = None):
        """-> (phone ids LongTensor [N], BERT FloatTensor [1024, N], normalized text)."""
        ph = self.phonemize(text, language, lexicon)
        if 0 < len(ph.phones) < 6 and not text.startswith("."):
            ph = self.phonemize("." + text, language, lexicon)  # upstream: pad very short inputs
        ids = torch.tensor(ph.phone_ids, dtype=torch.long)
        return ids, self._bert_for(ph), ph.norm_text

    def _bert_for(self, ph: Phonemized) -> torch.Tensor:
        blocks = []
        for part in ph.parts:
            n = len(part.phones)
            if part.lang == "zh" and part.word2ph is not None and self._bert_model() is not None:
                blocks.append(self._bert_model()(part.norm_text, part.word2ph))
            else:
                blocks.append(torch.zeros(1024, n))
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

                self._bert = BertFeatures(self._bert_folder, "cpu")
            return self._bert


def _reads_as_chinese(text: str, language: str) -> bool:
    if language in ("zh", "all_zh"):
        return True
    if language != "auto":
        return False
    has_han = any("\u4e00" <= c <= "\u9fff" for c in text)
    has_kana = any("\u3040" <= c <= "\u30ff" for c in text)
    return has_han and not has_kana


def _clean(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", "text")
    text = unicodedata.normalize("NFKC", text) if any(0xFF01 <= ord(c) <= 0xFF5E for c in text) else text
    return "".join(c if (c.isprintable() or c == "\n") else " " for c in text)


def _with_lexicon_en(norm: str, lex: Lexicon) -> list[str]:
    import re

    out: list[str] = []
    for tok in re.findall(r"[A-Za-z']+|[,.!?;:…\-—]", norm):
        hit = lex.lookup("en", tok)
        out += hit if hit is not None else en.g2p(tok)
    return out


def _with_lexicon_zh(norm: str, lex: Lexicon) -> tuple[list[str], list[int]]:
    words = lex.words("zh")
    phones: list[str] = []
    w2p: list[int] = []
    i = 0
    rest = ""
    while i < len(norm):
        word = next((w for w in words if norm.startswith(w, i)), None)
        if word is None:
            rest += norm[i]
            i += 1
            continue
        if rest:
            p, w = zh.g2p(rest)
            phones, w2p, rest = phones + p, w2p + w, ""
        phones += lex.lookup("zh", word)
        w2p += [2] * len(word)
        i += len(word)
    if rest:
        p, w = zh.g2p(rest)
        phones, w2p = phones + p, w2p + w
    return phones, w2p
