"""Many models in one runtime on CPU: the shared KV pool within the memory budget, flat weights, LRU eviction and
comeback, pinned models, graphs captured while a model already serves (through the same capture seam as on CUDA),
shared graphs swapping each model's weights in, burst pacing (chunk order and admission)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from gsvd.engine.checkpoints.gpt import build_gpt, load_gpt
from gsvd.engine.checkpoints.sovits import build_sovits, load_sovits
from gsvd.engine.errors import ResourceExhausted
from gsvd.engine.runtime import Runtime, SynthRequest, pacing
from gsvd.engine.runtime.cuda_graphs import EagerCapturer
from gsvd.engine.runtime.kv_cache import slot_bytes
from gsvd.engine.runtime.stream import LiveStream, StreamHandle
from gsvd.engine.runtime.weights import FlatWeights
from gsvd.engine.settings import RuntimeConfig
from gsvd.engine.testing.gpt import write_tiny_gpt
from gsvd.engine.testing.requests import synth_request
from gsvd.engine.testing.sovits import write_tiny_sovits

MAX_LEN = 256
GIB = 2**30


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Three distinct tiny models of one architecture, as builders (each runtime gets fresh modules)."""
    d = tmp_path_factory.mktemp("many")
    paths = [(write_tiny_gpt(d / f"g{s}.ckpt", seed=s), write_tiny_sovits(d / f"s{s}.pth", seed=s)) for s in (4, 5, 6)]

    def build(i: int):
        g, s = paths[i]
        return build_gpt(load_gpt(g)), build_sovits(load_sovits(s))

    return build


def _request(model_id: str, sovits, seed=0, **options) -> SynthRequest:
    return synth_request(sovits, model_id, seed, **{"noise_scale": 0.5, **options})


def _wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _sizes(tiny) -> tuple[int, int]:
    """(bytes of one tiny model's flat weights, bytes of one KV slot at MAX_LEN)."""
    rt = Runtime(RuntimeConfig(device="cpu", max_streams=1, max_len=MAX_LEN))
    try:
        rt.add_model("m", *tiny(0))
        entry = rt._scheduler.models["m"]
        dims = entry.gpt.dims
        return sum(w.nbytes for w in entry.weights), slot_bytes(dims.n_layer, dims.hidden_dim, MAX_LEN,
                                                                torch.float32, dims.vocab_size)
    finally:
        rt.close()


def _audio(rt, request) -> tuple[list[int], np.ndarray]:
    h = rt.submit(request)
    pcm = np.concatenate(list(h))
    return h.tokens, pcm


# ------------------------------------------------------------------------------------------------ flat weights


def test_flat_weights_hold_each_tensor_as_a_view_and_move_as_one():
    """Parameters and buffers (a channels-last one too) become views of one buffer per dtype at aligned offsets, with
    their values and strides; unloading points the module at meta tensors, loading brings the same values back; a
    template takes another model's weights by one copy, skipped while it holds them, and refuses another layout."""
    from gsvd.engine.runtime.graph_vocoder import channels_last

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7))
    conv = channels_last(torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3)))
    state = lambda: {**{f"net.{k}": v for k, v in net.state_dict().items()},  # noqa: E731
                     **{f"conv.{k}": v for k, v in conv.state_dict().items()}}
    before = {k: v.clone() for k, v in state().items()}
    x = torch.randn(4, 5)
    ref = net.eval()(x)
    w = FlatWeights([net, conv], torch.device("cpu"))
    assert set(w.flat) == {torch.float32, torch.int64}  # BatchNorm's counter is its own dtype
    flat = w.flat[torch.float32]
    for k, v in state().items():
        assert torch.equal(v, before[k])
        if v.dtype == torch.float32:
            assert v.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
            assert (v.data_ptr() - flat.data_ptr()) % (64 * 4) == 0
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(net(x), ref)
    w.unload()
    assert net[0].weight.device.type == "meta" and not w.resident
    w.load()
    assert torch.equal(net(x), ref) and w.resident
    other = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7)).eval()
    template = FlatWeights([other], torch.device("cpu"), keep_host=False)
    mine = FlatWeights([net], torch.device("cpu"))
    template.hold(mine)
    assert torch.equal(other(x), ref) and template.copies == 1
    template.hold(mine)
    assert template.copies == 1  # already held: no copy
    with torch.no_grad():
        other[0].weight.zero_()  # a template holding stale values would show it
    template.holding = None
    template.hold(mine)
    assert torch.equal(other(x), ref)
    with pytest.raises(ValueError, match="another architecture"):
        template.hold(FlatWeights([torch.nn.Linear(5, 8)], torch.device("cpu")))
    with pytest.raises(RuntimeError, match="no host copy"):
        template.unload()


# ------------------------------------------------------------------------------------------------ the KV pool


def test_the_kv_pool_is_shared_across_models_and_bounded_by_its_budget(tiny):
    """Two models of one GPT shape take slots of one pool (2 slots from kv_cache_gib, not 2 per model): a third
    request waits, a fourth is refused when the queue is full, a cancelled stream gives its slot to the waiting one;
    every slot comes back. A budget smaller than max_streams slots makes a smaller pool; one too small for a slot
    refuses the model."""
    _, per_slot = _sizes(tiny)
    cfg = RuntimeConfig(device="cpu", max_streams=8, max_len=MAX_LEN, queue_limit=1,
                        kv_cache_gib=2.5 * per_slot / GIB)
    rt = Runtime(cfg)
    try:
        models = {"a": tiny(0), "b": tiny(1)}
        for mid, (gpt, sov) in models.items():
            rt.add_model(mid, gpt, sov)
        assert rt.stats()["slots_total"] == 2 and len(rt._scheduler.pools) == 1
        assert rt._scheduler.models["a"].pool is rt._scheduler.models["b"].pool
        long = []
        for k, mid in enumerate("ab"):  # one at a time: the queue holds one request (queue_limit=1)
            long.append(rt.submit(_request(mid, models[mid][1], seed=k, top_k=50, max_new_tokens=200)))
            _wait_for(lambda: rt.stats()["queued"] == 0)
        _wait_for(lambda: rt.stats()["slots_free"] == 0)  # both admitted and running
        waiting = rt.submit(_request("a", models["a"][1], seed=5, max_new_tokens=12))
        time.sleep(0.1)
        assert rt.stats()["queued"] == 1 and rt.stats()["active_streams"] == 2
        with pytest.raises(ResourceExhausted, match="queued"):
            rt.submit(_request("b", models["b"][1], seed=6))
        long[1].cancel()
        assert len(np.concatenate(list(waiting))) == 12 * 1280
        long[0].cancel()
        _wait_for(lambda: rt.stats()["slots_free"] == 2 and rt.stats()["active_streams"] == 0)
    finally:
        rt.close()
    model_bytes, _ = _sizes(tiny)
    small = Runtime(RuntimeConfig(device="cpu", max_streams=8, max_len=MAX_LEN,
                                  gpu_memory_gib=(model_bytes + 4 * per_slot) / GIB))
    try:
        small.add_model("a", *tiny(0))
        assert small.stats()["slots_total"] == 3  # 3/4 of what the model leaves: 3 slots, not 8
    finally:
        small.close()
    none = Runtime(RuntimeConfig(device="cpu", max_len=MAX_LEN, gpu_memory_gib=(model_bytes + per_slot) / GIB))
    try:
        with pytest.raises(ResourceExhausted, match="no room for one KV slot"):
            none.add_model("a", *tiny(0))
    finally:
        none.close()


# ---------------------------------------------------------------------------------------------- residency


def test_idle_models_are_evicted_least_recently_used_first_and_come_back_with_the_same_audio(tiny):
    """A budget for the pool and two models: loading a third evicts the least recently used (its weights on meta
    tensors, in host memory); a request for it brings it back (evicting the next least recently used) and gives the
    audio it gave before; a pinned model is never evicted, and when only pinned or busy models are left a load is
    refused with a message naming the budget."""
    model_bytes, per_slot = _sizes(tiny)
    budget = 5 * per_slot + 2.5 * model_bytes  # the pool's 4 slots and its scratch slot, two models and a half
    rt = Runtime(RuntimeConfig(device="cpu", max_streams=4, max_len=MAX_LEN, kv_cache_gib=4 * per_slot / GIB,
                               gpu_memory_gib=budget / GIB))
    try:
        models = {"a": tiny(0), "b": tiny(1), "c": tiny(2)}
        rt.add_model("a", *models["a"])
        rt.add_model("b", *models["b"])
        sov = {k: v[1] for k, v in models.items()}
        # requests made while every model is resident (the engine keeps each voice's timbre from its load)
        again = {mid: _request(mid, sov[mid], seed=3, top_k=20) for mid in "ab"}
        before = {mid: _audio(rt, _request(mid, sov[mid], seed=3, top_k=20)) for mid in "ab"}
        assert before["a"][0] != before["b"][0]  # two different models
        rt.add_model("c", *models["c"])  # "a" was used least recently
        short = _request("c", sov["c"], seed=1)
        assert not rt.resident("a") and rt.resident("b") and rt.resident("c")
        assert next(models["a"][0].parameters()).device.type == "meta"
        assert rt.stats()["evictions"] == 1
        tokens, pcm = _audio(rt, again["a"])
        assert tokens == before["a"][0] and np.array_equal(pcm, before["a"][1])
        assert rt.resident("a") and not rt.resident("b") and rt.stats()["comebacks"] == 1
        rt.pin("a")
        _audio(rt, short)  # "a" is now the least recently used, but pinned
        tokens, pcm = _audio(rt, again["b"])
        assert tokens == before["b"][0] and np.array_equal(pcm, before["b"][1])
        assert rt.resident("a") and rt.resident("b") and not rt.resident("c")
        assert not rt.evict("a")  # pinned
        rt.pin("b")
        with pytest.raises(ResourceExhausted, match="GPU memory budget .* is full"):
            _audio(rt, short)
        rt.pin("b", False)
        assert rt.evict("b") and not rt.resident("b")
        assert len(_audio(rt, short)[1]) > 0
    finally:
        rt.close()


# ------------------------------------------------------------------------------- graphs while serving


def test_a_model_serves_before_its_graphs_exist_and_switches_to_them(tiny):
    """With captures held back (the background builder blocked in the capture seam), a new model serves at once from
    its plain paths, with the audio of a runtime without graphs; once the graphs exist its requests replay them and
    give the same tokens and audio (float rounding); a second model of the architecture replays the same graphs with
    its own weights swapped into the templates and gets its own audio."""
    plain = Runtime(RuntimeConfig(device="cpu", max_len=MAX_LEN))
    gate = threading.Event()
    capturer = EagerCapturer(gate)
    rt = Runtime(RuntimeConfig(device="cpu", max_len=MAX_LEN), capturer=capturer)
    try:
        a, b = tiny(0), tiny(1)
        plain.add_model("a", *tiny(0))
        plain.add_model("b", *tiny(1))
        rt.add_model("a", *a)
        ref = {mid: _audio(plain, _request(mid, m[1], seed=7, top_k=20, max_new_tokens=40))
               for mid, m in (("a", a), ("b", b))}
        early = _audio(rt, _request("a", a[1], seed=7, top_k=20, max_new_tokens=40))
        assert capturer.graphs == [] and rt.stats()["graph_jobs"] > 0
        assert early[0] == ref["a"][0] and np.allclose(early[1], ref["a"][1], atol=1e-5)
        rt.add_model("b", *b)
        gate.set()
        entry = rt._scheduler.models["a"]
        lane = rt.audio_lanes[0]
        content, vocoder = lane.audio_graphs(entry.parts)
        other = rt._scheduler.models["b"]
        _wait_for(lambda: entry.decoder.graphs.has(1) and other.decoder.graphs.has(1) and content.graphs.has((1, 16, 32))
                  and vocoder.graphs.has((12, 1)) and entry.prefill.graphs.has((1, 64)))
        for mid, m in (("a", a), ("b", b), ("a", a)):
            replays = capturer.replays
            tokens, pcm = _audio(rt, _request(mid, m[1], seed=7, top_k=20, max_new_tokens=40))
            assert capturer.replays > replays + 40  # decode steps, prefill and chunk passes from graphs
            assert tokens == ref[mid][0] and np.allclose(pcm, ref[mid][1], atol=1e-4), np.abs(pcm - ref[mid][1]).max()
        assert content.parts.content.copies >= 3 and vocoder.parts.vocoder.copies >= 3  # a, b, a swapped in
    finally:
        gate.set()
        rt.close()
        plain.close()


def test_triton_kernel_cache_folder_is_a_setting(tmp_path):
    """The runtime points Triton's kernel cache at the `triton_cache` folder (created); empty leaves Triton's own."""
    triton = pytest.importorskip("triton")
    from gsvd.engine.runtime.runtime import use_triton_cache

    old = triton.knobs.cache.dir
    try:
        folder = tmp_path / "kernels"
        assert use_triton_cache(str(folder)) == str(folder) and folder.is_dir()
        assert triton.knobs.cache.dir == str(folder)
        assert use_triton_cache("") is None and triton.knobs.cache.dir == str(folder)
    finally:
        triton.knobs.cache.dir = old


# ------------------------------------------------------------------------------------------------ pacing


def _live(first_at: float | None, sent_s: float = 0.0, admitted_at: float = 0.0, model: str = "m",
          decoding: bool = False) -> LiveStream:
    s = LiveStream(SynthRequest(model, *([None] * 5)), StreamHandle(), 0, 0, None)  # type: ignore[arg-type]
    s.first_audio_at, s.samples_sent, s.admitted_at, s.decoding = first_at, int(sent_s * 32000), admitted_at, decoding
    return s


def test_first_chunks_go_before_later_chunks_of_the_same_urgency_and_after_those_about_to_run_out():
    """Urgency counts a later chunk's audio left in passes beyond the lead (`LEAD_PASSES`); a first chunk's is zero. A
    later chunk that would run out unless it goes now precedes every first chunk; one that can wait a pass ties with
    first chunks and follows them; first chunks go oldest first; later ones by deadline."""
    now, q = 100.0, 0.05
    lead = pacing.LEAD_PASSES * q
    due = _live(first_at=99.0, sent_s=1.0 + lead - 0.02)  # under the lead left
    tie = _live(first_at=99.0, sent_s=1.0 + lead + 0.02)  # the lead and a bit
    plenty = _live(first_at=99.0, sent_s=3.0)
    first_old, first_new = _live(None, admitted_at=99.5), _live(None, admitted_at=99.9)
    keys = {id(s): pacing.chunk_key(s, now, q) for s in (due, tie, plenty, first_old, first_new)}
    assert keys[id(due)][0] < 0 and keys[id(tie)][0] == 0 == keys[id(first_old)][0]
    order = sorted([plenty, first_new, tie, due, first_old], key=lambda s: pacing.chunk_key(s, now, q))
    assert order == [due, first_old, first_new, tie, plenty]


def test_admission_pauses_while_a_playing_stream_is_at_risk():
    """New streams are admitted up to the per-tick cap, none while a playing stream's audio runs out within the lead
    and no pass is in flight for it; streams in flight, or with nothing left to play do not hold admission back."""
    now, q, rows = 100.0, 0.05, 64
    fine = _live(first_at=99.0, sent_s=30.0)
    assert pacing.admission_budget([fine, _live(None)], now, q, rows) == pacing.MAX_ADMIT_PER_TICK
    low = _live(first_at=99.0, sent_s=1.0 + pacing.LEAD_PASSES * q - 0.05)
    low.decoder = type("D", (), {"ready": lambda self, finished: True})()
    assert pacing.admission_budget([fine, low], now, q, rows) == 0
    low.decoding = True  # its next chunk is on the way
    assert pacing.admission_budget([fine, low], now, q, rows) == pacing.MAX_ADMIT_PER_TICK
    low.decoding, low.finished = False, True
    low.decoder = type("D", (), {"ready": lambda self, finished: False})()  # all its audio went out
    assert pacing.admission_budget([fine, low], now, q, rows) == pacing.MAX_ADMIT_PER_TICK
    assert pacing.next_quantum(0.2, 5.0) == pacing.QUANTUM_RANGE[1] and pacing.next_quantum(0.03, 0.0) < 0.03


def test_admission_leaves_every_playing_stream_a_pass_before_its_lead_runs_out():
    """Earliest deadline first: the k-th playing stream (by deadline) is served in pass (k + first chunks ahead) //
    rows, so admission stops where one more first chunk would push a stream's chunk past its lead; streams still
    waiting for their first audio count as ahead."""
    now, q, rows = 100.0, 0.05, 4
    lead = pacing.LEAD_PASSES * q
    # 2.5 passes of slack each: passes 0, 1 and 2 may go before them (12 rows), less the 5 playing ones ahead
    playing = [_live(first_at=99.0, sent_s=1.0 + lead + 2.5 * q) for _ in range(5)]
    assert pacing.admission_budget(playing, now, q, rows) == 3 * rows - 5
    assert pacing.admission_budget([*playing, _live(None), _live(None)], now, q, rows) == 3 * rows - 7
    # a stream with half a pass of slack must go in the first pass: 3 new first chunks still fit before it
    tight = _live(first_at=99.0, sent_s=1.0 + lead + 0.5 * q)
    assert pacing.admission_budget([*playing, tight], now, q, rows) == rows - 1
    assert pacing.admission_budget([*playing, tight, *[_live(None)] * 4], now, q, rows) == 0
    # long queues of playing streams with little slack admit nothing, though none is at risk yet
    crowd = [_live(first_at=99.0, sent_s=1.0 + lead + 1.2 * q) for _ in range(2 * rows)]
    assert pacing.admission_budget(crowd, now, q, rows) == 0


class _Lane:
    def __init__(self) -> None:
        self.busy, self.stream = False, None

    def context(self):
        import contextlib

        return contextlib.nullcontext()


class _Chunks:
    """A `seams.ChunkDecoder` that records its passes and keeps them in flight."""

    def __init__(self, log: list) -> None:
        self.log = log

    def launch(self, items, lane=None):
        self.log.append((self, len(items), lane))
        return type("P", (), {"done": lambda self: False})()


def test_passes_go_to_the_most_urgent_model_first_one_per_model_within_the_row_cap(monkeypatch):
    """Across models the most urgent ready chunk picks the model of the first pass; each free lane takes the next
    model, one pass per model, rows in flight capped at MAX_CHUNK_BATCH; a pass holds its model's ready streams in
    urgency order."""
    from gsvd.engine.runtime import scheduler as sched_mod
    from gsvd.engine.runtime.chunking import ChunkPolicy

    monkeypatch.setattr(sched_mod, "MAX_CHUNK_BATCH", 5)
    lanes = [_Lane(), _Lane(), _Lane()]
    sched = sched_mod.Scheduler(torch.device("cpu"), 8, ChunkPolicy(), [], lanes, clock=lambda: 100.0)
    log: list = []
    chunks = {m: _Chunks(log) for m in "xyz"}
    for m in "xyz":
        sched.models[m] = type("E", (), {"model_id": m, "chunks": chunks[m]})()
    x = [_live(first_at=99.0, sent_s=3.0, model="x") for _ in range(3)]
    y = [_live(None, admitted_at=99.0 + k, model="y") for k in range(4)]
    z = [_live(first_at=99.0, sent_s=1.05, model="z")]  # about to run out: the most urgent
    for s in (*x, *y, *z):
        s.decoder = type("D", (), {})()
    sched.update([*x, *y, *z])
    assert [(c, n) for c, n, _ in log] == [(chunks["z"], 1), (chunks["y"], 4)]  # x: over the 5-row cap
    assert [p.streams for p in sched.pending] == [z, y] and lanes[0].busy and lanes[1].busy and not lanes[2].busy
    sched.update([*x])  # rows in flight already at the cap
    assert len(log) == 2


def test_a_burst_gets_every_first_chunk_before_any_later_chunk(tiny, monkeypatch):
    """12 streams at once, at most 4 rows a pass and every pass slow enough that the early streams' second chunks are
    ready while other streams still wait for their first: every stream gets its first chunk before any stream gets a
    later one (the later chunks have audio to spare: they tie or trail), and every stream gets all its audio."""
    from gsvd.engine.runtime import scheduler as sched_mod

    monkeypatch.setattr(sched_mod, "MAX_CHUNK_BATCH", 4)
    rt = Runtime(RuntimeConfig(device="cpu", max_streams=12, max_len=MAX_LEN, chunk_policy="16,1,16"))
    deliveries: list[tuple[int, int]] = []

    class Recorded(StreamHandle):
        def __init__(self, k: int) -> None:
            super().__init__()
            self.k, self.n = k, 0

        def put(self, pcm) -> None:
            deliveries.append((self.k, self.n))
            self.n += 1
            super().put(pcm)

    try:
        gpt, sov = tiny(0)
        rt.add_model("m", gpt, sov)
        entry = rt._scheduler.models["m"]
        inner = entry.chunks

        class Slow:
            def launch(self, items, lane=None):
                audio = inner.launch(items, lane)
                until = time.monotonic() + 0.15
                audio.done = lambda: time.monotonic() >= until
                return audio

        entry.chunks = Slow()
        handles = [Recorded(k) for k in range(12)]
        errors = rt.submit_many([(_request("m", sov, seed=k, top_k=20, max_new_tokens=60), h)
                                 for k, h in enumerate(handles)])
        assert errors == [None] * 12
        pcm = [np.concatenate(list(h)) for h in handles]
    finally:
        rt.close()
    firsts = [i for i, (_, n) in enumerate(deliveries) if n == 0]
    laters = [i for i, (_, n) in enumerate(deliveries) if n > 0]
    assert len(firsts) == 12 and laters and max(firsts) < min(laters), deliveries
    assert all(len(p) == 60 * 1280 for p in pcm)


def test_streams_that_start_in_a_burst_get_longer_first_chunks(tiny):
    """Up to BURST_STARTS streams waiting for their first audio start with the regular first chunk (6 tokens); the
    ones admitted beyond them with one twice as long (12 tokens: twice the time to their second chunk), then 24, 48.
    70 at once: 64 regular, 6 longer; every stream gets all its audio."""
    from gsvd.engine.runtime.chunking import ChunkPolicy

    regular = ChunkPolicy()
    burst = pacing.burst_policy(regular)
    assert [burst.size(i) for i in range(3)] == [12, 24, 48] and burst.window_frames() == [24, 64, 112]
    assert pacing.chunk_policy(regular, burst, pacing.BURST_STARTS - 1) is regular
    assert pacing.chunk_policy(regular, burst, pacing.BURST_STARTS) is burst
    assert pacing.burst_policy(ChunkPolicy(first=40, largest=48)).first == 48
    rt = Runtime(RuntimeConfig(device="cpu", max_streams=70, max_len=MAX_LEN))
    try:
        gpt, sov = tiny(0)
        rt.add_model("m", gpt, sov)
        handles = [StreamHandle() for _ in range(70)]
        assert rt.submit_many([(_request("m", sov, seed=k, top_k=20, max_new_tokens=20), h)
                               for k, h in enumerate(handles)]) == [None] * 70
        pieces = [list(h) for h in handles]
    finally:
        rt.close()
    crossfade = regular.crossfade  # held back from a chunk until the next one
    firsts = [len(p[0]) for p in pieces]
    assert firsts[:64] == [6 * 1280 - crossfade] * 64 and firsts[64:] == [12 * 1280 - crossfade] * 6
    assert all(sum(map(len, p)) == 20 * 1280 for p in pieces)


def test_marks_from_the_lanes_graphs_equal_the_eager_marks(tiny):
    """A runtime with a watermark key captures its marks per audio lane (`GraphedMarks`, here `EagerGraph`s with the
    same static buffers and padding); a marked stream replayed from them equals the plain runtime's eager marks."""
    import dataclasses

    from gsvd.engine.provenance import Watermarker

    marker = Watermarker()
    plain = Runtime(RuntimeConfig(device="cpu", max_len=MAX_LEN))
    capturer = EagerCapturer()
    rt = Runtime(RuntimeConfig(device="cpu", max_len=MAX_LEN), capturer=capturer, watermark=marker.pattern)
    try:
        plain.add_model("a", *tiny(0))
        a = tiny(0)
        rt.add_model("a", *a)
        rt.wait_graphs()
        lane = rt.audio_lanes[0]
        assert lane.marks is not None and all(lane.marks.graphs.has(k) for k in lane.marks.capture_order())
        request = dataclasses.replace(_request("a", a[1], seed=7, top_k=20, max_new_tokens=60),
                                      mark=marker.stream_mark("a").at(640))
        before = sum(g.replays for g in capturer.graphs if g.fn == lane.marks._marks)
        tokens, got = _audio(rt, request)
        ref_tokens, ref = _audio(plain, request)
        _, unmarked = _audio(plain, dataclasses.replace(request, mark=None))
        assert sum(g.replays for g in capturer.graphs if g.fn == lane.marks._marks) > before  # served by the graphs
        assert tokens == ref_tokens and len(got) == len(ref) == len(unmarked)
        mark = ref.astype(np.float64) - unmarked
        assert np.abs(mark).max() > 0
        assert np.abs(got.astype(np.float64) - ref).max() <= 1e-3 * np.abs(mark).max() + 1e-6
    finally:
        rt.close()
        plain.close()
