"""English text normalization: written numbers and symbols to the words a reader says.

A list of named rules (`table()`), applied in order by `en.normalize`: e-mail and web addresses (dot,
slash, at; the scheme is not read), IP addresses and phone numbers digit by digit (with the country
code after "plus"), version numbers (v2.0.1, Python 3.11: point-separated integers), dates (ISO, US,
and day-first: 5 March 2024 is "the fifth of March"), heights, fractions (½, 2 1/2: "two and a
half"), abbreviations, Roman numerals (Louis XIV: "the fourteenth", World War II: "two"), clock
times (with seconds and am/pm ranges), ratios, room numbers, scientific notation, signs (-5: minus,
~5: about), money (US$, HK$, 5€, 100 USD, $5-10), percentages, decades, ordinals, scales (3.4k, 5M
users, 1.2bn), ranges, units (m², mg/dL: "per"), powers (x²: squared, 2^10), arithmetic, letters
glued to digits (B2B: "B to B", 1080p, 4x4), years, plain numbers, then symbols (#, ≥, ≠, ≈, ±, ©,
§, √). Kept apart from `text.en` (the dictionary, heteronyms and letter names) so that each file
reads as one thing; both are pure Python and import in no time.
"""

from __future__ import annotations

import functools
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
_DOLLAR_COUNTRIES = {"US": "US", "HK": "Hong Kong", "A": "Australian", "AU": "Australian", "C": "Canadian",
                     "CA": "Canadian", "NZ": "New Zealand", "S": "Singapore"}  # US$5: five US dollars
_CURRENCY_CODES = {"USD": ("$", "US"), "EUR": ("€", ""), "GBP": ("£", ""), "JPY": ("¥", ""), "INR": ("₹", ""),
                   "KRW": ("₩", ""), "AUD": ("$", "Australian"), "CAD": ("$", "Canadian"), "HKD": ("$", "Hong Kong"),
                   "NZD": ("$", "New Zealand"), "SGD": ("$", "Singapore")}
_CODE_ALT = "|".join(_CURRENCY_CODES)
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
           "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8)}
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_SUP = "[⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+"
# Roman numerals: after a ruler's name an ordinal (Louis XIV: the fourteenth), after these nouns or any
# other capitalized word a cardinal (World War II: two, Final Fantasy VII: seven)
_REGNAL = {"Louis", "Henry", "Elizabeth", "Charles", "George", "Edward", "William", "James", "Richard", "John", "Paul",
           "Mary", "Philip", "Frederick", "Napoleon", "Peter", "Catherine", "Nicholas", "Alexander", "Ivan", "Pius",
           "Leo", "Benedict", "Gregory", "Clement", "Innocent", "Urban", "Boniface", "Ramesses", "Ptolemy", "Constantine",
           "Alfonso", "Ferdinand", "Juan", "Carlos", "Felipe", "Gustav", "Olaf", "Harald", "Christian", "Wilhelm",
           "Friedrich", "Ludwig", "Otto", "Henri", "Francis", "Edmund", "Stephen", "David", "Robert", "Malcolm",
           "Mehmed", "Selim", "Suleiman", "Rama", "Sixtus", "Julius", "Anne", "Victor", "Willem", "Carl", "Gustaf"}
_ROMAN_NOUNS = {"War", "Chapter", "Part", "Act", "Book", "Volume", "Vol", "Phase", "Episode", "Level", "Stage", "Bowl",
                "Section", "Article", "Title", "Class", "Type", "Grade", "Round", "Season", "Schedule", "Appendix",
                "Apollo", "Mark", "Category", "Division", "League", "Tier", "Star", "Vatican", "Gemini"}
_ROMAN = r"C{0,3}(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}
_NOT_ROMAN = {"CC", "CL", "LI", "XL", "CI", "VC", "LC", "DC", "CV", "LL"}
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
          "s": ("second", "seconds"), "sec": ("second", "seconds"), "dl": ("deciliter", "deciliters"),
          "m²": ("square meter", "square meters"), "km²": ("square kilometer", "square kilometers"),
          "cm²": ("square centimeter", "square centimeters"), "mm²": ("square millimeter", "square millimeters"),
          "ft²": ("square foot", "square feet"), "sq ft": ("square foot", "square feet"),
          "sq m": ("square meter", "square meters"), "sq mi": ("square mile", "square miles"),
          "m³": ("cubic meter", "cubic meters"), "cm³": ("cubic centimeter", "cubic centimeters")}
# unit symbols read only right after a number; case-sensitive where a letter is also a word (in, m, s)
_UNIT_ALT = (r"km/h|°C|°F|°|kWh|kW|km²|km|kg|cm²|cm³|cm|mm²|mm|mg|ml|mL|dL|dl|mi|lbs|lb|ft²|ft|sq ft|sq mi|sq m|mph|kmh|"
             r"ms|GB|MB|KB|TB|kb|Hz|kHz|MHz|GHz|hrs|hr|min|sec|oz|g|m²|m³|m|l|L|h|s|W|V")
_UNIT_PATTERN = (rf"(?<![\w.,])(\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)\s?({_UNIT_ALT})"
                 rf"(?:/({_UNIT_ALT}|day|week|month|year|dose)(²)?)?(?![\w°²³/])")
_PER = {"hr": "hour", "h": "hour", "hour": "hour", "mo": "month", "month": "month", "yr": "year", "year": "year",
        "wk": "week", "week": "week", "day": "day", "d": "day", "night": "night", "person": "person", "head": "head",
        "user": "user", "seat": "seat", "item": "item", "unit": "unit", "kg": "kilogram", "lb": "pound",
        "gallon": "gallon", "gal": "gallon", "mile": "mile", "sq ft": "square foot", "ton": "ton", "dose": "dose",
        "share": "share", "min": "minute", "sec": "second", "s": "second", "m": "meter", "km": "kilometer",
        "L": "liter", "l": "liter", "ml": "milliliter", "mL": "milliliter", "dL": "deciliter", "g": "gram"}
_PER_ALT = "|".join(sorted(_PER, key=len, reverse=True))
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miz", "prof": "professor", "jr": "junior", "sr": "senior",
                  "vs": "versus", "etc": "et cetera", "approx": "approximately", "dept": "department",
                  "inc": "incorporated", "ltd": "limited", "corp": "corporation", "co": "company", "mt": "mount",
                  "ave": "avenue", "rd": "road", "blvd": "boulevard", "ft": "fort", "gen": "general",
                  "capt": "captain", "lt": "lieutenant", "sgt": "sergeant", "gov": "governor", "sen": "senator",
                  "col": "colonel", "maj": "major", "pres": "president", "univ": "university", "apt": "apartment",
                  "ca": "circa", "hon": "honorable", "bros": "brothers", "hwy": "highway",
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
    """$2.50 -> two dollars and fifty cents; US$20 -> twenty US dollars; $1.5M -> one point five million dollars;
    a $20 bill -> a twenty dollar bill."""
    amount = m.group(3).replace(",", "")
    return money_words(m.group(2), amount, m.group(4), _DOLLAR_COUNTRIES.get(m.group(1) or "", ""),
                       singular="." not in amount and _adjectival(m))


def _money_after(m: re.Match) -> str:
    """5€, 100 USD -> five euros, one hundred US dollars."""
    sym, country = _CURRENCY_CODES.get(m.group(2), (m.group(2), ""))
    return money_words(sym, m.group(1).replace(",", ""), None, country)


def _money_code_before(m: re.Match) -> str:
    sym, country = _CURRENCY_CODES[m.group(1)]
    return money_words(sym, m.group(2).replace(",", ""), m.group(3), country)


def _money_range(m: re.Match) -> str:
    """$5-10, $10-$20 -> five to ten dollars."""
    return _plain_number(m.group(3)) + " to " + money_words(m.group(2), m.group(4).replace(",", ""), None,
                                                            _DOLLAR_COUNTRIES.get(m.group(1) or "", ""))


def money_words(sym: str, amount: str, scale: str | None, country: str = "", singular: bool = False) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[sym]
    many = one if singular else many
    if country:
        one, many = f"{country} {one}", f"{country} {many}"
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
    """12/25/2023 -> December twenty fifth, ...; a first number above 12 is a day (25/12/2023: the
    twenty fifth of December, ...)."""
    mo, d, y = int(m.group(1)), int(m.group(2)), m.group(3)
    yy = int(y) if len(y) == 4 else 2000 + int(y)
    if 12 < mo <= 31 and 1 <= d <= 12:
        return f"the {ordinal_words(mo)} of {_MONTHS[d - 1]}, {year_words(yy)}"
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {ordinal_words(d)}, {year_words(yy)}"


def _month_day(m: re.Match) -> str:
    return _month_day_words(m.group(1), int(m.group(2)), m.group(0))


def _month_day_words(month: str, d: int, written: str) -> str:
    return f"{month} {ordinal_words(d)}" if 1 <= d <= 31 else written


def _unit(m: re.Match) -> str:
    """10 km -> ten kilometers; 50 m² -> fifty square meters; 120 mg/dL -> ... milligrams per deciliter."""
    num, unit, per, squared = m.group(1), m.group(2), m.group(3), m.group(4)
    one, many = _unit_names(unit)
    out = f"{_plain_number(num)} {one if num in ('1', '1.0') or _adjectival(m) else many}"
    return out + (f" per {_unit_names(per)[0]}" + (" squared" if squared else "") if per else "")


def _unit_names(unit: str) -> tuple[str, str]:
    if unit not in _UNITS and unit.lower() not in _UNITS:
        return _PER[unit], _PER[unit]
    return _UNITS[unit if unit in _UNITS else unit.lower()]


def _feet_inches(m: re.Match) -> str:
    return f"{number_words(int(m.group(1)))} feet {number_words(int(m.group(2)))} inch{'' if m.group(2) == '1' else 'es'}"


def _vulgar(m: re.Match) -> str:
    """1½ -> one and a half; ¾ -> three quarters."""
    return _mixed(m.group(1), *_VULGAR[m.group(2)])


def _mixed_fraction(m: re.Match) -> str:
    """2 1/2 -> two and a half (a whole number and a proper fraction)."""
    a, b = int(m.group(2)), int(m.group(3))
    return _mixed(m.group(1), a, b) if 0 < a < b else m.group(0)


def _mixed(whole: str | None, a: int, b: int) -> str:
    frac = fraction_words(a, b)
    if not whole:
        return frac
    return f"{_plain_number(whole)} and " + ("a " + frac.split(" ", 1)[1] if a == 1 else frac)


def _exponent(e: str) -> str:
    return _plain_number(e.lstrip("+")) if not e.startswith("-") else "minus " + _plain_number(e[1:])


def _power(m: re.Match) -> str:
    """x² -> x squared; 2^10 -> two to the power of ten."""
    base = m.group(1) if m.group(1).isalpha() else _plain_number(m.group(1))
    e = (m.group(2) or m.group(3)).translate(_SUPERSCRIPT).replace("−", "-")
    return base + {"2": " squared", "3": " cubed"}.get(e, " to the power of " + _exponent(e))


def _scientific(m: re.Match) -> str:
    """1.5e-3 -> one point five times ten to the power of minus three (6.02 × 10²³, 3×10^8 alike)."""
    e = (m.group(2) or m.group(3) or m.group(4)).translate(_SUPERSCRIPT).replace("−", "-")
    out = f"{_plain_number(m.group(1))} times ten to the power of {_exponent(e)}"
    if m.group(5):
        one, many = _unit_names(m.group(5))
        out += f" {many}" + (f" per {_unit_names(m.group(6))[0]}" if m.group(6) else "")
    return out


def _scaled(m: re.Match) -> str:
    """3.4k -> three point four thousand; 5M users -> five million users; 1.2bn -> one point two billion."""
    return f"{_plain_number(m.group(1))} {_SCALE_WORDS[m.group(2).strip()]}"


def _ip(m: re.Match) -> str:
    return " dot ".join(digit_words(g) for g in m.group(0).split("."))


def _web(m: re.Match) -> str:
    """www.example.com/docs -> www dot example dot com slash docs; the scheme is not read."""
    text = re.sub(r"^https?://", "", m.group(0)).rstrip("/")
    return re.sub(r"[./@]", lambda c: {".": " dot ", "/": " slash ", "@": " at "}[c.group(0)], text)


def _intl_phone(m: re.Match) -> str:
    groups = re.findall(r"\d+", m.group(0))
    return "plus " + ", ".join(digit_words(g) for g in groups)


def _hms(m: re.Match) -> str:
    """14:30:05 -> fourteen thirty and five seconds."""
    h, mi, sec = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if h > 24 or mi > 59 or sec > 59:
        return " to ".join(number_words(int(g)) for g in m.groups())
    out = number_words(h) + " " + ("o'clock" if mi == 0 else "oh " + _ONES[mi] if mi < 10 else number_words(mi))
    return out + (f" and {number_words(sec)} second{'s' if sec != 1 else ''}" if sec else "")


def _eu_date(m: re.Match) -> str:
    """5.5.2024 -> the fifth of May, twenty twenty four (day, month, year)."""
    d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if 1 <= d <= 12 < mo <= 31:  # 12.31.2024: month first
        return f"{_MONTHS[d - 1]} {ordinal_words(mo)}, {year_words(y)}"
    if not (1 <= d <= 31 and 1 <= mo <= 12):
        return m.group(0)
    return f"the {ordinal_words(d)} of {_MONTHS[mo - 1]}, {year_words(y)}"


def _adjectival(m: re.Match) -> bool:
    """'a $20 bill', 'a 5 km run': an amount used as an adjective takes the singular unit."""
    return re.search(r"\b[Aa]n?\s$", m.string[max(0, m.start() - 3) : m.start()]) is not None \
        and re.match(r"\s[a-z]", m.string[m.end() :]) is not None


def _day_month(m: re.Match) -> str:
    """5 March 2024 -> the fifth of March, twenty twenty four."""
    d = int(m.group(1))
    if not 1 <= d <= 31:
        return m.group(0)
    return f"the {ordinal_words(d)} of {m.group(2)}" + (f", {year_words(int(m.group(3)))}" if m.group(3) else "")


def _roman(m: re.Match) -> str:
    """Louis XIV -> Louis the fourteenth; World War II -> World War two."""
    word, numeral = m.group(1), m.group(2)
    value = roman_value(numeral)
    regnal = word in _REGNAL
    if not value or not (regnal or word in _ROMAN_NOUNS or len(numeral) > 1 and numeral not in _NOT_ROMAN):
        return m.group(0)
    return f"{word} " + (f"the {ordinal_words(value)}" if regnal else number_words(value))


def roman_value(numeral: str) -> int:
    """'XIV' -> 14; 0 when it is not a well-formed numeral (I to CCCXCIX)."""
    if not numeral or not re.fullmatch(_ROMAN, numeral):
        return 0
    vals = [_ROMAN_VALUES[c] for c in numeral]
    return sum(-v if i + 1 < len(vals) and v < vals[i + 1] else v for i, v in enumerate(vals))


def _fraction(m: re.Match) -> str:
    a, b = int(m.group(1)), int(m.group(2))
    if b == 0 or a >= b:
        return f"{number_words(a)} {number_words(b)}"  # 24/7, 50/50: said as two numbers
    return fraction_words(a, b)


def fraction_words(a: int, b: int) -> str:
    """1/2 -> one half, 3/4 -> three quarters, 2/3 -> two thirds."""
    if b == 2:
        den = "half" if a == 1 else "halves"
    elif b == 4:
        den = "quarter" if a == 1 else "quarters"
    else:
        den = ordinal_words(b) if a == 1 else _plural(ordinal_words(b))
    return f"{number_words(a)} {den}"


_SYMBOLS = {"&": "and", "+": "plus", "@": "at", "=": "equals", "#": "number", "%": "percent", "°": "degrees",
            "±": "plus or minus", "≥": "is greater than or equal to", "≤": "is less than or equal to",
            "≠": "is not equal to", "©": "copyright", "§": "section", "∞": "infinity", "π": "pi",
            "√": "the square root of", "×": "times", "÷": "divided by"}


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


_NUM = r"\d+(?:\.\d+)?"
_AMOUNT = r"\d[\d,]*(?:\.\d+)?"
_SCALE = r"(?:\s?(thousand|million|billion|trillion|bn|mn|[kKmMbB])\b)?"
_TLDS = r"com|org|net|edu|gov|io|ai|co|uk|cn|jp|de|fr|info|dev|app|us|ca|au|tv|me"
_PHONE_CUES = r"[Cc]all|[Cc]alls|[Cc]alled|[Cc]alling|[Dd]ial|[Dd]ialed|[Dd]ialled|[Dd]ialing|[Tt]ext|[Pp]hone|[Ff]ax|[Tt]el"
_VERSIONED = r"version|Version|release|Release|Python|iOS|iPadOS|macOS|Android|Ubuntu|Node|Java|PHP|Perl|Firefox|Chrome"

@functools.cache
def table() -> list[rules.Rule]:
    """The rules, compiled on first use: a process that never reads English never compiles them."""
    return [
        ("email", re.compile(r"(?<![\w.@])[A-Za-z0-9][\w.+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), _web, "@"),
        ("web address", re.compile(rf"(?<![\w.@/])(?:https?://)?(?:www\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:{_TLDS})\b"
                                   r"(?:/[\w./-]*)?"), _web, "."),
        ("ip address", re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"), _ip, "."),
        ("time range", re.compile(r"(?<![\d:.])(\d{1,2}(?::\d{2})?(?:\s?(?:[ap]\.?m\.?|[AP]\.?M\.?))?)\s?[-–~]\s?"
                                  r"(?=\d{1,2}(?::\d{2})?\s?[aApP]\.?[mM](?![A-Za-z])|\d{1,2}:\d{2})"),
         lambda m: m.group(1) + " to ", ":mM"),
        ("date", re.compile(r"(?<=\d{4}-\d{2}-\d{2})T(?=\d{2}:\d{2})"), lambda m: " at ", "T"),
        ("date", re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\d.])"), _eu_date, "."),
        ("dotted acronym", re.compile(r"(?<![A-Za-z.])(?:[A-Za-z]\.){2,}(?=\s|$|[,;:!?])"), _dotted_acronym, "."),
        ("hashtag", re.compile(r"(?<![\w&])#(?=[A-Za-z])"), lambda m: "hashtag ", "#"),
        ("phone number", re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]+\(?\d{1,4}\)?){2,5}(?![\d-])"), _intl_phone, "+"),
        ("phone number", re.compile(r"(?<![\d-])(?:(?:1-)?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}|0\d{1,4}-\d{3,4}-\d{4})"
                                    r"(?![\d-])"),
         lambda m: ", ".join(digit_words(g) for g in re.findall(r"\d+", m.group(0))), rules.DIGITS),
        ("version", re.compile(rf"\b([vV]|(?:{_VERSIONED})\s)(\d+(?:\.\d+)+|\d+\b)"),
         lambda m: ("version " if m.group(1) in "vV" else m.group(1)) + _version_words(m.group(2)), rules.DIGITS),
        ("version", re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.])"), lambda m: _version_words(m.group(0)), "."),
        ("service number", re.compile(rf"\b({_PHONE_CUES}):?\s(\d{{3}}(?:-\d{{4}})?)\b(?![-.,]?\d)"),
         lambda m: m.group(1) + " " + ", ".join(digit_words(g) for g in m.group(2).split("-")), rules.DIGITS),
        ("date", re.compile(r"(?<![\d-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d-])"), _iso_date, "-"),
        ("height", re.compile(r"(?<!\d)(\d)'\s?(\d{1,2})(?:\"|'')"),
         lambda m: f"{number_words(int(m.group(1)))} foot {number_words(int(m.group(2)))}", "'"),
        ("height", re.compile(r"(?<![\w.])(\d)\s?ft\.?\s(\d{1,2})\s?in\b\.?"), _feet_inches, rules.DIGITS),
        ("date", re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])"), _us_date, "/"),
        ("fraction", re.compile(r"(?<![\d.])(\d+)?\s?([½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞])"), _vulgar, "½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"),
        ("fraction", re.compile(r"(?<![\d/.])(\d+)\s+(\d)/(\d{1,2})(?![\d/])"), _mixed_fraction, "/"),
        ("number sign", re.compile(r"\b(?:No|no|Nos|nos)\.\s?(?=\d)"), lambda m: "number ", "."),
        ("abbreviation", re.compile(r"(?<![A-Za-z.\d])([A-Za-z]{1,5})\.(?!\w)"),
         lambda m: _abbreviation(m) if m.group(1).lower() in _ABBREVIATIONS or m.group(1).lower() in ("st", "dr", "no")
         else m.group(0), "."),
        ("abbreviation", re.compile(r"(?<=\w )vs(?= \w)|\bw/o\b|(?<![\w/])w/(?=\s)"),
         lambda m: {"vs": "versus", "w/o": "without", "w/": "with"}[m.group(0)], "v/"),
        ("roman numeral", re.compile(r"\b([A-Z][a-z]+)\s+([IVXLC]+)\b(?!['’.]\w)"), _roman, "IVXLC"),
        ("date", re.compile(r"(?<![\d/.])(\d{1,2})(?:st|nd|rd|th)?\s+(" + "|".join(_MONTHS) + r")\b(?:,?\s+(\d{4})\b)?"),
         _day_month, rules.DIGITS),
        ("date", re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2})(?:st|nd|rd|th)?\b(?!:)"), _month_day, rules.DIGITS),
        ("date", re.compile(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\s+(\d{1,2})(?:st|nd|rd|th)?\b(?![:.,]?\d)"),
         lambda m: _month_day_words(_ABBREVIATIONS[m.group(1).lower()], int(m.group(2)), m.group(0)), rules.DIGITS),
        ("date", re.compile(r"(?<![\w.])(?<!the )(\d{1,2})(st|nd|rd|th) of (?=" + "|".join(_MONTHS) + r")"),
         lambda m: f"the {ordinal_words(int(m.group(1)))} of ", rules.DIGITS),
        ("clock time", re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2}):(\d{2})(?![\d:])"), _hms, ":"),
        ("clock time", re.compile(r"(?<![\d:.])(\d{1,2})[:.](\d{2})(?:\s*([ap]\.?m\.?|[AP]\.?M\.?)(?![A-Za-z]))(?![\d:])"),
         _time, ":."),
        ("clock time", re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?:\s*([ap]\.?m\.?|[AP]\.?M\.?)(?![A-Za-z]))?(?![\d:])"),
         _time, ":"),
        ("clock time", re.compile(r"(?<![\d:.])(\d{1,2})\s?([aApP])\.?[mM]\.?(?![A-Za-z])"),
         lambda m: f"{number_words(int(m.group(1)))} {m.group(2).upper()} M" + ("." if _ends_sentence(m) else ""), rules.DIGITS),
        ("ratio", re.compile(r"(?<![\d:.])(\d+):(\d+)(?![\d:])"),
         lambda m: number_words(int(m.group(1))) + " to " + number_words(int(m.group(2))), ":"),
        ("room number", re.compile(r"\b(Room|room|Flight|flight|Gate|gate|Suite|suite|Apt\.?|Apartment|apartment|Bus|bus|"
                                   r"Route|route|Platform|platform|ext\.|Ext\.|extension)\s+(\d{3,4})\b"),
         lambda m: f"{m.group(1)} {_paired(m.group(2))}", rules.DIGITS),
        ("scientific", re.compile(rf"(?<![\w.])({_NUM})(?:[eE]([-+−]?\d+)|\s?[×xX*]\s?10(?:\^([-−+]?\d+)|({_SUP})))"
                                  rf"(?:\s?({_UNIT_ALT})(?:/({_UNIT_ALT}))?)?(?![\w.°²³])"), _scientific, "eE×xX*"),
        ("degree", re.compile(r"(?<=\d)\s?°\s+([CF])\b"), lambda m: "°" + m.group(1), "°"),
        ("money", re.compile(r"(?<![\w.])(\d+)\s?¢"), lambda m: number_words(int(m.group(1))) + (" cent" if m.group(1) == "1" else " cents"), "¢"),
        ("money", re.compile(rf"\bRs\.?\s?({_AMOUNT})"), lambda m: money_words("₹", m.group(1).replace(",", ""), None), "R"),
        ("sign", re.compile(r"(?<![\w.)])[-−](?=\d)"), lambda m: "minus ", "-−"),
        ("about", re.compile(r"(?<![\w.])~\s?(?=\d)"), lambda m: "about ", "~"),
        ("money", re.compile(rf"(?<![A-Za-z])(US|HK|NZ|AU|CA|A|C|S)?([$€£¥₹₩])\s?(\d[\d,]*)\s?[-–]\s?\2?({_AMOUNT})"
                             r"(?![\w.])"), _money_range, "$€£¥₹₩"),
        ("money", re.compile(rf"(?<![A-Za-z])(US|HK|NZ|AU|CA|A|C|S)?([$€£¥₹₩])\s?({_AMOUNT}){_SCALE}"), _money, "$€£¥₹₩"),
        ("money", re.compile(rf"\b({_CODE_ALT})\s?({_AMOUNT}){_SCALE}"), _money_code_before, rules.DIGITS),
        ("money", re.compile(rf"({_AMOUNT})\s?([€£¥₹₩]|\b(?:{_CODE_ALT})\b)"), _money_after, rules.DIGITS),
        ("money range", re.compile(r"\b(dollars|euros|pounds|rupees|yen|won|pence|cents)\s?[-–]\s?(?=[a-z])"),
         lambda m: m.group(1) + " to ", "-–"),
        ("percent", re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*[-–~]\s*(\d[\d,]*(?:\.\d+)?)\s*%"),
         lambda m: f"{_plain_number(m.group(1))} to {_plain_number(m.group(2))} percent", "%"),
        ("percent", re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*%"), lambda m: _plain_number(m.group(1)) + " percent", "%"),
        ("decade", re.compile(r"(?<![\d'’])(1[0-9]|20)([0-9]0)'?s\b"), lambda m: decade_words(int(m.group(1) + m.group(2))), "s"),
        ("decade", re.compile(r"(?<![\w\d])['’]?([2-9]0)'?s\b"), lambda m: decade_words(int(m.group(1))), "s"),
        ("ordinal", re.compile(r"(?<![\d.])(\d+)(st|nd|rd|th)\b"), lambda m: ordinal_words(int(m.group(1))), rules.DIGITS),
        ("scale", re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(k|\s?bn|\s?mn|M(?=\s+[a-z])|(?<=\.\d)M)(?!\w|\.\d)"), _scaled, "kMn"),
        ("range", re.compile(r"(?<![\w.-])(\d[\d,]*(?:\.\d+)?)(?:-|\s?[–~]\s?)(\d[\d,]*(?:\.\d+)?)(?![\w-]|\.\d)"),
         lambda m: f"{m.group(1)} to {m.group(2)}", "-–~"),
        ("unit", re.compile(_UNIT_PATTERN), _unit, rules.DIGITS),
        ("per", re.compile(rf"(?<=[a-z%])\s?/\s?({_PER_ALT})\b|(?<=\bper )({_PER_ALT})\b"),
         lambda m: (" per " if m.group(1) else "") + _PER[m.group(1) or m.group(2)], "/p"),
        ("power", re.compile(rf"(?<![\w.])(\d+(?:\.\d+)?|[A-Za-z])(?:\^([-−]?\d+)|({_SUP}))"), _power, "^⁰¹²³⁴⁵⁶⁷⁸⁹"),
        ("fraction", re.compile(r"(?<![\d/.])(\d{1,3})/(\d{1,3})(?![\d/])"), _fraction, "/"),
        ("arithmetic", re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s+[+\-−×*x÷/=<>]\s+\d+(?:\.\d+)?)+(?![\w.])"), _math, "+-−×*x÷/=<>"),
        ("letters and digits", re.compile(r"\b([A-Z])2([A-Z])\b"), lambda m: f"{m.group(1)} to {m.group(2)}", "2"),
        ("letters and digits", re.compile(r"(?<![\w.])(\d{3,4})([pP])\b"), lambda m: _paired(m.group(1)) + " " + m.group(2), "pP"),
        ("letters and digits", re.compile(r"(?<![\w.])(\d)x(\d)(?![\w.])"),
         lambda m: f"{_ONES[int(m.group(1))]} by {_ONES[int(m.group(2))]}", "x"),
        ("times", re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)x(?![\w])"), lambda m: _plain_number(m.group(1)) + " times", "x"),
        ("letters and digits", re.compile(r"(?<=[A-Za-z])-?(?=\d)|(?<=\d)-?(?=[A-Za-z])"), lambda m: " ", rules.DIGITS),
        ("year", re.compile(r"\b((?:in|In|since|Since|by|until|year|circa|around) )(10\d\d)\b(?![\d%]|[.,]\d)"),
         lambda m: m.group(1) + year_words(int(m.group(2))), rules.DIGITS),
        ("year", re.compile(r"(?<![\d.,$])(1[1-9]\d\d|20\d\d)(?![\d%]|[.,]\d)"), lambda m: year_words(int(m.group(1))), rules.DIGITS),
        ("number", re.compile(r"\d+(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?"), lambda m: _plain_number(m.group(0)), rules.DIGITS),
        ("musical key", re.compile(r"\b([A-G])#(?!\w)"), lambda m: m.group(1) + " sharp", "#"),
        ("approximately", re.compile(r"(?<=[\w)²³])\s*≈\s*"), lambda m: " is approximately ", "≈"),
        ("approximately", re.compile(r"≈\s*"), lambda m: "approximately ", "≈"),
        ("symbol", re.compile(r"\s*([&+@=#%°±≥≤≠©§∞π√×÷])\s*"), lambda m: " " + _SYMBOLS[m.group(1)] + " ", "&+@=#%°±≥≤≠©§∞π√×÷"),
    ]


def _version_words(v: str) -> str:
    parts = v.split(".")
    return " point ".join(digit_words(p) if len(p) > 1 and p.startswith("0") else number_words(int(p)) for p in parts)
