#!/usr/bin/env python
"""GPU: where a decode step's device time goes, kernel by kernel, for `generate_batch_fast` (a development tool).

Runs the decode once with CUDA graphs (the step's wall time) and once eagerly under `torch.profiler` (each kernel's device
time; the fused path is forced on, as the graphs run it). If the kernels' summed device time per step is close to the
graph step, the step is bound by the kernels themselves; if far below, by the gaps between them.

    python benchmarks/tools/profile_decode_kernels.py --shape qwen2.5-1.5b --rows 128 --T 256
"""
import argparse, collections, time
import torch
from kernel_timing import random_shape_model, sum_prompts, sampler_ms

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--rows", type=int, default=128); ap.add_argument("--T", type=int, default=256)
ap.add_argument("--top", type=int, default=25)
a = ap.parse_args()
import rlprims.fast_decode as fd
from rlprims.core import GenerationConfig
model, tok = random_shape_model(a.shape)
for spans in (1, None):                                     # one span a row, and as many as the default picks
    print(f"sample_softmax [{a.rows}, {model.config.vocab_size}], spans={spans}: {sampler_ms(fd.sample_softmax, a.rows, model.config.vocab_size, spans=spans):.3f} ms", flush=True)
pids, pmask = sum_prompts(tok, a.rows)
gen = GenerationConfig(max_new_tokens=a.T, min_new_tokens=a.T, temperature=1.0, top_p=1.0, top_k=0)
run = lambda **kw: fd.generate_batch_fast(model, tok, pids, pmask, gen, **kw)
run(); torch.cuda.synchronize()
t0 = time.perf_counter(); run(); torch.cuda.synchronize(); graph = time.perf_counter() - t0
print(f"{a.shape}, {len(pids)} rows x {a.T} tokens: {graph:.3f} s with CUDA graphs, {graph / (a.T - 1) * 1e3:.2f} ms a step (prefill included)")
run(cuda_graphs=False, fused_layers=True)                   # eager warm-up (Triton builds, allocator)
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    run(cuda_graphs=False, fused_layers=True); torch.cuda.synchronize()
kernels = collections.Counter(); counts = collections.Counter()
for e in prof.events():
    if e.device_type == torch.autograd.DeviceType.CUDA:
        kernels[e.name[:80]] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
        counts[e.name[:80]] += 1
total = sum(kernels.values()) / 1e6
print(f"eager, fused layers: {total:.3f} s of kernel time in all, {total / (a.T - 1) * 1e3:.2f} ms a step; "
      f"{sum(counts.values()) / (a.T - 1):.0f} kernels a step")
for name, us in kernels.most_common(a.top):
    print(f"  {us / 1e3 / (a.T - 1):7.3f} ms/step  {counts[name] / (a.T - 1):6.1f}/step  {name}")
