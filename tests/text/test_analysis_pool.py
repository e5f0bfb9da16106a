"""AnalysisPool: concurrent sentences analyzed in worker processes give exactly the inline results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from gsvd.engine.errors import InvalidInput, LanguageNotAvailable
from gsvd.engine.text import Lexicon
from gsvd.engine.text.phonemize import analyze
from gsvd.engine.text.pool import AnalysisPool, default_workers

SENTENCES = [("今天天气很好，我们一起去公园散步吧。", "zh"), ("The weather is nice, let us walk.", "en"),
             ("我爱gsvd和Python。", "auto"), ("好", "zh"), ("Hi.", "en")]


@pytest.fixture(scope="module")
def pool():
    p = AnalysisPool(2, inline_alone=False)  # every call goes to a worker
    assert p.wait_ready(60)
    yield p
    p.close()


def _concurrently(fn, args: list) -> list:
    out: list = [None] * len(args)
    gate = threading.Barrier(len(args))

    def one(i):
        gate.wait()
        try:
            out[i] = fn(*args[i])
        except Exception as exc:  # noqa: BLE001 - compared by the caller
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def test_burst_offloaded_equals_inline(pool):
    args = [(text, lang, "v2", None) for text, lang in SENTENCES * 4]
    got = _concurrently(pool.analyze, args)
    assert pool.stats()["offloaded"] >= len(args)
    assert pool.stats()["in_flight"] == 0
    for a, g in zip(args, got, strict=True):
        want = analyze(*a)
        assert g.phonemized.phone_ids == want.phonemized.phone_ids and g.words == want.words
    assert got[3].phonemized.norm_text.startswith(".")  # short input padded, words of the text as given
    assert got[3].words == [("好", 2)]


def test_errors_and_lexicon_cross_processes(pool, tmp_path):
    lex_file = tmp_path / "lex.toml"
    lex_file.write_text('[en]\n"gsvd" = "JH IY1 EH1 S V IY1 D IY1"\n', encoding="utf-8")
    lex = Lexicon.load(lex_file)
    args = [("gsvd", "en", "v2", lex), ("안녕하세요", "auto", "v2", None), ("x", "klingon", "v2", None)] * 3
    got = _concurrently(pool.analyze, args)
    for g in got[0::3]:
        assert g.phonemized.phones == ["JH", "IY1", "EH1", "S", "V", "IY1", "D", "IY1"]
    assert all(isinstance(g, LanguageNotAvailable) for g in got[1::3])
    assert all(isinstance(g, InvalidInput) and g.field == "language" for g in got[2::3])


def test_dead_worker_is_replaced():
    p = AnalysisPool(1, inline_alone=False)
    try:
        assert p.wait_ready(60)
        assert p.analyze("hello", "en", "v2", None).words == [("hello", 4)]
        (pid,) = p.pids()
        os.kill(pid, signal.SIGKILL)
        p._all[0].proc.wait(timeout=30)
        # sent to the dead worker: answered inline, another worker started
        assert p.analyze("hello world", "en", "v2", None).words == [("hello", 4), ("world", 4)]
        assert p.pids() != [pid]
        assert p.wait_ready(60)
        assert p.analyze("good day", "en", "v2", None).words[0][0] == "good"
        assert p.stats()["offloaded"] == 2
    finally:
        p.close()
    assert p.pids() == [] and p.analyze("ok", "en", "v2", None).words == [("ok", 3)]  # closed: inline


def test_unguarded_main_script_runs(tmp_path):
    """A script with no main guard that makes a pool (multiprocessing's spawn would re-run it in every
    worker): the workers never import it."""
    script = tmp_path / "unguarded.py"
    script.write_text("from gsvd.engine.text.pool import AnalysisPool\n"
                      "p = AnalysisPool(2, inline_alone=False)\n"
                      "print(p.analyze('hi there', 'en', 'v2', None).words)\n"
                      "p.close()\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-P", str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('hi', 2), ('there', 3)]"


def test_lone_calls_run_inline():
    p = AnalysisPool(1)
    try:
        for text in ("one", "two", "three"):
            assert p.analyze(text, "en", "v2", None).words[0][0] == text
        assert p.stats()["offloaded"] == 0  # one at a time: no process round trip
    finally:
        p.close()


def test_inline_without_workers_and_defaults():
    p = AnalysisPool(0)
    assert p.analyze("你好世界", "zh", "v2", None).words == [("你", 2), ("好", 2), ("世", 2), ("界", 2)]
    assert p.stats() == {"workers": 0, "offloaded": 0, "in_flight": 0}
    with pytest.raises(ValueError, match=">= 0"):
        AnalysisPool(-1)
    assert default_workers("cpu") == 0
    assert 1 <= default_workers("cuda:0") <= min(8, max(1, (os.cpu_count() or 2) // 2))


def test_workers_that_cannot_start_or_keep_dying_fall_back_to_inline(tmp_path):
    missing = AnalysisPool(2, inline_alone=False, command=[str(tmp_path / "no-such-python")])
    assert missing.stats()["workers"] == 0
    assert missing.analyze("hi", "en", "v2", None).words == [("hi", 2)]  # inline
    missing.close()
    broken = AnalysisPool(2, inline_alone=False, command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        got = _concurrently(broken.analyze, [("good day", "en", "v2", None)] * 6)
        assert all(g.words == [("good", 3), ("day", 2)] for g in got)  # every call answered, inline
        assert broken.wait_ready(60)  # given up after 3 deaths: no worker left to wait for
        assert broken.stats() == {"workers": 0, "offloaded": 0, "in_flight": 0}
        assert broken.analyze("ok", "en", "v2", None).words == [("ok", 3)]
    finally:
        broken.close()


def test_many_from_one_thread_equal_inline_with_errors_in_place(pool):
    """`analyze_many`: a burst from one thread spread over the workers (more than MAX_QUEUED per worker),
    each answer at its own index, an analysis error as that call's result; the workers go back idle."""
    from gsvd.engine.text import pool as pool_mod

    calls = [(text, lang, "v2", None) for text, lang in SENTENCES] * 8 + [("x", "klingon", "v2", None)]
    assert len(calls) > 2 * pool_mod.MAX_QUEUED
    before = pool.stats()["offloaded"]
    got = list(pool.analyze_many(calls))
    assert [i for i, _ in got] == list(range(len(calls)))
    for (_, g), args in zip(got[:-1], calls[:-1], strict=True):
        want = analyze(*args)
        assert g.phonemized.phone_ids == want.phonemized.phone_ids and g.words == want.words
    assert isinstance(got[-1][1], InvalidInput) and got[-1][1].field == "language"
    assert pool.stats()["offloaded"] - before == len(calls)
    assert pool.stats()["in_flight"] == 0 and pool._idle.qsize() == 2


def test_many_left_early_or_worker_killed_keeps_replies_in_line():
    p = AnalysisPool(2, inline_alone=False)
    try:
        assert p.wait_ready(60)
        names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
        calls = [(f"{name} here", "en", "v2", None) for name in names]
        it = p.analyze_many(calls)
        assert next(it)[1].words[1] == ("here", 3)
        it.close()  # eight replies still owed: read and dropped before the workers go back
        assert p.analyze("good day", "en", "v2", None).words == [("good", 3), ("day", 2)]
        assert p._idle.qsize() == 2
        # a worker killed with calls queued on it: those are answered inline, in order
        it = p.analyze_many(calls)
        first = next(it)
        assert first[0] == 0
        for pid in p.pids():
            os.kill(pid, signal.SIGKILL)
        rest = list(it)
        assert [i for i, _ in rest] == list(range(1, 10))
        assert [a.words[0][0] for _, a in rest] == names[1:]
        assert p.analyze("ok", "en", "v2", None).words == [("ok", 3)]
    finally:
        p.close()


def test_many_alone_or_without_workers_runs_inline():
    p = AnalysisPool(1)
    try:
        assert [a.words for _, a in p.analyze_many([("one", "en", "v2", None)])] == [[("one", 3)]]
        assert p.stats()["offloaded"] == 0
        assert list(p.analyze_many([])) == []
    finally:
        p.close()
    p0 = AnalysisPool(0)
    assert [i for i, _ in p0.analyze_many([("a b", "en", "v2", None)] * 3)] == [0, 1, 2]


def test_calls_run_inline_until_a_worker_is_ready(tmp_path):
    """A worker still loading its dictionaries takes no call (a burst right after start does not wait
    seconds for it); once it says it is ready it does."""
    slow = tmp_path / "slow_start.py"
    slow.write_text("import sys, time\n"
                    f"sys.path[:0] = {[p for p in sys.path if p]!r}\n"
                    "time.sleep(3)\n"
                    "from gsvd.engine.text.analysis_worker import main\n"
                    "main()\n", encoding="utf-8")
    p = AnalysisPool(1, inline_alone=False, command=[sys.executable, "-P", str(slow)])
    try:
        got = list(p.analyze_many([("hello there", "en", "v2", None)] * 3))
        assert [a.words[0] for _, a in got] == [("hello", 4)] * 3
        assert p.analyze("good day", "en", "v2", None).words[0][0] == "good"
        assert p.stats()["offloaded"] == 0  # all inline: the worker was not ready
        assert p.wait_ready(60)
        assert p.analyze("good day", "en", "v2", None).words[0][0] == "good"
        assert [i for i, _ in p.analyze_many([("hi", "en", "v2", None)] * 2)] == [0, 1]
        assert p.stats()["offloaded"] == 3
    finally:
        p.close()
