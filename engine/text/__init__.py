"""gsvd.engine.text: the text frontend (normalization, G2P, language segmentation,
sentence splitting, user lexicon, BERT features) producing upstream's phone ids.

Names load on first use so that `gsvd.engine.text.cli` (imported by the CLI) stays light.
"""

__all__ = ["Lexicon", "Phonemized", "TextFrontend", "split_text"]

_HOME = {"Lexicon": "lexicon", "Phonemized": "phonemize", "TextFrontend": "frontend", "split_text": "split"}


def __getattr__(name: str):
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"gsvd.engine.text.{_HOME[name]}"), name)
    raise AttributeError(f"module 'gsvd.engine.text' has no attribute {name!r}")
