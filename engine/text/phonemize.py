"""Text -> language segments -> normalized text -> phones and phone ids, without torch.

`analyze` is everything the text frontend does per sentence except BERT: pure Python, so that it can
run in worker processes (`text.pool`) as well as inline. `frontend.TextFrontend` adds the BERT
features and the tensors.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from gsvd.engine.errors import InvalidInput, LanguageNotAvailable
from gsvd.engine.text import en, ja, zh
from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.segment import segment
from gsvd.engine.text.symbols import to_ids

LANGUAGE_MODES = ("auto", "zh", "en", "ja", "ko", "yue", "all_zh", "all_ja", "all_ko", "all_yue", "auto_yue")
MAX_CHARS = 100_000
MIN_PHONES = 6  # upstream pads shorter inputs with a leading "."


@dataclass
class WordReading:
    """One word of a part as `gsvd g2p` shows it: its phones and the dictionary or rule behind them."""

    text: str
    phones: list[str]
    source: str


@dataclass
class Part:
    """One language segment of the text."""

    lang: str
    text: str
    norm_text: str
    phones: list[str]
    word2ph: list[int] | None  # zh only: phones per normalized character
    words: list[WordReading] = field(default_factory=list)  # zh/en; filled when explaining
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # normalization rules: (rule, written, read)


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


@dataclass
class Analysis:
    """A sentence ready for the model: its phones (padded as upstream pads short inputs) and its words."""

    phonemized: Phonemized
    words: list[tuple[str, int]]  # (word, phones) in reading order, of the text as given (no padding)


def analyze(text: str, language: str, version: str = "v2", lexicon: Lexicon | None = None) -> Analysis:
    ph = phonemize(text, language, version, lexicon)
    words = words_of(ph)
    if 0 < len(ph.phones) < MIN_PHONES and not text.startswith("."):
        ph = phonemize("." + text, language, version, lexicon)
    return Analysis(ph, words)


def phonemize(text: str, language: str = "auto", version: str = "v2", lexicon: Lexicon | None = None,
              explain: bool = False) -> Phonemized:
    """Text -> phones and ids; `explain` also fills each part's words and normalization notes."""
    if language not in LANGUAGE_MODES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGE_MODES)}; got {language!r}", "language")
    text = clean(text)
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"text is {len(text)} characters; the frontend limit is {MAX_CHARS}", "text")
    notes: list[tuple[str, str, str]] = []
    if _reads_as_chinese(text, language):
        from gsvd.engine.text.normalize_zh import normalize_symbols

        text = normalize_symbols(text, notes if explain else None)  # numbers become Han before segmentation
    elif _reads_as_japanese(text, language):
        text = ja.normalize(text, notes if explain else None)  # units and symbols become kana first
    parts = [_part(lang, chunk, lexicon, explain) for lang, chunk in segment(text, language)]
    if parts and notes:
        parts[0].notes[:0] = notes
    parts = [p for p in parts if p.phones]
    phones = [ph for p in parts for ph in p.phones]
    return Phonemized(phones, to_ids(phones, version), "".join(p.norm_text for p in parts), parts)


def words_of(ph: Phonemized) -> list[tuple[str, int]]:
    """(word, number of phones) in reading order: characters for zh, words for en, segments for ja.

    Used to estimate word timings from a segment's audio length (the model has no durations).
    """
    out: list[tuple[str, int]] = []
    for part in ph.parts:
        if part.lang == "zh" and part.word2ph is not None:
            out += [(ch, n) for ch, n in zip(part.norm_text, part.word2ph, strict=False) if ch.isalnum()]
        elif part.lang == "en":
            out += [(w, len(en.g2p(w))) for w in part.norm_text.split()]
        else:
            out.append((part.norm_text, len(part.phones)))
    return [(w, n) for w, n in out if n > 0]


def clean(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", "text")
    text = unicodedata.normalize("NFKC", text) if any(0xFF01 <= ord(c) <= 0xFF5E for c in text) else text
    return "".join(c if (c.isprintable() or c == "\n") else " " for c in text)


def _part(lang: str, chunk: str, lex: Lexicon | None, explain: bool = False) -> Part:
    notes: list[tuple[str, str, str]] | None = [] if explain else None
    if lang == "zh":
        norm = zh.normalize(chunk, notes)
        if lex:
            phones, w2p = _with_lexicon_zh(norm, lex)
            words = [WordReading(norm, phones, "user lexicon + rules")] if explain else []
        else:
            analyzed = zh.analyze(norm)
            per_char = [ph for w in analyzed for ph in zh.phones_of(w)]
            phones, w2p = [p for ph in per_char for p in ph], [len(ph) for ph in per_char]
            words = [_zh_word(w) for w in analyzed] if explain else []
        return Part("zh", chunk, norm, phones, w2p, words, notes or [])
    if lang == "en":
        norm = en.normalize(chunk, notes)
        read = en.analyze(norm, (lambda w: lex.lookup("en", w)) if lex else None)
        words = [WordReading(t, p, src) for t, p, src in read] if explain else []
        return Part("en", chunk, norm, [p for _, ph, _ in read for p in ph], None, words, notes or [])
    if lang == "ja":
        norm = ja.normalize(chunk, notes)
        words = [WordReading(s, [], f"OpenJTalk reading {r}") for s, r in ja.words(norm)] if explain else []
        return Part("ja", chunk, norm, ja.g2p(norm), None, words, notes or [])
    pkg = {"ko": "g2pk2 (Korean)", "yue": "ToJyutping (Cantonese)"}.get(lang, lang)
    raise LanguageNotAvailable(f"language not available: {lang} text needs {pkg}, which gsvd does not bundle yet")


def _reads_as_chinese(text: str, language: str) -> bool:
    if language in ("zh", "all_zh"):
        return True
    if language != "auto" or text.isascii():
        return False
    has_han = any("\u4e00" <= c <= "\u9fff" for c in text)
    has_kana = any("\u3040" <= c <= "\u30ff" for c in text)
    return has_han and not has_kana


def _zh_word(w: zh.Word) -> WordReading:
    source = f"jieba word ({w.pos}), {w.source}" + ("; " + "; ".join(w.rules) if w.rules else "")
    return WordReading(w.text, [p for ph in zh.phones_of(w) for p in ph], source)


def _reads_as_japanese(text: str, language: str) -> bool:
    if language in ("ja", "all_ja"):
        return True
    return language == "auto" and not text.isascii() and any("\u3040" <= c <= "\u30ff" for c in text)


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
