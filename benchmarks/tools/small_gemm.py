#!/usr/bin/env python
"""GPU experiment: the decode step's matrix products at few rows, cuBLAS (`F.linear`) against a split-K Triton kernel
whose last program of each column tile adds the partial sums (no second kernel), a development tool.

Each product is timed over `--layers` distinct weights, as a decode step reads them (one weight repeated would sit in
the L2 cache), in one CUDA graph; the bandwidth column counts the weight bytes only.

    python benchmarks/tools/small_gemm.py --rows 128 256            # Qwen2.5-1.5B's q/k/v, o, gate/up and down
    TRITON_INTERPRET=1 python benchmarks/tools/small_gemm.py --check  # CPU: the kernel's numbers against F.linear, small sizes
    python benchmarks/tools/small_gemm.py --rows 128 --blas           # cuBLAS ways instead: layouts, cuBLASLt, torch.compile's autotuned products
"""
import argparse, functools, itertools, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, nargs="+", default=[128, 256]); ap.add_argument("--layers", type=int, default=28)
ap.add_argument("--hidden", type=int, default=1536); ap.add_argument("--inter", type=int, default=8960)
ap.add_argument("--qkv", type=int, default=2048); ap.add_argument("--reps", type=int, default=20)
ap.add_argument("--check", action="store_true", help="correctness only, small sizes (CPU interpreter or GPU)")
ap.add_argument("--blas", action="store_true", help="ways of calling the vendor library (and torch.compile's max-autotune) instead of the Triton kernel")
a = ap.parse_args()
dev = "cuda" if torch.cuda.is_available() else "cpu"
if dev == "cpu":
    from kernel_timing import patch_interpreter_for_numpy2; patch_interpreter_for_numpy2()

@functools.cache
def kernel():
    import triton, triton.language as tl
    @triton.jit
    def splitk_linear(X, W, B, Y, WS, CNT, M, N, K, sx, sw, sy, KCH, HAS_BIAS: tl.constexpr, SPLIT: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        nb, sk, mb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        r, c = mb * BLOCK_M + tl.arange(0, BLOCK_M), nb * BLOCK_N + tl.arange(0, BLOCK_N)
        rm, cm = r < M, c < N
        acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
        lo = sk * KCH
        for k0 in range(lo, tl.minimum(lo + KCH, K), BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            km = k < K
            x = tl.load(X + r[:, None] * sx + k[None, :], mask=rm[:, None] & km[None, :], other=0.0)
            w = tl.load(W + c[:, None] * sw + k[None, :], mask=cm[:, None] & km[None, :], other=0.0)
            acc += tl.dot(x, tl.trans(w))
        out = rm[:, None] & cm[None, :]
        if SPLIT > 1:                                       # park this span's sums; the last span of the tile adds them all
            tile = mb * tl.num_programs(0) + nb
            tl.store(WS + sk * M * N + r[:, None] * N + c[None, :], acc, mask=out)
            seen = tl.atomic_add(CNT + tile, 1, sem="acq_rel")
            if seen == SPLIT - 1:
                acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
                for s in range(SPLIT):
                    acc += tl.load(WS + s * M * N + r[:, None] * N + c[None, :], mask=out, other=0.0, cache_modifier=".cg")
                if HAS_BIAS: acc += tl.load(B + c, mask=cm, other=0.0).to(tl.float32)[None, :]
                tl.store(Y + r[:, None] * sy + c[None, :], acc.to(Y.dtype.element_ty), mask=out)
                tl.atomic_xchg(CNT + tile, 0)               # ready for the next call (and the next graph replay)
        else:
            if HAS_BIAS: acc += tl.load(B + c, mask=cm, other=0.0).to(tl.float32)[None, :]
            tl.store(Y + r[:, None] * sy + c[None, :], acc.to(Y.dtype.element_ty), mask=out)
    return splitk_linear

def splitk(x, w, b, split, BM, BN, BK, warps, stages):
    "A call of the kernel for `F.linear(x, w, b)` at one setting: returns fn() -> y (buffers made once)."
    M, K = x.shape; N = w.shape[0]
    kch = -(-(-(-K // split)) // BK) * BK                   # each span a whole number of BK blocks
    split = -(-K // kch)
    grid = (-(-N // BN), split, -(-M // BM))
    y = torch.empty(M, N, dtype=x.dtype, device=x.device)
    ws = torch.empty(split if split > 1 else 1, M, N, dtype=torch.float32, device=x.device)
    cnt = torch.zeros(grid[0] * grid[2], dtype=torch.int32, device=x.device)
    k = kernel()
    def fn():
        k[grid](x, w, b if b is not None else w, y, ws, cnt, M, N, K, x.stride(0), w.stride(0), y.stride(0), kch,
                HAS_BIAS=b is not None, SPLIT=split, BLOCK_M=BM, BLOCK_N=BN, BLOCK_K=BK, num_warps=warps, num_stages=stages)
        return y
    return fn

def graph_us(fns, reps):
    "Microseconds one call takes, each of `fns` called once in turn inside a CUDA graph (replayed `reps` times)."
    for f in fns: f()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fns: f()
    g.replay(); torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(reps): g.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (reps * len(fns)) * 1e6

torch.manual_seed(0)
if a.check:                                                 # small sizes: every path of the kernel against F.linear
    dt = torch.bfloat16 if dev == "cuda" else torch.float32
    for (M, N, K), bias, split in itertools.product([(5, 40, 96), (16, 64, 200)], (False, True), (1, 2, 3)):
        x, w = torch.randn(M, K, device=dev).to(dt), torch.randn(N, K, device=dev).to(dt)
        b = torch.randn(N, device=dev).to(dt) if bias else None
        fn = splitk(x, w, b, split, 16, 16, 32, 4, 2)
        for _ in range(2): y = fn()                         # twice: the counters must be back at 0
        ref = F.linear(x.float(), w.float(), None if b is None else b.float())
        err = (y.float() - ref).abs().max().item() / ref.abs().max().item()
        assert err < (2e-2 if dt == torch.bfloat16 else 1e-5), (M, N, K, bias, split, err)
        print(f"M={M} N={N} K={K} bias={bias} split={split}: relative error {err:.1e}")
    raise SystemExit("check: all equal to F.linear")

H, I = a.hidden, a.inter
shapes = {"qkv": (a.qkv, H, True), "o": (H, H, False), "gate_up": (2 * I, H, False), "down": (H, I, False)}
if a.blas:                                                  # the same products called other ways, each over the distinct weights in one graph
    def with_backend(name, fn):
        "fn with `torch.backends.cuda.preferred_blas_library(name)` set while it runs (and while a graph captures it)."
        def run():
            old = torch.backends.cuda.preferred_blas_library(); torch.backends.cuda.preferred_blas_library(name)
            try: return fn()
            finally: torch.backends.cuda.preferred_blas_library(old)
        return run
    compiled = torch.compile(F.linear, mode="max-autotune-no-cudagraphs", dynamic=False)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; {a.layers} distinct weights per product", flush=True)
    for name, (N, K, bias) in shapes.items():
        ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) * K ** -0.5 for _ in range(a.layers)]
        wts = [w.t().contiguous() for w in ws]              # the same weights stored [K, N]
        bs = [torch.randn(N, device=dev, dtype=torch.bfloat16) if bias else None for _ in range(a.layers)]
        gb = N * K * 2 / 1e9
        for M in a.rows:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            nn_ = lambda wt, b: (torch.addmm(b, x, wt) if b is not None else x @ wt)
            ways = {"F.linear (cuBLAS)": [functools.partial(F.linear, x, w, b) for w, b in zip(ws, bs)],
                    "F.linear, cuBLASLt": [with_backend("cublaslt", functools.partial(F.linear, x, w, b)) for w, b in zip(ws, bs)],
                    "x @ W stored [K, N]": [functools.partial(nn_, wt, b) for wt, b in zip(wts, bs)],
                    "x @ W stored [K, N], cuBLASLt": [with_backend("cublaslt", functools.partial(nn_, wt, b)) for wt, b in zip(wts, bs)],
                    "torch.compile max-autotune": [functools.partial(compiled, x, w, b) for w, b in zip(ws, bs)]}
            ref = F.linear(x, ws[0], bs[0]).float()
            line = []
            for way, fns in ways.items():
                try:
                    err = (fns[0]().float() - ref).abs().max().item(); us = graph_us(fns, a.reps)
                    line.append(f"{way} {us:6.2f} us ({gb / us * 1e6:5.0f} GB/s, err {err:.2g})")
                except Exception as e: line.append(f"{way}: {type(e).__name__} {str(e)[:80]}")
            print(f"{name:8s} [{M}x{K}] x [{N}x{K}]^T: " + "; ".join(line), flush=True)
    raise SystemExit(0)
configs = [dict(split=s, BN=bn, BK=bk, warps=wp, stages=st) for s in (1, 2, 4, 8) for bn in (32, 64, 128) for bk in (64,)
           for wp in (4, 8) for st in (3, 4)]
print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; {a.layers} distinct weights per product", flush=True)
for name, (N, K, bias) in shapes.items():
    ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) * K ** -0.5 for _ in range(a.layers)]
    bs = [torch.randn(N, device=dev, dtype=torch.bfloat16) if bias else None for _ in range(a.layers)]
    gb = N * K * 2 / 1e9
    for M in a.rows:
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        base = graph_us([functools.partial(F.linear, x, w, b) for w, b in zip(ws, bs)], a.reps)
        ref = F.linear(x, ws[0], bs[0]).float()
        best = []
        for c in configs:
            BM = min(M, 128)
            try:
                fns = [splitk(x, w, b, c["split"], BM, c["BN"], c["BK"], c["warps"], c["stages"]) for w, b in zip(ws, bs)]
                err = (fns[0]().float() - ref).abs().max().item()
                us = graph_us(fns, a.reps)
            except Exception as e:                          # e.g. out of shared memory at this setting
                print(f"  {name} M={M} {c}: {type(e).__name__}", flush=True); continue
            best.append((us, c, err))
        best.sort(key=lambda t: t[0])
        print(f"{name:8s} [{M}x{K}] x [{N}x{K}]^T: cuBLAS {base:6.2f} us ({gb / base * 1e6:5.0f} GB/s); best Triton "
              + "; ".join(f"{us:6.2f} us ({gb / us * 1e6:5.0f} GB/s) {c} err {err:.2g}" for us, c, err in best[:3]), flush=True)
