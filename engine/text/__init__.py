"""gsvd.engine.text: the text frontend (normalization, G2P, language segmentation,
sentence splitting, user lexicon, BERT features) producing upstream's phone ids."""

from gsvd.engine.text.frontend import Phonemized, TextFrontend
from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.split import split_text

__all__ = ["Lexicon", "Phonemized", "TextFrontend", "split_text"]
