"""English: normalization (numbers, dates, times, money, measures, ranges, abbreviations), CMUdict
lookup from the compiled trie (`text.store`), acronyms spelled, mixed-case words split, heteronyms by
a part-of-speech guess from the neighbouring words, and out-of-vocabulary words through g2p-en's
learned model (`text.en_oov`). Phones are ARPAbet with stress digits (upstream's set).

The part-of-speech guess is rule-based on purpose: the offline taggers that ship their data in a
wheel (spaCy models, flair) cost seconds of start-up, and nltk's tagger downloads its data at run
time. A heteronym is decided by the closed-class words around it (determiners, pronouns, modals,
prepositions, auxiliaries), which is what a tagger mostly looks at for these words too.
"""

from __future__ import annotations

import functools
import re

from gsvd.engine.text import en_oov, rules, store
from gsvd.engine.text.rules import Notes

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_LETTERS = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F", "g": "JH IY1", "h": "EY1 CH",
    "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L", "m": "EH1 M", "n": "EH1 N", "o": "OW1", "p": "P IY1",
    "q": "K Y UW1", "r": "AA1 R", "s": "EH1 S", "t": "T IY1", "u": "Y UW1", "v": "V IY1", "w": "D AH1 B AH0 L Y UW0",
    "x": "EH1 K S", "y": "W AY1", "z": "Z IY1",
}
_PUNCT = {",": ",", ".": ".", "!": "!", "?": "?", ";": ",", ":": ",", "…": "…", "-": "-", "—": "-"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "", ""), "₹": ("rupee", "rupees", "", ""),
               "₩": ("won", "won", "", "")}
_SCALE_WORDS = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million", "b": "billion",
                "B": "billion", "bn": "billion", "thousand": "thousand", "million": "million", "billion": "billion",
                "trillion": "trillion"}
_UNITS = {"km": ("kilometer", "kilometers"), "kg": ("kilogram", "kilograms"), "cm": ("centimeter", "centimeters"),
          "mm": ("millimeter", "millimeters"), "m": ("meter", "meters"), "mi": ("mile", "miles"),
          "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "ft": ("foot", "feet"), "in": ("inch", "inches"),
          "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour", "kilometers per hour"),
          "kmh": ("kilometer per hour", "kilometers per hour"), "ms": ("millisecond", "milliseconds"),
          "gb": ("gigabyte", "gigabytes"), "mb": ("megabyte", "megabytes"), "kb": ("kilobyte", "kilobytes"),
          "tb": ("terabyte", "terabytes"), "hz": ("hertz", "hertz"), "khz": ("kilohertz", "kilohertz"),
          "mhz": ("megahertz", "megahertz"), "ghz": ("gigahertz", "gigahertz"), "g": ("gram", "grams"),
          "mg": ("milligram", "milligrams"), "ml": ("milliliter", "milliliters"), "l": ("liter", "liters"),
          "oz": ("ounce", "ounces"), "°c": ("degree Celsius", "degrees Celsius"),
          "°f": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"), "kw": ("kilowatt", "kilowatts"),
          "kwh": ("kilowatt hour", "kilowatt hours"), "w": ("watt", "watts"), "v": ("volt", "volts"),
          "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"), "min": ("minute", "minutes"),
          "s": ("second", "seconds"), "sec": ("second", "seconds")}
# unit symbols read only right after a number; case-sensitive where a letter is also a word (in, m, s)
_UNIT_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(km/h|°C|°F|°|kWh|kW|km|kg|cm|mm|mg|ml|mi|lbs|lb|ft|mph|kmh|"
                      r"ms|GB|MB|KB|TB|kb|Hz|kHz|MHz|GHz|hrs|hr|min|sec|oz|g|m|l|L|h|s|W|V)(?![\w°])")
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miz", "prof": "professor", "jr": "junior", "sr": "senior",
                  "vs": "versus", "etc": "et cetera", "approx": "approximately", "dept": "department",
                  "inc": "incorporated", "ltd": "limited", "corp": "corporation", "co": "company", "mt": "mount",
                  "ave": "avenue", "rd": "road", "blvd": "boulevard", "ft": "fort", "gen": "general",
                  "capt": "captain", "lt": "lieutenant", "sgt": "sergeant", "gov": "governor", "sen": "senator",
                  "rep": "representative", "rev": "reverend", "est": "established", "fig": "figure",
                  "vol": "volume", "ch": "chapter", "pp": "pages", "p": "page", "min": "minutes", "hrs": "hours",
                  "jan": "January", "feb": "February", "mar": "March", "apr": "April", "jun": "June", "jul": "July",
                  "aug": "August", "sep": "September", "sept": "September", "oct": "October", "nov": "November",
                  "dec": "December", "ext": "extension", "mon": "Monday", "tue": "Tuesday", "tues": "Tuesday", "wed": "Wednesday",
                  "thu": "Thursday", "thurs": "Thursday", "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}
# all-caps words read as words, not letters
_WORD_ACRONYMS = {"NASA", "NATO", "UNESCO", "UNICEF", "LASER", "RADAR", "SCUBA", "COVID", "AIDS", "OPEC", "FIFA",
                  "IKEA", "PIN", "RAM", "ROM", "SIM", "LAN", "WAN", "SWAT", "ASAP", "GIF", "JPEG", "NAFTA", "SARS",
                  "LOL", "YOLO", "FOMO", "NIMBY", "OK", "TOEFL", "NASDAQ", "ISIS", "DARPA", "WASP", "POTUS",
                  "SCOTUS", "SONAR", "CAPTCHA", "EMOJI", "PDF"}
_SPELL_ALWAYS = {"OK", "PDF"}
_MAX_NUMBER = 10**15


def number_words(n: int) -> str:
    if n < 0:
        return "minus " + number_words(-n)
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


def digit_words(s: str) -> str:
    return " ".join(_ONES[int(d)] for d in s if d.isdigit())


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


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _paired(digits: str) -> str:
    """Numbers said in pairs: 101 -> one oh one, 220 -> two twenty, 2105 -> twenty one oh five."""
    if len(digits) == 3:
        head, tail = digits[0], int(digits[1:])
        return f"{_ONES[int(head)]} " + ("hundred" if tail == 0 else "oh " + _ONES[tail] if tail < 10 else number_words(tail))
    return year_words(int(digits)) if digits[0] != "0" else digit_words(digits)


def decade_words(n: int) -> str:
    """1990 -> nineteen nineties; 2000 -> two thousands; 80 -> eighties."""
    words = (year_words(n) if n >= 100 else number_words(n)).split(" ")
    words[-1] = _plural(words[-1])
    return " ".join(words)


def _plain_number(s: str) -> str:
    """'1,200' -> one thousand two hundred; '3.14' -> three point one four; '007' -> zero zero seven."""
    s = s.replace(",", "")
    whole, _, frac = s.partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) > 15:
        out = digit_words(whole)
    else:
        out = number_words(int(whole or 0))
    return out + (" point " + digit_words(frac) if frac else "")


def _money(m: re.Match) -> str:
    sym, amount, scale = m.group(1), m.group(2).replace(",", ""), m.group(3)
    one, many, sub_one, sub_many = _CURRENCIES[sym]
    if scale:
        return f"{_plain_number(amount)} {_SCALE_WORDS[scale]} {many}"
    whole, _, cents = amount.partition(".")
    n = int(whole or 0)
    c = int(cents.ljust(2, "0")[:2]) if cents and sub_one else 0
    if cents and not sub_one:
        return f"{_plain_number(amount)} {many}"
    if n == 0 and c:
        return number_words(c) + " " + (sub_one if c == 1 else sub_many)
    out = number_words(n) + " " + (one if n == 1 else many)
    return out + (f" and {number_words(c)} {sub_one if c == 1 else sub_many}" if c else "")


def _time(m: re.Match) -> str:
    h, mi, ampm = int(m.group(1)), int(m.group(2)), (m.group(3) or "").lower().replace(".", "")
    if h > 24 or mi > 59:
        return number_words(h) + " to " + number_words(mi)
    if mi == 0:
        out = number_words(h) + ("" if ampm else " o'clock")
    else:
        out = number_words(h) + " " + ("oh " + _ONES[mi] if mi < 10 else number_words(mi))
    return out + (" " + " ".join(ampm.upper()) if ampm else "") + ("." if _ends_sentence(m) else "")


def _iso_date(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {ordinal_words(d)}, {year_words(y)}"


def _us_date(m: re.Match) -> str:
    mo, d, y = int(m.group(1)), int(m.group(2)), m.group(3)
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    yy = int(y) if len(y) == 4 else 2000 + int(y)
    return f"{_MONTHS[mo - 1]} {ordinal_words(d)}, {year_words(yy)}"


def _month_day(m: re.Match) -> str:
    d = int(m.group(2))
    return f"{m.group(1)} {ordinal_words(d)}" if 1 <= d <= 31 else m.group(0)


def _unit(m: re.Match) -> str:
    num, unit = m.group(1), m.group(2)
    key = unit if unit in _UNITS else unit.lower()
    one, many = _UNITS[key]
    return f"{_plain_number(num)} {one if num in ('1', '1.0') else many}"


def _fraction(m: re.Match) -> str:
    a, b = int(m.group(1)), int(m.group(2))
    if b == 0 or a >= b:
        return f"{number_words(a)} {number_words(b)}"  # 24/7, 50/50: said as two numbers
    if b == 2:
        den = "half" if a == 1 else "halves"
    elif b == 4:
        den = "quarter" if a == 1 else "quarters"
    else:
        den = ordinal_words(b) if a == 1 else _plural(ordinal_words(b))
    return f"{number_words(a)} {den}"


def _math(m: re.Match) -> str:
    ops = {"+": "plus", "-": "minus", "−": "minus", "×": "times", "*": "times", "x": "times", "÷": "divided by",
           "/": "divided by", "=": "equals", ">": "is greater than", "<": "is less than"}
    parts = re.split(r"\s+([+\-−×*x÷/=<>])\s+", m.group(0))
    return " ".join(ops.get(p, p) for p in parts)


def _abbreviation(m: re.Match) -> str:
    word, after = m.group(1), m.string[m.end() : m.end() + 3]
    low = word.lower()
    before = m.string[max(0, m.start() - 12) : m.start()]
    if low == "st":  # saint before a name, street after a name or number
        named = re.search(r"(\d(?:st|nd|rd|th)?|[A-Z][a-z]+)\s*$", before)
        return "Saint" if re.match(r"\s*[A-Z]", after) and not named else "Street" + ("." if not after.strip() else "")
    if low == "dr":
        return "Doctor" if re.match(r"\s*[A-Z]", after) else "Drive" + ("." if not after.strip() else "")
    if low == "no":
        return "number" if re.match(r"\s*\d", after) else m.group(0)
    if low in ("in", "min", "p", "ch", "est", "fig", "vol", "sun", "sat", "mar", "co") and not re.match(r"\s*\d", after):
        return m.group(0)  # ordinary words when no number follows
    full = _ABBREVIATIONS[low] if word[0].islower() else _ABBREVIATIONS[low][0].upper() + _ABBREVIATIONS[low][1:]
    return full + ("." if re.match(r"\s*$", m.string[m.end() :]) else "")


def _ends_sentence(m: re.Match) -> bool:
    """A final '.' of an abbreviation that also ends the sentence (end of text or a capital next)."""
    return m.group(0).endswith(".") and re.match(r"\s*$|\s+[A-Z]", m.string[m.end() :]) is not None


def _dotted_acronym(m: re.Match) -> str:
    """U.S. -> U S; its final '.' ends the sentence only at the end of the text (sentences are split
    before they are read, and the splitter keeps U.S. with the word after it)."""
    return _dotted(m) + ("." if re.match(r"\s*$", m.string[m.end() :]) else "")


def _dotted(m: re.Match) -> str:
    letters = m.group(0).replace(".", "")
    if letters.lower() in ("am", "pm"):
        return " " + " ".join(letters.upper()) + " "
    if letters.lower() == "eg":
        return "for example"
    if letters.lower() == "ie":
        return "that is"
    return " ".join(letters.upper()) + " "


_RULES: list[rules.Rule] = [
    ("dotted acronym", re.compile(r"(?<![A-Za-z.])(?:[A-Za-z]\.){2,}(?=\s|$|[,;:!?])"), _dotted_acronym),
    ("phone number", re.compile(r"(?<![\d-])(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\d-])"),
     lambda m: ", ".join(digit_words(g) for g in re.findall(r"\d+", m.group(0)))),
    ("date", re.compile(r"(?<![\d-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d-])"), _iso_date),
    ("height", re.compile(r"(?<!\d)(\d)'\s?(\d{1,2})(?:\"|'')"),
     lambda m: f"{number_words(int(m.group(1)))} foot {number_words(int(m.group(2)))}"),
    ("date", re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])"), _us_date),
    ("abbreviation", re.compile(r"(?<![A-Za-z.\d])([A-Za-z]{1,5})\.(?!\w)"),
     lambda m: _abbreviation(m) if m.group(1).lower() in _ABBREVIATIONS or m.group(1).lower() in ("st", "dr", "no")
     else m.group(0)),
    ("date", re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2})(?:st|nd|rd|th)?\b(?!:)"), _month_day),
    ("time range", re.compile(r"(?<![\d:])(\d{1,2}:\d{2})\s?[-–~]\s?(?=\d{1,2}:\d{2})"), lambda m: m.group(1) + " to "),
    ("clock time", re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?:\s*([ap]\.?m\.?|[AP]\.?M\.?)(?![A-Za-z]))?(?![\d:])"),
     _time),
    ("clock time", re.compile(r"(?<![\d:.])(\d{1,2})\s?([aApP])\.?[mM]\.?(?![A-Za-z])"),
     lambda m: f"{number_words(int(m.group(1)))} {m.group(2).upper()} M" + ("." if _ends_sentence(m) else "")),
    ("ratio", re.compile(r"(?<![\d:.])(\d+):(\d+)(?![\d:])"),
     lambda m: number_words(int(m.group(1))) + " to " + number_words(int(m.group(2)))),
    ("room number", re.compile(r"\b(Room|room|Flight|flight|Gate|gate|Suite|suite|Apt\.?|Bus|bus|Route|route|"
                               r"Platform|platform|ext\.|Ext\.|extension)\s+(\d{3,4})\b"),
     lambda m: f"{m.group(1)} {_paired(m.group(2))}"),
    ("version", re.compile(r"\b[vV](?=\d)"), lambda m: "version "),
    ("money", re.compile(r"([$€£¥₹₩])\s?(\d[\d,]*(?:\.\d+)?)(?:\s?(thousand|million|billion|trillion|bn|mn|[kKmMbB])\b)?"),
     _money),
    ("percent", re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*[-–~]\s*(\d[\d,]*(?:\.\d+)?)\s*%"),
     lambda m: f"{_plain_number(m.group(1))} to {_plain_number(m.group(2))} percent"),
    ("percent", re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*%"), lambda m: _plain_number(m.group(1)) + " percent"),
    ("decade", re.compile(r"(?<![\d'’])(1[0-9]|20)([0-9]0)'?s\b"), lambda m: decade_words(int(m.group(1) + m.group(2)))),
    ("decade", re.compile(r"(?<![\w\d])['’]?([2-9]0)'?s\b"), lambda m: decade_words(int(m.group(1)))),
    ("ordinal", re.compile(r"(?<![\d.])(\d+)(st|nd|rd|th)\b"), lambda m: ordinal_words(int(m.group(1)))),
    ("unit", _UNIT_RE, _unit),
    ("fraction", re.compile(r"(?<![\d/.])(\d{1,3})/(\d{1,3})(?![\d/])"), _fraction),
    ("arithmetic", re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s+[+\-−×*x÷/=<>]\s+\d+(?:\.\d+)?)+(?![\w.])"), _math),
    ("range", re.compile(r"(?<![\w.-])(\d[\d,]*(?:\.\d+)?)(?:-|\s?[–~]\s?)(\d[\d,]*(?:\.\d+)?)(?![\w-])"),
     lambda m: f"{m.group(1)} to {m.group(2)}"),
    ("negative", re.compile(r"(?<![\w.])[-−](?=\d)"), lambda m: "minus "),
    ("letters and digits", re.compile(r"(?<=[A-Za-z])-?(?=\d)|(?<=\d)-?(?=[A-Za-z])"), lambda m: " "),
    ("year", re.compile(r"(?<![\d.,$])(1[1-9]\d\d|20\d\d)(?![\d%]|[.,]\d)"), lambda m: year_words(int(m.group(1)))),
    ("number", re.compile(r"\d+(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?"), lambda m: _plain_number(m.group(0))),
    ("symbol", re.compile(r"\s*(&|\+|@|=|#|%|°)\s*"),
     lambda m: " " + {"&": "and", "+": "plus", "@": "at", "=": "equals", "#": "number", "%": "percent",
                      "°": "degrees"}[m.group(1)] + " "),
]


def normalize(text: str, notes: Notes | None = None) -> str:
    text = rules.apply(text, _RULES, notes, "en: ")
    text = text.replace("’", "'")
    text = re.sub(r"(?<=[A-Za-z])/(?=[A-Za-z])", " ", text)
    text = re.sub(r"[^A-Za-z',.!?;:…\-— ]+", " ", text)
    text = re.sub(r"(?<![A-Za-z])-|-(?![A-Za-z])", " - ", text)  # a dash between words is a pause
    text = re.sub(r"\b([A-Za-z]+)-([A-Za-z]+)\b", _hyphenated, text)
    return re.sub(r"\s+", " ", text).strip()


def _hyphenated(m: re.Match) -> str:
    """e-mail, Wi-Fi -> one word when the dictionary has it joined, else the two words."""
    joined = m.group(1) + m.group(2)
    return joined if variants(joined.lower()) else f"{m.group(1)} {m.group(2)}"


# -- dictionary and heteronyms ------------------------------------------------


# common words newer than CMUdict (written by hand; the learned model misreads several of them)
HOT_WORDS = {
    "kubernetes": "K UW2 B ER0 N EH1 T IY0 Z", "covid": "K OW1 V IH0 D", "openai": "OW1 P AH0 N EY1 AY1",
    "chatgpt": "CH AE1 T JH IY1 P IY1 T IY1", "pytorch": "P AY1 T AO2 R CH", "tensorflow": "T EH1 N S ER0 F L OW2",
    "ethereum": "IH0 TH IH1 R IY0 AH0 M", "tiktok": "T IH1 K T AA2 K", "emoji": "IH0 M OW1 JH IY0",
    "emojis": "IH0 M OW1 JH IY0 Z", "airbnb": "EH1 R B IY1 EH1 N B IY1", "wechat": "W IY1 CH AE2 T",
    "alibaba": "AE2 L IH0 B AA1 B AH0", "tencent": "T EH1 N S EH2 N T", "huawei": "HH W AA1 W EY2",
    "xiaomi": "SH AW1 M IY2", "baidu": "B AY1 D UW2", "deepseek": "D IY1 P S IY2 K", "selfie": "S EH1 L F IY0",
    "podcast": "P AA1 D K AE2 S T", "podcasts": "P AA1 D K AE2 S T S", "blog": "B L AA1 G", "vlog": "V L AA1 G",
    "livestream": "L AY1 V S T R IY2 M", "app": "AE1 P", "apps": "AE1 P S", "wifi": "W AY1 F AY2",
    "phd": "P IY1 EY1 CH D IY1",
}


@functools.lru_cache(maxsize=65536)
def variants(word: str) -> tuple[tuple[str, ...], ...]:
    """All pronunciations of a lower-case word (first = most common): the hand-written newer words,
    else CMUdict's; () if absent."""
    if word in HOT_WORDS:
        return (tuple(HOT_WORDS[word].split()),)
    hit = store.trie("en").get(word)
    return tuple(tuple(v.split()) for v in hit[0].decode().split("|")) if hit else ()


_DET = {"a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our", "their", "some",
        "any", "every", "each", "no", "another", "which", "whose", "what", "one's", "first", "last", "new", "old",
        "world", "good", "great", "big", "small", "whole", "official", "personal", "final", "annual", "recent",
        "current", "previous", "best", "same", "strong", "latest", "main", "special", "public"}
_PREP = {"of", "in", "on", "at", "for", "with", "from", "by", "about", "into", "over", "under", "after", "before",
         "between", "through", "during", "without", "within", "against", "among"}
_SUBJ = {"i", "you", "we", "they", "he", "she", "it", "who", "people", "men", "women", "children", "students",
         "users", "that", "which"}
_MODAL = {"will", "would", "can", "could", "shall", "should", "must", "may", "might", "do", "does", "did", "don't",
          "doesn't", "didn't", "won't", "can't", "couldn't", "wouldn't", "shouldn't", "let's", "please", "to",
          "i'll", "we'll", "you'll", "they'll", "she'll", "he'll", "and", "or", "not", "never", "always", "often",
          "usually", "also", "just", "really", "still", "sometimes", "rarely", "finally", "quickly", "carefully",
          "we'd", "i'd", "you'd", "they'd", "cannot"}
_OBJ = {"the", "a", "an", "it", "them", "him", "her", "me", "us", "you", "this", "that", "these", "those", "my",
        "your", "his", "our", "their", "its", "some", "all", "every", "each", "what", "how", "up", "down", "out",
        "off", "in", "on", "over", "back", "away", "against"}
_BE = {"am", "is", "are", "was", "were", "be", "been", "being", "i'm", "you're", "we're", "they're", "it's", "he's",
       "she's", "that's", "isn't", "wasn't", "aren't", "weren't", "get", "got", "gets", "getting", "become", "seems",
       "seem", "feel", "feels", "felt", "so", "very", "too", "quite", "pretty", "more", "most", "less", "really"}
_HAVE = {"have", "has", "had", "having", "i've", "we've", "you've", "they've", "i'd", "we'd", "you'd", "they'd",
         "already", "been", "was", "were", "is", "are", "be", "being", "widely", "well", "never", "just", "not",
         "isn't", "wasn't", "aren't", "weren't", "haven't", "hasn't", "hadn't", "ever", "once", "she", "he",
         "it", "who", "which"}
_PAST_CUES = {"yesterday", "ago", "last", "earlier", "once", "was", "were", "had", "did", "went", "said", "told",
              "saw", "came", "took", "wrote", "thought", "before", "finished", "then"}
_PRESENT_CUES = {"every", "usually", "always", "often", "now", "will", "can", "tomorrow", "today", "please",
                 "let's", "to", "should", "must", "daily", "each", "sometimes", "going"}
_LIVE_ADJ_NEXT = {"music", "show", "shows", "stream", "streams", "streaming", "broadcast", "broadcasts", "performance",
                  "performances", "concert", "concerts", "event", "events", "coverage", "album", "audience", "band",
                  "feed", "video", "version", "recording", "animals", "bait", "wire", "ammunition", "tv", "chat",
                  "demo", "updates", "sessions", "session", "action", "games", "game", "match", "radio"}
_STRESS_PAIRS = {"record", "present", "object", "project", "permit", "contract", "subject", "produce", "increase",
                 "decrease", "import", "export", "progress", "conflict", "insult", "protest", "suspect", "conduct",
                 "convert", "convict", "desert", "digest", "extract", "rebel", "refund", "reject", "survey",
                 "torment", "transfer", "transport", "upset", "compound", "combat", "contest", "contrast",
                 "discount", "escort", "finance", "impact", "incline", "insert", "invite", "perfume", "permits",
                 "records", "presents", "objects", "projects", "produces", "increases", "decreases", "imports",
                 "exports", "protests", "suspects", "conflicts", "subjects", "contracts", "rebels", "refunds",
                 "rejects", "surveys", "transfers", "transports", "recording", "conducts", "converts", "address",
                 "addresses", "research", "attribute", "attributes", "console", "consoles", "content", "entrance",
                 "refuse", "minute", "relay", "relays", "segment", "segments"}
_ATE_PAIRS = {"estimate", "separate", "graduate", "moderate", "associate", "alternate", "advocate", "appropriate",
              "approximate", "deliberate", "duplicate", "elaborate", "predicate", "delegate", "coordinate",
              "intimate", "articulate", "degenerate", "subordinate", "aggregate", "certificate"}
_SE_PAIRS = {"use", "close", "excuse", "abuse", "house", "uses", "excuses", "abuses", "closer", "refuse", "diffuse",
             "mouth", "misuse"}
_SPECIAL = {"read", "live", "lead", "wind", "tear", "tears", "wound", "bass", "bow", "row", "sow", "dove",
            "polish", "does", "lives", "winds", "leads", "rows", "bows"}
HETERONYMS = _STRESS_PAIRS | _ATE_PAIRS | _SE_PAIRS | _SPECIAL


def _pick(word: str, test) -> tuple[str, ...] | None:
    for v in variants(word):
        if test(v):
            return v
    return None


def _first_stressed(v: tuple[str, ...]) -> bool:
    vowels = [p for p in v if p[-1].isdigit()]
    return bool(vowels) and vowels[0].endswith("1")


def _verbal(prev: str, nxt: str, at_start: bool) -> bool | None:
    """True: the word is a verb here; False: a noun or adjective; None: no cue."""
    if prev in _MODAL or prev in _SUBJ and prev not in ("that", "which"):
        return True
    if prev in _DET or prev in _PREP or prev.endswith("'s"):
        return False
    if at_start and nxt in _OBJ:
        return True  # an imperative: "Record the show."
    if nxt in ("of", "is", "was", "are", "were", "for", "and", "or") or nxt in ("", ".", ",", "?", "!"):
        return False if prev not in _SUBJ else None
    if nxt in _OBJ:
        return True
    return None


def heteronym(tokens: list[str], i: int) -> tuple[tuple[str, ...], str] | None:
    """(phones, rule) of the heteronym at tokens[i] from the words around it, or None."""
    word = tokens[i].lower()
    if word not in HETERONYMS or not variants(word):
        return None
    prev = tokens[i - 1].lower() if i > 0 else ""
    prev2 = tokens[i - 2].lower() if i > 1 else ""
    nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
    at_start = i == 0 or prev in _PUNCT
    verbal = _verbal(prev, nxt, at_start)
    if word == "read":
        past = prev in _HAVE or (prev in _SUBJ and prev not in ("i", "you", "we", "they", "people") and prev2 != "to")
        if not past and prev not in _MODAL:
            context = {t.lower() for t in tokens}
            past = bool(context & _PAST_CUES) and not (context & _PRESENT_CUES)
        return (("R", "EH1", "D") if past else ("R", "IY1", "D")), "read: past by auxiliary/subject/tense cue"
    if word in ("live", "lives"):
        adj = prev in _DET or prev in _BE or nxt in _LIVE_ADJ_NEXT or prev in ("go", "goes", "went", "gone", "going")
        if word == "lives":
            adj = prev in _DET or prev in _PREP or prev.endswith("'s")  # their lives (noun) vs she lives (verb)
        return ((("L", "AY1", "V", "Z") if word == "lives" else ("L", "AY1", "V")) if adj else
                (("L", "IH1", "V", "Z") if word == "lives" else ("L", "IH1", "V"))), "live: adjective/verb by context"
    if word in ("lead", "leads"):
        metal = nxt in ("poisoning", "pipe", "pipes", "paint", "pencil", "pencils", "levels", "exposure", "content",
                        "weight", "weights", "acid", "shot")
        phones = ("L", "EH1", "D") if metal else ("L", "IY1", "D")
        return phones + (("Z",) if word == "leads" else ()), "lead: metal before a material noun, else verb/noun"
    if word in ("wind", "winds"):
        turn = verbal is True or nxt in ("up", "down", "around", "back")
        phones = ("W", "AY1", "N", "D") if turn else ("W", "IH1", "N", "D")
        return phones + (("Z",) if word == "winds" else ()), "wind: verb (turn) by context, else noun"
    if word in ("tear", "tears"):
        rip = verbal is True or nxt in ("up", "down", "apart", "off", "open", "out") or prev == "wear"
        base = ("T", "EH1", "R") if rip else ("T", "IH1", "R")
        return base + (("Z",) if word == "tears" else ()), "tear: verb (rip) by context, else noun (drop)"
    if word == "wound":
        turned = nxt in ("up", "down", "around", "back") or prev in ("was", "had", "have", "has", "clock")
        return (("W", "AW1", "N", "D") if turned else ("W", "UW1", "N", "D")), "wound: past of wind by context"
    if word == "polish":
        proper = tokens[i][0].isupper() and not at_start
        return ((("P", "OW1", "L", "IH0", "SH")) if proper else ("P", "AA1", "L", "IH0", "SH")), "Polish/polish by case"
    if word == "does":
        return ("D", "AH1", "Z"), "does: verb"
    if word in ("bass",):
        fish = nxt in ("fishing", "fish", "boat") or prev in ("caught", "catch", "sea", "striped")
        return (("B", "AE1", "S") if fish else ("B", "EY1", "S")), "bass: music unless fishing"
    if word in ("bow", "bows", "row", "rows", "sow", "dove"):
        return None  # both readings common; CMUdict's first
    if word == "minute":
        tiny = prev in _BE or nxt in ("details", "detail", "amounts", "amount", "changes", "particles", "traces")
        return (_pick(word, lambda v: v[-1] == "T" and "UW1" in v) if tiny else None) or variants(word)[0], \
            "minute: tiny by context"
    if word in ("content",):
        adj = prev in _BE or nxt == "with"
        v = _pick(word, lambda v: not _first_stressed(v)) if adj else _pick(word, _first_stressed)
        return (v or variants(word)[0]), "content: adjective (content with) vs noun"
    if word in _SE_PAIRS:
        if word.startswith("close"):
            near = nxt in ("to", "by", "friend", "friends", "call", "relationship", "attention", "look", "enough")
            adj = near or prev in _BE or (prev in _DET and nxt not in _OBJ)
            verbal = False if adj else (verbal if verbal is not None else True)
        v = _pick(word, lambda v: v[-1] in ("S", "Z") and v[-1] == ("Z" if verbal else "S") or
                  word.endswith("s") and v[-2] == ("Z" if verbal else "S"))
        return (v or variants(word)[0]), f"{word}: {'verb /z/' if verbal else 'noun/adjective /s/'} by context"
    if verbal is None:
        return None
    if word in _ATE_PAIRS:
        v = _pick(word, lambda v: v[-2].startswith("EY")) if verbal else _pick(word, lambda v: v[-2] in ("AH0", "IH0"))
        return (v, f"{word}: {'verb -ate' if verbal else 'adjective/noun -ate'} by context") if v else None
    v = _pick(word, lambda v: not _first_stressed(v)) if verbal else _pick(word, _first_stressed)
    return (v, f"{word}: {'verb' if verbal else 'noun'} stress by context") if v else None


# -- words --------------------------------------------------------------------


def _spell(letters: str) -> list[str]:
    return [p for ch in letters.lower() if ch in _LETTERS for p in _LETTERS[ch].split()]


def _possessive(base: list[str]) -> list[str]:
    return base + (["IH0", "Z"] if base[-1] in ("S", "Z", "SH", "ZH", "CH", "JH") else
                   ["S"] if base[-1] in ("P", "T", "K", "F", "TH") else ["Z"])


def _camel_parts(word: str) -> list[str]:
    return re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+", word)


def word_reading(word: str, shouting: bool = False) -> tuple[list[str], str]:
    """(phones, source) of one word without context."""
    letters = re.sub(r"[^A-Za-z]", "", word)
    if not letters:
        return [], "none"
    if len(letters) == 1:
        if word in ("a", "A"):
            return (["AH0"] if word == "a" else ["EY1"]), "article/letter"
        return _spell(letters), "letter name"
    key = word.lower().strip("'")
    is_caps = letters.isupper()
    if is_caps and (letters in _SPELL_ALWAYS or letters not in _WORD_ACRONYMS and not (shouting and variants(key))):
        if key.endswith("'s") or (key.endswith("s") and letters[:-1].isupper() and word[-1] == "s"):
            return _possessive(_spell(letters[:-1])), "acronym spelled (plural/possessive)"
        spelled = _spell(letters)
        listed = next((v for v in variants(key) if [p.rstrip("012") for p in v] == [p.rstrip("012") for p in spelled]), None)
        return (list(listed), "acronym, CMUdict's spelled entry") if listed else (spelled, "acronym spelled (all capitals)")
    if variants(key):
        return list(variants(key)[0]), "CMUdict"
    if key.endswith("'s") and variants(key[:-2]):
        return _possessive(list(variants(key[:-2])[0])), "CMUdict + possessive"
    parts = _camel_parts(word)
    if len(parts) > 1 and "".join(parts) == letters:
        out: list[str] = []
        for p in parts:
            out += _spell(p) if len(p) == 1 else word_reading(p)[0]
        return out, "mixed case split: " + " + ".join(parts)
    if not re.search(r"[aeiouy]", key) or len(letters) <= 2:
        return _spell(letters), "spelled (no vowel / too short)"
    predicted = en_oov.predict(re.sub(r"[^a-z]", "", key))
    if predicted:
        return list(predicted), "g2p-en neural model (out of vocabulary)"
    return _spell(letters), "spelled (no model)"


@functools.lru_cache(maxsize=65536)
def _cached_reading(word: str, shouting: bool) -> tuple[tuple[str, ...], str]:
    phones, source = word_reading(word, shouting)
    return tuple(phones), source


def tokens(norm: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z']*|'[A-Za-z]+|[,.!?;:…\-—]", norm)


def analyze(norm: str, lookup=None) -> list[tuple[str, list[str], str]]:
    """Normalized text -> [(token, phones, source)]; `lookup(word)` (a user lexicon) wins over everything."""
    toks = tokens(norm)
    words = [t for t in toks if t not in _PUNCT]
    shouting = len(words) >= 3 and all(w.isupper() for w in words if len(w) > 1)
    out: list[tuple[str, list[str], str]] = []
    for i, tok in enumerate(toks):
        if tok in _PUNCT:
            out.append((tok, [_PUNCT[tok]], "punctuation"))
            continue
        hit = lookup(tok) if lookup else None
        if hit is not None:
            out.append((tok, list(hit), "user lexicon"))
            continue
        het = heteronym(toks, i) if not (tok.isupper() and len(tok) > 1 and not shouting) else None
        if het is not None:
            out.append((tok, list(het[0]), "heteronym rule: " + het[1]))
            continue
        phones, source = _cached_reading(tok, shouting)
        out.append((tok, list(phones), source))
    return out


def g2p(norm: str) -> list[str]:
    return [p for _, phones, _ in analyze(norm) for p in phones]
