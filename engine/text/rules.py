"""Named rewrite rules: how the zh, en and ja normalizers apply their ordered rule tables and record,
for `gsvd g2p --explain`, which rule rewrote what.

A rule may name the characters it needs (any one of them): it is skipped when none of them is in the
text as given. Rules only ever remove digits and symbols (they write words), so a character missing
from the input cannot be brought in by an earlier rule; the gate keeps a table of 50 rules about as
cheap as one of 20 on ordinary sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Notes = list[tuple[str, str, str]]  # (rule, written, read)
Rewrite = Callable[["re.Match[str]"], str]
Rule = tuple[str, "re.Pattern[str]", Rewrite] | tuple[str, "re.Pattern[str]", Rewrite, str]  # name, pattern, rewrite[, needs]

DIGITS = "0123456789"


def apply(text: str, rules: list[Rule], notes: Notes | None = None, prefix: str = "") -> str:
    """Each rule in order over the whole text; with `notes`, every rewrite is appended to it."""
    present = set(text)
    for rule in rules:
        if len(rule) == 4 and present.isdisjoint(rule[3]):
            continue
        name, rx, fn = rule[0], rule[1], rule[2]
        text = rx.sub(fn if notes is None else _noted(prefix + name, fn, notes), text)
    return text


def _noted(name: str, fn: Rewrite, notes: Notes) -> Rewrite:
    def run(m: re.Match[str]) -> str:
        out = fn(m)
        if out.strip() != m.group(0).strip() and out.strip():
            notes.append((name, m.group(0), out.strip()))
        return out

    return run
