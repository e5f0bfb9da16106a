"""Toneless pinyin syllable -> (initial, final) in upstream's opencpop-style phone set.

Zero-initial syllables get the pseudo initials AA/EE/OO (a-, e-, o- syllables) or
y/w with the written rest (yan -> y En, ye -> y E, yu -> y v); `i` after z/c/s is `i0`, after zh/ch/sh/r it is `ir`; `u` after j/q/x/y is
`v`; the contracted finals iu/ui/un are kept as written.
"""

from __future__ import annotations

INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s")

# y-/w- syllables keep their written rest, except: yu(an/e/n) -> v.., yan -> En, ye -> E
_Y_SPECIAL = {"yan": "En", "ye": "E", "yi": "i", "yu": "v", "yuan": "van", "yue": "ve", "yun": "vn"}


def split_syllable(syl: str) -> tuple[str, str] | None:
    """'zhi' -> ('zh', 'ir'); 'an' -> ('AA', 'an'); None if not a pinyin syllable."""
    s = syl.lower().replace("ü", "v").replace("u:", "v")
    if s.startswith("y") and len(s) > 1:
        return "y", _Y_SPECIAL.get(s.replace("yv", "yu"), s[1:])
    if s.startswith("w") and len(s) > 1:
        return "w", s[1:]
    for ini in INITIALS:
        if s.startswith(ini) and len(s) > len(ini):
            fin = s[len(ini):]
            if fin == "i" and ini in ("z", "c", "s"):
                fin = "i0"
            elif fin == "i" and ini in ("zh", "ch", "sh", "r"):
                fin = "ir"
            elif ini in ("j", "q", "x") and fin.startswith("u"):
                fin = "v" + fin[1:]
            return ini, fin
    if s and s[0] in "aeo":
        return {"a": "AA", "e": "EE", "o": "OO"}[s[0]], s
    return None
