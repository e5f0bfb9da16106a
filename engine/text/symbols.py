"""Upstream's phone symbol tables (compatibility data): v1 (322 symbols) and v2 (732).

The lists are the sorted sets upstream builds from its initials, tonal finals,
Japanese, Korean and Cantonese symbols, punctuation and ARPAbet; ids are list
positions, so they must never be reordered. v1 ids are a prefix of v2's.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def symbols(version: str = "v2") -> tuple[str, ...]:
    name = "symbols_v1.txt" if version == "v1" else "symbols_v2.txt"
    text = resources.files("gsvd.engine.text").joinpath(name).read_text(encoding="utf-8")
    return tuple(line for line in text.split("\n") if line)


@cache
def symbol_ids(version: str = "v2") -> dict[str, int]:
    return {s: i for i, s in enumerate(symbols(version))}


def to_ids(phones: list[str], version: str = "v2") -> list[int]:
    """Phones -> ids; anything outside the table becomes UNK (as upstream's clean_text)."""
    table = symbol_ids(version)
    unk = table["UNK"]
    return [table.get(p, unk) for p in phones]
