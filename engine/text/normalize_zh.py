"""Mandarin text normalization: numbers and symbols read as a native speaker reads them.

A list of named rules, applied in order, each turning one kind of written number or symbol into Han
characters: fractions written as one character (½), powers and scientific notation, IP addresses and
version numbers, phone numbers digit by digit (1 as 幺, with the country code after 加), dates, clock
times and their ranges, scores and ratios, money (symbol before or after the amount), per-unit rates
(元/斤: 每), discounts (95折: 九五折), percentages, temperatures, units, fractions, ranges, arithmetic
and comparisons, negatives, years digit by digit, ordinals, decimals, then integers (两 before a
measure word, digit strings for codes, zero-padded months and days read as numbers). Numbers glued
to Latin letters (GPT-4, 5G, Q3) are left for the English reader. `notes` collects (rule, written,
read) for `gsvd g2p --explain`.
"""

from __future__ import annotations

import functools
import re

from gsvd.engine.text import rules
from gsvd.engine.text.numbers_zh import PHONE_DIGITS, decimal, digits, integer
from gsvd.engine.text.rules import Notes

_NUM = r"\d+(?:\.\d+)?"
_LEFT = r"(?<![A-Za-z\d.])(?<![A-Za-z]-)"  # not glued to Latin letters or another number
_RIGHT = r"(?![A-Za-z\d]|\.\d)"  # nor the whole part of a decimal glued to letters (3.0T)
_UNITS = [
    ("km/h", "千米每小时"), ("m/s", "米每秒"), ("km²", "平方千米"), ("m²", "平方米"), ("cm²", "平方厘米"),
    ("m³", "立方米"), ("km", "千米"), ("kg", "千克"), ("cm", "厘米"), ("mm", "毫米"), ("mg", "毫克"), ("ml", "毫升"),
    ("mL", "毫升"), ("kb", "千字节"), ("KB", "千字节"), ("MB", "兆字节"), ("GB", "吉字节"), ("TB", "太字节"),
    ("kW", "千瓦"), ("kWh", "千瓦时"), ("kV", "千伏"), ("Hz", "赫兹"), ("GHz", "吉赫兹"), ("MHz", "兆赫兹"), ("dL", "分升"),
    ("℃", "摄氏度"), ("°C", "摄氏度"), ("°F", "华氏度"), ("°", "度"), ("g", "克"), ("m", "米"), ("L", "升"),
    ("t", "吨"), ("h", "小时"), ("min", "分钟"), ("s", "秒"), ("ms", "毫秒"), ("V", "伏"), ("W", "瓦"),
]
_UNIT_MAP = dict(_UNITS)
_UNIT_ALT = "|".join(re.escape(u) for u, _ in sorted(_UNITS, key=lambda u: -len(u[0])))
_CURRENCY = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑", "₩": "韩元", "HK$": "港元", "US$": "美元"}
_CUR_ALT = "HK\\$|US\\$|[¥￥$€£₩]"
# measure words after which a lone 2 reads 两 (两个, 两本); 月/号/日/楼/年级 keep 二
_MEASURES = set("个本只条张件位名次岁人天周年支辆台块元斤米倍双对套份种家所间座把杯瓶碗部首篇句场项门颗粒片头匹架艘群批页章段遍趟回声步口棵朵封盒包袋箱层道点万千百亿组根"
                "吨克升秒枚节晚室厅轮集盘栋期毛角样排届款季局股亩成串幅顿餐桌站圈罐壶桶册")
_NOT_MEASURES = ("年级", "年代")  # 2年级 is 二年级 (a grade, not two years)
_MEASURE_WORDS = ("公斤", "公里", "千米", "千克", "小时", "分钟", "星期", "礼拜", "美元", "欧元", "英镑", "毫米", "厘米")
_CODE_CUES = ("编号", "代码", "账号", "卡号", "邮编", "工号", "学号", "单号", "房间", "尾号", "车次", "航班", "密码",
              "验证码", "门牌")
_PHONE_CUES = ("号码", "电话", "拨打", "致电", "热线", "手机", "拨")
_CUE_TAIL = r"(?:是|为|:|：|\s)*$"  # the cue word right before the number
_RATIO_CUES = ("比分", "比例", "比率", "以", "比赛", "战", "胜", "负", "赢", "输")
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
           "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8)}
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_SUP = "[⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+"
_COMPARISONS = {"≥": "大于等于", "≤": "小于等于", "≠": "不等于", "≈": "约等于", "=": "等于", "＝": "等于"}


def _units(m: re.Match) -> str:
    return m.group(1) + _UNIT_MAP[m.group(2)]


def _per_unit(m: re.Match) -> str:
    """5元/斤 -> 5元每斤, 120mg/dL -> 120毫克每分升 (the number is read later)."""
    return m.group(1) + _UNIT_MAP.get(m.group(2), m.group(2)) + "每" + _UNIT_MAP.get(m.group(3), m.group(3))


def _vulgar(m: re.Match) -> str:
    num, den = _VULGAR[m.group(2)]
    frac = integer(str(den), False) + "分之" + integer(str(num), False)
    return (integer(m.group(1), False) + "又" if m.group(1) else "") + frac


def _exponent(e: str) -> str:
    e = e.translate(_SUPERSCRIPT).replace("−", "-")
    return decimal(e.replace("+", ""))


def _power(m: re.Match) -> str:
    """3^2, 3² -> 三的平方; 2^10 -> 二的十次方."""
    e = (m.group(2) or m.group(3)).translate(_SUPERSCRIPT)
    tail = {"2": "平方", "3": "立方"}.get(e, _exponent(e) + "次方")
    return decimal(m.group(1)) + "的" + tail


def _scientific(m: re.Match) -> str:
    """1.5e-3, 3×10^8, 6×10²³ -> 一点五乘十的负三次方."""
    return decimal(m.group(1)) + "乘十的" + _exponent(m.group(2) or m.group(3) or m.group(4)) + "次方"


def _ip(m: re.Match) -> str:
    return "点".join(digits(g) for g in m.group(0).split("."))


def _version(m: re.Match) -> str:
    return "点".join(digits(g) if g.startswith("0") and len(g) > 1 else integer(g, False) for g in m.group(0).split("."))


def _intl_phone(m: re.Match) -> str:
    return "加" + digits(m.group(1), PHONE_DIGITS) + digits(m.group(2), PHONE_DIGITS)


def _discount(m: re.Match) -> str:
    return digits(m.group(1) + (m.group(2) or ""))


def _phone(m: re.Match) -> str:
    return digits(m.group(0), PHONE_DIGITS)


def _date(m: re.Match) -> str:
    y, mo, d = m.group(1), int(m.group(2)), m.group(3)
    if not 1 <= mo <= 12 or (d and not 1 <= int(d) <= 31):
        return m.group(0)
    return f"{digits(y)}年{integer(str(mo), False)}月" + (f"{integer(d, False)}日" if d else "")


def _clock(m: re.Match) -> str:
    h, mi, sec = int(m.group(1)), m.group(2), m.group(3)
    before = m.string[max(0, m.start() - 3) : m.start()]
    if h > 24 or int(mi) > 59 or (sec and int(sec) > 59) or any(c in before for c in _RATIO_CUES):
        return integer(m.group(1), False) + "比" + integer(mi, False) + ("比" + integer(sec, False) if sec else "")
    out = ("两" if h == 2 else integer(str(h))) + "点"
    if int(mi) == 0 and not sec:
        return out + "整"
    out += ("零" if mi.startswith("0") and int(mi) else "") + integer(mi, False) + "分"
    if sec:
        out += ("零" if sec.startswith("0") and int(sec) else "") + integer(sec, False) + "秒"
    return out


def _ratio(m: re.Match) -> str:
    return "比".join(integer(x, False) for x in m.group(0).split(":"))


def _money(m: re.Match) -> str:
    amount, scale = m.group(2), m.group(3) or ""
    return _amount(amount) + scale + _CURRENCY[m.group(1)]


def _money_after(m: re.Match) -> str:
    return _amount(m.group(1)) + _CURRENCY[m.group(2)]


def _amount(amount: str) -> str:
    """An amount before its currency: 2 is 两 (两美元), as before any measure word."""
    return "两" if amount == "2" else decimal(amount)


def _percent(m: re.Match) -> str:
    lo, hi, sign = m.group(2), m.group(3), m.group(4)
    head = "千分之" if sign == "‰" else "百分之"
    neg = "负" if m.group(1) else ""
    return neg + head + decimal(lo) + ("到" + decimal(hi) if hi else "")


def _percent_range(m: re.Match) -> str:
    head = "千分之" if m.group(2) == "‰" else "百分之"
    return head + decimal(m.group(1)) + "到" + head + decimal(m.group(3))


def _below_zero(m: re.Match) -> str:
    return "零下" + decimal(m.group(1)) + _UNIT_MAP.get(m.group(2), m.group(2))


def _fraction(m: re.Match) -> str:
    return integer(m.group(2), False) + "分之" + integer(m.group(1), False)


def _range(m: re.Match) -> str:
    """3-5 -> 三到五; a bound of 2 before a measure word reads 两 (2-3天: 两到三天); a negative bound of a
    temperature reads 零下 (-5~5℃: 零下五到五摄氏度)."""
    after = m.string[m.end() : m.end() + 2]
    measured = _before_measure(after) and not m.string[: m.start()].endswith("第")
    cold = after.startswith(("℃", "°C", "°F", "度", "摄氏", "华氏"))
    return "到".join(_bound(x.replace("−", "-"), measured, cold) for x in (m.group(1), m.group(2)))


def _bound(x: str, measured: bool, cold: bool) -> str:
    if measured and x == "2":
        return "两"
    return "零下" + decimal(x[1:]) if cold and x.startswith("-") else decimal(x)


def _before_measure(after: str) -> bool:
    return (after[:1] in _MEASURES or after.startswith(_MEASURE_WORDS)) and not after.startswith(_NOT_MEASURES)


def _math(m: re.Match) -> str:
    ops = {"+": "加", "-": "减", "−": "减", "×": "乘", "*": "乘", "÷": "除以", "/": "除以", "=": "等于", "＝": "等于",
           ">": "大于", "<": "小于", **_COMPARISONS}
    parts = re.split(r"(?<=\d)\s*([+\-−×*÷/=＝><≥≤≠≈])\s*", m.group(0))
    return "".join(ops[p] if p in ops else decimal(p) for p in parts if p)


def _negative(m: re.Match) -> str:
    return "负" + decimal(m.group(1))


def _year(m: re.Match) -> str:
    return digits(m.group(1))


def _ordinal(m: re.Match) -> str:
    return "第" + integer(m.group(1), False)


def _decimal(m: re.Match) -> str:
    return decimal(m.group(0))


def _integer(m: re.Match) -> str:
    s = m.group(0)
    before = m.string[max(0, m.start() - 6) : m.start()]
    after = m.string[m.end() : m.end() + 2]
    if re.search(f"(?:{'|'.join(_PHONE_CUES)}){_CUE_TAIL}", before) or m.string.startswith("热线", m.end()):
        return digits(s, PHONE_DIGITS)  # service and phone numbers: 幺二三四五
    if s.startswith("0") and len(s) == 2 and after[:1] and after[:1] in "月日号时点":
        return integer(s, False)  # zero-padded month, day or hour: 03月 is 三月 (but 05分 stays 零五分)
    if (s.startswith("0") and len(s) > 1) or len(s) > 16 or re.search(f"(?:{'|'.join(_CODE_CUES)}){_CUE_TAIL}", before):
        return digits(s)
    if s == "2" and _before_measure(after) and not before.endswith("第"):
        return "两"
    return integer(s, liang=not before.endswith("第"))


_PHONE_RE = (r"(?<![\d\-])(?:1[3-9]\d(?:[\s-]?\d{4}){2}|0\d{2,3}[\s-]\d{7,8}|[48]00[\s-]?\d{3}[\s-]?\d{4}"
             r"|\d{3}-\d{4}-\d{4})(?![\d\-])")
_PER_UNITS = rf"{_UNIT_ALT}|小时|分钟|公里|公斤|[\u4e00-\u9fff]"

@functools.cache
def _table() -> list[rules.Rule]:
    """The rules, compiled on first use: a process that never reads Chinese never compiles them."""
    return [
        ("separator", re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), lambda m: "", ","),
        ("fraction sign", re.compile(r"(?<![\d.])(\d+)?\s?([½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞])"), _vulgar, "½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"),
        ("plus-minus", re.compile(r"±\s*(?=\d)"), lambda m: "正负", "±"),
        ("scientific", re.compile(rf"(?<![\w.])({_NUM})(?:[eE]([-+−]?\d+)|\s*[×xX*]\s*10(?:\s*\^\s*([-−]?\d+)|({_SUP})))"
                                  r"(?![\w.])"), _scientific, "eE×xX*"),
        ("power", re.compile(rf"(?<![\w.])({_NUM})(?:\s*\^\s*([-−]?\d+)|({_SUP}))"), _power, "^⁰¹²³⁴⁵⁶⁷⁸⁹"),
        ("ip address", re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"), _ip, "."),
        ("international phone", re.compile(r"(?<![\w+])\+(\d{1,3})((?:[\s-]+\(?\d{1,8}\)?){1,4})(?!\d)"), _intl_phone, "+"),
        ("phone number", re.compile(_PHONE_RE), _phone),
        ("date", re.compile(r"(?<![\d.])(\d{4})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?(?![\d.])"), _date, "-/."),
        ("version", re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.])"), _version, "."),
        ("clock range", re.compile(r"(?<![\d:.])(\d{1,2}:\d{2}(?::\d{2})?)\s*[-~～—–至到]\s*(?=\d{1,2}:\d{2})"),
         lambda m: m.group(1) + "到", ":"),
        ("clock time", re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])"), _clock, ":"),
        ("ratio", re.compile(r"(?<![\d:.])\d+(?::\d+)+(?![\d:])"), _ratio, ":"),
        ("money", re.compile(rf"({_CUR_ALT})\s*({_NUM})(万|亿)?"), _money, "¥￥$€£₩"),
        ("money", re.compile(rf"(?<![\d.])({_NUM})\s*([€£₩])"), _money_after, "€£₩"),
        ("per unit", re.compile(rf"{_LEFT}({_NUM})\s*({_PER_UNITS})\s*/\s*({_PER_UNITS})(?![A-Za-z])"), _per_unit, "/"),
        ("scale", re.compile(rf"{_LEFT}({_NUM})([kw])(?![A-Za-z])"),
         lambda m: decimal(m.group(1)) + {"k": "千", "w": "万"}[m.group(2)], "kw"),  # 3.5k人, 10w+: 三点五千, 十万
        ("resolution", re.compile(r"(?<![\w.])(\d{3,4})[pP](?![A-Za-z])"), lambda m: digits(m.group(1)) + "P", "pP"),
        ("discount", re.compile(r"(?<![\d.])(\d)(?:\.?(\d))?(?=折)"), _discount, "折"),
        ("percent range", re.compile(rf"({_NUM})\s*([%％‰])\s*[-~～至到]\s*({_NUM})\s*[%％‰]"), _percent_range, "%％‰"),
        ("percent", re.compile(rf"(-)?({_NUM})(?:\s*[-~～]\s*({_NUM}))?\s*([%％‰])"), _percent, "%％‰"),
        ("below zero", re.compile(r"(?<![A-Za-z\d])[-−](\d+(?:\.\d+)?)\s*(℃|°C|°F|度)"), _below_zero, "-−"),
        ("unit", re.compile(rf"{_LEFT}({_NUM})\s*({_UNIT_ALT})(?![A-Za-z²³])"), _units),
        ("year span", re.compile(r"(?<![\d.])((?:19|20)\d\d)\s*[-~～—–/至到]\s*((?:19|20)\d\d)(?![\d.])"),
         lambda m: digits(m.group(1)) + "到" + digits(m.group(2)) if m.group(1) < m.group(2) else m.group(0), "-~～—–/至到"),
        ("fraction", re.compile(r"(?<![\d/.])(\d{1,4})/(\d{1,4})(?![\d/])"), _fraction, "/"),
        ("year", re.compile(r"(?<![\d.])(\d{4})(?=\s*(?:[-~～至到—–]\s*\d{4}\s*)?年(?!级))"), _year, "年"),
        ("year range", re.compile(r"(?<=[零一二三四五六七八九])\s*[-~～—–]\s*(?=[零一二三四五六七八九]{4}年)"), lambda m: "到", "年"),
        ("equation", re.compile(rf"{_LEFT}{_NUM}(?:\s*[+\-−×*÷/]\s*{_NUM})*\s*[=＝><≥≤≠≈]\s*[-−]?{_NUM}{_RIGHT}"), _math, "=＝><≥≤≠≈"),
        ("range", re.compile(rf"(?<![A-Za-z\d.])((?<![A-Za-z\d])[-−]?{_NUM})\s*[-~～—–]\s*([-−]?{_NUM}){_RIGHT}"), _range, "-−~～—–"),
        ("arithmetic", re.compile(rf"{_LEFT}{_NUM}(?:\s*[+×*÷]\s*{_NUM})+{_RIGHT}"), _math, "+×*÷"),
        ("negative", re.compile(rf"(?<![A-Za-z\d])[-−]({_NUM}){_RIGHT}"), _negative, "-−"),
        ("ordinal", re.compile(r"第\s*(\d+)"), _ordinal, "第"),
        ("decimal", re.compile(rf"{_LEFT}\d+\.\d+{_RIGHT}"), _decimal, "."),
        ("integer", re.compile(rf"{_LEFT}\d+{_RIGHT}"), _integer),
        ("comparison", re.compile("[≥≤≠≈=＝]"), lambda m: _COMPARISONS[m.group(0)], "≥≤≠≈=＝"),
    ]


def normalize_symbols(text: str, notes: Notes | None = None) -> str:
    """Written numbers and symbols -> Han characters (Latin-glued numbers are left for English)."""
    if not any(c.isdigit() or c in "%％‰℃°¥￥$€£₩½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞±≥≤≠≈" for c in text):
        return text
    return rules.apply(text, _table(), notes, "zh number: ")
