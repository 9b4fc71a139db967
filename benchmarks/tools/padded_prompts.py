#!/usr/bin/env python
"""GPU: what prompts of different lengths cost a decode, with the attention reading each row from its first visible slot
(the default) and from slot 0 (its left padding read and masked, as before), a development tool.

Random weights of a shape, random prompt tokens with lengths drawn uniformly from `--prompt-lengths LO HI` (left-padded
to the longest), `--T` forced new tokens; each variant timed twice after a warm-up, its best time printed, with the
memory-roofline floor of the bytes a step must read (weights, and each row's real cache only).

    python benchmarks/tools/padded_prompts.py --shape qwen2.5-1.5b --rows 128 --T 512 --prompt-lengths 32 1024
"""
import argparse, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import shape_dir, decode_bytes, measure_bandwidth

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--rows", type=int, default=128); ap.add_argument("--T", type=int, default=512)
ap.add_argument("--prompt-lengths", type=int, nargs=2, default=[32, 1024]); ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
import rlprims.fast_decode as fd
from rlprims.core import GenerationConfig
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
d = shape_dir(a.shape)
torch.manual_seed(a.seed)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16).cuda()
tok = AutoTokenizer.from_pretrained(d)
lo, hi = a.prompt_lengths
lengths = torch.randint(lo, hi + 1, (a.rows,))
P = int(lengths.max())
mask = (torch.arange(P)[None] >= P - lengths[:, None]).long()           # left-padded
ids = torch.randint(100, model.config.vocab_size - 100, (a.rows, P)) * mask + (1 - mask) * (tok.pad_token_id or 0)
gen = GenerationConfig(max_new_tokens=a.T, temperature=1.0, top_p=1.0, top_k=0)
forced = torch.full((a.rows,), a.T)
original = fd.decode_attention
from_zero = lambda *args, first=None, **kw: original(*args, **kw)       # the attention as before: every row from slot 0
def timed(variant: str) -> float:
    fd.decode_attention = original if variant == "first" else from_zero
    try:
        best = float("inf")
        for _ in range(3):                                                # the first call builds and captures
            torch.cuda.synchronize(); t0 = time.perf_counter()
            fd.generate_batch_fast(model, tok, ids, mask, gen, forced_lengths=forced, slots=None)
            torch.cuda.synchronize(); best = min(best, time.perf_counter() - t0)
        return best
    finally: fd.decode_attention = original
wbytes, kv_per_tok, *_ = decode_bytes(model)
real = sum(wbytes + kv_per_tok * float((lengths + t).sum()) for t in range(1, a.T))     # each row's own prompt, no padding
padded = sum(wbytes + kv_per_tok * a.rows * (P + t) for t in range(1, a.T))
bw = measure_bandwidth("cuda")
print(f"{a.shape}, {a.rows} rows x {a.T} new tokens, prompts of {lo}..{hi} tokens (mean {lengths.float().mean():.0f}, padded to {P}); "
      f"memory floor {real / bw:.3f} s (with the padding read: {padded / bw:.3f} s) at {bw / 1e9:.0f} GB/s", flush=True)
res = {v: timed(v) for v in ("from-zero", "first")}
for v, s in res.items(): print(f"  attention from {'slot 0' if v == 'from-zero' else 'each row first slot'}: {s:.3f} s, floor / time {real / bw / s:.1%}")
print(f"  speed-up {res['from-zero'] / res['first']:.3f}x")
