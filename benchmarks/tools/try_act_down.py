#!/usr/bin/env python
"""GPU experiment: the MLP's second half of a decode step, `down(silu(gate) * up)`, as cuBLAS does it today (the
`silu_mul` kernel, then a split-K product and its reduce) against one Triton kernel that applies the activation while
it loads and adds its split-K partial sums into an fp32 buffer with atomics (a development tool).

    python benchmarks/tools/try_act_down.py --rows 128 16        # Qwen2.5-1.5B's MLP: 1536 <- 8960
"""
import argparse, functools, itertools
import torch
import rlprims.fast_decode as fd
from kernel_timing import graph_seconds, patch_interpreter_for_numpy2

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, nargs="+", default=[128, 16]); ap.add_argument("--M", type=int, default=1536)
ap.add_argument("--I", type=int, default=8960); ap.add_argument("--reps", type=int, default=400)
a = ap.parse_args()
dev = "cuda" if torch.cuda.is_available() else "cpu"      # cpu: a correctness run under TRITON_INTERPRET=1, fp32, small sizes
dt = torch.bfloat16 if dev == "cuda" else torch.float32
if dev == "cpu": patch_interpreter_for_numpy2()

@functools.cache
def kernel():
    import triton, triton.language as tl
    @triton.jit
    def act_down(GU, W, ACC, R, N, I, sg, sw, KCH, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        nb, sk, rb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        r = rb * BLOCK_R + tl.arange(0, BLOCK_R)
        c = nb * BLOCK_N + tl.arange(0, BLOCK_N)
        rm, cm = r < R, c < N
        acc = tl.zeros([BLOCK_R, BLOCK_N], tl.float32)
        lo = sk * KCH
        for k0 in range(lo, tl.minimum(lo + KCH, I), BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            km = k < I
            g = tl.load(GU + r[:, None] * sg + k[None, :], mask=rm[:, None] & km[None, :], other=0.0)
            u = tl.load(GU + r[:, None] * sg + I + k[None, :], mask=rm[:, None] & km[None, :], other=0.0)
            gf = g.to(tl.float32)
            x = ((gf / (1.0 + tl.exp(-gf))).to(g.dtype).to(tl.float32) * u.to(tl.float32)).to(g.dtype)
            w = tl.load(W + c[:, None] * sw + k[None, :], mask=cm[:, None] & km[None, :], other=0.0)
            acc += tl.dot(x, tl.trans(w))
        tl.atomic_add(ACC + r[:, None] * N + c[None, :], acc, mask=rm[:, None] & cm[None, :], sem="relaxed")
    return act_down

def triton_down(gu, w, acc, split, BR, BN, BK, warps, stages):
    R, I, N = gu.shape[0], gu.shape[1] // 2, w.shape[0]
    kch = -(-(-(-I // split)) // BK) * BK
    grid = (-(-N // BN), -(-I // kch), -(-R // BR))
    def fn():
        acc.zero_()
        kernel()[grid](gu, w, acc, R, N, I, gu.stride(0), w.stride(0), kch, BLOCK_R=BR, BLOCK_N=BN, BLOCK_K=BK, num_warps=warps, num_stages=stages)
    return fn

timed = lambda fn: graph_seconds(fn, a.reps)

torch.manual_seed(0)
w = (torch.randn(a.M, a.I, device=dev) * a.I ** -0.5).to(dt)
floor_bytes = w.numel() * 2
for R in a.rows:
    gu = torch.randn(R, 2 * a.I, device=dev).to(dt)
    ref = torch.nn.functional.linear(fd.silu_mul(gu) if dev == "cuda" else (torch.nn.functional.silu(gu[:, :a.I]) * gu[:, a.I:]), w)
    t_ref = timed(lambda: torch.nn.functional.linear(fd.silu_mul(gu), w)) if dev == "cuda" else float("nan")
    print(f"rows {R}: cuBLAS (silu_mul, then the product) {t_ref * 1e6:7.1f} us = {floor_bytes / t_ref / 4.19e12:5.1%} of 4.19 TB/s", flush=True)
    acc = torch.zeros(R, a.M, device=dev, dtype=torch.float32)
    res = []
    grid = itertools.product((4, 8, 16), (64, 128) if R >= 128 else (max(16, min(R, 64)),), (32, 64, 128), (64, 128), (4, 8), (3,)) if dev == "cuda" else [(2, 16, 32, 64, 4, 2)]
    for split, BR, BN, BK, warps, stages in grid:
        try:
            fn = triton_down(gu, w, acc, split, BR, BN, BK, warps, stages)
            t = timed(fn); err = (acc.to(dt).float() - ref.float()).abs().max().item()
            res.append((t, f"split {split} BLOCK_R={BR} BLOCK_N={BN} BLOCK_K={BK} warps={warps} stages={stages}", err))
        except Exception as e:
            res.append((float("inf"), f"split {split} {BR} {BN} {BK} {warps} {stages} failed: {type(e).__name__}: {str(e)[:120]}", 0))
    for t, name, err in sorted(res, key=lambda x: x[0] if x[0] == x[0] else 0)[:6]:
        print(f"   {t * 1e6:7.1f} us = {floor_bytes / t / 4.19e12:5.1%}  {name}  max|diff| {err:.3g}", flush=True)
