"""BERT features from a local (tiny, random) RoBERTa-style folder: hidden_states[-3], repeated by word2ph; the
lean encoder against transformers' model; padded (bucketed) passes against exact ones; graphs on CUDA."""

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


def _model(bert_folder):
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(str(bert_folder)).eval()


@pytest.mark.parametrize("lengths", [[7], [3, 20, 11], [64, 2, 33, 64]])
def test_encoder_equals_transformers_hidden_minus_3(bert_folder, lengths):
    """The lean encoder (two layers and the head never run, QKV fused, SDPA under a padding bias) gives each
    right-padded row transformers' hidden_states[-3] of that row."""
    from gsvd.engine.text.bert_encoder import BertEncoder

    model = _model(bert_folder)
    enc = BertEncoder.from_pretrained_model(model)
    assert len(enc.layers) == model.config.num_hidden_layers - 2
    g = torch.Generator().manual_seed(len(lengths))
    width = max(lengths)
    ids = torch.randint(5, model.config.vocab_size, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    with torch.inference_mode():
        got = enc(ids, mask)
        for r, n in enumerate(lengths):
            want = model(input_ids=ids[r : r + 1, :n], output_hidden_states=True).hidden_states[-3][0]
            assert torch.allclose(got[r, :n], want, atol=1e-5), (got[r, :n] - want).abs().max()


def test_encoder_refuses_other_architectures(bert_folder):
    from transformers import BertConfig, BertForMaskedLM

    from gsvd.engine.text.bert_encoder import BertEncoder

    small = dict(vocab_size=10, hidden_size=8, num_attention_heads=2, intermediate_size=8)
    with pytest.raises(ValueError, match="relative_key"):
        BertEncoder.from_pretrained_model(BertForMaskedLM(BertConfig(**small, position_embedding_type="relative_key")))
    with pytest.raises(ValueError, match="relu"):
        BertEncoder.from_pretrained_model(BertForMaskedLM(BertConfig(**small, hidden_act="relu")))
    with pytest.raises(ValueError, match="2 layers"):
        BertEncoder.from_pretrained_model(BertForMaskedLM(BertConfig(**small, num_hidden_layers=2)))


def _sentences(n, seed):
    """n (text, word2ph) of mixed lengths (1-60 characters, across several width buckets)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(1, 61, (1,), generator=g))
        text = "".join(CHARS[int(i)] for i in torch.randint(0, len(CHARS), (k,), generator=g))
        out.append((text, [int(x) for x in torch.randint(1, 4, (k,), generator=g)]))
    return out


@pytest.mark.parametrize(("n", "max_batch"), [(1, 32), (5, 32), (19, 32), (40, 8)])
def test_bucketed_passes_equal_exact_ones(bert_folder, n, max_batch):
    """Rows padded to (batch, width) buckets -- the shapes the CUDA graphs are captured at -- give the
    features of exact-shape passes and of each sentence alone, whatever the mix of lengths and batch."""
    from gsvd.engine.text.bert import BertFeatures

    items = _sentences(n, seed=n)
    padded = BertFeatures(bert_folder, max_batch=max_batch, buckets=True).many(items)
    exact_model = BertFeatures(bert_folder, max_batch=max_batch, buckets=False)
    exact = exact_model.many(items)
    for (text, w2p), got, want in zip(items, padded, exact, strict=True):
        assert got.shape == want.shape == (1024, sum(w2p))
        assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
        alone = exact_model.many([(text, w2p)])[0]
        assert torch.allclose(got, alone, atol=1e-4), (got - alone).abs().max()


def test_every_pass_has_a_graph_shape(bert_folder):
    """Each padded pass is one of the captured (batch, width) keys (so on CUDA no pass falls back to eager),
    rows of similar length go together, and no pass is wider than the token budget allows."""
    from gsvd.engine.text import bert as bert_mod

    bert = bert_mod.BertFeatures(bert_folder, buckets=True)
    keys = set(bert.graph_keys())
    assert all(b * w <= bert_mod.GRAPH_TOKENS and b <= bert.max_batch for b, w in keys)
    assert max(w for _, w in keys) == bert.encoder.positions  # the longest row fits a graph
    seen = []
    plain = bert._pass
    bert._pass = lambda rows: seen.append([len(r) for r in rows]) or plain(rows)
    for seed in range(4):
        seen.clear()
        items = _sentences(45, seed)
        bert.many(items)
        assert sum(len(p) for p in seen) == len(items)
        for lengths in seen:
            key = (next(b for b in bert_mod.BATCH_BUCKETS if b >= len(lengths)), bert._width(max(lengths)))
            assert key in keys
        flat = [n for p in seen for n in p]
        assert flat == sorted(flat, reverse=True)  # longest first: a pass pads to its own longest row


def test_long_sentence_is_read_in_windows(bert_folder):
    """A sentence longer than the model's positions (62 characters here) gets features (it raised an index
    error before): windows of at most 62 characters, each as that window alone."""
    from gsvd.engine.text.bert import BertFeatures

    bert = BertFeatures(bert_folder)
    text = (CHARS * 10)[:150]
    w2p = [2] * len(text)
    got = bert.many([(text, w2p)])[0]
    assert got.shape == (1024, 2 * len(text))
    for lo in (0, 62, 124):
        part = text[lo : lo + 62]
        want = bert.many([(part, [2] * len(part))])[0]
        assert torch.allclose(got[:, 2 * lo : 2 * (lo + len(part))], want, atol=1e-5)


@pytest.mark.requires_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_passes_equal_eager_ones_on_cuda(bert_folder):
    """fp16 on CUDA: graph replays (captured at load) give the eager pass's features; both near fp32 CPU."""
    from gsvd.engine.text.bert import BertFeatures

    graphed = BertFeatures(bert_folder, device="cuda")
    eager = BertFeatures(bert_folder, device="cuda", graphs=False)
    assert graphed._graphs.graphs and not graphed._graphs.failed and not eager._graphs.graphs
    cpu = BertFeatures(bert_folder)
    items = _sentences(21, seed=7)
    for g, e, c in zip(graphed.many(items), eager.many(items), cpu.many(items), strict=True):
        assert (g - e).abs().max() < 2e-2 and (g - c).abs().max() < 5e-2


def test_token_table_gives_the_tokenizers_ids_without_calling_it(bert_folder):
    """Mandarin text (characters and punctuation, in the vocabulary or not) gets exactly the tokenizer's ids
    from the per-character table, with no tokenizer call once its characters are known; text the tokenizer
    reads otherwise (latin letters merging into words) still goes through it as before."""
    from gsvd.engine.text.bert import BertFeatures

    bert = BertFeatures(bert_folder)
    tok = bert.tokenizer

    class Counting:
        calls = 0

        def __call__(self, *args, **kwargs):
            Counting.calls += 1
            return tok(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(tok, name)

    bert.tokenizer = Counting()
    zh = ["你好,世界.", "今天天气很好。", "学习中文!", "龍、你"]  # 。! 龍 、: not in the vocabulary
    for text in zh:
        assert bert._ids(text, len(text)) == tok(text)["input_ids"]
    Counting.calls = 0
    for text in zh:
        bert._ids(text[::-1], len(text))
    assert Counting.calls == 0
    mixed = "ab你好"  # "ab" is one word to the tokenizer: each character's own token instead, as before
    assert bert._ids(mixed, len(mixed)) == [tok.cls_token_id, tok.unk_token_id, tok.unk_token_id,
                                             *tok.convert_tokens_to_ids(["你", "好"]), tok.sep_token_id]
    assert Counting.calls > 0
