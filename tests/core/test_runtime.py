"""Runtime on CPU: scheduler equals the eager reference, admission, cancel/deadline, slot reuse, joins."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from gsvd.engine.checkpoints.gpt import build_gpt, load_gpt
from gsvd.engine.checkpoints.sovits import build_sovits, load_sovits
from gsvd.engine.errors import Cancelled, ResourceExhausted
from gsvd.engine.runtime import ChunkPolicy, Runtime, StreamDecoder, join_quality
from gsvd.engine.runtime.chunk_decode import BatchChunkDecoder
from gsvd.engine.runtime.chunking import stream_tokens
from gsvd.engine.settings import RuntimeConfig
from gsvd.engine.t2s_infer import generate_semantic
from gsvd.engine.testing.gpt import write_tiny_gpt
from gsvd.engine.testing.requests import synth_request
from gsvd.engine.testing.sovits import write_tiny_sovits
from gsvd.engine.types import SAMPLES_PER_TOKEN


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt")
    gpt = build_gpt(load_gpt(write_tiny_gpt(d / "g.ckpt", seed=4)))
    sovits = build_sovits(load_sovits(write_tiny_sovits(d / "s.pth", seed=4)))
    return gpt, sovits


def _request(sovits, seed=0, n=10, model_id="m", cancel=None, deadline=None, **options):
    return synth_request(sovits, model_id, seed, n, cancel, deadline, **options)


def _slots(rt) -> dict:
    """The runtime's stream and KV-slot counts."""
    return {k: rt.stats()[k] for k in ("active_streams", "queued", "slots_total", "slots_free")}


def _runtime(models, **kw):
    rt = Runtime(RuntimeConfig(device="cpu", **kw))
    rt.add_model("m", *models)
    return rt


def test_concurrent_streams_equal_eager_reference(models):
    """Three streams at once (their chunk passes in flight one at a time): each stream gets the eager
    reference's tokens and all their audio; slots come back."""
    gpt, sovits = models
    rt = _runtime(models, max_streams=4)
    try:
        reqs = [_request(sovits, seed=s) for s in range(3)]
        handles = [rt.submit(r) for r in reqs]
        audio = [np.concatenate(list(h)) for h in handles]
        for r, h, pcm in zip(reqs, handles, audio):
            ref = list(generate_semantic(gpt, r.gpt_phone_ids, r.gpt_bert, r.prompt_tokens, top_k=1,
                                         generator=torch.Generator().manual_seed(0), max_steps=30))
            assert h.tokens == ref
            assert len(pcm) == len(ref) * SAMPLES_PER_TOKEN
        assert rt.stats()["active_streams"] == 0 and rt.stats()["slots_free"] == 4
    finally:
        rt.close()


def test_seeded_sampling_reproducible(models):
    rt = _runtime(models)
    try:
        a = rt.submit(_request(models[1], seed=9, top_k=30))
        pa = np.concatenate(list(a))
        b = rt.submit(_request(models[1], seed=9, top_k=30))
        pb = np.concatenate(list(b))
        assert a.tokens == b.tokens and np.array_equal(pa, pb)
    finally:
        rt.close()


def test_queue_limit_rejects_with_resource_exhausted(models):
    rt = _runtime(models, max_streams=1, queue_limit=2)
    try:
        with rt._scheduler.cond:  # hold the scheduler so nothing is admitted meanwhile
            rt.submit(_request(models[1]))
            rt.submit(_request(models[1]))
            with pytest.raises(ResourceExhausted, match="limit 2"):
                rt.submit(_request(models[1]))
    finally:
        rt.close()


def test_submit_many_queues_together_and_refuses_each_on_its_own(models):
    """`submit_many`: requests queued in one go (one admission sees them all), each past the queue limit or of
    an unknown model refused with its own error; the accepted ones stream normally."""
    from gsvd.engine.errors import VoiceNotFound
    from gsvd.engine.runtime import StreamHandle

    rt = _runtime(models, max_streams=2, queue_limit=2)
    try:
        handles = [StreamHandle() for _ in range(4)]
        reqs = [_request(models[1], seed=1), _request(models[1], model_id="nope"), _request(models[1], seed=2),
                _request(models[1], seed=3)]
        with rt._scheduler.cond:  # hold the scheduler so nothing is admitted meanwhile
            errors = rt.submit_many(list(zip(reqs, handles)))
            assert len(rt._scheduler.waiting) == 2
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], VoiceNotFound) and isinstance(errors[3], ResourceExhausted)
        for h in (handles[0], handles[2]):
            assert sum(len(p) for p in h) > 0
    finally:
        rt.close()


def test_cancel_and_deadline_free_the_slot(models):
    rt = _runtime(models, max_streams=2)
    try:
        h = rt.submit(_request(models[1], top_k=50, max_new_tokens=1500))
        it = iter(h)
        next(it)
        h.cancel()
        with pytest.raises(Cancelled):
            list(it)
        flag = threading.Event()  # the caller's own cancel flag, set while the request streams or waits
        running = rt.submit(_request(models[1], top_k=50, max_new_tokens=1500, cancel=flag))
        queued_flag = threading.Event()
        queued_flag.set()
        queued = rt.submit(_request(models[1], max_new_tokens=1500, cancel=queued_flag))
        it = iter(running)
        next(it)
        flag.set()
        with pytest.raises(Cancelled, match="cancelled"):
            list(it)
        with pytest.raises(Cancelled, match="before it started"):
            list(queued)
        late = rt.submit(_request(models[1], top_k=50, max_new_tokens=1500, deadline=time.monotonic() + 0.05))
        with pytest.raises(Cancelled, match="deadline"):
            list(late)
        deadline = time.monotonic() + 2
        while rt.stats()["slots_free"] != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _slots(rt) == {"active_streams": 0, "queued": 0, "slots_total": 2, "slots_free": 2}
        # slots are reused: more streams than slots still all finish
        handles = [rt.submit(_request(models[1], seed=s, max_new_tokens=12)) for s in range(5)]
        assert all(len(np.concatenate(list(h))) == 12 * 1280 for h in handles)
    finally:
        rt.close()


def test_a_failing_stream_does_not_take_its_chunk_batch_down(models, caplog):
    """Two streams decoded in one batch, one with phones its SoVITS cannot embed: that one ends with an
    error, the other gets all its audio."""
    rt = _runtime(models, max_streams=2)
    try:
        good = _request(models[1], seed=1, max_new_tokens=14)
        bad = _request(models[1], seed=2, max_new_tokens=14)
        bad.target_phone_ids = torch.full_like(bad.target_phone_ids, 100_000)
        with rt._scheduler.cond:  # admitted in the same tick, so their chunks share a batch
            handles = [rt.submit(good), rt.submit(bad)]
        assert len(np.concatenate(list(handles[0]))) == 14 * 1280
        with pytest.raises(Cancelled, match="internal error while decoding audio"):
            list(handles[1])
        assert "decoding its 2 streams one by one" in caplog.text
        assert rt.stats()["slots_free"] == 2
    finally:
        rt.close()


def test_a_failing_request_does_not_take_its_prefill_batch_down(models):
    """Two requests admitted in one tick, one with phone ids the GPT cannot embed: it ends with an error
    and gives its slot back, the other streams normally."""
    rt = _runtime(models, max_streams=2)
    try:
        good = _request(models[1], seed=1, max_new_tokens=10)
        bad = _request(models[1], seed=2, max_new_tokens=10)
        bad.gpt_phone_ids = torch.full_like(bad.gpt_phone_ids, 100_000)
        with rt._scheduler.cond:
            handles = [rt.submit(bad), rt.submit(good)]
        with pytest.raises(Cancelled, match="internal error while starting the stream"):
            list(handles[0])
        assert len(np.concatenate(list(handles[1]))) == 10 * 1280
        assert rt.stats()["slots_free"] == 2
    finally:
        rt.close()


class _Gate:
    """Stands in for the CUDA event of a chunk-decode pass: the pass is done when the test opens the gate."""

    def __init__(self, opened: threading.Event) -> None:
        self.opened = opened

    def query(self) -> bool:
        return self.opened.is_set()

    def synchronize(self) -> None:
        self.opened.wait()


class _GatedChunks:
    """A `seams.ChunkDecoder` around the model's own: every pass it launches stays in flight until `opened` is
    set; `launched` records each pass's stream count."""

    def __init__(self, inner, opened: threading.Event) -> None:
        self.inner, self.opened, self.launched = inner, opened, []

    def launch(self, items, lane=None):
        pending = self.inner.launch(items, lane)
        pending.event = _Gate(self.opened)
        self.launched.append(len(items))
        return pending


def _gated_passes(rt, opened: threading.Event) -> list[int]:
    """Gate the chunk passes of model "m" (see `_GatedChunks`) -> the list of each pass's stream count."""
    entry = rt._scheduler.models["m"]
    with rt._scheduler.cond:
        entry.chunks = _GatedChunks(entry.chunks, opened)
    return entry.chunks.launched


def _wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_a_chunk_pass_in_flight_does_not_hold_the_gpt_back(models):
    """While a stream's first chunk is still in flight, the GPT keeps making its tokens up to two chunks
    ahead (6 + 12 + 2 lookahead = 20) and then waits, no audio is handed on and the stream is not planned
    again; once the pass lands, the stream goes on and gets exactly the audio of an ungated run."""
    rt = _runtime(models, max_streams=2)
    opened = threading.Event()
    try:
        ref = rt.submit(_request(models[1], seed=3, top_k=50, max_new_tokens=40))
        ref_pcm = np.concatenate(list(ref))
        assert len(ref.tokens) > 20
        launched = _gated_passes(rt, opened)
        h = rt.submit(_request(models[1], seed=3, top_k=50, max_new_tokens=40))
        _wait_for(lambda: len(h.tokens) >= 20)  # the first chunk needed 8 tokens
        time.sleep(0.2)
        assert len(h.tokens) == 20 and launched == [1] and h._queue.empty() and not h.done.is_set()
        assert rt._scheduler.live["m"][0].decoding
        opened.set()
        pcm = np.concatenate(list(h))
        assert h.tokens == ref.tokens and np.array_equal(pcm, ref_pcm)
        assert len(launched) >= 3 and rt.stats()["slots_free"] == 2
    finally:
        opened.set()
        rt.close()


def test_cancel_with_a_chunk_pass_in_flight(models):
    """A stream cancelled while its chunk is in flight ends at once with Cancelled and gives its slot back;
    the pass's audio, when it lands, goes nowhere; the runtime serves the next request normally."""
    rt = _runtime(models, max_streams=1)
    opened = threading.Event()
    try:
        launched = _gated_passes(rt, opened)
        h = rt.submit(_request(models[1], seed=4, top_k=50, max_new_tokens=1500))
        _wait_for(lambda: launched == [1])
        h.cancel()
        with pytest.raises(Cancelled, match="cancelled"):
            list(h)
        _wait_for(lambda: rt.stats()["slots_free"] == 1)
        opened.set()
        nxt = rt.submit(_request(models[1], seed=5, max_new_tokens=12))
        assert len(np.concatenate(list(nxt))) == 12 * 1280
        assert h._queue.empty()  # nothing was handed on after the end
        assert _slots(rt) == {"active_streams": 0, "queued": 0, "slots_total": 1, "slots_free": 1}
    finally:
        opened.set()
        rt.close()


def test_chunks_are_decoded_most_urgent_first():
    """Streams without audio yet come first, then the one whose sent audio finishes playing soonest."""
    from gsvd.engine.runtime.stream import LiveStream, StreamHandle

    def live(first_at, samples):
        s = LiveStream(None, StreamHandle(), 0, 0, None)  # type: ignore[arg-type]  (only the timing is used)
        s.first_audio_at, s.samples_sent = first_at, samples
        return s

    a, b, c = live(100.0, 32000 * 3), live(101.0, 32000), live(None, 0)  # a plays until 103, b until 102
    assert sorted([a, b, c], key=LiveStream.audio_deadline) == [c, b, a]
    assert c.deliver(np.zeros(640, np.float32)) is False  # a first piece is never late
    assert c.first_audio_at is not None and c.samples_sent == 640
    assert c.audio_deadline() == pytest.approx(c.first_audio_at + 0.02)
    c.first_audio_at -= 1.0  # its 20 ms played out long ago: the next piece comes late
    assert c.deliver(np.zeros(640, np.float32)) is True and c.samples_sent == 1280


def test_unloading_a_model_ends_its_streams(models):
    rt = _runtime(models)
    try:
        h = rt.submit(_request(models[1], top_k=50, max_new_tokens=1500))
        threading.Timer(0.1, rt.remove_model, args=("m",)).start()
        with pytest.raises(Exception, match="unloaded"):
            list(h)
    finally:
        rt.close()


def test_streamed_audio_matches_whole_decode(models):
    """Join quality: log-spectral distance <= 3 dB and no join step above 1.5x the signal's own."""
    _, sovits = models
    torch.manual_seed(0)
    tokens = torch.randint(0, 1024, (50,)).tolist()
    phones = torch.randint(0, 700, (1, 20))
    spec = torch.rand(1, 1025, 80)
    with torch.no_grad():
        ge = sovits.compute_ge(spec)
        whole = sovits.decode(torch.tensor(tokens)[None, None], phones, spec, noise_scale=0.0)[0, 0].numpy()
    dec = StreamDecoder(sovits, phones, ge, 0.0, 1.0, 0, ChunkPolicy())
    streamed, joins = stream_tokens(dec, tokens)
    assert len(streamed) == len(whole)
    q = join_quality(streamed, whole, joins)
    assert q["lsd_db"] <= 3.0 and q["step_ratio"] <= 1.5, q
    assert ChunkPolicy().size(0) == 6 and ChunkPolicy().size(5) == 48


def test_static_decode_step_equals_the_eager_step(models):
    """The one decode step, over a preallocated block (static shapes: what the graphs capture) and over per-slot
    caches (the CPU path, attending only the longest row's positions), gives the model's own logits."""
    from gsvd.engine.runtime.graph_decode import decode_step
    from gsvd.engine.runtime.kv_cache import KVCache

    gpt, _ = models
    dims = gpt.dims
    cache = KVCache(dims.n_layer, dims.hidden_dim, 3, 64, torch.device("cpu"), torch.float32, preallocate=True)
    g = torch.Generator().manual_seed(0)
    lengths = [5, 9, 2]
    for slot, n in enumerate(lengths):
        cache.k_all[:, slot, :n] = torch.randn(dims.n_layer, n, dims.hidden_dim, generator=g)
        cache.v_all[:, slot, :n] = torch.randn(dims.n_layer, n, dims.hidden_dim, generator=g)
    per_slot = KVCache(dims.n_layer, dims.hidden_dim, 3, 64, torch.device("cpu"), torch.float32)
    for slot, n in enumerate(lengths):
        assert per_slot.alloc() == slot
        for layer in range(dims.n_layer):
            per_slot.write(slot, layer, 0, cache.k_all[layer, slot, :n], cache.v_all[layer, slot, :n])
    tokens, positions = torch.tensor([3, 700, 12]), torch.tensor([4, 8, 1])
    with torch.no_grad():
        static = decode_step(gpt, cache, tokens, positions, torch.tensor([0, 1, 2]), torch.tensor(lengths))
        narrow = decode_step(gpt, per_slot, tokens, positions, torch.tensor([0, 1, 2]), torch.tensor(lengths),
                             width=max(lengths) + 1)
        assert torch.allclose(static, narrow, atol=1e-5)
        for i, n in enumerate(lengths):  # eager reference: concatenating cache over the true length
            past = [(cache.k_all[layer, i, :n][None], cache.v_all[layer, i, :n][None]) for layer in range(dims.n_layer)]
            x = gpt.embed_audio(tokens[i : i + 1, None], int(positions[i]))
            h, _ = gpt.run_layers(x, past, None)
            assert torch.allclose(static[i], gpt.logits(h[:, -1])[0], atol=1e-4)
    # the new rows were written at each slot's length
    assert all(cache.k_all[:, i, n].abs().sum() > 0 for i, n in enumerate(lengths))


def test_graphed_vocoder_off_cuda_is_the_eager_vocoder(models):
    """On CPU (or for lengths it cannot capture) GraphedVocoder runs the module's own vocode."""
    from gsvd.engine.runtime.graph_vocoder import GraphedVocoder

    _, sovits = models
    z = torch.randn(1, sovits.dims.inter_channels, 12, generator=torch.Generator().manual_seed(1))
    ge = torch.randn(1, sovits.dims.gin_channels, 1, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = GraphedVocoder(sovits)(z, ge)
        ref = sovits.vocode(z, torch.ones_like(z[:, :1]), ge)
    assert torch.equal(got, ref) and got.shape[-1] == 12 * 640


def test_half_generator_vocoder_stays_close_to_fp32(models):
    """`half`: the flow in fp32, the HiFi-GAN generator from a half copy; fp32 audio out, the model's own
    weights untouched, within fp16 rounding of the fp32 vocoder (signal-to-error ratio > 40 dB)."""
    from gsvd.engine.runtime.graph_vocoder import GraphedVocoder

    _, sovits = models
    z = torch.randn(2, sovits.dims.inter_channels, 24, generator=torch.Generator().manual_seed(3))
    ge = torch.randn(2, sovits.dims.gin_channels, 1, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        voc = GraphedVocoder(sovits, half=True)
        got = voc(z, ge)
        ref = sovits.vocode(z, torch.ones_like(z[:, :1]), ge)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert next(sovits.dec.parameters()).dtype == torch.float32 and next(voc.dec_half.parameters()).dtype == torch.float16
    snr = 10 * torch.log10(ref.pow(2).sum() / (got - ref).pow(2).sum())
    assert 40 < snr < 200, snr  # close, and not the fp32 path by mistake


def test_batched_chunk_decode_equals_one_stream_at_a_time(models):
    """Streams of different lengths, phones and timbres decoded in one padded batch give each stream
    the audio it gets alone (float rounding only), chunk after chunk, noise included."""
    _, sovits = models
    chunks = BatchChunkDecoder(sovits)
    g = torch.Generator().manual_seed(11)

    def make(seed, n_tokens, n_phones):
        gg = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ge = sovits.compute_ge(torch.rand(1, 1025, 60, generator=gg))
        d = StreamDecoder(sovits, torch.randint(0, 700, (1, n_phones), generator=gg), ge, 0.6, 1.0,
                          seed, ChunkPolicy(first=4, largest=12, history=3))
        d.tokens.extend(torch.randint(0, 1024, (n_tokens,), generator=g).tolist())
        return d

    shapes = [(7, 30, 9), (8, 19, 15), (9, 41, 4)]
    together = [make(s, n, p) for s, n, p in shapes]
    g = torch.Generator().manual_seed(11)
    alone = [make(s, n, p) for s, n, p in shapes]
    rounds = 0
    while any(d.ready(True) for d in together):
        live = [i for i, d in enumerate(together) if d.ready(True)]
        # the vocoder windows (prior sample z_p) of the padded batch equal each stream's own
        plans = [together[i].plan(True) for i in live]
        with torch.no_grad():
            batched = chunks._windows([together[i] for i in live], plans)
            for i, (z, skip) in zip(live, batched):
                z_ref, skip_ref = chunks._windows([alone[i]], [alone[i].plan(True)])[0]
                assert skip == skip_ref and z.shape == z_ref.shape
                assert torch.allclose(z, z_ref, atol=1e-5), (i, rounds, (z - z_ref).abs().max())
        batch = chunks.decode([(together[i], True) for i in live])
        for i, pcm in zip(live, batch):
            ref = alone[i].next_chunk(True)
            assert pcm.shape == ref.shape and len(pcm) > 0
            assert np.allclose(pcm, ref, atol=2e-5), (i, rounds, np.abs(pcm - ref).max())
        rounds += 1
    assert rounds >= 4 and all(d.emitted == len(d.tokens) for d in together)


def test_padded_content_path_equals_the_plain_one(models):
    """Chunks through `GraphedContent` (codes, phones and batch padded to a graph's shape, masks; on CPU
    the same padded pass runs eagerly) give the audio of the plain pass, alone and in a batch larger
    than the largest bucket; shapes past the largest graph fall back to the plain pass."""
    from gsvd.engine.runtime.graph_content import GraphedContent

    _, sovits = models
    graphs = GraphedContent(sovits, code_widths=(8, 16), phone_step=8, max_phones=24, batch_buckets=(1, 2))
    padded_chunks = BatchChunkDecoder(sovits, content=graphs)
    with torch.no_grad():
        ge = sovits.compute_ge(torch.rand(1, 1025, 60, generator=torch.Generator().manual_seed(2)))
        codes = torch.randint(0, 1024, (1, 1, 5), generator=torch.Generator().manual_seed(3))
        phones = torch.randint(0, 700, (1, 11))
        z = graphs(codes, phones, ge, [5], [11], [3], [0.0])[0]
        assert z.shape == (1, sovits.dims.inter_channels, 10)
        m, _, _ = sovits.prior(*sovits.content(codes, phones, ge), 1.0)
        assert torch.allclose(z, m, atol=1e-5)  # noise scale 0: the prior's mean
        assert not torch.allclose(graphs(codes, phones, ge, [5], [11], [3], [0.6])[0], m, atol=1e-2)
        assert graphs(torch.zeros(1, 1, 17, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long), ge, [17], [5],
                      [0], [0.5]) is None
        assert graphs(codes, torch.zeros(1, 25, dtype=torch.long), ge, [5], [25], [0], [0.5]) is None
    policy = ChunkPolicy(first=3, largest=8, history=2)

    def make(seed, n_phones):
        gg = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ge = sovits.compute_ge(torch.rand(1, 1025, 60, generator=gg))
        d = StreamDecoder(sovits, torch.randint(0, 700, (1, n_phones), generator=gg), ge, 0.6, 1.0, seed, policy)
        d.tokens.extend(torch.randint(0, 1024, (30,), generator=gg).tolist())
        return d

    shapes = [(6, 13), (7, 20), (8, 5)]
    for group in ([shapes[0]], shapes):  # alone, then three streams (groups of 2 + 1)
        padded = [make(*sh) for sh in group]
        plain = [make(*sh) for sh in group]
        chunks = 0
        with torch.no_grad():
            while padded[0].ready(True):
                got = padded_chunks.decode([(d, True) for d in padded])
                for a, d in zip(got, plain):
                    b = d.next_chunk(True)
                    assert a.shape == b.shape and len(a) > 0
                    assert np.allclose(a, b, atol=2e-5), (chunks, np.abs(a - b).max())
                chunks += 1
        assert chunks >= 4 and not any(d.ready(True) for d in plain)


def test_cheapest_split_covers_the_rows_at_least_cost():
    """`cheapest_split` picks batch buckets whose replays hold n rows at the least summed cost: it agrees with a
    brute-force search over every multiset of buckets, covers n, and follows the costs it is given."""
    import itertools

    from gsvd.engine.runtime.cuda_graphs import cheapest_split, plan_rows, split_rows

    buckets = (1, 2, 4, 8, 16, 32, 64)
    linear = {b: float(b) for b in buckets}
    assert cheapest_split(40, linear) == [32, 8]
    assert cheapest_split(0, linear) == []
    assert cheapest_split(130, linear) == [64, 64, 2]
    fixed = {b: b + 10.0 for b in buckets}  # a replay's fixed cost outweighs a few padded rows
    assert cheapest_split(60, fixed) == [64]
    assert cheapest_split(40, {64: 5.0, 32: 4.0, 8: 3.0}) == [64]  # a cheap large graph wins
    rng = np.random.default_rng(0)
    for _ in range(20):
        costs = {b: float(rng.uniform(0.5, 1.5) * (b + rng.uniform(0, 8))) for b in (1, 2, 4, 8, 16)}
        for n in range(1, 25):
            got = cheapest_split(n, costs)
            assert sum(got) >= n and got == sorted(got, reverse=True)
            best = min(sum(costs[b] for b in combo) for k in range(1, n + 1)
                       for combo in itertools.combinations_with_replacement(costs, k) if sum(combo) >= n
                       and sum(combo) - min(combo) < n)
            assert abs(sum(costs[b] for b in got) - best) < 1e-9, (n, got, best)
    assert split_rows(40, [32, 8]) == [(0, 32, 32), (32, 40, 8)]
    assert split_rows(37, [32, 8]) == [(0, 32, 32), (32, 37, 8)]
    timed = {b: 2.0 + 0.01 * b for b in buckets}  # measured times: a large graph costs little more
    assert plan_rows(40, buckets, timed) == [(0, 40, 64)]
    assert plan_rows(40, buckets, {1: 0.1}) == [(0, 32, 32), (32, 40, 8)]  # not all timed: rows + fixed cost


def test_vocoder_pieces_follow_measured_replay_times(models):
    """A group of rows of one window length replays the buckets of least measured time; before every bucket
    of a length is timed, a replay costs its rows plus a fixed cost."""
    from gsvd.engine.runtime.graph_vocoder import BUCKETS, GraphedVocoder

    _, sovits = models
    voc = GraphedVocoder(sovits)
    assert voc.pieces(36, 40) == [(0, 32, 32), (32, 40, 8)]
    assert voc.pieces(36, 63) == [(0, 63, 64)]
    voc.graphs.cost.update({(36, b): 1.0 + 0.01 * b for b in BUCKETS})  # replays nearly all the same: one 64
    assert voc.pieces(36, 40) == [(0, 40, 64)]
    assert voc.pieces(12, 40) == [(0, 32, 32), (32, 40, 8)]  # another length: its own (default) costs


def test_content_rows_go_through_their_own_width(models):
    """Rows of different known lengths in one content call go through graphs of their own code width and give
    each row what it gets through the graphs alone, within float rounding; a batch of streams at different
    points of their utterances decodes to the audio each gets alone."""
    from gsvd.engine.runtime.graph_content import GraphedContent

    _, sovits = models
    graphs = GraphedContent(sovits, code_widths=(8, 16, 32), phone_step=8, max_phones=24, batch_buckets=(1, 2, 4))
    g = torch.Generator().manual_seed(9)
    lens = [5, 30, 12, 7, 16]
    order = sorted(range(5), key=lambda r: lens[r])
    with torch.no_grad():
        ge = sovits.compute_ge(torch.rand(5, 1025, 60, generator=g))
        codes, phones = torch.randint(0, 1024, (5, 1, 30), generator=g), torch.randint(0, 700, (5, 20), generator=g)
        args = (codes[order], phones[order], ge[order], [lens[r] for r in order], [20] * 5, order, [0.5] * 5)
        together = graphs(*args)
        alone = [graphs(*(a[r : r + 1] for a in args))[0] for r in range(5)]
    for r, k in enumerate(sorted(lens)):
        assert together[r].shape == alone[r].shape == (1, sovits.dims.inter_channels, 2 * k)
        assert torch.allclose(together[r], alone[r], atol=2e-5), (k, (together[r] - alone[r]).abs().max())
    policy = ChunkPolicy(first=3, largest=8, history=2)
    graph_chunks = BatchChunkDecoder(sovits, content=graphs)

    def make(seed, n_tokens):
        gg = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ge = sovits.compute_ge(torch.rand(1, 1025, 60, generator=gg))
        d = StreamDecoder(sovits, torch.randint(0, 700, (1, 12), generator=gg), ge, 0.6, 1.0, seed, policy)
        d.tokens.extend(torch.randint(0, 1024, (n_tokens,), generator=gg).tolist())
        return d

    together = [make(s, n) for s, n in ((1, 28), (2, 9), (3, 20))]
    alone = [make(s, n) for s, n in ((1, 28), (2, 9), (3, 20))]
    with torch.no_grad():
        a = graph_chunks.decode([(together[0], True)])[0]  # the first stream one chunk ahead: the pass mixes lengths
        assert np.allclose(a, alone[0].next_chunk(True), atol=2e-5)
        while any(d.ready(True) for d in together):
            live = [k for k, d in enumerate(together) if d.ready(True)]
            got = graph_chunks.decode([(together[k], True) for k in live])
            for k, a in zip(live, got):
                b = alone[k].next_chunk(True)
                assert a.shape == b.shape and np.allclose(a, b, atol=2e-5), (k, np.abs(a - b).max())
    assert not any(d.ready(True) for d in alone)


def test_padded_graph_prefill_equals_the_plain_one(models):
    """`GraphedPrefill` (rows padded to a batch bucket and a graph width; on CPU the same padded pass runs
    eagerly): each row's logits and K/V rows equal its own unpadded prefill, alone and in a batch larger
    than the largest bucket; other slots are untouched; too long a request falls back."""
    from gsvd.engine.runtime.graph_prefill import GraphedPrefill
    from gsvd.engine.runtime.kv_cache import KVCache
    from gsvd.engine.runtime.prefill import prefill

    gpt, _ = models
    dims = gpt.dims
    g = torch.Generator().manual_seed(22)

    def cache():
        c = KVCache(dims.n_layer, dims.hidden_dim, 5, 48, torch.device("cpu"), torch.float32, preallocate=True)
        c.k_all.copy_(torch.randn(c.k_all.shape, generator=torch.Generator().manual_seed(1)))  # junk everywhere
        c.v_all.copy_(torch.randn(c.v_all.shape, generator=torch.Generator().manual_seed(2)))
        return c

    rows = [(slot, torch.randint(0, 732, (nx,), generator=g), torch.randn(1024, nx, generator=g),
             torch.randint(0, 1024, (ny,), generator=g)) for slot, nx, ny in [(1, 9, 11), (3, 4, 20), (0, 12, 3)]]
    for batch in ([rows[0]], rows):
        padded = cache()
        graphs = GraphedPrefill(gpt, padded, step=16, max_len=32, batch_buckets=(1, 2))
        assert graphs.widths == (16, 32)
        with torch.no_grad():
            got, lens = prefill(gpt, padded, batch, torch.device("cpu"), graphs)
            assert got.shape == (len(batch), dims.vocab_size)
            for r, row in enumerate(batch):
                plain = cache()
                ref, (n,) = prefill(gpt, plain, [row], torch.device("cpu"))
                assert lens[r] == n
                assert torch.allclose(got[r], ref[0], atol=1e-5), (got[r] - ref[0]).abs().max()
                assert torch.allclose(padded.k_all[:, row[0], :n], plain.k_all[:, row[0], :n], atol=1e-5)
                assert torch.allclose(padded.v_all[:, row[0], :n], plain.v_all[:, row[0], :n], atol=1e-5)
        untouched = [s for s in range(5) if s not in [row[0] for row in batch]]  # slot 5 is the scratch slot
        assert torch.equal(padded.k_all[:, untouched], cache().k_all[:, untouched])
    too_long = (1, torch.zeros(10, dtype=torch.long), torch.zeros(1024, 10), torch.zeros(23, dtype=torch.long))
    assert graphs([too_long]) is None  # 33 positions: wider than the widest graph


def test_batched_prefill_inputs_equal_each_row_alone(models):
    """`pack_rows` + `embed_packed` (all rows embedded as one padded batch, prompts gathered after their own
    text, padded to a wider pass with more rows) and `padded_allow` (masks for all rows at once) give each
    row exactly its own embeddings and the model's prefix mask; padding rows and positions are zeros and
    attend only to themselves; padding rows go to the pad slot."""
    from gsvd.engine.runtime.prefill import embed_packed, pack_rows, padded_allow

    gpt, _ = models
    g = torch.Generator().manual_seed(4)
    shapes = [(9, 11), (4, 20), (12, 3)]
    rows = [(slot, torch.randint(0, 732, (nx,), generator=g), torch.randn(1024, nx, generator=g),
             torch.randint(0, 1024, (ny,), generator=g)) for slot, (nx, ny) in zip((5, 2, 7), shapes)]
    with torch.no_grad():
        packed = pack_rows(rows, 32, 4, pad_slot=9, pin=False)
        text_lens, lens = packed.meta[2, :3].tolist(), packed.meta[3, :3].tolist()
        assert text_lens == [9, 4, 12] and lens == [20, 24, 15]
        assert packed.meta.tolist() == [[5, 2, 7, 9], [19, 23, 14, 0], [9, 4, 12, 0], [20, 24, 15, 0]]
        xy = torch.full((4, 32, gpt.dims.hidden_dim), 7.0)
        assert embed_packed(gpt, packed, torch.device("cpu"), out=xy) is xy
        allow = padded_allow(torch.tensor(packed.meta[2]), torch.tensor(packed.meta[3]), 32)
        assert allow.shape == (4, 1, 32, 32)
        for r, (_, ph, bert, prompt) in enumerate(rows):
            alone = torch.cat([gpt.embed_text(ph[None], bert[None]), gpt.embed_audio(prompt[None], 0)], dim=1)[0]
            n = lens[r]
            assert torch.allclose(xy[r, :n], alone, atol=1e-6) and not xy[r, n:].any()
            want = torch.eye(32, dtype=torch.bool)
            want[:n, :n] = gpt.prefix_mask(text_lens[r], n - text_lens[r])
            assert torch.equal(allow[r, 0], want)
        assert not xy[3].any() and torch.equal(allow[3, 0], torch.eye(32, dtype=torch.bool))


def test_pipelined_fused_decoding_equals_eager_reference(models):
    """Sampling inside the step, launched one step ahead of reading (the graphed decoder, here with graphs made by
    `EagerCapturer` while the streams run, eager steps before): same tokens as the reference for streams of
    different lengths, a stream stopped by its token cap, slot reuse after it."""
    from gsvd.engine.runtime.cuda_graphs import EagerCapturer
    from gsvd.engine.runtime.graph_decode import GraphDecoder

    gpt, sovits = models
    rt = Runtime(RuntimeConfig(device="cpu", max_streams=2), capturer=EagerCapturer())
    rt.add_model("m", *models)
    try:
        entry = rt._scheduler.models["m"]
        assert isinstance(entry.decoder, GraphDecoder) and entry.cache.k_all is not None
        reqs = [_request(sovits, seed=s, max_new_tokens=n) for s, n in ((0, 30), (1, 17), (2, 25))]
        handles = [rt.submit(r) for r in reqs]  # 3 requests, 2 slots: the third waits for a free slot
        for r, h in zip(reqs, handles):
            list(h)
            ref = list(generate_semantic(gpt, r.gpt_phone_ids, r.gpt_bert, r.prompt_tokens, top_k=1,
                                         generator=torch.Generator().manual_seed(0), max_steps=r.options.max_new_tokens))
            assert h.tokens == ref and len(h.tokens) == r.options.max_new_tokens
        assert rt.stats()["slots_free"] == 2 and entry.inflight is None
    finally:
        rt.close()


def test_channels_last_generator_equals_the_plain_one(models):
    """`graph_vocoder.channels_last`: every 1-D (transposed) convolution of the HiFi-GAN generator as a 2-D one
    over [B, C, 1, T]; same waveform (fp32, CPU), channels-last activations, the original left as it was."""
    from gsvd.engine.models.conv_layout import ChannelsLastConv1d
    from gsvd.engine.runtime.graph_vocoder import channels_last

    _, sovits = models
    dec = sovits.dec
    fast = channels_last(dec)
    assert not any(isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d) for m in fast.modules())
    assert sum(isinstance(m, ChannelsLastConv1d) for m in fast.modules()) == sum(
        isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d) for m in dec.modules())
    g = torch.Generator().manual_seed(9)
    z = torch.randn(3, dec.conv_pre.in_channels, 14, generator=g)
    ge = torch.randn(3, sovits.dims.gin_channels, 1, generator=g)
    with torch.no_grad():
        want = dec(z, g=ge)
        got = fast(z[:, :, None, :].contiguous(memory_format=torch.channels_last), g=ge[:, :, None, :])
    assert got.shape == (3, 1, 1, want.shape[-1]) and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got[:, :, 0], want, atol=1e-5), (got[:, :, 0] - want).abs().max()


def test_a_last_chunk_window_is_widened_to_a_regular_length(models):
    """A window of another length than the policy's (a stream's last chunk) starts earlier, so the runtime has
    a vocoder graph for it; too short a stream, another speed or a regular length: unchanged."""
    policy = ChunkPolicy()
    assert policy.window_frames() == [12, 36, 64, 112]
    assert policy.widen(84, 100) == 64  # 16 frames -> 36
    assert policy.widen(30, 112) == 0  # 82 frames -> 112
    assert policy.widen(0, 20) == 0  # 20 frames, but only 20 before its end
    assert policy.widen(52, 88) == 52  # already 36
    assert policy.widen(0, 130) == 0  # longer than every regular length
    _, sovits = models
    dec = StreamDecoder(sovits, torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 1, 1), 0.0, 1.0, 0, policy)
    assert dec.window(42, 50, 100) == (64, 84, 100)
    dec.speed = 1.5
    assert dec.window(42, 50, 100) == (45, 56, 67)


def test_chunk_policy_setting():
    """The chunk policy travels as text in the configuration ("first,growth[,largest]") and is parsed once: a
    bad one is an error naming the variable when the configuration is built."""
    from gsvd.engine.errors import InvalidInput

    assert ChunkPolicy.parse("8,1.5,48") == ChunkPolicy(first=8, growth=1.5, largest=48)
    assert ChunkPolicy.parse("10, 2") == ChunkPolicy(first=10, growth=2.0)
    for bad, why in (("8", "expected"), ("a,2", "token counts"), ("60,2,48", "first <= largest"), ("8,0.5", "growth")):
        with pytest.raises(ValueError, match=why):
            ChunkPolicy.parse(bad)
    assert RuntimeConfig().policy() == ChunkPolicy()
    policy = RuntimeConfig.load(env={"GSVD_CHUNK_POLICY": "8,1.5"}).policy()
    assert policy == ChunkPolicy(first=8, growth=1.5) and policy.window_frames() == [16, 40, 52, 70, 96, 112]
    with pytest.raises(InvalidInput, match="GSVD_CHUNK_POLICY"):
        RuntimeConfig.load(env={"GSVD_CHUNK_POLICY": "8"})
