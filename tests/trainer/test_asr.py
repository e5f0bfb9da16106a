"""Transcripts from a local faster-whisper model folder (never downloaded). The model is a tiny
CTranslate2 Whisper built here whose decoder is wired to say "hello world" whatever it hears,
so the test checks gsvd's ASR path (loading, decoding, language, list writing), not recognition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
ctranslate2 = pytest.importorskip("ctranslate2")


def _tiny_whisper(folder: Path) -> Path:
    import torch
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration

    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{c}|>" for c in _LANGUAGE_CODES), "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
                *(f"<|{i * 0.02:.2f}|>" for i in range(1501))]
    vocab = {w: i for i, w in enumerate(["hello", "world", "the", "voice"])}
    vocab.update({s: len(vocab) + i for i, s in enumerate(specials)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="the"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = folder / "hf"
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="the", eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>", additional_special_tokens=specials[1:]).save_pretrained(hf)
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    cfg = WhisperConfig(vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_target_positions=448, decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot,
                        bos_token_id=eot, suppress_tokens=[], begin_suppress_tokens=[eot], tie_word_embeddings=False)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    with torch.no_grad():  # a bigram decoder: <|notimestamps|> -> hello -> world -> end of text
        dec = model.model.decoder
        for layer in dec.layers:
            for lin in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc2):
                lin.weight.zero_()
                if lin.bias is not None:
                    lin.bias.zero_()
        dec.embed_positions.weight.zero_()
        emb, proj = torch.zeros_like(dec.embed_tokens.weight), torch.zeros_like(model.proj_out.weight)
        chain = ["<|notimestamps|>", "hello", "world", "<|endoftext|>"]
        for dim, (cur, nxt) in enumerate(zip(chain, chain[1:])):
            emb[vocab[cur], dim], proj[vocab[nxt], dim] = 10.0, 1.0
        dec.embed_tokens.weight.copy_(emb)
        model.proj_out.weight = torch.nn.Parameter(proj)
    model.save_pretrained(hf)
    out = folder / "ct2"
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(str(out), force=True)
    return out


@pytest.fixture(scope="module")
def asr_folder(tmp_path_factory) -> Path:
    return _tiny_whisper(tmp_path_factory.mktemp("whisper"))


def test_model_folder_transcribes(asr_folder):
    from gsvd.trainer.transcribe import AsrModel

    noise = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)
    assert AsrModel(asr_folder).transcribe(noise, "en") == ("hello world", "en")


def test_clips_without_subtitles_get_asr_text(asr_folder, tmp_path):
    from gsvd.trainer.records import Clip, SourceAudio
    from gsvd.trainer.transcribe import transcribe_clips
    from gsvd.trainer.workspace import Workspace
    from gsvd.wavio import write_wav

    ws = Workspace(tmp_path / "run")
    clips = []
    for n in range(2):
        cid = f"talk_{n:04d}"
        wav = (0.1 * np.random.default_rng(n).standard_normal(16000 * 3)).astype(np.float32)
        write_wav(ws.stage_dir("segment") / "clips" / f"{cid}.16k.wav", wav, 16000)
        clips.append(Clip(cid, str(tmp_path / "talk.mp4"), 3.0 * n, 3.0 * n + 3, f"segment/clips/{cid}.32k.wav",
                          f"segment/clips/{cid}.16k.wav", 3.0))
    src = SourceAudio(str(tmp_path / "talk.mp4"), "0" * 64, 0, 6.0, "extract/t.32k.wav", "extract/t.16k.wav", -23, 0)
    (tmp_path / "talk.mp4").write_bytes(b"not a container: no sidecar, no embedded track")
    utts = transcribe_clips(clips, [src], ws, speaker="dana", asr_folder=asr_folder)
    assert [(u.text, u.lang, u.origin) for u in utts] == [("hello world", "en", f"asr:{asr_folder}")] * 2
    assert (ws.root / "transcribe" / "train.list").read_text().count("|dana|en|hello world") == 2
