"""Compare gsvd's GPT with upstream GPT-SoVITS's reference implementation (fp32, CPU).

Run OUTSIDE the repo's venv, in one that can import upstream (see README.md here):

    UPSTREAM=/path/to/GPT-SoVITS/GPT_SoVITS python benchmarks/compat/gpt_vs_upstream.py

It writes a random-weight checkpoint of the real v2 size with gsvd's `save_gpt`,
loads it into both implementations, feeds the same phone ids, BERT features and
prompt tokens, and compares first-step logits and the greedy (top_k=1) token
sequence. Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import torch


def main() -> None:
    upstream = os.environ.get("UPSTREAM", "/tmp/upstream/GPT_SoVITS")
    sys.path.insert(0, upstream)
    from AR.models.t2s_model import Text2SemanticDecoder as UpstreamT2S

    from gsvd.engine.checkpoints.gpt import build_gpt, load_gpt
    from gsvd.engine.t2s_infer import first_step_logits, generate_semantic
    from gsvd.engine.testing.gpt import random_gpt_state, real_v2_gpt_config

    torch.manual_seed(0)
    cfg = real_v2_gpt_config()
    path = os.path.join(tempfile.mkdtemp(), "v2_random.ckpt")
    from gsvd.engine.checkpoints.gpt import save_gpt

    save_gpt(path, random_gpt_state(cfg, seed=1), cfg)

    ours = build_gpt(load_gpt(path))
    raw = torch.load(path, map_location="cpu", weights_only=True)
    ref = UpstreamT2S(raw["config"], top_k=3)
    ref.load_state_dict({k.removeprefix("model."): v.float() for k, v in raw["weight"].items()})
    ref.eval()

    g = torch.Generator().manual_seed(3)
    n_prompt_ph, n_target_ph, n_prompt_tok = 24, 31, 90
    phones = torch.randint(0, 732, (n_prompt_ph + n_target_ph,), generator=g)
    bert = torch.randn(1024, phones.numel(), generator=g)
    prompt = torch.randint(0, 1024, (n_prompt_tok,), generator=g)

    rows = []
    with torch.no_grad():
        ours_logits = first_step_logits(ours, phones, bert, prompt)[0]
        ref_logits = _upstream_first_logits(ref, phones, bert, prompt)
        diff = (ours_logits - ref_logits).abs().max().item()
        rows.append(("first-step logits max|diff|", f"{diff:.3e}"))

        steps = 60
        t0 = time.time()
        ours_tokens = list(generate_semantic(ours, phones, bert, prompt, top_k=1, top_p=1.0, temperature=1.0,
                                             repetition_penalty=1.35, max_steps=steps))
        t_ours = time.time() - t0
        t0 = time.time()
        y, idx = next(ref.infer_panel_naive(phones[None], torch.tensor([phones.numel()]), prompt[None], bert[None],
                                            top_k=1, top_p=1.0, early_stop_num=steps - 1, temperature=1.0,
                                            repetition_penalty=1.35))
        t_ref = time.time() - t0
        ref_tokens = y[0, n_prompt_tok:].tolist()
    n = min(len(ours_tokens), len(ref_tokens))
    same = ours_tokens[:n] == ref_tokens[:n]
    rows += [("tokens compared", str(n)), ("tokens identical", str(same)),
             ("gsvd tokens (first 12)", str(ours_tokens[:12])), ("upstream tokens (first 12)", str(ref_tokens[:12])),
             ("gsvd s", f"{t_ours:.2f}"), ("upstream s", f"{t_ref:.2f}")]
    for k, v in rows:
        print(f"{k:32s} {v}")
    print(json.dumps({"logits_max_abs_diff": diff, "tokens_compared": n, "tokens_identical": same,
                      "config": "v2 24x512x16, 732 phonemes, random weights, fp32 CPU"}))


def _upstream_first_logits(ref, phones, bert, prompt) -> torch.Tensor:
    """Upstream's prefix pass (as in infer_panel_naive, step 0) -> logits [vocab]."""
    import torch.nn.functional as F

    x = ref.ar_text_embedding(phones[None])
    x = x + ref.bert_proj(bert[None].transpose(1, 2))
    x = ref.ar_text_position(x)
    y_emb = ref.ar_audio_embedding(prompt[None])
    y_pos = ref.ar_audio_position(y_emb)
    xy = torch.concat([x, y_pos], dim=1)
    x_len, y_len = x.shape[1], y_pos.shape[1]
    x_mask = F.pad(torch.zeros((x_len, x_len), dtype=torch.bool), (0, y_len), value=True)
    y_mask = F.pad(torch.triu(torch.ones(y_len, y_len, dtype=torch.bool), diagonal=1), (x_len, 0), value=False)
    mask = torch.concat([x_mask, y_mask], dim=0)[None, None].expand(1, ref.num_head, -1, -1)
    dec, _, _ = ref.t2s_transformer.process_prompt(xy, mask, None)
    return ref.ar_predict_layer(dec[:, -1])[0]


if __name__ == "__main__":
    main()
