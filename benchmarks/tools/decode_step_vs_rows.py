#!/usr/bin/env python
"""GPU: what one decode step of `generate_batch_fast` costs at each number of live rows (a development tool).

A long-tailed batch spends most of its steps with few rows left, so its cost is the sum of this curve over its steps.
For each row count: a forced-length decode of `--T` tokens with CUDA graphs, its time per step (prefill taken out by
a 2-token run), then the weight-read floor per step for comparison.

    python benchmarks/tools/decode_step_vs_rows.py --shape qwen2.5-1.5b --rows 128 64 32 16 8 4 --T 512
    python benchmarks/tools/decode_step_vs_rows.py --rows 128 --blas cublaslt      # the products through cuBLASLt instead
    python benchmarks/tools/decode_step_vs_rows.py --rows 16 --T 1024 --splits 1   # the attention in one span a row
"""
import argparse, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import shape_dir, measure_bandwidth

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--rows", type=int, nargs="+", default=[128, 64, 32, 16, 8, 4])
ap.add_argument("--T", type=int, default=512)
ap.add_argument("--blas", default=None, help="torch.backends.cuda.preferred_blas_library for the matrix products (cublas, cublaslt)")
ap.add_argument("--splits", type=int, default=None, help="spans per row in the attention (default: attention_splits' choice)")
a = ap.parse_args()
if a.blas: torch.backends.cuda.preferred_blas_library(a.blas)
import rlprims.fast_decode as fd
if a.splits: fd.attention_splits = lambda programs, Lmax, dev: a.splits
from rlprims.core import GenerationConfig
from rlprims.generation import tokenize_prompts
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
d = shape_dir(a.shape)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16).cuda()
tok = AutoTokenizer.from_pretrained(d)
wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
floor = wbytes / measure_bandwidth("cuda")
print(f"{a.shape} ({torch.backends.cuda.preferred_blas_library()}, attention spans {a.splits or 'by attention_splits'}): weights {wbytes / 1e9:.2f} GB, read once per step in {floor * 1e3:.3f} ms at the copy bandwidth")
for n in a.rows:
    pids, pmask = tokenize_prompts(tok, [f"What is {i} + {2 * i + 3}? Answer with just the number." for i in range(max(1, n // 8))], n=min(8, n))
    def run(T):
        gen = GenerationConfig(max_new_tokens=T, min_new_tokens=T, temperature=1.0, top_p=1.0, top_k=0)
        torch.cuda.synchronize(); t0 = time.perf_counter(); fd.generate_batch_fast(model, tok, pids, pmask, gen); torch.cuda.synchronize()
        return time.perf_counter() - t0
    run(a.T); run(2)
    full, short = min(run(a.T) for _ in range(2)), min(run(2) for _ in range(2))
    step = (full - short) / (a.T - 2)
    print(f"{len(pids):4d} rows: {step * 1e3:6.3f} ms a step ({floor / step:5.1%} of the weight-read floor), {len(pids) / step:9,.0f} tokens/s", flush=True)
