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
