#!/usr/bin/env python
"""GPU: `decode_attention`'s share of the bandwidth at one decode step's shape, for each number of spans a row's slots
are cut into (a development tool; the Qwen2.5-1.5B shape by default: 12 query heads, 2 KV heads, head size 128).

    python benchmarks/tools/tune_decode_attention.py --rows 128 --lengths 300 600 1064
    python benchmarks/tools/tune_decode_attention.py --rows 16 --lengths 600 1064     # a long-tailed batch's last rows

Prints, per cache length, the time of `splits=1, 2, 4, 8, 16` and of the default (`attention_splits`), each as a share
of the copy bandwidth (K and V read once), and the largest difference from one span. Each time is a CUDA graph of 20
calls, replayed. On a CPU (`TRITON_INTERPRET=1`, small sizes) it checks the spans' agreement only.
"""
import argparse, time
import torch
import rlprims.fast_decode as fd
from kernel_timing import graph_seconds, patch_interpreter_for_numpy2

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=128); ap.add_argument("--H", type=int, default=12); ap.add_argument("--Hkv", type=int, default=2)
ap.add_argument("--D", type=int, default=128); ap.add_argument("--Lmax", type=int, default=1088)
ap.add_argument("--lengths", type=int, nargs="+", default=[300, 600, 1064]); ap.add_argument("--reps", type=int, default=200)
a = ap.parse_args()
N, H, Hkv, D = a.rows, a.H, a.Hkv, a.D
dev = "cuda" if torch.cuda.is_available() else "cpu"
if dev == "cpu": patch_interpreter_for_numpy2()
torch.manual_seed(0)
q = torch.randn(N, H, D, device=dev, dtype=torch.bfloat16)
K = torch.randn(N, Hkv, a.Lmax, D, device=dev, dtype=torch.bfloat16)
V = torch.randn_like(K)
mask = torch.ones(N, a.Lmax + 1, device=dev, dtype=torch.bool)
mask[:, :7] = False                                          # some left padding
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
x = torch.empty(2**28 if dev == "cuda" else 2**20, dtype=torch.float32, device=dev); y = torch.empty_like(x)
y.copy_(x); sync(); t0 = time.perf_counter()
for _ in range(10): y.copy_(x)
sync(); bw = 2 * x.numel() * 4 * 10 / (time.perf_counter() - t0); del x, y
print(f"copy bandwidth {bw / 1e12:.2f} TB/s; N={N} H={H} Hkv={Hkv} D={D}; default spans {fd.attention_splits(N * Hkv, a.Lmax, dev)}")

timed = lambda fn: graph_seconds(fn, a.reps)

for L in a.lengths:
    col = torch.tensor([L - 1], device=dev)
    nbytes = 2 * N * Hkv * L * D * 2
    one = fd.decode_attention(q, K, V, mask, col, D ** -0.5, splits=1).float()
    for splits in (1, 2, 4, 8, 16, None):
        run = lambda: fd.decode_attention(q, K, V, mask, col, D ** -0.5, splits=splits)
        err = (run().float() - one).abs().max().item()
        t = timed(run)
        print(f"L={L:5d} splits={str(splits or 'default'):>7}: {t * 1e6:7.1f} us  {nbytes / t / bw:6.1%} of copy bandwidth  max|diff| {err:.3g}")
