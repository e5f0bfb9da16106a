"""Text frontend behaviour beyond the golden readings: sentence splitting around numbers and
abbreviations, the `gsvd g2p` command (torch-free, explained, bad input refused), the compiled
lexicon cache, the offline OOV model, and fuzzing over any Unicode input."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsvd.engine.errors import GsvdError, InvalidInput
from gsvd.engine.text import en_oov, numbers_zh, phonemize, rules, split_text, store
from gsvd.engine.text.symbols import symbols


@pytest.mark.parametrize("text", [
    "The meeting is at 10:30, and the score was 3:2.",
    "It cost $1,200 and 12,999 people came.",
    "价格是1,500元，时间10:30。",
    "会議は10:30からです。1,500円です。",
])
def test_split_never_cuts_inside_a_number(text):
    pieces = split_text(text, "cut5")
    for token in ("10:30", "3:2", "$1,200", "12,999", "1,500"):
        if token in text:
            assert any(token in p for p in pieces), pieces


def test_split_keeps_abbreviations_with_their_word():
    pieces = split_text("Dr. Smith met Jan. 5 in the U.S. today. Then he left.", "cut5")
    assert pieces == ["Dr. Smith met Jan. 5 in the U.S. today.", "Then he left."]


def test_split_rejects_unknown_method():
    with pytest.raises(InvalidInput, match="split method must be one of"):
        split_text("hello", "cut9")


def _g2p(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "gsvd", "g2p", *args],
                          capture_output=True, text=True, timeout=120)


def test_g2p_cli_is_torch_free_and_shows_words_and_phones():
    out = _g2p("我还钱给他，价格约为12,999元。", "--explain")
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert "torch" not in imported and "jieba" not in imported and "pypinyin" not in imported
    assert "normalized: 价格约为一万两千九百九十九元." in out.stdout
    assert "还钱" in out.stdout and "h uan2 q ian2" in out.stdout
    assert "zh number: integer: 12999 -> 一万两千九百九十九" in out.stdout
    assert "lexicon fix" in out.stdout  # --explain names the source of each reading


def test_g2p_cli_explains_english_rules():
    out = _g2p("She read the record at 10:30.", "--explain")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "R EH1 D" in out.stdout and "heteronym rule" in out.stdout
    assert "en: clock time: 10:30 -> ten thirty" in out.stdout


@pytest.mark.parametrize("args, message", [
    (("",), "the text is empty"),
    (("   ",), "the text is empty"),
    (("...",), "nothing to read"),
    (("hi", "--split", "cut9"), "split method must be one of"),
    (("hi", "--version", "v3"), "--version must be one of v1, v2"),
    (("hi", "--lang", "xx"), "--lang must be one of"),
])
def test_g2p_cli_refuses_bad_input_with_a_message(args, message):
    out = _g2p(*args)
    assert out.returncode == 2
    assert message in out.stderr.replace("\n", " ")
    assert "Traceback" not in out.stderr


def test_store_builds_once_into_the_cache_dir_and_rebuilds_a_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_tries", {})
    store.set_cache_dir(tmp_path)
    try:
        trie = store.trie("en")
        assert trie["cat"][0].decode().split("|")[0] == "K AE1 T"
        files = list(tmp_path.glob("en-*.marisa"))
        assert len(files) == 1 and not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers
        files[0].write_bytes(b"not a trie")
        monkeypatch.setattr(store, "_tries", {})
        assert store.trie("en")["dog"][0].decode().startswith("D AO1 G")
    finally:
        store.set_cache_dir(None)


def test_oov_model_runs_offline_without_nltk():
    code = ("import sys; from gsvd.engine.text import en_oov; p = en_oov.predict('blorfing'); "
            "print(' '.join(p)); print('nltk' in sys.modules, 'g2p_en' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    phones, flags = out.stdout.strip().splitlines()
    assert phones.startswith("B L AO1 R F") and phones.endswith("NG")
    assert flags == "False False"
    assert en_oov.available()


@pytest.mark.parametrize("digits, words", [
    ("10", "十"), ("15", "十五"), ("110", "一百一十"), ("1001", "一千零一"), ("20000", "两万"),
    ("100010", "十万零一十"), ("120000000", "一亿两千万"), ("10001000", "一千万一千"), ("0", "零"),
])
def test_zh_integer_reader(digits, words):
    assert numbers_zh.integer(digits) == words


def test_rules_run_only_when_the_text_has_a_character_they_need():
    calls: list[str] = []

    def mark(m: re.Match) -> str:
        calls.append(m.group(0))
        return "#"

    table = [("digit", re.compile(r"\d"), mark, rules.DIGITS), ("b, given a %", re.compile("b"), mark, "%"),
             ("any a", re.compile("a"), mark)]
    notes: rules.Notes = []
    assert rules.apply("a1b", table, notes, "t: ") == "##b"  # no % in the text: the b rule is skipped
    assert calls == ["1", "a"] and notes == [("t: digit", "1", "#"), ("t: any a", "a", "#")]
    calls.clear()
    assert rules.apply("ab%", table) == "##%"
    assert calls == ["b", "a"]


_TABLE = {v: len(symbols(v)) for v in ("v1", "v2")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
       mode=st.sampled_from(["auto", "zh", "en", "ja", "all_zh", "all_ja"]),
       version=st.sampled_from(["v1", "v2"]))
def test_fuzz_any_unicode_gives_bounded_phones_in_the_symbol_table(text, mode, version):
    try:
        ph = phonemize.phonemize(text, mode, version, explain=True)
        split_text(phonemize.clean(text))
    except GsvdError:
        return
    assert len(ph.phones) == len(ph.phone_ids)
    assert len(ph.phones) <= 20 * len(text) + 8
    assert all(0 <= i < _TABLE[version] for i in ph.phone_ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.from_regex(r"[-+$€£¥%:,./ 0-9A-Za-z一二三年月日点时分元]{0,60}", fullmatch=True),
       mode=st.sampled_from(["auto", "zh", "en", "ja"]))
def test_fuzz_number_like_text(text, mode):
    """Digits, separators and symbols in every combination: the normalizers never raise or loop."""
    ph = phonemize.phonemize(text, mode)
    assert len(ph.phones) <= 20 * len(text) + 8
