"""BERT features from a local (tiny, random) RoBERTa-style folder: hidden_states[-3], repeated by word2ph."""

from __future__ import annotations

import pytest
import torch

CHARS = "你好世界今天天气很我们的学习中文"


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = tmp_path_factory.mktemp("roberta")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(CHARS)), ",", "."]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=1024, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    BertForMaskedLM(cfg).eval().save_pretrained(folder)
    return folder


def test_zh_features_follow_hidden_layer_minus_3(bert_folder):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from gsvd.engine.text import TextFrontend

    fe = TextFrontend(bert_folder=bert_folder)
    ids, bert, norm = fe.features("你好，世界。", "zh")
    assert bert.shape == (1024, ids.numel())
    # reference: the third-from-last hidden state of each character, repeated by its phone count
    tok = AutoTokenizer.from_pretrained(str(bert_folder))
    model = AutoModelForMaskedLM.from_pretrained(str(bert_folder)).eval()
    with torch.no_grad():
        hidden = model(**tok(norm, return_tensors="pt"), output_hidden_states=True).hidden_states[-3][0][1:-1]
    ph = fe.phonemize(norm, "zh")
    expected = hidden.repeat_interleave(torch.tensor(ph.word2ph), dim=0).T
    assert torch.allclose(bert, expected, atol=1e-5)


def test_non_chinese_segments_get_zeros(bert_folder):
    from gsvd.engine.text import TextFrontend

    fe = TextFrontend(bert_folder=bert_folder)
    ph = fe.phonemize("你好 hello", "auto")
    ids, bert, _ = fe.features("你好 hello", "auto")
    n_zh = len(ph.parts[0].phones)
    assert bert[:, :n_zh].abs().sum() > 0 and bert[:, n_zh:].abs().sum() == 0


def test_missing_bert_folder_names_the_command(tmp_path):
    from gsvd.engine.errors import MissingModel
    from gsvd.engine.text import TextFrontend

    with pytest.raises(MissingModel, match="gsvd models fetch chinese-roberta-wwm-ext-large"):
        TextFrontend(bert_folder=tmp_path / "nope").features("你好世界你好", "zh")


def test_padded_batch_equals_each_sentence_alone(bert_folder):
    from gsvd.engine.text.bert import BertFeatures

    bert = BertFeatures(bert_folder)
    items = [("你好", [2, 2]), ("今天天气很好", [2, 2, 2, 2, 3, 2]), ("我们学习中文", [1, 2, 2, 2, 2, 2])]
    together = bert.many(items)
    for (text, w2p), got in zip(items, together):
        alone = bert.many([(text, w2p)])[0]
        assert got.shape == (1024, sum(w2p)) == alone.shape
        assert torch.allclose(got, alone, atol=1e-5), (got - alone).abs().max()


def test_concurrent_callers_share_forward_passes(bert_folder):
    """While one pass runs, callers queue; the next caller to find the model free runs all of them in
    one pass; each gets exactly its own features; an error reaches every caller of its batch only."""
    import threading

    from gsvd.engine.text.bert import BertFeatures

    bert = BertFeatures(bert_folder)
    texts = ["你好", "世界", "今天", "天气", "我们", "学习", "中文", "很好"]
    alone = {t: bert.many([(t, [2, 2])])[0] for t in texts}
    passes, release = [], threading.Event()
    plain_many = bert.many

    def many(items):
        passes.append([t for t, _ in items])
        if len(passes) == 1:  # hold the first pass until every other caller has queued
            release.wait(10)
        if any(t == "学习" for t, _ in items) and len(passes) == 3:
            raise ValueError("bad batch")
        return plain_many(items)

    bert.many = many
    results, errors = {}, {}

    def call(t):
        try:
            results[t] = bert(t, [2, 2])
        except ValueError as exc:
            errors[t] = exc

    first = threading.Thread(target=call, args=(texts[0],))
    first.start()
    while not passes:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=call, args=(t,)) for t in texts[1:]]
    for t in others:
        t.start()
    while len(bert._queue) < len(others):
        threading.Event().wait(0.001)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert passes[0] == [texts[0]] and sorted(passes[1]) == sorted(texts[1:])  # 7 callers, one pass
    assert not errors and set(results) == set(texts)
    for t in texts:
        assert torch.allclose(results[t], alone[t], atol=1e-5)
    # a failing pass: its callers get the error, the model is free again for the next caller
    passes.clear()
    passes.extend([["x"], ["y"]])
    call("学习")
    assert isinstance(errors.get("学习"), ValueError)
    call("中文")
    assert torch.allclose(results["中文"], alone["中文"], atol=1e-5)


def test_frontends_share_one_model_per_device(bert_folder):
    from gsvd.engine.text import TextFrontend

    a, b = TextFrontend(bert_folder=bert_folder, device="cpu"), TextFrontend(version="v1", bert_folder=bert_folder)
    a.features("你好世界", "zh")
    b.features("你好世界", "zh")
    assert a._bert is b._bert
