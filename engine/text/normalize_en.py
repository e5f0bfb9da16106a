"""English text normalization: written numbers and symbols to the words a reader says.

A list of named rules (`RULES`), applied in order by `en.normalize`: dotted acronyms, phone numbers,
dates, heights, abbreviations, clock times, ratios, room and version numbers, money, percentages,
decades, ordinals, units, fractions, arithmetic, ranges, negatives, letters glued to digits, years,
plain numbers, then symbols. Kept apart from `text.en` (the dictionary, heteronyms and letter names)
so that each file reads as one thing; both are pure Python and import in no time.
"""

from __future__ import annotations

import re

from gsvd.engine.text import rules

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
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


RULES: list[rules.Rule] = [
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
