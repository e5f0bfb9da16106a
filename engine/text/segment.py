"""Language segmentation by script, with inline tags that override it.

Tags: `<en>...</en>` (any of zh/en/ja/ko/yue) or `[ja]...` (until the next tag).
Untagged text is split into runs of one script; Han runs are Japanese when the
text has kana (or the mode forces ja), else Chinese; digits and punctuation join
the run before them (or the next one at the start).
"""

from __future__ import annotations

import re

TAG_LANGS = ("zh", "en", "ja", "ko", "yue")
_TAG_RE = re.compile(r"<(zh|en|ja|ko|yue)>(.*?)</\1>|\[(zh|en|ja|ko|yue)\]", re.S)


def _script(ch: str) -> str | None:
    o = ord(ch)
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "ko"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or ch in "々〆":
        return "han"
    if ch.isascii() and ch.isalpha() or 0xFF21 <= o <= 0xFF5A:
        return "en"
    return None  # digits, punctuation, spaces, anything else: neutral


def split_tags(text: str) -> list[tuple[str | None, str]]:
    """-> [(forced language or None, text)] in order."""
    out: list[tuple[str | None, str]] = []
    pos = 0
    current: str | None = None
    for m in _TAG_RE.finditer(text):
        if m.start() > pos:
            out.append((current, text[pos : m.start()]))
        if m.group(1):
            out.append((m.group(1), m.group(2)))
            current = None
        else:
            current = m.group(3)
        pos = m.end()
    if pos < len(text):
        out.append((current, text[pos:]))
    return [(lang, t) for lang, t in out if t]


def by_script(text: str, mode: str) -> list[tuple[str, str]]:
    """Untagged text -> [(lang, text)] by script; mode is the requested language."""
    if mode in ("en", "auto") and text.isascii() and any(c.isalpha() for c in text):
        return [("en", text)]  # Latin letters, digits and punctuation only: one English run (fast path)
    has_kana = any(_script(c) == "kana" for c in text)
    han_lang = "ja" if mode in ("ja", "all_ja") or (mode in ("auto", "auto_yue") and has_kana) else "zh"
    if mode in ("yue", "all_yue", "auto_yue"):
        han_lang = "yue"
    runs: list[list] = []
    pending = ""
    for ch in text:
        s = _script(ch)
        lang = {"kana": "ja", "ko": "ko", "han": han_lang, "en": "en"}.get(s) if s else None
        if lang is None:
            if runs:
                runs[-1][1] += ch
            else:
                pending += ch
            continue
        if runs and runs[-1][0] == lang:
            runs[-1][1] += ch
        else:
            runs.append([lang, pending + ch])
            pending = ""
    if pending and not runs:
        fallback = {"all_zh": "zh", "all_ja": "ja", "all_ko": "ko", "all_yue": "yue"}.get(mode, mode)
        runs.append([fallback if fallback in TAG_LANGS else "en", pending])
    if mode == "en":
        return [("en", text)]
    return [(lang, t) for lang, t in runs]


def segment(text: str, mode: str = "auto") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for forced, chunk in split_tags(text):
        parts = [(forced, chunk)] if forced else by_script(chunk, mode)
        for lang, t in parts:
            if out and out[-1][0] == lang:
                out[-1] = (lang, out[-1][1] + t)
            else:
                out.append((lang, t))
    return out
