"""RequestPreparer: every caller's sentence becomes a runtime request in one thread, in batches."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from gsvd.engine.errors import Cancelled, InvalidInput, ResourceExhausted
from gsvd.engine.preparer import Job, RequestPreparer
from gsvd.engine.runtime import StreamHandle
from gsvd.engine.text import TextFrontend
from gsvd.engine.text.phonemize import analyze
from gsvd.engine.text.pool import AnalysisPool


class _Runtime:
    """Takes requests like Runtime.submit_many (each answered at once with its phone ids as its audio);
    `hold` keeps the first call waiting (the preparer busy)."""

    def __init__(self, hold: threading.Event | None = None, refuse: set[str] = frozenset()) -> None:
        self.requests: list[tuple[str, object]] = []
        self.calls: list[int] = []
        self.hold, self.refuse = hold, refuse

    def submit_many(self, items):
        if self.hold is not None and not self.calls:
            self.hold.wait(10)
        self.calls.append(len(items))
        errors = []
        for request, handle in items:
            text = request["text"]
            if text in self.refuse:
                errors.append(ResourceExhausted("server busy"))
                continue
            self.requests.append((text, request))
            handle.put(request["ids"])
            handle.finish(None)
            errors.append(None)
        return errors


class _Pool(AnalysisPool):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.batches: list[int] = []

    def analyze_many(self, calls):
        self.batches.append(len(calls))
        return super().analyze_many(calls)


def _job(fe, text, lang="auto", **kw):
    return Job(text, lang, fe, None, lambda ids, bert: {"text": text, "ids": ids, "bert": bert}, StreamHandle(), **kw)


@pytest.fixture(scope="module")
def fe():
    return TextFrontend("v2")


def test_callers_queued_meanwhile_go_through_as_one_batch(fe):
    hold = threading.Event()
    runtime, pool = _Runtime(hold), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many)
    try:
        texts = ["你好世界。", "hello there.", "今天天气很好。", "Good morning.", "我们去公园。"] * 4
        jobs = [_job(fe, t) for t in texts]
        prep.put(jobs[0])
        while pool.batches != [1]:
            time.sleep(0.001)
        for j in jobs[1:]:  # the preparer is held in its first submit: these queue up
            prep.put(j)
        hold.set()
        outs = [list(j.handle) for j in jobs]
        assert pool.batches == [1, len(texts) - 1]
        assert runtime.calls == [1, len(texts) - 1]  # each batch's requests submitted together
        assert [t for t, _ in runtime.requests] == texts  # in the order queued
        for j, out, t in zip(jobs, outs, texts, strict=True):
            want = analyze(t, "auto", "v2", None)
            assert j.analysis.words == want.words and not j.empty and j.submitted
            assert out[0].tolist() == want.phonemized.phone_ids
            assert [r for tt, r in runtime.requests if tt == t][0]["bert"].shape == (1024, len(out[0]))
    finally:
        prep.close()


def test_errors_reach_only_their_caller(fe):
    runtime, pool = _Runtime(refuse={"busy now."}), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many)
    try:
        cancel = threading.Event()
        cancel.set()
        jobs = {"bad": _job(fe, "x", "klingon"), "busy": _job(fe, "busy now."), "empty": _job(fe, "。"),
                "cancelled": _job(fe, "hello.", cancel=cancel), "late": _job(fe, "hello.", deadline=time.monotonic() - 1),
                "ok": _job(fe, "fine.")}
        for j in jobs.values():
            prep.put(j)
        with pytest.raises(InvalidInput, match="language"):
            list(jobs["bad"].handle)
        with pytest.raises(ResourceExhausted):
            list(jobs["busy"].handle)
        assert list(jobs["empty"].handle) == [] and jobs["empty"].empty and not jobs["empty"].submitted
        with pytest.raises(Cancelled, match="cancelled"):
            list(jobs["cancelled"].handle)
        with pytest.raises(Cancelled, match="deadline"):
            list(jobs["late"].handle)
        assert len(list(jobs["ok"].handle)) == 1
        assert [t for t, _ in runtime.requests] == ["fine."]
    finally:
        prep.close()
    with pytest.raises(Cancelled, match="closed"):
        prep.put(_job(fe, "after."))


@pytest.fixture(scope="module")
def bert_fe(tmp_path_factory):
    """A v2 frontend with a tiny random RoBERTa-style BERT."""
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = tmp_path_factory.mktemp("roberta")
    chars = sorted(set("你好世界今天天气很我们的学习中文公园去"))
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n",
                                      encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=5 + len(chars), hidden_size=1024, num_hidden_layers=3, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64)).eval().save_pretrained(folder)
    return TextFrontend("v2", bert_folder=folder)


@pytest.fixture
def bert_passes(bert_fe, monkeypatch):
    """The (normalized) texts of each BERT pass of `bert_fe`'s model, in order; `gates[text]`: an Event the
    pass holding that normalized text waits for (10 s at most) before it runs."""
    model = bert_fe._bert_model()
    passes, gates, plain = [], {}, model.many

    def many(items):
        texts = [t for t, _ in items]
        passes.append(texts)
        for t in texts:
            if t in gates:
                gates[t].wait(10)
        return plain(items)

    monkeypatch.setattr(model, "many", many)
    return passes, gates


def test_bert_for_a_batch_in_padded_passes(bert_fe, bert_passes):
    """Mandarin sentences of one batch get BERT from `features_many` (each equal to its own `features_of`)."""
    passes, _ = bert_passes
    hold = threading.Event()
    runtime, pool = _Runtime(hold), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many)
    try:
        texts = ["hello.", "你好世界。", "今天天气很好。", "hello 我们学习中文。"]
        jobs = [_job(bert_fe, t) for t in texts]
        for j in jobs:
            prep.put(j)
        hold.set()
        for j in jobs:
            list(j.handle)
        assert passes and max(len(p) for p in passes) >= 2  # several sentences in one pass
        for t, r in runtime.requests:
            want_ids, want_bert, _ = bert_fe.features(t, "auto")
            assert torch.equal(r["ids"], want_ids)
            assert torch.allclose(r["bert"], want_bert, atol=1e-5)
    finally:
        prep.close()


def test_first_sentences_do_not_wait_for_later_ones_or_bert(bert_fe, bert_passes):
    """One batch: sentences without BERT are submitted before any BERT pass ends; the first sentences of
    their requests get BERT in a pass of their own, submitted while the later sentences' pass still waits."""
    passes, gates = bert_passes
    runtime, pool = _Runtime(), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many, window=0.2)
    later = [_job(bert_fe, "我们学习中文。", first=False), _job(bert_fe, "今天天气很好。", first=False)]
    firsts = [_job(bert_fe, "你好世界。"), _job(bert_fe, "我们去公园。")]
    plain = _job(bert_fe, "hello there.")
    norm = {j.text: bert_fe.analyze(j.text, "auto").phonemized.parts[0].norm_text for j in firsts + later}
    gates.update({norm[j.text]: threading.Event() for j in firsts + later})
    try:
        for j in [later[0], firsts[0], plain, later[1], firsts[1]]:  # within the window: one batch
            prep.put(j)
        assert len(list(plain.handle)) == 1  # while every BERT pass is held
        assert runtime.calls == [1] and pool.batches == [5]
        for j in firsts:
            gates[norm[j.text]].set()
        assert [len(list(j.handle)) for j in firsts] == [1, 1]  # while the later sentences' pass is held
        assert passes == [[norm[j.text] for j in firsts], [norm[j.text] for j in later]]
        assert runtime.calls == [1, 2] and not any(j.submitted for j in later)
        for j in later:
            gates[norm[j.text]].set()
        assert [len(list(j.handle)) for j in later] == [1, 1]
        assert runtime.calls == [1, 2, 2]
        assert [t for t, _ in runtime.requests] == [plain.text, *(j.text for j in firsts), *(j.text for j in later)]
    finally:
        for g in gates.values():
            g.set()
        prep.close()


def test_bert_error_reaches_only_its_callers(bert_fe, bert_passes, monkeypatch):
    """A failing BERT pass ends its callers' streams with the error; the batch's other requests go through."""
    model = bert_fe._bert_model()
    many = model.many

    def failing(items):
        if any(t.startswith("今天天气很好") for t, _ in items):
            raise RuntimeError("out of memory")
        return many(items)

    monkeypatch.setattr(model, "many", failing)
    runtime, pool = _Runtime(), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many, window=0.2)
    try:
        bad, good, plain = (_job(bert_fe, "今天天气很好。", first=False), _job(bert_fe, "你好世界。"),
                            _job(bert_fe, "hello."))
        for j in (bad, good, plain):
            prep.put(j)
        with pytest.raises(RuntimeError, match="out of memory"):
            list(bad.handle)
        assert len(list(good.handle)) == 1 and len(list(plain.handle)) == 1
        assert not bad.submitted and good.submitted and plain.submitted
    finally:
        prep.close()


def test_batch_window_gathers_callers_arriving_together(fe):
    """With a window, sentences arriving within it of each other make one batch (one submit); a sentence
    after a quiet window starts the next batch; without a window the first goes alone."""
    runtime, pool = _Runtime(), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many, window=0.25)
    try:
        jobs = [_job(fe, t) for t in ("hello.", "good day.", "fine.", "later.")]
        for j in jobs[:3]:
            prep.put(j)
            time.sleep(0.05)  # well inside the window
        assert [len(list(j.handle)) for j in jobs[:3]] == [1, 1, 1]
        assert runtime.calls == [3] and pool.batches == [3]
        prep.put(jobs[3])
        assert len(list(jobs[3].handle)) == 1
        assert runtime.calls == [3, 1]
    finally:
        prep.close()
    runtime, pool = _Runtime(), _Pool(0)
    prep = RequestPreparer(pool, runtime.submit_many, window=0.0)
    try:
        first, second = _job(fe, "hello."), _job(fe, "again.")
        prep.put(first)
        assert len(list(first.handle)) == 1  # answered without waiting for anyone
        prep.put(second)
        assert len(list(second.handle)) == 1
        assert runtime.calls == [1, 1]
    finally:
        prep.close()
