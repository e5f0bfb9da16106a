"""GPT decode speed, tokens/s per stream and aggregate, at several batch sizes (GPU).

    PYTHONPATH=. python3 benchmarks/gpt_decode_bench.py [--batches 1,8,32,128,256] [--steps 200] [--modes ...]

Real v2 sizes (24 x 512, 16 heads), random weights, fp16; every stream is prefilled with 60 phones and
100 prompt tokens (prefix 160) and then decodes `--steps` tokens with top-k 15 sampling (EOS is not
allowed to stop a stream, so every row runs the whole time). Each step is what the scheduler does per
tick, host loop included: sample, decode, and read the sampled ids back (one host sync per step).

Modes, in one run (the scheduler's two decoders, `engine/runtime/graph_decode.py`):
- eager:     `StepDecoder` over `TorchStep`: sampling + decode step as eager torch ops (`cuda_graphs=false`)
- torch_ops: `GraphDecoder` without the Triton kernels: sampling + step (torch ops) in one CUDA graph
- fused:     `GraphDecoder` (Triton kernels, the default), each step read back before the next is launched
- pipelined: the same, step n+1 launched before step n is read back (what the scheduler does on CUDA)

Checks first: the Triton step's logits vs the torch step's (fp16, same cache), and greedy tokens
(60 steps, 4 streams) of every mode. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

PREFIX_TEXT, PREFIX_AUDIO = 60, 100


def _gpt():
    from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder
    from gsvd.engine.testing.gpt import random_gpt_state, real_v2_gpt_config

    cfg = real_v2_gpt_config()
    gpt = Text2SemanticDecoder(T2SDims.from_config(cfg))
    gpt.load_state_dict(random_gpt_state(cfg, 1))
    return gpt.to("cuda", torch.float16).eval()


class Rig:
    """One KV block + sampler for `slots` streams, every slot prefilled with the same prefix."""

    def __init__(self, gpt, slots: int, max_len: int) -> None:
        from gsvd.engine.runtime.device_sampling import SamplerState
        from gsvd.engine.runtime.kv_cache import KVCache

        self.gpt, dims = gpt, gpt.dims
        self.cache = KVCache(dims.n_layer, dims.hidden_dim, slots, max_len, torch.device("cuda"), torch.float16,
                             preallocate=True)
        self.sampler = SamplerState(slots, dims.vocab_size, torch.device("cuda"))
        g = torch.Generator().manual_seed(0)
        phones, bert = torch.randint(0, 732, (1, PREFIX_TEXT), generator=g), torch.randn(1, 1024, PREFIX_TEXT, generator=g)
        self.prompt = torch.randint(0, 1024, (1, PREFIX_AUDIO), generator=g).cuda()
        with torch.inference_mode():
            x = gpt.embed_text(phones.cuda(), bert.cuda().half())
            y = gpt.embed_audio(self.prompt, 0)
            h, kvs = gpt.run_layers(torch.cat([x, y], 1), None, gpt.prefix_mask(x.shape[1], y.shape[1], "cuda"))
            self.first_logits = gpt.logits(h[:, -1])[0].float()
            for layer, (k, v) in enumerate(kvs):
                self.cache.k_all[layer, :slots, : k.shape[1]] = k[0]
                self.cache.v_all[layer, :slots, : k.shape[1]] = v[0]
        self.prefix = PREFIX_TEXT + PREFIX_AUDIO

    def reset(self, n: int, top_k: int) -> None:
        from gsvd.engine.types import SynthesisOptions

        for s in range(n):
            self.sampler.start(s, self.first_logits, self.prompt, SynthesisOptions(top_k=top_k, seed=s))
            self.cache.lengths[s] = self.prefix


def _decoder(rig: Rig, mode: str):
    from gsvd.engine.runtime.graph_decode import GraphDecoder, StepDecoder, TorchStep
    from gsvd.engine.runtime.scheduler import MIN_STEPS

    gpt, cache, sampler = rig.gpt, rig.cache, rig.sampler
    if mode == "eager":
        return StepDecoder(TorchStep(gpt, cache), sampler, gpt.dims.eos, MIN_STEPS)
    key = "torch_ops" if mode == "torch_ops" else "kernels"
    if key not in rig.decoders:
        rig.decoders[key] = GraphDecoder(gpt, cache, sampler, gpt.dims.eos, MIN_STEPS, kernels=key == "kernels")
        rig.decoders[key].prepare()
    return rig.decoders[key]


def _runner(rig: Rig, mode: str, n: int):
    """-> step() that advances n streams by one token and returns the sampled ids read back by it (a host list)."""
    cache, dec = rig.cache, _decoder(rig, mode)
    slots = list(range(n))
    step_no = [0]
    pending = []

    def step():
        lengths = [cache.lengths[s] for s in slots]
        positions = [PREFIX_AUDIO + step_no[0]] * n
        for s in slots:
            cache.lengths[s] += 1
        step_no[0] += 1
        pending.append(dec.launch(slots, lengths, positions))
        if mode == "pipelined":
            return dec.collect(pending.pop(0))[0] if len(pending) > 1 else []
        return dec.collect(pending.pop(0))[0]

    return step


def run_mode(rig: Rig, mode: str, n: int, steps: int, top_k: int = 15) -> tuple[float, list[list[int]]]:
    rig.top_k = top_k
    rig.reset(n, top_k)
    step = _runner(rig, mode, n)
    with torch.inference_mode():
        for _ in range(3):  # warm-up (graph capture, kernel compile) on the same slots, then start over
            step()
        rig.reset(n, top_k)
        step = _runner(rig, mode, n)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        toks = [step() for _ in range(steps)]
        dt = time.perf_counter() - t0
    return dt, toks


def checks(gpt) -> dict:
    from gsvd.engine.runtime.graph_decode import decode_step

    out = {}
    rig = Rig(gpt, 8, 512)
    rig.decoders = {}
    g = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        for layer in range(gpt.dims.n_layer):  # different history per slot
            rig.cache.k_all[layer, :8, 160:300] = torch.randn(8, 140, 512, generator=g).half().cuda()
            rig.cache.v_all[layer, :8, 160:300] = torch.randn(8, 140, 512, generator=g).half().cuda()
        lengths = torch.tensor([160, 170, 299, 5, 200, 161, 250, 180], device="cuda")
        tokens = torch.randint(0, 1024, (8,), generator=g).cuda()
        pos = torch.randint(0, 200, (8,), generator=g).cuda()
        slots = torch.tensor([3, 1, 4, 0, 7, 2, 6, 5], device="cuda")
        k0, v0 = rig.cache.k_all.clone(), rig.cache.v_all.clone()
        ref = decode_step(gpt, rig.cache, tokens, pos, slots, lengths)
        k_ref = rig.cache.k_all.clone()
        rig.cache.k_all.copy_(k0)
        rig.cache.v_all.copy_(v0)
        got = decode_step(gpt, rig.cache, tokens, pos, slots, lengths, kernels=True)
        out["kernel_vs_torch_step_logits_max_abs_diff"] = (got - ref).abs().max().item()
        out["kernel_vs_torch_step_logits_rel_l2"] = ((got - ref).norm() / ref.norm()).item()
        out["kernel_vs_torch_step_argmax_equal"] = bool((got.argmax(-1) == ref.argmax(-1)).all())
        out["kernel_vs_torch_cache_rows_max_abs_diff"] = (rig.cache.k_all.float() - k_ref.float()).abs().max().item()
    greedy = {}
    modes = ("eager", "torch_ops", "fused", "pipelined")
    for mode in modes:
        _, toks = run_mode(rig, mode, 4, 60, top_k=1)
        greedy[mode] = [t for t in toks if t]
    for mode in modes[1:]:
        same = sum(a == b for a, b in zip(greedy[mode], greedy["eager"]))
        out[f"greedy_steps_equal_{mode}_vs_eager_of_60"] = same
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32,128,256")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eager-steps", type=int, default=40)
    ap.add_argument("--modes", default="eager,torch_ops,fused,pipelined")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    gpt = _gpt()
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "checks": checks(gpt), "runs": []}
    print("checks:", json.dumps(result["checks"]))
    rig = Rig(gpt, max(batches), PREFIX_TEXT + PREFIX_AUDIO + args.steps + 16)
    rig.decoders = {}
    print(f"{'mode':22} {'batch':>5} {'ms/step':>8} {'tok/s/stream':>13} {'tok/s total':>12}")
    for mode in args.modes.split(","):
        for n in batches:
            steps = args.eager_steps if mode == "eager" else args.steps
            dt, _ = run_mode(rig, mode, n, steps)
            row = {"mode": mode, "batch": n, "steps": steps, "ms_per_step": 1000 * dt / steps,
                   "tok_s_per_stream": steps / dt, "tok_s_total": n * steps / dt}
            result["runs"].append(row)
            print(f"{mode:22} {n:5d} {row['ms_per_step']:8.3f} {row['tok_s_per_stream']:13.1f} {row['tok_s_total']:12.1f}",
                  flush=True)
        rig.decoders.clear()
        torch.cuda.empty_cache()
    by = {(r["mode"], r["batch"]): r for r in result["runs"]}
    for base in ("eager", "torch_ops"):
        result[f"speedup_pipelined_vs_{base}"] = {
            n: by[("pipelined", n)]["tok_s_total"] / by[(base, n)]["tok_s_total"]
            for n in batches if ("pipelined", n) in by and (base, n) in by}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
