#!/usr/bin/env python
"""GPU A/B of `decode_attention`'s split spans inside `generate_batch_fast`: a random model of a matrix shape, 128 rows, forced
and long-tailed lengths, the automatic number of spans against `spans=1`; prints seconds (median of 2) and checks that greedy
tokens agree. Run: `python benchmarks/tools/ab_attention_spans.py --shape qwen2.5-1.5b --T 1024`."""
import argparse, functools, statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import shape_dir, row_lengths
import rlprims.fast_decode as fd
from rlprims.core import GenerationConfig
from rlprims.generation import tokenize_prompts
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--T", type=int, default=1024); ap.add_argument("--rows", type=int, default=128)
a = ap.parse_args()
d = shape_dir(a.shape)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16).cuda()
tok = AutoTokenizer.from_pretrained(d)
pids, pmask = tokenize_prompts(tok, [f"What is {i} + {2 * i + 3}? Answer with just the number." for i in range(a.rows // 8)], n=8)
sample = GenerationConfig(max_new_tokens=a.T, min_new_tokens=a.T, temperature=1.0, top_p=1.0, top_k=0)
original = fd.decode_attention
print(f"{a.shape}, {a.rows} rows, T={a.T}: spans chosen {fd._attention_spans(a.rows, model.config.num_key_value_heads, pids.shape[1] + a.T - 1, 'cuda')}")
for lengths in ("forced", "longtail"):
    L = row_lengths(0, a.rows, a.T, lengths)
    for name, fn in (("auto spans", original), ("spans=1", functools.partial(original, spans=1)), ("auto spans", original)):
        fd.decode_attention = fn
        t = []
        for _ in range(2):
            torch.cuda.synchronize(); t0 = time.perf_counter()
            b = fd.generate_batch_fast(model, tok, pids, pmask, sample, forced_lengths=L)
            torch.cuda.synchronize(); t.append(time.perf_counter() - t0)
        print(f"  {lengths:8s} {name:10s} {statistics.median(t):.3f} s  ({int(b.completion_mask.sum())} tokens)", flush=True)
fd.decode_attention = original
greedy = sample._replace(do_sample=False, min_new_tokens=64, max_new_tokens=64)
x = fd.generate_batch_fast(model, tok, pids, pmask, greedy)
fd.decode_attention = functools.partial(original, spans=1)
y = fd.generate_batch_fast(model, tok, pids, pmask, greedy)
fd.decode_attention = original
agree = (x.completion_ids == y.completion_ids).float().mean().item()
torch.manual_seed(1)
b = fd.generate_batch_fast(model, tok, pids, pmask, sample._replace(min_new_tokens=64, max_new_tokens=64))
from rlprims.generation import compute_logprobs_for_tokens
fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
err = ((fresh - b.logprobs).abs() * b.completion_mask).sum().item() / b.completion_mask.sum().item()
print(f"greedy tokens equal with and without spans: {agree:.1%}; sampled, |sampler - fresh log-prob| mean {err:.4f}")
assert agree > 0.9 and err < 0.03
