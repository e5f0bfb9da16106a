"""Chinese number words: integers (with 零 and 两 as a native speaker reads them), decimals, digit strings.

Our own reader instead of cn2an: 40 lines give the exact readings the frontend needs (两 before a
magnitude or a measure word, 十 not 一十 at the start, digit strings for years and codes), and it
imports in no time.
"""

from __future__ import annotations

DIGITS = "零一二三四五六七八九"
PHONE_DIGITS = "零幺二三四五六七八九"
_SMALL = ("", "十", "百", "千")
_BIG = ("", "万", "亿", "万亿")


def digits(s: str, table: str = DIGITS) -> str:
    """'2021' -> 二零二一 (years, codes, the digits after a decimal point)."""
    return "".join(table[ord(c) - 48] for c in s if "0" <= c <= "9")


def _group(n: int, liang: bool) -> str:
    """0 < n < 10000 -> words; `liang`: a leading 2 before 百/千 reads 两."""
    out, zero = "", False
    for pos in range(3, -1, -1):
        d = n // 10**pos % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        word = "两" if d == 2 and liang and not out and pos >= 2 else DIGITS[d]
        out += word + _SMALL[pos]
    return out


def integer(s: str, liang: bool = True) -> str:
    """'12000' -> 一万两千, '10' -> 十, '110' -> 一百一十, '0' -> 零 (up to 10^16)."""
    s = s.lstrip("0") or "0"
    if len(s) > 16:
        return digits(s)
    n = int(s)
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out, zero = "", False
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            zero = bool(out)
            continue
        if out and (zero or g < 1000):
            out += "零"
        zero = False
        out += ("两" if g == 2 and i and liang and not out else _group(g, liang)) + _BIG[i]
    if out.startswith("一十"):
        out = out[1:]  # 10-19 at the start: 十二, 十二万, not 一十二
    return out


def decimal(s: str) -> str:
    """'3.14' -> 三点一四; '-0.5' -> 负零点五; '12' -> 十二."""
    sign = "负" if s.startswith("-") else ""
    s = s.lstrip("-+")
    whole, _, frac = s.partition(".")
    out = integer(whole or "0", liang=False)
    if frac:
        out += "点" + digits(frac)
    return sign + out
