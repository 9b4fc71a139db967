#!/usr/bin/env python
"""GPU: `generate_batch_fast` of this tree against an earlier version of `rlprims/fast_decode.py`, on the same
random-weight model of a shape, the two called in turn (a development tool). Also times `sample_softmax` for several
numbers of spans, and checks each version's sampled log-probs against a fresh scoring pass.

    git show 6f7de20:rlprims/fast_decode.py > /tmp/old_fast_decode.py
    python benchmarks/tools/ab_decode.py --old /tmp/old_fast_decode.py --shape qwen2.5-1.5b --rows 128 --T 1024

Prints each version's median time over 3 timed calls (after one warm-up), its tokens/s and its share of the decode's
memory roofline (`bench_grpo.roofline`, bandwidth measured in the same run), and new / old.
"""
import argparse, shutil, statistics, sys, time
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks")); from bench_grpo import roofline
from kernel_timing import random_shape_model, sum_prompts, sampler_ms
ap = argparse.ArgumentParser()
ap.add_argument("--old", required=True, help="an earlier rlprims/fast_decode.py (git show REV:rlprims/fast_decode.py > FILE)")
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--rows", type=int, default=128); ap.add_argument("--T", type=int, default=1024)
a = ap.parse_args()
shutil.copy(a.old, ROOT / "rlprims" / "_old_fast_decode.py")   # inside the package, so its relative imports resolve
try:
    import rlprims.fast_decode as new, rlprims._old_fast_decode as old
finally: (ROOT / "rlprims" / "_old_fast_decode.py").unlink()
from rlprims.core import GenerationConfig
from rlprims.generation import compute_logprobs_for_tokens
rows, T = a.rows, a.T
model, tok = random_shape_model(a.shape)
pids, pmask = sum_prompts(tok, rows)
gen = GenerationConfig(max_new_tokens=T, min_new_tokens=T, temperature=1.0, top_p=1.0, top_k=0)
times = {"old": [], "new": []}
for rep in range(4):
    for name, mod in (("old", old), ("new", new)):
        torch.cuda.synchronize(); t0 = time.perf_counter(); mod.generate_batch_fast(model, tok, pids, pmask, gen); torch.cuda.synchronize()
        if rep: times[name].append(time.perf_counter() - t0)
f = roofline(model, dict(prompts=rows // 8, G=8, T=T), pmask.sum(-1).float().mean().item(), "cuda")
floor = max(f["t_mem"], f["t_flop"])
for name in times:
    t = statistics.median(times[name])
    print(f"{a.shape} {rows} rows x {T}: {name} {t:.3f} s (runs {', '.join(f'{x:.3f}' for x in times[name])}), {rows * T / t:,.0f} tokens/s, {floor / t:.1%} of the roofline ({floor:.3f} s)", flush=True)
print(f"new / old: {statistics.median(times['new']) / statistics.median(times['old']):.3f}")
V = model.config.vocab_size
print(f"sample_softmax [{rows}, {V}]: old default {sampler_ms(old.sample_softmax, rows, V):.3f} ms, new default {sampler_ms(new.sample_softmax, rows, V):.3f} ms; "
      + ", ".join(f"spans={s} {sampler_ms(new.sample_softmax, rows, V, spans=s):.3f} ms" for s in (4, 8, 16, 64)), flush=True)
lengths = torch.randint(1, T + 1, (rows,), generator=torch.Generator().manual_seed(0)).clamp(max=256)
g2 = GenerationConfig(max_new_tokens=256, min_new_tokens=256, temperature=1.0, top_p=1.0, top_k=0)
for name, mod in (("old", old), ("new", new)):
    torch.manual_seed(1); b = mod.generate_batch_fast(model, tok, pids, pmask, g2, forced_lengths=lengths)
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
    err = (fresh - b.logprobs).abs() * b.completion_mask
    print(f"{name}: sampled log-probs vs a fresh scoring pass, mean |diff| {err.sum().item() / b.completion_mask.sum().item():.4f}, max {err.max().item():.3f}", flush=True)
