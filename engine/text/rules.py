"""Named rewrite rules: how the zh, en and ja normalizers apply their ordered rule tables and record,
for `gsvd g2p --explain`, which rule rewrote what."""

from __future__ import annotations

import re
from collections.abc import Callable

Notes = list[tuple[str, str, str]]  # (rule, written, read)
Rule = tuple[str, "re.Pattern[str]", Callable[["re.Match[str]"], str]]


def apply(text: str, rules: list[Rule], notes: Notes | None = None, prefix: str = "") -> str:
    """Each rule in order over the whole text; with `notes`, every rewrite is appended to it."""
    for name, rx, fn in rules:
        text = rx.sub(fn if notes is None else _noted(prefix + name, fn, notes), text)
    return text


def _noted(name: str, fn: Callable[[re.Match[str]], str], notes: Notes) -> Callable[[re.Match[str]], str]:
    def run(m: re.Match[str]) -> str:
        out = fn(m)
        if out.strip() != m.group(0).strip() and out.strip():
            notes.append((name, m.group(0), out.strip()))
        return out

    return run
