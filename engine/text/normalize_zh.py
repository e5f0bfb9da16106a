"""Mandarin text normalization: how a native speaker reads numbers and symbols.

Rules applied before cn2an's number reading: phone numbers digit by digit (1 as
幺), clock times, dashed/slashed dates, thousands separators, currency symbols,
units, temperatures; then cn2an reads what remains (dates with 年月日, percent,
decimals, fractions, negatives, ranges like 3-5).
"""

from __future__ import annotations

import re

_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"
_UNITS = [
    ("km/h", "千米每小时"), ("km²", "平方千米"), ("m²", "平方米"), ("m³", "立方米"), ("km", "千米"), ("kg", "千克"),
    ("cm", "厘米"), ("mm", "毫米"), ("mg", "毫克"), ("ml", "毫升"), ("mL", "毫升"), ("kb", "千字节"), ("KB", "千字节"),
    ("MB", "兆字节"), ("GB", "吉字节"), ("TB", "太字节"), ("℃", "摄氏度"), ("°C", "摄氏度"), ("°", "度"),
    ("g", "克"), ("m", "米"), ("L", "升"), ("h", "小时"), ("s", "秒"),
]
_UNIT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(" + "|".join(re.escape(u) for u, _ in _UNITS) + r")(?![A-Za-z])")
_UNIT_MAP = dict(_UNITS)
_CURRENCY = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑"}


def _read_int(s: str) -> str:
    import cn2an

    return cn2an.an2cn(str(int(s)))


def _digits(s: str, table: str = _DIGITS) -> str:
    return "".join(table[int(c)] for c in s if c.isdigit())


def _phone(m: re.Match) -> str:
    return _digits(m.group(0), _PHONE_DIGITS)


def _time(m: re.Match) -> str:
    h, mi, sec = int(m.group(1)), m.group(2), m.group(3)
    out = _read_int(str(h)) + "点"
    if int(mi) == 0 and not sec:
        return out + "整"
    out += ("零" if mi.startswith("0") and int(mi) else "") + _read_int(mi) + "分"
    if sec:
        out += ("零" if sec.startswith("0") and int(sec) else "") + _read_int(sec) + "秒"
    return out


def _date(m: re.Match) -> str:
    return f"{_digits(m.group(1))}年{_read_int(m.group(2))}月{_read_int(m.group(3))}日"


def _currency(m: re.Match) -> str:
    return m.group(2) + _CURRENCY[m.group(1)]


def _temperature(m: re.Match) -> str:
    return "零下" + m.group(1) + m.group(2)


def normalize_symbols(text: str) -> str:
    """The pre-pass; leaves Arabic numbers for cn2an except where the reading differs."""
    text = re.sub(r"(?<!\d)(1[3-9]\d{9}|0\d{2,3}-\d{7,8}|\d{3}-\d{4}-\d{4})(?!\d)", _phone, text)
    text = re.sub(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)", _date, text)
    text = re.sub(r"(?<!\d)(\d{1,2}):(\d{2})(?::(\d{2}))?(?!\d)", _time, text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    text = re.sub(r"([¥￥$€£])\s*(\d+(?:\.\d+)?)", _currency, text)
    text = re.sub(r"-(\d+(?:\.\d+)?)(?=\s*(?:℃|°C))", lambda m: "零下" + m.group(1), text)
    return _UNIT_RE.sub(lambda m: m.group(1) + _UNIT_MAP[m.group(2)], text)
