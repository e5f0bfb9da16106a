"""The public Engine API on CPU with tiny random voices."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gsvd.engine import Cancelled, Engine, InvalidInput, SynthesisOptions, VoiceNotFound
from gsvd.engine.engine import _last_sentence_end

FAST = SynthesisOptions(top_k=5, seed=7, max_new_tokens=40, language="en")


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory):
    from gsvd.engine.testing.bundle import write_tiny_voice

    return write_tiny_voice(tmp_path_factory.mktemp("voices") / "alice", name="alice")


@pytest.fixture(scope="module")
def engine(voice_dir):
    with Engine(device="cpu", max_streams=4, queue_limit=8) as eng:
        eng.load_voice(voice_dir)
        yield eng


def test_stream_chunks_are_ordered_and_contiguous(engine):
    chunks = list(engine.stream("Hello there. How are you today?", "alice", FAST))
    assert chunks, "no audio"
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    offsets = np.cumsum([0] + [len(c.pcm) for c in chunks[:-1]])
    assert [c.offset for c in chunks] == offsets.tolist()
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    assert all(c.sample_rate == 32000 and c.pcm.dtype == np.float32 for c in chunks)
    total = sum(len(c.pcm) for c in chunks)
    assert total > 0 and total % 1280 == 0 or total > 1280  # whole tokens of 1280 samples, joined
    assert all(np.isfinite(c.pcm).all() for c in chunks)
    assert chunks[0].text  # the first chunk of a segment carries its text


def test_same_seed_same_audio_and_other_seed_differs(engine):
    a, _ = engine.synthesize("Good morning.", "alice", FAST)
    b, _ = engine.synthesize("Good morning.", "alice", FAST)
    c, _ = engine.synthesize("Good morning.", "alice", FAST.with_overrides(seed=8))
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_unknown_voice_and_bad_options(engine):
    with pytest.raises(VoiceNotFound, match="unknown voice 'bob'"):
        engine.stream("hi", "bob")
    with pytest.raises(InvalidInput) as info:
        engine.stream("hi", "alice", SynthesisOptions(top_p=1.5))
    assert info.value.field == "top_p"
    with pytest.raises(InvalidInput, match="empty"):
        engine.stream("   ", "alice")


def test_cancel_stops_stream_and_frees_slot(engine):
    cancel = threading.Event()
    it = engine.stream(
        "This sentence is long enough to take a while.",
        "alice",
        FAST.with_overrides(max_new_tokens=1500, top_k=50),
        cancel=cancel,
    )
    next(it)
    cancel.set()
    with pytest.raises(Cancelled):
        for _ in it:
            pass
    deadline = time.monotonic() + 2
    while engine.stats()["active_streams"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.stats()["active_streams"] == 0


def test_deadline_raises_cancelled(engine):
    with pytest.raises(Cancelled):
        list(
            engine.stream(
                "A long sentence for the deadline test.",
                "alice",
                FAST.with_overrides(max_new_tokens=1500, top_k=50),
                deadline=time.monotonic() + 0.05,
            )
        )


def test_stream_text_assembles_sentences(engine):
    pieces = ["Hel", "lo the", "re. It costs 3", ".14 dollars", " today"]
    chunks = list(engine.stream_text(iter(pieces), "alice", FAST))
    texts = [c.text for c in chunks if c.text]
    assert texts[0].startswith("Hello there")
    assert any("3.14" in t for t in texts), texts
    assert chunks[-1].is_final


def test_last_sentence_end_waits_for_decimals():
    assert _last_sentence_end("It costs 3.") == -1
    assert _last_sentence_end("It costs 3.1") == -1
    assert _last_sentence_end("Done. Next") == 4
    assert _last_sentence_end("你好。") == 2


def test_two_voices_share_one_model(engine, voice_dir, tmp_path):
    v = engine.load_voice(voice_dir, name="alice2")
    assert v.model_id == engine.voice("alice").model_id
    assert len(engine.info()["models"]) == 1
    engine.unload_voice("alice2")
    assert engine.voice("alice").name == "alice"
    with pytest.raises(VoiceNotFound):
        engine.voice("alice2")


def test_per_voice_lexicon_is_used_and_reloadable(tmp_path):
    from gsvd.engine.testing.bundle import write_tiny_voice

    voice = write_tiny_voice(tmp_path, "lex")
    (voice / "lexicon.toml").write_text('[en]\n"zork" = "Z AO1 R K"\n', encoding="utf-8")
    with Engine(device="cpu", max_streams=2) as eng:
        eng.load_voice(voice)
        state = eng.voice_state("lex")
        fe = eng._frontend
        assert fe.phonemize("zork", "en", state.lexicon).phones == ["Z", "AO1", "R", "K"]
        (voice / "lexicon.toml").write_text('[en]\n"zork" = "Z IY1"\n', encoding="utf-8")
        eng.reload_lexicon()
        assert fe.phonemize("zork", "en", state.lexicon).phones == ["Z", "IY1"]
        pcm, _ = eng.synthesize("zork.", "lex", FAST)
        assert len(pcm) > 0


def test_frontend_workers_give_the_same_audio_and_timings(voice_dir, engine):
    texts = ["Good morning.", "你好，世界。", "Hello there, friend.", "今天天气很好。"]
    opts = FAST.with_overrides(language="auto", max_new_tokens=20)
    want = [list(engine.stream(t, "alice", opts)) for t in texts]  # one at a time: inline analysis
    with Engine(device="cpu", max_streams=4, queue_limit=8, frontend_workers=2) as eng:
        eng.load_voice(voice_dir)
        eng._analysis.inline_alone = False  # every sentence through a worker process
        assert eng._analysis.wait_ready(60)  # (calls before a worker is ready run inline)
        got: list = [None] * len(texts)

        def one(i):
            got[i] = list(eng.stream(texts[i], "alice", opts))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert eng._analysis.stats()["offloaded"] >= len(texts)  # every sentence of every text
    for w, g in zip(want, got, strict=True):  # same tokens; chunks batched with other streams round differently
        # (by a few 1e-6 at the tiny voice's speaking level: -100 dBFS is the bound)
        np.testing.assert_allclose(np.concatenate([c.pcm for c in w]), np.concatenate([c.pcm for c in g]), atol=1e-5)
        assert [c.timings for c in w] == [c.timings for c in g] and any(c.timings for c in g)


def test_a_voice_carries_its_own_default_options(engine, voice_dir, tmp_path):
    """voice.toml [defaults]: the voice's options when a request gives none (the same audio as passing them),
    `options_for` replaces only the fields named; a bad default is a BundleError naming the field."""
    import shutil

    from gsvd.engine.errors import BundleError

    own = tmp_path / "bob"
    shutil.copytree(voice_dir, own)
    manifest = own / "voice.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + '\n[defaults]\ntop_k = 5\nseed = 7\n'
                        'max_new_tokens = 40\nlanguage = "en"\nnoise_scale = 0.2\n', encoding="utf-8")
    voice = engine.load_voice(own, name="bob")
    try:
        assert voice.defaults == FAST.with_overrides(noise_scale=0.2)
        assert engine.options_for("bob", seed=8) == FAST.with_overrides(noise_scale=0.2, seed=8)
        assert engine.options_for("alice").noise_scale == SynthesisOptions().noise_scale
        given = np.concatenate([c.pcm for c in engine.stream("Hello there.", "bob", voice.defaults)])
        default = np.concatenate([c.pcm for c in engine.stream("Hello there.", "bob")])
        other = np.concatenate([c.pcm for c in engine.stream("Hello there.", "bob", FAST)])
        assert np.array_equal(given, default) and not np.array_equal(default, other)
    finally:
        engine.unload_voice("bob")
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("noise_scale = 0.2", "noise_scale = 7"),
                        encoding="utf-8")
    with pytest.raises(BundleError, match="noise_scale"):
        engine.load_voice(own, name="bob")
