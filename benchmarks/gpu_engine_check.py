"""GPU check of the engine (run on the device machine): correctness across devices/dtypes and eager speed.

    PYTHONPATH=. python3 benchmarks/gpu_engine_check.py   # writes $OUT/gpu_engine_check.json if OUT is set
    CHECKS=many_models PYTHONPATH=. python3 benchmarks/gpu_engine_check.py   # section 3 alone

1. Real v2 sizes, random weights: GPT first-step logits CUDA fp32 / fp16 vs CPU fp32; SoVITS decode
   CUDA fp32 vs CPU fp32 (noise 0).
   BERT features (chinese-roberta sized, random; needs transformers): graph replays vs eager vs transformers,
   ms per pass (`--bert-only`: this check alone).
2. The runtime on CUDA fp16 (eager, graphs with torch ops, graphs with the Triton kernels: CHECK_MODES): GPT tokens/s per stream and
   aggregate at 1 and 8 concurrent streams, and time to first audio of one stream.
3. Many models (`many_models`): graphs captured once against a template and replayed for two models in turn (each
   model's weights swapped in) vs each model's own eager pass (prefill, content encoder, vocoder); the time of one
   swap (GPT, content, vocoder weights); a model serving while its graphs are captured in the background (greedy
   tokens equal to those after, time until every graph is captured); eviction to host memory and back (same tokens,
   comeback time); Triton's kernel cache in the `triton_cache` folder across two fresh processes (files written by
   the first, the second's first decode capture served from them: compile time of each).
4. The watermark (`watermark`): a stream marked on the GPU vs the reference marker; device time of a marked pass.
Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from importlib.util import find_spec

import torch


def _models():
    from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn
    from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder
    from gsvd.engine.testing.gpt import random_gpt_state, real_v2_gpt_config
    from gsvd.engine.testing.sovits import random_sovits_state, real_sovits_config

    gcfg, scfg = real_v2_gpt_config(), real_sovits_config("v2")
    gpt = Text2SemanticDecoder(T2SDims.from_config(gcfg))
    gpt.load_state_dict(random_gpt_state(gcfg, 1))
    sov = SynthesizerTrn(SovitsDims.from_config(scfg, "v2"))
    sov.load_state_dict(random_sovits_state(scfg, "v2", 1))
    return gpt.eval(), sov.eval()


def random_runtime(max_streams: int = 16, models=None, watermark=None, **settings):
    """A CUDA Runtime holding one random real-size model "m" (or `models`) -> (runtime, request(seed, tokens,
    top_k)); `settings`: RuntimeConfig fields; `watermark`: the runtime's watermark key pattern."""
    from gsvd.engine.runtime import Runtime, SynthRequest
    from gsvd.engine.settings import RuntimeConfig
    from gsvd.engine.types import SynthesisOptions

    gpt, sov = models if models is not None else _models()
    rt = Runtime(RuntimeConfig(device="cuda", max_streams=max_streams, **settings), watermark=watermark)
    rt.add_model("m", gpt, sov)
    rt.wait_graphs()  # captured in the background: measure what serves once they are there
    with torch.no_grad():
        ge = rt._scheduler.models["m"].sovits.compute_ge(torch.rand(1, 1025, 200, device="cuda"))[0]

    def request(seed: int, n: int = 200, top_k: int = 15) -> SynthRequest:
        g = torch.Generator().manual_seed(seed)
        ph = torch.randint(0, 732, (50,), generator=g)
        return SynthRequest("m", ph, torch.randn(1024, 50, generator=g), torch.randint(0, 1024, (100,), generator=g),
                            ph[20:], ge, SynthesisOptions(top_k=top_k, seed=seed, max_new_tokens=n))

    return rt, request


def prefill_check(gpt, g) -> dict:
    """Graphed single-request prefill (padded to its width) vs the eager unpadded prefill, fp16 on CUDA."""
    from gsvd.engine.runtime.graph_prefill import GraphedPrefill
    from gsvd.engine.runtime.kv_cache import KVCache
    from gsvd.engine.runtime.prefill import prefill

    m = gpt.to("cuda", torch.float16)
    dev = torch.device("cuda")
    caches = [KVCache(24, 512, 2, 600, dev, torch.float16, preallocate=True) for _ in range(2)]
    graphs = GraphedPrefill(m, caches[1])
    graphs.prepare()
    out = {"prefill_graphs": len(graphs.graphs.graphs)}
    diffs, kv = [], []
    with torch.inference_mode():
        rows = [(1, torch.randint(0, 732, (nx,), generator=g), torch.randn(1024, nx, generator=g),
                 torch.randint(0, 1024, (ny,), generator=g)) for nx, ny in ((40, 150), (75, 100), (10, 30))]
        for batch in ([rows[0]], [rows[1]], [rows[2]], [(0, *rows[0][1:]), rows[1]]):  # alone, then two at once
            got, _ = prefill(m, caches[1], batch, dev, graphs)
            for r, row in enumerate(batch):
                ref, (n,) = prefill(m, caches[0], [row], dev)
                diffs.append((got[r] - ref[0]).abs().max().item())
                slot = row[0]
                kv.append((caches[1].k_all[:, slot, :n].float() - caches[0].k_all[:, slot, :n].float()).abs().max().item())
    out["prefill_graph_vs_eager_logits_max_abs_diff"] = max(diffs)
    out["prefill_graph_vs_eager_kv_max_abs_diff"] = max(kv)
    gpt.to("cpu", torch.float32)
    return out


def correctness(gpt, sov) -> dict:
    from gsvd.engine.t2s_infer import first_step_logits

    g = torch.Generator().manual_seed(0)
    phones, bert = torch.randint(0, 732, (60,), generator=g), torch.randn(1024, 60, generator=g)
    prompt = torch.randint(0, 1024, (100,), generator=g)
    ref = first_step_logits(gpt, phones, bert, prompt)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        m = gpt.to("cuda", dtype)
        got = first_step_logits(m, phones.cuda(), bert.cuda().to(dtype), prompt.cuda()).float().cpu()
        out[f"gpt_logits_cuda_{name}_max_abs_diff"] = (got - ref).abs().max().item()
        out[f"gpt_logits_cuda_{name}_argmax_equal"] = bool(got.argmax() == ref.argmax())
    gpt.to("cpu", torch.float32)
    codes = torch.randint(0, 1024, (1, 1, 60), generator=g)
    text = torch.randint(0, 732, (1, 40), generator=g)
    spec = torch.rand(1, 1025, 200, generator=g)
    with torch.no_grad():
        wav_cpu = sov.decode(codes, text, spec, noise_scale=0.0)
        sc = sov.to("cuda")
        wav_gpu = sc.decode(codes.cuda(), text.cuda(), spec.cuda(), noise_scale=0.0).cpu()
        from gsvd.engine.runtime.graph_vocoder import GraphedVocoder

        voc, ge = GraphedVocoder(sc), sc.compute_ge(spec.cuda())
        voc.prepare([12, 36, 64, 112, 40], sc.dims.inter_channels, sc.dims.gin_channels, torch.device("cuda"))
        diffs = []
        for frames in (12, 36, 64, 112, 12):  # the last one replays an existing graph
            z = torch.randn(1, sc.dims.inter_channels, frames, generator=g).cuda()
            diffs.append((voc(z, ge) - sc.vocode(z, torch.ones_like(z[:, :1]), ge)).abs().max().item())
        out["vocoder_graph_vs_eager_max_abs_diff"] = max(diffs)
        z = torch.randn(3, sc.dims.inter_channels, 40, generator=g).cuda()  # a batch of 3 windows (bucket 4)
        ge3 = torch.cat([ge, ge * 0.5, ge * 2])
        rows = torch.cat([sc.vocode(z[i : i + 1], torch.ones_like(z[:1, :1]), ge3[i : i + 1]) for i in range(3)])
        out["vocoder_graph_batch3_vs_eager_rows_max_abs_diff"] = (voc(z, ge3) - rows).abs().max().item()
        prepared = GraphedVocoder(sc)  # after prepare, another length runs eagerly: no capture while serving
        prepared.prepare([12], sc.dims.inter_channels, sc.dims.gin_channels, torch.device("cuda"))
        z = torch.randn(2, sc.dims.inter_channels, 20, generator=g).cuda()
        eager = sc.vocode(z, torch.ones_like(z[:, :1]), ge.expand(2, -1, -1))
        out["vocoder_prepared_other_length_max_abs_diff"] = (prepared(z, ge.expand(2, -1, -1)) - eager).abs().max().item()
        out["vocoder_prepared_graphs_after_other_length"] = sorted({f for f, _ in prepared.graphs.graphs})
        # 40 windows of a prepared length: the buckets of least measured replay time, against eager rows
        z = torch.randn(40, sc.dims.inter_channels, 12, generator=g).cuda()
        ge40 = ge * torch.linspace(0.5, 2.0, 40, device="cuda")[:, None, None]
        eager = sc.vocode(z, torch.ones_like(z[:, :1]), ge40)
        out["vocoder_split_40_rows_pieces"] = prepared.pieces(12, 40)
        out["vocoder_split_40_rows_vs_eager_max_abs_diff"] = (prepared(z, ge40) - eager).abs().max().item()
        out["vocoder_replay_ms_12_frames"] = {b: round(ms, 3) for (_, b), ms in sorted(prepared.graphs.cost.items())}
        # the runtime's default on CUDA: the HiFi-GAN generator in fp16 (graphed), vs the fp32 eager vocoder,
        # on windows of the real prior's scale (m + noise * exp(logs) from a content pass)
        half = GraphedVocoder(sc, half=True)
        half.prepare([112], sc.dims.inter_channels, sc.dims.gin_channels, torch.device("cuda"))
        out["vocoder_fp16_layouts_kept"] = sorted(set(half.layouts.values()))
        c, t = torch.randint(0, 1024, (1, 1, 56), generator=g).cuda(), torch.randint(0, 732, (1, 40), generator=g).cuda()
        hidden, mask = sc.content(c, t, ge)
        m, logs, _ = sc.prior(hidden, mask, 1.0)
        zp = (m + torch.randn(m.shape, generator=g).cuda() * torch.exp(logs) * 0.5)[..., :112]
        ref = sc.vocode(zp, torch.ones_like(zp[:, :1]), ge)
        got = half(zp, ge)
        err = got - ref
        out["vocoder_fp16_vs_fp32_max_abs_diff"] = err.abs().max().item()
        out["vocoder_fp16_vs_fp32_snr_db"] = (10 * torch.log10(ref.pow(2).sum() / err.pow(2).sum())).item()
        out["vocoder_fp32_peak"] = ref.abs().max().item()
        from gsvd.engine.runtime.graph_content import GraphedContent

        content = GraphedContent(sc)
        content.prepare()
        diffs = []
        # the graphs end with the prior's sample (noise made in the graph from each row's seed)
        from gsvd.engine.runtime.prior_noise import gaussian, sample_prior

        def eager_z(c, t, seed, scale):
            hidden, mask = sc.content(c, t, ge)
            m, logs, _ = sc.prior(hidden, mask)
            return sample_prior(m, logs, torch.tensor([seed], device=m.device),
                                torch.tensor([scale], dtype=torch.float64, device=m.device))

        for k, n in ((8, 23), (14, 40), (30, 7), (8, 23)):  # padded codes and phones; the last replays again
            c, t = torch.randint(0, 1024, (1, 1, k), generator=g).cuda(), torch.randint(0, 732, (1, n), generator=g).cuda()
            z = content(c.cpu(), t.cpu(), ge, [k], [n], [k * 31 + n], [0.6])[0]  # the runtime hands over host arrays
            diffs.append((z - eager_z(c, t, k * 31 + n, 0.6)).abs().max().item())
        c, t = torch.randint(0, 1024, (3, 1, 20), generator=g).cuda(), torch.randint(0, 732, (3, 50), generator=g).cuda()
        z3 = content(c.cpu(), t.cpu(), ge.expand(3, -1, -1), [20, 12, 17], [50, 31, 44], [1, 2, 3],
                     [0.5, 0.0, 1.0])  # a batch of 3 (bucket 4)
        for r, (k, n) in enumerate(((20, 50), (12, 31), (17, 44))):
            ref = eager_z(c[r : r + 1, :, :k], t[r : r + 1, :n], r + 1, (0.5, 0.0, 1.0)[r])
            diffs.append((z3[r] - ref).abs().max().item())
        # rows of different widths (8 / 20 / 75 / 140 known tokens), 40 rows: each through its own width's graphs in
        # the cheapest buckets, against each row alone
        c, t = torch.randint(0, 1024, (40, 1, 140), generator=g), torch.randint(0, 732, (40, 50), generator=g)
        lens = sorted([8, 20, 75, 140] * 10)
        args = (c, t, ge.expand(40, -1, -1), lens, [50] * 40, list(range(40)), [0.5] * 40)
        together = content(*args)
        alone = [content(*(a[r : r + 1] for a in args))[0] for r in range(40)]
        out["content_rows_together_vs_alone_max_abs_diff"] = max((a - b).abs().max().item()
                                                                 for a, b in zip(together, alone))
        seeds = torch.arange(64, dtype=torch.int64) * 7919 + 1
        out["prior_noise_cuda_vs_cpu_max_abs_diff"] = (gaussian(seeds.cuda(), 192, 512).cpu()
                                                       - gaussian(seeds, 192, 512)).abs().max().item()
        out["content_graph_padded_vs_eager_max_abs_diff"] = max(diffs)
    sov.to("cpu")
    out.update(prefill_check(gpt, g))
    out["sovits_cuda_fp32_max_abs_diff"] = (wav_gpu - wav_cpu).abs().max().item()
    out["sovits_peak"] = wav_cpu.abs().max().item()
    return out


def speed(gpt, sov, mode: str = "graphs") -> dict:
    """mode: eager (cuda_graphs off), graphs_torch_ops (graphs, the step from torch ops: decode_kernels off),
    graphs (the default: sampling and the step with the Triton kernels in one graph, pipelined)."""
    rt, req = random_runtime(16, (gpt, sov), cuda_graphs=mode != "eager", decode_kernels=mode != "graphs_torch_ops")
    list(rt.submit(req(0, 30)))  # warm-up
    greedy = rt.submit(req(5, 60, top_k=1))
    list(greedy)
    sampled = rt.submit(req(7, 60))  # top_k 15 with a seed: counter-based noise, same tokens in both modes
    list(sampled)
    results = {"greedy_tokens": greedy.tokens, "sampled_tokens": sampled.tokens}
    for batch in (1, 8):
        handles, t0 = [rt.submit(req(s)) for s in range(batch)], time.perf_counter()
        firsts, tokens_at_first = [], []

        def drain(h, firsts=firsts, tokens_at_first=tokens_at_first):
            start = time.perf_counter()
            first = None
            try:
                for _ in h:
                    if first is None:
                        first = time.perf_counter() - start
                        tokens_at_first.append(len(h.tokens))
            except Exception as exc:  # noqa: BLE001 - reported, not hidden
                print("stream failed:", repr(exc))
                return
            firsts.append(first)

        threads = [threading.Thread(target=drain, args=(h,)) for h in handles]
        [t.start() for t in threads]
        [t.join() for t in threads]
        wall = time.perf_counter() - t0
        tokens = sum(len(h.tokens) for h in handles)
        results[f"b{batch}"] = {"tokens_per_s_aggregate": tokens / wall, "tokens_per_s_per_stream": tokens / wall / batch,
                                "first_audio_ms_p50": 1000 * statistics.median(firsts), "wall_s": wall,
                                "tokens_generated_at_first_audio_p50": statistics.median(tokens_at_first)}
    rt.close()
    return results


def bert_check(device: str = "cuda", reps: int = 20) -> dict:
    """chinese-roberta-sized random BERT (`runtime_bench.make_bert`), fp16 on `device`: features of the graph
    replays vs the same padded passes run eagerly vs transformers' own model per sentence (fp16 there, fp32 on
    the CPU): max abs diff; ms per `many` call (features back on the host) at batch 1, 8, 32 of 18-character
    sentences: graphs, the eager lean encoder, transformers' padded batch; load and capture time, memory."""
    import tempfile
    from pathlib import Path

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    sys.path.insert(0, str(Path(__file__).parent))
    from runtime_bench import ZH, make_bert

    from gsvd.engine.text.bert import BertFeatures

    folder = make_bert(Path(tempfile.mkdtemp()))
    on_cuda = device.startswith("cuda")
    reserved = torch.cuda.memory_reserved() if on_cuda else 0
    graphed = BertFeatures(folder, device)
    out = {"model": graphed.info(), "reserved_gib": (torch.cuda.memory_reserved() - reserved) / 2**30 if on_cuda else 0}
    eager = BertFeatures(folder, device, graphs=False)
    tok = AutoTokenizer.from_pretrained(str(folder))
    dtype = torch.float16 if on_cuda else torch.float32
    hf = {"fp16" if on_cuda else "fp32": AutoModelForMaskedLM.from_pretrained(str(folder)).to(device, dtype).eval(),
          "cpu_fp32": AutoModelForMaskedLM.from_pretrained(str(folder)).eval()}
    chars = ZH.replace("，", "").replace("。", "")
    g = torch.Generator().manual_seed(0)
    items = []
    for n in (1, 5, 18, 23, 40, 61, 100, 130):
        text = "".join(chars[int(i)] for i in torch.randint(0, len(chars), (n,), generator=g))
        items.append((text, [int(x) for x in torch.randint(1, 4, (n,), generator=g)]))

    @torch.inference_mode()
    def reference(model, text: str, w2p: list[int]) -> torch.Tensor:
        enc = tok(text, return_tensors="pt").to(next(model.parameters()).device)
        hidden = model(**enc, output_hidden_states=True).hidden_states[-3][0, 1:-1].float().cpu()
        return hidden.repeat_interleave(torch.tensor(w2p), dim=0).T

    got_g, got_e = graphed.many(items), eager.many(items)
    out["graphs_vs_eager_max_abs_diff"] = max((a - b).abs().max().item() for a, b in zip(got_g, got_e, strict=True))
    for name, model in hf.items():
        ref = [reference(model, t, w) for t, w in items]
        out[f"graphs_vs_transformers_{name}_max_abs_diff"] = max(
            (a - b).abs().max().item() for a, b in zip(got_g, ref, strict=True))
    out["feature_abs_max"] = max(a.abs().max().item() for a in got_g)

    def hf_many(batch):
        enc = tok([t for t, _ in batch], return_tensors="pt", padding=True).to(device)
        with torch.inference_mode():
            return hf[next(iter(hf))](**enc, output_hidden_states=True).hidden_states[-3].float().cpu()

    sentence = (ZH.replace("，", "").replace("。", ""), [2] * 16)  # 16 characters: 18 tokens
    for batch in (1, 8, 32):
        rows = [sentence] * batch
        for name, run in (("graphs", graphed.many), ("eager", eager.many), ("transformers", hf_many)):
            run(rows)
            t0 = time.perf_counter()
            for _ in range(reps):
                run(rows)
            out[f"ms_per_pass_b{batch}_{name}"] = 1000 * (time.perf_counter() - t0) / reps
    return out


def _max_diff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


def template_check(g) -> dict:
    """Graphs of one architecture captured against templates, replayed for two real-size models in turn (A, B, A),
    against each model's own eager pass; and the time of one weight swap per piece."""
    from gsvd.engine.models.t2s import Text2SemanticDecoder
    from gsvd.engine.runtime.chunk_decode import SovitsParts
    from gsvd.engine.runtime.cuda_graphs import default_pool
    from gsvd.engine.runtime.graph_content import GraphedContent
    from gsvd.engine.runtime.graph_prefill import GraphedPrefill
    from gsvd.engine.runtime.graph_vocoder import GraphedVocoder, vocode
    from gsvd.engine.runtime.kv_cache import KVCache
    from gsvd.engine.runtime.prefill import prefill
    from gsvd.engine.runtime.weights import FlatWeights

    dev = torch.device("cuda")
    a, b = _models(), _models()
    with torch.no_grad():  # model B: other weights
        for p in (*b[0].parameters(), *b[1].parameters()):
            p.mul_(0.9)
    gpts = [m[0].to(dev, torch.float16) for m in (a, b)]
    flats = [FlatWeights([m], dev) for m in gpts]
    parts = [SovitsParts(m[1].to(dev), half=True) for m in (a, b)]
    for p in parts:
        p.flatten(dev)
    pool = default_pool(dev)
    out = {}
    with torch.inference_mode():
        with torch.device("meta"):
            template = Text2SemanticDecoder(gpts[0].dims).half().eval()
        tw = FlatWeights([template], dev, keep_host=False)
        caches = [KVCache(24, 512, 2, 600, dev, torch.float16, preallocate=True) for _ in range(2)]
        graphs = GraphedPrefill(template, caches[1], pool=pool, weights=tw)
        for key in ((1, 192), (1, 256)):
            graphs.capture(key)
        row = (0, torch.randint(0, 732, (60,), generator=g), torch.randn(1024, 60, generator=g),
               torch.randint(0, 1024, (150,), generator=g))
        diffs = []
        for k in (0, 1, 0):
            got, _ = prefill(gpts[k], caches[1], [row], dev, graphs, flats[k])
            ref, _ = prefill(gpts[k], caches[0], [row], dev)
            diffs.append(_max_diff(got, ref))
        out["template_prefill_vs_own_eager_logits_max_abs_diff"] = max(diffs)
        out["template_prefill_swaps"] = tw.copies
        tp = SovitsParts.template(parts[0].sovits.dims, True, dev)
        content, voc = GraphedContent(tp, pool=pool), GraphedVocoder(tp, pool=pool)
        for key in ((1, 16, 32), (1, 64, 32)):
            content.capture(key)
        for key in voc.capture_order([12, 36], 192, 512, dev)[:4]:
            voc.capture(key)
        ge = [p.sovits.compute_ge(torch.rand(1, 1025, 200, generator=g).to(dev)) for p in parts]
        codes, phones = torch.randint(0, 1024, (1, 1, 40), generator=g), torch.randint(0, 732, (1, 30), generator=g)
        z_diff, v_diff = [], []
        for k in (0, 1, 0):
            z = content(codes, phones, ge[k], [40], [30], [5], [0.0], weights=parts[k])[0]
            hidden, mask = parts[k].sovits.content(codes.to(dev), phones.to(dev), ge[k])
            m, _, _ = parts[k].sovits.prior(hidden, mask, 1.0)
            z_diff.append(_max_diff(z, m))
            w = torch.randn(1, 192, 36, generator=g).to(dev)
            v_diff.append(_max_diff(voc(w, ge[k], weights=parts[k]), vocode(parts[k], w, ge[k])))
        out["template_content_vs_own_eager_max_abs_diff"] = max(z_diff)
        out["template_vocoder_vs_own_eager_max_abs_diff"] = max(v_diff)
        za, zb = (content(codes, phones, ge[0], [40], [30], [5], [0.0], weights=p)[0] for p in parts)
        out["template_outputs_differ_between_models"] = _max_diff(za, zb) > 1e-3  # the swap took place

        def swap_ms(template_weights, models) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            template_weights.holding = None
            start.record()
            for k in range(10):
                template_weights.holding = None
                template_weights.hold(models[k % 2])
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 10

        out["swap_ms"] = {"gpt": swap_ms(tw, flats), "content": swap_ms(tp.content, [p.content for p in parts]),
                          "vocoder": swap_ms(tp.vocoder, [p.vocoder for p in parts])}
        out["swap_mib"] = {"gpt": tw.nbytes / 2**20, "content": tp.content.nbytes / 2**20,
                           "vocoder": tp.vocoder.nbytes / 2**20}
    return out


def serving_check() -> dict:
    """A model serving while its graphs are captured in the background, then after; evicted and back."""
    rt, req = random_runtime(16)
    out = {}
    try:
        gpt, sov = _models()
        t0 = time.perf_counter()
        rt.add_model("n", gpt, sov)
        out["second_model_add_s"] = time.perf_counter() - t0

        def greedy(seed: int):
            r = req(seed, 60, top_k=1)
            r.model_id = "n"
            h = rt.submit(r)
            t = time.perf_counter()
            first = None
            for _ in h:
                first = first if first is not None else time.perf_counter() - t
            return h.tokens, first

        early, first_early = greedy(3)
        out["first_audio_while_capturing_ms"] = 1000 * first_early
        t0 = time.perf_counter()
        rt.wait_graphs()
        out["graphs_ready_after_add_s"] = time.perf_counter() - t0 + out["second_model_add_s"]
        late, first_late = greedy(3)
        out["first_audio_graphed_ms"] = 1000 * first_late
        out["greedy_tokens_equal_before_and_after_graphs"] = early == late
        out["evicted"] = rt.evict("n")
        back, first_back = greedy(3)
        out["first_audio_after_eviction_ms"] = 1000 * first_back
        out["comeback_ms"] = rt.stats()["last_comeback_ms"]
        out["greedy_tokens_equal_after_comeback"] = back == late
    finally:
        rt.close()
    return out


_CACHE_CHILD = """
import sys, time, torch
sys.path.insert(0, {here!r})
from gpu_engine_check import _models
from gsvd.engine.runtime import Runtime
from gsvd.engine.settings import RuntimeConfig
rt = Runtime(RuntimeConfig(device="cuda", max_streams=4, triton_cache={folder!r}))
rt._builder.close()  # no background capture: only the one below
gpt, sov = _models()
rt.add_model("m", gpt, sov)
dec = rt._scheduler.models["m"].decoder
t0 = time.perf_counter()
with torch.inference_mode():
    ok = dec.capture(1)
print("CAPTURE", ok, dec.kernels, time.perf_counter() - t0, flush=True)
rt.close()
"""


def triton_cache_check() -> dict:
    """Two fresh processes with one empty `triton_cache` folder: the first compiles the decode kernels into it, the
    second finds them there (its first decode capture: compile time of each)."""
    import subprocess
    import sys
    import tempfile

    folder = tempfile.mkdtemp(prefix="gsvd_triton_")
    code = _CACHE_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)), folder=folder)
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CAPTURE")), "CAPTURE ? ? nan")
        _, ok, kernels, seconds = line.split()
        files = sum(len(f) for _, _, f in os.walk(folder))
        runs.append({"captured": ok == "True", "kernels": kernels == "True", "first_capture_s": float(seconds),
                     "cache_files": files})
    return {"folder": folder, "runs": runs}


def watermark_check(reps: int = 50) -> dict:
    """The watermark added where the audio is made (`chunking.join_rows`, on the GPU): one seeded stream with and
    without the mark (the runtime's lane replays the marks from its graphs); their difference vs the reference marker
    (float64, CPU) on the unmarked audio; the time of a 64-row join of 0.3 s chunks, plain / marked eagerly / marked
    from graphs (CUDA events: with the launches, as the scheduler's thread pays them)."""
    import dataclasses

    import numpy as np

    from gsvd.engine.provenance import Watermarker
    from gsvd.engine.provenance.embed import GraphedMarks
    from gsvd.engine.runtime.chunking import StreamDecoder, join_rows
    from gsvd.engine.runtime.cuda_graphs import default_pool

    marker = Watermarker()
    rt, request = random_runtime(4, watermark=marker.pattern)
    try:
        plain = np.concatenate(list(rt.submit(request(3, 150))))
        marked = np.concatenate(list(rt.submit(dataclasses.replace(request(3, 150), mark=marker.stream_mark("m")))))
        lane_marks = rt.audio_lanes[0].marks
        captured = [k for k in lane_marks.capture_order() if lane_marks.graphs.has(k)] if lane_marks else []
    finally:
        rt.close()
    want = marker.mark(plain, 32000, "m").astype(np.float64) - plain
    got = marked.astype(np.float64) - plain
    out = {"samples": len(plain), "same_length": len(plain) == len(marked), "lane_mark_graphs": captured,
           "mark_rms_rel": float(np.sqrt(np.mean(want**2) / np.mean(plain.astype(np.float64) ** 2))),
           "max_diff_vs_reference_rel": float(np.abs(got - want).max() / np.abs(want).max())}
    rows, width = 64, 9600 + 320
    wav = torch.randn(rows, width, device="cuda") * 0.1
    graphed = GraphedMarks(marker.pattern, 320, torch.device("cuda"), default_pool("cuda"))
    for key in graphed.capture_order():
        graphed.capture(key)
    decs = [(StreamDecoder(None, torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 1, 1), 0.0, 1.0, 0,
                           mark=marker.stream_mark(f"v{r}").at(32000 * r)), 0, False, wav[r, :320].clone())
            for r in range(rows)]
    plain_rows = [(dataclasses.replace(d, mark=None), *rest) for d, *rest in decs]
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    results = {}
    for name, use, marks in (("plain", plain_rows, None), ("eager", decs, None), ("graphs", decs, graphed)):
        results[name] = join_rows(wav, use, marks)[0]
        torch.cuda.synchronize()
        t0.record()
        for _ in range(reps):
            join_rows(wav, use, marks)
        t1.record()
        t1.synchronize()
        out[f"join_64x0.3s_ms_{name}"] = t0.elapsed_time(t1) / reps
    out["graphs_vs_eager_max_diff"] = float((results["graphs"] - results["eager"]).abs().max())
    frames_per_20ms = rows * 9600 / 640
    out["mark_ms_per_20ms_audio_graphs"] = (out["join_64x0.3s_ms_graphs"] - out["join_64x0.3s_ms_plain"]) / frames_per_20ms
    return out


def main() -> None:
    info = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if sys.argv[1:] == ["--bert-only"]:  # the BERT features check alone
        info["bert"] = bert_check()
        print(json.dumps(info))
        return
    checks = os.environ.get("CHECKS", "correctness,speed,many_models,watermark").split(",")
    if "watermark" in checks:
        info["watermark"] = watermark_check()
    if "many_models" in checks:  # fresh models of its own (a runtime moves the modules it is given)
        info["many_models"] = {**template_check(torch.Generator().manual_seed(7)), **serving_check(),
                               "triton_cache": triton_cache_check()}
    if "correctness" not in checks:
        print(json.dumps(info))
        return
    gpt, sov = _models()
    info["correctness"] = correctness(gpt, sov)
    info["bert"] = bert_check() if find_spec("transformers") else "transformers not installed"
    modes = os.environ.get("CHECK_MODES", "eager,graphs_torch_ops,graphs").split(",")
    runs = {mode: speed(gpt, sov, mode) for mode in modes}
    for mode in modes[1:]:
        info[f"greedy_tokens_identical_{mode}_vs_eager"] = runs[mode]["greedy_tokens"] == runs["eager"]["greedy_tokens"]
        e_s, g_s = runs["eager"]["sampled_tokens"], runs[mode]["sampled_tokens"]
        info[f"seeded_sampled_tokens_identical_{mode}_vs_eager"] = e_s == g_s
    for mode, r in runs.items():
        r.pop("greedy_tokens"), r.pop("sampled_tokens")
        info[f"runtime_{mode}_cuda_fp16"] = r
    for k, v in info.items():
        print(k, v)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu_engine_check.json"), "w") as f:
            json.dump(info, f, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
