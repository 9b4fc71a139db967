#!/usr/bin/env python
"""Where a refill's time goes, on a GPU: `generate_batch_fast` over long-tailed rows through fewer slots than rows.

    python benchmarks/tools/profile_refill.py [--shape qwen2.5-1.5b] [--prompts 64] [--G 8] [--T 1024] [--slots 128] [--variant KEY=VALUE ...]

Random weights of the shape, bf16, forced long-tailed lengths (`bench_grpo.row_lengths`, the matrix's). For each variant
(extra `generate_batch_fast` arguments, e.g. `--variant prompt_cache=False --variant prompt_cache=True`) it prints:
- the whole decode's seconds (median of 3) and its refills' seconds, each refill timed between two syncs;
- how much of a refill is the prompt pass (`_prefill_static`) and how much the rest;
- one refill under the profiler: CUDA kernels launched and their summed GPU time against the refill's wall time
  (kernels' time far below the wall time means the refill is bound by launching them from Python, not by their work).
"""
import argparse, ast, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch
from torch.profiler import profile, ProfilerActivity
from bench_grpo import shape_dir, row_lengths, SHAPES
from transformers import AutoConfig, AutoModelForCausalLM
from rlprims.core import GenerationConfig
from rlprims.generation import load_tokenizer, tokenize_prompts
from rlprims.training import create_addition_dataset
import rlprims.fast_decode as FD

DEV = "cuda" if torch.cuda.is_available() else "cpu"   # (on a CPU: a smoke run of the script, no kernels)
def sync():
    if DEV == "cuda": torch.cuda.synchronize()

def timed_parts(decode) -> dict:
    "Run `decode()` once with `_refill` and `_prefill_static` timed between syncs (the prompt passes inside refills counted apart)."
    refills, prefills, inside = [], [], [False]
    refill, prefill = FD._refill, FD._prefill_static
    def t_refill(model, S):
        sync(); t0 = time.perf_counter(); inside[0] = True
        try: refill(model, S)
        finally: inside[0] = False
        sync(); refills.append(time.perf_counter() - t0)
    def t_prefill(*args, **kw):
        if not inside[0]: return prefill(*args, **kw)
        sync(); t0 = time.perf_counter(); out = prefill(*args, **kw); sync(); prefills.append(time.perf_counter() - t0)
        return out
    FD._refill, FD._prefill_static = t_refill, t_prefill
    try: decode()
    finally: FD._refill, FD._prefill_static = refill, prefill
    return dict(refills=len(refills), refill_ms=1e3 * statistics.mean(refills) if refills else 0.0,
                prompt_pass_ms=1e3 * statistics.mean(prefills) if prefills else 0.0)

def profiled_refill(decode) -> dict:
    "Profile the second refill of `decode()`: CUDA kernels, their summed time, and the refill's wall time."
    refill, seen = FD._refill, []
    def prof_refill(model, S):
        if len(seen) != 1: seen.append(None); return refill(model, S)
        sync()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter(); refill(model, S); sync(); wall = time.perf_counter() - t0
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        seen.append(dict(wall_ms=1e3 * wall, kernels=len(kernels), kernel_ms=sum(e.device_time for e in kernels) / 1e3,
                         cpu_ops=sum(1 for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None)))
    FD._refill = prof_refill
    try: decode()
    finally: FD._refill = refill
    return next((s for s in seen if s), {})

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="qwen2.5-1.5b", choices=list(SHAPES))
    p.add_argument("--prompts", type=int, default=64); p.add_argument("--G", type=int, default=8)
    p.add_argument("--T", type=int, default=1024); p.add_argument("--slots", type=int, default=128)
    p.add_argument("--variant", action="append", default=[], help="KEY=VALUE,... extra generate_batch_fast arguments (Python literals)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    d = shape_dir(a.shape)
    torch.manual_seed(0)
    with torch.device(DEV): model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16)
    tok = load_tokenizer(d)
    texts = [x["prompt"] for x in create_addition_dataset(a.prompts, seed=0)]
    pids, pmask = tokenize_prompts(tok, texts, n=a.G)
    L = row_lengths(0, len(pids), a.T, "longtail")
    gen = GenerationConfig(max_new_tokens=a.T, min_new_tokens=a.T, temperature=1.0, top_p=1.0, top_k=0)
    variants = [{k: ast.literal_eval(x) for k, x in (kv.split("=", 1) for kv in v.split(",") if kv)} for v in (a.variant or [""])]
    for kw in variants:
        decode = lambda: FD.generate_batch_fast(model, tok, pids, pmask, gen, forced_lengths=L, slots=a.slots, static=True, **kw)
        decode(); secs = []
        for _ in range(3):
            sync(); t0 = time.perf_counter(); decode(); sync(); secs.append(time.perf_counter() - t0)
        out = dict(shape=a.shape, rows=len(pids), slots=a.slots, T=a.T, prompt_len=pmask.shape[1], variant=kw, seconds=statistics.median(secs),
                   **timed_parts(decode), profiled=profiled_refill(decode))
        print(json.dumps(out))
        if a.json:
            with open(a.json, "a") as f: f.write(json.dumps(out) + "\n")

if __name__ == "__main__": main()
