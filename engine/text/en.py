"""English: normalization (the rules of `text.normalize_en`: numbers, dates, times, money, measures,
ranges, abbreviations, symbols), CMUdict lookup from the compiled trie (`text.store`), acronyms
spelled, mixed-case words split, heteronyms by a part-of-speech guess from the neighbouring words,
and out-of-vocabulary words through g2p-en's learned model (`text.en_oov`). Phones are ARPAbet with
stress digits (upstream's set).

The part-of-speech guess is rule-based on purpose: the offline taggers that ship their data in a
wheel (spaCy models, flair) cost seconds of start-up, and nltk's tagger downloads its data at run
time. A heteronym is decided by the closed-class words around it (determiners, pronouns, modals,
prepositions, auxiliaries), which is what a tagger mostly looks at for these words too.
"""

from __future__ import annotations

import functools
import re

from gsvd.engine.text import en_oov, normalize_en, rules, store
from gsvd.engine.text.rules import Notes

_LETTERS = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F", "g": "JH IY1", "h": "EY1 CH",
    "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L", "m": "EH1 M", "n": "EH1 N", "o": "OW1", "p": "P IY1",
    "q": "K Y UW1", "r": "AA1 R", "s": "EH1 S", "t": "T IY1", "u": "Y UW1", "v": "V IY1", "w": "D AH1 B AH0 L Y UW0",
    "x": "EH1 K S", "y": "W AY1", "z": "Z IY1",
}
_PUNCT = {",": ",", ".": ".", "!": "!", "?": "?", ";": ",", ":": ",", "…": "…", "-": "-", "—": "-"}
# all-caps words read as words, not letters
_WORD_ACRONYMS = {"NASA", "NATO", "UNESCO", "UNICEF", "LASER", "RADAR", "SCUBA", "COVID", "AIDS", "OPEC", "FIFA",
                  "IKEA", "PIN", "RAM", "ROM", "SIM", "LAN", "WAN", "SWAT", "ASAP", "GIF", "JPEG", "NAFTA", "SARS",
                  "LOL", "YOLO", "FOMO", "NIMBY", "OK", "TOEFL", "NASDAQ", "ISIS", "DARPA", "WASP", "POTUS",
                  "SCOTUS", "SONAR", "CAPTCHA", "EMOJI", "PDF", "JSON"}
_SPELL_ALWAYS = {"OK", "PDF"}


def normalize(text: str, notes: Notes | None = None) -> str:
    text = rules.apply(text, normalize_en.table(), notes, "en: ")
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
    "phd": "P IY1 EY1 CH D IY1", "json": "JH EY1 S AH0 N",
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
            "polish", "does", "lives", "winds", "leads", "rows", "bows", "used", "resume", "perfect", "invalid"}
_PRONOUNS = {"i", "you", "we", "they", "he", "she", "it"}
_COUNTS = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "many", "several", "few", "some",
           "the", "these", "those", "all"}
_PERFORMED = {"played", "play", "plays", "playing", "performed", "perform", "performs", "performing", "sang", "sing",
              "sings", "singing", "broadcast", "broadcasts", "streamed", "streams", "streaming", "aired", "recorded",
              "shown", "showed", "appeared", "appear", "appears", "airs", "televised"}
_FISHING = {"caught", "catch", "catching", "fishing", "fish", "fisherman", "lake", "river", "pond", "bait", "largemouth",
            "smallmouth", "striped", "sea", "trout", "fried", "grilled"}
_METAL = {"metal", "metals", "toxic", "poisoning", "poisoned", "pipes", "paint", "pencil", "bullets", "exposure",
          "mercury", "zinc", "copper", "tin", "iron"}
_LEAD_ROLES = {"singer", "singers", "role", "roles", "actor", "actress", "guitarist", "vocalist", "author", "authors",
               "investigator", "story", "character", "engineer", "developer", "designer", "negotiator", "time", "times"}
_BOW_KNOT = {"tie", "ties", "and", "arrow", "arrows", "string", "strings", "hunting", "hunter"}
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
        adj = prev in _DET or prev in _BE or nxt in _LIVE_ADJ_NEXT or prev in ("go", "goes", "went", "gone", "going") \
            or prev in _PERFORMED
        if word == "lives":
            adj = prev in _DET or prev in _PREP or prev.endswith("'s")  # their lives (noun) vs she lives (verb)
        return ((("L", "AY1", "V", "Z") if word == "lives" else ("L", "AY1", "V")) if adj else
                (("L", "IH1", "V", "Z") if word == "lives" else ("L", "IH1", "V"))), "live: adjective/verb by context"
    if word in ("lead", "leads"):
        metal = nxt in ("poisoning", "pipe", "pipes", "paint", "pencil", "pencils", "levels", "exposure", "content",
                        "weight", "weights", "acid", "shot") or prev in ("of", "unleaded", "molten") \
            or bool({t.lower() for t in tokens} & _METAL) and prev not in _MODAL and prev not in _SUBJ \
            and nxt not in _LEAD_ROLES
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
        turned = nxt in ("up", "down", "around", "back") or prev in ("was", "had", "have", "has", "clock") \
            or prev in _PRONOUNS and nxt in _OBJ
        return (("W", "AW1", "N", "D") if turned else ("W", "UW1", "N", "D")), "wound: past of wind by context"
    if word == "polish":
        proper = tokens[i][0].isupper() and not at_start
        return ((("P", "OW1", "L", "IH0", "SH")) if proper else ("P", "AA1", "L", "IH0", "SH")), "Polish/polish by case"
    if word in ("bass",):
        fish = bool({t.lower() for t in tokens} & _FISHING) or nxt == "boat"
        return (("B", "AE1", "S") if fish else ("B", "EY1", "S")), "bass: music unless the sentence is about fishing"
    if word in ("does", "dove", "bow", "sow", "used", "resume", "perfect", "refuse", "invalid"):
        return _by_neighbours(word, prev, nxt, verbal, at_start)
    if word in ("bows", "row", "rows"):
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


def _by_neighbours(word: str, prev: str, nxt: str, verbal: bool | None, at_start: bool) -> tuple[tuple[str, ...], str]:
    """Heteronyms decided by the word right before or after them."""
    if word == "does":  # two does (deer) vs he does
        deer = prev in _COUNTS or prev in _DET and prev not in ("that", "what", "which")
        return (("D", "OW1", "Z") if deer else ("D", "AH1", "Z")), "does: deer after a number or determiner, else verb"
    if word == "dove":  # he dove (dived) vs a dove
        dived = prev in _PRONOUNS or verbal is True
        return (("D", "OW1", "V") if dived else ("D", "AH1", "V")), "dove: past of dive after a subject, else the bird"
    if word == "bow":  # a bow tie, bow and arrow (knot/weapon) vs take a bow
        knot = nxt in _BOW_KNOT or prev in ("violin", "cello", "crossbow", "ribbon", "hair")
        return (("B", "OW1") if knot else ("B", "AW1")), "bow: knot/weapon before tie/arrow, else bend"
    if word == "sow":  # sow the seeds (verb) vs the sow (pig)
        plant = verbal is True or at_start or prev in _MODAL
        return (("S", "OW1") if plant else ("S", "AW1")), "sow: plant (verb) by context, else the pig"
    if word == "used":  # used to (habit) vs it is used to cut (passive)
        habit = nxt == "to" and prev not in _BE
        return (("Y", "UW1", "S", "T") if habit else ("Y", "UW1", "Z", "D")), "used: 'used to' habit /st/, else /zd/"
    if word == "resume":  # your resume (CV) vs resume the game
        cv = verbal is False or prev in _DET
        v = _pick(word, lambda v: v[-1] == "EY2") if cv else _pick(word, lambda v: not _first_stressed(v))
        return (v or variants(word)[0]), f"resume: {'noun (CV)' if cv else 'verb'} by context"
    if word == "perfect":  # to perfect it (verb) vs a perfect day (adjective, the common reading)
        verb = prev in _MODAL and prev not in ("and", "or", "not", "just", "really", "also") and nxt in _OBJ
        v = _pick(word, lambda v: not _first_stressed(v)) if verb else _pick(word, _first_stressed)
        return (v or variants(word)[0]), f"perfect: {'verb' if verb else 'adjective'} by context"
    if word == "invalid":  # an invalid password (adjective, the common reading) vs the invalid (a sick person)
        person = prev in _DET and (nxt in _PUNCT or nxt in ("", "was", "is", "who", "lay", "lies"))
        v = _pick(word, _first_stressed) if person else _pick(word, lambda v: not _first_stressed(v))
        return (v or variants(word)[0]), f"invalid: {'noun' if person else 'adjective'} by context"
    noun = verbal is False or prev in _DET or prev in _PREP  # refuse: the refuse (rubbish, /s/) vs refuse to go
    v = _pick(word, _first_stressed) if noun else _pick(word, lambda v: not _first_stressed(v))
    v = v or variants(word)[0]
    return (v[:-1] + ("S",) if noun and v[-1] == "Z" else v), f"refuse: {'noun /s/' if noun else 'verb'} by context"


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
    if re.fullmatch(r"[a-z][A-Z]{2,}", word):  # iOS, eID: a letter and an acronym
        return _spell(word[0]) + word_reading(word[1:])[0], "letter + acronym"
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
        if tok == "A" and _article(toks, i):
            out.append((tok, ["AH0"], "article (sentence-initial A before a word)"))
            continue
        phones, source = _cached_reading(tok, shouting)
        out.append((tok, list(phones), source))
    return out


_NOT_AFTER_ARTICLE = {"and", "or", "to", "is", "was", "are", "were", "has", "had", "will", "can", "plus", "minus",
                      "through", "thru", "versus", "vs", "grade", "student"}


def _article(toks: list[str], i: int) -> bool:
    """A capital A at the start of a sentence is the article when a lower-case word follows (A cat sat),
    a letter otherwise (A and B, A B C, A is for apple)."""
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    return (i == 0 or toks[i - 1] in _PUNCT) and nxt[:1].islower() and nxt not in _NOT_AFTER_ARTICLE


def g2p(norm: str) -> list[str]:
    return [p for _, phones, _ in analyze(norm) for p in phones]
