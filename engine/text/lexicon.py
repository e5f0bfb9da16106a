"""User pronunciation lexicon: word -> phones per language, from TOML or CSV.

TOML:  [en]\n"gsvd" = "JH IY1 EH1 S V IY1 D IY1"\n[zh]\n"重庆" = "ch ong2 q ing4"
CSV:   lang,word,phones   (one entry per line; '#' starts a comment)
Every phone must be in the symbol table; an unknown one is an error naming the
file and line. `reload()` re-reads the file (no restart needed).
"""

from __future__ import annotations

import csv
import threading
import tomllib
from pathlib import Path

from gsvd.engine.errors import InvalidInput
from gsvd.engine.text.symbols import symbol_ids

LANGS = ("zh", "en", "ja", "ko", "yue")


class Lexicon:
    def __init__(self, entries: dict[str, dict[str, list[str]]] | None = None, path: Path | None = None) -> None:
        self._entries = entries or {lang: {} for lang in LANGS}
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, version: str = "v2") -> Lexicon:
        p = Path(path)
        return cls(_read(p, version), p)

    def __getstate__(self) -> dict:  # pickled into frontend worker processes (text.pool): no lock
        with self._lock:
            return {"entries": self._entries, "path": self.path}

    def __setstate__(self, state: dict) -> None:
        self._entries, self.path, self._lock = state["entries"], state["path"], threading.Lock()

    def reload(self) -> None:
        if self.path is not None:
            fresh = _read(self.path, "v2")
            with self._lock:
                self._entries = fresh

    def lookup(self, lang: str, word: str) -> list[str] | None:
        with self._lock:
            table = self._entries.get(lang, {})
            hit = table.get(word)
            return list(hit) if hit is not None else (list(table[word.lower()]) if word.lower() in table else None)

    def words(self, lang: str) -> list[str]:
        with self._lock:
            return sorted(self._entries.get(lang, {}), key=len, reverse=True)

    def merged(self, other: Lexicon | None) -> Lexicon:
        """A lexicon with `other`'s entries overriding this one's."""
        if other is None:
            return self
        out = {lang: dict(self._entries.get(lang, {})) for lang in LANGS}
        for lang in LANGS:
            out[lang].update(other._entries.get(lang, {}))
        return Lexicon(out)


def _read(path: Path, version: str) -> dict[str, dict[str, list[str]]]:
    if not path.is_file():
        raise InvalidInput(f"lexicon file not found: {path}", "lexicon")
    rows = _rows_toml(path) if path.suffix.lower() == ".toml" else _rows_csv(path)
    table = symbol_ids(version)
    entries: dict[str, dict[str, list[str]]] = {lang: {} for lang in LANGS}
    for line, lang, word, phones in rows:
        if lang not in LANGS:
            raise InvalidInput(f"{path}:{line}: unknown language {lang!r}", "lexicon")
        plist = phones.split()
        bad = [p for p in plist if p not in table]
        if not word or not plist:
            raise InvalidInput(f"{path}:{line}: empty word or phones", "lexicon")
        if bad:
            raise InvalidInput(f"{path}:{line}: unknown phone symbol(s) {', '.join(bad)} for {word!r}", "lexicon")
        if lang == "zh" and len(plist) != 2 * len(word):
            raise InvalidInput(f"{path}:{line}: a Chinese entry needs 2 phones per character", "lexicon")
        entries[lang][word] = plist
    return entries


def _rows_toml(path: Path):
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})", "lexicon") from None
    lines = text.splitlines()
    for lang, table in data.items():
        if not isinstance(table, dict):
            raise InvalidInput(f"{path}: top-level entries must be language tables like [en]", "lexicon")
        for word, phones in table.items():
            line = next((i + 1 for i, s in enumerate(lines) if s.strip().startswith((f'"{word}"', f"{word} ", f"{word}="))), 0)
            yield line, lang, str(word), str(phones)


def _rows_csv(path: Path):
    with path.open(encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row or row[0].strip().startswith("#"):
                continue
            if len(row) != 3:
                raise InvalidInput(f"{path}:{i}: expected 3 columns lang,word,phones", "lexicon")
            yield i, row[0].strip(), row[1].strip(), row[2].strip()
